"""Sharding and placement specs (torch.distributed._shard.sharding_spec.api).

``ShardingSpec`` and ``PlacementSpec`` are Python ABCs so that user specs (e.g. a grid
spec) subclass them as in torch; the built-in specs are C types (csrc/shard/spec.c)
registered as their virtual subclasses, so ``isinstance(spec, ShardingSpec)`` holds.
"""
from abc import ABC, abstractmethod

from .. import _C

__all__ = ["PlacementSpec", "DevicePlacementSpec", "ShardingSpec", "EnumerableShardingSpec",
           "_infer_sharding_spec_from_shards_metadata"]


class PlacementSpec(ABC):  # noqa: B024 - a marker base, as in torch
    """Base class for the placement of an entity (see DevicePlacementSpec)."""


class ShardingSpec(ABC):
    """Base class of sharding specifications.

    A subclass describes how a tensor of a given size is split into shards
    (``build_metadata``) and how a full tensor on one rank is scattered into a
    ShardedTensor (``shard``).
    """

    @abstractmethod
    def build_metadata(self, tensor_sizes, tensor_properties):
        """Return the ShardedTensorMetadata for a tensor of ``tensor_sizes``
        (a shardopt.Size) with ``tensor_properties`` (a TensorProperties)."""

    @abstractmethod
    def shard(self, tensor, src_rank=0, process_group=None):
        """Scatter ``tensor`` (valid on ``src_rank``) across the process group and
        return the resulting ShardedTensor."""


DevicePlacementSpec = _C.DevicePlacementSpec
EnumerableShardingSpec = _C.EnumerableShardingSpec
_infer_sharding_spec_from_shards_metadata = _C._infer_sharding_spec_from_shards_metadata

PlacementSpec.register(DevicePlacementSpec)
ShardingSpec.register(EnumerableShardingSpec)
ShardingSpec.register(_C.ChunkShardingSpec)
