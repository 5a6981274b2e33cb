"""The composite suite, generated from devtensor.ops._api.COMPOSITES: every public function written in
ops (var, gelu, layer_norm, the losses, ...) runs forward against its numpy reference on every device
under test (float32 and float64), passes gradcheck in float64 on every device and gradgradcheck on cpu
(where its declaration says the check holds, and otherwise says why not). Where torch is installed the
numpy references are checked against PyTorch as well. The last tests keep the table honest: every
public function of the op modules is an op, a composite or listed with a reason."""
from __future__ import annotations

import importlib
import warnings

import numpy as np
import pytest

import devtensor as dt
import devtensor.nn.functional as F
from devtensor.autograd import gradcheck, gradgradcheck
from devtensor.dispatch import OPS
from devtensor.ops._api import COMPOSITES, FUNCTIONS

from conftest import devices_under_test

# the legacy size_average / reduce samples warn, as in PyTorch
pytestmark = pytest.mark.filterwarnings("ignore:size_average and reduce args will be deprecated:UserWarning")

NAMES = sorted(COMPOSITES)
GRAD_NAMES = [n for n in NAMES if not isinstance(COMPOSITES[n].differentiable, str)]
GRADGRAD_NAMES = [n for n in GRAD_NAMES if not isinstance(COMPOSITES[n].gradgrad, str)]
TORCH_NAMES = [n for n in NAMES if COMPOSITES[n].torch]


def _require(device):
    """A device named in DEVTENSOR_TEST_DEVICES but absent here skips, with the reason, instead of failing."""
    ok, why = dt.backends.available().get(dt.device(device).type, (False, "no such backend"))
    if not ok:
        pytest.skip(f"{device} unavailable: {why}")


def _to_dev(v, device, requires_grad=False):
    if not isinstance(v, np.ndarray):
        return v
    t = dt.from_numpy(v) if device == "cpu" else dt.tensor(v, device=device)  # cpu keeps strided views
    if requires_grad and v.dtype.kind == "f":
        t = t.detach().requires_grad_(True)
    return t


def _np(t):
    return np.asarray(t.detach().cpu()._data)


def _cast(args, dtype):
    return tuple(a.astype(dtype) if isinstance(a, np.ndarray) and a.dtype.kind == "f" else a for a in args)


def _copies(args):
    return tuple(np.array(a, copy=True) if isinstance(a, np.ndarray) else a for a in args)


def _ref(c, args, kwargs):
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.asarray(c.ref(*_copies(args), **kwargs))


def _close(got, want, dtype, what):
    tol = dict(rtol=1e-4, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-11)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != reference {want.shape}"
    if want.dtype.kind == "f":
        assert got.dtype == want.dtype, f"{what}: dtype {got.dtype} != reference {want.dtype}"
        np.testing.assert_allclose(got, want, equal_nan=True, err_msg=what, **tol)
    else:
        np.testing.assert_array_equal(got, want, err_msg=what)


def _what(name, i, args, kwargs):
    return f"{name} sample {i} ({[getattr(a, 'shape', a) for a in args]}, {kwargs})"


def _finite(args, want):
    return all(np.all(np.isfinite(a)) for a in (*args, want) if isinstance(a, np.ndarray) and a.dtype.kind == "f")


def _grad_samples(c, reason):
    """(index, args, kwargs) of the float64 samples the check applies to: where `reason` says it holds and
    inputs and reference are finite (no derivative to check at inf / nan)."""
    out = []
    for i, (args, kwargs) in enumerate(c.samples(np.float64)):
        if reason(args, kwargs) is None and _finite(args, _ref(c, args, kwargs)) and any(
                isinstance(a, np.ndarray) and a.dtype.kind == "f" for a in args):
            out.append((i, args, kwargs))
    return out


# (composite, sample index) -> (the checks it fails, the bug): bugs outside this suite's files, reported to
# their owners. The test runs every other sample first, then xfails naming the bug; once the bug is fixed
# the sample passes and the test fails until its entry is removed here (strict).
KNOWN_BUGS: dict = {}


