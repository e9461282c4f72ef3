"""ShardedTensor's collective and Python-natural methods, installed on the C type
(``shardopt._C.ShardedTensor``, csrc/shard/sharded_tensor.c) by ``_install()``.

C holds the object, its properties and every validation of local shards against metadata;
here live the methods that communicate or shuffle Python objects:
  * ``_init_from_local_shards`` (init_from_local_shards): local checks in C, then ONE
    all_gather_object carrying (error-or-None, local metadata) so that a rank whose input
    is bad raises its own message and every other rank raises a ValueError/RuntimeError
    naming that rank — nobody is left blocked in the collective (deviation §12.1);
  * ``gather`` (per-rank flat buffers + dist.gather, staged in the tensor's own dtype,
    zero-element shards skipped, no zero-length collective);
  * device/dtype moves (cpu, cuda, to), clone, detach, copy_, requires_grad_, type_as;
  * pickling with the process-group checks, ``__deepcopy__`` (same pg object);
  * ``__torch_function__`` (see shardopt/_shard_registry.py) and the ``__getattr__`` that
    routes Tensor methods called on a ShardedTensor through the op registry;
  * ``_as_parameter`` (``shardopt.nn.Parameter(st)`` returns ``st`` marked as a parameter).
"""
import contextlib
import copy
import threading
import warnings

from .. import _C
from .. import _shard_registry as _reg
from .. import distributed as dist
from .._layout import contiguous_format, preserve_format
from .metadata import ShardedTensorMetadata  # noqa: F401  (pickled metadata)

ShardedTensorBase = _C.ShardedTensorBase
ShardedTensor = _C.ShardedTensor
Shard = _C.Shard

__all__ = ["ShardedTensor", "ShardedTensorBase", "load_with_process_group"]


# ------------------------------------------------------------------ small helpers

def _c10d():
    return dist.distributed_c10d


def _resolve_pg(pg):
    return _c10d()._default() if pg is None else pg


def _not_member(pg):
    return pg is dist.GroupMember.NON_GROUP_MEMBER


def _no_grad():
    import shardopt  # noqa: PLC0415
    ng = getattr(shardopt, "no_grad", None)
    return ng() if ng is not None else contextlib.nullcontext()


def _detach(t):
    d = getattr(t, "detach", None)
    if d is not None:
        return d()
    a = t._alias()
    return a


def _with_device(placement, device):
    """A copy of `placement` on `device` (placements are immutable records)."""
    dev = str(device)
    if placement.worker_name() is not None:
        return _C._remote_device(f"{placement.worker_name()}/{dev}")
    if placement.rank() is not None:
        return _C._remote_device(f"rank:{placement.rank()}/{dev}")
    return _C._remote_device(dev)


def _set_device(md, device):
    if md.placement is not None:
        md.placement = _with_device(md.placement, device)


def _preferred_device(st):
    backend = getattr(st._process_group, "_backend", "gloo")
    if backend == "nccl":
        import shardopt  # noqa: PLC0415
        return _C.device("cuda", shardopt.cuda.current_device())
    return _C.device("cpu")


def _numel(sizes):
    n = 1
    for s in sizes:
        n *= s
    return n


def _new_from(cls, local_shards, metadata, pg, spec, init_rrefs=False):
    """An instance of `cls` holding the given parts, without checks."""
    st = cls.__new__(cls)
    st._local_shards = list(local_shards)
    st._metadata = metadata
    st._sharding_spec = spec
    st._process_group = pg
    return st


def _rrefs_error():
    return RuntimeError("RPC Framework needs to be initialized using "
                        "torch.distributed.rpc.init_rpc if init_rrefs is set to True")


# ------------------------------------------------------------------ init_from_local_shards

def _flatten_size(size):
    if len(size) == 1 and isinstance(size[0], (list, tuple)):
        dims = list(size[0])
    else:
        dims = list(size)
    return dims


def _error_payload(err):
    return (type(err).__name__, str(err))


_REMOTE_ERRORS = {"ValueError": ValueError, "TypeError": TypeError, "RuntimeError": RuntimeError,
                  "NotImplementedError": NotImplementedError, "IndexError": IndexError}


