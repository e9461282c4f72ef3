"""Complex tensors: arithmetic composed from the real kernels over ``view_as_real``.

The C kernels are real-only.  A complex64 / complex128 tensor is stored as interleaved
(re, im) pairs, so ``_C._view_as_real`` sees it as a float tensor with a trailing dimension
of 2 without copying.  The elementwise bindings hand any call with a complex operand to
``_dispatch`` (registered with ``_C._set_complex_ops``); the ops torch users need on complex
tensors (add, sub, mul, div, neg, abs, eq/ne, equal, isclose/allclose) are written here from
real ops, and every other op raises a RuntimeError naming the complex dtype.  Creation,
copies, views, cat/stack, sum/mean, pickling and collectives handle complex in C.
"""

from __future__ import annotations

import builtins
import numbers

from .. import _C

__all__ = ["view_as_real", "view_as_complex", "complex", "real", "imag", "conj",
           "is_complex", "promote_types", "result_type", "resolve_conj", "conj_physical"]

_TORCH_NAME = {"complex64": "ComplexFloat", "complex128": "ComplexDouble"}


def view_as_real(input):
    """The (..., 2) float view of a complex tensor (shares storage)."""
    return _C._view_as_real(input)


def view_as_complex(input):
    """The complex view of a float32/float64 tensor whose last dimension is (re, im)."""
    return _C._view_as_complex(input)


def is_complex(input) -> builtins.bool:
    if not isinstance(input, _C.TensorBase):
        raise TypeError(f"is_complex(): argument 'input' (position 1) must be Tensor, not "
                        f"{type(input).__name__}")
    return input.dtype.is_complex


def real(input):
    """The real part as a view (a real tensor is returned as is, as torch does)."""
    if not input.dtype.is_complex:
        return input
    return _C._view_as_real(input).select(-1, 0)


def imag(input):
    """The imaginary part as a view; torch refuses it for real tensors."""
    if not input.dtype.is_complex:
        raise RuntimeError("imag is not implemented for tensors with non-complex dtypes.")
    return _C._view_as_real(input).select(-1, 1)


def _complex_of(real_dtype):
    return _C.complex128 if real_dtype == _C.float64 else _C.complex64


def _real_of(complex_dtype):
    return _C.float64 if complex_dtype == _C.complex128 else _C.float32


def complex(real, imag, *, out=None):  # noqa: A001 - torch's name
    """A complex tensor from real and imaginary float tensors of the same dtype."""
    for name, t in (("real", real), ("imag", imag)):
        if not isinstance(t, _C.TensorBase):
            raise TypeError(f"complex(): argument '{name}' must be Tensor, not "
                            f"{type(t).__name__}")
    if real.dtype != imag.dtype:
        raise RuntimeError(f"Expected object of scalar type {_scalar_name(real.dtype)} but got "
                           f"scalar type {_scalar_name(imag.dtype)} for second argument")
    if real.dtype not in (_C.float32, _C.float64):
        raise RuntimeError(f"Expected both inputs to be Half, Float or Double tensors but got "
                           f"{_scalar_name(real.dtype)} and {_scalar_name(imag.dtype)}")
    shape = _broadcast_shape(real._shape, imag._shape)
    res = _C.empty(shape, _complex_of(real.dtype), real.device)
    rv = _C._view_as_real(res)
    rv.select(-1, 0).copy_(real)
    rv.select(-1, 1).copy_(imag)
    return _to_out(res, out)


def _scalar_name(d):
    return {"float32": "Float", "float64": "Double", "float16": "Half", "bfloat16": "BFloat16",
            "int32": "Int", "int64": "Long", "bool": "Bool"}.get(d._name) or _TORCH_NAME.get(
                d._name, d._name)


def _broadcast_shape(a, b):
    n = max(len(a), len(b))
    a = (1,) * (n - len(a)) + tuple(a)
    b = (1,) * (n - len(b)) + tuple(b)
    out = []
    for x, y in zip(a, b):
        if x != y and x != 1 and y != 1:
            raise RuntimeError(f"The size of tensor a ({x}) must match the size of tensor b "
                               f"({y}) at non-singleton dimension {len(out)}")
        out.append(y if x == 1 else x)
    return tuple(out)


# ------------------------------------------------------------------ promotion

_ORDER = {"bool": 0, "int32": 1, "int64": 2, "float16": 3, "bfloat16": 3, "float32": 4,
          "float64": 5}


def promote_types(type1, type2):
    """torch.promote_types, including complex: complex wins, with the wider component of the
    two (float64 or complex128 anywhere gives complex128)."""
    if not isinstance(type1, _C.dtype) or not isinstance(type2, _C.dtype):
        raise TypeError("promote_types(): arguments must be dtypes")
    if type1.is_complex or type2.is_complex:
        wide = any(t in (_C.float64, _C.complex128) for t in (type1, type2))
        return _C.complex128 if wide else _C.complex64
    return _real_promote(type1, type2)


