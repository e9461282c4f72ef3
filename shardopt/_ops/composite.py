"""Everyday torch tensor methods and functions composed from shardopt's own ops.

``x.T``, ``x.all()``, ``x.isnan()``, ``x.var(dim)``, ``x.repeat(2, 1)``, ``shardopt.flatten(x)``
and their kind are one line of views, comparisons, reductions or indexing each in torch's
own decompositions; here they are exactly that, so autograd, devices, dtype rules and error
messages come from the ops underneath and none of them has a kernel or a backward of its
own.  Each function looks its building blocks up on the tensor when called, so it uses the
differentiable methods the autograd layer installs over the raw ones.  torch's messages are
kept where the composition would otherwise say something else (``mT`` on a vector,
``repeat`` with too few sizes, ``var`` on an integer tensor).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import builtins as _builtins
import math as _math
import warnings as _warnings

from .. import _C

if TYPE_CHECKING:
    from .._tensor import Tensor

__all__ = ["all", "any", "isnan", "isinf", "isfinite", "flip", "std", "var", "unbind",
           "amax", "amin", "masked_select", "roll", "reshape", "squeeze", "unsqueeze",
           "transpose", "swapaxes", "swapdims", "permute", "flatten", "t", "numel",
           "is_tensor", "broadcast_to", "outer", "linspace", "logical_and", "logical_or",
           "logical_xor", "logical_not", "bitwise_and", "bitwise_or", "bitwise_xor",
           "bitwise_not", "tile", "movedim", "moveaxis", "diff", "count_nonzero", "nan_to_num",
           "meshgrid", "cdist", "diag"]

_TB = _C.TensorBase
_WARNED = set()


def _warn_once(msg) -> None:
    """torch's TORCH_WARN_ONCE: a UserWarning the first time per process."""
    if msg not in _WARNED:
        _WARNED.add(msg)
        _warnings.warn(msg, UserWarning, stacklevel=3)


def _dims(self, dim) -> tuple[int, ...]:
    """``dim`` (None, an int or a sequence) as sorted non-negative dims of ``self``."""
    nd = self.ndim
    if dim is None:
        return tuple(range(nd))
    ds = (dim,) if isinstance(dim, int) else tuple(dim)
    out = []
    for d in ds:
        lim = _builtins.max(nd, 1)
        if not -lim <= d < lim:
            raise IndexError(f"Dimension out of range (expected to be in range of "
                             f"[{-lim}, {lim - 1}], but got {d})")
        out.append(d % lim if nd else 0)
    if len(set(out)) != len(out):
        raise RuntimeError(f"dim {out[0]} appears multiple times in the list of dims")
    return tuple(sorted(out))


# ------------------------------------------------------------------ transposes


def _T(self) -> Tensor:
    nd = self.ndim
    if nd == 2:
        return self.t()
    if nd == 0:
        _warn_once("Tensor.T is deprecated on 0-D tensors. This function is the identity in "
                   "these cases.")
    else:
        _warn_once("The use of `x.T` on tensors of dimension other than 2 to reverse their "
                   "shape is deprecated and it will throw an error in a future release. "
                   "Consider `x.mT` to transpose batches of matrices or `x.permute(*torch."
                   "arange(x.ndim - 1, -1, -1))` to reverse the dimensions of a tensor.")
    return self.permute(tuple(range(nd - 1, -1, -1)))


def _batch_transpose(self, name) -> Tensor:
    nd = self.ndim
    if nd == 0:
        _warn_once(f"Tensor.{name} is deprecated on 0-D tensors. "
                   + ("This function is the identity in these cases." if name == "mT"
                      else "Consider using x.conj()."))
        return self.permute(())
    if nd < 2:
        raise RuntimeError(f"tensor.{name} is only supported on matrices or batches of "
                           f"matrices. Got {nd}-D tensor.")
    return self.transpose(-2, -1)


def _mT(self) -> Tensor:
    return _batch_transpose(self, "mT")


def _mH(self) -> Tensor:
    return _batch_transpose(self, "mH").conj()


