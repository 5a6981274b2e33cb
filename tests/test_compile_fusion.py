"""dt.compile's optimised replay: the optimizer's fused step kernels run with live hyper-parameters,
elementwise chains (forward and backward) run as generated kernels
cached on disk, and planned buffers are reused. Compiled training must equal eager training:
bitwise where the generated code does the eager arithmetic, within 1e-4 relative (float32) or
1e-10 (float64) where a fused kernel computes exp/tanh its own way; the CUDA source generated for
the same groups compiles with NVRTC and runs in the CUDA-C emulator."""
from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import devtensor as dt
import devtensor.nn.functional as F
from devtensor import nn
from devtensor.compiler import codegen_cpu, codegen_cuda

ROOT = Path(__file__).resolve().parents[1]


class _Chains(nn.Module):
    """A model whose forward and backward have elementwise chains (scale, shift, tanh, product)."""

    def __init__(self, hidden=16):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(20, hidden), nn.Linear(hidden, 5)

    def forward(self, x):
        h = self.fc1(x)
        return self.fc2((h * 0.5 + 0.25).tanh() * h - h.relu() / 3.0)


def _mlp():
    return nn.Sequential(nn.Linear(20, 16), nn.ReLU(), nn.Linear(16, 5))


def _cnn():
    return nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(3 * 4 * 4, 5))


OPTIMIZERS = {
    "sgd": lambda p, **k: dt.optim.SGD(p, lr=0.05, momentum=0.9, **k),
    "sgd_plain": lambda p, **k: dt.optim.SGD(p, lr=0.05, weight_decay=1e-3, **k),
    "adam": lambda p, **k: dt.optim.Adam(p, lr=1e-2, **k),
    "adamw": lambda p, **k: dt.optim.AdamW(p, lr=1e-2, weight_decay=0.1, **k),
}


def _batches(n, shape, dtype=np.float32, seed=1):
    r = np.random.default_rng(seed)
    return [(dt.tensor(r.standard_normal((8, *shape)).astype(dtype)), dt.tensor(r.integers(0, 5, 8)))
            for _ in range(n)]


def _train(make_model, make_opt, batches, compiled, dtype=dt.float32, sched_inside=False, edit=None):
    """22 training steps with a scheduler (stepped inside or outside the compiled function); returns
    the model, the optimizer, the losses and the compiled function. `edit(i, opt)` runs before step i."""
    dt.manual_seed(0)
    model = make_model().to(dtype)
    opt = make_opt(model.parameters())
    sched = dt.optim.lr_scheduler.StepLR(opt, step_size=3, gamma=0.7)

    def step(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        if sched_inside:
            sched.step()
        return loss

    f = dt.compile(step, fullgraph=True) if compiled else step
    losses = []
    for i, (x, y) in enumerate(batches):
        if edit is not None:
            edit(i, opt)
        losses.append(f(x, y).item())
        if not sched_inside:
            sched.step()
    return model, opt, losses, f


def _count_own_steps(opt):
    """Counts the optimizer's own per-group Python (which the live step replaces)."""
    calls = []
    own = opt._step_group
    opt._step_group = lambda group: (calls.append(1), own(group))[1]
    return calls


@pytest.mark.parametrize("opt", sorted(OPTIMIZERS))
@pytest.mark.parametrize("model,shape", [("mlp", (20,)), ("cnn", (1, 10, 10))])
@pytest.mark.parametrize("sched_inside", [False, True])
def test_live_optimizer_steps_equal_eager_bitwise_and_skip_the_optimizers_python(model, shape, opt, sched_inside):
    make = {"mlp": _mlp, "cnn": _cnn}[model]
    batches = _batches(22, shape)
    m_e, o_e, l_e, _ = _train(make, OPTIMIZERS[opt], batches, False, sched_inside=sched_inside)
    own = []

    def edit(i, o):
        if i == 1:  # after the capture: count the optimizer's own Python from here on
            own.append(_count_own_steps(o))

    m_c, o_c, l_c, f = _train(make, OPTIMIZERS[opt], batches, True, sched_inside=sched_inside, edit=edit)
    assert own[0] == [], "the replays ran Optimizer._step_group instead of the live kernels"
    assert "live: " in f._last.plan.source
    assert l_e == l_c
    for (name, a), (_, b) in zip(m_e.named_parameters(), m_c.named_parameters()):
        np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy(), err_msg=name)
    for pe, pc in zip(m_e.parameters(), m_c.parameters()):  # the host-side state, as eager left it
        se, sc = o_e.state[pe], o_c.state[pc]
        assert se.keys() == sc.keys() and se.get("step") == sc.get("step")
    assert o_e.param_groups[0]["lr"] == o_c.param_groups[0]["lr"]


