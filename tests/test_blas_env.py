"""devtensor/_blas_env.py: OpenBLAS's idle-spin default is set before numpy loads, never over a
user's value, and not at all when numpy came first or DEVTENSOR_BLAS_ENV=0."""
from __future__ import annotations

import os
import subprocess
import sys

CHECK = "import os, devtensor; print(os.environ.get('OPENBLAS_THREAD_TIMEOUT'), devtensor._blas_env.applied)"


def _run(code, **env_over):
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_THREAD_TIMEOUT", "DEVTENSOR_BLAS_ENV")}
    env.update(env_over)
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          check=True).stdout.strip()


def test_default_is_set_before_numpy_loads():
    from devtensor._blas_env import DEFAULTS

    assert _run(CHECK) == f"{DEFAULTS['OPENBLAS_THREAD_TIMEOUT']} ['OPENBLAS_THREAD_TIMEOUT']"


def test_user_value_wins():
    assert _run(CHECK, OPENBLAS_THREAD_TIMEOUT="28") == "28 []"


def test_too_late_after_numpy_and_opt_out():
    assert _run("import numpy; " + CHECK) == "None []"
    assert _run(CHECK, DEVTENSOR_BLAS_ENV="0") == "None []"
