"""devtensor.amp (torch.amp): automatic mixed precision. autocast picks each op's compute dtype inside a
region (ops/autocast.py); GradScaler scales the loss so float16 gradients keep their small values.

devtensor.cuda.amp and devtensor.cpu.amp are PyTorch's deprecated spellings (cuda_amp, cpu_amp below):
they work and warn with PyTorch's FutureWarning."""
from __future__ import annotations

from ..autocast_mode import get_autocast_dtype, is_autocast_enabled  # noqa: F401
from ..ops.autocast import autocast  # noqa: F401
from . import cpu_amp, cuda_amp  # noqa: F401
from .custom import custom_bwd, custom_fwd  # noqa: F401
from .grad_scaler import GradScaler  # noqa: F401

__all__ = ["autocast", "GradScaler", "custom_fwd", "custom_bwd", "is_autocast_enabled", "get_autocast_dtype", "cpu_amp", "cuda_amp"]
