"""Recurrent cells on the cpu: one fused numba pass per time step (LSTM, GRU, tanh/relu RNN), forward
and backward, and the time loops of the sequence ops around them (devtensor/ops/rnn.py).

A step of a recurrent layer is one GEMM (h @ W_hh.T, numpy's BLAS) and one pass over the (batch, H)
elements that adds the input projection, applies the gate nonlinearities and writes the new state,
the activations the backward needs and the output, instead of the dozen small array ops the cell
is made of. The backward pass is the same: one pass per step turns (dh, dc) into the gate gradients,
one GEMM carries them to h_{t-1}, and the weight gradient of the whole sequence is ONE GEMM after
the loop (dG of all steps against h_{t-1} of all steps), not one per step.

Packed sequences (nn.utils.rnn): `batch_sizes[t]` rows are active at step t (sorted by length, so
the active rows are always a prefix); the other rows keep their state, which is exactly the
PyTorch semantics of a packed batch in both directions (a finished sequence keeps its last state,
a reversed one that has not started yet keeps h0).

Determinism: no fastmath, every element computed by one thread in source order (see gemm.py).

Its size: the three cells' fused passes (forward and backward) and the six time loops around them,
side by side because each loop is written against its cells' buffers; the BLAS plumbing the loops
share is in rnn_blas.py.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, types
from numba.extending import overload

from ..rnn_portable import _prev_state
from .gemm import fma
from .rnn_blas import OneBlasThread, add, block_rows, gemm_fn, hidden_gemm, mm, put

_J = dict(nogil=True, cache=True, error_model="numpy")

# exp(x) = 2^k * exp(r), r = x - k ln2 (Cody-Waite, ln2 split in two), exp(r) by a degree-6 polynomial
# fitted for relative error on [-ln2/2, ln2/2] (< 1e-7, float32's rounding); 2^k is built in the
# exponent bits. No call and no branch per element, so LLVM vectorizes the loop: 1 ns an element
# where numba's libm call takes 9 (and numpy's SIMD exp 1.4 plus a pass over memory per op).
_LOG2E = 1.4426950408889634
_LN2_HI = 0.6931471824645996
_LN2_LO = -1.904654323148236e-09
_P32 = (1.0, 1.0, 0.49999991059303284, 0.1666642129421234, 0.0416683591902256, 0.008374777622520924,
        0.0013829427771270275)


def exp_into(x, out, ki):
    """out[:] = exp(x[:]) for 1-D contiguous arrays (out may be x); ki: int32 scratch of x's size."""


@overload(exp_into, jit_options=dict(nogil=True, error_model="numpy"))
def _exp_into(x, out, ki):
    if x.dtype == types.float32:
        f32 = np.float32
        lo, hi, l2e, ln2h, ln2l = f32(-87.0), f32(87.0), f32(_LOG2E), f32(-_LN2_HI), f32(-_LN2_LO)
        c0, c1, c2, c3, c4, c5, c6 = (f32(v) for v in _P32)
        half, bias = f32(0.5), np.int32(127)

        def impl(x, out, ki):
            n = x.size
            for j in range(n):
                v = min(max(x[j], lo), hi)
                k = np.floor(v * l2e + half)
                r = fma(k, ln2h, v)
                r = fma(k, ln2l, r)
                p = fma(r, c6, c5)
                p = fma(r, p, c4)
                p = fma(r, p, c3)
                p = fma(r, p, c2)
                p = fma(r, p, c1)
                out[j] = fma(r, p, c0)
                ki[j] = (np.int32(k) + bias) << np.int32(23)
            scale = ki[:n].view(np.float32)
            for j in range(n):
                out[j] = out[j] * scale[j]

        return impl

    def impl(x, out, ki):  # float64: libm's exp (exact to the last bit the reference checks)
        for j in range(x.size):
            out[j] = math.exp(x[j])

    return impl


