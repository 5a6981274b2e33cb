"""cpu kernels for the fused nn ops: thin adapters onto conv.py, pooling.py and softmax_ce.py
(numba + BLAS)."""
from __future__ import annotations

import numpy as np

from .backend import LazyKernels, cpu


K = LazyKernels(".conv", ".pooling", ".softmax_ce")


def _f(x):
    """numba kernels take float32/float64; other floats compute in float32."""
    return x if x.dtype in (np.float32, np.float64) else x.astype(np.float32)


_NUMBA = ("float32", "float64")  # what the numba kernels are compiled for
_LOW = ("float16", "bfloat16")   # computed in float32 and rounded back, as PyTorch's cpu kernels do


def _numba_tiers(name):
    """Register a numba kernel for the dtypes it implements and, as its own registration, the same
    kernel through float32 for the half-precision floats (no dtype branch inside the adapter)."""

    def deco(fn):
        cpu.kernel(name, dtypes=_NUMBA)(fn)
        cpu.kernel(name, dtypes=_LOW)(_via_f32(fn))
        return fn

    return deco


def _via_f32(fn):
    def kernel(*args, **attrs):
        low = next(a.dtype for a in args if getattr(a, "dtype", None) is not None and a.dtype.kind in "fV")
        up = [a.astype(np.float32) if getattr(a, "dtype", None) == low else a for a in args]
        out = fn(*up, **attrs)
        if isinstance(out, tuple):
            return tuple(o.astype(low) if o.dtype == np.float32 else o for o in out)
        return out.astype(low)

    kernel.__name__ = f"{fn.__name__}_via_f32"
    return kernel


@_numba_tiers("conv2d")
def conv2d(x, w, b, stride, padding, dilation, groups):
    return K.conv2d_forward(x, w, b, stride, padding, dilation, groups)


@_numba_tiers("conv2d_backward_input")
def conv2d_backward_input(gy, w, stride, padding, dilation, groups, x_shape):
    return K.conv2d_backward_input(gy, w, x_shape, stride, padding, dilation, groups)


@_numba_tiers("conv2d_backward_weight")
def conv2d_backward_weight(gy, x, stride, padding, dilation, groups, w_shape):
    return K.conv2d_backward_weight(gy, x, w_shape, stride, padding, dilation, groups)


@_numba_tiers("max_pool2d")
def max_pool2d(x, kernel_size, stride, padding, dilation, ceil_mode):
    return K.max_pool2d_forward(x, kernel_size, stride, padding, dilation, ceil_mode)


@_numba_tiers("max_pool2d_backward")
def max_pool2d_backward(gy, indices, x_shape):
    return K.max_pool2d_backward(gy, indices, x_shape)


@_numba_tiers("avg_pool2d")
def avg_pool2d(x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override):
    return K.avg_pool2d_forward(x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)


@_numba_tiers("avg_pool2d_backward")
def avg_pool2d_backward(gy, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override, x_shape):
    return K.avg_pool2d_backward(gy, x_shape, kernel_size, stride, padding, ceil_mode, count_include_pad,
                                 divisor_override)


def _rows(fn, x, dim):
    """Run a row kernel over `dim`: move it last, make rows contiguous, move it back."""
    if x.ndim == 0:
        x2 = x.reshape(1, 1)
        return fn(np.ascontiguousarray(x2)).reshape(())
    xm = np.moveaxis(x, dim, -1)
    shape = xm.shape
    rows = np.ascontiguousarray(xm).reshape(-1, shape[-1]) if xm.size else xm.reshape(-1, shape[-1])
    if rows.size == 0:
        return np.empty(x.shape, x.dtype)
    out = fn(_f(rows)).astype(x.dtype, copy=False).reshape(shape)
    return np.moveaxis(out, -1, dim)


@cpu.kernel("softmax")
def softmax(x, dim):
    return _rows(K.softmax_rows, x, dim)


@cpu.kernel("log_softmax")
def log_softmax(x, dim):
    return _rows(K.log_softmax_rows, x, dim)


# (the kernels make their inputs contiguous themselves)
@_numba_tiers("cross_entropy_rows")
def cross_entropy_rows(logits, target, ignore_index, label_smoothing):
    return K.cross_entropy_rows(logits, target, ignore_index, label_smoothing)


@_numba_tiers("cross_entropy_mean")
def cross_entropy_mean(logits, target, ignore_index, label_smoothing):
    return K.cross_entropy_mean(logits, target, ignore_index, label_smoothing)


@_numba_tiers("cross_entropy_rows_backward")
def cross_entropy_rows_backward(g, logits, lse, target, ignore_index, label_smoothing):
    return K.cross_entropy_rows_backward(g, logits, lse, target, ignore_index, label_smoothing)
