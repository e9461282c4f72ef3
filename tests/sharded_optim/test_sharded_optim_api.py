"""ShardedOptimizer / named_params_with_sharded_tensor / shard_parameter: single-process
behaviour (plain Tensors; the sharded scenarios are in test_sharded_optim_dist.py).

Covers the wrapper contract (torch's: named_params as passed, param_groups/state shared
with the inner optimizer, step() returning None, zero_grad(set_to_none=True)), and what
shardopt adds beyond torch: validation of named_params, state_dict keyed by name with
layouts, load_state_dict with layout checks, add_param_group, bit-exact resume.
"""
import pickle

import numpy as np
import pytest

import shardopt as so
from shardopt import nn, optim
from shardopt.sharded_optim import ShardedOptimizer, named_params_with_sharded_tensor


def _model(seed=0, hidden=6):
    so.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, hidden), nn.GELU(), nn.Linear(hidden, 3))


def _batch(step):
    rs = np.random.RandomState(100 + step)
    return (so.from_numpy(rs.standard_normal((7, 5)).astype(np.float32)),
            so.from_numpy(rs.standard_normal((7, 3)).astype(np.float32)))


def _train(model, opt, steps, start=0):
    for s in range(start, start + steps):
        x, y = _batch(s)
        opt.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        opt.step()


def _params(model):
    return {n: p.detach().numpy().copy() for n, p in model.named_parameters()}


OPTIMS = [
    (optim.Adam, {"lr": 0.05}),
    (optim.SGD, {"lr": 0.1, "momentum": 0.9}),
    (optim.AdamW, {"lr": 0.05, "amsgrad": True}),
]


def test_is_an_optimizer_and_shares_groups_and_state():
    m = _model()
    named = dict(m.named_parameters())
    opt = ShardedOptimizer(named, optim.SGD, lr=0.1)
    assert isinstance(opt, optim.Optimizer)
    assert opt.named_params is named
    assert opt.param_groups is opt._optim.param_groups
    assert opt.state is opt._optim.state
    assert opt.defaults is opt._optim.defaults
    assert [id(p) for p in opt.param_groups[0]["params"]] == [id(p) for p in named.values()]
    assert "ShardedOptimizer (" in repr(opt) and "lr: 0.1" in repr(opt)


def test_step_matches_the_plain_optimizer_and_returns_none():
    a, b = _model(), _model()
    plain = optim.Adam(a.parameters(), lr=0.05)
    sharded = ShardedOptimizer(dict(b.named_parameters()), optim.Adam, lr=0.05)
    for s in range(4):
        x, y = _batch(s)
        plain.zero_grad()
        sharded.zero_grad()

        def closure():
            return nn.functional.mse_loss(b(x), y)

        nn.functional.mse_loss(a(x), y).backward()
        loss = nn.functional.mse_loss(b(x), y)
        loss.backward()
        plain.step()
        assert sharded.step(closure) is None  # torch drops the loss
    for (n, p), q in zip(a.named_parameters(), b.parameters()):
        np.testing.assert_array_equal(p.detach().numpy(), q.detach().numpy(), err_msg=n)


def test_zero_grad_default_sets_none_and_false_zeroes():
    m = _model()
    opt = ShardedOptimizer(dict(m.named_parameters()), optim.SGD, lr=0.1)
    x, y = _batch(0)
    nn.functional.mse_loss(m(x), y).backward()
    opt.zero_grad(set_to_none=False)
    for p in m.parameters():
        assert p.grad is not None and not np.any(p.grad.numpy())
    opt.zero_grad()
    assert all(p.grad is None for p in m.parameters())


@pytest.mark.parametrize("bad", [[1, 2], "weights", 3, None])
def test_named_params_must_be_a_mapping(bad):
    with pytest.raises(TypeError, match="named_params must be a mapping"):
        ShardedOptimizer(bad, optim.SGD, lr=0.1)


def test_named_params_values_must_be_tensors():
    m = _model()
    named = dict(m.named_parameters())
    named["oops"] = [1.0]
    with pytest.raises(TypeError, match=r"named_params\['oops'\] must be a Tensor or a ShardedTensor, but got list"):
        ShardedOptimizer(named, optim.SGD, lr=0.1)
    with pytest.raises(TypeError, match="names in named_params must be str"):
        ShardedOptimizer({0: m[0].weight}, optim.SGD, lr=0.1)
    with pytest.raises(ValueError, match="empty parameter list"):  # the inner optimizer's
        ShardedOptimizer({}, optim.SGD, lr=0.1)
    with pytest.raises(TypeError, match="optimizer_class must be callable"):
        ShardedOptimizer(named, "SGD")
    with pytest.raises(ValueError, match="Invalid learning rate"):  # forwarded kwargs
        ShardedOptimizer(dict(m.named_parameters()), optim.SGD, lr=-1.0)


