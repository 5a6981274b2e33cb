"""matmul (batched, broadcast; numpy's BLAS on cpu) and its spellings mm, bmm, mv, dot, linear."""
from __future__ import annotations

import numpy as np

from ..dispatch import KEEP, TENSOR_CLASSES, call, defop, op_error
from ..tensor import Tensor
from ._api import not_a_tensor, public
from .autocast import ACTIVE as _AMP
from .autocast import cast_args as _autocast
from ..geometry import broadcast_shapes


def _matmul_backward(c, g):
    a, b = c.a, c.b
    if a._data.dtype.kind == "c":  # PyTorch's convention: the conjugate transposes
        a, b = a.conj(), b.conj()
    ga = g @ b.mT if c.needs_input_grad(0) else None
    gb = a.mT @ g if c.needs_input_grad(1) else None
    return ga, gb  # the engine sums broadcast batch dims away


def _samples(dtype=np.float64):
    r = np.random.default_rng(5)
    M = lambda *s: r.standard_normal(s).astype(dtype)  # noqa: E731
    return [((M(3, 4), M(4, 5)), {}), ((M(2, 3, 4), M(4, 2)), {}), ((M(2, 1, 3, 4), M(5, 4, 2)), {}),
            ((M(5, 3).T, M(5, 4)), {}), ((M(0, 3), M(3, 2)), {}), ((M(3, 0), M(0, 2)), {})]


def _matmul_meta(a, b):
    if a.dtype.kind == "b":
        raise TypeError("matmul is not implemented for bool tensors (cast them with .float() or .long())")
    sa, sb = tuple(a.shape), tuple(b.shape)
    if not sa or not sb:
        raise RuntimeError(f"both arguments to matmul need to be at least 1D, but they are {len(sa)}D and {len(sb)}D")
    ka = sa[-1]
    kb = sb[0] if len(sb) == 1 else sb[-2]
    if ka != kb:
        raise RuntimeError(f"shapes {list(sa)} and {list(sb)} cannot be multiplied ({ka} != {kb})")
    if len(sa) == 1 and len(sb) == 1:
        return (), a.dtype
    if len(sa) == 1:
        return sb[:-2] + sb[-1:], a.dtype
    if len(sb) == 1:
        return sa[:-1], a.dtype
    return broadcast_shapes(sa[:-2], sb[:-2]) + (sa[-2], sb[-1]), a.dtype


def _linear_meta(x, w, b):
    sx, sw = tuple(x.shape), tuple(w.shape)
    if len(sw) != 2 or not sx or sx[-1] != sw[1]:
        raise RuntimeError(f"input's last dimension ({sx[-1] if sx else '0-d'}) must equal weight's in_features "
                           f"({sw[1] if len(sw) == 2 else sw})")
    if b is not None and tuple(b.shape) != (sw[0],):
        raise RuntimeError(f"bias must have shape ({sw[0]},), got {list(b.shape)}")
    return sx[:-1] + (sw[0],), x.dtype


_matmul = defop("matmul", ("a", "b"), rule=KEEP, meta=_matmul_meta, save=("a", "b"), backward=_matmul_backward,
                ref=np.matmul, samples=_samples, complex=True)


@public
def matmul(input, other):
    if _AMP[0]:  # inside an autocast region (one list read otherwise)
        input, other = _autocast("matmul", input, other)
    # the common case first (Tensors of one dtype, >= 2-D, inner dims matching, equal batch dims):
    # the full checks below cost more than the rest of the call on a small product
    if input.__class__ in TENSOR_CLASSES and other.__class__ in TENSOR_CLASSES:
        sa, sb = input._data.shape, other._data.shape
        if (len(sa) >= 2 and len(sb) >= 2 and sa[-1] == sb[-2] and sa[:-2] == sb[:-2]
                and input._data.dtype is other._data.dtype and input._data.dtype.kind != "b"):
            return call(_matmul, (input, other), {})
    return _matmul_checked(input, other)


def _matmul_checked(input, other):
    if not isinstance(other, Tensor) or not isinstance(input, Tensor):
        raise TypeError(f"matmul: both arguments must be Tensors, got {type(input).__name__} and "
                        f"{type(other).__name__}")
    if input.dtype is not other.dtype:
        raise op_error("matmul", f"expected both operands to have the same dtype, but got {input.dtype.name} "
                       f"and {other.dtype.name} (convert one with .to(dtype))", (input, other))
    a, b = input, other
    if a._data.dtype.kind == "b":
        raise op_error("matmul", "not implemented for bool tensors (cast them with .float() or .long())",
                       (input, other), TypeError)
    if a.ndim == 0 or b.ndim == 0:
        raise op_error("matmul", "both arguments need at least 1 dimension", (a, b))
    sa, sb = a._data.shape, b._data.shape
    squeeze_a = a.ndim == 1
    squeeze_b = b.ndim == 1
    if squeeze_a:
        a = a.reshape(1, -1)
    if squeeze_b:
        b = b.reshape(-1, 1)
    if a._data.shape[-1] != b._data.shape[-2]:
        raise op_error("matmul", f"shapes cannot be multiplied ({_mat(sa)} and {_mat(sb)}): inner dimensions "
                       f"{a._data.shape[-1]} and {b._data.shape[-2]} differ", (input, other))
    ba, bb = a._data.shape[:-2], b._data.shape[:-2]
    if ba != bb and ba and bb:  # np.broadcast_shapes is slow: only where batches differ
        try:
            np.broadcast_shapes(ba, bb)
        except ValueError:
            raise op_error("matmul", f"batch dimensions {sa[:-2]} and {sb[:-2]} cannot be broadcast",
                           (input, other)) from None
    out = call(_matmul, (a, b), {})
    if squeeze_a and squeeze_b:
        return out.reshape(())
    if squeeze_a:
        return out.squeeze(-2)
    if squeeze_b:
        return out.squeeze(-1)
    return out


