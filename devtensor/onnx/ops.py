"""One converter per op of the table: captured node -> ONNX nodes (via Ctx in build.py).

CONVERTERS maps each exportable op (the table's key, dispatch.OPS) to its converter; UNSUPPORTED
maps the others to why not and what to use instead. tests/test_onnx_export.py checks that every op
of the table is in exactly one of them, and runs every exportable op's samples through onnxruntime.

Dtypes: the capture records each op's arguments before dispatch's dtype rule ran, so converters
cast to the op's compute dtype themselves (the output's dtype for arithmetic, the promoted input
dtype for comparisons); a Python number becomes a 0-d constant of that dtype.

Its size: one converter per op of the table (about a hundred), each a few lines; splitting them by
family would scatter the CONVERTERS table the completeness test reads.
"""
from __future__ import annotations

import math

import numpy as np

from .. import dtypes as _dt
from ..graph import Ref
from .build import INT64_MAX, INT64_MIN
from .common import Dim, Expr, any_dim, is_dim
from .unsupported_extra import UNSUPPORTED_EXTRA

CONVERTERS: dict = {}
_DYNAMIC: set = set()  # converters that accept Dim attributes (sizes computed in the graph)

_BACKWARD = ("a backward op: export captures the forward only (eval mode, no_grad)",
             "export the forward; run gradients with devtensor (or onnxruntime-training)")
_STEP = ("an optimizer step: export captures inference, not training", "export the model after training")
UNSUPPORTED: dict = {
    "index_backward": _BACKWARD,
    "conv2d_backward_weight": _BACKWARD,
    "max_pool2d_backward": _BACKWARD,
    "avg_pool2d_backward": _BACKWARD,
    "cross_entropy_rows_backward": _BACKWARD,
    "adam_step_": _STEP,
    "sgd_step_": _STEP,
    "rmsprop_step_": _STEP,
    **{n: _STEP for n in ("adagrad_step_", "adadelta_step_", "adamax_step_", "nadam_step_", "radam_step_",
                          "rprop_step_", "asgd_step_")},
    "lstm_cell_backward": _BACKWARD, "lstm_sequence_backward": _BACKWARD, "rnn_sequence_backward": _BACKWARD,
    # sampling from computed parameters (ONNX's Bernoulli / Multinomial draw differently and take no generator)
    **{n: ("a draw from a distribution the model computes: not exported",
           "export the probabilities (logits, rates, mean and std) and sample in the application")
       for n in ("multinomial", "bernoulli", "normal", "poisson")},
    **UNSUPPORTED_EXTRA,  # issue 18's ops (scans, sorting, special functions, linalg): onnx/unsupported_extra.py
}

# public names the error's "nearest alternative" may suggest for ops it does not know
PUBLIC_NAMES = ["where", "masked_fill", "gather", "cat", "reshape", "permute", "expand", "clamp", "softmax",
                "log_softmax", "linear", "matmul", "conv2d", "max_pool2d", "avg_pool2d", "sum", "mean", "amax",
                "amin", "argmax", "index_select", "embedding", "layer_norm", "batch_norm"]


def reg(*names, dynamic=False):
    def deco(f):
        for n in names:
            CONVERTERS[n] = f
            if dynamic:
                _DYNAMIC.add(n)
        return f

    return deco


def convert(ctx, node):
    if node.op == "@layer":
        return node.attrs["convert"](ctx, node)
    f = CONVERTERS.get(node.op)
    if f is None:
        if node.op in UNSUPPORTED:
            raise ctx.unsupported(*UNSUPPORTED[node.op])
        if node.op.startswith("@"):
            raise ctx.unsupported("a host call inside forward (an optimizer or hook running Python)",
                                  "keep training steps out of the exported forward")
        raise ctx.unsupported("no converter is registered for this op")
    if node.op not in _DYNAMIC and any_dim(node.attrs):
        bad = [k for k, v in node.attrs.items() if any_dim(v)]
        ctx.static(node.attrs[bad[0]], f"attribute {bad[0]}")
    f(ctx, node)


def _out_dtype(ctx, i=0):
    return ctx.values[ctx.node.outputs[i]].dtype


def _compute_dtype(ctx, args):
    """The dtype dispatch computes a comparison in: PyTorch's promotion over the arguments."""
    dims, zeros, scalars = [], [], []
    for a in args:
        if isinstance(a, Ref):
            d = _dt._NAMES[ctx.dtype(a)]
            (zeros if ctx.ndim(a) == 0 else dims).append(d)
        elif isinstance(a, np.generic):
            scalars.append(_dt._FROM_NP[np.dtype(type(a))])
        elif a is not None:
            scalars.append(_dt._scalar_dtype(a))
    return _dt.result_type_key(tuple(dims), tuple(zeros), tuple(scalars)).name


def _is_float(dtype):
    return _dt._NAMES[dtype].is_floating_point


def _i64(*v):
    return np.array(v, dtype=np.int64)


def _scalar(ctx, v, dtype):
    return ctx.const(np.asarray(v).astype(_np(dtype)), "scalar")


def _np(dtype):
    return _dt._NAMES[dtype].np


def _squeeze(ctx, x, axes, out=None):
    return ctx.emit("Squeeze", [x, ctx.const(_i64(*axes))], out=out)


def _unsqueeze(ctx, x, axes, out=None):
    return ctx.emit("Unsqueeze", [x, ctx.const(_i64(*axes))], out=out)


def _reduce(ctx, op_type, x, axes, keepdims, out=None):
    """Reduce* with axes as an input (ReduceSum from opset 13, the others from 18) or attribute."""
    if axes is None:
        return ctx.emit(op_type, [x], out=out, keepdims=int(keepdims))
    if op_type == "ReduceSum" or ctx.opset >= 18:
        return ctx.emit(op_type, [x, ctx.const(_i64(*axes))], out=out, keepdims=int(keepdims))
    return ctx.emit(op_type, [x], out=out, axes=list(axes), keepdims=int(keepdims))


