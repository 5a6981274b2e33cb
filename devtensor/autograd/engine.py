"""The backward engine: one walk of the graph in reverse topological order.

It undoes broadcasting (sum to the input's shape) and promotion (cast to the input's dtype)
for every rule in ONE place, accumulates into leaf .grad, runs hooks, checks saved tensors'
versions (in Node.unpack) and frees saved values unless retain_graph.
"""
from __future__ import annotations

import sys
import weakref
from collections import deque

from ..graph.capture import RUNNING as _CAPTURING
from ..graph.capture import active as _graph_capture
from ..ops.creation import ones_like
from ..tensor import Tensor
from .grad_mode import _grad_state, set_mode
from .node import _unpack_attached


def _roots_and_grads(tensors, grad_tensors, api):
    for g in grad_tensors or ():
        if g is not None and not isinstance(g, Tensor):
            raise TypeError(f"{api}: gradients can be either Tensors or None, but got {type(g).__name__} "
                            "(pass a tensor of the output's shape, e.g. devtensor.ones_like(output))")
    if grad_tensors is not None and len(grad_tensors) != len(tensors):
        raise RuntimeError(f"{api}: got {len(grad_tensors)} gradients for {len(tensors)} outputs (pass one per "
                           "output, None for a scalar output)")
    roots = []
    for i, t in enumerate(tensors):
        if not isinstance(t, Tensor):
            raise TypeError(f"{api}: expected Tensors, got {type(t).__name__}")
        if not t._rg:
            raise RuntimeError(f"{api}: element {i} of tensors does not require grad and does not have "
                               "a grad_fn (was it computed under no_grad, or from tensors without "
                               "requires_grad=True?)")
        g = grad_tensors[i] if grad_tensors is not None else None
        if g is None:
            if t._data.dtype.kind == "c":
                raise RuntimeError(f"{api}: grad can be implicitly created only for real scalar outputs, got "
                                   f"{t.dtype.name} (backward from a real loss, e.g. z.abs().sum(), or pass gradient=)")
            if t._data.size != 1:
                raise RuntimeError(f"{api}: grad can be implicitly created only for scalar outputs; "
                                   f"got an output of shape {tuple(t._data.shape)}: pass gradient= "
                                   "(a tensor of that shape)")
            g = ones_like(t)
        else:
            if tuple(g._data.shape) != tuple(t._data.shape):
                raise RuntimeError(f"{api}: gradient has shape {tuple(g._data.shape)} but the output has "
                                   f"shape {tuple(t._data.shape)}")
        roots.append((t, g))
    return roots


def run_backward(tensors, grad_tensors=None, retain_graph=None, create_graph=False, inputs=None,
                 allow_unused=True, api="backward"):
    """Backpropagate from `tensors`. With `inputs`, return their grads instead of accumulating."""
    if retain_graph is None:
        retain_graph = create_graph
    roots = _roots_and_grads(tensors, grad_tensors, api)

    capture = None
    if inputs is not None:
        capture = set()
        for x in inputs:
            if not isinstance(x, Tensor) or not x._rg:
                raise RuntimeError(f"{api}: every input must be a tensor that requires grad")
            capture.add(id(x._edge[0]) if x._edge is not None else id(x))

    # leaves with post-accumulate hooks: id -> [edges still to come, got a gradient]
    post = {} if _post_hooks and capture is None else None

    # buffers: per (node) a list of grads per output; leaves: accumulate directly
    buffers: dict = {}
    deps: dict = {}
    start_nodes = []
    leaf_results: dict = {}
    nonleaf_results: dict = {}

    for t, g in roots:
        e = t._edge
        if e is None:
            if _CAPTURING[0]:
                _deliver_leaf(t, g, capture, leaf_results, create_graph)
            else:
                _deliver(t, g, capture, leaf_results, create_graph)
            if post is not None and id(t) in _post_hooks:
                post[id(t)] = [1, True]
                _count_down(t, post)
            continue
        node, nr = e
        buf = buffers.get(node)
        if buf is None:
            buf = buffers[node] = [None] * node.nout
            start_nodes.append(node)
        buf[nr] = g if buf[nr] is None else buf[nr] + g

    _count_deps(start_nodes, deps, post)
    ready = deque(n for n in start_nodes if deps.get(n, 0) == 0)
    prev_mode = _grad_state.enabled
    prev_attach = _unpack_attached[0]
    set_mode(create_graph)
    _unpack_attached[0] = bool(create_graph)
    try:
        while ready:
            node = ready.popleft()
            grads = buffers.pop(node)
            if node.pre_hooks:
                grads = _run_prehooks(node, grads)
            if capture is not None and id(node) in capture:
                nonleaf_results.setdefault(id(node), grads)
            in_grads = _apply_rule(node, grads)
            if not retain_graph:
                node.free()
            for i, e in enumerate(node.next):
                if e is None:
                    continue
                g = in_grads[i] if i < len(in_grads) else None
                if g is not None:
                    g = _fit(g, node.in_meta[i], node)
                if isinstance(e, tuple):
                    nxt, nr = e
                    buf = buffers.get(nxt)
                    if buf is None:
                        buf = buffers[nxt] = [None] * nxt.nout
                    if g is not None:
                        buf[nr] = g if buf[nr] is None else buf[nr] + g
                    deps[nxt] -= 1
                    if deps[nxt] == 0:
                        ready.append(nxt)
                else:
                    if g is None:
                        pass
                    elif _CAPTURING[0]:  # graph capture records the delivery (one more frame: see _unshared)
                        _deliver_leaf(e, g, capture, leaf_results, create_graph)
                    else:
                        _deliver(e, g, capture, leaf_results, create_graph)
                    if post is not None and id(e) in post:
                        if g is not None:
                            post[id(e)][1] = True
                        _count_down(e, post)
    finally:
        set_mode(prev_mode)
        _unpack_attached[0] = prev_attach

    if inputs is None:
        return None
    out = []
    for x in inputs:
        if x._edge is None:
            g = leaf_results.get(id(x))
        else:
            node, nr = x._edge
            gs = nonleaf_results.get(id(node))
            g = gs[nr] if gs is not None else None
        if g is None and not allow_unused:
            raise RuntimeError(f"{api}: one of the differentiated tensors (shape {tuple(x.shape)}) "
                               "appears to not have been used in the graph; pass allow_unused=True "
                               "if this is intended")
        out.append(g)
    return tuple(out)