def _H(self) -> Tensor:
    nd = self.ndim
    if nd == 0:
        _warn_once("Tensor.H is deprecated on 0-D tensors. Consider using x.conj().")
        return self.conj()
    if nd != 2:
        hint = " For batches of matrices, consider using tensor.mH" if nd > 2 else ""
        raise RuntimeError(f"tensor.H is only supported on matrices (2-D tensors). Got "
                           f"{nd}-D tensor.{hint}")
    return self.t().conj()


def t(input) -> Tensor:
    """The transpose of a tensor of at most 2 dims (``input.t()``)."""
    return input.t()


def transpose(input, dim0, dim1) -> Tensor:
    """A view with ``dim0`` and ``dim1`` swapped."""
    return input.transpose(dim0, dim1)


swapaxes = swapdims = transpose


def _swapaxes(self, dim0, dim1) -> Tensor:
    return self.transpose(dim0, dim1)


def permute(input, dims) -> Tensor:
    """A view with the dims reordered."""
    return input.permute(tuple(dims))


def reshape(input, shape) -> Tensor:
    """``input.reshape(shape)``: a view when the strides allow, else a copy."""
    return input.reshape(tuple(shape) if not isinstance(shape, int) else (shape,))


def squeeze(input, dim=None) -> Tensor:
    """Drop size-1 dims (all of them, or ``dim``)."""
    return input.squeeze() if dim is None else input.squeeze(dim)


def unsqueeze(input, dim) -> Tensor:
    """A view with a size-1 dim inserted at ``dim``."""
    return input.unsqueeze(dim)


def flatten(input, start_dim=0, end_dim=-1) -> Tensor:
    """Merge dims ``start_dim``..``end_dim`` into one."""
    return input.flatten(start_dim, end_dim)


def broadcast_to(input, size) -> Tensor:
    """``input.expand(size)``: a view broadcast to ``size``."""
    return input.expand(tuple(size))


# ------------------------------------------------------------------ shapes of others


def _view_as(self, other) -> Tensor:
    return self.view(other.size())


def _expand_as(self, other) -> Tensor:
    return self.expand(other.size())


def _reshape_as(self, other) -> Tensor:
    return self.reshape(other.size())


def numel(input) -> int:
    """The number of elements."""
    if not isinstance(input, _TB):
        raise TypeError(f"numel(): argument 'input' (position 1) must be Tensor, not "
                        f"{type(input).__name__}")
    return input.numel()


def _nelement(self) -> int:
    return self.numel()


def is_tensor(obj) -> bool:
    """True when ``obj`` is a shardopt tensor (of any subclass)."""
    return isinstance(obj, _TB)


_TYPE_DTYPES = {"FloatTensor": "float32", "DoubleTensor": "float64", "HalfTensor": "float16",
                "BFloat16Tensor": "bfloat16", "IntTensor": "int32", "LongTensor": "int64",
                "BoolTensor": "bool"}


def _type(self, dtype=None, non_blocking=False, **kwargs):
    """No argument: the type name ('shardopt.FloatTensor'); a dtype or such a name: a
    cast (the tensor itself when nothing changes), as torch's Tensor.type."""
    from ..autograd.graph import type_string
    if dtype is None:
        return type_string(self)
    if isinstance(dtype, str):
        name = dtype.rsplit(".", 1)[-1]
        if name not in _TYPE_DTYPES:
            raise ValueError(f"invalid type: '{dtype}'")
        dev = "cuda" if ".cuda." in dtype else "cpu"
        target = getattr(_C, _TYPE_DTYPES[name])
        if self.dtype == target and self.device.type == dev:
            return self
        return self.to(device=dev, dtype=target, non_blocking=non_blocking)
    if self.dtype == dtype:
        return self
    return self.to(dtype, non_blocking=non_blocking)


# ------------------------------------------------------------------ logical reductions


def all(input, dim=None, keepdim=False) -> Tensor:  # noqa: A001
    """True where every element (over ``dim``, or all of them) is non-zero; a bool
    tensor.  NaN counts as non-zero, as in torch."""
    zeros = input == 0
    if dim is None:
        return zeros.sum() == 0
    return zeros.sum(dim=dim, keepdim=keepdim) == 0


