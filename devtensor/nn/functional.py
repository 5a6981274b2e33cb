"""devtensor.nn.functional: PyTorch's F.* names. Fused primitives where a kernel pays (conv2d,
pooling, softmax, log_softmax, cross-entropy); everything else is a composite of Tensor ops, so
autograd differentiates through it and every backend runs it. The primitives that PyTorch also
exports as torch.f / Tensor.f live in devtensor/ops/functional.py (the op layer) and are re-exported."""
from __future__ import annotations

import math
import warnings

from .. import dtypes as _dt
from ..autograd.function import Function
from ..dispatch import call, op_error
from ..ops import elementwise as _E
from ..ops import nn as _nnops
from ..ops import reference as _R
from ..ops import samples as _S
from ..ops._api import composite
from ..ops.elementwise import gelu  # noqa: F401 - re-exported
from ..ops.functional import (avg_pool2d, batch_norm, conv2d, dropout, embedding, layer_norm,  # noqa: F401
                              log_softmax, max_pool2d, softmax)
from ..ops.functional import check_float as _check_float
from ..ops.functional import expect_tensor as _expect_tensor
from ..ops.inplace import apply_inplace as _apply_inplace
from ..ops.linalg import linear  # noqa: F401 - re-exported: one fused op (matmul + bias)
from ..ops.shape import pad  # noqa: F401 - re-exported
from ..tensor import Tensor
from ..ops.autocast import autocast_as as _autocast_as


def sigmoid(input):
    _expect_tensor("sigmoid", "input", 1, input)
    return call(_E.sigmoid, (input,), {})


def tanh(input):
    _expect_tensor("tanh", "input", 1, input)
    return call(_E.tanh, (input,), {})


# ---- activations (PyTorch's inplace= flags modify the input and return it) -------------------------
def relu(input, inplace=False):
    if input.__class__ is not Tensor:
        _expect_tensor("relu", "input", 1, input)
    if input._data.dtype.kind == "b":
        raise RuntimeError("relu: boolean inputs are not supported (as in PyTorch)")
    return input.relu_() if inplace else call(_E.relu, (input,), {})


def relu_(input):
    return relu(input, inplace=True)


def silu(input, inplace=False):
    _expect_tensor("silu", "input", 1, input)
    return _apply_inplace(input, "silu_", _E.silu) if inplace else _E.silu(input)


@composite(ref=_R.leaky_relu, samples=_S.composite("leaky_relu"), torch="torch.nn.functional.leaky_relu")
def leaky_relu(input, negative_slope=0.01, inplace=False):
    # x > 0, not >= 0: the gradient at exactly 0 is negative_slope, as PyTorch's
    def f(x):
        return _E.where(x > 0, x, x * negative_slope)

    return _apply_inplace(input, "leaky_relu_", f) if inplace else f(input)


def leaky_relu_(input, negative_slope=0.01):
    return leaky_relu(input, negative_slope, inplace=True)


def _log_sigmoid(x):
    # min(x, 0) - log1p(exp(-|x|)), both kinks taken from the x >= 0 side: the pieces' one-sided
    # derivatives at 0 then add up to the true derivative 1 - sigmoid(0) = 0.5 (a subgradient of each
    # piece would not), and no exp overflows
    neg = x < 0
    return _E.where(neg, x, 0.0) - _E.log1p(_E.exp(_E.where(neg, x, -x)))


@composite(ref=_R.logsigmoid, samples=_S.composite("logsigmoid"), torch="torch.nn.functional.logsigmoid")
def logsigmoid(input):
    _expect_tensor("logsigmoid", "input", 1, input)
    _check_float("logsigmoid", input)
    return _log_sigmoid(input)


