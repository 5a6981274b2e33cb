#!/usr/bin/env python3
"""CI gate: every kernels/*.cu compiles with NVRTC, as CuPy compiles it at run time, for each
architecture in CI_ARCHS (sm_80, sm_90), and the GEMM / conv kernels do not spill.

No GPU or driver is needed: NVRTC (through cuda-bindings) runs ptxas itself when asked for a
real architecture (-arch=sm_XX) and `-Xptxas=-v` puts registers / spills / smem in its log.

The option set is the runtime's: NVRTC_OPTIONS and the name expressions come from
devtensor/backends/cuda/kernel_build.py (loaded by file path, so devtensor's own dependencies are
not needed), wrapped the way CuPy 14.2's RawModule wraps them (CCCL and CuPy include paths, the
CUDA headers, `-ftz=true`, `-arch=...`, `--device-as-default-execution-space`).

Exit status: 0 when everything compiled, every listed kernel was found and no kernel of a
NO_SPILL_FILES file spills; 1 otherwise.  Requirements: ci/requirements-kernels.txt.

    python ci/check_kernels.py [--arch sm_80 --arch sm_90] [--file matmul.cu] [--json report.json]
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import importlib.util
import json
import os
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KERNEL_BUILD = ROOT / "devtensor" / "backends" / "cuda" / "kernel_build.py"


def load_kernel_build():
    spec = importlib.util.spec_from_file_location("_dt_kernel_build", KERNEL_BUILD)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def cupy_include_dirs():
    """Include paths CuPy passes to NVRTC, found without initialising CUDA."""
    spec = importlib.util.find_spec("cupy")
    if spec is None or not spec.origin:
        raise SystemExit("cupy is not installed: pip install -r ci/requirements-kernels.txt")
    cupy_inc = Path(spec.origin).parent / "_core" / "include"
    cccl = [cupy_inc / "cupy" / "_cccl" / d for d in ("cub", "thrust", "libcudacxx")]
    return cccl, cupy_inc


def cuda_include_dir():
    """The CUDA runtime headers CuPy would use (site-packages wheel first, like CuPy 14)."""
    try:
        from cupy import _environment  # importing cupy needs no GPU
        root = _environment.get_cuda_path()
        if root and (Path(root) / "include" / "cuda_runtime.h").is_file():
            return Path(root) / "include"
    except Exception:  # pragma: no cover - fall back to a plain search
        pass
    for p in map(Path, sys.path):
        for cand in (p / "nvidia" / "cu13" / "include", p / "nvidia" / "cuda_runtime" / "include"):
            if (cand / "cuda_runtime.h").is_file():
                return cand
    for cand in (os.environ.get("CUDA_PATH"), "/usr/local/cuda"):
        if cand and (Path(cand) / "include" / "cuda_runtime.h").is_file():
            return Path(cand) / "include"
    raise SystemExit("CUDA runtime headers not found: pip install nvidia-cuda-runtime==13.0.*")


def runtime_options(kb, arch):
    """The option list CuPy's RawModule hands NVRTC for kb.NVRTC_OPTIONS on device `arch`."""
    cccl, cupy_inc = cupy_include_dirs()
    opts = [f"-I{d}" for d in cccl] + list(kb.NVRTC_OPTIONS)
    if not any(o.startswith(("-std", "--std")) for o in kb.NVRTC_OPTIONS):
        opts.append("--std=c++17")
    opts += [f"-I{cupy_inc}", f"-I{cuda_include_dir()}", "-ftz=true", f"-arch={arch}",
             "--device-as-default-execution-space"]
    return opts


def _check(result, what):
    err = result[0]
    from cuda.bindings import nvrtc
    if err != nvrtc.nvrtcResult.NVRTC_SUCCESS:
        raise RuntimeError(f"{what}: {err}")
    return result[1] if len(result) == 2 else result[1:]


def compile_nvrtc(source, filename, name_expressions, options):
    """Compile to a cubin; returns (ok, log, {name_expression: lowered_name}, cubin_size)."""
    from cuda.bindings import nvrtc

    prog = _check(nvrtc.nvrtcCreateProgram(source.encode(), filename.encode(), 0, [], []),
                  "nvrtcCreateProgram")
    try:
        for ne in name_expressions:
            _check((nvrtc.nvrtcAddNameExpression(prog, ne.encode())[0], None), f"add {ne}")
        opts = [o.encode() for o in options]
        (err,) = nvrtc.nvrtcCompileProgram(prog, len(opts), opts)
        size = _check(nvrtc.nvrtcGetProgramLogSize(prog), "log size")
        buf = b" " * size
        nvrtc.nvrtcGetProgramLog(prog, buf)
        log = buf.decode(errors="replace").rstrip("\x00")
        if err != nvrtc.nvrtcResult.NVRTC_SUCCESS:
            return False, log, {}, 0
        lowered = {}
        for ne in name_expressions:
            lowered[ne] = _check(nvrtc.nvrtcGetLoweredName(prog, ne.encode()), f"lowered {ne}").decode()
        cubin_size = _check(nvrtc.nvrtcGetCUBINSize(prog), "cubin size")
        return True, log, lowered, cubin_size
    finally:
        nvrtc.nvrtcDestroyProgram(prog)


_ENTRY = re.compile(r"Compiling entry function '([^']+)' for '(\w+)'")
_PROPS = re.compile(r"Function properties for (\S+)")
_FRAME = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
_USED = re.compile(r"Used (\d+) registers")
_SMEM = re.compile(r"(\d+) bytes smem")


