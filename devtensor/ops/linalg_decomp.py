"""The decompositions and solvers of devtensor.linalg as ops: inv_, det_, slogdet_, solve_, cholesky_, qr_,
svd_ and eigh_ (meta rules, backward rules in Tensor ops after PyTorch's formulas, samples and numpy
references), and the top-level det, slogdet, logdet, inverse and pinverse written in them.
linalg_ops.py's docstring says how the symmetric inputs of cholesky and eigh are treated."""
from __future__ import annotations

import math

import numpy as np

from .. import dtypes as _dt
from ..dispatch import KEEP, call, defop
from ..geometry import broadcast_shapes
from ..tensor import Tensor
from ._api import public
from .linalg_ops import _E, _eye_like, _mT, diag_embed

__all__ = ["det", "logdet", "slogdet", "inverse", "pinverse"]


def _square_meta(name):
    def meta(a, **_):
        s = tuple(a.shape)
        if len(s) < 2:
            raise RuntimeError(f"linalg.{name}: The input tensor A must have at least 2 dimensions.")
        if s[-1] != s[-2]:
            raise RuntimeError(f"linalg.{name}: A must be batches of square matrices, but they are {s[-2]} by {s[-1]} "
                               "matrices")
        if a.dtype.kind not in "fV":
            raise RuntimeError(f"linalg.{name}: Expected a floating point or complex tensor as input. Got "
                               f"{_api_name(a.dtype)}")
        return s, a.dtype

    return meta


def _api_name(npdtype):
    from ._api import _torch_name

    return _torch_name(_dt.from_numpy_dtype(npdtype))


def _inv_backward(c, g):
    ai = _mT(c.out)
    return -(ai @ g @ ai)


def _det_meta(a):
    s, d = _square_meta("det")(a)
    return s[:-2], d


def _det_backward(c, g):
    inv = call(inv_, (c.a,), {})
    return (g * c.out).unsqueeze(-1).unsqueeze(-1) * _mT(inv)


def _slogdet_meta(a):
    s, d = _square_meta("slogdet")(a)
    return (s[:-2], d), (s[:-2], d)


def _slogdet_backward(c, g_logabs, g_sign):
    if g_logabs is None:
        return None
    return g_logabs.unsqueeze(-1).unsqueeze(-1) * _mT(call(inv_, (c.a,), {}))


def _solve_meta(a, b, vector):
    sa, sb = tuple(a.shape), tuple(b.shape)
    _square_meta("solve")(a)
    n = sa[-1]
    if vector:
        if sb[-1] != n:
            raise RuntimeError(f"linalg.solve: Incompatible shapes of A and B for the equation AX = B ({sa[-2]}x{n} "
                               f"and {sb[-1]})")
        return broadcast_shapes(sa[:-2], sb[:-1]) + (n,), a.dtype
    if sb[-2] != n:
        raise RuntimeError(f"linalg.solve: Incompatible shapes of A and B for the equation AX = B ({sa[-2]}x{n} and "
                           f"{sb[-2]}x{sb[-1]})")
    return broadcast_shapes(sa[:-2], sb[:-2]) + (n, sb[-1]), a.dtype


def _solve_backward(c, g):
    a, x = c.a, c.out
    vector = c.vector
    gb = call(solve_, (_mT(a), g), {"vector": vector})
    ga = None
    if c.needs_input_grad(0):
        ga = -(gb.unsqueeze(-1) * x.unsqueeze(-2)) if vector else -(gb @ _mT(x))
    return ga, gb


def _cholesky_backward(c, g):
    L = _mT(c.out) if c.upper else c.out
    gL = _mT(g) if c.upper else g
    t = (_mT(L) @ gL).tril()
    phi = 0.5 * (t + _mT(t.tril(-1)))
    li = call(inv_, (L,), {})
    return _mT(li) @ phi @ li


def _qr_meta(a, mode):
    s = tuple(a.shape)
    if len(s) < 2:
        raise RuntimeError("linalg.qr: The input tensor A must have at least 2 dimensions.")
    if mode not in ("reduced", "complete", "r"):
        raise RuntimeError(f"qr received unrecognized mode '{mode}' but expected one of 'reduced' (default), 'r', or "
                           "'complete'")
    m, n = s[-2:]
    k = min(m, n)
    if mode == "complete":
        return (s[:-2] + (m, m), a.dtype), (s[:-2] + (m, n), a.dtype)
    return (s[:-2] + (m, k), a.dtype), (s[:-2] + (k, n), a.dtype)


