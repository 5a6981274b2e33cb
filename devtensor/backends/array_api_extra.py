"""Portable kernels of the ops declared in devtensor/ops/{cumulative,sorting,special,index_extra,linalg_ops}.py:
one numpy/CuPy code each, registered for cpu and cuda in the "portable" tier (see array_api_kernels.py).

A few need what one of the two libraries lacks: numpy has no erfc/erfinv/lgamma/digamma/polygamma (numba
loops on the cpu, cupyx.scipy.special on cuda: _register_special), and CuPy's ufuncs may lack .at and
.accumulate (the helpers below fall back to cupyx's scatter functions or a loop over the axis).
Kernels receive arrays already cast to the op's compute dtype and attributes its meta rule has checked.
"""
from __future__ import annotations

import math
import types


def register(be, xp):
    """xp: numpy, or a lazy stand-in for CuPy whose attributes resolve at call time."""

    quiet = _is_numpy(xp)

    def k(*names):
        def deco(fn):
            return be.kernel(*names, tier="portable")(_quiet(fn) if quiet else fn)

        return deco

    # ---- cumulative ------------------------------------------------------------------------------
    @k("cumsum")
    def cumsum(x, dim):
        return xp.cumsum(x, axis=dim, dtype=x.dtype)

    @k("cumprod")
    def cumprod(x, dim):
        return xp.cumprod(x, axis=dim, dtype=x.dtype)

    @k("cummax")
    def cummax(x, dim):
        return _cum_extreme(xp, x, dim, True)

    @k("cummin")
    def cummin(x, dim):
        return _cum_extreme(xp, x, dim, False)

    @k("logcumsumexp")
    def logcumsumexp(x, dim):
        if x.shape[dim] == 0:
            return x.copy()
        acc = getattr(xp.logaddexp, "accumulate", None)
        if acc is not None:
            try:
                return acc(x, axis=dim, dtype=x.dtype)
            except (NotImplementedError, TypeError):  # pragma: no cover - CuPy without accumulate
                pass
        xs = xp.moveaxis(x, dim, -1)
        out = xp.empty_like(xs)
        cur = xs[..., 0]
        out[..., 0] = cur
        for i in range(1, xs.shape[-1]):
            cur = xp.logaddexp(cur, xs[..., i])
            out[..., i] = cur
        return xp.moveaxis(out, -1, dim)

    # ---- sorting ---------------------------------------------------------------------------------
    @k("sort")
    def sort(x, dim, descending):
        idx = _argsort(xp, x, dim, descending)
        return xp.take_along_axis(x, idx, dim), idx

    @k("topk")
    def topk(x, k, dim, largest):
        idx = _argsort(xp, x, dim, largest)
        idx = xp.take(idx, xp.arange(k), axis=dim)
        return xp.take_along_axis(x, idx, dim), idx

    @k("kthvalue")
    def kthvalue(x, k, dim, keepdim):
        idx = _argsort(xp, x, dim, False)
        idx = xp.take(idx, xp.asarray([k - 1]), axis=dim)
        v = xp.take_along_axis(x, idx, dim)
        return (v, idx) if keepdim else (v.squeeze(dim), idx.squeeze(dim))

    @k("median")
    def median(x, dim, keepdim, ignore_nan):
        idx = _argsort(xp, x, dim, False)
        n = x.shape[dim]
        if x.dtype.kind in "fc":
            nans = xp.isnan(x).sum(axis=dim, keepdims=True)
        else:
            nans = xp.zeros(x.shape[:dim] + (1,) + x.shape[dim + 1:], dtype=xp.int64)
        if ignore_nan:  # the lower median of the numbers; all-nan slices give their first nan
            pos = xp.where(nans == n, 0, (n - nans - 1) // 2)
        else:  # any nan: the first one (nans sort last, stably)
            pos = xp.where(nans > 0, n - nans, (n - 1) // 2)
        i = xp.take_along_axis(idx, pos.astype(xp.int64), dim)
        v = xp.take_along_axis(x, i, dim)
        return (v, i) if keepdim else (v.squeeze(dim), i.squeeze(dim))

    @k("mode")
    def mode(x, dim, keepdim):
        xs = xp.moveaxis(x, dim, -1)
        idx = _argsort(xp, xs, xs.ndim - 1, False)
        s = xp.take_along_axis(xs, idx, -1)
        n = s.shape[-1]
        pos = xp.broadcast_to(xp.arange(n), s.shape)
        new = xp.ones(s.shape, dtype=bool)
        new[..., 1:] = s[..., 1:] != s[..., :-1]
        last = xp.ones(s.shape, dtype=bool)
        last[..., :-1] = new[..., 1:]
        first_pos = _accumulate_max(xp, xp.where(new, pos, 0), -1)
        count = pos - first_pos + 1
        # the run of the most frequent value, smallest value first among equal counts: its last element
        # (the last occurrence in the input, as the sort is stable)
        score = xp.where(last, count, 0)
        best = xp.argmax(score, axis=-1)[..., None]
        v = xp.take_along_axis(s, best, -1)
        i = xp.take_along_axis(idx, best, -1)
        v, i = xp.moveaxis(v, -1, dim), xp.moveaxis(i, -1, dim)
        return (v, i) if keepdim else (v.squeeze(dim), i.squeeze(dim))

    @k("searchsorted")
    def searchsorted(seq, values, right, out_int32):
        side = "right" if right else "left"
        dt = xp.int32 if out_int32 else xp.int64
        if seq.ndim == 1:
            return xp.searchsorted(seq, values, side=side).astype(dt)
        rows_s = seq.reshape(-1, seq.shape[-1])
        rows_v = values.reshape(-1, values.shape[-1])
        out = xp.empty(rows_v.shape, dtype=dt)
        for r in range(rows_s.shape[0]):
            out[r] = xp.searchsorted(rows_s[r], rows_v[r], side=side)
        return out.reshape(values.shape)

    @k("histc")
    def histc(x, bins, min, max):  # noqa: A002 - PyTorch's names
        v = x.reshape(-1)
        keep = (v >= min) & (v <= max)
        v = v[keep].astype(xp.float64)
        b = ((v - min) * bins / (max - min)).astype(xp.int64)
        b = xp.minimum(b, bins - 1)  # max itself goes into the last bin
        return xp.bincount(b, minlength=bins)[:bins].astype(x.dtype)

    # ---- elementwise special -------------------------------------------------------------------
    for name in _PLAIN:  # the namespace's function of the same name, quiet on numpy
        k(name)(_namespace_fn(xp, name))

    @k("fmod")
    def fmod(a, b):
        if a.dtype.kind in "iu":  # integer fmod by 0: PyTorch raises (numpy would warn and give 0)
            if bool(xp.any(xp.asarray(b) == 0)):
                raise ZeroDivisionError("ZeroDivisionError")
        return xp.fmod(a, b)

    @k("nan_to_num")
    def nan_to_num(x, nan, posinf, neginf):
        return xp.nan_to_num(x, copy=True, nan=nan, posinf=posinf, neginf=neginf)

    @k("xlogy")
    def xlogy(a, b):
        return xp.where(a == 0, xp.zeros((), a.dtype), a * xp.log(b)).astype(a.dtype, copy=False)

    # ---- indexing -------------------------------------------------------------------------------
    @k("scatter")
    def scatter(x, index, src, dim):
        out = x.copy()
        idx = _full_index(xp, index, dim)
        src = src[_extent(index.shape, src.ndim)] if hasattr(src, "shape") and src.ndim else src
        out[idx] = src
        return out

    @k("scatter_reduce")
    def scatter_reduce(x, index, src, dim, reduce, include_self):
        idx = _full_index(xp, index, dim)
        src = src[_extent(index.shape, src.ndim)]
        out = x.copy()
        if not include_self:  # positions that receive anything start from the reduction's identity
            ident = {"sum": 0, "mean": 0, "prod": 1, "amax": _lowest(xp, x.dtype), "amin": _highest(xp, x.dtype)}
            out[idx] = ident[reduce]
        if reduce in ("sum", "mean"):
            _at(xp, "add", out, idx, src)
        elif reduce == "prod":
            _at(xp, "multiply", out, idx, src)
        elif reduce == "amax":
            _at(xp, "maximum", out, idx, src)
        else:
            _at(xp, "minimum", out, idx, src)
        if reduce == "mean":
            count = xp.ones(x.shape, dtype=xp.float64 if x.dtype.kind == "f" else xp.int64) if include_self else \
                xp.zeros(x.shape, dtype=xp.float64 if x.dtype.kind == "f" else xp.int64)
            _at(xp, "add", count, idx, xp.ones(index.shape, dtype=count.dtype))
            count = xp.maximum(count, 1)
            out = (out / count).astype(x.dtype) if x.dtype.kind == "f" else xp.floor_divide(out, count).astype(x.dtype)
        return out

    # ---- linear algebra -------------------------------------------------------------------------
    @k("einsum")
    def einsum(a, b, equation):
        return xp.einsum(equation, a) if b is None else xp.einsum(equation, a, b)

    @k("diagonal")
    def diagonal(x, offset, dim1, dim2):
        return xp.diagonal(x, offset, dim1, dim2).copy()

    @k("diagonal_backward")
    def diagonal_backward(g, shape, offset, dim1, dim2):
        out = xp.zeros(shape, dtype=g.dtype)
        view = _diagonal_view(xp, out, offset, dim1, dim2)
        view[...] = g
        return out

    @k("diag_embed")
    def diag_embed(x, offset, dim1, dim2):
        n = x.shape[-1] + abs(offset)
        nd = x.ndim + 1
        d1, d2 = dim1 % nd, dim2 % nd
        lead = list(x.shape[:-1])
        shape = []
        it = iter(lead)
        for i in range(nd):
            shape.append(n if i in (d1, d2) else next(it))
        out = xp.zeros(tuple(shape), dtype=x.dtype)
        view = _diagonal_view(xp, out, offset, d1, d2)
        view[...] = x
        return out

    @k("linalg_inv")
    def inv(a):
        return xp.linalg.inv(a)

    @k("linalg_det")
    def det(a):
        return xp.asarray(xp.linalg.det(a)).astype(a.dtype)

    @k("linalg_slogdet")
    def slogdet(a):
        s, l = xp.linalg.slogdet(a)
        return xp.asarray(l).astype(a.dtype), xp.asarray(s).astype(a.dtype)  # (logabsdet, sign): see linalg_ops

    @k("linalg_solve")
    def solve(a, b, vector):
        if vector:
            return xp.linalg.solve(a, b[..., None])[..., 0]
        return xp.linalg.solve(a, b)

    @k("linalg_cholesky")
    def cholesky(a, upper):
        s = 0.5 * (a + xp.swapaxes(a, -1, -2))  # the op is given a symmetric matrix (see linalg_ops.py)
        l = xp.linalg.cholesky(s)
        return xp.swapaxes(l, -1, -2).copy() if upper else l

    @k("linalg_qr")
    def qr(a, mode):
        if a.ndim == 2:
            q, r = xp.linalg.qr(a, mode=mode)
            return q, r
        lead = a.shape[:-2]
        flat = a.reshape((-1,) + a.shape[-2:])
        qs, rs = zip(*(xp.linalg.qr(m, mode=mode) for m in flat)) if flat.shape[0] else ((), ())
        m, n = a.shape[-2:]
        kq = m if mode == "complete" else min(m, n)
        q = xp.stack(qs) if qs else xp.zeros((0, m, kq), a.dtype)
        r = xp.stack(rs) if rs else xp.zeros((0, kq, n), a.dtype)
        return q.reshape(lead + q.shape[-2:]), r.reshape(lead + r.shape[-2:])

    @k("linalg_svd")
    def svd(a, full_matrices):
        u, s, vh = xp.linalg.svd(a, full_matrices=full_matrices)
        return u, s.astype(a.dtype), vh

    @k("linalg_eigh")
    def eigh(a):
        s = 0.5 * (a + xp.swapaxes(a, -1, -2))  # the op is given a symmetric matrix (see linalg_ops.py)
        w, v = xp.linalg.eigh(s)
        return w.astype(a.dtype), v

    _register_special(be, xp)


# ---- helpers ------------------------------------------------------------------------------------

# elementwise ops that are the array namespace's function of the same name
_PLAIN = ("hypot", "logaddexp", "logaddexp2", "copysign")


def _namespace_fn(xp, name):
    """xp.name, looked up at call time (xp may be the lazy CuPy stand-in)."""
    def kernel(*args):
        return getattr(xp, name)(*args)

    kernel.__name__ = name
    return kernel


def _quiet(fn):
    """numpy warns on log(0), 0/0, inf - inf; PyTorch returns inf/nan silently, and so do these kernels."""
    import numpy as np

    def kernel(*args, **kwargs):
        with np.errstate(all="ignore"):
            return fn(*args, **kwargs)

    kernel.__name__ = fn.__name__
    return kernel


def _is_numpy(xp):
    return isinstance(xp, types.ModuleType) and xp.__name__ == "numpy"


def _argsort(xp, x, dim, descending):
    """Stable argsort along dim; descending keeps equal elements in input order and puts nan first
    (PyTorch's order: nan is the largest value)."""
    if x.dtype.kind == "b":
        x = x.astype(xp.uint8)
    if not descending:
        return xp.argsort(x, axis=dim, kind="stable")
    if x.dtype.kind == "f":
        key = -x
    elif x.dtype.kind == "u":
        key = (xp.iinfo(x.dtype).max - x)  # no negation of unsigned values
    else:
        key = ~x  # -x - 1: order-reversing without overflow
    idx = xp.argsort(key, axis=dim, kind="stable")
    if x.dtype.kind == "f":
        notnan = ~xp.isnan(xp.take_along_axis(x, idx, dim))
        idx = xp.take_along_axis(idx, xp.argsort(notnan, axis=dim, kind="stable"), dim)
    return idx


def _accumulate_max(xp, a, axis):
    acc = getattr(xp.maximum, "accumulate", None)
    if acc is not None:
        try:
            return acc(a, axis=axis)
        except (NotImplementedError, TypeError):  # pragma: no cover - CuPy without accumulate
            pass
    a = xp.moveaxis(a, axis, -1).copy()
    for i in range(1, a.shape[-1]):
        a[..., i] = xp.maximum(a[..., i], a[..., i - 1])
    return xp.moveaxis(a, -1, axis)


def _cum_extreme(xp, x, dim, is_max):
    """cummax / cummin with PyTorch's indices: ties and nans move the index to the later element."""
    n = x.shape[dim]
    if n == 0:
        return x.copy(), xp.zeros(x.shape, dtype=xp.int64)
    acc = getattr(xp.maximum if is_max else xp.minimum, "accumulate", None)
    vals = None
    if acc is not None:
        try:
            vals = acc(x, axis=dim)
        except (NotImplementedError, TypeError):  # pragma: no cover
            vals = None
    if vals is None:  # pragma: no cover - CuPy without accumulate
        xs = xp.moveaxis(x, dim, -1)
        vals = xs.copy()
        f = xp.maximum if is_max else xp.minimum
        for i in range(1, n):
            vals[..., i] = f(vals[..., i - 1], xs[..., i])
        vals = xp.moveaxis(vals, -1, dim)
    cand = x == vals
    if x.dtype.kind == "f":
        cand = cand | xp.isnan(x)
    shape = [1] * x.ndim
    shape[dim] = n
    pos = xp.arange(n, dtype=xp.int64).reshape(shape)
    idx = _accumulate_max(xp, xp.where(cand, pos, 0), dim)
    return vals, idx.astype(xp.int64)


def _extent(shape, ndim):
    return tuple(slice(0, int(shape[i])) if i < len(shape) else slice(None) for i in range(ndim))


def _full_index(xp, index, dim):
    """The advanced-indexing key that puts index along dim and each position's own coordinate elsewhere
    (aranges shaped to broadcast: what numpy's indices(sparse=True) gives, which CuPy lacks)."""
    n = index.ndim
    idx = []
    for d, size in enumerate(index.shape):
        if d == dim:
            idx.append(index)
        else:
            shape = [1] * n
            shape[d] = size
            idx.append(xp.arange(size).reshape(shape))
    return tuple(idx)


def _at(xp, ufunc, out, idx, v):
    f = getattr(xp, ufunc)
    if hasattr(f, "at"):
        f.at(out, idx, v)
        return
    import cupyx  # pragma: no cover - CuPy: its scatter functions

    fn = {"add": cupyx.scatter_add, "maximum": cupyx.scatter_max, "minimum": cupyx.scatter_min}.get(ufunc)
    if fn is None:
        raise NotImplementedError(f"scatter_reduce: '{ufunc}' has no CuPy kernel")
    fn(out, idx, v)


def _lowest(xp, dtype):
    return -math.inf if dtype.kind == "f" else (False if dtype.kind == "b" else xp.iinfo(dtype).min)


def _highest(xp, dtype):
    return math.inf if dtype.kind == "f" else (True if dtype.kind == "b" else xp.iinfo(dtype).max)


def _diagonal_view(xp, a, offset, dim1, dim2):
    """A writable view of a's diagonal (numpy's diagonal() is read-only): dims dim1, dim2 last, then the
    strided diagonal of the trailing 2-D block."""
    b = xp.moveaxis(a, (dim1, dim2), (-2, -1))
    m, n = b.shape[-2:]
    if offset >= 0:
        rows, cols = xp.arange(0, max(0, min(m, n - offset))), None
        cols = rows + offset
    else:
        rows = xp.arange(0, max(0, min(m + offset, n))) - offset
        cols = rows + offset
    return _Setter(b, rows, cols)


class _Setter:
    """view[...] = v writes v into b[..., rows, cols]."""

    def __init__(self, b, rows, cols):
        self.b, self.rows, self.cols = b, rows, cols

    def __setitem__(self, key, v):
        self.b[..., self.rows, self.cols] = v


# ---- special functions: numba loops on the cpu, cupyx.scipy.special on cuda ----------------------------

_SPECIAL = ("erfc", "erfinv", "lgamma", "digamma", "polygamma")


def _register_special(be, xp):
    if be.name == "cpu" or _is_numpy(xp):
        from .cpu import special_math as S

        for name in _SPECIAL:
            be.kernel(name, tier="portable")(getattr(S, name))
        return

    def special(name):
        import cupyx.scipy.special as sp

        return getattr(sp, name)

    def cupyx_fn(fname):
        def kernel(x):
            return special(fname)(x)

        kernel.__name__ = fname
        return kernel

    for name, fname in (("erfc", "erfc"), ("erfinv", "erfinv"), ("lgamma", "gammaln"), ("digamma", "digamma")):
        be.kernel(name, tier="portable")(cupyx_fn(fname))

    @be.kernel("polygamma", tier="portable")
    def polygamma(x, n):
        return special("polygamma")(n, x).astype(x.dtype)
