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
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, types
from numba.extending import overload

from .gemm import fma

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
    for b in range(n):
        for j in range(H):
            i = one / (one + a[b * G + j])
            f = one / (one + a[b * G + H + j])
            e = a[b * G + 2 * H + j]
            g = (one - e) / (one + e)
            o = one / (one + a[b * G + 3 * H + j])
            cn = f * c[b, j] + i * g
            c_out[b, j] = cn
            acts[b, j] = i
            acts[b, H + j] = f
            acts[b, 2 * H + j] = g
            acts[b, 3 * H + j] = o
            x[b * H + j] = -two * cn
    exp_into(x[:n * H], t, si)
    for b in range(n):
        for j in range(H):
            e = t[b * H + j]
            tc = (one - e) / (one + e)
            acts[b, 4 * H + j] = tc
            h_out[b, j] = acts[b, 3 * H + j] * tc


@njit(**_J)
def lstm_cell_bwd(dh, dc, acts, c_prev, dgates, dc_prev):
    """(dh, dc) at the cell's outputs -> gate gradients dgates (n, 4H) and dc_prev (n, H), from the
    forward's acts (i, f, g, o, tanh(c_new)). dc may be None. Outputs distinct from the inputs."""
    n, H = c_prev.shape
    one = const(c_prev, 1.0)
    for b in range(n):
        for j in range(H):
            i = acts[b, j]
            f = acts[b, H + j]
            g = acts[b, 2 * H + j]
            o = acts[b, 3 * H + j]
            tc = acts[b, 4 * H + j]
            d_h = dh[b, j]
            dcn = d_h * o * (one - tc * tc)
            if dc is not None:
                dcn += dc[b, j]
            dgates[b, j] = dcn * g * i * (one - i)
            dgates[b, H + j] = dcn * c_prev[b, j] * f * (one - f)
            dgates[b, 2 * H + j] = dcn * i * (one - g * g)
            dgates[b, 3 * H + j] = d_h * tc * o * (one - o)
            dc_prev[b, j] = dcn * f


# ---- GRU -------------------------------------------------------------------------------------------
@njit(**_J)
def gru_cell_fwd(gx, gh, h, h_out, acts, sf, si):
    """gx = x W_ih.T + b_ih, gh = h W_hh.T + b_hh (n, 3H, order r, z, n); h (n, H) -> h_out.
    acts (n, 4H): r, z, n and the hidden part of the new gate (gh's n block), for the backward.
    sf / si: scratch of n * 4H elements. h_out distinct from h."""
    n, H = h.shape
    one, two = const(h, 1.0), const(h, 2.0)
    x = sf[:n * 2 * H]
    a = sf[n * 2 * H:n * 4 * H]
    for b in range(n):
        for j in range(2 * H):
            x[b * 2 * H + j] = -(gx[b, j] + gh[b, j])
    exp_into(x, a, si)
    for b in range(n):
        for j in range(H):
            r = one / (one + a[b * 2 * H + j])
            z = one / (one + a[b * 2 * H + H + j])
            hn = gh[b, 2 * H + j]
            acts[b, j] = r
            acts[b, H + j] = z
            acts[b, 3 * H + j] = hn
            x[b * H + j] = -two * (gx[b, 2 * H + j] + r * hn)
    t = a[:n * H]
    exp_into(x[:n * H], t, si)
    for b in range(n):
        for j in range(H):
            e = t[b * H + j]
            nn = (one - e) / (one + e)
            z = acts[b, H + j]
            acts[b, 2 * H + j] = nn
            h_out[b, j] = (one - z) * nn + z * h[b, j]


@njit(**_J)
def gru_cell_bwd(dh, acts, h_prev, dgx, dgh, dh_direct):
    """dh at the output -> dgx (n, 3H: the pre-activations' gradient, input side), dgh (n, 3H: the
    hidden side, which differs from dgx in the n block) and the direct part of dh_prev (z * dh)."""
    n, H = h_prev.shape
    one = const(h_prev, 1.0)
    for b in range(n):
        for j in range(H):
            r = acts[b, j]
            z = acts[b, H + j]
            nn = acts[b, 2 * H + j]
            hn = acts[b, 3 * H + j]
            d = dh[b, j]
            dn = d * (one - z) * (one - nn * nn)
            dz = d * (h_prev[b, j] - nn) * z * (one - z)
            dr = dn * hn * r * (one - r)
            dgx[b, j] = dr
            dgx[b, H + j] = dz
            dgx[b, 2 * H + j] = dn
            dgh[b, j] = dr
            dgh[b, H + j] = dz
            dgh[b, 2 * H + j] = dn * r
            dh_direct[b, j] = d * z


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


