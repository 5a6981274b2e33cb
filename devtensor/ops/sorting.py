"""Sorting and order statistics: sort, argsort, msort, topk, kthvalue, median, nanmedian, mode (ops: values and
int64 indices, gradients scattered back to the indices), searchsorted, bucketize, histc (ops without gradients),
and unique, unique_consecutive, bincount (composites: their output sizes depend on the data, so they are
written in the ops above and index ops; like PyTorch they read sizes on the host).

Order: stable, nan the largest value (last ascending, first descending), as PyTorch's. Among equal values
topk and kthvalue pick the first occurrences; PyTorch documents no order there (its topk may differ), and
median, mode, sort and cummax follow PyTorch's choices exactly (median: the lower median's stable position,
the first nan if there is one; mode: the smallest most frequent value, at its last occurrence)."""
from __future__ import annotations

import numpy as np

from .. import dtypes as _dt
from ..dispatch import KEEP, call, defop
from ..geometry import reduced_shape
from ..tensor import Tensor, _norm_dim
from . import meta_rules as M
from ._api import composite, public
from .cumulative import cumsum

__all__ = ["sort", "argsort", "msort", "topk", "kthvalue", "median", "nanmedian", "mode", "searchsorted", "bucketize",
           "histc", "unique", "unique_consecutive", "bincount"]


class _ValuesIndices(tuple):
    """torch.return_types.sort / topk / kthvalue / median / mode: (values, indices) with named fields."""

    values = property(lambda self: self[0])
    indices = property(lambda self: self[1])


# ---- meta rules ---------------------------------------------------------------------------------
def _dim_ok(x, dim):
    if not 0 <= dim < max(len(x.shape), 1):
        raise IndexError(f"dimension out of range (got {dim} for a {len(x.shape)}-d tensor)")


def _sort_meta(x, dim, descending):
    _dim_ok(x, dim)
    return (tuple(x.shape), x.dtype), (tuple(x.shape), M.INT64)


def _topk_meta(x, k, dim, largest):
    _dim_ok(x, dim)
    shape = list(x.shape)
    if not 0 <= k <= (shape[dim] if shape else 1):
        raise RuntimeError("selected index k out of range")
    if shape:
        shape[dim] = k
    return (tuple(shape), x.dtype), (tuple(shape), M.INT64)


def _kth_meta(x, k, dim, keepdim):
    _dim_ok(x, dim)
    n = x.shape[dim] if len(x.shape) else 1
    if not 1 <= k <= n:
        raise RuntimeError(f"kthvalue(): selected number k out of range for dimension {dim}")
    shape = reduced_shape(tuple(x.shape), (dim,), keepdim)
    return (shape, x.dtype), (shape, M.INT64)


def _reduce_dim_meta(x, dim, keepdim, **_):
    _dim_ok(x, dim)
    if len(x.shape) and x.shape[dim] == 0:
        raise IndexError(f"Expected reduction dim {dim} to have non-zero size.")
    shape = reduced_shape(tuple(x.shape), (dim,), keepdim)
    return (shape, x.dtype), (shape, M.INT64)


def _searchsorted_meta(seq, values, right, out_int32):
    s, v = tuple(seq.shape), tuple(values.shape)
    if len(s) > 1 and s[:-1] != v[:-1]:
        raise RuntimeError(f"boundaries tensor should be 1 dimension or the first N-1 dimensions of boundaries tensor "
                           f"and input value tensor must match, but we got boundaries tensor {list(s)} and input "
                           f"value tensor {list(v)}")
    return v, np.dtype(np.int32 if out_int32 else np.int64)


def _histc_meta(x, bins, min, max):  # noqa: A002
    if bins <= 0:
        raise RuntimeError(f"torch.histogramdd(): bins must be > 0, but got {bins} for dimension 0")
    if not min <= max:
        raise RuntimeError(f"max must be larger than min (got min {min}, max {max})")
    return (bins,), x.dtype