# ---- elementwise -------------------------------------------------------------------------------------
_BINARY = {"add": "Add", "sub": "Sub", "mul": "Mul", "div": "Div", "pow": "Pow", "maximum": "Max", "minimum": "Min"}
_BOOL_BINARY = {"Add": "Or", "Mul": "And", "Max": "Or", "Min": "And"}


@reg(*_BINARY)
def _binary(ctx, n):
    cd = _out_dtype(ctx)
    a, b = ctx.x(n.args[0], cd), ctx.x(n.args[1], cd)
    t = _BINARY[n.op]
    if cd == "bool":
        if t not in _BOOL_BINARY:
            raise ctx.unsupported(f"{n.shown_as} of bool tensors", "convert to an integer dtype first")
        t = _BOOL_BINARY[t]
    ctx.emit(t, [a, b], out=ctx.out())


_UNARY = {"neg": "Neg", "abs": "Abs", "exp": "Exp", "log": "Log", "sqrt": "Sqrt", "sin": "Sin", "cos": "Cos",
          "tanh": "Tanh", "sigmoid": "Sigmoid", "relu": "Relu", "erf": "Erf", "reciprocal": "Reciprocal",
          "sign": "Sign", "floor": "Floor", "ceil": "Ceil"}


@reg(*_UNARY)
def _unary(ctx, n):
    cd = _out_dtype(ctx)
    x = ctx.x(n.args[0], cd)
    t = _UNARY[n.op]
    if not _is_float(cd) and t in ("Floor", "Ceil"):
        t = "Identity"
    if cd == "bool" and t in ("Abs", "Relu", "Sign"):
        t = "Identity"
    if t == "Relu" and not _is_float(cd) and ctx.opset < 14:
        ctx.emit("Max", [x, _scalar(ctx, 0, cd)], out=ctx.out())
        return
    ctx.emit(t, [x], out=ctx.out())


@reg("log1p")
def _log1p(ctx, n):
    cd = _out_dtype(ctx)
    ctx.emit("Log", [ctx.emit("Add", [ctx.x(n.args[0], cd), _scalar(ctx, 1, cd)])], out=ctx.out())


@reg("expm1")
def _expm1(ctx, n):
    cd = _out_dtype(ctx)
    ctx.emit("Sub", [ctx.emit("Exp", [ctx.x(n.args[0], cd)]), _scalar(ctx, 1, cd)], out=ctx.out())


@reg("rsqrt")
def _rsqrt(ctx, n):
    cd = _out_dtype(ctx)
    ctx.emit("Reciprocal", [ctx.emit("Sqrt", [ctx.x(n.args[0], cd)])], out=ctx.out())


@reg("round")
def _round(ctx, n):
    cd = _out_dtype(ctx)
    x = ctx.x(n.args[0], cd)
    d = int(ctx.static(n.attrs.get("decimals", 0), "decimals"))
    if not _is_float(cd):
        ctx.emit("Identity", [x], out=ctx.out())
    elif d == 0:
        ctx.emit("Round", [x], out=ctx.out())
    elif d > 0:  # numpy's: rint(x * 10**d) / 10**d
        s = _scalar(ctx, 10.0 ** d, cd)
        ctx.emit("Div", [ctx.emit("Round", [ctx.emit("Mul", [x, s])]), s], out=ctx.out())
    else:
        s = _scalar(ctx, 10.0 ** -d, cd)
        ctx.emit("Mul", [ctx.emit("Round", [ctx.emit("Div", [x, s])]), s], out=ctx.out())


@reg("cast")
def _cast(ctx, n):
    ctx.emit("Cast", [ctx.x(n.args[0])], out=ctx.out(), to=ctx.onnx_type(_out_dtype(ctx)))


@reg("relu_backward")
def _relu_backward(ctx, n):
    cd = _out_dtype(ctx)
    g, y = ctx.x(n.args[0], cd), ctx.x(n.args[1], cd)
    ctx.emit("Where", [ctx.emit("Greater", [y, _scalar(ctx, 0, cd)]), g, _scalar(ctx, 0, cd)], out=ctx.out())


_COMPARE = {"eq": "Equal", "ne": "Equal", "lt": "Less", "le": "LessOrEqual", "gt": "Greater", "ge": "GreaterOrEqual"}


@reg(*_COMPARE)
def _compare(ctx, n):
    cd = _compute_dtype(ctx, n.args)
    t = _COMPARE[n.op]
    if cd == "bool" and t != "Equal":
        cd = "uint8"  # ONNX orders numbers only
    a, b = ctx.x(n.args[0], cd), ctx.x(n.args[1], cd)
    if n.op == "ne":
        ctx.emit("Not", [ctx.emit("Equal", [a, b])], out=ctx.out())
    else:
        ctx.emit(t, [a, b], out=ctx.out())


@reg("logical_and", "logical_or", "logical_xor")
def _logical(ctx, n):
    t = {"logical_and": "And", "logical_or": "Or", "logical_xor": "Xor"}[n.op]
    ctx.emit(t, [ctx.x(n.args[0], "bool"), ctx.x(n.args[1], "bool")], out=ctx.out())


@reg("logical_not")
def _logical_not(ctx, n):
    ctx.emit("Not", [ctx.x(n.args[0], "bool")], out=ctx.out())


@reg("bitwise_and", "bitwise_or", "bitwise_xor")
def _bitwise(ctx, n):
    cd = _out_dtype(ctx)
    a, b = ctx.x(n.args[0], cd), ctx.x(n.args[1], cd)
    if cd == "bool":
        ctx.emit({"bitwise_and": "And", "bitwise_or": "Or", "bitwise_xor": "Xor"}[n.op], [a, b], out=ctx.out())
    elif ctx.opset >= 18:
        ctx.emit({"bitwise_and": "BitwiseAnd", "bitwise_or": "BitwiseOr", "bitwise_xor": "BitwiseXor"}[n.op], [a, b],
                 out=ctx.out())
    else:
        raise ctx.unsupported("bitwise ops on integers need opset 18", "export with opset_version=18 or newer")