def _qr_backward(c, gQ, gR):
    Q, R = c.out0, c.out1
    m, n = c.in_meta[0][0][-2:]
    if m < n or (c.mode == "complete" and m > n):
        raise NotImplementedError("The derivative of linalg.qr is implemented for mode='reduced' with m >= n (and "
                                  "square matrices in any mode)")
    gQ = Q * 0 if gQ is None else gQ
    gR = R * 0 if gR is None else gR
    qdq = _mT(Q) @ gQ
    rdr = R @ _mT(gR)
    low = (qdq - _mT(qdq) + rdr - _mT(rdr)).tril()

    def right_solve_rT(x):  # x R^{-T}
        return _mT(call(solve_, (R, _mT(x)), {"vector": False}))

    return Q @ (gR + right_solve_rT(low)) + right_solve_rT(gQ - Q @ qdq)


def _svd_meta(a, full_matrices):
    s = tuple(a.shape)
    if len(s) < 2:
        raise RuntimeError("linalg.svd: The input tensor A must have at least 2 dimensions.")
    m, n = s[-2:]
    k = min(m, n)
    lead = s[:-2]
    if full_matrices:
        return (lead + (m, m), a.dtype), (lead + (k,), a.dtype), (lead + (n, n), a.dtype)
    return (lead + (m, k), a.dtype), (lead + (k,), a.dtype), (lead + (k, n), a.dtype)


def _svd_backward(c, gU, gS, gVh):
    # PyTorch's svd_backward (real case) on the reduced factors
    U, S, Vh = c.out0, c.out1, c.out2
    m, n = c.in_meta[0][0][-2:]
    k = min(m, n)
    if c.full_matrices:
        U, Vh = U[..., :, :k], Vh[..., :k, :]
        gU = None if gU is None else gU[..., :, :k]
        gVh = None if gVh is None else gVh[..., :k, :]
    V = _mT(Vh)
    E = _E()
    if gU is None and gVh is None:
        return (U * gS.unsqueeze(-2)) @ Vh
    s2 = S * S
    diff = s2.unsqueeze(-2) - s2.unsqueeze(-1)  # E_ij = S_j^2 - S_i^2
    eye = _eye_like(S, k)
    F = E.where(eye.to(_dt.bool_), 0.0, 1.0 / E.where(eye.to(_dt.bool_), 1.0, diff))
    inner = U.new_zeros(tuple(U.shape[:-2]) + (k, k))
    if gU is not None:
        UhgU = _mT(U) @ gU
        inner = inner + (F * (UhgU - _mT(UhgU))) * S.unsqueeze(-2)
    if gVh is not None:
        gV = _mT(gVh)
        VhgV = Vh @ gV
        inner = inner + S.unsqueeze(-1) * (F * (VhgV - _mT(VhgV)))
    if gS is not None:
        inner = inner + diag_embed(gS)
    gA = U @ inner @ Vh
    inv_s = 1.0 / S
    if gU is not None and m > k:
        gA = gA + (gU - U @ (_mT(U) @ gU)) @ (inv_s.unsqueeze(-1) * Vh)
    if gVh is not None and n > k:
        gA = gA + (U * inv_s.unsqueeze(-2)) @ (gVh - (gVh @ V) @ Vh)
    return gA


def _eigh_meta(a):
    s, d = _square_meta("eigh")(a)
    return (s[:-1], d), (s, d)


def _eigh_backward(c, gL, gV):
    L, V = c.out0, c.out1
    n = L.shape[-1]
    E = _E()
    inner = None
    if gV is not None:
        VhgV = _mT(V) @ gV
        skew = 0.5 * (VhgV - _mT(VhgV))
        diff = L.unsqueeze(-2) - L.unsqueeze(-1)  # E_ij = L_j - L_i
        eye = _eye_like(L, n).to(_dt.bool_)
        inner = E.where(eye, 0.0, skew / E.where(eye, 1.0, diff))
    if gL is not None:
        inner = diag_embed(gL) if inner is None else inner + diag_embed(gL)
    return V @ inner @ _mT(V)


