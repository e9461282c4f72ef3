"""shardopt.optim.Adam: torch.optim.Adam's signature, defaults, validation and formulas; the
update of a whole param group is one call to the fused C kernel (``_C._fused_adam_``)."""

from __future__ import annotations

from typing import Any

from .. import _C
from .._tensor import Tensor
from .optimizer import Optimizer, _scalar, _step_tensor, _zeros_like

__all__ = ["Adam"]


class Adam(Optimizer):
    r"""Adam (torch.optim.Adam), with AdamW's decoupled weight decay when
    ``decoupled_weight_decay=True``.

    Per param: t += 1; g = -g if maximize; p *= 1 - lr*wd (decoupled) or g += wd*p (L2);
    m = lerp(m, g, 1 - beta1); v = beta2*v + (1 - beta2)*g*g; vmax = max(vmax, v) (raw v,
    amsgrad); p -= lr / (1 - beta1^t) * m / (sqrt(vmax or v) / sqrt(1 - beta2^t) + eps).

    State per param: ``step`` (float32 0-d CPU tensor, also with fused/capturable),
    ``exp_avg``, ``exp_avg_sq`` and, with amsgrad, ``max_exp_avg_sq`` (zeros like p, in
    p's dtype).  float16/bfloat16 params are updated with float32 math.  ``foreach``,
    ``fused``, ``capturable`` and ``differentiable`` are accepted for compatibility.
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 amsgrad=False, *, foreach=None, maximize=False, capturable=False,
                 differentiable=False, fused=None, decoupled_weight_decay=False) -> None:
        if isinstance(lr, Tensor):
            if foreach and not capturable:
                raise ValueError(
                    "lr as a Tensor is not supported for capturable=False and foreach=True"
                )
            if lr.numel() != 1:
                raise ValueError("Tensor lr must be 1-element")
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if not 0.0 <= betas[0] < 1.0:
            raise ValueError(f"Invalid beta parameter at index 0: {betas[0]}")
        if not 0.0 <= betas[1] < 1.0:
            raise ValueError(f"Invalid beta parameter at index 1: {betas[1]}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if not (
            (isinstance(betas[0], float) and isinstance(betas[1], float))
            or (isinstance(betas[0], Tensor) and isinstance(betas[1], Tensor))
        ):
            raise ValueError("betas must be either both floats or both Tensors")
        for i in (0, 1):
            if isinstance(betas[i], Tensor):
                if not capturable and foreach:
                    raise ValueError(
                        f"betas[{i}] as a Tensor is not supported for capturable=False and foreach=True"
                    )
                if betas[i].numel() != 1:
                    raise ValueError(f"Tensor betas[{i}] must be 1-element")
        betas = tuple(betas)

        defaults = {
            "lr": lr,
            "betas": betas,
            "eps": eps,
            "weight_decay": weight_decay,
            "amsgrad": amsgrad,
            "maximize": maximize,
            "foreach": foreach,
            "capturable": capturable,
            "differentiable": differentiable,
            "fused": fused,
            "decoupled_weight_decay": decoupled_weight_decay,
        }
        super().__init__(params, defaults)

        if fused:
            if differentiable:
                raise RuntimeError("`fused` does not support `differentiable`")
            self._step_supports_amp_scaling = True
            if foreach:
                raise RuntimeError("`fused` and `foreach` cannot be `True` together.")

    def __setstate__(self, state) -> None:
        super().__setstate__(state)
        for group in self.param_groups:
            group.setdefault("amsgrad", False)
            group.setdefault("maximize", False)
            group.setdefault("foreach", None)
            group.setdefault("capturable", False)
            group.setdefault("differentiable", False)
            group.setdefault("decoupled_weight_decay", False)
            group.setdefault("fused", None)
            for p in group["params"]:
                p_state = self.state.get(p, [])
                if len(p_state) != 0 and not isinstance(p_state["step"], Tensor):
                    # old checkpoints stored the step as a Python number
                    p_state["step"] = _step_tensor(float(p_state["step"]))

    def step(self, closure=None) -> Any:
        """Perform a single optimization step; returns the closure's loss (or None)."""
        loss = self._run_closure(closure) if closure is not None else None
        state_of = self.state
        for group in self.param_groups:
            amsgrad = bool(group["amsgrad"])
            # everything is re-read from the group and the state each step (cheap for the
            # handful of params a group usually has), so edits between steps take effect
            params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, steps = [], [], [], [], [], []
            for p in group["params"]:
                g = p.grad
                if g is None:
                    continue
                state = state_of[p]
                if len(state) == 0:  # lazy state initialization
                    state["step"] = _step_tensor()
                    state["exp_avg"] = _zeros_like(p)
                    state["exp_avg_sq"] = _zeros_like(p)
                    if amsgrad:
                        state["max_exp_avg_sq"] = _zeros_like(p)
                elif amsgrad and "max_exp_avg_sq" not in state:
                    # amsgrad switched on after the state was created: start its max at 0
                    state["max_exp_avg_sq"] = _zeros_like(p)
                params.append(p)
                grads.append(g)
                exp_avgs.append(state["exp_avg"])
                exp_avg_sqs.append(state["exp_avg_sq"])
                if amsgrad:
                    max_exp_avg_sqs.append(state["max_exp_avg_sq"])
                steps.append(state["step"])
            if not params:
                continue
            beta1, beta2 = group["betas"]
            lr, eps, wd = group["lr"], group["eps"], group["weight_decay"]
            _C._fused_adam_(
                params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs if amsgrad else None,
                steps,
                lr=lr if type(lr) is float else _scalar(lr, "lr"),
                beta1=beta1 if type(beta1) is float else _scalar(beta1, "betas[0]"),
                beta2=beta2 if type(beta2) is float else _scalar(beta2, "betas[1]"),
                eps=eps if type(eps) is float else _scalar(eps, "eps"),
                weight_decay=wd if type(wd) is float else _scalar(wd, "weight_decay"),
                amsgrad=amsgrad,
                maximize=bool(group["maximize"]),
                decoupled_weight_decay=bool(group.get("decoupled_weight_decay", False)),
            )
        return loss
