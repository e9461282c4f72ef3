"""torch.testing._internal.common_utils's path: the parts distributed tests use.

shardopt is never built for ROCm or under a dev-debug ASAN build of torch, so those flags are
False and ``skipIfRocm`` leaves the test as it is."""
import functools
import unittest

from shardopt.testing._comparison import TestCase
from shardopt.testing._multiprocess import _cuda_device_count, run_tests

__all__ = ["TestCase", "run_tests", "TEST_WITH_DEV_DBG_ASAN", "TEST_WITH_ROCM", "TEST_WITH_ASAN",
           "TEST_WITH_TSAN", "IS_WINDOWS", "IS_MACOS", "TEST_CUDA", "sandcastle_skip_if",
           "skip_but_pass_in_sandcastle_if", "skip_but_pass_in_sandcastle", "skipIfRocm"]

TEST_WITH_DEV_DBG_ASAN = False
TEST_WITH_ROCM = False
TEST_WITH_ASAN = False
TEST_WITH_TSAN = False
IS_WINDOWS = False
IS_MACOS = False
TEST_CUDA = _cuda_device_count() > 0


def skip_but_pass_in_sandcastle_if(condition, reason):
    """Skip the test when ``condition`` holds (outside Meta's CI a plain skip)."""
    return unittest.skipIf(condition, reason)


sandcastle_skip_if = skip_but_pass_in_sandcastle_if


def skip_but_pass_in_sandcastle(reason):
    return unittest.skip(reason)


def skipIfRocm(func=None, *, msg="test doesn't currently work on the ROCm stack"):
    """No-op: shardopt has no ROCm build."""
    if func is None:
        return functools.partial(skipIfRocm, msg=msg)
    return func
