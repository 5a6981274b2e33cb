"""devtensor.testing.assert_close against torch.testing.assert_close: the same inputs (built from
the same numpy values) pass or fail alike, with the same exception type and message."""
from __future__ import annotations

import math

import numpy as np
import pytest

import devtensor as dt
from devtensor.testing import assert_close

torch = pytest.importorskip("torch")

nan, inf = math.nan, math.inf


class A:  # an array literal, turned into a tensor of each library
    def __init__(self, values, dtype="float32"):
        self.values, self.dtype = values, dtype


def _build(x, lib):
    if isinstance(x, A):
        a = np.array(x.values, dtype=x.dtype)
        return dt.tensor(a) if lib == "dt" else torch.tensor(a)
    if isinstance(x, list):
        return [_build(v, lib) for v in x]
    if isinstance(x, dict):
        return {k: _build(v, lib) for k, v in x.items()}
    return x


CASES = [
    (A([1., 2., 3.]), A([1., 2.5, 3.]), {}),
    (A([[1., 2.], [3., 4.]]), A([[1., 2.], [3., 4.001]]), {}),
    (A([1., 2.]), A([1., 2. + 1e-6]), {}),  # within float32's default tolerance
    (A([1., 2.], "float64"), A([1., 2. + 1e-6], "float64"), {}),  # not within float64's
    (A([1., 2.], "float16"), A([1., 2.001], "float16"), {}),
    (A([1, 2], "int64"), A([1, 3], "int64"), {}),
    (A([1, 2], "int32"), A([1, 2], "int32"), {}),
    (A([True, False], "bool"), A([True, True], "bool"), {}),
    (A([1., 2.]), A([1., 2., 3.]), {}),
    (A([1., 2.]), A([1., 2.], "float64"), {}),
    (A([1., 2.]), A([1., 2.], "float64"), {"check_dtype": False}),
    (A([1., nan]), A([1., nan]), {}),
    (A([1., nan]), A([1., nan]), {"equal_nan": True}),
    (A([1., inf]), A([1., -inf]), {}),
    (A([1., inf]), A([1., inf]), {}),
    (A([0., 2.]), A([0., nan]), {}),
    (A([0., 1.]), A([1e-9, 1.]), {}),
    (A([0., 1., 5.]), A([0.5, 1., 6.]), {"rtol": 0.1, "atol": 0.2}),
    (A([1 + 1j], "complex64"), A([1 + 2j], "complex64"), {}),
    (A(1.), A(2.), {}),
    (A(1.), 1., {}),
    (1.0, 1.5, {}),
    (1, 2, {}),
    (1, 1.0, {}),
    ([A(1.), A(2.)], [A(1.)], {}),
    ([A(1.), A(2.)], [A(1.), A(3.)], {}),
    ({"a": A(1.)}, {"b": A(1.)}, {}),
    ({"a": [A([1., 2.]), A([3.])]}, {"a": [A([1., 2.]), A([4.])]}, {}),
    (A([1., 2.]), A([1., 3.]), {"msg": "custom"}),
    (A([1., 2.]), A([1., 3.]), {"msg": lambda m: m + "!!"}),
    (A([1., 2.]), A([1., 3.]), {"rtol": 0.1}),
    (A(np.zeros((2, 0))), A(np.zeros((2, 0))), {}),
]


@pytest.mark.parametrize("actual,expected,kw", CASES)
def test_assert_close_matches_torch(actual, expected, kw):
    def run(fn, lib):
        try:
            fn(_build(actual, lib), _build(expected, lib), **kw)
        except Exception as e:
            return type(e), str(e)
        return None

    want = run(torch.testing.assert_close, "torch")
    got = run(assert_close, "dt")
    if want is None:
        assert got is None, got[1]
        return
    assert got is not None, f"devtensor passed; torch raised {want}"
    norm = got[1].replace("devtensor.tensor.Tensor", "torch.Tensor").replace("devtensor.", "torch.")
    assert (got[0], norm) == want


def test_assert_close_numpy_arrays_and_device_check():
    assert_close(np.array([1.0, 2.0]), np.array([1.0, 2.0 + 1e-9]))
    with pytest.raises(AssertionError, match="Mismatched elements: 1 / 2"):
        assert_close(np.array([1.0, 2.0]), np.array([1.0, 2.1]))
    with pytest.raises(TypeError, match="No comparison pair"):
        assert_close(dt.tensor([1.0]), np.array([1.0]))