def _init_from_local_shards(cls, local_shards, *global_size, process_group=None,
                            init_rrefs=False):
    from .. import Size  # noqa: PLC0415

    pg = _resolve_pg(process_group)
    if _not_member(pg):
        raise ValueError("init_from_local_shards: this rank is not a member of process_group")
    rank = dist.get_rank()
    world = pg.size()
    err, local_md, recalc = None, None, False
    try:
        dims = _flatten_size(global_size)
        recalc = any(d is None for d in dims)
        dims = [0 if d is None else d for d in dims]
        for d in dims:
            if not isinstance(d, int):
                raise TypeError(f"size has to be a sequence of ints, found: {dims}")
        gsize = Size(dims)
        local_shards = list(local_shards)
        if local_shards:
            local_md = _C._st_local_metadata(local_shards, gsize, pg, rank)
    except (ValueError, TypeError, RuntimeError, NotImplementedError, IndexError,
            AttributeError) as e:
        err = e
    # One exchange carries both the error flag and the metadata: every rank gets the same
    # list, so every rank takes the same decision below.
    mine = (_error_payload(err) if err is not None else None, local_md if err is None else None)
    if world > 1:
        gathered = [None] * world
        dist.all_gather_object(gathered, mine, group=pg)
    else:
        gathered = [mine]
    if err is not None:
        raise err
    for g, (e, _) in enumerate(gathered):
        if e is not None:
            etype = _REMOTE_ERRORS.get(e[0], RuntimeError)
            raise etype(f"init_from_local_shards failed on rank {pg._ranks[g]}: {e[0]}: {e[1]}")
    global_md = _C._st_global_metadata([md for _, md in gathered], recalc)
    if recalc:
        mine_md = [m for m in global_md.shards_metadata
                   if m.placement is not None and m.placement.rank() == rank]
        if len(local_shards) > 1 or len(mine_md) > 1:
            raise ValueError("init_from_local_shards with a None global size (row-wise "
                             "recalculation) needs at most one local shard per rank")
        if local_shards:
            local_shards[0].metadata = mine_md[0]
    spec = _C._infer_sharding_spec_from_shards_metadata(global_md.shards_metadata)
    st = _new_from(cls, local_shards, global_md, pg, spec)
    if init_rrefs:
        raise _rrefs_error()
    return st


def _init_from_local_tensor(cls, local_tensor, sharding_spec, *global_size, process_group=None,
                            init_rrefs=False):
    """Deprecated: wrap `local_tensor` as this rank's shard(s) of `sharding_spec`."""
    from .. import Size  # noqa: PLC0415
    from .metadata import TensorProperties  # noqa: PLC0415

    warnings.warn("Please use DTensor instead and we are deprecating ShardedTensor.",
                  FutureWarning, stacklevel=2)
    if not local_tensor.is_contiguous():
        raise ValueError("local_tensor is not a contiguous Tensor.")
    gsize = Size(_flatten_size(global_size))
    props = TensorProperties(dtype=local_tensor.dtype, layout=getattr(local_tensor, "layout", None)
                             or _strided(), requires_grad=local_tensor.requires_grad,
                             memory_format=contiguous_format, pin_memory=False)
    md = sharding_spec.build_metadata(gsize, props)
    pg = _resolve_pg(process_group)
    rank = dist.get_rank()
    shards = []
    for smd in md.shards_metadata:
        pl = smd.placement
        if pl is not None and pl.rank() == rank:
            shards.append(Shard(local_tensor, smd))
    return cls._init_from_local_shards_and_global_metadata(
        shards, md, process_group=pg, init_rrefs=init_rrefs, sharding_spec=sharding_spec)


def _strided():
    from .. import strided  # noqa: PLC0415
    return strided


# ------------------------------------------------------------------ gather

