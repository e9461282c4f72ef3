"""torch.overrides for shardopt: the ``__torch_function__`` protocol.

A tensor-like class (ShardedTensor) defines ``__torch_function__(cls, func, types, args,
kwargs)``; a shardopt function that receives one dispatches there.  This module knows only
the protocol, never a concrete tensor-like type, so the tensor layer depends on nothing
above it.

shardopt's functions are C builtins or thin Python functions that reject non-Tensor inputs
with TypeError.  ``dispatchable(fn)`` is the function as published by the module that
defines it: it calls ``fn`` and, only when that raises TypeError and an argument's class
defines ``__torch_function__``, dispatches the call there instead, so the normal path
costs one Python frame and no argument scan.  The wrapper keeps the original in
``_shardopt_original`` (the op registry keys by it).

``dispatchable(fn, args_first=True)`` is torch's own order instead: the arguments are
scanned first and a tensor-like one dispatches before ``fn`` runs.  Python functions that
would otherwise accept a tensor-like argument by duck typing (``nn.functional.relu`` calls
``input.relu()``) use it, so that the registry is always consulted for them
(``custom_sharded_op_impl(F.relu)`` is honoured); C builtins reject a non-Tensor with
TypeError anyway and keep the cheaper order.
"""
import functools
import types as _types
from typing import Any, Callable, Dict, Iterable, Optional

__all__ = ["has_torch_function", "handle_torch_function", "dispatchable", "dispatchable_all"]


def _overloaded(args, kwargs):
    found = []

    def walk(x):
        tf = getattr(type(x), "__torch_function__", None)
        if tf is not None:
            if type(x) not in [type(f) for f in found]:
                found.append(x)
        elif isinstance(x, (list, tuple)):
            for y in x:
                walk(y)
    for a in args:
        walk(a)
    for v in (kwargs or {}).values():
        walk(v)
    return found


def has_torch_function(args, kwargs: Optional[Dict[str, Any]] = None) -> bool:
    """True if an argument's class defines ``__torch_function__``."""
    return bool(_overloaded(args, kwargs))


def handle_torch_function(func: Callable, args, kwargs: Optional[Dict[str, Any]] = None):
    """Call ``__torch_function__`` of the overloaded arguments' classes in order; the first
    result that is not NotImplemented wins."""
    kwargs = kwargs or {}
    over = _overloaded(args, kwargs)
    types = tuple(type(o) for o in over)
    for o in over:
        result = type(o).__torch_function__(func, types, args, kwargs)
        if result is not NotImplemented:
            return result
    raise TypeError(f"no implementation found for '{getattr(func, '__name__', func)}' on "
                    f"types that implement __torch_function__: {list(types)}")


# Exact types the tensor layer registered as never defining ``__torch_function__`` (its own
# Tensor and Parameter classes): the common all-plain-tensor call skips the attribute lookup
# per argument.  Subclasses are not in the set, so they still get the full check.
_PLAIN_TYPES = set()


def register_plain_type(cls: type) -> None:
    """Mark the exact class ``cls`` as one whose instances never dispatch (the tensor layer's
    own classes); raises if it defines ``__torch_function__``."""
    if hasattr(cls, "__torch_function__"):
        raise TypeError(f"{cls.__name__} defines __torch_function__")
    _PLAIN_TYPES.add(cls)


def _any_overloaded(args, kwargs) -> bool:
    # the argument scan of the args-first order, without building the list
    plain = _PLAIN_TYPES
    for a in args:
        if type(a) in plain:
            continue
        if hasattr(type(a), "__torch_function__") or (
                isinstance(a, (list, tuple)) and _overloaded(a, None)):
            return True
    if kwargs:
        for a in kwargs.values():
            if type(a) in plain:
                continue
            if hasattr(type(a), "__torch_function__") or (
                    isinstance(a, (list, tuple)) and _overloaded(a, None)):
                return True
    return False


def dispatchable(fn: Callable, *, args_first: bool = False) -> Callable:
    """``fn`` taking part in the protocol (see the module docstring).

    Args:
        fn: the function as its module defines it.
        args_first (bool): scan the arguments before calling ``fn`` (torch's order) instead
            of dispatching only when ``fn`` raises TypeError.
    """
    if getattr(fn, "_shardopt_original", None) is not None:
        return fn

    if args_first:
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            if _any_overloaded(args, kwargs):
                return handle_torch_function(wrapper, args, kwargs)
            return fn(*args, **kwargs)
    else:
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except TypeError:
                if not _overloaded(args, kwargs):
                    raise
            return handle_torch_function(wrapper, args, kwargs)

    wrapper._shardopt_original = fn
    # stay transparent to code that unwraps one level (autograd's wrappers expose the raw
    # op as __wrapped__): this dispatch layer is not a layer of the op itself
    wrapper.__wrapped__ = getattr(fn, "__wrapped__", fn)
    return wrapper


# functions that never take a tensor-like argument: published as they are
_NOT_DISPATCHED = {"manual_seed", "seed", "initial_seed", "get_rng_state", "set_rng_state",
                   "get_default_dtype", "set_default_dtype", "is_grad_enabled",
                   "set_grad_enabled", "no_grad", "enable_grad", "from_numpy", "tensor",
                   "as_tensor"}


def dispatchable_all(namespace: Dict[str, Any], names: Iterable[str], *,
                     args_first: bool = False) -> Dict[str, Callable]:
    """{name: dispatchable(fn, args_first=args_first)} for the public functions among
    `names` of a module's own namespace, for that module to publish (it is never applied to
    another module)."""
    out = {}
    for name in names:
        if name.startswith("_") or name in _NOT_DISPATCHED:
            continue
        fn = namespace.get(name)
        if isinstance(fn, (_types.BuiltinFunctionType, _types.FunctionType)):
            out[name] = dispatchable(fn, args_first=args_first)
    return out
