"""Replay of a captured graph: one generated Python function per capture that calls the kernels on
arrays, straight-line, in capture order: no dispatch, no Tensor wrapping, no autograd recording,
no per-op interpreter loop.

A plan is built once per capture: dead values are dropped (nodes whose outputs nobody reads and
that write nothing), chains of elementwise ops become one generated kernel each (fusion.py, with
codegen_cpu.py / codegen_cuda.py), and the replay function's source is generated with every
kernel, constant and external tensor bound as a global. Externals (parameters, buffers, optimizer
state) are read from their Tensors at the start of every replay, so in-place updates and
reassigned `.data` are seen; host nodes (zero_grad, a scheduler's step) run their Python again;
an optimizer's step runs as its fused kernels with the hyper-parameters read live
(optim_live.py); gradients are delivered with the engine's rule (set when .grad is None, else
added in place). A fused group's output that never leaves the replay (read only by ops that make
new arrays) is written into one buffer allocated when the plan is built, reused by every replay.
"""
from __future__ import annotations

import numpy as np

from ..dispatch import COMPARE, OPS, _backend
from ..graph.ir import Ref, node_refs
from ..tensor import _wrap
from . import fusion
from .optim_live import live_step

# ops whose kernels always return a new array (never an input or a view of one): a buffer only
# they read cannot be seen outside the replay that wrote it
_FRESH = frozenset(fusion.ELEMENTWISE) | {"matmul", "linear", "sum", "mean", "conv2d", "max_pool2d",
                                          "cross_entropy_mean", "cross_entropy_rows_backward", "mse_loss",
                                          "log_softmax", "softmax"}


def live_nodes(graph):
    """The nodes a replay must run: those with an effect, and every node whose output is read by
    a live node or returned (one backward walk over the graph)."""
    needed = set(graph.outputs)
    keep = []
    for n in reversed(graph.nodes):
        effect = fusion.has_effect(n.op)
        if effect or any(o in needed for o in n.outputs):
            keep.append(n)
            for r in node_refs(n):
                needed.add(r.id)
    keep.reverse()
    return keep


class Plan:
    """`run(input_arrays)` -> {output value id: array}. `source` is the generated replay function,
    `groups` the fused groups, `calls` the calls one replay makes (kernels, fused kernels, host
    calls and gradient deliveries)."""

    def __init__(self, graph, device, fuse=True):
        self.graph = graph
        self.nodes = live_nodes(graph)
        self.inputs = list(graph.inputs)
        self.device = device
        self.groups = fusion.find_groups(self.nodes, graph) if fuse and device.type in ("cpu", "cuda") else []
        self.buffers = {}  # value id -> the array every replay writes that value into
        self.source, glb = _Emitter(self).emit()
        self.calls = glb.pop("__calls__")
        code = compile(self.source, f"<devtensor.compile replay {id(self):x}>", "exec")
        exec(code, glb)  # noqa: S102 - our own generated source
        self._run = glb["replay"]
        graph.fused = {id(self.nodes[i]): k for k, g in enumerate(self.groups) for i in g.nodes}

    def run(self, input_arrays, device=None):
        return self._run(input_arrays)


