"""Shape ops. reshape, permute, expand and flip are views where the array library gives views
(they share the version counter of their base); the rest are composites of these."""
from __future__ import annotations

import numpy as np

from ..dispatch import KEEP, PROMOTE, call, defop
from ..tensor import Tensor, _norm_dim
from . import meta_rules as M
from . import samples as S
from ..geometry import broadcast_shapes
from ._api import public
from .inplace import track_view


def _inverse(perm):
    inv = [0] * len(perm)
    for i, p in enumerate(perm):
        inv[p] = i
    return tuple(inv)


# ---- meta rules ------------------------------------------------------------------------------
def _numel(shape):
    n = 1
    for s in shape:
        n *= s
    return n


def _reshape_meta(x, shape):
    if any(s < 0 for s in shape) or _numel(shape) != _numel(x.shape):
        raise RuntimeError(f"shape {list(shape)} is invalid for input of size {_numel(x.shape)} "
                           f"(shape {tuple(x.shape)})")
    return tuple(shape), x.dtype


def _permute_meta(x, dims):
    if sorted(dims) != list(range(len(x.shape))):
        raise RuntimeError(f"dims {list(dims)} are not a permutation of the {len(x.shape)} dims of the input")
    return tuple(x.shape[d] for d in dims), x.dtype


def _expand_meta(x, shape):
    if len(shape) < len(x.shape) or broadcast_shapes(tuple(x.shape), tuple(shape)) != tuple(shape):
        raise RuntimeError(f"the input of shape {list(x.shape)} cannot be expanded to {list(shape)}")
    return tuple(shape), x.dtype


def _cat_meta(*xs, dim):
    first = tuple(xs[0].shape)
    n = 0
    for x in xs:
        sh = tuple(x.shape)
        if len(sh) != len(first) or sh[:dim] + sh[dim + 1:] != first[:dim] + first[dim + 1:]:
            raise RuntimeError(f"sizes of tensors must match except in dimension {dim}: "
                               f"got {list(first)} and {list(sh)}")
        n += sh[dim]
    return first[:dim] + (n,) + first[dim + 1:], xs[0].dtype


def _pad_meta(x, widths, value):
    out = tuple(s + lo + hi for s, (lo, hi) in zip(x.shape, widths))
    if len(widths) != len(x.shape) or any(s < 0 for s in out):
        raise RuntimeError(f"padding {list(widths)} does not fit the input of shape {list(x.shape)}")
    return out, x.dtype


def _tri_meta(x, diagonal):
    if len(x.shape) < 2:
        raise RuntimeError(f"tril/triu: input tensor must have at least 2 dimensions, got shape {list(x.shape)}")
    return tuple(x.shape), x.dtype


_reshape = defop("reshape", rule=KEEP, meta=_reshape_meta, view=True, backward=lambda c, g: g.reshape(c.in_meta[0][0]),
                 ref=lambda x, shape: x.reshape(shape), samples=S.shape_ops("reshape"))
_permute = defop("permute", rule=KEEP, meta=_permute_meta, view=True, backward=lambda c, g: g.permute(_inverse(c.dims)),
                 ref=lambda x, dims: x.transpose(dims), samples=S.shape_ops("permute"))
_expand = defop("expand", rule=KEEP, meta=_expand_meta, view=True, backward=lambda c, g: g,  # the engine sums to shape
                ref=lambda x, shape: np.broadcast_to(x, shape), samples=S.shape_ops("expand"))
_flip = defop("flip", rule=KEEP, meta=M.same, view=True, backward=lambda c, g: g.flip(c.dims),
                ref=lambda x, dims: np.flip(x, dims), samples=S.shape_ops("flip"))
_contiguous = defop("contiguous", rule=KEEP, meta=M.same, backward=lambda c, g: g, ref=np.ascontiguousarray, samples=S.shape_ops("contiguous"))
_clone = defop("clone", rule=KEEP, meta=M.same, backward=lambda c, g: g, ref=np.copy, samples=S.shape_ops("clone"))


def _cat_backward(c, g):
    d = c.dim
    out, start = [], 0
    for m in c.in_meta:
        n = m[0][d]
        out.append(g.narrow(d, start, n))
        start += n
    return tuple(out)


