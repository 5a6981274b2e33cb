"""`devtensor bench`: option handling, case selection, and the timing loop.

The cases live in bench_cases.py, the peak table in peaks.py, the output formats in report.py.
Each (case, device, implementation) is one task: build its inputs on the device (untimed), time
it with devtensor.bench.timing.measure (first call apart, warm-up, synchronize before every clock
read, median/min/max of repeats), free its memory, go on. A task that fails or cannot fit is
recorded in "skipped" with the reason; the run always finishes and writes what it measured.

Its size: option parsing, task scheduling and the round-robin timing loop of one command; the cases,
peaks and reports already live in their own modules.
"""
from __future__ import annotations

import contextlib
import datetime
import gc
import importlib.util
import os
import platform
import shlex
import sys
from dataclasses import dataclass, field

from .errors import CliError
from . import bench_cases as bc

DESCRIPTION = """\
Time devtensor's ops and whole training steps on each device, next to what you would use
instead: numpy, PyTorch (TF32 off unless --tf32) and CuPy (cuBLAS / CUB through cupy).

For each case it reports the median time of the repeats (min and max beside it), the first
call's extra time apart (numba / NVRTC compilation, cuBLAS handles), GFLOP/s and GB/s from the
case's algorithmic FLOP and byte counts, % of the device's datasheet peak where the GPU is known
(see devtensor/cli/peaks.py), % of the copy bandwidth measured at start-up, and the speedup of
devtensor against each baseline (baseline time / devtensor time: above 1, devtensor is faster)."""

EPILOG = """\
sizes:
  --sizes takes comma-separated terms: a tier (small, medium, large, all); a piece of a case
  label (e.g. 1024, resnet, mnist); batch=N to set the batch of the conv and training cases
  (default: 10/100 for the MNIST layers, 8/32 for ResNet-50's). Default tiers: small+medium on
  cpu, all three on cuda; --quick: small only. --list shows the cases a selection picks.

examples:
  devtensor bench --quick                         # CI smoke run, seconds on a cpu
  devtensor bench --ops matmul,conv --devices cuda --json results.json --plot results.png
  devtensor bench --ops conv2d --sizes resnet,batch=16 --baselines torch
  devtensor bench --quick --json - | jq '.records[] | select(.impl == "devtensor")'

exit status: 0 when every task ran (or was skipped for memory / no equivalent), 1 when some
task failed (the results that did run are still written), 2 for bad options, 130 when
interrupted (Ctrl-C; what was measured so far is still written)."""

IMPLS = ("devtensor", "numpy", "torch", "cupy")
BASELINES = IMPLS[1:]
_INSTALL = {"torch": "pip install torch", "cupy": "pip install 'devtensor[cuda]' (or [cuda12])",
            "numpy": "pip install numpy"}


def add_arguments(p):
    p.add_argument("--devices", metavar="LIST",
                   help="comma-separated devices to time, e.g. cpu,cuda or cuda:1 (default: every available "
                        "device that holds data)")
    p.add_argument("--ops", metavar="LIST",
                   help="comma-separated ops or groups (default: all). Ops: " + ", ".join(bc.OPS)
                        + ". Groups: " + ", ".join(bc.GROUPS))
    p.add_argument("--sizes", metavar="LIST", help="tiers, label pieces and batch=N (see 'sizes' below)")
    p.add_argument("--quick", action="store_true",
                   help="small sizes, 3 short repeats: a smoke run in well under 30 s on a cpu (CI)")
    p.add_argument("--baselines", metavar="LIST",
                   help="comma-separated from numpy, torch, cupy, or 'none' (default: whichever is installed; "
                        "numpy runs on cpu, cupy on cuda, torch on both)")
    p.add_argument("--tf32", action="store_true",
                   help="allow TF32 tensor cores in PyTorch, CuPy and devtensor matmul/conv (default: strict fp32)")
    p.add_argument("--repeats", type=_positive_int, metavar="N", help="timed repeats per task (default 7, quick 3)")
    p.add_argument("--min-time", type=_positive_float, metavar="S",
                   help="seconds of timed work per task; fast ops loop inside each repeat to reach it "
                        "(default 0.5, quick 0.02)")
    p.add_argument("--json", metavar="FILE", help="write the results as JSON to FILE ('-': stdout); schema: "
                                                  "devtensor/cli/bench_schema.json")
    p.add_argument("--csv", metavar="FILE", help="write one row per record as CSV ('-': stdout)")
    p.add_argument("--markdown", metavar="FILE", help="write the tables as Markdown ('-': stdout)")
    p.add_argument("--plot", metavar="FILE.png", help="write bar charts per op and device and a roofline "
                                                      "(needs matplotlib)")
    p.add_argument("--list", action="store_true", help="list the selected cases and exit without timing")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (it is off anyway when stderr "
                                                              "is not a terminal)")


