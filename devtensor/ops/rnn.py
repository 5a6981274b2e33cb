"""Recurrent ops: the LSTM cell step as one fused op, and whole recurrent layers (one direction of
one layer of nn.LSTM / nn.GRU / nn.RNN) as one op each, with fused backward ops.

    lstm_cell(gx, gh, c) -> (h, c_new, acts)          gates = gx + gh, PyTorch's order i, f, g, o
    lstm_sequence(xw, w_hh, h0, c0) -> (y, h_T, c_T, ws)
    rnn_sequence(xw, w_hh, b_hh, h0, mode) -> (y, h_T, ws)     mode: "GRU", "RNN_TANH", "RNN_RELU"

`xw` is the input projection of every step, x @ W_ih.T + b_ih (+ b_hh for LSTM and the plain RNN,
whose hidden bias adds outside any gate), computed by the layer with ONE linear over the whole
sequence. The op runs the time loop: per step one GEMM (h @ W_hh.T) and one fused cell pass (numba on
cpu: backends/cpu/rnn_kernels.py; array-API code elsewhere: backends/rnn_portable.py). `ws` holds
what the backward needs (activated gates, tanh of the cell states, the cell states) and is not
differentiable. attrs: `reverse` (process t = T-1 .. 0) and `batch_sizes` (None, or a packed
batch's sizes per step: the first batch_sizes[t] rows are active at step t, the others keep their
state).

Backward. Without create_graph the backward ops run the reverse loop fused (one cell pass and one
GEMM per step) and form the weight gradient as ONE GEMM over all steps. With create_graph=True the
same derivative is written in Tensor ops (the forward recomputed step by step, then the chain rule
by hand), so it differentiates again: gradgradcheck runs on it in the generated suite.
"""
from __future__ import annotations

import numbers

import numpy as np

from ..autograd.grad_mode import _grad_state
from ..dispatch import KEEP, call, defop

MODES = ("GRU", "RNN_TANH", "RNN_RELU")


# ---- meta rules ------------------------------------------------------------------------------------
def _float_same(what, *arrays):
    dts = {a.dtype for a in arrays if a is not None}
    if len(dts) > 1:
        raise TypeError(f"expected {what} of one dtype, got " + ", ".join(sorted(map(str, dts))))
    for d in dts:
        if d.kind not in "fV":
            raise TypeError(f"expected floating point {what}, got {d}")


def _shape(name, a, want):
    if a is not None and tuple(a.shape) != tuple(want):
        raise RuntimeError(f"expected {name} of shape {list(want)}, got {list(a.shape)}")


def _check_batch_sizes(batch_sizes, T, B):
    if batch_sizes is None:
        return
    bs = tuple(batch_sizes)
    if len(bs) != T:
        raise RuntimeError(f"batch_sizes has {len(bs)} entries for a sequence of {T} steps")
    prev = B
    for i, v in enumerate(bs):
        if not isinstance(v, numbers.Integral) or isinstance(v, bool):
            raise TypeError(f"batch_sizes must hold ints, got {v!r}")
        if not 0 < v <= prev:
            raise RuntimeError(f"batch_sizes must be positive and non-increasing, starting at the batch size {B}; "
                               f"got {list(bs)}")
        prev = v
    if bs[0] != B:
        raise RuntimeError(f"batch_sizes must start at the batch size {B}, got {list(bs)}")


def _seq_dims(xw, w_hh, gates):
    if len(xw.shape) != 3:
        raise RuntimeError(f"expected the input projection xw of shape (T, B, {gates}*H), got {list(xw.shape)}")
    if len(w_hh.shape) != 2:
        raise RuntimeError(f"expected w_hh of shape ({gates}*H, H), got {list(w_hh.shape)}")
    T, B, G = xw.shape
    H = w_hh.shape[1]
    if T == 0:
        raise RuntimeError("Expected sequence length to be larger than 0 in RNN")
    if G != gates * H or w_hh.shape[0] != gates * H:
        raise RuntimeError(f"xw {list(xw.shape)} and w_hh {list(w_hh.shape)} do not belong to {gates} gates of "
                           f"hidden size {H}")
    return T, B, H


