"""Elementwise ops: each declared once with its dtype rule and backward rule (in Tensor ops).

Broadcasting and dtype promotion are undone by the autograd engine, never here.
"""
from __future__ import annotations

import math

import numpy as np

from .. import dtypes as _dt
from ..dispatch import COMPARE, DIVIDE, FLOAT, KEEP, PROMOTE, call, defop
from ..tensor import Tensor
from . import meta_rules as M
from . import reference as R
from . import samples as S
from ._api import composite, public


def _zero(g):
    return g * 0


# ---- binary arithmetic ------------------------------------------------------------------------
add = defop("add", ("a", "b"), rule=PROMOTE, meta=M.broadcast, backward=lambda c, g: (g, g), ref=np.add, samples=S.binary())
sub = defop("sub", ("a", "b"), rule=PROMOTE, meta=M.broadcast, backward=lambda c, g: (g, -g), ref=np.subtract,
            samples=S.binary())
# mul and div skip the side that needs no gradient: `loss / n` and `x * mask` are in every
# training step, and the unused side's formula costs three ops for div.
mul = defop("mul", ("a", "b"), rule=PROMOTE, meta=M.broadcast, save=("a", "b"),
            backward=lambda c, g: (g * c.b if c.needs_input_grad(0) else None,
                                   g * c.a if c.needs_input_grad(1) else None),
            ref=np.multiply, samples=S.binary())
div = defop("div", ("a", "b"), rule=DIVIDE, meta=M.broadcast, save=("a", "b"),
            backward=lambda c, g: (g / c.b if c.needs_input_grad(0) else None,
                                   -g * c.a / (c.b * c.b) if c.needs_input_grad(1) else None),
            ref=np.true_divide, samples=S.binary(b_low=0.5, b_high=2.0))


def _pow_backward(c, g):
    a, b = c.a, c.b
    ga = g * b * a ** (b - 1)
    if isinstance(b, Tensor):
        gb = g * c.out * where(a > 0, log(where(a > 0, a, 1.0)), 0.0)
    else:
        gb = None
    return ga, gb


pow_ = defop("pow", ("a", "b"), rule=PROMOTE, meta=M.broadcast, save=("a", "b", "out"), backward=_pow_backward,
             ref=np.power, samples=S.binary(low=0.5, high=2.0))


def _atan2_backward(c, g):
    a, b = c.a, c.b
    r = a * a + b * b
    return (g * b / r if c.needs_input_grad(0) else None,
            -g * a / r if c.needs_input_grad(1) else None)


atan2 = defop("atan2", ("a", "b"), rule=DIVIDE, meta=M.broadcast, save=("a", "b"), backward=_atan2_backward,
              ref=np.arctan2, samples=S.binary(b_low=0.5, b_high=2.0))


def _maximum_backward(c, g, sign):
    a, b = c.a, c.b
    w = (a > b if sign > 0 else a < b).to(g.dtype) + (a == b).to(g.dtype) * 0.5
    return g * w, g * (1 - w)


maximum = defop("maximum", ("a", "b"), rule=PROMOTE, meta=M.broadcast, save=("a", "b"),
                backward=lambda c, g: _maximum_backward(c, g, 1), ref=np.maximum, samples=S.binary())
minimum = defop("minimum", ("a", "b"), rule=PROMOTE, meta=M.broadcast, save=("a", "b"),
                backward=lambda c, g: _maximum_backward(c, g, -1), ref=np.minimum, samples=S.binary())
remainder = defop("remainder", ("a", "b"), rule=PROMOTE, meta=M.broadcast, save=("a", "b"),
                  backward=lambda c, g: (g, -g * floor_divide(c.a, c.b)), ref=np.remainder,
                  samples=S.binary(b_low=0.5, b_high=2.0))
floor_divide = defop("floor_divide", ("a", "b"), rule=PROMOTE, meta=M.broadcast, differentiable=False, ref=np.floor_divide,
                     samples=S.binary(b_low=0.5, b_high=2.0))
bitwise_and = defop("bitwise_and", ("a", "b"), rule=PROMOTE, meta=M.broadcast, differentiable=False)
bitwise_or = defop("bitwise_or", ("a", "b"), rule=PROMOTE, meta=M.broadcast, differentiable=False)
bitwise_xor = defop("bitwise_xor", ("a", "b"), rule=PROMOTE, meta=M.broadcast, differentiable=False)
bitwise_not = defop("bitwise_not", ("x",), rule=KEEP, meta=M.same, differentiable=False)

