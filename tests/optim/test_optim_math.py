"""SGD / Adam / AdamW against the formulas of torch.optim (spec section 9).

Each option combination runs 20 steps with fresh random gradients and is compared with
  * a float64 NumPy reference of the formulas: float64 params within rtol 1e-12; float32
    params within rtol 2e-5 / atol 2e-6 (fp32 rounding accumulated over 20 steps; Adam's
    m/sqrt(v) amplifies relative errors of v by at most 1/2);
  * for float32 (and float16/bfloat16) params, an emulation of the kernel's exact operation
    order in NumPy float32: bit for bit.
The CUDA variants (marked `cuda`, skipped without a GPU) run the same math through the
multi-tensor-apply kernels and must agree with the CPU within fp32 rounding (nvcc may
contract a*b+c into fma).
"""
import itertools

import numpy as np
import pytest

import shardopt
from shardopt import _C
from shardopt.optim import SGD, Adam, AdamW

from _optim_ref import (emu_adam, emu_sgd, ref_adam, ref_sgd, store_fn, to_numpy, to_tensor,
                        dtype_by_name)

STEPS = 20
FP32_TOL = dict(rtol=2e-5, atol=2e-6)
FP64_TOL = dict(rtol=1e-12, atol=1e-14)

SGD_CASES = [
    dict(),
    dict(weight_decay=0.1),
    dict(maximize=True),
    dict(momentum=0.9),
    dict(momentum=0.9, dampening=0.3),
    dict(momentum=0.9, nesterov=True),
    dict(momentum=0.5, dampening=0.1, weight_decay=0.05, maximize=True),
    dict(momentum=0.9, nesterov=True, weight_decay=0.05, maximize=True),
]
ADAM_CASES = [dict(amsgrad=a, weight_decay=w, maximize=m)
              for a, w, m in itertools.product([False, True], [0.0, 0.1], [False, True])]


def _ids(cases):
    return ["-".join(f"{k}={v}" for k, v in c.items()) or "plain" for c in cases]


def _data(shape, seed):
    rng = np.random.default_rng(seed)
    p0 = rng.standard_normal(shape)
    grads = [rng.standard_normal(shape) for _ in range(STEPS)]
    return p0, grads


def _run(opt_cls, p0, grads, kwargs, dtype="float32", device="cpu", view=None):
    """Run STEPS steps of opt_cls on one param; `view` makes the param a non-contiguous
    view (it receives the tensor and returns (view, to_plain) functions)."""
    dt = dtype_by_name(dtype)
    if view is None:
        p = to_tensor(p0, dt, device)
    else:
        p = view(to_tensor(p0, dt, device))
    opt = opt_cls([p], lr=1e-2, **kwargs)
    for g in grads:
        p.grad = to_tensor(g, dt, device)
        opt.step()
    return p, opt


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("kw", SGD_CASES, ids=_ids(SGD_CASES))
def test_sgd_matches_reference(kw, dtype):
    p0, grads = _data((7, 13), 1)
    p, opt = _run(SGD, p0, grads, kw, dtype)
    ref_p, ref_buf = ref_sgd(p0, grads, 1e-2, **kw)
    tol = FP64_TOL if dtype == "float64" else FP32_TOL
    np.testing.assert_allclose(to_numpy(p), ref_p, **tol)
    if kw.get("momentum", 0):
        np.testing.assert_allclose(to_numpy(opt.state[p]["momentum_buffer"]), ref_buf, **tol)
    else:
        assert p not in opt.state or "momentum_buffer" not in opt.state[p]
    if dtype == "float32":
        emu_p, emu_buf = emu_sgd(p0, grads, 1e-2, **kw)
        np.testing.assert_array_equal(to_numpy(p), emu_p)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("opt_cls", [Adam, AdamW])
