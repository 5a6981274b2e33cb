"""More indexing: scatter and scatter_reduce (ops: PyTorch's gradients, scatter_reduce's for sum / prod (zeros
included) / mean / amax / amin), and, written in ops, index_add, index_copy, index_fill, masked_select, take,
roll, rot90 and meshgrid; the in-place forms (scatter_, scatter_add_, scatter_reduce_, index_add_,
index_copy_, index_fill_) are Tensor methods."""
from __future__ import annotations

import warnings

import numpy as np

from .. import dtypes as _dt
from ..dispatch import KEEP, OPS, call, defop, op_error
from ..tensor import Tensor, _norm_dim
from . import meta_rules as M
from ._api import composite, public

__all__ = ["scatter", "scatter_reduce", "index_add", "index_copy", "index_fill", "masked_select", "take", "roll",
           "rot90", "meshgrid"]

_REDUCTIONS = ("sum", "prod", "mean", "amax", "amin")


# ---- meta rules -----------------------------------------------------------------------------------
def _scatter_meta(x, index, src, dim, **_):
    sx, si = tuple(x.shape), tuple(index.shape)
    ss = tuple(src.shape) if M.is_array(src) else None
    if len(si) != len(sx) or (ss is not None and len(ss) != len(si)):
        raise RuntimeError(f"Index tensor must have the same number of dimensions as self tensor ({len(si)} vs "
                           f"{len(sx)})" + ("" if ss is None else f" and src tensor ({len(ss)})"))
    for d, a in enumerate(si):
        if (d != dim and a > sx[d]) or (ss is not None and a > ss[d]):
            raise RuntimeError(f"Size does not match at dimension {d}: index {list(si)} is larger than self "
                               f"{list(sx)}" + ("" if ss is None else f" or src {list(ss)}"))
    return sx, x.dtype


# ---- backward rules ---------------------------------------------------------------------------------
def _src_grad(g_gathered, c):
    """The gradient of src: index-shaped values, zero-padded when src is larger than index."""
    src_meta = c.in_meta[2]
    if src_meta is None:
        return None
    src_shape, idx_shape = tuple(src_meta[0]), tuple(c.index.shape)
    if src_shape != idx_shape:
        g_gathered = call(OPS["pad"], (g_gathered,), {"widths": tuple((0, s - i) for s, i in zip(src_shape, idx_shape)),
                                                      "value": 0})
    return g_gathered


def _scatter_backward(c, g):
    gx = call(scatter_, (g, c.index, 0.0), {"dim": c.dim}) if c.needs_input_grad(0) else None
    gs = _src_grad(g.gather(c.dim, c.index), c) if c.needs_input_grad(2) else None
    return gx, None, gs


def _crop(src, index):
    shape = tuple(index.shape)
    if tuple(src.shape) == shape:
        return src
    key = tuple(slice(0, s) for s in shape)
    return src[key]


def _scatter_reduce_backward(c, g):
    from .elementwise import where

    x, index, dim, reduce, incl = c.x, c.index, c.dim, c.reduce, c.include_self
    src = _crop(c.src, index)
    result = c.out
    gx = gs = None
    if reduce == "sum":
        gx, gs = g, g.gather(dim, index)
    elif reduce == "mean":
        ones = src.new_ones(tuple(src.shape))
        n = (x.new_ones(tuple(x.shape)) if incl else x.new_zeros(tuple(x.shape))).scatter_add(dim, index, ones)
        n = where(n == 0, 1.0, n)
        gx = g / n
        gs = (g / n).gather(dim, index)
    elif reduce == "prod":
        # PyTorch's rule: exact where self or src holds a (single) zero
        masked_self = where(x == 0, 1.0, x)
        masked_self_result = call(scatter_reduce_, (masked_self, index, src), {"dim": dim, "reduce": "prod",
                                                                               "include_self": incl})
        gx = g * masked_self_result / masked_self
        src_zero = src == 0
        nzeros = x.new_zeros(tuple(x.shape)).scatter_add(dim, index, src_zero.to(x.dtype)).gather(dim, index)
        single = src_zero & (nzeros == 1)
        masked_src = where(single, 1.0, src)
        masked_src_result = call(scatter_reduce_, (x, index, masked_src), {"dim": dim, "reduce": "prod",
                                                                          "include_self": incl})
        gs = where(single, (g * masked_src_result).gather(dim, index),
                   (g * result).gather(dim, index) / where(src_zero, 1.0, src))
    else:  # amax / amin: shared evenly among the elements equal to the result
        value = result.gather(dim, index)
        self_is = (x == result).to(x.dtype)
        src_is = (src == value).to(x.dtype)
        count = self_is.scatter_add(dim, index, src_is)
        share = g / count
        gx = self_is * share
        gs = src_is * share.gather(dim, index)
    if not incl:
        gx = call(scatter_, (gx, index, 0.0), {"dim": dim})
    return (gx if c.needs_input_grad(0) else None, None,
            _src_grad(gs, c) if c.needs_input_grad(2) else None)


