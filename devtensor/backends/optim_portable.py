"""The fused steps of Adagrad, Adadelta, Adamax, NAdam, RAdam, Rprop and ASGD: what every backend's
kernels share.

* `STEPS[name].scalars(f, **attrs)`: the kernel scalars of one step from the op's attributes,
  computed on the host in float64 (as PyTorch computes its Python-float coefficients) and rounded
  once to the arrays' scalar type `f`; the numba loops (cpu/optim_steps.py) and the CUDA C kernels
  (kernels/optim.cu, `dt_optim_step<...>`) take them in this order, then the flags.
* `*_xp(xp, param, grad, *state, **attrs)`: the same step as whole-array expressions, in place,
  following torch.optim's single-tensor code line by line. It is the portable tier (CuPy on cuda,
  numpy on cpu for the dtypes the numba loops do not take) and, on copies, the ops' numpy
  reference (devtensor/ops/optim_steps.py).

The op attributes are already the per-step host values (decayed or bias-corrected learning rate,
NAdam's momentum coefficients, ASGD's eta and mu, ...): the optimizers compute them every step and
never bake them into a kernel. Decoupled weight decay arrives as `decay` (1 - lr * weight_decay,
1.0 when off), L2 weight decay as `weight_decay` (0.0 when off).
"""
from __future__ import annotations

from collections import namedtuple


def _lerp(a, b, w):
    """torch.lerp(a, b, w) as ATen computes it: the small-weight form below |w| < 0.5."""
    if abs(w) < 0.5:
        return a + w * (b - a)
    return b - (b - a) * (1 - w)


def _signed(grad, maximize):
    return -grad if maximize else grad


def _l2(grad, param, weight_decay):
    return grad + weight_decay * param if weight_decay else grad


# ---- the array-level steps (in place; return the parameter) -----------------------------------------

def adagrad_step_xp(xp, param, grad, state_sum, lr, eps, weight_decay, maximize):
    g = _l2(_signed(grad, maximize), param, weight_decay)
    state_sum += g * g
    param += (-lr * g) / (xp.sqrt(state_sum) + eps)
    return param


def adadelta_step_xp(xp, param, grad, square_avg, acc_delta, lr, rho, eps, weight_decay, maximize):
    g = _l2(_signed(grad, maximize), param, weight_decay)
    square_avg *= rho
    square_avg += (1 - rho) * g * g
    delta = xp.sqrt(acc_delta + eps) / xp.sqrt(square_avg + eps) * g
    acc_delta *= rho
    acc_delta += (1 - rho) * delta * delta
    param += -lr * delta
    return param


def adamax_step_xp(xp, param, grad, exp_avg, exp_inf, lr, beta1, beta2, eps, weight_decay, maximize):
    g = _l2(_signed(grad, maximize), param, weight_decay)
    exp_avg[...] = _lerp(exp_avg, g, 1 - beta1)
    exp_inf *= beta2
    xp.maximum(exp_inf, xp.abs(g) + eps, out=exp_inf)
    param += (-lr * exp_avg) / exp_inf
    return param


def _adam_moments(xp, param, grad, exp_avg, exp_avg_sq, beta1, beta2, weight_decay, decay, maximize):
    """NAdam's and RAdam's shared start: weight decay, then exp_avg and exp_avg_sq as Adam's."""
    if decay != 1:
        param *= decay
    g = _l2(_signed(grad, maximize), param, weight_decay)
    exp_avg[...] = _lerp(exp_avg, g, 1 - beta1)
    exp_avg_sq *= beta2
    exp_avg_sq += (1 - beta2) * g * g
    return g


def nadam_step_xp(xp, param, grad, exp_avg, exp_avg_sq, beta1, beta2, eps, weight_decay, decay,
                  bias_correction2, grad_coef, avg_coef, maximize):
    g = _adam_moments(xp, param, grad, exp_avg, exp_avg_sq, beta1, beta2, weight_decay, decay, maximize)
    denom = xp.sqrt(exp_avg_sq / bias_correction2) + eps
    param += grad_coef * g / denom
    param += avg_coef * exp_avg / denom
    return param


def radam_step_xp(xp, param, grad, exp_avg, exp_avg_sq, lr, beta1, beta2, eps, weight_decay, decay,
                  bias_correction1, bias_correction2_sqrt, rect, maximize):
    _adam_moments(xp, param, grad, exp_avg, exp_avg_sq, beta1, beta2, weight_decay, decay, maximize)
    corrected = exp_avg / bias_correction1 * lr
    if rect > 0:  # rho_t > 5: the variance is tractable, the adaptive (rectified) step
        param -= corrected * (bias_correction2_sqrt / (xp.sqrt(exp_avg_sq) + eps)) * rect
    else:
        param -= corrected
    return param


