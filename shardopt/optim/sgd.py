"""shardopt.optim.SGD: torch.optim.SGD's signature, defaults, validation and formulas; the
update of a whole param group is one call to the fused C kernel (``_C._fused_sgd_``)."""

from __future__ import annotations

from typing import Any

from .. import _C
from .optimizer import Optimizer, _empty_like, _scalar

__all__ = ["SGD"]


class SGD(Optimizer):
    r"""Stochastic gradient descent, optionally with momentum (torch.optim.SGD).

    Per param, with g the gradient: g = -g if maximize; g += weight_decay * p;
    with momentum: buf = g on the first step, else momentum * buf + (1 - dampening) * g, and
    g = g + momentum * buf (nesterov) or buf; finally p -= lr * g.

    ``foreach``, ``fused`` and ``differentiable`` are accepted for compatibility; every
    implementation is the fused C kernel (CPU: one pass per tensor; CUDA: multi-tensor
    apply).  The state ``momentum_buffer`` exists only when momentum != 0, as in torch.
    """

    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0,
                 nesterov=False, *, maximize=False, foreach=None, differentiable=False,
                 fused=None) -> None:
        if hasattr(lr, "numel") and lr.numel() != 1:
            raise ValueError("Tensor lr must be 1-element")
        if lr < 0.0:
            raise ValueError(f"Invalid learning rate: {lr}")
        if momentum < 0.0:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if weight_decay < 0.0:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")

        defaults = {
            "lr": lr,
            "momentum": momentum,
            "dampening": dampening,
            "weight_decay": weight_decay,
            "nesterov": nesterov,
            "maximize": maximize,
            "foreach": foreach,
            "differentiable": differentiable,
            "fused": fused,
        }
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        super().__init__(params, defaults)

        if fused:
            self._step_supports_amp_scaling = True
            if differentiable:
                raise RuntimeError("`fused` does not support `differentiable`")
            if foreach:
                raise RuntimeError("`fused` and `foreach` cannot be `True` together.")

    def __setstate__(self, state) -> None:
        super().__setstate__(state)
        for group in self.param_groups:
            group.setdefault("nesterov", False)
            group.setdefault("maximize", False)
            group.setdefault("foreach", None)
            group.setdefault("differentiable", False)
            group.setdefault("fused", False)

    def step(self, closure=None) -> Any:
        """Perform a single optimization step; returns the closure's loss (or None)."""
        loss = self._run_closure(closure)
        for group in self.param_groups:
            momentum = _scalar(group["momentum"], "momentum")
            params, grads, bufs, firsts, new = [], [], [], [], []
            for p in group["params"]:
                if p.grad is None:
                    continue
                params.append(p)
                grads.append(p.grad)
                if momentum != 0:
                    buf = self.state[p].get("momentum_buffer") if p in self.state else None
                    if buf is None:
                        # torch clones the gradient on the first step; the kernel copies it
                        # into this fresh buffer in the same pass
                        buf = _empty_like(p)
                        new.append((p, buf))
                        firsts.append(True)
                    else:
                        firsts.append(False)
                    bufs.append(buf)
            if not params:
                continue
            _C._fused_sgd_(
                params, grads, bufs if momentum != 0 else None, firsts if momentum != 0 else None,
                lr=_scalar(group["lr"], "lr"),
                weight_decay=_scalar(group["weight_decay"], "weight_decay"),
                momentum=momentum,
                dampening=_scalar(group["dampening"], "dampening"),
                nesterov=bool(group["nesterov"]),
                maximize=bool(group["maximize"]),
            )
            # new buffers join the state only once the kernel has filled them
            for p, buf in new:
                self.state[p]["momentum_buffer"] = buf
        return loss
