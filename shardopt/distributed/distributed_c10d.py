"""torch.distributed's process-group API over shardopt._C.ProcessGroupGloo / ProcessGroupNCCL.

Python keeps only bookkeeping: which groups exist, global <-> group rank maps, staging of
CUDA / non-contiguous tensors through contiguous host copies, zero-element short cuts, and
pickling for the object collectives.  The collectives themselves run in C/C++ without the
GIL, bounded by the group's timeout.

Ops issued on a group run in issue order.  ``async_op=True`` queues the op for the group's
worker thread (C) and returns a :class:`Work`; a synchronous op waits for the async ones
issued before it.  Results that had to be staged (CUDA or non-contiguous tensors, tensor
lists) are copied back when the Work is waited on, or when ``is_completed()`` first
reports True.
"""
from __future__ import annotations

import enum
import io
import os
import pickle
from datetime import timedelta

import numpy as np

from shardopt import _C
from shardopt._C import DistBackendError, DistError

from .store import FileStore, PrefixStore, TCPStore

__all__ = [
    "Backend", "ReduceOp", "GroupMember", "group", "ProcessGroup", "Work", "init_process_group",
    "destroy_process_group", "is_initialized", "is_available", "is_gloo_available",
    "is_nccl_available", "get_rank", "get_world_size", "get_backend", "new_group",
    "get_process_group_ranks", "get_global_rank", "get_group_rank", "barrier", "broadcast",
    "all_reduce", "reduce", "all_gather", "all_gather_into_tensor", "reduce_scatter_tensor",
    "scatter", "gather", "all_to_all", "all_to_all_single", "send", "recv", "all_gather_object",
    "broadcast_object_list", "gather_object", "default_pg_timeout", "isend", "irecv",
]

default_pg_timeout = timedelta(minutes=30)


class ReduceOp(enum.IntEnum):
    SUM = 0
    AVG = 1
    PRODUCT = 2
    MIN = 3
    MAX = 4


class Backend(str):
    GLOO = "gloo"
    NCCL = "nccl"

    def __new__(cls, name):
        if not isinstance(name, str):
            raise TypeError(f"backend must be a str, got {type(name).__name__}")
        value = name.lower()
        if value not in ("gloo", "nccl"):
            raise ValueError(f"Invalid backend: '{name}' (supported: gloo, nccl)")
        return super().__new__(cls, value)


class ProcessGroup:
    """A group of ranks with its Gloo context (None on ranks outside the group)."""

    def __init__(self, impl, ranks, backend):
        self._impl = impl
        self._ranks = list(ranks)
        self._backend = backend
        self._p2p_tag = 0

    def rank(self):
        return self._impl.rank

    def size(self):
        return len(self._ranks)

    def __repr__(self):
        return f"ProcessGroup(backend={self._backend!r}, ranks={self._ranks})"


class _NonMember:
    def __repr__(self):
        return "GroupMember.NON_GROUP_MEMBER"


class GroupMember:
    WORLD = None  # set to the default ProcessGroup by init_process_group
    NON_GROUP_MEMBER = _NonMember()


class _WorldMeta(type):
    @property
    def WORLD(cls):  # noqa: N802  (torch's name)
        return GroupMember.WORLD


class group(metaclass=_WorldMeta):  # noqa: N801  (torch's name)
    """torch.distributed.group: ``group.WORLD`` is the default process group (None before
    init_process_group)."""


class Work:
    """Handle of an op issued with ``async_op=True`` (torch.distributed.Work).

    ``wait(timeout=None)`` blocks until the op is done and raises its error (a
    DistBackendError, or DistTimeoutError when it, or the wait itself, timed out);
    ``is_completed()``, ``is_success()``, ``exception()``, ``result()`` (the output
    tensors).  As with torch's Gloo backend, a send/recv completes only through ``wait()``.
    """

    def __init__(self, impl=None, finish=(), result=None, ranks=None, src=None):
        self._impl = impl          # _C.Work; None: completed at the call
        self._finish = list(finish)  # copy-backs, run once after success
        self._result = [] if result is None else result
        self._ranks = ranks        # group -> global rank map (recv's source)
        self._src = src            # recv's source when it was given

    def _finished(self):
        for f in self._finish:
            f()
        self._finish = []

    def wait(self, timeout=None):
        if self._impl is not None:
            self._impl.wait(timeout)
        self._finished()
        return True

    def is_completed(self):
        done = self._impl is None or self._impl.is_completed()
        if done and self._finish and self.is_success():
            self._finished()
        return done

    def is_success(self):
        return self._impl is None or self._impl.is_success()

    def exception(self):
        return None if self._impl is None else self._impl.exception()

    def result(self):
        return self._result

    def _source_rank(self):
        """Global rank a recv came from (after wait())."""
        if self._src is not None:
            return self._src
        r = self._impl.source_rank()
        return self._ranks[r] if self._ranks is not None else r

    source_rank = _source_rank