@reg("bitwise_not")
def _bitwise_not(ctx, n):
    cd = _out_dtype(ctx)
    x = ctx.x(n.args[0], cd)
    if cd == "bool":
        ctx.emit("Not", [x], out=ctx.out())
    elif ctx.opset >= 18:
        ctx.emit("BitwiseNot", [x], out=ctx.out())
    else:
        raise ctx.unsupported("bitwise ops on integers need opset 18", "export with opset_version=18 or newer")


def _float_view(ctx, a):
    d = ctx.dtype(a)
    return ctx.x(a, d if _is_float(d) else "float32")


@reg("isnan")
def _isnan(ctx, n):
    ctx.emit("IsNaN", [_float_view(ctx, n.args[0])], out=ctx.out())


@reg("isinf")
def _isinf(ctx, n):
    ctx.emit("IsInf", [_float_view(ctx, n.args[0])], out=ctx.out())


@reg("isfinite")
def _isfinite(ctx, n):
    x = _float_view(ctx, n.args[0])
    ctx.emit("Not", [ctx.emit("Or", [ctx.emit("IsNaN", [x]), ctx.emit("IsInf", [x])])], out=ctx.out())


@reg("atan2")
def _atan2(ctx, n):
    # atan(a / b), moved to the right quadrant: exact where b != 0, and +-pi/2 or 0 on the b == 0 axis
    cd = _out_dtype(ctx)
    a, b = ctx.x(n.args[0], cd), ctx.x(n.args[1], cd)
    zero, pi = _scalar(ctx, 0, cd), _scalar(ctx, math.pi, cd)
    q = ctx.emit("Atan", [ctx.emit("Div", [a, b])])
    left = ctx.emit("Where", [ctx.emit("GreaterOrEqual", [a, zero]), ctx.emit("Add", [q, pi]),
                              ctx.emit("Sub", [q, pi])])
    half = _scalar(ctx, math.pi / 2, cd)
    axis = ctx.emit("Where", [ctx.emit("Greater", [a, zero]), half,
                              ctx.emit("Where", [ctx.emit("Less", [a, zero]), ctx.emit("Neg", [half]), zero])])
    inner = ctx.emit("Where", [ctx.emit("Less", [b, zero]), left, axis])
    ctx.emit("Where", [ctx.emit("Greater", [b, zero]), q, inner], out=ctx.out())


def _fmod_floor(ctx, a, b, cd):
    """(r, adjust): r = fmod(a, b) and where numpy's floor-mod adds b to it (signs differ, r != 0)."""
    zero = _scalar(ctx, 0, cd)
    r = ctx.emit("Mod", [a, b], fmod=1)
    differ = ctx.emit("Xor", [ctx.emit("Less", [r, zero]), ctx.emit("Less", [b, zero])])
    adjust = ctx.emit("And", [ctx.emit("Not", [ctx.emit("Equal", [r, zero])]), differ])
    return r, adjust


@reg("remainder")
def _remainder(ctx, n):
    cd = _out_dtype(ctx)
    a, b = ctx.x(n.args[0], cd), ctx.x(n.args[1], cd)
    if not _is_float(cd):
        ctx.emit("Mod", [a, b], out=ctx.out(), fmod=0)  # integer Mod has Python's sign (the divisor's)
        return
    r, adjust = _fmod_floor(ctx, a, b, cd)
    ctx.emit("Where", [adjust, ctx.emit("Add", [r, b]), r], out=ctx.out())


@reg("floor_divide")
def _floor_divide(ctx, n):
    cd = _out_dtype(ctx)
    a, b = ctx.x(n.args[0], cd), ctx.x(n.args[1], cd)
    if not _is_float(cd):
        ctx.emit("Div", [ctx.emit("Sub", [a, ctx.emit("Mod", [a, b], fmod=0)]), b], out=ctx.out())
        return
    # numpy's npy_divmod: div = (a - fmod(a, b)) / b, one less where the signs differ, then floor and round
    r, adjust = _fmod_floor(ctx, a, b, cd)
    one = _scalar(ctx, 1, cd)
    div = ctx.emit("Div", [ctx.emit("Sub", [a, r]), b])
    div = ctx.emit("Where", [adjust, ctx.emit("Sub", [div, one]), div])
    fl = ctx.emit("Floor", [div])
    up = ctx.emit("Greater", [ctx.emit("Sub", [div, fl]), _scalar(ctx, 0.5, cd)])
    ctx.emit("Where", [up, ctx.emit("Add", [fl, one]), fl], out=ctx.out())


@reg("where")
def _where(ctx, n):
    cd = _out_dtype(ctx)
    c, a, b = n.args
    ctx.emit("Where", [ctx.x(c, "bool"), ctx.x(a, cd), ctx.x(b, cd)], out=ctx.out())


@reg("clamp")
def _clamp(ctx, n):
    cd = _out_dtype(ctx)
    x, lo, hi = n.args
    if not isinstance(lo, Ref) and not isinstance(hi, Ref) and cd != "bool":
        ins = [ctx.x(x, cd), ctx.x(lo, cd) if lo is not None else "", ctx.x(hi, cd) if hi is not None else ""]
        while ins[-1] == "":
            ins.pop()
        ctx.emit("Clip", ins, out=ctx.out())
        return
    y = ctx.x(x, cd)
    if lo is not None:
        y = ctx.emit("Max", [y, ctx.x(lo, cd)], out=None if hi is not None else ctx.out())
    if hi is not None:
        ctx.emit("Min", [y, ctx.x(hi, cd)], out=ctx.out())


# ---- linear algebra and nn ---------------------------------------------------------------------------
@reg("matmul")
def _matmul(ctx, n):
    cd = _out_dtype(ctx)
    ctx.emit("MatMul", [ctx.x(n.args[0], cd), ctx.x(n.args[1], cd)], out=ctx.out())


@reg("linear")
def _linear(ctx, n):
    x, w, b = n.args
    if ctx.ndim(x) == 2:
        ins = [ctx.x(x), ctx.x(w)] + ([ctx.x(b)] if b is not None else [])
        ctx.emit("Gemm", ins, out=ctx.out(), transB=1)
        return
    y = ctx.emit("MatMul", [ctx.x(x), ctx.emit("Transpose", [ctx.x(w)], perm=[1, 0])],
                 out=ctx.out() if b is None else None)
    if b is not None:
        ctx.emit("Add", [y, ctx.x(b)], out=ctx.out())


