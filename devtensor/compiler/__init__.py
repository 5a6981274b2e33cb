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
mode; the `.training` flag of every module that ran. Captures that a replay could not reproduce
fall back to eager with one warning naming the reason and the line (`fullgraph=True`: an error):
reading a tensor on the host (`.item()`, `bool(t)`, `.numpy()`), returning tensors that still need
autograd, backward with create_graph or leaf hooks.

As with every tracer (jax.jit, tf.function), Python side effects other than those host calls run
only while capturing: keep them out of the compiled function.
"""
from __future__ import annotations

import functools
import warnings

from ..autograd.grad_mode import _grad_state
from ..graph import capture as _capture
from ..tensor import Tensor, _wrap
from .replay import Plan

_STATS = {"captures": 0, "recaptures": 0, "replays": 0, "eager_fallbacks": 0, "ops_captured": 0, "ops_replayed": 0,
          "fused_kernels": 0, "calls_per_replay": 0}


def stats():
    """Counters since import (or reset_stats()): captures, recaptures, replays, eager fallbacks, fused
    kernels generated; of the last capture: its ops before and after dead-value removal, and the calls
    one replay makes after fusion (kernels, fused kernels, host calls, gradient deliveries)."""
    return dict(_STATS)


def reset_stats():
    for k in _STATS:
        _STATS[k] = 0


class CompileError(RuntimeError):
    """fullgraph=True and the function cannot be captured whole."""


def compile(model=None, *, fullgraph=False, dynamic=False, mode=None, cache_size=8):  # noqa: A001
    """torch.compile's signature. `dynamic` is accepted; a new input shape captures again (one
    capture per shape, up to `cache_size`). `mode` is accepted; "reduce-overhead" has no further
    effect on cpu."""
    if mode not in (None, "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"):
        raise ValueError(f"compile: unknown mode {mode!r}")
    if model is None:
        return functools.partial(compile, fullgraph=fullgraph, dynamic=dynamic, mode=mode, cache_size=cache_size)
    if not callable(model):
        raise TypeError(f"compile: expected a function or a Module, got {type(model).__name__}")
    return CompiledFunction(model, fullgraph=fullgraph, cache_size=cache_size)


class _Variant:
    __slots__ = ("plan", "device", "out_spec", "modules", "eager_reason")

    def __init__(self, plan=None, device=None, out_spec=None, modules=(), eager_reason=None):
        self.plan, self.device, self.out_spec, self.modules = plan, device, out_spec, modules
        self.eager_reason = eager_reason


class CompiledFunction:
    def __init__(self, fn, *, fullgraph=False, cache_size=8):
        self._fn = fn
        self._root = fn if hasattr(fn, "named_modules") else None
        self._fullgraph = fullgraph
        self._cache_size = cache_size
        self._variants: dict = {}
        self._last = None
        self._warned = False
        functools.update_wrapper(self, fn, updated=())

    @property
    def graph(self):
        """The graph of the last capture (printable), or None before the first call."""
        return self._last.plan.graph if self._last is not None and self._last.plan is not None else None

    def __call__(self, *args, **kwargs):
        key = _guard_key(args, kwargs)
        if key is None:  # an argument we cannot guard on (unhashable): never replay
            return self._fn(*args, **kwargs)
        var = self._variants.get(key)
        if var is not None and not _modules_match(var.modules):
            var = None
        if var is None:
            if len(self._variants) >= self._cache_size:
                return self._too_many(args, kwargs)
            return self._capture(key, args, kwargs)
        if var.eager_reason is not None:
            _STATS["eager_fallbacks"] += 1
            return self._fn(*args, **kwargs)
        return self._replay(var, args, kwargs)

    def _too_many(self, args, kwargs):
        msg = (f"compile: {getattr(self._fn, '__name__', 'function')} was captured for {self._cache_size} different "
               "argument signatures (shapes, dtypes, scalars); running eagerly from now on")
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
        self._variants[key] = self._last = var
        _STATS["ops_captured"] = len(cap.graph.nodes)
        _STATS["ops_replayed"] = len(plan.nodes)
        _STATS["fused_kernels"] += len(plan.groups)
        _STATS["calls_per_replay"] = plan.calls
        return out

    # ---- replay ---------------------------------------------------------------------------------
    def _replay(self, var, args, kwargs):
        _STATS["replays"] += 1
        self._last = var
        arrays = [t._data for t in _flat_tensors((args, kwargs))]
        env = var.plan.run(arrays, var.device)
        outs = iter(_wrap(env[o], var.device) for o in var.plan.graph.outputs)
        return _rebuild(var.out_spec, outs)


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
def _guard_key(args, kwargs):
    try:
        key = (_leaf_key(args), tuple(sorted((k, _leaf_key(v)) for k, v in kwargs.items())), bool(_grad_state.enabled))
        hash(key)
        return key
    except TypeError:
        return None


def _leaf_key(v):
    if isinstance(v, Tensor):
        return ("T", v._data.shape, v._data.dtype, v._device, bool(v._rg))  # dtype, device: hashable as they are
    if isinstance(v, (tuple, list)):
        return (type(v).__name__, tuple(_leaf_key(x) for x in v))
    if isinstance(v, dict):
        return ("dict", tuple(sorted((k, _leaf_key(x)) for k, x in v.items())))
    if isinstance(v, (int, float, bool, str, type(None))):
        return (type(v).__name__, v)
    return ("id", id(v))


def _modules_match(modules):
    return all(m.training == training for m, training in modules)


def _flat_tensors(obj):
    out = []
    if isinstance(obj, Tensor):
        out.append(obj)
    elif isinstance(obj, (tuple, list)):
        for x in obj:
            out += _flat_tensors(x)
    elif isinstance(obj, dict):
        for k in obj:
            out += _flat_tensors(obj[k])
    return out


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
