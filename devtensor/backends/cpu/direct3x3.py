"""Direct 3x3 stride-1 conv2d loops for few input channels (the first layer of a CNN): the
forward and the weight gradient.

With C_in = 1 the im2col GEMM is (K, 9) @ (9, N*OH*OW): 9 multiply-adds per output, all
the time spent writing 9 column copies of x and in a BLAS call whose inner dimension is 9.
These loops read x once and write y once instead:

* forward: for each (n, k, output row) one vector loop over the row, the 9 taps of each
  input channel from 3 input rows (C_in passes of 9 FMAs, the first one storing);
* weight gradient: gy is laid "wide" (rows of pitch Wp with zero junk columns, one image at
  a time, in L2), so that every tap (i, j) is one flat dot product of length OH*Wp against
  the input plane read from offset i*Wp + j; two output channels share each pass over x
  (18 accumulators in registers).

Padding goes into the shifted copies.  The images are split over the cores with
threads.run_split, in groups taken from a shared counter (see threads.py).
"""
from __future__ import annotations

import numpy as np
from numba import njit

from .threads import fetch_add, run_split, threads

_FM = {"reassoc", "contract", "nsz"}
_J = dict(nogil=True, cache=True, fastmath=_FM, error_model="numpy")


@njit(**_J)
def _narrow(x, n, ph, pw, xn):
    """xn[c, j, hp, ow] = xpad[n, c, hp, ow + j] for the zero-padded input xpad: the three
    column shifts of every input plane, each of pitch OW, so that tap (i, j) of output
    position p = oh*OW + ow reads xn[c, j].flat[p + i*OW] (one flat loop per plane)."""
    C = x.shape[1]
    H = x.shape[2]
    W = x.shape[3]
    Hp = xn.shape[2]
    OW = xn.shape[3]
    for c in range(C):
        for j in range(3):
            for hp in range(Hp):
                h = hp - ph
                inside = 0 <= h < H
                # columns [lo, hi) of the row come from x, the rest are padding; a row
                # outside x is all padding (lo = hi = OW).  Bounds, not branches, pick
                # the views: numba prunes the reference counts of views made unbranched.
                lo = min(OW, max(0, pw - j)) if inside else OW
                hi = max(lo, min(OW, W + pw - j)) if inside else OW
                src = x[n, c, min(max(h, 0), H - 1)]
                dst = xn[c, j, hp]
                d0 = dst[:lo]
                d1 = dst[lo:hi]
                s1 = src[lo + j - pw:hi + j - pw]
                d2 = dst[hi:]
                for q in range(d0.size):
                    d0[q] = 0
                for q in range(d1.size):
                    d1[q] = s1[q]
                for q in range(d2.size):
                    d2[q] = 0


@njit(**_J)
def _taps(xn, c, P, OW):
    """The 9 shifted (length P) views of input plane c: tap (i, j) is xn[c, j] from i*OW."""
    f0 = xn[c, 0].reshape(-1)
    f1 = xn[c, 1].reshape(-1)
    f2 = xn[c, 2].reshape(-1)
    return (f0[0:P], f1[0:P], f2[0:P], f0[OW:OW + P], f1[OW:OW + P], f2[OW:OW + P],
            f0[2 * OW:2 * OW + P], f1[2 * OW:2 * OW + P], f2[2 * OW:2 * OW + P])


