"""Tensor: a thin handle on a backend array (its device, autograd state and version counter).

Operators, math methods, .to() and pickling are attached by the op modules in devtensor/ops
(each op is declared once there, with its function and method forms) and .backward() by the
autograd engine: this file holds what every tensor is, whatever ops exist, and imports nothing
above dtypes and devices.
"""
from __future__ import annotations

import numpy as np

from . import dtypes as _dt
from .device import device as _device_cls
from .device import resolve


# fn(tensor, what) before a tensor's value is read on the host (item, numpy, tolist): graph capture
# uses it to notice data-dependent Python, which a replay could not reproduce
_HOST_READ = [None]
_F32, _I64 = np.dtype(np.float32), np.dtype(np.int64)
# graph capture's hook for `t.grad = ...` (None outside a capture): a replay must make the assignment again
_GRAD_SET = [None]


class Size(tuple):
    """torch.Size: a tuple of ints with numel()."""

    def numel(self):
        n = 1
        for s in self:
            n *= s
        return n

    def __repr__(self):
        return f"devtensor.Size({list(self)})"


class Tensor:
    __slots__ = ("_data", "_device", "_rg", "_edge", "_vc", "_base", "_grad", "_hooks",
                 "_retains", "__weakref__")
    __array_priority__ = 1000  # numpy defers `ndarray + Tensor` to Tensor.__radd__

    def __init__(self, *args, **kwargs):
        raise TypeError("create tensors with devtensor.tensor(data), devtensor.zeros(...), etc.")

    # ---- basic attributes -------------------------------------------------------------------
    @property
    def dtype(self):
        return _dt._FROM_NP[self._data.dtype]

    @property
    def device(self):
        return self._device

    @property
    def shape(self):
        return Size(self._data.shape)

    def size(self, dim=None):
        s = self._data.shape
        if dim is None:
            return Size(s)
        return s[_norm_dim(dim, len(s), "size")]

    @property
    def ndim(self):
        return self._data.ndim

    def dim(self):
        return self._data.ndim

    def numel(self):
        return int(self._data.size)

    nelement = numel

    def element_size(self):
        return self._data.dtype.itemsize

    @property
    def is_cuda(self):
        return self._device.type == "cuda"

    @property
    def is_leaf(self):
        return self._edge is None

    @property
    def requires_grad(self):
        return self._rg

    @requires_grad.setter
    def requires_grad(self, flag):
        self.requires_grad_(flag)

    def requires_grad_(self, requires_grad=True):
        if self._edge is not None:
            if not requires_grad:
                raise RuntimeError("requires_grad_: you can only change requires_grad of leaf tensors; "
                                   "use .detach() to get a tensor that does not require grad")
            return self
        if requires_grad and self._data.dtype.kind not in "fc" and self._data.dtype != _dt.bfloat16.np:
            raise RuntimeError(f"requires_grad_: only tensors of floating point dtype can require "
                               f"gradients, got {self.dtype}")
        self._rg = bool(requires_grad)
        return self

    @property
    def grad_fn(self):
        return None if self._edge is None else self._edge[0]

    @property
    def grad(self):
        return self._grad_or_none()

    @grad.setter
    def grad(self, g):
        if g is not None:
            if not isinstance(g, Tensor):
                raise TypeError(f"grad must be a Tensor or None, got {type(g).__name__}")
            if g._device is not self._device or g._data.shape != self._data.shape:
                raise RuntimeError(f"assigned grad has shape {tuple(g.shape)} on {g.device}, but the tensor "
                                   f"has shape {tuple(self.shape)} on {self.device}")
        if _GRAD_SET[0] is not None:
            _GRAD_SET[0](self, g)
        self._grad = g

    def _grad_or_none(self):
        try:
            return self._grad
        except AttributeError:
            return None

    def _set_grad(self, g):
        self._grad = g

    def _hooks_or_none(self):
        try:
            return self._hooks
        except AttributeError:
            return None

    @property
    def _version(self):
        return 0 if self._vc is None else self._vc[0]

    def _shared_vc(self):
        vc = self._vc
        if vc is None:
            vc = self._vc = [0, None]
        return vc

    def _bump(self, op_name):
        vc = self._shared_vc()
        vc[0] += 1
        vc[1] = op_name

    def _alias(self):
        """A detached tensor sharing data and version counter (what a node saves for `out`)."""
        t = _wrap(self._data, self._device)
        t._vc = self._shared_vc()
        return t

    def _attached(self, node, nr=0):
        t = _wrap(self._data, self._device)
        t._vc = self._vc
        t._rg = True
        t._edge = (node, nr)
        return t

    # ---- autograd -----------------------------------------------------------------------------
    def detach(self):
        t = _wrap(self._data, self._device)
        t._vc = self._shared_vc()
        return t

    def detach_(self):
        if self._base is not None and self._edge is not None:
            raise RuntimeError("detach_: cannot detach a view in place; use .detach()")
        self._edge = None
        self._rg = False
        return self

    @property
    def data(self):
        return self.detach()

    @data.setter
    def data(self, other):
        if not isinstance(other, Tensor):
            raise TypeError(f"data must be a Tensor, got {type(other).__name__}")
        self._data = other._data
        self._device = other._device

    def retain_grad(self):
        if self._edge is None:
            return  # leaves keep .grad anyway
        if not self._rg:
            raise RuntimeError("retain_grad: can't retain_grad on a tensor that has requires_grad=False")
        if getattr(self, "_retains", False):
            return
        import weakref

        ref = weakref.ref(self)

        def keep(g):
            t = ref()
            if t is not None:
                prev = t._grad_or_none()
                t._grad = g.detach().clone() if prev is None else prev + g.detach()

        node, nr = self._edge
        node.register_prehook(nr, keep)
        self._retains = True

    @property
    def retains_grad(self):
        return getattr(self, "_retains", False)

    def register_hook(self, hook):
        """hook(grad) -> Tensor or None, called when this tensor's gradient is computed."""
        if not self._rg:
            raise RuntimeError("register_hook: cannot register a hook on a tensor that doesn't require gradient")
        if self._edge is None:
            hooks = self._hooks_or_none()
            if hooks is None:
                hooks = self._hooks = []
            hooks.append(hook)
            return _HookHandle(hooks, hook)
        node, nr = self._edge
        node.register_prehook(nr, hook)
        return _HookHandle(node.pre_hooks[nr], hook)

    # ---- conversion ---------------------------------------------------------------------------
    def numpy(self, *, force=False):
        if _HOST_READ[0] is not None:
            _HOST_READ[0](self, "numpy()")
        if self._device.type != "cpu":
            if not force:
                raise TypeError(f"can't convert {self._device} tensor to numpy: copy it to the host first "
                                "with .cpu() (or pass force=True)")
            return self.cpu().numpy()
        if self._rg and not force:
            raise RuntimeError("Can't call numpy() on a tensor that requires grad. Use tensor.detach().numpy()")
        return self._data

    def __array__(self, dtype=None, copy=None):
        if _HOST_READ[0] is not None:
            _HOST_READ[0](self, "numpy.asarray()")
        a = self._host()
        if dtype is not None:
            a = a.astype(dtype, copy=False)
        return a

    def _host(self):
        if self._device.type == "cpu":
            return self._data
        from .backends import get_backend

        return get_backend(self._device.type).to_numpy(self._data)

    def item(self):
        if self._data.size != 1:
            raise RuntimeError(f"item: a tensor with {self._data.size} elements cannot be converted to a "
                               "Python number (only one-element tensors can)")
        if _HOST_READ[0] is not None:
            _HOST_READ[0](self, "item()")
        return self._host().reshape(()).item()

    def tolist(self):
        if _HOST_READ[0] is not None:
            _HOST_READ[0](self, "tolist()")
        return self._host().tolist()

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __index__(self):
        if self._data.dtype.kind not in "iub" or self._data.size != 1:
            raise TypeError("only integer tensors of a single element can be converted to an index")
        return int(self.item())

    def __bool__(self):
        if self._data.size != 1:
            raise RuntimeError(f"Boolean value of Tensor with {self._data.size} elements is ambiguous "
                               "(use .any() or .all())")
        return bool(self.item())

    def __len__(self):
        if self._data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self._data.shape[0]

    def __iter__(self):
        if self._data.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(self._data.shape[0]))

    def __hash__(self):
        return id(self)

    def __contains__(self, item):
        return bool((self == item).any())

    def __dlpack__(self, *args, **kwargs):
        return self._data.__dlpack__(*args, **kwargs)

    def __dlpack_device__(self):
        return self._data.__dlpack_device__()

    # ---- device and dtype moves ---------------------------------------------------------------
    def cuda(self, device=None, non_blocking=False):
        return self.to(_device_cls("cuda", device) if isinstance(device, int) or device is None else device)

    def cpu(self):
        return self.to("cpu")

    def type(self, dtype=None):
        if dtype is None:
            return f"devtensor.{self.dtype.name}"
        return self.to(dtype)

    def _cast_np(self, np_dtype):
        return self._cast(_dt._FROM_NP[np.dtype(np_dtype)])

    # float() and long() run in most training steps (inputs, class labels): when the dtype is
    # already right they return self, as .to() would, without parsing .to()'s arguments
    def float(self):
        return self if self._data.dtype is _F32 else self.to(_dt.float32)

    def double(self):
        return self.to(_dt.float64)

    def half(self):
        return self.to(_dt.float16)

    def bfloat16(self):
        return self.to(_dt.bfloat16)

    def long(self):
        return self if self._data.dtype is _I64 else self.to(_dt.int64)

    def int(self):
        return self.to(_dt.int32)

    def bool(self):
        return self.to(_dt.bool_)

    def type_as(self, other):
        return self.to(other.dtype)

    def is_floating_point(self):
        return self.dtype.is_floating_point

    # ---- printing -----------------------------------------------------------------------------
    def __repr__(self):
        from .printing import tensor_repr

        return tensor_repr(self)

    __str__ = __repr__

    def __format__(self, spec):
        # as PyTorch: a 0-d Tensor (not a subclass such as Parameter) formats as its value, so that
        # f"{loss}" prints 0.25 and f"{loss:.3f}" works
        if self._data.ndim == 0 and (spec or type(self) is Tensor) and self._device.type != "meta":
            return format(self.item(), spec)
        return repr(self)


