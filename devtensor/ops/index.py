"""Indexing: __getitem__ / __setitem__ (ints, slices, None, Ellipsis, integer tensors, bool masks),
gather, scatter_add, index_select, masked_fill, nonzero."""
from __future__ import annotations

import numpy as np

from .. import dtypes as _dt
from ..autograd.grad_mode import _grad_state
from ..dispatch import KEEP, OPS, call, defop, op_error
from ..tensor import Tensor, _norm_dim
from . import meta_rules as M
from . import samples as S
from ..geometry import index_shape
from ._api import not_a_tensor, public
from .inplace import track_view


def _index_backward(c, g):
    return call(_index_bw, (g,), {"shape": c.in_meta[0][0], "key": c.key, "basic": c.basic})


# ---- meta rules ------------------------------------------------------------------------------
def _expand_masks(key):
    """Boolean masks -> their nonzero() index arrays' shapes: the one shape that needs the data."""
    out = []
    for k in key:
        if M.is_array(k) and k.dtype == np.bool_:
            if not hasattr(k, "sum"):
                raise NotImplementedError("indexing with a boolean mask gives a shape that depends on the mask's "
                                          "values, which a meta tensor does not have")
            n = int(k.sum())
            out.extend(_Shape((n,)) for _ in range(max(len(k.shape), 1)))
        elif isinstance(k, bool):  # x[True] is x[None]; x[False] an empty new axis
            out.append(None if k else _Shape((0,)))
        else:
            out.append(k)
    return tuple(out)


class _Shape:
    __slots__ = ("shape",)

    def __init__(self, shape):
        self.shape = shape


def _index_meta(x, key, basic):
    return index_shape(tuple(x.shape), _expand_masks(key)), x.dtype


def _gather_meta(x, index, dim):
    sx, si = tuple(x.shape), tuple(index.shape)
    if len(si) != len(sx):
        raise RuntimeError(f"index tensor must have the same number of dimensions as input ({len(si)} vs {len(sx)})")
    for d, (a, b) in enumerate(zip(si, sx)):
        if d != dim and a > b:
            raise RuntimeError(f"size {a} of index {list(si)} exceeds the input's {b} at dimension {d} "
                               f"(only dimension {dim} may be larger)")
    return si, x.dtype


def _scatter_add_meta(x, index, src, dim):
    sx, si, ss = tuple(x.shape), tuple(index.shape), tuple(src.shape)
    if not len(si) == len(sx) == len(ss):
        raise RuntimeError(f"index {list(si)}, input {list(sx)} and src {list(ss)} must have the same number of "
                           "dimensions")
    for d, (a, b, c) in enumerate(zip(si, sx, ss)):
        if a > c or (d != dim and a > b):
            raise RuntimeError(f"size {a} of index {list(si)} at dimension {d} exceeds src {list(ss)} or input "
                               f"{list(sx)}")
    return sx, x.dtype


_index = defop("index", rule=KEEP, meta=_index_meta, backward=_index_backward, view=False)
_index_bw = defop("index_backward", ("g",), rule=KEEP, meta=lambda g, shape, key, basic: (tuple(shape), g.dtype),
                  backward=lambda c, gg: gg[_key_tensors(c.key, gg)])


def _index_put_backward(c, g):
    gx = g if c.accumulate else call(_index_put, (g, g.new_zeros(()), ), {"key": c.key, "accumulate": False})
    gv = g[_key_tensors(c.key, g)]
    return gx, gv


_index_put = defop("index_put", ("x", "v"), rule=KEEP, meta=lambda x, v, key, accumulate: (tuple(x.shape), x.dtype),
                   backward=_index_put_backward)
gather_ = defop("gather", ("x", "index"), rule=KEEP, meta=_gather_meta, check=True, save=("index",), grad_inputs=(0,),
                backward=lambda c, g: (scatter_add(g.new_zeros(c.in_meta[0][0]), c.dim, c.index, g), None),
                ref=lambda x, index, dim: np.take_along_axis(x, index, dim), samples=S.shape_ops("gather"))
