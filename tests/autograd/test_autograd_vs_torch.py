"""Extra comparison with PyTorch (skipped when torch is not importable; never a dependency):
gradients of the same float64 graphs, torch's error texts, and nn.Module naming/state-dict
behaviour."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

import shardopt  # noqa: E402
from shardopt import nn  # noqa: E402
from _ag_helpers import N, T  # noqa: E402

rng = np.random.default_rng(99)


def _both(arrays):
    so = [T(a, True) for a in arrays]
    th = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in arrays]
    return so, th


GRAPHS = [
    ("broadcast arithmetic", [(3, 4), (4,), (3, 1)],
     lambda m, x, y, z: ((x * y - z) / (y * y + 1.0) + 2.0 ** z).sum()),
    ("matmul batch", [(2, 3, 4), (4, 5), (5,)],
     lambda m, x, y, z: ((x @ y) @ z).pow(2).mean()),
    ("linear gelu mse", [(6, 4), (3, 4), (3,)],
     lambda m, x, w, b: m.mse(m.gelu(m.linear(x, w, b)), m.zeros(6, 3))),
    ("views", [(2, 3, 4), (4, 3), (1,)],
     lambda m, x, y, z: (x.transpose(1, 2)[:, :2, ::2].reshape(2, -1).sum(0) *
                         y.t().flatten()[:4].unsqueeze(0).expand(2, 4).sum(0)).sum() * z.sum()),
    ("cat relu exp", [(2, 3), (4, 3), (3,)],
     lambda m, x, y, z: (m.cat([x, y], 0).relu() * z).exp().mean(1).sum()),
    ("reductions", [(3, 4, 5), (4, 1), (5,)],
     lambda m, x, y, z: ((x.sum(2, keepdim=True) * y).mean((0, 1)) + (x * z).sum((-1, 0)).mean())),
]


class _SO:
    linear = staticmethod(shardopt.nn.functional.linear)
    gelu = staticmethod(shardopt.nn.functional.gelu)
    mse = staticmethod(shardopt.nn.functional.mse_loss)
    cat = staticmethod(shardopt.cat)

    @staticmethod
    def zeros(*s):
        return shardopt.zeros(*s, dtype=shardopt.float64)


class _TH:
    linear = staticmethod(torch.nn.functional.linear)
    gelu = staticmethod(torch.nn.functional.gelu)
    mse = staticmethod(torch.nn.functional.mse_loss)
    cat = staticmethod(torch.cat)

    @staticmethod
    def zeros(*s):
        return torch.zeros(*s, dtype=torch.float64)


@pytest.mark.parametrize("name,shapes,f", GRAPHS, ids=[g[0] for g in GRAPHS])
def test_gradients_match_torch(name, shapes, f):
    arrays = [rng.uniform(-1, 1, size=s) for s in shapes]
    so, th = _both(arrays)
    f(_SO, *so).backward()
    f(_TH, *th).backward()
    for a, b in zip(so, th):
        np.testing.assert_allclose(N(a.grad), b.grad.numpy(), rtol=1e-10, atol=1e-12)


def _messages(fn_so, fn_th):
    with pytest.raises(RuntimeError) as e1:
        fn_so()
    with pytest.raises(RuntimeError) as e2:
        fn_th()
    return str(e1.value), str(e2.value)


def test_error_messages_match_torch():
    def twice(m):
        def run():
            x = m.ones(3, dtype=m.float64, requires_grad=True)
            y = (x * x).sum()
            y.backward()
            y.backward()
        return run

    a, b = _messages(twice(shardopt), twice(torch))
    assert a.split(".")[0] == b.split(".")[0]

    def inplace(m):
        def run():
            x = m.ones(3, 4, dtype=m.float32, requires_grad=True)
            y = x * 2
            z = y * y
            with m.no_grad():
                y.add_(1)
            z.sum().backward()
        return run

    a, b = _messages(inplace(shardopt), inplace(torch))
    cut = "instead."
    assert a[:a.index(cut)] == b[:b.index(cut)].replace("torch.", "shardopt.")

    def leaf(m):
        def run():
            m.ones(3, requires_grad=True).add_(1)
        return run

    a, b = _messages(leaf(shardopt), leaf(torch))
    assert a == b

    def nonscalar(m):
        def run():
            (m.ones(3, requires_grad=True) * 2).backward()
        return run

    a, b = _messages(nonscalar(shardopt), nonscalar(torch))
    assert a == b

    def nograd(m):
        def run():
            m.ones(3).sum().backward()
        return run

    a, b = _messages(nograd(shardopt), nograd(torch))
    assert a == b


def _net(m):
    class Net(m.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = m.nn.Linear(4, 3)
            self.shared = self.fc1
            self.seq = m.nn.Sequential(m.nn.Linear(3, 3), m.nn.GELU(), m.nn.ReLU())
            self.w = m.nn.Parameter(m.ones(2))
            self.register_buffer("b", m.zeros(1))
            self.register_buffer("np", m.zeros(1), persistent=False)
    return Net()


def test_module_naming_state_dict_and_repr_match_torch():
    a, b = _net(shardopt), _net(torch)
    assert [n for n, _ in a.named_parameters()] == [n for n, _ in b.named_parameters()]
    assert [n for n, _ in a.named_parameters(remove_duplicate=False)] == \
        [n for n, _ in b.named_parameters(remove_duplicate=False)]
    assert [n for n, _ in a.named_modules(prefix="x")] == \
        [n for n, _ in b.named_modules(prefix="x")]
    assert [n for n, _ in a.named_buffers()] == [n for n, _ in b.named_buffers()]
    assert list(a.state_dict()) == list(b.state_dict())
    assert dict(a.state_dict()._metadata) == dict(b.state_dict()._metadata)
    assert repr(a) == repr(b)

    sa, sb = a.state_dict(), b.state_dict()
    for sd, m in ((sa, shardopt), (sb, torch)):
        del sd["seq.0.bias"]
        sd["seq.0.extra"] = m.zeros(1)
        sd["fc1.weight"] = m.zeros(2, 2)
        sd["zzz"] = m.zeros(1)
    with pytest.raises(RuntimeError) as e1:
        a.load_state_dict(sa)
    with pytest.raises(RuntimeError) as e2:
        b.load_state_dict(sb)
    assert str(e1.value) == str(e2.value).replace("torch.Size", "shardopt.Size")
    del sa["fc1.weight"], sb["fc1.weight"]
    ra, rb = a.load_state_dict(sa, strict=False), b.load_state_dict(sb, strict=False)
    assert ra.missing_keys == rb.missing_keys and ra.unexpected_keys == rb.unexpected_keys


def test_register_errors_match_torch():
    for setup in (lambda m, mod: mod.register_parameter("x", m.nn.Parameter(m.ones(1))),
                  lambda m, mod: mod.register_buffer("x", m.ones(1)),
                  lambda m, mod: mod.add_module("x", m.nn.ReLU())):
        msgs = []
        for m in (shardopt, torch):
            mod = m.nn.Module()
            mod.x = 1
            with pytest.raises(KeyError) as e:
                setup(m, mod)
            msgs.append(str(e.value))
        assert msgs[0] == msgs[1]
    msgs = []
    for m in (shardopt, torch):
        with pytest.raises(TypeError) as e:
            m.nn.Module().register_parameter("w", m.ones(1))
        msgs.append(str(e.value).replace("torch.FloatTensor", "shardopt.FloatTensor"))
    assert msgs[0] == msgs[1]
