"""dt.compile(dynamic=...): symbolic sizes (one capture for every batch size), the printed graph, and
mode="reduce-overhead" (CUDA graphs, run here with a recording stand-in for CuPy's stream capture).
Every result is checked against the eager run of the same program, bit for bit: a replay runs the
very kernels eager runs."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import devtensor as dt
import devtensor.nn.functional as F
from devtensor import nn
from devtensor.compiler import symbolic as csym
from devtensor.graph import symbolic as gsym

from test_compile import _cnn, _mlp


def _batches(sizes, seed=1):
    r = np.random.default_rng(seed)
    return [(dt.tensor(r.standard_normal((b, 1, 28, 28)).astype(np.float32)), dt.tensor(r.integers(0, 10, b)))
            for b in sizes]


def _train(make_model, batches, compiled, seed=0, loss_fn=None, scheduler=False, before=None, **kw):
    """Adam training steps whose loss reads sizes the ways user code does: cross_entropy's mean, a mean
    over the batch, view(x.size(0), -1) and a division by x.size(0); with a StepLR whose learning rates
    a replay must read afresh if `scheduler`; before(i, model) runs ahead of step i."""
    dt.manual_seed(seed)
    model = make_model()
    opt = dt.optim.Adam(model.parameters(), lr=1e-3)
    sched = dt.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5) if scheduler else None

    def step(x, y):
        opt.zero_grad()
        h = model(x)
        loss = F.cross_entropy(h, y) + 0.1 * h.mean() + (x.view(x.size(0), -1) ** 2).sum() / x.size(0) * 1e-3
        if loss_fn is not None:
            loss = loss + loss_fn(h, x)
        loss.backward()
        opt.step()
        if sched is not None:
            sched.step()
        return loss

    f = dt.compile(step, **kw) if compiled else step
    losses = []
    for i, (x, y) in enumerate(batches):
        if before is not None:
            before(i, model)
        losses.append(f(x, y).item())
    return model, losses, f


def _assert_same_training(make, sizes, loss_fn=None, **kw):
    batches = _batches(sizes)
    m_e, l_e, _ = _train(make, batches, False, loss_fn=loss_fn)
    dt.compiler.reset_stats()
    m_c, l_c, f = _train(make, batches, True, loss_fn=loss_fn, **kw)
    assert l_e == l_c
    for (name, a), (_, b) in zip(m_e.named_parameters(), m_c.named_parameters()):
        np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy(), err_msg=name)
    return f, dt.compiler.stats()


# ---- dynamic=True: one capture for every batch size ---------------------------------------------------
@pytest.mark.parametrize("model", ["mlp", "cnn"])
def test_dynamic_batch_size_changes_replay_without_recapture_and_equal_eager(model):
    f, s = _assert_same_training({"mlp": _mlp, "cnn": _cnn}[model], [64, 37, 100, 64, 37, 100], dynamic=True)
    assert s["captures"] == 1 and s["recaptures"] == 0 and s["replays"] == 5 and s["eager_fallbacks"] == 0
    assert s["instantiations"] == 2  # 37 and 100; 64 replays the captured plan
    text = str(f.graph)
    assert "# dynamic dims: s0 (captured at 64)" in text
    assert "arg0: float32[s0, 1, 28, 28]" in text and "arg1: int64[s0]" in text
    if model == "cnn":
        assert "reshape(%6, shape=(s0, 676))" in text and "x_shape=(s0, 4, 26, 26)" in text
    assert "div(%" in text and "10*s0)" in text  # h.mean()'s backward divides by numel = 10 * batch


def test_the_symbolic_graph_and_why_other_dims_stayed_static():
    f, _ = _assert_same_training(_mlp, [8, 5], dynamic=True)
    dyn = f._last.dynamic
    assert dyn.symbols == {"s0": 8} and dyn.pattern == [("s0", 1, 28, 28), ("s0",)]
    assert "Linear" in dyn.static["s1"] and "784" in dyn.static["s1"]  # the 28s cannot grow: in_features
    assert dyn.bind([(5, 1, 28, 28), (5,)]) == {"s0": 5}
    assert dyn.bind([(5, 1, 28, 28), (6,)]) is None      # duck-sized dims must stay equal
    assert dyn.bind([(1, 1, 28, 28), (1,)]) is None      # sizes 0 and 1 are never symbolic
    assert dyn.bind([(5, 1, 28, 29), (5,)]) is None      # a static dim is guarded by value


def test_a_size_the_fit_cannot_express_stays_static_and_recaptures():
    # 1 / x.size(0) is not a*s + b: the batch dim stays static, each size is a capture of its own
    f, s = _assert_same_training(_mlp, [16, 9, 16, 9], loss_fn=lambda h, x: h.sum() * (1.0 / x.size(0)),
                                 dynamic=True)
    assert s["captures"] == 1 and s["recaptures"] == 1 and s["replays"] == 2
    assert f._last.dynamic is None


@pytest.mark.parametrize("how", ["shape", "value", "index", "ops"])
def test_constants_made_from_a_size_outside_the_op_table_keep_it_static(how):
    def f(x):
        n = x.size(0)
        if how == "index":
            return x[np.arange(n) % 2 == 0]
        if how == "shape":
            return x * dt.tensor(np.arange(n, dtype=np.float32))[:, None]
        if how == "value":
            return x / dt.tensor(np.float32(n))
        return x * dt.arange(n, dtype=dt.float32)[:, None]  # an op: the size follows

    g = dt.compile(f, dynamic=True)
    dt.compiler.reset_stats()
    with dt.no_grad():
        for b in (4, 7, 4, 7):
            x = dt.randn(b, 3)
            np.testing.assert_array_equal(g(x).numpy(), f(x).numpy())
    dyn = next(iter(g._variants.values())).dynamic
    if how == "ops":
        assert dyn.symbols == {"s0": 4, "s1": 3} and dt.compiler.stats()["recaptures"] == 0
    else:
        assert "made outside the op table" in dyn.static["s0"] and dt.compiler.stats()["recaptures"] == 1


def test_shadow_traces_leave_no_trace_in_parameters_grads_optimizer_or_rng():
    dt.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 5), nn.Dropout(0.3), nn.BatchNorm1d(5), nn.Linear(5, 3))
    opt = dt.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

    def step(x, y):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()

    x, y = dt.randn(8, 6), dt.tensor(np.arange(8) % 3)
    twin = nn.Sequential(nn.Linear(6, 5), nn.Dropout(0.3), nn.BatchNorm1d(5), nn.Linear(5, 3))
    twin.load_state_dict(model.state_dict())
    topt = dt.optim.SGD(twin.parameters(), lr=0.1, momentum=0.9)
    dt.manual_seed(5)
    dt.compile(step, dynamic=True)(x, y)  # the real step + four extra traces at sizes 9 and 10
    after = dt.rand(3).numpy()
    dt.manual_seed(5)
    topt.zero_grad()
    F.cross_entropy(twin(x), y).backward()
    topt.step()
    np.testing.assert_array_equal(after, dt.rand(3).numpy())  # the generator is where one eager step leaves it
    for (name, a), (_, b) in zip(model.state_dict().items(), twin.state_dict().items()):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=name)  # incl. BatchNorm's running stats
    for a, b in zip(model.parameters(), twin.parameters()):
        np.testing.assert_array_equal(a.grad.numpy(), b.grad.numpy())


def test_dynamic_none_makes_the_changed_dim_symbolic_after_one_recapture():
    f, s = _assert_same_training(_cnn, [32, 32, 20, 45, 7], dynamic=None)
    assert s["captures"] == 1 and s["recaptures"] == 1 and s["replays"] == 3
    assert f._last.dynamic.symbols == {"s0": 20}


def test_dynamic_false_recaptures_the_last_partial_batch_and_stays_equal():
    # an epoch of 64s ending in a partial 37, then the next epoch: the 64 capture replays again
    f, s = _assert_same_training(_mlp, [64, 64, 64, 37, 64, 64, 37])
    assert s["captures"] == 1 and s["recaptures"] == 1 and s["replays"] == 5
    assert f._last.dynamic is None and "[37, 1, 28, 28]" in str(f.graph)


def test_forward_only_dynamic_module_and_eval_mode_guard():
    dt.manual_seed(0)
    m = _cnn().eval()
    g = dt.compile(m, dynamic=True)
    dt.compiler.reset_stats()
    with dt.no_grad():
        for b in (4, 9, 2, 13):
            x = dt.randn(b, 1, 28, 28)
            np.testing.assert_array_equal(g(x).numpy(), m(x).numpy())
        m.train()  # .training is still a guard for a dynamic variant
        x = dt.randn(3, 1, 28, 28)
        np.testing.assert_array_equal(g(x).numpy(), m(x).numpy())
    s = dt.compiler.stats()
    assert s["captures"] == 1 and s["recaptures"] == 1 and s["replays"] == 3


def test_a_dynamic_variant_still_guards_dtype_scalars_grad_mode_and_requires_grad():
    f = dt.compile(lambda x, k: (x * k).sum(0), dynamic=True)
    dt.compiler.reset_stats()
    with dt.no_grad():
        f(dt.ones(4, 3), 2.0)
        np.testing.assert_array_equal(f(dt.ones(6, 3), 2.0).numpy(), [12.0] * 3)       # a new size: replay
        np.testing.assert_array_equal(f(dt.ones(6, 3), 3.0).numpy(), [18.0] * 3)       # a new scalar: capture
        np.testing.assert_array_equal(f(dt.ones(6, 3, dtype=dt.float64), 2.0).numpy(), [12.0] * 3)  # new dtype
    s = dt.compiler.stats()
    assert s["captures"] == 1 and s["recaptures"] == 2 and s["replays"] == 1
    f(dt.ones(5, 3), 2.0)  # grad mode on: another guard, another capture
    assert dt.compiler.stats()["recaptures"] == 3
    with pytest.warns(RuntimeWarning, match="still needs autograd"):
        y = f(dt.ones(5, 3, requires_grad=True), 2.0)
    assert y.requires_grad  # eager
    g = dt.compile(lambda x: x + 1, cache_size=1)
    g(dt.ones(2))
    with pytest.warns(RuntimeWarning, match=r"running eagerly from now on \(dynamic=True serves every batch size"):
        g(dt.ones(3))


def test_dynamic_must_be_a_bool_or_none():
    with pytest.raises(ValueError, match="dynamic must be None, False or True"):
        dt.compile(lambda x: x, dynamic="yes")


# ---- the shared fit (graph/symbolic.py): what ONNX export and dynamic=True both rely on -----------
def test_fit_expresses_affine_and_product_sizes_and_rejects_the_rest():
    assert str(gsym.fit(65, {"s0": (64, [(65, 66), (66, 67)])}, "x")) == "s0 + 1"
    assert str(gsym.fit(640.0, {"s0": (64, [(65, 650.0), (66, 660.0)])}, "x")) == "10*s0"
    e = gsym.fit(64 * 28, {"s0": (64, [(65, 65 * 28), (66, 66 * 28)]), "s1": (28, [(29, 64 * 29), (30, 64 * 30)])}, "x")
    assert e.syms == ("s0", "s1") and e.evaluate({"s0": 3, "s1": 5}) == 15
    assert gsym.fit(7, {"s0": (64, [(65, 7), (66, 7)])}, "x") is None
    with pytest.raises(gsym.NotAffine, match="cannot express") as err:
        gsym.fit(1 / 64, {"s0": (64, [(65, 1 / 65), (66, 1 / 66)])}, "the scale")
    assert err.value.syms == ("s0",)
    assert gsym.substitute((gsym.Dim(64, e), gsym.FDim(1.0, gsym.Expr(0.5, ("s0",), 0)), 3), {"s0": 4, "s1": 2}) == (8, 2.0, 3)


def test_size_dependent_branches_seen_by_the_extra_traces_keep_the_dim_static():
    def f(x):
        return x.sum(1) if x.size(0) % 2 == 0 else x.sum(0)  # op/shape change between sizes 4, 5, 6

    g = dt.compile(f, dynamic=True)
    dt.compiler.reset_stats()
    with dt.no_grad():
        for b in (4, 5, 6):
            x = dt.randn(b, 3)
            np.testing.assert_array_equal(g(x).numpy(), f(x).numpy())
    first = next(iter(g._variants.values())).dynamic
    assert first.symbols == {"s1": 3} and "sum's output" in first.static["s0"] and "cannot express" in first.static["s0"]
    assert dt.compiler.stats()["recaptures"] >= 1  # 5 is a capture of its own (it takes the other branch)


def test_a_size_threshold_below_the_traced_size_is_caught_by_the_check_trace():
    def f(x):
        return x * 2.0 if x.size(0) > 50 else x * 3.0  # the same at 64, 65, 66; not at 32 (nor at 37)

    g = dt.compile(f, dynamic=True)
    dt.compiler.reset_stats()
    with dt.no_grad():
        for b in (64, 37, 100):
            x = dt.randn(b, 3)
            np.testing.assert_array_equal(g(x).numpy(), f(x).numpy())
    first = next(iter(g._variants.values())).dynamic
    assert "does not follow the fit from sizes 65 and 66 at size 32" in first.static["s0"]
    assert dt.compiler.stats()["recaptures"] == 2  # 37 checks 74 (> 50), 100 checks 50: static too


def test_graph_printer_annotations_hook():
    f = dt.compile(lambda x: (x * 2).relu().sum(), dynamic=True)
    with dt.no_grad():
        f(dt.randn(5, 3))
    g = f.graph
    g.annotate(0, "fused group 0")
    g.annotate(1, "fused group 0")
    text = g.format(annotate=lambda i, n: "reduction" if n.op == "sum" else None)
    lines = [ln for ln in text.splitlines() if " = " in ln]
    assert lines[0].endswith("float32[s0, s1] = mul(%0, 2.0)  # fused group 0")
    assert lines[1].endswith("# fused group 0") and lines[2].endswith("# reduction")
    assert "# dynamic dims: s0 (captured at 5), s1 (captured at 3)" in text


def test_shadow_trace_helpers_replace_the_right_tensors():
    a, b = dt.ones(2), dt.zeros(3)
    new = {1: dt.full((4,), 7.0)}
    args, kwargs = csym._replace(((a, [b]), {"k": a}), iter(range(3)), new)
    assert args[0] is a and args[1][0] is new[1] and kwargs["k"] is a



# ---- mode="reduce-overhead": CUDA graphs through a recording stand-in for CuPy --------------------
ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]


def test_modes_unknown_raise_listing_the_valid_ones_and_cpu_reduce_overhead_is_the_default_replay():
    with pytest.raises(ValueError, match="'default', 'reduce-overhead', 'max-autotune', 'max-autotune-no-cudagraphs'"):
        dt.compile(lambda x: x, mode="fast")
    for mode in ("reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs", "default", None):
        f, s = _assert_same_training(_mlp, [16, 16, 16], mode=mode)
        assert s["replays"] == 2 and s["graph_replays"] == 0


def test_reduce_overhead_on_cuda_captures_one_graph_between_the_host_calls_and_equals_eager():
    out = _fake_cuda("static")
    assert out["losses_equal"] and out["params_equal"] and out["warnings"] == []
    # zero_grad and dropout's draw | forward + backward as one graph | deliveries, Adam.step, StepLR.step
    assert out["segments"] == [False, True, False]
    # captured at the first replay, launched on every replay; the replaced weight array: captured again
    assert out["log"] == ["begin_capture", "end_capture"] + ["launch"] * 3 + ["begin_capture", "end_capture"] + ["launch"] * 3
    assert out["stats"]["replays"] == 6 and out["stats"]["graph_replays"] == 6


@pytest.mark.skipif(__import__("shutil").which("g++") is None and not __import__("os").environ.get("CXX"),
                    reason="the kernel emulator compiles kernels/*.cu with g++ (or $CXX)")
def test_reduce_overhead_through_our_cuda_c_kernels_in_the_emulator():
    out = _fake_cuda("f32")  # float32: the specialised tier (RawModule kernels), run by ci/kernel_emulator
    assert out["losses_equal"] and out["params_equal"] and out["warnings"] == []
    assert out["segments"] == [False, True, False] and out["stats"]["graph_replays"] == 6
    assert out["log"].count("begin_capture") == 2 and out["log"].count("launch") == 6
    assert out["emulated_launches"] > 0


def test_reduce_overhead_runs_sampling_ops_between_the_graphs_and_equals_eager():
    out = _fake_cuda("sample")  # bernoulli and multinomial of computed values, from the global cuda stream
    # (the stand-in's capture runs the kernels, on the zero buffers of values made outside the graphs: numpy's
    # divide-by-zero warnings; a real capture runs nothing)
    assert out["losses_equal"] and out["params_equal"]
    assert not any("could not be captured" in w for w in out["warnings"])
    # each sampling op reads values the graph before it computed and is drawn in its place, outside a graph
    assert out["segments"].count(True) >= 3 and out["stats"]["graph_replays"] == 6


def test_reduce_overhead_with_dynamic_sizes_one_graph_per_size():
    out = _fake_cuda("dynamic")
    assert out["losses_equal"] and out["params_equal"] and out["warnings"] == []
    assert out["stats"]["captures"] == 1 and out["stats"]["recaptures"] == 0 and out["stats"]["instantiations"] == 1
    assert out["log"] == ["begin_capture", "end_capture", "launch", "launch", "begin_capture", "end_capture", "launch",
                          "launch", "launch"]


def test_reduce_overhead_falls_back_to_the_normal_replay_with_one_warning_when_capture_fails():
    out = _fake_cuda("fail")
    assert out["losses_equal"] and out["params_equal"]
    assert len(out["warnings"]) == 1 and "could not be captured as a CUDA graph" in out["warnings"][0]
    assert "cudaErrorStreamCaptureUnsupported" in out["warnings"][0] and "runs the normal replay" in out["warnings"][0]
    assert out["log"] == ["begin_capture"] and out["stats"]["graph_replays"] == 0 and out["stats"]["replays"] == 6


def _fake_cuda(scenario):
    import json
    import subprocess
    import sys

    env = dict(__import__("os").environ, PYTHONPATH=f"{ROOT}{__import__('os').pathsep}{ROOT / 'tests'}")
    r = subprocess.run([sys.executable, __file__, scenario], capture_output=True, text=True, timeout=600, env=env,
                       cwd=ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


class _FakeGraphs:
    """CuPy's stream capture as a recording stand-in: begin_capture/end_capture/launch are logged; a
    capture records the Plan segments run inside it without running them for real, and a launch runs
    them again writing into the arrays the capture allocated (a CUDA graph replays on fixed addresses)."""

    def __init__(self, fail=False):
        self.log, self.capturing, self.fail = [], None, fail

    def install(self, cp):
        from devtensor.compiler import step_plan as replay

        fg = self
        orig = replay.StepPlan.execute

        class Graph:
            def __init__(self, work):
                self.work = work

            def launch(self, stream=None):
                fg.log.append("launch")
                for plan, env, steps, captured in self.work:
                    orig(plan, env, steps)
                    for o, buf in captured.items():  # the kernels wrote into the captured buffers
                        if buf.flags.writeable:  # (a broadcast view has no storage of its own: its base's)
                            buf[...] = env[o]
                            env[o] = buf

        class Stream:
            def __init__(self, non_blocking=False):
                self.work = None

            def __enter__(self):
                return self

            def __exit__(self, *a):
                return False

            def begin_capture(self, mode=None):
                fg.log.append("begin_capture")
                if fg.fail:
                    raise RuntimeError("cudaErrorStreamCaptureUnsupported: operation not permitted when stream is capturing")
                self.work, fg.capturing = [], self

            def end_capture(self):
                fg.log.append("end_capture")
                fg.capturing = None
                return Graph(self.work)

            def synchronize(self):
                pass

        def execute(plan, env, steps):
            if fg.capturing is None:
                return orig(plan, env, steps)
            orig(plan, env, steps)  # allocates the outputs, as kernels captured by CuPy do
            outs = {o: env[o] for step in steps if step[4] for o in step[4]}
            for o in outs:  # their contents are undefined until a launch
                if outs[o].flags.writeable:
                    outs[o][...] = 0
            fg.capturing.work.append((plan, env, steps, outs))
            return env

        import contextlib

        class Pool:
            def malloc(self, n):
                return None

        cp.cuda.Stream = Stream
        cp.cuda.MemoryPool = Pool
        cp.cuda.using_allocator = lambda alloc=None: contextlib.nullcontext()
        cp.cuda.get_current_stream = lambda: None
        replay.StepPlan.execute = execute


def _sample_loss(h, x):
    """Terms that sample from values the step computes (a REINFORCE-style loss): they must be drawn in order."""
    mask = dt.bernoulli(h.detach().sigmoid())
    picked = h.gather(1, dt.multinomial(h.detach().softmax(-1), 2))
    return (h * mask).mean() * 0.1 + picked.mean() * 0.1 + dt.normal(h.detach(), 0.5).mean() * 0.01


def _fake_cuda_main(scenario):
    import json
    import sys

    sys.path.insert(0, str(ROOT / "ci" / "kernel_emulator"))
    import fakecupy

    cp = fakecupy.install()
    fg = _FakeGraphs(fail=scenario == "fail")
    fg.install(cp)
    assert dt.backends.available()["cuda"][0]  # devtensor's lazy cupy is the stand-in
    out = {}
    r = np.random.default_rng(3)
    f32 = scenario == "f32"  # float32: our CUDA C (the specialised tier), run by the kernel emulator
    sizes = [16, 16, 16, 11, 16, 11] if scenario == "dynamic" else [8 if f32 else 16] * 7
    batches = [(dt.tensor(r.standard_normal((b, 1, 28, 28)).astype(np.float32 if f32 else np.float64), device="cuda"),
                dt.tensor(r.integers(0, 10, b), device="cuda")) for b in sizes]
    make = _mlp if scenario != "dynamic" else (  # dropout's draws on cuda would keep the batch dim static
        lambda: nn.Sequential(nn.Flatten(), nn.Linear(784, 16), nn.ReLU(), nn.Linear(16, 10)))

    def rebind(i, model):  # a parameter's array replaced: the graph must be captured again
        if i == 4 and scenario in ("static", "f32"):
            model[1].weight.data = model[1].weight.data.clone()

    results = []
    for compiled in (False, True):
        dt.compiler.reset_stats()
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            model, losses, f = _train(lambda: make().to(device="cuda", dtype=dt.float32 if f32 else dt.float64),
                                      batches, compiled, scheduler=True, before=rebind, mode="reduce-overhead",
                                      loss_fn=_sample_loss if scenario == "sample" else None,
                                      dynamic=scenario == "dynamic")
        results.append((losses, [p.detach().cpu().numpy() for p in model.parameters()]))
        if compiled:
            out["warnings"] = [str(x.message) for x in w]
            out["stats"] = dt.compiler.stats()
            out["segments"] = [g for _, g in next(iter(f._last.runner.values())).segments]
    (l_e, p_e), (l_c, p_c) = results
    out["losses_equal"] = l_e == l_c
    out["params_equal"] = all(np.array_equal(a, b) for a, b in zip(p_e, p_c))
    out["log"] = fg.log
    out["emulated_launches"] = len(fakecupy.launches)  # our CUDA C kernels run by the emulator
    print(json.dumps(out))


if __name__ == "__main__":
    import sys

    _fake_cuda_main(sys.argv[1])
