"""Optimizer API: state_dict round trip (bit for bit), torch's validation messages, and bad
input to the C entry points (each error names the argument and index; never a crash)."""
import copy

import numpy as np
import pytest

import shardopt
from shardopt import _C
from shardopt.optim import SGD, Adam, AdamW, Optimizer

from _optim_ref import to_numpy, to_tensor


def _clone_state_dict(sd):
    """What torch.save/torch.load would give: a deep copy with fresh tensors."""
    return copy.deepcopy(sd)


@pytest.mark.parametrize("make", [
    lambda ps: SGD(ps, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01),
    lambda ps: SGD([{"params": ps[:1]}, {"params": ps[1:], "lr": 0.05, "momentum": 0.5}], lr=0.1),
    lambda ps: Adam(ps, lr=0.01, amsgrad=True, weight_decay=0.1),
    lambda ps: AdamW([{"params": ps[:1]}, {"params": ps[1:], "betas": (0.8, 0.99)}], lr=0.01),
], ids=["sgd-nesterov", "sgd-groups", "adam-amsgrad", "adamw-groups"])
def test_state_dict_round_trip_bit_exact(make):
    rng = np.random.default_rng(0)
    p0 = [rng.standard_normal((4, 3)).astype(np.float32), rng.standard_normal(7).astype(np.float32)]
    grads = [[rng.standard_normal(x.shape).astype(np.float32) for x in p0] for _ in range(5)]

    def run(params, opt, steps):
        for gs in steps:
            for p, g in zip(params, gs):
                p.grad = to_tensor(g)
            opt.step()

    full = [to_tensor(x) for x in p0]
    run(full, make(full), grads)

    part = [to_tensor(x) for x in p0]
    opt = make(part)
    run(part, opt, grads[:3])
    saved = _clone_state_dict(opt.state_dict())
    params_saved = [to_numpy(p) for p in part]
    del opt
    fresh = [to_tensor(x) for x in params_saved]
    opt2 = make(fresh)
    opt2.load_state_dict(saved)
    run(fresh, opt2, grads[3:])
    for a, b in zip(full, fresh):
        np.testing.assert_array_equal(to_numpy(a), to_numpy(b))


def test_state_dict_format():
    a, b = to_tensor(np.ones(2)), to_tensor(np.ones(3))
    opt = Adam([{"params": [a]}, {"params": [b], "lr": 0.5}], lr=0.1)
    a.grad = to_tensor(np.ones(2))
    opt.step()
    sd = opt.state_dict()
    assert set(sd) == {"state", "param_groups"}
    assert list(sd["state"]) == [0]  # only params with state
    assert set(sd["state"][0]) == {"step", "exp_avg", "exp_avg_sq"}
    assert [g["params"] for g in sd["param_groups"]] == [[0], [1]]
    assert sd["param_groups"][1]["lr"] == 0.5
    assert set(sd["param_groups"][0]) == {"lr", "betas", "eps", "weight_decay", "amsgrad",
                                          "maximize", "foreach", "capturable", "differentiable",
                                          "fused", "decoupled_weight_decay", "params"}
    sgd = SGD([a], lr=0.1)
    assert set(sgd.state_dict()["param_groups"][0]) == {
        "lr", "momentum", "dampening", "weight_decay", "nesterov", "maximize", "foreach",
        "differentiable", "fused", "params"}


def test_load_state_dict_casts_to_param_dtype_and_keeps_step():
    a = to_tensor(np.ones(2, np.float32))
    opt = Adam([a], lr=0.1)
    a.grad = to_tensor(np.ones(2, np.float32))
    opt.step()
    sd = _clone_state_dict(opt.state_dict())
    b = to_tensor(np.ones(2, np.float64))
    opt2 = Adam([b], lr=0.1)
    opt2.load_state_dict(sd)
    assert opt2.state[b]["exp_avg"].dtype == shardopt.float64
    assert opt2.state[b]["step"].dtype == shardopt.float32
    b.grad = to_tensor(np.ones(2, np.float64))
    opt2.step()
    assert float(to_numpy(opt2.state[b]["step"])) == 2.0