def const(like, v):
    """v in the dtype of array `like` (numba's float literals are float64 and would widen float32 math)."""


@overload(const, jit_options=dict(nogil=True))
def _const(like, v):
    if like.dtype == types.float32:
        return lambda like, v: np.float32(v)
    return lambda like, v: np.float64(v)


# ---- LSTM ------------------------------------------------------------------------------------------
@njit(**_J)
def lstm_cell_fwd(gx, gh, c, h_out, c_out, acts, sf, si):
    """One LSTM step. gates = gx + gh (n, 4H, PyTorch's order i, f, g, o); c (n, H) -> h_out, c_out
    (n, H). acts (n, >= 5H) receives i, f, g, o and tanh(c_out) (all the backward
    needs). sf / si: float / int32 scratch of n * 9H elements. All arrays C-contiguous, the outputs
    distinct from the inputs (aliased arrays make LLVM's runtime check fall back to scalar loops)."""
    n, H = c.shape
    G = 4 * H
    one, two = const(c, 1.0), const(c, 2.0)
    x = sf[:n * G]
    a = sf[n * G:2 * n * G]
    t = sf[2 * n * G:n * (2 * G + H)]
    for b in range(n):  # exp(-v) for the sigmoid gates, exp(-2v) for tanh: one vectorized pass
        for j in range(G):
            v = gx[b, j] + gh[b, j]
            x[b * G + j] = -v
        for j in range(2 * H, 3 * H):
            x[b * G + j] = x[b * G + j] * two
    exp_into(x, a, si)  # out-of-place: an in-place call fails LLVM's alias check and runs scalar
    # Row views and one store stream per loop: with more streams LLVM's runtime alias checks exceed its
    # limit and the loop stays scalar (the same arithmetic, in the same order, either way).
    for b in range(n):
        ar = a[b * G:(b + 1) * G]
        r = acts[b]
        for j in range(2 * H):
            r[j] = one / (one + ar[j])
        for j in range(2 * H, 3 * H):
            e = ar[j]
            r[j] = (one - e) / (one + e)
        for j in range(3 * H, 4 * H):
            r[j] = one / (one + ar[j])
    for b in range(n):
        r = acts[b]
        cb = c[b]
        co = c_out[b]
        for j in range(H):
            co[j] = r[H + j] * cb[j] + r[j] * r[2 * H + j]
        xr = x[b * H:(b + 1) * H]
        for j in range(H):
            xr[j] = -two * co[j]
    exp_into(x[:n * H], t, si)
    for b in range(n):
        r = acts[b]
        ho = h_out[b]
        tr = t[b * H:(b + 1) * H]
        for j in range(H):
            e = tr[j]
            tc = (one - e) / (one + e)
            r[4 * H + j] = tc
            ho[j] = r[3 * H + j] * tc


@njit(**_J)
def lstm_cell_bwd(dh, dc, acts, c_prev, dgates, dc_prev):
    """(dh, dc) at the cell's outputs -> gate gradients dgates (n, 4H) and dc_prev (n, H), from the
    forward's acts (i, f, g, o, tanh(c_new)). dc may be None. Outputs distinct from the inputs.
    dc_prev holds dc_new until the last loop; one store stream per loop (see lstm_cell_fwd)."""
    n, H = c_prev.shape
    one = const(c_prev, 1.0)
    for b in range(n):
        r = acts[b]
        dhb = dh[b]
        d = dc_prev[b]
        for j in range(H):
            tc = r[4 * H + j]
            d[j] = dhb[j] * r[3 * H + j] * (one - tc * tc)
        if dc is not None:
            dcb = dc[b]
            for j in range(H):
                d[j] += dcb[j]
        g = dgates[b]
        cp = c_prev[b]
        for j in range(H):
            i = r[j]
            g[j] = d[j] * r[2 * H + j] * i * (one - i)
        for j in range(H):
            f = r[H + j]
            g[H + j] = d[j] * cp[j] * f * (one - f)
        for j in range(H):
            gg = r[2 * H + j]
            g[2 * H + j] = d[j] * r[j] * (one - gg * gg)
        for j in range(H):
            o = r[3 * H + j]
            tc = r[4 * H + j]
            g[3 * H + j] = dhb[j] * tc * o * (one - o)
        for j in range(H):
            d[j] = d[j] * r[H + j]


