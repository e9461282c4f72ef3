"""ModuleList / ModuleDict / ParameterList / ParameterDict, the activation modules, Flatten,
F.one_hot / normalize / pad / silu against NumPy and torch, and a small language-model
step (Embedding, LayerNorm, Dropout, Linear, cross-entropy) that trains."""
import numpy as np
import pytest

import shardopt
from shardopt import nn
from shardopt.nn import functional as F
from nnutil import N, T, check_grads, torch_or_skip


def test_module_list():
    layers = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)])
    layers.append(nn.ReLU())
    assert len(layers) == 4 and isinstance(layers[-1], nn.ReLU)
    assert repr(layers).splitlines()[1] == \
        "  (0-2): 3 x Linear(in_features=2, out_features=2, bias=True)"
    assert [k for k, _ in layers.named_parameters()][:2] == ["0.weight", "0.bias"]
    del layers[0]
    assert list(layers._modules) == ["0", "1", "2"] and len(layers) == 3
    layers.insert(0, nn.Tanh())
    assert isinstance(layers[0], nn.Tanh) and len(layers) == 4
    assert isinstance(layers[1:], nn.ModuleList) and len(layers[1:]) == 3
    layers += [nn.Sigmoid()]
    assert isinstance(layers[4], nn.Sigmoid)
    assert isinstance(layers.pop(4), nn.Sigmoid) and len(layers) == 4
    with pytest.raises(IndexError, match="index 9 is out of range"):
        layers[9]
    with pytest.raises(TypeError, match="ModuleList.extend should be called with an iterable"):
        layers.extend(3)
    assert repr(nn.ModuleList()) == "ModuleList()"


def test_module_dict():
    d = nn.ModuleDict({"a": nn.Linear(3, 1), "b": nn.ReLU()})
    d["c"] = nn.Tanh()
    assert list(d) == ["a", "b", "c"] and "b" in d and len(d) == 3
    assert list(d.state_dict()) == ["a.weight", "a.bias"]
    assert isinstance(d.pop("b"), nn.ReLU) and list(d.keys()) == ["a", "c"]
    d.update([("e", nn.SiLU())])
    assert list(d) == ["a", "c", "e"]
    assert repr(nn.ModuleDict({"x": nn.ReLU()})) == "ModuleDict(\n  (x): ReLU()\n)"
    with pytest.raises(ValueError, match="has length 3; 2 is required"):
        d.update([("a", nn.ReLU(), 1)])


def test_parameter_list_and_dict():
    pl = nn.ParameterList([nn.Parameter(shardopt.ones(2, 3)), shardopt.zeros(2)])
    assert isinstance(pl[1], nn.Parameter) and pl[1].requires_grad
    assert list(pl.state_dict()) == ["0", "1"] and len(pl) == 2
    assert repr(pl) == ("ParameterList(\n    (0): Parameter containing: [shardopt.float32 of size "
                        "2x3]\n    (1): Parameter containing: [shardopt.float32 of size 2]\n)")
    pl.append(shardopt.ones(4))
    assert len(list(pl.parameters())) == 3
    pd = nn.ParameterDict({"w": shardopt.ones(2)})
    pd["b"] = nn.Parameter(shardopt.zeros(1))
    assert list(pd.state_dict()) == ["w", "b"] and "w" in pd and isinstance(pd["w"], nn.Parameter)
    assert [k for k, _ in pd.named_parameters()] == ["w", "b"]
    assert repr(nn.ParameterDict({"x": shardopt.ones(2)})) == \
        "ParameterDict(  (x): Parameter containing: [shardopt.FloatTensor of size 2])"
    del pd["w"]
    assert list(pd.keys()) == ["b"]
    m = nn.Module()
    m.plist = pl
    assert [k for k, _ in m.named_parameters()] == ["plist.0", "plist.1", "plist.2"]
    with pytest.raises(RuntimeError, match="ParameterList should not be called."):
        pl()


def test_activation_modules_and_flatten():
    x = np.random.default_rng(0).standard_normal((2, 3, 4))
    t = T(x)
    np.testing.assert_allclose(N(nn.Tanh()(t)), np.tanh(x), rtol=1e-14)
    np.testing.assert_allclose(N(nn.Sigmoid()(t)), 1 / (1 + np.exp(-x)), rtol=1e-14)
    np.testing.assert_allclose(N(nn.SiLU()(t)), x / (1 + np.exp(-x)), rtol=1e-14)
    np.testing.assert_allclose(N(nn.Softmax(dim=1)(t)), np.exp(x) / np.exp(x).sum(1, keepdims=True),
                               rtol=1e-13)
    np.testing.assert_allclose(N(nn.LogSoftmax(dim=-1)(t)),
                               x - np.log(np.exp(x).sum(-1, keepdims=True)), rtol=1e-13)
    assert tuple(nn.Flatten()(t).shape) == (2, 12)
    assert tuple(nn.Flatten(0, 1)(t).shape) == (6, 4)
    assert repr(nn.Flatten()) == "Flatten(start_dim=1, end_dim=-1)"
    assert repr(nn.Softmax()) == "Softmax(dim=None)" and repr(nn.LogSoftmax(dim=1)) == \
        "LogSoftmax(dim=1)"
    assert repr(nn.SiLU(inplace=True)) == "SiLU(inplace=True)" and repr(nn.Tanh()) == "Tanh()"
    check_grads(lambda a: F.silu(a), [x], [0])