def test_load_state_dict_errors():
    a, b = to_tensor(np.ones(2)), to_tensor(np.ones(2))
    opt = SGD([a, b], lr=0.1)
    with pytest.raises(ValueError, match="loaded state dict has a different number of parameter groups"):
        opt.load_state_dict({"state": {}, "param_groups": []})
    with pytest.raises(ValueError, match="loaded state dict contains a parameter group that "
                                         "doesn't match the size of optimizer's group"):
        opt.load_state_dict(SGD([a], lr=0.1).state_dict())


def test_load_old_int_step():
    a = to_tensor(np.ones(2))
    opt = Adam([a], lr=0.1)
    a.grad = to_tensor(np.ones(2))
    opt.step()
    sd = _clone_state_dict(opt.state_dict())
    sd["state"][0]["step"] = 1  # a pre-1.12 checkpoint
    opt2 = Adam([a], lr=0.1)
    opt2.load_state_dict(sd)
    assert opt2.state[a]["step"].dtype == shardopt.float32
    opt2.step()


# ---------------------------------------------------------------- hyper-parameters

@pytest.mark.parametrize("kwargs,msg", [
    (dict(lr=-1.0), "Invalid learning rate: -1.0"),
    (dict(lr=0.1, momentum=-0.5), "Invalid momentum value: -0.5"),
    (dict(lr=0.1, weight_decay=-1e-3), "Invalid weight_decay value: -0.001"),
    (dict(lr=0.1, nesterov=True), "Nesterov momentum requires a momentum and zero dampening"),
    (dict(lr=0.1, momentum=0.9, dampening=0.1, nesterov=True),
     "Nesterov momentum requires a momentum and zero dampening"),
])
def test_sgd_validation(kwargs, msg):
    with pytest.raises(ValueError, match=msg):
        SGD([to_tensor(np.ones(1))], **kwargs)


@pytest.mark.parametrize("cls", [Adam, AdamW])
@pytest.mark.parametrize("kwargs,msg", [
    (dict(lr=-0.1), "Invalid learning rate: -0.1"),
    (dict(eps=-1e-8), "Invalid epsilon value: -1e-08"),
    (dict(betas=(1.0, 0.999)), "Invalid beta parameter at index 0: 1.0"),
    (dict(betas=(-0.1, 0.999)), "Invalid beta parameter at index 0: -0.1"),
    (dict(betas=(0.9, 1.5)), "Invalid beta parameter at index 1: 1.5"),
    (dict(weight_decay=-1.0), "Invalid weight_decay value: -1.0"),
])
def test_adam_validation(cls, kwargs, msg):
    with pytest.raises(ValueError, match=msg.replace("(", r"\(").replace(")", r"\)")):
        cls([to_tensor(np.ones(1))], **kwargs)


def test_defaults_and_flags():
    p = to_tensor(np.ones(1))
    assert SGD([p]).defaults["lr"] == 1e-3
    assert Adam([p]).defaults["weight_decay"] == 0
    assert AdamW([p]).defaults["weight_decay"] == 1e-2
    assert AdamW([p]).defaults["decoupled_weight_decay"] is True
    Adam([p], foreach=True)
    Adam([p], fused=True)
    Adam([p], capturable=True, differentiable=True)
    with pytest.raises(RuntimeError, match="`fused` and `foreach` cannot be `True` together."):
        Adam([p], fused=True, foreach=True)
    with pytest.raises(RuntimeError, match="`fused` does not support `differentiable`"):
        SGD([p], fused=True, differentiable=True)


