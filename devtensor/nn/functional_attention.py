"""nn.functional's attention: scaled_dot_product_attention and multi_head_attention_forward, in
matmul / softmax / dropout ops so that autograd differentiates them and every backend runs them."""
from __future__ import annotations

import math
import warnings

import numpy as np

from .. import dtypes as _dt
from ..ops import elementwise as _E
from ..ops.creation import tensor, zeros
from ..ops.linalg import linear
from ..ops.autocast import ACTIVE as _AMP
from ..ops.autocast import cast_args as _autocast
from ..ops.shape import cat, pad as _pad_constant
from ..tensor import Tensor
from .functional_base import _dropout, _expect, _softmax


def _repeat_heads(t, r):
    """repeat_interleave(r, dim=-3): each key / value head serves r query heads (grouped-query attention)."""
    shape = tuple(t.shape)
    return t.unsqueeze(-3).expand(*shape[:-2], r, *shape[-2:]).reshape(*shape[:-3], shape[-3] * r, *shape[-2:])


def _lin(x, w, b=None):
    """linear over the last dim as ONE 2-D GEMM (numpy runs a 3-D matmul as a slower loop)."""
    if x.ndim == 2:
        return linear(x, w, b)
    lead = tuple(x.shape[:-1])
    return linear(x.reshape(-1, x.shape[-1]), w, b).reshape(*lead, w.shape[0])


def _masked_rows_to_zero(scores, attn):
    """PyTorch's safe softmax: a row whose every score is -inf attends to nothing (zeros, zero
    gradient) instead of giving NaN."""
    dead = scores.amax(-1, keepdim=True) == -math.inf
    return _E.where(dead, 0.0, attn)