class _State:
    default_pg = None
    store = None
    groups = []          # every ProcessGroup made in this generation (for destroy)
    group_count = 0      # new_group calls, identical on every rank
    local_group_count = {}  # use_local_synchronization groups made, by their ranks
    generation = 0       # init_process_group calls in this process
    env_stores = {}      # env:// stores, kept for the process's lifetime (see _env_store)


def is_available():
    return True


def is_gloo_available():
    return bool(getattr(_C, "_gloo_compiled", 0))


def is_nccl_available():
    """True when this build has the NCCL backend (a GPU is still needed to use it)."""
    return bool(getattr(_C, "_nccl_compiled", 0))


def is_initialized():
    return _State.default_pg is not None


def _default():
    if _State.default_pg is None:
        raise ValueError("Default process group has not been initialized, please make sure "
                         "to call init_process_group.")
    return _State.default_pg


def _resolve(group):
    pg = _default() if group is None or group is GroupMember.WORLD else group
    if pg is GroupMember.NON_GROUP_MEMBER:
        return None
    if not isinstance(pg, ProcessGroup):
        raise TypeError(f"group must be a ProcessGroup, got {type(pg).__name__}")
    if pg._impl is None:
        raise DistError(f"{pg!r} has been destroyed")
    return pg


def _seconds(timeout):
    if not isinstance(timeout, timedelta):
        raise TypeError(f"timeout must be a datetime.timedelta, got {type(timeout).__name__}")
    return timeout.total_seconds()


def _env_int(name, given, argname):
    if given is not None and given >= 0:
        return given
    value = os.environ.get(name)
    if value is None:
        raise ValueError(f"{argname} was not given and the environment variable {name} is "
                         "not set (env:// initialisation)")
    return int(value)


def _env_store(rank, world_size, timeout):
    """The TCPStore for env:// rendezvous (MASTER_ADDR / MASTER_PORT).

    Three cases:
    - launched by shardopt.run: the launcher already serves a shardopt store at MASTER_PORT
      (SHARDOPT_AGENT_STORE=1) and every rank connects as a client;
    - launched by a real torchrun (TORCHELASTIC_USE_AGENT_STORE=True without that marker):
      MASTER_PORT holds torch's own store, whose wire protocol is not ours, so rank 0
      serves a shardopt store at SHARDOPT_STORE_PORT, default MASTER_PORT + 1;
    - anything else: rank 0 serves at MASTER_PORT, as torch's env:// does.
    """
    addr = os.environ.get("MASTER_ADDR")
    port = os.environ.get("MASTER_PORT")
    if addr is None or port is None:
        raise ValueError("env:// initialisation needs MASTER_ADDR and MASTER_PORT")
    port = int(port)
    agent = os.environ.get("SHARDOPT_AGENT_STORE") == "1"
    if not agent and os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True":
        port = int(os.environ.get("SHARDOPT_STORE_PORT", port + 1))
    # The store outlives destroy_process_group, like a launcher's agent store: a process
    # that initialises again reuses it (keys are namespaced per initialisation), so a rank
    # can never reconnect to rank 0's previous server while that one is shutting down.
    key = (addr, port, rank, world_size)
    store = _State.env_stores.get(key)
    if store is None:
        if agent:
            store = TCPStore(addr, port, world_size, False, timeout=timeout,
                             wait_for_workers=False)
        else:
            store = TCPStore(addr, port, world_size, rank == 0, timeout=timeout)
        _State.env_stores[key] = store
    else:
        store.set_timeout(timeout)
    return store


