"""devtensor.nn.functional, continued: the functional forms of the vision / NLP / speech layers
(issue 19): attention, 1-D and transposed convolutions, adaptive and 1-D pooling, resampling
(interpolate, pixel shuffle, padding modes, unfold / fold), group / instance normalisation, channel
dropout, the remaining activations and distances. PyTorch's names, arguments and defaults; each is
written in declared ops (conv2d and its backward ops, pooling, matmul, softmax, indexing, elementwise),
so autograd differentiates it and every backend runs it. nn/functional.py re-exports everything here."""
from __future__ import annotations

import math
import numbers
import warnings

import numpy as np

from .. import dtypes as _dt
from ..autograd.grad_mode import no_grad
from ..dispatch import call
from ..geometry import conv_out
from ..ops import elementwise as _E
from ..ops import nn as _nnops
from ..ops.creation import full, tensor, zeros
from ..ops.linalg import linear
from ..ops.shape import cat, pad as _pad_constant
from ..tensor import Tensor



# ---- the fused primitives, called at the op layer (nn.functional imports this module: no cycle) ------
def _conv2d(x, w, b, stride, padding, dilation, groups):
    return call(_nnops.conv2d, (x, w, b), {"stride": tuple(stride), "padding": tuple(padding),
                                           "dilation": tuple(dilation), "groups": int(groups)})


def _max_pool2d(x, k, s, p, d, ceil_mode, return_indices):
    squeeze = x.ndim == 3
    x = x.unsqueeze(0) if squeeze else x
    y, idx = call(_nnops.max_pool2d, (x,), {"kernel_size": tuple(k), "stride": tuple(s), "padding": tuple(p),
                                            "dilation": tuple(d), "ceil_mode": bool(ceil_mode)})
    if squeeze:
        y, idx = y.squeeze(0), idx.squeeze(0)
    return (y, idx) if return_indices else y


def _avg_pool2d(x, k, s, p, ceil_mode=False, count_include_pad=True):
    squeeze = x.ndim == 3
    x = x.unsqueeze(0) if squeeze else x
    y = call(_nnops.avg_pool2d, (x,), {"kernel_size": tuple(k), "stride": tuple(s), "padding": tuple(p),
                                       "ceil_mode": bool(ceil_mode), "count_include_pad": bool(count_include_pad),
                                       "divisor_override": None})
    return y.squeeze(0) if squeeze else y


def _softmax(x, dim):
    return call(_nnops.softmax, (x,), {"dim": dim % max(x.ndim, 1)})


def _dropout(x, p):
    from ..ops.creation import rand

    if p == 1.0:
        return x * 0.0
    keep = (rand(tuple(x.shape), dtype=x.dtype, device=x.device) >= p).to(x.dtype)
    return x * (keep * (1.0 / (1.0 - p)))


def _expect(op, name, v, pos=1):
    if not isinstance(v, Tensor):
        raise TypeError(f"{op}: argument '{name}' (position {pos}) must be Tensor, not {type(v).__name__}")


def _ntuple(v, n, name, op):
    if isinstance(v, numbers.Integral) and not isinstance(v, bool):
        return (int(v),) * n
    try:
        t = tuple(int(x) for x in v)
    except TypeError:
        raise TypeError(f"{op}: {name} must be an int or a tuple of {n} ints, got {v!r}") from None
    if len(t) == 1:
        return t * n
    if len(t) != n:
        raise ValueError(f"{op}: {name} must be an int or a tuple of {n} ints, got {v!r}")
    return t


# =====================================================================================================
# attention
# =====================================================================================================
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


