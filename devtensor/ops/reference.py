"""Plain-numpy references for the fused nn ops (slow, obviously correct; the op tests use them)."""
from __future__ import annotations

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
