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
    fused: dict = field(default_factory=dict)      # id(node) -> fused group number (set by compiled replay)

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
        lines = ["graph("]
        for i in self.inputs:
            lines.append(f"    {_fmt_value(self.values[i])},")
        lines.append("):")
        for v in self.externals():
            lines.append(f"  {_fmt_value(v)}")
        for n in self.nodes:
            if n.op == "@host":
                lines.append(f"  {n.attrs['name']}()  # host call, run again on every replay")
                continue
            if n.op == "@accumulate_grad":
                leaf, g = n.args
                lines.append(f"  %{leaf.id}.grad += %{g.id}  # backward's delivery to a leaf")
                continue
            outs = ", ".join(_fmt_value(self.values[o]) for o in n.outputs)
            args = ", ".join(_fmt_arg(a) for a in n.args)
            attrs = "".join(f", {k}={_fmt_arg(v)}" for k, v in n.attrs.items())
            where = f"  # {n.module}" if n.module else ""
            group = self.fused.get(id(n))
            where += "" if group is None else f"  [fused kernel {group}]"
            lines.append(f"  {outs} = {n.op}({args}{attrs}){where}")
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
    return f"%{v.id}{label}: {v.dtype}{list(v.shape)}"


def _fmt_arg(a):
    if isinstance(a, Ref):
        return f"%{a.id}"
    if isinstance(a, tuple):
        return "(" + ", ".join(_fmt_arg(x) for x in a) + ("," if len(a) == 1 else "") + ")"
    if isinstance(a, slice):
        return f"{'' if a.start is None else a.start}:{'' if a.stop is None else a.stop}" + \
            (f":{a.step}" if a.step is not None else "")
    return repr(a)
