"""Elementwise special functions and the binary math PyTorch has beyond elementwise.py: erfc, erfinv, lgamma,
digamma, polygamma, hypot, logaddexp, logaddexp2, fmod, copysign, nan_to_num, xlogy (ops with PyTorch's
gradients: lgamma' = digamma, digamma' = polygamma(1), polygamma(n)' = polygamma(n + 1), so every order
differentiates again). Also reachable as devtensor.special.<name> (devtensor/special.py)."""
from __future__ import annotations

import math

import numpy as np

from ..dispatch import DIVIDE, FLOAT, KEEP, PROMOTE, call, defop
from ..tensor import Tensor
from . import meta_rules as M
from . import samples as S
from ._api import public

__all__ = ["erfc", "erfinv", "lgamma", "digamma", "polygamma", "hypot", "logaddexp", "logaddexp2", "fmod", "copysign",
           "nan_to_num", "xlogy"]

_SQRT_PI = math.sqrt(math.pi)


def _E():
    from . import elementwise as E

    return E


# ---- references (numpy lacks these: math's, vectorised; digamma / polygamma by series) ------------------
def _vec(f):
    def ref(x):
        with np.errstate(all="ignore"):
            return np.vectorize(f, otypes=[np.float64])(x).astype(x.dtype if x.dtype.kind == "f" else np.float64)

    return ref


def _lgamma_py(v):
    if v <= 0 and v == math.floor(v):
        return math.inf
    return math.lgamma(v)


def _digamma_py(x):
    # psi(x) = -gamma + sum_{k>=0} (1/(k+1) - 1/(k+x)), via the recurrence and the asymptotic series
    r = 0.0
    while x < 10:
        r -= 1 / x
        x += 1
    f = 1 / (x * x)
    return r + math.log(x) - 0.5 / x - f * (1 / 12 - f * (1 / 120 - f * (1 / 252 - f * (1 / 240 - f / 132))))


def _polygamma_py(n, x):
    # (-1)^(n+1) n! sum_k 1/(x+k)^(n+1): the first 10^5 terms exactly, the tail by the Euler-Maclaurin integral
    k = np.arange(100000, dtype=np.float64)
    s = np.sum(1.0 / (x + k) ** (n + 1))
    t = x + 100000
    s += 1.0 / (n * t ** n) + 0.5 / t ** (n + 1) + (n + 1) / (12 * t ** (n + 2))
    return (-1) ** (n + 1) * math.factorial(n) * s


def _erfinv_py(y):
    if y <= -1 or y >= 1:
        return math.copysign(math.inf, y) if abs(y) == 1 else math.nan
    lo, hi = -10.0, 10.0  # bisection on erf: slow but independent of the kernel's method
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if math.erf(mid) < y:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def _ref_polygamma(x, n):
    with np.errstate(all="ignore"):
        return np.vectorize(lambda v: _polygamma_py(n, v), otypes=[np.float64])(x).astype(x.dtype)


def _ref_xlogy(a, b):
    with np.errstate(all="ignore"):
        return np.where(a == 0, 0.0, a * np.log(b)).astype(np.result_type(a, b))


# ---- samples --------------------------------------------------------------------------------------
def _binary_pos(dtype=np.float64):
    return S.binary(0.3, 2.0, 0.3, 2.0)(dtype)


def _polygamma_samples(dtype=np.float64):
    r = np.random.default_rng(60)
    x = r.uniform(0.5, 3.0, (3, 4)).astype(dtype)
    return [((x,), {"n": 1}), ((x,), {"n": 2}), ((x.T,), {"n": 3}), ((x[:0],), {"n": 1})]


def _nan_to_num_samples(dtype=np.float64):
    r = np.random.default_rng(61)
    x = r.uniform(-2, 2, (3, 4)).astype(dtype)
    x[0, 0], x[1, 1], x[2, 2] = np.nan, np.inf, -np.inf
    # (the default posinf / neginf, the dtype's extremes, would drown gradcheck's sums: tests/test_ops_extra.py)
    return [((x,), {"nan": 0.0, "posinf": 5.0, "neginf": -4.0}), ((x,), {"nan": 1.5, "posinf": 9.0, "neginf": -9.0}),
            ((x.T,), {"nan": -1.0, "posinf": 3.0, "neginf": -3.0})]


