"""Plain-numpy references for the fused nn ops and for the composites (slow, obviously correct; the
generated op and composite tests use them)."""
from __future__ import annotations

import math

import numpy as np


def conv2d(x, w, b, stride, padding, dilation, groups):
    n, c, h, wd = x.shape
    k, cg, kh, kw = w.shape
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    oh = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    ow = (wd + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    out = np.zeros((n, k, oh, ow), dtype=np.result_type(x, w))
    kg = k // groups
    for g in range(groups):
        xs = xp[:, g * cg:(g + 1) * cg]
        for i in range(kh):
            for j in range(kw):
                patch = xs[:, :, i * dh: i * dh + sh * (oh - 1) + 1: sh, j * dw: j * dw + sw * (ow - 1) + 1: sw]
                out[:, g * kg:(g + 1) * kg] += np.einsum("nchw,kc->nkhw", patch, w[g * kg:(g + 1) * kg, :, i, j])
    if b is not None:
        out += b.reshape(1, -1, 1, 1)
    return out


def _pool_out(size, k, s, p, d, ceil_mode):
    eff = d * (k - 1) + 1
    num = size + 2 * p - eff
    o = (-(-num // s) if ceil_mode else num // s) + 1
    if ceil_mode and (o - 1) * s >= size + p:
        o -= 1  # the last window must start inside the input or the left padding
    return o


def max_pool2d(x, kernel_size, stride, padding, dilation, ceil_mode):
    n, c, h, w = x.shape
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel_size, stride, padding, dilation
    oh, ow = _pool_out(h, kh, sh, ph, dh, ceil_mode), _pool_out(w, kw, sw, pw, dw, ceil_mode)
    y = np.full((n, c, oh, ow), -np.inf, dtype=x.dtype)
    idx = np.zeros((n, c, oh, ow), dtype=np.int64)
    for i in range(oh):
        for j in range(ow):
            for a in range(kh):
                for b in range(kw):
                    hh, ww = i * sh - ph + a * dh, j * sw - pw + b * dw
                    if 0 <= hh < h and 0 <= ww < w:
                        v = x[:, :, hh, ww]
                        better = v > y[:, :, i, j]
                        y[:, :, i, j] = np.where(better, v, y[:, :, i, j])
                        idx[:, :, i, j] = np.where(better, hh * w + ww, idx[:, :, i, j])
    return y, idx


def avg_pool2d(x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override):
    n, c, h, w = x.shape
    (kh, kw), (sh, sw), (ph, pw) = kernel_size, stride, padding
    oh, ow = _pool_out(h, kh, sh, ph, 1, ceil_mode), _pool_out(w, kw, sw, pw, 1, ceil_mode)
    y = np.zeros((n, c, oh, ow), dtype=x.dtype)
    for i in range(oh):
        for j in range(ow):
            h0, w0 = i * sh - ph, j * sw - pw
            h1, w1 = min(h0 + kh, h + ph), min(w0 + kw, w + pw)
            pool = (h1 - h0) * (w1 - w0)
            hs, ws, he, we = max(h0, 0), max(w0, 0), min(h1, h), min(w1, w)
            s = x[:, :, hs:he, ws:we].sum(axis=(2, 3))
            div = divisor_override or (pool if count_include_pad else (he - hs) * (we - ws))
            y[:, :, i, j] = s / div
    return y


def softmax(x, dim):
    e = np.exp(x - x.max(axis=dim, keepdims=True))
    return e / e.sum(axis=dim, keepdims=True)


def log_softmax(x, dim):
    m = x.max(axis=dim, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=dim, keepdims=True))


def cross_entropy_mean(logits, target, ignore_index, label_smoothing):
    loss, lse = cross_entropy_rows(logits, target, ignore_index, label_smoothing)
    n = np.asarray(np.sum(target != ignore_index), dtype=logits.dtype)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(loss.sum() / n, dtype=logits.dtype), lse, n


def cross_entropy_rows(logits, target, ignore_index, label_smoothing):
    lse = np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1)) + logits.max(1)
    safe = np.where(target == ignore_index, 0, target)
    nll = lse - logits[np.arange(len(target)), safe]
    smooth = lse - logits.mean(1)
    loss = (1 - label_smoothing) * nll + label_smoothing * smooth
    return np.where(target == ignore_index, 0, loss).astype(logits.dtype), lse.astype(logits.dtype)


# ---- composites (devtensor/ops/_api.py COMPOSITES): PyTorch's definitions in plain numpy ------------
# Written from PyTorch's documented formulas, not from devtensor's code; where torch is installed,
# tests/test_composites.py checks each of these against torch as well.

