"""devtensor.optim: optimizers (fused kernel and Tensor-op paths) and lr schedulers.

Tests comparing with torch.optim skip where torch is not installed; the rest are self-contained."""
from __future__ import annotations

import math

import numpy as np
import pytest

import devtensor as dt
from devtensor import nn, optim
from devtensor.dispatch import OPS
from devtensor.optim import lr_scheduler


def _torch():
    return pytest.importorskip("torch")


def _np(t):
    return np.asarray(t.detach()._data)


CONFIGS = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9)),
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.3, weight_decay=0.01)),
    ("SGD", dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.1, maximize=True)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
    ("Adam", dict(lr=0.01, amsgrad=True, maximize=True)),
    ("AdamW", dict(lr=0.01)),
    ("AdamW", dict(lr=0.01, weight_decay=0.1, amsgrad=True)),
    ("RMSprop", dict(lr=0.01)),
    ("RMSprop", dict(lr=0.01, alpha=0.9, momentum=0.5, weight_decay=0.1)),
    ("RMSprop", dict(lr=0.01, centered=True, maximize=True)),
    ("RMSprop", dict(lr=0.01, centered=True, momentum=0.9)),
]


def _run_pair(name, kw, fused, dtype=np.float64, steps=5, transposed=False):
    """Same start, same gradients, `steps` steps in devtensor and torch; returns both parameter sets."""
    torch = _torch()
    r = np.random.default_rng(0)
    shapes = [(4, 3), (5,)]
    inits = [r.standard_normal(s).astype(dtype) for s in shapes]
    ps = [nn.Parameter(dt.tensor(a)) for a in inits]
    if transposed:  # a non-contiguous parameter: its update runs through the Tensor-op path
        ps[0] = nn.Parameter(dt.tensor(inits[0].T.copy()).T)
        assert not ps[0].is_contiguous()
    tps = [torch.nn.Parameter(torch.tensor(a)) for a in inits]
    # two groups: the second with its own learning rate
    opt = getattr(optim, name)([{"params": [ps[0]]}, {"params": [ps[1]], "lr": kw["lr"] * 0.5}], fused=fused, **kw)
    topt = getattr(torch.optim, name)([{"params": [tps[0]]}, {"params": [tps[1]], "lr": kw["lr"] * 0.5}], **kw)
    for _ in range(steps):
        for p, tp in zip(ps, tps):
            g = r.standard_normal(tuple(p.shape)).astype(dtype)
            p.grad, tp.grad = dt.tensor(g), torch.tensor(g)
        opt.step()
        topt.step()
    return opt, topt, ps, tps


@pytest.mark.parametrize("fused", [None, False], ids=["fused", "tensor-ops"])
@pytest.mark.parametrize("name,kw", CONFIGS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CONFIGS)])
def test_optimizer_matches_torch(name, kw, fused):
    opt, topt, ps, tps = _run_pair(name, kw, fused)
    for p, tp in zip(ps, tps):
        np.testing.assert_allclose(_np(p), tp.detach().numpy(), rtol=1e-10, atol=1e-12)
    for p, tp in zip(ps, tps):
        st, tst = opt.state[p], topt.state[tp]
        assert set(st) == set(tst)
        for k in st:
            want = tst[k].item() if k == "step" else tst[k].numpy()
            got = st[k] if k == "step" else _np(st[k])
            np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12, err_msg=k)


@pytest.mark.parametrize("name,kw", [CONFIGS[2], CONFIGS[6], CONFIGS[12]], ids=["SGD", "Adam", "RMSprop"])
def test_float32_and_non_contiguous_parameters_match_torch(name, kw):
    _, _, ps, tps = _run_pair(name, kw, None, dtype=np.float32)
    for p, tp in zip(ps, tps):
        np.testing.assert_allclose(_np(p), tp.detach().numpy(), rtol=1e-5, atol=1e-6)
    _, _, ps, tps = _run_pair(name, kw, None, transposed=True)
    for p, tp in zip(ps, tps):
        np.testing.assert_allclose(_np(p), tp.detach().numpy(), rtol=1e-10, atol=1e-12)


