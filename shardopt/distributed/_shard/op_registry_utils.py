"""torch.distributed._shard.op_registry_utils's path, over shardopt's op registry
(shardopt/sharded_tensor/_shard_registry.py)."""
import inspect

from shardopt.sharded_tensor import _shard_registry as _reg
from .common_op_utils import _basic_validation  # noqa: F401


def _register_op(op, func, op_table):
    """Put ``func`` (signature ``(types, args, kwargs, process_group)``) in ``op_table``
    under ``op``, keyed as the registry keys functions."""
    if len(inspect.signature(func).parameters) != 4:
        raise TypeError(f"Custom sharded op function expects signature: (types, args, kwargs, "
                        f"process_group), but received signature: {inspect.signature(func)}")
    op_table[_reg.canonical(op)] = func


def _decorator_func(wrapped_func, op, op_table):
    """Register ``wrapped_func`` for ``op`` in ``op_table``, behind the registry's input
    validation; returns the registered wrapper."""
    return _reg._register(op_table, op, wrapped_func)