def _lstm_cell_meta(gx, gh, c):
    _float_same("gates and cell state", gx, gh, c)
    if len(c.shape) != 2:
        raise RuntimeError(f"expected a cell state of shape (batch, hidden_size), got {list(c.shape)}")
    n, H = c.shape
    _shape("gx", gx, (n, 4 * H))
    _shape("gh", gh, (n, 4 * H))
    s = ((n, H), c.dtype)
    return s, s, ((n, 5 * H), c.dtype)


def _lstm_cell_bwd_meta(dh, dc, acts, c):
    _float_same("gradients and states", dh, dc, acts, c)
    if len(c.shape) != 2:
        raise RuntimeError(f"expected a cell state of shape (batch, hidden_size), got {list(c.shape)}")
    n, H = c.shape
    for name, a in (("dh", dh), ("dc", dc)):
        _shape(name, a, (n, H))
    _shape("acts", acts, (n, 5 * H))
    return ((n, 4 * H), c.dtype), ((n, H), c.dtype)


def _lstm_seq_meta(xw, w_hh, h0, c0, reverse, batch_sizes):
    _float_same("input projection, weight and states", xw, w_hh, h0, c0)
    T, B, H = _seq_dims(xw, w_hh, 4)
    _shape("h0", h0, (B, H))
    _shape("c0", c0, (B, H))
    _check_batch_sizes(batch_sizes, T, B)
    d = xw.dtype
    return ((T, B, H), d), ((B, H), d), ((B, H), d), ((T, B, 6 * H), d)


def _lstm_seq_bwd_meta(gy, ghT, gcT, w_hh, h0, c0, y, ws, reverse, batch_sizes):
    _float_same("gradients, weight and states", gy, ghT, gcT, w_hh, h0, c0, y, ws)
    if len(y.shape) != 3:
        raise RuntimeError(f"expected y of shape (T, B, H), got {list(y.shape)}")
    T, B, H = y.shape
    _shape("w_hh", w_hh, (4 * H, H))
    for name, a in (("grad of h_T", ghT), ("grad of c_T", gcT), ("h0", h0), ("c0", c0)):
        _shape(name, a, (B, H))
    _shape("grad of y", gy, (T, B, H))
    _shape("ws", ws, (T, B, 6 * H))
    _check_batch_sizes(batch_sizes, T, B)
    d = y.dtype
    return ((T, B, 4 * H), d), ((4 * H, H), d), ((B, H), d), ((B, H), d)


def _gates(mode):
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    return 3 if mode == "GRU" else 1


def _rnn_seq_meta(xw, w_hh, b_hh, h0, mode, reverse, batch_sizes):
    _float_same("input projection, weight, bias and state", xw, w_hh, b_hh, h0)
    g = _gates(mode)
    T, B, H = _seq_dims(xw, w_hh, g)
    if b_hh is not None:
        if mode != "GRU":
            raise RuntimeError(f"{mode}: the hidden bias belongs in xw (only GRU applies it inside a gate)")
        _shape("b_hh", b_hh, (3 * H,))
    _shape("h0", h0, (B, H))
    _check_batch_sizes(batch_sizes, T, B)
    d = xw.dtype
    return ((T, B, H), d), ((B, H), d), (((T, B, 4 * H) if g == 3 else (0, B, H)), d)


def _rnn_seq_bwd_meta(gy, ghT, w_hh, h0, y, ws, mode, reverse, batch_sizes):
    _float_same("gradients, weight and states", gy, ghT, w_hh, h0, y, ws)
    g = _gates(mode)
    if len(y.shape) != 3:
        raise RuntimeError(f"expected y of shape (T, B, H), got {list(y.shape)}")
    T, B, H = y.shape
    _shape("w_hh", w_hh, (g * H, H))
    _shape("grad of h_T", ghT, (B, H))
    _shape("h0", h0, (B, H))
    _shape("grad of y", gy, (T, B, H))
    _shape("ws", ws, (T, B, 4 * H) if g == 3 else (0, B, H))
    _check_batch_sizes(batch_sizes, T, B)
    d = y.dtype
    return ((T, B, g * H), d), ((g * H, H), d), (((3 * H,) if g == 3 else (0,)), d), ((B, H), d)