def _rendezvous(init_method, rank, world_size, timeout):
    if init_method.startswith("env://"):
        rank = _env_int("RANK", rank, "rank")
        world_size = _env_int("WORLD_SIZE", world_size, "world_size")
        return _env_store(rank, world_size, timeout), rank, world_size
    if rank < 0 or world_size < 1:
        raise ValueError(f"{init_method.split(':')[0]}:// initialisation needs rank and "
                         f"world_size, got rank={rank} world_size={world_size}")
    if init_method.startswith("tcp://"):
        hostport = init_method[len("tcp://"):].split("?")[0].rstrip("/")
        host, _, port = hostport.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"init_method must look like tcp://host:port, got {init_method!r}")
        return TCPStore(host, int(port), world_size, rank == 0, timeout=timeout), rank, world_size
    if init_method.startswith("file://"):
        return FileStore(init_method[len("file://"):], world_size, timeout), rank, world_size
    raise ValueError(f"init_method must start with env://, tcp:// or file://, got {init_method!r}")


def _make_group(backend, store, rank, ranks, timeout):
    if backend == "nccl":
        if not is_nccl_available():
            raise DistBackendError("shardopt was built without NCCL (nvcc and nccl.h were not "
                                   "found at build time); use the gloo backend")
        # Raises DistBackendError("CUDA is not available: ...") on a machine without a GPU.
        impl = _C.ProcessGroupNCCL(store, rank, len(ranks), timeout)
    else:
        if not is_gloo_available():
            raise DistBackendError("shardopt was built without Gloo (gloo/allreduce.h was not "
                                   "found at build time)")
        # reduce_scatter: a pipelined ring on Gloo's transport by default; Gloo's
        # ReduceScatterHalvingDoubling with SHARDOPT_GLOO_REDUCE_SCATTER=halving_doubling
        # (the same on every rank).
        impl = _C.ProcessGroupGloo(store, rank, len(ranks), timeout,
                                   os.environ.get("SHARDOPT_GLOO_REDUCE_SCATTER", "ring"))
    pg = ProcessGroup(impl, ranks, backend)
    _State.groups.append(pg)
    return pg


def _default_backend():
    """DESIGN.md: nccl when this build has it and a GPU is present, else gloo."""
    if is_nccl_available():
        from shardopt import cuda  # noqa: PLC0415
        if cuda.is_available():
            return "nccl"
    return "gloo"


def init_process_group(backend=None, init_method=None, timeout=None, world_size=-1, rank=-1,
                       store=None, group_name="", pg_options=None, device_id=None):
    if _State.default_pg is not None:
        raise ValueError("trying to initialize the default process group twice!")
    timeout = default_pg_timeout if timeout is None else timeout
    _seconds(timeout)
    if backend is None:
        backend = _default_backend()
    backend = Backend(backend)
    if store is not None and init_method is not None:
        raise ValueError("Cannot specify both init_method and store.")
    if store is not None:
        if world_size <= 0 or rank < 0:
            raise ValueError(f"world_size and rank must be given with store, got "
                             f"world_size={world_size} rank={rank}")
    else:
        store, rank, world_size = _rendezvous(init_method or "env://", rank, world_size,
                                              timeout)
    if not 0 <= rank < world_size:
        raise ValueError(f"rank must be in [0, world_size={world_size}), got {rank}")
    _State.generation += 1
    # Keys are namespaced per initialisation so a process that initialises, destroys and
    # initialises again (test suites) never reads the previous generation's addresses.
    base = PrefixStore(f"shardopt_pg{_State.generation}", store)
    pg = _make_group(backend, PrefixStore("0", base), rank, range(world_size), timeout)
    _State.default_pg, _State.store, _State.group_count = pg, base, 0
    _State.local_group_count = {}
    GroupMember.WORLD = pg


def destroy_process_group(group=None):
    if group is None or group is GroupMember.WORLD:
        for pg in _State.groups:
            if pg._impl is not None:
                pg._impl.shutdown()
                pg._impl = None
        _State.groups, _State.default_pg, _State.store = [], None, None
        GroupMember.WORLD = None
        return
    if group is GroupMember.NON_GROUP_MEMBER:
        return
    if group._impl is not None:
        group._impl.shutdown()
        group._impl = None


