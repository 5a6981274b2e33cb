"""Seeded training gives the same bits in every process: with a cold numba cache (nothing compiled
yet, as in a fresh clone or CI) and a warm one, run after run, and on one core as on all of them.

Each run is a subprocess with its own NUMBA_CACHE_DIR that trains the MNIST CNN of
examples/cnn_mnist.py for 3 Adam steps from a fixed seed and prints a sha256 of its weights.
(A numba kernel built with fastmath gave other bits freshly compiled than loaded from the cache:
the cached caller carried its own copy of a callee that LLVM had compiled differently.)"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import devtensor as dt

ROOT = Path(__file__).resolve().parent.parent

# Train 3 Adam steps of batch 16 (dropout on: it draws from the seeded generator too) and print the
# hash of every parameter in state_dict order. ONE_CORE pins the process to one core before numpy,
# OpenBLAS and devtensor look at the machine, so every kernel runs on a single thread.
_TRAIN = r"""
import hashlib, os, sys
if os.environ.get("ONE_CORE"):
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
sys.path[:0] = [sys.argv[1], os.path.join(sys.argv[1], "examples")]
import numpy as np
import devtensor as torch
import devtensor.nn.functional as F
from _common import mnist
from cnn_mnist import Net
from devtensor.backends.cpu import threads

batch = 16
torch.manual_seed(0)
x, y, _, _ = mnist(None, 3 * batch)
model = Net()
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
model.train()
for i in range(3):
    opt.zero_grad()
    F.nll_loss(model(x[i * batch:(i + 1) * batch]), y[i * batch:(i + 1) * batch]).backward()
    opt.step()
h = hashlib.sha256()
for name, v in model.state_dict().items():
    h.update(name.encode())
    h.update(np.ascontiguousarray(v.numpy()).tobytes())
print(threads.threads(), h.hexdigest())
"""


def _train(cache_dir, one_core=False):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache_dir))
    env.pop("ONE_CORE", None)
    if one_core:
        env.update(ONE_CORE="1", NUMBA_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", _TRAIN, str(ROOT)], env=env, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    nthreads, digest = out.stdout.split()[-2:]
    return int(nthreads), digest


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="pins a process to one core (Linux)")
def test_training_bits_cold_warm_and_one_core(tmp_path):
    cache = tmp_path / "numba-cache"  # empty: this run compiles every kernel
    _, cold = _train(cache)
    assert any(cache.rglob("*.nbi")), "the kernels were not cached"
    _, warm = _train(cache)   # everything loaded from the cache
    _, warm2 = _train(cache)
    assert cold == warm, "a freshly compiled kernel computes other bits than its cached copy"
    assert warm == warm2, "two identical runs differ"
    nthreads, one = _train(cache, one_core=True)
    assert nthreads == 1
    assert one == warm, "the result depends on the number of threads"


def test_deterministic_switch():
    assert dt.are_deterministic_algorithms_enabled() is True  # the default
    try:
        dt.use_deterministic_algorithms(False)
        assert dt.are_deterministic_algorithms_enabled() is False
        dt.use_deterministic_algorithms(True, warn_only=True)
        assert dt.are_deterministic_algorithms_enabled() is True
        assert dt.is_deterministic_algorithms_warn_only_enabled() is True
    finally:
        dt.use_deterministic_algorithms(True)
    assert dt.is_deterministic_algorithms_warn_only_enabled() is False
    with pytest.raises(TypeError):
        dt.use_deterministic_algorithms("yes")


def test_warn_only_is_kept_as_given_as_in_torch():
    torch = pytest.importorskip("torch")
    try:
        for mode, warn_only in ((False, True), (True, True), (False, False)):
            dt.use_deterministic_algorithms(mode, warn_only=warn_only)
            assert dt.is_deterministic_algorithms_warn_only_enabled() is warn_only
            old = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
            torch.use_deterministic_algorithms(mode, warn_only=warn_only)
            assert torch.is_deterministic_algorithms_warn_only_enabled() is warn_only
            torch.use_deterministic_algorithms(old[0], warn_only=old[1])
    finally:
        dt.use_deterministic_algorithms(True)


def test_script_top_flags_settable_with_torch_defaults():
    torch = pytest.importorskip("torch")
    c, tc = dt.backends.cudnn, torch.backends.cudnn
    for name in ("benchmark", "deterministic", "enabled", "allow_tf32"):  # benchmark_limit: None in a CPU build
        assert getattr(c, name) == getattr(tc, name), name
    assert dt.backends.cuda.matmul.allow_tf32 is torch.backends.cuda.matmul.allow_tf32 is False
    assert c.is_available() is False and c.version() is None
    try:
        c.benchmark, c.deterministic = True, True
        assert c.benchmark is True and c.deterministic is True
        with c.flags(enabled=False, benchmark=False):
            assert c.enabled is False and c.benchmark is False and c.deterministic is False
        assert c.enabled is True and c.benchmark is True and c.deterministic is True
    finally:
        c.benchmark, c.deterministic = False, False
    try:
        assert dt.get_float32_matmul_precision() == "highest"
        dt.set_float32_matmul_precision("medium")
        assert dt.backends.cuda.matmul.allow_tf32 is True and dt.get_float32_matmul_precision() == "medium"
        dt.backends.cuda.matmul.allow_tf32 = False
        assert dt.get_float32_matmul_precision() == "highest"
        with pytest.warns(UserWarning, match="is not one of 'highest', 'high', or 'medium'"):
            dt.set_float32_matmul_precision("fast")
        assert dt.backends.cuda.matmul.allow_tf32 is False
        dt.set_float32_matmul_precision("high")
        assert dt.backends.cuda.matmul.allow_tf32 is True
    finally:
        dt.set_float32_matmul_precision("highest")
    assert dt.backends.cuda.matmul.allow_tf32 is False
    assert "cudnn" not in dt.backends.available()  # flags, not a registered backend
