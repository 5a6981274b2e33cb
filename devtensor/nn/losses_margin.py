"""The distances cosine_similarity and pairwise_distance and the losses over them and over margins:
cosine_embedding, margin_ranking, hinge_embedding, (multilabel) soft_margin, multi(label)_margin and
triplet_margin (with a distance) losses."""
from __future__ import annotations

import numpy as np

from .. import dtypes as _dt
from ..ops._api import composite
from ..ops.elementwise import exp, log1p, where
from .losses_base import (_legacy, _log_sigmoid, _np_legacy, _np_reduce, _reduce, _reductions, _rng, _tensor,
                          _with_grad_of)
from ..ops.autocast import autocast_as as _autocast_as


# ---- distances ------------------------------------------------------------------------------------------

def _ref_cosine_similarity(x1, x2, dim=1, eps=1e-8):
    x1, x2 = np.broadcast_arrays(x1, x2)
    n1 = np.maximum(np.sqrt((x1 * x1).sum(dim, keepdims=True)), eps)
    n2 = np.maximum(np.sqrt((x2 * x2).sum(dim, keepdims=True)), eps)
    return ((x1 / n1) * (x2 / n2)).sum(dim)


def _cos_samples(dtype=np.float64):
    r = _rng(32)
    U = lambda *s: r.uniform(-2, 2, s).astype(dtype)  # noqa: E731
    z = U(3, 4)
    z[1] = 0.0  # a zero vector: its norm is clamped to eps
    return [((U(3, 4), U(3, 4)), {}), ((U(3, 4), U(3, 4)), {"dim": 0}), ((U(2, 3, 4), U(4)), {"dim": -1}),
            ((z, U(3, 4)), {"eps": 1e-6}), ((U(5), U(5)), {"dim": 0})]


def _cos_grad(args, kwargs):
    if np.any(np.all(args[0] == 0, axis=kwargs.get("dim", 1))):
        return "a zero vector sits at the clamp's corner: PyTorch's gradient is the unclamped one there"
    return True


@composite(ref=_ref_cosine_similarity, samples=_cos_samples, torch="torch.nn.functional.cosine_similarity",
           differentiable=_cos_grad)
@_autocast_as("cosine_similarity")
def cosine_similarity(x1, x2, dim=1, eps=1e-8):
    """x1 . x2 / (max(|x1|, eps) max(|x2|, eps)) along dim (each normalised first, as PyTorch)."""
    from ..ops.shape import broadcast_to
    from ..geometry import broadcast_shapes

    _tensor("cosine_similarity", "x1", x1)
    _tensor("cosine_similarity", "x2", x2)
    shape = broadcast_shapes(tuple(x1.shape), tuple(x2.shape))
    x1, x2 = broadcast_to(x1, shape), broadcast_to(x2, shape)
    n1 = x1.norm(2, dim, keepdim=True)
    n2 = x2.norm(2, dim, keepdim=True)
    n1, n2 = _with_grad_of(n1.clamp(min=eps), n1), _with_grad_of(n2.clamp(min=eps), n2)
    return ((x1 / n1) * (x2 / n2)).sum(dim)


def _ref_pairwise_distance(x1, x2, p=2.0, eps=1e-6, keepdim=False):
    d = np.abs(x1 - x2 + eps)
    dim = max(np.ndim(x1), np.ndim(x2)) - 1
    if p == np.inf:
        return d.max(dim, keepdims=keepdim)
    if p == 0:
        return (d != 0).sum(dim, keepdims=keepdim).astype(d.dtype)
    return (d ** p).sum(dim, keepdims=keepdim) ** (1.0 / p)


def _pd_samples(dtype=np.float64):
    r = _rng(33)
    U = lambda *s: r.uniform(-2, 2, s).astype(dtype)  # noqa: E731
    return [((U(3, 4), U(3, 4)), {}), ((U(3, 4), U(3, 4)), {"p": 1.0}), ((U(3, 4), U(4)), {"p": 3.0, "keepdim": True}),
            ((U(3, 4), U(3, 4)), {"p": np.inf}), ((U(5), U(5)), {})]


