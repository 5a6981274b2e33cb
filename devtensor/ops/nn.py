"""Fused nn primitives: conv2d (+ its two backward ops), max/avg pooling (+ backward ops),
softmax, log_softmax and row-wise cross-entropy. Each has a fused kernel per backend; every
backward rule is still written in Tensor ops (calling the backward ops), and the backward ops
have backward rules of their own, so double backward works through conv and pooling."""
from __future__ import annotations

from ..dispatch import KEEP, call, defop
from . import meta_rules as M
from . import reference as R
from . import samples as S
from ..geometry import (check_non_negative, check_pool2d, check_positive, conv2d_out_hw, pair,
                       pool2d_out_hw)

_CONV = ("stride", "padding", "dilation", "groups")


# ---- meta rules ------------------------------------------------------------------------------
def _conv_geometry(stride, padding, dilation, groups):
    s, p, d = pair(stride, "stride"), pair(padding, "padding"), pair(dilation, "dilation")
    if s[0] <= 0 or s[1] <= 0:
        raise RuntimeError(f"non-positive stride is not supported, got stride={s}")
    if p[0] < 0 or p[1] < 0:
        raise RuntimeError(f"negative padding is not supported, got padding={p}")
    if d[0] <= 0 or d[1] <= 0:
        raise RuntimeError(f"dilation should be greater than zero, got dilation={d}")
    if not isinstance(groups, int) or isinstance(groups, bool) or groups < 1:
        raise RuntimeError(f"non-positive groups is not supported, got groups={groups!r}")
    return s, p, d


def _conv_shapes(x_shape, w_shape, stride, padding, dilation, groups):
    """Check an input / weight pair of a 2-D convolution; return the output shape."""
    s, p, d = _conv_geometry(stride, padding, dilation, groups)
    if len(x_shape) != 4 or len(w_shape) != 4:
        raise RuntimeError(f"expected a 4-D input (N, C, H, W) and a 4-D weight (out_channels, in_channels/groups, "
                           f"kH, kW), got input {list(x_shape)} and weight {list(w_shape)}")
    n, c, h, w = x_shape
    k, cg, kh, kw = w_shape
    if k == 0:
        raise RuntimeError(f"expected weight to be at least 1 at dimension 0, but got weight of size {list(w_shape)}")
    if k % groups or cg * groups != c or cg == 0:
        raise RuntimeError(f"expected input {list(x_shape)} to have {cg * groups} channels (weight {list(w_shape)}, "
                           f"groups={groups}), but got {c} channels")
    if kh <= 0 or kw <= 0:
        raise RuntimeError(f"weight {list(w_shape)} has an empty kernel")
    oh, ow = conv2d_out_hw((h, w), (kh, kw), s, p, d)
    if oh <= 0 or ow <= 0:
        raise RuntimeError(f"kernel size {kh}x{kw} (dilation {d}) is larger than the padded input "
                           f"{h + 2 * p[0]}x{w + 2 * p[1]}: calculated output size {oh}x{ow} is too small")
    return (n, k, oh, ow)


def _same_dtype(*arrays):
    dts = {a.dtype for a in arrays if a is not None}
    if len(dts) > 1:
        raise TypeError("expected input, weight and bias of one dtype, got " + ", ".join(sorted(map(str, dts))))


def _conv2d_meta(x, w, b, stride, padding, dilation, groups):
    _same_dtype(x, w, b)
    out = _conv_shapes(tuple(x.shape), tuple(w.shape), stride, padding, dilation, groups)
    if b is not None and tuple(b.shape) != (out[1],):
        raise RuntimeError(f"bias must have shape ({out[1]},) (one value per output channel), got {list(b.shape)}")
    return out, x.dtype


def _conv2d_bwd_input_meta(gy, w, stride, padding, dilation, groups, x_shape):
    _same_dtype(gy, w)
    out = _conv_shapes(tuple(x_shape), tuple(w.shape), stride, padding, dilation, groups)
    if tuple(gy.shape) != out:
        raise RuntimeError(f"grad_output has shape {list(gy.shape)}, expected {list(out)}")
    return tuple(x_shape), gy.dtype


