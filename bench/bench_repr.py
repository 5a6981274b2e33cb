"""repr(tensor) time, devtensor's tree on PYTHONPATH and (when installed) PyTorch's, float32 tensors
of a few shapes: small, at the summarising threshold (1000 elements) and far above it.

    PYTHONPATH=. python bench/bench_repr.py
"""
from __future__ import annotations

import timeit

import numpy as np

SHAPES = [(4,), (1000,), (100, 10), (1000, 1000)]


def best_us(f):
    n, _ = timeit.Timer(f).autorange()
    return min(timeit.repeat(f, number=n, repeat=5)) / n * 1e6


def main():
    import devtensor as dt

    libs = [("devtensor", dt.tensor)]
    try:
        import torch

        libs.append(("torch", torch.tensor))
    except ImportError:
        pass
    rng = np.random.default_rng(0)
    for shape in SHAPES:
        a = rng.standard_normal(shape).astype(np.float32)
        for name, make in libs:
            x = make(a)
            print(f"{str(shape):12s} {name:9s} {best_us(lambda: repr(x)):8.0f} us")


if __name__ == "__main__":
    main()