def _fmod_samples(dtype=np.float64):
    r = np.random.default_rng(62)
    a = r.uniform(-5, 5, (3, 4)).astype(dtype)
    b = (r.uniform(0.7, 2, (3, 4)) * r.choice([-1, 1], (3, 4))).astype(dtype)
    return [((a, b), {}), ((a, b[:1]), {}), ((a.T, b.T), {}), ((a[:0], b[:0]), {})]


# ---- backward rules ---------------------------------------------------------------------------------
def _hypot_backward(c, g):
    return (g * c.a / c.out if c.needs_input_grad(0) else None,
            g * c.b / c.out if c.needs_input_grad(1) else None)


def _logaddexp_backward(c, g, base_e=True):
    E = _E()
    d = c.b - c.a
    if base_e:
        wa, wb = E.sigmoid(-d), E.sigmoid(d)  # 1 / (1 + exp(b - a)) and its mirror
    else:
        ln2 = math.log(2.0)
        wa, wb = E.sigmoid(-d * ln2), E.sigmoid(d * ln2)
    return (g * wa if c.needs_input_grad(0) else None, g * wb if c.needs_input_grad(1) else None)


def _fmod_backward(c, g):
    E = _E()
    gb = None
    if c.needs_input_grad(1) and isinstance(c.b, Tensor):
        q = c.a / c.b
        gb = -g * E.where(q >= 0, E.floor(q), E.ceil(q))
    return g, gb


def _copysign_backward(c, g):
    E = _E()
    ga = None
    if c.needs_input_grad(0):
        zero = c.a == 0
        ga = g * E.where(zero, 0.0, c.out / E.where(zero, 1.0, c.a))
    gb = g * 0 if c.needs_input_grad(1) and isinstance(c.b, Tensor) else None
    return ga, gb


def _xlogy_backward(c, g):
    E = _E()
    a, b = c.a, c.b
    ga = gb = None
    if c.needs_input_grad(0):
        ga = E.where((a == 0) & (b <= 0), 0.0, call(xlogy_, (g, b), {})) if isinstance(b, Tensor) else \
            g * (math.log(b) if b > 0 else math.nan)
    if c.needs_input_grad(1) and isinstance(b, Tensor):
        gb = g * a / b
    return ga, gb


# ---- ops ----------------------------------------------------------------------------------------------
erfc_ = defop("erfc", rule=FLOAT, meta=M.same, save=("x",),
              backward=lambda c, g: g * _E().exp(-(c.x * c.x)) * (-2 / _SQRT_PI),
              ref=_vec(math.erfc), samples=S.unary())
erfinv_ = defop("erfinv", rule=FLOAT, meta=M.same, save=("out",),
                backward=lambda c, g: g * _E().exp(c.out * c.out) * (_SQRT_PI / 2),
                ref=_vec(_erfinv_py), samples=S.unary(-0.9, 0.9))
lgamma_ = defop("lgamma", rule=FLOAT, meta=M.same, save=("x",), backward=lambda c, g: g * call(digamma_, (c.x,), {}),
                ref=_vec(_lgamma_py), samples=S.unary(0.3, 4.0))
digamma_ = defop("digamma", rule=FLOAT, meta=M.same, save=("x",),
                 backward=lambda c, g: g * call(polygamma_, (c.x,), {"n": 1}),
                 ref=_vec(_digamma_py), samples=S.unary(0.3, 4.0))
polygamma_ = defop("polygamma", rule=FLOAT, meta=M.same, save=("x",),
                   backward=lambda c, g: g * call(polygamma_, (c.x,), {"n": c.n + 1}),
                   ref=_ref_polygamma, samples=_polygamma_samples)
hypot_ = defop("hypot", ("a", "b"), rule=DIVIDE, meta=M.broadcast, save=("a", "b", "out"), backward=_hypot_backward,
               ref=np.hypot, samples=_binary_pos)
logaddexp_ = defop("logaddexp", ("a", "b"), rule=DIVIDE, meta=M.broadcast, save=("a", "b"),
                   backward=_logaddexp_backward, ref=np.logaddexp, samples=S.binary())
logaddexp2_ = defop("logaddexp2", ("a", "b"), rule=DIVIDE, meta=M.broadcast, save=("a", "b"),
                    backward=lambda c, g: _logaddexp_backward(c, g, False), ref=np.logaddexp2, samples=S.binary())
fmod_ = defop("fmod", ("a", "b"), rule=PROMOTE, meta=M.broadcast, save=("a", "b"), backward=_fmod_backward,
              ref=np.fmod, samples=_fmod_samples)
