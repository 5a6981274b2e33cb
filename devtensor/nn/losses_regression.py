"""huber_loss, kl_div, poisson_nll_loss and gaussian_nll_loss (the losses_extra.py docstring says how
they follow PyTorch)."""
from __future__ import annotations

import math
import warnings

import numpy as np

from ..autograd.grad_mode import no_grad
from ..ops._api import composite
from ..ops.elementwise import exp, log, where
from .losses_base import _legacy, _np_legacy, _np_reduce, _reduce, _reductions, _rng, _same_size, _tensor, _with_grad_of
from ..ops.autocast import autocast_as as _autocast_as


# ---- huber ----------------------------------------------------------------------------------------------

def _ref_huber(input, target, reduction="mean", delta=1.0, weight=None):
    d = np.abs(input - target)
    loss = np.where(d < delta, 0.5 * d * d, delta * (d - 0.5 * delta))
    if weight is not None:
        loss = loss * weight
    return _np_reduce(loss, reduction)


def _huber_samples(dtype=np.float64):
    r = _rng(30)
    U = lambda *s, lo=-2.0, hi=2.0: r.uniform(lo, hi, s).astype(dtype)  # noqa: E731
    return [((U(3, 4), U(3, 4)), {}), ((U(3, 4), U(3, 4)), {"reduction": "sum", "delta": 0.5}),
            ((U(3, 4), U(3, 4)), {"reduction": "none", "delta": 2.0}), ((U(), U()), {}),
            ((U(3, 4), U(3, 4)), {"delta": 0.7}),
            ((U(2, 3), U(2, 3), "mean", 1.5, U(2, 3, lo=0.5, hi=2)), {}), ((U(0, 3), U(0, 3)), {"reduction": "sum"})]


@composite(ref=_ref_huber, samples=_huber_samples, torch="torch.nn.functional.huber_loss")
@_autocast_as("huber_loss")
def huber_loss(input, target, reduction="mean", delta=1.0, weight=None):
    """0.5 (x - y)^2 where |x - y| < delta, else delta (|x - y| - delta / 2)."""
    _tensor("huber_loss", "input", input)
    _tensor("huber_loss", "target", target)
    _same_size("huber_loss", input, target)
    if delta <= 0:
        raise RuntimeError(f"huber_loss does not support non-positive values for delta, got {delta}")
    diff = input - target
    d = diff.abs()
    loss = where(d < delta, diff * diff * 0.5, (d - 0.5 * delta) * delta)
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction)


# ---- kl_div -------------------------------------------------------------------------------------------------

def _ref_kl_div(input, target, size_average=None, reduce=None, reduction="mean", log_target=False):
    reduction = _np_legacy(size_average, reduce, reduction)
    if log_target:
        loss = np.exp(target) * (target - input)
    else:
        with np.errstate(all="ignore"):
            loss = np.where(target == 0, 0.0, target * np.log(np.where(target == 0, 1.0, target))) - target * input
    loss = loss.astype(input.dtype)
    if reduction == "batchmean":
        return np.asarray(loss.sum() / (input.shape[0] if input.ndim else 1), dtype=loss.dtype)
    return _np_reduce(loss, reduction)


def _kl_samples(dtype=np.float64):
    r = _rng(31)
    logp = np.log(r.dirichlet(np.ones(4), 3)).astype(dtype)
    q = r.dirichlet(np.ones(4), 3).astype(dtype)
    q0 = q.copy()
    q0[0, 1] = 0.0  # a zero probability: its term is 0 (xlogy)
    return [((logp, q), {"reduction": "batchmean"}), ((logp, q0), {"reduction": "sum"}),
            ((logp, q), {"reduction": "none"}), ((logp, np.log(q)), {"reduction": "batchmean", "log_target": True}),
            ((logp[0], q[0]), {"reduction": "sum"}), ((logp, q), {"size_average": False})]


