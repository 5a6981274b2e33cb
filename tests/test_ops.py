"""The op suite, generated from the op table: every op with a numpy reference and samples runs
forward against that reference on every device under test (float32 and float64), every
differentiable op passes gradcheck in float64 (finite differences) on each sample on every device
under test, and every op whose backward rule is itself differentiable passes gradgradcheck (cpu).
Ops excluded from a check are listed below with the reason."""
from __future__ import annotations

import numpy as np
import pytest

import devtensor as dt
from devtensor.autograd import gradcheck, gradgradcheck
from devtensor.dispatch import OPS
from devtensor.ops import reference as R
from devtensor.ops import samples as S

from conftest import devices_under_test

# ops whose declaration (in a module of another owner) has no ref= / samples=: (reference, samples) here,
# so the generated suite reaches them too; move them into the defop when convenient
UNDECLARED = {
    "max_dim": (R.max_dim, S.values_and_indices()),
    "min_dim": (R.min_dim, S.values_and_indices()),
    "argmax": (lambda x, dim, keepdim: np.argmax(x, axis=dim, keepdims=keepdim), S.values_and_indices()),
    "argmin": (lambda x, dim, keepdim: np.argmin(x, axis=dim, keepdims=keepdim), S.values_and_indices()),
    "all": (lambda x, dim, keepdim: np.all(x, axis=dim, keepdims=keepdim), S.bool_reduction()),
    "any": (lambda x, dim, keepdim: np.any(x, axis=dim, keepdims=keepdim), S.bool_reduction()),
    "bitwise_and": (np.bitwise_and, S.bitwise()),
    "bitwise_or": (np.bitwise_or, S.bitwise()),
    "bitwise_xor": (np.bitwise_xor, S.bitwise()),
    "bitwise_not": (np.invert, S.bitwise(unary=True)),
    "scatter_add": (R.scatter_add, S.scatter_add()),
    "conv2d_backward_input": (R.conv2d_backward_input, S.conv2d_backward("input")),
    "conv2d_backward_weight": (R.conv2d_backward_weight, S.conv2d_backward("weight")),
    "max_pool2d_backward": (R.max_pool2d_backward, S.max_pool2d_backward()),
    "avg_pool2d_backward": (R.avg_pool2d_backward, S.avg_pool2d_backward()),
    "cross_entropy_rows_backward": (R.cross_entropy_rows_backward, S.cross_entropy_rows_backward()),
}
# TESTED: ops declared with ref= and samples= (tests/test_backends.py and tests/test_cuda_backend.py run
# op.samples of these); GENERATED: those and UNDECLARED, what this module's generated tests run
TESTED = sorted(name for name, op in OPS.items() if op.ref is not None and op.samples is not None)
TABLE = {name: (OPS[name].ref, OPS[name].samples) for name in TESTED}
TABLE.update({n: v for n, v in UNDECLARED.items() if n in OPS and n not in TABLE})
GENERATED = sorted(TABLE)

_NO_DOUBLE_BACKWARD = ("its backward calls cross_entropy_rows_backward, whose own backward raises "
                       "NotImplementedError on purpose (differentiate nll_loss(log_softmax(x), target) twice "
                       "instead)")
# ops gradcheck does not apply to, and why
GRADCHECK_EXCLUDED = {
    "cross_entropy_rows_backward": "its backward is cross_entropy's double backward, which raises "
                                   "NotImplementedError on purpose (see GRADGRAD_EXCLUDED)",
}
# ops whose double backward is unsupported by design (test_gradgrad_exclusions_still_raise keeps this honest)
GRADGRAD_EXCLUDED = {
    "cross_entropy_rows": _NO_DOUBLE_BACKWARD,
    "cross_entropy_mean": _NO_DOUBLE_BACKWARD,
    **GRADCHECK_EXCLUDED,
}
# ops whose output requires grad but whose backward raises RuntimeError, as PyTorch's do (no derivative)
NO_DERIVATIVE = {
    "floor_divide": "PyTorch's floor_divide has no derivative (its backward raises); divide(..., rounding_mode='floor') "
                    "has the zero gradient",
}
GRAD_TESTED = sorted(n for n in GENERATED if OPS[n].differentiable and n not in GRADCHECK_EXCLUDED
                     and n not in NO_DERIVATIVE)
GRADGRAD_TESTED = sorted(n for n in GRAD_TESTED if n not in GRADGRAD_EXCLUDED)


def _ties(reduce):
    def has_ties(args, kwargs):
        x, dim = args[0], kwargs.get("dim")
        return x.size > 0 and bool(np.any((x == reduce(x, axis=dim, keepdims=True)).sum(axis=dim) > 1))

    return has_ties


