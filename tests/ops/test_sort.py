"""sort / argsort / topk / argmax / argmin against NumPy (csrc/ops/sort*.c, sort.cu and the
max/min reduction), with torch's tie, NaN and error behaviour."""
import numpy as np
import pytest

import shardopt as so

from oputil import ALL_DTYPES, needs_cuda, to_np
from oputil import make, poison_heap


@pytest.fixture
def rng():
    return np.random.default_rng()


def np_sort(ref, dim, descending):
    """Stable sort with NaN largest (NumPy's argsort puts NaN last too)."""
    if descending:
        # stable descending: sort the negation (NaN still last in argsort) then move NaN first
        keys = -ref
        idx = np.argsort(keys, axis=dim, kind="stable")
        nan = np.isnan(np.take_along_axis(ref, idx, axis=dim))
        # NaN must come first in descending order, in index order
        idx = np.moveaxis(idx, dim, -1)
        nan = np.moveaxis(nan, dim, -1)
        out = np.empty_like(idx)
        for pos in np.ndindex(*idx.shape[:-1]):
            row, m = idx[pos], nan[pos]
            out[pos] = np.concatenate([row[m], row[~m]])
        idx = np.moveaxis(out, -1, dim)
    else:
        idx = np.argsort(ref, axis=dim, kind="stable")
    return np.take_along_axis(ref, idx, axis=dim), idx


@pytest.mark.parametrize("dtype", [d for d in ALL_DTYPES if d != so.bool])
@pytest.mark.parametrize("dim", [0, 1, -1])
@pytest.mark.parametrize("descending", [False, True])
def test_sort(rng, dtype, dim, descending):
    x, ref = make((6, 7, 5), dtype, rng, ilo=-3, ihi=3)  # small int range: many ties
    poison_heap(ref.size * 8)
    vals, idx = so.sort(x, dim=dim, descending=descending)
    wv, wi = np_sort(ref, dim, descending)
    assert vals.dtype == dtype and idx.dtype == so.int64
    np.testing.assert_array_equal(to_np(vals).astype(np.float64), wv)
    np.testing.assert_array_equal(to_np(idx), wi)
    np.testing.assert_array_equal(to_np(x.argsort(dim, descending)), wi)


def test_sort_nan_and_stability():
    x = so.tensor([3.0, float("nan"), 1.0, 3.0, float("nan"), -2.0])
    v, i = x.sort()
    assert to_np(i).tolist() == [5, 2, 0, 3, 1, 4]
    v, i = x.sort(descending=True, stable=True)
    assert to_np(i).tolist() == [1, 4, 0, 3, 2, 5]
    r = so.sort(x)
    assert isinstance(r, so.return_types.sort) and r.values is r[0] and r.indices is r[1]


def test_sort_noncontiguous_and_0d(rng):
    x, ref = make((5, 8), so.float64, rng)
    v, i = x.t().sort(dim=1)
    wv, wi = np_sort(ref.T, 1, False)
    np.testing.assert_array_equal(to_np(v), wv)
    np.testing.assert_array_equal(to_np(i), wi)
    v, i = so.sort(so.tensor(2.5))
    assert v.item() == 2.5 and i.item() == 0 and tuple(i.shape) == ()


@pytest.mark.parametrize("dtype", [so.float32, so.float64, so.int32, so.int64, so.float16,
                                   so.bfloat16])
@pytest.mark.parametrize("k", [0, 1, 3, 9])
@pytest.mark.parametrize("largest", [True, False])
@pytest.mark.parametrize("dim", [0, -1])
def test_topk(rng, dtype, k, largest, dim):
    x, ref = make((9, 9), dtype, rng, ilo=-4, ihi=4)
    poison_heap(k * 9 * 8)
    v, i = x.topk(k, dim=dim, largest=largest)
    wv, wi = np_sort(ref, dim, largest)
    sl = [slice(None)] * 2
    sl[dim] = slice(0, k)
    np.testing.assert_array_equal(to_np(v).astype(np.float64), wv[tuple(sl)])
    np.testing.assert_array_equal(to_np(i), wi[tuple(sl)])
    assert isinstance(so.topk(x, k, dim), so.return_types.topk)


def test_topk_large_rows_selection(rng):
    x, ref = make((64, 5000), so.float32, rng)
    v, i = x.topk(7)
    wv, wi = np_sort(ref, 1, True)
    np.testing.assert_array_equal(to_np(i), wi[:, :7])
    np.testing.assert_array_equal(to_np(v).astype(np.float64), wv[:, :7])


@pytest.mark.parametrize("dtype", [d for d in ALL_DTYPES if d != so.bool])
def test_argmax_argmin(rng, dtype):
    x, ref = make((4, 6, 5), dtype, rng, ilo=-3, ihi=3)
    assert so.argmax(x).item() == int(np.argmax(ref))
    assert so.argmin(x).item() == int(np.argmin(ref))
    for dim in (0, 1, -1):
        np.testing.assert_array_equal(to_np(x.argmax(dim)), np.argmax(ref, axis=dim))
        np.testing.assert_array_equal(to_np(x.argmin(dim=dim, keepdim=True)),
                                      np.expand_dims(np.argmin(ref, axis=dim), dim))
    assert tuple(so.argmax(x, keepdim=True).shape) == (1, 1, 1)


