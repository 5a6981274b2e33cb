"""Core benchmarks (issue: core): eager per-op overhead, matmul GFLOP/s, conv2d forward+backward
on the MNIST CNN's layers, one optimizer step of a 1M-element parameter; devtensor vs numpy and
PyTorch CPU (when installed), in one run.

    python bench/bench_core.py [--quick] [--markdown]

Ratios are devtensor time / baseline time measured in this same process (lower is better for
time; "x numpy" > 1 means devtensor is slower)."""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys

import devtensor as dt  # before numpy: devtensor sets OpenBLAS's idle-spin timeout (devtensor/_blas_env.py);
import numpy as np  # noqa: E402,I001  after numpy, OpenBLAS's workers spin 0.1 s after each call and slow torch
from devtensor.bench.timing import fmt_time, measure_many  # noqa: E402

try:
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
except ImportError:  # PyTorch is an optional baseline
    torch = None


def overhead_cases():
    out = []
    for n in (1, 1000):
        a, b = dt.ones(n), dt.ones(n)
        ag = dt.ones(n, requires_grad=True)
        na, nb = np.ones(n, np.float32), np.ones(n, np.float32)
        c = {"name": f"add, {n} elem", "devtensor": lambda a=a, b=b: a + b, "numpy": lambda: na + nb,
             "devtensor+grad": lambda ag=ag, b=b: ag + b}
        if torch is not None:
            ta, tb, tg = torch.ones(n), torch.ones(n), torch.ones(n, requires_grad=True)
            c["torch"] = lambda ta=ta, tb=tb: ta + tb
            c["torch+grad"] = lambda tg=tg, tb=tb: tg + tb
        out.append(c)
    m, mg = dt.randn(64, 64), dt.randn(64, 64, requires_grad=True)
    nm = np.asarray(m._data)
    c = {"name": "matmul 64x64", "devtensor": lambda: m @ m, "numpy": lambda: nm @ nm,
         "devtensor+grad": lambda: mg @ m}
    if torch is not None:
        tm, tmg = torch.from_numpy(nm.copy()), torch.from_numpy(nm.copy()).requires_grad_()
        c["torch"] = lambda: tm @ tm
        c["torch+grad"] = lambda: tmg @ tm
    out.append(c)
    return out


def matmul_cases(sizes):
    out = []
    for n in sizes:
        a, b = dt.randn(n, n), dt.randn(n, n)
        na, nb = np.asarray(a._data), np.asarray(b._data)
        c = {"name": f"matmul f32 {n}^3", "flops": 2 * n ** 3, "devtensor": lambda a=a, b=b: a @ b,
             "numpy": lambda na=na, nb=nb: na @ nb}
        if torch is not None:
            ta, tb = torch.from_numpy(na.copy()), torch.from_numpy(nb.copy())
            c["torch"] = lambda ta=ta, tb=tb: ta @ tb
        out.append(c)
    return out


def conv_cases(batch):
    out = []
    for cin, cout, hw in ((1, 32, 28), (32, 64, 26)):
        x = dt.randn(batch, cin, hw, hw)
        w = dt.randn(cout, cin, 3, 3, requires_grad=True)
        xg = x.detach().requires_grad_(cin > 1)  # the first layer's input needs no gradient

        def step(xg=xg, w=w):
            y = dt.nn.functional.conv2d(xg, w)
            y.backward(dt.ones_like(y))
            w.grad = None
            xg.grad = None

        flops = 3 * 2 * batch * cout * (hw - 2) ** 2 * cin * 9
        c = {"name": f"conv2d fwd+bwd {cin}->{cout} 3x3, {batch}x{cin}x{hw}x{hw}", "flops": flops, "devtensor": step}
        if torch is not None:
            tx = torch.from_numpy(np.asarray(x._data).copy()).requires_grad_(cin > 1)
            tw = torch.from_numpy(np.asarray(w._data).copy()).requires_grad_()

            def tstep(tx=tx, tw=tw):
                y = torch.nn.functional.conv2d(tx, tw)
                y.backward(torch.ones_like(y))
                tw.grad = None
                tx.grad = None

            c["torch"] = tstep
        out.append(c)
    return out


OPTIMIZERS = ("Adam", "Adagrad", "Adadelta", "Adamax", "NAdam", "RAdam", "Rprop", "ASGD")


def optimizer_cases(n):
    """opt.step() for one float32 parameter of n elements (the gradient set once): devtensor's fused
    kernel, devtensor's Tensor-op path (fused=False) and PyTorch's default (single-tensor on cpu)."""
    out = []
    g = np.random.default_rng(0).standard_normal(n).astype(np.float32)
    for name in OPTIMIZERS:
        c = {"name": f"{name}, {n:,} elem"}
        for key, fused in (("fused", None), ("tensor ops", False)):
            p = dt.nn.Parameter(dt.zeros(n))
            p.grad = dt.tensor(g)
            opt = getattr(dt.optim, name)([p])
            opt.param_groups[0]["fused"] = fused
            c[key] = opt.step
        if torch is not None:
            tp = torch.nn.Parameter(torch.zeros(n))
            tp.grad = torch.from_numpy(g.copy())
            c["torch"] = getattr(torch.optim, name)([tp]).step
            c["torch 1 thread"] = lambda step=c["torch"]: _one_thread(step)
        out.append(c)
    return out


