"""The cuda backend's registrations (devtensor/backends/cuda/ops.py): our CUDA C kernels for float32
(float16 through float32) in the specialised tier, CuPy for every dtype in the portable tier; and the
device-side index checks (out-of-range indices reported at the next synchronisation).

Three kinds of tests:
  * without a GPU (run everywhere): the cuda table is complete and inspecting it does not import
    cupy; the registration adapters' argument handling, run with numpy standing in for cupy and a
    recording stand-in for the launch wrappers (kernels.py); the CuPy-path functions (`*_xp`),
    written against an array namespace, run with numpy against the references;
  * `cuda`-marked (skipped with the reason where no GPU is usable): the generated op suite on cuda
    against cpu, outputs and gradients (float32 with TF32 off: relative error <= 1e-5 per op);
    matmul views / batches / TF32; MLP and CNN training parity (10 steps, losses within 1e-4);
    DEVTENSOR_SYNC=1 naming the op whose kernel failed;
  * ci/kernel_emulator/run.py runs this module with a stand-in cupy whose kernels run in a CPU
    emulator of our CUDA C, so the `cuda` tests also run, end to end, on CI machines without a GPU.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import devtensor as dt
import devtensor.backends.cuda as dtcuda
from devtensor import backends
from devtensor.backends.cuda import kernels as real_kernels
from devtensor.backends.cuda import ops as cops
from devtensor.dispatch import OPS, set_sync_debug
from devtensor.ops import reference as R

from test_ops import TESTED

ROOT = Path(__file__).resolve().parents[1]
RNG = np.random.default_rng(20261122)
OUR_OPS = ("matmul", "conv2d", "conv2d_backward_input", "conv2d_backward_weight", "max_pool2d",
           "max_pool2d_backward", "avg_pool2d", "avg_pool2d_backward", "softmax", "log_softmax",
           "cross_entropy_rows", "cross_entropy_mean", "cross_entropy_rows_backward", "sum", "mean", "amax", "amin", "argmax", "argmin",
           "max_dim", "min_dim", "adam_step_", "sgd_step_", "rmsprop_step_", "adagrad_step_", "adadelta_step_",
           "adamax_step_", "nadam_step_", "radam_step_", "rprop_step_", "asgd_step_")


def _emulated():
    return str(getattr(sys.modules.get("cupy"), "__version__", "")).endswith("kernel-emulator")


# ================================================================================================
# without a GPU: the table
def test_every_op_has_a_cuda_kernel_without_importing_cupy():
    code = ("import sys, devtensor; from devtensor.dispatch import OPS; "
            "print(sorted(n for n, o in OPS.items() if 'cuda' not in o.kernels and o.composite is None)); "
            "print('cupy' in sys.modules)")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(ROOT)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=str(ROOT), env=env,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[:2] == ["[]", "False"], r.stdout + r.stderr


F32, F16 = np.dtype(np.float32), np.dtype(np.float16)
HALF_OPS = ("conv2d", "conv2d_backward_input", "conv2d_backward_weight", "max_pool2d", "max_pool2d_backward",
            "avg_pool2d", "avg_pool2d_backward", "softmax", "log_softmax", "cross_entropy_rows",
            "cross_entropy_mean", "cross_entropy_rows_backward")


def test_our_kernels_are_the_specialised_tier_of_the_cuda_table():
    cuda = dtcuda.cuda
    for name in OUR_OPS:
        tiers = cuda.tiers(name)
        assert tiers[-1][0] == "portable" and tiers[-1][1] is None, f"{name}: no CuPy path for every dtype"
        spec = {d: fn for t, ds, fn in tiers if t == "specialised" for d in ds}
        if name == "rmsprop_step_":  # no CUDA C kernel: CuPy only
            assert not spec and tiers[0][2].__module__ == cops.__name__
            continue
        assert spec[F32].__module__ == cops.__name__, f"{name}: float32 is served by {spec[F32]}"
        assert set(spec) == ({F32, F16} if name in HALF_OPS else {F32}), f"{name}: {sorted(map(str, spec))}"
        if name in HALF_OPS:
            assert spec[F16].__name__ == spec[F32].__name__ + "_via_f32"
        assert cuda.serving(name, "float64")[0] == "portable" and cuda.serving(name, "float32")[0] == "specialised"
    # everything else on cuda is CuPy through the shared array-API table (or the few cupy kernels in
    # backends/cuda/__init__.py): one registration for every dtype, stored as the function itself
    assert OPS["exp"].kernels["cuda"].__module__ == "devtensor.backends.array_api_kernels"
    assert cuda.tiers("exp") == [("portable", None, OPS["exp"].kernels["cuda"])]


def test_one_path_per_tier_and_no_dtype_branches_in_the_adapters():
    """Each (op, tier, dtype) is served by one function, and the adapters do not look at dtypes
    themselves (the table does): no `.dtype ==` tests in backends/cuda/ops.py's adapters."""
    import inspect

    for name in dtcuda.cuda.op_names():
        seen = set()
        for tier, dtypes, _ in dtcuda.cuda.tiers(name):
            for d in (dtypes or (None,)):
                assert (tier, d) not in seen, f"{name}: two {tier} registrations for {d}"
                seen.add((tier, d))
    src = inspect.getsource(cops)
    assert "_is_f32" not in src and "_is_half" not in src
    assert not re.search(r"\.dtype\s*[!=]=\s*np\.float", src)


def test_tf32_flag_defaults_off_like_pytorch():
    assert dt.backends.cuda.matmul.allow_tf32 is False
    assert dtcuda.matmul is cops._matmul_flags


# ================================================================================================
# without a GPU: the adapters, with numpy as "cupy" and a recording stand-in for kernels.py
def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


