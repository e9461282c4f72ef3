"""Creation ops with torch's signatures, the default dtype, and the RNG front end.

Factories allocate with ``_C.empty`` and fill with the C kernels (``fill_``, ``copy_``,
``_C._uniform_`` / ``_C._normal_`` — Philox4x32-10, bit-identical on CPU and CUDA, see
csrc/ops/philox.h).  ``tensor()`` parses nested Python data through NumPy, then converts
with our own copy kernel so dtype rounding is the same as every other cast.
Sizes are accepted as varargs, a list, a tuple or a Size, as torch does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import math
import numbers

import numpy as np

from .. import _C

if TYPE_CHECKING:
    from .._tensor import Tensor

__all__ = [
    "tensor", "as_tensor", "from_numpy", "empty", "zeros", "ones", "full", "rand", "randn",
    "arange", "eye", "clone", "empty_like", "zeros_like", "ones_like", "full_like", "rand_like",
    "randn_like", "get_default_dtype", "set_default_dtype", "manual_seed", "seed",
    "initial_seed", "get_rng_state", "set_rng_state", "Generator", "default_generator",
]

Generator = _C.Generator
default_generator = _C._default_generator("cpu")
from_numpy = _C.from_numpy

# ------------------------------------------------------------------ default dtype

_default_dtype = [_C.float32]


def get_default_dtype() -> _C.dtype:
    """The dtype of floating tensors made from Python floats and of float factories."""
    return _default_dtype[0]


def set_default_dtype(d) -> None:
    if not isinstance(d, _C.dtype) or not d.is_floating_point:
        raise TypeError(f"only floating-point types are supported as the default type, got {d!r}")
    _default_dtype[0] = d


def _float_dtype(dtype):
    return _default_dtype[0] if dtype is None else dtype


# ------------------------------------------------------------------ RNG front end

def manual_seed(seed) -> _C.Generator:
    """Seed every device's default generator (CUDA ones lazily: CUDA is not initialised)."""
    _C._seed_default_generators(seed, 0)
    return default_generator


def seed() -> int:
    """Seed every default generator with a non-deterministic seed and return it."""
    s = _C._random_seed()
    _C._seed_default_generators(s, 0)
    return s


def initial_seed() -> int:
    return default_generator.initial_seed()


def get_rng_state() -> Tensor:
    """The CPU default generator's state (int64 tensor [seed, offset])."""
    return default_generator.get_state()


def set_rng_state(new_state) -> None:
    default_generator.set_state(new_state)


# ------------------------------------------------------------------ helpers

def _size_arg(args, size, fname):
    if size is not None:
        if args:
            raise TypeError(f"{fname}() got multiple values for argument 'size'")
        return size
    if not args:
        raise TypeError(f"{fname}() missing required argument 'size' (pos 1)")
    return args


def _finish(t, requires_grad, pin_memory=False):
    # pin_memory=True: the factory's tensor is copied into pinned (page-locked) host memory
    # (Tensor.pin_memory; a non-CPU tensor raises there), before requires_grad is set
    if pin_memory:
        t = _C._pin_memory(t)
    if requires_grad:
        t.requires_grad = True
    return t


def _new(size, dtype, device):
    return _C.empty(size, dtype, device)


# ------------------------------------------------------------------ factories

def empty(*args, size=None, dtype=None, device=None, requires_grad=False, layout=None,
          pin_memory=False, memory_format=None) -> Tensor:
    return _finish(_new(_size_arg(args, size, "empty"), _float_dtype(dtype), device),
                   requires_grad, pin_memory)


def zeros(*args, size=None, dtype=None, device=None, requires_grad=False, layout=None,
          pin_memory=False) -> Tensor:
    t = _new(_size_arg(args, size, "zeros"), _float_dtype(dtype), device)
    t.zero_()
    return _finish(t, requires_grad, pin_memory)


def ones(*args, size=None, dtype=None, device=None, requires_grad=False, layout=None,
         pin_memory=False) -> Tensor:
    t = _new(_size_arg(args, size, "ones"), _float_dtype(dtype), device)
    t.fill_(1)
    return _finish(t, requires_grad, pin_memory)