@composite(ref=_ref_pairwise_distance, samples=_pd_samples, torch="torch.nn.functional.pairwise_distance")
def pairwise_distance(x1, x2, p=2.0, eps=1e-6, keepdim=False):
    """The p-norm of x1 - x2 + eps over the last dimension."""
    _tensor("pairwise_distance", "x1", x1)
    _tensor("pairwise_distance", "x2", x2)
    dim = max(x1.ndim, x2.ndim) - 1
    return (x1 - x2 + eps).norm(p, dim if dim >= 0 else None, keepdim=keepdim)


# ---- pair / ranking losses ----------------------------------------------------------------------------

def _ref_cosine_embedding(input1, input2, target, margin=0.0, size_average=None, reduce=None, reduction="mean"):
    reduction = _np_legacy(size_average, reduce, reduction)
    d = 1 if input1.ndim == 2 else 0
    prod = (input1 * input2).sum(d)
    m1 = (input1 * input1).sum(d) + 1e-12
    m2 = (input2 * input2).sum(d) + 1e-12
    cos = prod / np.sqrt(m1 * m2)
    loss = np.where(target == 1, 1 - cos, 0) + np.where(target == -1, np.maximum(cos - margin, 0), 0)
    return _np_reduce(loss.astype(input1.dtype), reduction)


def _cos_emb_samples(dtype=np.float64):
    def make(dt_, r):
        return (r.uniform(-2, 2, (5, 3)).astype(dt_), r.uniform(-2, 2, (5, 3)).astype(dt_),
                np.array([1, -1, 1, -1, -1])), {"margin": 0.2}
    r = _rng(34)
    return _reductions(make)(dtype) + [
        ((r.uniform(-2, 2, 4).astype(dtype), r.uniform(-2, 2, 4).astype(dtype), np.array(-1)), {"margin": -0.5}),
        ((r.uniform(-2, 2, (3, 2)).astype(dtype), r.uniform(-2, 2, (3, 2)).astype(dtype),
          np.array([1.0, -1.0, 1.0], dtype=dtype)), {})]


@composite(ref=_ref_cosine_embedding, samples=_cos_emb_samples, torch="torch.nn.functional.cosine_embedding_loss")
@_autocast_as("cosine_embedding_loss")
def cosine_embedding_loss(input1, input2, target, margin=0, size_average=None, reduce=None, reduction="mean"):
    """1 - cos(x1, x2) where target is 1, max(0, cos(x1, x2) - margin) where it is -1."""
    for n, v in (("input1", input1), ("input2", input2), ("target", target)):
        _tensor("cosine_embedding_loss", n, v)
    reduction = _legacy(size_average, reduce, reduction)
    if input1.ndim not in (1, 2) or tuple(input1.shape) != tuple(input2.shape):
        raise RuntimeError(f"cosine_embedding_loss: expected input1 and input2 of the same 1-D or 2-D shape, got "
                           f"{list(input1.shape)} and {list(input2.shape)}")
    d = 1 if input1.ndim == 2 else 0
    if target.ndim != input1.ndim - 1:
        raise RuntimeError(f"{input1.ndim - 1}D target tensor expects {input1.ndim}D input tensors, but found inputs "
                           f"with sizes {list(input1.shape)} and {list(input2.shape)}.")
    prod = (input1 * input2).sum(d)
    m1 = (input1 * input1).sum(d) + 1e-12
    m2 = (input2 * input2).sum(d) + 1e-12
    cos = prod / (m1 * m2).sqrt()
    loss = where(target == 1, 1 - cos, 0.0) + where(target == -1, (cos - margin).clamp(min=0), 0.0)
    return _reduce(loss, reduction)


def _ref_margin_ranking(input1, input2, target, margin=0.0, size_average=None, reduce=None, reduction="mean"):
    reduction = _np_legacy(size_average, reduce, reduction)
    return _np_reduce(np.maximum(-target * (input1 - input2) + margin, 0).astype(np.result_type(input1, input2)),
                      reduction)


def _mr_samples(dtype=np.float64):
    def make(dt_, r):
        return (r.uniform(-2, 2, 6).astype(dt_), r.uniform(-2, 2, 6).astype(dt_),
                np.array([1, -1, 1, 1, -1, -1], dtype=dt_)), {"margin": 0.3}
    r = _rng(35)
    return _reductions(make)(dtype) + [((r.uniform(-2, 2, (2, 3)).astype(dtype), r.uniform(-2, 2, (2, 3)).astype(dtype),
                                         np.array([[1.0, -1.0, 1.0], [-1.0, -1.0, 1.0]], dtype=dtype)), {})]


