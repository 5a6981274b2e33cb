"""repr(tensor) and set_printoptions against PyTorch: the same values print the same strings (with
"torch" for "devtensor") under each print option and profile."""
from __future__ import annotations

import numpy as np
import pytest

import devtensor as dt

torch = pytest.importorskip("torch")

_rng = np.random.default_rng(0)
ARRAYS = [
    np.array([1.123456, -2.5, 3.0], np.float32), np.array([1e-5, 1.0, 1e5], np.float32),
    np.arange(2000.0, dtype=np.float32), np.array([1.0, 2.0], np.float32),
    _rng.standard_normal((4, 5)).astype(np.float32), np.array([123456789.0, 1.5], np.float32),
    np.arange(30).reshape(5, 6), np.array([0.5, -0.25], np.float32), np.array(3.25, np.float32),
    np.array([0.0, np.nan, np.inf, -np.inf], np.float32), np.array([1.5, np.nan, -np.inf], np.float32),
    np.array([0.0, -0.0], np.float32), np.array([True, False]), _rng.standard_normal((3, 4, 5)),
    np.arange(24, dtype=np.int32).reshape(2, 3, 4), np.array([1.5, -2.25], np.float16),
    np.array([1 + 2j, -0.5 - 1e-3j], np.complex64), np.zeros((2, 0), np.float32), np.zeros(0, np.float32),
    _rng.standard_normal((40, 40)).astype(np.float32) * 1e3,
]
OPTIONS = [dict(), dict(precision=2), dict(sci_mode=True), dict(sci_mode=False), dict(threshold=5),
           dict(profile="short"), dict(edgeitems=1, threshold=3), dict(linewidth=40), dict(profile="full"),
           dict(precision=6, sci_mode=True, linewidth=100)]


@pytest.fixture(autouse=True)
def _restore():
    yield
    dt.set_printoptions(profile="default")
    torch.set_printoptions(profile="default")


@pytest.mark.parametrize("opts", OPTIONS, ids=[str(o) for o in OPTIONS])
def test_repr_matches_torch(opts):
    dt.set_printoptions(**opts)
    torch.set_printoptions(**opts)
    for a in ARRAYS:
        # "dtype=devtensor.float64" is 4 characters longer than torch's: where the suffix goes on
        # its own line may differ, so the line break before it is not compared
        want = repr(torch.tensor(a)).replace(",\n       dtype=", ", dtype=")
        got = repr(dt.tensor(a)).replace("devtensor.", "torch.").replace(",\n       dtype=", ", dtype=")
        assert got == want, f"{a.dtype} {a.shape} under {opts}"


def test_repr_extras_match_torch():
    a = np.array([[0.5, -1.0], [2.0, 3.5]], np.float32)
    x, tx = dt.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
    assert repr(x) == repr(tx)
    assert repr(x * 2).split("grad_fn")[0] == repr(tx * 2).split("grad_fn")[0]
    assert repr(dt.tensor(a, dtype=dt.float64)).replace("devtensor.", "torch.") == repr(torch.tensor(a).double())


def test_printoptions_state():
    dt.set_printoptions(precision=2, sci_mode=True)
    assert dt.get_printoptions() == dict(precision=2, threshold=1000, edgeitems=3, linewidth=80, sci_mode=True)
    dt.set_printoptions(threshold=10)  # sci_mode is always set: back to automatic
    assert dt.get_printoptions()["sci_mode"] is None and dt.get_printoptions()["precision"] == 2
    with dt.printoptions(precision=1):
        assert repr(dt.tensor([1.25])) == "tensor([1.2])"
    assert repr(dt.tensor([1.25])) == "tensor([1.25])"
    with pytest.raises(ValueError, match="profile must be one of"):
        dt.set_printoptions(profile="long")
