"""nn.utils gradient clipping and parameter/vector conversion: float64 NumPy references,
torch comparison, norm types, error/warning paths, and the _C._norms kernel behind them."""
import math
import warnings

import numpy as np
import pytest

import shardopt as so
from shardopt import nn
from shardopt.nn.utils import (clip_grad_norm, clip_grad_norm_, clip_grad_value_,
                               clip_grads_with_norm_, get_total_norm, parameters_to_vector,
                               vector_to_parameters)

SHAPES = [(4, 7), (13,), (3, 1, 5), (1,)]


def _params(dtype=np.float32, seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    ps, gs = [], []
    for s in SHAPES:
        p = nn.Parameter(so.from_numpy(rng.standard_normal(s).astype(dtype)))
        g = (rng.standard_normal(s) * scale).astype(dtype)
        p.grad = so.from_numpy(g.copy())
        ps.append(p)
        gs.append(g.astype(np.float64))
    return ps, gs


def _ref_norm(gs, p):
    flat = np.concatenate([g.ravel() for g in gs])
    if math.isinf(p):
        return np.abs(flat).max() if p > 0 else np.abs(flat).min()
    if p == 0:
        return float(np.count_nonzero(flat))
    return (np.abs(flat) ** p).sum() ** (1.0 / p)


def test_norms_kernel_matches_reference_on_views_and_dtypes():
    rng = np.random.default_rng(1)
    a = rng.standard_normal((6, 8))
    ts = [so.from_numpy(a), so.from_numpy(a).t(), so.from_numpy(a)[::2, 1::3],
          so.from_numpy(a.astype(np.float32)), so.from_numpy(a).half(), so.zeros(0)]
    refs = [a, a.T, a[::2, 1::3], a.astype(np.float32).astype(np.float64),
            a.astype(np.float16).astype(np.float64), np.zeros(0)]
    for p in (2.0, 1.0, 3.0, 0.5, 0.0):
        got = so._C._norms(ts, p).numpy()
        want = [_ref_norm([r], p) for r in refs]
        np.testing.assert_allclose(got, want, rtol=1e-13)
    got = so._C._norms(ts[:-1], math.inf).numpy()
    np.testing.assert_allclose(got, [np.abs(r).max() for r in refs[:-1]], rtol=0)
    out = so._C._norms(ts[:2], 2.0, so.float32)
    assert out.dtype == so.float32 and tuple(out.shape) == (2,)


def test_norms_kernel_errors():
    with pytest.raises(RuntimeError, match="cannot compute the inf norm on an empty tensor"):
        so._C._norms([so.zeros(0)], math.inf)
    with pytest.raises(TypeError, match=r"tensors\[1\] must be a Tensor, not int"):
        so._C._norms([so.ones(2), 3])
    with pytest.raises(RuntimeError, match=r"tensors\[0\] must have a floating point dtype"):
        so._C._norms([so.tensor([1, 2])])
    with pytest.raises(TypeError, match="argument 'tensors' must be a list"):
        so._C._norms(so.ones(2))
    with pytest.raises(RuntimeError, match="ord must not be nan"):
        so._C._norms([so.ones(2)], float("nan"))


@pytest.mark.parametrize("p", [2.0, 1.0, 3.0, math.inf, 0.5])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_clip_grad_norm_matches_reference(p, dtype):
    ps, gs = _params(dtype, scale=3.0)
    max_norm = 0.75
    total = clip_grad_norm_(ps, max_norm, norm_type=p)
    want = _ref_norm(gs, p)
    tol = 1e-6 if dtype == np.float32 else 1e-13
    assert total.dtype == ps[0].dtype and total.ndim == 0
    np.testing.assert_allclose(total.item(), want, rtol=tol)
    coef = min(1.0, max_norm / (want + 1e-6))
    for p_, g in zip(ps, gs):
        np.testing.assert_allclose(p_.grad.numpy(), g * coef, rtol=2 * tol, atol=1e-12)
    new = get_total_norm([p_.grad for p_ in ps], p)
    np.testing.assert_allclose(new.item(), min(want, max_norm), rtol=1e-5)


def test_no_clipping_below_max_norm_leaves_grads_bitwise():
    ps, gs = _params(np.float32, scale=1e-3)
    before = [p.grad.numpy().copy() for p in ps]
    clip_grad_norm_(ps, 10.0)
    for p, b in zip(ps, before):
        np.testing.assert_array_equal(p.grad.numpy(), b)


def test_single_tensor_none_grads_and_empty():
    p = nn.Parameter(so.ones(4))
    p.grad = so.full((4,), 2.0) if hasattr(so, "full") else so.ones(4) * 2
    total = clip_grad_norm_(p, 1.0)
    assert total.item() == pytest.approx(4.0)
    np.testing.assert_allclose(p.grad.numpy(), 2.0 / (4.0 + 1e-6), rtol=1e-6)
    q = nn.Parameter(so.ones(2))  # no grad: skipped
    assert clip_grad_norm_([q], 1.0).item() == 0.0
    assert clip_grad_norm_([], 1.0).item() == 0.0
    with pytest.warns(UserWarning, match="`parameters` is an empty generator"):
        clip_grad_norm_((x for x in []), 1.0)


def test_error_if_nonfinite():
    ps, _ = _params()
    ps[1].grad = so.from_numpy(np.array([np.inf] + [0.0] * 12, dtype=np.float32))
    with pytest.raises(RuntimeError, match="The total norm of order 2.0 for gradients from "
                                           "`parameters` is non-finite"):
        clip_grad_norm_(ps, 1.0, error_if_nonfinite=True)
    total = clip_grad_norm_(ps, 1.0)  # default: scales by the non-finite norm
    assert math.isinf(total.item())


def test_mixed_dtypes_promote_like_torch():
    a, b = nn.Parameter(so.ones(3)), nn.Parameter(so.ones(2).double())
    a.grad, b.grad = so.ones(3), so.ones(2).double()
    assert clip_grad_norm_([a, b], 1.0).dtype == so.float64
    h = nn.Parameter(so.ones(2).half())
    h.grad = so.ones(2).half() * 3
    total = clip_grad_norm_([h], 1.0)
    assert total.dtype == so.float16
    np.testing.assert_allclose(h.grad.float().numpy(), 3 / (math.sqrt(18) + 1e-6), rtol=1e-3)


def test_deprecated_alias_warns():
    ps, _ = _params()
    with pytest.warns(FutureWarning, match="clip_grad_norm` is now deprecated"):
        clip_grad_norm(ps, 1.0)


def test_clip_grads_with_norm_and_value():
    ps, gs = _params(scale=2.0)
    clip_grads_with_norm_(ps, 1.0, so.tensor(4.0))
    for p, g in zip(ps, gs):
        np.testing.assert_allclose(p.grad.numpy(), g * (1.0 / (4.0 + 1e-6)), rtol=1e-6)
    ps, gs = _params(scale=2.0)
    clip_grad_value_(ps, 0.5)
    for p, g in zip(ps, gs):
        np.testing.assert_array_equal(p.grad.numpy(), np.clip(g, -0.5, 0.5).astype(np.float32))


def test_bad_norm_type():
    with pytest.raises(RuntimeError, match="norm_type must not be nan"):
        clip_grad_norm_([nn.Parameter(so.ones(1))], 1.0, norm_type=float("nan"))
    with pytest.raises(TypeError, match="norm_type must be a number"):
        clip_grad_norm_([nn.Parameter(so.ones(1))], 1.0, norm_type="two")


def test_vs_torch():
    torch = pytest.importorskip("torch")
    for p in (2.0, 1.0, 3.0, math.inf, 0.0):
        ps, gs = _params(np.float32, seed=4, scale=5.0)
        tps = [torch.nn.Parameter(torch.zeros(s)) for s in SHAPES]
        for tp, g in zip(tps, gs):
            tp.grad = torch.tensor(g.astype(np.float32))
        t1 = clip_grad_norm_(ps, 1.5, norm_type=p)
        t2 = torch.nn.utils.clip_grad_norm_(tps, 1.5, norm_type=p)
        np.testing.assert_allclose(t1.item(), t2.item(), rtol=2e-6)
        for a, b in zip(ps, tps):
            np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=4e-6, atol=1e-7)
    ps, gs = _params(np.float32, seed=5)
    tps = [torch.nn.Parameter(torch.zeros(s)) for s in SHAPES]
    for tp, g in zip(tps, gs):
        tp.grad = torch.tensor(g.astype(np.float32))
    clip_grad_value_(ps, 0.3)
    torch.nn.utils.clip_grad_value_(tps, 0.3)
    for a, b in zip(ps, tps):
        np.testing.assert_array_equal(a.grad.numpy(), b.grad.numpy())


