"""Linear algebra beyond matmul: einsum, diagonal, diag_embed and the decompositions (ops whose backward rules
are PyTorch's formulas in Tensor ops, so they differentiate again), and tensordot, addmm, addbmm, baddbmm,
kron, cdist, diag, trace and the linalg functions written in them. devtensor/linalg.py is the
devtensor.linalg namespace (torch.linalg's names).

Where PyTorch reads one triangle of a symmetric input (cholesky, eigh), the public function builds the
symmetric matrix from that triangle with the gradient passed through unchanged, and the op (which sees a
symmetric matrix) returns PyTorch's symmetric gradient: values and gradients are PyTorch's.
diagonal() returns a copy here, not a view (writing into it does not write into its input).
The decompositions and solvers (and det, inverse, ...) are declared in linalg_decomp.py."""
from __future__ import annotations

import string

import numpy as np

from .. import dtypes as _dt
from ..dispatch import KEEP, call, defop
from ..geometry import broadcast_shapes
from ..tensor import Tensor, _norm_dim
from ._api import FUNCTIONS, composite, public
from .autocast import ACTIVE as _AMP
from .autocast import cast_args as _autocast
from .autocast import autocast_as as _autocast_as

__all__ = ["einsum", "tensordot", "addmm", "addbmm", "baddbmm", "kron", "cdist", "diag", "diagonal", "diag_embed",
           "trace"]


def _E():
    from . import elementwise as E

    return E


def _mT(x):
    return x.transpose(-2, -1)


def _eye_like(x, n):
    from .creation import eye

    return eye(n, dtype=x.dtype, device=x.device)


# ==== einsum ===========================================================================================
_LETTERS = string.ascii_letters


def _parse_einsum(equation, shapes):
    """The equation with every '...' written out in letters and the output explicit, and each letter's
    size (size-1 dims broadcast, as PyTorch)."""
    eq = equation.replace(" ", "")
    if "->" in eq:
        lhs, out = eq.split("->")
        explicit = True
    else:
        lhs, out, explicit = eq, None, False
    terms = lhs.split(",")
    if len(terms) != len(shapes):
        raise RuntimeError("einsum(): more operands were provided than specified in the equation"
                           if len(shapes) > len(terms) else
                           "einsum(): fewer operands were provided than specified in the equation")
    used = set(c for c in eq if c.isalpha())
    free = [c for c in _LETTERS if c not in used]
    ell_dims = 0
    for t, s in zip(terms, shapes):
        if "..." in t:
            ell_dims = max(ell_dims, len(s) - (len(t) - 3))
    ell = free[:ell_dims]
    new_terms = []
    for t, s in zip(terms, shapes):
        for c in t.replace("...", ""):
            if not c.isalpha():
                raise RuntimeError(f"einsum(): invalid subscript given at index {eq.index(c)} in the equation string, "
                                   "subscripts must be in [a-zA-Z]")
        if "..." in t:
            k = len(s) - (len(t) - 3)
            if k < 0:
                raise RuntimeError(f"einsum(): the number of subscripts in the equation ({len(t) - 3}) is more than "
                                   f"the number of dimensions ({len(s)}) for operand")
            t = t.replace("...", "".join(ell[ell_dims - k:]))
        if len(t) != len(s):
            raise RuntimeError(f"einsum(): the number of subscripts in the equation ({len(t)}) does not match the "
                               f"number of dimensions ({len(s)}) for operand and no ellipsis was given")
        new_terms.append(t)
    if explicit:
        out = out.replace("...", "".join(ell))
        for c in out:
            if c not in "".join(new_terms):
                raise RuntimeError(f"einsum(): output subscript {c} does not appear in the equation for any input "
                                   "operand")
    else:
        counts = {}
        for t in new_terms:
            for c in t:
                counts[c] = counts.get(c, 0) + 1
        out = "".join(ell) + "".join(sorted((c for c, n in counts.items() if n == 1 and c not in ell),
                                            key=lambda c: (c.isupper(), c)))
    sizes = {}
    for t, s in zip(new_terms, shapes):
        for c, n in zip(t, s):
            m = sizes.get(c)
            if m is None or m == 1:
                sizes[c] = n
            elif n != 1 and n != m:
                raise RuntimeError(f"einsum(): operands do not broadcast with remapped shapes (original->remapped): "
                                   f"subscript {c} has size {n} for an operand and {m} for another")
    return new_terms, out, sizes