@reg("conv2d")
def _conv2d(ctx, n):
    x, w, b = n.args
    a = {k: ctx.static(n.attrs[k], k) for k in ("stride", "padding", "dilation", "groups")}
    p = list(a["padding"])
    ins = [ctx.x(x), ctx.x(w)] + ([ctx.x(b)] if b is not None else [])
    ctx.emit("Conv", ins, out=ctx.out(), kernel_shape=list(ctx.values[w.id].shape[2:]), strides=list(a["stride"]),
             pads=p + p, dilations=list(a["dilation"]), group=int(a["groups"]))


@reg("conv2d_backward_input", dynamic=True)  # the batch of x_shape may follow an axis; the rest is static
def _conv2d_backward_input(ctx, n):
    """conv2d's input gradient is a transposed convolution: what nn.ConvTranspose2d (and F.conv_transpose1d
    / 2d, F.fold) compute forward, so it exports as ONNX ConvTranspose (output_padding from x_shape)."""
    gy, w = n.args
    a = {k: ctx.static(n.attrs[k], k) for k in ("stride", "padding", "dilation", "groups")}
    out_hw = ctx.static(tuple(n.attrs["x_shape"][2:]), "output size")
    in_hw = ctx.static(tuple(ctx.values[gy.id].shape[2:]), "input size")
    k = list(ctx.values[w.id].shape[2:])
    s, p, d = a["stride"], a["padding"], a["dilation"]
    base = [(in_hw[i] - 1) * s[i] - 2 * p[i] + d[i] * (k[i] - 1) + 1 for i in range(2)]
    ctx.emit("ConvTranspose", [ctx.x(gy), ctx.x(w)], out=ctx.out(), kernel_shape=k, strides=list(s),
             pads=list(p) + list(p), dilations=list(d), group=int(a["groups"]),
             output_padding=[out_hw[i] - base[i] for i in range(2)])


def _crop_hw(ctx, y, out_shape, out):
    """Cut a pooled result to PyTorch's size: with ceil_mode, PyTorch drops a last window that would
    start in the right padding, which onnxruntime may keep."""
    return ctx.emit("Slice", [y, ctx.const(_i64(0, 0)), ctx.ints(out_shape[2:]), ctx.const(_i64(2, 3))], out=out)


@reg("max_pool2d")
def _max_pool2d(ctx, n):
    if ctx.live(1):
        raise ctx.unsupported("max_pool2d's indices (return_indices=True) are per-plane positions, which ONNX "
                              "MaxPool's Indices are not", "max_pool2d without return_indices")
    a = {k: ctx.static(n.attrs[k], k) for k in ("kernel_size", "stride", "padding", "dilation", "ceil_mode")}
    p = list(a["padding"])
    x = ctx.x(n.args[0])
    attrs = dict(kernel_shape=list(a["kernel_size"]), strides=list(a["stride"]), pads=p + p,
                 dilations=list(a["dilation"]), ceil_mode=int(a["ceil_mode"]))
    if not a["ceil_mode"]:
        ctx.emit("MaxPool", [x], out=ctx.out(), **attrs)
        return
    y = ctx.emit("MaxPool", [x], **attrs)
    _crop_hw(ctx, y, ctx.dims[n.outputs[0]], ctx.out())


@reg("avg_pool2d")
def _avg_pool2d(ctx, n):
    a = {k: ctx.static(n.attrs[k], k) for k in ("kernel_size", "stride", "padding", "ceil_mode",
                                                "count_include_pad", "divisor_override")}
    (kh, kw), (ph, pw) = a["kernel_size"], a["padding"]
    x = ctx.x(n.args[0])
    out_shape = ctx.dims[n.outputs[0]]
    cd = ctx.dtype(n.args[0])
    pool = dict(kernel_shape=[kh, kw], strides=list(a["stride"]), ceil_mode=int(a["ceil_mode"]))
    if a["divisor_override"] is None and not a["count_include_pad"]:
        y = ctx.emit("AveragePool", [x], pads=[ph, pw, ph, pw], count_include_pad=0, **pool)
    else:
        # PyTorch counts the padding cells inside the padded input, never beyond it: pad explicitly (zeros)
        # and average over what lies inside; a divisor_override rescales the window's sum
        if ph or pw:
            x = ctx.emit("Pad", [x, ctx.const(_i64(0, 0, ph, pw, 0, 0, ph, pw)), _scalar(ctx, 0, cd)])
        if a["divisor_override"] is None:
            y = ctx.emit("AveragePool", [x], count_include_pad=0, **pool)
        else:
            # every window of the padded input is whole except, with ceil_mode, the last: pad zeros there too
            sh, sw = a["stride"]
            eh = max(0, (out_shape[2] - 1) * sh + kh - (ctx.values[n.args[0].id].shape[2] + 2 * ph))
            ew = max(0, (out_shape[3] - 1) * sw + kw - (ctx.values[n.args[0].id].shape[3] + 2 * pw))
            if eh or ew:
                x = ctx.emit("Pad", [x, ctx.const(_i64(0, 0, 0, 0, 0, 0, eh, ew)), _scalar(ctx, 0, cd)])
            y = ctx.emit("AveragePool", [x], **pool)
            y = ctx.emit("Mul", [y, _scalar(ctx, kh * kw / a["divisor_override"], cd)])
    if a["ceil_mode"]:
        _crop_hw(ctx, y, out_shape, ctx.out())
    else:
        ctx.emit("Identity", [y], out=ctx.out())


def _softmax_like(op_type):
    def f(ctx, n):
        x = ctx.x(n.args[0])
        dim = int(ctx.static(n.attrs["dim"], "dim"))
        if ctx.ndim(n.args[0]) == 0:
            y = ctx.emit(op_type, [_unsqueeze(ctx, x, [0])], axis=0)
            _squeeze(ctx, y, [0], out=ctx.out())
        else:
            ctx.emit(op_type, [x], out=ctx.out(), axis=dim)

    return f


