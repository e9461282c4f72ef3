"""ShardedTensorBase and ShardedTensor (torch.distributed._shard.sharded_tensor.api).

``ShardedTensor(ShardedTensorBase(_C.ShardedTensorBase))``, the way ``shardopt.Tensor``
sits on ``_C.TensorBase``: the C base (csrc/shard/sharded_tensor.c) owns the data (local
shards, global metadata, sharding spec, process group) and the properties read from it;
the layout and coverage checks are C (csrc/shard/validate.c).  These class bodies hold
what talks to a process group or builds Python objects:

  * construction: the metadata from the spec, placement checks against the process group,
    allocation of this rank's shards;
  * ``_init_from_local_shards_and_global_metadata`` (trusting the global metadata) and
    ``_init_from_local_shards`` (init_from_local_shards: local checks, then ONE
    all_gather_object carrying (error-or-None, local metadata), so that a rank whose input
    is bad raises its own message and every other rank raises one naming that rank --
    nobody is left blocked in the collective, deviation §12.1);
  * ``gather`` (per-rank flat buffers + dist.gather, staged in the tensor's own dtype,
    zero-element shards skipped, no zero-length collective);
  * moves and copies (cpu, cuda, to, clone, detach, copy_, requires_grad_, type_as),
    equal / allclose, pickling with the process-group checks, ``__deepcopy__``;
  * dispatch: ``__torch_function__`` consults the op registry (_shard_registry.py) and
    ``__getattr__`` routes Tensor methods called on a ShardedTensor there too;
  * ``_as_parameter`` (``shardopt.nn.Parameter(st)`` returns ``st`` marked as a parameter).
"""
import contextlib
import copy
import threading
import warnings
import weakref
from typing import List

from .. import _C
from .. import distributed as dist
from .._layout import contiguous_format, preserve_format, strided
from ..sharding_spec import ShardingSpec
from ..sharding_spec.api import _infer_sharding_spec_from_shards_metadata
from . import _shard_registry as _reg
from .metadata import ShardedTensorMetadata, TensorProperties

Shard = _C.Shard

__all__ = ["ShardedTensor", "ShardedTensorBase", "load_with_process_group"]


# ------------------------------------------------------------------ small helpers

def _resolve_pg(pg):
    return dist.distributed_c10d._default() if pg is None else pg


def _not_member(pg):
    return pg is dist.GroupMember.NON_GROUP_MEMBER


def _no_grad():
    import shardopt  # noqa: PLC0415
    ng = getattr(shardopt, "no_grad", None)
    return ng() if ng is not None else contextlib.nullcontext()


def _detach(t):
    d = getattr(t, "detach", None)
    return d() if d is not None else t._alias()


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


def _numel(sizes):
    n = 1
    for s in sizes:
        n *= s
    return n


def _backend_device(pg):
    """Where a group's collectives stage data: the current CUDA device for nccl, else cpu."""
    if getattr(pg, "_backend", None) == "nccl":
        import shardopt  # noqa: PLC0415
        return _C.device("cuda", shardopt.cuda.current_device())
    return _C.device("cpu")


def _rrefs_error():
    return RuntimeError("RPC Framework needs to be initialized using "
                        "torch.distributed.rpc.init_rpc if init_rrefs is set to True")


def _placement_rank(pl):
    """The global rank a placement names: its rank, or its worker name's RPC id (None for
    a bare device or a worker name while RPC is not running)."""
    if pl is None:
        return None
    r = pl.rank()
    if r is None and pl.worker_name() is not None and dist.rpc._is_current_rpc_agent_set():
        for w in dist.rpc._get_current_rpc_agent().get_worker_infos():
            if w.name == pl.worker_name():
                return w.id
    return r


# ------------------------------------------------------------------ remote shards (RPC)

_sharded_tensor_lock = threading.Lock()
_st_next_id = [0]
# sharded tensor id -> ShardedTensor on this rank (torch's name; entries go with the tensor)
_sharded_tensor_map = weakref.WeakValueDictionary()


def _register_remote_shards(sharded_tensor_id: int, rrefs, rpc_rank: int) -> None:
    """Runs on a peer through RPC: file `rrefs` (that rank's shards) under the tensor."""
    with _sharded_tensor_lock:
        st = _sharded_tensor_map.get(sharded_tensor_id)
    if st is None:
        raise RuntimeError(f"Could not find sharded_tensor_id: {sharded_tensor_id} in map: "
                           f"{list(_sharded_tensor_map.keys())}")
    st._remote_shards[rpc_rank] = rrefs


