"""A small third-party backend, as a plugin package would write it: it registers itself with
one call and gets every op it implements through the same table.

Its arrays are numpy arrays held in a `ToyArray` wrapper type, so the core cannot mistake them
for cpu arrays; its kernels unwrap, compute with numpy and wrap again."""
from __future__ import annotations

import numpy as np

from devtensor.backends import Backend
from devtensor.backends import array_api_kernels


class ToyArray:
    __slots__ = ("a",)

    def __init__(self, a):
        self.a = np.asarray(a)

    shape = property(lambda self: self.a.shape)
    dtype = property(lambda self: self.a.dtype)
    ndim = property(lambda self: self.a.ndim)
    size = property(lambda self: self.a.size)

    def astype(self, dtype, copy=True):
        return ToyArray(self.a.astype(dtype))


def _unwrap(v):
    if isinstance(v, ToyArray):
        return v.a
    if isinstance(v, (list, tuple)):
        return type(v)(_unwrap(x) for x in v)
    return v


def _wrap(r):
    if isinstance(r, tuple):
        return tuple(_wrap(x) for x in r)
    return ToyArray(r)


class ToyBackend(Backend):
    def from_numpy(self, array, device):
        return ToyArray(np.array(array, copy=True))

    def to_numpy(self, array):
        return array.a

    def ensure_array(self, raw):
        return raw if isinstance(raw, ToyArray) else ToyArray(raw)


def make_toy_backend(name="toy"):
    be = ToyBackend(name, ToyArray)
    # borrow numpy implementations through the shared array-API table, then adapt each to ToyArray,
    # keeping each registration's tier and dtypes (oldest first, so later ones still win)
    scratch = Backend("scratch")
    array_api_kernels.register(scratch, np)
    for op_name in scratch.op_names():
        for tier, dtypes, fn in reversed(scratch.tiers(op_name)):
            be.kernel(op_name, dtypes=dtypes, tier=tier)(_adapt(fn))
    return be


def _adapt(fn):
    def kernel(*args, **attrs):
        out = fn(*_unwrap(args), **{k: _unwrap(v) for k, v in attrs.items()})
        if fn.__name__ == "copy_":  # in-place into the destination wrapper
            args[0].a = out
            return args[0]
        return _wrap(out)

    kernel.__name__ = getattr(fn, "__name__", "kernel")
    return kernel
