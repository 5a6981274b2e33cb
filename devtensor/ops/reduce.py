"""Reductions: sum, mean, prod, amax/amin, max/min (values, indices), argmax/argmin, all/any as
primitives; var, std, logsumexp, norm as composites."""
from __future__ import annotations

import builtins
import math

import numpy as np

from .. import dtypes as _dt
from ..dispatch import KEEP, call, defop, op_error
from ..tensor import Tensor
from . import meta_rules as M
from . import reference as R
from . import samples as S
from ._api import composite, public


def norm_dims(op, dim, ndim):
    """None -> None (all); int or sequence -> sorted tuple of non-negative axes, checked."""
    if dim is None:
        return None
    dims = tuple(dim) if isinstance(dim, (tuple, list)) else (dim,)
    if len(dims) == 0:
        return None
    n = builtins.max(ndim, 1)
    out = []
    for d in dims:
        if not isinstance(d, (int, np.integer)) or isinstance(d, bool):
            raise TypeError(f"{op}: dim must be an int or a tuple of ints, got {dim!r}")
        d = int(d)
        if not -n <= d < n:
            raise IndexError(f"{op}: dimension out of range (expected to be in range of [{-n}, {n - 1}], "
                             f"but got {d})")
        d %= n
        if d in out:
            raise RuntimeError(f"{op}: dim {d} appears multiple times in the list of dims")
        out.append(d)
    if ndim == 0:
        return None
    return tuple(sorted(out))


def _expand_back(g, c):
    """Broadcast a reduced gradient back over the reduced dims of the input."""
    shape = c.in_meta[0][0]
    if not c.keepdim and c.dim is not None:
        g = g.reshape(_kept_shape(shape, c.dim))
    return g.expand(shape)


def _kept_shape(shape, dims):
    return tuple(1 if i in dims else s for i, s in enumerate(shape)) if dims is not None else (1,) * len(shape)


def _mean_backward(c, g):
    shape = c.in_meta[0][0]
    n = 1
    for i, s in enumerate(shape):
        if c.dim is None or i in c.dim:
            n *= s
    return _expand_back(g, c) / builtins.max(n, 1) if n else _expand_back(g, c) * 0


def _prod_backward(c, g):
    # prod / x fails at zeros; this rule is exact when no element is zero (documented limitation)
    return _expand_back(g * c.out, c) / c.x


def _amax_backward(c, g):
    # ties share the gradient equally, as in PyTorch's amax/amin
    out = c.out.reshape(_kept_shape(c.in_meta[0][0], c.dim))
    mask = (c.x == out).to(g.dtype)
    return _expand_back(g, c) * mask / mask.sum(dim=c.dim, keepdim=True)


def _max_dim_backward(c, g, gi):
    from .index import scatter_add

    if g is None:
        return None
    idx = c.out1
    if not c.keepdim:
        g, idx = g.unsqueeze(c.dim), idx.unsqueeze(c.dim)
    zeros = g.new_zeros(c.in_meta[0][0])
    return scatter_add(zeros, c.dim, idx, g)


def _red_samples(positive=False, ties=False):
    return S.reduction(positive, ties)


sum_ = defop("sum", rule=KEEP, meta=M.reduction, backward=lambda c, g: _expand_back(g, c),
             ref=lambda x, dim, keepdim: np.sum(x, axis=dim, keepdims=keepdim), samples=_red_samples())
mean_ = defop("mean", rule=KEEP, meta=M.reduction, backward=_mean_backward,
              ref=lambda x, dim, keepdim: np.mean(x, axis=dim, keepdims=keepdim), samples=_red_samples())
prod_ = defop("prod", rule=KEEP, meta=M.reduction, save=("x", "out"), backward=_prod_backward,
              ref=lambda x, dim, keepdim: np.prod(x, axis=dim, keepdims=keepdim),
              samples=_red_samples(positive=True))
amax_ = defop("amax", rule=KEEP, meta=M.reduction, save=("x", "out"), backward=_amax_backward,
              ref=lambda x, dim, keepdim: np.max(x, axis=dim, keepdims=keepdim), samples=_red_samples(ties=True))