# samples at which an op's first derivative jumps, so gradgradcheck's finite differences see the jump
# (gradcheck still runs on them): op -> (predicate on (args, kwargs), why)
GRADGRAD_SKIP_SAMPLES = {
    "amax": (_ties(np.max), "ties share the gradient; moving one tied element moves all of it"),
    "amin": (_ties(np.min), "ties share the gradient; moving one tied element moves all of it"),
}


def _require(device):
    """A device named in DEVTENSOR_TEST_DEVICES but absent here skips, with the reason, instead of failing."""
    ok, why = dt.backends.available().get(dt.device(device).type, (False, "no such backend"))
    if not ok:
        pytest.skip(f"{device} unavailable: {why}")


def _to_dev(v, device, requires_grad=False):
    if isinstance(v, np.ndarray):
        t = dt.from_numpy(v) if device == "cpu" else dt.tensor(v, device=device)
        if requires_grad and v.dtype.kind in "fc":
            t = t.detach().requires_grad_(True)
        return t
    return v


def _np(t):
    return np.asarray(t.detach().cpu()._data)


def _close(got, want, dtype):
    want = np.asarray(want)
    tol = dict(rtol=1e-4, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-11)
    assert got.shape == want.shape, f"shape {got.shape} != reference {want.shape}"
    if want.dtype.kind in "fc":
        np.testing.assert_allclose(got, want, equal_nan=True, **tol)
    else:
        np.testing.assert_array_equal(got, want)


def _cast_sample(args, dtype):
    """Float arrays to dtype, complex ones to the complex dtype of its precision."""
    return tuple(a.astype(dtype if a.dtype.kind == "f" else np.result_type(dtype, np.complex64))
                 if isinstance(a, np.ndarray) and a.dtype.kind in "fc" else a for a in args)


@pytest.mark.parametrize("name", GENERATED)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_forward_matches_reference(name, dtype, device):
    _require(device)
    op = OPS[name]
    ref, samples = TABLE[name]
    for i, (args, kwargs) in enumerate(samples(np.float64)):
        args = _cast_sample(args, dtype)
        want = ref(*args, **kwargs)
        got = op(*[_to_dev(a, device) for a in args], **kwargs)
        if op.nout == 1:
            got, want = (got,), (want,)
        for g, w in zip(got, want):
            assert g.device.type == dt.device(device).type
            try:
                _close(_np(g), w, dtype)
            except AssertionError as e:
                raise AssertionError(f"{name} sample {i} ({[getattr(a, 'shape', a) for a in args]}, {kwargs}): {e}")


def _grad_cases(name, device):
    """(i, kwargs, float64 tensors on `device` with requires_grad on the float ones) per small sample."""
    for i, (args, kwargs) in enumerate(TABLE[name][1](np.float64)):
        if any(isinstance(a, np.ndarray) and a.size > 400 for a in args):
            continue
        tensors = tuple(_to_dev(np.array(a, copy=True) if isinstance(a, np.ndarray) else a, device,
                                requires_grad=True) for a in args)
        if any(isinstance(t, dt.Tensor) and t.requires_grad for t in tensors):
            yield i, args, kwargs, tensors


def _first_output(op, kwargs):
    def f(*xs):
        out = op(*xs, **kwargs)
        return out[0] if op.nout > 1 else out

    return f


@pytest.mark.parametrize("name", GRAD_TESTED)
def test_gradcheck(name, device):
    _require(device)
    op = OPS[name]
    for i, _, kwargs, tensors in _grad_cases(name, device):
        try:
            gradcheck(_first_output(op, kwargs), tensors, eps=1e-6, atol=1e-6, rtol=1e-4)
        except Exception as e:
            raise AssertionError(f"{name} sample {i} ({kwargs}) on {device}: {e}") from None


@pytest.mark.parametrize("name", GRADGRAD_TESTED)
def test_gradgradcheck(name):
    """cpu only: double backward differentiates the backward rules, Tensor ops that run the same on every
    device (test_gradcheck covers each device's kernels)."""
    op = OPS[name]
    skip, _ = GRADGRAD_SKIP_SAMPLES.get(name, (lambda args, kwargs: False, ""))
    checked = 0
    for i, args, kwargs, tensors in _grad_cases(name, "cpu"):
        if skip(args, kwargs):
            continue
        try:
            gradgradcheck(_first_output(op, kwargs), tensors, eps=1e-6, atol=1e-5, rtol=1e-3)
        except Exception as e:
            raise AssertionError(f"{name} sample {i} ({kwargs}): {e}") from None
        checked += 1
    assert checked, f"{name}: no sample reaches gradgradcheck"


@pytest.mark.parametrize("name", sorted(GRADGRAD_EXCLUDED))
def test_gradgrad_exclusions_still_raise(name):
    """Each excluded op's double backward still raises NotImplementedError: once it works, it must leave the
    exclusion list and join test_gradgradcheck."""
    op = OPS[name]
    assert name in GENERATED and op.differentiable, f"{name}: stale exclusion (no such differentiable op with samples)"
    i, _, kwargs, tensors = next(_grad_cases(name, "cpu"))
    check = gradcheck if name in GRADCHECK_EXCLUDED else gradgradcheck
    with pytest.raises(NotImplementedError):
        check(_first_output(op, kwargs), tensors, eps=1e-6, atol=1e-5, rtol=1e-3)


