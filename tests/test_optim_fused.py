"""The fused steps of Adagrad, Adadelta, Adamax, NAdam, RAdam, Rprop and ASGD (adagrad_step_ ...
asgd_step_): each optimizer's fused path against PyTorch from the same start (float32 to 1e-6
relative, float64 to 1e-12), against its own Tensor-op path, through state_dict round trips in the
middle of a run; the numpy reference (backends/optim_portable.py) against PyTorch; wrong state
shapes; the optimizers on the cuda backend where one runs (the CUDA-C emulator in CI). Also the
state check that step() now skips while nothing changed."""
from __future__ import annotations

import numpy as np
import pytest

import devtensor as dt
from devtensor import nn, optim
from devtensor.backends.optim_portable import STEPS
from devtensor.dispatch import OPS
from devtensor.ops import optim_steps

from test_optim_extra import CONFIGS, IDS, _compare, _np, _state_value

torch = pytest.importorskip("torch")

OP_OF = {"Adagrad": "adagrad_step_", "Adadelta": "adadelta_step_", "Adamax": "adamax_step_",
         "NAdam": "nadam_step_", "RAdam": "radam_step_", "Rprop": "rprop_step_", "ASGD": "asgd_step_"}
CONFIGS = CONFIGS + [("Adamax", dict(betas=(0.3, 0.9))), ("NAdam", dict(betas=(0.2, 0.9), maximize=True)),
                     ("RAdam", dict(betas=(0.4, 0.6), weight_decay=0.1, maximize=True)),  # lerp weight >= 0.5
                     ("Adagrad", dict(lr=0.1, fused=True, weight_decay=0.1, maximize=True))]
IDS = IDS + ["Adamax-big-weight", "NAdam-big-weight", "RAdam-big-weight", "Adagrad-fused-True"]
TOL = {np.float64: dict(rtol=1e-12, atol=1e-15), np.float32: dict(rtol=1e-6, atol=1e-7)}


def _params(dtype, seed=0):
    r = np.random.default_rng(seed)
    return [r.standard_normal(s).astype(dtype) for s in [(4, 3), (5,), (37,)]], r


def _groups(ps, name, kw):
    lr = kw.get("lr", getattr(torch.optim, name)([torch.zeros(1, requires_grad=True)]).defaults["lr"])
    return [{"params": ps[:2]}, {"params": ps[2:], "lr": lr * 0.5}]


def _run(name, kw, dtype, steps, fused=None, seed=0, device="cpu"):
    """`steps` steps of devtensor's optimizer and of PyTorch's from the same start and gradients."""
    inits, r = _params(dtype, seed)
    ps = [nn.Parameter(dt.tensor(a, device=device)) for a in inits]
    tps = [torch.nn.Parameter(torch.tensor(a)) for a in inits]
    opt = getattr(optim, name)(_groups(ps, name, kw), **kw)
    topt = getattr(torch.optim, name)(_groups(tps, name, kw), **kw)
    if fused is False:
        for g in opt.param_groups:
            g["fused"] = False
    for _ in range(steps):
        for p, tp in zip(ps, tps):
            g = r.standard_normal(tuple(p.shape)).astype(dtype)
            p.grad, tp.grad = dt.tensor(g, device=device), torch.tensor(g)
        opt.step()
        topt.step()
        for p in ps:  # the last write to the parameter names the op that made it
            assert (p._vc[1] == OP_OF[name]) == (fused is not False), (p._vc, fused)
    return ps, tps, opt, topt


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("name,kw", CONFIGS, ids=IDS)
def test_fused_step_matches_torch(name, kw, dtype):
    ps, tps, opt, topt = _run(name, kw, dtype, 8)
    _compare(ps, tps, opt, topt, TOL[dtype])


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("name,kw", CONFIGS, ids=IDS)
def test_reference_and_portable_tier_match_torch(name, kw, dtype, monkeypatch):
    """optim_portable's array-level steps (the ops' numpy reference, and CuPy's tier on cuda) run in
    place of the fused kernel, fed what the optimizer feeds the op: PyTorch's results."""
    from devtensor.optim.optimizer import Optimizer

    def portable(op, args, attrs):
        arrays = [a._data for a in args]
        STEPS[op.name].xp(np, arrays[0], arrays[1], *arrays[2:], **attrs)
        args[0]._bump(op.name)

    monkeypatch.setattr(Optimizer, "_run_fused", staticmethod(portable))
    ps, tps, opt, topt = _run(name, kw, dtype, 8)
    _compare(ps, tps, opt, topt, TOL[dtype])


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("name,kw", [c for c in CONFIGS if "fused" not in c[1]],
                         ids=[i for i, c in zip(IDS, CONFIGS) if "fused" not in c[1]])
