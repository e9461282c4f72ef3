"""ChunkShardingSpec (torch.distributed._shard.sharding_spec.chunk_sharding_spec).

The record (``dim``, ``placements``, constructor checks, the chunk rule) is C
(csrc/shard/spec.c, ``_C.ChunkShardingSpecBase``); this class adds ``build_metadata`` and
``shard``, which scatters through the sharded-tensor layer
(``shardopt.sharded_tensor._shard_chunk.shard_chunk``).
"""
from .. import _C
from .api import ShardingSpec, _sharded_tensor_metadata

__all__ = ["ChunkShardingSpec"]


class ChunkShardingSpec(_C.ChunkShardingSpecBase, ShardingSpec):
    """ChunkShardingSpec(dim, placements): shard ``dim`` into ``len(placements)`` chunks like
    torch.chunk, chunk ``i`` on ``placements[i]``.

    Args:
        dim: the sharded dimension (an int, may be negative).
        placements: one placement per chunk ("rank:<r>/<device>" strings or
            ``_remote_device``); parsed into ``_remote_device`` at construction.
    """

    def build_metadata(self, tensor_sizes, tensor_properties):
        """ShardedTensorMetadata with one shard per placement (trailing ones may be empty)."""
        return _sharded_tensor_metadata(self._shards_metadata(tensor_sizes), tensor_sizes,
                                        tensor_properties)

    def shard(self, tensor, src_rank: int = 0, process_group=None):
        """Scatter ``tensor`` (valid on group rank ``src_rank``) into a ShardedTensor."""
        from ..sharded_tensor._shard_chunk import shard_chunk  # noqa: PLC0415 (layer above)
        return shard_chunk(self, tensor, src_rank, process_group)
