"""RMSprop and Adagrad (fused C kernels): float64 NumPy references, bit-exact float32
emulation of the kernel's operation order, half-precision params, non-contiguous operands,
state layout and state_dict, validation messages, and comparison with torch.optim."""
import copy
import itertools

import numpy as np
import pytest

import shardopt
from shardopt import _C
from shardopt.optim import Adagrad, RMSprop

from _optim_ref import bf16_round, to_numpy, to_tensor

RMS_CASES = [dict(momentum=m, centered=c, weight_decay=w, maximize=x)
             for m, c, w, x in itertools.product([0.0, 0.9], [False, True], [0.0, 0.05],
                                                 [False, True])]
ADA_CASES = [dict(lr_decay=d, weight_decay=w, initial_accumulator_value=a, maximize=x)
             for d, w, a, x in itertools.product([0.0, 0.01], [0.0, 0.1], [0.0, 0.3],
                                                 [False, True])]


# ---------------------------------------------------------------- references

def rmsprop_ref(p, grads, dt, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
                centered=False, maximize=False, store=lambda x: x):
    """torch.optim.RMSprop in NumPy dtype `dt`, in the kernel's operation order; `store`
    rounds values written back to a tensor (identity for float32/float64)."""
    f = dt
    p = np.array(p, dtype=dt)
    sq, buf, ga = np.zeros_like(p), np.zeros_like(p), np.zeros_like(p)
    a, oma, nlr = f(alpha), f(1.0 - alpha), f(-lr)
    for g in grads:
        g = np.array(g, dtype=dt)
        if maximize:
            g = -g
        if weight_decay:
            g = g + f(weight_decay) * p
        # the kernel computes in the math type and rounds only what it stores
        sq_new = sq * a + oma * g * g
        if centered:
            w = oma
            ga_new = np.where(w < 0.5, ga + w * (g - ga), g - (g - ga) * (f(1) - w))
            avg = np.sqrt(sq_new - ga_new * ga_new)
            ga = store(ga_new)
        else:
            avg = np.sqrt(sq_new)
        sq = store(sq_new)
        avg = avg + f(eps)
        if momentum > 0:
            buf_new = buf * f(momentum) + g / avg
            p = store(p + nlr * buf_new)
            buf = store(buf_new)
        else:
            p = store(p + (nlr * g) / avg)
    return p, sq, buf, ga


def adagrad_ref(p, grads, dt, lr=1e-2, lr_decay=0.0, weight_decay=0.0,
                initial_accumulator_value=0.0, eps=1e-10, maximize=False, store=lambda x: x):
    f = dt
    p = np.array(p, dtype=dt)
    s = store(np.full_like(p, initial_accumulator_value))
    for t, g in enumerate(grads, start=1):
        g = np.array(g, dtype=dt)
        if maximize:
            g = -g
        if weight_decay:
            g = g + f(weight_decay) * p
        neg_clr = f(-(lr / (1.0 + (t - 1.0) * lr_decay)))
        s_new = s + g * g
        p = store(p + (neg_clr * g) / (np.sqrt(s_new) + f(eps)))
        s = store(s_new)
    return p, s


def _run(cls, kw, p0, grads, dtype=None, make_param=None):
    p = make_param(p0) if make_param else to_tensor(p0, dtype)
    opt = cls([p], **kw)
    for g in grads:
        p.grad = to_tensor(g, dtype) if dtype is not None else to_tensor(g.astype(p0.dtype))
        opt.step()
    return p, opt


def _data(dt, shape=(7, 33), steps=8, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape).astype(dt),
            [rng.standard_normal(shape).astype(dt) for _ in range(steps)])


# ---------------------------------------------------------------- float64 / float32

@pytest.mark.parametrize("kw", RMS_CASES)
def test_rmsprop_float64_matches_reference(kw):
    p0, grads = _data(np.float64)
    p, opt = _run(RMSprop, kw, p0, grads)
    want, sq, buf, ga = rmsprop_ref(p0, grads, np.float64, **kw)
    np.testing.assert_allclose(to_numpy(p), want, rtol=1e-13, atol=1e-15)
    st = opt.state[p]
    np.testing.assert_allclose(to_numpy(st["square_avg"]), sq, rtol=1e-13, atol=1e-16)
    assert float(st["step"].item()) == len(grads)
    assert ("momentum_buffer" in st) == (kw["momentum"] > 0)
    assert ("grad_avg" in st) == kw["centered"]
    if kw["momentum"] > 0:
        np.testing.assert_allclose(to_numpy(st["momentum_buffer"]), buf, rtol=1e-12)
    if kw["centered"]:
        np.testing.assert_allclose(to_numpy(st["grad_avg"]), ga, rtol=1e-13, atol=1e-16)


