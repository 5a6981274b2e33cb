"""devtensor.cuda.amp: PyTorch's deprecated torch.cuda.amp.autocast / GradScaler / custom_fwd /
custom_bwd (they warn, then work)."""
from __future__ import annotations

from .. import dtypes as _dt
from .deprecated import autocast_for, custom_bwd_for, custom_fwd_for, scaler_for

autocast = autocast_for("cuda", _dt.float16)
GradScaler = scaler_for("cuda")
custom_fwd = custom_fwd_for("cuda")
custom_bwd = custom_bwd_for("cuda")
