"""Memory properties of a Tensor: layout (always strided) and pinning.  Pinned tensors are
page-locked host memory of their own (mlock'd anonymous mappings): factories with
``pin_memory=True`` and ``Tensor.pin_memory()`` make them, ``is_pinned()`` tells them apart,
and only CPU tensors can be pinned."""
import os

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
def test_pin_memory_true_gives_pinned_memory(make):
    t = make()
    assert t.is_pinned() is True
    assert t.device == so.device("cpu") and t.is_contiguous()
    assert t.numpy().shape == tuple(t.shape)


def _locked_kib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmLck:"):
                return int(line.split()[1])
    pytest.skip("no VmLck in /proc/self/status")


def test_is_pinned_and_pin_memory():
    t = so.randn(3, pin_memory=False)
    assert t.is_pinned() is False
    base = so.arange(12.0).reshape(3, 4)
    view = base.t()[1:]  # non-contiguous, offset into its storage
    p = view.pin_memory()
    assert p.is_pinned() and not view.is_pinned() and p.is_contiguous()
    assert p.shape == view.shape and p.dtype == view.dtype
    assert (p.numpy() == view.numpy()).all()
    assert p.pin_memory() is p  # already pinned: the tensor itself (torch)
    p.add_(1)  # a copy: the source is untouched
    assert (base.numpy() == so.arange(12.0).reshape(3, 4).numpy()).all()
    # views of a pinned tensor share its storage, so they are pinned too
    assert p[0].is_pinned()
    # requires_grad survives a pinned factory
    assert so.ones(2, requires_grad=True, pin_memory=True).requires_grad
    # empty tensors can be pinned
    assert so.zeros(0, 3, pin_memory=True).is_pinned()


def test_pinned_memory_is_locked_and_released():
    if "libasan" in os.environ.get("LD_PRELOAD", ""):
        pytest.skip("AddressSanitizer turns mlock into a no-op (sanitizer_common)")
    before = _locked_kib()
    t = so.empty(1 << 20, pin_memory=True)  # 4 MiB, page-locked while it lives
    assert _locked_kib() - before >= 4096
    del t
    assert _locked_kib() - before < 4096


def test_only_cpu_tensors_can_be_pinned():
    with pytest.raises(RuntimeError, match="only dense CPU tensors can be pinned"):
        so.empty(2, device="meta", pin_memory=True)
    with pytest.raises(RuntimeError, match="only dense CPU tensors can be pinned"):
        so.empty(2, device="meta").pin_memory()
    with pytest.raises(TypeError, match="expected a Tensor"):
        so._C._pin_memory([1.0])


def test_layout_is_strided():
    t = so.ones(2, 3)
    assert t.layout is so.strided and t.t().layout is so.strided