@composite(ref=_ref_margin_ranking, samples=_mr_samples, torch="torch.nn.functional.margin_ranking_loss")
@_autocast_as("margin_ranking_loss")
def margin_ranking_loss(input1, input2, target, margin=0, size_average=None, reduce=None, reduction="mean"):
    """max(0, -target (x1 - x2) + margin): target 1 means x1 should rank higher."""
    for n, v in (("input1", input1), ("input2", input2), ("target", target)):
        _tensor("margin_ranking_loss", n, v)
    reduction = _legacy(size_average, reduce, reduction)
    if input1.ndim != input2.ndim or input1.ndim != target.ndim:
        raise RuntimeError(f"margin_ranking_loss : All input tensors should have same dimension but got sizes: "
                           f"input1: {tuple(input1.shape)}, input2: {tuple(input2.shape)}, target: "
                           f"{tuple(target.shape)} ")
    return _reduce((-target * (input1 - input2) + margin).clamp(min=0), reduction)


def _ref_hinge_embedding(input, target, margin=1.0, size_average=None, reduce=None, reduction="mean"):
    reduction = _np_legacy(size_average, reduce, reduction)
    loss = np.where(target != 1, np.maximum(margin - input, 0), 0) + np.where(target != -1, input, 0)
    return _np_reduce(loss.astype(input.dtype), reduction)


def _he_samples(dtype=np.float64):
    def make(dt_, r):
        return (r.uniform(0, 2, (3, 4)).astype(dt_), r.choice([-1.0, 1.0], (3, 4)).astype(dt_)), {"margin": 1.2}
    return _reductions(make)(dtype) + [((_rng(36).uniform(0, 2, 5).astype(dtype), np.array([1.0, -1, -1, 1, -1],
                                                                                          dtype=dtype)), {})]


@composite(ref=_ref_hinge_embedding, samples=_he_samples, torch="torch.nn.functional.hinge_embedding_loss")
@_autocast_as("hinge_embedding_loss")
def hinge_embedding_loss(input, target, margin=1.0, size_average=None, reduce=None, reduction="mean"):
    """x where target is 1, max(0, margin - x) where it is -1 (x: a distance)."""
    _tensor("hinge_embedding_loss", "input", input)
    _tensor("hinge_embedding_loss", "target", target)
    reduction = _legacy(size_average, reduce, reduction)
    loss = where(target != 1, (margin - input).clamp(min=0), 0.0) + where(target != -1, input, 0.0)
    return _reduce(loss, reduction)


def _ref_soft_margin(input, target, size_average=None, reduce=None, reduction="mean"):
    reduction = _np_legacy(size_average, reduce, reduction)
    return _np_reduce(np.log1p(np.exp(-input * target)).astype(input.dtype), reduction)


def _sm_samples(dtype=np.float64):
    def make(dt_, r):
        return (r.uniform(-3, 3, (3, 4)).astype(dt_), r.choice([-1.0, 1.0], (3, 4)).astype(dt_)), {}
    return _reductions(make)(dtype)


@composite(ref=_ref_soft_margin, samples=_sm_samples, torch="torch.nn.functional.soft_margin_loss")
@_autocast_as("soft_margin_loss")
def soft_margin_loss(input, target, size_average=None, reduce=None, reduction="mean"):
    """log(1 + exp(-target x)): the logistic loss for targets in {-1, 1}."""
    _tensor("soft_margin_loss", "input", input)
    _tensor("soft_margin_loss", "target", target)
    reduction = _legacy(size_average, reduce, reduction)
    return _reduce(log1p(exp(-input * target)), reduction)


def _ref_multilabel_soft_margin(input, target, weight=None, size_average=None, reduce=None, reduction="mean"):
    reduction = _np_legacy(size_average, reduce, reduction)

    def logsig(x):
        return np.minimum(x, 0) - np.log1p(np.exp(-np.abs(x)))

    loss = -(target * logsig(input) + (1 - target) * logsig(-input))
    if weight is not None:
        loss = loss * weight
    loss = loss.sum(axis=input.ndim - 1) / input.shape[-1]
    return _np_reduce(loss.astype(input.dtype), reduction)


