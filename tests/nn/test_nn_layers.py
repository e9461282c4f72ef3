"""nn layers, functional, init, and an end-to-end MLP trained against a NumPy float64 reference."""
import math
import warnings
from collections import OrderedDict
from copy import deepcopy

import numpy as np
import pytest

import shardopt
from shardopt import nn
from shardopt.nn import functional as F
from shardopt.nn import init

def T(a, dtype=np.float64):
    return shardopt.from_numpy(np.array(a, dtype=dtype))


def N(t):
    return np.array(t.detach().numpy(), copy=True)


# ------------------------------------------------------------------ init


def test_calculate_gain():
    assert init.calculate_gain("linear") == 1 and init.calculate_gain("sigmoid") == 1
    assert init.calculate_gain("tanh") == 5.0 / 3
    assert init.calculate_gain("relu") == math.sqrt(2.0)
    assert init.calculate_gain("leaky_relu") == math.sqrt(2.0 / (1 + 0.01 ** 2))
    assert init.calculate_gain("leaky_relu", math.sqrt(5)) == math.sqrt(2.0 / 6)
    assert init.calculate_gain("selu") == 0.75
    with pytest.raises(ValueError, match="Unsupported nonlinearity foo"):
        init.calculate_gain("foo")
    with pytest.raises(ValueError, match="negative_slope True not a valid number"):
        init.calculate_gain("leaky_relu", True)


def test_fan_computation():
    w = shardopt.empty(6, 4, 3, 2)
    assert init._calculate_fan_in_and_fan_out(w) == (24, 36)
    with pytest.raises(ValueError, match="Fan in and fan out can not be computed for tensor "
                                         "with fewer than 2 dimensions"):
        init._calculate_fan_in_and_fan_out(shardopt.empty(5))
    with pytest.raises(ValueError, match="Mode fan_avg not supported"):
        init.kaiming_uniform_(shardopt.empty(2, 2), mode="fan_avg")


@pytest.mark.parametrize("shape", [(300, 200), (64, 32, 3)])
def test_kaiming_and_xavier_bounds_and_spread(shape):
    w = shardopt.empty(*shape)
    fan_in, fan_out = init._calculate_fan_in_and_fan_out(w)
    init.kaiming_uniform_(w, a=math.sqrt(5))
    bound = math.sqrt(3.0) * math.sqrt(2.0 / 6) / math.sqrt(fan_in)
    a = N(w)
    assert a.min() >= -bound and a.max() <= bound
    assert a.max() > 0.95 * bound and a.min() < -0.95 * bound  # fills the interval
    assert abs(a.std() - bound / math.sqrt(3)) < 0.05 * bound
    init.kaiming_uniform_(w, mode="fan_out", nonlinearity="relu")
    bound = math.sqrt(3.0) * math.sqrt(2.0) / math.sqrt(fan_out)
    assert np.abs(N(w)).max() <= bound
    init.xavier_uniform_(w, gain=2.0)
    bound = 2.0 * math.sqrt(6.0 / (fan_in + fan_out))
    assert np.abs(N(w)).max() <= bound and np.abs(N(w)).max() > 0.95 * bound


def test_uniform_normal_constant_zeros_ones():
    w = shardopt.empty(20000)
    assert init.uniform_(w, -2.0, 3.0) is w
    a = N(w)
    assert a.min() >= -2.0 and a.max() <= 3.0 and abs(a.mean() - 0.5) < 0.05
    init.normal_(w, 1.0, 0.5)
    a = N(w)
    assert abs(a.mean() - 1.0) < 0.02 and abs(a.std() - 0.5) < 0.02
    init.constant_(w, 0.25)
    assert np.all(N(w) == 0.25)
    init.zeros_(w)
    assert np.all(N(w) == 0)
    init.ones_(w)
    assert np.all(N(w) == 1)
    init.kaiming_normal_(shardopt.empty(3, 4))
    init.xavier_normal_(shardopt.empty(3, 4))