def _axes(dim):
    if dim is None:
        return None
    return tuple(dim) if isinstance(dim, (tuple, list)) else (dim,)


def var(x, dim=None, unbiased=None, keepdim=False, *, correction=None):
    ddof = correction if correction is not None else (0 if unbiased is False else 1)
    ax = _axes(dim)
    n = x.size if ax is None else int(np.prod([x.shape[a] for a in ax]))
    mu = x.mean(axis=ax, keepdims=True)
    ss = ((x - mu) ** 2).sum(axis=ax, keepdims=keepdim)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(ss / x.dtype.type(max(n - ddof, 0)), dtype=x.dtype)


def std(x, dim=None, unbiased=None, keepdim=False, *, correction=None):
    return np.sqrt(var(x, dim, unbiased, keepdim, correction=correction))


def logsumexp(x, dim, keepdim=False):
    ax = tuple(a % x.ndim for a in _axes(dim)) if x.ndim and dim is not None else None
    m = np.max(x, axis=ax, keepdims=True)
    m = np.where(np.isfinite(m), m, 0).astype(x.dtype)
    with np.errstate(divide="ignore"):
        r = np.log(np.exp(x - m).sum(axis=ax, keepdims=True)) + m
    if keepdim:
        return r
    return r.squeeze(axis=ax) if ax is not None else r.reshape(())


def norm(x, p="fro", dim=None, keepdim=False):
    a = np.abs(x)
    ax = _axes(dim)
    if p in ("fro", 2, 2.0):
        return np.sqrt((a * a).sum(axis=ax, keepdims=keepdim))
    if p == np.inf:
        return a.max(axis=ax, keepdims=keepdim)
    if p == -np.inf:
        return a.min(axis=ax, keepdims=keepdim)
    if p == 0:
        return (a != 0).sum(axis=ax, keepdims=keepdim).astype(x.dtype)
    return ((a ** p).sum(axis=ax, keepdims=keepdim)) ** x.dtype.type(1.0 / p)


def sum_to_size(x, *size):
    shape = tuple(size[0]) if len(size) == 1 and isinstance(size[0], (tuple, list)) else tuple(size)
    lead = x.ndim - len(shape)
    r = x.sum(axis=tuple(range(lead))) if lead else x
    return r.sum(axis=tuple(i for i, s in enumerate(shape) if s == 1), keepdims=True).reshape(shape)


_erf = np.vectorize(math.erf, otypes=[np.float64])


def gelu(x, approximate="none"):
    if approximate == "tanh":
        k = math.sqrt(2 / math.pi)
        return (0.5 * x * (1 + np.tanh(k * (x + 0.044715 * x ** 3)))).astype(x.dtype)
    return (0.5 * x * (1 + _erf(x / math.sqrt(2)))).astype(x.dtype)


def silu(x):
    return x / (1 + np.exp(-x))


def square(x):
    return x * x


def lerp(start, end, weight):
    return start + weight * (end - start)


def trunc(x):
    return np.trunc(x)


def divide(a, b, *, rounding_mode=None):
    q = a / b
    if rounding_mode == "floor":
        return np.floor_divide(a, b)
    if rounding_mode == "trunc":
        return np.trunc(q)
    return q


# ---- nn.functional composites -------------------------------------------------------------------

def _reduce(loss, reduction, denom=None):
    if reduction == "none":
        return loss
    if reduction == "sum":
        return np.asarray(loss.sum(), dtype=loss.dtype)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(loss.sum() / (loss.size if denom is None else denom), dtype=loss.dtype)


def _class_nll(logp, target, weight, ignore_index, reduction, label_smoothing):
    """PyTorch's nll_loss (label_smoothing=0) and cross_entropy on log-probabilities `logp` (class dim 1,
    or 0 for a 1-D input) with class-index targets."""
    cdim = 1 if logp.ndim > 1 else 0
    c = logp.shape[cdim]
    w = np.ones(c, dtype=logp.dtype) if weight is None else weight
    wshape = [1] * logp.ndim
    wshape[cdim] = c
    valid = target != ignore_index
    safe = np.where(valid, target, 0)
    picked = np.take_along_axis(logp, np.expand_dims(safe, cdim), cdim).squeeze(cdim)
    wt = w[safe] * valid
    loss = -picked * wt
    if label_smoothing:
        smooth = -(logp * w.reshape(wshape)).sum(cdim) * valid
        loss = (1 - label_smoothing) * loss + (label_smoothing / c) * smooth
    return _reduce(loss.astype(logp.dtype), reduction, wt.sum())


