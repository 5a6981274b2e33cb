"""devtensor.nn.functional: PyTorch's F.* names. Fused primitives where a kernel pays (conv2d,
pooling, softmax, log_softmax, cross-entropy); everything else is a composite of Tensor ops, so
autograd differentiates through it and every backend runs it."""
from __future__ import annotations

import math

from .. import dtypes as _dt
from ..dispatch import call, op_error
from ..ops import nn as _nnops
from ..ops import reference as _R
from ..ops import samples as _S
from ..ops._api import composite
from ..geometry import pair
from ..ops.elementwise import gelu, relu, sigmoid, silu, tanh  # noqa: F401 - re-exported
from ..ops.shape import pad  # noqa: F401 - re-exported
from ..tensor import Tensor


def _pair(v, name, op):
    try:
        return pair(v, name)
    except (TypeError, ValueError) as e:
        raise type(e)(f"{op}: {e}") from None


from ..ops.linalg import linear  # noqa: E402,F401 - one fused op (matmul + bias)


def _check_float(op, *ts):
    for t in ts:
        if t is not None and not t.dtype.is_floating_point:
            raise op_error(op, f"expected floating point tensors, got {t.dtype.name}", ts, TypeError)


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    _check_float("conv2d", input, weight, bias)
    squeeze = input.ndim == 3
    if squeeze:
        input = input.unsqueeze(0)
    if input.ndim != 4 or weight.ndim != 4:
        raise op_error("conv2d", "expected a 4-D input (N, C, H, W) or 3-D (C, H, W) and a 4-D weight "
                       "(out_channels, in_channels/groups, kH, kW)", (input, weight))
    kh, kw = weight.shape[2:]
    if input.dtype is not weight.dtype or (bias is not None and bias.dtype is not input.dtype):
        raise op_error("conv2d", f"input and weight must have the same dtype, got {input.dtype.name} and "
                       f"{weight.dtype.name}", (input, weight), TypeError)
    if isinstance(padding, str):
        if padding == "valid":
            padding = 0
        elif padding == "same":
            d = _pair(dilation, "dilation", "conv2d")
            padding = (d[0] * (kh - 1) // 2, d[1] * (kw - 1) // 2)
            if d[0] * (kh - 1) % 2 or d[1] * (kw - 1) % 2:
                raise NotImplementedError("conv2d: padding='same' with an even kernel extent is not supported")
        else:
            raise ValueError(f"conv2d: padding must be 'valid', 'same', an int or a pair, got {padding!r}")
    s, p, d = (_pair(stride, "stride", "conv2d"), _pair(padding, "padding", "conv2d"),
               _pair(dilation, "dilation", "conv2d"))
    out = call(_nnops.conv2d, (input, weight, bias), {"stride": s, "padding": p, "dilation": d, "groups": groups})
    return out.squeeze(0) if squeeze else out


def _pool_shape(op, input):
    if input.ndim not in (3, 4):
        raise op_error(op, f"expected a 3-D or 4-D input, got shape {list(input.shape)}", (input,))


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    _pool_shape("max_pool2d", input)
    squeeze = input.ndim == 3
    x = input.unsqueeze(0) if squeeze else input
    k = _pair(kernel_size, "kernel_size", "max_pool2d")
    s = _pair(stride if stride not in (None, []) else k, "stride", "max_pool2d")
    p, d = _pair(padding, "padding", "max_pool2d"), _pair(dilation, "dilation", "max_pool2d")
    y, idx = call(_nnops.max_pool2d, (x,), {"kernel_size": k, "stride": s, "padding": p, "dilation": d,
                                            "ceil_mode": bool(ceil_mode)})
    if squeeze:
        y, idx = y.squeeze(0), idx.squeeze(0)
    return (y, idx) if return_indices else y


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    _pool_shape("avg_pool2d", input)
    squeeze = input.ndim == 3
    x = input.unsqueeze(0) if squeeze else input
    k = _pair(kernel_size, "kernel_size", "avg_pool2d")
    s = _pair(stride if stride not in (None, []) else k, "stride", "avg_pool2d")
    p = _pair(padding, "padding", "avg_pool2d")
    y = call(_nnops.avg_pool2d, (x,), {"kernel_size": k, "stride": s, "padding": p, "ceil_mode": bool(ceil_mode),
                                       "count_include_pad": bool(count_include_pad),
                                       "divisor_override": divisor_override})
    return y.squeeze(0) if squeeze else y


def _softmax_dim(op, input, dim):
    if dim is None:
        raise TypeError(f"{op}: dim is required (implicit dim choice is deprecated in PyTorch)")
    n = max(input.ndim, 1)
    if not -n <= dim < n:
        raise IndexError(f"{op}: dimension out of range (expected to be in range of [{-n}, {n - 1}], but got {dim})")
    return dim % n if input.ndim else 0


def softmax(input, dim=None, dtype=None):
    if dtype is not None:
        input = input.to(dtype)
    _check_float("softmax", input)
    return call(_nnops.softmax, (input,), {"dim": _softmax_dim("softmax", input, dim)})


def log_softmax(input, dim=None, dtype=None):
    if dtype is not None:
        input = input.to(dtype)
    _check_float("log_softmax", input)
    return call(_nnops.log_softmax, (input,), {"dim": _softmax_dim("log_softmax", input, dim)})


def dropout(input, p=0.5, training=True, inplace=False):
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if not training or p == 0.0:
        return input
    if p == 1.0:
        return input * 0.0
    from ..ops.creation import rand

    keep = rand(tuple(input.shape), dtype=input.dtype, device=input.device) >= p
    return input * keep.to(input.dtype) * (1.0 / (1.0 - p))


def _reduce(loss, reduction, op, weight_sum=None):
    if reduction == "mean":
        return loss.sum() / weight_sum if weight_sum is not None else loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise ValueError(f"{op}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def _check_target(op, input, target, class_dim=1):
    if not isinstance(target, Tensor):
        raise TypeError(f"{op}: target must be a Tensor, got {type(target).__name__}")
    if target.dtype.is_floating_point:
        return "probs"
    if target.dtype not in (_dt.int64, _dt.int32, _dt.uint8, _dt.int16, _dt.int8):
        raise op_error(op, f"expected target of dtype int64 (class indices) or floating (probabilities), "
                       f"got {target.dtype.name}", (input, target), TypeError)
    exp_shape = tuple(input.shape[:class_dim]) + tuple(input.shape[class_dim + 1:]) if input.ndim > 1 else ()
    if tuple(target.shape) != exp_shape:
        raise op_error(op, f"expected target of shape {list(exp_shape)} for input of shape {list(input.shape)}, "
                       f"got {list(target.shape)}", (input, target), ValueError)
    return "index"


def _check_range(op, target, n_classes, ignore_index):
    """Raise on a class index out of range, on cpu (cross_entropy's fused mean checks inside its
    kernel instead); on devices the kernels give NaN rows rather than read out of bounds, and a
    check here would cost a host sync."""
    if target.device.type != "cpu":
        return
    t = target._data
    bad = (t != ignore_index) & ((t < 0) | (t >= n_classes))
    if bad.any():
        v = int(t[bad].reshape(-1)[0])
        raise IndexError(f"{op}: target {v} is out of bounds for {n_classes} classes")


def _to_rows(input, target):
    """(N, C, d1, ...) -> (N*d1*..., C) rows; target to (N*d1*...)."""
    if input.ndim == 1:
        return input.unsqueeze(0), target.reshape(1)
    if input.ndim == 2:
        return input, target
    c = input.shape[1]
    return input.movedim(1, -1).reshape(-1, c), target.reshape(-1)


@composite(ref=_R.cross_entropy, samples=_S.composite("cross_entropy"), torch="torch.nn.functional.cross_entropy",
           gradgrad=_S.cross_entropy_gradgrad)
def cross_entropy(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None,
                  reduction="mean", label_smoothing=0.0):
    _check_float("cross_entropy", input)
    if input.ndim == 0:
        raise op_error("cross_entropy", "input must have a class dimension (shape (C,), (N, C) or (N, C, ...))",
                       (input,))
    kind = _check_target("cross_entropy", input, target, 1 if input.ndim > 1 else 0)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1], got {label_smoothing}")
    c = input.shape[1] if input.ndim > 1 else input.shape[0]
    if kind == "probs":
        if tuple(target.shape) != tuple(input.shape):
            raise op_error("cross_entropy", "a floating target holds class probabilities and must have the input's "
                           "shape; class-index targets must be int64 (convert labels with .long())", (input, target))
        logp = log_softmax(input, 1 if input.ndim > 1 else 0)
        t = target * (1 - label_smoothing) + label_smoothing / c if label_smoothing else target
        if weight is not None:
            shape = [1] * input.ndim
            shape[1 if input.ndim > 1 else 0] = c
            logp = logp * weight.reshape(shape)
        loss = -(t * logp).sum(1 if input.ndim > 1 else 0)
        return _reduce(loss, reduction, "cross_entropy")
    rows, trows = _to_rows(input, target.long())
    attrs = {"ignore_index": int(ignore_index), "label_smoothing": float(label_smoothing)}
    if weight is None and reduction == "mean":
        # one fused op; its cpu kernel checks the target range in the same pass (IndexError), on devices
        # the kernels give NaN rows instead of reading out of bounds (no host sync)
        return call(_nnops.cross_entropy_mean, (rows, trows), attrs)[0]
    _check_range("cross_entropy", target, c, ignore_index)
    if weight is None:
        loss, _ = call(_nnops.cross_entropy_rows, (rows, trows), attrs)
        return _reduce(loss.reshape(tuple(target.shape)), reduction, "cross_entropy")
    logp = log_softmax(rows, 1)
    return _weighted_nll(logp, trows, weight, ignore_index, reduction, label_smoothing, tuple(target.shape))


def _weighted_nll(logp, t, weight, ignore_index, reduction, label_smoothing, out_shape):
    valid = t != ignore_index
    safe = t.masked_fill(~valid, 0)
    picked = -logp.gather(1, safe.unsqueeze(1)).squeeze(1)
    w = weight[safe] * valid.to(logp.dtype) if weight is not None else valid.to(logp.dtype)
    loss = picked * w
    if label_smoothing:
        c = logp.shape[1]
        smooth = -(logp * (weight.reshape(1, -1) if weight is not None else 1.0)).sum(1) * valid.to(logp.dtype)
        loss = loss * (1 - label_smoothing) + smooth * (label_smoothing / c)
    if reduction == "mean":
        return loss.sum() / w.sum()
    return _reduce(loss.reshape(out_shape), reduction, "nll_loss")


@composite(ref=_R.nll_loss, samples=_S.composite("nll_loss"), torch="torch.nn.functional.nll_loss")
def nll_loss(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None, reduction="mean"):
    _check_float("nll_loss", input)
    if _check_target("nll_loss", input, target, 1 if input.ndim > 1 else 0) == "probs":
        # float labels would be truncated to class indices: a silently wrong loss (PyTorch raises too)
        raise op_error("nll_loss", f"expected target of dtype int64 (class indices), got {target.dtype.name}; "
                       "convert labels with .long()", (input, target))
    c = input.shape[1] if input.ndim > 1 else input.shape[0]
    _check_range("nll_loss", target, c, ignore_index)
    rows, trows = _to_rows(input, target.long())
    return _weighted_nll(rows, trows, weight, ignore_index, reduction, 0.0, tuple(target.shape))


def _same_shape(op, input, target):
    if not isinstance(target, Tensor):
        raise TypeError(f"{op}: target must be a Tensor, got {type(target).__name__}")
    if tuple(input.shape) != tuple(target.shape):
        import warnings

        warnings.warn(f"{op}: using a target size ({list(target.shape)}) that is different to the input size "
                      f"({list(input.shape)}); this will likely lead to incorrect results due to broadcasting",
                      UserWarning, stacklevel=3)


@composite(ref=_R.mse_loss, samples=_S.composite("mse_loss"), torch="torch.nn.functional.mse_loss")
def mse_loss(input, target, size_average=None, reduce=None, reduction="mean"):
    _same_shape("mse_loss", input, target)
    d = input - target
    return _reduce(d * d, reduction, "mse_loss")


@composite(ref=_R.l1_loss, samples=_S.composite("l1_loss"), torch="torch.nn.functional.l1_loss")
def l1_loss(input, target, size_average=None, reduce=None, reduction="mean"):
    _same_shape("l1_loss", input, target)
    return _reduce((input - target).abs(), reduction, "l1_loss")


@composite(ref=_R.smooth_l1_loss, samples=_S.composite("smooth_l1_loss"), torch="torch.nn.functional.smooth_l1_loss")
def smooth_l1_loss(input, target, reduction="mean", beta=1.0):
    from ..ops.elementwise import where

    d = (input - target).abs()
    return _reduce(where(d < beta, 0.5 * d * d / beta, d - 0.5 * beta), reduction, "smooth_l1_loss")


def _check_probabilities(op, input):
    """Inputs outside [0, 1] make log() NaN: a silently useless loss. Checked on cpu only, where it
    costs no device sync (as _check_range)."""
    if input.numel() == 0 or input.device.type != "cpu":
        return
    d = input._data
    bad = (d < 0) | (d > 1)
    if bad.any():
        raise op_error(op, f"all elements of input should be between 0 and 1, got {float(d[bad].reshape(-1)[0])} "
                       "(apply sigmoid first, or use binary_cross_entropy_with_logits on the logits)", (input,))


@composite(ref=_R.binary_cross_entropy, samples=_S.composite("binary_cross_entropy"),
           torch="torch.nn.functional.binary_cross_entropy")
def binary_cross_entropy(input, target, weight=None, size_average=None, reduce=None, reduction="mean"):
    if tuple(input.shape) != tuple(target.shape):
        raise op_error("binary_cross_entropy", f"target size {list(target.shape)} must be the same as input size "
                       f"{list(input.shape)}", (input, target), ValueError)
    _check_float("binary_cross_entropy", input, target)
    _check_probabilities("binary_cross_entropy", input)
    # PyTorch clamps log to >= -100 so that 0 and 1 probabilities give finite losses
    logp = input.log().clamp(min=-100.0)
    log1mp = (1 - input).log().clamp(min=-100.0)
    loss = -(target * logp + (1 - target) * log1mp)
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction, "binary_cross_entropy")