def test_init_on_parameter_is_not_recorded_and_uses_the_seeded_rng():
    p = nn.Parameter(shardopt.empty(5, 5))
    init.uniform_(p)
    assert p.is_leaf and p.grad_fn is None and p.requires_grad
    shardopt.manual_seed(3)
    a = N(init.kaiming_uniform_(shardopt.empty(4, 4)))
    shardopt.manual_seed(3)
    b = N(init.kaiming_uniform_(shardopt.empty(4, 4)))
    np.testing.assert_array_equal(a, b)
    g = shardopt.Generator().manual_seed(5)
    c = N(init.uniform_(shardopt.empty(4), generator=g))
    g.manual_seed(5)
    np.testing.assert_array_equal(c, N(init.uniform_(shardopt.empty(4), generator=g)))


def test_zero_element_init_warns():
    with pytest.warns(UserWarning, match="Initializing zero-element tensors is a no-op"):
        init.kaiming_uniform_(shardopt.empty(0, 3))


# ------------------------------------------------------------------ Linear


def test_linear_init_statistics_and_shapes():
    shardopt.manual_seed(0)
    m = nn.Linear(400, 300)
    assert tuple(m.weight.shape) == (300, 400) and tuple(m.bias.shape) == (300,)
    assert m.weight.dtype == shardopt.float32
    bound = 1.0 / math.sqrt(400)  # kaiming_uniform(a=sqrt(5)) gives the same bound
    w, b = N(m.weight), N(m.bias)
    assert np.abs(w).max() <= bound and np.abs(b).max() <= bound
    assert np.abs(w).max() > 0.99 * bound
    assert abs(w.std() - bound / math.sqrt(3)) < 0.02 * bound
    assert abs(w.mean()) < 0.01 * bound
    m2 = nn.Linear(3, 2, bias=False, dtype=shardopt.float64)
    assert m2.bias is None and "bias" in m2._parameters and m2.weight.dtype == shardopt.float64
    assert [n for n, _ in m2.named_parameters()] == ["weight"]


def test_linear_same_seed_same_weights():
    shardopt.manual_seed(0)
    a = nn.Linear(17, 12)
    shardopt.manual_seed(0)
    b = nn.Linear(17, 12)
    np.testing.assert_array_equal(N(a.weight), N(b.weight))
    np.testing.assert_array_equal(N(a.bias), N(b.bias))


def test_linear_forward_matches_numpy():
    m = nn.Linear(5, 3, dtype=shardopt.float64)
    x = np.random.default_rng(0).standard_normal((2, 4, 5))
    out = m(T(x))
    np.testing.assert_allclose(N(out), x @ N(m.weight).T + N(m.bias), rtol=1e-12)
    with pytest.raises(RuntimeError):
        m(T(np.ones((2, 4))))


# ------------------------------------------------------------------ activations, loss