def _kl_grad(args, kwargs):
    if not kwargs.get("log_target") and np.any(args[1] == 0):
        return ("a zero target probability: t log t has no two-sided derivative at 0 (the gradient is PyTorch's "
                "xlogy one, -input there)")
    return True


@composite(ref=_ref_kl_div, samples=_kl_samples, torch="torch.nn.functional.kl_div", differentiable=_kl_grad)
@_autocast_as("kl_div")
def kl_div(input, target, size_average=None, reduce=None, reduction="mean", log_target=False):
    """KL(target || exp(input)) per element: target * (log(target) - input) (input holds log-probabilities;
    log_target=True: target does too). reduction='batchmean' divides the sum by the batch size, which is
    the mathematical KL divergence; 'mean' (the default) divides by every element, as PyTorch warns."""
    _tensor("kl_div", "input", input)
    _tensor("kl_div", "target", target)
    reduction = _legacy(size_average, reduce, reduction)
    if reduction == "mean":
        warnings.warn("reduction: 'mean' divides the total loss by both the batch size and the support size."
                      "'batchmean' divides only by the batch size, and aligns with the KL div math definition."
                      "'mean' will be changed to behave the same as 'batchmean' in the next major release.",
                      UserWarning, stacklevel=2)
    if log_target:
        loss = exp(target) * (target - input)
    else:
        zero = target == 0
        loss = where(zero, 0.0, target * log(where(zero, 1.0, target))) - target * input
    if reduction == "batchmean":
        return loss.sum() / (input.shape[0] if input.ndim else 1)
    return _reduce(loss, reduction)


# ---- likelihoods ------------------------------------------------------------------------------------------

def _ref_poisson(input, target, log_input=True, full=False, size_average=None, eps=1e-8, reduce=None,
                 reduction="mean"):
    reduction = _np_legacy(size_average, reduce, reduction)
    loss = np.exp(input) - target * input if log_input else input - target * np.log(input + eps)
    if full:
        with np.errstate(all="ignore"):
            st = target * np.log(target) - target + 0.5 * np.log(2 * np.pi * target)
        loss = loss + np.where(target <= 1, 0, st)
    return _np_reduce(loss.astype(input.dtype), reduction)


def _poisson_samples(dtype=np.float64):
    def counts(r, shape):  # full=True switches Stirling's term on past 1: keep targets off that jump
        return r.choice([0.0, 2.0, 3.0, 5.0, 0.5], shape).astype(dtype)

    def make(dt_, r):
        return (r.uniform(-1, 1.5, (3, 4)).astype(dt_), r.integers(0, 6, (3, 4)).astype(dt_)), {}
    r = _rng(42)
    return _reductions(make)(dtype) + [
        ((r.uniform(-1, 1.5, (3, 4)).astype(dtype), counts(r, (3, 4))), {"full": True}),
        ((r.uniform(0.2, 3, (3, 4)).astype(dtype), counts(r, (3, 4)) + 0.25),
         {"log_input": False, "full": True, "reduction": "sum"}),
        ((r.uniform(0.2, 3, (5,)).astype(dtype), r.integers(1, 6, (5,)).astype(dtype)),
         {"log_input": False, "eps": 1e-3})]


@composite(ref=_ref_poisson, samples=_poisson_samples, torch="torch.nn.functional.poisson_nll_loss")
@_autocast_as("poisson_nll_loss")
def poisson_nll_loss(input, target, log_input=True, full=False, size_average=None, eps=1e-8, reduce=None,
                     reduction="mean"):
    """Negative log-likelihood of target ~ Poisson(rate): exp(input) - target * input (log_input), else
    input - target * log(input + eps); full adds Stirling's approximation of log(target!) for target > 1."""
    _tensor("poisson_nll_loss", "input", input)
    _tensor("poisson_nll_loss", "target", target)
    reduction = _legacy(size_average, reduce, reduction)
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"{reduction} is not a valid value for reduction")
    loss = exp(input) - target * input if log_input else input - target * log(input + eps)
    if full:
        big = target > 1
        t = where(big, target, 2.0)
        stirling = t * log(t) - t + 0.5 * log(2 * math.pi * t)
        loss = loss + where(big, stirling, 0.0)
    return _reduce(loss, reduction)


