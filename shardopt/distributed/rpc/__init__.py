"""shardopt.distributed.rpc: torch.distributed.rpc over a per-worker TCP agent.

``init_rpc`` / ``shutdown``, ``get_worker_info``, ``rpc_sync`` / ``rpc_async`` / ``remote``,
``RRef``, ``TensorPipeRpcBackendOptions`` and ``BackendType.TENSORPIPE``, with torch's
errors.  Functions and arguments travel pickled: like torch's RPC, a worker trusts its
peers and unpickles whatever they send (never expose the RPC ports to untrusted hosts).
"""
from .agent import WorkerInfo
from .api import (_all_gather, _barrier, _get_current_rpc_agent, _init_rpc_with_store,
                  _is_current_rpc_agent_set, get_worker_info, init_rpc, remote, rpc_async,
                  rpc_sync, shutdown)
from .options import (BackendType, RpcBackendOptions, TensorPipeRpcBackendOptions,
                      DEFAULT_RPC_TIMEOUT_SEC, DEFAULT_INIT_METHOD, DEFAULT_NUM_WORKER_THREADS,
                      UNSET_RPC_TIMEOUT, DEFAULT_SHUTDOWN_TIMEOUT)
from .rref import RRef
from . import api

__all__ = ["init_rpc", "shutdown", "get_worker_info", "rpc_sync", "rpc_async", "remote",
           "RRef", "WorkerInfo", "BackendType", "RpcBackendOptions",
           "TensorPipeRpcBackendOptions", "is_available"]


def is_available() -> bool:
    """True: shardopt's RPC needs nothing beyond the standard library's sockets."""
    return True
