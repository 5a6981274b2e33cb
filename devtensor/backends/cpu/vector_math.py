"""Elementwise kernels where numpy is missing (erf) or slow (relu and its backward), as numba
loops compiled on first use; large relu passes run on every core.  Every element is computed on
its own (no fastmath, no reductions), so the split over the cores never changes a result."""
from __future__ import annotations

import functools
import math

import numba
import numpy as np

from .threads import run_blocks

_erf_ufunc = None


def erf(x):
    global _erf_ufunc
    if x.dtype.kind != "f" or x.dtype.itemsize < 4:  # float16 / bfloat16 (numba has neither): in float32, rounded
        return erf(x.astype(np.float32)).astype(x.dtype)
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
_SPLIT_MIN = 1 << 18   # elements: below this a thread wake-up costs more than it saves
_BLOCK = 1 << 18       # elements per block a thread takes

_NUMBA_MIN = 1024  # elements: below this numpy's call is as fast as the jitted loop's dispatch
_JIT_DTYPES = (np.float32, np.float64)


def _jit_ok(*arrays):
    a0 = arrays[0]
    return (a0.size >= _NUMBA_MIN and a0.dtype in _JIT_DTYPES
            and all(a.flags.c_contiguous and a.dtype == a0.dtype for a in arrays))


@functools.cache
def _relu_kernel():
    # compiled on first use (cached to disk): nothing compiles at import
    @numba.njit(cache=True, nogil=True)
    def k(x, out):
        for i in range(x.size):
            v = x[i]
            out[i] = 0 if v <= 0 else v  # NaN stays NaN, as in PyTorch

    return k


@functools.cache
def _relu_backward_kernel():
    @numba.njit(cache=True, nogil=True)
    def k(g, out, res):
        for i in range(g.size):
            res[i] = g[i] if out[i] > 0 else 0

    return k


def relu(x):
    """max(x, 0); a jitted loop (numpy's maximum, which also handles NaN for every dtype, is several
    times slower from a few thousand elements up), on every core for large arrays."""
    if not _jit_ok(x):
        return np.maximum(x, 0)
    k = _relu_kernel()
    out = np.empty_like(x)
    xf, of = x.reshape(-1), out.reshape(-1)
    if x.size < _SPLIT_MIN:
        k(xf, of)
    else:
        run_blocks(lambda lo, hi: k(xf[lo:hi], of[lo:hi]), x.size, _BLOCK)
    return out


def relu_backward(g, out):
    """g where out > 0 else 0, in one pass (np.where plus a comparison is three), on every core
    for large arrays. Not numba parallel=True: its OpenMP workers spin for milliseconds after a
    parallel region and starve the BLAS GEMM that follows in the backward pass."""
    if not _jit_ok(g, out):
        return np.where(out > 0, g, np.zeros((), g.dtype))
    k = _relu_backward_kernel()
    res = np.empty_like(g)
    gf, of, rf = g.reshape(-1), out.reshape(-1), res.reshape(-1)
    if g.size < _SPLIT_MIN:
        k(gf, of, rf)
    else:
        run_blocks(lambda lo, hi: k(gf[lo:hi], of[lo:hi], rf[lo:hi]), g.size, _BLOCK)
    return res