# ---- backward rules ---------------------------------------------------------------------------------
def _scatter_back(c, g, keepdim=True):
    from .index import scatter_add

    if g is None:
        return None
    idx = c.out1
    if not keepdim:
        g, idx = g.unsqueeze(c.dim), idx.unsqueeze(c.dim)
    return scatter_add(g.new_zeros(c.in_meta[0][0]), c.dim, idx, g)


# ---- references and samples -------------------------------------------------------------------------
def _np_argsort(x, dim, descending):
    if not descending:
        return np.argsort(x, axis=dim, kind="stable")
    key = -x if x.dtype.kind == "f" else ~x
    idx = np.argsort(key, axis=dim, kind="stable")
    if x.dtype.kind == "f":
        idx = np.take_along_axis(idx, np.argsort(~np.isnan(np.take_along_axis(x, idx, dim)), axis=dim,
                                                  kind="stable"), dim)
    return idx


def _ref_sort(x, dim, descending):
    idx = _np_argsort(x, dim, descending)
    return np.take_along_axis(x, idx, dim), idx


def _ref_topk(x, k, dim, largest):
    v, i = _ref_sort(x, dim, largest)
    sl = tuple(slice(0, k) if d == dim else slice(None) for d in range(x.ndim))
    return v[sl], i[sl]


def _ref_kth(x, k, dim, keepdim):
    v, i = _ref_sort(x, dim, False)
    sl = tuple(slice(k - 1, k) if d == dim else slice(None) for d in range(x.ndim))
    v, i = v[sl], i[sl]
    return (v, i) if keepdim else (v.squeeze(dim), i.squeeze(dim))


def _ref_median(x, dim, keepdim, ignore_nan):
    v, i = _ref_sort(x, dim, False)
    n = x.shape[dim]
    out_v, out_i = [], []
    vm, im = np.moveaxis(v, dim, -1), np.moveaxis(i, dim, -1)
    for pos in np.ndindex(*vm.shape[:-1]):
        nans = int(np.isnan(vm[pos]).sum())
        if ignore_nan:
            p = 0 if nans == n else (n - nans - 1) // 2
        else:
            p = n - nans if nans else (n - 1) // 2
        out_v.append(vm[pos][p])
        out_i.append(im[pos][p])
    shape = vm.shape[:-1]
    rv, ri = np.array(out_v, dtype=x.dtype).reshape(shape), np.array(out_i, dtype=np.int64).reshape(shape)
    if keepdim:
        rv, ri = np.expand_dims(rv, dim), np.expand_dims(ri, dim)
    return rv, ri


def _ref_mode(x, dim, keepdim):
    xm = np.moveaxis(x, dim, -1)
    rv, ri = np.empty(xm.shape[:-1], x.dtype), np.empty(xm.shape[:-1], np.int64)
    for pos in np.ndindex(*xm.shape[:-1]):
        row = xm[pos]
        vals, counts = np.unique(row, return_counts=True)
        best = vals[np.argmax(counts)]
        rv[pos] = best
        ri[pos] = np.nonzero(row == best)[0][-1]
    if keepdim:
        rv, ri = np.expand_dims(rv, dim), np.expand_dims(ri, dim)
    return rv, ri


def _ref_searchsorted(seq, values, right, out_int32):
    side = "right" if right else "left"
    dt = np.int32 if out_int32 else np.int64
    if seq.ndim == 1:
        return np.searchsorted(seq, values, side=side).astype(dt)
    out = np.empty(values.shape, dt)
    for pos in np.ndindex(*seq.shape[:-1]):
        out[pos] = np.searchsorted(seq[pos], values[pos], side=side)
    return out


def _ref_histc(x, bins, min, max):  # noqa: A002
    v = x.reshape(-1)
    v = v[(v >= min) & (v <= max)].astype(np.float64)
    b = np.minimum(((v - min) * bins / (max - min)).astype(np.int64), bins - 1)
    return np.bincount(b, minlength=bins).astype(x.dtype)