class FakeKernels:
    """kernels.py's functions, computed with numpy; every call is recorded with its arguments."""

    def __init__(self):
        self.calls = []

    def _rec(self, name, **kw):
        self.calls.append((name, kw))

    def sgemm(self, a, b, trans_a=False, trans_b=False, *, out=None, alpha=1.0, beta=0.0, allow_tf32=False):
        assert a.dtype == np.float32 and b.dtype == np.float32
        assert a.ndim in (2, 3) and b.ndim in (2, 3), (a.shape, b.shape)
        if a.ndim == 3 and b.ndim == 3:
            assert a.shape[0] == b.shape[0] or 1 in (a.shape[0], b.shape[0])
        self._rec("sgemm", a=a, b=b, allow_tf32=allow_tf32)
        oa = np.swapaxes(a, -1, -2) if trans_a else a
        ob = np.swapaxes(b, -1, -2) if trans_b else b
        return np.matmul(oa, ob).astype(np.float32)

    def conv2d_forward(self, x, w, bias=None, stride=1, padding=0, dilation=1, groups=1):
        self._rec("conv2d_forward", x=x, w=w, bias=bias, stride=stride, padding=padding, dilation=dilation,
                  groups=groups)
        return R.conv2d(x, w, bias, _pair(stride), _pair(padding), _pair(dilation), groups).astype(np.float32)

    def conv2d_backward_input(self, dy, w, input_shape, stride=1, padding=0, dilation=1, groups=1):
        self._rec("conv2d_backward_input", input_shape=input_shape)
        return cops.conv2d_backward_input_xp(np, dy, w, input_shape, stride, padding, dilation, groups)

    def conv2d_backward_weight(self, dy, x, weight_shape, stride=1, padding=0, dilation=1, groups=1):
        self._rec("conv2d_backward_weight", weight_shape=weight_shape)
        return cops.conv2d_backward_weight_xp(np, dy, x, weight_shape, stride, padding, dilation, groups)

    def reduce(self, x, op, outer, reduce, inner=1, correction=1.0):
        assert x.dtype == np.float32 and x.flags.c_contiguous and x.size == outer * reduce * inner
        self._rec("reduce", x=x, op=op, dims=(outer, reduce, inner))
        v = x.reshape(outer, reduce, inner)
        fn = {"sum": np.sum, "mean": np.mean, "max": np.max, "min": np.min, "argmax": np.argmax,
              "argmin": np.argmin}[op]
        r = fn(v, axis=1)
        return r.astype(np.int64 if op.startswith("arg") else np.float32)

    def softmax(self, x, log=False):
        assert x.ndim == 2 and x.flags.c_contiguous and x.dtype == np.float32
        self._rec("softmax", x=x, log=log)
        return (R.log_softmax if log else R.softmax)(x, 1).astype(np.float32)

    def cross_entropy_forward(self, logits, target, weight=None, ignore_index=-100, label_smoothing=0.0):
        assert target.dtype == np.int64 and weight is None and isinstance(ignore_index, int)
        self._rec("cross_entropy_forward", ignore_index=ignore_index, label_smoothing=label_smoothing)
        loss, lse = R.cross_entropy_rows(logits, target, ignore_index, label_smoothing)
        return loss, (target != ignore_index).astype(np.float32), lse  # the row weights: 0 where ignored

    def cross_entropy_backward(self, logits, target, lse, grad, weight=None, ignore_index=-100, label_smoothing=0.0):
        assert grad.dtype == np.float32 and lse.dtype == np.float32 and target.dtype == np.int64
        self._rec("cross_entropy_backward", grad=grad)
        return cops.cross_entropy_rows_backward_xp(np, grad, logits, lse, target, ignore_index, label_smoothing)

    def max_pool2d_forward(self, x, kernel, stride, padding, dilation, out_size):
        self._rec("max_pool2d_forward", out_size=out_size)
        for ceil in (False, True):
            y, idx = R.max_pool2d(x, _pair(kernel), _pair(stride), _pair(padding), _pair(dilation), ceil)
            if y.shape[2:] == tuple(out_size):
                return y, idx
        raise AssertionError(f"output size {out_size} matches no ceil_mode")

    def max_pool2d_backward(self, dy, indices, input_shape):
        self._rec("max_pool2d_backward", input_shape=input_shape)
        return cops.max_pool2d_backward_xp(np, dy, indices, input_shape)

    def avg_pool2d_forward(self, x, kernel, stride, padding, out_size, count_include_pad=True, divisor_override=None):
        self._rec("avg_pool2d_forward", out_size=out_size)
        for ceil in (False, True):
            y = R.avg_pool2d(x, _pair(kernel), _pair(stride), _pair(padding), ceil, count_include_pad,
                             divisor_override)
            if y.shape[2:] == tuple(out_size):
                return y
        raise AssertionError(f"output size {out_size} matches no ceil_mode")

    def avg_pool2d_backward(self, dy, input_shape, kernel, stride, padding, count_include_pad=True,
                            divisor_override=None):
        self._rec("avg_pool2d_backward", input_shape=input_shape)
        return cops.avg_pool2d_backward_xp(np, dy, kernel, stride, padding, False, count_include_pad,
                                           divisor_override, input_shape)

    def adam_step(self, param, grad, exp_avg, exp_avg_sq, *, step, lr, beta1=0.9, beta2=0.999, eps=1e-8,
                  weight_decay=0.0, decoupled=False, amsgrad=False, max_exp_avg_sq=None, maximize=False):
        assert all(a.flags.c_contiguous and a.dtype == np.float32 for a in (param, grad, exp_avg, exp_avg_sq))
        self._rec("adam_step", step=step)
        return cops.adam_step_xp(np, param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, lr, beta1, beta2, eps,
                                 weight_decay, decoupled, step, amsgrad, maximize)

    def sgd_step(self, param, grad, momentum_buffer=None, *, lr, momentum=0.0, dampening=0.0, weight_decay=0.0,
                 nesterov=False, maximize=False, first_step=False):
        self._rec("sgd_step", momentum=momentum)
        return cops.sgd_step_xp(np, param, grad, momentum_buffer, lr, momentum, dampening, weight_decay, nesterov,
                                maximize, first_step)

    def optim_step(self, op, param, grad, state, scalars, flags):
        # the cpu backend's numba loops take the same kernel scalars and flags as dt_optim_step<Op>
        from devtensor.backends.cpu import optim_steps

        assert all(a.flags.c_contiguous and a.dtype == np.float32 for a in (param, grad, *state))
        assert all(isinstance(v, np.float32) for v in scalars) and len(scalars) <= 12
        self._rec("optim_step", op=op)
        optim_steps.run_step(op, param.reshape(-1), grad.reshape(-1), [a.reshape(-1) for a in state], scalars,
                             flags)
        return param

    # the device error record: kernels.check_index / the cross-entropy kernels, computed with numpy
    err = None

    def _report(self, op, dim, value, bound):
        if self.err is None:
            self.err = (op, dim, int(value), int(bound))  # the first one wins

    def check_index(self, index, bound, *, op, dim=-1, allow_negative=True, ignore=None):
        assert index.dtype.kind in "iu" and isinstance(op, str) and isinstance(dim, int)
        self._rec("check_index", op=op, dim=dim, bound=bound, ignore=ignore, allow_negative=allow_negative)
        v = np.asarray(index).astype(np.int64)
        ok = (v >= (-bound if allow_negative else 0)) & (v < bound)
        if ignore is not None:
            ok |= v == ignore
        if not ok.all():
            self._report(op, dim, v[~ok].reshape(-1)[0], bound)
        return np.where(ok, v, 0)

    def cross_entropy_forward(self, logits, target, weight=None, ignore_index=-100, label_smoothing=0.0,
                              _real=cross_entropy_forward):
        bad = (target != ignore_index) & ((target < 0) | (target >= logits.shape[1]))
        if bad.any():  # as the kernel: reported, never read through, a nan row
            self._report("cross_entropy", 1, target[bad][0], logits.shape[1])
        loss, roww, lse = _real(self, logits, np.where(bad, 0, target), weight, ignore_index, label_smoothing)
        return np.where(bad, np.nan, loss).astype(loss.dtype), np.where(bad, np.nan, roww).astype(roww.dtype), lse


@pytest.fixture
def fake(monkeypatch):
    """Run the cuda table on numpy arrays: numpy stands in for cupy (in ops.py and in the array-API
    kernels bound to the lazy cupy: the whole portable tier), FakeKernels for kernels.py."""
    fk = FakeKernels()
    monkeypatch.setattr(cops, "K", fk)
    monkeypatch.setattr(cops, "_cp", lambda: np)
    monkeypatch.setattr(dtcuda.cupy_lazy, "module", np)
    return fk