def _einsum_meta(a, b, equation):
    terms, out = equation.split("->")
    terms = terms.split(",")
    sizes = {}
    for t, x in zip(terms, (a, b) if b is not None else (a,)):
        if len(t) != len(x.shape):
            raise RuntimeError(f"einsum(): the number of subscripts in the equation ({len(t)}) does not match the "
                               f"number of dimensions ({len(x.shape)}) for operand")
        for c, n in zip(t, x.shape):
            if sizes.setdefault(c, n) != n:
                raise RuntimeError(f"einsum(): subscript {c} has size {n} for an operand and {sizes[c]} for another")
    return tuple(sizes[c] for c in out), a.dtype


def _contract(terms, out, ops):
    """An einsum of any number of operands as a chain of one- and two-operand einsum ops (PyTorch contracts
    pairwise too), each keeping only the letters still needed."""
    cur_t, cur = terms[0], ops[0]
    n = len(ops)
    if n == 1:
        return call(einsum_, (cur, None), {"equation": f"{cur_t}->{out}"})
    for j in range(1, n):
        if j == n - 1:
            keep = out
        else:
            later = set(out) | set("".join(terms[j + 1:]))
            keep = "".join(ch for ch in dict.fromkeys(cur_t + terms[j]) if ch in later)
        cur = call(einsum_, (cur, ops[j]), {"equation": f"{cur_t},{terms[j]}->{keep}"})
        cur_t = keep
    return cur


def _einsum_backward(c, g):
    from .creation import ones

    terms, out = c.equation.split("->")
    terms = terms.split(",")
    ops = [c.a] if c.b is None else [c.a, c.b]
    sizes = {}
    for t, x in zip(terms, ops):
        for ch, n in zip(t, x.shape):
            sizes[ch] = n
    grads = []
    for k, tk in enumerate(terms):
        if not c.needs_input_grad(k):
            grads.append(None)
            continue
        inputs, subs = [g], [out]
        for j, (tj, x) in enumerate(zip(terms, ops)):
            if j != k:
                inputs.append(x)
                subs.append(tj)
        used = set("".join(subs)) | set(tk) | set(c.equation)
        fresh = iter(ch for ch in _LETTERS if ch not in used)
        target, seen = [], set()
        for ch in tk:
            if ch in seen:  # a repeated subscript (a diagonal): a fresh letter tied to it by an identity
                f = next(fresh)
                target.append(f)
                inputs.append(_eye_like(g, sizes[ch]))
                subs.append(ch + f)
            else:
                seen.add(ch)
                target.append(ch)
        present = set("".join(subs))
        for ch in dict.fromkeys(target):
            if ch not in present:  # summed in the forward and in no other operand: broadcast back with ones
                inputs.append(ones(sizes[ch], dtype=g.dtype, device=g.device))
                subs.append(ch)
        grads.append(_contract(subs, "".join(target), inputs))
    return tuple(grads) if len(grads) == 2 else (grads[0], None)


def _einsum_ref(a, b, equation):
    return np.einsum(equation, a) if b is None else np.einsum(equation, a, b)


