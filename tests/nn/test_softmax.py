"""softmax / log_softmax / logsumexp (csrc/ops/softmax*): float64 NumPy references on fresh
random inputs for every dim, the fast exp's accuracy, special values, dtypes, gradients by
finite differences and against torch, and torch's errors."""
import warnings

import numpy as np
import pytest

import shardopt
from shardopt import _C
from shardopt.nn import functional as F
from nnutil import N, T, check_grads, poison, torch_or_skip

SHAPES = [(7,), (5, 33), (3, 4, 5), (2, 3, 1, 300)]


def ref_log_softmax(x, dim):
    m = x.max(axis=dim, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=dim, keepdims=True))


def ref_logsumexp(x, dims, keepdim=False):
    m = np.max(x, axis=dims, keepdims=True)
    m = np.where(np.isinf(m), 0.0, m)
    r = m + np.log(np.exp(x - m).sum(axis=dims, keepdims=True))
    return r if keepdim else np.squeeze(r, axis=dims)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype,tol", [(np.float32, 3e-6), (np.float64, 1e-13)])
def test_forward_every_dim_matches_float64(shape, dtype, tol):
    rng = np.random.default_rng(hash(shape) % 2**32)
    x = (rng.standard_normal(shape) * 4).astype(dtype)
    x64 = x.astype(np.float64)
    for dim in range(-len(shape), len(shape)):
        poison(x.nbytes)
        ls = ref_log_softmax(x64, dim)
        got = N(shardopt.log_softmax(T(x), dim))
        np.testing.assert_allclose(got, ls, rtol=tol, atol=tol)
        poison(x.nbytes)
        got = N(T(x).softmax(dim))
        np.testing.assert_allclose(got, np.exp(ls), rtol=tol, atol=tol)
        assert np.allclose(got.sum(axis=dim), 1.0, atol=10 * tol)
        got = N(T(x).logsumexp(dim))
        np.testing.assert_allclose(got, ref_logsumexp(x64, dim), rtol=tol, atol=tol)


def test_non_contiguous_and_0d():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((6, 9))
    t = T(x).t()  # a transposed view
    np.testing.assert_allclose(N(F.softmax(t, 1)), np.exp(ref_log_softmax(x.T, 1)), rtol=1e-12)
    assert N(shardopt.softmax(T(np.float64(3.0)), 0)) == 1.0
    assert N(shardopt.log_softmax(T(np.float64(3.0)), -1)) == 0.0


def test_fast_exp_accuracy():
    # log_softmax's backward is g - exp(y) * sum(g): with g = e_0 the other entries are
    # exactly -exp(y_k) as computed by the kernels' float32 exp
    y = np.concatenate([np.linspace(-86.5, 88.7, 200001), [-1e-30, 0.0, 1e-30, 1.0, -1.0]])
    y = y.astype(np.float32)
    rows = np.stack([np.zeros_like(y), y], axis=1)
    g = np.zeros_like(rows)
    g[:, 0] = 1
    got = -N(_C._softmax_backward(T(rows), T(g), 1, True))[:, 1]
    want = np.exp(y.astype(np.float64))
    ulp = np.spacing(want.astype(np.float32)).astype(np.float64)
    err = np.abs(got - want) / ulp
    assert err.max() <= 2.0, f"max error {err.max():.2f} ulp at {y[err.argmax()]}"
    special = np.array([-np.inf, np.inf, np.nan, -100.0, 100.0, -87.0], np.float32)
    rows = np.stack([np.zeros_like(special), special], axis=1)
    g = np.zeros_like(rows)
    g[:, 0] = 1
    got = -N(_C._softmax_backward(T(rows), T(g), 1, True))[:, 1]
    assert got[0] == 0 and got[1] == np.inf and np.isnan(got[2]) and got[3] == 0
    assert got[4] == np.inf and 0 <= got[5] < 2.5e-38


