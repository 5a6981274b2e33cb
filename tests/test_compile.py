"""dt.compile: capture once, replay the kernels. Every replay must give what eager execution gives
(bitwise here: a replay runs the very kernels eager runs, in the same order), and every case a
replay could not reproduce must fall back to eager, loudly."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import devtensor as dt
import devtensor.nn.functional as F
from devtensor import nn


def _mlp():
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 10))


def _cnn():
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4 * 13 * 13, 10))


OPTIMIZERS = {
    "sgd": lambda p: dt.optim.SGD(p, lr=0.05, momentum=0.9),
    "adam": lambda p: dt.optim.Adam(p, lr=1e-3),
    "adamw": lambda p: dt.optim.AdamW(p, lr=1e-3, weight_decay=0.1),
}


def _train(make_model, make_opt, batches, compiled, seed=0):
    dt.manual_seed(seed)
    model = make_model()
    opt = make_opt(model.parameters())
    sched = dt.optim.lr_scheduler.StepLR(opt, step_size=4, gamma=0.5)

    def step(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        sched.step()
        return loss

    f = dt.compile(step) if compiled else step
    losses = [f(x, y).item() for x, y in batches]
    return model, losses, f


def _batches(n, sizes=(32,), seed=1):
    r = np.random.default_rng(seed)
    out = []
    for i in range(n):
        b = sizes[i * len(sizes) // n]
        out.append((dt.tensor(r.standard_normal((b, 1, 28, 28)).astype(np.float32)),
                    dt.tensor(r.integers(0, 10, b))))
    return out


@pytest.mark.parametrize("opt", sorted(OPTIMIZERS))
@pytest.mark.parametrize("model", ["mlp", "cnn"])
def test_compiled_training_equals_eager_bitwise(model, opt):
    make = {"mlp": _mlp, "cnn": _cnn}[model]
    batches = _batches(22)
    m_e, l_e, _ = _train(make, OPTIMIZERS[opt], batches, compiled=False)
    dt.compiler.reset_stats()
    m_c, l_c, f = _train(make, OPTIMIZERS[opt], batches, compiled=True)
    assert dt.compiler.stats()["replays"] == 21  # the scheduler's lr changes never forced a recapture
    assert l_e == l_c
    for (name, a), (_, b) in zip(m_e.named_parameters(), m_c.named_parameters()):
        np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy(), err_msg=name)


def test_a_new_batch_size_recaptures_and_stays_equal():
    batches = _batches(12, sizes=(32, 17))
    m_e, l_e, _ = _train(_mlp, OPTIMIZERS["adam"], batches, compiled=False)
    dt.compiler.reset_stats()
    m_c, l_c, _ = _train(_mlp, OPTIMIZERS["adam"], batches, compiled=True)
    s = dt.compiler.stats()
    assert s["captures"] == 1 and s["recaptures"] == 1 and s["replays"] == 10
    assert l_e == l_c
    for a, b in zip(m_e.parameters(), m_c.parameters()):
        np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())


def test_dropout_draws_fresh_masks_on_every_replay():
    dt.manual_seed(3)
    drop = nn.Dropout(0.5)
    f = dt.compile(lambda x: drop(x) * 1.0)
    x = dt.ones(1000)
    masks = [(f(x).numpy() == 0) for _ in range(3)]
    assert not np.array_equal(masks[1], masks[2]) and 300 < masks[2].sum() < 700
    dt.manual_seed(3)
    eager = [(drop(x).numpy() == 0) for _ in range(3)]
    for a, b in zip(masks, eager):  # the same draws from the global generator, in the same order
        np.testing.assert_array_equal(a, b)


def test_learning_rate_edits_between_calls_are_read_on_replay():
    batches = _batches(6)
    results = []
    for compiled in (False, True):
        dt.manual_seed(0)
        model = _mlp()
        opt = dt.optim.SGD(model.parameters(), lr=0.1)

        def step(x, y):
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()

        f = dt.compile(step) if compiled else step
        for i, (x, y) in enumerate(batches):
            opt.param_groups[0]["lr"] = 0.1 / (i + 1)
            f(x, y)
        results.append([p.detach().numpy().copy() for p in model.parameters()])
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


def test_host_reads_fall_back_to_eager_with_a_warning_naming_the_line():
    def f(x):
        if x.sum().item() > 0:  # data-dependent Python
            return x * 2
        return x * 3

    g = dt.compile(f)
    with pytest.warns(RuntimeWarning, match=r"item\(\) at .*test_compile.py:\d+"):
        g(dt.ones(3))
    np.testing.assert_array_equal(g(-dt.ones(3)).numpy(), [-3.0, -3.0, -3.0])  # eager: the other branch
    with pytest.raises(dt.compiler.CompileError, match="read on the host"):
        dt.compile(f, fullgraph=True)(dt.ones(3))


def test_grad_set_to_none_inside_a_compiled_step_is_replayed():
    # a replay once skipped `w.grad = None` and added each step's gradient onto the last one
    w = dt.tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)

    def step(x):
        w.grad = None
        (w * w * x).sum().backward()

    g = dt.compile(step)
    before = dt.compiler.stats()["replays"]
    for k in (1.0, 2.0, 3.0):
        g(dt.full((3,), k))
        np.testing.assert_array_equal(w.grad.numpy(), 2 * k * np.array([1.0, 2.0, 3.0]))
    assert dt.compiler.stats()["replays"] == before + 2 and "tensor.grad = None  #" in str(g.graph)


def test_a_tensor_assigned_to_grad_inside_a_compiled_function_runs_eagerly():
    w = dt.tensor(np.array([1.0, 2.0]), requires_grad=True)

    def f(x):
        w.grad = x * 2
        return x + 1

    g = dt.compile(f)
    with pytest.warns(RuntimeWarning, match=r"a tensor is assigned to .grad \(.*test_compile.py:\d+\)"):
        g(dt.ones(2))
    g(dt.full((2,), 5.0))  # eager: the assignment happens with this call's value
    np.testing.assert_array_equal(w.grad.numpy(), [10.0, 10.0])


def test_outputs_that_still_need_autograd_run_eagerly():
    lin = nn.Linear(3, 2)
    g = dt.compile(lin)
    with pytest.warns(RuntimeWarning, match="still needs autograd"):
        y = g(dt.ones(4, 3))
    y = g(dt.ones(4, 3))
    assert y.requires_grad and y.grad_fn is not None  # eager, so training through it works
    with dt.no_grad():
        a = g(dt.ones(4, 3))
        b = g(dt.full((4, 3), 2.0))
    np.testing.assert_array_equal(b.numpy(), lin(dt.full((4, 3), 2.0)).detach().numpy())
    assert a.grad_fn is None


def test_module_mode_and_grad_mode_are_guards():
    m = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5))
    g = dt.compile(m)
    x = dt.ones(2, 4)
    dt.compiler.reset_stats()
    with dt.no_grad():
        m.eval()
        a = g(x)
        g(x)
        m.train()
        g(x)  # training mode: dropout active, a new capture
    assert dt.compiler.stats()["recaptures"] == 1
    m.eval()
    with dt.no_grad():
        np.testing.assert_array_equal(g(x).numpy(), a.numpy())


def test_too_many_signatures_warn_once_then_run_eagerly():
    g = dt.compile(lambda x: x + 1, cache_size=2)
    g(dt.ones(1))
    g(dt.ones(2))
    with pytest.warns(RuntimeWarning, match="captured for 2 different argument signatures"):
        out = g(dt.ones(3))
    np.testing.assert_array_equal(out.numpy(), [2.0, 2.0, 2.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        g(dt.ones(4))


def test_graph_is_printable_with_host_calls_and_gradient_delivery():
    model = nn.Linear(3, 2)
    opt = dt.optim.SGD(model.parameters(), lr=0.1)

    def step(x):
        opt.zero_grad()
        model(x).sum().backward()
        opt.step()

    f = dt.compile(step)
    f(dt.ones(4, 3))
    text = str(f.graph)
    assert "SGD.zero_grad()" in text and "SGD.step()" in text and ".grad += %" in text and "linear(" in text


# every sampled op, values and gradients in float32 and float64: tests/test_compile_ops.py


def test_the_static_graph_example_matches_its_eager_run():
    import pathlib
    import sys

    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "examples"))
    import static_graph

    a = static_graph.main(["--steps", "60", "--limit", "1000"])
    b = static_graph.main(["--steps", "60", "--limit", "1000", "--eager"])
    assert a == b and a > 0.6
