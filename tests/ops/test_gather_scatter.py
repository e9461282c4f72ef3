"""gather / scatter(_) / scatter_add(_) / index_select / masked_fill against NumPy float64
(csrc/ops/index*.c, index.cu), with torch's argument errors."""
import numpy as np
import pytest

import shardopt as so

from oputil import ALL_DTYPES, needs_cuda, to_np
from oputil import make, poison_heap


@pytest.fixture
def rng():
    return np.random.default_rng()


def I(a):  # noqa: E743
    return so.tensor(np.asarray(a), dtype=so.int64)


def np_gather(ref, dim, idx):
    return np.take_along_axis(ref, idx, axis=dim)


@pytest.mark.parametrize("dtype", ALL_DTYPES)
@pytest.mark.parametrize("dim", [0, 1, 2, -1])
def test_gather(rng, dtype, dim):
    x, ref = make((4, 5, 6), dtype, rng)
    d = dim % 3
    ishape = [3, 4, 5]
    ishape[d] = 7  # the gathered dim may be longer than the source's
    idx = rng.integers(-0, x.shape[d], size=ishape)
    # take_along_axis needs equal non-gathered sizes: compare on the matching slice
    poison_heap(int(np.prod(ishape)) * x.element_size())
    got = so.gather(x, dim, I(idx))
    assert got.dtype == dtype and tuple(got.shape) == tuple(ishape)
    sl = [slice(0, 3), slice(0, 4), slice(0, 5)]
    sl[d] = slice(None)
    want = np_gather(ref[tuple(sl)], d, idx)
    np.testing.assert_array_equal(to_np(got).astype(np.float64), want)


def test_gather_noncontiguous(rng):
    x, ref = make((6, 5), so.float64, rng)
    idx = rng.integers(0, 6, size=(5, 4))
    got = x.t().gather(1, I(idx))  # x.t() is (5, 6) strided
    np.testing.assert_array_equal(to_np(got), np_gather(ref.T[:, :6], 1, idx))


@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_scatter_src_and_value(rng, dtype):
    x, ref = make((4, 6), dtype, rng)
    src, sref = make((4, 3), dtype, rng)
    # distinct positions per row so the result does not depend on write order
    idx = np.stack([rng.permutation(6)[:3] for _ in range(4)])
    got = x.scatter(1, I(idx), src)
    want = ref.copy()
    np.put_along_axis(want, idx, sref, axis=1)
    np.testing.assert_array_equal(to_np(got).astype(np.float64), want)
    np.testing.assert_array_equal(to_np(x).astype(np.float64), ref)  # out of place
    got = so.scatter(x, 1, I(idx), value=1)
    want = ref.copy()
    np.put_along_axis(want, idx, 1.0, axis=1)
    np.testing.assert_array_equal(to_np(got).astype(np.float64), want)
    y = x.clone()
    assert y.scatter_(1, I(idx), 0) is y
    want = ref.copy()
    np.put_along_axis(want, idx, 0.0, axis=1)
    np.testing.assert_array_equal(to_np(y).astype(np.float64), want)


@pytest.mark.parametrize("dtype", [so.float32, so.float64, so.int32, so.int64, so.float16,
                                   so.bfloat16])
