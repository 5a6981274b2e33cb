"""In-place ops (add_, mul_, zero_, fill_, copy_, clamp_, +=, __setitem__, ...).

One mechanism for all: compute the out-of-place result, write it into the tensor's storage
(the backend's copy_ kernel) and bump the version counter shared with its views. When autograd
records, the op runs on a snapshot of the old value, and the tensor's grad_fn moves to the new
node (PyTorch's "rebase history"), so gradients flow through the in-place op.

On a view (x[:, 0] += 1, y.view(-1).mul_(2)) the base's history is rebased as PyTorch's CopySlices
does: the base's new value is its old value with the view's elements replaced by the result (an
index_put at the view's positions in the base, found from the arrays' strides), so the gradient of
the old base is the incoming one with the view's elements zeroed and the result gets those elements;
the view's own history then reads its elements from the base's new value.
"""
from __future__ import annotations

import weakref

import numpy as np

from .. import dtypes as _dt
from ..autograd.grad_mode import _grad_state, no_grad
from ..dispatch import KEEP, OPS, call, defop
from ..tensor import Tensor, _wrap
from ._api import FUNCTIONS, public
from ..geometry import broadcast_shapes


def apply_inplace(self, name, compute, others=(), overwrite=False):
    base = self._base
    recording = _grad_state.enabled and (self._rg or any(isinstance(o, Tensor) and o._rg for o in others))
    if base is not None and _grad_state.enabled and base._rg:
        if base._edge is None:
            raise RuntimeError(f"{name}: a view of a leaf Variable that requires grad is being used in an in-place "
                               "operation. (wrap it in `with devtensor.no_grad():`, or .clone() the view first)")
        if not self._rg:
            raise RuntimeError(f"{name}: a view was created in no_grad mode and is being modified inplace with grad "
                               "mode enabled. Given that this use case is ambiguous and error-prone, it is forbidden. "
                               "You can clarify your code by moving both the view and the inplace either both inside "
                               "the no_grad block (if you don't want the inplace to be tracked) or both outside (if "
                               "you want the inplace to be tracked).")
    if recording:
        if self._rg and self._edge is None:
            raise RuntimeError(f"{name}: a leaf Variable that requires grad is being used in an in-place "
                               "operation (wrap it in `with devtensor.no_grad():`, as optimizers do, or "
                               "use an out-of-place op)")
        key = _view_key(self, base, name, written=True) if base is not None else None
        with no_grad():
            snap = _wrap(call(OPS["clone"], (self,), {})._data, self._device)
        snap._rg, snap._edge = self._rg, self._edge
        res = compute(snap)
    else:
        res = compute(self)
    _check_result(name, self, res)
    if recording and snap._rg and (overwrite or not res._rg):
        res = _overwrites(res, snap)
    call(OPS["copy_"], (self, res), {})
    self._bump(name)
    if recording:
        if base is not None:
            _rebase_view(self, base, res, key)
        elif res._rg:
            self._rg = True
            self._edge = res._edge
            _regenerate_views(self, self, skip=None)
    return self


# ---- CopySlices --------------------------------------------------------------------------------
# The live views of each base that requires grad (id(base) -> (weakref to the base, [weakrefs to views])),
# recorded by the view-making functions (track_view): after an in-place op changes a base, every live view
# of it gets its history regenerated from the base's new one, as PyTorch regenerates a view's grad_fn when
# its base's version moves.
_VIEWS: dict = {}


def track_view(out):
    """Record `out`, a view that requires grad, under its base; returns out (for the view functions)."""
    root = out._base
    if root is None or not out._rg:
        return out
    k = id(root)
    entry = _VIEWS.get(k)
    if entry is None or entry[0]() is not root:
        entry = _VIEWS[k] = (weakref.ref(root, lambda r, k=k: _VIEWS.pop(k, None)), [])
    views = entry[1]
    if len(views) >= 32:
        views[:] = [w for w in views if w() is not None]
    views.append(weakref.ref(out))
    return out


def _live_views(root):
    entry = _VIEWS.get(id(root))
    if entry is None or entry[0]() is not root:
        return []
    return [v for v in (w() for w in entry[1]) if v is not None]


def _address(a):
    """The array's data address in bytes (numpy, CuPy), or None for arrays without one (meta)."""
    ai = getattr(a, "__array_interface__", None)
    if ai is not None:
        return ai["data"][0]
    data = getattr(a, "data", None)
    return getattr(data, "ptr", None)


def _offsets(shape, strides):
    off = np.zeros(shape, dtype=np.int64)
    for d, (n, st) in enumerate(zip(shape, strides)):
        idx = [1] * len(shape)
        idx[d] = n
        off = off + (np.arange(n, dtype=np.int64) * st).reshape(idx)
    return off