def _one_thread(step):
    """PyTorch's step on one intra-op thread (devtensor's loops are serial below 16M elements)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        step()
    finally:
        torch.set_num_threads(threads)


def optimizer_table(rows):
    lines = ["### One optimizer step (cpu, float32)", "",
             "| optimizer | fused | Tensor ops | fused / Tensor ops | torch (default) | fused / torch | "
             "torch, 1 thread | fused / torch 1 thread |", "|---|---|---|---|---|---|---|---|"]
    for c, t in rows:
        f = t["fused"].median_s

        def vs(k):
            return (fmt_time(t[k].median_s), f"{f / t[k].median_s:.2f}") if k in t else ("-", "-")

        cells = [fmt_time(f), *vs("tensor ops"), *vs("torch"), *vs("torch 1 thread")]
        lines.append(f"| {c['name']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def run(cases, min_time):
    rows = []
    for c in cases:
        # round robin over the libraries: a slow phase of a shared machine hits all of them alike
        times = measure_many({k: v for k, v in c.items() if callable(v)}, min_time=min_time)
        rows.append((c, times))
    return rows


def table(title, rows, with_flops=False):
    lines = [f"### {title}", ""]
    head = "| case | devtensor | numpy | x numpy | torch | x torch |"
    if with_flops:
        head = "| case | devtensor | GFLOP/s | numpy | x numpy | torch | x torch |"
    if rows and "devtensor+grad" in rows[0][1]:
        head = "| case | devtensor | numpy | x numpy | torch | x torch | devtensor+grad | torch+grad | x torch (grad) |"
    lines += [head, "|" + "---|" * (head.count("|") - 1)]
    for c, t in rows:
        d = t["devtensor"].median_s

        def cell(k):
            return fmt_time(t[k].median_s) if k in t else "-"

        def ratio(k, ref="devtensor"):
            return f"{t[ref].median_s / t[k].median_s:.2f}" if k in t else "-"

        if "devtensor+grad" in t:
            lines.append(f"| {c['name']} | {cell('devtensor')} | {cell('numpy')} | {ratio('numpy')} | {cell('torch')} | "
                         f"{ratio('torch')} | {cell('devtensor+grad')} | {cell('torch+grad')} | "
                         f"{ratio('torch+grad', 'devtensor+grad')} |")
        elif with_flops:
            lines.append(f"| {c['name']} | {cell('devtensor')} | {c['flops'] / d / 1e9:.1f} | {cell('numpy')} | "
                         f"{ratio('numpy')} | {cell('torch')} | {ratio('torch')} |")
        else:
            lines.append(f"| {c['name']} | {cell('devtensor')} | {cell('numpy')} | {ratio('numpy')} | {cell('torch')} | "
                         f"{ratio('torch')} |")
    return "\n".join(lines) + "\n"


def header():
    import numba

    tv = torch.__version__ if torch is not None else "not installed"
    return (f"Measured {datetime.date.today()} on {platform.processor() or platform.machine()}, "
            f"{os.cpu_count()} cores; Python {platform.python_version()}, devtensor {dt.__version__}, "
            f"numpy {np.__version__}, numba {numba.__version__}, PyTorch {tv}. Median of 7 repeats, the "
            "libraries timed round robin (rotating order, 50 ms pause between samples); ratios are devtensor time / baseline time (below 1: devtensor faster).\n")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small sizes, short timings (CI smoke run)")
    p.add_argument("--only", choices=("optim",), help="only this table")
    args = p.parse_args(argv)
    min_time = 0.02 if args.quick else 0.5
    out = [header()]
    if args.only == "optim":
        out.append(optimizer_table(run(optimizer_cases(10_000 if args.quick else 1_000_000), min_time)))
        text = "\n".join(out)
        print(text)
        return text
    out.append(table("Eager per-op overhead (cpu)", run(overhead_cases(), min_time)))
    out.append(table("matmul (cpu, float32)", run(matmul_cases([256] if args.quick else [256, 1024]), min_time),
                     with_flops=True))
    out.append(table("conv2d forward+backward (cpu, float32), the MNIST CNN's layers",
                     run(conv_cases(8 if args.quick else 100), min_time), with_flops=True))
    out.append(optimizer_table(run(optimizer_cases(10_000 if args.quick else 1_000_000), min_time)))
    text = "\n".join(out)
    print(text)
    return text


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
