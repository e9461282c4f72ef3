"""cumsum against NumPy float64 (csrc/ops/scan*.c, scan.cu): float inputs accumulate in
double, integer and bool ones in int64 (the default output dtype for them)."""
import numpy as np
import pytest

import shardopt as so

from oputil import ALL_DTYPES, needs_cuda, to_np
from oputil import make, poison_heap


@pytest.fixture
def rng():
    return np.random.default_rng()


def tol(dtype):
    return {so.float16: 2e-3, so.bfloat16: 1e-2, so.float32: 1e-6}.get(dtype, 1e-12)


@pytest.mark.parametrize("dtype", ALL_DTYPES)
@pytest.mark.parametrize("dim", [0, 1, 2, -1])
def test_cumsum(rng, dtype, dim):
    x, ref = make((5, 6, 7), dtype, rng)
    poison_heap(ref.size * 8)
    got = so.cumsum(x, dim)
    want_dtype = dtype if dtype.is_floating_point else so.int64
    assert got.dtype == want_dtype
    want = np.cumsum(ref, axis=dim)
    np.testing.assert_allclose(to_np(got).astype(np.float64), want, rtol=tol(dtype),
                               atol=tol(dtype) * 8)


def test_cumsum_dtype_arg_and_views(rng):
    x, ref = make((6, 9), so.float32, rng)
    got = x.t().cumsum(dim=1, dtype=so.float64)
    assert got.dtype == so.float64
    np.testing.assert_allclose(to_np(got), np.cumsum(ref.T, axis=1), rtol=1e-12, atol=1e-12)
    i = so.tensor([1, 2, 3], dtype=so.int32)
    assert i.cumsum(0).dtype == so.int64
    assert i.cumsum(0, dtype=so.int32).dtype == so.int32
    assert to_np(so.tensor([True, True, False]).cumsum(0)).tolist() == [1, 2, 2]
    assert so.cumsum(so.tensor(4.0), 0).item() == 4.0
    assert tuple(so.cumsum(so.zeros(0, 3), 0).shape) == (0, 3)
    y = x.clone()
    assert y.cumsum_(1) is y
    np.testing.assert_allclose(to_np(y), np.cumsum(ref, 1), rtol=1e-6, atol=1e-6)


def test_cumsum_long_row_accuracy():
    # float32 rounding of each partial sum only: the running sum is exact in double
    x = so.full((100_000,), 0.1, dtype=so.float32)
    got = to_np(x.cumsum(0))
    want = (np.arange(1, 100_001) * np.float64(np.float32(0.1))).astype(np.float32)
    np.testing.assert_array_equal(got, want)


def test_errors():
    with pytest.raises(IndexError, match="Dimension out of range"):
        so.zeros(3, 4).cumsum(2)
    with pytest.raises(TypeError, match="argument 'dim'"):
        so.cumsum(so.zeros(3), None)
    with pytest.raises(TypeError, match="argument 'input'"):
        so.cumsum([1, 2], 0)


def test_vs_torch(rng):
    torch = pytest.importorskip("torch")
    a = rng.standard_normal((7, 50))
    for dim in (0, 1):
        np.testing.assert_allclose(to_np(so.tensor(a).cumsum(dim)),
                                   torch.from_numpy(a).cumsum(dim).numpy(), rtol=1e-12,
                                   atol=1e-12)


@pytest.mark.parametrize("cuda", [pytest.param(0, marks=needs_cuda)])
def test_cuda_matches_cpu(rng, cuda):
    for dt in (so.float32, so.float64, so.float16, so.int32, so.int64, so.bool):
        x, _ = make((9, 31), dt, rng)
        for dim in (0, 1):
            np.testing.assert_array_equal(to_np(x.cuda().cumsum(dim)), to_np(x.cumsum(dim)))
