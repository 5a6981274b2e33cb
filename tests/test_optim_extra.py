"""Adagrad, Adadelta, Adamax, NAdam, RAdam, Rprop, ASGD, LBFGS, the extra lr schedulers, nn.utils'
gradient clipping and flattening, devtensor.accelerator and PyTorch's own MNIST example: each against
PyTorch from the same start (skipped where torch is not installed), state_dict round trips included."""
from __future__ import annotations

import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

import devtensor as dt
from devtensor import nn, optim

torch = pytest.importorskip("torch")

CONFIGS = [
    ("Adagrad", dict(lr=0.1)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.01, weight_decay=0.1, initial_accumulator_value=0.1, eps=1e-8)),
    ("Adagrad", dict(lr=0.05, maximize=True)),
    ("Adadelta", dict()),
    ("Adadelta", dict(lr=0.5, rho=0.8, eps=1e-5, weight_decay=0.1, maximize=True)),
    ("Adamax", dict()),
    ("Adamax", dict(lr=0.01, betas=(0.8, 0.99), weight_decay=0.1, maximize=True)),
    ("NAdam", dict()),
    ("NAdam", dict(lr=0.01, weight_decay=0.1, momentum_decay=1e-2)),
    ("NAdam", dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True, maximize=True)),
    ("RAdam", dict()),
    ("RAdam", dict(lr=0.01, betas=(0.9, 0.6), weight_decay=0.1)),  # beta2 0.6: rho_t > 5 after a few steps
    ("RAdam", dict(lr=0.01, betas=(0.9, 0.6), weight_decay=0.1, decoupled_weight_decay=True, maximize=True)),
    ("Rprop", dict()),
    ("Rprop", dict(lr=0.02, etas=(0.3, 1.5), step_sizes=(1e-3, 0.05), maximize=True)),
    ("ASGD", dict()),
    ("ASGD", dict(lr=0.05, lambd=0.1, alpha=0.5, t0=3, weight_decay=0.1)),
]
IDS = [f"{n}-{i}" for i, (n, _) in enumerate(CONFIGS)]


def _np(t):
    return np.asarray(t.detach().cpu()._data)


def _state_value(v):
    if isinstance(v, dt.Tensor):
        return _np(v)
    if isinstance(v, torch.Tensor):
        return v.detach().numpy()
    return np.asarray(v, dtype=np.float64)


def _make(name, kw, dtype, seed=0):
    r = np.random.default_rng(seed)
    inits = [r.standard_normal(s).astype(dtype) for s in [(4, 3), (5,)]]
    ps = [nn.Parameter(dt.tensor(a)) for a in inits]
    tps = [torch.nn.Parameter(torch.tensor(a)) for a in inits]
    lr = kw.get("lr", getattr(torch.optim, name)([torch.zeros(1, requires_grad=True)]).defaults["lr"])
    groups = lambda q: [{"params": [q[0]]}, {"params": [q[1]], "lr": lr * 0.5}]  # noqa: E731
    return ps, tps, getattr(optim, name)(groups(ps), **kw), getattr(torch.optim, name)(groups(tps), **kw), r


def _steps(ps, tps, opt, topt, r, n, dtype):
    for _ in range(n):
        for p, tp in zip(ps, tps):
            g = r.standard_normal(tuple(p.shape)).astype(dtype)
            p.grad, tp.grad = dt.tensor(g), torch.tensor(g)
        opt.step()
        topt.step()


def _compare(ps, tps, opt, topt, tol):
    for p, tp in zip(ps, tps):
        np.testing.assert_allclose(_np(p), tp.detach().numpy(), **tol)
        st, tst = opt.state[p], topt.state[tp]
        assert set(st) == set(tst)
        for k in st:
            np.testing.assert_allclose(_state_value(st[k]), _state_value(tst[k]), err_msg=k, **tol)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("name,kw", CONFIGS, ids=IDS)
def test_optimizer_matches_torch(name, kw, dtype):
    ps, tps, opt, topt, r = _make(name, kw, dtype)
    _steps(ps, tps, opt, topt, r, 8, dtype)
    _compare(ps, tps, opt, topt, dict(rtol=1e-10, atol=1e-12) if dtype == np.float64 else dict(rtol=2e-5, atol=1e-6))


