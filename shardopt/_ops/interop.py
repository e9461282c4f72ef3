"""Zero-copy interop: from_dlpack, __array__, __array_interface__, __cuda_array_interface__,
pickling support, and torch-like repr (shardopt/_formatting.py).

``__dlpack__`` / ``__dlpack_device__`` are C methods (csrc/tensor/dlpack.c); this module
negotiates the protocol on the consumer side (max_version, CUDA stream) and hands the
capsule to ``_C._from_dlpack``.  ``__array_interface__`` returns a dict whose memory belongs
to the tensor: NumPy keeps the tensor (hence its storage) alive as the array's base.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import sys

import numpy as np

from .. import _C
from .. import _formatting

if TYPE_CHECKING:
    from .._tensor import Tensor

__all__ = ["from_dlpack", "set_printoptions"]

set_printoptions = _formatting.set_printoptions

_KDL_CPU, _KDL_CUDA = 1, 2
_TYPESTR = {
    _C.float32: "f4", _C.float64: "f8", _C.float16: "f2",
    _C.int32: "i4", _C.int64: "i8",
}
_ENDIAN = "<" if sys.byteorder == "little" else ">"


def from_dlpack(ext_tensor) -> Tensor:
    """A tensor sharing memory with `ext_tensor`: any object with ``__dlpack__`` (NumPy,
    CuPy, PyTorch, JAX, shardopt) or a DLPack capsule (consumed: usable once)."""
    if hasattr(ext_tensor, "__dlpack__"):
        dev_type, dev_id = ext_tensor.__dlpack_device__()
        kwargs = {}
        if int(dev_type) == _KDL_CUDA:
            # the producer makes its pending work visible to our compute stream
            kwargs["stream"] = _C._cuda_stream_handle(int(dev_id))
        try:
            capsule = ext_tensor.__dlpack__(max_version=(1, 0), **kwargs)
        except TypeError:  # producers older than the DLPack 1.0 protocol
            capsule = ext_tensor.__dlpack__(**kwargs)
    else:
        capsule = ext_tensor
    return _C._from_dlpack(capsule)


def _typestr(dtype):
    if dtype == _C.bool:
        return "|b1"
    return _ENDIAN + _TYPESTR[dtype]


def _array_interface(self):
    if self.device.type != "cpu":
        raise AttributeError("__array_interface__ is only defined for CPU tensors; use "
                             "__cuda_array_interface__ or .cpu()")
    if self.dtype == _C.bfloat16:
        # NumPy has no bfloat16: without the interface NumPy falls back to __array__
        raise AttributeError("__array_interface__: NumPy has no bfloat16 type")
    isz = self.element_size()
    return {
        "data": (self.data_ptr(), False),
        "typestr": _typestr(self.dtype),
        "shape": tuple(self._shape),
        "strides": tuple(s * isz for s in self.stride()),
        "version": 3,
    }


def _cuda_array_interface(self):
    if self.device.type != "cuda":
        raise AttributeError("Can't get __cuda_array_interface__ on non-CUDA tensor type: "
                             f"the tensor is on {self.device}")
    if self.dtype == _C.bfloat16:
        raise TypeError("__cuda_array_interface__ has no typestr for bfloat16")
    if self.requires_grad:
        raise RuntimeError("Can't get __cuda_array_interface__ on Variable that requires grad. "
                           "If gradients aren't required, use var.detach() to get Variable that "
                           "doesn't require grad.")
    isz = self.element_size()
    return {
        "shape": tuple(self._shape),
        "typestr": _typestr(self.dtype),
        "data": (self.data_ptr() if self.numel() else 0, False),
        "strides": None if self.is_contiguous() else tuple(s * isz for s in self.stride()),
        "version": 3,
        # the consumer must order its work after our compute stream
        "stream": _C._cuda_stream_handle(self.device.index),
    }


def _array(self, dtype=None, copy=None):
    if self.device.type != "cpu":
        raise TypeError(f"can't convert {self.device} device type tensor to numpy. Use "
                        "Tensor.cpu() to copy the tensor to host memory first.")
    if self.dtype == _C.bfloat16:
        if copy is False:
            raise ValueError("__array__: a bfloat16 tensor cannot be viewed by NumPy without a "
                             "copy (NumPy has no bfloat16)")
        arr = self._convert(_C.float32, None).numpy(force=True)
    else:
        arr = self.numpy(force=True)
        if copy:
            arr = arr.copy()
    if dtype is not None and arr.dtype != np.dtype(dtype):
        if copy is False:
            raise ValueError(f"__array__: converting {self.dtype} to {np.dtype(dtype)} needs a "
                             "copy, but copy=False")
        arr = arr.astype(dtype)
    return arr


TENSOR_METHODS = {
    "__array__": _array,
    "__array_interface__": property(_array_interface),
    "__cuda_array_interface__": property(_cuda_array_interface),
    "__repr__": _formatting.tensor_repr,
}