@pytest.mark.parametrize("kw", ADAM_CASES, ids=_ids(ADAM_CASES))
def test_adam_matches_reference(kw, opt_cls, dtype):
    p0, grads = _data((5, 11), 2)
    p, opt = _run(opt_cls, p0, grads, kw, dtype)
    decoupled = opt_cls is AdamW
    ref_p, ref_m, ref_v, ref_vmax = ref_adam(p0, grads, 1e-2, decoupled=decoupled, **kw)
    tol = FP64_TOL if dtype == "float64" else FP32_TOL
    st = opt.state[p]
    np.testing.assert_allclose(to_numpy(p), ref_p, **tol)
    np.testing.assert_allclose(to_numpy(st["exp_avg"]), ref_m, **tol)
    np.testing.assert_allclose(to_numpy(st["exp_avg_sq"]), ref_v, **tol)
    assert ("max_exp_avg_sq" in st) == kw["amsgrad"]
    if kw["amsgrad"]:
        np.testing.assert_allclose(to_numpy(st["max_exp_avg_sq"]), ref_vmax, **tol)
    step = st["step"]
    assert step.dtype == shardopt.float32 and step.device.type == "cpu" and step.ndim == 0
    assert float(to_numpy(step)) == STEPS
    if dtype == "float32":
        emu_p, emu_m, emu_v, _ = emu_adam(p0, grads, 1e-2, decoupled=decoupled, **kw)
        np.testing.assert_array_equal(to_numpy(p), emu_p)
        np.testing.assert_array_equal(to_numpy(st["exp_avg"]), emu_m)
        np.testing.assert_array_equal(to_numpy(st["exp_avg_sq"]), emu_v)


def test_amsgrad_maxes_raw_v_not_corrected():
    """With a large early gradient then small ones, the raw-v max differs from the max of the
    bias-corrected v (the docstring's version); the reference uses the raw max."""
    p0 = np.zeros(4)
    grads = [np.full(4, 10.0)] + [np.full(4, 0.01)] * 5
    p = to_tensor(p0, shardopt.float64)
    opt = Adam([p], lr=0.1, amsgrad=True)
    for g in grads:
        p.grad = to_tensor(g, shardopt.float64)
        opt.step()
    ref_p, *_ = ref_adam(p0, grads, 0.1, amsgrad=True)
    np.testing.assert_allclose(to_numpy(p), ref_p, rtol=1e-12)


def test_adamw_decay_before_moment_update():
    """AdamW with g = 0: p only decays by (1 - lr*wd) each step (the update term is 0/eps)."""
    p = to_tensor(np.full(3, 2.0), shardopt.float64)
    opt = AdamW([p], lr=0.1, weight_decay=0.5)
    for _ in range(3):
        p.grad = to_tensor(np.zeros(3), shardopt.float64)
        opt.step()
    np.testing.assert_allclose(to_numpy(p), 2.0 * 0.95 ** 3, rtol=1e-15)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("which", ["sgd", "adam", "adamw"])
def test_half_params_fp32_math(which, dtype):
    """float16/bfloat16 params: fp32 math, values rounded once when stored; state keeps the
    param dtype.  Bit-exact against the emulation."""
    p0, grads = _data((9, 5), 3)
    store = store_fn(dtype)
    if which == "sgd":
        kw = dict(momentum=0.9, weight_decay=0.01)
        p, opt = _run(SGD, p0, grads, kw, dtype)
        emu_p, emu_buf = emu_sgd(p0, grads, 1e-2, store=store, **kw)
        np.testing.assert_array_equal(to_numpy(p), emu_p)
        buf = opt.state[p]["momentum_buffer"]
        assert buf.dtype == dtype_by_name(dtype)
        np.testing.assert_array_equal(to_numpy(buf), emu_buf)
    else:
        cls = Adam if which == "adam" else AdamW
        kw = dict(weight_decay=0.01, amsgrad=True)
        p, opt = _run(cls, p0, grads, kw, dtype)
        emu_p, emu_m, emu_v, emu_vmax = emu_adam(p0, grads, 1e-2, store=store,
                                                 decoupled=which == "adamw", **kw)
        st = opt.state[p]
        for k in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"):
            assert st[k].dtype == dtype_by_name(dtype)
        np.testing.assert_array_equal(to_numpy(p), emu_p)
        np.testing.assert_array_equal(to_numpy(st["exp_avg"]), emu_m)
        np.testing.assert_array_equal(to_numpy(st["exp_avg_sq"]), emu_v)
        np.testing.assert_array_equal(to_numpy(st["max_exp_avg_sq"]), emu_vmax)
    # and close to the float64 formulas at the dtype's precision
    ref = ref_sgd(p0, grads, 1e-2, **kw)[0] if which == "sgd" else \
        ref_adam(p0, grads, 1e-2, decoupled=which == "adamw", **kw)[0]
    np.testing.assert_allclose(to_numpy(p), ref, rtol=0.05, atol=0.05)


def _transposed(t):
    return t.t()


