"""torch.testing._internal.common_distributed's path (implementation: shardopt.testing).

GPU guards on a CPU-only machine.  Ported tests replace their cuda devices by cpu and nccl
by gloo; their ``skip_if_lt_x_gpu(x)`` guard then stands for "x ranks with a device each",
which CPU ranks satisfy.  So here, without CUDA, ``skip_if_lt_x_gpu(x)`` skips only when the
test has fewer than ``x`` ranks; with CUDA it keeps torch's meaning (x CUDA devices).
shardopt.testing.skip_if_lt_x_gpu always keeps torch's meaning.
"""
import functools
import os
import unittest

from shardopt.testing._multiprocess import (  # noqa: F401
    MultiProcessTestCase,
    TEST_SKIPS,
    TestSkip,
    _cuda_device_count,
    _dist,
    _Skip,
    requires_gloo,
    requires_nccl,
    skip_if_lt_x_gpu as _skip_if_lt_x_gpu_cuda,
    tp_transports,
)
from shardopt.testing._ranks import IN_RANK_ENV, run_test_on_ranks

__all__ = ["MultiProcessTestCase", "TEST_SKIPS", "TestSkip", "requires_gloo", "requires_nccl",
           "requires_accelerator_dist_backend", "skip_if_lt_x_gpu", "skip_if_no_gpu",
           "spawn_threads_and_init_comms", "tp_transports", "DEFAULT_WORLD_SIZE", "TIMEOUT_DEFAULT"]

DEFAULT_WORLD_SIZE = 4
TIMEOUT_DEFAULT = 100


def skip_if_lt_x_gpu(x):
    """Skip unless x CUDA devices exist; without CUDA, unless the test has x ranks (see the
    module docstring)."""
    if _cuda_device_count() > 0:
        return _skip_if_lt_x_gpu_cuda(x)

    def decorator(func):
        @functools.wraps(func)
        def wrapper(self, *args, **kwargs):
            if getattr(self, "world_size", x) < x:
                raise _Skip(f"multi-gpu-{x}" if f"multi-gpu-{x}" in TEST_SKIPS
                            else f"Need at least {x} CUDA devices")
            return func(self, *args, **kwargs)
        return wrapper
    return decorator


def skip_if_no_gpu(func):
    """Skip unless a CUDA device exists (torch's guard of the same name)."""
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        if _cuda_device_count() == 0:
            raise _Skip("no_cuda")
        return func(*args, **kwargs)
    return wrapper


def requires_accelerator_dist_backend(backends=None):
    """Skip unless one of ``backends`` (default nccl) is available; "gloo" counts, so a
    test ported to Gloo runs."""
    backends = list(backends) if backends is not None else ["nccl"]
    checks = {"nccl": lambda: _dist().is_nccl_available(),
              "gloo": lambda: _dist().is_gloo_available()}
    available = any(checks.get(b, lambda: False)() for b in backends)
    return unittest.skipUnless(
        available, f"No accelerator communication backend available among {backends}")


def spawn_threads_and_init_comms(func=None, timeout=TIMEOUT_DEFAULT,
                                 world_size=DEFAULT_WORLD_SIZE):
    """Run the decorated test method on ``world_size`` ranks, each inside an initialised
    process group (Gloo; spawned processes instead of torch's threads, see
    shardopt/testing/_ranks.py); the first failing rank's error fails the test."""
    if func is None:
        return functools.partial(spawn_threads_and_init_comms, timeout=timeout,
                                 world_size=world_size)

    @functools.wraps(func)
    def wrapper(self, *args, **kwargs):
        if os.environ.get(IN_RANK_ENV) is not None:
            return func(self, *args, **kwargs)  # in a rank: its process group is initialised
        if args or kwargs:
            raise TypeError("spawn_threads_and_init_comms: the decorated test method takes no "
                            "arguments besides self")
        run_test_on_ranks(self, func.__name__, world_size, timeout)
    return wrapper
