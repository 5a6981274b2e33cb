"""The nn primitives PyTorch exports three ways: as torch.nn.functional.f, as torch.f (sometimes with
another argument order: torch.embedding, torch.batch_norm) and as Tensor.f (softmax, log_softmax).
Written here, in the op layer, so that the package (devtensor.softmax) and Tensor methods can export
them; devtensor.nn.functional re-exports the F forms."""
from __future__ import annotations

import warnings

from .. import dtypes as _dt
from ..dispatch import call, op_error
from ..geometry import pair
from ..tensor import Tensor
from . import nn as _nnops
from . import reference as _R
from . import samples as _S
from ._api import composite, not_a_tensor, public
from .autocast import ACTIVE as _AMP
from .autocast import cast_args as _autocast


def _pair(v, name, op):
    try:
        return pair(v, name)
    except (TypeError, ValueError) as e:
        raise type(e)(f"{op}: {e}") from None


def expect_tensor(op, name, position, v):
    """PyTorch's argument check: a numpy array (or anything else) where a Tensor belongs is a TypeError."""
    if not isinstance(v, Tensor):
        raise not_a_tensor(op, name, position, v)


def check_float(op, *ts, cls=TypeError):
    """Floating inputs only. PyTorch's class for an integer input is NotImplementedError where its kernel has no
    integer version (softmax, the losses), pass cls= for those."""
    for t in ts:
        if t is not None and not t.dtype.is_floating_point:
            raise op_error(op, f"expected floating point tensors, got {t.dtype.name}", ts, cls)


