"""Losses: the fused cross-entropy / NLL kernels (csrc/ops/cross_entropy*) against a float64
NumPy implementation of torch's definitions (class indices and probabilities, weight,
ignore_index, label smoothing, every reduction, K-dimensional inputs), L1 / SmoothL1 /
BCEWithLogits, gradients by finite differences and against torch, modules and errors."""
import numpy as np
import pytest

import shardopt
from shardopt import nn
from shardopt.nn import functional as F
from nnutil import N, T, check_grads, poison, torch_or_skip


def _log_softmax(x, axis):
    m = x.max(axis=axis, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=axis, keepdims=True))


def ref_cross_entropy(x, t, w=None, ignore_index=-100, reduction="mean", eps=0.0, nll=False):
    """torch's cross_entropy / nll_loss in float64 (class dim 1, or 0 for 1-D input)."""
    cdim = 0 if x.ndim == 1 else 1
    C = x.shape[cdim]
    lp = x if nll else _log_softmax(x, cdim)
    lp = np.moveaxis(lp, cdim, -1)  # (..., C)
    wv = np.ones(C) if w is None else w
    if t.dtype.kind == "f":  # probabilities
        q = np.moveaxis(t, cdim, -1) * (1 - eps) + eps / C
        loss = -(lp * q * wv).sum(-1)
        if reduction == "mean":
            return loss.sum() / (loss.size if loss.size else np.nan)
        return loss.sum() if reduction == "sum" else loss
    valid = t != ignore_index
    tc = np.where(valid, t, 0)
    picked = np.take_along_axis(lp, tc[..., None], -1)[..., 0]
    wt = np.where(valid, wv[tc], 0.0)
    nll_l = -wt * picked
    smooth = np.where(valid, -(lp * wv).sum(-1), 0.0)
    loss = (1 - eps) * nll_l + eps / C * smooth
    if reduction == "mean":
        return loss.sum() / wt.sum()
    return loss.sum() if reduction == "sum" else loss


def make_case(rng, shape, C, ignore=False):
    x = rng.standard_normal(shape) * 3
    tshape = (shape[0],) + shape[2:] if len(shape) > 1 else ()
    t = rng.integers(0, C, size=tshape).astype(np.int64)
    if ignore and t.size > 1:
        t.reshape(-1)[::3] = -100
    return x, t


SHAPES = [((8, 5), 5), ((5,), 5), ((4, 6, 3), 6), ((2, 3, 2, 2), 3), ((3, 1000), 1000)]