# ---- comparisons and logic (no gradients) ------------------------------------------------------
eq = defop("eq", ("a", "b"), rule=COMPARE, meta=M.compare, differentiable=False, ref=np.equal, samples=S.compare())
ne = defop("ne", ("a", "b"), rule=COMPARE, meta=M.compare, differentiable=False, ref=np.not_equal, samples=S.compare())
lt = defop("lt", ("a", "b"), rule=COMPARE, meta=M.compare, differentiable=False, ref=np.less, samples=S.compare())
le = defop("le", ("a", "b"), rule=COMPARE, meta=M.compare, differentiable=False, ref=np.less_equal, samples=S.compare())
gt = defop("gt", ("a", "b"), rule=COMPARE, meta=M.compare, differentiable=False, ref=np.greater, samples=S.compare())
ge = defop("ge", ("a", "b"), rule=COMPARE, meta=M.compare, differentiable=False, ref=np.greater_equal, samples=S.compare())
logical_and = defop("logical_and", ("a", "b"), rule=COMPARE, meta=M.compare, differentiable=False, ref=np.logical_and,
                    samples=S.compare())
logical_or = defop("logical_or", ("a", "b"), rule=COMPARE, meta=M.compare, differentiable=False, ref=np.logical_or,
                   samples=S.compare())
logical_xor = defop("logical_xor", ("a", "b"), rule=COMPARE, meta=M.compare, differentiable=False, ref=np.logical_xor,
                    samples=S.compare())
logical_not = defop("logical_not", ("x",), rule=KEEP, meta=M.predicate, differentiable=False, ref=np.logical_not,
                    samples=S.unary())
isnan = defop("isnan", ("x",), rule=KEEP, meta=M.predicate, differentiable=False, ref=np.isnan, samples=S.unary())
isfinite = defop("isfinite", ("x",), rule=KEEP, meta=M.predicate, differentiable=False, ref=np.isfinite, samples=S.unary())
isinf = defop("isinf", ("x",), rule=KEEP, meta=M.predicate, differentiable=False, ref=np.isinf, samples=S.unary())

# ---- unary math -------------------------------------------------------------------------------
neg = defop("neg", ("x",), rule=KEEP, meta=M.same, backward=lambda c, g: -g, ref=np.negative, samples=S.unary())
abs_ = defop("abs", ("x",), rule=KEEP, meta=M.same, save=("x",), backward=lambda c, g: g * sign(c.x), ref=np.abs,
             samples=S.unary())
exp = defop("exp", rule=FLOAT, meta=M.same, save=("out",), backward=lambda c, g: g * c.out, ref=np.exp, samples=S.unary())


def _guard(g, d):
    """d (the rule's g * f'(x)), but exactly 0 where g is 0: the unselected branch of a where() (sqrt of a
    negative, log of 0) then gets 0, not 0 * nan = nan (PyTorch's wart, pytorch/pytorch#23395)."""
    return where(g == 0, 0.0, d)


log = defop("log", rule=FLOAT, meta=M.same, save=("x",), backward=lambda c, g: _guard(g, g / c.x), ref=np.log,
            samples=S.unary(0.5, 3.0))
log1p = defop("log1p", rule=FLOAT, meta=M.same, save=("x",), backward=lambda c, g: g / (c.x + 1), ref=np.log1p,
              samples=S.unary(-0.5, 3.0))
expm1 = defop("expm1", rule=FLOAT, meta=M.same, save=("out",), backward=lambda c, g: g * (c.out + 1), ref=np.expm1,
              samples=S.unary())
sqrt = defop("sqrt", rule=FLOAT, meta=M.same, save=("out",), backward=lambda c, g: _guard(g, g / (c.out * 2)), ref=np.sqrt,
             samples=S.unary(0.5, 3.0))
rsqrt = defop("rsqrt", rule=FLOAT, meta=M.same, save=("out",), backward=lambda c, g: _guard(g, g * c.out ** 3 * -0.5),
              ref=lambda x: 1 / np.sqrt(x), samples=S.unary(0.5, 3.0))
sin = defop("sin", rule=FLOAT, meta=M.same, save=("x",), backward=lambda c, g: g * cos(c.x), ref=np.sin, samples=S.unary())
cos = defop("cos", rule=FLOAT, meta=M.same, save=("x",), backward=lambda c, g: -g * sin(c.x), ref=np.cos, samples=S.unary())
tanh = defop("tanh", rule=FLOAT, meta=M.same, save=("out",), backward=lambda c, g: g * (1 - c.out * c.out), ref=np.tanh,
             samples=S.unary())
sigmoid = defop("sigmoid", rule=FLOAT, meta=M.same, save=("out",), backward=lambda c, g: g * c.out * (1 - c.out),
                ref=lambda x: 1 / (1 + np.exp(-x)), samples=S.unary(-30, 30))
