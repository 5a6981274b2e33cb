"""What dt.compile(dynamic=True) costs and saves on cpu, for the MLP and the CNN of tests/test_compile.py
trained with Adam (cross_entropy, zero_grad/backward/step): the first call (the capture, plus the two
extra traces per candidate symbol with dynamic=True), the first call at a new batch size (64 -> 37:
a capture with dynamic=False, instantiating the symbolic plan with dynamic=True) and a replay at 37.

Each case builds a fresh model and compiled step `--rounds` times; medians over the rounds, in ms.

    python bench/bench_compile_dynamic.py [--rounds N]
"""
from __future__ import annotations

import argparse
import pathlib
import statistics
import sys
import time

import numpy as np

import devtensor as dt
import devtensor.nn.functional as F
from devtensor import nn


def _mlp():
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 10))


def _cnn():
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4 * 13 * 13, 10))


def _batch(b, r):
    return dt.tensor(r.standard_normal((b, 1, 28, 28)).astype(np.float32)), dt.tensor(r.integers(0, 10, b))


def one(make, dynamic, replays=10):
    dt.manual_seed(0)
    r = np.random.default_rng(0)
    model = make()
    opt = dt.optim.Adam(model.parameters(), lr=1e-3)

    def step(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss

    f = dt.compile(step, dynamic=dynamic)
    b64, b37 = _batch(64, r), _batch(37, r)
    t = time.perf_counter()
    f(*b64)
    first = time.perf_counter() - t
    f(*b64)
    t = time.perf_counter()
    f(*b37)
    change = time.perf_counter() - t
    t = time.perf_counter()
    for _ in range(replays):
        f(*b37)
    return first, change, (time.perf_counter() - t) / replays


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=7)
    a = p.parse_args(argv)
    print("| model | dynamic | first call (64) | first call at 37 | replay at 37 |")
    print("|---|---|---:|---:|---:|")
    for name, make in (("MLP", _mlp), ("CNN", _cnn)):
        one(make, True)  # numba compiles and first-use costs out of the way
        for dyn in (False, True):
            rs = [one(make, dyn) for _ in range(a.rounds)]
            med = [statistics.median(x[i] for x in rs) * 1e3 for i in range(3)]
            print(f"| {name} | {dyn} | {med[0]:.2f} ms | {med[1]:.2f} ms | {med[2]:.2f} ms |")


if __name__ == "__main__":
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
    main()