# ---- references and samples ---------------------------------------------------------------------------
def _full_index(index, dim):
    idx = list(np.indices(index.shape, sparse=True))
    idx[dim] = index
    return tuple(idx)


def _ref_scatter(x, index, src, dim):
    out = x.copy()
    if isinstance(src, np.ndarray) and src.ndim:
        src = src[tuple(slice(0, s) for s in index.shape)]
    out[_full_index(index, dim)] = src
    return out


def _ref_scatter_reduce(x, index, src, dim, reduce, include_self):
    src = src[tuple(slice(0, s) for s in index.shape)]
    out = x.astype(np.float64).copy()
    groups = {}
    for pos in np.ndindex(*index.shape):
        tgt = list(pos)
        tgt[dim] = index[pos]
        groups.setdefault(tuple(tgt), []).append(float(src[pos]))
    for tgt, vals in groups.items():
        vals = ([float(x[tgt])] if include_self else []) + vals
        out[tgt] = {"sum": np.sum, "prod": np.prod, "mean": np.mean, "amax": np.max, "amin": np.min}[reduce](vals)
    return out.astype(x.dtype)


def _unique_rows_index(r, shape, dim, size):
    """An index of `shape` whose entries along dim are distinct (scatter without duplicates: deterministic)."""
    idx = np.empty(shape, dtype=np.int64)
    moved = np.moveaxis(idx, dim, -1)
    for pos in np.ndindex(*moved.shape[:-1]):
        moved[pos] = r.permutation(size)[:moved.shape[-1]]
    return idx


def _scatter_samples(dtype=np.float64):
    r = np.random.default_rng(63)
    x = r.standard_normal((3, 5)).astype(dtype)
    return [((x, _unique_rows_index(r, (3, 4), 1, 5), r.standard_normal((3, 4)).astype(dtype)), {"dim": 1}),
            ((x, _unique_rows_index(r, (2, 5), 0, 3), r.standard_normal((2, 6)).astype(dtype)), {"dim": 0}),
            ((x.T.copy().T, _unique_rows_index(r, (3, 2), 1, 5), 1.5), {"dim": 1}),
            ((x[:, :0], np.zeros((3, 0), np.int64), r.standard_normal((3, 0)).astype(dtype)), {"dim": 1})]


def _scatter_reduce_samples(dtype=np.float64):
    r = np.random.default_rng(64)
    out = []
    for i, red in enumerate(_REDUCTIONS):
        x = (r.permutation(15).reshape(3, 5) / 4 + 0.5).astype(dtype)  # distinct, non-zero: smooth everywhere
        src = (r.permutation(12).reshape(3, 4) / 5 + 0.3).astype(dtype)
        idx = r.integers(0, 5, (3, 4))  # duplicates: several src elements per target
        out.append(((x, idx, src), {"dim": 1, "reduce": red, "include_self": i % 2 == 0}))
        out.append(((x, idx, src), {"dim": 1, "reduce": red, "include_self": i % 2 == 1}))
    z = np.array([[0.0, 2.0, 3.0], [1.5, 0.5, 2.5]], dtype=dtype)
    zs = np.array([[0.0, 1.2], [0.7, 0.0]], dtype=dtype)  # zeros in self and in src (prod's special cases)
    out.append(((z, np.array([[1, 0], [2, 2]]), zs), {"dim": 1, "reduce": "prod", "include_self": True}))
    return out


