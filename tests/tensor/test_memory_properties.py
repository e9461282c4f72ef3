"""Memory properties of a Tensor: layout (always strided) and pinning.  shardopt allocates
no pinned (page-locked) host memory: ``is_pinned()`` is False and asking for pinned memory
raises instead of silently handing back an ordinary tensor."""
import pytest

import shardopt as so


@pytest.mark.parametrize("make", [
    lambda: so.empty(2, pin_memory=True), lambda: so.zeros(2, pin_memory=True),
    lambda: so.ones(2, pin_memory=True), lambda: so.full((2,), 1.0, pin_memory=True),
    lambda: so.rand(2, pin_memory=True), lambda: so.randn(2, pin_memory=True),
    lambda: so.arange(3, pin_memory=True), lambda: so.eye(2, pin_memory=True),
    lambda: so.tensor([1.0], pin_memory=True),
    lambda: so.ones(1).new_zeros(2, pin_memory=True),
])
def test_pin_memory_true_is_refused(make):
    with pytest.raises(RuntimeError, match="pin_memory=True needs pinned"):
        make()


def test_is_pinned_and_pin_memory():
    t = so.randn(3, pin_memory=False)
    assert t.is_pinned() is False
    with pytest.raises(RuntimeError, match="does not allocate pinned"):
        t.pin_memory()


def test_layout_is_strided():
    t = so.ones(2, 3)
    assert t.layout is so.strided and t.t().layout is so.strided
