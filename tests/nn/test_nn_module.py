"""nn.Module behaviour: registration, naming, iteration, modes, zero_grad, _apply/to,
state_dict/load_state_dict and the state-dict hooks, repr, Parameter."""
import copy
import pickle
from collections import OrderedDict

import numpy as np
import pytest

import shardopt
from shardopt import nn

def T(a):
    return shardopt.from_numpy(np.array(a, dtype=np.float32))


def N(t):
    return np.array(t.detach().numpy(), copy=True)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(4, 3)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(3, 2, bias=False)
        self.register_buffer("steps", T(np.zeros(1)))
        self.register_buffer("scratch", T(np.zeros(2)), persistent=False)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


# ------------------------------------------------------------------ Parameter


def test_parameter_basics():
    data = T(np.arange(6).reshape(2, 3))
    p = nn.Parameter(data)
    assert isinstance(p, nn.Parameter) and isinstance(p, shardopt.Tensor)
    assert p.requires_grad and p.is_leaf
    assert p.data_ptr() == data.data_ptr()  # an alias, like torch
    assert not nn.Parameter(data, requires_grad=False).requires_grad
    assert repr(p).startswith("Parameter containing:\n")
    assert type(p.detach()) is shardopt.Tensor
    assert tuple(nn.Parameter().shape) == (0,)
    with pytest.raises(TypeError):
        nn.Parameter([1.0, 2.0])


def test_parameter_deepcopy_and_pickle_keep_the_class():
    p = nn.Parameter(T([[1.0, 2.0]]))
    q = copy.deepcopy(p)
    assert type(q) is nn.Parameter and q.requires_grad and q.data_ptr() != p.data_ptr()
    np.testing.assert_array_equal(N(q), N(p))
    d = copy.deepcopy({"w": p, "alias": p})
    assert d["w"] is d["alias"] and type(d["w"]) is nn.Parameter
    r = pickle.loads(pickle.dumps(p))
    assert type(r) is nn.Parameter and r.requires_grad
    np.testing.assert_array_equal(N(r), N(p))


class _FakeSharded:
    """Stands in for the sharding issue's ShardedTensor: not a Tensor, opts in via
    _as_parameter and implements the Module._apply / state_dict protocol."""

    def __init__(self, local, moved=0):
        self.local = local
        self.moved = moved
        self.shape = local.shape

    def _as_parameter(self, requires_grad):
        self.local.requires_grad_(requires_grad)
        self._is_param = True
        return self

    @property
    def requires_grad(self):
        return self.local.requires_grad

    def float(self):
        return _FakeSharded(self.local.detach().float(), self.moved + 1)

    def is_floating_point(self):
        return True

    def detach(self):
        return self

    def copy_(self, other):
        self.local.copy_(other.local)
        return self


def test_parameter_extension_point_for_tensor_like_objects():
    st = _FakeSharded(T(np.ones((2, 2))))
    p = nn.Parameter(st)
    assert p is st and p._is_param and isinstance(p, nn.Parameter)
    m = nn.Linear(2, 2)
    m.register_parameter("weight", nn.Parameter(st))
    assert dict(m.named_parameters())["weight"] is st
    m.float()  # _apply: fn(st) then Parameter(result) -> _as_parameter
    w = m._parameters["weight"]
    assert isinstance(w, _FakeSharded) and w.moved == 1 and w._is_param
    assert m.state_dict()["weight"] is w
    m.zero_grad()  # no .grad attribute on the tensor-like parameter: skipped
    assert [n for n, _ in m.named_parameters()] == ["weight", "bias"]


# ------------------------------------------------------------------ registration


def test_setattr_registers_and_moves_between_dicts():
    m = nn.Module()
    p = nn.Parameter(T([1.0]))
    m.a = p
    assert m._parameters["a"] is p and m.a is p
    m.a = None  # parameter slot set to None
    assert m._parameters["a"] is None and m.a is None
    sub = nn.Linear(1, 1)
    m.b = sub
    assert m._modules["b"] is sub
    m.b = nn.Parameter(T([2.0]))  # a Parameter replaces the module
    assert "b" not in m._modules and "b" in m._parameters
    m.c = 3
    assert m.__dict__["c"] == 3
    m.c = nn.Linear(1, 1)  # module replaces the plain attribute
    assert "c" not in m.__dict__ and "c" in m._modules
    with pytest.raises(TypeError, match="cannot assign 'int' as parameter 'b' "
                                        r"\(torch.nn.Parameter or None expected\)"):
        m.b = 5
    with pytest.raises(TypeError, match="cannot assign 'str' as child module 'c'"):
        m.c = "x"
    m.register_buffer("buf", T([0.0]))
    with pytest.raises(TypeError, match="cannot assign 'int' as buffer 'buf'"):
        m.buf = 1
    m.buf = T([3.0])
    assert N(m._buffers["buf"])[0] == 3.0
    with pytest.raises(AttributeError, match="'Module' object has no attribute 'nope'"):
        m.nope


