"""Elementwise ops: each declared once with its dtype rule and backward rule (in Tensor ops).

Broadcasting and dtype promotion are undone by the autograd engine, never here.

One file past 600 lines on purpose: each Tensor operator (__add__, __radd__, __iadd__, ...) is
attached right below the op it calls, so an op's declaration, its rule and its operators read
together; split by family, the operators would sit apart from their ops. The complex-only ops
(real, imag, conj, angle, ...) live in complex_ops.py.
"""
from __future__ import annotations

import math

import numpy as np

from .. import dtypes as _dt
from ..dispatch import COMPARE, DIVIDE, FLOAT, KEEP, OPS as _OPS, PROMOTE, call, defop
from ..tensor import Tensor
from . import meta_rules as M
from . import reference as R
from . import samples as S
from ._api import composite, not_a_tensor, public


def _relu_meta(x):
    if x.dtype.kind == "b":
        raise RuntimeError("relu is not implemented for bool tensors")
    return tuple(x.shape), x.dtype


def _zero(g):
    return g * 0


def _cj(v):
    """conj(v) for a complex tensor or Python complex, v itself otherwise: PyTorch's gradient of a real loss
    w.r.t. a complex input is grad * conj(f'(z)), so the rules below conjugate the local derivative."""
    if v.__class__ is complex:
        return v.conjugate()
    if isinstance(v, Tensor) and v._data.dtype.kind == "c":
        return call(_OPS["conj"], (v,), {})
    return v


# ---- binary arithmetic ------------------------------------------------------------------------
add = defop("add", ("a", "b"), rule=PROMOTE, meta=M.broadcast, backward=lambda c, g: (g, g), ref=np.add, samples=S.binary(),
            complex=True)
sub = defop("sub", ("a", "b"), rule=PROMOTE, meta=M.broadcast, backward=lambda c, g: (g, -g), ref=np.subtract,
            samples=S.binary(), complex=True)
# mul and div skip the side that needs no gradient: `loss / n` and `x * mask` are in every
# training step, and the unused side's formula costs three ops for div.
mul = defop("mul", ("a", "b"), rule=PROMOTE, meta=M.broadcast, save=("a", "b"),
            backward=lambda c, g: (g * _cj(c.b) if c.needs_input_grad(0) else None,
                                   g * _cj(c.a) if c.needs_input_grad(1) else None),
            ref=np.multiply, samples=S.binary(), complex=True)
div = defop("div", ("a", "b"), rule=DIVIDE, meta=M.broadcast, save=("a", "b"),
            backward=lambda c, g: (g / _cj(c.b) if c.needs_input_grad(0) else None,
                                   -g * _cj(c.a) / _cj(c.b * c.b) if c.needs_input_grad(1) else None),
            ref=np.true_divide, samples=S.binary(b_low=0.5, b_high=2.0), complex=True)


def _pow_backward(c, g):
    # PyTorch's rules: no gradient to the base where the exponent is 0 (x ** 0 is constant, even at x = 0),
    # and none to the exponent where the base is 0 and the exponent >= 0 (elsewhere out * log(base), nan
    # for a negative base, as in PyTorch)
    a, b = c.a, c.b
    ga = gb = None
    if c.needs_input_grad(0):
        if isinstance(b, Tensor):
            ga = where(b == 0, 0.0, g * _cj(b) * _cj(a ** (b - 1)))
        elif b == 0:
            ga = g.new_zeros(tuple(g.shape))
        else:
            ga = g * _cj(b) * _cj(a ** (b - 1))
    if isinstance(b, Tensor) and c.needs_input_grad(1):
        if isinstance(a, Tensor):
            zero = (a == 0) & ((b.real if b._data.dtype.kind == "c" else b) >= 0)
            gb = where(zero, 0.0, g * _cj(c.out) * _cj(log(where(zero, 1.0, a))))  # (inner where: no 0 * -inf)
        elif a == 0:
            gb = where(b >= 0, 0.0, g * where(b >= 0, 0.0, c.out) * -math.inf)
        else:
            gb = g * c.out * (math.log(a) if a > 0 else math.nan)
    return ga, gb


pow_ = defop("pow", ("a", "b"), rule=PROMOTE, meta=M.broadcast, save=("a", "b", "out"), backward=_pow_backward,
             ref=np.power, samples=S.binary(low=0.5, high=2.0), complex=True)


