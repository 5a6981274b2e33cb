"""Autocast (devtensor.autocast) against PyTorch CPU's: the dtypes each op computes in inside a region,
nesting and threads, the cast cache, small models' and layers' losses, values and gradients under
autocast, custom_fwd / custom_bwd, and autocast inside dt.compile. GradScaler: tests/test_amp_scaler.py."""
from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import devtensor as dt
import devtensor.nn.functional as DF
from devtensor import autocast_mode

torch = pytest.importorskip("torch", reason="PyTorch CPU is the reference here")
import torch.nn.functional as TF  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from bench_training import cnn, copy_weights, mlp  # noqa: E402

R = np.random.default_rng(0)
A, W, B = R.standard_normal((4, 5)), R.standard_normal((3, 5)), R.standard_normal(3)
X4, CW = R.standard_normal((2, 2, 6, 6)), R.standard_normal((3, 2, 3, 3))
T = np.array([0, 2, 1, 2])
P = R.uniform(0.1, 0.9, (4, 5))

# name -> fn(lib, F, t) where t makes a float32 tensor of lib from a numpy array
CASES = {
    "matmul": lambda L, F, t: t(A) @ t(W).T,
    "mm": lambda L, F, t: L.mm(t(A), t(W).T),
    "bmm": lambda L, F, t: L.bmm(t(A)[None], t(W).T[None]),
    "mv (cpu: not cast)": lambda L, F, t: L.mv(t(A), t(A[0])),
    "dot (not cast)": lambda L, F, t: L.dot(t(A[0]), t(A[1])),
    "addmm": lambda L, F, t: L.addmm(t(B), t(A), t(W).T),
    "baddbmm": lambda L, F, t: L.baddbmm(t(B)[None, None], t(A)[None], t(W).T[None]),
    "linear": lambda L, F, t: F.linear(t(A), t(W), t(B)),
    "conv1d": lambda L, F, t: F.conv1d(t(X4[:, :, 0]), t(CW[..., 0])),
    "conv2d": lambda L, F, t: F.conv2d(t(X4), t(CW), t(B)),
    "conv_transpose1d": lambda L, F, t: F.conv_transpose1d(t(X4[:, :, 0]), t(CW.transpose(1, 0, 2, 3)[..., 0])),
    "conv_transpose2d": lambda L, F, t: F.conv_transpose2d(t(X4), t(CW.transpose(1, 0, 2, 3))),
    "prelu": lambda L, F, t: F.prelu(t(A), t(np.array([0.25]))),
    "sdpa": lambda L, F, t: F.scaled_dot_product_attention(t(A)[None], t(A)[None], t(A)[None]),
    "sdpa float mask": lambda L, F, t: F.scaled_dot_product_attention(t(A)[None], t(A)[None], t(A)[None],
                                                                     attn_mask=t(np.zeros((4, 4)))),
    "cross_entropy": lambda L, F, t: F.cross_entropy(t(A), L.tensor(T)),
    "nll_loss": lambda L, F, t: F.nll_loss(t(A), L.tensor(T)),
    "mse_loss": lambda L, F, t: F.mse_loss(t(A), t(P)),
    "l1_loss": lambda L, F, t: F.l1_loss(t(A), t(P)),
    "smooth_l1_loss": lambda L, F, t: F.smooth_l1_loss(t(A), t(P)),
    "huber_loss": lambda L, F, t: F.huber_loss(t(A), t(P)),
    "kl_div": lambda L, F, t: F.kl_div(t(A), t(P), reduction="batchmean"),
    "bce_with_logits": lambda L, F, t: F.binary_cross_entropy_with_logits(t(A), t(P)),
    "bce": lambda L, F, t: F.binary_cross_entropy(t(P), t(P[::-1].copy())),
    "softmax (cpu: follows input)": lambda L, F, t: F.softmax(t(A), -1),
    "layer_norm (cpu: follows input)": lambda L, F, t: F.layer_norm(t(A), (5,)),
    "relu": lambda L, F, t: F.relu(t(A)),
    "add": lambda L, F, t: t(A) + t(A),
    "sum": lambda L, F, t: t(A).sum(),
}


def _t_torch(a):
    return torch.tensor(np.ascontiguousarray(a), dtype=torch.float32)


def _t_dt(a):
    return dt.tensor(np.ascontiguousarray(a), dtype=dt.float32)


