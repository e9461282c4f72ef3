"""Creation ops (tensor, as_tensor, from_numpy, empty/zeros/ones/full, arange, eye, *_like,
default dtype) and the scalar/list conversions (item, tolist, __float__/__int__/__index__,
__format__, new_*), checked against NumPy."""
import numpy as np
import pytest

import shardopt
from shardopt import _C

ALL_DTYPES = [shardopt.float32, shardopt.float64, shardopt.float16, shardopt.bfloat16,
              shardopt.int32, shardopt.int64, shardopt.bool]
NP = {shardopt.float32: np.float32, shardopt.float64: np.float64, shardopt.float16: np.float16,
      shardopt.bfloat16: np.float32, shardopt.int32: np.int32, shardopt.int64: np.int64,
      shardopt.bool: np.bool_}


def host(t):
    """ndarray of t's values (bfloat16 as float32)."""
    if t.dtype == shardopt.bfloat16:
        t = t.float()
    return t.cpu().numpy()


@pytest.fixture
def default_float64():
    shardopt.set_default_dtype(shardopt.float64)
    try:
        yield
    finally:
        shardopt.set_default_dtype(shardopt.float32)


# ------------------------------------------------------------------ tensor(data)

def test_tensor_dtype_inference_like_torch():
    assert shardopt.tensor([1.0, 2]).dtype == shardopt.float32
    assert shardopt.tensor([1, 2]).dtype == shardopt.int64
    assert shardopt.tensor([True, False]).dtype == shardopt.bool
    assert shardopt.tensor([True, 2]).dtype == shardopt.int64
    assert shardopt.tensor([[1, 2.5]]).dtype == shardopt.float32
    assert shardopt.tensor(3.0).dtype == shardopt.float32 and shardopt.tensor(3.0).shape == ()
    assert shardopt.tensor(3).dtype == shardopt.int64
    assert shardopt.tensor(False).dtype == shardopt.bool
    assert shardopt.tensor([]).dtype == shardopt.float32 and shardopt.tensor([]).shape == (0,)
    assert shardopt.tensor([[], []]).shape == (2, 0)
    for npd, sod in [(np.float32, shardopt.float32), (np.float64, shardopt.float64),
                     (np.float16, shardopt.float16), (np.int32, shardopt.int32),
                     (np.int64, shardopt.int64), (np.bool_, shardopt.bool)]:
        assert shardopt.tensor(np.zeros(3, dtype=npd)).dtype == sod  # ndarray keeps its dtype
        assert shardopt.tensor(npd(1)).dtype == sod


def test_tensor_values_nested_and_copy():
    data = [[[1.5, -2.0], [3.25, 4.0]], [[5.0, 6.0], [7.0, 8.125]]]
    t = shardopt.tensor(data)
    assert t.shape == (2, 2, 2)
    np.testing.assert_array_equal(t.numpy(), np.array(data, dtype=np.float32))
    t = shardopt.tensor(((1, 2), (3, 4)))
    assert t.tolist() == [[1, 2], [3, 4]]
    arr = np.random.default_rng().standard_normal((3, 4))
    t = shardopt.tensor(arr)
    arr[0, 0] = 100.0  # tensor() copies
    assert t.numpy()[0, 0] != 100.0
    t = shardopt.tensor(arr[:, ::2])  # non-contiguous source
    np.testing.assert_array_equal(t.numpy(), arr[:, ::2])
    big = arr.astype(">f8")  # non-native byte order
    np.testing.assert_array_equal(shardopt.tensor(big).numpy(), arr)


@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=str)
def test_tensor_explicit_dtype(dtype):
    data = [[0.0, 1.7, -2.2], [3.9, 0.5, -0.5]]
    t = shardopt.tensor(data, dtype=dtype)
    assert t.dtype == dtype and t.shape == (2, 3)
    ref = np.array(data, dtype=np.float64)
    if dtype == shardopt.bool:
        expected = ref != 0
    elif not dtype.is_floating_point:
        expected = np.trunc(ref)
    elif dtype == shardopt.bfloat16:
        expected = ref
    else:
        expected = ref.astype(NP[dtype])
    tol = 1e-2 if dtype == shardopt.bfloat16 else 0
    np.testing.assert_allclose(host(t).astype(np.float64), np.asarray(expected, np.float64),
                               rtol=tol, atol=0)


def test_tensor_from_tensor_scalars_and_requires_grad():
    src = shardopt.tensor([1.0, 2.0])
    t = shardopt.tensor(src)
    assert t.tolist() == [1.0, 2.0]
    t.fill_(5.0)
    assert src.tolist() == [1.0, 2.0]
    assert shardopt.tensor(src, dtype=shardopt.int32).dtype == shardopt.int32
    t = shardopt.tensor([1.0], requires_grad=True)
    assert t.requires_grad
    with pytest.raises(RuntimeError, match="floating point"):
        shardopt.tensor([1], requires_grad=True)
    t = shardopt.tensor([shardopt.tensor(1.5), shardopt.tensor(2.5)])
    assert t.tolist() == [1.5, 2.5]


