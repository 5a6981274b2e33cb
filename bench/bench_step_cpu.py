"""CPU time per training step and per 1-element add, one core, for A/B comparisons of two checkouts
on a shared machine.

Wall-clock ratios on a busy machine swing with whatever else runs (on this project's 2-core VM,
with other jobs, PyTorch's samples/s moved 5x between rounds). The CPU time a process spends in
its own work (time.process_time) moves far less: each measuring process is pinned to one core,
with one BLAS and one devtensor thread, and the two checkouts' processes alternate over --rounds.
What it does not show: multi-core scaling and memory-bandwidth contention, which the wall-clock
benches (bench_training.py, bench_core.py) measure on a quiet machine.

    python bench/bench_step_cpu.py                      # this checkout
    python bench/bench_step_cpu.py --trees OLD NEW      # two checkouts (e.g. git worktrees), NEW/OLD
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
STEPS = {"MLP 784-128-10": 200, "MLP 784-10-10": 400, "CNN (MNIST)": 4}


def measure():
    """In this process (pinned, one thread): median CPU seconds per step of each model, per add."""
    import numpy as np

    import devtensor as dt

    sys.path.insert(0, HERE)
    from bench_training import MODELS  # the models and batch sizes the wall-clock bench trains

    rng = np.random.default_rng(0)
    out = {}
    for name, (build, batch, loss_name) in MODELS.items():
        dt.manual_seed(0)
        model = build(dt)
        opt = dt.optim.Adam(model.parameters(), lr=1e-3)
        loss_fn = getattr(dt.nn.functional, loss_name)
        x = dt.tensor(rng.standard_normal((batch, 1, 28, 28)).astype(np.float32))
        y = dt.tensor(rng.integers(0, 10, batch))

        def step():
            opt.zero_grad()
            loss_fn(model(x), y).backward()
            opt.step()

        for _ in range(3):
            step()
        samples = []
        for _ in range(5):
            t0 = time.process_time()
            for _ in range(STEPS[name]):
                step()
            samples.append((time.process_time() - t0) / STEPS[name])
        out[name] = statistics.median(samples)
    # the median of 7 loops: one long loop swings with the core's clock after the models' steps
    a, b = dt.tensor([1.0]), dt.tensor([2.0])
    samples = []
    for _ in range(7):
        t0 = time.process_time()
        for _ in range(50_000):
            a + b
        samples.append((time.process_time() - t0) / 50_000)
    out["add, 1 elem"] = statistics.median(samples)
    return out


def run_tree(tree):
    env = dict(os.environ, PYTHONPATH=tree, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    code = ("import os, json, sys; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}); "
            f"sys.path.insert(0, {HERE!r}); import bench_step_cpu as b; print(json.dumps(b.measure()))")
    res = subprocess.run([sys.executable, "-c", code], env=env, cwd=tree, capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trees", nargs="+", default=[os.path.dirname(HERE)], help="checkouts to compare (1 or 2)")
    p.add_argument("--rounds", type=int, default=2, help="processes per tree, alternating")
    args = p.parse_args()
    runs = {t: [] for t in args.trees}
    for _ in range(args.rounds):
        for t in args.trees:
            runs[t].append(run_tree(t))
    names = list(runs[args.trees[0]][0])
    med = {t: {n: statistics.median(r[n] for r in runs[t]) for n in names} for t in args.trees}
    head = " | ".join(os.path.basename(t.rstrip("/")) or t for t in args.trees)
    print(f"| case | {head} |" + (" ratio |" if len(args.trees) == 2 else ""))
    print("|---|" + "---:|" * (len(args.trees) + (len(args.trees) == 2)))
    for n in names:
        cells = " | ".join(_fmt(med[t][n]) for t in args.trees)
        ratio = f" {med[args.trees[1]][n] / med[args.trees[0]][n]:.2f} |" if len(args.trees) == 2 else ""
        print(f"| {n} | {cells} |{ratio}")


def _fmt(s):
    return f"{s * 1e6:.2f} us" if s < 1e-4 else f"{s * 1e3:.3f} ms"


if __name__ == "__main__":
    main()
