"""cat / stack against NumPy (csrc/ops/join.c)."""
import numpy as np
import pytest

import shardopt as so

from oputil import ALL_DTYPES, NP_OF, needs_cuda, to_np  # noqa: F401
from oputil import make as _make


def make(shape, dtype, rng):
    return _make(shape, dtype, rng, -4.0, 4.0, -100, 100)


@pytest.fixture
def rng():
    return np.random.default_rng()


@pytest.mark.parametrize("dtype", ALL_DTYPES)
@pytest.mark.parametrize("dim", [0, 1, 2, -1, -3])
def test_cat(rng, dtype, dim):
    shapes = [[2, 3, 4], [2, 3, 4], [2, 3, 4]]
    for i, s in enumerate(shapes):
        s[dim] = i + 1
    ts, refs = zip(*(make(s, dtype, rng) for s in shapes))
    out = so.cat(ts, dim)
    assert out.dtype == dtype and out.is_contiguous()
    np.testing.assert_array_equal(to_np(out).astype(np.float64), np.concatenate(refs, axis=dim))
    np.testing.assert_array_equal(to_np(so.cat(list(ts), dim=dim)).astype(np.float64),
                                  np.concatenate(refs, axis=dim))


def test_cat_noncontiguous_and_zero_size(rng):
    a, ra = make((4, 3), so.float32, rng)
    b, rb = make((5, 4), so.float32, rng)
    out = so.cat([a, b.t()[:, ::2], a[:, 1:2].expand(4, 2)], 1)
    np.testing.assert_array_equal(to_np(out), np.concatenate([ra, rb.T[:, ::2],
                                                              np.broadcast_to(ra[:, 1:2], (4, 2))], 1))
    z = so._C.empty((4, 0))
    np.testing.assert_array_equal(to_np(so.cat([z, a, z], 1)), ra)
    assert tuple(so.cat([z, z], 1).shape) == (4, 0)


def test_cat_legacy_empty_skipped(rng):
    a, ra = make((2, 3), so.float32, rng)
    e = so._C.empty((0,))
    np.testing.assert_array_equal(to_np(so.cat([e, a, e], 0)), ra)
    np.testing.assert_array_equal(to_np(so.cat([a, e], 1)), ra)
    only = so.cat([e, so._C.empty((0,), dtype=so.float64)])
    assert tuple(only.shape) == (0,) and only.dtype == so.float64


@pytest.mark.parametrize("d1,d2,want", [
    (so.int32, so.float16, so.float16), (so.float16, so.bfloat16, so.float32),
    (so.bool, so.int32, so.int32), (so.int32, so.int64, so.int64),
    (so.float32, so.float64, so.float64), (so.bool, so.bfloat16, so.bfloat16),
    (so.int64, so.float32, so.float32)])
def test_cat_stack_promotion(rng, d1, d2, want):
    a, ra = make((2, 3), d1, rng)
    b, rb = make((2, 3), d2, rng)
    out = so.cat([a, b])
    assert out.dtype == want
    np.testing.assert_allclose(to_np(out).astype(np.float64), np.concatenate([ra, rb]), rtol=1e-2)
    st = so.stack([a, b], 1)
    assert st.dtype == want
    np.testing.assert_allclose(to_np(st).astype(np.float64), np.stack([ra, rb], 1), rtol=1e-2)


def test_cat_errors(rng):
    a, _ = make((2, 3), so.float32, rng)
    b, _ = make((3, 3), so.float32, rng)
    with pytest.raises(RuntimeError, match="expected a non-empty list of Tensors"):
        so.cat([])
    with pytest.raises(RuntimeError, match="Sizes of tensors must match except in dimension 1. "
                       "Expected size 2 but got size 3 for tensor number 1 in the list."):
        so.cat([a, b], 1)
    c, _ = make((2, 3, 1), so.float32, rng)
    with pytest.raises(RuntimeError, match="Tensors must have same number of dimensions: got 2 and 3"):
        so.cat([a, c])
    s = so._C.from_numpy(np.array(1.0, dtype=np.float32))
    with pytest.raises(RuntimeError, match=r"zero-dimensional tensor \(at position 1\) cannot be "
                       "concatenated"):
        so.cat([a, s])
    with pytest.raises(IndexError, match="Dimension out of range"):
        so.cat([a, a], 2)
    with pytest.raises(TypeError, match="expected Tensor as element 1 in argument 0, but got list"):
        so.cat([a, [1.0]])
    with pytest.raises(TypeError, match=r"cat\(\): argument 'tensors' \(position 1\) must be tuple "
                       "of Tensors, not Tensor"):
        so.cat(a)


@pytest.mark.parametrize("dtype", ALL_DTYPES)
@pytest.mark.parametrize("dim", [0, 1, 2, -1, -3])
def test_stack(rng, dtype, dim):
    ts, refs = zip(*(make((3, 4), dtype, rng) for _ in range(3)))
    out = so.stack(ts, dim)
    assert out.dtype == dtype
    np.testing.assert_array_equal(to_np(out).astype(np.float64), np.stack(refs, axis=dim))


def test_stack_noncontiguous_empty_and_errors(rng):
    a, ra = make((3, 4), so.float64, rng)
    out = so.stack([a.t(), a[::2].t().expand(4, 2)[:, :1].expand(4, 3)], 2)
    np.testing.assert_array_equal(to_np(out), np.stack([ra.T, np.broadcast_to(ra[:1].T, (4, 3))], 2))
    e = so._C.empty((0, 2))
    assert tuple(so.stack([e, e, e], 1).shape) == (0, 3, 2)
    s = so._C.from_numpy(np.array(2.0))
    np.testing.assert_array_equal(to_np(so.stack([s, s])), [2.0, 2.0])
    with pytest.raises(RuntimeError, match="stack expects a non-empty TensorList"):
        so.stack([])
    b, _ = make((3, 5), so.float64, rng)
    with pytest.raises(RuntimeError, match=r"stack expects each tensor to be equal size, but got "
                       r"\[3, 4\] at entry 0 and \[3, 5\] at entry 1"):
        so.stack([a, b])
    with pytest.raises(IndexError, match="Dimension out of range"):
        so.stack([a, a], 3)


@pytest.mark.parametrize("cuda", [pytest.param(0, marks=needs_cuda)])
def test_cuda_cat_stack(rng, cuda):
    for dtype in ALL_DTYPES:
        a, ra = make((3, 4), dtype, rng)
        b, rb = make((2, 4), dtype, rng)
        out = so.cat([a.cuda(), b.cuda().t().t()], 0)
        assert out.is_cuda
        np.testing.assert_array_equal(to_np(out).astype(np.float64), np.concatenate([ra, rb]))
        st = so.stack([a.cuda(), a.cuda().t().t()], 1)
        np.testing.assert_array_equal(to_np(st).astype(np.float64), np.stack([ra, ra], 1))
    with pytest.raises(RuntimeError, match="Expected all tensors to be on the same device, but "
                       "found at least two devices, cuda:0 and cpu!"):
        so.cat([a.cuda(), a])