def test_special_values():
    ninf = -np.inf
    x = np.array([[0.0, ninf, 1.0], [ninf, ninf, ninf], [np.nan, 1.0, 2.0], [1e4, -1e4, 0.0]],
                 np.float32)
    sm = N(F.softmax(T(x), 1))
    assert sm[0, 1] == 0.0 and np.isclose(sm[0].sum(), 1.0)  # masked entries are exactly 0
    assert np.isnan(sm[1]).all() and np.isnan(sm[2]).all()  # as torch
    np.testing.assert_allclose(sm[3], [1.0, 0.0, 0.0])
    ls = N(F.log_softmax(T(x), 1))
    assert ls[0, 1] == ninf and np.isnan(ls[1]).all()
    np.testing.assert_allclose(ls[3], [0.0, -2e4, -1e4])
    lse = N(shardopt.logsumexp(T(x), 1))
    assert lse[1] == ninf and np.isnan(lse[2]) and lse[3] == np.float32(1e4)
    assert N(shardopt.logsumexp(T(np.array([np.inf, 0.0])), 0)) == np.inf


def test_logsumexp_dims_keepdim_and_ints():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 4, 5))
    for dims in [(0, 2), [1, 0], (0, 1, 2), (-1,)]:
        for keepdim in (False, True):
            got = N(shardopt.logsumexp(T(x), dims, keepdim))
            np.testing.assert_allclose(got, ref_logsumexp(x, tuple(dims), keepdim), rtol=1e-12)
    it = shardopt.logsumexp(T(np.array([1, 2], np.int64)), 0)
    assert it.dtype == shardopt.float32 and np.isclose(N(it), np.log(np.e + np.e ** 2))
    assert tuple(shardopt.logsumexp(T(np.zeros((2, 0))), 1).shape) == (2,)
    assert (N(shardopt.logsumexp(T(np.zeros((2, 0))), 1)) == -np.inf).all()


@pytest.mark.parametrize("dtype", [shardopt.float16, shardopt.bfloat16])
def test_half_inputs_compute_in_float32(dtype):
    rng = np.random.default_rng(3)
    x = T(rng.standard_normal((4, 8)).astype(np.float32)).to(dtype)
    x32 = N(x)
    out = F.softmax(x, -1)
    assert out.dtype == dtype
    want = N(T(np.exp(ref_log_softmax(x32, 1)).astype(np.float32)).to(dtype))
    np.testing.assert_array_equal(N(out), want)
    assert F.log_softmax(x, 0).dtype == dtype
    assert shardopt.softmax(T(np.ones(3, np.float32)), 0, dtype=shardopt.float64).dtype == \
        shardopt.float64


@pytest.mark.parametrize("shape,dim", [((4, 6), 1), ((4, 6), 0), ((2, 3, 4), 1), ((5,), 0)])
def test_gradients_finite_differences(shape, dim):
    rng = np.random.default_rng(4)
    x = rng.standard_normal(shape)
    check_grads(lambda t: t.softmax(dim), [x], [0])
    check_grads(lambda t: t.log_softmax(dim), [x], [0])
    check_grads(lambda t: shardopt.logsumexp(t, dim), [x], [0])
    check_grads(lambda t: shardopt.logsumexp(t, dim, keepdim=True), [x], [0])
    if len(shape) > 1:
        check_grads(lambda t: shardopt.logsumexp(t, (0, len(shape) - 1)), [x], [0])


