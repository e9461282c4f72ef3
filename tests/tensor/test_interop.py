"""Zero-copy interop: DLPack both ways (NumPy, raw capsules, optional torch), __array__,
__array_interface__, __cuda_array_interface__, and lifetimes (delete the base, gc.collect(),
the data stays valid)."""
import gc
import importlib.util

import numpy as np
import pytest

import shardopt
from shardopt import _C

NP_DTYPES = [(shardopt.float32, np.float32), (shardopt.float64, np.float64),
             (shardopt.float16, np.float16), (shardopt.int32, np.int32),
             (shardopt.int64, np.int64), (shardopt.bool, np.bool_)]
HAVE_TORCH = importlib.util.find_spec("torch") is not None


def sample(npdtype, shape):
    a = np.random.default_rng().standard_normal(shape) * 10
    return (a > 0) if npdtype is np.bool_ else a.astype(npdtype)


# ------------------------------------------------------------------ DLPack export

def test_dlpack_device():
    assert shardopt.zeros(2).__dlpack_device__() == (1, 0)


# NumPy 1.x's DLPack has no bool dtype, no max_version and refuses read-only arrays;
# those cases are NumPy's limits, not ours, so they run only on NumPy >= 2.
NUMPY2 = int(np.__version__.split(".")[0]) >= 2


def _bool_needs_numpy2(dtype):
    if dtype is shardopt.bool and not NUMPY2:
        pytest.skip("NumPy 1.x DLPack has no bool dtype")


@pytest.mark.parametrize("dtype,npdtype", NP_DTYPES, ids=lambda x: str(x))
def test_numpy_from_dlpack_is_zero_copy(dtype, npdtype):
    _bool_needs_numpy2(dtype)
    ref = sample(npdtype, (3, 4))
    t = shardopt.tensor(ref)
    a = np.from_dlpack(t)
    assert a.dtype == npdtype and a.shape == (3, 4)
    np.testing.assert_array_equal(a, ref)
    assert a.ctypes.data == t.data_ptr()
    t.fill_(1)
    assert np.all(a == 1)  # same memory


def test_dlpack_export_strided_0d_and_empty():
    base = shardopt.tensor(np.arange(24.0).reshape(4, 6))
    v = base.t()[1:, ::2]  # non-contiguous with an offset
    a = np.from_dlpack(v)
    np.testing.assert_array_equal(a, np.arange(24.0).reshape(4, 6).T[1:, ::2])
    assert a.ctypes.data == v.data_ptr()
    assert np.from_dlpack(shardopt.tensor(2.5)).shape == ()
    assert np.from_dlpack(shardopt.zeros(0, 3)).shape == (0, 3)


def test_dlpack_capsule_versions_and_unconsumed_capsules():
    t = shardopt.arange(5)
    legacy = t.__dlpack__()
    versioned = t.__dlpack__(max_version=(1, 0))
    old = t.__dlpack__(max_version=(0, 8))
    assert "dltensor" in repr(legacy) and "dltensor_versioned" not in repr(legacy)
    assert "dltensor_versioned" in repr(versioned)
    assert "dltensor_versioned" not in repr(old)
    # unconsumed capsules release their reference to the storage when collected
    del legacy, versioned, old
    gc.collect()
    assert t.tolist() == [0, 1, 2, 3, 4]


def test_dlpack_export_keeps_storage_alive():
    t = shardopt.tensor(np.arange(1000.0))
    cap = t.__dlpack__()
    del t
    gc.collect()
    u = shardopt.from_dlpack(cap)
    assert u.tolist() == list(np.arange(1000.0))
    a = np.from_dlpack(shardopt.tensor(np.arange(10.0)))  # the tensor is a temporary
    gc.collect()
    np.testing.assert_array_equal(a, np.arange(10.0))


