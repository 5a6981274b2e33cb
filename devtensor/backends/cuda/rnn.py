"""cuda registrations of the recurrent ops (devtensor/ops/rnn.py).

Specialised tier (float32, float64): a step of an LSTM or GRU layer is one cuBLAS GEMM (CuPy's matmul,
h @ W_hh.T forward, dgates @ W_hh backward) and ONE fused CUDA C kernel for the cell's pointwise part
(kernels/rnn.cu through the wrappers in kernels.py), which reads and writes the sequence buffers (xw[t],
ws[t], y[t]) and the running states in place; the weight gradient of the whole sequence is one GEMM after
the loop. The portable tier (backends/rnn_portable.py with CuPy: a dozen array ops per step) serves every
other dtype, and the tanh / relu RNN, whose cell is a single elementwise op after the GEMM anyway.
"""
from __future__ import annotations

from .. import rnn_portable as P
from . import kernels as K
from .backend import cuda, cupy_lazy

P.register(cuda, cupy_lazy)

_F = ("float32", "float64")


def _cp():
    import cupy

    return cupy


def _copy(cp, a, B, H, dtype):
    return cp.zeros((B, H), dtype) if a is None else cp.array(a, dtype=dtype, order="C", copy=True)


@cuda.kernel("lstm_cell", dtypes=_F)
def lstm_cell(gx, gh, c):
    cp = _cp()
    n, H = c.shape
    h, cn, acts = cp.empty((n, H), c.dtype), cp.empty((n, H), c.dtype), cp.empty((n, 5 * H), c.dtype)
    K.lstm_cell_forward(gx, gh, c, cn, h, acts)
    return h, cn, acts


@cuda.kernel("lstm_cell_backward", dtypes=_F)
def lstm_cell_backward(dh, dc, acts, c):
    cp = _cp()
    n, H = c.shape
    dg, dcp = cp.empty((n, 4 * H), c.dtype), cp.empty((n, H), c.dtype)
    K.lstm_cell_backward(dh, None, dc, acts, c, dg, dcp)
    return dg, dcp


@cuda.kernel("lstm_sequence", dtypes=_F)
def lstm_sequence(xw, w_hh, h0, c0, reverse, batch_sizes):
    """-> y (T, B, H), h_T, c_T (B, H), ws (T, B, 6H): i, f, g, o, tanh(c_t) and c_t of every step."""
    cp = _cp()
    T, B, G = xw.shape
    H, dt = G // 4, xw.dtype
    xw, wt = cp.ascontiguousarray(xw), w_hh.T
    h, c = _copy(cp, h0, B, H, dt), _copy(cp, c0, B, H, dt)
    y = cp.zeros((T, B, H), dt)
    ws = cp.zeros((T, B, 6 * H), dt)
    gh = cp.empty((B, G), dt)
    for t in P._order(T, reverse):
        n = P._active(batch_sizes, t, B)
        cp.matmul(h[:n], wt, out=gh[:n])
        K.lstm_cell_forward(xw[t, :n], gh[:n], c[:n], c[:n], h[:n], ws[t, :n], y=y[t, :n], save_c=True)
    return y, h, c, ws


@cuda.kernel("lstm_sequence_backward", dtypes=_F)
def lstm_sequence_backward(gy, ghT, gcT, w_hh, h0, c0, y, ws, reverse, batch_sizes):
    """-> dxw (T, B, 4H), dw_hh (4H, H), dh0, dc0 (B, H)."""
    cp = _cp()
    T, B, H = y.shape
    dt = y.dtype
    gy = None if gy is None else cp.ascontiguousarray(gy)  # the grad of a sum arrives as a broadcast view
    ws = cp.ascontiguousarray(ws)
    dh, dc = _copy(cp, ghT, B, H, dt), _copy(cp, gcT, B, H, dt)
    dG = cp.zeros((T, B, 4 * H), dt)
    c_prev = P._prev_state(cp, cp.ascontiguousarray(ws[:, :, 5 * H:]), c0, reverse, batch_sizes, T)
    for t in reversed(P._order(T, reverse)):
        n = P._active(batch_sizes, t, B)
        K.lstm_cell_backward(dh[:n], None if gy is None else gy[t, :n], dc[:n], ws[t, :n], c_prev[t, :n],
                             dG[t, :n], dc[:n])
        cp.matmul(dG[t, :n], w_hh, out=dh[:n])
    h_prev = P._prev_state(cp, y, h0, reverse, batch_sizes, T)
    dw = cp.matmul(dG.reshape(T * B, 4 * H).T, h_prev.reshape(T * B, H))
    return dG, dw, dh, dc