def test_tensor_bad_data():
    with pytest.raises(ValueError, match="ragged"):
        shardopt.tensor([[1, 2], [3]])
    with pytest.raises(ValueError, match="ragged"):
        shardopt.tensor([1, [2, 3]])
    with pytest.raises(TypeError):
        shardopt.tensor(["a", "b"])
    with pytest.raises(TypeError, match="int8"):  # complex data is supported (test_complex.py)
        shardopt.tensor(np.zeros(2, np.int8).astype(np.uint16), dtype=shardopt.int8)
    with pytest.raises((RuntimeError, ValueError)):
        shardopt.tensor([2**70])
    with pytest.raises(RuntimeError, match="Overflow"):
        shardopt.tensor([2**63])
    with pytest.raises(TypeError, match="dtype"):
        shardopt.tensor([1.0], dtype="float128")


def test_default_dtype(default_float64):
    assert shardopt.get_default_dtype() == shardopt.float64
    assert shardopt.tensor([1.5]).dtype == shardopt.float64
    assert shardopt.tensor([1]).dtype == shardopt.int64
    assert shardopt.zeros(2).dtype == shardopt.float64
    assert shardopt.rand(2).dtype == shardopt.float64
    assert shardopt.full((2,), 1.5).dtype == shardopt.float64
    assert shardopt.arange(0.5, 2).dtype == shardopt.float64
    with pytest.raises(TypeError, match="floating-point"):
        shardopt.set_default_dtype(shardopt.int64)


def test_as_tensor_and_from_numpy_share_memory():
    arr = np.arange(6.0).reshape(2, 3)
    t = shardopt.as_tensor(arr)
    arr[1, 2] = -7.0
    assert t.tolist()[1][2] == -7.0
    assert shardopt.as_tensor(arr, device="cpu").data_ptr() == arr.ctypes.data
    u = shardopt.from_numpy(arr)
    u[0, 0] = 42.0
    assert arr[0, 0] == 42.0
    c = shardopt.as_tensor(arr, dtype=shardopt.float32)  # conversion -> copy
    assert c.dtype == shardopt.float32 and c.tolist() == arr.astype(np.float32).tolist()
    assert shardopt.as_tensor(t) is t
    assert shardopt.as_tensor([1, 2]).tolist() == [1, 2]
    assert shardopt.as_tensor(arr[:, ::-1]).tolist() == arr[:, ::-1].tolist()  # negative strides copy


# ------------------------------------------------------------------ empty/zeros/ones/full

@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=str)
def test_zeros_ones_full_every_dtype(dtype):
    z = shardopt.zeros(2, 3, dtype=dtype)
    o = shardopt.ones((2, 3), dtype=dtype)
    f = shardopt.full([2, 3], 1, dtype=dtype)
    e = shardopt.empty(shardopt.Size([2, 3]), dtype=dtype)
    for t in (z, o, f, e):
        assert t.dtype == dtype and t.shape == (2, 3) and t.is_contiguous()
    np.testing.assert_array_equal(host(z), np.zeros((2, 3), NP[dtype]))
    np.testing.assert_array_equal(host(o), np.ones((2, 3), NP[dtype]))
    np.testing.assert_array_equal(host(f), np.ones((2, 3), NP[dtype]))


def test_full_dtype_inference_and_values():
    assert shardopt.full((2,), 7).dtype == shardopt.int64
    assert shardopt.full((2,), True).dtype == shardopt.bool
    assert shardopt.full((2,), 2.5).dtype == shardopt.float32
    assert shardopt.full((2, 2), -3.25).tolist() == [[-3.25, -3.25], [-3.25, -3.25]]
    assert shardopt.full((), 4.0).shape == ()
    with pytest.raises(TypeError, match="fill_value"):
        shardopt.full((2,), "x")


def test_size_forms_and_errors():
    for args in [(2, 3), ((2, 3),), ([2, 3],), (shardopt.Size([2, 3]),), (np.int64(2), 3)]:
        assert shardopt.zeros(*args).shape == (2, 3)
    assert shardopt.zeros(size=(4,)).shape == (4,)
    assert shardopt.zeros(()).shape == () and shardopt.zeros([]).numel() == 1
    assert shardopt.zeros(0).shape == (0,) and shardopt.zeros(3, 0, 2).numel() == 0
    with pytest.raises(RuntimeError, match="negative"):
        shardopt.zeros(2, -1)
    with pytest.raises(TypeError, match="size"):
        shardopt.ones(2.5)
    with pytest.raises(TypeError, match="size"):
        shardopt.empty()
    with pytest.raises(TypeError, match="size"):
        shardopt.zeros(2, size=(2,))
    with pytest.raises(RuntimeError, match="^Storage size calculation overflowed"):  # torch's
        shardopt.empty(2**40, 2**40)
    with pytest.raises(TypeError, match="dtype"):
        shardopt.zeros(2, dtype="complex")