def test_one_hot():
    t = np.array([[0, 3], [2, 1]])
    got = F.one_hot(T(t))
    assert got.dtype == shardopt.int64 and tuple(got.shape) == (2, 2, 4)
    np.testing.assert_array_equal(N(got), np.eye(4, dtype=np.int64)[t])
    np.testing.assert_array_equal(N(F.one_hot(T(t), 6)), np.eye(6, dtype=np.int64)[t])
    with pytest.raises(RuntimeError, match="Class values must be smaller than num_classes."):
        F.one_hot(T(np.array([0, 3])), 2)
    with pytest.raises(RuntimeError, match="Class values must be non-negative."):
        F.one_hot(T(np.array([0, -3])), 5)
    with pytest.raises(RuntimeError, match="one_hot is only applicable to index tensor of type "
                                           "LongTensor."):
        F.one_hot(T(np.array([0.0, 3.0])), 5)
    with pytest.raises(RuntimeError, match="Can not infer total number of classes from empty "
                                           "tensor."):
        F.one_hot(T(np.zeros(0, np.int64)))


def test_normalize():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 5))
    x[1] = 0.0  # a zero row: eps keeps it finite
    for p, dim in ((2.0, 1), (1.0, 0), (3.0, 1)):
        n = (np.abs(x) ** p).sum(axis=dim, keepdims=True) ** (1 / p)
        np.testing.assert_allclose(N(F.normalize(T(x), p, dim)), x / np.maximum(n, 1e-12),
                                   rtol=1e-12)
    y = rng.standard_normal((4, 3))
    for p in (2.0, 1.0, 3.0):
        check_grads(lambda a: F.normalize(a, p, 1), [y], [0])
    a = T(x, requires_grad=True)
    F.normalize(a).sum().backward()
    assert np.isfinite(N(a.grad)).all() and (N(a.grad)[1] == 1e12).all()


def test_pad_constant():
    x = np.arange(24.0).reshape(2, 3, 4)
    got = F.pad(T(x), (1, 2), value=-1.0)
    np.testing.assert_array_equal(N(got), np.pad(x, ((0, 0), (0, 0), (1, 2)), constant_values=-1))
    got = F.pad(T(x), (0, 1, 2, 0, 1, 1))
    np.testing.assert_array_equal(N(got), np.pad(x, ((1, 1), (2, 0), (0, 1))))
    got = F.pad(T(x), (-1, 1, 0, -2))  # negative pads crop
    np.testing.assert_array_equal(N(got), np.pad(x[:, :1, 1:], ((0, 0), (0, 0), (0, 1))))
    check_grads(lambda a: F.pad(a, (1, -1, 2, 0)), [x], [0])
    with pytest.raises(RuntimeError, match="Padding length must be divisible by 2"):
        F.pad(T(x), (1,))
    with pytest.raises(RuntimeError, match="Padding length should be less than or equal to two "
                                           "times the input dimension but got padding length 8 "
                                           "and input of dimension 3"):
        F.pad(T(x), (1,) * 8)
    with pytest.raises(NotImplementedError, match="mode='reflect'"):
        F.pad(T(x), (1, 1), mode="reflect")


def test_against_torch_misc():
    torch = torch_or_skip()
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 4, 5)).astype(np.float32)
    for fn, args in ((F.normalize, (2.0, 2)), (F.pad, ((1, 2, 0, 1), "constant", 0.5))):
        a, b = T(x, requires_grad=True), torch.tensor(x, requires_grad=True)
        oa = fn(a, *args)
        ob = getattr(torch.nn.functional, fn.__name__)(b, *args)
        np.testing.assert_allclose(N(oa), ob.detach().numpy(), rtol=1e-6, atol=1e-7)
        g = rng.standard_normal(tuple(ob.shape)).astype(np.float32)
        oa.backward(T(g))
        ob.backward(torch.tensor(g))
        np.testing.assert_allclose(N(a.grad), b.grad.numpy(), rtol=1e-5, atol=1e-6)


class TinyLM(nn.Module):
    def __init__(self, vocab, dim):
        super().__init__()
        self.emb = nn.Embedding(vocab, dim)
        self.blocks = nn.ModuleList([nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim),
                                                   nn.GELU(), nn.Dropout(0.1))
                                     for _ in range(2)])
        self.norm = nn.RMSNorm(dim)
        self.head = nn.Linear(dim, vocab)

    def forward(self, idx):
        h = self.emb(idx)
        for blk in self.blocks:
            h = h + blk(h)
        return self.head(self.norm(h))


def test_tiny_language_model_trains():
    shardopt.manual_seed(0)
    vocab, dim = 11, 16
    model = TinyLM(vocab, dim)
    opt = shardopt.optim.AdamW(model.parameters(), lr=1e-2)
    seq = np.arange(40) % vocab  # a deterministic pattern: next = current + 1
    x, y = T(seq[:-1].reshape(3, 13)), T(seq[1:].reshape(3, 13))
    losses = []
    for _ in range(60):
        logits = model(x)
        loss = F.cross_entropy(logits.reshape(-1, vocab), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[0] > 2.0 and losses[-1] < 0.2 * losses[0]
    model.eval()
    pred = N(model(x)).argmax(-1)
    assert (pred == N(y)).mean() > 0.9
    sd = model.state_dict()
    assert "blocks.0.0.weight" in sd and "norm.weight" in sd and "emb.weight" in sd