def test_training_a_model_matches_torch():
    torch = _torch()
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3)).double()
    tmodel = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3)).double()
    model.load_state_dict({k: dt.tensor(v.numpy()) for k, v in tmodel.state_dict().items()})
    opt = optim.Adam(model.parameters(), lr=0.01)
    topt = torch.optim.Adam(tmodel.parameters(), lr=0.01)
    sched = lr_scheduler.StepLR(opt, 2, gamma=0.5)
    tsched = torch.optim.lr_scheduler.StepLR(topt, 2, gamma=0.5)
    r = np.random.default_rng(1)
    for _ in range(6):
        x, y = r.standard_normal((10, 6)), r.integers(0, 3, 10)
        opt.zero_grad()
        topt.zero_grad()
        nn.CrossEntropyLoss()(model(dt.tensor(x)), dt.tensor(y)).backward()
        torch.nn.CrossEntropyLoss()(tmodel(torch.tensor(x)), torch.tensor(y)).backward()
        opt.step()
        topt.step()
        sched.step()
        tsched.step()
        assert sched.get_last_lr() == pytest.approx(tsched.get_last_lr())
    for (n, p), (_, tp) in zip(model.named_parameters(), tmodel.named_parameters()):
        np.testing.assert_allclose(_np(p), tp.detach().numpy(), rtol=1e-9, atol=1e-12, err_msg=n)


SCHEDULERS = [
    ("StepLR", dict(step_size=3, gamma=0.5)),
    ("MultiStepLR", dict(milestones=[2, 5, 5, 9], gamma=0.3)),
    ("ExponentialLR", dict(gamma=0.9)),
    ("CosineAnnealingLR", dict(T_max=4, eta_min=0.01)),
    ("LambdaLR", dict(lr_lambda=lambda e: 1.0 / (e + 1))),
]


@pytest.mark.parametrize("name,kw", SCHEDULERS, ids=[n for n, _ in SCHEDULERS])
def test_scheduler_matches_torch(name, kw):
    torch = _torch()
    p = nn.Parameter(dt.zeros(2))
    tp = torch.nn.Parameter(torch.zeros(2))
    opt = optim.SGD([{"params": [p]}], lr=0.1)
    opt.add_param_group({"params": [nn.Parameter(dt.zeros(1))], "lr": 0.5})
    topt = torch.optim.SGD([{"params": [tp]}], lr=0.1)
    topt.add_param_group({"params": [torch.nn.Parameter(torch.zeros(1))], "lr": 0.5})
    s = getattr(lr_scheduler, name)(opt, **kw)
    ts = getattr(torch.optim.lr_scheduler, name)(topt, **kw)
    assert s.get_last_lr() == pytest.approx(ts.get_last_lr())
    for _ in range(14):
        opt.step()
        topt.step()
        s.step()
        ts.step()
        assert s.last_epoch == ts.last_epoch
        assert s.get_last_lr() == pytest.approx(ts.get_last_lr(), rel=1e-12)
        assert [g["lr"] for g in opt.param_groups] == pytest.approx([g["lr"] for g in topt.param_groups])


# ---- self-contained checks ----------------------------------------------------------------