def test_uninitialized_object_raises_instead_of_crashing():
    opt = ShardedOptimizer.__new__(ShardedOptimizer)
    with pytest.raises(RuntimeError, match="not initialized"):
        opt.step()
    with pytest.raises(RuntimeError, match="not initialized"):
        opt.param_groups


def test_state_dict_is_keyed_by_name_with_layouts():
    m = _model()
    opt = ShardedOptimizer(dict(m.named_parameters()), optim.Adam, lr=0.05)
    assert opt.state_dict()["state"] == {}  # no state before the first step
    _train(m, opt, 2)
    sd = opt.state_dict()
    names = [n for n, _ in m.named_parameters()]
    assert list(sd["state"]) == names
    assert set(sd["state"]["0.weight"]) == {"step", "exp_avg", "exp_avg_sq"}
    assert sd["state"]["0.weight"]["exp_avg"] is opt.state[m[0].weight]["exp_avg"]  # live, as torch
    assert sd["param_groups"][0]["params"] == names
    assert sd["param_groups"][0]["lr"] == 0.05
    assert sd["layouts"]["0.weight"] == {"type": "Tensor", "size": (6, 5)}
    assert sd["layouts"]["2.bias"] == {"type": "Tensor", "size": (3,)}


@pytest.mark.parametrize("cls,kw", OPTIMS, ids=lambda x: getattr(x, "__name__", ""))
def test_resume_from_state_dict_is_bit_exact(cls, kw, tmp_path):
    ref = _model()
    ref_opt = ShardedOptimizer(dict(ref.named_parameters()), cls, **kw)
    _train(ref, ref_opt, 6)

    a = _model()
    a_opt = ShardedOptimizer(dict(a.named_parameters()), cls, **kw)
    _train(a, a_opt, 3)
    path = tmp_path / "ckpt.pkl"
    path.write_bytes(pickle.dumps({"model": _params(a), "optim": a_opt.state_dict()}))

    ck = pickle.loads(path.read_bytes())
    b = _model(seed=123)  # another init: only the checkpoint may matter
    with so.no_grad():
        for n, p in b.named_parameters():
            p.copy_(so.from_numpy(ck["model"][n]))
    b_opt = ShardedOptimizer(dict(b.named_parameters()), cls, **{**kw, "lr": 123.0})
    b_opt.load_state_dict(ck["optim"])
    assert b_opt.param_groups[0]["lr"] == kw["lr"]  # hyper-parameters restored
    assert b_opt.param_groups is b_opt._optim.param_groups  # still shared after the load
    assert b_opt.state is b_opt._optim.state
    _train(b, b_opt, 3, start=3)
    for n, want in _params(ref).items():
        np.testing.assert_array_equal(_params(b)[n], want, err_msg=n)


def test_load_state_dict_casts_to_param_dtype():
    m = _model()
    opt = ShardedOptimizer(dict(m.named_parameters()), optim.Adam, lr=0.05)
    _train(m, opt, 1)
    sd = opt.state_dict()
    m64 = _model().double()
    opt64 = ShardedOptimizer(dict(m64.named_parameters()), optim.Adam, lr=0.05)
    opt64.load_state_dict(sd)
    st = opt64.state[m64[0].weight]
    assert st["exp_avg"].dtype == so.float64
    assert st["step"].dtype == so.float32
    np.testing.assert_array_equal(st["exp_avg"].numpy(), sd["state"]["0.weight"]["exp_avg"].numpy())


def test_load_state_dict_rejects_another_layout_naming_both():
    m = _model(hidden=6)
    opt = ShardedOptimizer(dict(m.named_parameters()), optim.Adam, lr=0.05)
    _train(m, opt, 1)
    sd = opt.state_dict()
    other = _model(hidden=8)
    other_opt = ShardedOptimizer(dict(other.named_parameters()), optim.Adam, lr=0.05)
    before = {k: dict(v) for k, v in other_opt.state.items()}
    with pytest.raises(ValueError, match=r"parameter '0.weight' is laid out differently.*"
                       r"saved layout \{'type': 'Tensor', 'size': \(6, 5\)\}, current layout "
                       r"\{'type': 'Tensor', 'size': \(8, 5\)\}"):
        other_opt.load_state_dict(sd)
    assert {k: dict(v) for k, v in other_opt.state.items()} == before  # nothing loaded


