"""Winograd conv2d F(m x m, 3x3), m = 2 or 4, on the cpu backend: forward, input gradient and
weight gradient of 3x3, stride-1, dilation-1, ungrouped convolutions (conv.py picks this path by
shape).  One implementation for both tile sizes: the transform matrices are data and the
transform passes are generic in m (winograd_transforms.py); this module holds the GEMMs, the
per-thread workers and the drivers.

Algorithm (Lavin & Gray 2015).  Per alpha x alpha input tile d (stride m, alpha = m + 2) and 3x3
filter g, y = A^T [(G g G^T) * (B^T d B)] A gives the m x m outputs.  Summed over input channels,
each of the alpha^2 transform positions xi is a GEMM M[xi] (K, T) = U[xi] (K, C) @ V[xi] (C, T)
over the T tiles of a chunk of images.  The input gradient is the exact adjoint (gy tiles through
A, U^T @, then B back onto the overlapping input tiles); the weight gradient is
G^T [sum_t (A gy A^T) * (B^T d B)] G, one GEMM (C, T) @ (T, K) per xi with the tiles summed in
order.  A chunk holds ~_CHUNK_TILES[m] tiles, so that one GEMM's V and M stay in L2.

Determinism.  The images are cut into chunks and groups of chunks by the shapes alone (_split),
never by the thread count; the threads take whole groups from a shared counter, and the weight
gradient keeps one partial sum per group, added up in group order.  So every output is the same
bits whatever the number of threads or their timing.  There is no fastmath (see gemm.py).

Accuracy.  Float32 error grows with the transform's constants: F(2x2, 3x3) stays within a few
roundings of the output's scale, F(4x4, 3x3) (points 0, 1, -1, 2, -1/2, inf rather than Lavin's
+-2, which loses ~4x more) within ~1e-6 relative at 32-64 channels, growing like sqrt(C).
Non-finite inputs spread to every output of the tiles that read them (alpha x alpha blocks
instead of the 3x3 neighbourhood of a direct convolution).
"""
from __future__ import annotations

import itertools

import numpy as np
from numba import njit

from .gemm import gemm
from .threads import fetch_add, run_split, scratch, threads
from .winograd_transforms import (TRANSFORMS, in_cols, in_cols_t, in_rows, in_rows_t, out_cols, out_cols_t,
                                  out_rows, out_rows_t)

_J = dict(nogil=True, cache=True, error_model="numpy")

# Tiles per chunk (~8 images of the MNIST CNN's conv2 for m = 4): with larger chunks one GEMM's
# operands no longer stay in L2.
_CHUNK_TILES = {2: 640, 4: 336}


# ----------------------------------------------------------------------------------------
# per-thread workers: groups of chunks of images taken from a shared counter
# ----------------------------------------------------------------------------------------

@njit(**_J)
def _zero(a):
    f = a.reshape(-1)
    for q in range(f.size):
        f[q] = 0


@njit(**_J)
def _copy_rows(src, s0, sh, dst, d0, dh, nimg, H):
    """dst[d0 + n, c, dh + h] = src[s0 + n, c, sh + h] for n < nimg, h < H: the rows of x into
    the row-padded xp (dh = ph), or of the padded gradient back out (sh = ph).  The other rows
    of xp stay as they are (columns are padded in the u rows instead)."""
    for n in range(nimg):
        for c in range(dst.shape[1]):
            a = src[s0 + n, c]
            b = dst[d0 + n, c]
            for h in range(H):
                sv = a[sh + h]
                dv = b[dh + h]
                for w in range(sv.size):
                    dv[w] = sv[w]


@njit(**_J)
def _load_x(x, n0, nimg, ph, pw, TH, WQ, rows_direct, mt, xp, ub):
    """The u rows of images n0..n0+nimg: straight from x when its rows need no padding."""
    if rows_direct:
        in_rows(x, n0, nimg, TH, WQ, pw, mt, ub)
    else:
        _copy_rows(x, n0, 0, xp, 0, ph, nimg, x.shape[2])
        in_rows(xp, 0, nimg, TH, WQ, pw, mt, ub)


