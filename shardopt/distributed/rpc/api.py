"""torch.distributed.rpc's functions: init/shutdown, worker infos, rpc_sync/rpc_async/remote.

The agent (agent.py) is the transport; this module holds the user-facing checks, the
rendezvous through the project's store (init_method / MASTER_ADDR / MASTER_PORT, as torch)
and the store-based collectives RPC needs (``_all_gather``, the shutdown barrier).
"""
from __future__ import annotations

import gc
import pickle
import re
import time
from datetime import timedelta
from typing import Any, Dict, Optional

from ...futures import Future
from . import _state
from .agent import Agent, WorkerInfo
from .options import (DEFAULT_SHUTDOWN_TIMEOUT, UNSET_RPC_TIMEOUT, BackendType,
                      RpcBackendOptions, TensorPipeRpcBackendOptions)
from .rref import RRef

__all__ = ["init_rpc", "shutdown", "get_worker_info", "rpc_sync", "rpc_async", "remote",
           "WorkerInfo", "RRef"]

_NAME_RE = re.compile(r"^[A-Za-z0-9_:\-]*$")
_MAX_NAME = 128
_all_gather_seq = [0]


def _is_current_rpc_agent_set() -> bool:
    return _state.agent is not None


def _get_current_rpc_agent() -> Agent:
    if _state.agent is None:
        raise RuntimeError("Current RPC agent is not set! Did you initialize the RPC "
                           "framework (e.g. by calling `rpc.init_rpc`)?")
    return _state.agent


def _require() -> Agent:
    if _state.agent is None:
        raise RuntimeError("RPC has not been initialized. Call "
                           "torch.distributed.rpc.init_rpc first.")
    return _state.agent


def _check_int(value, arg):
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"Argument {arg} must be of type int")


def init_rpc(name: str, backend: Optional[BackendType] = None, rank: int = -1,
             world_size: Optional[int] = None,
             rpc_backend_options: Optional[RpcBackendOptions] = None) -> None:
    """Start this process's RPC agent and rendezvous with the other workers.

    Args:
        name: this worker's unique name (letters, digits, ``_``, ``-``, ``:``).
        backend: ``BackendType.TENSORPIPE`` (the default and only backend).
        rank: this worker's id in [0, world_size) (env:// reads RANK when -1).
        world_size: number of workers (env:// reads WORLD_SIZE when None).
        rpc_backend_options: a TensorPipeRpcBackendOptions (timeout, init_method, threads).
    """
    if backend is not None and not isinstance(backend, BackendType):
        raise TypeError("Argument backend must be a member of BackendType")
    if rpc_backend_options is not None and not isinstance(rpc_backend_options,
                                                          RpcBackendOptions):
        raise TypeError("Argument rpc_backend_options must be an instance of "
                        "RpcBackendOptions")
    if not isinstance(name, str):
        raise TypeError("Argument name must be of type str")
    _check_int(rank, "rank")
    if world_size is not None:
        _check_int(world_size, "world_size")
    if not _NAME_RE.match(name) or not name or len(name) > _MAX_NAME:
        raise ValueError(f"Worker name must match ^[A-Za-z0-9-_:]*$ and have 1 to "
                         f"{_MAX_NAME} characters, but got {name!r}")
    if _state.agent is not None:
        raise RuntimeError("RPC is already initialized")
    opts = rpc_backend_options
    if opts is None:
        opts = TensorPipeRpcBackendOptions()
    elif not isinstance(opts, TensorPipeRpcBackendOptions):
        opts = TensorPipeRpcBackendOptions(rpc_timeout=opts.rpc_timeout,
                                           init_method=opts.init_method)
    from ..distributed_c10d import _rendezvous  # noqa: PLC0415
    from ..store import PrefixStore  # noqa: PLC0415
    rdv_timeout = timedelta(seconds=opts.rpc_timeout or 1800)
    store, rank, world_size = _rendezvous(opts.init_method, rank,
                                          -1 if world_size is None else world_size,
                                          rdv_timeout)
    _init_rpc_with_store(name, rank, world_size, store, opts)


def _init_rpc_with_store(name: str, rank: int, world_size: int, store,
                         opts: TensorPipeRpcBackendOptions) -> None:
    """init_rpc on an existing store (the test harness's launch store, for example)."""
    from ..store import PrefixStore  # noqa: PLC0415
    if _state.agent is not None:
        raise RuntimeError("RPC is already initialized")
    if not (0 <= rank < world_size):
        raise ValueError(f"rank must be in [0, world_size), got rank={rank} "
                         f"world_size={world_size}")
    _state.generation += 1
    pstore = PrefixStore(f"rpc_prefix/{_state.generation}", store)
    agent = Agent(name, rank, world_size, pstore, opts)
    _state.agent = agent
    _all_gather_seq[0] = 0


def _wait_keys(store, keys, timeout: float) -> None:
    store.wait(keys, timedelta(seconds=timeout if timeout > 0 else 1800))


