"""How an op module publishes its functions: `dt.f(t)` and, with method=True, `t.f()`; and how a
public function written in other ops (a composite) declares itself to the generated test suite."""
from __future__ import annotations

from ..tensor import Tensor

FUNCTIONS: dict = {}

# name -> Composite: the public functions that are not ops of the table (they call ops), each with a
# numpy reference and samples, so tests/test_composites.py generates their forward, gradcheck and
# gradgradcheck tests the way tests/test_ops.py does for the ops
COMPOSITES: dict = {}


def public(fn=None, *, name=None, method=True, function=True, aliases=()):
    """Export `fn` as devtensor.<name> and (method=True) as Tensor.<name>."""

    def deco(f):
        n = name or f.__name__.rstrip("_")
        for key in (n, *aliases):
            if function:
                FUNCTIONS[key] = f
            if method:
                setattr(Tensor, key, f)
        return f

    return deco(fn) if fn is not None else deco


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