def test_param_group_errors():
    p, q = to_tensor(np.ones(1)), to_tensor(np.ones(1))
    with pytest.raises(TypeError, match="params argument given to the optimizer should be an "
                                        "iterable of Tensors or dicts, but got shardopt.DoubleTensor"):
        SGD(p, lr=0.1)
    with pytest.raises(ValueError, match="optimizer got an empty parameter list"):
        SGD([], lr=0.1)
    with pytest.raises(TypeError, match="optimizer can only optimize Tensors, but one of the params is int"):
        SGD([1], lr=0.1)
    with pytest.raises(TypeError, match="ordering of tensors in sets will change"):
        SGD([{"params": {p}}], lr=0.1)
    opt = SGD([p], lr=0.1)
    with pytest.raises(ValueError, match="some parameters appear in more than one parameter group"):
        opt.add_param_group({"params": [p]})
    opt.add_param_group({"params": [q], "lr": 0.5})
    assert opt.param_groups[1]["lr"] == 0.5 and opt.param_groups[1]["momentum"] == 0
    with pytest.warns(UserWarning, match="duplicate parameters"):
        SGD([q, q], lr=0.1)
    with pytest.raises(TypeError, match="param_group must be a dict"):
        opt.add_param_group([q])
    named = SGD([("w", p)], lr=0.1)
    assert named.param_groups[0]["param_names"] == ["w"]
    with pytest.raises(ValueError, match="all optimizer param groups should be with/without names"):
        named.add_param_group({"params": [q]})


def test_required_lr_group_option():
    from shardopt.optim.optimizer import required

    class Custom(Optimizer):
        def __init__(self, params, lr=required):
            super().__init__(params, {"lr": lr})

    with pytest.raises(ValueError, match="parameter group didn't specify a value of required "
                                         "optimization parameter lr"):
        Custom([to_tensor(np.ones(1))])


def test_failed_step_leaves_state_clean():
    """A step that fails validation (here: a corrupted state tensor of the second param)
    writes nothing: no new momentum buffer, no step advance, params unchanged."""
    p, q = to_tensor(np.ones(3, np.float32)), to_tensor(np.ones(3, np.float32))
    p.grad, q.grad = to_tensor(np.ones(3, np.float32)), to_tensor(np.ones(3, np.float32))
    opt = SGD([p, q], lr=0.1, momentum=0.9)
    opt.state[q]["momentum_buffer"] = to_tensor(np.zeros(4, np.float32))
    with pytest.raises(ValueError, match=r"momentum_buffers\[1\] has shape \[4\] but params\[1\] has shape \[3\]"):
        opt.step()
    assert "momentum_buffer" not in opt.state.get(p, {})
    np.testing.assert_array_equal(to_numpy(p), np.ones(3))
    adam = Adam([p, q], lr=0.1)
    adam.step()
    adam.state[q]["exp_avg"] = to_tensor(np.zeros(3, np.float64))
    with pytest.raises(TypeError, match=r"exp_avgs\[1\] has dtype float64"):
        adam.step()
    assert float(to_numpy(adam.state[p]["step"])) == 1.0  # not advanced by the failed step


def test_integer_param_rejected():
    p = _C.from_numpy(np.ones(3, np.int64))
    p.grad = _C.from_numpy(np.ones(3, np.int64))
    with pytest.raises(TypeError, match=r"params\[0\] has dtype int64; optimizers only update "
                                        "floating-point tensors"):
        SGD([p], lr=0.1).step()


# ---------------------------------------------------------------- the C entry points

def _sgd_args(**over):
    p = to_tensor(np.ones((2, 3), np.float32))
    g = to_tensor(np.ones((2, 3), np.float32))
    b = to_tensor(np.zeros((2, 3), np.float32))
    args = dict(params=[p], grads=[g], momentum_buffers=[b], first_steps=[False], lr=0.1,
                weight_decay=0.0, momentum=0.9, dampening=0.0, nesterov=False, maximize=False)
    args.update(over)
    return args


def _adam_args(**over):
    p = to_tensor(np.ones((2, 3), np.float32))
    mk = lambda: to_tensor(np.zeros((2, 3), np.float32))  # noqa: E731
    step = _C.empty((), dtype=shardopt.float32, device="cpu").zero_()
    args = dict(params=[p], grads=[mk()], exp_avgs=[mk()], exp_avg_sqs=[mk()],
                max_exp_avg_sqs=[mk()], state_steps=[step], lr=0.1, beta1=0.9, beta2=0.999,
                eps=1e-8, weight_decay=0.0, amsgrad=True, maximize=False,
                decoupled_weight_decay=False)
    args.update(over)
    return args


F32 = lambda *s: to_tensor(np.zeros(s, np.float32))  # noqa: E731


