"""nn.functional's remaining activations (elu, selu, celu, hardtanh, relu6, hardswish, mish, prelu,
rrelu, softmin, threshold, glu, the shrinks, gumbel_softmax, ...) in elementwise ops."""
from __future__ import annotations

import warnings

from ..ops import elementwise as _E
from ..ops.autocast import ACTIVE as _AMP
from ..ops.autocast import cast_args as _autocast
from .functional_base import _expect, _softmax


def _act_inplace(input, out, inplace):
    return input.copy_(out) if inplace else out


def _float_input(op, input):
    _expect(op, "input", input)
    if not input.dtype.is_floating_point:
        raise RuntimeError(f"{op}: expected a floating point input, got {input.dtype.name}")


def elu(input, alpha=1.0, inplace=False):
    _float_input("elu", input)
    return _act_inplace(input, _E.where(input > 0, input, (input.exp() - 1) * alpha), inplace)


def elu_(input, alpha=1.0):
    return elu(input, alpha, inplace=True)


_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


def selu(input, inplace=False):
    _float_input("selu", input)
    out = _E.where(input > 0, input * _SELU_SCALE, (input.exp() - 1) * (_SELU_ALPHA * _SELU_SCALE))
    return _act_inplace(input, out, inplace)


def selu_(input):
    return selu(input, inplace=True)


def celu(input, alpha=1.0, inplace=False):
    _float_input("celu", input)
    if alpha == 0:
        raise RuntimeError("ZeroDivisionError: alpha of celu must not be 0")
    return _act_inplace(input, _E.where(input > 0, input, ((input / alpha).exp() - 1) * alpha), inplace)


def celu_(input, alpha=1.0):
    return celu(input, alpha, inplace=True)


def softsign(input):
    _float_input("softsign", input)
    return input / (input.abs() + 1)


def hardtanh(input, min_val=-1.0, max_val=1.0, inplace=False):
    _expect("hardtanh", "input", input)
    if min_val > max_val:
        raise ValueError("min_val cannot be greater than max_val")
    # the gradient is zero at the bounds (PyTorch's hardtanh_backward tests min < x < max)
    out = _E.where(input <= min_val, min_val, _E.where(input >= max_val, max_val, input))
    return _act_inplace(input, out.to(input.dtype), inplace)


def hardtanh_(input, min_val=-1.0, max_val=1.0):
    return hardtanh(input, min_val, max_val, inplace=True)


def relu6(input, inplace=False):
    return hardtanh(input, 0.0, 6.0, inplace)


def hardsigmoid(input, inplace=False):
    _float_input("hardsigmoid", input)
    out = _E.where(input <= -3, 0.0, _E.where(input >= 3, 1.0, input / 6 + 0.5))
    return _act_inplace(input, out, inplace)


def hardswish(input, inplace=False):
    _float_input("hardswish", input)
    # PyTorch's backward: 0 at and below -3, 1 at and above 3 (x / 3 + 1/2 strictly between)
    out = _E.where(input <= -3, 0.0, _E.where(input >= 3, input, input * (input + 3) / 6))
    return _act_inplace(input, out, inplace)


def _softplus(x):
    above = x > 20.0
    return _E.where(above, x, _E.where(above, 0.0, x).exp().log1p())


def mish(input, inplace=False):
    _float_input("mish", input)
    return _act_inplace(input, input * _softplus(input).tanh(), inplace)


def prelu(input, weight):
    """x where x > 0, weight * x elsewhere; weight has one value or one per channel (dim 1, or 0 for 1-D)."""
    if _AMP[0]:
        input, weight = _autocast("prelu", input, weight)
    _expect("prelu", "input", input)
    _expect("prelu", "weight", weight, 2)
    n = weight.numel()
    if n != 1:
        c = input.shape[1] if input.ndim >= 2 else (input.shape[0] if input.ndim == 1 else 1)
        if n != c:
            raise RuntimeError(f"prelu: Mismatch of parameter numbers and input channel size. Found parameter numbers "
                               f"= {n} and channel size = {c}.")
        shape = [1] * input.ndim
        shape[1 if input.ndim >= 2 else 0] = n
        w = weight.reshape(shape)
    else:
        w = weight.reshape(())
    return _E.where(input > 0, input, input * w)


