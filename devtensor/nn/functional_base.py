"""The primitives nn.functional's layer families (functional_attention.py, functional_conv.py,
functional_resample.py, functional_norm.py, functional_activation.py, functional_embedding.py) share:
the fused ops called at the op layer, and argument checks."""
from __future__ import annotations

import numbers

from ..dispatch import call
from ..ops import nn as _nnops
from ..tensor import Tensor


def _conv2d(x, w, b, stride, padding, dilation, groups):
    return call(_nnops.conv2d, (x, w, b), {"stride": tuple(stride), "padding": tuple(padding),
                                           "dilation": tuple(dilation), "groups": int(groups)})


def _max_pool2d(x, k, s, p, d, ceil_mode, return_indices):
    squeeze = x.ndim == 3
    x = x.unsqueeze(0) if squeeze else x
    y, idx = call(_nnops.max_pool2d, (x,), {"kernel_size": tuple(k), "stride": tuple(s), "padding": tuple(p),
                                            "dilation": tuple(d), "ceil_mode": bool(ceil_mode)})
    if squeeze:
        y, idx = y.squeeze(0), idx.squeeze(0)
    return (y, idx) if return_indices else y


def _avg_pool2d(x, k, s, p, ceil_mode=False, count_include_pad=True):
    squeeze = x.ndim == 3
    x = x.unsqueeze(0) if squeeze else x
    y = call(_nnops.avg_pool2d, (x,), {"kernel_size": tuple(k), "stride": tuple(s), "padding": tuple(p),
                                       "ceil_mode": bool(ceil_mode), "count_include_pad": bool(count_include_pad),
                                       "divisor_override": None})
    return y.squeeze(0) if squeeze else y


def _softmax(x, dim):
    return call(_nnops.softmax, (x,), {"dim": dim % max(x.ndim, 1)})


def _dropout(x, p):
    from ..ops.creation import rand

    if p == 1.0:
        return x * 0.0
    keep = (rand(tuple(x.shape), dtype=x.dtype, device=x.device) >= p).to(x.dtype)
    return x * (keep * (1.0 / (1.0 - p)))


def _expect(op, name, v, pos=1):
    if not isinstance(v, Tensor):
        raise TypeError(f"{op}: argument '{name}' (position {pos}) must be Tensor, not {type(v).__name__}")


def _ntuple(v, n, name, op):
    if isinstance(v, numbers.Integral) and not isinstance(v, bool):
        return (int(v),) * n
    try:
        t = tuple(int(x) for x in v)
    except TypeError:
        raise TypeError(f"{op}: {name} must be an int or a tuple of {n} ints, got {v!r}") from None
    if len(t) == 1:
        return t * n
    if len(t) != n:
        raise ValueError(f"{op}: {name} must be an int or a tuple of {n} ints, got {v!r}")
    return t
