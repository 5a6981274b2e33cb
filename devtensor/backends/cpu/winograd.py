"""Winograd conv2d on the cpu backend: forward, input gradient and weight gradient of 3x3,
stride-1, dilation-1, ungrouped convolutions (nn_kernels picks this path by shape; everything
else stays on im2col + GEMM there).  This module holds F(2x2, 3x3), the shared GEMM kernels
and the entry points; winograd43.py holds F(4x4, 3x3), which the two gradients use where its
GEMM work is smaller and its float32 error stays small (_variant; the forward stays on
F(2x2, 3x3) for accuracy, see FORWARD_VARIANT).

Why.  The conv GEMMs of im2col run in OpenBLAS, which this environment pins to its Haswell
(AVX2) kernels: ~225 GFLOP/s on the 2 cores, so the MNIST CNN's conv2 (x (100, 32, 26, 26),
w (64, 32, 3, 3): 6.4 GFLOP for forward + both gradients) cannot go under ~28 ms, against
~19 ms for PyTorch's oneDNN.  F(2x2, 3x3) does the same work in 16 / 36 = 0.44x the
multiplies, and the GEMMs here are numba loops that LLVM compiles to AVX-512.

Algorithm (Lavin & Gray 2015).  Per 4x4 input tile d (stride 2) and 3x3 filter g,
y = A^T [(G g G^T) * (B^T d B)] A gives the 2x2 outputs; summed over input channels, each of
the 16 transform positions xi is a GEMM M[xi] (K, T) = U[xi] (K, C) @ V[xi] (C, T) over the
T tiles.  The input gradient is the exact adjoint (gy tiles through A, U^T @, then B back
onto overlapping input tiles), the weight gradient G^T [sum_t (A gy A^T) * (B^T d B)] G,
i.e. 16 GEMMs (K, T) @ (T, C) with the long tile axis inside.  Float32 error stays at a few
roundings of the output's scale (max 3e-7 relative on conv2; F(4x4, 3x3): 2e-6); float64
is exact to ~1e-15.

Layout.  Every loop here runs over long contiguous rows, because LLVM's vector loops cost
~25 ns of checks and scalar epilogue per short (12-element) loop: a per-tile-row loop over
the 12 tiles of a conv2 row measured 4 ms for the input transform alone.  The transforms are
therefore split into a row pass (vertical, one loop per image row of ~W elements) and a flat
column pass (horizontal, one loop over all tiles of a chunk, reading u[2t + k]):

  u[i]  rows (c, n, th) of pitch WQ = 2*TQ: sum_j BT[i, j] * xpad[n, c, 2th + j, :]
  V[l]  (C, T), tiles t = (n, th, tq): sum_k BT[l, k] * u[i][row, 2tq + k]
  M[l]  (K, T) = U[4i + l] @ V[l]                            (for i, l in 4 x 4)
  o[i]  rows (k, n, th): o[i][row, 2tq + b] = sum_l AT[b, l] * M[l][k, tile]
  y[n, k, 2th + a, :] = sum_i AT[a, i] * o[i][row, :OW] + bias

For the flat column pass every tile row holds TQ = TW + 1 tiles: the last one is junk
(it reads the next row's first columns), costs 1/TQ of the GEMM work (8% on conv2) and is
never read back; in the gradients its gy transform is zero.  Chunks of ~_CHUNK_TILES tiles
keep one GEMM's V[l] and M[l] in L2; a padded copy of x is made only when the tiles do not
cover x exactly (padding, odd output sizes).  Views are made outside branches only: numba
prunes their reference counts there, in a branch each view costs atomic increments (it made
one pass 7x slower).

GEMM micro-kernels: out (R, T) = a @ b with 8 rows of out per pass and 4 columns of a per
statement (~180 GFLOP/s on one core, vs ~100 for OpenBLAS-Haswell per core); the weight
gradient's (K, C) += (K, T) @ (T, C)^T as 4x4 blocks of 16 register dot products.

Threads: one nogil worker call per core (threads.run_split: plain Python threads, no
spinning pool), each with its own work buffers (threads.scratch, reused across calls: fresh
pages fault at ~1 us / 4 KiB here).  The workers take groups of image chunks from a shared
atomic counter (~6 groups per thread) rather than fixed halves: inside a training step
OpenBLAS's worker thread busy-waits for ~100 ms after each BLAS call (the linear layers), so
one core is time-shared with it; with fixed halves the forward went 5.0 -> 9.5 ms right
after a matmul, with groups 7.5 ms.  (Measured on the whole MNIST CNN step: that spinning
thread burns ~44 ms of CPU per 45 ms step; with a short OPENBLAS_THREAD_TIMEOUT in the
environment (devtensor/_blas_env.py) the step takes 31 ms instead of 44.)  Each group goes to one thread, in order,
and has its own weight-gradient partial sum, so the results do not depend on the timing.

Measured (2-core Zen 5, float32, conv2 above, medians, PyTorch 2.13 in the same process):
  F(2x2, 3x3)  forward 4.8-5.2 ms, input gradient 5.1 ms, weight gradient 5.5 ms
  F(4x4, 3x3)  forward 3.9 ms, input gradient 3.8-3.9 ms, weight gradient 4.1-4.3 ms
  PyTorch      forward 5.4-5.6 ms, input gradient 5.2-5.5 ms, weight gradient 5.5-5.8 ms
  im2col+BLAS  forward 12.2 ms, input gradient 12.5 ms, weight gradient 12.6 ms
The forward runs F(2x2, 3x3) and the gradients F(4x4, 3x3) (FORWARD_VARIANT, _variant).

Non-finite inputs: a NaN or inf spreads to every output of the tiles that read it (up to a
4x4 block, 6x6 for F(4x4, 3x3), instead of the 3x3 neighbourhood of a direct convolution).
"""
from __future__ import annotations

