"""More of torch.nn.functional: the pointwise activations (leaky_relu, elu, selu, celu,
softplus, softsign, hardtanh, relu6, hardsigmoid, hardswish, logsigmoid, mish) and the
losses and distances built from them (huber_loss, binary_cross_entropy, kl_div,
cosine_similarity, pairwise_distance, margin_ranking_loss, soft_margin_loss).

Each is composed from shardopt's differentiable ops, so autograd follows.  Where torch's
derivative at a kink differs from the composition's, the branch is chosen by a 0/1 mask
computed without grad (a constant to autograd), which gives torch's derivative there:
leaky_relu and elu take the x <= 0 side's slope at 0, the clamp-like ones (hardtanh, relu6,
hardsigmoid, hardswish) pass gradient only strictly inside their range, as torch does.  log(1 + y) for the
softplus family uses the classic accurate log1p (log(u) * y / (u - 1) with u = 1 + y), so
softplus(-20) is 2.06e-9, not 0.  functional.py re-exports these names.
"""

from __future__ import annotations

import math
import warnings

from .. import _C
from ..autograd import grad_mode

__all__ = ["leaky_relu", "elu", "selu", "celu", "softplus", "softsign", "hardtanh", "relu6",
           "hardsigmoid", "hardswish", "logsigmoid", "mish", "huber_loss",
           "binary_cross_entropy", "kl_div", "cosine_similarity", "pairwise_distance",
           "margin_ranking_loss", "soft_margin_loss"]

_TB = _C.TensorBase
_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


def _tensor(x, fname, argname="input"):
    if not isinstance(x, _TB):
        raise TypeError(f"{fname}(): argument '{argname}' (position 1) must be Tensor, not "
                        f"{type(x).__name__}")
    if not x.is_floating_point():
        raise RuntimeError(f"\"{fname}\" not implemented for "
                           f"'{str(x.dtype).rsplit('.', 1)[-1]}'")


def _positive(x):
    """1.0 where x > 0 else 0.0, in x's dtype, as a constant (no history)."""
    with grad_mode.no_grad():
        return (x > 0).to(x.dtype)


def _finish(input, out, inplace):
    return input.copy_(out) if inplace else out


def _log1p(y):
    """log(1 + y) for y >= 0 with full relative accuracy for tiny y (Goldberg's trick: the
    rounding of 1 + y cancels in log(u) / (u - 1))."""
    u = 1.0 + y
    with grad_mode.no_grad():
        exact = (u == 1.0).to(y.dtype)
    d = (u - 1.0) + exact  # never 0 where it is used
    return exact * y + (1.0 - exact) * (u.log() * y / d)


# ------------------------------------------------------------------ activations


def leaky_relu(input, negative_slope=0.01, inplace=False):
    """x where x > 0, negative_slope * x elsewhere."""
    _tensor(input, "leaky_relu")
    pos = _positive(input)
    return _finish(input, input * (pos + (1.0 - pos) * negative_slope), inplace)


def elu(input, alpha=1.0, inplace=False):
    """x where x > 0, alpha * (exp(x) - 1) elsewhere."""
    _tensor(input, "elu")
    pos = _positive(input)
    neg = alpha * (input.clamp(max=0.0).exp() - 1.0)
    return _finish(input, pos * input + (1.0 - pos) * neg, inplace)


def selu(input, inplace=False):
    """scale * elu(x, alpha) with the self-normalising constants."""
    _tensor(input, "selu")
    return _finish(input, _SELU_SCALE * elu(input, _SELU_ALPHA), inplace)


def celu(input, alpha=1.0, inplace=False):
    """max(0, x) + min(0, alpha * (exp(x / alpha) - 1))."""
    _tensor(input, "celu")
    if alpha == 0:
        raise RuntimeError("ZeroDivisionError")
    return _finish(input, elu(input / alpha) * alpha, inplace)


def softplus(input, beta=1.0, threshold=20.0):
    """log(1 + exp(beta x)) / beta, and x itself where beta x > threshold."""
    _tensor(input, "softplus")
    z = input * beta
    with grad_mode.no_grad():
        lin = (z > threshold).to(input.dtype)
    # max(z, 0) + log1p(exp(-|z|)): no overflow, no cancellation; the sign as a constant
    # mask, so the derivative at z = 0 is sigmoid(0) = 1/2 (abs and clamp would give 1)
    pos = _positive(z)
    soft = (pos * z + _log1p((z - 2.0 * pos * z).exp())) / beta
    return lin * input + (1.0 - lin) * soft


def softsign(input):
    """x / (1 + |x|)."""
    _tensor(input, "softsign")
    return input / (input.abs() + 1.0)