def gru_sequence(xw, w_hh, b_hh, h0, reverse, batch_sizes):
    """-> y (T, B, H), h_T (B, H), ws (T, B, 4H): r, z, n and the hidden part of the n gate."""
    cp = _cp()
    T, B, G = xw.shape
    H, dt = G // 3, xw.dtype
    xw, wt = cp.ascontiguousarray(xw), w_hh.T
    h = _copy(cp, h0, B, H, dt)
    y = cp.zeros((T, B, H), dt)
    ws = cp.zeros((T, B, 4 * H), dt)
    gh = cp.empty((B, G), dt)
    for t in P._order(T, reverse):
        n = P._active(batch_sizes, t, B)
        cp.matmul(h[:n], wt, out=gh[:n])
        K.gru_cell_forward(xw[t, :n], gh[:n], b_hh, h[:n], h[:n], ws[t, :n], y=y[t, :n])
    return y, h, ws


def gru_sequence_backward(gy, ghT, w_hh, h0, y, ws, reverse, batch_sizes):
    """-> dxw (T, B, 3H), dw_hh (3H, H), db_hh (3H,), dh0 (B, H)."""
    cp = _cp()
    T, B, H = y.shape
    dt = y.dtype
    gy = None if gy is None else cp.ascontiguousarray(gy)
    ws = cp.ascontiguousarray(ws)
    dh = _copy(cp, ghT, B, H, dt)
    dGx = cp.zeros((T, B, 3 * H), dt)
    dGh = cp.zeros((T, B, 3 * H), dt)
    carried = cp.empty((B, H), dt)
    h_prev = P._prev_state(cp, y, h0, reverse, batch_sizes, T)
    for t in reversed(P._order(T, reverse)):
        n = P._active(batch_sizes, t, B)
        K.gru_cell_backward(dh[:n], None if gy is None else gy[t, :n], ws[t, :n], h_prev[t, :n], dGx[t, :n],
                            dGh[t, :n], dh[:n])
        cp.matmul(dGh[t, :n], w_hh, out=carried[:n])
        dh[:n] += carried[:n]
    flat = dGh.reshape(T * B, 3 * H)
    dw = cp.matmul(flat.T, h_prev.reshape(T * B, H))
    return dGx, dw, flat.sum(0), dh


@cuda.kernel("rnn_sequence", dtypes=_F)
def rnn_sequence(xw, w_hh, b_hh, h0, mode, reverse, batch_sizes):
    cp = _cp()
    if mode == "GRU":
        return gru_sequence(xw, w_hh, b_hh, h0, reverse, batch_sizes)
    y, h = P.rnn_sequence_xp(cp, xw, w_hh, h0, reverse, batch_sizes, mode == "RNN_RELU")
    return y, h, y[:0]


@cuda.kernel("rnn_sequence_backward", dtypes=_F)
def rnn_sequence_backward(gy, ghT, w_hh, h0, y, ws, mode, reverse, batch_sizes):
    cp = _cp()
    if mode == "GRU":
        return gru_sequence_backward(gy, ghT, w_hh, h0, y, ws, reverse, batch_sizes)
    dP, dw, dh = P.rnn_sequence_backward_xp(cp, gy, ghT, w_hh, h0, y, reverse, batch_sizes, mode == "RNN_RELU")
    return dP, dw, dw[:0, 0], dh
