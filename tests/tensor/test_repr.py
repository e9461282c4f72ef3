"""Tensor.__repr__ against torch's output.

The expected strings were produced once by torch 2.13.0 (CPU build) from the same NumPy
data (``repr(torch.from_numpy(a))`` with ``torch.`` replaced by ``shardopt.``) and are
hard-coded here; torch is not needed to run these tests.
"""
import numpy as np
import pytest

import shardopt

CASES = [
    ('np.array([[0.1, 0.2], [0.3, 0.4]], dtype=np.float32)', None,
     'tensor([[0.1000, 0.2000],\n        [0.3000, 0.4000]])'),
    ('np.array(3.0, dtype=np.float32)', None,
     'tensor(3.)'),
    ('np.array(3.5, dtype=np.float32)', None,
     'tensor(3.5000)'),
    ('np.array(0.0, dtype=np.float32)', None,
     'tensor(0.)'),
    ('np.array(7, dtype=np.int64)', None,
     'tensor(7)'),
    ('np.array(True)', None,
     'tensor(True)'),
    ('np.array([1., 2., 3.], dtype=np.float32)', None,
     'tensor([1., 2., 3.])'),
    ('np.array([1., -2., 3.], dtype=np.float64)', None,
     'tensor([ 1., -2.,  3.], dtype=shardopt.float64)'),
    ('np.array([1, 2, 3], dtype=np.int32)', None,
     'tensor([1, 2, 3], dtype=shardopt.int32)'),
    ('np.array([-100, 2, 30000], dtype=np.int64)', None,
     'tensor([ -100,     2, 30000])'),
    ('np.array([True, False, True])', None,
     'tensor([ True, False,  True])'),
    ('np.array([1e-5, 1.0, 2.0], dtype=np.float32)', None,
     'tensor([1.0000e-05, 1.0000e+00, 2.0000e+00])'),
    ('np.array([1e9, 1.0], dtype=np.float32)', None,
     'tensor([1.0000e+09, 1.0000e+00])'),
    ('np.array([1e10, 2e10], dtype=np.float32)', None,
     'tensor([1.0000e+10, 2.0000e+10])'),
    ("np.array([0.5, float('nan'), float('inf'), -float('inf')], dtype=np.float32)", None,
     'tensor([0.5000,    nan,    inf,   -inf])'),
    ("np.array([1.0, float('nan'), float('-inf')], dtype=np.float32)", None,
     'tensor([1., nan, -inf])'),
    ('np.array([1.0, 2.0, 5000.0], dtype=np.float32)', None,
     'tensor([1.0000e+00, 2.0000e+00, 5.0000e+03])'),
    ('np.array([123456.789, 0.001], dtype=np.float64)', None,
     'tensor([1.2346e+05, 1.0000e-03], dtype=shardopt.float64)'),
    ('np.zeros((0,), dtype=np.float32)', None,
     'tensor([])'),
    ('np.zeros((0, 3), dtype=np.float32)', None,
     'tensor([], size=(0, 3))'),
    ('np.zeros((2, 0), dtype=np.int64)', None,
     'tensor([], size=(2, 0), dtype=shardopt.int64)'),
    ('np.zeros((0,), dtype=np.int64)', None,
     'tensor([], dtype=shardopt.int64)'),
    ('np.zeros((0,), dtype=np.float64)', None,
     'tensor([], dtype=shardopt.float64)'),
    ('np.arange(2000, dtype=np.float32)', None,
     'tensor([0.0000e+00, 1.0000e+00, 2.0000e+00,  ..., 1.9970e+03, 1.9980e+03,\n        1.9990e+03])'),
    ('np.arange(1200, dtype=np.int64).reshape(40, 30)', None,
     'tensor([[   0,    1,    2,  ...,   27,   28,   29],\n        [  30,   31,   32,  ...,   57,   58,   59],\n        [  60,   61,   62,  ...,   87,   88,   89],\n        ...,\n        [1110, 1111, 1112,  ..., 1137, 1138, 1139],\n        [1140, 1141, 1142,  ..., 1167, 1168, 1169],\n        [1170, 1171, 1172,  ..., 1197, 1198, 1199]])'),
    ('np.arange(24, dtype=np.float32).reshape(2, 3, 4) / 7', None,
     'tensor([[[0.0000, 0.1429, 0.2857, 0.4286],\n         [0.5714, 0.7143, 0.8571, 1.0000],\n         [1.1429, 1.2857, 1.4286, 1.5714]],\n\n        [[1.7143, 1.8571, 2.0000, 2.1429],\n         [2.2857, 2.4286, 2.5714, 2.7143],\n         [2.8571, 3.0000, 3.1429, 3.2857]]])'),
    ('(np.arange(5000, dtype=np.float64).reshape(10, 10, 50) - 2500) / 3', None,
     'tensor([[[-833.3333, -833.0000, -832.6667,  ..., -817.6667, -817.3333,\n          -817.0000],\n         [-816.6667, -816.3333, -816.0000,  ..., -801.0000, -800.6667,\n          -800.3333],\n         [-800.0000, -799.6667, -799.3333,  ..., -784.3333, -784.0000,\n          -783.6667],\n         ...,\n         [-716.6667, -716.3333, -716.0000,  ..., -701.0000, -700.6667,\n          -700.3333],\n         [-700.0000, -699.6667, -699.3333,  ..., -684.3333, -684.0000,\n          -683.6667],\n         [-683.3333, -683.0000, -682.6667,  ..., -667.6667, -667.3333,\n          -667.0000]],\n\n        [[-666.6667, -666.3333, -666.0000,  ..., -651.0000, -650.6667,\n          -650.3333],\n         [-650.0000, -649.6667, -649.3333,  ..., -634.3333, -634.0000,\n          -633.6667],\n         [-633.3333, -633.0000, -632.6667,  ..., -617.6667, -617.3333,\n          -617.0000],\n         ...,\n         [-550.0000, -549.6667, -549.3333,  ..., -534.3333, -534.0000,\n          -533.6667],\n         [-533.3333, -533.0000, -532.6667,  ..., -517.6667, -517.3333,\n          -517.0000],\n         [-516.6667, -516.3333, -516.0000,  ..., -501.0000, -500.6667,\n          -500.3333]],\n\n        [[-500.0000, -499.6667, -499.3333,  ..., -484.3333, -484.0000,\n          -483.6667],\n         [-483.3333, -483.0000, -482.6667,  ..., -467.6667, -467.3333,\n          -467.0000],\n         [-466.6667, -466.3333, -466.0000,  ..., -451.0000, -450.6667,\n          -450.3333],\n         ...,\n         [-383.3333, -383.0000, -382.6667,  ..., -367.6667, -367.3333,\n          -367.0000],\n         [-366.6667, -366.3333, -366.0000,  ..., -351.0000, -350.6667,\n          -350.3333],\n         [-350.0000, -349.6667, -349.3333,  ..., -334.3333, -334.0000,\n          -333.6667]],\n\n        ...,\n\n        [[ 333.3333,  333.6667,  334.0000,  ...,  349.0000,  349.3333,\n           349.6667],\n         [ 350.0000,  350.3333,  350.6667,  ...,  365.6667,  366.0000,\n           366.3333],\n         [ 366.6667,  367.0000,  367.3333,  ...,  382.3333,  382.6667,\n           383.0000],\n         ...,\n         [ 450.0000,  450.3333,  450.6667,  ...,  465.6667,  466.0000,\n           466.3333],\n         [ 466.6667,  467.0000,  467.3333,  ...,  482.3333,  482.6667,\n           483.0000],\n         [ 483.3333,  483.6667,  484.0000,  ...,  499.0000,  499.3333,\n           499.6667]],\n\n        [[ 500.0000,  500.3333,  500.6667,  ...,  515.6667,  516.0000,\n           516.3333],\n         [ 516.6667,  517.0000,  517.3333,  ...,  532.3333,  532.6667,\n           533.0000],\n         [ 533.3333,  533.6667,  534.0000,  ...,  549.0000,  549.3333,\n           549.6667],\n         ...,\n         [ 616.6667,  617.0000,  617.3333,  ...,  632.3333,  632.6667,\n           633.0000],\n         [ 633.3333,  633.6667,  634.0000,  ...,  649.0000,  649.3333,\n           649.6667],\n         [ 650.0000,  650.3333,  650.6667,  ...,  665.6667,  666.0000,\n           666.3333]],\n\n        [[ 666.6667,  667.0000,  667.3333,  ...,  682.3333,  682.6667,\n           683.0000],\n         [ 683.3333,  683.6667,  684.0000,  ...,  699.0000,  699.3333,\n           699.6667],\n         [ 700.0000,  700.3333,  700.6667,  ...,  715.6667,  716.0000,\n           716.3333],\n         ...,\n         [ 783.3333,  783.6667,  784.0000,  ...,  799.0000,  799.3333,\n           799.6667],\n         [ 800.0000,  800.3333,  800.6667,  ...,  815.6667,  816.0000,\n           816.3333],\n         [ 816.6667,  817.0000,  817.3333,  ...,  832.3333,  832.6667,\n           833.0000]]], dtype=shardopt.float64)'),
    ('np.arange(30, dtype=np.float32) * 1.5', None,
     'tensor([ 0.0000,  1.5000,  3.0000,  4.5000,  6.0000,  7.5000,  9.0000, 10.5000,\n        12.0000, 13.5000, 15.0000, 16.5000, 18.0000, 19.5000, 21.0000, 22.5000,\n        24.0000, 25.5000, 27.0000, 28.5000, 30.0000, 31.5000, 33.0000, 34.5000,\n        36.0000, 37.5000, 39.0000, 40.5000, 42.0000, 43.5000])'),
    ('np.arange(100, dtype=np.int32)', None,
     'tensor([ 0,  1,  2,  3,  4,  5,  6,  7,  8,  9, 10, 11, 12, 13, 14, 15, 16, 17,\n        18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35,\n        36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52, 53,\n        54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64, 65, 66, 67, 68, 69, 70, 71,\n        72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 83, 84, 85, 86, 87, 88, 89,\n        90, 91, 92, 93, 94, 95, 96, 97, 98, 99], dtype=shardopt.int32)'),
    ('np.array([1.5, 2.5], dtype=np.float16)', None,
     'tensor([1.5000, 2.5000], dtype=shardopt.float16)'),
    ('np.array([[1, 2], [3, 4]], dtype=np.float16)', None,
     'tensor([[1., 2.],\n        [3., 4.]], dtype=shardopt.float16)'),
    ('np.array([0.1, 0.25], dtype=np.float32)', 'bfloat16',
     'tensor([0.1001, 0.2500], dtype=shardopt.bfloat16)'),
    ('np.array([[1e-8, 1.0], [3.0, 4.0]], dtype=np.float32)', None,
     'tensor([[1.0000e-08, 1.0000e+00],\n        [3.0000e+00, 4.0000e+00]])'),
    ('np.array([-0.0, 0.0], dtype=np.float32)', None,
     'tensor([-0., 0.])'),
    ('np.linspace(-1, 1, 12).reshape(3, 4).astype(np.float32)', None,
     'tensor([[-1.0000, -0.8182, -0.6364, -0.4545],\n        [-0.2727, -0.0909,  0.0909,  0.2727],\n        [ 0.4545,  0.6364,  0.8182,  1.0000]])'),
    ('np.array([[True, False], [False, True]])', None,
     'tensor([[ True, False],\n        [False,  True]])'),
    ('np.array([[1.0, 2.0]], dtype=np.float32)', 'requires_grad',
     'tensor([[1., 2.]], requires_grad=True)'),
    ('np.array(2.0, dtype=np.float64)', 'requires_grad',
     'tensor(2., dtype=shardopt.float64, requires_grad=True)'),
    ('np.zeros((1, 1, 1), dtype=np.float32)', None,
     'tensor([[[0.]]])'),
    ('np.array([1e-4, 1.0], dtype=np.float32)', None,
     'tensor([1.0000e-04, 1.0000e+00])'),
    ('np.array([0.00011, 0.1], dtype=np.float32)', None,
     'tensor([0.0001, 0.1000])'),
    ('np.array([1e8, 1.0], dtype=np.float32)', None,
     'tensor([1.0000e+08, 1.0000e+00])'),
    ('np.array([123456789.0], dtype=np.float32)', None,
     'tensor([1.2346e+08])'),
    ('np.arange(10, dtype=np.float32).reshape(2, 5) * 1e-3', None,
     'tensor([[0.0000, 0.0010, 0.0020, 0.0030, 0.0040],\n        [0.0050, 0.0060, 0.0070, 0.0080, 0.0090]])'),
    ('np.arange(1001, dtype=np.float64) / 10', None,
     'tensor([  0.0000,   0.1000,   0.2000,  ...,  99.8000,  99.9000, 100.0000],\n       dtype=shardopt.float64)'),
    ('np.arange(60, dtype=np.int64).reshape(3, 4, 5) - 30', None,
     'tensor([[[-30, -29, -28, -27, -26],\n         [-25, -24, -23, -22, -21],\n         [-20, -19, -18, -17, -16],\n         [-15, -14, -13, -12, -11]],\n\n        [[-10,  -9,  -8,  -7,  -6],\n         [ -5,  -4,  -3,  -2,  -1],\n         [  0,   1,   2,   3,   4],\n         [  5,   6,   7,   8,   9]],\n\n        [[ 10,  11,  12,  13,  14],\n         [ 15,  16,  17,  18,  19],\n         [ 20,  21,  22,  23,  24],\n         [ 25,  26,  27,  28,  29]]])'),
    ('np.arange(40, dtype=np.float64) * 1.25', None,
     'tensor([ 0.0000,  1.2500,  2.5000,  3.7500,  5.0000,  6.2500,  7.5000,  8.7500,\n        10.0000, 11.2500, 12.5000, 13.7500, 15.0000, 16.2500, 17.5000, 18.7500,\n        20.0000, 21.2500, 22.5000, 23.7500, 25.0000, 26.2500, 27.5000, 28.7500,\n        30.0000, 31.2500, 32.5000, 33.7500, 35.0000, 36.2500, 37.5000, 38.7500,\n        40.0000, 41.2500, 42.5000, 43.7500, 45.0000, 46.2500, 47.5000, 48.7500],\n       dtype=shardopt.float64)'),
    ('np.arange(40, dtype=np.float64) * 1.25', 'requires_grad',
     'tensor([ 0.0000,  1.2500,  2.5000,  3.7500,  5.0000,  6.2500,  7.5000,  8.7500,\n        10.0000, 11.2500, 12.5000, 13.7500, 15.0000, 16.2500, 17.5000, 18.7500,\n        20.0000, 21.2500, 22.5000, 23.7500, 25.0000, 26.2500, 27.5000, 28.7500,\n        30.0000, 31.2500, 32.5000, 33.7500, 35.0000, 36.2500, 37.5000, 38.7500,\n        40.0000, 41.2500, 42.5000, 43.7500, 45.0000, 46.2500, 47.5000, 48.7500],\n       dtype=shardopt.float64, requires_grad=True)'),
    ('np.arange(10, dtype=np.int32).reshape(2, 5)', None,
     'tensor([[0, 1, 2, 3, 4],\n        [5, 6, 7, 8, 9]], dtype=shardopt.int32)'),
    ('np.array([[1e-3, 2e5], [3.0, -4.0]], dtype=np.float32)', None,
     'tensor([[ 1.0000e-03,  2.0000e+05],\n        [ 3.0000e+00, -4.0000e+00]])'),
    ('np.arange(16, dtype=np.float32).reshape(2, 2, 2, 2)', None,
     'tensor([[[[ 0.,  1.],\n          [ 2.,  3.]],\n\n         [[ 4.,  5.],\n          [ 6.,  7.]]],\n\n\n        [[[ 8.,  9.],\n          [10., 11.]],\n\n         [[12., 13.],\n          [14., 15.]]]])'),
    ('np.zeros((2, 0, 3), dtype=np.bool_)', None,
     'tensor([], size=(2, 0, 3), dtype=shardopt.bool)'),
    ('np.arange(2000, dtype=np.float32).reshape(2, 1000)[:, ::1] / 3', None,
     'tensor([[0.0000e+00, 3.3333e-01, 6.6667e-01,  ..., 3.3233e+02, 3.3267e+02,\n         3.3300e+02],\n        [3.3333e+02, 3.3367e+02, 3.3400e+02,  ..., 6.6567e+02, 6.6600e+02,\n         6.6633e+02]])'),
]


