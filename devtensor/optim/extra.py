"""Adagrad, Adadelta, Adamax, NAdam, RAdam, Rprop and ASGD with torch.optim's arguments, defaults,
state names and math (each transcribes torch's single-tensor update, in Tensor ops: any backend).

Like the other devtensor optimizers, a parameter's step count is a Python int. PyTorch keeps NAdam's
`mu_product` and ASGD's `eta` and `mu` in 0-d tensors of its default dtype (float32 unless changed);
they are Python floats here, rounded to that dtype exactly where PyTorch's tensor would round them, so
the updates agree with PyTorch's to the last bits in float64 as well as float32.
No fused kernels yet: each update is a handful of elementwise Tensor ops per parameter.
"""
from __future__ import annotations

import numpy as np

from .. import dtypes as _dt
from ..ops.creation import full_like, zeros_like
from ..ops.elementwise import where
from .optimizer import Optimizer, _float

__all__ = ["Adagrad", "Adadelta", "Adamax", "NAdam", "RAdam", "Rprop", "ASGD"]


def _scalar(v):
    """v as PyTorch's optimizer scalars hold it: a 0-d tensor of the default dtype."""
    return float(np.float32(v)) if _dt.get_default_dtype() is not _dt.float64 else float(v)


def _scalar_mul(a, b):
    """a *= b on PyTorch's 0-d scalar-dtype tensor: the Python float b joins in that dtype."""
    if _dt.get_default_dtype() is not _dt.float64:
        return float(np.float32(a) * np.float32(b))
    return a * b


def _check_lr(lr):
    from ..tensor import Tensor

    if isinstance(lr, Tensor) and lr.numel() != 1:
        raise ValueError("Tensor lr must be 1-element")
    if not 0.0 <= _float(lr, "lr"):
        raise ValueError(f"Invalid learning rate: {lr}")


def _check_nonneg(**kw):
    names = {"eps": "epsilon"}
    for k, v in kw.items():
        if not 0.0 <= v:
            raise ValueError(f"Invalid {names.get(k, k)} value: {v}")


def _check_betas(betas):
    if not 0.0 <= betas[0] < 1.0:
        raise ValueError(f"Invalid beta parameter at index 0: {betas[0]}")
    if not 0.0 <= betas[1] < 1.0:
        raise ValueError(f"Invalid beta parameter at index 1: {betas[1]}")


class _Simple(Optimizer):
    """Shared loop: every parameter with a gradient, its state created on first use, then _update."""

    def _new_state(self, group, p):
        raise NotImplementedError

    def _step_group(self, group):
        maximize = bool(group.get("maximize", False))
        for p in group["params"]:
            grad = p._grad_or_none()
            if grad is None:
                continue
            state = self.state[p]
            if not state:
                state.update(self._new_state(group, p))
            else:
                self._check_state(p, state)
            state["step"] = state["step"] + 1
            self._update(group, p, -grad if maximize else grad, state)


class Adagrad(_Simple):
    _param_shaped_state = ("sum",)

    def __init__(self, params, lr=1e-2, lr_decay=0, weight_decay=0, initial_accumulator_value=0, eps=1e-10,
                 foreach=None, *, maximize=False, differentiable=False, fused=None):
        _check_lr(lr)
        _check_nonneg(lr_decay=lr_decay, weight_decay=weight_decay,
                      initial_accumulator_value=initial_accumulator_value, eps=eps)
        defaults = dict(lr=lr, lr_decay=lr_decay, eps=eps, weight_decay=weight_decay,
                        initial_accumulator_value=initial_accumulator_value, foreach=foreach, maximize=maximize,
                        differentiable=differentiable, fused=fused)
        super().__init__(params, defaults)
        for group in self.param_groups:  # PyTorch creates Adagrad's state at construction
            for p in group["params"]:
                self.state[p].update(self._new_state(group, p))

    def _new_state(self, group, p):
        return {"step": 0, "sum": full_like(p, float(group["initial_accumulator_value"]))}

    def _update(self, group, p, grad, state):
        lr, wd = _float(group["lr"], "lr"), float(group["weight_decay"])
        if wd != 0:
            grad = grad + p * wd
        clr = lr / (1 + (state["step"] - 1) * float(group["lr_decay"]))
        s = state["sum"]
        s.add_(grad * grad)
        p.add_(grad / (s.sqrt() + float(group["eps"])) * -clr)


