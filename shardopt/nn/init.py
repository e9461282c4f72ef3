"""shardopt.nn.init: in-place initialisers with torch's fan computations and gains.

All of them write under no_grad and draw from shardopt's RNG (the tensor's device generator,
or ``generator``). A tensor-like argument that is not a shardopt Tensor but defines
``__torch_function__`` (the sharding issue's ShardedTensor) gets the call dispatched to it as
torch does: ``type(t).__torch_function__(func, (type(t),), (), {"tensor": t, ...})``.
"""
import math
import warnings

from .. import _C
from ..autograd.grad_mode import no_grad

__all__ = ["calculate_gain", "uniform_", "normal_", "constant_", "zeros_", "ones_",
           "kaiming_uniform_", "kaiming_normal_", "xavier_uniform_", "xavier_normal_"]

_TB = _C.TensorBase


def _dispatch(func, tensor, **kwargs):
    """torch.overrides.handle_torch_function for a non-Tensor with __torch_function__."""
    if isinstance(tensor, _TB):
        return None
    tf = getattr(type(tensor), "__torch_function__", None)
    if tf is None:
        raise TypeError(f"{func.__name__}(): expected a Tensor, got {type(tensor).__name__}")
    return True, tf(func, (type(tensor),), (), dict(tensor=tensor, **kwargs))


def calculate_gain(nonlinearity, param=None):
    """The recommended gain for a nonlinearity (torch.nn.init.calculate_gain)."""
    linear_fns = ["linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d",
                  "conv_transpose2d", "conv_transpose3d"]
    if nonlinearity in linear_fns or nonlinearity == "sigmoid":
        return 1
    elif nonlinearity == "tanh":
        return 5.0 / 3
    elif nonlinearity == "relu":
        return math.sqrt(2.0)
    elif nonlinearity == "leaky_relu":
        if param is None:
            negative_slope = 0.01
        elif not isinstance(param, bool) and isinstance(param, int) or isinstance(param, float):
            negative_slope = param
        else:
            raise ValueError(f"negative_slope {param} not a valid number")
        return math.sqrt(2.0 / (1 + negative_slope ** 2))
    elif nonlinearity == "selu":
        return 3.0 / 4
    else:
        raise ValueError(f"Unsupported nonlinearity {nonlinearity}")


def _calculate_fan_in_and_fan_out(tensor):
    dimensions = tensor.dim()
    if dimensions < 2:
        raise ValueError("Fan in and fan out can not be computed for tensor with fewer than 2 "
                         "dimensions")
    num_input_fmaps = tensor.size(1)
    num_output_fmaps = tensor.size(0)
    receptive_field_size = 1
    if dimensions > 2:
        for s in tuple(tensor.shape)[2:]:
            receptive_field_size *= s
    return num_input_fmaps * receptive_field_size, num_output_fmaps * receptive_field_size


def _calculate_correct_fan(tensor, mode):
    mode = mode.lower()
    valid_modes = ["fan_in", "fan_out"]
    if mode not in valid_modes:
        raise ValueError(f"Mode {mode} not supported, please use one of {valid_modes}")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


def _fill_uniform(tensor, a, b, generator):
    return tensor.uniform_(a, b, generator=generator)


def _fill_normal(tensor, mean, std, generator):
    return tensor.normal_(mean, std, generator=generator)


def uniform_(tensor, a=0.0, b=1.0, generator=None):
    """Fill with U(a, b)."""
    d = _dispatch(uniform_, tensor, a=a, b=b, generator=generator)
    if d:
        return d[1]
    with no_grad():
        return _fill_uniform(tensor, a, b, generator)


def normal_(tensor, mean=0.0, std=1.0, generator=None):
    """Fill with N(mean, std**2)."""
    d = _dispatch(normal_, tensor, mean=mean, std=std, generator=generator)
    if d:
        return d[1]
    with no_grad():
        return _fill_normal(tensor, mean, std, generator)


def constant_(tensor, val):
    """Fill with ``val``."""
    d = _dispatch(constant_, tensor, val=val)
    if d:
        return d[1]
    with no_grad():
        return tensor.fill_(val)


def zeros_(tensor):
    with no_grad():
        return tensor.zero_()


def ones_(tensor):
    with no_grad():
        return tensor.fill_(1.0)


def kaiming_uniform_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    """He et al. (2015) uniform init: U(-b, b), b = gain * sqrt(3 / fan)."""
    d = _dispatch(kaiming_uniform_, tensor, a=a, mode=mode, nonlinearity=nonlinearity,
                  generator=generator)
    if d:
        return d[1]
    if 0 in tuple(tensor.shape):
        warnings.warn("Initializing zero-element tensors is a no-op")
        return tensor
    fan = _calculate_correct_fan(tensor, mode)
    gain = calculate_gain(nonlinearity, a)
    std = gain / math.sqrt(fan)
    bound = math.sqrt(3.0) * std
    with no_grad():
        return _fill_uniform(tensor, -bound, bound, generator)


def kaiming_normal_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    """He et al. (2015) normal init: N(0, (gain / sqrt(fan))**2)."""
    if 0 in tuple(tensor.shape):
        warnings.warn("Initializing zero-element tensors is a no-op")
        return tensor
    fan = _calculate_correct_fan(tensor, mode)
    gain = calculate_gain(nonlinearity, a)
    std = gain / math.sqrt(fan)
    with no_grad():
        return _fill_normal(tensor, 0, std, generator)


def xavier_uniform_(tensor, gain=1.0, generator=None):
    """Glorot & Bengio (2010) uniform init: U(-a, a), a = gain * sqrt(6 / (fan_in + fan_out))."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    std = gain * math.sqrt(2.0 / float(fan_in + fan_out))
    a = math.sqrt(3.0) * std
    with no_grad():
        return _fill_uniform(tensor, -a, a, generator)


def xavier_normal_(tensor, gain=1.0, generator=None):
    """Glorot & Bengio (2010) normal init: N(0, gain**2 * 2 / (fan_in + fan_out))."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    std = gain * math.sqrt(2.0 / float(fan_in + fan_out))
    with no_grad():
        return _fill_normal(tensor, 0.0, std, generator)
