"""`devtensor.compile`: define once, run many times (TensorFlow's static graph, in torch.compile's
dialect).

    step = dt.compile(train_step)     # or @dt.compile, or dt.compile(module) for a compiled forward
    loss = step(x, y)                 # 1st call: runs eagerly while the op table records it
    loss = step(x, y)                 # later calls whose guards hold: the recorded kernels replay

What is captured: every op the function runs through the op table (forward, the backward engine's
ops, gradient delivery to .grad), with the optimizer's step/zero_grad and a scheduler's step kept
as host calls that run again on every replay (so learning rates, Adam's step count and
param_group edits are read fresh, never baked in; an optimizer's step runs as its fused kernels,
see optim_live.py). Random ops draw fresh numbers on every replay. How a replay runs (generated
code, fused elementwise kernels, planned buffers): replay.py.

Guards (a miss captures again, up to `cache_size` variants per function): every tensor argument's
shape, dtype, device and requires_grad; the Python scalars and other arguments (by value); grad
mode; the `.training` flag of every module that ran. With dynamic=True (or None after a size miss)
the dims that are symbolic are guarded by their symbol instead (equal sizes stay equal, >= 2), and
the plan is instantiated for each new size (symbolic.py). mode="reduce-overhead" on cuda launches
the replay's kernels as CUDA graphs (cuda_graphs.py). Captures that a replay could not reproduce
fall back to eager with one warning naming the reason and the line (`fullgraph=True`: an error):
reading a tensor on the host (`.item()`, `bool(t)`, `.numpy()`), returning tensors that still need
autograd, backward with create_graph or leaf hooks.

As with every tracer (jax.jit, tf.function), Python side effects other than those host calls run
only while capturing: keep them out of the compiled function.
"""
from __future__ import annotations

import functools
import warnings

from ..autocast_mode import guard_key as _autocast_key
from ..autograd.grad_mode import _grad_state
from ..graph import capture as _capture
from ..ops.generator import Generator
from ..tensor import Tensor, _wrap
from . import symbolic as _symbolic
from .symbolic import flat_tensors as _flat_tensors
from .replay import Plan

_STATS = {"captures": 0, "recaptures": 0, "replays": 0, "eager_fallbacks": 0, "ops_captured": 0, "ops_replayed": 0,
          "instantiations": 0, "graph_replays": 0, "fused_kernels": 0, "calls_per_replay": 0}


def stats():
    """Counters since import (or reset_stats()): captures, recaptures, replays, eager fallbacks, fused
    kernels generated, plans instantiated for new sizes of a dynamic capture, replays run as CUDA
    graphs (mode="reduce-overhead" on cuda); of the last capture: its ops before and after dead-value
    removal, and the calls one replay makes after fusion (kernels, fused kernels, host calls,
    gradient deliveries)."""
    return dict(_STATS)


def reset_stats():
    for k in _STATS:
        _STATS[k] = 0


class CompileError(RuntimeError):
    """fullgraph=True and the function cannot be captured whole."""


MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


def compile(model=None, *, fullgraph=False, dynamic=False, mode=None, cache_size=8):  # noqa: A001
    """torch.compile's signature.

    dynamic: False (default): every new input shape captures again (one variant per shape, up to
             `cache_size`). True: input dims of size >= 2 are symbols from the first capture on, so one
             capture serves every size of them (dims that cannot be symbolic stay static: see
             devtensor/compiler/symbolic.py). None: as torch's default, static until a call with new
             sizes misses, then the dims that changed are made symbolic in that capture.
    mode:    "default"; "reduce-overhead": on cuda the replay's kernels run as CUDA graphs (on cpu the
             same as default); "max-autotune" and "max-autotune-no-cudagraphs" act as "default".
    """
    if mode is not None and mode not in MODES:
        raise ValueError(f"compile: unknown mode {mode!r}; valid modes: {', '.join(repr(m) for m in MODES)} (or None)")
    if dynamic not in (None, False, True):
        raise ValueError(f"compile: dynamic must be None, False or True, got {dynamic!r}")
    if model is None:
        return functools.partial(compile, fullgraph=fullgraph, dynamic=dynamic, mode=mode, cache_size=cache_size)
    if not callable(model):
        raise TypeError(f"compile: expected a function or a Module, got {type(model).__name__}")
    return CompiledFunction(model, fullgraph=fullgraph, dynamic=dynamic, mode=mode, cache_size=cache_size)


class _Variant:
    __slots__ = ("plan", "device", "out_spec", "modules", "eager_reason", "shape_free", "shapes", "dynamic", "plans",
                 "runner")

    def __init__(self, plan=None, device=None, out_spec=None, modules=(), eager_reason=None):
        self.plan, self.device, self.out_spec, self.modules = plan, device, out_spec, modules
        self.eager_reason = eager_reason
        self.shape_free = self.shapes = self.dynamic = self.runner = None
        self.plans = {}  # dynamic variants: sizes of the symbols -> the plan instantiated for them

    def plan_for(self, env):
        if env is None:
            return self.plan
        key = tuple(sorted(env.items()))
        plan = self.plans.get(key)
        if plan is None:
            if len(self.plans) >= 8:  # instantiating is cheap (no Python of the function runs): keep a few
                self.plans.pop(next(iter(self.plans)))
            plan = self.plans[key] = Plan(self.dynamic.instantiate(env), self.device)
            _STATS["instantiations"] += 1
        return plan


