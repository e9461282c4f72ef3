"""Helpers shared by the nn kernel tests: NumPy <-> tensor, heap poisoning, float64 finite
differences, and the optional torch import."""
import numpy as np
import pytest

import shardopt

needs_cuda = [pytest.mark.cuda,
              pytest.mark.skipif(not shardopt.cuda.is_available(), reason="no CUDA device")]


def T(a, dtype=None, requires_grad=False):
    """A tensor owning a copy of ``a`` (NumPy dtype kept unless ``dtype`` is given)."""
    arr = np.array(a, dtype=dtype, copy=True)
    t = shardopt.from_numpy(arr)  # a fresh array: contiguous, 0-d kept
    if requires_grad:
        t.requires_grad_()
    return t


def N(t):
    """NumPy float64 copy of a tensor (any float dtype, any device)."""
    t = t.detach().cpu()
    if t.dtype in (shardopt.bfloat16, shardopt.float16):
        t = t.float()
    return np.array(t.numpy(), copy=True).astype(np.float64) if t.dtype.is_floating_point \
        else np.array(t.numpy(), copy=True)


def poison(nbytes, count=2):
    """Allocate and free NaN-filled tensors of ``nbytes``: the kernels' outputs are allocated
    fresh, so this makes the allocator's recycled memory NaN (a kernel that forgot to write
    an element shows NaN instead of a stale plausible value)."""
    n = max(1, nbytes // 8)
    for _ in range(count):
        shardopt.empty(n, dtype=shardopt.float64).fill_(float("nan"))


def numeric_grad(f, arrays, i, weight, eps=1e-6):
    """d/d arrays[i] of sum(f(*arrays) * weight) by float64 central differences; f takes
    NumPy arrays and returns a tensor."""
    a = arrays[i]
    g = np.zeros_like(a, dtype=np.float64)
    flat = g.reshape(-1)
    for j in range(a.size):
        vals = []
        for sgn in (1, -1):
            arrs = [x.copy() for x in arrays]
            arrs[i].reshape(-1)[j] += sgn * eps
            with shardopt.no_grad():
                vals.append(float(np.sum(N(f(*arrs)) * weight)))
        flat[j] = (vals[0] - vals[1]) / (2 * eps)
    return g


def check_grads(f, arrays, wrt, rtol=1e-6, atol=1e-8, seed=0):
    """Backpropagate sum(f(*tensors) * w) for a random w and compare the gradients of the
    float64 arrays listed in ``wrt`` with finite differences.  ``f`` receives tensors for
    every array (integer arrays stay integer tensors)."""
    arrays = [np.asarray(a) for a in arrays]
    ts = [T(a, requires_grad=(i in wrt)) for i, a in enumerate(arrays)]
    out = f(*ts)
    rng = np.random.default_rng(seed)
    weight = rng.standard_normal(tuple(out.shape))
    (out * T(weight)).sum().backward()

    def fnp(*arrs):
        return f(*[T(a) for a in arrs])

    for i in wrt:
        want = numeric_grad(fnp, arrays, i, weight)
        got = ts[i].grad
        assert got is not None, f"input {i} got no gradient"
        np.testing.assert_allclose(N(got), want, rtol=rtol, atol=atol,
                                   err_msg=f"gradient of input {i}")
    return out


def torch_or_skip():
    return pytest.importorskip("torch")