relu = defop("relu", rule=KEEP, meta=M.same, save=("out",), backward=lambda c, g: call(relu_backward, (g, c.out), {}),
             ref=lambda x: np.maximum(x, 0), samples=S.unary())
# relu's backward as one fused kernel; linear in g, so its own backward is itself
relu_backward = defop("relu_backward", ("g", "y"), rule=KEEP, meta=M.broadcast, save=("y",), grad_inputs=(0,),
                      backward=lambda c, gg: (call(relu_backward, (gg, c.y), {}), None),
                      ref=lambda g, out: np.where(out > 0, g, 0), samples=S.binary(scalars=False))
erf = defop("erf", rule=FLOAT, meta=M.same, save=("x",),
            backward=lambda c, g: g * exp(-(c.x * c.x)) * (2 / math.sqrt(math.pi)),
            ref=np.vectorize(math.erf, otypes=[float]), samples=S.unary())
reciprocal = defop("reciprocal", rule=FLOAT, meta=M.same, save=("out",), backward=lambda c, g: -g * c.out * c.out,
                   ref=np.reciprocal, samples=S.unary(0.5, 2.0))
sign = defop("sign", rule=KEEP, meta=M.same, backward=lambda c, g: _zero(g), ref=np.sign, samples=S.unary())
floor = defop("floor", rule=KEEP, meta=M.same, backward=lambda c, g: _zero(g), ref=np.floor, samples=S.unary())
ceil = defop("ceil", rule=KEEP, meta=M.same, backward=lambda c, g: _zero(g), ref=np.ceil, samples=S.unary())
round_ = defop("round", rule=KEEP, meta=M.same, backward=lambda c, g: _zero(g), ref=np.round, samples=S.unary())
cast = defop("cast", rule=KEEP, meta=lambda x, dtype: (tuple(x.shape), dtype.np), backward=lambda c, g: g)  # the engine casts g back
Tensor._cast = lambda self, dt: call(cast, (self,), {"dtype": dt})


def _where_meta(cond, a, b):
    dtype = a.dtype if M.is_array(a) else b.dtype if M.is_array(b) else np.result_type(a, b)
    return M.broadcast(cond, a, b)[0], dtype


def _where_backward(c, g):
    zero = 0.0  # select, never multiply: g * 0 would turn an inf gradient into nan
    return None, where(c.cond, g, zero), where(c.cond, zero, g)


_where = defop("where", ("cond", "a", "b"), rule=KEEP, meta=_where_meta, save=("cond",), backward=_where_backward,
               ref=np.where, samples=S.shape_ops("where"))


def _clamp_backward(c, g):
    x, lo, hi = c.x, c.lo, c.hi
    keep = None
    if lo is not None:
        keep = x >= lo
    if hi is not None:
        keep = (x <= hi) if keep is None else keep & (x <= hi)
    zero = 0.0  # select, never multiply (as in where)
    gx = where(keep, g, zero) if keep is not None else g
    glo = where(x < lo, g, zero) if isinstance(lo, Tensor) else None
    ghi = where(x > hi, g, zero) if isinstance(hi, Tensor) else None
    return gx, glo, ghi


_clamp = defop("clamp", ("x", "lo", "hi"), rule=PROMOTE, meta=M.broadcast, save=("x", "lo", "hi"), backward=_clamp_backward,
               ref=np.clip, samples=S.shape_ops("clamp"))


# ---- public functions --------------------------------------------------------------------------
def _fn(op, name=None, method=True):
    def f(input, *args, **kwargs):
        return call(op, (input, *args), kwargs)

    f.__name__ = name or op.name
    f.__doc__ = f"devtensor.{f.__name__}: see torch.{f.__name__}"
    return public(f, name=f.__name__, method=method)


for _op in (add, sub, mul, div, pow_, atan2, maximum, minimum, remainder, floor_divide, eq, ne, lt, le, gt, ge,
            logical_and, logical_or, logical_xor, logical_not, isnan, isfinite, isinf, neg, abs_, exp, log,
            log1p, expm1, sqrt, rsqrt, sin, cos, tanh, sigmoid, relu, erf, reciprocal, sign, floor, ceil,

            bitwise_and, bitwise_or, bitwise_xor, bitwise_not):
    _fn(_op)

# aliases PyTorch users type
subtract = public(lambda input, other: call(sub, (input, other), {}), name="subtract")
multiply = public(lambda input, other: call(mul, (input, other), {}), name="multiply")
true_divide = public(lambda input, other: call(div, (input, other), {}), name="true_divide")
negative = public(lambda input: call(neg, (input,), {}), name="negative")
greater = public(lambda input, other: call(gt, (input, other), {}), name="greater")
less = public(lambda input, other: call(lt, (input, other), {}), name="less")