# ---- BLAS threads in the time loops ----------------------------------------------------------------
class _OneBlasThread:
    """Run the per-step GEMMs on one OpenBLAS thread. They are small (batch x H x gates*H) and each is
    followed by a single-threaded cell pass: a second BLAS thread gains little on them and, spinning
    between calls, takes the core the cell (or another process) needs; on a busy 2-core machine a
    64x128x512 GEMM measured 0.09 ms on one thread and 0.1-8 ms on two. The sequence's big GEMMs (the
    input projection, the weight gradient) run outside, on every thread. No-op when numpy's BLAS is
    not an OpenBLAS with openblas_set_num_threads."""

    _fns = None

    @classmethod
    def _find(cls):
        import ctypes

        cls._fns = ()
        try:
            with open("/proc/self/maps") as f:
                libs = sorted({ln.split()[-1] for ln in f if "openblas" in ln.lower() and ".so" in ln})
        except OSError:
            return
        for path in libs:
            try:
                lib = ctypes.CDLL(path)
            except OSError:
                continue
            for prefix, suffix in (("scipy_", "64_"), ("scipy_", ""), ("", "64_"), ("", "")):
                get = getattr(lib, f"{prefix}openblas_get_num_threads{suffix}", None)
                put = getattr(lib, f"{prefix}openblas_set_num_threads{suffix}", None)
                if get is not None and put is not None:
                    cls._fns = (get, put)
                    return

    def __enter__(self):
        if _OneBlasThread._fns is None:
            _OneBlasThread._find()
        self.prev = None
        if self._fns:
            get, put = self._fns
            self.prev = int(get())
            if self.prev != 1:
                put(1)
        return self

    def __exit__(self, *exc):
        if self.prev not in (None, 1):
            self._fns[1](self.prev)


class _HiddenGemm:
    """out[:n] = h[:n] @ W.T for the forward loops. OpenBLAS's kernels favour a tall left operand: for a
    small block of rows against a wide hidden size (4 * rows <= H) W @ h.T plus a transposing copy beats
    the direct product on one thread (32 rows, H 256: 0.22 ms against 0.27 ms a step; 8 rows, H 512:
    0.37 against 0.57), while for 64 rows, H 128 the direct product wins. The choice follows the
    shapes alone, so the bits never depend on the machine's thread count."""

    def __init__(self, w_hh, rows, dtype):
        G, H = w_hh.shape
        self.transposed = 4 * rows <= H
        self.w = w_hh if self.transposed else w_hh.T  # both C-contiguous (see _Weights)
        self.buf = np.empty((G, rows), dtype) if self.transposed else None

    def __call__(self, h, out, n):
        if self.transposed:
            tb = self.buf[:, :n] if n < self.buf.shape[1] else self.buf
            np.matmul(self.w, h[:n].T, out=tb)
            out[:n] = tb.T
        else:
            np.matmul(h[:n], self.w, out=out[:n])


class _Weights:
    """w_hh and its transpose, each C-contiguous, made once per call and shared by the row blocks."""

    def __init__(self, w_hh):
        self.w = np.ascontiguousarray(w_hh)
        self.T = np.ascontiguousarray(w_hh.T)

    def gemm(self, rows, dtype):
        return _HiddenGemm(self.w if 4 * rows <= self.w.shape[1] else self.T.T, rows, dtype)


# ---- the time loops, over independent blocks of rows -------------------------------------------------
# Each sequence's recurrence involves its own row only, so a batch splits into blocks of rows that run
# the WHOLE time loop independently: no synchronisation per step, one thread per block (the per-step
# GEMMs on one OpenBLAS thread each, _OneBlasThread). The blocks follow the batch size alone
# (_ROW_BLOCK rows), never the thread count, so every row is computed the same way on any machine.
_ROW_BLOCK = 16


def _row_blocks(fn, B):
    """fn(lo, hi) for the blocks of rows of a batch of B, spread over the cores."""
    from .threads import run_blocks

    block = B if B < 2 * _ROW_BLOCK else _ROW_BLOCK
    with _OneBlasThread():
        run_blocks(fn, B, max(block, 1))


def _order(T, reverse):
    return range(T - 1, -1, -1) if reverse else range(T)  # reversed() of it runs the backward


