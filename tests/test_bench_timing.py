"""devtensor/bench/timing.py: measure_many times its functions round robin (a slow phase of a shared
machine must hit every library of a comparison alike), with the calibration calls kept apart."""
from __future__ import annotations

import time

from devtensor.bench.timing import measure, measure_many


def test_measure_many_interleaves_the_repeats():
    log = []
    fns = {"a": lambda: log.append("a"), "b": lambda: log.append("b")}
    out = measure_many(fns, repeats=3, min_time=0.0, warmup=0, max_inner=1)
    assert log[:4] == ["a", "a", "b", "b"]  # per function: the first call, one calibration sample
    assert log[4:] == ["a", "b", "b", "a", "a", "b"]  # the order rotates each repeat
    assert set(out) == {"a", "b"}
    for t in out.values():
        assert t.repeats == 3 and len(t.samples) == 3 and t.min_s <= t.median_s <= t.max_s


def test_times_are_per_call_and_the_first_call_is_apart():
    calls = []

    def slow_first():
        time.sleep(0.02 if not calls else 0.001)
        calls.append(1)

    t = measure(slow_first, repeats=3, min_time=0.0, warmup=1)
    assert t.first_call_s >= 0.02
    assert 0.001 <= t.median_s < 0.02
