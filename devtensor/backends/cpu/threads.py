"""Threads for the cpu kernels that split work across cores themselves (the conv paths, pooling,
large relu and row passes).

numba's parallel=True runs on an OpenMP (or TBB/workqueue) pool whose idle workers spin for
milliseconds after every parallel region and take cores from the OpenBLAS calls that follow.
These kernels instead run one nogil numba call per core on plain Python threads; an idle pool
thread sleeps on a queue, so it costs nothing between calls (only a wake-up per call).

The calls take their chunks of work from a shared counter (fetch_add) instead of a fixed share:
OpenBLAS's own worker thread busy-waits for a while after every BLAS call, so in a training step
one core is time-shared with it, and a fixed half share made a kernel as slow as its slowed-down
thread.  Which thread takes which chunk therefore varies from run to run: kernels that sum
across chunks keep one partial sum per chunk (or group of chunks, cut by the shapes alone) and
add them up in order afterwards, so their results never depend on the timing or the number of
threads.
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


def run_blocks(fn, n, block):
    """fn(lo, hi) over [0, n) in blocks of `block`, on every core: each thread takes the next block
    from a shared counter (a core time-shared with a spinning OpenBLAS worker just takes fewer).
    fn must release the GIL (numpy ufuncs and nogil numba loops do)."""
    import itertools

    nblocks = -(-n // block)
    if nblocks <= 1:
        if n:
            fn(0, n)
        return
    counter = itertools.count()  # next() is atomic under the GIL

    def worker():
        while True:
            i = next(counter)
            if i >= nblocks:
                return
            fn(i * block, min(n, (i + 1) * block))

    run_split(worker, [()] * min(nblocks, threads()))


_SCRATCH = {}


def scratch(slot, n, dtype):
    """A reusable flat work buffer of n elements (contents undefined), one per calling
    thread, slot and dtype, grown on demand.  Fresh large numpy buffers are new mmap'd pages
    whose first-touch page faults cost more than the conv transforms writing them."""
    import threading

    import numpy as np

    dtype = np.dtype(dtype)
    key = (threading.get_ident(), slot, dtype.str)
    buf = _SCRATCH.get(key)
    if buf is None or buf.size < n:
        buf = np.empty(max(n, 1), dtype)
        _SCRATCH[key] = buf
    return buf[:n]


def _fetch_add_intrinsic():
    from numba.core import cgutils, types
    from numba.extending import intrinsic

    @intrinsic
    def fetch_add(typingctx, counter, delta):
        """Atomically add delta to counter[0] (an int64 array) and return the old value."""
        if not (isinstance(counter, types.Array) and counter.dtype == types.int64):
            return None
        sig = types.int64(counter, delta)

        def codegen(context, builder, signature, args):
            arr, d = args
            aty = signature.args[0]
            ary = context.make_array(aty)(context, builder, arr)
            ptr = cgutils.get_item_pointer(context, builder, aty, ary, [context.get_constant(types.intp, 0)])
            d = context.cast(builder, d, signature.args[1], types.int64)
            return builder.atomic_rmw("add", ptr, d, "seq_cst")

        return sig, codegen

    return fetch_add


fetch_add = _fetch_add_intrinsic()