scatter_ = defop("scatter", ("x", "index", "src"), rule=KEEP, meta=_scatter_meta, check=True, save=("index",),
                 grad_inputs=(0, 2), backward=_scatter_backward, ref=_ref_scatter, samples=_scatter_samples)
scatter_reduce_ = defop("scatter_reduce", ("x", "index", "src"), rule=KEEP, meta=_scatter_meta, check=True,
                        save=("x", "index", "src", "out"), grad_inputs=(0, 2), backward=_scatter_reduce_backward,
                        ref=_ref_scatter_reduce, samples=_scatter_reduce_samples)


# ---- public functions ------------------------------------------------------------------------------------
def _index_arg(name, index):
    if not isinstance(index, Tensor):
        raise TypeError(f"{name}(): argument 'index' must be Tensor, not {type(index).__name__}")
    if index.dtype.is_floating_point or index.dtype is _dt.bool_:
        raise RuntimeError(f"{name}(): Expected dtype int64 for index")
    return index.to(_dt.int64)


def _check_range(name, index, size, dim):
    if index._device.type != "cpu" or not index._data.size:
        return
    a = index._data
    bad = (a < 0) | (a >= size)
    if bad.any():
        raise op_error(name, f"index {int(a[bad].reshape(-1)[0])} is out of bounds for dimension {dim} with size "
                       f"{size}", (index,), RuntimeError)


@public
def scatter(input, dim, index, src=None, *, value=None, reduce=None):
    """out[index[i][j]][j] = src[i][j] (dim 0), a copy of input; src may be a number (PyTorch's value=).
    reduce='add' / 'multiply' (deprecated in PyTorch) accumulate instead."""
    if src is None:
        src = value
    if src is None:
        raise TypeError("scatter(): expected a 'src' tensor or a 'value'")
    index = _index_arg("scatter", index)
    d = _norm_dim(dim, input.ndim, "scatter")
    _check_range("scatter", index, input.shape[d] if input.ndim else 1, d)
    if reduce is not None:
        if reduce not in ("add", "multiply"):
            raise RuntimeError(f"reduce argument must be either add or multiply, got {reduce}")
        if not isinstance(src, Tensor):
            src = input.new_full(tuple(index.shape), float(src) if input.dtype.is_floating_point else src)
        return scatter_reduce(input, d, index, src, "sum" if reduce == "add" else "prod")
    if isinstance(src, Tensor):
        if src.dtype is not input.dtype:
            raise RuntimeError(f"scatter(): Expected self.dtype to be equal to src.dtype ({input.dtype.name} vs "
                               f"{src.dtype.name})")
    else:
        src = float(src) if input.dtype.is_floating_point else src
    return call(scatter_, (input, index, src), {"dim": d})


@public
def scatter_reduce(input, dim, index, src, reduce, *, include_self=True):
    """Reduce src into input at index along dim: reduce is 'sum', 'prod', 'mean', 'amax' or 'amin';
    include_self=False leaves input's own values out wherever something is scattered."""
    if reduce not in _REDUCTIONS:
        raise RuntimeError(f"reduce argument must be either sum, prod, mean, amax or amin, got {reduce}")
    index = _index_arg("scatter_reduce", index)
    if not isinstance(src, Tensor):
        raise TypeError(f"scatter_reduce(): argument 'src' must be Tensor, not {type(src).__name__}")
    if src.dtype is not input.dtype:
        raise RuntimeError(f"scatter_reduce(): Expected self.dtype to be equal to src.dtype ({input.dtype.name} vs "
                           f"{src.dtype.name})")
    d = _norm_dim(dim, input.ndim, "scatter_reduce")
    _check_range("scatter_reduce", index, input.shape[d] if input.ndim else 1, d)
    return call(scatter_reduce_, (input, index, src), {"dim": d, "reduce": reduce, "include_self": bool(include_self)})


