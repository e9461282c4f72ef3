"""matmul / mm / bmm / dot / @ against NumPy float64 (csrc/ops/matmul*.c, matmul.cu)."""
import numpy as np
import pytest

import shardopt as so

from oputil import NP_OF, make, needs_cuda, poison_heap, to_np  # noqa: F401

DTYPES = [so.float32, so.float64, so.float16, so.bfloat16, so.int32, so.int64]


def check(got, ref, dtype, k):
    g = to_np(got)
    assert g.shape == np.shape(ref), (g.shape, np.shape(ref))
    if dtype in (so.int32, so.int64):
        np.testing.assert_array_equal(g, ref)
        return
    # error of one output: k products rounded in the accumulation type plus the final rounding
    rt = {so.float32: 1e-6, so.float64: 1e-13, so.float16: 1e-3, so.bfloat16: 8e-3}[dtype]
    np.testing.assert_allclose(g.astype(np.float64), ref, rtol=rt, atol=rt * max(k, 1))


@pytest.fixture
def rng():
    return np.random.default_rng()


SHAPES = [
    ((7,), (7,)),                   # dot
    ((3, 5), (5, 4)),               # mm
    ((5,), (5, 4)),                 # 1-D @ 2-D
    ((3, 5), (5,)),                 # mv
    ((6, 3, 5), (5, 4)),            # batched @ shared matrix (folds into one GEMM)
    ((3, 5), (6, 5, 4)),            # shared matrix @ batched
    ((2, 1, 3, 5), (4, 5, 2)),      # broadcast batch dims
    ((6, 3, 5), (5,)),              # batched @ vector
    ((5,), (2, 6, 5, 4)),           # vector @ batched
    ((2, 3, 4, 5), (2, 3, 5, 1)),
    ((1, 1), (1, 1)),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("sa,sb", SHAPES)
def test_matmul_shapes_dtypes(rng, dtype, sa, sb):
    a, ra = make(sa, dtype, rng)
    b, rb = make(sb, dtype, rng)
    out = a @ b
    assert out.dtype == dtype
    check(out, np.matmul(ra, rb), dtype, sa[-1])
    check(so.matmul(a, b), np.matmul(ra, rb), dtype, sa[-1])


@pytest.mark.parametrize("dtype", [so.float32, so.float64, so.float16, so.int64])
def test_noncontiguous_operands(rng, dtype):
    a, ra = make((6, 5), dtype, rng)
    b, rb = make((4, 6), dtype, rng)
    # transposed views map to BLAS transposes without a copy
    check(a.t() @ b.t(), ra.T @ rb.T, dtype, 6)
    check(b @ a, rb @ ra, dtype, 6)
    # sliced rows/cols (leading dimension larger than the row), stepped slices (copied)
    check(a[1:4, 1:5] @ b[:, 2:6].t(), ra[1:4, 1:5] @ rb[:, 2:6].T, dtype, 4)
    check(a[::2, ::2] @ b.t()[::2, :3], ra[::2, ::2] @ rb.T[::2, :3], dtype, 3)
    # batched: transposed batch, expanded (stride 0) batch, permuted
    x, rx = make((3, 4, 5), dtype, rng)
    y, ry = make((3, 5, 2), dtype, rng)
    check(x.transpose(1, 2) @ x, np.swapaxes(rx, 1, 2) @ rx, dtype, 4)
    check(x @ y[:1].expand(3, 5, 2), rx @ np.broadcast_to(ry[:1], (3, 5, 2)), dtype, 5)
    check(x.permute(2, 0, 1)[:, :, :2] @ y[:, :2, :].permute(1, 0, 2).transpose(0, 1)[0:1],
          np.transpose(rx, (2, 0, 1))[:, :, :2] @ np.transpose(ry[:, :2, :], (1, 0, 2)).swapaxes(0, 1)[0:1],
          dtype, 2)
    # 1-D strided vectors
    v, rv = make((12,), dtype, rng)
    check(v[::2] @ a[:, 0], rv[::2] @ ra[:, 0], dtype, 5)
    check(v[:5] @ a.t(), rv[:5] @ ra.T, dtype, 5)


def test_mm_bmm_dot(rng):
    a, ra = make((4, 3), so.float64, rng)
    b, rb = make((3, 2), so.float64, rng)
    check(so.mm(a, b), ra @ rb, so.float64, 3)
    check(a.mm(b), ra @ rb, so.float64, 3)
    x, rx = make((5, 4, 3), so.float32, rng)
    y, ry = make((5, 3, 6), so.float32, rng)
    check(so.bmm(x, y), rx @ ry, so.float32, 3)
    check(x.bmm(y), rx @ ry, so.float32, 3)
    v, rv = make((6,), so.float32, rng)
    d = so.dot(v, v)
    assert d.ndim == 0
    check(d, rv @ rv, so.float32, 6)
    check(v.matmul(v), rv @ rv, so.float32, 6)


@pytest.mark.parametrize("dtype", [so.float32, so.float16, so.int64])
@pytest.mark.parametrize("sa,sb", [((0, 3), (3, 4)), ((2, 0), (0, 4)), ((2, 3), (3, 0)),
                                   ((0,), (0,)), ((0, 2, 3), (3, 4)), ((4, 2, 0), (4, 0, 3)),
                                   ((0,), (0, 5))])
def test_empty(rng, dtype, sa, sb):
    a, ra = make(sa, dtype, rng)
    b, rb = make(sb, dtype, rng)
    out = a @ b
    ref = np.matmul(ra, rb)
    assert tuple(out.shape) == ref.shape
    assert np.all(to_np(out) == 0)


# x @ W.t() with few rows runs as (W @ x.t()).t() through scratch (matmul_cpu.c,
# swapped_worthwhile: float32, 2 <= m <= 128, k and n >= 256); the edges of that range, a
# transposed or sliced x, a sliced W and batched x must all give the plain product.
@pytest.mark.parametrize("m,k,n", [(2, 256, 256), (64, 300, 257), (128, 256, 512), (129, 256, 256),
                                   (1, 256, 256), (64, 255, 256), (8, 512, 255)])
@pytest.mark.parametrize("dtype", [so.float32, so.float64])
def test_few_rows_times_transposed_weight(rng, m, k, n, dtype):
    x, rx = make((m, k), dtype, rng)
    w, rw = make((n, k), dtype, rng)
    poison_heap(m * n * 8)
    check(x @ w.t(), rx @ rw.T, dtype, k)
    check(so.nn.functional.linear(x, w), rx @ rw.T, dtype, k)
    xt, rxt = make((k, m), dtype, rng)          # x as a transposed view
    check(xt.t() @ w.t(), rxt.T @ rw.T, dtype, k)
    wide, rwide = make((n, k + 9), dtype, rng)  # W as a column slice: leading dim k + 9
    check(x @ wide[:, 3:3 + k].t(), rx @ rwide[:, 3:3 + k].T, dtype, k)
    xb, rxb = make((3, m, k), dtype, rng)       # batched x, one W
    check(xb @ w.t(), np.matmul(rxb, rw.T), dtype, k)


def test_large_k_float32_accuracy(rng):
    a, ra = make((3, 4096), so.float32, rng)
    b, rb = make((4096, 2), so.float32, rng)
    np.testing.assert_allclose(to_np(a @ b), ra @ rb, rtol=1e-4, atol=1e-4)


def test_errors(rng):
    a, _ = make((2, 3), so.float32, rng)
    b, _ = make((4, 5), so.float32, rng)
    with pytest.raises(RuntimeError, match=r"mat1 and mat2 shapes cannot be multiplied \(2x3 and 4x5\)"):
        a @ b
    with pytest.raises(RuntimeError, match=r"mat1 and mat2 shapes cannot be multiplied \(2x3 and 4x5\)"):
        so.mm(a, b)
    v, _ = make((4,), so.float32, rng)
    with pytest.raises(RuntimeError, match=r"size mismatch, got input \(2\), mat \(2x3\), vec \(4\)"):
        a @ v
    with pytest.raises(RuntimeError, match=r"mat1 and mat2 shapes cannot be multiplied \(1x4 and 2x3\)"):
        v @ a
    w, _ = make((3,), so.float32, rng)
    with pytest.raises(RuntimeError, match=r"inconsistent tensor size, expected tensor \[4\] and src \[3\]"):
        v @ w
    d, _ = make((3, 4), so.float64, rng)
    with pytest.raises(RuntimeError, match="expected m1 and m2 to have the same dtype, but got: "
                       "float != double"):
        a @ d
    with pytest.raises(RuntimeError, match="dot : expected both vectors to have same dtype, but "
                       "found Float and Double"):
        so.dot(w, d[0, :3])
    x, _ = make((2, 2, 3), so.float32, rng)
    y, _ = make((2, 4, 5), so.float32, rng)
    with pytest.raises(RuntimeError, match=r"Expected size for first two dimensions of batch2 "
                       r"tensor to be: \[2, 3\] but got: \[2, 4\]."):
        x @ y
    with pytest.raises(RuntimeError, match=r"Expected size for first two dimensions of batch2"):
        so.bmm(x, y)
    z, _ = make((3, 3, 5), so.float32, rng)
    with pytest.raises(RuntimeError, match=r"The size of tensor a \(2\) must match the size of "
                       r"tensor b \(3\) at non-singleton dimension 0"):
        x @ z
    with pytest.raises(RuntimeError, match="self must be a matrix"):
        so.mm(x, a)
    with pytest.raises(RuntimeError, match="mat2 must be a matrix"):
        so.mm(a, v)
    with pytest.raises(RuntimeError, match="batch1 must be a 3D tensor"):
        so.bmm(a, x)
    with pytest.raises(RuntimeError, match="batch2 must be a 3D tensor"):
        so.bmm(x, a)
    with pytest.raises(RuntimeError, match="1D tensors expected, but got 2D and 1D tensors"):
        so.dot(a, w)
    s = so._C.from_numpy(np.array(1.0, dtype=np.float32))
    with pytest.raises(RuntimeError, match="both arguments to matmul need to be at least 1D, but "
                       "they are 0D and 2D"):
        s @ a
    bl = so._C.from_numpy(np.ones((2, 2), dtype=np.bool_))
    with pytest.raises(RuntimeError, match="not implemented for 'Bool'"):
        bl @ bl
    with pytest.raises(TypeError):
        a @ 3
    with pytest.raises(TypeError, match=r"matmul\(\): argument 'other' \(position 2\) must be Tensor"):
        so.matmul(a, [[1.0]])


# ------------------------------------------------------------------ CUDA == CPU

@pytest.mark.parametrize("dtype", [so.float32, so.float64, so.float16, so.bfloat16])
@pytest.mark.parametrize("sa,sb", SHAPES + [((64, 33), (33, 70)), ((0, 3), (3, 4)), ((2, 0), (0, 3))])
@pytest.mark.parametrize("cuda", [pytest.param(0, marks=needs_cuda)])
def test_cuda_matches_numpy(rng, dtype, sa, sb, cuda):
    a, ra = make(sa, dtype, rng)
    b, rb = make(sb, dtype, rng)
    out = a.cuda() @ b.cuda()
    assert out.is_cuda and out.dtype == dtype
    check(out, np.matmul(ra, rb), dtype, sa[-1])


@pytest.mark.parametrize("cuda", [pytest.param(0, marks=needs_cuda)])
def test_cuda_noncontiguous_and_errors(rng, cuda):
    a, ra = make((6, 5), so.float32, rng)
    b, rb = make((4, 6), so.float32, rng)
    ga, gb = a.cuda(), b.cuda()
    check(ga.t() @ gb.t(), ra.T @ rb.T, so.float32, 6)
    check(ga[::2, ::2] @ gb.t()[::2, :3], ra[::2, ::2] @ rb.T[::2, :3], so.float32, 3)
    x, rx = make((3, 4, 5), so.float64, rng)
    gx = x.cuda()
    check(gx.transpose(1, 2) @ gx, np.swapaxes(rx, 1, 2) @ rx, so.float64, 4)
    check(gx @ gx[:1].transpose(1, 2).expand(3, 5, 4), rx @ np.broadcast_to(np.swapaxes(rx[:1], 1, 2), (3, 5, 4)),
          so.float64, 5)
    with pytest.raises(RuntimeError, match="Expected all tensors to be on the same device, but found "
                       "at least two devices, cuda:0 and cpu!"):
        ga @ a.t()
    i, _ = make((2, 2), so.int64, rng)
    with pytest.raises(RuntimeError, match="not implemented for 'Long'"):
        i.cuda() @ i.cuda()
