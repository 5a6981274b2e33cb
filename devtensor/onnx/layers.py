"""Layers that map whole to one ONNX op, recognised by their module type during capture.

BatchNorm1d/2d in eval with running statistics -> BatchNormalization; LayerNorm -> LayerNormalization
(opset >= 17); GELU -> Gelu (opset >= 20); LeakyReLU -> LeakyRelu. Every other layer (and these, where
the opset lacks the op or the module is not in the state above) exports op by op, which is exact:
its ops are the ones devtensor ran.
"""
from __future__ import annotations

import numpy as np

from .common import dtype_np


def _classes():
    from ..nn import GELU, BatchNorm1d, BatchNorm2d, LayerNorm, LeakyReLU

    return (BatchNorm1d, BatchNorm2d), LayerNorm, GELU, LeakyReLU


def may_fuse(m):
    bn, ln, gelu, leaky = _classes()
    return isinstance(m, (*bn, ln, gelu, leaky))


def converter(m, opset):
    """The function converting module m whole at this opset, or None (export it op by op)."""
    bn, ln, gelu, leaky = _classes()
    if isinstance(m, bn):
        if not m.training and m.running_mean is not None and m.running_var is not None:
            return _batch_norm
        return None
    if isinstance(m, ln):
        return _layer_norm if opset >= 17 else None
    if isinstance(m, gelu):
        return _gelu if opset >= 20 else None
    if isinstance(m, leaky):
        return _leaky_relu
    return None


def _tensor_or(ctx, t, name, fill, shape, dtype):
    if t is not None:
        return ctx.param(t, name)
    return ctx.const(np.full(shape, fill, dtype=dtype), name)


def _batch_norm(ctx, node):
    m, x = node.attrs["module"], node.args[0]
    dt = ctx.values[x.id].dtype
    npd = dtype_np(dt)
    c, p = m.num_features, node.module
    ins = [ctx.x(x, dt), _tensor_or(ctx, m.weight, f"{p}.weight", 1, (c,), npd),
           _tensor_or(ctx, m.bias, f"{p}.bias", 0, (c,), npd),
           ctx.param(m.running_mean, f"{p}.running_mean"), ctx.param(m.running_var, f"{p}.running_var")]
    ctx.emit("BatchNormalization", ins, out=ctx.out(), epsilon=float(m.eps))


def _layer_norm(ctx, node):
    m, x = node.attrs["module"], node.args[0]
    npd = dtype_np(ctx.values[x.id].dtype)
    p, shape = node.module, tuple(m.normalized_shape)
    ins = [ctx.x(x), _tensor_or(ctx, m.weight, f"{p}.weight", 1, shape, npd)]
    if m.bias is not None:
        ins.append(ctx.param(m.bias, f"{p}.bias"))
    ctx.emit("LayerNormalization", ins, out=ctx.out(), axis=-len(shape), epsilon=float(m.eps))


def _gelu(ctx, node):
    m = node.attrs["module"]
    ctx.emit("Gelu", [ctx.x(node.args[0])], out=ctx.out(), approximate=m.approximate)


def _leaky_relu(ctx, node):
    m = node.attrs["module"]
    ctx.emit("LeakyRelu", [ctx.x(node.args[0])], out=ctx.out(), alpha=float(m.negative_slope))
