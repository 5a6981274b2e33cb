"""Helpers of the distributions: broadcasting parameters, probs <-> logits, lazily computed properties."""
from __future__ import annotations

import numbers

import numpy as np

from .. import dtypes as _dt
from ..ops.creation import tensor as _tensor
from ..tensor import Size, Tensor


def broadcast_all(*values):
    """Tensors of one broadcast shape from tensors and numbers (numbers become tensors of the
    tensors' dtype and device, or of the default dtype)."""
    if not all(isinstance(v, (Tensor, numbers.Number)) for v in values):
        raise ValueError("Input arguments must all be instances of numbers.Number or devtensor.Tensor, got "
                         + ", ".join(type(v).__name__ for v in values))
    like = next((v for v in values if isinstance(v, Tensor)), None)
    dtype = like.dtype if like is not None else _dt.get_default_dtype()
    device = like.device if like is not None else None
    ts = [v if isinstance(v, Tensor) else _tensor(float(v), dtype=dtype, device=device) for v in values]
    shape = np.broadcast_shapes(*(tuple(t.shape) for t in ts))
    return tuple(t if tuple(t.shape) == shape else t.expand(shape) for t in ts)


def finfo_eps(dtype):
    return 2.0 ** -7 if dtype.name == "bfloat16" else float(np.finfo(dtype.name).eps)  # numpy has no bfloat16


def finfo_min(dtype):
    return -3.3895313892515355e38 if dtype.name == "bfloat16" else float(np.finfo(dtype.name).min)


def clamp_probs(probs):
    eps = finfo_eps(probs.dtype)
    return probs.clamp(min=eps, max=1 - eps)


def probs_to_logits(probs, is_binary=False):
    p = clamp_probs(probs)
    return p.log() - (-p).log1p() if is_binary else p.log()


def logits_to_probs(logits, is_binary=False):
    from ..nn.functional import softmax

    return logits.sigmoid() if is_binary else softmax(logits, dim=-1)


def size(shape):
    return Size(tuple(shape))


class lazy_property:
    """Computed at first access and then stored in the instance (so repr shows it from then on)."""

    def __init__(self, fn):
        self.fn = fn
        self.__doc__ = fn.__doc__

    def __get__(self, instance, owner=None):
        if instance is None:
            return self
        value = self.fn(instance)
        instance.__dict__[self.fn.__name__] = value
        return value