def _run(check, name, cases, body):
    """body(i, args, kwargs) on each case, KNOWN_BUGS applied (see above)."""
    failures, known, fixed = [], [], []
    for i, args, kwargs in cases:
        checks, bug = KNOWN_BUGS.get((name, i), ((), None))
        bug = bug if check in checks else None
        try:
            body(i, args, kwargs)
        except Exception as e:
            (known if bug else failures).append(f"sample {i}: {bug}" if bug else f"{e}")
        else:
            if bug:
                fixed.append(i)
    assert not failures, "\n".join(failures)
    assert not fixed, f"{name}: samples {fixed} pass {check} now: remove them from KNOWN_BUGS"
    if known:
        pytest.xfail(f"{name} {check}, known bugs: " + "; ".join(known))


# ---- generated: forward, gradcheck, gradgradcheck -------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_forward_matches_reference(name, dtype, device):
    _require(device)
    c = COMPOSITES[name]

    def body(i, args, kwargs):
        args = _cast(args, dtype)
        want = _ref(c, args, kwargs)
        got = c.fn(*[_to_dev(a, device) for a in _copies(args)], **kwargs)
        assert got.device.type == dt.device(device).type, _what(name, i, args, kwargs)
        _close(_np(got), want, dtype, _what(name, i, args, kwargs))

    _run("forward", name, [(i, a, k) for i, (a, k) in enumerate(c.samples(np.float64))], body)


@pytest.mark.parametrize("name", TORCH_NAMES)
def test_reference_agrees_with_torch(name):
    """The numpy references are ours: check them against PyTorch itself where it is installed."""
    torch = pytest.importorskip("torch")
    c = COMPOSITES[name]
    mod, _, attr = c.torch.rpartition(".")
    fn = getattr(importlib.import_module(mod) if mod != "torch.Tensor" else torch.Tensor, attr)
    for i, (args, kwargs) in enumerate(c.samples(np.float64)):
        want = _ref(c, args, kwargs)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # torch.var's "degrees of freedom is <= 0"
            got = fn(*[torch.from_numpy(np.array(a, copy=True)) if isinstance(a, np.ndarray) else a for a in args],
                     **kwargs).numpy()
        np.testing.assert_allclose(want, got, rtol=1e-9, atol=1e-12, equal_nan=True,
                                   err_msg=_what(name, i, args, kwargs) + ": numpy reference vs torch")


@pytest.mark.parametrize("name", GRAD_NAMES)
def test_gradcheck(name, device):
    _require(device)
    c = COMPOSITES[name]

    def body(i, args, kwargs):
        inputs = tuple(_to_dev(a, device, requires_grad=True) for a in _copies(args))
        try:
            gradcheck(lambda *xs: c.fn(*xs, **kwargs), inputs, eps=1e-6, atol=1e-6, rtol=1e-4)
        except Exception as e:
            raise AssertionError(f"{_what(name, i, args, kwargs)} on {device}: {e}") from None

    _run("gradcheck", name, _grad_samples(c, c.grad_reason), body)


@pytest.mark.parametrize("name", GRADGRAD_NAMES)
def test_gradgradcheck(name):
    """cpu only: double backward is the backward rules (Tensor ops) differentiated again, the same code
    on every device; gradcheck above covers each device's kernels."""
    c = COMPOSITES[name]

    def body(i, args, kwargs):
        inputs = tuple(_to_dev(a, "cpu", requires_grad=True) for a in _copies(args))
        try:
            gradgradcheck(lambda *xs: c.fn(*xs, **kwargs), inputs, eps=1e-6, atol=1e-5, rtol=1e-3)
        except Exception as e:
            raise AssertionError(f"{_what(name, i, args, kwargs)}: {e}") from None

    _run("gradgradcheck", name, _grad_samples(c, c.gradgrad_reason), body)


def test_cuda_is_under_test_or_skipped_visibly():
    """Without a GPU the generated tests run on cpu only; say so in the summary instead of silently."""
    ok, why = dt.backends.available().get("cuda", (False, "not registered"))
    if not ok:
        pytest.skip(f"cuda unavailable ({why}): composites were tested on {devices_under_test()} only")
    assert "cuda" in devices_under_test(), "cuda is available but not under test (DEVTENSOR_TEST_DEVICES?)"