def _einsum_samples(dtype=np.float64):
    r = np.random.default_rng(80)
    A = lambda *s: r.standard_normal(s).astype(dtype)  # noqa: E731
    return [((A(3, 4), A(4, 5)), {"equation": "ij,jk->ik"}), ((A(2, 3, 4), A(2, 4, 3)), {"equation": "bij,bjk->bik"}),
            ((A(4, 4), None), {"equation": "ii->i"}), ((A(4, 4), None), {"equation": "ii->"}),
            ((A(3, 5), None), {"equation": "ij->j"}), ((A(3), A(4)), {"equation": "i,j->ij"}),
            ((A(2, 3), A(2, 3)), {"equation": "ij,ij->i"}), ((A(3, 3, 2), None), {"equation": "iij->ji"}),
            ((A(3, 4), A(5)), {"equation": "ij,k->ikj"}), ((A(0, 3), A(3, 2)), {"equation": "ij,jk->ik"})]


einsum_ = defop("einsum", ("a", "b"), rule=KEEP, meta=_einsum_meta, save=("a", "b"),
                backward=_einsum_backward, ref=_einsum_ref, samples=_einsum_samples)


@public(method=False)
def einsum(equation, *operands):
    """Einstein summation with PyTorch's rules: '...' broadcasts, size-1 dimensions broadcast, an implicit
    output lists the letters used once in alphabetical order."""
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    if _AMP[0]:
        operands = _autocast("einsum", *operands)
    if not isinstance(equation, str):  # einsum(op0, sublist0, op1, sublist1, ..., [out]): PyTorch's sublist form
        return _einsum_sublist(equation, *operands)
    for t in operands:
        if not isinstance(t, Tensor):
            raise TypeError(f"einsum(): operands must be Tensors, not {type(t).__name__}")
    terms, out, sizes = _parse_einsum(equation, [tuple(t.shape) for t in operands])
    dt = operands[0].dtype
    for t in operands[1:]:
        dt = _dt.promote_types(dt, t.dtype)
    ops = []
    for t, s in zip(operands, terms):
        want = tuple(sizes[c] for c in s)
        t = t.to(dt)
        ops.append(t.expand(want) if tuple(t.shape) != want else t)
    return _contract(terms, out, ops)


def _einsum_sublist(*args):
    out = None
    if len(args) % 2 == 1:  # the last sublist is the output's
        out, args = args[-1], args[:-1]
    ops, subs = list(args[0::2]), list(args[1::2])
    if len(subs) != len(ops):
        raise RuntimeError("einsum(): sublist format needs a sublist per operand")

    def letters(sub):
        return "".join("..." if s is Ellipsis else _LETTERS[s] for s in sub)

    eq = ",".join(letters(s) for s in subs[:len(ops)])
    if out is not None:
        eq += "->" + letters(out)
    return einsum(eq, *ops)


# ==== diagonal / diag_embed ==================================================================================
def _diag_len(n1, n2, offset):
    return max(0, min(n1, n2 - offset)) if offset >= 0 else max(0, min(n1 + offset, n2))


def _diagonal_meta(x, offset, dim1, dim2):
    s = tuple(x.shape)
    if dim1 == dim2:
        raise RuntimeError(f"diagonal dimensions cannot be identical {dim1}, {dim2}")
    rest = tuple(n for i, n in enumerate(s) if i not in (dim1, dim2))
    return rest + (_diag_len(s[dim1], s[dim2], offset),), x.dtype


def _diag_embed_meta(x, offset, dim1, dim2):
    nd = len(x.shape) + 1
    if dim1 == dim2:
        raise RuntimeError(f"diagonal dimensions cannot be identical {dim1}, {dim2}")
    n = x.shape[-1] + abs(offset)
    it = iter(x.shape[:-1])
    return tuple(n if i in (dim1, dim2) else next(it) for i in range(nd)), x.dtype


def _ref_diagonal(x, offset, dim1, dim2):
    return np.diagonal(x, offset, dim1, dim2).copy()


def _ref_diag_embed(x, offset, dim1, dim2):
    n = x.shape[-1] + abs(offset)
    nd = x.ndim + 1
    lead = list(x.shape[:-1])
    it = iter(lead)
    shape = tuple(n if i in (dim1, dim2) else next(it) for i in range(nd))
    out = np.zeros(shape, dtype=x.dtype)
    b = np.moveaxis(out, (dim1, dim2), (-2, -1))
    k = x.shape[-1]
    rows = np.arange(k) + max(0, -offset)
    b[..., rows, rows + offset] = x
    return out


