"""shardopt.sharded_tensor: torch.distributed._shard.sharded_tensor without PyTorch.

``ShardedTensor(ShardedTensorBase(_C.ShardedTensorBase))`` is defined in ``api.py`` (the
data and the properties read from it are C, csrc/shard/sharded_tensor.c; the behaviour is
the class bodies).  The internals live beside it: ``_shard_registry.py`` (the op registry),
``_shard_chunk.py`` (scattering a full tensor), ``_shard_api.py`` (shard_parameter),
``_builtin_ops.py`` (the built-in sharded ops).  This module holds the factories
(empty/zeros/ones/full/rand/randn and the ``*_like`` ops), ``init_from_local_shards``, the
op-registry decorators (``custom_sharded_op_impl``, ``_sharded_op_impl``), the state-dict
hooks and ``load_with_process_group``.

Notes on shardopt's behaviour where it differs from torch (spec §12):
  * placements without a rank ("cuda:0") are rejected by every tensor-creating call;
    worker names ("worker1/cpu") resolve through RPC (init_rpc first), as in torch; ranks
    in placements are global ranks;
  * init_from_local_shards exchanges local validation errors inside its collective, so
    every rank raises and none hangs;
  * gather stages in the tensor's own dtype; equal/allclose communicate on cpu for Gloo;
  * ``init_rrefs=True`` needs ``shardopt.distributed.rpc.init_rpc`` (torch's error
    otherwise) and fills ``remote_shards()`` with RRefs to every other rank's shards;
  * ``shardopt.nn.Parameter(st)`` returns ``st`` itself marked ``_is_param`` (so
    ``named_parameters()`` lists it), its local shard tensors being the leaves that get
    gradients.
"""
from .. import _C
from .._layout import contiguous_format, strided
from ._shard_registry import _sharded_op_impl, custom_sharded_op_impl  # noqa: F401
from .api import ShardedTensor, ShardedTensorBase, load_with_process_group  # noqa: F401
from .metadata import ShardedTensorMetadata, TensorProperties
from .shard import Shard
from ._shard_chunk import _shard_tensor  # noqa: F401  (shard_parameter builds on it)
from .._C import ShardMetadata
from . import _builtin_ops  # noqa: F401  (registers the built-in ops)
from . import _sharded_linear  # noqa: F401,E402  (registers the sharded F.linear)
from . import _sharded_embedding  # noqa: F401,E402  (F.embedding, F.embedding_bag)

__all__ = [
    "Shard", "ShardMetadata", "ShardedTensorMetadata", "TensorProperties", "ShardedTensor",
    "ShardedTensorBase", "empty", "zeros", "ones", "full", "rand", "randn",
    "init_from_local_shards", "state_dict_hook", "pre_load_state_dict_hook",
    "custom_sharded_op_impl", "load_with_process_group",
]


def empty(sharding_spec, *size, dtype=None, layout=strided, requires_grad=False,
          pin_memory=False, memory_format=contiguous_format, process_group=None,
          init_rrefs=False) -> ShardedTensor:
    """A ShardedTensor with uninitialised local shards (torch's sharded_tensor.empty)."""
    return ShardedTensor(sharding_spec, *size, dtype=dtype, layout=layout,
                         requires_grad=requires_grad, pin_memory=pin_memory,
                         memory_format=memory_format, process_group=process_group,
                         init_rrefs=init_rrefs)


def _fill_each(st, fill):
    from .api import _no_grad  # noqa: PLC0415
    with _no_grad():
        for shard in st.local_shards():
            fill(shard.tensor)
    return st


def full(sharding_spec, size, fill_value, *, dtype=None, layout=strided, requires_grad=False,
         pin_memory=False, memory_format=contiguous_format, process_group=None,
         init_rrefs=False) -> ShardedTensor:
    """Every element equals `fill_value`; a None dtype means the default dtype (not
    inferred from fill_value, as torch's implementation)."""
    if isinstance(size, int):
        size = (size,)
    st = empty(sharding_spec, *size, dtype=dtype, layout=layout, requires_grad=requires_grad,
               pin_memory=pin_memory, memory_format=memory_format,
               process_group=process_group, init_rrefs=init_rrefs)
    return _fill_each(st, lambda t: t.fill_(fill_value))


def zeros(sharding_spec, *size, dtype=None, layout=strided, requires_grad=False,
          pin_memory=False, memory_format=contiguous_format, process_group=None,
          init_rrefs=False) -> ShardedTensor:
    return full(sharding_spec, size, 0, dtype=dtype, layout=layout, requires_grad=requires_grad,
                pin_memory=pin_memory, memory_format=memory_format,
                process_group=process_group, init_rrefs=init_rrefs)


