"""The ONNX graph under construction: value names, initializers, constants, shape tensors computed
from dynamic dims, and the final ModelProto. Converters (ops.py, layers.py) talk to a Ctx."""
from __future__ import annotations

import numpy as np

from ..graph import Ref
from ..graph.ir import node_refs
from .common import Dim, ExportError, FDim, dtype_np, host_array, is_dim, unsupported

_ONNX_TYPES = {"float32": "FLOAT", "float64": "DOUBLE", "float16": "FLOAT16", "bfloat16": "BFLOAT16",
               "int8": "INT8", "int16": "INT16", "int32": "INT32", "int64": "INT64", "uint8": "UINT8",
               "bool": "BOOL"}
INT64_MAX = np.iinfo(np.int64).max
INT64_MIN = np.iinfo(np.int64).min


class Ctx:
    def __init__(self, onnx, graph, dims, folded, opset, live, sym_src):
        self.onnx, self.helper, self.nh = onnx, onnx.helper, onnx.numpy_helper
        self.TP = onnx.TensorProto
        self.graph, self.values, self.dims, self.folded = graph, graph.values, dims, folded
        self.opset = opset
        self.live_ids = live
        self.sym_src = sym_src          # symbol -> (graph input name, axis)
        self.nodes, self.inits = [], []
        self.names: dict = {}           # value id -> ONNX name
        self.used: set = set()          # every name given out
        self._consts: dict = {}
        self._tensors: dict = {}        # id(tensor) -> initializer name
        self._cache: dict = {}
        self._count = 0
        self.node = None                # the captured node being converted

    # ---- names ---------------------------------------------------------------------------------
    def fresh(self, hint):
        hint = hint.replace("/", "_") or "v"
        name, k = hint, 1
        while name in self.used:
            name, k = f"{hint}_{k}", k + 1
        self.used.add(name)
        return name

    def name(self, vid):
        """The ONNX name of value `vid` (an initializer is made on first use of a constant)."""
        n = self.names.get(vid)
        if n is not None:
            return n
        v = self.values[vid]
        if vid in self.folded:
            n = self.init(self.folded[vid], "const")
        elif v.kind == "external":
            n = self.tensor_init(v, v.name or "const")
        else:
            raise ExportError(f"internal: value %{vid} is used before the node that makes it was converted")
        self.names[vid] = n
        return n

    def tensor_init(self, v, hint):
        key = id(v.tensor)
        if key not in self._tensors:
            self._tensors[key] = self.init(host_array(v), hint)
        return self._tensors[key]

    def param(self, tensor, hint):
        """An initializer for a module's tensor (layers.py), shared with its other uses."""
        key = id(tensor)
        if key not in self._tensors:
            self._tensors[key] = self.init(np.asarray(tensor._host()), hint)
        return self._tensors[key]

    def init(self, arr, hint):
        name = self.fresh(hint)
        arr = np.asarray(arr)
        if arr.dtype.name == "bfloat16":
            t = self.helper.make_tensor(name, self.TP.BFLOAT16, arr.shape, arr.view(np.uint16).tobytes(), raw=True)
        else:
            t = self.nh.from_array(np.array(arr, order="C"), name)
        self.inits.append(t)
        return name

    def const(self, arr, hint="const"):
        arr = np.asarray(arr)
        key = (arr.dtype.str, arr.shape, arr.tobytes())
        if key not in self._consts:
            self._consts[key] = self.init(arr, hint)
        return self._consts[key]

    def out(self, i=0):
        vid = self.node.outputs[i]
        if vid not in self.names:
            self.names[vid] = self.fresh(f"{self.node.op.lstrip('@')}_{vid}")
        return self.names[vid]

    def live(self, i):
        return self.node.outputs[i] in self.live_ids

    # ---- nodes ---------------------------------------------------------------------------------
    def emit(self, op_type, inputs, out=None, n_out=1, **attrs):
        """Append an ONNX node; returns its output name (a list for n_out > 1)."""
        self._count += 1
        path = self.node.module if self.node is not None else ""
        node_name = f"/{path.replace('.', '/')}/{op_type}_{self._count}" if path else f"/{op_type}_{self._count}"
        if out is None:
            outs = [self.fresh(f"{op_type}_{self._count}" + (f"_{k}" if n_out > 1 else "")) for k in range(n_out)]
        else:
            outs = list(out) if isinstance(out, (list, tuple)) else [out]
        attrs = {k: v for k, v in attrs.items() if v is not None}
        self.nodes.append(self.helper.make_node(op_type, list(inputs), outs, name=node_name, **attrs))
        return outs if n_out > 1 or isinstance(out, (list, tuple)) else outs[0]

    # ---- values and their dtypes ---------------------------------------------------------------
    def dtype(self, a):
        return self.values[a.id].dtype

    def shape(self, a):
        """Dims of a Ref: ints, or Dim where the size follows a dynamic axis."""
        return self.dims[a.id]

    def ndim(self, a):
        return len(self.values[a.id].shape)

    def onnx_type(self, dtype_name):
        try:
            return getattr(self.TP, _ONNX_TYPES[dtype_name])
        except KeyError:
            raise ExportError(f"ONNX export: dtype {dtype_name} has no ONNX type") from None

    def x(self, a, dtype=None):
        """The ONNX name of argument `a` (a Ref, a Python number, a Dim), cast to `dtype` (a name)."""
        if isinstance(a, Ref):
            n = self.name(a.id)
            if dtype is not None and self.dtype(a) != dtype:
                return self.cast(n, dtype)
            return n
        if a is None:
            return ""
        if dtype is None:
            raise ExportError(f"internal: a scalar operand of {self.node.op} needs a dtype")
        if is_dim(a):
            t = self.dim_tensor(a.expr)
            t = self.emit("Squeeze", [t, self.const(np.array([0], np.int64))])
            return self.cast(t, dtype)
        return self.const(np.asarray(a).astype(dtype_np(dtype)), "scalar")

    def cast(self, name, dtype):
        return self.emit("Cast", [name], to=self.onnx_type(dtype))

    def ints(self, seq):
        """A 1-D int64 tensor holding `seq` (entries may be Dim: computed from the input's shape)."""
        seq = list(seq)
        if not any(is_dim(s) for s in seq):
            return self.const(np.array([int(s) for s in seq], dtype=np.int64).reshape(len(seq)), "shape")
        parts, run = [], []
        for s in seq:
            if is_dim(s):
                if run:
                    parts.append(self.const(np.array(run, np.int64)))
                    run = []
                t = self.dim_tensor(s.expr)
                if not s.expr.integral:
                    raise ExportError(f"{self.node.shown_as}: size {s.expr} is not an integer expression")
                parts.append(t)
            else:
                run.append(int(s))
        if run:
            parts.append(self.const(np.array(run, np.int64)))
        return parts[0] if len(parts) == 1 else self.emit("Concat", parts, axis=0)

    def dim_tensor(self, expr):
        """A 1-element tensor computing expr from Shape(input): int64, or float64 for a fractional formula."""
        if expr in self._cache:
            return self._cache[expr]
        t = None
        for s in expr.syms:
            d = self.sym_dim(s)
            t = d if t is None else self.emit("Mul", [t, d])
        if expr.integral:
            if expr.coef != 1:
                t = self.emit("Mul", [t, self.const(np.array([int(expr.coef)], np.int64))])
            if expr.offset:
                t = self.emit("Add", [t, self.const(np.array([int(expr.offset)], np.int64))])
        else:
            t = self.emit("Cast", [t], to=self.TP.DOUBLE)
            t = self.emit("Mul", [t, self.const(np.array([expr.coef], np.float64))])
            if expr.offset:
                t = self.emit("Add", [t, self.const(np.array([expr.offset], np.float64))])
        self._cache[expr] = t
        return t

    def sym_dim(self, sym):
        key = ("sym", sym)
        if key not in self._cache:
            inp, axis = self.sym_src[sym]
            shape = self._cache.get(("shape", inp))
            if shape is None:
                shape = self._cache[("shape", inp)] = self.emit("Shape", [inp])
            self._cache[key] = self.emit("Gather", [shape, self.const(np.array([axis], np.int64))], axis=0)
        return self._cache[key]

    def static(self, v, what):
        """v, which must not depend on a dynamic axis (ONNX wants it as a static attribute)."""
        if _has_dim(v):
            raise ExportError(f"ONNX export: {self.node.shown_as}'s {what} ({v!r}) follows a dynamic axis, but ONNX "
                              "needs it static; export without that dynamic axis or compute it from tensors")
        return _plain(v)

    def unsupported(self, reason, alternative=None):
        return unsupported(self.node, reason, alternative, self.opset)


def _has_dim(v):
    if is_dim(v):
        return True
    if isinstance(v, (tuple, list)):
        return any(_has_dim(x) for x in v)
    return False


def _plain(v):
    if isinstance(v, Dim):
        return int(v)
    if isinstance(v, FDim):
        return float(v)
    if isinstance(v, (tuple, list)):
        return type(v)(_plain(x) for x in v)
    return v


def _refs_of(n):
    return [r.id for r in node_refs(n)]
