"""floor / ceil / round / trunc (fix) and log1p / expm1 / erf / erfc / log2 / log10 / exp2:
functions, Tensor methods, in-place forms, out=, integer inputs, autograd, against float64
NumPy/math references on fresh random inputs."""
import math

import numpy as np
import pytest

import shardopt as so

from oputil import FLOAT_DTYPES, make, to_np

_erf = np.vectorize(math.erf)
_erfc = np.vectorize(math.erfc)
# name -> (reference, input range, derivative)
SPECIAL = {
    "log1p": (np.log1p, (-0.9, 3.0), lambda x: 1.0 / (1.0 + x)),
    "expm1": (np.expm1, (-3.0, 3.0), np.exp),
    "erf": (_erf, (-3.0, 3.0), lambda x: 2.0 / np.sqrt(np.pi) * np.exp(-x * x)),
    "erfc": (_erfc, (-3.0, 3.0), lambda x: -2.0 / np.sqrt(np.pi) * np.exp(-x * x)),
    "log2": (np.log2, (0.1, 9.0), lambda x: 1.0 / (x * np.log(2.0))),
    "log10": (np.log10, (0.1, 9.0), lambda x: 1.0 / (x * np.log(10.0))),
    "exp2": (np.exp2, (-4.0, 4.0), lambda x: np.exp2(x) * np.log(2.0)),
}
ROUNDING = {"floor": np.floor, "ceil": np.ceil, "round": np.rint, "trunc": np.trunc,
            "fix": np.trunc}
TOL = {so.float64: (1e-12, 1e-14), so.float32: (2e-6, 1e-7), so.float16: (2e-3, 2e-3),
       so.bfloat16: (1.6e-2, 1e-2)}


@pytest.fixture
def rng():
    return np.random.default_rng()


@pytest.mark.parametrize("name", sorted(SPECIAL) + sorted(ROUNDING))
@pytest.mark.parametrize("dt", FLOAT_DTYPES, ids=str)
def test_function_method_inplace_and_out(name, dt, rng):
    if name in SPECIAL:
        ref, (lo, hi), _ = SPECIAL[name]
    else:
        ref, (lo, hi) = ROUNDING[name], (-6.0, 6.0)
    x, xv = make((5, 19), dt, rng, lo=lo, hi=hi)
    want = ref(xv)
    rtol, atol = TOL[dt] if name in SPECIAL else (0, 0)  # rounding is exact
    got = getattr(so, name)(x)
    assert got.dtype == dt
    np.testing.assert_allclose(to_np(got), want, rtol=rtol, atol=atol)
    np.testing.assert_allclose(to_np(getattr(x.t(), name)()), want.T, rtol=rtol, atol=atol)
    out = so.full((5, 19), float("nan"), dtype=dt)  # poisoned: every element written
    assert getattr(so, name)(x, out=out) is out
    np.testing.assert_allclose(to_np(out), want, rtol=rtol, atol=atol)
    y = x.clone()
    assert getattr(y, name + "_")() is y
    np.testing.assert_allclose(to_np(y), want, rtol=rtol, atol=atol)


def test_rounding_details():
    x = so.tensor([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, -0.2], dtype=so.float64)
    np.testing.assert_array_equal(to_np(x.round()), [-2, -2, -0, 0, 2, 2, -0])  # half to even
    assert np.signbit(to_np(so.ceil(so.tensor([-0.5])))[0])  # -0.0, as IEEE and torch
    big = so.tensor([1e300, -np.inf, np.nan], dtype=so.float64)
    r = to_np(so.floor(big))
    assert r[0] == 1e300 and r[1] == -np.inf and np.isnan(r[2])
    for name in ROUNDING:  # integers pass through unchanged, dtype kept
        i = so.tensor([-3, 0, 7])
        got = getattr(so, name)(i)
        assert got.dtype == so.int64
        np.testing.assert_array_equal(to_np(got), [-3, 0, 7])


def test_special_accuracy_near_zero_and_promotion():
    tiny = so.tensor([1e-10, -1e-12], dtype=so.float64)
    np.testing.assert_allclose(to_np(so.log1p(tiny)), np.log1p([1e-10, -1e-12]), rtol=1e-15)
    np.testing.assert_allclose(to_np(so.expm1(tiny)), np.expm1([1e-10, -1e-12]), rtol=1e-15)
    assert to_np(so.log1p(so.tensor([-1.0])))[0] == -np.inf
    got = so.erf(so.tensor([0, 1, 2]))
    assert got.dtype == so.float32  # integers promote
    np.testing.assert_allclose(to_np(got), _erf([0.0, 1.0, 2.0]), rtol=2e-6)
    assert to_np(so.erfc(so.tensor([10.0], dtype=so.float64)))[0] == pytest.approx(
        math.erfc(10.0), rel=1e-12)


@pytest.mark.parametrize("name", sorted(SPECIAL))
def test_special_gradients(name, rng):
    ref, (lo, hi), deriv = SPECIAL[name]
    x, xv = make((3, 4), so.float64, rng, lo=lo, hi=hi)
    x.requires_grad_()
    g, gv = make((3, 4), so.float64, rng)
    getattr(so, name)(x).backward(g)
    np.testing.assert_allclose(to_np(x.grad), gv * deriv(xv), rtol=1e-12, atol=1e-14)
    x.grad = None
    z = x * 1.0
    getattr(z, name + "_")()  # in place on a non-leaf: the same derivative
    z.backward(g)
    np.testing.assert_allclose(to_np(x.grad), gv * deriv(xv), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", sorted(ROUNDING))
def test_rounding_gradient_is_zero(name, rng):
    x, _ = make((6,), so.float32, rng, lo=-3, hi=3)
    x.requires_grad_()
    y = getattr(x, name)()
    assert y.requires_grad and type(y.grad_fn).__name__.endswith("Backward0")
    (y * 3.0 + x).sum().backward()
    np.testing.assert_array_equal(to_np(x.grad), np.ones(6))  # only the + x path
    z = x * 1.0
    getattr(z, name + "_")()
    x.grad = None
    z.sum().backward()
    np.testing.assert_array_equal(to_np(x.grad), np.zeros(6))


def test_bad_input():
    with pytest.raises(TypeError):
        so.floor("1.5")
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        so.ones(2, requires_grad=True).erf_()


def test_log2_log10_exp2_are_exact_on_powers():
    p2 = so.tensor([1.0, 8.0, 1024.0, 2.0 ** -20], dtype=so.float64)
    np.testing.assert_array_equal(to_np(so.log2(p2)), [0.0, 3.0, 10.0, -20.0])
    np.testing.assert_array_equal(to_np(so.log10(so.tensor([1.0, 1000.0]))), [0.0, 3.0])
    np.testing.assert_array_equal(to_np(so.exp2(so.tensor([0.0, 5.0, -3.0]))), [1.0, 32.0, 0.125])
    assert so.log2(so.tensor([8, 16])).dtype == so.float32  # integers promote
