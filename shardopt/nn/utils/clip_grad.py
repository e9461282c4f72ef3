"""Gradient clipping (torch.nn.utils.clip_grad), plus the global norm of sharded gradients.

The per-tensor norms come from one C call per device (``_C._norms``: each gradient walked
once by the reduction kernels, accumulating in double, written into one 1-D tensor), so no
Python object is made per parameter; the total is the norm of that vector, as torch's
``vector_norm(stack(_foreach_norm(grads)))``.  The total norm and the clip coefficient stay
tensors on the gradients' device, so clipping CUDA gradients never waits for the GPU.

Beyond torch, ``process_group=`` makes the norm global over ShardedTensor parameters (their
gradients live on the local shard tensors): every rank sums |g|^p over its local shards, the
sums are all-reduced once (max for the inf-norm), and plain (replicated) parameters -- the
same on every rank -- are added once afterwards.  Clipping a sharded model then scales every
shard by the same coefficient as clipping the unsharded model would.
"""
from __future__ import annotations

import math
import types
import warnings
from typing import Iterable, Union

from ... import _C
from ..._tensor import Tensor
from ...autograd import no_grad

__all__ = ["clip_grad_norm_", "clip_grad_norm", "clip_grad_value_", "get_total_norm",
           "clip_grads_with_norm_"]

_tensor_or_tensors = Union[Tensor, Iterable[Tensor]]

_RANK = {"float16": 0, "bfloat16": 0, "float32": 1, "float64": 2}


def _is_sharded(p) -> bool:
    from ...sharded_tensor import ShardedTensor  # the sharding layer sits above nn
    return isinstance(p, ShardedTensor)


def _as_list(parameters) -> list:
    if isinstance(parameters, Tensor) or _is_sharded(parameters):
        return [parameters]
    return list(parameters)


def _grads_of(p) -> list:
    """A parameter's gradient tensors: its .grad, or its local shards' for a ShardedTensor."""
    if _is_sharded(p):
        return [s.tensor.grad for s in p.local_shards() if s.tensor.grad is not None]
    return [p.grad] if p.grad is not None else []


def _result_dtype(tensors: list):
    """torch's promotion of the per-tensor norms' dtypes (fp16 + bf16 -> float32)."""
    names = {t.dtype._name for t in tensors}
    if len(names) == 1:
        return tensors[0].dtype
    top = max(_RANK.get(n, 1) for n in names)
    return _C.float64 if top == 2 else _C.float32


def _norm_vector(tensors: list, norm_type: float, device):
    """Per-tensor norms in float64, as one 1-D tensor on `device` (one C call per device)."""
    groups: dict = {}
    for t in tensors:
        groups.setdefault(str(t.device), []).append(t)
    parts = []
    for group in groups.values():
        v = _C._norms(group, norm_type, _C.float64)
        parts.append(v if v.device == device else v.to(device))
    if len(parts) == 1:
        return parts[0]
    from ... import cat
    return cat(parts)


def _check_norm_type(norm_type) -> float:
    try:
        p = float(norm_type)
    except (TypeError, ValueError):
        raise TypeError(f"norm_type must be a number, got {type(norm_type).__name__}") from None
    if math.isnan(p):
        raise RuntimeError("norm_type must not be nan")
    return p


def _raise_nonfinite(total, norm_type: float, error_if_nonfinite: bool) -> None:
    if error_if_nonfinite and not math.isfinite(float(total.item())):
        raise RuntimeError(
            f"The total norm of order {norm_type} for gradients from `parameters` is "
            "non-finite, so it cannot be clipped. To disable this error and scale the "
            "gradients by the non-finite norm anyway, set `error_if_nonfinite=False`")