def test_gelu_relu_modules():
    x = np.linspace(-3, 3, 13)
    from math import erf
    ref = np.array([v * 0.5 * (1 + erf(v / math.sqrt(2))) for v in x])
    np.testing.assert_allclose(N(nn.GELU()(T(x))), ref, rtol=1e-12, atol=1e-15)
    tanh_ref = 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))
    np.testing.assert_allclose(N(nn.GELU("tanh")(T(x))), tanh_ref, rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(N(nn.ReLU()(T(x))), np.maximum(x, 0))
    with pytest.raises(RuntimeError, match="approximate argument must be either none or tanh"):
        F.gelu(T(x), approximate="fast")


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse_loss(reduction):
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    x = T(a)
    x.requires_grad_()
    loss = nn.MSELoss(reduction=reduction)(x, T(b))
    ref = (a - b) ** 2
    ref = ref.mean() if reduction == "mean" else ref.sum() if reduction == "sum" else ref
    np.testing.assert_allclose(N(loss), ref, rtol=1e-12)
    loss.sum().backward()
    scale = 1.0 / a.size if reduction == "mean" else 1.0
    np.testing.assert_allclose(N(x.grad), 2 * (a - b) * scale, rtol=1e-12)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_mse_loss_one_node_grads_broadcast_and_target(reduction):
    # mean/sum record a single MseLossBackward0 node: check both inputs' gradients, a
    # broadcast target, mixed dtypes, and that the loss is the only recorded op
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((5, 1)), rng.standard_normal((5, 4))
    x = T(a).requires_grad_()
    y = T(b, np.float32).requires_grad_()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loss = F.mse_loss(x, y, reduction=reduction)
    assert type(loss.grad_fn).__name__ == "MseLossBackward0"
    diff = a - b.astype(np.float32).astype(np.float64)
    ref = (diff ** 2).mean() if reduction == "mean" else (diff ** 2).sum()
    np.testing.assert_allclose(N(loss), ref, rtol=1e-6)
    (loss * 3).backward()
    scale = 3 * 2 / diff.size if reduction == "mean" else 3 * 2
    np.testing.assert_allclose(N(x.grad), (scale * diff).sum(axis=1, keepdims=True), rtol=1e-6)
    assert y.grad.dtype == shardopt.float32
    np.testing.assert_allclose(N(y.grad), -scale * diff, rtol=1e-5)
    torch = pytest.importorskip("torch")
    tx = torch.tensor(a, requires_grad=True)
    ty = torch.tensor(b, dtype=torch.float32, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        (torch.nn.functional.mse_loss(tx, ty, reduction=reduction) * 3).backward()
    np.testing.assert_allclose(N(x.grad), tx.grad.numpy(), rtol=1e-6)
    np.testing.assert_allclose(N(y.grad), ty.grad.numpy(), rtol=1e-5)


def test_mse_loss_errors_and_broadcast_warning():
    with pytest.raises(ValueError, match="avg is not a valid value for reduction"):
        F.mse_loss(T([1.0]), T([1.0]), reduction="avg")
    with pytest.warns(UserWarning, match="Using a target size"):
        F.mse_loss(T(np.ones((3, 1))), T(np.ones(3)))


# ------------------------------------------------------------------ Sequential


def test_sequential():
    l1, act, l2 = nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)
    s = nn.Sequential(l1, act, l2)
    assert len(s) == 3 and s[0] is l1 and s[-1] is l2 and list(s) == [l1, act, l2]
    sub = s[1:]
    assert isinstance(sub, nn.Sequential) and list(sub) == [act, l2]
    with pytest.raises(IndexError, match="index 3 is out of range"):
        s[3]
    x = shardopt.rand(5, 3)
    np.testing.assert_allclose(N(s(x)), N(l2(act(l1(x)))), rtol=1e-6)
    s.append(nn.GELU())
    assert len(s) == 4 and [n for n, _ in s.named_children()] == ["0", "1", "2", "3"]
    del s[1]
    assert [n for n, _ in s.named_children()] == ["0", "1", "2"] and s[1] is l2
    s[0] = nn.Linear(3, 4)
    assert s[0] is not l1
    named = nn.Sequential(OrderedDict([("inp", nn.Linear(2, 2)), ("act", nn.ReLU())]))
    assert [n for n, _ in named.named_parameters()] == ["inp.weight", "inp.bias"]
    s.insert(0, nn.Identity())
    assert isinstance(s[0], nn.Identity) and len(s) == 4


# ------------------------------------------------------------------ seed scenario pieces


class MyShardedModel(nn.Module):
    def __init__(self):
        super().__init__()
        shardopt.manual_seed(0)
        self.param = nn.Parameter(shardopt.rand(5, 10))
        self.sharded_param = nn.Parameter(shardopt.rand(5, 10))

    def forward(self, input):
        return self.sharded_param + self.param + input


class MyShardedLinear(nn.Module):
    def __init__(self):
        super().__init__()
        shardopt.manual_seed(0)
        self.linear1 = nn.Linear(17, 12)
        self.linear2 = nn.Linear(12, 29)
        self.gelu = nn.GELU()

    def forward(self, inp):
        return self.linear2(self.gelu(self.linear1(inp)))


def test_seed_models_run_forward_backward_and_deepcopy():
    local = MyShardedModel()
    other = MyShardedModel()
    np.testing.assert_array_equal(N(local.param), N(other.param))
    params = dict(local.named_parameters())
    assert list(params) == ["param", "sharded_param"]
    before = deepcopy(params)
    assert all(type(v) is nn.Parameter for v in before.values())
    inp = shardopt.rand([5, 10]).requires_grad_()
    local(inp).sum().backward()
    for p in (local.param, local.sharded_param, inp):
        np.testing.assert_array_equal(N(p.grad), np.ones((5, 10), np.float32))
    with shardopt.no_grad():
        for p in local.parameters():
            p.add_(p.grad, alpha=-0.1)
    for k, v in before.items():
        np.testing.assert_allclose(N(params[k]), N(v) - 0.1, rtol=1e-6)
        assert v.grad is None

    lin = MyShardedLinear()
    assert [n for n, _ in lin.named_parameters()] == \
        ["linear1.weight", "linear1.bias", "linear2.weight", "linear2.bias"]
    out = lin(shardopt.rand(4, 17))
    assert tuple(out.shape) == (4, 29)
    out.sum().backward()
    assert all(p.grad is not None and p.grad.shape == p.shape for p in lin.parameters())


# ------------------------------------------------------------------ end to end


def test_mlp_training_matches_numpy_float64():
    rng = np.random.default_rng(42)
    X = rng.standard_normal((16, 6))
    Y = rng.standard_normal((16, 2))
    shardopt.manual_seed(1)
    model = nn.Sequential(nn.Linear(6, 8), nn.GELU(), nn.Linear(8, 2)).double()
    loss_fn = nn.MSELoss()
    W1, b1 = N(model[0].weight), N(model[0].bias)
    W2, b2 = N(model[2].weight), N(model[2].bias)
    lr = 0.1
    from math import erf
    verf = np.vectorize(erf)

    def np_step(W1, b1, W2, b2):
        h = X @ W1.T + b1
        cdf = 0.5 * (1 + verf(h / math.sqrt(2)))
        a = h * cdf
        out = a @ W2.T + b2
        loss = ((out - Y) ** 2).mean()
        d_out = 2 * (out - Y) / out.size
        gW2 = d_out.T @ a
        gb2 = d_out.sum(0)
        d_a = d_out @ W2
        d_h = d_a * (cdf + h * np.exp(-h * h / 2) / math.sqrt(2 * math.pi))
        gW1 = d_h.T @ X
        gb1 = d_h.sum(0)
        return loss, (W1 - lr * gW1, b1 - lr * gb1, W2 - lr * gW2, b2 - lr * gb2)

    x, y = T(X), T(Y)
    for _ in range(5):
        model.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        with shardopt.no_grad():
            for p in model.parameters():
                p.sub_(p.grad * lr)
        ref_loss, (W1, b1, W2, b2) = np_step(W1, b1, W2, b2)
        np.testing.assert_allclose(N(loss), ref_loss, rtol=1e-10)
    np.testing.assert_allclose(N(model[0].weight), W1, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(N(model[0].bias), b1, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(N(model[2].weight), W2, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(N(model[2].bias), b2, rtol=1e-9, atol=1e-12)


def test_mlp_float32_training_reduces_loss():
    shardopt.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 1))
    x = shardopt.randn(64, 4)
    y = (x * x).sum(1, keepdim=True)
    losses = []
    for _ in range(30):
        model.zero_grad()
        loss = F.mse_loss(model(x), y)
        loss.backward()
        losses.append(float(loss.item()))
        with shardopt.no_grad():
            for p in model.parameters():
                p.add_(p.grad, alpha=-0.02)
    assert losses[-1] < 0.5 * losses[0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.eval()(x)