@pytest.mark.parametrize("name,kw", CONFIGS, ids=IDS)
def test_state_dict_round_trip_continues_like_torch(name, kw, tmp_path):
    """3 steps, save the optimizer (dt.save), rebuild it on the parameters and load, 4 more steps: the same
    parameters and state as PyTorch's uninterrupted run."""
    ps, tps, opt, topt, r = _make(name, kw, np.float64)
    _steps(ps, tps, opt, topt, r, 3, np.float64)
    dt.save({"optim": opt.state_dict()}, tmp_path / "ckpt.safetensors")
    sd = dt.load(tmp_path / "ckpt.safetensors")["optim"]
    lr = opt.param_groups[0]["lr"]
    fresh = getattr(optim, name)([{"params": [ps[0]]}, {"params": [ps[1]], "lr": lr * 0.5}], **kw)
    fresh.load_state_dict(sd)
    assert fresh.state_dict()["param_groups"] == opt.state_dict()["param_groups"]
    _steps(ps, tps, fresh, topt, r, 4, np.float64)
    _compare(ps, tps, fresh, topt, dict(rtol=1e-10, atol=1e-12))


@pytest.mark.parametrize("name", sorted({n for n, _ in CONFIGS}))
def test_defaults_are_torchs(name):
    p, tp = nn.Parameter(dt.zeros(2)), torch.nn.Parameter(torch.zeros(2))
    mine, theirs = getattr(optim, name)([p]).defaults, getattr(torch.optim, name)([tp]).defaults
    assert set(mine) == set(theirs)
    for k, v in theirs.items():
        assert mine[k] == v or (isinstance(v, tuple) and tuple(mine[k]) == v), k


@pytest.mark.parametrize("name,kw", [("Adagrad", dict(lr=-1)), ("Adagrad", dict(lr_decay=-1)),
                                     ("Adadelta", dict(rho=1.5)), ("Adamax", dict(betas=(1.0, 0.9))),
                                     ("NAdam", dict(momentum_decay=-1)), ("RAdam", dict(eps=-1)),
                                     ("Rprop", dict(etas=(1.5, 1.2))), ("ASGD", dict(weight_decay=-1))])
def test_invalid_hyperparameters_raise_torchs_error(name, kw):
    with pytest.raises(ValueError) as want:
        getattr(torch.optim, name)([torch.nn.Parameter(torch.zeros(2))], **kw)
    with pytest.raises(ValueError) as got:
        getattr(optim, name)([nn.Parameter(dt.zeros(2))], **kw)
    assert str(got.value) == str(want.value)


def test_adagrad_has_state_before_the_first_step_as_in_torch():
    p = nn.Parameter(dt.zeros(3))
    opt = optim.Adagrad([p], initial_accumulator_value=0.5)
    assert opt.state[p]["step"] == 0 and np.all(_np(opt.state[p]["sum"]) == 0.5)


# ---- LBFGS ----------------------------------------------------------------------------------------

def _regression(seed=0):
    r = np.random.default_rng(seed)
    X = r.standard_normal((60, 4))
    w = np.array([1.0, -2.0, 0.5, 3.0])
    return X, X @ w + 0.3 + 0.01 * r.standard_normal(60), w, r.standard_normal((1, 4)) * 0.1


def _lbfgs_pair(kw, seed=0):
    X, Y, w, W0 = _regression(seed)
    lin, tlin = nn.Linear(4, 1).double(), torch.nn.Linear(4, 1).double()
    with dt.no_grad():
        lin.weight.copy_(dt.tensor(W0))
        lin.bias.zero_()
    with torch.no_grad():
        tlin.weight.copy_(torch.tensor(W0))
        tlin.bias.zero_()
    opt, topt = optim.LBFGS(lin.parameters(), **kw), torch.optim.LBFGS(tlin.parameters(), **kw)
    x, y = dt.tensor(X), dt.tensor(Y).reshape(-1, 1)
    tx, ty = torch.tensor(X), torch.tensor(Y).reshape(-1, 1)

    def closure():
        opt.zero_grad()
        loss = ((lin(x) - y) ** 2).mean()
        loss.backward()
        return loss

    def tclosure():
        topt.zero_grad()
        loss = ((tlin(tx) - ty) ** 2).mean()
        loss.backward()
        return loss

    return lin, tlin, opt, topt, closure, tclosure, w


@pytest.mark.parametrize("kw", [dict(), dict(line_search_fn="strong_wolfe"), dict(history_size=3, max_iter=7),
                                dict(history_size=2, max_iter=6, line_search_fn="strong_wolfe", lr=0.5),
                                dict(max_iter=4, max_eval=6, tolerance_change=1e-12)],
                         ids=["plain", "strong_wolfe", "short-history", "wolfe-short", "max_eval"])