def test_delattr():
    m = Net()
    del m.fc1
    del m.steps
    assert "fc1" not in m._modules and "steps" not in m._buffers
    m.x = 1
    del m.x
    assert not hasattr(m, "x")


def test_register_parameter_errors():
    m = nn.Module()
    m.plain = 1
    p = nn.Parameter(T([1.0]))
    with pytest.raises(KeyError, match="attribute 'plain' already exists"):
        m.register_parameter("plain", p)
    with pytest.raises(KeyError, match='contain "."'):
        m.register_parameter("a.b", p)
    with pytest.raises(KeyError, match="empty string"):
        m.register_parameter("", p)
    with pytest.raises(TypeError, match="parameter name should be a string. Got int"):
        m.register_parameter(1, p)
    with pytest.raises(TypeError, match=r"cannot assign 'shardopt.FloatTensor' object to "
                                        r"parameter 'w' \(torch.nn.Parameter or None required\)"):
        m.register_parameter("w", T([1.0]))
    m.register_buffer("b", T([1.0]))
    with pytest.raises(KeyError, match="attribute 'b' already exists"):
        m.register_parameter("b", p)
    with pytest.raises(AttributeError, match="cannot assign parameter before Module.__init__"):
        nn.Module.__new__(nn.Module).register_parameter("x", p)

    class Early(nn.Module):
        def __init__(self):
            self.w = nn.Parameter(T([1.0]))

    with pytest.raises(AttributeError, match="cannot assign parameters before Module.__init__"):
        Early()


def test_register_buffer_and_add_module_errors():
    m = nn.Module()
    with pytest.raises(TypeError, match="cannot assign 'int' object to buffer 'b'"):
        m.register_buffer("b", 3)
    with pytest.raises(KeyError, match="buffer name can"):
        m.register_buffer("x.y", None)
    with pytest.raises(TypeError, match="int is not a Module subclass"):
        m.add_module("m", 3)
    with pytest.raises(KeyError, match='contain ".", got: a.b'):
        m.add_module("a.b", nn.ReLU())
    m.register_module("r", nn.ReLU())
    assert isinstance(m.r, nn.ReLU)
    m.register_buffer("none_buf", None)
    assert "none_buf" in m._buffers and list(m.buffers()) == []


# ------------------------------------------------------------------ iteration and naming


def test_named_parameters_buffers_modules():
    m = Net()
    assert [n for n, _ in m.named_parameters()] == ["fc1.weight", "fc1.bias", "fc2.weight"]
    assert [n for n, _ in m.named_parameters(prefix="net")] == \
        ["net.fc1.weight", "net.fc1.bias", "net.fc2.weight"]
    assert list(m.named_parameters(recurse=False)) == []
    assert [n for n, _ in m.named_buffers()] == ["steps", "scratch"]
    assert [n for n, _ in m.named_modules()] == ["", "fc1", "act", "fc2"]
    assert [n for n, _ in m.named_modules(prefix="root")] == \
        ["root", "root.fc1", "root.act", "root.fc2"]
    assert [n for n, _ in m.named_children()] == ["fc1", "act", "fc2"]
    assert len(list(m.parameters())) == 3 and len(list(m.modules())) == 4
    assert m.get_submodule("fc1") is m.fc1 and m.get_parameter("fc1.bias") is m.fc1.bias


def test_shared_parameters_and_modules_deduplicated():
    m = nn.Module()
    lin = nn.Linear(2, 2)
    m.a = lin
    m.b = lin
    m.w = lin.weight
    # the root's own parameters come first, as in torch
    assert [n for n, _ in m.named_parameters()] == ["w", "a.bias"]
    assert [n for n, _ in m.named_parameters(remove_duplicate=False)] == \
        ["w", "a.weight", "a.bias", "b.weight", "b.bias"]
    assert [n for n, _ in m.named_modules()] == ["", "a"]
    assert [n for n, _ in m.named_modules(remove_duplicate=False)] == ["", "a", "b"]


