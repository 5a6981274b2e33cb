"""The transforms of winograd.py: the matrices B^T, G, A^T per output tile size m (data), and the
row and column passes that apply B^T and A^T (and their adjoints) to a chunk of images.

Every pass receives m as `mt`, a tuple of m zeros: numba compiles one specialization per tuple
length and sees len(mt) as a constant, so each tile size gets its own machine code, the loops
over the alpha = m + 2 transform positions unrolled and the zero coefficients skipped, while
the source stays one.  Layout of one chunk (winograd.py's docstring has the whole algorithm):

  u[i]  rows (c, n, th) of pitch WQ = m*TQ: sum_j BT[i, j] * x[n, c, m*th + j, :] (at column pw)
  V[l]  (C, T), tiles t = (n, th, tq): sum_k BT[l, k] * u[i][row, m*tq + k]
  M[l]  (K, T) = U[alpha*i + l] @ V[l]                     (the GEMMs, in winograd.py)
  o[i]  rows (k, n, th): o[i][row, m*tq + b] = sum_l AT[b, l] * M[l][k, tile]
  y[n, k, m*th + a, :] = sum_i AT[a, i] * o[i][row, :OW] + bias

The passes run over long contiguous rows: a row pass (vertical, one loop per image row) and a
flat column pass over all the tiles of a chunk, reading u[m*t + k].  Every tile row holds
TQ = ceil(OW / m) + 1 tiles so that the column passes run as one flat loop: the last one is junk
(it reads the next row's first columns) and is never read back; in the gradients its gy
transform is zero.  Views are made outside branches only: numba prunes their reference counts
there, in a branch each view costs atomic increments.
"""
from __future__ import annotations

import numpy as np
from numba import njit

_J = dict(nogil=True, cache=True, error_model="numpy")

# Transform matrices (B^T, G, A^T) per output tile size m.  F(4x4, 3x3) uses the points
# (0, 1, -1, 2, -1/2, inf), whose float32 error is ~4x smaller than with Lavin's (0, 1, -1, 2, -2).
TRANSFORMS = {
    2: (np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], np.float64),
        np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]], np.float64),
        np.array([[1, 1, 1, 0], [0, 1, -1, -1]], np.float64)),
    4: (np.array([[1, 1.5, -2, -1.5, 1, 0],
                  [0, -1, -2.5, -0.5, 1, 0],
                  [0, 1, 0.5, -2.5, 1, 0],
                  [0, -0.5, -1, 0.5, 1, 0],
                  [0, 2, -1, -2, 1, 0],
                  [0, 1, 1.5, -2, -1.5, 1]], np.float64),
        np.array([[1, 0, 0],
                  [-1 / 3, -1 / 3, -1 / 3],
                  [1 / 3, -1 / 3, 1 / 3],
                  [1 / 15, 2 / 15, 4 / 15],
                  [-16 / 15, 8 / 15, -4 / 15],
                  [0, 0, 1]], np.float64),
        np.array([[1, 1, 1, 1, 1, 0],
                  [0, 1, -1, 2, -0.5, 0],
                  [0, 1, 1, 4, 0.25, 0],
                  [0, 1, -1, 8, -0.125, 1]], np.float64)),
}


def _kernel_matrix(a, rows, cols):
    """a as float32 (exact: every coefficient of B^T and A^T is a small dyadic number), zero-padded
    to (rows, cols), so that both tile sizes index one shape.  float32, not float64: a float32
    kernel multiplying by a float64 constant would compute in float64."""
    out = np.zeros((rows, cols), np.float32)
    out[:a.shape[0], :a.shape[1]] = a
    assert np.array_equal(out[:a.shape[0], :a.shape[1]].astype(np.float64), a)
    return out


_BT2, _BT4 = (_kernel_matrix(TRANSFORMS[m][0], 6, 6) for m in (2, 4))
_AT2, _AT4 = (_kernel_matrix(TRANSFORMS[m][2], 4, 6) for m in (2, 4))


