"""Fuzz the public ops that run numba (cpu) or CUDA kernels with random, partly invalid arguments.

Every case runs in long-lived WORKER SUBPROCESSES (tests/fuzz_worker.py, fed JSON cases over a pipe, so
numba compiles once per worker): one runs devtensor, one runs PyTorch on the same inputs as the
reference. The defects hunted here are segfaults, bus errors, aborts and hangs, which would take
pytest down with them. The rule each case must meet (fuzz_worker.judge):

* the devtensor worker survives: killed by a signal, exiting, or silent for CASE_TIMEOUT seconds
  (numba compilation included) FAILS the test, with the case printed as JSON, a command that
  replays it, whether it crashes alone in a fresh worker, and the cases run before it;
* devtensor either raises a ValueError / TypeError / RuntimeError / IndexError / NotImplementedError
  whose first message line names the op (not a numba dump, ZeroDivisionError, ImportError, ...), or
  returns PyTorch's result: same shape, same kind of dtype, allclose values (and input gradients);
* when PyTorch raises, devtensor raises too; devtensor raising where PyTorch returns fails only for
  the `*_valid` strategies, whose inputs are clearly valid. Where PyTorch itself crashes or has no
  trustworthy answer, devtensor is judged alone.

Each op has a `valid` strategy and a `wild` one (a valid case with one to three arguments made bad:
negative/zero/huge sizes, out-of-range indices, wrong shapes and dtypes; or all drawn at random),
with inputs that are views with storage offsets, transposed, strided or broadcast. Hypothesis runs
derandomized with a bounded number of examples (DEVTENSOR_FUZZ_EXAMPLES, default 40 per test) and
no shrinking (DEVTENSOR_FUZZ_SHRINK=1 turns it on, to minimise a failing case by hand).
`test_known_case` replays, one test each, minimal cases that crashed or misbehaved before.

A kernel that writes out of bounds may crash a LATER case. To find the culprit, rerun with
NUMBA_BOUNDSCHECK=1 and a fresh NUMBA_CACHE_DIR: the out-of-bounds access then raises numba's
"index is out of bounds" in the case that makes it (a bad_error here). DEVTENSOR_FUZZ_DEVICE=cuda
runs the devtensor half on a GPU.
"""
from __future__ import annotations

import json
import os
import select
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from collections import deque
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

HERE = Path(__file__).resolve().parent
WORKER = HERE / "fuzz_worker.py"
sys.path.insert(0, str(HERE))
import fuzz_worker as worker_lib  # noqa: E402 - judging only (numpy); devtensor and torch load in the workers
CASE_TIMEOUT = float(os.environ.get("DEVTENSOR_FUZZ_TIMEOUT", "60"))
START_TIMEOUT = 120.0
N = int(os.environ.get("DEVTENSOR_FUZZ_EXAMPLES", "40"))
PHASES = (Phase.explicit, Phase.generate) + ((Phase.shrink,) if os.environ.get("DEVTENSOR_FUZZ_SHRINK") else ())


def fuzz(n=N):
    return settings(max_examples=n, deadline=None, derandomize=True, database=None, phases=PHASES,
                    suppress_health_check=list(HealthCheck), print_blob=False)


# ---- the workers -----------------------------------------------------------------------------------------

def _repro(case):
    return f"{sys.executable} {WORKER.relative_to(HERE.parent)} {shlex.quote(json.dumps(case))}"


