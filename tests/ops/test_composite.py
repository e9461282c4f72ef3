"""The everyday methods and functions composed from other ops (shardopt/_ops/composite.py):
values against NumPy, gradients against their closed forms, and torch's errors and
warnings."""
import warnings

import numpy as np
import pytest

import shardopt as so

from oputil import make, to_np


@pytest.fixture
def rng():
    return np.random.default_rng()


def test_transpose_properties(rng):
    x, rx = make((3, 4), so.float32, rng)
    np.testing.assert_array_equal(to_np(x.T), rx.T)
    np.testing.assert_array_equal(to_np(x.mT), rx.T)
    np.testing.assert_array_equal(to_np(x.H), rx.T)
    b, rb = make((2, 3, 4), so.float64, rng)
    np.testing.assert_array_equal(to_np(b.mT), np.swapaxes(rb, -1, -2))
    np.testing.assert_array_equal(to_np(b.mH), np.swapaxes(rb, -1, -2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        np.testing.assert_array_equal(to_np(b.T), rb.transpose(2, 1, 0))  # reversed dims
    assert x.T.data_ptr() == x.data_ptr()  # a view, no copy
    c = so.tensor([[1 + 2j, 3 - 1j]], dtype=so.complex64)
    np.testing.assert_array_equal(to_np(c.H), np.conj(to_np(c)).T)
    np.testing.assert_array_equal(to_np(c.mH), np.conj(to_np(c)).T)


def test_transpose_property_errors_and_warnings():
    v = so.zeros(3)
    for name, msg in (("mT", "tensor.mT is only supported on matrices or batches of "
                             "matrices. Got 1-D tensor."),
                      ("mH", "tensor.mH is only supported on matrices or batches of "
                             "matrices. Got 1-D tensor."),
                      ("H", "tensor.H is only supported on matrices (2-D tensors). Got 1-D")):
        with pytest.raises(RuntimeError, match=msg.replace("(", r"\(").replace(")", r"\)")):
            getattr(v, name)
    with pytest.raises(RuntimeError, match="For batches of matrices, consider using tensor.mH"):
        so.zeros(2, 2, 2).H
    from shardopt._ops import composite
    composite._WARNED.clear()
    with pytest.warns(UserWarning, match="deprecated and it will throw an error"):
        assert tuple(v.T.shape) == (3,)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warned once per process, as torch does
        v.T
    with pytest.warns(UserWarning, match="Tensor.T is deprecated on 0-D tensors"):
        assert so.tensor(2.0).T.item() == 2.0


def test_transpose_property_gradient(rng):
    w, rw = make((3, 2), so.float64, rng)
    w.requires_grad_(True)
    a, ra = make((2, 3), so.float64, rng)
    (w.T * a).sum().backward()
    np.testing.assert_array_equal(to_np(w.grad), ra.T)


def test_all_any(rng):
    x = so.tensor([[1.0, 0.0, float("nan")], [2.0, 3.0, -1.0]])
    assert so.all(x).item() is False and x.any().item() is True
    np.testing.assert_array_equal(to_np(x.all(dim=1)), [False, True])
    np.testing.assert_array_equal(to_np(x.any(dim=0)), [True, True, True])
    assert tuple(x.all(dim=1, keepdim=True).shape) == (2, 1)
    assert so.all(so.tensor([float("nan")])).item() is True  # NaN is non-zero
    assert so.any(so.zeros(0)).item() is False and so.all(so.zeros(0)).item() is True
    i = so.tensor([[0, 1], [2, 3]])
    np.testing.assert_array_equal(to_np(so.any(i, dim=(0, 1))), True)
    assert x.all().dtype == so.bool


def test_isnan_isinf_isfinite():
    x = so.tensor([1.0, float("nan"), float("inf"), -float("inf"), -0.0])
    np.testing.assert_array_equal(to_np(x.isnan()), [False, True, False, False, False])
    np.testing.assert_array_equal(to_np(so.isinf(x)), [False, False, True, True, False])
    np.testing.assert_array_equal(to_np(so.isfinite(x)), [True, False, False, False, True])
    i = so.tensor([1, 2])
    np.testing.assert_array_equal(to_np(i.isnan()), [False, False])
    np.testing.assert_array_equal(to_np(i.isinf()), [False, False])
    np.testing.assert_array_equal(to_np(i.isfinite()), [True, True])


@pytest.mark.parametrize("dim", [None, 0, 1, -1, (0, 2)])
@pytest.mark.parametrize("correction", [0, 1, 2])
def test_var_std(rng, dim, correction):
    x, rx = make((4, 5, 3), so.float64, rng)
    axis = dim if not isinstance(dim, tuple) else tuple(dim)
    want = np.var(rx, axis=axis, ddof=correction)
    np.testing.assert_allclose(to_np(x.var(dim, correction=correction)), want, rtol=1e-12)
    np.testing.assert_allclose(to_np(so.std(x, dim, correction=correction)), np.sqrt(want),
                               rtol=1e-12)
    kd = x.var(dim, correction=correction, keepdim=True)
    assert to_np(kd).shape == np.var(rx, axis=axis, ddof=correction, keepdims=True).shape


def test_var_defaults_and_legacy_unbiased(rng):
    x, rx = make((6,), so.float32, rng)
    np.testing.assert_allclose(to_np(x.var()), np.var(rx, ddof=1), rtol=1e-5)
    np.testing.assert_allclose(to_np(x.var(False)), np.var(rx), rtol=1e-5)  # var(unbiased)
    np.testing.assert_allclose(to_np(x.std(0, unbiased=False)), np.std(rx), rtol=1e-5)
    with pytest.raises(RuntimeError, match="std and var only support floating point"):
        so.tensor([1, 2, 3]).var()
    with pytest.warns(UserWarning, match="degrees of freedom is <= 0"):
        assert np.isinf(to_np(so.tensor([1.0]).var())) or np.isnan(to_np(so.tensor([1.0]).var()))


def test_var_gradient(rng):
    x, rx = make((5,), so.float64, rng)
    x.requires_grad_(True)
    x.var().backward()
    np.testing.assert_allclose(to_np(x.grad), 2 * (rx - rx.mean()) / 4, rtol=1e-12)


def test_repeat(rng):
    x, rx = make((2, 3), so.float32, rng)
    np.testing.assert_array_equal(to_np(x.repeat(2, 1)), np.tile(rx, (2, 1)))
    np.testing.assert_array_equal(to_np(x.repeat((3, 2, 2))), np.tile(rx, (3, 2, 2)))
    assert tuple(x.repeat(0, 1).shape) == (0, 3)
    with pytest.raises(RuntimeError, match="can not be smaller than number of dimensions"):
        x.repeat(2)
    w, _ = make((3,), so.float64, rng)
    w.requires_grad_(True)
    w.repeat(4).sum().backward()
    np.testing.assert_array_equal(to_np(w.grad), [4.0, 4.0, 4.0])


def test_flip_roll_unbind(rng):
    x, rx = make((3, 4, 2), so.float32, rng)
    np.testing.assert_array_equal(to_np(x.flip(0)), np.flip(rx, 0))
    np.testing.assert_array_equal(to_np(so.flip(x, (0, -1))), np.flip(rx, (0, 2)))
    for shifts, dims in ((1, 0), (-3, 1), ((1, 2), (0, 1)), (5, None), (-7, None)):
        np.testing.assert_array_equal(to_np(so.roll(x, shifts, dims)),
                                      np.roll(rx, shifts, dims))
    parts = x.unbind(1)
    assert len(parts) == 4
    for i, p in enumerate(parts):
        np.testing.assert_array_equal(to_np(p), rx[:, i])
    with pytest.raises(RuntimeError, match="shifts and dimensions must align"):
        x.roll((1, 2), 0)


@pytest.mark.parametrize("dim", [(), 0, 1, (0, 1), (-1, 0)])
def test_amax_amin(rng, dim):
    x, rx = make((3, 4, 2), so.float32, rng)
    axis = None if dim == () else dim
    np.testing.assert_array_equal(to_np(x.amax(dim)), np.max(rx, axis=axis))
    np.testing.assert_array_equal(to_np(so.amin(x, dim, keepdim=True)),
                                  np.min(rx, axis=axis, keepdims=True))


def test_masked_select_outer_linspace(rng):
    x, rx = make((3, 4), so.float32, rng)
    m = x > 0
    np.testing.assert_array_equal(to_np(x.masked_select(m)), rx[rx > 0])
    row = so.tensor([True, False, True, False])  # broadcast over rows
    np.testing.assert_array_equal(to_np(so.masked_select(x, row)),
                                  rx[np.broadcast_to(to_np(row), rx.shape)])
    with pytest.raises(RuntimeError, match="expected BoolTensor for mask"):
        x.masked_select(so.ones(3, 4))
    a, ra = make((3,), so.float64, rng)
    b, rb = make((2,), so.float64, rng)
    np.testing.assert_array_equal(to_np(so.outer(a, b)), np.outer(ra, rb))
    for start, end, steps in ((0, 1, 5), (-3.5, 2.0, 8), (2, -2, 3), (1, 1, 1), (0, 1, 0)):
        got = to_np(so.linspace(start, end, steps))
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, np.linspace(start, end, steps), rtol=1e-6, atol=1e-6)
        if steps > 1:
            assert got[0] == np.float32(start) and got[-1] == np.float32(end)


def test_shape_helpers_and_module_functions(rng):
    x, rx = make((2, 3, 4), so.float32, rng)
    y = so.empty(6, 4)
    assert tuple(x.view_as(y).shape) == (6, 4) and tuple(x.reshape_as(y).shape) == (6, 4)
    assert tuple(so.ones(1, 4).expand_as(y).shape) == (6, 4)
    assert x.nelement() == 24 == so.numel(x)
    assert so.is_tensor(x) and not so.is_tensor(rx)
    np.testing.assert_array_equal(to_np(so.reshape(x, (4, 6))), rx.reshape(4, 6))
    np.testing.assert_array_equal(to_np(so.flatten(x, 1)), rx.reshape(2, 12))
    np.testing.assert_array_equal(to_np(so.transpose(x, 0, 2)), rx.transpose(2, 1, 0))
    np.testing.assert_array_equal(to_np(so.swapaxes(x, 0, 1)), rx.swapaxes(0, 1))
    np.testing.assert_array_equal(to_np(x.swapdims(1, 2)), rx.swapaxes(1, 2))
    np.testing.assert_array_equal(to_np(so.permute(x, (1, 2, 0))), rx.transpose(1, 2, 0))
    np.testing.assert_array_equal(to_np(so.unsqueeze(x, 1)), rx[:, None])
    np.testing.assert_array_equal(to_np(so.squeeze(so.unsqueeze(x, 0))), rx)
    np.testing.assert_array_equal(to_np(so.broadcast_to(so.ones(4), (3, 4))), np.ones((3, 4)))
    m, rm = make((3, 2), so.float32, rng)
    np.testing.assert_array_equal(to_np(so.t(m)), rm.T)
    with pytest.raises(TypeError, match="must be Tensor"):
        so.numel([1, 2])


def test_type():
    x = so.tensor([1.5, 2.5])
    assert x.type() == "shardopt.FloatTensor"
    assert so.tensor([1, 2]).type() == "shardopt.LongTensor"
    assert x.type(so.float64).dtype == so.float64
    assert x.type("torch.LongTensor").dtype == so.int64
    assert x.type(so.float32) is x
    with pytest.raises(ValueError, match="invalid type"):
        x.type("torch.NoSuchTensor")


def test_bool_operators_and_logical_functions(rng):
    x, rx = make((5, 4), so.float32, rng)
    a, b = x > 0, x < 0.5
    ra, rb = rx > 0, rx < 0.5
    np.testing.assert_array_equal(to_np(a & b), ra & rb)
    np.testing.assert_array_equal(to_np(a | b), ra | rb)
    np.testing.assert_array_equal(to_np(a ^ b), ra ^ rb)
    np.testing.assert_array_equal(to_np(~a), ~ra)
    np.testing.assert_array_equal(to_np(True & a), ra)
    np.testing.assert_array_equal(to_np(a | False), ra)
    row = so.tensor([True, False, True, False])  # broadcast
    np.testing.assert_array_equal(to_np(a & row), ra & to_np(row))
    c = a.clone()
    c &= b
    np.testing.assert_array_equal(to_np(c), ra & rb)
    np.testing.assert_array_equal(to_np(x[(x > 0) & (x < 0.5)]), rx[ra & rb])
    ints = so.tensor([0, 2, -1])
    np.testing.assert_array_equal(to_np(so.logical_and(ints, x[0, :3])),
                                  np.logical_and(to_np(ints), rx[0, :3]))
    np.testing.assert_array_equal(to_np(ints.logical_or(so.tensor([0, 0, 0]))), [False, True, True])
    np.testing.assert_array_equal(to_np(so.logical_xor(ints, 1)), [True, False, False])
    np.testing.assert_array_equal(to_np(so.logical_not(ints)), [True, False, False])
    with pytest.raises(RuntimeError, match="implemented for bool tensors only"):
        so.tensor([1, 2]) & so.tensor([3, 1])
    with pytest.raises(TypeError):
        a & 1.5


def test_tile_movedim_diff_count(rng):
    x, rx = make((2, 3, 4), so.float64, rng)
    np.testing.assert_array_equal(to_np(so.tile(x, (2,))), np.tile(rx, (2,)))
    np.testing.assert_array_equal(to_np(x.tile((2, 1, 1, 3))), np.tile(rx, (2, 1, 1, 3)))
    for src, dst in ((0, -1), ((0, 1), (2, 0)), (-1, 0)):
        np.testing.assert_array_equal(to_np(so.movedim(x, src, dst)), np.moveaxis(rx, src, dst))
    np.testing.assert_array_equal(to_np(x.moveaxis(1, 0)), np.moveaxis(rx, 1, 0))
    for n, dim in ((1, -1), (2, 2), (1, 0), (5, 1)):
        np.testing.assert_allclose(to_np(so.diff(x, n, dim)), np.diff(rx, n, dim), rtol=1e-12)
    p, rp = make((2, 3, 1), so.float64, rng)
    np.testing.assert_allclose(to_np(x.diff(dim=2, prepend=p, append=p)),
                               np.diff(rx, axis=2, prepend=rp, append=rp), rtol=1e-12)
    i = so.tensor([[0, 3, 0], [1, 0, 0]])
    assert so.count_nonzero(i).item() == 2
    np.testing.assert_array_equal(to_np(i.count_nonzero(dim=0)), [1, 1, 0])


def test_nan_to_num_meshgrid_cdist_diag(rng):
    x = so.tensor([float("nan"), float("inf"), -float("inf"), 1.5])
    np.testing.assert_array_equal(to_np(so.nan_to_num(x)), np.nan_to_num(to_np(x)))
    np.testing.assert_array_equal(to_np(x.nan_to_num(nan=-1.0, posinf=9.0, neginf=-9.0)),
                                  [-1.0, 9.0, -9.0, 1.5])
    np.testing.assert_array_equal(to_np(so.nan_to_num(so.tensor([1, 2]))), [1, 2])
    a, b = so.arange(3), so.arange(2) + 10
    for ix in ("ij", "xy"):
        got = so.meshgrid(a, b, indexing=ix)
        want = np.meshgrid(to_np(a), to_np(b), indexing=ix)
        for g, w in zip(got, want):
            np.testing.assert_array_equal(to_np(g), w)
    with pytest.raises(RuntimeError, match="indexing must be one of"):
        so.meshgrid(a, b, indexing="ab")
    p, rp = make((2, 5, 3), so.float64, rng)
    q, rq = make((2, 4, 3), so.float64, rng)
    diffs = rp[:, :, None, :] - rq[:, None, :, :]
    for pw in (1.0, 2.0, 3.0, float("inf")):
        want = np.linalg.norm(diffs, ord=pw, axis=-1)
        np.testing.assert_allclose(to_np(so.cdist(p, q, p=pw)), want, rtol=1e-12)
    v, rv = make((4,), so.float64, rng)
    for k in (0, 2, -1):
        np.testing.assert_array_equal(to_np(so.diag(v, k)), np.diag(rv, k))
    m, rm = make((3, 5), so.float64, rng)
    for k in (0, 1, -2, 4, 7):
        np.testing.assert_array_equal(to_np(m.diag(k)), np.diag(rm, k))
    np.testing.assert_array_equal(to_np(so.diag(so.tensor([1, 2]))), [[1, 0], [0, 2]])
    v.requires_grad_(True)
    so.diag(v, 1).sum().backward()
    np.testing.assert_array_equal(to_np(v.grad), np.ones(4))



def test_compositions_keep_autograd():
    # the compositions use the differentiable ops (cat, where), not the raw ones
    r = so.tensor([1.0, 2.0, 3.0], requires_grad=True)
    (so.roll(r, 1) * so.tensor([1.0, 2.0, 3.0])).sum().backward()
    np.testing.assert_array_equal(to_np(r.grad), [2.0, 3.0, 1.0])
    y = so.tensor([1.0, float("nan")], requires_grad=True)
    so.nan_to_num(y).sum().backward()
    np.testing.assert_array_equal(to_np(y.grad), [1.0, 0.0])
    d = so.tensor([1.0, 4.0, 9.0], requires_grad=True)
    so.diff(d, prepend=so.zeros(1)).sum().backward()  # telescopes to d[-1]
    np.testing.assert_array_equal(to_np(d.grad), [0.0, 0.0, 1.0])