def _strided(t):
    # every other column of a wider buffer: a view with a non-unit inner stride
    wide = _C.empty((t.shape[0], 2 * t.shape[1]), dtype=t.dtype, device=t.device).zero_()
    v = wide[:, ::2]
    v.copy_(t)
    return v


@pytest.mark.parametrize("make_view", [_transposed, _strided], ids=["transposed", "strided"])
@pytest.mark.parametrize("which", ["sgd", "adam"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_non_contiguous_params_match_contiguous(make_view, which, dtype):
    """Non-contiguous params take the strided path and give the same bits as contiguous."""
    shape = (6, 10) if make_view is _strided else (10, 6)
    p0, grads = _data(shape, 4)
    if which == "sgd":
        cls, kw = SGD, dict(momentum=0.9, nesterov=True, weight_decay=0.01)
    else:
        cls, kw = Adam, dict(amsgrad=True, weight_decay=0.01)
    dt = dtype_by_name(dtype)
    p = make_view(to_tensor(p0, dt))
    assert not p.is_contiguous()
    q = to_tensor(to_numpy(p), dt)
    opt_p = cls([p], lr=1e-2, **kw)
    opt_q = cls([q], lr=1e-2, **kw)
    for g in grads:
        g = g.reshape(shape)
        gv = to_tensor(g, dt).t() if make_view is _transposed else to_tensor(g, dt)
        p.grad = gv
        q.grad = to_tensor(to_numpy(gv), dt)
        opt_p.step()
        opt_q.step()
    np.testing.assert_array_equal(to_numpy(p), to_numpy(q))


def test_many_tensors_one_call_mixed_sizes():
    """A group of many tensors (sizes 0, 1, odd, large) in one fused call: each one equals
    the same update done alone."""
    sizes = [0, 1, 3, 17, 1000, 4099, 65537, 7]
    rng = np.random.default_rng(5)
    p0s = [rng.standard_normal(n).astype(np.float32) for n in sizes]
    gs = [[rng.standard_normal(n).astype(np.float32) for n in sizes] for _ in range(3)]
    params = [to_tensor(x) for x in p0s]
    opt = AdamW(params, lr=1e-2, amsgrad=True)
    for step_grads in gs:
        for p, g in zip(params, step_grads):
            p.grad = to_tensor(g)
        opt.step()
    for i, n in enumerate(sizes):
        emu_p, *_ = emu_adam(p0s[i], [s[i] for s in gs], 1e-2, weight_decay=1e-2,
                             amsgrad=True, decoupled=True)
        np.testing.assert_array_equal(to_numpy(params[i]), emu_p)


def test_params_without_grad_are_skipped_and_get_no_state():
    a = to_tensor(np.ones(3))
    b = to_tensor(np.ones(3))
    opt = Adam([a, b], lr=0.1)
    a.grad = to_tensor(np.ones(3))
    opt.step()
    assert b not in opt.state
    np.testing.assert_array_equal(to_numpy(b), np.ones(3))
    assert not np.array_equal(to_numpy(a), np.ones(3))


def test_per_tensor_step_counts():
    """Each param keeps its own step: a param that joins later gets step-1 bias corrections."""
    a = to_tensor(np.zeros(2), shardopt.float64)
    b = to_tensor(np.zeros(2), shardopt.float64)
    opt = Adam([a, b], lr=0.1)
    a.grad = to_tensor(np.ones(2), shardopt.float64)
    opt.step()
    b.grad = to_tensor(np.ones(2), shardopt.float64)
    opt.step()
    assert float(to_numpy(opt.state[a]["step"])) == 2.0
    assert float(to_numpy(opt.state[b]["step"])) == 1.0
    ref_b, *_ = ref_adam(np.zeros(2), [np.ones(2)], 0.1)
    np.testing.assert_allclose(to_numpy(b), ref_b, rtol=1e-15)


def test_version_counters_bumped():
    p = to_tensor(np.ones(4))
    p.grad = to_tensor(np.ones(4))
    opt = SGD([p], lr=0.1, momentum=0.9)
    v0, g0 = p._version, p.grad._version
    opt.step()
    assert p._version > v0
    assert p.grad._version == g0
    buf = opt.state[p]["momentum_buffer"]
    vb = buf._version
    opt.step()
    assert buf._version > vb
    a = to_tensor(np.ones(4))
    a.grad = to_tensor(np.ones(4))
    opt = Adam([a], lr=0.1, amsgrad=True)
    opt.step()
    versions = {k: t._version for k, t in opt.state[a].items()}
    opt.step()
    assert all(opt.state[a][k]._version > v for k, v in versions.items())


def test_first_step_buffer_is_overwritten_poisoned():
    """The first-step momentum buffer is a copy of the gradient whatever it held (NaN here),
    and state the kernel must write (Adam's moments) is fully rewritten from zeros."""
    p = to_tensor(np.ones(5, np.float32))
    g = to_tensor(np.arange(5, dtype=np.float32))
    buf = to_tensor(np.full(5, np.nan, np.float32))
    _C._fused_sgd_([p], [g], [buf], [True], lr=0.5, weight_decay=0.0, momentum=0.9,
                   dampening=0.5, nesterov=False, maximize=False)
    np.testing.assert_array_equal(to_numpy(buf), np.arange(5, dtype=np.float32))
    np.testing.assert_array_equal(to_numpy(p), 1 - 0.5 * np.arange(5, dtype=np.float32))
    # non-contiguous buffer + first step: the strided path copies too
    wide = to_tensor(np.full((5, 2), np.nan, np.float32))
    bufv = wide[:, 0]
    p = to_tensor(np.ones(5, np.float32))
    _C._fused_sgd_([p], [g], [bufv], [True], lr=0.5, weight_decay=0.0, momentum=0.9,
                   dampening=0.5, nesterov=False, maximize=False)
    np.testing.assert_array_equal(to_numpy(bufv), np.arange(5, dtype=np.float32))
    assert np.isnan(to_numpy(wide)[:, 1]).all()  # the gaps are not touched


def test_nan_propagates_through_amsgrad_max():
    p = to_tensor(np.zeros(2, np.float32))
    opt = Adam([p], lr=0.1, amsgrad=True)
    p.grad = to_tensor(np.array([np.nan, 1.0], np.float32))
    opt.step()
    vmax = to_numpy(opt.state[p]["max_exp_avg_sq"])
    assert np.isnan(vmax[0]) and vmax[1] > 0
    p.grad = to_tensor(np.array([1.0, 1.0], np.float32))
    opt.step()
    assert np.isnan(to_numpy(opt.state[p]["max_exp_avg_sq"])[0])  # torch.maximum keeps NaN


def test_step_returns_closure_loss():
    p = to_tensor(np.ones(2))
    p.grad = to_tensor(np.ones(2))
    calls = []

    def closure():
        calls.append(1)
        return 3.5

    for opt in (SGD([p], lr=0.1), Adam([p], lr=0.1), AdamW([p], lr=0.1)):
        assert opt.step(closure) == 3.5
        assert opt.step() is None
    assert len(calls) == 3


def test_zero_grad():
    p = to_tensor(np.ones(2))
    p.grad = to_tensor(np.ones(2))
    opt = SGD([p], lr=0.1)
    opt.zero_grad(set_to_none=False)
    np.testing.assert_array_equal(to_numpy(p.grad), np.zeros(2))
    opt.zero_grad()
    assert p.grad is None


def test_step_hooks():
    p = to_tensor(np.ones(2))
    p.grad = to_tensor(np.ones(2))
    opt = SGD([p], lr=0.1)
    seen = []
    h1 = opt.register_step_pre_hook(lambda o, a, k: seen.append("pre"))
    h2 = opt.register_step_post_hook(lambda o, a, k: seen.append("post"))
    opt.step()
    assert seen == ["pre", "post"]
    h1.remove()
    h2.remove()
    opt.step()
    assert seen == ["pre", "post"]


# ---------------------------------------------------------------- CUDA

@pytest.mark.cuda
@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "bfloat16"])
@pytest.mark.parametrize("which", ["sgd", "sgd_nesterov", "adam", "adamw_amsgrad"])
def test_cuda_matches_cpu(which, dtype, cuda_device):
    """The multi-tensor-apply kernels (many tensors, several chunks, ragged tails, an
    unaligned view) agree with the CPU kernels."""
    cls, kw = {
        "sgd": (SGD, dict(momentum=0.9, dampening=0.1, weight_decay=0.01)),
        "sgd_nesterov": (SGD, dict(momentum=0.9, nesterov=True, maximize=True)),
        "adam": (Adam, dict(weight_decay=0.01, maximize=True)),
        "adamw_amsgrad": (AdamW, dict(amsgrad=True)),
    }[which]
    dt = dtype_by_name(dtype)
    rng = np.random.default_rng(6)
    sizes = [1, 3, 65536, 65536 * 3 + 5, 1000, 0, 257] + [11] * 40
    p0s = [rng.standard_normal(n) for n in sizes]
    cpu = [to_tensor(x, dt) for x in p0s]
    gpu = [to_tensor(x, dt, cuda_device) for x in p0s]
    # an unaligned (offset 1) but contiguous CUDA view
    base = to_tensor(rng.standard_normal(101), dt, cuda_device)
    gpu.append(base[1:])
    cpu.append(to_tensor(to_numpy(base[1:]), dt))
    oc, og = cls(cpu, lr=1e-2, **kw), cls(gpu, lr=1e-2, **kw)
    for _ in range(5):
        for a, b in zip(cpu, gpu):
            g = rng.standard_normal(tuple(a.shape))
            a.grad = to_tensor(g, dt)
            b.grad = to_tensor(g, dt, cuda_device)
        oc.step()
        og.step()
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == "float64" else \
        dict(rtol=1e-5, atol=1e-6) if dtype == "float32" else dict(rtol=1e-2, atol=1e-2)
    for a, b in zip(cpu, gpu):
        np.testing.assert_allclose(to_numpy(b), to_numpy(a), **tol)