@pytest.mark.parametrize("shape,C", SHAPES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("eps", [0.0, 0.2])
def test_cross_entropy_indices(shape, C, reduction, weighted, eps):
    rng = np.random.default_rng(abs(hash((shape, reduction, weighted, eps))) % 2**32)
    x, t = make_case(rng, shape, C, ignore=True)
    w = rng.uniform(0.2, 2.0, C) if weighted else None
    poison(x.nbytes)
    got = F.cross_entropy(T(x), T(t), None if w is None else T(w), reduction=reduction,
                          label_smoothing=eps)
    want = ref_cross_entropy(x, t, w, reduction=reduction, eps=eps)
    assert tuple(got.shape) == np.shape(want)
    np.testing.assert_allclose(N(got), want, rtol=1e-12, atol=1e-12)
    # float32 against the same float64 reference
    got32 = F.cross_entropy(T(x.astype(np.float32)), T(t),
                            None if w is None else T(w.astype(np.float32)),
                            reduction=reduction, label_smoothing=eps)
    assert got32.dtype == shardopt.float32
    np.testing.assert_allclose(N(got32), want, rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("shape", [(6, 4), (3, 5, 2), (7,)])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_probabilities(shape, reduction):
    rng = np.random.default_rng(3)
    x = rng.standard_normal(shape)
    q = rng.random(shape)
    q /= q.sum(axis=0 if len(shape) == 1 else 1, keepdims=True)
    C = shape[0] if len(shape) == 1 else shape[1]
    w = rng.uniform(0.5, 1.5, C)
    for ww, eps in ((None, 0.0), (w, 0.1)):
        got = F.cross_entropy(T(x), T(q), None if ww is None else T(ww), reduction=reduction,
                              label_smoothing=eps)
        np.testing.assert_allclose(N(got), ref_cross_entropy(x, q, ww, reduction=reduction,
                                                             eps=eps), rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_nll_loss(reduction):
    rng = np.random.default_rng(4)
    x, t = make_case(rng, (9, 4, 3), 4, ignore=True)
    lp = _log_softmax(x, 1)
    w = rng.uniform(0.1, 1.0, 4)
    for ww in (None, w):
        got = F.nll_loss(T(lp), T(t), None if ww is None else T(ww), reduction=reduction)
        np.testing.assert_allclose(N(got), ref_cross_entropy(lp, t, ww, reduction=reduction,
                                                             nll=True), rtol=1e-12)
    # nll_loss is not cross_entropy: the input is taken as given
    np.testing.assert_allclose(N(F.nll_loss(T(x), T(t), reduction=reduction)),
                               ref_cross_entropy(x, t, reduction=reduction, nll=True), rtol=1e-12)


def test_all_ignored_mean_is_nan_and_custom_ignore_index():
    x = np.random.default_rng(5).standard_normal((3, 5))
    t = np.zeros(3, np.int64)
    assert np.isnan(N(F.cross_entropy(T(x), T(t), ignore_index=0)))
    assert np.isnan(N(F.cross_entropy(T(x), T(t), ignore_index=0, label_smoothing=0.1)))
    assert N(F.cross_entropy(T(x), T(t), ignore_index=0, reduction="sum")) == 0
    t2 = np.array([1, 7, 2])  # 7 is ignored, so it may be out of range
    np.testing.assert_allclose(N(F.cross_entropy(T(x), T(t2), ignore_index=7)),
                               ref_cross_entropy(x, t2, ignore_index=7), rtol=1e-12)


@pytest.mark.parametrize("kind", ["index", "prob", "nll"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_gradients_finite_differences(kind, reduction):
    rng = np.random.default_rng(6)
    x, t = make_case(rng, (4, 3, 2), 3, ignore=True)
    w = rng.uniform(0.5, 2.0, 3)
    if kind == "prob":
        q = rng.random(x.shape)
        q /= q.sum(1, keepdims=True)
        check_grads(lambda x, q, w: F.cross_entropy(x, q, w, reduction=reduction,
                                                    label_smoothing=0.15), [x, q, w], [0])
    elif kind == "index":
        check_grads(lambda x, t, w: F.cross_entropy(x, t, w, reduction=reduction,
                                                    label_smoothing=0.15), [x, t, w], [0])
        check_grads(lambda x, t: F.cross_entropy(x, t, reduction=reduction), [x, t], [0])
    else:
        check_grads(lambda x, t, w: F.nll_loss(x, t, w, reduction=reduction), [x, t, w], [0])


def test_against_torch():
    torch = torch_or_skip()
    rng = np.random.default_rng(7)
    x = rng.standard_normal((6, 5, 3)).astype(np.float32)
    t = rng.integers(0, 5, (6, 3))
    t[0, 0] = -100
    w = rng.uniform(0.5, 2, 5).astype(np.float32)
    for kw in ({}, {"weight": w}, {"label_smoothing": 0.3}, {"weight": w, "label_smoothing": 0.1,
                                                            "reduction": "sum"}):
        a, b = T(x, requires_grad=True), torch.tensor(x, requires_grad=True)
        ka = {k: (T(v) if isinstance(v, np.ndarray) else v) for k, v in kw.items()}
        kb = {k: (torch.tensor(v) if isinstance(v, np.ndarray) else v) for k, v in kw.items()}
        la, lb = F.cross_entropy(a, T(t), **ka), torch.nn.functional.cross_entropy(
            b, torch.tensor(t), **kb)
        np.testing.assert_allclose(N(la), lb.detach().numpy(), rtol=1e-5)
        la.backward()
        lb.backward()
        np.testing.assert_allclose(N(a.grad), b.grad.numpy(), rtol=1e-4, atol=1e-7)


def test_pointwise_losses():
    rng = np.random.default_rng(8)
    x, y = rng.standard_normal((4, 5)), rng.standard_normal((4, 5))
    d = x - y
    np.testing.assert_allclose(N(F.l1_loss(T(x), T(y))), np.abs(d).mean(), rtol=1e-14)
    np.testing.assert_allclose(N(F.l1_loss(T(x), T(y), reduction="none")), np.abs(d))
    for beta in (1.0, 0.5, 0.0):
        a = np.abs(d)
        want = a if beta == 0 else np.where(a < beta, 0.5 * d * d / beta, a - 0.5 * beta)
        np.testing.assert_allclose(N(F.smooth_l1_loss(T(x), T(y), reduction="sum", beta=beta)),
                                   want.sum(), rtol=1e-14)
    t = rng.random((4, 5))
    pw, w = rng.uniform(0.5, 3, 5), rng.uniform(0.5, 2, (4, 5))
    sp = np.log1p(np.exp(-x))
    want = ((1 - t) * x + (1 + (pw - 1) * t) * sp) * w
    got = F.binary_cross_entropy_with_logits(T(x), T(t), T(w), pos_weight=T(pw), reduction="none")
    np.testing.assert_allclose(N(got), want, rtol=1e-12)
    big = np.array([1000.0, -1000.0, 0.0])  # no overflow at the extremes
    got = N(F.binary_cross_entropy_with_logits(T(big), T(np.array([0.0, 1.0, 1.0])),
                                               reduction="none"))
    np.testing.assert_allclose(got, [1000.0, 1000.0, np.log(2)], rtol=1e-12)


def test_pointwise_loss_gradients():
    rng = np.random.default_rng(9)
    x, y = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    t, w, pw = rng.random((3, 4)), rng.uniform(0.5, 2, (3, 4)), rng.uniform(0.5, 3, 4)
    check_grads(lambda x, y: F.l1_loss(x, y), [x, y], [0, 1])
    check_grads(lambda x, y: F.smooth_l1_loss(x, y, beta=0.7), [x, y], [0, 1])
    check_grads(lambda x, t, w, pw: F.binary_cross_entropy_with_logits(x, t, w, pos_weight=pw),
                [x, t, w, pw], [0, 1, 2, 3])
    x0 = np.zeros((2, 2))  # the logit gradient at 0 is sigmoid(0) - t
    a = T(x0, requires_grad=True)
    F.binary_cross_entropy_with_logits(a, T(np.ones((2, 2))), reduction="sum").backward()
    np.testing.assert_allclose(N(a.grad), np.full((2, 2), -0.5))


def test_modules():
    w = T(np.ones(3))
    ce = nn.CrossEntropyLoss(weight=w, ignore_index=1, label_smoothing=0.1)
    assert repr(ce) == "CrossEntropyLoss()" and list(ce.state_dict()) == ["weight"]
    assert ce.ignore_index == 1 and ce.label_smoothing == 0.1 and ce.reduction == "mean"
    assert list(nn.CrossEntropyLoss().state_dict()) == []
    assert list(nn.BCEWithLogitsLoss(pos_weight=T(np.ones(3))).state_dict()) == ["pos_weight"]
    assert repr(nn.NLLLoss()) == "NLLLoss()" and repr(nn.SmoothL1Loss()) == "SmoothL1Loss()"
    x = np.random.default_rng(10).standard_normal((4, 3))
    t = np.array([0, 2, 1, 2])
    np.testing.assert_allclose(N(ce(T(x), T(t))), ref_cross_entropy(x, t, np.ones(3), 1,
                                                                      eps=0.1), rtol=1e-12)
    np.testing.assert_allclose(N(nn.NLLLoss(reduction="sum")(T(x), T(t))),
                               ref_cross_entropy(x, t, reduction="sum", nll=True))
    assert nn.SmoothL1Loss(beta=0.5).beta == 0.5
    with pytest.warns(UserWarning, match="size_average and reduce args will be deprecated"):
        assert nn.L1Loss(size_average=False).reduction == "sum"


def test_errors_match_torch():
    x = T(np.zeros((3, 5), np.float32))
    with pytest.raises(IndexError, match="Target 5 is out of bounds."):
        F.cross_entropy(x, T(np.array([0, 5, 1])))
    with pytest.raises(IndexError, match="Target -3 is out of bounds."):
        F.cross_entropy(x, T(np.array([0, -3, 1])))
    with pytest.raises(IndexError, match="Target 5 is out of bounds."):
        F.nll_loss(x, T(np.array([0, 5, 1])))
    with pytest.raises(ValueError, match=r"Expected input batch_size \(3\) to match target "
                                         r"batch_size \(2\)."):
        F.cross_entropy(x, T(np.array([0, 1])))
    with pytest.raises(RuntimeError, match="expected target dtype to be Long or Byte, but got "
                                           "Float"):
        F.cross_entropy(x, T(np.array([0.0, 1, 2], np.float32)))
    with pytest.raises(RuntimeError, match="0D or 1D target tensor expected, multi-target not "
                                           "supported"):
        F.cross_entropy(x, T(np.zeros((3, 4), np.int64)))
    with pytest.raises(RuntimeError, match=r"weight tensor should be defined either for all 5 "
                                           r"classes or no classes but got weight tensor of "
                                           r"shape: \[4\]"):
        F.cross_entropy(x, T(np.array([0, 1, 2])), weight=T(np.ones(4, np.float32)))
    with pytest.raises(ValueError, match="avg is not a valid value for reduction"):
        F.cross_entropy(x, T(np.array([0, 1, 2])), reduction="avg")
    with pytest.raises(RuntimeError, match="label_smoothing must be between 0.0 and 1.0. Got: "
                                           "1.5"):
        F.cross_entropy(x, T(np.array([0, 1, 2])), label_smoothing=1.5)
    with pytest.raises(RuntimeError, match=r"Expected target size \[3, 4\], got \[3, 5\]"):
        F.cross_entropy(T(np.zeros((3, 2, 4))), T(np.zeros((3, 5), np.int64)))
    with pytest.raises(ValueError, match=r"Target size \(shardopt.Size\(\[3, 4\]\)\) must be the "
                                         r"same as input size"):
        F.binary_cross_entropy_with_logits(x, T(np.zeros((3, 4), np.float32)))
    with pytest.raises(RuntimeError, match="smooth_l1_loss does not support negative values for "
                                           "beta."):
        F.smooth_l1_loss(x, x, beta=-1.0)
    with pytest.raises(TypeError, match="argument 'target'"):
        F.cross_entropy(x, [0, 1, 2])
    with pytest.raises(RuntimeError, match="not differentiable with respect to argument "
                                           "'weight'"):
        F.cross_entropy(x, T(np.array([0, 1, 2])), T(np.ones(5, np.float32), requires_grad=True))
