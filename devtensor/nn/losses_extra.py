"""More of torch.nn.functional's losses, written in Tensor ops (so every device and double backward come
from the ops' rules): huber_loss, kl_div, cosine_embedding_loss, margin_ranking_loss, hinge_embedding_loss,
soft_margin_loss, multilabel_soft_margin_loss, multi_margin_loss, multilabel_margin_loss,
triplet_margin_loss, triplet_margin_with_distance_loss, poisson_nll_loss, gaussian_nll_loss, ctc_loss,
and the distances they use, cosine_similarity and pairwise_distance. Each is a composite (numpy reference
and samples below), so tests/test_composites.py checks it forward, with gradcheck and gradgradcheck.

PyTorch's formulas are followed term by term (ATen's loss.cpp and torch/nn/functional.py), including its
legacy size_average / reduce flags and its choices at the edges: the 1e-12 in cosine_embedding_loss, the
eps inside pairwise_distance, variances clamped to eps with the gradient passed through, kl_div's
'batchmean' and its warning for 'mean'."""
from __future__ import annotations

import math
import warnings

import numpy as np

from .. import dtypes as _dt
from ..autograd.grad_mode import no_grad
from ..ops._api import composite
from ..ops.elementwise import exp, log, log1p, where
from ..tensor import Tensor

__all__ = ["huber_loss", "kl_div", "cosine_similarity", "pairwise_distance", "cosine_embedding_loss",
           "margin_ranking_loss", "hinge_embedding_loss", "soft_margin_loss", "multilabel_soft_margin_loss",
           "multi_margin_loss", "multilabel_margin_loss", "triplet_margin_loss", "triplet_margin_with_distance_loss",
           "poisson_nll_loss", "gaussian_nll_loss", "ctc_loss"]


# ---- shared ----------------------------------------------------------------------------------------------

def _legacy(size_average, reduce, reduction, stacklevel=4):
    if size_average is None and reduce is None:
        return reduction
    size_average = True if size_average is None else size_average
    reduce = True if reduce is None else reduce
    ret = ("mean" if size_average else "sum") if reduce else "none"
    warnings.warn(f"size_average and reduce args will be deprecated, please use reduction='{ret}' instead.",
                  UserWarning, stacklevel=stacklevel)
    return ret


def _reduce(loss, reduction):
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise ValueError(f"{reduction} is not a valid value for reduction")


def _tensor(name, arg, v):
    if not isinstance(v, Tensor):
        raise TypeError(f"{name}(): argument '{arg}' must be Tensor, not {type(v).__name__}")


def _float(name, *ts):
    for t in ts:
        if not t.dtype.is_floating_point:
            raise RuntimeError(f"{name}: expected a floating point tensor, got {t.dtype}")


def _same_size(name, input, target):
    if tuple(input.shape) != tuple(target.shape):
        warnings.warn(f"Using a target size ({tuple(target.shape)}) that is different to the input size "
                      f"({tuple(input.shape)}). This will likely lead to incorrect results due to broadcasting. "
                      "Please ensure they have the same size.", UserWarning, stacklevel=3)


def _with_grad_of(clamped, original):
    """`clamped`'s value with `original`'s gradient: PyTorch's in-place clamp under no_grad."""
    return original + (clamped - original).detach()


def _log_sigmoid(x):
    # min(x, 0) - log1p(exp(-|x|)): no overflow on either side
    return where(x < 0, x, x * 0) - log1p(exp(-x.abs()))


def _np_reduce(loss, reduction):
    loss = np.asarray(loss)
    if reduction == "mean":
        return np.asarray(loss.mean(), dtype=loss.dtype)
    if reduction == "sum":
        return np.asarray(loss.sum(), dtype=loss.dtype)
    return loss


def _np_legacy(size_average, reduce, reduction):
    if size_average is None and reduce is None:
        return reduction
    size_average = True if size_average is None else size_average
    reduce = True if reduce is None else reduce
    return ("mean" if size_average else "sum") if reduce else "none"


def _rng(seed):
    return np.random.default_rng(seed)