copysign_ = defop("copysign", ("a", "b"), rule=DIVIDE, meta=M.broadcast, save=("a", "b", "out"),
                  backward=_copysign_backward, ref=np.copysign, samples=S.binary())
nan_to_num_ = defop("nan_to_num", rule=KEEP, meta=M.same, save=("x",),
                    backward=lambda c, g: g * _E().isfinite(c.x).to(g.dtype),
                    ref=lambda x, nan, posinf, neginf: np.nan_to_num(x, nan=nan, posinf=posinf, neginf=neginf),
                    samples=_nan_to_num_samples)
xlogy_ = defop("xlogy", ("a", "b"), rule=DIVIDE, meta=M.broadcast, save=("a", "b"), backward=_xlogy_backward,
               ref=_ref_xlogy, samples=S.binary(0.3, 2.0, 0.3, 2.0))


# ---- public functions -----------------------------------------------------------------------------------
def _not_tensor(name, v, arg="input", pos=1):
    return TypeError(f"{name}(): argument '{arg}' (position {pos}) must be Tensor, not {type(v).__name__}")


def _unary(op, name):
    def f(input):
        if not isinstance(input, Tensor):
            raise _not_tensor(name, input)
        return call(op, (input,), {})

    f.__name__ = name
    f.__doc__ = f"devtensor.{name}: see torch.{name}"
    return public(f, name=name)


def _inplace(name, fn):
    def method(self, *args, **kwargs):
        from .inplace import apply_inplace

        if not self.dtype.is_floating_point and name not in ("nan_to_num_", "fmod_"):
            raise RuntimeError(f"{name}: result type Float can't be cast to the desired output type "
                               f"{self.dtype.name}")
        return apply_inplace(self, name, lambda x: fn(x, *args, **kwargs))

    method.__name__ = name
    public(method, name=name, function=False)


erfc = _unary(erfc_, "erfc")
erfinv = _unary(erfinv_, "erfinv")
lgamma = _unary(lgamma_, "lgamma")
digamma = _unary(digamma_, "digamma")


@public(method=False)
def polygamma(n, input):
    if not isinstance(input, Tensor):
        raise _not_tensor("polygamma", input, "input", 2)
    if int(n) != n or n < 0:
        raise RuntimeError(f"polygamma(n, x) does not support negative n (got {n})")
    if n == 0:
        return digamma(input)
    return call(polygamma_, (input,), {"n": int(n)})


def _polygamma_method(self, n):
    return polygamma(n, self)


public(_polygamma_method, name="polygamma", function=False)


def _binary(op, name, scalars="other"):
    def f(input, other):
        if not isinstance(input, Tensor):
            if scalars != "either" or not isinstance(other, Tensor):
                raise _not_tensor(name, input)
        elif not isinstance(other, Tensor) and scalars == "none":
            raise _not_tensor(name, other, "other", 2)
        return call(op, (input, other), {})

    f.__name__ = name
    f.__doc__ = f"devtensor.{name}: see torch.{name}"
    return public(f, name=name)


hypot = _binary(hypot_, "hypot", "none")  # (PyTorch takes no Python number for these three)
logaddexp = _binary(logaddexp_, "logaddexp", "none")
logaddexp2 = _binary(logaddexp2_, "logaddexp2", "none")
fmod = _binary(fmod_, "fmod")
copysign = _binary(copysign_, "copysign")
xlogy = _binary(xlogy_, "xlogy", "either")


@public
def nan_to_num(input, nan=0.0, posinf=None, neginf=None):
    """nan -> `nan`, +inf -> `posinf` (default: the dtype's largest value), -inf -> `neginf` (its lowest)."""
    if not isinstance(input, Tensor):
        raise _not_tensor("nan_to_num", input)
    if input.dtype._cat < 2:
        return input.clone()
    return call(nan_to_num_, (input,), {"nan": float(nan), "posinf": None if posinf is None else float(posinf),
                                        "neginf": None if neginf is None else float(neginf)})


for _n, _f in (("erfc_", erfc), ("erfinv_", erfinv), ("lgamma_", lgamma), ("digamma_", digamma), ("hypot_", hypot),
               ("fmod_", fmod), ("copysign_", copysign), ("nan_to_num_", nan_to_num), ("xlogy_", xlogy)):
    _inplace(_n, _f)


def _polygamma_inplace(self, n):
    from .inplace import apply_inplace

    return apply_inplace(self, "polygamma_", lambda x: polygamma(n, x))


public(_polygamma_inplace, name="polygamma_", function=False)
