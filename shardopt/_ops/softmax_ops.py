"""softmax, log_softmax and logsumexp: torch's signatures and dtype rules over the C kernels
(csrc/ops/softmax*.c, softmax.cu), differentiable through ``autograd.Function``.

The kernels compute in float32 / float64; float16 / bfloat16 inputs are computed in float32
and rounded back (torch's CPU opmath does the same), ``dtype=`` casts the input first.
"""
import builtins as _builtins

from .. import _C
from ..autograd.function import Function

__all__ = ["softmax", "log_softmax", "logsumexp"]

_TB = _C.TensorBase
_HALF = (_C.float16, _C.bfloat16)
_NAMES = {_C.int32: "Int", _C.int64: "Long", _C.bool: "Bool"}
_CPP_NAMES = {_C.float32: "float", _C.float64: "double", _C.float16: "c10::Half",
              _C.bfloat16: "c10::BFloat16"}


def _check_input(input, fname):
    if not isinstance(input, _TB):
        raise TypeError(f"{fname}(): argument 'input' (position 1) must be Tensor, not "
                        f"{type(input).__name__}")


def _check_dim(dim, fname):
    if isinstance(dim, _builtins.bool) or not isinstance(dim, int):
        raise TypeError(f"{fname}(): argument 'dim' must be int, not {type(dim).__name__}")


def _wrap(dim, ndim):
    n = _builtins.max(ndim, 1)
    if not -n <= dim < n:
        raise IndexError(f"Dimension out of range (expected to be in range of [{-n}, {n - 1}], "
                         f"but got {dim})")
    return dim + n if dim < 0 else dim


class _Softmax(Function):
    @staticmethod
    def forward(ctx, input, dim, log):
        out = _C._softmax(input, dim, log)
        ctx.dim, ctx.log = dim, log
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        out, = ctx.saved_tensors
        return _C._softmax_backward(out, grad, ctx.dim, ctx.log), None, None


class Softmax(_Softmax):
    """Node name SoftmaxBackward (torch: SoftmaxBackward0)."""


class LogSoftmax(_Softmax):
    """Node name LogSoftmaxBackward (torch: LogSoftmaxBackward0)."""


def _softmax_impl(input, dim, dtype, log, out=None):
    fname = "log_softmax" if log else "softmax"
    _check_input(input, fname)
    _check_dim(dim, fname)
    if dtype is not None:
        input = input.to(dtype)
    d = _wrap(dim, input.ndim)
    if not input.dtype.is_floating_point:
        last = "lastdim_" if d == _builtins.max(input.ndim, 1) - 1 else ""
        raise NotImplementedError(f'"{fname}_{last}kernel_impl" not implemented for '
                                  f"'{_NAMES.get(input.dtype, str(input.dtype))}'")
    if out is not None:
        from ..autograd import grad_mode
        if grad_mode.is_grad_enabled() and (input.requires_grad or out.requires_grad):
            raise RuntimeError(f"{fname}(): functions with out=... arguments don't support "
                               "automatic differentiation, but one of the arguments requires "
                               "grad.")
        if not isinstance(out, _TB):
            raise TypeError(f"{fname}(): argument 'out' must be Tensor, not "
                            f"{type(out).__name__}")
        if out.dtype != input.dtype:
            raise RuntimeError(f"Expected out tensor to have dtype "
                               f"{_CPP_NAMES.get(input.dtype, input.dtype)}, but got "
                               f"{_CPP_NAMES.get(out.dtype, out.dtype)} instead")
        if input.dtype in _HALF:
            out.copy_(_softmax_impl(input, d, None, log))
            return out
        return _C._softmax(input, d, log, out)
    half = input.dtype if input.dtype in _HALF else None
    if half is not None:
        input = input.float()
    res = (LogSoftmax if log else Softmax).apply(input, d, log)
    return res.to(half) if half is not None else res


def softmax(input, dim, dtype=None, *, out=None):
    """exp(x) / sum(exp(x)) along ``dim`` (computed as exp(x - max) / sum, so it never
    overflows); ``out`` receives the result (no autograd, as in torch)."""
    return _softmax_impl(input, dim, dtype, False, out)


def log_softmax(input, dim, dtype=None, *, out=None):
    """x - max - log(sum(exp(x - max))) along ``dim``: log(softmax(x)) without underflow;
    ``out`` receives the result (no autograd, as in torch)."""
    return _softmax_impl(input, dim, dtype, True, out)


class Logsumexp(Function):
    @staticmethod
    def forward(ctx, input, dim, keepdim):
        out = _C._logsumexp(input, dim, keepdim)
        ctx.dim, ctx.keepdim = dim, keepdim
        ctx.save_for_backward(input, out)
        return out

    @staticmethod
    def backward(ctx, grad):
        input, out = ctx.saved_tensors
        if not ctx.keepdim and input.ndim > 0:
            grad, out = grad.unsqueeze(ctx.dim), out.unsqueeze(ctx.dim)
        return grad * (input - out).exp(), None, None


def logsumexp(input, dim, keepdim=False):
    """log(sum(exp(input), dim)), stable for large inputs (shifted by the max; rows of
    -inf give -inf).  ``dim`` is an int or a tuple of ints; integer inputs give float32."""
    _check_input(input, "logsumexp")
    if isinstance(dim, list):
        dim = tuple(dim)
    if not isinstance(dim, tuple):
        _check_dim(dim, "logsumexp")
        dim = (dim,)
    nd = input.ndim
    dims = sorted({_wrap(d, nd) for d in dim}) if nd else [_wrap(d, nd) for d in dim][:1]
    if len(dims) != len(dim):
        raise RuntimeError(f"dim {dims[0]} appears multiple times in the list of dims")
    if not input.dtype.is_floating_point:
        input = input.to(_C.float32)
    half = input.dtype if input.dtype in _HALF else None
    if half is not None:
        input = input.float()
    if nd == 0 or len(dims) == 1:
        out = Logsumexp.apply(input, dims[0], keepdim)
    else:
        # several dims: move them last, flatten them into one, reduce that one
        keep = [d for d in range(nd) if d not in dims]
        shape = input.shape
        moved = input.permute(*(keep + dims))
        flat = moved.reshape(tuple(shape[d] for d in keep) + (-1,)) if keep else \
            moved.reshape(-1)
        out = Logsumexp.apply(flat, len(keep), False)
        if keepdim:
            out = out.reshape(tuple(1 if d in dims else shape[d] for d in range(nd)))
    return out.to(half) if half is not None else out


def _t_softmax(self, dim, dtype=None):
    return softmax(self, dim, dtype)


def _t_log_softmax(self, dim, dtype=None):
    return log_softmax(self, dim, dtype)


def _t_logsumexp(self, dim, keepdim=False):
    return logsumexp(self, dim, keepdim)


TENSOR_METHODS = {
    "softmax": _t_softmax,
    "log_softmax": _t_log_softmax,
    "logsumexp": _t_logsumexp,
}