def _atan2_backward(c, g):
    # 1 / (a^2 + b^2) taken as 0 where it is infinite (at a = b = 0), as PyTorch's rule: no 0 * inf = nan
    a, b = c.a, c.b
    r = a * a + b * b
    zero = r == 0
    recip = where(zero, 0.0, 1.0 / where(zero, 1.0, r))
    return (g * b * recip if c.needs_input_grad(0) else None,
            -g * a * recip if c.needs_input_grad(1) else None)


atan2 = defop("atan2", ("a", "b"), rule=DIVIDE, meta=M.broadcast, save=("a", "b"), backward=_atan2_backward,
              ref=np.arctan2, samples=S.binary(b_low=0.5, b_high=2.0))


def _maximum_backward(c, g, sign):
    # PyTorch's rule: ties share the gradient (g / 2 each); the side that lost gets 0; where either side is
    # NaN (no comparison holds) both get g. Selected with where, never multiplied (an inf g stays inf).
    a, b = c.a, c.b
    tie = a == b
    shared = where(tie, g * 0.5, g)
    a_lost, b_lost = (a < b, a > b) if sign > 0 else (a > b, a < b)
    return (where(a_lost, 0.0, shared) if c.needs_input_grad(0) else None,
            where(b_lost, 0.0, shared) if c.needs_input_grad(1) else None)


maximum = defop("maximum", ("a", "b"), rule=PROMOTE, meta=M.broadcast, save=("a", "b"),
                backward=lambda c, g: _maximum_backward(c, g, 1), ref=np.maximum, samples=S.binary())
minimum = defop("minimum", ("a", "b"), rule=PROMOTE, meta=M.broadcast, save=("a", "b"),
                backward=lambda c, g: _maximum_backward(c, g, -1), ref=np.minimum, samples=S.binary())
def _remainder_backward(c, g):
    if not isinstance(c.a, Tensor):  # PyTorch's remainder(Scalar, Tensor) has no derivative
        return _not_implemented("remainder with a scalar dividend")(c, g)
    with _no_grad():
        q = floor_divide(c.a, c.b)
    return g, -g * q


def _grad_on(*xs):
    from ..autograd.grad_mode import is_grad_enabled

    return is_grad_enabled() and any(isinstance(x, Tensor) and x._rg for x in xs)


def _no_grad():
    from ..autograd.grad_mode import no_grad

    return no_grad()


remainder = defop("remainder", ("a", "b"), rule=PROMOTE, meta=M.broadcast, save=("a", "b"),
                  backward=_remainder_backward, ref=np.remainder,
                  samples=S.binary(b_low=0.5, b_high=2.0))
def _not_implemented(name):
    def backward(c, g):
        raise RuntimeError(f"derivative for {name} is not implemented (as in PyTorch)")

    return backward


# PyTorch's floor_divide output requires grad, and its backward raises: so does devtensor's (divide(...,
# rounding_mode='floor') has a zero gradient instead, as PyTorch's)
floor_divide = defop("floor_divide", ("a", "b"), rule=PROMOTE, meta=M.broadcast, backward=_not_implemented("floor_divide"),
                     ref=np.floor_divide, samples=S.binary(b_low=0.5, b_high=2.0))
bitwise_and = defop("bitwise_and", ("a", "b"), rule=PROMOTE, meta=M.broadcast, differentiable=False)
bitwise_or = defop("bitwise_or", ("a", "b"), rule=PROMOTE, meta=M.broadcast, differentiable=False)
bitwise_xor = defop("bitwise_xor", ("a", "b"), rule=PROMOTE, meta=M.broadcast, differentiable=False)
bitwise_not_ = defop("bitwise_not", ("x",), rule=KEEP, meta=M.same, differentiable=False)

# ---- comparisons and logic (no gradients) ------------------------------------------------------
eq = defop("eq", ("a", "b"), rule=COMPARE, meta=M.compare, differentiable=False, ref=np.equal, samples=S.compare(),
           complex=True)
ne = defop("ne", ("a", "b"), rule=COMPARE, meta=M.compare, differentiable=False, ref=np.not_equal, samples=S.compare(),
           complex=True)
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
isnan = defop("isnan", ("x",), rule=KEEP, meta=M.predicate, differentiable=False, ref=np.isnan, samples=S.unary(),
              complex=True)
