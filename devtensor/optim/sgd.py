"""SGD with momentum, dampening, Nesterov momentum, weight decay and maximize (torch.optim.SGD's math)."""
from __future__ import annotations

from ..ops.creation import zeros_like
from ..ops.optim_steps import sgd_step_
from .optimizer import Optimizer, _float

__all__ = ["SGD"]


class SGD(Optimizer):
    _param_shaped_state = ("momentum_buffer",)

    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False, *, maximize=False,
                 foreach=None, differentiable=False, fused=None):
        if lr < 0.0:
            raise ValueError(f"Invalid learning rate: {lr}")
        if momentum < 0.0:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if weight_decay < 0.0:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay, nesterov=nesterov,
                        maximize=maximize, foreach=foreach, differentiable=differentiable, fused=fused)
        super().__init__(params, defaults)

    def _step_group(self, group):
        lr = _float(group["lr"], "lr")
        momentum, dampening = float(group["momentum"]), float(group["dampening"])
        wd, nesterov, maximize = float(group["weight_decay"]), bool(group["nesterov"]), bool(group["maximize"])
        for p in group["params"]:
            grad = p._grad_or_none()
            if grad is None:
                continue
            state = self.state[p]
            if state:
                self._check_state(p, state)
            buf = state.get("momentum_buffer") if momentum else None
            if self._fused(sgd_step_, group, p):
                first = momentum != 0 and buf is None
                if first:
                    buf = state["momentum_buffer"] = zeros_like(p)
                self._run_fused(sgd_step_, (p, grad, buf), dict(
                    lr=lr, momentum=momentum, dampening=dampening, weight_decay=wd, nesterov=nesterov,
                    maximize=maximize, first_step=first))
            else:
                _sgd_tensor_ops(p, grad, state, lr, momentum, dampening, wd, nesterov, maximize)


def _sgd_tensor_ops(p, grad, state, lr, momentum, dampening, wd, nesterov, maximize):
    """The generic update (any backend): torch.optim.SGD's single-tensor code."""
    g = -grad if maximize else grad
    if wd != 0:
        g = g + p * wd
    if momentum != 0:
        buf = state.get("momentum_buffer")
        if buf is None:
            buf = state["momentum_buffer"] = g.clone().contiguous()
        else:
            buf.mul_(momentum).add_(g * (1 - dampening))
        g = g + buf * momentum if nesterov else buf
    p.add_(g * -lr)