def test_validation_errors_read_like_pytorchs():
    ps = [nn.Parameter(dt.zeros(2))]
    with pytest.raises(ValueError, match="^Invalid learning rate: -1$"):
        optim.SGD(ps, lr=-1)
    with pytest.raises(ValueError, match="Invalid momentum value: -0.5"):
        optim.SGD(ps, lr=0.1, momentum=-0.5)
    with pytest.raises(ValueError, match="Nesterov momentum requires a momentum and zero dampening"):
        optim.SGD(ps, lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="Invalid beta parameter at index 1: 1.0"):
        optim.Adam(ps, betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="Invalid epsilon value: -1e-08"):
        optim.AdamW(ps, eps=-1e-8)
    with pytest.raises(ValueError, match="Invalid weight_decay value: -0.1"):
        optim.Adam(ps, weight_decay=-0.1)
    with pytest.raises(ValueError, match="Invalid alpha value: -0.9"):
        optim.RMSprop(ps, alpha=-0.9)
    with pytest.raises(ValueError, match="optimizer got an empty parameter list"):
        optim.Adam([])
    with pytest.raises(TypeError, match="iterable of Tensors or dicts"):
        optim.Adam(ps[0])
    with pytest.raises(ValueError, match="can't optimize a non-leaf Tensor"):
        optim.SGD([ps[0] * 2], lr=0.1)
    opt = optim.SGD(ps, lr=0.1)
    with pytest.raises(ValueError, match="some parameters appear in more than one parameter group"):
        opt.add_param_group({"params": ps})


def test_defaults_and_param_groups():
    p, q = nn.Parameter(dt.zeros(2)), nn.Parameter(dt.zeros(3))
    opt = optim.AdamW([{"params": [p]}, {"params": q, "weight_decay": 0.0}], lr=0.01)
    assert opt.param_groups[0]["weight_decay"] == 1e-2 and opt.param_groups[1]["weight_decay"] == 0.0
    assert opt.param_groups[1]["params"] == [q] and opt.param_groups[0]["betas"] == (0.9, 0.999)
    assert optim.SGD([p]).defaults["lr"] == 1e-3 and optim.RMSprop([p]).defaults["lr"] == 1e-2
    named = optim.SGD([("w", p), ("b", q)], lr=0.1)
    assert named.param_groups[0]["param_names"] == ["w", "b"]
    assert "Parameter Group 0" in repr(opt) and "lr: 0.01" in repr(opt)


def test_zero_grad_set_to_none_and_steps_skip_missing_grads():
    p, q = nn.Parameter(dt.ones(2)), nn.Parameter(dt.ones(2))
    opt = optim.Adam([p, q], lr=0.1)
    (p * 3).sum().backward()
    opt.step()  # q has no gradient: no state, no change
    assert q not in opt.state and _np(q).tolist() == [1.0, 1.0] and opt.state[p]["step"] == 1
    g = p.grad
    opt.zero_grad(set_to_none=False)
    assert p.grad is g and _np(g).tolist() == [0.0, 0.0]
    opt.zero_grad()
    assert p.grad is None and q.grad is None


def test_step_with_closure_returns_the_loss():
    w = nn.Parameter(dt.tensor([0.0]))
    opt = optim.SGD([w], lr=0.1)

    def closure():
        opt.zero_grad()
        loss = ((w - 3.0) ** 2).sum()
        loss.backward()
        return loss

    for _ in range(60):
        loss = opt.step(closure)
    assert loss.item() < 1e-6 and w.item() == pytest.approx(3.0, abs=1e-3)


def test_linear_regression_learns_the_line():
    dt.manual_seed(0)
    x = dt.linspace(-1, 1, 64).reshape(-1, 1)
    y = 3 * x + 2
    model = nn.Linear(1, 1)
    opt = optim.SGD(model.parameters(), lr=0.3, momentum=0.5)
    for _ in range(100):
        opt.zero_grad()
        nn.MSELoss()(model(x), y).backward()
        opt.step()
    assert model.weight.item() == pytest.approx(3.0, abs=1e-3) and model.bias.item() == pytest.approx(2.0, abs=1e-3)


@pytest.mark.parametrize("name,kw", [CONFIGS[3], CONFIGS[6], CONFIGS[10], CONFIGS[12]],
                         ids=["SGD", "Adam", "RMSprop", "RMSprop-centered"])
