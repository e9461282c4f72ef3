"""shardopt.autograd: a small reverse-mode tape in Python over the C ops (torch.autograd's API).

Recording happens in the differentiable op wrappers installed on ``shardopt.Tensor``
(``_math``, ``_views``, ``_inplace``); ``graph`` holds the nodes and saved tensors; ``engine``
runs backward. Higher-order gradients (create_graph=True) are not supported; leaves take
post-accumulate-grad hooks and ``engine.queue_callback`` runs code at the end of a pass.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import grad_mode
from .engine import run_backward
from .function import Function, FunctionCtx
from .grad_mode import (enable_grad, inference_mode, is_grad_enabled, is_inference_mode_enabled,
                        no_grad, set_grad_enabled)
from .graph import Node
from ._setup import _install  # noqa: F401  (called by shardopt/_tensor.py)

if TYPE_CHECKING:
    from .._tensor import Tensor

__all__ = ["Function", "FunctionCtx", "Node", "backward", "grad", "no_grad", "enable_grad",
           "set_grad_enabled", "is_grad_enabled", "inference_mode", "is_inference_mode_enabled",
           "grad_mode"]


def _as_list(x):
    if x is None:
        return None
    from .. import _C
    if isinstance(x, (_C.TensorBase,)):
        return [x]
    return list(x)


def backward(tensors, grad_tensors=None, retain_graph=None, create_graph=False,
             inputs=None) -> None:
    """Sum the gradients of ``tensors`` w.r.t. the graph leaves into their ``.grad``."""
    if create_graph:
        raise NotImplementedError("create_graph=True: higher-order gradients are not supported")
    tensors = _as_list(tensors)
    grads = _as_list(grad_tensors) or [None] * len(tensors)
    if len(grads) != len(tensors):
        raise RuntimeError(f"grad_tensors should have the same length as tensors, got "
                           f"{len(grads)} and {len(tensors)}")
    if retain_graph is None:
        retain_graph = create_graph
    inputs = _as_list(inputs)
    if inputs is not None and not inputs:
        raise RuntimeError("'inputs' argument to backward() cannot be empty.")
    run_backward(tensors, grads, retain_graph, inputs=inputs, accumulate=True)


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False,
         only_inputs=True, allow_unused=None, is_grads_batched=False,
         materialize_grads=False) -> tuple[Tensor | None, ...]:
    """Gradients of ``outputs`` w.r.t. ``inputs``, returned (``.grad`` is not touched)."""
    if create_graph:
        raise NotImplementedError("create_graph=True: higher-order gradients are not supported")
    if is_grads_batched:
        raise NotImplementedError("is_grads_batched=True is not supported")
    outputs = _as_list(outputs)
    inputs = _as_list(inputs)
    grads = _as_list(grad_outputs) or [None] * len(outputs)
    if len(grads) != len(outputs):
        raise RuntimeError(f"grad requires one grad_output per output, got {len(grads)} and "
                           f"{len(outputs)}")
    if retain_graph is None:
        retain_graph = create_graph
    if allow_unused is None:
        allow_unused = materialize_grads
    res = run_backward(outputs, grads, retain_graph, inputs=inputs, allow_unused=allow_unused,
                       accumulate=False)
    if materialize_grads:
        from .. import _C
        res = tuple(g if g is not None else _C.empty(t._shape, t.dtype, t.device).zero_()
                    for g, t in zip(res, inputs))
    return res