class _Emitter:
    """Writes the replay function: one line (or a few) per live node, names v<id> for values."""

    def __init__(self, plan):
        self.p = plan
        self.glb = {"_wrap": _wrap, "_np": np}
        self.lines = []
        self.calls = 0
        be = _backend(plan.device)
        self.glb["AT"], self.glb["ENSURE"], self.glb["DEV"] = be.array_type, be.ensure_array, plan.device

    def const(self, v, hint="C"):
        name = f"{hint}{len(self.glb)}"
        self.glb[name] = v
        return name

    def expr(self, a):
        """Python source for an argument: a value's variable, a tuple of them, or a bound constant."""
        if isinstance(a, Ref):
            return f"v{a.id}"
        if isinstance(a, tuple) and _has_ref(a):
            return "(" + "".join(self.expr(x) + ", " for x in a) + ")"
        if a is None or isinstance(a, (bool, int)):
            return repr(a)
        return self.const(a)

    def emit(self):
        p, L = self.p, self.lines
        ins = "".join(f"v{i}, " for i in p.inputs)
        L.append("def replay(inputs):")
        if ins:
            L.append(f"    {ins}= inputs")
        for v in p.graph.externals():
            t = self.const(v.tensor, "X")
            L.append(f"    v{v.id} = {t}._data" if hasattr(v.tensor, "_data") else f"    v{v.id} = {t}")
        last = {g.nodes[-1]: g for g in p.groups}
        inside = {i for g in p.groups for i in g.nodes}
        shared = _shared_values(p)
        for i, n in enumerate(p.nodes):
            if i in last:
                self.group(last[i])
            elif i in inside:
                continue
            elif n.op == "@host":
                self.calls += 1
                fn = live_step(n) or n.attrs["fn"]
                L.append(f"    {self.const(fn, 'H')}()  # {fn!r}" if fn is not n.attrs["fn"]
                         else f"    {self.const(fn, 'H')}()  # {n.attrs['name']}")
            elif n.op == "@accumulate_grad":
                self.calls += 1
                leaf, g = self.const(n.attrs["leaf"], "L"), n.args[1].id
                val = f"v{g}.copy()" if g in shared else f"v{g}"
                L += [f"    g = {leaf}._grad_or_none()",
                      f"    if g is None: {leaf}._set_grad(_wrap({val}, DEV))",
                      f"    else: g._data += v{g}; g._bump('backward')"]
            else:
                self.kernel(n)
        L.append("    return {" + "".join(f"{o}: v{o}, " for o in p.graph.outputs) + "}")
        self.glb["__calls__"] = self.calls
        return "\n".join(L) + "\n", self.glb

    def kernel(self, n):
        self.calls += 1
        op = OPS[n.op]
        dev = self.p.device
        if n.op in _CREATION:
            dev = n.attrs.get("device", dev)
        fn = op.kernels[dev.type if hasattr(dev, "type") else self.p.device.type]
        outs = "".join(f"v{o}, " for o in n.outputs)
        if n.op in _CREATION:
            args = tuple(n.attrs[k] for k in _CREATION[n.op]) + (n.attrs["device"],)
            call = f"{self.const(fn, 'K')}(*{self.const(args)})"
        elif n.op == "copy_to":
            call = f"{self.const(_mover(n.attrs['device']), 'K')}({', '.join(self.expr(a) for a in n.args)})"
        else:
            args = [self.expr(a) for a in n.args] + [f"{k}={self.expr(v)}" for k, v in n.attrs.items()]
            call = f"{self.const(fn, 'K')}({', '.join(args)})"
        if len(n.outputs) > 1:
            self.lines.append(f"    {outs}= {call}  # {n.op}")
            return
        v = f"v{n.outputs[0]}"
        self.lines += [f"    {v} = {call}  # {n.op}", f"    if {v}.__class__ is not AT: {v} = ENSURE({v})"]
        if op.rule is COMPARE:
            self.lines.append(f"    if {v}.dtype != _np.bool_: {v} = {v}.astype(_np.bool_)")

    def group(self, g):
        self.calls += 1
        p = self.p
        kernel, empty = _group_kernel(g, p.nodes, p.device)
        reusable = _reusable(g, p)
        outs = []
        for o in g.outputs:
            v = p.graph.values[o]
            if o in reusable:
                p.buffers[o] = empty(v.shape, v.dtype)
                self.lines.append(f"    v{o} = {self.const(p.buffers[o], 'B')}")
            else:
                self.lines.append(f"    v{o} = {self.const(empty, 'E')}({v.shape!r}, {v.dtype!r})")
            outs.append(f"v{o}")
        ops = "+".join(p.nodes[i].op for i in g.nodes)
        args = ", ".join([f"v{i}" for i in g.inputs] + outs)
        self.lines.append(f"    {self.const(kernel, 'F')}({args})  # fused: {ops}")


def _group_kernel(g, nodes, device):
    """(kernel(inputs..., outputs...), empty(shape, dtype)) for one fused group on `device`."""
    if device.type == "cuda":
        from . import codegen_cuda

        return codegen_cuda.launcher(g, nodes, device.index), codegen_cuda.empty(device.index)
    from . import codegen_cpu

    return codegen_cpu.launcher(g, nodes), np.empty


def _reusable(g, plan):
    """Outputs of group g that can live in one buffer across replays: not returned, not delivered as a
    gradient, read only by fused groups and by ops that make new arrays."""
    member = {i for grp in plan.groups for i in grp.nodes}
    bad = set(plan.graph.outputs)
    for i, n in enumerate(plan.nodes):
        if i in member:
            continue
        if n.op.startswith("@") or n.op not in _FRESH:
            bad.update(r.id for r in node_refs(n))
    return {o for o in g.outputs if o not in bad}


def _has_ref(t):
    return any(isinstance(x, Ref) or (isinstance(x, tuple) and _has_ref(x)) for x in t)


def _shared_values(plan):
    """Values read by more than one consumer, or returned: a gradient delivered from one of these
    must be copied (as the engine copies a gradient it does not own)."""
    count = {}
    for n in plan.nodes:
        for r in node_refs(n):
            count[r.id] = count.get(r.id, 0) + 1
    for o in plan.graph.outputs:
        count[o] = count.get(o, 0) + 2
    for i in plan.inputs:
        count[i] = count.get(i, 0) + 2
    for v in plan.graph.externals():
        count[v.id] = count.get(v.id, 0) + 2
    return {k for k, c in count.items() if c > 1}


_CREATION = {"full": ("shape", "value", "dtype"), "empty": ("shape", "dtype"), "rand": ("shape", "dtype", "generator"),
             "randn": ("shape", "dtype", "generator"), "randint": ("low", "high", "shape", "dtype", "generator"),
             "randperm": ("n", "dtype", "generator"),
             "arange": ("start", "end", "step", "dtype"), "linspace": ("start", "end", "steps", "dtype"),
             "eye": ("n", "m", "dtype")}


def _mover(dev):
    be = _backend(dev)

    def move(a):
        host = a if isinstance(a, np.ndarray) else _backend_of(a).to_numpy(a)
        return be.from_numpy(np.asarray(host), dev)

    return move


def _backend_of(a):
    from ..backends import registered

    for be in registered().values():
        if be.array_type is not None and isinstance(a, be.array_type):
            return be
    raise TypeError(f"replay: no backend holds arrays of type {type(a).__name__}")
