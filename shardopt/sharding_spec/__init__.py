"""shardopt.sharding_spec: torch.distributed._shard.sharding_spec without PyTorch.

ShardMetadata, DevicePlacementSpec and the records under ChunkShardingSpec and
EnumerableShardingSpec are C (csrc/shard/), as are the helpers in ``_internals``; the spec
classes and the ShardingSpec / PlacementSpec ABCs that user specs subclass are Python.
"""
from .._C import ShardMetadata
from .api import (
    DevicePlacementSpec,
    EnumerableShardingSpec,
    PlacementSpec,
    ShardingSpec,
    _infer_sharding_spec_from_shards_metadata,
)
from .chunk_sharding_spec import ChunkShardingSpec
from . import _internals  # noqa: F401
from ..sharded_tensor._shard_registry import custom_sharding_spec_op

__all__ = ["ShardMetadata", "ShardingSpec", "PlacementSpec", "DevicePlacementSpec",
           "ChunkShardingSpec", "EnumerableShardingSpec",
           "_infer_sharding_spec_from_shards_metadata", "custom_sharding_spec_op"]
