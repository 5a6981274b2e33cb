"""devtensor.cpu.amp: PyTorch's deprecated torch.cpu.amp.autocast / GradScaler (they warn, then work)."""
from __future__ import annotations

from .. import dtypes as _dt
from .deprecated import autocast_for, scaler_for

autocast = autocast_for("cpu", _dt.bfloat16)
GradScaler = scaler_for("cpu")