def test_fused_kernel_and_tensor_ops_agree_without_torch(name, kw):
    r = np.random.default_rng(2)
    start = r.standard_normal((3, 4))
    results = []
    for fused in (True, False):
        p = nn.Parameter(dt.tensor(start))
        opt = getattr(optim, name)([p], fused=fused, **kw)
        rr = np.random.default_rng(3)
        for _ in range(4):
            p.grad = dt.tensor(rr.standard_normal((3, 4)))
            opt.step()
        results.append((_np(p).copy(), {k: (v if k == "step" else _np(v).copy()) for k, v in opt.state[p].items()}))
    (pa, sa), (pb, sb) = results
    np.testing.assert_allclose(pa, pb, rtol=1e-12, atol=1e-14)
    assert sa.keys() == sb.keys()
    for k in sa:
        np.testing.assert_allclose(sa[k], sb[k], rtol=1e-12, atol=1e-14, err_msg=k)


def test_fused_step_is_one_kernel_call_per_parameter(monkeypatch):
    op = OPS["adam_step_"]
    calls = []
    real = op.kernels["cpu"]
    monkeypatch.setitem(op.kernels, "cpu", lambda *a, **k: calls.append(a[0].shape) or real(*a, **k))
    model = nn.Linear(4, 3)
    opt = optim.Adam(model.parameters())
    model(dt.ones(2, 4)).sum().backward()
    opt.step()
    assert calls == [(3, 4), (3,)]
    calls.clear()
    opt_slow = optim.Adam(model.parameters(), fused=False)
    opt_slow.step()
    assert calls == []


def test_backend_without_a_fused_kernel_falls_back_to_tensor_ops(monkeypatch):
    op = OPS["sgd_step_"]
    monkeypatch.delitem(op.kernels, "cpu")
    p = nn.Parameter(dt.tensor([1.0, 2.0]))
    p.grad = dt.tensor([1.0, 1.0])
    optim.SGD([p], lr=0.5, momentum=0.9).step()
    assert _np(p).tolist() == [0.5, 1.5]
    with pytest.raises(RuntimeError, match="fused=True.*has no sgd_step_ kernel"):
        optim.SGD([p], lr=0.5, fused=True).step()
    h = nn.Parameter(dt.ones(2, dtype=dt.float16))
    h.grad = dt.ones(2, dtype=dt.float16)
    with pytest.raises(RuntimeError, match="dtype is float16"):
        optim.Adam([h], fused=True).step()
    optim.Adam([h], lr=0.5).step()  # low precision: the Tensor-op path
    assert h.dtype is dt.float16 and _np(h).tolist() == [0.5, 0.5]


def test_fused_step_bumps_the_parameters_version():
    p = nn.Parameter(dt.tensor([1.0, 2.0]))
    y = (p * p).sum()  # saves p for backward
    p.grad = dt.ones(2)
    optim.SGD([p], lr=0.1).step()
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.backward()


def _trained(opt_cls, **kw):
    dt.manual_seed(7)
    model = nn.Linear(3, 2)
    opt = opt_cls(model.parameters(), **kw)
    x = dt.randn(4, 3)
    for _ in range(3):
        opt.zero_grad()
        model(x).pow(2).sum().backward()
        opt.step()
    return model, opt, x


@pytest.mark.parametrize("opt_cls,kw", [(optim.SGD, dict(lr=0.1, momentum=0.9)), (optim.Adam, dict(amsgrad=True)),
                                        (optim.RMSprop, dict(centered=True, momentum=0.5))],
                         ids=["SGD", "Adam", "RMSprop"])
def test_state_dict_round_trip_continues_identically(opt_cls, kw):
    model, opt, x = _trained(opt_cls, **kw)
    sd = opt.state_dict()
    assert sorted(sd) == ["param_groups", "state"] and sd["param_groups"][0]["params"] == [0, 1]
    assert set(sd["state"]) == {0, 1}
    clone = nn.Linear(3, 2)
    clone.load_state_dict(model.state_dict())
    opt2 = opt_cls(clone.parameters(), **kw)
    opt2.load_state_dict(sd)
    for k, v in opt.state[model.weight].items():  # copies, not shared with the source optimizer
        if k != "step":
            assert opt2.state[clone.weight][k] is not v
    for m, o in ((model, opt), (clone, opt2)):
        for _ in range(2):
            o.zero_grad()
            m(x).pow(2).sum().backward()
            o.step()
    np.testing.assert_array_equal(_np(model.weight), _np(clone.weight))
    np.testing.assert_array_equal(_np(model.bias), _np(clone.bias))


