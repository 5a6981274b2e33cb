"""GradScaler (devtensor.amp.GradScaler) against PyTorch CPU's: scale / unscale_ values, the scale sequence
for one pattern of inf/nan steps, state_dict, several optimizers, the errors, PyTorch's training idiom
unchanged (autocast + GradScaler, on and off), and a compiled step that holds a GradScaler."""
from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import devtensor as dt
import devtensor.nn.functional as DF

torch = pytest.importorskip("torch", reason="PyTorch CPU is the reference here")

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from bench_training import copy_weights, mlp  # noqa: E402


def _name(d):
    return str(d).rsplit(".", 1)[-1]


# ---- GradScaler --------------------------------------------------------------------------------------
def _toy(lib, w0):
    p = lib.nn.Parameter(lib.tensor(w0, dtype=lib.float32))
    return p, lib.optim.SGD([p], lr=0.1)


def test_scale_and_unscale_values():
    s = dt.amp.GradScaler("cpu", init_scale=8.0)
    assert s.get_scale() == 8.0 and s.is_enabled()
    out = s.scale(dt.tensor([1.5, -2.0]))
    np.testing.assert_array_equal(out.numpy(), [12.0, -16.0])
    # the scaled tensor keeps its shape and dtype (PyTorch's 0-d float32 scale)
    for v in (2.0, [2.0, 3.0]):
        t = torch.amp.GradScaler("cpu", init_scale=8.0).scale(torch.tensor(v, dtype=torch.bfloat16))
        got = s.scale(dt.tensor(v, dtype=dt.bfloat16))
        assert tuple(got.shape) == tuple(t.shape) and _name(got.dtype) == _name(t.dtype)
        np.testing.assert_array_equal(got.float().numpy(), t.float().numpy())
    assert s.scale(dt.tensor([2.0], dtype=dt.bfloat16)).dtype is dt.bfloat16
    nested = s.scale([dt.tensor(1.0), (dt.tensor(2.0), dt.tensor(3.0))])
    assert isinstance(nested, list) and isinstance(nested[1], tuple)
    assert [nested[0].item(), nested[1][0].item(), nested[1][1].item()] == [8.0, 16.0, 24.0]
    p, opt = _toy(dt, [1.0, 2.0])
    s.scale((p * dt.tensor([3.0, 5.0])).sum()).backward()
    np.testing.assert_array_equal(p.grad.numpy(), [24.0, 40.0])
    s.unscale_(opt)
    np.testing.assert_array_equal(p.grad.numpy(), [3.0, 5.0])
    with pytest.raises(RuntimeError, match="unscale_\\(\\) has already been called"):
        s.unscale_(opt)
    s.step(opt)  # uses the already unscaled gradients
    np.testing.assert_allclose(p.detach().numpy(), [0.7, 1.5], rtol=1e-6)
    with pytest.raises(RuntimeError, match="step\\(\\) has already been called"):
        s.step(opt)
    with pytest.raises(RuntimeError, match="after step"):
        s.unscale_(opt)
    s.update()
    assert s.get_scale() == 8.0


def _scale_sequence(lib, pattern, **kw):
    s = lib.amp.GradScaler("cpu", **kw)
    p, opt = _toy(lib, [1.0, -1.0])
    scales, stepped, weights = [], [], []
    for bad in pattern:
        opt.zero_grad()
        x = lib.tensor([float("inf") if bad == "inf" else float("nan") if bad == "nan" else 1.0, 2.0])
        s.scale((p * x).sum()).backward()
        stepped.append(s.step(opt) is None)
        s.update()
        scales.append(s.get_scale())
        weights.append(p.detach().numpy().copy())
    return scales, s.state_dict(), np.array(weights)


