"""cuda kernels for the ops our CUDA C does better than CuPy: matmul, conv2d (+ both backwards),
max/avg pooling (+ backwards), softmax / log_softmax, row-wise cross-entropy (+ backward), the
sum / mean / amax / amin / argmax / argmin / max_dim / min_dim reductions and the fused optimizer
steps; and the index-checked CuPy paths of gather / scatter_add / advanced indexing.

Two tiers per op, and no dtype branch inside any adapter (backends/__init__.py picks by dtype):
  * specialised (`@ours`): an adapter of our CUDA C kernels (kernels/*.cu through the launch
    wrappers in kernels.py), registered for float32; with half=True also for float16, computed
    in float32 and cast back (`_via_f32`);
  * portable (`@portable`): CuPy code for every other dtype (float64, integers, bfloat16): the
    generic array-API kernel registered before this module, or the `*_xp` functions below,
    written against an array namespace `xp` so that the same code is tested with numpy on a
    machine without a GPU.
The adapters take exactly the cpu kernels' signatures (backends/cpu/nn.py,
backends/cpu/optim_kernels.py) and honour the same contracts.

Data-dependent indices (cross-entropy targets, gather / scatter / indexing indices) are checked on
the device (kernels.check_index, and inside the cross-entropy kernels): an out-of-range index is
never used, and the first one is raised at the next synchronisation (CudaBackend.raise_device_error).

cupy is imported lazily (`_cp()`): importing this module needs neither cupy nor a GPU, so the
completeness of the cuda table can be checked anywhere.

Its size: the cuda table for every op our CUDA C serves, one short adapter per (op, tier); one file
keeps the registrations side by side with the tier helpers they share.
"""
from __future__ import annotations

import math

import numpy as np

from .. import array_api_kernels as _aak
from .. import optim_portable
from . import kernels as K
from .backend import cuda, cupy_lazy
from .backend import matmul as _matmul_flags

F32 = ("float32",)
F16 = ("float16",)


def _cp():
    import cupy

    return cupy


def _is_float_array(a):
    dt = getattr(a, "dtype", None)
    return dt is not None and dt.kind == "f" and hasattr(a, "astype")


def _via_f32(fn):
    """fn, an adapter of our float32 kernels, for a narrower float (float16): floating array
    arguments are computed in float32 and floating array results cast back to the call's dtype
    (integer arguments and results, e.g. targets and pooling indices, pass through)."""

    def kernel(*args, **kwargs):
        dt = next(a.dtype for a in args if _is_float_array(a))
        out = fn(*[a.astype(np.float32) if _is_float_array(a) else a for a in args], **kwargs)
        if isinstance(out, tuple):
            return tuple(o.astype(dt) if _is_float_array(o) else o for o in out)
        return out.astype(dt)

    kernel.__name__ = f"{fn.__name__}_via_f32"
    kernel.__qualname__ = kernel.__name__
    return kernel


def ours(*names, half=False):
    """Register an adapter of our CUDA C kernels (specialised tier): for float32, and with half=True
    for float16 through float32."""

    def deco(fn):
        cuda.kernel(*names, dtypes=F32)(fn)
        if half:
            cuda.kernel(*names, dtypes=F16)(_via_f32(fn))
        return fn

    return deco


def portable(*names):
    """Register CuPy code for every dtype (portable tier; replaces an array-API kernel)."""
    return cuda.kernel(*names, tier="portable")


def portable_kernel(name):
    """The portable-tier kernel registered for op `name` on cuda (CuPy code), or None."""
    for tier, _, fn in cuda.tiers(name):
        if tier == "portable":
            return fn
    return None


def _pair(v):
    return (int(v), int(v)) if isinstance(v, (int, np.integer)) else (int(v[0]), int(v[1]))


# ================================================================================================
# matmul
def _batch_shape(a_shape, b_shape):
    return tuple(np.broadcast_shapes(tuple(a_shape[:-2]), tuple(b_shape[:-2])))


def _as_sgemm_operand(xp, x, batch):
    """x (..., r, c) as what sgemm takes: 2-D (shared by every batch) or 3-D (B, r, c).

    Views stay views where the batch dims merge without a copy (a transposed last-two-dims view
    is then read in place by sgemm); an operand broadcast along only some batch dims is
    materialised."""
    xb = tuple(x.shape[:-2])
    if not xb:
        return x
    if math.prod(xb) == 1:
        return x[(0,) * len(xb)]  # always a view
    if xb == batch:
        return x if x.ndim == 3 else x.reshape((-1,) + tuple(x.shape[-2:]))
    return xp.ascontiguousarray(xp.broadcast_to(x, batch + tuple(x.shape[-2:]))).reshape(
        (-1,) + tuple(x.shape[-2:]))


@ours("matmul")  # other dtypes: the array-API kernel (cupy.matmul)
def _matmul(a, b):
    """(..., M, K) @ (..., K, N) with broadcast batch dims (dispatch gives both at least 2-D, one dtype)."""
    cp = _cp()
    batch = _batch_shape(a.shape, b.shape)
    M, Kd, N = a.shape[-2], a.shape[-1], b.shape[-1]
    shape = batch + (M, N)
    if Kd == 0 or M == 0 or N == 0 or 0 in batch:
        return cp.zeros(shape, dtype=np.float32)
    out = K.sgemm(_as_sgemm_operand(cp, a, batch), _as_sgemm_operand(cp, b, batch),
                  allow_tf32=bool(_matmul_flags.allow_tf32))
    return out.reshape(shape)