def _post_init_rrefs(st) -> None:
    """torch's _post_init/_init_rpc for init_rrefs=True: every rank sends an RRef to each
    of its local shards to every other rank (an RPC collective over all workers)."""
    st._init_rrefs = True
    st._remote_shards = {}
    with _sharded_tensor_lock:
        st._sharded_tensor_id = _st_next_id[0]
        _sharded_tensor_map[st._sharded_tensor_id] = st
        _st_next_id[0] += 1
    rpc = dist.rpc
    if not rpc._is_current_rpc_agent_set():
        raise _rrefs_error()
    pg_rank = dist.get_rank()
    rpc_rank = rpc.get_worker_info().id
    if pg_rank != rpc_rank:
        raise ValueError(f"Default ProcessGroup and RPC ranks must be the same for "
                         f"ShardedTensor, found process group rank: {pg_rank} and RPC rank: "
                         f"{rpc_rank}")
    rank_to_name = {w.id: w.name for w in rpc._get_current_rpc_agent().get_worker_infos()}
    all_ids = rpc.api._all_gather(st._sharded_tensor_id)
    futs = []
    for r in range(dist.get_world_size()):
        if r == pg_rank or not st.local_shards():
            continue
        rrefs = [rpc.RRef(shard) for shard in st.local_shards()]
        futs.append(rpc.rpc_async(r, _register_remote_shards,
                                  args=(all_ids[rank_to_name[r]], rrefs, rpc_rank)))
    for f in futs:
        f.wait()
    rpc.api._all_gather(None)  # every rank has registered everyone's shards


def _flatten_size(size):
    """torch's _flatten_tensor_size: a single sequence argument is unpacked."""
    if len(size) == 1 and isinstance(size[0], (list, tuple)):
        return list(size[0])
    return list(size)


def _layout_of(t):
    return getattr(t, "layout", strided)  # shardopt tensors are always strided


def _is_pinned(t):
    fn = getattr(t, "is_pinned", None)
    return bool(fn()) if fn is not None else False


def _validate_placement(pg, placement):
    """torch's _parse_and_validate_remote_device for tensor-creating paths; the rank.

    None -> "remote device is None", worker names -> their RPC id (torch's RuntimeError
    without RPC, "Invalid worker name" for an unknown one), rank-less ->
    ValueError (deviation §12.5), a rank outside pg's global ranks -> "Global rank r does
    not exist in input process group"."""
    if placement is None:
        raise ValueError("remote device is None")
    pl = placement if isinstance(placement, _C._remote_device) else _C._remote_device(placement)
    rank = pl.rank()
    if pl.worker_name() is not None:
        if not dist.rpc._is_current_rpc_agent_set():
            raise RuntimeError(f"RPC framework needs to be initialized for using worker "
                               f"names: {pl.worker_name()}")
        rank = _placement_rank(pl)
        if rank is None:
            raise ValueError(f"Invalid worker name: {pl.worker_name()}")
    if rank is None:
        raise ValueError(f"placement {pl!r} has no rank: a ShardedTensor needs "
                         f"'rank:<rank>/<device>' placements (a bare device is local to no rank)")
    ranks = getattr(pg, "_ranks", None)  # NON_GROUP_MEMBER has none: no membership check
    if ranks is not None and rank not in ranks:
        raise ValueError(f"Global rank {rank} does not exist in input process group: {ranks}")
    return rank


def _check_layout_and_coverage(shards_metadata, size):
    _C.validate_non_overlapping_shards_metadata(shards_metadata)
    _C.check_tensor(shards_metadata, list(size))


# torch's three mismatch messages (spec §4.2, §4.3)

def _mismatch_global(expected, actual, prop, rank, is_property):
    if expected != actual:
        what = "tensor property" if is_property else "local ShardMetadata"
        raise ValueError(f"Local shards' tensor {prop} property is incompatible with {what} on "
                         f"rank {rank}: {what} {prop}={expected}, local shard tensor "
                         f"{prop}={actual}.")


def _mismatch_local(expected, actual, prop, rank):
    if expected != actual:
        raise ValueError(f"Local shards' tensor {prop} property need to be the same on "
                         f"rank:{rank}! Found one local shard tensor {prop}={expected}, the "
                         f"other local shard tensor {prop}={actual}.")


def _mismatch_ranks(expected, actual, prop, r0, r1):
    if expected != actual:
        raise ValueError(f"ShardedTensor {prop} property does not match from different ranks! "
                         f"Found {prop}={expected} on rank:{r0}, and {prop}={actual} on "
                         f"rank:{r1}.")


