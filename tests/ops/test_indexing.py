"""Integer-tensor and boolean indexing in __getitem__ / __setitem__ / index_put_ and
nonzero / where(cond) against NumPy (csrc/ops/index*.c, index.cu; torch's semantics where
they differ from NumPy's: ints are applied as selects before the tensor indices)."""
import numpy as np
import pytest

import shardopt as so

from oputil import ALL_DTYPES, needs_cuda, to_np
from oputil import make, poison_heap


@pytest.fixture
def rng():
    return np.random.default_rng()


def I(a, dtype=so.int64):  # noqa: E743
    return so.tensor(np.asarray(a), dtype=dtype)


@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_arange_target_rows(rng, dtype):
    """logits[arange(n), target]: one element per row."""
    x, ref = make((7, 11), dtype, rng)
    target = rng.integers(0, 11, size=7)
    poison_heap(7 * 8)
    got = x[so.arange(7), I(target)]
    assert got.dtype == dtype and tuple(got.shape) == (7,)
    np.testing.assert_array_equal(to_np(got).astype(np.float64), ref[np.arange(7), target])


CASES = [
    # (shape, index builder using numpy-side ints/arrays, description)
    ((5, 6), lambda r: (np.array([4, 0, -1, 2]),)),
    ((5, 6), lambda r: (slice(None), np.array([[0, 5], [-6, 1]]))),
    ((4, 5, 6), lambda r: (np.array([0, 3]), slice(1, 4), np.array([5, 0]))),  # non-adjacent
    ((4, 5, 6), lambda r: (slice(None), np.array([0, 4, 4]), np.array([1, 1, 5]))),
    ((4, 5, 6), lambda r: (Ellipsis, np.array([[2], [3]]))),
    ((4, 5, 6), lambda r: (None, np.array([1, 2]), slice(None, None, 2))),
    ((4, 5, 6), lambda r: (np.array([[0], [3]]), np.array([1, 2, 4]))),  # broadcast (2,1)x(3,)
    ((3, 4), lambda r: (np.array(2),)),  # 0-d index tensor
    ((3, 4), lambda r: (np.array([], dtype=np.int64),)),
]


@pytest.mark.parametrize("case", range(len(CASES)))
@pytest.mark.parametrize("idx_dtype", [so.int64, so.int32])
def test_getitem_matches_numpy(rng, case, idx_dtype):
    shape, build = CASES[case]
    x, ref = make(shape, so.float64, rng)
    np_index = build(rng)
    so_index = tuple(I(i, idx_dtype) if isinstance(i, np.ndarray) else i for i in np_index)
    want = ref[np_index if len(np_index) > 1 else np_index[0]]
    poison_heap(want.size * 8)
    got = x[so_index if len(so_index) > 1 else so_index[0]]
    want = ref[np_index if len(np_index) > 1 else np_index[0]]
    assert tuple(got.shape) == want.shape
    np.testing.assert_array_equal(to_np(got), want)


def test_int_then_tensor_follows_torch(rng):
    # torch applies the int as a select first: x[0, :, idx] keeps the slice dim in front
    x, ref = make((3, 4, 5), so.float64, rng)
    got = x[0, :, I([1, 3])]
    np.testing.assert_array_equal(to_np(got), ref[0][:, [1, 3]])
    got = x[:, I([0, 1]), 0]
    np.testing.assert_array_equal(to_np(got), ref[:, [0, 1], 0])


def test_lists_are_index_tensors(rng):
    x, ref = make((5, 4), so.float32, rng)
    np.testing.assert_array_equal(to_np(x[[0, 4, 4]]), ref[[0, 4, 4]])
    np.testing.assert_array_equal(to_np(x[:, [3, 0]]), ref[:, [3, 0]])
    assert tuple(x[[]].shape) == (0, 4)
    np.testing.assert_array_equal(to_np(x[[True, False, True, False, True]]),
                                  ref[[True, False, True, False, True]])


@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_bool_mask(rng, dtype):
    x, ref = make((4, 5, 3), dtype, rng)
    m = rng.random((4, 5)) < 0.4
    got = x[so.tensor(m)]
    np.testing.assert_array_equal(to_np(got).astype(np.float64), ref[m])
    full = rng.random((4, 5, 3)) < 0.5
    np.testing.assert_array_equal(to_np(x[so.tensor(full)]).astype(np.float64), ref[full])
    row = rng.random(5) < 0.5
    np.testing.assert_array_equal(to_np(x[:, so.tensor(row)]).astype(np.float64), ref[:, row])
    # a mask and an integer index together
    got = x[so.tensor(m), I([2])]
    np.testing.assert_array_equal(to_np(got).astype(np.float64), ref[m][:, 2])


def test_zero_dim_bool(rng):
    x, ref = make((3, 2), so.float64, rng)
    assert tuple(x[so.tensor(True)].shape) == (1, 3, 2)
    assert tuple(x[so.tensor(False)].shape) == (0, 3, 2)
    np.testing.assert_array_equal(to_np(x[so.tensor(True)])[0], ref)


