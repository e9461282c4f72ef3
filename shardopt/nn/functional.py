"""shardopt.nn.functional: torch.nn.functional's signatures, defaults and error messages.

Per-row work runs in C kernels (softmax family, layer/RMS norm, fused cross-entropy and NLL,
embedding / embedding_bag, dropout: csrc/ops/*) through the autograd Functions of
``nn._functions``; the remaining losses and activations are compositions of differentiable
tensor ops.  The kernels compute in float32 / float64: float16 / bfloat16 inputs are computed
in float32 and rounded back.
"""
import warnings

from .. import _C
from .._ops import softmax_ops as _sm
from ..autograd import _math
from ..autograd._setup import FUNCTIONS as _FUNCTIONS
from . import _functions as _fn

__all__ = ["linear", "gelu", "relu", "silu", "sigmoid", "tanh", "softmax", "log_softmax",
           "dropout", "layer_norm", "rms_norm", "embedding", "embedding_bag", "one_hot",
           "normalize", "pad", "mse_loss", "l1_loss", "smooth_l1_loss",
           "binary_cross_entropy_with_logits", "cross_entropy", "nll_loss"]

_TB = _C.TensorBase
_HALF = (_C.float16, _C.bfloat16)
_FINFO_EPS = {_C.float32: 1.1920928955078125e-07, _C.float64: 2.220446049250313e-16,
              _C.float16: 0.0009765625, _C.bfloat16: 0.0078125}
_SCALAR_NAMES = {_C.float32: "Float", _C.float64: "Double", _C.float16: "Half",
                 _C.bfloat16: "BFloat16", _C.int32: "Int", _C.int64: "Long", _C.bool: "Bool"}
_TENSOR_NAMES = {_C.float32: "FloatTensor", _C.float64: "DoubleTensor",
                 _C.float16: "HalfTensor", _C.bfloat16: "BFloat16Tensor",
                 _C.int32: "IntTensor", _C.int64: "LongTensor", _C.bool: "BoolTensor"}


def _need_tensor(x, fname, argname):
    if not isinstance(x, _TB):
        raise TypeError(f"{fname}(): argument '{argname}' must be Tensor, not "
                        f"{type(x).__name__}")


def _upcast(*ts):
    """float16 / bfloat16 tensors as float32 (None passes); also returns the dtype to round
    the result back to (None when nothing was converted)."""
    half = next((t.dtype for t in ts if isinstance(t, _TB) and t.dtype in _HALF), None)
    if half is None:
        return ts, None
    return tuple(t.float() if isinstance(t, _TB) and t.dtype in _HALF else t for t in ts), half


def _down(out, half):
    return out if half is None else out.to(half)


# ------------------------------------------------------------------ activations


def linear(input, weight, bias=None):
    """y = input @ weight.T + bias."""
    return _math.linear(input, weight, bias)


def gelu(input, approximate="none"):
    """Gaussian Error Linear Unit: x * Phi(x) (erf form), or the tanh approximation."""
    if approximate not in ("none", "tanh"):
        raise RuntimeError(f"approximate argument must be either none or tanh, got "
                           f"{approximate!r}")
    fn = _FUNCTIONS.get("gelu")
    if fn is None:
        return input.gelu(approximate=approximate)
    return fn(input, approximate=approximate)


def relu(input, inplace=False):
    """max(x, 0)."""
    if inplace:
        return input.relu_()
    fn = _FUNCTIONS.get("relu")
    return input.relu() if fn is None else fn(input)


def sigmoid(input):
    """1 / (1 + exp(-x))."""
    _need_tensor(input, "sigmoid", "input")
    return input.sigmoid()


def tanh(input):
    """Hyperbolic tangent."""
    _need_tensor(input, "tanh", "input")
    return input.tanh()


def silu(input, inplace=False):
    """x * sigmoid(x) (the swish activation)."""
    _need_tensor(input, "silu", "input")
    out = input * input.sigmoid()
    if inplace:
        input.copy_(out)
        return input
    return out


def _get_softmax_dim(name, ndim, stacklevel):
    warnings.warn(f"Implicit dimension choice for {name} has been deprecated. Change the call "
                  "to include dim=X as an argument.", stacklevel=stacklevel)
    return 0 if ndim in (0, 1, 3) else 1