def gather(self, dst=0, out=None, enforce_dtype=False, dtype=None):
    """Assemble the full tensor into `out` on group rank `dst` (an SPMD collective: every
    rank of the process group calls it; `out` is given on dst only)."""
    pg = self._process_group
    rank = dist.get_rank(pg)
    full_size = self.metadata().size
    if dst == rank:
        if out is None:
            raise ValueError(f"Argument ``dst_tensor`` must be specified on destination rank {dst}")
        if tuple(out.size()) != tuple(full_size):
            raise ValueError(f"Argument ``dst_tensor`` have size {tuple(out.size())},"
                             f"but should be {tuple(full_size)}")
    elif out is not None:
        raise ValueError("Argument ``dst_tensor`` must NOT be specified on non-destination ranks.")
    world = dist.get_world_size(pg)
    group_ranks = list(pg._ranks)
    rank_sizes = [0] * world
    max_rank_size = 0
    placement = []  # per global shard: (group rank, element offset in that rank's buffer)
    for smd in self.metadata().shards_metadata:
        g = group_ranks.index(smd.placement.rank())
        placement.append((g, rank_sizes[g]))
        rank_sizes[g] += _numel(smd.shard_sizes)
        max_rank_size = max(max_rank_size, rank_sizes[g])
    if dtype is None:
        if enforce_dtype:
            warnings.warn("enforce_dtype is deprecated. Please use dtype instead.", FutureWarning,
                          stacklevel=2)
            dtype = out.dtype if out is not None else self.dtype
        else:
            dtype = self.dtype  # deviation §12.2: never round through the default dtype
    if max_rank_size == 0:
        return None  # nothing to move (and Gloo must not see a zero-length collective)
    # where each local shard goes inside this rank's buffer: match by metadata, in order
    mds = self.metadata().shards_metadata
    slots = {}
    for i, smd in enumerate(mds):
        if group_ranks.index(smd.placement.rank()) == rank:
            slots.setdefault(smd, []).append(placement[i][1])
    device = _preferred_device(self)
    with _no_grad():
        data = _C.empty((max_rank_size,), dtype, device)
        data.zero_()
        for shard in self.local_shards():
            src = _detach(shard.tensor)
            n = src.numel()
            offs = slots.get(shard.metadata)
            if not offs:
                raise RuntimeError(f"local shard {shard.metadata} is not in the global metadata")
            off = offs.pop(0)
            if n == 0:
                continue  # zero-element shards occupy no slot
            data.narrow(0, off, n).copy_(src.contiguous().reshape((n,)))
        gather_list = None
        if rank == dst:
            gather_list = [_C.empty((max_rank_size,), dtype, device) for _ in range(world)]
        dist.gather(data, gather_list, dst=group_ranks[dst], group=pg)
        if rank != dst:
            return None
        for i, smd in enumerate(mds):
            n = _numel(smd.shard_sizes)
            if n == 0:
                continue
            g, off = placement[i]
            piece = gather_list[g].narrow(0, off, n).reshape(tuple(smd.shard_sizes))
            view = out
            for d in range(len(full_size)):
                view = view.narrow(d, smd.shard_offsets[d], smd.shard_sizes[d])
            view.copy_(piece)
    return None


# ------------------------------------------------------------------ moves and copies

def _rebuild(self, shards, st_meta, process_group=None, spec=None):
    pg = self._process_group if process_group is None else process_group
    return type(self)._init_from_local_shards_and_global_metadata(
        shards, st_meta, process_group=pg, init_rrefs=False, sharding_spec=spec)


def cpu(self, memory_format=preserve_format, process_group=None):
    """A copy on cpu (self when every placement already is on cpu)."""
    if memory_format not in (preserve_format, contiguous_format):
        raise RuntimeError("Only `torch.contiguous_format` or `torch.preserve_format` is "
                           "supported!")
    if all(md.placement.device().type == "cpu" for md in self.metadata().shards_metadata):
        return self
    shards = []
    for shard in self.local_shards():
        md = copy.deepcopy(shard.metadata)
        _set_device(md, "cpu")
        shards.append(Shard(shard.tensor.cpu(), md))
    st_meta = copy.deepcopy(self.metadata())
    for md in st_meta.shards_metadata:
        if md.placement.device().type != "cpu":
            _set_device(md, "cpu")
    return _rebuild(self, shards, st_meta, process_group)


def cuda(self, device=None, non_blocking=False, memory_format=preserve_format,
         process_group=None):
    """A copy whose shards live on the current CUDA device (always a new object)."""
    import shardopt  # noqa: PLC0415
    if memory_format not in (preserve_format, contiguous_format):
        raise RuntimeError("Only `torch.contiguous_format` or `torch.preserve_format` is "
                           "supported!")
    current = _C.device("cuda", shardopt.cuda.current_device())
    if device is not None:
        device = _C.device(device) if isinstance(device, str) else (
            _C.device("cuda", device) if isinstance(device, int) else device)
        if device.index is not None and device.index != current.index:
            raise ValueError('Only device without device id (e.g. "cpu" or "cuda") is expected '
                             'for ShardedTensor!')
    shards = []
    for shard in self.local_shards():
        md = copy.deepcopy(shard.metadata)
        _set_device(md, current)
        t = shard.tensor if shard.tensor.device == current else shard.tensor.cuda(current.index)
        shards.append(Shard(t, md))
    st_meta = copy.deepcopy(self.metadata())
    for md in st_meta.shards_metadata:
        if md.placement.device().type != "cuda":
            _set_device(md, current)
    return _rebuild(self, shards, st_meta, process_group)


