"""Winograd F(4x4, 3x3) conv2d: the variant of winograd.py (read that docstring first) with
6x6 input tiles of stride 4, i.e. 36 GEMMs per 16 outputs instead of 16 per 4: 0.56x the
GEMM work of F(2x2, 3x3) (0.61x on the MNIST CNN's conv2 counting the junk tiles).

Points.  The Toom-Cook points are (0, 1, -1, 2, -1/2, inf), not Lavin's (0, 1, -1, 2, -2,
inf): measured in float32 against float64, max error / output scale 1.2e-6 (C = 32),
1.9e-6 (64), 4.3e-6 (256), 9.8e-6 (1024), against 4.5e-6, 7.0e-6, 1.2e-5 with Lavin's
points (and 2e-7 .. 1.2e-6 for F(2x2, 3x3)).  winograd.py uses this variant up to
_MAX_C channels.

Layout: as F(2x2, 3x3) with alpha = 6 and m = 4 (u rows of pitch WQ = 4*TQ, tiles read
u[4t + k], k < 6).  Column padding is not copied: the row pass writes the input's W columns
at offset pw of u rows whose other columns stay zero; a padded copy (rows only) is made when
the tile rows overhang x.  The input-gradient row pass likewise reads the W columns at pw.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from .threads import run_split, scratch
from .threads import fetch_add
from .winograd import _J, _gemm_nn, _gemm_nt_acc, _groups, _split

# B^T, G, A^T for the points (0, 1, -1, 2, -1/2, inf); the kernels below spell them out
_BT = np.array([[1, 1.5, -2, -1.5, 1, 0],
                [0, -1, -2.5, -0.5, 1, 0],
                [0, 1, 0.5, -2.5, 1, 0],
                [0, -0.5, -1, 0.5, 1, 0],
                [0, 2, -1, -2, 1, 0],
                [0, 1, 1.5, -2, -1.5, 1]], np.float64)
_G = np.array([[1, 0, 0],
               [-1 / 3, -1 / 3, -1 / 3],
               [1 / 3, -1 / 3, 1 / 3],
               [1 / 15, 2 / 15, 4 / 15],
               [-16 / 15, 8 / 15, -4 / 15],
               [0, 0, 1]], np.float64)
_AT = np.array([[1, 1, 1, 1, 1, 0],
                [0, 1, -1, 2, -0.5, 0],
                [0, 1, 1, 4, 0.25, 0],
                [0, 1, -1, 8, -0.125, 1]], np.float64)

# Tiles per chunk: ~8 images of the MNIST CNN's conv2 (42 tiles each).  Measured on conv2:
# 336 tiles 3.9 ms forward, 672 tiles 4.3 ms (the u and o rows of a chunk leave L2).
_CHUNK_TILES = 336


# ----------------------------------------------------------------------------------------
# 1-D transforms (inlined by LLVM into the vector loops)
# ----------------------------------------------------------------------------------------

# The constants are float32 (all exact there): a Python float or int would promote a
# float32 kernel to float64 arithmetic; float64 kernels promote them exactly.
_c1h = np.float32(1.5)
_c2h = np.float32(2.5)
_ch = np.float32(0.5)
_cq = np.float32(0.25)
_ce = np.float32(0.125)
_c2 = np.float32(2)
_c4 = np.float32(4)
_c8 = np.float32(8)


@njit(**_J)
def _bt(d0, d1, d2, d3, d4, d5):
    return (d0 + _c1h * d1 - _c2 * d2 - _c1h * d3 + d4,
            d4 - d1 - _c2h * d2 - _ch * d3,
            d1 + _ch * d2 - _c2h * d3 + d4,
            d4 - _ch * d1 - d2 + _ch * d3,
            _c2 * d1 - d2 - _c2 * d3 + d4,
            d1 + _c1h * d2 - _c2 * d3 - _c1h * d4 + d5)


@njit(**_J)
def _bt_t(v0, v1, v2, v3, v4, v5):
    """The transpose of _bt."""
    return (v0,
            _c1h * v0 - v1 + v2 - _ch * v3 + _c2 * v4 + v5,
            _ch * v2 - _c2 * v0 - _c2h * v1 - v3 - v4 + _c1h * v5,
            _ch * v3 - _c1h * v0 - _ch * v1 - _c2h * v2 - _c2 * v4 - _c2 * v5,
            v0 + v1 + v2 + v3 + v4 - _c1h * v5,
            v5)


@njit(**_J)
def _at(m0, m1, m2, m3, m4, m5):
    s = m1 + m2
    d = m1 - m2
    return (m0 + s + m3 + m4,
            d + _c2 * m3 - _ch * m4,
            s + _c4 * m3 + _cq * m4,
            d + _c8 * m3 - _ce * m4 + m5)


@njit(**_J)
def _at_t(e0, e1, e2, e3):
    """The transpose of _at."""
    return (e0,
            e0 + e1 + e2 + e3,
            e0 - e1 + e2 - e3,
            e0 + _c2 * e1 + _c4 * e2 + _c8 * e3,
            e0 - _ch * e1 + _cq * e2 - _ce * e3,
            e3)


# ----------------------------------------------------------------------------------------
# passes (u: 6 rows of pitch WQ per (c, n, th); o: 6 rows per (k, n, th))
# ----------------------------------------------------------------------------------------

@njit(**_J)
def _in_rows(src, n0, m, TH, WQ, col0, ub):
    """ub[i][((c*m + n)*TH + th)*WQ + col0 + w] = sum_j BT[i, j] * src[n0+n, c, 4th + j, w]
    for w < W (src rows hold 4TH + 2 rows of W columns); the other columns of ub stay."""
    C = src.shape[1]
    W = src.shape[3]
    for c in range(C):
        for n in range(m):
            xs = src[n0 + n, c]
            for th in range(TH):
                r0 = xs[4 * th]
                r1 = xs[4 * th + 1]
                r2 = xs[4 * th + 2]
                r3 = xs[4 * th + 3]
                r4 = xs[4 * th + 4]
                r5 = xs[4 * th + 5]
                b = ((c * m + n) * TH + th) * WQ + col0
                u0 = ub[0, b:b + W]
                u1 = ub[1, b:b + W]
                u2 = ub[2, b:b + W]
                u3 = ub[3, b:b + W]
                u4 = ub[4, b:b + W]
                u5 = ub[5, b:b + W]
                for w in range(W):
                    u0[w], u1[w], u2[w], u3[w], u4[w], u5[w] = _bt(r0[w], r1[w], r2[w], r3[w], r4[w], r5[w])


@njit(**_J)
def _in_cols(u, L, vb):
    """vb[l][t] = sum_k BT[l, k] * u[4t + k], t < L (u holds 4L + 2 values)."""
    v0 = vb[0, :L]
    v1 = vb[1, :L]
    v2 = vb[2, :L]
    v3 = vb[3, :L]
    v4 = vb[4, :L]
    v5 = vb[5, :L]
    for t in range(L):
        q = 4 * t
        v0[t], v1[t], v2[t], v3[t], v4[t], v5[t] = _bt(u[q], u[q + 1], u[q + 2], u[q + 3], u[q + 4], u[q + 5])


@njit(**_J)
def _in_cols_t(vb, L, u):
    """Adjoint of _in_cols: every entry of u[:4L + 2] written (tiles overlap by 2)."""
    d0, d1, d2, d3, d4, d5 = _bt_t(vb[0, 0], vb[1, 0], vb[2, 0], vb[3, 0], vb[4, 0], vb[5, 0])
    u[0] = d0
    u[1] = d1
    u[2] = d2
    u[3] = d3
    c0 = vb[0, 1:L]
    c1 = vb[1, 1:L]
    c2 = vb[2, 1:L]
    c3 = vb[3, 1:L]
    c4 = vb[4, 1:L]
    c5 = vb[5, 1:L]
    p0 = vb[0, 0:L - 1]
    p1 = vb[1, 0:L - 1]
    p2 = vb[2, 0:L - 1]
    p3 = vb[3, 0:L - 1]
    p4 = vb[4, 0:L - 1]
    p5 = vb[5, 0:L - 1]
    uo = u[4:4 * L]
    for s in range(L - 1):
        a0, a1, a2, a3, a4, a5 = _bt_t(c0[s], c1[s], c2[s], c3[s], c4[s], c5[s])
        e0, e1, e2, e3, e4, e5 = _bt_t(p0[s], p1[s], p2[s], p3[s], p4[s], p5[s])
        uo[4 * s] = a0 + e4
        uo[4 * s + 1] = a1 + e5
        uo[4 * s + 2] = a2
        uo[4 * s + 3] = a3
    e0, e1, e2, e3, e4, e5 = _bt_t(vb[0, L - 1], vb[1, L - 1], vb[2, L - 1], vb[3, L - 1], vb[4, L - 1],
                                   vb[5, L - 1])
    u[4 * L] = e4
    u[4 * L + 1] = e5


@njit(**_J)
def _in_rows_t(ub, n0, m, TH, WQ, col0, zo, dst):
    """Adjoint of _in_rows: dst[n0+n, c, 4th + j, w] (4TH + 2 rows of W columns) from the u
    rows of tile rows th (j < 4) and th - 1 (j + 4 < 6), reading u columns col0 + w; a
    missing tile row reads the zeros at ub[:, zo:] (offsets, not branches, pick the views)."""
    C = dst.shape[1]
    W = dst.shape[3]
    for n in range(m):
        for c in range(C):
            gs = dst[n0 + n, c]
            rb = (c * m + n) * TH
            for th in range(TH):
                ba = (rb + th) * WQ + col0
                bp = (rb + th - 1) * WQ + col0 if th >= 1 else zo
                a0 = ub[0, ba:ba + W]
                a1 = ub[1, ba:ba + W]
                a2 = ub[2, ba:ba + W]
                a3 = ub[3, ba:ba + W]
                a4 = ub[4, ba:ba + W]
                a5 = ub[5, ba:ba + W]
                p0 = ub[0, bp:bp + W]
                p1 = ub[1, bp:bp + W]
                p2 = ub[2, bp:bp + W]
                p3 = ub[3, bp:bp + W]
                p4 = ub[4, bp:bp + W]
                p5 = ub[5, bp:bp + W]
                g0 = gs[4 * th]
                g1 = gs[4 * th + 1]
                g2 = gs[4 * th + 2]
                g3 = gs[4 * th + 3]
                for w in range(W):
                    x0, x1, x2, x3, x4, x5 = _bt_t(a0[w], a1[w], a2[w], a3[w], a4[w], a5[w])
                    y0, y1, y2, y3, y4, y5 = _bt_t(p0[w], p1[w], p2[w], p3[w], p4[w], p5[w])
                    g0[w] = x0 + y4
                    g1[w] = x1 + y5
                    g2[w] = x2
                    g3[w] = x3
            _in_rows_t_last(ub, (rb + TH - 1) * WQ + col0, gs[4 * TH], gs[4 * TH + 1])


@njit(**_J)
def _in_rows_t_last(ub, bp, g0, g1):
    """Rows 4TH and 4TH + 1: only tile row TH - 1 covers them."""
    W = g0.size
    p0 = ub[0, bp:bp + W]
    p1 = ub[1, bp:bp + W]
    p2 = ub[2, bp:bp + W]
    p3 = ub[3, bp:bp + W]
    p4 = ub[4, bp:bp + W]
    p5 = ub[5, bp:bp + W]
    for w in range(W):
        y0, y1, y2, y3, y4, y5 = _bt_t(p0[w], p1[w], p2[w], p3[w], p4[w], p5[w])
        g0[w] = y4
        g1[w] = y5


@njit(**_J)
def _out_cols(mb, L, o):
    """o[4t + b] = sum_l AT[b, l] * mb[l][t], t < L."""
    m0 = mb[0, :L]
    m1 = mb[1, :L]
    m2 = mb[2, :L]
    m3 = mb[3, :L]
    m4 = mb[4, :L]
    m5 = mb[5, :L]
    for t in range(L):
        o[4 * t], o[4 * t + 1], o[4 * t + 2], o[4 * t + 3] = _at(m0[t], m1[t], m2[t], m3[t], m4[t], m5[t])


@njit(**_J)
def _out_cols_t(o, L, mb):
    """Adjoint of _out_cols."""
    m0 = mb[0, :L]
    m1 = mb[1, :L]
    m2 = mb[2, :L]
    m3 = mb[3, :L]
    m4 = mb[4, :L]
    m5 = mb[5, :L]
    for t in range(L):
        q = 4 * t
        m0[t], m1[t], m2[t], m3[t], m4[t], m5[t] = _at_t(o[q], o[q + 1], o[q + 2], o[q + 3])


@njit(**_J)
def _out_rows(ob, n0, m, TH, WQ, bias, y):
    """y[n0+n, k, 4th + a, :] = sum_i AT[a, i] * o[i] row (k, n, th) + bias[k]: full tile
    rows here, the rows of a partial last one in _out_rows_part."""
    K = y.shape[1]
    OH = y.shape[2]
    OW = y.shape[3]
    for k in range(K):
        bk = bias[k]
        for n in range(m):
            ys = y[n0 + n, k]
            rb = (k * m + n) * TH
            for th in range(OH // 4):
                b = (rb + th) * WQ
                o0 = ob[0, b:b + OW]
                o1 = ob[1, b:b + OW]
                o2 = ob[2, b:b + OW]
                o3 = ob[3, b:b + OW]
                o4 = ob[4, b:b + OW]
                o5 = ob[5, b:b + OW]
                y0 = ys[4 * th]
                y1 = ys[4 * th + 1]
                y2 = ys[4 * th + 2]
                y3 = ys[4 * th + 3]
                for w in range(OW):
                    e0, e1, e2, e3 = _at(o0[w], o1[w], o2[w], o3[w], o4[w], o5[w])
                    y0[w] = e0 + bk
                    y1[w] = e1 + bk
                    y2[w] = e2 + bk
                    y3[w] = e3 + bk
            if OH % 4:
                _out_rows_part(ob, (rb + TH - 1) * WQ, bk, ys[4 * (TH - 1):])


@njit(**_J)
def _out_rows_part(ob, b, bk, ys):
    """The OH % 4 rows ys of a partial last tile row."""
    OW = ys.shape[1]
    o0 = ob[0, b:b + OW]
    o1 = ob[1, b:b + OW]
    o2 = ob[2, b:b + OW]
    o3 = ob[3, b:b + OW]
    o4 = ob[4, b:b + OW]
    o5 = ob[5, b:b + OW]
    for a in range(ys.shape[0]):
        ya = ys[a]
        for w in range(OW):
            ya[w] = _at(o0[w], o1[w], o2[w], o3[w], o4[w], o5[w])[a] + bk


@njit(**_J)
def _out_rows_t(gy, n0, m, TH, WQ, ob):
    """Adjoint of _out_rows (without the bias); the pad columns [OW, WQ) of ob stay zero."""
    K = gy.shape[1]
    OH = gy.shape[2]
    OW = gy.shape[3]
    for k in range(K):
        for n in range(m):
            gs = gy[n0 + n, k]
            rb = (k * m + n) * TH
            for th in range(OH // 4):
                g0 = gs[4 * th]
                g1 = gs[4 * th + 1]
                g2 = gs[4 * th + 2]
                g3 = gs[4 * th + 3]
                b = (rb + th) * WQ
                o0 = ob[0, b:b + OW]
                o1 = ob[1, b:b + OW]
                o2 = ob[2, b:b + OW]
                o3 = ob[3, b:b + OW]
                o4 = ob[4, b:b + OW]
                o5 = ob[5, b:b + OW]
                for w in range(OW):
                    o0[w], o1[w], o2[w], o3[w], o4[w], o5[w] = _at_t(g0[w], g1[w], g2[w], g3[w])
            if OH % 4:
                _out_rows_part_t(gs[4 * (TH - 1):], (rb + TH - 1) * WQ, ob)


@njit(**_J)
def _out_rows_part_t(gs, b, ob):
    """The o rows of a partial last tile row: gy rows past OH count as zeros (written out,
    not multiplied by 0, which would turn an inf into a NaN)."""
    OW = gs.shape[1]
    r = gs.shape[0]
    o0 = ob[0, b:b + OW]
    o1 = ob[1, b:b + OW]
    o2 = ob[2, b:b + OW]
    o3 = ob[3, b:b + OW]
    o4 = ob[4, b:b + OW]
    o5 = ob[5, b:b + OW]
    g0 = gs[0]
    g1 = gs[min(1, r - 1)]
    g2 = gs[min(2, r - 1)]
    if r == 1:
        for w in range(OW):
            e0 = g0[w]
            o0[w] = e0
            o1[w] = e0
            o2[w] = e0
            o3[w] = e0
            o4[w] = e0
            o5[w] = 0
    elif r == 2:
        for w in range(OW):
            e0 = g0[w]
            e1 = g1[w]
            o0[w] = e0
            o1[w] = e0 + e1
            o2[w] = e0 - e1
            o3[w] = e0 + _c2 * e1
            o4[w] = e0 - _ch * e1
            o5[w] = 0
    else:
        for w in range(OW):
            e0 = g0[w]
            e1 = g1[w]
            e2 = g2[w]
            o0[w] = e0
            o1[w] = e0 + e1 + e2
            o2[w] = e0 - e1 + e2
            o3[w] = e0 + _c2 * e1 + _c4 * e2
            o4[w] = e0 - _ch * e1 + _cq * e2
            o5[w] = 0


# ----------------------------------------------------------------------------------------
# workers (as in winograd.py)
# ----------------------------------------------------------------------------------------

@njit(**_J)
def _zero(a):
    f = a.reshape(-1)
    for q in range(f.size):
        f[q] = 0


@njit(**_J)
def _pad_rows(x, n0, m, ph, xp):
    """xp[n, c, ph + h] = x[n0 + n, c, h]; the other rows of xp stay zero."""
    C = x.shape[1]
    H = x.shape[2]
    W = x.shape[3]
    for n in range(m):
        for c in range(C):
            src = x[n0 + n, c]
            dst = xp[n, c]
            for h in range(H):
                sv = src[h]
                dv = dst[ph + h]
                for w in range(W):
                    dv[w] = sv[w]


@njit(**_J)
def _crop_rows(gp, n0, m, ph, gx):
    C = gx.shape[1]
    H = gx.shape[2]
    W = gx.shape[3]
    for n in range(m):
        for c in range(C):
            src = gp[n, c]
            dst = gx[n0 + n, c]
            for h in range(H):
                sv = src[ph + h]
                dv = dst[h]
                for w in range(W):
                    dv[w] = sv[w]


@njit(**_J)
def _load_x(x, n0, m, ph, pw, TH, WQ, rows_direct, xp, ub):
    if rows_direct:
        _in_rows(x, n0, m, TH, WQ, pw, ub)
    else:
        _pad_rows(x, n0, m, ph, xp)
        _in_rows(xp, 0, m, TH, WQ, pw, ub)


@njit(**_J)
def _fwd_worker(x, U, bias, ph, pw, TH, TQ, nb, cpg, counter, rows_direct, xp, ub, vb, mb, ob, y):
    N = x.shape[0]
    C = x.shape[1]
    K = U.shape[1]
    WQ = 4 * TQ
    _zero(xp)
    prev = -1
    g = fetch_add(counter, 1)
    while g < _groups(N, nb, cpg):
        for n0 in range(g * cpg * nb, min(N, (g + 1) * cpg * nb), nb):
            m = min(nb, N - n0)
            if m != prev:  # the pad columns of the u rows (their layout depends on m)
                _zero(ub)
                prev = m
            T = m * TH * TQ
            _load_x(x, n0, m, ph, pw, TH, WQ, rows_direct, xp, ub)
            for i in range(6):
                _in_cols(ub[i], C * T, vb)
                for l in range(6):
                    _gemm_nn(U[6 * i + l], vb[l, :C * T].reshape((C, T)), mb[l, :K * T].reshape((K, T)))
                _out_cols(mb, K * T, ob[i])
            _out_rows(ob, n0, m, TH, WQ, bias, y)
        g = fetch_add(counter, 1)


@njit(**_J)
def _bwd_input_worker(gy, UT, ph, pw, TH, TQ, nb, cpg, counter, rows_direct, xp, ub, vb, mb, ob, gx):
    N = gy.shape[0]
    C = UT.shape[1]
    K = gy.shape[1]
    WQ = 4 * TQ
    zo = ub.shape[1] - WQ
    for i in range(6):  # the zero row of _in_rows_t
        _zero(ub[i, zo:])
    prev = -1
    g = fetch_add(counter, 1)
    while g < _groups(N, nb, cpg):
        for n0 in range(g * cpg * nb, min(N, (g + 1) * cpg * nb), nb):
            m = min(nb, N - n0)
            if m != prev:  # the pad columns of the o rows
                _zero(ob)
                prev = m
            T = m * TH * TQ
            _out_rows_t(gy, n0, m, TH, WQ, ob)
            for i in range(6):
                _out_cols_t(ob[i], K * T, mb)
                for l in range(6):
                    _gemm_nn(UT[6 * i + l], mb[l, :K * T].reshape((K, T)), vb[l, :C * T].reshape((C, T)))
                _in_cols_t(vb, C * T, ub[i])
            if rows_direct:
                _in_rows_t(ub, n0, m, TH, WQ, pw, zo, gx)
            else:
                _in_rows_t(ub, 0, m, TH, WQ, pw, zo, xp)
                _crop_rows(xp, n0, m, ph, gx)
        g = fetch_add(counter, 1)


@njit(**_J)
def _bwd_weight_worker(gy, x, ph, pw, TH, TQ, nb, cpg, counter, rows_direct, xp, ub, vb, mb, ob, Sg):
    N = x.shape[0]
    C = x.shape[1]
    K = gy.shape[1]
    WQ = 4 * TQ
    _zero(xp)
    prev = -1
    g = fetch_add(counter, 1)
    while g < _groups(N, nb, cpg):
        for n0 in range(g * cpg * nb, min(N, (g + 1) * cpg * nb), nb):
            m = min(nb, N - n0)
            if m != prev:
                _zero(ub)
                _zero(ob)
                prev = m
            T = m * TH * TQ
            _load_x(x, n0, m, ph, pw, TH, WQ, rows_direct, xp, ub)
            _out_rows_t(gy, n0, m, TH, WQ, ob)
            for i in range(6):
                _in_cols(ub[i], C * T, vb)
                _out_cols_t(ob[i], K * T, mb)
                for l in range(6):
                    _gemm_nt_acc(mb[l, :K * T].reshape((K, T)), vb[l, :C * T].reshape((C, T)), Sg[g, 6 * i + l])
        g = fetch_add(counter, 1)


# ----------------------------------------------------------------------------------------
# drivers
# ----------------------------------------------------------------------------------------

class _Geom:
    """Tiling of one F(4, 3) call (see winograd._Geom)."""

    def __init__(self, N, C, H, W, K, ph, pw, dtype):
        self.N, self.C, self.H, self.W, self.K = N, C, H, W, K
        self.ph, self.pw = ph, pw
        self.OH, self.OW = H + 2 * ph - 2, W + 2 * pw - 2
        self.TH = (self.OH + 3) // 4
        self.TQ = (self.OW + 3) // 4 + 1  # tiles per tile row, the last one junk
        self.WQ = 4 * self.TQ
        self.nb, self.cpg, self.groups, self.threads = _split(N, self.TH * self.TQ, _CHUNK_TILES)
        self.counter = np.zeros(1, np.int64)
        self.dtype = dtype
        # the tile rows cover x's rows exactly: read them in place (columns are padded in u)
        self.rows_direct = ph == 0 and H == 4 * self.TH + 2

    def buffers(self, job):
        nb, TH, WQ, TQ, C, K = self.nb, self.TH, self.WQ, self.TQ, self.C, self.K
        dt = self.dtype
        xps = (1, 1, 1, 1) if self.rows_direct else (nb, C, 4 * TH + 2, self.W)
        xp = scratch((job, 10), int(np.prod(xps)), dt).reshape(xps)
        # + 2: the last junk tile reads 2 past the rows; + WQ: a zero row for _in_rows_t
        ub = scratch((job, 11), 6 * (C * nb * TH * WQ + 2 + WQ), dt).reshape(6, -1)
        vb = scratch((job, 12), 6 * C * nb * TH * TQ, dt).reshape(6, -1)
        mb = scratch((job, 13), 6 * K * nb * TH * TQ, dt).reshape(6, -1)
        ob = scratch((job, 14), 6 * (K * nb * TH * WQ + 2), dt).reshape(6, -1)
        return xp, ub, vb, mb, ob

    def args(self):
        return self.ph, self.pw, self.TH, self.TQ, self.nb, self.cpg, self.counter, self.rows_direct


def _weight_transform(w):
    """U[6p + q, k, c] = (G w[k, c] G^T)[p, q], computed in float64."""
    K, C = w.shape[:2]
    U = np.einsum("pa,kcab,qb->pqkc", _G, w.astype(np.float64), _G, optimize=True)
    return U.reshape(36, K, C)


def forward(x, w, b, padding):
    N, C, H, W = x.shape
    K = w.shape[0]
    g = _Geom(N, C, H, W, K, padding[0], padding[1], x.dtype)
    y = np.empty((N, K, g.OH, g.OW), x.dtype)
    U = np.ascontiguousarray(_weight_transform(w).astype(x.dtype))
    bias = np.zeros(K, x.dtype) if b is None else np.ascontiguousarray(b, dtype=x.dtype)
    jobs = [(x, U, bias, *g.args(), *g.buffers(j), y) for j in range(g.threads)]
    run_split(_fwd_worker, jobs)
    return y


def backward_input(gy, w, x_shape, padding):
    N, C, H, W = (int(v) for v in x_shape)
    K = w.shape[0]
    g = _Geom(N, C, H, W, K, padding[0], padding[1], gy.dtype)
    gx = np.empty((N, C, H, W), gy.dtype)
    UT = np.ascontiguousarray(_weight_transform(w).transpose(0, 2, 1).astype(gy.dtype))
    jobs = [(gy, UT, *g.args(), *g.buffers(j), gx) for j in range(g.threads)]
    run_split(_bwd_input_worker, jobs)
    return gx


def backward_weight(gy, x, w_shape, padding):
    N, C, H, W = x.shape
    K = int(w_shape[0])
    g = _Geom(N, C, H, W, K, padding[0], padding[1], x.dtype)
    Sg = np.zeros((g.groups, 36, K, C), x.dtype)
    jobs = [(gy, x, *g.args(), *g.buffers(j), Sg) for j in range(g.threads)]
    run_split(_bwd_weight_worker, jobs)
    S = Sg.sum(0).astype(np.float64)  # ~13 partials: a float32 sum is 4x faster than a float64 one
    gw = np.einsum("pa,pqkc,qb->kcab", _G, S.reshape(6, 6, K, C), _G, optimize=True)
    return gw.astype(x.dtype)
