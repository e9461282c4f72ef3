"""Tensor core: storage, geometry, views, indexing, copy_/fill_, conversions, devices, errors.

Every check compares against NumPy on fresh random data; copies write into poisoned
destinations so unwritten elements show.
"""
import copy
import gc

import numpy as np
import pytest

import shardopt as so
from shardopt import _C

RNG = np.random.default_rng()

NP_OF = {so.float32: np.float32, so.float64: np.float64, so.float16: np.float16,
         so.int32: np.int32, so.int64: np.int64, so.bool: np.bool_}


def rand_np(shape, dt=np.float64):
    a = RNG.standard_normal(shape) * 10
    if dt == np.bool_:
        return a > 0
    return a.astype(dt)


def from_np(a):
    return _C.from_numpy(np.ascontiguousarray(a)).clone()


def poisoned(shape, dtype):
    t = _C.empty(shape, dtype)
    if dtype.is_floating_point:
        t.fill_(float("nan"))
    else:
        t.fill_(-7)
    return t


# ---------------------------------------------------------------- dtypes and devices

def test_dtype_objects():
    assert so.float32.itemsize == 4 and so.float64.itemsize == 8
    assert so.float16.itemsize == 2 and so.bfloat16.itemsize == 2
    assert so.int32.itemsize == 4 and so.int64.itemsize == 8 and so.bool.itemsize == 1
    assert so.float32.is_floating_point and so.bfloat16.is_floating_point
    assert not so.int64.is_floating_point and not so.bool.is_floating_point
    assert repr(so.float32) == "shardopt.float32"
    assert so.float is so.float32 and so.double is so.float64 and so.long is so.int64
    assert copy.deepcopy(so.float16) is so.float16
    import pickle
    assert pickle.loads(pickle.dumps(so.int32)) is so.int32


def test_device_objects():
    d = so.device("cuda:1")
    assert d.type == "cuda" and d.index == 1 and str(d) == "cuda:1"
    assert repr(d) == "device(type='cuda', index=1)"
    assert so.device("cpu").index is None and str(so.device("cpu")) == "cpu"
    assert so.device("cuda") != so.device("cuda:0")
    assert so.device("cuda", 2) == so.device("cuda:2")
    assert so.device(3) == so.device("cuda:3")
    assert so.device(so.device("cpu")) == so.device("cpu")
    assert hash(so.device("cuda:1")) == hash(so.device("cuda:1"))
    assert {so.device("cpu"): 1}[so.device("cpu")] == 1
    import pickle
    assert pickle.loads(pickle.dumps(d)) == d


@pytest.mark.parametrize("bad", ["cuda:foo", "cpu2", "foo", "random:0", "cuda:-1", "cuda:01", ""])
def test_device_string_errors(bad):
    with pytest.raises(RuntimeError):
        so.device(bad)


def test_device_type_error():
    with pytest.raises(TypeError):
        so.device(1.5)


def test_cuda_unavailable_is_clear():
    if so.cuda.is_available():
        pytest.skip("a GPU is present")
    assert so.cuda.device_count() == 0
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        _C.empty((2,), device="cuda")
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        _C.empty((2,), device="cuda:0")
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        so.cuda.current_device()
    t = _C.empty((2,))
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        t.cuda()
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        t.to("cuda:0")


# ---------------------------------------------------------------- creation and geometry

def test_empty_geometry():
    t = _C.empty((2, 3, 4), so.float64)
    assert isinstance(t, so.Tensor)
    assert t.shape == (2, 3, 4) and isinstance(t.shape, so.Size)
    assert repr(t.shape) == "shardopt.Size([2, 3, 4])"
    assert t.size() == (2, 3, 4) and t.size(1) == 3 and t.size(-1) == 4
    assert t.dim() == 3 and t.ndim == 3 and t.numel() == 24 and len(t) == 2
    assert t.stride() == (12, 4, 1) and t.stride(0) == 12 and t.stride(-1) == 1
    assert t.is_contiguous() and t.dtype is so.float64 and t.device == so.device("cpu")
    assert not t.is_cuda and t.element_size() == 8 and t.storage_offset() == 0
    assert t.data_ptr() % 64 == 0  # host memory is 64-byte aligned


def test_empty_sizes_forms():
    for args in [((2, 3),), ([2, 3],)]:
        assert _C.empty(*args).shape == (2, 3)
    assert _C.empty(()).shape == () and _C.empty(()).numel() == 1
    assert _C.empty((0, 5)).numel() == 0


@pytest.mark.parametrize("size,exc", [((-1, 2), RuntimeError), (("a",), TypeError),
                                      ((2.5,), TypeError), ((1 << 62, 1 << 62), RuntimeError),
                                      ((1 << 40,), MemoryError), (tuple([1] * 17), ValueError)])
