"""The op suite, generated from the op table: every op with a numpy reference and samples runs
forward against that reference on every device under test (float32 and float64), and every
differentiable op passes gradcheck in float64 (finite differences) on each sample."""
from __future__ import annotations

import numpy as np
import pytest

import devtensor as dt
from devtensor.autograd import gradcheck
from devtensor.dispatch import OPS

from conftest import devices_under_test

TESTED = sorted(name for name, op in OPS.items() if op.ref is not None and op.samples is not None)
GRAD_TESTED = sorted(n for n in TESTED if OPS[n].differentiable)


def _to_dev(v, device, requires_grad=False):
    if isinstance(v, np.ndarray):
        t = dt.from_numpy(v) if device == "cpu" else dt.tensor(v, device=device)
        if requires_grad and v.dtype.kind == "f":
            t = t.detach().requires_grad_(True)
        return t
    return v


def _np(t):
    return np.asarray(t.detach().cpu()._data)


def _close(got, want, dtype):
    want = np.asarray(want)
    tol = dict(rtol=1e-4, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-11)
    assert got.shape == want.shape, f"shape {got.shape} != reference {want.shape}"
    if want.dtype.kind == "f":
        np.testing.assert_allclose(got, want, equal_nan=True, **tol)
    else:
        np.testing.assert_array_equal(got, want)


def _cast_sample(args, dtype):
    return tuple(a.astype(dtype) if isinstance(a, np.ndarray) and a.dtype.kind == "f" else a for a in args)


@pytest.mark.parametrize("name", TESTED)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_forward_matches_reference(name, dtype, device):
    op = OPS[name]
    for i, (args, kwargs) in enumerate(op.samples(np.float64)):
        args = _cast_sample(args, dtype)
        want = op.ref(*args, **kwargs)
        got = op(*[_to_dev(a, device) for a in args], **kwargs)
        if op.nout == 1:
            got, want = (got,), (want,)
        for g, w in zip(got, want):
            assert g.device.type == dt.device(device).type
            try:
                _close(_np(g), w, dtype)
            except AssertionError as e:
                raise AssertionError(f"{name} sample {i} ({[getattr(a, 'shape', a) for a in args]}, {kwargs}): {e}")


@pytest.mark.parametrize("name", GRAD_TESTED)
def test_gradcheck(name):
    op = OPS[name]
    for i, (args, kwargs) in enumerate(op.samples(np.float64)):
        if any(isinstance(a, np.ndarray) and a.size > 400 for a in args):
            continue
        tensors = tuple(_to_dev(np.array(a, copy=True) if isinstance(a, np.ndarray) else a, "cpu",
                                requires_grad=True) for a in args)
        if not any(isinstance(t, dt.Tensor) and t.requires_grad for t in tensors):
            continue

        def f(*xs):
            out = op(*xs, **kwargs)
            return out[0] if op.nout > 1 else out

        try:
            gradcheck(f, tensors, eps=1e-6, atol=1e-6, rtol=1e-4)
        except Exception as e:
            raise AssertionError(f"{name} sample {i} ({kwargs}): {e}") from None


def test_meta_device_agrees_on_shapes_and_dtypes():
    """The meta device's derived kernels give the cpu kernel's shapes and dtypes."""
    for name in TESTED:
        op = OPS[name]
        for args, kwargs in op.samples(np.float32):
            cpu = op(*[_to_dev(a, "cpu") for a in args], **kwargs)
            meta = op(*[dt.tensor(a, device="meta") if isinstance(a, np.ndarray) else a for a in args], **kwargs)
            cpu, meta = (cpu, meta) if op.nout > 1 else ((cpu,), (meta,))
            for c, m in zip(cpu, meta):
                assert m.device.type == "meta"
                assert tuple(m.shape) == tuple(c.shape) and m.dtype == c.dtype, name


def test_every_declared_op_is_exercised_or_listed():
    """Ops without reference samples must be covered by name in another test module (listed here)."""
    covered_elsewhere = {
        "index", "index_backward", "index_put", "scatter_add", "copy_", "copy_to", "cast", "max_dim", "min_dim",
        "argmax", "argmin", "all", "any", "floor_divide", "bitwise_and", "bitwise_or", "bitwise_xor", "bitwise_not",
        "conv2d_backward_input", "conv2d_backward_weight", "max_pool2d_backward", "avg_pool2d_backward",
        "cross_entropy_rows_backward", "full", "empty", "arange", "linspace", "eye", "rand", "randn", "randint",
        "randperm",
    }
    missing = sorted(set(OPS) - set(TESTED) - covered_elsewhere)
    assert not missing, f"ops with neither samples nor a listed test: {missing}"
