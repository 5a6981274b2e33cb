"""devtensor.special: torch.special's names for the special functions (devtensor/ops/special.py and the
elementwise ops), e.g. special.gammaln is lgamma, special.expit is sigmoid."""
from __future__ import annotations

import math

from .ops import elementwise as _E
from .ops import reduce as _R
from .ops import special as _S

__all__ = ["erf", "erfc", "erfinv", "expit", "logit", "gammaln", "digamma", "psi", "polygamma", "xlogy", "log1p",
           "expm1", "exp2", "logsumexp", "softmax", "log_softmax", "ndtr", "round", "sinc"]

erfc = _S.erfc
erfinv = _S.erfinv
gammaln = _S.lgamma
digamma = psi = _S.digamma
polygamma = _S.polygamma
xlogy = _S.xlogy
logsumexp = _R.logsumexp


def _fn(name):
    from .ops._api import FUNCTIONS

    return FUNCTIONS[name]


def erf(input):
    return _fn("erf")(input)


def expit(input):
    return _fn("sigmoid")(input)


def log1p(input):
    return _fn("log1p")(input)


def expm1(input):
    return _fn("expm1")(input)


def exp2(input):
    return _fn("exp")(input * math.log(2.0))


def round(input, *, decimals=0):  # noqa: A001
    return _fn("round")(input, decimals=decimals)


def logit(input, eps=None):
    """log(p / (1 - p)), p clamped to [eps, 1 - eps] when eps is given."""
    p = input if eps is None else input.clamp(eps, 1 - eps)
    return _fn("log")(p / (1 - p))


def ndtr(input):
    """The standard normal CDF: (1 + erf(x / sqrt(2))) / 2."""
    return (1 + erf(input * (1 / math.sqrt(2.0)))) * 0.5


def sinc(input):
    """sin(pi x) / (pi x), 1 at 0."""
    zero = input == 0
    x = _E.where(zero, 1.0, input) * math.pi
    return _E.where(zero, 1.0, _fn("sin")(x) / x)


def softmax(input, dim, *, dtype=None):
    return _fn("softmax")(input, dim, dtype=dtype) if dtype is not None else _fn("softmax")(input, dim)


def log_softmax(input, dim, *, dtype=None):
    return _fn("log_softmax")(input, dim, dtype=dtype) if dtype is not None else _fn("log_softmax")(input, dim)
