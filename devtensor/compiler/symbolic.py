"""dt.compile(dynamic=True): one capture serves every size of the input dims that are symbolic.

How the sizes are found. The integers a captured step records (a reshape's shape, an expand's shape,
the n a mean's backward divides by, `x.sum() / x.size(0)`'s divisor) are plain Python ints, many of
them computed inside devtensor's autograd rules, so they are fitted rather than traced (the mechanism
of devtensor.graph.symbolic, shared with ONNX export): after the real call has been captured, the
function is traced again with each symbol one and two larger (inputs grown by repeating their first
rows), every number that changes is fitted to `a * s + b` (or `c * s0 * s1`) on two points and
checked on the third; traces at half and twice the size check the fit further away (a Python branch
on the size, `if x.size(0) > 50`, with its threshold in that range shows there). A symbol whose
traces fail, change the op sequence, disagree with the fit or move a number in a way the fit cannot
express (1 / x.size(0)) stays static: its dims are guarded by exact value. A branch whose threshold
lies outside half to twice the traced size is not seen: the sizes are plain ints, not SymInts that
could record the comparison as a guard.

The extra traces run the function for real (its kernels compute on the grown inputs) but leave no
trace in the program's state: host calls (optimizer and scheduler steps, zero_grad) are recorded and
not made, and every tensor the real capture read from outside (parameters, buffers), every .grad
the backward delivered to and the cpu random generator are restored afterwards. Random draws on
another device cannot be rewound, so a function that draws them there stays static.

Symbols are assigned by size, as PyTorch's duck sizing does: input dims of equal size share one
symbol (a batch dim of x and of its targets), and a replay checks that they are still equal. Sizes
0 and 1 are never symbolic (code often takes other paths for them).
"""
from __future__ import annotations

import warnings

import numpy as np

from ..graph import capture as _capture
from ..graph import symbolic as S
from ..graph.ir import Graph, Node, Value, node_refs
from ..tensor import Tensor

_RANDOM = ("rand", "randn", "randint", "randperm", "multinomial", "bernoulli", "normal", "poisson")


class Dynamic:
    """What a symbolic capture knows: the symbols, where they sit in the inputs, the symbolic graph,
    and why the candidate dims that stayed static did."""

    def __init__(self, symbols, pattern, graph, static):
        self.symbols = symbols    # name -> size at capture
        self.pattern = pattern    # per tensor argument: tuple of ints (static dims) and symbol names
        self.graph = graph        # the captured graph with Dim/FDim numbers and value shapes
        self.static = static      # symbol -> why it stayed static

    def bind(self, shapes):
        """symbol -> size for these argument shapes, or None if they do not fit the pattern."""
        if len(shapes) != len(self.pattern):
            return None
        env = {}
        for shape, pat in zip(shapes, self.pattern):
            if len(shape) != len(pat):
                return None
            for n, p in zip(shape, pat):
                if isinstance(p, str):
                    if n < 2 or env.setdefault(p, n) != n:
                        return None
                elif n != p:
                    return None
        return env

    def instantiate(self, env):
        """The captured graph with every symbolic number evaluated at sizes `env`."""
        g = self.graph
        out = Graph(values={vid: Value(v.id, S.substitute(v.shape, env), v.dtype, v.device, v.kind, v.name, v.tensor,
                                       v.requires_grad) for vid, v in g.values.items()},
                    inputs=list(g.inputs), outputs=list(g.outputs))
        out.nodes = [n if n.op.startswith("@") else
                     Node(n.op, S.substitute(n.args, env), S.substitute(n.attrs, env), n.outputs, n.module, n.shown_as)
                     for n in g.nodes]
        return out


