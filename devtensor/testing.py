"""devtensor.testing.assert_close: PyTorch's torch.testing.assert_close for devtensor tensors.

Tensors (and numpy arrays), Python numbers, and sequences / mappings of them (compared item by
item) are checked for shape, dtype and device, then for |actual - expected| <= atol + rtol * |expected|
with PyTorch's default tolerances per dtype; a failure's message is PyTorch's (mismatched count,
greatest absolute and relative difference and their index, the item of a nested input).
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from .tensor import Tensor

__all__ = ["assert_close"]

# PyTorch's default (rtol, atol); every other dtype (integers, bool) is compared for equality
_TOLERANCES = {"float16": (1e-3, 1e-5), "bfloat16": (1.6e-2, 1e-5), "float32": (1.3e-6, 1e-5),
               "float64": (1e-7, 1e-7), "complex64": (1.3e-6, 1e-5), "complex128": (1e-7, 1e-7)}


class _Fail(Exception):
    def __init__(self, exc_type, msg):
        super().__init__(msg)
        self.exc_type, self.msg = exc_type, msg


def assert_close(actual, expected, *, allow_subclasses=True, rtol=None, atol=None, equal_nan=False,
                 check_device=True, check_dtype=True, check_layout=True, check_stride=False, msg=None):
    """Raise AssertionError unless `actual` and `expected` are close (see the module docstring).
    msg: a string replaces the generated message; a callable receives it and returns the message."""
    if (rtol is None) != (atol is None):
        raise ValueError("Both 'rtol' and 'atol' must be either specified or omitted, "
                         f"but got no {'rtol' if rtol is None else 'atol'}.")
    try:
        _compare(actual, expected, (), rtol, atol, equal_nan, check_device, check_dtype)
    except _Fail as f:
        text = f.msg
        if f.exc_type is AssertionError and msg is not None:
            text = msg(text) if callable(msg) else msg
        raise f.exc_type(text) from None


def _where(path):
    return "" if not path else "\n\nThe failure occurred for item " + "".join(f"[{p!r}]" for p in path)


def _compare(actual, expected, path, rtol, atol, equal_nan, check_device, check_dtype):
    if _is_number(actual) and _is_number(expected):
        return _compare_numbers(actual, expected, path, rtol, atol, equal_nan, check_dtype)
    if isinstance(actual, (Tensor, np.ndarray)) and isinstance(expected, (Tensor, np.ndarray)) \
            and isinstance(actual, Tensor) == isinstance(expected, Tensor):
        return _compare_tensors(actual, expected, path, rtol, atol, equal_nan, check_device, check_dtype)
    if isinstance(actual, Mapping) and isinstance(expected, Mapping):
        ka, ke = set(actual), set(expected)
        if ka != ke:
            raise _Fail(AssertionError, "The keys of the mappings do not match:\n"
                        f"Missing keys in the actual mapping: {sorted(ke - ka)}\n"
                        f"Additional keys in the actual mapping: {sorted(ka - ke)}" + _where(path))
        for k in expected:
            _compare(actual[k], expected[k], (*path, k), rtol, atol, equal_nan, check_device, check_dtype)
        return
    if _is_sequence(actual) and _is_sequence(expected):
        if len(actual) != len(expected):
            raise _Fail(AssertionError, f"The length of the sequences mismatch: {len(actual)} != {len(expected)}"
                        + _where(path))
        for i, (a, e) in enumerate(zip(actual, expected)):
            _compare(a, e, (*path, i), rtol, atol, equal_nan, check_device, check_dtype)
        return
    raise _Fail(TypeError, f"No comparison pair was able to handle inputs of type {type(actual)} and "
                f"{type(expected)}." + _where(path))


def _is_number(x):
    return isinstance(x, (bool, int, float, complex, np.number, np.bool_))


def _is_sequence(x):
    return isinstance(x, Sequence) and not isinstance(x, str)


def _mismatch(kind, extra, abs_diff, abs_idx, atol, rel_diff, rel_idx, rtol, path):
    def line(what, diff, idx, tol):
        s = (f"{what.title()} difference: {diff}" if idx is None
             else f"Greatest {what} difference: {diff} at index {idx}")
        return s + (f" (up to {tol} allowed)" if tol > 0 else "")

    msg = f"{kind} are not {'equal' if rtol == 0 and atol == 0 else 'close'}!\n\n{extra}\n"
    msg += line("absolute", abs_diff, abs_idx, atol) + "\n" + line("relative", rel_diff, rel_idx, rtol)
    raise _Fail(AssertionError, msg + _where(path))


def _compare_numbers(actual, expected, path, rtol, atol, equal_nan, check_dtype):
    if check_dtype and type(actual) is not type(expected):
        raise _Fail(AssertionError, f"The (d)types do not match: {type(actual)} != "
                    f"{type(expected)}." + _where(path))
    kinds = {type(actual), type(expected)}
    if rtol is None:
        rtol, atol = (_TOLERANCES["complex128"] if complex in kinds else
                      _TOLERANCES["float64"] if float in kinds else (0.0, 0.0))
    if _numbers_close(actual, expected, rtol, atol, equal_nan):
        return
    _scalar_mismatch(actual, expected, rtol, atol, path)


def _scalar_mismatch(actual, expected, rtol, atol, path):
    abs_diff = abs(actual - expected)
    rel_diff = math.inf if expected == 0 else abs_diff / abs(expected)
    _mismatch("Scalars", f"Expected {expected} but got {actual}.", abs_diff, None, atol, rel_diff, None, rtol, path)


def _numbers_close(a, e, rtol, atol, equal_nan):
    if a == e:
        return True
    a_nan, e_nan = _isnan(a), _isnan(e)
    if a_nan or e_nan:
        return equal_nan and a_nan and e_nan
    if not (_isfinite(a) and _isfinite(e)):
        return False
    return abs(a - e) <= atol + rtol * abs(e)


def _isnan(x):
    return isinstance(x, (float, complex, np.floating, np.complexfloating)) and bool(np.isnan(x))


def _isfinite(x):
    return bool(np.isfinite(x))


def _meta(t):
    """(dtype name, shape, device string, host array) of a devtensor Tensor or a numpy array."""
    if isinstance(t, np.ndarray):
        return t.dtype.name, tuple(t.shape), "cpu", t
    a = np.asarray(t.detach().cpu().numpy())
    return t.dtype.name, tuple(t.shape), str(t.device), a


def _compare_tensors(actual, expected, path, rtol, atol, equal_nan, check_device, check_dtype):
    da, sa, deva, a = _meta(actual)
    de, se, deve, e = _meta(expected)
    if sa != se:
        raise _Fail(AssertionError, f"The values for attribute 'shape' do not match: {_size(actual)} != "
                    f"{_size(expected)}." + _where(path))
    if check_device and deva != deve:
        raise _Fail(AssertionError, f"The values for attribute 'device' do not match: {deva} != {deve}."
                    + _where(path))
    if check_dtype and da != de:
        raise _Fail(AssertionError, f"The values for attribute 'dtype' do not match: {actual.dtype!r} != "
                    f"{expected.dtype!r}." + _where(path))
    if rtol is None:
        rtol = max(_TOLERANCES.get(da, (0.0, 0.0))[0], _TOLERANCES.get(de, (0.0, 0.0))[0])
        atol = max(_TOLERANCES.get(da, (0.0, 0.0))[1], _TOLERANCES.get(de, (0.0, 0.0))[1])
    if da == "bfloat16" or de == "bfloat16":  # numpy has no bfloat16 arithmetic: compare in float32
        a, e = a.astype(np.float32), e.astype(np.float32)
    common = np.result_type(a.dtype, e.dtype)
    a, e = a.astype(common, copy=False), e.astype(common, copy=False)
    if common.kind in "biu":
        matches = a == e
    else:
        with np.errstate(invalid="ignore", over="ignore"):
            matches = np.isclose(a, e, rtol=rtol, atol=atol, equal_nan=equal_nan)
    if matches.all():
        return
    if a.ndim == 0:  # PyTorch reports a 0-d mismatch as one of scalars
        _scalar_mismatch(a.item(), e.item(), rtol, atol, path)
    af, ef, mf = a.reshape(-1), e.reshape(-1), matches.reshape(-1)
    if common.kind in "biu":
        af, ef = af.astype(np.int64), ef.astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        abs_diff = np.abs(af - ef)
        abs_diff[mf] = 0
        # integers divide in the default float dtype, as torch's true division does
        rel_diff = (abs_diff.astype(np.float32) / np.abs(ef).astype(np.float32) if common.kind in "biu"
                    else abs_diff / np.abs(ef))
        rel_diff[mf] = 0
    ia, ir = _argmax(abs_diff), _argmax(rel_diff)
    n, bad = mf.size, int(mf.size - mf.sum())
    extra = f"Mismatched elements: {bad} / {n} ({bad / n:.1%})"
    _mismatch("Tensor-likes", extra, abs_diff[ia].item(), _unravel(ia, a.shape), atol, rel_diff[ir].item(),
              _unravel(ir, a.shape), rtol, path)


def _unravel(i, shape):
    return tuple(int(j) for j in np.unravel_index(i, shape))


def _argmax(x):
    # NaN counts as the greatest (torch.max's rule); numpy's argmax returns the first NaN too
    return int(np.argmax(x))


def _size(t):
    return repr(t.shape) if isinstance(t, Tensor) else f"{tuple(t.shape)}"