def make(expr, mod):
    a = eval(expr)
    if mod == "bfloat16":
        return shardopt.tensor(a).to(shardopt.bfloat16)
    t = shardopt.tensor(a)
    if mod == "requires_grad":
        t.requires_grad = True
    return t


@pytest.mark.parametrize("expr,mod,expected", CASES, ids=[f"{i}" for i in range(len(CASES))])
def test_repr_matches_torch(expr, mod, expected):
    t = make(expr, mod)
    assert repr(t) == expected
    assert str(t) == expected


@pytest.mark.parametrize("expr,mod,expected", CASES[:12], ids=[f"{i}" for i in range(12)])
def test_repr_of_non_contiguous_view_matches(expr, mod, expected):
    t = make(expr, mod)
    if t.dim() >= 1:
        # the same values seen through a transposed copy transposed back (strided view)
        v = t.t().contiguous().t() if t.dim() == 2 else t
        assert repr(v) == expected


def test_grad_fn_suffix_and_requires_grad():
    class AddBackward0:
        pass

    t = shardopt.tensor([1.0, 2.0])
    t.grad_fn = AddBackward0()
    assert repr(t) == "tensor([1., 2.], grad_fn=<AddBackward0>)"
    t = shardopt.tensor([[0.5]], dtype=shardopt.float64, requires_grad=True)
    assert repr(t) == "tensor([[0.5000]], dtype=shardopt.float64, requires_grad=True)"


