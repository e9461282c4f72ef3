"""complex64 / complex128 tensors on the CPU: creation and dtype inference, copies and
casts, views (real/imag, view_as_real/view_as_complex, slicing, contiguous), cat/stack, the
arithmetic composed over view_as_real, sum/mean, comparisons, interop (NumPy, pickle,
save/load, item), repr, and clean errors from every real-only kernel.  References are float64
NumPy; the torch comparisons skip without torch."""
import io
import pickle
import warnings

import numpy as np
import pytest

import shardopt as so

try:
    import torch
except ImportError:  # the torch comparisons below skip
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="torch is not installed")
CDTYPES = [(so.complex64, np.complex64), (so.complex128, np.complex128)]
A = np.array([[1 + 2j, -3.5j, 0.25 - 1j], [4 + 0j, -2 - 2j, 1e3 + 7j]])
B = np.array([[0.5 - 1j, 2 + 0.5j, -1 + 3j], [1j, 3 - 1j, -0.5 - 0.25j]])


def arr(t):
    return t.numpy()


@pytest.mark.parametrize("dt, npt", CDTYPES)
def test_dtype_properties(dt, npt):
    assert dt.is_complex and not dt.is_floating_point and dt.itemsize == np.dtype(npt).itemsize
    assert so.cfloat is so.complex64 and so.cdouble is so.complex128
    assert pickle.loads(pickle.dumps(dt)) is dt


def test_tensor_infers_the_default_complex_dtype():
    t = so.tensor([1 + 2j, 3.0])
    assert t.dtype == so.complex64 and t.is_complex() and so.is_complex(t)
    assert np.array_equal(arr(t), np.array([1 + 2j, 3], np.complex64))
    assert so.tensor(1 + 2j).item() == 1 + 2j and isinstance(so.tensor(1j).item(), complex)
    assert so.tensor([1, 2], dtype=so.cdouble).dtype == so.complex128
    assert so.tensor([1.0], dtype=complex).dtype == so.complex128  # Python's complex type
    assert so.full((2,), 1 - 1j).dtype == so.complex64
    so.set_default_dtype(so.float64)
    try:
        assert so.tensor([1j]).dtype == so.complex128
        assert so.full((1,), 1j).dtype == so.complex128
    finally:
        so.set_default_dtype(so.float32)
    assert not so.tensor([1.0]).is_complex()


@pytest.mark.parametrize("dt, npt", CDTYPES)
def test_factories(dt, npt):
    assert np.array_equal(arr(so.zeros(2, 3, dtype=dt)), np.zeros((2, 3), npt))
    assert np.array_equal(arr(so.ones(4, dtype=dt)), np.ones(4, npt))
    assert so.empty(3, dtype=dt).dtype == dt
    assert np.array_equal(arr(so.full((2,), 2 - 3j, dtype=dt)), np.full(2, 2 - 3j, npt))
    like = so.tensor(A.astype(npt))
    for fn, ref in ((so.zeros_like, 0), (so.ones_like, 1)):
        r = fn(like)
        assert r.dtype == dt and np.array_equal(arr(r), np.full(A.shape, ref, npt))
    assert np.array_equal(arr(so.full_like(like, 1j)), np.full(A.shape, 1j, npt))
    assert so.empty_like(like).dtype == dt
    so.manual_seed(0)
    u = arr(so.rand(4000, dtype=dt))
    assert ((u.real >= 0) & (u.real < 1) & (u.imag >= 0) & (u.imag < 1)).all()
    assert abs(u.real.mean() - 0.5) < 0.03 and abs(u.imag.mean() - 0.5) < 0.03
    n = arr(so.randn(20000, dtype=dt)).astype(np.complex128)
    # torch's complex normal: re and im each N(0, 1/2), total variance 1
    assert abs(n.real.var() - 0.5) < 0.03 and abs(n.imag.var() - 0.5) < 0.03
    assert abs(np.mean(np.abs(n) ** 2) - 1.0) < 0.05
    assert so.rand_like(like).dtype == dt and so.randn_like(like).dtype == dt
    g1 = so.Generator().manual_seed(5)
    g2 = so.Generator().manual_seed(5)
    assert np.array_equal(arr(so.randn(7, dtype=dt, generator=g1)),
                          arr(so.randn(7, dtype=dt, generator=g2)))


