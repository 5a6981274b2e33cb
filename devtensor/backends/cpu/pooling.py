"""Max and average pooling over NCHW arrays on the cpu backend (numba loops).

One task per (n, c) plane, so the backwards scatter without races and every plane's result is
the same whichever thread computes it.  Large arrays use parallel=True twins of the loops; the
2x2 / stride-2 max-pool of CNNs, and the max-pool backward, run on threads.py's sleeping threads.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from .threads import fetch_add, run_split, threads

# Elements from which the generic kernels use their parallel=True twins: below this the split
# does not pay for the spinning OpenMP workers it leaves behind (they slow the next BLAS call).
_PAR_MIN_POOL = 1 << 24
# Input elements per thread of the 2x2 max-pool kernel: a thread wake-up costs about as much
# as this many elements.
_POOL2X2_PER_THREAD = 1 << 18


# The window bounds depend on oh (or ow) only: they are tabulated once per call in numpy, so the
# loops do no bounds arithmetic per output.

def _pool_out(n, k, s, p, d, ceil_mode):
    """PyTorch's pooling_output_shape: with ceil_mode the last window must start inside the
    input or the left padding."""
    num = n + 2 * p - d * (k - 1) - 1
    out = (num + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (out - 1) * s >= n + p:
        out -= 1
    return out


def _windows(n_out, n_in, k, s, p, d):
    """Per output position: the first in-bounds tap and the number of in-bounds taps (as
    PyTorch's CPU kernel: start, then step by the dilation while negative)."""
    start = np.arange(n_out, dtype=np.int64) * s - p
    first = np.where(start < 0, start + (-start + d - 1) // d * d, start)
    end = np.minimum(start + (k - 1) * d + 1, n_in)
    count = np.maximum(0, (end - first + d - 1) // d)
    return first, count


@njit(cache=True, error_model="numpy")
def _maxpool_plane(xs, ys, ix, hf, hc, wf, wc, dh, dw):
    # per output, in scan order: value -inf and the index of its first in-bounds tap to
    # start, then a larger value or a NaN replaces them (PyTorch's rule); selects, not
    # branches, as the compare is data-dependent
    W = xs.shape[1]
    for oh in range(ys.shape[0]):
        h0 = hf[oh]
        nh = hc[oh]
        for ow in range(ys.shape[1]):
            w0 = wf[ow]
            nw = wc[ow]
            best = -np.inf
            bi = h0 * W + w0
            for a in range(nh):
                ih = h0 + a * dh
                for b in range(nw):
                    iw = w0 + b * dw
                    v = xs[ih, iw]
                    take = (v > best) | (v != v)
                    best = v if take else best
                    bi = ih * W + iw if take else bi
            ys[oh, ow] = best
            ix[oh, ow] = bi


@njit(cache=True, error_model="numpy")
def _maxpool_fwd(x, hf, hc, wf, wc, dh, dw, y, ix):
    for t in range(x.shape[0]):
        _maxpool_plane(x[t], y[t], ix[t], hf, hc, wf, wc, dh, dw)


@njit(cache=True, parallel=True, error_model="numpy")
def _maxpool_fwd_par(x, hf, hc, wf, wc, dh, dw, y, ix):
    for t in prange(x.shape[0]):
        _maxpool_plane(x[t], y[t], ix[t], hf, hc, wf, wc, dh, dw)


@njit(cache=True, nogil=True, error_model="numpy")
def _maxpool2x2(x, y, ix, per, counter):
    """2x2 windows of stride 2, all inside x (the CNN case): the generic loop's rule (scan
    order, a larger value or a NaN takes over) unrolled, so the row loop vectorizes (the
    generic kernel's data-dependent window loops do not).  Planes in groups of `per` from the
    shared counter (threads.run_split)."""
    W = x.shape[2]
    P = x.shape[0]
    g = fetch_add(counter, 1)
    while g * per < P:
        _maxpool2x2_planes(x, y, ix, g * per, min(P, (g + 1) * per), W)
        g = fetch_add(counter, 1)


@njit(cache=True, nogil=True, error_model="numpy")
def _maxpool2x2_planes(x, y, ix, t0, t1, W):
    for t in range(t0, t1):
        xs = x[t]
        for oh in range(y.shape[1]):
            r0 = xs[2 * oh]
            r1 = xs[2 * oh + 1]
            yo = y[t, oh]
            io = ix[t, oh]
            b0 = 2 * oh * W
            b1 = b0 + W
            for ow in range(y.shape[2]):
                q = 2 * ow
                best = r0[q]
                bi = b0 + q
                v = r0[q + 1]
                take = (v > best) | (v != v)
                best = v if take else best
                bi = b0 + q + 1 if take else bi
                v = r1[q]
                take = (v > best) | (v != v)
                best = v if take else best
                bi = b1 + q if take else bi
                v = r1[q + 1]
                take = (v > best) | (v != v)
                best = v if take else best
                bi = b1 + q + 1 if take else bi
                yo[ow] = best
                io[ow] = bi


@njit(cache=True, error_model="numpy")
def _maxpool_bwd_plane(gys, ixs, gxs):
    n = gxs.size
    for q in range(n):
        gxs[q] = 0
    for q in range(gys.size):
        k = ixs[q]
        if k >= 0 and k < n:  # a window without an in-bounds tap points nowhere
            gxs[k] += gys[q]


@njit(cache=True, error_model="numpy")
def _maxpool_bwd(gy, ix, gx):
    for t in range(gy.shape[0]):
        _maxpool_bwd_plane(gy[t], ix[t], gx[t])


@njit(cache=True, nogil=True, error_model="numpy")
def _maxpool_bwd_groups(gy, ix, gx, per, counter):
    """_maxpool_bwd over planes in groups of `per` from the shared counter (run_split)."""
    P = gy.shape[0]
    g = fetch_add(counter, 1)
    while g * per < P:
        for t in range(g * per, min(P, (g + 1) * per)):
            _maxpool_bwd_plane(gy[t], ix[t], gx[t])
        g = fetch_add(counter, 1)


def max_pool2d_forward(x, kernel, stride, padding, dilation, ceil_mode):
    """(y, indices): indices (int64) are flat h*W + w positions in each input plane, the
    first maximum of each window in scan order (a NaN counts as the maximum)."""
    x = np.ascontiguousarray(x)
    N, C, H, W = x.shape
    kh_, kw_ = int(kernel[0]), int(kernel[1])
    sh, sw = int(stride[0]), int(stride[1])
    ph, pw = int(padding[0]), int(padding[1])
    dh, dw = int(dilation[0]), int(dilation[1])
    OH = _pool_out(H, kh_, sh, ph, dh, ceil_mode)
    OW = _pool_out(W, kw_, sw, pw, dw, ceil_mode)
    y = np.empty((N, C, OH, OW), x.dtype)
    ix = np.empty((N, C, OH, OW), np.int64)
    if y.size == 0:
        return y, ix
    if (kh_, kw_, sh, sw, ph, pw, dh, dw) == (2, 2, 2, 2, 0, 0, 1, 1) and 2 * OH <= H and 2 * OW <= W:
        P = N * C
        nt = min(threads(), max(1, x.size // _POOL2X2_PER_THREAD))
        per = max(1, -(-P // (6 * nt)))
        counter = np.zeros(1, np.int64)
        args = (x.reshape(P, H, W), y.reshape(P, OH, OW), ix.reshape(P, OH, OW), per, counter)
        run_split(_maxpool2x2, [args] * nt)
        return y, ix
    hf, hc = _windows(OH, H, kh_, sh, ph, dh)
    wf, wc = _windows(OW, W, kw_, sw, pw, dw)
    fn = _maxpool_fwd_par if x.size >= _PAR_MIN_POOL and N * C > 1 else _maxpool_fwd
    fn(x.reshape(N * C, H, W), hf, hc, wf, wc, dh, dw, y.reshape(N * C, OH, OW),
       ix.reshape(N * C, OH, OW))
    return y, ix


def max_pool2d_backward(gy, indices, x_shape):
    """gx[n, c].flat[indices[n, c, oh, ow]] += gy[n, c, oh, ow]."""
    gy = np.ascontiguousarray(gy)
    ix = np.ascontiguousarray(indices, dtype=np.int64)
    N, C, H, W = (int(v) for v in x_shape)
    gx = np.empty((N, C, H, W), gy.dtype)
    if gx.size == 0:
        return gx
    P = gy.shape[2] * gy.shape[3]
    args = (gy.reshape(N * C, P), ix.reshape(N * C, P), gx.reshape(N * C, H * W))
    nt = min(threads(), N * C, gx.size // _POOL2X2_PER_THREAD)
    if nt > 1:  # the planes scatter independently: split them over the conv threads
        per = max(1, -(-(N * C) // (6 * nt)))
        run_split(_maxpool_bwd_groups, [(*args, per, np.zeros(1, np.int64))] * nt)
    else:
        _maxpool_bwd(*args)
    return gx


def _avg_windows(n_out, n_in, k, s, p):
    """PyTorch's CPU avg-pool window per output position: in-input bounds [lo, hi) and the
    window length counted over input + padding (for count_include_pad)."""
    start = np.arange(n_out, dtype=np.int64) * s - p
    end = np.minimum(start + k, n_in + p)
    size = end - start
    return np.maximum(start, 0), np.minimum(end, n_in), size


@njit(cache=True, error_model="numpy")
def _avg_div(oh, ow, h0, h1, w0, w1, hsz, wsz, cip, divisor):
    """Divisor of output (oh, ow); 0 for a window with no input pixel (its output is 0)."""
    if h1[oh] <= h0[oh] or w1[ow] <= w0[ow]:
        return 0
    if divisor != 0:  # PyTorch divides by a negative override too
        return divisor
    if cip:
        return hsz[oh] * wsz[ow]
    return (h1[oh] - h0[oh]) * (w1[ow] - w0[ow])


@njit(cache=True, error_model="numpy")
def _avgpool_plane(xs, ys, h0, h1, w0, w1, hsz, wsz, cip, divisor):
    for oh in range(ys.shape[0]):
        for ow in range(ys.shape[1]):
            d = _avg_div(oh, ow, h0, h1, w0, w1, hsz, wsz, cip, divisor)
            if d == 0:
                ys[oh, ow] = 0
                continue
            s = 0.0
            for ih in range(h0[oh], h1[oh]):
                for iw in range(w0[ow], w1[ow]):
                    s += xs[ih, iw]
            ys[oh, ow] = s / d


@njit(cache=True, error_model="numpy")
def _avgpool_fwd(x, h0, h1, w0, w1, hsz, wsz, cip, divisor, y):
    for t in range(x.shape[0]):
        _avgpool_plane(x[t], y[t], h0, h1, w0, w1, hsz, wsz, cip, divisor)


@njit(cache=True, parallel=True, error_model="numpy")
def _avgpool_fwd_par(x, h0, h1, w0, w1, hsz, wsz, cip, divisor, y):
    for t in prange(x.shape[0]):
        _avgpool_plane(x[t], y[t], h0, h1, w0, w1, hsz, wsz, cip, divisor)


@njit(cache=True, error_model="numpy")
def _avgpool_bwd_plane(gys, gxs, h0, h1, w0, w1, hsz, wsz, cip, divisor):
    for ih in range(gxs.shape[0]):
        for iw in range(gxs.shape[1]):
            gxs[ih, iw] = 0
    for oh in range(gys.shape[0]):
        for ow in range(gys.shape[1]):
            d = _avg_div(oh, ow, h0, h1, w0, w1, hsz, wsz, cip, divisor)
            if d == 0:
                continue
            g = gys[oh, ow] / d
            for ih in range(h0[oh], h1[oh]):
                for iw in range(w0[ow], w1[ow]):
                    gxs[ih, iw] += g


@njit(cache=True, error_model="numpy")
def _avgpool_bwd(gy, h0, h1, w0, w1, hsz, wsz, cip, divisor, gx):
    for t in range(gy.shape[0]):
        _avgpool_bwd_plane(gy[t], gx[t], h0, h1, w0, w1, hsz, wsz, cip, divisor)


@njit(cache=True, parallel=True, error_model="numpy")
def _avgpool_bwd_par(gy, h0, h1, w0, w1, hsz, wsz, cip, divisor, gx):
    for t in prange(gy.shape[0]):
        _avgpool_bwd_plane(gy[t], gx[t], h0, h1, w0, w1, hsz, wsz, cip, divisor)


def _avg_tables(H, W, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override):
    kh_, kw_ = int(kernel[0]), int(kernel[1])
    sh, sw = int(stride[0]), int(stride[1])
    ph, pw = int(padding[0]), int(padding[1])
    OH = _pool_out(H, kh_, sh, ph, 1, ceil_mode)
    OW = _pool_out(W, kw_, sw, pw, 1, ceil_mode)
    h0, h1, hsz = _avg_windows(OH, H, kh_, sh, ph)
    w0, w1, wsz = _avg_windows(OW, W, kw_, sw, pw)
    div = int(divisor_override) if divisor_override is not None else 0
    return OH, OW, (h0, h1, w0, w1, hsz, wsz, bool(count_include_pad), div)


def avg_pool2d_forward(x, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override):
    """PyTorch's avg_pool2d (divisor_override: None or a nonzero int)."""
    x = np.ascontiguousarray(x)
    N, C, H, W = x.shape
    OH, OW, tables = _avg_tables(H, W, kernel, stride, padding, ceil_mode, count_include_pad,
                                 divisor_override)
    y = np.empty((N, C, OH, OW), x.dtype)
    if y.size == 0:
        return y
    fn = _avgpool_fwd_par if x.size >= _PAR_MIN_POOL and N * C > 1 else _avgpool_fwd
    fn(x.reshape(N * C, H, W), *tables, y.reshape(N * C, OH, OW))
    return y


def avg_pool2d_backward(gy, x_shape, kernel, stride, padding, ceil_mode, count_include_pad,
                        divisor_override):
    """Gradient of avg_pool2d_forward with respect to x (gy has the forward's output shape)."""
    gy = np.ascontiguousarray(gy)
    N, C, H, W = (int(v) for v in x_shape)
    OH, OW, tables = _avg_tables(H, W, kernel, stride, padding, ceil_mode, count_include_pad,
                                 divisor_override)
    gx = np.empty((N, C, H, W), gy.dtype)
    if gx.size == 0:
        return gx
    fn = _avgpool_bwd_par if gx.size >= _PAR_MIN_POOL and N * C > 1 else _avgpool_bwd
    fn(gy.reshape(N * C, OH, OW), *tables, gx.reshape(N * C, H, W))
    return gx