def any(input, dim=None, keepdim=False) -> Tensor:  # noqa: A001
    """True where some element (over ``dim``, or any at all) is non-zero; a bool tensor."""
    nonzero = input != 0
    if dim is None:
        return nonzero.sum() > 0
    return nonzero.sum(dim=dim, keepdim=keepdim) > 0


def isnan(input) -> Tensor:
    """Bool tensor, True at NaN elements (never for integer tensors)."""
    return input != input


def isinf(input) -> Tensor:
    """Bool tensor, True at +inf and -inf."""
    if not input.is_floating_point() and not input.is_complex():
        return input != input
    return input.abs() == _math.inf


def isfinite(input) -> Tensor:
    """Bool tensor, True where the element is neither inf nor NaN."""
    if not input.is_floating_point() and not input.is_complex():
        return input == input
    return (input - input) == 0  # inf - inf and NaN - NaN are NaN


# ------------------------------------------------------------------ statistics


def var(input, dim=None, unbiased=None, keepdim=False, *, correction=None) -> Tensor:
    """Variance over ``dim`` (None: all elements) with Bessel's ``correction`` (default 1;
    the legacy ``unbiased=False`` means 0): sum((x - mean)^2) / max(0, N - correction)."""
    if isinstance(dim, bool):  # torch's legacy var(unbiased) overload
        dim, unbiased = None, dim
    if correction is not None and unbiased is not None:
        raise RuntimeError("var(): can't specify both correction and unbiased")
    if not input.is_floating_point():
        raise RuntimeError(f"std and var only support floating point and complex dtypes, got "
                           f"{str(input.dtype).rsplit('.', 1)[-1]}")
    c = correction if correction is not None else (1 if unbiased is None or unbiased else 0)
    dims = _dims(input, dim)
    n = 1
    for d in dims:
        n *= input.shape[d] if input.ndim else 1
    if dim is None:
        dev = input - input.mean()
        ss = (dev * dev).sum()
        if keepdim:
            ss = ss.reshape((1,) * input.ndim)
    else:
        dev = input - input.mean(dim=dims, keepdim=True)
        ss = (dev * dev).sum(dim=dims, keepdim=keepdim)
    dof = n - c
    if dof <= 0:
        _warnings.warn("var(): degrees of freedom is <= 0. Correction should be strictly less "
                       "than the reduction factor (input numel divided by output numel).",
                       UserWarning, stacklevel=2)
        dof = 0
    return ss / float(dof)


def std(input, dim=None, unbiased=None, keepdim=False, *, correction=None) -> Tensor:
    """Standard deviation: ``var(...).sqrt()`` with the same arguments."""
    if isinstance(dim, bool):
        dim, unbiased = None, dim
    return var(input, dim, unbiased, keepdim, correction=correction).sqrt()


def _extreme(input, dim, keepdim, which) -> Tensor:
    dims = () if dim is None or dim == () else _dims(input, dim)
    if not dims:
        out = input.max() if which == "max" else input.min()
        return out.reshape((1,) * input.ndim) if keepdim else out
    out = input
    for d in reversed(dims):
        out = (out.max(dim=d, keepdim=True) if which == "max"
               else out.min(dim=d, keepdim=True)).values
    if not keepdim:
        for d in reversed(dims):
            out = out.squeeze(d)
    return out


def amax(input, dim=(), keepdim=False) -> Tensor:
    """Maximum over ``dim`` (an int or a tuple; () or None: every element)."""
    return _extreme(input, dim, keepdim, "max")


def amin(input, dim=(), keepdim=False) -> Tensor:
    """Minimum over ``dim`` (an int or a tuple; () or None: every element)."""
    return _extreme(input, dim, keepdim, "min")


# ------------------------------------------------------------------ rearranging


def flip(input, dims) -> Tensor:
    """A copy with the order of elements reversed along each of ``dims``."""
    from .creation import arange
    out = input
    for d in _dims(input, dims):
        n = input.shape[d]
        out = out.index_select(d, arange(n - 1, -1, -1, device=input.device))
    return out if out is not input else input.clone()