def _legacy_reduction(size_average, reduce, stacklevel=3):
    """PyTorch's deprecated size_average / reduce flags as a reduction string (with PyTorch's warning):
    reduce=False gives one loss per element, size_average=False the sum, otherwise the mean."""
    size_average = True if size_average is None else size_average
    reduce = True if reduce is None else reduce
    ret = ("mean" if size_average else "sum") if reduce else "none"
    warnings.warn(f"size_average and reduce args will be deprecated, please use reduction='{ret}' instead.",
                  UserWarning, stacklevel=stacklevel + 1)
    return ret


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
    # PyTorch's "expected target dtype to be Long or Byte" (and Long only past 2-D inputs: nll_loss2d)
    if target.dtype is not _dt.int64 and (target.dtype is not _dt.uint8 or input.ndim > 2):
        raise op_error(op, f"expected target of dtype int64 or uint8 (class indices) or floating (probabilities), "
                       f"got {target.dtype.name}", (input, target), RuntimeError)
    exp_shape = tuple(input.shape[:class_dim]) + tuple(input.shape[class_dim + 1:]) if input.ndim > 1 else ()
    if tuple(target.shape) != exp_shape:
        raise op_error(op, f"expected target of shape {list(exp_shape)} for input of shape {list(input.shape)}, "
                       f"got {list(target.shape)}", (input, target), ValueError)
    return "index"


def _check_weight(op, weight, c):
    if weight is not None and (weight.ndim != 1 or weight.shape[0] != c):
        raise op_error(op, f"weight tensor should be defined either for all {c} classes or no classes but got "
                       f"weight tensor of shape: {list(weight.shape)}", (weight,), RuntimeError)


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
@_autocast_as("cross_entropy")
def cross_entropy(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None,
                  reduction="mean", label_smoothing=0.0):
    _expect_tensor("cross_entropy", "input", 1, input)
    if size_average is not None or reduce is not None:
        reduction = _legacy_reduction(size_average, reduce)
    _check_float("cross_entropy", input, cls=NotImplementedError)
    if input.ndim == 0:
        raise op_error("cross_entropy", "input must have a class dimension (shape (C,), (N, C) or (N, C, ...))",
                       (input,))
    kind = _check_target("cross_entropy", input, target, 1 if input.ndim > 1 else 0)
    if not 0.0 <= label_smoothing <= 1.0:
        raise RuntimeError(f"cross_entropy: label_smoothing must be between 0.0 and 1.0, got {label_smoothing}")
    c = input.shape[1] if input.ndim > 1 else input.shape[0]
    _check_weight("cross_entropy", weight, c)
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
        # all targets ignored (total weight 0): PyTorch's NaN loss, with a zero gradient, not 0 / 0's NaN one.
        # The gradient is the safe quotient's; the detached term only restores the value (exactly: it is 0
        # whenever the total is not)
        total, s = w.sum(), loss.sum()
        r = s / _E.where(total == 0, 1.0, total)
        return r + (s / total - r).detach()
    return _reduce(loss.reshape(out_shape), reduction, "nll_loss")


@composite(ref=_R.nll_loss, samples=_S.composite("nll_loss"), torch="torch.nn.functional.nll_loss")
@_autocast_as("nll_loss")
def nll_loss(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None, reduction="mean"):
    _expect_tensor("nll_loss", "input", 1, input)
    if size_average is not None or reduce is not None:
        reduction = _legacy_reduction(size_average, reduce)
    _check_float("nll_loss", input, cls=NotImplementedError)
    if _check_target("nll_loss", input, target, 1 if input.ndim > 1 else 0) == "probs":
        # float labels would be truncated to class indices: a silently wrong loss (PyTorch raises too)
        raise op_error("nll_loss", f"expected target of dtype int64 (class indices), got {target.dtype.name}; "
                       "convert labels with .long()", (input, target))
    c = input.shape[1] if input.ndim > 1 else input.shape[0]
    _check_weight("nll_loss", weight, c)
    _check_range("nll_loss", target, c, ignore_index)
    rows, trows = _to_rows(input, target.long())
    return _weighted_nll(rows, trows, weight, ignore_index, reduction, 0.0, tuple(target.shape))


def _same_shape(op, input, target):
    if not isinstance(target, Tensor):
        _expect_tensor(op, "target", 2, target)
    if tuple(input.shape) != tuple(target.shape):
        warnings.warn(f"Using a target size ({list(target.shape)}) that is different to the input size "
                      f"({list(input.shape)}). This will likely lead to incorrect results due to broadcasting. "
                      "Please ensure they have the same size.", UserWarning, stacklevel=3)


