"""GELU's float32 math (csrc/ops/elementwise_math.h: polynomial erf/exp, no libm) against a
float64 reference, over a dense sweep of float32 inputs and the special values.

Bounds asserted here (err = |float32 result - float64 reference at the same input|):
  gelu (erf form)       err <= 1.5e-7 * max(1, |x|)
  gelu backward (erf)   err <= 2.0e-7
  gelu (tanh form)      err <= 2.0e-7 * max(1, |x|)
  gelu backward (tanh)  err <= 2.5e-7 * max(1, |x|)
and, for the forward where |ref| >= 1e-3, a relative error <= 2e-6 (~16 ulp: the
condition number of exp(-x^2/2) / exp(-2u) at |x| ~ 3-4, not the polynomials, sets it).
The backward has a root near x = -0.75, so only its absolute error is bounded.  The erf form's 1 + erf
is computed as erfc(-x) for x < -1.3, so negative inputs keep their relative accuracy down
to x ~ -5.6; below that the result (|gelu| < 5e-8) is flushed to -0 or a tiny value.
"""
import math

import numpy as np
import pytest

import shardopt as so
from shardopt._ops import elementwise as ew

_erfc = np.frompyfunc(math.erfc, 1, 1)
BETA = math.sqrt(2 / math.pi)
KAPPA = 0.044715


def sweep():
    """~1.2M float32 inputs: every 4096th float32 bit pattern in [0, 1e6] (all binades,
    denormals included) plus a uniform grid over [-12, 12], both signs."""
    top = np.float32(1e6).view(np.int32)
    by_bits = np.arange(0, top, 4096, dtype=np.int32).view(np.float32)
    grid = np.linspace(0, 12, 400_001, dtype=np.float32)
    pos = np.concatenate([by_bits, grid])
    return np.concatenate([pos, -pos])


def reference(x, approximate, backward):
    xd = x.astype(np.float64)
    if approximate == "none":
        cdf = 0.5 * _erfc(-xd / math.sqrt(2)).astype(np.float64)
        if not backward:
            return xd * cdf
        return cdf + xd * np.exp(-0.5 * xd * xd) / math.sqrt(2 * math.pi)
    with np.errstate(over="ignore", invalid="ignore"):
        u = BETA * (xd + KAPPA * xd ** 3)
        e = np.exp(-2 * u)
        sig = 1 / (1 + e)
        comp = e / (1 + e)
        comp = np.where(np.isinf(e), 1.0, comp)
    if not backward:
        return xd * sig
    with np.errstate(invalid="ignore", over="ignore"):
        d = sig + xd * 2 * sig * comp * BETA * (1 + 3 * KAPPA * xd * xd)
    return np.where(sig * comp == 0, sig, d)


def run(x, approximate, backward):
    t = so._C.from_numpy(x)
    if backward:
        g = so._C.from_numpy(np.ones_like(x))
        out = ew._gelu_backward(g, t, approximate=approximate)
    else:
        out = so.gelu(t, approximate=approximate)
    return out.numpy().astype(np.float64)


# (approximate, backward) -> (abs bound per max(1, |x|), relative bound where |ref| >= 1e-3)
BOUNDS = {
    ("none", False): (1.5e-7, 2e-6),
    ("none", True): (2.0e-7, None),
    ("tanh", False): (2.0e-7, 2e-6),
    ("tanh", True): (2.5e-7, None),
}


@pytest.mark.parametrize("approximate", ["none", "tanh"])
@pytest.mark.parametrize("backward", [False, True], ids=["forward", "backward"])
def test_gelu_float32_error_bounded(approximate, backward):
    x = sweep()
    got = run(x, approximate, backward)
    ref = reference(x, approximate, backward)
    assert np.isfinite(got).all()
    err = np.abs(got - ref)
    abs_bound, rel = BOUNDS[(approximate, backward)]
    scaled = err / np.maximum(1.0, np.abs(x.astype(np.float64)))
    worst = int(np.argmax(scaled))
    assert scaled.max() <= abs_bound, (
        f"max err / max(1,|x|) = {scaled.max():.3g} at x = {x[worst]!r} "
        f"(got {got[worst]!r}, ref {ref[worst]!r})")
    if rel is not None:
        sel = np.abs(ref) >= 1e-3
        relerr = err[sel] / np.abs(ref[sel])
        assert relerr.max() <= rel, f"max relative error {relerr.max():.3g} where |ref| >= 1e-3"


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_float32_agrees_with_float64_op(approximate):
    # the float64 path uses libm (erfc/exp); float32 must agree with it to float32 accuracy
    rng = np.random.default_rng(3)
    x = (rng.standard_normal(100_000) * 4).astype(np.float32)
    g = rng.standard_normal(100_000).astype(np.float32)
    x32, x64 = so._C.from_numpy(x), so._C.from_numpy(x.astype(np.float64))
    g32, g64 = so._C.from_numpy(g), so._C.from_numpy(g.astype(np.float64))
    f32 = so.gelu(x32, approximate=approximate).numpy().astype(np.float64)
    f64 = so.gelu(x64, approximate=approximate).numpy()
    np.testing.assert_allclose(f32, f64, rtol=2e-6, atol=2e-7)
    b32 = ew._gelu_backward(g32, x32, approximate=approximate).numpy().astype(np.float64)
    b64 = ew._gelu_backward(g64, x64, approximate=approximate).numpy()
    np.testing.assert_allclose(b32, b64, rtol=2e-6, atol=3e-7 * np.abs(g).max())