def _count_deps(start_nodes, deps, post=None):
    seen = set()
    stack = list(start_nodes)
    for n in start_nodes:
        seen.add(n)
    while stack:
        n = stack.pop()
        for e in n.next:
            if isinstance(e, tuple):
                m = e[0]
                deps[m] = deps.get(m, 0) + 1
                if m not in seen:
                    seen.add(m)
                    stack.append(m)
            elif post is not None and e is not None and id(e) in _post_hooks:
                c = post.get(id(e))
                if c is None:
                    post[id(e)] = [1, False]
                else:
                    c[0] += 1


def _run_prehooks(node, grads):
    grads = list(grads)
    for nr, hooks in node.pre_hooks.items():
        for h in hooks:
            if grads[nr] is None:
                continue
            r = h(grads[nr])
            if r is not None:
                grads[nr] = r
    return grads


def _apply_rule(node, grads):
    op = node.op
    if all(g is None for g in grads):
        return (None,) * len(node.next)
    if node.saved is None and op.save:
        node.unpack(0)  # raises the "backward through the graph a second time" error
    if op.nout == 1:
        res = op.backward(node, grads[0])
    else:
        res = op.backward(node, *grads)
    if not isinstance(res, tuple):
        res = (res,)
    return res


def _fit(g, meta, node):
    """Undo broadcasting and dtype promotion: the grad takes the input's shape and dtype."""
    shape, np_dtype = meta
    gd = g._data
    if gd.shape != shape:
        g = g.sum_to_size(shape) if _expandable(shape, gd.shape) else _bad_grad_shape(node, g, shape)
    if g._data.dtype != np_dtype:
        g = g._cast_np(np_dtype)
    return g


def _expandable(shape, target):
    if len(shape) > len(target):
        return False
    for s, t in zip(reversed(shape), reversed(target)):
        if s != 1 and s != t:
            return False
    return True


def _bad_grad_shape(node, g, shape):
    raise RuntimeError(f"{node.name()} returned a gradient of shape {tuple(g._data.shape)} for an input "
                       f"of shape {tuple(shape)}, which is not broadcastable to it (a bug in that "
                       "op's backward rule)")


def _unshared(g):
    """True when g's array is referenced by g alone and g only by the engine's locals (the
    in_grads tuple, the loop variable, the argument). CPython refcounts make this exact; a view
    (base set) or a tensor that appears twice (add's (g, g)) counts as shared."""
    d = g._data
    # d's references: g's slot, the local `d`, getrefcount's argument. g's: in_grads, the loop's
    # `g`, the parameters of _deliver and this function, getrefcount's argument (under graph
    # capture _deliver_leaf's parameter adds one: the gradient is copied, never wrongly taken).
    # (tests/test_autograd.py checks both ways: a shared gradient is copied, a private one taken.)
    return getattr(d, "base", 0) is None and sys.getrefcount(d) <= 3 and sys.getrefcount(g) <= 5


