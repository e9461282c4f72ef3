"""Where the pieces of a chunk-sharded weight live, for the sharded ops (linear, embedding,
embedding_bag): per group rank, the extent of its shard along the sharding dim, and the
group ranks in offset order.  Every rank reads the same global metadata, so every rank
derives the same layout and issues the same collectives."""
from dataclasses import dataclass
from typing import List, Optional

from .. import _C
from ..distributed import distributed_c10d as dist
from ..sharding_spec import ChunkShardingSpec

__all__ = ["ChunkLayout", "chunk_layout"]


@dataclass
class ChunkLayout:
    dim: int                 # the sharding dim, >= 0
    offsets: List[int]       # per group rank: start along dim (0 for a rank with no shard)
    sizes: List[int]         # per group rank: extent along dim (0: no shard)
    order: List[int]         # group ranks holding a shard, by offset
    rank: int                # this process's group rank
    local: Optional[object]  # this rank's local shard tensor, or None

    @property
    def offset(self) -> int:
        return self.offsets[self.rank]

    @property
    def size(self) -> int:
        return self.sizes[self.rank]


def chunk_layout(st, op_name: str, ndim: int = 2) -> ChunkLayout:
    """The layout of ShardedTensor ``st`` used as the weight of ``op_name``; raises torch's
    kinds of errors for what the sharded ops do not support."""
    spec = st.sharding_spec()
    if not isinstance(spec, ChunkShardingSpec):
        raise NotImplementedError(f"{op_name}: only ChunkShardingSpec is supported for a "
                                  f"sharded weight, got {type(spec).__name__}")
    if st.dim() != ndim:
        raise ValueError(f"{op_name}: weight needs to be {ndim}-D, got a {st.dim()}-D "
                         "ShardedTensor")
    dim = int(spec.dim)
    dim = dim + ndim if dim < 0 else dim
    pg = st._process_group
    world = dist.get_world_size(pg)
    offsets, sizes = [0] * world, [0] * world
    seen = set()
    for md in st.metadata().shards_metadata:
        r = dist.get_group_rank(pg, md.placement.rank())
        if r in seen:
            raise NotImplementedError(f"{op_name}: only one shard per rank is supported "
                                      f"(rank {md.placement.rank()} holds several)")
        seen.add(r)
        sizes[r] = md.shard_sizes[dim]
        offsets[r] = md.shard_offsets[dim] if sizes[r] else 0  # an empty chunk's offset
        # may lie past the end
    order = sorted((r for r in range(world) if sizes[r]), key=lambda r: offsets[r])
    shards = st.local_shards()
    local = shards[0].tensor if shards else None
    return ChunkLayout(dim, offsets, sizes, order, dist.get_rank(pg), local)


def empty_shard(st, dim: int):
    """A (0-extent along dim) tensor standing in for the missing shard of a rank without
    one, with the weight's other extents, dtype and device."""
    shape = list(st.size())
    shape[dim] = 0
    return _C.empty(tuple(shape), dtype=st.dtype, device=st.device)