def test_bad_sizes(size, exc):
    with pytest.raises(exc):
        _C.empty(size)


def test_bad_dtype_device_args():
    with pytest.raises(TypeError, match="dtype"):
        _C.empty((2,), dtype="int8")
    with pytest.raises(TypeError, match="device"):
        _C.empty((2,), device=1.0)
    with pytest.raises(RuntimeError, match="Expected one of"):
        _C.empty((2,), device="tpu")


def test_size_dim_errors():
    t = _C.empty((2, 3))
    with pytest.raises(IndexError, match="Dimension out of range"):
        t.size(2)
    with pytest.raises(IndexError, match="Dimension out of range"):
        t.size(-3)
    with pytest.raises(IndexError):
        t.stride(5)
    with pytest.raises(TypeError):
        len(_C.empty(()))


def test_direct_construction_refused():
    with pytest.raises(TypeError):
        so.Tensor()


# ---------------------------------------------------------------- views

def check_view(t, a):
    np.testing.assert_array_equal(t.numpy(), a)
    assert t.shape == a.shape
    # strides of size-1 dims are free to differ (NumPy uses 0 there, torch a product)
    for n, ts, ns in zip(a.shape, t.stride(), a.strides):
        if n > 1:
            assert ts == ns // a.itemsize


def test_views_match_numpy():
    a = rand_np((4, 5, 6))
    t = _C.from_numpy(a)
    check_view(t.transpose(0, 2), a.transpose(2, 1, 0))
    check_view(t.permute(1, 2, 0), a.transpose(1, 2, 0))
    check_view(t.narrow(1, 1, 3), a[:, 1:4])
    check_view(t.narrow(-1, -2, 2), a[..., -2:])
    check_view(t.select(0, 2), a[2])
    check_view(t.select(-1, -1), a[..., -1])
    check_view(t.unsqueeze(1), a[:, None])
    check_view(t.unsqueeze(-1), a[..., None])
    check_view(t.unsqueeze(1).squeeze(), a)
    check_view(t.unsqueeze(1).squeeze(1), a)
    check_view(t.unsqueeze(0).squeeze((0, 1)), a)
    check_view(t.view(20, 6), a.reshape(20, 6))
    check_view(t.view(-1), a.reshape(-1))
    check_view(t.view((2, -1, 3)), a.reshape(2, -1, 3))
    check_view(t.flatten(), a.reshape(-1))
    check_view(t.flatten(1), a.reshape(4, 30))
    check_view(t.flatten(0, 1), a.reshape(20, 6))
    m = _C.from_numpy(rand_np((3, 4)))
    check_view(m.t(), m.numpy().T)
    v = rand_np((5,))
    check_view(_C.from_numpy(v).t(), v)


def test_views_share_storage_and_version():
    t = from_np(rand_np((3, 4)))
    v = t.t()
    assert v._storage is t._storage
    before = t._version
    v.fill_(2.0)
    assert t._version == v._version == before + 1
    np.testing.assert_array_equal(t.numpy(), np.full((3, 4), 2.0, np.float32))


def test_view_noncontiguous_rules():
    t = from_np(rand_np((4, 6)))
    tt = t.t()  # (6, 4), strides (1, 6)
    with pytest.raises(RuntimeError, match="view size is not compatible"):
        tt.view(24)
    r = tt.reshape(24)  # needs a copy
    np.testing.assert_array_equal(r.numpy(), t.numpy().T.reshape(24))
    assert r._storage is not t._storage
    # splitting a dim of a transposed tensor is a valid view
    v = tt.view(2, 3, 4)
    np.testing.assert_array_equal(v.numpy(), t.numpy().T.reshape(2, 3, 4))
    assert v._storage is t._storage
    # reshape of contiguous data is a view
    assert t.reshape(-1)._storage is t._storage


def test_view_errors():
    t = _C.empty((2, 3))
    with pytest.raises(RuntimeError, match=r"shape '\[4\]' is invalid for input of size 6"):
        t.view(4)
    with pytest.raises(RuntimeError, match="only one dimension can be inferred"):
        t.view(-1, -1)
    with pytest.raises(IndexError, match="Dimension out of range"):
        t.transpose(0, 2)
    with pytest.raises(RuntimeError, match="exceeds dimension size"):
        t.narrow(1, 2, 2)
    with pytest.raises(IndexError):
        t.narrow(1, 4, 0)
    with pytest.raises(IndexError, match="out of bounds"):
        t.select(0, 2)
    with pytest.raises(RuntimeError, match="duplicate dims"):
        t.permute(0, 0)
    with pytest.raises(RuntimeError, match="does not match the length"):
        t.permute(0, 1, 2)
    with pytest.raises(RuntimeError, match="t\\(\\) expects a tensor with <= 2 dimensions"):
        _C.empty((2, 2, 2)).t()
    with pytest.raises(RuntimeError, match="start_dim cannot come after end_dim"):
        _C.empty((2, 2, 2)).flatten(2, 1)


