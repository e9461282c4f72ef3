"""LayerNorm / RMSNorm (csrc/ops/layer_norm*): float64 NumPy references with and without
weight / bias and over several trailing dims, gradients by finite differences and against
torch, the modules' defaults, reprs and state_dict keys, and torch's errors."""
import numpy as np
import pytest

import shardopt
from shardopt import nn
from shardopt.nn import functional as F
from nnutil import N, T, check_grads, poison, torch_or_skip


def ref_layer_norm(x, nd, w=None, b=None, eps=1e-5, rms=False):
    axes = tuple(range(x.ndim - nd, x.ndim))
    if rms:
        y = x / np.sqrt((x * x).mean(axis=axes, keepdims=True) + eps)
    else:
        mu = x.mean(axis=axes, keepdims=True)
        y = (x - mu) / np.sqrt(((x - mu) ** 2).mean(axis=axes, keepdims=True) + eps)
    if w is not None:
        y = y * w
    if b is not None:
        y = y + b
    return y


CASES = [((6, 10), (10,)), ((2, 3, 4, 5), (4, 5)), ((7,), (7,)), ((3, 1000), (1000,)),
         ((0, 4), (4,))]


@pytest.mark.parametrize("shape,ns", CASES)
@pytest.mark.parametrize("affine", ["none", "weight", "both", "bias"])
@pytest.mark.parametrize("dtype,tol", [(np.float32, 2e-5), (np.float64, 1e-12)])
def test_layer_norm_forward(shape, ns, affine, dtype, tol):
    rng = np.random.default_rng(len(shape) * 7 + len(affine))
    x = (rng.standard_normal(shape) * 3 + 1.5).astype(dtype)
    w = rng.standard_normal(ns).astype(dtype) if affine in ("weight", "both") else None
    b = rng.standard_normal(ns).astype(dtype) if affine in ("both", "bias") else None
    poison(x.nbytes)
    got = F.layer_norm(T(x), ns, None if w is None else T(w), None if b is None else T(b), 1e-5)
    assert got.dtype == T(x).dtype and tuple(got.shape) == shape
    want = ref_layer_norm(x.astype(np.float64), len(ns), w, b)
    np.testing.assert_allclose(N(got), want, rtol=tol, atol=tol)
    if affine != "bias":
        got = F.rms_norm(T(x), ns, None if w is None else T(w), eps=1e-6)
        want = ref_layer_norm(x.astype(np.float64), len(ns), w, None, 1e-6, rms=True)
        np.testing.assert_allclose(N(got), want, rtol=tol, atol=tol)


def test_rms_norm_default_eps_is_finfo_eps():
    x = np.array([[1e-4, -2e-4, 3e-4]], np.float32)
    got = N(F.rms_norm(T(x), (3,)))
    want = ref_layer_norm(x.astype(np.float64), 1, eps=float(np.finfo(np.float32).eps), rms=True)
    np.testing.assert_allclose(got, want, rtol=1e-5)


@pytest.mark.parametrize("rms", [False, True])
@pytest.mark.parametrize("shape,ns", [((4, 6), (6,)), ((2, 3, 5), (3, 5))])
def test_gradients_finite_differences(rms, shape, ns):
    rng = np.random.default_rng(11)
    x = rng.standard_normal(shape)
    w = rng.standard_normal(ns)
    b = rng.standard_normal(ns)
    if rms:
        check_grads(lambda x, w: F.rms_norm(x, ns, w, 1e-5), [x, w], [0, 1])
        check_grads(lambda x: F.rms_norm(x, ns, None, 1e-5), [x], [0])
    else:
        check_grads(lambda x, w, b: F.layer_norm(x, ns, w, b), [x, w, b], [0, 1, 2])
        check_grads(lambda x: F.layer_norm(x, ns), [x], [0])
        check_grads(lambda x, w: F.layer_norm(x, ns, w), [x, w], [1])  # weight only


