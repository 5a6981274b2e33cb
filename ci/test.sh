#!/usr/bin/env bash
# The README's test line: install devtensor (+ the test and mpi extras and the NVRTC kernel-check wheels) into
# .venv, compile every kernels/*.cu for sm_80 and sm_90 with NVRTC, then run the test suite.
# Any failure (including pytest's exit 5 for "no tests collected") fails the script.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test,mpi]' -r ci/requirements-kernels.txt
# PyTorch CPU is the reference for the torch-comparison tests. Only the CPU build is wanted (the
# default PyPI wheel is a multi-GB CUDA build): take it where a local wheel or the CPU index has it,
# otherwise those tests skip, each with its reason.
.venv/bin/python -c "import torch" 2>/dev/null || .venv/bin/python -m pip install -q --disable-pip-version-check \
    'torch==2.13.0+cpu' 2>/dev/null || echo "ci/test.sh: no PyTorch CPU wheel reachable; torch-comparison tests will skip"
.venv/bin/python ci/check_kernels.py
.venv/bin/python ci/kernel_emulator/run.py
.venv/bin/python -m pytest -q -p no:cacheprovider tests "$@"
