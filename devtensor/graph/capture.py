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

import functools
import os
import threading
import traceback

import numpy as np

from .. import dispatch as _dispatch
from .. import dtypes as _dt
from ..tensor import _GRAD_SET, _HOST_READ, Tensor
from .ir import Graph, Node, Ref, Value

_PKG = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_local = threading.local()
# How many captures run now, on all threads: the hooks in the eager hot path (Module.__call__,
# @opaque, the engine's leaf delivery) test this plain list item and read the thread-local only
# while some capture runs.
RUNNING = [0]
_running_lock = threading.Lock()


def active():
    """The capture running on this thread, or None."""
    if not RUNNING[0]:
        return None
    return getattr(_local, "cap", None)


class Capture:
    def __init__(self, root=None, dry=False):
        self.graph = Graph()
        self.dry = dry                # host calls are recorded but not made (dt.compile's extra traces)
        self._ids: dict = {}          # id(array) -> value id (the latest value held in that array)
        self._keep: list = []         # arrays seen, kept alive so their ids stay unique
        self._modules: list = []      # the module stack (Module.__call__ pushes while capturing)
        self._names: dict = {}        # id(tensor or module) -> path in root
        self._suspended = 0           # > 0 inside a host call: its ops are not recorded
        self.host_reads: list = []    # (what, "file:line") of every value read on the host
        self.modules_seen: dict = {}  # id -> module whose __call__ ran (their .training is a guard)
        self.unsupported: list = []   # what a replay could not reproduce (the caller falls back to eager)
        self._view_writes: dict = {}  # value id written -> (op, "file:line"): in-place writes into a view
        self._views: set = set()      # value ids that are views of another value's storage
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
    def record(self, op_name, args, attrs, outs, device, shown_as="", arrays=None):
        if self._suspended:
            return
        if arrays:  # what the kernel saw: dispatch's dtype rule may have cast an argument
            args = tuple(self._implicit(a, k, device) for a, k in zip(args, arrays))
        node_args = tuple(self._arg(a, device) for a in args)
        node_attrs = {k: self._arg(v, device) for k, v in attrs.items()}
        if op_name == "index_put" and len(node_args) > 1 and isinstance(node_args[1], Ref):
            self._view_writes.pop(node_args[1].id, None)  # `x[k] += v`: the view is written back into x
        out_ids = tuple(self._new_value(o._data, "node", o._device) for o in outs)
        if op_name == "copy_" and node_args and isinstance(node_args[0], Ref) and node_args[0].id in self._views:
            # the write lands in the base's storage too, which a functional graph (ONNX) does not see
            self._view_writes[out_ids[0]] = (shown_as or op_name, _user_frame())
            self._views.add(out_ids[0])
        if _is_view(op_name, attrs):
            self._views.update(out_ids)
        self.graph.nodes.append(Node(op_name, node_args, node_attrs, out_ids, self._module_path(),
                                     shown_as or op_name))

    def _implicit(self, a, k, device):
        """The kernel's view of argument `a`: a tensor cast by the dtype rule becomes a cast node's
        output; a Python scalar becomes the value the kernel received."""
        if isinstance(a, Tensor):
            if k is a._data or not hasattr(k, "dtype"):
                return a
            ref = self.ref(a)
            vid = self._new_value(k, "node", device)
            self.graph.nodes.append(Node("cast", (ref,), {"dtype": _dt._FROM_NP[k.dtype]}, (vid,),
                                         self._module_path(), "cast"))
            return k
        return k if a is not None else None

    def _module_path(self):
        return self._names.get(id(self._modules[-1]), "") if self._modules else ""

    def host_call(self, name, fn, **call):
        """Run fn (an optimizer's step, zero_grad) unrecorded and record it as one opaque node that a
        replay calls again, so the Python state it reads (learning rates, step counts) is fresh.
        `call` (owner, method, args, kwargs) lets a replay recognise the call and run it its own way."""
        self.graph.nodes.append(Node("@host", (), {"name": name, "fn": fn, **call}, (), self._module_path(), name))
        if self.dry:
            return None
        self._suspended += 1
        try:
            return fn()
        finally:
            self._suspended -= 1

    def record_grad(self, leaf, g):
        """The backward engine delivered gradient g to leaf's .grad."""
        if self._suspended:
            return
        self.graph.nodes.append(Node("@accumulate_grad", (self.ref(leaf), self.ref(g)), {"leaf": leaf}, (),
                                     self._module_path(), "backward"))

    def grad_set(self, t, g):
        """`t.grad = g` ran: `None` (a training step's zero_grad by hand) becomes a host node a replay
        runs again, else gradients would pile up across replays; a tensor is a value a replay cannot assign."""
        if self._suspended:
            return
        if g is not None:
            self.unsupported.append(f"a tensor is assigned to .grad ({_user_frame()})")
            return
        name = self._names.get(id(t)) or "tensor"
        what = f"{name}.grad = None"
        self.graph.nodes.append(Node("@host", (), {"name": what, "fn": functools.partial(t._set_grad, None)}, (),
                                     self._module_path(), what))

    def host_read(self, t, what, decides=False):
        """A tensor's value read on the host. decides: devtensor's own code branches on it (GradScaler's
        inf check), which a replay cannot reproduce, as a user's .item() cannot."""
        if self._suspended:
            return
        if not decides and _caller_of_tensor_method().startswith(_PKG):
            return  # devtensor's own checks read values to raise errors; they decide nothing a replay needs
        self.host_reads.append((what, _user_frame()))

    @property
    def view_writes(self):
        """(op, "file:line") of in-place writes into a view that were not written back by x[k] = view."""
        return list(self._view_writes.values())

    def push_module(self, m):
        self.modules_seen[id(m)] = m
        self._modules.append(m)

    def pop_module(self):
        self._modules.pop()


