"""Elementwise ops: arithmetic, comparisons, unary math, clamp, where, fused in-place updates.

Everything is implemented in C (csrc/ops/elementwise*.c, elementwise.cu): dtype promotion,
broadcasting, device checks and the kernels.  This module only publishes the C callables:
module-level functions (``shardopt.add(input, other, *, alpha=1, out=None)`` ...) and the
Tensor methods and operators, which are method descriptors of ``_C.TensorBase`` (no Python
frame per call).
"""
from .. import _C

# name -> builtin function (add, mul, where, clamp, allclose, ...)
_FUNCTIONS = dict(_C._ew_functions)
globals().update(_FUNCTIONS)

__all__ = sorted(n for n in _FUNCTIONS if not n.startswith("_"))

# name -> method descriptor (add, add_, __add__, __radd__, __iadd__, __eq__, __bool__, ...)
TENSOR_METHODS = dict(_C._ew_methods)
# Defining __eq__ would make instances unhashable in a class body; tensors hash by identity
# as in torch (used as dict keys by optimizers and hooks).
TENSOR_METHODS["__hash__"] = object.__hash__
