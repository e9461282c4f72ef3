"""BatchNorm1d/2d/3d and GroupNorm against float64 NumPy: training statistics, running
statistics (momentum and cumulative), eval mode, gradients, parameters and errors."""
import numpy as np
import pytest

import shardopt as so
import shardopt.nn as nn


def _bn_ref(x, eps=1e-5):
    axes = (0,) + tuple(range(2, x.ndim))
    m = x.mean(axis=axes, keepdims=True)
    v = x.var(axis=axes, keepdims=True)
    return (x - m) / np.sqrt(v + eps), x.mean(axis=axes), x.var(axis=axes, ddof=1)


@pytest.mark.parametrize("cls, shape", [(nn.BatchNorm1d, (8, 3)), (nn.BatchNorm1d, (6, 3, 5)),
                                        (nn.BatchNorm2d, (4, 3, 2, 5)),
                                        (nn.BatchNorm3d, (2, 3, 2, 2, 3))])
def test_batchnorm_training_and_eval(cls, shape):
    rng = np.random.default_rng(5)
    bn = cls(3).double()
    with so.no_grad():
        bn.weight.copy_(so.tensor(rng.uniform(0.5, 2, 3)))
        bn.bias.copy_(so.tensor(rng.normal(size=3)))
    w, b = bn.weight.detach().numpy().copy(), bn.bias.detach().numpy().copy()
    rm, rv = np.zeros(3), np.ones(3)
    view = (1, 3) + (1,) * (len(shape) - 2)
    for _ in range(3):
        x = rng.normal(size=shape) * 2 + 1
        out = bn(so.tensor(x, dtype=so.float64))
        norm, m, v = _bn_ref(x)
        np.testing.assert_allclose(out.detach().numpy(), norm * w.reshape(view) + b.reshape(view),
                                   rtol=1e-10, atol=1e-12)
        rm, rv = 0.9 * rm + 0.1 * m, 0.9 * rv + 0.1 * v
    np.testing.assert_allclose(bn.running_mean.numpy(), rm, rtol=1e-12)
    np.testing.assert_allclose(bn.running_var.numpy(), rv, rtol=1e-12)
    assert bn.num_batches_tracked.item() == 3
    bn.eval()
    x = rng.normal(size=shape)
    want = (x - rm.reshape(view)) / np.sqrt(rv.reshape(view) + 1e-5) * w.reshape(view) + b.reshape(view)
    np.testing.assert_allclose(bn(so.tensor(x, dtype=so.float64)).detach().numpy(), want, rtol=1e-10)


def test_batchnorm_cumulative_momentum_gradient_and_state():
    rng = np.random.default_rng(6)
    bn = nn.BatchNorm1d(2, momentum=None).double()
    xs = [rng.normal(size=(5, 2)) for _ in range(3)]
    for x in xs:
        bn(so.tensor(x, dtype=so.float64))
    np.testing.assert_allclose(bn.running_mean.numpy(), np.mean([x.mean(0) for x in xs], 0),
                               rtol=1e-12)
    assert sorted(bn.state_dict()) == ["bias", "num_batches_tracked", "running_mean",
                                       "running_var", "weight"]
    assert repr(bn) == "BatchNorm1d(2, eps=1e-05, momentum=None, affine=True, track_running_stats=True)"
    # gradient of sum(y * g) for the batch-statistics normalisation: the closed form
    bn.train()
    x = rng.normal(size=(6, 2))
    g = rng.normal(size=(6, 2))
    t = so.tensor(x, dtype=so.float64, requires_grad=True)
    (bn(t) * so.tensor(g, dtype=so.float64)).sum().backward()
    n = 6
    xhat = (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-5)
    want = (1 / np.sqrt(x.var(0) + 1e-5)) / n * (n * g - g.sum(0) - xhat * (g * xhat).sum(0))
    np.testing.assert_allclose(t.grad.numpy(), want, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(bn.weight.grad.numpy(), (g * xhat).sum(0), rtol=1e-10)


def test_batchnorm_options_and_errors():
    bn = nn.BatchNorm1d(3, affine=False, track_running_stats=False)
    assert bn.weight is None and bn.running_mean is None
    x = so.randn(4, 3)
    bn.eval()  # no running statistics: the batch's are used even in eval
    np.testing.assert_allclose(bn(x).numpy().mean(0), np.zeros(3), atol=1e-5)
    with pytest.raises(ValueError, match="expected 4D input"):
        nn.BatchNorm2d(3)(so.randn(2, 3))
    with pytest.raises(ValueError, match="Expected more than 1 value per channel"):
        nn.BatchNorm1d(3)(so.randn(1, 3))


def test_group_norm():
    rng = np.random.default_rng(7)
    x = rng.normal(size=(3, 6, 2, 2))
    gn = nn.GroupNorm(3, 6).double()
    got = gn(so.tensor(x, dtype=so.float64)).detach().numpy()
    xg = x.reshape(3, 3, -1)
    want = ((xg - xg.mean(-1, keepdims=True)) / np.sqrt(xg.var(-1, keepdims=True) + 1e-5)).reshape(x.shape)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    assert repr(gn) == "GroupNorm(3, 6, eps=1e-05, affine=True)"
    with pytest.raises(ValueError, match="divisible by num_groups"):
        nn.GroupNorm(4, 6)
    with pytest.raises(RuntimeError, match="divisible by num_groups"):
        so.nn.functional.group_norm(so.randn(2, 6), 4)
