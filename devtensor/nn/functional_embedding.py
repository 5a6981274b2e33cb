"""nn.functional's bilinear and embedding_bag."""
from __future__ import annotations

import math

import numpy as np

from ..autograd.grad_mode import no_grad
from ..ops import elementwise as _E
from ..ops.creation import full, tensor, zeros
from ..ops.shape import cat
from .functional_base import _expect


def bilinear(input1, input2, weight, bias=None):
    """y[..., o] = input1 @ weight[o] @ input2 + bias[o]; weight (out, in1, in2)."""
    op = "bilinear"
    _expect(op, "input1", input1)
    _expect(op, "input2", input2, 2)
    _expect(op, "weight", weight, 3)
    if weight.ndim != 3 or input1.shape[-1] != weight.shape[1] or input2.shape[-1] != weight.shape[2]:
        raise RuntimeError(f"{op}: expected input1 (..., {weight.shape[1] if weight.ndim == 3 else '?'}), input2 "
                           f"(..., in2) and weight (out, in1, in2), got {list(input1.shape)}, {list(input2.shape)} and "
                           f"{list(weight.shape)}")
    if tuple(input1.shape[:-1]) != tuple(input2.shape[:-1]):
        raise RuntimeError(f"{op}: input1 and input2 must have the same batch dimensions, got {list(input1.shape)} and "
                           f"{list(input2.shape)}")
    out_f, in1, in2 = weight.shape
    lead = tuple(input1.shape[:-1])
    t = input1.reshape(-1, in1) @ weight.permute(1, 0, 2).reshape(in1, out_f * in2)
    y = (t.reshape(-1, out_f, in2) * input2.reshape(-1, 1, in2)).sum(-1)
    if bias is not None:
        y = y + bias
    return y.reshape(*lead, out_f)


def embedding_bag(input, weight, offsets=None, max_norm=None, norm_type=2, scale_grad_by_freq=False, mode="mean",
                  sparse=False, per_sample_weights=None, include_last_offset=False, padding_idx=None):
    """F.embedding_bag: sums / means / maxima of bags of embeddings, the bags given as the rows of a 2-D
    input or by offsets into a 1-D one. Empty bags give zeros; padding_idx entries do not count."""
    op = "embedding_bag"
    _expect(op, "input", input)
    _expect(op, "weight", weight, 2)
    if mode not in ("sum", "mean", "max"):
        raise ValueError(f"{op}: mode has to be one of sum, mean or max")
    if input.dtype.is_floating_point:
        raise RuntimeError(f"{op}: expected input of an integer dtype (indices), got {input.dtype.name}")
    if per_sample_weights is not None:
        if mode != "sum":
            raise NotImplementedError(f"embedding_bag: per_sample_weights was not None. per_sample_weights is only "
                                      f"supported for mode='sum' (got mode='{mode}'). Please open a feature request "
                                      f"on GitHub.")
        if tuple(per_sample_weights.shape) != tuple(input.shape):
            raise ValueError(f"{op}: embedding_bag: If per_sample_weights ({list(per_sample_weights.shape)}) is not "
                             f"None, then it must have the same shape as the input ({list(input.shape)})")
    idx = np.asarray(input.cpu()._data).astype(np.int64)
    num = weight.shape[0]
    if padding_idx is not None:
        if not -num <= padding_idx < num:
            raise AssertionError("padding_idx must be within num_embeddings")
        padding_idx %= num
    if idx.size and (idx.min() < 0 or idx.max() >= num):
        raise IndexError(f"{op}: index out of range in self: indices must be in [0, {num}), got "
                         f"[{idx.min()}, {idx.max()}]")
    if input.ndim == 2:
        if offsets is not None:
            raise ValueError(f"{op}: if input is 2D, then offsets has to be None, as input is treated is a mini-batch "
                             f"of fixed length sequences. However, found offsets of type {type(offsets).__name__}")
        B, Lm = idx.shape
        pos = np.arange(idx.size, dtype=np.int64).reshape(B, Lm)
        valid = np.ones((B, Lm), dtype=bool)
    elif input.ndim == 1:
        if offsets is None:
            raise ValueError(f"{op}: offsets has to be a 1D Tensor but got None")
        off = np.asarray(offsets.cpu()._data).astype(np.int64).reshape(-1)
        if off.size == 0 or off[0] != 0:
            raise RuntimeError(f"{op}: offsets[0] has to be 0, i.e., the first sequence in the mini-batch has to start "
                               f"from position 0. However, got {off[0] if off.size else 'an empty offsets'}")
        ends = list(off[1:]) + [idx.size] if not include_last_offset else list(off[1:])
        starts = list(off) if not include_last_offset else list(off[:-1])
        if any(e < s for s, e in zip(starts, ends)) or (ends and max(ends) > idx.size):
            raise RuntimeError(f"{op}: offsets must be non-decreasing and within the input's {idx.size} elements")
        B = len(starts)
        Lm = max([e - s for s, e in zip(starts, ends)] + [0])
        pos = np.zeros((B, max(Lm, 1)), dtype=np.int64)
        valid = np.zeros((B, max(Lm, 1)), dtype=bool)
        for b, (s, e) in enumerate(zip(starts, ends)):
            pos[b, :e - s] = np.arange(s, e)
            valid[b, :e - s] = True
    else:
        raise ValueError(f"{op}: input has to be 1D or 2D Tensor, but got Tensor of dimension {input.ndim}")
    flat = idx.reshape(-1)
    ids = np.where(valid, flat[pos] if flat.size else 0, num)
    if padding_idx is not None:
        valid &= ids != padding_idx
        ids = np.where(valid, ids, num)
    dev = weight.device
    if max_norm is not None:
        with no_grad():
            rows = np.unique(flat)
            if rows.size:
                r = tensor(rows, device=dev)
                w = weight[r]
                norms = w.norm(norm_type, 1, keepdim=True)
                scale = _E.where(norms > max_norm, max_norm / (norms + 1e-7), 1.0)
                weight[r] = w * scale
    fill = -math.inf if mode == "max" else 0.0
    table = cat([weight, full((1, weight.shape[1]), fill, dtype=weight.dtype, device=dev)], 0)
    e = table[tensor(ids, device=dev)]                                   # (B, L, D)
    vmask = tensor(valid, device=dev)
    if mode == "max":
        out = e.amax(1)
        return _E.where(vmask.any(1, keepdim=True), out, 0.0)
    if per_sample_weights is not None:
        psw = per_sample_weights.reshape(-1)
        slot = tensor(np.where(valid, pos, idx.size), device=dev)
        psw = cat([psw, zeros((1,), dtype=psw.dtype, device=dev)], 0)[slot]
        e = e * psw.unsqueeze(-1)
    out = e.sum(1)
    if mode == "mean":
        cnt = valid.sum(1, keepdims=True).astype(np.float64)
        out = out / tensor(np.maximum(cnt, 1.0), dtype=out.dtype, device=dev)
    return out


__all__ = sorted(n for n, v in list(globals().items())
                 if not n.startswith("_") and callable(v) and getattr(v, "__module__", None) == __name__)
