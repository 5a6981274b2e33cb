"""devtensor.linalg: torch.linalg's functions (norms, solvers, decompositions), written in the ops of
devtensor/ops/linalg_ops.py and linalg_decomp.py, so they run on every device and have PyTorch's gradients.

cholesky and eigh read one triangle of A (PyTorch's UPLO rule) and give PyTorch's symmetric gradient.
lstsq computes its solution as pinv(A) @ B whatever the driver (the same minimum-norm least-squares
solution as LAPACK's drivers, differentiable), and returns residuals, rank and singular values as PyTorch's
driver would (default driver 'gelsy': rank only)."""
from __future__ import annotations

import math

import numpy as np

from . import dtypes as _dt
from .dispatch import call
from .ops import linalg_decomp as _D
from .ops import linalg_ops as _L
from .ops.autocast import ACTIVE as _AMP
from .ops.autocast import cast_args as _autocast
from .ops.elementwise import where as _where
from .tensor import Tensor, _norm_dim

__all__ = ["norm", "vector_norm", "matrix_norm", "solve", "inv", "det", "slogdet", "cholesky", "qr", "svd", "svdvals",
           "eigh", "eigvalsh", "lstsq", "pinv", "matrix_rank", "matrix_power", "multi_dot", "diagonal"]


class _Named(tuple):
    _fields: tuple = ()

    def __getattr__(self, name):
        try:
            return self[type(self)._fields.index(name)]
        except ValueError:
            raise AttributeError(name) from None


def _named(name, fields):
    return type(name, (_Named,), {"_fields": fields})


_QR = _named("QR", ("Q", "R"))
_SVD = _named("SVD", ("U", "S", "Vh"))
_EIGH = _named("Eigh", ("eigenvalues", "eigenvectors"))
_SLOGDET = _named("Slogdet", ("sign", "logabsdet"))
_LSTSQ = _named("Lstsq", ("solution", "residuals", "rank", "singular_values"))


def _mT(x):
    return x.transpose(-2, -1)


def _check(name, A, square=True):
    if not isinstance(A, Tensor):
        raise TypeError(f"linalg.{name}(): argument 'A' must be Tensor, not {type(A).__name__}")
    if A.ndim < 2:
        raise RuntimeError(f"linalg.{name}: The input tensor A must have at least 2 dimensions.")
    if square and A.shape[-1] != A.shape[-2]:
        raise RuntimeError(f"linalg.{name}: A must be batches of square matrices, but they are {A.shape[-2]} by "
                           f"{A.shape[-1]} matrices")
    if not A.dtype.is_floating_point:
        raise RuntimeError(f"linalg.{name}: Expected a floating point or complex tensor as input. Got "
                           f"{_D._api_name(A.dtype.np)}")


def _from_triangle(A, upper):
    """The symmetric matrix PyTorch reads from A's lower (or upper) triangle, with A's gradient passed through
    unchanged (PyTorch's symmetric gradient, not one that is zero on the unread triangle)."""
    t = A.triu() if upper else A.tril()
    strict = A.triu(1) if upper else A.tril(-1)
    sym = t + _mT(strict)
    return A + (sym - A).detach()


# ---- norms ------------------------------------------------------------------------------------------------
def vector_norm(x, ord=2, dim=None, keepdim=False, *, dtype=None):  # noqa: A002 - PyTorch's names
    """The ord-norm of x over dim (all elements by default): sum |x|^ord ^ (1/ord), max / min |x| for +-inf, the
    count of non-zeros for 0. The gradient is 0 where the norm is 0, as PyTorch."""
    if not isinstance(x, Tensor):
        raise TypeError(f"linalg.vector_norm(): argument 'x' must be Tensor, not {type(x).__name__}")
    if dtype is not None:
        x = x.to(dtype)
    if not x.dtype.is_floating_point:
        raise RuntimeError(f"linalg.vector_norm: Expected a floating point or complex tensor as input. Got "
                           f"{_D._api_name(x.dtype.np)}")
    if isinstance(ord, str):
        raise RuntimeError(f"linalg.vector_norm: ord must be a number, got {ord!r}")
    if dim is not None and not isinstance(dim, (tuple, list)):
        dim = (dim,)
    if ord in (math.inf, -math.inf) and x.numel() == 0:
        raise RuntimeError(f"linalg.vector_norm cannot compute the {'inf' if ord > 0 else '-inf'} norm on an empty "
                           "tensor because the operation does not have an identity")
    dims = tuple(dim) if dim is not None else None
    if ord == 0:  # the count of non-zeros, with a zero gradient (still attached to x, as PyTorch's)
        return (x != 0).to(x.dtype).sum(dims, keepdim=keepdim) + (x * 0).sum(dims, keepdim=keepdim)
    return x.norm(float(ord), dims, keepdim=keepdim)