def _reductions(make):
    """Samples for each reduction: make(dtype, rng) -> (args, extra kwargs)."""
    def gen(dtype=np.float64):
        out = []
        for i, red in enumerate(("mean", "sum", "none")):
            args, kw = make(dtype, _rng(40 + i))
            out.append((args, {**kw, "reduction": red}))
        return out

    return gen


# ---- huber ----------------------------------------------------------------------------------------------

def _ref_huber(input, target, reduction="mean", delta=1.0, weight=None):
    d = np.abs(input - target)
    loss = np.where(d < delta, 0.5 * d * d, delta * (d - 0.5 * delta))
    if weight is not None:
        loss = loss * weight
    return _np_reduce(loss, reduction)


def _huber_samples(dtype=np.float64):
    r = _rng(30)
    U = lambda *s, lo=-2.0, hi=2.0: r.uniform(lo, hi, s).astype(dtype)  # noqa: E731
    return [((U(3, 4), U(3, 4)), {}), ((U(3, 4), U(3, 4)), {"reduction": "sum", "delta": 0.5}),
            ((U(3, 4), U(3, 4)), {"reduction": "none", "delta": 2.0}), ((U(), U()), {}),
            ((U(3, 4), U(3, 4)), {"delta": 0.7}),
            ((U(2, 3), U(2, 3), "mean", 1.5, U(2, 3, lo=0.5, hi=2)), {}), ((U(0, 3), U(0, 3)), {"reduction": "sum"})]


@composite(ref=_ref_huber, samples=_huber_samples, torch="torch.nn.functional.huber_loss")
def huber_loss(input, target, reduction="mean", delta=1.0, weight=None):
    """0.5 (x - y)^2 where |x - y| < delta, else delta (|x - y| - delta / 2)."""
    _tensor("huber_loss", "input", input)
    _tensor("huber_loss", "target", target)
    _same_size("huber_loss", input, target)
    if delta <= 0:
        raise RuntimeError(f"huber_loss does not support non-positive values for delta, got {delta}")
    diff = input - target
    d = diff.abs()
    loss = where(d < delta, diff * diff * 0.5, (d - 0.5 * delta) * delta)
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction)


# ---- kl_div -------------------------------------------------------------------------------------------------

def _ref_kl_div(input, target, size_average=None, reduce=None, reduction="mean", log_target=False):
    reduction = _np_legacy(size_average, reduce, reduction)
    if log_target:
        loss = np.exp(target) * (target - input)
    else:
        with np.errstate(all="ignore"):
            loss = np.where(target == 0, 0.0, target * np.log(np.where(target == 0, 1.0, target))) - target * input
    loss = loss.astype(input.dtype)
    if reduction == "batchmean":
        return np.asarray(loss.sum() / (input.shape[0] if input.ndim else 1), dtype=loss.dtype)
    return _np_reduce(loss, reduction)


def _kl_samples(dtype=np.float64):
    r = _rng(31)
    logp = np.log(r.dirichlet(np.ones(4), 3)).astype(dtype)
    q = r.dirichlet(np.ones(4), 3).astype(dtype)
    q0 = q.copy()
    q0[0, 1] = 0.0  # a zero probability: its term is 0 (xlogy)
    return [((logp, q), {"reduction": "batchmean"}), ((logp, q0), {"reduction": "sum"}),
            ((logp, q), {"reduction": "none"}), ((logp, np.log(q)), {"reduction": "batchmean", "log_target": True}),
            ((logp[0], q[0]), {"reduction": "sum"}), ((logp, q), {"size_average": False})]


def _kl_grad(args, kwargs):
    if not kwargs.get("log_target") and np.any(args[1] == 0):
        return ("a zero target probability: t log t has no two-sided derivative at 0 (the gradient is PyTorch's "
                "xlogy one, -input there)")
    return True