class Adadelta(_Simple):
    _param_shaped_state = ("square_avg", "acc_delta")

    def __init__(self, params, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0, foreach=None, *, capturable=False,
                 maximize=False, differentiable=False):
        _check_lr(lr)
        if not 0.0 <= rho <= 1.0:
            raise ValueError(f"Invalid rho value: {rho}")
        _check_nonneg(eps=eps, weight_decay=weight_decay)
        defaults = dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, maximize=maximize, capturable=capturable,
                        foreach=foreach, differentiable=differentiable)
        super().__init__(params, defaults)

    def _new_state(self, group, p):
        return {"step": 0, "square_avg": zeros_like(p), "acc_delta": zeros_like(p)}

    def _update(self, group, p, grad, state):
        lr, rho, eps, wd = (_float(group["lr"], "lr"), float(group["rho"]), float(group["eps"]),
                            float(group["weight_decay"]))
        if wd != 0:
            grad = grad + p * wd
        square_avg, acc_delta = state["square_avg"], state["acc_delta"]
        square_avg.mul_(rho).add_(grad * grad * (1 - rho))
        delta = (acc_delta + eps).sqrt() / (square_avg + eps).sqrt() * grad
        acc_delta.mul_(rho).add_(delta * delta * (1 - rho))
        p.add_(delta * -lr)


class Adamax(_Simple):
    _param_shaped_state = ("exp_avg", "exp_inf")

    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, foreach=None, *,
                 maximize=False, differentiable=False, capturable=False):
        _check_lr(lr)
        _check_nonneg(eps=eps)
        _check_betas(betas)
        _check_nonneg(weight_decay=weight_decay)
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, foreach=foreach,
                        maximize=maximize, differentiable=differentiable, capturable=capturable)
        super().__init__(params, defaults)

    def _new_state(self, group, p):
        return {"step": 0, "exp_avg": zeros_like(p), "exp_inf": zeros_like(p)}

    def _update(self, group, p, grad, state):
        lr, eps, wd = _float(group["lr"], "lr"), float(group["eps"]), float(group["weight_decay"])
        beta1, beta2 = (float(b) for b in group["betas"])
        if wd != 0:
            grad = grad + p * wd
        exp_avg, exp_inf = state["exp_avg"], state["exp_inf"]
        exp_avg.lerp_(grad, 1 - beta1)
        exp_inf.mul_(beta2).maximum_(grad.abs() + eps)
        clr = lr / (1 - beta1 ** state["step"])
        p.add_(exp_avg / exp_inf * -clr)


class NAdam(_Simple):
    _param_shaped_state = ("exp_avg", "exp_avg_sq")

    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, momentum_decay=4e-3,
                 decoupled_weight_decay=False, *, foreach=None, maximize=False, capturable=False,
                 differentiable=False):
        _check_lr(lr)
        _check_nonneg(eps=eps)
        _check_betas(betas)
        _check_nonneg(weight_decay=weight_decay, momentum_decay=momentum_decay)
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, momentum_decay=momentum_decay,
                        decoupled_weight_decay=decoupled_weight_decay, maximize=maximize, foreach=foreach,
                        capturable=capturable, differentiable=differentiable)
        super().__init__(params, defaults)

    def _new_state(self, group, p):
        return {"step": 0, "mu_product": 1.0, "exp_avg": zeros_like(p), "exp_avg_sq": zeros_like(p)}

    def _update(self, group, p, grad, state):
        lr, eps, wd = _float(group["lr"], "lr"), float(group["eps"]), float(group["weight_decay"])
        beta1, beta2 = (float(b) for b in group["betas"])
        md, step = float(group["momentum_decay"]), state["step"]
        bias_correction2 = 1 - beta2 ** step
        if wd != 0:
            if group.get("decoupled_weight_decay", False):
                p.mul_(1 - lr * wd)
            else:
                grad = grad + p * wd
        mu = beta1 * (1.0 - 0.5 * (0.96 ** (step * md)))
        mu_next = beta1 * (1.0 - 0.5 * (0.96 ** ((step + 1) * md)))
        mu_product = state["mu_product"] = _scalar_mul(float(state["mu_product"]), mu)
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        exp_avg.lerp_(grad, 1 - beta1)
        exp_avg_sq.mul_(beta2).add_(grad * grad * (1 - beta2))
        denom = (exp_avg_sq / bias_correction2).sqrt() + eps
        mu_product_next = mu_product * mu_next
        p.add_(grad / denom * (-lr * (1.0 - mu) / (1.0 - mu_product)))
        p.add_(exp_avg / denom * ((-lr * mu_next) / (1.0 - mu_product_next)))