@njit(**_J)
def _groups(N, nb, cpg):
    return -(-N // (nb * cpg))


@njit(**_J)
def _fwd(x, U, bias, ph, pw, TH, TQ, nb, cpg, counter, rows_direct, mt, xp, ub, vb, mb, ob, y):
    m = len(mt)
    a, WQ = m + 2, m * TQ
    N, C, K = x.shape[0], x.shape[1], U.shape[1]
    _zero(xp)
    prev = -1
    g = fetch_add(counter, 1)
    while g < _groups(N, nb, cpg):
        for n0 in range(g * cpg * nb, min(N, (g + 1) * cpg * nb), nb):
            nimg = min(nb, N - n0)
            if nimg != prev:  # the pad columns of the u rows (their layout depends on nimg)
                _zero(ub)
                prev = nimg
            T = nimg * TH * TQ
            _load_x(x, n0, nimg, ph, pw, TH, WQ, rows_direct, mt, xp, ub)
            for i in range(a):
                in_cols(ub[i], C * T, mt, vb)
                for l in range(a):
                    gemm(U[a * i + l], vb[l, :C * T].reshape((C, T)), mb[l, :K * T].reshape((K, T)))
                out_cols(mb, K * T, mt, ob[i])
            out_rows(ob, n0, nimg, TH, WQ, mt, bias, y)
        g = fetch_add(counter, 1)


@njit(**_J)
def _bwd_input(gy, UT, ph, pw, TH, TQ, nb, cpg, counter, rows_direct, mt, xp, ub, vb, mb, ob, gx):
    m = len(mt)
    a, WQ = m + 2, m * TQ
    N, C, K = gy.shape[0], UT.shape[1], gy.shape[1]
    zo = ub.shape[1] - WQ
    for i in range(a):  # the zero row of in_rows_t
        _zero(ub[i, zo:])
    prev = -1
    g = fetch_add(counter, 1)
    while g < _groups(N, nb, cpg):
        for n0 in range(g * cpg * nb, min(N, (g + 1) * cpg * nb), nb):
            nimg = min(nb, N - n0)
            if nimg != prev:  # the pad columns of the o rows
                _zero(ob)
                prev = nimg
            T = nimg * TH * TQ
            out_rows_t(gy, n0, nimg, TH, WQ, mt, ob)
            for i in range(a):
                out_cols_t(ob[i], K * T, mt, mb)
                for l in range(a):
                    gemm(UT[a * i + l], mb[l, :K * T].reshape((K, T)), vb[l, :C * T].reshape((C, T)))
                in_cols_t(vb, C * T, mt, ub[i])
            if rows_direct:
                in_rows_t(ub, n0, nimg, TH, WQ, pw, zo, mt, gx)
            else:
                in_rows_t(ub, 0, nimg, TH, WQ, pw, zo, mt, xp)
                _copy_rows(xp, 0, ph, gx, n0, 0, nimg, gx.shape[2])
        g = fetch_add(counter, 1)


@njit(**_J)
def _bwd_weight_rows(gy, x, n0, nimg, ph, pw, TH, TQ, rows_direct, mt, xp, ub, ob):
    """The row passes of images n0..n0+nimg: ub[i] for the input, ob[i] for gy."""
    WQ = len(mt) * TQ
    _load_x(x, n0, nimg, ph, pw, TH, WQ, rows_direct, mt, xp, ub)
    out_rows_t(gy, n0, nimg, TH, WQ, mt, ob)


@njit(**_J)
def _bwd_weight_cols(ub_i, ob_i, C, K, T, mt, vb, mb):
    """The column passes of row position i: vb[l] (C, T) and mb[l] (K, T) for the alpha
    positions l, one row per channel."""
    in_cols(ub_i, C * T, mt, vb)
    out_cols_t(ob_i, K * T, mt, mb)


def _bwd_weight(gy, x, g, job, next_group, Sg):
    """Groups of chunks from next_group(), each summed into its own Sg[grp] (alpha^2, K, C), its
    chunks in order.  The GEMMs S[xi] += M[xi] @ V[xi]^T sum over the tiles: BLAS runs these dot
    products (numba cannot vectorize them without reassociation, see gemm.py), and it sums each
    output along T in an order fixed by the shapes, never split over its threads.  V is copied
    to (T, C) first: OpenBLAS runs the (K, T) @ (T, C) form about twice as fast as the one with
    both operands T-contiguous.  One row position i at a time, so that its V and M are still in
    L2 when the GEMMs read them."""
    a, C, K, mt = g.alpha, g.C, g.K, (0,) * g.m
    xp, ub, vb, mb, ob = g.buffers(job)
    P = np.empty((a, K, C), g.dtype)
    VT = np.empty(a * g.nb * g.TH * g.TQ * C, g.dtype)
    _zero(xp)
    prev = -1
    grp = next_group()
    while grp < g.groups:
        S = Sg[grp].reshape(a, a, K, C)
        for n0 in range(grp * g.cpg * g.nb, min(g.N, (grp + 1) * g.cpg * g.nb), g.nb):
            nimg = min(g.nb, g.N - n0)
            if nimg != prev:  # the junk tiles of a new chunk size read zeros
                _zero(ub)
                _zero(ob)
                prev = nimg
            T = nimg * g.TH * g.TQ
            _bwd_weight_rows(gy, x, n0, nimg, g.ph, g.pw, g.TH, g.TQ, g.rows_direct, mt, xp, ub, ob)
            V = vb[:, :C * T].reshape(a, C, T)
            M = mb[:, :K * T].reshape(a, K, T)
            Vt = VT[:a * T * C].reshape(a, T, C)
            for i in range(a):
                _bwd_weight_cols(ub[i], ob[i], C, K, T, mt, vb, mb)
                np.copyto(Vt, V.transpose(0, 2, 1))
                np.matmul(M, Vt, out=P)
                S[i] += P
        grp = next_group()


# ----------------------------------------------------------------------------------------
# drivers
# ----------------------------------------------------------------------------------------

def _split(N, tiles_per_image, chunk_tiles):
    """(images per chunk, chunks per group, groups, threads) for N images.  A chunk holds about
    chunk_tiles tiles (and there are at least ~8 chunks when N allows); ~12 groups of chunks, so
    that a thread slowed down by another busy thread on its core takes fewer.  The cut depends on
    the shapes only, not on the number of threads: the weight gradient sums per group."""
    nb = max(1, min(chunk_tiles // tiles_per_image, -(-N // 8)))
    chunks = -(-N // nb)
    cpg = max(1, chunks // 12)
    groups = -(-chunks // cpg)
    return nb, cpg, groups, min(threads(), groups)


class _Geom:
    """Tiling of one call with m x m output tiles."""

    def __init__(self, N, C, H, W, K, ph, pw, m, dtype):
        self.N, self.C, self.H, self.W, self.K, self.m = N, C, H, W, K, m
        self.ph, self.pw = ph, pw
        self.alpha = m + 2
        self.OH, self.OW = H + 2 * ph - 2, W + 2 * pw - 2
        self.TH = -(-self.OH // m)
        self.TQ = -(-self.OW // m) + 1  # tiles per tile row, the last one junk
        self.WQ = m * self.TQ
        self.nb, self.cpg, self.groups, self.threads = _split(N, self.TH * self.TQ, _CHUNK_TILES[m])
        self.counter = np.zeros(1, np.int64)  # groups handed out so far
        self.dtype = dtype
        # the tile rows cover x's rows exactly: read them in place (columns are padded in u)
        self.rows_direct = ph == 0 and H == m * self.TH + 2

    def buffers(self, job):
        """Work buffers of thread job `job` (reused across calls, see threads.scratch); the
        workers zero what must start zeroed."""
        nb, TH, WQ, TQ, C, K, a = self.nb, self.TH, self.WQ, self.TQ, self.C, self.K, self.alpha
        dt = self.dtype
        xps = (1, 1, 1, 1) if self.rows_direct else (nb, C, self.m * TH + 2, self.W)
        xp = scratch((job, 0), int(np.prod(xps)), dt).reshape(xps)
        # + 2: the last junk tile reads 2 past the rows; + WQ: a zero row for in_rows_t
        ub = scratch((job, 1), a * (C * nb * TH * WQ + 2 + WQ), dt).reshape(a, -1)
        vb = scratch((job, 2), a * C * nb * TH * TQ, dt).reshape(a, -1)
        mb = scratch((job, 3), a * K * nb * TH * TQ, dt).reshape(a, -1)
        ob = scratch((job, 4), a * (K * nb * TH * WQ + 2), dt).reshape(a, -1)
        return xp, ub, vb, mb, ob

    def args(self):
        """The workers' geometry arguments; the tile size goes as a tuple of m zeros, whose length
        numba sees as a constant (see the module docstring)."""
        return (self.ph, self.pw, self.TH, self.TQ, self.nb, self.cpg, self.counter, self.rows_direct,
                (0,) * self.m)


def _weight_transform(w, m):
    """U[alpha*p + q, k, c] = (G w[k, c] G^T)[p, q], computed in float64."""
    K, C = w.shape[:2]
    G = TRANSFORMS[m][1]
    U = np.einsum("pa,kcab,qb->pqkc", G, w.astype(np.float64), G, optimize=True)
    return U.reshape((m + 2) ** 2, K, C)


# Channels (input and output) up to which F(4x4, 3x3) is used: its float32 error grows like
# sqrt(C), 4.3e-6 of the output's scale at 256.
_F43_MAX_C = 256


def tile(C, K, OH, OW):
    """The output tile size m for the two gradients: 4 where F(4x4, 3x3)'s error is small and its
    GEMM work (tiles counted with the junk one of each tile row) is below F(2x2, 3x3)'s (small
    outputs are not: 6x6 takes 216 against 192)."""
    if max(C, K) > _F43_MAX_C:
        return 2
    w2 = 16 * -(-OH // 2) * (-(-OW // 2) + 1)
    w4 = 36 * -(-OH // 4) * (-(-OW // 4) + 1)
    return 4 if w4 < w2 else 2


# The forward stays on F(2x2, 3x3): its output feeds every later layer, and Adam turns tiny
# activation differences into visible weight differences for weights whose gradients are near
# zero; with an F(4x4, 3x3) forward tests/test_training_parity.py's MNIST CNN drifted past its
# tolerance, with F(2x2, 3x3) it stays inside (the gradients' tile size did not matter).
FORWARD_TILE = 2


def forward(x, w, b, padding, m=None):
    """conv2d(x, w, b, stride 1, padding, dilation 1, groups 1) for a 3x3 w; x, w C-contiguous
    of one float dtype; b None or (K,).  m: the output tile size (FORWARD_TILE by default)."""
    N, C, H, W = x.shape
    K = w.shape[0]
    m = FORWARD_TILE if m is None else m
    g = _Geom(N, C, H, W, K, padding[0], padding[1], m, x.dtype)
    y = np.empty((N, K, g.OH, g.OW), x.dtype)
    U = np.ascontiguousarray(_weight_transform(w, m).astype(x.dtype))
    bias = np.zeros(K, x.dtype) if b is None else np.ascontiguousarray(b, dtype=x.dtype)
    jobs = [(x, U, bias, *g.args(), *g.buffers(j), y) for j in range(g.threads)]
    run_split(_fwd, jobs)
    return y


def backward_input(gy, w, x_shape, padding, m=None):
    """Gradient of forward with respect to x (shape x_shape); gy, w C-contiguous.  m: the tile
    size (tile(...) by default)."""
    N, C, H, W = (int(v) for v in x_shape)
    K = w.shape[0]
    m = tile(C, K, gy.shape[2], gy.shape[3]) if m is None else m
    g = _Geom(N, C, H, W, K, padding[0], padding[1], m, gy.dtype)
    gx = np.empty((N, C, H, W), gy.dtype)
    UT = np.ascontiguousarray(_weight_transform(w, m).transpose(0, 2, 1).astype(gy.dtype))
    jobs = [(gy, UT, *g.args(), *g.buffers(j), gx) for j in range(g.threads)]
    run_split(_bwd_input, jobs)
    return gx


def backward_weight(gy, x, w_shape, padding, m=None):
    """Gradient of forward with respect to w (shape w_shape); gy, x C-contiguous.  m: the tile
    size (tile(...) by default)."""
    N, C, H, W = x.shape
    K = int(w_shape[0])
    m = tile(C, K, gy.shape[2], gy.shape[3]) if m is None else m
    g = _Geom(N, C, H, W, K, padding[0], padding[1], m, x.dtype)
    a = m + 2
    Sg = np.zeros((g.groups, a * a, K, C), x.dtype)  # one partial sum per group
    counter = itertools.count()  # next() is atomic under the GIL
    run_split(_bwd_weight, [(gy, x, g, j, counter.__next__, Sg) for j in range(g.threads)])
    S = Sg.sum(0).astype(np.float64)  # the groups in order: numpy adds along axis 0 row by row
    G = TRANSFORMS[m][1]
    gw = np.einsum("pa,pqkc,qb->kcab", G, S.reshape(a, a, K, C), G, optimize=True)
    return gw.astype(x.dtype)
