"""The backward engine: runs the graph from the roots to the leaves.

The loop runs in C (``_C._run_graph``, csrc/tensor/autograd_engine.c); iterative (no
recursion limit): one pass counts, for every node reachable from the roots, how
many edges point at it; then nodes run when all their gradient contributions have arrived
(dependency count zero), each output's contributions summed into one buffer first. Grad mode
is off while nodes run. Unless ``retain_graph``, each node's saved tensors are freed after it
runs, so a second backward through it raises torch's "backward through the graph a second
time" error.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import _C
from . import grad_mode
from .graph import AccumulateGrad, edge

if TYPE_CHECKING:
    from .._tensor import Tensor

_TensorBase = _C.TensorBase


def _make_grads(outputs, grads):
    new = []
    for i, (out, g) in enumerate(zip(outputs, grads)):
        if g is None:
            if out.requires_grad:
                if out.numel() != 1:
                    raise RuntimeError("grad can be implicitly created only for scalar outputs")
                if not out.dtype.is_floating_point:
                    raise RuntimeError("grad can be implicitly created only for real scalar "
                                       f"outputs but got {out.dtype}")
                g = _C.empty(out._shape, out.dtype, out.device).fill_(1.0)
            new.append(g)
            continue
        if not isinstance(g, _TensorBase):
            raise TypeError("gradients can be either Tensors or None, but got "
                            f"{type(g).__name__}")
        if g._shape != out._shape:
            from .._tensor import Size
            raise RuntimeError(f"Mismatch in shape: grad_output[{i}] has a shape of "
                               f"{Size(g._shape)!r} and output[{i}] has a shape of "
                               f"{Size(out._shape)!r}.")
        if g.dtype != out.dtype or g.device != out.device:
            g = g._alias()._convert(out.dtype, out.device)
        new.append(g)
    return new


def _retain(node, buf) -> None:
    """Before ``node`` runs, for each output tensor registered on it (``node._retain``: output
    number -> weak reference): its ``register_hook`` hooks see the incoming gradient and may
    replace it (in registration order), then, for a non-leaf that retains its grad, ``.grad``
    gets the result (torch runs retains_grad last).  A leaf's hooks live on its
    AccumulateGrad node, output 0, so they run before the gradient is accumulated."""
    for nr, ref in node._retain.items():
        t = ref()
        if t is None or buf[nr] is None:
            continue
        d = t.__dict__
        hooks = d.get("_backward_hooks")
        if hooks:
            for hook in tuple(hooks.values()):
                r = hook(buf[nr])
                if r is not None:
                    if not isinstance(r, _TensorBase):
                        raise TypeError(f"hook returned a {type(r).__name__}; a tensor hook must "
                                        "return None or a Tensor")
                    if r._shape != buf[nr]._shape:
                        raise RuntimeError(f"hook 'hook' has changed the size of value: "
                                           f"expected {list(buf[nr]._shape)} but got "
                                           f"{list(r._shape)}")
                    buf[nr] = r
        if d.get("_retains_grad") and t.grad_fn is not None:
            g = buf[nr]
            t.grad = g.clone() if t.grad is None else t.grad + g


# One list of final callbacks per backward pass in progress (nested passes each get theirs).
_final_callbacks: list[list] = []


def queue_callback(callback) -> None:
    """Run ``callback()`` once the backward pass in progress has finished running its
    nodes (torch's ``Variable._execution_engine.queue_callback``); hooks use it to finish
    work that needs every gradient of the pass, e.g. DistributedDataParallel waiting for
    its bucket all-reduces.  Callbacks run in the order queued; one may queue more."""
    if not _final_callbacks:
        raise RuntimeError("Final callbacks can only be installed during backward pass.")
    _final_callbacks[-1].append(callback)


def _run_final_callbacks(cbs) -> None:
    i = 0
    while i < len(cbs):
        cbs[i]()
        i += 1


def run_backward(outputs, grads, retain_graph, inputs=None, allow_unused=False,
                 accumulate=True) -> tuple[Tensor | None, ...] | None:
    """Run ``_run_backward`` with a fresh list of final callbacks (``queue_callback``),
    called after the graph has run, also when it failed (so no queued work is left
    dangling); a failure of the pass itself takes precedence over a callback's."""
    cbs = []
    _final_callbacks.append(cbs)
    try:
        res = _run_backward(outputs, grads, retain_graph, inputs, allow_unused, accumulate)
    except BaseException:
        _final_callbacks.pop()
        try:
            _run_final_callbacks(cbs)
        except Exception:
            pass
        raise
    _final_callbacks.pop()
    _run_final_callbacks(cbs)
    return res


def _run_backward(outputs, grads, retain_graph, inputs=None, allow_unused=False,
                  accumulate=True) -> tuple[Tensor | None, ...] | None:
    """Backpropagate ``grads`` from ``outputs``.

    accumulate=True (``Tensor.backward``): gradients land in the leaves' ``.grad`` (only the
    ``inputs`` leaves when given). accumulate=False (``autograd.grad``): the gradients w.r.t.
    ``inputs`` are returned and no ``.grad`` is touched.
    """
    roots = []
    for i, out in enumerate(outputs):
        if not isinstance(out, _TensorBase):
            raise TypeError(f"element {i} of tensors is not a Tensor but {type(out).__name__}")
        e = edge(out)
        if e[0] is None:
            raise RuntimeError(f"element {i} of tensors does not require grad and does not have "
                               "a grad_fn")
        roots.append(e)
    grads = _make_grads(outputs, grads)

    # capture: (node, nr) -> position in the result, for autograd.grad / backward(inputs=)
    capture = captured = None
    if inputs is not None:
        capture = {}
        for j, t in enumerate(inputs):
            if not isinstance(t, _TensorBase):
                raise TypeError(f"inputs[{j}] is not a Tensor but {type(t).__name__}")
            if not t.requires_grad:
                raise RuntimeError(f"One of the differentiated Tensors does not require grad")
            e = edge(t)
            capture.setdefault((id(e[0]), e[1]), []).append(j)
        captured = [None] * len(inputs)

    # the graph itself runs in C (csrc/tensor/autograd_engine.c): dependency counts over the
    # reachable graph, one buffer per node output summing its contributions, nodes run when
    # all contributions arrived; each node's _apply / _release / retain_grad stay Python
    prev_mode = grad_mode.is_grad_enabled()
    grad_mode._set_enabled(False)
    try:
        _C._run_graph(roots, grads, bool(retain_graph), bool(accumulate), capture, captured,
                      AccumulateGrad, _retain)
    finally:
        grad_mode._set_enabled(prev_mode)

    if capture is not None and accumulate:
        # backward(inputs=[non-leaf]): the captured gradient accumulates into its .grad
        for j, g in enumerate(captured):
            t = inputs[j]
            if g is not None and t.grad_fn is not None:
                t.grad = g.clone() if t.grad is None else t.grad + g
    if capture is not None and not accumulate:
        for j, g in enumerate(captured):
            if g is None and not allow_unused:
                raise RuntimeError("One of the differentiated Tensors appears to not have been "
                                   "used in the graph. Set allow_unused=True if this is the "
                                   "desired behavior.")
        return tuple(captured)
    return None