def _conv2d_bwd_weight_meta(gy, x, stride, padding, dilation, groups, w_shape):
    _same_dtype(gy, x)
    out = _conv_shapes(tuple(x.shape), tuple(w_shape), stride, padding, dilation, groups)
    if tuple(gy.shape) != out:
        raise RuntimeError(f"grad_output has shape {list(gy.shape)}, expected {list(out)}")
    return tuple(w_shape), gy.dtype


def _pool_out_shape(x_shape, kernel_size, stride, padding, dilation, ceil_mode):
    k, s, p, d = (pair(kernel_size, "kernel_size"), pair(stride, "stride"), pair(padding, "padding"),
                  pair(dilation, "dilation"))
    check_positive("kernel_size", k)
    check_positive("stride", s)
    check_non_negative("padding", p)
    check_positive("dilation", d)
    check_pool2d(k, s, p, d)
    for name, v in (("kernel_size", k), ("stride", s), ("padding", p), ("dilation", d)):
        if max(v) >= 2 ** 31:
            raise RuntimeError(f"{name}={v} is too large (the kernels index with 32-bit window arithmetic)")
    if len(x_shape) != 4:
        raise RuntimeError(f"expected a 4-D input (N, C, H, W), got shape {list(x_shape)}")
    oh, ow = pool2d_out_hw(x_shape[2:], k, s, p, d, bool(ceil_mode))
    if oh <= 0 or ow <= 0:
        raise RuntimeError(f"Given input size: ({x_shape[1]}x{x_shape[2]}x{x_shape[3]}). Calculated output size: "
                           f"({x_shape[1]}x{oh}x{ow}). Output size is too small")
    return tuple(x_shape[:2]) + (oh, ow)


def _floating(x, what="input"):
    if x.dtype.kind not in "fV":
        raise TypeError(f"expected a floating point {what}, got {x.dtype}")


def _max_pool_meta(x, kernel_size, stride, padding, dilation, ceil_mode):
    _floating(x)
    out = _pool_out_shape(tuple(x.shape), kernel_size, stride, padding, dilation, ceil_mode)
    return (out, x.dtype), (out, M.INT64)


def _max_pool_bwd_meta(gy, indices, x_shape):
    M.same_shapes("grad_output", gy, "indices", indices)
    if len(x_shape) != 4 or tuple(x_shape[:2]) != tuple(gy.shape[:2]):
        raise RuntimeError(f"grad_output {list(gy.shape)} does not belong to an input of shape {list(x_shape)}")
    return tuple(x_shape), gy.dtype


def _avg_pool_meta(x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override):
    if divisor_override is not None and divisor_override == 0:
        raise RuntimeError("divisor must be not zero")
    if divisor_override is not None and not -2 ** 31 < divisor_override < 2 ** 31:
        raise RuntimeError(f"divisor_override={divisor_override} is out of the kernels' 32-bit range")
    _floating(x)
    return _pool_out_shape(tuple(x.shape), kernel_size, stride, padding, 1, ceil_mode), x.dtype


def _avg_pool_bwd_meta(gy, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override, x_shape):
    out = _avg_pool_meta(_Spec(x_shape, gy.dtype), kernel_size, stride, padding, ceil_mode, count_include_pad,
                         divisor_override)[0]
    if tuple(gy.shape) != out:
        raise RuntimeError(f"grad_output has shape {list(gy.shape)}, expected {list(out)}")
    return tuple(x_shape), gy.dtype


class _Spec:
    __slots__ = ("shape", "dtype")

    def __init__(self, shape, dtype):
        self.shape, self.dtype = tuple(shape), dtype


def _softmax_meta(x, dim):
    n = max(len(x.shape), 1)
    if not 0 <= dim < n:
        raise IndexError(f"dimension out of range (expected to be in range of [{-n}, {n - 1}], but got {dim})")
    if x.dtype.kind not in "fV":
        raise TypeError(f"expected a floating point input, got {x.dtype}")
    return tuple(x.shape), x.dtype


