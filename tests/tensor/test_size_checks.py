"""Sizes that cannot exist are refused wherever a tensor is made (factories, view, reshape,
expand, as_strided), with torch's errors: a negative dimension, or an element count whose
product overflows (checked the way c10 does: a later zero does not excuse an overflow)."""
import pytest

import shardopt as torch

BIG = 2 ** 32


def _torch():
    return pytest.importorskip("torch")


@pytest.mark.parametrize("make", [
    lambda m: m.ones(-1, 0, 0), lambda m: m.zeros(4, -2), lambda m: m.empty((-1,)),
    lambda m: m.zeros(2).new_empty(-2)],
    ids=["ones", "zeros", "empty", "new_empty"])
def test_negative_dimension(make):
    with pytest.raises(RuntimeError) as ours:
        make(torch)
    assert "Trying to create tensor with negative dimension" in str(ours.value)
    with pytest.raises(RuntimeError) as theirs:
        make(_torch())
    if "Dimension size must be non-negative" not in str(theirs.value):  # torch.zeros' own words
        assert str(ours.value) == str(theirs.value)


@pytest.mark.parametrize("make", [
    lambda m: m.zeros(0).view(BIG, BIG, BIG), lambda m: m.zeros(0).reshape(BIG, BIG, BIG),
    lambda m: m.zeros(0).view(2 ** 62, 4, 0), lambda m: m.zeros(1, 0).expand(BIG, BIG, 0),
    lambda m: m.zeros(0).as_strided((BIG, BIG, 0), (1, 1, 1))],
    ids=["view", "reshape", "view-zero-last", "expand", "as_strided"])
def test_view_element_count_overflow(make):
    with pytest.raises(RuntimeError, match="^numel: integer multiplication overflow$"):
        make(torch)
    with pytest.raises(RuntimeError, match="^numel: integer multiplication overflow$"):
        make(_torch())


@pytest.mark.parametrize("size", [(BIG, BIG, 0), (BIG, BIG, BIG), (2 ** 62, 2 ** 62)])
def test_factory_element_count_overflow(size):
    with pytest.raises(RuntimeError) as ours:
        torch.zeros(*size)
    assert str(ours.value).startswith("Storage size calculation overflowed with sizes=")
    with pytest.raises(RuntimeError) as theirs:
        _torch().zeros(*size)
    assert str(ours.value) == str(theirs.value)


def test_sizes_at_the_edge_still_work():
    # no overflow: 2**62 * 2 fits in uint64 before the zero, as in c10
    assert torch.zeros(0).view(2 ** 62, 2, 0).numel() == 0
    assert torch.zeros(0).view(BIG, 0).shape == (BIG, 0)
    assert torch.zeros(3, 0, 2).numel() == 0