def cross_entropy(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None,
                  reduction="mean", label_smoothing=0.0):
    reduction = _legacy(size_average, reduce, reduction)
    cdim = 1 if input.ndim > 1 else 0
    logp = log_softmax(input, cdim)
    if target.dtype.kind == "f":  # class probabilities
        c = input.shape[cdim]
        t = target * (1 - label_smoothing) + label_smoothing / c
        if weight is not None:
            wshape = [1] * input.ndim
            wshape[cdim] = c
            logp = logp * weight.reshape(wshape)
        return _reduce(-(t * logp).sum(cdim), reduction)
    return _class_nll(logp, target, weight, ignore_index, reduction, label_smoothing)


def nll_loss(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None, reduction="mean"):
    reduction = _legacy(size_average, reduce, reduction)
    return _class_nll(input, target, weight, ignore_index, reduction, 0.0)


def _legacy(size_average, reduce, reduction):
    if size_average is None and reduce is None:
        return reduction
    if reduce is False:
        return "none"
    return "sum" if size_average is False else "mean"


def _weighted(loss, weight, reduction):
    if weight is None:
        return _reduce(loss, reduction)
    loss = loss * weight
    return _reduce(loss, reduction, weight.sum()) if reduction == "mean" else _reduce(loss, reduction)


def mse_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None):
    return _weighted((input - target) ** 2, weight, _legacy(size_average, reduce, reduction))


def l1_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None):
    return _weighted(np.abs(input - target), weight, _legacy(size_average, reduce, reduction))


def smooth_l1_loss(input, target, size_average=None, reduce=None, reduction="mean", beta=1.0):
    reduction = _legacy(size_average, reduce, reduction)
    d = np.abs(input - target)
    if beta == 0:
        return _reduce(d, reduction)
    with np.errstate(divide="ignore", invalid="ignore"):
        return _reduce(np.where(d < beta, 0.5 * d * d / beta, d - 0.5 * beta).astype(input.dtype), reduction)


def binary_cross_entropy(input, target, weight=None, size_average=None, reduce=None, reduction="mean"):
    reduction = _legacy(size_average, reduce, reduction)
    with np.errstate(divide="ignore"):
        logp, log1mp = np.maximum(np.log(input), -100), np.maximum(np.log(1 - input), -100)
    loss = -(target * logp + (1 - target) * log1mp)
    return _reduce(loss if weight is None else loss * weight, reduction)


def binary_cross_entropy_with_logits(input, target, weight=None, size_average=None, reduce=None,
                                     reduction="mean", pos_weight=None):
    reduction = _legacy(size_average, reduce, reduction)
    log_sig, log_1m_sig = -np.logaddexp(0, -input), -np.logaddexp(0, input)
    pw = 1 if pos_weight is None else pos_weight
    loss = -(pw * target * log_sig + (1 - target) * log_1m_sig)
    return _reduce(loss if weight is None else loss * weight, reduction)


def one_hot(tensor, num_classes=-1):
    n = int(tensor.max()) + 1 if num_classes == -1 else num_classes
    return (tensor[..., None] == np.arange(n)).astype(np.int64)


def embedding(input, weight, padding_idx=None, max_norm=None, norm_type=2.0, scale_grad_by_freq=False,
              sparse=False):
    return weight[input]


def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    k = 1 if isinstance(normalized_shape, int) else len(normalized_shape)
    ax = tuple(range(input.ndim - k, input.ndim))
    mu = input.mean(axis=ax, keepdims=True)
    v = ((input - mu) ** 2).mean(axis=ax, keepdims=True)
    out = (input - mu) / np.sqrt(v + eps)
    if weight is not None:
        out = out * weight
    if bias is not None:
        out = out + bias
    return out.astype(input.dtype)


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5):
    ax = (0,) + tuple(range(2, input.ndim))
    shape = (1, input.shape[1]) + (1,) * (input.ndim - 2)
    if training:
        mu, v = input.mean(axis=ax), input.var(axis=ax)
    else:
        mu, v = running_mean, running_var
    out = (input - mu.reshape(shape)) / np.sqrt(v.reshape(shape) + eps)
    if weight is not None:
        out = out * weight.reshape(shape)
    if bias is not None:
        out = out + bias.reshape(shape)
    return out.astype(input.dtype)


def leaky_relu(input, negative_slope=0.01, inplace=False):
    return np.where(input > 0, input, input * negative_slope).astype(input.dtype)


def logsigmoid(input):
    return -np.logaddexp(0, -input)


def softplus(input, beta=1.0, threshold=20.0):
    bx = input * beta
    with np.errstate(over="ignore"):
        return np.where(bx > threshold, input, np.log1p(np.exp(bx)) / beta).astype(input.dtype)