def _scatter_add_backward(c, g):
    gs = None
    if c.needs_input_grad(2):
        # src may be larger than index (only its index-shaped corner is scattered): the rest gets 0
        gs = gather(g, c.dim, c.index)
        src_shape, idx_shape = c.in_meta[2][0], tuple(c.index.shape)
        if tuple(src_shape) != idx_shape:
            gs = call(OPS["pad"], (gs,), {"widths": tuple((0, s - i) for s, i in zip(src_shape, idx_shape)),
                                          "value": 0})
    return g, None, gs


scatter_add_ = defop("scatter_add", ("x", "index", "src"), rule=KEEP, meta=_scatter_add_meta, check=True,
                     save=("index",), grad_inputs=(0, 2), backward=_scatter_add_backward)


def _key_tensors(key, like):
    """Re-wrap raw index arrays of a saved key as tensors (for double backward)."""
    return tuple(_wrap_raw(k, like) if hasattr(k, "dtype") and hasattr(k, "shape") else k for k in key)


def _wrap_raw(arr, like):
    from ..tensor import _wrap

    return _wrap(arr, like._device)


def _check_int(op, idx, cls=IndexError):
    if cls is RuntimeError:  # gather / scatter_add take int32/int64 only (PyTorch's "Expected dtype int32/int64")
        if idx.dtype not in (_dt.int32, _dt.int64):
            raise RuntimeError(f"{op}: expected dtype int32/int64 for index, got {idx.dtype}")
        return
    if idx.dtype.is_floating_point or idx.dtype.is_complex:
        raise IndexError(f"{op}: tensors used as indices must be long, int, byte or bool tensors, "
                         f"got {idx.dtype}")


def _normalize_key(x, key):
    """Convert a user key to the backend's form; return (key, basic) with bounds checked."""
    if not isinstance(key, tuple):
        key = (key,)
    out = []
    basic = True
    dev = x._device
    n_index = 0
    for k in key:
        if isinstance(k, Tensor):
            _check_int("index", k)
            if k._device is not dev:
                if k._data.ndim == 0 and k._device.type == "cpu":
                    k = k.to(dev)
                else:
                    raise op_error("index", f"indices are on {k._device} but the tensor is on {dev}", (x, k))
            if k.dtype is _dt.bool_:
                n_index += k.ndim
            else:
                n_index += 1
            out.append(k._data)
            basic = False
        elif isinstance(k, (list, np.ndarray)):
            a = np.asarray(k)
            if a.dtype.kind == "f":
                raise IndexError(f"index: lists used as indices must hold integers or bools, got {a.dtype}")
            t = Tensor_from_host(a, dev)
            out.append(t)
            n_index += a.ndim if a.dtype == np.bool_ else 1
            basic = False
        elif isinstance(k, (bool, np.bool_)):
            out.append(bool(k))
            basic = False
        elif isinstance(k, (int, np.integer)):
            out.append(int(k))
            n_index += 1
        elif k is None or k is Ellipsis or isinstance(k, slice):
            if isinstance(k, slice) and k.step is not None and k.step <= 0:
                raise ValueError("index: step must be greater than zero (negative steps are not supported, "
                                 "as in PyTorch; use .flip())")
            out.append(k)
            if isinstance(k, slice):
                n_index += 1
        else:
            raise IndexError(f"index: unsupported index of type {type(k).__name__}: only integers, slices, "
                             "None, Ellipsis, integer tensors and bool masks are valid indices")
    if n_index > x._data.ndim:
        raise IndexError(f"index: too many indices for tensor of dimension {x._data.ndim} "
                         f"(got {n_index}, shape {tuple(x._data.shape)})")
    return tuple(out), basic


def Tensor_from_host(a, dev):
    from ..backends import get_backend

    return get_backend(dev.type).from_numpy(a, dev)