class CompiledFunction:
    def __init__(self, fn, *, fullgraph=False, dynamic=False, mode=None, cache_size=8):
        self._fn = fn
        self._root = fn if hasattr(fn, "named_modules") else None
        self._fullgraph = fullgraph
        self._dynamic = dynamic
        self._mode = mode or "default"
        self._cache_size = cache_size
        self._variants: dict = {}
        self._bound: dict = {}  # guard key -> (dynamic variant, sizes of its symbols) already matched
        self._last = None
        self._warned = False
        functools.update_wrapper(self, fn, updated=())

    @property
    def graph(self):
        """The graph of the last capture (printable: ops, dtypes, shapes, symbolic where dims are dynamic,
        host calls, gradient delivery, and what passes annotated), or None before the first call."""
        var = self._last
        if var is None or var.plan is None:
            return None
        return var.dynamic.graph if var.dynamic is not None else var.plan.graph

    def __call__(self, *args, **kwargs):
        key = _guard_key(args, kwargs)
        if key is None:  # an argument we cannot guard on (unhashable): never replay
            return self._fn(*args, **kwargs)
        var, env = self._variants.get(key), None
        if var is None:
            var, env = self._bound.get(key, (None, None))
        if var is not None and not _modules_match(var.modules):
            var = None
        if var is None:
            var, env = self._symbolic_match(args, kwargs)
            if var is not None:  # the next call with these sizes finds it by its key
                if len(self._bound) >= 64:
                    self._bound.clear()
                self._bound[key] = (var, env)
        if var is None:
            if len(self._variants) >= self._cache_size:
                return self._too_many(args, kwargs)
            return self._capture(key, args, kwargs)
        if var.eager_reason is not None:
            _STATS["eager_fallbacks"] += 1
            return self._fn(*args, **kwargs)
        return self._replay(var, args, kwargs, env)

    def _symbolic_match(self, args, kwargs):
        """The dynamic variant whose guards hold for these arguments, and the sizes of its symbols."""
        dyn = [v for v in self._variants.values() if v.dynamic is not None]
        if not dyn:
            return None, None
        free = _guard_key(args, kwargs, shapes=False)
        shapes = [tuple(t._data.shape) for t in _flat_tensors((args, kwargs))]
        for v in dyn:
            if v.shape_free == free and _modules_match(v.modules):
                env = v.dynamic.bind(shapes)
                if env is not None:
                    return v, env
        return None, None

    def _too_many(self, args, kwargs):
        msg = (f"compile: {getattr(self._fn, '__name__', 'function')} was captured for {self._cache_size} different "
               "argument signatures (shapes, dtypes, scalars); running eagerly from now on"
               + ("" if self._dynamic else " (dynamic=True serves every batch size from one capture)"))
        if self._fullgraph:
            raise CompileError(msg)
        if not self._warned:
            warnings.warn(msg, RuntimeWarning, stacklevel=3)
            self._warned = True
        _STATS["eager_fallbacks"] += 1
        return self._fn(*args, **kwargs)

    # ---- capture --------------------------------------------------------------------------------
    def _capture(self, key, args, kwargs):
        _STATS["recaptures" if self._variants else "captures"] += 1
        tensors = _flat_tensors((args, kwargs))
        with _capture(root=self._root) as cap:
            for i, t in enumerate(tensors):
                cap.input(t, f"arg{i}")
            out = self._fn(*args, **kwargs)
            out_tensors = _flat_tensors(out)
            for t in out_tensors:
                cap.graph.outputs.append(cap.ref(t).id)
        reason = _why_not_replayable(cap, tensors, out_tensors)
        modules = tuple((m, m.training) for m in cap.modules_seen.values())
        if reason is not None:
            if self._fullgraph:
                raise CompileError(f"compile(fullgraph=True): {reason}")
            warnings.warn(f"compile: {reason}; this function runs eagerly for these arguments", RuntimeWarning,
                          stacklevel=3)
            self._variants[key] = _Variant(modules=modules, eager_reason=reason)
            return out
        device = tensors[0]._device if tensors else (out_tensors[0]._device if out_tensors else None)
        plan = Plan(cap.graph, device) if device is not None else None
        if plan is None:
            self._variants[key] = _Variant(modules=modules, eager_reason="no tensors in or out")
            return out
        var = _Variant(plan, device, _spec(out), modules)
        var.shape_free = _guard_key(args, kwargs, shapes=False)
        var.shapes = [tuple(t._data.shape) for t in tensors]
        candidates = self._dynamic_candidates(var)
        if candidates:
            var.dynamic = _symbolic.trace(self._fn, self._root, args, kwargs, tensors, cap.graph, candidates)
            if var.dynamic is not None:
                var.plans[tuple(sorted(var.dynamic.symbols.items()))] = plan
        self._variants[key] = self._last = var
        _STATS["ops_captured"] = len(cap.graph.nodes)
        _STATS["ops_replayed"] = len(plan.nodes)
        _STATS["fused_kernels"] += len(plan.groups)
        _STATS["calls_per_replay"] = plan.calls
        return out

    def _dynamic_candidates(self, var):
        """The (tensor, axis) pairs this capture makes symbolic: every dim with dynamic=True; with
        dynamic=None the dims whose sizes differ from an earlier capture of the same signature."""
        if self._dynamic is True:
            return [(i, a) for i, shape in enumerate(var.shapes) for a in range(len(shape))]
        if self._dynamic is None:
            for old in self._variants.values():
                if old.shape_free == var.shape_free and old.shapes is not None:
                    return [(i, a) for i, (s0, s1) in enumerate(zip(old.shapes, var.shapes))
                            for a, (d0, d1) in enumerate(zip(s0, s1)) if d0 != d1]
        return []

    # ---- replay ---------------------------------------------------------------------------------
    def _replay(self, var, args, kwargs, sizes=None):
        _STATS["replays"] += 1
        self._last = var
        plan = var.plan_for(sizes)
        arrays = [t._data for t in _flat_tensors((args, kwargs))]
        env = None
        if self._mode == "reduce-overhead" and var.device.type == "cuda":
            env = self._graph_runner(var, plan, sizes).run(arrays)
            if env is not None:  # the graph's memory is overwritten by the next launch: outputs are copies
                _STATS["graph_replays"] += 1
                outs = iter(_wrap(env[o].copy(), var.device) for o in plan.graph.outputs)
                return _rebuild(var.out_spec, outs)
        env = plan.run(arrays, var.device)
        outs = iter(_wrap(env[o], var.device) for o in plan.graph.outputs)
        return _rebuild(var.out_spec, outs)

    def _graph_runner(self, var, plan, sizes):
        key = None if sizes is None else tuple(sorted(sizes.items()))
        runner = var.runner.get(key) if var.runner is not None else None
        if runner is None or runner.plan.graph is not plan.graph:
            import importlib

            from .cuda_graphs import GraphRunner

            var.runner = var.runner or {}
            if len(var.runner) >= 8:  # as many as plans are kept: each holds its graphs' memory
                var.runner.pop(next(iter(var.runner)))
            runner = var.runner[key] = GraphRunner(plan.graph, var.device, importlib.import_module("cupy"))
        return runner


