"""The autograd graph: nodes, edges, saved tensors and leaf accumulation.

A tensor produced by a recorded op has ``grad_fn`` = the Node that computes the gradients of
that op's inputs from the gradient of its output. ``node.next_functions`` is a tuple of
``(node, output_nr)`` edges, one per differentiable input, ``(None, 0)`` for inputs that do not
require grad. Leaves that require grad are reached through an ``AccumulateGrad`` node, one per
leaf while a graph refers to it (cached by a weak reference, as torch does), so the engine sums
every path's gradient before it touches ``.grad``.

Saved tensors are stored as storage-sharing aliases without history (no reference cycle
through an output's own grad_fn) together with the storage version at save time; unpacking
checks the version (in-place modification error) and whether the graph was already freed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import re
import weakref

from .. import _C

if TYPE_CHECKING:
    from .._tensor import Tensor

_TensorBase = _C.TensorBase

_FREED_MSG = (
    "Trying to backward through the graph a second time (or directly access saved tensors after "
    "they have already been freed). Saved intermediate values of the graph are freed when you call "
    ".backward() or autograd.grad(). Specify retain_graph=True if you need to backward through "
    "the graph a second time or if you need to access saved tensors after calling backward.")

_BACKWARD_SUFFIX = re.compile(r"Backward\d*$")

_TYPE_NAMES = {"float32": "FloatTensor", "float64": "DoubleTensor", "float16": "HalfTensor",
               "bfloat16": "BFloat16Tensor", "int32": "IntTensor", "int64": "LongTensor",
               "bool": "BoolTensor"}


def type_string(t) -> str:
    """torch's ``Tensor.type()`` spelling: shardopt.FloatTensor / shardopt.cuda.FloatTensor."""
    name = _TYPE_NAMES.get(str(t.dtype).rsplit(".", 1)[-1], "Tensor")
    return f"shardopt.cuda.{name}" if t.device.type == "cuda" else f"shardopt.{name}"


def output_nr(t) -> int:
    """Which output of its grad_fn a tensor is (only custom Functions have several)."""
    d = t.__dict__
    return d.get("_output_nr", 0) if d else 0


class Node:
    """A backward function in the graph. Subclasses implement ``_apply(grads) -> grads``:
    one gradient (or None) per output in, one per ``next_functions`` edge out."""

    __slots__ = ("next_functions", "_saved", "_retain", "__weakref__")
    _num_outputs = 1

    def __init__(self) -> None:
        self.next_functions = ()
        self._saved = ()
        self._retain = None

    def name(self) -> str:
        return type(self).__name__

    def __repr__(self) -> str:
        return f"<{self.name()} object at {hex(id(self))}>"

    def __call__(self, *grads) -> Any:
        """Apply the node by hand (as torch allows): gradients in, input gradients out."""
        out = self._apply(list(grads))
        return out[0] if len(out) == 1 else tuple(out)

    def _apply(self, grads):
        raise NotImplementedError

    def _release(self):
        for s in self._saved:
            s.data = None

    def _retain_grad(self, tensor, nr):
        if self._retain is None:
            self._retain = {}
        self._retain[nr] = weakref.ref(tensor)


class SavedTensor:
    """A tensor saved for backward: an alias of its data plus the version it had when saved."""

    __slots__ = ("data", "version", "producer", "output_nr", "shape", "tstr")

    def __init__(self, t, producer=None) -> None:
        self.data = t._alias()
        self.version = t._version
        # what made the tensor (None for leaves), for the in-place error: a name, or the node's
        # class (named like the node; no reference to the node itself, so no cycle), whose
        # name is only looked up if that error is raised
        gf = t.grad_fn if producer is None else producer
        self.producer = None if gf is None else (gf if isinstance(gf, str) else type(gf))
        d = t.__dict__  # output_nr(t), inlined: one tensor is saved per recorded op or more
        self.output_nr = d.get("_output_nr", 0) if d else 0
        self.shape = None
        self.tstr = None

    def unpack(self) -> Tensor | None:
        d = self.data
        if d is None:
            raise RuntimeError(_FREED_MSG)
        v = d._version
        if v != self.version:
            shape = ", ".join(str(s) for s in d._shape)
            msg = ("one of the variables needed for gradient computation has been modified by an "
                   f"inplace operation: [{type_string(d)} [{shape}]]")
            if self.producer is not None:
                name = self.producer if isinstance(self.producer, str) else self.producer.__name__
                # torch 2.x names the op, not the node: "output 0 of Mul" for MulBackward0
                op = _BACKWARD_SUFFIX.sub("", name) or name
                msg += f", which is output {self.output_nr} of {op},"
            msg += (f" is at version {v}; expected version {self.version} instead. Hint: the "
                    "tensor was changed in place after it was saved for backward; clone() it "
                    "before the in-place operation.")
            raise RuntimeError(msg)
        return d