def _getitem(self, key):
    k, basic = _normalize_key(self, key)
    split = None if basic else _split_ints(k)
    if split is not None:  # PyTorch applies integers first (x[0, :, [0, 1]] is x[0][:, [0, 1]]), numpy does not
        return _index_with(_index_with(self, split[0], True, key), split[1], False, key)
    return _index_with(self, k, basic, key)


def _index_with(self, k, basic, key):
    if basic and Ellipsis not in k:
        k = k + (Ellipsis,)  # an all-int key gives numpy a scalar copy; x[0] must stay a (0-d) view
    try:
        out = call(_index, (self,), {"key": k, "basic": basic})
    except IndexError as e:
        raise IndexError(f"{e} (tensor shape {tuple(self._data.shape)}, index {_show(key)})") from None
    if basic:  # basic indexing gives a view sharing storage and version counter
        out._vc = self._shared_vc()
        out._base = self._base if self._base is not None else self
        track_view(out)
    return out


def _split_ints(k):
    """A key mixing integers with advanced indices (arrays, lists, masks) as (basic key of the integers,
    advanced key for what is left), or None when there is nothing to split: numpy counts the integers as
    advanced indices (x[0, :, [0, 1]] has shape (2, 3)), PyTorch applies them first ((3, 2))."""
    if not any(isinstance(e, int) and not isinstance(e, bool) for e in k) or any(isinstance(e, bool) for e in k):
        return None
    first, rest = [], []
    for e in k:
        if isinstance(e, int):
            first.append(e)
        elif e is None or e is Ellipsis:
            first.append(e)
            rest.append(slice(None) if e is None else e)
        elif isinstance(e, slice):
            first.append(e)
            rest.append(slice(None))
        else:  # an index array (a bool mask spans its ndim dims)
            n = e.ndim if e.dtype == np.bool_ else 1
            first.extend([slice(None)] * n)
            rest.append(e)
    return tuple(first), tuple(rest)


def _show(key):
    if isinstance(key, tuple):
        return "(" + ", ".join(_show(k) for k in key) + ")"
    if isinstance(key, Tensor):
        return f"tensor(shape={tuple(key.shape)}, dtype={key.dtype.name})"
    return repr(key)


def _setitem(self, key, value):
    from .inplace import apply_inplace

    k, basic = _normalize_key(self, key)
    target = self
    split = None if basic else _split_ints(k)
    if split is not None:  # as in _getitem: the integers first (a view), then the advanced part into it
        target = _index_with(self, split[0], True, key)
        k = split[1]
    if not isinstance(value, Tensor):
        value = float(value) if self.dtype.is_floating_point else value
        value = _as_value(value, self)
    elif value.dtype is not self.dtype:
        value = value.to(self.dtype)
    apply_inplace(target, "__setitem__", lambda x: call(_index_put, (x, value), {"key": k, "accumulate": False}),
                  (value,))


def _as_value(v, like):
    from .creation import tensor

    return tensor(v, dtype=like.dtype, device=like.device)


Tensor.__getitem__ = _getitem
Tensor.__setitem__ = _setitem


def _alias(name, dim, axis):
    """dim, or its alias axis= (PyTorch's numpy-style keyword); one of them is required."""
    if axis is not None:
        if dim is not None:
            raise TypeError(f"{name}: got multiple values for argument 'dim' (dim and its alias axis)")
        return axis
    if dim is None:
        raise TypeError(f"{name}: missing the required argument 'dim'")
    return dim


@public
def gather(input, dim=None, index=None, *, sparse_grad=False, axis=None):
    dim = _alias("gather", dim, axis)
    if not isinstance(index, Tensor):
        raise not_a_tensor("gather", "index", 3, index)
    _check_int("gather", index, RuntimeError)
    d = _norm_dim(dim, input.ndim, "gather")
    _check_range("gather", index, input.shape[d] if input.ndim else 1, d)
    return call(gather_, (input, index.to(_dt.int64)), {"dim": d})