class RAdam(_Simple):
    _param_shaped_state = ("exp_avg", "exp_avg_sq")

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, decoupled_weight_decay=False,
                 *, foreach=None, maximize=False, capturable=False, differentiable=False):
        _check_lr(lr)
        _check_nonneg(eps=eps)
        _check_betas(betas)
        _check_nonneg(weight_decay=weight_decay)
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, maximize=maximize,
                        foreach=foreach, capturable=capturable, decoupled_weight_decay=decoupled_weight_decay,
                        differentiable=differentiable)
        super().__init__(params, defaults)

    def _new_state(self, group, p):
        return {"step": 0, "exp_avg": zeros_like(p), "exp_avg_sq": zeros_like(p)}

    def _update(self, group, p, grad, state):
        lr, eps, wd = _float(group["lr"], "lr"), float(group["eps"]), float(group["weight_decay"])
        beta1, beta2 = (float(b) for b in group["betas"])
        step = state["step"]
        if wd != 0:
            if group.get("decoupled_weight_decay", False):
                p.mul_(1 - lr * wd)
            else:
                grad = grad + p * wd
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        exp_avg.lerp_(grad, 1 - beta1)
        exp_avg_sq.mul_(beta2).add_(grad * grad * (1 - beta2))
        bias_correction1 = 1 - beta1 ** step
        bias_correction2 = 1 - beta2 ** step
        bias_corrected_exp_avg = exp_avg / bias_correction1
        rho_inf = 2 / (1 - beta2) - 1
        rho_t = rho_inf - 2 * step * (beta2 ** step) / bias_correction2
        if rho_t > 5.0:
            rect = ((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)) ** 0.5
            adaptive_lr = (bias_correction2 ** 0.5) / (exp_avg_sq.sqrt() + eps)
            p.sub_(bias_corrected_exp_avg * lr * adaptive_lr * rect)
        else:
            p.sub_(bias_corrected_exp_avg * lr)


class Rprop(_Simple):
    _param_shaped_state = ("prev", "step_size")

    def __init__(self, params, lr=1e-2, etas=(0.5, 1.2), step_sizes=(1e-6, 50), *, capturable=False, foreach=None,
                 maximize=False, differentiable=False):
        _check_lr(lr)
        if not 0.0 < etas[0] < 1.0 < etas[1]:
            raise ValueError(f"Invalid eta values: {etas[0]}, {etas[1]}")
        defaults = dict(lr=lr, etas=tuple(etas), step_sizes=tuple(step_sizes), foreach=foreach, maximize=maximize,
                        differentiable=differentiable, capturable=capturable)
        super().__init__(params, defaults)

    def _new_state(self, group, p):
        return {"step": 0, "prev": zeros_like(p), "step_size": full_like(p, _float(group["lr"], "lr"))}

    def _update(self, group, p, grad, state):
        etaminus, etaplus = (float(e) for e in group["etas"])
        step_size_min, step_size_max = (float(s) for s in group["step_sizes"])
        prev, step_size = state["prev"], state["step_size"]
        sign = (grad * prev).sign()
        factor = where(sign > 0, etaplus, where(sign < 0, etaminus, full_like(sign, 1.0)))
        step_size.mul_(factor).clamp_(step_size_min, step_size_max)
        grad = where(sign < 0, 0.0, grad)  # the sign changed: no step now, and no sign memory for the next
        p.sub_(grad.sign() * step_size)
        prev.copy_(grad)


class ASGD(_Simple):
    _param_shaped_state = ("ax",)

    def __init__(self, params, lr=1e-2, lambd=1e-4, alpha=0.75, t0=1e6, weight_decay=0, foreach=None,
                 maximize=False, differentiable=False, capturable=False):
        _check_lr(lr)
        _check_nonneg(weight_decay=weight_decay)
        defaults = dict(lr=lr, lambd=lambd, alpha=alpha, t0=t0, weight_decay=weight_decay, foreach=foreach,
                        maximize=maximize, differentiable=differentiable, capturable=capturable)
        super().__init__(params, defaults)

    def _new_state(self, group, p):
        return {"step": 0, "eta": _scalar(_float(group["lr"], "lr")), "mu": 1.0, "ax": zeros_like(p)}

    def _update(self, group, p, grad, state):
        lr, lambd, alpha = _float(group["lr"], "lr"), float(group["lambd"]), float(group["alpha"])
        t0, wd, step = float(group["t0"]), float(group["weight_decay"]), state["step"]
        eta, mu = float(state["eta"]), float(state["mu"])
        if wd != 0:
            grad = grad + p * wd
        p.mul_(1 - lambd * eta)
        p.add_(grad * -eta)
        ax = state["ax"]
        if mu != 1:
            ax.add_((p - ax) * mu)
        else:
            ax.copy_(p)
        state["eta"] = _scalar(lr / ((1 + lambd * lr * step) ** alpha))
        state["mu"] = _scalar(1 / max(1, step - t0))