def _view_key(view, root, name, written=False):
    """Where the view's elements sit in its base: a tuple of int64 index arrays (one per base dim, each
    of the view's shape) for index / index_put, found from the two arrays' addresses and strides (no data
    is read). `written`: the view is about to be written, so two of its elements may not share memory."""
    va, ra = view._data, root._data
    av, ar = _address(va), _address(ra)
    if av is None or ar is None or not hasattr(va, "strides") or not hasattr(ra, "strides"):
        raise NotImplementedError(f"{name}: in-place modification of a view that requires grad is not supported on "
                                  f"{view.device.type} tensors (their arrays expose no strides); .clone() the view "
                                  "first")
    item = ra.dtype.itemsize
    voff = _offsets(va.shape, va.strides) + (av - ar)
    flags = getattr(ra, "flags", None)
    if flags is not None and flags.c_contiguous:
        flat, rem = np.divmod(voff, item)
        if rem.any() or (flat.size and (flat.min() < 0 or flat.max() >= ra.size)):
            raise RuntimeError(f"{name}: the view's elements could not be located in its base's storage")
    else:
        roff = _offsets(ra.shape, ra.strides).reshape(-1)
        if written and np.unique(roff).size != roff.size:
            raise RuntimeError(f"{name}: unsupported operation: more than one element of the written-to tensor "
                               "refers to a single memory location. Please clone() the tensor before performing the "
                               "operation.")
        order = np.argsort(roff, kind="stable")
        sorted_off = roff[order]
        pos = np.searchsorted(sorted_off, voff)
        ok = pos < sorted_off.size
        if not ok.all() or not (sorted_off[np.where(ok, pos, 0)] == voff).all():
            raise RuntimeError(f"{name}: the view's elements could not be located in its base's storage")
        flat = order[pos]
    if written and np.unique(flat).size != flat.size:
        raise RuntimeError(f"{name}: unsupported operation: more than one element of the written-to tensor refers "
                           "to a single memory location. Please clone() the tensor before performing the operation.")
    key = np.unravel_index(flat, ra.shape) if ra.ndim else ()
    if root._device.type != "cpu":
        from ..backends import get_backend

        be = get_backend(root._device.type)
        return tuple(be.from_numpy(np.ascontiguousarray(k, dtype=np.int64), root._device) for k in key)
    return tuple(np.asarray(k, dtype=np.int64) for k in key)


def _view_of(new_root, view, key):
    """The view's value read from `new_root` (the base's new history) at `key`."""
    if new_root._data.ndim == 0:
        return new_root.reshape(tuple(view._data.shape))
    return call(OPS["index"], (new_root,), {"key": key, "basic": False})


def _rebase_view(view, root, res, key):
    if res._data.dtype != root._data.dtype:
        res = res.to(root.dtype)
    old = _wrap(root._data, root._device)  # the base's old history (its data already holds the new values,
    old._rg, old._edge = root._rg, root._edge  # which index_put's rule never reads)
    if root._data.ndim == 0:
        new_root = res.reshape(())
    else:
        new_root = call(OPS["index_put"], (old, res), {"key": key, "accumulate": False})
    if new_root._rg:
        root._rg, root._edge = True, new_root._edge
    v = _view_of(new_root, view, key)
    if v._rg:
        view._rg, view._edge = True, v._edge
    _regenerate_views(root, new_root, skip=view)


def _regenerate_views(root, new_root, skip):
    """Every other live view of `root` reads its elements from the base's new history `new_root`."""
    if not new_root._rg:
        return
    for v in _live_views(root):
        if v is skip or v._data.size == 0:
            continue
        try:
            key = _view_key(v, root, "view")
        except (RuntimeError, NotImplementedError):
            continue  # a view whose memory cannot be located keeps its history
        nv = _view_of(new_root, v, key)
        v._rg, v._edge = True, nv._edge


def _overwrites(res, old):
    """`res` (which does not depend on the old value: fill_, zero_, copy_ of a constant) as a function of
    `old` with a zero gradient, as PyTorch's: the tensor keeps a history, and its old one gets zeros."""
    from .creation import full

    if res.dtype is not old.dtype:
        res = res.to(old.dtype)
    keep = full(tuple(old.shape), True, dtype=_dt.bool_, device=old.device)
    return call(OPS["where"], (keep, res, old), {})


def _check_cast(name, self, other):
    """PyTorch checks that the result type can be written into self before computing (int_tensor &= float)."""
    if isinstance(other, (float, Tensor)) and not isinstance(other, bool):
        rd = _dt.result_type(self, other)
        if rd._cat > self.dtype._cat:
            raise RuntimeError(f"{name}: result type {rd.name} can't be cast to the desired output type "
                               f"{self.dtype.name}")


def _check_result(name, self, res):
    if res._data.shape != self._data.shape:
        raise RuntimeError(f"{name}: output with shape {list(self._data.shape)} doesn't match the broadcast "
                           f"shape {list(res._data.shape)}")
    rd, sd = res.dtype, self.dtype
    if rd._cat > sd._cat:
        raise RuntimeError(f"{name}: result type {rd.name} can't be cast to the desired output type {sd.name}")