def parse_ptxas_log(log):
    """{mangled: {'regs', 'stack', 'spill_stores', 'spill_loads', 'smem'}} from a -Xptxas=-v log."""
    out, cur, props = {}, None, None
    for line in log.splitlines():
        m = _ENTRY.search(line)
        if m:
            cur = m.group(1)
            out.setdefault(cur, {"regs": None, "stack": 0, "spill_stores": 0, "spill_loads": 0, "smem": 0})
            continue
        m = _PROPS.search(line)
        if m:
            props = m.group(1)
            continue
        m = _FRAME.search(line)
        if m and props is not None:
            rec = out.setdefault(props, {"regs": None, "stack": 0, "spill_stores": 0, "spill_loads": 0,
                                         "smem": 0})
            rec["stack"], rec["spill_stores"], rec["spill_loads"] = map(int, m.groups())
            continue
        m = _USED.search(line)
        if m and cur is not None:
            out[cur]["regs"] = int(m.group(1))
            s = _SMEM.search(line)
            out[cur]["smem"] = int(s.group(1)) if s else 0
    return out


def check_file(kb, file, arch):
    spec = kb.KERNEL_FILES[file]
    source = kb.read_source(file)
    options = runtime_options(kb, arch) + ["-Xptxas=-v"]
    t0 = time.perf_counter()
    ok, log, lowered, cubin = compile_nvrtc(source, file, spec.name_expressions, options)
    secs = time.perf_counter() - t0
    res = {"file": file, "arch": arch, "ok": ok, "seconds": round(secs, 2), "log": log, "kernels": [],
           "errors": []}
    if not ok:
        res["errors"].append(f"{file} [{arch}]: NVRTC compile failed:\n{log}")
        return res
    stats = parse_ptxas_log(log)
    wanted = [(n, n) for n in spec.extern_c] + [(ne, lowered[ne]) for ne in spec.name_expressions]
    for name, mangled in wanted:
        st = stats.get(mangled)
        if st is None or st["regs"] is None:
            res["errors"].append(f"{file} [{arch}]: kernel {name} ({mangled}) not in the ptxas report")
            continue
        spill = st["spill_stores"] + st["spill_loads"]
        row = {"name": name, **st, "spill": spill}
        if spill and file in kb.NO_SPILL_FILES:
            res["errors"].append(f"{file} [{arch}]: {name} spills ({st['spill_stores']} B stores, "
                                 f"{st['spill_loads']} B loads, {st['regs']} registers)")
        res["kernels"].append(row)
    listed = {m for _, m in wanted}
    for mangled in stats:
        if mangled not in listed:
            res["errors"].append(f"{file} [{arch}]: kernel {mangled} is not listed in kernel_build.KERNEL_FILES")
    if re.search(r"\bwarning\b", log, re.I):
        res["warnings"] = [l for l in log.splitlines() if re.search(r"\bwarning\b", l, re.I)]
    return res


def main(argv=None):
    kb = load_kernel_build()
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--arch", action="append", help=f"target (repeatable; default {' '.join(kb.CI_ARCHS)})")
    ap.add_argument("--file", action="append", help="only this .cu file (repeatable)")
    ap.add_argument("--json", help="write the full report here")
    ap.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--show-log", action="store_true", help="print NVRTC/ptxas logs")
    args = ap.parse_args(argv)
    archs = args.arch or list(kb.CI_ARCHS)
    files = args.file or list(kb.KERNEL_FILES)

    on_disk = sorted(p.name for p in kb.kernel_dir().glob("*.cu"))
    errors = [f"kernels/{f} is not listed in kernel_build.KERNEL_FILES" for f in on_disk
              if f not in kb.KERNEL_FILES]
    errors += [f"kernel_build.KERNEL_FILES lists {f}, missing in kernels/" for f in kb.KERNEL_FILES
               if f not in on_disk]
    files = [f for f in files if f in on_disk]

    from cuda.bindings import nvrtc
    ver = nvrtc.nvrtcVersion()
    print(f"NVRTC {ver[1]}.{ver[2]}; options {kb.NVRTC_OPTIONS} (+ CuPy's); archs {', '.join(archs)}")
    t0 = time.perf_counter()
    with cf.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as ex:
        results = list(ex.map(lambda fa: check_file(kb, *fa), [(f, a) for f in files for a in archs]))
    wall = time.perf_counter() - t0

    header = f"{'file':<10} {'arch':<6} {'kernel':<58} {'regs':>4} {'spill':>5} {'stack':>5} {'smem':>6}"
    print(header)
    print("-" * len(header))
    n_kernels = 0
    for r in results:
        for k in r["kernels"]:
            n_kernels += 1
            flag = "  SPILL" if k["spill"] else ""
            print(f"{r['file']:<10} {r['arch']:<6} {k['name']:<58} {k['regs']:>4} {k['spill']:>5} "
                  f"{k['stack']:>5} {k['smem']:>6}{flag}")
        if args.show_log:
            print(r["log"])
        for w in r.get("warnings", []):
            print(f"warning: {r['file']} [{r['arch']}]: {w}")
        errors += r["errors"]
    print("-" * len(header))
    for r in results:
        print(f"{r['file']:<10} {r['arch']:<6} {'ok' if r['ok'] else 'FAILED':<7} {r['seconds']:>6.2f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    n_ok = sum(r["ok"] for r in results)
    for e in errors:
        print("ERROR:", e, file=sys.stderr)
    print(f"{n_ok} compiled, {len(results) - n_ok} failed ({n_kernels} kernel reports) in {wall:.1f} s; "
          f"{len(errors)} error(s)")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
