"""shardopt.distributed — torch.distributed's API over a C store and Gloo/NCCL backends."""
from shardopt._C import DistBackendError, DistError, DistStoreError, DistTimeoutError

from .store import FileStore, PrefixStore, Store, TCPStore

__all__ = [
    "DistError", "DistTimeoutError", "DistBackendError", "DistStoreError",
    "Store", "TCPStore", "FileStore", "PrefixStore",
]