def _diagonal_samples(dtype=np.float64):
    x = np.random.default_rng(81).standard_normal((3, 4, 5)).astype(dtype)
    return [((x,), {"offset": 0, "dim1": 1, "dim2": 2}), ((x,), {"offset": 2, "dim1": 1, "dim2": 2}),
            ((x,), {"offset": -1, "dim1": 2, "dim2": 0}), ((x.transpose(2, 1, 0),), {"offset": 0, "dim1": 0, "dim2": 1}),
            ((x,), {"offset": 7, "dim1": 0, "dim2": 2})]


def _diag_embed_samples(dtype=np.float64):
    x = np.random.default_rng(82).standard_normal((2, 3)).astype(dtype)
    return [((x,), {"offset": 0, "dim1": 1, "dim2": 2}), ((x,), {"offset": 1, "dim1": 1, "dim2": 2}),
            ((x,), {"offset": -2, "dim1": 0, "dim2": 2}), ((x[0],), {"offset": 0, "dim1": 0, "dim2": 1})]


def _diagonal_backward_samples(dtype=np.float64):
    g = np.random.default_rng(83).standard_normal((3, 4)).astype(dtype)
    return [((g,), {"shape": (3, 4, 5), "offset": 0, "dim1": 1, "dim2": 2}),
            ((g[:, :3],), {"shape": (3, 4, 5), "offset": 2, "dim1": 1, "dim2": 2})]


def _ref_diagonal_backward(g, shape, offset, dim1, dim2):
    out = np.zeros(shape, dtype=g.dtype)
    b = np.moveaxis(out, (dim1, dim2), (-2, -1))
    k = g.shape[-1]
    rows = np.arange(k) + max(0, -offset)
    b[..., rows, rows + offset] = g
    return out


diagonal_backward_ = defop("diagonal_backward", ("g",), rule=KEEP,
                           meta=lambda g, shape, offset, dim1, dim2: (tuple(shape), g.dtype),
                           backward=lambda c, gg: call(diagonal_, (gg,), {"offset": c.offset, "dim1": c.dim1,
                                                                          "dim2": c.dim2}),
                           ref=_ref_diagonal_backward, samples=_diagonal_backward_samples)
diagonal_ = defop("diagonal", rule=KEEP, meta=_diagonal_meta,
                  backward=lambda c, g: call(diagonal_backward_, (g,), {"shape": c.in_meta[0][0], "offset": c.offset,
                                                                         "dim1": c.dim1, "dim2": c.dim2}),
                  ref=_ref_diagonal, samples=_diagonal_samples)
diag_embed_ = defop("diag_embed", rule=KEEP, meta=_diag_embed_meta,
                    backward=lambda c, g: call(diagonal_, (g,), {"offset": c.offset, "dim1": c.dim1, "dim2": c.dim2}),
                    ref=_ref_diag_embed, samples=_diag_embed_samples)


@public
def diagonal(input, offset=0, dim1=0, dim2=1):
    """The diagonal of the (dim1, dim2) planes, as the last dimension (a copy: PyTorch returns a view)."""
    if input.ndim < 2:
        raise RuntimeError(f"diagonal(): expected a tensor with at least 2 dimensions, got {input.ndim}")
    d1, d2 = _norm_dim(dim1, input.ndim, "diagonal"), _norm_dim(dim2, input.ndim, "diagonal")
    return call(diagonal_, (input,), {"offset": int(offset), "dim1": d1, "dim2": d2})


@public
def diag_embed(input, offset=0, dim1=-2, dim2=-1):
    """Matrices (in dims dim1, dim2 of the output) whose offset-diagonal is input's last dimension."""
    nd = input.ndim + 1
    d1, d2 = _norm_dim(dim1, nd, "diag_embed"), _norm_dim(dim2, nd, "diag_embed")
    x = input.reshape(1) if input.ndim == 0 else input
    return call(diag_embed_, (x,), {"offset": int(offset), "dim1": d1, "dim2": d2})


