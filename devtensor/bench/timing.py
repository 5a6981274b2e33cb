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


def measure(fn, *, sync=None, repeats=7, min_time=0.05, warmup=2, max_inner=1_000_000):
    """Time fn(). Each repeat runs an inner loop long enough (>= min_time / repeats) to swamp
    timer resolution; `sync` (e.g. cuda synchronize) runs before the clock stops."""
    sync = sync or (lambda: None)
    t0 = time.perf_counter()
    fn()
    sync()
    first = time.perf_counter() - t0
    for _ in range(warmup):
        fn()
    sync()
    # choose the inner count from one calibration loop
    inner = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        sync()
        dt = time.perf_counter() - t0
        if dt >= min_time / repeats or inner >= max_inner:
            break
        inner = min(max_inner, inner * max(2, int((min_time / repeats) / max(dt, 1e-9))))
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        sync()
        samples.append((time.perf_counter() - t0) / inner)
    return Timing(statistics.median(samples), min(samples), max(samples), repeats, first, samples)


def fmt_time(s):
    if s < 1e-3:
        return f"{s * 1e6:.2f} us"
    if s < 1:
        return f"{s * 1e3:.2f} ms"
    return f"{s:.2f} s"