@njit(**_J)
def _fwd_pair(t, wp, first, b0, b1, y0, y1):
    """y0, y1 (=|+=) the conv of one input plane with the taps of 2 output channels: each
    of the 9 tap loads (unaligned, most split across cache lines) feeds 2 FMAs; one
    channel per pass is bound by those loads, 4 spill the 36 weights out of registers."""
    x0, x1, x2, x3, x4, x5, x6, x7, x8 = t
    w0 = wp[0]
    w1 = wp[1]
    a0, a1, a2, a3, a4, a5, a6, a7, a8 = w0[0], w0[1], w0[2], w0[3], w0[4], w0[5], w0[6], w0[7], w0[8]
    c0, c1, c2, c3, c4, c5, c6, c7, c8 = w1[0], w1[1], w1[2], w1[3], w1[4], w1[5], w1[6], w1[7], w1[8]
    if first:
        for p in range(y0.size):
            v0, v1, v2, v3, v4, v5, v6, v7, v8 = x0[p], x1[p], x2[p], x3[p], x4[p], x5[p], x6[p], x7[p], x8[p]
            y0[p] = (((a0 * v0 + a1 * v1 + a2 * v2) + (a3 * v3 + a4 * v4 + a5 * v5))
                     + (a6 * v6 + a7 * v7 + a8 * v8)) + b0
            y1[p] = (((c0 * v0 + c1 * v1 + c2 * v2) + (c3 * v3 + c4 * v4 + c5 * v5))
                     + (c6 * v6 + c7 * v7 + c8 * v8)) + b1
    else:
        for p in range(y0.size):
            v0, v1, v2, v3, v4, v5, v6, v7, v8 = x0[p], x1[p], x2[p], x3[p], x4[p], x5[p], x6[p], x7[p], x8[p]
            y0[p] += ((a0 * v0 + a1 * v1 + a2 * v2) + (a3 * v3 + a4 * v4 + a5 * v5)) + (a6 * v6 + a7 * v7 + a8 * v8)
            y1[p] += ((c0 * v0 + c1 * v1 + c2 * v2) + (c3 * v3 + c4 * v4 + c5 * v5)) + (c6 * v6 + c7 * v7 + c8 * v8)


@njit(**_J)
def _fwd_one(t, wk, first, bk, yk):
    x0, x1, x2, x3, x4, x5, x6, x7, x8 = t
    for p in range(yk.size):
        s = ((wk[0] * x0[p] + wk[1] * x1[p] + wk[2] * x2[p]) + (wk[3] * x3[p] + wk[4] * x4[p] + wk[5] * x5[p])
             + (wk[6] * x6[p] + wk[7] * x7[p] + wk[8] * x8[p]))
        if first:
            yk[p] = s + bk
        else:
            yk[p] += s


@njit(**_J)
def _fwd_image(xn, w9, bias, ys):
    """ys[k] = bias[k] + sum_c conv3x3(xpad[c], w9[k, c]), ys (K, OH, OW): one flat loop of
    OH*OW per (2 output channels, input channel) over the shifted planes of _narrow."""
    K = ys.shape[0]
    OW = ys.shape[2]
    C = xn.shape[0]
    P = ys.shape[1] * OW
    yf = ys.reshape(K, P)
    for c in range(C):
        t = _taps(xn, c, P, OW)
        first = c == 0
        k = 0
        while k + 2 <= K:
            _fwd_pair(t, w9[k:k + 2, c], first, bias[k], bias[k + 1], yf[k], yf[k + 1])
            k += 2
        while k < K:
            _fwd_one(t, w9[k, c], first, bias[k], yf[k])
            k += 1


@njit(**_J)
def _fwd_worker(x, w9, bias, ph, pw, per, counter, xn, y):
    """Groups of `per` images taken from the shared counter until none is left."""
    N = x.shape[0]
    g = fetch_add(counter, 1)
    while g * per < N:
        for n in range(g * per, min(N, (g + 1) * per)):
            _narrow(x, n, ph, pw, xn)
            _fwd_image(xn, w9, bias, y[n])
        g = fetch_add(counter, 1)


@njit(**_J)
def _bw_pair(g0, g1, f0, f1, f2, OW, s0, s1):
    """s0[3i + j] += g0 . fj[i*OW:][:P] and s1 likewise for g1: 18 dot products in one pass
    over the 9 shifted views of the plane (P = g0.size)."""
    P = g0.size
    x00, x01, x02 = f0[0:P], f1[0:P], f2[0:P]
    x10, x11, x12 = f0[OW:OW + P], f1[OW:OW + P], f2[OW:OW + P]
    x20, x21, x22 = f0[2 * OW:2 * OW + P], f1[2 * OW:2 * OW + P], f2[2 * OW:2 * OW + P]
    a0, a1, a2, a3, a4, a5, a6, a7, a8 = s0[0], s0[1], s0[2], s0[3], s0[4], s0[5], s0[6], s0[7], s0[8]
    b0, b1, b2, b3, b4, b5, b6, b7, b8 = s1[0], s1[1], s1[2], s1[3], s1[4], s1[5], s1[6], s1[7], s1[8]
    for p in range(P):
        u = g0[p]
        v = g1[p]
        e = x00[p]
        a0 += u * e
        b0 += v * e
        e = x01[p]
        a1 += u * e
        b1 += v * e
        e = x02[p]
        a2 += u * e
        b2 += v * e
        e = x10[p]
        a3 += u * e
        b3 += v * e
        e = x11[p]
        a4 += u * e
        b4 += v * e
        e = x12[p]
        a5 += u * e
        b5 += v * e
        e = x20[p]
        a6 += u * e
        b6 += v * e
        e = x21[p]
        a7 += u * e
        b7 += v * e
        e = x22[p]
        a8 += u * e
        b8 += v * e
    s0[0], s0[1], s0[2], s0[3], s0[4], s0[5], s0[6], s0[7], s0[8] = a0, a1, a2, a3, a4, a5, a6, a7, a8
    s1[0], s1[1], s1[2], s1[3], s1[4], s1[5], s1[6], s1[7], s1[8] = b0, b1, b2, b3, b4, b5, b6, b7, b8