def trace(fn, root, args, kwargs, tensors, graph, candidates):
    """The Dynamic for `graph` (fn captured on args), or None when no candidate dim can be symbolic.
    candidates: the (tensor index, axis) pairs that may be symbolic."""
    groups = {}  # size -> [(tensor index, axis)]: duck sizing
    for i, a in candidates:
        n = tensors[i].shape[a]
        if n >= 2:
            groups.setdefault(n, []).append((i, a))
    if not groups:
        return None
    names = {n: f"s{k}" for k, n in enumerate(groups)}
    static = {}
    if any(n.op in _RANDOM and graph.values[n.outputs[0]].device.split(":")[0] != "cpu" for n in graph.nodes):
        static = {names[n]: "the function draws random numbers off the cpu, which an extra trace cannot rewind"
                  for n in groups}
    variants, checks = {}, {}
    for n, where in groups.items():
        s = names[n]
        if s in static:
            continue
        runs = []
        # n+1 and n+2 fit the numbers; n//2 and 2n check the fit further away, below (where a last partial
        # batch lands) and above, so that a Python branch on the size between them (`if x.size(0) > 50`)
        # is seen
        for size in (n + 1, n + 2) + ((n // 2,) if n // 2 >= 2 else ()) + (2 * n,):
            try:
                g = _shadow(fn, root, args, kwargs, tensors, where, size, graph)
            except Exception as e:  # noqa: BLE001 - any failure at another size: that symbol stays static
                static[s] = f"tracing with size {size} failed: {type(e).__name__}: {e}"
                break
            diff = S.structure_difference(graph, g) or _constants_differ(graph, g)
            if diff is not None:
                static[s] = f"the captured graph changes at size {size}: {diff}"
                break
            runs.append((size, g))
        else:
            variants[s] = (n, runs[:2])
            checks[s] = runs[2:]
    from .replay import live_nodes

    live = {id(n) for n in live_nodes(graph)}  # a dead node's numbers need no formula
    while variants:
        try:
            nodes, dims = S.generalise(graph, variants, live)
        except S.NotAffine as e:
            for s in e.syms:
                static[s] = str(e)
                variants.pop(s, None)
            continue
        wrong = _check(graph, nodes, dims, live, variants, checks)
        if not wrong:
            break
        static.update(wrong)
        for s in wrong:
            variants.pop(s)
    if not variants:
        return None
    sym_of = {(i, a): names[n] for n, where in groups.items() if names[n] in variants for i, a in where}
    pattern = [tuple(sym_of.get((i, a), int(d)) for a, d in enumerate(t.shape)) for i, t in enumerate(tensors)]
    sg = Graph(values={vid: Value(v.id, dims[vid], v.dtype, v.device, v.kind, v.name, v.tensor, v.requires_grad)
                       for vid, v in graph.values.items()},
               nodes=nodes, inputs=list(graph.inputs), outputs=list(graph.outputs))
    sg.symbols = {names[n]: n for n in groups if names[n] in variants}
    return Dynamic(sg.symbols, pattern, sg, static)


def _shadow(fn, root, args, kwargs, tensors, where, size, graph):
    """fn captured on args whose dims `where` are grown to `size`, its effects on the program undone."""
    grown = {}
    for i, a in where:
        arr = grown.get(i)
        grown[i] = S.grow(np.asarray(tensors[i]._host() if arr is None else arr), a, size)
    from ..ops.creation import tensor as _tensor

    new = {i: _tensor(arr, dtype=tensors[i].dtype, device=tensors[i].device) for i, arr in grown.items()}
    it = iter(range(len(tensors)))
    args2, kwargs2 = _replace((args, kwargs), it, new)
    saved = _snapshot(graph, tensors)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with _capture(root=root, dry=True) as cap:
                for k, t in enumerate(flat_tensors((args2, kwargs2))):
                    cap.input(t, f"arg{k}")
                out = fn(*args2, **kwargs2)
                for t in flat_tensors(out):
                    cap.graph.outputs.append(cap.ref(t).id)
    finally:
        _restore(saved)
    return cap.graph


def _check(graph, nodes, dims, live, variants, checks):
    """symbol -> why, for the symbols whose fitted numbers miss what the check trace recorded."""
    wrong = {}
    sizes = {s: n for s, (n, _) in variants.items()}
    read = set(graph.outputs) | {r.id for n in graph.nodes if id(n) in live for r in node_refs(n)}
    for s, runs in checks.items():
        if s not in variants:
            continue
        for size, other in runs:
            env = dict(sizes, **{s: size})
            for i, n in enumerate(nodes):
                if id(graph.nodes[i]) not in live or n.op.startswith("@"):
                    continue
                got = S.leaves(S.substitute((n.args, n.attrs), env), [])
                want = S.leaves((other.nodes[i].args, other.nodes[i].attrs), [])
                if any(a[0] in ("int", "float") and not S.same(a[1], b[1]) for a, b in zip(got, want)):
                    wrong[s] = (f"a number in {n.shown_as}'s arguments does not follow the fit from sizes "
                                f"{sizes[s] + 1} and {sizes[s] + 2} at size {size} (a Python branch on the size?)")
                    break
                for o in n.outputs:
                    if o in read and S.substitute(dims[o], env) != tuple(other.values[o].shape):
                        wrong[s] = (f"{n.shown_as}'s output has shape {list(other.values[o].shape)} at size {size}, "
                                    f"not the {list(S.substitute(dims[o], env))} the fit gives")
                        break
                if s in wrong:
                    break
    return wrong


def _constants_differ(graph, other):
    """Why a tensor made outside the op table (dt.tensor(np.arange(x.size(0)))) differs in the graph
    traced at another size, or None: a replay reads such a constant as captured, it cannot follow a size."""
    for v in graph.externals():
        w = other.values[v.id]
        if w.tensor is v.tensor:
            continue
        a, b = _host(v.tensor), _host(w.tensor)
        if a.shape != b.shape or not np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"):
            return (f"a tensor made outside the op table (shape {list(a.shape)}, e.g. dt.tensor(...) of a size) "
                    "differs at another size; make it with ops (dt.arange, dt.full) to let the size follow")
    return None


def _host(t):
    """A tensor's or a raw array's (an index key's) data on the host."""
    if isinstance(t, Tensor):
        return np.asarray(t._host())
    return np.asarray(t.get() if hasattr(t, "get") else t)


def _snapshot(graph, inputs):
    """What a trace could change: the externals the real capture read, the arguments (written in place by
    some functions), the .grad of every leaf backward delivered to, the cpu generators the draws read."""
    from ..backends import get_backend

    seen = {id(t): t for t in inputs}
    seen.update((id(v.tensor), v.tensor) for v in graph.externals() if isinstance(v.tensor, Tensor))
    tensors = [(t, t._data, t._data.copy()) for t in seen.values()]
    grads = []
    for n in graph.nodes:
        if n.op == "@accumulate_grad":
            leaf = n.attrs["leaf"]
            g = leaf._grad_or_none()
            grads.append((leaf, g, None if g is None else g._data, None if g is None else g._data.copy()))
    # the cpu streams the draws read: the default one and each devtensor.Generator's a node recorded
    streams = {id(g): g for g in [get_backend("cpu").generator] + [n.attrs.get("generator") for n in graph.nodes
                                                                  if n.op in _RANDOM]
               if hasattr(g, "bit_generator")}
    gen = [(g, g.bit_generator.state) for g in streams.values()]
    return tensors, grads, gen


def _restore(saved):
    tensors, grads, gen = saved
    for t, arr, copy in tensors:
        t._data = arr
        arr[...] = copy
    for leaf, g, arr, copy in grads:
        leaf._set_grad(g)
        if g is not None:
            g._data = arr
            arr[...] = copy
    for g, state in gen:
        g.bit_generator.state = state


def flat_tensors(obj):
    """The tensors in a (nested) tuple/list/dict, in order: a compiled function's graph inputs."""
    out = []
    if isinstance(obj, Tensor):
        out.append(obj)
    elif isinstance(obj, (tuple, list)):
        for x in obj:
            out += flat_tensors(x)
    elif isinstance(obj, dict):
        for k in obj:
            out += flat_tensors(obj[k])
    return out


def _replace(obj, it, new):
    """obj with its k-th tensor (in _flat's order) replaced by new[k] where given."""
    if isinstance(obj, Tensor):
        k = next(it)
        return new.get(k, obj)
    if isinstance(obj, (tuple, list)):
        return type(obj)(_replace(x, it, new) for x in obj)
    if isinstance(obj, dict):
        return {k: _replace(obj[k], it, new) for k in obj}
    return obj