def _special(approximate, backward, dtype):
    vals = [0.0, -0.0, 1e-45, -1e-45, 1e-38, -1e-38, 3e38, -3e38, 1e20, -1e20,
            math.inf, -math.inf, math.nan]
    x = np.array(vals, dtype=dtype)
    t = so._C.from_numpy(x)
    if backward:
        return ew._gelu_backward(so._C.from_numpy(np.ones_like(x)), t,
                                 approximate=approximate).numpy()
    return so.gelu(t, approximate=approximate).numpy()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gelu_special_values(dtype):
    # forward: gelu(+-0) = +-0, tiny x -> x/2, huge x -> x, huge negative x -> -0,
    # gelu(inf) = inf, gelu(-inf) = -inf * 0 = NaN (as torch), NaN -> NaN
    for approx in ("none", "tanh"):
        y = _special(approx, False, dtype)
        np.testing.assert_array_equal(y[:2], [0.0, -0.0])
        assert np.signbit(y[1]) and not np.signbit(y[0])
        np.testing.assert_allclose(y[2:6], np.array([1e-45, -1e-45, 1e-38, -1e-38], dtype) / 2,
                                   rtol=1e-6, atol=1e-45)
        np.testing.assert_allclose(y[[6, 8]], np.array([3e38, 1e20], dtype), rtol=1e-6)
        assert y[7] == 0 and y[9] == 0
        assert y[10] == math.inf and math.isnan(y[11]) and math.isnan(y[12])
    # backward of the erf form: 1/2 at 0, 1 for huge x, 0 for huge negative x; at +-inf
    # x * pdf(x) is inf * 0 = NaN (as torch); NaN -> NaN
    y = _special("none", True, dtype)
    np.testing.assert_allclose(y[:6], [0.5] * 6, rtol=1e-6)
    np.testing.assert_array_equal(y[6:10], [1.0, 0.0, 1.0, 0.0])
    assert all(math.isnan(v) for v in y[10:])
    # backward of the tanh form: where sig (1 - sig) is exactly 0 the derivative is its
    # limit (1 or 0), also at +-inf, where torch's formula gives NaN
    y = _special("tanh", True, dtype)
    np.testing.assert_allclose(y[:6], [0.5] * 6, rtol=1e-6)
    np.testing.assert_array_equal(y[6:12], [1.0, 0.0, 1.0, 0.0, 1.0, 0.0])
    assert math.isnan(y[12])


def test_gelu_vs_torch_float32():
    # torch's float32 GELU is itself less accurate than the bounds above (its tanh form
    # loses ~1e-6 to 1 + tanh(u) cancelling for x < 0), hence the looser tolerances
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    x = (rng.standard_normal(200_000) * 3).astype(np.float32)
    g = rng.standard_normal(200_000).astype(np.float32)
    for approx in ("none", "tanh"):
        want = torch.nn.functional.gelu(torch.from_numpy(x), approximate=approx).numpy()
        got = so.gelu(so._C.from_numpy(x), approximate=approx).numpy()
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=2e-6)
        wb = torch.ops.aten.gelu_backward(torch.from_numpy(g), torch.from_numpy(x),
                                          approximate=approx).numpy()
        gb = ew._gelu_backward(so._C.from_numpy(g), so._C.from_numpy(x),
                               approximate=approx).numpy()
        np.testing.assert_allclose(gb, wb, rtol=1e-5, atol=5e-6)