def _name(d):
    return str(d).rsplit(".", 1)[-1]


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
@pytest.mark.parametrize("case", list(CASES))
def test_op_dtypes_inside_a_cpu_region_match_pytorch(case, dtype):
    fn = CASES[case]
    with torch.autocast("cpu", dtype=getattr(torch, dtype)):
        want = fn(torch, TF, _t_torch)
    with dt.autocast("cpu", dtype=getattr(dt, dtype)):
        got = fn(dt, DF, _t_dt)
    assert _name(got.dtype) == _name(want.dtype)
    # the values are torch's within the autocast dtype's precision (a float32 result of a cast input
    # differs from float32 math by the inputs' rounding)
    tol = 3e-2 if dtype == "bfloat16" else 4e-3
    np.testing.assert_allclose(got.float().numpy(), want.float().numpy(), rtol=tol, atol=tol * 4)
    # outside the region nothing changes: float32 in, float32 out
    assert fn(dt, DF, _t_dt).dtype is dt.float32


def test_float64_and_integer_tensors_are_not_cast():
    with dt.autocast("cpu"):
        assert (dt.tensor(A) @ dt.tensor(W).T).dtype is dt.float64
        assert (dt.tensor(T) @ dt.tensor(T)).dtype is dt.int64
        # a bfloat16 input of a float32-list op computes in float32 (PyTorch's fp32 policy)
        assert DF.mse_loss(_t_dt(A).bfloat16(), _t_dt(P).bfloat16()).dtype is dt.float32
    with torch.autocast("cpu"):
        assert (torch.tensor(A) @ torch.tensor(W).T).dtype is torch.float64


def test_state_nesting_and_decorator_as_pytorch():
    assert dt.get_autocast_dtype("cpu") is dt.bfloat16 and dt.get_autocast_dtype("cuda") is dt.float16
    assert torch.get_autocast_dtype("cpu") is torch.bfloat16 and torch.get_autocast_dtype("cuda") is torch.float16
    assert not dt.is_autocast_enabled("cpu") and autocast_mode.ACTIVE[0] == 0
    a, w = _t_dt(A), _t_dt(W)
    with dt.autocast("cpu"):
        assert dt.is_autocast_enabled("cpu") and not dt.is_autocast_enabled()  # no argument: cuda's, as PyTorch
        with dt.autocast("cpu", enabled=False):
            assert not dt.is_autocast_enabled("cpu")
            assert (a @ w.T).dtype is dt.float32
        with dt.amp.autocast("cpu", dtype=dt.float16):
            assert dt.get_autocast_dtype("cpu") is dt.float16 and (a @ w.T).dtype is dt.float16
        assert dt.get_autocast_dtype("cpu") is dt.bfloat16 and (a @ w.T).dtype is dt.bfloat16
    assert not dt.is_autocast_enabled("cpu") and autocast_mode.ACTIVE[0] == 0

    @dt.autocast("cpu")
    def f(x, y):
        return x @ y.T

    assert f(a, w).dtype is dt.bfloat16 and (a @ w.T).dtype is dt.float32
    with pytest.raises(ZeroDivisionError):  # an exception leaves the state as it was
        with dt.autocast("cpu"):
            1 / 0
    assert not dt.is_autocast_enabled("cpu") and autocast_mode.ACTIVE[0] == 0
    with pytest.raises(RuntimeError, match="unsupported autocast device_type"):
        dt.autocast("tpu")
    with pytest.warns(UserWarning, match="not supported"):
        with dt.autocast("cpu", dtype=dt.float64):
            assert (a @ w.T).dtype is dt.float32


def test_regions_are_per_thread():
    import threading

    seen = {}

    def other():
        seen["on"] = dt.is_autocast_enabled("cpu")
        seen["dtype"] = (_t_dt(A) @ _t_dt(W).T).dtype

    with dt.autocast("cpu"):
        th = threading.Thread(target=other)
        th.start()
        th.join()
    assert seen == {"on": False, "dtype": dt.float32}


def test_deprecated_spellings_warn_and_work():
    with pytest.warns(FutureWarning, match=r"torch.amp.autocast\('cpu'"):
        ctx = dt.cpu.amp.autocast()
    with ctx:
        assert (_t_dt(A) @ _t_dt(W).T).dtype is dt.bfloat16
    from devtensor.cuda.amp import GradScaler, autocast  # the import form works too

    assert dt.cuda.amp.autocast is autocast and dt.cuda.amp.GradScaler is GradScaler
    if not dt.cuda.is_available():
        with pytest.warns(FutureWarning, match="torch.amp.GradScaler"), pytest.warns(UserWarning, match="Disabling"):
            s = dt.cuda.amp.GradScaler()
        assert not s.is_enabled()