import numpy as np
from numba import njit

from .threads import fetch_add, run_split, scratch, threads

# Float flags for the kernels: reassociation (vector reductions) and FMA contraction, but
# no nnan/ninf, so NaN and inf still propagate through the transforms.
_FM = {"reassoc", "contract", "nsz"}
_J = dict(nogil=True, cache=True, fastmath=_FM, error_model="numpy")

# F(2, 3) transforms (Lavin & Gray 2015): y = A^T [(G g G^T) * (B^T d B)] A per 4x4 input tile.
_BT = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], np.float64)
_G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]], np.float64)
_AT = np.array([[1, 1, 1, 0], [0, 1, -1, -1]], np.float64)


# ----------------------------------------------------------------------------------------
# GEMM micro-kernels (numba emits AVX-512 here; OpenBLAS is pinned to its Haswell kernels)
# ----------------------------------------------------------------------------------------

@njit(**_J)
def _nn_rows8(a, b, out, r0):
    """out[r0:r0+8] = a[r0:r0+8] @ b; rows of out and b are long and contiguous, so the
    inner loop vectorizes along them, 4 columns of a per pass to amortize the out traffic."""
    C = a.shape[1]
    m0 = out[r0]
    m1 = out[r0 + 1]
    m2 = out[r0 + 2]
    m3 = out[r0 + 3]
    m4 = out[r0 + 4]
    m5 = out[r0 + 5]
    m6 = out[r0 + 6]
    m7 = out[r0 + 7]
    T = m0.size
    for t in range(T):
        m0[t] = 0
        m1[t] = 0
        m2[t] = 0
        m3[t] = 0
        m4[t] = 0
        m5[t] = 0
        m6[t] = 0
        m7[t] = 0
    c = 0
    while c + 4 <= C:
        b0 = b[c]
        b1 = b[c + 1]
        b2 = b[c + 2]
        b3 = b[c + 3]
        u = a[r0:r0 + 8, c:c + 4]
        u00, u01, u02, u03 = u[0, 0], u[0, 1], u[0, 2], u[0, 3]
        u10, u11, u12, u13 = u[1, 0], u[1, 1], u[1, 2], u[1, 3]
        u20, u21, u22, u23 = u[2, 0], u[2, 1], u[2, 2], u[2, 3]
        u30, u31, u32, u33 = u[3, 0], u[3, 1], u[3, 2], u[3, 3]
        u40, u41, u42, u43 = u[4, 0], u[4, 1], u[4, 2], u[4, 3]
        u50, u51, u52, u53 = u[5, 0], u[5, 1], u[5, 2], u[5, 3]
        u60, u61, u62, u63 = u[6, 0], u[6, 1], u[6, 2], u[6, 3]
        u70, u71, u72, u73 = u[7, 0], u[7, 1], u[7, 2], u[7, 3]
        for t in range(T):
            a0 = b0[t]
            a1 = b1[t]
            a2 = b2[t]
            a3 = b3[t]
            m0[t] += (u00 * a0 + u01 * a1) + (u02 * a2 + u03 * a3)
            m1[t] += (u10 * a0 + u11 * a1) + (u12 * a2 + u13 * a3)
            m2[t] += (u20 * a0 + u21 * a1) + (u22 * a2 + u23 * a3)
            m3[t] += (u30 * a0 + u31 * a1) + (u32 * a2 + u33 * a3)
            m4[t] += (u40 * a0 + u41 * a1) + (u42 * a2 + u43 * a3)
            m5[t] += (u50 * a0 + u51 * a1) + (u52 * a2 + u53 * a3)
            m6[t] += (u60 * a0 + u61 * a1) + (u62 * a2 + u63 * a3)
            m7[t] += (u70 * a0 + u71 * a1) + (u72 * a2 + u73 * a3)
        c += 4
    while c < C:
        b0 = b[c]
        u0, u1, u2, u3 = a[r0, c], a[r0 + 1, c], a[r0 + 2, c], a[r0 + 3, c]
        u4, u5, u6, u7 = a[r0 + 4, c], a[r0 + 5, c], a[r0 + 6, c], a[r0 + 7, c]
        for t in range(T):
            a0 = b0[t]
            m0[t] += u0 * a0
            m1[t] += u1 * a0
            m2[t] += u2 * a0
            m3[t] += u3 * a0
            m4[t] += u4 * a0
            m5[t] += u5 * a0
            m6[t] += u6 * a0
            m7[t] += u7 * a0
        c += 1


