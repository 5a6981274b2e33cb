"""OpenBLAS settings that must be in the environment before numpy loads OpenBLAS.

OPENBLAS_THREAD_TIMEOUT: after every multi-threaded BLAS call OpenBLAS's idle workers busy-wait
for 2**28 cycles (~0.1 s) before they sleep. In a training step the linear layers' GEMMs are
followed by devtensor's own threaded kernels (conv, pooling, relu: backends/cpu/threads.py), and
the spinning worker takes one of their cores. With the minimum, 4, the workers sleep at once.
Measured on the MNIST CNN's training step (batch 100, 2 cores, `devtensor bench --ops train_cnn`):
49.9 -> 33.0 ms; the MLP steps (784-128-10 b100, 784-10-10 b64) did not move beyond run-to-run
noise (+-20 % here).

Only a default: a value the user set wins, and nothing changes when numpy (hence OpenBLAS) was
imported before devtensor, since OpenBLAS reads the variable once, when it loads.
DEVTENSOR_BLAS_ENV=0 leaves the environment alone.
"""
from __future__ import annotations

import os
import sys

DEFAULTS = {"OPENBLAS_THREAD_TIMEOUT": "4"}


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