def _ref_gaussian(input, target, var, full=False, eps=1e-6, reduction="mean"):
    var = np.asarray(var, dtype=input.dtype) * np.ones_like(input) if np.ndim(var) == 0 else var
    if var.shape != input.shape and input.shape[:-1] == var.shape:
        var = var[..., None]
    var = np.maximum(var, eps)
    loss = 0.5 * (np.log(var) + (input - target) ** 2 / var)
    if full:
        loss = loss + 0.5 * np.log(2 * np.pi)
    return _np_reduce(loss.astype(input.dtype), reduction)


def _gauss_samples(dtype=np.float64):
    r = _rng(43)
    U = lambda *s, lo=-2.0, hi=2.0: r.uniform(lo, hi, s).astype(dtype)  # noqa: E731
    return [((U(3, 4), U(3, 4), U(3, 4, lo=0.2, hi=2)), {}),
            ((U(3, 4), U(3, 4), U(3, lo=0.2, hi=2)), {"full": True, "reduction": "sum"}),   # one var per row
            ((U(3, 4), U(3, 4), U(3, 1, lo=0.2, hi=2)), {"reduction": "none"}),
            ((U(2, 3, 4), U(2, 3, 4), U(2, 1, 4, lo=0.2, hi=2)), {}),
            ((U(3, 4), U(3, 4), 0.5), {"full": True}),
            ((U(3, 4), U(3, 4), U(3, 4, lo=0.2, hi=2) * (U(3, 4) > 0)), {"eps": 1e-2})]  # zeros: clamped to eps


def _gauss_grad(args, kwargs):
    var = args[2]
    if np.ndim(var) and np.any(var <= kwargs.get("eps", 1e-6)):
        return "variances at or below eps sit on the clamp (and a perturbed 0 turns negative, an error)"
    return True


@composite(ref=_ref_gaussian, samples=_gauss_samples, torch="torch.nn.functional.gaussian_nll_loss",
           differentiable=_gauss_grad)
@_autocast_as("gaussian_nll_loss")
def gaussian_nll_loss(input, target, var, full=False, eps=1e-6, reduction="mean"):
    """Negative log-likelihood of target ~ N(input, var): 0.5 (log(var) + (input - target)^2 / var), var clamped
    to eps (the gradient passes the clamp unchanged, as PyTorch's in-place clamp under no_grad). var may have
    input's shape, one dimension less, or size 1 in one dimension (homoscedastic), or be a float."""
    from ..ops.creation import ones_like

    _tensor("gaussian_nll_loss", "input", input)
    _tensor("gaussian_nll_loss", "target", target)
    if isinstance(var, (int, float)):
        if var < 0:
            raise ValueError("var has negative entry/entries")
        var = ones_like(input) * float(var)
    else:
        with no_grad():
            if bool((var < 0).any()):
                raise ValueError("var has negative entry/entries")
    if tuple(var.shape) != tuple(input.shape):
        if tuple(input.shape[:-1]) == tuple(var.shape):
            var = var.unsqueeze(-1)
        elif input.ndim == var.ndim and sum(y for x, y in zip(input.shape, var.shape) if x != y) == 1:
            pass
        else:
            raise ValueError("var is of incorrect size")
    if reduction not in ("none", "mean", "sum"):
        raise ValueError(reduction + " is not valid")
    var = _with_grad_of(var.clamp(min=eps), var)
    loss = 0.5 * (log(var) + (input - target) ** 2 / var)
    if full:
        loss = loss + 0.5 * math.log(2 * math.pi)
    return _reduce(loss, reduction)
