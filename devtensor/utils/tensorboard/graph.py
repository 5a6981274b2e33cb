"""SummaryWriter.add_graph: the model's forward, captured at the op table (devtensor.graph, the tracer
dt.compile replays), drawn as the GraphDef TensorBoard's Graphs tab reads.

The forward runs once in eval mode under no_grad (as torch.utils.tensorboard traces it: no dropout
draws, no batch-norm statistics updated), then each module's training flag is restored. Node names
follow PyTorch's scopes, so TensorBoard groups the ops into boxes by module:

    Net/Conv2d[conv1]/conv2d_0        an op, in the module it ran in (op name and its index)
    Net/Conv2d[conv1]/weight          a parameter or buffer, in its module
    input/x, output/output.0          the inputs and outputs ("IO Node")

Each node carries its outputs' shapes (`_output_shapes`, shown on the edges), the device, and its
scalar arguments as text (`attr`).
"""
from __future__ import annotations

from ...autograd import no_grad
from ...graph import Ref, capture
from ...graph.ir import node_refs
from ...tensor import Tensor

_SKIPPED = ("@host", "@accumulate_grad")  # host calls and gradient delivery: not part of a forward


def trace(model, input_to_model):
    """The captured graph of model(*inputs) and the module path -> class name map."""
    if input_to_model is None:
        raise TypeError("add_graph: pass an example input (a Tensor, or a tuple of Tensors) as input_to_model; "
                        "the graph is captured by running the model on it")
    inputs = tuple(input_to_model) if isinstance(input_to_model, (tuple, list)) else (input_to_model,)
    modules = dict(model.named_modules()) if hasattr(model, "named_modules") else {}
    training = {m: m.training for m in modules.values()}
    if hasattr(model, "eval"):
        model.eval()
    try:
        with no_grad(), capture(root=model if modules else None) as cap:
            for i, x in enumerate(inputs):
                if isinstance(x, Tensor):
                    cap.input(x, f"input.{i}" if len(inputs) > 1 else "input")
            out = model(*inputs)
        cap.graph.outputs = [cap.ref(o).id for o in _flatten(out)]
    finally:
        for m, flag in training.items():
            m.training = flag
    return cap.graph, {path: type(m).__name__ for path, m in modules.items()}


def graph_def(graph, types):
    """The GraphDef proto (tensorboardX's copy of TensorFlow's) for a captured graph."""
    from tensorboardX.proto.attr_value_pb2 import AttrValue
    from tensorboardX.proto.graph_pb2 import GraphDef
    from tensorboardX.proto.node_def_pb2 import NodeDef
    from tensorboardX.proto.tensor_shape_pb2 import TensorShapeProto
    from tensorboardX.proto.versions_pb2 import VersionDef

    root = types.get("", "model")

    def scope(path):
        parts, out = path.split(".") if path else [], [root]
        for k in range(len(parts)):
            sub = ".".join(parts[:k + 1])
            out.append(f"{types.get(sub, 'Module')}[{parts[k]}]")
        return "/".join(out)

    def shapes(ids):
        return AttrValue(list=AttrValue.ListValue(shape=[
            TensorShapeProto(dim=[TensorShapeProto.Dim(size=int(s)) for s in graph.values[i].shape]) for i in ids]))

    def describe(v):
        return f"{v.dtype}{list(v.shape)} on {v.device}"

    nodes, name_of = [], {}
    for i in graph.inputs:
        v = graph.values[i]
        name_of[i] = f"input/{v.name}"
        nodes.append(NodeDef(name=name_of[i], op="IO Node", device=v.device,
                             attr={"_output_shapes": shapes([i]), "attr": AttrValue(s=describe(v).encode())}))
    for v in graph.externals():
        if v.name:
            module, _, leaf = v.name.rpartition(".")
            name_of[v.id] = f"{scope(module)}/{leaf}"
            op = "Parameter" if v.requires_grad else "Buffer"
        else:
            name_of[v.id] = f"{root}/constant_{v.id}"
            op = "Constant"
        nodes.append(NodeDef(name=name_of[v.id], op=op, device=v.device,
                             attr={"_output_shapes": shapes([v.id]), "attr": AttrValue(s=describe(v).encode())}))
    for k, n in enumerate(graph.nodes):
        if n.op in _SKIPPED:
            continue
        name = f"{scope(n.module)}/{n.op}_{k}"
        for j, o in enumerate(n.outputs):
            name_of[o] = name if j == 0 else f"{name}:{j}"
        refs = [r.id for r in node_refs(n)]
        text = ", ".join([_text(a) for a in n.args if not isinstance(a, Ref)]
                         + [f"{key}={_text(val)}" for key, val in n.attrs.items() if not isinstance(val, Ref)])
        device = graph.values[n.outputs[0]].device if n.outputs else ""
        nodes.append(NodeDef(name=name, op=n.op, device=device,
                             input=[name_of[r] for r in refs if r in name_of],
                             attr={"_output_shapes": shapes(n.outputs), "attr": AttrValue(s=text.encode())}))
    for k, o in enumerate(graph.outputs):
        nodes.append(NodeDef(name=f"output/output.{k}", op="IO Node", input=[name_of[o]],
                             device=graph.values[o].device, attr={"_output_shapes": shapes([o])}))
    return GraphDef(node=nodes, versions=VersionDef(producer=22))


def _flatten(out):
    if isinstance(out, Tensor):
        return [out]
    if isinstance(out, (tuple, list)):
        return [t for o in out for t in _flatten(o)]
    if isinstance(out, dict):
        return [t for o in out.values() for t in _flatten(o)]
    raise TypeError(f"add_graph: the model must return Tensors (or tuples, lists, dicts of them), got "
                    f"{type(out).__name__}")


def _text(a):
    if isinstance(a, (tuple, list)):
        return "(" + ", ".join(_text(x) for x in a) + ")"
    return "%" + str(a.id) if isinstance(a, Ref) else repr(a)
