"""nn.functional.batch_norm and group_norm, composed from shardopt's differentiable ops.

batch_norm normalises each channel (dim 1) over the batch and every spatial dim: in training
with the batch's mean and biased variance, updating running_mean / running_var in place
with ``momentum`` (the running variance takes the unbiased batch variance, as torch's);
otherwise with the running statistics.  group_norm normalises each sample's channels in
``num_groups`` groups.  functional.py re-exports them.
"""

from __future__ import annotations

from .. import _C
from ..autograd import grad_mode

__all__ = ["batch_norm", "group_norm"]

_TB = _C.TensorBase


def _channel_view(t, ndim):
    """A per-channel (C,) tensor shaped (1, C, 1, ...) to broadcast over an ndim input."""
    return t.reshape((1, -1) + (1,) * (ndim - 2))


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False,
               momentum=0.1, eps=1e-5):
    """(x - mean) / sqrt(var + eps) * weight + bias per channel (dim 1)."""
    if not isinstance(input, _TB):
        raise TypeError(f"batch_norm(): argument 'input' (position 1) must be Tensor, not "
                        f"{type(input).__name__}")
    if input.ndim < 2:
        raise ValueError(f"expected 2D or more input (got {input.ndim}D input)")
    c = input.shape[1]
    for name, t in (("running_mean", running_mean), ("running_var", running_var),
                    ("weight", weight), ("bias", bias)):
        if t is not None and tuple(t.shape) != (c,):
            raise RuntimeError(f"batch_norm(): {name} should contain {c} elements not "
                               f"{t.numel()}")
    nd = input.ndim
    dims = (0,) + tuple(range(2, nd))
    if training:
        n = input.numel() // c if c else 0
        if n <= 1:
            raise ValueError(f"Expected more than 1 value per channel when training, got input "
                             f"size {list(input.shape)}")
        mean = input.mean(dim=dims)
        centred = input - _channel_view(mean, nd)
        var = (centred * centred).mean(dim=dims)
        if running_mean is not None and running_var is not None:
            with grad_mode.no_grad():
                m = 0.1 if momentum is None else momentum
                running_mean.mul_(1.0 - m).add_(mean.detach().to(running_mean.dtype) * m)
                unbiased = var.detach() * (n / (n - 1))
                running_var.mul_(1.0 - m).add_(unbiased.to(running_var.dtype) * m)
        out = centred * _channel_view((var + eps).rsqrt(), nd)
    else:
        if running_mean is None or running_var is None:
            raise RuntimeError("running_mean and running_var must be defined in evaluation "
                               "mode")
        out = ((input - _channel_view(running_mean, nd))
               * _channel_view((running_var + eps).rsqrt(), nd))
    if weight is not None:
        out = out * _channel_view(weight, nd)
    if bias is not None:
        out = out + _channel_view(bias, nd)
    return out


def group_norm(input, num_groups, weight=None, bias=None, eps=1e-5):
    """Normalise each sample's channels in ``num_groups`` groups, then the per-channel
    affine map."""
    if not isinstance(input, _TB):
        raise TypeError(f"group_norm(): argument 'input' (position 1) must be Tensor, not "
                        f"{type(input).__name__}")
    if input.ndim < 2:
        raise RuntimeError(f"Expected at least 2 dimensions for input tensor but received "
                           f"{input.ndim}")
    b, c = input.shape[0], input.shape[1]
    if num_groups <= 0 or c % num_groups:
        raise RuntimeError(f"Expected number of channels in input to be divisible by "
                           f"num_groups, but got input of shape {list(input.shape)} and "
                           f"num_groups={num_groups}")
    x = input.reshape((b, num_groups, -1))
    mean = x.mean(dim=2, keepdim=True)
    centred = x - mean
    var = (centred * centred).mean(dim=2, keepdim=True)
    out = (centred * (var + eps).rsqrt()).reshape(tuple(input.shape))
    nd = input.ndim
    if weight is not None:
        out = out * _channel_view(weight, nd)
    if bias is not None:
        out = out + _channel_view(bias, nd)
    return out
