"""Finite-difference gradient checking for the autograd tests (float64 central differences)."""
import numpy as np

import shardopt

def T(a, requires_grad=False):
    """A float64 (or given dtype) shardopt tensor owning a copy of the NumPy array ``a``."""
    t = shardopt.from_numpy(np.array(a, copy=True))
    if requires_grad:
        t.requires_grad_()
    return t


def N(t):
    """NumPy copy of a tensor's values."""
    return np.array(t.detach().numpy(), copy=True)


def numeric_grads(f, arrays, weight, wrt, eps=1e-6):
    """d/d arrays[i] of sum(f(*arrays) * weight) by central differences, for i in wrt."""
    def value(arrs):
        with shardopt.no_grad():
            out = f(*[T(a) for a in arrs])
        return float(np.sum(N(out) * weight))

    grads = []
    for i in wrt:
        a = arrays[i]
        g = np.zeros_like(a)
        flat = g.reshape(-1)
        for j in range(a.size):
            plus = [x.copy() for x in arrays]
            minus = [x.copy() for x in arrays]
            plus[i].reshape(-1)[j] += eps
            minus[i].reshape(-1)[j] -= eps
            flat[j] = (value(plus) - value(minus)) / (2 * eps)
        grads.append(g)
    return grads


def check_grads(f, *arrays, wrt=None, rtol=1e-6, atol=1e-7, seed=0):
    """Backprop sum(f(*inputs) * w) for a random w and compare every input's .grad with the
    finite-difference gradient. Returns the output tensor of the recorded run."""
    arrays = [np.asarray(a, dtype=np.float64) for a in arrays]
    wrt = list(range(len(arrays))) if wrt is None else list(wrt)
    ts = [T(a, requires_grad=(i in wrt)) for i, a in enumerate(arrays)]
    out = f(*ts)
    assert out.requires_grad and out.grad_fn is not None
    rng = np.random.default_rng(seed)
    weight = rng.standard_normal(tuple(out.shape))
    (out * T(weight)).sum().backward()
    expected = numeric_grads(f, arrays, weight, wrt)
    for i, e in zip(wrt, expected):
        got = ts[i].grad
        assert got is not None, f"input {i} got no gradient"
        assert tuple(got.shape) == arrays[i].shape
        assert got.dtype == shardopt.float64
        np.testing.assert_allclose(N(got), e, rtol=rtol, atol=atol,
                                   err_msg=f"gradient of input {i}")
    return out
