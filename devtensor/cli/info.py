"""`devtensor info`: what this installation runs on, and why a backend is missing; with --ops, which
kernel tier (specialised / portable / composite) serves each op on each device for each dtype.

Everything here is best-effort: a probe that fails becomes a line saying why, never a traceback,
because `info` is what a user runs when something is already wrong.
"""
from __future__ import annotations

import json
import os
import platform
import sys
from importlib import metadata


def _first_line(e):
    s = str(e).strip()
    return f"{type(e).__name__}: {s.splitlines()[0]}" if s else type(e).__name__


def _dist_version(*names):
    """Installed version of the first distribution found (no import: torch takes seconds)."""
    for n in names:
        try:
            return metadata.version(n)
        except metadata.PackageNotFoundError:
            continue
    return None


def _cupy_dist():
    # CuPy ships as cupy-cudaXXx wheels; find whichever is installed without importing it
    for d in metadata.distributions():
        name = (d.metadata.get("Name") or "").lower()
        if name == "cupy" or name.startswith("cupy-cuda"):
            return name, d.version
    return None, None


# ---- versions -----------------------------------------------------------------------------------

def versions(import_torch=True) -> dict:
    import numpy

    import devtensor

    v = {"python": f"{platform.python_version()} ({platform.python_implementation()})",
         "platform": platform.platform(), "devtensor": devtensor.__version__, "numpy": numpy.__version__,
         "numba": _dist_version("numba"), "llvmlite": _dist_version("llvmlite")}
    cupy_name, cupy_ver = _cupy_dist()
    v["cupy"] = f"{cupy_ver} ({cupy_name})" if cupy_ver else None
    v.update(_cuda_versions())
    v["torch"] = _dist_version("torch")
    if v["torch"] and import_torch:
        try:
            import torch

            v["torch_cuda"] = torch.version.cuda  # None for cpu-only builds
            v["torch_cuda_available"] = bool(torch.cuda.is_available())
            v["torch_threads"] = torch.get_num_threads()
        except Exception as e:  # a broken torch install is worth reporting, not dying on
            v["torch"] += f" (import failed: {_first_line(e)})"
    for opt in ("matplotlib", "tqdm", "rich", "threadpoolctl", "jsonschema"):
        v[opt] = _dist_version(opt)
    return v


def _fmt_cuda_version(n):
    return f"{n // 1000}.{(n % 1000) // 10}"


def _cuda_versions() -> dict:
    out = {"cuda_driver": None, "cuda_runtime": None}
    try:
        import cupy
    except Exception:
        return out
    try:
        out["cuda_runtime"] = _fmt_cuda_version(cupy.cuda.runtime.runtimeGetVersion())
    except Exception as e:
        out["cuda_runtime"] = f"unknown ({_first_line(e)})"
    try:
        out["cuda_driver"] = _fmt_cuda_version(cupy.cuda.runtime.driverGetVersion())
    except Exception as e:
        out["cuda_driver"] = f"none ({_first_line(e)})"
    return out


# ---- backends and devices -----------------------------------------------------------------------

def backends() -> dict:
    import devtensor

    return {name: {"available": ok, "reason": why or ""}
            for name, (ok, why) in sorted(devtensor.backends.available().items())}


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def host_memory():
    """(total, available) bytes of host memory, or (None, None) where it cannot be read."""
    try:
        info = {}
        with open("/proc/meminfo") as f:
            for line in f:
                k, v = line.split(":", 1)
                info[k] = int(v.split()[0]) * 1024
        return info.get("MemTotal"), info.get("MemAvailable", info.get("MemFree"))
    except (OSError, ValueError):
        pass
    try:
        page = os.sysconf("SC_PAGE_SIZE")
        return os.sysconf("SC_PHYS_PAGES") * page, os.sysconf("SC_AVPHYS_PAGES") * page
    except (ValueError, OSError, AttributeError):
        return None, None


