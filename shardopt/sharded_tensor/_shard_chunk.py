"""Scattering a full tensor into a ShardedTensor (ChunkShardingSpec.shard, torch's
``_shard_tensor``).

``shard_chunk(spec, tensor, src_rank, process_group)`` is ``ChunkShardingSpec.shard``: on
``src_rank`` (a *group* rank) each chunk of ``tensor`` becomes one element of the scatter
list at the common scatter size (``split`` along the sharded dim; the flat prefix is kept,
as torch's resize does) -- a view of ``tensor`` where the chunk is contiguous and full,
else one copy into a padded buffer (see ``_scatter_piece``); one ``dist.scatter`` delivers
each group rank its piece; the receiver resizes it back to its shard size and copies
``requires_grad`` from its own ``tensor``.  (``dist.scatter`` itself packs the list into
one flat send buffer, so for row sharding that packing is the only copy on the source.)
Every rank must have exactly one placement (torch asserts this; here it is a ValueError).

``_shard_tensor(tensor, sharding_spec, src_rank=0, process_group=None)`` first checks
contiguity and then that every rank passed the same ``src_rank`` and spec, exchanging them
with ``all_gather_object`` so that all ranks see the same mismatch and all raise (torch's
messages), then calls ``sharding_spec.shard``.
"""
from .. import _C
from .. import distributed as dist
from ..sharding_spec import ShardingSpec

__all__ = ["shard_chunk", "_shard_tensor"]


def _resolve_pg(process_group):
    return dist.distributed_c10d._default() if process_group is None else process_group


def _detach(t):
    d = getattr(t, "detach", None)
    return d() if d is not None else t._alias()


def _scatter_piece(src, dim, smd, n):
    """Chunk `smd` of `src` as the `n`-element tensor dist.scatter sends.

    A full chunk that is contiguous in `src` (row sharding of a contiguous tensor) is sent
    as a view: no copy here.  Otherwise (a short or empty trailing chunk, or a chunk along
    another dim) it is copied ONCE, straight from the strided view into a padded buffer;
    the padding is never read."""
    length = smd.shard_sizes[dim]
    if length > 0:
        view = src.narrow(dim, smd.shard_offsets[dim], length)
        if view.numel() == n and view.is_contiguous():
            return view.reshape((n,))
    buf = _C.empty((n,), src.dtype, src.device)
    if length > 0:
        k = view.numel()
        buf.narrow(0, 0, k).reshape(tuple(view.shape)).copy_(view)
    return buf


def shard_chunk(spec, tensor, src_rank=0, process_group=None):
    from . import ShardedTensor, Shard, TensorProperties  # noqa: PLC0415 (import cycle)
    from .api import _validate_placement  # noqa: PLC0415

    pg = _resolve_pg(process_group)
    if pg is dist.GroupMember.NON_GROUP_MEMBER:
        raise ValueError("ChunkShardingSpec.shard: this rank is not a member of process_group")
    world = pg.size()
    my_group_rank = pg.rank()
    props = TensorProperties.create_from_tensor(tensor)
    md = spec.build_metadata(tensor.size(), props)
    shards_md = md.shards_metadata
    group_ranks = list(pg._ranks)

    # Which group rank receives which chunk (exactly one per rank).
    owner = {}
    for idx, smd in enumerate(shards_md):
        pl = smd.placement
        if pl is not None and pl.worker_name() is not None:
            r = _validate_placement(pg, pl)  # worker names resolve through RPC
        else:
            r = pl.rank() if pl is not None else None
        if r is None:
            raise ValueError(f"ChunkShardingSpec.shard needs 'rank:<rank>/<device>' placements, "
                             f"got {pl!r}")
        if r not in group_ranks:
            raise ValueError(f"Global rank {r} does not exist in input process group: "
                             f"{group_ranks}")
        g = group_ranks.index(r)
        if g in owner:
            raise ValueError(f"ChunkShardingSpec.shard needs exactly one placement per rank, "
                             f"rank {r} has several")
        owner[g] = idx
    if len(owner) != world:
        raise ValueError(f"ChunkShardingSpec.shard needs exactly one placement per rank of the "
                         f"process group ({world} ranks), got {len(shards_md)} placements")

    ndim = tensor.dim()
    dim = spec.dim if spec.dim >= 0 else spec.dim + ndim
    split = _C.get_split_size(tensor.size(dim), len(shards_md))
    scatter_shape = list(tensor.size())
    scatter_shape[dim] = split
    n = 1
    for s in scatter_shape:
        n *= s

    my_md = shards_md[owner[my_group_rank]]
    device = my_md.placement.device()
    recv = _C.empty((n,), tensor.dtype, device)
    scatter_list = None
    if my_group_rank == src_rank:
        scatter_list = [_scatter_piece(_detach(tensor), dim, shards_md[owner[g]], n)
                        for g in range(world)]
    if n > 0:  # Gloo must never see a zero-length collective
        src_global = group_ranks[src_rank] if 0 <= src_rank < world else src_rank
        dist.scatter(recv, scatter_list, src=src_global, group=pg)
    size = 1
    for s in my_md.shard_sizes:
        size *= s
    local = recv.narrow(0, 0, size).reshape(tuple(my_md.shard_sizes)).contiguous()
    if tensor.requires_grad:
        local.requires_grad = True
    local_shards = [Shard(local, my_md)]
    return ShardedTensor._init_from_local_shards_and_global_metadata(
        local_shards, md, process_group=pg, sharding_spec=spec)


