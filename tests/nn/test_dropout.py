"""Dropout (csrc/ops/dropout*): the keep mask re-derived in NumPy from the raw Philox stream
(so CPU bits are pinned, and CUDA must match them), the 1/(1-p) scaling, determinism per
seed, the generator's advance, train/eval, gradients, and torch's errors."""
import numpy as np
import pytest

import shardopt
from shardopt import nn
from shardopt.nn import functional as F
from nnutil import N, T, poison


def philox_mask(seed, first_block, n, p):
    thr = min(int(p * 2 ** 24 + 0.5), 2 ** 24)
    words = []
    for j in range((n + 3) // 4):
        words.extend(shardopt._C._philox(seed, first_block + j))
    return (np.array(words[:n], dtype=np.uint64) >> 8) >= thr


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n,p", [(1003, 0.3), (4, 0.5), (257, 0.9)])
def test_mask_is_the_philox_stream(dtype, n, p):
    x = np.random.default_rng(0).standard_normal(n).astype(dtype) + 3.0  # no zeros
    shardopt.manual_seed(1234)
    poison(x.nbytes)
    out = N(F.dropout(T(x), p))
    keep = philox_mask(1234, 0, n, p)
    np.testing.assert_array_equal(out != 0, keep)
    # kept elements are x * scale with the scale rounded to the dtype, as torch's kernel
    np.testing.assert_array_equal(out[keep], x[keep] * dtype(1 / (1 - p)))
    # the next draw continues after ceil(n / 4) blocks
    out2 = N(F.dropout(T(x), p))
    np.testing.assert_array_equal(out2 != 0, philox_mask(1234, (n + 3) // 4, n, p))


def test_rate_determinism_and_shape():
    x = T(np.ones((64, 256), np.float32))
    shardopt.manual_seed(7)
    a = N(F.dropout(x, 0.25))
    shardopt.manual_seed(7)
    b = N(F.dropout(x, 0.25))
    np.testing.assert_array_equal(a, b)
    assert set(np.unique(a)) <= {0.0, np.float32(1 / 0.75)}
    assert abs((a == 0).mean() - 0.25) < 0.01
    c = N(F.dropout(x, 0.25))
    assert (a != c).any()


def test_eval_p0_p1_and_module():
    x = T(np.arange(1.0, 7.0).reshape(2, 3))
    assert F.dropout(x, 0.5, training=False) is x
    assert F.dropout(x, 0.0) is x
    np.testing.assert_array_equal(N(F.dropout(x, 1.0)), np.zeros((2, 3)))
    d = nn.Dropout(0.5)
    assert repr(d) == "Dropout(p=0.5, inplace=False)"
    assert repr(nn.Dropout(0.1, True)) == "Dropout(p=0.1, inplace=True)"
    d.eval()
    assert d(x) is x
    d.train()
    out = N(d(x))
    assert np.all((out == 0) | (out == 2 * N(x)))
    y = T(np.ones(8))
    shardopt.manual_seed(3)
    ref = N(F.dropout(y, 0.5))
    shardopt.manual_seed(3)
    out = F.dropout(y, 0.5, inplace=True)
    assert out is y
    np.testing.assert_array_equal(N(y), ref)


def test_gradient_is_mask_times_scale():
    x = T(np.random.default_rng(1).standard_normal(500) + 5.0, requires_grad=True)
    shardopt.manual_seed(11)
    out = F.dropout(x, 0.4)
    g = np.random.default_rng(2).standard_normal(500)
    out.backward(T(g))
    keep = N(out) != 0
    np.testing.assert_allclose(N(x.grad), np.where(keep, g / 0.6, 0.0), rtol=1e-14)
    h = T(np.ones(4, np.float32)).to(shardopt.float16)
    assert F.dropout(h, 0.5).dtype == shardopt.float16


def test_errors_match_torch():
    with pytest.raises(ValueError, match="dropout probability has to be between 0 and 1, but got "
                                         "1.5"):
        F.dropout(T(np.ones(3)), 1.5)
    with pytest.raises(ValueError, match="dropout probability has to be between 0 and 1, but got "
                                         "-1"):
        nn.Dropout(-1)
    with pytest.raises(TypeError, match="argument 'input'"):
        F.dropout([1.0], 0.5)
    with pytest.raises(RuntimeError, match="Float or Double"):
        F.dropout(T(np.ones(3, np.int64)), 0.5)


@pytest.mark.cuda
@pytest.mark.skipif(not shardopt.cuda.is_available(), reason="no CUDA device")
def test_cuda_mask_matches_philox():
    n, p = 4099, 0.35
    x = np.random.default_rng(0).standard_normal(n).astype(np.float32) + 3.0
    shardopt.manual_seed(99)
    out = N(F.dropout(T(x).cuda(), p))
    np.testing.assert_array_equal(out != 0, philox_mask(99, 0, n, p))
