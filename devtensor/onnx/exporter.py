"""devtensor.onnx.export: capture -> dynamic dims -> whole layers -> dead code -> constants -> ONNX.

1. Capture. The forward runs in eval mode under no_grad inside devtensor.graph.capture (every op of
   the table, with the module path it ran in); layers ONNX has one op for (layers.py) are bracketed
   by forward hooks, so their input, output and node range are known exactly.
2. Dynamic axes. Sizes read with x.size(0) become Python ints inside the captured attributes
   (reshape's shape, expand's shape, a slice bound, a scalar operand). With `dynamic_axes`, the
   forward is captured again with each symbolic dim one and two larger (inputs grown by repeating
   their first rows), and every number that changes is fitted to `a * dim + b` (or `c * d1 * d2`
   for products of several symbols), checked on the third point. Such numbers become `Dim` ints
   that remember their formula; the converters that take sizes as tensors (Reshape, Expand, Slice,
   ConstantOfShape, Range, scalar operands) compute them in the graph from Shape(input) (a
   reshape's only dynamic entry becomes -1). A dynamic number where ONNX wants a static attribute
   (a conv stride, a softmax axis) is an error naming the op. The graph must be the same op
   sequence at every size; if it is not (data-dependent Python control flow), export says so.
3. Layers: a recognised module's nodes are replaced by its ONNX op (BatchNormalization, ...) when
   nothing outside reads their intermediate values.
4. Dead code (range checks that read values on the host, max_pool2d's unused indices) is dropped.
5. Constants: nodes that read only parameters, buffers and constants (creation ops, a transposed
   weight) are evaluated once and become initializers.
6. Each node is converted by its op's converter (ops.py); parameters and buffers become initializers
   named by their path in the model (copied to the host: a model on cuda exports too).

Its size: the six export stages share one set of node/shape helpers and read top to bottom as one
pipeline.
"""
from __future__ import annotations

import difflib
import os
from dataclasses import dataclass

import numpy as np

from ..autograd.grad_mode import no_grad
from ..device import device as _device
from ..dispatch import OPS
from ..graph import Node, Ref, capture
from ..graph import symbolic as _symbolic
from ..graph.ir import node_refs
from ..graph.capture import active as _active
from ..tensor import Tensor, _wrap
from . import layers
from .assemble import build
from .common import (MIN_OPSET, Dim, ExportError, Expr, FDim, UnsupportedOperatorError, any_dim, host_array,  # noqa: F401
                     is_dim, unsupported)
from .ops import CONVERTERS, PUBLIC_NAMES