def test_max_min_dim_namedtuple(rng):
    x, ref = make((4, 6), so.float64, rng)
    r = x.max(dim=1, keepdim=True)
    assert isinstance(r, so.return_types.max)
    np.testing.assert_array_equal(to_np(r.values), ref.max(1, keepdims=True))
    np.testing.assert_array_equal(to_np(r.indices), ref.argmax(1)[:, None])
    r = so.min(x, 0)
    np.testing.assert_array_equal(to_np(r.values), ref.min(0))
    np.testing.assert_array_equal(to_np(r.indices), ref.argmin(0))


ERRORS = [
    lambda m: m.zeros(3, 4).topk(5),
    lambda m: m.zeros(3, 4).topk(-1),
    lambda m: m.zeros(3, 4).topk(5, dim=0),
    lambda m: m.zeros(3, 4).sort(dim=2),
    lambda m: m.zeros(3, 4).argmax(dim=5),
    lambda m: m.zeros(0).argmax(),
    lambda m: m.zeros(0).argmin(),
]


@pytest.mark.parametrize("case", range(len(ERRORS)))
def test_errors_match_torch(case):
    torch = pytest.importorskip("torch")
    with pytest.raises(Exception) as te:
        ERRORS[case](torch)
    with pytest.raises(type(te.value)) as se:
        ERRORS[case](so)
    assert str(se.value).split("\n")[0] == str(te.value).split("\n")[0]


def test_errors():
    with pytest.raises(RuntimeError, match="selected index k out of range"):
        so.zeros(3).topk(4)
    with pytest.raises(TypeError, match="argument 'k'"):
        so.zeros(3).topk(1.5)
    with pytest.raises(TypeError, match="argument 'input'"):
        so.sort([3, 1])


def test_vs_torch(rng):
    torch = pytest.importorskip("torch")
    a = rng.standard_normal((8, 33)).astype(np.float32)
    a[0, 3] = np.nan
    a[1, :5] = 1.0
    for dim in (0, 1):
        for desc in (False, True):
            tv, ti = torch.sort(torch.from_numpy(a), dim=dim, descending=desc, stable=True)
            sv, si = so.sort(so.tensor(a), dim=dim, descending=desc)
            np.testing.assert_array_equal(to_np(sv), tv.numpy())
            np.testing.assert_array_equal(to_np(si), ti.numpy())
    tv, ti = torch.topk(torch.from_numpy(a), 5)
    sv, si = so.topk(so.tensor(a), 5)
    np.testing.assert_array_equal(to_np(sv), tv.numpy())
    np.testing.assert_array_equal(np.sort(to_np(si)[2:], 1), np.sort(ti.numpy()[2:], 1))


@pytest.mark.parametrize("cuda", [pytest.param(0, marks=needs_cuda)])
def test_cuda_matches_cpu(rng, cuda):
    for dt in (so.float32, so.float64, so.float16, so.bfloat16, so.int32, so.int64):
        x, _ = make((33, 40), dt, rng, ilo=-3, ihi=3)
        for dim in (0, 1):
            a, b = x.cuda().sort(dim, True), x.sort(dim, True)
            np.testing.assert_array_equal(to_np(a.indices), to_np(b.indices))
            np.testing.assert_array_equal(to_np(a.values), to_np(b.values))
            a, b = x.cuda().topk(5, dim), x.topk(5, dim)
            np.testing.assert_array_equal(to_np(a.indices), to_np(b.indices))


@pytest.mark.parametrize("dtype", [so.float32, so.float64, so.float16, so.bfloat16, so.int32,
                                   so.int64])
@pytest.mark.parametrize("descending", [False, True])
def test_long_rows_radix_path_matches_selection(rng, dtype, descending):
    """Rows >= 64 are fully sorted by the CPU radix path, short selections by the heap
    routine the GPU runs: both must give the same order (ties by index, NaN largest,
    -0.0 == 0.0)."""
    x, ref = make((5, 300), dtype, rng, -2.0, 2.0, -3, 3)
    if dtype.is_floating_point:
        special = np.array([np.nan, -0.0, 0.0, np.inf, -np.inf, np.nan, 0.0, -0.0])
        ref[:, :8] = special
        ref[3] = np.round(ref[3])  # many exact ties
        x = so.tensor(ref).to(dtype)
        ref = to_np(x).astype(np.float64)
    v, i = x.sort(1, descending=descending)
    wv, wi = np_sort(ref, 1, descending)
    np.testing.assert_array_equal(to_np(i), wi)
    np.testing.assert_array_equal(to_np(v).astype(np.float64), wv)
    tv, ti = x.topk(30, 1, largest=descending)  # k * 8 < n: the heap routine
    np.testing.assert_array_equal(to_np(ti), wi[:, :30])
    tv, ti = x.topk(200, 1, largest=descending)  # large k: the radix path again
    np.testing.assert_array_equal(to_np(ti), wi[:, :200])