reg("softmax")(_softmax_like("Softmax"))
reg("log_softmax")(_softmax_like("LogSoftmax"))


@reg("cross_entropy_rows", "cross_entropy_mean")
def _cross_entropy(ctx, n):
    logits, target = n.args
    ii = int(ctx.static(n.attrs["ignore_index"], "ignore_index"))
    ls = float(ctx.static(n.attrs["label_smoothing"], "label_smoothing"))
    cd = ctx.dtype(logits)
    x, t = ctx.x(logits), ctx.x(target, "int64")
    mean = n.op == "cross_entropy_mean"
    valid = None

    def valid_mask():
        nonlocal valid
        if valid is None:
            valid = ctx.emit("Not", [ctx.emit("Equal", [t, ctx.const(np.array(ii, np.int64))])])
        return valid

    if ls == 0:
        ctx.emit("SoftmaxCrossEntropyLoss", [x, t], out=ctx.out(0), reduction="mean" if mean else "none",
                 ignore_index=ii)
    else:
        zero = _scalar(ctx, 0, cd)
        logp = ctx.emit("LogSoftmax", [x], axis=1)
        safe = ctx.emit("Where", [valid_mask(), t, ctx.const(np.array(0, np.int64))])
        picked = _squeeze(ctx, ctx.emit("GatherElements", [logp, _unsqueeze(ctx, safe, [1])], axis=1), [1])
        smooth = _reduce(ctx, "ReduceMean", logp, [1], False)
        rows = ctx.emit("Neg", [ctx.emit("Add", [ctx.emit("Mul", [picked, _scalar(ctx, 1 - ls, cd)]),
                                                  ctx.emit("Mul", [smooth, _scalar(ctx, ls, cd)])])])
        rows = ctx.emit("Where", [valid_mask(), rows, zero], out=None if mean else ctx.out(0))
        if mean:
            count = _reduce(ctx, "ReduceSum", ctx.emit("Cast", [valid_mask()], to=ctx.onnx_type(cd)), None, False)
            ctx.emit("Div", [_reduce(ctx, "ReduceSum", rows, None, False), count], out=ctx.out(0))
    if ctx.live(1):
        _reduce(ctx, "ReduceLogSumExp", x, [1], False, out=ctx.out(1))
    if mean and ctx.live(2):
        _reduce(ctx, "ReduceSum", ctx.emit("Cast", [valid_mask()], to=ctx.onnx_type(cd)), None, False, out=ctx.out(2))


# ---- reductions --------------------------------------------------------------------------------------
_REDUCE = {"sum": "ReduceSum", "mean": "ReduceMean", "prod": "ReduceProd", "amax": "ReduceMax", "amin": "ReduceMin"}


def _dims_attr(ctx, n):
    d = ctx.static(n.attrs["dim"], "dim")
    return None if d is None else [d] if isinstance(d, int) else list(d)


@reg(*_REDUCE)
def _reduction(ctx, n):
    x = ctx.x(n.args[0])
    if ctx.ndim(n.args[0]) == 0:
        ctx.emit("Identity", [x], out=ctx.out())
        return
    _reduce(ctx, _REDUCE[n.op], x, _dims_attr(ctx, n), ctx.static(n.attrs["keepdim"], "keepdim"), out=ctx.out())


@reg("all", "any")
def _all_any(ctx, n):
    x = ctx.x(n.args[0], "bool")
    if ctx.ndim(n.args[0]) == 0:
        ctx.emit("Identity", [x], out=ctx.out())
        return
    i = ctx.emit("Cast", [x], to=ctx.onnx_type("int32"))
    r = _reduce(ctx, "ReduceMin" if n.op == "all" else "ReduceMax", i, _dims_attr(ctx, n),
                ctx.static(n.attrs["keepdim"], "keepdim"))
    ctx.emit("Cast", [r], out=ctx.out(), to=ctx.onnx_type("bool"))


@reg("argmax", "argmin")
def _argmax(ctx, n):
    ctx.emit("ArgMax" if n.op == "argmax" else "ArgMin", [ctx.x(n.args[0])], out=ctx.out(),
             axis=int(ctx.static(n.attrs["dim"], "dim")), keepdims=int(ctx.static(n.attrs["keepdim"], "keepdim")))


@reg("max_dim", "min_dim")
def _max_dim(ctx, n):
    x = ctx.x(n.args[0])
    d, k = int(ctx.static(n.attrs["dim"], "dim")), int(ctx.static(n.attrs["keepdim"], "keepdim"))
    if ctx.live(0):
        _reduce(ctx, "ReduceMax" if n.op == "max_dim" else "ReduceMin", x, [d], k, out=ctx.out(0))
    if ctx.live(1):
        ctx.emit("ArgMax" if n.op == "max_dim" else "ArgMin", [x], out=ctx.out(1), axis=d, keepdims=k)


# ---- shapes ------------------------------------------------------------------------------------------
@reg("reshape", dynamic=True)
def _reshape(ctx, n):
    x = n.args[0]
    shape = list(n.attrs["shape"])
    if math.prod(int(s) for s in shape) == 0:  # empty: nothing to move, and Reshape reads 0 as "keep"
        _zeros(ctx, shape, ctx.dtype(x), ctx.out())
        return
    dyn = [i for i, s in enumerate(shape) if is_dim(s)]
    if len(dyn) == 1:
        shape[dyn[0]] = -1  # the one size that follows the batch: ONNX infers it
    ctx.emit("Reshape", [ctx.x(x), ctx.ints(shape)], out=ctx.out())


def _zeros(ctx, shape, dtype, out):
    value = ctx.nh.from_array(np.zeros(1, dtype=_np(dtype)), "value") if dtype != "bfloat16" else None
    return ctx.emit("ConstantOfShape", [ctx.ints(shape)], out=out, value=value)


@reg("permute")
def _permute(ctx, n):
    ctx.emit("Transpose", [ctx.x(n.args[0])], out=ctx.out(), perm=list(ctx.static(n.attrs["dims"], "dims")))


