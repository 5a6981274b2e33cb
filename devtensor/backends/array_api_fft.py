"""Portable kernels of the complex ops (devtensor/ops/complex_ops.py) and the FFT ops (devtensor/ops/fft_ops.py):
one numpy/CuPy code each, registered for cpu (numpy.fft, pocketfft) and cuda (cupy.fft, cuFFT) in the
"portable" tier (see array_api_kernels.py).

The FFT ops take `norm` as a scale that does not depend on the direction (0: none, 1: 1/sqrt(n), 2: 1/n),
as PyTorch's internal _fft_c2c / _fft_r2c / _fft_c2r do, so a backward rule can reuse its forward's scale.
numpy and CuPy name the same scales by the direction's convention; the tables below translate. Results are
cast to the input's precision: complex64 in, complex64 out, whatever the library computed in.
"""
from __future__ import annotations

import numpy as np

_NORM_FORWARD = ("backward", "ortho", "forward")  # scale -> numpy's name for it on a forward transform
_NORM_INVERSE = ("forward", "ortho", "backward")  # ... and on an inverse transform


def _complex_of(d):
    return np.result_type(d, np.complex64)


def _real_of(d):
    return np.dtype(d).type(0).real.dtype


def register(be, xp):
    """xp: numpy, or a lazy stand-in for CuPy whose attributes resolve at call time."""

    def k(*names):
        return be.kernel(*names, tier="portable")

    # ---- complex parts -------------------------------------------------------------------------
    @k("real")
    def real(x):
        return x.real

    @k("imag")
    def imag(x):
        return x.imag

    @k("conj")
    def conj(x):
        return xp.conj(x)

    @k("angle")
    def angle(x):
        return xp.angle(x).astype(_real_of(x.dtype), copy=False)

    @k("view_as_real")
    def view_as_real(x):
        # numpy counts a size-1 last axis as contiguous, so this is a view whatever x's strides; a library
        # that wants the whole array C-contiguous for a view of another itemsize gets a copy instead
        try:
            return x[..., None].view(_real_of(x.dtype))
        except ValueError:
            return xp.stack((x.real, x.imag), axis=-1)

    @k("view_as_complex")
    def view_as_complex(x):
        if x.strides[-1] != x.itemsize:
            x = xp.ascontiguousarray(x)  # PyTorch raises here; a copy keeps the values
        try:
            return x.view(_complex_of(x.dtype))[..., 0]
        except ValueError:
            return xp.ascontiguousarray(x).view(_complex_of(x.dtype))[..., 0]

    @k("complex")
    def complex_(re, im):
        out = xp.empty(np.broadcast_shapes(re.shape, im.shape), _complex_of(re.dtype))
        out.real[...] = re
        out.imag[...] = im
        return out

    # ---- FFTs (dim: a tuple of non-negative axes; sizes already padded or cut by the public function) -----
    # one axis goes to the 1-D functions: numpy's n-D wrappers cost as much as a small transform
    def transform(one, many, x, dim, norm):
        return one(x, axis=dim[0], norm=norm) if len(dim) == 1 else many(x, axes=dim, norm=norm)

    @k("fft_c2c")
    def fft_c2c(x, dim, norm, forward):
        if forward:
            y = transform(xp.fft.fft, xp.fft.fftn, x, dim, _NORM_FORWARD[norm])
        else:
            y = transform(xp.fft.ifft, xp.fft.ifftn, x, dim, _NORM_INVERSE[norm])
        return y.astype(x.dtype, copy=False)

    @k("fft_r2c")
    def fft_r2c(x, dim, norm, onesided):
        one, many = (xp.fft.rfft, xp.fft.rfftn) if onesided else (xp.fft.fft, xp.fft.fftn)
        return transform(one, many, x, dim, _NORM_FORWARD[norm]).astype(_complex_of(x.dtype), copy=False)

    @k("fft_c2r")
    def fft_c2r(x, dim, norm, last_dim_size):
        if len(dim) == 1:
            y = xp.fft.irfft(x, n=last_dim_size, axis=dim[0], norm=_NORM_INVERSE[norm])
        else:
            s = [x.shape[d] for d in dim[:-1]] + [last_dim_size]
            y = xp.fft.irfftn(x, s=s, axes=dim, norm=_NORM_INVERSE[norm])
        return y.astype(_real_of(x.dtype), copy=False)