# ---- numpy references (the generated suite's forward check) ---------------------------------------
def _sig(v):
    return 1 / (1 + np.exp(-v))


def _ref_lstm_cell(gx, gh, c):
    H = c.shape[1]
    a = gx + gh
    i, f, g, o = _sig(a[:, :H]), _sig(a[:, H:2 * H]), np.tanh(a[:, 2 * H:3 * H]), _sig(a[:, 3 * H:])
    cn = f * c + i * g
    return o * np.tanh(cn), cn, np.concatenate([i, f, g, o, np.tanh(cn)], 1)


def _steps(T, reverse):
    return list(range(T - 1, -1, -1)) if reverse else list(range(T))


def _ref_lstm_sequence(xw, w_hh, h0, c0, reverse, batch_sizes):
    T, B, _ = xw.shape
    H = h0.shape[1]
    h, c = h0.copy(), c0.copy()
    y = np.zeros((T, B, H), xw.dtype)
    ws = np.zeros((T, B, 6 * H), xw.dtype)
    for t in _steps(T, reverse):
        n = B if batch_sizes is None else batch_sizes[t]
        hn, cn, acts = _ref_lstm_cell(xw[t, :n], h[:n] @ w_hh.T, c[:n])
        h[:n], c[:n], y[t, :n] = hn, cn, hn
        ws[t, :n] = np.concatenate([acts, cn], 1)
    return y, h, c, ws


def _ref_rnn_sequence(xw, w_hh, b_hh, h0, mode, reverse, batch_sizes):
    T, B, _ = xw.shape
    H = h0.shape[1]
    h = h0.copy()
    y = np.zeros((T, B, H), xw.dtype)
    ws = np.zeros((T, B, 4 * H) if mode == "GRU" else (0, B, H), xw.dtype)
    for t in _steps(T, reverse):
        n = B if batch_sizes is None else batch_sizes[t]
        gh = h[:n] @ w_hh.T
        if mode == "GRU":
            gh = gh + (b_hh if b_hh is not None else 0)
            gx = xw[t, :n]
            r, z = _sig(gx[:, :H] + gh[:, :H]), _sig(gx[:, H:2 * H] + gh[:, H:2 * H])
            nn = np.tanh(gx[:, 2 * H:] + r * gh[:, 2 * H:])
            new = (1 - z) * nn + z * h[:n]
            ws[t, :n] = np.concatenate([r, z, nn, gh[:, 2 * H:]], 1)
        else:
            v = xw[t, :n] + gh
            new = np.maximum(v, 0) if mode == "RNN_RELU" else np.tanh(v)
        h[:n], y[t, :n] = new, new
    return y, h, ws


def _ref_lstm_cell_backward(dh, dc, acts, c):
    H = c.shape[1]
    i, f, g, o, tc = acts[:, :H], acts[:, H:2 * H], acts[:, 2 * H:3 * H], acts[:, 3 * H:4 * H], acts[:, 4 * H:]
    dcn = dh * o * (1 - tc * tc) + dc
    return (np.concatenate([dcn * g * i * (1 - i), dcn * c * f * (1 - f), dcn * i * (1 - g * g),
                            dh * tc * o * (1 - o)], 1), dcn * f)


def _ref_prev(out, init, t, steps, n, B):
    """The state step t started from (rows < n): the previous processed step's output where it covered
    the row, else the initial state."""
    i = steps.index(t)
    if i == 0:
        return init[:n].copy()
    tp = steps[i - 1]
    prev = init[:n].copy()
    m = min(n, B if tp is None else out[1][tp])
    prev[:m] = out[0][tp, :m]
    return prev


