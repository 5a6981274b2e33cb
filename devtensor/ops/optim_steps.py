"""Fused optimizer steps: one kernel per parameter updates the parameter and its state in place.

Each op takes the parameter, its gradient and its state tensors (same shape, dtype and device,
the written ones contiguous; None for absent state) and the hyper-parameters as attributes; its
kernel writes the new values into those arrays and returns the parameter's array. The optimizers
in devtensor.optim check all that before calling, and fall back to the same update written in
Tensor ops where a backend has no kernel (or for non-contiguous and low-precision parameters).

The numpy references below (used by the generated op suite) follow torch.optim's single-tensor
code line by line; they copy their inputs and return the updated parameter. Adagrad ... ASGD's
references are backends/optim_portable.py's array-level steps run with numpy on copies (that
module's steps are also the portable tier; tests/test_optim_fused.py checks them against PyTorch).
Their attributes are per-step host values (a decayed learning rate, bias corrections, NAdam's
momentum coefficients, ASGD's eta and mu) that the optimizers compute each step.
"""
from __future__ import annotations

import math

import numpy as np

from ..backends.optim_portable import STEPS
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
        # amsgrad's running max: below the new exp_avg_sq in even places (taken), above it in odd ones (kept)
        mx = (v * np.where(np.arange(v.size).reshape(shape) % 2, 1.5, 0.5)).astype(dtype) if opts.get("amsgrad") else None
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

    def meta(param, grad, *state, **hyper):
        shape, dtype = param.shape, param.dtype
        if grad is not None and grad.shape != shape:
            _state_error(names[1], grad, shape, dtype)
        for i, a in enumerate(state):  # a quick test on the usual arrays; _state_error looks closer
            if a is not None and (a.shape != shape or a.dtype is not dtype):
                _state_error(names[2 + i], a, shape, dtype)
        return tuple(shape), dtype

    return meta


def _state_error(name, a, shape, dtype):
    """Raise for the state array `a` that failed meta's quick test, unless its shape is only
    another sequence type of the same sizes."""
    if tuple(a.shape) != tuple(shape):
        raise RuntimeError(f"'{name}' has shape {list(a.shape)} but the parameter has shape {list(shape)}")
    if a.dtype != dtype and name != "grad":
        raise TypeError(f"'{name}' has dtype {a.dtype} but the parameter has dtype {dtype}")


_ADAM = ("param", "grad", "exp_avg", "exp_avg_sq", "max_exp_avg_sq")
_SGD = ("param", "grad", "momentum_buffer")
_RMSPROP = ("param", "grad", "square_avg", "momentum_buffer", "grad_avg")

adam_step_ = defop("adam_step_", _ADAM, rule=KEEP, mutates=_ADAM[:1] + _ADAM[2:], meta=_state_meta(_ADAM),
                   check=True, differentiable=False, ref=ref_adam_step, samples=_adam_samples,
                   doc="Adam/AdamW update of param, exp_avg, exp_avg_sq (and max_exp_avg_sq) in place")
sgd_step_ = defop("sgd_step_", _SGD, rule=KEEP, mutates=_SGD[:1] + _SGD[2:], meta=_state_meta(_SGD), check=True,
                  differentiable=False, ref=ref_sgd_step, samples=_sgd_samples,
                  doc="SGD update of param (and its momentum buffer) in place")
rmsprop_step_ = defop("rmsprop_step_", _RMSPROP, rule=KEEP, mutates=_RMSPROP[:1] + _RMSPROP[2:],
                      meta=_state_meta(_RMSPROP), check=True, differentiable=False, ref=ref_rmsprop_step,
                      samples=_rmsprop_samples,
                      doc="RMSprop update of param, square_avg (and momentum buffer, grad_avg) in place")


# ---- Adagrad, Adadelta, Adamax, NAdam, RAdam, Rprop, ASGD --------------------------------------

def _portable_ref(name):
    step = STEPS[name].xp

    def ref(param, grad, *state, **attrs):
        state = [a.copy() for a in state]
        return step(np, param.copy(), grad.astype(param.dtype), *state, **attrs)

    ref.__name__ = ref.__qualname__ = f"ref_{name}"
    return ref