@public
def scatter_add(input, dim=None, index=None, src=None, *, axis=None):
    dim = _alias("scatter_add", dim, axis)
    if not isinstance(index, Tensor) or not isinstance(src, Tensor):
        raise TypeError("scatter_add: arguments 'index' and 'src' must be Tensors")
    _check_int("scatter_add", index, RuntimeError)
    if isinstance(src, Tensor) and src.dtype is not input.dtype:
        raise op_error("scatter_add", f"expected self.dtype to be equal to src.dtype, got {input.dtype.name} and "
                       f"{src.dtype.name}", (input, src), RuntimeError)
    d = _norm_dim(dim, input.ndim, "scatter_add")
    _check_range("scatter_add", index, input.shape[d] if input.ndim else 1, d)
    return call(scatter_add_, (input, index.to(_dt.int64), src.to(input.dtype)), {"dim": d})


def _check_range(op, index, size, dim):
    """Index values in [0, size), as PyTorch: on the cpu here (numpy would wrap negative ones); other
    devices check inside their kernels, without a host sync, and report at the next synchronisation."""
    if index._device.type != "cpu" or not index._data.size:
        return
    a = index._data
    bad = (a < 0) | (a >= size)
    if bad.any():
        # PyTorch raises RuntimeError here (an IndexError only for x[index] and index_select)
        raise op_error(op, f"index {int(a[bad].reshape(-1)[0])} is out of bounds for dimension {dim} with size {size}",
                       (index,), RuntimeError)


@public
def index_select(input, dim=None, index=None, *, axis=None):
    dim = _alias("index_select", dim, axis)
    if not isinstance(index, Tensor):
        raise not_a_tensor("index_select", "index", 3, index)
    if index.ndim > 1:
        raise IndexError(f"index_select: index_select(): Index is supposed to be a vector, got shape "
                         f"{tuple(index.shape)}")
    d = _norm_dim(dim, input.ndim, "index_select")
    if index.ndim == 0:  # a 0-d index selects one entry and keeps the dim, as PyTorch's
        index = index.reshape(1)
    _check_int("index_select", index)
    size = input.shape[d] if input.ndim else 1
    if index._device.type == "cpu" and index._data.size:  # no negative wrap-around: PyTorch's IndexError
        a = index._data
        if bool(((a < 0) | (a >= size)).any()):
            raise op_error("index_select", f"index out of range in self (index {int(a[(a < 0) | (a >= size)][0])}, "
                           f"dimension {d} of size {size})", (input, index), IndexError)
    return input[(slice(None),) * d + (index,)] if input.ndim else input.reshape(1)[index].reshape(index.shape)


@public
def masked_fill(input, mask, value):
    from .elementwise import where

    if mask.dtype is not _dt.bool_:
        raise RuntimeError(f"masked_fill: expected a bool mask, got {mask.dtype}")
    if isinstance(value, Tensor):
        value = value.to(input.dtype)
    return where(mask, value if isinstance(value, Tensor) else _py_like(value, input), input)


def _py_like(v, t):
    return float(v) if t.dtype.is_floating_point else (bool(v) if t.dtype is _dt.bool_ else int(v))


@public
def nonzero(input, *, as_tuple=False):
    from .creation import tensor

    idx = np.nonzero(np.asarray(input._host()))
    if as_tuple:
        return tuple(tensor(i.astype(np.int64), device=input.device) for i in idx)
    return tensor(np.stack(idx, axis=1).astype(np.int64) if idx else np.zeros((0, 0), np.int64),
                  device=input.device)


@public
def take_along_dim(input, indices, dim=None, *, axis=None):
    dim = dim if axis is None else axis
    if dim is None:
        return gather(input.reshape(-1), 0, indices.reshape(-1))
    return gather(input, dim, indices)


_ = (KEEP, _grad_state)