@composite(ref=_ref_kl_div, samples=_kl_samples, torch="torch.nn.functional.kl_div", differentiable=_kl_grad)
def kl_div(input, target, size_average=None, reduce=None, reduction="mean", log_target=False):
    """KL(target || exp(input)) per element: target * (log(target) - input) (input holds log-probabilities;
    log_target=True: target does too). reduction='batchmean' divides the sum by the batch size, which is
    the mathematical KL divergence; 'mean' (the default) divides by every element, as PyTorch warns."""
    _tensor("kl_div", "input", input)
    _tensor("kl_div", "target", target)
    reduction = _legacy(size_average, reduce, reduction)
    if reduction == "mean":
        warnings.warn("reduction: 'mean' divides the total loss by both the batch size and the support size."
                      "'batchmean' divides only by the batch size, and aligns with the KL div math definition."
                      "'mean' will be changed to behave the same as 'batchmean' in the next major release.",
                      UserWarning, stacklevel=2)
    if log_target:
        loss = exp(target) * (target - input)
    else:
        zero = target == 0
        loss = where(zero, 0.0, target * log(where(zero, 1.0, target))) - target * input
    if reduction == "batchmean":
        return loss.sum() / (input.shape[0] if input.ndim else 1)
    return _reduce(loss, reduction)


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


# ---- likelihoods ------------------------------------------------------------------------------------------

def _ref_poisson(input, target, log_input=True, full=False, size_average=None, eps=1e-8, reduce=None,
                 reduction="mean"):
    reduction = _np_legacy(size_average, reduce, reduction)
    loss = np.exp(input) - target * input if log_input else input - target * np.log(input + eps)
    if full:
        with np.errstate(all="ignore"):
            st = target * np.log(target) - target + 0.5 * np.log(2 * np.pi * target)
        loss = loss + np.where(target <= 1, 0, st)
    return _np_reduce(loss.astype(input.dtype), reduction)


def _poisson_samples(dtype=np.float64):
    def counts(r, shape):  # full=True switches Stirling's term on past 1: keep targets off that jump
        return r.choice([0.0, 2.0, 3.0, 5.0, 0.5], shape).astype(dtype)

    def make(dt_, r):
        return (r.uniform(-1, 1.5, (3, 4)).astype(dt_), r.integers(0, 6, (3, 4)).astype(dt_)), {}
    r = _rng(42)
    return _reductions(make)(dtype) + [
        ((r.uniform(-1, 1.5, (3, 4)).astype(dtype), counts(r, (3, 4))), {"full": True}),
        ((r.uniform(0.2, 3, (3, 4)).astype(dtype), counts(r, (3, 4)) + 0.25),
         {"log_input": False, "full": True, "reduction": "sum"}),
        ((r.uniform(0.2, 3, (5,)).astype(dtype), r.integers(1, 6, (5,)).astype(dtype)),
         {"log_input": False, "eps": 1e-3})]


@composite(ref=_ref_poisson, samples=_poisson_samples, torch="torch.nn.functional.poisson_nll_loss")
def poisson_nll_loss(input, target, log_input=True, full=False, size_average=None, eps=1e-8, reduce=None,
                     reduction="mean"):
    """Negative log-likelihood of target ~ Poisson(rate): exp(input) - target * input (log_input), else
    input - target * log(input + eps); full adds Stirling's approximation of log(target!) for target > 1."""
    _tensor("poisson_nll_loss", "input", input)
    _tensor("poisson_nll_loss", "target", target)
    reduction = _legacy(size_average, reduce, reduction)
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"{reduction} is not a valid value for reduction")
    loss = exp(input) - target * input if log_input else input - target * log(input + eps)
    if full:
        big = target > 1
        t = where(big, target, 2.0)
        stirling = t * log(t) - t + 0.5 * log(2 * math.pi * t)
        loss = loss + where(big, stirling, 0.0)
    return _reduce(loss, reduction)


def _ref_gaussian(input, target, var, full=False, eps=1e-6, reduction="mean"):
    var = np.asarray(var, dtype=input.dtype) * np.ones_like(input) if np.ndim(var) == 0 else var
    if var.shape != input.shape and input.shape[:-1] == var.shape:
        var = var[..., None]
    var = np.maximum(var, eps)
    loss = 0.5 * (np.log(var) + (input - target) ** 2 / var)
    if full:
        loss = loss + 0.5 * np.log(2 * np.pi)
    return _np_reduce(loss.astype(input.dtype), reduction)


