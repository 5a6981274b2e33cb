"""devtensor.fft: torch.fft's functions, written in the three FFT ops of devtensor/ops/fft_ops.py (numpy.fft
on cpu, cupy.fft on cuda), so every device and PyTorch's gradients come with them.

Arguments as PyTorch: n / s pad with zeros or cut each transformed dim to that length before the
transform (-1 in s: keep the size), dim / dim=None (fftn: every dim, or the last len(s)), norm
"backward" (default: 1/n on the inverse), "ortho" (1/sqrt(n) both ways) or "forward" (1/n on the forward).
Integer inputs become the default float dtype first; float16 / bfloat16 inputs are refused (PyTorch's CPU
refuses them too). Real inputs of fft / fftn become complex of their precision.
"""
from __future__ import annotations

import numpy as np

from . import dtypes as _dt
from .dispatch import OPS, call
from .ops import fft_ops as _F
from .ops._api import not_a_tensor, with_out
from .ops.complex_ops import conj as _conj
from .tensor import Tensor, _norm_dim

__all__ = ["fft", "ifft", "rfft", "irfft", "hfft", "ihfft", "fft2", "ifft2", "rfft2", "irfft2", "hfft2", "ihfft2",
           "fftn", "ifftn", "rfftn", "irfftn", "hfftn", "ihfftn", "fftfreq", "rfftfreq", "fftshift", "ifftshift"]

_SCALE = {None: (0, 2), "backward": (0, 2), "ortho": (1, 1), "forward": (2, 0)}  # norm -> (forward, inverse) scale


def _scale(name, norm, forward):
    try:
        return _SCALE[norm][0 if forward else 1]
    except (KeyError, TypeError):
        raise ValueError(f"fft.{name}: Invalid normalization mode: {norm!r} (expected 'backward', 'ortho' or "
                         "'forward')") from None


def _tensor(name, x):
    if not isinstance(x, Tensor):
        raise not_a_tensor(f"fft.{name}", "input", 1, x)
    return x


def _promote(name, x, complex_out):
    """PyTorch's promote_tensor_fft: integers to the default float; complex_out: real to complex."""
    d = x.dtype
    if d._cat < 2:
        x = x.to(_dt.get_default_dtype())
    elif d._cat == 2 and d not in (_dt.float32, _dt.float64):
        raise RuntimeError(f"fft.{name}: Unsupported dtype {d.name} (use float32 or float64)")
    if complex_out and not x.dtype.is_complex:
        x = x.to(x.dtype.to_complex())
    return x


def _resize(x, dims, sizes):
    """Zero-pad or cut x along each of dims to sizes (PyTorch's resize_fft_input)."""
    widths = [(0, 0)] * x.ndim
    pad = False
    for d, n in zip(dims, sizes):
        cur = x.shape[d]
        if n < cur:
            x = x.narrow(d, 0, n)
        elif n > cur:
            widths[d] = (0, n - cur)
            pad = True
    if pad:
        x = call(OPS["pad"], (x,), {"widths": tuple(widths), "value": 0})
    return x


def _one_dim(name, x, n, dim):
    d = _norm_dim(dim, _tensor(name, x).ndim, f"fft.{name}")
    if x.ndim == 0:
        raise IndexError(f"fft.{name}: expected a tensor with at least one dimension, got a 0-d tensor")
    if n is not None and n < 1:
        raise RuntimeError(f"fft.{name}: Invalid number of data points ({n}) specified")
    return d