def get_rank(group=None):
    if group is GroupMember.NON_GROUP_MEMBER:
        return -1
    return _resolve(group).rank()


def get_world_size(group=None):
    if group is GroupMember.NON_GROUP_MEMBER:
        return -1
    return _resolve(group).size()


def get_backend(group=None):
    return _resolve(group)._backend


def get_process_group_ranks(group):
    return list(_resolve(group)._ranks)


def get_global_rank(group, group_rank):
    return _resolve(group)._ranks[group_rank]


def _get_default_group():
    """The default process group (torch's private accessor); ValueError before
    init_process_group."""
    return _default()


def _get_group_size(group):
    """World size of ``group`` (None: the default group)."""
    return get_world_size(group)


def _get_global_rank(group, rank):
    """Deprecated torch spelling of ``get_global_rank``."""
    return get_global_rank(group, rank)


def _rank_not_in_group(group):
    """True when this process is not a member of ``group``."""
    if group is None:
        return False
    return group is GroupMember.NON_GROUP_MEMBER


def get_group_rank(group, global_rank):
    ranks = _resolve(group)._ranks
    if global_rank not in ranks:
        raise ValueError(f"global rank {global_rank} is not part of the group {ranks}")
    return ranks.index(global_rank)


def new_group(ranks=None, timeout=None, backend=None, pg_options=None, use_local_synchronization=False):
    """Must be called by every rank, with the same ranks, in the same order (as in torch).

    With ``use_local_synchronization=True`` only the members call it (as in torch): the
    group's store prefix then comes from its ranks and how many groups of those ranks this
    rank made before, not from the global count, which the non-members do not advance."""
    world = _default()
    ranks = sorted(range(world.size())) if ranks is None else sorted(ranks)
    if len(set(ranks)) != len(ranks) or any(not 0 <= r < world.size() for r in ranks):
        raise ValueError(f"ranks must be distinct ranks in [0, {world.size()}), got {ranks}")
    if use_local_synchronization:
        key = ",".join(map(str, ranks))
        n = _State.local_group_count.get(key, 0)
        _State.local_group_count[key] = n + 1
        name = f"local[{key}]#{n}"
    else:
        _State.group_count += 1
        name = str(_State.group_count)
    me = world.rank()
    if me not in ranks:
        return GroupMember.NON_GROUP_MEMBER
    timeout = world._impl.timeout if timeout is None else timeout
    store = PrefixStore(name, _State.store)
    return _make_group(Backend(backend or world._backend), store, ranks.index(me), ranks,
                       timeout)


# ---- tensor staging ------------------------------------------------------------------------

class _Host:
    """Gloo: a contiguous CPU view of `t` (t itself when possible); write back with .done()
    (CUDA tensors are staged through host memory)."""

    def __init__(self, t, argname, write_back=True):
        if not isinstance(t, _C.TensorBase):
            raise TypeError(f"{argname} must be a Tensor, got {type(t).__name__}")
        self.t = t
        self.h = t if (not t.is_cuda and t.is_contiguous()) else t.cpu().contiguous()
        self.write_back = write_back and self.h is not t

    def done(self):
        if self.write_back:
            self.t.copy_(self.h)


class _Dev(_Host):
    """NCCL: a contiguous CUDA tensor (t itself when possible).  The write-back is enqueued
    on the compute stream, which is ordered after the collective, so it runs at once."""

    def __init__(self, t, argname, write_back=True):
        if not isinstance(t, _C.TensorBase):
            raise TypeError(f"{argname} must be a Tensor, got {type(t).__name__}")
        if not t.is_cuda:
            raise ValueError(f"{argname} must be a CUDA tensor for the NCCL backend, got a "
                             "tensor on cpu (use the gloo backend for CPU tensors)")
        self.t = t
        self.h = t if t.is_contiguous() else t.contiguous()
        self.write_back = write_back and self.h is not t


def _stage(pg, t, argname, write_back=True):
    return (_Dev if pg._backend == "nccl" else _Host)(t, argname, write_back)