@pytest.mark.cuda
def test_cuda_reference_20_steps(cuda_device):
    for kw in ADAM_CASES:
        p0, grads = _data((33, 7), 7)
        p, opt = _run(Adam, p0, grads, kw, "float32", cuda_device)
        ref_p, *_ = ref_adam(p0, grads, 1e-2, **kw)
        np.testing.assert_allclose(to_numpy(p), ref_p, **FP32_TOL)
    for kw in SGD_CASES:
        p0, grads = _data((33, 7), 8)
        p, opt = _run(SGD, p0, grads, kw, "float32", cuda_device)
        ref_p, _ = ref_sgd(p0, grads, 1e-2, **kw)
        np.testing.assert_allclose(to_numpy(p), ref_p, **FP32_TOL)


def test_adam_edits_between_steps_take_effect():
    """Adam.step re-reads the group and state each step: an lr edited in param_groups, an lr
    set by a scheduler, a one-element Tensor lr and a grad that became None all apply."""
    from shardopt.optim.lr_scheduler import StepLR

    def run(lrs, drop_grad_at=None):
        p = to_tensor(np.array([1.0, -2.0, 3.0], np.float32))
        q = to_tensor(np.array([0.5], np.float32))
        opt = Adam([p, q], lr=0.1)
        for i, lr in enumerate(lrs):
            if lr is not None:
                opt.param_groups[0]["lr"] = lr
            p.grad = to_tensor(np.array([0.3, -0.1, 0.2], np.float32))
            q.grad = None if i == drop_grad_at else to_tensor(np.array([1.0], np.float32))
            opt.step()
        return to_numpy(p), to_numpy(q), opt

    # Adam's first step moves each element by lr * sign(g) (up to eps): the lr in use shows
    p1, _, _ = run([0.1, 0.5])
    p2, _, _ = run([0.1, 0.1])
    assert not np.allclose(p1, p2)
    # a Tensor lr is read like the float
    p3, _, _ = run([0.1, to_tensor(np.array(0.5, np.float32))])
    np.testing.assert_allclose(p3, p1, rtol=1e-6)
    # q's grad None at step 1: q does not move and its step count stays behind p's
    _, qa, opt = run([0.1, 0.1, 0.1], drop_grad_at=1)
    _, qb, _ = run([0.1, 0.1])
    np.testing.assert_allclose(qa, qb, rtol=1e-6)
    steps = [float(to_numpy(opt.state[t]["step"])) for t in opt.param_groups[0]["params"]]
    assert steps == [3.0, 2.0]
    # a scheduler's lr change between steps takes effect
    p = to_tensor(np.array([1.0], np.float32))
    opt = Adam([p], lr=1.0)
    sched = StepLR(opt, step_size=1, gamma=0.1)
    moves = []
    for _ in range(2):
        before = float(to_numpy(p)[0])
        p.grad = to_tensor(np.array([1.0], np.float32))
        opt.step()
        sched.step()
        moves.append(before - float(to_numpy(p)[0]))
    np.testing.assert_allclose(moves, [1.0, 0.1], rtol=1e-5)
