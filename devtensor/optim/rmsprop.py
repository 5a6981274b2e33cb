"""RMSprop with momentum, centering, weight decay and maximize (torch.optim.RMSprop's math)."""
from __future__ import annotations

from ..ops.creation import zeros_like
from ..ops.optim_steps import rmsprop_step_
from .optimizer import Optimizer, _float

__all__ = ["RMSprop"]


class RMSprop(Optimizer):
    _param_shaped_state = ("square_avg", "momentum_buffer", "grad_avg")

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0, centered=False,
                 capturable=False, foreach=None, maximize=False, differentiable=False, *, fused=None):
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
        defaults = dict(lr=lr, momentum=momentum, alpha=alpha, eps=eps, centered=centered, weight_decay=weight_decay,
                        capturable=capturable, foreach=foreach, maximize=maximize, differentiable=differentiable,
                        fused=fused)
        super().__init__(params, defaults)

    def _step_group(self, group):
        lr = _float(group["lr"], "lr")
        alpha, eps, wd = float(group["alpha"]), float(group["eps"]), float(group["weight_decay"])
        momentum, centered, maximize = float(group["momentum"]), bool(group["centered"]), bool(group["maximize"])
        for p, grad, state in self._with_state(group, lambda p: {"step": 0, "square_avg": zeros_like(p)}):
            if momentum > 0 and "momentum_buffer" not in state:
                state["momentum_buffer"] = zeros_like(p)
            if centered and "grad_avg" not in state:
                state["grad_avg"] = zeros_like(p)
            state["step"] += 1
            buf = state["momentum_buffer"] if momentum > 0 else None
            grad_avg = state["grad_avg"] if centered else None
            if maximize:
                grad = -grad
            if self._fused(rmsprop_step_, group, p):
                self._run_fused(rmsprop_step_, (p, grad, state["square_avg"], buf, grad_avg), dict(
                    lr=lr, alpha=alpha, eps=eps, weight_decay=wd, momentum=momentum, centered=centered))
            else:
                _rmsprop_tensor_ops(p, grad, state["square_avg"], buf, grad_avg, lr, alpha, eps, wd, momentum)


def _rmsprop_tensor_ops(p, grad, square_avg, buf, grad_avg, lr, alpha, eps, wd, momentum):
    """The generic update (any backend): torch.optim.RMSprop's single-tensor code (grad already negated
    when maximizing)."""
    g = grad + p * wd if wd != 0 else grad
    square_avg.mul_(alpha).add_(g * g * (1 - alpha))
    if grad_avg is not None:
        grad_avg.lerp_(g, 1 - alpha)
        avg = (square_avg - grad_avg * grad_avg).sqrt()
    else:
        avg = square_avg.sqrt()
    avg = avg + eps
    if buf is not None:
        buf.mul_(momentum).add_(g / avg)
        p.add_(buf * -lr)
    else:
        p.add_(g / avg * -lr)
