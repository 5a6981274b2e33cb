"""nn.functional's group / instance / local-response normalisation and the channel dropouts
(dropout1d / 2d / 3d, alpha_dropout)."""
from __future__ import annotations

import math
import warnings

from ..autograd.grad_mode import no_grad
from ..ops.autocast import ACTIVE as _AMP
from ..ops.autocast import cast_args as _autocast
from ..ops.functional import batch_norm, in_input_dtype
from ..ops.shape import pad as _pad_constant
from .functional_base import _avg_pool2d, _expect


def group_norm(input, num_groups, weight=None, bias=None, eps=1e-5):
    """F.group_norm: statistics over each group of channels and the spatial dims (biased variance)."""
    op = "group_norm"
    if _AMP[0]:
        input, weight, bias = _autocast(op, input, weight, bias)
    _expect(op, "input", input)
    if input.ndim < 2:
        raise RuntimeError(f"{op}: Expected at least 2 dimensions for input tensor but received {input.ndim}")
    n, c = input.shape[0], input.shape[1]
    if num_groups <= 0 or c % num_groups:
        raise RuntimeError(f"{op}: Expected number of channels in input to be divisible by num_groups, but got input "
                           f"of shape {list(input.shape)} and num_groups={num_groups}")
    x = input.reshape(n, num_groups, -1)
    mu = x.mean(-1, keepdim=True)
    d = x - mu
    var = (d * d).mean(-1, keepdim=True)
    out = (d * (var + eps).rsqrt()).reshape(tuple(input.shape))
    shape = (1, c) + (1,) * (input.ndim - 2)
    if weight is not None:
        out = out * weight.reshape(shape)
    if bias is not None:
        out = out + bias.reshape(shape)
    return in_input_dtype(out, input)


def instance_norm(input, running_mean=None, running_var=None, weight=None, bias=None, use_input_stats=True,
                  momentum=0.1, eps=1e-5):
    """F.instance_norm: each (sample, channel) plane normalised by its own statistics; running statistics
    (the batch average of the planes') updated when given, used instead when use_input_stats=False."""
    op = "instance_norm"
    _expect(op, "input", input)
    if input.ndim < 3:
        raise RuntimeError(f"{op}: expected an input of at least 3 dimensions (N, C, *), got {list(input.shape)}")
    n, c = input.shape[0], input.shape[1]
    shape = (1, c) + (1,) * (input.ndim - 2)
    dims = tuple(range(2, input.ndim))
    if not use_input_stats:  # the running statistics, per channel: batch norm's eval form
        if running_mean is None or running_var is None:
            raise ValueError("Expected running_mean and running_var to be defined when use_input_stats is false")
        return batch_norm(input, running_mean, running_var, weight, bias, False, eps=eps)
    count = 1
    for s in input.shape[2:]:
        count *= s
    if count <= 1:
        raise ValueError(f"Expected more than 1 spatial element when training, got input size {list(input.shape)}")
    mu = input.mean(dims, keepdim=True)
    d = input - mu
    var = (d * d).mean(dims, keepdim=True)
    out = d * (var + eps).rsqrt()
    if running_mean is not None and running_var is not None:
        with no_grad():
            m = mu.detach().reshape(n, c).mean(0)
            v = var.detach().reshape(n, c).mean(0) * (count / (count - 1))
            running_mean.mul_(1 - momentum).add_(m * momentum)
            running_var.mul_(1 - momentum).add_(v * momentum)
    if weight is not None:
        out = out * weight.reshape(shape)
    if bias is not None:
        out = out + bias.reshape(shape)
    return out


