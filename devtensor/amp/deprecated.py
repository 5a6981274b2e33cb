"""PyTorch's deprecated per-device spellings, torch.cuda.amp / torch.cpu.amp's autocast and GradScaler:
subclasses that warn with PyTorch's FutureWarning, then behave as devtensor.amp's for that device."""
from __future__ import annotations

import warnings

from ..ops.autocast import autocast as _autocast
from .custom import custom_bwd as _custom_bwd
from .custom import custom_fwd as _custom_fwd
from .grad_scaler import GradScaler as _GradScaler


def autocast_for(device_type, default_dtype):
    """torch.<device>.amp.autocast(enabled=True, dtype=..., cache_enabled=True)."""

    class autocast(_autocast):
        def __init__(self, enabled=True, dtype=default_dtype, cache_enabled=True):
            warnings.warn(f"`torch.{device_type}.amp.autocast(args...)` is deprecated. Please use "
                          f"`torch.amp.autocast('{device_type}', args...)` instead.", FutureWarning, stacklevel=2)
            super().__init__(device_type, dtype=dtype, enabled=enabled, cache_enabled=cache_enabled)

    return autocast


def scaler_for(device_type):
    """torch.<device>.amp.GradScaler(init_scale, growth_factor, backoff_factor, growth_interval, enabled)."""

    class GradScaler(_GradScaler):
        def __init__(self, init_scale=2.0 ** 16, growth_factor=2.0, backoff_factor=0.5, growth_interval=2000,
                     enabled=True):
            warnings.warn(f"`torch.{device_type}.amp.GradScaler(args...)` is deprecated. Please use "
                          f"`torch.amp.GradScaler('{device_type}', args...)` instead.", FutureWarning, stacklevel=2)
            super().__init__(device_type, init_scale, growth_factor, backoff_factor, growth_interval, enabled)

    return GradScaler


def custom_fwd_for(device_type):
    """torch.<device>.amp.custom_fwd(fwd=None, *, cast_inputs=None)."""

    def custom_fwd(fwd=None, *, cast_inputs=None):
        warnings.warn(f"`torch.{device_type}.amp.custom_fwd(args...)` is deprecated. Please use "
                      f"`torch.amp.custom_fwd(args..., device_type='{device_type}')` instead.", FutureWarning,
                      stacklevel=2)
        return _custom_fwd(fwd, device_type=device_type, cast_inputs=cast_inputs)

    return custom_fwd


def custom_bwd_for(device_type):
    """torch.<device>.amp.custom_bwd(bwd)."""

    def custom_bwd(bwd):
        warnings.warn(f"`torch.{device_type}.amp.custom_bwd(args...)` is deprecated. Please use "
                      f"`torch.amp.custom_bwd(args..., device_type='{device_type}')` instead.", FutureWarning,
                      stacklevel=2)
        return _custom_bwd(bwd, device_type=device_type)

    return custom_bwd
