"""Meta rules shared by families of ops: the output shape and dtype from the inputs' shapes,
dtypes and attributes, with no data (see OpDef.meta in dispatch.py).

A rule has its op's kernel signature: arrays (anything with .shape and .dtype, already cast by
the op's dtype rule), Python scalars or None, then the attributes. It returns (shape, dtype) or
a tuple of them, and raises ValueError / TypeError / IndexError / RuntimeError with a message
that dispatch prefixes with the op's name. Op-specific rules sit beside their op's defop.
"""
from __future__ import annotations

import numpy as np

from ..geometry import broadcast_shapes, reduced_shape

BOOL = np.dtype(np.bool_)
INT64 = np.dtype(np.int64)


def is_array(a):
    return hasattr(a, "shape") and hasattr(a, "dtype")


def arrays_of(args):
    return [a for a in args if is_array(a)]


def same(x, *_, **__):
    """Unary elementwise: the input's shape and (already cast) dtype."""
    return tuple(x.shape), x.dtype


def predicate(x, **_):
    """isnan, isfinite, ...: the input's shape, bool."""
    return tuple(x.shape), BOOL


def broadcast(*args, **_):
    """Elementwise over broadcast tensors (scalars join any shape): the first tensor's dtype, which
    the dtype rule made the compute dtype of all."""
    arrs = arrays_of(args)
    return broadcast_shapes(*(tuple(a.shape) for a in arrs)), arrs[0].dtype


def compare(*args, **_):
    return broadcast(*args)[0], BOOL


def _dims(dim):
    return (dim,) if isinstance(dim, int) else dim


def reduction(x, dim, keepdim):
    return reduced_shape(tuple(x.shape), _dims(dim), keepdim), x.dtype


def index_reduction(x, dim, keepdim):
    return reduced_shape(tuple(x.shape), _dims(dim), keepdim), INT64


def bool_reduction(x, dim, keepdim):
    return reduced_shape(tuple(x.shape), _dims(dim), keepdim), BOOL


def values_and_indices(x, dim, keepdim):
    """max(dim) / min(dim): the values and their int64 indices."""
    shape = reduced_shape(tuple(x.shape), (dim,), keepdim)
    return (shape, x.dtype), (shape, INT64)


def created(shape, *rest):
    """Creation ops (full, empty, rand, randn): shape given, dtype the last-but-one argument."""
    dtype = rest[-2]
    return tuple(int(s) for s in shape), dtype.np


def same_shapes(name_a, a, name_b, b):
    if tuple(a.shape) != tuple(b.shape):
        raise RuntimeError(f"{name_a} has shape {list(a.shape)} but {name_b} has shape {list(b.shape)}; "
                           "they must match")
