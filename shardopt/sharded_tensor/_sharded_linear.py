"""``F.linear`` / ``nn.Linear`` with a chunk-sharded weight (torch 1.13's
chunk_sharding_spec_ops/linear.py, with a replicated input and result).

The input is the same on every rank; the result is the full ``input @ weight.T + bias`` on
every rank (a plain Tensor), so the layers after it need no change.

* weight sharded on dim 0 (output features; rank r holds rows [o_r, o_r + n_r)): each
  rank computes its n_r output features, and an all_gather along the last dim assembles
  them.  Backward: each rank keeps its slice of dL/dy; dL/dinput sums every rank's part
  (one all_reduce, only when the input needs a gradient).
* weight sharded on dim 1 (input features; rank r holds columns [o_r, o_r + n_r)): each
  rank multiplies its columns of the input by its shard, and an all_reduce sums the
  partial products.  Backward: dL/dy passes through; dL/dinput, which each rank knows only
  for its columns, is summed over the ranks (one all_reduce, when needed).

The bias is replicated and added after the collective, so its gradient is the same on
every rank.  Gradients reach the local shard tensor (a leaf after ``shard_parameter``), so
``ShardedOptimizer`` steps it.
"""
from .. import _C
from ._chunk_layout import chunk_layout, empty_shard
from ._replicated import copy_to_ranks, gather_from_ranks, reduce_from_ranks
from ._shard_registry import _sharded_op_impl

__all__ = ["sharded_linear"]


def _args(args, kwargs):
    names = ("input", "weight", "bias")
    vals = dict(zip(names, args))
    for k, v in (kwargs or {}).items():
        if k not in names:
            raise TypeError(f"linear() got an unexpected keyword argument '{k}'")
        if k in vals:
            raise TypeError(f"linear() got multiple values for argument '{k}'")
        vals[k] = v
    for k in ("input", "weight"):
        if k not in vals:
            raise TypeError(f"linear() missing required argument '{k}'")
    return vals["input"], vals["weight"], vals.get("bias")


def sharded_linear(types, args, kwargs, pg):
    """y = input @ weight.T + bias for a ShardedTensor weight (see the module docstring)."""
    from ..nn import functional as F  # noqa: PLC0415 (shardopt.nn imports this layer)
    from .api import ShardedTensor  # noqa: PLC0415
    input, weight, bias = _args(args, kwargs)
    if isinstance(input, ShardedTensor) or isinstance(bias, ShardedTensor):
        raise NotImplementedError("linear: only the weight may be a ShardedTensor (input and "
                                  "bias are replicated Tensors)")
    if not isinstance(weight, ShardedTensor):
        raise TypeError(f"linear(): weight must be a ShardedTensor here, got "
                        f"{type(weight).__name__}")
    if not isinstance(input, _C.TensorBase):
        raise TypeError(f"linear(): argument 'input' must be a Tensor, got "
                        f"{type(input).__name__}")
    if bias is not None and not isinstance(bias, _C.TensorBase):
        raise TypeError(f"linear(): argument 'bias' must be a Tensor, got {type(bias).__name__}")
    lay = chunk_layout(weight, "linear")
    out_f, in_f = weight.size()
    if input.dim() == 0 or input.shape[-1] != in_f:
        shape = "x".join(str(s) for s in input.shape) or "scalar"
        raise RuntimeError(f"mat1 and mat2 shapes cannot be multiplied ({shape} and "
                           f"{in_f}x{out_f})")
    if input.dtype != weight.dtype:
        raise RuntimeError(f"expected m1 and m2 to have the same dtype, but got: "
                           f"{input.dtype} != {weight.dtype}")
    if bias is not None and tuple(bias.shape) not in ((out_f,), (1,), ()):
        raise RuntimeError(f"linear(): bias must have shape ({out_f},), got "
                           f"{tuple(bias.shape)}")
    w = lay.local if lay.local is not None else empty_shard(weight, lay.dim)
    x = copy_to_ranks(input, pg)
    if lay.dim == 0:
        out = gather_from_ranks(F.linear(x, w), lay.sizes, lay.order, input.dim() - 1, pg)
    else:
        x = x.narrow(-1, lay.offset, lay.size)
        out = reduce_from_ranks(F.linear(x, w), pg)
    return out if bias is None else out + bias


def _register():
    from ..nn import functional as F  # noqa: PLC0415
    _sharded_op_impl(F.linear)(sharded_linear)


_register()