def _copy_meta(dst, src):
    if src is not None and hasattr(src, "shape") and broadcast_shapes(tuple(dst.shape), tuple(src.shape)) != tuple(dst.shape):
        raise RuntimeError(f"the source of shape {list(src.shape)} cannot be broadcast to the destination's "
                           f"{list(dst.shape)}")
    return tuple(dst.shape), dst.dtype


def _copy_samples(dtype=np.float64):
    r = np.random.default_rng(31)
    return [((r.standard_normal((3, 4)).astype(dtype), r.standard_normal((3, 4)).astype(dtype)), {}),
            ((r.standard_normal((2, 5)).astype(dtype), r.standard_normal((5,)).astype(dtype)), {})]  # broadcast


# src into dst's storage (what every in-place method ends with)
defop("copy_", ("dst", "src"), rule=KEEP, meta=_copy_meta, differentiable=False, mutates="dst",
      ref=lambda dst, src: np.broadcast_to(src, dst.shape).astype(dst.dtype), samples=_copy_samples)


def _inplace_method(op_name, fn_name):
    def method(self, other, *args, **kwargs):
        op = OPS[op_name]
        _check_cast(fn_name, self, other)
        return apply_inplace(self, fn_name, lambda x: call(op, (x, other, *args), kwargs), (other,))

    method.__name__ = fn_name
    return method


for _op, _names in (("add", ("add_", "__iadd__")), ("sub", ("__isub__",)), ("mul", ("mul_", "__imul__")),
                    ("div", ("div_", "__itruediv__")), ("pow", ("pow_", "__ipow__")),
                    ("remainder", ("remainder_", "__imod__")), ("floor_divide", ("floor_divide_", "__ifloordiv__")),
                    ("maximum", ("maximum_",)), ("minimum", ("minimum_",)),
                    ("bitwise_and", ("__iand__",)), ("bitwise_or", ("__ior__",)), ("bitwise_xor", ("__ixor__",))):
    for _n in _names:
        setattr(Tensor, _n, _inplace_method(_op, _n))


def _add_(self, other, *, alpha=1):
    if alpha != 1:
        other = other * alpha
    return apply_inplace(self, "add_", lambda x: call(OPS["add"], (x, other), {}), (other,))


def _sub_(self, other, *, alpha=1):
    from .elementwise import _check_sub, _is_bool

    if self._data.dtype.kind == "b" or _is_bool(other):
        _check_sub("sub_", self, other)
    if alpha != 1:
        other = other * alpha
    return apply_inplace(self, "sub_", lambda x: call(OPS["sub"], (x, other), {}), (other,))


Tensor.add_ = _add_
Tensor.sub_ = Tensor.__isub__ = _sub_


def _unary_inplace(fn_name, public_name):
    def method(self, *args, **kwargs):
        f = FUNCTIONS[public_name]
        return apply_inplace(self, fn_name, lambda x: f(x, *args, **kwargs))

    method.__name__ = fn_name
    return method


for _n in ("exp", "log", "sqrt", "neg", "abs", "relu", "sigmoid", "tanh", "clamp", "floor", "ceil", "round",
           "sign", "reciprocal", "sin", "cos", "clamp_min", "clamp_max", "masked_fill", "lerp", "square", "clip", "trunc",
           "expm1", "log1p", "rsqrt", "erf", "bitwise_not", "logical_not"):
    setattr(Tensor, _n + "_", _unary_inplace(_n + "_", _n))


@public(function=False, name="zero_")
def zero_(self):
    return apply_inplace(self, "zero_", lambda x: _full_like_value(x, 0), overwrite=True)


@public(function=False, name="fill_")
def fill_(self, value):
    v = value if isinstance(value, Tensor) else value
    return apply_inplace(self, "fill_", lambda x: _full_like_value(x, v), (v,), overwrite=True)


def _full_like_value(x, v):
    from .creation import full_like

    if isinstance(v, Tensor):
        if v.ndim:
            raise RuntimeError(f"fill_ only supports 0-dimension value tensor but got tensor with {v.ndim} dimensions.")
        return v.to(x.dtype).expand(tuple(x.shape)) if v._rg else full_like(x, v.item())
    return full_like(x, v)


@public(method=False, name="relu_")
def relu_(input):
    return input.relu_()


@public(function=False, name="copy_")
def copy_(self, src, non_blocking=False):
    if not isinstance(src, Tensor):
        raise TypeError(f"copy_: expected a Tensor as src, got {type(src).__name__}")
    if src._device is not self._device:
        src = src.to(self._device)
    if src.dtype is not self.dtype:
        src = src.to(self.dtype)
    return apply_inplace(self, "copy_", lambda x: src.expand(tuple(x.shape)), (src,), overwrite=True)


@public(function=False)
def requires_grad_check(self):
    return self._rg


_ = _dt
