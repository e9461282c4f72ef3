"""shardopt.cuda: device queries. Never initialises CUDA at import time."""
from . import _C

__all__ = ["is_available", "device_count", "current_device", "set_device", "synchronize"]


def is_available():
    """True if this build has CUDA and at least one device is usable."""
    return _C._cuda_device_count() > 0


def device_count():
    return _C._cuda_device_count()


def current_device():
    return _C._cuda_current_device()


def set_device(device):
    if isinstance(device, str) or isinstance(device, _C.device):
        device = _C.device(device).index or 0
    _C._cuda_set_device(int(device))


def synchronize(device=None):
    if device is None:
        device = current_device()
    elif not isinstance(device, int):
        device = _C.device(device).index or 0
    _C._cuda_synchronize(int(device))