def _ce_rows_shapes(logits, target):
    ls, ts = logits.shape, target.shape
    if len(ls) != 2:
        raise RuntimeError(f"expected logits of shape (N, C), got {list(logits.shape)}")
    n = ls[0]
    if len(ts) != 1 or ts[0] != n:
        raise RuntimeError(f"expected target of shape ({n},) for logits {list(logits.shape)}, got {list(target.shape)}")
    if target.dtype.kind not in "iu":
        raise TypeError(f"expected an integer target (class indices), got {target.dtype}")
    if logits.dtype.kind not in "fV":
        raise TypeError(f"expected floating point logits, got {logits.dtype}")
    return n


def _ce_rows_meta(logits, target, ignore_index, label_smoothing):
    n = _ce_rows_shapes(logits, target)
    return ((n,), logits.dtype), ((n,), logits.dtype)


def _ce_mean_meta(logits, target, ignore_index, label_smoothing):
    n = _ce_rows_shapes(logits, target)
    return ((), logits.dtype), ((n,), logits.dtype), ((), logits.dtype)


def _ce_rows_bwd_meta(g, logits, lse, target, ignore_index, label_smoothing):
    n = _ce_rows_shapes(logits, target)
    if tuple(g.shape) not in ((), (n,)) or tuple(lse.shape) != (n,):
        raise RuntimeError(f"grad {list(g.shape)} and lse {list(lse.shape)} must be () or ({n},) and ({n},)")
    return tuple(logits.shape), logits.dtype


def _conv_attrs(c):
    return {k: c.attrs[k] for k in _CONV}


def _conv2d_backward(c, g):
    a = _conv_attrs(c)
    x, w = c.x, c.w
    gx = call(conv2d_backward_input, (g, w), {**a, "x_shape": tuple(c.in_meta[0][0])}) \
        if c.needs_input_grad(0) else None  # the first layer's input needs none: skip a whole GEMM
    gw = call(conv2d_backward_weight, (g, x), {**a, "w_shape": tuple(c.in_meta[1][0])}) \
        if c.needs_input_grad(1) else None
    gb = g.sum((0, 2, 3)) if c.needs_input_grad(2) else None
    return gx, gw, gb


def _bwd_input_backward(c, gg):
    # gx = conv_transpose(gy, w): linear in both, so its adjoints are a conv and a weight-grad
    a = _conv_attrs(c)
    g_gy = call(conv2d, (gg, c.w, None), a)
    g_w = call(conv2d_backward_weight, (c.gy, gg), {**a, "w_shape": tuple(c.in_meta[1][0])})
    return g_gy, g_w


def _bwd_weight_backward(c, gg):
    a = _conv_attrs(c)
    g_gy = call(conv2d, (c.x, gg, None), a)
    g_x = call(conv2d_backward_input, (c.gy, gg), {**a, "x_shape": tuple(c.in_meta[1][0])})
    return g_gy, g_x


conv2d = defop("conv2d", ("x", "w", "b"), rule=KEEP, meta=_conv2d_meta, check=True, save=("x", "w"), backward=_conv2d_backward,
               ref=R.conv2d, samples=S.conv2d())
conv2d_backward_input = defop("conv2d_backward_input", ("gy", "w"), rule=KEEP, meta=_conv2d_bwd_input_meta,
                              check=True, save=("gy", "w"),
                              backward=_bwd_input_backward)
conv2d_backward_weight = defop("conv2d_backward_weight", ("gy", "x"), rule=KEEP, meta=_conv2d_bwd_weight_meta,
                               check=True, save=("gy", "x"),
                               backward=_bwd_weight_backward)

_POOL = ("kernel_size", "stride", "padding", "dilation", "ceil_mode")
_AVG = ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad", "divisor_override")


def _max_pool_backward(c, g, gi):
    return call(max_pool2d_backward, (g, c.out1), {"x_shape": tuple(c.in_meta[0][0])})


