"""How an op module publishes its functions: `dt.f(t)` and, with method=True, `t.f()`; and how a
public function written in other ops (a composite) declares itself to the generated test suite."""
from __future__ import annotations

import functools
import inspect
import warnings

from .. import dtypes as _dt
from ..autograd.grad_mode import _grad_state, no_grad
from ..tensor import Tensor

FUNCTIONS: dict = {}

# name -> Composite: the public functions that are not ops of the table (they call ops), each with a
# numpy reference and samples, so tests/test_composites.py generates their forward, gradcheck and
# gradgradcheck tests the way tests/test_ops.py does for the ops
COMPOSITES: dict = {}


# function forms PyTorch documents without out= (views, splits, in-place and random ones, ...): every
# other devtensor.<name> takes out=, as torch.<name> does (the Tensor methods never do)
NO_OUT = frozenset({
    "as_tensor", "tensor", "from_numpy", "from_dlpack", "zeros_like", "ones_like", "empty_like", "full_like",
    "rand_like", "randn_like", "manual_seed", "initial_seed", "reshape", "permute", "transpose", "swapaxes", "t",
    "flatten", "unflatten", "squeeze", "unsqueeze", "narrow", "split", "chunk", "unbind", "movedim", "broadcast_to",
    "clone", "dropout", "dropout_", "conv2d", "max_pool2d", "layer_norm", "batch_norm", "embedding", "relu", "relu_",
    "isnan", "isfinite", "isinf", "masked_fill", "tile", "flip", "is_tensor", "numel", "is_floating_point",
})


def public(fn=None, *, name=None, method=True, function=True, aliases=(), out=None):
    """Export `fn` as devtensor.<name> and (method=True) as Tensor.<name>. The function form takes
    PyTorch's out= keyword (out=None: unless the name is in NO_OUT or fn has an `out` parameter)."""

    def deco(f):
        n = name or f.__name__.rstrip("_")
        for key in (n, *aliases):
            if function:
                takes = out if out is not None else (key not in NO_OUT and not _has_out(f))
                FUNCTIONS[key] = with_out(f, key) if takes else f
            if method:
                setattr(Tensor, key, f)
        return f

    return deco(fn) if fn is not None else deco


def _has_out(f):
    try:
        return "out" in inspect.signature(f).parameters
    except (TypeError, ValueError):
        return False


def with_out(f, name):
    """f with PyTorch's out= keyword: the result is written into `out` (a tuple of tensors for functions
    that return several), which is returned."""

    @functools.wraps(f)
    def g(*args, out=None, **kwargs):
        if out is None:
            return f(*args, **kwargs)
        return write_out(f(*args, **kwargs), out, name)

    g.__wrapped_out__ = f
    return g


def write_out(result, out, name):
    """Write `result` into `out` as PyTorch's out= does: out is resized (with PyTorch's warning when it
    had elements) and cast to its dtype where the result's category allows it (float into int does not);
    no autograd through out= (PyTorch raises too)."""
    if isinstance(result, tuple):
        if not isinstance(out, (tuple, list)) or len(out) != len(result):
            raise TypeError(f"{name}: argument 'out' must be a tuple of {len(result)} Tensors")
        for r, o in zip(result, out):
            write_out(r, o, name)
        return type(result)(out) if type(result) is not tuple else tuple(out)
    if not isinstance(out, Tensor):
        raise TypeError(f"{name}: argument 'out' must be Tensor, not {type(out).__name__}")
    if not isinstance(result, Tensor):
        raise TypeError(f"{name}: does not support out=")
    if _grad_state.enabled and (result._rg or out._rg):
        raise RuntimeError(f"{name}: functions with out=... arguments don't support automatic differentiation, "
                           "but one of the arguments requires grad.")
    if out._device is not result._device:
        raise RuntimeError(f"{name}: expected out tensor to have device {result.device}, but got {out.device} "
                           "instead")
    if result.dtype._cat > out.dtype._cat:
        raise RuntimeError(f"{name}: result type {_torch_name(result.dtype)} can't be cast to the desired output type "
                           f"{_torch_name(out.dtype)}")
    with no_grad():
        if tuple(out._data.shape) != tuple(result._data.shape):
            if out._data.size:
                warnings.warn(f"An output with one or more elements was resized since it had shape "
                              f"{list(out._data.shape)}, which does not match the required output shape "
                              f"{list(result._data.shape)}. This behavior is deprecated, and in a future PyTorch "
                              "release outputs will not be resized unless they have zero elements. You can explicitly "
                              "reuse an out tensor t by resizing it, inplace, to zero elements with t.resize_(0).",
                              UserWarning, stacklevel=3)
            out._data = result.to(out.dtype).clone()._data  # a new storage of the result's shape
            out._bump(name)
        else:
            out.copy_(result)
    return out


