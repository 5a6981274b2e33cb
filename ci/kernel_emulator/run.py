#!/usr/bin/env python3
"""CI check without a GPU: run devtensor's CUDA C kernels in the CPU emulator.

Builds (cached) every kernels/*.cu against emu.h with g++, installs the stand-in cupy (fakecupy.py)
and runs pytest on
  * tests/test_cuda_kernels.py: every launch wrapper in devtensor/backends/cuda/kernels.py against
    numpy references on odd shapes (the same tests the GPU runs);
  * tests/test_cuda_backend.py: the cuda op registrations (devtensor/backends/cuda/ops.py) through
    devtensor's dispatch on device 'cuda', against cpu, including short training runs.
Exit status: pytest's (2 if the build fails or g++ is missing).  See README.md for what this
proves and what it cannot.

    python ci/kernel_emulator/run.py [--kernels-only] [--order 0|1|2] [pytest args...]
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def main(argv):
    kernels_only = "--kernels-only" in argv
    argv = [a for a in argv if a != "--kernels-only"]
    if "--order" in argv:  # the fibers' run order between barriers (emu.h EMU_ORDER)
        i = argv.index("--order")
        os.environ["EMU_ORDER"] = argv[i + 1]
        del argv[i:i + 2]
    sys.path.insert(0, str(HERE))
    import build

    if build.compiler() is None:
        print("kernel emulator: g++ not found. It compiles kernels/*.cu with the host C++ compiler: install g++ "
              "(apt-get install g++) or point CXX at one.", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    try:
        libs = build.build_all()
    except build.BuildError as e:
        print(f"kernel emulator: {e}", file=sys.stderr)
        return 2
    print(f"kernel emulator: {len(libs)} kernel files built or cached in {build.cache_dir()} "
          f"({time.perf_counter() - t0:.1f} s)", flush=True)

    import fakecupy

    fakecupy.install()
    sys.path.insert(0, str(ROOT))  # the checkout's devtensor, also when it is not installed
    sys.path.insert(0, str(ROOT / "tests"))
    import pytest

    tests = [str(ROOT / "tests" / "test_cuda_kernels.py")]
    if not kernels_only:
        tests.append(str(ROOT / "tests" / "test_cuda_backend.py"))
        # the optimizers' fused steps on device cuda (the file's cpu tests run in the normal suite)
        tests.append(str(ROOT / "tests" / "test_optim_fused.py") + "::test_fused_step_on_cuda_matches_torch")
    # --noconftest: tests/conftest.py's skip hook is for real machines; the backend tests carry their
    # own availability check, which the stand-in cupy passes.
    return pytest.main(["-q", "--noconftest", "-p", "no:cacheprovider", *tests, *argv])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