def test_param_group_edits_and_unusual_state_are_followed_exactly():
    """lr, betas and weight decay edited between calls are read by the next replay; a parameter whose
    state was dropped makes that replay run the optimizer's own step (which recreates it)."""
    def edit(i, opt):
        g = opt.param_groups[0]
        if i == 5:
            g["betas"] = (0.8, 0.99)
            g["weight_decay"] = 0.05
        if i == 9:
            g["lr"] = 0.003
        if i == 13:
            p = g["params"][1]
            del opt.state[p]
        if i == 17:
            g["amsgrad"] = True

    batches = _batches(22, (20,))
    m_e, o_e, l_e, _ = _train(_mlp, OPTIMIZERS["adam"], batches, False, edit=edit)
    m_c, o_c, l_c, _ = _train(_mlp, OPTIMIZERS["adam"], batches, True, edit=edit)
    assert l_e == l_c
    for a, b in zip(m_e.parameters(), m_c.parameters()):
        np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())
    assert [o_c.state[p]["step"] for p in m_c.parameters()] == [o_e.state[p]["step"] for p in m_e.parameters()]


def _close(a, b, dtype):
    if dtype == dt.float64:
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    else:
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("dtype", [dt.float32, dt.float64])
@pytest.mark.parametrize("opt", ["sgd", "adam", "adamw"])
def test_fused_chains_in_forward_and_backward_train_like_eager(dtype, opt):
    make_opt = OPTIMIZERS[opt]
    npdt = np.float64 if dtype == dt.float64 else np.float32
    batches = _batches(22, (20,), npdt)
    m_e, o_e, l_e, _ = _train(_Chains, make_opt, batches, False, dtype)
    dt.compiler.reset_stats()
    m_c, o_c, l_c, f = _train(_Chains, make_opt, batches, True, dtype)
    s = dt.compiler.stats()
    plan = f._last.plan
    assert s["fused_kernels"] == len(plan.groups) == 2  # the forward chain and its backward
    assert s["calls_per_replay"] == plan.calls < s["ops_replayed"]
    fwd, bwd = ({plan.nodes[i].op for i in g.nodes} for g in plan.groups)
    assert {"tanh", "mul", "add", "relu", "div", "sub"} == fwd and "relu_backward" in bwd
    _close(np.array(l_c), np.array(l_e), dtype)
    for a, b in zip(m_e.parameters(), m_c.parameters()):
        _close(b.detach().numpy(), a.detach().numpy(), dtype)


def test_chains_without_transcendentals_give_the_eager_bits():
    def f(x, w, b):
        h = x @ w
        return ((h * 2.0 + b).relu() - h / 3.0) @ w.T * -1.5

    r = np.random.default_rng(0)
    args = [dt.tensor(r.standard_normal(s).astype(np.float32)) for s in ((6, 8), (8, 8), (8,))]
    g = dt.compile(f)
    for _ in range(3):
        np.testing.assert_array_equal(g(*args).numpy(), f(*args).numpy())
    plan = g._last.plan
    assert len(plan.groups) == 1 and not plan.groups[0].approx
    assert plan.buffers, "a group output only a matmul reads is a planned buffer"


@pytest.mark.parametrize("shapes", [((3, 4, 5), (5,)), ((2, 1, 3), (1, 3)), ((4, 6), (4, 1)), ((2, 3, 4), (2, 3, 4))])
def test_broadcasts_and_non_contiguous_inputs(shapes):
    """Merged loop dimensions, broadcast inputs, a transposed (non-contiguous) input and a 0-d one."""
    def f(xt, b, s):
        x = xt.transpose(0, -1)
        return ((x * 2.0 + b).relu() - s) * x, (x - b) / 4.0

    r = np.random.default_rng(0)
    xs, bs = shapes
    xt_shape = (xs[-1], *xs[1:-1], xs[0])  # x = xt.transpose(0, -1) has shape xs and is not contiguous
    args = [dt.tensor(r.standard_normal(sh).astype(np.float32)) for sh in (xt_shape, bs)] + [dt.tensor(np.float32(.3))]
    g = dt.compile(f)
    for _ in range(3):
        for a, b in zip(g(*args), f(*args)):
            np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert len(g._last.plan.groups) == 1


