"""devtensor.cuda.amp: PyTorch's deprecated torch.cuda.amp.autocast / GradScaler, which warn and forward to
devtensor.amp's."""
from __future__ import annotations

import functools
import warnings

from .. import dtypes as _dt
from ..ops.autocast import autocast as _autocast
from .grad_scaler import GradScaler as _GradScaler


def deprecated_autocast(device_type, default_dtype):
    """PyTorch's torch.<device>.amp.autocast(enabled, dtype, cache_enabled): a FutureWarning, then
    autocast(device_type, ...)."""

    class autocast(_autocast):
        @functools.wraps(_autocast.__init__)
        def __init__(self, enabled=True, dtype=default_dtype, cache_enabled=True):
            warnings.warn(f"`torch.{device_type}.amp.autocast(args...)` is deprecated. Please use "
                          f"`torch.amp.autocast('{device_type}', args...)` instead.", FutureWarning, stacklevel=2)
            super().__init__(device_type, dtype=dtype, enabled=enabled, cache_enabled=cache_enabled)

    autocast.__qualname__ = autocast.__name__ = "autocast"
    return autocast


autocast = deprecated_autocast("cuda", _dt.float16)


class GradScaler(_GradScaler):
    def __init__(self, init_scale=2.0 ** 16, growth_factor=2.0, backoff_factor=0.5, growth_interval=2000,
                 enabled=True):
        warnings.warn("`torch.cuda.amp.GradScaler(args...)` is deprecated. Please use "
                      "`torch.amp.GradScaler('cuda', args...)` instead.", FutureWarning, stacklevel=2)
        super().__init__("cuda", init_scale, growth_factor, backoff_factor, growth_interval, enabled)