isfinite = defop("isfinite", ("x",), rule=KEEP, meta=M.predicate, differentiable=False, ref=np.isfinite, samples=S.unary(),
                 complex=True)
isinf = defop("isinf", ("x",), rule=KEEP, meta=M.predicate, differentiable=False, ref=np.isinf, samples=S.unary(),
              complex=True)

# ---- unary math -------------------------------------------------------------------------------
def _abs_meta(x):
    return tuple(x.shape), (x.dtype.type(0).real.dtype if x.dtype.kind == "c" else x.dtype)  # |z| is real


neg = defop("neg", ("x",), rule=KEEP, meta=M.same, backward=lambda c, g: -g, ref=np.negative, samples=S.unary(),
            complex=True)
abs_ = defop("abs", ("x",), rule=KEEP, meta=_abs_meta, save=("x",), backward=lambda c, g: g * _sgn(c.x), ref=np.abs,
             samples=S.unary(), complex=True)


def _sgn(x):
    """sign(x) with PyTorch's sign(NaN) = 0 (numpy gives NaN); for complex z, z / |z| (0 at 0), as torch.sgn."""
    if x._data.dtype.kind == "c":
        a = abs(x)
        zero = a == 0
        return where(zero, 0.0, x / where(zero, 1.0, a))
    s = call(sign_, (x,), {})
    return where(x != x, 0.0, s) if x.dtype.is_floating_point else s
exp = defop("exp", rule=FLOAT, meta=M.same, save=("out",), backward=lambda c, g: g * _cj(c.out), ref=np.exp, samples=S.unary(),
            complex=True)


def _guard(g, d, fprime):
    """d (the rule's g * f'(x)), but exactly 0 where g is 0: the unselected branch of a where() (sqrt of a
    negative, log of 0) then gets 0, not 0 * nan = nan (PyTorch's wart, pytorch/pytorch#23395). Where g is 0
    the value is g * f' with f' made finite, so it still depends on g: double backward (d(grad)/dg = f')
    stays right where the incoming gradient happens to be exactly 0 (a 0/1 target in a loss)."""
    return where(g == 0, g * where(isfinite(fprime), fprime, 0.0), d)


log = defop("log", rule=FLOAT, meta=M.same, save=("x",), backward=lambda c, g: _guard(g, g / _cj(c.x), reciprocal(_cj(c.x))),
            ref=np.log, samples=S.unary(0.5, 3.0), complex=True)
log1p = defop("log1p", rule=FLOAT, meta=M.same, save=("x",), backward=lambda c, g: g / _cj(c.x + 1), ref=np.log1p,
              samples=S.unary(-0.5, 3.0), complex=True)
expm1 = defop("expm1", rule=FLOAT, meta=M.same, save=("out",), backward=lambda c, g: g * _cj(c.out + 1), ref=np.expm1,
              samples=S.unary(), complex=True)
sqrt = defop("sqrt", rule=FLOAT, meta=M.same, save=("out",),
             backward=lambda c, g: _guard(g, g / (_cj(c.out) * 2), 0.5 / _cj(c.out)), ref=np.sqrt,
             samples=S.unary(0.5, 3.0), complex=True)
rsqrt = defop("rsqrt", rule=FLOAT, meta=M.same, save=("out",),
              backward=lambda c, g: _guard(g, g * _cj(c.out ** 3) * -0.5, _cj(c.out ** 3) * -0.5),
              ref=lambda x: 1 / np.sqrt(x), samples=S.unary(0.5, 3.0), complex=True)
sin = defop("sin", rule=FLOAT, meta=M.same, save=("x",), backward=lambda c, g: g * _cj(cos(c.x)), ref=np.sin,
            samples=S.unary(), complex=True)
cos = defop("cos", rule=FLOAT, meta=M.same, save=("x",), backward=lambda c, g: -g * _cj(sin(c.x)), ref=np.cos,
            samples=S.unary(), complex=True)
tanh = defop("tanh", rule=FLOAT, meta=M.same, save=("out",), backward=lambda c, g: g * _cj(1 - c.out * c.out), ref=np.tanh,
             samples=S.unary(), complex=True)