def _active(batch_sizes, t, B):
    return B if batch_sizes is None else batch_sizes[t]


def _local(batch_sizes, t, lo, hi):
    """Active rows of the block [lo, hi) at step t (the active rows are a prefix of the batch)."""
    if batch_sizes is None:
        return hi - lo
    return max(0, min(batch_sizes[t], hi) - lo)


def _prev_state(out, init, reverse, batch_sizes, T):
    """(T, B, H): the state each step started from (h_{t-1} in processing order), built from the
    outputs and the initial state: for packed batches a row starts from init where the previous
    step in processing order did not cover it."""
    prev = np.empty(out.shape, out.dtype)
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


def _scratch(B, width, dtype):
    return np.empty(B * width, dtype), np.empty(B * width, np.int32)


def _state(a, B, H, dtype):
    return np.zeros((B, H), dtype) if a is None else np.array(a, dtype=dtype, order="C", copy=True)


def lstm_sequence(xw, w_hh, h0, c0, reverse, batch_sizes):
    """-> y (T, B, H), h_T, c_T (B, H), ws (T, B, 6H): i, f, g, o, tanh(c_t) and c_t of every step."""
    T, B, G = xw.shape
    H = G // 4
    dt_ = xw.dtype
    xw = np.ascontiguousarray(xw)
    wts = _Weights(w_hh)
    h, c = _state(h0, B, H, dt_), _state(c0, B, H, dt_)
    y = np.zeros((T, B, H), dt_)
    ws = np.zeros((T, B, 6 * H), dt_)

    def rows(lo, hi):
        m = hi - lo
        hidden = wts.gemm(m, dt_)
        hl, cl = h[lo:hi], c[lo:hi]
        gh, cn = np.empty((m, G), dt_), np.empty((m, H), dt_)
        sf, si = _scratch(m, 9 * H, dt_)
        for t in _order(T, reverse):
            n = _local(batch_sizes, t, lo, hi)
            if n == 0:
                continue
            hidden(hl, gh, n)
            lstm_cell_fwd(xw[t, lo:lo + n], gh[:n], cl[:n], hl[:n], cn[:n], ws[t, lo:lo + n], sf, si)
            cl[:n] = cn[:n]
            ws[t, lo:lo + n, 5 * H:] = cn[:n]
            y[t, lo:lo + n] = hl[:n]

    _row_blocks(rows, B)
    return y, h, c, ws


def lstm_sequence_backward(gy, ghT, gcT, w_hh, h0, c0, y, ws, reverse, batch_sizes):
    """-> dxw (T, B, 4H), dw_hh (4H, H), dh0, dc0 (B, H)."""
    T, B, H = y.shape
    dt_ = y.dtype
    dh, dc = _state(ghT, B, H, dt_), _state(gcT, B, H, dt_)
    dG = np.zeros((T, B, 4 * H), dt_)
    ws = np.ascontiguousarray(ws)
    w = np.ascontiguousarray(w_hh)
    c_prev = _prev_state(ws[:, :, 5 * H:], c0, reverse, batch_sizes, T)

    def rows(lo, hi):
        dhl, dcl = dh[lo:hi], dc[lo:hi]
        dcp = np.empty((hi - lo, H), dt_)
        for t in reversed(_order(T, reverse)):
            n = _local(batch_sizes, t, lo, hi)
            if n == 0:
                continue
            if gy is not None:
                dhl[:n] += gy[t, lo:lo + n]
            lstm_cell_bwd(dhl[:n], dcl[:n], ws[t, lo:lo + n], c_prev[t, lo:lo + n], dG[t, lo:lo + n], dcp[:n])
            dcl[:n] = dcp[:n]
            np.matmul(dG[t, lo:lo + n], w, out=dhl[:n])

    _row_blocks(rows, B)
    h_prev = _prev_state(y, h0, reverse, batch_sizes, T)
    dw = dG.reshape(T * B, 4 * H).T @ h_prev.reshape(T * B, H)  # ONE GEMM for the whole sequence, every thread
    return dG, dw, dh, dc