def test_load_state_dict_puts_state_on_the_parameters_device_and_dtype():
    _, opt, _ = _trained(optim.Adam)
    sd = opt.state_dict()
    meta = nn.Linear(3, 2).to("meta")
    opt_meta = optim.Adam(meta.parameters())
    opt_meta.load_state_dict(sd)
    for p in meta.parameters():
        st = opt_meta.state[p]
        assert st["step"] == 3
        assert st["exp_avg"].device.type == "meta" and st["exp_avg_sq"].device.type == "meta"
    # and training goes on there (state updated in place on the parameter's device)
    meta(dt.ones(4, 3, device="meta")).sum().backward()
    opt_meta.step()
    assert opt_meta.state[meta.weight]["step"] == 4
    dbl = nn.Linear(3, 2).double()
    opt_dbl = optim.Adam(dbl.parameters())
    opt_dbl.load_state_dict(sd)
    assert all(opt_dbl.state[p]["exp_avg"].dtype is dt.float64 for p in dbl.parameters())
    with pytest.raises(ValueError, match="different number of parameter groups"):
        optim.Adam([{"params": [dbl.weight]}, {"params": [dbl.bias]}]).load_state_dict(sd)
    with pytest.raises(ValueError, match="doesn't match the size of optimizer's group"):
        optim.Adam([dbl.weight]).load_state_dict(sd)


def test_optimizer_state_is_created_on_the_parameters_device():
    model = nn.Linear(3, 2).to("meta")
    for opt in (optim.Adam(model.parameters(), amsgrad=True), optim.SGD(model.parameters(), lr=0.1, momentum=0.9),
                optim.RMSprop(model.parameters(), centered=True, momentum=0.9)):
        for fused in (None, False):
            for g in opt.param_groups:
                g["fused"] = fused
            opt.zero_grad()
            model(dt.ones(2, 3, device="meta")).sum().backward()
            opt.step()
            for p in model.parameters():
                assert p.device.type == "meta"
                for k, v in opt.state[p].items():
                    assert k == "step" or (v.device.type == "meta" and tuple(v.shape) == tuple(p.shape)), k


# ---- lr schedulers ---------------------------------------------------------------------------

def _opt(lr=1.0):
    return optim.SGD([nn.Parameter(dt.zeros(1))], lr=lr)


def _lrs(sched, n):
    out = [sched.get_last_lr()[0]]
    for _ in range(n):
        sched.optimizer.step()
        sched.step()
        out.append(sched.get_last_lr()[0])
    return out


