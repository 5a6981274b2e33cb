"""Layer throughput, devtensor vs PyTorch CPU, in one run: the recurrent and attention layers of
issue 19 (Beyond MNIST 2/2), forward + backward, as a training step computes them.

    LSTM(256, 256, num_layers=2), input (seq 50, batch 32, 256)
    TransformerEncoderLayer(d_model 256, nhead 8, batch_first=True), input (batch 32, seq 64, 256)

One measured step = forward, `.sum().backward()` (every parameter's gradient), gradients cleared.
Both libraries build the layer from the same PyTorch weights (state_dict) and the same input, in
train mode (the encoder's dropout 0.1 included). As in bench_training.py, each library runs in a
process of its own (PyTorch's OpenMP workers and OpenBLAS's spin after their calls and would slow
the other library's threads) and the two alternate, `--rounds` times per layer, so that a slow
phase of a shared machine hits both; each process runs `--warmup` untimed steps (numba compiles
there), then `--repeats` timed ones. The median over all rounds is reported, with the spread, and
the fastest step (on a machine shared with other jobs the least disturbed sample).

A second table times the LSTM cell step alone (batch 32, hidden 256, float32): the fused numba kernel
the cpu backend registers (backends/cpu/rnn_kernels.py) against the array-API code of the portable
tier (backends/rnn_portable.py, what every other dtype and CuPy run), forward and backward: the
evidence that the specialised kernel pays.

    python bench/bench_layers.py [--quick] [--repeats N] [--rounds R] [--threads N] [--json FILE]

--threads N runs both libraries on N threads (PyTorch's set_num_threads, OpenBLAS's
OPENBLAS_NUM_THREADS for devtensor) and pins each library's process to N cores (devtensor's own
thread pool sizes itself by the cores it may use); the default is every core the process may use.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import devtensor as dt  # before numpy: devtensor sets OpenBLAS's thread timeout (devtensor/_blas_env.py)
import numpy as np  # noqa: E402,I001

try:
    import torch
except ImportError:  # PyTorch is the optional baseline
    torch = None


def lstm(lib):
    return lib.nn.LSTM(256, 256, num_layers=2), (50, 32, 256)


def encoder(lib):
    return lib.nn.TransformerEncoderLayer(256, 8, batch_first=True), (32, 64, 256)


CASES = {  # name: builder -> (module, input shape)
    "LSTM(256, 256, 2 layers), seq 50 x batch 32": lstm,
    "TransformerEncoderLayer(d 256, 8 heads), batch 32 x seq 64": encoder,
}


def _out(y):
    return y[0] if isinstance(y, tuple) else y


def _threads():
    return int(os.environ.get("BENCH_THREADS") or len(os.sched_getaffinity(0)))


def time_one(lib_name, name, repeats, warmup):
    """In this process: `warmup` + `repeats` forward+backward steps of one case with one library."""
    build = CASES[name]
    if os.environ.get("BENCH_THREADS") and hasattr(os, "sched_setaffinity"):
        # --threads N: N cores for everything the library runs, also devtensor's own pool (the recurrent
        # loops' row blocks, the conv threads), which sizes itself by the cores the process may use
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:_threads()])
    torch.manual_seed(0)
    tmod, shape = build(torch)
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    if lib_name == "torch":
        torch.set_num_threads(_threads())
        mod, inp = tmod, torch.from_numpy(x)
    else:
        mod, _ = build(dt)
        mod.load_state_dict({k: dt.tensor(v.detach().numpy()) for k, v in tmod.state_dict().items()})
        inp = dt.tensor(x)
    mod.train()
    params = list(mod.parameters())

    def step():
        for p in params:
            p.grad = None
        _out(mod(inp)).sum().backward()

    for _ in range(warmup):
        step()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return times


def _child(lib_name, name, repeats, warmup):
    env = dict(os.environ)
    if env.get("BENCH_THREADS"):  # OpenBLAS reads it when numpy loads, so it must be set for the child
        env["OPENBLAS_NUM_THREADS"] = env["BENCH_THREADS"]
    out = subprocess.run([sys.executable, __file__, "--child", lib_name, name, str(repeats), str(warmup)],
                         capture_output=True, text=True, check=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


def run(repeats, rounds, warmup, names):
    rows = []
    for name in names:
        times = {"devtensor": [], "torch": []}
        for _ in range(rounds):
            for lib_name in times:
                times[lib_name].extend(_child(lib_name, name, repeats, warmup))
        med = {k: statistics.median(v) for k, v in times.items()}
        best = {k: min(v) for k, v in times.items()}
        spread = {k: (max(v) - min(v)) / med[k] for k, v in times.items()}
        rows.append({"case": name, "median_s": med, "min_s": best, "spread": spread, "samples": times,
                     "speed_vs_torch": med["torch"] / med["devtensor"],
                     "speed_vs_torch_min": best["torch"] / best["devtensor"]})
    return rows


def table(rows, repeats, rounds, warmup):
    import numba

    lines = [f"Measured {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC on "
             f"{platform.processor() or platform.machine()}, {len(os.sched_getaffinity(0))} cores, {_threads()} "
             f"thread(s) per library; Python "
             f"{platform.python_version()}, devtensor {dt.__version__}, numpy {np.__version__}, numba "
             f"{numba.__version__}, PyTorch {torch.__version__}. Forward + backward per step, train mode; median of "
             f"{rounds} x {repeats} steps (the libraries' processes alternating, {warmup} warm-up steps each).", "",
             "| layer (forward + backward) | devtensor median | fastest | spread | PyTorch median | fastest | spread "
             "| speed vs PyTorch (median) | (fastest) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        m, b, s = r["median_s"], r["min_s"], r["spread"]
        lines.append(f"| {r['case']} | {m['devtensor'] * 1e3:.1f} ms | {b['devtensor'] * 1e3:.1f} ms | "
                     f"{s['devtensor']:.0%} | {m['torch'] * 1e3:.1f} ms | {b['torch'] * 1e3:.1f} ms | "
                     f"{s['torch']:.0%} | {r['speed_vs_torch']:.2f}x | {r['speed_vs_torch_min']:.2f}x |")
    return "\n".join(lines) + "\n"


def cell_micro(repeats=15):
    """The LSTM cell step alone (batch 32, hidden 256, float32): the numba fused kernel vs the portable
    array-API code with numpy, forward and backward, timed round robin."""
    from devtensor.backends import rnn_portable as P
    from devtensor.backends.cpu import rnn_kernels as K
    from devtensor.bench.timing import measure_many

    B, H = 32, 256
    r = np.random.default_rng(0)
    gx, gh = (r.standard_normal((B, 4 * H)).astype(np.float32) for _ in range(2))
    c, dh, dc = (r.standard_normal((B, H)).astype(np.float32) for _ in range(3))
    h, cn, acts = np.empty((B, H), np.float32), np.empty((B, H), np.float32), np.empty((B, 5 * H), np.float32)
    sf, si = np.empty(B * 9 * H, np.float32), np.empty(B * 9 * H, np.int32)
    dg, dcp = np.empty((B, 4 * H), np.float32), np.empty((B, H), np.float32)
    fns = {
        ("forward", "numba"): lambda: K.lstm_cell_fwd(gx, gh, c, h, cn, acts, sf, si),
        ("forward", "numpy"): lambda: P.lstm_cell_xp(np, gx, gh, c),
        ("backward", "numba"): lambda: K.lstm_cell_bwd(dh, dc, acts, c, dg, dcp),
        ("backward", "numpy"): lambda: P.lstm_cell_backward_xp(np, dh, dc, acts, c),
    }
    t = measure_many(fns, repeats=repeats, min_time=0.3)
    lines = ["", "LSTM cell step alone (batch 32, hidden 256, float32), median of "
             f"{repeats} round-robin samples:", "",
             "| pass | numba fused (specialised tier) | array-API numpy (portable tier) | numba speed-up |",
             "|---|---:|---:|---:|"]
    for p in ("forward", "backward"):
        a, b = t[(p, "numba")].median_s, t[(p, "numpy")].median_s
        lines.append(f"| {p} | {a * 1e6:.1f} us | {b * 1e6:.1f} us | {b / a:.1f}x |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        print(json.dumps(time_one(argv[1], argv[2], int(argv[3]), int(argv[4]))))
        return "child"
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="1 round of 2 timed steps (smoke run)")
    p.add_argument("--repeats", type=int, default=5, help="timed steps per process")
    p.add_argument("--rounds", type=int, default=3, help="processes per layer and library, alternating")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps per process")
    p.add_argument("--case", action="append", choices=sorted(CASES), help="only these cases (repeatable)")
    p.add_argument("--threads", type=int, default=None, help="threads per library (default: every core)")
    p.add_argument("--json", help="also write the samples as JSON to this file")
    args = p.parse_args(argv)
    if args.threads is not None:
        if args.threads < 1:
            p.error("--threads must be at least 1")
        os.environ["BENCH_THREADS"] = str(args.threads)
    if torch is None:
        p.error("PyTorch is the baseline of this benchmark: pip install torch (the CPU wheel)")
    repeats, rounds = (2, 1) if args.quick else (args.repeats, args.rounds)
    if repeats < 1 or rounds < 1:
        p.error("--repeats and --rounds must be at least 1")
    rows = run(repeats, rounds, args.warmup, args.case or list(CASES))
    text = table(rows, repeats, rounds, args.warmup) + cell_micro(5 if args.quick else 15)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return text


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