def _ref_diag(input, diagonal=0):
    return np.diag(input, diagonal)


def _diag_samples(dtype=np.float64):
    r = np.random.default_rng(84)
    return [((r.standard_normal(4).astype(dtype),), {}), ((r.standard_normal(3).astype(dtype),), {"diagonal": -2}),
            ((r.standard_normal((3, 5)).astype(dtype),), {}), ((r.standard_normal((3, 5)).astype(dtype),),
                                                               {"diagonal": 2})]


@composite(ref=_ref_diag, samples=_diag_samples, torch="torch.diag")
@public
def diag(input, diagonal=0):
    """1-D input: the square matrix with it on the diagonal-th diagonal; 2-D: that diagonal."""
    if input.ndim == 1:
        return diag_embed(input, diagonal, 0, 1)
    if input.ndim == 2:
        return globals()["diagonal"](input, diagonal, 0, 1)
    raise RuntimeError(f"diag(): Supports 1D or 2D tensors. Got {input.ndim}D")


def _trace_samples(dtype=np.float64):
    r = np.random.default_rng(85)
    return [((r.standard_normal((4, 4)).astype(dtype),), {}), ((r.standard_normal((3, 5)).astype(dtype),), {}),
            ((r.standard_normal((5, 2)).astype(dtype).T,), {})]


@composite(ref=lambda input: np.asarray(np.trace(input)), samples=_trace_samples, torch="torch.trace")
@public
def trace(input):
    """The sum of a 2-D tensor's main diagonal."""
    if input.ndim != 2:
        raise RuntimeError(f"trace: expected a matrix, but got tensor with dim {input.ndim}")
    if not input.dtype.is_floating_point:
        return diagonal(input).sum()
    return diagonal(input).sum()


# ==== products ==============================================================================================
def _tensordot_samples(dtype=np.float64):
    r = np.random.default_rng(86)
    A = lambda *s: r.standard_normal(s).astype(dtype)  # noqa: E731
    return [((A(3, 4, 5), A(4, 5, 2)), {}), ((A(3, 4), A(4, 2)), {"dims": 1}), ((A(3, 4, 5), A(5, 3, 2)),
                                                                                  {"dims": ([0, 2], [1, 0])}),
            ((A(3, 2), A(4, 5)), {"dims": 0})]


def _ref_tensordot(a, b, dims=2):
    return np.tensordot(a, b, axes=dims)


@public(method=False)
def tensordot(a, b, dims=2):
    """Contract the last `dims` dims of a with the first of b, or the listed dims ([a dims], [b dims])."""
    if isinstance(dims, Tensor):
        dims = dims.tolist()
    if isinstance(dims, int):
        if dims < 0:
            raise RuntimeError(f"tensordot expects dims >= 0, but got dims={dims}")
        da = list(range(a.ndim - dims, a.ndim))
        db = list(range(dims))
    else:
        da, db = ([d] if isinstance(d, int) else list(d) for d in dims)
    if len(da) != len(db):
        raise RuntimeError("both dimension lists should have same length")
    da = [_norm_dim(d, a.ndim, "tensordot") for d in da]
    db = [_norm_dim(d, b.ndim, "tensordot") for d in db]
    for i, j in zip(da, db):
        if a.shape[i] != b.shape[j]:
            raise RuntimeError(f"contracted dimensions need to match, but first has size {a.shape[i]} in dim {i} "
                               f"and second has size {b.shape[j]} in dim {j}")
    free_a = [d for d in range(a.ndim) if d not in da]
    free_b = [d for d in range(b.ndim) if d not in db]
    k = 1
    for d in da:
        k *= a.shape[d]
    am = a.permute(*free_a, *da).reshape(-1, k)
    bm = b.permute(*db, *free_b).reshape(k, -1)
    return (am @ bm).reshape(tuple(a.shape[d] for d in free_a) + tuple(b.shape[d] for d in free_b))


