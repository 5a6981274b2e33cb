"""dt.compile == eager for every op in the table (issue #12), generated from OpDef.samples: values and
gradients, float32 and float64. Each case captures once, replays on fresh values and compares with an
eager run on the same fresh values, bitwise (a replay runs the very kernels eager runs, in the same order)
except where a fused kernel computes a transcendental function (FUSED_RTOL);
a silent eager fallback fails unless the op is in SKIP with its reason."""
from __future__ import annotations

import re
import warnings

import numpy as np
import pytest

import devtensor as dt
from devtensor.dispatch import OPS

SAMPLES_PER_DTYPE = 3  # the first three: a cold kernel cache (numba compiling every fused group) stays well under a minute
DTYPES = (np.float32, np.float64)

# ops a replay cannot serve, with the reason; everything else must replay
SKIP: dict = {}
# differentiable ops left out of the gradient check, with the reason
NO_GRAD_CHECK = {
    "floor_divide": "its backward raises in eager too (no derivative, as in PyTorch)",
}
# A fused kernel does the eager kernels' arithmetic element by element (codegen_cpu.py), except that its
# transcendental functions are numba's scalar ones, not numpy's vectorised ones, which may differ in the
# last bits: a replay whose fused kernels use one is compared within these (relative to the array's
# largest entry), every other replay bitwise.
TRANSCENDENTAL = {"exp", "expm1", "log", "log1p", "log2", "log10", "tanh", "sigmoid", "erf", "erfc", "erfinv",
                  "pow", "sin", "cos", "tan", "asin", "acos", "atan", "sinh", "cosh", "asinh", "acosh", "atanh"}
FUSED_RTOL = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-13,
              np.dtype(np.complex64): 1e-5, np.dtype(np.complex128): 1e-13}

SAMPLED = sorted(n for n, op in OPS.items() if op.samples is not None and not n.endswith("_"))  # not in-place ops


def _as_tuple(y):
    return y if isinstance(y, tuple) else (y,)


def _fresh(a):
    """New values of the same shape and dtype (float and complex only: integer arguments are indices or counts)."""
    return (np.asarray(a) * 0.5 + 0.25).astype(a.dtype) if _inexact(a) else a


def _inexact(a):
    return isinstance(a, np.ndarray) and a.dtype.kind in "fc"


def _check_replayed(before, name):
    s = dt.compiler.stats()
    assert s["eager_fallbacks"] == before["eager_fallbacks"], f"{name}: the compiled call fell back to eager"
    assert s["replays"] == before["replays"] + 1, f"{name}: the second call did not replay"


def _assert_same(got, want, fused, msg):
    got, want = np.asarray(got), np.asarray(want)
    if not fused or want.dtype not in FUSED_RTOL:
        np.testing.assert_array_equal(got, want, err_msg=msg)
        return
    rtol = FUSED_RTOL[want.dtype]
    # entries near zero (a cancelling sum) are held to the array's scale, not their own
    scale = float(np.max(np.abs(want))) if want.size else 0.0
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * scale, err_msg=msg + " (a fused transcendental)")


def _fused(g):
    """Whether a fused kernel of g's replay computes a transcendental function."""
    ops = {m.group(1) for line in str(g.graph).splitlines() if "[fused kernel" in line
           for m in [re.search(r"= (\w+)\(", line)] if m}
    return bool(ops & TRANSCENDENTAL)


def _cases(op, dtype):
    return [(list(args), dict(kwargs)) for args, kwargs in op.samples(dtype)[:SAMPLES_PER_DTYPE]]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name", SAMPLED)