def get_total_norm(tensors: _tensor_or_tensors, norm_type: float = 2.0,
                   error_if_nonfinite: bool = False, foreach: bool | None = None) -> Tensor:
    r"""The norm of the norms of ``tensors`` (as if concatenated into one vector).

    Args:
        tensors: a Tensor or an iterable of Tensors.
        norm_type (float): p of the p-norm; ``inf`` for the max-norm. Default: 2.0.
        error_if_nonfinite (bool): raise if the total is nan or inf. Default: False.
        foreach (bool, optional): accepted for torch's signature (always one C call).

    Returns:
        a 0-d Tensor on the first tensor's device, in the tensors' (promoted) dtype.
    """
    tensors = [tensors] if isinstance(tensors, Tensor) else list(tensors)
    norm_type = _check_norm_type(norm_type)
    if len(tensors) == 0:
        return _C.empty((), dtype=_C.float32, device="cpu").zero_()
    for i, t in enumerate(tensors):
        if not isinstance(t, Tensor):
            raise TypeError(f"get_total_norm(): tensors[{i}] must be a Tensor, not "
                            f"{type(t).__name__}")
    with no_grad():
        v = _norm_vector(tensors, norm_type, tensors[0].device)
        total = _C._norm(v, norm_type).to(_result_dtype(tensors))
    _raise_nonfinite(total, norm_type, error_if_nonfinite)
    return total


def _comm_device(process_group):
    from ... import distributed as dist
    if dist.get_backend(process_group) == "nccl":
        from ... import cuda
        return _C.device("cuda", cuda.current_device())
    return _C.device("cpu")


def _sharded_total_norm(parameters: list, norm_type: float, process_group):
    """The global norm: local-shard power sums all-reduced once, replicated grads once."""
    from ... import distributed as dist
    if not (norm_type > 0):
        raise ValueError(f"clip_grad_norm_(): norm_type={norm_type} is not supported with "
                         "process_group (use a positive number or inf)")
    sharded, plain = [], []
    for p in parameters:
        (sharded if _is_sharded(p) else plain).extend(_grads_of(p))
    all_grads = sharded + plain
    dev = _comm_device(process_group)
    is_inf = math.isinf(norm_type)
    with no_grad():
        # an empty shard adds nothing to a power sum and has no inf-norm: leave it out
        sharded_nz = [g for g in sharded if g.numel() > 0]
        if sharded_nz:
            v = _norm_vector(sharded_nz, norm_type, dev)
            local = v.max() if is_inf else v.pow(norm_type).sum()
        else:
            local = _C.empty((), dtype=_C.float64, device=dev).zero_()
        local = local.reshape(1).contiguous()
        dist.all_reduce(local, op=dist.ReduceOp.MAX if is_inf else dist.ReduceOp.SUM,
                        group=process_group)
        plain_nz = [g for g in plain if g.numel() > 0]
        if plain_nz:
            v = _norm_vector(plain_nz, norm_type, dev)
            if is_inf:
                from ... import maximum
                local = maximum(local, v.max().reshape(1))
            else:
                local = local + v.pow(norm_type).sum()
        total = local.reshape(()) if is_inf else local.reshape(()).pow(1.0 / norm_type)
        if all_grads:
            total = total.to(device=all_grads[0].device, dtype=_result_dtype(all_grads))
        else:
            total = total.to(device="cpu", dtype=_C.float32)
    return total


def clip_grads_with_norm_(parameters: _tensor_or_tensors, max_norm: float, total_norm: Tensor,
                          foreach: bool | None = None) -> None:
    r"""Scale the gradients of ``parameters`` by ``min(1, max_norm / (total_norm + 1e-6))``.

    Args:
        parameters: Tensors (or ShardedTensors) whose gradients to scale.
        max_norm (float): the largest allowed norm.
        total_norm (Tensor): the norm to clip against (e.g. from :func:`get_total_norm`).
        foreach (bool, optional): accepted for torch's signature.
    """
    parameters = _as_list(parameters)
    max_norm = float(max_norm)
    grads = [g for p in parameters for g in _grads_of(p)]
    if len(grads) == 0:
        return
    if not isinstance(total_norm, Tensor):
        raise TypeError(f"total_norm must be a Tensor, not {type(total_norm).__name__}")
    with no_grad():
        clip_coef = max_norm / (total_norm + 1e-6)
        # always multiply (by exactly 1.0 when not clipping): no host sync on a branch
        coef = clip_coef.clamp(max=1.0)
        per_device: dict = {}
        for g in grads:
            key = str(g.device)
            c = per_device.get(key)
            if c is None:
                c = per_device[key] = coef if coef.device == g.device else coef.to(g.device)
            g.mul_(c)


