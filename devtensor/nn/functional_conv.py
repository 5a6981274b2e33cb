"""nn.functional's convolutions and pools beyond the 2-D ones: conv1d (conv2d on a unit height),
conv_transpose1d / 2d (conv2d's input-gradient op), 1-D and adaptive pooling."""
from __future__ import annotations

import numbers

import numpy as np

from ..dispatch import call
from ..ops import nn as _nnops
from ..ops.autocast import ACTIVE as _AMP
from ..ops.autocast import cast_args as _autocast
from ..ops.creation import tensor
from ..ops.linalg import linear
from ..ops.shape import pad as _pad_constant
from .functional_base import _avg_pool2d, _conv2d, _expect, _max_pool2d, _ntuple


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


def _conv1d_input(op, input, weight, layout):
    """input as (N, C, L), and whether it came unbatched; the 1-D convolutions' argument checks."""
    _expect(op, "input", input)
    _expect(op, "weight", weight, 2)
    if input.ndim not in (2, 3) or weight.ndim != 3:
        raise RuntimeError(f"{op}: expected a 2-D (C, L) or 3-D (N, C, L) input and a 3-D weight ({layout}, kW), "
                           f"got input {list(input.shape)} and weight {list(weight.shape)}")
    squeeze = input.ndim == 2
    return (input.unsqueeze(0) if squeeze else input), squeeze


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """F.conv1d: input (N, C_in, L) or (C_in, L), weight (C_out, C_in / groups, K)."""
    op = "conv1d"
    if _AMP[0]:
        input, weight, bias = _autocast(op, input, weight, bias)
    x, squeeze = _conv1d_input(op, input, weight, "out_channels, in_channels/groups")
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
    if _AMP[0]:
        input, weight, bias = _autocast(op, input, weight, bias)
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
    if _AMP[0]:
        input, weight, bias = _autocast(op, input, weight, bias)
    x, squeeze = _conv1d_input(op, input, weight, "in_channels, out_channels/groups")
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


__all__ = sorted(n for n, v in list(globals().items())
                 if not n.startswith("_") and callable(v) and getattr(v, "__module__", None) == __name__)