@njit(**_J)
def _nn_row1(a, b, out, r):
    m0 = out[r]
    for t in range(m0.size):
        m0[t] = 0
    for c in range(a.shape[1]):
        b0 = b[c]
        u0 = a[r, c]
        for t in range(m0.size):
            m0[t] += u0 * b0[t]


@njit(**_J)
def _gemm_nn(a, b, out):
    """out = a @ b for C-contiguous a (R, C), b (C, T), out (R, T)."""
    R = a.shape[0]
    r = 0
    while r + 8 <= R:
        _nn_rows8(a, b, out, r)
        r += 8
    while r < R:
        _nn_row1(a, b, out, r)
        r += 1


@njit(**_J)
def _nt_block(a, b, out, r0, c0):
    """out[r0:r0+4, c0:c0+4] += a[r0:r0+4] @ b[c0:c0+4].T: 16 dot products along the long
    rows, kept in registers (LLVM vectorizes the reductions)."""
    a0, a1, a2, a3 = a[r0], a[r0 + 1], a[r0 + 2], a[r0 + 3]
    b0, b1, b2, b3 = b[c0], b[c0 + 1], b[c0 + 2], b[c0 + 3]
    o = out[r0:r0 + 4, c0:c0 + 4]
    s00, s01, s02, s03 = o[0, 0], o[0, 1], o[0, 2], o[0, 3]
    s10, s11, s12, s13 = o[1, 0], o[1, 1], o[1, 2], o[1, 3]
    s20, s21, s22, s23 = o[2, 0], o[2, 1], o[2, 2], o[2, 3]
    s30, s31, s32, s33 = o[3, 0], o[3, 1], o[3, 2], o[3, 3]
    for t in range(a0.size):
        x0 = a0[t]
        x1 = a1[t]
        x2 = a2[t]
        x3 = a3[t]
        y0 = b0[t]
        y1 = b1[t]
        y2 = b2[t]
        y3 = b3[t]
        s00 += x0 * y0
        s01 += x0 * y1
        s02 += x0 * y2
        s03 += x0 * y3
        s10 += x1 * y0
        s11 += x1 * y1
        s12 += x1 * y2
        s13 += x1 * y3
        s20 += x2 * y0
        s21 += x2 * y1
        s22 += x2 * y2
        s23 += x2 * y3
        s30 += x3 * y0
        s31 += x3 * y1
        s32 += x3 * y2
        s33 += x3 * y3
    o[0, 0], o[0, 1], o[0, 2], o[0, 3] = s00, s01, s02, s03
    o[1, 0], o[1, 1], o[1, 2], o[1, 3] = s10, s11, s12, s13
    o[2, 0], o[2, 1], o[2, 2], o[2, 3] = s20, s21, s22, s23
    o[3, 0], o[3, 1], o[3, 2], o[3, 3] = s30, s31, s32, s33


@njit(**_J)
def _nt_one(a, b, out, r, c):
    x = a[r]
    y = b[c]
    s = out[r, c]
    for t in range(x.size):
        s += x[t] * y[t]
    out[r, c] = s


@njit(**_J)
def _gemm_nt_acc(a, b, out):
    """out += a @ b.T for C-contiguous a (R, T), b (C, T), out (R, C)."""
    R = a.shape[0]
    C = b.shape[0]
    R4 = R - R % 4
    C4 = C - C % 4
    for r in range(0, R4, 4):
        for c in range(0, C4, 4):
            _nt_block(a, b, out, r, c)
    for r in range(R):
        for c in range(C4 if r < R4 else 0, C):
            _nt_one(a, b, out, r, c)


