#!/usr/bin/env bash
# The README's main-job line: install devtensor into .venv (with cupy when an NVIDIA GPU is
# visible) and train the MNIST CNN on the embedded 5,000-digit sample on the best device.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
extra=""
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then extra="[cuda]"; fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".${extra}"
.venv/bin/python examples/cnn_mnist.py "$@"