def _check_local_against_props(shard, props, rank):
    """§4.3: one local shard against the trusted global tensor properties."""
    t, smd = shard.tensor, shard.metadata
    pl = smd.placement
    if pl is None:
        raise ValueError(f"local shard on rank {rank} has no placement")
    _mismatch_global(props.layout, _layout_of(t), "layout", rank, True)
    if not t.is_contiguous():
        raise ValueError("Only torch.contiguous_format memory_format is currently supported")
    _mismatch_global(smd.shard_sizes, list(t.size()), "size", rank, False)
    _mismatch_global(props.pin_memory, _is_pinned(t), "pin_memory", rank, True)
    _mismatch_global(pl.device(), t.device, "device", rank, False)
    _mismatch_global(props.dtype, t.dtype, "dtype", rank, True)
    _mismatch_global(props.requires_grad, t.requires_grad, "requires_grad", rank, True)


def _local_metadata(local_shards, global_size, pg, rank):
    """Step 1 of init_from_local_shards: this rank's shards agree with each other and with
    their placements -> its local ShardedTensorMetadata (§4.2)."""
    first = local_shards[0].tensor
    f_dtype, f_layout = first.dtype, _layout_of(first)
    f_rg, f_pin = first.requires_grad, _is_pinned(first)
    mds = []
    for shard in local_shards:
        t, smd = shard.tensor, shard.metadata
        mds.append(smd)
        pl = smd.placement
        r = _validate_placement(pg, pl)
        layout = _layout_of(t)
        if layout is not strided or layout is not f_layout:
            raise ValueError(f"Only torch.strided layout is currently supported, but found "
                             f"{layout} on rank:{rank}!")
        if not t.is_contiguous():
            raise ValueError("Only torch.contiguous_format memory_format is currently supported!")
        if r != rank:
            raise ValueError(f"Local shard metadata's rank does not match with the rank in its "
                             f"process group! Found current rank in the process group: {rank}, "
                             f"local ShardMetadata placement's rank: {r}")
        if t.device != pl.device():
            raise ValueError(f"Local shard tensor device does not match with local Shard's "
                             f"placement! Found local shard tensor device: {t.device}, local "
                             f"shard metadata placement device: {pl.device()}")
        _mismatch_local(smd.shard_sizes, list(t.size()), "size", rank)
        _mismatch_local(_is_pinned(t), f_pin, "pin_memory", rank)
        _mismatch_local(t.dtype, f_dtype, "dtype", rank)
        _mismatch_local(t.requires_grad, f_rg, "requires_grad", rank)
    props = TensorProperties(f_dtype, f_layout, f_rg, contiguous_format, f_pin)
    return ShardedTensorMetadata(mds, global_size, props)


def _recalc_rowwise(gmd):
    """Row-wise layout for a global size given with None entries: shards ordered by
    placement rank (ties in gather order) get cumulative dim-0 offsets, other offsets 0;
    the global size becomes [sum of dim 0, rest of the first shard].  In place."""
    from .. import Size  # noqa: PLC0415
    mds = gmd.shards_metadata
    acc, dims = 0, None
    for i in sorted(range(len(mds)), key=lambda i: (_placement_rank(mds[i].placement), i)):
        smd = mds[i]
        sizes = smd.shard_sizes
        if len(sizes) == 0:
            raise ValueError("cannot recalculate a 0-d shard layout")
        smd.shard_offsets = [acc if k == 0 else 0 for k in range(len(sizes))]
        acc += sizes[0]
        if dims is None:
            dims = list(sizes)
    if dims is None:
        raise ValueError("ShardedTensor have no local shards on all ranks!")
    dims[0] = acc
    gmd.size = Size(dims)


def _global_metadata(gathered, recalc):
    """Step 2 of init_from_local_shards, after the all_gather: merge the ranks' metadata
    (None for ranks without shards) in rank order with the cross-rank checks, optionally
    recompute a row-wise layout, then the overlap and coverage checks."""
    glob, grank = None, 0
    for r, md in enumerate(gathered):
        if md is None:
            continue
        if glob is None:
            glob, grank = copy.deepcopy(md), r
            continue
        _mismatch_ranks(glob.size, md.size, "global_size", grank, r)
        for prop in ("dtype", "requires_grad", "pin_memory"):
            _mismatch_ranks(getattr(glob.tensor_properties, prop),
                            getattr(md.tensor_properties, prop), prop, grank, r)
        glob.shards_metadata.extend(md.shards_metadata)
    if glob is None:
        raise ValueError("ShardedTensor have no local shards on all ranks!")
    if recalc:
        _recalc_rowwise(glob)
    _check_layout_and_coverage(glob.shards_metadata, glob.size)
    return glob


