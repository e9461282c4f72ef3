"""shardopt.optim.RMSprop: torch.optim.RMSprop's signature, defaults, validation, state and
formulas; the update of a whole param group is one call to the fused C kernel
(``_C._fused_rmsprop_``)."""
from .. import _C
from .._tensor import Tensor
from .optimizer import Optimizer, _scalar, _step_tensor, _zeros_like

__all__ = ["RMSprop"]


class RMSprop(Optimizer):
    r"""RMSprop (torch.optim.RMSprop).

    Per param: g = -g if maximize; g += weight_decay * p;
    square_avg = alpha * square_avg + (1 - alpha) * g * g;
    centered: grad_avg = lerp(grad_avg, g, 1 - alpha), avg = sqrt(square_avg - grad_avg^2);
    else avg = sqrt(square_avg); avg += eps;
    momentum > 0: buf = momentum * buf + g / avg, p -= lr * buf; else p -= lr * g / avg.

    State per param: ``step`` (float32 0-d CPU tensor), ``square_avg`` and, when used,
    ``momentum_buffer`` and ``grad_avg`` (zeros like p).  float16/bfloat16 params are
    updated with float32 math.  ``capturable``, ``foreach`` and ``differentiable`` are
    accepted for compatibility; every implementation is the fused kernel.

    Args:
        params: iterable of Tensors or param-group dicts.
        lr (float or Tensor): learning rate. Default: 1e-2.
        alpha (float): smoothing constant. Default: 0.99.
        eps (float): added to the denominator. Default: 1e-8.
        weight_decay (float): L2 penalty. Default: 0.
        momentum (float): momentum factor. Default: 0.
        centered (bool): normalise by the estimated variance. Default: False.
        maximize (bool): maximise the objective. Default: False.
    """

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0,
                 centered=False, capturable=False, foreach=None, maximize=False,
                 differentiable=False):
        if isinstance(lr, Tensor) and lr.numel() != 1:
            raise ValueError("Tensor lr must be 1-element")
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if not 0.0 <= momentum:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if not 0.0 <= alpha:
            raise ValueError(f"Invalid alpha value: {alpha}")
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "alpha": alpha,
            "eps": eps,
            "centered": centered,
            "weight_decay": weight_decay,
            "capturable": capturable,
            "foreach": foreach,
            "maximize": maximize,
            "differentiable": differentiable,
        }
        super().__init__(params, defaults)

    def __setstate__(self, state):
        super().__setstate__(state)
        for group in self.param_groups:
            group.setdefault("momentum", 0)
            group.setdefault("centered", False)
            group.setdefault("foreach", None)
            group.setdefault("maximize", False)
            group.setdefault("differentiable", False)
            group.setdefault("capturable", False)
            for p in group["params"]:
                p_state = self.state.get(p, [])
                if len(p_state) != 0 and not isinstance(p_state["step"], Tensor):
                    p_state["step"] = _step_tensor(float(p_state["step"]))

    def step(self, closure=None):
        """Perform a single optimization step; returns the closure's loss (or None)."""
        loss = self._run_closure(closure)
        for group in self.param_groups:
            momentum = _scalar(group["momentum"], "momentum")
            centered = bool(group["centered"])
            params, grads, square_avgs, bufs, grad_avgs, steps = [], [], [], [], [], []
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if len(state) == 0:  # lazy state initialization
                    state["step"] = _step_tensor()
                    state["square_avg"] = _zeros_like(p)
                    if momentum > 0:
                        state["momentum_buffer"] = _zeros_like(p)
                    if centered:
                        state["grad_avg"] = _zeros_like(p)
                # options switched on after the state was made start from zeros
                if momentum > 0 and "momentum_buffer" not in state:
                    state["momentum_buffer"] = _zeros_like(p)
                if centered and "grad_avg" not in state:
                    state["grad_avg"] = _zeros_like(p)
                params.append(p)
                grads.append(p.grad)
                square_avgs.append(state["square_avg"])
                steps.append(state["step"])
                if momentum > 0:
                    bufs.append(state["momentum_buffer"])
                if centered:
                    grad_avgs.append(state["grad_avg"])
            if not params:
                continue
            _C._fused_rmsprop_(
                params, grads, square_avgs, bufs if momentum > 0 else None,
                grad_avgs if centered else None, steps,
                lr=_scalar(group["lr"], "lr"),
                alpha=_scalar(group["alpha"], "alpha"),
                eps=_scalar(group["eps"], "eps"),
                weight_decay=_scalar(group["weight_decay"], "weight_decay"),
                momentum=momentum,
                centered=centered,
                maximize=bool(group["maximize"]),
            )
        return loss