def _max_pool_bwd_backward(c, gg):
    # the adjoint of scattering gy to the argmax positions is gathering gg from them
    idx = c.indices
    n, ch = idx.shape[0], idx.shape[1]
    flat = gg.reshape(n, ch, -1)
    return flat.gather(2, idx.reshape(n, ch, -1)).reshape(tuple(idx.shape)), None


max_pool2d = defop("max_pool2d", rule=KEEP, meta=_max_pool_meta, check=True, nout=2, diff_outputs=(0,), save=("out1",),
                   backward=_max_pool_backward, ref=R.max_pool2d, samples=S.max_pool2d())
max_pool2d_backward = defop("max_pool2d_backward", ("gy", "indices"), rule=KEEP, meta=_max_pool_bwd_meta,
                            check=True, save=("indices",),
                            grad_inputs=(0,), backward=_max_pool_bwd_backward)


def _avg_attrs(c):
    return {k: c.attrs[k] for k in _AVG}


avg_pool2d = defop("avg_pool2d", rule=KEEP, meta=_avg_pool_meta, check=True, backward=lambda c, g: call(
    avg_pool2d_backward, (g,), {**_avg_attrs(c), "x_shape": tuple(c.in_meta[0][0])}),
    ref=R.avg_pool2d, samples=S.avg_pool2d())
avg_pool2d_backward = defop("avg_pool2d_backward", ("gy",), rule=KEEP, meta=_avg_pool_bwd_meta, check=True,
                            backward=lambda c, gg: call(avg_pool2d, (gg,), _avg_attrs(c)))


def _softmax_backward(c, g):
    y = c.out
    return y * (g - (g * y).sum(c.dim, keepdim=True))


def _log_softmax_backward(c, g):
    return g - c.out.exp() * g.sum(c.dim, keepdim=True)


softmax = defop("softmax", rule=KEEP, meta=_softmax_meta, check=True, save=("out",), backward=_softmax_backward, ref=R.softmax,
                samples=S.softmax())
log_softmax = defop("log_softmax", rule=KEEP, meta=_softmax_meta, check=True, save=("out",), backward=_log_softmax_backward,
                    ref=R.log_softmax, samples=S.softmax())


def _ce_backward(c, g, g_lse):
    return call(cross_entropy_rows_backward, (g, c.logits, c.out1, c.target),
                {"ignore_index": c.ignore_index, "label_smoothing": c.label_smoothing}), None


def _ce_double_backward(c, gg):
    raise NotImplementedError("cross_entropy: double backward through the fused kernel is not supported; "
                              "compute the loss as nll_loss(log_softmax(x), target) to differentiate twice")


cross_entropy_rows = defop("cross_entropy_rows", ("logits", "target"), rule=KEEP, meta=_ce_rows_meta, check=True, nout=2, diff_outputs=(0,),
                           save=("logits", "target", "out1"), grad_inputs=(0,), backward=_ce_backward,
                           ref=R.cross_entropy_rows, samples=S.cross_entropy())


def _ce_mean_backward(c, g, g_lse, g_count):
    return call(cross_entropy_rows_backward, (g / c.out2, c.logits, c.out1, c.target),
                {"ignore_index": c.ignore_index, "label_smoothing": c.label_smoothing}), None


# reduction='mean', the usual training loss, as one op: the row count (the divisor) and, on cpu, the
# target range check come out of the loss pass; the backward is one kernel with g / count for every
# row. Four op calls fewer per step than rows + sum + div (plus their backward).
cross_entropy_mean = defop("cross_entropy_mean", ("logits", "target"), rule=KEEP, meta=_ce_mean_meta, check=True, nout=3, diff_outputs=(0,),
                           save=("logits", "target", "out1", "out2"), grad_inputs=(0,),
                           backward=_ce_mean_backward, ref=R.cross_entropy_mean, samples=S.cross_entropy(),
                           shown_as="cross_entropy")
cross_entropy_rows_backward = defop("cross_entropy_rows_backward", ("g", "logits", "lse", "target"),
                                    rule=KEEP, meta=_ce_rows_bwd_meta, check=True, backward=_ce_double_backward)
