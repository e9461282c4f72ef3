"""nn.functional's composed activations and losses (shardopt/nn/_pointwise.py) and their
modules: values and gradients against float64 NumPy formulas, torch's one-sided derivatives
at the kinks, argument errors."""
import math

import numpy as np
import pytest

import shardopt as so
import shardopt.nn as nn
import shardopt.nn.functional as F

SELU_A, SELU_S = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946


def _softplus(z):
    return np.maximum(z, 0) + np.log1p(np.exp(-np.abs(z)))


def _sig(z):
    return 1 / (1 + np.exp(-z))


# name -> (call, value(x), derivative(x)) in float64 NumPy
CASES = {
    "leaky_relu": (lambda t: F.leaky_relu(t, 0.2), lambda x: np.where(x > 0, x, 0.2 * x),
                   lambda x: np.where(x > 0, 1.0, 0.2)),
    "elu": (lambda t: F.elu(t, 0.7), lambda x: np.where(x > 0, x, 0.7 * np.expm1(x)),
            lambda x: np.where(x > 0, 1.0, 0.7 * np.exp(x))),
    "selu": (F.selu, lambda x: SELU_S * np.where(x > 0, x, SELU_A * np.expm1(x)),
             lambda x: SELU_S * np.where(x > 0, 1.0, SELU_A * np.exp(x))),
    "celu": (lambda t: F.celu(t, 0.5), lambda x: np.maximum(0, x) + np.minimum(0, 0.5 * np.expm1(x / 0.5)),
             lambda x: np.where(x > 0, 1.0, np.exp(x / 0.5))),
    "softplus": (lambda t: F.softplus(t, beta=2.0), lambda x: _softplus(2 * x) / 2,
                 lambda x: _sig(2 * x)),
    "softsign": (F.softsign, lambda x: x / (1 + np.abs(x)), lambda x: 1 / (1 + np.abs(x)) ** 2),
    "hardtanh": (lambda t: F.hardtanh(t, -0.5, 1.5), lambda x: np.clip(x, -0.5, 1.5),
                 lambda x: ((x > -0.5) & (x < 1.5)).astype(float)),
    "relu6": (F.relu6, lambda x: np.clip(x, 0, 6), lambda x: ((x > 0) & (x < 6)).astype(float)),
    "hardsigmoid": (F.hardsigmoid, lambda x: np.clip(x + 3, 0, 6) / 6,
                    lambda x: ((x > -3) & (x < 3)) / 6.0),
    "hardswish": (F.hardswish, lambda x: x * np.clip(x + 3, 0, 6) / 6,
                  lambda x: np.where(x < -3, 0.0, np.where(x > 3, 1.0, (2 * x + 3) / 6))),
    "logsigmoid": (F.logsigmoid, lambda x: -_softplus(-x), lambda x: 1 - _sig(x)),
    "mish": (F.mish, lambda x: x * np.tanh(_softplus(x)),
             lambda x: np.tanh(_softplus(x)) + x * (1 - np.tanh(_softplus(x)) ** 2) * _sig(x)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_activation_value_and_gradient(name):
    call, value, deriv = CASES[name]
    rng = np.random.default_rng(1)
    # away from the kinks (where the one-sided rules below apply), plus wide values
    x = np.concatenate([rng.uniform(-8, 8, 300), [-40.0, -15.0, 15.0, 40.0]])
    x = x[np.min(np.abs(x[:, None] - np.array([-3.0, -0.5, 0.0, 1.5, 3.0, 6.0])), 1) > 1e-3]
    t = so.tensor(x, dtype=so.float64, requires_grad=True)
    out = call(t)
    np.testing.assert_allclose(out.detach().numpy(), value(x), rtol=1e-12, atol=1e-300)
    out.sum().backward()
    np.testing.assert_allclose(t.grad.numpy(), deriv(x), rtol=1e-10, atol=1e-15)
    x32 = x.astype(np.float32)
    f32 = call(so.tensor(x32)).numpy().astype(np.float64)
    np.testing.assert_allclose(f32, value(x32.astype(np.float64)), rtol=2e-6, atol=1e-30)  # small outputs keep
    # their relative accuracy (softplus(-40 * 2) / 2, logsigmoid(40), elu(-40))


def test_one_sided_derivatives_at_zero():
    # torch's derivatives at the kinks (torch 2.13, CPU)
    for fn, x, want in ((lambda t: F.leaky_relu(t, 0.1), 0.0, 0.1), (lambda t: F.elu(t, 0.5), 0.0, 0.5),
                        (F.relu6, 0.0, 0.0), (F.relu6, 6.0, 0.0),
                        (lambda t: F.hardtanh(t, -3.0, 3.0), -3.0, 0.0),
                        (F.hardsigmoid, 3.0, 0.0), (F.hardsigmoid, 0.0, 1 / 6),
                        (F.hardswish, -3.0, 0.0), (F.hardswish, 3.0, 1.0), (F.hardswish, 0.0, 0.5),
                        (F.softplus, 0.0, 0.5), (F.logsigmoid, 0.0, 0.5)):
        t = so.tensor([x], requires_grad=True)
        fn(t).sum().backward()
        assert t.grad.item() == pytest.approx(want), (x, want)


def test_softplus_threshold_and_tiny_values():
    x = so.tensor([-20.0, 0.0, 10.0, 25.0])
    got = F.softplus(x).numpy().astype(np.float64)
    assert got[0] == pytest.approx(math.log1p(math.exp(-20.0)), rel=1e-6)  # not 0
    assert got[3] == 25.0  # linear above the threshold
    np.testing.assert_allclose(F.softplus(x, beta=1.0, threshold=5.0).numpy()[2], 10.0)


def test_inplace_and_errors():
    x = so.tensor([-1.0, 2.0])
    assert F.leaky_relu(x, 0.5, inplace=True) is x
    np.testing.assert_array_equal(x.numpy(), [-0.5, 2.0])
    with pytest.raises(RuntimeError, match="not implemented for 'int64'"):
        F.elu(so.tensor([1, 2]))
    with pytest.raises(TypeError, match="must be Tensor"):
        F.softsign([1.0])
    with pytest.raises(ValueError, match="min_val cannot be greater than max_val"):
        F.hardtanh(x, 2.0, 1.0)


def test_modules_construct_like_torch():
    assert repr(nn.LeakyReLU(0.2)) == "LeakyReLU(negative_slope=0.2)"
    assert repr(nn.Hardtanh(-2.0, 2.0, inplace=True)) == "Hardtanh(min_val=-2.0, max_val=2.0, inplace=True)"
    assert nn.Softplus(beta=2).beta == 2 and nn.Softplus().threshold == 20.0
    assert nn.ELU().alpha == 1.0 and not nn.ReLU6().inplace
    with pytest.raises(TypeError, match="unexpected keyword argument 'slope'"):
        nn.LeakyReLU(slope=0.1)
    x = so.randn(4, 3)
    for m, f in ((nn.Mish(), F.mish), (nn.SELU(), F.selu), (nn.LogSigmoid(), F.logsigmoid)):
        np.testing.assert_array_equal(m(x).numpy(), f(x).numpy())


def test_losses_against_numpy():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(4, 5)), rng.normal(size=(4, 5))
    ta, tb = so.tensor(a, dtype=so.float64), so.tensor(b, dtype=so.float64)
    d = a - b
    hub = np.where(np.abs(d) < 0.7, 0.5 * d * d, 0.7 * (np.abs(d) - 0.35))
    np.testing.assert_allclose(F.huber_loss(ta, tb, delta=0.7).item(), hub.mean(), rtol=1e-12)
    np.testing.assert_allclose(nn.HuberLoss(reduction="sum", delta=0.7)(ta, tb).item(), hub.sum(),
                               rtol=1e-12)
    p, y = _sig(a), (b > 0).astype(float)
    bce = -(y * np.log(p) + (1 - y) * np.log(1 - p))
    np.testing.assert_allclose(nn.BCELoss()(so.tensor(p), so.tensor(y)).item(), bce.mean(),
                               rtol=1e-12)
    w = rng.uniform(size=5)
    np.testing.assert_allclose(F.binary_cross_entropy(so.tensor(p), so.tensor(y), so.tensor(w),
                                                       reduction="none").numpy(), bce * w,
                               rtol=1e-12)
    zero_one = F.binary_cross_entropy(so.tensor([0.0, 1.0]), so.tensor([1.0, 0.0]), reduction="none")
    np.testing.assert_array_equal(zero_one.numpy(), [100.0, 100.0])  # logs clamped at -100
    with pytest.raises(RuntimeError, match="between 0 and 1"):
        F.binary_cross_entropy(so.tensor([1.5]), so.tensor([1.0]))
    logq = np.log(rng.dirichlet(np.ones(5), size=4))
    pt = rng.dirichlet(np.ones(5), size=4)
    pt[0, 0] = 0.0  # 0 * log 0 counts as 0
    kl = np.where(pt > 0, pt * (np.log(np.where(pt > 0, pt, 1)) - logq), -0.0 * logq)
    np.testing.assert_allclose(F.kl_div(so.tensor(logq), so.tensor(pt), reduction="batchmean").item(),
                               kl.sum() / 4, rtol=1e-12)
    with pytest.warns(UserWarning, match="'batchmean' divides only by the batch size"):
        F.kl_div(so.tensor(logq), so.tensor(pt))
    np.testing.assert_allclose(
        nn.KLDivLoss(reduction="sum", log_target=True)(so.tensor(logq), so.tensor(np.log(pt + 1e-3))).item(),
        (np.exp(np.log(pt + 1e-3)) * (np.log(pt + 1e-3) - logq)).sum(), rtol=1e-12)
    ty = so.tensor(np.sign(b))
    np.testing.assert_allclose(nn.MarginRankingLoss(0.3)(ta, tb, ty).item(),
                               np.maximum(0, -np.sign(b) * d + 0.3).mean(), rtol=1e-12)
    np.testing.assert_allclose(nn.SoftMarginLoss()(ta, ty).item(),
                               np.log1p(np.exp(-np.sign(b) * a)).mean(), rtol=1e-12)


def test_distances_against_numpy():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(6, 4)), rng.normal(size=(6, 4))
    ta, tb = so.tensor(a, dtype=so.float64), so.tensor(b, dtype=so.float64)
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    np.testing.assert_allclose(nn.CosineSimilarity(dim=1)(ta, tb).numpy(), cos, rtol=1e-12)
    np.testing.assert_allclose(F.cosine_similarity(ta, tb[:1], dim=-1).numpy(),
                               (a * b[:1]).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b[0])),
                               rtol=1e-12)  # broadcast
    assert F.cosine_similarity(so.zeros(1, 3), so.ones(1, 3)).item() == 0.0  # eps, no NaN
    for p in (1.0, 2.0, 3.0, math.inf):
        want = np.linalg.norm(a - b + 1e-6, ord=p, axis=1)
        np.testing.assert_allclose(nn.PairwiseDistance(p=p)(ta, tb).numpy(), want, rtol=1e-12)
    assert tuple(F.pairwise_distance(ta, tb, keepdim=True).shape) == (6, 1)


