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


def _contiguous(types, args=(), kwargs=None, process_group=None):
    """Tensor.contiguous on a ShardedTensor: a new ShardedTensor of contiguous local shards
    with the same metadata (torch's _ops/tensor_ops.py)."""
    import copy  # noqa: PLC0415
    from .shard import Shard  # noqa: PLC0415
    st = args[0]
    fmt = (kwargs or {}).get("memory_format", args[1] if len(args) > 1 else None)
    from .._layout import contiguous_format  # noqa: PLC0415
    if fmt is not None and fmt != contiguous_format:
        raise RuntimeError("Only support torch.contiguous_format for ShardedTensor.contiguous!")
    shards = [Shard(s.tensor.contiguous(), copy.deepcopy(s.metadata)) for s in st.local_shards()]
    return st._rebuild(shards, copy.deepcopy(st.metadata()), spec=st.sharding_spec())


def _register():
    import shardopt  # noqa: PLC0415
    from .._tensor import Tensor  # noqa: PLC0415
    for kind in ("equal", "allclose"):
        for owner in (shardopt, Tensor):
            fn = getattr(owner, kind, None)
            if fn is not None:
                _sharded_op_impl(fn)(_cmp_impl(kind))
    _sharded_op_impl(Tensor.contiguous)(_contiguous)
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