amin_ = defop("amin", rule=KEEP, meta=M.reduction, save=("x", "out"), backward=_amax_backward,
              ref=lambda x, dim, keepdim: np.min(x, axis=dim, keepdims=keepdim), samples=_red_samples(ties=True))
argmax_ = defop("argmax", rule=KEEP, meta=M.index_reduction, differentiable=False)
argmin_ = defop("argmin", rule=KEEP, meta=M.index_reduction, differentiable=False)
all_ = defop("all", rule=KEEP, meta=M.bool_reduction, differentiable=False)
any_ = defop("any", rule=KEEP, meta=M.bool_reduction, differentiable=False)
max_dim = defop("max_dim", rule=KEEP, meta=M.values_and_indices, nout=2, diff_outputs=(0,), save=("out1",),
                backward=_max_dim_backward)
min_dim = defop("min_dim", rule=KEEP, meta=M.values_and_indices, nout=2, diff_outputs=(0,), save=("out1",),
                backward=_max_dim_backward)


def _reduce(op, input, dim, keepdim, dtype=None):
    if not isinstance(input, Tensor):
        raise TypeError(f"{op.name}: expected a Tensor, got {type(input).__name__}")
    dims = norm_dims(op.name, dim, input._data.ndim)
    if dtype is not None:
        input = input.to(dtype)
    return call(op, (input,), {"dim": dims, "keepdim": bool(keepdim)})


@public
def sum(input, dim=None, keepdim=False, *, dtype=None):  # noqa: A001
    if dtype is None and not input.dtype.is_floating_point:
        dtype = _dt.int64  # integer and bool sums accumulate in int64, as in PyTorch
    return _reduce(sum_, input, dim, keepdim, dtype)


@public
def mean(input, dim=None, keepdim=False, *, dtype=None):
    dt = _dt.as_dtype(dtype) if dtype is not None else input.dtype
    if not dt.is_floating_point:
        raise RuntimeError(f"mean(): could not infer output dtype. Input dtype must be floating point, "
                           f"got {input.dtype} (pass dtype=devtensor.float32 or call .float() first)")
    return _reduce(mean_, input, dim, keepdim, dtype)


@public
def prod(input, dim=None, keepdim=False, *, dtype=None):
    if dtype is None and not input.dtype.is_floating_point:
        dtype = _dt.int64
    return _reduce(prod_, input, dim, keepdim, dtype)


def _nonempty(op, input, dim):
    if input._data.size == 0 and dim is None:
        raise RuntimeError(f"{op}(): expected a non-empty tensor to reduce over all elements "
                           f"(got shape {tuple(input.shape)})")


@public
def amax(input, dim=(), keepdim=False):
    _nonempty("amax", input, dim if dim != () else None)
    return _reduce(amax_, input, None if dim == () else dim, keepdim)


@public
def amin(input, dim=(), keepdim=False):
    _nonempty("amin", input, dim if dim != () else None)
    return _reduce(amin_, input, None if dim == () else dim, keepdim)


class _ValuesIndices(tuple):
    """torch.return_types.max: a (values, indices) tuple with named fields."""

    @property
    def values(self):
        return self[0]

    @property
    def indices(self):
        return self[1]


def _max_min(op_all, op_dim, input, dim, keepdim, other, name):
    if isinstance(dim, Tensor):  # max(a, b): the elementwise form
        other, dim = dim, None
    if other is not None:
        from .elementwise import maximum, minimum

        return (maximum if name == "max" else minimum)(input, other)
    if dim is None:
        _nonempty(name, input, None)
        return _reduce(op_all, input, None, False)
    d = norm_dims(name, dim, input._data.ndim)
    if input._data.ndim == 0:
        return _ValuesIndices((input, input.new_zeros((), dtype=_dt.int64)))
    if input._data.shape[d[0]] == 0:
        raise IndexError(f"{name}(): cannot reduce over dimension {d[0]} of size 0 (shape {tuple(input.shape)})")
    return _ValuesIndices(call(op_dim, (input,), {"dim": d[0], "keepdim": bool(keepdim)}))


@public
def max(input, dim=None, keepdim=False, *, other=None):  # noqa: A001
    return _max_min(amax_, max_dim, input, dim, keepdim, other, "max")


@public
def min(input, dim=None, keepdim=False, *, other=None):  # noqa: A001
    return _max_min(amin_, min_dim, input, dim, keepdim, other, "min")