def _scalar_dtype(value, argname):
    """torch's dtype for a Python scalar: bool -> bool, int -> int64, float -> default."""
    if isinstance(value, (bool, np.bool_)):
        return _C.bool
    if isinstance(value, (numbers.Integral,)):
        return _C.int64
    if isinstance(value, numbers.Real):
        return _default_dtype[0]
    if isinstance(value, numbers.Complex):
        return _default_complex_dtype()
    if isinstance(value, _C.TensorBase):
        if value.numel() != 1:
            raise RuntimeError(f"{argname} must be a number or a one-element tensor, got a tensor "
                               f"with {value.numel()} elements")
        return value.dtype
    raise TypeError(f"{argname} must be a real number, got {type(value).__name__}")


def full(size, fill_value, *, dtype=None, device=None, requires_grad=False, layout=None,
         pin_memory=False) -> Tensor:
    if dtype is None:
        dtype = _scalar_dtype(fill_value, "fill_value")
    t = _new(size, dtype, device)
    t.fill_(fill_value)
    return _finish(t, requires_grad, pin_memory)


def rand(*args, size=None, generator=None, dtype=None, device=None, requires_grad=False,
         layout=None, pin_memory=False) -> Tensor:
    """Uniform [0, 1) from the Philox stream of `generator` (default: the device's)."""
    t = _new(_size_arg(args, size, "rand"), _float_dtype(dtype), device)
    _random_fill(t, _C._uniform_, generator)
    return _finish(t, requires_grad, pin_memory)


def randn(*args, size=None, generator=None, dtype=None, device=None, requires_grad=False,
          layout=None, pin_memory=False) -> Tensor:
    """Standard normal (Box-Muller over Philox) from `generator` (default: the device's)."""
    t = _new(_size_arg(args, size, "randn"), _float_dtype(dtype), device)
    _random_fill(t, _C._normal_, generator)
    return _finish(t, requires_grad, pin_memory)


def _random_fill(t, kernel, generator):
    """Fill t with kernel's standard draws.  Complex tensors draw their (re, im) pairs as a
    real tensor; torch's complex randn has variance 1 in total, N(0, 1/2) per component."""
    if not t.dtype.is_complex:
        kernel(t, 0.0, 1.0, generator)
    elif kernel is _C._normal_:
        _normal_method(t, generator=generator)
    else:
        _uniform_method(t, generator=generator)


def _scalar_value(x, argname):
    if isinstance(x, _C.TensorBase):
        return x.item()
    if isinstance(x, (bool, np.bool_)) or not isinstance(x, numbers.Real):
        raise TypeError(f"arange(): {argname} must be a real number, got {type(x).__name__}")
    return x


def arange(start, end=None, step=1, *, dtype=None, device=None, requires_grad=False, layout=None,
           pin_memory=False) -> Tensor:
    """torch.arange: int arguments give int64, any float gives the default dtype; the length
    is ceil((end - start) / step) and element i is start + i * step (computed in float64
    for floating results, exactly for integer ones)."""
    if end is None:
        start, end = 0, start
    start = _scalar_value(start, "start")
    end = _scalar_value(end, "end")
    step = _scalar_value(step, "step")
    all_int = all(isinstance(v, numbers.Integral) for v in (start, end, step))
    if dtype is None:
        dtype = _C.int64 if all_int else _default_dtype[0]
    if not all(math.isfinite(v) for v in (start, end, step)):
        raise RuntimeError(f"unsupported range: {start} -> {end}")
    if step == 0:
        raise RuntimeError("step must be nonzero")
    if (step > 0 and end < start) or (step < 0 and end > start):
        raise RuntimeError("upper bound and larger bound inconsistent with step sign")
    if all_int:
        sgn = 1 if step > 0 else -1
        n = (end - start + step - sgn) // step
    else:
        n = math.ceil((float(end) - float(start)) / float(step))
    if all_int and not dtype.is_floating_point:
        values = np.arange(n, dtype=np.int64) * np.int64(step) + np.int64(start)
    else:
        values = np.float64(start) + np.float64(step) * np.arange(n, dtype=np.float64)
    t = _C.from_numpy(values)._convert(dtype, device)
    return _finish(t, requires_grad, pin_memory)