# ---- GRU -------------------------------------------------------------------------------------------
@njit(**_J)
def gru_cell_fwd(gx, gh, h, h_out, acts, sf, si):
    """gx = x W_ih.T + b_ih, gh = h W_hh.T + b_hh (n, 3H, order r, z, n); h (n, H) -> h_out.
    acts (n, 4H): r, z, n and the hidden part of the new gate (gh's n block), for the backward.
    sf / si: scratch of n * 4H elements. h_out distinct from h. Row views and one store stream per
    loop, so that LLVM vectorizes (see lstm_cell_fwd)."""
    n, H = h.shape
    one, two = const(h, 1.0), const(h, 2.0)
    x = sf[:n * 2 * H]
    a = sf[n * 2 * H:n * 4 * H]
    for b in range(n):
        for j in range(2 * H):
            x[b * 2 * H + j] = -(gx[b, j] + gh[b, j])
    exp_into(x, a, si)
    for b in range(n):
        ar = a[b * 2 * H:(b + 1) * 2 * H]
        r = acts[b]
        for j in range(2 * H):
            r[j] = one / (one + ar[j])
        ghb = gh[b]
        for j in range(H):
            r[3 * H + j] = ghb[2 * H + j]
        gxb = gx[b]
        xr = x[b * H:(b + 1) * H]
        for j in range(H):
            xr[j] = -two * (gxb[2 * H + j] + r[j] * r[3 * H + j])
    t = a[:n * H]
    exp_into(x[:n * H], t, si)
    for b in range(n):
        r = acts[b]
        tr = t[b * H:(b + 1) * H]
        for j in range(H):
            e = tr[j]
            r[2 * H + j] = (one - e) / (one + e)
        hb = h[b]
        ho = h_out[b]
        for j in range(H):
            z = r[H + j]
            ho[j] = (one - z) * r[2 * H + j] + z * hb[j]


@njit(**_J)
def gru_cell_bwd(dh, acts, h_prev, dgx, dgh, dh_direct):
    """dh at the output -> dgx (n, 3H: the pre-activations' gradient, input side), dgh (n, 3H: the
    hidden side, which differs from dgx in the n block) and the direct part of dh_prev (z * dh).
    One store stream per loop (see lstm_cell_bwd)."""
    n, H = h_prev.shape
    one = const(h_prev, 1.0)
    for b in range(n):
        r = acts[b]
        d = dh[b]
        hp = h_prev[b]
        ox = dgx[b]
        oh = dgh[b]
        for j in range(H):
            z = r[H + j]
            nn = r[2 * H + j]
            ox[2 * H + j] = d[j] * (one - z) * (one - nn * nn)
        for j in range(H):
            z = r[H + j]
            ox[H + j] = d[j] * (hp[j] - r[2 * H + j]) * z * (one - z)
        for j in range(H):
            rr = r[j]
            ox[j] = ox[2 * H + j] * r[3 * H + j] * rr * (one - rr)
        for j in range(2 * H):
            oh[j] = ox[j]
        for j in range(H):
            oh[2 * H + j] = ox[2 * H + j] * r[j]
        dd = dh_direct[b]
        for j in range(H):
            dd[j] = d[j] * r[H + j]


