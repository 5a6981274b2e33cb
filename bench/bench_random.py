"""devtensor's random draws against torch's (cpu): the per-call cost of a small draw (the generator plumbing on
the eager path) and the sampling ops at the sizes text generation and data sampling use; best of 7 repeats,
printed as the Markdown rows of bench/README.md. The values differ (other streams); the work is the same.

    python bench/bench_random.py
"""
from __future__ import annotations

import os
import timeit

import devtensor as dt

try:
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
except ImportError:  # PyTorch is an optional baseline
    torch = None


def best_us(f, number):
    return min(timeit.repeat(f, number=number, repeat=7)) / number * 1e6


def cases(m):
    """(name, calls per repeat, function) for the library `m` (devtensor or torch)."""
    g = m.Generator().manual_seed(0)
    p1, p64 = m.rand(1, 65).softmax(-1), m.rand(64, 65).softmax(-1)
    w, half = m.rand(1000), m.full((256, 256), 0.5)
    return [("rand(1)", 2000, lambda: m.rand(1)),
            ("rand(1, generator=g)", 2000, lambda: m.rand(1, generator=g)),
            ("randn(256, 256)", 200, lambda: m.randn(256, 256)),
            ("multinomial((1, 65), 1): one character", 2000, lambda: m.multinomial(p1, 1)),
            ("multinomial((64, 65), 1): a batch of 64", 500, lambda: m.multinomial(p64, 1)),
            ("multinomial((1000,), 20000, replacement=True)", 50, lambda: m.multinomial(w, 20000, True)),
            ("multinomial((1000,), 100): without replacement", 500, lambda: m.multinomial(w, 100)),
            ("bernoulli(256x256 of 0.5)", 200, lambda: m.bernoulli(half)),
            ("normal(256x256 mean, 1.0)", 200, lambda: m.normal(half, 1.0))]


def main():
    mine = [(n, best_us(f, k)) for n, k, f in cases(dt)]
    ref = [best_us(f, k) for _, k, f in cases(torch)] if torch is not None else [None] * len(mine)
    print("| case | devtensor | torch | x torch |\n|---|---|---|---|")
    for (name, a), b in zip(mine, ref):
        print(f"| {name} | {a:.1f} us | " + (f"{b:.1f} us | {a / b:.2f} |" if b else "- | - |"))


if __name__ == "__main__":
    main()