# ----------------------------------------------------------------------------------------
# F(2, 3) transform passes.  Layout of one chunk of m images (see the module docstring):
#   u[i]  rows (c, n, th) of pitch WQ = 2*TQ:  sum_j BT[i, j] * xpad[n, c, 2th + j, :]
#   v[l]  (C, T), T = m*TH*TQ tiles (n, th, tq):  sum_k BT[l, k] * u[i][row, 2tq + k]
#   M[l]  (K, T) = U[4i + l] @ v[l]
#   o[i]  rows (k, n, th) of pitch WQ:  o[i][row, 2tq + b] = sum_l AT[b, l] * M[l][k, tile]
#   y[n, k, 2th + a, :] = sum_i AT[a, i] * o[i][row, :OW]
# Tile tq = TQ - 1 of every tile row is junk (it exists so that the column passes run as one
# flat loop over (row, tq) with u read at 2t + k); the row passes never read it back.
# ----------------------------------------------------------------------------------------

@njit(**_J)
def _in_rows(xp, n0, m, TH, ub):
    """ub[i][((c*m + n)*TH + th)*WQ + w] = sum_j BT[i, j] * xp[n0+n, c, 2th + j, w] for the
    padded input xp (rows >= 2TH + 2, WQ columns)."""
    C = xp.shape[1]
    WQ = xp.shape[3]
    for c in range(C):
        for n in range(m):
            xs = xp[n0 + n, c]
            for th in range(TH):
                r0 = xs[2 * th]
                r1 = xs[2 * th + 1]
                r2 = xs[2 * th + 2]
                r3 = xs[2 * th + 3]
                b = ((c * m + n) * TH + th) * WQ
                u0 = ub[0, b:b + WQ]
                u1 = ub[1, b:b + WQ]
                u2 = ub[2, b:b + WQ]
                u3 = ub[3, b:b + WQ]
                for w in range(WQ):
                    d0 = r0[w]
                    d1 = r1[w]
                    d2 = r2[w]
                    d3 = r3[w]
                    u0[w] = d0 - d2
                    u1[w] = d1 + d2
                    u2[w] = d2 - d1
                    u3[w] = d1 - d3


@njit(**_J)
def _pad_copy(x, n0, m, ph, pw, xp):
    """xp[n, c, ph + h, pw:pw + W] = x[n0 + n, c, h] (the rest of xp stays zero)."""
    C = x.shape[1]
    H = x.shape[2]
    W = x.shape[3]
    for n in range(m):
        for c in range(C):
            src = x[n0 + n, c]
            dst = xp[n, c]
            for h in range(H):
                sv = src[h]
                dv = dst[ph + h, pw:pw + W]
                for w in range(W):
                    dv[w] = sv[w]


@njit(**_J)
def _crop_copy(gp, n0, m, ph, pw, gx):
    """gx[n0 + n, c, h] = gp[n, c, ph + h, pw:pw + W]: drops the padding's gradient."""
    C = gx.shape[1]
    H = gx.shape[2]
    W = gx.shape[3]
    for n in range(m):
        for c in range(C):
            src = gp[n, c]
            dst = gx[n0 + n, c]
            for h in range(H):
                sv = src[ph + h, pw:pw + W]
                dv = dst[h]
                for w in range(W):
                    dv[w] = sv[w]


@njit(**_J)
def _in_cols(u, L, vb):
    """vb[l][t] = sum_k BT[l, k] * u[2t + k], t < L (u holds 2L + 2 values)."""
    v0 = vb[0, :L]
    v1 = vb[1, :L]
    v2 = vb[2, :L]
    v3 = vb[3, :L]
    for t in range(L):
        q = 2 * t
        d0 = u[q]
        d1 = u[q + 1]
        d2 = u[q + 2]
        d3 = u[q + 3]
        v0[t] = d0 - d2
        v1[t] = d1 + d2
        v2[t] = d2 - d1
        v3[t] = d1 - d3


@njit(**_J)
def _in_cols_t(vb, L, u):
    """Adjoint of _in_cols: u[2t + k] = sum over the tiles t' covering 2t + k of
    sum_l BT[l, k'] * vb[l][t'], every entry of u[:2L + 2] written."""
    u[0] = vb[0, 0]
    u[1] = vb[1, 0] - vb[2, 0] + vb[3, 0]
    c0 = vb[0, 1:L]
    c1 = vb[1, 1:L]
    c2 = vb[2, 1:L]
    c3 = vb[3, 1:L]
    p0 = vb[0, 0:L - 1]
    p1 = vb[1, 0:L - 1]
    p2 = vb[2, 0:L - 1]
    p3 = vb[3, 0:L - 1]
    uo = u[2:2 * L]
    for s in range(L - 1):
        uo[2 * s] = c0[s] + (p1[s] + p2[s] - p0[s])
        uo[2 * s + 1] = (c1[s] - c2[s] + c3[s]) - p3[s]
    u[2 * L] = vb[1, L - 1] + vb[2, L - 1] - vb[0, L - 1]
    u[2 * L + 1] = -vb[3, L - 1]


