"""The recurrent ops' portable kernels: array-API code that reads the same in numpy and CuPy (the
"portable" tier: CuPy on cuda, and on cpu every dtype the numba kernels of cpu/rnn_kernels.py do
not take). Same contracts as those kernels: the sequence loops run one GEMM per step and the cell
math as whole-array expressions; the weight gradient is one GEMM over all steps.

`register(backend, xp)` fills a backend's table (cpu with numpy, cuda with the lazy cupy).
"""
from __future__ import annotations


def _sig(xp, v):
    e = xp.exp(-xp.abs(v))
    return xp.where(v >= 0, 1 / (1 + e), e / (1 + e)).astype(v.dtype, copy=False)


def _order(T, reverse):
    return range(T - 1, -1, -1) if reverse else range(T)


def _active(batch_sizes, t, B):
    return B if batch_sizes is None else batch_sizes[t]


def _prev_state(xp, out, init, reverse, batch_sizes, T):
    """(T, B, H): the state each step started from (h_{t-1} in processing order), built from the
    outputs and the initial state: for packed batches a row starts from init where the previous
    step in processing order did not cover it (cpu/rnn_kernels.py uses it too)."""
    prev = xp.empty(out.shape, out.dtype)
    B = out.shape[1]
    for s, t in enumerate(_order(T, reverse)):
        if s == 0:
            prev[t] = init
            continue
        tp = t + 1 if reverse else t - 1
        m = _active(batch_sizes, tp, B)
        prev[t, :m] = out[tp, :m]
        if m < B:
            prev[t, m:] = init[m:]
    return prev


# ---- LSTM ------------------------------------------------------------------------------------------
def lstm_cell_xp(xp, gx, gh, c):
    """-> h (n, H), c_new (n, H), acts (n, 5H): i, f, g, o activated and tanh(c_new)."""
    H = c.shape[1]
    a = gx + gh
    i, f, o = _sig(xp, a[:, :H]), _sig(xp, a[:, H:2 * H]), _sig(xp, a[:, 3 * H:])
    g = xp.tanh(a[:, 2 * H:3 * H])
    cn = f * c + i * g
    tc = xp.tanh(cn)
    return o * tc, cn, xp.concatenate([i, f, g, o, tc], axis=1)


def lstm_cell_backward_xp(xp, dh, dc, acts, c_prev):
    H = c_prev.shape[1]
    i, f, g, o, tc = acts[:, :H], acts[:, H:2 * H], acts[:, 2 * H:3 * H], acts[:, 3 * H:4 * H], acts[:, 4 * H:5 * H]
    if dh is None:
        dh = xp.zeros_like(c_prev)
    dcn = dh * o * (1 - tc * tc)
    if dc is not None:
        dcn = dcn + dc
    dg = xp.concatenate([dcn * g * i * (1 - i), dcn * c_prev * f * (1 - f), dcn * i * (1 - g * g),
                         dh * tc * o * (1 - o)], axis=1)
    return dg, dcn * f


def lstm_sequence_xp(xp, xw, w_hh, h0, c0, reverse, batch_sizes):
    T, B, G = xw.shape
    H = G // 4
    h, c = h0.copy(), c0.copy()
    y = xp.zeros((T, B, H), xw.dtype)
    ws = xp.zeros((T, B, 6 * H), xw.dtype)
    for t in _order(T, reverse):
        n = _active(batch_sizes, t, B)
        hn, cn, acts = lstm_cell_xp(xp, xw[t, :n], xp.matmul(h[:n], w_hh.T), c[:n])
        ws[t, :n, :5 * H] = acts
        ws[t, :n, 5 * H:] = cn
        h[:n], c[:n] = hn, cn
        y[t, :n] = hn
    return y, h, c, ws


def lstm_sequence_backward_xp(xp, gy, ghT, gcT, w_hh, h0, c0, y, ws, reverse, batch_sizes):
    T, B, H = y.shape
    dh = xp.zeros((B, H), y.dtype) if ghT is None else ghT.astype(y.dtype, copy=True)
    dc = xp.zeros((B, H), y.dtype) if gcT is None else gcT.astype(y.dtype, copy=True)
    dG = xp.zeros((T, B, 4 * H), y.dtype)
    c_prev = _prev_state(xp, xp.ascontiguousarray(ws[:, :, 5 * H:]), c0, reverse, batch_sizes, T)
    for t in reversed(_order(T, reverse)):
        n = _active(batch_sizes, t, B)
        if gy is not None:
            dh[:n] += gy[t, :n]
        dg, dcp = lstm_cell_backward_xp(xp, dh[:n], dc[:n], ws[t, :n], c_prev[t, :n])
        dG[t, :n] = dg
        dc[:n] = dcp
        dh[:n] = xp.matmul(dg, w_hh)
    h_prev = _prev_state(xp, y, h0, reverse, batch_sizes, T)
    dw = xp.matmul(dG.reshape(T * B, 4 * H).T, h_prev.reshape(T * B, H))
    return dG, dw, dh, dc


# ---- GRU and the tanh / relu RNN -------------------------------------------------------------------
def gru_sequence_xp(xp, xw, w_hh, b_hh, h0, reverse, batch_sizes):
    T, B, G = xw.shape
    H = G // 3
    h = h0.copy()
    y = xp.zeros((T, B, H), xw.dtype)
    ws = xp.zeros((T, B, 4 * H), xw.dtype)
    for t in _order(T, reverse):
        n = _active(batch_sizes, t, B)
        gh = xp.matmul(h[:n], w_hh.T)
        if b_hh is not None:
            gh = gh + b_hh
        gx = xw[t, :n]
        r = _sig(xp, gx[:, :H] + gh[:, :H])
        z = _sig(xp, gx[:, H:2 * H] + gh[:, H:2 * H])
        hn = gh[:, 2 * H:]
        nn = xp.tanh(gx[:, 2 * H:] + r * hn)
        new = (1 - z) * nn + z * h[:n]
        ws[t, :n] = xp.concatenate([r, z, nn, hn], axis=1)
        h[:n] = new
        y[t, :n] = new
    return y, h, ws