# ---- the table itself ---------------------------------------------------------------------------------

def test_every_composite_is_reached():
    """No declaration may skip all of its samples: each composite has samples, and each differentiable one
    has samples gradcheck (and, unless excluded with a reason, gradgradcheck) really runs on."""
    for name in NAMES:
        c = COMPOSITES[name]
        assert c.samples(np.float64), name
        if name in GRAD_NAMES:
            assert _grad_samples(c, c.grad_reason), f"{name}: no sample reaches gradcheck"
        if name in GRADGRAD_NAMES:
            assert _grad_samples(c, c.gradgrad_reason), f"{name}: no sample reaches gradgradcheck"
        for args, kwargs in c.samples(np.float64):
            assert not any(isinstance(v, np.ndarray) for v in kwargs.values()), \
                f"{name}: tensor arguments go positional (kwargs are plain values)"


def test_composites_are_public_functions_not_ops():
    """A composite is the exported function itself, and no op of the table has its name (an op that
    takes over a composite's job must replace the declaration, not duplicate it silently)."""
    dup = sorted(set(COMPOSITES) & set(OPS))
    assert not dup, f"declared both as ops and as composites: {dup}"
    for name, c in COMPOSITES.items():
        exported = (FUNCTIONS.get(name), getattr(dt.Tensor, name, None), getattr(F, name, None))
        assert any(f is c.fn for f in exported), f"composite {name} is not the public devtensor/Tensor/F function"


# public functions that call one op (argument handling only): their op's generated tests cover the math
OP_WRAPPERS = {
    "max": "amax / max_dim", "min": "amin / min_dim", "subtract": "sub", "multiply": "mul", "true_divide": "div",
    "negative": "neg", "greater": "gt", "less": "lt", "clip": "clamp", "clamp_min": "clamp", "clamp_max": "clamp",
    "relu_": "relu, in place", "leaky_relu_": "leaky_relu, in place",
}
NOT_GENERATED = {
    "dropout": "a random mask: no deterministic reference (tests/test_nn.py checks train / eval behaviour)",
    "dropout_": "dropout, in place: a random mask (tests/test_torch_conformance.py checks its forms)",
}


def _public_functions():
    import devtensor.ops.elementwise as E
    import devtensor.ops.functional as NF
    import devtensor.ops.reduce as R

    mods = (E.__name__, R.__name__, NF.__name__)
    names = {k for k, f in FUNCTIONS.items() if getattr(f, "__module__", None) in mods}
    names |= {k for k, f in vars(dt.Tensor).items() if not k.startswith("_") and callable(f)
              and getattr(f, "__module__", None) in mods}
    names |= {k for k, f in vars(F).items() if not k.startswith("_") and callable(f)
              and getattr(f, "__module__", None) == F.__name__}
    return names


def test_every_public_function_is_an_op_a_composite_or_listed():
    unlisted = sorted(n for n in _public_functions()
                      if n not in OPS and n not in COMPOSITES and n not in OP_WRAPPERS and n not in NOT_GENERATED)
    assert not unlisted, (f"public functions the generated suites do not reach: {unlisted}; declare each with "
                          "@composite(ref=..., samples=...) (devtensor/ops/_api.py) or list it here with a reason")
    stale = sorted(set(OP_WRAPPERS) & set(COMPOSITES))
    assert not stale, f"listed as op wrappers but declared composites: {stale}"


# ---- gradients at points the sample tables avoid (where gradcheck's finite differences cannot look) -----------

def _grad_of(fn, x, **kwargs):
    t = dt.tensor(x, requires_grad=True)
    fn(t, **kwargs).sum().backward()
    return _np(t.grad)


@pytest.mark.parametrize("kwargs", [{}, {"dim": 1}], ids=["all", "dim"])
def test_norm_gradient_at_zero_is_zero(kwargs):
    np.testing.assert_array_equal(_grad_of(dt.norm, np.zeros((2, 3)), **kwargs), np.zeros((2, 3)))


def test_std_gradient_of_a_constant_slice_is_zero():
    np.testing.assert_array_equal(_grad_of(dt.std, np.ones((2, 3)), dim=1), np.zeros((2, 3)))