# ---- tanh / relu RNN -------------------------------------------------------------------------------
@njit(**_J)
def rnn_cell_fwd(gx, gh, h_out, relu, sf, si):
    n, H = h_out.shape
    one, two, zero = const(h_out, 1.0), const(h_out, 2.0), const(h_out, 0.0)
    if relu:
        for b in range(n):
            for j in range(H):
                v = gx[b, j] + gh[b, j]
                h_out[b, j] = v if v > zero else zero
        return
    x = sf[:n * H]
    a = sf[n * H:2 * n * H]
    for b in range(n):
        for j in range(H):
            x[b * H + j] = -two * (gx[b, j] + gh[b, j])
    exp_into(x, a, si)
    for b in range(n):
        for j in range(H):
            e = a[b * H + j]
            h_out[b, j] = (one - e) / (one + e)


@njit(**_J)
def rnn_cell_bwd(dh, h_new, dpre, relu):
    n, H = h_new.shape
    one, zero = const(h_new, 1.0), const(h_new, 0.0)
    for b in range(n):
        for j in range(H):
            y = h_new[b, j]
            if relu:
                dpre[b, j] = dh[b, j] if y > zero else zero
            else:
                dpre[b, j] = dh[b, j] * (one - y * y)


# ---- the per-step hidden GEMM ------------------------------------------------------------------------
def _transposed(rows, H):
    """OpenBLAS's kernels favour a tall left operand: for a small block of rows against a wide hidden size
    (4 * rows <= H) W @ h.T plus a transposing copy beats h @ W.T on one thread, while for 64 rows, H 128
    the direct product wins (figures in bench/README.md). The choice follows the shapes alone, so the
    bits never depend on the machine's thread count."""
    return 4 * rows <= H


# ---- the time loops, over independent blocks of rows -------------------------------------------------
# Each sequence's recurrence involves its own row only, so a batch splits into blocks of rows that run
# the WHOLE time loop independently: no synchronisation per step, one thread per block (the per-step
# GEMMs on one OpenBLAS thread each, rnn_blas.OneBlasThread). The blocks follow the batch size alone
# (_ROW_BLOCK rows), never the thread count, so every row is computed the same way on any machine.
_ROW_BLOCK = 16


def _row_blocks(fn, B):
    """fn(lo, hi) for the blocks of rows of a batch of B, spread over the cores."""
    from .threads import run_blocks

    block = B if B < 2 * _ROW_BLOCK else _ROW_BLOCK
    with OneBlasThread():
        run_blocks(fn, B, max(block, 1))


def _scratch(B, width, dtype):
    return np.empty(B * width, dtype), np.empty(B * width, np.int32)


def _state(a, B, H, dtype):
    return np.zeros((B, H), dtype) if a is None else np.array(a, dtype=dtype, order="C", copy=True)


def lstm_rows(fn, xw, w, transposed, h, c, y, ws, reverse, bs, lo, hi, gh, buf, cn, sf, si):
    """The forward time loop of rows [lo, hi): numba-compiled (_lstm_rows_jit, one nogil call, the GEMMs
    through rnn_blas.mm) or, without numpy's OpenBLAS, run as this Python source. bs: the batch sizes
    per step, empty when every row is active."""
    T = xw.shape[0]
    H = h.shape[1]
    for s in range(T):
        t = T - 1 - s if reverse else s
        n = block_rows(bs, t, lo, hi)
        if n == 0:
            continue
        hl = h[lo:lo + n]
        cl = c[lo:lo + n]
        hidden_gemm(fn, hl, w, gh[:n], buf, transposed)
        lstm_cell_fwd(xw[t, lo:lo + n], gh[:n], cl, hl, cn[:n], ws[t, lo:lo + n], sf, si)
        put(cl, cn[:n])
        put(ws[t, lo:lo + n, 5 * H:], cn[:n])
        put(y[t, lo:lo + n], hl)


