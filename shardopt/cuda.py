"""shardopt.cuda: device queries. Never initialises CUDA at import time."""
from . import _C

__all__ = ["is_available", "device_count", "current_device", "set_device", "synchronize",
           "manual_seed", "manual_seed_all"]


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


def manual_seed(seed):
    """Seed the current CUDA device's default generator; a no-op without a usable GPU (torch
    defers the call until CUDA starts, and without CUDA it never does)."""
    if is_available():
        _C._default_generator(current_device()).manual_seed(seed)


def manual_seed_all(seed):
    """Seed every CUDA device's default generator (no CUDA call: the slots are filled lazily)."""
    _C._seed_default_generators(seed, 1)