def test_weight_casts_are_cached_within_a_region():
    w = dt.tensor(W, dtype=dt.float32, requires_grad=True)
    x = _t_dt(A)
    with dt.autocast("cpu"):
        y = DF.linear(x, w) + DF.linear(x * 2, w)
        assert len(autocast_mode.state.cache) == 1
    assert not autocast_mode.state.cache  # dropped when the outermost region ends, as PyTorch
    y.float().sum().backward()
    # d/dw sum(x w^T + 2x w^T) = 3 * column sums of x, through the shared bf16 cast
    want = 3 * np.tile(dt.tensor(A).bfloat16().float().numpy().sum(0), (3, 1))
    np.testing.assert_allclose(w.grad.numpy(), want, rtol=1e-2)
    assert w.grad.dtype is dt.float32


def test_a_weight_written_in_place_is_cast_again():
    w = dt.tensor(W, dtype=dt.float32, requires_grad=True)
    x = _t_dt(A)
    with dt.autocast("cpu"):
        y0 = DF.linear(x, w).detach()
        with dt.no_grad():
            w.mul_(2.0)  # its version moves: the cached cast is stale
        y1 = DF.linear(x, w).detach()
    np.testing.assert_allclose(y1.float().numpy(), 2 * y0.float().numpy(), rtol=1e-2)


def _forward_loss(lib, model, x, y, loss):
    with lib.autocast("cpu", dtype=lib.bfloat16):
        out = model(x)
        lv = getattr(lib.nn.functional, loss)(out, y)
    return out, lv


@pytest.mark.parametrize("which", ["mlp", "cnn"])
def test_model_under_autocast_matches_pytorch(which):
    torch.manual_seed(0)
    tm = mlp(torch, 32) if which == "mlp" else cnn(torch)
    dm = mlp(dt, 32) if which == "mlp" else cnn(dt)
    copy_weights(tm, dm)
    tm.eval()
    dm.eval()
    x = np.random.default_rng(3).standard_normal((8, 1, 28, 28)).astype(np.float32)
    y = np.random.default_rng(4).integers(0, 10, 8)
    loss = "cross_entropy" if which == "mlp" else "nll_loss"
    to, tl = _forward_loss(torch, tm, torch.from_numpy(x), torch.from_numpy(y), loss)
    do, dl = _forward_loss(dt, dm, dt.tensor(x), dt.tensor(y), loss)
    assert _name(do.dtype) == _name(to.dtype) and dl.dtype is dt.float32 and tl.dtype is torch.float32
    np.testing.assert_allclose(dl.item(), tl.item(), rtol=2e-2)
    tl.backward()
    dl.backward()
    for (k, tp), dp in zip(tm.named_parameters(), dm.parameters()):
        assert dp.grad.dtype is dt.float32, k  # master weights keep float32 gradients
        g, tg = dp.grad.numpy(), tp.grad.numpy()
        assert np.abs(tg).max() > 0, k
        np.testing.assert_allclose(g, tg, rtol=0.1, atol=0.05 * np.abs(tg).max(), err_msg=k)
    # and close to the float32 model's gradients (bf16's ~3 digits): autocast changed precision, not the math
    dm.zero_grad()
    getattr(dt.nn.functional, loss)(dm(dt.tensor(x)), dt.tensor(y)).backward()
    assert dm.parameters().__next__().grad.dtype is dt.float32


# ---- dt.compile ----------------------------------------------------------------------------------------
def test_autocast_inside_compile_replays_its_casts():
    def build():
        dt.manual_seed(0)
        m = dt.nn.Sequential(dt.nn.Linear(6, 8), dt.nn.ReLU(), dt.nn.Linear(8, 3))
        return m, dt.optim.SGD(m.parameters(), lr=0.1)

    def step_fn(m, opt):
        def step(x, y):
            opt.zero_grad()
            with dt.autocast("cpu"):
                loss = DF.cross_entropy(m(x), y)
            loss.backward()
            opt.step()
            return loss.detach()

        return step

    xs = [dt.tensor(np.random.default_rng(i).standard_normal((5, 6)), dtype=dt.float32) for i in range(4)]
    ys = [dt.tensor(np.random.default_rng(9 + i).integers(0, 3, 5)) for i in range(4)]
    me, oe = build()
    eager = [step_fn(me, oe)(x, y).item() for x, y in zip(xs, ys)]
    mc, oc = build()
    dt.compiler.reset_stats()
    step = dt.compile(step_fn(mc, oc))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no fallback: the casts are ops, captured and replayed
        compiled = [step(x, y).item() for x, y in zip(xs, ys)]
    assert dt.compiler.stats()["replays"] == 3
    assert compiled == eager
    for a, b in zip(me.parameters(), mc.parameters()):
        np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())