def test_schedulers_follow_their_closed_forms():
    assert _lrs(lr_scheduler.StepLR(_opt(), 3, gamma=0.5), 9) == pytest.approx(
        [0.5 ** (e // 3) for e in range(10)])
    assert _lrs(lr_scheduler.MultiStepLR(_opt(), [2, 5], gamma=0.1), 7) == pytest.approx(
        [1, 1, 0.1, 0.1, 0.1, 0.01, 0.01, 0.01])
    assert _lrs(lr_scheduler.ExponentialLR(_opt(), 0.9), 6) == pytest.approx([0.9 ** e for e in range(7)])
    assert _lrs(lr_scheduler.LambdaLR(_opt(2.0), lambda e: 1 / (1 + e)), 5) == pytest.approx(
        [2 / (1 + e) for e in range(6)])
    t_max, eta = 5, 0.1
    assert _lrs(lr_scheduler.CosineAnnealingLR(_opt(), t_max, eta_min=eta), 5) == pytest.approx(
        [eta + (1 - eta) * (1 + math.cos(math.pi * e / t_max)) / 2 for e in range(6)])


def test_scheduler_state_dict_and_resume():
    opt = _opt()
    s = lr_scheduler.StepLR(opt, 2, gamma=0.5)
    for _ in range(3):
        opt.step()
        s.step()
    sd = s.state_dict()
    assert sd["last_epoch"] == 3 and "optimizer" not in sd and opt.param_groups[0]["initial_lr"] == 1.0
    opt2 = _opt()
    opt2.load_state_dict(opt.state_dict())
    s2 = lr_scheduler.StepLR(opt2, 2, gamma=0.5)
    s2.load_state_dict(sd)
    assert s2.last_epoch == 3 and s2.get_last_lr() == [0.5]
    opt.step(), opt2.step()
    s.step(), s2.step()
    assert s.get_last_lr() == s2.get_last_lr() == [0.25]
    with pytest.raises(KeyError, match="initial_lr"):
        lr_scheduler.StepLR(_opt(), 2, last_epoch=3)
    lam = lr_scheduler.LambdaLR(_opt(), lambda e: 0.5)
    assert lam.state_dict()["lr_lambdas"] == [None]
    with pytest.raises(TypeError, match="is not an Optimizer"):
        lr_scheduler.StepLR(object(), 2)


@pytest.mark.parametrize("opt_cls,kw,key", [(optim.SGD, dict(lr=0.1, momentum=0.9), "momentum_buffer"),
                                            (optim.Adam, dict(), "exp_avg"),
                                            (optim.RMSprop, dict(centered=True), "grad_avg")],
                         ids=["SGD", "Adam", "RMSprop"])
def test_state_follows_the_parameter_when_the_module_moves_after_some_steps(opt_cls, kw, key):
    model, opt, x = _trained(opt_cls, **kw)
    model.double()
    opt.zero_grad()
    model(x.double()).pow(2).sum().backward()
    opt.step()
    assert all(opt.state[p][key].dtype is dt.float64 for p in model.parameters())
    model.to("meta")
    opt.zero_grad()
    model(dt.ones(4, 3, dtype=dt.float64, device="meta")).sum().backward()
    opt.step()
    assert all(opt.state[p][key].device.type == "meta" for p in model.parameters())


# ---- state of the wrong shape: an error, never an out-of-bounds write --------------------------

MISMATCH_CONFIGS = [
    ("SGD", dict(lr=0.1, momentum=0.9), "momentum_buffer"),
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True), "momentum_buffer"),
    ("Adam", dict(), "exp_avg"),
    ("AdamW", dict(), "exp_avg"),
    ("Adam", dict(amsgrad=True), "exp_avg"),
    ("RMSprop", dict(), "square_avg"),
    ("RMSprop", dict(momentum=0.9), "square_avg"),
    ("RMSprop", dict(centered=True), "square_avg"),
    ("RMSprop", dict(centered=True, momentum=0.9), "square_avg"),
]
_MISMATCH_IDS = ["SGD-momentum", "SGD-nesterov", "Adam", "AdamW", "Adam-amsgrad", "RMSprop", "RMSprop-momentum",
                 "RMSprop-centered", "RMSprop-centered-momentum"]

# Runs in a child process: before the shape check, the fused kernels read and wrote past the end
# of the small state buffers (segfault, "munmap_chunk(): invalid pointer"), which would kill pytest.
_MISMATCH_CHILD = r"""
import json, sys
import devtensor as dt
from devtensor import nn, optim

name, kw = sys.argv[1], json.loads(sys.argv[2])

def run(how, fused):
    dt.manual_seed(0)
    small, big = nn.Linear(3, 2), nn.Linear(4000, 2)
    src = getattr(optim, name)(small.parameters(), **kw)
    small(dt.randn(4, 3)).sum().backward()
    src.step()
    dst = getattr(optim, name)(big.parameters(), fused=fused, **kw)
    big(dt.randn(4, 4000)).sum().backward()
    try:
        if how == "load_state_dict":
            dst.load_state_dict(src.state_dict())
        else:  # state assigned by hand: only step() itself can notice
            dst.step()
            for p, q in zip(big.parameters(), small.parameters()):
                for k, v in src.state[q].items():
                    dst.state[p][k] = v if k == "step" else v.clone()
        dst.step()
    except Exception as e:
        return {"error": type(e).__name__, "message": str(e)}
    return {"error": None}

print(json.dumps({f"{how}/{fused}": run(how, fused) for how in ("load_state_dict", "assigned")
                  for fused in (None, False)}))
"""


@pytest.mark.parametrize("name,kw,first", MISMATCH_CONFIGS, ids=_MISMATCH_IDS)
def test_state_of_another_models_parameters_raises_instead_of_crashing(name, kw, first):
    import json
    import os
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(dt.__file__)))  # the child imports this devtensor
    proc = subprocess.run([sys.executable, "-c", _MISMATCH_CHILD, name, json.dumps(kw)], capture_output=True,
                          text=True, timeout=300, cwd=root)
    assert proc.returncode == 0, f"the child died (rc {proc.returncode}):\n{proc.stderr[-3000:]}"
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    for case, res in results.items():
        how = case.split("/")[0]
        if how == "load_state_dict":  # rejected at load, before anything is replaced
            assert res["error"] == "ValueError", (case, res)
            assert res["message"].startswith(f"{name}.load_state_dict(): state '{first}' of parameter 0 of "
                                              "parameter group 0"), (case, res)
        else:  # assigned by hand: step() raises, as PyTorch's step does
            assert res["error"] == "RuntimeError", (case, res)
            assert res["message"].startswith(f"{name}.step(): parameter 0 of parameter group 0: state '{first}'"), \
                (case, res)
        assert "shape [2, 3] but the parameter has shape [2, 4000]" in res["message"], (case, res)