def test_requires_grad_and_device_arguments():
    t = shardopt.zeros(2, requires_grad=True)
    assert t.requires_grad
    assert shardopt.ones(2, device="cpu").device == shardopt.device("cpu")
    assert shardopt.ones(2, device=shardopt.device("cpu")).device.type == "cpu"
    with pytest.raises(RuntimeError, match="floating point"):
        shardopt.zeros(2, dtype=shardopt.int64, requires_grad=True)
    if not shardopt.cuda.is_available():
        with pytest.raises(RuntimeError):
            shardopt.zeros(2, device="cuda")


# ------------------------------------------------------------------ arange / eye

@pytest.mark.parametrize("args,kwargs", [
    ((5,), {}), ((2, 9), {}), ((2, 9, 3), {}), ((10, 0, -3), {}), ((-5, 5, 2), {}),
    ((0, 1, 0.1), {}), ((1, 2.5, 0.5), {}), ((0.5, 4), {}), ((5, 1, -0.25), {}),
    ((0, 10, 3), {"dtype": shardopt.float64}), ((0.0, 3.0, 0.7), {"dtype": shardopt.float64}),
    ((3,), {"dtype": shardopt.int32}), ((0, 6), {"dtype": shardopt.float16}),
    ((0, 0), {}), ((3, 3, 1.5), {}),
])
def test_arange_matches_numpy(args, kwargs):
    t = shardopt.arange(*args, **kwargs)
    all_int = all(isinstance(a, int) for a in args)
    expected_dtype = kwargs.get("dtype", shardopt.int64 if all_int else shardopt.float32)
    assert t.dtype == expected_dtype
    start, end, step = (0, args[0], 1) if len(args) == 1 else (args + (1,))[:3]
    n = len(np.arange(start, end, step))
    ref = np.float64(start) + np.float64(step) * np.arange(n, dtype=np.float64)
    assert t.shape == (n,)
    np.testing.assert_array_equal(host(t), ref.astype(NP[expected_dtype]))


def test_arange_tensor_args_and_errors():
    assert shardopt.arange(shardopt.tensor(3)).tolist() == [0, 1, 2]
    assert shardopt.arange(0, 1, 0.25, requires_grad=True).requires_grad
    with pytest.raises(RuntimeError, match="step must be nonzero"):
        shardopt.arange(0, 5, 0)
    with pytest.raises(RuntimeError, match="inconsistent with step sign"):
        shardopt.arange(5, 0, 1)
    with pytest.raises(RuntimeError, match="unsupported range"):
        shardopt.arange(0, float("inf"))
    with pytest.raises(TypeError, match="end"):
        shardopt.arange(0, "5")


@pytest.mark.parametrize("n,m", [(3, None), (2, 5), (5, 2), (0, 3), (1, 1), (0, None)])
@pytest.mark.parametrize("dtype", [None, shardopt.float64, shardopt.int64, shardopt.bool], ids=str)
def test_eye_matches_numpy(n, m, dtype):
    t = shardopt.eye(n, m, dtype=dtype)
    assert t.dtype == (dtype or shardopt.float32)
    np.testing.assert_array_equal(host(t), np.eye(n, m, dtype=NP[dtype or shardopt.float32]))


def test_eye_errors():
    with pytest.raises(RuntimeError, match="n must be greater or equal to 0, got -1"):
        shardopt.eye(-1)
    with pytest.raises(TypeError, match="m must be an int"):
        shardopt.eye(2, 2.0)


# ------------------------------------------------------------------ *_like and new_*

def test_like_functions():
    x = shardopt.rand(2, 3, dtype=shardopt.float64)[:, ::2]  # non-contiguous input
    for fn, val in [(shardopt.zeros_like, 0), (shardopt.ones_like, 1)]:
        t = fn(x)
        assert t.shape == (2, 2) and t.dtype == shardopt.float64 and t.is_contiguous()
        assert np.all(t.numpy() == val)
    assert shardopt.empty_like(x).shape == (2, 2)
    t = shardopt.full_like(x, 2.5, dtype=shardopt.int32)
    assert t.dtype == shardopt.int32 and t.tolist() == [[2, 2], [2, 2]]
    t = shardopt.zeros_like(x, dtype=shardopt.float16, device="cpu", requires_grad=True)
    assert t.dtype == shardopt.float16 and t.requires_grad
    assert shardopt.rand_like(x).dtype == shardopt.float64
    with pytest.raises(TypeError, match="input must be a Tensor"):
        shardopt.zeros_like([1, 2])