def test_against_torch():
    torch = torch_or_skip()
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 5, 4)).astype(np.float32)
    g = rng.standard_normal((3, 5, 4)).astype(np.float32)
    for name in ("softmax", "log_softmax"):
        for dim in (0, 1, 2):
            a = T(x, requires_grad=True)
            b = torch.tensor(x, requires_grad=True)
            oa, ob = getattr(a, name)(dim), getattr(b, name)(dim)
            np.testing.assert_allclose(N(oa), ob.detach().numpy(), rtol=2e-6, atol=2e-7)
            oa.backward(T(g))
            ob.backward(torch.tensor(g))
            np.testing.assert_allclose(N(a.grad), b.grad.numpy(), rtol=2e-5, atol=2e-6)
    a, b = T(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    shardopt.logsumexp(a, (0, 2)).sum().backward()
    torch.logsumexp(b, (0, 2)).sum().backward()
    np.testing.assert_allclose(N(a.grad), b.grad.numpy(), rtol=1e-5, atol=1e-7)


def test_errors_match_torch():
    x = T(np.zeros((2, 3), np.float32))
    with pytest.raises(IndexError, match=r"Dimension out of range \(expected to be in range of "
                                         r"\[-2, 1\], but got 2\)"):
        shardopt.softmax(x, 2)
    with pytest.raises(NotImplementedError, match="\"softmax_lastdim_kernel_impl\" not "
                                                  "implemented for 'Long'"):
        shardopt.softmax(T(np.array([1, 2])), 0)
    with pytest.raises(NotImplementedError, match="log_softmax_lastdim_kernel_impl"):
        T(np.array([1, 2])).log_softmax(0)
    with pytest.raises(TypeError, match="argument 'input'"):
        shardopt.softmax([1.0, 2.0], 0)
    with pytest.raises(TypeError, match="argument 'dim' must be int"):
        shardopt.softmax(x, 1.5)
    with pytest.raises(RuntimeError, match="appears multiple times"):
        shardopt.logsumexp(x, (1, -1))
    with pytest.raises(TypeError, match="argument 'grad_output' must be Tensor"):
        _C._softmax_backward(x, None, 1, False)
    with pytest.raises(RuntimeError, match="does not match"):
        _C._softmax_backward(x, T(np.zeros((3, 2), np.float32)), 1, False)


def test_functional_implicit_dim_warns():
    x = T(np.zeros((2, 3)))
    with pytest.warns(UserWarning, match="Implicit dimension choice for softmax"):
        out = F.softmax(x)
    np.testing.assert_allclose(N(out), np.full((2, 3), 1 / 3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        F.log_softmax(x, dim=0)


@pytest.mark.cuda
@pytest.mark.skipif(not shardopt.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("dim", [0, 1, -1])
def test_cuda_matches_cpu(dim):
    rng = np.random.default_rng(6)
    x = T(rng.standard_normal((37, 515)).astype(np.float32))
    xc = x.cuda()
    for fn in (F.softmax, F.log_softmax):
        np.testing.assert_allclose(N(fn(xc, dim)), N(fn(x, dim)), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(N(shardopt.logsumexp(xc, dim)), N(shardopt.logsumexp(x, dim)),
                               rtol=1e-6)
    a = xc.clone().requires_grad_()
    a.log_softmax(dim).sum().backward()
    b = x.clone().requires_grad_()
    b.log_softmax(dim).sum().backward()
    np.testing.assert_allclose(N(a.grad), N(b.grad), rtol=1e-5, atol=1e-6)


def test_out_argument():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((5, 6)).astype(np.float32)
    out = T(np.full((5, 6), np.nan, np.float32))
    v0 = out._version
    assert shardopt.softmax(T(x), 1, out=out) is out
    np.testing.assert_allclose(N(out), np.exp(ref_log_softmax(x.astype(np.float64), 1)),
                               rtol=3e-6)
    assert out._version > v0
    res = shardopt.log_softmax(T(x), 0, out=out)
    np.testing.assert_allclose(N(res), ref_log_softmax(x.astype(np.float64), 0), rtol=3e-6,
                               atol=1e-6)
    with pytest.raises(RuntimeError, match="out has shape"):
        shardopt.softmax(T(x), 1, out=T(np.zeros((6, 5), np.float32)))
    with pytest.raises(RuntimeError, match="Expected out tensor to have dtype float, but got double instead"):
        shardopt.softmax(T(x), 1, out=T(np.zeros((5, 6))))
    xt = T(x)
    with pytest.raises(RuntimeError, match="must not share memory"):
        shardopt.softmax(xt, 1, out=xt)
    with pytest.raises(RuntimeError, match="don't support automatic differentiation"):
        shardopt.softmax(T(x, requires_grad=True), 1, out=out)
