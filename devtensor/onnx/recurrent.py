"""ONNX converters of the recurrent ops (devtensor/ops/rnn.py): lstm_sequence -> LSTM, rnn_sequence ->
GRU (linear_before_reset=1, PyTorch's GRU) or RNN (Tanh / Relu), lstm_cell -> its elementwise math.

The sequence ops take the input projection already computed (xw = x @ W_ih.T + biases, one MatMul in
the graph), so the ONNX op gets X = xw and an input weight W that only reorders the gates from
PyTorch's order (LSTM i, f, g, o; GRU r, z, n) to ONNX's (i, o, f, c; z, r, h); the hidden weight R
is w_hh with its rows reordered the same way (a Gather in the graph, so a trained w_hh stays an
initializer). A packed batch's batch_sizes become ONNX's sequence_lens. The ops' workspace outputs
(what devtensor's backward reads) do not export; nothing in a forward uses them.

ops.py merges RECURRENT_CONVERTERS into its CONVERTERS table (this module imports nothing of it).
"""
from __future__ import annotations

import numpy as np

from .common import dtype_np


def _perm(H, blocks):
    return np.concatenate([np.arange(b * H, (b + 1) * H) for b in blocks]).astype(np.int64)


def _lengths(batch_sizes, B):
    return np.array([sum(1 for n in batch_sizes if n > b) for b in range(B)], dtype=np.int32)


def _unsqueeze0(ctx, name):
    return ctx.emit("Unsqueeze", [name, ctx.const(np.array([0], np.int64))])


def _squeeze(ctx, name, axis, out):
    return ctx.emit("Squeeze", [name, ctx.const(np.array([axis], np.int64))], out=out)


def _sequence(ctx, n, op_type, gates, order, h_args, bias, extra_attrs, n_states):
    """The shared body: X = xw, W = a gate permutation, R = w_hh's rows permuted, B, sequence_lens."""
    if ctx.live(len(n.outputs) - 1):
        raise ctx.unsupported(f"{n.op}'s workspace output (what the fused backward reads)",
                              "use the layer's outputs (y, h_n, c_n)")
    xw, w = n.args[0], n.args[1]
    H = int(ctx.values[w.id].shape[1])
    dt = ctx.dtype(xw)
    idx = _perm(H, order)
    W = ctx.const(np.eye(gates * H, dtype=dtype_np(dt))[idx][None], "gate_order")
    R = _unsqueeze0(ctx, ctx.emit("Gather", [ctx.x(w), ctx.const(idx)], axis=0))
    if bias is None:
        B = ctx.const(np.zeros((1, 2 * gates * H), dtype_np(dt)), "zero_bias")
    else:  # the hidden bias: ONNX's Rb (GRU applies it inside the reset gate, as PyTorch)
        rb = ctx.emit("Gather", [ctx.x(bias), ctx.const(idx)], axis=0)
        B = _unsqueeze0(ctx, ctx.emit("Concat", [ctx.const(np.zeros(gates * H, dtype_np(dt))), rb], axis=0))
    bs = n.attrs.get("batch_sizes")
    if bs is not None:
        seq = ctx.const(_lengths(ctx.static(tuple(bs), "batch_sizes"), int(bs[0])), "sequence_lens")
    else:
        seq = ""
    inits = [_unsqueeze0(ctx, ctx.x(a)) for a in h_args]
    outs = ctx.emit(op_type, [ctx.x(xw), W, R, B, seq, *inits], n_out=1 + n_states, hidden_size=H,
                    direction="reverse" if n.attrs["reverse"] else "forward", **extra_attrs)
    _squeeze(ctx, outs[0], 1, ctx.out(0))           # Y (T, 1, B, H) -> (T, B, H)
    for k in range(n_states):                       # Y_h / Y_c (1, B, H) -> (B, H)
        _squeeze(ctx, outs[1 + k], 0, ctx.out(1 + k))


def _lstm_sequence(ctx, n):
    _, _, h0, c0 = n.args
    _sequence(ctx, n, "LSTM", 4, (0, 3, 1, 2), (h0, c0), None, {}, 2)


def _rnn_sequence(ctx, n):
    _, _, b_hh, h0 = n.args
    mode = n.attrs["mode"]
    if mode == "GRU":
        _sequence(ctx, n, "GRU", 3, (1, 0, 2), (h0,), b_hh, {"linear_before_reset": 1}, 1)
    else:
        act = "Relu" if mode == "RNN_RELU" else "Tanh"
        _sequence(ctx, n, "RNN", 1, (0,), (h0,), None, {"activations": [act]}, 1)


def _lstm_cell(ctx, n):
    if ctx.live(2):
        raise ctx.unsupported("lstm_cell's activations output (what the fused backward reads)",
                              "use the cell's (h, c) outputs")
    gx, gh, c = n.args
    H = int(ctx.values[c.id].shape[1])
    a = ctx.emit("Add", [ctx.x(gx), ctx.x(gh)])

    def block(k):
        return ctx.emit("Slice", [a, ctx.const(np.array([k * H], np.int64)), ctx.const(np.array([(k + 1) * H], np.int64)),
                                  ctx.const(np.array([1], np.int64))])

    i, f = ctx.emit("Sigmoid", [block(0)]), ctx.emit("Sigmoid", [block(1)])
    g, o = ctx.emit("Tanh", [block(2)]), ctx.emit("Sigmoid", [block(3)])
    cn = ctx.emit("Add", [ctx.emit("Mul", [f, ctx.x(c)]), ctx.emit("Mul", [i, g])], out=ctx.out(1))
    ctx.emit("Mul", [o, ctx.emit("Tanh", [cn])], out=ctx.out(0))


RECURRENT_CONVERTERS = {"lstm_sequence": _lstm_sequence, "rnn_sequence": _rnn_sequence, "lstm_cell": _lstm_cell}
