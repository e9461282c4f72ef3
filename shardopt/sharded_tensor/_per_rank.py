"""Per-rank inputs of the sharded embedding ops (torch 2.x's chunk_sharding_spec_ops
semantics): each rank passes its own ids and gets the result for its own ids.

The ops run their replicated algorithm (``_sharded_embedding``) once on the concatenation of
every rank's ids, which every rank holds after ``exchange``; ``own_rows`` then keeps this
rank's rows of that replicated result.  When every rank passed the same ids, the ops skip
the concatenation and keep their replicated contract (see ``_sharded_embedding``).

Gradients, with per-rank ids, follow torch's (torch.distributed.nn's): the objective is the
sum of the ranks' losses, so a shard gets sum over ranks r of dL_r/dshard, and a rank's
per_sample_weights get dL_r/dpsw_r.  ``own_rows``' backward builds that: each rank's
gradient placed at its rows, summed over the ranks into one replicated gradient of the
concatenated result, which is what the replicated algorithm's backward expects.

``exchange`` also carries each rank's verdict on its own input, so an invalid input on one
rank raises on every rank instead of leaving the others waiting in a collective.
"""
import numpy as np

from .. import _C
from ..autograd import Function
from ..distributed import distributed_c10d as dist

__all__ = ["exchange", "own_rows", "raise_if_bad"]

_MAX_DIMS = 64
_HEADER = 5 + _MAX_DIMS   # bad flag, ndim, three part lengths, dims


def exchange(shape, parts, bad, device, group):
    """All-gather, from every rank of ``group``, an input ``shape`` and up to three 1-D
    int64 NumPy ``parts`` (ids, offsets, per-sample-weight bits); ``bad`` is this rank's
    verdict on its input.  Returns (bad flags, shapes, parts) as per-group-rank lists."""
    parts = [np.ascontiguousarray(p, dtype=np.int64).reshape(-1) for p in parts]
    if len(parts) > 3 or len(shape) > _MAX_DIMS:
        raise ValueError(f"exchange: at most 3 parts and {_MAX_DIMS} dims")
    world = dist.get_world_size(group)
    head = np.zeros(_HEADER, dtype=np.int64)
    head[0] = 1 if bad else 0
    head[1] = len(shape)
    for k, p in enumerate(parts):
        head[2 + k] = p.size
    head[5:5 + len(shape)] = shape
    heads = _all_gather_int64(head, world, device, group)
    bads = [bool(h[0]) for h in heads]
    shapes = [tuple(int(d) for d in h[5:5 + int(h[1])]) for h in heads]
    lens = [[int(n) for n in h[2:2 + len(parts)]] for h in heads]
    if any(bads):  # nothing more is exchanged: every rank raises
        return bads, shapes, None
    width = max(sum(n) for n in lens)
    flat = np.zeros(width, dtype=np.int64)
    if parts:
        mine = np.concatenate(parts)
        flat[:mine.size] = mine
    data = _all_gather_int64(flat, world, device, group) if width else \
        [np.zeros(0, dtype=np.int64)] * world
    out = []
    for r in range(world):
        cut = np.cumsum([0] + lens[r])
        out.append([data[r][cut[k]:cut[k + 1]] for k in range(len(parts))])
    return bads, shapes, out


def raise_if_bad(bads, own_error, group, what):
    """Raise ``own_error`` on a rank whose input was invalid, and a ValueError naming the
    first such rank on the others."""
    if own_error is not None:
        raise own_error
    if any(bads):
        first = bads.index(True)
        raise ValueError(f"{what}: the input of rank {dist.get_global_rank(group, first)} "
                         f"(group rank {first}) is invalid; the error is raised there")


def _all_gather_int64(arr, world, device, group):
    t = _C.from_numpy(np.ascontiguousarray(arr)).to(device)
    outs = [_C.empty(tuple(t.shape), dtype=t.dtype, device=t.device) for _ in range(world)]
    dist.all_gather(outs, t, group=group)
    return [o.cpu().numpy() for o in outs]


class _OwnRows(Function):
    @staticmethod
    def forward(ctx, x, start, length, group):
        ctx.shape, ctx.start, ctx.length, ctx.group = tuple(x.shape), start, length, group
        return x.narrow(0, start, length).contiguous().clone()

    @staticmethod
    def backward(ctx, grad):
        full = _C.empty(ctx.shape, dtype=grad.dtype, device=grad.device).zero_()
        if ctx.length:
            full.narrow(0, ctx.start, ctx.length).copy_(grad)
        dist.all_reduce(full, group=ctx.group)
        return full, None, None, None


def own_rows(x, start, length, group):
    """Rows [start, start + length) of the replicated ``x``; backward sums every rank's
    gradient, each at its own rows, into the gradient of ``x``."""
    return _OwnRows.apply(x, start, length, group)