def test_dlpack_export_arguments():
    t = shardopt.tensor([1.0, 2.0])
    with pytest.raises(BufferError, match="stream must be None"):
        t.__dlpack__(stream=5)
    t.__dlpack__(stream=None)
    assert shardopt.from_dlpack(t.__dlpack__(dl_device=(1, 0))).data_ptr() == t.data_ptr()
    with pytest.raises(BufferError, match="dl_device"):
        t.__dlpack__(dl_device=(2, 0))
    with pytest.raises(TypeError, match="max_version"):
        t.__dlpack__(max_version=3)
    with pytest.raises(TypeError, match="stream"):
        t.__dlpack__(stream="x")
    c = shardopt.from_dlpack(t.__dlpack__(copy=True, max_version=(1, 0)))
    assert c.data_ptr() != t.data_ptr() and c.tolist() == [1.0, 2.0]
    r = shardopt.tensor([1.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="require gradient"):
        r.__dlpack__()
    assert np.from_dlpack(r.detach() if hasattr(r, "detach") else r._alias()).tolist() == [1.0]


# ------------------------------------------------------------------ DLPack import

@pytest.mark.parametrize("dtype,npdtype", NP_DTYPES, ids=lambda x: str(x))
def test_from_dlpack_numpy_is_zero_copy(dtype, npdtype):
    _bool_needs_numpy2(dtype)
    a = sample(npdtype, (2, 5))
    t = shardopt.from_dlpack(a)
    assert t.dtype == dtype and t.shape == (2, 5)
    assert t.data_ptr() == a.ctypes.data
    np.testing.assert_array_equal(t.numpy(), a)
    a[...] = a[0, 0]
    assert np.all(t.numpy() == a[0, 0])


def test_from_dlpack_numpy_strided_and_lifetime():
    a = np.arange(30.0).reshape(5, 6)
    view = a[::2, 1::2]
    t = shardopt.from_dlpack(view)
    expected = view.copy()
    assert t.stride() == (12, 2)
    del a, view
    gc.collect()
    np.testing.assert_array_equal(t.numpy(), expected)
    assert shardopt.from_dlpack(np.array(3, dtype=np.float32)).shape == ()
    assert shardopt.from_dlpack(np.zeros((0, 4))).shape == (0, 4)


def test_from_dlpack_raw_capsules_used_once():
    a = np.arange(4.0)
    cap = a.__dlpack__()
    t = shardopt.from_dlpack(cap)
    assert "used_dltensor" in repr(cap)
    with pytest.raises(RuntimeError, match="already consumed"):
        shardopt.from_dlpack(cap)
    assert t.tolist() == [0.0, 1.0, 2.0, 3.0]
    own = shardopt.arange(3).__dlpack__(max_version=(1, 0))
    u = shardopt.from_dlpack(own)
    with pytest.raises(RuntimeError, match="already consumed"):
        shardopt.from_dlpack(own)
    del own
    gc.collect()
    assert u.tolist() == [0, 1, 2]


def test_from_dlpack_round_trip_shares_storage():
    t = shardopt.rand(3, 4)
    u = shardopt.from_dlpack(t)
    assert u.data_ptr() == t.data_ptr() and u.shape == (3, 4)
    u.fill_(0.5)
    assert np.all(t.numpy() == 0.5)
    v = shardopt.from_dlpack(t.to(shardopt.bfloat16))
    assert v.dtype == shardopt.bfloat16
    del t
    gc.collect()
    assert np.all(u.numpy() == 0.5)


def test_from_dlpack_bad_input():
    with pytest.raises(TypeError, match="__dlpack__"):
        shardopt.from_dlpack([1, 2, 3])
    with pytest.raises(TypeError, match="unsupported dtype"):
        shardopt.from_dlpack(np.zeros(3, dtype=np.uint8))
    # complex64 / complex128 are supported: a zero-copy view both ways
    for npt in (np.complex64, np.complex128):
        src = np.array([1 + 2j, -3j, 0.5], dtype=npt)
        t = shardopt.from_dlpack(src)
        assert t.dtype == getattr(shardopt, np.dtype(npt).name)
        src[1] = 7 - 7j
        assert t[1].item() == 7 - 7j
        assert np.array_equal(np.from_dlpack(t), src)
    # a capsule we refused is not consumed: it is still freed by its own destructor
    cap = np.zeros(3, dtype=np.int8).__dlpack__()
    with pytest.raises(TypeError):
        shardopt.from_dlpack(cap)
    assert "used" not in repr(cap)
    del cap
    gc.collect()


@pytest.mark.skipif(not NUMPY2, reason="NumPy 1.x refuses to export read-only arrays")
def test_from_dlpack_readonly_array_is_copied():
    a = np.arange(3.0)
    a.flags.writeable = False
    t = shardopt.from_dlpack(a)
    assert t.tolist() == [0.0, 1.0, 2.0] and t.data_ptr() != a.ctypes.data
    t.fill_(9.0)
    assert a.tolist() == [0.0, 1.0, 2.0]


# ------------------------------------------------------------------ array interfaces

@pytest.mark.parametrize("dtype,npdtype", NP_DTYPES, ids=lambda x: str(x))
def test_array_interface(dtype, npdtype):
    ref = sample(npdtype, (4, 3))
    t = shardopt.tensor(ref).t()
    d = t.__array_interface__
    assert d["version"] == 3 and d["shape"] == (3, 4)
    assert d["data"] == (t.data_ptr(), False)
    assert np.dtype(d["typestr"]) == np.dtype(npdtype)
    assert d["strides"] == (np.dtype(npdtype).itemsize, 3 * np.dtype(npdtype).itemsize)
    a = np.asarray(t)
    np.testing.assert_array_equal(a, ref.T)
    assert a.ctypes.data == t.data_ptr()
    a[0, 0] = a[1, 1]
    assert t.tolist()[0][0] == a[1, 1].item()


def test_array_interface_lifetime():
    t = shardopt.tensor(np.arange(100.0))
    a = np.asarray(t)
    del t
    gc.collect()
    np.testing.assert_array_equal(a, np.arange(100.0))
    assert np.asarray(shardopt.zeros(0)).shape == (0,)
    assert np.asarray(shardopt.tensor(3)).shape == ()


def test_numpy_method_and_from_numpy_lifetimes():
    t = shardopt.tensor(np.arange(50.0))
    a = t.numpy()
    del t
    gc.collect()
    np.testing.assert_array_equal(a, np.arange(50.0))
    b = np.arange(20.0)
    u = shardopt.from_numpy(b)
    del b
    gc.collect()
    assert u.tolist() == list(np.arange(20.0))


def test_dunder_array():
    t = shardopt.tensor([[1.0, 2.0], [3.0, 4.0]])
    a = t.__array__()
    assert a.ctypes.data == t.data_ptr()
    assert t.__array__(np.float64).dtype == np.float64
    c = t.__array__(copy=True)
    assert c.ctypes.data != t.data_ptr()
    with pytest.raises(ValueError, match="copy=False"):
        t.__array__(np.float64, copy=False)
    b = np.asarray(t.to(shardopt.bfloat16))  # falls back to __array__: float32 copy
    assert b.dtype == np.float32 and b.tolist() == [[1.0, 2.0], [3.0, 4.0]]
    with pytest.raises(ValueError, match="bfloat16"):
        t.to(shardopt.bfloat16).__array__(copy=False)
    assert np.array(t, dtype=np.int64).tolist() == [[1, 2], [3, 4]]


def test_cuda_array_interface_absent_on_cpu():
    assert not hasattr(shardopt.zeros(2), "__cuda_array_interface__")
    assert hasattr(shardopt.zeros(2), "__array_interface__")
    assert not hasattr(shardopt.zeros(2, dtype=shardopt.bfloat16), "__array_interface__")


# ------------------------------------------------------------------ torch (optional)

@pytest.mark.skipif(not HAVE_TORCH, reason="torch not installed")
def test_torch_dlpack_exchange():
    import torch

    x = torch.arange(12, dtype=torch.float32).reshape(3, 4).t()
    t = shardopt.from_dlpack(x)
    assert t.shape == (4, 3) and t.stride() == (1, 4) and t.data_ptr() == x.data_ptr()
    np.testing.assert_array_equal(t.numpy(), x.numpy())
    for td, sd in [(torch.bfloat16, shardopt.bfloat16), (torch.bool, shardopt.bool),
                   (torch.float16, shardopt.float16), (torch.int32, shardopt.int32)]:
        src = torch.ones(3, dtype=td)
        u = shardopt.from_dlpack(src)
        assert u.dtype == sd and u.data_ptr() == src.data_ptr()
    s = shardopt.tensor(np.arange(6.0).reshape(2, 3))
    y = torch.from_dlpack(s)
    assert y.dtype == torch.float64 and y.data_ptr() == s.data_ptr()
    del s
    gc.collect()
    assert y.tolist() == [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]
    z = torch.from_dlpack(shardopt.tensor([0.5, 1.5]).to(shardopt.bfloat16))
    assert z.dtype == torch.bfloat16 and z.tolist() == [0.5, 1.5]


# ------------------------------------------------------------------ CUDA

@pytest.mark.cuda
def test_cuda_dlpack_and_cuda_array_interface():
    t = shardopt.arange(6, dtype=shardopt.float32, device="cuda").view(2, 3)
    assert t.__dlpack_device__() == (2, 0)
    u = shardopt.from_dlpack(t)
    assert u.is_cuda and u.data_ptr() == t.data_ptr() and u.tolist() == t.tolist()
    cap = t.__dlpack__(stream=1)
    assert shardopt.from_dlpack(cap).tolist() == [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]
    with pytest.raises(ValueError, match="stream"):
        t.__dlpack__(stream=0)
    host = shardopt.from_dlpack(t.__dlpack__(dl_device=(1, 0), max_version=(1, 0)))
    assert host.device.type == "cpu" and host.tolist() == t.tolist()
    with pytest.raises(BufferError):
        t.__dlpack__(dl_device=(1, 0), copy=False)
    d = t.t().__cuda_array_interface__
    assert d["version"] == 3 and d["shape"] == (3, 2) and d["typestr"] == "<f4"
    assert d["data"] == (t.data_ptr(), False) and d["strides"] == (4, 12)
    assert isinstance(d["stream"], int) and d["stream"] not in (0,)
    assert t.__cuda_array_interface__["strides"] is None
    assert not hasattr(t, "__array_interface__")
    with pytest.raises(TypeError, match="cuda"):
        np.asarray(t)
