"""repr(tensor) in PyTorch's style: tensor([...], device='cuda:0', grad_fn=<MulBackward>)."""
from __future__ import annotations

import numpy as np

from . import dtypes as _dt


def tensor_repr(t):
    if t._device.type == "meta":
        body = f"..., size={tuple(t._data.shape)}"
    else:
        a = np.asarray(t._host())
        if t.dtype is _dt.bfloat16:
            a = a.astype(np.float32)
        with np.printoptions(precision=4, threshold=1000, edgeitems=3, linewidth=80, suppress=False,
                             floatmode="fixed" if a.dtype.kind in "fc" and not _integral(a) else "maxprec"):
            body = np.array2string(a, separator=", ", prefix="tensor(")
        if a.size == 0:
            body = f"[], size={tuple(a.shape)}" if a.ndim > 1 else "[]"
    extras = []
    if t._device.type != "cpu":
        extras.append(f"device='{t._device}'")
    default = {_dt.get_default_dtype(), _dt.get_default_dtype().to_complex(), _dt.int64, _dt.bool_}
    if t.dtype not in default:
        extras.append(f"dtype={t.dtype!r}")
    if t._edge is not None:
        extras.append(f"grad_fn=<{t._edge[0].name()}>")
    elif t._rg:
        extras.append("requires_grad=True")
    return "tensor(" + body + "".join(", " + e for e in extras) + ")"


def _integral(a):
    """PyTorch prints integer-valued floats as `1.`, not `1.0000`."""
    f = a[np.isfinite(a)]
    return f.size > 0 and bool(np.all(f == np.round(f)))