def _add_scaled(input, prod, beta, alpha):
    out = prod if alpha == 1 else prod * alpha
    broadcast_shapes(tuple(input.shape), tuple(out.shape))  # (input must broadcast to the product's shape)
    if beta == 0:  # input is ignored: nan and inf in it do not propagate; its gradient is 0, as PyTorch's
        return out + _E().where(input.new_zeros(tuple(input.shape), dtype=_dt.bool_), input, 0.0)
    return out + (input if beta == 1 else input * beta)


def _addmm_samples(dtype=np.float64):
    r = np.random.default_rng(87)
    A = lambda *s: r.standard_normal(s).astype(dtype)  # noqa: E731
    return [((A(3, 5), A(3, 4), A(4, 5)), {}), ((A(5), A(3, 4), A(4, 5)), {"beta": 0.5, "alpha": 2.0}),
            ((A(3, 1), A(3, 4), A(4, 5)), {"beta": 0.0})]


def _ref_addmm(input, mat1, mat2, *, beta=1, alpha=1):
    prod = alpha * (mat1 @ mat2)
    return prod if beta == 0 else prod + beta * input


@composite(ref=_ref_addmm, samples=_addmm_samples, torch="torch.addmm")
@public
def addmm(input, mat1, mat2, *, beta=1, alpha=1):
    """beta * input + alpha * (mat1 @ mat2)."""
    if _AMP[0]:  # all three in autocast's dtype: the sum too (as PyTorch)
        input, mat1, mat2 = _autocast("addmm", input, mat1, mat2)
    if mat1.ndim != 2 or mat2.ndim != 2:
        raise RuntimeError(f"addmm: expected 2D matrices, got {mat1.ndim}D and {mat2.ndim}D")
    return _add_scaled(input, mat1 @ mat2, beta, alpha)


def _baddbmm_samples(dtype=np.float64):
    r = np.random.default_rng(88)
    A = lambda *s: r.standard_normal(s).astype(dtype)  # noqa: E731
    return [((A(2, 3, 5), A(2, 3, 4), A(2, 4, 5)), {}), ((A(3, 5), A(2, 3, 4), A(2, 4, 5)), {"beta": 0.5, "alpha": -1.0})]


@composite(ref=lambda input, b1, b2, *, beta=1, alpha=1: alpha * (b1 @ b2) + beta * input, samples=_baddbmm_samples,
           torch="torch.baddbmm")
@public
def baddbmm(input, batch1, batch2, *, beta=1, alpha=1):
    """beta * input + alpha * (batch1 @ batch2), batch by batch."""
    if _AMP[0]:  # all three in autocast's dtype: the sum too (as PyTorch)
        input, batch1, batch2 = _autocast("baddbmm", input, batch1, batch2)
    if batch1.ndim != 3 or batch2.ndim != 3:
        raise RuntimeError(f"baddbmm: batch1 and batch2 must be 3D tensors, got {batch1.ndim}D and {batch2.ndim}D")
    return _add_scaled(input, batch1 @ batch2, beta, alpha)


def _addbmm_samples(dtype=np.float64):
    r = np.random.default_rng(89)
    A = lambda *s: r.standard_normal(s).astype(dtype)  # noqa: E731
    return [((A(3, 5), A(2, 3, 4), A(2, 4, 5)), {}), ((A(5), A(4, 3, 2), A(4, 2, 5)), {"beta": 2.0, "alpha": 0.5})]


@composite(ref=lambda input, b1, b2, *, beta=1, alpha=1: alpha * (b1 @ b2).sum(0) + beta * input,
           samples=_addbmm_samples, torch="torch.addbmm")