def _state_arrays(name, shape, dtype, seed):
    """Plausible state: accumulators of squares and step sizes positive, the rest signed."""
    out = []
    for j, st in enumerate(STEPS[name].state):
        a = _arrays(dtype, 1, shape, seed * 7 + j)[0]
        out.append(np.abs(a) + 0.1 if st in ("sum", "square_avg", "acc_delta", "exp_avg_sq", "exp_inf",
                                               "step_size") else a)
    return out


_EXTRA_OPTS = {  # op -> (base attributes, variants)
    "adagrad_step_": (dict(lr=0.05, eps=1e-10, weight_decay=0.0, maximize=False),
                      [dict(), dict(weight_decay=0.1), dict(maximize=True, lr=0.01)]),
    "adadelta_step_": (dict(lr=1.0, rho=0.9, eps=1e-6, weight_decay=0.0, maximize=False),
                       [dict(), dict(weight_decay=0.1, rho=0.8), dict(maximize=True)]),
    "adamax_step_": (dict(lr=0.02, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0, maximize=False),
                     [dict(), dict(weight_decay=0.1, beta1=0.3), dict(maximize=True)]),
    "nadam_step_": (dict(beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0, decay=1.0, bias_correction2=0.002,
                         grad_coef=-0.01, avg_coef=-0.02, maximize=False),
                    [dict(), dict(weight_decay=0.1), dict(decay=0.999, maximize=True, beta1=0.2)]),
    "radam_step_": (dict(lr=0.01, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0, decay=1.0,
                         bias_correction1=0.271, bias_correction2_sqrt=0.05, rect=0.0, maximize=False),
                    [dict(), dict(rect=0.3, weight_decay=0.1), dict(rect=0.5, decay=0.999, maximize=True)]),
    "rprop_step_": (dict(etaminus=0.5, etaplus=1.2, step_size_min=1e-6, step_size_max=50.0, maximize=False),
                    [dict(), dict(step_size_min=0.3, step_size_max=0.6, maximize=True)]),
    "asgd_step_": (dict(eta=0.01, decay=0.9999, mu=1.0, weight_decay=0.0, maximize=False),
                   [dict(), dict(mu=0.25, weight_decay=0.1), dict(mu=0.5, maximize=True)]),
}


def _extra_samples(name):
    base, variants = _EXTRA_OPTS[name]

    def samples(dtype=np.float64):
        out = []
        for i, opts in enumerate(variants):
            shape = [(7,), (3, 5), (6,)][i % 3]
            p, g = _arrays(dtype, 2, shape, 60 + i)
            out.append(((p, g, *_state_arrays(name, shape, dtype, 70 + i)), {**base, **opts}))
        return out

    return samples


_DOCS = {
    "adagrad_step_": "Adagrad update of param and sum in place (lr: this step's decayed learning rate)",
    "adadelta_step_": "Adadelta update of param, square_avg and acc_delta in place",
    "adamax_step_": "Adamax update of param, exp_avg and exp_inf in place (lr: lr / (1 - beta1^step))",
    "nadam_step_": "NAdam update of param, exp_avg and exp_avg_sq in place (coefficients from mu_product)",
    "radam_step_": "RAdam update of param, exp_avg and exp_avg_sq in place (rect 0: the un-rectified step)",
    "rprop_step_": "Rprop update of param, prev and step_size in place",
    "asgd_step_": "ASGD update of param and its average ax in place (eta, mu: the step's values)",
}


def _declare(name):
    names = ("param", "grad", *STEPS[name].state)
    return defop(name, names, rule=KEEP, mutates=names[:1] + names[2:], meta=_state_meta(names), check=True, differentiable=False,
                 ref=_portable_ref(name), samples=_extra_samples(name), doc=_DOCS[name])


adagrad_step_ = _declare("adagrad_step_")
adadelta_step_ = _declare("adadelta_step_")
adamax_step_ = _declare("adamax_step_")
nadam_step_ = _declare("nadam_step_")
radam_step_ = _declare("radam_step_")
rprop_step_ = _declare("rprop_step_")
asgd_step_ = _declare("asgd_step_")
