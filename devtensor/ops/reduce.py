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
from ._api import composite, not_a_tensor, public


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
    # PyTorch's rule, zeros included: d prod / d x_i is the product of the others; out / x_i where the
    # slice has no zero, the product of the non-zero elements at a slice's single zero, 0 elsewhere
    x = c.x
    from .elementwise import where

    g = _expand_back(g, c)
    zero = x == 0
    safe = where(zero, 1.0, x)
    nonzero_prod = _expand_back(call(prod_, (safe,), {"dim": c.dim, "keepdim": c.keepdim}), c)
    nzeros = _expand_back(call(sum_, (zero.to(x.dtype),), {"dim": c.dim, "keepdim": c.keepdim}), c)
    others = where(zero, where(nzeros == 1, nonzero_prod, 0.0), where(nzeros == 0, nonzero_prod / safe, 0.0))
    return g * others


def _amax_backward(c, g):
    # ties share the gradient equally, as in PyTorch's amax/amin
    out = c.out.reshape(_kept_shape(c.in_meta[0][0], c.dim))
    mask = (c.x == out).to(g.dtype)  # (a NaN maximum: no element equals it, so NaN over the slice, as PyTorch's)
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
prod_ = defop("prod", rule=KEEP, meta=M.reduction, save=("x",), backward=_prod_backward,
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
        raise not_a_tensor(op.name, "input", 1, input)
    dims = norm_dims(op.name, dim, input._data.ndim)
    if dtype is not None:
        input = input.to(dtype)
    return call(op, (input,), {"dim": dims, "keepdim": bool(keepdim)})


_UNSET = object()


def dim_alias(name, dim, axis, default=None):
    """PyTorch's numpy-style aliases: axis= for dim (keepdims= for keepdim goes the same way)."""
    if axis is _UNSET or axis is None:
        return dim
    if dim is not default:
        raise TypeError(f"{name}: got multiple values for argument 'dim' (dim and its alias axis)")
    return axis


def keep_alias(name, keepdim, keepdims):
    if keepdims is None:
        return keepdim
    if keepdim:
        raise TypeError(f"{name}: got multiple values for argument 'keepdim' (keepdim and its alias keepdims)")
    return keepdims


@public
def sum(input, dim=None, keepdim=False, *, dtype=None, axis=None, keepdims=None):  # noqa: A001
    dim, keepdim = dim_alias("sum", dim, axis), keep_alias("sum", keepdim, keepdims)
    if dtype is None and input.dtype._cat < 2:
        dtype = _dt.int64  # integer and bool sums accumulate in int64, as in PyTorch
    return _reduce(sum_, input, dim, keepdim, dtype)


@public
def mean(input, dim=None, keepdim=False, *, dtype=None, axis=None, keepdims=None):
    dim, keepdim = dim_alias("mean", dim, axis), keep_alias("mean", keepdim, keepdims)
    dt = _dt.as_dtype(dtype) if dtype is not None else input.dtype
    if dt._cat < 2:
        raise RuntimeError(f"mean(): could not infer output dtype. Input dtype must be floating point, "
                           f"got {input.dtype} (pass dtype=devtensor.float32 or call .float() first)")
    return _reduce(mean_, input, dim, keepdim, dtype)


@public
def prod(input, dim=None, keepdim=False, *, dtype=None, axis=None, keepdims=None):
    dim, keepdim = dim_alias("prod", dim, axis), keep_alias("prod", keepdim, keepdims)
    if isinstance(dim, (tuple, list)):
        raise TypeError("prod: argument 'dim' must be int, not tuple")
    if dtype is None and input.dtype._cat < 2:
        dtype = _dt.int64
    return _reduce(prod_, input, dim, keepdim, dtype)


def _torch_name(d):
    from ._api import _torch_name as t

    return t(d)


def _nonempty(op, input, dim, cls=RuntimeError):
    """PyTorch's errors for reductions without an identity: over all elements of an empty tensor, or over
    a dimension of size 0 (IndexError naming the dim)."""
    if input._data.size:
        return
    if dim is None:
        if cls is IndexError:
            raise IndexError(f"{op}: expected reduction dim to be specified for input.numel() == 0 (shape "
                             f"{tuple(input.shape)})")
        raise RuntimeError(f"{op}: expected reduction dim to be specified for input.numel() == 0 (shape "
                           f"{tuple(input.shape)}); specify the reduction dim with the 'dim' argument")
    for d in norm_dims(op, dim, input._data.ndim) or ():
        if input._data.shape[d] == 0:
            raise IndexError(f"{op}: expected reduction dim {d} to have non-zero size (shape {tuple(input.shape)})")


@public
def amax(input, dim=(), keepdim=False, *, axis=None, keepdims=None):
    dim, keepdim = dim_alias("amax", dim, axis, ()), keep_alias("amax", keepdim, keepdims)
    dim = None if dim == () else dim
    _nonempty("amax", input, dim)
    return _reduce(amax_, input, dim, keepdim)


@public
def amin(input, dim=(), keepdim=False, *, axis=None, keepdims=None):
    dim, keepdim = dim_alias("amin", dim, axis, ()), keep_alias("amin", keepdim, keepdims)
    dim = None if dim == () else dim
    _nonempty("amin", input, dim)
    return _reduce(amin_, input, dim, keepdim)


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
    if not isinstance(input, Tensor):
        raise not_a_tensor(name, "input", 1, input)
    if dim is None:
        _nonempty(name, input, None)
        return _reduce(op_all, input, None, False)
    if isinstance(dim, (tuple, list)):
        raise TypeError(f"{name}: argument 'dim' must be int, not {type(dim).__name__}")
    d = norm_dims(name, dim, input._data.ndim)
    if input._data.ndim == 0:
        return _ValuesIndices((input * 1, input.new_zeros((), dtype=_dt.int64)))
    _nonempty(name, input, d)
    return _ValuesIndices(call(op_dim, (input,), {"dim": d[0], "keepdim": bool(keepdim)}))


@public
def max(input, dim=None, keepdim=False, *, other=None, axis=None, keepdims=None):  # noqa: A001
    dim, keepdim = dim_alias("max", dim, axis), keep_alias("max", keepdim, keepdims)
    return _max_min(amax_, max_dim, input, dim, keepdim, other, "max")


@public
def min(input, dim=None, keepdim=False, *, other=None, axis=None, keepdims=None):  # noqa: A001
    dim, keepdim = dim_alias("min", dim, axis), keep_alias("min", keepdim, keepdims)
    return _max_min(amin_, min_dim, input, dim, keepdim, other, "min")


def _arg(op, input, dim, keepdim):
    if not isinstance(input, Tensor):
        raise not_a_tensor(op.name, "input", 1, input)
    if input._data.dtype.kind == "b":
        raise RuntimeError(f"{op.name}: does not support bool input")
    if dim is None:
        _nonempty(op.name, input, None, IndexError)
        return call(op, (input.reshape(-1),), {"dim": 0, "keepdim": False}).reshape(
            (1,) * input.ndim if keepdim else ())
    if isinstance(dim, (tuple, list)):
        raise TypeError(f"{op.name}: argument 'dim' must be int, not {type(dim).__name__}")
    d = norm_dims(op.name, dim, input._data.ndim)
    if d is None:  # a 0-d input
        return call(op, (input.reshape(-1),), {"dim": 0, "keepdim": False}).reshape(())
    _nonempty(op.name, input, d)
    return call(op, (input,), {"dim": d[0], "keepdim": bool(keepdim)})


@public
def argmax(input, dim=None, keepdim=False, *, axis=None, keepdims=None):
    dim, keepdim = dim_alias("argmax", dim, axis), keep_alias("argmax", keepdim, keepdims)
    return _arg(argmax_, input, dim, keepdim)


@public
def argmin(input, dim=None, keepdim=False, *, axis=None, keepdims=None):
    dim, keepdim = dim_alias("argmin", dim, axis), keep_alias("argmin", keepdim, keepdims)
    return _arg(argmin_, input, dim, keepdim)


@public
def all(input, dim=None, keepdim=False, *, axis=None, keepdims=None):  # noqa: A001
    dim, keepdim = dim_alias("all", dim, axis), keep_alias("all", keepdim, keepdims)
    return _reduce(all_, input if input.dtype is _dt.bool_ else input != 0, dim, keepdim)


@public
def any(input, dim=None, keepdim=False, *, axis=None, keepdims=None):  # noqa: A001
    dim, keepdim = dim_alias("any", dim, axis), keep_alias("any", keepdim, keepdims)
    return _reduce(any_, input if input.dtype is _dt.bool_ else input != 0, dim, keepdim)


# ---- composites ------------------------------------------------------------------------------
def sqrt_at_zero_0(v):
    """sqrt(v) whose gradient is 0 where v is 0 (not inf): what PyTorch's norm and std backward rules
    give there (a norm or a std of 0 has the 0 subgradient), twice differentiable elsewhere."""
    from .elementwise import sqrt, where

    zero = v == 0
    return where(zero, 0.0, sqrt(where(zero, 1.0, v)))


def _float_input(name, input):
    if not input.dtype.is_floating_point:
        raise RuntimeError(f"{name}: input dtype should be floating point, got {input.dtype}")


@composite(ref=R.var, samples=S.composite("var"), torch="torch.var")
@public
def var(input, dim=None, unbiased=None, keepdim=False, *, correction=None, axis=None, keepdims=None):
    dim, keepdim = dim_alias("var", dim, axis), keep_alias("var", keepdim, keepdims)
    if isinstance(dim, bool):  # var(x, False): PyTorch's (input, unbiased) overload
        dim, unbiased = None, dim
    if unbiased is not None and correction is not None:
        raise ValueError("var: pass either unbiased or correction, not both")
    _float_input("var", input)
    corr = correction if correction is not None else (0 if unbiased is False else 1)
    dims = norm_dims("var", dim, input.ndim)
    n = 1
    for i, s in enumerate(input.shape):
        if dims is None or i in dims:
            n *= s
    if n - corr <= 0:
        import warnings

        warnings.warn("var(): degrees of freedom is <= 0. Correction should be strictly less than the reduction "
                      "factor (input numel divided by output numel).", UserWarning, stacklevel=3)
    mu = mean(input, dims, keepdim=True) if n else sum(input, dims, keepdim=True)
    d = input - mu
    return sum(d * d, dims, keepdim=keepdim) / builtins.max(n - corr, 0)


@composite(ref=R.std, samples=S.composite("std"), torch="torch.std")
@public
def std(input, dim=None, unbiased=None, keepdim=False, *, correction=None, axis=None, keepdims=None):
    dim, keepdim = dim_alias("std", dim, axis), keep_alias("std", keepdim, keepdims)
    if isinstance(dim, bool):
        dim, unbiased = None, dim
    _float_input("std", input)
    # the gradient where the std is 0 (a constant slice) is 0, as PyTorch's (not sqrt's inf times 0)
    return sqrt_at_zero_0(var(input, dim, unbiased, keepdim, correction=correction))


@composite(ref=R.logsumexp, samples=S.composite("logsumexp"), torch="torch.logsumexp")
@public
def logsumexp(input, dim=_UNSET, keepdim=False, *, axis=None, keepdims=None):
    from .elementwise import exp, log

    dim, keepdim = dim_alias("logsumexp", dim, axis, _UNSET), keep_alias("logsumexp", keepdim, keepdims)
    if dim is _UNSET:
        raise TypeError("logsumexp: missing the required argument 'dim'")
    if input.dtype._cat < 2:
        input = input.to(_dt.get_default_dtype())  # PyTorch: integer inputs give the default float
    dims = norm_dims("logsumexp", dim, input.ndim)
    m = amax(input.detach(), dims, keepdim=True) if input.numel() else input.detach().sum(dims, keepdim=True)
    m = m.masked_fill(~m.isfinite(), 0.0)
    r = log(sum(exp(input - m), dims, keepdim=True)) + m
    return r if keepdim else (r.squeeze(dims) if dims is not None else r.reshape(()))


@composite(ref=R.norm, samples=S.composite("norm"), torch="torch.norm", differentiable=S.norm_grad)
@public
def norm(input, p="fro", dim=None, keepdim=False, dtype=None):  # torch.norm has no axis= / keepdims= aliases
    from .elementwise import abs_, where

    if dtype is not None:
        input = input.to(dtype)
    if not input.dtype.is_floating_point:
        raise RuntimeError(f"norm: expected a floating point tensor as input, got {input.dtype}")
    if p is None:
        p = "fro"
    if isinstance(p, str) and p != "fro":
        raise NotImplementedError(f"norm: p={p!r} (matrix norms other than 'fro') is not supported")
    ax = dim if dim is not None else ()

    def abs(t):  # noqa: A001 - the op object is abs_; elementwise exports no plain `abs`
        return call(abs_, (t,), {})

    if p in ("fro", 2, 2.0):
        return sqrt_at_zero_0(sum(input * input, dim, keepdim))
    if p in (1, 1.0):
        return sum(abs(input), dim, keepdim)
    if p in (math.inf, -math.inf):
        if input._data.size == 0:
            raise RuntimeError(f"norm: cannot compute the {'inf' if p > 0 else '-inf'} norm on an empty tensor (shape "
                               f"{tuple(input.shape)}) because the operation does not have an identity")
        return (amax if p > 0 else amin)(abs(input), ax, keepdim)
    if p == 0:  # the number of non-zero elements (NaN counts); no gradient, as PyTorch's output has none
        return sum((input != 0).detach(), dim, keepdim).to(input.dtype)
    a = abs(input)
    zero = a == 0
    if p > 0:  # zeros contribute 0 to the sum and a 0 gradient (not inf * 0 from |x| ** p at 0)
        s = sum(where(zero, 0.0, where(zero, 1.0, a) ** p), dim, keepdim)
        zs = s == 0
        return where(zs, 0.0, where(zs, 1.0, s) ** (1.0 / p))
    # p < 0: a zero in the slice makes the norm 0, with a 0 gradient there (PyTorch's rule)
    has_zero = sum(zero.to(input.dtype), dim, keepdim) > 0
    s = sum(where(zero, 1.0, a) ** p, dim, keepdim)
    return where(has_zero, 0.0, s ** (1.0 / p))


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
