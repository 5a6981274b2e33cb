"""ci/gpu_check.sh (the checks only a GPU can run) parses, and on a machine without a GPU it stops
at once with exit 3 and one clear line instead of running half its steps."""
from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "ci" / "gpu_check.sh"


def test_gpu_check_parses():
    r = subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_gpu_check_without_a_gpu_exits_3_with_a_reason(tmp_path):
    fake = tmp_path / "nvidia-smi"  # an nvidia-smi that sees no GPU, first on PATH
    fake.write_text("#!/bin/sh\necho 'No devices were found' >&2\nexit 6\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    env = {**os.environ, "PATH": f"{tmp_path}{os.pathsep}{os.environ.get('PATH', '')}", "OUT": str(tmp_path / "out")}
    r = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 3
    assert "no GPU here" in r.stderr
    assert not (tmp_path / "out").exists()  # nothing written