def _copy(v):
    return np.array(v, copy=True) if isinstance(v, np.ndarray) else v


def _cmp(got, want, rtol=1e-5):
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, f"shape {got.shape} != {want.shape}"
    if want.dtype.kind == "f":
        scale = max(1.0, float(np.nanmax(np.abs(want), initial=0.0)))
        np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * scale, equal_nan=True)
    else:
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("name", [n for n in TESTED if n in OUR_OPS])
def test_adapters_on_the_op_samples(fake, name):  # float32: specialised, float64: portable
    """Each registered cuda kernel, fed exactly what dispatch feeds it, matches the op's reference."""
    op = OPS[name]
    fn = op.kernels["cuda"]
    for dtype in (np.float32, np.float64):
        for args, kwargs in op.samples(np.float64):
            args = tuple(a.astype(dtype) if isinstance(a, np.ndarray) and a.dtype.kind == "f" else a for a in args)
            want = op.ref(*[_copy(a) for a in args], **kwargs)
            got = fn(*[_copy(a) for a in args], **kwargs)
            got, want = (got, want) if op.nout > 1 else ((got,), (want,))
            for g, w in zip(got, want):
                _cmp(g, w, 1e-5 if dtype == np.float32 else 1e-10)


@pytest.mark.parametrize("name", [n for n in TESTED if n in HALF_OPS])
def test_float16_computes_in_float32_and_casts_back(fake, name):
    """The float16 registrations are the float32 adapters on upcast inputs: exactly the float32
    results (integer outputs such as pooling indices untouched), cast back to float16."""
    op = OPS[name]
    fn = op.kernels["cuda"]
    for args, kwargs in op.samples(np.float64):
        a16 = tuple(a.astype(np.float16) if isinstance(a, np.ndarray) and a.dtype.kind == "f" else a for a in args)
        a32 = tuple(a.astype(np.float32) if isinstance(a, np.ndarray) and a.dtype.kind == "f" else a for a in a16)
        fake.calls.clear()
        got = fn(*[_copy(a) for a in a16], **kwargs)
        assert fake.calls and all(c[0] != "check_index" for c in fake.calls), "float16 must reach our kernels"
        want = fn(*[_copy(a) for a in a32], **kwargs)
        got, want = (got, want) if op.nout > 1 else ((got,), (want,))
        for g, w in zip(got, want):
            w = np.asarray(w)
            assert g.dtype == (np.float16 if w.dtype.kind == "f" else w.dtype)
            np.testing.assert_array_equal(np.asarray(g), w.astype(g.dtype))


def test_float32_goes_to_our_kernels_float64_does_not(fake):
    x = RNG.standard_normal((3, 4, 5))
    OPS["softmax"].kernels["cuda"](x.astype(np.float32), dim=1)
    OPS["sum"].kernels["cuda"](x.astype(np.float32), dim=(0, 2), keepdim=False)
    assert [c[0] for c in fake.calls] == ["softmax", "reduce"]
    fake.calls.clear()
    OPS["softmax"].kernels["cuda"](x, dim=1)
    OPS["sum"].kernels["cuda"](x, dim=(0, 2), keepdim=False)
    OPS["matmul"].kernels["cuda"](x, x.transpose(0, 2, 1))
    assert fake.calls == []


def test_matmul_reads_transposed_views_in_place_and_honours_tf32(fake, monkeypatch):
    y = RNG.standard_normal((2, 3, 7, 5)).astype(np.float32)
    b = RNG.standard_normal((7, 4)).astype(np.float32)
    a = y.swapaxes(-1, -2)  # (2, 3, 5, 7): a transposed view
    got = OPS["matmul"].kernels["cuda"](a, b)
    _cmp(got, np.matmul(a, b))
    (name, kw), = fake.calls
    assert kw["a"].shape == (6, 5, 7) and np.shares_memory(kw["a"], y), "batch dims merged without a copy"
    assert kw["b"].ndim == 2 and kw["allow_tf32"] is False
    monkeypatch.setattr(dtcuda.matmul, "allow_tf32", True)
    OPS["matmul"].kernels["cuda"](a, b)
    assert fake.calls[-1][1]["allow_tf32"] is True


@pytest.mark.parametrize("sa,sb", [((3, 4), (4, 5)), ((2, 3, 4), (4, 2)), ((2, 1, 3, 4), (5, 4, 2)),
                                   ((1, 1, 3, 4), (2, 4, 5)), ((6, 3, 4), (1, 4, 5)), ((2, 0, 4), (4, 3)),
                                   ((3, 0), (0, 2)), ((4, 1, 3, 4), (1, 5, 4, 2))])
def test_matmul_batches_broadcast(fake, sa, sb):
    a = RNG.standard_normal(sa).astype(np.float32)
    b = RNG.standard_normal(sb).astype(np.float32)
    _cmp(OPS["matmul"].kernels["cuda"](a, b), np.matmul(a, b))


def _layouts(shape):
    """Contiguous, permuted (a transposed view of a contiguous array), strided and broadcast views."""
    base = RNG.standard_normal(shape).astype(np.float32)
    yield "contiguous", base
    nd = len(shape)
    if nd >= 2:
        perm = tuple(reversed(range(nd)))
        yield "reversed", np.ascontiguousarray(base.transpose(perm)).transpose(perm)
        yield "strided", np.ascontiguousarray(np.repeat(base, 2, axis=-1))[..., ::2]
    if nd >= 3:
        p = (1, 0) + tuple(range(2, nd))
        yield "swap01", np.ascontiguousarray(base.transpose(p)).transpose(p)


@pytest.mark.parametrize("shape", [(), (5,), (3, 4), (3, 1, 5), (2, 3, 4, 5), (1, 6, 1, 2)])
def test_reductions_over_every_axis_set_and_layout(fake, shape):
    import itertools

    nd = len(shape)
    dimsets = [None] + [c for r in range(1, nd + 1) for c in itertools.combinations(range(nd), r)]
    for label, x in _layouts(shape):
        for dims in dimsets:
            for keepdim in (False, True):
                for name, ref in (("sum", np.sum), ("mean", np.mean), ("amax", np.max), ("amin", np.min)):
                    got = OPS[name].kernels["cuda"](x, dim=dims, keepdim=keepdim)
                    want = ref(x.astype(np.float64), axis=dims, keepdims=keepdim)
                    try:
                        _cmp(got, want, 1e-5)
                    except AssertionError as e:
                        raise AssertionError(f"{name} {label} {shape} dims={dims} keepdim={keepdim}: {e}")
        for d in range(nd):
            for name, ref in (("argmax", np.argmax), ("argmin", np.argmin)):
                _cmp(OPS[name].kernels["cuda"](x, dim=d, keepdim=False), ref(x, axis=d))
                _cmp(OPS[name].kernels["cuda"](x, dim=d, keepdim=True), ref(x, axis=d, keepdims=True))
            v, i = OPS["max_dim"].kernels["cuda"](x, dim=d, keepdim=False)
            _cmp(v, np.max(x, axis=d))
            _cmp(i, np.argmax(x, axis=d))