def _distinct(dtype, shape, seed):
    r = np.random.default_rng(seed)
    n = int(np.prod(shape))
    return (r.permutation(n).reshape(shape) / 7 - n / 14).astype(dtype)


def _sort_samples(dtype=np.float64):
    # distinct values: with ties or nans the sorted values are not differentiable (gradcheck); ties, nan and
    # inf are compared with PyTorch in tests/test_ops_extra.py
    x = _distinct(dtype, (3, 4, 5), 51)
    return [((x,), {"dim": 2, "descending": False}), ((x,), {"dim": 0, "descending": True}),
            ((x.transpose(1, 0, 2),), {"dim": 1, "descending": False}), ((x[:, :0],), {"dim": 1, "descending": True}),
            ((x[0, 0],), {"dim": 0, "descending": True})]


def _topk_samples(dtype=np.float64):
    x = _distinct(dtype, (3, 4, 5), 52)
    return [((x,), {"k": 2, "dim": 2, "largest": True}), ((x,), {"k": 3, "dim": 0, "largest": False}),
            ((x.transpose(1, 0, 2),), {"k": 2, "dim": 1, "largest": True}), ((x,), {"k": 0, "dim": 1, "largest": True})]


def _kth_samples(dtype=np.float64):
    x = _distinct(dtype, (3, 4, 5), 53)
    return [((x,), {"k": 2, "dim": 2, "keepdim": False}), ((x,), {"k": 3, "dim": 0, "keepdim": True}),
            ((x.transpose(1, 0, 2),), {"k": 1, "dim": 1, "keepdim": False})]


def _median_samples(dtype=np.float64):
    x = _distinct(dtype, (3, 4, 5), 54)
    return [((x,), {"dim": 2, "keepdim": False, "ignore_nan": False}),
            ((x,), {"dim": 1, "keepdim": True, "ignore_nan": False}),
            ((x.transpose(1, 0, 2),), {"dim": 0, "keepdim": False, "ignore_nan": True}),
            ((x[0],), {"dim": 1, "keepdim": False, "ignore_nan": True})]


def _mode_samples(dtype=np.float64):
    # distinct values keep gradcheck meaningful (a perturbed tie changes the counts); ties: test_ops_extra.py
    x = _distinct(dtype, (3, 4, 6), 55)
    return [((x,), {"dim": 2, "keepdim": False}), ((x,), {"dim": 0, "keepdim": True}),
            ((x.transpose(1, 0, 2),), {"dim": 1, "keepdim": False})]


def _searchsorted_samples(dtype=np.float64):
    seq = np.array([0.5, 1.0, 1.0, 2.5, 4.0], dtype=dtype)
    vals = np.array([[0.0, 1.0, 3.0], [4.0, 5.0, 1.5]], dtype=dtype)
    seq2 = np.sort(np.random.default_rng(56).uniform(0, 4, (2, 5)), axis=1).astype(dtype)
    return [((seq, vals), {"right": False, "out_int32": False}), ((seq, vals), {"right": True, "out_int32": True}),
            ((seq2, vals), {"right": False, "out_int32": False}), ((seq, vals[:0]), {"right": False, "out_int32": False})]


def _histc_samples(dtype=np.float64):
    x = np.random.default_rng(57).uniform(-1, 5, (4, 6)).astype(dtype)
    x[0, 0], x[0, 1] = 4.0, 0.0  # the edges
    return [((x,), {"bins": 4, "min": 0.0, "max": 4.0}), ((x,), {"bins": 10, "min": -1.0, "max": 5.0}),
            ((x[:0],), {"bins": 3, "min": 0.0, "max": 1.0})]


sort_ = defop("sort", rule=KEEP, meta=_sort_meta, nout=2, diff_outputs=(0,), save=("out1",),
              backward=lambda c, g, gi: _scatter_back(c, g), ref=_ref_sort, samples=_sort_samples)
topk_ = defop("topk", rule=KEEP, meta=_topk_meta, nout=2, diff_outputs=(0,), save=("out1",),
              backward=lambda c, g, gi: _scatter_back(c, g), ref=_ref_topk, samples=_topk_samples)
