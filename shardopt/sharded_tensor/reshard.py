"""ShardedTensor.reshard: move a chunk-sharded tensor to another ChunkShardingSpec with one
all-to-all (torch.distributed._shard.sharded_tensor.reshard).

Both specs chunk the tensor into ``world_size`` pieces with the chunk rule; each rank holds
one piece before and one after.

* Same sharding dim, other placements (``reshuffle_local_shard``): the piece at placement
  index i moves, whole, from the old rank of index i to the new rank of index i.
* Another dim (``reshard_local_shard``): rank s cuts its old piece along the new dim into
  the new pieces' extents and sends cut j to the new owner of piece j; every rank then
  concatenates what it received along the old dim, in the old pieces' order.

Both go through ``shardopt.distributed.nn.functional``'s autograd all-to-all, so a reshard
inside a differentiated computation passes gradients back to the old shards.
"""
import copy
from typing import List, Tuple

from .. import _C
from ..distributed import distributed_c10d as dist
from ..distributed.nn.functional import all_to_all, all_to_all_single
from .shard import Shard

__all__ = ["get_idx_from_placements", "build_reshard_metadata", "reshuffle_local_shard",
           "reshard_local_shard"]


def get_idx_from_placements(placements, current_rank) -> int:
    """The index of ``current_rank`` in ``placements``.

    Args:
        placements: the spec's placements (``_remote_device``s).
        current_rank: the rank to look for.
    """
    for idx, placement in enumerate(placements):
        if current_rank == placement.rank():
            return idx
    raise RuntimeError("current_rank not in the placement.")


def _check_spec(spec, world_size, which):
    ranks = [p.rank() for p in spec.placements]
    if len(ranks) != world_size or sorted(ranks) != list(range(world_size)):
        raise ValueError(f"reshard: the {which} spec must place one chunk on each of the "
                         f"{world_size} ranks of the process group, got placements on ranks "
                         f"{ranks}")


def build_reshard_metadata(st_size, sharding_spec, world_size: int) -> Tuple[List, List[int]]:
    """(shards_metadata indexed by rank, the ranks in placement order) of a tensor of size
    ``st_size`` chunked by ``sharding_spec`` over ``world_size`` ranks.

    Args:
        st_size: the global size.
        sharding_spec: a ChunkShardingSpec.
        world_size: number of ranks (= number of chunks).
    """
    dim = int(sharding_spec.dim)
    shards_metadata = [None] * world_size
    ranks = []
    offsets = [0] * len(st_size)
    split = _C.get_split_size(st_size[dim], world_size)
    for idx, placement in enumerate(sharding_spec.placements):
        ranks.append(placement.rank())
        n = _C.get_chunked_dim_size(st_size[dim], split, idx)
        sizes = list(st_size)
        sizes[dim] = n
        shards_metadata[placement.rank()] = _C.ShardMetadata(
            shard_offsets=copy.deepcopy(offsets), shard_sizes=sizes, placement=placement)
        offsets[dim] += n
    return shards_metadata, ranks


def _empty(shape, like):
    return _C.empty(tuple(shape), dtype=like.dtype, device=like.device)


def reshuffle_local_shard(local_shard, st_size, sharding_spec, resharding_spec, pg):
    """Same sharding dim, new placements: send the local piece to its new owner.

    Args:
        local_shard: this rank's piece.
        st_size: the global size.
        sharding_spec: the current ChunkShardingSpec.
        resharding_spec: the target ChunkShardingSpec (same dim).
        pg: the process group.

    Returns:
        (local shards, shards_metadata) under ``resharding_spec``.
    """
    rank = dist.get_rank(pg)
    world = dist.get_world_size(pg)
    shards_metadata, ranks = build_reshard_metadata(st_size, resharding_spec, world)
    dim = int(resharding_spec.dim)
    split = _C.get_split_size(st_size[dim], world)
    idx = get_idx_from_placements(sharding_spec.placements, rank)
    send_to = resharding_spec.placements[idx].rank()
    new_idx = ranks.index(rank)
    recv_from = sharding_spec.placements[new_idx].rank()
    n_out = _C.get_chunked_dim_size(st_size[dim], split, new_idx)
    in_splits = [0] * world
    in_splits[send_to] = local_shard.size(dim)
    out_splits = [0] * world
    out_splits[recv_from] = n_out
    moved = local_shard.transpose(0, dim).contiguous()
    out_shape = list(moved.shape)
    out_shape[0] = n_out
    out = all_to_all_single(_empty(out_shape, moved), moved, output_split_sizes=out_splits,
                            input_split_sizes=in_splits, group=pg)
    local = out.transpose(0, dim).contiguous()
    return [Shard(local, shards_metadata[rank])], shards_metadata


def reshard_local_shard(local_tensor, st_size, sharding_spec, resharding_spec, pg):
    """Another sharding dim: cut the local piece along the new dim, exchange the cuts, and
    join what arrives along the old dim.

    Args:
        local_tensor: this rank's piece.
        st_size: the global size.
        sharding_spec: the current ChunkShardingSpec.
        resharding_spec: the target ChunkShardingSpec (another dim).
        pg: the process group.

    Returns:
        (local shards, shards_metadata) under ``resharding_spec``.
    """
    from .. import cat  # noqa: PLC0415 (the top-level namespace imports this layer)
    rank = dist.get_rank(pg)
    world = dist.get_world_size(pg)
    old_dim, new_dim = int(sharding_spec.dim), int(resharding_spec.dim)
    shards_metadata, _ = build_reshard_metadata(st_size, resharding_spec, world)
    old_metadata, old_ranks = build_reshard_metadata(st_size, sharding_spec, world)
    inputs = []
    for md in shards_metadata:  # indexed by destination rank
        cut = local_tensor.narrow(new_dim, md.shard_offsets[new_dim], md.shard_sizes[new_dim])
        inputs.append(cut.contiguous())
    mine = shards_metadata[rank].shard_sizes[new_dim]
    outputs = []
    for md in old_metadata:  # indexed by source rank
        shape = list(st_size)
        shape[old_dim] = md.shard_sizes[old_dim]
        shape[new_dim] = mine
        outputs.append(_empty(shape, local_tensor))
    received = all_to_all(outputs, inputs, group=pg)
    pieces = [received[r] for r in old_ranks]  # the old pieces' order along old_dim
    local = cat(pieces, old_dim)
    return [Shard(local, shards_metadata[rank])], shards_metadata