def test_new_methods():
    x = shardopt.zeros(2, dtype=shardopt.float64)
    t = x.new_zeros(3, 4)
    assert t.shape == (3, 4) and t.dtype == shardopt.float64 and np.all(t.numpy() == 0)
    assert x.new_ones((2,)).tolist() == [1.0, 1.0]
    assert x.new_empty([5]).shape == (5,)
    t = x.new_full((2, 2), 3, dtype=shardopt.int64)
    assert t.dtype == shardopt.int64 and t.tolist() == [[3, 3], [3, 3]]
    t = x.new_tensor([1, 2])
    assert t.dtype == shardopt.float64 and t.tolist() == [1.0, 2.0]
    assert x.new_zeros(2, requires_grad=True).requires_grad


# ------------------------------------------------------------------ item / tolist / conversions

@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=str)
def test_item_and_tolist_every_dtype(dtype):
    data = [[1, 0, 3], [0, 5, 6]]
    t = shardopt.tensor(data, dtype=dtype)
    ref = np.array(data).astype(NP[dtype])
    assert t.tolist() == ref.tolist()
    assert t.t().tolist() == ref.T.tolist()  # non-contiguous
    item = t[1, 2].item()
    assert item == ref[1, 2].item() and type(item) is type(ref[1, 2].item())
    assert shardopt.tensor(data[0][0], dtype=dtype).tolist() == ref[0, 0].item()
    assert shardopt.zeros(0, 2, dtype=dtype).tolist() == []


def test_item_errors_and_python_conversions():
    with pytest.raises(RuntimeError, match="a Tensor with 2 elements cannot be converted to Scalar"):
        shardopt.tensor([1.0, 2.0]).item()
    with pytest.raises(RuntimeError, match="0 elements"):
        shardopt.zeros(0).item()
    assert shardopt.tensor([[2.5]]).item() == 2.5
    assert float(shardopt.tensor(2.5)) == 2.5 and int(shardopt.tensor(-2.7)) == -2
    assert float(shardopt.tensor([3])) == 3.0 and int(shardopt.tensor(True)) == 1
    assert [10, 20, 30][shardopt.tensor(2)] == 30
    assert list(range(10))[shardopt.tensor(1):shardopt.tensor(3, dtype=shardopt.int32)] == [1, 2]
    with pytest.raises(TypeError, match="only integer tensors of a single element"):
        [1, 2][shardopt.tensor(1.0)]
    with pytest.raises(TypeError, match="only integer tensors of a single element"):
        [1, 2][shardopt.tensor([0, 1])]
    with pytest.raises(ValueError, match="only one element tensors"):
        float(shardopt.tensor([1.0, 2.0]))
    with pytest.raises(ValueError, match="only one element tensors"):
        int(shardopt.zeros(0, dtype=shardopt.int64))
    assert f"{shardopt.tensor(2.5):.3f}" == "2.500"
    assert f"{shardopt.tensor(7):04d}" == "0007"
    assert format(shardopt.tensor([1.0]), "") == repr(shardopt.tensor([1.0]))
    with pytest.raises(TypeError):
        f"{shardopt.tensor([1.0]):.2f}"


# ------------------------------------------------------------------ CUDA

@pytest.mark.cuda
def test_cuda_factories():
    dev = "cuda:0"
    for dtype in ALL_DTYPES:
        assert np.all(host(shardopt.zeros(3, 2, dtype=dtype, device=dev)) == 0)
        assert np.all(host(shardopt.ones(3, dtype=dtype, device=dev)) == 1)
    t = shardopt.tensor([[1.5, 2.0]], device=dev)
    assert t.is_cuda and t.tolist() == [[1.5, 2.0]] and t[0, 1].item() == 2.0
    np.testing.assert_array_equal(host(shardopt.arange(0, 1, 0.1, device=dev)),
                                  host(shardopt.arange(0, 1, 0.1)))
    np.testing.assert_array_equal(host(shardopt.eye(3, 4, device=dev)), np.eye(3, 4))
    x = shardopt.full((2, 2), 3.0, device=dev)
    assert shardopt.zeros_like(x).is_cuda and x.new_ones(2).is_cuda
    assert float(x[0, 0]) == 3.0 and f"{x[1, 1]:.1f}" == "3.0"
    assert shardopt.zeros_like(x, device="cpu").device.type == "cpu"