# ---- the public function ----------------------------------------------------------------------------
def export(model, args, f=None, input_names=None, output_names=None, dynamic_axes=None, opset_version=17, *,
           export_params=True, verbose=False, do_constant_folding=True, check=True):
    """Export `model` (an nn.Module, or any callable of tensors) traced on `args` to ONNX.

    model:          called as model(*args) in eval mode (its modules' training flags are restored after).
    args:           a Tensor or a tuple of the forward's arguments (tensors become graph inputs in order;
                    other values are fixed at their traced value).
    f:              a path or a binary file object to write the model to, or None.
    input_names / output_names: names of the graph's inputs and outputs (default input0.., output0..).
    dynamic_axes:   {name: {axis: "symbol"}} or {name: [axes]}; the axes named become symbolic dims, and
                    sizes the forward reads from them follow at run time (see the module docstring).
    opset_version:  13 up to the newest the installed onnx defines (default 17).
    do_constant_folding: evaluate the nodes that read only constants at export time (default True).
    check:          run onnx.checker.check_model on the result (default True).
    Returns the onnx.ModelProto. Raises UnsupportedOperatorError naming the op, its module path and
    the nearest alternative for an op ONNX cannot express; ExportError for other problems.
    """
    onnx = _import_onnx()
    max_opset = onnx.defs.onnx_opset_version()
    if not isinstance(opset_version, int) or not MIN_OPSET <= opset_version <= max_opset:
        raise ValueError(f"opset_version must be an int in {MIN_OPSET}..{max_opset} (the installed onnx "
                         f"{onnx.__version__} defines up to {max_opset}), got {opset_version!r}")
    if not export_params:
        raise NotImplementedError("export_params=False is not supported: parameters are always initializers")
    args = args if isinstance(args, tuple) else (args,) if isinstance(args, Tensor) else tuple(args)
    tensor_pos = [i for i, a in enumerate(args) if isinstance(a, Tensor)]
    if not tensor_pos:
        raise ExportError("export: args must contain at least one Tensor (the graph's inputs)")
    if len({id(args[i]) for i in tensor_pos}) != len(tensor_pos):
        raise ExportError("export: the same tensor is passed twice in args; pass a copy (x.clone()) as the second")
    names = _names("input", input_names, len(tensor_pos), "input_names")
    from ..nn.modules.module import Module

    root = model if isinstance(model, Module) else None
    modes = [(m, m.training) for m in root.modules()] if root is not None else []
    try:
        if root is not None:
            root.eval()
        base = _trace(model, args, tensor_pos, names, root, opset_version)
        outs = _names("output", output_names, len(base.graph.outputs), "output_names")
        axes = _dynamic_axes(dynamic_axes, names, outs, [args[i] for i in tensor_pos])
        syms = _symbols(axes, names, [args[i] for i in tensor_pos])
        variants = {}
        for s, (size, _) in syms.items():
            runs = []
            for k in (1, 2):
                grown = _grow(args, tensor_pos, names, axes, s, size + k)
                try:
                    runs.append((size + k, _trace(model, grown, tensor_pos, names, root, opset_version)))
                except Exception as e:
                    raise ExportError(f"export: tracing again with dynamic axis {s!r} = {size + k} (to find the sizes "
                                      f"that follow it) failed: {type(e).__name__}: {e}. A dynamic axis must accept other sizes "
                                      "than the traced one, and inputs whose axes must agree need the same symbol "
                                      "name in dynamic_axes") from e
            variants[s] = (size, runs)
    finally:
        for m, t in modes:
            m.__dict__["training"] = t
    graph, dims = _generalise(base, variants)
    for n in outs:
        if n in axes:
            nd = len(graph.values[graph.outputs[outs.index(n)]].shape)
            if any(not -nd <= a < nd for a in axes[n]):
                raise ValueError(f"dynamic_axes: an axis of output {n!r} is out of range for its {nd} dims: {axes[n]}")
            axes[n] = {a % nd: s for a, s in axes[n].items()}
    nodes = _fuse(graph, base.scopes)
    nodes = _dead_code(nodes, graph.outputs)
    folded = {}
    if do_constant_folding:
        nodes, folded = _fold(nodes, graph.values)
    try:
        model_proto = build(onnx, graph, nodes, dims, folded, opset_version, names, outs, axes, syms,
                            doc=f"{type(model).__name__} exported by devtensor")
    except UnsupportedOperatorError as e:
        raise with_alternative(e) from None
    if check:
        onnx.checker.check_model(model_proto)
    if verbose:
        print(onnx.printer.to_text(model_proto.graph))
    if f is not None:
        if isinstance(f, (str, os.PathLike)):
            onnx.save_model(model_proto, os.fspath(f))
        else:
            f.write(model_proto.SerializeToString())
    return model_proto


def _import_onnx():
    try:
        import onnx
    except ImportError:
        raise ImportError("devtensor.onnx.export needs the onnx package: pip install 'devtensor[onnx]' "
                          "(or pip install onnx)") from None
    return onnx


def _names(kind, given, n, arg):
    if given is None:
        return [f"{kind}{i}" for i in range(n)]
    given = list(given)
    if len(given) > n:
        raise ValueError(f"export: {len(given)} {arg} for {n} {kind}s")
    if len(set(given)) != len(given) or not all(isinstance(g, str) and g for g in given):
        raise ValueError(f"export: {arg} must be distinct non-empty strings, got {given}")
    return given + [f"{kind}{i}" for i in range(len(given), n)]


# ---- 1. capture -------------------------------------------------------------------------------------
@dataclass
class _Scope:
    path: str
    module: object
    start: int
    end: int
    inp: object
    out: object
    convert: object  # layers.converter's choice, made while the module was in eval mode


@dataclass
class _Trace:
    graph: object
    scopes: list


def _trace(model, args, tensor_pos, names, root, opset):
    scopes, stack, handles = [], [], []

    def pre(m, a):
        cap = _active()
        x = a[0] if a and isinstance(a[0], Tensor) else None
        stack.append((len(cap.graph.nodes), cap.ref(x).id if x is not None else None))

    def post(path):
        def hook(m, a, out):
            cap = _active()
            start, inp = stack.pop()
            o = cap.ref(out).id if isinstance(out, Tensor) else None
            scopes.append(_Scope(path, m, start, len(cap.graph.nodes), inp, o, layers.converter(m, opset)))

        return hook

    if root is not None:
        for path, m in root.named_modules():
            if layers.may_fuse(m):
                handles.append(m.register_forward_pre_hook(pre))
                handles.append(m.register_forward_hook(post(path)))
    try:
        with no_grad(), capture(root=root) as cap:
            for i, n in zip(tensor_pos, names):
                cap.input(args[i], n)
            out = model(*args)
        flat = _flatten(out)
        cap.graph.outputs = [cap.ref(o).id for o in flat]
        if cap.host_reads:
            what, where = cap.host_reads[0]
            raise ExportError(f"export: the forward reads a tensor's value on the host ({what} at {where}); the "
                              "exported graph would keep the traced value forever. Compute it with tensor ops")
        if cap.view_writes:
            what, where = cap.view_writes[0]
            raise ExportError(f"export: the forward writes in place into a view ({what} at {where}); ONNX graphs "
                              "are functional and would miss the write to the base tensor. Use an out-of-place "
                              "op (e.g. torch.where or torch.cat) instead")
    finally:
        for h in handles:
            h.remove()
    scopes.sort(key=lambda s: (s.start, -s.end))
    return _Trace(cap.graph, scopes)


