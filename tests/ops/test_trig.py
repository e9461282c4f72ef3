"""The trigonometric and hyperbolic families (sin cos tan asin acos atan sinh cosh asinh acosh
atanh, and the numpy-style arc* aliases): functions, Tensor methods, in-place forms, out=,
integer promotion, autograd, against float64 NumPy references on fresh random inputs."""
import numpy as np
import pytest

import shardopt as so

from oputil import FLOAT_DTYPES, make, needs_cuda, to_np

# name -> (NumPy reference, input range, derivative as a function of x)
OPS = {
    "sin": (np.sin, (-3.0, 3.0), np.cos),
    "cos": (np.cos, (-3.0, 3.0), lambda x: -np.sin(x)),
    "tan": (np.tan, (-1.2, 1.2), lambda x: 1.0 + np.tan(x) ** 2),
    "asin": (np.arcsin, (-0.95, 0.95), lambda x: 1.0 / np.sqrt(1.0 - x * x)),
    "acos": (np.arccos, (-0.95, 0.95), lambda x: -1.0 / np.sqrt(1.0 - x * x)),
    "atan": (np.arctan, (-4.0, 4.0), lambda x: 1.0 / (1.0 + x * x)),
    "sinh": (np.sinh, (-3.0, 3.0), np.cosh),
    "cosh": (np.cosh, (-3.0, 3.0), np.sinh),
    "asinh": (np.arcsinh, (-4.0, 4.0), lambda x: 1.0 / np.sqrt(x * x + 1.0)),
    "acosh": (np.arccosh, (1.05, 5.0), lambda x: 1.0 / np.sqrt(x * x - 1.0)),
    "atanh": (np.arctanh, (-0.95, 0.95), lambda x: 1.0 / (1.0 - x * x)),
}
ALIASES = {"arcsin": "asin", "arccos": "acos", "arctan": "atan", "arcsinh": "asinh",
           "arccosh": "acosh", "arctanh": "atanh"}
TOL = {so.float64: (1e-12, 1e-12), so.float32: (2e-6, 1e-6), so.float16: (2e-3, 2e-3),
       so.bfloat16: (1.6e-2, 1e-2)}


@pytest.fixture
def rng():
    return np.random.default_rng()


@pytest.mark.parametrize("name", sorted(OPS))
@pytest.mark.parametrize("dt", FLOAT_DTYPES, ids=str)
def test_function_method_and_out_match_numpy(name, dt, rng):
    ref, (lo, hi), _ = OPS[name]
    x, xv = make((7, 33), dt, rng, lo=lo, hi=hi)
    want = ref(xv)
    rtol, atol = TOL[dt]
    got = getattr(so, name)(x)
    assert got.dtype == dt and got.shape == x.shape
    np.testing.assert_allclose(to_np(got), want, rtol=rtol, atol=atol)
    np.testing.assert_allclose(to_np(getattr(x, name)()), want, rtol=rtol, atol=atol)
    out = so.full((7, 33), float("nan"), dtype=dt)  # poisoned: every element must be written
    assert getattr(so, name)(x, out=out) is out
    np.testing.assert_allclose(to_np(out), want, rtol=rtol, atol=atol)
    y = x.clone()
    assert getattr(y, name + "_")() is y
    np.testing.assert_allclose(to_np(y), want, rtol=rtol, atol=atol)


@pytest.mark.parametrize("name", sorted(OPS))
def test_non_contiguous_and_integer_inputs(name, rng):
    ref, (lo, hi), _ = OPS[name]
    x, xv = make((6, 8), so.float64, rng, lo=lo, hi=hi)
    xt = x.t()
    np.testing.assert_allclose(to_np(getattr(so, name)(xt)), ref(xv.T), rtol=1e-12, atol=1e-12)
    ints = so.tensor([1, 2, 3]) if name == "acosh" else so.tensor([0, 1, -1])
    if name in ("atanh",):
        ints = so.tensor([0, 0, 0])
    got = getattr(so, name)(ints)
    assert got.dtype == so.float32  # integers promote to the default float dtype
    np.testing.assert_allclose(to_np(got), ref(to_np(ints).astype(np.float64)), rtol=2e-6,
                               atol=1e-6)


def test_domain_edges_follow_ieee():
    x = so.tensor([2.0, -2.0, 1.0, -1.0], dtype=so.float64)
    assert np.isnan(to_np(so.asin(x))[:2]).all()
    assert to_np(so.atanh(x))[2] == np.inf and to_np(so.atanh(x))[3] == -np.inf
    assert np.isnan(to_np(so.acosh(so.tensor([0.5], dtype=so.float64))))[0]


@pytest.mark.parametrize("alias, name", sorted(ALIASES.items()))
def test_numpy_aliases(alias, name, rng):
    ref, (lo, hi), _ = OPS[name]
    x, xv = make((5,), so.float64, rng, lo=lo, hi=hi)
    np.testing.assert_allclose(to_np(getattr(so, alias)(x)), ref(xv), rtol=1e-12)
    np.testing.assert_allclose(to_np(getattr(x, alias)()), ref(xv), rtol=1e-12)


@pytest.mark.parametrize("name", sorted(OPS))
def test_gradients_match_the_derivative(name, rng):
    ref, (lo, hi), deriv = OPS[name]
    x, xv = make((4, 5), so.float64, rng, lo=lo, hi=hi)
    x.requires_grad_()
    g, gv = make((4, 5), so.float64, rng)
    y = getattr(so, name)(x)
    assert type(y.grad_fn).__name__ == name.capitalize() + "Backward0"
    y.backward(g)
    np.testing.assert_allclose(to_np(x.grad), gv * deriv(xv), rtol=1e-10, atol=1e-12)
    # the method and the in-place form (on a non-leaf) record the same derivative
    x.grad = None
    getattr(x, name)().backward(g)
    np.testing.assert_allclose(to_np(x.grad), gv * deriv(xv), rtol=1e-10, atol=1e-12)
    x.grad = None
    z = x * 1.0
    getattr(z, name + "_")()
    z.backward(g)
    np.testing.assert_allclose(to_np(x.grad), gv * deriv(xv), rtol=1e-10, atol=1e-12)


def test_in_place_on_a_leaf_that_requires_grad_is_refused():
    x = so.ones(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        x.sin_()


def test_bad_input_raises():
    with pytest.raises(TypeError):
        so.sin("x")
    with pytest.raises(TypeError):
        so.cos(so.ones(2), out="y")


def test_matches_torch_where_available(rng):
    torch = pytest.importorskip("torch")
    for name, (ref, (lo, hi), _) in OPS.items():
        x, xv = make((64,), so.float32, rng, lo=lo, hi=hi)
        want = getattr(torch, name)(torch.from_numpy(to_np(x))).numpy()
        np.testing.assert_allclose(to_np(getattr(so, name)(x)), want, rtol=2e-6, atol=1e-6)


@pytest.mark.parametrize("name", sorted(OPS))
@pytest.mark.parametrize("dt", [so.float32, so.float64], ids=str)
@pytest.mark.parametrize("cuda", [pytest.param(0, marks=needs_cuda)])
def test_cuda_matches_numpy(name, dt, cuda, rng):
    ref, (lo, hi), _ = OPS[name]
    x, xv = make((3, 1000), dt, rng, lo=lo, hi=hi)
    got = getattr(so, name)(x.cuda())
    assert got.is_cuda
    rtol, atol = TOL[dt]
    np.testing.assert_allclose(to_np(got), ref(xv), rtol=rtol * 4, atol=atol * 4)
