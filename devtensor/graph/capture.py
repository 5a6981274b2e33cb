"""Capture at the op table: while a capture is active, every op call (dispatch.call, the creation
ops, device moves) is appended to a Graph as it runs eagerly.

    with capture(root=model) as cap:
        x = cap.input(x, "x")
        y = model(x)
    cap.graph.outputs = [cap.ref(y).id]

Values are identified by their backend array: an array an earlier captured op produced is that
op's output; any other array a captured op reads is an *external* (a parameter, a buffer, an
optimizer state, a constant made outside), captured by reference with its path in `root` when it
has one. Arrays made during the capture are kept alive until it ends, so an id is never reused
for another value.
"""
from __future__ import annotations

import threading

import numpy as np

from .. import dispatch as _dispatch
from ..tensor import Tensor
from .ir import Graph, Node, Ref, Value

_local = threading.local()


def active():
    """The capture running on this thread, or None."""
    return getattr(_local, "cap", None)


class Capture:
    def __init__(self, root=None):
        self.graph = Graph()
        self._ids: dict = {}          # id(array) -> value id (the latest value held in that array)
        self._keep: list = []         # arrays seen, kept alive so their ids stay unique
        self._modules: list = []      # the module stack (Module.__call__ pushes while capturing)
        self._names: dict = {}        # id(tensor or module) -> path in root
        if root is not None:
            for name, m in root.named_modules():
                self._names[id(m)] = name
            for name, p in root.named_parameters():
                self._names[id(p)] = name
            for name, b in root.named_buffers():
                self._names[id(b)] = name

    # ---- values --------------------------------------------------------------------------------
    def _new_value(self, arr, kind, device, name="", tensor=None, requires_grad=False):
        vid = len(self.graph.values)
        self.graph.values[vid] = Value(vid, tuple(int(s) for s in arr.shape), _dtype_name(arr.dtype), str(device),
                                       kind, name, tensor, requires_grad)
        self._ids[id(arr)] = vid
        self._keep.append(arr)
        return vid

    def input(self, t, name=""):
        """Mark `t` as a graph input (returns it, for chaining)."""
        vid = self._new_value(t._data, "input", t._device, name or f"input{len(self.graph.inputs)}")
        self.graph.inputs.append(vid)
        return t

    def ref(self, t):
        """The value a tensor holds (an external one if no captured op made it)."""
        vid = self._ids.get(id(t._data))
        if vid is None:
            vid = self._new_value(t._data, "external", t._device, self._names.get(id(t), ""), t,
                                  bool(t._rg))
        return Ref(vid)

    def _arg(self, a, device):
        if isinstance(a, Tensor):
            return self.ref(a)
        if hasattr(a, "shape") and hasattr(a, "dtype") and not isinstance(a, np.generic):
            vid = self._ids.get(id(a))  # a raw array inside an attribute (an index key)
            if vid is None:
                vid = self._new_value(a, "external", device, tensor=a)
            return Ref(vid)
        if isinstance(a, (tuple, list)):
            return tuple(self._arg(x, device) for x in a)
        return a

    # ---- recording -----------------------------------------------------------------------------
    def record(self, op_name, args, attrs, outs, device, shown_as=""):
        node_args = tuple(self._arg(a, device) for a in args)
        node_attrs = {k: self._arg(v, device) for k, v in attrs.items()}
        out_ids = tuple(self._new_value(o._data, "node", o._device) for o in outs)
        module = self._names.get(id(self._modules[-1]), "") if self._modules else ""
        self.graph.nodes.append(Node(op_name, node_args, node_attrs, out_ids, module, shown_as or op_name))

    def push_module(self, m):
        self._modules.append(m)

    def pop_module(self):
        self._modules.pop()


def _dtype_name(d):
    return getattr(d, "name", str(d))


def _on_call(op, args, attrs, outs):
    cap = active()
    if cap is not None:
        dev = next((a._device for a in args if isinstance(a, Tensor)), outs[0]._device)
        cap.record(op.name, args, attrs, outs, dev, op.shown_as)


class capture:
    """Context manager: capture every op run on this thread inside the block."""

    def __init__(self, root=None):
        self._cap = Capture(root)

    def __enter__(self):
        if active() is not None:
            raise RuntimeError("capture: a capture is already running on this thread (captures do not nest)")
        _local.cap = self._cap
        _dispatch.set_trace(_on_call)
        return self._cap

    def __exit__(self, *exc):
        _local.cap = None
        _dispatch.set_trace(None)
        return False
