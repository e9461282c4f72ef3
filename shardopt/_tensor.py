"""shardopt.Tensor: a thin Python subclass of the C TensorBase.

The C base holds storage, geometry and the autograd slots; this class adds torch's
spelling (``shape`` as a Size, ``size(dim)``, ``to``/``cpu``/``cuda``), and receives the
op methods of every area in ``shardopt._ops`` at import time.
"""

from __future__ import annotations

import builtins
import copy as _copy
from typing import Any, Iterator

from . import _C
from ._layout import strided as _strided


class Size(tuple):
    """torch.Size: a tuple of ints with torch's repr and numel()."""

    def __repr__(self) -> str:
        return f"shardopt.Size({list(self)!r})"

    __str__ = __repr__

    def numel(self) -> int:
        n = 1
        for s in self:
            n *= s
        return n


class Tensor(_C.TensorBase):
    """A strided, typed view of CPU or CUDA memory (see issue 2 for the full surface)."""

    @property
    def shape(self) -> Size:
        return Size(self._shape)

    @property
    def layout(self):
        """The memory layout: always ``shardopt.strided`` (no sparse tensors)."""
        return _strided

    def is_pinned(self, device=None) -> builtins.bool:
        """Whether this tensor lives in pinned (page-locked) host memory."""
        return _C._is_pinned(self)

    def pin_memory(self, device=None) -> Tensor:
        """A copy in pinned (page-locked) host memory, or this tensor if it is pinned already.
        Only CPU tensors can be pinned (RuntimeError otherwise)."""
        return _C._pin_memory(self)

    def size(self, dim=None) -> Size | builtins.int:
        if dim is None:
            return Size(self._shape)
        return self._size_at(dim)

    def __iter__(self) -> Iterator[Tensor]:
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(len(self)))

    def __deepcopy__(self, memo) -> Tensor:
        if id(self) in memo:
            return memo[id(self)]
        new = self.clone()
        if type(self) is not type(new):
            new = _C._make_subclass(type(self), new, self.requires_grad)
        else:
            new.requires_grad = self.requires_grad
        memo[id(self)] = new
        if self.grad is not None:
            new.grad = _copy.deepcopy(self.grad, memo)
        d = getattr(self, "__dict__", None)
        if d:
            for k, v in d.items():
                setattr(new, k, _copy.deepcopy(v, memo))
        return new

    def __reduce_ex__(self, protocol) -> tuple[Any, ...]:
        # Pickled as host bytes + dtype + device; bfloat16 travels as its raw uint16 bits.
        # A meta tensor has no bytes: its geometry is all there is to pickle.
        if self.is_meta:
            return (_rebuild_meta_tensor, (self.dtype._name, tuple(self.shape),
                                           self.requires_grad, type(self)))
        host = self.detach().cpu() if hasattr(self, "detach") else self._alias().cpu()
        return (_rebuild_tensor, (bytes(host.contiguous()._raw_bytes()), self.dtype._name,
                                  tuple(self.shape), str(self.device), self.requires_grad,
                                  type(self)))

    def cpu(self) -> Tensor:
        return self if self.device.type == "cpu" else self._convert(None, "cpu")

    def cuda(self, device=None, non_blocking=False) -> Tensor:
        from . import cuda as _cuda
        if device is None:
            device = _cuda.current_device()
        dev = _C.device("cuda", device) if isinstance(device, int) else _C.device(device)
        if self.device == dev:
            return self
        return self._convert(None, dev)

    def to(self, *args, **kwargs) -> Tensor:
        """to(device=None, dtype=None, non_blocking=False, copy=False) | to(dtype) | to(other)."""
        dtype = kwargs.pop("dtype", None)
        device = kwargs.pop("device", None)
        copy = kwargs.pop("copy", False)
        kwargs.pop("non_blocking", None)
        kwargs.pop("memory_format", None)
        if kwargs:
            raise TypeError(f"to() got unexpected keyword arguments {sorted(kwargs)}")
        for a in args:
            if isinstance(a, _C.dtype):
                dtype = a
            elif isinstance(a, _C.TensorBase):
                dtype, device = a.dtype, a.device
            elif isinstance(a, (str, _C.device, int)) and not isinstance(a, bool):
                device = a
            elif isinstance(a, bool):
                copy = a  # to(dtype, non_blocking, copy) positional style: treat bools as copy
            else:
                raise TypeError(f"to() received an invalid argument {a!r}")
        if device is not None and not isinstance(device, _C.device):
            device = _C.device("cuda", device) if isinstance(device, int) else _C.device(device)
        if device is not None and device.type == "cuda" and device.index is None:
            from . import cuda as _cuda
            device = _C.device("cuda", _cuda.current_device())
        same_dtype = dtype is None or dtype == self.dtype
        same_device = device is None or device == self.device
        if same_dtype and same_device and not copy:
            return self
        return self._convert(dtype, device)

    def type_as(self, other) -> Tensor:
        return self.to(other.dtype)

    def float(self) -> Tensor:
        return self.to(_C.float32)

    def double(self) -> Tensor:
        return self.to(_C.float64)

    def half(self) -> Tensor:
        return self.to(_C.float16)

    def bfloat16(self) -> Tensor:
        return self.to(_C.bfloat16)

    def long(self) -> Tensor:
        return self.to(_C.int64)

    def int(self) -> Tensor:
        return self.to(_C.int32)

    def bool(self) -> Tensor:
        return self.to(_C.bool)

    def is_floating_point(self) -> builtins.bool:
        return self.dtype.is_floating_point


def _rebuild_meta_tensor(dtype_name, shape, requires_grad, cls=Tensor):
    from ._ops.creation import empty
    t = empty(shape, dtype=getattr(_C, dtype_name), device="meta")
    if cls is not Tensor or requires_grad:
        t = _C._make_subclass(cls, t, requires_grad)
    return t


def _rebuild_tensor(data, dtype_name, shape, device, requires_grad, cls=Tensor):
    t = _C._from_bytes(data, getattr(_C, dtype_name), shape)
    if device != "cpu":
        t = t.to(device)
    if cls is not Tensor or requires_grad:
        t = _C._make_subclass(cls, t, requires_grad)
    return t


_C._set_tensor_class(Tensor)

from . import overrides as _overrides  # noqa: E402

_overrides.register_plain_type(Tensor)  # exact Tensors never dispatch: skip their scan

from . import _ops as _ops_pkg  # noqa: E402

def _install_methods():
    for area in _ops_pkg.AREAS:
        for name, fn in area.TENSOR_METHODS.items():
            setattr(Tensor, name, fn)


_install_methods()

from .autograd import _install as _install_autograd  # noqa: E402

_install_autograd(Tensor)  # differentiable wrappers over the raw ops just installed
