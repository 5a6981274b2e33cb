"""cpu registrations of the recurrent ops (devtensor/ops/rnn.py): the numba cells and their time
loops (rnn_kernels.py, loaded on the first call) for float32 / float64 in the specialised tier, the
array-API code (backends/rnn_portable.py) for every other dtype in the portable tier."""
from __future__ import annotations

import numpy as np

from .. import get_backend, rnn_portable
from .backend import LazyKernels

cpu = get_backend("cpu")  # registered by the package before it imports this module (no import cycle)
rnn_portable.register(cpu, np)

_F = ("float32", "float64")
K = LazyKernels(".rnn_kernels")


def _c(a):
    return None if a is None else np.ascontiguousarray(a)


@cpu.kernel("lstm_cell", dtypes=_F)
def lstm_cell(gx, gh, c):
    n, H = c.shape
    h = np.empty((n, H), c.dtype)
    cn = np.empty((n, H), c.dtype)
    acts = np.empty((n, 5 * H), c.dtype)
    K.lstm_cell_fwd(_c(gx), _c(gh), _c(c), h, cn, acts, np.empty(n * 9 * H, c.dtype), np.empty(n * 9 * H, np.int32))
    return h, cn, acts


@cpu.kernel("lstm_cell_backward", dtypes=_F)
def lstm_cell_backward(dh, dc, acts, c):
    n, H = c.shape
    dh = np.zeros((n, H), c.dtype) if dh is None else _c(dh)
    dg = np.empty((n, 4 * H), c.dtype)
    dcp = np.empty((n, H), c.dtype)
    K.lstm_cell_bwd(dh, _c(dc), _c(acts), _c(c), dg, dcp)
    return dg, dcp


@cpu.kernel("lstm_sequence", dtypes=_F)
def lstm_sequence(xw, w_hh, h0, c0, reverse, batch_sizes):
    return K.lstm_sequence(xw, w_hh, h0, c0, reverse, batch_sizes)


@cpu.kernel("lstm_sequence_backward", dtypes=_F)
def lstm_sequence_backward(gy, ghT, gcT, w_hh, h0, c0, y, ws, reverse, batch_sizes):
    return K.lstm_sequence_backward(gy, ghT, gcT, w_hh, h0, c0, y, ws, reverse, batch_sizes)


@cpu.kernel("rnn_sequence", dtypes=_F)
def rnn_sequence(xw, w_hh, b_hh, h0, mode, reverse, batch_sizes):
    if mode == "GRU":
        return K.gru_sequence(xw, w_hh, b_hh, h0, reverse, batch_sizes)
    y, h = K.rnn_sequence(xw, w_hh, h0, reverse, batch_sizes, mode == "RNN_RELU")
    return y, h, y[:0]


@cpu.kernel("rnn_sequence_backward", dtypes=_F)
def rnn_sequence_backward(gy, ghT, w_hh, h0, y, ws, mode, reverse, batch_sizes):
    if mode == "GRU":
        return K.gru_sequence_backward(gy, ghT, w_hh, h0, y, ws, reverse, batch_sizes)
    dP, dw, dh = K.rnn_sequence_backward(gy, ghT, w_hh, h0, y, reverse, batch_sizes, mode == "RNN_RELU")
    return dP, dw, dw[:0, 0], dh
