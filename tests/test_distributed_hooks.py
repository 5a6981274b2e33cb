"""Tensor.register_post_accumulate_grad_hook (added to the autograd engine for DistributedDataParallel):
it runs once per backward, after the leaf's last gradient of that backward is in .grad."""
from __future__ import annotations

import gc

import numpy as np
import pytest

import devtensor as dt
from devtensor.autograd import engine


def test_fires_once_after_the_last_gradient_of_a_leaf_used_twice():
    w = dt.tensor([1.0, 2.0], requires_grad=True)
    seen = []
    w.register_post_accumulate_grad_hook(lambda t: seen.append(t.grad.numpy().copy()))
    x = dt.tensor([3.0, 4.0])
    ((w * x).sum() + (w * w).sum()).backward()
    assert len(seen) == 1
    np.testing.assert_allclose(seen[0], [3.0 + 2.0, 4.0 + 4.0])


def test_sees_the_accumulated_grad_and_runs_each_backward():
    w = dt.tensor([1.0], requires_grad=True)
    seen = []
    w.register_post_accumulate_grad_hook(lambda t: seen.append(float(t.grad.item())))
    (w * 2).sum().backward()
    (w * 3).sum().backward()
    assert seen == [2.0, 5.0]


def test_order_follows_the_backward_walk_and_handles_remove():
    a = dt.tensor([1.0], requires_grad=True)
    b = dt.tensor([1.0], requires_grad=True)
    order = []
    ha = a.register_post_accumulate_grad_hook(lambda t: order.append("a"))
    b.register_post_accumulate_grad_hook(lambda t: order.append("b"))
    ((a * 2).exp() * b).sum().backward()  # b's gradient is ready before a's
    assert order == ["b", "a"]
    ha.remove()
    ha.remove()  # twice is harmless
    ((a * 2).exp() * b).sum().backward()
    assert order == ["b", "a", "b"]


def test_root_leaf_unreached_leaf_and_autograd_grad():
    w = dt.tensor([1.0, 1.0], requires_grad=True)
    u = dt.tensor([1.0], requires_grad=True)
    calls = []
    w.register_post_accumulate_grad_hook(lambda t: calls.append("w"))
    u.register_post_accumulate_grad_hook(lambda t: calls.append("u"))
    w.backward(dt.ones(2))               # the root itself is the leaf
    assert calls == ["w"]
    dt.autograd.grad((w * 2).sum(), w)   # no accumulation, no hook (as PyTorch)
    (w * 2).sum().backward()             # u is not in this graph
    assert calls == ["w", "w"]


def test_errors_and_the_table_forgets_dead_tensors():
    with pytest.raises(RuntimeError, match="non-leaf"):
        (dt.ones(1, requires_grad=True) * 2).register_post_accumulate_grad_hook(lambda t: None)
    with pytest.raises(RuntimeError, match="doesn't require gradient"):
        dt.ones(1).register_post_accumulate_grad_hook(lambda t: None)
    before = len(engine._post_hooks)
    w = dt.ones(1, requires_grad=True)
    w.register_post_accumulate_grad_hook(lambda t: None)
    assert len(engine._post_hooks) == before + 1
    del w
    gc.collect()
    assert len(engine._post_hooks) == before


def test_a_parameter_in_a_module():
    lin = dt.nn.Linear(3, 2)
    got = {}
    for name, p in lin.named_parameters():
        p.register_post_accumulate_grad_hook(lambda t, name=name: got.setdefault(name, t.grad.shape))
    lin(dt.randn(4, 3)).sum().backward()
    assert got == {"bias": (2,), "weight": (2, 3)}
