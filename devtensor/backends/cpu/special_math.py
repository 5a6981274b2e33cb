"""Special functions numpy lacks (erfc, erfinv, lgamma, digamma, polygamma), as numba ufuncs compiled on first
use and cached on disk (like vector_math.erf). float32 inputs are computed in float64 and rounded once.
PyTorch's values at the poles: lgamma(0 or a negative integer) = inf, digamma(+0) = -inf, digamma(-0) = inf,
digamma(negative integer) = nan, polygamma(n >= 1, pole) = inf for odd n and -inf for even n, polygamma at
+-inf as PyTorch; erfinv(+-1) = +-inf, |x| > 1 -> nan."""
from __future__ import annotations

import math

import numba
import numpy as np

_UFUNCS: dict = {}


def _ufunc(name, make):
    f = _UFUNCS.get(name)
    if f is None:
        f = _UFUNCS[name] = make()
    return f


def _apply(name, make, x, *extra):
    f = _ufunc(name, make)
    with np.errstate(all="ignore"):
        y = f(x.astype(np.float64) if x.dtype != np.float64 else x, *extra)
    return np.asarray(y).astype(x.dtype, copy=False)


def _make_erfc():
    @numba.vectorize(["float64(float64)"], cache=True)
    def _erfc(v):
        return math.erfc(v)

    return _erfc


def _make_lgamma():
    @numba.vectorize(["float64(float64)"], cache=True)
    def _lgamma(v):
        if v <= 0 and v == math.floor(v):
            return math.inf
        return math.lgamma(v)

    return _lgamma


@numba.njit(cache=True)
def _digamma_scalar(x):
    if x == 0:
        return -math.inf if math.copysign(1.0, x) > 0 else math.inf
    if math.isnan(x) or x == -math.inf:
        return math.nan
    if x == math.inf:
        return math.inf
    result = 0.0
    if x < 0:
        if x == math.floor(x):
            return math.nan
        # reflection: psi(1 - x) - psi(x) = pi / tan(pi x)
        result = -math.pi / math.tan(math.pi * x)
        x = 1.0 - x
    while x < 10.0:
        result -= 1.0 / x
        x += 1.0
    f = 1.0 / (x * x)
    t = f * (-1.0 / 12 + f * (1.0 / 120 + f * (-1.0 / 252 + f * (1.0 / 240 + f * (-1.0 / 132 + f * (
        691.0 / 32760 + f * (-1.0 / 12)))))))
    return result + math.log(x) - 0.5 / x + t


def _make_digamma():
    @numba.vectorize(["float64(float64)"], cache=True)
    def _digamma(v):
        return _digamma_scalar(v)

    return _digamma


# Bernoulli numbers B_2k, k = 1..10
_B2K = np.array([1 / 6, -1 / 30, 1 / 42, -1 / 30, 5 / 66, -691 / 2730, 7 / 6, -3617 / 510, 43867 / 798, -174611 / 330])


@numba.njit(cache=True)
def _polygamma_scalar(n, x, b2k):
    """psi^(n)(x) for n >= 1: recurrence up to x >= 20, then the asymptotic series."""
    if n == 0:
        return _digamma_scalar(x)
    if math.isnan(x):
        return math.nan
    if x == math.inf:  # PyTorch's values at +-inf
        return 0.0 if n == 1 else math.nan
    if x == -math.inf:
        return math.nan if n == 1 else (math.inf if n % 2 == 1 else -math.inf)
    if x <= 0 and x == math.floor(x):
        return math.inf if n % 2 == 1 else -math.inf
    sign = 1.0 if n % 2 == 1 else -1.0  # (-1)^(n+1)
    fact_n = math.gamma(n + 1.0)
    acc = 0.0
    while x < 20.0:  # negative x too: the recurrence steps over the poles between x and 20
        acc += 1.0 / x ** (n + 1)
        x += 1.0
    # asymptotic: (n-1)!/x^n + n!/(2 x^(n+1)) + sum_k B_2k (2k+n-1)! / ((2k)! x^(2k+n))
    s = math.gamma(float(n)) / x ** n + fact_n / (2.0 * x ** (n + 1))
    for k in range(1, 11):
        term = b2k[k - 1] * math.exp(math.lgamma(2.0 * k + n) - math.lgamma(2.0 * k + 1.0)) / x ** (2 * k + n)
        s += term
        if abs(term) < 1e-17 * abs(s):
            break
    return sign * (fact_n * acc + s)


def _make_polygamma():
    @numba.vectorize(["float64(float64, int64)"], cache=True)
    def _polygamma(v, n):
        return _polygamma_scalar(n, v, _B2K)

    return _polygamma


@numba.njit(cache=True)
def _erfinv_scalar(y):
    if math.isnan(y) or y < -1.0 or y > 1.0:
        return math.nan
    if y == 1.0:
        return math.inf
    if y == -1.0:
        return -math.inf
    if y == 0.0:
        return y
    # Giles' single-precision approximation, then Newton steps on erf(x) = y (quadratic convergence)
    w = -math.log((1.0 - y) * (1.0 + y))
    if w < 5.0:
        w = w - 2.5
        p = 2.81022636e-08
        p = 3.43273939e-07 + p * w
        p = -3.5233877e-06 + p * w
        p = -4.39150654e-06 + p * w
        p = 0.00021858087 + p * w
        p = -0.00125372503 + p * w
        p = -0.00417768164 + p * w
        p = 0.246640727 + p * w
        p = 1.50140941 + p * w
    else:
        w = math.sqrt(w) - 3.0
        p = -0.000200214257
        p = 0.000100950558 + p * w
        p = 0.00134934322 + p * w
        p = -0.00367342844 + p * w
        p = 0.00573950773 + p * w
        p = -0.0076224613 + p * w
        p = 0.00943887047 + p * w
        p = 1.00167406 + p * w
        p = 2.83297682 + p * w
    x = p * y
    c = 2.0 / math.sqrt(math.pi)
    for _ in range(3):
        if abs(y) < 0.9:
            err = math.erf(x) - y
        else:  # near +-1: the complement keeps the digits erf(x) - y would cancel
            err = (1.0 - y) - math.erfc(x) if y > 0 else math.erfc(-x) - (1.0 + y)
        d = c * math.exp(-x * x)
        if d == 0.0:
            break
        x = x - err / d
    return x


def _make_erfinv():
    @numba.vectorize(["float64(float64)"], cache=True)
    def _erfinv(v):
        return _erfinv_scalar(v)

    return _erfinv


def erfc(x):
    return _apply("erfc", _make_erfc, x)


def erfinv(x):
    return _apply("erfinv", _make_erfinv, x)


def lgamma(x):
    return _apply("lgamma", _make_lgamma, x)


def digamma(x):
    return _apply("digamma", _make_digamma, x)


def polygamma(x, n):
    return _apply("polygamma", _make_polygamma, x, np.int64(n))