# ---- convolution and pooling -------------------------------------------------------------------
@public(method=False)
def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    if _AMP[0]:
        input, weight, bias = _autocast("conv2d", input, weight, bias)
    expect_tensor("conv2d", "input", 1, input)
    expect_tensor("conv2d", "weight", 2, weight)
    check_float("conv2d", input, weight, bias)
    squeeze = input.ndim == 3
    if squeeze:
        input = input.unsqueeze(0)
    if input.ndim != 4 or weight.ndim != 4:
        raise op_error("conv2d", "expected a 4-D input (N, C, H, W) or 3-D (C, H, W) and a 4-D weight "
                       "(out_channels, in_channels/groups, kH, kW)", (input, weight))
    kh, kw = weight.shape[2:]
    if input.dtype is not weight.dtype or (bias is not None and bias.dtype is not input.dtype):
        raise op_error("conv2d", f"input and weight must have the same dtype, got {input.dtype.name} and "
                       f"{weight.dtype.name}", (input, weight), TypeError)
    if isinstance(padding, str):
        if padding == "valid":
            padding = 0
        elif padding == "same":
            d = _pair(dilation, "dilation", "conv2d")
            padding = (d[0] * (kh - 1) // 2, d[1] * (kw - 1) // 2)
            if d[0] * (kh - 1) % 2 or d[1] * (kw - 1) % 2:
                raise NotImplementedError("conv2d: padding='same' with an even kernel extent is not supported")
        else:
            raise ValueError(f"conv2d: padding must be 'valid', 'same', an int or a pair, got {padding!r}")
    s, p, d = (_pair(stride, "stride", "conv2d"), _pair(padding, "padding", "conv2d"),
               _pair(dilation, "dilation", "conv2d"))
    out = call(_nnops.conv2d, (input, weight, bias), {"stride": s, "padding": p, "dilation": d, "groups": groups})
    return out.squeeze(0) if squeeze else out


def _pool_shape(op, input):
    expect_tensor(op, "input", 1, input)
    if input.ndim not in (3, 4):
        raise op_error(op, f"expected a 3-D or 4-D input, got shape {list(input.shape)}", (input,))


@public(method=False)
def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    _pool_shape("max_pool2d", input)
    squeeze = input.ndim == 3
    x = input.unsqueeze(0) if squeeze else input
    k = _pair(kernel_size, "kernel_size", "max_pool2d")
    s = _pair(stride if stride not in (None, []) else k, "stride", "max_pool2d")
    p, d = _pair(padding, "padding", "max_pool2d"), _pair(dilation, "dilation", "max_pool2d")
    y, idx = call(_nnops.max_pool2d, (x,), {"kernel_size": k, "stride": s, "padding": p, "dilation": d,
                                            "ceil_mode": bool(ceil_mode)})
    if squeeze:
        y, idx = y.squeeze(0), idx.squeeze(0)
    return (y, idx) if return_indices else y


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    _pool_shape("avg_pool2d", input)
    squeeze = input.ndim == 3
    x = input.unsqueeze(0) if squeeze else input
    k = _pair(kernel_size, "kernel_size", "avg_pool2d")
    s = _pair(stride if stride not in (None, []) else k, "stride", "avg_pool2d")
    p = _pair(padding, "padding", "avg_pool2d")
    div = divisor_override
    if div is not None and div < 0:  # PyTorch divides the window sum by it, sign and all
        div = 1
    y = call(_nnops.avg_pool2d, (x,), {"kernel_size": k, "stride": s, "padding": p, "ceil_mode": bool(ceil_mode),
                                       "count_include_pad": bool(count_include_pad), "divisor_override": div})
    if div is not divisor_override:
        y = y / divisor_override
    return y.squeeze(0) if squeeze else y


# ---- softmax --------------------------------------------------------------------------------------
def _softmax_dim(op, input, dim, stacklevel):
    if dim is None:  # PyTorch's legacy implicit dim, with its deprecation warning
        warnings.warn(f"Implicit dimension choice for {op} has been deprecated. Change the call to include "
                      "dim=X as an argument.", UserWarning, stacklevel=stacklevel)
        dim = 0 if input.ndim in (0, 1, 3) else 1
    if isinstance(dim, bool) or not isinstance(dim, int):
        raise TypeError(f"{op}: argument 'dim' must be int, not {type(dim).__name__}")
    n = max(input.ndim, 1)
    if not -n <= dim < n:
        raise IndexError(f"{op}: dimension out of range (expected to be in range of [{-n}, {n - 1}], but got {dim})")
    return dim % n if input.ndim else 0


def _softmax(op, name, input, dim, dtype, stacklevel):
    if _AMP[0] and dtype is None:  # on cuda's float32 list; an explicit dtype wins (as PyTorch)
        input, = _autocast(name, input)
    expect_tensor(name, "input", 1, input)
    if dtype is not None:
        input = input.to(dtype)
    check_float(name, input, cls=NotImplementedError)
    d = _softmax_dim(name, input, dim, stacklevel)
    if input._data.size == 0:  # nothing to normalise: the kernels index rows of the (empty) input
        return input * 1
    return call(op, (input,), {"dim": d})


def softmax(input, dim=None, _stacklevel=3, dtype=None):
    """F.softmax (PyTorch's signature: the third positional argument is _stacklevel, not dtype)."""
    return _softmax(_nnops.softmax, "softmax", input, dim, dtype, _stacklevel + 1)


def log_softmax(input, dim=None, _stacklevel=3, dtype=None):
    return _softmax(_nnops.log_softmax, "log_softmax", input, dim, dtype, _stacklevel + 1)


_REQUIRED = object()


def _torch_softmax(input, dim=_REQUIRED, dtype=None, *, axis=None):
    """torch.softmax / Tensor.softmax: dim (or its alias axis) required (a TypeError, as PyTorch); dtype by keyword
    or third position."""
    dim = dim if axis is None else axis
    if dim is _REQUIRED:
        raise TypeError("softmax: missing the required argument 'dim' (F.softmax alone takes the deprecated implicit dim)")
    return _softmax(_nnops.softmax, "softmax", input, dim, dtype, 3)


def _torch_log_softmax(input, dim=_REQUIRED, dtype=None, *, axis=None):
    dim = dim if axis is None else axis
    if dim is _REQUIRED:
        raise TypeError("log_softmax: missing the required argument 'dim' (F.log_softmax alone takes the deprecated "
                        "implicit dim)")
    return _softmax(_nnops.log_softmax, "log_softmax", input, dim, dtype, 3)


public(_torch_softmax, name="softmax")
public(_torch_log_softmax, name="log_softmax")


# ---- dropout --------------------------------------------------------------------------------------
def dropout(input, p=0.5, training=True, inplace=False):
    expect_tensor("dropout", "input", 1, input)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if not training or p == 0.0 or input._data.size == 0:
        return input
    if p == 1.0:
        return input.mul_(0.0) if inplace else input * 0.0
    from .creation import rand

    keep = (rand(tuple(input.shape), dtype=input.dtype, device=input.device) >= p).to(input.dtype) * (1.0 / (1.0 - p))
    return input.mul_(keep) if inplace else input * keep


@public(method=False, name="dropout")
def _torch_dropout(input, p, train):
    """torch.dropout(input, p, train): p and train are required, as in PyTorch."""
    return dropout(input, p, train)


@public(method=False, name="dropout_")
def _torch_dropout_(input, p, train):
    return dropout(input, p, train, inplace=True)


# ---- normalisation and embedding (composites) -----------------------------------------------------
_HALF = (_dt.float16, _dt.bfloat16)


def in_input_dtype(out, input):
    """A half-float input normalised with float32 weights or statistics (autocast's float32 master weights
    meeting bfloat16 activations) comes out in the input's dtype, as from PyTorch's mixed-dtype norm kernels."""
    return out.to(input.dtype) if input.dtype in _HALF and out.dtype is not input.dtype else out


@composite(ref=_R.layer_norm, samples=_S.composite("layer_norm"), torch="torch.nn.functional.layer_norm")
def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    if _AMP[0]:
        input, weight, bias = _autocast("layer_norm", input, weight, bias)
    expect_tensor("layer_norm", "input", 1, input)
    if not isinstance(normalized_shape, (tuple, list)) and not hasattr(normalized_shape, "__len__"):
        raise TypeError(f"layer_norm: argument 'normalized_shape' (position 2) must be tuple of ints, not "
                        f"{type(normalized_shape).__name__}")
    normalized_shape = tuple(normalized_shape)
    if tuple(input.shape[-len(normalized_shape):]) != normalized_shape or len(normalized_shape) > input.ndim:
        raise op_error("layer_norm", f"normalized_shape {list(normalized_shape)} does not match the input's "
                       f"trailing dims {list(input.shape)}", (input,))
    dims = tuple(range(input.ndim - len(normalized_shape), input.ndim))
    if input._data.size == 0:
        out = input * 1
    else:
        mu = input.mean(dims, keepdim=True)
        d = input - mu
        var = (d * d).mean(dims, keepdim=True)
        out = d * (var + eps).rsqrt()
    if weight is not None:
        out = out * weight
    if bias is not None:
        out = out + bias
    return in_input_dtype(out, input)


@public(method=False, name="layer_norm")
def _torch_layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5, cudnn_enable=True):
    return layer_norm(input, normalized_shape, weight, bias, eps)