@njit(**_J)
def _bw_one(g0, f0, f1, f2, OW, s0):
    P = g0.size
    for i in range(3):
        for j in range(3):
            f = f0 if j == 0 else (f1 if j == 1 else f2)
            xv = f[i * OW:i * OW + P]
            a = s0[3 * i + j]
            for p in range(P):
                a += g0[p] * xv[p]
            s0[3 * i + j] = a


@njit(**_J)
def _bw_image(gs, xn, S):
    """S[k, c, 3i + j] += gs[k] . xpad[c, i:, j:] for one image."""
    K = gs.shape[0]
    OW = gs.shape[2]
    C = S.shape[1]
    for c in range(C):
        f0 = xn[c, 0].reshape(-1)
        f1 = xn[c, 1].reshape(-1)
        f2 = xn[c, 2].reshape(-1)
        for k in range(0, K - 1, 2):
            _bw_pair(gs[k].reshape(-1), gs[k + 1].reshape(-1), f0, f1, f2, OW, S[k, c], S[k + 1, c])
        if K % 2:
            _bw_one(gs[K - 1].reshape(-1), f0, f1, f2, OW, S[K - 1, c])


@njit(**_J)
def _bw_worker(gy, x, ph, pw, per, counter, xn, Sg):
    """Groups of `per` images from the shared counter, each summed into its own Sg[g] (so
    the result does not depend on which thread took which group)."""
    N = x.shape[0]
    g = fetch_add(counter, 1)
    while g * per < N:
        for n in range(g * per, min(N, (g + 1) * per)):
            _narrow(x, n, ph, pw, xn)
            _bw_image(gy[n], xn, Sg[g])
        g = fetch_add(counter, 1)


def _groups(N):
    """(images per group, groups, threads): ~12 groups per thread, so that a thread woken
    late (20-60 us here) or slowed by another busy thread costs at most a small group."""
    nt = threads()
    per = max(1, -(-N // (12 * nt)))
    groups = -(-N // per)
    return per, groups, min(nt, groups)


def _narrow_buffer(C, H, OW, ph, dtype):
    return np.empty((C, 3, H + 2 * ph, OW), dtype)


def forward(x, w, b, padding):
    """conv2d, 3x3 w, stride 1, dilation 1, groups 1; x and w C-contiguous, one dtype."""
    N, C, H, W = x.shape
    K = w.shape[0]
    ph, pw = padding
    OW = W + 2 * pw - 2
    y = np.empty((N, K, H + 2 * ph - 2, OW), x.dtype)
    w9 = np.ascontiguousarray(w.reshape(K, C, 9))
    bias = np.zeros(K, x.dtype) if b is None else np.ascontiguousarray(b, dtype=x.dtype)
    per, _, nt = _groups(N)
    counter = np.zeros(1, np.int64)
    jobs = [(x, w9, bias, ph, pw, per, counter, _narrow_buffer(C, H, OW, ph, x.dtype), y) for _ in range(nt)]
    run_split(_fwd_worker, jobs)
    return y


def backward_weight(gy, x, w_shape, padding):
    N, C, H, W = x.shape
    K = int(w_shape[0])
    ph, pw = padding
    OW = gy.shape[3]
    per, groups, nt = _groups(N)
    counter = np.zeros(1, np.int64)
    Sg = np.zeros((groups, K, C, 9), x.dtype)
    jobs = [(gy, x, ph, pw, per, counter, _narrow_buffer(C, H, OW, ph, x.dtype), Sg) for _ in range(nt)]
    run_split(_bw_worker, jobs)
    return Sg.sum(0).reshape(K, C, 3, 3)