def test_planned_buffers_are_reused_but_never_returned():
    def f(x, w):
        h = (x * 2.0 - 1.0).relu()      # only the matmul reads it: a planned buffer
        return h @ w, (x + 1.0) * 3.0   # returned: a new array every replay

    r = np.random.default_rng(0)
    w = dt.tensor(r.standard_normal((5, 3)).astype(np.float32))
    xs = [dt.tensor(r.standard_normal((4, 5)).astype(np.float32)) for _ in range(4)]
    g = dt.compile(f)
    outs = [g(x, w) for x in xs]
    plan = g._last.plan
    (buf,) = plan.buffers.values()
    assert "B" in plan.source and buf.shape == (4, 5)
    for x, (y, z) in zip(xs, outs):  # earlier results are not overwritten by later replays
        ey, ez = f(x, w)
        np.testing.assert_array_equal(y.numpy(), ey.numpy())
        np.testing.assert_array_equal(z.numpy(), ez.numpy())
    assert not any(np.shares_memory(z.numpy(), outs[-1][1].numpy()) for _, z in outs[:-1])


def test_graph_shows_fused_groups_and_the_live_optimizer():
    dt.manual_seed(0)
    model = _Chains()
    opt = dt.optim.Adam(model.parameters())

    def step(x, y):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()

    f = dt.compile(step)
    for x, y in _batches(2, (20,)):
        f(x, y)
    text = str(f.graph)
    assert "[fused kernel 0]" in text and "tanh(" in text
    assert "Adam.step()  # live: adam_step_ per parameter" in f._last.plan.source


_CACHE_SCRIPT = """
import numpy as np, devtensor as dt
def f(x, b):
    return ((x * 2.0 + b).relu() - 0.5) * x
x = dt.tensor(np.arange(12, dtype=np.float32).reshape(3, 4)); b = dt.tensor(np.ones(4, np.float32))
g = dt.compile(f); g(x, b)
print(float(g(x, b).sum()))
"""


def test_generated_kernels_live_in_the_cache_dir_and_are_reused_by_the_next_process(tmp_path):
    env = dict(os.environ, DEVTENSOR_CACHE_DIR=str(tmp_path), PYTHONPATH=str(ROOT))
    want = float((((np.arange(12).reshape(3, 4) * 2.0 + 1) .clip(0) - 0.5) * np.arange(12).reshape(3, 4)).sum())

    def run():
        out = subprocess.run([sys.executable, "-c", _CACHE_SCRIPT], env=env, capture_output=True, text=True,
                             check=True).stdout
        assert float(out) == want
        return {p: p.stat().st_mtime_ns for p in (tmp_path / "compile").rglob("*") if p.is_file()}

    first = run()
    sources = [p for p in first if p.suffix == ".py"]
    assert len(sources) == 1 and sources[0].name.startswith("fused_")
    assert any(p.suffix == ".nbi" for p in first), "numba's cache index is written next to the source"
    assert run() == first, "the second process recompiled or rewrote a cached kernel"


def test_cache_dir_default_and_override(monkeypatch):
    monkeypatch.delenv("DEVTENSOR_CACHE_DIR", raising=False)
    assert codegen_cpu.cache_dir() == os.path.join(os.path.expanduser("~"), ".cache", "devtensor", "compile")
    monkeypatch.setenv("DEVTENSOR_CACHE_DIR", "/x/y")
    assert codegen_cpu.cache_dir() == os.path.join("/x/y", "compile")


# ---- the cuda path: generated CUDA C ----------------------------------------------------------------
def _groups(dtype=np.float32):
    """The fused groups (and plan) of a function with broadcasting, scalars and a 0-d input."""
    def f(x, b, s):
        return (((x * 2.0 + b).relu() - s) * x).tanh(), (x - b).sqrt() / 4.0

    r = np.random.default_rng(0)
    args = [dt.tensor(r.standard_normal(sh).astype(dtype)) for sh in ((3, 4, 5), (5,), ())]
    args[0] = args[0].abs() + 3
    g = dt.compile(f)
    g(*args)
    return g._last.plan, args, f(*args)


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_generated_cuda_source_compiles_with_nvrtc(dtype):
    pytest.importorskip("cuda.bindings", reason="NVRTC (cuda-bindings) is not installed: ci/requirements-kernels.txt")
    ck = _load("_test_fusion_check_kernels", ROOT / "ci" / "check_kernels.py")
    kb = ck.load_kernel_build()
    plan, _, _ = _groups(dtype)
    assert len(plan.groups) == 1 and len(plan.groups[0].outputs) == 2  # both branches in one kernel
    for arch in kb.CI_ARCHS:
        try:
            opts = ck.runtime_options(kb, arch)
        except SystemExit:  # no cupy include dirs here: the kernel includes nothing, the options still apply
            opts = list(kb.NVRTC_OPTIONS) + ["-ftz=true", f"-arch={arch}", "--device-as-default-execution-space"]
        for grp in plan.groups:
            src, name = codegen_cuda.source(grp, plan.nodes)
            ok, log, _, cubin = ck.compile_nvrtc(src, f"{name}.cu", (), opts)
            assert ok and cubin > 0, f"{arch}:\n{src}\n{log}"