def test_train_eval_apply():
    m = Net()
    assert m.training and m.fc1.training
    assert m.eval() is m
    assert not m.training and not m.fc1.training
    m.train()
    assert m.act.training
    with pytest.raises(ValueError, match="training mode is expected to be boolean"):
        m.train(1)
    seen = []
    assert m.apply(lambda mod: seen.append(type(mod).__name__)) is m
    assert seen == ["Linear", "GELU", "Linear", "Net"]


def test_zero_grad():
    m = Net()
    m(T(np.ones((2, 4)))).sum().backward()
    assert all(p.grad is not None for p in m.parameters())
    m.zero_grad(set_to_none=False)
    assert all(np.all(N(p.grad) == 0) for p in m.parameters())
    m.zero_grad()
    assert all(p.grad is None for p in m.parameters())


# ------------------------------------------------------------------ device / dtype moves


def test_to_double_and_float_replace_parameters_keep_requires_grad():
    m = Net()
    m.fc1.bias.requires_grad_(False)
    m(T(np.ones((1, 4)))).sum().backward()
    w0 = m.fc1.weight
    v0 = N(w0)
    assert m.double() is m
    w1 = m.fc1.weight
    assert w1 is not w0 and isinstance(w1, nn.Parameter) and w1.dtype == shardopt.float64
    assert w1.requires_grad and not m.fc1.bias.requires_grad
    assert w1.grad is not None and w1.grad.dtype == shardopt.float64
    np.testing.assert_allclose(N(w1), v0.astype(np.float64))
    assert m.steps.dtype == shardopt.float64
    m.to(shardopt.float32)
    assert m.fc2.weight.dtype == shardopt.float32
    w2 = m.fc2.weight
    m.to("cpu")  # no change: same objects
    m.cpu()
    assert m.fc2.weight is w2
    m.to(dtype=shardopt.float64, device="cpu")
    assert m.fc2.weight.dtype == shardopt.float64
    with pytest.raises(TypeError, match="nn.Module.to only accepts floating point or complex "
                                        "dtypes"):
        m.to(shardopt.int32)


def test_to_keeps_integer_buffers():
    m = nn.Module()
    m.register_buffer("count", shardopt.from_numpy(np.arange(3)))
    m.register_buffer("f", T([1.0]))
    m.double()
    assert m.count.dtype == shardopt.int64 and m.f.dtype == shardopt.float64


@pytest.mark.cuda
def test_cuda_moves_parameters_and_back():
    m = Net().cuda()
    assert all(p.is_cuda for p in m.parameters()) and m.steps.is_cuda
    out = m(T(np.ones((2, 4))).cuda())
    out.sum().backward()
    assert m.fc1.weight.grad.is_cuda
    m.cpu()
    assert not m.fc1.weight.is_cuda and not m.fc1.weight.grad.is_cuda


# ------------------------------------------------------------------ state dict


def test_state_dict_contents():
    m = Net()
    sd = m.state_dict()
    assert isinstance(sd, OrderedDict)
    assert list(sd) == ["steps", "fc1.weight", "fc1.bias", "fc2.weight"]
    assert not sd["fc1.weight"].requires_grad and type(sd["fc1.weight"]) is shardopt.Tensor
    assert sd["fc1.weight"].data_ptr() == m.fc1.weight.data_ptr()
    assert sd._metadata[""] == {"version": 1} and "fc1" in sd._metadata
    kv = m.state_dict(keep_vars=True)
    assert kv["fc1.weight"] is m.fc1.weight
    assert list(m.state_dict(prefix="model.")) == \
        ["model.steps", "model.fc1.weight", "model.fc1.bias", "model.fc2.weight"]


def test_load_state_dict_roundtrip():
    a, b = Net(), Net()
    res = b.load_state_dict(a.state_dict())
    assert res.missing_keys == [] and res.unexpected_keys == []
    assert repr(res) == "<All keys matched successfully>"
    for (n1, p1), (n2, p2) in zip(a.named_parameters(), b.named_parameters()):
        np.testing.assert_array_equal(N(p1), N(p2))
    assert b.fc1.weight.requires_grad and b.fc1.weight.is_leaf


