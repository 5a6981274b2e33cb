"""ctc_loss: the connectionist temporal classification loss (Graves et al. 2006) over the blank-extended
targets, its log-space forward recursion in Tensor ops, and a numpy reference."""
from __future__ import annotations

import math

import numpy as np

from ..ops._api import composite
from ..ops.elementwise import where
from ..tensor import Tensor
from .losses_base import _np_reduce, _reduce, _rng, _tensor
from ..ops.autocast import autocast_as as _autocast_as


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
@_autocast_as("ctc_loss")
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