def test_complex_real_imag_and_views():
    re = so.tensor([1.0, -2.0, 3.5])
    im = so.tensor([0.5, 4.0, -1.0])
    z = so.complex(re, im)
    assert z.dtype == so.complex64
    assert np.array_equal(arr(z), np.array([1 + 0.5j, -2 + 4j, 3.5 - 1j], np.complex64))
    assert so.complex(re.double(), im.double()).dtype == so.complex128
    with pytest.raises(RuntimeError, match="Float"):
        so.complex(re, im.double())
    # real / imag are views: writing through them changes z
    assert np.array_equal(arr(z.real), [1, -2, 3.5]) and np.array_equal(arr(z.imag), [0.5, 4, -1])
    z.imag[1] = 9.0
    z.real.fill_(0)
    assert np.array_equal(arr(z), np.array([0.5j, 9j, -1j], np.complex64))
    with pytest.raises(RuntimeError, match="imag is not implemented for tensors with non-complex"):
        re.imag
    assert re.real is re
    r = so.view_as_real(z)
    assert r.dtype == so.float32 and tuple(r.shape) == (3, 2)
    r[0, 0] = 7.0
    assert z[0].item() == 7 + 0.5j
    back = so.view_as_complex(r)
    assert back.dtype == so.complex64 and np.array_equal(arr(back), arr(z))
    with pytest.raises(RuntimeError, match="only supported for complex tensors"):
        so.view_as_real(re)
    with pytest.raises(RuntimeError, match="last dimension of size 2"):
        so.view_as_complex(so.zeros(3, 3))
    with pytest.raises(RuntimeError, match="last dimension with stride 1"):
        so.view_as_complex(so.zeros(2, 4)[:, ::2])
    with pytest.raises(RuntimeError, match="float and double tensors"):
        so.view_as_complex(so.zeros(3, 2, dtype=so.int64))


@pytest.mark.parametrize("dt, npt", CDTYPES)
def test_indexing_slicing_contiguous_cat_stack(dt, npt):
    a = so.tensor(A, dtype=dt)
    ref = A.astype(npt)
    assert np.array_equal(arr(a[1]), ref[1]) and a[0, 1].item() == complex(ref[0, 1])
    t = a.t()
    assert not t.is_contiguous()
    assert np.array_equal(arr(t.contiguous()), ref.T)
    assert np.array_equal(arr(a[:, ::2].clone()), ref[:, ::2])
    assert np.array_equal(arr(a[so.tensor([1, 0])]), ref[[1, 0]])  # advanced indexing
    b = a.clone()
    b[0, 0] = 5 - 5j
    b[1] = so.tensor([1j, 2j, 3j], dtype=dt)
    expect = ref.copy()
    expect[0, 0] = 5 - 5j
    expect[1] = [1j, 2j, 3j]
    assert np.array_equal(arr(b), expect) and np.array_equal(arr(a), ref)
    assert np.array_equal(arr(so.cat([a, a[:1]])), np.concatenate([ref, ref[:1]]))
    assert np.array_equal(arr(so.stack([a, a], 1)), np.stack([ref, ref], 1))
    # cat promotes a real tensor to complex
    mixed = so.cat([a[0], so.tensor([1.0, 2.0], dtype=so.float64)])
    assert mixed.dtype == so.complex128