def _dtype_name(d):
    return getattr(d, "name", str(d))


def opaque(method):
    """Decorator for the methods a capture must not look into (an optimizer's step and zero_grad, a
    scheduler's step): under capture the call becomes one host node that a replay makes again, so the
    Python state they read and write (learning rates, step counts, .grad = None) stays live."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        cap = active() if RUNNING[0] else None
        if cap is None:
            return method(self, *args, **kwargs)
        return cap.host_call(f"{type(self).__name__}.{method.__name__}", lambda: method(self, *args, **kwargs),
                             owner=self, method=method.__name__, args=args, kwargs=kwargs)

    return wrapper


def _is_view(op_name, attrs):
    op = _dispatch.OPS.get(op_name)
    return op is not None and (op.view or (op_name == "index" and attrs.get("basic")))


_TENSOR_PY = os.path.join(_PKG, "tensor.py")


def _caller_of_tensor_method():
    """The file that called item()/tolist()/numpy() (through bool(t), float(t), ... in tensor.py)."""
    for f in reversed(traceback.extract_stack()[:-3]):
        path = os.path.abspath(f.filename)
        if path != _TENSOR_PY and not path.endswith(os.path.join("graph", "capture.py")):
            return path
    return ""


def _user_frame():
    """file:line of the innermost frame outside devtensor: where the user's code read the value."""
    for f in reversed(traceback.extract_stack()[:-2]):
        if not os.path.abspath(f.filename).startswith(_PKG):
            return f"{f.filename}:{f.lineno}"
    return "?"


def _on_call(op, args, attrs, outs, arrays=None):
    cap = active()
    if cap is not None:
        dev = next((a._device for a in args if isinstance(a, Tensor)), outs[0]._device)
        cap.record(op.name, args, attrs, outs, dev, op.shown_as, arrays)


def _on_grad_set(t, g):
    cap = active()
    if cap is not None:
        cap.grad_set(t, g)


def host_value(t, what):
    """t.item() for devtensor code whose next steps depend on the value: a capture running on this thread
    records the read, so dt.compile falls back to eager with its warning instead of baking the value in."""
    cap = active() if RUNNING[0] else None
    if cap is not None:
        cap.host_read(t, what, decides=True)
    return t.item()


def _on_host_read(t, what):
    cap = active()
    if cap is not None:
        cap.host_read(t, what)


class capture:
    """Context manager: capture every op run on this thread inside the block."""

    def __init__(self, root=None, dry=False):
        self._cap = Capture(root, dry)

    def __enter__(self):
        if active() is not None:
            raise RuntimeError("capture: a capture is already running on this thread (captures do not nest)")
        _local.cap = self._cap
        with _running_lock:
            RUNNING[0] += 1
        _dispatch.set_trace(_on_call)
        _HOST_READ[0] = _on_host_read
        _GRAD_SET[0] = _on_grad_set
        return self._cap

    def __exit__(self, *exc):
        _local.cap = None
        with _running_lock:
            RUNNING[0] -= 1
        _dispatch.set_trace(None)
        _HOST_READ[0] = None
        _GRAD_SET[0] = None
        return False