def gru_sequence(xw, w_hh, b_hh, h0, reverse, batch_sizes):
    """-> y (T, B, H), h_T (B, H), ws (T, B, 4H): r, z, n and the hidden part of the n gate."""
    T, B, G = xw.shape
    H = G // 3
    dt_ = xw.dtype
    xw = np.ascontiguousarray(xw)
    wts = _Weights(w_hh)
    h = _state(h0, B, H, dt_)
    y = np.zeros((T, B, H), dt_)
    ws = np.zeros((T, B, 4 * H), dt_)

    def rows(lo, hi):
        m = hi - lo
        hidden = wts.gemm(m, dt_)
        hl = h[lo:hi]
        gh = np.empty((m, G), dt_)
        sf, si = _scratch(m, 4 * H, dt_)
        for t in _order(T, reverse):
            n = _local(batch_sizes, t, lo, hi)
            if n == 0:
                continue
            hidden(hl, gh, n)
            if b_hh is not None:
                gh[:n] += b_hh
            gru_cell_fwd(xw[t, lo:lo + n], gh[:n], hl[:n], y[t, lo:lo + n], ws[t, lo:lo + n], sf, si)
            hl[:n] = y[t, lo:lo + n]

    _row_blocks(rows, B)
    return y, h, ws


def gru_sequence_backward(gy, ghT, w_hh, h0, y, ws, reverse, batch_sizes):
    """-> dxw (T, B, 3H), dw_hh (3H, H), db_hh (3H,), dh0 (B, H)."""
    T, B, H = y.shape
    dt_ = y.dtype
    dh = _state(ghT, B, H, dt_)
    dGx = np.zeros((T, B, 3 * H), dt_)
    dGh = np.zeros((T, B, 3 * H), dt_)
    ws = np.ascontiguousarray(ws)
    w = np.ascontiguousarray(w_hh)
    h_prev = _prev_state(y, h0, reverse, batch_sizes, T)

    def rows(lo, hi):
        dhl = dh[lo:hi]
        direct = np.empty((hi - lo, H), dt_)
        for t in reversed(_order(T, reverse)):
            n = _local(batch_sizes, t, lo, hi)
            if n == 0:
                continue
            if gy is not None:
                dhl[:n] += gy[t, lo:lo + n]
            gru_cell_bwd(dhl[:n], ws[t, lo:lo + n], h_prev[t, lo:lo + n], dGx[t, lo:lo + n], dGh[t, lo:lo + n],
                         direct[:n])
            np.matmul(dGh[t, lo:lo + n], w, out=dhl[:n])
            dhl[:n] += direct[:n]

    _row_blocks(rows, B)
    flat = dGh.reshape(T * B, 3 * H)
    dw = flat.T @ h_prev.reshape(T * B, H)
    return dGx, dw, flat.sum(0), dh


def rnn_sequence(xw, w_hh, h0, reverse, batch_sizes, relu):
    T, B, H = xw.shape
    dt_ = xw.dtype
    xw = np.ascontiguousarray(xw)
    wts = _Weights(w_hh)
    h = _state(h0, B, H, dt_)
    y = np.zeros((T, B, H), dt_)

    def rows(lo, hi):
        m = hi - lo
        hidden = wts.gemm(m, dt_)
        hl = h[lo:hi]
        gh = np.empty((m, H), dt_)
        sf, si = _scratch(m, 2 * H, dt_)
        for t in _order(T, reverse):
            n = _local(batch_sizes, t, lo, hi)
            if n == 0:
                continue
            hidden(hl, gh, n)
            rnn_cell_fwd(xw[t, lo:lo + n], gh[:n], y[t, lo:lo + n], relu, sf, si)
            hl[:n] = y[t, lo:lo + n]

    _row_blocks(rows, B)
    return y, h


def rnn_sequence_backward(gy, ghT, w_hh, h0, y, reverse, batch_sizes, relu):
    """-> dxw (T, B, H), dw_hh (H, H), dh0 (B, H)."""
    T, B, H = y.shape
    dt_ = y.dtype
    dh = _state(ghT, B, H, dt_)
    dP = np.zeros((T, B, H), dt_)
    y = np.ascontiguousarray(y)
    w = np.ascontiguousarray(w_hh)

    def rows(lo, hi):
        dhl = dh[lo:hi]
        for t in reversed(_order(T, reverse)):
            n = _local(batch_sizes, t, lo, hi)
            if n == 0:
                continue
            if gy is not None:
                dhl[:n] += gy[t, lo:lo + n]
            rnn_cell_bwd(dhl[:n], y[t, lo:lo + n], dP[t, lo:lo + n], relu)
            np.matmul(dP[t, lo:lo + n], w, out=dhl[:n])

    _row_blocks(rows, B)
    h_prev = _prev_state(y, h0, reverse, batch_sizes, T)
    dw = dP.reshape(T * B, H).T @ h_prev.reshape(T * B, H)
    return dP, dw, dh
