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
_A2, _A4 = (_kernel_matrix(TRANSFORMS[m][2].T, 6, 6) for m in (2, 4))  # the adjoint's rows


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
def _a(mt):
    return _A2 if len(mt) == 2 else _A4


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
def _load(v, q, kt):
    """v[q:q + len(kt)] as a 6-tuple (the entries past len(kt) repeat v[q] and are never used)."""
    n = len(kt)
    return (v[q], v[q + 1], v[q + 2] if n > 2 else v[q], v[q + 3] if n > 3 else v[q],
            v[q + 4] if n > 4 else v[q], v[q + 5] if n > 5 else v[q])


@njit(inline="always", **_J)
def _views(a, lo, hi, mt):
    """a[i, lo:hi] for the m + 2 rows i (for m = 2 the last two repeat row 0 and are never used).
    Inlined into the numba IR of its callers: views returned by a compiled call keep their
    reference counts, which the row passes would pay on every image row."""
    big = len(mt) == 4
    return (a[0, lo:hi], a[1, lo:hi], a[2, lo:hi], a[3, lo:hi], a[4 if big else 0, lo:hi],
            a[5 if big else 0, lo:hi])


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
                u0, u1, u2, u3, u4, u5 = _views(ub, b, b + W, mt)
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
    _tile_cols(u, L, mt, mt + (0, 0), vb)


@njit(**_J)
def _tile_cols(src, L, mt, kt, dst):
    """dst[l][t] = sum_k M[l, k] * src[m*t + k] over the len(kt) values of tile t, t < L, l < m + 2:
    M = B^T for the input transform (kt of length m + 2, so neighbouring tiles overlap by 2) and
    M = A for the adjoint of the output transform (kt of length m)."""
    m = len(mt)
    M = _bt(mt) if len(kt) == m + 2 else _a(mt)
    big = m == 4
    d0, d1, d2, d3, d4, d5 = _views(dst, 0, L, mt)
    for t in range(L):
        d = _load(src, m * t, kt)
        d0[t] = _row(M, 0, d)
        d1[t] = _row(M, 1, d)
        d2[t] = _row(M, 2, d)
        d3[t] = _row(M, 3, d)
        if big:
            d4[t] = _row(M, 4, d)
            d5[t] = _row(M, 5, d)


@njit(**_J)
def in_cols_t(vb, L, mt, u):
    """Adjoint of in_cols: u[m*t + k] = sum over the tiles t' covering it of (B v_t')[k'];
    neighbouring tiles overlap by 2, every entry of u[:m*L + 2] is written."""
    m = len(mt)
    M = _bt(mt)
    big = m == 4
    a = m + 2
    d = _load(vb[:, 0], 0, mt + (0, 0))
    for k in range(m):
        u[k] = _col(M, k, d)
    c0, c1, c2, c3, c4, c5 = _views(vb, 1, L, mt)
    p0, p1, p2, p3, p4, p5 = _views(vb, 0, L - 1, mt)
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
    d = _load(vb[:, L - 1], 0, mt + (0, 0))
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
                a0, a1, a2, a3, a4, a5 = _views(ub, ba, ba + W, mt)
                p0, p1, p2, p3, p4, p5 = _views(ub, bp, bp + W, mt)
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
    W = g0.size
    p0, p1, p2, p3, p4, p5 = _views(ub, bp, bp + W, mt)
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
    m0, m1, m2, m3, m4, m5 = _views(mb, 0, L, mt)
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
    _tile_cols(o, L, mt, mt, mb)


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
                o0, o1, o2, o3, o4, o5 = _views(ob, b, b + OW, mt)
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
    M = _at(mt)
    OW = ys.shape[1]
    o0, o1, o2, o3, o4, o5 = _views(ob, b, b + OW, mt)
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
                o0, o1, o2, o3, o4, o5 = _views(ob, b, b + OW, mt)
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