def _shape_and_dims(name, x, s, dim):
    """PyTorch's canonicalize_fft_shape_and_dim_args: (sizes, dims), s's -1 entries resolved."""
    _tensor(name, x)
    if dim is not None:
        dims = [dim] if isinstance(dim, int) else list(dim)
        dims = [_norm_dim(d, x.ndim, f"fft.{name}") for d in dims]
        if len(set(dims)) != len(dims):
            raise RuntimeError(f"fft.{name}: FFT dims must be unique, got {list(dim)}")
    if s is not None:
        s = list(s)
        if dim is not None and len(s) != len(dims):
            raise RuntimeError(f"fft.{name}: When given, dim and shape arguments must have the same length "
                               f"(got s={s}, dim={list(dim)})")
        if len(s) > x.ndim:
            raise RuntimeError(f"fft.{name}: Got shape with {len(s)} values but input tensor only has {x.ndim} "
                               "dimensions.")
        if dim is None:
            dims = list(range(x.ndim - len(s), x.ndim))
        sizes = [x.shape[d] if n == -1 else int(n) for d, n in zip(dims, s)]
        for n in sizes:
            if n < 1:
                raise RuntimeError(f"fft.{name}: Invalid number of data points ({n}) specified")
    else:
        if dim is None:
            dims = list(range(x.ndim))
        sizes = [x.shape[d] for d in dims]
    return sizes, dims


# ---- the transforms --------------------------------------------------------------------------------
def _c2c(name, x, sizes, dims, norm, forward):
    x = _resize(_promote(name, x, True), dims, sizes)
    return call(_F.fft_c2c, (x,), {"dim": tuple(dims), "norm": _scale(name, norm, forward), "forward": forward})


def _r2c(name, x, sizes, dims, norm, forward):
    x = _promote(name, x, False)
    if x.dtype.is_complex:
        raise RuntimeError(f"fft.{name}: expects a real input tensor, but got {x.dtype.name}")
    if not dims:
        raise RuntimeError(f"fft.{name}: must transform at least one axis")
    x = _resize(x, dims, sizes)
    out = call(_F.fft_r2c, (x,), {"dim": tuple(dims), "norm": _scale(name, norm, forward), "onesided": True})
    return out if forward else _conj(out)  # ihfft: the conjugate of the onesided forward transform


def _c2r(name, x, sizes, dims, last, norm, forward):
    """sizes: the half-spectrum's sizes along dims (the last is last // 2 + 1); last: the output's length."""
    x = _resize(_promote(name, x, True), dims, sizes)
    if forward:  # hfft: the conjugate's inverse transform, with the forward direction's scale
        x = _conj(x)
    return call(_F.fft_c2r, (x,), {"dim": tuple(dims), "norm": _scale(name, norm, forward), "last_dim_size": last})


def _c2c_1d(name, forward):
    def f(input, n=None, dim=-1, norm=None):
        d = _one_dim(name, input, n, dim)
        return _c2c(name, input, [input.shape[d] if n is None else n], [d], norm, forward)

    return f


def _c2c_nd(name, forward, default_dim):
    def f(input, s=None, dim=default_dim, norm=None):
        sizes, dims = _shape_and_dims(name, input, s, dim)
        return _c2c(name, input, sizes, dims, norm, forward)

    return f


fft = _c2c_1d("fft", True)
ifft = _c2c_1d("ifft", False)
fft2 = _c2c_nd("fft2", True, (-2, -1))
ifft2 = _c2c_nd("ifft2", False, (-2, -1))
fftn = _c2c_nd("fftn", True, None)
ifftn = _c2c_nd("ifftn", False, None)


def rfft(input, n=None, dim=-1, norm=None):
    d = _one_dim("rfft", input, n, dim)
    return _r2c("rfft", input, [input.shape[d] if n is None else n], [d], norm, True)


def ihfft(input, n=None, dim=-1, norm=None):
    d = _one_dim("ihfft", input, n, dim)
    return _r2c("ihfft", input, [input.shape[d] if n is None else n], [d], norm, False)


def _rfft_nd(name, default_dim, forward=True):
    def f(input, s=None, dim=default_dim, norm=None):
        sizes, dims = _shape_and_dims(name, input, s, dim)
        return _r2c(name, input, sizes, dims, norm, forward)

    return f


rfft2 = _rfft_nd("rfft2", (-2, -1))
rfftn = _rfft_nd("rfftn", None)
ihfft2 = _rfft_nd("ihfft2", (-2, -1), forward=False)
ihfftn = _rfft_nd("ihfftn", None, forward=False)