# ----------------------------------------------------------------------------------------
# 1-D transforms: sums over the nonzero coefficients of one row or column of a constant matrix,
# in index order.  With m a constant the loops unroll and the zero tests fold away.
# ----------------------------------------------------------------------------------------

@njit(**_J)
def _bt(mt):
    return _BT2 if len(mt) == 2 else _BT4


@njit(**_J)
def _at(mt):
    return _AT2 if len(mt) == 2 else _AT4


@njit(**_J)
def _row(M, i, d):
    """sum_j M[i, j] * d[j]; d a 6-tuple whose entries past the matrix's width are never read."""
    s = d[0]
    first = True
    for j in range(6):
        c = M[i, j]
        if c != 0:
            v = d[j] * c
            s = v if first else s + v
            first = False
    return s


@njit(**_J)
def _col(M, j, d):
    """sum_i M[i, j] * d[i] (the transpose's row); d a tuple of M.shape[0] values."""
    s = d[0]
    first = True
    for i in range(M.shape[0]):
        c = M[i, j]
        if c != 0:
            v = d[i] * c
            s = v if first else s + v
            first = False
    return s


@njit(**_J)
def _load6(v, q, mt):
    """v[q:q + m + 2] as a 6-tuple (for m = 2 the last two repeat v[q] and are never used)."""
    big = len(mt) == 4
    return v[q], v[q + 1], v[q + 2], v[q + 3], v[q + 4] if big else v[q], v[q + 5] if big else v[q]


@njit(**_J)
def _load4(v, q, mt):
    """v[q:q + m] as a 4-tuple (for m = 2 the last two repeat v[q] and are never used)."""
    big = len(mt) == 4
    return v[q], v[q + 1], v[q + 2] if big else v[q], v[q + 3] if big else v[q]


# ----------------------------------------------------------------------------------------
# passes (the layout is in the module docstring)
# ----------------------------------------------------------------------------------------

@njit(**_J)
def in_rows(src, n0, nimg, TH, WQ, col0, mt, ub):
    """ub[i][((c*nimg + n)*TH + th)*WQ + col0 + w] = sum_j BT[i, j] * src[n0+n, c, m*th + j, w]
    for w < W (src holds m*TH + 2 rows of W columns); the other columns of ub stay as they are."""
    m = len(mt)
    M = _bt(mt)
    C = src.shape[1]
    W = src.shape[3]
    big = m == 4
    for c in range(C):
        for n in range(nimg):
            xs = src[n0 + n, c]
            for th in range(TH):
                r = m * th
                r0 = xs[r]
                r1 = xs[r + 1]
                r2 = xs[r + 2]
                r3 = xs[r + 3]
                r4 = xs[r + 4 if big else r]
                r5 = xs[r + 5 if big else r]
                b = ((c * nimg + n) * TH + th) * WQ + col0
                u0 = ub[0, b:b + W]
                u1 = ub[1, b:b + W]
                u2 = ub[2, b:b + W]
                u3 = ub[3, b:b + W]
                u4 = ub[4 if big else 0, b:b + W]
                u5 = ub[5 if big else 0, b:b + W]
                for w in range(W):
                    d = (r0[w], r1[w], r2[w], r3[w], r4[w], r5[w])
                    u0[w] = _row(M, 0, d)
                    u1[w] = _row(M, 1, d)
                    u2[w] = _row(M, 2, d)
                    u3[w] = _row(M, 3, d)
                    if big:
                        u4[w] = _row(M, 4, d)
                        u5[w] = _row(M, 5, d)


