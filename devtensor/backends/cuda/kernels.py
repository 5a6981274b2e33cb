"""Array-level launch wrappers for devtensor's own CUDA kernels (kernels/*.cu).

Every function takes and returns cupy arrays (float32 data, int64 indices / targets) and plain
Python values; none of them synchronizes with the host.  Shapes are validated by the op layer
above the dispatch table; these wrappers only check what would make a kernel read or write out of
bounds.  Inputs that are not C-contiguous are copied (sgemm also reads transposed views in place).
Scalars go to the kernels as numpy.int32 / numpy.int64 / numpy.float32, never as Python numbers
(CuPy would pass those as long long / double, which the kernels would read as garbage).  cupy is imported lazily.

Its size: one thin wrapper per kernel entry point of kernels/*.cu (matmul, conv, pooling,
reductions, optimizer steps, index checks, recurrent cells), all sharing the launch and contiguity
helpers at the top.
"""
from __future__ import annotations

import math

import numpy as np

from . import kernel_build as kb

_INT32_MAX = 2**31 - 1
_DEVICE_INFO: dict = {}


# ------------------------------------------------------------------------------------------------
# helpers
def _cp():
    import cupy

    return cupy


def _device_info():
    """(device id, number of SMs, compute capability as int, e.g. 90) of the current device."""
    cp = _cp()
    dev = cp.cuda.Device()
    info = _DEVICE_INFO.get(dev.id)
    if info is None:
        info = (dev.id, int(dev.attributes["MultiProcessorCount"]), int(dev.compute_capability))
        _DEVICE_INFO[dev.id] = info
    return info


def _i32(v, what="value"):
    v = int(v)
    if not -(2**31) <= v <= _INT32_MAX:
        raise ValueError(f"{what}={v} does not fit the kernel's 32-bit int")
    return np.int32(v)


def _i64(v):
    return np.int64(int(v))


def _f32(v):
    return np.float32(v)


def _ptr(a):
    return a.data.ptr


def _launch(file, cfg, args):
    """Launch cfg.kernel from `file`; a launch with an empty grid (no work) is skipped."""
    if 0 in cfg.grid:
        return
    kern = kb.get_kernel(file, cfg.kernel)
    kern(cfg.grid, cfg.block, tuple(args), shared_mem=cfg.shared_mem)


def _f32c(a, name):
    """C-contiguous float32 (copies only when needed)."""
    cp = _cp()
    if a.dtype != np.float32:
        raise TypeError(f"{name}: expected float32, got {a.dtype}")
    return a if a.flags.c_contiguous else cp.ascontiguousarray(a)


def _i64c(a, name):
    cp = _cp()
    if a.dtype != np.int64:
        raise TypeError(f"{name}: expected int64, got {a.dtype}")
    return a if a.flags.c_contiguous else cp.ascontiguousarray(a)


def _pair(v, name):
    if isinstance(v, int):
        return (v, v)
    v = tuple(int(t) for t in v)
    if len(v) != 2:
        raise ValueError(f"{name} must be an int or a pair, got {v}")
    return v


# ------------------------------------------------------------------------------------------------
# matmul
def _matrix_view(x, name):
    """Describe the last two dims of x for the SGEMM kernels without copying when possible.

    Returns (array, ld, batch_stride, transposed, batch): `array`'s data pointer is the first
    element; the stored matrix is row-major with leading dimension ld, and `transposed` says x is
    the transpose of that stored matrix (a column-major view, e.g. y.T of a contiguous y).
    """
    cp = _cp()
    if x.dtype != np.float32:
        raise TypeError(f"sgemm: {name} must be float32, got {x.dtype}")
    if x.ndim not in (2, 3):
        raise ValueError(f"sgemm: {name} must be 2-D or 3-D, got shape {x.shape}")
    if x.size == 0:  # nothing is read; any valid description will do
        return x, max(x.shape[-1], 1), 0, False, (x.shape[0] if x.ndim == 3 else 1)
    for attempt in (0, 1):
        es = x.itemsize
        rows, cols = x.shape[-2:]
        sr, sc = x.strides[-2], x.strides[-1]
        sb = x.strides[0] if x.ndim == 3 else 0
        batch = x.shape[0] if x.ndim == 3 else 1
        ok = sr % es == 0 and sc % es == 0 and sb % es == 0 and sr >= 0 and sc >= 0 and sb >= 0
        if ok:
            sr, sc, sb = sr // es, sc // es, sb // es
            bstride = sb if batch > 1 else 0
            if (sc == 1 or cols <= 1) and (sr >= max(cols, 1) or rows <= 1):
                ld = sr if rows > 1 else max(cols, 1)
                if ld <= _INT32_MAX:
                    return x, ld, bstride, False, batch
            if (sr == 1 or rows <= 1) and (sc >= max(rows, 1) or cols <= 1):
                ld = sc if cols > 1 else max(rows, 1)
                if ld <= _INT32_MAX:
                    return x, ld, bstride, True, batch
        x = cp.ascontiguousarray(x)
    raise AssertionError("unreachable: a C-contiguous array is always a row-major matrix")


