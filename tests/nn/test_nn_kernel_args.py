"""The raw nn kernel bindings (shardopt._C._softmax, _layer_norm_backward, _cross_entropy,
_embedding_bag_backward...) refuse inconsistent arguments with an exception naming the
argument — never an out-of-bounds read or a crash — since anything can call them."""
import numpy as np
import pytest

from shardopt import _C
from nnutil import T

f32 = np.float32


def z(*shape, dtype=f32):
    return T(np.zeros(shape, dtype))


def test_layer_norm_backward_args():
    x, g = z(4, 6), z(4, 6)
    mean, rstd = z(4), z(4)
    ok = _C._layer_norm_backward(g, x, mean, rstd, z(6), 6, False, (True, True, True))
    assert [tuple(t.shape) for t in ok] == [(4, 6), (6,), (6,)]
    with pytest.raises(RuntimeError, match="'mean' to have dtype Float"):
        _C._layer_norm_backward(g, x, z(4, dtype=np.float64), rstd, None, 6, False,
                                (True, False, False))
    with pytest.raises(RuntimeError, match="'weight' to have dtype Float"):
        _C._layer_norm_backward(g, x, mean, rstd, z(6, dtype=np.float64), 6, False,
                                (True, True, False))
    with pytest.raises(RuntimeError, match="inconsistent sizes"):
        _C._layer_norm_backward(g, x, z(3), rstd, None, 6, False, (True, False, False))
    with pytest.raises(RuntimeError, match="inconsistent sizes"):
        _C._layer_norm_backward(g, x, mean, rstd, z(5), 6, False, (True, True, False))
    with pytest.raises(RuntimeError, match="inconsistent sizes"):
        _C._layer_norm_backward(g, x, mean, rstd, None, 0, False, (True, False, False))


def test_cross_entropy_args():
    x, t = z(3, 5), T(np.array([0, 1, 2]))
    loss, wt, lse = _C._cross_entropy(x, t, None, -100, 0.0, 1)
    assert tuple(loss.shape) == (3,) and tuple(lse.shape) == (3,)
    with pytest.raises(ValueError, match="kind must be 0, 1 or 2"):
        _C._cross_entropy(x, t, None, -100, 0.0, 7)
    with pytest.raises(RuntimeError, match="target of shape"):
        _C._cross_entropy(x, T(np.array([0, 1])), None, -100, 0.0, 1)
    with pytest.raises(RuntimeError, match="probability target of shape"):
        _C._cross_entropy(x, z(3, 4), None, -100, 0.0, 2)
    with pytest.raises(RuntimeError, match="lse must have one element per sample"):
        _C._cross_entropy_backward(x, t, None, z(2), z(), -100, 0.0, 1)
    with pytest.raises(RuntimeError, match="grad_output must have 1 or 3 elements"):
        _C._cross_entropy_backward(x, t, None, lse, z(2), -100, 0.0, 1)
    # an out-of-range target reaching the backward directly contributes nothing
    gx = _C._cross_entropy_backward(x, T(np.array([9, -5, 1])), None, lse, z(3) + 1, -100,
                                    0.0, 1)
    assert np.isfinite(gx.numpy()).all() and (gx.numpy()[:2] == 0).all()


def test_embedding_bag_backward_args():
    w, idx, offs = z(5, 3), T(np.array([0, 1, 4])), T(np.array([0, 2, 3]))
    out, cnt, mi = _C._embedding_bag(w, idx, offs, 2, None, -1)
    gw, gp = _C._embedding_bag_backward(z(2, 3), w, idx, offs, cnt, mi, 2, None, -1, True, False)
    assert tuple(gw.shape) == (5, 3) and gp is None
    with pytest.raises(RuntimeError, match="inconsistent arguments"):
        _C._embedding_bag_backward(z(2, 3), w, idx, offs, cnt, None, 2, None, -1, True, False)
    with pytest.raises(RuntimeError, match="inconsistent arguments"):
        _C._embedding_bag_backward(z(3, 3), w, idx, offs, cnt, mi, 2, None, -1, True, False)
    with pytest.raises(RuntimeError, match="offsets\\[-1\\] can not be greater"):
        _C._embedding_bag_backward(z(2, 3), w, idx, T(np.array([0, 2, 9])), cnt, mi, 2, None,
                                   -1, True, False)
    bad_mi = T(np.full((2, 3), 99))  # garbage winners are skipped, not written out of bounds
    gw, _ = _C._embedding_bag_backward(z(2, 3) + 1, w, idx, offs, cnt, bad_mi, 2, None, -1,
                                       True, False)
    assert (gw.numpy() == 0).all()
    with pytest.raises(ValueError, match="mode has to be one of sum, mean or max"):
        _C._embedding_bag(w, idx, offs, 5, None, -1)
    with pytest.raises(ValueError, match="per_sample_weights has to be of the same shape"):
        _C._embedding_bag(w, idx, offs, 0, z(2), -1)


def test_embedding_and_softmax_args():
    w = z(5, 3)
    with pytest.raises(RuntimeError, match="'weight' must be 2-D"):
        _C._embedding(z(5), T(np.array([0])))
    with pytest.raises(RuntimeError, match="grad has 3 elements, expected 6"):
        _C._embedding_backward(z(3), w, T(np.array([0, 1])), -1, False)
    gw = _C._embedding_backward(z(2, 3) + 1, w, T(np.array([0, 99])), -1, True)
    assert gw.numpy()[0].tolist() == [1, 1, 1] and gw.numpy()[1:].sum() == 0
    with pytest.raises(RuntimeError, match="must be contiguous"):
        _C._embedding_renorm_(z(3, 5).t(), T(np.array([0])), 1.0, 2.0)
    with pytest.raises(IndexError, match="index out of range in self"):
        _C._embedding_renorm_(w, T(np.array([7])), 1.0, 2.0)
    with pytest.raises(IndexError):
        _C._softmax(z(2, 3), 5, False)
    with pytest.raises(ValueError, match="dropout probability"):
        _C._dropout(z(3), 1.0)
