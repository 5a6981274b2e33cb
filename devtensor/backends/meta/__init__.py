"""The shapes-only `meta` device: tensors with a shape and dtype but no data.

It lets CPU-only CI test device logic (moves, optimizer state placement, shape errors) without
a GPU. Its kernels are derived, not written: each runs the op's cpu kernel on zero-filled
stand-ins of the inputs and keeps only the result's shape and dtype, so the meta device agrees
with the cpu one by construction. (Use small shapes: the stand-ins are real arrays.)
"""
from __future__ import annotations

import numpy as np

from .. import Backend, register


class MetaArray:
    __slots__ = ("shape", "dtype")

    def __init__(self, shape, dtype):
        self.shape = tuple(int(s) for s in shape)
        self.dtype = np.dtype(dtype)

    @property
    def ndim(self):
        return len(self.shape)

    @property
    def size(self):
        n = 1
        for s in self.shape:
            n *= s
        return n

    def astype(self, dtype, copy=True):
        return MetaArray(self.shape, dtype)

    def __repr__(self):
        return f"MetaArray(shape={self.shape}, dtype={self.dtype})"


class MetaBackend(Backend):
    def __init__(self):
        super().__init__("meta", MetaArray)

    def from_numpy(self, array, device):
        a = np.asarray(array)
        return MetaArray(a.shape, a.dtype)

    def to_numpy(self, array):
        raise RuntimeError("meta tensors have no data: move them to a real device before reading values")

    def ensure_array(self, raw):
        return _to_meta(raw)


meta = register(MetaBackend())


def _stand_in(a):
    if isinstance(a, MetaArray):
        return np.zeros(a.shape, a.dtype)
    if isinstance(a, (list, tuple)):
        return type(a)(_stand_in(x) for x in a)
    return a


def _to_meta(r):
    if isinstance(r, MetaArray):
        return r
    if isinstance(r, (tuple, list)):
        return tuple(_to_meta(x) for x in r)
    r = np.asarray(r)
    return MetaArray(r.shape, r.dtype)


def derive_kernels(ops):
    """Give every op that has a cpu kernel a meta kernel (called once all ops are declared)."""
    for op in ops.values():
        cpu_fn = op.kernels.get("cpu")
        if cpu_fn is not None and "meta" not in op.kernels:
            op.kernels["meta"] = _derived(cpu_fn)


def _derived(cpu_fn):
    def kernel(*args, **attrs):
        args = [_stand_in(a) for a in args]
        attrs = {k: _stand_in(v) for k, v in attrs.items()}
        with np.errstate(all="ignore"):
            return _to_meta(cpu_fn(*args, **attrs))

    return kernel