_cat = defop("cat", ("*tensors",), rule=PROMOTE, meta=_cat_meta, backward=_cat_backward,
             ref=lambda *xs, dim: np.concatenate(xs, axis=dim), samples=S.shape_ops("cat"))


def _pad_backward(c, g):
    key = tuple(slice(lo, g.shape[i] - hi) for i, (lo, hi) in enumerate(c.widths))
    return g[key]


_pad = defop("pad", rule=KEEP, meta=_pad_meta, backward=_pad_backward, samples=S.shape_ops("pad"),
             ref=lambda x, widths, value: np.pad(x, widths, constant_values=value))
_tril = defop("tril", rule=KEEP, meta=_tri_meta, backward=lambda c, g: g.tril(c.diagonal),
                ref=lambda x, diagonal: np.tril(x, diagonal), samples=S.shape_ops("tril"))
_triu = defop("triu", rule=KEEP, meta=_tri_meta, backward=lambda c, g: g.triu(c.diagonal),
                ref=lambda x, diagonal: np.triu(x, diagonal), samples=S.shape_ops("triu"))


_REQ = object()


def dim_alias(name, dim, axis, default=None):
    """PyTorch's numpy-style alias axis= for dim."""
    if axis is None:
        return dim
    if dim is not default:
        raise TypeError(f"{name}: got multiple values for argument 'dim' (dim and its alias axis)")
    return axis


def _required(name, dim):
    if dim is _REQ:
        raise TypeError(f"{name}: missing the required argument 'dim'")
    return dim


def _shape_arg(shape):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    return tuple(int(s) for s in shape)