def _ref_lstm_sequence_backward(gy, ghT, gcT, w_hh, h0, c0, y, ws, reverse, batch_sizes):
    T, B, H = y.shape
    steps = _steps(T, reverse)
    act = [B if batch_sizes is None else batch_sizes[t] for t in range(T)]
    dh = np.zeros((B, H), y.dtype) if ghT is None else ghT.copy()
    dc = np.zeros((B, H), y.dtype) if gcT is None else gcT.copy()
    dxw, dw = np.zeros((T, B, 4 * H), y.dtype), np.zeros((4 * H, H), y.dtype)
    for t in reversed(steps):
        n = act[t]
        h_prev = _ref_prev((y, act), h0, t, steps, n, B)
        c_prev = _ref_prev((ws[:, :, 5 * H:], act), c0, t, steps, n, B)
        d = dh[:n] + (gy[t, :n] if gy is not None else 0)
        dG, dcp = _ref_lstm_cell_backward(d, dc[:n], ws[t, :n, :5 * H], c_prev)
        dxw[t, :n] = dG
        dw += dG.T @ h_prev
        dh[:n], dc[:n] = dG @ w_hh, dcp
    return dxw, dw, dh, dc


def _ref_rnn_sequence_backward(gy, ghT, w_hh, h0, y, ws, mode, reverse, batch_sizes):
    T, B, H = y.shape
    steps = _steps(T, reverse)
    act = [B if batch_sizes is None else batch_sizes[t] for t in range(T)]
    g = 3 if mode == "GRU" else 1
    dh = np.zeros((B, H), y.dtype) if ghT is None else ghT.copy()
    dxw, dw = np.zeros((T, B, g * H), y.dtype), np.zeros((g * H, H), y.dtype)
    db = np.zeros((3 * H,) if g == 3 else (0,), y.dtype)
    for t in reversed(steps):
        n = act[t]
        h_prev = _ref_prev((y, act), h0, t, steps, n, B)
        d = dh[:n] + (gy[t, :n] if gy is not None else 0)
        if mode == "GRU":
            r, z, nn, hn = (ws[t, :n, k * H:(k + 1) * H] for k in range(4))
            dn = d * (1 - z) * (1 - nn * nn)
            dz = d * (h_prev - nn) * z * (1 - z)
            dr = dn * hn * r * (1 - r)
            dxw[t, :n] = np.concatenate([dr, dz, dn], 1)
            dgh = np.concatenate([dr, dz, dn * r], 1)
            db += dgh.sum(0)
            dh[:n] = dgh @ w_hh + d * z
        else:
            yt = y[t, :n]
            dgh = d * (yt > 0) if mode == "RNN_RELU" else d * (1 - yt * yt)
            dxw[t, :n] = dgh
            dh[:n] = dgh @ w_hh
        dw += dgh.T @ h_prev
    return dxw, dw, db, dh


# ---- samples ---------------------------------------------------------------------------------------
def _rng(seed):
    return np.random.default_rng(seed)


def _samples_lstm_cell(dtype=np.float64):
    r = _rng(31)
    X = lambda *s: (r.standard_normal(s) * 0.8).astype(dtype)  # noqa: E731
    return [((X(3, 8), X(3, 8), X(3, 2)), {}), ((X(1, 12), X(1, 12), X(1, 3)), {})]


def _samples_lstm_cell_backward(dtype=np.float64):
    r = _rng(32)
    X = lambda *s: (r.standard_normal(s) * 0.8).astype(dtype)  # noqa: E731
    gx, gh, c = X(3, 8), X(3, 8), X(3, 2)
    h, cn, acts = _ref_lstm_cell(gx, gh, c)
    return [((X(3, 2), X(3, 2), acts, c), {})]


_PACKED = (3, 2, 2, 1)


def _samples_lstm_sequence(dtype=np.float64):
    r = _rng(33)
    X = lambda *s: (r.standard_normal(s) * 0.6).astype(dtype)  # noqa: E731
    H = 2
    return [
        ((X(3, 2, 4 * H), X(4 * H, H), X(2, H), X(2, H)), {"reverse": False, "batch_sizes": None}),
        ((X(3, 2, 4 * H), X(4 * H, H), X(2, H), X(2, H)), {"reverse": True, "batch_sizes": None}),
        ((X(4, 3, 4 * H), X(4 * H, H), X(3, H), X(3, H)), {"reverse": False, "batch_sizes": _PACKED}),
        ((X(4, 3, 4 * H), X(4 * H, H), X(3, H), X(3, H)), {"reverse": True, "batch_sizes": _PACKED}),
    ]