def _c2r_1d(name, forward):
    def f(input, n=None, dim=-1, norm=None):
        d = _one_dim(name, input, n, dim)
        last = 2 * (input.shape[d] - 1) if n is None else n
        if last < 1:
            raise RuntimeError(f"fft.{name}: Invalid number of data points ({last}) specified")
        return _c2r(name, input, [last // 2 + 1 if n is not None else input.shape[d]], [d], last, norm, forward)

    return f


irfft = _c2r_1d("irfft", False)
hfft = _c2r_1d("hfft", True)


def _irfft_nd(name, default_dim, forward=False):
    def f(input, s=None, dim=default_dim, norm=None):
        sizes, dims = _shape_and_dims(name, input, s, dim)
        if not dims:
            raise RuntimeError(f"fft.{name}: must transform at least one axis")
        last = sizes[-1] if s is not None else 2 * (input.shape[dims[-1]] - 1)
        if last < 1:
            raise RuntimeError(f"fft.{name}: Invalid number of data points ({last}) specified")
        sizes[-1] = last // 2 + 1 if s is not None else input.shape[dims[-1]]
        return _c2r(name, input, sizes, dims, last, norm, forward)

    return f


irfft2 = _irfft_nd("irfft2", (-2, -1))
irfftn = _irfft_nd("irfftn", None)
# hfftn is the inverse of ihfftn: the conjugate's c2r with the forward direction's scale (over the other dims
# an inverse transform of the conjugate is the conjugate of PyTorch's forward c2c, so one c2r serves)
hfft2 = _irfft_nd("hfft2", (-2, -1), forward=True)
hfftn = _irfft_nd("hfftn", None, forward=True)


# ---- helpers ------------------------------------------------------------------------------------
def _freq(name, n, d, onesided, dtype, device, requires_grad):
    if not isinstance(n, (int, np.integer)) or n < 0:
        raise RuntimeError(f"fft.{name}: n must be a non-negative integer, got {n!r}")
    k = np.arange(n // 2 + 1 if onesided else n, dtype=np.float64)
    if not onesided:
        k[(n + 1) // 2:] -= n
    from .ops.creation import tensor

    dt = _dt.get_default_dtype() if dtype is None else _dt.as_dtype(dtype)
    return tensor(k / (n * d) if n else k, dtype=dt, device=device, requires_grad=requires_grad)


def fftfreq(n, d=1.0, *, dtype=None, device=None, requires_grad=False):
    """The sample frequencies of an n-point fft with spacing d: [0, 1, ..., -2, -1] / (d * n)."""
    return _freq("fftfreq", n, d, False, dtype, device, requires_grad)


def rfftfreq(n, d=1.0, *, dtype=None, device=None, requires_grad=False):
    """The sample frequencies of an n-point rfft: [0, 1, ..., n // 2] / (d * n)."""
    return _freq("rfftfreq", n, d, True, dtype, device, requires_grad)


def _shift(name, x, dim, sign):
    if not isinstance(x, Tensor):
        raise not_a_tensor(f"fft.{name}", "input", 1, x)
    dims = list(range(x.ndim)) if dim is None else ([dim] if isinstance(dim, int) else list(dim))
    if not dims:
        return x.clone()
    shifts = [x.shape[_norm_dim(d, x.ndim, f"fft.{name}")] // 2 * sign for d in dims]
    return x.roll(shifts, dims)


def fftshift(input, dim=None):
    """Move the zero frequency to the middle: roll by n // 2 along each of dim (all dims by default)."""
    return _shift("fftshift", input, dim, 1)


def ifftshift(input, dim=None):
    """fftshift's inverse: roll by -(n // 2) along each of dim."""
    return _shift("ifftshift", input, dim, -1)


for _n in __all__:
    _f = globals()[_n]
    if _n not in ("fftfreq", "rfftfreq", "fftshift", "ifftshift"):
        _f.__name__ = _f.__qualname__ = _n
        _f.__doc__ = _f.__doc__ or f"devtensor.fft.{_n}: see torch.fft.{_n}"
    if _n not in ("fftshift", "ifftshift"):  # PyTorch's transforms and frequency helpers take out=
        globals()[_n] = with_out(_f, f"fft.{_n}")
del _f, _n