def test_a_rejected_state_dict_leaves_the_optimizer_as_it_was():
    model, opt, x = _trained(optim.Adam, amsgrad=True)
    before = {k: (v if k == "step" else _np(v).copy()) for k, v in opt.state[model.bias].items()}
    groups = opt.param_groups
    other, other_opt, _ = _trained(optim.Adam, amsgrad=True, lr=0.5)
    sd = other_opt.state_dict()
    sd["state"][1]["exp_avg_sq"] = dt.zeros(3)  # the bias's (shape [2]); exp_avg stays right
    with pytest.raises(ValueError, match=r"state 'exp_avg_sq' of parameter 1 of parameter group 0 \(state_dict "
                                         r"index 1\) has shape \[3\] but the parameter has shape \[2\]"):
        opt.load_state_dict(sd)
    assert opt.param_groups is groups and opt.param_groups[0]["lr"] == 1e-3
    for k, v in opt.state[model.bias].items():
        assert v == before[k] if k == "step" else np.array_equal(_np(v), before[k])
    with pytest.raises(TypeError, match=r"state 'exp_avg_sq' .* must be a Tensor, got list"):
        sd["state"][1]["exp_avg_sq"] = [0.0, 0.0]
        opt.load_state_dict(sd)


@pytest.mark.parametrize("fused", [None, False], ids=["fused", "tensor-ops"])
def test_step_rejects_state_of_the_same_size_but_another_shape_and_broadcastable_state(fused):
    """Not crashes (the element counts fit or the Tensor ops would broadcast), but the state is not
    this parameter's: step() raises rather than updating with it."""
    for bad in (dt.zeros(3, 2), dt.zeros(1), dt.zeros(())):
        model, opt, x = _trained(optim.RMSprop, centered=True, momentum=0.5)
        for g in opt.param_groups:
            g["fused"] = fused
        w = _np(model.weight).copy()
        opt.state[model.weight]["grad_avg"] = bad
        with pytest.raises(RuntimeError, match=rf"RMSprop.step\(\): parameter 0 of parameter group 0: state "
                                               rf"'grad_avg' has shape \[{', '.join(map(str, bad.shape))}\] but "
                                               r"the parameter has shape \[2, 3\]"):
            opt.step()
        assert np.array_equal(_np(model.weight), w)  # the failing parameter was not touched
    opt.state[model.weight]["grad_avg"] = "not a tensor"
    with pytest.raises(TypeError, match="state 'grad_avg' must be a Tensor"):
        opt.step()