sigmoid = defop("sigmoid", rule=FLOAT, meta=M.same, save=("out",), backward=lambda c, g: g * _cj(c.out) * _cj(1 - c.out),
                ref=lambda x: 1 / (1 + np.exp(-x)), samples=S.unary(-30, 30), complex=True)
relu = defop("relu", rule=KEEP, meta=_relu_meta, save=("out",), backward=lambda c, g: call(relu_backward, (g, c.out), {}),
             ref=lambda x: np.maximum(x, 0), samples=S.unary())
# relu's backward as one fused kernel; linear in g, so its own backward is itself
relu_backward = defop("relu_backward", ("g", "y"), rule=KEEP, meta=M.broadcast, save=("y",), grad_inputs=(0,),
                      backward=lambda c, gg: (call(relu_backward, (gg, c.y), {}), None),
                      ref=lambda g, out: np.where(out > 0, g, 0), samples=S.binary(scalars=False))
erf = defop("erf", rule=FLOAT, meta=M.same, save=("x",),
            backward=lambda c, g: g * exp(-(c.x * c.x)) * (2 / math.sqrt(math.pi)),
            ref=np.vectorize(math.erf, otypes=[float]), samples=S.unary())
reciprocal = defop("reciprocal", rule=FLOAT, meta=M.same, save=("out",), backward=lambda c, g: -g * _cj(c.out) * _cj(c.out),
                   ref=np.reciprocal, samples=S.unary(0.5, 2.0), complex=True)
sign_ = defop("sign", rule=KEEP, meta=M.same, backward=lambda c, g: _zero(g), ref=np.sign, samples=S.unary())
floor = defop("floor", rule=KEEP, meta=M.same, backward=lambda c, g: _zero(g), ref=np.floor, samples=S.unary())
ceil = defop("ceil", rule=KEEP, meta=M.same, backward=lambda c, g: _zero(g), ref=np.ceil, samples=S.unary())
round_ = defop("round", rule=KEEP, meta=M.same, backward=lambda c, g: _zero(g), ref=np.round, samples=S.unary())
cast = defop("cast", rule=KEEP, meta=lambda x, dtype: (tuple(x.shape), dtype.np), backward=lambda c, g: g,  # the engine casts g back
             complex=True)
Tensor._cast = lambda self, dt: call(cast, (self,), {"dtype": dt})


def _where_meta(cond, a, b):
    dtype = a.dtype if M.is_array(a) else b.dtype if M.is_array(b) else np.result_type(a, b)
    return M.broadcast(cond, a, b)[0], dtype


def _where_backward(c, g):
    zero = 0.0  # select, never multiply: g * 0 would turn an inf gradient into nan
    return None, where(c.cond, g, zero), where(c.cond, zero, g)


_where = defop("where", ("cond", "a", "b"), rule=KEEP, meta=_where_meta, save=("cond",), backward=_where_backward,
               ref=np.where, samples=S.shape_ops("where"), complex=True)


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
def not_tensor(name, argname, position, v):
    return not_a_tensor(name, argname, position, v)


# unary functions PyTorch refuses on bool tensors, and the class it raises
_NO_BOOL = {"abs": NotImplementedError, "floor": NotImplementedError, "ceil": NotImplementedError,
            "round": NotImplementedError, "neg": RuntimeError, "negative": RuntimeError, "relu": RuntimeError}


def _no_bool(name, cls):
    if cls is RuntimeError and name in ("neg", "negative"):
        return RuntimeError(f"{name}: negation, the `-` operator, on a bool tensor is not supported. If you are "
                            "trying to invert a mask, use the `~` or `logical_not()` operator instead.")
    return cls(f"{name}: not implemented for bool tensors")


def _unary(op, name):
    bool_error = _NO_BOOL.get(name)

    def f(input):
        if input.__class__ is not Tensor and not isinstance(input, Tensor):
            raise not_tensor(name, "input", 1, input)
        if bool_error is not None and input._data.dtype.kind == "b":
            raise _no_bool(name, bool_error)
        return call(op, (input,), {})

    return f