def to(self, *args, **kwargs):
    """to(dtype) | to(device) | to(tensor) | to(device, dtype) | to(dtype=, device=, copy=,
    non_blocking=, memory_format=, process_group=)."""
    import shardopt  # noqa: PLC0415
    current_device = self.device
    current_dtype = self.dtype
    device_to, dtype_to = current_device, current_dtype
    if len(args) == 1:
        a = args[0]
        if isinstance(a, _C.dtype):
            dtype_to = a
        elif isinstance(a, _C.device):
            device_to = a
        elif isinstance(a, (str, int)) and not isinstance(a, bool):
            device_to = a
        elif isinstance(a, _C.TensorBase):
            dtype_to, device_to = a.dtype, a.device
        else:
            raise RuntimeError(f"ShardedTensor.to() have wrong arguments: {args}")
    elif len(args) == 2:
        device_to, dtype_to = args
    elif len(args) > 2:
        raise RuntimeError(f"ShardedTensor.to() have wrong arguments: {args}")
    dtype_to = kwargs.pop("dtype", dtype_to)
    device_to = kwargs.pop("device", device_to)
    copy_tensor = kwargs.pop("copy", False)
    kwargs.pop("non_blocking", None)
    memory_format = kwargs.pop("memory_format", preserve_format)
    process_group = kwargs.pop("process_group", None)
    if kwargs:
        raise TypeError(f"ShardedTensor.to() got unexpected keyword arguments {sorted(kwargs)}")
    if memory_format not in (preserve_format, contiguous_format):
        raise RuntimeError("Only `torch.contiguous_format` or `torch.preserve_format` is "
                           "supported!")
    if isinstance(device_to, int):
        device_to = _C.device("cuda", device_to)
    elif isinstance(device_to, str):
        device_to = _C.device(device_to)
    if device_to.type == "cuda":
        current_idx = shardopt.cuda.current_device()
        if device_to.index is not None and device_to.index != current_idx:
            warnings.warn("ShardedTensor.to only move tensor to its current device"
                          "If you want to put to different device, use `reshard` instead.",
                          stacklevel=2)
        device_to = _C.device("cuda", current_idx)
    if not copy_tensor and dtype_to == current_dtype and device_to == current_device:
        return self
    shards = []
    for shard in self.local_shards():
        t = shard.tensor.to(device=device_to, dtype=dtype_to, copy=copy_tensor)
        md = copy.deepcopy(shard.metadata)
        _set_device(md, device_to)
        shards.append(Shard(t, md))
    st_meta = copy.deepcopy(self.metadata())
    st_meta.tensor_properties.dtype = dtype_to
    for md in st_meta.shards_metadata:
        _set_device(md, device_to)
    return _rebuild(self, shards, st_meta, process_group)


def clone(self, memory_format=preserve_format):
    if memory_format != preserve_format:
        raise RuntimeError("Only support torch.preserve_format for ShardedTensor!")
    shards = [Shard(shard.tensor.clone(), copy.deepcopy(shard.metadata))
              for shard in self.local_shards()]
    return _rebuild(self, shards, copy.deepcopy(self.metadata()), spec=self.sharding_spec())


def detach(self):
    shards = [Shard(_detach(shard.tensor), shard.metadata) for shard in self.local_shards()]
    st_meta = copy.deepcopy(self.metadata())
    st_meta.tensor_properties.requires_grad = False
    return _rebuild(self, shards, st_meta, spec=self.sharding_spec())


def requires_grad_(self, requires_grad=True):
    for shard in self.local_shards():
        fn = getattr(shard.tensor, "requires_grad_", None)
        if fn is not None:
            fn(requires_grad)
        else:
            shard.tensor.requires_grad = requires_grad
    self.metadata().tensor_properties.requires_grad = requires_grad
    return self