def test_expand():
    a = rand_np((3, 1))
    t = _C.from_numpy(a)
    e = t.expand(2, 3, 4)
    assert e.stride() == (0, 1, 0)
    np.testing.assert_array_equal(e.numpy(), np.broadcast_to(a, (2, 3, 4)))
    np.testing.assert_array_equal(t.expand(-1, 5).numpy(), np.broadcast_to(a, (3, 5)))
    with pytest.raises(RuntimeError, match=r"The expanded size of the tensor \(4\) must match the existing size \(3\)"):
        t.expand(4, 4)
    with pytest.raises(RuntimeError, match="must be greater or equal"):
        t.expand(3)


def test_as_strided_bounds():
    t = _C.empty((6,))
    v = t.as_strided((2, 3), (3, 1))
    assert v.shape == (2, 3)
    with pytest.raises(RuntimeError, match="out of bounds"):
        t.as_strided((3, 3), (3, 1))
    with pytest.raises(RuntimeError, match="out of bounds"):
        t.as_strided((2,), (1,), 5)


# ---------------------------------------------------------------- indexing

INDEXES = [
    1, -1, slice(None), slice(1, None), slice(None, None, 2), slice(3, 1), slice(-3, None, 3),
    (1, 2), (slice(None), 0), (Ellipsis, 1), (None, 1), (1, None, slice(None, None, 2)),
    (Ellipsis, None), (slice(1, 3), Ellipsis, slice(None, None, 4)), (), (0, 0, 0),
    (slice(100, 200),),
]


@pytest.mark.parametrize("idx", INDEXES, ids=[repr(i) for i in INDEXES])
def test_getitem_matches_numpy(idx):
    a = rand_np((4, 5, 6))
    t = _C.from_numpy(a)
    np.testing.assert_array_equal(t[idx].numpy(), a[idx])
    assert t[idx]._storage is t._storage


@pytest.mark.parametrize("idx", INDEXES, ids=[repr(i) for i in INDEXES])
def test_setitem_matches_numpy(idx):
    a = rand_np((4, 5, 6), np.float32)
    t = from_np(a)
    ref = a.copy()
    ref[idx] = 3.5
    t[idx] = 3.5
    np.testing.assert_array_equal(t.numpy(), ref)
    val = rand_np(np.shape(a[idx]), np.float32)
    ref[idx] = val
    t[idx] = _C.from_numpy(np.ascontiguousarray(val))
    np.testing.assert_array_equal(t.numpy(), ref)


def test_setitem_broadcast_and_dtype():
    t = poisoned((3, 4), so.float64)
    row = _C.from_numpy(np.arange(4, dtype=np.int64))
    t[:] = row
    np.testing.assert_array_equal(t.numpy(), np.broadcast_to(np.arange(4.0), (3, 4)))


def test_index_errors():
    t = _C.empty((2, 3))
    with pytest.raises(IndexError, match="index 2 is out of bounds for dimension 0 with size 2"):
        t[2]
    with pytest.raises(IndexError, match="too many indices"):
        t[0, 0, 0]
    with pytest.raises(IndexError, match="single ellipsis"):
        t[..., ...]
    with pytest.raises(ValueError, match="step must be greater than zero"):
        t[::-1]
    with pytest.raises(IndexError, match="only integers, slices"):
        t["a"]
    # lists are integer-tensor indices (tests/ops/test_indexing.py); floats are not indices
    with pytest.raises(IndexError, match="only integers, slices"):
        t[1.5]
    with pytest.raises(RuntimeError, match="cannot be broadcast"):
        t[0] = _C.empty((4,))
    with pytest.raises(TypeError):
        del t[0]
    with pytest.raises(TypeError):
        t[0] = "x"


def test_iter_and_len():
    a = rand_np((3, 2))
    t = _C.from_numpy(a)
    rows = list(t)
    assert len(rows) == 3
    for r, ra in zip(rows, a):
        np.testing.assert_array_equal(r.numpy(), ra)
    with pytest.raises(TypeError):
        iter(_C.empty(()))


# ---------------------------------------------------------------- copy / fill / convert

DTYPES = [so.float32, so.float64, so.float16, so.int32, so.int64, so.bool]


