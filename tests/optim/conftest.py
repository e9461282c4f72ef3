"""Optimizer tests: the `cuda` marker (also declared by tests/conftest.py) and the skip used
when no GPU is present, so these tests also run on their own."""
import pytest


def pytest_configure(config):
    config.addinivalue_line("markers", "cuda: needs a CUDA device (skipped without one)")


def cuda_available():
    try:
        import shardopt
        return bool(shardopt.cuda.is_available())
    except Exception:
        return False


@pytest.fixture
def cuda_device():
    if not cuda_available():
        pytest.skip("no CUDA device")
    return "cuda:0"
