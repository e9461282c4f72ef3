"""Op registry of ShardedTensor (torch's ``_shard/op_registry_utils.py`` and the tables of
``sharded_tensor/__init__.py`` / ``sharding_spec/api.py``).

Protocol.  A function ``func`` called with a ShardedTensor among its arguments ends in
``ShardedTensor.__torch_function__(func, types, args, kwargs)`` (torch's protocol; see
``shardopt/overrides.py``), which asks ``lookup`` here.  The call reaches it from:
  * ``shardopt``'s public functions (``shardopt.add``, ``shardopt.equal``...): they are
    published with ``shardopt.overrides.dispatchable`` by the package that defines them;
    the normal path calls the original, and only when that raises TypeError and an
    argument defines ``__torch_function__`` is the call dispatched (no cost otherwise);
  * ``shardopt.nn.init`` (its ``_dispatch``: a non-Tensor with ``__torch_function__``);
  * Tensor methods called on a ShardedTensor (``st.sqrt()``, ``st.add(1)``...): the class's
    ``__getattr__`` turns an unknown attribute that names a ``shardopt.Tensor`` method into
    a dispatch of ``shardopt.Tensor.<name>``.
Functions are keyed by identity after unwrapping the dispatch wrapper, so
``custom_sharded_op_impl(shardopt.sqrt)`` and ``custom_sharded_op_impl(shardopt.Tensor.sqrt)``
are two different ops, as in torch.

Dispatch order: user table (``custom_sharded_op_impl``), then the table of the tensor's spec
class (``custom_sharding_spec_op``), then the built-ins (``_sharded_op_impl``); a miss raises
RuntimeError "torch function '<name>', with args: ... and kwargs: ... not supported for
ShardedTensor!".
"""
import functools
import inspect

__all__ = ["custom_sharded_op_impl", "_sharded_op_impl", "custom_sharding_spec_op",
           "_CUSTOM_SHARDED_OPS", "_SHARDED_OPS", "_CUSTOM_SHARDING_SPEC_OPS", "canonical",
           "lookup"]

_CUSTOM_SHARDED_OPS = {}
_SHARDED_OPS = {}
_CUSTOM_SHARDING_SPEC_OPS = {}  # spec class qualname -> {func: impl}


def canonical(func):
    """The key of `func` in the tables: the original of a dispatch wrapper."""
    return getattr(func, "_shardopt_original", func)


def _func_name(func):
    return getattr(func, "__name__", None) or repr(func)


def _distributed_tensors(args, kwargs):
    from .api import ShardedTensor  # noqa: PLC0415 (api imports this module)

    found = []

    def walk(x):
        if isinstance(x, ShardedTensor):
            found.append(x)
        elif isinstance(x, (list, tuple)):
            for y in x:
                walk(y)
        elif isinstance(x, dict):
            for y in x.values():
                walk(y)
    walk(args)
    walk(kwargs or {})
    return found


def _basic_validation(op, args=(), kwargs=None):
    """torch's _basic_validation: inputs exist, one is distributed, all share one pg."""
    if len(args) == 0 and (kwargs is None or len(kwargs) == 0):
        raise ValueError(f" No input for '{_func_name(op)}'!")
    dts = _distributed_tensors(args, kwargs)
    if not dts:
        raise TypeError(f"torch function '{_func_name(op)}', with args: {args} and kwargs: "
                        f"{kwargs} are called without any distributed tensor!")
    pg = dts[0]._process_group
    for t in dts[1:]:
        if t._process_group is not pg:
            raise RuntimeError(f"All distributed tensors should use the same ProcessGroup if "
                               f"used together in an op.")


def _register(table, op, func):
    sig = inspect.signature(func)
    if len(sig.parameters) != 4:
        raise TypeError(f"Custom sharded op function expects signature: (types, args, kwargs, "
                        f"process_group), but received signature: {sig}")

    @functools.wraps(func)
    def wrapper(types, args=(), kwargs=None, process_group=None):
        _basic_validation(op, args, kwargs)
        return func(types, args, kwargs, process_group)

    table[canonical(op)] = wrapper
    return wrapper


def custom_sharded_op_impl(func):
    """Decorator: register a user implementation of `func` for ShardedTensor arguments.

    The implementation takes ``(types, args, kwargs, process_group)``; it overrides any
    built-in and spec-level implementation of the same function."""
    return functools.partial(_register, _CUSTOM_SHARDED_OPS, func)


def _sharded_op_impl(func):
    """Decorator: register a built-in ShardedTensor implementation of `func`."""
    return functools.partial(_register, _SHARDED_OPS, func)


def custom_sharding_spec_op(sharding_spec_class, func):
    """Decorator: implementation of `func` for ShardedTensors whose spec is an instance of
    `sharding_spec_class` (keyed by the class's qualified name, as torch)."""
    table = _CUSTOM_SHARDING_SPEC_OPS.setdefault(sharding_spec_class.__qualname__, {})
    return functools.partial(_register, table, func)


def lookup(func, spec):
    """The implementation for `func` on a tensor with `spec`, in torch's order, or None."""
    key = canonical(func)
    impl = _CUSTOM_SHARDED_OPS.get(key)
    if impl is not None:
        return impl
    if spec is not None:
        impl = _CUSTOM_SHARDING_SPEC_OPS.get(type(spec).__qualname__, {}).get(key)
        if impl is not None:
            return impl
    return _SHARDED_OPS.get(key)