def _expanded(index, like_shape, dim):
    """index (1-D, along dim) broadcast to like_shape: the scatter index of the index_* functions."""
    shape = [1] * len(like_shape)
    shape[dim] = index.numel()
    return index.reshape(shape).expand(tuple(like_shape[:dim]) + (index.numel(),) + tuple(like_shape[dim + 1:]))


def _index_1d(name, index):
    index = _index_arg(name, index)
    if index.ndim > 1:
        raise IndexError(f"{name}(): Index is supposed to be a vector")
    return index.reshape(-1)


def _ref_index_add(input, dim, index, source, alpha=1):
    out = input.copy()
    src = np.moveaxis(source * alpha, dim, 0)
    o = np.moveaxis(out, dim, 0)
    for i, j in enumerate(index):
        o[j] += src[i]
    return out


def _index_add_samples(dtype=np.float64):
    r = np.random.default_rng(65)
    x = r.standard_normal((4, 3)).astype(dtype)
    return [((x, 0, np.array([0, 2, 2]), r.standard_normal((3, 3)).astype(dtype)), {}),
            ((x, 1, np.array([1, 0]), r.standard_normal((4, 2)).astype(dtype)), {"alpha": 0.5}),
            ((x.T, 0, np.array([2]), r.standard_normal((1, 4)).astype(dtype)), {}),
            ((x[0], 0, np.array([1, 1]), r.standard_normal(2).astype(dtype)), {})]


@composite(ref=_ref_index_add, samples=_index_add_samples, torch="torch.index_add")
@public
def index_add(input, dim, index, source, *, alpha=1):
    """input with alpha * source[i] added at index[i] along dim (duplicates accumulate)."""
    index = _index_1d("index_add", index)
    d = _norm_dim(dim, input.ndim, "index_add")
    if input.ndim == 0:
        return index_add(input.reshape(1), 0, index, source.reshape(-1), alpha=alpha).reshape(())
    if source.ndim != input.ndim or source.shape[d] != index.numel():
        raise IndexError(f"index_add_(): Number of indices ({index.numel()}) should be equal to source.size(dim) "
                         f"({source.shape[d] if source.ndim > d else 1})")
    _check_range("index_add", index, input.shape[d], d)
    if alpha != 1:
        source = source * alpha
    from .index import scatter_add

    return scatter_add(input, d, _expanded(index, tuple(source.shape), d), source.to(input.dtype))


def _ref_index_copy(input, dim, index, source):
    out = input.copy()
    o, s = np.moveaxis(out, dim, 0), np.moveaxis(source, dim, 0)
    for i, j in enumerate(index):
        o[j] = s[i]
    return out


def _index_copy_samples(dtype=np.float64):
    r = np.random.default_rng(66)
    x = r.standard_normal((4, 3)).astype(dtype)
    return [((x, 0, np.array([3, 0]), r.standard_normal((2, 3)).astype(dtype)), {}),
            ((x, 1, np.array([2, 1, 0]), r.standard_normal((4, 3)).astype(dtype)), {}),
            ((x.T, 1, np.array([1]), r.standard_normal((3, 1)).astype(dtype)), {})]


@composite(ref=_ref_index_copy, samples=_index_copy_samples, torch="torch.index_copy")
@public
def index_copy(input, dim, index, source):
    """input with source[i] written at index[i] along dim."""
    index = _index_1d("index_copy", index)
    d = _norm_dim(dim, input.ndim, "index_copy")
    if input.ndim == 0:
        return index_copy(input.reshape(1), 0, index, source.reshape(-1)).reshape(())
    _check_range("index_copy", index, input.shape[d], d)
    return scatter(input, d, _expanded(index, tuple(source.shape), d), source.to(input.dtype))


def _ref_index_fill(input, dim, index, value):
    out = input.copy()
    np.moveaxis(out, dim, 0)[index] = value
    return out


def _index_fill_samples(dtype=np.float64):
    x = np.random.default_rng(67).standard_normal((4, 3)).astype(dtype)
    return [((x, 0, np.array([3, 0]), -1.5), {}), ((x, 1, np.array([2]), 0.25), {}), ((x.T, 0, np.array([1]), 2.0), {})]


