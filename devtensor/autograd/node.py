"""Graph nodes. A Node is an op application: its edges to the inputs' producers, the values its
backward rule needs, and the inputs' metadata (shape, dtype) so the engine can undo
broadcasting and promotion centrally.

Edges: None (input needs no grad), a leaf Tensor (gradient accumulates into .grad), or a
(Node, output_nr) pair. The graph never points from a Node to its own outputs (saved outputs are
stored as detached aliases), so graphs hold no reference cycles and die with their last tensor.
"""
from __future__ import annotations

import numpy as np

from ..tensor import Tensor


_new = object.__new__
_BF16 = None  # ml_dtypes' bfloat16 numpy dtype (kind 'V'), set below
# outputs of these numpy dtypes carry gradients (floating and complex; bfloat16 added below)
_DIFF_DTYPES = {np.dtype(c) for c in "efdgFDG"}


class Node:
    # saved is None once freed (after a backward without retain_graph)
    __slots__ = ("op", "attrs", "next", "saved", "versions", "in_meta", "nout", "pre_hooks", "__weakref__")

    def __init__(self, op, attrs, nxt, saved, versions, in_meta, nout):
        self.op = op
        self.attrs = attrs
        self.next = nxt
        self.saved = saved
        self.versions = versions
        self.in_meta = in_meta
        self.nout = nout
        self.pre_hooks = None

    # -- construction (called by dispatch.call when grad mode is on and an input needs grad) ---
    @staticmethod
    def record(op, args, attrs, outs):
        # This runs for every op under autograd, so the one- and two-tensor cases (most calls) are
        # unrolled: no list growth, no loop.
        T = Tensor
        n = len(args)
        x = args[0]
        if n <= 2 and (x.__class__ is T or isinstance(x, T)):
            d = x._data
            m0 = (d.shape, d.dtype)
            e0 = (x._edge or x) if x._rg else None
            if n == 1:
                nxt = (e0,)
                in_meta = (m0,)
            else:
                y = args[1]
                if y.__class__ is T or isinstance(y, T):
                    d = y._data
                    in_meta = (m0, (d.shape, d.dtype))
                    nxt = (e0, (y._edge or y) if y._rg else None)
                else:
                    in_meta = (m0, None)
                    nxt = (e0, None)
        else:
            nxt, in_meta = _edges_and_meta(args)
        if op.grad_inputs is not None:
            nxt = tuple([e if i in op.grad_inputs else None for i, e in enumerate(nxt)])
        node = _new(Node)
        node.op = op
        node.attrs = attrs
        node.next = nxt
        node.in_meta = in_meta
        if op.save:
            node.saved, node.versions = _save(op, args, outs)
        else:
            node.saved = node.versions = ()
        node.nout = nout = len(outs)
        node.pre_hooks = None
        if nout == 1:
            o = outs[0]
            if o._data.dtype in _DIFF_DTYPES:
                o._rg = True
                o._edge = (node, 0)
            return node
        for nr in op.diff_outputs:
            o = outs[nr]
            if o._data.dtype in _DIFF_DTYPES:
                o._rg = True
                o._edge = (node, nr)
        return node

    # -- the ctx a backward rule sees: ctx.<input name>, ctx.out, ctx.<attr> ----------------------
    def __getattr__(self, name):
        op = object.__getattribute__(self, "op")
        try:
            i = op.save.index(name)
        except ValueError:
            attrs = object.__getattribute__(self, "attrs")
            if name in attrs:
                return attrs[name]
            raise AttributeError(f"{op.name} backward: '{name}' is neither saved (save={op.save}) "
                                 f"nor an attribute ({sorted(attrs)})") from None
        return self.unpack(i)

    def unpack(self, i):
        if self.saved is None:
            raise RuntimeError(
                f"Trying to backward through the graph a second time (or to access the saved values of "
                f"{self.op.name} after they were freed). Saved values are freed after the first "
                "backward to save memory. Either recompute the forward pass before the second "
                "backward, or call the first backward (or autograd.grad) with retain_graph=True.")
        v = self.saved[i]
        ver = self.versions[i]
        if ver is not None and v._vc[0] != ver:
            raise RuntimeError(
                f"one of the variables needed for gradient computation has been modified by an "
                f"inplace operation: the tensor of shape {tuple(v._data.shape)} saved by "
                f"{self.op.name} (as '{self.op.save[i]}') is at version {v._vc[0]}, expected version "
                f"{ver}; the in-place op that changed it last was {v._vc[1]}. Use an out-of-place "
                f"op (e.g. x = x + y instead of x += y) or .clone() the tensor before changing it.")
        k = self.op.save_idx[i]
        if k < 0 and _unpack_attached[0] and (-1 - k) in self.op.diff_outputs:
            return v._attached(self, -1 - k)
        return v

    def needs_input_grad(self, i):
        """Whether input i gets a gradient at all (rules skip work for the others)."""
        return self.next[i] is not None

    def name(self):
        return f"{_camel(self.op.name)}Backward"

    def __repr__(self):
        return f"<{self.name()}>"

    @property
    def next_functions(self):
        out = []
        for e in self.next:
            if e is None:
                out.append((None, 0))
            elif isinstance(e, tuple):
                out.append(e)
            else:
                out.append((_AccumulateGrad(e), 0))
        return tuple(out)

    def register_prehook(self, nr, fn):
        if self.pre_hooks is None:
            self.pre_hooks = {}
        self.pre_hooks.setdefault(nr, []).append(fn)

    def free(self):
        self.saved = None
        ctx = self.attrs.get("ctx") if self.attrs.__class__ is dict else None
        if ctx is not None and hasattr(ctx, "saved"):  # a custom Function's saved tensors
            ctx.saved = None


# create_graph: saved outputs are re-attached to their node while differentiating
_unpack_attached = [False]


class _AccumulateGrad:
    __slots__ = ("variable",)

    def __init__(self, v):
        self.variable = v

    def name(self):
        return "AccumulateGrad"

    def __repr__(self):
        return "<AccumulateGrad>"


def _camel(name):
    return "".join(p[:1].upper() + p[1:] for p in name.strip("_").split("_"))  # keeps MyFunction's capitals


def _edges_and_meta(args):
    """Per input: its edge (None when it needs no grad) and (shape, numpy dtype) or None."""
    nxt = []
    in_meta = []
    for a in args:
        if isinstance(a, Tensor):
            d = a._data
            in_meta.append((d.shape, d.dtype))
            nxt.append((a._edge or a) if a._rg else None)
        else:
            in_meta.append(None)
            nxt.append(None)
    return tuple(nxt), tuple(in_meta)


def _save(op, args, outs):
    saved = []
    versions = []
    for i in op.save_idx:
        if i < 0:
            v = outs[-1 - i]._alias()
        else:
            v = args[i]
        saved.append(v)
        if isinstance(v, Tensor):
            vc = v._shared_vc()
            versions.append(vc[0])
        else:
            versions.append(None)
    return tuple(saved), tuple(versions)


def _set_bf16():
    global _BF16
    from ..dtypes import bfloat16

    _BF16 = bfloat16.np
    _DIFF_DTYPES.add(np.dtype(_BF16))


_set_bf16()