@pytest.mark.parametrize("name", sorted(NO_DERIVATIVE))
def test_no_derivative_ops_raise_as_pytorch(name):
    op = OPS[name]
    i, _, kwargs, tensors = next(_grad_cases(name, "cpu"))
    out = _first_output(op, kwargs)(*tensors)
    assert out.requires_grad, f"{name}: its output requires grad in PyTorch"
    with pytest.raises(RuntimeError, match="derivative"):
        out.sum().backward()


def test_gradgrad_skipped_samples_are_few():
    """The per-sample skips must leave most samples checked (they are for points of non-smoothness only)."""
    for name, (skip, why) in GRADGRAD_SKIP_SAMPLES.items():
        cases = list(_grad_cases(name, "cpu"))
        skipped = [i for i, args, kwargs, _ in cases if skip(args, kwargs)]
        assert len(skipped) <= 1 < len(cases), f"{name}: samples {skipped} skipped ({why})"


def test_cuda_is_under_test_or_skipped_visibly():
    """Without a GPU the generated tests run on cpu only; say so in the summary instead of silently."""
    ok, why = dt.backends.available().get("cuda", (False, "not registered"))
    if not ok:
        pytest.skip(f"cuda unavailable ({why}): ops were tested on {devices_under_test()} only")
    assert "cuda" in devices_under_test(), "cuda is available but not under test (DEVTENSOR_TEST_DEVICES?)"


def test_meta_device_agrees_on_shapes_and_dtypes():
    """The meta device's derived kernels give the cpu kernel's shapes and dtypes."""
    for name in GENERATED:
        op = OPS[name]
        for args, kwargs in TABLE[name][1](np.float32):
            cpu = op(*[_to_dev(a, "cpu") for a in args], **kwargs)
            meta = op(*[dt.tensor(a, device="meta") if isinstance(a, np.ndarray) else a for a in args], **kwargs)
            cpu, meta = (cpu, meta) if op.nout > 1 else ((cpu,), (meta,))
            for c, m in zip(cpu, meta):
                assert m.device.type == "meta"
                assert tuple(m.shape) == tuple(c.shape) and m.dtype == c.dtype, name


def test_every_declared_op_is_exercised_or_listed():
    """Ops without reference samples must be covered by name in another test module (listed here)."""
    covered_elsewhere = {
        "index": "x[key] (tests/test_autograd.py, tests/test_bad_input.py): keys are not numpy samples",
        "index_backward": "x[key]'s gradient (tests/test_autograd.py)",
        "index_put": "x[key] = v (tests/test_autograd.py)",
        "copy_to": "Tensor.to(device) (tests/test_dtypes_devices.py, tests/test_cli_info_ops.py)",
        "cast": "Tensor.to(dtype) (tests/test_dtypes_devices.py)",
        **{n: "creation: no tensor input (tests/test_dtypes_devices.py)" for n in
           ("full", "empty", "arange", "linspace", "eye")},
        **{n: "random (tests/test_dtypes_devices.py)" for n in ("rand", "randn", "randint", "randperm")},
        **{n: "sampling: statistics with fixed seeds (tests/test_random.py)" for n in
           ("multinomial", "bernoulli", "normal", "poisson")},
    }
    missing = sorted(set(OPS) - set(GENERATED) - set(covered_elsewhere))
    assert not missing, f"ops with neither samples nor a listed test: {missing}"
    stale = sorted(set(covered_elsewhere) & set(GENERATED))
    assert not stale, f"listed as covered elsewhere but generated here too: {stale}"
    assert not set(UNDECLARED) - set(OPS), "UNDECLARED names ops that do not exist"



# ---- scatter_add with a src larger than its index (PyTorch scatters src's index-shaped corner) -------------

def _scatter_larger_src():
    r = np.random.default_rng(29)
    return r.standard_normal((3, 4)), np.array([[0, 1], [2, 3]]), r.standard_normal((3, 5))


def test_scatter_add_src_larger_than_index(device):
    _require(device)
    x, idx, src = _scatter_larger_src()
    got = OPS["scatter_add"](*[_to_dev(a, device) for a in (x, idx, src)], dim=1)
    _close(_np(got), R.scatter_add(x, idx, src, 1), np.float64)


def test_scatter_add_src_larger_than_index_gradient():
    x, idx, src = _scatter_larger_src()
    tensors = tuple(_to_dev(a, "cpu", requires_grad=True) for a in (x, idx, src))
    gradcheck(lambda *xs: OPS["scatter_add"](*xs, dim=1), tensors, eps=1e-6, atol=1e-6, rtol=1e-4)
