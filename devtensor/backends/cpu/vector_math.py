"""Elementwise math numpy lacks (erf), as numba ufuncs compiled on first use."""
from __future__ import annotations

import math

import numba
import numpy as np

_erf_ufunc = None


def erf(x):
    global _erf_ufunc
    if _erf_ufunc is None:
        # vectorize without signatures: a lazy DUFunc compiles per dtype on first call, cached
        @numba.vectorize(cache=True)
        def _erf(v):
            return math.erf(v)

        _erf_ufunc = _erf
    return np.asarray(_erf_ufunc(x)).astype(x.dtype, copy=False)


# Large relu forward/backward passes are split over the cores (threads.py's pool: no spinning
# workers). Each thread takes 1 MiB-ish blocks from a shared counter rather than a fixed half,
# because OpenBLAS's own worker busy-waits after each GEMM and time-shares one core (threads.py).
_SPLIT_MIN = 1 << 18   # elements: below this a thread wake-up (20-60 us) costs more than it saves
_BLOCK = 1 << 18       # elements per block a thread takes


def _blocked(fn, n):
    """fn(lo, hi) over [0, n) in blocks, on every core; fn must release the GIL (numpy ufuncs
    and nogil numba loops do)."""
    import itertools

    from .threads import run_split, threads

    counter = itertools.count()  # next() is atomic under the GIL
    nblocks = -(-n // _BLOCK)

    def worker():
        while True:
            i = next(counter)
            if i >= nblocks:
                return
            fn(i * _BLOCK, min(n, (i + 1) * _BLOCK))

    run_split(worker, [()] * min(nblocks, threads()))


def relu(x):
    """max(x, 0), on every core for large contiguous arrays."""
    if x.size < _SPLIT_MIN or not x.flags.c_contiguous:
        return np.maximum(x, 0)
    out = np.empty_like(x)
    xf, of = x.reshape(-1), out.reshape(-1)
    _blocked(lambda lo, hi: np.maximum(xf[lo:hi], 0, out=of[lo:hi]), x.size)
    return out


_relu_bw = None


def relu_backward(g, out):
    """g where out > 0 else 0, in one pass (np.where plus a comparison is three), on every core
    for large arrays. Not numba parallel=True: its OpenMP workers spin for milliseconds after a
    parallel region and starve the BLAS GEMM that follows in the backward pass (measured: a
    0.55 ms GEMM took 4.5 ms right after one)."""
    global _relu_bw
    if g.size < 65536 or not (g.flags.c_contiguous and out.flags.c_contiguous) or g.dtype != out.dtype:
        return np.where(out > 0, g, np.zeros((), g.dtype))
    if _relu_bw is None:
        @numba.njit(cache=True, nogil=True)
        def _kernel(g, out, res):
            for i in range(g.size):
                res[i] = g[i] if out[i] > 0 else 0

        _relu_bw = _kernel
    res = np.empty_like(g)
    gf, of, rf = g.reshape(-1), out.reshape(-1), res.reshape(-1)
    if g.size < _SPLIT_MIN:
        _relu_bw(gf, of, rf)
    else:
        _blocked(lambda lo, hi: _relu_bw(gf[lo:hi], of[lo:hi], rf[lo:hi]), g.size)
    return res