def _samples_lstm_sequence_backward(dtype=np.float64):
    r = _rng(34)
    X = lambda *s: (r.standard_normal(s) * 0.6).astype(dtype)  # noqa: E731
    out = []
    for args, kw in _samples_lstm_sequence(dtype)[1:3]:
        xw, w, h0, c0 = args
        y, hT, cT, ws = _ref_lstm_sequence(xw, w, h0, c0, **kw)
        out.append(((X(*y.shape), X(*hT.shape), X(*cT.shape), w, h0, c0, y, ws), kw))
    return out


def _samples_rnn_sequence_backward(dtype=np.float64):
    r = _rng(36)
    X = lambda *s: (r.standard_normal(s) * 0.6).astype(dtype)  # noqa: E731
    out = []
    for args, kw in _samples_rnn_sequence(dtype)[::2] + _samples_rnn_sequence(dtype)[1:2]:
        xw, w, b, h0 = args
        y, hT, ws = _ref_rnn_sequence(xw, w, b, h0, **kw)
        out.append(((X(*y.shape), X(*hT.shape), w, h0, y, ws), kw))
    return out


def _samples_rnn_sequence(dtype=np.float64):
    r = _rng(35)
    X = lambda *s: (r.standard_normal(s) * 0.6).astype(dtype)  # noqa: E731
    H = 2
    out = []
    for mode, g in (("GRU", 3), ("RNN_TANH", 1), ("RNN_RELU", 1)):
        b = X(g * H) if mode == "GRU" else None
        out.append(((X(3, 2, g * H), X(g * H, H), b, X(2, H)), {"mode": mode, "reverse": False, "batch_sizes": None}))
        out.append(((X(4, 3, g * H), X(g * H, H), b, X(3, H)), {"mode": mode, "reverse": True,
                                                                  "batch_sizes": _PACKED}))
    out.append(((X(4, 3, 3 * H), X(3 * H, H), None, X(3, H)), {"mode": "GRU", "reverse": False,
                                                               "batch_sizes": _PACKED}))
    return out


# ---- backward rules --------------------------------------------------------------------------------
def _zeros(like, shape):
    return like.new_zeros(tuple(shape))


def _cell_grads_t(dh, dc, i, f, g, o, c_prev, c_new):
    """The LSTM cell's derivative in Tensor ops (differentiable again)."""
    tc = c_new.tanh()
    dcn = dh * o * (1 - tc * tc)
    if dc is not None:
        dcn = dcn + dc
    from .shape import cat

    dG = cat([dcn * g * i * (1 - i), dcn * c_prev * f * (1 - f), dcn * i * (1 - g * g), dh * tc * o * (1 - o)], 1)
    return dG, dcn * f


def _acts_t(a, H):
    return (a[:, :H].sigmoid(), a[:, H:2 * H].sigmoid(), a[:, 2 * H:3 * H].tanh(), a[:, 3 * H:].sigmoid())


def _lstm_cell_backward(c, g_h, g_c, g_acts):
    if g_h is None and g_c is None:
        return None, None, None
    if _grad_state.enabled:  # create_graph: the derivative in Tensor ops, differentiable again
        H = c.c.shape[1]
        i, f, g, o = _acts_t(c.gx + c.gh, H)
        c_new = f * c.c + i * g
        dh = g_h if g_h is not None else _zeros(c.c, c.c.shape)
        dG, dcp = _cell_grads_t(dh, g_c, i, f, g, o, c.c, c_new)
    else:
        dG, dcp = call(lstm_cell_backward, (g_h, g_c, c.out2, c.c), {})
    return (dG if c.needs_input_grad(0) else None, dG if c.needs_input_grad(1) else None,
            dcp if c.needs_input_grad(2) else None)


def _rows(t, n, B):
    return t if n == B else t[:n]


def _merge(new, old, n, B):
    if n == B:
        return new
    from .shape import cat

    return cat([new, old[n:]], 0)


