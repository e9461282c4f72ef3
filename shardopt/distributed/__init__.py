"""shardopt.distributed — torch.distributed's API over a C store and a Gloo backend."""
from shardopt._C import DistBackendError, DistError, DistStoreError, DistTimeoutError

from .remote_device import _remote_device  # noqa: F401  (torch.distributed._remote_device)
from .store import FileStore, PrefixStore, Store, TCPStore
from .distributed_c10d import *  # noqa: F401,F403
from .distributed_c10d import __all__ as _c10d_all
from . import rpc  # noqa: E402  (torch.distributed.rpc is reachable after import)

__all__ = [
    "DistError", "DistTimeoutError", "DistBackendError", "DistStoreError",
    "Store", "TCPStore", "FileStore", "PrefixStore", *_c10d_all,
]


def __getattr__(name):
    # distributed.optim builds on shardopt.optim and autograd: load it on first use
    if name == "optim":
        import importlib  # noqa: PLC0415
        return importlib.import_module(".optim", __name__)
    raise AttributeError(f"module 'shardopt.distributed' has no attribute {name!r}")
