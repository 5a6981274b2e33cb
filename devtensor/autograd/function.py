"""Custom differentiable ops: subclass Function with static forward(ctx, ...) and backward(ctx, ...)."""
from __future__ import annotations

from .grad_mode import _grad_state, no_grad
from .node import Node


class FunctionCtx:
    def __init__(self):
        self.saved = ()
        self.needs_input_grad = ()
        self.non_differentiable = set()
        self.materialize_grads = True

    def save_for_backward(self, *tensors):
        self.saved = tensors

    @property
    def saved_tensors(self):
        if self.saved is None:
            raise RuntimeError("Trying to backward through the graph a second time (the saved tensors of this "
                               "Function were freed); pass retain_graph=True to the first backward")
        return self.saved

    def mark_non_differentiable(self, *tensors):
        self.non_differentiable.update(id(t) for t in tensors)

    def mark_dirty(self, *tensors):
        pass

    def set_materialize_grads(self, value):
        self.materialize_grads = bool(value)


class _FunctionOp:
    """Looks like an OpDef to the engine: its backward calls the user's backward."""

    __slots__ = ("fn", "name", "nout", "diff_outputs", "save", "save_idx", "grad_inputs")

    def __init__(self, fn, nout):
        self.fn = fn
        self.name = fn.__name__
        self.nout = nout
        self.diff_outputs = tuple(range(nout))
        self.save = ()
        self.save_idx = ()
        self.grad_inputs = None

    def backward(self, node, *grads):
        ctx = node.attrs["ctx"]
        if ctx.materialize_grads:
            outs = node.attrs["out_meta"]
            grads = tuple(g if g is not None else _zeros(m) for g, m in zip(grads, outs))
        res = self.fn.backward(ctx, *grads)
        if not isinstance(res, tuple):
            res = (res,)
        n_in = len(node.next)
        if len(res) < n_in:
            res = res + (None,) * (n_in - len(res))
        return tuple(res[:n_in])


def _zeros(meta):
    shape, dtype, dev = meta
    from ..ops.creation import zeros

    return zeros(shape, dtype=dtype, device=dev)


class Function:
    @staticmethod
    def forward(ctx, *args, **kwargs):
        raise NotImplementedError("Function subclasses must implement forward(ctx, ...)")

    @staticmethod
    def backward(ctx, *grad_outputs):
        raise NotImplementedError("Function subclasses must implement backward(ctx, ...)")

    @classmethod
    def apply(cls, *args):
        from ..tensor import Tensor

        ctx = FunctionCtx()
        ctx.needs_input_grad = tuple(isinstance(a, Tensor) and a._rg for a in args)
        with no_grad():
            out = cls.forward(ctx, *args)
        single = not isinstance(out, tuple)
        outs = (out,) if single else out
        if _grad_state.enabled and any(ctx.needs_input_grad):
            op = _FunctionOp(cls, len(outs))
            op.name = cls.__name__
            op.diff_outputs = tuple(i for i, o in enumerate(outs) if id(o) not in ctx.non_differentiable)
            fresh = []
            for o in outs:  # outputs that alias inputs get their own handle, so the inputs keep their history
                if isinstance(o, Tensor) and any(o is a for a in args):
                    o = o.detach()
                fresh.append(o)
            outs = tuple(fresh)
            attrs = {"ctx": ctx, "out_meta": tuple((tuple(o.shape), o.dtype, o.device) for o in outs)}
            Node.record(op, args, attrs, outs)
        return outs[0] if single else outs
