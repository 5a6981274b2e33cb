"""Tensor creation, random numbers and device moves."""
from __future__ import annotations

import inspect
import math
import numbers

import numpy as np

from .. import dtypes as _dt
from ..device import device as _device_cls
from ..device import get_default_device, resolve
from ..dispatch import _TRACE, KEEP, OPS, _backend, _no_kernel, call, defop, op_error
from ..autograd.grad_mode import _grad_state, no_grad
from ..autograd.node import Node
from ..tensor import Tensor, _parse_to_args, _wrap
from ._api import public
from .generator import default_generator, raw_generator


def _copy_to_backward(c, g):
    return g.to(c.src)


copy_to_ = defop("copy_to", rule=KEEP, backward=_copy_to_backward)

# creation ops have no tensor inputs: they are declared (for the completeness test) and called
# through _create, which picks the backend from the device argument
def _arange_meta(start, end, step, dtype, device):
    return (max(0, math.ceil((end - start) / step)),), dtype.np


_CREATION_META = {
    "full": lambda shape, value, dtype, device: (tuple(shape), dtype.np),
    "empty": lambda shape, dtype, device: (tuple(shape), dtype.np),
    # the random draws take the stream to draw from (generator.raw_generator: None for the default one)
    "rand": lambda shape, dtype, generator, device: (tuple(shape), dtype.np),
    "randn": lambda shape, dtype, generator, device: (tuple(shape), dtype.np),
    "randint": lambda low, high, shape, dtype, generator, device: (tuple(shape), dtype.np),
    "randperm": lambda n, dtype, generator, device: ((n,), dtype.np),
    "arange": _arange_meta,
    "linspace": lambda start, end, steps, dtype, device: ((steps,), dtype.np),
    "eye": lambda n, m, dtype, device: ((n, m), dtype.np),
}
for _n, _meta in _CREATION_META.items():
    defop(_n, (), rule=KEEP, meta=_meta, differentiable=False)


# the creation ops' argument names (their meta rules' parameters, less the device): graph capture's attrs
_CREATION_ARGS = {n: tuple(inspect.signature(m).parameters)[:-1] for n, m in _CREATION_META.items()}


def _create(name, dev, *args):
    op = OPS[name]
    fn = op.kernels.get(dev.type)
    if fn is None:
        raise _no_kernel(op, dev)
    out = _wrap(fn(*args, dev), dev)
    if _TRACE[0] is not None:
        _TRACE[0](op, (), {**dict(zip(_CREATION_ARGS[name], args)), "device": dev}, (out,), ())
    return out


def _dev(device):
    return get_default_device() if device is None else resolve(device)


def _finish(t, requires_grad):
    if requires_grad:
        t.requires_grad_(True)
    return t


def _shape(size, fn):
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    try:
        shape = tuple(int(s) for s in size)
    except TypeError:
        raise TypeError(f"{fn}: size must be ints or a tuple of ints, got {size!r}") from None
    if any(s < 0 for s in shape):
        raise RuntimeError(f"{fn}: negative dimension in size {list(shape)}")
    return shape


def copy_to(t, dev):
    """Move to another device (a differentiable op: the gradient moves back)."""
    src_dev = t._device
    if dev is src_dev:
        return t
    host = t._host() if src_dev.type != "meta" else None
    be = _backend(dev)
    if host is None:
        from ..backends.meta import MetaArray

        if dev.type != "meta":
            raise RuntimeError(f"to({dev}): meta tensors have no data to copy")
        raw = MetaArray(t._data.shape, t._data.dtype)
    else:
        raw = be.from_numpy(np.asarray(host), dev) if dev.type != "meta" else be.from_numpy(host, dev)
    out = _wrap(raw, dev)
    if _grad_state.enabled and t._rg:
        Node.record(copy_to_, (t,), {"src": src_dev}, (out,))
    if _TRACE[0] is not None:
        _TRACE[0](copy_to_, (t,), {"device": dev}, (out,), None)
    return out


copy_to_.composite = copy_to  # implemented above the table with each backend's host transfer


# ---- Tensor methods that move or copy (attached here: tensor.py sits below the op table) ------
def _to(self, *args, **kwargs):
    """to(device), to(dtype), to(device, dtype), to(other), with copy=/non_blocking= accepted."""
    dev, dt, copy = _parse_to_args(self, args, kwargs)
    out = self
    if dt is not None and out._data.dtype.kind == "c" and not dt.is_complex:
        import warnings

        warnings.warn("Casting complex values to real discards the imaginary part", UserWarning, stacklevel=2)
    if dt is not None and dt.np != out._data.dtype:
        out = out._cast(dt)
    if dev is not None and dev is not out._device:
        out = copy_to(out, dev)
    if copy and out is self:
        out = self.clone()
    return out