def _why_not_replayable(cap, inputs, outputs):
    if cap.host_reads:
        what, where = cap.host_reads[0]
        return f"a tensor's value is read on the host ({what} at {where}), so the function's Python depends on data"
    if cap.unsupported:
        return cap.unsupported[0]
    if any(t._rg and t._edge is not None and t._edge[0].saved is not None for t in outputs):
        return ("it returns a tensor that still needs autograd (call .backward() inside the compiled function, "
                "or run it under no_grad)")
    if any(t._rg for t in inputs):
        return "an argument requires grad (its gradient would need the autograd graph a replay does not build)"
    return None


# ---- guards ---------------------------------------------------------------------------------------
def _guard_key(args, kwargs, shapes=True):
    """Everything a replay is guarded on; shapes=False: the same with each tensor's shape reduced to its
    number of dims (a dynamic variant checks the sizes against its symbols)."""
    try:
        key = (_leaf_key(args, shapes), tuple(sorted((k, _leaf_key(v, shapes)) for k, v in kwargs.items())),
               bool(_grad_state.enabled), _autocast_key())  # a graph traced under autocast holds its casts
        hash(key)
        return key
    except TypeError:
        return None


def _leaf_key(v, shapes=True):
    if isinstance(v, Tensor):
        shape = tuple(v._data.shape) if shapes else v._data.ndim
        return ("T", shape, v._data.dtype, v._device, bool(v._rg))  # dtype, device: hashable as they are
    if isinstance(v, (tuple, list)):
        return (type(v).__name__, tuple(_leaf_key(x, shapes) for x in v))
    if isinstance(v, dict):
        return ("dict", tuple(sorted((k, _leaf_key(x, shapes)) for k, x in v.items())))
    if isinstance(v, (int, float, bool, str, type(None))):
        return (type(v).__name__, v)
    if isinstance(v, Generator):
        # the object itself (compared by identity): the key keeps it alive, so a new Generator never reuses a
        # dead one's id and replays the capture that draws from the dead one's stream
        return ("generator", v)
    return ("id", id(v))


def _modules_match(modules):
    return all(m.training == training for m, training in modules)


def _spec(obj):
    if isinstance(obj, Tensor):
        return "T"
    if isinstance(obj, (tuple, list)):
        return (type(obj), [_spec(x) for x in obj])
    if isinstance(obj, dict):
        return (dict, [(k, _spec(v)) for k, v in obj.items()])
    return ("const", obj)


def _rebuild(spec, tensors):
    if spec == "T":
        return next(tensors)
    kind, items = spec
    if kind == "const":
        return items
    if kind is dict:
        return {k: _rebuild(s, tensors) for k, s in items}
    return kind(_rebuild(s, tensors) for s in items)