class _HookHandle:
    __slots__ = ("_list", "_hook")

    def __init__(self, lst, hook):
        self._list, self._hook = lst, hook

    def remove(self):
        try:
            self._list.remove(self._hook)
        except ValueError:
            pass


_new = object.__new__


def _wrap(raw, dev):
    """The one place arrays become Tensors."""
    t = _new(Tensor)
    t._data = raw
    t._device = dev
    t._rg = False
    t._edge = None
    t._vc = None
    t._base = None
    return t


def _norm_dim(dim, ndim, op):
    n = max(ndim, 1)
    if not -n <= dim < n:
        raise IndexError(f"{op}: dimension out of range (expected to be in range of [{-n}, {n - 1}], but got {dim})")
    return dim % n


def _parse_to_args(t, args, kwargs):
    dev = kwargs.pop("device", None)
    dt = kwargs.pop("dtype", None)
    copy = kwargs.pop("copy", False)
    kwargs.pop("non_blocking", None)
    kwargs.pop("memory_format", None)
    if kwargs:
        raise TypeError(f"to(): unexpected keyword arguments {sorted(kwargs)}")
    for a in args:
        if isinstance(a, Tensor):
            dev, dt = a._device, a.dtype
        elif isinstance(a, (_dt.dtype, np.dtype)) or a in (float, int, bool) or (isinstance(a, type) and issubclass(a, np.generic)):
            dt = a
        elif isinstance(a, (str, _device_cls, int)):
            dev = a
        else:
            raise TypeError(f"to(): cannot interpret argument {a!r} as a device or dtype")
    if dev is not None:
        dev = resolve(dev)
    if dt is not None:
        dt = _dt.as_dtype(dt)
    return dev, dt, copy


def is_tensor(x) -> bool:
    return isinstance(x, Tensor)

