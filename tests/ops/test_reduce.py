"""sum / mean / max / min / norm against NumPy float64 (csrc/ops/reduce*.c, reduce.cu)."""
import math

import numpy as np
import pytest

import shardopt as so

from oputil import ALL_DTYPES, FLOAT_DTYPES, NP_OF, needs_cuda, to_np  # noqa: F401
from oputil import make as _make


def item(t):
    return to_np(t).item()


def make(shape, dtype, rng, lo=-3.0, hi=3.0):
    """Random tensor of dtype plus its exact float64 values."""
    return _make(shape, dtype, rng, lo, hi, -50, 50)


def tol(dtype):
    return {so.float16: 2e-3, so.bfloat16: 1e-2, so.float32: 1e-6}.get(dtype, 1e-12)


def check(got, ref, dtype, scale=1.0):
    g = to_np(got).astype(np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    assert g.shape == ref.shape
    np.testing.assert_allclose(g, ref, rtol=tol(dtype), atol=tol(dtype) * scale, equal_nan=True)


@pytest.fixture
def rng():
    return np.random.default_rng()


# ------------------------------------------------------------------ sum / mean

@pytest.mark.parametrize("dtype", ALL_DTYPES)
@pytest.mark.parametrize("dim", [None, 0, 1, -1, (0, 2), (-1, 0), (0, 1, 2), ()])
@pytest.mark.parametrize("keepdim", [False, True])
def test_sum_dims_dtypes(rng, dtype, dim, keepdim):
    t, ref = make((3, 4, 5), dtype, rng)
    out = t.sum(dim, keepdim=keepdim) if dim is not None else (t.sum() if not keepdim else t.sum(None, True))
    npdim = None if dim in (None, ()) else dim
    expect = ref.sum(axis=npdim, keepdims=keepdim)
    want_dtype = dtype if dtype.is_floating_point else so.int64
    assert out.dtype == want_dtype
    check(out, expect, dtype, scale=30)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("dim", [None, 1, (0, -1)])
def test_mean(rng, dtype, dim):
    t, ref = make((4, 6, 3), dtype, rng)
    out = so.mean(t, dim)
    assert out.dtype == dtype
    check(out, ref.mean(axis=dim), dtype, scale=3)


def test_mean_int_errors_and_dtype(rng):
    t, ref = make((3, 4), so.int64, rng)
    with pytest.raises(RuntimeError, match=r"mean\(\): could not infer output dtype. Input dtype "
                       r"must be either a floating point or complex dtype. Got: Long"):
        t.mean()
    with pytest.raises(RuntimeError, match="Optional dtype must be either a floating point"):
        t.mean(dtype=so.int32)
    out = t.mean(1, dtype=so.float64)
    assert out.dtype == so.float64
    check(out, ref.mean(1), so.float64)


def test_sum_dtype_argument(rng):
    t, ref = make((5, 7), so.int32, rng)
    out = t.sum(0, dtype=so.float32)
    assert out.dtype == so.float32
    check(out, ref.sum(0), so.float32)
    f, fref = make((5, 7), so.float32, rng)
    out = f.sum(dtype=so.float64)
    assert out.dtype == so.float64
    check(out, fref.sum(), so.float64)
    # float -> int sums the truncated elements, like torch's cast-then-sum
    out = f.sum(1, dtype=so.int64)
    assert out.dtype == so.int64
    np.testing.assert_array_equal(to_np(out), np.trunc(fref).astype(np.int64).sum(1))
    b, bref = make((40,), so.bool, rng)
    assert b.sum().dtype == so.int64 and item(b.sum()) == int(bref.sum())


@pytest.mark.parametrize("view", ["transpose", "step", "expand", "narrow", "permute"])
@pytest.mark.parametrize("dtype", [so.float32, so.float64, so.float16, so.int64])
def test_noncontiguous_inputs(rng, view, dtype):
    t, ref = make((6, 8, 5), dtype, rng)
    if view == "transpose":
        v, r = t.transpose(0, 2), ref.transpose(2, 1, 0)
    elif view == "step":
        v, r = t[::2, 1::3], ref[::2, 1::3]
    elif view == "expand":
        v, r = t[:, :1].expand(6, 4, 5), np.broadcast_to(ref[:, :1], (6, 4, 5))
    elif view == "narrow":
        v, r = t.narrow(1, 2, 5), ref[:, 2:7]
    else:
        v, r = t.permute(1, 2, 0), ref.transpose(1, 2, 0)
    assert not v.is_contiguous()
    for dim in (None, 0, 1, 2, (0, 2), (1, 2)):
        check(v.sum(dim), r.sum(axis=dim), dtype, scale=50)
        if dtype.is_floating_point:
            check(v.mean(dim), r.mean(axis=dim), dtype, scale=5)
            check(v.norm(dim=dim), np.sqrt((r * r).sum(axis=dim)), dtype, scale=50)
        if isinstance(dim, int):
            vals, idx = v.max(dim)
            check(vals, r.max(axis=dim), dtype)
            np.testing.assert_array_equal(to_np(idx), r.argmax(axis=dim))


def test_empty_reductions():
    e = so._C.empty((0, 3))
    assert to_np(e.sum()).item() == 0.0
    s0 = e.sum(0)
    assert tuple(s0.shape) == (3,) and np.all(to_np(s0) == 0)
    assert tuple(e.sum(1).shape) == (0,)
    assert math.isnan(item(e.mean()))
    assert np.all(np.isnan(to_np(e.mean(0))))
    assert item(e.norm()) == 0.0
    assert np.all(to_np(e.norm(1, dim=0)) == 0)
    assert so._C.empty((0,), dtype=so.int32).sum().dtype == so.int64
    with pytest.raises(RuntimeError, match=r"max\(\): Expected reduction dim to be specified for "
                       r"input.numel\(\) == 0. Specify the reduction dim with the 'dim' argument."):
        e.max()
    with pytest.raises(RuntimeError, match=r"min\(\): Expected reduction dim"):
        e.min()
    with pytest.raises(IndexError, match=r"max\(\): Expected reduction dim 0 to have non-zero size"):
        e.max(0)
    vals, idx = e.max(1)
    assert tuple(vals.shape) == (0,) and tuple(idx.shape) == (0,)
    with pytest.raises(RuntimeError, match="inf norm on an empty tensor"):
        e.norm(float("inf"))


def test_zero_dim_input(rng):
    t = so._C.from_numpy(np.array(2.5, dtype=np.float32))
    assert item(t.sum()) == 2.5 and item(t.sum(0)) == 2.5 and t.sum(-1, keepdim=True).ndim == 0
    v, i = t.max(0)
    assert item(v) == 2.5 and item(i) == 0
    assert item(t.norm()) == 2.5
    with pytest.raises(IndexError, match="Dimension out of range"):
        t.sum(1)


def test_large_float32_sum_accuracy(rng):
    # values with a large common offset: naive float32 accumulation would be off by ~1e-3
    # relative; the float64 pairwise path must give the float64 sum rounded once.
    arr = (rng.random(1_000_003) + 1000.0).astype(np.float32)
    t = so._C.from_numpy(arr)
    exact = arr.astype(np.float64).sum()
    got = item(t.sum())
    assert abs(got - exact) <= abs(exact) * 2 ** -23  # within one float32 rounding
    assert abs(item(t.mean()) - exact / arr.size) <= 1e-7 * abs(exact / arr.size)
    big = so._C.from_numpy(rng.standard_normal(2_000_000))
    assert abs(item(big.sum()) - np.sum(big.numpy())) < 1e-9


def test_dim_errors(rng):
    t, _ = make((2, 3), so.float32, rng)
    with pytest.raises(IndexError, match=r"Dimension out of range \(expected to be in range of "
                       r"\[-2, 1\], but got 2\)"):
        t.sum(2)
    with pytest.raises(IndexError, match="Dimension out of range"):
        t.max(-3)
    with pytest.raises(RuntimeError, match="dim 1 appears multiple times in the list of dims"):
        t.sum((1, -1))
    with pytest.raises(TypeError):
        t.sum("a")
    with pytest.raises(TypeError, match=r"sum\(\): argument 'input' \(position 1\) must be Tensor"):
        so.sum([1, 2])
    with pytest.raises(TypeError, match="dtype"):
        t.sum(dtype="nope")


# ------------------------------------------------------------------ max / min

@pytest.mark.parametrize("dtype", ALL_DTYPES)
@pytest.mark.parametrize("keepdim", [False, True])
def test_max_min_dim(rng, dtype, keepdim):
    t, ref = make((4, 5, 6), dtype, rng)
    for dim in (0, 1, 2, -1):
        for fn, npv, npi in ((so.max, np.max, np.argmax), (so.min, np.min, np.argmin)):
            r = fn(t, dim, keepdim=keepdim)
            assert r.values.dtype == dtype and r.indices.dtype == so.int64
            vals, idx = r
            check(vals, npv(ref, axis=dim, keepdims=keepdim), dtype)
            np.testing.assert_array_equal(to_np(idx), npi(ref, axis=dim, keepdims=keepdim)
                                          if keepdim else npi(ref, axis=dim))
    full = t.max()
    assert full.ndim == 0 and full.dtype == dtype
    assert to_np(full).item() == ref.max() and to_np(t.min()).item() == ref.min()


def test_max_first_occurrence_and_nan():
    a = so._C.from_numpy(np.array([[1, 5, 5, 2], [7, 7, 0, 7]], dtype=np.int64))
    assert to_np(a.max(1).indices).tolist() == [1, 0]
    assert to_np(a.min(1).indices).tolist() == [0, 2]
    f = so._C.from_numpy(np.array([[1.0, np.nan, 3.0, np.nan], [2.0, 2.0, -1.0, -1.0]]))
    v, i = f.max(1)
    assert math.isnan(to_np(v)[0]) and to_np(i).tolist() == [1, 0]
    v, i = f.min(1)
    assert math.isnan(to_np(v)[0]) and to_np(i).tolist() == [1, 2]
    assert math.isnan(item(f.max())) and math.isnan(item(f.min()))
    assert item(f[1].max()) == 2.0


def test_max_with_other_delegates_or_errors(rng):
    t, _ = make((3,), so.float32, rng)
    try:
        from shardopt._ops import elementwise
        has = hasattr(elementwise, "maximum")
    except ImportError:
        has = False
    if has:
        np.testing.assert_array_equal(to_np(so.max(t, t)), to_np(t))
    else:
        with pytest.raises(TypeError):
            so.max(t, t)
    with pytest.raises(TypeError, match=r"max\(\): argument 'dim' must be int"):
        t.max((0,))


# ------------------------------------------------------------------ norm

@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("p", [2, "fro", 1, float("inf"), -float("inf"), 3, 0.5, 0, -2])
@pytest.mark.parametrize("dim", [None, 0, (0, 2), -1])
def test_norm(rng, dtype, p, dim):
    t, ref = make((3, 4, 5), dtype, rng)
    ref[0, 0, 0] = 0.0
    t[0, 0, 0] = 0.0
    out = t.norm(p, dim=dim) if p != "fro" else so.norm(t, dim=dim)
    pv = 2.0 if p == "fro" else float(p)
    a = np.abs(ref)
    if pv == float("inf"):
        exp = a.max(axis=dim)
    elif pv == -float("inf"):
        exp = a.min(axis=dim)
    elif pv == 0:
        exp = (a != 0).sum(axis=dim).astype(np.float64)
    else:
        with np.errstate(divide="ignore"):
            exp = (a ** pv).sum(axis=dim) ** (1.0 / pv)
    assert out.dtype == dtype
    check(out, exp, dtype, scale=10)


def test_norm_keepdim_dtype_and_errors(rng):
    t, ref = make((3, 4), so.float32, rng)
    out = t.norm(dim=1, keepdim=True)
    assert tuple(out.shape) == (3, 1)
    check(out, np.linalg.norm(ref, axis=1, keepdims=True), so.float32)
    out = so.norm(t, dtype=so.float64)
    assert out.dtype == so.float64
    check(out, np.linalg.norm(ref), so.float64, scale=1)
    i, _ = make((3,), so.int64, rng)
    with pytest.raises(RuntimeError, match=r"norm\(\): input dtype should be either floating point "
                       r"or complex. Got Long instead."):
        i.norm()
    with pytest.raises(RuntimeError, match="not supported"):
        t.norm("nuc")


# ------------------------------------------------------------------ CUDA == CPU

@pytest.mark.parametrize("dtype", ALL_DTYPES)
@pytest.mark.parametrize("shape,dim", [((5, 7, 3), None), ((5, 7, 3), 1), ((5, 7, 3), (0, 2)),
                                       ((2, 300_001), -1), ((70_000, 3), 0), ((0, 4), 0),
                                       ((1_000_003,), None)])
@pytest.mark.parametrize("cuda", [pytest.param(0, marks=needs_cuda)])
def test_cuda_matches_cpu(rng, dtype, shape, dim, cuda):
    t, _ = make(shape, dtype, rng)
    g = t.cuda()
    np.testing.assert_allclose(to_np(g.sum(dim)), to_np(t.sum(dim)), rtol=tol(dtype), atol=1e-9)
    if dtype.is_floating_point:
        np.testing.assert_allclose(to_np(g.mean(dim)), to_np(t.mean(dim)), rtol=tol(dtype),
                                   atol=1e-9, equal_nan=True)
        for p in (2, 1, 3.5, 0):
            np.testing.assert_allclose(to_np(g.norm(p, dim)), to_np(t.norm(p, dim)),
                                       rtol=tol(dtype), atol=1e-9)
    if t.numel() and isinstance(dim, int):
        for name in ("max", "min"):
            gv, gi = getattr(g, name)(dim)
            cv, ci = getattr(t, name)(dim)
            np.testing.assert_array_equal(to_np(gv), to_np(cv))
            np.testing.assert_array_equal(to_np(gi), to_np(ci))
    if t.numel():
        assert to_np(g.max()).item() == to_np(t.max()).item()
        assert to_np(g.min()).item() == to_np(t.min()).item()


@pytest.mark.parametrize("cuda", [pytest.param(0, marks=needs_cuda)])
def test_cuda_noncontiguous_and_ties(rng, cuda):
    t, _ = make((64, 33, 9), so.float32, rng)
    g = t.cuda()
    v, gv = t.transpose(0, 2)[:, ::2], g.transpose(0, 2)[:, ::2]
    for dim in (None, 0, (1, 2)):
        np.testing.assert_allclose(to_np(gv.sum(dim)), to_np(v.sum(dim)), rtol=1e-6, atol=1e-9)
    ties = so._C.from_numpy(np.array([[3, 1, 3, 3] * 1000], dtype=np.int64))
    assert item(ties.cuda().max(1).indices) == 0
    assert item(ties.cuda().min(1).indices) == 1
    nan = so._C.from_numpy(np.array([1.0] * 5000 + [np.nan, 2.0, np.nan]))
    assert item(nan.cuda().max(0).indices) == 5000
