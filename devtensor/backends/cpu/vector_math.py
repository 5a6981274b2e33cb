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


_relu_bw = None


def relu_backward(g, out):
    """g where out > 0 else 0, in one pass (np.where plus a comparison is three). Serial on purpose:
    numba's OpenMP workers spin for milliseconds after a parallel region and starve the BLAS GEMM
    that follows in the backward pass (measured: a 0.55 ms GEMM took 4.5 ms right after one)."""
    global _relu_bw
    if g.size < 65536 or not (g.flags.c_contiguous and out.flags.c_contiguous) or g.dtype != out.dtype:
        return np.where(out > 0, g, np.zeros((), g.dtype))
    if _relu_bw is None:
        @numba.njit(cache=True)
        def _kernel(g, out, res):
            for i in range(g.size):
                res[i] = g[i] if out[i] > 0 else 0

        _relu_bw = _kernel
    res = np.empty_like(g)
    _relu_bw(g.reshape(-1), out.reshape(-1), res.reshape(-1))
    return res
