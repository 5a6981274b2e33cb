"""nn.functional's resampling: interpolate / upsample (as matrices along each axis), pixel (un)shuffle,
pad's reflect / replicate / circular modes (as index gathers), unfold / fold."""
from __future__ import annotations

import math
import warnings

import numpy as np

from ..dispatch import call
from ..geometry import conv_out
from ..ops import nn as _nnops
from ..ops.creation import tensor
from ..ops.shape import pad as _pad_constant
from .functional_base import _conv2d, _expect, _ntuple
from .functional_conv import _apply_axis, _windows


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


def _pixel_factor(op, input, factor, name):
    """int(factor), after the argument checks pixel_shuffle and pixel_unshuffle share."""
    _expect(op, "input", input)
    r = int(factor)
    if input.ndim < 3:
        raise RuntimeError(f"{op}: {op} expects input to have at least 3 dimensions, but got input with "
                           f"{input.ndim} dimension(s)")
    if r <= 0:
        raise RuntimeError(f"{op}: {name} must be greater than 0, but got {r}")
    return r


def pixel_shuffle(input, upscale_factor):
    """(*, C * r^2, H, W) -> (*, C, H * r, W * r)."""
    op = "pixel_shuffle"
    r = _pixel_factor(op, input, upscale_factor, "upscale_factor")
    c, h, w = input.shape[-3:]
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
    r = _pixel_factor(op, input, downscale_factor, "downscale_factor")
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


__all__ = sorted(n for n, v in list(globals().items())
                 if not n.startswith("_") and callable(v) and getattr(v, "__module__", None) == __name__)