@njit(**_J)
def _in_rows_t(ub, n0, m, TH, zo, gp):
    """Adjoint of _in_rows into the padded gradient gp (rows 2th, 2th + 1 get tile rows th
    and th - 1).  A missing tile row (th = 0 has no th - 1, th = TH no th) reads the zeros
    at ub[:, zo:]; choosing offsets instead of arrays keeps every view outside a branch,
    where numba prunes its reference counting (a view made in a branch costs atomic ops)."""
    C = gp.shape[1]
    WQ = gp.shape[3]
    for n in range(m):
        for c in range(C):
            gs = gp[n0 + n, c]
            rb = (c * m + n) * TH
            for th in range(TH + 1):
                ba = (rb + th) * WQ if th < TH else zo
                bp = (rb + th - 1) * WQ if th >= 1 else zo
                a0 = ub[0, ba:ba + WQ]
                a1 = ub[1, ba:ba + WQ]
                a2 = ub[2, ba:ba + WQ]
                a3 = ub[3, ba:ba + WQ]
                p0 = ub[0, bp:bp + WQ]
                p1 = ub[1, bp:bp + WQ]
                p2 = ub[2, bp:bp + WQ]
                p3 = ub[3, bp:bp + WQ]
                d0 = gs[2 * th]
                d1 = gs[2 * th + 1]
                for w in range(WQ):
                    d0[w] = a0[w] + (p1[w] + p2[w] - p0[w])
                    d1[w] = (a1[w] - a2[w] + a3[w]) - p3[w]


@njit(**_J)
def _out_cols(mb, L, o):
    """o[2t + b] = sum_l AT[b, l] * mb[l][t], t < L."""
    m0 = mb[0, :L]
    m1 = mb[1, :L]
    m2 = mb[2, :L]
    m3 = mb[3, :L]
    for t in range(L):
        a0 = m0[t]
        a1 = m1[t]
        a2 = m2[t]
        a3 = m3[t]
        o[2 * t] = a0 + a1 + a2
        o[2 * t + 1] = a1 - a2 - a3


@njit(**_J)
def _out_cols_t(o, L, mb):
    """Adjoint of _out_cols: mb[l][t] = sum_b AT[b, l] * o[2t + b]."""
    m0 = mb[0, :L]
    m1 = mb[1, :L]
    m2 = mb[2, :L]
    m3 = mb[3, :L]
    for t in range(L):
        e0 = o[2 * t]
        e1 = o[2 * t + 1]
        m0[t] = e0
        m1[t] = e0 + e1
        m2[t] = e0 - e1
        m3[t] = -e1