@composite(ref=_ref_index_fill, samples=_index_fill_samples, torch="torch.index_fill")
@public
def index_fill(input, dim, index, value):
    """input with every slice index[i] along dim set to value (a number or a 0-d tensor)."""
    index = _index_1d("index_fill", index)
    d = _norm_dim(dim, input.ndim, "index_fill")
    if input.ndim == 0:
        return index_fill(input.reshape(1), 0, index, value).reshape(())
    _check_range("index_fill", index, input.shape[d], d)
    shape = tuple(input.shape[:d]) + (index.numel(),) + tuple(input.shape[d + 1:])
    if isinstance(value, Tensor):
        src = value.to(input.dtype).expand(shape)
    else:
        src = input.new_full(shape, value)
    return scatter(input, d, _expanded(index, tuple(input.shape), d), src)


def _ref_masked_select(input, mask):
    a, m = np.broadcast_arrays(input, mask)
    return a[m]


def _masked_select_samples(dtype=np.float64):
    r = np.random.default_rng(68)
    x = r.standard_normal((3, 4)).astype(dtype)
    return [((x, x > 0), {}), ((x, np.array([True, False, True, True])), {}), ((x.T, np.zeros((4, 3), bool)), {}),
            ((x[0], np.array([[True], [False]])), {})]


@composite(ref=_ref_masked_select, samples=_masked_select_samples, torch="torch.masked_select")
@public
def masked_select(input, mask):
    """The elements of input where mask (broadcast with it) is True, as a 1-D tensor."""
    from ..geometry import broadcast_shapes

    if not isinstance(mask, Tensor) or mask.dtype is not _dt.bool_:
        raise RuntimeError("masked_select: expected BoolTensor for mask")
    shape = broadcast_shapes(tuple(input.shape), tuple(mask.shape))
    return input.expand(shape)[mask.expand(shape)].reshape(-1)


def _take_samples(dtype=np.float64):
    x = np.random.default_rng(69).standard_normal((3, 4)).astype(dtype)
    return [((x, np.array([0, 5, 11, 5])), {}), ((x.T, np.array([[1, -1], [2, 0]])), {}), ((x, np.zeros(0, np.int64)), {})]


@composite(ref=lambda input, index: input.reshape(-1)[index], samples=_take_samples, torch="torch.take")
@public
def take(input, index):
    """input treated as 1-D (row-major), read at index; the result has index's shape."""
    index = _index_arg("take", index)
    n = input.numel()
    if index._device.type == "cpu" and index.numel():
        a = index._data
        if bool(((a < -n) | (a >= n)).any()):
            raise IndexError(f"take(): index {int(a[(a < -n) | (a >= n)][0])} out of range for tensor of size "
                             f"{list(input.shape)}.")
    return input.reshape(-1)[index]


def _ref_roll(input, shifts, dims=None):
    return np.roll(input, shifts, axis=dims)


def _roll_samples(dtype=np.float64):
    x = np.random.default_rng(70).standard_normal((3, 4)).astype(dtype)
    return [((x, 1), {}), ((x, -2, 1), {}), ((x, (1, -3), (0, 1)), {}), ((x.T, 7, 0), {}), ((x[:0], 2, 0), {})]


@composite(ref=_ref_roll, samples=_roll_samples, torch="torch.roll")
@public
def roll(input, shifts, dims=None):
    """Rotate the elements along dims by shifts (without dims: the flattened tensor, reshaped back)."""
    from .shape import cat

    if dims is None:
        if isinstance(shifts, (tuple, list)):
            if len(shifts) != 1:
                raise RuntimeError(f"shifts and dimensions must align. shifts: {len(shifts)}, dims:0")
            shifts = shifts[0]
        return roll(input.reshape(-1), shifts, 0).reshape(tuple(input.shape))
    shifts = tuple(shifts) if isinstance(shifts, (tuple, list)) else (shifts,)
    dims = tuple(dims) if isinstance(dims, (tuple, list)) else (dims,)
    if len(shifts) != len(dims):
        raise RuntimeError(f"shifts and dimensions must align. shifts: {len(shifts)}, dims:{len(dims)}")
    out = input
    for s, d in zip(shifts, dims):
        d = _norm_dim(d, input.ndim, "roll")
        n = input.shape[d]
        if n == 0:
            continue
        s = int(s) % n
        if s:
            out = cat([out.narrow(d, n - s, s), out.narrow(d, 0, n - s)], d)
    return out if out is not input else input.clone()