def test_thresholds_gates_and_unflatten():
    rng = np.random.default_rng(9)
    x = rng.normal(size=(3, 4, 2))
    t = so.tensor(x, dtype=so.float64, requires_grad=True)
    checks = (
        (nn.Threshold(0.1, 20.0), np.where(x > 0.1, x, 20.0), (x > 0.1).astype(float)),
        (nn.Hardshrink(0.3), np.where(np.abs(x) > 0.3, x, 0.0), (np.abs(x) > 0.3).astype(float)),
        (nn.Softshrink(0.3), np.where(x > 0.3, x - 0.3, np.where(x < -0.3, x + 0.3, 0.0)),
         (np.abs(x) > 0.3).astype(float)),
        (nn.Tanhshrink(), x - np.tanh(x), np.tanh(x) ** 2),
    )
    for m, want, d in checks:
        t.grad = None
        out = m(t)
        np.testing.assert_allclose(out.detach().numpy(), want, rtol=1e-12)
        out.sum().backward()
        np.testing.assert_allclose(t.grad.numpy(), d, rtol=1e-12, atol=1e-15)
    a, b = x[:, :2], x[:, 2:]
    np.testing.assert_allclose(nn.GLU(1)(t).detach().numpy(), a / (1 + np.exp(-b)), rtol=1e-12)
    e = np.exp(-x - (-x).max(1, keepdims=True))
    np.testing.assert_allclose(nn.Softmin(1)(t).detach().numpy(), e / e.sum(1, keepdims=True),
                               rtol=1e-12)
    p = nn.PReLU(4).double()
    assert p.weight.detach().numpy().tolist() == [0.25] * 4
    np.testing.assert_allclose(p(t).detach().numpy(), np.where(x > 0, x, 0.25 * x), rtol=1e-12)
    assert tuple(nn.Unflatten(1, (2, 2))(t).shape) == (3, 2, 2, 2)
    assert repr(nn.Hardshrink(0.3)) == "Hardshrink(0.3)"
    with pytest.raises(RuntimeError, match="Halving dimension must be even"):
        F.glu(so.randn(3, 3))