@composite(ref=R.divide, samples=S.composite("divide"), torch="torch.divide")
@public
def divide(input, other, *, rounding_mode=None):
    if rounding_mode is None:
        return call(div, (input, other), {})
    if rounding_mode == "floor":
        return call(floor_divide, (input, other), {})
    if rounding_mode == "trunc":
        q = call(div, (input, other), {})
        return (q.trunc() if q.dtype.is_floating_point else q).to(_dt.result_type(input, other))
    raise ValueError(f"divide: rounding_mode must be None, 'floor' or 'trunc', got {rounding_mode!r}")


@composite(ref=R.trunc, samples=S.composite("trunc"), torch="torch.trunc")
@public
def trunc(input):
    return where(input >= 0, floor(input), ceil(input))


@public
def round(input, *, decimals=0):  # noqa: A001 - PyTorch's name
    return call(round_, (input,), {"decimals": decimals} if decimals else {})


@public
def where(condition, input=None, other=None):
    if input is None and other is None:
        return condition.nonzero(as_tuple=True)
    if not isinstance(condition, Tensor):
        raise TypeError(f"where: condition must be a bool Tensor, got {type(condition).__name__}")
    if condition.dtype is not _dt.bool_:
        condition = condition.to(_dt.bool_)
    dt = _dt.result_type(*(v for v in (input, other)))
    a = input.to(dt) if isinstance(input, Tensor) else _py(input, dt)
    b = other.to(dt) if isinstance(other, Tensor) else _py(other, dt)
    return call(_where, (condition, a, b), {})


def _py(v, dt):
    v = (bool, int, float)[dt._cat](v)
    if dt.np.kind == "V":  # bfloat16: a 0-d cpu tensor (joins any device); a Python float would widen the result
        from .creation import tensor

        return tensor(v, dtype=dt, device="cpu")
    return v


@public
def clamp(input, min=None, max=None):  # noqa: A002 - PyTorch's names
    if min is None and max is None:
        raise ValueError("clamp: at least one of 'min' or 'max' must not be None")
    return call(_clamp, (input, min, max), {})


public(clamp, name="clip")


@public
def clamp_min(input, min):  # noqa: A002
    return clamp(input, min=min)


@public
def clamp_max(input, max):  # noqa: A002
    return clamp(input, max=max)


@composite(ref=R.square, samples=S.composite("square"), torch="torch.square")
@public
def square(input):
    return input * input


@composite(ref=R.gelu, samples=S.composite("gelu"), torch="torch.nn.functional.gelu")
@public
def gelu(input, approximate="none"):
    if approximate == "tanh":
        return 0.5 * input * (1 + tanh(math.sqrt(2 / math.pi) * (input + 0.044715 * input * input * input)))
    if approximate != "none":
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return 0.5 * input * (1 + erf(input * (1 / math.sqrt(2))))


@composite(ref=R.silu, samples=S.composite("silu"), torch="torch.nn.functional.silu")
@public
def silu(input):
    return input * sigmoid(input)


@composite(ref=R.lerp, samples=S.composite("lerp"), torch="torch.lerp")
@public
def lerp(input, end, weight):
    return input + weight * (end - input)


# ---- Python operators --------------------------------------------------------------------------
def _binop(op):
    return lambda self, other: call(op, (self, other), {})


def _rbinop(op):
    return lambda self, other: call(op, (other, self), {})


def _eqop(op):
    def f(self, other):
        if not isinstance(other, (Tensor, int, float, bool, np.generic, np.ndarray)):
            return NotImplemented
        return call(op, (self, other), {})

    return f


for _name, _op in (("add", add), ("sub", sub), ("mul", mul), ("truediv", div), ("floordiv", floor_divide),
                   ("mod", remainder), ("pow", pow_), ("and", bitwise_and), ("or", bitwise_or),
                   ("xor", bitwise_xor)):
    setattr(Tensor, f"__{_name}__", _binop(_op))
    setattr(Tensor, f"__r{_name}__", _rbinop(_op))
for _name, _op in (("eq", eq), ("ne", ne), ("lt", lt), ("le", le), ("gt", gt), ("ge", ge)):
    setattr(Tensor, f"__{_name}__", _eqop(_op))
Tensor.__neg__ = lambda self: call(neg, (self,), {})
Tensor.__pos__ = lambda self: self
Tensor.__abs__ = lambda self: call(abs_, (self,), {})
Tensor.__invert__ = lambda self: call(bitwise_not, (self,), {})
Tensor.__hash__ = lambda self: id(self)
