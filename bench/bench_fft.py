"""devtensor.fft against numpy.fft and torch.fft (cpu): a 1-D rfft, a 2-D complex fft, and a forward + backward
through rfft / irfft; best of 7 repeats of 50 calls each, printed as the Markdown rows of bench/README.md.

    python bench/bench_fft.py
"""
from __future__ import annotations

import os
import timeit

import devtensor as dt
import numpy as np

try:
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
except ImportError:  # PyTorch is an optional baseline
    torch = None


def best_us(f, number=50):
    return min(timeit.repeat(f, number=number, repeat=7)) / number * 1e6


def cases():
    x = np.random.default_rng(0).standard_normal(4096).astype(np.float32)
    z = (np.random.default_rng(1).standard_normal((256, 256)) + 1j).astype(np.complex64)
    dx, dz = dt.tensor(x), dt.tensor(z)
    dg = dt.tensor(x.astype(np.float64), requires_grad=True)

    def dt_grad():
        dt.fft.irfft(dt.fft.rfft(dg) * 0.5, n=4096).pow(2).sum().backward()

    out = [["rfft 4096 f32", lambda: dt.fft.rfft(dx), lambda: np.fft.rfft(x), None],
           ["fft2 256x256 complex64", lambda: dt.fft.fft2(dz), lambda: np.fft.fft2(z), None],
           ["irfft(rfft(x) * w) forward+backward, 4096 f64", dt_grad, None, None]]
    if torch is not None:
        tx, tz = torch.from_numpy(x), torch.from_numpy(z)
        tg = torch.from_numpy(x.astype(np.float64)).requires_grad_()

        def torch_grad():
            torch.fft.irfft(torch.fft.rfft(tg) * 0.5, n=4096).pow(2).sum().backward()

        out[0][3], out[1][3], out[2][3] = (lambda: torch.fft.rfft(tx)), (lambda: torch.fft.fft2(tz)), torch_grad
    return out


def main():
    print("| case | devtensor | numpy | x numpy | torch | x torch |\n|---|---|---|---|---|---|")
    for name, d, n, t in cases():
        a = best_us(d)
        b = best_us(n) if n else None
        c = best_us(t) if t else None
        cells = [f"{a:.1f} us", f"{b:.1f} us" if b else "-", f"{a / b:.2f}" if b else "-",
                 f"{c:.1f} us" if c else "-", f"{a / c:.2f}" if c else "-"]
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
