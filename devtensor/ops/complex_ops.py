"""Complex tensors' own ops (real, imag, conj, angle, view_as_real, view_as_complex, complex, polar) and
which ops of the table take complex arguments at all.

OpDef.complex says whether an op takes complex arrays; dispatch.call refuses complex arguments of the others
on every device (the meta device included), with the op's name. Arithmetic ops declare it in their defop
(elementwise.py); the ops below that only move or select data, declared elsewhere, are marked here. Backward
rules follow PyTorch's convention: the gradient of a real loss L w.r.t. z is dL/dRe(z) + i dL/dIm(z), so a
holomorphic op's rule multiplies by the conjugate of its derivative (elementwise._cj).
"""
from __future__ import annotations

import numpy as np

from .. import dtypes as _dt
from ..dispatch import KEEP, OPS, call, defop
from ..tensor import Tensor
from . import meta_rules as M
from ._api import not_a_tensor, public
from .elementwise import _sgn, sign, where

# ops declared in other modules that move, select or sum values without arithmetic that depends on an order
# or on real-valuedness: correct on complex arrays as they are
_MOVES_DATA = ("full", "empty", "copy_to", "copy_", "reshape", "permute", "expand", "flip", "contiguous", "clone",
               "cat", "pad", "tril", "triu", "index", "index_backward", "index_put", "gather", "scatter_add",
               "sum", "mean", "cumsum", "diagonal", "diagonal_backward", "diag_embed")
for _n in _MOVES_DATA:
    OPS[_n].set_complex(True)


def _real_np(d):
    return np.dtype(d).type(0).real.dtype  # complex64 -> float32; a real dtype itself


def _part_meta(x):
    return tuple(x.shape), _real_np(x.dtype)


def _view_as_real_meta(x):
    if x.dtype.kind != "c":
        raise RuntimeError(f"view_as_real is only supported for complex tensors, got {_dt.from_numpy_dtype(x.dtype).name}")
    return tuple(x.shape) + (2,), _real_np(x.dtype)


def _view_as_complex_meta(x):
    if x.dtype not in (np.float32, np.float64):
        raise RuntimeError(f"view_as_complex is only supported for float32 and float64 tensors, but got a tensor of "
                           f"scalar type {_dt.from_numpy_dtype(x.dtype).name}")
    if not x.shape or x.shape[-1] != 2:
        raise RuntimeError(f"Tensor must have a last dimension of size 2, got shape {list(x.shape)}")
    return tuple(x.shape[:-1]), np.result_type(x.dtype, np.complex64)


def _complex_meta(re, im):
    if re.dtype != im.dtype:
        raise RuntimeError(f"Expected object of scalar type {_dt.from_numpy_dtype(re.dtype).name} but got scalar type "
                           f"{_dt.from_numpy_dtype(im.dtype).name} for second argument")
    if re.dtype not in (np.float32, np.float64):
        raise RuntimeError(f"Expected both inputs to be float32 or float64 tensors, but got "
                           f"{_dt.from_numpy_dtype(re.dtype).name}")
    return M.broadcast(re, im)[0], np.result_type(re.dtype, np.complex64)


def _cplx(r, *shape, dtype=np.float64):
    return np.asarray(r.standard_normal(shape) + 1j * r.standard_normal(shape)).astype(np.result_type(dtype, np.complex64))


def _unary_samples(dtype=np.float64):
    r = np.random.default_rng(181)
    return [((_cplx(r, 3, 4, dtype=dtype),), {}), ((_cplx(r, 5, dtype=dtype),), {}), ((_cplx(r, dtype=dtype),), {})]


def _real_pair_samples(dtype=np.float64):
    r = np.random.default_rng(182)
    x = lambda *s: np.asarray(r.standard_normal(s)).astype(dtype)  # noqa: E731
    return [((x(3, 4), x(3, 4)), {}), ((x(2, 1, 3), x(4, 1)), {}), ((x(), x()), {})]


def _pairs_samples(dtype=np.float64):
    r = np.random.default_rng(183)
    return [((r.standard_normal(s).astype(dtype),), {}) for s in ((3, 2), (2, 4, 2), (2,))]


def _ref_complex(re, im):
    out = np.empty(np.broadcast_shapes(re.shape, im.shape), np.result_type(re.dtype, np.complex64))
    out.real, out.imag = re, im
    return out


def _angle_backward(c, g):
    x = c.x
    if x._data.dtype.kind != "c":
        return g * 0
    a2 = x.abs() ** 2
    zero = a2 == 0
    return where(zero, 0.0, g * x * 1j / where(zero, 1.0, a2))


def _view_as_real_backward(c, g):
    return call(_complex, (g[..., 0], g[..., 1]), {})


_real = defop("real", rule=KEEP, meta=_part_meta, view=True, backward=lambda c, g: g,  # the engine makes g complex
              complex=True, ref=np.real, samples=_unary_samples, doc="the real part of a complex tensor (a view)")
