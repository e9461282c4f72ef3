"""Installs autograd on ``shardopt.Tensor``: the Tensor-level API (backward, detach,
requires_grad_, is_leaf, retain_grad, ...) and the differentiable op wrappers over the raw ops.

Called once from the end of ``shardopt/_tensor.py``, after the raw ops of every area were
installed; ``FUNCTIONS`` then holds the differentiable module-level functions that
``shardopt/__init__.py`` re-exports over the raw ones.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import _C
from . import _common as c
from . import _indexing, _inplace, _math, _views, grad_mode
from .engine import run_backward
from .graph import output_nr

if TYPE_CHECKING:
    from .._tensor import Tensor

_TB = _C.TensorBase

FUNCTIONS = {}  # name -> differentiable module-level function (shardopt.add, shardopt.cat...)
_installed = []

# Tensor attribute names whose raw versions are captured (whatever of them exists)
_METHOD_NAMES = (
    set(_math._BINARY) | set(_math._UNARY) | set(_views._VIEWS) | set(_inplace._REBASE)
    | set(_inplace._OTHER_INPLACE) | set(_inplace._NEEDS.values())
    | {"gelu", "sum", "mean", "norm", "lerp", "addcmul", "addcdiv", "dot", "remainder",
       "__mod__", "__rmod__", "__getitem__", "__setitem__", "_convert", "clone", "copy_",
       "fill_", "zero_"}
    | set(_indexing.METHOD_NAMES)
)


def backward(self, gradient=None, retain_graph=None, create_graph=False, inputs=None) -> None:
    """Accumulate d(self)/d(leaf) into every leaf's ``.grad`` (torch's Tensor.backward)."""
    if create_graph:
        raise NotImplementedError("backward(create_graph=True): higher-order gradients are not "
                                  "supported by shardopt's autograd")
    if retain_graph is None:
        retain_graph = create_graph
    if inputs is not None:
        inputs = [inputs] if isinstance(inputs, _TB) else list(inputs)
        if not inputs:
            raise RuntimeError("'inputs' argument to backward() cannot be empty.")
    run_backward([self], [gradient], retain_graph, inputs=inputs, accumulate=True)


def detach(self) -> Tensor:
    """A tensor sharing this one's storage, with no history and requires_grad=False."""
    return self._alias()


def detach_(self) -> Tensor:
    if self.__dict__.get("_ag_base") is not None:
        raise RuntimeError("Can't detach views in-place. Use detach() instead. If you are using "
                           "DistributedDataParallel (DDP) for training, and gradient_as_bucket_"
                           "view is set as True, gradients are views of DDP buckets, and hence "
                           "detach_() cannot be called on these gradients. To fix this error, "
                           "please refer to the Optimizer.zero_grad() function in torch/optim/"
                           "optimizer.py as the solution.")
    self.grad_fn = None
    self.requires_grad = False
    d = self.__dict__
    d.pop("_output_nr", None)
    d.pop("_retains_grad", None)
    return self


def requires_grad_(self, requires_grad=True) -> Tensor:
    self.requires_grad = requires_grad
    return self


def retain_grad(self) -> None:
    """Keep ``.grad`` for this non-leaf tensor on the next backward passes."""
    if not self.requires_grad:
        raise RuntimeError("can't retain_grad on Tensor that has requires_grad=False")
    gf = self.grad_fn
    if gf is None:
        return
    gf._retain_grad(self, output_nr(self))
    self.__dict__["_retains_grad"] = True


class _HookHandle:
    """Returned by ``register_post_accumulate_grad_hook``; ``remove()`` unregisters the hook
    (torch.utils.hooks.RemovableHandle's interface)."""

    _next_id = 0

    def __init__(self, hooks: dict) -> None:
        self._hooks = hooks
        self.id = _HookHandle._next_id
        _HookHandle._next_id += 1

    def remove(self) -> None:
        self._hooks.pop(self.id, None)

    def __enter__(self) -> "_HookHandle":
        return self

    def __exit__(self, *args) -> None:
        self.remove()