def _gauss_samples(dtype=np.float64):
    r = _rng(43)
    U = lambda *s, lo=-2.0, hi=2.0: r.uniform(lo, hi, s).astype(dtype)  # noqa: E731
    return [((U(3, 4), U(3, 4), U(3, 4, lo=0.2, hi=2)), {}),
            ((U(3, 4), U(3, 4), U(3, lo=0.2, hi=2)), {"full": True, "reduction": "sum"}),   # one var per row
            ((U(3, 4), U(3, 4), U(3, 1, lo=0.2, hi=2)), {"reduction": "none"}),
            ((U(2, 3, 4), U(2, 3, 4), U(2, 1, 4, lo=0.2, hi=2)), {}),
            ((U(3, 4), U(3, 4), 0.5), {"full": True}),
            ((U(3, 4), U(3, 4), U(3, 4, lo=0.2, hi=2) * (U(3, 4) > 0)), {"eps": 1e-2})]  # zeros: clamped to eps


def _gauss_grad(args, kwargs):
    var = args[2]
    if np.ndim(var) and np.any(var <= kwargs.get("eps", 1e-6)):
        return "variances at or below eps sit on the clamp (and a perturbed 0 turns negative, an error)"
    return True


@composite(ref=_ref_gaussian, samples=_gauss_samples, torch="torch.nn.functional.gaussian_nll_loss",
           differentiable=_gauss_grad)
def gaussian_nll_loss(input, target, var, full=False, eps=1e-6, reduction="mean"):
    """Negative log-likelihood of target ~ N(input, var): 0.5 (log(var) + (input - target)^2 / var), var clamped
    to eps (the gradient passes the clamp unchanged, as PyTorch's in-place clamp under no_grad). var may have
    input's shape, one dimension less, or size 1 in one dimension (homoscedastic), or be a float."""
    from ..ops.creation import ones_like

    _tensor("gaussian_nll_loss", "input", input)
    _tensor("gaussian_nll_loss", "target", target)
    if isinstance(var, (int, float)):
        if var < 0:
            raise ValueError("var has negative entry/entries")
        var = ones_like(input) * float(var)
    else:
        with no_grad():
            if bool((var < 0).any()):
                raise ValueError("var has negative entry/entries")
    if tuple(var.shape) != tuple(input.shape):
        if tuple(input.shape[:-1]) == tuple(var.shape):
            var = var.unsqueeze(-1)
        elif input.ndim == var.ndim and sum(y for x, y in zip(input.shape, var.shape) if x != y) == 1:
            pass
        else:
            raise ValueError("var is of incorrect size")
    if reduction not in ("none", "mean", "sum"):
        raise ValueError(reduction + " is not valid")
    var = _with_grad_of(var.clamp(min=eps), var)
    loss = 0.5 * (log(var) + (input - target) ** 2 / var)
    if full:
        loss = loss + 0.5 * math.log(2 * math.pi)
    return _reduce(loss, reduction)


# ---- CTC ----------------------------------------------------------------------------------------------------

def _ref_ctc(log_probs, targets, input_lengths, target_lengths, blank=0, reduction="mean", zero_infinity=False):
    T, N, C = log_probs.shape
    out = np.zeros(N, dtype=log_probs.dtype)
    offs = np.concatenate([[0], np.cumsum(target_lengths)]) if targets.ndim == 1 else None
    for n in range(N):
        tl = int(target_lengths[n])
        tgt = targets[offs[n]:offs[n] + tl] if targets.ndim == 1 else targets[n, :tl]
        ext = [blank]
        for c in tgt:
            ext += [int(c), blank]
        S = len(ext)
        alpha = np.full(S, -np.inf)
        alpha[0] = log_probs[0, n, blank]
        if S > 1:
            alpha[1] = log_probs[0, n, ext[1]]
        for t in range(1, int(input_lengths[n])):
            new = np.full(S, -np.inf)
            for s in range(S):
                terms = [alpha[s]]
                if s >= 1:
                    terms.append(alpha[s - 1])
                if s >= 2 and ext[s] != blank and ext[s] != ext[s - 2]:
                    terms.append(alpha[s - 2])
                m = max(terms)
                new[s] = (m + np.log(sum(np.exp(v - m) for v in terms)) if m > -np.inf else -np.inf) \
                    + log_probs[t, n, ext[s]]
            alpha = new
        ends = [alpha[S - 1]] + ([alpha[S - 2]] if S > 1 else [])
        m = max(ends)
        ll = m + np.log(sum(np.exp(v - m) for v in ends)) if m > -np.inf else -np.inf
        out[n] = -ll
    if zero_infinity:
        out = np.where(np.isinf(out), 0, out)
    if reduction == "mean":
        return np.asarray((out / np.maximum(np.asarray(target_lengths), 1)).mean(), dtype=out.dtype)
    return _np_reduce(out, reduction)