def sgemm(a, b, trans_a=False, trans_b=False, *, out=None, alpha=1.0, beta=0.0, allow_tf32=False):
    """C = alpha * op(a) @ op(b) + beta * C, float32, on the current device.

    a: (M, K) or, with trans_a, (K, M); b: (K, N) or, with trans_b, (N, K).  Either may carry a
    leading batch dim (3-D); a batch of 1 or a 2-D operand is broadcast over the other's batch
    (batch stride 0).  Views are read in place when their last dim or the one before it has unit
    stride (so x.T costs nothing); anything else is copied.  `out`, when given, must be a
    C-contiguous float32 array of the result shape; with beta != 0 it is read first (beta == 0
    never reads it).  Returns (M, N), or (B, M, N) if a or b is 3-D.  allow_tf32 selects the
    tensor-core kernel (inputs rounded to TF32, fp32 accumulation) on sm_80 and newer; otherwise
    the exact fp32 CUDA-core kernel runs.  CuPy compiles with -ftz=true: denormals flush to zero.
    """
    cp = _cp()
    av, lda, sa, ta_view, ba = _matrix_view(a, "a")
    bv, ldb, sb, tb_view, bb = _matrix_view(b, "b")
    ta = bool(trans_a) != ta_view
    tb = bool(trans_b) != tb_view
    M, K = (a.shape[-1], a.shape[-2]) if trans_a else (a.shape[-2], a.shape[-1])
    K2, N = (b.shape[-1], b.shape[-2]) if trans_b else (b.shape[-2], b.shape[-1])
    if K != K2:
        raise ValueError(f"sgemm: inner dims differ: op(a) is {M}x{K}, op(b) is {K2}x{N}")
    if ba != bb and 1 not in (ba, bb):
        raise ValueError(f"sgemm: batch dims {ba} and {bb} do not broadcast")
    batch = max(ba, bb)
    batched = a.ndim == 3 or b.ndim == 3
    shape = (batch, M, N) if batched else (M, N)
    for v, what in ((M, "M"), (N, "N"), (K, "K"), (batch, "batch")):
        _i32(v, what)
    if out is None:
        if beta != 0:
            raise ValueError("sgemm: beta != 0 needs out")
        out = cp.empty(shape, dtype=np.float32)
    elif out.shape != shape or out.dtype != np.float32 or not out.flags.c_contiguous:
        raise ValueError(f"sgemm: out must be C-contiguous float32 {shape}, got {out.dtype} {out.shape}")
    if out.size == 0:
        return out
    ldc, sc = N, (M * N if batch > 1 else 0)
    _, _, cc = _device_info()
    tf32 = bool(allow_tf32) and cc >= 80
    vec = all(_ptr(t) % 16 == 0 for t in (av, bv, out)) and all(
        v % 4 == 0 for v in (lda, ldb, ldc, sa, sb, sc))
    cfg = kb.launch_config("sgemm", M=M, N=N, K=K, batch=batch, trans_a=ta, trans_b=tb, vec=vec,
                           allow_tf32=tf32, num_sms=_device_info()[1])
    _launch("matmul.cu", cfg, (av, bv, out, _i32(M), _i32(N), _i32(K), _i32(lda), _i32(ldb), _i32(ldc),
                               _i64(sa if ba > 1 else 0), _i64(sb if bb > 1 else 0), _i64(sc), _i32(batch),
                               _f32(alpha), _f32(beta)))
    return out