kthvalue_ = defop("kthvalue", rule=KEEP, meta=_kth_meta, nout=2, diff_outputs=(0,), save=("out1",),
                  backward=lambda c, g, gi: _scatter_back(c, g, c.keepdim), ref=_ref_kth, samples=_kth_samples)
median_ = defop("median", rule=KEEP, meta=_reduce_dim_meta, nout=2, diff_outputs=(0,), save=("out1",),
                backward=lambda c, g, gi: _scatter_back(c, g, c.keepdim), ref=_ref_median, samples=_median_samples)
mode_ = defop("mode", rule=KEEP, meta=_reduce_dim_meta, nout=2, diff_outputs=(0,), save=("out1",),
              backward=lambda c, g, gi: _scatter_back(c, g, c.keepdim), ref=_ref_mode, samples=_mode_samples)
searchsorted_ = defop("searchsorted", ("seq", "values"), rule=KEEP, meta=_searchsorted_meta, differentiable=False,
                      ref=_ref_searchsorted, samples=_searchsorted_samples)
histc_ = defop("histc", rule=KEEP, meta=_histc_meta, differentiable=False, ref=_ref_histc, samples=_histc_samples)


# ---- public functions ------------------------------------------------------------------------------
def _tensor(name, v, arg="input"):
    if not isinstance(v, Tensor):
        raise TypeError(f"{name}(): argument '{arg}' must be Tensor, not {type(v).__name__}")


def _prep(name, input, dim):
    _tensor(name, input)
    d = _norm_dim(dim, input.ndim, name)
    return (input.reshape(1) if input.ndim == 0 else input), d


def _finish(input, v, i, squeeze_0d=True):
    if input.ndim == 0 and squeeze_0d:
        v, i = v.reshape(()), i.reshape(())
    return _ValuesIndices((v, i))


@public
def sort(input, dim=-1, descending=False, stable=False):
    """Stable (PyTorch's stable=False gives the same order on the cpu); nan sorts as the largest value."""
    x, d = _prep("sort", input, dim)
    v, i = call(sort_, (x,), {"dim": d, "descending": bool(descending)})
    return _finish(input, v, i)


@public
def argsort(input, dim=-1, descending=False, stable=False):
    return sort(input, dim, descending, stable)[1]


@public
def msort(input):
    return sort(input, 0)[0]


@public
def topk(input, k, dim=-1, largest=True, sorted=True):  # noqa: A002 - PyTorch's names
    x, d = _prep("topk", input, dim)
    v, i = call(topk_, (x,), {"k": int(k), "dim": d, "largest": bool(largest)})
    return _finish(input, v, i)


@public
def kthvalue(input, k, dim=-1, keepdim=False):
    x, d = _prep("kthvalue", input, dim)
    v, i = call(kthvalue_, (x,), {"k": int(k), "dim": d, "keepdim": bool(keepdim) or input.ndim == 0})
    return _finish(input, v, i)


def _median(name, input, dim, keepdim, ignore_nan):
    _tensor(name, input)
    if dim is None:  # the median of all elements, without an index
        if input.numel() == 0:
            return input.new_full((), float("nan"))
        return call(median_, (input.reshape(-1),), {"dim": 0, "keepdim": False, "ignore_nan": ignore_nan})[0]
    x, d = _prep(name, input, dim)
    v, i = call(median_, (x,), {"dim": d, "keepdim": bool(keepdim) or input.ndim == 0, "ignore_nan": ignore_nan})
    return _finish(input, v, i)


@public
def median(input, dim=None, keepdim=False):
    """The lower median (no averaging of the middle two); nan if the slice holds a nan."""
    return _median("median", input, dim, keepdim, False)


@public
def nanmedian(input, dim=None, keepdim=False):
    """median ignoring nans (nan only where a slice is all nan)."""
    return _median("nanmedian", input, dim, keepdim, True)


