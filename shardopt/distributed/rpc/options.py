"""RPC backend options (torch.distributed.rpc.options / backend_registry).

shardopt has one RPC transport (a TCP agent per worker, see agent.py); it answers to
torch's TENSORPIPE backend name so that torch code selecting it ports unchanged.  The
options torch's TensorPipe agent takes are accepted; ``rpc_timeout`` and ``init_method``
are used, ``num_worker_threads`` sizes the agent's request pool, device maps/devices are
recorded (values travel through host memory).
"""
from __future__ import annotations

import enum
from typing import Dict, List, Optional

__all__ = ["BackendType", "RpcBackendOptions", "TensorPipeRpcBackendOptions",
           "DEFAULT_RPC_TIMEOUT_SEC", "DEFAULT_INIT_METHOD", "DEFAULT_NUM_WORKER_THREADS",
           "UNSET_RPC_TIMEOUT", "DEFAULT_SHUTDOWN_TIMEOUT"]

DEFAULT_RPC_TIMEOUT_SEC: float = 60.0
DEFAULT_INIT_METHOD: str = "env://"
DEFAULT_NUM_WORKER_THREADS: int = 16
UNSET_RPC_TIMEOUT: float = -1.0
DEFAULT_SHUTDOWN_TIMEOUT: float = 0


class BackendType(enum.Enum):
    """RPC backends (torch's registry has TENSORPIPE only)."""
    TENSORPIPE = 1

    def __repr__(self) -> str:
        return f"BackendType.{self.name}"


class RpcBackendOptions:
    """Options common to every RPC backend.

    Args:
        rpc_timeout: default timeout of each call, in seconds (0: no timeout).
        init_method: rendezvous URL (``env://``, ``tcp://host:port``, ``file://path``).
    """

    def __init__(self, rpc_timeout: float = DEFAULT_RPC_TIMEOUT_SEC,
                 init_method: str = DEFAULT_INIT_METHOD) -> None:
        self.rpc_timeout = rpc_timeout
        self.init_method = init_method

    @property
    def rpc_timeout(self) -> float:
        return self._rpc_timeout

    @rpc_timeout.setter
    def rpc_timeout(self, value) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"rpc_timeout must be a number of seconds, got "
                            f"{type(value).__name__}")
        if value < 0:
            raise ValueError(f"rpc_timeout must be >= 0 (0 means no timeout), got {value}")
        self._rpc_timeout = float(value)

    @property
    def init_method(self) -> str:
        return self._init_method

    @init_method.setter
    def init_method(self, value) -> None:
        if not isinstance(value, str):
            raise TypeError(f"init_method must be a str, got {type(value).__name__}")
        self._init_method = value


class TensorPipeRpcBackendOptions(RpcBackendOptions):
    """torch's TensorPipe agent options.

    Args:
        num_worker_threads: size of the pool that runs incoming requests (default 16).
        rpc_timeout: default per-call timeout in seconds (default 60; 0: none).
        init_method: rendezvous URL (default ``env://``).
        device_maps, devices: accepted and recorded (tensors travel through host memory).
        _transports, _channels: accepted for torch compatibility.
    """

    def __init__(self, *, num_worker_threads: int = DEFAULT_NUM_WORKER_THREADS,
                 rpc_timeout: float = DEFAULT_RPC_TIMEOUT_SEC,
                 init_method: str = DEFAULT_INIT_METHOD,
                 device_maps: Optional[Dict] = None, devices: Optional[List] = None,
                 _transports: Optional[List] = None,
                 _channels: Optional[List] = None) -> None:
        super().__init__(rpc_timeout, init_method)
        if isinstance(num_worker_threads, bool) or not isinstance(num_worker_threads, int) \
                or num_worker_threads < 1:
            raise ValueError(f"num_worker_threads must be a positive int, got "
                             f"{num_worker_threads!r}")
        self.num_worker_threads = num_worker_threads
        self.device_maps = {k: dict(v) for k, v in (device_maps or {}).items()}
        self.devices = list(devices or [])
        self._transports = _transports
        self._channels = _channels

    def set_device_map(self, to: str, device_map: Dict) -> None:
        """Record the device map towards worker `to` (merged into an existing one)."""
        if not isinstance(to, str):
            raise TypeError(f"to must be a worker name (str), got {type(to).__name__}")
        cur = self.device_maps.setdefault(to, {})
        for k, v in dict(device_map).items():
            if k in cur and cur[k] != v:
                raise ValueError(f"`set_device_map` only supports 1-to-1 mapping, trying to "
                                 f"map {k} to {v} and {cur[k]}")
            cur[k] = v

    def set_devices(self, devices: List) -> None:
        self.devices = list(devices)