def _reduce_ex(self, proto):
    # pickling copies to host; device and grad flag travel along (DataLoader workers, deepcopy)
    return (_rebuild, (self._host().copy(), str(self._device), self._rg))


def _rebuild(array, dev, rg):
    return tensor(array, device=dev, requires_grad=rg)


def _deepcopy(self, memo):
    with no_grad():
        t = self.clone()
    t._rg = self._rg
    memo[id(self)] = t
    return t


Tensor.to = _to
Tensor.__reduce_ex__ = _reduce_ex
Tensor.__deepcopy__ = _deepcopy


# ---- from data --------------------------------------------------------------------------------
def _infer_np(data, dtype):
    if isinstance(data, Tensor):
        a = data._host()
    elif isinstance(data, (np.ndarray, np.generic)):
        a = np.asarray(data)  # numpy arrays and numpy scalars keep their dtype (np.float64(1.5): float64)
    else:
        if hasattr(data, "__dlpack__") and not isinstance(data, (list, tuple)):
            try:
                a = np.from_dlpack(data)
            except Exception:
                a = np.asarray(data)
        else:
            a = _from_python(data)
            if dtype is None and a.dtype in (np.float64, np.complex128) and not _has_double(data):
                # Python floats (complex numbers) become the default float (complex) dtype; a numpy float64
                # (complex128) among them keeps the double precision
                a = a.astype(_dt.get_default_dtype().np if a.dtype == np.float64 else
                             _dt.get_default_dtype().to_complex().np)
    if dtype is None:
        return a, _dt.from_numpy_dtype(a.dtype)
    dt = _dt.as_dtype(dtype)
    return a.astype(dt.np, copy=False), dt


def _has_double(data):
    """Whether nested lists hold a float64 that is not a Python float (a numpy float64, a float64 array or
    tensor): PyTorch then infers float64 for the whole, as numpy's promotion does."""
    if isinstance(data, (list, tuple)):
        return any(_has_double(x) for x in data)
    if isinstance(data, (np.floating, np.complexfloating, np.ndarray)):
        return np.asarray(data).dtype in (np.float64, np.complex128)
    if isinstance(data, Tensor):
        return data._data.dtype in (np.float64, np.complex128)
    return False


def _from_python(data):
    if isinstance(data, bool):
        return np.asarray(data)
    if isinstance(data, numbers.Integral):
        return np.asarray(data, dtype=np.int64)
    if isinstance(data, numbers.Real):
        return np.asarray(data, dtype=np.float64)
    if isinstance(data, (list, tuple)):
        items = [x.item() if isinstance(x, Tensor) and x.numel() == 1 and x.ndim == 0 else
                 (x.tolist() if isinstance(x, Tensor) else x) for x in data]
        try:
            a = np.asarray(items)
        except ValueError as e:
            raise ValueError(f"tensor: data is ragged or not rectangular ({e})") from None
        if a.dtype == object:
            raise TypeError("tensor: could not infer a dtype from the data (mixed or unsupported element types)")
        if a.size == 0 and a.dtype == np.float64 and not _has_double(data):
            a = a.astype(_dt.get_default_dtype().np)  # [] is the default float, as in PyTorch
        return a
    a = np.asarray(data)
    if a.dtype == object:
        raise TypeError(f"tensor: could not convert an object of type {type(data).__name__} to a tensor")
    return a


@public(method=False)
def tensor(data, dtype=None, device=None, requires_grad=False, pin_memory=False):
    """Always copies data (as torch.tensor does)."""
    a, dt = _infer_np(data, dtype)
    dev = _dev(device)
    raw = _backend(dev).from_numpy(np.array(a, dtype=dt.np, copy=True), dev)
    return _finish(_wrap(raw, dev), requires_grad)


@public(method=False)
def as_tensor(data, dtype=None, device=None):
    if isinstance(data, Tensor):
        return data.to(device=device, dtype=dtype) if (device or dtype) else data
    if isinstance(data, np.ndarray) and (device is None or resolve(device).type == "cpu") and (
            dtype is None or _dt.as_dtype(dtype).np == data.dtype):
        return from_numpy(data)
    return tensor(data, dtype=dtype, device=device)


@public(method=False)
def from_numpy(ndarray):
    if not isinstance(ndarray, np.ndarray):
        raise TypeError(f"from_numpy: expected np.ndarray, got {type(ndarray).__name__}")
    _dt.from_numpy_dtype(ndarray.dtype)
    return _wrap(ndarray, _device_cls("cpu"))


