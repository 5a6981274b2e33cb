"""End-to-end training throughput (samples/s): the two MLPs and the MNIST CNN, devtensor vs
PyTorch CPU, in one run, on the embedded 5,000-digit MNIST sample.

One measured epoch = every batch of the 4,000 training digits: zero_grad, forward, loss, backward
and an optimizer step, exactly as the examples do it. Four ways to run that step: each library
eagerly, and each library's compiler given the whole step function (`dt.compile(step)`,
`torch.compile(step)`; their compile time falls in the untimed warm-up epoch, and is reported apart
for devtensor: capture plus first replay, after one eager step so devtensor's own kernels are
compiled already, with a cold and a warm cache of generated kernels). Two ways: "steps" feeds batches cut once
beforehand (what the library's kernels and autograd cost), "with loader" draws them from the
library's own shuffling DataLoader over a TensorDataset (what a tutorial script costs end to end;
PyTorch's DataLoader indexes and collates sample by sample, devtensor's gathers a batch at once).
Both libraries build their models from the same function (the names are the same in both), start
from the same weights and see the same data. Each library trains in a process of its own (in one
process, PyTorch's OpenMP workers and OpenBLAS's spin after their calls and slow the other
library's threads); the two libraries' processes alternate, a few rounds per model, so that a slow
phase of a shared machine hits both. In each process the first epoch is a warm-up (numba
compiles there) and is not timed; the epochs after it are timed one by one, and the median over
all rounds is reported.

    python bench/bench_training.py [--quick] [--repeats N] [--rounds R] [--models M ...] [--libs L ...]
"""
from __future__ import annotations

import argparse
import datetime
import os
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import devtensor as dt  # before numpy: devtensor sets OpenBLAS's thread timeout (devtensor/_blas_env.py)
import numpy as np  # noqa: E402,I001

try:
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
except ImportError:  # PyTorch is the optional baseline
    torch = None

MEAN, STD = 0.1307, 0.3081


def mlp(lib, hidden):
    nn = lib.nn
    return nn.Sequential(nn.Flatten(), nn.Linear(784, hidden), nn.ReLU(), nn.Linear(hidden, 10))


def cnn(lib):
    """PyTorch's examples/mnist Net, written once for both libraries."""
    nn, F = lib.nn, lib.nn.functional

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 32, 3, 1)
            self.conv2 = nn.Conv2d(32, 64, 3, 1)
            self.dropout1 = nn.Dropout(0.25)
            self.dropout2 = nn.Dropout(0.5)
            self.fc1 = nn.Linear(9216, 128)
            self.fc2 = nn.Linear(128, 10)

        def forward(self, x):
            x = F.max_pool2d(F.relu(self.conv2(F.relu(self.conv1(x)))), 2)
            x = lib.flatten(self.dropout1(x), 1)
            x = self.dropout2(F.relu(self.fc1(x)))
            return F.log_softmax(self.fc2(x), dim=1)

    return Net()


MODELS = {  # name: (builder, batch size, loss), the settings
    "MLP 784-128-10": (lambda lib: mlp(lib, 128), 100, "cross_entropy"),
    "MLP 784-10-10": (lambda lib: mlp(lib, 10), 64, "cross_entropy"),
    "CNN (MNIST)": (cnn, 100, "nll_loss"),
}


def copy_weights(src, dst):
    """PyTorch's initial weights into the devtensor model, so both start from the same point."""
    state = {k: dt.tensor(v.detach().numpy()) for k, v in src.state_dict().items()}
    dst.load_state_dict(state)


class Trainer:
    """One library's model, optimizer and loader; epoch() trains one epoch and returns seconds."""

    def __init__(self, lib, model, x, y, batch, loss, compiled=False):
        self.lib, self.model = lib, model
        self.opt = lib.optim.Adam(model.parameters(), lr=1e-3)
        self.loss = getattr(lib.nn.functional, loss)
        self.step = lib.compile(self.train_step) if compiled else self.train_step
        data = lib.utils.data
        g = lib.Generator().manual_seed(0) if hasattr(lib, "Generator") else None
        kw = {"generator": g} if g is not None else {}
        self.loader = data.DataLoader(data.TensorDataset(x, y), batch_size=batch, shuffle=True, **kw)
        perm = np.random.default_rng(0).permutation(len(x))
        self.batches = [(x[perm[i:i + batch]], y[perm[i:i + batch]]) for i in range(0, len(x), batch)]

    def train_step(self, xb, yb):
        self.opt.zero_grad()
        loss = self.loss(self.model(xb), yb)
        loss.backward()
        self.opt.step()
        return loss

    def epoch(self, loader):
        self.model.train()
        t0 = time.perf_counter()
        for xb, yb in (self.loader if loader else self.batches):
            loss = self.step(xb, yb)
        loss.item()
        return time.perf_counter() - t0


def load_sample():
    train = dt.datasets.MNIST(root=None, train=True)
    x, y = train.as_tensors()
    x = (x - MEAN) / STD
    return x.numpy(), y.numpy()


LIBS = ("devtensor", "devtensor compiled", "torch", "torch.compile")


