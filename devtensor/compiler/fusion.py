"""Fusion of elementwise chains in a captured graph: consecutive elementwise ops of one shape and
one float dtype that feed each other (forward, backward or a Tensor-op optimizer update) become one
group, replayed as one generated kernel (codegen_cpu.py: numba; codegen_cuda.py: CUDA C). Values
read only inside a group are never stored.

Each fusible op is written once as an expression template, `{0}`, `{1}` for its operands, in the
syntax both generators share (Python and C agree on + - * / and on the calls named in CALLS).
Only operands the kernel reads elementwise qualify: arrays of the group's dtype whose shape
broadcasts to the group's shape, and finite Python numbers (converted to the group's dtype first,
as numpy and the eager kernels do).
"""
from __future__ import annotations

import math

from ..dispatch import OPS
from ..graph.ir import Ref, node_refs

# op -> (number of operands, template, changes the bits against the eager kernel)
# relu keeps NaN (0 only where x <= 0) and relu_backward passes g where y > 0, as the eager kernels.
ELEMENTWISE = {
    "add": (2, "({0} + {1})", False),
    "sub": (2, "({0} - {1})", False),
    "mul": (2, "({0} * {1})", False),
    "div": (2, "({0} / {1})", False),
    "neg": (1, "(-{0})", False),
    "relu": (1, "RELU({0})", False),
    "relu_backward": (2, "RELU_BWD({0}, {1})", False),
    "sqrt": (1, "SQRT({0})", False),
    "exp": (1, "EXP({0})", True),
    "log": (1, "LOG({0})", True),
    "tanh": (1, "TANH({0})", True),
}
_FLOAT = ("float32", "float64")


def has_effect(op_name):
    """Whether a node must run even when nobody reads its outputs: host calls and gradient deliveries
    (`@...`), and the ops that write into an argument (their `mutates` in the op table: copy_,
    adam_step_, ..., asgd_step_)."""
    return op_name.startswith("@") or writes_input(op_name)


def writes_input(op_name):
    """Whether the op's kernel writes one of its arguments (an op the table does not know: assume so)."""
    op = OPS.get(op_name)
    return op is None or bool(op.mutates)


class Group:
    """One fused kernel: `nodes` (indices into the plan's node list, in order), the values it reads
    from outside (`inputs`, value ids) and the values others read (`outputs`)."""

    def __init__(self, shape, dtype):
        self.shape, self.dtype = shape, dtype
        self.nodes: list = []
        self.produced: set = set()
        self.inputs: list = []
        self.in_shapes: list = []
        self.outputs: list = []
        self.approx = False   # exp/log/tanh: the generated math may differ from numpy's in the last bit

    def __repr__(self):
        return f"Group({len(self.nodes)} ops, {self.dtype}{list(self.shape)})"


def _fusible(n, values):
    """(shape, dtype) of an elementwise node the generators can write, else None."""
    spec = ELEMENTWISE.get(n.op)
    if spec is None or n.attrs or len(n.args) != spec[0] or len(n.outputs) != 1:
        return None
    out = values[n.outputs[0]]
    if out.dtype not in _FLOAT or not out.shape:
        return None
    for a in n.args:
        if isinstance(a, Ref):
            v = values[a.id]
            if v.dtype != out.dtype or not _broadcasts(v.shape, out.shape):
                return None
        elif isinstance(a, bool) or not isinstance(a, (int, float)) or not math.isfinite(a):
            return None
    return out.shape, out.dtype


def _broadcasts(shape, to):
    if len(shape) > len(to):
        return False
    return all(s == t or s == 1 for s, t in zip(shape[::-1], to[::-1]))


def find_groups(nodes, graph):
    """Groups of two or more fusible nodes. A group grows while the next fusible node has its shape and
    dtype (a chain, or a branch beside it); nodes in between that read none of its values and write
    nothing do not interrupt it (the group runs where its last node was, every input is ready by then)."""
    values = graph.values
    groups, cur = [], None
    for i, n in enumerate(nodes):
        spec = _fusible(n, values)
        reads = {r.id for r in node_refs(n)}
        if spec is not None and cur is not None and spec == (cur.shape, cur.dtype):
            cur.nodes.append(i)
            cur.produced.update(n.outputs)
            continue
        effect = has_effect(n.op)
        if cur is not None and (spec is not None or effect or reads & cur.produced):
            groups.append(cur)
            cur = None
        if spec is not None:
            cur = Group(*spec)
            cur.nodes.append(i)
            cur.produced.update(n.outputs)
    if cur is not None:
        groups.append(cur)
    groups = [g for g in groups if len(g.nodes) > 1]
    _finish(groups, nodes, graph)
    return groups


def _finish(groups, nodes, graph):
    """Inputs and outputs of each group: outputs are the values read after it or returned."""
    readers: dict = {}  # value id -> the groups (or None: an unfused node) reading it
    member = {i: g for g in groups for i in g.nodes}
    for i, n in enumerate(nodes):
        for r in node_refs(n):
            readers.setdefault(r.id, set()).add(id(member[i]) if i in member else None)
    for g in groups:
        seen = set()
        for i in g.nodes:
            n = nodes[i]
            g.approx |= ELEMENTWISE[n.op][2]
            for a in n.args:
                if isinstance(a, Ref) and a.id not in g.produced and a.id not in seen:
                    seen.add(a.id)
                    g.inputs.append(a.id)
                    g.in_shapes.append(graph.values[a.id].shape)
        outside = set(graph.outputs)
        for vid in g.produced:
            if vid in outside or readers.get(vid, set()) - {id(g)}:
                g.outputs.append(vid)
        g.outputs.sort()


def expressions(group, nodes, literal, operand):
    """The group's body as (temporaries, output expressions): [(name, expression)] in order, with
    input k written by `operand(k)` and Python numbers by `literal(value)`."""
    names = {vid: operand(k) for k, vid in enumerate(group.inputs)}
    body = []
    for i in group.nodes:
        n = nodes[i]
        ops = [names[a.id] if isinstance(a, Ref) else literal(a) for a in n.args]
        t = f"t{len(body)}"
        body.append((t, ELEMENTWISE[n.op][1].format(*ops)))
        names[n.outputs[0]] = t
    return body, [names[o] for o in group.outputs]