def roll(input, shifts, dims=None) -> Tensor:
    """Rotate elements along ``dims`` by ``shifts`` (both ints or equal-length sequences);
    without ``dims`` the flattened tensor is rotated and the shape restored."""
    from .. import cat  # the differentiable one (resolved at call time)
    if dims is None:
        if not isinstance(shifts, int):
            if len(shifts) != 1:
                raise RuntimeError(f"`shifts` required to be of length 1 when `dims` is "
                                   f"not specified, got {len(shifts)}")
            shifts = shifts[0]
        return roll(input.flatten(), shifts, 0).view(input.shape)
    shifts = (shifts,) if isinstance(shifts, int) else tuple(shifts)
    dims = (dims,) if isinstance(dims, int) else tuple(dims)
    if len(shifts) != len(dims):
        raise RuntimeError(f"shifts and dimensions must align. shifts: {len(shifts)}, "
                           f"dims:{len(dims)}")
    out = input
    for s, d in zip(shifts, dims):
        d = _dims(input, d)[0]
        n = input.shape[d]
        if n == 0 or s % n == 0:
            continue
        s %= n
        out = cat([out.narrow(d, n - s, s), out.narrow(d, 0, n - s)], d)
    return out if out is not input else input.clone()


def _repeat(self, *sizes) -> Tensor:
    if len(sizes) == 1 and not isinstance(sizes[0], int):
        sizes = tuple(sizes[0])
    nd = self.ndim
    if len(sizes) < nd:
        raise RuntimeError("Number of dimensions of repeat dims can not be smaller than "
                           "number of dimensions of tensor")
    if _builtins.any(r < 0 for r in sizes):
        raise RuntimeError(f"Trying to create tensor with negative dimension "
                           f"{_builtins.min(sizes)}: {list(sizes)}")
    shape = (1,) * (len(sizes) - nd) + tuple(self.shape)
    inter, big, final = [], [], []
    for r, s in zip(sizes, shape):
        inter += [1, s]
        big += [r, s]
        final.append(r * s)
    return self.reshape(tuple(inter)).expand(tuple(big)).reshape(tuple(final))


def unbind(input, dim=0) -> tuple[Tensor, ...]:
    """The slices along ``dim``, as views without that dim."""
    d = _dims(input, dim)[0]
    return tuple(input.select(d, i) for i in range(input.shape[d]))


def masked_select(input, mask) -> Tensor:
    """The elements where the bool ``mask`` (broadcast with ``input``) is True, as 1-D."""
    if not isinstance(mask, _TB) or mask.dtype != _C.bool:
        raise RuntimeError(f"masked_select: expected BoolTensor for mask, got "
                           f"{getattr(mask, 'dtype', type(mask).__name__)}")
    shape = _broadcast_shape(input.shape, mask.shape)
    return input.expand(shape)[mask.expand(shape)]


def _broadcast_shape(a, b) -> tuple[int, ...]:
    n = _builtins.max(len(a), len(b))
    a, b = (1,) * (n - len(a)) + tuple(a), (1,) * (n - len(b)) + tuple(b)
    out = []
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y and 1 not in (x, y):
            raise RuntimeError(f"The size of tensor a ({x}) must match the size of tensor b "
                               f"({y}) at non-singleton dimension {i}")
        out.append(y if x == 1 else x)
    return tuple(out)


def outer(input, vec2) -> Tensor:
    """The outer product of two vectors: out[i, j] = input[i] * vec2[j]."""
    if input.ndim != 1 or vec2.ndim != 1:
        raise RuntimeError(f"outer: expected 1-D tensors, got {input.ndim}-D and "
                           f"{vec2.ndim}-D")
    return input.unsqueeze(1) * vec2.unsqueeze(0)