# which arguments of a binary function may be Python (or numpy) scalars, as PyTorch's overloads allow:
# "either" (add, mul, pow, ...: one of the two), "other" (comparisons: the second only), "none" (maximum,
# atan2, logical_*: Tensors only). A numpy array is never accepted by a function form (PyTorch's TypeError);
# the operators (t + array) still take one.
def _binary(op, name, scalars, second="other"):
    check = _EXTRA_CHECKS.get(op.name)

    def f(input, other):
        if input.__class__ is not Tensor and not isinstance(input, Tensor):
            if scalars != "either" or isinstance(input, np.ndarray) or not isinstance(other, Tensor):
                raise not_tensor(name, "input", 1, input)
        elif other.__class__ is not Tensor and not isinstance(other, Tensor):
            if scalars == "none" or isinstance(other, np.ndarray):
                raise not_tensor(name, second, 2, other)
        if check is not None:
            check(name, input, other)
        return call(op, (input, other), {})

    return f


def _is_bool(v):
    return v.__class__ is bool or isinstance(v, np.bool_) or (isinstance(v, Tensor) and v._data.dtype.kind == "b")


def _check_sub(name, a, b):
    if _is_bool(a) or _is_bool(b):
        raise RuntimeError(f"{name}: subtraction, the `-` operator, with a bool tensor is not supported. If you are "
                           "trying to invert a mask, use the `~` or `logical_not()` operator instead.")


def _check_bitwise(name, a, b):
    for v in (a, b):
        if isinstance(v, float) or (isinstance(v, Tensor) and v._data.dtype.kind in "fV"):
            raise NotImplementedError(f"{name}: not implemented for floating point tensors (integer and bool only)")


_EXTRA_CHECKS = {"sub": _check_sub, "bitwise_and": _check_bitwise, "bitwise_or": _check_bitwise,
                 "bitwise_xor": _check_bitwise}


def _fn(op, name=None, method=True, scalars=None, second="other"):
    n = name or op.name
    f = _unary(op, n) if len(op.inputs) == 1 else _binary(op, n, scalars, second)
    f.__name__ = n
    f.__doc__ = f"devtensor.{n}: see torch.{n}"
    return public(f, name=n, method=method)


for _op in (logical_not, isnan, isfinite, isinf, neg, abs_, exp, log, log1p, expm1, sqrt, rsqrt, sin, cos, tanh,
            sigmoid, relu, erf, reciprocal, floor, ceil):
    _fn(_op)
for _op in (mul, div, remainder, floor_divide, bitwise_and, bitwise_or, bitwise_xor):
    _fn(_op, scalars="either")
_pow2 = _binary(pow_, "pow", "either", "exponent")


@public(name="pow")
def pow(input, exponent):  # noqa: A001 - PyTorch's name (torch.pow(input, exponent))
    return _pow2(input, exponent)


@public
def bitwise_not(input):
    if input.__class__ is not Tensor and not isinstance(input, Tensor):
        raise not_tensor("bitwise_not", "input", 1, input)
    if input._data.dtype.kind in "fV":
        raise NotImplementedError("bitwise_not: not implemented for floating point tensors (integer and bool only)")
    return call(bitwise_not_, (input,), {})


@public
def sign(input):
    if input.__class__ is not Tensor and not isinstance(input, Tensor):
        raise not_tensor("sign", "input", 1, input)
    if input._data.dtype.kind == "b":
        return input.clone()
    if input._data.dtype.kind == "c":
        return call(sign_, (input,), {})  # refused, naming sign: PyTorch's sign is not sgn on complex either
    return _sgn(input)  # sign(NaN) = 0, as PyTorch
for _op in (eq, ne, lt, le, gt, ge):
    _fn(_op, scalars="other")
for _op in (atan2, maximum, minimum, logical_and, logical_or, logical_xor):
    _fn(_op, scalars="none")
# aliases PyTorch users type
multiply = _fn(mul, "multiply", scalars="either")
true_divide = _fn(div, "true_divide", scalars="either")
negative = _fn(neg, "negative")
greater = _fn(gt, "greater", scalars="other")
less = _fn(lt, "less", scalars="other")
_add2, _sub2 = _binary(add, "add", "either"), _binary(sub, "sub", "either")


def _add_public(input, other, *, alpha=1):
    if alpha != 1:
        other = other * alpha
    return _add2(input, other)