def test_against_torch():
    torch = torch_or_skip()
    rng = np.random.default_rng(12)
    x = rng.standard_normal((5, 3, 16)).astype(np.float32)
    g = rng.standard_normal((5, 3, 16)).astype(np.float32)
    for rms in (False, True):
        a = nn.RMSNorm(16) if rms else nn.LayerNorm(16)
        b = torch.nn.RMSNorm(16) if rms else torch.nn.LayerNorm(16)
        with torch.no_grad():
            b.weight.copy_(torch.tensor(rng.standard_normal(16).astype(np.float32)))
        with shardopt.no_grad():
            a.weight.copy_(T(b.weight.detach().numpy()))
        xa, xb = T(x, requires_grad=True), torch.tensor(x, requires_grad=True)
        ya, yb = a(xa), b(xb)
        np.testing.assert_allclose(N(ya), yb.detach().numpy(), rtol=1e-5, atol=1e-5)
        ya.backward(T(g))
        yb.backward(torch.tensor(g))
        np.testing.assert_allclose(N(xa.grad), xb.grad.numpy(), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(N(a.weight.grad), b.weight.grad.numpy(), rtol=1e-4, atol=1e-4)
        if not rms:
            np.testing.assert_allclose(N(a.bias.grad), b.bias.grad.numpy(), rtol=1e-4,
                                       atol=1e-4)


def test_modules_defaults_repr_state_dict():
    ln = nn.LayerNorm(4)
    assert repr(ln) == "LayerNorm((4,), eps=1e-05, elementwise_affine=True, bias=True)"
    assert list(ln.state_dict()) == ["weight", "bias"]
    assert (N(ln.weight) == 1).all() and (N(ln.bias) == 0).all()
    ln2 = nn.LayerNorm([2, 4], eps=1e-3, elementwise_affine=False, bias=False)
    assert repr(ln2) == "LayerNorm((2, 4), eps=0.001, elementwise_affine=False, bias=False)"
    assert ln2.weight is None and list(ln2.state_dict()) == []
    ln3 = nn.LayerNorm(3, bias=False)
    assert ln3.bias is None and list(ln3.state_dict()) == ["weight"]
    assert repr(nn.RMSNorm(4)) == "RMSNorm((4,), eps=None, elementwise_affine=True)"
    assert repr(nn.RMSNorm([2, 4], eps=1e-5)) == \
        "RMSNorm((2, 4), eps=1e-05, elementwise_affine=True)"
    assert list(nn.RMSNorm(4).state_dict()) == ["weight"]
    ln64 = nn.LayerNorm(4, dtype=shardopt.float64)
    assert ln64.weight.dtype == shardopt.float64
    out = ln2(T(np.arange(16.0).reshape(2, 2, 4)))
    np.testing.assert_allclose(N(out), ref_layer_norm(np.arange(16.0).reshape(2, 2, 4), 2,
                                                      eps=1e-3), rtol=1e-12)


def test_half_input():
    x = T(np.random.default_rng(0).standard_normal((3, 8)).astype(np.float32)).to(shardopt.bfloat16)
    out = F.layer_norm(x, (8,))
    assert out.dtype == shardopt.bfloat16
    np.testing.assert_allclose(N(out), ref_layer_norm(N(x), 1), atol=2e-2)


def test_errors_match_torch():
    x = T(np.zeros((3, 5), np.float32))
    with pytest.raises(RuntimeError, match=r"Given normalized_shape=\[4\], expected input with "
                                           r"shape \[\*, 4\], but got input of size\[3, 5\]"):
        F.layer_norm(x, (4,))
    with pytest.raises(RuntimeError, match=r"Given normalized_shape=\[4\], expected input with "
                                           r"shape \[\*4\], but got input of size\[3, 5\]"):
        F.rms_norm(x, (4,))
    with pytest.raises(RuntimeError, match=r"Expected weight to be of same shape as "
                                           r"normalized_shape, but got weight of shape \[4\] and "
                                           r"normalized_shape = \[5\]"):
        F.layer_norm(x, (5,), T(np.ones(4, np.float32)))
    with pytest.raises(RuntimeError, match="Expected bias to be of same shape"):
        F.layer_norm(x, (5,), None, T(np.ones(3, np.float32)))
    with pytest.raises(RuntimeError, match="'weight' to have dtype Float"):
        F.layer_norm(x, (5,), T(np.ones(5)))
    with pytest.raises(RuntimeError, match="Float or Double"):
        F.layer_norm(T(np.zeros((2, 5), np.int64)), (5,))
    with pytest.raises(TypeError, match="argument 'input'"):
        F.layer_norm(np.zeros((2, 5)), (5,))
    with pytest.raises(TypeError, match="normalized_shape"):
        F.layer_norm(x, "5")