@public(method=False)
def from_dlpack(ext):
    dev_type, dev_id = ext.__dlpack_device__()
    if int(dev_type) == 1:  # kDLCPU
        return _wrap(np.from_dlpack(ext), _device_cls("cpu"))
    if int(dev_type) == 2:  # kDLCUDA
        import cupy

        return _wrap(cupy.from_dlpack(ext), _device_cls("cuda", int(dev_id)))
    raise RuntimeError(f"from_dlpack: unsupported DLPack device type {dev_type}")


# ---- filled ---------------------------------------------------------------------------------
def _dtype_or(dtype, default):
    return _dt.as_dtype(dtype) if dtype is not None else default


@public(method=False)
def full(size, fill_value, *, dtype=None, device=None, requires_grad=False):
    if isinstance(fill_value, Tensor):
        fill_value = fill_value.item()
    dt = _dtype_or(dtype, _dt.bool_ if isinstance(fill_value, bool) else
                   _dt.int64 if isinstance(fill_value, numbers.Integral) else
                   _dt.get_default_dtype() if isinstance(fill_value, numbers.Real) else _dt.get_default_dtype().to_complex())
    return _finish(_create("full", _dev(device), _shape((size,) if isinstance(size, int) else (tuple(size),),
                                                         "full"), fill_value, dt), requires_grad)


def _size_arg(size, kw, fn):
    """size given positionally (ints or one sequence) or as size= (PyTorch accepts both)."""
    if kw is not None:
        if size:
            raise TypeError(f"{fn}() got multiple values for argument 'size'")
        return (kw,)
    return size


def _filled(value, name):
    def f(*size, dtype=None, layout=None, device=None, requires_grad=False, pin_memory=False, **kw):
        size = _size_arg(size, kw.pop("size", None), name)
        if kw:
            raise TypeError(f"{name}() got an unexpected keyword argument {next(iter(kw))!r}")
        shape = _shape(size, name)
        return _finish(_create("full", _dev(device), shape, value, _dtype_or(dtype, _dt.get_default_dtype())),
                       requires_grad)

    f.__name__ = name
    return f


zeros = public(_filled(0, "zeros"), method=False)
ones = public(_filled(1, "ones"), method=False)


@public(method=False)
def empty(*size, dtype=None, layout=None, device=None, requires_grad=False, pin_memory=False, memory_format=None,
          **kw):
    size = _size_arg(size, kw.pop("size", None), "empty")
    if kw:
        raise TypeError(f"empty() got an unexpected keyword argument {next(iter(kw))!r}")
    return _finish(_create("empty", _dev(device), _shape(size, "empty"), _dtype_or(dtype, _dt.get_default_dtype())),
                   requires_grad)


def _like(value, name):
    def f(input, *, dtype=None, device=None, requires_grad=False):
        dev = input._device if device is None else resolve(device)
        return _finish(_create("full", dev, tuple(input._data.shape), value, _dtype_or(dtype, input.dtype)),
                       requires_grad)

    f.__name__ = name
    return public(f, method=False)


zeros_like = _like(0, "zeros_like")
ones_like = _like(1, "ones_like")
empty_like = _like(0, "empty_like")


@public(method=False)
def full_like(input, fill_value, *, dtype=None, device=None, requires_grad=False):
    dev = input._device if device is None else resolve(device)
    return _finish(_create("full", dev, tuple(input._data.shape), fill_value, _dtype_or(dtype, input.dtype)),
                   requires_grad)


def _new(value, name):
    def f(self, *size, dtype=None, device=None, requires_grad=False):
        dev = self._device if device is None else resolve(device)
        return _finish(_create("full", dev, _shape(size, name), value, _dtype_or(dtype, self.dtype)),
                       requires_grad)

    f.__name__ = name
    return f


Tensor.new_zeros = _new(0, "new_zeros")
Tensor.new_ones = _new(1, "new_ones")
Tensor.new_empty = _new(0, "new_empty")


def _new_full(self, size, fill_value, *, dtype=None, device=None, requires_grad=False):
    dev = self._device if device is None else resolve(device)
    return _finish(_create("full", dev, _shape((size,), "new_full"), fill_value, _dtype_or(dtype, self.dtype)),
                   requires_grad)


def _new_tensor(self, data, dtype=None, device=None, requires_grad=False):
    return tensor(data, dtype=dtype or self.dtype, device=device or self._device, requires_grad=requires_grad)


Tensor.new_full = _new_full
Tensor.new_tensor = _new_tensor


# ---- ranges ----------------------------------------------------------------------------------
@public(method=False)
def arange(start, end=None, step=1, *, dtype=None, device=None, requires_grad=False):
    if end is None:
        start, end = 0, start
    vals = [v.item() if isinstance(v, Tensor) else v for v in (start, end, step)]
    if vals[2] == 0:
        raise RuntimeError("arange: step must be nonzero")
    if (vals[1] - vals[0]) * vals[2] < 0:
        raise RuntimeError(f"arange: upper bound and larger bound inconsistent with step sign "
                           f"(start={vals[0]}, end={vals[1]}, step={vals[2]})")
    is_float = any(isinstance(v, float) for v in vals)
    dt = _dtype_or(dtype, _dt.get_default_dtype() if is_float else _dt.int64)
    return _finish(_create("arange", _dev(device), *vals, dt), requires_grad)