def test_a_compiled_forward_is_guarded_on_the_autocast_state():
    dt.manual_seed(0)
    m = dt.nn.Linear(4, 2)
    f = dt.compile(m)
    x = dt.randn(3, 4)
    with dt.no_grad():
        for _ in range(2):
            assert f(x).dtype is dt.float32
            with dt.autocast("cpu"):
                assert f(x).dtype is dt.bfloat16
            with dt.autocast("cpu", dtype=dt.float16):
                assert f(x).dtype is dt.float16


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_half_float_matmul_keeps_its_dtype_and_differentiates(dtype):
    """numpy has no half-float BLAS: the cpu kernels multiply in float32 and round back (bfloat16 came back
    float32 before, and float16 ran numpy's slow loop); the values are PyTorch's cpu ones."""
    dd, td = getattr(dt, dtype), getattr(torch, dtype)
    a = dt.tensor(A, dtype=dd, requires_grad=True)
    w = dt.tensor(W, dtype=dd)
    y = a @ w.T
    assert y.dtype is dd and DF.linear(a, w, w[:, 0]).dtype is dd
    want = torch.tensor(A, dtype=td) @ torch.tensor(W, dtype=td).T
    np.testing.assert_allclose(y.detach().float().numpy(), want.float().numpy(), rtol=1e-2, atol=1e-2)
    lin = DF.linear(a, w, w[:, 0]).detach().float().numpy()
    np.testing.assert_allclose(lin, TF.linear(torch.tensor(A, dtype=td), torch.tensor(W, dtype=td),
                                              torch.tensor(W[:, 0], dtype=td)).float().numpy(), rtol=1e-2, atol=1e-2)
    y.sum().backward()
    assert a.grad.dtype is dd


def _modules(lib):
    nn = lib.nn
    lib.manual_seed(0)
    return {
        "conv-bn-relu": nn.Sequential(nn.Conv2d(2, 4, 3), nn.BatchNorm2d(4), nn.ReLU()),
        "ln-gelu": nn.Sequential(nn.Linear(6, 8), nn.LayerNorm(8), nn.GELU()),
        "conv-groupnorm": nn.Sequential(nn.Conv2d(2, 4, 3), nn.GroupNorm(2, 4)),
        "mha": nn.MultiheadAttention(6, 2, batch_first=True),
        "encoder": nn.TransformerEncoderLayer(6, 2, 12, dropout=0.0, batch_first=True),
        "lstm": nn.LSTM(6, 5, num_layers=2, batch_first=True),
        "gru": nn.GRU(6, 5, batch_first=True, bidirectional=True),
        "rnn": nn.RNN(6, 5),
    }


_X4 = np.random.default_rng(0).standard_normal((2, 2, 6, 6)).astype(np.float32)
_X3 = np.random.default_rng(1).standard_normal((2, 4, 6)).astype(np.float32)
_MOD_INPUTS = {"conv-bn-relu": (_X4,), "ln-gelu": (_X3,), "conv-groupnorm": (_X4,), "mha": (_X3, _X3, _X3),
               "encoder": (_X3,), "lstm": (_X3,), "gru": (_X3,), "rnn": (_X3,)}


@pytest.mark.parametrize("name", list(_MOD_INPUTS))
def test_layers_under_autocast_give_pytorchs_dtypes(name):
    """Layers that mix cast and uncast ops: the recurrent layers are one op each (nn.LSTM lowered on cpu, as
    PyTorch's oneDNN layer; GRU / RNN not, their inner projection not cast either), and the norms keep a
    bfloat16 input's dtype with float32 weights, as PyTorch's mixed-dtype kernels."""
    tm, dm = _modules(torch)[name], _modules(dt)[name]
    copy_weights(tm, dm)
    with torch.autocast("cpu"):
        want = tm(*[torch.tensor(a) for a in _MOD_INPUTS[name]])
    with dt.autocast("cpu"):
        got = dm(*[dt.tensor(a) for a in _MOD_INPUTS[name]])
    want, got = (want[0], got[0]) if isinstance(want, tuple) else (want, got)
    assert _name(got.dtype) == _name(want.dtype)
    np.testing.assert_allclose(got.detach().float().numpy(), want.detach().float().numpy(), rtol=0.05, atol=0.05)
    got.float().sum().backward()
    assert {p.grad.dtype for p in dm.parameters() if p.grad is not None} == {dt.float32}