@composite(ref=_R.binary_cross_entropy_with_logits, samples=_S.composite("binary_cross_entropy_with_logits"),
           torch="torch.nn.functional.binary_cross_entropy_with_logits")
def binary_cross_entropy_with_logits(input, target, weight=None, size_average=None, reduce=None,
                                     reduction="mean", pos_weight=None):
    if tuple(input.shape) != tuple(target.shape):
        raise op_error("binary_cross_entropy_with_logits", f"target size {list(target.shape)} must be the same "
                       f"as input size {list(input.shape)}", (input, target), ValueError)
    _check_float("binary_cross_entropy_with_logits", input, target)
    # log(1 + exp(-|x|)) + max(-x, 0): stable for large |x|
    softplus_neg = (-(input.abs())).exp().log1p() + (-input).clamp(min=0.0)
    if pos_weight is not None:
        lw = 1 + (pos_weight - 1) * target
        loss = (1 - target) * input + lw * softplus_neg
    else:
        loss = (1 - target) * input + softplus_neg
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction, "binary_cross_entropy_with_logits")


@composite(ref=_R.one_hot, samples=_S.composite("one_hot"), torch="torch.nn.functional.one_hot",
           differentiable=_S.ONE_HOT_NOGRAD)
def one_hot(tensor, num_classes=-1):
    if tensor.dtype.is_floating_point:
        raise TypeError(f"one_hot: expected an integer tensor of class indices, got {tensor.dtype}")
    if num_classes == -1:
        num_classes = int(tensor.max().item()) + 1 if tensor.numel() else 0
    if tensor.numel() and (int(tensor.min()) < 0 or int(tensor.max()) >= num_classes):
        raise RuntimeError(f"one_hot: class values must be in [0, {num_classes})")
    from ..ops.creation import arange

    classes = arange(num_classes, device=tensor.device)
    return (tensor.long().unsqueeze(-1) == classes).long()


