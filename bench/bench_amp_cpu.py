"""CPU time per training step with and without autocast (cpu, bfloat16 / float16) + GradScaler, one core,
devtensor and PyTorch CPU (when installed): the bench models, Adam, batch 100.

    python bench/bench_amp_cpu.py
"""
from __future__ import annotations

import os
import statistics
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # one BLAS thread, set before numpy loads OpenBLAS
os.environ.setdefault("OMP_NUM_THREADS", "1")
import devtensor as dt  # noqa: E402,I001 - before numpy (devtensor/_blas_env.py sets OpenBLAS up)
import numpy as np  # noqa: E402,I001

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_training import cnn, mlp  # noqa: E402

MODELS = {"MLP 784-128-10": (lambda lib: mlp(lib, 128), "cross_entropy", 50), "CNN (MNIST)": (cnn, "nll_loss", 2)}
MODES = (("float32", False, "bfloat16"), ("autocast bfloat16", True, "bfloat16"), ("autocast float16", True, "float16"))


def seconds_per_step(lib, build, loss_name, amp, dtype_name, steps, batch=100):
    lib.manual_seed(0)
    rng = np.random.default_rng(0)
    model = build(lib)
    opt = lib.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = getattr(lib.nn.functional, loss_name)
    x = lib.tensor(rng.standard_normal((batch, 1, 28, 28)).astype(np.float32))
    y = lib.tensor(rng.integers(0, 10, batch))
    scaler = lib.amp.GradScaler("cpu", enabled=amp)

    def step():
        opt.zero_grad()
        with lib.autocast("cpu", dtype=getattr(lib, dtype_name), enabled=amp):
            loss = loss_fn(model(x), y)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    for _ in range(2):
        step()
    samples = []
    for _ in range(3):
        t0 = time.process_time()
        for _ in range(steps):
            step()
        samples.append((time.process_time() - t0) / steps)
    return statistics.median(samples)


def main():
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core: CPU time, comparable on a shared machine
    libs = [dt]
    try:
        import torch

        torch.set_num_threads(1)
        libs.append(torch)
    except ImportError:
        pass
    print("| model | library | " + " | ".join(m[0] for m in MODES) + " |")
    print("|---|---|" + "---:|" * len(MODES))
    for name, (build, loss_name, steps) in MODELS.items():
        for lib in libs:
            cells = [seconds_per_step(lib, build, loss_name, amp, d, steps) for _, amp, d in MODES]
            print(f"| {name} | {lib.__name__} | " + " | ".join(f"{c * 1e3:.2f} ms" for c in cells) + " |")


if __name__ == "__main__":
    main()