@pytest.mark.parametrize("kw", RMS_CASES)
def test_rmsprop_float32_bit_exact_emulation(kw):
    p0, grads = _data(np.float32)
    p, _ = _run(RMSprop, kw, p0, grads)
    want = rmsprop_ref(p0, grads, np.float32, **kw)[0]
    np.testing.assert_array_equal(to_numpy(p), want)
    ref64 = rmsprop_ref(p0, grads, np.float64, **kw)[0]
    np.testing.assert_allclose(to_numpy(p), ref64, rtol=2e-4, atol=2e-5)


@pytest.mark.parametrize("kw", ADA_CASES)
def test_adagrad_float64_and_float32(kw):
    p0, grads = _data(np.float64)
    p, opt = _run(Adagrad, kw, p0, grads)
    want, s = adagrad_ref(p0, grads, np.float64, **kw)
    np.testing.assert_allclose(to_numpy(p), want, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(to_numpy(opt.state[p]["sum"]), s, rtol=1e-13)
    assert float(opt.state[p]["step"].item()) == len(grads)
    p0, grads = _data(np.float32)
    p, _ = _run(Adagrad, kw, p0, grads)
    np.testing.assert_array_equal(to_numpy(p), adagrad_ref(p0, grads, np.float32, **kw)[0])


@pytest.mark.parametrize("name,store", [("float16", lambda x: x.astype(np.float16)
                                         .astype(np.float32)), ("bfloat16", bf16_round)])
def test_half_params_use_float32_math(name, store):
    dtype = getattr(shardopt, name)
    p0, grads = _data(np.float32, shape=(3, 40), steps=5)
    p0 = store(p0)
    grads = [store(g) for g in grads]
    kw = dict(momentum=0.9, centered=True, weight_decay=0.01, lr=1e-3)
    p, opt = _run(RMSprop, kw, p0, grads, dtype=dtype)
    assert opt.state[p]["square_avg"].dtype == dtype
    want = rmsprop_ref(p0, grads, np.float32, store=store, **kw)[0]
    np.testing.assert_array_equal(to_numpy(p), want)
    p, opt = _run(Adagrad, dict(lr_decay=0.1, initial_accumulator_value=0.1), p0, grads,
                  dtype=dtype)
    want = adagrad_ref(p0, grads, np.float32, store=store, lr_decay=0.1,
                       initial_accumulator_value=0.1)[0]
    np.testing.assert_array_equal(to_numpy(p), want)


def test_non_contiguous_operands_take_the_strided_path():
    """A transposed param and a strided grad/state: same result as contiguous copies."""
    rng = np.random.default_rng(3)
    base = rng.standard_normal((6, 9))
    for cls, kw in ((RMSprop, dict(momentum=0.5, centered=True)), (Adagrad, dict(lr_decay=0.1))):
        p = to_tensor(base).t()
        assert not p.is_contiguous()
        opt = cls([p], **kw)
        ref = to_tensor(base.T.copy())
        ropt = cls([ref], **kw)
        for _ in range(4):
            g = rng.standard_normal((12, 9))
            p.grad = to_tensor(g)[::2].t()  # strided in both dims
            ref.grad = to_tensor(g[::2].T.copy())
            opt.step()
            ropt.step()
        np.testing.assert_array_equal(to_numpy(p), to_numpy(ref))


def test_kernel_reads_existing_state_and_writes_every_element():
    """Direct call: non-zero state in, results match the reference started from it."""
    rng = np.random.default_rng(5)
    n = 1031  # not a multiple of any vector width
    p0, g = rng.standard_normal(n), rng.standard_normal(n)
    sq0, buf0, ga0 = rng.random(n) + 1, rng.standard_normal(n), rng.standard_normal(n) * 0.1
    p, sq, buf, ga = (to_tensor(x) for x in (p0, sq0, buf0, ga0))
    step = shardopt.zeros(()).float()
    step.fill_(4.0)
    _C._fused_rmsprop_([p], [to_tensor(g)], [sq], [buf], [ga], [step], lr=0.1, alpha=0.9,
                       eps=1e-6, weight_decay=0.0, momentum=0.8, centered=True, maximize=False)
    s = sq0 * 0.9 + (1 - 0.9) * g * g
    a = ga0 + (1 - 0.9) * (g - ga0)
    avg = np.sqrt(s - a * a) + 1e-6
    b = buf0 * 0.8 + g / avg
    np.testing.assert_allclose(to_numpy(sq), s, rtol=1e-14)
    np.testing.assert_allclose(to_numpy(ga), a, rtol=1e-14)
    np.testing.assert_allclose(to_numpy(buf), b, rtol=1e-12)
    np.testing.assert_allclose(to_numpy(p), p0 - 0.1 * b, rtol=1e-12)
    assert step.item() == 5.0
    # Adagrad: the counter goes 5 -> 6, so clr = lr / (1 + (6 - 1) * lr_decay) = 0.1 / 2.25
    p, s = to_tensor(p0), to_tensor(sq0)
    _C._fused_adagrad_([p], [to_tensor(g)], [s], [step], lr=0.1, lr_decay=0.25,
                       weight_decay=0.0, eps=1e-10, maximize=False)
    ss = sq0 + g * g
    np.testing.assert_allclose(to_numpy(s), ss, rtol=1e-15)
    np.testing.assert_allclose(to_numpy(p), p0 - (0.1 / 2.25) * g / (np.sqrt(ss) + 1e-10),
                               rtol=1e-13)
    assert step.item() == 6.0


def test_empty_and_gradless_params():
    a, b, c = shardopt.zeros(0), shardopt.ones(3), shardopt.ones(2)
    for cls in (RMSprop, Adagrad):
        opt = cls([a, b, c], lr=0.1)
        a.grad, b.grad = shardopt.zeros(0), shardopt.ones(3)
        c.grad = None
        opt.step()
        np.testing.assert_array_equal(to_numpy(c), [1.0, 1.0])
        assert to_numpy(b)[0] < 1.0


# ---------------------------------------------------------------- API and validation

def test_defaults_and_state_dict_format():
    p = shardopt.ones(4)
    opt = RMSprop([p])
    g = opt.param_groups[0]
    assert (g["lr"], g["alpha"], g["eps"], g["weight_decay"], g["momentum"], g["centered"],
            g["capturable"], g["foreach"], g["maximize"], g["differentiable"]) == \
        (1e-2, 0.99, 1e-8, 0, 0, False, False, None, False, False)
    opt = Adagrad([p], initial_accumulator_value=0.5)
    g = opt.param_groups[0]
    assert (g["lr"], g["lr_decay"], g["weight_decay"], g["initial_accumulator_value"],
            g["eps"], g["foreach"], g["maximize"], g["differentiable"], g["fused"]) == \
        (1e-2, 0, 0, 0.5, 1e-10, None, False, False, None)
    st = opt.state_dict()["state"][0]  # created eagerly, as torch does
    assert set(st) == {"step", "sum"} and st["step"].item() == 0.0
    np.testing.assert_array_equal(to_numpy(st["sum"]), [0.5] * 4)


def test_state_dict_round_trip_continues_identically():
    p0, grads = _data(np.float64, steps=6)
    for cls, kw in ((RMSprop, dict(momentum=0.9, centered=True)), (Adagrad, dict(lr_decay=0.1))):
        p, opt = _run(cls, kw, p0, grads[:3])
        q = to_tensor(to_numpy(p))
        opt2 = cls([q], **kw)
        opt2.load_state_dict(copy.deepcopy(opt.state_dict()))  # state tensors are live
        for g in grads[3:]:
            p.grad, q.grad = to_tensor(g), to_tensor(g)
            opt.step()
            opt2.step()
        np.testing.assert_array_equal(to_numpy(p), to_numpy(q))


@pytest.mark.parametrize("make,msg", [
    (lambda p: RMSprop([p], lr=-1), "Invalid learning rate: -1"),
    (lambda p: RMSprop([p], eps=-1), "Invalid epsilon value: -1"),
    (lambda p: RMSprop([p], momentum=-1), "Invalid momentum value: -1"),
    (lambda p: RMSprop([p], weight_decay=-1), "Invalid weight_decay value: -1"),
    (lambda p: RMSprop([p], alpha=-1), "Invalid alpha value: -1"),
    (lambda p: Adagrad([p], lr=-1), "Invalid learning rate: -1"),
    (lambda p: Adagrad([p], lr_decay=-1), "Invalid lr_decay value: -1"),
    (lambda p: Adagrad([p], weight_decay=-1), "Invalid weight_decay value: -1"),
    (lambda p: Adagrad([p], initial_accumulator_value=-1),
     "Invalid initial_accumulator_value value: -1"),
    (lambda p: Adagrad([p], eps=-1), "Invalid epsilon value: -1"),
    (lambda p: Adagrad([p], fused=True, foreach=True), "cannot be `True` together"),
])
def test_validation_messages(make, msg):
    with pytest.raises((ValueError, RuntimeError), match=msg):
        make(shardopt.ones(2))


def test_kernel_argument_errors_name_the_argument():
    p, g = shardopt.ones(3), shardopt.ones(3)
    st = shardopt.zeros(()).float()
    with pytest.raises(ValueError, match="argument 'square_avgs' has 0 tensors but 'params' "
                                         "has 1"):
        _C._fused_rmsprop_([p], [g], [], None, None, [st], lr=0.1, alpha=0.9, eps=1e-8,
                           weight_decay=0.0, momentum=0.0, centered=False, maximize=False)
    with pytest.raises(TypeError, match="argument 'momentum_buffers' must be a list of "
                                        "Tensors, not None"):
        _C._fused_rmsprop_([p], [g], [shardopt.zeros(3)], None, None, [st], lr=0.1, alpha=0.9,
                           eps=1e-8, weight_decay=0.0, momentum=0.5, centered=False,
                           maximize=False)
    with pytest.raises(ValueError, match=r"state_sums\[0\] has shape \[2\] but params\[0\] "
                                         r"has shape \[3\]"):
        _C._fused_adagrad_([p], [g], [shardopt.zeros(2)], [st], lr=0.1, lr_decay=0.0,
                           weight_decay=0.0, eps=1e-10, maximize=False)
    with pytest.raises(TypeError, match=r"grads\[0\] has dtype float64 but params\[0\] has "
                                        r"dtype float32"):
        _C._fused_adagrad_([p], [g.double()], [shardopt.zeros(3)], [st], lr=0.1,
                           lr_decay=0.0, weight_decay=0.0, eps=1e-10, maximize=False)
    with pytest.raises(TypeError, match=r"state_steps\[0\] must be a one-element"):
        _C._fused_adagrad_([p], [g], [shardopt.zeros(3)], [shardopt.zeros(2)], lr=0.1,
                           lr_decay=0.0, weight_decay=0.0, eps=1e-10, maximize=False)
    with pytest.raises(TypeError, match=r"params\[0\] has dtype int64"):
        _C._fused_adagrad_([shardopt.tensor([1])], [shardopt.tensor([1])],
                           [shardopt.tensor([1])], [st], lr=0.1, lr_decay=0.0,
                           weight_decay=0.0, eps=1e-10, maximize=False)
    assert st.item() == 0.0  # nothing was written by the failed calls


@pytest.mark.cuda
def test_cuda_matches_cpu(cuda_device):
    p0, grads = _data(np.float32, shape=(70001,), steps=4)
    for cls, kw in ((RMSprop, dict(momentum=0.9, centered=True, weight_decay=0.01)),
                    (Adagrad, dict(lr_decay=0.05, weight_decay=0.01))):
        cpu, _ = _run(cls, kw, p0, grads)
        gpu, _ = _run(cls, kw, p0, grads,
                      make_param=lambda a: to_tensor(a, device=cuda_device))
        np.testing.assert_allclose(to_numpy(gpu), to_numpy(cpu), rtol=1e-6, atol=1e-7)


# ---------------------------------------------------------------- torch

@pytest.mark.parametrize("impl", ["single", "foreach"])
@pytest.mark.parametrize("dt", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("kw", RMS_CASES)
def test_rmsprop_vs_torch(kw, dt, impl):
    torch = pytest.importorskip("torch")
    _vs_torch(torch, RMSprop, torch.optim.RMSprop, kw, dt, {"foreach": impl == "foreach"})


@pytest.mark.parametrize("impl", ["single", "foreach", "fused"])
@pytest.mark.parametrize("dt", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("kw", ADA_CASES)
def test_adagrad_vs_torch(kw, dt, impl):
    torch = pytest.importorskip("torch")
    extra = {"fused": True} if impl == "fused" else {"foreach": impl == "foreach"}
    _vs_torch(torch, Adagrad, torch.optim.Adagrad, kw, dt, extra)


def _vs_torch(torch, ours_cls, torch_cls, kw, dt, extra):
    rng = np.random.default_rng(1)
    p0 = [rng.standard_normal(s).astype(dt) for s in [(8, 5), (13,), (1,)]]
    ours = [to_tensor(x) for x in p0]
    theirs = [torch.tensor(x) for x in p0]
    o1, o2 = ours_cls(ours, lr=1e-2, **kw), torch_cls(theirs, lr=1e-2, **kw, **extra)
    for _ in range(15):
        for a, b in zip(ours, theirs):
            g = rng.standard_normal(b.shape).astype(dt)
            a.grad, b.grad = to_tensor(g), torch.tensor(g)
        o1.step()
        o2.step()
    tol = dict(rtol=2e-5, atol=2e-6) if dt == np.float32 else dict(rtol=1e-12, atol=1e-13)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(to_numpy(a), b.detach().numpy(), **tol)
    sd1, sd2 = o1.state_dict(), o2.state_dict()
    assert set(sd1["param_groups"][0]) == set(sd2["param_groups"][0])
    for k, st in sd2["state"].items():
        assert set(st) == set(sd1["state"][k])
        for name, t in st.items():
            np.testing.assert_allclose(to_numpy(sd1["state"][k][name]), t.numpy(), **tol)