def _flat_empty(n, like):
    return _C.empty((n,), dtype=like.dtype, device=like.device)


def _check_op(op):
    try:
        return int(ReduceOp(op))
    except (ValueError, TypeError):
        raise ValueError(f"op must be a ReduceOp, got {op!r}") from None


def _group_rank(pg, global_rank, argname):
    if global_rank not in pg._ranks:
        raise ValueError(f"{argname}={global_rank} is not a rank of the group {pg._ranks}")
    return pg._ranks.index(global_rank)


def _issue(pg, call, async_op, finish=(), result=None, ranks=None, src=None):
    """Run ``call(async_op)`` (a C method), then the copy-backs: now (sync ops, and NCCL,
    whose copies are stream-ordered after the op), or when the Gloo Work completes."""
    if not async_op:
        r = call(False)
        for f in finish:
            f()
        return r
    impl = call(True)
    if pg._backend == "nccl":
        for f in finish:
            f()
        finish = ()
    return Work(impl, finish, result, ranks, src)


def _check_avg(op, tensor):
    if op == ReduceOp.AVG and not (tensor.dtype.is_floating_point or tensor.dtype.is_complex):
        # torch's Gloo backend: "result type Float can't be cast to the desired output type".
        raise RuntimeError(f"Cannot use ReduceOp.AVG with {tensor.dtype} tensors on Gloo: "
                           "result type Float can't be cast to the desired output type "
                           f"{tensor.dtype}")


# ---- collectives -----------------------------------------------------------------------------

def barrier(group=None, async_op=False, device_ids=None):
    pg = _resolve(group)
    if pg is None:
        return None
    w = _issue(pg, lambda a: pg._impl.barrier(async_op=a), async_op)
    return w if async_op else None


def broadcast(tensor, src, group=None, async_op=False):
    pg = _resolve(group)
    if pg is None:
        return None
    root = _group_rank(pg, src, "src")
    h = _stage(pg, tensor, "tensor")
    w = _issue(pg, lambda a: pg._impl.broadcast(h.h, root, async_op=a), async_op, [h.done],
               [tensor])
    return w if async_op else None


def all_reduce(tensor, op=ReduceOp.SUM, group=None, async_op=False):
    pg = _resolve(group)
    if pg is None:
        return None
    op = _check_op(op)
    h = _stage(pg, tensor, "tensor")
    _check_avg(op, tensor)
    w = _issue(pg, lambda a: pg._impl.allreduce(h.h, op, async_op=a), async_op, [h.done],
               [tensor])
    return w if async_op else None


def reduce(tensor, dst, op=ReduceOp.SUM, group=None, async_op=False):
    pg = _resolve(group)
    if pg is None:
        return None
    op = _check_op(op)
    root = _group_rank(pg, dst, "dst")
    h = _stage(pg, tensor, "tensor")
    _check_avg(op, tensor)
    w = _issue(pg, lambda a: pg._impl.reduce(h.h, op, root, async_op=a), async_op, [h.done],
               [tensor])
    return w if async_op else None


def all_gather_into_tensor(output_tensor, input_tensor, group=None, async_op=False):
    pg = _resolve(group)
    if pg is None:
        return None
    out = _stage(pg, output_tensor, "output_tensor")
    inp = _stage(pg, input_tensor, "input_tensor", write_back=False)
    w = _issue(pg, lambda a: pg._impl.allgather(out.h, inp.h, async_op=a), async_op, [out.done],
               [output_tensor])
    return w if async_op else None


def all_gather(tensor_list, tensor, group=None, async_op=False):
    pg = _resolve(group)
    if pg is None:
        return None
    if not isinstance(tensor_list, list) or len(tensor_list) != pg.size():
        raise ValueError(f"tensor_list must be a list of {pg.size()} tensors")
    inp = _stage(pg, tensor, "tensor", write_back=False)
    n = inp.h.numel()
    for i, t in enumerate(tensor_list):
        if not isinstance(t, _C.TensorBase) or t.numel() != n or t.dtype != tensor.dtype:
            raise ValueError(f"tensor_list[{i}] must be a {tensor.dtype} tensor with {n} "
                             "elements")
    flat = _flat_empty(n * pg.size(), inp.h)

    def unpack():
        for i, t in enumerate(tensor_list):
            t.copy_(flat.narrow(0, i * n, n).reshape(t.shape))
    w = _issue(pg, lambda a: pg._impl.allgather(flat, inp.h, async_op=a), async_op, [unpack],
               tensor_list)
    return w if async_op else None