class Worker:
    """One `fuzz_worker.py --serve <side>` process, restarted after it dies; cases go one at a time."""

    def __init__(self, side):
        self.side = side
        self.proc = None
        self.recent = deque(maxlen=8)
        self.unavailable = None
        self.slowest = (0.0, "")

    def start(self):
        self.close()
        self.err = tempfile.TemporaryFile()
        env = dict(os.environ, PYTHONFAULTHANDLER="1", PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen([sys.executable, str(WORKER), "--serve", self.side], cwd=HERE.parent, env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.err)
        self.buf = b""
        self.recent.clear()
        line = self._readline(START_TIMEOUT)
        if not isinstance(line, dict):
            raise AssertionError(f"the {self.side} fuzz worker did not start: {self._death(line)}\n{self._stderr()}")
        if not line["ready"]:
            self.unavailable = line["why"]

    def close(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()  # our own child, by its handle
            self.proc.wait()
        self.proc = None

    def _stderr(self, n=2500):
        self.err.seek(0)
        text = self.err.read().decode(errors="replace")
        cut = text.rfind("--- case ")  # what follows the echo of the last case
        cut = text.find("\n", cut) + 1 if cut >= 0 else 0
        return f"{self.side} worker stderr (tail):\n" + (text[cut:][-n:].strip() or "(empty)")

    def _readline(self, timeout):
        """A parsed JSON line, or "timeout" / "eof"."""
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return "timeout"
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    return "eof"
                self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return json.loads(line)

    def _death(self, what):
        if what == "timeout":
            return f"no answer within {CASE_TIMEOUT:g} s (hang)"
        rc = self.proc.wait(timeout=10)
        if rc < 0:
            try:
                name = signal.Signals(-rc).name
            except ValueError:
                name = "unknown signal"
            return f"worker killed by {name} (signal {-rc})"
        return f"worker exited with status {rc}"

    def send(self, case, timeout=CASE_TIMEOUT):
        """The side's answer (a dict), or (how the worker died, its stderr tail): the worker is gone then."""
        if self.proc is None or self.proc.poll() is not None:
            self.start()
        if self.unavailable:
            return None
        try:
            self.proc.stdin.write((json.dumps(case) + "\n").encode())
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass
        line = self._readline(timeout)
        if isinstance(line, dict):
            self.recent.append(case)
            self.slowest = max(self.slowest, (line.get("secs", 0), case["op"]))
            if "harness_error" in line:
                raise AssertionError(f"fuzz harness error in the {self.side} worker: {line['harness_error']}\n"
                                     f"  case: {json.dumps(case)}\n{line['traceback']}")
            return line
        death = self._death(line)
        stderr = self._stderr()
        self.close()
        return death, stderr


class Fuzzer:
    """The devtensor worker and the PyTorch worker; `check(case)` raises AssertionError on a failure."""

    def __init__(self):
        self.dt = Worker("devtensor")
        self.torch = Worker("torch")
        self.crashed = {}

    def close(self):
        self.dt.close()
        self.torch.close()

    def check(self, case):
        key = json.dumps(case, sort_keys=True)
        if key in self.crashed:  # Hypothesis replays a failing case: don't crash two more workers
            raise AssertionError(self.crashed[key])
        before = list(self.dt.recent)
        got = self.dt.send(case)
        if got is None:
            raise AssertionError(f"devtensor cannot be imported: {self.dt.unavailable}")
        if isinstance(got, tuple):
            self.crashed[key] = self._crash_report(case, got, before)
            raise AssertionError(self.crashed[key])
        want = self.torch.send(case)
        if isinstance(want, tuple):
            # PyTorch's own crash (seen: max_pool2d backward, ceil_mode + dilation + padding): no reference
            # for this case; devtensor's answer is still judged on its own
            want = None
        verdict = worker_lib.judge(case, got, want)
        verdict["secs"] = got.get("secs")
        if verdict["status"] != "ok":
            raise AssertionError(_describe(case, verdict))
        return verdict

    def _crash_report(self, case, death, before):
        death, stderr = death
        msg = [f"{case['op']}: devtensor {death} while running this case", f"  case: {json.dumps(case)}",
               f"  reproduce: {_repro(case)} --devtensor-only"]
        if "hang" not in death and before:
            # alone in a fresh worker: does the case crash by itself, or did an earlier case corrupt memory?
            again = self.dt.send(case)
            if isinstance(again, tuple):
                msg.append(f"  alone in a fresh worker: {again[0]} again")
            else:
                msg.append("  alone in a fresh worker it did NOT crash: an earlier case corrupted memory? "
                           "(see NUMBA_BOUNDSCHECK=1 in this file's docstring); the cases run before it:")
                msg += [f"    {json.dumps(c)}" for c in before]
        msg.append(stderr)
        return "\n".join(msg)


def _describe(case, v):
    lines = [f"{case['op']}: {v['status']}: {v.get('detail', '')}", f"  case: {json.dumps(case)}",
             f"  devtensor: {v.get('devtensor')}", f"  torch:     {v.get('torch')}",
             f"  reproduce: {_repro(case)}"]
    if v.get("traceback"):
        lines.append("  devtensor traceback (tail):\n" + v["traceback"])
    return "\n".join(lines)


@pytest.fixture(scope="module")
def worker():
    f = Fuzzer()
    yield f
    f.close()


# ---- strategies -----------------------------------------------------------------------------------------

LAYOUTS = ("contig", "offset", "T", "step", "expand")
FLOAT = ("float32", "float64")
WILD_DTYPES = ("float32", "float32", "float64", "float64", "float16", "int64", "int32", "bool")
INDEX_DTYPES = ("int64", "int64", "int64", "int32", "float32", "bool")
seeds = st.integers(0, 999)


def tspec(shape, dtype, layout="contig", seed=0, grad=False, **extra):
    s = {"shape": list(shape), "dtype": dtype, "layout": layout, "seed": seed, **extra}
    if grad and dtype in FLOAT:
        s["grad"] = True
    return s


def ivals(values, dtype="int64", layout="contig"):
    a = np.array(values)
    return {"shape": list(a.shape), "values": a.reshape(-1).tolist(), "dtype": dtype, "layout": layout}


@st.composite
def tensors(draw, shape, dtypes=FLOAT, grad=False, layouts=LAYOUTS, **extra):
    return tspec(shape, draw(st.sampled_from(dtypes)), draw(st.sampled_from(layouts)), draw(seeds), grad, **extra)


@st.composite
def index_values(draw, shape, lo, hi, dtypes=("int64",), layouts=LAYOUTS):
    """Exact values (flat, row-major) of the given shape in [lo, hi]; bool/float tensors by dtype."""
    n = 1
    for s in shape:
        n *= s
    flat = draw(st.lists(st.integers(lo, hi), min_size=n, max_size=n))
    dtype = draw(st.sampled_from(dtypes))
    if dtype == "bool":
        flat = [v % 2 == 0 for v in flat]
    elif dtype.startswith("float"):
        flat = [float(v) for v in flat]
    elif dtype == "uint8":
        flat = [v % 256 for v in flat]
    return {"shape": list(shape), "values": flat, "dtype": dtype, "layout": draw(st.sampled_from(layouts))}


def shapes(min_dims=0, max_dims=4, min_side=0, max_side=6):
    return st.lists(st.integers(min_side, max_side), min_size=min_dims, max_size=max_dims)


def pair_or_int(ints):
    return st.one_of(ints, st.lists(ints, min_size=1, max_size=3))


# conv2d ------------------------------------------------------------------------------------------------

@st.composite
def conv_valid(draw):
    if draw(st.integers(0, 4)) == 0:  # the Winograd / direct-3x3 regimes: 3x3, stride 1, ungrouped
        g, cg, kg = 1, draw(st.sampled_from([1, 2, 3, 8, 9])), draw(st.sampled_from([1, 2, 8, 9]))
        kh = kw = 3
        s, d = [1, 1], [1, 1]
    else:
        g, cg, kg = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
        kh, kw = draw(st.sampled_from([1, 2, 3, 5])), draw(st.sampled_from([1, 2, 3]))
        s = [draw(st.integers(1, 3)), draw(st.integers(1, 3))]
        d = [draw(st.integers(1, 2)), draw(st.integers(1, 2))]
    p = [draw(st.integers(0, 2)), draw(st.integers(0, 2))]
    h = max(1, d[0] * (kh - 1) + 1 - 2 * p[0]) + draw(st.integers(0, 4))
    w = max(1, d[1] * (kw - 1) + 1 - 2 * p[1]) + draw(st.integers(0, 4))
    n = draw(st.integers(1, 2))
    dtype = draw(st.sampled_from(FLOAT))
    x_shape = [n, g * cg, h, w]
    if draw(st.integers(0, 3)) == 0:
        x_shape = x_shape[1:]  # unbatched (C, H, W)
    layout = st.sampled_from(LAYOUTS)
    case = {"op": "conv2d", "valid": True, "seed": draw(seeds),
            "input": tspec(x_shape, dtype, draw(layout), draw(seeds), grad=True),
            "weight": tspec([g * kg, cg, kh, kw], dtype, draw(layout), draw(seeds), grad=True),
            "bias": draw(st.one_of(st.none(), tensors([g * kg], [dtype], grad=True))),
            "stride": s if draw(st.booleans()) or s[0] != s[1] else s[0],
            "padding": p if draw(st.booleans()) or p[0] != p[1] else p[0],
            "dilation": d if draw(st.booleans()) or d[0] != d[1] else d[0], "groups": g}
    if s == [1, 1] and (d[0] * (kh - 1)) % 2 == 0 and (d[1] * (kw - 1)) % 2 == 0 and draw(st.integers(0, 5)) == 0:
        case["padding"] = "same"
    return case


HUGE = [2 ** 31, 10 ** 9, 2 ** 63]


@st.composite
def conv_random(draw):
    """Everything drawn independently: mostly invalid."""
    dtype = draw(st.sampled_from(WILD_DTYPES))
    c, k = draw(st.sampled_from([1, 2, 3, 4, 8])), draw(st.sampled_from([1, 2, 3, 4, 8]))
    cg = draw(st.sampled_from([c, c, c // 2 or 1, c + 1, 0]))
    kh, kw = draw(st.integers(0, 4)), draw(st.integers(0, 4))
    x_shape = [draw(st.integers(0, 2)), c, draw(st.integers(0, 8)), draw(st.integers(0, 8))]
    nd = draw(st.sampled_from([4, 4, 4, 3, 2, 5]))
    x_shape = x_shape[4 - nd:] if nd <= 4 else [1] + x_shape
    w_shape = [k, cg, kh, kw][:draw(st.sampled_from([4, 4, 4, 3]))]
    ints = st.sampled_from([-2, -1, 0, 1, 1, 2, 3])
    return {"op": "conv2d", "valid": False, "seed": draw(seeds),
            "input": tspec(x_shape, dtype, draw(st.sampled_from(LAYOUTS)), draw(seeds), grad=True),
            "weight": tspec(w_shape, dtype, draw(st.sampled_from(LAYOUTS)), draw(seeds), grad=True),
            "bias": draw(st.one_of(st.none(), tensors(draw(st.sampled_from([[k], [k + 1], [1], [k, 1], []])),
                                                      [dtype, "float64", "int64"]))),
            "stride": draw(pair_or_int(st.one_of(ints, st.sampled_from([100] + HUGE)))),
            "padding": draw(st.one_of(pair_or_int(st.one_of(ints, st.sampled_from([5, 20]))),
                                      st.sampled_from(["same", "valid", "full"]))),
            "dilation": draw(pair_or_int(st.one_of(ints, st.sampled_from([10 ** 6, 2 ** 40] + HUGE)))),
            "groups": draw(st.sampled_from([-1, 0, 1, 1, 1, 2, 3, 4, 8]))}


def _with_dtype(case, dtype, keys):
    for k in keys:
        if isinstance(case.get(k), dict):
            case[k] = {**case[k], "dtype": dtype}
            if dtype not in FLOAT:
                case[k].pop("grad", None)


@st.composite
def mutate(draw, valid, mutations):
    """A valid case with one to three arguments made bad: near-valid inputs reach deepest into kernels."""
    case = dict(draw(valid), valid=False)
    for name in draw(st.lists(st.sampled_from(sorted(mutations)), min_size=1, max_size=3, unique=True)):
        mutations[name](draw, case)
    return case


def _set(key, values):
    def m(draw, case):
        case[key] = draw(st.sampled_from(values))
    return m


def _zero_at(shape, i):
    return [0 if j == i else v for j, v in enumerate(shape)]


def _shape_of(key, fn):
    def m(draw, case):
        spec = case[key]
        case[key] = {**spec, "shape": fn(draw, list(spec["shape"]))}
    return m


CONV_MUTATIONS = {
    "stride": _set("stride", [0, -1, -2, [1, 0], [0, 1], [2, -1], [1, 2, 3], [], 100, 2 ** 31, 2 ** 63]),
    "padding": _set("padding", [-1, -2, [0, -1], [-1, 0], 5, 20, [1, 2, 3], "same", "valid", "full", 2 ** 63]),
    "dilation": _set("dilation", [0, -1, [1, 0], [0, 1], [2, -1], 10 ** 6, 2 ** 40, 2 ** 63]),
    "groups": _set("groups", [0, -1, 2, 3, 4, 8, 2 ** 63]),
    "bias": lambda draw, case: case.update(bias=draw(st.builds(
        lambda sh, ly, d, sd: tspec(sh, d, ly, sd),
        st.sampled_from([[case["weight"]["shape"][0] + 1], [max(case["weight"]["shape"][0] - 1, 0)], [1], [2],
                         [case["weight"]["shape"][0], 1], [1, case["weight"]["shape"][0]], []]),
        st.sampled_from(LAYOUTS), st.sampled_from([case["input"]["dtype"], "float64", "int64", "float16"]), seeds))),
    "dtype": lambda draw, case: _with_dtype(case, draw(st.sampled_from(["float16", "int64", "int32", "bool"])),
                                            ["input", "weight", "bias"]),
    "mixed_dtype": lambda draw, case: _with_dtype(
        case, "float64" if case["input"]["dtype"] == "float32" else "float32", [draw(st.sampled_from(["weight", "bias"]))]),
    "input_ndim": _shape_of("input", lambda draw, s: draw(st.sampled_from([s[1:], s[-2:], [1] + s, s[:-1]]))),
    "weight_ndim": _shape_of("weight", lambda draw, s: draw(st.sampled_from([s[1:], s[:-1], [1] + s]))),
    "in_channels": _shape_of("weight", lambda draw, s: s[:1] + [draw(st.sampled_from([s[1] + 1, max(s[1] - 1, 0)]))] + s[2:]
                             if len(s) > 1 else s),
    "out_channels": _shape_of("weight", lambda draw, s: [draw(st.sampled_from([0, s[0] + 1]))] + s[1:] if s else s),
    "kernel": _shape_of("weight", lambda draw, s: s[:2] + [draw(st.sampled_from([0, 9, 20]))] + s[3:]),
    "empty_input": _shape_of("input", lambda draw, s: _zero_at(s, draw(st.integers(0, len(s) - 1)))),
}


def conv_wild():
    return st.one_of(mutate(conv_valid(), CONV_MUTATIONS), mutate(conv_valid(), CONV_MUTATIONS), conv_random())


def _conv(x, w, bias=None, **kw):
    return {"op": "conv2d", "valid": False, "seed": 0, "input": tspec(x, "float32", seed=1, grad=True),
            "weight": tspec(w, "float32", seed=2, grad=True), "bias": bias, "stride": 1, "padding": 0,
            "dilation": 1, "groups": 1, **kw}


@fuzz()
@given(case=conv_valid())
def test_conv2d_valid(worker, case):
    worker.check(case)


@fuzz()
@given(case=conv_wild())
def test_conv2d_wild(worker, case):
    worker.check(case)


# pooling -----------------------------------------------------------------------------------------------

@st.composite
def pool_valid(draw, op):
    if draw(st.integers(0, 3)) == 0:
        k, s, p, d = [2, 2], [2, 2], [0, 0], [1, 1]  # the 2x2/stride-2 fast path
    else:
        k = [draw(st.integers(1, 4)), draw(st.integers(1, 4))]
        s = [draw(st.integers(1, 3)), draw(st.integers(1, 3))]
        p = [draw(st.integers(0, k[0] // 2)), draw(st.integers(0, k[1] // 2))]
        d = [draw(st.integers(1, 2)), draw(st.integers(1, 2))] if op == "max_pool2d" else [1, 1]
    # at least one effective kernel of input: no window lies entirely in the padding (PyTorch itself
    # returns out-of-range indices for those and its backward then corrupts the heap)
    h = d[0] * (k[0] - 1) + 1 + draw(st.integers(0, 4))
    w = d[1] * (k[1] - 1) + 1 + draw(st.integers(0, 4))
    shape = [draw(st.integers(1, 2)), draw(st.integers(1, 3)), h, w][draw(st.integers(0, 1)):]
    case = {"op": op, "valid": True, "seed": draw(seeds), "input": draw(tensors(shape, grad=True)),
            "kernel_size": k if k[0] != k[1] or draw(st.booleans()) else k[0],
            "stride": draw(st.sampled_from([None, s, s[0]] if s[0] == s[1] else [None, s])),
            "padding": p if p[0] != p[1] or draw(st.booleans()) else p[0], "ceil_mode": draw(st.booleans())}
    if op == "max_pool2d":
        case.update(dilation=d, return_indices=draw(st.booleans()))
    else:
        case.update(count_include_pad=draw(st.booleans()), divisor_override=draw(st.sampled_from([None, 1, 3])))
    return case


@st.composite
def pool_random(draw, op):
    ints = st.sampled_from([-1, 0, 1, 2, 2, 3, 4, 9])
    shape = draw(shapes(2, 5, 0, 7))
    case = {"op": op, "valid": False, "seed": draw(seeds),
            "input": draw(tensors(shape, WILD_DTYPES, grad=True)),
            "kernel_size": draw(pair_or_int(ints)),
            "stride": draw(st.one_of(st.none(), pair_or_int(st.sampled_from([-1, 0, 1, 2, 3, 100] + HUGE)))),
            "padding": draw(pair_or_int(st.sampled_from([-1, 0, 0, 1, 2, 3]))), "ceil_mode": draw(st.booleans())}
    if op == "max_pool2d":
        case.update(dilation=draw(pair_or_int(st.sampled_from([-1, 0, 1, 1, 2, 3]))),
                    return_indices=draw(st.booleans()))
    else:
        case.update(count_include_pad=draw(st.booleans()),
                    divisor_override=draw(st.sampled_from([None, None, -2, 0, 1, 3])))
    return case


POOL_MUTATIONS = {
    "kernel_size": _set("kernel_size", [0, -1, 9, 20, [2, 0], [0, 2], [-1, 2], [1, 2, 3], [], 2 ** 63]),
    "stride": _set("stride", [0, -1, [1, 0], [2, -1], [1, 2, 3], 100, 2 ** 31, 2 ** 63]),
    "padding": _set("padding", [-1, [0, -1], [-1, 0], 2, 3, 5, [1, 2, 3], 2 ** 63]),
    "ceil_mode": lambda draw, case: case.update(ceil_mode=not case["ceil_mode"]),
    "dtype": lambda draw, case: _with_dtype(case, draw(st.sampled_from(["float16", "int64", "int32", "bool"])),
                                            ["input"]),
    "input_ndim": _shape_of("input", lambda draw, s: draw(st.sampled_from([s[1:], s[-2:], [1] + s, s[-1:]]))),
    "empty_input": _shape_of("input", lambda draw, s: _zero_at(s, draw(st.integers(0, len(s) - 1)))),
}
MAX_POOL_MUTATIONS = {**POOL_MUTATIONS, "dilation": _set("dilation", [0, -1, [1, 0], [0, 1], [2, -1], 5, 2 ** 63])}
AVG_POOL_MUTATIONS = {**POOL_MUTATIONS, "divisor_override": _set("divisor_override", [0, -1, -2, 2 ** 63]),
                      "count_include_pad": lambda draw, case: case.update(
                          count_include_pad=not case["count_include_pad"])}


def pool_wild(op):
    muts = MAX_POOL_MUTATIONS if op == "max_pool2d" else AVG_POOL_MUTATIONS
    return st.one_of(mutate(pool_valid(op), muts), mutate(pool_valid(op), muts), pool_random(op))


def _pool(op, shape=(1, 2, 5, 5), **kw):
    return {"op": op, "valid": False, "seed": 0, "input": tspec(list(shape), "float32", seed=1, grad=True),
            "kernel_size": 2, "stride": None, "padding": 0, "ceil_mode": False, **kw}


@fuzz()
@given(case=pool_valid("max_pool2d"))
def test_max_pool2d_valid(worker, case):
    worker.check(case)


@fuzz()
@given(case=pool_wild("max_pool2d"))
def test_max_pool2d_wild(worker, case):
    worker.check(case)


@fuzz()
@given(case=pool_valid("avg_pool2d"))
def test_avg_pool2d_valid(worker, case):
    worker.check(case)


@fuzz()
@given(case=pool_wild("avg_pool2d"))
def test_avg_pool2d_wild(worker, case):
    worker.check(case)


# softmax / log_softmax ---------------------------------------------------------------------------------

@st.composite
def softmax_case(draw, valid):
    shape = draw(shapes(0, 3, 0 if not valid else 1, 6))
    n = max(len(shape), 1)
    case = {"op": draw(st.sampled_from(["softmax", "log_softmax"])), "valid": valid, "seed": draw(seeds),
            "input": draw(tensors(shape, FLOAT if valid else WILD_DTYPES, grad=True)),
            "dim": draw(st.integers(-n, n - 1) if valid else st.one_of(st.none(), st.integers(-n - 2, n + 1))),
            "dtype": draw(st.sampled_from([None, None, "float64"] if valid else [None, "float32", "float64", "int64"]))}
    if case["dtype"] == "float64" and valid:
        case["input"].pop("grad", None)
    return case


@fuzz()
@given(case=softmax_case(True))
def test_softmax_valid(worker, case):
    worker.check(case)


@fuzz()
@given(case=softmax_case(False))
def test_softmax_wild(worker, case):
    worker.check(case)


# cross_entropy / nll_loss ------------------------------------------------------------------------------

@st.composite
def loss_case(draw, op, valid):
    c = draw(st.integers(1, 5))
    n = draw(st.integers(1 if valid else 0, 4))
    extra = draw(st.integers(1, 3))
    form = draw(st.sampled_from(["C", "NC", "NC", "NCd"]))
    x_shape = {"C": [c], "NC": [n, c], "NCd": [n, c, extra]}[form]
    t_shape = {"C": [], "NC": [n], "NCd": [n, extra]}[form]
    ignore = draw(st.sampled_from([-100, -100, 0, -1, c + 5]))
    dtype = draw(st.sampled_from(FLOAT if valid else WILD_DTYPES))
    case = {"op": op, "valid": valid, "seed": draw(seeds), "input": draw(tensors(x_shape, [dtype], grad=True)),
            "ignore_index": ignore, "reduction": draw(st.sampled_from(["mean", "mean", "sum", "none"]))}
    if valid:
        vals = st.one_of(st.integers(0, c - 1), st.just(ignore)) if ignore >= 0 or ignore == -100 else st.integers(0, c - 1)
        m = 1
        for s in t_shape:
            m *= s
        case["target"] = {"shape": t_shape, "values": draw(st.lists(vals, min_size=m, max_size=m)), "dtype": "int64",
                          "layout": draw(st.sampled_from(LAYOUTS))}
        if op == "cross_entropy" and ignore == -100 and draw(st.integers(0, 4)) == 0:
            case["target"] = draw(tensors(x_shape, [dtype]))  # class probabilities (no ignore_index then)
        case["weight"] = draw(st.one_of(st.none(), tensors([c], [dtype])))
        if op == "cross_entropy":
            case["label_smoothing"] = draw(st.sampled_from([0.0, 0.0, 0.1, 0.5]))
        return case
    t_shape = draw(st.sampled_from([t_shape, t_shape, t_shape, t_shape + [1], [n + 1], x_shape]))
    case["target"] = draw(st.one_of(
        index_values(t_shape, -2, c + 1, ("int64", "int64", "int64", "int32", "uint8", "bool")),
        tensors(t_shape, WILD_DTYPES)))
    case["weight"] = draw(st.one_of(st.none(), tensors(draw(st.sampled_from([[c], [c], [c + 1], [max(c - 1, 0)], [c, 1]])),
                                                       [dtype, dtype, "int64", "float64"])))
    if op == "cross_entropy":
        case["label_smoothing"] = draw(st.sampled_from([0.0, 0.0, 0.1, 1.0, -0.1, 1.5]))
    case["reduction"] = draw(st.sampled_from(["mean", "mean", "sum", "none", "avg"]))
    return case


def _ce(op, target, **kw):
    return {"op": op, "valid": False, "seed": 0, "input": tspec([3, 4], "float32", seed=1, grad=True),
            "target": ivals(target), "ignore_index": -100, "reduction": "mean", "weight": None, **kw}


@fuzz()
@given(case=loss_case("cross_entropy", True))
def test_cross_entropy_valid(worker, case):
    worker.check(case)


@fuzz()
@given(case=loss_case("cross_entropy", False))
def test_cross_entropy_wild(worker, case):
    worker.check(case)


@fuzz()
@given(case=loss_case("nll_loss", True))
def test_nll_loss_valid(worker, case):
    worker.check(case)


@fuzz()
@given(case=loss_case("nll_loss", False))
def test_nll_loss_wild(worker, case):
    worker.check(case)


# gather / scatter_add / index_select / indexing / narrow / embedding -----------------------------------------

@st.composite
def gather_case(draw, op, valid):
    shape = draw(shapes(1, 3, 1, 5))
    nd = len(shape)
    dim = draw(st.integers(-nd, nd - 1) if valid else st.integers(-nd - 1, nd))
    d = dim % nd
    n = shape[d]
    if valid:
        if op == "index_select":
            ishape = [draw(st.integers(0, 6))]
        else:
            ishape = [draw(st.integers(0, 6)) if i == d else draw(st.integers(1, s)) for i, s in enumerate(shape)]
        index = draw(index_values(ishape, 0, n - 1))
    else:
        ishape = draw(st.one_of(shapes(0, 4, 0, 6), st.just(list(shape))))
        index = draw(index_values(ishape, -n - 1, n + 1, INDEX_DTYPES))
    dtypes = FLOAT if valid else WILD_DTYPES
    case = {"op": op, "valid": valid, "seed": draw(seeds), "input": draw(tensors(shape, dtypes, grad=True)),
            "dim": dim, "index": index}
    if op == "scatter_add":
        # valid: src of the index's shape (a larger src is legal forward, but PyTorch's own backward then
        # fails: its src gradient has the index's shape)
        sshape = ishape if valid else draw(st.sampled_from([ishape, shape, [max(s - 1, 0) for s in ishape], [1]]))
        case["src"] = draw(tensors(sshape, [case["input"]["dtype"]] if valid else WILD_DTYPES, grad=True))
    return case


@fuzz()
@given(case=gather_case("gather", True))
def test_gather_valid(worker, case):
    worker.check(case)


@fuzz()
@given(case=gather_case("gather", False))
def test_gather_wild(worker, case):
    worker.check(case)


@fuzz()
@given(case=gather_case("scatter_add", True))
def test_scatter_add_valid(worker, case):
    worker.check(case)


@fuzz()
@given(case=gather_case("scatter_add", False))
def test_scatter_add_wild(worker, case):
    worker.check(case)


@fuzz()
@given(case=gather_case("index_select", True))
def test_index_select_valid(worker, case):
    worker.check(case)


@fuzz()
@given(case=gather_case("index_select", False))
def test_index_select_wild(worker, case):
    worker.check(case)


@st.composite
def key_item(draw, n, valid):
    """One index for a dim of size n."""
    if valid:
        kinds = ["int", "slice", "slice", "tensor", "list"] if n else ["slice"]
    else:
        kinds = ["int", "slice", "tensor", "list", "none", "ellipsis", "bool"]
    kind = draw(st.sampled_from(kinds))
    if kind == "int":
        return draw(st.integers(-n, n - 1) if valid else st.integers(-n - 2, n + 1))
    if kind == "slice":
        b = st.one_of(st.none(), st.integers(-n - 3, n + 3))
        step = st.sampled_from([None, 1, 2, 3] if valid else [None, 1, 2, 0, -1])
        return {"slice": [draw(b), draw(b), draw(step)]}
    if kind == "tensor":
        shape = draw(shapes(0, 2, 0, 3))
        if valid:
            return draw(index_values(shape, -n, n - 1))
        return draw(index_values(shape, -n - 2, n + 1, INDEX_DTYPES))
    if kind == "list":
        m = draw(st.integers(1, 3))
        return {"list": draw(st.lists(st.integers(-n, n - 1) if valid else st.integers(-n - 2, n + 1),
                                      min_size=m, max_size=m))}
    if kind == "bool":
        return draw(index_values(draw(shapes(1, 2, 0, 4)), 0, 1, ("bool",)))
    return None if kind == "none" else "..."


@st.composite
def index_case(draw, op, valid):
    shape = draw(shapes(1 if valid else 0, 3, 0, 5))
    if valid:
        k = draw(st.integers(1, len(shape)))
        key = []
        for i in range(k):
            if draw(st.integers(0, 5)) == 0:
                key.append(None)
            key.append(draw(key_item(shape[i], True)))
        if draw(st.integers(0, 5)) == 0 and shape[0]:
            key = [draw(index_values(shape[:1], 0, 1, ("bool",)))]  # a mask over dim 0
    else:
        key = draw(st.lists(key_item(5, False), min_size=1, max_size=4))
    case = {"op": op, "valid": valid and op == "getitem", "seed": draw(seeds),
            "input": draw(tensors(shape, FLOAT if valid else WILD_DTYPES, grad=op == "getitem",
                                  layouts=LAYOUTS if op == "getitem" else LAYOUTS[:4])),
            "key": key}
    if op == "setitem":
        case["value"] = draw(st.one_of(st.floats(-3, 3, width=32), tensors(draw(shapes(0, 2, 1, 3)), WILD_DTYPES)))
    return case


@fuzz()
@given(case=index_case("getitem", True))
def test_getitem_valid(worker, case):
    worker.check(case)


@fuzz()
@given(case=index_case("getitem", False))
def test_getitem_wild(worker, case):
    worker.check(case)


@fuzz()
@given(case=index_case("setitem", False))
def test_setitem_wild(worker, case):
    worker.check(case)


@st.composite
def narrow_case(draw, valid):
    shape = draw(shapes(1, 3, 0, 6))
    nd = len(shape)
    dim = draw(st.integers(-nd, nd - 1) if valid else st.integers(-nd - 1, nd))
    n = shape[dim % nd]
    if valid:
        start = draw(st.integers(-n, n)) if n else 0
        length = draw(st.integers(0, n - start % max(n, 1) if start < n else 0))
    else:
        start, length = draw(st.integers(-n - 2, n + 2)), draw(st.integers(-2, n + 3))
    return {"op": "narrow", "valid": valid, "seed": draw(seeds),
            "input": draw(tensors(shape, FLOAT if valid else WILD_DTYPES, grad=True)),
            "dim": dim, "start": start, "length": length}


@fuzz()
@given(case=narrow_case(True))
def test_narrow_valid(worker, case):
    worker.check(case)


@fuzz()
@given(case=narrow_case(False))
def test_narrow_wild(worker, case):
    worker.check(case)


@st.composite
def embedding_case(draw, valid):
    n, d = draw(st.integers(1, 6)), draw(st.integers(1, 4))
    ishape = draw(shapes(0, 2, 0, 4))
    if valid:
        return {"op": "embedding", "valid": True, "seed": draw(seeds), "input": draw(index_values(ishape, 0, n - 1)),
                "weight": draw(tensors([n, d], grad=True)),
                "padding_idx": draw(st.one_of(st.none(), st.integers(-n, n - 1)))}
    wshape = draw(st.sampled_from([[n, d], [n, d], [n], [n, d, 2]]))
    return {"op": "embedding", "valid": False, "seed": draw(seeds),
            "input": draw(index_values(ishape, -2, n + 1, INDEX_DTYPES)),
            "weight": draw(tensors(wshape, WILD_DTYPES, grad=True)),
            "padding_idx": draw(st.one_of(st.none(), st.integers(-n - 2, n + 1)))}


@fuzz()
@given(case=embedding_case(True))
def test_embedding_valid(worker, case):
    worker.check(case)


@fuzz()
@given(case=embedding_case(False))
def test_embedding_wild(worker, case):
    worker.check(case)


# matmul / linear ---------------------------------------------------------------------------------------

@st.composite
def matmul_case(draw, valid):
    dtype = draw(st.sampled_from(FLOAT if valid else WILD_DTYPES))
    if valid:
        m, k, n = draw(st.integers(1, 5)), draw(st.integers(1, 5)), draw(st.integers(1, 5))
        batch = draw(shapes(0, 2, 1, 3))
        a = draw(st.sampled_from([[k], [m, k], batch + [m, k]]))
        b = draw(st.sampled_from([[k], [k, n], [1] * len(batch) + [k, n], batch[1:] + [k, n]]))
    else:
        a, b = draw(shapes(0, 4, 0, 4)), draw(shapes(0, 4, 0, 4))
    return {"op": "matmul", "valid": valid, "seed": draw(seeds), "input": draw(tensors(a, [dtype], grad=True)),
            "other": draw(tensors(b, [dtype], grad=True))}


@st.composite
def linear_case(draw, valid):
    dtype = draw(st.sampled_from(FLOAT if valid else WILD_DTYPES))
    i, o = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    if valid:
        x = draw(shapes(0, 2, 1, 3)) + [i]
        w, b = [o, i], draw(st.sampled_from([None, [o]]))
    else:
        x = draw(shapes(0, 3, 0, 5))
        w = draw(st.sampled_from([[o, i], [o, i], [i], [o, i, 2], [o, i + 1]]))
        b = draw(st.sampled_from([None, [o], [o + 1], [1], [], [o, 1]]))
    return {"op": "linear", "valid": valid, "seed": draw(seeds), "input": draw(tensors(x, [dtype], grad=True)),
            "weight": draw(tensors(w, [dtype], grad=True)),
            "bias": None if b is None else draw(tensors(b, [dtype], grad=True))}


@fuzz()
@given(case=matmul_case(True))
def test_matmul_valid(worker, case):
    worker.check(case)


@fuzz()
@given(case=matmul_case(False))
def test_matmul_wild(worker, case):
    worker.check(case)


@fuzz()
@given(case=linear_case(True))
def test_linear_valid(worker, case):
    worker.check(case)


@fuzz()
@given(case=linear_case(False))
def test_linear_wild(worker, case):
    worker.check(case)


# relu / sum / mean ---------------------------------------------------------------------------------------

BIG = [[1024], [1100], [33, 32], [4, 16, 17], [2, 0, 3], [3, 5], []]


@st.composite
def relu_case(draw, valid):
    shape = draw(st.sampled_from(BIG))
    x = draw(tensors(shape, FLOAT if valid else WILD_DTYPES, grad=True, scale=draw(st.sampled_from([1.0, 1e30]))))
    return {"op": "relu", "valid": valid, "seed": draw(seeds), "input": x}


@fuzz()
@given(case=relu_case(True))
def test_relu_valid(worker, case):
    worker.check(case)


@fuzz()
@given(case=relu_case(False))
def test_relu_wild(worker, case):
    worker.check(case)


@st.composite
def reduce_case(draw, valid):
    shape = draw(shapes(0 if not valid else 1, 4, 0 if not valid else 1, 5))
    nd = len(shape)
    if valid:
        dim = draw(st.one_of(st.none(), st.integers(-nd, nd - 1),
                             st.lists(st.integers(0, nd - 1), min_size=1, max_size=nd, unique=True)))
        dtype = draw(st.sampled_from([None, None, "float64"]))
    else:
        dim = draw(st.one_of(st.none(), st.integers(-nd - 2, nd + 1), st.lists(st.integers(-nd - 1, nd), max_size=3)))
        dtype = draw(st.sampled_from([None, None, "float64", "int64", "float16"]))
    x = draw(tensors(shape, FLOAT if valid else WILD_DTYPES, grad=dtype is None))
    return {"op": draw(st.sampled_from(["sum", "mean"])), "valid": valid, "seed": draw(seeds), "input": x,
            "dim": dim, "keepdim": draw(st.booleans()), "dtype": dtype}


@fuzz()
@given(case=reduce_case(True))
def test_sum_mean_valid(worker, case):
    worker.check(case)


@fuzz()
@given(case=reduce_case(False))
def test_sum_mean_wild(worker, case):
    worker.check(case)


@fuzz(max(N // 2, 10))
@given(case=st.builds(
    lambda shape, lay, sd, g: {"op": "backward", "valid": False, "seed": sd,
                               "input": tspec(shape, "float32", lay, sd, grad=True), "gradient": g},
    st.sampled_from([[2], [2, 3], []]), st.sampled_from(LAYOUTS), seeds,
    st.one_of(st.none(), st.just(1.0), st.just([1.0, 1.0]),
              st.builds(lambda s, d: tspec(s, d, seed=5), st.sampled_from([[2], [2, 3], [], [3]]),
                        st.sampled_from(["float32", "float64", "int64"])))))
def test_backward_gradient_argument(worker, case):
    worker.check(case)


# optimizers: fused steps fed state through load_state_dict ------------------------------------------------

STATE_KEYS = {"Adam": ["exp_avg", "exp_avg_sq"], "AdamW": ["exp_avg", "exp_avg_sq"],
              "RMSprop": ["square_avg"], "SGD": ["momentum_buffer"]}


@st.composite
def optim_case(draw, valid):
    opt = draw(st.sampled_from(sorted(STATE_KEYS)))
    shape = draw(st.sampled_from([[5], [3, 4], [1], [2, 3, 2]]))
    dtype = draw(st.sampled_from(FLOAT))
    hp = {"lr": 0.01}
    keys = list(STATE_KEYS[opt])
    if opt in ("Adam", "AdamW"):
        hp.update(amsgrad=draw(st.booleans()), maximize=draw(st.booleans()),
                  weight_decay=draw(st.sampled_from([0.0, 0.1])))
        if hp["amsgrad"]:
            keys.append("max_exp_avg_sq")
    elif opt == "RMSprop":
        hp.update(momentum=draw(st.sampled_from([0.0, 0.9])), centered=draw(st.booleans()),
                  weight_decay=draw(st.sampled_from([0.0, 0.1])))
        keys += (["momentum_buffer"] if hp["momentum"] else []) + (["grad_avg"] if hp["centered"] else [])
    else:
        hp.update(momentum=0.9, nesterov=draw(st.booleans()), weight_decay=draw(st.sampled_from([0.0, 0.1])))
    numel = 1
    for s in shape:
        numel *= s
    wrong = [[numel + 3], [max(numel - 1, 1)], [1], [], shape + [2], [2] + shape, [numel]]
    state = None
    if draw(st.integers(0, 5)) or not valid:
        state = {} if opt == "SGD" else {"step": draw(st.sampled_from([1, 3]))}
        for k in keys:
            s = shape if valid or draw(st.booleans()) else draw(st.sampled_from(wrong))
            d = dtype if valid else draw(st.sampled_from([dtype, dtype, "float16", "int64"]))
            state[k] = tspec(s, d, "contig", draw(seeds), **({"scale": 0.1} if k != "exp_avg" else {}))
            if k in ("exp_avg_sq", "max_exp_avg_sq", "square_avg"):
                state[k]["positive"] = True  # a reachable state: averages of squares >= (average grad)^2
    return {"op": "optim", "opt": opt, "valid": valid, "seed": draw(seeds),
            "param": draw(tensors(shape, [dtype], layouts=("contig", "contig", "offset", "T"))),
            "grad": draw(tensors(shape, [dtype])), "hp": hp, "state": state, "steps": draw(st.integers(1, 2))}


def _optim(opt, state, shape=(4,), **hp):
    return {"op": "optim", "opt": opt, "valid": False, "seed": 0, "param": tspec(list(shape), "float32", seed=1),
            "grad": tspec(list(shape), "float32", seed=2), "hp": {"lr": 0.01, **hp}, "state": state, "steps": 1}


@fuzz()
@given(case=optim_case(True))
def test_optimizer_steps_valid(worker, case):
    worker.check(case)


@fuzz()
@given(case=optim_case(False))
def test_optimizer_steps_wild(worker, case):
    worker.check(case)


# ---- known cases: crashes and bad answers seen before, one test each --------------------------------------

def _case(op, **kw):
    return {"op": op, "valid": False, "seed": 0, **kw}


_X = tspec([1, 2, 5, 5], "float32", seed=1, grad=True)
_IDX = {"input": tspec([3, 4], "float32")}
KNOWN = {
    # conv2d: out-of-bounds kernels (segfault / abort / heap corruption), ZeroDivisionError, numba TypingError
    "conv2d-padding-1": _conv([1, 2, 5, 5], [3, 2, 3, 3], padding=-1),
    "conv2d-padding-1-winograd": _conv([1, 8, 5, 5], [8, 8, 3, 3], padding=-1),
    "conv2d-dilation0": _conv([1, 2, 5, 5], [3, 2, 3, 3], dilation=0),
    "conv2d-dilation-1": _conv([1, 2, 5, 5], [3, 2, 3, 3], dilation=-1),
    "conv2d-stride0": _conv([1, 2, 5, 5], [3, 2, 3, 3], stride=0),
    "conv2d-bias-too-long": _conv([1, 2, 5, 5], [3, 2, 3, 3], bias=tspec([5], "float32")),
    "conv2d-bias-1-element-view": _conv([1, 2, 5, 5], [3, 2, 3, 3], bias=tspec([1], "float32", "offset")),
    "conv2d-bias-2d": _conv([1, 2, 5, 5], [3, 2, 3, 3], bias=tspec([3, 1], "float32")),
    "conv2d-stride-3-tuple": _conv([1, 2, 5, 5], [3, 2, 3, 3], stride=[1, 1, 1]),
    "conv2d-no-out-channels": _conv([1, 3, 3], [0, 1, 3, 3]),
    # pooling
    "max_pool2d-kernel0": _pool("max_pool2d", kernel_size=0),
    "max_pool2d-padding-1": _pool("max_pool2d", padding=-1),
    "max_pool2d-dilation0": _pool("max_pool2d", dilation=0),
    "max_pool2d-dilation-1": _pool("max_pool2d", dilation=-1),
    "max_pool2d-kernel-larger-than-input": _pool("max_pool2d", kernel_size=7),
    "max_pool2d-stride-2**63": _pool("max_pool2d", stride=2 ** 63),
    "max_pool2d-bool": _pool("max_pool2d", input=tspec([1, 2, 5, 5], "bool")),
    "avg_pool2d-kernel0": _pool("avg_pool2d", kernel_size=0),
    "avg_pool2d-padding-1": _pool("avg_pool2d", padding=-1),
    "avg_pool2d-kernel-larger-than-input": _pool("avg_pool2d", kernel_size=7),
    "avg_pool2d-divisor_override0": _pool("avg_pool2d", divisor_override=0),
    "avg_pool2d-divisor_override-2": _pool("avg_pool2d", divisor_override=-2),
    # losses
    "cross_entropy-target-out-of-range": _ce("cross_entropy", [0, 4, 1]),
    "cross_entropy-target-negative": _ce("cross_entropy", [0, -1, 1]),
    "cross_entropy-target-out-of-range-none": _ce("cross_entropy", [0, 7, 1], reduction="none"),
    "cross_entropy-target-out-of-range-weighted": _ce("cross_entropy", [0, 7, 1], weight=tspec([4], "float32")),
    "cross_entropy-weight-too-long": _case("cross_entropy", input=tspec([4], "float32"), target=ivals(2),
                                           weight=tspec([5], "float32"), reduction="none"),
    "cross_entropy-all-ignored-weighted-grad": _ce("cross_entropy", [-100, -100, -100], weight=tspec([4], "float32")),
    "nll_loss-target-out-of-range": _ce("nll_loss", [0, 4, 1]),
    "nll_loss-target-negative": _ce("nll_loss", [0, -1, 1], reduction="sum"),
    "nll_loss-all-ignored-grad": _ce("nll_loss", [1, 1, 1], ignore_index=1),
    # indexing
    "gather-negative-index": _case("gather", **_IDX, dim=1, index=ivals([[0, -1], [1, 2], [3, 0]])),
    "gather-dim-out-of-range": _case("gather", input=tspec([3], "float32"), dim=1, index=ivals([0])),
    "gather-index-narrower-than-input": _case("gather", input=tspec([4, 5], "float32", grad=True), dim=1,
                                              index=ivals([[1], [2]])),
    "scatter_add-index-out-of-range": _case("scatter_add", **_IDX, dim=0, index=ivals([[0, 5]]),
                                            src=tspec([1, 2], "float32")),
    "scatter_add-negative-index": _case("scatter_add", **_IDX, dim=0, index=ivals([[0, -1]]),
                                        src=tspec([1, 2], "float32")),
    "scatter_add-src-grad": _case("scatter_add", input=tspec([2, 2], "float32", grad=True), dim=0,
                                  index=ivals([[1], [0], [1]]), src=tspec([3, 1], "float32", grad=True)),
    "index_select-out-of-range": _case("index_select", **_IDX, dim=0, index=ivals([0, 3])),
    "index_select-negative-index": _case("index_select", **_IDX, dim=0, index=ivals([-1])),
    "index_select-0d-index": _case("index_select", **_IDX, dim=0, index=ivals(1)),
    "getitem-int-then-list": _case("getitem", input=tspec([2, 3, 4], "float32"),
                                   key=[0, {"slice": [None, None, None]}, {"list": [0, 1]}]),
    "narrow-past-the-end": _case("narrow", input=tspec([5], "float32"), dim=0, start=3, length=4),
    "narrow-negative-length": _case("narrow", input=tspec([5], "float32"), dim=0, start=1, length=-1),
    "narrow-negative-start": _case("narrow", input=tspec([6], "float32"), dim=0, start=-3, length=3),
    "embedding-negative-padding_idx": _case("embedding", input=ivals([2, 0]),
                                            weight=tspec([3, 2], "float32", grad=True), padding_idx=-1),
    "embedding-padding_idx-out-of-range": _case("embedding", input=ivals([0]), weight=tspec([2, 3], "float32"),
                                                padding_idx=3),
    "linear-1d-weight": _case("linear", input=tspec([3, 2, 4], "float32"), weight=tspec([4], "float32"), bias=None),
    "relu-bool": _case("relu", input=tspec([3], "bool")),
    # autograd
    "backward-list-gradient": _case("backward", input=tspec([2], "float32", grad=True), gradient=[1.0, 1.0]),
    # fused optimizer steps fed state of the wrong size (segfaults) through load_state_dict
    "Adam-state-too-long": _optim("Adam", {"step": 1, "exp_avg": tspec([100], "float32"),
                                           "exp_avg_sq": tspec([100], "float32", positive=True)}, shape=(4, 4)),
    "Adam-state-0d": _optim("Adam", {"step": 1, "exp_avg": tspec([], "float32"),
                                     "exp_avg_sq": tspec([], "float32", positive=True)}, shape=(4, 4)),
    "SGD-state-too-short": _optim("SGD", {"momentum_buffer": tspec([1], "float32")}, shape=(64,), momentum=0.9),
    "RMSprop-state-too-short": _optim("RMSprop", {"step": 1, "square_avg": tspec([2], "float32", positive=True)},
                                      shape=(64,)),
}


@pytest.mark.parametrize("name", sorted(KNOWN))
def test_known_case(worker, name):
    worker.check(KNOWN[name])