def softmax(input, dim=None, _stacklevel=3, dtype=None):
    """exp(x) / sum(exp(x)) along ``dim``; dim=None picks torch's legacy implicit dim (with
    its deprecation warning)."""
    _need_tensor(input, "softmax", "input")
    if dim is None:
        dim = _get_softmax_dim("softmax", input.ndim, _stacklevel)
    return _sm.softmax(input, dim, dtype)


def log_softmax(input, dim=None, _stacklevel=3, dtype=None):
    """log(softmax(x)) along ``dim``, computed without underflow."""
    _need_tensor(input, "log_softmax", "input")
    if dim is None:
        dim = _get_softmax_dim("log_softmax", input.ndim, _stacklevel)
    return _sm.log_softmax(input, dim, dtype)


def dropout(input, p=0.5, training=True, inplace=False):
    """Zero each element with probability ``p`` and scale the rest by 1 / (1 - p) (training
    only).  The mask comes from the input device's Philox generator (deterministic after
    ``manual_seed``), bit-identical on CPU and CUDA."""
    if p < 0.0 or p > 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    _need_tensor(input, "dropout", "input")
    if not training or p == 0.0 or input.numel() == 0:
        return input
    if p == 1.0:
        out = input * 0.0
    else:
        (x,), half = _upcast(input)
        out = _down(_fn.Dropout.apply(x, float(p), None), half)
    if inplace:
        input.copy_(out)
        return input
    return out


# ------------------------------------------------------------------ normalization


def _norm_shape(normalized_shape, fname):
    if isinstance(normalized_shape, int) and not isinstance(normalized_shape, bool):
        return (normalized_shape,)
    if isinstance(normalized_shape, (tuple, list)) and all(
            isinstance(s, int) and not isinstance(s, bool) for s in normalized_shape):
        return tuple(normalized_shape)
    raise TypeError(f"{fname}(): argument 'normalized_shape' (position 2) must be tuple of ints, "
                    f"not {type(normalized_shape).__name__}")


def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    """(x - mean) / sqrt(var + eps) * weight + bias over the last ``len(normalized_shape)``
    dims (biased variance, as torch)."""
    _need_tensor(input, "layer_norm", "input")
    (x, w, b), half = _upcast(input, weight, bias)
    ns = _norm_shape(normalized_shape, "layer_norm")
    out = _fn.NativeLayerNorm.apply(x, w, b, ns, float(eps), False)
    return _down(out, half)


def rms_norm(input, normalized_shape, weight=None, eps=None):
    """x / sqrt(mean(x^2) + eps) * weight over the last ``len(normalized_shape)`` dims;
    eps=None means torch.finfo(input.dtype).eps."""
    _need_tensor(input, "rms_norm", "input")
    if eps is None:
        eps = _FINFO_EPS.get(input.dtype, _FINFO_EPS[_C.float32])
    (x, w), half = _upcast(input, weight)
    ns = _norm_shape(normalized_shape, "rms_norm")
    out = _fn.NativeLayerNorm.apply(x, w, None, ns, float(eps), True)
    return _down(out, half)


def normalize(input, p=2.0, dim=1, eps=1e-12, out=None):
    """input / max(||input||_p along dim, eps)."""
    _need_tensor(input, "normalize", "input")
    res = _fn.Normalize.apply(input, float(p), dim, float(eps))
    if out is not None:
        out.copy_(res)
        return out
    return res


# ------------------------------------------------------------------ embeddings


def _check_indices(input, fname):
    _need_tensor(input, fname, "input")
    if input.dtype not in (_C.int64, _C.int32):
        raise RuntimeError("Expected tensor for argument #1 'indices' to have one of the "
                           "following scalar types: Long, Int; but got "
                           f"shardopt.{_TENSOR_NAMES.get(input.dtype, 'Tensor')} instead (while "
                           f"checking arguments for {fname})")


def _no_grad_embedding_renorm_(weight, input, max_norm, norm_type):
    from ..autograd import grad_mode
    with grad_mode.no_grad():
        _C._embedding_renorm_(weight, input, float(max_norm), float(norm_type))