def _pointwise_loss(op, input, target, size_average, reduce, reduction, weight, fn):
    _expect_tensor(op, "input", 1, input)
    _same_shape(op, input, target)
    if size_average is not None or reduce is not None:
        reduction = _legacy_reduction(size_average, reduce, stacklevel=4)
    loss = fn(input - target)
    if weight is None:
        return _reduce(loss, reduction, op)
    if tuple(weight.shape) != tuple(input.shape):
        raise ValueError(f"{op}: weights and input must have the same size, got {list(weight.shape)} and "
                         f"{list(input.shape)}")
    loss = loss * weight
    return _reduce(loss, reduction, op, weight.sum() if reduction == "mean" else None)


@composite(ref=_R.mse_loss, samples=_S.composite("mse_loss"), torch="torch.nn.functional.mse_loss")
@_autocast_as("mse_loss")
def mse_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None):
    return _pointwise_loss("mse_loss", input, target, size_average, reduce, reduction, weight, lambda d: d * d)


@composite(ref=_R.l1_loss, samples=_S.composite("l1_loss"), torch="torch.nn.functional.l1_loss")
@_autocast_as("l1_loss")
def l1_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None):
    return _pointwise_loss("l1_loss", input, target, size_average, reduce, reduction, weight, lambda d: d.abs())


@composite(ref=_R.smooth_l1_loss, samples=_S.composite("smooth_l1_loss"), torch="torch.nn.functional.smooth_l1_loss")
@_autocast_as("smooth_l1_loss")
def smooth_l1_loss(input, target, size_average=None, reduce=None, reduction="mean", beta=1.0):
    if beta < 0:
        raise RuntimeError(f"smooth_l1_loss: negative values for beta are not supported, got {beta}")
    if beta == 0.0:  # PyTorch: l1_loss (the quadratic piece would divide by 0)
        return _pointwise_loss("smooth_l1_loss", input, target, size_average, reduce, reduction, None,
                               lambda d: d.abs())

    def piece(d):
        d = d.abs()
        return _E.where(d < beta, 0.5 * d * d / beta, d - 0.5 * beta)

    return _pointwise_loss("smooth_l1_loss", input, target, size_average, reduce, reduction, None, piece)


def _check_probabilities(op, input):
    """Inputs outside [0, 1] (NaN included) make log() NaN: a silently useless loss. Checked on cpu
    only, where it costs no device sync (as _check_range)."""
    if input.numel() == 0 or input.device.type != "cpu":
        return
    d = input._data
    bad = ~((d >= 0) & (d <= 1))
    if bad.any():
        raise op_error(op, f"all elements of input should be between 0 and 1, got {float(d[bad].reshape(-1)[0])} "
                       "(apply sigmoid first, or use binary_cross_entropy_with_logits on the logits)", (input,))


class _BinaryCrossEntropy(Function):
    """-(y log x + (1 - y) log(1 - x)) with each log clamped to >= -100 (finite at 0 and 1), and PyTorch's
    gradients, which are not the clamped expression's: (x - y) / max(x (1 - x), 1e-12) for the input (huge,
    not 0, at exactly 0 or 1) and log(1 - x) - log(x) for the target. Both are Tensor ops, so the rule
    differentiates again (create_graph)."""

    @staticmethod
    def forward(ctx, x, y):
        ctx.save_for_backward(x, y)
        logp = _E.clamp(_E.log(x), min=-100.0)
        log1mp = _E.clamp(_E.log(1 - x), min=-100.0)
        return -(y * logp + (1 - y) * log1mp)

    @staticmethod
    def backward(ctx, g):
        x, y = ctx.saved_tensors
        gx = g * (x - y) / _E.clamp(x * (1 - x), min=1e-12) if ctx.needs_input_grad[0] else None
        gy = g * (_E.log(1 - x) - _E.log(x)) if ctx.needs_input_grad[1] else None
        return gx, gy


@composite(ref=_R.binary_cross_entropy, samples=_S.composite("binary_cross_entropy"),
           torch="torch.nn.functional.binary_cross_entropy")
