"""The cpu backend's malloc tuning (devtensor/backends/cpu/allocator.py): applied on glibc at
import, switched off by DEVTENSOR_CPU_MALLOC_TUNE=0, and a no-op elsewhere."""
from __future__ import annotations

import platform
import subprocess
import sys

import pytest

CHECK = "import devtensor; from devtensor.backends.cpu import allocator; print(allocator.tuned)"


def _run(env_value):
    import os

    env = dict(os.environ)
    env.pop("DEVTENSOR_CPU_MALLOC_TUNE", None)
    if env_value is not None:
        env["DEVTENSOR_CPU_MALLOC_TUNE"] = env_value
    return subprocess.run([sys.executable, "-c", CHECK], env=env, capture_output=True, text=True,
                          check=True).stdout.strip()


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                    reason="the tuning applies to glibc's malloc only")
def test_tuned_on_glibc_unless_switched_off():
    assert _run(None) == "True"
    assert _run("0") == "False"


def test_tune_is_idempotent():
    from devtensor.backends.cpu import allocator

    first = allocator.tuned
    assert allocator.tune() == first