def _ctc_samples(dtype=np.float64):
    r = _rng(44)

    def lp(T, N, C):
        x = r.standard_normal((T, N, C))
        return (x - np.log(np.exp(x).sum(-1, keepdims=True))).astype(dtype)

    targets = np.array([[1, 2, 2], [3, 1, 0]])
    return [((lp(6, 2, 4), targets, np.array([6, 5]), np.array([3, 2])), {}),
            ((lp(6, 2, 4), targets, np.array([6, 6]), np.array([3, 2])), {"reduction": "sum"}),
            ((lp(5, 2, 4), np.array([1, 2, 3]), np.array([5, 4]), np.array([2, 1])), {"reduction": "none"}),
            ((lp(4, 1, 3), np.array([[1, 2]]), np.array([4]), np.array([2])), {"blank": 0}),
            ((lp(5, 2, 4), np.array([[1, 2], [3, 3]]), np.array([5, 3]), np.array([2, 2])),
             {"reduction": "none", "blank": 0}),
            ((lp(3, 2, 4), np.array([[1, 1, 1], [2, 0, 0]]), np.array([3, 3]), np.array([3, 1])),
             {"reduction": "none", "zero_infinity": True, "blank": 0}),  # 1 1 1 needs 5 frames: infinite
            ((lp(5, 2, 4), np.array([[0, 1], [2, 0]]), np.array([5, 5]), np.array([2, 1])), {"blank": 3})]


def _ctc_grad(args, kwargs):
    if kwargs.get("zero_infinity"):
        return "an impossible alignment: zero_infinity zeroes its loss and gradient"
    return True


@composite(ref=_ref_ctc, samples=_ctc_samples, torch="torch.nn.functional.ctc_loss", differentiable=_ctc_grad,
           gradgrad="PyTorch has no double backward for ctc_loss either; here the lattice's unreachable states are "
                    "-inf, where logsumexp's second derivative is 0 * inf")