@reg("expand", dynamic=True)
def _expand(ctx, n):
    ctx.emit("Expand", [ctx.x(n.args[0]), ctx.ints(n.attrs["shape"])], out=ctx.out())


@reg("flip")
def _flip(ctx, n):
    dims = list(ctx.static(n.attrs["dims"], "dims"))
    k = len(dims)
    ctx.emit("Slice", [ctx.x(n.args[0]), ctx.const(_i64(*[-1] * k)), ctx.const(_i64(*[INT64_MIN] * k)),
                       ctx.const(_i64(*dims)), ctx.const(_i64(*[-1] * k))], out=ctx.out())


@reg("contiguous", "clone", "copy_to")
def _identity(ctx, n):
    ctx.emit("Identity", [ctx.x(n.args[0])], out=ctx.out())


@reg("cat")
def _cat(ctx, n):
    cd = _out_dtype(ctx)
    ins = [ctx.x(a, cd) for a in n.args]
    if len(ins) == 1:
        ctx.emit("Identity", ins, out=ctx.out())
    else:
        ctx.emit("Concat", ins, out=ctx.out(), axis=int(ctx.static(n.attrs["dim"], "dim")))


@reg("pad", dynamic=True)
def _pad(ctx, n):
    x = n.args[0]
    widths = n.attrs["widths"]
    cd = ctx.dtype(x)
    pads = ctx.ints([lo for lo, _ in widths] + [hi for _, hi in widths])
    value = ctx.static(n.attrs["value"], "value")
    ctx.emit("Pad", [ctx.x(x), pads, _scalar(ctx, value, cd)], out=ctx.out(), mode="constant")


@reg("tril", "triu")
def _tri(ctx, n):
    k = int(ctx.static(n.attrs["diagonal"], "diagonal"))
    ctx.emit("Trilu", [ctx.x(n.args[0]), ctx.const(np.array(k, np.int64))], out=ctx.out(), upper=int(n.op == "triu"))


@reg("copy_")
def _copy(ctx, n):
    dst, src = n.args
    y = ctx.x(src, ctx.dtype(dst))
    if ctx.values[src.id].shape == ctx.values[dst.id].shape:
        ctx.emit("Identity", [y], out=ctx.out())
    else:
        ctx.emit("Expand", [y, ctx.ints(ctx.shape(dst))], out=ctx.out())


# ---- indexing ----------------------------------------------------------------------------------------
@reg("gather")
def _gather(ctx, n):
    ctx.emit("GatherElements", [ctx.x(n.args[0]), ctx.x(n.args[1], "int64")], out=ctx.out(),
             axis=int(ctx.static(n.attrs["dim"], "dim")))


@reg("scatter_add")
def _scatter_add(ctx, n):
    if ctx.opset < 16:
        raise ctx.unsupported("ScatterElements with reduction='add' needs opset 16", "export with opset_version=16+")
    x, index, src = n.args
    s = ctx.x(src, ctx.dtype(x))
    ishape, sshape = ctx.values[index.id].shape, ctx.values[src.id].shape
    if ishape != sshape:  # PyTorch reads src where index has entries
        s = ctx.emit("Slice", [s, ctx.const(_i64(*[0] * len(ishape))), ctx.ints(ctx.shape(index)),
                               ctx.const(_i64(*range(len(ishape))))])
    ctx.emit("ScatterElements", [ctx.x(x), ctx.x(index, "int64"), s], out=ctx.out(),
             axis=int(ctx.static(n.attrs["dim"], "dim")), reduction="add")


def _plus_one(i):
    if isinstance(i, Dim):
        e = i.expr
        return Dim(int(i) + 1, Expr(e.coef, e.syms, e.offset + 1))
    return INT64_MAX if i == -1 else i + 1


@reg("index", dynamic=True)
def _index(ctx, n):
    x = n.args[0]
    nd = ctx.ndim(x)
    key = list(n.attrs["key"])
    for k in key:
        if isinstance(k, (bool, np.bool_)):
            raise ctx.unsupported("indexing with a Python bool", "x.unsqueeze(0) for x[True]")
        if isinstance(k, Ref) and ctx.dtype(k) == "bool":
            raise ctx.unsupported("a boolean mask index gives a shape that depends on the mask's values",
                                  "devtensor.where(mask, x, 0) or masked_fill(~mask, 0), which keep the shape")
    key = _expand_ellipsis(key, nd)
    starts, ends, axes, steps, squeeze, unsq = [], [], [], [], [], []
    arrays, adv_key_pos = [], []  # (position in the sliced tensor, Ref); key positions of ints and arrays
    ax = pos = 0
    for kp, k in enumerate(key):
        if k is None:
            unsq.append(pos)
            pos += 1
            continue
        if isinstance(k, slice):
            if not (k.start in (None, 0) and k.stop is None and k.step in (None, 1)):
                starts.append(0 if k.start is None else k.start)
                ends.append(INT64_MAX if k.stop is None else k.stop)
                axes.append(ax)
                steps.append(1 if k.step is None else k.step)
            pos += 1
        elif isinstance(k, Ref):
            arrays.append((pos, k))
            adv_key_pos.append(kp)
            pos += 1
        else:  # an int: a one-wide slice, squeezed below
            starts.append(k)
            ends.append(_plus_one(k))
            axes.append(ax)
            steps.append(1)
            squeeze.append(ax)
            adv_key_pos.append(kp)
        ax += 1
    y = ctx.x(x)
    if axes:
        y = ctx.emit("Slice", [y, ctx.ints(starts), ctx.ints(ends), ctx.const(_i64(*axes)), ctx.const(_i64(*steps))])
    if squeeze:
        y = _squeeze(ctx, y, squeeze)
    if unsq:
        y = _unsqueeze(ctx, y, unsq)
    if not arrays:
        ctx.emit("Identity", [y], out=ctx.out())
        return
    rank = pos
    adjacent = adv_key_pos == list(range(adv_key_pos[0], adv_key_pos[0] + len(adv_key_pos)))
    first = arrays[0][0]
    if len(arrays) == 1:
        p, idx = arrays[0]
        k = ctx.ndim(idx)
        if adjacent or p == 0:
            ctx.emit("Gather", [y, ctx.x(idx, "int64")], out=ctx.out(), axis=p)
        else:  # numpy puts the index's dims first when advanced indices are not adjacent
            g = ctx.emit("Gather", [y, ctx.x(idx, "int64")], axis=p)
            perm = list(range(p, p + k)) + list(range(p)) + list(range(p + k, rank - 1 + k))
            ctx.emit("Transpose", [g], out=ctx.out(), perm=perm)
        return
    # several index tensors: move their axes to the front, stack the (broadcast) indices, GatherND
    pa = [p for p, _ in arrays]
    rest = [i for i in range(rank) if i not in pa]
    t = ctx.emit("Transpose", [y], perm=pa + rest)
    bshape = np.broadcast_shapes(*[ctx.values[r.id].shape for _, r in arrays])
    if any(any_dim(ctx.shape(r)) for _, r in arrays):
        raise ctx.unsupported("several index tensors whose sizes follow a dynamic axis",
                              "index one dimension at a time (index_select / gather)")
    parts = []
    for _, r in arrays:
        i = ctx.x(r, "int64")
        if ctx.values[r.id].shape != bshape:
            i = ctx.emit("Expand", [i, ctx.ints(bshape)])
        parts.append(_unsqueeze(ctx, i, [len(bshape)]))
    idx = ctx.emit("Concat", parts, axis=-1)
    b = len(bshape)
    if not adjacent:
        ctx.emit("GatherND", [t, idx], out=ctx.out())
        return
    g = ctx.emit("GatherND", [t, idx])
    before = sum(1 for i in rest if i < first)  # the kept axes that came before the indexed ones
    perm = list(range(b, b + before)) + list(range(b)) + list(range(b + before, b + len(rest)))
    ctx.emit("Transpose", [g], out=ctx.out(), perm=perm)


