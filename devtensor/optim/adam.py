"""Adam (with amsgrad, maximize, L2 weight decay) and AdamW (decoupled weight decay): torch.optim's math."""
from __future__ import annotations

import math

from ..ops.creation import zeros_like
from ..ops.optim_steps import adam_step_
from .optimizer import Optimizer, _float

__all__ = ["Adam", "AdamW"]


def _check(lr, betas, eps, weight_decay):
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


class Adam(Optimizer):
    _param_shaped_state = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False, *, foreach=None,
                 maximize=False, capturable=False, differentiable=False, fused=None, decoupled_weight_decay=False):
        _check(lr, betas, eps, weight_decay)
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                        maximize=maximize, foreach=foreach, capturable=capturable, differentiable=differentiable,
                        fused=fused, decoupled_weight_decay=decoupled_weight_decay)
        super().__init__(params, defaults)

    def _step_group(self, group):
        lr = _float(group["lr"], "lr")
        beta1, beta2 = (_float(b, "betas") for b in group["betas"])
        eps, wd = float(group["eps"]), float(group["weight_decay"])
        amsgrad, maximize = bool(group["amsgrad"]), bool(group["maximize"])
        decoupled = bool(group.get("decoupled_weight_decay", False))
        for p, grad, state in self._with_state(group, _new_state):
            if amsgrad and "max_exp_avg_sq" not in state:  # first step, or amsgrad switched on after some
                state["max_exp_avg_sq"] = zeros_like(p)
            state["step"] = step = state["step"] + 1
            mx = state["max_exp_avg_sq"] if amsgrad else None
            if self._fused(adam_step_, group, p):
                self._run_fused(adam_step_, (p, grad, state["exp_avg"], state["exp_avg_sq"], mx), dict(
                    lr=lr, beta1=beta1, beta2=beta2, eps=eps, weight_decay=wd, decoupled=decoupled, step=step,
                    amsgrad=amsgrad, maximize=maximize))
            else:
                _adam_tensor_ops(p, grad, state["exp_avg"], state["exp_avg_sq"], mx, lr, beta1, beta2, eps, wd,
                                 decoupled, step, maximize)


def _new_state(p):
    return {"step": 0, "exp_avg": zeros_like(p), "exp_avg_sq": zeros_like(p)}


def _adam_tensor_ops(p, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, lr, beta1, beta2, eps, wd, decoupled, step,
                     maximize):
    """The generic update (any backend): torch.optim.Adam's single-tensor code."""
    g = -grad if maximize else grad
    if wd != 0:
        if decoupled:
            p.mul_(1 - lr * wd)
        else:
            g = g + p * wd
    exp_avg.lerp_(g, 1 - beta1)
    exp_avg_sq.mul_(beta2).add_(g * g * (1 - beta2))
    bias_correction1 = 1 - beta1 ** step
    bias_correction2_sqrt = math.sqrt(1 - beta2 ** step)
    if max_exp_avg_sq is not None:
        max_exp_avg_sq.maximum_(exp_avg_sq)
        denom = max_exp_avg_sq.sqrt() / bias_correction2_sqrt + eps
    else:
        denom = exp_avg_sq.sqrt() / bias_correction2_sqrt + eps
    p.add_(exp_avg / denom * (-lr / bias_correction1))


class AdamW(Adam):
    """Adam with decoupled weight decay: p <- p * (1 - lr * weight_decay) before the Adam update."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False, *,
                 maximize=False, foreach=None, capturable=False, differentiable=False, fused=None):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, foreach=foreach, maximize=maximize,
                         capturable=capturable, differentiable=differentiable, fused=fused,
                         decoupled_weight_decay=True)