def embedding(input, weight, padding_idx=None, max_norm=None, norm_type=2.0,
              scale_grad_by_freq=False, sparse=False):
    """Rows of ``weight`` picked by the integer ``input`` (output ``(*input.shape, D)``).
    padding_idx's row gets no gradient; max_norm renormalises the referenced rows of
    ``weight`` in place first (each distinct row once)."""
    _check_indices(input, "embedding")
    _need_tensor(weight, "embedding", "weight")
    if padding_idx is not None:
        if padding_idx > 0:
            assert padding_idx < weight.size(0), "Padding_idx must be within num_embeddings"
        elif padding_idx < 0:
            assert padding_idx >= -weight.size(0), "Padding_idx must be within num_embeddings"
            padding_idx = weight.size(0) + padding_idx
    else:
        padding_idx = -1
    if sparse:
        raise NotImplementedError("embedding(sparse=True): sparse gradients are not supported "
                                  "by shardopt; use sparse=False")
    if max_norm is not None:
        input = input.contiguous()
        _no_grad_embedding_renorm_(weight, input, max_norm, norm_type)
    (w,), half = _upcast(weight)
    return _down(_fn.Embedding.apply(w, input, padding_idx, bool(scale_grad_by_freq)), half)


def embedding_bag(input, weight, offsets=None, max_norm=None, norm_type=2, scale_grad_by_freq=False,
                  mode="mean", sparse=False, per_sample_weights=None, include_last_offset=False,
                  padding_idx=None):
    """Sums, means or maxima of bags of embedding rows: ``input`` 2-D (fixed-length bags) or
    1-D with ``offsets`` (bag starts; with include_last_offset the last one is the end).
    per_sample_weights scale each row (mode='sum' only).  Empty bags give zeros.
    scale_grad_by_freq divides each row's gradient by its index's count in ``input`` (the
    documented rule, as F.embedding; torch 2.13's CPU kernel divides some rows by another
    index's count)."""
    _need_tensor(weight, "embedding_bag", "weight")
    _need_tensor(input, "embedding_bag", "input")
    if weight.dtype == _C.int64 and input.dtype.is_floating_point:
        warnings.warn("Argument order of nn.functional.embedding_bag was changed. Usage "
                      "`embedding_bag(weight, input, ...)` is deprecated, and should now be "
                      "`embedding_bag(input, weight, ...)`.")
        weight, input = input, weight
    if per_sample_weights is not None and tuple(input.shape) != tuple(per_sample_weights.shape):
        raise ValueError(f"embedding_bag: If per_sample_weights ({per_sample_weights.shape}) is "
                         f"not None, then it must have the same shape as the input "
                         f"({input.shape})")
    if weight.ndim != 2:
        raise ValueError(f"weight has to be a 2D Tensor, but got Tensor of dimension "
                         f"{weight.ndim}")
    _check_indices(input, "embedding_bag")
    if input.ndim == 2:
        if offsets is not None:
            raise ValueError("if input is 2D, then offsets has to be None, as input is treated is "
                             "a mini-batch of fixed length sequences. However, found offsets of "
                             f"type {type(offsets)}")
        B, L = input.size(0), input.size(1)
        offsets = _arange(0, B * L, L, input.device) if L > 0 else \
            _C.empty((B,), _C.int64, input.device).zero_()
        input = input.reshape(-1)
        if per_sample_weights is not None:
            per_sample_weights = per_sample_weights.reshape(-1)
        include_last_offset = False
    elif input.ndim == 1:
        if offsets is None:
            raise ValueError("offsets has to be a 1D Tensor but got None")
        if not isinstance(offsets, _TB) or offsets.ndim != 1:
            raise ValueError("offsets has to be a 1D Tensor")
    else:
        raise ValueError(f"input has to be 1D or 2D Tensor, but got Tensor of dimension "
                         f"{input.ndim}")
    modes = {"sum": 0, "mean": 1, "max": 2}
    if mode not in modes:
        raise ValueError("mode has to be one of sum, mean or max")
    if mode == "max":
        if scale_grad_by_freq:
            raise ValueError("max mode does not support scaling the gradient by the frequency")
        if sparse:
            raise ValueError("max mode does not support sparse weights")
    if sparse:
        raise NotImplementedError("embedding_bag(sparse=True): sparse gradients are not "
                                  "supported by shardopt; use sparse=False")
    if max_norm is not None:
        _no_grad_embedding_renorm_(weight, input, max_norm, norm_type)
    if per_sample_weights is not None and mode != "sum":
        raise NotImplementedError("embedding_bag: per_sample_weights was not None. "
                                  "per_sample_weights is only supported for mode='sum' (got "
                                  f"mode='{mode}'). Please open a feature request on GitHub.")
    V = weight.size(0)
    if padding_idx is None:
        padding_idx = -1
    else:
        if not -V <= padding_idx < V:
            raise RuntimeError(f"padding_idx must be within the number of embeddings, {-V} "
                               f"through {V - 1}, but got {padding_idx}")
        padding_idx = padding_idx + V if padding_idx < 0 else padding_idx
    offsets = offsets.to(_C.int64)
    if not include_last_offset:
        end = _C.empty((1,), _C.int64, offsets.device).fill_(input.numel())
        offsets = _C._cat([offsets, end], 0)
    elif offsets.numel() == 0:
        raise RuntimeError("include_last_offset: number of offsets should be at least 1")
    (w, psw), half = _upcast(weight, per_sample_weights)
    out = _fn.EmbeddingBag.apply(w, input.contiguous(), offsets.contiguous(), modes[mode], psw,
                                 padding_idx, bool(scale_grad_by_freq))
    return _down(out, half)


