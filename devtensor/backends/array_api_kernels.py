"""Kernels that read the same in numpy and CuPy: one definition, registered for both.

`register(backend, xp)` fills `backend`'s table from the array namespace `xp` (numpy for cpu,
cupy for cuda), in the "portable" tier: every dtype, tried after the backend's "specialised"
kernels (numba loops, CUDA kernels registered for the dtypes they implement).
Kernels receive arrays already cast to the op's compute dtype (dispatch does that) and
plain Python values; they return arrays.
"""
from __future__ import annotations

import math
import types

import numpy as _np

from .. import dtypes as _dt


def _deferred(xp, attr):
    def kernel(*args, **kwargs):
        return getattr(xp, attr)(*args, **kwargs)

    kernel.__name__ = attr
    return kernel

UNARY = {  # op name -> attribute of the array namespace
    "neg": "negative", "abs": "abs", "exp": "exp", "log": "log", "log1p": "log1p",
    "expm1": "expm1", "sqrt": "sqrt", "sin": "sin", "cos": "cos", "tanh": "tanh",
    "sign": "sign", "floor": "floor", "ceil": "ceil", "reciprocal": "reciprocal",
    "logical_not": "logical_not", "isnan": "isnan", "isfinite": "isfinite", "isinf": "isinf",
    "bitwise_not": "invert",
}
BINARY = {
    "add": "add", "sub": "subtract", "mul": "multiply", "div": "true_divide",
    "maximum": "maximum", "minimum": "minimum", "pow": "power", "remainder": "remainder",
    "floor_divide": "floor_divide", "atan2": "arctan2",
    "eq": "equal", "ne": "not_equal", "lt": "less", "le": "less_equal", "gt": "greater",
    "ge": "greater_equal", "logical_and": "logical_and", "logical_or": "logical_or",
    "logical_xor": "logical_xor", "bitwise_and": "bitwise_and", "bitwise_or": "bitwise_or",
    "bitwise_xor": "bitwise_xor",
}


