"""shardopt.optim.Adagrad: torch.optim.Adagrad's signature, defaults, validation, state and
(dense) formulas; the update of a whole param group is one call to the fused C kernel
(``_C._fused_adagrad_``)."""
from .. import _C
from .._tensor import Tensor
from .optimizer import Optimizer, _scalar, _step_tensor

__all__ = ["Adagrad"]


def _full_like(p, value):
    return _C.empty(tuple(p.shape), dtype=p.dtype, device=p.device).fill_(float(value))


class Adagrad(Optimizer):
    r"""Adagrad (torch.optim.Adagrad), dense gradients.

    Per param: t += 1; g = -g if maximize; g += weight_decay * p;
    clr = lr / (1 + (t - 1) * lr_decay); sum += g * g; p -= clr * g / (sqrt(sum) + eps).

    State per param, created in the constructor as torch does: ``step`` (float32 0-d CPU
    tensor) and ``sum`` (filled with ``initial_accumulator_value``, in p's dtype).
    ``foreach``, ``fused`` and ``differentiable`` are accepted for compatibility; every
    implementation is the fused kernel.

    Args:
        params: iterable of Tensors or param-group dicts.
        lr (float or Tensor): learning rate. Default: 1e-2.
        lr_decay (float): learning rate decay. Default: 0.
        weight_decay (float): L2 penalty. Default: 0.
        initial_accumulator_value (float): initial value of ``sum``. Default: 0.
        eps (float): added to the denominator. Default: 1e-10.
        maximize (bool): maximise the objective. Default: False.
    """

    def __init__(self, params, lr=1e-2, lr_decay=0, weight_decay=0,
                 initial_accumulator_value=0, eps=1e-10, foreach=None, *, maximize=False,
                 differentiable=False, fused=None):
        if isinstance(lr, Tensor) and lr.numel() != 1:
            raise ValueError("Tensor lr must be 1-element")
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= lr_decay:
            raise ValueError(f"Invalid lr_decay value: {lr_decay}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if not 0.0 <= initial_accumulator_value:
            raise ValueError(
                f"Invalid initial_accumulator_value value: {initial_accumulator_value}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        defaults = {
            "lr": lr,
            "lr_decay": lr_decay,
            "eps": eps,
            "weight_decay": weight_decay,
            "initial_accumulator_value": initial_accumulator_value,
            "foreach": foreach,
            "maximize": maximize,
            "differentiable": differentiable,
            "fused": fused,
        }
        super().__init__(params, defaults)
        if fused:
            if differentiable:
                raise RuntimeError("`fused` does not support `differentiable`")
            if foreach:
                raise RuntimeError("`fused` and `foreach` cannot be `True` together.")
            self._step_supports_amp_scaling = True
        for group in self.param_groups:
            for p in group["params"]:
                self._init_state(p, group)

    def _init_state(self, p, group):
        state = self.state[p]
        state["step"] = _step_tensor()
        state["sum"] = _full_like(p, group["initial_accumulator_value"])

    def __setstate__(self, state):
        super().__setstate__(state)
        for group in self.param_groups:
            group.setdefault("foreach", None)
            group.setdefault("maximize", False)
            group.setdefault("differentiable", False)
            group.setdefault("fused", None)
        for s in self.state.values():
            if "step" in s and not isinstance(s["step"], Tensor):
                s["step"] = _step_tensor(float(s["step"]))

    def step(self, closure=None):
        """Perform a single optimization step; returns the closure's loss (or None)."""
        loss = self._run_closure(closure)
        for group in self.param_groups:
            params, grads, sums, steps = [], [], [], []
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if len(state) == 0:  # a param added after construction
                    self._init_state(p, group)
                params.append(p)
                grads.append(p.grad)
                sums.append(state["sum"])
                steps.append(state["step"])
            if not params:
                continue
            _C._fused_adagrad_(
                params, grads, sums, steps,
                lr=_scalar(group["lr"], "lr"),
                lr_decay=_scalar(group["lr_decay"], "lr_decay"),
                weight_decay=_scalar(group["weight_decay"], "weight_decay"),
                eps=_scalar(group["eps"], "eps"),
                maximize=bool(group["maximize"]),
            )
        return loss