def local_response_norm(input, size, alpha=1e-4, beta=0.75, k=1.0):
    """F.local_response_norm: x / (k + alpha / size * sum of x^2 over `size` neighbouring channels)^beta."""
    op = "local_response_norm"
    _expect(op, "input", input)
    if input.ndim < 3:
        raise ValueError(f"Expected 3D or higher dimensionality input (got {input.ndim} dimensions)")
    sq = (input * input).unsqueeze(1)
    lead = tuple(input.shape)
    sq = sq.reshape(lead[0], 1, lead[1], -1)
    sq = _pad_constant(sq, (0, 0, size // 2, (size - 1) // 2))
    div = _avg_pool2d(sq, (size, 1), (1, 1), (0, 0)).reshape(lead)
    div = (div * alpha + k) ** beta
    return input / div


def _channel_dropout(op, input, p, training, inplace, spatial):
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if not training or p == 0.0 or input.numel() == 0:
        return input
    batched = input.ndim == spatial + 2
    shape = (tuple(input.shape[:2]) if batched else tuple(input.shape[:1])) + (1,) * spatial
    from ..ops.creation import rand

    keep = (rand(shape, dtype=input.dtype, device=input.device) >= p).to(input.dtype)
    keep = keep * (0.0 if p == 1.0 else 1.0 / (1.0 - p))
    return input.mul_(keep) if inplace else input * keep


def dropout1d(input, p=0.5, training=True, inplace=False):
    """Zero whole channels of (N, C, L) or (C, L) inputs with probability p (scaled by 1 / (1 - p))."""
    _expect("dropout1d", "input", input)
    if input.ndim not in (2, 3):
        raise RuntimeError(f"dropout1d: Expected 2D or 3D input, but received a {input.ndim}D input. Note that "
                           "dropout1d exists to provide channel-wise dropout on inputs with 1 spatial dimension, a "
                           "channel dimension, and an optional batch dimension (i.e. 2D or 3D inputs).")
    return _channel_dropout("dropout1d", input, p, training, inplace, 1)


def dropout2d(input, p=0.5, training=True, inplace=False):
    """Zero whole channels of (N, C, H, W) or (C, H, W) inputs with probability p."""
    _expect("dropout2d", "input", input)
    if input.ndim not in (3, 4):
        warnings.warn(f"dropout2d: Received a {input.ndim}-D input to dropout2d, which is deprecated and will result "
                      "in an error in a future release. To retain the behavior and silence this warning, please use "
                      "dropout instead. Note that dropout2d exists to provide channel-wise dropout on inputs with 2 "
                      "spatial dimensions, a channel dimension, and an optional batch dimension (i.e. 3D or 4D "
                      "inputs).", stacklevel=2)
    if input.ndim == 3:
        warnings.warn("dropout2d: Received a 3D input to dropout2d and assuming that channel-wise 1D dropout behavior "
                      "is desired - input is interpreted as shape (N, C, L), where C is the channel dim. This behavior "
                      "will change in a future release to interpret the input as one without a batch dimension, i.e. "
                      "shape (C, H, W). To maintain the 1D channel-wise dropout behavior, please switch to using "
                      "dropout1d instead.", stacklevel=2)
        return _channel_dropout("dropout2d", input, p, training, inplace, 1)
    return _channel_dropout("dropout2d", input, p, training, inplace, 2)


def dropout3d(input, p=0.5, training=True, inplace=False):
    _expect("dropout3d", "input", input)
    if input.ndim not in (4, 5):
        warnings.warn(f"dropout3d: Received a {input.ndim}-D input to dropout3d, which is deprecated and will result "
                      "in an error in a future release.", stacklevel=2)
    return _channel_dropout("dropout3d", input, p, training, inplace, 3 if input.ndim == 5 else input.ndim - 1)


def alpha_dropout(input, p=0.5, training=False, inplace=False):
    """SELU's dropout: dropped units take SELU's negative saturation, then an affine map keeps the mean
    and variance."""
    _expect("alpha_dropout", "input", input)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if not training or p == 0.0 or input.numel() == 0:
        return input
    if p == 1.0:
        return input * 0.0
    from ..ops.creation import rand

    alpha_p = -1.7580993408473766  # -scale * alpha of SELU
    keep = (rand(tuple(input.shape), dtype=input.dtype, device=input.device) >= p).to(input.dtype)
    a = 1.0 / math.sqrt((alpha_p * alpha_p * p + 1) * (1 - p))
    b = -a * alpha_p * p
    out = (input * keep + alpha_p * (1 - keep)) * a + b
    return input.copy_(out) if inplace else out


__all__ = sorted(n for n, v in list(globals().items())
                 if not n.startswith("_") and callable(v) and getattr(v, "__module__", None) == __name__)