@composite(ref=_R.batch_norm, samples=_S.composite("batch_norm"), torch="torch.nn.functional.batch_norm")
def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5):
    expect_tensor("batch_norm", "input", 1, input)
    if input.ndim < 2:
        raise op_error("batch_norm", f"expected at least 2-D input (N, C, ...), got {list(input.shape)}", (input,))
    c = input.shape[1]
    dims = (0,) + tuple(range(2, input.ndim))
    shape = (1, c) + (1,) * (input.ndim - 2)
    if training:
        n = input.numel() // c if c else 0
        if n == 1:
            raise ValueError(f"batch_norm: expected more than 1 value per channel when training, got input size "
                             f"{list(input.shape)}")
        if n == 0:  # an empty batch: an empty output, running statistics untouched (as PyTorch)
            out = input * 1
        else:
            mu = input.mean(dims)
            d = input - mu.reshape(shape)
            var = (d * d).mean(dims)
            if running_mean is not None:
                from ..autograd.grad_mode import no_grad

                with no_grad():
                    running_mean.mul_(1 - momentum).add_(mu.detach() * momentum)
                    running_var.mul_(1 - momentum).add_(var.detach() * (momentum * n / (n - 1)))
            out = d * (var.reshape(shape) + eps).rsqrt()
    else:
        if running_mean is None or running_var is None:
            raise ValueError("batch_norm: running_mean and running_var are required when training=False")
        out = (input - running_mean.reshape(shape)) * (running_var.reshape(shape) + eps).rsqrt()
    if weight is not None:
        out = out * weight.reshape(shape)
    if bias is not None:
        out = out + bias.reshape(shape)
    return in_input_dtype(out, input)


@public(method=False, name="batch_norm")
def _torch_batch_norm(input, weight, bias, running_mean, running_var, training, momentum, eps, cudnn_enabled):
    """torch.batch_norm: PyTorch's top-level argument order (weight and bias before the statistics)."""
    return batch_norm(input, running_mean, running_var, weight, bias, training, momentum, eps)


@composite(ref=_R.embedding, samples=_S.composite("embedding"), torch="torch.nn.functional.embedding",
           differentiable=_S.embedding_grad)
def embedding(input, weight, padding_idx=None, max_norm=None, norm_type=2.0, scale_grad_by_freq=False,
              sparse=False):
    expect_tensor("embedding", "input", 1, input)
    expect_tensor("embedding", "weight", 2, weight)
    if weight.ndim != 2:
        raise op_error("embedding", f"'weight' must be 2-D, got shape {list(weight.shape)}", (weight,), RuntimeError)
    if input.dtype.is_floating_point or input.dtype is _dt.bool_:
        raise RuntimeError(f"embedding: expected tensor for argument #1 'indices' to have one of the following "
                           f"scalar types: int64, int32; but got {input.dtype} instead")
    if padding_idx is not None:
        n = weight.shape[0]
        if not -n <= padding_idx < n:  # (PyTorch: a bare assert, AssertionError, which python -O strips)
            raise ValueError(f"embedding: padding_idx must be within num_embeddings ({n}), got {padding_idx}")
        padding_idx %= n
    if input.numel() and (int(input.max()) >= weight.shape[0] or int(input.min()) < 0):
        raise IndexError(f"embedding: index out of range in self: indices must be in [0, {weight.shape[0]}), got "
                         f"[{int(input.min())}, {int(input.max())}]")
    out = weight[input]
    if padding_idx is not None and weight.requires_grad:
        mask = (input != padding_idx).unsqueeze(-1).to(weight.dtype)
        out = out * mask + out.detach() * (1 - mask)  # no gradient flows to the padding row
    return out


@public(method=False, name="embedding")
def _torch_embedding(weight, indices, padding_idx=-1, scale_grad_by_freq=False, sparse=False):
    """torch.embedding(weight, indices): PyTorch's top-level order; padding_idx -1 means none."""
    return embedding(indices, weight, None if padding_idx == -1 else padding_idx)


_ = _dt
