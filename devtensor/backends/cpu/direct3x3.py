"""Direct 3x3 stride-1 conv2d loops for few input channels (the first layer of a CNN): the
forward and the weight gradient.

With C_in = 1 the im2col GEMM is (K, 9) @ (9, N*OH*OW): 9 multiply-adds per output, all the time
spent writing 9 column copies of x and in a BLAS call whose inner dimension is 9.  These loops
read x once and write y once instead:

* forward: for each (output channel pair, input channel) one vector loop over the flat output
  plane, the 9 taps read from 3 column-shifted copies of the input plane (pitch OW, so that tap
  (i, j) of output p is copy j at p + i*OW); each output sums its 9*C_in taps in order (fma);
* weight gradient: S[c, tap, :] += sum_p tap(c)[p] * gy[:, p] with the vector loop over the
  output channels k (gy transposed to (P, K) per image) and the positions p summed in order, 4
  per pass: a dot product over p would need reassociation to vectorize (see gemm.py).

Padding goes into the shifted copies.  The images are split over the cores with
threads.run_split, in groups fixed by the batch size alone (the weight gradient keeps one
partial sum per group, added up in order: the same bits on any number of threads).
"""
from __future__ import annotations

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


@njit(**_J)
def _transpose(a, at):
    """at (P, K) = a (K, P)."""
    K = a.shape[0]
    for p in range(a.shape[1]):
        row = at[p]
        for k in range(K):
            row[k] = a[k, p]


@njit(**_J)
def _bw_plane(f0, f1, f2, OW, gT, St):
    """St[3i + j, :] += sum_p fj[i*OW + p] * gT[p, :] for the 9 taps of one input plane (its
    shifted copies f0, f1, f2): the loop runs along the output channels, p goes in order, 4 per
    pass."""
    P = gT.shape[0]
    s0, s1, s2, s3, s4, s5, s6, s7, s8 = St[0], St[1], St[2], St[3], St[4], St[5], St[6], St[7], St[8]
    K = s0.size
    p = 0
    while p + 4 <= P:
        g0 = gT[p]
        g1 = gT[p + 1]
        g2 = gT[p + 2]
        g3 = gT[p + 3]
        a = f0[p:p + 4]
        b = f1[p:p + 4]
        c = f2[p:p + 4]
        d = f0[OW + p:OW + p + 4]
        e = f1[OW + p:OW + p + 4]
        f = f2[OW + p:OW + p + 4]
        g = f0[2 * OW + p:2 * OW + p + 4]
        h = f1[2 * OW + p:2 * OW + p + 4]
        q = f2[2 * OW + p:2 * OW + p + 4]
        a0, a1, a2, a3 = a[0], a[1], a[2], a[3]
        b0, b1, b2, b3 = b[0], b[1], b[2], b[3]
        c0, c1, c2, c3 = c[0], c[1], c[2], c[3]
        d0, d1, d2, d3 = d[0], d[1], d[2], d[3]
        e0, e1, e2, e3 = e[0], e[1], e[2], e[3]
        f0_, f1_, f2_, f3_ = f[0], f[1], f[2], f[3]
        h0_, h1_, h2_, h3_ = g[0], g[1], g[2], g[3]
        i0, i1, i2, i3 = h[0], h[1], h[2], h[3]
        j0, j1, j2, j3 = q[0], q[1], q[2], q[3]
        for k in range(K):
            u0 = g0[k]
            u1 = g1[k]
            u2 = g2[k]
            u3 = g3[k]
            s0[k] = fma(a3, u3, fma(a2, u2, fma(a1, u1, fma(a0, u0, s0[k]))))
            s1[k] = fma(b3, u3, fma(b2, u2, fma(b1, u1, fma(b0, u0, s1[k]))))
            s2[k] = fma(c3, u3, fma(c2, u2, fma(c1, u1, fma(c0, u0, s2[k]))))
            s3[k] = fma(d3, u3, fma(d2, u2, fma(d1, u1, fma(d0, u0, s3[k]))))
            s4[k] = fma(e3, u3, fma(e2, u2, fma(e1, u1, fma(e0, u0, s4[k]))))
            s5[k] = fma(f3_, u3, fma(f2_, u2, fma(f1_, u1, fma(f0_, u0, s5[k]))))
            s6[k] = fma(h3_, u3, fma(h2_, u2, fma(h1_, u1, fma(h0_, u0, s6[k]))))
            s7[k] = fma(i3, u3, fma(i2, u2, fma(i1, u1, fma(i0, u0, s7[k]))))
            s8[k] = fma(j3, u3, fma(j2, u2, fma(j1, u1, fma(j0, u0, s8[k]))))
        p += 4
    while p < P:
        g0 = gT[p]
        a0, b0, c0 = f0[p], f1[p], f2[p]
        d0, e0, f0_ = f0[OW + p], f1[OW + p], f2[OW + p]
        h0_, i0, j0 = f0[2 * OW + p], f1[2 * OW + p], f2[2 * OW + p]
        for k in range(K):
            u0 = g0[k]
            s0[k] = fma(a0, u0, s0[k])
            s1[k] = fma(b0, u0, s1[k])
            s2[k] = fma(c0, u0, s2[k])
            s3[k] = fma(d0, u0, s3[k])
            s4[k] = fma(e0, u0, s4[k])
            s5[k] = fma(f0_, u0, s5[k])
            s6[k] = fma(h0_, u0, s6[k])
            s7[k] = fma(i0, u0, s7[k])
            s8[k] = fma(j0, u0, s8[k])
        p += 1


@njit(**_J)
def _bw_worker(gy, x, ph, pw, per, counter, xn, gT, Sg):
    """Groups of `per` images from the shared counter, each summed into its own Sg[g] (C, 9, K),
    its images in order (so the result does not depend on which thread took which group)."""
    N = x.shape[0]
    C = x.shape[1]
    K = gy.shape[1]
    OW = gy.shape[3]
    P = gy.shape[2] * OW
    g = fetch_add(counter, 1)
    while g * per < N:
        for n in range(g * per, min(N, (g + 1) * per)):
            _narrow(x, n, ph, pw, xn)
            _transpose(gy[n].reshape(K, P), gT)
            for c in range(C):
                _bw_plane(xn[c, 0].reshape(-1), xn[c, 1].reshape(-1), xn[c, 2].reshape(-1), OW, gT, Sg[g, c])
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
    N, C, H, W = x.shape
    K = int(w_shape[0])
    ph, pw = padding
    OH, OW = gy.shape[2], gy.shape[3]
    per, groups, nt = _groups(N)
    counter = np.zeros(1, np.int64)
    Sg = np.zeros((groups, C, 9, K), x.dtype)
    jobs = [(gy, x, ph, pw, per, counter, _narrow_buffer(C, H, OW, ph, x.dtype),
             scratch((j, 5), OH * OW * K, x.dtype).reshape(OH * OW, K), Sg) for j in range(nt)]
    run_split(_bw_worker, jobs)
    S = Sg.sum(0)  # the groups in order
    return np.ascontiguousarray(S.transpose(2, 0, 1)).reshape(K, C, 3, 3)