def _error_payload(err):
    return (type(err).__name__, str(err))


_REMOTE_ERRORS = {"ValueError": ValueError, "TypeError": TypeError, "RuntimeError": RuntimeError,
                  "NotImplementedError": NotImplementedError, "IndexError": IndexError}


# ------------------------------------------------------------------ equality helpers

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
    """equal / allclose of two ShardedTensors (a collective over their process group)."""
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


# ------------------------------------------------------------------ dispatch helpers

def _first_sharded(args, kwargs):
    def walk(x):
        if isinstance(x, _C.ShardedTensorBase):
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


# ------------------------------------------------------------------ pickling context

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


def _get_current_process_group():
    """The group set by ``load_with_process_group``, else the default group."""
    pg = getattr(_LOAD, "pg", None)
    return dist.distributed_c10d._get_default_group() if pg is None else pg


# ------------------------------------------------------------------ the classes

class ShardedTensorBase(_C.ShardedTensorBase):
    """A sharded tensor's metadata and local shards, without a process group.

    ``ShardedTensorBase(sharding_spec, *size, dtype=None, layout=strided,
    requires_grad=False, pin_memory=False, memory_format=contiguous_format)`` builds the
    metadata with the spec (no shards are allocated)."""

    def __init__(self, sharding_spec: ShardingSpec, *size, dtype=None, layout=strided,
                 requires_grad: bool = False, pin_memory: bool = False,
                 memory_format=contiguous_format) -> None:
        from .. import Size, get_default_dtype  # noqa: PLC0415
        if not isinstance(sharding_spec, ShardingSpec):
            raise ValueError(f"Expecting ShardingSpec but got: {type(sharding_spec)}")
        dims = _flatten_size(size)
        for d in dims:
            if not isinstance(d, int):
                raise TypeError(f"size has to be a sequence of ints, found: {dims!r}")
        _C._check_sizes(dims)  # no shard may exist to refuse a size no tensor can have
        props = TensorProperties(
            get_default_dtype() if dtype is None else dtype,
            strided if layout is None else layout, bool(requires_grad),
            contiguous_format if memory_format is None else memory_format, bool(pin_memory))
        self._metadata = sharding_spec.build_metadata(Size(dims), props)
        self._sharding_spec = sharding_spec
        # only strided contiguous tensors exist (checked after build_metadata, as torch)
        if layout is not None and layout is not strided:
            raise ValueError("Only torch.strided layout is currently supported")
        if memory_format is not None and memory_format is not contiguous_format:
            raise ValueError("Only torch.contiguous_format memory_format is currently supported")

    @classmethod
    def _from_parts(cls, local_shards, metadata, process_group, sharding_spec):
        """An instance of `cls` holding the given parts, without checks."""
        st = cls.__new__(cls)
        st._local_shards = local_shards if isinstance(local_shards, list) else list(local_shards)
        st._metadata = metadata
        st._sharding_spec = sharding_spec
        st._process_group = process_group
        return st

    @classmethod
    def _init_from_local_shards_and_global_metadata(cls, local_shards: List[Shard],
                                                    sharded_tensor_metadata,
                                                    sharding_spec=None):
        """No process group: only the overlap and coverage checks (shards may be
        non-contiguous, all in one process)."""
        mds = sharded_tensor_metadata.shards_metadata
        _check_layout_and_coverage(mds, sharded_tensor_metadata.size)
        if sharding_spec is None:
            sharding_spec = _infer_sharding_spec_from_shards_metadata(mds)
        return cls._from_parts(local_shards, sharded_tensor_metadata, None, sharding_spec)

    @property
    def device(self):
        """Device of the first local shard; with none, cpu unless the group's backend is
        nccl (then the current CUDA device), as torch's ``device`` op."""
        if self._local_shards:
            return self._local_shards[0].tensor.device
        return _backend_device(self._process_group)

    # -- dispatch --------------------------------------------------------------------------

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        """Dispatch `func` through the op registry (user table, spec-class table, built-ins;
        see _shard_registry.py); a miss raises torch's "not supported" RuntimeError."""
        kwargs = kwargs or {}
        st = _first_sharded(args, kwargs)
        impl = _reg.lookup(func, st.sharding_spec() if st is not None else None)
        if impl is not None:
            pg = st._process_group if st is not None else None
            return impl(types, args, kwargs, pg)
        name = getattr(func, "__name__", None) or str(func)
        raise RuntimeError(f"torch function '{name}', with args: {args} and kwargs: {kwargs} "
                           f"not supported for ShardedTensor!")

    def __getattr__(self, name: str):
        """Tensor methods that ShardedTensor does not define go through the op registry."""
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        from .._tensor import Tensor  # noqa: PLC0415
        fn = getattr(Tensor, name, None)
        if fn is None or not callable(fn):
            raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

        def method(*args, **kwargs):
            return type(self).__torch_function__(fn, (type(self),), (self, *args), kwargs)
        method.__name__ = name
        return method

    def __deepcopy__(self, memo):
        new = type(self).__new__(type(self))
        memo[id(self)] = new
        new._local_shards = copy.deepcopy(self._local_shards, memo)
        new._metadata = copy.deepcopy(self._metadata, memo)
        new._sharding_spec = copy.deepcopy(self._sharding_spec, memo)
        new._process_group = self._process_group  # the same group object, as torch
        new._init_rrefs = self._init_rrefs  # a C slot, not in __dict__
        for k, v in self.__dict__.items():
            setattr(new, k, copy.deepcopy(v, memo))
        return new


