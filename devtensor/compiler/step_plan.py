"""The step-list replay that mode="reduce-overhead" needs on cuda (cuda_graphs.py).

The default replay (replay.py) is one generated function; a CUDA graph must instead capture some
runs of kernels and leave the host calls and gradient deliveries between them to Python, so here
each live node stays one step (kind, kernel, argument getter, attributes, outputs) in a list, and
a replay is execute(start(inputs), steps) over all steps or a segment of them. Same semantics as
replay.py's plan (dead values dropped, externals read at the start, the engine's delivery rule),
without fusion: a graph launch already removes the per-kernel launch cost fusion saves.
"""
from __future__ import annotations

import functools
import operator

import numpy as np

from ..dispatch import COMPARE, OPS, _backend
from ..graph.ir import Ref
from ..tensor import _wrap
from .replay import _CREATION, _mover, _shared_values, live_nodes

_KERNEL, _HOST, _GRAD = 0, 1, 2


class StepPlan:
    """The captured graph as a list of steps, each addressable on its own (start(), execute(env,
    steps)): cuda_graphs.GraphRunner captures runs of them as CUDA graphs and runs the rest as Python."""

    def __init__(self, graph, device):
        self.graph = graph
        self.nodes = live_nodes(graph)
        self.n_values = len(graph.values)
        self.externals = [(v.id, v.tensor) for v in graph.externals()]
        self.inputs = list(graph.inputs)
        be = _backend(device)
        self._array_type = be.array_type
        self._ensure = be.ensure_array
        self.steps = [self._step(n, device) for n in self.nodes]
        self.shared = _shared_values(self)

    def _step(self, n, device):
        if n.op == "@host":
            return (_HOST, n.attrs["fn"], None, None, None, None)
        if n.op == "@accumulate_grad":
            return (_GRAD, n.attrs["leaf"], n.args[1].id, None, None, None)
        op = OPS[n.op]
        dev = device if n.op not in ("full", "empty", "rand", "randn", "randint", "randperm", "arange",
                                     "linspace", "eye") else n.attrs.get("device", device)
        fn = op.kernels[dev.type if hasattr(dev, "type") else device.type]
        if n.op in _CREATION:
            args = tuple(n.attrs[k] for k in _CREATION[n.op]) + (n.attrs["device"],)
            return (_KERNEL, fn, _getter(args), None, n.outputs, op.rule is COMPARE)
        if n.op == "copy_to":
            return (_KERNEL, _mover(n.attrs["device"]), _getter(n.args), None, n.outputs, False)
        attrs = {k: _slots(v) for k, v in n.attrs.items()}
        if not any(_has_slot(v) for v in attrs.values()):
            fn = functools.partial(fn, **attrs) if attrs else fn  # constant attributes: bound once
            attrs = None
        return (_KERNEL, fn, _getter(n.args), attrs, n.outputs, op.rule is COMPARE)

    def run(self, input_arrays, device):
        return self.execute(self.start(input_arrays), self.steps)

    def start(self, input_arrays):
        """A fresh environment: the inputs and the externals' current arrays in their slots."""
        env = [None] * self.n_values
        for vid, a in zip(self.inputs, input_arrays):
            env[vid] = a
        for vid, t in self.externals:
            env[vid] = t._data if hasattr(t, "_data") else t
        return env

    def execute(self, env, steps):
        """Run `steps` (all of self.steps, or some: CUDA graphs capture the kernel runs between host steps)."""
        array_type, ensure = self._array_type, self._ensure
        for kind, fn, args, attrs, outs, compare in steps:
            if kind == _KERNEL:
                a = args(env)
                raw = fn(*a, **{k: _resolve(v, env) for k, v in attrs.items()}) if attrs else fn(*a)
                if len(outs) == 1:
                    if raw.__class__ is not array_type:
                        raw = ensure(raw)
                    if compare and raw.dtype != np.bool_:
                        raw = raw.astype(np.bool_)
                    env[outs[0]] = raw
                else:
                    for o, r in zip(outs, raw):
                        env[o] = r
            elif kind == _HOST:
                fn()
            else:  # deliver a gradient to a leaf, as the engine does
                g = env[args]
                prev = fn._grad_or_none()
                if prev is None:
                    fn._set_grad(_wrap(g.copy() if args in self.shared else g, fn._device))
                else:
                    prev._data += g
                    prev._bump("backward")
        return env


class _Slot:
    __slots__ = ("id",)

    def __init__(self, vid):
        self.id = vid


def _slots(v):
    if isinstance(v, Ref):
        return _Slot(v.id)
    if isinstance(v, tuple):
        return tuple(_slots(x) for x in v)
    return v


def _has_slot(v):
    if v.__class__ is _Slot:
        return True
    return v.__class__ is tuple and any(_has_slot(x) for x in v)


def _getter(args):
    """A function env -> the kernel's positional arguments, as cheap as the common cases allow."""
    slots = _slots(tuple(args))
    if all(s.__class__ is _Slot for s in slots):
        ids = [s.id for s in slots]
        if len(ids) == 1:
            i = ids[0]
            return lambda env: (env[i],)
        return operator.itemgetter(*ids)
    if not any(_has_slot(s) for s in slots):
        return lambda env: slots
    return lambda env: _resolve(slots, env)


def _resolve(v, env):
    if v.__class__ is tuple:
        return tuple(env[x.id] if x.__class__ is _Slot else (_resolve(x, env) if x.__class__ is tuple else x)
                     for x in v)
    if v.__class__ is _Slot:
        return env[v.id]
    return v