def _interior(x, lo, hi):
    """1.0 where lo < x < hi (strictly) else 0.0, as a constant: torch's clamp-like
    activations pass the gradient only strictly inside their range."""
    with grad_mode.no_grad():
        return ((x > lo).long() * (x < hi).long()).to(x.dtype)


def hardtanh(input, min_val=-1.0, max_val=1.0, inplace=False):
    """x clamped to [min_val, max_val] (gradient 1 strictly inside, 0 elsewhere)."""
    _tensor(input, "hardtanh")
    if min_val > max_val:
        raise ValueError("min_val cannot be greater than max_val")
    inside = _interior(input, min_val, max_val)
    with grad_mode.no_grad():
        clamped = input.clamp(min=min_val, max=max_val)
    return _finish(input, inside * input + (1.0 - inside) * clamped, inplace)


def relu6(input, inplace=False):
    """min(max(x, 0), 6)."""
    return hardtanh(input, 0.0, 6.0, inplace)


def hardsigmoid(input, inplace=False):
    """relu6(x + 3) / 6 (gradient 1/6 strictly inside (-3, 3))."""
    _tensor(input, "hardsigmoid")
    return _finish(input, hardtanh(input + 3.0, 0.0, 6.0) / 6.0, inplace)


def hardswish(input, inplace=False):
    """x * relu6(x + 3) / 6: 0 up to -3, x from 3 on (gradient (2x + 3) / 6 between)."""
    _tensor(input, "hardswish")
    inside = _interior(input, -3.0, 3.0)
    with grad_mode.no_grad():
        high = (input >= 3.0).to(input.dtype)
    return _finish(input, inside * (input * (input + 3.0) / 6.0) + high * input, inplace)


def logsigmoid(input):
    """log(sigmoid(x)) = -softplus(-x), without overflow."""
    _tensor(input, "log_sigmoid")
    return -softplus(-input)


def mish(input, inplace=False):
    """x * tanh(softplus(x))."""
    _tensor(input, "mish")
    return _finish(input, input * softplus(input).tanh(), inplace)


# ------------------------------------------------------------------ losses and distances


def _reduction(reduction, size_average=None, reduce=None):
    from .functional import _check_reduction, _reduction_of
    reduction = _reduction_of(size_average, reduce, reduction)
    _check_reduction(reduction)
    return reduction


def _reduce(loss, reduction):
    from .functional import _reduce as reduce_
    return reduce_(loss, reduction)


def huber_loss(input, target, reduction="mean", delta=1.0, weight=None):
    """0.5 d^2 where |d| < delta, delta (|d| - 0.5 delta) elsewhere (d = input - target)."""
    from .functional import smooth_l1_loss
    if delta <= 0:
        raise RuntimeError("huber_loss does not support non-positive values for delta.")
    loss = smooth_l1_loss(input, target, reduction="none", beta=delta) * delta
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, _reduction(reduction))


def binary_cross_entropy(input, target, weight=None, size_average=None, reduce=None,
                         reduction="mean"):
    """-(t log(x) + (1 - t) log(1 - x)), each log clamped at -100 as torch does; x must be
    probabilities in [0, 1]."""
    _tensor(input, "binary_cross_entropy")
    reduction = _reduction(reduction, size_average, reduce)
    if tuple(target.shape) != tuple(input.shape):
        raise ValueError(f"Using a target size ({target.size()}) that is different to the "
                         f"input size ({input.size()}) is deprecated. Please ensure they have "
                         f"the same size.")
    with grad_mode.no_grad():
        bad = ((input < 0) | (input > 1) | (input != input)).any().item()
    if bad:
        raise RuntimeError("all elements of input should be between 0 and 1")
    loss = -(target * input.log().clamp(min=-100.0)
             + (1.0 - target) * (1.0 - input).log().clamp(min=-100.0))
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction)


def kl_div(input, target, size_average=None, reduce=None, reduction="mean", log_target=False):
    """Pointwise target * (log(target) - input) (input holds log-probabilities; 0 where
    target is 0), or exp(target) * (target - input) with log_target; 'batchmean' divides the
    sum by the batch size, the mathematically correct KL divergence."""
    from .functional import _reduction_of
    reduction = _reduction_of(size_average, reduce, reduction)
    if reduction not in ("mean", "sum", "none", "batchmean"):
        raise ValueError(f"{reduction} is not a valid value for reduction")
    if reduction == "mean":
        warnings.warn("reduction: 'mean' divides the total loss by both the batch size and the "
                      "support size.'batchmean' divides only by the batch size, and aligns with "
                      "the KL div math definition.'mean' will be changed to behave the same as "
                      "'batchmean' in the next major release.", UserWarning, stacklevel=2)
    if log_target:
        loss = target.exp() * (target - input)
    else:
        with grad_mode.no_grad():
            pos = (target > 0).to(target.dtype)
        safe = target * pos + (1.0 - pos)  # log(1) = 0 where target is 0
        loss = target * safe.log() - target * input
    if reduction == "batchmean":
        return loss.sum() / (input.shape[0] if input.ndim else 1)
    return _reduce(loss, reduction)


