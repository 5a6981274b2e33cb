"""devtensor.cuda.amp: PyTorch's deprecated torch.cuda.amp.autocast / GradScaler (they warn, then work)."""
from __future__ import annotations

from .. import dtypes as _dt
from .deprecated import autocast_for, scaler_for

autocast = autocast_for("cuda", _dt.float16)
GradScaler = scaler_for("cuda")