def not_a_tensor(name, argname, position, v):
    """PyTorch's TypeError for a non-Tensor (a numpy array, a list) where a Tensor belongs, saying what to do."""
    t = type(v)
    tname = t.__name__ if t.__module__ == "builtins" else f"{t.__module__.split('.')[0]}.{t.__name__}"
    pos = f" (position {position})" if position else ""
    return TypeError(f"{name}: argument '{argname}'{pos} must be Tensor, not {tname} (expected Tensor: convert it "
                     "with devtensor.as_tensor)")


def _torch_name(d):
    return {"float32": "Float", "float64": "Double", "float16": "Half", "bfloat16": "BFloat16", "int64": "Long",
            "int32": "Int", "int16": "Short", "int8": "Char", "uint8": "Byte", "bool": "Bool", "complex64": "ComplexFloat",
            "complex128": "ComplexDouble"}.get(d.name, d.name)


class Composite:
    """A public function written in ops, as the generated suite sees it.

    fn:       the public function itself (called as fn(*args, **kwargs)).
    ref:      numpy reference with fn's signature (numpy arrays where fn takes tensors).
    samples:  dtype -> [((args...), {kwargs}), ...] as for ops (devtensor/ops/samples.py): numpy arrays
              become tensors on the device under test; tensor arguments are positional, kwargs are plain
              values.
    torch:    optional dotted name of the PyTorch function with the same signature ("torch.var",
              "torch.nn.functional.layer_norm"); where torch is installed it is a second reference.
    differentiable: True (gradcheck must hold on every sample with finite values), a string (why it does
              not apply: one_hot's integer output), or a callable (args, kwargs) -> True or such a
              reason, for samples where the gradient is deliberately not the derivative (embedding's
              padding_idx).
    gradgrad: the same for gradgradcheck (cross_entropy: the fused kernel for plain class indices has no
              double backward, the log_softmax path for weights and probabilities has).
    """

    __slots__ = ("name", "fn", "ref", "samples", "torch", "differentiable", "gradgrad")

    def __init__(self, name, fn, ref, samples, torch=None, differentiable=True, gradgrad=True):
        self.name, self.fn, self.ref, self.samples = name, fn, ref, samples
        self.torch, self.differentiable, self.gradgrad = torch, differentiable, gradgrad

    def grad_reason(self, args, kwargs):
        """None where gradcheck must hold on this sample; otherwise why it is not checked."""
        return _reason(self.differentiable, args, kwargs)

    def gradgrad_reason(self, args, kwargs):
        """None where gradgradcheck must hold on this sample; otherwise why it is not checked."""
        return _reason(self.differentiable, args, kwargs) or _reason(self.gradgrad, args, kwargs)

    def __repr__(self):
        return f"<composite {self.name}>"


def _reason(flag, args, kwargs):
    v = flag(args, kwargs) if callable(flag) else flag
    if v is True:
        return None
    if not isinstance(v, str) or not v:
        raise TypeError(f"a composite's differentiable / gradgrad must be True or the reason why not, got {v!r}")
    return v


def composite(fn=None, *, name=None, ref, samples, torch=None, differentiable=True, gradgrad=True):
    """Declare the public function `fn` a composite (see Composite); returns fn unchanged."""

    def deco(f):
        n = name or f.__name__.rstrip("_")
        if n in COMPOSITES:
            raise ValueError(f"composite {n!r} is declared twice")
        COMPOSITES[n] = Composite(n, f, ref, samples, torch, differentiable, gradgrad)
        return f

    return deco(fn) if fn is not None else deco


def method(name, fn):
    setattr(Tensor, name, fn)


def is_tensor(x):
    return isinstance(x, Tensor)
