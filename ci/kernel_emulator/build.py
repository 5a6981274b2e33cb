"""Compile CUDA C source (one kernels/*.cu file, exactly the string CuPy's RawModule is given)
against emu.h into a shared library, with a registry of its kernels: the extern "C" ones found in
the source plus the template name expressions.  Libraries are cached by a hash of everything that
goes into them, in $DEVTENSOR_EMU_CACHE, else <repo>/.cache/kernel-emulator (git-ignored), else
$TMPDIR/devtensor-kernel-emulator.

    python ci/kernel_emulator/build.py          # build (or find cached) every kernels/*.cu
"""
from __future__ import annotations

import concurrent.futures as cf
import hashlib
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
KERNEL_BUILD = ROOT / "devtensor" / "backends" / "cuda" / "kernel_build.py"
EMU_H = HERE / "emu.h"
# -O1: the kernels run fast enough (the fibers dominate) and a cold build stays short.
CXX_FLAGS = ("-std=c++17", "-O1", "-fPIC", "-shared", "-fvisibility=hidden", "-Wall", "-Wno-unknown-pragmas",
             "-Wno-unused-variable", "-Wno-unused-but-set-variable", "-Wno-unused-function")


class BuildError(RuntimeError):
    pass


def load_kernel_build():
    """devtensor/backends/cuda/kernel_build.py by path (stdlib only: no devtensor, no cupy)."""
    name = "_dt_emu_kernel_build"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, KERNEL_BUILD)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def compiler() -> str | None:
    cxx = os.environ.get("CXX") or "g++"
    return shutil.which(cxx)


def cache_dir() -> Path:
    env = os.environ.get("DEVTENSOR_EMU_CACHE")
    candidates = [Path(env)] if env else [ROOT / ".cache" / "kernel-emulator",
                                          Path(tempfile.gettempdir()) / "devtensor-kernel-emulator"]
    for c in candidates:
        try:
            c.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        if os.access(c, os.W_OK):
            return c
    raise BuildError(f"no writable emulator cache directory among {', '.join(map(str, candidates))}")


_EXTERN_C = re.compile(r'extern\s+"C"\s+__global__\s+void\s+(?:__launch_bounds__\([^)]*\)\s*)?(\w+)\s*\(')


def kernel_names(code: str, name_expressions=()) -> tuple:
    """The extern "C" kernels defined in `code` (comments stripped) plus the name expressions."""
    bare = re.sub(r"//[^\n]*|/\*.*?\*/", "", code, flags=re.S)
    return tuple(dict.fromkeys([*_EXTERN_C.findall(bare), *(name_expressions or ())]))


_CXX_VERSION: dict = {}


def _compiler_id(cxx: str) -> str:
    if cxx not in _CXX_VERSION:
        r = subprocess.run([cxx, "--version"], capture_output=True, text=True)
        _CXX_VERSION[cxx] = r.stdout.splitlines()[0] if r.stdout else cxx
    return _CXX_VERSION[cxx]


def translation_unit(code: str, names) -> str:
    lines = [f'#include "{EMU_H}"', "// ---- kernel source (as given to cupy.RawModule) ----", code,
             "// ---- registry ----"]
    lines += [f'static emu::Reg dt_emu_reg_{i}("{n}", &{n});' for i, n in enumerate(names)]
    return "\n".join(lines) + "\n"


def build_code(code: str, name_expressions=(), label: str = "module") -> Path:
    """Shared library for `code` (cached); raises BuildError with the compiler's output on failure."""
    cxx = compiler()
    if cxx is None:
        raise BuildError("g++ not found (set CXX or install g++): the kernel emulator compiles kernels/*.cu "
                         "with the host C++ compiler")
    names = kernel_names(code, name_expressions)
    tu = translation_unit(code, names)
    key = hashlib.sha256("\0".join([tu, EMU_H.read_text(), " ".join(CXX_FLAGS), _compiler_id(cxx)]).encode()
                         ).hexdigest()[:16]
    out_dir = cache_dir()
    stem = re.sub(r"[^\w.-]", "_", label)
    so = out_dir / f"{stem}.{key}.so"
    if so.exists():
        return so
    cpp = out_dir / f"{stem}.{key}.{os.getpid()}.cpp"
    tmp = out_dir / f"{stem}.{key}.{os.getpid()}.so.tmp"
    cpp.write_text(tu)
    try:
        r = subprocess.run([cxx, *CXX_FLAGS, "-o", str(tmp), str(cpp)], capture_output=True, text=True)
        if r.returncode:
            raise BuildError(f"emulator build of {label} failed:\n{r.stderr[-20000:]}")
        os.replace(tmp, so)  # atomic: a concurrent run never loads a half-written library
    finally:
        cpp.unlink(missing_ok=True)
        tmp.unlink(missing_ok=True)
    return so


def build_file(file: str) -> Path:
    """The library for kernels/<file>, keyed exactly as a RawModule for that file would key it."""
    kb = load_kernel_build()
    return build_code(kb.read_source(file), kb.KERNEL_FILES[file].name_expressions, label=file)


def build_all(files=None, jobs=None) -> dict:
    """Build every kernel file in parallel (one g++ per file); returns {file: path}."""
    kb = load_kernel_build()
    files = list(files or kb.KERNEL_FILES)
    jobs = jobs or min(len(files), os.cpu_count() or 1)
    with cf.ThreadPoolExecutor(max_workers=max(1, jobs)) as ex:
        futs = {f: ex.submit(build_file, f) for f in files}
        return {f: fut.result() for f, fut in futs.items()}


if __name__ == "__main__":
    try:
        for f, p in build_all(sys.argv[1:] or None).items():
            print(f"{f}: {p}")
    except BuildError as e:
        raise SystemExit(str(e))