class ShardedTensor(ShardedTensorBase):
    """A tensor sharded across the ranks of a process group.

    ``ShardedTensor(sharding_spec, *size, dtype=None, layout=strided, requires_grad=False,
    pin_memory=False, memory_format=contiguous_format, process_group=None,
    init_rrefs=False)`` builds the metadata with the spec, validates every placement
    against the process group and allocates (uninitialised) the shards whose placement
    names this process's GLOBAL rank.

    Args:
        sharding_spec: how to shard (e.g. ChunkShardingSpec).
        size: the global size (ints, or one sequence of ints).
        process_group: the group (default: the global group).
        init_rrefs: build RRefs to every other rank's shards (``remote_shards()``); needs
            ``shardopt.distributed.rpc.init_rpc`` on every rank.
    """

    def __init__(self, sharding_spec: ShardingSpec, *size, dtype=None, layout=strided,
                 requires_grad: bool = False, pin_memory: bool = False,
                 memory_format=contiguous_format, process_group=None,
                 init_rrefs: bool = False) -> None:
        super().__init__(sharding_spec, *size, dtype=dtype, layout=layout,
                         requires_grad=requires_grad, pin_memory=pin_memory,
                         memory_format=memory_format)
        pg = _resolve_pg(process_group)
        self._process_group = pg
        rank = dist.get_rank()
        props = self._metadata.tensor_properties
        shards = []
        for smd in self._metadata.shards_metadata:
            if _validate_placement(pg, smd.placement) != rank:
                continue
            t = _C.empty(tuple(smd.shard_sizes), props.dtype, smd.placement.device())
            if props.pin_memory:  # torch's empty(pin_memory=True): CPU only, raises elsewhere
                t = _C._pin_memory(t)
            if props.requires_grad:
                t.requires_grad = True
            shards.append(Shard(t, smd))
        self._local_shards = shards
        if init_rrefs:
            _post_init_rrefs(self)

    def remote_shards(self):
        """{rank: [RRef(Shard)]} for the shards of every other rank (init_rrefs=True only)."""
        if not self._init_rrefs:
            raise RuntimeError("ShardedTensor created with init_rrefs=False, no RRefs to "
                               "remote shards available")
        return self.__dict__.get("_remote_shards", {})

    # -- assembling from shards that already exist ----------------------------------------

    @classmethod
    def _init_from_local_shards_and_global_metadata(cls, local_shards: List[Shard],
                                                    sharded_tensor_metadata,
                                                    process_group=None, init_rrefs: bool = False,
                                                    sharding_spec=None) -> "ShardedTensor":
        """Trust the global metadata; check this rank's shards against it (no collectives)."""
        md = sharded_tensor_metadata
        pg = _resolve_pg(process_group)
        rank = dist.get_rank()
        mds = md.shards_metadata
        local_shards = list(local_shards)
        nlocal = sum(1 for smd in mds if _validate_placement(pg, smd.placement) == rank)
        if len(local_shards) != nlocal:
            raise RuntimeError(f"Number of local shards ({len(local_shards)}) does not match "
                               f"number of local shards metadata in sharded_tensor_metadata "
                               f"({nlocal}) on rank ({rank}) ")
        if len(mds) == 0:
            raise ValueError("shards_metadata must not be empty!")
        props = md.tensor_properties
        if props.layout is not strided:
            raise ValueError("Only torch.strided layout is currently supported")
        for shard in local_shards:
            _check_local_against_props(shard, props, rank)
        _check_layout_and_coverage(mds, md.size)
        if sharding_spec is None:
            sharding_spec = _infer_sharding_spec_from_shards_metadata(mds)
        st = cls._from_parts(local_shards, md, pg, sharding_spec)
        if init_rrefs:
            _post_init_rrefs(st)
        return st

    @classmethod
    def _init_from_local_shards(cls, local_shards: List[Shard], *global_size, process_group=None,
                                init_rrefs: bool = False) -> "ShardedTensor":
        """init_from_local_shards: an SPMD collective (see the module docstring)."""
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
                local_md = _local_metadata(local_shards, gsize, pg, rank)
        except (ValueError, TypeError, RuntimeError, NotImplementedError, IndexError,
                AttributeError) as e:
            err = e
        # One exchange carries both the error flag and the metadata: every rank gets the
        # same list, so every rank takes the same decision below.
        mine = (_error_payload(err) if err is not None else None,
                local_md if err is None else None)
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
                raise etype(f"init_from_local_shards failed on rank {pg._ranks[g]}: "
                            f"{e[0]}: {e[1]}")
        global_md = _global_metadata([md for _, md in gathered], recalc)
        if recalc:
            mine_md = [m for m in global_md.shards_metadata
                       if _placement_rank(m.placement) == rank]
            if len(local_shards) > 1 or len(mine_md) > 1:
                raise ValueError("init_from_local_shards with a None global size (row-wise "
                                 "recalculation) needs at most one local shard per rank")
            if local_shards:
                local_shards[0].metadata = mine_md[0]
        spec = _infer_sharding_spec_from_shards_metadata(global_md.shards_metadata)
        st = cls._from_parts(local_shards, global_md, pg, spec)
        if init_rrefs:
            _post_init_rrefs(st)
        return st

    @classmethod
    def _init_from_local_tensor(cls, local_tensor, sharding_spec, *global_size,
                                process_group=None, init_rrefs: bool = False) -> "ShardedTensor":
        """Deprecated: wrap `local_tensor` as this rank's shard(s) of `sharding_spec`."""
        from .. import Size  # noqa: PLC0415

        warnings.warn("Please use DTensor instead and we are deprecating ShardedTensor.",
                      FutureWarning, stacklevel=2)
        if not local_tensor.is_contiguous():
            raise ValueError("local_tensor is not a contiguous Tensor.")
        gsize = Size(_flatten_size(global_size))
        props = TensorProperties(dtype=local_tensor.dtype,
                                 layout=getattr(local_tensor, "layout", None) or strided,
                                 requires_grad=local_tensor.requires_grad,
                                 memory_format=contiguous_format, pin_memory=False)
        md = sharding_spec.build_metadata(gsize, props)
        pg = _resolve_pg(process_group)
        rank = dist.get_rank()
        shards = [Shard(local_tensor, smd) for smd in md.shards_metadata
                  if _placement_rank(smd.placement) == rank]
        return cls._init_from_local_shards_and_global_metadata(
            shards, md, process_group=pg, init_rrefs=init_rrefs, sharding_spec=sharding_spec)

    def _rebuild(self, shards, st_meta, process_group=None, spec=None) -> "ShardedTensor":
        pg = self._process_group if process_group is None else process_group
        return type(self)._init_from_local_shards_and_global_metadata(
            shards, st_meta, process_group=pg, init_rrefs=False, sharding_spec=spec)

    def reshard(self, resharding_spec: ShardingSpec) -> "ShardedTensor":
        """Move this tensor's data to the layout of ``resharding_spec`` in place (one
        all-to-all; see reshard.py) and return self.  The same spec is a no-op; the same
        dim with other placements swaps whole shards.  Only ChunkShardingSpecs, one local
        shard per rank, chunked over every rank of the process group.

        Args:
            resharding_spec: the target ChunkShardingSpec.
        """
        from ..sharding_spec import ChunkShardingSpec  # noqa: PLC0415
        from . import reshard as _rs  # noqa: PLC0415 (reshard imports shard/dist helpers)
        if not isinstance(resharding_spec, ChunkShardingSpec) or not isinstance(
                self._sharding_spec, ChunkShardingSpec):
            raise NotImplementedError("Only ChunkShardingSpec supported for reshard.")
        num_local_shards = len(self.local_shards())
        if num_local_shards != 1:
            raise NotImplementedError("Only single local shard supported for reshard. Number "
                                      f"of shards: {num_local_shards}")
        world = dist.get_world_size(self._process_group)
        _rs._check_spec(self._sharding_spec, world, "current")
        _rs._check_spec(resharding_spec, world, "target")
        ndim = len(self.size())
        if not -ndim <= int(resharding_spec.dim) < ndim:
            raise ValueError(f"reshard: resharding_spec.dim {resharding_spec.dim} is out of "
                             f"range for a {ndim}-D ShardedTensor")
        old_dim = int(self._sharding_spec.dim) % ndim
        new_dim = int(resharding_spec.dim) % ndim
        if old_dim == new_dim:
            if self._sharding_spec.placements == resharding_spec.placements:
                return self
            fn = _rs.reshuffle_local_shard
        else:
            fn = _rs.reshard_local_shard
        local_shards, shards_metadata = fn(self.local_tensor(), self.size(),
                                           self._sharding_spec, resharding_spec,
                                           self._process_group)
        self._local_shards = local_shards
        self._metadata.shards_metadata = shards_metadata
        self._sharding_spec = resharding_spec
        return self

    # -- gather ------------------------------------------------------------------------------

    def gather(self, dst: int = 0, out=None, enforce_dtype: bool = False, dtype=None) -> None:
        """Assemble the full tensor into `out` on group rank `dst` (an SPMD collective: every
        rank of the process group calls it; `out` is given on dst only)."""
        pg = self._process_group
        rank = dist.get_rank(pg)
        full_size = self.metadata().size
        if dst == rank:
            if out is None:
                raise ValueError(f"Argument ``dst_tensor`` must be specified on destination "
                                 f"rank {dst}")
            if tuple(out.size()) != tuple(full_size):
                raise ValueError(f"Argument ``dst_tensor`` have size {tuple(out.size())},"
                                 f"but should be {tuple(full_size)}")
        elif out is not None:
            raise ValueError("Argument ``dst_tensor`` must NOT be specified on non-destination "
                             "ranks.")
        world = dist.get_world_size(pg)
        group_ranks = list(pg._ranks)
        rank_sizes = [0] * world
        max_rank_size = 0
        placement = []  # per global shard: (group rank, element offset in that rank's buffer)
        for smd in self.metadata().shards_metadata:
            g = group_ranks.index(_placement_rank(smd.placement))
            placement.append((g, rank_sizes[g]))
            rank_sizes[g] += _numel(smd.shard_sizes)
            max_rank_size = max(max_rank_size, rank_sizes[g])
        if dtype is None:
            if enforce_dtype:
                warnings.warn("enforce_dtype is deprecated. Please use dtype instead.",
                              FutureWarning, stacklevel=2)
                dtype = out.dtype if out is not None else self.dtype
            else:
                dtype = self.dtype  # deviation §12.2: never round through the default dtype
        if max_rank_size == 0:
            return None  # nothing to move (and Gloo must not see a zero-length collective)
        # where each local shard goes inside this rank's buffer: match by metadata, in order
        mds = self.metadata().shards_metadata
        slots = {}
        for i, smd in enumerate(mds):
            if group_ranks.index(_placement_rank(smd.placement)) == rank:
                slots.setdefault(smd, []).append(placement[i][1])
        device = _backend_device(pg)
        with _no_grad():
            data = _C.empty((max_rank_size,), dtype, device)
            data.zero_()
            for shard in self.local_shards():
                src = _detach(shard.tensor)
                n = src.numel()
                offs = slots.get(shard.metadata)
                if not offs:
                    raise RuntimeError(f"local shard {shard.metadata} is not in the global "
                                       f"metadata")
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

    # -- moves and copies ------------------------------------------------------------------

    def cpu(self, memory_format=preserve_format, process_group=None) -> "ShardedTensor":
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
        return self._rebuild(shards, st_meta, process_group)

    def cuda(self, device=None, non_blocking: bool = False, memory_format=preserve_format,
             process_group=None) -> "ShardedTensor":
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
                raise ValueError('Only device without device id (e.g. "cpu" or "cuda") is '
                                 'expected for ShardedTensor!')
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
        return self._rebuild(shards, st_meta, process_group)

    def to(self, *args, **kwargs) -> "ShardedTensor":
        """to(dtype) | to(device) | to(tensor) | to(device, dtype) | to(dtype=, device=,
        copy=, non_blocking=, memory_format=, process_group=).  Returns ``self`` when
        nothing changes (e.g. ``to("cpu")`` on a CPU ShardedTensor)."""
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
            raise TypeError(f"ShardedTensor.to() got unexpected keyword arguments "
                            f"{sorted(kwargs)}")
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
        return self._rebuild(shards, st_meta, process_group)

    def clone(self, memory_format=preserve_format) -> "ShardedTensor":
        if memory_format != preserve_format:
            raise RuntimeError("Only support torch.preserve_format for ShardedTensor!")
        shards = [Shard(shard.tensor.clone(), copy.deepcopy(shard.metadata))
                  for shard in self.local_shards()]
        return self._rebuild(shards, copy.deepcopy(self.metadata()), spec=self.sharding_spec())

    def detach(self) -> "ShardedTensor":
        shards = [Shard(_detach(shard.tensor), shard.metadata) for shard in self.local_shards()]
        st_meta = copy.deepcopy(self.metadata())
        st_meta.tensor_properties.requires_grad = False
        return self._rebuild(shards, st_meta, spec=self.sharding_spec())

    def requires_grad_(self, requires_grad: bool = True) -> "ShardedTensor":
        for shard in self.local_shards():
            fn = getattr(shard.tensor, "requires_grad_", None)
            if fn is not None:
                fn(requires_grad)
            else:
                shard.tensor.requires_grad = requires_grad
        self.metadata().tensor_properties.requires_grad = requires_grad
        return self

    def copy_(self, src: "ShardedTensor", non_blocking: bool = False) -> "ShardedTensor":
        """In-place copy from `src`, torch's rule: the LOCAL shards' metadata must match
        (offsets, sizes, placements); tensor properties such as requires_grad may differ,
        so ``module.load_state_dict(module.state_dict())`` works for a parameter."""
        if not isinstance(src, ShardedTensor):
            raise TypeError(f"ShardedTensor.copy_ expects a ShardedTensor source, got "
                            f"{type(src).__name__}")
        mine, theirs = self.local_shards(), src.local_shards()
        if len(mine) != len(theirs) or any(a.metadata != b.metadata
                                           for a, b in zip(mine, theirs)):
            raise RuntimeError("inplace copy can only happen between two ShardedTensor with "
                               "same metadata!")
        with _no_grad():
            for a, b in zip(mine, theirs):
                a.tensor.copy_(b.tensor)
        return self

    def type_as(self, other) -> "ShardedTensor":
        return self if self.dtype == other.dtype else self.to(other.dtype)

    def _as_parameter(self, requires_grad: bool = True) -> "ShardedTensor":
        """shardopt.nn.Parameter(st): st itself, marked as a parameter; its local shard
        tensors become leaves with `requires_grad` (torch: nn.Parameter of a Tensor
        subclass)."""
        shards = []
        for shard in self.local_shards():
            t = _detach(shard.tensor)
            t.requires_grad = requires_grad
            shards.append(Shard(t, shard.metadata))
        self._local_shards = shards
        self.metadata().tensor_properties.requires_grad = requires_grad
        self._is_param = True
        return self

    # -- equality (collectives) ------------------------------------------------------------

    def equal(self, other) -> bool:
        return _binary_cmp("equal", (self, other), {})

    def allclose(self, other, rtol: float = 1e-05, atol: float = 1e-08,
                 equal_nan: bool = False) -> bool:
        return _binary_cmp("allclose", (self, other),
                           dict(rtol=rtol, atol=atol, equal_nan=equal_nan))

    # -- pickling --------------------------------------------------------------------------

    def __getstate__(self):
        pg = self._process_group
        pg_state = {
            "local_rank": dist.get_rank(pg),
            "global_rank": dist.get_rank(),
            "local_world_size": dist.get_world_size(pg),
            "global_world_size": dist.get_world_size(),
        }
        extra = {k: v for k, v in self.__dict__.items()
                 if k not in ("_remote_shards", "_sharded_tensor_id")}  # RRefs stay here
        return (self._local_shards, self._metadata, pg_state, self._sharding_spec,
                self._init_rrefs, extra)

    def __setstate__(self, state) -> None:
        if not dist.is_initialized():
            raise RuntimeError('Need to initialize default process group using '
                               '"init_process_group" before loading ShardedTensor')
        local_shards, metadata, pg_state, spec, init_rrefs = state[:5]
        extra = state[5] if len(state) > 5 else {}
        pg = getattr(_LOAD, "pg", None)
        pg = _resolve_pg(pg)
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
            if k not in ("_remote_shards", "_sharded_tensor_id"):
                setattr(self, k, v)
        if init_rrefs:
            _post_init_rrefs(self)


def _create_tensor_from_params(*size, local_device, tensor_properties: TensorProperties):
    """An uninitialised local tensor of ``size`` on ``local_device`` with the dtype and
    requires_grad of ``tensor_properties`` (torch's helper of the same name)."""
    from .._ops.creation import empty  # noqa: PLC0415 - the tensor layer's factory

    return empty(*size, dtype=tensor_properties.dtype, device=local_device,
                 requires_grad=tensor_properties.requires_grad,
                 layout=tensor_properties.layout, memory_format=tensor_properties.memory_format,
                 pin_memory=tensor_properties.pin_memory)
