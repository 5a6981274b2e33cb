"""dtypes and the ONE promotion table (PyTorch's rules).

A dtype is a small immutable object wrapping the numpy dtype that stores it. Every
backend stores arrays in the numpy-compatible dtype named here, so `to_dtype(arr.dtype)`
maps any backend array back to our dtype with one dict lookup.
"""
from __future__ import annotations

import numpy as np

try:  # bfloat16 storage comes from ml_dtypes (the numpy extension JAX uses)
    import ml_dtypes as _ml

    _BF16 = np.dtype(_ml.bfloat16)
except ImportError:  # pragma: no cover - ml_dtypes is a dependency
    _BF16 = None


class dtype:
    __slots__ = ("name", "np", "is_floating_point", "is_complex", "is_signed", "itemsize", "_cat", "_rank")

    def __init__(self, name, np_dtype, cat, rank):
        self.name = name
        self.np = np_dtype
        self._cat = cat  # 0 bool, 1 integer, 2 floating, 3 complex: the categories PyTorch promotes across
        self._rank = rank  # order inside a category (bigger wins); a complex dtype has its component's rank
        self.is_floating_point = cat == 2
        self.is_complex = cat == 3
        self.is_signed = name not in ("bool", "uint8")
        self.itemsize = np_dtype.itemsize if np_dtype is not None else 2

    def __repr__(self):
        return f"devtensor.{self.name}"

    def __reduce__(self):
        return (_by_name, (self.name,))

    def to_real(self):
        """The dtype of the real and imaginary parts (complex64 -> float32); a real dtype itself."""
        return _TO_REAL.get(self, self)

    def to_complex(self):
        """The complex dtype with this dtype's precision (float64 -> complex128); half precisions, which
        devtensor has no complex form of, give complex64."""
        if self._cat == 3:
            return self
        return complex128 if self._cat == 2 and self._rank >= 3 else complex64


bool_ = dtype("bool", np.dtype(np.bool_), 0, 0)
uint8 = dtype("uint8", np.dtype(np.uint8), 1, 1)
int8 = dtype("int8", np.dtype(np.int8), 1, 1)
int16 = dtype("int16", np.dtype(np.int16), 1, 2)
int32 = dtype("int32", np.dtype(np.int32), 1, 3)
int64 = dtype("int64", np.dtype(np.int64), 1, 4)
float16 = dtype("float16", np.dtype(np.float16), 2, 1)
bfloat16 = dtype("bfloat16", _BF16, 2, 1)
float32 = dtype("float32", np.dtype(np.float32), 2, 2)
float64 = dtype("float64", np.dtype(np.float64), 2, 3)
complex64 = dtype("complex64", np.dtype(np.complex64), 3, 2)
complex128 = dtype("complex128", np.dtype(np.complex128), 3, 3)
_TO_REAL = {complex64: float32, complex128: float64}

ALL = (bool_, uint8, int8, int16, int32, int64, float16, bfloat16, float32, float64, complex64, complex128)
FLOATING = (float16, bfloat16, float32, float64)
COMPLEX = (complex64, complex128)
_NAMES = {d.name: d for d in ALL}
_NAMES.update(half=float16, float=float32, double=float64, long=int64, int=int32, short=int16,
              cfloat=complex64, cdouble=complex128)
_FROM_NP = {d.np: d for d in ALL if d.np is not None}


def _by_name(name):
    return _NAMES[name]


def from_numpy_dtype(np_dtype) -> dtype:
    """Map a numpy (or cupy) dtype to ours; the error names the unsupported dtype."""
    try:
        return _FROM_NP[np_dtype]
    except KeyError:
        pass
    try:
        return _FROM_NP[np.dtype(np_dtype)]
    except (KeyError, TypeError):
        raise TypeError(
            f"devtensor does not support numpy dtype {np_dtype!r}; supported: "
            + ", ".join(d.name for d in ALL)
        ) from None