def _mlsm_samples(dtype=np.float64):
    def make(dt_, r):
        return (r.uniform(-3, 3, (3, 4)).astype(dt_), (r.uniform(0, 1, (3, 4)) > 0.5).astype(dt_)), {}
    r = _rng(37)
    return _reductions(make)(dtype) + [
        ((r.uniform(-3, 3, (3, 4)).astype(dtype), (r.uniform(0, 1, (3, 4)) > 0.5).astype(dtype),
          r.uniform(0.5, 2, 4).astype(dtype)), {"reduction": "sum"}),
        ((r.uniform(-3, 3, 4).astype(dtype), np.array([0.0, 1, 1, 0], dtype=dtype)), {})]


@composite(ref=_ref_multilabel_soft_margin, samples=_mlsm_samples,
           torch="torch.nn.functional.multilabel_soft_margin_loss")
@_autocast_as("multilabel_soft_margin_loss")
def multilabel_soft_margin_loss(input, target, weight=None, size_average=None, reduce=None, reduction="mean"):
    """Binary cross-entropy with logits per class, averaged over the classes (last dim), then reduced."""
    _tensor("multilabel_soft_margin_loss", "input", input)
    _tensor("multilabel_soft_margin_loss", "target", target)
    reduction = _legacy(size_average, reduce, reduction)
    loss = -(target * _log_sigmoid(input) + (1 - target) * _log_sigmoid(-input))
    if weight is not None:
        loss = loss * weight
    c = input.ndim - 1
    loss = loss.sum(c) / input.shape[c]
    return _reduce(loss, reduction)


def _one_hot_mask(t, c):
    """(..., c) bool: t[..., None] == arange(c)."""
    from ..ops.creation import arange

    return t.unsqueeze(-1) == arange(c, device=t.device)


def _check_class_target(name, input, target, dims=(1, 2)):
    if input.ndim not in dims:
        raise ValueError(f"{name}: expected a 1-D or 2-D input, got shape {list(input.shape)}")
    if target.dtype.is_floating_point or target.dtype is _dt.bool_:
        raise RuntimeError(f"{name}: expected a target of integer class indices, got {target.dtype}")
    n = input.shape[0] if input.ndim == 2 else 1
    if target.numel() != n or target.ndim > 1:
        raise RuntimeError(f"inconsistent target size, expected {n} but got {list(target.shape)}")
    c = input.shape[-1]
    if target.numel():
        lo, hi = int(target.min()), int(target.max())
        if lo < 0 or hi >= c:
            raise IndexError(f"{name}: target {lo if lo < 0 else hi} is out of bounds for {c} classes")


def _ref_multi_margin(input, target, p=1, margin=1.0, weight=None, size_average=None, reduce=None, reduction="mean"):
    reduction = _np_legacy(size_average, reduce, reduction)
    x = np.atleast_2d(input)
    t = np.atleast_1d(target)
    xy = np.take_along_axis(x, t[:, None], 1)
    z = np.maximum(margin - xy + x, 0) ** p
    if weight is not None:
        z = z * weight[t][:, None]
    z[np.arange(len(t)), t] = 0
    loss = z.sum(1) / x.shape[1]
    if input.ndim == 1:
        loss = loss.reshape(())
    return _np_reduce(loss.astype(input.dtype), reduction)


def _mm_samples(dtype=np.float64):
    def make(dt_, r):
        return (r.uniform(-1, 1, (4, 5)).astype(dt_), np.array([0, 4, 2, 2])), {}
    r = _rng(38)
    x = r.uniform(-1, 1, (4, 5)).astype(dtype)
    return _reductions(make)(dtype) + [
        ((x, np.array([1, 0, 3, 4])), {"p": 2, "margin": 0.5}),
        ((x, np.array([1, 0, 3, 4]), 1, 1.0, r.uniform(0.5, 2, 5).astype(dtype)), {"reduction": "sum"}),
        ((r.uniform(-1, 1, 3).astype(dtype), np.array(1)), {})]