@pytest.mark.parametrize("over,exc,msg", [
    (dict(grads=[]), ValueError, "argument 'grads' has 0 tensors but 'params' has 1"),
    (dict(momentum_buffers=None), TypeError, "argument 'momentum_buffers' must be a list of Tensors, not None"),
    (dict(first_steps=[True, False]), ValueError, "argument 'first_steps' has 2 entries"),
    (dict(params=[None]), TypeError, r"params\[0\] must be a Tensor, not None"),
    (dict(params=5), TypeError, "argument 'params' must be a list of Tensors, not int"),
    (dict(grads=["x"]), TypeError, r"grads\[0\] must be a Tensor, not str"),
    (dict(grads=[to_tensor(np.ones((3, 2), np.float32))]), ValueError,
     r"grads\[0\] has shape \[3, 2\] but params\[0\] has shape \[2, 3\]"),
    (dict(momentum_buffers=[to_tensor(np.ones((2, 3), np.float16))]), TypeError,
     r"momentum_buffers\[0\] has dtype float16 but params\[0\] has dtype float32"),
])
def test_fused_sgd_bad_input(over, exc, msg):
    with pytest.raises(exc, match=msg):
        _C._fused_sgd_(**_sgd_args(**over))


@pytest.mark.parametrize("over,exc,msg", [
    (dict(exp_avgs=[]), ValueError, "argument 'exp_avgs' has 0 tensors but 'params' has 1"),
    (dict(max_exp_avg_sqs=None), TypeError, "'max_exp_avg_sqs' must be a list of Tensors"),
    (dict(exp_avg_sqs=[F32(6)]), ValueError, r"exp_avg_sqs\[0\] has shape \[6\] but params\[0\] has shape \[2, 3\]"),
    (dict(state_steps=[F32(2)]), TypeError, r"state_steps\[0\] must be a one-element float32 or float64 CPU tensor"),
    (dict(state_steps=[_C.from_numpy(np.zeros((), np.int64))]), TypeError, r"state_steps\[0\] must be"),
    (dict(state_steps=[1.0]), TypeError, r"state_steps\[0\] must be a Tensor, not float"),
    (dict(exp_avgs=[to_tensor(np.zeros((2, 3)))]), TypeError, r"exp_avgs\[0\] has dtype float64"),
])
def test_fused_adam_bad_input(over, exc, msg):
    args = _adam_args(**over)
    step = args["state_steps"][0]
    with pytest.raises(exc, match=msg):
        _C._fused_adam_(**args)
    if hasattr(step, "numpy") and step.dtype == shardopt.float32 and step.ndim == 0:
        assert float(step.numpy()) == 0.0  # nothing written before validation finished


def test_fused_adam_amsgrad_off_ignores_max_list():
    _C._fused_adam_(**_adam_args(amsgrad=False, max_exp_avg_sqs=None))


def test_fused_missing_args():
    with pytest.raises(TypeError):
        _C._fused_sgd_([], [])
    _C._fused_sgd_(**_sgd_args(params=[], grads=[], momentum_buffers=[], first_steps=[]))


@pytest.mark.skipif(_C._cuda_compiled, reason="CPU-only build behaviour")
def test_cpu_only_build_says_no_cuda():
    # a CUDA tensor cannot even be made in a CPU-only build; the C check is a second guard
    with pytest.raises(RuntimeError):
        to_tensor(np.ones(2), device="cuda")


@pytest.mark.cuda
def test_cuda_bad_input(cuda_device):
    p = to_tensor(np.ones((4, 4), np.float32), device=cuda_device)
    g_cpu = to_tensor(np.ones((4, 4), np.float32))
    with pytest.raises(RuntimeError, match=r"grads\[0\] is on cpu but params\[0\] is on cuda:0"):
        _C._fused_sgd_(**_sgd_args(params=[p], grads=[g_cpu], momentum=0.0, momentum_buffers=None))
    pt = p.t()
    g = to_tensor(np.ones((4, 4), np.float32), device=cuda_device)
    with pytest.raises(RuntimeError, match="non-contiguous CUDA tensor"):
        _C._fused_sgd_(**_sgd_args(params=[pt], grads=[g], momentum=0.0, momentum_buffers=None))