def test_parameters_to_vector_round_trip():
    m = nn.Linear(3, 2)
    vec = parameters_to_vector(m.parameters())
    want = np.concatenate([p.detach().numpy().ravel() for p in m.parameters()])
    np.testing.assert_array_equal(vec.detach().numpy(), want)
    new = so.from_numpy(np.arange(8, dtype=np.float32))
    vector_to_parameters(new, m.parameters())
    np.testing.assert_array_equal(m.weight.detach().numpy(), np.arange(6).reshape(2, 3))
    np.testing.assert_array_equal(m.bias.detach().numpy(), [6, 7])
    with pytest.raises(TypeError, match="expected torch.Tensor, but got: list"):
        vector_to_parameters([1.0], m.parameters())
    with pytest.raises(ValueError, match="vec must be 1-D with 8 elements"):
        vector_to_parameters(so.zeros(7), m.parameters())
    vec.sum().backward()  # differentiable, like torch.cat
    np.testing.assert_array_equal(m.bias.grad.numpy(), [1.0, 1.0])


@pytest.mark.cuda
def test_cuda_grads():
    cuda_device = "cuda:0"
    ps, gs = _params(np.float32, scale=3.0)
    cps = []
    for p in ps:
        c = nn.Parameter(p.detach().to(cuda_device))
        c.grad = p.grad.to(cuda_device)
        cps.append(c)
    t_cpu = clip_grad_norm_(ps, 0.5)
    t_gpu = clip_grad_norm_(cps, 0.5)
    assert t_gpu.device.type == "cuda"
    np.testing.assert_allclose(t_gpu.cpu().item(), t_cpu.item(), rtol=1e-6)
    for a, b in zip(ps, cps):
        np.testing.assert_allclose(b.grad.cpu().numpy(), a.grad.numpy(), rtol=1e-6)