def _expand_ellipsis(key, nd):
    used = sum(1 for k in key if k is not None and k is not Ellipsis)
    if Ellipsis in key:
        i = key.index(Ellipsis)
        return key[:i] + [slice(None)] * (nd - used) + key[i + 1:]
    return key + [slice(None)] * (nd - used)


def _scalar_dim(ctx, d):
    """A 0-d int64 tensor holding size d (a Dim is computed from the input's shape)."""
    return _squeeze(ctx, ctx.ints([d]), [0]) if is_dim(d) else ctx.const(np.array(int(d), np.int64))


@reg("index_put", dynamic=True)
def _index_put(ctx, n):
    """x[key] = v (accumulate: +=) as ScatterND at the positions the key selects; x[mask] = v as Where
    (or ScatterND at NonZero(mask))."""
    x, v = n.args
    key = list(n.attrs["key"])
    acc = bool(ctx.static(n.attrs["accumulate"], "accumulate"))
    cd, nd = ctx.dtype(x), ctx.ndim(x)
    xs = ctx.x(x)
    vs = ctx.x(v, cd) if isinstance(v, Ref) else _scalar(ctx, v, cd)
    arrays = [k for k in key if isinstance(k, Ref)]
    if arrays:
        rest = [k for k in key if not isinstance(k, Ref)]
        if len(arrays) == 1 and ctx.dtype(arrays[0]) == "bool" and isinstance(key[0], Ref) and \
                all(k is Ellipsis or k == slice(None) for k in rest):
            _masked_put(ctx, xs, vs, arrays[0], acc, nd, isinstance(v, Ref) and ctx.values[v.id].shape)
            return
        raise ctx.unsupported("writing through index tensors (x[idx] = v) may hit one position twice, which "
                              "ONNX ScatterND leaves undefined", "scatter_add(), or devtensor.where(mask, v, x)")
    if any(isinstance(k, (bool, np.bool_)) for k in key):
        raise ctx.unsupported("indexing with a Python bool", "x.unsqueeze(0) for x[True]")
    key = _expand_ellipsis(key, nd)
    dims = ctx.shape(x)
    if nd == 0:  # the whole 0-d tensor
        y = ctx.emit("Reshape", [ctx.emit("Expand", [vs, ctx.ints([1] * sum(k is None for k in key))]),
                                 ctx.const(_i64())])
        ctx.emit("Add" if acc else "Identity", [xs, y] if acc else [y], out=ctx.out())
        return
    axes, view = [], []  # per axis of x: (kind, key entry, size); the view's dims: None or an axis
    ax = 0
    for k in key:
        if k is None:
            view.append(None)
            continue
        axes.append(("slice" if isinstance(k, slice) else "int", k, dims[ax]))
        if isinstance(k, slice):
            view.append(len(axes) - 1)
        ax += 1
    if not any_dim(dims) and not any_dim(key):  # every position known now: constant indices
        ranges = [np.arange(d)[k] if kind == "slice" else np.array([k % d]) for kind, k, d in axes]
        grid = np.stack(np.meshgrid(*ranges, indexing="ij"), axis=-1).astype(np.int64)
        idx = ctx.const(grid, "indices")
        u_shape = ctx.ints(grid.shape[:-1])
        v_shape = ctx.ints([1 if a is None else len(ranges[a]) for a in view])
    else:  # positions computed in the graph from the sizes that follow a dynamic axis
        rs = []
        for kind, k, d in axes:
            if kind == "int":
                rs.append(ctx.ints([k]) if int(k) >= 0 else ctx.emit("Add", [ctx.ints([k]), ctx.ints([d])]))
                continue
            r = ctx.emit("Range", [ctx.const(np.array(0, np.int64)), _scalar_dim(ctx, d),
                                   ctx.const(np.array(1, np.int64))])
            if not (k.start in (None, 0) and k.stop is None and k.step in (None, 1)):
                r = ctx.emit("Slice", [r, ctx.ints([0 if k.start is None else k.start]),
                                       ctx.ints([INT64_MAX if k.stop is None else k.stop]), ctx.const(_i64(0)),
                                       ctx.ints([1 if k.step is None else k.step])])
            rs.append(r)
        sizes = [ctx.emit("Shape", [r]) for r in rs]
        u_shape = ctx.emit("Concat", sizes, axis=0) if len(sizes) > 1 else sizes[0]
        vparts = [ctx.const(_i64(1)) if a is None else sizes[a] for a in view]
        v_shape = (ctx.emit("Concat", vparts, axis=0) if len(vparts) > 1 else vparts[0]) if vparts else ctx.const(_i64())
        coords = []
        for a, r in enumerate(rs):
            shape = [1] * len(rs)
            shape[a] = -1
            c = ctx.emit("Expand", [ctx.emit("Reshape", [r, ctx.const(_i64(*shape))]), u_shape])
            coords.append(_unsqueeze(ctx, c, [len(rs)]))
        idx = ctx.emit("Concat", coords, axis=-1) if len(coords) > 1 else coords[0]
    upd = ctx.emit("Reshape", [ctx.emit("Expand", [vs, v_shape]), u_shape])
    if acc:
        upd = ctx.emit("Add", [ctx.emit("GatherND", [xs, idx]), upd])
    ctx.emit("ScatterND", [xs, idx, upd], out=ctx.out())