def linspace(start, end, steps, *, out=None, dtype=None, layout=None, device=None,
             requires_grad=False) -> Tensor:
    """``steps`` evenly spaced values from ``start`` to ``end`` inclusive; as torch, the
    first half counts up from ``start`` and the second half down from ``end``, so both
    ends are exact."""
    from .creation import arange, empty
    if out is not None:
        raise TypeError("linspace(): out= is not supported")
    if not isinstance(steps, int) or isinstance(steps, bool):
        raise TypeError(f"linspace(): argument 'steps' must be int, not {type(steps).__name__}")
    if steps < 0:
        raise RuntimeError("linspace(): number of steps must be non-negative")
    dt = dtype if dtype is not None else _C.float32
    if steps == 0:
        res = empty(0, dtype=dt, device=device)
    elif steps == 1:
        res = empty(1, dtype=dt, device=device).fill_(start)
    else:
        from .. import where  # the differentiable one (resolved at call time)
        step = (end - start) / (steps - 1)
        i = arange(steps, dtype=_C.float64, device=device)
        lo = i * step + start
        hi = (i - (steps - 1)) * step + end
        res = where(i < steps // 2, lo, hi).to(dt)
    if requires_grad:
        res.requires_grad_(True)
    return res


# ------------------------------------------------------------------ more of torch's namespace


def tile(input, dims) -> Tensor:
    """``input.repeat(dims)`` with leading 1s added when ``dims`` is shorter than the rank."""
    dims = (dims,) if isinstance(dims, int) else tuple(dims)
    dims = (1,) * (input.ndim - len(dims)) + dims
    return _repeat(input, *dims)


def movedim(input, source, destination) -> Tensor:
    """A view with the dims in ``source`` moved to the positions in ``destination``."""
    src = (source,) if isinstance(source, int) else tuple(source)
    dst = (destination,) if isinstance(destination, int) else tuple(destination)
    if len(src) != len(dst):
        raise RuntimeError(f"movedim: Invalid source or destination dims: source ({list(src)} "
                           f"dims) should contain the same number of dims as destination "
                           f"({list(dst)} dims)")
    nd = input.ndim
    src = [s % _builtins.max(nd, 1) for s in src]
    dst = [d % _builtins.max(nd, 1) for d in dst]
    order = [None] * nd
    for s_, d_ in zip(src, dst):
        order[d_] = s_
    rest = iter(d for d in range(nd) if d not in src)
    order = [next(rest) if o is None else o for o in order]
    return input.permute(tuple(order))


moveaxis = movedim


def diff(input, n=1, dim=-1, prepend=None, append=None) -> Tensor:
    """The n-th forward difference along ``dim`` (with ``prepend``/``append`` joined first)."""
    from .. import cat  # the differentiable one (resolved at call time)
    if n < 0:
        raise RuntimeError(f"order must be non-negative but got {n}")
    d = _dims(input, dim)[0]
    x = input
    if prepend is not None or append is not None:
        parts = [p for p in (prepend, x, append) if p is not None]
        x = cat(parts, d)
    for _ in range(n):
        m = x.shape[d]
        if m <= 1:
            return x.narrow(d, 0, 0)
        x = x.narrow(d, 1, m - 1) - x.narrow(d, 0, m - 1)
    return x


def count_nonzero(input, dim=None) -> Tensor:
    """The number of non-zero elements (over ``dim``: an int or a tuple), as int64."""
    nz = input != 0
    return nz.sum() if dim is None else nz.sum(dim=dim)


_FLOAT_MAX = {"float32": 3.4028234663852886e38, "float64": 1.7976931348623157e308,
              "float16": 65504.0, "bfloat16": 3.3895313892515355e38}


def nan_to_num(input, nan=0.0, posinf=None, neginf=None) -> Tensor:
    """NaN -> ``nan``, +inf -> ``posinf``, -inf -> ``neginf`` (default: the dtype's largest
    and lowest finite values); integer tensors come back unchanged (a copy)."""
    if not input.is_floating_point():
        return input.clone()
    from .. import where  # the differentiable one (resolved at call time)
    big = _FLOAT_MAX[str(input.dtype).rsplit(".", 1)[-1]]
    hi = big if posinf is None else posinf
    lo = -big if neginf is None else neginf
    out = where(input != input, nan, input)
    out = where(out == _math.inf, hi, out)
    return where(out == -_math.inf, lo, out)


def meshgrid(*tensors, indexing=None) -> tuple[Tensor, ...]:
    """Grids from 1-D tensors: 'ij' (matrix indexing, torch's default) or 'xy'."""
    if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)):
        tensors = tuple(tensors[0])
    if indexing is None:
        _warn_once("torch.meshgrid: in an upcoming release, it will be required to pass the "
                   "indexing argument.")
        indexing = "ij"
    if indexing not in ("ij", "xy"):
        raise RuntimeError(f"torch.meshgrid: indexing must be one of \"xy\" or \"ij\", but "
                           f"received: {indexing}")
    for t_ in tensors:
        if t_.ndim > 1:
            raise RuntimeError(f"torch.meshgrid: Expected 0D or 1D tensor in the tensor list "
                               f"but got: {t_.ndim}D")
    ts = [t_.reshape(-1) for t_ in tensors]
    swap = indexing == "xy" and len(ts) >= 2
    if swap:
        ts[0], ts[1] = ts[1], ts[0]
    shape = tuple(t_.shape[0] for t_ in ts)
    out = []
    for i, t_ in enumerate(ts):
        view = [1] * len(ts)
        view[i] = shape[i]
        out.append(t_.reshape(tuple(view)).expand(shape))
    if swap:  # 'xy' is 'ij' of the first two inputs swapped, outputs swapped back
        out[0], out[1] = out[1], out[0]
    return tuple(out)