def test_generated_cuda_kernels_run_in_the_emulator():
    emu = ROOT / "ci" / "kernel_emulator"
    sys.path.insert(0, str(emu))
    try:
        build = _load("build", emu / "build.py")
        if build.compiler() is None:
            pytest.skip("the CUDA-C emulator needs g++")
        fc = _load("_test_fusion_fakecupy", emu / "fakecupy.py")
    finally:
        sys.path.remove(str(emu))
    plan, args, want = _groups()
    env = {vid: a.numpy() for vid, a in zip(plan.inputs, args)}
    got = {}
    for grp in plan.groups:
        src, name = codegen_cuda.source(grp, plan.nodes)
        kernel = fc.RawModule(code=src).get_function(name)
        outs = [fc.asarray(np.empty(plan.graph.values[o].shape, np.float32)) for o in grp.outputs]
        grid, block = codegen_cuda.launch_config(grp)
        kernel(grid, block, tuple(fc.asarray(np.ascontiguousarray(env[i])) for i in grp.inputs) + tuple(outs))
        got.update(zip(grp.outputs, (np.asarray(o) for o in outs)))
    for vid, w in zip(plan.graph.outputs, want):
        np.testing.assert_allclose(got[vid], w.numpy(), rtol=1e-6, atol=1e-7)


_CUDA_TRAIN = """
import sys, numpy as np
sys.path.insert(0, sys.argv[1])
import build, fakecupy
build.build_all()
fakecupy.install()
import devtensor as dt, devtensor.nn.functional as F
from devtensor import nn
def run(compiled):
    dt.manual_seed(0)
    model = nn.Sequential(nn.Linear(12, 16), nn.Tanh(), nn.Linear(16, 4)).to("cuda")
    opt = dt.optim.Adam(model.parameters(), lr=1e-2)
    def step(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(model(x) * 0.5 + 0.1, y)
        loss.backward()
        opt.step()
        return loss
    f = dt.compile(step, fullgraph=True) if compiled else step
    r = np.random.default_rng(0)
    for _ in range(20):
        x = dt.tensor(r.standard_normal((8, 12)).astype(np.float32)).to("cuda")
        f(x, dt.tensor(r.integers(0, 4, 8)).to("cuda"))
    return [p.detach().cpu().numpy() for p in model.parameters()], f
eager, _ = run(False)
comp, f = run(True)
assert f._last.plan.groups and "live: adam_step_" in f._last.plan.source
print(max(float(np.abs(a - b).max() / (np.abs(a).max() + 1e-30)) for a, b in zip(eager, comp)))
"""


def test_compiled_cuda_training_through_the_emulator_equals_eager():
    if shutil.which(os.environ.get("CXX", "g++")) is None:
        pytest.skip("the CUDA-C emulator needs g++")
    out = subprocess.run([sys.executable, "-c", _CUDA_TRAIN, str(ROOT / "ci" / "kernel_emulator")],
                         env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    assert float(out.stdout.split()[-1]) <= 1e-4


def test_every_op_that_writes_an_argument_is_kept_by_a_replay():
    # dead-value removal keeps a node with no readers only when it has an effect; the table's in-place
    # ops (named with a trailing underscore) must all count, the new optimizers' steps included
    from devtensor.compiler.fusion import has_effect
    from devtensor.dispatch import OPS

    steps = {n for n in OPS if n.endswith("_step_")}
    assert {"adam_step_", "adagrad_step_", "asgd_step_", "rprop_step_"} <= steps
    assert all(has_effect(n) for n in steps | {"copy_"})
    assert not has_effect("add") and not has_effect("relu")