def test_lbfgs_fits_a_regression_like_torch(kw):
    lin, tlin, opt, topt, closure, tclosure, w = _lbfgs_pair(kw)
    for _ in range(3):
        a, b = opt.step(closure), topt.step(tclosure)
        np.testing.assert_allclose(float(a), float(b.detach()), rtol=1e-8, atol=1e-14)
        np.testing.assert_allclose(_np(lin.weight), tlin.weight.detach().numpy(), rtol=1e-8, atol=1e-12)
        np.testing.assert_allclose(_np(lin.bias), tlin.bias.detach().numpy(), rtol=1e-8, atol=1e-12)
    st, tst = opt.state[lin.weight], topt.state[tlin.weight]
    assert (st["func_evals"], st["n_iter"]) == (tst["func_evals"], tst["n_iter"])
    if "max_eval" not in kw:
        np.testing.assert_allclose(_np(lin.weight)[0], w, atol=0.01)  # it found the line
        assert abs(float(_np(lin.bias)[0]) - 0.3) < 0.01


def test_lbfgs_state_dict_round_trip(tmp_path):
    kw = dict(history_size=4, max_iter=3, line_search_fn="strong_wolfe")
    lin, tlin, opt, topt, closure, tclosure, _ = _lbfgs_pair(kw)
    opt.step(closure)
    topt.step(tclosure)
    dt.save(opt.state_dict(), tmp_path / "lbfgs.safetensors")
    fresh = optim.LBFGS(lin.parameters(), **kw)
    fresh.load_state_dict(dt.load(tmp_path / "lbfgs.safetensors"))
    opt.param_groups, opt.state = fresh.param_groups, fresh.state  # the closure zeroes opt's grads: same params
    for _ in range(2):
        fresh.step(closure)
        topt.step(tclosure)
    np.testing.assert_allclose(_np(lin.weight), tlin.weight.detach().numpy(), rtol=1e-8, atol=1e-12)


def test_lbfgs_needs_a_closure_and_one_group():
    p = nn.Parameter(dt.zeros(2))
    with pytest.raises(TypeError):  # as torch: closure is a required argument
        optim.LBFGS([p]).step()
    with pytest.raises(RuntimeError, match="closure"):
        optim.LBFGS([p]).step(None)
    with pytest.raises(ValueError, match="per-parameter options"):
        optim.LBFGS([{"params": [p]}, {"params": [nn.Parameter(dt.zeros(1))]}])


# ---- lr schedulers --------------------------------------------------------------------------------

SCHEDULERS = {
    "ConstantLR": lambda m, o: m.ConstantLR(o, factor=0.5, total_iters=4),
    "LinearLR": lambda m, o: m.LinearLR(o, start_factor=0.1, end_factor=0.9, total_iters=7),
    "PolynomialLR": lambda m, o: m.PolynomialLR(o, total_iters=10, power=2.0),
    "CosineAnnealingWarmRestarts": lambda m, o: m.CosineAnnealingWarmRestarts(o, T_0=3, T_mult=2, eta_min=0.001),
    "CosineAnnealingWarmRestarts-1": lambda m, o: m.CosineAnnealingWarmRestarts(o, T_0=4),
    "OneCycleLR": lambda m, o: m.OneCycleLR(o, max_lr=[1.0, 0.5], total_steps=25),
    "OneCycleLR-3phase": lambda m, o: m.OneCycleLR(o, max_lr=1.0, epochs=5, steps_per_epoch=5,
                                                   anneal_strategy="linear", three_phase=True),
    "SequentialLR": lambda m, o: m.SequentialLR(o, [m.LinearLR(o, start_factor=0.1, total_iters=4),
                                                    m.ExponentialLR(o, gamma=0.9),
                                                    m.CosineAnnealingLR(o, T_max=5)], milestones=[5, 12]),
    "SequentialLR-warmup": lambda m, o: m.SequentialLR(o, [m.ConstantLR(o, factor=0.1, total_iters=2),
                                                           m.StepLR(o, step_size=3)], milestones=[4]),
    "ChainedScheduler": lambda m, o: m.ChainedScheduler([m.LinearLR(o, start_factor=0.1, total_iters=4),
                                                         m.ExponentialLR(o, gamma=0.9)]),
}


