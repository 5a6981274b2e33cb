"""The last stage of export: the captured nodes converted one by one (ops.py) into an ONNX ModelProto."""
from __future__ import annotations

from .._version import __version__
from .build import Ctx, _refs_of
from .common import Dim, ExportError
from .ops import convert


def build(onnx, graph, nodes, dims, folded, opset, in_names, out_names, axes, syms, doc=""):
    h = onnx.helper
    live = set(graph.outputs)
    for n in nodes:
        for r in _refs_of(n):
            live.add(r)
    sym_src = {s: (in_names[pairs[0][0]], pairs[0][1]) for s, (_, pairs) in syms.items()}
    ctx = Ctx(onnx, graph, dims, folded, opset, live, sym_src)
    inputs = []
    for vid, name in zip(graph.inputs, in_names):
        ctx.used.add(name)
        ctx.names[vid] = name
        v = graph.values[vid]
        shape = [axes.get(name, {}).get(a, d) for a, d in enumerate(v.shape)]
        inputs.append(h.make_tensor_value_info(name, ctx.onnx_type(v.dtype), shape))
    for n in out_names:
        if n in ctx.used:
            raise ExportError(f"export: output name {n!r} is also an input name")
        ctx.used.add(n)
    producers = {o for n in nodes for o in n.outputs}
    renamed = set()
    for vid, name in zip(graph.outputs, out_names):
        if vid in producers and vid not in renamed and vid not in folded:
            ctx.names[vid] = name
            renamed.add(vid)
    for n in nodes:
        ctx.node = n
        convert(ctx, n)
    ctx.node = None
    outputs = []
    for vid, name in zip(graph.outputs, out_names):
        if ctx.name(vid) != name:
            ctx.emit("Identity", [ctx.name(vid)], out=name)
        v = graph.values[vid]
        named = axes.get(name, {})
        shape = []
        for a, d in enumerate(dims[vid]):
            if a in named:
                shape.append(named[a])
            elif isinstance(d, Dim):
                shape.append(d.expr.syms[0] if d.expr.plain else f"{name}_dim{a}")
            else:
                shape.append(int(d))
        outputs.append(h.make_tensor_value_info(name, ctx.onnx_type(v.dtype), shape))
    g = h.make_graph(ctx.nodes, "devtensor", inputs, outputs, initializer=ctx.inits, doc_string=doc)
    opsets = [h.make_opsetid("", opset)]
    model = h.make_model(g, opset_imports=opsets, producer_name="devtensor", producer_version=__version__)
    model.ir_version = h.find_min_ir_version_for(opsets)
    return model