def test_noncontiguous_source_and_index(rng):
    x, ref = make((6, 8), so.float64, rng)
    xt = x.t()[1::2]  # (4, 6) strided view
    idx_full = rng.integers(0, 6, size=(3, 4))
    idx = I(idx_full).t()  # non-contiguous index (4, 3)
    got = xt[:, idx]
    want = ref.T[1::2][:, idx_full.T]
    np.testing.assert_array_equal(to_np(got), want)


# ------------------------------------------------------------------ setitem / index_put_


@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_setitem_tensor_index_broadcast_value(rng, dtype):
    x, ref = make((5, 4), dtype, rng)
    v, vref = make((4,), dtype, rng)
    x[I([3, 1])] = v
    ref[[3, 1]] = vref
    np.testing.assert_array_equal(to_np(x).astype(np.float64), ref)
    x[so.arange(5), I([0, 1, 2, 3, 0])] = 1
    ref[np.arange(5), [0, 1, 2, 3, 0]] = 1
    np.testing.assert_array_equal(to_np(x).astype(np.float64), ref)


def test_setitem_mask(rng):
    x, ref = make((4, 6), so.float64, rng)
    m = ref > 0.2
    x[so.tensor(m)] = -7.5
    ref[m] = -7.5
    np.testing.assert_array_equal(to_np(x), ref)
    y, yref = make((4, 6), so.float32, rng)
    rows = np.array([True, False, True, True])
    vals, vref = make((3, 6), so.float32, rng)
    y[so.tensor(rows)] = vals
    yref[rows] = vref
    np.testing.assert_array_equal(to_np(y), yref)
    # value of another dtype is converted to the target's
    y[so.tensor(rows)] = so.ones(6, dtype=so.float64)
    yref[rows] = 1
    np.testing.assert_array_equal(to_np(y), yref)


def test_setitem_value_aliasing_self(rng):
    x, ref = make((5,), so.float64, rng)
    x[I([1, 2, 3, 4])] = x[:4]  # shifts right: the value must be read before the writes
    ref[[1, 2, 3, 4]] = ref[:4].copy()
    np.testing.assert_array_equal(to_np(x), ref)


@pytest.mark.parametrize("dtype", [so.float32, so.float64, so.int32, so.int64, so.float16,
                                   so.bfloat16])
def test_index_put_accumulate_duplicates(rng, dtype):
    x, ref = make((6, 3), dtype, rng, ilo=-5, ihi=5)
    idx = rng.integers(0, 6, size=40)  # many duplicates
    v, vref = make((40, 3), dtype, rng, ilo=-5, ihi=5)
    out = x.index_put_((I(idx),), v, accumulate=True)
    assert out is x
    np.add.at(ref, idx, vref)
    tol = {so.float16: 2e-2, so.bfloat16: 1e-1}.get(dtype, 1e-5)
    np.testing.assert_allclose(to_np(x).astype(np.float64), ref, rtol=tol, atol=tol)
    # out-of-place form leaves the input alone
    y, yref = make((6,), so.float64, rng)
    z = so.index_put(y, (I([0, 0, 5]),), so.tensor([1.0, 2.0, 3.0], dtype=so.float64),
                     accumulate=True)
    np.testing.assert_array_equal(to_np(y), yref)
    yref[0] += 3
    yref[5] += 3
    np.testing.assert_array_equal(to_np(z), yref)


# ------------------------------------------------------------------ nonzero / where


@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_nonzero_and_where_cond(rng, dtype):
    x, ref = make((3, 4, 5), dtype, rng, ilo=-1, ihi=2)
    got = so.nonzero(x)
    want = np.argwhere(ref != 0)
    assert got.dtype == so.int64
    np.testing.assert_array_equal(to_np(got), want)
    tup = so.where(x != 0)
    assert isinstance(tup, tuple) and len(tup) == 3
    for g, w in zip(tup, np.nonzero(ref != 0)):
        np.testing.assert_array_equal(to_np(g), w)
    for g, w in zip(x.nonzero(as_tuple=True), np.nonzero(ref)):
        np.testing.assert_array_equal(to_np(g), w)


def test_nonzero_nan_counts_and_0d():
    assert to_np(so.nonzero(so.tensor([0.0, float("nan"), -0.0]))).tolist() == [[1]]
    assert tuple(so.nonzero(so.tensor(3.0)).shape) == (1, 0)
    assert tuple(so.nonzero(so.tensor(0.0)).shape) == (0, 0)
    assert [to_np(t).tolist() for t in so.where(so.tensor(2.0))] == [[0]]
    assert [to_np(t).tolist() for t in so.where(so.tensor(0))] == [[]]


# ------------------------------------------------------------------ errors