def test_reduction_of_a_permuted_array_reads_it_in_place(fake):
    base = RNG.standard_normal((4, 5, 6)).astype(np.float32)
    x = base.transpose(2, 0, 1)  # reduce over x's dim 0 = base's last axis: no copy needed
    OPS["sum"].kernels["cuda"](x, dim=(0,), keepdim=False)
    (_, kw), = fake.calls
    assert np.shares_memory(kw["x"], base) and kw["dims"] == (20, 6, 1)
    fake.calls.clear()
    OPS["sum"].kernels["cuda"](base, dim=(0, 2), keepdim=False)  # not adjacent: one copy, reduced axes last
    (_, kw), = fake.calls
    assert not np.shares_memory(kw["x"], base) and kw["dims"] == (5, 24, 1)


def test_softmax_moves_the_dim_last_and_keeps_the_layout(fake):
    x = RNG.standard_normal((3, 4, 5)).astype(np.float32)
    for dim in range(3):
        got = OPS["softmax"].kernels["cuda"](x, dim=dim)
        _cmp(got, R.softmax(x, dim))
        assert fake.calls[-1][1]["x"].shape == (60 // x.shape[dim], x.shape[dim])
    _cmp(OPS["log_softmax"].kernels["cuda"](np.float32(2.5) * np.ones((), np.float32), dim=0), 0.0)
    assert OPS["softmax"].kernels["cuda"](np.zeros((2, 0, 3), np.float32), dim=1).shape == (2, 0, 3)


def test_cross_entropy_contract_loss_and_lse(fake):
    logits = RNG.standard_normal((5, 7)).astype(np.float32)
    t = np.array([0, 6, -100, 3, 3], dtype=np.int32)  # a non-int64 target is converted
    loss, lse = OPS["cross_entropy_rows"].kernels["cuda"](logits, t, ignore_index=-100, label_smoothing=0.1)
    wl, wlse = R.cross_entropy_rows(logits, t.astype(np.int64), -100, 0.1)
    _cmp(loss, wl)
    _cmp(lse, wlse)
    assert loss[2] == 0
    g = RNG.standard_normal(5).astype(np.float32)
    d = OPS["cross_entropy_rows_backward"].kernels["cuda"](g, logits, lse, t, ignore_index=-100,
                                                          label_smoothing=0.1)
    assert d.shape == logits.shape and np.all(d[2] == 0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cross_entropy_mean_counts_rows_not_ignored_and_takes_one_gradient_for_all(fake, dtype):
    logits = RNG.standard_normal((5, 7)).astype(dtype)
    t = np.array([0, 6, -100, 3, -100], dtype=np.int64)
    mean, lse, count = OPS["cross_entropy_mean"].kernels["cuda"](logits, t, ignore_index=-100, label_smoothing=0.0)
    rows, _ = R.cross_entropy_rows(logits, t, -100, 0.0)
    assert count.shape == () and count == 3 and mean.shape == () and mean.dtype == dtype
    _cmp(mean, rows.sum() / 3)
    g = np.asarray(0.5 / 3, dtype=dtype)  # the mean's backward: g / count, one value for every row
    d = OPS["cross_entropy_rows_backward"].kernels["cuda"](g, logits, lse, t, ignore_index=-100, label_smoothing=0.0)
    want = OPS["cross_entropy_rows_backward"].kernels["cpu"](np.full(5, g), logits, lse, t, ignore_index=-100,
                                                             label_smoothing=0.0)
    _cmp(d, want)
    with np.errstate(invalid="ignore"):  # numpy warns on 0/0, cupy does not
        nan, _, none = OPS["cross_entropy_mean"].kernels["cuda"](logits[:2], np.array([-100, -100]),
                                                                ignore_index=-100, label_smoothing=0.0)
    assert none == 0 and np.isnan(nan)  # every row ignored: nan, as PyTorch


@pytest.mark.parametrize("H,W,k,s,p,d", [(7, 6, 2, 2, 0, 1), (7, 6, 3, 2, 1, 1), (5, 5, 3, 3, 1, 1),
                                         (9, 8, 3, 2, 1, 2), (4, 4, 2, 3, 1, 1), (6, 7, 3, 1, 0, 2),
                                         (1, 1, 1, 1, 0, 1), (10, 3, 4, 3, 2, 1)])
def test_pool_output_size_matches_the_reference_and_the_wrapper(H, W, k, s, p, d):
    for ceil in (False, True):
        want = (R._pool_out(H, k, s, p, d, ceil), R._pool_out(W, k, s, p, d, ceil))
        assert cops.pool_out_size((1, 1, H, W), (k, k), (s, s), (p, p), (d, d), ceil) == want
        assert real_kernels.pool2d_output_size(H, W, k, s, p, d, ceil) == want


def test_optimizer_steps_update_in_place_and_refuse_copies(fake):
    p = np.ones(10, np.float32)
    g = np.full(10, 0.5, np.float32)
    m, v = np.zeros(10, np.float32), np.zeros(10, np.float32)
    out = OPS["adam_step_"].kernels["cuda"](p, g, m, v, None, lr=0.1, beta1=0.9, beta2=0.999, eps=1e-8,
                                            weight_decay=0.0, decoupled=False, step=1, amsgrad=False,
                                            maximize=False)
    assert out is p and np.allclose(p, 0.9) and np.all(m != 0)
    with pytest.raises(ValueError, match="C-contiguous"):
        OPS["sgd_step_"].kernels["cuda"](np.ones((4, 6), np.float32).T, np.ones((6, 4), np.float32), None, lr=0.1,
                                         momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False,
                                         maximize=False, first_step=False)


# ================================================================================================
# without a GPU: the CuPy-path functions, with numpy as the array namespace
def _conv_samples():
    for args, kw in OPS["conv2d"].samples(np.float64):
        yield args, kw
    r = np.random.default_rng(3)
    yield (r.standard_normal((2, 6, 9, 8)), r.standard_normal((6, 2, 3, 2)), None), dict(
        stride=(2, 3), padding=(2, 1), dilation=(1, 2), groups=3)


def _inner(a, b):
    return float(np.sum(np.asarray(a, np.float64) * np.asarray(b, np.float64)))


def test_conv2d_xp_forward_and_adjoint_backwards():
    for (x, w, b), kw in _conv_samples():
        y = cops.conv2d_xp(np, x, w, b, **kw)
        np.testing.assert_allclose(y, R.conv2d(x, w, b, **kw), rtol=1e-10, atol=1e-10)
        gy = np.random.default_rng(4).standard_normal(y.shape)
        y0 = cops.conv2d_xp(np, x, w, None, **kw)  # linear in x and in w: <conv(x, w), gy> = <x, gx> = <w, gw>
        gx = cops.conv2d_backward_input_xp(np, gy, w, x.shape, **kw)
        gw = cops.conv2d_backward_weight_xp(np, gy, x, w.shape, **kw)
        assert gx.shape == x.shape and gw.shape == w.shape
        assert np.isclose(_inner(y0, gy), _inner(x, gx), rtol=1e-10)
        assert np.isclose(_inner(y0, gy), _inner(w, gw), rtol=1e-10)


def _pool_cases():
    r = np.random.default_rng(5)
    x = r.permutation(2 * 3 * 9 * 8).reshape(2, 3, 9, 8) / 10.0
    for k, s, p, d in ((2, 2, 0, 1), (3, 2, 1, 1), (3, 1, 1, 2), (2, 3, 1, 1), (3, 3, 1, 1)):
        for ceil in (False, True):
            yield x, (k, k), (s, s), (p, p), (d, d), ceil


def test_max_pool2d_xp_matches_reference_and_backward_scatters():
    for x, k, s, p, d, ceil in _pool_cases():
        y, idx = cops.max_pool2d_xp(np, x, k, s, p, d, ceil)
        wy, widx = R.max_pool2d(x, k, s, p, d, ceil)
        np.testing.assert_array_equal(y, wy)
        np.testing.assert_array_equal(idx, widx)
        gy = np.random.default_rng(6).standard_normal(y.shape)
        gx = cops.max_pool2d_backward_xp(np, gy, idx, x.shape)
        want = np.zeros(x.shape).reshape(6, -1)
        for pl in range(6):
            np.add.at(want[pl], idx.reshape(6, -1)[pl], gy.reshape(6, -1)[pl])
        np.testing.assert_allclose(gx, want.reshape(x.shape))


def test_max_pool2d_xp_nan_wins_first_as_the_kernel():
    x = np.array([[[[1.0, np.nan], [np.nan, 5.0]]]])
    y, idx = cops.max_pool2d_xp(np, x, (2, 2), (2, 2), (0, 0), (1, 1), False)
    assert np.isnan(y[0, 0, 0, 0]) and idx[0, 0, 0, 0] == 1


def test_avg_pool2d_xp_matches_reference_and_adjoint():
    for x, k, s, p, _, ceil in _pool_cases():
        for cip, div in ((True, None), (False, None), (True, 3)):
            y = cops.avg_pool2d_xp(np, x, k, s, p, ceil, cip, div)
            np.testing.assert_allclose(y, R.avg_pool2d(x, k, s, p, ceil, cip, div), rtol=1e-12)
            gy = np.random.default_rng(7).standard_normal(y.shape)
            gx = cops.avg_pool2d_backward_xp(np, gy, k, s, p, ceil, cip, div, x.shape)
            assert np.isclose(_inner(y, gy), _inner(x, gx), rtol=1e-10)


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
def test_softmax_rows_xp():
    x = np.random.default_rng(8).standard_normal((6, 9)) * 30
    np.testing.assert_allclose(cops.softmax_rows_xp(np, x, False), R.softmax(x, 1), rtol=1e-12)
    np.testing.assert_allclose(cops.softmax_rows_xp(np, x, True), R.log_softmax(x, 1), rtol=1e-12)
    special = np.array([[-np.inf, -np.inf], [0.0, -np.inf], [1000.0, -1000.0]])
    got = cops.softmax_rows_xp(np, special, False)
    assert np.all(np.isnan(got[0])) and np.allclose(got[1:], [[1, 0], [1, 0]])


def test_cross_entropy_xp_forward_and_finite_difference_backward():
    r = np.random.default_rng(9)
    logits = r.standard_normal((5, 4))
    t = np.array([1, -1, 3, 0, 2])
    for eps in (0.0, 0.2):
        loss, lse = cops.cross_entropy_rows_xp(np, logits, t, -1, eps)
        wl, wlse = R.cross_entropy_rows(logits, t, -1, eps)
        np.testing.assert_allclose(loss, wl, rtol=1e-12)
        np.testing.assert_allclose(lse, wlse, rtol=1e-12)
        g = r.standard_normal(5)
        d = cops.cross_entropy_rows_backward_xp(np, g, logits, lse, t, -1, eps)
        num = np.zeros_like(logits)
        for i in range(5):
            for c in range(4):
                e = np.zeros_like(logits)
                e[i, c] = 1e-6
                lp = cops.cross_entropy_rows_xp(np, logits + e, t, -1, eps)[0]
                lm = cops.cross_entropy_rows_xp(np, logits - e, t, -1, eps)[0]
                num[i, c] = np.dot(g, lp - lm) / 2e-6
        np.testing.assert_allclose(d, num, atol=1e-7)
    loss, _ = cops.cross_entropy_rows_xp(np, logits, np.array([0, 9, 1, 1, 1]), -100, 0.0)
    assert np.isnan(loss[1]) and np.isfinite(loss[0])  # a bad target poisons its row, as the kernel does


@pytest.mark.parametrize("name", ["adam_step_", "sgd_step_", "rmsprop_step_"])
def test_optimizer_step_xp_matches_the_reference(name):
    op = OPS[name]
    fn = {"adam_step_": cops.adam_step_xp, "sgd_step_": cops.sgd_step_xp, "rmsprop_step_": cops.rmsprop_step_xp}[name]
    for args, kw in op.samples(np.float64):
        want = op.ref(*[_copy(a) for a in args], **kw)
        arrays = [_copy(a) for a in args]
        fn(np, *arrays, **kw)
        np.testing.assert_allclose(arrays[0], want, rtol=1e-12)


def test_sync_debug_names_the_op_whose_kernel_failed():
    """DEVTENSOR_SYNC=1 (set_sync_debug): a device error surfacing at the sync after a kernel is
    reported with the op's name (shown with a backend whose synchronize fails; the cuda backend's
    synchronize is cupy.cuda.runtime.deviceSynchronize)."""
    class Failing(backends.Backend):
        def synchronize(self, device=None):
            raise RuntimeError("cudaErrorIllegalAddress: an illegal memory access was encountered")

    from devtensor import dispatch

    be = backends.register(Failing("syncfail"))
    be.kernel("exp")(np.exp)
    old = dispatch._SYNC[0]
    set_sync_debug(False)
    try:
        x = dt.tensor([1.0]).to("syncfail")
        x.exp()  # no sync: nothing reported
        set_sync_debug(True)
        with pytest.raises(RuntimeError, match=r"exp: device error after this op's kernel \(DEVTENSOR_SYNC=1\).*"
                                               r"illegal memory access"):
            x.exp()
    finally:
        set_sync_debug(old)
        backends._REGISTRY.pop("syncfail", None)
        for op in OPS.values():
            op.kernels.pop("syncfail", None)


# ================================================================================================
# without a GPU: device-side index checks (FakeKernels records what kernels.check_index would)
def test_key_dims_follow_numpy_indexing_rules():
    i = np.array([0, 1])
    m = np.ones((2, 3), bool)
    assert cops.key_dims((i,), 3) == [0]
    assert cops.key_dims((slice(None), i), 3) == [None, 1]
    assert cops.key_dims((None, 1, i, Ellipsis), 4) == [None, None, 1, None]
    assert cops.key_dims((Ellipsis, i), 4) == [None, 3]
    assert cops.key_dims((i, Ellipsis, None, i, slice(None)), 5) == [0, None, None, 3, None]
    assert cops.key_dims((m, i), 3) == [None, 2]
    assert cops.key_dims((True, i), 2) == [None, 0]


def test_gather_scatter_and_indexing_check_their_indices_without_raising(fake):
    x = np.arange(12.0).reshape(3, 4)
    idx = np.array([[0, 5], [1, 2], [2, 3]])  # 5 is out of bounds for dim 1 (size 4)
    got = OPS["gather"].kernels["cuda"](x, idx, dim=1)
    np.testing.assert_array_equal(got, np.take_along_axis(x, np.where(idx == 5, 0, idx), 1))
    assert fake.err == ("gather", 1, 5, 4)
    fake.err = None
    OPS["gather"].kernels["cuda"](x, np.array([[-1]]), dim=1)  # negative: out of bounds, as in PyTorch
    assert fake.err == ("gather", 1, -1, 4)
    fake.err = None
    out = OPS["scatter_add"].kernels["cuda"](np.zeros((3, 4)), np.array([[7, 0]]), np.ones((1, 2)), dim=0)
    assert out.sum() == 2 and fake.err == ("scatter_add", 0, 7, 3)
    fake.err = None
    y = np.arange(24.0).reshape(2, 3, 4)
    key = (Ellipsis, np.array([3, -4, 4]))  # the last dim: 4 is out of bounds
    got = OPS["index"].kernels["cuda"](y, key, False)
    np.testing.assert_array_equal(got, y[..., [3, -4, 0]])
    assert fake.err == ("index", 2, 4, 4)
    fake.err = None
    got = OPS["index_put"].kernels["cuda"](y, np.float64(-1), (np.array([1, 2]),), False)  # 2 of 2 rows
    assert (got[1] == -1).all() and (got[0] == -1).all() and fake.err == ("index_put", 0, 2, 2)
    fake.err = None
    g = OPS["index_backward"].kernels["cuda"](np.ones(3), (2, 3, 4), (0, np.array([1, 9, 2]), 1), False)
    assert g.shape == (2, 3, 4) and g.sum() == 3 and fake.err == ("index", 1, 9, 3)
    fake.calls.clear()
    OPS["index"].kernels["cuda"](y, (0, slice(1, 2)), True)  # basic indexing: nothing to check
    assert fake.calls == []


def test_cross_entropy_targets_are_checked_on_both_tiers(fake):
    logits = RNG.standard_normal((4, 5))
    t = np.array([1, -100, 5, 0])
    for dtype in (np.float32, np.float64):
        fake.err = None
        fake.calls.clear()
        loss, _ = OPS["cross_entropy_rows"].kernels["cuda"](logits.astype(dtype), t, ignore_index=-100,
                                                            label_smoothing=0.0)
        assert np.isnan(loss[2]) and loss[1] == 0 and np.isfinite(loss[[0, 3]]).all()
        assert fake.err == ("cross_entropy", 1, 5, 5)
        if dtype == np.float64:  # the CuPy path: a checking kernel, the ignore_index kept
            (_, kw), = [c for c in fake.calls if c[0] == "check_index"]
            assert kw["ignore"] == -100 and kw["allow_negative"] is False and kw["bound"] == 5


def test_device_error_messages_and_op_ids_match_the_kernels():
    from devtensor.backends.cuda import kernel_build as kb

    assert real_kernels.device_error_message([1, 1, 12, 10]) == (
        "cross_entropy: target 12 is out of bounds for 10 classes (reported by the device at the next "
        "synchronisation)")
    assert real_kernels.device_error_message([2, 0, -9, 4]).startswith(
        "gather: index -9 is out of bounds for dimension 0 with size 4")
    src = (Path(kb.kernel_dir()) / "reduce.cu").read_text()
    (ce_id,) = re.findall(r"#define DT_ERR_OP_CROSS_ENTROPY (\d+)", src)
    assert real_kernels.DEVICE_ERROR_OPS[int(ce_id)] == "cross_entropy"
    assert real_kernels.take_device_error() is None or True  # (no record yet: nothing is read)


def test_sync_points_raise_the_device_error_once(monkeypatch):
    """synchronize() and every device-to-host copy (to_numpy: .item(), .cpu(), printing) read the
    record; shown with a stand-in cupy and a stand-in record."""
    import types

    pending = ["index: index 9 is out of bounds for dimension 0 with size 3 (reported by the device at the next "
               "synchronisation)"]
    monkeypatch.setattr(real_kernels, "take_device_error", lambda: pending.pop() if pending else None)
    fake_cupy = types.SimpleNamespace(asnumpy=np.asarray,
                                      cuda=types.SimpleNamespace(runtime=types.SimpleNamespace(
                                          deviceSynchronize=lambda: None)))
    monkeypatch.setitem(sys.modules, "cupy", fake_cupy)
    be = dtcuda.cuda
    with pytest.raises(RuntimeError, match=r"^index: index 9 is out of bounds.*next synchronisation"):
        be.to_numpy(np.ones(3))
    np.testing.assert_array_equal(be.to_numpy(np.ones(3)), np.ones(3))  # cleared: reported once
    pending.append("cross_entropy: target 12 is out of bounds for 10 classes (reported by the device at the next "
                   "synchronisation)")
    with pytest.raises(RuntimeError, match="target 12"):
        be.synchronize()
    be.synchronize()


# ================================================================================================
# on a GPU (or under ci/kernel_emulator): cuda against cpu
@pytest.fixture(scope="module")
def cuda_ok():
    ok, why = dt.backends.available().get("cuda", (False, "not registered"))
    if not ok:
        pytest.skip(f"cuda unavailable: {why}")
    old = dtcuda.matmul.allow_tf32
    dtcuda.matmul.allow_tf32 = False
    yield
    dtcuda.matmul.allow_tf32 = old


def _host(t):
    return np.asarray(t.detach().cpu()._data)


def _on(v, device, requires_grad=False):
    if not isinstance(v, np.ndarray):
        return v
    t = dt.tensor(np.array(v, copy=True), device=device)
    if requires_grad and v.dtype.kind in "fc":
        t.requires_grad_(True)
    return t


def _rel(tol_dtype):
    return 1e-5 if tol_dtype == np.float32 else 1e-10


def _run_both(op, args, kwargs, grads):
    """Forward (and, if grads, backward of a fixed random projection) on cpu and cuda."""
    res = {}
    for device in ("cpu", "cuda"):
        ins = [_on(a, device, requires_grad=grads) for a in args]
        out = op(*ins, **kwargs)
        outs = out if op.nout > 1 else (out,)
        g = []
        if grads:
            y = outs[0]
            r = np.random.default_rng(11)
            proj = r.standard_normal(tuple(y.shape)).astype(_host(y).dtype)
            if y.dtype.is_complex:  # a real loss of a complex output: Re(sum(y * proj))
                proj = (proj + 1j * r.standard_normal(tuple(y.shape))).astype(proj.dtype)
                (y * _on(proj, device)).real.sum().backward()
            else:
                (y * _on(proj, device)).sum().backward()
            g = [None if not isinstance(t, dt.Tensor) or t.grad is None else _host(t.grad) for t in ins]
        res[device] = ([_host(o) for o in outs], g, [_host(t) if isinstance(t, dt.Tensor) else None for t in ins])
    return res


# ops whose backward raises on purpose, as PyTorch's does (floor_divide has no derivative)
_BACKWARD_RAISES = {"floor_divide"}


@pytest.mark.cuda
@pytest.mark.parametrize("name", TESTED)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_op_suite_cuda_matches_cpu(cuda_ok, name, dtype):
    op = OPS[name]
    for i, (args, kwargs) in enumerate(op.samples(np.float64)):
        args = tuple(a.astype(dtype if a.dtype.kind == "f" else np.result_type(dtype, np.complex64))
                     if isinstance(a, np.ndarray) and a.dtype.kind in "fc" else a for a in args)
        grads = (op.differentiable and name not in _BACKWARD_RAISES
                 and any(isinstance(a, np.ndarray) and a.dtype.kind in "fc" for a in args))
        res = _run_both(op, args, kwargs, grads)
        (co, cg, cin), (go, gg, gin) = res["cpu"], res["cuda"]
        try:
            for c, g in zip(co, go):
                _cmp(g, c, _rel(dtype))
            for c, g in zip(cg, gg):
                assert (c is None) == (g is None)
                if c is not None:
                    _cmp(g, c, _rel(dtype))
            if name.endswith("_"):  # in-place ops: the updated state too
                for c, g in zip(cin, gin):
                    if c is not None:
                        _cmp(g, c, _rel(dtype))
        except AssertionError as e:
            raise AssertionError(f"{name} sample {i} ({[getattr(a, 'shape', a) for a in args]}, {kwargs}): {e}")


@pytest.mark.cuda
@pytest.mark.parametrize("case", ["T_a", "T_b", "batched_views", "broadcast4d", "odd", "empty_k"])
def test_matmul_on_cuda(cuda_ok, case):
    r = np.random.default_rng(12)
    f = lambda *s: r.standard_normal(s).astype(np.float32)  # noqa: E731
    if case == "T_a":
        a, b = dt.tensor(f(33, 17), device="cuda").mT, dt.tensor(f(33, 20), device="cuda")
    elif case == "T_b":
        a, b = dt.tensor(f(19, 40), device="cuda"), dt.tensor(f(23, 40), device="cuda").mT
    elif case == "batched_views":
        a, b = dt.tensor(f(3, 9, 14), device="cuda").mT, dt.tensor(f(3, 11, 9), device="cuda").mT
    elif case == "broadcast4d":
        a, b = dt.tensor(f(2, 1, 13, 6), device="cuda"), dt.tensor(f(3, 6, 5), device="cuda")
    elif case == "odd":
        a, b = dt.tensor(f(67, 129), device="cuda"), dt.tensor(f(129, 3), device="cuda")
    else:
        a, b = dt.tensor(f(4, 0), device="cuda"), dt.tensor(f(0, 6), device="cuda")
    want = _host(a).astype(np.float64) @ _host(b).astype(np.float64)
    got = _host(a @ b)
    k = a.shape[-1]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * max(1.0, np.sqrt(k)) * max(1.0, np.abs(want).max(
        initial=0)))


@pytest.mark.cuda
def test_matmul_tf32_flag_switches_the_kernel(cuda_ok, monkeypatch):
    a = np.random.default_rng(13).standard_normal((64, 96)).astype(np.float32)
    b = np.random.default_rng(14).standard_normal((96, 48)).astype(np.float32)
    want = a.astype(np.float64) @ b
    ta, tb = dt.tensor(a, device="cuda"), dt.tensor(b, device="cuda")
    exact = _host(ta @ tb)
    np.testing.assert_allclose(exact, want, atol=1e-4)
    monkeypatch.setattr(dtcuda.matmul, "allow_tf32", True)
    tf32 = _host(ta @ tb)
    np.testing.assert_allclose(tf32, want, atol=3e-3 * np.sqrt(96) * np.abs(want).max())
    if dt.cuda.get_device_capability()[0] >= 8:
        assert not np.array_equal(tf32, exact), "allow_tf32=True must select the TF32 tensor-core kernel"


@pytest.mark.cuda
def test_reductions_on_permuted_cuda_tensors(cuda_ok):
    x = np.random.default_rng(15).standard_normal((4, 5, 6)).astype(np.float32)
    t = dt.tensor(x, device="cuda").permute(2, 0, 1)
    xt = x.transpose(2, 0, 1)
    for dims in [None, 0, 1, 2, (0, 1), (0, 2), (1, 2)]:
        _cmp(_host(t.sum(dims)) if dims is not None else _host(t.sum()), np.sum(xt.astype(np.float64), axis=dims))
        _cmp(_host(t.amax(dims if dims is not None else ())), np.max(xt, axis=dims))
    _cmp(_host(t.argmax(1)), np.argmax(xt, axis=1))
    _cmp(_host(t.argmin()), np.argmin(xt))


# ---- training parity: same weights, 10 steps of SGD on cpu and on cuda ---------------------------------
def _train(device, params_np, step_fn, steps=10, lr=0.1):
    params = [dt.tensor(p, device=device, requires_grad=True) for p in params_np]
    losses, grads = [], []
    for _ in range(steps):
        loss = step_fn(params, device)
        loss.backward()
        losses.append(float(loss.item()))
        grads.append([_host(p.grad) for p in params])
        with dt.no_grad():
            for p in params:
                p -= lr * p.grad
                p.grad = None
    return losses, grads, [_host(p) for p in params]


def _compare_runs(cpu, cuda):
    (lc, gc, pc), (lg, gg, pg) = cpu, cuda
    np.testing.assert_allclose(lg, lc, rtol=1e-4)
    for s, (a, b) in enumerate(zip(gc, gg)):
        for i, (x, y) in enumerate(zip(a, b)):
            err = np.linalg.norm(y.astype(np.float64) - x) / max(np.linalg.norm(x), 1e-12)
            assert err <= 1e-4, f"step {s}, parameter {i}: relative gradient error {err:.2e}"
    for x, y in zip(pc, pg):
        np.testing.assert_allclose(y, x, rtol=1e-4, atol=1e-5)


@pytest.mark.cuda
def test_mlp_training_parity(cuda_ok):
    r = np.random.default_rng(16)
    X = r.standard_normal((64, 20)).astype(np.float32)
    Y = r.integers(0, 5, 64)
    params = [(r.standard_normal((32, 20)) * 0.3).astype(np.float32), np.zeros(32, np.float32),
              (r.standard_normal((5, 32)) * 0.3).astype(np.float32), np.zeros(5, np.float32)]
    F = dt.nn.functional

    def step(p, device):
        x, y = dt.tensor(X, device=device), dt.tensor(Y, device=device)
        h = F.relu(F.linear(x, p[0], p[1]))
        return F.cross_entropy(F.linear(h, p[2], p[3]), y)

    _compare_runs(_train("cpu", params, step), _train("cuda", params, step))


@pytest.mark.cuda
def test_cnn_training_parity(cuda_ok):
    r = np.random.default_rng(17)
    X = r.standard_normal((8, 1, 12, 12)).astype(np.float32)
    Y = r.integers(0, 10, 8)
    params = [(r.standard_normal((4, 1, 3, 3)) * 0.5).astype(np.float32), np.zeros(4, np.float32),
              (r.standard_normal((8, 4, 3, 3)) * 0.3).astype(np.float32), np.zeros(8, np.float32),
              (r.standard_normal((10, 32)) * 0.3).astype(np.float32), np.zeros(10, np.float32)]
    F = dt.nn.functional

    def step(p, device):
        x, y = dt.tensor(X, device=device), dt.tensor(Y, device=device)
        h = F.max_pool2d(F.relu(F.conv2d(x, p[0], p[1], padding=1)), 2)       # (8, 4, 6, 6)
        h = F.avg_pool2d(F.relu(F.conv2d(h, p[2], p[3], stride=1)), 2)        # (8, 8, 2, 2)
        logits = F.linear(h.reshape(8, -1), p[4], p[5])
        return F.cross_entropy(logits, y) + 0.01 * F.log_softmax(logits, 1).mean().abs()

    _compare_runs(_train("cpu", params, step, lr=0.05), _train("cuda", params, step, lr=0.05))


@pytest.mark.cuda
def test_sync_debug_names_the_failing_op_on_a_gpu(cuda_ok):
    """DEVTENSOR_SYNC=1 in the environment: a kernel that traps is reported at the op that launched it.
    Runs in a subprocess (a trapped kernel leaves the CUDA context unusable)."""
    if _emulated():
        pytest.skip("needs a real GPU: the emulator aborts the process on __trap")
    code = r'''
import cupy, devtensor as dt
from devtensor.dispatch import defop
from devtensor.backends.cuda import cuda
trap = cupy.RawKernel(r'extern "C" __global__ void t(float* x) { __trap(); }', "t")
probe = defop("_sync_probe", ("x",))
@cuda.kernel("_sync_probe")
def _k(x):
    trap((1,), (1,), (x,))
    return x
x = dt.ones(4, device="cuda")
try:
    probe(x)
except RuntimeError as e:
    print("REPORTED:", e)
'''
    env = dict(os.environ, PYTHONPATH=str(ROOT), DEVTENSOR_SYNC="1")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert "REPORTED: _sync_probe: device error after this op's kernel (DEVTENSOR_SYNC=1)" in r.stdout, \
        r.stdout + r.stderr


# ---- device-side index errors, end to end: no host sync at the op, a RuntimeError at the next sync ----
@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["ours", "cupy"])
def test_cross_entropy_bad_target_is_reported_at_the_next_sync(cuda_ok, dtype):
    F = dt.nn.functional
    logits = dt.tensor(RNG.standard_normal((4, 10)).astype(dtype), device="cuda")
    target = dt.tensor(np.array([1, 12, 3, -100]), device="cuda")
    loss = F.cross_entropy(logits, target)  # no error yet: the op does not wait for the device
    with pytest.raises(RuntimeError, match=r"^cross_entropy: target 12 is out of bounds for 10 classes \(reported "
                                           r"by the device at the next synchronisation\)"):
        loss.item()
    ok = F.cross_entropy(logits, dt.tensor(np.array([1, 2, 3, -100]), device="cuda"))
    assert np.isfinite(ok.item()), "the error is reported once, then cleared"