def cuda_devices() -> list:
    """One dict per CUDA device (name, memory, compute capability, SMs); [] without cuda."""
    import devtensor

    if not devtensor.cuda.is_available():
        return []
    import cupy

    out = []
    for i in range(cupy.cuda.runtime.getDeviceCount()):
        try:
            p = cupy.cuda.runtime.getDeviceProperties(i)
            name = p["name"].decode() if isinstance(p["name"], bytes) else p["name"]
            with cupy.cuda.Device(i):
                free, total = cupy.cuda.runtime.memGetInfo()
            out.append({"index": i, "name": name, "compute_capability": f"{p['major']}.{p['minor']}",
                        "sms": p["multiProcessorCount"], "memory_total": total, "memory_free": free})
        except Exception as e:
            out.append({"index": i, "error": _first_line(e)})
    return out


def devices() -> dict:
    total, avail = host_memory()
    d = {"cpu": [{"name": cpu_model(), "logical_cores": os.cpu_count(), "memory_total": total,
                  "memory_available": avail}]}
    cu = cuda_devices()
    if cu:
        d["cuda"] = cu
    return d


# ---- BLAS, numba, caches ------------------------------------------------------------------------

def blas() -> dict:
    import numpy

    out = {"name": None, "version": None, "threads": None, "threads_source": None, "config": None}
    try:
        cfg = numpy.show_config(mode="dicts")["Build Dependencies"]["blas"]
        out.update(name=cfg.get("name"), version=cfg.get("version"), config=cfg.get("openblas configuration"))
    except Exception as e:  # numpy < 2 or an unusual build
        out["name"] = f"unknown ({_first_line(e)})"
    try:
        from threadpoolctl import threadpool_info

        for lib in threadpool_info():
            if lib.get("user_api") == "blas":
                out.update(threads=lib.get("num_threads"), threads_source="threadpoolctl",
                           runtime=f"{lib.get('internal_api')} {lib.get('version')} ({lib.get('architecture')})")
                return out
    except ImportError:
        pass
    n, runtime = _openblas_threads_ctypes()
    if n is not None:
        out.update(threads=n, threads_source="openblas_get_num_threads (ctypes)", runtime=runtime)
        return out
    env = {k: os.environ[k] for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
           if k in os.environ}
    out.update(threads=env or f"default (up to {os.cpu_count()})", threads_source="environment")
    return out


def _openblas_threads_ctypes():
    """Ask the OpenBLAS that numpy loaded for its thread count, as threadpoolctl would (Linux)."""
    import ctypes

    from ..backends.cpu import openblas

    for lib, prefix, suffix in openblas.loaded():
        runtime = None
        conf = getattr(lib, f"{prefix}openblas_get_config{suffix}", None)
        if conf is not None:
            conf.restype = ctypes.c_char_p
            runtime = conf().decode(errors="replace")
        return int(getattr(lib, f"{prefix}openblas_get_num_threads{suffix}")()), runtime
    return None, None


def numba_info() -> dict:
    try:
        import numba
    except Exception as e:
        return {"error": _first_line(e)}
    out = {"threads": numba.get_num_threads(), "NUMBA_NUM_THREADS": numba.config.NUMBA_NUM_THREADS,
           "threading_layer_config": numba.config.THREADING_LAYER}
    try:
        out["threading_layer"] = numba.threading_layer()
    except ValueError:
        # not chosen until the first parallel kernel runs; starting the pool picks it (cheap, and
        # what the first parallel conv would do anyway). Private API, hence the fallback.
        try:
            from numba.np.ufunc import parallel

            parallel._launch_threads()
            out["threading_layer"] = numba.threading_layer()
        except Exception as e:
            out["threading_layer"] = f"not initialised yet ({_first_line(e)})"
    return out