def _all_gather(obj: Any, worker_names=None, timeout: float = UNSET_RPC_TIMEOUT) -> Dict[str, Any]:
    """{worker name: obj} from every worker, through the store (a collective)."""
    agent = _require()
    t = agent._resolve_timeout(timeout) if timeout != DEFAULT_SHUTDOWN_TIMEOUT else 0
    _all_gather_seq[0] += 1
    seq = _all_gather_seq[0]
    infos = agent.get_worker_infos()
    if worker_names is not None:
        infos = [agent.get_worker_info(n) for n in worker_names]
    agent.store.set(f"all_gather/{seq}/{agent.rank}", pickle.dumps(obj))
    keys = [f"all_gather/{seq}/{i.id}" for i in infos]
    _wait_keys(agent.store, keys, t)
    return {i.name: pickle.loads(agent.store.get(k)) for i, k in zip(infos, keys)}


def _barrier(worker_names=None) -> None:
    _all_gather(None, worker_names)


def shutdown(graceful: bool = True, timeout: float = DEFAULT_SHUTDOWN_TIMEOUT) -> None:
    """Stop the RPC agent.

    Args:
        graceful: wait for this worker's outstanding calls and RRef deletes, then for every
            worker to reach shutdown (a barrier through the store), before stopping.
        timeout: seconds for those waits (0: the agent's RPC timeout).
    """
    agent = _get_current_rpc_agent()
    try:
        if graceful:
            t = timeout if timeout > 0 else agent.rpc_timeout
            agent.wait_pending(t)
            gc.collect()  # RRefs kept alive only by reference cycles release their counts
            agent.flush_decrefs(t)
            agent.store.set(f"shutdown/{agent.rank}", b"1")
            _wait_keys(agent.store, [f"shutdown/{r}" for r in range(agent.world_size)], t)
    finally:
        _state.agent = None
        agent.shutdown(wait=graceful)


def get_worker_info(worker_name: Optional[str] = None) -> WorkerInfo:
    """The WorkerInfo of `worker_name` (this worker's when None)."""
    return _require().get_worker_info(worker_name)


def _to_worker_info(to) -> WorkerInfo:
    if isinstance(to, WorkerInfo):
        return to
    if isinstance(to, (str, int)) and not isinstance(to, bool):
        return get_worker_info(to)
    raise ValueError(f"Cannot get WorkerInfo from name {to}")


def _check_call(func, args, kwargs):
    if not callable(func):
        raise TypeError(f"function should be callable, got {type(func).__name__}")
    args = () if args is None else tuple(args)
    kwargs = {} if kwargs is None else dict(kwargs)
    return args, kwargs


def _run_local(agent: Agent, func, args, kwargs) -> Future:
    fut: Future = Future()

    def run():
        try:
            fut.set_result(func(*args, **kwargs))
        except BaseException as e:  # noqa: BLE001
            fut.set_exception(e)
    agent._pool.submit(run)
    return fut


def rpc_async(to, func, args=None, kwargs=None, timeout: float = UNSET_RPC_TIMEOUT) -> Future:
    """Run ``func(*args, **kwargs)`` on worker `to`; a Future of the result.

    Args:
        to: destination worker (name, rank or WorkerInfo).
        func: a picklable callable (a module-level function or builtin).
        args, kwargs: its arguments (pickled; RRefs among them are forked).
        timeout: seconds (default -1: the agent's rpc_timeout; 0: none).
    """
    agent = _require()
    info = _to_worker_info(to)
    args, kwargs = _check_call(func, args, kwargs)
    t = agent._resolve_timeout(timeout)
    if info.id == agent.rank:
        return _run_local(agent, func, args, kwargs)
    return agent.request(info.id, ("call", func, args, kwargs), t)


def rpc_sync(to, func, args=None, kwargs=None, timeout: float = UNSET_RPC_TIMEOUT):
    """rpc_async(...).wait(): the result, or the exception raised on the callee."""
    return rpc_async(to, func, args, kwargs, timeout).wait()


def remote(to, func, args=None, kwargs=None, timeout: float = UNSET_RPC_TIMEOUT) -> RRef:
    """Run ``func`` on `to` and keep the result there; an RRef to it (returns at once).

    Args:
        to, func, args, kwargs: as rpc_async.
        timeout: seconds for the owner to acknowledge creating the value; past it,
            ``to_here()`` raises "RRef creation via rpc.remote() timed out ...".
    """
    agent = _require()
    info = _to_worker_info(to)
    args, kwargs = _check_call(func, args, kwargs)
    t = agent._resolve_timeout(timeout)
    rref_id = agent.new_rref_id()
    if info.id == agent.rank:
        entry = agent.own_pending(rref_id)
        src = _run_local(agent, func, args, kwargs)
        src.add_done_callback(lambda f: entry.fut._try_complete(
            f._value if f._exc is None else None, f._exc))
        return RRef._from_id(agent.rank, rref_id)
    created = agent.request(info.id, ("remote", rref_id, func, args, kwargs), t)
    return RRef._from_id(info.id, rref_id, created=created)