def eye(n, m=None, *, dtype=None, device=None, requires_grad=False, layout=None,
        pin_memory=False) -> Tensor:
    if m is None:
        m = n
    for name, v in (("n", n), ("m", m)):
        if isinstance(v, bool) or not isinstance(v, numbers.Integral):
            raise TypeError(f"eye(): {name} must be an int, got {type(v).__name__}")
        if v < 0:
            raise RuntimeError(f"{name} must be greater or equal to 0, got {v}")
    t = zeros(n, m, dtype=dtype, device=device)
    k = min(n, m)
    if k:
        t.as_strided((k,), (m + 1,), 0).fill_(1)
    return _finish(t, requires_grad, pin_memory)


# ------------------------------------------------------------------ *_like

def _like(input, dtype, device):
    if not isinstance(input, _C.TensorBase):
        raise TypeError(f"input must be a Tensor, got {type(input).__name__}")
    return _new(input._shape, input.dtype if dtype is None else dtype,
                input.device if device is None else device)


def clone(input, *, memory_format=None) -> Tensor:
    """A copy of ``input`` with its own storage (torch.clone; differentiable)."""
    if not isinstance(input, _C.TensorBase):
        raise TypeError(f"clone(): argument 'input' (position 1) must be Tensor, not "
                        f"{type(input).__name__}")
    if memory_format is None:
        return input.clone()
    return input.clone(memory_format=memory_format)


def empty_like(input, *, dtype=None, device=None, requires_grad=False, layout=None,
               memory_format=None) -> Tensor:
    return _finish(_like(input, dtype, device), requires_grad)


def zeros_like(input, *, dtype=None, device=None, requires_grad=False, layout=None,
               memory_format=None) -> Tensor:
    return _finish(_like(input, dtype, device).zero_(), requires_grad)


def ones_like(input, *, dtype=None, device=None, requires_grad=False, layout=None,
              memory_format=None) -> Tensor:
    return _finish(_like(input, dtype, device).fill_(1), requires_grad)


def full_like(input, fill_value, *, dtype=None, device=None, requires_grad=False, layout=None,
              memory_format=None) -> Tensor:
    return _finish(_like(input, dtype, device).fill_(fill_value), requires_grad)


def rand_like(input, *, generator=None, dtype=None, device=None, requires_grad=False,
              layout=None, memory_format=None) -> Tensor:
    t = _like(input, dtype, device)
    _random_fill(t, _C._uniform_, generator)
    return _finish(t, requires_grad)


def randn_like(input, *, generator=None, dtype=None, device=None, requires_grad=False,
               layout=None, memory_format=None) -> Tensor:
    t = _like(input, dtype, device)
    _random_fill(t, _C._normal_, generator)
    return _finish(t, requires_grad)


# ------------------------------------------------------------------ tensor(data)

_NP_TO_SO = {
    np.dtype(np.float32): _C.float32, np.dtype(np.float64): _C.float64,
    np.dtype(np.float16): _C.float16, np.dtype(np.int32): _C.int32,
    np.dtype(np.int64): _C.int64, np.dtype(np.bool_): _C.bool,
    np.dtype(np.complex64): _C.complex64, np.dtype(np.complex128): _C.complex128,
}


def _default_complex_dtype():
    """torch's default complex dtype follows the default float dtype (float64 ->
    complex128, otherwise complex64)."""
    return _C.complex128 if _default_dtype[0] == _C.float64 else _C.complex64


def _array_dtype(arr):
    """Our dtype for an ndarray kept as is (tensor(ndarray) keeps its dtype like torch)."""
    d = _NP_TO_SO.get(arr.dtype.newbyteorder("=")) if arr.dtype.kind != "O" else None
    if d is not None:
        return d
    if arr.dtype.kind in "iu":
        return _C.int64
    if arr.dtype.kind == "f":
        return _C.float64
    if arr.dtype.kind == "c":
        return _C.complex128
    raise TypeError(f"can't convert np.ndarray of type {arr.dtype}: supported types are float64, "
                    "float32, float16, int64, int32 and bool")