def _masked_put(ctx, xs, vs, mask, acc, nd, v_shape):
    m = ctx.x(mask)
    k = ctx.ndim(mask)
    if not acc and (not v_shape or math.prod(v_shape) == 1):  # one value everywhere the mask is set
        mb = _unsqueeze(ctx, m, list(range(k, nd))) if nd > k else m
        ctx.emit("Where", [mb, ctx.emit("Reshape", [vs, ctx.const(_i64())]) if v_shape else vs, xs], out=ctx.out())
        return
    idx = ctx.emit("Transpose", [ctx.emit("NonZero", [m])], perm=[1, 0])  # (count, k) positions, row-major
    count = ctx.emit("Slice", [ctx.emit("Shape", [idx]), ctx.const(_i64(0)), ctx.const(_i64(1))])
    shape = ctx.emit("Concat", [count, ctx.emit("Slice", [ctx.emit("Shape", [xs]), ctx.const(_i64(k)),
                                                          ctx.const(_i64(INT64_MAX))])], axis=0)
    upd = ctx.emit("Expand", [vs, shape])
    if acc:
        upd = ctx.emit("Add", [ctx.emit("GatherND", [xs, idx]), upd])
    ctx.emit("ScatterND", [xs, idx, upd], out=ctx.out())


# ---- creation ----------------------------------------------------------------------------------------
@reg("full", "empty", dynamic=True)
def _full(ctx, n):
    dt = n.attrs["dtype"].name
    v = 0 if n.op == "empty" else ctx.static(n.attrs["value"], "value")
    value = ctx.nh.from_array(np.array([v]).astype(_np(dt)), "value") if dt != "bfloat16" else None
    if dt == "bfloat16":
        y = ctx.emit("ConstantOfShape", [ctx.ints(n.attrs["shape"])],
                     value=ctx.nh.from_array(np.array([v], np.float32), "value"))
        ctx.emit("Cast", [y], out=ctx.out(), to=ctx.onnx_type(dt))
        return
    ctx.emit("ConstantOfShape", [ctx.ints(n.attrs["shape"])], out=ctx.out(), value=value)


@reg("arange", dynamic=True)
def _arange(ctx, n):
    dt = n.attrs["dtype"].name
    cd = dt if dt in ("float32", "float64", "int16", "int32", "int64") else "float64" if _is_float(dt) else "int64"
    ins = [ctx.x(n.attrs[k], cd) for k in ("start", "end", "step")]
    if cd == dt:
        ctx.emit("Range", ins, out=ctx.out())
    else:
        ctx.emit("Cast", [ctx.emit("Range", ins)], out=ctx.out(), to=ctx.onnx_type(dt))


@reg("linspace", "eye")
def _static_only(ctx, n):
    raise ctx.unsupported("a size that follows a dynamic axis (exported as a constant only with static sizes)",
                          "make it a buffer, or export without that dynamic axis")


def _random(ctx, n, op_type, out_dtype, shape, **attrs):
    gen = out_dtype if out_dtype in ("float16", "float32", "float64") else "float32"
    if any_dim(shape):
        like = _zeros(ctx, shape, gen, None)
        y = ctx.emit(op_type + "Like", [like], dtype=ctx.onnx_type(gen), **attrs)
    else:
        y = ctx.emit(op_type, [], dtype=ctx.onnx_type(gen), shape=[int(s) for s in shape], **attrs)
    return y, gen


@reg("rand", "randn", dynamic=True)
def _rand(ctx, n):
    dt = n.attrs["dtype"].name
    y, gen = _random(ctx, n, "RandomUniform" if n.op == "rand" else "RandomNormal", dt, n.attrs["shape"])
    ctx.emit("Identity" if gen == dt else "Cast", [y], out=ctx.out(), **({} if gen == dt else
                                                                          {"to": ctx.onnx_type(dt)}))


@reg("randint", dynamic=True)
def _randint(ctx, n):
    dt = n.attrs["dtype"].name
    lo, hi = float(ctx.static(n.attrs["low"], "low")), float(ctx.static(n.attrs["high"], "high"))
    y, _ = _random(ctx, n, "RandomUniform", "float64", n.attrs["shape"], low=lo, high=hi)
    ctx.emit("Cast", [ctx.emit("Floor", [y])], out=ctx.out(), to=ctx.onnx_type(dt))


@reg("randperm")
def _randperm(ctx, n):
    dt = n.attrs["dtype"].name
    k = int(n.attrs["n"])
    y = ctx.emit("RandomUniform", [], dtype=ctx.onnx_type("float32"), shape=[k])
    _, idx = ctx.emit("TopK", [y, ctx.const(_i64(k))], n_out=2)  # the order of k uniform draws: a permutation
    ctx.emit("Cast", [idx], out=ctx.out(), to=ctx.onnx_type(dt))


from .recurrent import RECURRENT_CONVERTERS  # noqa: E402  (lstm_sequence -> LSTM, rnn_sequence -> GRU / RNN)

CONVERTERS.update(RECURRENT_CONVERTERS)
