"""torch.distributed's process-group API over shardopt._C.ProcessGroupGloo.

Python keeps only bookkeeping: which groups exist, global <-> group rank maps, staging of
CUDA / non-contiguous tensors through contiguous host copies, zero-element short cuts, and
pickling for the object collectives.  The collectives themselves run in C/C++ without the
GIL, bounded by the group's timeout.

``async_op=True`` returns a Work that is already complete: the Gloo calls are synchronous
(the call returns when this rank's part is done), which satisfies wait()/is_completed().
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
    "Backend", "ReduceOp", "GroupMember", "ProcessGroup", "Work", "init_process_group",
    "destroy_process_group", "is_initialized", "is_available", "is_gloo_available",
    "is_nccl_available", "get_rank", "get_world_size", "get_backend", "new_group",
    "get_process_group_ranks", "get_global_rank", "get_group_rank", "barrier", "broadcast",
    "all_reduce", "reduce", "all_gather", "all_gather_into_tensor", "reduce_scatter_tensor",
    "scatter", "gather", "all_to_all_single", "send", "recv", "all_gather_object",
    "broadcast_object_list", "gather_object", "default_pg_timeout",
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


class Work:
    """Handle returned by ``async_op=True`` (the op has already completed)."""

    def __init__(self, result=None):
        self._result = result

    def wait(self, timeout=None):
        return True

    def is_completed(self):
        return True

    def is_success(self):
        return True

    def result(self):
        return self._result


class _State:
    default_pg = None
    store = None
    groups = []          # every ProcessGroup made in this generation (for destroy)
    group_count = 0      # new_group calls, identical on every rank
    generation = 0       # init_process_group calls in this process


def is_available():
    return True


def is_gloo_available():
    return bool(getattr(_C, "_gloo_compiled", 0))


def is_nccl_available():
    return False  # the NCCL backend is not implemented yet


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


def _rendezvous(init_method, rank, world_size, timeout):
    if init_method.startswith("env://"):
        rank = _env_int("RANK", rank, "rank")
        world_size = _env_int("WORLD_SIZE", world_size, "world_size")
        addr = os.environ.get("MASTER_ADDR")
        port = os.environ.get("MASTER_PORT")
        if addr is None or port is None:
            raise ValueError("env:// initialisation needs MASTER_ADDR and MASTER_PORT")
        agent = os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True"
        store = TCPStore(addr, int(port), world_size, rank == 0 and not agent,
                         timeout=timeout, wait_for_workers=not agent)
        return store, rank, world_size
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
        raise DistBackendError("the NCCL backend is not implemented in this build; use gloo")
    if not is_gloo_available():
        raise DistBackendError("shardopt was built without Gloo (gloo/allreduce.h was not "
                               "found at build time)")
    impl = _C.ProcessGroupGloo(store, rank, len(ranks), timeout)
    pg = ProcessGroup(impl, ranks, backend)
    _State.groups.append(pg)
    return pg


def init_process_group(backend=None, init_method=None, timeout=None, world_size=-1, rank=-1,
                       store=None, group_name="", pg_options=None, device_id=None):
    if _State.default_pg is not None:
        raise ValueError("trying to initialize the default process group twice!")
    timeout = default_pg_timeout if timeout is None else timeout
    _seconds(timeout)
    if backend is None:
        backend = "gloo"  # nccl when implemented and CUDA is present
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


def get_group_rank(group, global_rank):
    ranks = _resolve(group)._ranks
    if global_rank not in ranks:
        raise ValueError(f"global rank {global_rank} is not part of the group {ranks}")
    return ranks.index(global_rank)


def new_group(ranks=None, timeout=None, backend=None, pg_options=None, use_local_synchronization=False):
    """Must be called by every rank, with the same ranks, in the same order (as in torch)."""
    world = _default()
    ranks = sorted(range(world.size())) if ranks is None else sorted(ranks)
    if len(set(ranks)) != len(ranks) or any(not 0 <= r < world.size() for r in ranks):
        raise ValueError(f"ranks must be distinct ranks in [0, {world.size()}), got {ranks}")
    _State.group_count += 1
    me = world.rank()
    if me not in ranks:
        return GroupMember.NON_GROUP_MEMBER
    timeout = world._impl.timeout if timeout is None else timeout
    store = PrefixStore(str(_State.group_count), _State.store)
    return _make_group(Backend(backend or world._backend), store, ranks.index(me), ranks,
                       timeout)


# ---- tensor staging ------------------------------------------------------------------------

class _Host:
    """A contiguous CPU view of `t` (t itself when possible); write back with .done()."""

    def __init__(self, t, argname, write_back=True):
        if not isinstance(t, _C.TensorBase):
            raise TypeError(f"{argname} must be a Tensor, got {type(t).__name__}")
        self.t = t
        self.h = t if (not t.is_cuda and t.is_contiguous()) else t.cpu().contiguous()
        self.write_back = write_back and self.h is not t

    def done(self):
        if self.write_back:
            self.t.copy_(self.h)


def _flat_empty(n, like):
    return _C.empty((n,), dtype=like.dtype)


def _check_op(op):
    try:
        return int(ReduceOp(op))
    except (ValueError, TypeError):
        raise ValueError(f"op must be a ReduceOp, got {op!r}") from None


def _work(async_op, result=None):
    return Work(result) if async_op else None


def _group_rank(pg, global_rank, argname):
    if global_rank not in pg._ranks:
        raise ValueError(f"{argname}={global_rank} is not a rank of the group {pg._ranks}")
    return pg._ranks.index(global_rank)


# ---- collectives -----------------------------------------------------------------------------

def barrier(group=None, async_op=False, device_ids=None):
    pg = _resolve(group)
    if pg is None:
        return None
    pg._impl.barrier()
    return _work(async_op)


def broadcast(tensor, src, group=None, async_op=False):
    pg = _resolve(group)
    if pg is None:
        return None
    root = _group_rank(pg, src, "src")
    h = _Host(tensor, "tensor")
    pg._impl.broadcast(h.h, root)
    h.done()
    return _work(async_op)


def all_reduce(tensor, op=ReduceOp.SUM, group=None, async_op=False):
    pg = _resolve(group)
    if pg is None:
        return None
    op = _check_op(op)
    if op == ReduceOp.AVG and tensor.dtype == _C.bool:
        raise TypeError("ReduceOp.AVG is not defined for bool tensors")
    h = _Host(tensor, "tensor")
    pg._impl.allreduce(h.h, op)
    h.done()
    return _work(async_op)


def reduce(tensor, dst, op=ReduceOp.SUM, group=None, async_op=False):
    pg = _resolve(group)
    if pg is None:
        return None
    op = _check_op(op)
    root = _group_rank(pg, dst, "dst")
    h = _Host(tensor, "tensor")
    pg._impl.reduce(h.h, op, root)
    h.done()
    return _work(async_op)


def all_gather_into_tensor(output_tensor, input_tensor, group=None, async_op=False):
    pg = _resolve(group)
    if pg is None:
        return None
    out = _Host(output_tensor, "output_tensor")
    inp = _Host(input_tensor, "input_tensor", write_back=False)
    pg._impl.allgather(out.h, inp.h)
    out.done()
    return _work(async_op)


def all_gather(tensor_list, tensor, group=None, async_op=False):
    pg = _resolve(group)
    if pg is None:
        return None
    if not isinstance(tensor_list, list) or len(tensor_list) != pg.size():
        raise ValueError(f"tensor_list must be a list of {pg.size()} tensors")
    inp = _Host(tensor, "tensor", write_back=False)
    n = inp.h.numel()
    for i, t in enumerate(tensor_list):
        if not isinstance(t, _C.TensorBase) or t.numel() != n or t.dtype != tensor.dtype:
            raise ValueError(f"tensor_list[{i}] must be a {tensor.dtype} tensor with {n} "
                             "elements")
    flat = _flat_empty(n * pg.size(), inp.h)
    pg._impl.allgather(flat, inp.h)
    for i, t in enumerate(tensor_list):
        t.copy_(flat.narrow(0, i * n, n).reshape(t.shape))
    return _work(async_op)


def reduce_scatter_tensor(output, input, op=ReduceOp.SUM, group=None, async_op=False):
    pg = _resolve(group)
    if pg is None:
        return None
    op = _check_op(op)
    out = _Host(output, "output")
    inp = _Host(input, "input", write_back=False)
    pg._impl.reduce_scatter(out.h, inp.h, op)
    out.done()
    return _work(async_op)


def scatter(tensor, scatter_list=None, src=0, group=None, async_op=False):
    pg = _resolve(group)
    if pg is None:
        return None
    root = _group_rank(pg, src, "src")
    out = _Host(tensor, "tensor")
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
    pg._impl.scatter(out.h, flat, root)
    out.done()
    return _work(async_op)


def gather(tensor, gather_list=None, dst=0, group=None, async_op=False):
    pg = _resolve(group)
    if pg is None:
        return None
    root = _group_rank(pg, dst, "dst")
    inp = _Host(tensor, "tensor", write_back=False)
    n = inp.h.numel()
    flat = None
    if pg.rank() == root:
        if not isinstance(gather_list, list) or len(gather_list) != pg.size():
            raise ValueError(f"gather_list must be a list of {pg.size()} tensors on the dst rank")
        flat = _flat_empty(n * pg.size(), inp.h)
    elif gather_list:
        raise ValueError("gather_list must be empty on non-dst ranks")
    pg._impl.gather(flat, inp.h, root)
    if flat is not None:
        for i, t in enumerate(gather_list):
            t.copy_(flat.narrow(0, i * n, n).reshape(t.shape))
    return _work(async_op)


def all_to_all_single(output, input, output_split_sizes=None, input_split_sizes=None,
                      group=None, async_op=False):
    pg = _resolve(group)
    if pg is None:
        return None
    size = pg.size()
    out = _Host(output, "output")
    inp = _Host(input, "input", write_back=False)

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
    pg._impl.alltoall(out.h, inp.h, splits(output, output_split_sizes, "output_split_sizes"),
                      splits(input, input_split_sizes, "input_split_sizes"))
    out.done()
    return _work(async_op)


def send(tensor, dst, group=None, tag=0):
    pg = _resolve(group)
    if pg is None:
        return None
    h = _Host(tensor, "tensor", write_back=False)
    pg._impl.send(h.h, _group_rank(pg, dst, "dst"), tag)


def recv(tensor, src=None, group=None, tag=0):
    pg = _resolve(group)
    if pg is None:
        return -1
    if src is None:
        raise ValueError("recv from any source is not supported; pass src")
    h = _Host(tensor, "tensor")
    pg._impl.recv(h.h, _group_rank(pg, src, "src"), tag)
    h.done()
    return src


# ---- object collectives ------------------------------------------------------------------------

def _to_tensor(obj):
    buf = io.BytesIO()
    pickle.Pickler(buf).dump(obj)
    data = np.frombuffer(buf.getvalue(), dtype=np.uint8).astype(np.int32)
    return _C.from_numpy(data) if data.size else _C.empty((0,), dtype=_C.int32)


def _from_tensor(t, n):
    return pickle.loads(t.numpy()[:n].astype(np.uint8).tobytes())


def _sizes_all_gather(pg, n):
    mine = _C.from_numpy(np.array([n], dtype=np.int64))
    sizes = _C.empty((pg.size(),), dtype=_C.int64)
    pg._impl.allgather(sizes, mine)
    return [int(s) for s in sizes.numpy()]


def all_gather_object(object_list, obj, group=None):
    pg = _resolve(group)
    if pg is None:
        return None
    if not isinstance(object_list, list) or len(object_list) != pg.size():
        raise ValueError(f"object_list must be a list of {pg.size()} entries")
    data = _to_tensor(obj)
    sizes = _sizes_all_gather(pg, data.numel())
    m = max(sizes)
    padded = _C.empty((m,), dtype=_C.int32)
    if data.numel():
        padded.narrow(0, 0, data.numel()).copy_(data)
    out = _C.empty((m * pg.size(),), dtype=_C.int32)
    pg._impl.allgather(out, padded)
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
    data = _to_tensor(obj)
    sizes = _sizes_all_gather(pg, data.numel())
    m = max(sizes)
    padded = _C.empty((m,), dtype=_C.int32)
    if data.numel():
        padded.narrow(0, 0, data.numel()).copy_(data)
    out = _C.empty((m * pg.size(),), dtype=_C.int32) if pg.rank() == root else None
    pg._impl.gather(out, padded, root)
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
    data = _to_tensor(object_list) if pg.rank() == root else None
    n = _C.from_numpy(np.array([data.numel() if data is not None else 0], dtype=np.int64))
    pg._impl.broadcast(n, root)
    count = int(n.numpy()[0])
    buf = data if data is not None else _C.empty((count,), dtype=_C.int32)
    pg._impl.broadcast(buf, root)
    if pg.rank() != root:
        received = _from_tensor(buf, count)
        if len(received) != len(object_list):
            raise ValueError(f"object_list has {len(object_list)} entries here but "
                             f"{len(received)} on src")
        object_list[:] = received
