"""Indexing: __getitem__ / __setitem__ (ints, slices, None, Ellipsis, integer tensors, bool masks),
gather, scatter_add, index_select, masked_fill, nonzero."""
from __future__ import annotations

import numpy as np

from .. import dtypes as _dt
from ..autograd.grad_mode import _grad_state
from ..dispatch import KEEP, call, defop, op_error
from ..tensor import Tensor
from . import meta_rules as M
from . import samples as S
from ..geometry import index_shape
from ._api import public


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
scatter_add_ = defop("scatter_add", ("x", "index", "src"), rule=KEEP, meta=_scatter_add_meta, check=True,
                     save=("index",), grad_inputs=(0, 2),
                     backward=lambda c, g: (g, None, gather(g, c.dim, c.index)))


def _key_tensors(key, like):
    """Re-wrap raw index arrays of a saved key as tensors (for double backward)."""
    return tuple(_wrap_raw(k, like) if hasattr(k, "dtype") and hasattr(k, "shape") else k for k in key)


def _wrap_raw(arr, like):
    from ..tensor import _wrap

    return _wrap(arr, like._device)


def _check_int(op, idx):
    if idx.dtype.is_floating_point:
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
    if basic and Ellipsis not in k:
        k = k + (Ellipsis,)  # an all-int key gives numpy a scalar copy; x[0] must stay a (0-d) view
    try:
        out = call(_index, (self,), {"key": k, "basic": basic})
    except IndexError as e:
        raise IndexError(f"{e} (tensor shape {tuple(self._data.shape)}, index {_show(key)})") from None
    if basic:  # basic indexing gives a view sharing storage and version counter
        out._vc = self._shared_vc()
        out._base = self._base if self._base is not None else self
    return out


def _show(key):
    if isinstance(key, tuple):
        return "(" + ", ".join(_show(k) for k in key) + ")"
    if isinstance(key, Tensor):
        return f"tensor(shape={tuple(key.shape)}, dtype={key.dtype.name})"
    return repr(key)


def _setitem(self, key, value):
    from .inplace import apply_inplace

    k, _ = _normalize_key(self, key)
    if not isinstance(value, Tensor):
        value = float(value) if self.dtype.is_floating_point else value
        value = _as_value(value, self)
    elif value.dtype is not self.dtype:
        value = value.to(self.dtype)
    apply_inplace(self, "__setitem__", lambda x: call(_index_put, (x, value), {"key": k, "accumulate": False}),
                  (value,))


def _as_value(v, like):
    from .creation import tensor

    return tensor(v, dtype=like.dtype, device=like.device)


Tensor.__getitem__ = _getitem
Tensor.__setitem__ = _setitem


@public
def gather(input, dim, index):
    _check_int("gather", index)
    d = dim % max(input.ndim, 1)
    _check_range("gather", index, input.shape[d] if input.ndim else 1, d)
    return call(gather_, (input, index.to(_dt.int64)), {"dim": d})


@public
def scatter_add(input, dim, index, src):
    _check_int("scatter_add", index)
    d = dim % max(input.ndim, 1)
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
        raise op_error(op, f"index {int(a[bad].reshape(-1)[0])} is out of bounds for dimension {dim} with size {size}",
                       (index,), IndexError)


@public
def index_select(input, dim, index):
    d = dim % max(input.ndim, 1)
    return input[(slice(None),) * d + (index,)]


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
def take_along_dim(input, indices, dim):
    return gather(input, dim, indices)


_ = (KEEP, _grad_state)