def copy_(self, src, non_blocking=False):
    if not isinstance(src, ShardedTensor):
        raise TypeError(f"ShardedTensor.copy_ expects a ShardedTensor source, got "
                        f"{type(src).__name__}")
    mine, theirs = self.local_shards(), src.local_shards()
    if self.metadata() != src.metadata() or len(mine) != len(theirs):
        raise RuntimeError("inplace copy can only happen between two ShardedTensor with same "
                           "metadata!")
    for a, b in zip(mine, theirs):
        if a.metadata != b.metadata:
            raise RuntimeError("inplace copy can only happen between two ShardedTensor with "
                               "same metadata!")
    with _no_grad():
        for a, b in zip(mine, theirs):
            a.tensor.copy_(b.tensor)
    return self


def type_as(self, other):
    return self if self.dtype == other.dtype else self.to(other.dtype)


def _as_parameter(self, requires_grad=True):
    """shardopt.nn.Parameter(st): st itself, marked as a parameter; its local shard tensors
    become leaves with `requires_grad` (torch: nn.Parameter of a Tensor subclass)."""
    shards = []
    for shard in self.local_shards():
        t = _detach(shard.tensor)
        t.requires_grad = requires_grad
        shards.append(Shard(t, shard.metadata))
    self._local_shards = shards
    self.metadata().tensor_properties.requires_grad = requires_grad
    self._is_param = True
    return self


# ------------------------------------------------------------------ equality

def _np(t):
    t = _detach(t).cpu()
    name = t.dtype._name if hasattr(t.dtype, "_name") else str(t.dtype)
    if "bfloat16" in name:
        t = t.to(_C.float32)
    return t.contiguous().numpy()


def _local_cmp(kind, a, b, kwargs):
    import numpy as np  # noqa: PLC0415
    if tuple(a.shape) != tuple(b.shape) or a.dtype != b.dtype:
        return False
    x, y = _np(a), _np(b)
    if kind == "equal":
        return bool(np.array_equal(x, y))
    return bool(np.allclose(x, y, rtol=kwargs.get("rtol", 1e-5), atol=kwargs.get("atol", 1e-8),
                            equal_nan=kwargs.get("equal_nan", False)))


def _communicate_result(result, pg):
    flag = _C.empty((1,), _C.int64, _C.device("cpu"))  # deviation §12.3: cpu for Gloo
    flag.fill_(1 if result else 0)
    dist.all_reduce(flag, group=pg)
    return int(flag.numpy()[0]) == dist.get_world_size(pg)


def _binary_cmp(kind, args, kwargs):
    if len(args) != 2:
        raise ValueError(f"Expected two arguments for torch.{kind}")
    st1, st2 = args
    if not (isinstance(st1, ShardedTensor) and isinstance(st2, ShardedTensor)):
        raise TypeError(f"Both arguments to torch.{kind} need to be of type ShardedTensor")
    kwargs = kwargs or {}
    if st1._process_group is not st2._process_group:
        return False
    if _not_member(st1._process_group):
        return True
    pg = st1._process_group
    if st1.metadata() != st2.metadata():
        return _communicate_result(False, pg)
    s1, s2 = st1.local_shards(), st2.local_shards()
    if len(s1) != len(s2):
        return _communicate_result(False, pg)
    for a, b in zip(s1, s2):
        if a.metadata != b.metadata or not _local_cmp(kind, a.tensor, b.tensor, kwargs):
            return _communicate_result(False, pg)
    return _communicate_result(True, pg)


def equal(self, other):
    return _binary_cmp("equal", (self, other), {})


def allclose(self, other, rtol=1e-05, atol=1e-08, equal_nan=False):
    return _binary_cmp("allclose", (self, other), dict(rtol=rtol, atol=atol, equal_nan=equal_nan))


# ------------------------------------------------------------------ pickling

_LOAD = threading.local()


@contextlib.contextmanager
def load_with_process_group(process_group):
    """Unpickled ShardedTensors inside this block use `process_group` (not nestable)."""
    if getattr(_LOAD, "pg", None) is not None:
        raise RuntimeError("ProcessGroup already set by previous \"load_with_process_group\" "
                           "context manager")
    _LOAD.pg = process_group
    try:
        yield process_group
    finally:
        _LOAD.pg = None


def _st_getstate(self):
    pg = self._process_group
    pg_state = {
        "local_rank": dist.get_rank(pg),
        "global_rank": dist.get_rank(),
        "local_world_size": dist.get_world_size(pg),
        "global_world_size": dist.get_world_size(),
    }
    extra = {k: v for k, v in getattr(self, "__dict__", {}).items()}
    return (self._local_shards, self._metadata, pg_state, self._sharding_spec, self._init_rrefs,
            extra)