@public
def mode(input, dim=-1, keepdim=False):
    """The most frequent value of each slice (the smallest among equally frequent ones) and the index of its
    last occurrence."""
    x, d = _prep("mode", input, dim)
    v, i = call(mode_, (x,), {"dim": d, "keepdim": bool(keepdim) or input.ndim == 0})
    return _finish(input, v, i)


@public(method=False)
def searchsorted(sorted_sequence, input, *, out_int32=False, right=False, side=None, sorter=None):
    from .creation import tensor

    _tensor("searchsorted", sorted_sequence, "sorted_sequence")
    if side is not None:
        if side not in ("left", "right"):
            raise RuntimeError(f"torch.searchsorted(): side can only be 'left' or 'right' but got {side}")
        if right and side == "left":
            raise RuntimeError("torch.searchsorted(): side and right can't be set to opposites, got side of left "
                               "while right was True")
        right = side == "right"
    scalar = not isinstance(input, Tensor)
    values = tensor(input, dtype=sorted_sequence.dtype, device=sorted_sequence.device) if scalar else input
    seq = sorted_sequence
    if sorter is not None:
        seq = seq.gather(-1, sorter)
    if seq.ndim == 0:
        raise RuntimeError("torch.searchsorted(): boundaries tensor should have positive dimension, but got 0 "
                           "dimension")
    dt = _dt.promote_types(seq.dtype, values.dtype)
    v = values.reshape(1) if values.ndim == 0 else values
    if seq.ndim > 1 and values.ndim == 0:
        raise RuntimeError("torch.searchsorted(): input value can be a scalar only when boundaries tensor dimension "
                           "is 1")
    out = call(searchsorted_, (seq.to(dt), v.to(dt)), {"right": bool(right), "out_int32": bool(out_int32)})
    return out.reshape(()) if values.ndim == 0 else out


@public
def bucketize(input, boundaries, *, out_int32=False, right=False):
    """The index of the bucket of each value: boundaries[i-1] < x <= boundaries[i] (right=False)."""
    _tensor("bucketize", boundaries, "boundaries")
    if boundaries.ndim != 1:
        raise RuntimeError(f"boundaries tensor must be 1 dimension, but got dim({boundaries.ndim})")
    return searchsorted(boundaries, input, out_int32=out_int32, right=right)


@public
def histc(input, bins=100, min=0, max=0):  # noqa: A002 - PyTorch's names
    """Counts in `bins` equal bins over [min, max] (both 0: the data's range; elements outside and nans are
    ignored; max itself counts in the last bin). Reads min and max on the host when they are not given."""
    _tensor("histc", input)
    if not input.dtype.is_floating_point:
        raise RuntimeError(f"\"histogram_cpu\" not implemented for '{_api_name(input.dtype)}'")
    lo, hi = float(min), float(max)
    if lo == hi and input.numel():
        finite = input[input.isfinite()]
        if finite.numel():
            lo, hi = float(finite.min()), float(finite.max())
    if lo == hi:
        lo, hi = lo - 1, hi + 1
    return call(histc_, (input,), {"bins": int(bins), "min": lo, "max": hi})


def _api_name(d):
    from ._api import _torch_name

    return _torch_name(d)


# ---- unique and bincount (composites) -------------------------------------------------------------------
def _ref_unique(input, sorted=True, return_inverse=False, return_counts=False, dim=None):  # noqa: A002
    if dim is None:
        flat = input.reshape(-1)
        order = np.argsort(flat, kind="stable")
        s = flat[order]
        new = np.ones(len(s), bool)
        new[1:] = s[1:] != s[:-1]
        vals = s[new]
        inv = np.empty(len(s), np.int64)
        inv[order] = np.cumsum(new) - 1
        counts = np.diff(np.append(np.nonzero(new)[0], len(s)))
        out = [vals]
        if return_inverse:
            out.append(inv.reshape(input.shape))
        if return_counts:
            out.append(counts)
        return out[0] if len(out) == 1 else tuple(out)
    vals, inv, counts = np.unique(input, axis=dim, return_inverse=True, return_counts=True)
    out = [vals]
    if return_inverse:
        out.append(inv.reshape(-1))
    if return_counts:
        out.append(counts)
    return out[0] if len(out) == 1 else tuple(out)