def _arange(start, end, step, device):
    import numpy as np
    t = _C.from_numpy(np.arange(start, end, step, dtype=np.int64))
    return t if str(device) == "cpu" else t.to(device)


def one_hot(tensor, num_classes=-1):
    """(..., num_classes) int64 tensor with a 1 at each value of ``tensor`` (int64)."""
    _need_tensor(tensor, "one_hot", "tensor")
    if tensor.dtype != _C.int64:
        raise RuntimeError("one_hot is only applicable to index tensor of type LongTensor.")
    if tensor.numel() == 0:
        if num_classes == -1:
            raise RuntimeError("Can not infer total number of classes from empty tensor.")
        return _C.empty(tuple(tensor.shape) + (num_classes,), _C.int64, tensor.device).zero_()
    lo, hi = int(tensor.min().item()), int(tensor.max().item())
    if lo < 0:
        raise RuntimeError("Class values must be non-negative.")
    if num_classes == -1:
        num_classes = hi + 1
    elif hi >= num_classes:
        raise RuntimeError("Class values must be smaller than num_classes.")
    classes = _arange(0, num_classes, 1, tensor.device)
    return (tensor.unsqueeze(-1) == classes).to(_C.int64)


def pad(input, pad, mode="constant", value=None):
    """Pad the last ``len(pad) // 2`` dims: pad = (left, right, top, bottom, ...) starting
    from the last dim; negative amounts crop.  Only mode='constant' is implemented."""
    _need_tensor(input, "pad", "input")
    pad = tuple(int(p) for p in pad)
    if len(pad) % 2 != 0:
        raise RuntimeError("Padding length must be divisible by 2")
    if len(pad) // 2 > input.ndim:
        raise RuntimeError(f"Padding length should be less than or equal to two times the input "
                           f"dimension but got padding length {len(pad)} and input of dimension "
                           f"{input.ndim}")
    if mode != "constant":
        raise NotImplementedError(f"pad(): mode={mode!r} is not supported by shardopt (only "
                                  "'constant')")
    return _fn.ConstantPadNd.apply(input, pad, 0.0 if value is None else value)


# ------------------------------------------------------------------ losses


def _reduction_of(size_average, reduce, reduction):
    if size_average is None and reduce is None:
        return reduction
    size_average = True if size_average is None else size_average
    reduce = True if reduce is None else reduce
    reduction = "none" if not reduce else ("mean" if size_average else "sum")
    warnings.warn("size_average and reduce args will be deprecated, please use "
                  f"reduction='{reduction}' instead.")
    return reduction


def _check_reduction(reduction):
    if reduction not in ("none", "mean", "sum"):
        raise ValueError(f"{reduction} is not a valid value for reduction")