def matrix_norm(A, ord="fro", dim=(-2, -1), keepdim=False, *, dtype=None):  # noqa: A002
    """'fro', 'nuc' (sum of singular values), inf / -inf (max / min row sum of |A|), 1 / -1 (column sums),
    2 / -2 (largest / smallest singular value), over the two dims."""
    if dtype is not None:
        A = A.to(dtype)
    _check("matrix_norm", A, square=False)
    if len(dim) != 2:
        raise RuntimeError(f"linalg.matrix_norm: dim must be a 2-tuple. Got {dim}")
    d0, d1 = (_norm_dim(d, A.ndim, "linalg.matrix_norm") for d in dim)
    if d0 == d1:
        raise RuntimeError(f"linalg.matrix_norm: dims must be different. Got ({d0}, {d1})")
    if ord == "fro":
        return A.norm("fro", (d0, d1), keepdim=keepdim)
    if ord == "nuc" or ord in (2, -2):
        rest = [d for d in range(A.ndim) if d not in (d0, d1)]
        moved = A.permute(*rest, d0, d1)
        s = svdvals(moved)
        if ord == "nuc":
            r = s.sum(-1)
        else:
            r = s.amax(-1) if ord == 2 else s.amin(-1)
        if keepdim:
            for d in sorted((d0, d1)):
                r = r.unsqueeze(d)
        return r
    if ord in (1, -1, math.inf, -math.inf):
        # 1: the column sums (over d0), then max over d1; inf: the row sums (over d1), then max over d0
        sum_dim, red_dim = (d0, d1) if ord in (1, -1) else (d1, d0)
        s = A.abs().sum(sum_dim, keepdim=True)
        r = s.amax(red_dim, keepdim=True) if ord > 0 else s.amin(red_dim, keepdim=True)
        if not keepdim:
            for d in sorted((d0, d1), reverse=True):
                r = r.squeeze(d)
        return r
    raise RuntimeError(f"linalg.matrix_norm: Order {ord} not supported.")


def norm(A, ord=None, dim=None, keepdim=False, *, dtype=None):  # noqa: A002
    """torch.linalg.norm: a vector norm for a 1-D input or an int dim, a matrix norm for a 2-D input or a 2-tuple
    dim; with neither ord nor dim, the 2-norm of all elements."""
    if not isinstance(A, Tensor):
        raise TypeError(f"linalg.norm(): argument 'A' must be Tensor, not {type(A).__name__}")
    if isinstance(dim, int):
        dim = (dim,)
    if dim is not None:
        if len(dim) == 1:
            return vector_norm(A, 2 if ord is None else ord, dim, keepdim, dtype=dtype)
        return matrix_norm(A, "fro" if ord is None else ord, tuple(dim), keepdim, dtype=dtype)
    if ord is None:
        return vector_norm(A, 2, None, keepdim, dtype=dtype)
    if A.ndim == 1:
        return vector_norm(A, ord, None, keepdim, dtype=dtype)
    if A.ndim == 2:
        return matrix_norm(A, ord, (-2, -1), keepdim, dtype=dtype)
    raise RuntimeError(f"linalg.norm: If dim is not specified but ord is, the input must be 1D or 2D. Got {A.ndim}D.")


# ---- solvers and decompositions ---------------------------------------------------------------------------
def inv(A):
    _check("inv", A)
    return call(_D.inv_, (A,), {})


def det(A):
    _check("det", A)
    return call(_D.det_, (A,), {})


def slogdet(A):
    _check("slogdet", A)
    logabs, sign = call(_D.slogdet_, (A,), {})
    return _SLOGDET((sign, logabs))


def solve(A, B, *, left=True):
    """X with A X = B (left=False: X A = B). B is a batch of vectors when it is 1-D or has A's shape minus the
    last dimension, as PyTorch."""
    _check("solve", A)
    if not isinstance(B, Tensor):
        raise TypeError(f"linalg.solve(): argument 'B' must be Tensor, not {type(B).__name__}")
    dt = _dt.promote_types(A.dtype, B.dtype)
    A, B = A.to(dt), B.to(dt)
    vector = B.ndim == 1 or (B.ndim == A.ndim - 1 and tuple(B.shape) == tuple(A.shape[:-1]))
    if not left:
        if vector:
            raise RuntimeError("linalg.solve: Vector broadcasting of the left hand side is not supported for left=False. "
                               "In this case linalg.solve is equivalent to B / A.squeeze(-1)")
        return _mT(call(_D.solve_, (_mT(A), _mT(B)), {"vector": False}))
    return call(_D.solve_, (A, B), {"vector": vector})


def cholesky(A, *, upper=False):
    """L with A = L L^T, from A's lower triangle (upper=True: U = L^T, from the upper triangle, as PyTorch)."""
    _check("cholesky", A)
    return call(_D.cholesky_, (_from_triangle(A, bool(upper)),), {"upper": bool(upper)})