def _flatten(out):
    if isinstance(out, Tensor):
        return [out]
    if isinstance(out, (tuple, list)):
        return [t for o in out for t in _flatten(o)]
    raise ExportError(f"export: the forward must return a Tensor or a (nested) tuple/list of Tensors, got "
                      f"{type(out).__name__}")


# ---- 2. dynamic axes --------------------------------------------------------------------------------
def _dynamic_axes(dynamic_axes, in_names, out_names, inputs):
    out = {}
    for name, ax in (dynamic_axes or {}).items():
        if name not in in_names and name not in out_names:
            raise ValueError(f"dynamic_axes: {name!r} is neither an input ({in_names}) nor an output ({out_names})")
        if isinstance(ax, dict):
            pairs = [(int(a), str(s)) for a, s in ax.items()]
        elif isinstance(ax, (list, tuple)):
            pairs = [(int(a), f"{name}_dynamic_axes_{k + 1}") for k, a in enumerate(ax)]
        else:
            raise TypeError(f"dynamic_axes[{name!r}] must be a dict {{axis: name}} or a list of axes, got {ax!r}")
        if name in in_names:
            nd = inputs[in_names.index(name)].ndim
            fixed = {}
            for a, s in pairs:
                if not -nd <= a < nd:
                    raise ValueError(f"dynamic_axes: axis {a} of input {name!r} is out of range for its {nd} dims")
                fixed[a % nd] = s
            out[name] = fixed
        else:
            out[name] = {a: s for a, s in pairs}
    return out


def _symbols(axes, in_names, inputs):
    """symbol -> (traced size, [(input index, axis), ...]) for the symbols of the inputs."""
    syms = {}
    for i, name in enumerate(in_names):
        for a, s in axes.get(name, {}).items():
            size = inputs[i].shape[a]
            if s in syms and syms[s][0] != size:
                raise ExportError(f"dynamic_axes: symbol {s!r} names dims of sizes {syms[s][0]} and {size}")
            if size == 0:
                raise ExportError(f"dynamic_axes: axis {a} of input {name!r} has size 0; trace with a non-empty input")
            syms.setdefault(s, (size, []))[1].append((i, a))
    return syms


def _grow(args, tensor_pos, names, axes, sym, size):
    """args with every axis named `sym` grown to `size` by repeating its first entries."""
    from ..ops.creation import tensor

    out = list(args)
    for i, name in zip(tensor_pos, names):
        t = args[i]
        arr = None
        for a, s in axes.get(name, {}).items():
            if s == sym:
                arr = _symbolic.grow(np.asarray(t._host() if arr is None else arr), a, size)
        if arr is not None:
            out[i] = tensor(arr, dtype=t.dtype, device=t.device)
    return tuple(out)


def _generalise(base, variants):
    """The base graph with Dim/FDim where captured numbers follow a dynamic axis; value dims likewise
    (the fit is devtensor.graph.symbolic's, shared with dt.compile(dynamic=True))."""
    g = base.graph
    if not variants:
        return g, {vid: tuple(v.shape) for vid, v in g.values.items()}
    graphs = {s: (size, [(d, t.graph) for d, t in rs]) for s, (size, rs) in variants.items()}
    for s, (_, rs) in graphs.items():
        for d, o in rs:
            _same_structure(g, o, s, d)
    live_nodes = {id(n) for n in _dead_code(g.nodes, g.outputs)}  # a dead node's numbers need no formula
    try:
        g.nodes, dims = _symbolic.generalise(g, graphs, live_nodes)
    except _symbolic.NotAffine as e:
        raise ExportError(f"export: {e.what} depends on the dynamic axes in a way export cannot express in the graph "
                          f"({e.desc}); export handles a*dim + c and c*dim1*dim2. Compute it from tensors instead, or "
                          "export without that dynamic axis") from None
    return g, dims