def _unique_samples(dtype=np.float64):
    r = np.random.default_rng(58)
    x = r.integers(0, 5, (3, 4)).astype(dtype)
    rows = np.array([[1, 2], [1, 2], [0, 5], [0, 3]], dtype=dtype)
    # one output each (the suite compares one tensor); inverse and counts: tests/test_ops_extra.py
    return [((x,), {}), ((x.T,), {"sorted": False}), ((np.array([3.0, np.nan, np.nan, 1.0, 3.0], dtype=dtype),), {}),
            ((rows,), {"dim": 0}), ((rows,), {"dim": 1}), ((x[:0],), {}), ((np.asarray(2.0, dtype=dtype),), {})]


def _first_of_runs(s, dim=None):
    """True where a sorted run starts (s flat, or rows along dim 0)."""
    from .creation import ones
    from .shape import cat

    if s.shape[0] == 0:
        return s.new_zeros((0,), dtype=_dt.bool_)
    diff = s[1:] != s[:-1]
    if dim is not None and s.ndim > 1:
        diff = diff.reshape(diff.shape[0], -1).any(1)
    return cat([ones(1, dtype=_dt.bool_, device=s.device), diff])


def _unique_flat(x, sort_first, return_inverse, return_counts, shape):
    from .creation import arange
    from .index_extra import index_add

    if sort_first:
        s, order = sort(x)
    else:
        s, order = x, arange(x.shape[0], device=x.device)
    new = _first_of_runs(s)
    vals = s[new]
    out = [vals]
    run = cumsum(new.to(_dt.int64), 0) - 1
    if return_inverse:
        inv = run.new_zeros(run.shape).scatter(0, order, run) if sort_first else run
        out.append(inv.reshape(shape))
    if return_counts:
        out.append(index_add(run.new_zeros(vals.shape[0]), 0, run, run.new_ones(run.shape)))
    return out[0] if len(out) == 1 else tuple(out)


def _unique_dim(input, dim, sort_first, return_inverse, return_counts):
    from .creation import arange
    from .index_extra import index_add

    d = _norm_dim(dim, input.ndim, "unique")
    x = input.movedim(d, 0)
    n = x.shape[0]
    flat = x.reshape(n, -1)
    order = arange(n, device=input.device)
    if sort_first:  # lexicographic order of the slices: stable sorts from the last column to the first
        for j in range(flat.shape[1] - 1, -1, -1):
            _, o = sort(flat[:, j][order])
            order = order[o]
    s = flat[order]
    new = _first_of_runs(s, 0)
    keep = order[new]
    vals = x[keep].movedim(0, d)
    out = [vals]
    run = cumsum(new.to(_dt.int64), 0) - 1
    if return_inverse:
        out.append(run.new_zeros(run.shape).scatter(0, order, run))
    if return_counts:
        out.append(index_add(run.new_zeros(int(new.sum())), 0, run, run.new_ones(run.shape)))
    return out[0] if len(out) == 1 else tuple(out)


def _no_derivative(name, t, like):
    """t, whose backward raises PyTorch's NotImplementedError (unique & co. have no derivative in PyTorch)."""
    if not like.requires_grad:
        return t
    from ..autograd.function import Function

    class _Undifferentiable(Function):
        @staticmethod
        def forward(ctx, x):
            return x.detach().clone()

        @staticmethod
        def backward(ctx, g):
            raise NotImplementedError(f"the derivative for '{name}' is not implemented.")

    return _Undifferentiable.apply(t)


def _first_output(out, fn):
    if isinstance(out, tuple):
        return (fn(out[0]),) + out[1:]
    return fn(out)


@composite(ref=_ref_unique, samples=_unique_samples, torch="torch.unique",
           differentiable="integer indices and counts out; PyTorch's unique has no gradient either")