def lstm_bwd_rows(fn, gy, has_gy, w, dh, dc, ws, c_prev, dG, reverse, bs, lo, hi, dcp):
    """The backward time loop of rows [lo, hi), like lstm_rows: dG of every step, dh / dc carried to h0."""
    T = ws.shape[0]
    for s in range(T):
        t = s if reverse else T - 1 - s
        n = block_rows(bs, t, lo, hi)
        if n == 0:
            continue
        dhl = dh[lo:lo + n]
        dcl = dc[lo:lo + n]
        if has_gy:
            add(dhl, gy[t, lo:lo + n])
        lstm_cell_bwd(dhl, dcl, ws[t, lo:lo + n], c_prev[t, lo:lo + n], dG[t, lo:lo + n], dcp[:n])
        put(dcl, dcp[:n])
        mm(fn, dG[t, lo:lo + n], w, dhl, False)


def gru_rows(fn, xw, w, transposed, b_hh, has_b, h, y, ws, reverse, bs, lo, hi, gh, buf, sf, si):
    """The GRU forward time loop of rows [lo, hi) (see lstm_rows)."""
    T = xw.shape[0]
    for s in range(T):
        t = T - 1 - s if reverse else s
        n = block_rows(bs, t, lo, hi)
        if n == 0:
            continue
        hl = h[lo:lo + n]
        hidden_gemm(fn, hl, w, gh[:n], buf, transposed)
        if has_b:
            add(gh[:n], b_hh)
        gru_cell_fwd(xw[t, lo:lo + n], gh[:n], hl, y[t, lo:lo + n], ws[t, lo:lo + n], sf, si)
        put(hl, y[t, lo:lo + n])


def gru_bwd_rows(fn, gy, has_gy, w, dh, ws, h_prev, dGx, dGh, reverse, bs, lo, hi, direct):
    T = ws.shape[0]
    for s in range(T):
        t = s if reverse else T - 1 - s
        n = block_rows(bs, t, lo, hi)
        if n == 0:
            continue
        dhl = dh[lo:lo + n]
        if has_gy:
            add(dhl, gy[t, lo:lo + n])
        gru_cell_bwd(dhl, ws[t, lo:lo + n], h_prev[t, lo:lo + n], dGx[t, lo:lo + n], dGh[t, lo:lo + n], direct[:n])
        mm(fn, dGh[t, lo:lo + n], w, dhl, False)
        add(dhl, direct[:n])


def rnn_rows(fn, xw, w, transposed, relu, h, y, reverse, bs, lo, hi, gh, buf, sf, si):
    T = xw.shape[0]
    for s in range(T):
        t = T - 1 - s if reverse else s
        n = block_rows(bs, t, lo, hi)
        if n == 0:
            continue
        hl = h[lo:lo + n]
        hidden_gemm(fn, hl, w, gh[:n], buf, transposed)
        rnn_cell_fwd(xw[t, lo:lo + n], gh[:n], y[t, lo:lo + n], relu, sf, si)
        put(hl, y[t, lo:lo + n])


def rnn_bwd_rows(fn, gy, has_gy, w, dh, y, dP, relu, reverse, bs, lo, hi):
    T = y.shape[0]
    for s in range(T):
        t = s if reverse else T - 1 - s
        n = block_rows(bs, t, lo, hi)
        if n == 0:
            continue
        dhl = dh[lo:lo + n]
        if has_gy:
            add(dhl, gy[t, lo:lo + n])
        rnn_cell_bwd(dhl, y[t, lo:lo + n], dP[t, lo:lo + n], relu)
        mm(fn, dP[t, lo:lo + n], w, dhl, False)


# each loop compiled (one nogil call per row block) for numpy's OpenBLAS; as Python for any other BLAS
_JIT = {f.__name__: njit(**_J)(f) for f in (lstm_rows, lstm_bwd_rows, gru_rows, gru_bwd_rows, rnn_rows, rnn_bwd_rows)}


def _loop(f, fn):
    return _JIT[f.__name__] if fn else f


def _steps_out(shape, dtype, batch_sizes):
    """A (T, B, ...) result of the loops: every element is written when every row is active at every
    step (no zero-filling pass over the buffer); a packed batch leaves its inactive rows zero."""
    return np.empty(shape, dtype) if batch_sizes is None else np.zeros(shape, dtype)