def _sub_public(input, other, *, alpha=1):
    if alpha != 1:
        other = other * alpha
    return _sub2(input, other)


public(_add_public, name="add")
public(_sub_public, name="sub", aliases=("subtract",))


@composite(ref=R.divide, samples=S.composite("divide"), torch="torch.divide")
@public
def divide(input, other, *, rounding_mode=None):
    if isinstance(input, np.ndarray) or isinstance(other, np.ndarray) or not (
            isinstance(input, Tensor) or isinstance(other, Tensor)):
        name, pos, bad = ("other", 2, other) if isinstance(input, Tensor) else ("input", 1, input)
        raise not_tensor("divide", name, pos, bad)
    if rounding_mode is None:
        return call(div, (input, other), {})
    if rounding_mode == "floor":
        # floor_divide's values with PyTorch's zero gradient for this spelling (floor_divide's own backward raises)
        with _no_grad():
            q = call(floor_divide, (input, other), {})
        if not _grad_on(input, other):
            return q
        from .creation import full

        never = full(tuple(q.shape), False, dtype=_dt.bool_, device=q.device)
        return call(_where, (never, call(add, (input, other), {}).to(q.dtype), q), {})
    if rounding_mode == "trunc":
        q = call(div, (input, other), {})
        return (q.trunc() if q.dtype.is_floating_point else q).to(_dt.result_type(input, other))
    raise ValueError(f"divide: rounding_mode must be None, 'floor' or 'trunc', got {rounding_mode!r}")


@composite(ref=R.trunc, samples=S.composite("trunc"), torch="torch.trunc")
@public
def trunc(input):
    if isinstance(input, Tensor) and input._data.dtype.kind == "b":
        raise _no_bool("trunc", NotImplementedError)
    return where(input >= 0, floor(input), ceil(input))


@public
def round(input, *, decimals=0):  # noqa: A001 - PyTorch's name
    if input.__class__ is not Tensor and not isinstance(input, Tensor):
        raise not_tensor("round", "input", 1, input)
    if input._data.dtype.kind == "b":
        raise _no_bool("round", NotImplementedError)
    return call(round_, (input,), {"decimals": decimals} if decimals else {})


@public(method=False)
def where(condition, input=None, other=None):
    if input is None and other is None:
        return condition.nonzero(as_tuple=True)
    if not isinstance(condition, Tensor):
        raise TypeError(f"where: condition must be a bool Tensor, got {type(condition).__name__}")
    if condition.dtype is not _dt.bool_:
        raise RuntimeError(f"where: expected condition to be a boolean tensor, but got a tensor with dtype "
                           f"{condition.dtype.name} (compare it, e.g. condition != 0)")
    if isinstance(input, Tensor) or isinstance(other, Tensor):
        dt = _dt.result_type(input, other)
    else:  # two Python scalars: PyTorch's scalar types (bool, int64, the default float), not numpy's float64
        dt = _scalar_pair_dtype(input, other)
        from .creation import full

        input = full((), input, dtype=dt, device=condition.device)
    a = input.to(dt) if isinstance(input, Tensor) else _py(input, dt)
    b = other.to(dt) if isinstance(other, Tensor) else _py(other, dt)
    return call(_where, (condition, a, b), {})


@public(function=False, name="where")
def _where_method(self, condition, other):
    """Tensor.where(condition, other): self where condition holds, other elsewhere (PyTorch's method form)."""
    return where(condition, self, other)


def _scalar_pair_dtype(a, b):
    for v in (a, b):
        if not isinstance(v, (bool, int, float, np.generic)):
            raise TypeError(f"where: expected Tensors or Python scalars as input and other, got {type(v).__name__}")
    if all(isinstance(v, (bool, np.bool_)) for v in (a, b)):
        return _dt.bool_
    if all(isinstance(v, (bool, int, np.bool_, np.integer)) for v in (a, b)):
        return _dt.int64
    return _dt.get_default_dtype()


def _py(v, dt):
    v = (bool, int, float, complex)[dt._cat](v)
    if dt.np.kind == "V":  # bfloat16: a 0-d cpu tensor (joins any device); a Python float would widen the result
        from .creation import tensor

        return tensor(v, dtype=dt, device="cpu")
    return v