def _real_promote(a, b):
    if a == b:
        return a
    fa, fb = a.is_floating_point, b.is_floating_point
    if fa and fb:
        if {a, b} == {_C.float16, _C.bfloat16}:
            return _C.float32
        return a if _ORDER[a._name] > _ORDER[b._name] else b
    if fa:
        return a
    if fb:
        return b
    if _C.bool in (a, b):
        return b if a == _C.bool else a
    return _C.int64


def _dtype_of_scalar(x):
    if isinstance(x, builtins.bool):
        return _C.bool
    if isinstance(x, int):
        return _C.int64
    if isinstance(x, float):
        return _C.float32
    if isinstance(x, builtins.complex):
        return _C.complex64
    raise TypeError(f"expected a Tensor or a number, got {type(x).__name__}")


def _category(d):
    return 3 if d.is_complex else 2 if d.is_floating_point else 1 if d != _C.bool else 0


def result_type(tensor1, tensor2):
    """torch.result_type for two operands (tensors or Python numbers): dimensioned tensors,
    then 0-d tensors, then Python scalars; a lower group only counts if its category
    (bool < int < float < complex) is higher."""
    groups = [None, None, None]
    for x in (tensor1, tensor2):
        if isinstance(x, _C.TensorBase):
            g, d = (0 if x.dim() > 0 else 1), x.dtype
        else:
            g, d = 2, _dtype_of_scalar(x)
        groups[g] = d if groups[g] is None else promote_types(groups[g], d)
    res = None
    for d in groups:
        if d is None:
            continue
        if res is None:
            res = d
        elif _category(d) > _category(res):
            # a float64 tensor with a complex scalar gives complex128, as in torch
            res = promote_types(res, d) if d.is_complex and res.is_floating_point else d
    return res


# ------------------------------------------------------------------ the arithmetic

def _as_complex_tensor(x, dtype, device):
    """x (tensor or Python number) as a complex tensor of `dtype` on `device`."""
    if isinstance(x, _C.TensorBase):
        return x if x.dtype == dtype else x._convert(dtype, None)
    t = _C.empty((), dtype, device)
    t.fill_(builtins.complex(x))
    return t


def _device_of(x, y):
    for t in (x, y):
        if isinstance(t, _C.TensorBase):
            return t.device
    return None


def _to_out(res, out):
    if out is None:
        return res
    if tuple(out._shape) != tuple(res._shape):
        raise RuntimeError(f"output with shape {list(out._shape)} doesn't match the broadcast "
                           f"shape {list(res._shape)}")
    if not out.dtype.is_complex and res.dtype.is_complex:
        raise RuntimeError(f"result type {_TORCH_NAME[res.dtype._name]} can't be cast to the "
                           f"desired output type {_scalar_name(out.dtype)}")
    out.copy_(res)
    return out


def _operands(x, y):
    d = result_type(x, y)
    dev = _device_of(x, y)
    return _as_complex_tensor(x, d, dev), _as_complex_tensor(y, d, dev), d


def _parts(t):
    r = _C._view_as_real(t)
    return r.select(-1, 0), r.select(-1, 1)


def _build(re, im, dtype):
    shape = _broadcast_shape(re._shape, im._shape)
    res = _C.empty(shape, dtype, re.device)
    rv = _C._view_as_real(res)
    rv.select(-1, 0).copy_(re)
    rv.select(-1, 1).copy_(im)
    return res


def _add_sub(x, y, alpha, sign):
    a, b, d = _operands(x, y)
    if alpha is not None and alpha != 1:
        b = _mul(b, alpha)
    ra, rb = _C._view_as_real(a), _C._view_as_real(b)
    r = ra + rb if sign > 0 else ra - rb
    return _C._view_as_complex(r.contiguous())


def _mul(x, y):
    a, b, d = _operands(x, y)
    ar, ai = _parts(a)
    br, bi = _parts(b)
    return _build(ar * br - ai * bi, ar * bi + ai * br, d)


def _div(x, y):
    a, b, d = _operands(x, y)
    ar, ai = _parts(a)
    br, bi = _parts(b)
    den = br * br + bi * bi
    return _build((ar * br + ai * bi) / den, (ai * br - ar * bi) / den, d)


def _abs(x):
    xr, xi = _parts(x)
    # hypot-style scaling keeps |z| finite where re**2 + im**2 would overflow
    m = _C._ew_functions["maximum"](xr.abs(), xi.abs())
    safe = m + (m == 0).to(m.dtype)
    sr, si = xr / safe, xi / safe
    return m * (sr * sr + si * si).sqrt()