def _local_shard_error(tensor, sharding_spec):
    """The error this rank would raise before sharding `tensor`, or None."""
    if not isinstance(tensor, _C.TensorBase):
        return ValueError(f"Expected a Tensor to shard, but found {type(tensor).__name__}")
    if not tensor.is_contiguous():
        return ValueError("input tensor is not a contiguous Tensor")
    if not isinstance(sharding_spec, ShardingSpec):
        return ValueError(f"Expecting ShardingSpec but got: {type(sharding_spec)}")
    return None


def _shard_tensor(tensor, sharding_spec, src_rank=0, process_group=None, _local_error=None):
    """Shard `tensor` with `sharding_spec`, scattering from `src_rank` (a group rank).

    Collective.  Every check runs inside one all_gather_object so that EVERY rank raises
    when ANY rank's input is bad (deviation 12.1: torch raises on the offending rank only and
    leaves the others blocked in the collective): a rank's own local error (passed in by
    shard_parameter, or found here) is raised on that rank and reported by the others;
    then src_rank and spec must agree (torch's messages), and -- beyond torch -- the
    tensors' shapes and dtypes, since a scatter of mismatched tensors would be garbage."""
    if _local_error is None:
        _local_error = _local_shard_error(tensor, sharding_spec)
    if _local_error is not None and process_group is None and not dist.is_initialized():
        raise _local_error  # nothing to exchange with
    pg = _resolve_pg(process_group)
    world = dist.get_world_size(pg)
    current = dist.get_rank(pg)
    if _local_error is None:
        mine = (None, (src_rank, sharding_spec, tuple(tensor.shape), str(tensor.dtype)))
    else:
        mine = (f"{type(_local_error).__name__}: {_local_error}", None)
    gathered = [None] * world
    dist.all_gather_object(gathered, mine, group=pg)
    if _local_error is not None:
        raise _local_error
    for idx, (their_error, _) in enumerate(gathered):
        if their_error is not None:
            raise ValueError(f"sharding failed on rank: {idx}: {their_error}")
    for idx, (_, (their_src, their_spec, their_shape, their_dtype)) in enumerate(gathered):
        if src_rank != their_src:
            raise ValueError(f"src_rank={src_rank} on rank: {current} does not match with "
                             f"src_rank={their_src} on rank: {idx}")
        if sharding_spec != their_spec:
            raise ValueError(f"sharding_spec={sharding_spec} on rank: {current} does not match "
                             f"with sharding_spec={their_spec} on rank: {idx}")
    for idx, (_, (_, _, their_shape, their_dtype)) in enumerate(gathered):
        if (tuple(tensor.shape), str(tensor.dtype)) != (their_shape, their_dtype):
            raise ValueError(f"tensor of shape {list(tensor.shape)} and dtype {tensor.dtype} on "
                             f"rank: {current} does not match the tensor of shape "
                             f"{list(their_shape)} and dtype {their_dtype} on rank: {idx}")
    return sharding_spec.shard(tensor, src_rank=src_rank, process_group=pg)