# ---- samples ------------------------------------------------------------------------------------------------
def _well_conditioned(r, shape, dtype):
    a = r.standard_normal(shape)
    return (a + np.eye(shape[-1]) * shape[-1]).astype(dtype)


def _spd(r, shape, dtype):
    x = r.standard_normal(shape)
    return (x @ np.swapaxes(x, -1, -2) + np.eye(shape[-1]) * shape[-1]).astype(dtype)


def _inv_samples(dtype=np.float64):
    r = np.random.default_rng(92)
    return [((_well_conditioned(r, (3, 3), dtype),), {}), ((_well_conditioned(r, (2, 4, 4), dtype),), {}),
            ((_well_conditioned(r, (1, 1), dtype),), {})]


def _det_samples(dtype=np.float64):
    r = np.random.default_rng(93)
    neg = _well_conditioned(r, (3, 3), dtype)
    neg[0] *= -1  # a negative determinant
    return [((_well_conditioned(r, (3, 3), dtype),), {}), ((_well_conditioned(r, (2, 4, 4), dtype),), {}), ((neg,), {})]


def _solve_samples(dtype=np.float64):
    r = np.random.default_rng(94)
    a = _well_conditioned(r, (3, 3), dtype)
    return [((a, r.standard_normal((3, 2)).astype(dtype)), {"vector": False}),
            ((a, r.standard_normal(3).astype(dtype)), {"vector": True}),
            ((_well_conditioned(r, (2, 3, 3), dtype), r.standard_normal((3, 4)).astype(dtype)), {"vector": False})]


def _cholesky_samples(dtype=np.float64):
    r = np.random.default_rng(95)
    return [((_spd(r, (3, 3), dtype),), {"upper": False}), ((_spd(r, (2, 4, 4), dtype),), {"upper": True})]


def _qr_samples(dtype=np.float64):
    r = np.random.default_rng(96)
    A = lambda *s: r.standard_normal(s).astype(dtype)  # noqa: E731
    return [((A(4, 3),), {"mode": "reduced"}), ((A(3, 3),), {"mode": "complete"}), ((A(2, 5, 2),), {"mode": "reduced"})]


def _svd_samples(dtype=np.float64):
    r = np.random.default_rng(97)
    A = lambda *s: r.standard_normal(s).astype(dtype)  # noqa: E731
    return [((A(4, 3),), {"full_matrices": False}), ((A(3, 5),), {"full_matrices": False}),
            ((A(3, 3),), {"full_matrices": True}), ((A(2, 4, 2),), {"full_matrices": False})]


def _eigh_samples(dtype=np.float64):
    r = np.random.default_rng(98)

    def sym(*s):
        x = r.standard_normal(s)
        return ((x + np.swapaxes(x, -1, -2)) / 2).astype(dtype)

    return [((sym(3, 3),), {}), ((sym(2, 4, 4),), {})]


def _ref_qr(a, mode):
    if a.ndim == 2:
        return np.linalg.qr(a, mode=mode)
    qs, rs = zip(*(np.linalg.qr(m, mode=mode) for m in a.reshape((-1,) + a.shape[-2:])))
    return np.stack(qs).reshape(a.shape[:-2] + qs[0].shape), np.stack(rs).reshape(a.shape[:-2] + rs[0].shape)


def _ref_svd(a, full_matrices):
    u, s, vh = np.linalg.svd(a, full_matrices=full_matrices)
    return u, s, vh


def _ref_slogdet(a):
    s, l = np.linalg.slogdet(a)
    return np.asarray(l), np.asarray(s)


inv_ = defop("linalg_inv", ("a",), rule=KEEP, meta=_square_meta("inv"), save=("out",), backward=_inv_backward,
             ref=np.linalg.inv, samples=_inv_samples, shown_as="linalg.inv")
det_ = defop("linalg_det", ("a",), rule=KEEP, meta=_det_meta, save=("a", "out"), backward=_det_backward,
             ref=lambda a: np.asarray(np.linalg.det(a)), samples=_det_samples, shown_as="linalg.det")