@public(method=False)
def linspace(start, end, steps, *, dtype=None, device=None, requires_grad=False):
    if steps < 0:
        raise RuntimeError(f"linspace: number of steps must be non-negative, got {steps}")
    return _finish(_create("linspace", _dev(device), float(start), float(end), int(steps),
                           _dtype_or(dtype, _dt.get_default_dtype())), requires_grad)


@public(method=False)
def eye(n, m=None, *, dtype=None, device=None, requires_grad=False):
    return _finish(_create("eye", _dev(device), int(n), int(n if m is None else m),
                           _dtype_or(dtype, _dt.get_default_dtype())), requires_grad)


# ---- random ---------------------------------------------------------------------------------
@public(method=False)
def rand(*size, generator=None, dtype=None, layout=None, device=None, requires_grad=False, pin_memory=False, **kw):
    size = _size_arg(size, kw.pop("size", None), "rand")
    if kw:
        raise TypeError(f"rand() got an unexpected keyword argument {next(iter(kw))!r}")
    dt = _dtype_or(dtype, _dt.get_default_dtype())
    _float_only("rand", dt)
    dev = _dev(device)
    return _finish(_create("rand", dev, _shape(size, "rand"), dt, raw_generator(generator, dev, "rand")),
                   requires_grad)


@public(method=False)
def randn(*size, generator=None, dtype=None, layout=None, device=None, requires_grad=False, pin_memory=False, **kw):
    size = _size_arg(size, kw.pop("size", None), "randn")
    if kw:
        raise TypeError(f"randn() got an unexpected keyword argument {next(iter(kw))!r}")
    dt = _dtype_or(dtype, _dt.get_default_dtype())
    _float_only("randn", dt)
    dev = _dev(device)
    return _finish(_create("randn", dev, _shape(size, "randn"), dt, raw_generator(generator, dev, "randn")),
                   requires_grad)


def _float_only(name, dt):
    if not dt.is_floating_point:
        raise TypeError(f"{name}: expected a floating dtype, got {dt}")


@public(method=False)
def randint(low=0, high=None, size=None, *, generator=None, dtype=None, layout=None, device=None,
            requires_grad=False, pin_memory=False):
    if size is None and isinstance(high, (tuple, list)):  # randint(high, size), as PyTorch's overload
        low, high, size = 0, low, high
    elif high is None:
        low, high = 0, low
    if size is None:
        raise TypeError("randint: size is required, e.g. randint(0, 10, (3,))")
    if high <= low:
        raise RuntimeError(f"randint: expected low < high, got low={low}, high={high}")
    dev = _dev(device)
    return _finish(_create("randint", dev, int(low), int(high), _shape((size,) if isinstance(size, int) else
                                                                       (tuple(size),), "randint"),
                           _dtype_or(dtype, _dt.int64), raw_generator(generator, dev, "randint")), requires_grad)


@public(method=False)
def randperm(n, *, generator=None, dtype=None, device=None, requires_grad=False, pin_memory=False):
    dev = _dev(device)
    n = int(n)
    if n < 0:
        raise RuntimeError(f"randperm: n must be non-negative, got {n}")
    return _finish(_create("randperm", dev, n, _dtype_or(dtype, _dt.int64), raw_generator(generator, dev, "randperm")),
                   requires_grad)


@public(method=False)
def rand_like(input, *, generator=None, dtype=None, device=None, requires_grad=False):
    return rand(tuple(input.shape), generator=generator, dtype=dtype or input.dtype, device=device or input.device,
                requires_grad=requires_grad)


@public(method=False)
def randn_like(input, *, generator=None, dtype=None, device=None, requires_grad=False):
    return randn(tuple(input.shape), generator=generator, dtype=dtype or input.dtype, device=device or input.device,
                 requires_grad=requires_grad)


@public(method=False)
def manual_seed(seed):
    """Seed every backend's default generator (the same seed gives the same numbers on a device, run after
    run) and return devtensor.default_generator, as torch.manual_seed does."""
    from ..backends import _REGISTRY

    default_generator.manual_seed(seed)
    seed = default_generator.initial_seed()
    for be in _REGISTRY.values():
        if be.name != "cpu" and be.is_available()[0]:
            be.manual_seed(seed)
    return default_generator


@public(method=False)
def initial_seed():
    return default_generator.initial_seed()


_ = (call, op_error)