def _rot90_samples(dtype=np.float64):
    x = np.random.default_rng(71).standard_normal((2, 3, 4)).astype(dtype)
    return [((x,), {}), ((x, 2), {}), ((x, 3, (1, 2)), {}), ((x, -1, (2, 0)), {}), ((x, 4), {})]


@composite(ref=lambda input, k=1, dims=(0, 1): np.rot90(input, k, dims), samples=_rot90_samples, torch="torch.rot90")
@public
def rot90(input, k=1, dims=(0, 1)):
    """Rotate by 90 degrees k times in the plane dims (from the first towards the second)."""
    if len(dims) != 2:
        raise RuntimeError(f"expected total rotation dims == 2, but got dims = {len(dims)}")
    if input.ndim < 2:
        raise RuntimeError(f"expected total dims >= 2, but got total dims = {input.ndim}")
    d0, d1 = (_norm_dim(d, input.ndim, "rot90") for d in dims)
    if d0 == d1:
        raise RuntimeError(f"expected rotation dims to be different, but got dim0 = {d0} and dim1 = {d1}")
    k %= 4
    if k == 1:
        return input.flip(d1).transpose(d0, d1)
    if k == 2:
        return input.flip((d0, d1))
    if k == 3:
        return input.flip(d0).transpose(d0, d1)
    return input.clone()


@public(method=False)
def meshgrid(*tensors, indexing=None):
    """Coordinate grids from 1-D tensors: indexing='ij' (matrix, PyTorch's default, with its warning when not
    given) or 'xy' (Cartesian: the first two dimensions swapped)."""
    if len(tensors) == 1 and isinstance(tensors[0], (tuple, list)):
        tensors = tuple(tensors[0])
    if indexing is None:
        warnings.warn("torch.meshgrid: in an upcoming release, it will be required to pass the indexing argument.",
                      UserWarning, stacklevel=2)
        indexing = "ij"
    if indexing not in ("ij", "xy"):
        raise RuntimeError(f"torch.meshgrid: indexing must be one of \"xy\" or \"ij\", but received: {indexing}")
    for t in tensors:
        if t.ndim > 1:
            raise RuntimeError(f"torch.meshgrid: Expected 0D or 1D tensor in the tensor list but got: {t.ndim}D")
    ts = [t.reshape(-1) for t in tensors]
    swap = indexing == "xy" and len(ts) >= 2
    if swap:
        ts[0], ts[1] = ts[1], ts[0]
    shape = tuple(t.numel() for t in ts)
    out = []
    for i, t in enumerate(ts):
        view = [1] * len(ts)
        view[i] = -1
        out.append(t.reshape(view).expand(shape))
    if swap:  # the grids of (b, a, ...) in 'ij' order are 'xy''s grids of (a, b, ...)
        out[0], out[1] = out[1], out[0]
    return tuple(out)


# ---- in-place methods ---------------------------------------------------------------------------------
def _inplace(name, fn, tensor_args=()):
    def method(self, *args, **kwargs):
        from .inplace import apply_inplace

        others = tuple(a for a in (*args, *kwargs.values()) if isinstance(a, Tensor))
        return apply_inplace(self, name, lambda x: fn(x, *args, **kwargs), others)

    method.__name__ = name
    public(method, name=name, function=False)


def _scatter_add(input, dim, index, src):
    from .index import scatter_add

    return scatter_add(input, dim, index, src)


for _name, _fn in (("scatter_", scatter), ("scatter_reduce_", scatter_reduce), ("index_add_", index_add),
                   ("index_copy_", index_copy), ("index_fill_", index_fill), ("scatter_add_", _scatter_add)):
    _inplace(_name, _fn)
