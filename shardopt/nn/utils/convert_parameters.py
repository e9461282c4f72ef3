"""parameters_to_vector / vector_to_parameters (torch.nn.utils.convert_parameters)."""
from __future__ import annotations

from typing import Iterable

from ..._tensor import Tensor
from ...autograd import no_grad

__all__ = ["parameters_to_vector", "vector_to_parameters"]


def _check_same_device(param: Tensor, old_device):
    if old_device is not None and param.device != old_device:
        raise TypeError("Found two parameters on different devices, this is currently not "
                        "supported.")
    return param.device


def parameters_to_vector(parameters: Iterable[Tensor]) -> Tensor:
    """Flatten an iterable of parameters into one 1-D tensor (a differentiable cat).

    Args:
        parameters: an iterable of Tensors, all on one device.
    """
    from ... import cat
    device = None
    vec = []
    for param in parameters:
        device = _check_same_device(param, device)
        vec.append(param.reshape(-1))
    return cat(vec)


def vector_to_parameters(vec: Tensor, parameters: Iterable[Tensor]) -> None:
    """Copy consecutive slices of ``vec`` into ``parameters`` (in place, without autograd).

    torch rebinds each ``param.data`` to a view of ``vec``; shardopt copies the values
    instead (Tensor.data cannot be reassigned here), so the parameters do not alias ``vec``.

    Args:
        vec (Tensor): a 1-D tensor with as many elements as all parameters together.
        parameters: an iterable of Tensors, all on vec's device.
    """
    if not isinstance(vec, Tensor):
        raise TypeError(f"expected torch.Tensor, but got: {type(vec).__name__}")
    params = list(parameters)
    total = sum(p.numel() for p in params)
    if vec.ndim != 1 or vec.numel() != total:
        raise ValueError(f"vector_to_parameters(): vec must be 1-D with {total} elements (the "
                         f"parameters' total), got shape {tuple(vec.shape)}")
    device = None
    pointer = 0
    with no_grad():
        for param in params:
            device = _check_same_device(param, device)
            n = param.numel()
            param.copy_(vec[pointer:pointer + n].reshape(tuple(param.shape)))
            pointer += n