def test_compiled_values_equal_eager(name, dtype):
    if name in SKIP:
        pytest.skip(SKIP[name])
    op = OPS[name]
    for args, kwargs in _cases(op, dtype):
        tensors = [dt.tensor(a) if isinstance(a, np.ndarray) else a for a in args]
        g = dt.compile(lambda *xs, _k=kwargs: op(*xs, **_k))
        with dt.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)  # a fallback warns at capture: fail on it
            g(*tensors)  # the capture (eager)
            fresh = [dt.tensor(_fresh(a)) if isinstance(a, np.ndarray) else a for a in args]
            before = dt.compiler.stats()
            got = g(*fresh)  # a replay on new values
            _check_replayed(before, name)
            ref = op(*fresh, **kwargs)
        for a, b in zip(_as_tuple(got), _as_tuple(ref)):
            _assert_same(a.numpy(), b.numpy(), _fused(g), f"{name} {np.dtype(dtype).name}")


def _grad_positions(op, args):
    """The argument positions that get gradients: float and complex arrays among the op's grad_inputs."""
    allowed = range(len(args)) if op.grad_inputs is None else op.grad_inputs
    return [i for i in allowed if i < len(args) and _inexact(args[i])]


def _cotangent(rng, y):
    c = rng.standard_normal(y.shape)
    return (c + 1j * rng.standard_normal(y.shape) if y.dtype.kind == "c" else c).astype(y.dtype)


def _step(op, args, kwargs, leaves, cots, outs):
    """A training step over externals: y = op(...), (y * cotangent).sum().backward(), return y."""
    pos = dict(leaves)

    def step():
        for leaf in pos.values():
            leaf.grad = None
        full = [pos[i] if i in pos else (dt.tensor(a) if isinstance(a, np.ndarray) else a) for i, a in enumerate(args)]
        ys = _as_tuple(op(*full, **kwargs))
        loss = None
        for k in outs:  # a complex output enters the loss through Re(y * cotangent)
            term = ys[k] * cots[k]
            term = (dt.real(term) if term.dtype.is_complex else term).sum()
            loss = term if loss is None else loss + term
        loss.backward()
        return tuple(y.detach() for y in ys)

    return step


GRADED = [n for n in SAMPLED if OPS[n].differentiable]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name", GRADED)
def test_compiled_gradients_equal_eager(name, dtype):
    if name in SKIP or name in NO_GRAD_CHECK:
        pytest.skip(SKIP.get(name) or NO_GRAD_CHECK[name])
    op = OPS[name]
    checked = 0
    for n, (args, kwargs) in enumerate(_cases(op, dtype)):
        positions = _grad_positions(op, args)
        if not positions:
            continue
        with dt.no_grad():
            probe = _as_tuple(op(*[dt.tensor(a) if isinstance(a, np.ndarray) else a for a in args], **kwargs))
        outs = [k for k in op.diff_outputs if probe[k].dtype.is_floating_point or probe[k].dtype.is_complex]
        if not outs:
            continue
        rng = np.random.default_rng(n)
        cots = {k: dt.tensor(_cotangent(rng, probe[k].numpy())) for k in outs}
        leaves = [(i, dt.tensor(args[i], requires_grad=True)) for i in positions]
        g = dt.compile(_step(op, args, kwargs, leaves, cots, outs))
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)
            g()  # the capture (eager)
            with dt.no_grad():
                for i, leaf in leaves:
                    leaf.copy_(dt.tensor(_fresh(args[i])))
            before = dt.compiler.stats()
            got = g()  # a replay on the new leaf values
            _check_replayed(before, name)
        got_grads = [leaf.grad.numpy() for _, leaf in leaves]
        ref_leaves = [(i, dt.tensor(_fresh(args[i]), requires_grad=True)) for i in positions]
        ref = _step(op, args, kwargs, ref_leaves, cots, outs)()
        msg = f"{name} {np.dtype(dtype).name} sample {n}"
        fused = _fused(g)
        for a, b in zip(got, ref):
            _assert_same(a.numpy(), b.numpy(), fused, msg)
        for (i, leaf), have in zip(ref_leaves, got_grads):
            _assert_same(have, leaf.grad.numpy(), fused, f"{msg}: grad of argument {i}")
        checked += 1
    if not checked:
        pytest.skip(f"{name}: no sample with a float or complex input and output to differentiate")