def _parse_data(data):
    """(ndarray with a NumPy dtype we can wrap, our dtype inferred like torch)."""
    if isinstance(data, (np.ndarray, np.generic)):
        arr = np.asarray(data)
        return arr, _array_dtype(arr)
    try:
        arr = np.array(data)
    except ValueError as e:
        raise ValueError(f"tensor(): the nested sequence is ragged (sub-sequences of different "
                         f"lengths cannot form a tensor): {e}") from None
    kind = arr.dtype.kind
    if kind == "b":
        return arr, _C.bool
    if kind == "i":
        return arr, _C.int64
    if kind == "u":
        if arr.size and int(arr.max()) > np.iinfo(np.int64).max:
            raise RuntimeError("Overflow when unpacking long: a value does not fit in int64")
        return arr.astype(np.int64), _C.int64
    if kind == "f":
        return arr, _default_dtype[0]
    if kind == "c":
        return arr, _default_complex_dtype()
    if kind == "O":
        raise ValueError("tensor(): could not infer a dtype from the data (ragged nesting, "
                         "integers beyond 64 bits, or non-numeric elements)")
    raise TypeError(f"tensor(): unsupported data of NumPy kind '{arr.dtype}' "
                    "(only bool, int and float data)")


def tensor(data, *, dtype=None, device=None, requires_grad=False, pin_memory=False) -> Tensor:
    """A new tensor holding a copy of `data` (nested lists/tuples of numbers, an ndarray,
    a scalar, or a tensor)."""
    if isinstance(data, _C.TensorBase):
        t = data._convert(dtype, device)
        return _finish(t, requires_grad, pin_memory)
    arr, inferred = _parse_data(data)
    if dtype is None:
        dtype = inferred
    elif arr.dtype.kind == "c" and not isinstance(data, (np.ndarray, np.generic)) and \
            not _C.empty((0,), dtype).dtype.is_complex:
        raise TypeError("must be real number, not complex")  # torch's, for Python data
    if arr.dtype.kind == "f" and arr.dtype.newbyteorder("=") not in _NP_TO_SO:
        arr = arr.astype(np.float64)
    elif arr.dtype.kind == "c" and arr.dtype.newbyteorder("=") not in _NP_TO_SO:
        arr = arr.astype(np.complex128)
    elif arr.dtype.kind in "iu" and arr.dtype.newbyteorder("=") not in _NP_TO_SO:
        arr = arr.astype(np.int64)
    if not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    if not arr.flags.c_contiguous:
        arr = arr.copy()  # (np.ascontiguousarray would turn 0-d into 1-d)
    src = _C.from_numpy(arr)
    t = src._convert(dtype, device)
    return _finish(t, requires_grad, pin_memory)


def _is_cpu(device):
    if device is None:
        return True
    if isinstance(device, (str, _C.device)):
        return _C.device(device).type == "cpu"
    return False


def as_tensor(data, dtype=None, device=None) -> Tensor:
    """Like tensor() but shares memory when it can: a tensor (no copy if dtype/device match)
    or a CPU-bound ndarray of a supported dtype."""
    if isinstance(data, _C.TensorBase):
        return data.to(dtype=dtype, device=device)
    if (isinstance(data, np.ndarray) and data.dtype.isnative and data.dtype in _NP_TO_SO
            and _is_cpu(device) and data.flags.aligned and all(s >= 0 for s in data.strides)):
        t = _C.from_numpy(data)
        return t if dtype is None or dtype == t.dtype else t._convert(dtype, None)
    return tensor(data, dtype=dtype, device=device)


# ------------------------------------------------------------------ Tensor methods

def _host_array(t):
    """A NumPy view (or copy for CUDA / bfloat16) of t's values on the host."""
    if t.device.type != "cpu":
        t = t._convert(None, "cpu")
    if t.dtype == _C.bfloat16:
        t = t._convert(_C.float32, None)
    return t.numpy(force=True)


