"""Adagrad, Adadelta, Adamax, NAdam, RAdam, Rprop and ASGD with torch.optim's arguments, defaults,
state names and math (each transcribes torch's single-tensor update, in Tensor ops: any backend).

Like the other devtensor optimizers, a parameter's step count is a Python int. PyTorch keeps NAdam's
`mu_product` and ASGD's `eta` and `mu` in 0-d tensors of its default dtype (float32 unless changed);
they are Python floats here, rounded to that dtype exactly where PyTorch's tensor would round them, so
the updates agree with PyTorch's to the last bits in float64 as well as float32.

Each step computes its host scalars once per parameter (`_hyper`: the decayed or bias-corrected
learning rate, NAdam's momentum coefficients, RAdam's rectification, ASGD's eta and mu) and runs one
fused kernel (devtensor/ops/optim_steps.py: adagrad_step_ ... asgd_step_) where Optimizer._fused
allows it, else the same update in Tensor ops (`_tensor_ops`, any backend) with the same scalars.
`fused=False` (Adagrad, the only one of them with that argument in PyTorch; a group's "fused" key for
the others) forces the Tensor ops; `foreach` changes nothing (one kernel per parameter either way).
"""
from __future__ import annotations

import numpy as np

from .. import dtypes as _dt
from ..ops.creation import full_like, zeros_like
from ..ops import optim_steps as _steps
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
    """Shared loop: every parameter with a gradient, its state created on first use, its host scalars
    (`_hyper`), then the fused op `_op` or `_tensor_ops` on (param, grad, *state tensors) where the
    state tensors are `_param_shaped_state` in the op's order."""

    _op = None

    def _new_state(self, group, p):
        raise NotImplementedError

    def _step_group(self, group):
        maximize = bool(group.get("maximize", False))
        names = self._param_shaped_state
        for p, grad, state in self._with_state(group, lambda p: self._new_state(group, p)):
            state["step"] = state["step"] + 1
            hyper = self._hyper(group, state)
            tensors = [state[n] for n in names]
            if self._fused(self._op, group, p):
                hyper["maximize"] = maximize
                self._run_fused(self._op, (p, grad, *tensors), hyper)
            else:
                self._tensor_ops(p, -grad if maximize else grad, *tensors, **hyper)


def _decays(group, lr):
    """(weight_decay, decay): L2 decay added to the gradient, or decoupled decay of the parameter."""
    wd = float(group["weight_decay"])
    if wd != 0 and group.get("decoupled_weight_decay", False):
        return 0.0, 1 - lr * wd
    return wd, 1.0


class Adagrad(_Simple):
    _param_shaped_state = ("sum",)
    _op = _steps.adagrad_step_

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

    def _hyper(self, group, state):
        lr = _float(group["lr"], "lr") / (1 + (state["step"] - 1) * float(group["lr_decay"]))
        return dict(lr=lr, eps=float(group["eps"]), weight_decay=float(group["weight_decay"]))

    @staticmethod
    def _tensor_ops(p, grad, s, lr, eps, weight_decay):
        if weight_decay != 0:
            grad = grad + p * weight_decay
        s.add_(grad * grad)
        p.add_(grad * -lr / (s.sqrt() + eps))


class Adadelta(_Simple):
    _param_shaped_state = ("square_avg", "acc_delta")
    _op = _steps.adadelta_step_

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

    def _hyper(self, group, state):
        return dict(lr=_float(group["lr"], "lr"), rho=float(group["rho"]), eps=float(group["eps"]),
                    weight_decay=float(group["weight_decay"]))

    @staticmethod
    def _tensor_ops(p, grad, square_avg, acc_delta, lr, rho, eps, weight_decay):
        if weight_decay != 0:
            grad = grad + p * weight_decay
        square_avg.mul_(rho).add_(grad * (1 - rho) * grad)
        delta = (acc_delta + eps).sqrt() / (square_avg + eps).sqrt() * grad
        acc_delta.mul_(rho).add_(delta * (1 - rho) * delta)
        p.add_(delta * -lr)


class Adamax(_Simple):
    _param_shaped_state = ("exp_avg", "exp_inf")
    _op = _steps.adamax_step_

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

    def _hyper(self, group, state):
        beta1, beta2 = (float(b) for b in group["betas"])
        return dict(lr=_float(group["lr"], "lr") / (1 - beta1 ** state["step"]), beta1=beta1, beta2=beta2,
                    eps=float(group["eps"]), weight_decay=float(group["weight_decay"]))

    @staticmethod
    def _tensor_ops(p, grad, exp_avg, exp_inf, lr, beta1, beta2, eps, weight_decay):
        if weight_decay != 0:
            grad = grad + p * weight_decay
        exp_avg.lerp_(grad, 1 - beta1)
        exp_inf.mul_(beta2).maximum_(grad.abs() + eps)
        p.add_(exp_avg * -lr / exp_inf)


def _adam_moments(p, grad, exp_avg, exp_avg_sq, beta1, beta2, weight_decay, decay):
    """NAdam's and RAdam's shared start (Tensor ops): weight decay, then Adam's two moments."""
    if decay != 1:
        p.mul_(decay)
    if weight_decay != 0:
        grad = grad + p * weight_decay
    exp_avg.lerp_(grad, 1 - beta1)
    exp_avg_sq.mul_(beta2).add_(grad * (1 - beta2) * grad)
    return grad