@composite(ref=_R.embedding, samples=_S.composite("embedding"), torch="torch.nn.functional.embedding",
           differentiable=_S.embedding_grad)
def embedding(input, weight, padding_idx=None, max_norm=None, norm_type=2.0, scale_grad_by_freq=False,
              sparse=False):
    if input.dtype.is_floating_point:
        raise TypeError(f"embedding: indices must be an integer tensor, got {input.dtype}")
    if input.numel() and (int(input.max()) >= weight.shape[0] or int(input.min()) < 0):
        raise IndexError(f"embedding: index out of range: indices must be in [0, {weight.shape[0]}), got "
                         f"[{int(input.min())}, {int(input.max())}]")
    out = weight[input]
    if padding_idx is not None and weight.requires_grad:
        mask = (input != padding_idx).unsqueeze(-1).to(weight.dtype)
        out = out * mask + out.detach() * (1 - mask)  # no gradient flows to the padding row
    return out


@composite(ref=_R.layer_norm, samples=_S.composite("layer_norm"), torch="torch.nn.functional.layer_norm")
def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    if isinstance(normalized_shape, int):
        normalized_shape = (normalized_shape,)
    normalized_shape = tuple(normalized_shape)
    if tuple(input.shape[-len(normalized_shape):]) != normalized_shape:
        raise op_error("layer_norm", f"normalized_shape {list(normalized_shape)} does not match the input's "
                       f"trailing dims {list(input.shape)}", (input,))
    dims = tuple(range(input.ndim - len(normalized_shape), input.ndim))
    mu = input.mean(dims, keepdim=True)
    d = input - mu
    var = (d * d).mean(dims, keepdim=True)
    out = d * (var + eps).rsqrt()
    if weight is not None:
        out = out * weight
    if bias is not None:
        out = out + bias
    return out