def rprop_step_xp(xp, param, grad, prev, step_size, etaminus, etaplus, step_size_min, step_size_max, maximize):
    g = _signed(grad, maximize)
    sign = xp.sign(g * prev)
    factor = xp.where(sign > 0, etaplus, xp.where(sign < 0, etaminus, xp.where(sign == 0, 1.0, sign)))
    step_size *= factor.astype(step_size.dtype, copy=False)
    xp.clip(step_size, step_size_min, step_size_max, out=step_size)
    g = xp.where(sign < 0, 0, g).astype(param.dtype, copy=False)  # a sign change: no step, no memory
    param -= xp.sign(g) * step_size
    prev[...] = g
    return param


def asgd_step_xp(xp, param, grad, ax, eta, decay, mu, weight_decay, maximize):
    g = _l2(_signed(grad, maximize), param, weight_decay)
    param *= decay
    param += -eta * g
    if mu != 1:
        ax += (param - ax) * mu
    else:
        ax[...] = param
    return param


# ---- the kernel scalars (numba and CUDA C take them in this order, then the flags) ------------------

def _lerp_scalars(f, beta1):
    w = f(1.0 - beta1)
    return w, f(1.0 - float(w))  # 1 - w is exact here (w in [0.5, 1] when it is used)


def _adagrad_scalars(f, lr, eps, weight_decay, maximize):
    return (f(-lr), f(eps), f(weight_decay)), (bool(maximize),)


def _adadelta_scalars(f, lr, rho, eps, weight_decay, maximize):
    return (f(-lr), f(rho), f(1.0 - rho), f(eps), f(weight_decay)), (bool(maximize),)


def _adamax_scalars(f, lr, beta1, beta2, eps, weight_decay, maximize):
    w, omw = _lerp_scalars(f, beta1)
    return (f(-lr), w, omw, f(beta2), f(eps), f(weight_decay)), (bool(maximize), abs(1.0 - beta1) < 0.5)


def _nadam_scalars(f, beta1, beta2, eps, weight_decay, decay, bias_correction2, grad_coef, avg_coef, maximize):
    w, omw = _lerp_scalars(f, beta1)
    return ((w, omw, f(beta2), f(1.0 - beta2), f(eps), f(weight_decay), f(decay), f(bias_correction2),
             f(grad_coef), f(avg_coef)), (bool(maximize), abs(1.0 - beta1) < 0.5))


def _radam_scalars(f, lr, beta1, beta2, eps, weight_decay, decay, bias_correction1, bias_correction2_sqrt, rect,
                   maximize):
    w, omw = _lerp_scalars(f, beta1)
    return ((w, omw, f(beta2), f(1.0 - beta2), f(eps), f(weight_decay), f(decay), f(bias_correction1), f(lr),
             f(bias_correction2_sqrt), f(rect)), (bool(maximize), abs(1.0 - beta1) < 0.5, rect > 0))


def _rprop_scalars(f, etaminus, etaplus, step_size_min, step_size_max, maximize):
    return (f(etaminus), f(etaplus), f(step_size_min), f(step_size_max)), (bool(maximize),)


def _asgd_scalars(f, eta, decay, mu, weight_decay, maximize):
    return (f(-eta), f(decay), f(mu), f(weight_decay)), (bool(maximize), mu != 1)


Step = namedtuple("Step", "state scalars xp")

# op name -> (its state arrays, the kernel scalars, the array-level step)
STEPS = {
    "adagrad_step_": Step(("sum",), _adagrad_scalars, adagrad_step_xp),
    "adadelta_step_": Step(("square_avg", "acc_delta"), _adadelta_scalars, adadelta_step_xp),
    "adamax_step_": Step(("exp_avg", "exp_inf"), _adamax_scalars, adamax_step_xp),
    "nadam_step_": Step(("exp_avg", "exp_avg_sq"), _nadam_scalars, nadam_step_xp),
    "radam_step_": Step(("exp_avg", "exp_avg_sq"), _radam_scalars, radam_step_xp),
    "rprop_step_": Step(("prev", "step_size"), _rprop_scalars, rprop_step_xp),
    "asgd_step_": Step(("ax",), _asgd_scalars, asgd_step_xp),
}


def written(a, name):
    """An array the step writes: used as is (a copy would silently drop the update)."""
    if a is None:
        return None
    if not a.flags.c_contiguous:
        raise ValueError(f"fused optimizer step: '{name}' must be C-contiguous (shape {a.shape}, "
                         f"strides {a.strides}); the optimizer uses its Tensor-op fallback for such parameters")
    return a


# ---- registration ----------------------------------------------------------------------------------
def register(be, xp):
    """The portable tier of the steps above for backend `be` with array namespace `xp` (the op
    table's signatures: param, grad, the state arrays, then the attributes as keywords)."""
    for name, step in STEPS.items():
        be.kernel(name, tier="portable")(_portable(xp, name, step))


def _portable(xp, name, step):
    def kernel(param, grad, *state, **attrs):
        p = written(param, "param")
        arrays = [written(a, n) for a, n in zip(state, step.state)]
        return step.xp(xp, p, grad.astype(p.dtype, copy=False), *arrays, **attrs)

    kernel.__name__ = kernel.__qualname__ = f"{name}portable"
    return kernel
