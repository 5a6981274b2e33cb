"""Keep freed activation buffers in the process heap instead of handing them back to the OS.

glibc's malloc serves blocks above its mmap threshold (128 KiB, growing to at most 32 MiB as
blocks are freed) with fresh mmap'd pages and unmaps them on free; the heap's top is trimmed
above 128 KiB. A training step allocates and frees the same large activations and gradients
every step, so each one is page-faulted in again, a cost that grows with the activation size.
Raising both thresholds lets malloc reuse those blocks (the measured step times are in
bench/README.md, "cpu malloc and BLAS settings").

The cost: memory freed by devtensor (or anything else in the process) stays mapped, up to the
trim threshold above the heap's live top, so RSS stays near its peak. Set
DEVTENSOR_CPU_MALLOC_TUNE=0 to keep glibc's defaults. Nothing happens off glibc (macOS, musl).
"""
from __future__ import annotations

import ctypes
import os

# mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 64 << 20   # blocks up to 64 MiB come from the heap and are reused
TRIM_THRESHOLD = 256 << 20  # keep up to 256 MiB of free heap top mapped

tuned = False


def tune():
    """Apply the thresholds once per process (glibc only); returns whether they were applied."""
    global tuned
    if tuned or os.environ.get("DEVTENSOR_CPU_MALLOC_TUNE", "1") == "0":
        return tuned
    try:
        libc = ctypes.CDLL("libc.so.6")  # glibc's soname (find_library would spawn ldconfig)
        libc.gnu_get_libc_version  # raises AttributeError off glibc
    except (OSError, AttributeError):
        return False
    tuned = bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return tuned
