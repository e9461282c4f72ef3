"""The nn kernels on CUDA against the CPU kernels (the per-element math is shared, so these
confirm the launches and indexing): layer/RMS norm, cross-entropy / NLL, embedding,
embedding_bag, renorm, with gradients and the out-of-range errors.  Skipped without a GPU."""
import numpy as np
import pytest

import shardopt
from shardopt.nn import functional as F
from nnutil import N, T

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not shardopt.cuda.is_available(), reason="no CUDA device")]


def both(fn, *arrays, grad_of=(0,)):
    """fn on CPU and on CUDA tensors made from the same arrays: (outputs, grads) pairs."""
    res = []
    for dev in ("cpu", "cuda"):
        ts = [T(a).to(dev) for a in arrays]
        for i in grad_of:
            ts[i].requires_grad_()
        out = fn(*ts)
        out.sum().backward() if out.ndim == 0 else (out * out).sum().backward()
        res.append((N(out), [N(ts[i].grad) for i in grad_of]))
    return res


def close(a, b, rtol=1e-5, atol=1e-6):
    np.testing.assert_allclose(a[0], b[0], rtol=rtol, atol=atol)
    for x, y in zip(a[1], b[1]):
        np.testing.assert_allclose(x, y, rtol=rtol, atol=atol)


@pytest.mark.parametrize("rms", [False, True])
def test_norms(rms):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((33, 257)).astype(np.float32)
    w = rng.standard_normal(257).astype(np.float32)
    b = rng.standard_normal(257).astype(np.float32)
    if rms:
        close(*both(lambda x, w: F.rms_norm(x, (257,), w), x, w, grad_of=(0, 1)))
    else:
        close(*both(lambda x, w, b: F.layer_norm(x, (257,), w, b), x, w, b, grad_of=(0, 1, 2)))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy(reduction):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((9, 300, 2)).astype(np.float32)
    t = rng.integers(0, 300, (9, 2))
    t[0, 1] = -100
    w = rng.uniform(0.5, 2, 300).astype(np.float32)
    close(*both(lambda x, t, w: F.cross_entropy(x, t, w, reduction=reduction,
                                                label_smoothing=0.1), x, t, w))
    close(*both(lambda x, t: F.nll_loss(x, t, reduction=reduction), x, t))
    q = rng.random(x.shape).astype(np.float32)
    close(*both(lambda x, q: F.cross_entropy(x, q, reduction=reduction), x, q))
    with pytest.raises(IndexError, match="Target 300 is out of bounds."):
        F.cross_entropy(T(x).cuda(), T(np.full((9, 2), 300)).cuda())


def test_embedding_and_bags():
    rng = np.random.default_rng(2)
    w = rng.standard_normal((50, 8)).astype(np.float32)
    idx = rng.integers(0, 50, (6, 5))
    close(*both(lambda w, i: F.embedding(i, w, padding_idx=3), w, idx))
    close(*both(lambda w, i: F.embedding(i, w, scale_grad_by_freq=True), w, idx))
    offs = np.array([0, 4, 4, 11])
    flat = idx.reshape(-1)
    for mode in ("sum", "mean", "max"):
        close(*both(lambda w, i, o: F.embedding_bag(i, w, o, mode=mode, padding_idx=3),
                    w, flat, offs))
    psw = rng.standard_normal(30).astype(np.float32)
    close(*both(lambda w, i, o, p: F.embedding_bag(i, w, o, mode="sum", per_sample_weights=p),
                w, flat, offs, psw, grad_of=(0, 3)))
    with pytest.raises(IndexError, match="index out of range in self"):
        F.embedding(T(np.array([0, 50])).cuda(), T(w).cuda())
    a, b = T(w * 3), T(w * 3).cuda()
    F.embedding(T(flat), a, max_norm=1.0)
    F.embedding(T(flat).cuda(), b, max_norm=1.0)
    np.testing.assert_allclose(N(b), N(a), rtol=1e-6)
