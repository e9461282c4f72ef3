"""Shared pieces of the differentiable op wrappers: node classes, broadcasting reduction,
argument parsing, and the table of raw (C-backed, autograd-free) ops captured at install.

Every wrapper follows one pattern: if no input requires grad, or grad mode is off, it calls
the raw op and returns (one check); otherwise it calls the raw op, then records a node whose
backward formula uses the public (wrapped) ops, which run raw because the engine turns grad
mode off.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .. import _C
from . import grad_mode
from .graph import Node, edge, needs_grad, save, set_history, unpack  # noqa: F401
from .graph import _NONE_SAVED, _NO_EDGE, SavedTensor, grad_accumulator, output_nr

if TYPE_CHECKING:
    from .._tensor import Tensor

_TensorBase = _C.TensorBase
_state = grad_mode._state

# raw ops captured before the differentiable versions are installed:
# RAW_M[name] = unbound Tensor method, RAW_F[name] = shardopt._ops function
RAW_M = {}
RAW_F = {}


class OpNode(Node):
    """A built-in op's node: ``_ctx`` holds the non-tensor facts its backward needs."""

    __slots__ = ("_ctx",)


def node_type(name, bw) -> type[OpNode]:
    """A Node subclass named like torch's (``MulBackward0``) whose backward is ``bw(node, g)``
    returning one gradient (or None) per input edge."""

    def _apply(self, grads):
        return bw(self, grads[0])

    return type(name, (OpNode,), {"__slots__": (), "_apply": _apply})


def record(cls, out, inputs, ctx=None, saved=()) -> Any:
    """Attach a new ``cls`` node as ``out``'s history; inputs are the differentiable operands."""
    if not out.dtype.is_floating_point:
        return out
    node = cls()
    # graph.edge, inlined (this runs for every input of every recorded op): a leaf's
    # AccumulateGrad comes from its weak reference while that node lives
    edges = []
    for x in inputs:
        if isinstance(x, _TensorBase) and x.requires_grad:
            gf = x.grad_fn
            if gf is None:
                ref = x._grad_acc
                acc = ref() if ref is not None else None
                edges.append((acc if acc is not None else grad_accumulator(x), 0))
            else:
                edges.append((gf, output_nr(x)))
        else:
            edges.append(_NO_EDGE)
    node.next_functions = tuple(edges)
    node._ctx = ctx
    if saved:  # graph.save and graph.set_history, inlined: this runs for every recorded op
        node._saved = tuple([SavedTensor(t) if t is not None else _NONE_SAVED for t in saved])
    out.grad_fn = node
    out.requires_grad = True
    return out


def meta(x) -> tuple[tuple[int, ...], _C.dtype, _C.device] | None:
    """(shape, dtype, device) of an operand that needs a gradient, else None."""
    if isinstance(x, _TensorBase) and x.requires_grad:
        return (x._shape, x.dtype, x.device)
    return None


def zeros(m) -> Tensor:
    return _C.empty(m[0], m[1], m[2]).zero_()


def sum_to(g, shape) -> Tensor:
    """Reduce a broadcast gradient back to ``shape`` (sum over the broadcast dimensions)."""
    gs = g._shape
    if gs == shape:
        return g
    lead = len(gs) - len(shape)
    dims = tuple(range(lead)) + tuple(lead + i for i, s in enumerate(shape)
                                      if s == 1 and gs[lead + i] != 1)
    if dims:
        g = g.sum(dim=dims, keepdim=True)
    return g.reshape(shape)


def fit(g, m) -> Tensor | None:
    """Gradient ``g`` reshaped/cast to the operand described by meta ``m``."""
    if g is None:
        return None
    shape, dtype, device = m
    if g._shape != shape:
        g = sum_to(g, shape)
    if g.dtype != dtype or g.device != device:
        g = g._convert(dtype, device)
    return g


def arg(args, kw, i, name, default=None) -> Any:
    """Positional-or-keyword argument i/name of a wrapped call."""
    if len(args) > i:
        return args[i]
    return kw.get(name, default)


def check_out(kw, name) -> None:
    if kw.get("out") is not None:
        raise RuntimeError(f"{name}(): functions with out=... arguments don't support automatic "
                           "differentiation, but one of the arguments requires grad.")


def norm_dims(dim, ndim) -> list[int] | None:
    """A reduction's dim argument as a sorted tuple of non-negative dims (None: all dims)."""
    if dim is None:
        return None
    if isinstance(dim, int):
        dim = (dim,)
    dims = tuple(sorted((d + ndim if d < 0 else d) for d in dim)) if ndim else ()
    return dims if dims or ndim == 0 else None


def any_grad(*xs) -> bool:
    for x in xs:
        if isinstance(x, _TensorBase) and x.requires_grad:
            return True
    return False


def where(cond, a, value) -> Tensor:
    """``a`` where ``cond`` else the Python scalar ``value`` (backward formulas only)."""
    w = RAW_F.get("where")
    if w is not None:
        try:
            return w(cond, a, value)
        except TypeError:
            return w(cond, a, _C.empty((), a.dtype, a.device).fill_(value))
    # no where() op: blend with the mask (exact when a is finite)
    m = cond.to(a.dtype)
    return a * m + (1 - m) * value