def gru_sequence_backward_xp(xp, gy, ghT, w_hh, h0, y, ws, reverse, batch_sizes):
    T, B, H = y.shape
    dh = xp.zeros((B, H), y.dtype) if ghT is None else ghT.astype(y.dtype, copy=True)
    dGx = xp.zeros((T, B, 3 * H), y.dtype)
    dGh = xp.zeros((T, B, 3 * H), y.dtype)
    h_prev = _prev_state(xp, y, h0, reverse, batch_sizes, T)
    for t in reversed(_order(T, reverse)):
        n = _active(batch_sizes, t, B)
        if gy is not None:
            dh[:n] += gy[t, :n]
        a = ws[t, :n]
        r, z, nn, hn = a[:, :H], a[:, H:2 * H], a[:, 2 * H:3 * H], a[:, 3 * H:]
        d = dh[:n]
        dn = d * (1 - z) * (1 - nn * nn)
        dz = d * (h_prev[t, :n] - nn) * z * (1 - z)
        dr = dn * hn * r * (1 - r)
        dGx[t, :n] = xp.concatenate([dr, dz, dn], axis=1)
        dgh = xp.concatenate([dr, dz, dn * r], axis=1)
        dGh[t, :n] = dgh
        dh[:n] = xp.matmul(dgh, w_hh) + d * z
    flat = dGh.reshape(T * B, 3 * H)
    dw = xp.matmul(flat.T, h_prev.reshape(T * B, H))
    return dGx, dw, flat.sum(0), dh


def rnn_sequence_xp(xp, xw, w_hh, h0, reverse, batch_sizes, relu):
    T, B, H = xw.shape
    h = h0.copy()
    y = xp.zeros((T, B, H), xw.dtype)
    for t in _order(T, reverse):
        n = _active(batch_sizes, t, B)
        v = xw[t, :n] + xp.matmul(h[:n], w_hh.T)
        new = xp.maximum(v, 0) if relu else xp.tanh(v)
        h[:n] = new
        y[t, :n] = new
    return y, h


def rnn_sequence_backward_xp(xp, gy, ghT, w_hh, h0, y, reverse, batch_sizes, relu):
    T, B, H = y.shape
    dh = xp.zeros((B, H), y.dtype) if ghT is None else ghT.astype(y.dtype, copy=True)
    dP = xp.zeros((T, B, H), y.dtype)
    for t in reversed(_order(T, reverse)):
        n = _active(batch_sizes, t, B)
        if gy is not None:
            dh[:n] += gy[t, :n]
        yt = y[t, :n]
        dp = xp.where(yt > 0, dh[:n], 0).astype(y.dtype, copy=False) if relu else dh[:n] * (1 - yt * yt)
        dP[t, :n] = dp
        dh[:n] = xp.matmul(dp, w_hh)
    h_prev = _prev_state(xp, y, h0, reverse, batch_sizes, T)
    dw = xp.matmul(dP.reshape(T * B, H).T, h_prev.reshape(T * B, H))
    return dP, dw, dh


# ---- registration ----------------------------------------------------------------------------------
def register(be, xp):
    """The portable tier of the recurrent ops for backend `be` with array namespace `xp`. The
    kernels take the op table's signatures (devtensor/ops/rnn.py)."""

    def k(name):
        return be.kernel(name, tier="portable")

    @k("lstm_cell")
    def lstm_cell(gx, gh, c):
        return lstm_cell_xp(xp, gx, gh, c)

    @k("lstm_cell_backward")
    def lstm_cell_backward(dh, dc, acts, c):
        return lstm_cell_backward_xp(xp, dh, dc, acts, c)

    @k("lstm_sequence")
    def lstm_sequence(xw, w_hh, h0, c0, reverse, batch_sizes):
        return lstm_sequence_xp(xp, xw, w_hh, h0, c0, reverse, batch_sizes)

    @k("lstm_sequence_backward")
    def lstm_sequence_backward(gy, ghT, gcT, w_hh, h0, c0, y, ws, reverse, batch_sizes):
        return lstm_sequence_backward_xp(xp, gy, ghT, gcT, w_hh, h0, c0, y, ws, reverse, batch_sizes)

    @k("rnn_sequence")
    def rnn_sequence(xw, w_hh, b_hh, h0, mode, reverse, batch_sizes):
        if mode == "GRU":
            return gru_sequence_xp(xp, xw, w_hh, b_hh, h0, reverse, batch_sizes)
        y, h = rnn_sequence_xp(xp, xw, w_hh, h0, reverse, batch_sizes, mode == "RNN_RELU")
        return y, h, y[:0]

    @k("rnn_sequence_backward")
    def rnn_sequence_backward(gy, ghT, w_hh, h0, y, ws, mode, reverse, batch_sizes):
        if mode == "GRU":
            return gru_sequence_backward_xp(xp, gy, ghT, w_hh, h0, y, ws, reverse, batch_sizes)
        dP, dw, dh = rnn_sequence_backward_xp(xp, gy, ghT, w_hh, h0, y, reverse, batch_sizes, mode == "RNN_RELU")
        return dP, dw, dw[:0, 0], dh
