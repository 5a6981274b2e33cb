"""Arguments the numba / CUDA kernels must never see: every case raises a clear error naming
the op, checked by the op's meta rule above the kernels (so cpu, cuda and meta agree), and
PyTorch raises for the same input (where it is installed)."""
from __future__ import annotations

import numpy as np
import pytest

import devtensor as dt
import devtensor.nn.functional as F

try:
    import torch
    import torch.nn.functional as TF
except ImportError:  # pragma: no cover - the CI installs the CPU wheel
    torch = None

X = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)
W = np.random.default_rng(1).standard_normal((4, 3, 3, 3)).astype(np.float32)

CONV = [  # (kwargs, bias or None, error class, message pattern)
    (dict(padding=-1), None, RuntimeError, "negative padding"),
    (dict(dilation=-1), None, RuntimeError, "dilation should be greater than zero"),
    (dict(dilation=0), None, RuntimeError, "dilation should be greater than zero"),
    (dict(stride=0), None, RuntimeError, "non-positive stride"),
    (dict(groups=0), None, RuntimeError, "non-positive groups"),
    (dict(groups=2), None, RuntimeError, "channels"),
    (dict(), np.zeros(3, np.float32), RuntimeError, r"bias must have shape \(4,\)"),
    (dict(), np.zeros(5, np.float32), RuntimeError, r"bias must have shape \(4,\)"),
    (dict(), np.zeros((4, 1), np.float32), RuntimeError, r"bias must have shape \(4,\)"),
    (dict(), "view", RuntimeError, r"bias must have shape \(4,\).*got \[1\]"),
    (dict(dilation=5), None, RuntimeError, "too small"),
]


def _bias(lib, b):
    if b is None:
        return None
    if isinstance(b, str):  # a 1-element view into a longer storage, at an offset
        return lib.arange(10, dtype=lib.float32)[3:4]
    return lib.tensor(b)


@pytest.mark.parametrize("i", range(len(CONV)))
def test_conv2d_rejects_bad_arguments(i):
    kw, b, cls, pat = CONV[i]
    with pytest.raises(cls, match="conv2d: .*" + pat):
        F.conv2d(dt.tensor(X), dt.tensor(W), _bias(dt, b), **kw)
    with pytest.raises(cls, match="conv2d: .*" + pat):  # the meta device raises the same
        F.conv2d(dt.tensor(X).to("meta"), dt.tensor(W).to("meta"),
                 None if b is None else _bias(dt, b).to("meta"), **kw)
    if torch is not None:
        with pytest.raises(Exception):
            TF.conv2d(torch.tensor(X), torch.tensor(W), _bias(torch, b), **kw)


POOL = [  # (function name, args, kwargs, message pattern)
    ("max_pool2d", (0,), {}, "kernel_size must be greater than zero"),
    ("avg_pool2d", (0,), {}, "kernel_size must be greater than zero"),
    ("max_pool2d", (2,), dict(padding=-1), "padding must be non-negative"),
    ("max_pool2d", (2,), dict(dilation=0), "dilation must be greater than zero"),
    ("max_pool2d", (2,), dict(stride=0), "stride must be greater than zero"),
    ("max_pool2d", (3,), dict(padding=2), "pad should be at most half"),
    ("max_pool2d", (9,), {}, "Output size is too small"),
    ("avg_pool2d", (9,), {}, "Output size is too small"),
    ("avg_pool2d", (2,), dict(divisor_override=0), "divisor must be not zero"),
]


@pytest.mark.parametrize("i", range(len(POOL)))
def test_pooling_rejects_bad_arguments(i):
    name, args, kw, pat = POOL[i]
    for dev in ("cpu", "meta"):
        with pytest.raises(RuntimeError, match=f"{name}: .*{pat}"):
            getattr(F, name)(dt.tensor(X).to(dev), *args, **kw)
    if torch is not None:
        with pytest.raises(Exception):
            getattr(TF, name)(torch.tensor(X), *args, **kw)


@pytest.mark.parametrize("start,length", [(2, 5), (4, 0), (-4, 1), (0, -1)])
def test_narrow_out_of_range_raises_as_pytorch(start, length):
    with pytest.raises((RuntimeError, IndexError), match="narrow"):
        dt.ones(3).narrow(0, start, length)
    if torch is not None:
        with pytest.raises((RuntimeError, IndexError)):
            torch.ones(3).narrow(0, start, length)


@pytest.mark.parametrize("start,length", [(0, 3), (1, 2), (-1, 1), (3, 0), (-3, 3)])
def test_narrow_in_range_matches_slicing(start, length):
    x = np.arange(3.0)
    got = dt.tensor(x).narrow(0, start, length).numpy()
    s = start % 3 if start < 0 else start
    np.testing.assert_array_equal(got, x[s:s + length])


@pytest.mark.parametrize("g", [[1.0, 1.0], np.ones(2), 2.0])
def test_backward_with_a_non_tensor_gradient_is_a_type_error(g):
    x = dt.ones(2, requires_grad=True)
    with pytest.raises(TypeError, match="backward: gradients can be either Tensors or None"):
        (x * 2).backward(g)
    with pytest.raises(TypeError, match="grad: gradients can be either Tensors or None"):
        dt.autograd.grad(x * 2, x, grad_outputs=[g])


def test_backward_with_a_tensor_gradient_still_works():
    x = dt.ones(2, requires_grad=True)
    (x * 2).backward(dt.tensor([1.0, 3.0]))
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 6.0])


@pytest.mark.parametrize("name", ["gather", "scatter_add"])
@pytest.mark.parametrize("bad", [3, -1])
def test_gather_scatter_indices_out_of_range(name, bad):
    x = dt.zeros(2, 3)
    idx = dt.tensor([[0, bad], [1, 0]])
    # RuntimeError: PyTorch's class for gather / scatter_add (and what cuda's device-side check raises)
    with pytest.raises(RuntimeError, match=f"{name}: index {bad} is out of bounds for dimension 1 with size 3"):
        x.gather(1, idx) if name == "gather" else x.scatter_add(1, idx, dt.ones(2, 2))