@pytest.mark.cuda
def test_indexing_with_a_bad_index_is_reported_at_the_next_sync(cuda_ok):
    x = dt.tensor(np.arange(12.0, dtype=np.float32).reshape(3, 4), device="cuda")
    y = x[:, dt.tensor(np.array([0, 4]), device="cuda")]
    with pytest.raises(RuntimeError, match=r"^index: index 4 is out of bounds for dimension 1 with size 4"):
        y.cpu()
    x[dt.tensor(np.array([-1, 3]), device="cuda")] = 0.0
    with pytest.raises(RuntimeError, match=r"^index_put: index 3 is out of bounds for dimension 0 with size 3"):
        dtcuda.cuda.synchronize()
    np.testing.assert_array_equal(_host(x)[2], 0)  # -1 was valid; the bad one wrote nothing out of bounds
    s = dt.scatter_add(dt.zeros(2, 3, device="cuda"), 0, dt.tensor(np.array([[0, 2, 1]]), device="cuda"),
                       dt.ones(1, 3, device="cuda"))
    with pytest.raises(RuntimeError, match=r"^scatter_add: index 2 is out of bounds for dimension 0 with size 2"):
        s.tolist()
    assert _host(s).sum() == 3
    g = dt.gather(x, 1, dt.tensor(np.array([[0], [-1], [1]]), device="cuda"))  # no host check on cuda
    with pytest.raises(RuntimeError, match=r"^gather: index -1 is out of bounds for dimension 1 with size 4"):
        g.cpu()
    assert _host(g).shape == (3, 1)