@njit(**_J)
def _out_rows(ob, n0, m, TH, WQ, bias, y):
    """y[n0+n, k, 2th + a, :] = sum_i AT[a, i] * o[i] row (k, n, th) + bias[k].  Row pairs
    first, an odd last row after: views made inside a branch would cost atomic refcounts."""
    K = y.shape[1]
    OH = y.shape[2]
    OW = y.shape[3]
    for k in range(K):
        bk = bias[k]
        for n in range(m):
            ys = y[n0 + n, k]
            rb = (k * m + n) * TH
            for th in range(OH // 2):
                b = (rb + th) * WQ
                o0 = ob[0, b:b + OW]
                o1 = ob[1, b:b + OW]
                o2 = ob[2, b:b + OW]
                o3 = ob[3, b:b + OW]
                y0 = ys[2 * th]
                y1 = ys[2 * th + 1]
                for w in range(OW):
                    e1 = o1[w]
                    e2 = o2[w]
                    y0[w] = (o0[w] + e1 + e2) + bk
                    y1[w] = (e1 - e2 - o3[w]) + bk
            if OH % 2:
                _out_last_row(ob, (rb + TH - 1) * WQ, bk, ys[OH - 1])


@njit(**_J)
def _out_last_row(ob, b, bk, y0):
    OW = y0.size
    o0 = ob[0, b:b + OW]
    o1 = ob[1, b:b + OW]
    o2 = ob[2, b:b + OW]
    for w in range(OW):
        y0[w] = (o0[w] + o1[w] + o2[w]) + bk


@njit(**_J)
def _out_rows_t(gy, n0, m, TH, WQ, ob):
    """Adjoint of _out_rows (without the bias): the o rows of gy; the pad columns
    [OW, WQ) of ob are left as they are (zero)."""
    K = gy.shape[1]
    OH = gy.shape[2]
    OW = gy.shape[3]
    for k in range(K):
        for n in range(m):
            gs = gy[n0 + n, k]
            rb = (k * m + n) * TH
            for th in range(OH // 2):
                g0 = gs[2 * th]
                g1 = gs[2 * th + 1]
                b = (rb + th) * WQ
                o0 = ob[0, b:b + OW]
                o1 = ob[1, b:b + OW]
                o2 = ob[2, b:b + OW]
                o3 = ob[3, b:b + OW]
                for w in range(OW):
                    e0 = g0[w]
                    e1 = g1[w]
                    o0[w] = e0
                    o1[w] = e0 + e1
                    o2[w] = e0 - e1
                    o3[w] = -e1
            if OH % 2:
                _out_last_row_t(gs[OH - 1], (rb + TH - 1) * WQ, ob)


@njit(**_J)
def _out_last_row_t(g0, b, ob):
    OW = g0.size
    o0 = ob[0, b:b + OW]
    o1 = ob[1, b:b + OW]
    o2 = ob[2, b:b + OW]
    o3 = ob[3, b:b + OW]
    for w in range(OW):
        e0 = g0[w]
        o0[w] = e0
        o1[w] = e0
        o2[w] = e0
        o3[w] = 0


# ----------------------------------------------------------------------------------------
# per-thread workers: images [lo, hi) in chunks of nb, one nogil call each
# ----------------------------------------------------------------------------------------

@njit(**_J)
def _load_x(x, n0, m, ph, pw, TH, direct, xp, ub):
    """Pass 1 on images n0..n0+m: straight from x when no padding is needed."""
    if direct:
        _in_rows(x, n0, m, TH, ub)
    else:
        _pad_copy(x, n0, m, ph, pw, xp)
        _in_rows(xp, 0, m, TH, ub)


@njit(**_J)
def _groups(N, nb, cpg):
    """Groups of cpg chunks of nb images: the unit the threads take from their shared
    counter (fetch_add) until none is left.  Each group goes to one thread, in order, so the
    weight gradient's per-group partial sums do not depend on which thread took what (the
    result is deterministic)."""
    return -(-N // (nb * cpg))


@njit(**_J)
def _zero_start(direct, xp, ub, used):
    """The work buffers are reused across calls: zero the padding of xp and the tail of ub
    past the u rows (junk-tile reads, the zero row of _in_rows_t)."""
    if not direct:
        xf = xp.reshape(-1)
        for q in range(xf.size):
            xf[q] = 0
    for i in range(ub.shape[0]):
        tail = ub[i, used:]
        for q in range(tail.size):
            tail[q] = 0


@njit(**_J)
def _fwd_worker(x, U, bias, ph, pw, TH, TQ, nb, cpg, counter, direct, xp, ub, vb, mb, ob, y):
    N = x.shape[0]
    C = x.shape[1]
    K = U.shape[1]
    WQ = 2 * TQ
    _zero_start(direct, xp, ub, C * nb * TH * WQ)
    g = fetch_add(counter, 1)
    while g < _groups(N, nb, cpg):
        for n0 in range(g * cpg * nb, min(N, (g + 1) * cpg * nb), nb):
            m = min(nb, N - n0)
            T = m * TH * TQ
            _load_x(x, n0, m, ph, pw, TH, direct, xp, ub)
            for i in range(4):
                _in_cols(ub[i], C * T, vb)
                for l in range(4):
                    _gemm_nn(U[4 * i + l], vb[l, :C * T].reshape((C, T)), mb[l, :K * T].reshape((K, T)))
                _out_cols(mb, K * T, ob[i])
            _out_rows(ob, n0, m, TH, WQ, bias, y)
        g = fetch_add(counter, 1)


@njit(**_J)
def _bwd_input_worker(gy, UT, ph, pw, TH, TQ, nb, cpg, counter, direct, xp, ub, vb, mb, ob, gx):
    N = gy.shape[0]
    C = UT.shape[1]
    K = gy.shape[1]
    WQ = 2 * TQ
    zo = ub.shape[1] - WQ
    _zero_start(direct, xp, ub, C * nb * TH * WQ)
    prev = -1
    g = fetch_add(counter, 1)
    while g < _groups(N, nb, cpg):
        for n0 in range(g * cpg * nb, min(N, (g + 1) * cpg * nb), nb):
            m = min(nb, N - n0)
            if m != prev:  # the pad columns of the o rows (their layout depends on m)
                ob[:] = 0
                prev = m
            T = m * TH * TQ
            _out_rows_t(gy, n0, m, TH, WQ, ob)
            for i in range(4):
                _out_cols_t(ob[i], K * T, mb)
                for l in range(4):
                    _gemm_nn(UT[4 * i + l], mb[l, :K * T].reshape((K, T)), vb[l, :C * T].reshape((C, T)))
                _in_cols_t(vb, C * T, ub[i])
            if direct:
                _in_rows_t(ub, n0, m, TH, zo, gx)
            else:
                _in_rows_t(ub, 0, m, TH, zo, xp)
                _crop_copy(xp, n0, m, ph, pw, gx)
        g = fetch_add(counter, 1)


@njit(**_J)
def _bwd_weight_worker(gy, x, ph, pw, TH, TQ, nb, cpg, counter, direct, xp, ub, vb, mb, ob, Sg):
    N = x.shape[0]
    C = x.shape[1]
    K = gy.shape[1]
    WQ = 2 * TQ
    _zero_start(direct, xp, ub, C * nb * TH * WQ)
    prev = -1
    g = fetch_add(counter, 1)
    while g < _groups(N, nb, cpg):
        for n0 in range(g * cpg * nb, min(N, (g + 1) * cpg * nb), nb):
            m = min(nb, N - n0)
            if m != prev:
                ob[:] = 0
                prev = m
            T = m * TH * TQ
            _load_x(x, n0, m, ph, pw, TH, direct, xp, ub)
            _out_rows_t(gy, n0, m, TH, WQ, ob)
            for i in range(4):
                _in_cols(ub[i], C * T, vb)
                _out_cols_t(ob[i], K * T, mb)
                for l in range(4):
                    _gemm_nt_acc(mb[l, :K * T].reshape((K, T)), vb[l, :C * T].reshape((C, T)), Sg[g, 4 * i + l])
        g = fetch_add(counter, 1)


# ----------------------------------------------------------------------------------------
# drivers
# ----------------------------------------------------------------------------------------

def _split(N, tiles_per_image, chunk_tiles):
    """How a call's N images are shared out (both Winograd variants): (images per chunk, chunks
    per group, groups, threads). A chunk holds ~chunk_tiles tiles, so one GEMM's V and M stay in
    L2, and each thread gets at least 4 chunks; the threads take groups of chunks from a shared
    counter, ~6 groups per thread, to even out their speeds."""
    nt = threads()
    nb = max(1, min(chunk_tiles // tiles_per_image, -(-N // (4 * nt))))
    chunks = -(-N // nb)
    cpg = max(1, chunks // (6 * nt))
    groups = -(-chunks // cpg)
    return nb, cpg, groups, min(nt, groups)


class _Geom:
    """Tiling of one F(2, 3) call."""

    def __init__(self, N, C, H, W, K, ph, pw, dtype):
        self.N, self.C, self.H, self.W, self.K = N, C, H, W, K
        self.ph, self.pw = ph, pw
        self.OH, self.OW = H + 2 * ph - 2, W + 2 * pw - 2
        self.TH = (self.OH + 1) // 2
        self.TQ = (self.OW + 1) // 2 + 1  # tiles per tile row, the last one junk
        self.WQ = 2 * self.TQ
        self.nb, self.cpg, self.groups, self.threads = _split(N, self.TH * self.TQ, _CHUNK_TILES)
        self.counter = np.zeros(1, np.int64)  # groups handed out so far
        self.dtype = dtype
        # the padded input is x itself when the tiles cover x exactly
        self.direct = ph == 0 and pw == 0 and H == 2 * self.TH + 2 and W == self.WQ

    def buffers(self, job):
        """Work buffers of thread job `job` (reused across calls, see threads.scratch); the
        workers zero what must start zeroed."""
        nb, TH, WQ, TQ = self.nb, self.TH, self.WQ, self.TQ
        dt = self.dtype
        xps = (1, 1, 1, 1) if self.direct else (nb, self.C, 2 * TH + 2, WQ)
        xp = scratch((job, 0), int(np.prod(xps)), dt).reshape(xps)
        # + 2: the last junk tile reads 2 past the rows; + WQ: a zero row for _in_rows_t
        ub = scratch((job, 1), 4 * (self.C * nb * TH * WQ + 2 + WQ), dt).reshape(4, -1)
        vb = scratch((job, 2), 4 * self.C * nb * TH * TQ, dt).reshape(4, -1)
        mb = scratch((job, 3), 4 * self.K * nb * TH * TQ, dt).reshape(4, -1)
        ob = scratch((job, 4), 4 * (self.K * nb * TH * WQ + 2), dt).reshape(4, -1)
        return xp, ub, vb, mb, ob


_CHUNK_TILES = 640


def _weight_transform(w):
    """U[4p + q, k, c] = (G w[k, c] G^T)[p, q], computed in float64."""
    K, C = w.shape[:2]
    U = np.einsum("pa,kcab,qb->pqkc", _G, w.astype(np.float64), _G, optimize=True)
    return U.reshape(16, K, C)


def _forward23(x, w, b, padding):
    N, C, H, W = x.shape
    K = w.shape[0]
    g = _Geom(N, C, H, W, K, padding[0], padding[1], x.dtype)
    y = np.empty((N, K, g.OH, g.OW), x.dtype)
    U = np.ascontiguousarray(_weight_transform(w).astype(x.dtype))
    bias = np.zeros(K, x.dtype) if b is None else np.ascontiguousarray(b, dtype=x.dtype)
    jobs = [(x, U, bias, g.ph, g.pw, g.TH, g.TQ, g.nb, g.cpg, g.counter, g.direct, *g.buffers(j), y)
            for j in range(g.threads)]
    run_split(_fwd_worker, jobs)
    return y


def _backward_input23(gy, w, x_shape, padding):
    N, C, H, W = (int(v) for v in x_shape)
    K = w.shape[0]
    g = _Geom(N, C, H, W, K, padding[0], padding[1], gy.dtype)
    gx = np.empty((N, C, H, W), gy.dtype)
    UT = np.ascontiguousarray(_weight_transform(w).transpose(0, 2, 1).astype(gy.dtype))
    jobs = [(gy, UT, g.ph, g.pw, g.TH, g.TQ, g.nb, g.cpg, g.counter, g.direct, *g.buffers(j), gx)
            for j in range(g.threads)]
    run_split(_bwd_input_worker, jobs)
    return gx


def _backward_weight23(gy, x, w_shape, padding):
    N, C, H, W = x.shape
    K = int(w_shape[0])
    g = _Geom(N, C, H, W, K, padding[0], padding[1], x.dtype)
    Sg = np.zeros((g.groups, 16, K, C), x.dtype)  # per-group partial sums
    jobs = [(gy, x, g.ph, g.pw, g.TH, g.TQ, g.nb, g.cpg, g.counter, g.direct, *g.buffers(j), Sg)
            for j in range(g.threads)]
    run_split(_bwd_weight_worker, jobs)
    S = Sg.sum(0).astype(np.float64)  # ~13 partials: a float32 sum is 4x faster than a float64 one
    gw = np.einsum("pa,pqkc,qb->kcab", _G, S.reshape(4, 4, K, C), _G, optimize=True)
    return gw.astype(x.dtype)


# ----------------------------------------------------------------------------------------
# F(2x2, 3x3) or F(4x4, 3x3)
# ----------------------------------------------------------------------------------------

# Channels (input and output) up to which F(4x4, 3x3) is used: its float32 error grows like
# sqrt(C) (winograd43's docstring), 4.3e-6 of the output's scale at 256.
_F43_MAX_C = 256


def _variant(C, K, OH, OW):
    """'43' or '23' for the two gradients: F(4x4, 3x3) where its error is small and its GEMM
    work (tiles counted with the junk one of each tile row) is below F(2x2, 3x3)'s (small
    outputs are not: 6x6 takes 216 against 192)."""
    if max(C, K) > _F43_MAX_C:
        return "23"
    w23 = 16 * ((OH + 1) // 2) * ((OW + 1) // 2 + 1)
    w43 = 36 * ((OH + 3) // 4) * ((OW + 3) // 4 + 1)
    return "43" if w43 < w23 else "23"


# The forward stays on F(2x2, 3x3) (FORWARD_VARIANT): its output feeds every later layer,
# and Adam turns tiny activation differences into visible weight differences for weights
# whose gradients are near zero.  Measured on tests/test_training_parity.py (MNIST CNN, 5 Adam
# steps against PyTorch): worst weight deviation 0.28 of the test's tolerance with im2col,
# 0.82 with an F(2x2, 3x3) forward, 1.17 (a failure) with F(4x4, 3x3); the gradients' variant
# did not change it (0.82 with both on F(4x4, 3x3)).  F(4x4, 3x3)'s forward error is its
# float32 GEMM sums (transformed values up to ~10x the inputs, then x8 in A^T): a float64
# GEMM would bring it from 2.0e-6 to 8e-7, still 4x F(2x2, 3x3)'s.
FORWARD_VARIANT = "23"


def forward(x, w, b, padding):
    """conv2d(x, w, b, stride 1, padding, dilation 1, groups 1) for a 3x3 w; x, w C-contiguous
    of one float dtype; b None or (K,)."""
    N, C, H, W = x.shape
    if FORWARD_VARIANT == "43" and _variant(C, w.shape[0], H + 2 * padding[0] - 2, W + 2 * padding[1] - 2) == "43":
        from . import winograd43

        return winograd43.forward(x, w, b, padding)
    return _forward23(x, w, b, padding)


def backward_input(gy, w, x_shape, padding):
    """Gradient of forward with respect to x (shape x_shape); gy, w C-contiguous."""
    K, C = w.shape[:2]
    if _variant(C, K, gy.shape[2], gy.shape[3]) == "43":
        from . import winograd43

        return winograd43.backward_input(gy, w, x_shape, padding)
    return _backward_input23(gy, w, x_shape, padding)


def backward_weight(gy, x, w_shape, padding):
    """Gradient of forward with respect to w (shape w_shape); gy, x C-contiguous."""
    K, C = int(w_shape[0]), int(w_shape[1])
    if _variant(C, K, gy.shape[2], gy.shape[3]) == "43":
        from . import winograd43

        return winograd43.backward_weight(gy, x, w_shape, padding)
    return _backward_weight23(gy, x, w_shape, padding)
