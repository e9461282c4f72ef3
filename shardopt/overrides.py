"""torch.overrides for shardopt: routing module-level functions to tensor-like classes that
define ``__torch_function__`` (ShardedTensor).

shardopt's functions are C builtins or thin Python functions that reject non-Tensor inputs
with TypeError.  ``install(namespace)`` wraps each public function of a module namespace so
that, when the call raises TypeError and one of the arguments has a ``__torch_function__``
class method, the call is dispatched there instead; the normal path costs one Python frame.
The wrapper keeps the original in ``_shardopt_original`` (the op registry keys by it).
"""
import functools
import types as _types

__all__ = ["has_torch_function", "handle_torch_function", "install"]


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


def has_torch_function(args, kwargs=None):
    return bool(_overloaded(args, kwargs))


def handle_torch_function(func, args, kwargs=None):
    """Call ``__torch_function__`` of the first overloaded argument's class."""
    kwargs = kwargs or {}
    over = _overloaded(args, kwargs)
    types = tuple(type(o) for o in over)
    for o in over:
        result = type(o).__torch_function__(func, types, args, kwargs)
        if result is not NotImplemented:
            return result
    raise TypeError(f"no implementation found for '{getattr(func, '__name__', func)}' on "
                    f"types that implement __torch_function__: {list(types)}")


def _wrap(fn):
    if getattr(fn, "_shardopt_original", None) is not None:
        return fn

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


_SKIP = {"manual_seed", "seed", "initial_seed", "get_rng_state", "set_rng_state",
         "get_default_dtype", "set_default_dtype", "is_grad_enabled", "set_grad_enabled",
         "no_grad", "enable_grad", "from_numpy", "tensor", "as_tensor"}


def install(namespace, names=None):
    """Wrap the public functions of `namespace` (a module dict) in place."""
    for name in list(names if names is not None else namespace):
        if name.startswith("_") or name in _SKIP:
            continue
        fn = namespace.get(name)
        if isinstance(fn, (_types.BuiltinFunctionType, _types.FunctionType)):
            namespace[name] = _wrap(fn)
