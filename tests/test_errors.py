"""The error catalogue: each bad input raises the exception class PyTorch raises, and the message
names the op and the shapes / dtypes / devices involved (never a bare numpy message)."""
from __future__ import annotations

import re

import numpy as np
import pytest

import devtensor as dt
import devtensor.nn.functional as F


def _freed_backward():
    x = dt.ones(3, requires_grad=True)
    y = x.exp().sum()
    y.backward()
    y.backward()


def _inplace_on_saved():
    x = dt.ones(3, requires_grad=True)
    h = x * 2
    y = h.exp()   # exp saves its output
    y.mul_(2)
    y.sum().backward()


def _inplace_on_saved_input():
    x = dt.ones(3, requires_grad=True)
    h = x * 2
    y = h.cos()   # cos saves its input
    h.add_(1)
    y.sum().backward()


def _setitem(t, key, value):
    t[key] = value


def _meta(*shape):
    return dt.ones(*shape, device="meta")


# (id, thunk, exception class, regexes the message must match: the op first, then shapes/dtypes/devices)
CATALOGUE = [
    # ---- shapes ------------------------------------------------------------------------------------
    ("add-shape", lambda: dt.ones(2, 3) + dt.ones(4, 5), RuntimeError, [r"^add:", r"\(2, ?3\)", r"\(4, ?5\)"]),
    ("mul-shape", lambda: dt.ones(2, 3) * dt.ones(3, 2), RuntimeError, [r"^mul:", r"\(2, ?3\)", r"\(3, ?2\)"]),
    ("sub-shape", lambda: dt.ones(2, 3) - dt.ones(4), RuntimeError, [r"^sub:", r"\(2, ?3\)", r"\(4,\)"]),
    ("div-shape", lambda: dt.ones(2, 3) / dt.ones(2), RuntimeError, [r"^div:", r"\(2, ?3\)", r"\(2,\)"]),
    ("where-shape", lambda: dt.where(dt.ones(2) > 0, dt.ones(3), dt.ones(4)), RuntimeError,
     [r"^where:", r"\(3,\)", r"\(4,\)"]),
    ("matmul-shape", lambda: dt.ones(2, 3) @ dt.ones(4, 5), RuntimeError, [r"^matmul:", r"2x3", r"4x5"]),
    ("matmul-vec-shape", lambda: dt.ones(3) @ dt.ones(4), RuntimeError, [r"^matmul:", r"\b3\b", r"\b4\b"]),
    ("matmul-batch", lambda: dt.ones(2, 2, 3) @ dt.ones(3, 3, 2), RuntimeError,
     [r"^matmul:", r"batch", r"\(2,\)", r"\(3,\)"]),
    ("matmul-0d", lambda: dt.tensor(1.0) @ dt.ones(2), RuntimeError, [r"^matmul:", r"at least 1 dimension"]),
    ("mm-ndim", lambda: dt.mm(dt.ones(3), dt.ones(3, 2)), RuntimeError, [r"^mm:", r"2-D", r"1-D"]),
    ("bmm-batch", lambda: dt.bmm(dt.ones(2, 3, 4), dt.ones(3, 4, 5)), RuntimeError,
     [r"^bmm:", r"\(2, 3, 4\)", r"\(3, 4, 5\)"]),
    ("linear-shape", lambda: F.linear(dt.ones(2, 3), dt.ones(4, 5)), RuntimeError, [r"^linear:", r"\(2, 3\)", r"\(4, 5\)"]),
    ("cat-shape", lambda: dt.cat([dt.ones(2, 3), dt.ones(4, 5)]), RuntimeError,
     [r"^cat:", r"\[2, 3\]", r"\[4, 5\]", r"dimension 0"]),
    ("cat-ndim", lambda: dt.cat([dt.ones(2, 3), dt.ones(3)], 1), RuntimeError, [r"^cat:", r"\[2, 3\]", r"\[3\]"]),
    ("cat-empty", lambda: dt.cat([]), RuntimeError, [r"^cat:", r"non-empty"]),
    ("stack-shape", lambda: dt.stack([dt.ones(2, 3), dt.ones(3, 2)]), RuntimeError,
     [r"^stack:", r"\[2, 3\]", r"\[3, 2\]"]),
    ("reshape-numel", lambda: dt.ones(2, 3).reshape(4, 2), RuntimeError,
     [r"^reshape:", r"\[4, 2\]", r"size 6", r"\(2, 3\)"]),
    ("reshape-two-inferred", lambda: dt.ones(6).reshape(-1, -1), RuntimeError, [r"^reshape:", r"\[-1, -1\]"]),
    ("view-numel", lambda: dt.ones(2, 3).view(5), RuntimeError, [r"^view:", r"\[5\]", r"size 6", r"\(2, 3\)"]),
    ("expand-size", lambda: dt.ones(2, 3).expand(4, 5), RuntimeError,
     [r"^expand:", r"\(4\)", r"\(2\)", r"\[4, 5\]", r"\[2, 3\]"]),
    ("expand-fewer", lambda: dt.ones(2, 3).expand(3), RuntimeError, [r"^expand:", r"\(1\)", r"\(2\)"]),
    ("permute-repeat", lambda: dt.ones(2, 3).permute(0, 0), RuntimeError, [r"^permute:", r"\[0, 0\]"]),
    ("permute-count", lambda: dt.ones(2, 3).permute(0), RuntimeError, [r"^permute:", r"2 dims", r"\[0\]"]),
    ("split-sizes", lambda: dt.ones(4).split([1, 2]), RuntimeError, [r"^split:", r"\[1, 2\]", r"size 4"]),
    ("inplace-broadcast", lambda: dt.ones(3).add_(dt.ones(2, 3)), RuntimeError, [r"^add_:", r"\[3\]", r"\[2, 3\]"]),
    ("setitem-shape", lambda: _setitem(dt.ones(3), slice(None), dt.ones(2)), RuntimeError,
     [r"index_put|setitem", r"\(2,\)", r"\(3,\)"]),
    ("conv2d-channels", lambda: F.conv2d(dt.ones(1, 3, 5, 5), dt.ones(2, 4, 3, 3)), RuntimeError,
     [r"^conv2d:", r"4 channels", r"3 channels", r"\[2, 4, 3, 3\]", r"\(1, 3, 5, 5\)"]),
    ("conv2d-kernel-too-big", lambda: F.conv2d(dt.ones(1, 3, 2, 2), dt.ones(2, 3, 3, 3)), RuntimeError,
     [r"^conv2d:", r"3x3", r"2x2"]),
    ("conv2d-ndim", lambda: F.conv2d(dt.ones(3, 5), dt.ones(2, 3, 3, 3)), RuntimeError,
     [r"^conv2d:", r"4-D", r"\(3, 5\)"]),
    ("conv2d-groups", lambda: F.conv2d(dt.ones(1, 4, 5, 5), dt.ones(2, 2, 3, 3), groups=3), RuntimeError,
     [r"^conv2d:", r"groups=3"]),
    ("max_pool2d-ndim", lambda: F.max_pool2d(dt.ones(2, 3), 2), RuntimeError, [r"^max_pool2d:", r"\[2, 3\]"]),
    # ---- dtypes ------------------------------------------------------------------------------------
    ("matmul-dtype", lambda: dt.ones(2, 3) @ dt.ones(3, 2, dtype=dt.float64), RuntimeError,
     [r"^matmul:", r"float32", r"float64"]),
    ("conv2d-dtype", lambda: F.conv2d(dt.ones(1, 3, 5, 5), dt.ones(2, 3, 3, 3, dtype=dt.float64)), TypeError,
     [r"^conv2d:", r"float32", r"float64"]),
    ("conv2d-int", lambda: F.conv2d(dt.ones(1, 3, 5, 5, dtype=dt.int64), dt.ones(2, 3, 3, 3)), TypeError,
     [r"^conv2d:", r"int64"]),
    ("inplace-int-float", lambda: dt.ones(3, dtype=dt.int64).add_(1.5), RuntimeError,
     [r"^add_:", r"float32", r"int64"]),
    ("requires-grad-int", lambda: dt.tensor([1, 2], requires_grad=True), RuntimeError,
     [r"requires_grad", r"floating point", r"int64"]),
    ("requires-grad-int-method", lambda: dt.ones(2, dtype=dt.int32).requires_grad_(), RuntimeError,
     [r"requires_grad", r"int32"]),
    ("add-str", lambda: dt.ones(2) + "a", TypeError, [r"^add:", r"str"]),
    ("softmax-int", lambda: F.softmax(dt.ones(2, 3, dtype=dt.int64), 1), NotImplementedError, [r"^softmax:", r"int64"]),
    ("tensor-strings", lambda: dt.tensor(["a", "b"]), TypeError, [r"dtype", r"supported"]),
    ("randn-int", lambda: dt.randn(2, dtype=dt.int64), TypeError, [r"^randn:", r"int64"]),
    # ---- devices -----------------------------------------------------------------------------------
    ("device-add", lambda: dt.ones(2, 3) + _meta(2, 3), RuntimeError, [r"^add:", r"cpu", r"meta"]),
    ("device-matmul", lambda: dt.ones(2, 3) @ _meta(3, 2), RuntimeError, [r"^matmul:", r"cpu", r"meta"]),
    ("device-cat", lambda: dt.cat([dt.ones(2), _meta(2)]), RuntimeError, [r"^cat:", r"cpu", r"meta"]),
    ("device-where", lambda: dt.where(_meta(2) > 0, dt.ones(2), dt.ones(2)), RuntimeError,
     [r"^where:", r"cpu", r"meta"]),
    ("device-index", lambda: dt.ones(3)[dt.tensor([0, 1], device="meta")], RuntimeError, [r"^index:", r"cpu", r"meta"]),
    ("device-meta-to-cpu", lambda: _meta(2).cpu(), RuntimeError, [r"meta", r"cpu"]),
    ("device-bad-string", lambda: dt.ones(2).to("gpu:0"), ValueError, [r"'gpu:0'", r"cpu, cuda, meta"]),
    # ---- autograd ----------------------------------------------------------------------------------
    ("backward-freed", _freed_backward, RuntimeError,
     [r"backward through the graph a second time", r"exp", r"retain_graph=True"]),
    ("inplace-on-saved-output", _inplace_on_saved, RuntimeError,
     [r"modified by an inplace operation", r"saved by exp", r"mul_", r"shape \(3,\)"]),
    ("inplace-on-saved-input", _inplace_on_saved_input, RuntimeError,
     [r"modified by an inplace operation", r"saved by cos", r"add_"]),
    ("inplace-leaf", lambda: dt.ones(2, requires_grad=True).mul_(2), RuntimeError,
     [r"^mul_:", r"leaf Variable that requires grad"]),
    ("backward-no-grad", lambda: dt.ones(2).sum().backward(), RuntimeError, [r"^backward:", r"does not require grad"]),
    ("backward-nonscalar", lambda: (dt.ones(2, requires_grad=True) * 2).backward(), RuntimeError,
     [r"^backward:", r"scalar outputs", r"\(2,\)"]),
    # ---- indexing ----------------------------------------------------------------------------------
    ("index-out-of-range", lambda: dt.ones(3)[5], IndexError, [r"^index:", r"index 5", r"size 3", r"\(3,\)"]),
    ("index-negative-out-of-range", lambda: dt.ones(3)[-4], IndexError, [r"^index:", r"-4", r"size 3"]),
    ("index-2d-out-of-range", lambda: dt.ones(3, 2)[1, 2], IndexError, [r"^index:", r"index 2", r"size 2", r"\(3, 2\)"]),
    ("index-tensor-out-of-range", lambda: dt.ones(3)[dt.tensor([0, 7])], IndexError, [r"^index:", r"7", r"size 3"]),
    ("index-too-many", lambda: dt.ones(3)[0, 0], IndexError, [r"^index:", r"too many indices", r"dimension 1",
                                                             r"\(3,\)"]),
    ("index-0d", lambda: dt.tensor(1.0)[0], IndexError, [r"^index:", r"too many indices", r"dimension 0"]),
    ("index-float-tensor", lambda: dt.ones(3)[dt.tensor([0.0, 1.0])], IndexError,
     [r"^index:", r"long, int, byte or bool", r"float32"]),
    ("index-float-scalar", lambda: dt.ones(3)[1.0], IndexError, [r"^index:", r"float"]),
    ("index-float-list", lambda: dt.ones(3)[[0.5, 1.0]], IndexError, [r"^index:", r"float64"]),
    ("index-bool-mask-shape", lambda: dt.ones(3)[dt.tensor([True, False])], IndexError,
     [r"^index:", r"boolean", r"\b3\b", r"\b2\b"]),
    ("index-negative-step", lambda: dt.ones(3)[::-1], ValueError, [r"^index:", r"step", r"flip"]),
    ("setitem-out-of-range", lambda: _setitem(dt.ones(3), 5, 1.0), IndexError, [r"index", r"5", r"size 3"]),
    ("setitem-too-many", lambda: _setitem(dt.ones(3), (0, 0), 1.0), IndexError, [r"^index:", r"too many indices"]),
    ("setitem-float-index", lambda: _setitem(dt.ones(3), dt.tensor([0.0]), 1.0), IndexError, [r"^index:", r"float32"]),
    ("gather-out-of-range", lambda: dt.ones(2, 3).gather(1, dt.tensor([[5]])), RuntimeError,
     [r"^gather:", r"5", r"dimension 1", r"size 3"]),
    ("gather-float-index", lambda: dt.ones(2, 3).gather(1, dt.tensor([[0.0]])), RuntimeError, [r"^gather:", r"float32"]),
    ("embedding-out-of-range", lambda: F.embedding(dt.tensor([5]), dt.ones(3, 2)), IndexError, [r"^embedding:", r"5", r"3"]),
    # ---- bad dims ----------------------------------------------------------------------------------
    ("sum-dim", lambda: dt.ones(2, 3).sum(2), IndexError, [r"^sum:", r"out of range", r"\[-2, 1\]", r"got 2"]),
    ("sum-dim-tuple", lambda: dt.ones(2, 3).sum((0, 5)), IndexError, [r"^sum:", r"got 5"]),
    ("sum-dim-repeated", lambda: dt.ones(2, 3).sum((1, -1)), RuntimeError, [r"^sum:", r"multiple times"]),
    ("sum-dim-type", lambda: dt.ones(2, 3).sum("a"), TypeError, [r"^sum:", r"'a'"]),
    ("mean-dim", lambda: dt.ones(2, 3).mean(-3), IndexError, [r"^mean:", r"got -3"]),
    ("amax-dim", lambda: dt.ones(2, 3).amax(3), IndexError, [r"^amax:", r"got 3"]),
    ("max-dim", lambda: dt.ones(2, 3).max(4), IndexError, [r"^max:", r"got 4"]),
    ("argmax-dim", lambda: dt.ones(2, 3).argmax(4), IndexError, [r"^argmax:", r"got 4"]),
    ("softmax-dim", lambda: F.softmax(dt.ones(2, 3), 2), IndexError, [r"^softmax:", r"\[-2, 1\]", r"got 2"]),
    ("log_softmax-dim", lambda: F.log_softmax(dt.ones(2, 3), -3), IndexError, [r"^log_softmax:", r"got -3"]),
    ("softmax-no-dim", lambda: dt.softmax(dt.ones(2, 3)), TypeError, [r"^softmax:", r"dim"]),  # (F.softmax warns)
    ("transpose-dim", lambda: dt.ones(2, 3).transpose(0, 2), IndexError, [r"^transpose:", r"got 2"]),
    ("squeeze-dim", lambda: dt.ones(2, 3).squeeze(3), IndexError, [r"^squeeze:", r"got 3"]),
    ("unsqueeze-dim", lambda: dt.ones(2, 3).unsqueeze(4), IndexError, [r"^unsqueeze:", r"\[-3, 2\]", r"got 4"]),
    ("cat-dim", lambda: dt.cat([dt.ones(2)], dim=1), IndexError, [r"^cat:", r"got 1"]),
    ("size-dim", lambda: dt.ones(2, 3).size(2), IndexError, [r"^size:", r"got 2"]),
    ("mean-int", lambda: dt.tensor([1, 2]).mean(), RuntimeError, [r"^mean", r"floating point", r"int64"]),
    # ---- losses ------------------------------------------------------------------------------------
    ("ce-float-target-shape", lambda: F.cross_entropy(dt.ones(4, 3), dt.ones(4, 2)), RuntimeError,
     [r"^cross_entropy:", r"shape", r"\(4, 3\)", r"\(4, 2\)"]),
    ("ce-float-target-1d", lambda: F.cross_entropy(dt.ones(4, 3), dt.tensor([0.0, 1.0, 1.0, 0.0])), RuntimeError,
     [r"^cross_entropy:", r"\(4, 3\)", r"\(4,\)"]),
    ("ce-class-out-of-range", lambda: F.cross_entropy(dt.ones(4, 3), dt.tensor([0, 1, 3, 0])), IndexError,
     [r"^cross_entropy:", r"target 3", r"3 classes"]),
    ("ce-negative-class", lambda: F.cross_entropy(dt.ones(4, 3), dt.tensor([0, -2, 1, 0])), IndexError,
     [r"^cross_entropy:", r"-2"]),
    ("ce-target-dtype", lambda: F.cross_entropy(dt.ones(4, 3), dt.tensor([True, False, True, True])), RuntimeError,
     [r"^cross_entropy:", r"int64", r"bool"]),
    ("ce-target-shape", lambda: F.cross_entropy(dt.ones(4, 3), dt.tensor([0, 1])), ValueError,
     [r"^cross_entropy:", r"\[4\]", r"\[4, 3\]", r"\[2\]"]),
    ("ce-int-input", lambda: F.cross_entropy(dt.ones(4, 3, dtype=dt.int64), dt.tensor([0, 1, 1, 1])), NotImplementedError,
     [r"^cross_entropy:", r"int64"]),
    ("nll-class-out-of-range", lambda: F.nll_loss(dt.ones(4, 3), dt.tensor([0, 1, 5, 0])), IndexError,
     [r"^nll_loss:", r"target 5", r"3 classes"]),
    ("bce-shape", lambda: F.binary_cross_entropy(dt.ones(3) * 0.5, dt.ones(4)), ValueError,
     [r"^binary_cross_entropy:", r"\[4\]", r"\[3\]"]),
    # ---- conversions -------------------------------------------------------------------------------
    ("item-multi", lambda: dt.ones(3).item(), RuntimeError, [r"^item:", r"3 elements"]),
    ("bool-multi", lambda: bool(dt.ones(3)), RuntimeError, [r"Boolean value of Tensor", r"3 elements", r"ambiguous"]),
    ("if-multi", lambda: 1 if dt.ones(2) > 0 else 0, RuntimeError, [r"Boolean value of Tensor", r"2 elements"]),
    ("numpy-requires-grad", lambda: dt.ones(2, requires_grad=True).numpy(), RuntimeError,
     [r"numpy\(\)", r"requires grad", r"detach"]),
    ("len-0d", lambda: len(dt.tensor(1.0)), TypeError, [r"len\(\)", r"0-d"]),
    ("index-float-tensor-as-int", lambda: [1, 2][dt.tensor(1.5)], TypeError, [r"integer tensors"]),
    ("tensor-ragged", lambda: dt.tensor([[1, 2], [3]]), ValueError, [r"^tensor:", r"ragged"]),
    ("arange-step-zero", lambda: dt.arange(0, 5, 0), RuntimeError, [r"^arange:", r"step"]),
    ("zeros-negative", lambda: dt.zeros(2, -1), RuntimeError, [r"^zeros:", r"negative", r"\[2, -1\]"]),
]


