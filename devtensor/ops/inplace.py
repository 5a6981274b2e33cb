"""In-place ops (add_, mul_, zero_, fill_, copy_, clamp_, +=, __setitem__, ...).

One mechanism for all: compute the out-of-place result, write it into the tensor's storage
(the backend's copy_ kernel) and bump the version counter shared with its views. When autograd
records, the op runs on a snapshot of the old value, and the tensor's grad_fn moves to the new
node (PyTorch's "rebase history"), so gradients flow through the in-place op.
"""
from __future__ import annotations

from .. import dtypes as _dt
from ..autograd.grad_mode import _grad_state, no_grad
from ..dispatch import KEEP, OPS, call, defop
from ..tensor import Tensor, _wrap
from ._api import FUNCTIONS, public
from ..geometry import broadcast_shapes


def apply_inplace(self, name, compute, others=()):
    recording = _grad_state.enabled and (self._rg or any(isinstance(o, Tensor) and o._rg for o in others))
    if recording:
        if self._rg and self._edge is None:
            raise RuntimeError(f"{name}: a leaf Variable that requires grad is being used in an in-place "
                               "operation (wrap it in `with devtensor.no_grad():`, as optimizers do, or "
                               "use an out-of-place op)")
        base = self._base
        if base is not None and (base._rg or self._rg):
            raise RuntimeError(f"{name}: in-place modification of a view of a tensor that requires grad is "
                               "not supported by devtensor; use an out-of-place op, or .clone() the view first")
        with no_grad():
            snap = _wrap(call(OPS["clone"], (self,), {})._data, self._device)
        snap._rg, snap._edge = self._rg, self._edge
        res = compute(snap)
    else:
        res = compute(self)
    _check_result(name, self, res)
    call(OPS["copy_"], (self, res), {})
    self._bump(name)
    if recording and res._rg:
        self._rg = True
        self._edge = res._edge
    return self


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


defop("copy_", ("dst", "src"), rule=KEEP, meta=_copy_meta, differentiable=False)  # writes src into dst's storage


def _inplace_method(op_name, fn_name):
    def method(self, other, *args, **kwargs):
        op = OPS[op_name]
        return apply_inplace(self, fn_name, lambda x: call(op, (x, other, *args), kwargs), (other,))

    method.__name__ = fn_name
    return method


for _op, _names in (("add", ("add_", "__iadd__")), ("sub", ("sub_", "__isub__")), ("mul", ("mul_", "__imul__")),
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
    if alpha != 1:
        other = other * alpha
    return apply_inplace(self, "sub_", lambda x: call(OPS["sub"], (x, other), {}), (other,))


Tensor.add_ = _add_
Tensor.sub_ = _sub_


def _unary_inplace(fn_name, public_name):
    def method(self, *args, **kwargs):
        f = FUNCTIONS[public_name]
        return apply_inplace(self, fn_name, lambda x: f(x, *args, **kwargs))

    method.__name__ = fn_name
    return method


for _n in ("exp", "log", "sqrt", "neg", "abs", "relu", "sigmoid", "tanh", "clamp", "floor", "ceil", "round",
           "sign", "reciprocal", "sin", "cos", "clamp_min", "clamp_max", "masked_fill", "lerp", "square"):
    setattr(Tensor, _n + "_", _unary_inplace(_n + "_", _n))


@public(function=False, name="zero_")
def zero_(self):
    return apply_inplace(self, "zero_", lambda x: _full_like_value(x, 0))


@public(function=False, name="fill_")
def fill_(self, value):
    v = value if isinstance(value, Tensor) else value
    return apply_inplace(self, "fill_", lambda x: _full_like_value(x, v), (v,))


def _full_like_value(x, v):
    from .creation import full_like

    if isinstance(v, Tensor):
        return (x * 0 + v.to(x.dtype)) if x._rg or v._rg else full_like(x, v.item())
    return full_like(x, v)


@public(function=False, name="copy_")
def copy_(self, src, non_blocking=False):
    if not isinstance(src, Tensor):
        raise TypeError(f"copy_: expected a Tensor as src, got {type(src).__name__}")
    if src._device is not self._device:
        src = src.to(self._device)
    if src.dtype is not self.dtype:
        src = src.to(self.dtype)
    return apply_inplace(self, "copy_", lambda x: src.expand(tuple(x.shape)) + x * 0 if src._rg else
                         src.expand(tuple(x.shape)), (src,))


@public(function=False)
def requires_grad_check(self):
    return self._rg


_ = _dt