def kernel_caches() -> dict:
    """Where JIT-compiled kernels are cached on disk (delete these to force a recompile)."""
    from .. import backends as _b

    cpu_dir = os.path.join(os.path.dirname(os.path.abspath(_b.__file__)), "cpu", "__pycache__")
    if os.environ.get("NUMBA_CACHE_DIR"):
        numba_dir = f"{os.environ['NUMBA_CACHE_DIR']} (NUMBA_CACHE_DIR)"
    else:
        parent = os.path.dirname(cpu_dir)
        if os.access(parent, os.W_OK):
            numba_dir = f"{cpu_dir} (numba's default: __pycache__ beside the kernels' source)"
        else:
            try:
                from numba.misc import appdirs

                user = appdirs.AppDirs(appname="numba", appauthor=False).user_cache_dir
            except Exception:
                user = "~/.cache/numba"
            numba_dir = f"{user} (numba's user-wide cache: the package directory is read-only)"
    cupy_dir = os.environ.get("CUPY_CACHE_DIR")
    cupy_dir = f"{cupy_dir} (CUPY_CACHE_DIR)" if cupy_dir else \
        f"{os.path.expanduser('~/.cupy/kernel_cache')} (CuPy's default; set CUPY_CACHE_DIR to move it)"
    return {"numba (cpu kernels)": numba_dir, "cupy / NVRTC (cuda kernels)": cupy_dir}


def collect() -> dict:
    return {"versions": versions(), "backends": backends(), "devices": devices(), "blas": blas(),
            "numba": numba_info(), "kernel_caches": kernel_caches()}


# ---- text -------------------------------------------------------------------------------------

def _gib(n):
    return "?" if n is None else f"{n / 2**30:.1f} GiB"


def format_text(info: dict) -> str:
    lines = ["devtensor info", "", "versions"]
    vs = info["versions"]
    absent = {"torch_cuda": "none (a cpu-only build of PyTorch)",
              "cuda_driver": "unknown (needs cupy)" if not vs.get("cupy") else "none",
              "cuda_runtime": "unknown (needs cupy)" if not vs.get("cupy") else "none"}
    for k, v in vs.items():
        lines.append(f"  {k:<22} {v if v is not None else absent.get(k, 'not installed')}")
    lines += ["", "backends"]
    for name, b in info["backends"].items():
        state = "available" if b["available"] else f"unavailable: {b['reason']}"
        lines.append(f"  {name:<22} {state}")
    lines += ["", "devices"]
    for c in info["devices"]["cpu"]:
        lines.append(f"  cpu                    {c['name']}, {c['logical_cores']} logical cores, "
                     f"{_gib(c['memory_total'])} memory ({_gib(c['memory_available'])} available)")
    for g in info["devices"].get("cuda", []):
        if "error" in g:
            lines.append(f"  cuda:{g['index']:<18} error: {g['error']}")
        else:
            lines.append(f"  cuda:{g['index']:<18} {g['name']}, compute capability {g['compute_capability']}, "
                         f"{g['sms']} SMs, {_gib(g['memory_total'])} memory ({_gib(g['memory_free'])} free)")
    if "cuda" not in info["devices"]:
        why = info["backends"].get("cuda", {}).get("reason", "not registered")
        lines.append(f"  cuda                   none: {why}")
    b = info["blas"]
    lines += ["", "BLAS (numpy)", f"  {'library':<22} {b['name']} {b['version'] or ''}".rstrip()]
    if b.get("runtime") or b.get("config"):
        lines.append(f"  {'configuration':<22} {b.get('runtime') or b.get('config')}")
    lines.append(f"  {'threads':<22} {b['threads']} (from {b['threads_source']})")
    lines += ["", "numba"]
    for k, v in info["numba"].items():
        lines.append(f"  {k:<22} {v}")
    lines += ["", "kernel caches"]
    for k, v in info["kernel_caches"].items():
        lines.append(f"  {k:<28} {v}")
    return "\n".join(lines)


# ---- kernel tiers per op (--ops) ----------------------------------------------------------------

# dtype columns of the --ops table: numpy's one-letter type codes (E: bfloat16, which numpy lacks)
DTYPE_CODES = (("bool", "?"), ("uint8", "B"), ("int8", "b"), ("int16", "h"), ("int32", "i"), ("int64", "l"),
               ("float16", "e"), ("bfloat16", "E"), ("float32", "f"), ("float64", "d"))