@public
def unique(input, sorted=True, return_inverse=False, return_counts=False, dim=None):  # noqa: A002
    """The distinct values (sorted: PyTorch sorts whatever `sorted` says on the cpu), with the inverse indices
    and counts on request; dim: distinct slices along that dimension. Each nan is distinct."""
    _tensor("unique", input)
    if dim is not None:
        out = _unique_dim(input, dim, True, return_inverse, return_counts)
    else:
        out = _unique_flat(input.reshape(-1), True, return_inverse, return_counts, tuple(input.shape))
    return _first_output(out, lambda t: _no_derivative("unique", t, input))


def _ref_unique_consecutive(input, return_inverse=False, return_counts=False, dim=None):
    flat = input.reshape(-1)
    new = np.ones(len(flat), bool)
    new[1:] = flat[1:] != flat[:-1]
    out = [flat[new]]
    if return_inverse:
        out.append((np.cumsum(new) - 1).reshape(input.shape))
    if return_counts:
        out.append(np.diff(np.append(np.nonzero(new)[0], len(flat))))
    return out[0] if len(out) == 1 else tuple(out)


def _unique_consecutive_samples(dtype=np.float64):
    x = np.array([[1.0, 1.0, 2.0], [2.0, 3.0, 1.0]], dtype=dtype)
    return [((x,), {}), ((x.T,), {}), ((x[:0],), {})]


@composite(ref=_ref_unique_consecutive, samples=_unique_consecutive_samples, torch="torch.unique_consecutive",
           differentiable="integer indices and counts out; PyTorch's has no gradient either")
@public
def unique_consecutive(input, return_inverse=False, return_counts=False, dim=None):
    """Collapse runs of equal consecutive values (or slices along dim)."""
    _tensor("unique_consecutive", input)
    if dim is not None:
        out = _unique_dim(input, dim, False, return_inverse, return_counts)
    else:
        out = _unique_flat(input.reshape(-1), False, return_inverse, return_counts, tuple(input.shape))
    return _first_output(out, lambda t: _no_derivative("unique_consecutive", t, input))


def _ref_bincount(input, weights=None, minlength=0):
    out = np.bincount(input, weights=weights, minlength=minlength)
    if weights is None:
        return out.astype(np.int64)
    return out.astype(weights.dtype if weights.dtype.kind == "f" else np.float64)


def _bincount_samples(dtype=np.float64):
    r = np.random.default_rng(59)
    x = r.integers(0, 6, 10)
    return [((x,), {}), ((x, r.uniform(0, 2, 10).astype(dtype)), {}), ((x,), {"minlength": 9}),
            ((x[:0],), {"minlength": 3}), ((x[:0],), {})]


@composite(ref=_ref_bincount, samples=_bincount_samples, torch="torch.bincount")
@public
def bincount(input, weights=None, minlength=0):
    """Counts (or summed weights) of each non-negative integer in a 1-D tensor; max(input) + 1 bins at least.
    Reads the largest value on the host (the output's size), as PyTorch does."""
    from .creation import zeros
    from .index_extra import index_add

    _tensor("bincount", input)
    if input.ndim != 1 or input.dtype.is_floating_point or input.dtype is _dt.bool_:
        raise RuntimeError("bincount only supports 1-d non-negative integral inputs.")
    if minlength < 0:
        raise RuntimeError("minlength should be >= 0")
    n = minlength
    if input.numel():
        if int(input.min()) < 0:
            raise RuntimeError("bincount only supports 1-d non-negative integral inputs.")
        n = max(n, int(input.max()) + 1)
    if weights is None:
        out = zeros(n, dtype=_dt.int64, device=input.device)
        return index_add(out, 0, input, out.new_ones(input.shape))
    if tuple(weights.shape) != tuple(input.shape):
        raise RuntimeError("weights should be 1-d and have the same length as input")
    dt = weights.dtype if weights.dtype.is_floating_point else _dt.float64
    return index_add(zeros(n, dtype=dt, device=input.device), 0, input, weights.to(dt))