def test_load_state_dict_structure_errors():
    m = _model()
    opt = ShardedOptimizer(dict(m.named_parameters()), optim.Adam, lr=0.05)
    _train(m, opt, 1)
    sd = opt.state_dict()
    with pytest.raises(TypeError, match="state_dict must be a dict"):
        opt.load_state_dict([sd])
    with pytest.raises(ValueError, match="no 'layouts' entry"):
        opt.load_state_dict({"state": {}, "param_groups": sd["param_groups"]})
    with pytest.raises(ValueError, match="has 2 parameter groups, this optimizer has 1"):
        opt.load_state_dict({**sd, "param_groups": sd["param_groups"] * 2})
    renamed = {**sd, "param_groups": [{**sd["param_groups"][0],
                                       "params": ["x"] + sd["param_groups"][0]["params"][1:]}]}
    with pytest.raises(ValueError, match=r"missing from the state dict \['0.weight'\], not in this optimizer \['x'\]"):
        opt.load_state_dict(renamed)
    with pytest.raises(ValueError, match="state for parameter 'ghost'"):
        opt.load_state_dict({**sd, "state": {**sd["state"], "ghost": {}}})
    with pytest.raises(ValueError, match="must be a dict"):
        opt.load_state_dict({**sd, "state": {**sd["state"], "0.weight": [sd["state"]["0.weight"]]}})


def test_add_param_group_forms():
    m = _model()
    opt = ShardedOptimizer({"0.weight": m[0].weight}, optim.SGD, lr=0.1)
    opt.add_param_group({"params": {"0.bias": m[0].bias}, "lr": 0.01})
    opt.add_param_group({"params": [("2.weight", m[2].weight)], "momentum": 0.5})
    opt.add_param_group({"params": [m[2].bias]})
    assert opt.param_names == ["0.weight", "0.bias", "2.weight", "param_groups.3.0"]
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.01, 0.1, 0.1]
    assert opt.param_groups[2]["momentum"] == 0.5
    assert list(opt.named_params) == ["0.weight"]  # the mapping as passed
    _train(m, opt, 2)
    sd = opt.state_dict()
    assert [g["params"] for g in sd["param_groups"]] == [["0.weight"], ["0.bias"], ["2.weight"],
                                                         ["param_groups.3.0"]]
    assert sd["param_groups"][2]["momentum"] == 0.5


def test_add_param_group_errors_leave_the_optimizer_unchanged():
    m = _model()
    opt = ShardedOptimizer({"0.weight": m[0].weight}, optim.SGD, lr=0.1)
    with pytest.raises(TypeError, match="param_group must be a dict"):
        opt.add_param_group([m[0].bias])
    with pytest.raises(ValueError, match="no 'params' entry"):
        opt.add_param_group({"lr": 0.1})
    with pytest.raises(ValueError, match="'0.weight' appears more than once"):
        opt.add_param_group({"params": {"0.weight": m[0].bias}})
    with pytest.raises(TypeError, match=r"param_group\['params'\]\['b'\] must be a Tensor"):
        opt.add_param_group({"params": {"a": m[0].bias, "b": 1}})
    with pytest.raises(ValueError, match="more than one parameter group"):  # the inner check
        opt.add_param_group({"params": {"alias": m[0].weight}})
    with pytest.raises(TypeError, match="must be a mapping"):
        opt.add_param_group({"params": {m[0].bias}})
    assert len(opt.param_groups) == 1 and opt.param_names == ["0.weight"]


def test_named_params_with_sharded_tensor_plain_module():
    m = _model()
    got = named_params_with_sharded_tensor(m)
    assert iter(got) is got
    names = [n for n, _ in got]
    assert names == ["0.weight", "0.bias", "2.weight", "2.bias"]
    # torch's quirk: the named_parameters() part ignores prefix and recurse
    assert [n for n, _ in named_params_with_sharded_tensor(m, prefix="net", recurse=False)] == names
    with pytest.raises(TypeError):
        named_params_with_sharded_tensor(m, prefix=1)


def test_shard_parameter_argument_errors():
    m = nn.Linear(4, 4)
    with pytest.raises(AttributeError, match="Linear has no attribute `weights`"):
        so.shard_parameter(m, "weights", None)
    m.bias = None
    m.note = "x"
    with pytest.raises(ValueError, match="Expected Linear.note to be a Tensor, but found str"):
        so.shard_parameter(m, "note", None)
    with pytest.raises(ValueError, match="Expected Linear.bias to be a Tensor, but found NoneType"):
        so.shard_parameter(m, "bias", None)
    m.register_buffer("buf", so.zeros(4, 4).t())
    with pytest.raises(ValueError, match="param: buf is not a contiguous Tensor"):
        so.shard_parameter(m, "buf", None)