def test_fused_step_equals_the_tensor_op_step(name, kw, dtype):
    a = _run(name, kw, dtype, 6)
    b = _run(name, kw, dtype, 6, fused=False)
    for p, q in zip(a[0], b[0]):
        np.testing.assert_allclose(_np(p), _np(q), **TOL[dtype])
        for k, v in a[2].state[p].items():
            np.testing.assert_allclose(_state_value(v), _state_value(b[2].state[q][k]), err_msg=k, **TOL[dtype])


@pytest.mark.parametrize("name,kw", CONFIGS, ids=IDS)
def test_state_dict_round_trip_mid_run_continues_bit_for_bit(name, kw, tmp_path):
    """float32, fused: 3 steps, dt.save / dt.load of the optimizer, a fresh optimizer loads it, 4 more
    steps: the same bits as 7 uninterrupted steps."""
    r = np.random.default_rng(3)
    inits, _ = _params(np.float32, 1)
    grads = [[r.standard_normal(a.shape).astype(np.float32) for a in inits] for _ in range(7)]

    def steps(ps, opt, gs):
        for g in gs:
            for p, a in zip(ps, g):
                p.grad = dt.tensor(a)
            opt.step()

    ref = [nn.Parameter(dt.tensor(a)) for a in inits]
    steps(ref, getattr(optim, name)(_groups(ref, name, kw), **kw), grads)
    ps = [nn.Parameter(dt.tensor(a)) for a in inits]
    opt = getattr(optim, name)(_groups(ps, name, kw), **kw)
    steps(ps, opt, grads[:3])
    dt.save({"optim": opt.state_dict()}, tmp_path / "ckpt.safetensors")
    fresh = getattr(optim, name)(_groups(ps, name, kw), **kw)
    fresh.load_state_dict(dt.load(tmp_path / "ckpt.safetensors")["optim"])
    steps(ps, fresh, grads[3:])
    for p, q in zip(ps, ref):
        np.testing.assert_array_equal(_np(p), _np(q))


@pytest.mark.parametrize("twins", [False, True], ids=["serial", "parallel"])
@pytest.mark.parametrize("op", sorted(STEPS))
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
def test_op_kernel_equals_the_reference_on_its_samples(op, dtype, twins, monkeypatch):
    """The cpu kernel (numba, float32 / float64; serial, or the parallel=True twin used for large
    arrays) against the op's numpy reference: param and state."""
    if twins:
        from devtensor.backends.cpu import optim_steps as loops

        monkeypatch.setattr(loops, "_PAR_MIN_OPTIM", 0)
    o = OPS[op]
    for args, kw in o.samples(dtype):
        want = [a.copy() for a in args]
        STEPS[op].xp(np, *want, **kw)
        got = [a.copy() for a in args]
        assert o.kernels["cpu"](*got, **kw) is got[0]
        for i in [0] + list(range(2, len(got))):
            np.testing.assert_allclose(got[i], want[i], **TOL[dtype], err_msg=f"{op} array {i} {kw}")


def test_fused_true_where_no_kernel_can_run_is_an_error_naming_why():
    p = nn.Parameter(dt.ones(4, 4, dtype=dt.float16))
    p.grad = dt.ones(4, 4, dtype=dt.float16)
    with pytest.raises(RuntimeError, match=r"Adagrad\(fused=True\): cannot fuse the update of a parameter of "
                                           r"shape \[4, 4\] on cpu: its dtype is float16"):
        optim.Adagrad([p], fused=True).step()
    optim.Adagrad([p]).step()  # fused=None: the Tensor ops
    assert p._vc[1] != "adagrad_step_" and np.all(np.isfinite(_np(p).astype(np.float64)))


# ---- wrong state shapes -----------------------------------------------------------------------------

@pytest.mark.parametrize("op", sorted(STEPS))
def test_op_refuses_state_of_another_shape_before_the_kernel_runs(op):
    o = OPS[op]
    (args, kw), = o.samples(np.float32)[:1]
    p, g, *state = (dt.tensor(a) for a in args)
    bad = [dt.zeros(tuple(p.shape) + (2,)) if i == len(state) - 1 else s for i, s in enumerate(state)]
    name = STEPS[op].state[-1]
    before = _np(p).copy()
    with pytest.raises(RuntimeError, match=rf"{op}: '{name}' has shape \[{p.shape[0]}, 2\] but the parameter has "
                                           rf"shape \[{p.shape[0]}\]"):
        getattr(optim_steps, op)(p, g, *bad, **kw)
    np.testing.assert_array_equal(_np(p), before)