def register(be, xp):
    """xp: an array module, or a lazy stand-in whose attributes resolve at call time."""
    def k(*names):
        return be.kernel(*names, tier="portable")

    lazy = not isinstance(xp, types.ModuleType)
    for name, attr in (*UNARY.items(), *BINARY.items()):
        k(name)(_deferred(xp, attr) if lazy else getattr(xp, attr))

    @k("rsqrt")
    def rsqrt(x):
        return xp.reciprocal(xp.sqrt(x))

    @k("sigmoid")
    def sigmoid(x):
        if x.dtype.kind == "c":  # no sign to split on: the plain formula, as PyTorch's complex kernel
            return 1 / (1 + xp.exp(-x))
        # exp of a non-positive number never overflows: split on the sign
        e = xp.exp(-xp.abs(x))
        return xp.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)

    @k("relu")
    def relu(x):
        return xp.maximum(x, 0)

    @k("relu_backward")
    def relu_backward(g, out):
        return xp.where(out > 0, g, xp.zeros((), g.dtype))

    @k("round")
    def round_(x, decimals=0):
        return xp.round(x, decimals)

    @k("where")
    def where(cond, x, y):
        return xp.where(cond, x, y)

    @k("clamp")
    def clamp(x, lo, hi):
        if lo is not None:
            x = xp.maximum(x, lo)
        if hi is not None:
            x = xp.minimum(x, hi)
        return x

    @k("cast")
    def cast(x, dtype):
        if x.dtype.kind == "c" and dtype.np.kind != "c":
            x = x.real  # complex to real keeps the real part (numpy would warn); the public .to() warns as PyTorch
        return x.astype(dtype.np)

    # ---- reductions (dim: tuple of axes or None; dispatch normalised it) --------------------
    @k("sum")
    def sum_(x, dim, keepdim):
        return xp.sum(x, axis=dim, keepdims=keepdim, dtype=x.dtype)

    @k("mean")
    def mean(x, dim, keepdim):
        return xp.mean(x, axis=dim, keepdims=keepdim, dtype=x.dtype)

    @k("prod")
    def prod(x, dim, keepdim):
        return xp.prod(x, axis=dim, keepdims=keepdim, dtype=x.dtype)

    @k("amax")
    def amax(x, dim, keepdim):
        return xp.max(x, axis=dim, keepdims=keepdim)

    @k("amin")
    def amin(x, dim, keepdim):
        return xp.min(x, axis=dim, keepdims=keepdim)

    @k("argmax")
    def argmax(x, dim, keepdim):
        return xp.argmax(x, axis=dim, keepdims=keepdim).astype(xp.int64, copy=False)

    @k("argmin")
    def argmin(x, dim, keepdim):
        return xp.argmin(x, axis=dim, keepdims=keepdim).astype(xp.int64, copy=False)

    @k("max_dim")
    def max_dim(x, dim, keepdim):
        i = xp.argmax(x, axis=dim, keepdims=True)
        v = xp.take_along_axis(x, i, axis=dim)
        if not keepdim:
            v, i = v.squeeze(dim), i.squeeze(dim)
        return v, i.astype(xp.int64, copy=False)

    @k("min_dim")
    def min_dim(x, dim, keepdim):
        i = xp.argmin(x, axis=dim, keepdims=True)
        v = xp.take_along_axis(x, i, axis=dim)
        if not keepdim:
            v, i = v.squeeze(dim), i.squeeze(dim)
        return v, i.astype(xp.int64, copy=False)

    @k("all")
    def all_(x, dim, keepdim):
        return xp.all(x, axis=dim, keepdims=keepdim)

    @k("any")
    def any_(x, dim, keepdim):
        return xp.any(x, axis=dim, keepdims=keepdim)

    # ---- linear algebra ---------------------------------------------------------------------
    # numpy has no BLAS for the half floats (its float16 loop is ~100x slower than float32 BLAS, and
    # ml_dtypes' bfloat16 product comes back float32): they multiply in float32 and round back, as
    # PyTorch's cpu kernels accumulate in float32. CuPy's cuBLAS has float16: no detour there.
    half = frozenset((_dt.float16.np, _dt.bfloat16.np)) if xp is _np else frozenset()

    @k("matmul")
    def matmul(a, b):
        if a.dtype in half:
            return xp.matmul(a.astype(xp.float32), b.astype(xp.float32)).astype(a.dtype)
        return xp.matmul(a, b)

    @k("linear")
    def linear(x, w, b):
        d = x.dtype
        if d in half:
            x, w, b = x.astype(xp.float32), w.astype(xp.float32), None if b is None else b.astype(xp.float32)
        out = xp.matmul(x, w.T)
        if b is not None:
            out += b
        return out.astype(d) if d in half else out

    # ---- shape (views where the array library gives views) ----------------------------------
    @k("reshape")
    def reshape(x, shape):
        return x.reshape(shape)

    @k("permute")
    def permute(x, dims):
        return x.transpose(dims)

    @k("expand")
    def expand(x, shape):
        return xp.broadcast_to(x, shape)

    @k("flip")
    def flip(x, dims):
        return xp.flip(x, dims)

    @k("contiguous", "clone")
    def clone(x):
        return xp.array(x, copy=True, order="C")

    @k("cat")
    def cat(*arrays, dim):
        return xp.concatenate(arrays, axis=dim)

    @k("pad")
    def pad(x, widths, value):
        return xp.pad(x, widths, mode="constant", constant_values=value)

    # ---- indexing ---------------------------------------------------------------------------
    @k("index")
    def index(x, key, basic):
        return x[key]

    @k("index_backward")
    def index_backward(g, shape, key, basic):
        out = xp.zeros(shape, dtype=g.dtype)
        if basic:
            out[key] = g
        else:
            _add_at(xp, out, key, g)
        return out

    @k("index_put")
    def index_put(x, v, key, accumulate):
        out = x.copy()
        if accumulate:
            _add_at(xp, out, key, v)
        else:
            out[key] = v
        return out

    @k("gather")
    def gather(x, index, dim):
        # PyTorch's gather: index may be shorter than x along the other dims (the output has
        # index's shape); take_along_axis wants them equal, so x is cut down to index's extent
        x = x[_extent(index.shape, x.ndim, dim)]
        return xp.take_along_axis(x, index, axis=dim)

    @k("scatter_add")
    def scatter_add(x, index, src, dim):
        # only the first index.shape elements of src are scattered (PyTorch's rule)
        out = x.copy()
        idx = list(xp.indices(index.shape, sparse=True))
        idx[dim] = index
        _add_at(xp, out, tuple(idx), src[_extent(index.shape, src.ndim, None)])
        return out

    @k("copy_")
    def copy_(dst, src):
        dst[...] = src
        return dst

    # ---- creation (no tensor inputs; shape and dtype given) -----------------------------------
    @k("full")
    def full(shape, value, dtype, device):
        return xp.full(shape, value, dtype=dtype.np)

    @k("empty")
    def empty(shape, dtype, device):
        return xp.empty(shape, dtype=dtype.np)

    @k("arange")
    def arange(start, end, step, dtype, device):
        n = max(0, math.ceil((end - start) / step))
        return (start + xp.arange(n, dtype=xp.float64 if dtype.is_floating_point else xp.int64) * step).astype(dtype.np)

    @k("linspace")
    def linspace(start, end, steps, dtype, device):
        return xp.linspace(start, end, steps, dtype=xp.float64).astype(dtype.np)

    @k("eye")
    def eye(n, m, dtype, device):
        return xp.eye(n, m, dtype=dtype.np)

    @k("tril")
    def tril(x, diagonal):
        return xp.tril(x, diagonal)

    @k("triu")
    def triu(x, diagonal):
        return xp.triu(x, diagonal)


def _extent(shape, ndim, skip):
    """The key that cuts an ndim-array down to `shape` along every axis but `skip`."""
    return tuple(slice(None) if i == skip or i >= len(shape) else slice(0, int(shape[i])) for i in range(ndim))


def _add_at(xp, out, key, v):
    if hasattr(xp, "add") and hasattr(xp.add, "at"):
        xp.add.at(out, key, v)
    else:  # pragma: no cover - cupyx provides scatter_add for CuPy
        import cupyx

        cupyx.scatter_add(out, key, v)