# ================================================================================================
# conv2d
def _conv_geom(x_shape, w_shape, stride, padding, dilation):
    N, C, H, W = (int(v) for v in x_shape)
    Co, cg, KH, KW = (int(v) for v in w_shape)
    (sh, sw), (ph, pw), (dh, dw) = _pair(stride), _pair(padding), _pair(dilation)
    OH = (H + 2 * ph - dh * (KH - 1) - 1) // sh + 1
    OW = (W + 2 * pw - dw * (KW - 1) - 1) // sw + 1
    return N, C, H, W, Co, cg, KH, KW, sh, sw, ph, pw, dh, dw, max(OH, 0), max(OW, 0)


def _tap(i, d, s, n):
    """Slice of the padded input read by kernel tap i for n outputs (stride s, dilation d)."""
    return slice(i * d, i * d + s * (n - 1) + 1, s)


def _im2col_xp(xp, x, g):
    N, C, H, W, Co, cg, KH, KW, sh, sw, ph, pw, dh, dw, OH, OW = g
    xpad = xp.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw))) if ph or pw else x
    cols = xp.empty((N, C, KH, KW, OH, OW), dtype=x.dtype)
    for i in range(KH):
        for j in range(KW):
            cols[:, :, i, j] = xpad[:, :, _tap(i, dh, sh, OH), _tap(j, dw, sw, OW)]
    return cols


def conv2d_xp(xp, x, w, b, stride, padding, dilation, groups):
    """conv2d forward in array ops (im2col per kernel tap + one batched GEMM per call)."""
    g = _conv_geom(x.shape, w.shape, stride, padding, dilation)
    N, C, H, W, Co, cg, KH, KW, sh, sw, ph, pw, dh, dw, OH, OW = g
    G = int(groups)
    kg, R = Co // G, cg * KH * KW
    if N * Co * OH * OW == 0:
        return xp.zeros((N, Co, OH, OW), dtype=x.dtype)
    cols = _im2col_xp(xp, x, g).reshape(N, G, R, OH * OW)
    y = xp.matmul(w.reshape(1, G, kg, R), cols).reshape(N, Co, OH, OW)
    if b is not None:
        y += b.reshape(1, -1, 1, 1)
    return y


def conv2d_backward_input_xp(xp, gy, w, x_shape, stride, padding, dilation, groups):
    g = _conv_geom(x_shape, w.shape, stride, padding, dilation)
    N, C, H, W, Co, cg, KH, KW, sh, sw, ph, pw, dh, dw, OH, OW = g
    G = int(groups)
    kg, R = Co // G, cg * KH * KW
    gxp = xp.zeros((N, C, H + 2 * ph, W + 2 * pw), dtype=gy.dtype)
    if gxp.size and gy.size and R:
        wt = w.reshape(G, kg, R).transpose(0, 2, 1)
        cols = xp.matmul(wt.reshape(1, G, R, kg), gy.reshape(N, G, kg, OH * OW)).reshape(N, C, KH, KW, OH, OW)
        for i in range(KH):
            for j in range(KW):
                gxp[:, :, _tap(i, dh, sh, OH), _tap(j, dw, sw, OW)] += cols[:, :, i, j]
    return xp.ascontiguousarray(gxp[:, :, ph:ph + H, pw:pw + W])


def conv2d_backward_weight_xp(xp, gy, x, w_shape, stride, padding, dilation, groups):
    g = _conv_geom(x.shape, w_shape, stride, padding, dilation)
    N, C, H, W, Co, cg, KH, KW, sh, sw, ph, pw, dh, dw, OH, OW = g
    G = int(groups)
    kg, R = Co // G, cg * KH * KW
    if N * OH * OW == 0 or Co * R == 0:
        return xp.zeros(tuple(w_shape), dtype=gy.dtype)
    cols = _im2col_xp(xp, x, g).reshape(N, G, R, OH * OW)
    gw = xp.matmul(gy.reshape(N, G, kg, OH * OW), cols.transpose(0, 1, 3, 2)).sum(axis=0)
    return gw.reshape(tuple(w_shape))


@ours("conv2d", half=True)
def _conv2d(x, w, b, stride, padding, dilation, groups):
    return K.conv2d_forward(x, w, b, stride, padding, dilation, groups)


@portable("conv2d")
def _conv2d_xp(x, w, b, stride, padding, dilation, groups):
    return conv2d_xp(_cp(), x, w, b, stride, padding, dilation, groups)


@ours("conv2d_backward_input", half=True)
def _conv2d_backward_input(gy, w, stride, padding, dilation, groups, x_shape):
    return K.conv2d_backward_input(gy, w, tuple(x_shape), stride, padding, dilation, groups)


@portable("conv2d_backward_input")
def _conv2d_backward_input_xp(gy, w, stride, padding, dilation, groups, x_shape):
    return conv2d_backward_input_xp(_cp(), gy, w, x_shape, stride, padding, dilation, groups)