def _reduce(loss, reduction):
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def _pointwise_loss_args(fname, input, target, size_average, reduce, reduction):
    _need_tensor(input, fname, "input")
    _need_tensor(target, fname, "target")
    if target._shape != input._shape:  # plain tuples: no Size objects on every call
        warnings.warn(f"Using a target size ({target.size()}) that is different to the input "
                      f"size ({input.size()}). This will likely lead to incorrect results due "
                      "to broadcasting. Please ensure they have the same size.", stacklevel=3)
    reduction = _reduction_of(size_average, reduce, reduction)
    _check_reduction(reduction)
    return reduction


def mse_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None):
    """Mean squared error: reduction of (input - target)**2 ('mean' | 'sum' | 'none')."""
    reduction = _pointwise_loss_args("mse_loss", input, target, size_average, reduce, reduction)
    if weight is None and reduction != "none" and input.dtype.is_floating_point:
        return _math.mse_loss(input, target, reduction)  # one autograd node
    d = input - target
    loss = d * d
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction)


def l1_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None):
    """Mean absolute error: reduction of |input - target|."""
    reduction = _pointwise_loss_args("l1_loss", input, target, size_average, reduce, reduction)
    loss = (input - target).abs()
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction)


def smooth_l1_loss(input, target, size_average=None, reduce=None, reduction="mean", beta=1.0):
    """0.5 d^2 / beta where |d| < beta, else |d| - 0.5 beta (d = input - target); beta=0
    is the L1 loss."""
    reduction = _pointwise_loss_args("smooth_l1_loss", input, target, size_average, reduce,
                                     reduction)
    if beta < 0:
        raise RuntimeError("smooth_l1_loss does not support negative values for beta.")
    d = input - target
    a = d.abs()
    if beta == 0.0:
        return _reduce(a, reduction)
    from ..autograd import grad_mode
    with grad_mode.no_grad():
        quad = (a < beta).to(a.dtype)  # a 0/1 mask: a constant for autograd
    loss = quad * (d * d * (0.5 / beta)) + (1.0 - quad) * (a - 0.5 * beta)
    return _reduce(loss, reduction)


def binary_cross_entropy_with_logits(input, target, weight=None, size_average=None, reduce=None,
                                     reduction="mean", pos_weight=None):
    """Sigmoid + binary cross-entropy in one stable formula:
    (1 - t) x + (1 + (pos_weight - 1) t) * log(1 + exp(-x)), times weight."""
    _need_tensor(input, "binary_cross_entropy_with_logits", "input")
    _need_tensor(target, "binary_cross_entropy_with_logits", "target")
    reduction = _reduction_of(size_average, reduce, reduction)
    _check_reduction(reduction)
    if target._shape != input._shape:  # plain tuples: no Size objects on every call
        raise ValueError(f"Target size ({target.size()}) must be the same as input size "
                         f"({input.size()})")
    loss = _fn.BinaryCrossEntropyWithLogits.apply(input, target, weight, pos_weight)
    return _reduce(loss, reduction)


def _loss_target_checks(fname, input, target, weight):
    _need_tensor(input, fname, "input")
    _need_tensor(target, fname, "target")
    if weight is not None:
        _need_tensor(weight, fname, "weight")
        from ..autograd import grad_mode
        if weight.requires_grad and grad_mode.is_grad_enabled():
            raise RuntimeError("The function 'nll_loss_forward' is not differentiable with "
                               "respect to argument 'weight'. This input cannot have "
                               "requires_grad True.")
    if input.ndim < 1:
        raise ValueError(f"Expected 1 or more dimensions (got {input.ndim})")


def _index_target_checks(input, target, weight):
    """torch's nll_loss_nd checks; returns the 'none' output shape (the target's)."""
    if target.dtype != _C.int64:
        raise RuntimeError(f"expected target dtype to be Long or Byte, but got "
                           f"{_SCALAR_NAMES.get(target.dtype, str(target.dtype))}")
    if input.ndim != 1:
        tb = target.size(0) if target.ndim else 1
        if target.ndim == 0 or tb != input.size(0):
            raise ValueError(f"Expected input batch_size ({input.size(0)}) to match target "
                             f"batch_size ({tb}).")
    if input.ndim <= 2:
        if target.ndim > 1:
            raise RuntimeError("0D or 1D target tensor expected, multi-target not supported")
        if input.ndim == 1 and target.ndim != 0:
            raise RuntimeError(f"Expected target size [], got {list(target.shape)}")
    elif tuple(target.shape[1:]) != tuple(input.shape[2:]):
        want = [input.size(0)] + list(input.shape[2:])
        raise RuntimeError(f"Expected target size {want}, got {list(target.shape)}")
    n_classes = input.size(0) if input.ndim == 1 else input.size(1)
    if weight is not None and weight.numel() != n_classes:
        raise RuntimeError(f"weight tensor should be defined either for all {n_classes} classes "
                           f"or no classes but got weight tensor of shape: {list(weight.shape)}")
    return tuple(target.shape)


