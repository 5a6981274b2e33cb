"""Autograd: the graph (node.py), the engine (engine.py), grad modes, custom Functions and
gradcheck. It never imports a backend: backward rules are Tensor ops."""
from __future__ import annotations

from .function import Function, FunctionCtx
from .grad_mode import enable_grad, inference_mode, is_grad_enabled, no_grad, set_grad_enabled
from .gradcheck import GradcheckError, gradcheck, gradgradcheck


def backward(tensors, grad_tensors=None, retain_graph=None, create_graph=False, inputs=None):
    from ..tensor import Tensor
    from .engine import run_backward

    tensors = [tensors] if isinstance(tensors, Tensor) else list(tensors)
    if grad_tensors is not None:
        grad_tensors = [grad_tensors] if isinstance(grad_tensors, Tensor) else list(grad_tensors)
    if inputs is not None:
        for t, g in zip(tensors, grad_tensors or [None] * len(tensors)):
            t.backward(g, retain_graph=True if retain_graph is None else retain_graph, create_graph=create_graph,
                       inputs=inputs)
        return
    run_backward(tensors, grad_tensors, retain_graph, create_graph)


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False, allow_unused=None,
         materialize_grads=False):
    from ..tensor import Tensor
    from .engine import run_backward

    outputs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    single = isinstance(inputs, Tensor)
    inputs = [inputs] if single else list(inputs)
    if grad_outputs is not None:
        grad_outputs = [grad_outputs] if isinstance(grad_outputs, Tensor) else list(grad_outputs)
    res = run_backward(outputs, grad_outputs, retain_graph, create_graph, inputs=inputs,
                       allow_unused=bool(allow_unused) or materialize_grads, api="grad")
    if materialize_grads:
        res = tuple(g if g is not None else x.detach() * 0 for g, x in zip(res, inputs))
    return res


__all__ = ["Function", "FunctionCtx", "backward", "grad", "gradcheck", "gradgradcheck", "GradcheckError",
           "no_grad", "enable_grad", "set_grad_enabled", "inference_mode", "is_grad_enabled"]