def clip_grad_norm_(parameters: _tensor_or_tensors, max_norm: float, norm_type: float = 2.0,
                    error_if_nonfinite: bool = False, foreach: bool | None = None, *,
                    process_group=None) -> Tensor:
    r"""Clip the gradient norm of ``parameters`` (as if all gradients were one vector) to
    ``max_norm``, in place.  Returns the total norm before clipping.

    Args:
        parameters: a Tensor, or an iterable of Tensors / ShardedTensors.
        max_norm (float): max norm of the gradients.
        norm_type (float): p of the p-norm; ``inf`` for the max-norm. Default: 2.0.
        error_if_nonfinite (bool): raise if the total norm is nan or inf. Default: False.
        foreach (bool, optional): accepted for torch's signature.
        process_group (ProcessGroup, optional): beyond torch: compute the global norm over
            ShardedTensor parameters on this group (collective: every rank must call it);
            required when ``parameters`` holds ShardedTensors.
    """
    if isinstance(parameters, Tensor) or _is_sharded(parameters):
        parameters = [parameters]
    else:
        is_generator = isinstance(parameters, types.GeneratorType)
        parameters = list(parameters)
        if is_generator and len(parameters) == 0:
            warnings.warn("`parameters` is an empty generator, no gradient clipping will "
                          "occur.", stacklevel=3)
    norm_type = _check_norm_type(norm_type)
    if process_group is None:
        if any(_is_sharded(p) for p in parameters):
            raise ValueError(
                "clip_grad_norm_(): parameters include ShardedTensors, whose gradients are "
                "spread over ranks; pass process_group= (e.g. the ShardedTensor's process "
                "group, st._process_group) to clip by the global norm")
        grads = [p.grad for p in parameters if p.grad is not None]
        total_norm = get_total_norm(grads, norm_type, error_if_nonfinite, foreach)
    else:
        total_norm = _sharded_total_norm(parameters, norm_type, process_group)
        _raise_nonfinite(total_norm, norm_type, error_if_nonfinite)
    clip_grads_with_norm_(parameters, max_norm, total_norm, foreach)
    return total_norm


def clip_grad_norm(parameters: _tensor_or_tensors, max_norm: float, norm_type: float = 2.0,
                   error_if_nonfinite: bool = False, foreach: bool | None = None) -> Tensor:
    """Deprecated alias of :func:`clip_grad_norm_` (warns, as torch)."""
    warnings.warn("`torch.nn.utils.clip_grad_norm` is now deprecated in favor of "
                  "`torch.nn.utils.clip_grad_norm_`.", FutureWarning, stacklevel=2)
    return clip_grad_norm_(parameters, max_norm, norm_type, error_if_nonfinite, foreach)


def clip_grad_value_(parameters: _tensor_or_tensors, clip_value: float,
                     foreach: bool | None = None) -> None:
    r"""Clamp every gradient of ``parameters`` to ``[-clip_value, clip_value]``, in place.

    Args:
        parameters: a Tensor, or an iterable of Tensors / ShardedTensors (local shards'
            gradients are clamped; no communication is needed).
        clip_value (float): the bound.
        foreach (bool, optional): accepted for torch's signature.
    """
    parameters = _as_list(parameters)
    clip_value = float(clip_value)
    with no_grad():
        for p in parameters:
            for g in _grads_of(p):
                g.clamp_(min=-clip_value, max=clip_value)
