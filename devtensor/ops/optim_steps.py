"""Fused optimizer steps: one kernel per parameter updates the parameter and its state in place.

Each op takes the parameter, its gradient and its state tensors (same shape, dtype and device,
the written ones contiguous; None for absent state) and the hyper-parameters as attributes; its
kernel writes the new values into those arrays and returns the parameter's array. The optimizers
in devtensor.optim check all that before calling, and fall back to the same update written in
Tensor ops where a backend has no kernel (or for non-contiguous and low-precision parameters).

The numpy references below (used by the generated op suite) follow torch.optim's single-tensor
code line by line; they copy their inputs and return the updated parameter.
"""
from __future__ import annotations

import math

import numpy as np

from ..dispatch import KEEP, defop

# ---- numpy references ----------------------------------------------------------------------


def ref_adam_step(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, lr, beta1, beta2, eps, weight_decay,
                  decoupled, step, amsgrad, maximize):
    p, m, v = param.copy(), exp_avg.copy(), exp_avg_sq.copy()
    g = -grad if maximize else grad.copy()
    if weight_decay:
        if decoupled:
            p *= 1 - lr * weight_decay
        else:
            g = g + weight_decay * p
    m += (g - m) * (1 - beta1)
    v = v * beta2 + (1 - beta2) * g * g
    bc1 = 1 - beta1 ** step
    bc2_sqrt = math.sqrt(1 - beta2 ** step)
    if amsgrad:
        v = np.maximum(max_exp_avg_sq, v)
    denom = np.sqrt(v) / bc2_sqrt + eps
    return p - (lr / bc1) * m / denom


def ref_sgd_step(param, grad, momentum_buffer, lr, momentum, dampening, weight_decay, nesterov, maximize,
                 first_step):
    g = -grad if maximize else grad.copy()
    if weight_decay:
        g = g + weight_decay * param
    if momentum:
        buf = g.copy() if first_step else momentum_buffer * momentum + (1 - dampening) * g
        g = g + momentum * buf if nesterov else buf
    return param - lr * g


def ref_rmsprop_step(param, grad, square_avg, momentum_buffer, grad_avg, lr, alpha, eps, weight_decay, momentum,
                     centered):
    g = grad.copy()
    if weight_decay:
        g = g + weight_decay * param
    sq = square_avg * alpha + (1 - alpha) * g * g
    if centered:
        ga = grad_avg + (g - grad_avg) * (1 - alpha)
        avg = np.sqrt(sq - ga * ga) + eps
    else:
        avg = np.sqrt(sq) + eps
    if momentum > 0:
        buf = momentum_buffer * momentum + g / avg
        return param - lr * buf
    return param - lr * g / avg


# ---- samples: 1-D and 2-D contiguous state, a few option combinations ------------------------


def _arrays(dtype, n, shape, seed):
    r = np.random.default_rng(seed)
    return [r.uniform(-1.0, 1.0, shape).astype(dtype) for _ in range(n)]


def _adam_samples(dtype=np.float64):
    out = []
    base = dict(lr=0.01, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0, decoupled=False, step=1,
                amsgrad=False, maximize=False)
    for i, (shape, opts) in enumerate([((7,), {}), ((3, 5), dict(step=4, weight_decay=0.1)),
                                       ((6,), dict(weight_decay=0.01, decoupled=True, step=2)),
                                       ((5,), dict(amsgrad=True, maximize=True, step=3))]):
        p, g, m = _arrays(dtype, 3, shape, i)
        v = np.abs(_arrays(dtype, 1, shape, 10 + i)[0])
        mx = v + 0.1 if opts.get("amsgrad") else None
        out.append(((p, g, m, v, mx), {**base, **opts}))
    return out


def _sgd_samples(dtype=np.float64):
    out = []
    base = dict(lr=0.1, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False, maximize=False,
                first_step=False)
    for i, (shape, opts) in enumerate([((7,), {}), ((3, 4), dict(momentum=0.9, first_step=True)),
                                       ((6,), dict(momentum=0.9, dampening=0.1, weight_decay=0.01)),
                                       ((5,), dict(momentum=0.8, nesterov=True, maximize=True))]):
        p, g, b = _arrays(dtype, 3, shape, 20 + i)
        out.append(((p, g, b if opts.get("momentum") else None), {**base, **opts}))
    return out


def _rmsprop_samples(dtype=np.float64):
    out = []
    base = dict(lr=0.01, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False)
    for i, (shape, opts) in enumerate([((7,), {}), ((3, 4), dict(momentum=0.9, weight_decay=0.1)),
                                       ((6,), dict(centered=True)), ((5,), dict(centered=True, momentum=0.5))]):
        p, g, b = _arrays(dtype, 3, shape, 30 + i)
        sq = np.abs(_arrays(dtype, 1, shape, 40 + i)[0]) + 0.5
        ga = _arrays(dtype, 1, shape, 50 + i)[0] * 0.1 if opts.get("centered") else None
        out.append(((p, g, sq, b if opts.get("momentum") else None, ga), {**base, **opts}))
    return out


# ---- the ops -------------------------------------------------------------------------------

def _state_meta(names):
    """Every state array the kernel writes must have the parameter's shape and dtype: the kernels
    walk them as flat buffers of the parameter's length."""

    def meta(param, *state, **hyper):
        for name, a in zip(names[1:], state):
            if a is None:
                continue
            if tuple(a.shape) != tuple(param.shape):
                raise RuntimeError(f"'{name}' has shape {list(a.shape)} but the parameter has shape "
                                   f"{list(param.shape)}")
            if a.dtype != param.dtype and name != "grad":
                raise TypeError(f"'{name}' has dtype {a.dtype} but the parameter has dtype {param.dtype}")
        return tuple(param.shape), param.dtype

    return meta


_ADAM = ("param", "grad", "exp_avg", "exp_avg_sq", "max_exp_avg_sq")
_SGD = ("param", "grad", "momentum_buffer")
_RMSPROP = ("param", "grad", "square_avg", "momentum_buffer", "grad_avg")

adam_step_ = defop("adam_step_", _ADAM, rule=KEEP, meta=_state_meta(_ADAM), check=True,
                   differentiable=False, ref=ref_adam_step, samples=_adam_samples,
                   doc="Adam/AdamW update of param, exp_avg, exp_avg_sq (and max_exp_avg_sq) in place")
sgd_step_ = defop("sgd_step_", _SGD, rule=KEEP, meta=_state_meta(_SGD), check=True, differentiable=False,
                  ref=ref_sgd_step, samples=_sgd_samples,
                  doc="SGD update of param (and its momentum buffer) in place")
rmsprop_step_ = defop("rmsprop_step_", _RMSPROP, rule=KEEP, meta=_state_meta(_RMSPROP), check=True, differentiable=False, ref=ref_rmsprop_step, samples=_rmsprop_samples,
                      doc="RMSprop update of param, square_avg (and momentum buffer, grad_avg) in place")
