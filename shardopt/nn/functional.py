"""shardopt.nn.functional: linear, gelu, relu, mse_loss (torch.nn.functional's signatures)."""
import warnings

from .. import _C
from ..autograd import _math
from ..autograd._setup import FUNCTIONS as _FUNCTIONS

__all__ = ["linear", "gelu", "relu", "mse_loss"]

_TB = _C.TensorBase


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


def _reduction_of(size_average, reduce, reduction):
    if size_average is None and reduce is None:
        return reduction
    size_average = True if size_average is None else size_average
    reduce = True if reduce is None else reduce
    reduction = "none" if not reduce else ("mean" if size_average else "sum")
    warnings.warn("size_average and reduce args will be deprecated, please use "
                  f"reduction='{reduction}' instead.")
    return reduction


def mse_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None):
    """Mean squared error: reduction of (input - target)**2 ('mean' | 'sum' | 'none')."""
    if not isinstance(input, _TB) or not isinstance(target, _TB):
        raise TypeError(f"mse_loss(): input and target must be Tensors, got "
                        f"{type(input).__name__} and {type(target).__name__}")
    if target.shape != input.shape:
        warnings.warn(f"Using a target size ({target.size()}) that is different to the input "
                      f"size ({input.size()}). This will likely lead to incorrect results due "
                      "to broadcasting. Please ensure they have the same size.", stacklevel=2)
    reduction = _reduction_of(size_average, reduce, reduction)
    if reduction not in ("none", "mean", "sum"):
        raise ValueError(f"{reduction} is not a valid value for reduction")
    d = input - target
    loss = d * d
    if weight is not None:
        loss = loss * weight
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


# nn.functional's public functions take part in the __torch_function__ protocol in torch's
# order (a ShardedTensor argument dispatches to its class before the function runs, so
# custom_sharded_op_impl(F.linear) is what F.linear does on a sharded weight); this module
# publishes them so, here where they are defined.
from .. import overrides as _overrides  # noqa: E402

globals().update(_overrides.dispatchable_all(globals(), __all__, args_first=True))
