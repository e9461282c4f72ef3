"""tests/conftest.py — markers shared by the whole suite.

`cuda`: the test needs a CUDA device; skipped with reason "no CUDA device" unless
shardopt.cuda.is_available().  shardopt is imported only inside the hook, and only when a
cuda-marked test was collected, so collection never fails because the extension is missing
(the tests that import it then report the real error).
`slow`: a long-running test (deselect with `-m "not slow"`).
"""
import pytest


def pytest_configure(config):
    config.addinivalue_line("markers", "cuda: needs a CUDA device (skipped without one)")
    config.addinivalue_line("markers", "slow: long-running test; deselect with -m 'not slow'")


def _cuda_available():
    try:
        import shardopt
        return bool(shardopt.cuda.is_available()), None
    except Exception as e:  # extension missing or broken: no CUDA either way
        return False, f"{type(e).__name__}: {e}"


def pytest_collection_modifyitems(config, items):
    cuda_items = [item for item in items if item.get_closest_marker("cuda") is not None]
    if not cuda_items:
        return
    available, error = _cuda_available()
    if available:
        return
    reason = "no CUDA device" if error is None else f"no CUDA device (import failed: {error})"
    skip = pytest.mark.skip(reason=reason)
    for item in cuda_items:
        item.add_marker(skip)