def cosine_similarity(x1, x2, dim=1, eps=1e-8):
    """sum(x1 * x2) / (max(|x1|, eps) * max(|x2|, eps)) along ``dim``, broadcast."""
    _tensor(x1, "cosine_similarity", "x1")
    _tensor(x2, "cosine_similarity", "x2")
    n1 = (x1 * x1).sum(dim=dim, keepdim=True).sqrt().clamp(min=eps)
    n2 = (x2 * x2).sum(dim=dim, keepdim=True).sqrt().clamp(min=eps)
    return ((x1 / n1) * (x2 / n2)).sum(dim=dim)


def pairwise_distance(x1, x2, p=2.0, eps=1e-6, keepdim=False):
    """The p-norm of x1 - x2 + eps over the last dim."""
    _tensor(x1, "pairwise_distance", "x1")
    d = (x1 - x2 + eps).abs()
    if p == 2.0:
        return (d * d).sum(dim=-1, keepdim=keepdim).sqrt()
    if p == 1.0:
        return d.sum(dim=-1, keepdim=keepdim)
    if math.isinf(p):
        return d.max(dim=-1, keepdim=keepdim).values
    return (d ** p).sum(dim=-1, keepdim=keepdim) ** (1.0 / p)


def margin_ranking_loss(input1, input2, target, margin=0.0, size_average=None, reduce=None,
                        reduction="mean"):
    """max(0, -target * (input1 - input2) + margin)."""
    reduction = _reduction(reduction, size_average, reduce)
    return _reduce((-target * (input1 - input2) + margin).clamp(min=0.0), reduction)


def soft_margin_loss(input, target, size_average=None, reduce=None, reduction="mean"):
    """log(1 + exp(-target * input))."""
    reduction = _reduction(reduction, size_average, reduce)
    return _reduce(softplus(-target * input), reduction)


# ------------------------------------------------------------------ thresholds and gates


def threshold(input, threshold, value, inplace=False):
    """x where x > threshold, else ``value``."""
    _tensor(input, "threshold")
    keep = _positive(input - threshold)
    return _finish(input, keep * input + (1.0 - keep) * value, inplace)


def hardshrink(input, lambd=0.5):
    """x where |x| > lambd, else 0."""
    _tensor(input, "hardshrink")
    return input * _positive(input.abs() - lambd)


def softshrink(input, lambd=0.5):
    """x - lambd above lambd, x + lambd below -lambd, 0 between."""
    _tensor(input, "softshrink")
    if lambd < 0:
        raise RuntimeError(f"lambda must be greater or equal to 0, but found to be {lambd}.")
    return (input - lambd) * _positive(input - lambd) + (input + lambd) * _positive(-input - lambd)


def tanhshrink(input):
    """x - tanh(x)."""
    _tensor(input, "tanhshrink")
    return input - input.tanh()


def glu(input, dim=-1):
    """a * sigmoid(b), where a and b are the two halves of ``input`` along ``dim``."""
    _tensor(input, "glu")
    n = input.shape[dim]
    if n % 2:
        raise RuntimeError(f"Halving dimension must be even, but dimension {dim % input.ndim} "
                           f"is size {n}")
    a, b = input.narrow(dim, 0, n // 2), input.narrow(dim, n // 2, n // 2)
    return a * b.sigmoid()


def prelu(input, weight):
    """x where x > 0, weight * x elsewhere (weight: one value, or one per channel, dim 1)."""
    _tensor(input, "prelu")
    pos = _positive(input)
    w = weight
    if weight.numel() > 1:
        if input.ndim < 2 or input.shape[1] != weight.numel():
            raise RuntimeError(f"Mismatch of parameter numbers and input channel size. Found "
                               f"parameter numbers = {weight.numel()} and channel size = "
                               f"{input.shape[1] if input.ndim > 1 else 1}.")
        w = weight.reshape((1, -1) + (1,) * (input.ndim - 2))
    return pos * input + (1.0 - pos) * (w * input)


def softmin(input, dim=None, _stacklevel=3, dtype=None):
    """softmax(-x) along ``dim``."""
    from .functional import softmax
    return softmax(-input, dim, _stacklevel, dtype)


__all__ += ["threshold", "hardshrink", "softshrink", "tanhshrink", "glu", "prelu", "softmin"]
