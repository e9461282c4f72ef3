"""ChunkShardingSpec (torch.distributed._shard.sharding_spec.chunk_sharding_spec).

The type is C (csrc/shard/spec.c).  ``shard()`` forwards to
``shardopt.sharded_tensor._shard_chunk.shard_chunk`` (the ShardedTensor layer).
"""
from .. import _C
from . import api as _api  # noqa: F401  (registers ChunkShardingSpec as a ShardingSpec)

ChunkShardingSpec = _C.ChunkShardingSpec

__all__ = ["ChunkShardingSpec"]
