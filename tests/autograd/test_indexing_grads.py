"""Gradients of the indexing / selection ops (shardopt/autograd/_indexing.py and the
advanced-index getitem/setitem): float64 finite differences, and the same graphs in torch
when it is importable."""
import numpy as np
import pytest

import shardopt as so
from _ag_helpers import N, T, check_grads

rng = np.random.default_rng(2024)


def I(a):  # noqa: E743
    return so.tensor(np.asarray(a), dtype=so.int64)


def distinct(shape):
    """Random values without ties (max/sort/clamp gradients are not smooth at ties)."""
    n = int(np.prod(shape))
    return (rng.permutation(n).reshape(shape) + rng.uniform(0.1, 0.9, size=shape)) / n - 0.5


IDX_ROWS = rng.integers(0, 5, size=(4, 3))
DUP = np.array([0, 2, 2, 4, 0, 0])

# name, input shapes (or arrays), function of the inputs
CASES = [
    ("getitem arange/target", [(4, 5)], lambda x: x[so.arange(4), I([0, 4, 4, 1])] * 2),
    ("getitem duplicates accumulate", [(5, 3)], lambda x: x[I(DUP)]),
    ("getitem mask", [(4, 5)], lambda x: x[so.tensor(np.arange(20).reshape(4, 5) % 3 == 0)]),
    ("getitem mixed", [(3, 4, 5)], lambda x: x[I([[0], [2]]), 1:3, I([4, 0, 0])]),
    ("gather", [(4, 5)], lambda x: x.gather(1, I(IDX_ROWS))),
    ("gather dim0", [(5, 4)], lambda x: so.gather(x, 0, I(IDX_ROWS.T))),
    ("scatter src", [(4, 6), (4, 2)],
     lambda x, s: x.scatter(1, I([[0, 3], [1, 5], [2, 2 + 2], [5, 0]]), s)),
    ("scatter value", [(4, 6)], lambda x: x.scatter(1, I([[0, 3], [1, 5], [2, 4], [5, 0]]), 2.0)),
    ("scatter_add", [(4, 6), (4, 5)],
     lambda x, s: x.scatter_add(1, I([[0, 0, 1, 5, 5], [2, 2, 2, 3, 4], [0, 1, 2, 3, 4],
                                       [5, 5, 5, 5, 5]]), s)),
    ("index_select", [(4, 5)], lambda x: x.index_select(1, I([4, 0, 0, 2]))),
    ("index_select dim0", [(4, 5)], lambda x: so.index_select(x, 0, I([3, 3]))),
    ("masked_fill", [(3, 4)], lambda x: x.masked_fill(so.tensor([True, False, False, True]), 3.0)),
    ("masked_fill tensor value", [(3, 4), ()],
     lambda x, v: so.masked_fill(x, so.tensor([[True], [False], [True]]), v)),
    ("where", [(3, 4), (4,)], lambda x, y: so.where(x > 0, x, y)),
    ("where scalar", [(3, 4)], lambda x: so.where(x > 0, x * 3, 0.5)),
    ("clamp scalars", [distinct((3, 4))], lambda x: x.clamp(-0.2, 0.3)),
    ("clamp min only", [distinct((3, 4))], lambda x: so.clamp(x, min=0.1)),
    ("clamp tensors", [distinct((3, 4)), distinct((4,)) - 0.3, distinct((3, 1)) + 0.3],
     lambda x, lo, hi: x.clamp(lo, hi)),
    ("clamp_min/max", [distinct((5,))], lambda x: x.clamp_min(-0.1).clamp_max(0.2)),
    ("maximum", [distinct((3, 4)), distinct((4,))], lambda x, y: so.maximum(x, y)),
    ("max(other)", [distinct((3, 4)), distinct((3, 4))], lambda x, y: so.max(x, y)),
    ("max dim", [distinct((3, 4, 5))], lambda x: x.max(1).values),
    ("min dim keepdim", [distinct((3, 4))], lambda x: so.min(x, 0, keepdim=True).values),
    ("max all", [distinct((3, 4))], lambda x: x.max() * x.min()),
    ("sort", [distinct((3, 5))], lambda x: x.sort(1, descending=True).values * T(np.arange(5.0))),
    ("topk", [distinct((4, 6))], lambda x: so.topk(x, 3, dim=0).values),
    ("cumsum", [(3, 5)], lambda x: x.cumsum(1) * x.cumsum(0)),
    ("tril/triu", [(2, 4, 4)], lambda x: x.tril(-1) + x.triu(2) * 3),
    ("index_put", [(5, 3), (4, 3)],
     lambda x, v: x.index_put((I([4, 0, 4, 2]),), v, accumulate=True)),
    ("index_put overwrite", [(5, 3), (2, 3)], lambda x, v: so.index_put(x, (I([4, 1]),), v)),
    ("scatter reduce=add", [(3, 4), (3, 2)],
     lambda x, s: x.scatter(1, I([[0, 0], [3, 1], [2, 2]]), s, reduce="add")),
    ("cumsum_ in place", [(3, 4)], lambda x: (x * 1.0).cumsum_(0)),
    ("chunk/split", [(6, 4)], lambda x: x.chunk(3)[1] * x.split([1, 5])[1][:2]),
]


