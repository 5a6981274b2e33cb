"""softmax, log_softmax and cross-entropy over the rows of a 2-D array on the cpu backend.

Small arrays: one fused numba pass per row (no numpy call overheads).  Large arrays: numpy, whose
exp is SIMD-vectorized (numba's calls libm per element), split into blocks of rows over the
cores.  Each row's result is computed by one thread in a fixed order, and the mean loss is summed
over the whole loss array afterwards, so nothing depends on the number of threads.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from .threads import run_blocks, threads

# Row kernels go through numpy for arrays larger than this with rows of at least
# _ROWS_NUMPY_MIN_C entries, or 32x larger whatever the rows (_rows_numpy).
_ROWS_NUMPY_MIN = 1 << 13
_ROWS_NUMPY_MIN_C = 64


@njit(cache=True, error_model="numpy")
def _row_max(xr):
    # in the row's dtype, so that exp(x - m) is expf for float32 (float64 exp is several times slower)
    m = xr[0]
    for j in range(1, xr.size):
        if xr[j] > m:
            m = xr[j]
    return m


@njit(cache=True, error_model="numpy")
def _row_lse(xr):
    """log(sum(exp(xr))), stable; NaN if the row holds a NaN, +-inf for an infinite max."""
    m = xr[0]
    nan = m != m
    for j in range(1, xr.size):
        v = xr[j]
        if v > m:
            m = v
        elif v != v:
            nan = True
    if nan:
        return np.nan
    if m == np.inf or m == -np.inf:
        return m
    s = 0.0
    for j in range(xr.size):
        s += math.exp(xr[j] - m)
    return m + math.log(s)


@njit(cache=True, error_model="numpy")
def _softmax_small(x, y, log):
    for i in range(x.shape[0]):
        xr = x[i]
        yr = y[i]
        m = _row_max(xr)  # a NaN row stays NaN: exp(NaN) poisons the sum
        s = 0.0
        for j in range(xr.size):
            e = math.exp(xr[j] - m)
            if not log:
                yr[j] = e
            s += e
        if log:
            lse = m + math.log(s)
            for j in range(xr.size):
                yr[j] = xr[j] - lse
        else:
            inv = 1.0 / s
            for j in range(xr.size):
                yr[j] *= inv


def _rows_numpy(x):
    """Large arrays go through numpy, unless their rows are short (numpy's per-row reductions
    are slow there) and the array not huge."""
    n = x.size
    return n > _ROWS_NUMPY_MIN and (x.shape[1] >= _ROWS_NUMPY_MIN_C or n > 32 * _ROWS_NUMPY_MIN)


# Large row-wise numpy passes run on every core, one block of rows each (numpy releases the GIL
# inside its loops); below this many elements a thread wake-up costs more than the split saves.
_ROWS_SPLIT_MIN = 1 << 20


def _split_rows(work, n_rows, size):
    """work(lo, hi) over [0, n_rows) in blocks of rows shared out over the cores (threads.run_blocks),
    in one block when size (the elements) is small."""
    rows = n_rows if size < _ROWS_SPLIT_MIN else -(-n_rows // threads())
    run_blocks(work, n_rows, max(1, rows))


def _softmax_np(x, log, out):
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        y = np.subtract(x, x.max(axis=1, keepdims=True), out=out)
        if log:
            y -= np.log(np.exp(y).sum(axis=1, keepdims=True))
        else:
            np.exp(y, out=y)
            y /= y.sum(axis=1, keepdims=True)
    return y


def _softmax_rows_np(x, log):
    y = np.empty_like(x)
    _split_rows(lambda lo, hi: _softmax_np(x[lo:hi], log, y[lo:hi]), x.shape[0], x.size)
    return y


def _rows(x2d, log):
    """(Log-)softmax over the last axis of a 2-D array (numerically stable): the numba loop for
    small arrays, numpy split over the cores for large ones."""
    x = np.ascontiguousarray(x2d)
    if _rows_numpy(x):
        return _softmax_rows_np(x, log)
    y = np.empty_like(x)
    if x.size:
        _softmax_small(x, y, log)
    return y


def softmax_rows(x2d):
    return _rows(x2d, False)


def log_softmax_rows(x2d):
    return _rows(x2d, True)


@njit(cache=True, error_model="numpy")
def _ce_small(x, t, ignore_index, eps, loss, lse):
    """Fills loss and lse; returns (the loss summed in float64, rows not ignored, the first row whose
    target is out of range or -1): the mean and the range check come out of the same pass."""
    C = x.shape[1]
    n_valid = 0
    bad = -1
    total = 0.0
    for i in range(x.shape[0]):
        xr = x[i]
        ti = t[i]
        l = _row_lse(xr)
        lse[i] = l
        if ti == ignore_index:
            loss[i] = 0
            continue
        n_valid += 1
        if ti < 0 or ti >= C:
            loss[i] = np.nan
            if bad < 0:
                bad = i
        else:
            v = (1.0 - eps) * (l - xr[ti])
            if eps != 0.0:
                s = 0.0
                for j in range(C):
                    s += xr[j]
                v += eps * (l - s / C)
            loss[i] = v
            total += v
    return total, n_valid, bad


@njit(cache=True, error_model="numpy")
def _ce_bwd_small(g, x, lse, t, ignore_index, eps, gx):
    C = x.shape[1]
    off = eps / C
    for i in range(x.shape[0]):
        xr = x[i]
        gr = gx[i]
        ti = t[i]
        if ti == ignore_index or ti < 0 or ti >= C:
            for j in range(C):
                gr[j] = 0
            continue
        gi = g[i]
        li = lse[i]
        for j in range(C):
            gr[j] = gi * (math.exp(xr[j] - li) - off)
        gr[ti] -= gi * (1.0 - eps)


def _ce_bwd_np(g, x, lse, t, ignore_index, eps, gx):
    """The numpy form of _ce_bwd_small for one block of rows, into gx."""
    N, C = x.shape
    use, tc = _ce_rows_mask(t, C, ignore_index)
    with np.errstate(invalid="ignore", over="ignore"):
        np.exp(np.subtract(x, lse[:, None], out=gx), out=gx)
    if eps != 0.0:
        gx -= eps / C
    gx[np.arange(N), tc] -= 1.0 - eps
    gx *= np.where(use, g, 0)[:, None]
    gx[~use] = 0  # also where g or exp was inf/NaN


def _ce_rows_mask(t, C, ignore_index):
    """(rows that contribute, their targets clipped into range for safe gathering)."""
    use = (t >= 0) & (t < C) & (t != ignore_index)
    return use, np.where(use, t, 0)


def cross_entropy_rows(logits2d, target1d, ignore_index, label_smoothing):
    """Per-row loss (N,) and row log-sum-exp (N,), both of the logits' dtype:
    loss = (1-eps)*(lse - x[t]) + eps*(lse - mean_c x[c]); rows with t == ignore_index get 0.
    The CALLER must validate targets first: a target outside [0, C) that is not ignore_index
    is never read through (its row's loss is NaN), no error is raised here."""
    return _ce_rows_counted(logits2d, target1d, ignore_index, label_smoothing)[:2]


def cross_entropy_mean(logits2d, target1d, ignore_index, label_smoothing):
    """reduction='mean' in one call: (mean loss over the rows not ignored, lse (N,), that row count),
    the scalars 0-d arrays of the logits' dtype. Raises IndexError on a target outside [0, C)
    that is not ignore_index (the check rides on the loss pass: no extra pass over the targets)."""
    loss, lse, total, n_valid, bad = _ce_rows_counted(logits2d, target1d, ignore_index, label_smoothing)
    if bad >= 0:
        raise IndexError(f"target {int(np.asarray(target1d).reshape(-1)[bad])} is out of bounds for "
                         f"{logits2d.shape[1]} classes")
    mean = total / n_valid if n_valid else float("nan")  # every row ignored: nan, as PyTorch
    return np.array(mean, dtype=loss.dtype), lse, np.array(n_valid, dtype=loss.dtype)


def _ce_rows_counted(logits2d, target1d, ignore_index, label_smoothing):
    """(loss, lse, the loss's sum, rows not ignored, first out-of-range row or -1)."""
    x = np.ascontiguousarray(logits2d)
    t = np.ascontiguousarray(target1d, dtype=np.int64)
    ignore_index = int(ignore_index)
    eps = float(label_smoothing)
    N, C = x.shape
    loss = np.empty(N, x.dtype)
    lse = np.empty(N, x.dtype)
    if N == 0:
        return loss, lse, 0.0, 0, -1
    if C == 0 or _rows_numpy(x):
        parts = {}

        def work(lo, hi):
            parts[lo] = _ce_rows_np(x[lo:hi], t[lo:hi], ignore_index, eps, loss[lo:hi], lse[lo:hi])

        _split_rows(work, N, x.size)
        bads = [lo + bad for lo, (_, bad) in sorted(parts.items()) if bad >= 0]
        # the sum over the whole loss array, not per block: the same bits whatever the split
        return (loss, lse, float(loss.sum(dtype=np.float64)), sum(n for n, _ in parts.values()),
                bads[0] if bads else -1)
    return (loss, lse) + _ce_small(x, t, ignore_index, eps, loss, lse)


def _ce_rows_np(x, t, ignore_index, eps, loss, lse):
    """The numpy form of _ce_small for one block of rows: fills loss and lse, returns (rows not
    ignored, first out-of-range row of the block or -1)."""
    N, C = x.shape
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        m = x.max(axis=1) if C else np.full(N, -np.inf, x.dtype)
        s = np.exp(x - m[:, None]).sum(axis=1)
        lse[...] = np.where(np.isfinite(m), m + np.log(s), m)
        use, tc = _ce_rows_mask(t, C, ignore_index)
        v = (1.0 - eps) * (lse - (x[np.arange(N), tc] if C else 0))
        if eps != 0.0:
            v += eps * (lse - x.mean(axis=1))
        loss[...] = np.where(use, v, np.nan)
        ignored = t == ignore_index
        loss[ignored] = 0
    bad = np.flatnonzero(~use & ~ignored)
    return N - int(ignored.sum()), int(bad[0]) if bad.size else -1


def cross_entropy_rows_backward(g_rows, logits2d, lse, target1d, ignore_index, label_smoothing):
    """Gradient of sum_i g_rows[i] * loss_i with respect to the logits (ignored rows, and
    rows with an out-of-range target, get 0). g_rows may be 0-d: the same g for every row."""
    x = np.ascontiguousarray(logits2d)
    N, C = x.shape
    g = np.asarray(g_rows)
    # 0-d: one upstream gradient for every row (the mean's g / count). (ascontiguousarray would make
    # it shape (1,), and the row loop would read past it.)
    g = np.full(N, g, dtype=x.dtype) if g.ndim == 0 else np.ascontiguousarray(g, dtype=x.dtype)
    if g.shape != (N,):
        raise ValueError(f"cross_entropy backward: upstream gradient of shape {g.shape} for {N} rows")
    lse = np.ascontiguousarray(lse, dtype=x.dtype)
    t = np.ascontiguousarray(target1d, dtype=np.int64)
    ignore_index = int(ignore_index)
    eps = float(label_smoothing)
    gx = np.empty_like(x)
    if _rows_numpy(x):
        _split_rows(lambda lo, hi: _ce_bwd_np(g[lo:hi], x[lo:hi], lse[lo:hi], t[lo:hi], ignore_index, eps, gx[lo:hi]),
                    N, x.size)
        return gx
    if x.size:
        _ce_bwd_small(g, x, lse, t, ignore_index, eps, gx)
    return gx
