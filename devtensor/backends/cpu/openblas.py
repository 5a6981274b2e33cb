"""The OpenBLAS libraries this process loaded (numpy's), found through /proc/self/maps (Linux), for
the code that talks to OpenBLAS directly: rnn_blas.py (its thread count and GEMM addresses) and
`devtensor info` (its thread count and build)."""
from __future__ import annotations

import ctypes

# the scipy-openblas wheels numpy ships prefix and suffix every symbol; a plain build does neither
_DECORATIONS = (("scipy_", "64_"), ("scipy_", ""), ("", "64_"), ("", ""))


def loaded():
    """(ctypes library, prefix, suffix) for each loaded OpenBLAS, with the symbol decoration under
    which it exports openblas_get_num_threads; nothing where /proc/self/maps cannot be read."""
    try:
        with open("/proc/self/maps") as f:
            libs = sorted({ln.split()[-1] for ln in f if "openblas" in ln.lower() and ".so" in ln})
    except OSError:
        return
    for path in libs:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix, suffix in _DECORATIONS:
            if getattr(lib, f"{prefix}openblas_get_num_threads{suffix}", None) is not None:
                yield lib, prefix, suffix
                break