def test_default_dtype_changes_dtype_suffix():
    shardopt.set_default_dtype(shardopt.float64)
    try:
        assert repr(shardopt.tensor([1.5, 2.0])) == "tensor([1.5000, 2.0000])"
        assert (repr(shardopt.tensor([1.5], dtype=shardopt.float32))
                == "tensor([1.5000], dtype=shardopt.float32)")
        assert repr(shardopt.zeros(0, dtype=shardopt.float32)) == "tensor([], dtype=shardopt.float32)"
    finally:
        shardopt.set_default_dtype(shardopt.float32)


def test_subclass_prefix_and_printoptions():
    class MyTensor(shardopt.Tensor):
        pass

    t = shardopt._C._make_subclass(MyTensor, shardopt.tensor([1.0, 2.0]), False)
    assert repr(t) == "MyTensor([1., 2.])"
    shardopt.set_printoptions(precision=2)
    try:
        assert repr(shardopt.tensor([0.123456])) == "tensor([0.12])"
    finally:
        shardopt.set_printoptions(profile="default")
    assert repr(shardopt.tensor([0.123456])) == "tensor([0.1235])"


def test_repr_summarises_large_tensor():
    # torch 2.13.0: repr(torch.arange(10**6, dtype=torch.float32).view(1000, 1000))
    t = shardopt.arange(10**6, dtype=shardopt.float32).view(1000, 1000)
    assert repr(t) == ('tensor([[0.0000e+00, 1.0000e+00, 2.0000e+00,  ..., 9.9700e+02, 9.9800e+02,\n         9.9900e+02],\n        [1.0000e+03, 1.0010e+03, 1.0020e+03,  ..., 1.9970e+03, 1.9980e+03,\n         1.9990e+03],\n        [2.0000e+03, 2.0010e+03, 2.0020e+03,  ..., 2.9970e+03, 2.9980e+03,\n         2.9990e+03],\n        ...,\n        [9.9700e+05, 9.9700e+05, 9.9700e+05,  ..., 9.9800e+05, 9.9800e+05,\n         9.9800e+05],\n        [9.9800e+05, 9.9800e+05, 9.9800e+05,  ..., 9.9900e+05, 9.9900e+05,\n         9.9900e+05],\n        [9.9900e+05, 9.9900e+05, 9.9900e+05,  ..., 1.0000e+06, 1.0000e+06,\n         1.0000e+06]])')


@pytest.mark.cuda
def test_cuda_device_suffix():
    t = shardopt.tensor([1.0, 2.5], device="cuda:0")
    assert repr(t) == "tensor([1.0000, 2.5000], device='cuda:0')"
    t = shardopt.zeros(2, 0, dtype=shardopt.int64, device="cuda")
    assert repr(t) == "tensor([], device='cuda:0', size=(2, 0), dtype=shardopt.int64)"