def time_one(lib_name, name, repeats):
    """In this process: train `name` with one library; the epoch times per feed."""
    xs, ys = load_sample()
    build, batch, loss = MODELS[name]
    torch.manual_seed(0) if torch is not None else dt.manual_seed(0)
    compiled = lib_name.endswith("compile") or lib_name.endswith("compiled")
    if lib_name.startswith("torch"):
        tr = Trainer(torch, build(torch), torch.from_numpy(xs), torch.from_numpy(ys).long(), batch, loss, compiled)
    else:
        dmodel = build(dt)
        if torch is not None:
            copy_weights(build(torch), dmodel)  # the same starting weights as the torch run
        tr = Trainer(dt, dmodel, dt.tensor(xs), dt.tensor(ys).long(), batch, loss, compiled)
    compile_s = [compile_seconds(tr)] if lib_name == "devtensor compiled" else []
    tr.epoch(loader=True)  # warm-up epoch: numba compilation, allocator, caches
    times = {"steps": [], "loader": []}
    for _ in range(repeats):
        for feed in times:
            times[feed].append(tr.epoch(feed == "loader"))
    if compile_s:
        times["compile"] = compile_s
    return len(xs), times


def compile_seconds(tr):
    """Capture plus first replay of the step (the generated kernels' compile included), after one
    eager step: devtensor's own kernels compile on first use, eager or not, and are counted apart."""
    xb, yb = tr.batches[0]
    tr.train_step(xb, yb)
    t0 = time.perf_counter()
    tr.step(xb, yb)  # captures
    tr.step(xb, yb)  # first replay: loads or compiles the fused kernels
    return time.perf_counter() - t0


def _child(lib_name, name, repeats, env=None):
    """Each library trains in a process of its own: PyTorch's OpenMP workers and OpenBLAS's spin
    for a while after their calls, so in one process either library's threads slow the other's."""
    out = subprocess.run([sys.executable, __file__, "--child", lib_name, name, str(repeats)],
                         capture_output=True, text=True, check=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


def run(repeats, names, rounds, libs):
    """The libraries' processes alternate, `rounds` times per model, each timing `repeats` epochs:
    a slow phase of a shared machine then hits both libraries instead of skewing the ratio. The
    first devtensor-compiled process of a model starts from an empty cache of generated kernels
    (its compile time is the cold one), the later ones reuse that cache (warm)."""
    libs = [lb for lb in libs if torch is not None or not lb.startswith("torch")]
    rows = []
    with tempfile.TemporaryDirectory() as cache:
        for name in names:
            _, batch, _ = MODELS[name]
            times, compile_s = {}, []
            n = None
            for r in range(rounds):
                for lib_name in libs:
                    env = None
                    if lib_name == "devtensor compiled":
                        env = dict(os.environ, DEVTENSOR_CACHE_DIR=os.path.join(cache, name.replace(" ", "_")))
                    n, got = _child(lib_name, name, repeats, env)
                    compile_s += got.pop("compile", [])
                    for feed, ts in got.items():
                        times.setdefault((lib_name, feed == "loader"), []).extend(ts)
            sps = {k: n / statistics.median(ts) for k, ts in times.items()}
            spread = {k: (max(ts) - min(ts)) / statistics.median(ts) for k, ts in times.items()}
            rows.append((name, batch, sps, spread, compile_s))
    return rows


def table(rows, repeats, rounds):
    import numba

    tv = torch.__version__ if torch is not None else "not installed"
    lines = [f"Measured {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC on "
             f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores; Python "
             f"{platform.python_version()}, devtensor {dt.__version__}, numpy {np.__version__}, numba "
             f"{numba.__version__}, PyTorch {tv}. Adam lr 1e-3, 4,000 training digits per epoch; median of "
             f"{rounds} x {repeats} epochs (the libraries' processes alternating, {repeats} timed epochs each "
             "after one warm-up epoch).", "",
             "| model | batch | feed | run | samples/s | spread | / PyTorch eager | / devtensor eager |",
             "|---|---:|---|---|---:|---:|---:|---:|"]
    compile_lines = []
    for name, batch, sps, spread, compile_s in rows:
        for ld in (False, True):
            t, d = sps.get(("torch", ld)), sps.get(("devtensor", ld))
            for lib_name in LIBS:
                v = sps.get((lib_name, ld))
                if v is None:
                    continue
                lines.append(f"| {name} | {batch} | {'with loader' if ld else 'steps'} | {lib_name} | {v:,.0f} | "
                             f"{spread[(lib_name, ld)]:.0%} | {f'{v / t:.2f}x' if t else '-'} | "
                             f"{f'{v / d:.2f}x' if d else '-'} |")
        if compile_s:
            warm = f", warm {statistics.median(compile_s[1:]):.2f} s" if len(compile_s) > 1 else ""
            compile_lines.append(f"- {name}: capture + first replay of the compiled step: cold cache "
                                 f"{compile_s[0]:.2f} s{warm}")
    lines += [""] + compile_lines if compile_lines else []
    return "\n".join(lines) + "\n"


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        print(json.dumps(time_one(argv[1], argv[2], int(argv[3]))))
        return "child"
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="1 timed epoch, the MLPs only (smoke run)")
    p.add_argument("--repeats", type=int, default=3, help="timed epochs per process")
    p.add_argument("--rounds", type=int, default=3, help="processes per model and library, alternating")
    p.add_argument("--models", nargs="+", choices=list(MODELS), help="the models to run (default: all)")
    p.add_argument("--libs", nargs="+", choices=LIBS, default=list(LIBS), help="the ways to run the step")
    args = p.parse_args(argv)
    repeats, rounds = (1, 1) if args.quick else (args.repeats, args.rounds)
    if repeats < 1 or rounds < 1:
        p.error("--repeats and --rounds must be at least 1")
    names = [n for n in (args.models or MODELS) if not (args.quick and n.startswith("CNN"))]
    text = table(run(repeats, names, rounds, args.libs), repeats, rounds)
    print(text)
    return text


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