class NAdam(_Simple):
    _param_shaped_state = ("exp_avg", "exp_avg_sq")
    _op = _steps.nadam_step_

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

    def _hyper(self, group, state):
        lr = _float(group["lr"], "lr")
        beta1, beta2 = (float(b) for b in group["betas"])
        md, step = float(group["momentum_decay"]), state["step"]
        mu = beta1 * (1.0 - 0.5 * (0.96 ** (step * md)))
        mu_next = beta1 * (1.0 - 0.5 * (0.96 ** ((step + 1) * md)))
        mu_product = state["mu_product"] = _scalar_mul(float(state["mu_product"]), mu)
        wd, decay = _decays(group, lr)
        return dict(beta1=beta1, beta2=beta2, eps=float(group["eps"]), weight_decay=wd, decay=decay,
                    bias_correction2=1 - beta2 ** step, grad_coef=-lr * (1.0 - mu) / (1.0 - mu_product),
                    avg_coef=(-lr * mu_next) / (1.0 - mu_product * mu_next))

    @staticmethod
    def _tensor_ops(p, grad, exp_avg, exp_avg_sq, beta1, beta2, eps, weight_decay, decay, bias_correction2,
                    grad_coef, avg_coef):
        grad = _adam_moments(p, grad, exp_avg, exp_avg_sq, beta1, beta2, weight_decay, decay)
        denom = (exp_avg_sq / bias_correction2).sqrt() + eps
        p.add_(grad * grad_coef / denom)
        p.add_(exp_avg * avg_coef / denom)


class RAdam(_Simple):
    _param_shaped_state = ("exp_avg", "exp_avg_sq")
    _op = _steps.radam_step_

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

    def _hyper(self, group, state):
        lr = _float(group["lr"], "lr")
        beta1, beta2 = (float(b) for b in group["betas"])
        step = state["step"]
        bias_correction2 = 1 - beta2 ** step
        rho_inf = 2 / (1 - beta2) - 1
        rho_t = rho_inf - 2 * step * (beta2 ** step) / bias_correction2
        rect = 0.0  # rho_t <= 5: the un-rectified step (the variance is not tractable yet)
        if rho_t > 5.0:
            rect = ((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)) ** 0.5
        wd, decay = _decays(group, lr)
        return dict(lr=lr, beta1=beta1, beta2=beta2, eps=float(group["eps"]), weight_decay=wd, decay=decay,
                    bias_correction1=1 - beta1 ** step, bias_correction2_sqrt=bias_correction2 ** 0.5, rect=rect)

    @staticmethod
    def _tensor_ops(p, grad, exp_avg, exp_avg_sq, lr, beta1, beta2, eps, weight_decay, decay, bias_correction1,
                    bias_correction2_sqrt, rect):
        _adam_moments(p, grad, exp_avg, exp_avg_sq, beta1, beta2, weight_decay, decay)
        corrected = exp_avg / bias_correction1 * lr
        if rect > 0:
            p.sub_(corrected * (bias_correction2_sqrt / (exp_avg_sq.sqrt() + eps)) * rect)
        else:
            p.sub_(corrected)


class Rprop(_Simple):
    _param_shaped_state = ("prev", "step_size")
    _op = _steps.rprop_step_

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

    def _hyper(self, group, state):
        etaminus, etaplus = (float(e) for e in group["etas"])
        step_size_min, step_size_max = (float(s) for s in group["step_sizes"])
        return dict(etaminus=etaminus, etaplus=etaplus, step_size_min=step_size_min, step_size_max=step_size_max)

    @staticmethod
    def _tensor_ops(p, grad, prev, step_size, etaminus, etaplus, step_size_min, step_size_max):
        sign = (grad * prev).sign()
        factor = where(sign > 0, etaplus, where(sign < 0, etaminus, where(sign == 0, 1.0, sign)))
        step_size.mul_(factor).clamp_(step_size_min, step_size_max)
        grad = where(sign < 0, 0.0, grad)  # the sign changed: no step now, and no sign memory for the next
        p.sub_(grad.sign() * step_size)
        prev.copy_(grad)


class ASGD(_Simple):
    _param_shaped_state = ("ax",)
    _op = _steps.asgd_step_

    def __init__(self, params, lr=1e-2, lambd=1e-4, alpha=0.75, t0=1e6, weight_decay=0, foreach=None,
                 maximize=False, differentiable=False, capturable=False):
        _check_lr(lr)
        _check_nonneg(weight_decay=weight_decay)
        defaults = dict(lr=lr, lambd=lambd, alpha=alpha, t0=t0, weight_decay=weight_decay, foreach=foreach,
                        maximize=maximize, differentiable=differentiable, capturable=capturable)
        super().__init__(params, defaults)

    def _new_state(self, group, p):
        return {"step": 0, "eta": _scalar(_float(group["lr"], "lr")), "mu": 1.0, "ax": zeros_like(p)}

    def _hyper(self, group, state):
        """This step's eta and mu (those the previous step left), then the next step's into the state."""
        lr, lambd, alpha = _float(group["lr"], "lr"), float(group["lambd"]), float(group["alpha"])
        eta, mu, step = float(state["eta"]), float(state["mu"]), state["step"]
        state["eta"] = _scalar(lr / ((1 + lambd * lr * step) ** alpha))
        state["mu"] = _scalar(1 / max(1, step - float(group["t0"])))
        return dict(eta=eta, decay=1 - lambd * eta, mu=mu, weight_decay=float(group["weight_decay"]))

    @staticmethod
    def _tensor_ops(p, grad, ax, eta, decay, mu, weight_decay):
        if weight_decay != 0:
            grad = grad + p * weight_decay
        p.mul_(decay)
        p.add_(grad * -eta)
        if mu != 1:
            ax.add_((p - ax) * mu)
        else:
            ax.copy_(p)