def _positive_int(s):
    import argparse

    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {s!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {s!r}")
    return v


def _positive_float(s):
    import argparse

    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {s!r}") from None
    if not v > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {s!r}")
    return v


def _split(spec):
    return [t.strip() for t in spec.split(",") if t.strip()]


# ---- resolving options --------------------------------------------------------------------------

def resolve_devices(spec):
    import devtensor

    avail = devtensor.backends.available()
    data = [n for n in avail if n != "meta"]
    here = [n for n in data if avail[n][0]]
    if spec is None:
        return sorted(here, key=lambda n: (n != "cpu", n))
    out = []
    for tok in _split(spec):
        base, _, idx = tok.partition(":")
        if base == "meta":
            raise CliError("the meta device holds no data, so there is nothing to time; "
                           f"available devices: {', '.join(here)}")
        if base not in avail:
            raise CliError(f"unknown device {tok!r}; devtensor knows: {', '.join(data)} "
                           f"(available here: {', '.join(here)})")
        ok, why = avail[base]
        if not ok:
            raise CliError(f"device {tok!r} is not available: {why}")
        if idx:
            if base != "cuda" or not idx.isdigit():
                raise CliError(f"bad device {tok!r}: only cuda takes an index (cuda:N)")
            n = devtensor.cuda.device_count()
            if int(idx) >= n:
                raise CliError(f"device {tok!r} does not exist: this machine has {n} CUDA device(s)")
        if tok not in out:
            out.append(tok)
    if not out:
        raise CliError("--devices is empty")
    return out


def resolve_ops(spec):
    if spec is None:
        return list(bc.OPS)
    ops, bad = [], []
    for tok in _split(spec):
        names = bc.GROUPS.get(tok) or ((tok,) if tok in bc.OPS else list(bc.OPS) if tok == "all" else None)
        if names is None:
            bad.append(tok)
            continue
        ops += [n for n in names if n not in ops]
    if bad:
        groups = "; ".join(f"{g} = {'+'.join(v)}" for g, v in bc.GROUPS.items())
        raise CliError(f"unknown op{'s' if len(bad) > 1 else ''} {', '.join(map(repr, bad))}; "
                       f"valid ops: {', '.join(bc.OPS)}; groups: {groups}")
    if not ops:
        raise CliError("--ops is empty")
    return [o for o in bc.OPS if o in ops]


def _installed(name):
    if sys.modules.get(name) is not None:  # already imported (find_spec raises for some stand-ins)
        return True
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def resolve_baselines(spec):
    if spec is None:
        return [b for b in BASELINES if _installed(b)]
    toks = _split(spec)
    if toks in ([], ["none"]):
        return []
    bad = [t for t in toks if t not in BASELINES]
    if bad:
        raise CliError(f"unknown baseline {', '.join(map(repr, bad))}; choose from: {', '.join(BASELINES)}, none")
    missing = [t for t in toks if not _installed(t)]
    if missing:
        raise CliError("baseline " + ", ".join(f"{m!r} is not installed ({_INSTALL[m]})" for m in missing))
    return [b for b in BASELINES if b in toks]


@dataclass
class Sizes:
    tiers: set = field(default_factory=set)
    words: list = field(default_factory=list)
    batch: int | None = None


def parse_sizes(spec):
    s = Sizes()
    for tok in _split(spec or ""):
        low = tok.lower()
        if low in bc.TIERS:
            s.tiers.add(low)
        elif low == "all":
            s.tiers.update(bc.TIERS)
        elif low.startswith("batch="):
            v = low[len("batch="):]
            if not v.isdigit() or int(v) < 1:
                raise CliError(f"bad --sizes term {tok!r}: batch=N needs a positive integer")
            s.batch = int(v)
        else:
            s.words.append(low)
    return s


def _device_type(dev):
    return dev.partition(":")[0]


def default_tiers(dev, quick):
    if quick:
        return {"small"}
    return set(bc.TIERS) if _device_type(dev) == "cuda" else {"small", "medium"}


def select(cases, ops, sizes, devices, quick):
    """[(case, device)] in report order."""
    for w in sizes.words:
        if not any(w in c.label.lower() for c in cases if c.op in ops):
            some = sorted({c.label for c in cases if c.op in ops})[:8]
            raise CliError(f"--sizes term {w!r} matches no case of the selected ops; terms are tiers "
                           f"({', '.join(bc.TIERS)}, all), batch=N, or pieces of labels such as "
                           f"{', '.join(map(repr, some))} (see --list)")
    out = []
    for c in cases:
        if c.op not in ops:
            continue
        for dev in devices:
            if c.devices and _device_type(dev) not in c.devices:
                continue
            tiers = sizes.tiers or (set() if sizes.words else default_tiers(dev, quick))
            if c.tier in tiers or any(w in c.label.lower() for w in sizes.words):
                out.append((c, dev))
    return out


def impls_for(dev, baselines):
    """(implementations to time on dev, notes on baselines that cannot run there)."""
    out, notes = ["devtensor"], []
    typ = _device_type(dev)
    for b in baselines:
        if b == "numpy" and typ == "cpu":
            out.append(b)
        elif b == "cupy" and typ == "cuda":
            out.append(b)
        elif b == "torch" and typ in ("cpu", "cuda"):
            if typ == "cuda" and not _torch_cuda():
                notes.append("torch has no CUDA here (a cpu-only build or no driver): no torch baseline on cuda")
            else:
                out.append(b)
    return out, notes


def _torch_cuda():
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:
        return False


# ---- device services: sync, memory, pools -------------------------------------------------------

def _cuda_index(dev):
    _, _, idx = dev.partition(":")
    return int(idx) if idx else None


def device_context(dev):
    """Make dev current for CuPy (devtensor and torch name the index themselves)."""
    if _device_type(dev) == "cuda" and _cuda_index(dev) is not None:
        import cupy

        return cupy.cuda.Device(_cuda_index(dev))
    return contextlib.nullcontext()


def sync_fn(impl, dev):
    """What must finish before the clock is read: the device's queued kernels. None on the cpu."""
    typ = _device_type(dev)
    if typ == "cpu":
        return None
    if typ == "cuda":
        if impl == "torch":
            import torch

            return lambda: torch.cuda.synchronize(dev)
        if impl == "devtensor":
            import devtensor

            return devtensor.cuda.synchronize
        import cupy

        return cupy.cuda.Device().synchronize
    import devtensor  # a third-party backend: its own synchronize

    be = devtensor.backends.get_backend(typ)
    return lambda: be.synchronize(None)


def free_memory(dev):
    """Bytes free on the device now, or None where unknown."""
    typ = _device_type(dev)
    try:
        if typ == "cpu":
            from .info import host_memory

            return host_memory()[1]
        if typ == "cuda":
            import cupy

            with device_context(dev):
                return cupy.cuda.runtime.memGetInfo()[0] + cupy.get_default_memory_pool().free_bytes()
    except Exception:
        return None
    return None


def release(dev, impls=IMPLS):
    """Give cached device memory back between tasks, so the next memory estimate sees it."""
    gc.collect()
    if _device_type(dev) != "cuda":
        return
    with contextlib.suppress(Exception):
        import cupy

        cupy.get_default_memory_pool().free_all_blocks()
    if "torch" in impls and "torch" in sys.modules:
        with contextlib.suppress(Exception):
            sys.modules["torch"].cuda.empty_cache()


def is_oom(e):
    return isinstance(e, MemoryError) or "OutOfMemory" in type(e).__name__ or "out of memory" in str(e).lower()


def _gib(n):
    return f"{n / 2**30:.2f} GiB" if n >= 2**28 else f"{n / 2**20:.0f} MiB"


def _first_line(e):
    s = str(e).strip()
    return f"{type(e).__name__}: {s.splitlines()[0][:300]}" if s else type(e).__name__


# ---- TF32 ---------------------------------------------------------------------------------------

@contextlib.contextmanager
def tf32_mode(allow, baselines):
    """Set TF32 for every implementation for the run, restoring the previous settings after.

    PyTorch's cuDNN allows TF32 by default (matmul does not), so a strict fp32 comparison has to
    switch it off explicitly; CuPy reads CUPY_TF32 at call time."""
    saved_env = os.environ.get("CUPY_TF32")
    os.environ["CUPY_TF32"] = "1" if allow else "0"
    restore = []
    notes = {"torch": None, "devtensor": None}
    if "torch" in baselines:
        import torch

        restore.append((torch.backends.cuda.matmul, "allow_tf32", torch.backends.cuda.matmul.allow_tf32))
        restore.append((torch.backends.cudnn, "allow_tf32", torch.backends.cudnn.allow_tf32))
        torch.backends.cuda.matmul.allow_tf32 = allow
        torch.backends.cudnn.allow_tf32 = allow
        notes["torch"] = f"matmul and cudnn allow_tf32={allow}"
    notes["devtensor"] = _devtensor_tf32(allow, restore)
    try:
        yield notes
    finally:
        for obj, attr, old in restore:
            setattr(obj, attr, old)
        if saved_env is None:
            os.environ.pop("CUPY_TF32", None)
        else:
            os.environ["CUPY_TF32"] = saved_env


def _devtensor_tf32(allow, restore):
    # devtensor's switch (if the cuda backend offers one) is spelled like PyTorch's
    import devtensor

    cuda_be = getattr(devtensor.backends, "cuda", None)
    for holder in (getattr(cuda_be, "matmul", None), cuda_be):
        if holder is not None and hasattr(holder, "allow_tf32"):
            restore.append((holder, "allow_tf32", holder.allow_tf32))
            holder.allow_tf32 = allow
            return f"allow_tf32={allow}"
    return "no TF32 switch found: devtensor's default (strict fp32) applies"


# ---- devices ------------------------------------------------------------------------------------

def describe_device(dev, quick):
    """Name, memory, known peak and measured copy bandwidth of one device."""
    from . import info, peaks

    typ = _device_type(dev)
    d = {"type": typ, "name": dev, "peak": None, "measured_copy_gbps": None, "memory_total": None, "note": ""}
    if typ == "cpu":
        total, _ = info.host_memory()
        d.update(name=info.cpu_model(), logical_cores=os.cpu_count(), memory_total=total,
                 note="no datasheet peak for cpus: pct_peak is null; pct_copy_bw compares with the measured copy")
    elif typ == "cuda":
        idx = _cuda_index(dev) or 0
        g = next((g for g in info.cuda_devices() if g.get("index") == idx), {})
        d.update(name=g.get("name", dev), compute_capability=g.get("compute_capability"), sms=g.get("sms"),
                 memory_total=g.get("memory_total"))
        d["peak"] = peaks.lookup(d["name"])
        if d["peak"] is None:
            d["note"] = f"{d['name']!r} is not in devtensor/cli/peaks.py: pct_peak is null"
    try:
        with device_context(dev):
            d["measured_copy_gbps"] = peaks.measure_copy_gbps(
                typ, (64 << 20) if (quick or typ == "cpu") else (256 << 20), free_bytes=free_memory(dev))
    except Exception as e:
        d["note"] = (d["note"] + "; " if d["note"] else "") + f"copy bandwidth not measured ({_first_line(e)})"
    release(dev)
    return d


def load_average():
    try:
        return round(os.getloadavg()[0], 2)
    except (OSError, AttributeError):  # not on every platform
        return None


def busy_now(window=0.3):
    """Share of the CPUs other processes use right now (the load average lags by minutes)."""
    import time

    a = cpu_snapshot()
    time.sleep(window)
    return contention(a, cpu_snapshot())


def environment(baselines, tf32_notes, load, started):
    from . import info

    total, _ = info.host_memory()
    b = info.blas()
    env = {
        "date": started,
        "versions": info.versions(import_torch="torch" in baselines),
        "machine": {"platform": platform.platform(), "machine": platform.machine(), "cpu": info.cpu_model(),
                    "logical_cores": os.cpu_count(), "memory_total": total, "load_average": load},
        "blas": {"name": b.get("name"), "version": b.get("version"), "threads": b.get("threads")},
        "numba_threads": info.numba_info().get("threads"),
        "tf32": tf32_notes,
    }
    return env


# ---- running ------------------------------------------------------------------------------------

@dataclass
class Settings:
    repeats: int
    min_time: float
    warmup: int
    tf32: bool
    pause: float = 0.02  # between two implementations' samples on the cpu (their idle threads spin)


def cpu_snapshot():
    """(all CPUs' jiffies, idle jiffies, this process's CPU seconds), or None off Linux."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    t = os.times()
    return sum(v), v[3] + v[4], t.user + t.system


def contention(a, b):
    """Share of the machine's CPU time that other processes (and the hypervisor: steal) used
    between two snapshots: they take cores from multi-threaded kernels, so a record measured
    while it is high is suspect."""
    if a is None or b is None:
        return None
    total = b[0] - a[0]
    if total <= 0:
        return None
    busy = total - (b[1] - a[1])
    own = (b[2] - a[2]) * os.sysconf("SC_CLK_TCK")
    # both counters tick at the clock rate (10 ms): allow two ticks of rounding on short tasks
    return round(min(1.0, max(0.0, (busy - own - 2) / total)), 3)


def run_task(case, dev, impl, st):
    """One timed task -> ("record", dict) or ("skipped", dict)."""
    from ..bench.timing import measure

    base = {"op": case.op, "case": case.label, "device": dev, "impl": impl}
    fn = None
    try:
        with device_context(dev):
            built = _build(case, dev, impl, base)
            if built[0] == "skipped":
                return built
            fn, note = built
            snap = cpu_snapshot()
            t = measure(fn, sync=sync_fn(impl, dev), repeats=st.repeats, min_time=st.min_time, warmup=st.warmup)
            busy = contention(snap, cpu_snapshot())
    except Exception as e:  # a failing case must not end the run; it is reported and counted
        return _failed(base, e)
    finally:
        fn = built = None  # noqa: F841 - drop the inputs before measuring the next task's memory
        release(dev)
    return "record", _record(case, base, t, note, busy)


def run_group(case, dev, impls, st):
    """Every implementation of one case on the cpu, timed round robin (timing.measure_many): on a
    shared machine a slow phase then hits all of them alike instead of skewing their ratio. Each is
    built first (a build that fails skips that one only); [(kind, item)] in the order of impls."""
    from ..bench.timing import measure_many

    bases = {impl: {"op": case.op, "case": case.label, "device": dev, "impl": impl} for impl in impls}
    results, fns = {}, {}
    try:
        for impl in impls:
            try:
                built = _build(case, dev, impl, bases[impl])
            except Exception as e:
                built = _failed(bases[impl], e)
            if built[0] == "skipped":
                results[impl] = built
            else:
                fns[impl] = built
        if fns:
            snap = cpu_snapshot()
            try:
                ts = measure_many({k: v[0] for k, v in fns.items()}, repeats=st.repeats, min_time=st.min_time,
                                  warmup=st.warmup, pause=st.pause)
            except Exception:  # one of them raised while timed: time them one by one to say which
                fns = {}
                return [run_task(case, dev, impl, st) if impl not in results else results[impl] for impl in impls]
            busy = contention(snap, cpu_snapshot())
            for impl, (fn, note) in fns.items():
                results[impl] = ("record", _record(case, bases[impl], ts[impl], note, busy))
    finally:
        fns = built = None  # noqa: F841 - drop the inputs before the next case
        release(dev)
    return [results[impl] for impl in impls]


def _build(case, dev, impl, base):
    """(timed callable, note), or ("skipped", item) when the case cannot fit in the free memory
    or has no equivalent in impl."""
    free = free_memory(dev)
    if free is not None and case.mem_bytes > 0.8 * free:
        return "skipped", {**base, "kind": "memory",
                           "reason": f"needs about {_gib(case.mem_bytes)}, {_gib(free)} free on {dev}"}
    try:
        built = case.build(impl, bc.Target(dev))
    except bc.Unsupported as e:
        return "skipped", {**base, "kind": "n/a", "reason": str(e)}
    return built if isinstance(built, tuple) else (built, "")


def _failed(base, e):
    kind = "memory" if is_oom(e) else "error"
    return "skipped", {**base, "kind": kind, "reason": _first_line(e)}


def _record(case, base, t, note, busy):
    return {**base, "tier": case.tier, "dtype": case.dtype, "shape": case.shape,
            "median_s": t.median_s, "min_s": t.min_s, "max_s": t.max_s, "repeats": t.repeats,
            "first_call_s": t.first_call_s, "compile_s": max(0.0, t.first_call_s - t.median_s),
            "flops": case.flops, "bytes": case.bytes, "note": note,
            "contention": busy}


def _groups(tasks):
    """(case, dev, [impl, ...]) per case and device, in the tasks' order."""
    out = []
    for case, dev, impl in tasks:
        if out and out[-1][0] is case and out[-1][1] == dev:
            out[-1][2].append(impl)
        else:
            out.append((case, dev, [impl]))
    return out


def derive(records, devices_info, tf32):
    """Fill gflops, gbps, pct_peak, pct_copy_bw and speedup_vs from the raw timings."""
    from .peaks import pct_of_peak

    for r in records:
        s = r["median_s"]
        r["gflops"] = r["flops"] / s / 1e9 if r["flops"] and s > 0 else None
        r["gbps"] = r["bytes"] / s / 1e9 if r["bytes"] and s > 0 else None
        di = devices_info.get(r["device"], {})
        transfer = r["op"] in ("h2d", "d2h")
        r["pct_peak"] = pct_of_peak(di.get("peak"), r["flops"], r["bytes"], s,
                                    tf32=tf32 and r["op"] in bc.TENSOR_CORE_OPS, transfer=transfer)
        copy = di.get("measured_copy_gbps")
        r["pct_copy_bw"] = 100.0 * r["gbps"] / copy if (r["gbps"] and copy and not transfer) else None
        r["speedup_vs"] = {}
    by_key = {}
    for r in records:
        by_key.setdefault((r["op"], r["case"], r["device"]), {})[r["impl"]] = r
    for group in by_key.values():
        mine = group.get("devtensor")
        if mine is None:
            continue
        for impl, r in group.items():
            if impl != "devtensor":
                mine["speedup_vs"][impl] = r["median_s"] / mine["median_s"]
    return records


def _progress(total, enabled):
    try:
        from tqdm import tqdm
    except ImportError:  # tqdm is a dependency, but a progress bar is not worth failing over
        return None
    return tqdm(total=total, file=sys.stderr, unit="task", leave=False, dynamic_ncols=True,
                disable=None if enabled else True)


def check_outputs(args):
    """Fail before a long run, not after it: one stdout stream, writable places, matplotlib."""
    dash = [o for o, v in (("--json", args.json), ("--csv", args.csv), ("--markdown", args.markdown)) if v == "-"]
    if len(dash) > 1:
        raise CliError(f"only one of {', '.join(dash)} can write to stdout ('-')")
    for opt, path in (("--json", args.json), ("--csv", args.csv), ("--markdown", args.markdown),
                      ("--plot", args.plot)):
        if path and path != "-":
            parent = os.path.dirname(os.path.abspath(path))
            if not os.path.isdir(parent):
                raise CliError(f"{opt} {path}: directory {parent} does not exist")
            if not os.access(parent, os.W_OK):
                raise CliError(f"{opt} {path}: directory {parent} is not writable")
    if args.plot and not _installed("matplotlib"):
        raise CliError("--plot needs matplotlib (pip install 'devtensor[plot]')")


def run(args) -> int:
    from . import report

    check_outputs(args)
    devices = resolve_devices(args.devices)
    ops = resolve_ops(args.ops)
    baselines = resolve_baselines(args.baselines)
    sizes = parse_sizes(args.sizes)
    cases = bc.all_cases(batch=sizes.batch)
    chosen = select(cases, ops, sizes, devices, args.quick)
    if not chosen:
        where = ", ".join(devices)
        raise CliError(f"no case matches --ops {','.join(ops)} on {where}"
                       + (" (h2d/d2h run only on cuda)" if set(ops) <= {"h2d", "d2h"} else "")
                       + "; see --list")
    notes = []
    tasks = []
    for case, dev in chosen:
        impls, why = impls_for(dev, baselines)
        notes += [n for n in why if n not in notes]
        tasks += [(case, dev, impl) for impl in impls if impl in case.impls]
    if args.list:
        report.print_list(tasks, notes)
        return 0

    st = Settings(repeats=args.repeats or (3 if args.quick else 7),
                  min_time=args.min_time or (0.02 if args.quick else 0.5),
                  warmup=1 if args.quick else 2, tf32=args.tf32)
    load, others = load_average(), busy_now()
    if others is not None and others > 0.2:
        # other processes take cores from multi-threaded kernels (an OpenMP barrier then waits a
        # whole scheduler slice): the numbers will be noisy, so say so up front and in the JSON
        notes.append(f"{report.BUSY} when the run started (other processes used {others:.0%} of "
                     f"{os.cpu_count()} logical cores): timings are noisy; '!' marks the records affected")
        print(f"note: {notes[-1]}", file=sys.stderr)
    records, skipped = [], []
    started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    run_start = cpu_snapshot()
    with tf32_mode(args.tf32, baselines) as tf32_notes:
        devices_info = {dev: describe_device(dev, args.quick) for dev in devices}
        bar = _progress(len(tasks), not args.no_progress)
        interrupted = False
        try:
            for case, dev, impls in _groups(tasks):
                if bar is not None:
                    bar.set_description_str(f"{case.op} {case.label} [{dev} {','.join(impls)}]"[:60])
                # cpu: the implementations round robin; devices: one after another (each is synchronized
                # its own way, and a large case's inputs must not be on the device twice)
                done = (run_group(case, dev, impls, st) if _device_type(dev) == "cpu"
                        else [run_task(case, dev, impl, st) for impl in impls])
                for kind, item in done:
                    (records if kind == "record" else skipped).append(item)
                if bar is not None:
                    bar.update(len(impls))
        except KeyboardInterrupt:  # a long GPU run stopped by hand still writes what it measured
            interrupted = True
            notes.append(f"{report.INTERRUPTED} {len(records) + len(skipped)} of {len(tasks)} tasks")
            print(f"note: {notes[-1]}; writing the results so far", file=sys.stderr)
        finally:
            if bar is not None:
                bar.close()
        env = environment(baselines, tf32_notes, load, started)
        env["machine"]["contention"] = contention(run_start, cpu_snapshot())
    derive(records, devices_info, args.tf32)
    doc = {
        "schema": "devtensor-bench/1",
        "command": " ".join(shlex.quote(a) for a in ["devtensor", *args.argv]),
        "settings": {"quick": bool(args.quick), "devices": devices, "ops": ops, "sizes": args.sizes,
                     "baselines": baselines, "repeats": st.repeats, "min_time_s": st.min_time,
                     "warmup": st.warmup, "tf32": bool(args.tf32)},
        "env": env, "devices": devices_info, "notes": notes, "records": records, "skipped": skipped,
    }
    status = report.emit(doc, args)
    return 130 if interrupted else status
