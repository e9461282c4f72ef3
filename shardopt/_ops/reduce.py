"""Reductions, matrix products and joins: torch's Python signatures over the C kernels.

sum / mean / max / min / norm (csrc/ops/reduce*.c, reduce.cu), matmul / mm / bmm / dot and
the ``@`` operator (csrc/ops/matmul*.c, matmul.cu), cat / stack (csrc/ops/join.c).
Argument checking and torch's error messages live in C; this module only maps torch's
overloads (``max(input, dim)`` vs ``max(input, other)``, ``norm(p='fro')``) and wraps
``(values, indices)`` pairs in a named tuple like ``torch.return_types.max``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import builtins as _builtins
import collections as _collections

from .. import _C

if TYPE_CHECKING:
    from .._tensor import Tensor

__all__ = ["sum", "mean", "max", "min", "norm", "matmul", "mm", "bmm", "dot", "cat",
           "concat", "concatenate", "stack", "return_types"]


class return_types:  # noqa: N801 - torch spells it torch.return_types
    """Named tuples returned by max/min with a dim, sort and topk (``.values``,
    ``.indices``)."""

    max = _collections.namedtuple("max", ["values", "indices"])
    min = _collections.namedtuple("min", ["values", "indices"])
    sort = _collections.namedtuple("sort", ["values", "indices"])
    topk = _collections.namedtuple("topk", ["values", "indices"])


for _cls in (return_types.max, return_types.min, return_types.sort, return_types.topk):
    _cls.__module__ = "shardopt.return_types"
del _cls


def sum(input, dim=None, keepdim=False, *, dtype=None) -> Tensor:  # noqa: A001
    """Sum over all elements or over ``dim`` (int or tuple).  Integer and bool inputs sum
    to int64 unless ``dtype`` says otherwise; float inputs accumulate in float64."""
    return _C._sum(input, dim, keepdim, dtype)


def mean(input, dim=None, keepdim=False, *, dtype=None) -> Tensor:
    """Mean over all elements or over ``dim``; floating dtypes only (or pass ``dtype``)."""
    return _C._mean(input, dim, keepdim, dtype)


def _elementwise(name, a, b):
    from . import elementwise
    fn = getattr(elementwise, name, None)
    if fn is None:
        raise TypeError(f"{name}() is not available in this build")
    return fn(a, b)


def max(input, dim=None, keepdim=False) -> Tensor | return_types.max:  # noqa: A001
    """max(input) -> 0-d tensor; max(input, dim, keepdim=False) -> (values, indices);
    max(input, other) -> elementwise maximum."""
    if isinstance(dim, _C.TensorBase):
        return _elementwise("maximum", input, dim)
    r = _C._max(input, dim, keepdim)
    return r if dim is None else return_types.max(*r)


def min(input, dim=None, keepdim=False) -> Tensor | return_types.min:  # noqa: A001
    """min(input) -> 0-d tensor; min(input, dim, keepdim=False) -> (values, indices);
    min(input, other) -> elementwise minimum."""
    if isinstance(dim, _C.TensorBase):
        return _elementwise("minimum", input, dim)
    r = _C._min(input, dim, keepdim)
    return r if dim is None else return_types.min(*r)


def norm(input, p="fro", dim=None, keepdim=False, dtype=None) -> Tensor:
    """Vector p-norm over all elements or ``dim``: p = 2 ('fro', the default), 1, inf,
    -inf, 0 (count of non-zeros) or any other real p."""
    if p is None or (isinstance(p, str) and p == "fro"):
        p = 2.0
    elif isinstance(p, str):
        raise RuntimeError(f"norm(): p={p!r} is not supported (use a number, inf or 'fro')")
    elif isinstance(p, _builtins.bool) or not isinstance(p, (int, float)):
        raise TypeError(f"norm(): argument 'p' must be a number or 'fro', not {type(p).__name__}")
    if isinstance(dim, list):
        dim = tuple(dim)
    return _C._norm(input, float(p), dim, keepdim, dtype)


def matmul(input, other) -> Tensor:
    """torch.matmul: dot, matrix-vector, matrix-matrix or broadcast batched product."""
    return _C._matmul(input, other)


def mm(input, mat2) -> Tensor:
    """Product of two 2-D tensors."""
    return _C._mm(input, mat2)


def bmm(input, mat2) -> Tensor:
    """Product of two batches of matrices, (b, n, m) @ (b, m, p); no broadcasting."""
    return _C._bmm(input, mat2)


def dot(input, tensor) -> Tensor:
    """Inner product of two 1-D tensors (a 0-d tensor)."""
    return _C._dot(input, tensor)


def cat(tensors, dim=0) -> Tensor:
    """Concatenate along an existing dim (dtype promoted across inputs; 1-D empty tensors
    are skipped, as in torch)."""
    return _C._cat(tensors, dim)


concat = cat
concatenate = cat


def stack(tensors, dim=0) -> Tensor:
    """Join equally shaped tensors along a new dim."""
    return _C._stack(tensors, dim)


def _matmul_op(self, other):
    if not isinstance(other, _C.TensorBase):
        return NotImplemented
    return _C._matmul(self, other)


def _rmatmul_op(self, other):
    if not isinstance(other, _C.TensorBase):
        return NotImplemented
    return _C._matmul(other, self)


TENSOR_METHODS = {
    "sum": sum,
    "mean": mean,
    "max": max,
    "min": min,
    "norm": norm,
    "matmul": matmul,
    "mm": mm,
    "bmm": bmm,
    "dot": dot,
    "__matmul__": _matmul_op,
    "__rmatmul__": _rmatmul_op,
}

