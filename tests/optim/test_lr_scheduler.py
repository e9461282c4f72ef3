"""shardopt.optim.lr_scheduler: learning rates step by step against closed forms (always)
and against torch.optim.lr_scheduler (when torch is importable), state_dict round trips, the
step-order warnings, validation messages, and driving a ShardedOptimizer."""
import math
import pickle
import warnings

import numpy as np
import pytest

import shardopt
from shardopt.optim import SGD, Adam
from shardopt.optim import lr_scheduler as so_sched


def _opt(cls=SGD, groups=2, lrs=(0.1, 0.05), **kw):
    params = [{"params": [shardopt.zeros(3)], "lr": lrs[i]} for i in range(groups)]
    return cls(params, **kw)


def _run(sched_factory, opt, steps):
    """lrs seen by optimizer.step() at each of `steps` epochs (epoch 0 first)."""
    sched = sched_factory(opt)
    out = []
    for _ in range(steps):
        out.append([g["lr"] for g in opt.param_groups])
        opt.step()
        sched.step()
    return out, sched


# (name, factory(module, opt), closed form(epoch, base_lr) or None)
CASES = [
    ("StepLR", lambda m, o: m.StepLR(o, step_size=3, gamma=0.5),
     lambda e, b: b * 0.5 ** (e // 3)),
    ("MultiStepLR", lambda m, o: m.MultiStepLR(o, milestones=[2, 5, 5, 9], gamma=0.3),
     lambda e, b: b * 0.3 ** sum(1 for x in [2, 5, 5, 9] if x <= e)),
    ("ExponentialLR", lambda m, o: m.ExponentialLR(o, gamma=0.9), lambda e, b: b * 0.9 ** e),
    ("CosineAnnealingLR", lambda m, o: m.CosineAnnealingLR(o, T_max=7, eta_min=0.001),
     lambda e, b: 0.001 + (b - 0.001) * (1 + math.cos(math.pi * e / 7)) / 2),
    ("LinearLR", lambda m, o: m.LinearLR(o, start_factor=0.25, end_factor=0.75, total_iters=6),
     lambda e, b: b * (0.25 + 0.5 * min(e, 6) / 6)),
    ("ConstantLR", lambda m, o: m.ConstantLR(o, factor=0.4, total_iters=4),
     lambda e, b: b * (0.4 if e < 4 else 1.0)),
    ("LambdaLR", lambda m, o: m.LambdaLR(o, lr_lambda=lambda e: 1.0 / (e + 1)),
     lambda e, b: b / (e + 1)),
    ("MultiplicativeLR", lambda m, o: m.MultiplicativeLR(o, lr_lambda=lambda e: 0.95),
     lambda e, b: b * 0.95 ** e),
    ("PolynomialLR", lambda m, o: m.PolynomialLR(o, total_iters=8, power=2.0),
     lambda e, b: b * (1 - min(e, 8) / 8) ** 2),
    ("SequentialLR", lambda m, o: m.SequentialLR(
        o, [m.LinearLR(o, start_factor=0.1, total_iters=4), m.CosineAnnealingLR(o, T_max=10)],
        milestones=[4]),
     lambda e, b: b * (0.1 + 0.9 * e / 4) if e < 4
     else b * (1 + math.cos(math.pi * (e - 4) / 10)) / 2),
    ("ChainedScheduler", lambda m, o: m.ChainedScheduler(
        [m.ConstantLR(o, factor=0.5, total_iters=3), m.ExponentialLR(o, gamma=0.9)]),
     lambda e, b: b * (0.5 if e < 3 else 1.0) * 0.9 ** e),
    ("OneCycleLR", lambda m, o: m.OneCycleLR(o, max_lr=[1.0, 0.5], total_steps=20), None),
    ("OneCycleLR3", lambda m, o: m.OneCycleLR(o, max_lr=0.8, total_steps=20,
                                              anneal_strategy="linear", three_phase=True), None),
    ("CyclicLR", lambda m, o: m.CyclicLR(o, base_lr=0.01, max_lr=0.1, step_size_up=3,
                                         mode="triangular2"), None),
    ("CosineAnnealingWarmRestarts",
     lambda m, o: m.CosineAnnealingWarmRestarts(o, T_0=3, T_mult=2, eta_min=0.01), None),
]


CLOSED = [c for c in CASES if c[2] is not None]  # the others are compared with torch only


@pytest.mark.parametrize("name,factory,closed", CLOSED, ids=[c[0] for c in CLOSED])
def test_closed_form(name, factory, closed):
    opt = _opt()
    seen, _ = _run(lambda o: factory(so_sched, o), opt, 25)
    for e, lrs in enumerate(seen):
        for lr, base in zip(lrs, (0.1, 0.05)):
            assert lr == pytest.approx(closed(e, base), rel=1e-12, abs=1e-15), (e, lr)


@pytest.mark.parametrize("name,factory,closed", CASES, ids=[c[0] for c in CASES])
def test_vs_torch(name, factory, closed):
    torch = pytest.importorskip("torch")
    opt = _opt(momentum=0.9)
    topt = torch.optim.SGD([{"params": [torch.zeros(3)], "lr": lr} for lr in (0.1, 0.05)],
                           momentum=0.9)
    steps = 20 if name.startswith("OneCycle") else 30
    ours, s1 = _run(lambda o: factory(so_sched, o), opt, steps)
    theirs, s2 = _run(lambda o: factory(torch.optim.lr_scheduler, o), topt, steps)
    assert ours == theirs  # bit for bit: same float operations in the same order
    assert s1.get_last_lr() == s2.get_last_lr()
    assert [g["momentum"] for g in opt.param_groups] == \
        [g["momentum"] for g in topt.param_groups]


def test_closed_form_epoch_argument_matches_torch():
    torch = pytest.importorskip("torch")
    for make in (lambda m, o: m.StepLR(o, 2, 0.5), lambda m, o: m.CosineAnnealingLR(o, 9),
                 lambda m, o: m.LinearLR(o, 0.2, 1.0, 5), lambda m, o: m.MultiStepLR(o, [3, 4])):
        o1, o2 = _opt(), torch.optim.SGD([{"params": [torch.zeros(1)], "lr": lr}
                                          for lr in (0.1, 0.05)])
        s1, s2 = make(so_sched, o1), make(torch.optim.lr_scheduler, o2)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for e in (3, 7, 1, 4):
                o1.step()
                o2.step()
                s1.step(e)
                s2.step(e)
                assert s1.get_last_lr() == s2.get_last_lr()


def test_reduce_lr_on_plateau():
    opt = _opt(groups=2)
    s = so_sched.ReduceLROnPlateau(opt, mode="min", factor=0.5, patience=2, cooldown=1,
                                   min_lr=[0.02, 0.0])
    metrics = [1.0, 0.9, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95]
    lrs = []
    for m in metrics:
        opt.step()
        s.step(m)
        lrs.append(s.get_last_lr())
    # best 0.9 at index 1; bad at 2, 3, 4 -> reduce at 4; the cooldown swallows index 5;
    # bad at 6, 7, 8 -> reduce at 8 (group 0: max(0.025, min_lr 0.02))
    assert lrs[3] == [0.1, 0.05]
    assert lrs[4] == [0.05, 0.025]
    assert lrs[7] == [0.05, 0.025]
    assert lrs[8] == [0.025, 0.0125] == lrs[9]
    torch = pytest.importorskip("torch")
    topt = torch.optim.SGD([{"params": [torch.zeros(1)], "lr": lr} for lr in (0.1, 0.05)])
    t = torch.optim.lr_scheduler.ReduceLROnPlateau(topt, mode="min", factor=0.5, patience=2,
                                                   cooldown=1, min_lr=[0.02, 0.0])
    for m, ours in zip(metrics, lrs):
        topt.step()
        t.step(m)
        assert t.get_last_lr() == ours


def test_step_before_optimizer_warns_with_torch_text():
    opt = _opt()
    s = so_sched.StepLR(opt, 2)
    with pytest.warns(UserWarning, match=r"Detected call of `lr_scheduler.step\(\)` before "
                                         r"`optimizer.step\(\)`"):
        s.step()
    opt = _opt()
    s = so_sched.StepLR(opt, 2)
    opt.step()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s.step()
    opt = _opt()
    s = so_sched.StepLR(opt, 2)
    opt.step = lambda closure=None: None  # overridden after the scheduler was made
    with pytest.warns(UserWarning, match="has been overridden after learning rate scheduler"):
        s.step()


def test_get_lr_outside_step_warns():
    s = so_sched.StepLR(_opt(), 2)
    with pytest.warns(UserWarning, match="please use `get_last_lr\\(\\)`"):
        s.get_lr()


def test_state_dict_round_trip():
    opt = _opt()
    s = so_sched.CosineAnnealingLR(opt, T_max=10)
    for _ in range(4):
        opt.step()
        s.step()
    sd = s.state_dict()
    assert "optimizer" not in sd and sd["last_epoch"] == 4 and sd["_step_count"] == 5
    pickle.loads(pickle.dumps(sd))
    opt2 = _opt()
    s2 = so_sched.CosineAnnealingLR(opt2, T_max=10)
    s2.load_state_dict(sd)
    for g, lr in zip(opt2.param_groups, s.get_last_lr()):
        g["lr"] = lr
    for _ in range(3):
        opt.step(), s.step(), opt2.step(), s2.step()
    assert s.get_last_lr() == s2.get_last_lr()


def test_lambda_state_dict_skips_functions_keeps_callable_objects():
    class Factor:
        def __init__(self):
            self.k = 0.5

        def __call__(self, e):
            return self.k ** e

    f = Factor()
    opt = _opt()
    s = so_sched.LambdaLR(opt, [f, lambda e: 1.0])
    sd = s.state_dict()
    assert sd["lr_lambdas"] == [{"k": 0.5}, None]
    f.k = 0.1
    s.load_state_dict(sd)
    assert f.k == 0.5 and "lr_lambdas" in sd


def test_sequential_state_dict():
    opt = _opt()
    s = so_sched.SequentialLR(opt, [so_sched.ConstantLR(opt, 0.5, 2),
                                    so_sched.ExponentialLR(opt, 0.9)], [2])
    for _ in range(4):
        opt.step()
        s.step()
    sd = s.state_dict()
    assert len(sd["_schedulers"]) == 2 and sd["_schedulers"][1]["last_epoch"] == 2


def test_resume_needs_initial_lr():
    with pytest.raises(KeyError, match=r"param 'initial_lr' is not specified in "
                                        r"param_groups\[0\]"):
        so_sched.StepLR(_opt(), 2, last_epoch=3)


@pytest.mark.parametrize("make,exc,msg", [
    (lambda o: so_sched.StepLR(object(), 2), TypeError, "object is not an Optimizer"),
    (lambda o: so_sched.ConstantLR(o, factor=1.5), ValueError, "between 0 and 1"),
    (lambda o: so_sched.LinearLR(o, start_factor=0), ValueError, "greater than 0"),
    (lambda o: so_sched.LinearLR(o, end_factor=2), ValueError, "Ending multiplicative"),
    (lambda o: so_sched.LambdaLR(o, [lambda e: 1]), ValueError, "Expected 2 lr_lambdas"),
    (lambda o: so_sched.MultiplicativeLR(o, 3), TypeError, "lr_lambda should be a function"),
    (lambda o: so_sched.ReduceLROnPlateau(o, factor=1.0), ValueError, "Factor should be"),
    (lambda o: so_sched.ReduceLROnPlateau(o, mode="avg"), ValueError, "mode avg is unknown"),
    (lambda o: so_sched.ReduceLROnPlateau(o, min_lr=[0]), ValueError, "expected 2 min_lrs"),
    (lambda o: so_sched.OneCycleLR(o, 0.1), ValueError, "You must define either"),
    (lambda o: so_sched.OneCycleLR(o, 0.1, total_steps=0), ValueError, "positive integer"),
    (lambda o: so_sched.OneCycleLR(o, 0.1, 10, pct_start=2.0), ValueError, "pct_start"),
    (lambda o: so_sched.OneCycleLR(o, 0.1, 10, anneal_strategy="x"), ValueError,
     "anneal_strategy must be one of"),
    (lambda o: so_sched.OneCycleLR(o, [0.1], 10), ValueError,
     "max_lr must have the same length as optimizer.param_groups"),
    (lambda o: so_sched.SequentialLR(o, [], []), ValueError, "expects at least one"),
    (lambda o: so_sched.SequentialLR(o, [so_sched.StepLR(o, 1)], [3]), ValueError,
     "number of milestones"),
    (lambda o: so_sched.SequentialLR(o, [so_sched.ReduceLROnPlateau(o)], []), ValueError,
     "does not support `ReduceLROnPlateau`"),
    (lambda o: so_sched.CosineAnnealingWarmRestarts(o, T_0=0), ValueError,
     "Expected positive integer T_0"),
])
def test_validation(make, exc, msg):
    with pytest.raises(exc, match=msg):
        make(_opt())


def test_onecycle_past_total_steps():
    opt = _opt()
    s = so_sched.OneCycleLR(opt, 0.1, total_steps=2)
    opt.step()
    s.step()
    opt.step()
    s.step()
    with pytest.raises(ValueError, match="Tried to step 3 times. The specified number of "
                                         "total steps is 2"):
        s.step()


def test_onecycle_cycles_adam_betas():
    opt = _opt(Adam, groups=1, lrs=(0.1,))
    s = so_sched.OneCycleLR(opt, max_lr=0.1, total_steps=10)
    assert opt.param_groups[0]["betas"][0] == 0.95
    for _ in range(3):
        opt.step()
        s.step()
    assert 0.85 <= opt.param_groups[0]["betas"][0] < 0.95


def test_lr_applied_by_optimizer():
    """The scheduler's lr is what the fused kernel uses: SGD without momentum moves the
    param by exactly lr * grad."""
    p = shardopt.zeros(2)
    opt = SGD([p], lr=1.0)
    s = so_sched.ExponentialLR(opt, 0.5)
    total = 0.0
    for k in range(4):
        p.grad = shardopt.ones(2)
        opt.step()
        total += 0.5 ** k
        s.step()
    np.testing.assert_allclose(p.numpy(), -total)


def test_drives_sharded_optimizer():
    from shardopt.sharded_optim import ShardedOptimizer
    from shardopt import nn
    model = nn.Linear(3, 2)
    opt = ShardedOptimizer(dict(model.named_parameters()), SGD, lr=0.2)
    s = so_sched.StepLR(opt, step_size=1, gamma=0.5)
    for p in model.parameters():
        p.grad = shardopt.ones(*p.shape)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        opt.step()
        s.step()
    assert s.get_last_lr() == [0.1]
    assert opt.param_groups[0]["lr"] == 0.1
    assert opt._opt_called is True


def test_tensor_lr_is_updated_in_place():
    lr = shardopt.tensor(0.1, dtype=shardopt.float64)
    opt = Adam([shardopt.zeros(2)], lr=lr)
    s = so_sched.ExponentialLR(opt, gamma=0.5)
    for _ in range(2):
        opt.step()
        s.step()
    assert opt.param_groups[0]["lr"] is lr  # filled in place, never replaced
    assert lr.item() == pytest.approx(0.025)
    last = s.get_last_lr()[0]
    assert last is not lr and last.item() == pytest.approx(0.025)  # a copy, not an alias