def _arrays(spec):
    return [a if isinstance(a, np.ndarray) else rng.standard_normal(a) for a in spec]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_finite_differences(case):
    _, spec, f = case
    check_grads(f, *_arrays(spec))


def test_grad_fn_names():
    x = T(distinct((3, 4)), True)
    assert x[I([0, 2])].grad_fn.name() == "IndexBackward0"
    assert x.gather(1, I([[0], [1], [2]])).grad_fn.name() == "GatherBackward0"
    assert x.max(1).values.grad_fn.name() == "MaxBackward0"
    assert x.sort().values.grad_fn.name() == "SortBackward0"
    assert x.sort().indices.grad_fn is None and not x.sort().indices.requires_grad
    assert x.argmax().requires_grad is False
    assert so.where(x > 0, x, 0.0).grad_fn.name() == "WhereBackward0"
    assert x.clamp(0, 1).grad_fn.name() == "ClampBackward1"
    assert x.cumsum(0).grad_fn.name() == "CumsumBackward0"


def test_setitem_advanced_under_autograd():
    x = T(rng.standard_normal((4, 3)), True)
    v = T(rng.standard_normal((2, 3)), True)
    y = x * 1.0
    y[I([3, 0])] = v * 2
    w = rng.standard_normal((4, 3))
    (y * T(w)).sum().backward()
    gx = w.copy()
    gx[[3, 0]] = 0
    np.testing.assert_allclose(N(x.grad), gx)
    np.testing.assert_allclose(N(v.grad), 2 * w[[3, 0]])
    # boolean mask assignment of a scalar
    x.grad = None
    y = x * 1.0
    y[so.tensor([True, False, True, False])] = 0.0
    y.sum().backward()
    np.testing.assert_allclose(N(x.grad), np.array([[0.0] * 3, [1.0] * 3, [0.0] * 3, [1.0] * 3]))


def test_inplace_forms_rebase():
    x = T(rng.standard_normal((3, 4)), True)
    y = x * 1.0
    y.masked_fill_(so.tensor([True, False, False, False]), 0.0)
    y.clamp_(-0.5, 0.5)
    y.scatter_add_(1, I([[0], [1], [2]]), T(np.ones((3, 1))))
    y.sum().backward()
    xv = N(x)
    expect = ((np.abs(xv) <= 0.5) * np.array([0.0, 1, 1, 1])).astype(float)
    np.testing.assert_allclose(N(x.grad), expect)
    x.grad = None
    y = x * 1.0
    v = T(rng.standard_normal((2, 4)), True)
    y.index_put_((I([2, 2]),), v * 3, accumulate=True)
    (y * y).sum().backward()
    yv = N(x).copy()
    yv[2] += 3 * N(v).sum(0)
    np.testing.assert_allclose(N(x.grad), 2 * yv)
    np.testing.assert_allclose(N(v.grad), np.stack([6 * yv[2]] * 2))
    leaf = T(np.zeros(3), True)
    with pytest.raises(RuntimeError, match="leaf Variable"):
        leaf.masked_fill_(so.tensor([True, False, True]), 1.0)


def test_vs_torch():
    torch = pytest.importorskip("torch")
    a = distinct((6, 5))
    idx = np.array([5, 0, 0, 3])

    def graph(m, x, index):
        tgt = m.tensor([4, 0, 1, 1, 2, 3])
        picked = x[m.arange(6), tgt]
        g = x.gather(1, index.clamp_max(4).unsqueeze(1).expand(4, 5)[:, :2]).sum()
        v, i = x.topk(2, dim=1)
        s = x.sort(0).values[1:].cumsum(1)
        return ((picked * picked).sum() + g + v.sum() * 2 + (s * s).mean()
                + x.clamp(-0.1, 0.2).sum() + m.where(x > 0, x, x * x).sum()
                + x.max(0).values.sum() + x.tril().sum() * 0.5 + x[x > 0.1].sum()
                + x.index_select(0, index).pow(2).sum())

    xs = T(a, True)
    graph(so, xs, so.tensor(idx)).backward()
    xt = torch.tensor(a, requires_grad=True)
    graph(torch, xt, torch.tensor(idx)).backward()
    np.testing.assert_allclose(N(xs.grad), xt.grad.numpy(), rtol=1e-12, atol=1e-12)
