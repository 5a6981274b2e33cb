"""`devtensor info --ops`: which kernel tier serves each op on each registered device, per dtype."""
from __future__ import annotations

import json

import numpy as np

from devtensor import backends
from devtensor.cli import info, main


def test_op_tiers_reads_the_kernel_chains():
    t = info.op_tiers("conv2d")
    assert list(t) == ["conv2d"]
    cuda = t["conv2d"]["cuda"]
    assert cuda["float32"] == "specialised" and cuda["float16"] == "specialised"  # our CUDA C (float16 via f32)
    assert cuda["float64"] == "portable" and cuda["int32"] == "portable"  # the CuPy code
    assert set(t["conv2d"]) >= {"cpu", "meta", "cuda"}
    assert set(info.op_tiers("exp")["exp"]["cuda"].values()) == {"portable"}
    assert set(info.op_tiers("copy_to")["copy_to"]["cpu"].values()) == {"composite"}


def test_a_dtype_nothing_serves_shows_as_none():
    be = backends.Backend("tiersdev")
    be.kernel("exp", dtypes=["float32"])(np.exp)
    backends.register(be)
    try:
        cells = info.op_tiers("exp")["exp"]["tiersdev"]
        assert cells["float32"] == "specialised" and cells["float64"] == "none"
        assert info.op_tiers("log")["log"]["tiersdev"]["float32"] == "none"
    finally:
        backends._REGISTRY.pop("tiersdev", None)
        from devtensor.dispatch import OPS

        for op in OPS.values():
            op.kernels.pop("tiersdev", None)


def test_cli_prints_a_compact_table(capsys):
    assert main(["info", "--ops", "conv2d*"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    header = next(ln for ln in lines if ln.startswith("op "))
    assert header.split() == ["op", *backends.registered()]
    row = next(ln for ln in lines if ln.startswith("conv2d "))
    cells = dict(zip(backends.registered(), row.split()[1:]))
    codes = [c for _, c in info.DTYPE_CODES]
    assert cells["cuda"][codes.index("f")] == "S" and cells["cuda"][codes.index("d")] == "P"
    assert len(cells["cuda"]) == len(codes)
    assert "conv2d_backward_input" in out and "S specialised" in out and "dtype columns" in out


def test_cli_ops_json_and_bad_pattern(capsys):
    assert main(["info", "--ops", "softmax", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["softmax"]["cuda"]["float32"] == "specialised"
    assert main(["info", "--ops", "no_such_op*"]) == 2
    assert "no op matches" in capsys.readouterr().err
