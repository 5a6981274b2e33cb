"""Shared fixtures: the devices under test and the cuda marker's skip."""
from __future__ import annotations

import os

import pytest

import devtensor as dt


def devices_under_test():
    """DEVTENSOR_TEST_DEVICES=cpu,cuda overrides; by default every available data-holding backend."""
    env = os.environ.get("DEVTENSOR_TEST_DEVICES")
    if env:
        return [d.strip() for d in env.split(",") if d.strip()]
    return [name for name, (ok, _) in dt.backends.available().items() if ok and name != "meta"]


def _wants_cuda(item):
    """The cuda marker, or a `device` fixture parameter naming a cuda device (DEVTENSOR_TEST_DEVICES=cpu,cuda)."""
    if item.get_closest_marker("cuda") is not None or "cuda" in item.keywords:
        return True
    callspec = getattr(item, "callspec", None)
    dev = callspec.params.get("device") if callspec is not None else None
    return isinstance(dev, str) and dev.split(":")[0] == "cuda"


def pytest_collection_modifyitems(config, items):
    ok, why = dt.backends.available().get("cuda", (False, "not registered"))
    if ok:
        return
    skip = pytest.mark.skip(reason=f"cuda unavailable: {why}")
    for item in items:
        if _wants_cuda(item):
            item.add_marker(skip)


@pytest.fixture(params=devices_under_test())
def device(request):
    return request.param


def raises_like_torch(fn, tfn):
    """fn (devtensor) raises the exception type and message tfn (PyTorch) raises, 'devtensor' read as 'torch'."""
    with pytest.raises(Exception) as te:
        tfn()
    with pytest.raises(type(te.value)) as de:
        fn()
    assert str(de.value).replace("devtensor", "torch") == str(te.value)
