"""Graph capture at the op table (devtensor/graph): what a captured graph holds, checked against
the eager run it was recorded from."""
from __future__ import annotations

import numpy as np
import pytest

import devtensor as dt
import devtensor.nn.functional as F
from devtensor import nn
from devtensor.dispatch import OPS, _TRACE
from devtensor.graph import capture


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.fc = nn.Linear(4 * 13 * 13, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv(x)), 2)
        return F.log_softmax(self.fc(x.view(x.size(0), -1)), dim=1)


def _capture_forward(m, x):
    with dt.no_grad(), capture(root=m) as cap:
        cap.input(x, "x")
        y = m(x)
    cap.graph.outputs = [cap.ref(y).id]
    return cap.graph, y


def _run(graph, inputs):
    """Replay a graph op by op through the table (a reference interpreter for the tests)."""
    from devtensor.graph import Ref

    env = {i: t for i, t in zip(graph.inputs, inputs)}
    for v in graph.externals():
        env[v.id] = v.tensor

    def arg(a):
        if isinstance(a, Ref):
            return env[a.id]
        if isinstance(a, tuple):
            return tuple(arg(x) for x in a)
        return a

    for n in graph.nodes:
        op = OPS[n.op]
        attrs = {k: (arg(v)._data if isinstance(arg(v), dt.Tensor) and k == "key" else arg(v))
                 for k, v in n.attrs.items()}
        out = op(*[arg(a) for a in n.args], **attrs)
        outs = out if isinstance(out, tuple) else (out,)
        for vid, o in zip(n.outputs, outs):
            env[vid] = o
    return [env[o] for o in graph.outputs]


def test_forward_graph_has_every_op_with_shapes_modules_and_parameter_names():
    m = Net().eval()
    g, y = _capture_forward(m, dt.randn(2, 1, 28, 28))
    assert [n.op for n in g.nodes] == ["conv2d", "relu", "max_pool2d", "reshape", "linear", "log_softmax"]
    assert [n.module for n in g.nodes] == ["conv", "", "", "", "fc", ""]
    assert sorted(v.name for v in g.externals()) == ["conv.bias", "conv.weight", "fc.bias", "fc.weight"]
    out = g.values[g.outputs[0]]
    assert out.shape == (2, 10) and out.dtype == "float32" and out.kind == "node"
    text = str(g)
    assert "%0 x: float32[2, 1, 28, 28]" in text and "conv2d(%0, %1, %2" in text


def test_replaying_the_graph_gives_the_eager_result_on_new_inputs():
    m = Net().eval()
    g, _ = _capture_forward(m, dt.randn(2, 1, 28, 28))
    x2 = dt.randn(2, 1, 28, 28)
    with dt.no_grad():
        want = m(x2)
    with dt.no_grad():
        got, = _run(g, [x2])
    np.testing.assert_array_equal(got.numpy(), want.numpy())


def test_a_training_step_captures_forward_backward_and_the_update():
    m = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    opt = dt.optim.SGD(m.parameters(), lr=0.1, momentum=0.9)
    x, t = dt.randn(5, 4), dt.randint(0, 2, (5,))
    with capture(root=m) as cap:
        cap.input(x, "x")
        cap.input(t, "target")
        opt.zero_grad()
        loss = F.cross_entropy(m(x), t)
        loss.backward()
        opt.step()
    ops = [n.op for n in cap.graph.nodes]
    kernels = [o for o in ops if not o.startswith("@")]
    assert kernels[:4] == ["linear", "relu", "linear", "cross_entropy_mean"]
    assert "cross_entropy_rows_backward" in ops and "relu_backward" in ops
    # the optimizer's calls are host nodes (run again on replay), gradients reach .grad through the engine
    assert ops[0] == "@host" and ops[-1] == "@host" and ops.count("@accumulate_grad") == 4
    names = {v.name for v in cap.graph.externals()}
    assert {"0.weight", "0.bias", "2.weight", "2.bias"} <= names


def test_in_place_writes_give_a_new_value_for_the_same_storage():
    x = dt.zeros(3)
    with capture() as cap:
        cap.input(x, "x")
        x.add_(1.0)
        y = x * 2
    muls = [n for n in cap.graph.nodes if n.op == "mul"]
    copies = [n for n in cap.graph.nodes if n.op == "copy_"]
    assert copies and muls
    assert muls[0].args[0].id == copies[-1].outputs[0]  # mul reads the value after the write
    assert muls[0].args[0].id != cap.graph.inputs[0]
    np.testing.assert_array_equal(y.numpy(), [2.0, 2.0, 2.0])


def test_creation_ops_and_device_moves_are_captured_with_named_attributes():
    with capture() as cap:
        a = dt.zeros(2, 3)
        b = a.to("meta")
    n0, n1 = cap.graph.nodes
    assert n0.op == "full" and n0.attrs["shape"] == (2, 3) and n0.attrs["value"] == 0
    assert n1.op == "copy_to" and str(n1.attrs["device"]) == "meta"
    assert b.device.type == "meta"


def test_capture_ends_cleanly_and_does_not_nest():
    with pytest.raises(ValueError):
        with capture():
            raise ValueError("boom")
    assert _TRACE[0] is None
    with capture():
        with pytest.raises(RuntimeError, match="captures do not nest"):
            with capture():
                pass
    assert _TRACE[0] is None


def test_host_reads_and_writes_through_views_are_noted():
    x = dt.zeros(2, 3)
    with capture() as cap:
        cap.input(x, "x")
        x[:, 0].add_(1.0)          # through a view: the base changes too
        y = x * 2
        _ = y.sum().item()         # a value read on the host
    assert cap.view_writes and "test_graph_capture.py" in cap.view_writes[0][1]
    assert cap.host_reads and cap.host_reads[0][0] == "item()"
    np.testing.assert_array_equal(x.numpy()[:, 0], [1.0, 1.0])


def test_capture_and_the_sync_check_share_one_hook():
    """dispatch runs one hook after each kernel while DEVTENSOR_SYNC's check or a capture is on: with
    both on, both run (ops recorded, values unchanged); with both off, the hook is gone."""
    from devtensor import dispatch

    old = dispatch._SYNC[0]
    x = dt.tensor([1.0, 2.0])
    try:
        dispatch.set_sync_debug(True)
        with capture() as cap:
            y = x * 2 + 1
        assert [n.op for n in cap.graph.nodes] == ["mul", "add"]
        np.testing.assert_array_equal(y.numpy(), [3.0, 5.0])
        assert dispatch._after is not None  # the sync check stays on after the capture ends
    finally:
        dispatch.set_sync_debug(old)
    assert _TRACE[0] is None and (dispatch._after is None) == (not old)