@pytest.mark.parametrize("name", sorted(OP_OF))
@pytest.mark.parametrize("fused", [None, False], ids=["fused", "tensor-ops"])
def test_assigned_state_of_another_shape_raises_at_step(name, fused):
    p = nn.Parameter(dt.ones(2, 3))
    opt = getattr(optim, name)([p])
    opt.param_groups[0]["fused"] = fused
    for _ in range(3):  # the state has been checked and found to fit: the check is now cached
        p.grad = dt.ones(2, 3)
        opt.step()
    key = STEPS[OP_OF[name]].state[-1]
    opt.state[p][key] = dt.zeros(3, 2)
    w = _np(p).copy()
    with pytest.raises(RuntimeError, match=rf"{name}.step\(\): parameter 0 of parameter group 0: state '{key}' has "
                                           r"shape \[3, 2\] but the parameter has shape \[2, 3\]"):
        opt.step()
    np.testing.assert_array_equal(_np(p), w)


@pytest.mark.parametrize("name", sorted(OP_OF))
def test_load_state_dict_of_another_model_raises(name):
    small, big = nn.Parameter(dt.ones(3)), nn.Parameter(dt.ones(5))
    src = getattr(optim, name)([small])
    small.grad = dt.ones(3)
    src.step()
    dst = getattr(optim, name)([big])
    with pytest.raises(ValueError, match=rf"{name}.load_state_dict\(\): state '{STEPS[OP_OF[name]].state[0]}' "
                                         r"of parameter 0 of parameter group 0 .* has shape \[3\] but the "
                                         r"parameter has shape \[5\]"):
        dst.load_state_dict(src.state_dict())


def test_replacing_a_parameters_data_is_noticed_by_the_next_step():
    p = nn.Parameter(dt.ones(2, 3))
    opt = optim.Adam([p])
    for _ in range(2):
        p.grad = dt.ones(2, 3)
        opt.step()
    assert opt.state[p].checked is not None  # cached: step 2 found the state to fit
    p.data = dt.ones(3, 3)
    p.grad = dt.ones(3, 3)
    with pytest.raises(RuntimeError, match=r"Adam.step\(\): parameter 0 of parameter group 0: state 'exp_avg' has "
                                           r"shape \[2, 3\] but the parameter has shape \[3, 3\]"):
        opt.step()
    p.data = dt.ones(2, 3, dtype=dt.float64)  # same shape, new dtype: the state follows
    p.grad = dt.ones(2, 3, dtype=dt.float64)
    opt.step()
    assert opt.state[p]["exp_avg"].dtype is dt.float64 and opt.state[p]["exp_avg_sq"].dtype is dt.float64


def test_param_state_pickles_as_a_dict_and_host_scalars_keep_the_check():
    import copy
    import pickle

    p = nn.Parameter(dt.ones(3))
    opt = optim.ASGD([p], t0=1)
    for _ in range(3):
        p.grad = dt.ones(3)
        opt.step()
    st = opt.state[p]
    assert st.checked is not None  # ASGD stores eta and mu every step: that does not force a check
    st["ax"] = st["ax"]
    assert st.checked is None
    st.update(step=st["step"])
    assert st.checked is None
    for clone in (pickle.loads(pickle.dumps(st)), copy.deepcopy(st)):
        assert type(clone) is type(st) and set(clone) == set(st) and clone.checked is None


# ---- the cuda backend (the CUDA-C emulator and fake CuPy in CI; a GPU where there is one) -----------

def _cuda():
    try:
        return dt.cuda.is_available()
    except Exception:  # pragma: no cover - broken driver installs
        return False


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32-cuda-c", "f64-cupy"])
@pytest.mark.parametrize("name,kw", CONFIGS, ids=IDS)
def test_fused_step_on_cuda_matches_torch(name, kw, dtype):
    if not _cuda():
        pytest.skip("no cuda device (run under ci/kernel_emulator/run.py)")
    ps, tps, opt, topt = _run(name, kw, dtype, 5, device="cuda")
    tol = dict(rtol=2e-5, atol=1e-6) if dtype == np.float32 else TOL[dtype]  # CUDA C may contract to fma
    _compare(ps, tps, opt, topt, tol)
