"""Sharding and placement specs (torch.distributed._shard.sharding_spec.api).

``ShardingSpec`` and ``PlacementSpec`` are Python ABCs that user specs (e.g. a grid spec)
subclass as in torch.  The built-in specs are Python classes over C records
(csrc/shard/spec.c): the record holds the fields, the constructor checks and the chunk
rule; the class body adds ``build_metadata`` (wrapping the shard records in a
ShardedTensorMetadata) and ``shard`` (which needs the sharded-tensor layer).
"""
from abc import ABC, abstractmethod
from typing import Sequence

from .. import _C

__all__ = ["PlacementSpec", "DevicePlacementSpec", "ShardingSpec", "EnumerableShardingSpec",
           "_infer_sharding_spec_from_shards_metadata"]


def _sharded_tensor_metadata(shards_metadata, size, tensor_properties):
    # the metadata dataclasses belong to the sharded-tensor package (as in torch)
    from ..sharded_tensor.metadata import ShardedTensorMetadata  # noqa: PLC0415
    return ShardedTensorMetadata(shards_metadata, size, tensor_properties)


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
PlacementSpec.register(DevicePlacementSpec)


class EnumerableShardingSpec(_C.EnumerableShardingSpecBase, ShardingSpec):
    """EnumerableShardingSpec(shards): an explicit list of non-overlapping ShardMetadata
    (all of the same rank; checked at construction)."""

    def build_metadata(self, tensor_sizes, tensor_properties):
        """``check_tensor`` of the shards against ``tensor_sizes``, then the metadata."""
        _C.check_tensor(self.shards, tensor_sizes)
        return _sharded_tensor_metadata(self.shards, tensor_sizes, tensor_properties)

    def shard(self, tensor, src_rank=0, process_group=None):
        raise NotImplementedError("EnumerableShardingSpec.shard not implemented yet!")


def _infer_sharding_spec_from_shards_metadata(shards_metadata: Sequence) -> ShardingSpec:
    """ChunkShardingSpec if the shards follow the chunk rule along one dim (decided in C),
    else EnumerableShardingSpec."""
    layout = _C._infer_chunk_layout(shards_metadata)
    if layout is None:
        return EnumerableShardingSpec(shards_metadata)
    from .chunk_sharding_spec import ChunkShardingSpec  # noqa: PLC0415 (imports this module)
    dim, placements = layout
    return ChunkShardingSpec(dim, placements)