def register_post_accumulate_grad_hook(self, hook) -> _HookHandle:
    """Call ``hook(tensor)`` after each backward pass has accumulated this leaf's ``.grad``
    (torch's Tensor.register_post_accumulate_grad_hook); returns a handle with ``remove()``."""
    if self.requires_grad and self.grad_fn is not None:
        raise RuntimeError("post accumulate grad hooks cannot be registered on non-leaf tensors")
    return _add_hook(self, hook, "_post_accumulate_grad_hooks")


def _add_hook(self, hook, key) -> _HookHandle:
    """Store ``hook`` in the tensor's ``key`` dict (checks torch's way); the handle removes it."""
    if not self.requires_grad:
        raise RuntimeError("cannot register a hook on a tensor that doesn't require gradient")
    if not callable(hook):
        raise TypeError(f"hook must be callable, got {type(hook).__name__}")
    hooks = self.__dict__.setdefault(key, {})
    handle = _HookHandle(hooks)
    hooks[handle.id] = hook
    return handle


def register_hook(self, hook) -> _HookHandle:
    """Call ``hook(grad)`` each time a gradient for this tensor is computed; a returned
    tensor replaces the gradient (torch's Tensor.register_hook).  On a leaf the hook runs
    before the gradient is accumulated into ``.grad``.  Returns a handle with ``remove()``."""
    handle = _add_hook(self, hook, "_backward_hooks")
    gf = self.grad_fn
    if gf is not None:
        gf._retain_grad(self, output_nr(self))  # the engine looks at this output's gradient
    else:
        ref = self._grad_acc  # a graph built earlier: its AccumulateGrad must see it too
        acc = ref() if ref is not None else None
        if acc is not None:
            acc._retain_grad(self, 0)
    return handle


def _is_leaf(self):
    return self.grad_fn is None


def _retains_grad(self):
    return self.grad_fn is not None and self.__dict__.get("_retains_grad", False)


def _data_get(self):
    return self._alias()


def _data_set(self, value):
    raise NotImplementedError("assigning Tensor.data is not supported by shardopt; write the new "
                              "values with copy_() under shardopt.no_grad()")


def _wrap_deepcopy(orig):
    def __deepcopy__(self, memo):
        if self.grad_fn is not None:
            raise RuntimeError("Only Tensors created explicitly by the user (graph leaves) "
                               "support the deepcopy protocol at the moment.  If you were "
                               "attempting to deepcopy a module, this may be because of a "
                               "torch.nn.utils.weight_norm usage, see "
                               "https://github.com/pytorch/pytorch/pull/103001")
        with grad_mode.no_grad():
            return orig(self, memo)
    return __deepcopy__


def _install(Tensor):
    """Capture the raw ops present on Tensor / in shardopt._ops and install the
    differentiable versions. Idempotent."""
    if _installed:
        return
    _installed.append(Tensor)
    from .. import _ops
    for name in _METHOD_NAMES:
        raw = getattr(Tensor, name, None)
        if raw is not None:
            c.RAW_M[name] = raw
    for mod in tuple(getattr(_ops, "AREAS", ())) + (_ops,):
        for name in dir(mod):
            if not name.startswith("__"):
                obj = getattr(mod, name)
                if callable(obj) and not isinstance(obj, type) and \
                        getattr(obj, "__module__", None) != __name__:
                    c.RAW_F[name] = obj
    methods = {}
    functions = {}
    _math.build(methods, functions)
    _views.build(methods, functions)
    _indexing.build(methods, functions)
    _inplace.build(methods)
    for name, fn in methods.items():
        setattr(Tensor, name, fn)
    functions.pop("linear", None)  # torch has it in nn.functional only
    FUNCTIONS.update(functions)

    Tensor.backward = backward
    Tensor.detach = detach
    Tensor.detach_ = detach_
    Tensor.requires_grad_ = requires_grad_
    Tensor.retain_grad = retain_grad
    Tensor.register_post_accumulate_grad_hook = register_post_accumulate_grad_hook
    Tensor.register_hook = register_hook
    Tensor.is_leaf = property(_is_leaf)
    Tensor.retains_grad = property(_retains_grad)
    if not hasattr(Tensor, "data"):
        Tensor.data = property(_data_get, _data_set)
    Tensor.__deepcopy__ = _wrap_deepcopy(Tensor.__deepcopy__)
    if "detach" in c.RAW_F:
        FUNCTIONS["detach"] = detach