@njit(**_J)
def in_cols(u, L, mt, vb):
    """vb[l][t] = sum_k BT[l, k] * u[m*t + k], t < L (u holds m*L + 2 values)."""
    m = len(mt)
    M = _bt(mt)
    big = m == 4
    v0 = vb[0, :L]
    v1 = vb[1, :L]
    v2 = vb[2, :L]
    v3 = vb[3, :L]
    v4 = vb[4 if big else 0, :L]
    v5 = vb[5 if big else 0, :L]
    for t in range(L):
        d = _load6(u, m * t, mt)
        v0[t] = _row(M, 0, d)
        v1[t] = _row(M, 1, d)
        v2[t] = _row(M, 2, d)
        v3[t] = _row(M, 3, d)
        if big:
            v4[t] = _row(M, 4, d)
            v5[t] = _row(M, 5, d)


@njit(**_J)
def in_cols_t(vb, L, mt, u):
    """Adjoint of in_cols: u[m*t + k] = sum over the tiles t' covering it of (B v_t')[k'];
    neighbouring tiles overlap by 2, every entry of u[:m*L + 2] is written."""
    m = len(mt)
    M = _bt(mt)
    big = m == 4
    a = m + 2
    d = _load6(vb[:, 0], 0, mt)
    for k in range(m):
        u[k] = _col(M, k, d)
    c0 = vb[0, 1:L]
    c1 = vb[1, 1:L]
    c2 = vb[2, 1:L]
    c3 = vb[3, 1:L]
    c4 = vb[4 if big else 0, 1:L]
    c5 = vb[5 if big else 0, 1:L]
    p0 = vb[0, 0:L - 1]
    p1 = vb[1, 0:L - 1]
    p2 = vb[2, 0:L - 1]
    p3 = vb[3, 0:L - 1]
    p4 = vb[4 if big else 0, 0:L - 1]
    p5 = vb[5 if big else 0, 0:L - 1]
    uo = u[m:m * L]
    for s in range(L - 1):
        cur = (c0[s], c1[s], c2[s], c3[s], c4[s], c5[s])
        prev = (p0[s], p1[s], p2[s], p3[s], p4[s], p5[s])
        q = m * s
        uo[q] = _col(M, 0, cur) + _col(M, m, prev)
        uo[q + 1] = _col(M, 1, cur) + _col(M, m + 1, prev)
        if big:
            uo[q + 2] = _col(M, 2, cur)
            uo[q + 3] = _col(M, 3, cur)
    d = _load6(vb[:, L - 1], 0, mt)
    u[m * L] = _col(M, a - 2, d)
    u[m * L + 1] = _col(M, a - 1, d)


@njit(**_J)
def in_rows_t(ub, n0, nimg, TH, WQ, col0, zo, mt, dst):
    """Adjoint of in_rows: dst[n0+n, c, m*th + j, w] (m*TH + 2 rows of W columns) from the u
    rows of tile rows th (j < m) and th - 1 (j + m < m + 2), reading u columns col0 + w; the
    missing tile row above th = 0 reads the zeros at ub[:, zo:] (offsets, not branches)."""
    m = len(mt)
    M = _bt(mt)
    big = m == 4
    C = dst.shape[1]
    W = dst.shape[3]
    for n in range(nimg):
        for c in range(C):
            gs = dst[n0 + n, c]
            rb = (c * nimg + n) * TH
            for th in range(TH):
                ba = (rb + th) * WQ + col0
                bp = (rb + th - 1) * WQ + col0 if th >= 1 else zo
                a0 = ub[0, ba:ba + W]
                a1 = ub[1, ba:ba + W]
                a2 = ub[2, ba:ba + W]
                a3 = ub[3, ba:ba + W]
                a4 = ub[4 if big else 0, ba:ba + W]
                a5 = ub[5 if big else 0, ba:ba + W]
                p0 = ub[0, bp:bp + W]
                p1 = ub[1, bp:bp + W]
                p2 = ub[2, bp:bp + W]
                p3 = ub[3, bp:bp + W]
                p4 = ub[4 if big else 0, bp:bp + W]
                p5 = ub[5 if big else 0, bp:bp + W]
                r = m * th
                g0 = gs[r]
                g1 = gs[r + 1]
                g2 = gs[r + 2 if big else r]
                g3 = gs[r + 3 if big else r]
                for w in range(W):
                    cur = (a0[w], a1[w], a2[w], a3[w], a4[w], a5[w])
                    prev = (p0[w], p1[w], p2[w], p3[w], p4[w], p5[w])
                    g0[w] = _col(M, 0, cur) + _col(M, m, prev)
                    g1[w] = _col(M, 1, cur) + _col(M, m + 1, prev)
                    if big:
                        g2[w] = _col(M, 2, cur)
                        g3[w] = _col(M, 3, cur)
            _in_rows_t_last(ub, (rb + TH - 1) * WQ + col0, mt, gs[m * TH], gs[m * TH + 1])