def qr(A, mode="reduced"):
    _check("qr", A, square=False)
    if mode == "r":
        _, R = call(_D.qr_, (A,), {"mode": "reduced"})
        return _QR((A.new_zeros((0,)), R))
    Q, R = call(_D.qr_, (A,), {"mode": mode})
    return _QR((Q, R))


def svd(A, full_matrices=True, *, driver=None):
    _check("svd", A, square=False)
    U, S, Vh = call(_D.svd_, (A,), {"full_matrices": bool(full_matrices)})
    return _SVD((U, S, Vh))


def svdvals(A, *, driver=None):
    _check("svdvals", A, square=False)
    return call(_D.svd_, (A,), {"full_matrices": False})[1]


def eigh(A, UPLO="L"):
    """Eigenvalues (ascending) and orthonormal eigenvectors of the symmetric matrix in A's UPLO triangle."""
    _check("eigh", A)
    if UPLO not in ("L", "U"):
        raise RuntimeError(f"Expected UPLO argument to be 'L' or 'U', but got {UPLO}")
    w, V = call(_D.eigh_, (_from_triangle(A, UPLO == "U"),), {})
    return _EIGH((w, V))


def eigvalsh(A, UPLO="L"):
    return eigh(A, UPLO)[0]


def pinv(A, *, atol=None, rtol=None, hermitian=False):
    """The Moore-Penrose pseudo-inverse: singular values below max(atol, rtol * largest) count as 0 (rtol
    defaults to eps * max(m, n) when atol is not given, as PyTorch)."""
    return _D.pinv_impl(A, atol=atol, rtol=rtol, hermitian=hermitian)


def matrix_rank(A, *, atol=None, rtol=None, hermitian=False):
    _check("matrix_rank", A, square=False)
    S = svdvals(A)
    m, n = A.shape[-2:]
    if rtol is None:
        rtol = 0.0 if (atol is not None and atol > 0) else float(np.finfo(A.dtype.np).eps) * max(m, n)
    cut = S.amax(-1, keepdim=True) * rtol if S.shape[-1] else S
    if atol is not None:
        cut = _where(cut > atol, cut, float(atol))
    return (S > cut).sum(-1)


def lstsq(A, B, rcond=None, *, driver=None):
    """The least-squares solution of A X = B (minimum norm where A is rank-deficient), with PyTorch's extra
    outputs for the driver: residuals (squared, per column) for 'gels' / 'gelsd' / 'gelss' when A is tall and of
    full rank, rank ('gelsy', 'gelsd', 'gelss') and singular values ('gelsd', 'gelss')."""
    _check("lstsq", A, square=False)
    driver = driver or "gelsy"
    if driver not in ("gels", "gelsy", "gelsd", "gelss"):
        raise RuntimeError(f"torch.linalg.lstsq: parameter `driver` should be one of (gels, gelsy, gelsd, gelss), got "
                           f"{driver}")
    vector = B.ndim == A.ndim - 1
    Bm = B.unsqueeze(-1) if vector else B
    m, n = A.shape[-2:]
    eps = float(np.finfo(A.dtype.np).eps)
    rtol = rcond if rcond is not None and rcond > 0 else eps * max(m, n)
    X = pinv(A, rtol=rtol) @ Bm
    empty = A.new_zeros((0,))
    rank = empty.to(_dt.int64)
    S = empty
    if driver != "gels":
        rank = matrix_rank(A, rtol=rtol)
    if driver in ("gelsd", "gelss"):
        S = svdvals(A)
    res = empty
    if driver != "gelsy" and m > n:
        full = bool((matrix_rank(A, rtol=rtol) == n).all())
        if full:
            r = A @ X - Bm
            res = (r * r).sum(-2)
            if vector:
                res = res.squeeze(-1)
    return _LSTSQ((X.squeeze(-1) if vector else X, res, rank, S))


def matrix_power(A, n):
    """A @ A @ ... (n times; n = 0: the identity, n < 0: powers of inv(A))."""
    _check("matrix_power", A)
    if n < 0:
        A, n = inv(A), -n
    result = None
    base = A
    while n:
        if n & 1:
            result = base if result is None else result @ base
        n >>= 1
        if n:
            base = base @ base
    if result is None:
        from .ops.creation import eye

        return eye(A.shape[-1], dtype=A.dtype, device=A.device).expand(tuple(A.shape)).clone()
    return result


def multi_dot(tensors):
    """The product of a chain of matrices (the first may be 1-D, as may the last), left to right."""
    ts = list(tensors)
    if _AMP[0]:
        ts = list(_autocast("multi_dot", *ts))
    if len(ts) < 2:
        raise RuntimeError(f"multi_dot(): expected at least 2 tensors but got {len(ts)}")
    out = ts[0]
    for t in ts[1:]:
        out = out @ t
    return out


def diagonal(A, *, offset=0, dim1=-2, dim2=-1):
    """torch.linalg.diagonal: torch.diagonal with the last two dimensions by default."""
    return _L.diagonal(A, offset, dim1, dim2)