def _sched_pair(key, opt_name):
    kw = dict(lr=0.1, momentum=0.9) if opt_name == "SGD" else dict(lr=0.1)
    p, tp = nn.Parameter(dt.zeros(2)), torch.nn.Parameter(torch.zeros(2))
    o = getattr(optim, opt_name)([{"params": [p]}, {"params": [nn.Parameter(dt.zeros(1))], "lr": 0.05}], **kw)
    to = getattr(torch.optim, opt_name)([{"params": [tp]}, {"params": [torch.nn.Parameter(torch.zeros(1))],
                                                          "lr": 0.05}], **kw)
    return o, to, SCHEDULERS[key](optim.lr_scheduler, o), SCHEDULERS[key](torch.optim.lr_scheduler, to)


def _groups(o):
    """Each group's lr, momentum and betas, flat."""
    return [float(v) for g in o.param_groups for v in (g["lr"], g.get("momentum", -1), *g.get("betas", ()))]


@pytest.mark.parametrize("opt_name", ["SGD", "Adam"])
@pytest.mark.parametrize("key", sorted(SCHEDULERS))
def test_scheduler_matches_torch(key, opt_name):
    o, to, s, ts = _sched_pair(key, opt_name)
    assert _groups(o) == pytest.approx(_groups(to), rel=1e-12)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        for i in range(25):
            o.step()
            to.step()
            s.step()
            ts.step()
            assert _groups(o) == pytest.approx(_groups(to), rel=1e-12, abs=1e-15), (key, i)
            assert s.get_last_lr() == pytest.approx(ts.get_last_lr(), rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("key", sorted(SCHEDULERS))
def test_scheduler_state_dict_round_trip_continues_like_torch(key, tmp_path):
    o, to, s, ts = _sched_pair(key, "SGD")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        for _ in range(9):
            o.step(), to.step(), s.step(), ts.step()
        dt.save({"optim": o.state_dict(), "sched": s.state_dict()}, tmp_path / "s.safetensors")
        ckpt = dt.load(tmp_path / "s.safetensors")
        o2, _, s2, _ = _sched_pair(key, "SGD")
        o2.load_state_dict(ckpt["optim"])
        s2.load_state_dict(ckpt["sched"])
        for i in range(12):
            o2.step(), to.step(), s2.step(), ts.step()
            assert [g["lr"] for g in o2.param_groups] == pytest.approx([g["lr"] for g in to.param_groups],
                                                                       rel=1e-12, abs=1e-15), (key, i)


@pytest.mark.parametrize("make,epochs", [
    (lambda m, o: m.LinearLR(o, start_factor=0.2, total_iters=6), [3, 0, 7, 2]),
    (lambda m, o: m.ConstantLR(o, factor=0.3, total_iters=3), [1, 5, 0]),
    (lambda m, o: m.PolynomialLR(o, total_iters=8, power=0.5), [4, 9, 1]),
    (lambda m, o: m.CosineAnnealingWarmRestarts(o, T_0=3, T_mult=2), [0.5, 4.25, 10, 2]),
])
def test_step_with_an_epoch_uses_torchs_closed_form(make, epochs):
    o = optim.SGD([nn.Parameter(dt.zeros(1))], lr=0.1)
    to = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    s, ts = make(optim.lr_scheduler, o), make(torch.optim.lr_scheduler, to)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        for e in epochs:
            s.step(e)
            ts.step(e)
            assert o.param_groups[0]["lr"] == pytest.approx(to.param_groups[0]["lr"], rel=1e-12)


def test_scheduler_argument_errors_are_torchs():
    o = optim.SGD([nn.Parameter(dt.zeros(1))], lr=0.1)
    m = optim.lr_scheduler
    with pytest.raises(ValueError, match="Starting multiplicative factor"):
        m.LinearLR(o, start_factor=0)
    with pytest.raises(ValueError, match="total_steps OR"):
        m.OneCycleLR(o, max_lr=1.0)
    with pytest.raises(ValueError, match="Expected positive integer T_0"):
        m.CosineAnnealingWarmRestarts(o, T_0=0)
    with pytest.raises(ValueError, match="one more than the number of milestone"):
        m.SequentialLR(o, [m.StepLR(o, 2)], milestones=[3])
    with pytest.raises(ValueError, match="does not support `ReduceLROnPlateau`"):
        m.ChainedScheduler([m.ReduceLROnPlateau(o)])
    with pytest.raises(ValueError, match="momentum or beta1"):
        m.OneCycleLR(optim.Adagrad([nn.Parameter(dt.zeros(1))]), max_lr=1.0, total_steps=5)
    s = m.OneCycleLR(o, max_lr=1.0, total_steps=2)
    o.step()
    s.step()
    s.step()
    with pytest.raises(ValueError, match="Tried to step 3 times"):
        s.step()


# ---- nn.utils ---------------------------------------------------------------------------------------

def _grads_pair(seed=0):
    r = np.random.default_rng(seed)
    arrs = [r.standard_normal(s) for s in [(3, 4), (5,), (2, 2)]]
    ps = [nn.Parameter(dt.tensor(a)) for a in arrs]
    tps = [torch.nn.Parameter(torch.tensor(a)) for a in arrs]
    for p, tp in zip(ps[:2], tps[:2]):  # the last one has no gradient
        g = r.standard_normal(tuple(p.shape)) * 3
        p.grad, tp.grad = dt.tensor(g), torch.tensor(g)
    return ps, tps


@pytest.mark.parametrize("max_norm,norm_type", [(1.0, 2.0), (100.0, 2.0), (0.5, 1.0), (0.7, float("inf")),
                                                (2.0, 3.0)])
def test_clip_grad_norm_matches_torch(max_norm, norm_type):
    ps, tps = _grads_pair()
    n = nn.utils.clip_grad_norm_(ps, max_norm, norm_type)
    tn = torch.nn.utils.clip_grad_norm_(tps, max_norm, norm_type)
    assert float(n) == pytest.approx(float(tn), rel=1e-12)
    for p, tp in zip(ps[:2], tps[:2]):
        np.testing.assert_allclose(_np(p.grad), tp.grad.numpy(), rtol=1e-12)
    assert ps[2].grad is None


def test_clip_grad_norm_error_if_nonfinite():
    ps, _ = _grads_pair()
    ps[0].grad[0, 0] = float("nan")
    with pytest.raises(RuntimeError, match="non-finite"):
        nn.utils.clip_grad_norm_(ps, 1.0, error_if_nonfinite=True)


def test_clip_grad_value_and_vector_round_trip_match_torch():
    ps, tps = _grads_pair(1)
    nn.utils.clip_grad_value_(ps, 0.8)
    torch.nn.utils.clip_grad_value_(tps, 0.8)
    for p, tp in zip(ps[:2], tps[:2]):
        np.testing.assert_array_equal(_np(p.grad), tp.grad.numpy())
    v, tv = nn.utils.parameters_to_vector(ps), torch.nn.utils.parameters_to_vector(tps)
    np.testing.assert_array_equal(_np(v), tv.detach().numpy())
    new = np.arange(v.numel(), dtype=np.float64)
    nn.utils.vector_to_parameters(dt.tensor(new), ps)
    torch.nn.utils.vector_to_parameters(torch.tensor(new), tps)
    for p, tp in zip(ps, tps):
        np.testing.assert_array_equal(_np(p), tp.detach().numpy())


# ---- devtensor.accelerator ------------------------------------------------------------------------

def test_accelerator_maps_to_cuda():
    acc = dt.accelerator
    assert acc.is_available() == dt.cuda.is_available()
    assert acc.device_count() == (dt.cuda.device_count() if dt.cuda.is_available() else 0)
    if not dt.cuda.is_available():
        assert acc.current_accelerator() is None
        for fn in (acc.current_device_index, acc.synchronize, acc.empty_cache, acc.memory_allocated):
            with pytest.raises(RuntimeError, match="Cannot access accelerator device when none is available."):
                fn()
        with acc.device_index(None):
            pass
    else:  # pragma: no cover - GPU machines
        assert acc.current_accelerator() == dt.device("cuda")
        assert acc.current_device_index() == dt.cuda.current_device()
        acc.synchronize()
        with acc.device_index(0):
            assert acc.current_device_index() == 0


# ---- PyTorch's own MNIST example --------------------------------------------------------------------

def test_pytorch_mnist_example_runs_with_only_its_imports_changed():
    root = os.path.join(os.path.dirname(__file__), "..")
    script = os.path.join(root, "examples", "pytorch_mnist_main.py")
    out = subprocess.run([sys.executable, script, "--epochs", "1", "--dry-run", "--no-accel"], cwd=root,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Train Epoch: 1 [0/4000 (0%)]" in out.stdout and "Test set: Average loss:" in out.stdout