@composite(ref=_ref_multi_margin, samples=_mm_samples, torch="torch.nn.functional.multi_margin_loss")
@_autocast_as("multi_margin_loss")
def multi_margin_loss(input, target, p=1, margin=1.0, weight=None, size_average=None, reduce=None, reduction="mean"):
    """The multi-class hinge loss: sum over j != y of max(0, margin - x[y] + x[j]) ** p, over C classes."""
    _tensor("multi_margin_loss", "input", input)
    _tensor("multi_margin_loss", "target", target)
    if p not in (1, 2):
        raise ValueError("only p == 1 and p == 2 supported")
    if weight is not None and weight.ndim != 1:
        raise ValueError("weight must be one-dimensional")
    reduction = _legacy(size_average, reduce, reduction)
    _check_class_target("multi_margin_loss", input, target)
    x = input if input.ndim == 2 else input.reshape(1, -1)
    t = target.reshape(-1)
    xy = x.gather(1, t.reshape(-1, 1))
    z = (margin - xy + x).clamp(min=0)
    if p == 2:
        z = z * z
    if weight is not None:
        z = z * weight[t].reshape(-1, 1)
    z = where(_one_hot_mask(t, x.shape[1]), 0.0, z)
    loss = z.sum(1) / x.shape[1]
    return _reduce(loss if input.ndim == 2 else loss.reshape(()), reduction)


def _ref_multilabel_margin(input, target, size_average=None, reduce=None, reduction="mean"):
    reduction = _np_legacy(size_average, reduce, reduction)
    x, t = np.atleast_2d(input), np.atleast_2d(target)
    out = np.zeros(x.shape[0], dtype=input.dtype)
    for i in range(x.shape[0]):
        labels = []
        for v in t[i]:
            if v < 0:
                break
            labels.append(v)
        is_t = np.zeros(x.shape[1], bool)
        is_t[labels] = True
        for j in labels:
            out[i] += np.maximum(1 - (x[i, j] - x[i, ~is_t]), 0).sum()
    out /= x.shape[1]
    return _np_reduce(out if input.ndim == 2 else out.reshape(()), reduction)


def _mlm_samples(dtype=np.float64):
    def make(dt_, r):
        return (r.uniform(-1, 1, (3, 4)).astype(dt_), np.array([[3, 0, -1, 1], [0, 1, 2, 3], [1, -1, 0, 0]])), {}
    return _reductions(make)(dtype) + [((_rng(39).uniform(-1, 1, 4).astype(dtype), np.array([2, -1, 0, 0])), {})]


@composite(ref=_ref_multilabel_margin, samples=_mlm_samples, torch="torch.nn.functional.multilabel_margin_loss")
@_autocast_as("multilabel_margin_loss")
def multilabel_margin_loss(input, target, size_average=None, reduce=None, reduction="mean"):
    """Multi-label hinge loss: target holds class indices, ended by the first -1; for each target class j and
    non-target class k, max(0, 1 - (x[j] - x[k])), summed and divided by C."""
    _tensor("multilabel_margin_loss", "input", input)
    _tensor("multilabel_margin_loss", "target", target)
    reduction = _legacy(size_average, reduce, reduction)
    if tuple(target.shape) != tuple(input.shape) or input.ndim not in (1, 2):
        raise RuntimeError(f"multilabel_margin_loss: inconsistent target size: {list(target.shape)} for input of "
                           f"size: {list(input.shape)}")
    x = input if input.ndim == 2 else input.reshape(1, -1)
    t = target.reshape(x.shape)
    n, c = x.shape
    # the labels before the first -1 of each row, as a (n, c) mask over the target list
    from ..ops.creation import arange

    pos = arange(c, device=x.device).reshape(1, -1).expand(n, c)
    first_stop = where(t < 0, pos, c).amin(1, keepdim=True)
    valid = pos < first_stop
    tc = where(valid, t, 0)
    onehots = _one_hot_mask(tc, c).to(x.dtype) * valid.to(x.dtype).unsqueeze(-1)  # (n, c_targets, c)
    is_target = onehots.sum(1) > 0  # (n, c)
    xj = x.gather(1, tc)  # (n, c_targets): x at each listed target
    hinge = (1 - (xj.unsqueeze(-1) - x.unsqueeze(1))).clamp(min=0)  # (n, c_targets, c)
    keep = valid.unsqueeze(-1) & ~is_target.unsqueeze(1)
    loss = where(keep, hinge, 0.0).sum((1, 2)) / c
    return _reduce(loss if input.ndim == 2 else loss.reshape(()), reduction)


# ---- triplet ----------------------------------------------------------------------------------------------