@public
def addbmm(input, batch1, batch2, *, beta=1, alpha=1):
    """beta * input + alpha * sum over the batch of batch1[i] @ batch2[i]."""
    if _AMP[0]:  # all three in autocast's dtype: the sum too (as PyTorch)
        input, batch1, batch2 = _autocast("addbmm", input, batch1, batch2)
    if batch1.ndim != 3 or batch2.ndim != 3:
        raise RuntimeError(f"addbmm: batch1 and batch2 must be 3D tensors, got {batch1.ndim}D and {batch2.ndim}D")
    return _add_scaled(input, (batch1 @ batch2).sum(0), beta, alpha)


def _kron_samples(dtype=np.float64):
    r = np.random.default_rng(90)
    A = lambda *s: r.standard_normal(s).astype(dtype)  # noqa: E731
    return [((A(2, 3), A(3, 2)), {}), ((A(3), A(2)), {}), ((A(2, 2, 2), A(3, 1)), {}), ((A(2), A(2, 3)), {})]


@composite(ref=np.kron, samples=_kron_samples, torch="torch.kron")
@public
def kron(input, other):
    """The Kronecker product: the blocks input[i] * other."""
    nd = max(input.ndim, other.ndim)
    a = input.reshape((1,) * (nd - input.ndim) + tuple(input.shape))
    b = other.reshape((1,) * (nd - other.ndim) + tuple(other.shape))
    ia = [v for d in range(nd) for v in (a.shape[d], 1)]
    ib = [v for d in range(nd) for v in (1, b.shape[d])]
    return (a.reshape(ia) * b.reshape(ib)).reshape(tuple(a.shape[d] * b.shape[d] for d in range(nd)))


def _cdist_samples(dtype=np.float64):
    r = np.random.default_rng(91)
    A = lambda *s: r.standard_normal(s).astype(dtype)  # noqa: E731
    return [((A(4, 3), A(5, 3)), {}), ((A(4, 3), A(5, 3)), {"p": 1.0}), ((A(2, 4, 3), A(2, 2, 3)), {"p": 3.0}),
            ((A(4, 3), A(2, 3)), {"p": np.inf}), ((A(4, 3), A(5, 3)), {"p": 0.0})]


def _ref_cdist(x1, x2, p=2.0, compute_mode=None):
    d = np.abs(x1[..., :, None, :] - x2[..., None, :, :])
    if p == np.inf:
        return d.max(-1)
    if p == 0:
        return (d != 0).sum(-1).astype(d.dtype)
    return (d ** p).sum(-1) ** (1 / p)


@public(method=False)
@_autocast_as("cdist")
def cdist(x1, x2, p=2.0, compute_mode="use_mm_for_euclid_dist_if_necessary"):
    """The p-norm distance between each row of x1 and each row of x2 (batched); gradient 0 at distance 0.
    Computed directly (PyTorch's matmul shortcut for p=2 trades accuracy for speed on large inputs)."""
    if x1.ndim < 2 or x2.ndim < 2:
        raise RuntimeError(f"cdist only supports at least 2D tensors, X1 got: {x1.ndim}D")
    if x1.shape[-1] != x2.shape[-1]:
        raise RuntimeError(f"X1 and X2 must have the same number of columns. X1: {x1.shape[-1]} X2: {x2.shape[-1]}")
    if p < 0:
        raise RuntimeError(f"cdist only supports non-negative p values, got {p}")
    diff = x1.unsqueeze(-2) - x2.unsqueeze(-3)
    if p == 0:  # the count of differing coordinates, with a zero gradient (still attached, as PyTorch's)
        return (diff != 0).to(diff.dtype).sum(-1) + (diff * 0).sum(-1)
    return diff.norm(p, -1)


# function-only names: the composite is the exported function (with its out= wrapper)
composite(name="tensordot", ref=_ref_tensordot, samples=_tensordot_samples, torch="torch.tensordot")(
    FUNCTIONS["tensordot"])
composite(name="cdist", ref=_ref_cdist, samples=_cdist_samples, torch="torch.cdist")(FUNCTIONS["cdist"])