def test_scale_sequence_is_pytorchs():
    pattern = ["", "inf", "", "", "", "nan", "", "", "", "", "inf", "inf", "", ""]
    kw = {"init_scale": 2.0 ** 10, "growth_interval": 3, "growth_factor": 4.0, "backoff_factor": 0.25}
    ds, dsd, dw = _scale_sequence(dt, pattern, **kw)
    ts, tsd, tw = _scale_sequence(torch, pattern, **kw)
    assert ds == ts
    assert dsd == tsd
    np.testing.assert_allclose(dw, tw, rtol=1e-6)  # the skipped steps left the weights alone in both
    assert ds[1] == 2.0 ** 8 and ds[4] == 2.0 ** 10  # backed off, then grew after 3 clean steps
    assert np.array_equal(dw[1], dw[0])


def test_growth_stops_short_of_float32_overflow():
    s = dt.amp.GradScaler("cpu", init_scale=2.0 ** 127, growth_interval=1)
    p, opt = _toy(dt, [1.0])
    s.scale(p.sum()).backward()
    s.step(opt)
    s.update()
    assert s.get_scale() == 2.0 ** 127  # 2**128 is inf in float32: PyTorch keeps the old scale


def test_state_dict_round_trip():
    s = dt.amp.GradScaler("cpu", init_scale=64.0, growth_interval=5)
    p, opt = _toy(dt, [1.0])
    for _ in range(3):
        s.scale(p.sum()).backward()
        s.step(opt)
        s.update()
    sd = s.state_dict()
    assert sd == {"scale": 64.0, "growth_factor": 2.0, "backoff_factor": 0.5, "growth_interval": 5,
                  "_growth_tracker": 3}
    t = dt.amp.GradScaler("cpu")
    t.load_state_dict(sd)
    assert t.state_dict() == sd
    t2 = torch.amp.GradScaler("cpu")
    t2.load_state_dict(sd)  # the dict is PyTorch's layout
    assert t2.state_dict() == sd
    with pytest.raises(RuntimeError, match="empty"):
        t.load_state_dict(dt.amp.GradScaler("cpu", enabled=False).state_dict())


def test_disabled_scaler_is_a_pass_through():
    s = dt.amp.GradScaler("cpu", enabled=False)
    x = dt.tensor([1.0, 2.0])
    assert s.scale(x) is x and s.get_scale() == 1.0 and s.state_dict() == {} and not s.is_enabled()
    p, opt = _toy(dt, [1.0])
    p.sum().backward()
    assert s.step(opt) is None
    s.unscale_(opt)
    s.update()
    np.testing.assert_allclose(p.detach().numpy(), [0.9])


def test_scaler_errors():
    s = dt.amp.GradScaler("cpu")
    p, opt = _toy(dt, [1.0])
    with pytest.raises(RuntimeError, match="scale"):
        s.step(opt)  # no scale() yet
    s.scale(p.sum())
    with pytest.raises(RuntimeError, match="Closure"):
        s.step(opt, closure=lambda: 0)
    with pytest.raises(AssertionError, match="No inf checks"):
        s.step(opt)  # no gradients at all
    with pytest.raises(ValueError, match="growth factor"):
        dt.amp.GradScaler("cpu", growth_factor=1.0)


# ---- the PyTorch idiom, unchanged --------------------------------------------------------------------
def _idiom(lib, use_amp, device_type, steps=6):
    torch.manual_seed(1)
    tm = mlp(torch, 16)
    model = tm if lib is torch else mlp(dt, 16)
    if lib is not torch:
        copy_weights(tm, model)
    x = np.random.default_rng(5).standard_normal((steps, 16, 784)).astype(np.float32)
    y = np.random.default_rng(6).integers(0, 10, (steps, 16))
    opt = lib.optim.SGD(model.parameters(), lr=0.1)
    loss_fn = lib.nn.CrossEntropyLoss()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the cuda spelling on a cpu-only machine warns and disables itself
        scaler = (lib.cuda.amp.GradScaler(enabled=use_amp) if device_type == "cuda"
                  else lib.amp.GradScaler("cpu", enabled=use_amp))
    losses = []
    for i in range(steps):
        opt.zero_grad()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with lib.autocast(device_type=device_type, dtype=lib.bfloat16 if device_type == "cpu" else lib.float16,
                              enabled=use_amp):
                loss = loss_fn(model(lib.tensor(x[i])), lib.tensor(y[i]))
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        losses.append(loss.item())
    return np.array(losses), scaler.get_scale()