@njit(**_J)
def _in_rows_t_last(ub, bp, mt, g0, g1):
    """Rows m*TH and m*TH + 1: only tile row TH - 1 covers them."""
    m = len(mt)
    M = _bt(mt)
    big = m == 4
    W = g0.size
    p0 = ub[0, bp:bp + W]
    p1 = ub[1, bp:bp + W]
    p2 = ub[2, bp:bp + W]
    p3 = ub[3, bp:bp + W]
    p4 = ub[4 if big else 0, bp:bp + W]
    p5 = ub[5 if big else 0, bp:bp + W]
    for w in range(W):
        prev = (p0[w], p1[w], p2[w], p3[w], p4[w], p5[w])
        g0[w] = _col(M, m, prev)
        g1[w] = _col(M, m + 1, prev)


@njit(**_J)
def out_cols(mb, L, mt, o):
    """o[m*t + b] = sum_l AT[b, l] * mb[l][t], t < L."""
    m = len(mt)
    M = _at(mt)
    big = m == 4
    m0 = mb[0, :L]
    m1 = mb[1, :L]
    m2 = mb[2, :L]
    m3 = mb[3, :L]
    m4 = mb[4 if big else 0, :L]
    m5 = mb[5 if big else 0, :L]
    for t in range(L):
        d = (m0[t], m1[t], m2[t], m3[t], m4[t], m5[t])
        q = m * t
        o[q] = _row(M, 0, d)
        o[q + 1] = _row(M, 1, d)
        if big:
            o[q + 2] = _row(M, 2, d)
            o[q + 3] = _row(M, 3, d)


@njit(**_J)
def out_cols_t(o, L, mt, mb):
    """Adjoint of out_cols: mb[l][t] = sum_b AT[b, l] * o[m*t + b]."""
    m = len(mt)
    M = _at(mt)
    big = m == 4
    m0 = mb[0, :L]
    m1 = mb[1, :L]
    m2 = mb[2, :L]
    m3 = mb[3, :L]
    m4 = mb[4 if big else 0, :L]
    m5 = mb[5 if big else 0, :L]
    for t in range(L):
        e = _load4(o, m * t, mt)
        m0[t] = _col(M, 0, e)
        m1[t] = _col(M, 1, e)
        m2[t] = _col(M, 2, e)
        m3[t] = _col(M, 3, e)
        if big:
            m4[t] = _col(M, 4, e)
            m5[t] = _col(M, 5, e)