# ------------------------------------------------------------------------------------------------
# conv2d
def conv2d_output_size(H, W, KH, KW, stride, padding, dilation):
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    return ((H + 2 * ph - dh * (KH - 1) - 1) // sh + 1, (W + 2 * pw - dw * (KW - 1) - 1) // sw + 1)


def _conv_geom(x_shape, w_shape, stride, padding, dilation, groups):
    N, C, H, W = x_shape
    Cout, cig, KH, KW = w_shape
    stride, padding, dilation = _pair(stride, "stride"), _pair(padding, "padding"), _pair(dilation, "dilation")
    if groups < 1 or C % groups or Cout % groups or cig != C // groups:
        raise ValueError(f"conv2d: input {tuple(x_shape)} / weight {tuple(w_shape)} / groups={groups} mismatch")
    if min(stride) < 1 or min(dilation) < 1 or min(padding) < 0:
        raise ValueError(f"conv2d: bad stride {stride} / padding {padding} / dilation {dilation}")
    OH, OW = conv2d_output_size(H, W, KH, KW, stride, padding, dilation)
    if OH < 0 or OW < 0:
        raise ValueError(f"conv2d: kernel {KH}x{KW} larger than padded input {H}x{W}")
    OH, OW = max(OH, 0), max(OW, 0)
    dims = dict(N=N, C=C, H=H, W=W, Cout=Cout, KH=KH, KW=KW, OH=OH, OW=OW, groups=groups)
    for k, v in dims.items():
        _i32(v, k)
    for prod, what in ((N * OH * OW, "N*OH*OW"), (N * H * W, "N*H*W"), (C * KH * KW, "C*KH*KW"),
                       (Cout * KH * KW, "Cout*KH*KW")):
        _i32(prod, what)
    return dims, stride, padding, dilation


def _conv_args(d, stride, padding, dilation):
    return tuple(_i32(v) for v in (d["N"], d["C"], d["H"], d["W"], d["Cout"], d["KH"], d["KW"], d["OH"], d["OW"],
                                   stride[0], stride[1], padding[0], padding[1], dilation[0], dilation[1],
                                   d["groups"]))


def conv2d_forward(x, w, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """y = conv2d(x, w) + bias: x (N, C, H, W), w (Cout, C/groups, KH, KW), bias (Cout,) or None,
    all float32; stride / padding / dilation ints or pairs (zero padding).  Returns y (N, Cout, OH, OW)."""
    cp = _cp()
    x, w = _f32c(x, "x"), _f32c(w, "w")
    d, stride, padding, dilation = _conv_geom(x.shape, w.shape, stride, padding, dilation, groups)
    y = cp.empty((d["N"], d["Cout"], d["OH"], d["OW"]), dtype=np.float32)
    if y.size == 0:
        return y
    has_bias = bias is not None
    if has_bias:
        bias = _f32c(bias, "bias")
        if bias.shape != (d["Cout"],):
            raise ValueError(f"conv2d: bias shape {bias.shape} != ({d['Cout']},)")
    cfg = kb.launch_config("conv2d_fwd", num_sms=_device_info()[1], **d)
    _launch("conv.cu", cfg, (x, w, bias if has_bias else w, y, *_conv_args(d, stride, padding, dilation),
                             _i32(int(has_bias))))
    return y


def conv2d_backward_input(dy, w, input_shape, stride=1, padding=0, dilation=1, groups=1):
    """dx for y = conv2d(x, w): dy (N, Cout, OH, OW), w (Cout, C/groups, KH, KW), input_shape = x.shape.
    Returns dx (N, C, H, W) float32 (fully written)."""
    cp = _cp()
    dy, w = _f32c(dy, "dy"), _f32c(w, "w")
    d, stride, padding, dilation = _conv_geom(tuple(input_shape), w.shape, stride, padding, dilation, groups)
    if dy.shape != (d["N"], d["Cout"], d["OH"], d["OW"]):
        raise ValueError(f"conv2d backward: dy shape {dy.shape} != {(d['N'], d['Cout'], d['OH'], d['OW'])}")
    dx = cp.empty(tuple(input_shape), dtype=np.float32)
    if dx.size == 0:
        return dx
    cfg = kb.launch_config("conv2d_bwd_input", num_sms=_device_info()[1], **d)
    _launch("conv.cu", cfg, (dy, w, dx, *_conv_args(d, stride, padding, dilation)))
    return dx


def conv2d_backward_weight(dy, x, weight_shape, stride=1, padding=0, dilation=1, groups=1):
    """dw for y = conv2d(x, w): dy (N, Cout, OH, OW), x (N, C, H, W), weight_shape = w.shape.
    Returns dw (Cout, C/groups, KH, KW) float32.  Long reductions are split (split-K) and combined
    with atomicAdd, so the result may differ in the last bits from run to run."""
    cp = _cp()
    dy, x = _f32c(dy, "dy"), _f32c(x, "x")
    d, stride, padding, dilation = _conv_geom(x.shape, tuple(weight_shape), stride, padding, dilation, groups)
    if dy.shape != (d["N"], d["Cout"], d["OH"], d["OW"]):
        raise ValueError(f"conv2d backward: dy shape {dy.shape} != {(d['N'], d['Cout'], d['OH'], d['OW'])}")
    cfg = kb.launch_config("conv2d_bwd_weight", num_sms=_device_info()[1], **d)
    kps = cfg.params["k_per_split"]
    split = kps < cfg.params["gemm_k"]
    dw = (cp.zeros if split else cp.empty)(tuple(weight_shape), dtype=np.float32)
    if dw.size == 0:
        return dw
    _launch("conv.cu", cfg, (dy, x, dw, *_conv_args(d, stride, padding, dilation), _i32(kps)))
    return dw


# ------------------------------------------------------------------------------------------------
# reductions
def reduce(x, op, outer, reduce, inner=1, correction=1.0):
    """Reduce a C-contiguous float32 array viewed as (outer, reduce, inner) over its middle axis.

    op: 'sum', 'mean', 'max', 'min', 'argmax', 'argmin' or 'var' (var divides by
    max(0, reduce - correction), like torch.var).  Returns an (outer, inner) array: float32, or
    int64 for argmax / argmin (index along the reduced axis; the first one on ties; NaN wins, as in
    PyTorch).  max / min propagate NaN.  The caller permutes axes so the reduced ones are merged
    into the middle; reducing everything is outer = inner = 1.  reduce == 0: sum -> 0, mean / var ->
    nan, the others raise ValueError (PyTorch raises too).
    """
    cp = _cp()
    if op not in kb.REDUCE_OPS:
        raise ValueError(f"unknown reduction {op!r}; known: {kb.REDUCE_OPS}")
    x = _f32c(x, "x")
    outer, reduce, inner = int(outer), int(reduce), int(inner)
    if outer * reduce * inner != x.size:
        raise ValueError(f"reduce: {outer}x{reduce}x{inner} does not match {x.size} elements")
    out_dtype = np.int64 if op in kb.REDUCE_INDEX_OPS else np.float32
    y = cp.empty((outer, inner), dtype=out_dtype)
    if y.size == 0:
        return y
    if reduce == 0:
        if op in ("max", "min", "argmax", "argmin"):
            raise ValueError(f"{op}: cannot reduce over an empty dimension")
        y.fill(0.0 if op == "sum" else float("nan"))
        return y
    _i32(outer, "outer")
    _i32(inner, "inner")
    _, sms, _ = _device_info()
    cfg = kb.launch_config("reduce", op=op, outer=outer, reduce=reduce, inner=inner, num_sms=sms)
    mode = cfg.params["mode"]
    if mode == "inner":
        _launch("reduce.cu", cfg, (x, y, _i32(outer), _i64(reduce), _i32(inner), _f32(correction)))
    elif mode == "lastdim":
        _launch("reduce.cu", cfg, (x, y, _i32(outer), _i64(reduce), _f32(correction)))
    else:
        splits = cfg.params["splits"]
        ws = cp.empty(cfg.params["workspace_bytes"], dtype=np.uint8)
        _launch("reduce.cu", cfg, (x, ws, _i32(outer), _i64(reduce), _i32(splits)))
        fin = kb.launch_config("reduce_final", op=op, outer=outer, splits=splits, num_sms=sms)
        _launch("reduce.cu", fin, (ws, y, _i32(outer), _i32(splits), _i64(reduce), _f32(correction)))
    return y


def reduce_all(x, op, correction=1.0):
    """Reduce every element of float32 array x; returns a 0-d array (float32, or int64 flat index
    for argmax / argmin).  Same semantics as reduce()."""
    return reduce(x.reshape(-1) if x.flags.c_contiguous else _f32c(x, "x").reshape(-1), op, 1, x.size, 1,
                  correction).reshape(())


# ------------------------------------------------------------------------------------------------
# softmax family (rows of a C-contiguous 2-D float32 array)
def _rows_of(x, name):
    x = _f32c(x, name)
    if x.ndim != 2:
        raise ValueError(f"{name} must be 2-D (rows, cols), got {x.shape}")
    _i32(x.shape[0], "rows")
    _i32(x.shape[1], "cols")
    return x


def softmax(x, log=False):
    """Row-wise softmax (or log_softmax) of a 2-D float32 array; the caller moves the softmax dim last.
    An all -inf row gives nan (like PyTorch).  Returns a new (rows, cols) array."""
    cp = _cp()
    x = _rows_of(x, "x")
    y = cp.empty_like(x)
    rows, cols = x.shape
    if y.size:
        _launch("reduce.cu", kb.launch_config("softmax", rows=rows, cols=cols, num_sms=_device_info()[1]),
                (x, y, _i32(rows), _i32(cols), _i32(int(bool(log)))))
    return y


def softmax_backward(y, dy, log=False):
    """dx for y = softmax(x) (dx = y * (dy - sum(dy * y))) or for y = log_softmax(x)
    (dx = dy - exp(y) * sum(dy)); y and dy are (rows, cols) float32.  Returns dx."""
    cp = _cp()
    y, dy = _rows_of(y, "y"), _rows_of(dy, "dy")
    if y.shape != dy.shape:
        raise ValueError(f"softmax_backward: y {y.shape} vs dy {dy.shape}")
    dx = cp.empty_like(y)
    rows, cols = y.shape
    if dx.size:
        _launch("reduce.cu", kb.launch_config("softmax_bwd", rows=rows, cols=cols, num_sms=_device_info()[1]),
                (y, dy, dx, _i32(rows), _i32(cols), _i32(int(bool(log)))))
    return dx


def logsumexp(x):
    """Row-wise log(sum(exp(x))) of a (rows, cols) float32 array -> (rows,). cols == 0 gives -inf."""
    cp = _cp()
    x = _rows_of(x, "x")
    rows, cols = x.shape
    out = cp.empty((rows,), dtype=np.float32)
    if rows:
        _launch("reduce.cu", kb.launch_config("logsumexp", rows=rows, cols=cols, num_sms=_device_info()[1]),
                (x, out, _i32(rows), _i32(cols)))
    return out


def cross_entropy_forward(logits, target, weight=None, ignore_index=-100, label_smoothing=0.0):
    """Per-row cross-entropy of (rows, C) float32 logits against int64 class targets (rows,).

    Returns (loss, row_weight, lse), each (rows,) float32:
      loss[i] = (1 - eps) * w[t_i] * (lse_i - z[i, t_i]) + eps / C * sum_c w[c] * (lse_i - z[i, c]),
      row_weight[i] = w[t_i] (1 without class weights), both 0 where t_i == ignore_index;
      lse[i] = logsumexp(z[i]) (kept for the backward).
    PyTorch's reduction='mean' is loss.sum() / row_weight.sum(), 'sum' is loss.sum().  A target
    outside [0, C) that is not ignore_index gives a nan loss for that row and is recorded in the
    device error record (take_device_error reports it at the next synchronisation, as PyTorch's
    device-side assert does).
    """
    cp = _cp()
    logits = _rows_of(logits, "logits")
    rows, C = logits.shape
    target = _i64c(target, "target")
    if target.shape != (rows,):
        raise ValueError(f"cross_entropy: target shape {target.shape} != ({rows},)")
    has_w = weight is not None
    if has_w:
        weight = _f32c(weight, "weight")
        if weight.shape != (C,):
            raise ValueError(f"cross_entropy: weight shape {weight.shape} != ({C},)")
    loss = cp.empty((rows,), dtype=np.float32)
    roww = cp.empty((rows,), dtype=np.float32)
    lse = cp.empty((rows,), dtype=np.float32)
    if rows:
        _launch("reduce.cu", kb.launch_config("cross_entropy", rows=rows, cols=C, num_sms=_device_info()[1]),
                (logits, target, weight if has_w else logits, loss, roww, lse, _i32(rows), _i32(C),
                 _i32(int(has_w)), _i64(ignore_index), _f32(label_smoothing), device_error_buffer()))
    return loss, roww, lse


def cross_entropy_backward(logits, target, lse, grad, weight=None, ignore_index=-100, label_smoothing=0.0):
    """d(sum_i grad_i * loss_i)/d logits for cross_entropy_forward's per-row loss.

    grad: (rows,) float32 per-row upstream gradient, or a 0-d / 1-element array broadcast to all
    rows (e.g. grad_out / total_weight for reduction='mean').  lse is cross_entropy_forward's third
    output.  Returns dlogits (rows, C) float32; ignored rows get 0, rows with a target out of range
    nan (recorded in the device error record, as the forward does).
    """
    cp = _cp()
    logits = _rows_of(logits, "logits")
    rows, C = logits.shape
    target, lse = _i64c(target, "target"), _f32c(lse, "lse")
    grad = _f32c(grad, "grad")
    if grad.size == 1:
        gstride = 0
    elif grad.shape == (rows,):
        gstride = 1
    else:
        raise ValueError(f"cross_entropy_backward: grad shape {grad.shape} is neither () nor ({rows},)")
    has_w = weight is not None
    if has_w:
        weight = _f32c(weight, "weight")
    dz = cp.empty_like(logits)
    if dz.size:
        _launch("reduce.cu",
                kb.launch_config("cross_entropy_bwd", rows=rows, cols=C, num_sms=_device_info()[1]),
                (logits, target, weight if has_w else logits, lse, grad, _i64(gstride), dz, _i32(rows), _i32(C),
                 _i32(int(has_w)), _i64(ignore_index), _f32(label_smoothing), device_error_buffer()))
    return dz


# ------------------------------------------------------------------------------------------------
# device-side index errors: one int64[4] record per device, {op id, dimension, bad value, bound}
DEVICE_ERROR_OPS = {1: "cross_entropy", 2: "gather", 3: "scatter_add", 4: "index", 5: "index_put"}
_DEVICE_ERROR_IDS = {name: i for i, name in DEVICE_ERROR_OPS.items()}
_ERROR_RECORDS: dict = {}  # device id -> the record (made on first use: until then sync points read nothing)


def device_error_buffer():
    """The current device's error record (int64[4], zeroed), which checking kernels write: the
    first out-of-range index they meet wins (atomicCAS on the op id)."""
    cp = _cp()
    dev = cp.cuda.Device().id
    rec = _ERROR_RECORDS.get(dev)
    if rec is None:
        rec = _ERROR_RECORDS[dev] = cp.zeros(4, dtype=np.int64)
    return rec


def device_error_message(rec) -> str:
    """The RuntimeError message for a record (op id, dimension, bad value, bound)."""
    op_id, dim, value, bound = (int(v) for v in rec)
    op = DEVICE_ERROR_OPS.get(op_id, f"kernel (op id {op_id})")
    if op == "cross_entropy":
        what = f"target {value} is out of bounds for {bound} classes"
    else:
        what = f"index {value} is out of bounds for dimension {dim} with size {bound}"
    return f"{op}: {what} (reported by the device at the next synchronisation)"


def take_device_error():
    """The first device-side error recorded since the last call, as a message (the record is then
    cleared), or None.  Reads 32 bytes from each device that has a record, so it waits for the work
    queued before it: call it where the host synchronises anyway (the backend's synchronize() and
    device-to-host copies do).  Costs nothing until a checking kernel has run."""
    if not _ERROR_RECORDS:
        return None
    cp = _cp()
    for dev, rec in list(_ERROR_RECORDS.items()):
        with cp.cuda.Device(dev):
            host = cp.asnumpy(rec)
            if host[0]:
                rec.fill(0)
                return device_error_message(host)
    return None


def check_index(index, bound, *, op, dim=-1, allow_negative=True, ignore=None):
    """A C-contiguous int64 copy of `index` that is safe to index a dimension of size `bound` with:
    every value outside [-bound, bound) ([0, bound) without allow_negative; values equal to `ignore`
    are kept) becomes 0, and the first one is recorded in the device error record for `op` (a name
    in DEVICE_ERROR_OPS) and `dim`.  No host sync: the error surfaces at the next synchronisation.
    A non-empty index into an empty dimension (bound 0) raises IndexError here: the shapes alone
    say that no value can be valid."""
    cp = _cp()
    bound, n = int(bound), int(index.size)
    if n and bound <= 0:
        raise IndexError(f"{op}: index is out of bounds for dimension {dim} with size {bound}")
    kind = str(index.dtype)
    if kind not in kb.CHECK_INDEX_TYPES:
        if index.dtype.kind not in "iu":
            raise TypeError(f"{op}: indices must be integers, got {index.dtype}")
        index, kind = index.astype(np.int64), "int64"
    index = index if index.flags.c_contiguous else cp.ascontiguousarray(index)
    safe = cp.empty(index.shape, dtype=np.int64)
    if n == 0:
        return safe
    cfg = kb.launch_config("check_index", n=n, index_dtype=kind, num_sms=_device_info()[1])
    has_ignore = ignore is not None
    _launch("index.cu", cfg, (index, safe, _i64(n), _i64(bound), _i32(int(bool(allow_negative))),
                              _i32(int(has_ignore)), _i64(ignore if has_ignore else 0), _i32(_DEVICE_ERROR_IDS[op]),
                              _i32(dim), device_error_buffer()))
    return safe


# ------------------------------------------------------------------------------------------------
# pooling (NCHW float32; planes = N*C; output sizes come from the caller, which applies ceil_mode)
def pool2d_output_size(H, W, kernel, stride, padding, dilation=1, ceil_mode=False):
    """PyTorch's pooling output size (with its ceil_mode rule: the last window must start inside
    the input or the left padding)."""
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = (_pair(kernel, "kernel"), _pair(stride, "stride"),
                                              _pair(padding, "padding"), _pair(dilation, "dilation"))

    def one(L, k, s, p, d):
        num = L + 2 * p - d * (k - 1) - 1
        o = (-(-num // s) if ceil_mode else num // s) + 1
        if ceil_mode and (o - 1) * s >= L + p:
            o -= 1
        return o

    return one(H, kh, sh, ph, dh), one(W, kw, sw, pw, dw)


def _pool_args(x_shape, out_size):
    N, C, H, W = x_shape
    OH, OW = out_size
    planes = N * C
    for v, what in ((planes, "N*C"), (H * W, "H*W"), (planes * OH * OW, "N*C*OH*OW"), (planes * H * W, "numel")):
        _i32(v, what)
    return planes, H, W, OH, OW


def max_pool2d_forward(x, kernel, stride, padding, dilation, out_size):
    """Max pooling of x (N, C, H, W) float32; out_size = (OH, OW) from pool2d_output_size.
    Returns (y, indices): y (N, C, OH, OW) float32, indices int64 flat h*W + w within each plane
    (PyTorch's convention).  NaN propagates (its index is returned)."""
    cp = _cp()
    x = _f32c(x, "x")
    planes, H, W, OH, OW = _pool_args(x.shape, out_size)
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = (_pair(kernel, "kernel"), _pair(stride, "stride"),
                                              _pair(padding, "padding"), _pair(dilation, "dilation"))
    y = cp.empty((x.shape[0], x.shape[1], OH, OW), dtype=np.float32)
    idx = cp.empty(y.shape, dtype=np.int64)
    if y.size:
        cfg = kb.launch_config("max_pool2d", n=y.size, num_sms=_device_info()[1])
        _launch("pooling.cu", cfg, (x, y, idx, *(_i32(v) for v in (planes, H, W, OH, OW, kh, kw, sh, sw, ph, pw,
                                                                   dh, dw))))
    return y, idx


def max_pool2d_backward(dy, indices, input_shape):
    """dx (input_shape, float32) for max pooling: dy and indices (N, C, OH, OW) from the forward.
    Overlapping windows add with atomicAdd (summation order may vary)."""
    cp = _cp()
    dy, indices = _f32c(dy, "dy"), _i64c(indices, "indices")
    if dy.shape != indices.shape:
        raise ValueError(f"max_pool2d backward: dy {dy.shape} vs indices {indices.shape}")
    planes, H, W, OH, OW = _pool_args(tuple(input_shape), dy.shape[2:])
    dx = cp.zeros(tuple(input_shape), dtype=np.float32)
    if dy.size and dx.size:
        cfg = kb.launch_config("max_pool2d_bwd", n=dy.size, num_sms=_device_info()[1])
        _launch("pooling.cu", cfg, (dy, indices, dx, *(_i32(v) for v in (planes, H, W, OH, OW))))
    return dx


def avg_pool2d_forward(x, kernel, stride, padding, out_size, count_include_pad=True, divisor_override=None):
    """Average pooling of x (N, C, H, W) float32 with PyTorch's divisor rules (count_include_pad,
    divisor_override; windows clipped at H + padding for ceil_mode).  Returns (N, C, OH, OW)."""
    cp = _cp()
    x = _f32c(x, "x")
    planes, H, W, OH, OW = _pool_args(x.shape, out_size)
    (kh, kw), (sh, sw), (ph, pw) = _pair(kernel, "kernel"), _pair(stride, "stride"), _pair(padding, "padding")
    y = cp.empty((x.shape[0], x.shape[1], OH, OW), dtype=np.float32)
    if y.size:
        cfg = kb.launch_config("avg_pool2d", n=y.size, num_sms=_device_info()[1])
        _launch("pooling.cu", cfg, (x, y, *(_i32(v) for v in (planes, H, W, OH, OW, kh, kw, sh, sw, ph, pw,
                                                              int(bool(count_include_pad)),
                                                              int(divisor_override or 0)))))
    return y


def avg_pool2d_backward(dy, input_shape, kernel, stride, padding, count_include_pad=True, divisor_override=None):
    """dx (input_shape) for avg_pool2d_forward with the same arguments; dy is (N, C, OH, OW).
    Deterministic (each input element gathers from the windows that cover it)."""
    cp = _cp()
    dy = _f32c(dy, "dy")
    planes, H, W, OH, OW = _pool_args(tuple(input_shape), dy.shape[2:])
    (kh, kw), (sh, sw), (ph, pw) = _pair(kernel, "kernel"), _pair(stride, "stride"), _pair(padding, "padding")
    dx = cp.empty(tuple(input_shape), dtype=np.float32)
    if dx.size:
        if dy.size == 0:
            dx.fill(0)
            return dx
        cfg = kb.launch_config("avg_pool2d_bwd", n=dx.size, num_sms=_device_info()[1])
        _launch("pooling.cu", cfg, (dy, dx, *(_i32(v) for v in (planes, H, W, OH, OW, kh, kw, sh, sw, ph, pw,
                                                               int(bool(count_include_pad)),
                                                               int(divisor_override or 0)))))
    return dx


# ------------------------------------------------------------------------------------------------
# fused optimizer steps (in place on C-contiguous float32 buffers of equal size)
def _same_size_f32(name_arrays):
    n = None
    for name, a in name_arrays:
        if a.dtype != np.float32 or not a.flags.c_contiguous:
            raise ValueError(f"{name} must be a C-contiguous float32 array (updated in place)")
        if n is None:
            n = a.size
        elif a.size != n:
            raise ValueError(f"{name} has {a.size} elements, expected {n}")
    return n


def adam_step(param, grad, exp_avg, exp_avg_sq, *, step, lr, beta1=0.9, beta2=0.999, eps=1e-8,
              weight_decay=0.0, decoupled=False, amsgrad=False, max_exp_avg_sq=None, maximize=False):
    """One torch.optim.Adam (decoupled=False) / AdamW (decoupled=True) step, in place.

    `step` is the step number after incrementing (1 on the first call); the bias corrections
    1 - beta1**step and sqrt(1 - beta2**step) are computed here on the host in float64.
    amsgrad needs max_exp_avg_sq (updated in place).  Matches PyTorch's single-tensor formulas.
    """
    arrays = [("param", param), ("grad", grad), ("exp_avg", exp_avg), ("exp_avg_sq", exp_avg_sq)]
    if amsgrad:
        if max_exp_avg_sq is None:
            raise ValueError("adam_step: amsgrad=True needs max_exp_avg_sq")
        arrays.append(("max_exp_avg_sq", max_exp_avg_sq))
    n = _same_size_f32(arrays)
    if n == 0:
        return param
    bc1 = 1.0 - beta1 ** step
    bc2_sqrt = math.sqrt(1.0 - beta2 ** step)
    cfg = kb.launch_config("adam", n=n, num_sms=_device_info()[1])
    _launch("optim.cu", cfg, (param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq if amsgrad else exp_avg_sq,
                               _i64(n), _f32(lr), _f32(beta1), _f32(beta2), _f32(eps), _f32(weight_decay),
                               _f32(lr / bc1), _f32(bc2_sqrt), _i32(int(bool(decoupled))),
                               _i32(int(bool(amsgrad))), _i32(int(bool(maximize)))))
    return param


def sgd_step(param, grad, momentum_buffer=None, *, lr, momentum=0.0, dampening=0.0, weight_decay=0.0,
             nesterov=False, maximize=False, first_step=False):
    """One torch.optim.SGD step, in place.  With momentum != 0, momentum_buffer (same size) is
    updated in place; first_step=True initialises it to the gradient, as PyTorch does when the
    buffer does not exist yet."""
    arrays = [("param", param), ("grad", grad)]
    if momentum != 0:
        if momentum_buffer is None:
            raise ValueError("sgd_step: momentum != 0 needs momentum_buffer")
        arrays.append(("momentum_buffer", momentum_buffer))
    n = _same_size_f32(arrays)
    if n == 0:
        return param
    cfg = kb.launch_config("sgd", n=n, num_sms=_device_info()[1])
    _launch("optim.cu", cfg, (param, grad, momentum_buffer if momentum != 0 else param, _i64(n), _f32(lr),
                               _f32(momentum), _f32(dampening), _f32(weight_decay), _i32(int(bool(nesterov))),
                               _i32(int(bool(maximize))), _i32(int(bool(first_step)))))
    return param


def optim_step(op, param, grad, state, scalars, flags):
    """One fused step of `op` (adagrad_step_ ... asgd_step_: kernel_build.OPTIM_STEP_FUNCTORS), in
    place on param and the 1 or 2 `state` arrays.  `scalars` (at most 12) and `flags` (bools; bit i
    of the kernel's int) as backends/optim_portable.STEPS[op].scalars returns them."""
    arrays = [("param", param), ("grad", grad)] + [(f"{op} state {i}", a) for i, a in enumerate(state)]
    n = _same_size_f32(arrays)
    if not 1 <= len(state) <= 2 or len(scalars) > kb.OPTIM_STEP_SCALARS:
        raise ValueError(f"optim_step: {op} takes 1 or 2 state arrays and at most {kb.OPTIM_STEP_SCALARS} "
                         f"scalars, got {len(state)} and {len(scalars)}")
    if n == 0:
        return param
    h = [_f32(v) for v in scalars] + [_f32(0.0)] * (kb.OPTIM_STEP_SCALARS - len(scalars))
    bits = sum(1 << i for i, f in enumerate(flags) if f)
    cfg = kb.launch_config("optim_step", op=op, n=n, num_sms=_device_info()[1])
    _launch("optim.cu", cfg, (param, grad, state[0], state[-1], _i64(n), *h, _i32(bits)))
    return param


# ------------------------------------------------------------------------------------------------
# recurrent cells (rnn.cu): one pointwise pass per LSTM / GRU step, float32 or float64.  Every matrix
# argument is an (n, k*H) view with unit column stride read or written in place (a row slice of the
# sequence buffers), its row stride passed as the kernel's ld.
_RNN_DTYPES = {np.dtype(np.float32): "float32", np.dtype(np.float64): "float64"}


def _rnn_mat(kernel, name, a, dtype, n, cols):
    """(a, row stride) of an (n, >= cols) matrix of `dtype` with unit column stride (no copy: outputs
    are written through these views)."""
    if a.dtype != dtype:
        raise TypeError(f"{kernel}: {name} must be {dtype}, got {a.dtype}")
    if a.ndim != 2 or a.shape[0] != n or a.shape[1] < cols:
        raise ValueError(f"{kernel}: {name} must have shape ({n}, >= {cols}), got {tuple(a.shape)}")
    es = a.itemsize
    sr, sc = a.strides
    if n > 0 and (sc != es or sr % es or sr < 0 or (n > 1 and sr < cols * es)):
        raise ValueError(f"{kernel}: {name} must be rows with unit column stride, got strides {a.strides}")
    return a, _i64(sr // es if n > 1 else cols)


def _rnn_launch(kernel, n, H, dtype, args):
    cfg = kb.launch_config(kernel, rows=n, hidden=H, dtype=_RNN_DTYPES[dtype], num_sms=_device_info()[1])
    _launch("rnn.cu", cfg, (*args, _i64(n), _i32(H, "hidden size")))


def _rnn_dims(kernel, state, what):
    if state.dtype not in _RNN_DTYPES or state.ndim != 2:
        raise TypeError(f"{kernel}: {what} must be a 2-D float32 / float64 array, got {state.dtype} "
                        f"{tuple(state.shape)}")
    return state.shape[0], state.shape[1], state.dtype


def lstm_cell_forward(gx, gh, c, c_new, h, acts, y=None, save_c=False):
    """One LSTM step's pointwise pass, gates = gx + gh (n, 4H; order i, f, g, o): writes c_new and h (n, H)
    and acts (n, >= 5H): i, f, g, o, tanh(c_new), plus c_new at column 5H when save_c; h also to y when
    given.  c and c_new may be the same array (in-place state update)."""
    k = "lstm_cell_forward"
    n, H, dt = _rnn_dims(k, c, "c")
    m = [_rnn_mat(k, nm, a, dt, n, w) for nm, a, w in (("gx", gx, 4 * H), ("gh", gh, 4 * H), ("c", c, H),
                                                        ("c_new", c_new, H), ("h", h, H),
                                                        ("y", h if y is None else y, H),
                                                        ("acts", acts, (6 if save_c else 5) * H))]
    _rnn_launch("lstm_cell_fwd", n, H, dt, (*m[0], *m[1], *m[2], *m[3], *m[4], *m[5], _i32(y is not None),
                                            *m[6], _i32(bool(save_c))))


def lstm_cell_backward(dh, gy, dc, acts, c_prev, dgates, dc_prev):
    """One LSTM step backward: dh (+ gy) and dc at the outputs (each may be None: zero) -> dgates (n, 4H)
    and dc_prev (n, H), from the forward's acts and c_prev.  dc and dc_prev may be the same array."""
    k = "lstm_cell_backward"
    n, H, dt = _rnn_dims(k, c_prev, "c_prev")
    m = [_rnn_mat(k, nm, c_prev if a is None else a, dt, n, w)
         for nm, a, w in (("dh", dh, H), ("gy", gy, H), ("dc", dc, H), ("acts", acts, 5 * H),
                          ("c_prev", c_prev, H), ("dgates", dgates, 4 * H), ("dc_prev", dc_prev, H))]
    _rnn_launch("lstm_cell_bwd", n, H, dt, (*m[0], _i32(dh is not None), *m[1], _i32(gy is not None), *m[2],
                                            _i32(dc is not None), *m[3], *m[4], *m[5], *m[6]))


def gru_cell_forward(gx, gh, b_hh, h, h_new, acts, y=None):
    """One GRU step's pointwise pass: gx, gh (n, 3H; order r, z, n; gh without b_hh, added here when given)
    and h -> h_new (n, H; may be h itself) and acts (n, >= 4H): r, z, n and the n gate's hidden part; h_new
    also to y when given."""
    k = "gru_cell_forward"
    n, H, dt = _rnn_dims(k, h, "h")
    if b_hh is not None and (b_hh.dtype != dt or b_hh.shape != (3 * H,) or not b_hh.flags.c_contiguous):
        raise ValueError(f"{k}: b_hh must be a contiguous {dt} array of shape ({3 * H},), got {b_hh.dtype} "
                         f"{tuple(b_hh.shape)}")
    m = [_rnn_mat(k, nm, a, dt, n, w) for nm, a, w in (("gx", gx, 3 * H), ("gh", gh, 3 * H), ("h", h, H),
                                                        ("h_new", h_new, H), ("y", h if y is None else y, H),
                                                        ("acts", acts, 4 * H))]
    _rnn_launch("gru_cell_fwd", n, H, dt, (*m[0], *m[1], gh if b_hh is None else b_hh, _i32(b_hh is not None),
                                           *m[2], *m[3], *m[4], _i32(y is not None), *m[5]))


def gru_cell_backward(dh, gy, acts, h_prev, dgx, dgh, dh_direct):
    """One GRU step backward: dh (+ gy when given) at the output -> dgx, dgh (n, 3H) and dh_direct = z * dh
    (n, H; may be dh itself)."""
    k = "gru_cell_backward"
    n, H, dt = _rnn_dims(k, h_prev, "h_prev")
    m = [_rnn_mat(k, nm, dh if a is None else a, dt, n, w)
         for nm, a, w in (("dh", dh, H), ("gy", gy, H), ("acts", acts, 4 * H), ("h_prev", h_prev, H),
                          ("dgx", dgx, 3 * H), ("dgh", dgh, 3 * H), ("dh_direct", dh_direct, H))]
    _rnn_launch("gru_cell_bwd", n, H, dt, (*m[0], *m[1], _i32(gy is not None), *m[2], *m[3], *m[4], *m[5],
                                           *m[6]))


__all__ = [
    "lstm_cell_forward", "lstm_cell_backward", "gru_cell_forward", "gru_cell_backward",
    "sgemm", "conv2d_forward", "conv2d_backward_input", "conv2d_backward_weight", "conv2d_output_size",
    "reduce", "reduce_all", "softmax", "softmax_backward", "logsumexp", "cross_entropy_forward",
    "cross_entropy_backward", "pool2d_output_size", "max_pool2d_forward", "max_pool2d_backward",
    "avg_pool2d_forward", "avg_pool2d_backward", "adam_step", "sgd_step", "optim_step", "check_index", "device_error_buffer",
    "take_device_error", "device_error_message", "DEVICE_ERROR_OPS",
]