def _deliver_leaf(t, g, capture, results, create_graph):
    cap = _graph_capture()
    if cap is None or capture is not None:
        return _deliver(t, g, capture, results, create_graph)
    # under graph capture the delivery is one node ("if .grad is None: set, else +=") that a replay
    # performs again, whatever .grad holds then; the ops it runs now are not recorded
    if create_graph or t._hooks_or_none() or id(t) in _post_hooks:
        cap.unsupported.append("backward with create_graph=True or with hooks on a leaf")
    cap.record_grad(t, g)
    cap._suspended += 1
    try:
        return _deliver(t, g, capture, results, create_graph)
    finally:
        cap._suspended -= 1


def _deliver(t, g, capture, results, create_graph):
    hooks = t._hooks_or_none()
    if hooks:
        for h in hooks:
            r = h(g)
            if r is not None:
                g = r
    if capture is not None:
        if id(t) in capture:
            prev = results.get(id(t))
            results[id(t)] = g if prev is None else prev + g
        return
    prev = t._grad_or_none()
    if prev is None:
        if create_graph:
            t._set_grad(g)
        elif _unshared(g):
            t._set_grad(g.detach())  # nobody else holds this array: take it, as PyTorch does
        else:
            # a rule may pass one gradient to several inputs (add) or pass the upstream gradient
            # through: own a copy before anyone (the optimizer, a later accumulation) mutates it
            t._set_grad(g.detach().clone())
    elif create_graph:
        t._set_grad(prev + g)
    else:
        prev.add_(g.detach())


# ---- post-accumulate-grad hooks ------------------------------------------------------------------
# Tensor.register_post_accumulate_grad_hook(hook): hook(leaf) runs once per backward, after the last
# gradient that backward sends the leaf has been accumulated into leaf.grad (PyTorch's semantics;
# DistributedDataParallel starts a bucket's all-reduce from them). A leaf can receive several
# gradients in one backward (a parameter used twice), so run_backward counts the graph's edges into
# each hooked leaf and fires when the last one has been walked. Kept in this table rather than in a
# Tensor slot: id(leaf) -> (weakref to the leaf, [hooks]); empty, it costs the walk one dict check.
_post_hooks: dict = {}


def _count_down(t, post):
    c = post[id(t)]
    c[0] -= 1
    if c[0]:
        return
    del post[id(t)]
    entry = _post_hooks.get(id(t))
    if c[1] and entry is not None:
        for h in list(entry[1]):
            h(t)


class _PostHookHandle:
    __slots__ = ("_key", "_hook")

    def __init__(self, key, hook):
        self._key, self._hook = key, hook

    def remove(self):
        entry = _post_hooks.get(self._key)
        if entry is not None and self._hook in entry[1]:
            entry[1].remove(self._hook)
            if not entry[1]:
                del _post_hooks[self._key]


def _register_post_accumulate_grad_hook(self, hook):
    """hook(tensor) -> None, run after this leaf's gradient of a backward pass has been accumulated
    into .grad (once per backward, however many times the leaf was used)."""
    if self._edge is not None:
        raise RuntimeError("register_post_accumulate_grad_hook: post accumulate grad hooks cannot be registered "
                           "on non-leaf tensors")
    if not self._rg:
        raise RuntimeError("register_post_accumulate_grad_hook: cannot register a hook on a tensor that doesn't "
                           "require gradient")
    key = id(self)
    entry = _post_hooks.get(key)
    if entry is None:
        def forget(ref, key=key):
            if _post_hooks.get(key, (None,))[0] is ref:
                del _post_hooks[key]

        entry = _post_hooks[key] = (weakref.ref(self, forget), [])
    entry[1].append(hook)
    return _PostHookHandle(key, hook)


Tensor.register_post_accumulate_grad_hook = _register_post_accumulate_grad_hook


def _tensor_backward(self, gradient=None, retain_graph=None, create_graph=False, inputs=None):
    """Tensor.backward: accumulate d(self)/d(leaf) into every leaf's .grad (or only `inputs`')."""
    if inputs is not None:
        inputs = [inputs] if isinstance(inputs, Tensor) else list(inputs)
        grads = run_backward([self], [gradient], retain_graph, create_graph, inputs=inputs)
        for x, g in zip(inputs, grads):
            if g is not None:
                prev = x._grad_or_none()
                x._grad = g.detach() if prev is None else prev + g.detach()
        return None
    run_backward([self], [gradient], retain_graph, create_graph)


Tensor.backward = _tensor_backward