def _st_setstate(self, state):
    if not dist.is_initialized():
        raise RuntimeError('Need to initialize default process group using "init_process_group" '
                           'before loading ShardedTensor')
    local_shards, metadata, pg_state, spec, init_rrefs = state[:5]
    extra = state[5] if len(state) > 5 else {}
    pg = getattr(_LOAD, "pg", None)
    pg = _c10d()._default() if pg is None else pg
    checks = [("Local rank", pg_state["local_rank"], dist.get_rank(pg)),
              ("Global rank", pg_state["global_rank"], dist.get_rank()),
              ("Local world size", pg_state["local_world_size"], dist.get_world_size(pg)),
              ("Global world size", pg_state["global_world_size"], dist.get_world_size())]
    for what, saved, now in checks:
        if saved != now:
            raise RuntimeError(f"{what} at save time was {saved}, but at load time was {now}")
    self._local_shards = list(local_shards)
    self._metadata = metadata
    self._sharding_spec = spec
    self._process_group = pg
    for k, v in extra.items():
        setattr(self, k, v)
    if init_rrefs:
        raise _rrefs_error()


def _st_deepcopy(self, memo):
    new = type(self).__new__(type(self))
    memo[id(self)] = new
    new._local_shards = copy.deepcopy(self._local_shards, memo)
    new._metadata = copy.deepcopy(self._metadata, memo)
    new._sharding_spec = copy.deepcopy(self._sharding_spec, memo)
    new._process_group = self._process_group  # the same group object, as torch
    for k, v in getattr(self, "__dict__", {}).items():
        setattr(new, k, copy.deepcopy(v, memo))
    return new


# ------------------------------------------------------------------ dispatch

def _first_sharded(args, kwargs):
    def walk(x):
        if isinstance(x, ShardedTensorBase):
            return x
        if isinstance(x, (list, tuple)):
            for y in x:
                r = walk(y)
                if r is not None:
                    return r
        if isinstance(x, dict):
            for y in x.values():
                r = walk(y)
                if r is not None:
                    return r
        return None
    st = walk(args)
    return st if st is not None else walk(kwargs or {})


def _st_torch_function(cls, func, types, args=(), kwargs=None):
    """Dispatch `func` through the op registry (user, spec class, built-in; see
    shardopt/_shard_registry.py)."""
    kwargs = kwargs or {}
    st = _first_sharded(args, kwargs)
    impl = _reg.lookup(func, st.sharding_spec() if st is not None else None)
    if impl is not None:
        pg = st._process_group if st is not None else None
        return impl(types, args, kwargs, pg)
    name = getattr(func, "__name__", None) or str(func)
    raise RuntimeError(f"torch function '{name}', with args: {args} and kwargs: {kwargs} not "
                       f"supported for ShardedTensor!")


def _tensor_method(name):
    from .._tensor import Tensor  # noqa: PLC0415
    return getattr(Tensor, name, None)


def _st_getattr(self, name):
    """Tensor methods that ShardedTensor does not define go through the op registry."""
    if name.startswith("__") and name.endswith("__"):
        raise AttributeError(name)
    fn = _tensor_method(name)
    if fn is None or not callable(fn):
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def method(*args, **kwargs):
        return type(self).__torch_function__(fn, (type(self),), (self, *args), kwargs)
    method.__name__ = name
    return method


def _install():
    for name, fn in [("gather", gather), ("cpu", cpu), ("cuda", cuda), ("to", to),
                     ("clone", clone), ("detach", detach), ("requires_grad_", requires_grad_),
                     ("copy_", copy_), ("type_as", type_as), ("equal", equal),
                     ("allclose", allclose), ("_as_parameter", _as_parameter),
                     ("__getstate__", _st_getstate), ("__setstate__", _st_setstate),
                     ("__deepcopy__", _st_deepcopy), ("__getattr__", _st_getattr)]:
        setattr(ShardedTensorBase, name, fn)
    ShardedTensorBase.__torch_function__ = classmethod(_st_torch_function)
    ShardedTensor._init_from_local_shards = classmethod(_init_from_local_shards)
    ShardedTensor._init_from_local_tensor = classmethod(_init_from_local_tensor)


_install()