def _arg(op, input, dim, keepdim):
    if dim is None:
        _nonempty(op.name, input, None)
        return call(op, (input.reshape(-1),), {"dim": 0, "keepdim": False}).reshape(
            (1,) * input.ndim if keepdim else ())
    d = norm_dims(op.name, dim, input._data.ndim)
    if d is None:
        return call(op, (input.reshape(-1),), {"dim": 0, "keepdim": False}).reshape(())
    return call(op, (input,), {"dim": d[0], "keepdim": bool(keepdim)})


@public
def argmax(input, dim=None, keepdim=False):
    return _arg(argmax_, input, dim, keepdim)


@public
def argmin(input, dim=None, keepdim=False):
    return _arg(argmin_, input, dim, keepdim)


@public
def all(input, dim=None, keepdim=False):  # noqa: A001
    return _reduce(all_, input if input.dtype is _dt.bool_ else input != 0, dim, keepdim)


@public
def any(input, dim=None, keepdim=False):  # noqa: A001
    return _reduce(any_, input if input.dtype is _dt.bool_ else input != 0, dim, keepdim)


# ---- composites ------------------------------------------------------------------------------
@composite(ref=R.var, samples=S.composite("var"), torch="torch.var")
@public
def var(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    if unbiased is not None and correction is not None:
        raise ValueError("var: pass either unbiased or correction, not both")
    corr = correction if correction is not None else (0 if unbiased is False else 1)
    dims = norm_dims("var", dim, input.ndim)
    n = 1
    for i, s in enumerate(input.shape):
        if dims is None or i in dims:
            n *= s
    mu = mean(input, dims, keepdim=True)
    d = input - mu
    return sum(d * d, dims, keepdim=keepdim) / builtins.max(n - corr, 0)




@composite(ref=R.std, samples=S.composite("std"), torch="torch.std")
@public
def std(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    from .elementwise import sqrt

    return sqrt(var(input, dim, unbiased, keepdim, correction=correction))


@composite(ref=R.logsumexp, samples=S.composite("logsumexp"), torch="torch.logsumexp")
@public
def logsumexp(input, dim, keepdim=False):
    from .elementwise import exp, log

    dims = norm_dims("logsumexp", dim, input.ndim)
    m = amax(input.detach(), dims, keepdim=True) if input.numel() else input.detach().sum(dims, keepdim=True)
    m = m.masked_fill(~m.isfinite(), 0.0)
    r = log(sum(exp(input - m), dims, keepdim=True)) + m
    return r if keepdim else (r.squeeze(dims) if dims is not None else r.reshape(()))


@composite(ref=R.norm, samples=S.composite("norm"), torch="torch.norm")
@public
def norm(input, p="fro", dim=None, keepdim=False):
    from .elementwise import abs_, sqrt

    def abs(t):  # noqa: A001 - the op object is abs_; elementwise exports no plain `abs`
        return call(abs_, (t,), {})

    if p in ("fro", 2, 2.0):
        return sqrt(sum(input * input, dim, keepdim))
    if p in (1, 1.0):
        return sum(abs(input), dim, keepdim)
    if p == math.inf:
        return amax(abs(input), dim if dim is not None else (), keepdim)
    return sum(abs(input) ** p, dim, keepdim) ** (1.0 / p)


@composite(ref=R.sum_to_size, samples=S.composite("sum_to_size"), torch="torch.Tensor.sum_to_size")
@public(function=False)
def sum_to_size(self, *size):
    """Sum broadcast dimensions away so the result has `size` (the engine's unbroadcast)."""
    shape = tuple(size[0]) if len(size) == 1 and isinstance(size[0], (tuple, list)) else tuple(size)
    cur = self._data.shape
    lead = len(cur) - len(shape)
    dims = tuple(range(lead)) + tuple(i + lead for i, s in enumerate(shape) if s == 1 and cur[i + lead] != 1)
    out = sum(self, dims, keepdim=True) if dims else self
    return out.reshape(shape) if out._data.shape != shape else out


__all__ = ["sum", "mean", "prod", "amax", "amin", "max", "min", "argmax", "argmin", "all", "any", "var",
           "std", "logsumexp", "norm", "op_error"]
