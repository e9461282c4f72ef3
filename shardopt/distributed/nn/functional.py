"""torch.distributed.nn.functional: collectives that autograd differentiates through.

Each function runs the collective of ``shardopt.distributed`` on a copy of its input and
returns new tensors whose backward is the adjoint collective, with torch's semantics (the
objective is the SUM of every rank's loss):

  all_reduce(SUM)    backward: all_reduce(SUM) of the gradient
  all_gather         backward: reduce-scatter (SUM) of the per-rank gradients
  reduce_scatter     backward: all_gather of the gradient
  all_to_all(_single) backward: the reverse all_to_all

Sharded ops that keep a REPLICATED result (every rank computes the same loss) need the
other pairing (forward all_reduce / backward identity ...): those are in
``shardopt/sharded_tensor/_replicated.py``.
"""
from typing import List, Optional, Sequence, Tuple

from ... import _C
from ...autograd import Function
from .. import distributed_c10d as dist
from ..distributed_c10d import ReduceOp

__all__ = ["all_reduce", "all_gather", "reduce_scatter", "all_to_all", "all_to_all_single"]


def _empty(shape, like):
    return _C.empty(tuple(shape), dtype=like.dtype, device=like.device)


def _need_tensor(t, fname, argname):
    if not isinstance(t, _C.TensorBase):
        raise TypeError(f"{fname}(): argument '{argname}' must be a Tensor, got "
                        f"{type(t).__name__}")


class _AllReduce(Function):
    @staticmethod
    def forward(ctx, op, group, tensor):
        ctx.group, ctx.op = group, op
        out = tensor.contiguous().clone()
        dist.all_reduce(out, op=op, group=group)
        return out

    @staticmethod
    def backward(ctx, grad):
        return None, None, _AllReduce.apply(ctx.op, ctx.group, grad)


class _AllGather(Function):
    @staticmethod
    def forward(ctx, group, tensor):
        ctx.group = group
        tensor = tensor.contiguous()
        outs = [_empty(tensor.shape, tensor) for _ in range(dist.get_world_size(group))]
        dist.all_gather(outs, tensor, group=group)
        return tuple(outs)

    @staticmethod
    def backward(ctx, *grads):
        out = _empty(grads[dist.get_rank(ctx.group)].shape, grads[0])
        return None, _ReduceScatter.apply(ReduceOp.SUM, ctx.group, out, *grads)


class _ReduceScatter(Function):
    @staticmethod
    def forward(ctx, op, group, output, *inputs):
        ctx.group = group
        n = output.numel()
        flat = _C.empty((n * len(inputs),), dtype=output.dtype, device=output.device)
        for i, t in enumerate(inputs):
            flat.narrow(0, i * n, n).copy_(t.reshape((n,)))
        dist.reduce_scatter_tensor(output, flat, op=op, group=group)
        return output

    @staticmethod
    def backward(ctx, grad):
        return (None, None, None) + _AllGather.apply(ctx.group, grad)


class _AllToAll(Function):
    @staticmethod
    def forward(ctx, group, out_list, *inputs):
        ctx.group = group
        ctx.in_shapes = [t.shape for t in inputs]
        dist.all_to_all(list(out_list), [t.contiguous() for t in inputs], group=group)
        return tuple(out_list)

    @staticmethod
    def backward(ctx, *grads):
        back = [_empty(s, grads[0]) for s in ctx.in_shapes]
        return (None, None) + _AllToAll.apply(ctx.group, back, *grads)


class _AllToAllSingle(Function):
    @staticmethod
    def forward(ctx, group, output, output_split_sizes, input_split_sizes, input):
        ctx.group = group
        ctx.in_shape = input.shape
        ctx.splits = (input_split_sizes, output_split_sizes)  # reversed for backward
        dist.all_to_all_single(output, input.contiguous(), output_split_sizes,
                               input_split_sizes, group=group)
        return output

    @staticmethod
    def backward(ctx, grad):
        back = _empty(ctx.in_shape, grad)
        out_s, in_s = ctx.splits
        return (None, None, None, None,
                _AllToAllSingle.apply(ctx.group, back, out_s, in_s, grad.contiguous()))


def all_reduce(tensor, op=ReduceOp.SUM, group=None):
    """Reduce ``tensor`` over the group; returns a new tensor (the input is not modified).

    Args:
        tensor: this rank's contribution.
        op: a ``ReduceOp``; backward all-reduces the gradient with the same op (torch's
            rule, exact for SUM).
        group: the process group (default: the world).
    """
    _need_tensor(tensor, "all_reduce", "tensor")
    return _AllReduce.apply(op, group, tensor)


def all_gather(tensor, group=None) -> Tuple:
    """Every rank's ``tensor``, as a tuple indexed by group rank.

    Args:
        tensor: this rank's tensor (same shape and dtype on every rank).
        group: the process group (default: the world).
    """
    _need_tensor(tensor, "all_gather", "tensor")
    return _AllGather.apply(group, tensor)


def reduce_scatter(output, input_list: Sequence, op=ReduceOp.SUM, group=None):
    """``output`` = the reduction over ranks of each rank's ``input_list[rank]``.

    Args:
        output: the tensor to fill (returned).
        input_list: one tensor per rank, each with ``output``'s number of elements.
        op: a ``ReduceOp``.
        group: the process group (default: the world).
    """
    _need_tensor(output, "reduce_scatter", "output")
    n = output.numel()
    for i, t in enumerate(input_list):
        _need_tensor(t, "reduce_scatter", f"input_list[{i}]")
        if t.numel() != n:
            raise ValueError(f"reduce_scatter(): input_list[{i}] has {t.numel()} elements, "
                             f"output has {n}")
    if len(input_list) != dist.get_world_size(group):
        raise ValueError(f"reduce_scatter(): input_list must hold {dist.get_world_size(group)} "
                         f"tensors (the group size), got {len(input_list)}")
    return _ReduceScatter.apply(op, group, output, *input_list)


def all_to_all(output_tensor_list: List, input_tensor_list: List, group=None) -> Tuple:
    """Send ``input_tensor_list[j]`` to rank j, receive rank j's into
    ``output_tensor_list[j]``; returns the outputs as a tuple.

    Args:
        output_tensor_list: one tensor per rank, to fill.
        input_tensor_list: one tensor per rank, to send.
        group: the process group (default: the world).
    """
    return _AllToAll.apply(group, list(output_tensor_list), *input_tensor_list)


def all_to_all_single(output, input, output_split_sizes: Optional[List[int]] = None,
                      input_split_sizes: Optional[List[int]] = None, group=None):
    """Split ``input`` along dim 0 by ``input_split_sizes``, send piece j to rank j, and
    concatenate what arrives into ``output`` (split by ``output_split_sizes``).

    Args:
        output: the tensor to fill (returned).
        input: the tensor to scatter.
        output_split_sizes: rows received from each rank (None: equal split).
        input_split_sizes: rows sent to each rank (None: equal split).
        group: the process group (default: the world).
    """
    _need_tensor(output, "all_to_all_single", "output")
    _need_tensor(input, "all_to_all_single", "input")
    return _AllToAllSingle.apply(group, output, output_split_sizes, input_split_sizes, input)
