"""Built-in ShardedTensor ops registered with ``_sharded_op_impl`` (torch's
``sharded_tensor/_ops``): ``equal`` / ``allclose`` (module functions and Tensor methods) and
the ``nn.init`` initialisers applied to every local shard.  The ``*_like`` factories are
registered by the package ``__init__``.  Registration is skipped for functions this build
does not have yet (e.g. shardopt.nn before the nn layer lands).
"""
from ._shard_registry import _sharded_op_impl
from . import api as _api

__all__ = []


def validate_param(param, param_name):
    if param is None:
        raise ValueError(f"param: {param_name} shouldn't be None!")


def _cmp_impl(kind):
    def impl(types, args=(), kwargs=None, process_group=None):
        return _api._binary_cmp(kind, args, kwargs)
    impl.__name__ = kind
    return impl


def _init_impl(name, params):
    def impl(types, args=(), kwargs=None, process_group=None):
        validate_param(kwargs, "kwargs")
        st = kwargs.get("tensor")
        validate_param(st, "tensor")
        values = {}
        for p in params:
            values[p] = kwargs.get(p)
            validate_param(values[p], p)
        from ..nn import init as _init  # noqa: PLC0415
        fn = getattr(_init, name)
        extra = {}
        if kwargs.get("generator") is not None:
            extra["generator"] = kwargs["generator"]
        for shard in st.local_shards():
            # kaiming's fans come from the local shard's own shape, as torch
            fn(shard.tensor, **values, **extra)
        return st
    impl.__name__ = name
    return impl


def _register():
    import shardopt  # noqa: PLC0415
    from .._tensor import Tensor  # noqa: PLC0415
    for kind in ("equal", "allclose"):
        for owner in (shardopt, Tensor):
            fn = getattr(owner, kind, None)
            if fn is not None:
                _sharded_op_impl(fn)(_cmp_impl(kind))
    try:
        from ..nn import init as _init  # noqa: PLC0415
    except ImportError:
        return
    for name, params in [("uniform_", ("a", "b")), ("normal_", ("mean", "std")),
                         ("constant_", ("val",)),
                         ("kaiming_uniform_", ("a", "mode", "nonlinearity"))]:
        fn = getattr(_init, name, None)
        if fn is not None:
            _sharded_op_impl(fn)(_init_impl(name, params))


_register()
