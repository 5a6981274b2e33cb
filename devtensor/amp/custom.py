"""torch.amp.custom_fwd / custom_bwd: autocast for a custom autograd.Function. custom_fwd runs forward
under the caller's autocast state, or, with cast_inputs, casts its floating tensor arguments to that
dtype and runs it with autocast off; custom_bwd runs backward under the state forward ran in."""
from __future__ import annotations

import functools

from .. import dtypes as _dt
from ..autocast_mode import get_autocast_dtype, is_autocast_enabled
from ..ops.autocast import autocast
from ..tensor import Tensor


def _cast(v, device_type, dtype):
    if isinstance(v, Tensor):
        ok = v.device.type == device_type and v.dtype.is_floating_point and v.dtype is not _dt.float64
        return v.to(dtype) if ok else v
    if isinstance(v, (list, tuple)):
        return type(v)(_cast(x, device_type, dtype) for x in v)
    if isinstance(v, dict):
        return {k: _cast(x, device_type, dtype) for k, x in v.items()}
    return v


def custom_fwd(fwd=None, *, device_type, cast_inputs=None):
    """Decorator for a Function's forward(ctx, ...)."""
    if fwd is None:
        return functools.partial(custom_fwd, device_type=device_type, cast_inputs=cast_inputs)

    @functools.wraps(fwd)
    def decorate_fwd(*args, **kwargs):
        ctx = args[0]
        ctx._dtype = get_autocast_dtype(device_type)
        on = is_autocast_enabled(device_type)
        if cast_inputs is None:
            ctx._fwd_used_autocast = on
            return fwd(*args, **kwargs)
        ctx._fwd_used_autocast = False
        if not on:
            return fwd(*args, **kwargs)
        with autocast(device_type, enabled=False):
            return fwd(*_cast(args, device_type, cast_inputs), **_cast(kwargs, device_type, cast_inputs))

    return decorate_fwd


def custom_bwd(bwd=None, *, device_type):
    """Decorator for a Function's backward(ctx, ...): the autocast state its forward ran in."""
    if bwd is None:
        return functools.partial(custom_bwd, device_type=device_type)

    @functools.wraps(bwd)
    def decorate_bwd(*args, **kwargs):
        ctx = args[0]
        with autocast(device_type, dtype=ctx._dtype, enabled=ctx._fwd_used_autocast):
            return bwd(*args, **kwargs)

    return decorate_bwd