def _pad_rows(t, B):
    n = t.shape[0]
    if n == B:
        return t
    from .shape import cat

    return cat([t, _zeros(t, (B - n,) + tuple(t.shape[1:]))], 0)


def _lstm_sequence_backward_t(c, gy, ghT, gcT):
    """create_graph: the forward again in Tensor ops, then backpropagation through time by hand."""
    from .shape import stack

    xw, w, h0, c0 = c.xw, c.w_hh, c.h0, c.c0
    T, B, G = xw.shape
    H = G // 4
    bs = c.batch_sizes
    order = _steps(T, c.reverse)
    h, cc = h0, c0
    saved = {}
    wt = w.t()
    for t in order:
        n = B if bs is None else bs[t]
        hp, cp = _rows(h, n, B), _rows(cc, n, B)
        i, f, g, o = _acts_t(xw[t][:n] + hp @ wt, H)
        cn = f * cp + i * g
        hn = o * cn.tanh()
        saved[t] = (n, hp, cp, cn, i, f, g, o)
        h, cc = _merge(hn, h, n, B), _merge(cn, cc, n, B)
    dh = ghT if ghT is not None else _zeros(h0, (B, H))
    dc = gcT if gcT is not None else _zeros(h0, (B, H))
    dxw, dw = [None] * T, None
    for t in reversed(order):
        n, hp, cp, cn, i, f, g, o = saved[t]
        d_h = _rows(dh, n, B)
        if gy is not None:
            d_h = d_h + gy[t][:n]
        dG, dcp = _cell_grads_t(d_h, _rows(dc, n, B), i, f, g, o, cp, cn)
        dxw[t] = _pad_rows(dG, B)
        term = dG.t() @ hp
        dw = term if dw is None else dw + term
        dh, dc = _merge(dG @ w, dh, n, B), _merge(dcp, dc, n, B)
    return stack(dxw), dw, dh, dc


def _lstm_sequence_backward(c, gy, ghT, gcT, gws):
    if gy is None and ghT is None and gcT is None:
        return None, None, None, None
    if _grad_state.enabled:
        gxw, gw, gh0, gc0 = _lstm_sequence_backward_t(c, gy, ghT, gcT)
    else:
        gxw, gw, gh0, gc0 = call(lstm_sequence_backward, (gy, ghT, gcT, c.w_hh, c.h0, c.c0, c.out0, c.out3),
                                 {"reverse": c.reverse, "batch_sizes": c.batch_sizes})
    need = c.needs_input_grad
    return (gxw if need(0) else None, gw if need(1) else None, gh0 if need(2) else None, gc0 if need(3) else None)


def _rnn_sequence_backward_t(c, gy, ghT):
    from .shape import cat, stack

    xw, w, b, h0, mode = c.xw, c.w_hh, c.b_hh, c.h0, c.mode
    T, B, G = xw.shape
    H = w.shape[1]
    bs = c.batch_sizes
    order = _steps(T, c.reverse)
    wt = w.t()
    h = h0
    saved = {}
    for t in order:
        n = B if bs is None else bs[t]
        hp = _rows(h, n, B)
        gh = hp @ wt
        gx = xw[t][:n]
        if mode == "GRU":
            if b is not None:
                gh = gh + b
            r = (gx[:, :H] + gh[:, :H]).sigmoid()
            z = (gx[:, H:2 * H] + gh[:, H:2 * H]).sigmoid()
            hn = gh[:, 2 * H:]
            nn = (gx[:, 2 * H:] + r * hn).tanh()
            new = (1 - z) * nn + z * hp
            saved[t] = (n, hp, (r, z, nn, hn))
        else:
            v = gx + gh
            new = v.relu() if mode == "RNN_RELU" else v.tanh()
            saved[t] = (n, hp, new)
        h = _merge(new, h, n, B)
    dh = ghT if ghT is not None else _zeros(h0, (B, H))
    dxw, dw, db = [None] * T, None, None
    for t in reversed(order):
        n, hp, s = saved[t]
        d = _rows(dh, n, B)
        if gy is not None:
            d = d + gy[t][:n]
        if mode == "GRU":
            r, z, nn, hn = s
            dn = d * (1 - z) * (1 - nn * nn)
            dz = d * (hp - nn) * z * (1 - z)
            dr = dn * hn * r * (1 - r)
            dgx = cat([dr, dz, dn], 1)
            dgh = cat([dr, dz, dn * r], 1)
            dprev = dgh @ w + d * z
            bterm = dgh.sum(0)
            db = bterm if db is None else db + bterm
        else:
            dgx = d * (s > 0).to(d.dtype) if mode == "RNN_RELU" else d * (1 - s * s)
            dgh = dgx
            dprev = dgh @ w
        dxw[t] = _pad_rows(dgx, B)
        term = dgh.t() @ hp
        dw = term if dw is None else dw + term
        dh = _merge(dprev, dh, n, B)
    return stack(dxw), dw, db, dh


