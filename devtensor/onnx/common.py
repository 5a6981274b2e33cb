"""What every stage of the ONNX export shares: its errors, the symbolic sizes of dynamic axes, and
small conversions. The lowest module of devtensor.onnx (the others import it, it imports none of them)."""
from __future__ import annotations

import numpy as np

from .. import dtypes as _dt
from ..tensor import Tensor

MIN_OPSET = 13  # the newest is the installed onnx package's onnx.defs.onnx_opset_version()


class ExportError(RuntimeError):
    """The model cannot be exported as it is (the message says why and what to change)."""


class UnsupportedOperatorError(ExportError):
    """An op of the captured graph has no ONNX mapping (for this opset)."""


# ---- dims that depend on a dynamic axis: shared with dt.compile(dynamic=True) --------------------
from ..graph.symbolic import Dim, Expr, FDim, any_dim, is_dim  # noqa: E402,F401


def host_array(v):
    """An external value's data on the host (numpy)."""
    t = v.tensor
    if isinstance(t, Tensor):
        return np.asarray(t._host())
    if hasattr(t, "get"):  # a raw cupy array (an index key)
        return np.asarray(t.get())
    return np.asarray(t)


# ---- errors -----------------------------------------------------------------------------------------
def unsupported(node, reason, alternative=None, opset=None):
    """The error for a node with no ONNX mapping. Without an alternative the message says where to look;
    the exporter, which knows every converter, fills in the nearest one (with_alternative)."""
    where = f"in module {node.module!r}" if node.module else "at the top level of forward"
    op = f" (opset {opset})" if opset is not None else ""
    e = UnsupportedOperatorError(f"ONNX export: {node.shown_as} {where} has no ONNX mapping{op}: {reason}. "
                                 f"Nearest alternative: "
                                 f"{alternative or 'write it with ops that export (see devtensor.onnx.CONVERTERS)'}")
    e.node, e.reason, e.alternative, e.opset = node, reason, alternative, opset
    return e


def dtype_np(name):
    return _dt._NAMES[name].np
