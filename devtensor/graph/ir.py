"""The captured graph: data, not code. A list of nodes over value ids, printable and testable
without running it; capture (capture.py) builds it from the op table's calls, and everything
static reads it (ONNX export, TensorBoard's graph view, compiled replay)."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Ref:
    """A reference to a value inside a node's arguments or attributes."""
    id: int


@dataclass
class Value:
    """One array-valued value: a graph input, an external tensor (a parameter, buffer or
    optimizer state, captured by reference) or a node's output."""
    id: int
    shape: tuple
    dtype: str
    device: str
    kind: str                       # "input" | "external" | "node"
    name: str = ""                  # input name, or the external's path (e.g. "fc1.weight")
    tensor: object = None           # externals: the Tensor itself (its current data at replay/export)
    requires_grad: bool = False


@dataclass
class Node:
    op: str                         # the op table's key (dispatch.OPS), e.g. "conv2d"
    args: tuple                     # Refs, Python scalars, None
    attrs: dict
    outputs: tuple                  # value ids
    module: str = ""                # the module path the op ran in ("" at top level)
    shown_as: str = ""              # the public function's name, for messages


@dataclass
class Graph:
    values: dict = field(default_factory=dict)     # id -> Value
    nodes: list = field(default_factory=list)
    inputs: list = field(default_factory=list)     # value ids, in argument order
    outputs: list = field(default_factory=list)    # value ids
    symbols: dict = field(default_factory=dict)    # symbolic dim name -> its size at capture (dynamic graphs)
    notes: dict = field(default_factory=dict)      # node index -> [annotations] the printer shows
    fused: dict = field(default_factory=dict)      # id(node) -> fused group number (set by compiled replay)

    def annotate(self, index, text):
        """Attach `text` to node `index` (a pass's finding, e.g. "fused group 2"); str(graph) shows it."""
        self.notes.setdefault(index, []).append(str(text))

    def externals(self):
        return [v for v in self.values.values() if v.kind == "external"]

    def users(self):
        """value id -> list of nodes reading it."""
        out = {}
        for n in self.nodes:
            for r in node_refs(n):
                out.setdefault(r.id, []).append(n)
        return out

    def __str__(self):
        return self.format()

    def format(self, annotate=None):
        """The graph as text: inputs, externals, one line per node (outputs with dtype and shape, symbolic
        where dims are dynamic, the op, its arguments, the module it ran in) and the returned values.
        annotate(index, node) -> str or None adds a comment to a node's line, as graph.notes do."""
        lines = []
        if self.symbols:
            lines.append("# dynamic dims: " + ", ".join(f"{s} (captured at {n})" for s, n in self.symbols.items()))
        lines.append("graph(")
        for i in self.inputs:
            lines.append(f"    {_fmt_value(self.values[i])},")
        lines.append("):")
        for v in self.externals():
            lines.append(f"  {_fmt_value(v)}")
        for i, n in enumerate(self.nodes):
            notes = list(self.notes.get(i, ()))
            extra = annotate(i, n) if annotate is not None else None
            if extra:
                notes.append(str(extra))
            if n.op == "@host":
                name = n.attrs["name"]  # a call (Adam.step) or a statement (w.grad = None)
                line = f"  {name if '=' in name else name + '()'}  # host call, run again on every replay"
            elif n.op == "@accumulate_grad":
                leaf, g = n.args
                line = f"  %{leaf.id}.grad += %{g.id}  # backward's delivery to a leaf"
            else:
                outs = ", ".join(_fmt_value(self.values[o]) for o in n.outputs)
                args = ", ".join(_fmt_arg(a) for a in n.args)
                attrs = "".join(f", {k}={_fmt_arg(v)}" for k, v in n.attrs.items())
                where = f"  # {n.module}" if n.module else ""
                line = f"  {outs} = {n.op}({args}{attrs}){where}"
                group = self.fused.get(id(n))
                if group is not None:
                    notes.insert(0, f"[fused kernel {group}]")
            if notes:
                line += ("; " if "  # " in line else "  # ") + "; ".join(notes)
            lines.append(line)
        lines.append("  return " + ", ".join(f"%{o}" for o in self.outputs))
        return "\n".join(lines)


def node_refs(n):
    """Every Ref a node reads, in its arguments and (nested in) its attributes."""
    return _refs(n.args) + _refs(tuple(n.attrs.values()))


def _refs(items):
    out = []
    for a in items:
        if isinstance(a, Ref):
            out.append(a)
        elif isinstance(a, (tuple, list)):
            out += _refs(tuple(a))
    return out


def _fmt_value(v):
    label = f" {v.name}" if v.name else ""
    return f"%{v.id}{label}: {v.dtype}[{', '.join(_fmt_dim(d) for d in v.shape)}]"


def _fmt_dim(d):
    return str(d.expr) if hasattr(d, "expr") else str(d)  # a symbolic dim (graph.symbolic.Dim): its formula


def _fmt_arg(a):
    if hasattr(a, "expr"):  # a number that follows a dynamic dim (graph.symbolic.Dim/FDim)
        return str(a.expr)
    if isinstance(a, Ref):
        return f"%{a.id}"
    if isinstance(a, tuple):
        return "(" + ", ".join(_fmt_arg(x) for x in a) + ("," if len(a) == 1 else "") + ")"
    if isinstance(a, slice):
        return f"{'' if a.start is None else a.start}:{'' if a.stop is None else a.stop}" + \
            (f":{a.step}" if a.step is not None else "")
    return repr(a)