def _rnn_sequence_backward(c, gy, ghT, gws):
    if gy is None and ghT is None:
        return None, None, None, None
    if _grad_state.enabled:
        gxw, gw, gb, gh0 = _rnn_sequence_backward_t(c, gy, ghT)
    else:
        gxw, gw, gb, gh0 = call(rnn_sequence_backward, (gy, ghT, c.w_hh, c.h0, c.out0, c.out2),
                                {"mode": c.mode, "reverse": c.reverse, "batch_sizes": c.batch_sizes})
    need = c.needs_input_grad
    return (gxw if need(0) else None, gw if need(1) else None,
            gb if (need(2) and c.mode == "GRU") else None, gh0 if need(3) else None)


# ---- the ops ---------------------------------------------------------------------------------------
lstm_cell = defop("lstm_cell", ("gx", "gh", "c"), rule=KEEP, meta=_lstm_cell_meta, check=True, nout=3,
                  diff_outputs=(0, 1), save=("gx", "gh", "c", "out2"), backward=_lstm_cell_backward,
                  ref=_ref_lstm_cell, samples=_samples_lstm_cell,
                  doc="one LSTM step: (h, c_new, activated gates) from the two gate projections and c")
lstm_cell_backward = defop("lstm_cell_backward", ("dh", "dc", "acts", "c"), rule=KEEP,
                           meta=_lstm_cell_bwd_meta, check=True, nout=2, backward=None, differentiable=False,
                           ref=_ref_lstm_cell_backward, samples=_samples_lstm_cell_backward)
lstm_sequence = defop("lstm_sequence", ("xw", "w_hh", "h0", "c0"), rule=KEEP, meta=_lstm_seq_meta, check=True,
                      nout=4, diff_outputs=(0, 1, 2), save=("xw", "w_hh", "h0", "c0", "out0", "out3"),
                      backward=_lstm_sequence_backward, ref=_ref_lstm_sequence, samples=_samples_lstm_sequence,
                      shown_as="lstm", doc="one direction of one LSTM layer over a whole sequence")
lstm_sequence_backward = defop("lstm_sequence_backward", ("gy", "ghT", "gcT", "w_hh", "h0", "c0", "y", "ws"),
                               rule=KEEP, meta=_lstm_seq_bwd_meta, check=True, nout=4, backward=None,
                               differentiable=False, shown_as="lstm backward", ref=_ref_lstm_sequence_backward,
                               samples=_samples_lstm_sequence_backward)
rnn_sequence = defop("rnn_sequence", ("xw", "w_hh", "b_hh", "h0"), rule=KEEP, meta=_rnn_seq_meta, check=True,
                     nout=3, diff_outputs=(0, 1), save=("xw", "w_hh", "b_hh", "h0", "out0", "out2"),
                     backward=_rnn_sequence_backward, ref=_ref_rnn_sequence, samples=_samples_rnn_sequence,
                     shown_as="rnn", doc="one direction of one GRU / tanh RNN / relu RNN layer over a sequence")
rnn_sequence_backward = defop("rnn_sequence_backward", ("gy", "ghT", "w_hh", "h0", "y", "ws"), rule=KEEP,
                              meta=_rnn_seq_bwd_meta, check=True, nout=4, backward=None, differentiable=False,
                              shown_as="rnn backward", ref=_ref_rnn_sequence_backward,
                              samples=_samples_rnn_sequence_backward)