def test_copies_and_casts():
    z = so.tensor(A, dtype=so.complex128)
    # complex <-> complex, real -> complex
    assert np.array_equal(arr(z.to(so.complex64)), A.astype(np.complex64))
    c = so.zeros(2, 3, dtype=so.complex64)
    c.copy_(z)
    assert np.array_equal(arr(c), A.astype(np.complex64))
    c.copy_(so.tensor([[1.0, 2.0, 3.0]]))  # broadcast, real -> complex (imag 0)
    assert np.array_equal(arr(c), np.tile(np.array([1, 2, 3], np.complex64), (2, 1)))
    assert np.array_equal(arr(so.tensor([1, 2]).to(so.cdouble)), np.array([1, 2], np.complex128))
    # complex -> real keeps the real part, with torch's warning (once per process)
    r = so.zeros(2, 3, dtype=so.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r.copy_(z)
        assert np.array_equal(arr(r), A.real)
        assert np.array_equal(arr(z.to(so.int64)), A.real.astype(np.int64))
    assert np.array_equal(arr(z.clone()), A) and z.clone().dtype == so.complex128
    with pytest.raises(RuntimeError, match="without overflow"):
        so.zeros(2).fill_(1j)
    with pytest.raises(RuntimeError, match="without overflow"):
        float(so.tensor(1 + 2j))
    assert bool(so.tensor(1j)) and not bool(so.tensor(0j))


def test_complex_to_real_copy_warns():
    # the first complex -> real cast in a process warns; run it in a fresh interpreter so
    # the once-only flag is not already spent by another test
    import subprocess
    import sys
    code = ("import warnings, shardopt as so\n"
            "with warnings.catch_warnings(record=True) as w:\n"
            "    warnings.simplefilter('always')\n"
            "    so.zeros(2).copy_(so.tensor([1+2j, 3j]))\n"
            "    so.zeros(2).copy_(so.tensor([1+2j, 3j]))\n"
            "print(len(w), w[0].category.__name__, w[0].message)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ("1 UserWarning Casting complex values to real discards the "
                                  "imaginary part")


@pytest.mark.parametrize("dt, npt", CDTYPES)
def test_arithmetic(dt, npt):
    a, b = so.tensor(A, dtype=dt), so.tensor(B, dtype=dt)
    tol = 1e-6 if dt == so.complex64 else 1e-13

    def close(t, ref):
        assert t.dtype == dt
        np.testing.assert_allclose(arr(t).astype(np.complex128), ref, rtol=tol, atol=tol)

    close(a + b, A + B)
    close(so.add(a, b, alpha=2), A + 2 * B)
    close(a - b, A - B)
    close(a * b, A * B)
    close(a / b, A / B)
    close(-a, -A)
    close(a * 2, A * 2)
    close(1j * a, 1j * A)
    close(a + so.tensor([1.0, 2.0, 3.0]), A + [1, 2, 3])  # real tensor promotes
    close(so.sub(1 - 1j, a), (1 - 1j) - A)
    ab = arr(a.abs())
    assert a.abs().dtype == (so.float32 if dt == so.complex64 else so.float64)
    np.testing.assert_allclose(ab, np.abs(A), rtol=tol)
    assert np.isfinite(arr(so.tensor([3e200 + 4e200j], dtype=so.cdouble).abs())).all()
    close(a.conj(), np.conj(A))
    with pytest.raises(RuntimeError, match="In-place abs is not supported for complex"):
        a.clone().abs_()
    c = a.clone()
    c += b
    c.mul_(b)
    close(c, (A + B) * B)
    # sum / mean over all and over dims
    close(a.sum(), A.sum())
    close(a.sum(1), A.sum(1))
    close(a.mean(0, keepdim=True), A.mean(0, keepdims=True))
    close(so.mean(a), A.mean())
    assert so.tensor([1.0, 2.0]).sum(dtype=so.cfloat).item() == 3 + 0j
    assert so.tensor([1.0, 2.0]).mean(dtype=so.cdouble).dtype == so.complex128
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert so.tensor([1 + 2j, 3j]).sum(dtype=so.float32).item() == 1.0  # cast, then sum
    with pytest.raises(TypeError, match="must be real number, not complex"):
        so.tensor([1 + 2j], dtype=so.float32)
    # comparisons
    assert np.array_equal(arr(a == a.clone()), np.ones(A.shape, bool))
    assert np.array_equal(arr(a != b), A != B)
    assert so.equal(a, a.clone()) and not so.equal(a, b)
    assert so.allclose(a, a + 1e-9) and not so.allclose(a, a + 1e-2j)
    assert np.array_equal(arr(so.isclose(a, b)), np.isclose(A, B))
    with pytest.raises(RuntimeError, match="can't be cast to the desired output type"):
        so.zeros(2).add_(so.tensor([1j, 2j]))
    # operands that are not numbers: the operator protocol answers, functions raise
    assert (a == "text") is False and (a != "text") is True
    with pytest.raises(TypeError):
        a + [1]
    with pytest.raises(TypeError, match="must be Tensor or Number"):
        so.mul(a, "text")


@pytest.mark.parametrize("dt", [so.complex64, so.complex128])
@pytest.mark.parametrize("op", [
    lambda t: t.exp(), lambda t: t.max(), lambda t: t.sort(), lambda t: t @ t,
    lambda t: t < t, lambda t: t.clamp(0, 1), lambda t: so.cumsum(t, 0), lambda t: so.norm(t),
    lambda t: t.argmax(), lambda t: so.where(t == t, t, t), lambda t: t.sqrt(),
    lambda t: so.nn.functional.relu(t), lambda t: t.nonzero(), lambda t: t.topk(1),
    lambda t: t.index_put_((so.tensor([0]),), t[:1], accumulate=True),
    lambda t: so.softmax(t, 0),
    lambda t: t.pow(2), lambda t: so.maximum(t, t), lambda t: t.div(t, rounding_mode="floor"),
])
def test_unsupported_ops_raise_naming_the_dtype(op, dt):
    t = so.tensor([1 + 1j, 2 - 1j], dtype=dt)
    with pytest.raises((RuntimeError, NotImplementedError, TypeError),
                       match="Complex|complex"):
        op(t)


def test_cuda_complex_is_refused_cleanly():
    if not so.cuda.is_available():
        pytest.skip("no CUDA device")
    with pytest.raises(RuntimeError, match="complex64 tensors are supported on the CPU only"):
        so.zeros(2, dtype=so.cfloat, device="cuda")


def test_promote_types_and_result_type():
    P = so.promote_types
    assert P(so.float32, so.complex64) == so.complex64
    assert P(so.float64, so.complex64) == so.complex128
    assert P(so.int64, so.complex64) == so.complex64
    assert P(so.complex128, so.bool) == so.complex128
    assert P(so.float32, so.int64) == so.float32
    R = so.result_type
    assert R(so.tensor([1.0]), 1j) == so.complex64
    assert R(so.tensor([1.0], dtype=so.float64), 1j) == so.complex128
    assert R(so.tensor([1]), 1j) == so.complex64
    assert R(so.tensor([1j]), 2.0) == so.complex64
    assert R(so.tensor([1j], dtype=so.cdouble), so.tensor([1.0])) == so.complex128


@pytest.mark.parametrize("dt, npt", CDTYPES)
def test_interop_pickle_save_load(dt, npt, tmp_path):
    a = so.tensor(A, dtype=dt)
    n = a.numpy()
    assert n.dtype == npt and np.array_equal(n, A.astype(npt))
    n[0, 0] = 9 + 9j  # numpy() shares memory
    assert a[0, 0].item() == 9 + 9j
    f = so.from_numpy(A.astype(npt))
    assert f.dtype == dt and np.array_equal(arr(f), A.astype(npt))
    src = A.astype(npt)
    shared = so.as_tensor(src)
    src[1, 1] = -1j
    assert shared.dtype == dt and shared[1, 1].item() == -1j
    assert so.as_tensor(A).dtype == so.complex128
    assert a.tolist() == A.astype(npt).tolist() or np.allclose(a.tolist(), n)
    p = pickle.loads(pickle.dumps(a[:, 1:]))
    assert p.dtype == dt and np.array_equal(arr(p), n[:, 1:])
    buf = io.BytesIO()
    so.save({"z": a, "v": a[1]}, buf)
    buf.seek(0)
    d = so.load(buf)
    assert d["z"].dtype == dt and np.array_equal(arr(d["z"]), n)
    assert np.array_equal(arr(d["v"]), n[1])
    path = tmp_path / "z.pt"
    so.save(a, str(path))
    assert so.equal(so.load(str(path)), a)


@needs_torch
def test_matches_torch():
    ta, tb = torch.tensor(A, dtype=torch.complex64), torch.tensor(B, dtype=torch.complex64)
    sa, sb = so.tensor(A, dtype=so.complex64), so.tensor(B, dtype=so.complex64)
    for f in (lambda x, y: x + y, lambda x, y: x * y, lambda x, y: x / y,
              lambda x, y: x.abs(), lambda x, y: x.sum(0), lambda x, y: x.mean(),
              lambda x, y: x.conj(), lambda x, y: x - 2j):
        np.testing.assert_allclose(np.asarray(f(sa, sb).numpy()),
                                   f(ta, tb).resolve_conj().numpy(), rtol=1e-6, atol=1e-6)
    assert so.tensor([1 + 2j]).dtype._name == str(torch.tensor([1 + 2j]).dtype)[6:]
    for data in ([1 + 2j, -3.5j], 1 + 2j, [[1e10 + 1j, 2 - 3e-5j], [0j, -1 - 1j]],
                 [complex(i, -i * 0.37) for i in range(40)]):
        assert repr(so.tensor(data)) == repr(torch.tensor(data))
    assert repr(so.tensor([1.5 + 2j], dtype=so.cdouble)).replace("shardopt", "torch") == \
        repr(torch.tensor([1.5 + 2j], dtype=torch.cdouble))
    torch.manual_seed(0)
    for d in (torch.float64, torch.complex64):
        assert str(torch.promote_types(d, torch.complex64))[6:] == \
            so.promote_types(getattr(so, str(d)[6:]), so.complex64)._name
