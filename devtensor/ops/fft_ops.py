"""The FFT ops: PyTorch's three internal transforms, which devtensor.fft's public functions are written in.

    fft_c2c(x, dim, norm, forward)        complex -> complex over the axes `dim`
    fft_r2c(x, dim, norm, onesided)       real -> complex (onesided: the last axis keeps n // 2 + 1 bins)
    fft_c2r(x, dim, norm, last_dim_size)  Hermitian half-spectrum -> real (the inverse of onesided r2c)

`dim` is a tuple of non-negative axes, the sizes along them already padded or cut by the public function;
`norm` is a scale that does not depend on the direction (0: none, 1: 1/sqrt(n), 2: 1/n), so every backward
below is the adjoint transform with its forward's scale. The rules are PyTorch's (FunctionsManual.cpp):
r2c's adjoint zero-fills the missing half of the spectrum, c2r's doubles the bins that stand for two.
"""
from __future__ import annotations

import numpy as np

from .. import dtypes as _dt
from ..dispatch import KEEP, OPS, call, defop

_REAL = (np.dtype(np.float32), np.dtype(np.float64))


def _name(d):
    return _dt.from_numpy_dtype(d).name


def _check_dims(x, dim, sizes=None):
    shape = tuple(x.shape)
    for d in dim:
        if not 0 <= d < len(shape):
            raise IndexError(f"dimension {d} out of range for a tensor of shape {list(shape)}")
    if len(set(dim)) != len(dim):
        raise RuntimeError(f"FFT dims must be unique, got {list(dim)}")
    for d in dim:
        n = shape[d] if sizes is None else sizes[d]
        if n < 1:
            raise RuntimeError(f"Invalid number of data points ({n}) specified")
    return shape


def _c2c_meta(x, dim, norm, forward):
    if x.dtype.kind != "c":
        raise RuntimeError(f"expects a complex input tensor, but got {_name(x.dtype)}")
    return _check_dims(x, dim), x.dtype


def _r2c_meta(x, dim, norm, onesided):
    if x.dtype not in _REAL:
        raise RuntimeError(f"expects a float32 or float64 input tensor, but got {_name(x.dtype)}")
    shape = list(_check_dims(x, dim))
    if onesided:
        shape[dim[-1]] = shape[dim[-1]] // 2 + 1
    return tuple(shape), np.result_type(x.dtype, np.complex64)


def _c2r_meta(x, dim, norm, last_dim_size):
    if x.dtype.kind != "c":
        raise RuntimeError(f"expects a complex input tensor, but got {_name(x.dtype)}")
    shape = list(_check_dims(x, dim))
    if last_dim_size < 1:
        raise RuntimeError(f"Invalid number of data points ({last_dim_size}) specified")
    shape[dim[-1]] = last_dim_size
    return tuple(shape), x.dtype.type(0).real.dtype


def _c2c_backward(c, g):
    return call(fft_c2c, (g,), {"dim": c.dim, "norm": c.norm, "forward": not c.forward})


def _r2c_backward(c, g):
    # the adjoint of the full (two-sided) transform, real part taken; a onesided output first gets its
    # missing bins back as zeros
    dim = c.dim
    if c.onesided:
        full, half = c.in_meta[0][0][dim[-1]], g.shape[dim[-1]]
        if full > half:
            widths = tuple((0, full - half if i == dim[-1] else 0) for i in range(g.ndim))
            g = call(OPS["pad"], (g,), {"widths": widths, "value": 0})
    return call(OPS["real"], (call(fft_c2c, (g,), {"dim": dim, "norm": c.norm, "forward": False}),), {})


def _c2r_backward(c, g):
    # the onesided r2c of g, with the bins that stand for a conjugate pair (all but DC and, for an even
    # length, Nyquist) doubled
    dim = c.dim
    gi = call(fft_r2c, (g,), {"dim": dim, "norm": c.norm, "onesided": True})
    n_full, n_half = g.shape[dim[-1]], gi.shape[dim[-1]]
    double = n_full - n_half
    if double > 0:
        w = np.ones(n_half, dtype=g._data.dtype)
        w[1:1 + double] = 2
        shape = [1] * g.ndim
        shape[dim[-1]] = n_half
        from .creation import tensor

        gi = gi * tensor(w.reshape(shape), device=g.device)
    return gi


# references: numpy.fft with the scale applied by hand (independent of the kernels' norm-name tables)
def _scaled(y, x_shape, dim, norm):
    n = float(np.prod([x_shape[d] for d in dim]))
    return y * (1.0, n ** -0.5, 1.0 / n)[norm]


def _ref_c2c(x, dim, norm, forward):
    y = np.fft.fftn(x, axes=dim) if forward else np.fft.ifftn(x, axes=dim) * np.prod([x.shape[d] for d in dim])
    return _scaled(y, x.shape, dim, norm)


def _ref_r2c(x, dim, norm, onesided):
    y = np.fft.fftn(x, axes=dim)
    if onesided:
        y = np.take(y, np.arange(x.shape[dim[-1]] // 2 + 1), axis=dim[-1])
    return _scaled(y, x.shape, dim, norm)


def _ref_c2r(x, dim, norm, last_dim_size):
    s = [x.shape[d] for d in dim[:-1]] + [last_dim_size]
    y = np.fft.irfftn(x, s=s, axes=dim) * np.prod(s)
    full = list(x.shape)
    full[dim[-1]] = last_dim_size
    return _scaled(y, full, dim, norm)


def _fft_samples(kind):
    def samples(dtype=np.float64):
        r = np.random.default_rng(184)
        ct = np.result_type(dtype, np.complex64)
        x = lambda *s: (r.standard_normal(s) + 1j * r.standard_normal(s)).astype(ct)  # noqa: E731
        if kind == "c2c":
            return [((x(3, 5),), dict(dim=(1,), norm=0, forward=True)), ((x(4, 3),), dict(dim=(0, 1), norm=2, forward=False)),
                    ((x(2, 3, 4),), dict(dim=(2, 0), norm=1, forward=True))]
        if kind == "r2c":
            return [((r.standard_normal(s).astype(dtype),), dict(dim=d, norm=nm, onesided=o))
                    for s, d, nm, o in (((3, 6), (1,), 0, True), ((5, 3), (0,), 1, True), ((2, 3, 5), (0, 2), 2, True),
                                        ((4, 3), (1,), 0, False))]
        return [((x(3, 4),), dict(dim=(1,), norm=2, last_dim_size=6)), ((x(3, 4),), dict(dim=(1,), norm=0, last_dim_size=7)),
                ((x(2, 3, 3),), dict(dim=(0, 2), norm=1, last_dim_size=5))]

    return samples


fft_c2c = defop("fft_c2c", rule=KEEP, meta=_c2c_meta, backward=_c2c_backward, complex=True, shown_as="fft",
                ref=_ref_c2c, samples=_fft_samples("c2c"),
                doc="complex-to-complex FFT over dims (norm: 0 none, 1 1/sqrt(n), 2 1/n)")
fft_r2c = defop("fft_r2c", rule=KEEP, meta=_r2c_meta, backward=_r2c_backward, shown_as="rfft",
                ref=_ref_r2c, samples=_fft_samples("r2c"),
                doc="real-to-complex FFT over dims, onesided: the last dim keeps n // 2 + 1 bins")
fft_c2r = defop("fft_c2r", rule=KEEP, meta=_c2r_meta, backward=_c2r_backward, complex=True, shown_as="irfft",
                ref=_ref_c2r, samples=_fft_samples("c2r"),
                doc="Hermitian half-spectrum to real inverse FFT over dims, last_dim_size samples on the last")
