"""The cpu elementwise kernels (vector_math.py: jitted loops, split over the cores for large arrays):
the same results as numpy at every size, block edge, layout and dtype, NaN included."""
from __future__ import annotations

import numpy as np
import pytest

from devtensor.backends.cpu import vector_math as V

SIZES = [1, 1000, V._NUMBA_MIN - 1, V._NUMBA_MIN, V._SPLIT_MIN - 1, V._SPLIT_MIN, 3 * V._BLOCK + 7]


def _data(n, dtype):
    r = np.random.default_rng(n)
    x = r.standard_normal(n).astype(dtype)
    x[::5] = 0
    x[n // 2] = np.nan
    return x, r.standard_normal(n).astype(dtype)


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_and_its_backward_match_numpy(n, dtype):
    x, g = _data(n, dtype)
    y = V.relu(x)
    np.testing.assert_array_equal(y, np.maximum(x, 0))
    assert y.dtype == dtype
    out = np.maximum(x, 0)
    np.testing.assert_array_equal(V.relu_backward(g, out), np.where(out > 0, g, 0))


def test_non_contiguous_inputs_take_the_numpy_path():
    x, g = _data(4 * V._SPLIT_MIN, np.float32)
    xs, gs = x[::2], g[::2]
    np.testing.assert_array_equal(V.relu(xs), np.maximum(xs, 0))
    out = np.maximum(xs, 0)
    np.testing.assert_array_equal(V.relu_backward(gs, out), np.where(out > 0, gs, 0))


def test_shape_is_kept():
    x = np.random.default_rng(0).standard_normal((8, 64, 24, 24)).astype(np.float32)
    assert V.relu(x).shape == x.shape
    assert V.relu_backward(x, np.maximum(x, 0)).shape == x.shape


@pytest.mark.parametrize("dtype", [np.float16, np.int32, np.int64])
def test_other_dtypes_take_the_numpy_path(dtype):
    x = (np.arange(-2000, 2000) % 7 - 3).astype(dtype)
    np.testing.assert_array_equal(V.relu(x), np.maximum(x, 0))
    assert V.relu(x).dtype == dtype
