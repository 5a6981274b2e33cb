"""The backend registry: completeness of the cpu table, availability reasons, clear misses, and a
third-party backend registered from tests/ running the generated op suite."""
from __future__ import annotations

import numpy as np
import pytest

import devtensor as dt
from devtensor import backends
from devtensor.dispatch import OPS

from test_ops import TESTED, _close
from toy_backend import ToyArray, make_toy_backend


def test_every_op_has_a_cpu_kernel():
    missing = sorted(name for name, op in OPS.items() if "cpu" not in op.kernels and op.composite is None)
    assert not missing, f"ops with neither a cpu kernel nor a composite implementation: {missing}"


def test_every_op_has_a_meta_kernel():
    missing = sorted(name for name, op in OPS.items() if "meta" not in op.kernels and op.composite is None)
    assert not missing, f"ops without a meta kernel: {missing}"


def test_available_lists_every_backend_with_reasons():
    av = dt.backends.available()
    assert av["cpu"] == (True, "") and av["meta"][0] is True
    ok, why = av["cuda"]
    assert ok or ("cupy" in why or "CUDA" in why or "driver" in why)


def test_lookup_miss_names_op_device_and_devices_that_have_it():
    be = backends.Backend("nokernels")
    backends.register(be)
    try:
        x = dt.tensor([1.0]).to("nokernels")
        with pytest.raises(NotImplementedError, match=r"exp: no kernel for device 'nokernels'.*cpu"):
            x.exp()
    finally:
        backends._REGISTRY.pop("nokernels")


@pytest.fixture(scope="module")
def toy():
    be = backends.register(make_toy_backend())
    yield be
    backends._REGISTRY.pop("toy", None)
    for op in OPS.values():
        op.kernels.pop("toy", None)


def test_third_party_backend_runs_the_op_suite(toy):
    ran = 0
    for name in TESTED:
        op = OPS[name]
        if "toy" not in op.kernels:
            continue  # a plugin implements what it implements; misses raise NotImplementedError
        for args, kwargs in op.samples(np.float64):
            want = op.ref(*args, **kwargs)
            got = op(*[dt.tensor(a, device="toy") if isinstance(a, np.ndarray) else a for a in args], **kwargs)
            got, want = (got, want) if op.nout > 1 else ((got,), (want,))
            for g, w in zip(got, want):
                assert isinstance(g._data, ToyArray) and g.device == dt.device("toy")
                _close(np.asarray(g.cpu()._data), w, np.float64)
            ran += 1
    assert ran > 100


def test_third_party_backend_trains_with_autograd(toy):
    x = dt.tensor(np.linspace(-1, 1, 32).reshape(-1, 1), device="toy")
    y = 3 * x + 2
    w = dt.zeros(1, 1, device="toy", dtype=dt.float64, requires_grad=True)
    b = dt.zeros(1, device="toy", dtype=dt.float64, requires_grad=True)
    for _ in range(300):
        loss = ((x @ w + b - y) ** 2).mean()
        loss.backward()
        with dt.no_grad():
            w -= 0.2 * w.grad
            b -= 0.2 * b.grad
        w.grad = b.grad = None
    assert abs(w.item() - 3) < 1e-3 and abs(b.item() - 2) < 1e-3


def test_entry_point_discovery(monkeypatch):
    """A plugin advertised through the `devtensor.backends` entry-point group is found by name."""
    import importlib.metadata as md

    class EP:
        name = "epdev"
        value = "toy_backend:make_toy_backend"

        def load(self):
            return make_toy_backend("epdev")

    monkeypatch.setattr(md, "entry_points", lambda group=None: [EP()] if group == "devtensor.backends" else [])
    monkeypatch.setattr(backends, "_LOADED_ENTRY_POINTS", [False])
    try:
        assert dt.backends.available()["epdev"] == (True, "")
        t = dt.ones(3, device="epdev") * 2
        assert t.device.type == "epdev" and t.tolist() == [2.0, 2.0, 2.0]
    finally:
        backends._REGISTRY.pop("epdev", None)
        for op in OPS.values():
            op.kernels.pop("epdev", None)
