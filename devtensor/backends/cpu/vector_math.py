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