@pytest.mark.parametrize("dim", [0, 1])
def test_scatter_add_duplicates(rng, dtype, dim):
    x, ref = make((5, 6), dtype, rng, ilo=-4, ihi=4)
    ishape = (9, 6) if dim == 0 else (5, 9)
    idx = rng.integers(0, x.shape[dim], size=ishape)
    src, sref = make(ishape, dtype, rng, ilo=-4, ihi=4)
    got = so.scatter_add(x, dim, I(idx), src)
    want = ref.copy()
    for pos in np.ndindex(*ishape):
        tgt = list(pos)
        tgt[dim] = idx[pos]
        want[tuple(tgt)] += sref[pos]
    tol = {so.float16: 3e-2, so.bfloat16: 2e-1, so.float32: 1e-5}.get(dtype, 1e-12)
    np.testing.assert_allclose(to_np(got).astype(np.float64), want, rtol=tol, atol=tol)
    x2 = x.clone()
    x.scatter_add_(dim, I(idx), src)
    np.testing.assert_allclose(to_np(x).astype(np.float64), want, rtol=tol, atol=tol)
    # scatter(reduce='add') is scatter_add, also with a number
    np.testing.assert_allclose(to_np(x2.scatter(dim, I(idx), src, reduce="add")).astype(np.float64),
                               want, rtol=tol, atol=tol)
    ones = ref.copy()
    for pos in np.ndindex(*ishape):
        tgt = list(pos)
        tgt[dim] = idx[pos]
        ones[tuple(tgt)] += 1
    np.testing.assert_allclose(to_np(x2.scatter_(dim, I(idx), 1, reduce="add")).astype(np.float64),
                               ones, rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", ALL_DTYPES)
@pytest.mark.parametrize("dim", [0, 1, -1])
@pytest.mark.parametrize("idx_dtype", [so.int64, so.int32])
def test_index_select(rng, dtype, dim, idx_dtype):
    x, ref = make((4, 5, 3), dtype, rng)
    n = x.shape[dim]
    idx = rng.integers(-0, n, size=7)
    poison_heap(ref.size // n * 7 * x.element_size())
    got = so.index_select(x, dim, so.tensor(idx, dtype=idx_dtype))
    np.testing.assert_array_equal(to_np(got).astype(np.float64), np.take(ref, idx, axis=dim))
    got = x.index_select(dim, so.tensor(int(idx[0]), dtype=idx_dtype))  # 0-d index: size-1 dim
    np.testing.assert_array_equal(to_np(got).astype(np.float64),
                                  np.take(ref, idx[:1], axis=dim))


@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_masked_fill(rng, dtype):
    x, ref = make((3, 5), dtype, rng)
    m = rng.random(5) < 0.5  # broadcast over rows
    got = x.masked_fill(so.tensor(m), 1)
    want = np.where(m, 1.0, ref)
    np.testing.assert_array_equal(to_np(got).astype(np.float64), want)
    got = so.masked_fill(x, so.tensor(m), so.tensor(0))
    np.testing.assert_array_equal(to_np(got).astype(np.float64), np.where(m, 0.0, ref))
    y = x.clone()
    assert y.masked_fill_(so.tensor(m), 0) is y
    np.testing.assert_array_equal(to_np(y).astype(np.float64), np.where(m, 0.0, ref))
    if dtype.is_floating_point:
        got = x.masked_fill(so.tensor(m), float("-inf"))
        assert np.all(np.isneginf(to_np(got)[:, m]))


def _same_error(f):
    torch = pytest.importorskip("torch")
    with pytest.raises(Exception) as te:
        f(torch)
    with pytest.raises(type(te.value)) as se:
        f(so)
    assert str(se.value).split("\n")[0] == str(te.value).split("\n")[0], (se.value, te.value)


ERRORS = [
    lambda m: m.zeros(3, 4).gather(1, m.tensor([[0], [5], [0]])),
    lambda m: m.zeros(3, 4).gather(1, m.zeros(3, 1)),
    lambda m: m.zeros(3, 4).scatter_add(1, m.zeros(3, 1), m.zeros(3, 1)),
    lambda m: m.zeros(3, 4).gather(2, m.tensor([[0], [1], [0]])),
    lambda m: m.zeros(3, 4).gather(1, m.tensor([0, 1, 0])),
    lambda m: m.zeros(3, 4).gather(1, m.zeros(4, 1, dtype=m.int64)),
    lambda m: m.zeros(3, 4).scatter(1, m.tensor([[0], [5], [0]]), 1.0),
    lambda m: m.zeros(3, 4).scatter(1, m.tensor([[0], [1], [0]]), m.zeros(2, 1)),
    lambda m: m.zeros(3, 4).scatter(1, m.tensor([[0], [1], [0]]), m.zeros(3, 1, dtype=m.float64)),
    lambda m: m.zeros(3, 4).scatter(1, m.tensor([[0.0]]), m.zeros(3, 1)),
    lambda m: m.zeros(3, 4).scatter_add(1, m.tensor([[0], [1], [0]]), 1.0),
    lambda m: m.zeros(3, 4).index_select(1, m.tensor([0, 7])),
    lambda m: m.zeros(3, 4).index_select(1, m.tensor([[0, 1]])),
    lambda m: m.zeros(3, 4).index_select(1, m.tensor([0.0, 1.0])),
    lambda m: m.zeros(3, 4).index_select(5, m.tensor([0])),
    lambda m: m.zeros(3, 4).masked_fill(m.tensor([1, 0, 1, 0]), 1.0),
    lambda m: m.zeros(3, 4).masked_fill(m.ones(4, dtype=m.bool), m.tensor([1.0, 2.0])),
    lambda m: m.zeros(3, 4).masked_fill(m.ones(5, dtype=m.bool), 1.0),
    lambda m: m.zeros(3, 4).masked_fill_(m.ones(2, 3, 4, dtype=m.bool), 1.0),
]


@pytest.mark.parametrize("case", range(len(ERRORS)))
def test_errors_match_torch(case):
    _same_error(ERRORS[case])


def test_errors_without_torch():
    x = so.zeros(3, 4)
    with pytest.raises(RuntimeError, match="index 5 is out of bounds for dimension 1 with size 4"):
        x.gather(1, I([[0], [5], [0]]))
    with pytest.raises(RuntimeError, match="Expected dtype int32/int64 for index"):
        x.scatter_(0, so.tensor([[0.0]]), 1.0)
    # int32 indices work as int64 ones do
    y = so.arange(12.0).reshape(3, 4)
    i32 = so.tensor([[3], [0], [1]], dtype=so.int32)
    np.testing.assert_array_equal(to_np(y.gather(1, i32)), [[3.0], [4.0], [9.0]])
    np.testing.assert_array_equal(to_np(so.zeros(3, 4).scatter(1, i32, 1.0)).argmax(1), [3, 0, 1])
    with pytest.raises(TypeError, match="argument 'index'"):
        so.gather(x, 0, [[0]])
    with pytest.raises(IndexError, match="Dimension out of range"):
        x.scatter(3, I([[0]]), 1.0)
    with pytest.raises(RuntimeError, match="only supports boolean masks"):
        x.masked_fill(so.ones(4, dtype=so.int64), 0.0)


@pytest.mark.parametrize("cuda", [pytest.param(0, marks=needs_cuda)])
def test_cuda_matches_cpu(rng, cuda):
    for dt in (so.float32, so.float64, so.float16, so.bfloat16, so.int32, so.int64, so.bool):
        x, _ = make((5, 6), dt, rng, ilo=-3, ihi=3)
        idx = I(rng.integers(0, 6, size=(5, 9)))
        np.testing.assert_array_equal(to_np(x.cuda().gather(1, idx.cuda())), to_np(x.gather(1, idx)))
        src, _ = make((5, 9), dt, rng, ilo=-3, ihi=3)
        if dt != so.bool:
            a = x.cuda().scatter_add(1, idx.cuda(), src.cuda())
            b = x.scatter_add(1, idx, src)
            tol = {so.float16: 5e-2, so.bfloat16: 2e-1}.get(dt, 1e-4)
            np.testing.assert_allclose(to_np(a).astype(np.float64), to_np(b).astype(np.float64),
                                       rtol=tol, atol=tol)
        sel = I(rng.integers(0, 5, size=4))
        np.testing.assert_array_equal(to_np(x.cuda().index_select(0, sel.cuda())),
                                      to_np(x.index_select(0, sel)))
    with pytest.raises(RuntimeError, match="out of bounds"):
        so.zeros(2, 2).cuda().gather(1, I([[0, 3], [0, 0]]).cuda())