def rrelu(input, lower=1.0 / 8, upper=1.0 / 3, training=False, inplace=False):
    """Leaky ReLU with a random negative slope in [lower, upper] per element when training, their
    mean otherwise."""
    _float_input("rrelu", input)
    if training:
        from ..ops.creation import rand

        slope = rand(tuple(input.shape), dtype=input.dtype, device=input.device) * (upper - lower) + lower
    else:
        slope = (lower + upper) / 2
    return _act_inplace(input, _E.where(input > 0, input, input * slope), inplace)


def rrelu_(input, lower=1.0 / 8, upper=1.0 / 3, training=False):
    return rrelu(input, lower, upper, training, inplace=True)


def softmin(input, dim=None, _stacklevel=3, dtype=None):
    _expect("softmin", "input", input)
    if dim is None:
        warnings.warn("Implicit dimension choice for softmin has been deprecated. Change the call to include dim=X as "
                      "an argument.", stacklevel=_stacklevel)
        dim = 0 if input.ndim in (0, 1, 3) else 1
    if dtype is not None:
        input = input.to(dtype)
    return _softmax(-input, dim)


def threshold(input, threshold, value, inplace=False):
    _expect("threshold", "input", input)
    return _act_inplace(input, _E.where(input > threshold, input, value).to(input.dtype), inplace)


def threshold_(input, threshold_, value):
    return threshold(input, threshold_, value, inplace=True)


def glu(input, dim=-1):
    """a * sigmoid(b), a and b the two halves of `dim`."""
    _expect("glu", "input", input)
    if input.ndim == 0:
        raise RuntimeError("glu does not support scalars because halving size must be even")
    n = input.shape[dim]
    if n % 2:
        raise RuntimeError(f"Halving dimension must be even, but dimension {dim % input.ndim} is size {n}")
    a, b = input.chunk(2, dim)
    return a * b.sigmoid()


def tanhshrink(input):
    _float_input("tanhshrink", input)
    return input - input.tanh()


def softshrink(input, lambd=0.5):
    _float_input("softshrink", input)
    if lambd < 0:
        raise RuntimeError(f"lambda must be greater or equal to 0, but found to be {lambd}.")
    return _E.where(input > lambd, input - lambd, _E.where(input < -lambd, input + lambd, 0.0))


def hardshrink(input, lambd=0.5):
    _float_input("hardshrink", input)
    return _E.where((input > lambd) | (input < -lambd), input, 0.0)



def gumbel_softmax(logits, tau=1, hard=False, eps=1e-10, dim=-1):
    """softmax((logits + g) / tau) with g ~ Gumbel(0, 1) drawn per element; hard=True returns the
    one-hot of its argmax in the forward pass and the soft sample's gradient (straight-through)."""
    _float_input("gumbel_softmax", logits)
    if eps != 1e-10:
        warnings.warn("`eps` parameter is deprecated and has no effect.", stacklevel=2)
    from ..ops.creation import rand, zeros_like

    u = rand(tuple(logits.shape), dtype=logits.dtype, device=logits.device)
    # g = -log(E), E = -log(1 - u) ~ Exponential(1); E is kept above 0 so g stays finite
    e = (-(-u).log1p()).clamp(min=_E_TINY[logits.dtype.name])
    y_soft = _softmax((logits - e.log()) / tau, dim)
    if not hard:
        return y_soft
    y_hard = zeros_like(logits).scatter_(dim, y_soft.argmax(dim, keepdim=True), 1.0)
    return y_hard - y_soft.detach() + y_soft


# the smallest normal number of each float dtype
_E_TINY = {"float16": 6.103515625e-05, "bfloat16": 1.1754943508222875e-38, "float32": 1.1754943508222875e-38,
           "float64": 2.2250738585072014e-308}

__all__ = sorted(n for n, v in list(globals().items())
                 if not n.startswith("_") and callable(v) and getattr(v, "__module__", None) == __name__)
