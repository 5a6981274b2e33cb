"""The shapes-only `meta` device: tensors with a shape and dtype but no data.

It lets CPU-only CI test device logic (moves, optimizer state placement, shape errors) and
answers "what shape would this give" for any size in microseconds. Its kernels are the ops'
meta rules (OpDef.meta): no arrays are ever made, so meta agrees with the rules that check
every other device's arguments by construction.
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


def _to_meta(r):
    if isinstance(r, MetaArray):
        return r
    if isinstance(r, tuple):
        if len(r) == 2 and isinstance(r[1], np.dtype):
            return MetaArray(r[0], r[1])  # one output: (shape, dtype)
        return tuple(_to_meta(x) for x in r)  # several outputs
    r = np.asarray(r)
    return MetaArray(r.shape, r.dtype)


def derive_kernels(ops):
    """Give every op with a meta rule a meta kernel: the rule itself (called once all ops are declared)."""
    missing = []
    for op in ops.values():
        if op.meta is not None:
            op.kernels.setdefault("meta", _from_rule(op.meta))
        elif "meta" not in op.kernels and op.composite is None:
            missing.append(op.name)
    return missing


def _from_rule(rule):
    def kernel(*args, **attrs):
        return _to_meta(rule(*args, **attrs))

    return kernel