def _mat(s):
    return "x".join(str(d) for d in s)


Tensor.__matmul__ = matmul
Tensor.__rmatmul__ = lambda self, other: matmul(other, self)


def _linear_backward(c, g):
    # shapes were checked by the forward, so the matmul kernel is called directly (no matmul()
    # checks) and a 2-D batch (the common case) needs no reshapes: 4 fewer op calls per layer
    x, w = c.x, c.w
    gx = call(_matmul, (g, w), {}) if c.needs_input_grad(0) else None  # (..., out) @ (out, in)
    if g.ndim != 2:
        n_out, n_in = w.shape
        g, x = g.reshape(-1, n_out), x.reshape(-1, n_in)
    gw = call(_matmul, (g.mT, x), {}) if c.needs_input_grad(1) else None
    gb = g.sum(0) if c.needs_input_grad(2) else None
    return gx, gw, gb


def _linear_samples(dtype=np.float64):
    r = np.random.default_rng(12)
    M = lambda *s: r.standard_normal(s).astype(dtype)  # noqa: E731
    return [((M(4, 3), M(5, 3), M(5)), {}), ((M(2, 4, 3), M(5, 3), None), {}), ((M(0, 3), M(2, 3), M(2)), {}),
            ((M(3, 4).T, M(2, 3), M(2)), {})]


# x @ w.T + b as ONE op: nn.Linear's forward and backward then need no transposes, no broadcast
# add and no engine sum_to for the bias (about ten fewer op calls per layer per step)
_linear = defop("linear", ("x", "w", "b"), rule=KEEP, meta=_linear_meta, save=("x", "w"), backward=_linear_backward,
                ref=lambda x, w, b: x @ w.T + (0 if b is None else b), samples=_linear_samples)


def linear(input, weight, bias=None):
    """F.linear: input (..., in) @ weight.T (weight (out, in)) + bias (out,)."""
    if _AMP[0]:
        input, weight, bias = _autocast("linear", input, weight, bias)
    # the common case first (nn.Linear's: Tensors of one dtype, shapes that fit), as matmul
    if input.__class__ in TENSOR_CLASSES and weight.__class__ in TENSOR_CLASSES:  # Parameter is one
        xd, wd = input._data, weight._data
        sx, sw = xd.shape, wd.shape
        if (len(sw) == 2 and sx and sx[-1] == sw[1] and xd.dtype is wd.dtype and xd.dtype.kind != "b"
                and (bias is None or (bias.__class__ in TENSOR_CLASSES and bias._data.dtype is xd.dtype
                                      and bias._data.shape == sw[:1]))):
            return call(_linear, (input, weight, bias), {})
    return _linear_checked(input, weight, bias)


def _linear_checked(input, weight, bias):
    for pos, (name, t) in enumerate((("input", input), ("weight", weight))):
        if not isinstance(t, Tensor):
            raise not_a_tensor("linear", name, pos + 1, t)
    if weight.ndim == 1:  # PyTorch's 1-D weight: a dot product over the last dim
        if input.ndim == 0 or input.shape[-1] != weight.shape[0]:
            raise op_error("linear", f"input's last dimension ({input.shape[-1] if input.ndim else '0-d'}) must "
                           f"equal the 1-D weight's size ({weight.shape[0]})", (input, weight))
        return matmul(input, weight) + bias if bias is not None else matmul(input, weight)
    if weight.ndim != 2:
        raise op_error("linear", f"weight must be 1-D or 2-D (out_features, in_features), got shape "
                       f"{list(weight.shape)}", (input, weight))
    if input.ndim == 0 or input.shape[-1] != weight.shape[1]:
        raise op_error("linear", f"input's last dimension ({input.shape[-1] if input.ndim else '0-d'}) must equal "
                       f"weight's in_features ({weight.shape[1]})", (input, weight))
    dts = {input.dtype, weight.dtype} | ({bias.dtype} if bias is not None else set())
    if len(dts) != 1:  # PyTorch: RuntimeError "mat1 and mat2 must have the same dtype"
        raise op_error("linear", "expected input, weight and bias of one dtype, got "
                       + ", ".join(sorted(d.name for d in dts)), (input, weight, bias), RuntimeError)
    if bias is not None and tuple(bias.shape) != (weight.shape[0],):
        raise op_error("linear", f"bias must have shape ({weight.shape[0]},), got {list(bias.shape)}",
                       (weight, bias))
    return call(_linear, (input, weight, bias), {})


@public
def mm(input, mat2):
    if input.ndim != 2 or mat2.ndim != 2:
        raise op_error("mm", f"expected 2-D tensors, got {input.ndim}-D and {mat2.ndim}-D", (input, mat2))
    return matmul(input, mat2)


@public
def bmm(input, mat2):
    if input.ndim != 3 or mat2.ndim != 3 or input.shape[0] != mat2.shape[0]:
        raise op_error("bmm", "expected 3-D tensors with the same batch size", (input, mat2))
    return matmul(input, mat2)


@public
def mv(input, vec):
    if _AMP[0]:  # on cuda's autocast list, not on cpu's: not matmul's cast
        input, vec = _autocast("mv", input, vec)
    return _matmul_checked(input, vec)


@public
def dot(input, other):
    if input.ndim != 1 or other.ndim != 1:
        raise op_error("dot", "expected 1-D tensors", (input, other))
    return _matmul_checked(input, other)  # not matmul's autocast: dot is on neither list


@public
def outer(input, vec2):
    return input.reshape(-1, 1) * vec2.reshape(1, -1)