# =====================================================================================================
# convolution: 1-D (as 2-D with a unit height) and transposed (conv2d's input-gradient op)
# =====================================================================================================
def _same_pads(kernel, dilation):
    """'same' padding per axis: (left, right), the odd pixel on the right as PyTorch puts it."""
    out = []
    for k, d in zip(kernel, dilation):
        total = d * (k - 1)
        out.append((total // 2, total - total // 2))
    return out


def _conv_padding(op, padding, kernel, dilation, stride, n):
    """padding as given (int / tuple / 'valid' / 'same') -> (symmetric padding tuple, extra right pads or None)."""
    if isinstance(padding, str):
        if padding == "valid":
            return (0,) * n, None
        if padding == "same":
            if any(s != 1 for s in stride):
                raise ValueError(f"{op}: padding='same' is not supported for strided convolutions")
            pads = _same_pads(kernel, dilation)
            sym = tuple(lo for lo, _ in pads)
            extra = tuple(hi - lo for lo, hi in pads)
            return sym, (extra if any(extra) else None)
        raise ValueError(f"{op}: Invalid padding string '{padding}', should be one of {{'valid', 'same'}}")
    return _ntuple(padding, n, "padding", op), None


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """F.conv1d: input (N, C_in, L) or (C_in, L), weight (C_out, C_in / groups, K)."""
    op = "conv1d"
    _expect(op, "input", input)
    _expect(op, "weight", weight, 2)
    if input.ndim not in (2, 3) or weight.ndim != 3:
        raise RuntimeError(f"{op}: expected a 2-D (C, L) or 3-D (N, C, L) input and a 3-D weight (out_channels, "
                           f"in_channels/groups, kW), got input {list(input.shape)} and weight {list(weight.shape)}")
    squeeze = input.ndim == 2
    x = input.unsqueeze(0) if squeeze else input
    s, d = _ntuple(stride, 1, "stride", op), _ntuple(dilation, 1, "dilation", op)
    p, extra = _conv_padding(op, padding, (weight.shape[2],), d, s, 1)
    if extra is not None:
        x = _pad_constant(x, (0, extra[0]))
    y = _conv2d(x.unsqueeze(2), weight.unsqueeze(2), bias, (1, s[0]), (0, p[0]), (1, d[0]), groups).squeeze(2)
    return y.squeeze(0) if squeeze else y


def _transposed_out(size, k, s, p, d, op_):
    return (size - 1) * s - 2 * p + d * (k - 1) + op_ + 1


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """F.conv_transpose2d: input (N, C_in, H, W) or (C_in, H, W), weight (C_in, C_out / groups, kH, kW).
    The adjoint of conv2d, computed by conv2d's input-gradient op (the same kernels, autograd through
    its backward rule)."""
    op = "conv_transpose2d"
    _expect(op, "input", input)
    _expect(op, "weight", weight, 2)
    if input.ndim not in (3, 4) or weight.ndim != 4:
        raise RuntimeError(f"{op}: expected a 3-D or 4-D input and a 4-D weight (in_channels, out_channels/groups, "
                           f"kH, kW), got input {list(input.shape)} and weight {list(weight.shape)}")
    if input.dtype is not weight.dtype or (bias is not None and bias.dtype is not input.dtype):
        raise RuntimeError(f"{op}: input and weight must have the same dtype, got {input.dtype.name} and "
                           f"{weight.dtype.name}")
    squeeze = input.ndim == 3
    x = input.unsqueeze(0) if squeeze else input
    s, p = _ntuple(stride, 2, "stride", op), _ntuple(padding, 2, "padding", op)
    opad, d = _ntuple(output_padding, 2, "output_padding", op), _ntuple(dilation, 2, "dilation", op)
    if not isinstance(groups, numbers.Integral) or groups < 1:
        raise RuntimeError(f"{op}: non-positive groups is not supported, got groups={groups!r}")
    for a in range(2):
        if s[a] <= 0 or d[a] <= 0 or p[a] < 0 or opad[a] < 0:
            raise RuntimeError(f"{op}: stride and dilation must be positive, padding and output_padding non-negative; "
                               f"got stride={s}, padding={p}, output_padding={opad}, dilation={d}")
        if opad[a] >= s[a] and opad[a] >= d[a]:
            raise RuntimeError(f"{op}: output padding must be smaller than either stride or dilation, but got "
                               f"output_padding={opad}, stride={s}, dilation={d}")
    n, cin, h, w = x.shape
    if weight.shape[0] != cin:
        raise RuntimeError(f"{op}: expected input with {weight.shape[0]} channels (weight {list(weight.shape)}), "
                           f"got {list(input.shape)}")
    if cin % groups:
        raise RuntimeError(f"{op}: in_channels ({cin}) must be divisible by groups ({groups})")
    kh, kw = weight.shape[2], weight.shape[3]
    cout = weight.shape[1] * groups
    oh, ow = _transposed_out(h, kh, s[0], p[0], d[0], opad[0]), _transposed_out(w, kw, s[1], p[1], d[1], opad[1])
    if oh <= 0 or ow <= 0:
        raise RuntimeError(f"{op}: the output size {oh}x{ow} is too small (input {h}x{w}, kernel {kh}x{kw}, "
                           f"stride {s}, padding {p})")
    attrs = {"stride": s, "padding": p, "dilation": d, "groups": int(groups)}
    if opad[0] < s[0] and opad[1] < s[1]:
        y = call(_nnops.conv2d_backward_input, (x, weight), {**attrs, "x_shape": (n, cout, oh, ow)})
    else:  # output_padding >= stride (allowed below the dilation): the full output, then crop / zero-extend
        fh, fw = _transposed_out(h, kh, s[0], 0, d[0], 0), _transposed_out(w, kw, s[1], 0, d[1], 0)
        full_ = call(_nnops.conv2d_backward_input, (x, weight), {**attrs, "padding": (0, 0),
                                                                "x_shape": (n, cout, fh, fw)})
        full_ = _pad_constant(full_, (0, max(0, p[1] + ow - fw), 0, max(0, p[0] + oh - fh)))
        y = full_[:, :, p[0]:p[0] + oh, p[1]:p[1] + ow]
    if bias is not None:
        y = y + bias.reshape(1, -1, 1, 1)
    return y.squeeze(0) if squeeze else y


def conv_transpose1d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """F.conv_transpose1d: input (N, C_in, L) or (C_in, L), weight (C_in, C_out / groups, K)."""
    op = "conv_transpose1d"
    _expect(op, "input", input)
    _expect(op, "weight", weight, 2)
    if input.ndim not in (2, 3) or weight.ndim != 3:
        raise RuntimeError(f"{op}: expected a 2-D or 3-D input and a 3-D weight, got input {list(input.shape)} and "
                           f"weight {list(weight.shape)}")
    squeeze = input.ndim == 2
    x = input.unsqueeze(0) if squeeze else input
    s, p = _ntuple(stride, 1, "stride", op)[0], _ntuple(padding, 1, "padding", op)[0]
    o, d = _ntuple(output_padding, 1, "output_padding", op)[0], _ntuple(dilation, 1, "dilation", op)[0]
    y = conv_transpose2d(x.unsqueeze(2), weight.unsqueeze(2), bias, (1, s), (0, p), (0, o), groups, (1, d)).squeeze(2)
    return y.squeeze(0) if squeeze else y


# =====================================================================================================
# pooling: 1-D (as 2-D with a unit height) and adaptive
# =====================================================================================================
def _pool1d_input(op, input):
    _expect(op, "input", input)
    if input.ndim not in (2, 3):
        raise RuntimeError(f"{op}: expected a 2-D (C, L) or 3-D (N, C, L) input, got shape {list(input.shape)}")
    return input.unsqueeze(-2)


def max_pool1d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    x = _pool1d_input("max_pool1d", input)
    k = _ntuple(kernel_size, 1, "kernel_size", "max_pool1d")[0]
    s = _ntuple(stride if stride not in (None, []) else k, 1, "stride", "max_pool1d")[0]
    p = _ntuple(padding, 1, "padding", "max_pool1d")[0]
    d = _ntuple(dilation, 1, "dilation", "max_pool1d")[0]
    out = _max_pool2d(x, (1, k), (1, s), (0, p), (1, d), ceil_mode, return_indices)
    if return_indices:
        return out[0].squeeze(-2), out[1].squeeze(-2)
    return out.squeeze(-2)


def avg_pool1d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    x = _pool1d_input("avg_pool1d", input)
    k = _ntuple(kernel_size, 1, "kernel_size", "avg_pool1d")[0]
    s = _ntuple(stride if stride not in (None, []) else k, 1, "stride", "avg_pool1d")[0]
    p = _ntuple(padding, 1, "padding", "avg_pool1d")[0]
    return _avg_pool2d(x, (1, k), (1, s), (0, p), ceil_mode, count_include_pad).squeeze(-2)


def _adaptive_sizes(op, input, output_size, n):
    if input.ndim not in (n + 1, n + 2):
        raise RuntimeError(f"{op}: expected a {n + 1}-D or {n + 2}-D input, got shape {list(input.shape)}")
    if isinstance(output_size, numbers.Integral) or output_size is None:
        output_size = (output_size,) * n
    output_size = tuple(output_size)
    if len(output_size) != n:
        raise ValueError(f"{op}: output_size must have {n} elements, got {output_size!r}")
    spatial = tuple(input.shape[-n:])
    out = tuple(int(o) if o is not None else s for o, s in zip(output_size, spatial))
    for s in spatial:
        if s == 0:
            raise RuntimeError(f"{op}: expected input with non-zero spatial sizes, got {list(input.shape)}")
    if any(o < 0 for o in out):
        raise RuntimeError(f"{op}: output_size must be non-negative, got {out}")
    return spatial, out


def _windows(size, out):
    """PyTorch's adaptive windows: [floor(i*size/out), ceil((i+1)*size/out)) for each output i."""
    return [((i * size) // out, -(-((i + 1) * size) // out)) for i in range(out)]


def _avg_matrix(size, out, dtype, device):
    m = np.zeros((out, size))
    for i, (a, b) in enumerate(_windows(size, out)):
        m[i, a:b] = 1.0 / (b - a)
    return tensor(m, dtype=dtype, device=device)


def _along_last(x, m):
    """x (..., n) @ m.T (m: (k, n)) as ONE 2-D GEMM -> (..., k)."""
    lead = tuple(x.shape[:-1])
    return linear(x.reshape(-1, x.shape[-1]), m).reshape(*lead, m.shape[0])


def _apply_axis(x, m, axis):
    """Apply the (k, n) matrix m along `axis` of x (a separable linear resampling)."""
    if axis == x.ndim - 1 or axis == -1:
        return _along_last(x, m)
    return _along_last(x.transpose(axis, -1), m).transpose(axis, -1)


def adaptive_avg_pool2d(input, output_size):
    """F.adaptive_avg_pool2d. Windows that divide the input evenly run avg_pool2d; others are two small
    GEMMs with PyTorch's window averages (exact, differentiable)."""
    op = "adaptive_avg_pool2d"
    _expect(op, "input", input)
    (h, w), (oh, ow) = _adaptive_sizes(op, input, output_size, 2)
    if oh == 1 and ow == 1:
        return input.mean((-2, -1), keepdim=True)
    if h % oh == 0 and w % ow == 0 and oh and ow:
        return _avg_pool2d(input, (h // oh, w // ow), (h // oh, w // ow), (0, 0))
    x = input
    if ow != w:
        x = _along_last(x, _avg_matrix(w, ow, x.dtype, x.device))
    if oh != h:
        x = _apply_axis(x, _avg_matrix(h, oh, x.dtype, x.device), x.ndim - 2)
    return x


def adaptive_avg_pool1d(input, output_size):
    op = "adaptive_avg_pool1d"
    _expect(op, "input", input)
    (n,), (o,) = _adaptive_sizes(op, input, output_size, 1)
    if o == 1:
        return input.mean(-1, keepdim=True)
    if n % o == 0 and o:
        return avg_pool1d(input, n // o)
    return _along_last(input, _avg_matrix(n, o, input.dtype, input.device))


def _window_index(size, out, device):
    """(out, kmax) indices of each adaptive window, short windows padded with their last index."""
    wins = _windows(size, out)
    kmax = max(b - a for a, b in wins)
    idx = np.array([[min(a + j, b - 1) for j in range(kmax)] for a, b in wins], dtype=np.int64)
    return idx, tensor(idx, device=device)


def _max_along(x, axis, size, out):
    """Max over the adaptive windows along `axis`: (values, the input position each came from)."""
    idx_np, idx = _window_index(size, out, x.device)
    g = x.index_select(axis, idx.reshape(-1))
    shape = tuple(x.shape[:axis]) + (out, idx_np.shape[1]) + tuple(x.shape[axis + 1:])
    v, j = g.reshape(shape).max(axis + 1)
    return v, _take_window(idx, j, axis)


def _take_window(idx, j, axis):
    """idx (out, kmax), j (..., out, ...) index into kmax along `axis` -> idx[i, j] (the input position)."""
    ndim = j.ndim
    out = idx.shape[0]
    shape = [1] * ndim
    shape[axis] = out
    rows = tensor(np.arange(out), device=j.device).reshape(shape)
    return idx[rows.expand(*j.shape), j]


def adaptive_max_pool2d(input, output_size, return_indices=False):
    """F.adaptive_max_pool2d (indices: flat h * W + w positions in each input plane, as PyTorch's)."""
    op = "adaptive_max_pool2d"
    _expect(op, "input", input)
    (h, w), (oh, ow) = _adaptive_sizes(op, input, output_size, 2)
    if h % oh == 0 and w % ow == 0 and oh and ow and input.dtype.is_floating_point:
        k = (h // oh, w // ow)
        return _max_pool2d(input, k, k, (0, 0), (1, 1), False, return_indices)
    nd = input.ndim
    v, rows = _max_along(input, nd - 2, h, oh)       # (..., oh, W): max over each row window, its row
    v, cols = _max_along(v, nd - 1, w, ow)          # (..., oh, ow): max over each column window, its column
    if not return_indices:
        return v
    r = rows.gather(nd - 1, cols)                   # the row of the winner in the chosen column
    return v, r * w + cols


def adaptive_max_pool1d(input, output_size, return_indices=False):
    op = "adaptive_max_pool1d"
    _expect(op, "input", input)
    (n,), (o,) = _adaptive_sizes(op, input, output_size, 1)
    v, pos = _max_along(input, input.ndim - 1, n, o)
    return (v, pos) if return_indices else v


# =====================================================================================================
# resampling: interpolate, pixel (un)shuffle, padding modes, unfold / fold
# =====================================================================================================
_INTERP_DIMS = {"linear": 1, "bilinear": 2, "bicubic": 2, "trilinear": 3}


def _interp_scale(in_size, out_size, align_corners, scale):
    """PyTorch's area_pixel_compute_scale."""
    if align_corners:
        return (in_size - 1) / (out_size - 1) if out_size > 1 else 0.0
    return 1.0 / scale if scale is not None and scale > 0 else in_size / out_size


def _nearest_index(in_size, out_size, scale, exact):
    s = np.float32(1.0 / scale if scale is not None and scale > 0 else in_size / out_size)  # float, as PyTorch
    dst = np.arange(out_size, dtype=np.float32)
    src = np.floor((dst + np.float32(0.5)) * s) if exact else np.floor(dst * s)
    return np.minimum(src, in_size - 1).astype(np.int64)


def _cubic_weights(t, A=-0.75):
    def near(x):  # |x| <= 1
        return ((A + 2) * x - (A + 3)) * x * x + 1

    def far(x):  # 1 < |x| < 2
        return ((A * x - 5 * A) * x + 8 * A) * x - 4 * A

    return far(t + 1), near(t), near(1 - t), far(2 - t)


def _interp_matrix(in_size, out_size, mode, align_corners, scale):
    """(out, in) weights of a separable linear / cubic / area resampling along one axis (PyTorch's)."""
    m = np.zeros((out_size, in_size))
    if mode == "area":
        for i, (a, b) in enumerate(_windows(in_size, out_size)):
            m[i, a:b] = 1.0 / (b - a)
        return m
    s = _interp_scale(in_size, out_size, align_corners, scale)
    for i in range(out_size):
        if align_corners:
            src = i * s
        else:
            src = (i + 0.5) * s - 0.5
        if mode == "cubic":
            f = math.floor(src)
            t = src - f
            for k, wgt in zip(range(f - 1, f + 3), _cubic_weights(t)):
                m[i, min(max(k, 0), in_size - 1)] += wgt
            continue
        if not align_corners and src < 0:
            src = 0.0
        i0 = min(int(math.floor(src)), in_size - 1)
        i1 = min(i0 + 1, in_size - 1)
        lam = src - i0
        m[i, i0] += 1.0 - lam
        m[i, i1] += lam
    return m


def interpolate(input, size=None, scale_factor=None, mode="nearest", align_corners=None, recompute_scale_factor=None,
                antialias=False):
    """F.interpolate for 3-D (N, C, L), 4-D (N, C, H, W) and 5-D inputs: nearest / nearest-exact (index
    gathers), linear / bilinear / bicubic / trilinear / area (separable resampling matrices, PyTorch's
    coordinates and weights)."""
    op = "interpolate"
    _expect(op, "input", input)
    nsp = input.ndim - 2
    if nsp < 1 or nsp > 3:
        raise NotImplementedError(f"Input Error: Only 3D, 4D and 5D input Tensors supported (got {input.ndim}D) for "
                                  "the modes: nearest | linear | bilinear | bicubic | trilinear | area | "
                                  f"nearest-exact "
                                  f"(got {mode})")
    if mode in ("nearest", "area", "nearest-exact"):
        if align_corners is not None:
            raise ValueError("align_corners option can only be set with the interpolating modes: linear | bilinear | "
                             "bicubic | trilinear")
    elif mode in _INTERP_DIMS:
        if _INTERP_DIMS[mode] != nsp:
            raise NotImplementedError(f"Got {input.ndim}D input, but {mode} mode needs {_INTERP_DIMS[mode] + 2}D input")
        if align_corners is None:
            align_corners = False
    else:
        raise NotImplementedError(f"interpolate: mode {mode!r} is not supported (nearest, nearest-exact, linear, "
                                  "bilinear, bicubic, trilinear, area)")
    if antialias:
        raise NotImplementedError("interpolate: antialias=True is not supported")
    spatial = tuple(input.shape[2:])
    if size is not None and scale_factor is not None:
        raise ValueError("only one of size or scale_factor should be defined")
    if size is not None:
        out = _ntuple(size, nsp, "size", op)
        scales = (None,) * nsp
    elif scale_factor is not None:
        sf = tuple(float(v) for v in (scale_factor if isinstance(scale_factor, (tuple, list)) else
                                      (scale_factor,) * nsp))
        if len(sf) != nsp:
            raise ValueError(f"Input and scale_factor must have the same number of spatial dimensions, but got input "
                             f"with spatial dimensions of {list(spatial)} and scale_factor of shape {list(sf)}.")
        out = tuple(int(math.floor(float(s) * f)) for s, f in zip(spatial, sf))
        scales = (None,) * nsp if recompute_scale_factor else sf
    else:
        raise ValueError("either size or scale_factor should be defined")
    if any(o <= 0 for o in out):
        raise RuntimeError(f"{op}: output size {list(out)} must be positive (input spatial size {list(spatial)})")
    x = input
    for a in range(nsp):
        axis = 2 + a
        n_in, n_out = spatial[a], out[a]
        if mode in ("nearest", "nearest-exact"):
            if n_in == n_out and scales[a] in (None, 1.0):
                continue
            idx = _nearest_index(n_in, n_out, scales[a], mode == "nearest-exact")
            x = x.index_select(axis, tensor(idx, device=x.device))
        else:
            kind = "area" if mode == "area" else ("cubic" if mode == "bicubic" else "linear")
            if kind == "area" and n_in % n_out == 0 and n_in == n_out:
                continue
            m = _interp_matrix(n_in, n_out, kind, align_corners, scales[a])
            x = _apply_axis(x, tensor(m, dtype=x.dtype, device=x.device), axis)
    return x


def upsample(input, size=None, scale_factor=None, mode="nearest", align_corners=None):
    warnings.warn("nn.functional.upsample is deprecated. Use nn.functional.interpolate instead.", stacklevel=2)
    return interpolate(input, size, scale_factor, mode, align_corners)


def upsample_nearest(input, size=None, scale_factor=None):
    warnings.warn("nn.functional.upsample_nearest is deprecated. Use nn.functional.interpolate instead.", stacklevel=2)
    return interpolate(input, size, scale_factor, mode="nearest")


def upsample_bilinear(input, size=None, scale_factor=None):
    warnings.warn("nn.functional.upsample_bilinear is deprecated. Use nn.functional.interpolate instead.",
                  stacklevel=2)
    return interpolate(input, size, scale_factor, mode="bilinear", align_corners=True)


def pixel_shuffle(input, upscale_factor):
    """(*, C * r^2, H, W) -> (*, C, H * r, W * r)."""
    op = "pixel_shuffle"
    _expect(op, "input", input)
    r = int(upscale_factor)
    if input.ndim < 3:
        raise RuntimeError(f"{op}: pixel_shuffle expects input to have at least 3 dimensions, but got input with "
                           f"{input.ndim} dimension(s)")
    c, h, w = input.shape[-3:]
    if r <= 0:
        raise RuntimeError(f"{op}: upscale_factor must be greater than 0, but got {r}")
    if c % (r * r):
        raise RuntimeError(f"{op}: pixel_shuffle expects its input's 'channel' dimension to be divisible by the square "
                           f"of upscale_factor, but input.size(-3)={c} is not divisible by {r * r}")
    lead = tuple(input.shape[:-3])
    oc = c // (r * r)
    x = input.reshape(-1, oc, r, r, h, w).permute(0, 1, 4, 2, 5, 3)
    return x.reshape(*lead, oc, h * r, w * r)


def pixel_unshuffle(input, downscale_factor):
    """(*, C, H * r, W * r) -> (*, C * r^2, H, W)."""
    op = "pixel_unshuffle"
    _expect(op, "input", input)
    r = int(downscale_factor)
    if input.ndim < 3:
        raise RuntimeError(f"{op}: pixel_unshuffle expects input to have at least 3 dimensions, but got input with "
                           f"{input.ndim} dimension(s)")
    if r <= 0:
        raise RuntimeError(f"{op}: downscale_factor must be greater than 0, but got {r}")
    c, h, w = input.shape[-3:]
    if h % r or w % r:
        raise RuntimeError(f"{op}: pixel_unshuffle expects height and width to be divisible by downscale_factor, but "
                           f"got height={h}, width={w}, downscale_factor={r}")
    lead = tuple(input.shape[:-3])
    x = input.reshape(-1, c, h // r, r, w // r, r).permute(0, 1, 3, 5, 2, 4)
    return x.reshape(*lead, c * r * r, h // r, w // r)


def _pad_index(n, lo, hi, mode):
    i = np.arange(-lo, n + hi)
    if mode == "reflect":
        if lo >= n or hi >= n:
            raise RuntimeError(f"Argument #4: Padding size should be less than the corresponding input dimension, but "
                               f"got: padding ({lo}, {hi}) at dimension of size {n}")
        period = 2 * (n - 1) if n > 1 else 1
        i = np.abs(i) % period if n > 1 else np.zeros_like(i)
        i = np.where(i >= n, period - i, i)
    elif mode == "replicate":
        i = np.clip(i, 0, n - 1)
    elif mode == "circular":
        if lo > n or hi > n:
            raise RuntimeError("Padding value causes wrapping around more than once.")
        i = i % n
    return i.astype(np.int64)


def pad(input, pad, mode="constant", value=None):
    """F.pad: `pad` lists (left, right) pairs from the LAST dimension on. mode 'constant' (negative
    widths crop), 'reflect', 'replicate' or 'circular' (index gathers along each padded dim)."""
    _expect("pad", "input", input)
    if len(pad) % 2:
        raise RuntimeError("Padding length must be divisible by 2")
    if len(pad) // 2 > input.ndim:
        raise RuntimeError(f"Padding length should be less than or equal to two times the input dimension but got "
                           f"padding length {len(pad)} and input of dimension {input.ndim}")
    pairs = [(int(pad[2 * i]), int(pad[2 * i + 1])) for i in range(len(pad) // 2)]
    if mode == "constant":
        if all(lo >= 0 and hi >= 0 for lo, hi in pairs):
            return _pad_constant(input, pad, value=value)
        x = input
        key = [slice(None)] * input.ndim
        grow = []
        for i, (lo, hi) in enumerate(pairs):
            d = input.ndim - 1 - i
            n = input.shape[d]
            key[d] = slice(max(0, -lo), n - max(0, -hi))
            grow += [max(0, lo), max(0, hi)]
        x = x[tuple(key)]
        return _pad_constant(x, grow, value=value) if any(grow) else x
    if mode not in ("reflect", "replicate", "circular"):
        raise NotImplementedError(f"Unrecognised padding mode {mode}")
    if value not in (None, 0, 0.0):
        raise ValueError(f"Padding mode \"{mode}\" doesn't take in value argument")
    n_pad = len(pairs)
    if not (1 <= n_pad <= 3 and input.ndim in (n_pad + 1, n_pad + 2)):
        raise NotImplementedError(f"Padding size {2 * n_pad} is not supported for {input.ndim}D input tensor "
                                  "(non-constant padding takes 2 values for 2D / 3D inputs, 4 for 3D / 4D, 6 for "
                                  "4D / 5D)")
    x = input
    for i, (lo, hi) in enumerate(pairs):
        if lo == 0 and hi == 0:
            continue
        d = input.ndim - 1 - i
        idx = _pad_index(x.shape[d], lo, hi, mode)
        if (lo < 0 or hi < 0) and mode != "circular":
            raise RuntimeError(f"{mode} padding does not take negative widths, got ({lo}, {hi})")
        x = x.index_select(d, tensor(idx, device=x.device))
    return x


def _onehot_patches(c, kh, kw, dtype, device):
    """(C * kh * kw, 1, kh, kw): channel c*kh*kw + a*kw + b picks tap (a, b) of input channel c
    (with groups=C), so a grouped conv2d is im2col (unfold) and its adjoint col2im (fold)."""
    w = np.zeros((c * kh * kw, 1, kh, kw))
    for ch in range(c):
        for a in range(kh):
            for b in range(kw):
                w[ch * kh * kw + a * kw + b, 0, a, b] = 1.0
    return tensor(w, dtype=dtype, device=device)


def unfold(input, kernel_size, dilation=1, padding=0, stride=1):
    """F.unfold (im2col): (N, C, H, W) -> (N, C * kh * kw, L), as a grouped conv2d with one-hot kernels."""
    op = "unfold"
    _expect(op, "input", input)
    if input.ndim not in (3, 4):
        raise NotImplementedError(f"Input Error: Only 3D or 4D input Tensors are supported (got {input.ndim}D)")
    squeeze = input.ndim == 3
    x = input.unsqueeze(0) if squeeze else input
    k, d = _ntuple(kernel_size, 2, "kernel_size", op), _ntuple(dilation, 2, "dilation", op)
    p, s = _ntuple(padding, 2, "padding", op), _ntuple(stride, 2, "stride", op)
    n, c = x.shape[0], x.shape[1]
    w = _onehot_patches(c, k[0], k[1], x.dtype, x.device)
    y = _conv2d(x, w, None, s, p, d, c)
    y = y.reshape(n, c * k[0] * k[1], -1)
    return y.squeeze(0) if squeeze else y


def fold(input, output_size, kernel_size, dilation=1, padding=0, stride=1):
    """F.fold (col2im, summing overlaps): (N, C * kh * kw, L) -> (N, C, H, W), conv2d's input-gradient op
    with one-hot kernels."""
    op = "fold"
    _expect(op, "input", input)
    if input.ndim not in (2, 3):
        raise NotImplementedError(f"Input Error: Only unbatched (2D) or batched (3D) input Tensors are supported (got "
                                  f"{input.ndim}D)")
    squeeze = input.ndim == 2
    x = input.unsqueeze(0) if squeeze else input
    out = _ntuple(output_size, 2, "output_size", op)
    k, d = _ntuple(kernel_size, 2, "kernel_size", op), _ntuple(dilation, 2, "dilation", op)
    p, s = _ntuple(padding, 2, "padding", op), _ntuple(stride, 2, "stride", op)
    n, ckk, L = x.shape
    if ckk % (k[0] * k[1]):
        raise RuntimeError(f"{op}: Expected size of input's dimension 1 to be divisible by the product of "
                           f"kernel_size, but got input.size(1)={ckk} and kernel_size={k}")
    c = ckk // (k[0] * k[1])
    oh, ow = conv_out(out[0], k[0], s[0], p[0], d[0]), conv_out(out[1], k[1], s[1], p[1], d[1])
    if oh * ow != L:
        raise RuntimeError(f"{op}: Given output_size={out}, kernel_size={k}, dilation={d}, padding={p}, stride={s}, "
                           f"expected size of input's dimension 2 to match the calculated number of sliding blocks "
                           f"{oh} * {ow} = {oh * ow}, but got input.size(2)={L}.")
    w = _onehot_patches(c, k[0], k[1], x.dtype, x.device)
    y = call(_nnops.conv2d_backward_input, (x.reshape(n, ckk, oh, ow), w),
             {"stride": s, "padding": p, "dilation": d, "groups": c, "x_shape": (n, c, out[0], out[1])})
    return y.squeeze(0) if squeeze else y


# =====================================================================================================
# normalisation and channel dropout
# =====================================================================================================
def group_norm(input, num_groups, weight=None, bias=None, eps=1e-5):
    """F.group_norm: statistics over each group of channels and the spatial dims (biased variance)."""
    op = "group_norm"
    _expect(op, "input", input)
    if input.ndim < 2:
        raise RuntimeError(f"{op}: Expected at least 2 dimensions for input tensor but received {input.ndim}")
    n, c = input.shape[0], input.shape[1]
    if num_groups <= 0 or c % num_groups:
        raise RuntimeError(f"{op}: Expected number of channels in input to be divisible by num_groups, but got input "
                           f"of shape {list(input.shape)} and num_groups={num_groups}")
    x = input.reshape(n, num_groups, -1)
    mu = x.mean(-1, keepdim=True)
    d = x - mu
    var = (d * d).mean(-1, keepdim=True)
    out = (d * (var + eps).rsqrt()).reshape(tuple(input.shape))
    shape = (1, c) + (1,) * (input.ndim - 2)
    if weight is not None:
        out = out * weight.reshape(shape)
    if bias is not None:
        out = out + bias.reshape(shape)
    return out


def instance_norm(input, running_mean=None, running_var=None, weight=None, bias=None, use_input_stats=True,
                  momentum=0.1, eps=1e-5):
    """F.instance_norm: each (sample, channel) plane normalised by its own statistics; running statistics
    (the batch average of the planes') updated when given, used instead when use_input_stats=False."""
    op = "instance_norm"
    _expect(op, "input", input)
    if input.ndim < 3:
        raise RuntimeError(f"{op}: expected an input of at least 3 dimensions (N, C, *), got {list(input.shape)}")
    n, c = input.shape[0], input.shape[1]
    shape = (1, c) + (1,) * (input.ndim - 2)
    dims = tuple(range(2, input.ndim))
    if use_input_stats:
        count = 1
        for s in input.shape[2:]:
            count *= s
        if count <= 1:
            raise ValueError(f"Expected more than 1 spatial element when training, got input size {list(input.shape)}")
        mu = input.mean(dims, keepdim=True)
        d = input - mu
        var = (d * d).mean(dims, keepdim=True)
        out = d * (var + eps).rsqrt()
        if running_mean is not None and running_var is not None:
            with no_grad():
                m = mu.detach().reshape(n, c).mean(0)
                v = var.detach().reshape(n, c).mean(0) * (count / (count - 1))
                running_mean.mul_(1 - momentum).add_(m * momentum)
                running_var.mul_(1 - momentum).add_(v * momentum)
    else:
        if running_mean is None or running_var is None:
            raise ValueError("Expected running_mean and running_var to be defined when use_input_stats is false")
        out = (input - running_mean.reshape(shape)) * (running_var.reshape(shape) + eps).rsqrt()
    if weight is not None:
        out = out * weight.reshape(shape)
    if bias is not None:
        out = out + bias.reshape(shape)
    return out


def local_response_norm(input, size, alpha=1e-4, beta=0.75, k=1.0):
    """F.local_response_norm: x / (k + alpha / size * sum of x^2 over `size` neighbouring channels)^beta."""
    op = "local_response_norm"
    _expect(op, "input", input)
    if input.ndim < 3:
        raise ValueError(f"Expected 3D or higher dimensionality input (got {input.ndim} dimensions)")
    sq = (input * input).unsqueeze(1)
    lead = tuple(input.shape)
    sq = sq.reshape(lead[0], 1, lead[1], -1)
    sq = _pad_constant(sq, (0, 0, size // 2, (size - 1) // 2))
    div = _avg_pool2d(sq, (size, 1), (1, 1), (0, 0)).reshape(lead)
    div = (div * alpha + k) ** beta
    return input / div


def _channel_dropout(op, input, p, training, inplace, spatial):
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if not training or p == 0.0 or input.numel() == 0:
        return input
    batched = input.ndim == spatial + 2
    shape = (tuple(input.shape[:2]) if batched else tuple(input.shape[:1])) + (1,) * spatial
    from ..ops.creation import rand

    keep = (rand(shape, dtype=input.dtype, device=input.device) >= p).to(input.dtype)
    keep = keep * (0.0 if p == 1.0 else 1.0 / (1.0 - p))
    return input.mul_(keep) if inplace else input * keep


def dropout1d(input, p=0.5, training=True, inplace=False):
    """Zero whole channels of (N, C, L) or (C, L) inputs with probability p (scaled by 1 / (1 - p))."""
    _expect("dropout1d", "input", input)
    if input.ndim not in (2, 3):
        raise RuntimeError(f"dropout1d: Expected 2D or 3D input, but received a {input.ndim}D input. Note that "
                           "dropout1d exists to provide channel-wise dropout on inputs with 1 spatial dimension, a "
                           "channel dimension, and an optional batch dimension (i.e. 2D or 3D inputs).")
    return _channel_dropout("dropout1d", input, p, training, inplace, 1)


def dropout2d(input, p=0.5, training=True, inplace=False):
    """Zero whole channels of (N, C, H, W) or (C, H, W) inputs with probability p."""
    _expect("dropout2d", "input", input)
    if input.ndim not in (3, 4):
        warnings.warn(f"dropout2d: Received a {input.ndim}-D input to dropout2d, which is deprecated and will result "
                      "in an error in a future release. To retain the behavior and silence this warning, please use "
                      "dropout instead. Note that dropout2d exists to provide channel-wise dropout on inputs with 2 "
                      "spatial dimensions, a channel dimension, and an optional batch dimension (i.e. 3D or 4D "
                      "inputs).", stacklevel=2)
    if input.ndim == 3:
        warnings.warn("dropout2d: Received a 3D input to dropout2d and assuming that channel-wise 1D dropout behavior "
                      "is desired - input is interpreted as shape (N, C, L), where C is the channel dim. This behavior "
                      "will change in a future release to interpret the input as one without a batch dimension, i.e. "
                      "shape (C, H, W). To maintain the 1D channel-wise dropout behavior, please switch to using "
                      "dropout1d instead.", stacklevel=2)
        return _channel_dropout("dropout2d", input, p, training, inplace, 1)
    return _channel_dropout("dropout2d", input, p, training, inplace, 2)


def dropout3d(input, p=0.5, training=True, inplace=False):
    _expect("dropout3d", "input", input)
    if input.ndim not in (4, 5):
        warnings.warn(f"dropout3d: Received a {input.ndim}-D input to dropout3d, which is deprecated and will result "
                      "in an error in a future release.", stacklevel=2)
    return _channel_dropout("dropout3d", input, p, training, inplace, 3 if input.ndim == 5 else input.ndim - 1)


def alpha_dropout(input, p=0.5, training=False, inplace=False):
    """SELU's dropout: dropped units take SELU's negative saturation, then an affine map keeps the mean
    and variance."""
    _expect("alpha_dropout", "input", input)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if not training or p == 0.0 or input.numel() == 0:
        return input
    if p == 1.0:
        return input * 0.0
    from ..ops.creation import rand

    alpha_p = -1.7580993408473766  # -scale * alpha of SELU
    keep = (rand(tuple(input.shape), dtype=input.dtype, device=input.device) >= p).to(input.dtype)
    a = 1.0 / math.sqrt((alpha_p * alpha_p * p + 1) * (1 - p))
    b = -a * alpha_p * p
    out = (input * keep + alpha_p * (1 - keep)) * a + b
    return input.copy_(out) if inplace else out


# =====================================================================================================
# activations (PyTorch's formulas; `where` picks the branch PyTorch's backward uses at the kinks)
# =====================================================================================================
def _act_inplace(input, out, inplace):
    return input.copy_(out) if inplace else out


def _float_input(op, input):
    _expect(op, "input", input)
    if not input.dtype.is_floating_point:
        raise RuntimeError(f"{op}: expected a floating point input, got {input.dtype.name}")


def elu(input, alpha=1.0, inplace=False):
    _float_input("elu", input)
    return _act_inplace(input, _E.where(input > 0, input, (input.exp() - 1) * alpha), inplace)


def elu_(input, alpha=1.0):
    return elu(input, alpha, inplace=True)


_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


def selu(input, inplace=False):
    _float_input("selu", input)
    out = _E.where(input > 0, input * _SELU_SCALE, (input.exp() - 1) * (_SELU_ALPHA * _SELU_SCALE))
    return _act_inplace(input, out, inplace)


def selu_(input):
    return selu(input, inplace=True)


def celu(input, alpha=1.0, inplace=False):
    _float_input("celu", input)
    if alpha == 0:
        raise RuntimeError("ZeroDivisionError: alpha of celu must not be 0")
    return _act_inplace(input, _E.where(input > 0, input, ((input / alpha).exp() - 1) * alpha), inplace)


def celu_(input, alpha=1.0):
    return celu(input, alpha, inplace=True)


def softsign(input):
    _float_input("softsign", input)
    return input / (input.abs() + 1)


def hardtanh(input, min_val=-1.0, max_val=1.0, inplace=False):
    _expect("hardtanh", "input", input)
    if min_val > max_val:
        raise ValueError("min_val cannot be greater than max_val")
    # the gradient is zero at the bounds (PyTorch's hardtanh_backward tests min < x < max)
    out = _E.where(input <= min_val, min_val, _E.where(input >= max_val, max_val, input))
    return _act_inplace(input, out.to(input.dtype), inplace)


def hardtanh_(input, min_val=-1.0, max_val=1.0):
    return hardtanh(input, min_val, max_val, inplace=True)


def relu6(input, inplace=False):
    return hardtanh(input, 0.0, 6.0, inplace)


def hardsigmoid(input, inplace=False):
    _float_input("hardsigmoid", input)
    out = _E.where(input <= -3, 0.0, _E.where(input >= 3, 1.0, input / 6 + 0.5))
    return _act_inplace(input, out, inplace)


def hardswish(input, inplace=False):
    _float_input("hardswish", input)
    # PyTorch's backward: 0 at and below -3, 1 at and above 3 (x / 3 + 1/2 strictly between)
    out = _E.where(input <= -3, 0.0, _E.where(input >= 3, input, input * (input + 3) / 6))
    return _act_inplace(input, out, inplace)


def _softplus(x):
    above = x > 20.0
    return _E.where(above, x, _E.where(above, 0.0, x).exp().log1p())


def mish(input, inplace=False):
    _float_input("mish", input)
    return _act_inplace(input, input * _softplus(input).tanh(), inplace)


def prelu(input, weight):
    """x where x > 0, weight * x elsewhere; weight has one value or one per channel (dim 1, or 0 for 1-D)."""
    _expect("prelu", "input", input)
    _expect("prelu", "weight", weight, 2)
    n = weight.numel()
    if n != 1:
        c = input.shape[1] if input.ndim >= 2 else (input.shape[0] if input.ndim == 1 else 1)
        if n != c:
            raise RuntimeError(f"prelu: Mismatch of parameter numbers and input channel size. Found parameter numbers "
                               f"= {n} and channel size = {c}.")
        shape = [1] * input.ndim
        shape[1 if input.ndim >= 2 else 0] = n
        w = weight.reshape(shape)
    else:
        w = weight.reshape(())
    return _E.where(input > 0, input, input * w)


def rrelu(input, lower=1.0 / 8, upper=1.0 / 3, training=False, inplace=False):
    """Leaky ReLU with a random negative slope in [lower, upper] per element when training, their
    mean otherwise."""
    _float_input("rrelu", input)
    if training:
        from ..ops.creation import rand

        slope = rand(tuple(input.shape), dtype=input.dtype, device=input.device) * (upper - lower) + lower
    else:
        slope = (lower + upper) / 2
    return _act_inplace(input, _E.where(input > 0, input, input * slope), inplace)


def rrelu_(input, lower=1.0 / 8, upper=1.0 / 3, training=False):
    return rrelu(input, lower, upper, training, inplace=True)


def softmin(input, dim=None, _stacklevel=3, dtype=None):
    _expect("softmin", "input", input)
    if dim is None:
        warnings.warn("Implicit dimension choice for softmin has been deprecated. Change the call to include dim=X as "
                      "an argument.", stacklevel=_stacklevel)
        dim = 0 if input.ndim in (0, 1, 3) else 1
    if dtype is not None:
        input = input.to(dtype)
    return _softmax(-input, dim)


def threshold(input, threshold, value, inplace=False):
    _expect("threshold", "input", input)
    return _act_inplace(input, _E.where(input > threshold, input, value).to(input.dtype), inplace)


def threshold_(input, threshold_, value):
    return threshold(input, threshold_, value, inplace=True)


def glu(input, dim=-1):
    """a * sigmoid(b), a and b the two halves of `dim`."""
    _expect("glu", "input", input)
    if input.ndim == 0:
        raise RuntimeError("glu does not support scalars because halving size must be even")
    n = input.shape[dim]
    if n % 2:
        raise RuntimeError(f"Halving dimension must be even, but dimension {dim % input.ndim} is size {n}")
    a, b = input.chunk(2, dim)
    return a * b.sigmoid()


def tanhshrink(input):
    _float_input("tanhshrink", input)
    return input - input.tanh()


def softshrink(input, lambd=0.5):
    _float_input("softshrink", input)
    if lambd < 0:
        raise RuntimeError(f"lambda must be greater or equal to 0, but found to be {lambd}.")
    return _E.where(input > lambd, input - lambd, _E.where(input < -lambd, input + lambd, 0.0))


def hardshrink(input, lambd=0.5):
    _float_input("hardshrink", input)
    return _E.where((input > lambd) | (input < -lambd), input, 0.0)


# =====================================================================================================
# bilinear, embedding bags
# =====================================================================================================
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
