"""Direct 3x3 stride-1 conv2d for few input channels (the first layer of a CNN): the forward
as loops, the weight gradient as per-image GEMMs.

With C_in = 1 the im2col GEMM is (K, 9) @ (9, N*OH*OW): 9 multiply-adds per output, all the time
spent writing 9 column copies of x and in a BLAS call whose inner dimension is 9.  The forward
loops read x once and write y once instead: for each (output channel pair, input channel) one
vector loop over the flat output plane, the 9 taps read from 3 column-shifted copies of the input
plane (pitch OW, so that tap (i, j) of output p is copy j at p + i*OW); each output sums its
9*C_in taps in order (fma).  The weight gradient's inner dimension is the long one (the output
positions), so there im2col and BLAS are the fast way (backward_weight).

Padding goes into the shifted copies.  The images are split over the cores with
threads.run_split, in groups fixed by the batch size alone (the weight gradient keeps one
partial sum per group, added up in order: the same bits on any number of threads).
"""
from __future__ import annotations

import itertools

import numpy as np
from numba import njit

from .gemm import fma
from .threads import fetch_add, run_split, scratch, threads

_J = dict(nogil=True, cache=True, error_model="numpy")


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
def _chain(a, t, p, s):
    """s + the 9 taps t[i][p] weighted by a[i], in tap order."""
    x0, x1, x2, x3, x4, x5, x6, x7, x8 = t
    s = fma(a[0], x0[p], s)
    s = fma(a[1], x1[p], s)
    s = fma(a[2], x2[p], s)
    s = fma(a[3], x3[p], s)
    s = fma(a[4], x4[p], s)
    s = fma(a[5], x5[p], s)
    s = fma(a[6], x6[p], s)
    s = fma(a[7], x7[p], s)
    return fma(a[8], x8[p], s)


@njit(**_J)
def _fwd_pair(t, wp, first, b0, b1, y0, y1):
    """y0, y1 = (bias if first else y) + the conv of one input plane with the taps of 2 output
    channels: each tap load (unaligned, most split across cache lines) feeds 2 FMAs; one channel
    per pass is bound by those loads, 4 spill the 36 weights out of registers.  Two loops, not a
    select on `first` inside one: a load under a condition would stop the vectorizer."""
    w0 = wp[0]
    w1 = wp[1]
    a = (w0[0], w0[1], w0[2], w0[3], w0[4], w0[5], w0[6], w0[7], w0[8])
    c = (w1[0], w1[1], w1[2], w1[3], w1[4], w1[5], w1[6], w1[7], w1[8])
    if first:
        for p in range(y0.size):
            y0[p] = _chain(a, t, p, b0)
            y1[p] = _chain(c, t, p, b1)
    else:
        for p in range(y0.size):
            y0[p] = _chain(a, t, p, y0[p])
            y1[p] = _chain(c, t, p, y1[p])


@njit(**_J)
def _fwd_one(t, wk, first, bk, yk):
    a = (wk[0], wk[1], wk[2], wk[3], wk[4], wk[5], wk[6], wk[7], wk[8])
    if first:
        for p in range(yk.size):
            yk[p] = _chain(a, t, p, bk)
    else:
        for p in range(yk.size):
            yk[p] = _chain(a, t, p, yk[p])


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


def _groups(N):
    """(images per group, groups, threads): ~24 groups, so that a thread woken late or slowed by
    another busy thread costs at most a small group.  By the batch size alone: the weight
    gradient sums per group."""
    per = max(1, -(-N // 24))
    groups = -(-N // per)
    return per, groups, min(threads(), groups)


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
    """gw[k, c, i, j] = sum_{n,p} gy[n, k, p] * xpad[n, c, i:, j:].flat[p]: per image one GEMM
    (K, P) @ (P, 9C) against the 9 shifted copies of its input planes.  BLAS runs these dot
    products over p (numba cannot vectorize them without reassociation, see gemm.py), and sums
    each output along p in an order fixed by the shapes, never split over its threads; the
    images' products are added in groups fixed by the batch size, then the groups in order."""
    N, C, H, W = x.shape
    K = int(w_shape[0])
    ph, pw = padding
    OH, OW = gy.shape[2], gy.shape[3]
    P = OH * OW
    per, groups, nt = _groups(N)
    Sg = np.empty((groups, K, C * 9), x.dtype)
    gy3 = gy.reshape(N, K, P)
    counter = itertools.count()  # next() is atomic under the GIL

    def work(job):
        cols = scratch((job, 6), per * C * 9 * P, x.dtype)
        g = next(counter)
        while g < groups:
            n0, n1 = g * per, min(N, (g + 1) * per)
            src = x[n0:n1]
            if ph or pw:
                src = np.pad(src, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
            cm = cols[:(n1 - n0) * C * 9 * P].reshape(n1 - n0, C, 9, OH, OW)
            for i in range(3):
                for j in range(3):
                    cm[:, :, 3 * i + j] = src[:, :, i:i + OH, j:j + OW]
            prods = np.matmul(gy3[n0:n1], cm.reshape(n1 - n0, C * 9, P).transpose(0, 2, 1))
            np.sum(prods, axis=0, out=Sg[g])  # the images in order
            g = next(counter)

    run_split(work, [(j,) for j in range(nt)])
    return Sg.sum(0).reshape(K, C, 3, 3)  # the groups in order