def _infer(op, shape, numel, cur):
    neg = [i for i, s in enumerate(shape) if s == -1]
    if len(neg) > 1:
        raise RuntimeError(f"{op}: only one dimension can be inferred (-1), got shape {list(shape)}")
    known = 1
    for s in shape:
        if s != -1:
            if s < 0:
                raise RuntimeError(f"{op}: invalid shape dimension {s} in {list(shape)}")
            known *= s
    if neg:
        if known == 0 or numel % known:
            raise RuntimeError(f"{op}: shape {list(shape)} is invalid for input of size {numel} (shape {cur})")
        shape = tuple(numel // known if s == -1 else s for s in shape)
    elif known != numel:
        raise RuntimeError(f"{op}: shape {list(shape)} is invalid for input of size {numel} (shape {cur})")
    return shape


@public(function=False, name="reshape")
def reshape(input, *shape):
    """Tensor.reshape(*shape) or Tensor.reshape(shape) (and the internal spelling used across devtensor)."""
    shape = _infer("reshape", _shape_arg(shape), input._data.size, tuple(input._data.shape))
    return track_view(call(_reshape, (input,), {"shape": shape}))


@public(method=False, name="reshape")
def reshape_fn(input, shape):
    """torch.reshape(input, shape): shape one sequence, as PyTorch's."""
    return reshape(input, _sequence("reshape", "shape", shape))


def _sequence(fn, name, v):
    if isinstance(v, (tuple, list)) or (hasattr(v, "__len__") and not isinstance(v, (str, Tensor))):
        return tuple(v)
    raise TypeError(f"{fn}: argument '{name}' (position 2) must be tuple of ints, not {type(v).__name__}")


@public(function=False)
def view(self, *shape):
    if len(shape) == 1 and not isinstance(shape[0], (tuple, list, int)):
        return self.to(shape[0])  # view(dtype) reinterpretation is not supported: casts instead
    shape = _infer("view", _shape_arg(shape), self._data.size, tuple(self._data.shape))  # errors say "view"
    return track_view(call(_reshape, (self,), {"shape": shape}))


@public(function=False)
def view_as(self, other):
    return reshape(self, other.shape)


@public(function=False)
def reshape_as(self, other):
    return reshape(self, other.shape)


@public(method=False, name="permute")
def permute_fn(input, dims):
    """torch.permute(input, dims): dims one sequence, as PyTorch's."""
    return permute(input, _sequence("permute", "dims", dims))


@public(function=False, name="permute")
def permute(input, *dims):
    dims = _shape_arg(dims)
    n = input._data.ndim
    if len(dims) != n:
        raise RuntimeError(f"permute: number of dims don't match: the input has {n} dims, got {list(dims)}")
    dims = tuple(_norm_dim(d, n, "permute") for d in dims)
    if len(set(dims)) != n:
        raise RuntimeError(f"permute: repeated dim in {list(dims)}")
    return track_view(call(_permute, (input,), {"dims": dims}))


@public
def transpose(input, dim0, dim1):
    n = input._data.ndim
    if n < 2 and n == 0:
        return input
    d0, d1 = _norm_dim(dim0, n, "transpose"), _norm_dim(dim1, n, "transpose")
    perm = list(range(n))
    perm[d0], perm[d1] = perm[d1], perm[d0]
    return track_view(call(_permute, (input,), {"dims": tuple(perm)}))


public(transpose, name="swapaxes")


@public
def t(input):
    if input.ndim > 2:
        raise RuntimeError(f"t() expects a tensor with <= 2 dimensions, but got {input.ndim}")
    return input if input.ndim < 2 else transpose(input, 0, 1)


Tensor.T = property(lambda self: permute(self, tuple(reversed(range(self.ndim)))))
Tensor.mT = property(lambda self: transpose(self, -2, -1))


@public(function=False)
def expand(self, *shape):
    shape = _shape_arg(shape)
    cur = self._data.shape
    if len(shape) < len(cur):
        raise RuntimeError(f"expand: the number of sizes provided ({len(shape)}) must be greater or equal "
                           f"to the number of dimensions in the tensor ({len(cur)})")
    lead = len(shape) - len(cur)
    out = []
    for i, s in enumerate(shape):
        c = cur[i - lead] if i >= lead else None
        if s == -1:
            if c is None:
                raise RuntimeError(f"expand: -1 is not allowed in a leading, non-existing dimension ({list(shape)})")
            s = c
        elif c is not None and c != 1 and c != s:
            raise RuntimeError(f"expand: the expanded size of the tensor ({s}) must match the existing size ({c}) "
                               f"at non-singleton dimension {i}. Target sizes: {list(shape)}. Tensor sizes: {list(cur)}")
        out.append(s)
    out = tuple(out)
    if out == cur:
        return self
    return track_view(call(_expand, (self,), {"shape": out}))


@public(function=False)
def expand_as(self, other):
    return expand(self, other.shape)


@public
def broadcast_to(input, shape):
    return expand(input, shape)


def _flip_dims(input, dims):
    dims = tuple(_norm_dim(d, input.ndim, "flip") for d in dims)
    if len(set(dims)) != len(dims):
        raise RuntimeError(f"flip: dim {dims} appears multiple times in the list of dims")
    # PyTorch's flip copies (the flipped array library view must not alias the input: an in-place op on
    # the result would change the input)
    return call(_clone, (call(_flip, (input,), {"dims": dims}),), {})


@public(function=False, name="flip")
def flip_method(self, *dims):
    """Tensor.flip(*dims) or Tensor.flip(dims)."""
    return _flip_dims(self, _shape_arg(dims))


@public(method=False)
def flip(input, dims):
    """torch.flip(input, dims): dims a sequence (or one int)."""
    return _flip_dims(input, (dims,) if isinstance(dims, int) else tuple(dims))


@public(function=False)
def contiguous(self):
    if self._data.flags.c_contiguous if hasattr(self._data, "flags") else True:
        return self
    return call(_contiguous, (self,), {})


@public(function=False)
def is_contiguous(self):
    return bool(self._data.flags.c_contiguous) if hasattr(self._data, "flags") else True


@public
def clone(input):
    return call(_clone, (input,), {})


@public
def flatten(input, start_dim=0, end_dim=-1):
    n = input.ndim
    if n == 0:
        return reshape(input, (1,))
    s, e = _norm_dim(start_dim, n, "flatten"), _norm_dim(end_dim, n, "flatten")
    if s > e:
        raise RuntimeError("flatten: start_dim cannot come after end_dim")
    shape = input._data.shape
    return reshape(input, shape[:s] + (-1 if input._data.size else int(np.prod(shape[s:e + 1])),) + shape[e + 1:])


@public
def unflatten(input, dim, sizes):
    d = _norm_dim(dim, input.ndim, "unflatten")
    shape = input._data.shape
    return reshape(input, shape[:d] + tuple(sizes) + shape[d + 1:])


@public
def squeeze(input, dim=None, *, axis=None):
    dim = dim_alias("squeeze", dim, axis)
    shape = input._data.shape
    if dim is None:
        new = tuple(s for s in shape if s != 1)
    else:
        dims = (dim,) if isinstance(dim, int) else tuple(dim)
        dims = {_norm_dim(d, len(shape), "squeeze") for d in dims}
        new = tuple(s for i, s in enumerate(shape) if not (i in dims and s == 1))
    return input if new == shape else reshape(input, new)


@public
def unsqueeze(input, dim=_REQ, *, axis=None):
    dim = _required("unsqueeze", dim_alias("unsqueeze", dim, axis, _REQ))
    shape = input._data.shape
    n = len(shape) + 1
    if not -n <= dim < n:
        raise IndexError(f"unsqueeze: dimension out of range (expected to be in range of [{-n}, {n - 1}], "
                         f"but got {dim})")
    d = dim % n
    return reshape(input, shape[:d] + (1,) + shape[d:])


@public
def cat(tensors, dim=0, *, axis=None):
    dim = dim_alias("cat", dim, axis, 0)
    tensors = list(tensors)
    if not tensors:
        raise RuntimeError("cat: expected a non-empty list of Tensors")
    # PyTorch skips legacy empty 1-d tensors in cat
    ts = [t for t in tensors if not (t.ndim == 1 and t.shape[0] == 0)] or tensors[:1]
    ref = ts[0]
    d = _norm_dim(dim, ref.ndim, "cat")
    for i, t in enumerate(ts):
        if t.ndim != ref.ndim or any(a != b for j, (a, b) in enumerate(zip(t.shape, ref.shape)) if j != d):
            raise RuntimeError(f"cat: sizes of tensors must match except in dimension {d}: tensor 0 has shape "
                               f"{list(ref.shape)} and tensor {i} has shape {list(t.shape)}")
    return call(_cat, tuple(ts), {"dim": d})


public(cat, name="concat")
public(cat, name="concatenate")


@public
def stack(tensors, dim=0, *, axis=None):
    dim = dim_alias("stack", dim, axis, 0)
    tensors = list(tensors)
    if not tensors:
        raise RuntimeError("stack: expected a non-empty list of Tensors")
    for i, t in enumerate(tensors):
        if t.shape != tensors[0].shape:
            raise RuntimeError(f"stack: expects each tensor to be equal size, but got {list(tensors[0].shape)} "
                               f"at entry 0 and {list(t.shape)} at entry {i}")
    n = tensors[0].ndim + 1
    d = _norm_dim(dim, n, "stack")
    return cat([unsqueeze(t, d) for t in tensors], d)


@public
def narrow(input, dim=_REQ, start=_REQ, length=_REQ, *, axis=None):
    dim = _required("narrow", dim_alias("narrow", dim, axis, _REQ))
    if start is _REQ or length is _REQ:
        raise TypeError("narrow: missing required arguments 'start' and 'length'")
    if input.ndim == 0:
        raise RuntimeError("narrow() cannot be applied to a 0-dim tensor.")
    d = _norm_dim(dim, input.ndim, "narrow")
    size = input._data.shape[d]
    if isinstance(start, Tensor):
        start = int(start.item())
    if not -size <= start <= size:
        raise IndexError(f"narrow: start out of range (expected to be in range of [{-size}, {size}], but got {start})")
    if start < 0:
        start += size
    if length < 0:
        raise RuntimeError(f"narrow: length must be non-negative, got {length}")
    if start + length > size:
        raise RuntimeError(f"narrow: start ({start}) + length ({length}) exceeds dimension size ({size}).")
    key = (slice(None),) * d + (slice(start, start + length),)
    return input[key]


@public
def split(tensor, split_size_or_sections, dim=0):
    d = _norm_dim(dim, tensor.ndim, "split")
    n = tensor.shape[d]
    if isinstance(split_size_or_sections, int):
        step = split_size_or_sections
        if step <= 0:
            raise ValueError(f"split: split_size must be positive, got {step}")
        sizes = [min(step, n - i) for i in range(0, n, step)] or [0]
    else:
        sizes = list(split_size_or_sections)
        if sum(sizes) != n:
            raise RuntimeError(f"split: split sizes {sizes} must sum to the size {n} of dimension {d}")
    out, start = [], 0
    for s in sizes:
        out.append(narrow(tensor, d, start, s))
        start += s
    return tuple(out)


@public
def chunk(input, chunks, dim=0, *, axis=None):
    dim = dim_alias("chunk", dim, axis, 0)
    if chunks <= 0:
        raise RuntimeError(f"chunk: chunk expects `chunks` to be greater than 0, got: {chunks}")
    d = _norm_dim(dim, input.ndim, "chunk")
    n = input.shape[d]
    if n == 0:  # PyTorch: `chunks` empty pieces
        return tuple(narrow(input, d, 0, 0) for _ in range(chunks))
    step = -(-n // chunks) if n else 1
    return split(input, step, dim)


@public
def unbind(input, dim=0, *, axis=None):
    dim = dim_alias("unbind", dim, axis, 0)
    d = _norm_dim(dim, input.ndim, "unbind")
    return tuple(squeeze(p, d) for p in split(input, 1, d))


@public(function=False)
def repeat(self, *sizes):
    sizes = _shape_arg(sizes)
    if len(sizes) < self.ndim:
        raise RuntimeError(f"repeat: number of repeat dims ({len(sizes)}) can not be smaller than the number "
                           f"of dimensions of the tensor ({self.ndim})")
    x = reshape(self, (1,) * (len(sizes) - self.ndim) + tuple(self.shape))
    inter, final = [], []
    for r, s in zip(sizes, x.shape):
        inter += [1, s]
        final.append(r * s)
    big = []
    for r, s in zip(sizes, x.shape):
        big += [r, s]
    out = reshape(expand(reshape(x, tuple(inter)), tuple(big)), tuple(final))
    return out if out._base is None else clone(out)  # PyTorch's repeat always copies


@public(method=False, name="tile")
def tile_fn(input, dims):
    """torch.tile(input, dims): dims one sequence, as PyTorch's."""
    return tile(input, _sequence("tile", "dims", dims))


@public(function=False, name="tile")
def tile(input, *dims):
    """Tensor.tile(*dims) or Tensor.tile(dims): repeat, with leading 1s when dims is shorter."""
    dims = _shape_arg(dims)
    if len(dims) < input.ndim:
        dims = (1,) * (input.ndim - len(dims)) + tuple(dims)
    return repeat(input, dims)


@public
def movedim(input, source, destination):
    n = input.ndim
    src, dst = _norm_dim(source, n, "movedim"), _norm_dim(destination, n, "movedim")
    order = [i for i in range(n) if i != src]
    order.insert(dst, src)
    return permute(input, tuple(order))


def _tri(op, name, input, diagonal):
    if input.ndim < 2:
        raise RuntimeError(f"{name}: input tensor must have at least 2 dimensions, got shape {list(input.shape)}")
    return call(op, (input,), {"diagonal": diagonal})


@public
def tril(input, diagonal=0):
    return _tri(_tril, "tril", input, diagonal)


@public
def triu(input, diagonal=0):
    return _tri(_triu, "triu", input, diagonal)


def pad(input, pad, mode="constant", value=None):
    """F.pad: `pad` lists (left, right) pairs starting from the LAST dimension, as in PyTorch."""
    if mode != "constant":
        raise NotImplementedError(f"pad: only mode='constant' is supported, got {mode!r}")
    if len(pad) % 2 or len(pad) // 2 > input.ndim:
        raise RuntimeError(f"pad: padding length {len(pad)} must be even and at most 2*ndim ({2 * input.ndim})")
    widths = [(0, 0)] * input.ndim
    for i in range(len(pad) // 2):
        lo, hi = int(pad[2 * i]), int(pad[2 * i + 1])
        if lo < 0 or hi < 0:
            raise NotImplementedError("pad: negative padding is not supported")
        widths[input.ndim - 1 - i] = (lo, hi)
    return call(_pad, (input,), {"widths": tuple(widths), "value": 0 if value is None else value})
