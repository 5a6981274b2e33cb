"""Fused nn primitives: conv2d (+ its two backward ops), max/avg pooling (+ backward ops),
softmax, log_softmax and row-wise cross-entropy. Each has a fused kernel per backend; every
backward rule is still written in Tensor ops (calling the backward ops), and the backward ops
have backward rules of their own, so double backward works through conv and pooling."""
from __future__ import annotations

from ..dispatch import CUSTOM, call, defop
from . import reference as R
from . import samples as S

_CONV = ("stride", "padding", "dilation", "groups")


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


conv2d = defop("conv2d", ("x", "w", "b"), rule=CUSTOM, save=("x", "w"), backward=_conv2d_backward,
               ref=R.conv2d, samples=S.conv2d())
conv2d_backward_input = defop("conv2d_backward_input", ("gy", "w"), rule=CUSTOM, save=("gy", "w"),
                              backward=_bwd_input_backward)
conv2d_backward_weight = defop("conv2d_backward_weight", ("gy", "x"), rule=CUSTOM, save=("gy", "x"),
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


max_pool2d = defop("max_pool2d", rule=CUSTOM, nout=2, diff_outputs=(0,), save=("out1",),
                   backward=_max_pool_backward, ref=R.max_pool2d, samples=S.max_pool2d())
max_pool2d_backward = defop("max_pool2d_backward", ("gy", "indices"), rule=CUSTOM, save=("indices",),
                            grad_inputs=(0,), backward=_max_pool_bwd_backward)


def _avg_attrs(c):
    return {k: c.attrs[k] for k in _AVG}


avg_pool2d = defop("avg_pool2d", rule=CUSTOM, backward=lambda c, g: call(
    avg_pool2d_backward, (g,), {**_avg_attrs(c), "x_shape": tuple(c.in_meta[0][0])}),
    ref=R.avg_pool2d, samples=S.avg_pool2d())
avg_pool2d_backward = defop("avg_pool2d_backward", ("gy",), rule=CUSTOM,
                            backward=lambda c, gg: call(avg_pool2d, (gg,), _avg_attrs(c)))


def _softmax_backward(c, g):
    y = c.out
    return y * (g - (g * y).sum(c.dim, keepdim=True))


def _log_softmax_backward(c, g):
    return g - c.out.exp() * g.sum(c.dim, keepdim=True)


softmax = defop("softmax", rule=CUSTOM, save=("out",), backward=_softmax_backward, ref=R.softmax,
                samples=S.softmax())
log_softmax = defop("log_softmax", rule=CUSTOM, save=("out",), backward=_log_softmax_backward,
                    ref=R.log_softmax, samples=S.softmax())


def _ce_backward(c, g, g_lse):
    return call(cross_entropy_rows_backward, (g, c.logits, c.out1, c.target),
                {"ignore_index": c.ignore_index, "label_smoothing": c.label_smoothing}), None


def _ce_double_backward(c, gg):
    raise NotImplementedError("cross_entropy: double backward through the fused kernel is not supported; "
                              "compute the loss as nll_loss(log_softmax(x), target) to differentiate twice")


cross_entropy_rows = defop("cross_entropy_rows", ("logits", "target"), rule=CUSTOM, nout=2, diff_outputs=(0,),
                           save=("logits", "target", "out1"), grad_inputs=(0,), backward=_ce_backward,
                           ref=R.cross_entropy_rows, samples=S.cross_entropy())


def _ce_mean_backward(c, g, g_lse, g_count):
    return call(cross_entropy_rows_backward, (g / c.out2, c.logits, c.out1, c.target),
                {"ignore_index": c.ignore_index, "label_smoothing": c.label_smoothing}), None


# reduction='mean', the usual training loss, as one op: the row count (the divisor) and, on cpu, the
# target range check come out of the loss pass; the backward is one kernel with g / count for every
# row. Four op calls fewer per step than rows + sum + div (plus their backward).
cross_entropy_mean = defop("cross_entropy_mean", ("logits", "target"), rule=CUSTOM, nout=3, diff_outputs=(0,),
                           save=("logits", "target", "out1", "out2"), grad_inputs=(0,),
                           backward=_ce_mean_backward, ref=R.cross_entropy_mean, samples=S.cross_entropy(),
                           shown_as="cross_entropy")
cross_entropy_rows_backward = defop("cross_entropy_rows_backward", ("g", "logits", "lse", "target"),
                                    rule=CUSTOM, backward=_ce_double_backward)