def test_assigned_state_is_cast_to_the_parameters_dtype_and_made_contiguous():
    model, opt, x = _trained(optim.Adam)
    ref, ref_opt, _ = _trained(optim.Adam)
    m = opt.state[model.weight]["exp_avg"]
    # the same values as float64, and as a transposed (non-contiguous) view
    opt.state[model.weight]["exp_avg"] = m.double()
    opt.state[model.bias]["exp_avg_sq"] = dt.tensor(_np(opt.state[model.bias]["exp_avg_sq"]).reshape(2, 1)).t()[0]
    for m_, o in ((model, opt), (ref, ref_opt)):
        o.zero_grad()
        m_(x).pow(2).sum().backward()
        o.step()
    st = opt.state[model.weight]["exp_avg"]
    assert st.dtype is dt.float32 and opt.state[model.bias]["exp_avg_sq"].is_contiguous()
    np.testing.assert_array_equal(_np(model.weight), _np(ref.weight))
    np.testing.assert_array_equal(_np(model.bias), _np(ref.bias))
    np.testing.assert_array_equal(_np(st), _np(ref_opt.state[ref.weight]["exp_avg"]))


RESUME_CONFIGS = [(n, kw) for n, kw, _ in MISMATCH_CONFIGS]


@pytest.mark.parametrize("name,kw", RESUME_CONFIGS, ids=_MISMATCH_IDS)
def test_resuming_from_a_saved_state_continues_like_an_uninterrupted_run_and_like_torch(name, kw, tmp_path):
    r = np.random.default_rng(5)
    inits = [r.standard_normal((4, 3)), r.standard_normal(4)]
    grads = [[r.standard_normal(a.shape) for a in inits] for _ in range(6)]

    def steps(ps, opt, gs):
        for g in gs:
            for p, a in zip(ps, g):
                p.grad = dt.tensor(a)
            opt.step()

    ref = [nn.Parameter(dt.tensor(a)) for a in inits]
    steps(ref, getattr(optim, name)(ref, **kw), grads)
    ps = [nn.Parameter(dt.tensor(a)) for a in inits]
    opt = getattr(optim, name)(ps, **kw)
    steps(ps, opt, grads[:3])
    dt.save({"params": ps, "optim": opt.state_dict()}, tmp_path / "ckpt.safetensors")
    ckpt = dt.load(tmp_path / "ckpt.safetensors")
    resumed = ckpt["params"]
    start = [_np(p).copy() for p in resumed]
    opt2 = getattr(optim, name)(resumed, **kw)
    opt2.load_state_dict(ckpt["optim"])
    steps(resumed, opt2, grads[3:])
    for a, b in zip(resumed, ref):
        np.testing.assert_array_equal(_np(a), _np(b))
    # PyTorch given the same saved state takes the same steps
    torch = _torch()
    tps = [torch.nn.Parameter(torch.tensor(a)) for a in start]
    topt = getattr(torch.optim, name)(tps, **kw)
    tstate = {i: {k: torch.tensor(float(v)) if k == "step" else torch.tensor(_np(v)) for k, v in s.items()}
              for i, s in ckpt["optim"]["state"].items()}
    topt.load_state_dict({"state": tstate, "param_groups": topt.state_dict()["param_groups"]})
    for g in grads[3:]:
        for p, a in zip(tps, g):
            p.grad = torch.tensor(a)
        topt.step()
    for a, b in zip(resumed, tps):
        np.testing.assert_allclose(_np(a), b.detach().numpy(), rtol=1e-10, atol=1e-12)