def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
                                 enable_gqa=False):
    """softmax(q @ k.T * scale + mask) @ v over the last two dims, PyTorch's semantics: a boolean
    attn_mask says which positions may be attended (True = take part), a float one is added to the
    scores; is_causal masks the upper triangle; a row with no position left gives zeros."""
    op = "scaled_dot_product_attention"
    if _AMP[0]:  # a float attn_mask too: the scores stay in autocast's dtype
        query, key, value, attn_mask = _autocast(op, query, key, value, attn_mask)
    for i, (n, t) in enumerate((("query", query), ("key", key), ("value", value))):
        _expect(op, n, t, i + 1)
    if query.ndim < 2 or key.ndim < 2 or value.ndim < 2:
        raise RuntimeError(f"{op}: query, key and value must be at least 2-D, got {query.ndim}-D, {key.ndim}-D and "
                           f"{value.ndim}-D")
    if query.shape[-1] != key.shape[-1]:
        raise RuntimeError(f"{op}: query and key must have the same embedding size, got {query.shape[-1]} and "
                           f"{key.shape[-1]}")
    if key.shape[-2] != value.shape[-2]:
        raise RuntimeError(f"{op}: key and value must have the same sequence length, got {key.shape[-2]} and "
                           f"{value.shape[-2]}")
    if not query.dtype.is_floating_point or query.dtype is not key.dtype or key.dtype is not value.dtype:
        raise RuntimeError(f"{op}: Expected query, key, and value to have the same floating dtype, but got "
                           f"query.dtype: {query.dtype}, key.dtype: {key.dtype} and value.dtype: {value.dtype}")
    if attn_mask is not None and is_causal:
        raise RuntimeError("_scaled_dot_product_attention: Explicit attn_mask should not be set when is_causal=True")
    if not 0.0 <= dropout_p <= 1.0:
        raise ValueError(f"{op}: dropout_p must be in [0, 1], got {dropout_p}")
    L, S, E = query.shape[-2], key.shape[-2], query.shape[-1]
    if enable_gqa and query.ndim >= 3 and key.shape[-3] != query.shape[-3]:
        hq, hk = query.shape[-3], key.shape[-3]
        if hq % hk:
            raise RuntimeError(f"{op}: the number of query heads ({hq}) must be a multiple of key heads ({hk})")
        key, value = _repeat_heads(key, hq // hk), _repeat_heads(value, hq // hk)
    s = (1.0 / math.sqrt(E)) if scale is None else float(scale)
    scores = (query * s) @ key.transpose(-2, -1)
    masked = False
    if is_causal:
        upper = tensor(np.triu(np.ones((L, S), dtype=bool), 1), device=query.device)
        scores = scores.masked_fill(upper, -math.inf)
    elif attn_mask is not None:
        _expect(op, "attn_mask", attn_mask, 4)
        if attn_mask.dtype is _dt.bool_:
            scores = scores.masked_fill(~attn_mask, -math.inf)
        else:
            scores = scores + attn_mask
        masked = True
    attn = _softmax(scores, -1)
    if masked:
        attn = _masked_rows_to_zero(scores, attn)
    if dropout_p > 0.0:
        attn = _dropout(attn, dropout_p)
    return attn @ value


def _canonical_mask(mask, mask_name, other_type, other_name, target_type, check_other=True):
    """A boolean mask (True = masked out, the nn.MultiheadAttention convention) -> a float mask of
    -inf there and 0 elsewhere; a float mask unchanged (PyTorch's F._canonical_mask)."""
    if mask is None:
        return None
    if not isinstance(mask, Tensor):
        raise TypeError(f"{mask_name} must be a Tensor, got {type(mask).__name__}")
    if mask.dtype is _dt.bool_:
        if check_other and other_type is not None and other_type is not _dt.bool_:
            warnings.warn(f"Support for mismatched {mask_name} and {other_name} is deprecated. Use same type for both "
                          "instead.")
        return zeros(tuple(mask.shape), dtype=target_type, device=mask.device).masked_fill(mask, -math.inf)
    if not mask.dtype.is_floating_point:
        raise AssertionError(f"only bool and floating types of {mask_name} are supported")
    return mask


def _none_or_dtype(t):
    return None if t is None else t.dtype


def multi_head_attention_forward(query, key, value, embed_dim_to_check, num_heads, in_proj_weight, in_proj_bias,
                                 bias_k, bias_v, add_zero_attn, dropout_p, out_proj_weight, out_proj_bias,
                                 training=True, key_padding_mask=None, need_weights=True, attn_mask=None,
                                 use_separate_proj_weight=False, q_proj_weight=None, k_proj_weight=None,
                                 v_proj_weight=None, static_k=None, static_v=None, average_attn_weights=True,
                                 is_causal=False):
    """F.multi_head_attention_forward: inputs (L, N, E) (or unbatched (L, E)); PyTorch's algorithm."""
    is_batched = query.ndim == 3
    if not is_batched:
        if query.ndim != 2 or key.ndim != 2 or value.ndim != 2:
            raise AssertionError(f"query should be unbatched 2D or batched 3D tensor but received {query.ndim}-D "
                                 "query tensor")
        query, key, value = query.unsqueeze(1), key.unsqueeze(1), value.unsqueeze(1)
        if key_padding_mask is not None:
            key_padding_mask = key_padding_mask.unsqueeze(0)
    elif key.ndim != 3 or value.ndim != 3:
        raise AssertionError(f"For batched (3-D) `query`, expected `key` and `value` to be 3-D but found {key.ndim}-D "
                             f"and {value.ndim}-D tensors respectively")
    tgt_len, bsz, embed_dim = query.shape
    src_len = key.shape[0]
    key_padding_mask = _canonical_mask(key_padding_mask, "key_padding_mask", _none_or_dtype(attn_mask), "attn_mask",
                                       query.dtype)
    if is_causal and attn_mask is None:
        raise RuntimeError("Need attn_mask if specifying the is_causal hint. You may use the Transformer module method "
                           "`generate_square_subsequent_mask` to create this mask.")
    if is_causal and key_padding_mask is None and not need_weights:
        attn_mask = None  # the hint: scaled_dot_product_attention masks the upper triangle itself
    else:
        attn_mask = _canonical_mask(attn_mask, "attn_mask", None, "", query.dtype, check_other=False)
        if key_padding_mask is not None:
            is_causal = False
    if embed_dim != embed_dim_to_check:
        raise AssertionError(f"was expecting embedding dimension of {embed_dim_to_check}, but got {embed_dim}")
    head_dim = embed_dim // num_heads
    if head_dim * num_heads != embed_dim:
        raise AssertionError(f"embed_dim {embed_dim} not divisible by num_heads {num_heads}")
    if key.shape[:2] != value.shape[:2]:
        raise AssertionError(f"key shape {list(key.shape)} does not match value shape {list(value.shape)}")

    # input projections
    if not use_separate_proj_weight:
        E = embed_dim
        if key is value and query is key:
            proj = linear(query.reshape(-1, E), in_proj_weight, in_proj_bias)
            q, k, v = (p.reshape(tgt_len, bsz, E) for p in proj.chunk(3, -1))
        else:
            wq, wk, wv = in_proj_weight.chunk(3)
            bq, bk, bv = in_proj_bias.chunk(3) if in_proj_bias is not None else (None, None, None)
            q = _lin(query, wq, bq)
            k, v = _lin(key, wk, bk), _lin(value, wv, bv)
    else:
        bq, bk, bv = in_proj_bias.chunk(3) if in_proj_bias is not None else (None, None, None)
        q, k, v = _lin(query, q_proj_weight, bq), _lin(key, k_proj_weight, bk), _lin(value, v_proj_weight, bv)

    if attn_mask is not None:
        if attn_mask.ndim == 2:
            if tuple(attn_mask.shape) != (tgt_len, src_len):
                raise RuntimeError(f"The shape of the 2D attn_mask is {list(attn_mask.shape)}, but should be "
                                   f"{(tgt_len, src_len)}.")
            attn_mask = attn_mask.unsqueeze(0)
        elif attn_mask.ndim == 3:
            if tuple(attn_mask.shape) != (bsz * num_heads, tgt_len, src_len):
                raise RuntimeError(f"The shape of the 3D attn_mask is {list(attn_mask.shape)}, but should be "
                                   f"{(bsz * num_heads, tgt_len, src_len)}.")
        else:
            raise RuntimeError(f"attn_mask's dimension {attn_mask.ndim} is not supported")

    if bias_k is not None and bias_v is not None:
        if static_k is not None or static_v is not None:
            raise AssertionError("bias cannot be added to static key/value.")
        k = cat([k, bias_k.expand(1, bsz, embed_dim)])
        v = cat([v, bias_v.expand(1, bsz, embed_dim)])
        if attn_mask is not None:
            attn_mask = _pad_constant(attn_mask, (0, 1))
        if key_padding_mask is not None:
            key_padding_mask = _pad_constant(key_padding_mask, (0, 1))

    q = q.reshape(tgt_len, bsz * num_heads, head_dim).transpose(0, 1)
    k = (k.reshape(k.shape[0], bsz * num_heads, head_dim).transpose(0, 1) if static_k is None else static_k)
    v = (v.reshape(v.shape[0], bsz * num_heads, head_dim).transpose(0, 1) if static_v is None else static_v)

    if add_zero_attn:
        z = zeros((bsz * num_heads, 1, head_dim), dtype=q.dtype, device=q.device)
        k, v = cat([k, z], 1), cat([v, z], 1)
        if attn_mask is not None:
            attn_mask = _pad_constant(attn_mask, (0, 1))
        if key_padding_mask is not None:
            key_padding_mask = _pad_constant(key_padding_mask, (0, 1))
    src_len = k.shape[1]

    if key_padding_mask is not None:
        if tuple(key_padding_mask.shape) != (bsz, src_len):
            raise AssertionError(f"expecting key_padding_mask shape of {(bsz, src_len)}, but got "
                                 f"{tuple(key_padding_mask.shape)}")
        kpm = key_padding_mask.reshape(bsz, 1, 1, src_len).expand(bsz, num_heads, 1, src_len)
        kpm = kpm.reshape(bsz * num_heads, 1, src_len)
        attn_mask = kpm if attn_mask is None else attn_mask + kpm

    if not training:
        dropout_p = 0.0

    if need_weights:
        scores = (q * math.sqrt(1.0 / head_dim)) @ k.transpose(-2, -1)
        if attn_mask is not None:
            scores = scores + attn_mask
        w = _softmax(scores, -1)
        if dropout_p > 0.0:
            w = _dropout(w, dropout_p)
        out = w @ v
        out = out.transpose(0, 1).reshape(tgt_len * bsz, embed_dim)
        out = linear(out, out_proj_weight, out_proj_bias).reshape(tgt_len, bsz, embed_dim)
        w = w.reshape(bsz, num_heads, tgt_len, src_len)
        if average_attn_weights:
            w = w.mean(1)
        if not is_batched:
            out, w = out.squeeze(1), w.squeeze(0)
        return out, w
    if attn_mask is not None:
        if attn_mask.shape[0] == 1 and attn_mask.ndim == 3:
            attn_mask = attn_mask.unsqueeze(0)
        else:
            attn_mask = attn_mask.reshape(bsz, num_heads, -1, src_len)
    q = q.reshape(bsz, num_heads, tgt_len, head_dim)
    k = k.reshape(bsz, num_heads, src_len, head_dim)
    v = v.reshape(bsz, num_heads, src_len, head_dim)
    out = scaled_dot_product_attention(q, k, v, attn_mask, dropout_p, is_causal)
    out = out.permute(2, 0, 1, 3).reshape(bsz * tgt_len, embed_dim)
    out = linear(out, out_proj_weight, out_proj_bias).reshape(tgt_len, bsz, embed_dim)
    if not is_batched:
        out = out.squeeze(1)
    return out, None


__all__ = sorted(n for n, v in list(globals().items())
                 if not n.startswith("_") and callable(v) and getattr(v, "__module__", None) == __name__)