def cross_entropy(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None,
                  reduction="mean", label_smoothing=0.0):
    """log_softmax over dim 1 (dim 0 for 1-D input) and negative log-likelihood, fused in
    one kernel.  target: class indices (int64, ignore_index skipped) or class probabilities
    (the input's shape); weight rescales classes; label_smoothing mixes in the uniform
    distribution.  'mean' divides by the summed target weights, as torch."""
    _loss_target_checks("cross_entropy", input, target, weight)
    reduction = _reduction_of(size_average, reduce, reduction)
    _check_reduction(reduction)
    if not 0.0 <= label_smoothing <= 1.0:
        raise RuntimeError(f"label_smoothing must be between 0.0 and 1.0. Got: {label_smoothing}")
    if tuple(input.shape) == tuple(target.shape):
        if not target.dtype.is_floating_point:
            raise RuntimeError("Expected floating point type for target with class "
                               f"probabilities, got {_SCALAR_NAMES.get(target.dtype)}")
        kind = _fn._XE_PROB
        out_shape = tuple(input.shape[:1]) + tuple(input.shape[2:]) if input.ndim > 1 else ()
        n_classes = input.size(0) if input.ndim == 1 else input.size(1)
        if weight is not None and weight.numel() != n_classes:
            raise RuntimeError(f"weight tensor should be defined either for all {n_classes} "
                               f"classes or no classes but got weight tensor of shape: "
                               f"{list(weight.shape)}")
    else:
        kind = _fn._XE_INDEX
        out_shape = _index_target_checks(input, target, weight)
    (x, t, w), half = _upcast(input, target if kind == _fn._XE_PROB else None, weight)
    if kind == _fn._XE_INDEX:
        t = target
    if t.dtype.is_floating_point and t.dtype != x.dtype:
        t = t.to(x.dtype)
    if w is not None and w.dtype != x.dtype:
        w = w.to(x.dtype)
    out = _fn.CrossEntropyLoss.apply(x, t, w, int(ignore_index), float(label_smoothing), kind,
                                     reduction, out_shape)
    return _down(out, half)


def nll_loss(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None,
             reduction="mean"):
    """Negative log-likelihood of log-probabilities ``input`` (classes in dim 1) at the
    int64 class indices ``target``; 'mean' divides by the summed target weights."""
    _loss_target_checks("nll_loss", input, target, weight)
    reduction = _reduction_of(size_average, reduce, reduction)
    _check_reduction(reduction)
    out_shape = _index_target_checks(input, target, weight)
    (x, w), half = _upcast(input, weight)
    if w is not None and w.dtype != x.dtype:
        w = w.to(x.dtype)
    out = _fn.CrossEntropyLoss.apply(x, target, w, int(ignore_index), 0.0, _fn._XE_NLL,
                                     reduction, out_shape)
    return _down(out, half)

# nn.functional's public functions take part in the __torch_function__ protocol in torch's
# order (a ShardedTensor argument dispatches to its class before the function runs, so
# custom_sharded_op_impl(F.linear) is what F.linear does on a sharded weight); this module
# publishes them so, here where they are defined.
from ._pointwise import *  # noqa: E402,F401,F403  (activations and losses composed of ops)
from ._pointwise import __all__ as _pointwise_all  # noqa: E402
from ._batch_norm import *  # noqa: E402,F401,F403  (batch_norm, group_norm)
from ._batch_norm import __all__ as _batch_norm_all  # noqa: E402
from .. import overrides as _overrides  # noqa: E402

__all__ = __all__ + _pointwise_all + _batch_norm_all
globals().update(_overrides.dispatchable_all(globals(), __all__, args_first=True))
