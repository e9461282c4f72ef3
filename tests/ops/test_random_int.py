"""randint / randperm / multinomial: ranges, dtypes, determinism under manual_seed and
explicit generators, distribution checks (chi-square against the exact probabilities) and
torch's argument errors.  The draws come from the Philox generator (csrc/ops/philox.h)."""
import numpy as np
import pytest

import shardopt as so

from oputil import needs_cuda, to_np


def chi2_ok(counts, probs, n):
    """Pearson chi-square at a very small false-alarm rate (df < 60: 5 sigma-ish bound)."""
    expected = probs * n
    keep = expected > 0
    stat = float(np.sum((counts[keep] - expected[keep]) ** 2 / expected[keep]))
    df = int(keep.sum()) - 1
    return stat < df + 8 * np.sqrt(2 * df) + 10, stat


def test_randint_range_dtype_and_uniformity():
    so.manual_seed(1234)
    r = so.randint(3, 10, (200_000,))
    assert r.dtype == so.int64 and tuple(r.shape) == (200_000,)
    a = to_np(r)
    assert a.min() >= 3 and a.max() <= 9
    ok, stat = chi2_ok(np.bincount(a - 3, minlength=7), np.full(7, 1 / 7), a.size)
    assert ok, stat
    b = so.randint(5, size=(3, 4), dtype=so.int32)
    assert b.dtype == so.int32 and tuple(b.shape) == (3, 4)
    assert 0 <= to_np(b).min() and to_np(b).max() < 5
    f = so.randint(-2, 2, (10,), dtype=so.float32)
    assert f.dtype == so.float32 and set(to_np(f).tolist()) <= {-2.0, -1.0, 0.0, 1.0}
    big = to_np(so.randint(0, 2 ** 40, (1000,)))
    assert big.min() >= 0 and big.max() < 2 ** 40 and big.max() > 2 ** 38


def test_determinism_and_generator():
    so.manual_seed(7)
    a = to_np(so.randint(0, 100, (50,)))
    p = to_np(so.randperm(20))
    so.manual_seed(7)
    assert np.array_equal(a, to_np(so.randint(0, 100, (50,))))
    assert np.array_equal(p, to_np(so.randperm(20)))
    g = so.Generator().manual_seed(3)
    x = to_np(so.randint(0, 1000, (30,), generator=g))
    g.manual_seed(3)
    assert np.array_equal(x, to_np(so.randint(0, 1000, (30,), generator=g)))
    g.manual_seed(3)
    m1 = to_np(so.multinomial(so.ones(10), 4, generator=g))
    g.manual_seed(3)
    assert np.array_equal(m1, to_np(so.multinomial(so.ones(10), 4, generator=g)))


@pytest.mark.parametrize("n", [0, 1, 2, 17, 1000])
def test_randperm_is_permutation(n):
    p = so.randperm(n)
    assert p.dtype == so.int64 and tuple(p.shape) == (n,)
    assert sorted(to_np(p).tolist()) == list(range(n))
    assert so.randperm(n, dtype=so.float32).dtype == so.float32


def test_randperm_uniform_positions():
    so.manual_seed(0)
    counts = np.zeros((4, 4))
    for _ in range(4000):
        p = to_np(so.randperm(4))
        counts[np.arange(4), p] += 1
    for row in counts:
        ok, stat = chi2_ok(row, np.full(4, 0.25), 4000)
        assert ok, stat


def test_multinomial_with_replacement_frequencies():
    so.manual_seed(11)
    w = np.array([0.1, 0.0, 2.0, 1.0, 0.9])
    s = so.multinomial(so.tensor(w), 100_000, replacement=True)
    assert s.dtype == so.int64 and tuple(s.shape) == (100_000,)
    counts = np.bincount(to_np(s), minlength=5)
    assert counts[1] == 0  # zero weight is never drawn
    ok, stat = chi2_ok(counts, w / w.sum(), 100_000)
    assert ok, stat
    rows = so.tensor(np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 3.0]], dtype=np.float32))
    out = so.multinomial(rows, 6, True)
    assert tuple(out.shape) == (2, 6)
    assert to_np(out)[0].tolist() == [0] * 6 and to_np(out)[1].tolist() == [2] * 6


def test_multinomial_without_replacement():
    so.manual_seed(5)
    w = np.array([0.5, 0.2, 0.2, 0.1])
    first = np.zeros(4)
    for _ in range(3000):
        s = to_np(so.multinomial(so.tensor(w), 3))
        assert len(set(s.tolist())) == 3
        first[s[0]] += 1
    ok, stat = chi2_ok(first, w, 3000)  # the first draw follows w
    assert ok, stat
    # zero-weight categories come last (only when the others are used up)
    s = to_np(so.multinomial(so.tensor([0.0, 1.0, 0.0, 2.0]), 2))
    assert sorted(s.tolist()) == [1, 3]
    assert tuple(so.multinomial(so.ones(3, 5, dtype=so.float64), 5).shape) == (3, 5)


ERRORS = [
    lambda m: m.randint(3, 2, (3,)),
    lambda m: m.randperm(-1),
    lambda m: m.multinomial(m.tensor([0.5, -1.0]), 1),
    lambda m: m.multinomial(m.tensor([0.5, float("nan")]), 1),
    lambda m: m.multinomial(m.tensor([0.5, float("inf")]), 1),
    lambda m: m.multinomial(m.tensor([0.0, 0.0]), 1),
    lambda m: m.multinomial(m.tensor([1, 2]), 1),
    lambda m: m.multinomial(m.ones(2, 2, 2), 1),
    lambda m: m.multinomial(m.tensor([1.0, 2.0]), 3),
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
    with pytest.raises(TypeError, match="size"):
        so.randint(0, 5)
    with pytest.raises(TypeError, match="argument 'high'"):
        so.randint(0, 5.5, (2,))
    with pytest.raises(RuntimeError, match="n_sample <= 0"):
        so.multinomial(so.ones(3), 0)


@pytest.mark.parametrize("cuda", [pytest.param(0, marks=needs_cuda)])
def test_cuda(cuda):
    g = so.randint(0, 7, (1000,), device="cuda")
    assert g.device.type == "cuda" and 0 <= to_np(g).min() and to_np(g).max() < 7
    p = so.randperm(500, device="cuda")
    assert sorted(to_np(p).tolist()) == list(range(500))
    w = so.tensor([0.2, 0.0, 0.8]).cuda()
    s = to_np(so.multinomial(w, 2000, True))
    assert (s != 1).all()
    s = to_np(so.multinomial(w.expand(4, 3).contiguous(), 2))
    assert all(sorted(r.tolist()) == [0, 2] for r in s)