@pytest.mark.parametrize("case", CATALOGUE, ids=[c[0] for c in CATALOGUE])
def test_error_catalogue(case):
    name, thunk, cls, patterns = case
    with np.errstate(all="ignore"):
        with pytest.raises(cls) as ei:
            thunk()
    assert type(ei.value) is cls or isinstance(ei.value, cls)
    msg = str(ei.value)
    for p in patterns:
        assert re.search(p, msg), f"{name}: message {msg!r} does not match {p!r}"


def test_catalogue_ids_are_unique():
    ids = [c[0] for c in CATALOGUE]
    assert len(ids) == len(set(ids))


# numpy's own wording, which must never reach a user without the op's name in front of it
_NUMPY_PHRASES = ("operands could not be broadcast", "is out of bounds for axis", "could not broadcast input array",
                  "boolean index did not match", "matmul: Input operand", "cannot reshape array")


def test_no_bare_numpy_messages():
    for name, thunk, cls, patterns in CATALOGUE:
        try:
            with np.errstate(all="ignore"):
                thunk()
        except Exception as e:  # noqa: BLE001 - we inspect every message
            msg = str(e)
            for phrase in _NUMPY_PHRASES:
                if phrase in msg:
                    assert re.match(r"^[a-z_0-9]+: ", msg), f"{name}: numpy message without the op name: {msg!r}"
            assert "Traceback" not in msg
        else:
            pytest.fail(f"{name}: no error raised")


def test_errors_carry_argument_descriptions():
    """Errors raised from the table describe every tensor argument: shape, dtype and device."""
    with pytest.raises(RuntimeError) as ei:
        dt.ones(2, 3, dtype=dt.float64) + dt.ones(4, 5, dtype=dt.float64)
    msg = str(ei.value)
    assert "tensor(shape=(2, 3), dtype=float64, device=cpu)" in msg
    assert "tensor(shape=(4, 5), dtype=float64, device=cpu)" in msg


def test_error_leaves_no_partial_state():
    """A failed op neither bumps versions nor records graph nodes nor changes the tensor."""
    x = dt.ones(3, requires_grad=True)
    h = x * 2
    v = h._version
    with pytest.raises(RuntimeError):
        h.add_(dt.ones(2, 3))
    assert h._version == v and h.grad_fn.name() == "MulBackward"
    h.sum().backward()
    np.testing.assert_allclose(np.asarray(x.grad), [2.0, 2.0, 2.0])