@pytest.mark.parametrize("use_amp", [True, False])
@pytest.mark.parametrize("device_type", ["cpu", "cuda"])
def test_pytorch_training_idiom_runs_unchanged(use_amp, device_type):
    if device_type == "cuda" and dt.cuda.is_available():
        pytest.skip("this case checks the cuda spelling on a cpu-only machine")
    dl, dscale = _idiom(dt, use_amp, device_type)
    tl, tscale = _idiom(torch, use_amp, device_type)
    assert dscale == tscale
    assert dl[-1] < dl[0]
    exact = not use_amp or device_type == "cuda"  # cuda's autocast disables itself here: float32 in both
    np.testing.assert_allclose(dl, tl, rtol=1e-4 if exact else 3e-2)


def test_a_compiled_step_with_a_grad_scaler_runs_eagerly_with_the_warning():
    """step() branches on the inf flag read on the host: a replay could not skip a step, so dt.compile
    falls back to eager (its usual warning names the read) and every step stays correct."""
    def run(compiled):
        dt.manual_seed(0)
        m = dt.nn.Linear(6, 3)
        opt = dt.optim.SGD(m.parameters(), lr=0.1)
        s = dt.amp.GradScaler("cpu", init_scale=4.0, growth_interval=2)

        def step(x, y):
            opt.zero_grad()
            with dt.autocast("cpu"):
                loss = DF.cross_entropy(m(x), y)
            s.scale(loss).backward()
            s.step(opt)
            s.update()
            return loss.detach()

        f = dt.compile(step) if compiled else step
        x, y = dt.randn(5, 6), dt.randint(0, 3, (5,))
        return [f(x, y).item() for _ in range(4)], s.get_scale()

    eager = run(False)
    with pytest.warns(RuntimeWarning, match="GradScaler.step's inf check"):
        compiled = run(True)
    assert compiled == eager and eager[1] == 16.0  # grew twice (growth_interval 2, four clean steps)


def test_update_after_unscale_only_reads_the_flag():
    s = dt.amp.GradScaler("cpu", init_scale=8.0)
    p, opt = _toy(dt, [1.0])
    s.scale(p * float("inf")).backward()
    s.unscale_(opt)  # no step(): update() still backs off on the recorded inf
    s.update()
    assert s.get_scale() == 4.0
    with pytest.raises(ValueError, match="new_scale"):
        s.update(dt.tensor([1.0, 2.0]))
    s.update(dt.tensor([32.0]))
    assert s.get_scale() == 32.0 and s.state_dict()["scale"] == 32.0
    s.update(3.0)
    np.testing.assert_array_equal(s.scale(dt.tensor([2.0])).numpy(), [6.0])


def test_two_optimizers_step_on_their_own_flags_and_update_backs_off_on_either():
    res = {}
    for lib in (dt, torch):
        s = lib.amp.GradScaler("cpu", init_scale=16.0)
        p1, o1 = _toy(lib, [1.0])
        p2, o2 = _toy(lib, [1.0])
        s.scale((p1 * float("inf")).sum() + (p2 * 2.0).sum()).backward()
        r1, r2 = s.step(o1), s.step(o2)
        s.update()
        res[lib] = (r1, r2, p1.detach().numpy().tolist(), p2.detach().numpy().tolist(), s.get_scale())
    assert res[dt] == res[torch]
    assert res[dt][2] == [1.0] and res[dt][3] != [1.0] and res[dt][4] == 8.0


def test_unscaling_float16_gradients_is_refused():
    s = dt.amp.GradScaler("cpu", init_scale=2.0)
    p = dt.nn.Parameter(dt.tensor([1.0], dtype=dt.float16))
    opt = dt.optim.SGD([p], lr=0.1)
    s.scale(p.float().sum()).backward()
    with pytest.raises(ValueError, match="FP16 gradients"):
        s.unscale_(opt)