def as_dtype(d) -> dtype:
    """Accept a devtensor dtype, a numpy dtype/type, or a name ('float32')."""
    if isinstance(d, dtype):
        return d
    if isinstance(d, str):
        if d in _NAMES:
            return _NAMES[d]
        raise TypeError(f"unknown dtype name {d!r}; known: {', '.join(sorted(_NAMES))}")
    if d is float:
        return _default_float[0]
    if d is int:
        return int64
    if d is bool:
        return bool_
    if d is complex:
        return _default_float[0].to_complex()
    return from_numpy_dtype(d)


# default float dtype (torch.set_default_dtype)
_default_float = [float32]


def get_default_dtype() -> dtype:
    return _default_float[0]


def set_default_dtype(d) -> None:
    d = as_dtype(d)
    if not d.is_floating_point:
        raise TypeError(f"set_default_dtype: only floating dtypes can be the default, got {d}")
    _default_float[0] = d
    _RESULT_CACHE.clear()


def promote_types(a: dtype, b: dtype) -> dtype:
    """torch.promote_types: the smallest dtype both values fit, across categories."""
    if a is b:
        return a
    if a._cat != b._cat:
        hi, lo = (a, b) if a._cat > b._cat else (b, a)
        if hi._cat == 3 and lo._cat == 2 and lo._rank > hi._rank:  # float64 with complex64: complex128
            return lo.to_complex()
        return hi
    if a._cat == 3:
        return a if a._rank > b._rank else b
    if a._cat == 2:
        if a._rank == b._rank:  # float16 with bfloat16: neither holds the other
            return float32
        return a if a._rank > b._rank else b
    if a._cat == 1:
        if uint8 in (a, b):  # uint8 with a signed type needs a wider signed type
            other = b if a is uint8 else a
            return int16 if other is int8 else other
        return a if a._rank > b._rank else b
    return a


# The three priority levels of PyTorch's result_type: tensors with dims, 0-d tensors,
# and Python scalars ("weak"). A lower level only matters when its category is higher.
def _combine(higher, lower):
    if higher is None:
        return lower
    if lower is None:
        return higher
    if lower._cat == 3 and higher._cat == 2:  # a complex scalar keeps the tensor's precision (c10's rule)
        return higher.to_complex()
    return lower if lower._cat > higher._cat else higher


def _scalar_dtype(x):
    if isinstance(x, bool):
        return bool_
    if isinstance(x, int):
        return int64
    if isinstance(x, complex):
        return _default_float[0].to_complex()
    return _default_float[0]


_RESULT_CACHE: dict = {}


def result_type_key(dims, zeros, scalars):
    """dims/zeros/scalars: tuples of dtypes of dimensioned tensors, 0-d tensors, scalars."""
    key = (dims, zeros, scalars)
    r = _RESULT_CACHE.get(key)
    if r is None:
        r = _RESULT_CACHE[key] = _compute_result(dims, zeros, scalars)
    return r


def _compute_result(dims, zeros, scalars):
    def fold(ds):
        r = None
        for d in ds:
            r = d if r is None else promote_types(r, d)
        return r

    return _combine(fold(dims), _combine(fold(zeros), fold(scalars)))


def result_type(*operands) -> dtype:
    """torch.result_type over tensors and Python scalars."""
    dims, zeros, scalars = [], [], []
    for o in operands:
        dt = getattr(o, "dtype", None)
        if isinstance(dt, dtype):
            (zeros if o.ndim == 0 else dims).append(dt)
        else:
            scalars.append(_scalar_dtype(o))
    return result_type_key(tuple(dims), tuple(zeros), tuple(scalars))


def float_of(d: dtype) -> dtype:
    """The dtype a float-valued op (exp, mean, /) returns for input dtype d (complex stays complex)."""
    return d if d._cat >= 2 else _default_float[0]


def is_complex(t) -> bool:
    """torch.is_complex: whether the tensor's dtype is complex64 or complex128."""
    return t.dtype.is_complex
