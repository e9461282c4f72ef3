"""where / clamp with tensor bounds / tril / triu / chunk / split against NumPy, with
torch's argument errors (composed from the C elementwise where and narrow() views)."""
import numpy as np
import pytest

import shardopt as so

from oputil import ALL_DTYPES, needs_cuda, to_np
from oputil import make


@pytest.fixture
def rng():
    return np.random.default_rng()


@pytest.mark.parametrize("dtype", ALL_DTYPES)
@pytest.mark.parametrize("diagonal", [-2, -1, 0, 1, 3])
def test_tril_triu(rng, dtype, diagonal):
    x, ref = make((2, 4, 5), dtype, rng)
    np.testing.assert_array_equal(to_np(x.tril(diagonal)).astype(np.float64),
                                  np.tril(ref, diagonal))
    np.testing.assert_array_equal(to_np(so.triu(x, diagonal)).astype(np.float64),
                                  np.triu(ref, diagonal))
    y = x.clone()
    assert y.tril_(diagonal) is y
    np.testing.assert_array_equal(to_np(y).astype(np.float64), np.tril(ref, diagonal))
    y = x.clone()
    y.triu_(diagonal)
    np.testing.assert_array_equal(to_np(y).astype(np.float64), np.triu(ref, diagonal))


def test_tril_errors():
    with pytest.raises(RuntimeError, match="tril: input tensor must have at least 2 dimensions"):
        so.zeros(3).tril()
    with pytest.raises(TypeError, match="argument 'diagonal'"):
        so.zeros(3, 3).triu(1.5)


@pytest.mark.parametrize("size,chunks", [(6, 4), (5, 3), (7, 7), (3, 5), (0, 3), (8, 2)])
def test_chunk(rng, size, chunks):
    x, ref = make((3, size), so.float64, rng)
    got = x.chunk(chunks, 1)
    torch_like = []
    if size == 0:
        torch_like = [ref[:, :0]] * chunks
    else:
        step = -(-size // chunks)
        torch_like = [ref[:, i:i + step] for i in range(0, size, step)]
    assert len(got) == len(torch_like)
    for g, w in zip(got, torch_like):
        np.testing.assert_array_equal(to_np(g), w)


def test_split(rng):
    x, ref = make((7, 3), so.float32, rng)
    parts = so.split(x, 3)
    assert [tuple(p.shape) for p in parts] == [(3, 3), (3, 3), (1, 3)]
    np.testing.assert_array_equal(np.concatenate([to_np(p) for p in parts]), ref.astype(np.float32))
    parts = x.split([2, 0, 5])
    assert [p.shape[0] for p in parts] == [2, 0, 5]
    np.testing.assert_array_equal(to_np(parts[2]), ref[2:].astype(np.float32))
    parts = x.split(2, dim=1)
    assert [p.shape[1] for p in parts] == [2, 1]
    # views: writes show through
    parts[0].fill_(0)
    assert to_np(x)[:, :2].sum() == 0


def test_chunk_split_vs_torch(rng):
    torch = pytest.importorskip("torch")
    for size in range(0, 9):
        for n in range(1, 6):
            a = torch.zeros(size).chunk(n)
            b = so.zeros(size).chunk(n)
            assert [t.shape[0] for t in a] == [t.shape[0] for t in b], (size, n)
            if size or n:
                a = torch.zeros(size).split(n)
                b = so.zeros(size).split(n)
                assert [t.shape[0] for t in a] == [t.shape[0] for t in b], (size, n)


ERRORS = [
    lambda m: m.zeros(3, 4).chunk(0),
    lambda m: m.zeros(3, 4).split(0),
    lambda m: m.zeros(3, 4).split([1, 1]),
    lambda m: m.zeros(3, 4).chunk(2, 2),
    lambda m: m.zeros(3, 4).split(2, -3),
    lambda m: m.zeros(3).tril(),
    lambda m: m.clamp(m.zeros(3)),
    lambda m: m.where(m.tensor([1, 0]), m.zeros(2), 0.0),
]


@pytest.mark.parametrize("case", range(len(ERRORS)))
def test_errors_match_torch(case):
    torch = pytest.importorskip("torch")
    with pytest.raises(Exception) as te:
        ERRORS[case](torch)
    with pytest.raises(type(te.value)) as se:
        ERRORS[case](so)
    assert str(se.value).split("\n")[0] == str(te.value).split("\n")[0]


@pytest.mark.parametrize("dtype", [so.float32, so.float64, so.int32, so.int64])
def test_clamp_tensor_bounds(rng, dtype):
    x, ref = make((4, 5), dtype, rng)
    lo, lref = make((5,), dtype, rng, -0.5, 0.0, -3, 0)
    hi, href = make((4, 1), dtype, rng, 0.0, 0.5, 0, 3)
    np.testing.assert_array_equal(to_np(x.clamp(lo, hi)).astype(np.float64),
                                  np.minimum(np.maximum(ref, lref), href))
    np.testing.assert_array_equal(to_np(so.clamp(x, min=lo)).astype(np.float64),
                                  np.maximum(ref, lref))
    np.testing.assert_array_equal(to_np(x.clamp(max=hi)).astype(np.float64),
                                  np.minimum(ref, href))


@pytest.mark.parametrize("dtype", ALL_DTYPES)
def test_where_three_args(rng, dtype):
    x, ref = make((3, 4), dtype, rng)
    y, yref = make((4,), dtype, rng)
    c = rng.random((3, 1)) < 0.5
    got = so.where(so.tensor(c), x, y)
    np.testing.assert_array_equal(to_np(got).astype(np.float64), np.where(c, ref, yref))
    got = x.where(so.tensor(c), y)
    np.testing.assert_array_equal(to_np(got).astype(np.float64), np.where(c, ref, yref))
    with pytest.raises(TypeError, match="1 or 3 arguments"):
        so.where(so.tensor(c), x)


@pytest.mark.parametrize("cuda", [pytest.param(0, marks=needs_cuda)])
def test_cuda(rng, cuda):
    x, ref = make((5, 6), so.float32, rng)
    np.testing.assert_array_equal(to_np(x.cuda().tril(1)), to_np(x.tril(1)))
    np.testing.assert_array_equal(to_np(x.cuda().triu(-1)), to_np(x.triu(-1)))
    assert [p.device.type for p in x.cuda().chunk(3)] == ["cuda"] * 2