def ctc_loss(log_probs, targets, input_lengths, target_lengths, blank=0, reduction="mean", zero_infinity=False):
    """Connectionist Temporal Classification: -log of the total probability of every alignment of each target
    with its input frames (blanks between and around labels, repeats merged). log_probs: (T, N, C) or (T, C)
    log-softmax outputs; targets: (N, S) padded or 1-D concatenated; lengths: tensors or sequences of ints.
    The forward recursion runs in Tensor ops (one logsumexp per frame over the extended label sequences of the
    whole batch), so the gradient is autograd's: it agrees with PyTorch's to rounding. reduction='mean'
    divides each loss by its target length, then averages over the batch, as PyTorch."""
    from ..ops.creation import full, tensor
    from ..ops.reduce import logsumexp
    from ..ops.shape import cat, stack

    _tensor("ctc_loss", "log_probs", log_probs)
    batched = log_probs.ndim == 3
    if not batched:
        if log_probs.ndim != 2:
            raise RuntimeError(f"ctc_loss: log_probs must be 2-D or 3-D, got shape {list(log_probs.shape)}")
        log_probs = log_probs.unsqueeze(1)
    T, N, C = log_probs.shape
    il = [int(v) for v in (input_lengths.reshape(-1).tolist() if isinstance(input_lengths, Tensor)
                           else np.atleast_1d(input_lengths))]
    tl = [int(v) for v in (target_lengths.reshape(-1).tolist() if isinstance(target_lengths, Tensor)
                           else np.atleast_1d(target_lengths))]
    tg = np.asarray(targets.cpu()._data if isinstance(targets, Tensor) else targets).astype(np.int64)
    if len(il) != N or len(tl) != N:
        raise RuntimeError(f"ctc_loss: expected input_lengths and target_lengths of size {N}, got {len(il)} and "
                           f"{len(tl)}")
    if not batched and tg.ndim == 1 and tg.shape[0] == tl[0]:
        tg = tg.reshape(1, -1)
    labels = []
    off = 0
    for n in range(N):
        if not 0 <= il[n] <= T:
            raise RuntimeError(f"ctc_loss: expected input_lengths to have value at most {T}, but got value {il[n]}")
        if tg.ndim == 2:
            seq = tg[n, :tl[n]]
        else:
            seq = tg[off:off + tl[n]]
            off += tl[n]
        if len(seq) < tl[n]:
            raise RuntimeError(f"ctc_loss: target_lengths[{n}] = {tl[n]} exceeds the targets' length")
        if np.any((seq < 0) | (seq >= C)) or np.any(seq == blank):
            raise RuntimeError(f"ctc_loss: targets must be class indices in [0, {C}) other than blank={blank}")
        labels.append(seq)
    S = 2 * max(tl + [0]) + 1
    ext = np.full((N, S), blank, dtype=np.int64)
    skip = np.zeros((N, S), dtype=bool)  # s - 2 -> s allowed: a label differing from the label two back
    valid = np.zeros((N, S), dtype=bool)
    for n, seq in enumerate(labels):
        ext[n, 1:2 * len(seq):2] = seq
        valid[n, :2 * len(seq) + 1] = True
        for s in range(3, 2 * len(seq), 2):
            skip[n, s] = ext[n, s] != ext[n, s - 2]
    dev, dtype = log_probs.device, log_probs.dtype
    idx = tensor(ext, device=dev)
    neg_inf = full((N, 1), -math.inf, dtype=dtype, device=dev)
    skip_t, valid_t = tensor(skip, device=dev), tensor(valid, device=dev)
    # emissions of each extended label at each frame: (T, N, S)
    emit = log_probs.gather(2, idx.unsqueeze(0).expand(T, N, S))
    init = np.full((N, S), False)
    init[:, 0] = True
    if S > 1:
        init[:, 1] = [len(seq) > 0 for seq in labels]
    alpha = where(tensor(init, device=dev) & valid_t, emit[0], -math.inf)
    last = np.array(il) - 1
    finals = [None] * N
    for n in range(N):
        if last[n] == 0:
            finals[n] = alpha[n]
    for t in range(1, max(il + [0])):
        a1 = cat([neg_inf, alpha[:, :-1]], 1)
        a2 = where(skip_t, cat([neg_inf, neg_inf, alpha[:, :-2]], 1), -math.inf) if S > 2 else \
            full((N, S), -math.inf, dtype=dtype, device=dev)
        alpha = where(valid_t, logsumexp(stack([alpha, a1, a2]), 0) + emit[t], -math.inf)
        for n in range(N):
            if last[n] == t:
                finals[n] = alpha[n]
    losses = []
    for n in range(N):
        if il[n] == 0:
            losses.append(full((), 0.0 if tl[n] == 0 else math.inf, dtype=dtype, device=dev))
            continue
        e = 2 * tl[n]
        ends = finals[n][e:e + 1] if e == 0 else finals[n][e - 1:e + 1]
        losses.append(-logsumexp(ends, 0))
    loss = stack(losses)
    if zero_infinity:
        loss = where(loss.isinf(), 0.0, loss)
    if reduction == "mean":
        return (loss / tensor([max(v, 1) for v in tl], dtype=dtype, device=dev)).mean()
    if not batched:
        loss = loss.reshape(())
    return _reduce(loss, reduction)