def _same_structure(g, o, sym, size):
    hint = " (tracing with a size of 1 often takes other paths: trace with a larger size)" if size <= 3 else ""
    msg = _symbolic.structure_difference(g, o)
    if msg is not None:
        raise ExportError(f"export: the captured graph changes when dynamic axis {sym!r} is {size}: {msg}. Export "
                          f"needs the same ops at every size (no Python control flow on sizes or values){hint}")


# ---- 3. whole layers --------------------------------------------------------------------------------
def _fuse(graph, scopes):
    nodes = list(graph.nodes)
    consumers = {}
    for i, n in enumerate(nodes):
        for r in _refs(n):
            consumers.setdefault(r, []).append(i)
    outputs = set(graph.outputs)
    picked, last_end = [], -1
    for sc in scopes:
        if sc.start < last_end or sc.inp is None or sc.out is None or sc.start >= sc.end:
            continue
        conv = sc.convert
        if conv is None:
            continue
        inside = range(sc.start, sc.end)
        made = {o for i in inside for o in nodes[i].outputs}
        ok = sc.out in made and all(nodes[i].module == sc.path or nodes[i].module.startswith(sc.path + ".")
                                    for i in inside)
        for vid in made - {sc.out}:
            ok = ok and vid not in outputs and all(c in inside for c in consumers.get(vid, ()))
        for i in inside:
            for r in _refs(nodes[i]):
                ok = ok and (r in made or r == sc.inp or graph.values[r].kind == "external")
            ok = ok and not _has_dims(nodes[i])
        if ok:
            picked.append((sc, conv))
            last_end = sc.end
    for sc, conv in reversed(picked):
        fused = Node("@layer", (Ref(sc.inp),), {"module": sc.module, "convert": conv}, (sc.out,), sc.path,
                     type(sc.module).__name__)
        nodes[sc.start:sc.end] = [fused]
    return nodes


# ---- 4. dead code -----------------------------------------------------------------------------------
def _refs(n):
    return [r.id for r in node_refs(n)]


def _has_dims(n):
    return any_dim((n.args, n.attrs))



def _dead_code(nodes, outputs):
    live = set(outputs)
    keep = []
    for n in reversed(nodes):
        if any(o in live for o in n.outputs):
            keep.append(n)
            live.update(_refs(n))
    return keep[::-1]


# ---- 5. constants -----------------------------------------------------------------------------------
# a fresh draw on every run, as in eager
_NO_FOLD = {"rand", "randn", "randint", "randperm", "multinomial", "bernoulli", "normal", "poisson"}
_CREATION = {"full", "empty", "arange", "linspace", "eye"}


def _fold(nodes, values):
    folded, keep = {}, []
    for n in nodes:
        refs = _refs(n)
        const = all(r in folded or values[r].kind == "external" for r in refs)
        if (n.op in _NO_FOLD or n.op.startswith("@") or not const or any_dim((n.args, n.attrs))
                or (not refs and n.op not in _CREATION)):
            keep.append(n)
            continue
        try:
            res = _evaluate(n, values, folded)
        except Exception:  # noqa: BLE001 - not foldable here: the converter handles it
            keep.append(n)
            continue
        for vid, arr in zip(n.outputs, res):
            folded[vid] = arr
    return keep, folded


def _evaluate(n, values, folded):
    cpu = _device("cpu")

    def data(vid):
        return folded[vid] if vid in folded else host_array(values[vid])

    def arg(a, raw=False):
        if isinstance(a, Ref):
            d = np.array(data(a.id), order="C")
            return d if raw else _wrap(d, cpu)
        if isinstance(a, tuple):
            return tuple(arg(x, raw) for x in a)
        return a

    if n.op in _CREATION:
        vals = [v for k, v in n.attrs.items() if k != "device"]
        return [np.asarray(OPS[n.op].kernels["cpu"](*vals, cpu))]
    if n.op == "copy_to":
        return [data(n.args[0].id)]
    attrs = {k: arg(v, raw=(k == "key")) for k, v in n.attrs.items()}
    with no_grad():
        out = OPS[n.op](*[arg(a) for a in n.args], **attrs)
    outs = out if isinstance(out, tuple) else (out,)
    return [np.asarray(o._host()) for o in outs]


def with_alternative(e):
    """e, or the same error naming the closest op that does export when it named none."""
    if getattr(e, "alternative", True) is not None:
        return e
    close = difflib.get_close_matches(e.node.shown_as, PUBLIC_NAMES + sorted(CONVERTERS), n=1, cutoff=0.5)
    return unsupported(e.node, e.reason, f"{close[0]} (exports)" if close else None, e.opset) if close else e