@ours("conv2d_backward_weight", half=True)
def _conv2d_backward_weight(gy, x, stride, padding, dilation, groups, w_shape):
    return K.conv2d_backward_weight(gy, x, tuple(w_shape), stride, padding, dilation, groups)


@portable("conv2d_backward_weight")
def _conv2d_backward_weight_xp(gy, x, stride, padding, dilation, groups, w_shape):
    return conv2d_backward_weight_xp(_cp(), gy, x, w_shape, stride, padding, dilation, groups)


# ================================================================================================
# pooling
def pool_out(size, k, s, p, d, ceil_mode):
    """Pooling output length, PyTorch's rule (ops/reference.py _pool_out, the cpu kernel's): with
    ceil_mode the last window must start inside the input or the left padding."""
    num = size + 2 * p - (d * (k - 1) + 1)
    o = (-(-num // s) if ceil_mode else num // s) + 1
    if ceil_mode and (o - 1) * s >= size + p:
        o -= 1
    return max(o, 0)


def pool_out_size(x_shape, kernel_size, stride, padding, dilation, ceil_mode):
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = (_pair(kernel_size), _pair(stride), _pair(padding),
                                              _pair(dilation))
    H, W = int(x_shape[-2]), int(x_shape[-1])
    return pool_out(H, kh, sh, ph, dh, ceil_mode), pool_out(W, kw, sw, pw, dw, ceil_mode)


def _pool_pad(xp, x, OH, OW, kh, kw, sh, sw, ph, pw, dh, dw, value):
    """x padded so that every window tap slice of OH x OW outputs is in bounds."""
    H, W = x.shape[-2:]
    bot = max(0, (OH - 1) * sh + (kh - 1) * dh + 1 - H - ph)
    right = max(0, (OW - 1) * sw + (kw - 1) * dw + 1 - W - pw)
    if not (ph or pw or bot or right):
        return x
    return xp.pad(x, ((0, 0), (0, 0), (ph, bot), (pw, right)), constant_values=value)


def max_pool2d_xp(xp, x, kernel_size, stride, padding, dilation, ceil_mode):
    """(y, indices): first maximum of each window, NaN wins (as the CUDA kernel), flat h * W + w."""
    N, C, H, W = x.shape
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = (_pair(kernel_size), _pair(stride), _pair(padding),
                                              _pair(dilation))
    OH, OW = pool_out_size(x.shape, kernel_size, stride, padding, dilation, ceil_mode)
    y = xp.full((N, C, OH, OW), -np.inf, dtype=x.dtype)
    idx = xp.zeros((N, C, OH, OW), dtype=np.int64)
    if y.size == 0 or x.size == 0:
        return y, idx
    xpad = _pool_pad(xp, x, OH, OW, kh, kw, sh, sw, ph, pw, dh, dw, 0)
    oh, ow = np.arange(OH) * sh - ph, np.arange(OW) * sw - pw
    seen = None
    for a in range(kh):
        for c in range(kw):
            hh, ww = oh + a * dh, ow + c * dw
            valid_np = ((hh >= 0) & (hh < H))[:, None] & ((ww >= 0) & (ww < W))[None, :]
            if not valid_np.any():
                continue
            valid = xp.asarray(valid_np)
            flat = xp.asarray((hh[:, None] * W + ww[None, :]).astype(np.int64))
            v = xpad[:, :, _tap(a, dh, sh, OH), _tap(c, dw, sw, OW)]
            # the kernel's rule: the first valid tap, then a strictly larger value or the first NaN
            better = (v > y) | xp.isnan(v)
            better = valid if seen is None else valid & (~seen | (better & ~xp.isnan(y)))
            seen = valid if seen is None else (seen | valid)
            y = xp.where(better, v, y)
            idx = xp.where(better, flat, idx)
    return y, idx


def max_pool2d_backward_xp(xp, gy, indices, x_shape):
    N, C, H, W = (int(v) for v in x_shape)
    gx = xp.zeros((N * C, H * W), dtype=gy.dtype)
    if gy.size and gx.size:
        planes = xp.arange(N * C).reshape(-1, 1)
        _aak._add_at(xp, gx, (planes, indices.reshape(N * C, -1)), gy.reshape(N * C, -1))
    return gx.reshape(N, C, H, W)


def _avg_divisor(H, W, OH, OW, kh, kw, sh, sw, ph, pw, count_include_pad, divisor_override):
    """(OH, OW) numpy array of PyTorch's avg_pool2d divisors (windows clipped at H + ph)."""
    if divisor_override:
        return np.full((OH, OW), float(divisor_override))
    h0, w0 = np.arange(OH) * sh - ph, np.arange(OW) * sw - pw
    h1, w1 = np.minimum(h0 + kh, H + ph), np.minimum(w0 + kw, W + pw)
    if count_include_pad:
        return (h1 - h0)[:, None] * (w1 - w0)[None, :].astype(np.float64)
    hs, he = np.maximum(h0, 0), np.minimum(h1, H)
    ws, we = np.maximum(w0, 0), np.minimum(w1, W)
    return ((he - hs)[:, None] * (we - ws)[None, :]).astype(np.float64)


def avg_pool2d_xp(xp, x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override):
    N, C, H, W = x.shape
    (kh, kw), (sh, sw), (ph, pw) = _pair(kernel_size), _pair(stride), _pair(padding)
    OH, OW = pool_out_size(x.shape, kernel_size, stride, padding, 1, ceil_mode)
    s = xp.zeros((N, C, OH, OW), dtype=x.dtype)
    if s.size == 0:
        return s
    xpad = _pool_pad(xp, x, OH, OW, kh, kw, sh, sw, ph, pw, 1, 1, 0)
    for a in range(kh):
        for c in range(kw):
            s += xpad[:, :, _tap(a, 1, sh, OH), _tap(c, 1, sw, OW)]
    div = _avg_divisor(H, W, OH, OW, kh, kw, sh, sw, ph, pw, count_include_pad, divisor_override)
    return s / xp.asarray(div.astype(x.dtype))


def avg_pool2d_backward_xp(xp, gy, kernel_size, stride, padding, ceil_mode, count_include_pad,
                           divisor_override, x_shape):
    N, C, H, W = (int(v) for v in x_shape)
    (kh, kw), (sh, sw), (ph, pw) = _pair(kernel_size), _pair(stride), _pair(padding)
    OH, OW = int(gy.shape[-2]), int(gy.shape[-1])
    if gy.size == 0 or N * C * H * W == 0:
        return xp.zeros((N, C, H, W), dtype=gy.dtype)
    div = _avg_divisor(H, W, OH, OW, kh, kw, sh, sw, ph, pw, count_include_pad, divisor_override)
    g = gy / xp.asarray(div.astype(gy.dtype))
    bot = max(0, (OH - 1) * sh + kh - H - ph)
    right = max(0, (OW - 1) * sw + kw - W - pw)
    gxp = xp.zeros((N, C, ph + H + bot, pw + W + right), dtype=gy.dtype)
    for a in range(kh):
        for c in range(kw):
            gxp[:, :, _tap(a, 1, sh, OH), _tap(c, 1, sw, OW)] += g
    return xp.ascontiguousarray(gxp[:, :, ph:ph + H, pw:pw + W])


@ours("max_pool2d", half=True)
def _max_pool2d(x, kernel_size, stride, padding, dilation, ceil_mode):
    out = pool_out_size(x.shape, kernel_size, stride, padding, dilation, ceil_mode)
    return K.max_pool2d_forward(x, kernel_size, stride, padding, dilation, out)


@portable("max_pool2d")
def _max_pool2d_xp(x, kernel_size, stride, padding, dilation, ceil_mode):
    return max_pool2d_xp(_cp(), x, kernel_size, stride, padding, dilation, ceil_mode)


@ours("max_pool2d_backward", half=True)
def _max_pool2d_backward(gy, indices, x_shape):
    return K.max_pool2d_backward(gy, indices.astype(np.int64, copy=False), tuple(x_shape))


@portable("max_pool2d_backward")
def _max_pool2d_backward_xp(gy, indices, x_shape):
    return max_pool2d_backward_xp(_cp(), gy, indices.astype(np.int64, copy=False), x_shape)


@ours("avg_pool2d", half=True)
def _avg_pool2d(x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override):
    out = pool_out_size(x.shape, kernel_size, stride, padding, 1, ceil_mode)
    return K.avg_pool2d_forward(x, kernel_size, stride, padding, out, count_include_pad, divisor_override)


@portable("avg_pool2d")
def _avg_pool2d_xp(x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override):
    return avg_pool2d_xp(_cp(), x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)


@ours("avg_pool2d_backward", half=True)
def _avg_pool2d_backward(gy, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override, x_shape):
    return K.avg_pool2d_backward(gy, tuple(x_shape), kernel_size, stride, padding, count_include_pad,
                                 divisor_override)


@portable("avg_pool2d_backward")
def _avg_pool2d_backward_xp(gy, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override,
                            x_shape):
    return avg_pool2d_backward_xp(_cp(), gy, kernel_size, stride, padding, ceil_mode, count_include_pad,
                                  divisor_override, x_shape)


# ================================================================================================
# softmax, log_softmax (rows: the softmax dim moved last, as backends/cpu/nn.py _rows does)
def softmax_rows_xp(xp, rows, log):
    """softmax / log_softmax of each row of a 2-D array (rows, cols), cols >= 1."""
    m = rows.max(axis=1, keepdims=True)
    m = xp.where(xp.isfinite(m), m, xp.zeros_like(m))  # an all -inf row stays nan, a +inf row nan
    z = rows - m
    s = xp.exp(z).sum(axis=1, keepdims=True)
    return z - xp.log(s) if log else xp.exp(z) / s


def _rows(x, dim, row_fn):
    cp = _cp()
    if x.ndim == 0:
        return row_fn(cp.ascontiguousarray(x.reshape(1, 1))).reshape(())
    xm = cp.moveaxis(x, dim, -1)
    shape = xm.shape
    if xm.size == 0:
        return cp.empty(x.shape, dtype=x.dtype)
    out = row_fn(cp.ascontiguousarray(xm).reshape(-1, shape[-1])).reshape(shape)
    return cp.moveaxis(out, -1, dim)


@ours("softmax", half=True)
def _softmax(x, dim):
    return _rows(x, dim, lambda rows: K.softmax(rows, False))


@ours("log_softmax", half=True)
def _log_softmax(x, dim):
    return _rows(x, dim, lambda rows: K.softmax(rows, True))


@portable("softmax")
def _softmax_xp(x, dim):
    return _rows(x, dim, lambda rows: softmax_rows_xp(_cp(), rows, False))


@portable("log_softmax")
def _log_softmax_xp(x, dim):
    return _rows(x, dim, lambda rows: softmax_rows_xp(_cp(), rows, True))


# ================================================================================================
# cross-entropy rows: (loss, lse) per row; loss 0 for ignored rows; lse for every row
def _lse_xp(xp, logits):
    m = logits.max(axis=1)
    m = xp.where(xp.isfinite(m), m, xp.zeros_like(m))
    return xp.log(xp.exp(logits - m[:, None]).sum(axis=1)) + m


def _targets(xp, logits, target, ignore_index):
    rows, C = logits.shape
    ignored = target == ignore_index
    bad = ~ignored & ((target < 0) | (target >= C))
    safe = xp.where(ignored | bad, 0, target)
    return ignored, bad, safe


def cross_entropy_rows_xp(xp, logits, target, ignore_index, label_smoothing):
    rows, C = logits.shape
    if rows == 0:
        return xp.zeros((0,), dtype=logits.dtype), xp.zeros((0,), dtype=logits.dtype)
    lse = _lse_xp(xp, logits)
    ignored, bad, safe = _targets(xp, logits, target, ignore_index)
    picked = xp.take_along_axis(logits, safe.reshape(-1, 1), axis=1)[:, 0]
    loss = (1 - label_smoothing) * (lse - picked)
    if label_smoothing:
        loss = loss + label_smoothing * (lse - logits.mean(axis=1))
    loss = xp.where(ignored, 0, xp.where(bad, np.nan, loss)).astype(logits.dtype)
    return loss, lse.astype(logits.dtype)


def cross_entropy_mean_xp(xp, logits, target, ignore_index, label_smoothing):
    """(mean, lse, count): the op's outputs."""
    loss, lse = cross_entropy_rows_xp(xp, logits, target, ignore_index, label_smoothing)
    mean, count = _mean_of_rows(xp, loss, (target != ignore_index).sum(), logits.dtype)
    return mean, lse, count


def _mean_of_rows(xp, loss, count, dtype):
    """(mean, count) as 0-d arrays of dtype, on the device (no host sync); 0/0 = nan as in PyTorch."""
    # summed in the loss's dtype (float32 for half logits), then cast
    mean = loss.sum() / xp.asarray(count, dtype=loss.dtype)
    return xp.asarray(mean, dtype=dtype), xp.asarray(count, dtype=dtype)


def cross_entropy_rows_backward_xp(xp, g, logits, lse, target, ignore_index, label_smoothing):
    rows, C = logits.shape
    if rows == 0 or C == 0:
        return xp.zeros(logits.shape, dtype=logits.dtype)
    ignored, bad, safe = _targets(xp, logits, target, ignore_index)
    p = xp.exp(logits - lse.reshape(-1, 1))
    onehot = xp.arange(C).reshape(1, -1) == safe.reshape(-1, 1)
    d = (1 - label_smoothing) * (p - onehot) + label_smoothing * (p - 1.0 / C)
    d = d * g.reshape(-1, 1)
    d = xp.where(ignored.reshape(-1, 1), 0, xp.where(bad.reshape(-1, 1), np.nan, d))
    return d.astype(logits.dtype)


def _i64(t):
    return t.astype(np.int64, copy=False)


# our reduce.cu kernels check the targets themselves (a bad one: a nan row, reported at the next sync)
@ours("cross_entropy_rows", half=True)
def _cross_entropy_rows(logits, target, ignore_index, label_smoothing):
    loss, _, lse = K.cross_entropy_forward(logits, _i64(target), None, int(ignore_index), float(label_smoothing))
    return loss, lse


@ours("cross_entropy_mean", half=True)
def _cross_entropy_mean(logits, target, ignore_index, label_smoothing):
    loss, roww, lse = K.cross_entropy_forward(logits, _i64(target), None, int(ignore_index), float(label_smoothing))
    mean, count = _mean_of_rows(_cp(), loss, roww.sum(), logits.dtype)  # roww: 1 per row not ignored
    return mean, lse, count


@ours("cross_entropy_rows_backward", half=True)
def _cross_entropy_rows_backward(g, logits, lse, target, ignore_index, label_smoothing):
    return K.cross_entropy_backward(logits, _i64(target), lse.astype(np.float32, copy=False),
                                    g.astype(np.float32, copy=False), None, int(ignore_index), float(label_smoothing))


def _checked_targets(logits, target, ignore_index):
    """The CuPy path's target check: on the device, no host sync (the xp code itself gives bad
    targets a nan row without reading through them)."""
    target = _i64(target)
    K.check_index(target, logits.shape[-1], op="cross_entropy", dim=1, allow_negative=False,
                  ignore=int(ignore_index))
    return target


@portable("cross_entropy_rows")
def _cross_entropy_rows_xp(logits, target, ignore_index, label_smoothing):
    target = _checked_targets(logits, target, ignore_index)
    return cross_entropy_rows_xp(_cp(), logits, target, ignore_index, label_smoothing)


@portable("cross_entropy_mean")
def _cross_entropy_mean_xp(logits, target, ignore_index, label_smoothing):
    target = _checked_targets(logits, target, ignore_index)
    return cross_entropy_mean_xp(_cp(), logits, target, ignore_index, label_smoothing)


@portable("cross_entropy_rows_backward")  # the targets were checked by the forward
def _cross_entropy_rows_backward_xp(g, logits, lse, target, ignore_index, label_smoothing):
    return cross_entropy_rows_backward_xp(_cp(), g, logits, lse, _i64(target), ignore_index, label_smoothing)


# ================================================================================================
# reductions: the reduced axes are brought together and the array is read as (outer, reduce, inner)
def _memory_order(x):
    """A permutation p with x.transpose(p) C-contiguous (x then is one without a copy), or None."""
    if x.flags.c_contiguous:
        return list(range(x.ndim))
    if any(s <= 0 for s in x.strides):
        return None
    p = sorted(range(x.ndim), key=lambda i: -x.strides[i])
    return p if x.transpose(tuple(p)).flags.c_contiguous else None


def reduce_plan(xp, x, dims):
    """Lay x out for kernels.reduce over `dims` (None: all).

    Returns (xt, outer, red, inner, kept, kept_shape): xt is C-contiguous (a view of x where x is a
    permutation of a C-contiguous array and the reduced axes are adjacent in memory, else a copy);
    the kernel's (outer, inner) result holds x's non-unit kept axes `kept` (axes of x) in xt's
    order, with sizes kept_shape.  Size-1 axes are dropped first: they change no index."""
    nd = x.ndim
    red_axes = set(range(nd)) if dims is None else set(dims)
    live = [i for i in range(nd) if x.shape[i] != 1]
    xs = x.squeeze(axis=tuple(i for i in range(nd) if x.shape[i] == 1)) if len(live) != nd else x
    perm = _memory_order(xs)
    if perm is None:
        xs = xp.ascontiguousarray(xs)
        perm = list(range(xs.ndim))
    xt = xs.transpose(tuple(perm)) if perm != list(range(xs.ndim)) else xs
    axes_t = [live[p] for p in perm]  # x's axis at each position of xt
    pos = [k for k, a in enumerate(axes_t) if a in red_axes]
    if pos and pos[-1] - pos[0] + 1 != len(pos):  # reduced axes not adjacent: move them last (copy)
        order = [k for k in range(xt.ndim) if k not in pos] + pos
        xt = xp.ascontiguousarray(xt.transpose(tuple(order)))
        axes_t = [axes_t[k] for k in order]
        pos = list(range(xt.ndim - len(pos), xt.ndim))
    p0, p1 = (pos[0], pos[-1] + 1) if pos else (xt.ndim, xt.ndim)
    shp = tuple(int(s) for s in xt.shape)
    outer, red, inner = math.prod(shp[:p0]), math.prod(shp[p0:p1]), math.prod(shp[p1:])
    kept = [a for a in axes_t if a not in red_axes]
    kept_shape = tuple(int(x.shape[a]) for a in kept)
    return xt, outer, red, inner, kept, kept_shape


def reduce_result(y, x_shape, dims, keepdim, kept, kept_shape):
    """kernels.reduce's (outer, inner) result -> the op's output shape, axes back in x's order."""
    nd = len(x_shape)
    red_axes = set(range(nd)) if dims is None else set(dims)
    y = y.reshape(kept_shape)
    order = sorted(range(len(kept)), key=lambda k: kept[k])
    if order != list(range(len(kept))):
        y = y.transpose(tuple(order))
    out_shape = tuple(1 if i in red_axes else s for i, s in enumerate(x_shape) if keepdim or i not in red_axes)
    return y.reshape(out_shape)


def _reduce32(x, op, dims, keepdim):
    xt, outer, red, inner, kept, kept_shape = reduce_plan(_cp(), x, dims)
    y = K.reduce(xt, op, outer, red, inner)
    return reduce_result(y, x.shape, dims, keepdim, kept, kept_shape)


# float32 only (other dtypes: the array-API kernels); an empty array goes to them too (their
# empty-reduction rules: sum 0, mean nan, max raises)
def _reduction(name, op):
    def kernel(x, dim, keepdim):
        if x.size == 0:
            return portable_kernel(name)(x, dim, keepdim)
        return _reduce32(x, op, dim, keepdim)

    kernel.__name__ = f"_{name}"
    ours(name)(kernel)
    return kernel


_sum = _reduction("sum", "sum")
_mean = _reduction("mean", "mean")
_amax = _reduction("amax", "max")
_amin = _reduction("amin", "min")


def _arg_reduction(name, op):
    def kernel(x, dim, keepdim):  # dim: one int (ops/reduce.py _arg)
        if x.size == 0:
            return portable_kernel(name)(x, dim, keepdim)
        return _reduce32(x, op, (int(dim),), keepdim)

    kernel.__name__ = f"_{name}"
    ours(name)(kernel)
    return kernel


_argmax = _arg_reduction("argmax", "argmax")
_argmin = _arg_reduction("argmin", "argmin")


def _value_index(name, op):
    def kernel(x, dim, keepdim):
        if x.size == 0:
            return portable_kernel(name)(x, dim, keepdim)
        cp = _cp()
        i = _reduce32(x, op, (int(dim),), True)
        v = cp.take_along_axis(x, i, axis=dim)
        if not keepdim:
            v, i = v.squeeze(dim), i.squeeze(dim)
        return v, i

    kernel.__name__ = f"_{name}"
    ours(name)(kernel)
    return kernel


_max_dim = _value_index("max_dim", "argmax")
_min_dim = _value_index("min_dim", "argmin")


# ================================================================================================
# fused optimizer steps (in place; same signatures as backends/cpu/optim_kernels.py)
_written = optim_portable.written  # an array the step writes: used as is, never a copy


def adam_step_xp(xp, param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, lr, beta1, beta2, eps, weight_decay,
                 decoupled, step, amsgrad, maximize):
    """torch.optim.Adam / AdamW single-tensor step in array ops, in place."""
    g = -grad if maximize else grad
    if weight_decay:
        if decoupled:
            param *= 1 - lr * weight_decay
        else:
            g = g + weight_decay * param
    exp_avg += (g - exp_avg) * (1 - beta1)
    exp_avg_sq *= beta2
    exp_avg_sq += (1 - beta2) * g * g
    bc1 = 1 - beta1 ** step
    bc2_sqrt = math.sqrt(1 - beta2 ** step)
    v = exp_avg_sq
    if amsgrad:
        xp.maximum(max_exp_avg_sq, exp_avg_sq, out=max_exp_avg_sq)
        v = max_exp_avg_sq
    param -= (lr / bc1) * exp_avg / (xp.sqrt(v) / bc2_sqrt + eps)
    return param


def sgd_step_xp(xp, param, grad, momentum_buffer, lr, momentum, dampening, weight_decay, nesterov, maximize,
                first_step):
    g = -grad if maximize else grad
    if weight_decay:
        g = g + weight_decay * param
    if momentum:
        if first_step:
            momentum_buffer[...] = g
        else:
            momentum_buffer *= momentum
            momentum_buffer += (1 - dampening) * g
        g = g + momentum * momentum_buffer if nesterov else momentum_buffer
    param -= lr * g
    return param


def rmsprop_step_xp(xp, param, grad, square_avg, momentum_buffer, grad_avg, lr, alpha, eps, weight_decay, momentum,
                    centered):
    g = grad
    if weight_decay:
        g = g + weight_decay * param
    square_avg *= alpha
    square_avg += (1 - alpha) * g * g
    if centered:
        grad_avg += (g - grad_avg) * (1 - alpha)
        avg = xp.sqrt(square_avg - grad_avg * grad_avg) + eps
    else:
        avg = xp.sqrt(square_avg) + eps
    if momentum > 0:
        momentum_buffer *= momentum
        momentum_buffer += g / avg
        param -= lr * momentum_buffer
    else:
        param -= lr * g / avg
    return param


@ours("adam_step_")
def _adam_step_(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, lr, beta1, beta2, eps, weight_decay, decoupled,
                step, amsgrad, maximize):
    p, m, v = _written(param, "param"), _written(exp_avg, "exp_avg"), _written(exp_avg_sq, "exp_avg_sq")
    vmax = _written(max_exp_avg_sq, "max_exp_avg_sq") if amsgrad else None
    K.adam_step(p, _cp().ascontiguousarray(grad, dtype=np.float32), m, v, step=int(step), lr=float(lr),
                beta1=float(beta1), beta2=float(beta2), eps=float(eps), weight_decay=float(weight_decay),
                decoupled=bool(decoupled), amsgrad=bool(amsgrad), max_exp_avg_sq=vmax, maximize=bool(maximize))
    return param


@portable("adam_step_")
def _adam_step_xp(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, lr, beta1, beta2, eps, weight_decay, decoupled,
                  step, amsgrad, maximize):
    p, m, v = _written(param, "param"), _written(exp_avg, "exp_avg"), _written(exp_avg_sq, "exp_avg_sq")
    vmax = _written(max_exp_avg_sq, "max_exp_avg_sq") if amsgrad else None
    return adam_step_xp(_cp(), p, grad.astype(p.dtype, copy=False), m, v, vmax, float(lr), float(beta1),
                        float(beta2), float(eps), float(weight_decay), bool(decoupled), int(step), bool(amsgrad),
                        bool(maximize))


@ours("sgd_step_")
def _sgd_step_(param, grad, momentum_buffer, lr, momentum, dampening, weight_decay, nesterov, maximize, first_step):
    p = _written(param, "param")
    buf = _written(momentum_buffer, "momentum_buffer") if momentum else None
    K.sgd_step(p, _cp().ascontiguousarray(grad, dtype=np.float32), buf, lr=float(lr), momentum=float(momentum),
               dampening=float(dampening), weight_decay=float(weight_decay), nesterov=bool(nesterov),
               maximize=bool(maximize), first_step=bool(first_step))
    return param


@portable("sgd_step_")
def _sgd_step_xp(param, grad, momentum_buffer, lr, momentum, dampening, weight_decay, nesterov, maximize,
                 first_step):
    p = _written(param, "param")
    buf = _written(momentum_buffer, "momentum_buffer") if momentum else None
    return sgd_step_xp(_cp(), p, grad.astype(p.dtype, copy=False), buf, float(lr), float(momentum),
                       float(dampening), float(weight_decay), bool(nesterov), bool(maximize), bool(first_step))


@portable("rmsprop_step_")
def _rmsprop_step_(param, grad, square_avg, momentum_buffer, grad_avg, lr, alpha, eps, weight_decay, momentum,
                   centered):
    # no CUDA C kernel: CuPy elementwise ops (a few passes; RMSprop is rare in this library's workloads)
    cp = _cp()
    p, sq = _written(param, "param"), _written(square_avg, "square_avg")
    buf = _written(momentum_buffer, "momentum_buffer") if momentum > 0 else None
    ga = _written(grad_avg, "grad_avg") if centered else None
    return rmsprop_step_xp(cp, p, grad.astype(p.dtype, copy=False), sq, buf, ga, float(lr), float(alpha),
                           float(eps), float(weight_decay), float(momentum), bool(centered))


def _register_optim_step(name, step):
    """Adagrad ... ASGD (backends/optim_portable.py): our CUDA C for float32 (one template kernel,
    kernels/optim.cu); the portable tier (CuPy) is registered by optim_portable.register."""

    @ours(name)
    def kernel(param, grad, *state, **attrs):
        scalars, flags = step.scalars(np.float32, **attrs)
        K.optim_step(name, _written(param, "param"), _cp().ascontiguousarray(grad, dtype=np.float32),
                     [_written(a, n) for a, n in zip(state, step.state)], scalars, flags)
        return param

    kernel.__name__ = kernel.__qualname__ = f"_{name}"


for _name, _step in optim_portable.STEPS.items():
    _register_optim_step(_name, _step)
optim_portable.register(cuda, cupy_lazy)


# ================================================================================================
# linear: x @ w.T + b through the SGEMM path above (w.T is read in place: a transposed view); other
# dtypes: the array-API kernel (cupy.matmul)
@ours("linear")
def _linear(x, w, b):
    lead = x.shape[:-1]
    out = _matmul(x.reshape(-1, x.shape[-1]), w.T)
    if b is not None:
        out += b
    return out.reshape(lead + (w.shape[0],))


# ================================================================================================
# indexing: the array-API kernels (CuPy), fed index arrays checked on the device first
# (kernels.check_index: out-of-range values become 0 and the first is reported at the next sync;
# no host sync here, and CuPy never sees an index it would wrap around or read out of bounds with)
_ARRAY_API = {name: portable_kernel(name) for name in ("gather", "scatter_add", "index", "index_put",
                                                       "index_backward")}


def _is_int_array(k):
    dt = getattr(k, "dtype", None)
    return dt is not None and hasattr(k, "shape") and dt.kind in "iu"


def _consumes(k):
    """How many dimensions of the indexed array a key element uses up (numpy's rules)."""
    if k is None or k is Ellipsis or isinstance(k, (bool, np.bool_)):
        return 0
    dt = getattr(k, "dtype", None)
    if dt is not None and dt == np.bool_:
        return k.ndim
    return 1


def key_dims(key, ndim):
    """For each element of an indexing key (ints, slices, None, Ellipsis, bools, index arrays), the
    dimension of an ndim-dimensional array it indexes (None for elements that index none)."""
    ell = next((i for i, k in enumerate(key) if k is Ellipsis), None)
    after = sum(_consumes(k) for k in key[ell + 1:]) if ell is not None else 0
    out, d = [], 0
    for i, k in enumerate(key):
        if i == ell:
            d = ndim - after
            out.append(None)
            continue
        out.append(d if _is_int_array(k) else None)
        d += _consumes(k)
    return out


def _safe_key(key, shape, op):
    """key with each integer index array replaced by its checked, safe int64 copy."""
    if not any(_is_int_array(k) for k in key):
        return key
    shape = tuple(int(s) for s in shape)
    dims = key_dims(key, len(shape))
    return tuple(K.check_index(k, shape[d], op=op, dim=d) if _is_int_array(k) and d is not None and d < len(shape)
                 else k for k, d in zip(key, dims))


def _dim_size(shape, dim):
    return int(shape[dim]) if len(shape) else 1


# gather / scatter_add take indices in [0, size) only, as PyTorch (and the cpu check in ops/index.py);
# advanced indexing also counts negative ones from the end
@portable("gather")
def _gather(x, index, dim):
    safe = K.check_index(index, _dim_size(x.shape, dim), op="gather", dim=dim, allow_negative=False)
    return _ARRAY_API["gather"](x, safe, dim)


@portable("scatter_add")
def _scatter_add(x, index, src, dim):
    safe = K.check_index(index, _dim_size(x.shape, dim), op="scatter_add", dim=dim, allow_negative=False)
    return _ARRAY_API["scatter_add"](x, safe, src, dim)


@portable("index")
def _index(x, key, basic):
    return _ARRAY_API["index"](x, key if basic else _safe_key(key, x.shape, "index"), basic)


@portable("index_put")
def _index_put(x, v, key, accumulate):
    return _ARRAY_API["index_put"](x, v, _safe_key(key, x.shape, "index_put"), accumulate)


@portable("index_backward")
def _index_backward(g, shape, key, basic):
    return _ARRAY_API["index_backward"](g, shape, key if basic else _safe_key(key, shape, "index"), basic)