def reduce_scatter_tensor(output, input, op=ReduceOp.SUM, group=None, async_op=False):
    pg = _resolve(group)
    if pg is None:
        return None
    op = _check_op(op)
    out = _stage(pg, output, "output")
    inp = _stage(pg, input, "input", write_back=False)
    _check_avg(op, output)
    w = _issue(pg, lambda a: pg._impl.reduce_scatter(out.h, inp.h, op, async_op=a), async_op,
               [out.done], [output])
    return w if async_op else None


def scatter(tensor, scatter_list=None, src=0, group=None, async_op=False):
    pg = _resolve(group)
    if pg is None:
        return None
    root = _group_rank(pg, src, "src")
    out = _stage(pg, tensor, "tensor")
    flat = None
    if pg.rank() == root:
        if not isinstance(scatter_list, list) or len(scatter_list) != pg.size():
            raise ValueError(f"scatter_list must be a list of {pg.size()} tensors on the src rank")
        n = out.h.numel()
        flat = _flat_empty(n * pg.size(), out.h)
        for i, t in enumerate(scatter_list):
            if not isinstance(t, _C.TensorBase) or t.numel() != n or t.dtype != tensor.dtype:
                raise ValueError(f"scatter_list[{i}] must be a {tensor.dtype} tensor with {n} "
                                 "elements")
            flat.narrow(0, i * n, n).copy_(t.reshape((n,)))
    elif scatter_list:
        raise ValueError("scatter_list must be empty on non-src ranks")
    w = _issue(pg, lambda a: pg._impl.scatter(out.h, flat, root, async_op=a), async_op,
               [out.done], [tensor])
    return w if async_op else None


def gather(tensor, gather_list=None, dst=0, group=None, async_op=False):
    pg = _resolve(group)
    if pg is None:
        return None
    root = _group_rank(pg, dst, "dst")
    inp = _stage(pg, tensor, "tensor", write_back=False)
    n = inp.h.numel()
    flat = None
    if pg.rank() == root:
        if not isinstance(gather_list, list) or len(gather_list) != pg.size():
            raise ValueError(f"gather_list must be a list of {pg.size()} tensors on the dst rank")
        for i, t in enumerate(gather_list):
            if not isinstance(t, _C.TensorBase) or t.numel() != n or t.dtype != tensor.dtype:
                raise ValueError(f"gather_list[{i}] must be a {tensor.dtype} tensor with {n} "
                                 "elements")
        flat = _flat_empty(n * pg.size(), inp.h)
    elif gather_list:
        raise ValueError("gather_list must be empty on non-dst ranks")

    def unpack():
        if flat is not None:
            for i, t in enumerate(gather_list):
                t.copy_(flat.narrow(0, i * n, n).reshape(t.shape))
    w = _issue(pg, lambda a: pg._impl.gather(flat, inp.h, root, async_op=a), async_op, [unpack],
               gather_list or [])
    return w if async_op else None


