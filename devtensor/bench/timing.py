"""Timing done right: warm-up runs (compile time reported apart), a sync around each timed call,
the median of repeats with min and max, and an adaptive inner loop for microsecond ops."""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field


@dataclass
class Timing:
    median_s: float
    min_s: float
    max_s: float
    repeats: int
    first_call_s: float = 0.0  # the first (compiling) call, reported apart
    samples: list = field(default_factory=list, repr=False)


_PAUSE_S = 0.05  # between two samples: longer than OpenBLAS's and libgomp's idle spin after a call


def measure(fn, *, sync=None, repeats=7, min_time=0.05, warmup=2, max_inner=1_000_000):
    """Time fn(). Each repeat runs an inner loop long enough (>= min_time / repeats) to swamp
    timer resolution; `sync` (e.g. cuda synchronize) runs before the clock stops."""
    return measure_many({0: fn}, sync=sync, repeats=repeats, min_time=min_time, warmup=warmup,
                        max_inner=max_inner)[0]


def measure_many(fns, *, sync=None, repeats=7, min_time=0.05, warmup=2, max_inner=1_000_000, pause=_PAUSE_S):
    """Time each of fns ({key: fn}) as measure() does, but round robin: repeat r of every fn runs
    before repeat r + 1 of any, so a slow phase of a shared machine hits all of them alike and
    their ratios stay honest. The order rotates every repeat and a short pause separates two
    samples: a library's idle threads spin for a while after its call (OpenMP, OpenBLAS) and
    would slow whatever always ran next (measured: a 1024^3 matmul 5 % slower right after
    PyTorch's). Returns {key: Timing}."""
    sync = sync or (lambda: None)
    plan = {k: _calibrate(fn, sync, repeats, min_time, warmup, max_inner) for k, fn in fns.items()}
    samples = {k: [] for k in fns}
    keys = list(fns)
    for r in range(repeats):
        for k in keys[r % len(keys):] + keys[:r % len(keys)]:
            if len(keys) > 1 and pause:
                time.sleep(pause)
            samples[k].append(_sample(fns[k], plan[k][1], sync))
    return {k: Timing(statistics.median(v), min(v), max(v), repeats, plan[k][0], v) for k, v in samples.items()}


def _calibrate(fn, sync, repeats, min_time, warmup, max_inner):
    """(the first call's time, the inner loop count that makes one sample >= min_time / repeats)."""
    t0 = time.perf_counter()
    fn()
    sync()
    first = time.perf_counter() - t0
    for _ in range(warmup):
        fn()
    sync()
    inner = 1
    while True:
        dt = _sample(fn, inner, sync) * inner
        if dt >= min_time / repeats or inner >= max_inner:
            return first, inner
        inner = min(max_inner, inner * max(2, int((min_time / repeats) / max(dt, 1e-9))))


def _sample(fn, inner, sync):
    t0 = time.perf_counter()
    for _ in range(inner):
        fn()
    sync()
    return (time.perf_counter() - t0) / inner


def fmt_time(s):
    if s < 1e-3:
        return f"{s * 1e6:.2f} us"
    if s < 1:
        return f"{s * 1e3:.2f} ms"
    return f"{s:.2f} s"
