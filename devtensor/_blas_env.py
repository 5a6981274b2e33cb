"""OpenBLAS settings that must be in the environment before numpy loads OpenBLAS.

OPENBLAS_THREAD_TIMEOUT: after every multi-threaded BLAS call OpenBLAS's idle workers busy-wait
for 2**n TSC cycles before they sleep; the default n = 28 is ~0.1 s. In a training step the linear
layers' GEMMs are followed by devtensor's own threaded kernels (conv, pooling, relu:
backends/cpu/threads.py), and for those 0.1 s the spinning worker takes one of their cores. Too
short hurts the other way: a worker that sleeps at once must be woken for the next GEMM, a few
tens of microseconds later in an MLP step. n = 20 keeps the workers awake between the GEMMs of
one step and asleep during the conv kernels (the step timings behind the choice are in
bench/README.md, "cpu malloc and BLAS settings").

Only a default: a value the user set wins, and nothing changes when numpy (hence OpenBLAS) was
imported before devtensor, since OpenBLAS reads the variable once, when it loads.
DEVTENSOR_BLAS_ENV=0 leaves the environment alone.
"""
from __future__ import annotations

import os
import sys

DEFAULTS = {"OPENBLAS_THREAD_TIMEOUT": "20"}


def apply():
    """Set the defaults the user did not set; returns the names set (empty when too late)."""
    if os.environ.get("DEVTENSOR_BLAS_ENV", "1") == "0" or "numpy" in sys.modules:
        return []
    done = []
    for k, v in DEFAULTS.items():
        if k not in os.environ:
            os.environ[k] = v
            done.append(k)
    return done


applied = apply()