def all_to_all_single(output, input, output_split_sizes=None, input_split_sizes=None,
                      group=None, async_op=False):
    pg = _resolve(group)
    if pg is None:
        return None
    size = pg.size()
    out = _stage(pg, output, "output")
    inp = _stage(pg, input, "input", write_back=False)

    def splits(t, given, argname):
        rows = t.shape[0] if t.dim() else 1
        row = t.numel() // rows if rows else 0
        if not given:
            if rows % size:
                raise ValueError(f"{argname}: dim 0 ({rows}) is not divisible by the group "
                                 f"size {size}")
            return [rows // size * row] * size
        if len(given) != size or sum(given) != rows:
            raise ValueError(f"{argname} must have {size} entries adding up to {rows}")
        return [s * row for s in given]
    os_ = splits(output, output_split_sizes, "output_split_sizes")
    is_ = splits(input, input_split_sizes, "input_split_sizes")
    w = _issue(pg, lambda a: pg._impl.alltoall(out.h, inp.h, os_, is_, async_op=a), async_op,
               [out.done], [output])
    return w if async_op else None


def all_to_all(output_tensor_list, input_tensor_list, group=None, async_op=False):
    """Rank r sends ``input_tensor_list[j]`` to rank j and receives rank j's into
    ``output_tensor_list[j]``.  One alltoallv on flat buffers: the inputs are packed back to
    back, the outputs unpacked after the op (sizes may differ per peer, zero included)."""
    pg = _resolve(group)
    if pg is None:
        return None
    size = pg.size()
    for argname, lst in (("output_tensor_list", output_tensor_list),
                         ("input_tensor_list", input_tensor_list)):
        if not isinstance(lst, (list, tuple)) or len(lst) != size:
            raise ValueError(f"{argname} must be a list of {size} tensors (the group size)")
        for i, t in enumerate(lst):
            if not isinstance(t, _C.TensorBase):
                raise TypeError(f"{argname}[{i}] must be a Tensor, got {type(t).__name__}")
    dtype = input_tensor_list[0].dtype
    for argname, lst in (("output_tensor_list", output_tensor_list),
                         ("input_tensor_list", input_tensor_list)):
        for i, t in enumerate(lst):
            if t.dtype != dtype:
                raise ValueError(f"{argname}[{i}] has dtype {t.dtype}, expected {dtype} (all "
                                 "tensors of all_to_all must share one dtype)")
    in_n = [t.numel() for t in input_tensor_list]
    out_n = [t.numel() for t in output_tensor_list]
    like = input_tensor_list[0]
    flat_in = _flat_empty(sum(in_n), like)
    pos = 0
    for t, n in zip(input_tensor_list, in_n):
        if n:
            flat_in.narrow(0, pos, n).copy_(t.reshape((n,)))
        pos += n
    flat_out = _flat_empty(sum(out_n), output_tensor_list[0])
    out = _stage(pg, flat_out, "output_tensor_list")
    inp = _stage(pg, flat_in, "input_tensor_list", write_back=False)

    def unpack():
        p = 0
        for t, n in zip(output_tensor_list, out_n):
            if n:
                t.copy_(flat_out.narrow(0, p, n).reshape(t.shape))
            p += n
    w = _issue(pg, lambda a: pg._impl.alltoall(out.h, inp.h, out_n, in_n, async_op=a), async_op,
               [out.done, unpack], list(output_tensor_list))
    return w if async_op else None


def _send(tensor, dst, group, tag, async_op):
    pg = _resolve(group)
    if pg is None:
        return None
    h = _stage(pg, tensor, "tensor", write_back=False)
    peer = _group_rank(pg, dst, "dst")
    w = _issue(pg, lambda a: pg._impl.send(h.h, peer, tag, async_op=a), async_op, (), [tensor])
    return w if async_op else None


def _recv(tensor, src, group, tag, async_op):
    pg = _resolve(group)
    if pg is None:
        return -1 if not async_op else None
    peer = -1 if src is None else _group_rank(pg, src, "src")
    h = _stage(pg, tensor, "tensor")
    r = _issue(pg, lambda a: pg._impl.recv(h.h, peer, tag, async_op=a), async_op, [h.done],
               [tensor], pg._ranks, src)
    return r if async_op else pg._ranks[r]


def send(tensor, dst, group=None, tag=0):
    """Blocking send; returns once the peer has received (Gloo's semantics)."""
    _send(tensor, dst, group, tag, False)


def recv(tensor, src=None, group=None, tag=0):
    """Blocking receive; ``src=None`` accepts any rank.  Returns the sender's global rank."""
    return _recv(tensor, src, group, tag, False)


def isend(tensor, dst, group=None, tag=0):
    """Posts a send and returns its Work (complete it with ``wait()``)."""
    return _send(tensor, dst, group, tag, True)


def irecv(tensor, src=None, group=None, tag=0):
    """Posts a receive (``src=None``: any rank) and returns its Work; after ``wait()``,
    ``work._source_rank()`` is the sender's global rank."""
    return _recv(tensor, src, group, tag, True)


# ---- object collectives ------------------------------------------------------------------------
# Objects travel pickled, packed into int32 words (4 bytes each), on the group's device
# (the current CUDA device for NCCL, as torch does).

def _obj_device(pg, device=None):
    if device is not None:
        return _C.device(device) if isinstance(device, str) else device
    if pg._backend == "nccl":
        from shardopt import cuda  # noqa: PLC0415
        return _C.device(f"cuda:{cuda.current_device()}")
    return None


def _words(nbytes):
    return (nbytes + 3) // 4


def _to_tensor(obj, dev):
    """(int32 tensor on dev, byte count)."""
    raw = pickle.dumps(obj)
    data = np.frombuffer(raw + b"\0" * (-len(raw) % 4), dtype=np.int32)
    t = _C.from_numpy(data.copy())
    return (t.to(dev) if dev is not None else t), len(raw)


def _from_tensor(t, nbytes):
    return pickle.loads(t.cpu().numpy()[:_words(nbytes)].tobytes()[:nbytes])


def _empty_words(n, dev):
    return _C.empty((n,), dtype=_C.int32, device=dev)


def _sizes_all_gather(pg, n, dev):
    mine = _C.from_numpy(np.array([n], dtype=np.int64))
    mine = mine.to(dev) if dev is not None else mine
    sizes = _C.empty((pg.size(),), dtype=_C.int64, device=dev)
    pg._impl.allgather(sizes, mine)
    return [int(s) for s in sizes.cpu().numpy()]


def _padded(data, m, dev):
    padded = _empty_words(m, dev)
    if data.numel():
        padded.narrow(0, 0, data.numel()).copy_(data)
    return padded


def all_gather_object(object_list, obj, group=None):
    pg = _resolve(group)
    if pg is None:
        return None
    if not isinstance(object_list, list) or len(object_list) != pg.size():
        raise ValueError(f"object_list must be a list of {pg.size()} entries")
    dev = _obj_device(pg)
    data, nbytes = _to_tensor(obj, dev)
    sizes = _sizes_all_gather(pg, nbytes, dev)
    m = _words(max(sizes))
    out = _empty_words(m * pg.size(), dev)
    pg._impl.allgather(out, _padded(data, m, dev))
    for i, n in enumerate(sizes):
        object_list[i] = _from_tensor(out.narrow(0, i * m, m), n)


def gather_object(obj, object_gather_list=None, dst=0, group=None):
    pg = _resolve(group)
    if pg is None:
        return None
    root = _group_rank(pg, dst, "dst")
    if pg.rank() == root and (not isinstance(object_gather_list, list)
                              or len(object_gather_list) != pg.size()):
        raise ValueError(f"object_gather_list must be a list of {pg.size()} entries on dst")
    dev = _obj_device(pg)
    data, nbytes = _to_tensor(obj, dev)
    sizes = _sizes_all_gather(pg, nbytes, dev)
    m = _words(max(sizes))
    out = _empty_words(m * pg.size(), dev) if pg.rank() == root else None
    pg._impl.gather(out, _padded(data, m, dev), root)
    if out is not None:
        for i, n in enumerate(sizes):
            object_gather_list[i] = _from_tensor(out.narrow(0, i * m, m), n)


def broadcast_object_list(object_list, src=0, group=None, device=None):
    pg = _resolve(group)
    if pg is None:
        return None
    root = _group_rank(pg, src, "src")
    if not isinstance(object_list, list):
        raise TypeError("object_list must be a list")
    dev = _obj_device(pg, device)
    data, nbytes = _to_tensor(object_list, dev) if pg.rank() == root else (None, 0)
    n = _C.from_numpy(np.array([nbytes], dtype=np.int64))
    n = n.to(dev) if dev is not None else n
    pg._impl.broadcast(n, root)
    nbytes = int(n.cpu().numpy()[0])
    buf = data if data is not None else _empty_words(_words(nbytes), dev)
    pg._impl.broadcast(buf, root)
    if pg.rank() != root:
        received = _from_tensor(buf, nbytes)
        if len(received) != len(object_list):
            raise ValueError(f"object_list has {len(object_list)} entries here but "
                             f"{len(received)} on src")
        object_list[:] = received
