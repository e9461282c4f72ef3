"""Custom differentiable functions: ``class F(Function)`` with static ``forward(ctx, ...)`` and
``backward(ctx, *grad_outputs)``, used as ``F.apply(...)``, as in torch.

The ctx passed to forward is the graph node itself (a ``<Name>Backward`` instance), so its
``save_for_backward``/``saved_tensors`` go through the same version-checked saved tensors as the
built-in ops. forward runs with grad mode off.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .. import _C
from . import grad_mode
from .graph import Node, SavedTensor, _NONE_SAVED, edge

if TYPE_CHECKING:
    from .._tensor import Tensor

_TensorBase = _C.TensorBase

__all__ = ["Function", "FunctionCtx"]


class FunctionCtx:
    """What ``forward`` and ``backward`` see as ``ctx``."""

    def save_for_backward(self, *tensors) -> None:
        for t in tensors:
            if t is not None and not isinstance(t, _TensorBase):
                raise TypeError("save_for_backward can only save variables, but argument "
                                f"{tensors.index(t)} is of type {type(t).__name__}")
        self._to_save = tensors

    @property
    def saved_tensors(self) -> tuple[Tensor | None, ...]:
        if self._saved is None:
            return self._to_save
        return tuple(s.unpack() for s in self._saved)

    def mark_dirty(self, *tensors) -> None:
        self._dirty = tensors

    def mark_non_differentiable(self, *tensors) -> None:
        self._non_diff = tensors

    def set_materialize_grads(self, value) -> None:
        self.materialize_grads = bool(value)


class BackwardCFunction(FunctionCtx, Node):
    """Node type of a custom Function; one subclass per Function, named ``<Name>Backward``."""

    _function = None

    def __init__(self) -> None:
        Node.__init__(self)
        self._saved = None
        self._to_save = ()
        self._dirty = ()
        self._non_diff = ()
        self.materialize_grads = True
        self.needs_input_grad = ()
        self._out_meta = ()

    def _release(self):
        if self._saved:
            for s in self._saved:
                s.data = None

    def _apply(self, grads):
        if self.materialize_grads:
            grads = [g if g is not None or m is None else _C.empty(*m).zero_()
                     for g, m in zip(grads, self._out_meta)]
        if self._saved is None:
            self._saved = ()
        res = self._function.backward(self, *grads)
        if not isinstance(res, tuple):
            res = (res,)
        n = len(self.next_functions)
        if len(res) < n or any(r is not None for r in res[n:]):
            raise RuntimeError(f"function {self.name()} returned an incorrect number of gradients "
                               f"(expected {n}, got {len(res)})")
        return list(res[:n])


class _FunctionMeta(type):
    def __init__(cls, name, bases, attrs):
        cls._backward_cls = type(name + "Backward", (BackwardCFunction,), {"_function": cls})
        super().__init__(name, bases, attrs)


class Function(metaclass=_FunctionMeta):
    """Base class of custom autograd functions (static forward/backward, called via apply)."""

    def __init__(self, *args, **kwargs) -> None:
        raise RuntimeError("Function objects are not meant to be instantiated; call the "
                           "staticmethod apply() instead")

    @staticmethod
    def forward(ctx, *args, **kwargs) -> Any:
        raise NotImplementedError("You must implement the forward function for custom "
                                  "autograd.Function.")

    @staticmethod
    def backward(ctx, *grad_outputs) -> Any:
        raise NotImplementedError("You must implement the backward function for custom "
                                  "autograd.Function.")

    @classmethod
    def apply(cls, *args, **kwargs) -> Any:
        ctx = cls._backward_cls()
        ctx.needs_input_grad = tuple(isinstance(a, _TensorBase) and a.requires_grad
                                     for a in args)
        record = grad_mode.is_grad_enabled() and any(ctx.needs_input_grad)
        with grad_mode.no_grad():
            outputs = cls.forward(ctx, *args, **kwargs)
        if not record:
            ctx._saved = ()
            return outputs
        single = not isinstance(outputs, tuple)
        outs = (outputs,) if single else outputs
        ctx.next_functions = tuple(edge(a) for a in args)
        ctx._num_outputs = len(outs)
        non_diff = {id(t) for t in ctx._non_diff}
        inputs_by_id = {id(a) for a in args if isinstance(a, _TensorBase)}
        dirty = {id(t) for t in ctx._dirty}
        result = []
        meta = []
        for nr, o in enumerate(outs):
            if not isinstance(o, _TensorBase):
                meta.append(None)
                result.append(o)
                continue
            meta.append((o._shape, o.dtype, o.device))
            if id(o) in inputs_by_id and id(o) not in dirty:
                o = o._alias()  # returning an input as-is: a new tensor with this history
            if id(o) not in non_diff and o.dtype.is_floating_point:
                o.grad_fn = ctx
                o.requires_grad = True
                if nr:
                    o._output_nr = nr
            result.append(o)
        ctx._out_meta = meta
        # save after the outputs got their history so saved outputs report it
        ctx._saved = tuple(SavedTensor(t) if t is not None else _NONE_SAVED
                           for t in ctx._to_save)
        ctx._to_save = ()
        return result[0] if single else tuple(result)