@_autocast_as("binary_cross_entropy")
def binary_cross_entropy(input, target, weight=None, size_average=None, reduce=None, reduction="mean"):
    _expect_tensor("binary_cross_entropy", "input", 1, input)
    _expect_tensor("binary_cross_entropy", "target", 2, target)
    if size_average is not None or reduce is not None:
        reduction = _legacy_reduction(size_average, reduce)
    if tuple(input.shape) != tuple(target.shape):
        raise op_error("binary_cross_entropy", f"target size {list(target.shape)} must be the same as input size "
                       f"{list(input.shape)}", (input, target), ValueError)
    _check_float("binary_cross_entropy", input, target, cls=RuntimeError)  # PyTorch: "Found dtype Long but expected Float"
    _check_probabilities("binary_cross_entropy", input)
    loss = _BinaryCrossEntropy.apply(input, target)
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction, "binary_cross_entropy")


@composite(ref=_R.binary_cross_entropy_with_logits, samples=_S.composite("binary_cross_entropy_with_logits"),
           torch="torch.nn.functional.binary_cross_entropy_with_logits")
@_autocast_as("binary_cross_entropy_with_logits")
def binary_cross_entropy_with_logits(input, target, weight=None, size_average=None, reduce=None,
                                     reduction="mean", pos_weight=None):
    _expect_tensor("binary_cross_entropy_with_logits", "input", 1, input)
    _expect_tensor("binary_cross_entropy_with_logits", "target", 2, target)
    if size_average is not None or reduce is not None:
        reduction = _legacy_reduction(size_average, reduce)
    if tuple(input.shape) != tuple(target.shape):
        raise op_error("binary_cross_entropy_with_logits", f"target size {list(target.shape)} must be the same "
                       f"as input size {list(input.shape)}", (input, target), ValueError)
    _check_float("binary_cross_entropy_with_logits", input, target, cls=RuntimeError)
    # (1 - y) x - log sigmoid(x): the gradient is sigmoid(x) - y everywhere, 0 included (PyTorch's)
    neg_log_sig = -_log_sigmoid(input)
    if pos_weight is not None:
        neg_log_sig = (1 + (pos_weight - 1) * target) * neg_log_sig
    loss = (1 - target) * input + neg_log_sig
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction, "binary_cross_entropy_with_logits")


@composite(ref=_R.one_hot, samples=_S.composite("one_hot"), torch="torch.nn.functional.one_hot",
           differentiable=_S.ONE_HOT_NOGRAD)
def one_hot(tensor, num_classes=-1):
    _expect_tensor("one_hot", "tensor", 1, tensor)
    if tensor.dtype is not _dt.int64:
        raise RuntimeError(f"one_hot: only applicable to index tensors of type int64, got {tensor.dtype}")
    if num_classes == -1:
        if not tensor.numel():
            raise RuntimeError("one_hot: can not infer the total number of classes from an empty tensor")
        num_classes = int(tensor.max().item()) + 1
    if tensor.numel() and int(tensor.min()) < 0:
        raise RuntimeError("one_hot: class values must be non-negative")
    if tensor.numel() and int(tensor.max()) >= num_classes:
        raise RuntimeError(f"one_hot: class values must be smaller than num_classes ({num_classes})")
    from ..ops.creation import arange

    classes = arange(num_classes, device=tensor.device)
    return (tensor.unsqueeze(-1) == classes).long()


@composite(ref=_R.softplus, samples=_S.composite("softplus"), torch="torch.nn.functional.softplus")
@_autocast_as("softplus")
def softplus(input, beta=1.0, threshold=20.0):
    _expect_tensor("softplus", "input", 1, input)
    bx = input * beta
    above = bx > threshold  # above the threshold: the identity; the inner where keeps exp from overflowing there
    return _E.where(above, input, _E.log1p(_E.exp(_E.where(above, 0.0, bx))) / beta)


@composite(ref=_R.normalize, samples=_S.composite("normalize"), torch="torch.nn.functional.normalize",
           differentiable=_S.normalize_grad)
def normalize(input, p=2.0, dim=1, eps=1e-12, out=None):
    _expect_tensor("normalize", "input", 1, input)
    r = input / input.norm(p, dim, keepdim=True).clamp(min=eps).expand_as(input)
    if out is None:
        return r
    from ..ops._api import write_out

    return write_out(r, out, "normalize")


def _unused():
    return math


from .losses_extra import *  # noqa: E402,F401,F403  (huber_loss, kl_div, ctc_loss, ... : nn/losses_extra.py)
from .functional_extra import *  # noqa: E402,F401,F403  (attention, conv1d / transposed, pooling, resampling, ...)