def _grad_in(gy, dtype):
    """gy C-contiguous (the grad of a sum arrives as a broadcast view), or a stand-in when there is none:
    one array type per dtype, so each loop compiles once."""
    return np.zeros((1, 1, 1), dtype) if gy is None else np.ascontiguousarray(gy, dtype=dtype)


def _bs(batch_sizes):
    return np.zeros(0, np.int64) if batch_sizes is None else np.asarray(batch_sizes, np.int64)


def lstm_sequence(xw, w_hh, h0, c0, reverse, batch_sizes):
    """-> y (T, B, H), h_T, c_T (B, H), ws (T, B, 6H): i, f, g, o, tanh(c_t) and c_t of every step."""
    T, B, G = xw.shape
    H = G // 4
    dt_ = xw.dtype
    xw = np.ascontiguousarray(xw)
    w = np.ascontiguousarray(w_hh)
    wT = np.ascontiguousarray(w_hh.T)
    h, c = _state(h0, B, H, dt_), _state(c0, B, H, dt_)
    y = _steps_out((T, B, H), dt_, batch_sizes)
    ws = _steps_out((T, B, 6 * H), dt_, batch_sizes)
    fn, bs = gemm_fn(dt_), _bs(batch_sizes)
    loop = _loop(lstm_rows, fn)

    def rows(lo, hi):
        m = hi - lo
        tr = _transposed(m, H)
        sf, si = _scratch(m, 9 * H, dt_)
        loop(fn, xw, w if tr else wT, tr, h, c, y, ws, bool(reverse), bs, lo, hi, np.empty((m, G), dt_),
             np.empty(G * m, dt_), np.empty((m, H), dt_), sf, si)

    _row_blocks(rows, B)
    return y, h, c, ws


def lstm_sequence_backward(gy, ghT, gcT, w_hh, h0, c0, y, ws, reverse, batch_sizes):
    """-> dxw (T, B, 4H), dw_hh (4H, H), dh0, dc0 (B, H)."""
    T, B, H = y.shape
    dt_ = y.dtype
    dh, dc = _state(ghT, B, H, dt_), _state(gcT, B, H, dt_)
    dG = _steps_out((T, B, 4 * H), dt_, batch_sizes)
    ws = np.ascontiguousarray(ws)
    w = np.ascontiguousarray(w_hh)
    c_prev = _prev_state(np, ws[:, :, 5 * H:], c0, reverse, batch_sizes, T)

    fn, bs = gemm_fn(dt_), _bs(batch_sizes)
    loop = _loop(lstm_bwd_rows, fn)
    gy_ = _grad_in(gy, dt_)

    def rows(lo, hi):
        loop(fn, gy_, gy is not None, w, dh, dc, ws, c_prev, dG, bool(reverse), bs, lo, hi,
             np.empty((hi - lo, H), dt_))

    _row_blocks(rows, B)
    h_prev = _prev_state(np, y, h0, reverse, batch_sizes, T)
    dw = dG.reshape(T * B, 4 * H).T @ h_prev.reshape(T * B, H)  # ONE GEMM for the whole sequence, every thread
    return dG, dw, dh, dc


def gru_sequence(xw, w_hh, b_hh, h0, reverse, batch_sizes):
    """-> y (T, B, H), h_T (B, H), ws (T, B, 4H): r, z, n and the hidden part of the n gate."""
    T, B, G = xw.shape
    H = G // 3
    dt_ = xw.dtype
    xw = np.ascontiguousarray(xw)
    w, wT = np.ascontiguousarray(w_hh), np.ascontiguousarray(w_hh.T)
    h = _state(h0, B, H, dt_)
    y = _steps_out((T, B, H), dt_, batch_sizes)
    ws = _steps_out((T, B, 4 * H), dt_, batch_sizes)

    fn, bs = gemm_fn(dt_), _bs(batch_sizes)
    loop = _loop(gru_rows, fn)
    b_ = w[0] if b_hh is None else np.ascontiguousarray(b_hh)  # any vector of the dtype when there is no b_hh

    def rows(lo, hi):
        m = hi - lo
        tr = _transposed(m, H)
        sf, si = _scratch(m, 4 * H, dt_)
        loop(fn, xw, w if tr else wT, tr, b_, b_hh is not None, h, y, ws, bool(reverse), bs, lo, hi,
             np.empty((m, G), dt_), np.empty(G * m, dt_), sf, si)

    _row_blocks(rows, B)
    return y, h, ws


