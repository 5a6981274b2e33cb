"""Scans along a dimension: cumsum, cumprod, cummax, cummin, logcumsumexp (ops, with PyTorch's gradients:
cumprod's is exact at zeros, cummax / cummin send each gradient to the index their forward chose, ties
and nans to the later element, as PyTorch)."""
from __future__ import annotations

import numpy as np

from .. import dtypes as _dt
from ..dispatch import KEEP, call, defop
from ..tensor import Tensor, _norm_dim
from . import meta_rules as M
from ._api import public

__all__ = ["cumsum", "cumprod", "cummax", "cummin", "logcumsumexp"]


# ---- meta rules -----------------------------------------------------------------------------------
def _scan_meta(x, dim):
    if not 0 <= dim < max(len(x.shape), 1):
        raise IndexError(f"dimension out of range (got {dim} for a {len(x.shape)}-d tensor)")
    return tuple(x.shape), x.dtype


def _values_indices_meta(x, dim):
    shape, dtype = _scan_meta(x, dim)
    return (shape, dtype), (shape, M.INT64)


# ---- backward rules (Tensor ops) --------------------------------------------------------------------
def _rev_cumsum(g, dim):
    return call(cumsum_, (g.flip(dim),), {"dim": dim}).flip(dim)


def _cumprod_backward(c, g):
    # d out_j / d x_i = prod_{k <= j, k != i} x_k (j >= i), PyTorch's gradient, written so that it differentiates
    # again exactly: sum_{j >= i} g_j out_j / x_i wherever x_i != 0 (0 after a slice's first zero, but with the
    # right derivative through out); at the first zero z, the cumprod with x_z replaced by 1; at the second
    # zero s, x_z times the cumprod with x_z and x_s replaced by 1 (0, with the right derivative in x_z);
    # past that, 0 (two other zeros remain in every product).
    from .elementwise import where
    from .reduce import sum as _sum

    x, out, dim = c.x, c.out, c.dim
    zero = x == 0
    nz = call(cumsum_, (zero.to(_dt.int64),), {"dim": dim})
    first, second = zero & (nz == 1), zero & (nz == 2)
    g_div = _rev_cumsum(g * out, dim) / where(zero, 1.0, x)
    skip1 = call(cumprod_, (where(first, 1.0, x),), {"dim": dim})
    g_first = _rev_cumsum(where(nz >= 1, g * skip1, 0.0), dim)
    skip2 = call(cumprod_, (where(first | second, 1.0, x),), {"dim": dim})
    x_first = _sum(where(first, x, 0.0), dim, keepdim=True)
    g_second = _rev_cumsum(where(nz >= 2, g * skip2, 0.0), dim) * x_first
    return where(zero, where(first, g_first, where(second, g_second, 0.0)), g_div)


def _cumext_backward(c, g, gi):
    from .index import scatter_add

    if g is None:
        return None
    return scatter_add(g.new_zeros(c.in_meta[0][0]), c.dim, c.out1, g)


def _logcumsumexp_backward(c, g):
    # grad_i = sum_{j >= i} g_j exp(x_i - out_j), in log space for g's positive and negative parts. Both parts
    # get the dtype's smallest normal number added, which cancels in their difference: no log(0) = -inf, whose
    # -inf - -inf would turn the double backward into nan.
    from .elementwise import exp, log, where

    x, out, dim = c.x, c.out, c.dim
    tiny = float(np.finfo(np.dtype(g._data.dtype)).tiny) if g._data.dtype.kind == "f" else 1e-300

    def part(w):
        lw = log(w + tiny) - out
        return exp(call(logcumsumexp_, (lw.flip(dim),), {"dim": dim}).flip(dim) + x)

    pos = where(g > 0, g, 0.0)
    neg = where(g < 0, -g, 0.0)
    return part(pos) - part(neg)


# ---- samples and references ---------------------------------------------------------------------------
def _scan_samples(positive=False, zeros=False, distinct=False):
    def gen(dtype=np.float64):
        r = np.random.default_rng(50)
        lo = 0.5 if positive else -2.0
        if distinct:
            x = (r.permutation(60).reshape(3, 4, 5) / 7 - 4).astype(dtype)
        else:
            x = r.uniform(lo, 2.0, (3, 4, 5)).astype(dtype)
        out = [((x,), {"dim": 0}), ((x,), {"dim": 2}), ((x.transpose(1, 0, 2),), {"dim": 1}),
               ((x[:, :0],), {"dim": 1}), ((x[0, 0],), {"dim": 0})]
        if zeros:
            z = r.uniform(0.5, 2.0, (3, 6)).astype(dtype) * r.choice([-1.0, 1.0], (3, 6))
            z[0, 2] = 0.0            # one zero
            z[1, 1] = z[1, 4] = 0.0  # two zeros
            z[2, 0] = 0.0            # a zero first
            out.append(((z,), {"dim": 1}))
        return out

    return gen


