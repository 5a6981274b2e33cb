"""gradcheck / gradgradcheck: analytical gradients against central finite differences (float64).

Complex inputs and outputs are checked the PyTorch way: a complex output o with a random complex v stands for
the real loss Re(sum(conj(v) * o)), and a complex input's numerical gradient is the loss's derivative along
its real part plus i times the one along its imaginary part (the conjugate Wirtinger convention)."""
from __future__ import annotations

import numpy as np


class GradcheckError(RuntimeError):
    pass


def _as_tuple(x):
    return x if isinstance(x, tuple) else (x,)


def _random_like(rng, o):
    v = rng.standard_normal(tuple(o.shape))
    return v + 1j * rng.standard_normal(tuple(o.shape)) if o.dtype.is_complex else v


def _numerical_jacobian_vjp(fn, inputs, i, v, eps):
    """d<v, fn(inputs)>/d inputs[i] by central differences, one element at a time."""
    from ..autograd.grad_mode import no_grad
    from ..ops.creation import from_numpy

    x = inputs[i]
    cplx = x.dtype.is_complex
    base = np.array(x.detach()._host(), dtype=np.complex128 if cplx else np.float64, copy=True, order="C")
    grad = np.zeros(base.shape, base.dtype)
    flat = base.reshape(-1)
    for k in range(flat.size):
        for step in ((eps, 1j * eps) if cplx else (eps,)):
            vals = []
            for sgn in (1, -1):
                pert = flat.copy()
                pert[k] += sgn * step
                xi = from_numpy(pert.reshape(base.shape)).to(x.device).requires_grad_(x.requires_grad)
                args = list(inputs)
                args[i] = xi
                outs = _as_tuple(fn(*args))  # grad mode stays on: gradgradcheck differentiates inside fn
                with no_grad():
                    vals.append(sum(float(np.real(np.vdot(vv, np.asarray(o.detach()._host()))))
                                    for o, vv in zip(outs, v) if vv is not None))
            grad.reshape(-1)[k] += (vals[0] - vals[1]) / (2 * eps) * (step / eps)
    return grad


def gradcheck(fn, inputs, *, eps=1e-6, atol=1e-5, rtol=1e-3, raise_exception=True, seed=0):
    """Compare autograd's vector-Jacobian products with finite differences for a random v."""
    from ..autograd.engine import run_backward
    from ..ops.creation import tensor
    from ..tensor import Tensor

    inputs = _as_tuple(inputs)
    diff = [i for i, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad]
    for i in diff:
        if inputs[i].dtype.name not in ("float64", "complex128"):
            raise GradcheckError(f"gradcheck: input {i} is {inputs[i].dtype}; use float64 (complex128) inputs for "
                                 "finite differences")
    outs = _as_tuple(fn(*inputs))
    rng = np.random.default_rng(seed)
    vs = [_random_like(rng, o) if isinstance(o, Tensor) and o.dtype._cat >= 2 else None for o in outs]
    targets = [o for o, v in zip(outs, vs) if v is not None and o.requires_grad]
    gts = [tensor(v, dtype=o.dtype, device=o.device) for o, v in zip(outs, vs) if v is not None and o.requires_grad]
    if targets and diff:
        analytic = run_backward(targets, gts, retain_graph=True, inputs=[inputs[i] for i in diff], api="gradcheck")
    else:  # no output depends differentiably on the inputs: the Jacobian must be zero
        analytic = (None,) * len(diff)
    for i, a in zip(diff, analytic):
        num = _numerical_jacobian_vjp(fn, inputs, i, vs, eps)
        ana = np.zeros_like(num) if a is None else np.asarray(a.detach()._host(), dtype=num.dtype)
        if not np.allclose(ana, num, atol=atol, rtol=rtol):
            err = np.max(np.abs(ana - num))
            msg = (f"gradcheck: Jacobian mismatch for input {i} (shape {tuple(inputs[i].shape)}): max abs error "
                   f"{err:.3g}\nanalytical:\n{ana}\nnumerical:\n{num}")
            if raise_exception:
                raise GradcheckError(msg)
            return False
    return True


def gradgradcheck(fn, inputs, *, eps=1e-6, atol=1e-5, rtol=1e-3, raise_exception=True, seed=1):
    """gradcheck of the function x -> <v, d fn / d x> computed with create_graph=True."""
    from ..autograd.engine import run_backward
    from ..ops.creation import tensor
    from ..tensor import Tensor

    inputs = _as_tuple(inputs)
    diff = [i for i, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad]
    outs0 = _as_tuple(fn(*inputs))
    rng = np.random.default_rng(seed)
    vs = [_random_like(rng, o) for o in outs0 if isinstance(o, Tensor) and o.requires_grad]

    def first_grads(*xs):
        outs = [o for o in _as_tuple(fn(*xs)) if isinstance(o, Tensor) and o.requires_grad]
        gts = [tensor(v, dtype=o.dtype, device=o.device) for o, v in zip(outs, vs)]
        gs = run_backward(outs, gts, create_graph=True, inputs=[xs[i] for i in diff], api="gradgradcheck")
        return tuple(g if g is not None else xs[i] * 0 for g, i in zip(gs, diff))

    return gradcheck(first_grads, inputs, eps=eps, atol=atol, rtol=rtol, raise_exception=raise_exception, seed=seed)