def ones(sharding_spec, *size, dtype=None, layout=strided, requires_grad=False,
         pin_memory=False, memory_format=contiguous_format, process_group=None,
         init_rrefs=False) -> ShardedTensor:
    return full(sharding_spec, size, 1, dtype=dtype, layout=layout, requires_grad=requires_grad,
                pin_memory=pin_memory, memory_format=memory_format,
                process_group=process_group, init_rrefs=init_rrefs)


def _uniform_(t, a=0.0, b=1.0):
    fn = getattr(t, "uniform_", None)
    if fn is not None:
        return fn(a, b)
    raw = getattr(_C, "_uniform_", None)
    if raw is None:
        raise NotImplementedError("sharded rand needs shardopt's RNG (Tensor.uniform_), which "
                                  "this build does not have")
    return raw(t, a, b, None)


def _normal_(t, mean=0.0, std=1.0):
    fn = getattr(t, "normal_", None)
    if fn is not None:
        return fn(mean, std)
    raw = getattr(_C, "_normal_", None)
    if raw is None:
        raise NotImplementedError("sharded randn needs shardopt's RNG (Tensor.normal_), which "
                                  "this build does not have")
    return raw(t, mean, std, None)


def rand(sharding_spec, *size, dtype=None, layout=strided, requires_grad=False,
         pin_memory=False, memory_format=contiguous_format, process_group=None,
         init_rrefs=False) -> ShardedTensor:
    """Uniform [0, 1): each rank fills its local shards, in local order, from its own
    device generator (no coordination across ranks, no offset by shard position)."""
    st = empty(sharding_spec, *size, dtype=dtype, layout=layout, requires_grad=requires_grad,
               pin_memory=pin_memory, memory_format=memory_format,
               process_group=process_group, init_rrefs=init_rrefs)
    return _fill_each(st, _uniform_)


def randn(sharding_spec, *size, dtype=None, layout=strided, requires_grad=False,
          pin_memory=False, memory_format=contiguous_format, process_group=None,
          init_rrefs=False) -> ShardedTensor:
    """Standard normal, with rand's per-rank contract."""
    st = empty(sharding_spec, *size, dtype=dtype, layout=layout, requires_grad=requires_grad,
               pin_memory=pin_memory, memory_format=memory_format,
               process_group=process_group, init_rrefs=init_rrefs)
    return _fill_each(st, _normal_)


def init_from_local_shards(local_shards, *global_size, process_group=None,
                           init_rrefs=False) -> ShardedTensor:
    """Assemble a ShardedTensor from every rank's local shards (an SPMD collective).

    A None entry in `global_size` recomputes a row-wise layout: shards ordered by rank get
    cumulative dim-0 offsets and the global size becomes [sum of dim 0, other dims]."""
    return ShardedTensor._init_from_local_shards(local_shards, *global_size,
                                                 process_group=process_group,
                                                 init_rrefs=init_rrefs)


def state_dict_hook(module, destination, prefix, local_metadata) -> None:
    """Module state-dict hook (register on the root with ``_register_state_dict_hook``):
    adds every ShardedTensor held as a plain attribute of any submodule."""
    for submodule_name, submodule in module.named_modules():
        for attr_name, attr in submodule.__dict__.items():
            if isinstance(attr, ShardedTensor):
                mod_prefix = prefix + submodule_name
                key = mod_prefix + ("." if mod_prefix else "") + attr_name
                destination[key] = attr


def pre_load_state_dict_hook(module, state_dict, prefix, local_metadata, strict, missing_keys,
                             unexpected_keys, error_msgs) -> None:
    """Load pre-hook (``_register_load_state_dict_pre_hook(hook, True)``): sets existing
    ShardedTensor attributes from the state dict."""
    for submodule_name, submodule in module.named_modules():
        for attr_name in list(submodule.__dict__.keys()):
            mod_prefix = prefix + submodule_name
            key = mod_prefix + ("." if mod_prefix else "") + attr_name
            if key in state_dict and isinstance(state_dict[key], ShardedTensor):
                setattr(submodule, attr_name, state_dict[key])


def _like(factory, name):
    def impl(types, args=(), kwargs=None, pg=None):
        st = args[0]
        if not isinstance(st, ShardedTensor):
            raise TypeError(f"{name}: expected a ShardedTensor, got {type(st).__name__}")
        kwargs = dict(kwargs or {})
        return factory(st.sharding_spec(), st.size(), *args[1:], **kwargs)
    impl.__name__ = name
    return impl


def _register_like_ops():
    import shardopt  # noqa: PLC0415
    for name, factory in [("empty_like", empty), ("zeros_like", zeros), ("ones_like", ones),
                          ("rand_like", rand), ("randn_like", randn), ("full_like", full)]:
        fn = getattr(shardopt, name, None)
        if fn is not None:
            _sharded_op_impl(fn)(_like(factory, name))


_register_like_ops()