def _ref_triplet(anchor, positive, negative, margin=1.0, p=2.0, eps=1e-6, swap=False, size_average=None, reduce=None,
                 reduction="mean"):
    reduction = _np_legacy(size_average, reduce, reduction)
    dp = _ref_pairwise_distance(anchor, positive, p, eps)
    dn = _ref_pairwise_distance(anchor, negative, p, eps)
    if swap:
        dn = np.minimum(dn, _ref_pairwise_distance(positive, negative, p, eps))
    return _np_reduce(np.maximum(margin + dp - dn, 0).astype(anchor.dtype), reduction)


def _triplet_samples(dtype=np.float64):
    def make(dt_, r):
        return tuple(r.uniform(-1, 1, (4, 3)).astype(dt_) for _ in range(3)), {}
    r = _rng(41)
    A = lambda *s: r.uniform(-1, 1, s).astype(dtype)  # noqa: E731
    return _reductions(make)(dtype) + [((A(4, 3), A(4, 3), A(4, 3)), {"margin": 0.5, "p": 1.0, "swap": True}),
                                       ((A(3), A(3), A(3)), {"margin": 2.0}),
                                       ((A(4, 3), A(4, 3), A(4, 3)), {"p": 3.0, "eps": 1e-3})]


@composite(ref=_ref_triplet, samples=_triplet_samples, torch="torch.nn.functional.triplet_margin_loss")
@_autocast_as("triplet_margin_loss")
def triplet_margin_loss(anchor, positive, negative, margin=1.0, p=2, eps=1e-6, swap=False, size_average=None,
                        reduce=None, reduction="mean"):
    """max(d(a, p) - d(a, n) + margin, 0) with d = pairwise_distance(p, eps); swap: d(a, n) becomes
    min(d(a, n), d(p, n))."""
    for n, v in (("anchor", anchor), ("positive", positive), ("negative", negative)):
        _tensor("triplet_margin_loss", n, v)
    reduction = _legacy(size_average, reduce, reduction)
    if not (anchor.ndim == positive.ndim == negative.ndim):
        raise RuntimeError(f"The anchor, positive, and negative tensors are expected to have the same number of "
                           f"dimensions, but got: anchor {anchor.ndim}D, positive {positive.ndim}D, and negative "
                           f"{negative.ndim}D inputs")
    if margin <= 0:
        raise ValueError(f"triplet_margin_loss: expected margin to be greater than 0, got {margin} instead")
    dp = pairwise_distance(anchor, positive, p, eps)
    dn = pairwise_distance(anchor, negative, p, eps)
    if swap:
        from ..ops.elementwise import minimum

        dn = minimum(dn, pairwise_distance(positive, negative, p, eps))
    return _reduce((margin + dp - dn).clamp(min=0), reduction)


def _ref_triplet_distance(anchor, positive, negative, margin=1.0, swap=False, reduction="mean"):
    return _ref_triplet(anchor, positive, negative, margin, 2.0, 1e-6, swap, reduction=reduction)


def _tdist_samples(dtype=np.float64):
    return [(a, {k: v for k, v in kw.items() if k in ("margin", "swap", "reduction")})
            for a, kw in _triplet_samples(dtype)[:5]]


@composite(ref=_ref_triplet_distance, samples=_tdist_samples,
           torch="torch.nn.functional.triplet_margin_with_distance_loss")
def triplet_margin_with_distance_loss(anchor, positive, negative, *, distance_function=None, margin=1.0, swap=False,
                                      reduction="mean"):
    """triplet_margin_loss with any distance (default: pairwise_distance)."""
    if margin <= 0:
        raise ValueError(f"triplet_margin_with_distance_loss: expected margin to be greater than 0, got {margin} "
                         "instead")
    if not (anchor.ndim == positive.ndim == negative.ndim):
        raise RuntimeError(f"The anchor, positive, and negative tensors are expected to have the same number of "
                           f"dimensions, but got: anchor {anchor.ndim}D, positive {positive.ndim}D, and negative "
                           f"{negative.ndim}D inputs")
    d = distance_function if distance_function is not None else pairwise_distance
    dp, dn = d(anchor, positive), d(anchor, negative)
    if swap:
        from ..ops.elementwise import minimum

        dn = minimum(dn, d(positive, negative))
    return _reduce((margin + dp - dn).clamp(min=0), reduction)