def cdist(x1, x2, p=2.0, compute_mode=None) -> Tensor:
    """p-norm distances between each row of x1 (..., P, M) and each row of x2 (..., R, M):
    a (..., P, R) tensor.  Computed from the differences themselves (exact for p = 2 too,
    at the cost of a (..., P, R, M) temporary)."""
    if x1.ndim < 2 or x2.ndim < 2:
        raise RuntimeError(f"cdist only supports at least 2D tensors, X1 got: {x1.ndim}D")
    if x1.shape[-1] != x2.shape[-1]:
        raise RuntimeError(f"X1 and X2 must have the same number of columns. X1: "
                           f"{x1.shape[-1]} X2: {x2.shape[-1]}")
    if p < 0:
        raise RuntimeError("cdist only supports non-negative p values")
    d = (x1.unsqueeze(-2) - x2.unsqueeze(-3)).abs()
    if p == 2.0:
        return (d * d).sum(dim=-1).sqrt()
    if p == 1.0:
        return d.sum(dim=-1)
    if _math.isinf(p):
        return d.max(dim=-1).values
    if p == 0:
        return (d != 0).sum(dim=-1).to(x1.dtype)
    return (d ** p).sum(dim=-1) ** (1.0 / p)


def diag(input, diagonal=0) -> Tensor:
    """1-D input: a square matrix with ``input`` on its ``diagonal``-th diagonal; 2-D input:
    that diagonal as a 1-D copy."""
    from .creation import arange, zeros
    k = diagonal
    if input.ndim == 1:
        n = input.shape[0]
        size = n + abs(k)
        out = zeros(size, size, dtype=input.dtype, device=input.device)
        if n == 0:
            return out
        i = arange(n, device=input.device)
        rows, cols = (i, i + k) if k >= 0 else (i - k, i)
        return out.index_put((rows, cols), input)  # differentiable in input's values
    if input.ndim == 2:
        r, c = input.shape
        n = _builtins.max(0, _builtins.min(r, c - k) if k >= 0 else _builtins.min(r + k, c))
        i = arange(n, device=input.device)
        return input[i, i + k] if k >= 0 else input[i - k, i]
    raise RuntimeError(f"diag(): Supports 1D or 2D tensors. Got {input.ndim}D")


# ------------------------------------------------------------------ logical and bitwise


def _truth(x) -> Tensor:
    """x as a bool tensor (non-zero is True), numbers and bools included."""
    if isinstance(x, _TB):
        return x if x.dtype == _C.bool else x != 0
    from .creation import tensor
    return tensor(_builtins.bool(x))