@pytest.mark.parametrize("src_dt", DTYPES, ids=str)
@pytest.mark.parametrize("dst_dt", DTYPES, ids=str)
def test_copy_all_dtype_pairs(src_dt, dst_dt):
    a = rand_np((5, 7), NP_OF[src_dt])
    src = _C.from_numpy(a)
    dst = poisoned((5, 7), dst_dt)
    dst.copy_(src)
    expect = a.astype(NP_OF[dst_dt])
    np.testing.assert_array_equal(dst.numpy(), expect)


@pytest.mark.parametrize("dt", DTYPES, ids=str)
def test_copy_strided_and_broadcast(dt):
    a = rand_np((6, 8), NP_OF[dt])
    src = _C.from_numpy(a)[::2, ::2]           # strided source
    big = poisoned((8, 6), dt)
    dst = big.t()[1::2, ::2]                   # strided destination (transposed)
    assert dst.shape == src.shape
    dst.copy_(src)
    ref = np.full((8, 6), np.nan if dt.is_floating_point else -7).astype(NP_OF[dt])
    ref.T[1::2, ::2] = a[::2, ::2]
    np.testing.assert_array_equal(big.numpy(), ref)
    row = _C.from_numpy(rand_np((1, 6), NP_OF[dt]))
    out = poisoned((4, 6), dt)
    out.copy_(row)
    np.testing.assert_array_equal(out.numpy(), np.broadcast_to(row.numpy(), (4, 6)))


def test_fp16_bf16_conversions_match_numpy():
    vals = np.concatenate([RNG.standard_normal(1000) * 10 ** RNG.uniform(-8, 5, 1000),
                           [0.0, -0.0, np.inf, -np.inf, 65504.0, 65520.0, 1e-8, 6e-8, 5.96e-8,
                            2.98e-8, 3e-5, -3e-5, 1.0 + 2 ** -11, 1.0 + 3 * 2 ** -11]]).astype(np.float32)
    src = _C.from_numpy(vals)
    h = _C.empty(vals.shape, so.float16).copy_(src)
    with np.errstate(over="ignore"):  # values past 65520 overflow to inf, on purpose
        ref16 = vals.astype(np.float16)
    np.testing.assert_array_equal(h.numpy().view(np.uint16), ref16.view(np.uint16))
    back = _C.empty(vals.shape, so.float32).copy_(h)
    np.testing.assert_array_equal(back.numpy(), ref16.astype(np.float32))
    # bfloat16: round-to-nearest-even on the top 16 bits
    b = _C.empty(vals.shape, so.bfloat16).copy_(src)
    back = _C.empty(vals.shape, so.float32).copy_(b).numpy()
    bits = vals.view(np.uint32).astype(np.uint64)
    rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16 << 16).astype(np.uint32).view(np.float32)
    finite = np.isfinite(vals)
    np.testing.assert_array_equal(back[finite], rounded[finite])
    nan = _C.empty((1,), so.bfloat16).fill_(float("nan"))
    assert np.isnan(_C.empty((1,)).copy_(nan).numpy()[0])


@pytest.mark.parametrize("dt", DTYPES + [so.bfloat16], ids=str)
def test_fill_and_zero(dt):
    t = _C.empty((3, 5), dt)
    t.fill_(1)
    assert _C.empty((3, 5), so.float64).copy_(t).numpy().tolist() == [[1.0] * 5] * 3
    t.zero_()
    assert not _C.empty((3, 5), so.float64).copy_(t).numpy().any()
    v = t.t()[::2]  # strided fill
    v.fill_(True)
    ref = np.zeros((3, 5))
    ref.T[::2] = 1
    np.testing.assert_array_equal(_C.empty((3, 5), so.float64).copy_(t).numpy(), ref)


def test_fill_values_and_errors():
    t = _C.empty((2,), so.int64)
    t.fill_(2 ** 62)
    assert t.numpy().tolist() == [2 ** 62] * 2
    t.fill_(3.9)
    assert t.numpy().tolist() == [3, 3]
    t.fill_(_C.from_numpy(np.array(5, np.int32)))
    assert t.numpy().tolist() == [5, 5]
    with pytest.raises(RuntimeError, match="0-dimension value tensor"):
        t.fill_(_C.empty((2,)))
    with pytest.raises(OverflowError):
        t.fill_(2 ** 70)
    with pytest.raises(RuntimeError, match="overflow"):
        t.fill_(1e30)
    with pytest.raises(TypeError):
        t.fill_("3")


