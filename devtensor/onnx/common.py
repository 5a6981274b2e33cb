"""What every stage of the ONNX export shares: its errors, the symbolic sizes of dynamic axes, and
small conversions. The lowest module of devtensor.onnx (the others import it, it imports none of them)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import dtypes as _dt
from ..tensor import Tensor

MIN_OPSET = 13  # the newest is the installed onnx package's onnx.defs.onnx_opset_version()


class ExportError(RuntimeError):
    """The model cannot be exported as it is (the message says why and what to change)."""


class UnsupportedOperatorError(ExportError):
    """An op of the captured graph has no ONNX mapping (for this opset)."""


# ---- dims that depend on a dynamic axis ------------------------------------------------------------
@dataclass(frozen=True)
class Expr:
    """coef * product(symbols) + offset: a size (or a scalar) as a function of symbolic dims."""
    coef: float
    syms: tuple
    offset: float

    def __str__(self):
        p = "*".join(self.syms)
        s = p if self.coef == 1 else f"{_num(self.coef)}*{p}"
        return s + (f" + {_num(self.offset)}" if self.offset > 0 else f" - {_num(-self.offset)}" if self.offset else "")

    @property
    def integral(self):
        return float(self.coef).is_integer() and float(self.offset).is_integer()

    @property
    def plain(self):
        """The symbol itself (a dim equal to an input's dynamic dim)."""
        return self.coef == 1 and self.offset == 0 and len(self.syms) == 1


def _num(v):
    return str(int(v)) if float(v).is_integer() else repr(float(v))


class Dim(int):
    """An int captured from a dynamic axis: its value at the traced size and its formula (expr)."""

    def __new__(cls, value, expr):
        o = int.__new__(cls, value)
        o.expr = expr
        return o

    def __repr__(self):
        return f"Dim({int(self)}: {self.expr})"


class FDim(float):
    """A float scalar operand captured from a dynamic axis (x / x.size(0))."""

    def __new__(cls, value, expr):
        o = float.__new__(cls, value)
        o.expr = expr
        return o

    def __repr__(self):
        return f"FDim({float(self)}: {self.expr})"


def is_dim(v):
    return isinstance(v, (Dim, FDim))



def any_dim(x):
    if is_dim(x):
        return True
    if isinstance(x, (tuple, list)):
        return any(any_dim(v) for v in x)
    if isinstance(x, dict):
        return any(any_dim(v) for v in x.values())
    if isinstance(x, slice):
        return any(any_dim(v) for v in (x.start, x.stop, x.step))
    return False


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