@pytest.mark.parametrize("norm", ["layer_norm", "batch_norm", "group_norm"])
def test_norms_keep_a_half_inputs_dtype_with_float32_weights(norm):
    x = np.random.default_rng(2).standard_normal((2, 4, 3)).astype(np.float32)
    w = np.linspace(0.5, 1.5, 4 if norm != "layer_norm" else 3).astype(np.float32)
    args = {"layer_norm": lambda F, X, W: F.layer_norm(X, (3,), W, W),
            "batch_norm": lambda F, X, W: F.batch_norm(X, None, None, W, W, training=True),
            "group_norm": lambda F, X, W: F.group_norm(X, 2, W, W)}[norm]
    for dd, td in ((dt.bfloat16, torch.bfloat16), (dt.float16, torch.float16)):
        got = args(DF, dt.tensor(x).to(dd), dt.tensor(w))
        want = args(TF, torch.tensor(x).to(td), torch.tensor(w))
        assert got.dtype is dd and want.dtype is td
        np.testing.assert_allclose(got.float().numpy(), want.float().numpy(), atol=0.05)


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_erf_and_gelu_take_half_floats(dtype):
    """numba compiles neither half float: erf (and gelu through it) computes in float32 and rounds back."""
    x = np.linspace(-3, 3, 13).astype(np.float32)
    dd, td = getattr(dt, dtype), getattr(torch, dtype)
    # erf: PyTorch's bits; gelu is a composite whose half-float intermediates round (PyTorch's kernel
    # keeps float32 inside): within a few of the dtype's ulps of 1
    for fd, ft, atol in ((dt.erf, torch.erf, 0), (DF.gelu, TF.gelu, 1e-2)):
        got, want = fd(dt.tensor(x).to(dd)), ft(torch.tensor(x).to(td))
        assert got.dtype is dd
        np.testing.assert_allclose(got.float().numpy(), want.float().numpy(), rtol=0, atol=atol)


def _square_matmul(lib):
    """A custom Function whose forward wants float32 (cast_inputs) and whose backward runs as forward did."""
    amp = lib.amp
    seen = []

    class MyMM(lib.autograd.Function):
        @staticmethod
        @amp.custom_fwd(device_type="cpu", cast_inputs=lib.float32)
        def forward(ctx, a, b):
            ctx.save_for_backward(a, b)
            seen.append(tuple(_name(t.dtype) for t in (a, b, a @ b)))  # inside: float32 inputs, autocast off
            return a @ b

        @staticmethod
        @amp.custom_bwd(device_type="cpu")
        def backward(ctx, g):
            a, b = ctx.saved_tensors
            return g @ b.T, a.T @ g

    return MyMM, seen


def test_custom_fwd_and_bwd_as_pytorch():
    out = {}
    for lib in (dt, torch):
        fn, seen = _square_matmul(lib)
        a = lib.tensor(A[:, :3].copy(), dtype=lib.float32, requires_grad=True)
        b = lib.tensor(W[:, :3].T.copy(), dtype=lib.float32)
        with lib.autocast("cpu"):
            x = a.bfloat16()  # a bfloat16 activation reaching a float32-only Function
            y = fn.apply(x, b)
            z = (y @ b.T).float().sum()  # after it, autocast applies again
        z.backward()
        out[lib] = (y.dtype, a.grad.dtype, a.grad.numpy().copy())
        assert seen == [("float32",) * 3]
    assert _name(out[dt][0]) == _name(out[torch][0]) == "float32"
    assert out[dt][1] is dt.float32
    np.testing.assert_allclose(out[dt][2], out[torch][2], rtol=2e-2, atol=2e-2)
    with pytest.warns(FutureWarning, match="torch.amp.custom_fwd"):
        dt.cuda.amp.custom_fwd(cast_inputs=dt.float32)