def _ref_cum_extreme(f):
    def ref(x, dim):
        x = np.moveaxis(x, dim, -1)
        vals = np.empty_like(x)
        idx = np.zeros(x.shape, dtype=np.int64)
        for pos in np.ndindex(*x.shape[:-1]):
            best, bi = None, 0
            for i, v in enumerate(x[pos]):
                if best is None or np.isnan(v) or (not np.isnan(best) and f(v, best)):
                    best, bi = v, i
                vals[pos + (i,)] = best
                idx[pos + (i,)] = bi
        return np.moveaxis(vals, -1, dim), np.moveaxis(idx, -1, dim)

    return ref


def _ref_logcumsumexp(x, dim):
    return np.logaddexp.accumulate(x, axis=dim) if x.shape[dim] else x.copy()


cumsum_ = defop("cumsum", rule=KEEP, meta=_scan_meta, backward=lambda c, g: _rev_cumsum(g, c.dim),
                ref=lambda x, dim: np.cumsum(x, axis=dim), samples=_scan_samples())
cumprod_ = defop("cumprod", rule=KEEP, meta=_scan_meta, save=("x", "out"), backward=_cumprod_backward,
                 ref=lambda x, dim: np.cumprod(x, axis=dim), samples=_scan_samples(zeros=True))
cummax_ = defop("cummax", rule=KEEP, meta=_values_indices_meta, nout=2, diff_outputs=(0,), save=("out1",),
                backward=_cumext_backward, ref=_ref_cum_extreme(lambda v, b: v >= b),
                samples=_scan_samples(distinct=True))
cummin_ = defop("cummin", rule=KEEP, meta=_values_indices_meta, nout=2, diff_outputs=(0,), save=("out1",),
                backward=_cumext_backward, ref=_ref_cum_extreme(lambda v, b: v <= b),
                samples=_scan_samples(distinct=True))
logcumsumexp_ = defop("logcumsumexp", rule=KEEP, meta=_scan_meta, save=("x", "out"), backward=_logcumsumexp_backward,
                      ref=_ref_logcumsumexp, samples=_scan_samples())


# ---- public functions ---------------------------------------------------------------------------------
class _ValuesIndices(tuple):
    """torch.return_types.cummax: (values, indices) with named fields."""

    values = property(lambda self: self[0])
    indices = property(lambda self: self[1])


def _input(name, input):
    if not isinstance(input, Tensor):
        raise TypeError(f"{name}(): argument 'input' (position 1) must be Tensor, not {type(input).__name__}")


def _scan(op, name, input, dim, dtype=None):
    _input(name, input)
    if dim is None:
        raise TypeError(f"{name}(): missing required argument 'dim'")
    d = _norm_dim(dim, input.ndim, name)
    if dtype is not None:
        input = input.to(dtype)
    x = input.reshape(1) if input.ndim == 0 else input
    out = call(op, (x,), {"dim": d})
    return out.reshape(()) if input.ndim == 0 else out


@public
def cumsum(input, dim=None, *, dtype=None):
    if dtype is None and isinstance(input, Tensor) and input.dtype._cat < 2:  # (complex stays complex)
        dtype = _dt.int64  # integer and bool scans accumulate in int64, as in PyTorch
    return _scan(cumsum_, "cumsum", input, dim, dtype)


@public
def cumprod(input, dim=None, *, dtype=None):
    if dtype is None and isinstance(input, Tensor) and input.dtype._cat < 2:  # (complex stays complex)
        dtype = _dt.int64
    return _scan(cumprod_, "cumprod", input, dim, dtype)


def _cum_extreme(op, name, input, dim):
    _input(name, input)
    d = _norm_dim(dim, input.ndim, name)
    if input.dtype is _dt.bool_:
        raise RuntimeError(f"{name}: not implemented for 'Bool'")
    x = input.reshape(1) if input.ndim == 0 else input
    v, i = call(op, (x,), {"dim": d})
    if input.ndim == 0:
        v, i = v.reshape(()), i.reshape(())
    return _ValuesIndices((v, i))


@public
def cummax(input, dim):
    return _cum_extreme(cummax_, "cummax", input, dim)


@public
def cummin(input, dim):
    return _cum_extreme(cummin_, "cummin", input, dim)


@public
def logcumsumexp(input, dim):
    _input("logcumsumexp", input)
    if input.dtype._cat < 2:
        input = input.to(_dt.get_default_dtype())
    return _scan(logcumsumexp_, "logcumsumexp", input, dim)


def _inplace(name, fn):
    def method(self, dim, *, dtype=None):
        from .inplace import apply_inplace

        if dtype is not None and dtype is not self.dtype:
            raise RuntimeError(f"{name}: provided dtype must match the dtype of the tensor ({self.dtype})")
        return apply_inplace(self, name, lambda x: fn(x, dim).to(self.dtype))

    method.__name__ = name
    return method


public(_inplace("cumsum_", cumsum), name="cumsum_", function=False)
public(_inplace("cumprod_", cumprod), name="cumprod_", function=False)