def gru_sequence_backward(gy, ghT, w_hh, h0, y, ws, reverse, batch_sizes):
    """-> dxw (T, B, 3H), dw_hh (3H, H), db_hh (3H,), dh0 (B, H)."""
    T, B, H = y.shape
    dt_ = y.dtype
    dh = _state(ghT, B, H, dt_)
    dGx = _steps_out((T, B, 3 * H), dt_, batch_sizes)
    dGh = _steps_out((T, B, 3 * H), dt_, batch_sizes)
    ws = np.ascontiguousarray(ws)
    w = np.ascontiguousarray(w_hh)
    h_prev = _prev_state(np, y, h0, reverse, batch_sizes, T)

    fn, bs = gemm_fn(dt_), _bs(batch_sizes)
    loop = _loop(gru_bwd_rows, fn)
    gy_ = _grad_in(gy, dt_)

    def rows(lo, hi):
        loop(fn, gy_, gy is not None, w, dh, ws, h_prev, dGx, dGh, bool(reverse), bs, lo, hi,
             np.empty((hi - lo, H), dt_))

    _row_blocks(rows, B)
    flat = dGh.reshape(T * B, 3 * H)
    dw = flat.T @ h_prev.reshape(T * B, H)
    return dGx, dw, flat.sum(0), dh


def rnn_sequence(xw, w_hh, h0, reverse, batch_sizes, relu):
    T, B, H = xw.shape
    dt_ = xw.dtype
    xw = np.ascontiguousarray(xw)
    w, wT = np.ascontiguousarray(w_hh), np.ascontiguousarray(w_hh.T)
    h = _state(h0, B, H, dt_)
    y = _steps_out((T, B, H), dt_, batch_sizes)

    fn, bs = gemm_fn(dt_), _bs(batch_sizes)
    loop = _loop(rnn_rows, fn)

    def rows(lo, hi):
        m = hi - lo
        tr = _transposed(m, H)
        sf, si = _scratch(m, 2 * H, dt_)
        loop(fn, xw, w if tr else wT, tr, bool(relu), h, y, bool(reverse), bs, lo, hi, np.empty((m, H), dt_),
             np.empty(H * m, dt_), sf, si)

    _row_blocks(rows, B)
    return y, h


def rnn_sequence_backward(gy, ghT, w_hh, h0, y, reverse, batch_sizes, relu):
    """-> dxw (T, B, H), dw_hh (H, H), dh0 (B, H)."""
    T, B, H = y.shape
    dt_ = y.dtype
    dh = _state(ghT, B, H, dt_)
    dP = _steps_out((T, B, H), dt_, batch_sizes)
    y = np.ascontiguousarray(y)
    w = np.ascontiguousarray(w_hh)

    fn, bs = gemm_fn(dt_), _bs(batch_sizes)
    loop = _loop(rnn_bwd_rows, fn)
    gy_ = _grad_in(gy, dt_)

    def rows(lo, hi):
        loop(fn, gy_, gy is not None, w, dh, y, dP, bool(relu), bool(reverse), bs, lo, hi)

    _row_blocks(rows, B)
    h_prev = _prev_state(np, y, h0, reverse, batch_sizes, T)
    dw = dP.reshape(T * B, H).T @ h_prev.reshape(T * B, H)
    return dP, dw, dh