def logical_and(input, other) -> Tensor:
    """Elementwise ``input and other`` (non-zero is True), broadcast; a bool tensor."""
    a, b = _truth(input), _truth(other)
    return (a.long() * b.long()) != 0


def logical_or(input, other) -> Tensor:
    """Elementwise ``input or other`` (non-zero is True), broadcast; a bool tensor."""
    a, b = _truth(input), _truth(other)
    return (a.long() + b.long()) != 0


def logical_xor(input, other) -> Tensor:
    """Elementwise exclusive or of the truth values, broadcast; a bool tensor."""
    return _truth(input) != _truth(other)


def logical_not(input) -> Tensor:
    """Elementwise ``not input`` (zero is True); a bool tensor."""
    return _truth(input) == 0


def _need_bool(name, *xs) -> None:
    for x in xs:
        if isinstance(x, _TB) and x.dtype != _C.bool:
            raise RuntimeError(f"\"{name}\" is implemented for bool tensors only in shardopt "
                               f"(got {str(x.dtype).rsplit('.', 1)[-1]}); for integer bits "
                               f"there is no kernel, and torch refuses floating dtypes")
        if not isinstance(x, (_TB, _builtins.bool)):
            raise TypeError(f"{name}(): unsupported operand type {type(x).__name__}")


def bitwise_and(input, other) -> Tensor:
    """``input & other`` for bool tensors (masks)."""
    _need_bool("bitwise_and", input, other)
    return logical_and(input, other)


def bitwise_or(input, other) -> Tensor:
    """``input | other`` for bool tensors (masks)."""
    _need_bool("bitwise_or", input, other)
    return logical_or(input, other)


def bitwise_xor(input, other) -> Tensor:
    """``input ^ other`` for bool tensors (masks)."""
    _need_bool("bitwise_xor", input, other)
    return logical_xor(input, other)


def bitwise_not(input) -> Tensor:
    """``~input`` for bool tensors (masks)."""
    _need_bool("bitwise_not", input)
    return logical_not(input)


def _binary_dunder(fn, reflected=False):
    def method(self, other):
        if not isinstance(other, (_TB, _builtins.bool)):
            return NotImplemented
        return fn(other, self) if reflected else fn(self, other)
    return method


def _inplace_dunder(fn):
    def method(self, other):
        return self.copy_(fn(self, other))
    return method


TENSOR_METHODS = {
    "logical_and": logical_and, "logical_or": logical_or, "logical_xor": logical_xor,
    "logical_not": logical_not, "bitwise_and": bitwise_and, "bitwise_or": bitwise_or,
    "bitwise_xor": bitwise_xor, "bitwise_not": bitwise_not,
    "__and__": _binary_dunder(bitwise_and), "__rand__": _binary_dunder(bitwise_and, True),
    "__or__": _binary_dunder(bitwise_or), "__ror__": _binary_dunder(bitwise_or, True),
    "__xor__": _binary_dunder(bitwise_xor), "__rxor__": _binary_dunder(bitwise_xor, True),
    "__iand__": _inplace_dunder(bitwise_and), "__ior__": _inplace_dunder(bitwise_or),
    "__ixor__": _inplace_dunder(bitwise_xor), "__invert__": bitwise_not,

    "all": all, "any": any, "isnan": isnan, "isinf": isinf, "isfinite": isfinite,
    "flip": flip, "var": var, "std": std, "amax": amax, "amin": amin, "roll": roll,
    "unbind": unbind, "masked_select": masked_select, "outer": outer,
    "repeat": _repeat, "view_as": _view_as, "expand_as": _expand_as,
    "reshape_as": _reshape_as, "nelement": _nelement, "type": _type,
    "swapaxes": _swapaxes, "swapdims": _swapaxes, "tile": tile, "movedim": movedim,
    "moveaxis": movedim, "diff": diff, "count_nonzero": count_nonzero, "nan_to_num": nan_to_num,
    "diag": diag,
    "T": property(_T), "mT": property(_mT), "H": property(_H), "mH": property(_mH),
}