@public
def clamp(input, min=None, max=None):  # noqa: A002 - PyTorch's names
    if min is None and max is None:
        raise RuntimeError("clamp: at least one of 'min' or 'max' must not be None")
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
    if isinstance(input, Tensor) and input._data.dtype.kind == "b":
        input = input.to(_dt.int64)  # PyTorch: square of a bool tensor is int64 (pow(x, 2))
    return input * input


@composite(ref=R.gelu, samples=S.composite("gelu"), torch="torch.nn.functional.gelu")
@public
def gelu(input, approximate="none"):
    if input.__class__ is not Tensor and not isinstance(input, Tensor):
        raise not_tensor("gelu", "input", 1, input)
    if approximate == "tanh":
        return 0.5 * input * (1 + tanh(math.sqrt(2 / math.pi) * (input + 0.044715 * input * input * input)))
    if approximate != "none":
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return 0.5 * input * (1 + erf(input * (1 / math.sqrt(2))))


@composite(ref=R.silu, samples=S.composite("silu"), torch="torch.nn.functional.silu")
@public
def silu(input):
    if input.__class__ is not Tensor and not isinstance(input, Tensor):
        raise not_tensor("silu", "input", 1, input)
    return input * sigmoid(input)


@composite(ref=R.lerp, samples=S.composite("lerp"), torch="torch.lerp")
@public
def lerp(input, end, weight):
    # PyTorch's two-sided formula (exact at both ends; infinities give its NaNs): from `input` for |w| < 0.5,
    # from `end` otherwise
    for name, v in (("input", input), ("end", end)):
        if not isinstance(v, Tensor):
            raise not_tensor("lerp", name, 1 if name == "input" else 2, v)
    d = end - input
    if isinstance(weight, Tensor):
        return where(weight.abs() < 0.5, input + weight * d, end - d * (1 - weight))
    return input + weight * d if abs(weight) < 0.5 else end - d * (1 - weight)


# ---- Python operators --------------------------------------------------------------------------
def _binop(op):
    return lambda self, other: call(op, (self, other), {})


def _rbinop(op):
    return lambda self, other: call(op, (other, self), {})


def _eqop(op):
    def f(self, other):
        if not isinstance(other, (Tensor, int, float, complex, bool, np.generic, np.ndarray)):
            return NotImplemented
        return call(op, (self, other), {})

    return f


def _subop(self, other):
    if self._data.dtype.kind == "b" or _is_bool(other):
        _check_sub("sub", self, other)
    return call(sub, (self, other), {})


def _rsubop(self, other):
    if self._data.dtype.kind == "b" or _is_bool(other):
        _check_sub("sub", other, self)
    return call(sub, (other, self), {})


def _bitop(op):
    def f(self, other):
        _check_bitwise(op.name, self, other)
        return call(op, (self, other), {})

    def r(self, other):
        _check_bitwise(op.name, other, self)
        return call(op, (other, self), {})

    return f, r


for _name, _op in (("add", add), ("mul", mul), ("truediv", div), ("floordiv", floor_divide),
                   ("mod", remainder), ("pow", pow_)):
    setattr(Tensor, f"__{_name}__", _binop(_op))
    setattr(Tensor, f"__r{_name}__", _rbinop(_op))
Tensor.__sub__, Tensor.__rsub__ = _subop, _rsubop
for _name, _op in (("and", bitwise_and), ("or", bitwise_or), ("xor", bitwise_xor)):
    setattr(Tensor, f"__{_name}__", _bitop(_op)[0])
    setattr(Tensor, f"__r{_name}__", _bitop(_op)[1])
for _name, _op in (("eq", eq), ("ne", ne), ("lt", lt), ("le", le), ("gt", gt), ("ge", ge)):
    setattr(Tensor, f"__{_name}__", _eqop(_op))


def _negop(self):
    if self._data.dtype.kind == "b":
        raise _no_bool("neg", RuntimeError)
    return call(neg, (self,), {})


def _absop(self):
    if self._data.dtype.kind == "b":
        raise _no_bool("abs", NotImplementedError)
    return call(abs_, (self,), {})


Tensor.__neg__ = _negop
Tensor.__pos__ = lambda self: self
Tensor.__abs__ = _absop
Tensor.__invert__ = bitwise_not
Tensor.__hash__ = lambda self: id(self)