def test_load_state_dict_missing_unexpected_and_size_mismatch():
    m = Net()
    sd = m.state_dict()
    del sd["fc1.bias"]
    sd["fc1.extra"] = T([1.0])
    sd["other.w"] = T([1.0])
    with pytest.raises(RuntimeError) as ei:
        m.load_state_dict(sd)
    assert str(ei.value) == (
        "Error(s) in loading state_dict for Net:\n\t"
        'Missing key(s) in state_dict: "fc1.bias". \n\t'
        'Unexpected key(s) in state_dict: "other.w", "fc1.extra". ')
    res = m.load_state_dict(sd, strict=False)
    # strict=False: reported, not raised
    assert res.missing_keys == ["fc1.bias"] and res.unexpected_keys == ["other.w", "fc1.extra"]
    sd2 = m.state_dict()
    sd2["fc1.weight"] = T(np.zeros((2, 2)))
    with pytest.raises(RuntimeError) as ei:
        nn.Linear(4, 3).load_state_dict({"weight": sd2["fc1.weight"], "bias": sd2["fc1.bias"]})
    assert str(ei.value) == (
        "Error(s) in loading state_dict for Linear:\n\tsize mismatch for weight: copying a "
        "param with shape shardopt.Size([2, 2]) from checkpoint, the shape in current model is "
        "shardopt.Size([3, 4]).")
    with pytest.raises(RuntimeError, match="Missing key"):
        nn.Linear(2, 2).load_state_dict({})


def test_state_dict_hook_signature_and_replacement():
    m = Net()
    calls = []

    def hook(module, destination, prefix, local_metadata):
        calls.append((type(module).__name__, prefix, dict(local_metadata)))
        destination[prefix + "extra"] = T([7.0])

    m._register_state_dict_hook(hook)
    h = m.fc1._register_state_dict_hook(hook)
    sd = m.state_dict(prefix="p.")
    assert calls == [("Linear", "p.fc1.", {"version": 1}), ("Net", "p.", {"version": 1})]
    assert "p.extra" in sd and "p.fc1.extra" in sd
    h.remove()
    calls.clear()
    m.state_dict()
    assert calls == [("Net", "", {"version": 1})]

    m2 = nn.Linear(1, 1)
    m2._register_state_dict_hook(lambda mod, d, p, md: {"replaced": 1})
    assert m2.state_dict() == {"replaced": 1}


def test_load_state_dict_pre_hooks_signatures():
    m = Net()
    calls = []

    def plain(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
              error_msgs):
        calls.append(("plain", prefix, strict, type(missing_keys), type(error_msgs)))

    def with_module(module, state_dict, prefix, local_metadata, strict, missing_keys,
                    unexpected_keys, error_msgs):
        calls.append(("module", type(module).__name__, prefix, sorted(state_dict)))
        # what the sharding pre-hook does: set plain attributes from the state dict
        if prefix + "custom" in state_dict:
            setattr(module, "custom", state_dict[prefix + "custom"])

    m._register_load_state_dict_pre_hook(with_module, True)
    m.fc2._register_load_state_dict_pre_hook(plain)
    sd = m.state_dict()
    sd["custom"] = "value"
    m.custom = None
    m.load_state_dict(sd, strict=False)
    assert calls[0] == ("module", "Net", "", sorted(sd))
    assert calls[1] == ("plain", "fc2.", True, list, list)
    assert m.custom == "value"


def test_non_tensor_in_state_dict_reported():
    m = nn.Linear(1, 1)
    with pytest.raises(RuntimeError, match='While copying the parameter named "weight", expected '
                                           "torch.Tensor or Tensor-like object"):
        m.load_state_dict({"weight": 3, "bias": T([0.0])})


# ------------------------------------------------------------------ repr


def test_repr_like_torch():
    assert repr(nn.Linear(17, 12)) == "Linear(in_features=17, out_features=12, bias=True)"
    assert repr(nn.Linear(1, 2, bias=False)) == "Linear(in_features=1, out_features=2, bias=False)"
    assert repr(nn.GELU()) == "GELU(approximate='none')"
    assert repr(nn.ReLU()) == "ReLU()"
    assert repr(nn.MSELoss()) == "MSELoss()"
    assert repr(Net()) == ("Net(\n  (fc1): Linear(in_features=4, out_features=3, bias=True)\n"
                           "  (act): GELU(approximate='none')\n"
                           "  (fc2): Linear(in_features=3, out_features=2, bias=False)\n)")
    s = nn.Sequential(nn.Linear(2, 2), nn.Sequential(nn.ReLU()))
    assert repr(s) == ("Sequential(\n  (0): Linear(in_features=2, out_features=2, bias=True)\n"
                       "  (1): Sequential(\n    (0): ReLU()\n  )\n)")


def test_forward_hooks_and_missing_forward():
    m = nn.Linear(2, 2)
    seen = []
    h = m.register_forward_hook(lambda mod, args, out: seen.append(tuple(out.shape)))
    m(T(np.ones((3, 2))))
    h.remove()
    m(T(np.ones((3, 2))))
    assert seen == [(3, 2)]
    with pytest.raises(NotImplementedError, match='missing the required "forward" function'):
        nn.Module()(1)