@pytest.mark.cuda
def test_sync_debug_names_the_op_of_a_device_index_error(cuda_ok):
    x = dt.tensor(np.arange(5.0, dtype=np.float32), device="cuda")
    old = __import__("devtensor.dispatch", fromlist=["_SYNC"])._SYNC[0]
    set_sync_debug(True)
    try:
        with pytest.raises(RuntimeError, match=r"device error after this op's kernel \(DEVTENSOR_SYNC=1\).*"
                                               r"index 7 is out of bounds for dimension 0 with size 5"):
            x[dt.tensor(np.array([7]), device="cuda")]
    finally:
        set_sync_debug(old)


@pytest.mark.cuda
def test_cuda_generators_and_sampling_ops(cuda_ok):
    """A cuda Generator's stream (a CuPy RandomState on its device) is reproducible and independent of the
    global one; the sampling ops run there with the cpu's checks; its state cannot be exported (clear error)."""
    def draws(g):
        p = dt.tensor([[0.1, 0.0, 0.9], [0.5, 0.5, 0.0]], device="cuda")
        return [dt.rand(5, device="cuda", generator=g), dt.randn(4, device="cuda", generator=g),
                dt.randint(0, 9, (6,), device="cuda", generator=g), dt.randperm(7, device="cuda", generator=g),
                dt.multinomial(p, 2, generator=g), dt.multinomial(p, 50, True, generator=g),
                dt.bernoulli(p, generator=g), dt.normal(p, 1.0, generator=g), dt.poisson(p * 4, generator=g),
                dt.empty(3, device="cuda").uniform_(generator=g)]

    a = draws(dt.Generator("cuda").manual_seed(3))
    b = draws(dt.Generator("cuda").manual_seed(3))
    for x, y in zip(a, b):
        assert x.device.type == "cuda" and np.array_equal(_host(x), _host(y))
    assert sorted(_host(a[3]).tolist()) == list(range(7))
    m = _host(a[5])
    assert (m[0] != 1).all() and (m[1] != 2).all()  # zero weights are never drawn with replacement
    dt.manual_seed(0)
    first = _host(dt.rand(4, device="cuda"))
    dt.manual_seed(0)
    draws(dt.Generator("cuda").manual_seed(1))
    assert np.array_equal(_host(dt.rand(4, device="cuda")), first)  # the global stream did not move
    with pytest.raises(RuntimeError, match="probability tensor"):
        dt.multinomial(dt.tensor([0.5, -1.0], device="cuda"), 1)
    with pytest.raises(RuntimeError, match="expected a generator on cuda"):
        dt.rand(2, device="cuda", generator=dt.Generator())
    with pytest.raises(RuntimeError, match="cannot export"):
        dt.Generator("cuda").get_state()