def normalize(input, p=2.0, dim=1, eps=1e-12, out=None):
    n = (np.abs(input) ** p).sum(axis=dim, keepdims=True) ** (1.0 / p)
    return (input / np.maximum(n, eps)).astype(input.dtype)


# ---- ops declared without a reference (tests/test_ops.py UNDECLARED attaches these) -------------------

def max_dim(x, dim, keepdim):
    return np.max(x, axis=dim, keepdims=keepdim), np.argmax(x, axis=dim, keepdims=keepdim)


def min_dim(x, dim, keepdim):
    return np.min(x, axis=dim, keepdims=keepdim), np.argmin(x, axis=dim, keepdims=keepdim)


def scatter_add(x, index, src, dim):
    out = x.copy()
    idx = list(np.indices(index.shape, sparse=True))
    idx[dim] = index
    np.add.at(out, tuple(idx), src[tuple(slice(0, s) for s in index.shape)])
    return out


def conv2d_backward_input(gy, w, stride, padding, dilation, groups, x_shape):
    """The adjoint of conv2d above in x: every tap's patch gets its share of gy back."""
    n, c, h, wd = x_shape
    k, cg, kh, kw = w.shape
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    oh, ow = gy.shape[2:]
    gxp = np.zeros((n, c, h + 2 * ph, wd + 2 * pw), dtype=gy.dtype)
    kg = k // groups
    for g in range(groups):
        for i in range(kh):
            for j in range(kw):
                gxp[:, g * cg:(g + 1) * cg, i * dh: i * dh + sh * (oh - 1) + 1: sh,
                    j * dw: j * dw + sw * (ow - 1) + 1: sw] += np.einsum(
                    "nkhw,kc->nchw", gy[:, g * kg:(g + 1) * kg], w[g * kg:(g + 1) * kg, :, i, j])
    return gxp[:, :, ph:ph + h, pw:pw + wd]


def conv2d_backward_weight(gy, x, stride, padding, dilation, groups, w_shape):
    k, cg, kh, kw = w_shape
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    oh, ow = gy.shape[2:]
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    gw = np.zeros(w_shape, dtype=gy.dtype)
    kg = k // groups
    for g in range(groups):
        for i in range(kh):
            for j in range(kw):
                patch = xp[:, g * cg:(g + 1) * cg, i * dh: i * dh + sh * (oh - 1) + 1: sh,
                           j * dw: j * dw + sw * (ow - 1) + 1: sw]
                gw[g * kg:(g + 1) * kg, :, i, j] = np.einsum("nchw,nkhw->kc", patch, gy[:, g * kg:(g + 1) * kg])
    return gw


def max_pool2d_backward(gy, indices, x_shape):
    n, c, h, w = x_shape
    gx = np.zeros((n, c, h * w), dtype=gy.dtype)
    for a in range(n):
        for b in range(c):
            np.add.at(gx[a, b], indices[a, b].ravel(), gy[a, b].ravel())
    return gx.reshape(x_shape)


def avg_pool2d_backward(gy, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override, x_shape):
    """The adjoint of avg_pool2d above: each window spreads its gy over its cells."""
    n, c, h, w = x_shape
    (kh, kw), (sh, sw), (ph, pw) = kernel_size, stride, padding
    oh, ow = gy.shape[2:]
    gx = np.zeros(x_shape, dtype=gy.dtype)
    for i in range(oh):
        for j in range(ow):
            h0, w0 = i * sh - ph, j * sw - pw
            h1, w1 = min(h0 + kh, h + ph), min(w0 + kw, w + pw)
            pool = (h1 - h0) * (w1 - w0)
            hs, ws, he, we = max(h0, 0), max(w0, 0), min(h1, h), min(w1, w)
            div = divisor_override or (pool if count_include_pad else (he - hs) * (we - ws))
            gx[:, :, hs:he, ws:we] += (gy[:, :, i, j] / div)[:, :, None, None]
    return gx


def cross_entropy_rows_backward(g, logits, lse, target, ignore_index, label_smoothing):
    """d loss_i / d logits_i (softmax - smoothed one-hot), scaled by g (per row, or one 0-d scale)."""
    n, c = logits.shape
    valid = target != ignore_index
    onehot = np.zeros_like(logits)
    onehot[np.arange(n), np.where(valid, target, 0)] = 1
    grad = np.exp(logits - lse[:, None]) - (1 - label_smoothing) * onehot - label_smoothing / c
    scale = g[:, None] if np.ndim(g) else g
    return (np.where(valid[:, None], grad, 0) * scale).astype(logits.dtype)