def test_index_errors():
    x = so.zeros(3, 4)
    with pytest.raises(IndexError, match="index 5 is out of bounds for dimension 0 with size 3"):
        x[I([0, 5])]
    with pytest.raises(IndexError, match="index -4 is out of bounds for dimension 0 with size 3"):
        x[I([-4])]
    with pytest.raises(IndexError, match="index 4 is out of bounds for dimension 1 with size 4"):
        x[:, I([0, 4])]
    with pytest.raises(IndexError, match=r"The shape of the mask \[2\] at index 0 does not match "
                                         r"the shape of the indexed tensor \[3, 4\] at index 0"):
        x[so.tensor([True, False])]
    with pytest.raises(IndexError, match=r"mask \[3, 5\] at index 1 .* at index 1"):
        x[so.ones(3, 5, dtype=so.bool)]
    with pytest.raises(IndexError, match="tensors used as indices must be long, int, byte or "
                                         "bool tensors"):
        x[so.tensor([0.0, 1.0])]
    with pytest.raises(IndexError, match=r"shape mismatch: indexing tensors could not be "
                                         r"broadcast together with shapes \[2\], \[3\]"):
        x[I([0, 1]), I([0, 1, 2])]
    with pytest.raises(IndexError, match="too many indices"):
        x[I([0]), I([0]), I([0])]
    with pytest.raises(RuntimeError, match=r"shape mismatch: value tensor of shape \[3, 4\] "
                                           r"cannot be broadcast to indexing result of shape "
                                           r"\[2, 4\]"):
        x[so.tensor([True, False, True])] = so.ones(3, 4)
    with pytest.raises(IndexError, match="out of bounds"):
        x[I([3])] = 1.0
    with pytest.raises(IndexError, match="out of bounds"):
        x.index_put_((I([7]),), so.ones(4), accumulate=True)
    with pytest.raises(TypeError, match="indices"):
        x.index_put_(I([0]), so.ones(4))
    # a failed put leaves earlier elements possibly written, but never writes out of bounds
    assert to_np(x).shape == (3, 4)


def test_index_errors_match_torch():
    torch = pytest.importorskip("torch")
    cases = [lambda m, x: x[m.tensor([0, 5])],
             lambda m, x: x[m.tensor([True, False])],
             lambda m, x: x[m.tensor([0.5])],
             lambda m, x: x[m.tensor([0, 1]), m.tensor([0, 1, 2])]]
    for f in cases:
        with pytest.raises(Exception) as te:
            f(torch, torch.zeros(3, 4))
        with pytest.raises(type(te.value)) as se:
            f(so, so.zeros(3, 4))
        assert str(se.value).split("\n")[0] == str(te.value).split("\n")[0]


def test_row_pick_on_expanded_view(rng):
    """x[arange(N), target] on a broadcast (stride-0) view: one element per row read
    through the view's strides (the time it takes is in benchmarks/bench_indexing.py)."""
    n, v = 100_000, 1000
    x = so.arange(float(v), dtype=so.float64).reshape(1, v).expand(n, v)
    t = rng.integers(-v, v, size=n)
    out = x[so.arange(n), I(t)]
    assert tuple(out.shape) == (n,)
    np.testing.assert_array_equal(to_np(out), np.where(t < 0, t + v, t).astype(np.float64))


# ------------------------------------------------------------------ CUDA


@pytest.mark.parametrize("cuda", [pytest.param(0, marks=needs_cuda)])
def test_cuda_matches_cpu(rng, cuda):
    x, ref = make((6, 7, 5), so.float32, rng)
    g = x.cuda()
    i0 = I(rng.integers(-6, 6, size=(4, 3)))
    i1 = I(rng.integers(0, 5, size=(3,)))
    np.testing.assert_array_equal(to_np(g[i0, :, i1]), to_np(x[i0, :, i1]))
    m = so.tensor(rng.random((6, 7)) < 0.5)
    np.testing.assert_array_equal(to_np(g[m.cuda()]), to_np(x[m]))
    for dt in (so.float32, so.float64, so.float16, so.bfloat16, so.int32, so.int64):
        h, href = make((5, 3), dt, rng, ilo=-3, ihi=3)
        idx = I(rng.integers(0, 5, size=50))
        v, _ = make((50, 3), dt, rng, ilo=-3, ihi=3)
        hc = h.cuda()
        hc.index_put_((idx.cuda(),), v.cuda(), accumulate=True)
        h.index_put_((idx,), v, accumulate=True)
        tol = {so.float16: 5e-2, so.bfloat16: 2e-1}.get(dt, 1e-4)
        np.testing.assert_allclose(to_np(hc).astype(np.float64), to_np(h).astype(np.float64),
                                   rtol=tol, atol=tol)
    with pytest.raises(IndexError, match="index 9 is out of bounds"):
        g[I([0, 9]).cuda()]
    gm = g.clone()
    gm[m.cuda()] = 0.0
    xm = x.clone()
    xm[m] = 0.0
    np.testing.assert_array_equal(to_np(gm), to_np(xm))
