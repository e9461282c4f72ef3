"""Gradients of norm (every p, dims, keepdim, the zero vector), rsqrt, reciprocal and sign
against their closed forms (these ops once returned results without history)."""
import numpy as np
import pytest

import shardopt as so


@pytest.mark.parametrize("p, dim, keepdim", [(2, None, False), (2, 1, False), (1, 0, True),
                                             (3.0, (0, 1), False), (2.5, 1, True),
                                             (float("inf"), 1, False), ("fro", None, False)])
def test_norm_gradient(p, dim, keepdim):
    rng = np.random.default_rng(4)
    x = rng.normal(size=(3, 4))
    t = so.tensor(x, dtype=so.float64, requires_grad=True)
    out = t.norm(p, dim, keepdim)
    assert out.requires_grad and type(out.grad_fn).__name__ == "NormBackward1"
    g = rng.normal(size=tuple(out.shape))
    out.backward(so.tensor(g, dtype=so.float64))
    pv = 2.0 if p == "fro" else float(p)
    axis = dim
    n = np.linalg.norm(x.reshape(-1) if dim is None else x, ord=pv, axis=None if dim is None else axis,
                       keepdims=keepdim) if not isinstance(dim, tuple) else \
        np.sum(np.abs(x) ** pv) ** (1 / pv)
    gg = g
    if dim is not None and not keepdim and not isinstance(dim, tuple):
        n, gg = np.expand_dims(n, dim), np.expand_dims(g, dim)
    if np.isinf(pv):
        hit = (np.abs(x) == n).astype(float)
        want = np.sign(x) * hit * gg / hit.sum(axis=dim, keepdims=True)
    else:
        want = np.sign(x) * np.abs(x) ** (pv - 1) * gg / n ** (pv - 1)
    np.testing.assert_allclose(t.grad.numpy(), want, rtol=1e-12, atol=1e-14)


def test_norm_of_zero_vector_has_zero_gradient():
    z = so.zeros(3, requires_grad=True)
    z.norm().backward()
    np.testing.assert_array_equal(z.grad.numpy(), [0.0, 0.0, 0.0])
    w = so.tensor([[0.0, 0.0], [3.0, 4.0]], requires_grad=True)
    so.norm(w, dim=1).sum().backward()
    np.testing.assert_allclose(w.grad.numpy(), [[0, 0], [0.6, 0.8]], rtol=1e-6)


def test_rsqrt_reciprocal_sign_record_their_gradient():
    x = np.array([0.5, 2.0, 3.0])
    for name, d in (("rsqrt", -0.5 * x ** -1.5), ("reciprocal", -1 / x ** 2),
                    ("sign", np.zeros(3))):
        t = so.tensor(x, dtype=so.float64, requires_grad=True)
        y = getattr(t, name)()
        assert y.requires_grad
        y.sum().backward()
        np.testing.assert_allclose(t.grad.numpy(), d, rtol=1e-12)
        t.grad = None
        getattr(so, name)(t).sum().backward()
        np.testing.assert_allclose(t.grad.numpy(), d, rtol=1e-12)


def test_lerp_addcmul_addcdiv_dot_remainder_record_their_gradient():
    rng = np.random.default_rng(8)
    a, b, w = (rng.uniform(0.5, 2.0, 4) for _ in range(3))

    def run(fn):
        ta, tb, tw = (so.tensor(v, dtype=so.float64, requires_grad=True) for v in (a, b, w))
        out = fn(ta, tb, tw)
        assert out.requires_grad
        out.sum().backward()
        return ta.grad.numpy(), tb.grad.numpy(), tw.grad.numpy() if tw.grad is not None else None

    ga, gb, gw = run(lambda x, y, z: x.lerp(y, z))
    np.testing.assert_allclose(ga, 1 - w)
    np.testing.assert_allclose(gb, w)
    np.testing.assert_allclose(gw, b - a)
    ga, gb, _ = run(lambda x, y, z: so.addcmul(x, y, y, value=3.0))
    np.testing.assert_allclose(ga, np.ones(4))
    np.testing.assert_allclose(gb, 6 * b)
    ga, gb, gw = run(lambda x, y, z: x.addcdiv(y, z, value=2.0))
    np.testing.assert_allclose(gb, 2 / w)
    np.testing.assert_allclose(gw, -2 * b / w ** 2)
    ga, gb, _ = run(lambda x, y, z: so.dot(x, y))
    np.testing.assert_allclose(ga, b)
    np.testing.assert_allclose(gb, a)
    ga, gb, _ = run(lambda x, y, z: x % y)
    np.testing.assert_allclose(ga, np.ones(4))
    np.testing.assert_allclose(gb, -np.floor(a / b))
    t = so.tensor([5.0, -5.0], requires_grad=True)
    r = so.remainder(t, 3.0)
    np.testing.assert_array_equal(r.detach().numpy(), [2.0, 1.0])  # the kernel's exact value