@composite(ref=_R.batch_norm, samples=_S.composite("batch_norm"), torch="torch.nn.functional.batch_norm")
def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5):
    if input.ndim < 2:
        raise op_error("batch_norm", f"expected at least 2-D input (N, C, ...), got {list(input.shape)}", (input,))
    c = input.shape[1]
    dims = (0,) + tuple(range(2, input.ndim))
    shape = (1, c) + (1,) * (input.ndim - 2)
    if training:
        n = input.numel() // c
        if n <= 1:
            raise ValueError(f"batch_norm: expected more than 1 value per channel when training, got input size "
                             f"{list(input.shape)}")
        mu = input.mean(dims)
        d = input - mu.reshape(shape)
        var = (d * d).mean(dims)
        if running_mean is not None:
            from ..autograd.grad_mode import no_grad

            with no_grad():
                running_mean.mul_(1 - momentum).add_(mu.detach() * momentum)
                running_var.mul_(1 - momentum).add_(var.detach() * (momentum * n / (n - 1)))
        out = d * (var.reshape(shape) + eps).rsqrt()
    else:
        if running_mean is None or running_var is None:
            raise ValueError("batch_norm: running_mean and running_var are required when training=False")
        out = (input - running_mean.reshape(shape)) * (running_var.reshape(shape) + eps).rsqrt()
    if weight is not None:
        out = out * weight.reshape(shape)
    if bias is not None:
        out = out + bias.reshape(shape)
    return out


@composite(ref=_R.leaky_relu, samples=_S.composite("leaky_relu"), torch="torch.nn.functional.leaky_relu")
def leaky_relu(input, negative_slope=0.01, inplace=False):
    from ..ops.elementwise import where

    return where(input >= 0, input, input * negative_slope)


@composite(ref=_R.softplus, samples=_S.composite("softplus"), torch="torch.nn.functional.softplus")
def softplus(input, beta=1.0, threshold=20.0):
    from ..ops.elementwise import where

    bx = input * beta
    return where(bx > threshold, input, (bx.clamp(max=threshold)).exp().log1p() / beta)


@composite(ref=_R.normalize, samples=_S.composite("normalize"), torch="torch.nn.functional.normalize",
           differentiable=_S.normalize_grad)
def normalize(input, p=2.0, dim=1, eps=1e-12):
    return input / input.norm(p, dim, keepdim=True).clamp(min=eps)


def _unused():
    return math


from .losses_extra import *  # noqa: E402,F401,F403  (huber_loss, kl_div, ctc_loss, ... : nn/losses_extra.py)
