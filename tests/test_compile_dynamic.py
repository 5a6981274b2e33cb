"""dt.compile(dynamic=...): symbolic sizes (one capture for every batch size), the printed graph, and
mode="reduce-overhead" (CUDA graphs, run here with a recording stand-in for CuPy's stream capture).
Every result is checked against the eager run of the same program, bit for bit: a replay runs the
very kernels eager runs."""
from __future__ import annotations

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


def _train(make_model, batches, compiled, seed=0, loss_fn=None, **kw):
    """Adam training steps whose loss reads sizes the ways user code does: cross_entropy's mean, a mean
    over the batch, view(x.size(0), -1) and a division by x.size(0)."""
    dt.manual_seed(seed)
    model = make_model()
    opt = dt.optim.Adam(model.parameters(), lr=1e-3)

    def step(x, y):
        opt.zero_grad()
        h = model(x)
        loss = F.cross_entropy(h, y) + 0.1 * h.mean() + (x.view(x.size(0), -1) ** 2).sum() / x.size(0) * 1e-3
        if loss_fn is not None:
            loss = loss + loss_fn(h, x)
        loss.backward()
        opt.step()
        return loss

    f = dt.compile(step, **kw) if compiled else step
    losses = [f(x, y).item() for x, y in batches]
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