@njit(**_J)
def out_rows(ob, n0, nimg, TH, WQ, mt, bias, y):
    """y[n0+n, k, m*th + a, :] = sum_i AT[a, i] * o[i] row (k, n, th) + bias[k]: the full tile
    rows here, the OH % m rows of a partial last one in _out_rows_part."""
    m = len(mt)
    M = _at(mt)
    big = m == 4
    K = y.shape[1]
    OH = y.shape[2]
    OW = y.shape[3]
    for k in range(K):
        bk = bias[k]
        for n in range(nimg):
            ys = y[n0 + n, k]
            rb = (k * nimg + n) * TH
            for th in range(OH // m):
                b = (rb + th) * WQ
                o0 = ob[0, b:b + OW]
                o1 = ob[1, b:b + OW]
                o2 = ob[2, b:b + OW]
                o3 = ob[3, b:b + OW]
                o4 = ob[4 if big else 0, b:b + OW]
                o5 = ob[5 if big else 0, b:b + OW]
                r = m * th
                y0 = ys[r]
                y1 = ys[r + 1]
                y2 = ys[r + 2 if big else r]
                y3 = ys[r + 3 if big else r]
                for w in range(OW):
                    d = (o0[w], o1[w], o2[w], o3[w], o4[w], o5[w])
                    y0[w] = _row(M, 0, d) + bk
                    y1[w] = _row(M, 1, d) + bk
                    if big:
                        y2[w] = _row(M, 2, d) + bk
                        y3[w] = _row(M, 3, d) + bk
            if OH % m:
                _out_rows_part(ob, (rb + TH - 1) * WQ, mt, bk, ys[m * (TH - 1):])


@njit(**_J)
def _out_rows_part(ob, b, mt, bk, ys):
    """The OH % m rows ys of a partial last tile row."""
    m = len(mt)
    M = _at(mt)
    big = m == 4
    OW = ys.shape[1]
    o0 = ob[0, b:b + OW]
    o1 = ob[1, b:b + OW]
    o2 = ob[2, b:b + OW]
    o3 = ob[3, b:b + OW]
    o4 = ob[4 if big else 0, b:b + OW]
    o5 = ob[5 if big else 0, b:b + OW]
    for a in range(ys.shape[0]):
        ya = ys[a]
        for w in range(OW):
            ya[w] = _row(M, a, (o0[w], o1[w], o2[w], o3[w], o4[w], o5[w])) + bk


@njit(**_J)
def out_rows_t(gy, n0, nimg, TH, WQ, mt, ob):
    """Adjoint of out_rows (without the bias); the pad columns [OW, WQ) of ob stay zero."""
    m = len(mt)
    M = _at(mt)
    big = m == 4
    K = gy.shape[1]
    OH = gy.shape[2]
    OW = gy.shape[3]
    for k in range(K):
        for n in range(nimg):
            gs = gy[n0 + n, k]
            rb = (k * nimg + n) * TH
            for th in range(OH // m):
                r = m * th
                g0 = gs[r]
                g1 = gs[r + 1]
                g2 = gs[r + 2 if big else r]
                g3 = gs[r + 3 if big else r]
                b = (rb + th) * WQ
                o0 = ob[0, b:b + OW]
                o1 = ob[1, b:b + OW]
                o2 = ob[2, b:b + OW]
                o3 = ob[3, b:b + OW]
                o4 = ob[4 if big else 0, b:b + OW]
                o5 = ob[5 if big else 0, b:b + OW]
                for w in range(OW):
                    e = (g0[w], g1[w], g2[w], g3[w])
                    o0[w] = _col(M, 0, e)
                    o1[w] = _col(M, 1, e)
                    o2[w] = _col(M, 2, e)
                    o3[w] = _col(M, 3, e)
                    if big:
                        o4[w] = _col(M, 4, e)
                        o5[w] = _col(M, 5, e)
            if OH % m:
                _out_rows_part_t(gs[m * (TH - 1):], (rb + TH - 1) * WQ, mt, ob)


@njit(**_J)
def _out_rows_part_t(gs, b, mt, ob):
    """The o rows of a partial last tile row: only its gs.shape[0] existing gy rows contribute
    (the missing ones are left out, not multiplied by 0, which would turn an inf into a NaN)."""
    m = len(mt)
    M = _at(mt)
    OW = gs.shape[1]
    r = gs.shape[0]
    for i in range(m + 2):
        oi = ob[i, b:b + OW]
        for w in range(OW):
            oi[w] = 0
        for a in range(r):
            c = M[a, i]
            ga = gs[a]
            if c != 0:
                for w in range(OW):
                    oi[w] += ga[w] * c