def test_clone_contiguous_to():
    a = rand_np((4, 6))
    t = _C.from_numpy(a)
    c = t.t().clone()
    assert c.is_contiguous() and c._storage is not t._storage
    np.testing.assert_array_equal(c.numpy(), a.T)
    assert t.contiguous() is t
    tt = t.t().contiguous()
    assert tt.is_contiguous()
    np.testing.assert_array_equal(tt.numpy(), a.T)
    f = t.to(so.float32)
    assert f.dtype is so.float32
    np.testing.assert_array_equal(f.numpy(), a.astype(np.float32))
    assert t.to(so.float64) is t and t.to("cpu") is t
    assert t.to(so.float64, copy=True) is not t
    assert t.to(f).dtype is so.float32
    assert t.cpu() is t
    assert t.long().dtype is so.int64 and t.half().dtype is so.float16
    assert t.bfloat16().dtype is so.bfloat16 and t.bool().dtype is so.bool
    assert t.int().dtype is so.int32 and f.double().dtype is so.float64 and t.float().dtype is so.float32
    assert t.type_as(f).dtype is so.float32
    with pytest.raises(TypeError):
        t.to(3.5)
    with pytest.raises(TypeError):
        t.to(foo=1)


def test_empty_tensors_ops():
    e = _C.empty((0, 3))
    assert e.clone().shape == (0, 3)
    e.fill_(1.0)
    e.copy_(_C.empty((3,)))
    assert e.t().shape == (3, 0) and e.view(3, 0).shape == (3, 0) and e.reshape(-1).shape == (0,)
    assert e[1:].shape == (0, 3)
    assert e.numpy().shape == (0, 3)


# ---------------------------------------------------------------- autograd slots

def test_autograd_slots():
    t = _C.empty((2, 2))
    assert t.requires_grad is False and t.grad is None and t.grad_fn is None
    t.requires_grad = True
    assert t.requires_grad
    with pytest.raises(RuntimeError, match="floating point"):
        _C.empty((2,), so.int64).requires_grad = True
    g = _C.empty((2, 2)).fill_(1)
    t.grad = g
    assert t.grad is g
    with pytest.raises(RuntimeError, match="different size"):
        t.grad = _C.empty((3,))
    with pytest.raises(RuntimeError, match="different type"):
        t.grad = _C.empty((2, 2), so.float64)
    with pytest.raises(TypeError):
        t.grad = 3
    t.grad = None
    assert t.grad is None


# ---------------------------------------------------------------- NumPy lifetimes

def test_numpy_view_outlives_tensor():
    t = from_np(rand_np((64, 64)))
    expect = t.numpy().copy()
    view = t.t().numpy()
    del t
    gc.collect()
    np.testing.assert_array_equal(view, expect.T)
    view[0, 0] = 123.0  # still writable memory we own


def test_from_numpy_shares_and_keeps_alive():
    a = rand_np((10, 10))
    t = _C.from_numpy(a)
    a[3, 3] = -1.0
    assert t[3, 3].numpy() == -1.0
    t[2, 2] = 7.0
    assert a[2, 2] == 7.0
    del a
    gc.collect()
    assert t.clone()[2, 2].numpy() == 7.0
    s = _C.from_numpy(np.arange(20.0)[::4])  # strided NumPy input
    assert s.stride() == (4,)
    np.testing.assert_array_equal(s.numpy(), np.arange(20.0)[::4])


def test_from_numpy_errors():
    with pytest.raises(TypeError, match="expected np.ndarray"):
        _C.from_numpy([1, 2])
    with pytest.raises(TypeError, match="can't convert np.ndarray of type"):
        _C.from_numpy(np.zeros(3, np.uint8))
    with pytest.raises(TypeError, match="can't convert"):
        _C.from_numpy(np.zeros(3, ">f4"))
    with pytest.raises(ValueError, match="negative"):
        _C.from_numpy(np.arange(5.0)[::-1])
    rec = np.zeros(4, dtype=[("a", np.int8), ("b", np.float32)])
    with pytest.raises(TypeError):
        _C.from_numpy(rec)


def test_numpy_errors():
    with pytest.raises(TypeError, match="BFloat16"):
        _C.empty((2,), so.bfloat16).numpy()
    t = _C.empty((2,))
    t.requires_grad = True
    with pytest.raises(RuntimeError, match="requires grad"):
        t.numpy()


def test_deepcopy_and_pickle():
    t = from_np(rand_np((3, 3)))
    d = copy.deepcopy(t)
    assert d._storage is not t._storage
    np.testing.assert_array_equal(d.numpy(), t.numpy())
    import pickle
    p = pickle.loads(pickle.dumps(t))
    np.testing.assert_array_equal(p.numpy(), t.numpy())
    assert p.dtype is t.dtype
