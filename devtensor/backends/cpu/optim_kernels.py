"""cpu kernels for the fused optimizer steps: adapters onto optim_steps.py's numba loops.

The loops take 1-D contiguous float32/float64 arrays and update param and state in place; these
adapters flatten (a view, never a copy, for the arrays written), make the gradient contiguous and
return the parameter's array, as the op table expects a result."""
from __future__ import annotations

import numpy as np

from .. import optim_portable
from .backend import LazyKernels, cpu


K = LazyKernels(".optim_steps")


_written = optim_portable.written


def _out(a, name):
    """A flat VIEW of an array the kernel writes: a copy would silently drop the update."""
    return None if a is None else _written(a, name).reshape(-1)


def _in(a, like):
    return np.ascontiguousarray(a, dtype=like.dtype).reshape(-1)


@cpu.kernel("adam_step_")
def adam_step_(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, lr, beta1, beta2, eps, weight_decay, decoupled,
               step, amsgrad, maximize):
    # optim_steps flattens (views of these checked C-contiguous arrays) and converts the scalars
    K.adam_step_(_written(param, "param"), np.ascontiguousarray(grad, dtype=param.dtype), _written(exp_avg, "exp_avg"),
                 _written(exp_avg_sq, "exp_avg_sq"), _written(max_exp_avg_sq, "max_exp_avg_sq"), lr, beta1, beta2, eps,
                 weight_decay, decoupled, step, amsgrad, maximize)
    return param


@cpu.kernel("sgd_step_")
def sgd_step_(param, grad, momentum_buffer, lr, momentum, dampening, weight_decay, nesterov, maximize, first_step):
    K.sgd_step_(_out(param, "param"), _in(grad, param), _out(momentum_buffer, "momentum_buffer"), float(lr),
                float(momentum), float(dampening), float(weight_decay), bool(nesterov), bool(maximize),
                bool(first_step))
    return param


@cpu.kernel("rmsprop_step_")
def rmsprop_step_(param, grad, square_avg, momentum_buffer, grad_avg, lr, alpha, eps, weight_decay, momentum,
                  centered):
    K.rmsprop_step_(_out(param, "param"), _in(grad, param), _out(square_avg, "square_avg"),
                    _out(momentum_buffer, "momentum_buffer"), _out(grad_avg, "grad_avg"), float(lr), float(alpha),
                    float(eps), float(weight_decay), float(momentum), bool(centered))
    return param


def _register_step(name, step):
    """Adagrad ... ASGD (backends/optim_portable.py): one adapter shape for all of them; float32 and
    float64 run the numba loops, other dtypes the portable tier (numpy)."""

    @cpu.kernel(name, dtypes=("float32", "float64"))
    def kernel(param, grad, *state, **attrs):
        f = param.dtype.type
        scalars, flags = step.scalars(f, **attrs)
        K.run_step(name, _out(param, "param"), _in(grad, param), [_out(a, n) for a, n in zip(state, step.state)],
                   scalars, flags)
        return param

    kernel.__name__ = kernel.__qualname__ = name


for _name, _step in optim_portable.STEPS.items():
    _register_step(_name, _step)
optim_portable.register(cpu, np)