def conj(input):
    """The complex conjugate (a new tensor: shardopt has no lazy conjugate bit; a real tensor
    is returned as is, as torch does)."""
    if not input.dtype.is_complex:
        return input
    res = input.clone()
    _C._view_as_real(res).select(-1, 1).neg_()
    return res


conj_physical = conj


def resolve_conj(input):
    """Identity: conj() already materialises (no lazy conjugate bit)."""
    return input


def _cmp(x, y, name):
    a, b, _ = _operands(x, y)
    ar, ai = _parts(a)
    br, bi = _parts(b)
    if name == "eq":
        return _and(ar == br, ai == bi)
    return _or(ar != br, ai != bi)


def _isclose(x, y, rtol, atol, equal_nan):
    if not (isinstance(x, _C.TensorBase) and isinstance(y, _C.TensorBase)):
        raise TypeError("isclose(): arguments 'input' and 'other' must be Tensors")
    if x.dtype != y.dtype:
        raise RuntimeError(f"{_scalar_name(x.dtype)} did not match {_scalar_name(y.dtype)}")
    # torch: |x - y| <= atol + rtol * |y| with the complex modulus; equal values (incl. infs)
    # are close, and NaN in either component is close only with equal_nan and NaN in both
    diff = _abs(_add_sub(x, y, None, -1))
    close = diff <= (_abs(y) * rtol + atol)
    same = _cmp(x, y, "eq")
    res = _or(close, same)
    xr, xi = _parts(x)
    yr, yi = _parts(y)
    xnan = _or(xr != xr, xi != xi)
    ynan = _or(yr != yr, yi != yi)
    if equal_nan:
        res = _or(res, _and(xnan, ynan))
    return res


def _or(a, b):  # (bool tensors have no | / & operators here)
    return (a.to(_C.int32) + b.to(_C.int32)) > 0


def _and(a, b):
    return (a.to(_C.int32) * b.to(_C.int32)) > 0


def _refuse(name, operands):
    for x in operands:
        if isinstance(x, _C.TensorBase) and x.dtype.is_complex:
            raise RuntimeError(f"{name}: not implemented for '{_TORCH_NAME[x.dtype._name]}' "
                               "(shardopt's complex tensors support add, sub, mul, div, neg, "
                               "abs, eq/ne, equal, isclose/allclose among the elementwise ops)")
    raise RuntimeError(f"{name}: complex Python numbers are not supported with non-complex "
                       "tensors in this op")


def _dispatch(name, operands, kwargs):
    """Called by the C elementwise bindings for a call with a complex operand."""
    out = kwargs.get("out")
    x = operands[0]
    y = operands[1] if len(operands) > 1 else None
    for o in operands:
        if not isinstance(o, (_C.TensorBase, numbers.Number)):
            if kwargs.get("_dunder"):  # `z == "a"`, `z + []`: Python's protocol decides
                return NotImplemented
            raise TypeError(f"{name}(): argument 'other' must be Tensor or Number, not "
                            f"{type(o).__name__}")
    if name in ("add", "sub"):
        res = _add_sub(x, y, kwargs.get("alpha"), 1 if name == "add" else -1)
    elif name == "mul":
        res = _mul(x, y)
    elif name in ("div", "true_divide"):
        res = _div(x, y)
    elif name == "neg":
        res = _C._view_as_complex((-_C._view_as_real(x)).contiguous())
    elif name == "abs":
        if out is x:
            raise RuntimeError("In-place abs is not supported for complex tensors.")
        res = _abs(x)
        if out is not None and out.dtype.is_complex:
            res = res._convert(out.dtype, None)
    elif name in ("eq", "ne"):
        res = _cmp(x, y, name)
    elif name == "equal":
        if not (isinstance(x, _C.TensorBase) and isinstance(y, _C.TensorBase)):
            raise TypeError("equal(): arguments 'input' and 'other' must be Tensors")
        if tuple(x._shape) != tuple(y._shape):
            return False
        return _cmp(x, y, "eq").to(_C.int64).sum().item() == x.numel()
    elif name in ("isclose", "allclose"):
        for k in ("rtol", "atol"):
            if not kwargs[k] >= 0:
                raise RuntimeError(f"{k} must be greater than or equal to zero, but got "
                                   f"{kwargs[k]}")
        res = _isclose(x, y, kwargs["rtol"], kwargs["atol"], kwargs["equal_nan"])
        if name == "allclose":
            return res.to(_C.int64).sum().item() == res.numel()
        return res
    else:
        _refuse(name, operands)
    return _to_out(res, out)


_C._set_complex_ops(_dispatch)

TENSOR_METHODS = {
    "conj": conj,
    "conj_physical": conj,
    "resolve_conj": resolve_conj,
    "is_complex": is_complex,
    "real": property(real),
    "imag": property(imag),
}
