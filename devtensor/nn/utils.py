"""nn.utils: gradient clipping, flattening parameters to one vector (Tensor ops: any device), and
weight_norm / spectral_norm (utils_norm.py)."""
from __future__ import annotations

import math

from ..autograd.grad_mode import no_grad
from ..tensor import Tensor

__all__ = ["clip_grad_norm_", "clip_grad_value_", "parameters_to_vector", "vector_to_parameters", "weight_norm",
           "remove_weight_norm", "spectral_norm", "remove_spectral_norm"]


def _params(parameters):
    return [parameters] if isinstance(parameters, Tensor) else list(parameters)


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False, foreach=None):
    """Scale the gradients in place so that their joint norm is at most max_norm; returns that norm
    (before clipping) as a 0-d tensor. No host synchronisation unless error_if_nonfinite."""
    from ..ops.creation import tensor
    from ..ops.shape import stack

    grads = [p.grad for p in _params(parameters) if p.grad is not None]
    max_norm, norm_type = float(max_norm), float(norm_type)
    if not grads:
        return tensor(0.0)
    dev = grads[0].device
    with no_grad():
        if norm_type == math.inf:
            norms = [g.detach().abs().max().to(dev) for g in grads]
            total = norms[0] if len(norms) == 1 else stack(norms).max()
        else:
            norms = [g.detach().norm(norm_type).to(dev) for g in grads]
            total = norms[0] if len(norms) == 1 else stack(norms).norm(norm_type)
        if error_if_nonfinite and not bool(total.isfinite()):
            raise RuntimeError(f"The total norm of order {norm_type} for gradients from `parameters` is non-finite, "
                               "so it cannot be clipped. To disable this error and scale the gradients by the "
                               "non-finite norm anyway, set `error_if_nonfinite=False`")
        coef = (max_norm / (total + 1e-6)).clamp(max=1.0)  # a tensor: no sync to decide whether to clip
        for g in grads:
            g.mul_(coef.to(g.dtype) if g.device == dev else coef.to(g.device, g.dtype))
    return total


def clip_grad_value_(parameters, clip_value, foreach=None):
    """Clamp every gradient element to [-clip_value, clip_value], in place."""
    clip_value = float(clip_value)
    with no_grad():
        for p in _params(parameters):
            if p.grad is not None:
                p.grad.clamp_(min=-clip_value, max=clip_value)


def parameters_to_vector(parameters):
    from ..ops.shape import cat

    return cat([p.reshape(-1) for p in parameters])


def vector_to_parameters(vec, parameters):
    if not isinstance(vec, Tensor):
        raise TypeError(f"expected a Tensor, but got: {type(vec).__name__}")
    offset = 0
    with no_grad():
        for p in parameters:
            n = p.numel()
            p.copy_(vec[offset:offset + n].reshape(tuple(p.shape)))
            offset += n


from . import utils_rnn as rnn  # noqa: E402,F401  (nn.utils.rnn: PackedSequence and its helpers)
from .utils_norm import remove_spectral_norm, remove_weight_norm, spectral_norm, weight_norm  # noqa: E402,F401
