"""devtensor.cpu.amp: PyTorch's deprecated torch.cpu.amp.autocast / GradScaler (forwarding to devtensor.amp)."""
from __future__ import annotations

import warnings

from .. import dtypes as _dt
from .cuda_amp import deprecated_autocast
from .grad_scaler import GradScaler as _GradScaler

autocast = deprecated_autocast("cpu", _dt.bfloat16)


class GradScaler(_GradScaler):
    def __init__(self, init_scale=2.0 ** 16, growth_factor=2.0, backoff_factor=0.5, growth_interval=2000,
                 enabled=True):
        warnings.warn("`torch.cpu.amp.GradScaler(args...)` is deprecated. Please use "
                      "`torch.amp.GradScaler('cpu', args...)` instead.", FutureWarning, stacklevel=2)
        super().__init__("cpu", init_scale, growth_factor, backoff_factor, growth_interval, enabled)