_imag = defop("imag", rule=KEEP, meta=_part_meta, view=True, backward=lambda c, g: g * 1j, complex=True,
              ref=np.imag, samples=_unary_samples, doc="the imaginary part of a complex tensor (a view)")
_conj = defop("conj", rule=KEEP, meta=M.same, backward=lambda c, g: call(_conj, (g,), {}), complex=True,
              ref=np.conj, samples=_unary_samples, doc="the complex conjugate (a copy: devtensor has no lazy conjugate bit)")
_angle = defop("angle", rule=KEEP, meta=_part_meta, save=("x",), backward=_angle_backward, complex=True,
               ref=np.angle, samples=_unary_samples)
# view_as_real / view_as_complex / complex run their rule first (check=True): their kernels would accept a
# wrong dtype silently (numpy reinterprets bytes)
_view_as_real = defop("view_as_real", rule=KEEP, meta=_view_as_real_meta, view=True, check=True, backward=_view_as_real_backward,
                      complex=True, ref=lambda x: np.stack((x.real, x.imag), -1), samples=_unary_samples)
_view_as_complex = defop("view_as_complex", rule=KEEP, meta=_view_as_complex_meta, view=True, check=True,
                         backward=lambda c, g: call(_view_as_real, (g,), {}), complex=True,
                         ref=lambda x: x[..., 0] + 1j * x[..., 1], samples=_pairs_samples)
_complex = defop("complex", ("re", "im"), rule=KEEP, meta=_complex_meta, check=True,
                 backward=lambda c, g: (call(_real, (g,), {}), call(_imag, (g,), {})), complex=True,
                 ref=_ref_complex, samples=_real_pair_samples)


def _tensor_arg(name, x):
    if not isinstance(x, Tensor):
        raise not_a_tensor(name, "input", 1, x)


@public
def sgn(input):
    """sign for real tensors; z / |z| (0 at 0) for complex ones, as torch.sgn."""
    _tensor_arg("sgn", input)
    return _sgn(input) if input._data.dtype.kind == "c" else sign(input)


@public(method=False)
def is_complex(input):
    _tensor_arg("is_complex", input)
    return input.dtype.is_complex


Tensor.is_complex = lambda self: self.dtype.is_complex


@public(method=False)
def real(input):
    """The real part: a view of a complex tensor; a real tensor itself (as torch.real)."""
    _tensor_arg("real", input)
    return call(_real, (input,), {}) if input._data.dtype.kind == "c" else input


@public(method=False)
def imag(input):
    """The imaginary part of a complex tensor (a view); real tensors have none (PyTorch raises too)."""
    _tensor_arg("imag", input)
    if input._data.dtype.kind != "c":
        raise RuntimeError(f"imag is not implemented for tensors with non-complex dtypes (got {input.dtype.name})")
    return call(_imag, (input,), {})


Tensor.real = property(real)
Tensor.imag = property(imag)


@public
def conj(input):
    """The complex conjugate; a real tensor itself. A copy, not PyTorch's lazy conjugate view."""
    _tensor_arg("conj", input)
    return call(_conj, (input,), {}) if input._data.dtype.kind == "c" else input


public(conj, name="conj_physical")


@public
def resolve_conj(input):
    return input  # devtensor's conj materialises: there is never a conjugate bit to resolve


@public
def is_conj(input):
    return False


@public
def angle(input):
    """The argument of each element (radians); for real input 0 or pi, with a zero gradient (as PyTorch)."""
    _tensor_arg("angle", input)
    if input.dtype._cat < 2:
        input = input.to(_dt.get_default_dtype())
    return call(_angle, (input,), {})


@public(method=False)
def view_as_real(input):
    """A real view of shape (..., 2) of a complex tensor (a copy where its last dimension is strided)."""
    _tensor_arg("view_as_real", input)
    return call(_view_as_real, (input,), {})


@public(method=False)
def view_as_complex(input):
    """The complex view of a float32 / float64 tensor whose last dimension has size 2."""
    _tensor_arg("view_as_complex", input)
    return call(_view_as_complex, (input,), {})


@public(method=False)
def complex(real, imag):  # noqa: A001 - PyTorch's name
    """real + i imag from two float tensors of one dtype (broadcast)."""
    for i, (n, v) in enumerate((("real", real), ("imag", imag))):
        if not isinstance(v, Tensor):
            raise not_a_tensor("complex", n, i + 1, v)
    return call(_complex, (real, imag), {})


@public(method=False)
def polar(abs, angle):  # noqa: A002 - PyTorch's names
    """abs * (cos(angle) + i sin(angle))."""
    for i, (n, v) in enumerate((("abs", abs), ("angle", angle))):
        if not isinstance(v, Tensor):
            raise not_a_tensor("polar", n, i + 1, v)
    try:
        _complex_meta(abs._data, angle._data)  # PyTorch's checks: one floating dtype for both
    except RuntimeError as e:
        raise RuntimeError(f"polar: {e}") from None
    return complex(abs * angle.cos(), abs * angle.sin())