TIER_LETTERS = {"specialised": "S", "portable": "P", "composite": "C", "direct": "D", "none": "."}
TIER_LEGEND = ("S specialised (a numba / CUDA C kernel)   P portable (array-API code: numpy / CuPy)   "
               "C composite (of other ops)",
               "D a kernel put straight into the op table, outside the tiers (meta's shape rules)   . none")


def op_tiers(pattern=None) -> dict:
    """{op: {device: {dtype name: tier}}} for every declared op (fnmatch `pattern` to filter) and
    every registered device; tier is 'specialised', 'portable', 'composite', 'direct' or 'none'.
    What the kernel table would run for inputs of that dtype: whether the op accepts the dtype at
    all is the op's own rule."""
    from fnmatch import fnmatchcase

    import devtensor
    from devtensor import dtypes as _dt
    from devtensor.dispatch import OPS

    devs = devtensor.backends.registered()
    out = {}
    for name in sorted(OPS):
        if pattern and not fnmatchcase(name, pattern):
            continue
        op = OPS[name]
        row = {}
        for dev, be in devs.items():
            chained = bool(be.tiers(name))
            cells = {}
            for dname, _ in DTYPE_CODES:
                npd = _dt._NAMES[dname].np
                hit = be.serving(name, npd) if chained and npd is not None else None
                if hit is not None:
                    cells[dname] = hit[0]
                elif not chained and op.kernels.get(dev) is not None:
                    cells[dname] = "direct"
                elif getattr(op, "composite", None) is not None:
                    cells[dname] = "composite"
                else:
                    cells[dname] = "none"
            row[dev] = cells
        out[name] = row
    return out


def format_ops(table: dict) -> str:
    import devtensor

    devs = list(next(iter(table.values()))) if table else list(devtensor.backends.registered())
    width = max([len(n) for n in table] + [2]) + 2
    cols = {d: max(len(DTYPE_CODES), len(d)) + 2 for d in devs}
    codes = "".join(c for _, c in DTYPE_CODES)
    lines = ["kernel tiers per op, device and dtype", *(f"  {t}" for t in TIER_LEGEND),
             "  dtype columns: " + "  ".join(f"{c} {n}" for n, c in DTYPE_CODES), "",
             "op".ljust(width) + "".join(d.ljust(cols[d]) for d in devs).rstrip(),
             "".ljust(width) + "".join(codes.ljust(cols[d]) for d in devs).rstrip()]
    for name, row in table.items():
        cells = ("".join(TIER_LETTERS[row[d][n]] for n, _ in DTYPE_CODES).ljust(cols[d]) for d in devs)
        lines.append(name.ljust(width) + "".join(cells).rstrip())
    lines.append("")
    for d in devs:
        ok, why = devtensor.backends.get_backend(d).is_available()
        counts = {t: sum(any(v == t for v in row[d].values()) for row in table.values())
                  for t in ("specialised", "portable", "composite", "none")}
        lines.append(f"  {d:<8} {'available' if ok else 'unavailable: ' + why}; ops with a specialised kernel: "
                     f"{counts['specialised']}, portable: {counts['portable']}, composite: {counts['composite']}, "
                     f"with a dtype nothing serves: {counts['none']}")
    return "\n".join(lines)


def add_arguments(p):
    p.add_argument("--json", action="store_true", help="print the same facts as JSON")
    p.add_argument("--ops", nargs="?", const="*", default=None, metavar="PATTERN",
                   help="instead: for each op (or those matching PATTERN, e.g. 'conv*') and each registered "
                        "device, which kernel tier serves which dtype (specialised / portable / composite / none)")


def run(args) -> int:
    if getattr(args, "ops", None) is not None:
        table = op_tiers(None if args.ops == "*" else args.ops)
        if not table:
            from .errors import CliError

            raise CliError(f"no op matches {args.ops!r}")
        if args.json:
            json.dump(table, sys.stdout, indent=1)
            sys.stdout.write("\n")
        else:
            print(format_ops(table))
        return 0
    info = collect()
    if args.json:
        json.dump(info, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    else:
        print(format_text(info))
    return 0
