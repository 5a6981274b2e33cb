"""A tiny thread pool for the cpu kernels that split work across cores themselves.

numba's parallel=True runs on an OpenMP (or TBB/workqueue) pool whose idle workers spin for
milliseconds after every parallel region and take cores from the OpenBLAS calls that follow
(nn_kernels' docstring has the measurements).  The conv kernels instead split their images
over plain Python threads: each runs one nogil numba call, and an idle pool thread sleeps on
a queue, so it costs nothing between calls.  Dispatch costs ~20 us, fine for kernels of a
millisecond and more.
"""
from __future__ import annotations

import os

_POOL = None


def threads():
    """Cores this process may run on (at most 8: the conv kernels stop scaling before that)."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    return max(1, min(n, 8))


def run_split(fn, jobs):
    """fn(*job) for every job: the first on the calling thread, the others on pool threads.
    fn must release the GIL (numba nogil=True) for the jobs to overlap."""
    global _POOL
    if len(jobs) == 1:
        fn(*jobs[0])
        return
    if _POOL is None:
        from concurrent.futures import ThreadPoolExecutor

        _POOL = ThreadPoolExecutor(max_workers=max(1, threads() - 1), thread_name_prefix="devtensor-cpu")
    futs = [_POOL.submit(fn, *job) for job in jobs[1:]]
    try:
        fn(*jobs[0])
    finally:
        for f in futs:
            f.result()


_SCRATCH = {}


def scratch(slot, n, dtype):
    """A reusable flat work buffer of n elements (contents undefined), one per calling
    thread, slot and dtype, grown on demand.  Fresh large numpy buffers are new mmap'd pages:
    on this VM ~1 us of page faults per 4 KiB when first touched, which costs more than the
    conv transforms writing them (a 1.2 MB buffer: ~0.3 ms)."""
    import threading

    import numpy as np

    dtype = np.dtype(dtype)
    key = (threading.get_ident(), slot, dtype.str)
    buf = _SCRATCH.get(key)
    if buf is None or buf.size < n:
        buf = np.empty(max(n, 1), dtype)
        _SCRATCH[key] = buf
    return buf[:n]