slogdet_ = defop("linalg_slogdet", ("a",), rule=KEEP, meta=_slogdet_meta, nout=2, diff_outputs=(0,), save=("a",),
                 backward=_slogdet_backward, ref=_ref_slogdet, samples=_det_samples, shown_as="linalg.slogdet")
solve_ = defop("linalg_solve", ("a", "b"), rule=KEEP, meta=_solve_meta, save=("a", "out"), backward=_solve_backward,
               ref=lambda a, b, vector: np.linalg.solve(a, b[..., None])[..., 0] if vector else np.linalg.solve(a, b),
               samples=_solve_samples, shown_as="linalg.solve")
cholesky_ = defop("linalg_cholesky", ("a",), rule=KEEP, meta=lambda a, upper: _square_meta("cholesky")(a),
                  save=("out",), backward=_cholesky_backward,
                  ref=lambda a, upper: np.swapaxes(np.linalg.cholesky(a), -1, -2) if upper else np.linalg.cholesky(a),
                  samples=_cholesky_samples, shown_as="linalg.cholesky")
qr_ = defop("linalg_qr", ("a",), rule=KEEP, meta=_qr_meta, nout=2, save=("out0", "out1"), backward=_qr_backward,
            ref=_ref_qr, samples=_qr_samples, shown_as="linalg.qr")
svd_ = defop("linalg_svd", ("a",), rule=KEEP, meta=_svd_meta, nout=3, save=("out0", "out1", "out2"),
             backward=_svd_backward, ref=_ref_svd, samples=_svd_samples, shown_as="linalg.svd")
eigh_ = defop("linalg_eigh", ("a",), rule=KEEP, meta=_eigh_meta, nout=2, save=("out0", "out1"),
              backward=_eigh_backward, ref=lambda a: np.linalg.eigh(a), samples=_eigh_samples, shown_as="linalg.eigh")


# ---- top-level names (torch.det, torch.inverse, ...) -------------------------------------------------------
def _float_matrix(name, a):
    if not isinstance(a, Tensor):
        raise TypeError(f"{name}(): argument 'A' must be Tensor, not {type(a).__name__}")
    if not (a.dtype.is_floating_point):
        raise RuntimeError(f"{name}: Expected a floating point or complex tensor as input. Got "
                           f"{_api_name(a.dtype.np)}")


@public
def det(A):
    _float_matrix("linalg.det", A)
    return call(det_, (A,), {})


@public
def slogdet(A):
    _float_matrix("linalg.slogdet", A)
    logabs, sign = call(slogdet_, (A,), {})
    return _SignLogAbsDet((sign, logabs))


@public
def logdet(A):
    """log(det(A)): nan for a negative determinant, -inf for a singular matrix."""
    sign, logabs = slogdet(A)
    return _E().where(sign < 0, math.nan, _E().where(sign == 0, -math.inf, logabs))


@public
def inverse(A):
    _float_matrix("linalg.inv", A)
    return call(inv_, (A,), {})


@public
def pinverse(input, rcond=1e-15):
    return pinv_impl(input, rtol=rcond)


class _SignLogAbsDet(tuple):
    sign = property(lambda self: self[0])
    logabsdet = property(lambda self: self[1])


def pinv_impl(A, atol=None, rtol=None, hermitian=False):
    """The Moore-Penrose pseudo-inverse by SVD: singular values below max(atol, rtol * largest) count as 0."""
    _float_matrix("linalg.pinv", A)
    U, S, Vh = call(svd_, (A,), {"full_matrices": False})
    m, n = A.shape[-2:]
    if rtol is None:
        rtol = 0.0 if (atol is not None and atol > 0) else float(np.finfo(A.dtype.np).eps) * max(m, n)
    smax = S.amax(-1, keepdim=True) if S.shape[-1] else S
    cut = smax * rtol
    if atol is not None:
        cut = _E().maximum(cut, S.new_full((), float(atol)))
    keep = S > cut
    inv_s = _E().where(keep, 1.0 / _E().where(keep, S, 1.0), 0.0)
    return (_mT(Vh) * inv_s.unsqueeze(-2)) @ _mT(U)