def save(node, *tensors) -> None:
    """Save tensors (None allowed) on ``node``; returns nothing. Unpack with ``unpack(node)``."""
    node._saved = tuple([SavedTensor(t) if t is not None else _NONE_SAVED for t in tensors])


class _NoneSaved:
    __slots__ = ("data",)

    def __init__(self):
        self.data = None

    def unpack(self):
        return None


_NONE_SAVED = _NoneSaved()


def unpack(node) -> list[Tensor | None]:
    return [s.unpack() for s in node._saved]


class AccumulateGrad(Node):
    """Sink for a leaf that requires grad: adds the incoming gradient into ``variable.grad``."""

    __slots__ = ("variable",)

    def __init__(self, variable) -> None:
        Node.__init__(self)
        self.variable = variable

    def _apply(self, grads):
        g = grads[0]
        if g is None:
            return ()
        var = self.variable
        old = var.grad
        if old is None:
            # torch's rule: adopt the incoming buffer when nothing else can see it, else
            # store a fresh contiguous copy the leaf owns (the incoming one may alias data)
            if _adoptable(g, _EXPECTED_TENSOR_REFS):
                var.grad = g
            else:
                new = g.clone()
                if new.requires_grad or new.grad_fn is not None:
                    new = new.detach()
                var.grad = new
        else:
            try:
                old.add_(g)
            except (AttributeError, RuntimeError):
                var.grad = old + g
        d = var.__dict__
        hooks = d.get("_post_accumulate_grad_hooks") if d else None
        if hooks:
            # Tensor.register_post_accumulate_grad_hook: .grad is final for this backward
            for hook in tuple(hooks.values()):
                if hook(var) is not None:
                    raise RuntimeError("post accumulate grad hooks should return None.")
        return ()


# References to the incoming gradient while AccumulateGrad._apply runs on a buffer the engine
# made: the engine's buffer list, _apply's local `g` and the argument slot of the
# _grad_adoptable call.  Any other holder (the caller of backward(gradient=g), autograd.grad's
# capture, a second edge that received the same tensor) adds one.
_EXPECTED_TENSOR_REFS = 3

# the adoption rule itself (no other reference to the tensor or view of its storage, whole
# contiguous buffer, memory shardopt owns, no history) is checked in C
_adoptable = _C._grad_adoptable


_weakref = weakref.ref


def grad_accumulator(t) -> AccumulateGrad:
    """The leaf's AccumulateGrad node while a graph refers to it: the leaf holds only a weak
    reference (its ``_grad_acc`` slot, as torch's autograd meta does), the node holds the
    leaf, so every graph built while the node lives shares it."""
    ref = t._grad_acc
    if ref is not None:
        node = ref()
        if node is not None:
            return node
    node = AccumulateGrad(t)
    t._grad_acc = _weakref(node)
    d = t.__dict__
    if d and d.get("_backward_hooks"):  # register_hook on a leaf: run before accumulating
        node._retain_grad(t, 0)
    return node


_NO_EDGE = (None, 0)


def edge(x) -> tuple[Node | None, int]:
    """The graph edge through which gradient flows back to ``x`` (a tensor or anything)."""
    if not isinstance(x, _TensorBase) or not x.requires_grad:
        return _NO_EDGE
    gf = x.grad_fn
    if gf is None:
        return (grad_accumulator(x), 0)
    return (gf, output_nr(x))


def needs_grad(x) -> bool:
    return isinstance(x, _TensorBase) and x.requires_grad


def set_history(out, node) -> Tensor:
    """Make ``out`` the (only) output of ``node``."""
    out.grad_fn = node
    out.requires_grad = True
    return out