def _item(self):
    n = self.numel()
    if n != 1:
        raise RuntimeError(f"a Tensor with {n} elements cannot be converted to Scalar")
    if self.is_meta:
        raise RuntimeError("Tensor.item() cannot be called on meta tensors")
    return _host_array(self).reshape(()).item()


def _tolist(self):
    return _host_array(self).tolist()


def _scalar(self):
    if self.numel() != 1:
        raise ValueError("only one element tensors can be converted to Python scalars")
    return _item(self)


def _float(self):
    v = _scalar(self)
    if isinstance(v, complex):  # torch refuses the imaginary part here (no warning path)
        raise RuntimeError("value cannot be converted to type double without overflow")
    return float(v)


def _int(self):
    v = _scalar(self)
    if isinstance(v, complex):
        raise RuntimeError("value cannot be converted to type int64_t without overflow")
    return int(v)


def _index(self):
    if self.dtype.is_floating_point or self.dtype == _C.bool or self.numel() != 1:
        raise TypeError("only integer tensors of a single element can be converted to an index")
    return int(_item(self))


def _format(self, spec):
    if self.dim() == 0:
        return _item(self).__format__(spec)
    return object.__format__(self, spec)


def _new_like_self(self, size, dtype, device):
    return _new(size, self.dtype if dtype is None else dtype,
                self.device if device is None else device)


def _new_empty(self, *args, size=None, dtype=None, device=None, requires_grad=False,
               layout=None, pin_memory=False):
    return _finish(_new_like_self(self, _size_arg(args, size, "new_empty"), dtype, device),
                   requires_grad, pin_memory)


def _new_zeros(self, *args, size=None, dtype=None, device=None, requires_grad=False,
               layout=None, pin_memory=False):
    t = _new_like_self(self, _size_arg(args, size, "new_zeros"), dtype, device)
    return _finish(t.zero_(), requires_grad, pin_memory)


def _new_ones(self, *args, size=None, dtype=None, device=None, requires_grad=False,
              layout=None, pin_memory=False):
    t = _new_like_self(self, _size_arg(args, size, "new_ones"), dtype, device)
    return _finish(t.fill_(1), requires_grad, pin_memory)


def _new_full(self, size, fill_value, *, dtype=None, device=None, requires_grad=False,
              layout=None, pin_memory=False):
    t = _new_like_self(self, size, dtype, device)
    return _finish(t.fill_(fill_value), requires_grad, pin_memory)


def _new_tensor(self, data, *, dtype=None, device=None, requires_grad=False):
    return tensor(data, dtype=self.dtype if dtype is None else dtype,
                  device=self.device if device is None else device, requires_grad=requires_grad)


def _uniform_method(self, from_=0.0, to=1.0, *, generator=None, **kw):
    if "from" in kw:  # torch spells it `from`, a Python keyword
        from_ = kw.pop("from")
    if kw:
        raise TypeError(f"uniform_() got unexpected keyword arguments {sorted(kw)}")
    if self.dtype.is_complex:  # re and im each uniform on [from, to), as torch
        _C._uniform_(_C._view_as_real(self), from_, to, generator)
        return self
    return _C._uniform_(self, from_, to, generator)


def _normal_method(self, mean=0.0, std=1.0, *, generator=None):
    if self.dtype.is_complex:  # torch: re and im each N(mean, std**2 / 2)
        _C._normal_(_C._view_as_real(self), mean, std * math.sqrt(0.5), generator)
        return self
    return _C._normal_(self, mean, std, generator)


TENSOR_METHODS = {
    "item": _item,
    "tolist": _tolist,
    "__float__": _float,
    "__int__": _int,
    "__index__": _index,
    "__format__": _format,
    "new_empty": _new_empty,
    "new_zeros": _new_zeros,
    "new_ones": _new_ones,
    "new_full": _new_full,
    "new_tensor": _new_tensor,
    "uniform_": _uniform_method,
    "normal_": _normal_method,
}
