"""Autograd across collectives for sharded ops whose inputs and result are REPLICATED.

The sharded ops (linear, embedding, embedding_bag) take the same input on every rank and
return the same full result on every rank, so every rank computes the same loss L and the
gradient that must reach a local shard is dL/dshard of that one L -- the gradient of the
unsharded op.  That needs the pairings below (Megatron's), not torch.distributed.nn's (whose
objective is the sum of the ranks' losses, which would scale these gradients by the world
size):

  copy_to_ranks      forward identity      backward all_reduce(SUM): a replicated input
                                           used by rank-specific math collects every
                                           rank's part of its gradient
  reduce_from_ranks  forward all_reduce    backward identity: every rank already holds
                     (SUM)                 the full dL/d(result)
  max_from_ranks     forward all_reduce    backward: the gradient where this rank held
                     (MAX)                 the max, zero elsewhere
  gather_from_ranks  forward all_gather,   backward: this rank's slice of the (replicated)
                     concatenated on dim   gradient
"""
from .. import _C
from ..autograd import Function
from ..distributed import distributed_c10d as dist

__all__ = ["copy_to_ranks", "reduce_from_ranks", "max_from_ranks", "gather_from_ranks"]


class _CopyToRanks(Function):
    @staticmethod
    def forward(ctx, x, group):
        ctx.group = group
        return x

    @staticmethod
    def backward(ctx, grad):
        grad = grad.contiguous().clone()
        dist.all_reduce(grad, group=ctx.group)
        return grad, None


class _ReduceFromRanks(Function):
    @staticmethod
    def forward(ctx, x, group):
        out = x.contiguous().clone()
        dist.all_reduce(out, group=group)
        return out

    @staticmethod
    def backward(ctx, grad):
        return grad, None


class _MaxFromRanks(Function):
    @staticmethod
    def forward(ctx, x, group):
        out = x.contiguous().clone()
        dist.all_reduce(out, op=dist.ReduceOp.MAX, group=group)
        ctx.save_for_backward((x == out).to(x.dtype))
        return out

    @staticmethod
    def backward(ctx, grad):
        (held,) = ctx.saved_tensors
        return grad * held, None


class _GatherFromRanks(Function):
    @staticmethod
    def forward(ctx, x, sizes, order, dim, group):
        # sizes[r]: group rank r's extent along dim; order: the group ranks by offset.
        # Shards may be uneven, so all_gather runs on copies padded to the largest.
        rank = dist.get_rank(group)
        ctx.dim = dim
        ctx.start = sum(sizes[r] for r in order[:order.index(rank)]) if sizes[rank] else 0
        ctx.size = sizes[rank]
        m = max(sizes)
        shape = list(x.shape)
        shape[dim] = m
        pad = _C.empty(tuple(shape), dtype=x.dtype, device=x.device)
        if x.shape[dim]:
            pad.narrow(dim, 0, x.shape[dim]).copy_(x)
        outs = [_C.empty(tuple(shape), dtype=x.dtype, device=x.device) for _ in sizes]
        dist.all_gather(outs, pad.contiguous(), group=group)
        pieces = [outs[r].narrow(dim, 0, sizes[r]) for r in order if sizes[r]]
        return _cat(pieces, dim)

    @staticmethod
    def backward(ctx, grad):
        return (grad.narrow(ctx.dim, ctx.start, ctx.size).contiguous(), None, None, None,
                None)


def _cat(pieces, dim):
    from .. import cat  # noqa: PLC0415 (the top-level namespace imports this layer)
    return cat(pieces, dim)


def copy_to_ranks(x, group):
    """``x`` (identity); backward sums the gradient over the ranks."""
    return _CopyToRanks.apply(x, group)


def reduce_from_ranks(x, group):
    """The sum over ranks of ``x``; backward passes the gradient through."""
    return _ReduceFromRanks.apply(x, group)


def max_from_ranks(x, group):
    """The elementwise max over ranks of ``x``; backward sends the gradient to the rank(s)
    holding the max (a tie between ranks gives each of them the gradient)."""
    return _MaxFromRanks.apply(x, group)


def gather_from_ranks(x, sizes, order, dim, group):
    """Every rank's ``x`` concatenated along ``dim`` (group rank r contributes ``sizes[r]``
    along dim; ``order`` lists the group ranks in the concatenation order; ranks with size
    0 contribute nothing); backward keeps this rank's slice."""
    return _GatherFromRanks.apply(x, list(sizes), list(order), dim, group)
