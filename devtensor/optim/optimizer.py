"""Optimizer: parameter groups, per-parameter state, zero_grad, state_dict round trips.

Each optimizer updates a parameter with ONE fused kernel from the op table (devtensor/ops/
optim_steps.py) when the parameter's backend has one and the parameter is a contiguous float32/
float64 tensor; otherwise with the same update written in Tensor ops, which runs on every
backend. `fused=False` forces the Tensor-op path, `fused=True` makes a missing kernel an error.

State lives on the parameter's device and in its dtype, also after load_state_dict. Unlike
PyTorch (a 0-d tensor), a parameter's step count is stored as a Python int: it is read every step
and a device tensor would cost a host synchronisation each time.

State of the wrong shape is an error, never an out-of-bounds write: the fused kernels index a
state buffer as they index its parameter. Each optimizer names its parameter-shaped state
(`_param_shaped_state`); load_state_dict() rejects a state_dict whose such tensors do not have
their parameter's shape (ValueError, before anything is replaced). step() checks a parameter's
state again (RuntimeError, as PyTorch's step raises) only when something may have changed since it
was last found to fit: an entry of `opt.state[p]` was assigned (each parameter's state is a
`_ParamState`, a dict that notices assignments), or the parameter's storage was replaced (`p.data =
...`, `Module.to()`, `Module.double()`); device, dtype and contiguity are fixed there too (a state
tensor that differs is replaced by a converted copy). Otherwise a step pays one identity test per
parameter. Replacing a state tensor's own storage (`opt.state[p]["exp_avg"].data = ...`) is not
noticed; the fused ops' meta rules still refuse a state of the wrong shape before any kernel runs.
"""
from __future__ import annotations

import copy
import weakref
from collections import defaultdict

from .. import dtypes as _dt
from ..autograd.grad_mode import enable_grad, no_grad
from ..dispatch import call
from ..graph.capture import opaque
from ..tensor import Tensor

__all__ = ["Optimizer", "required"]

_FUSED_DTYPES = (_dt.float32, _dt.float64)
_FUSED_NP = frozenset(d.np for d in _FUSED_DTYPES)


class _RequiredParameter:
    """Marks a hyper-parameter that has no default (a group must give it)."""

    def __repr__(self):
        return "<required parameter>"


required = _RequiredParameter()

# per-step host scalars the optimizers themselves store every step: assigning them does not make
# step() check the state tensors again
_HOST_SCALARS = frozenset(("step", "mu_product", "eta", "mu"))


class _ParamState(dict):
    """One parameter's state. `checked` holds a weak reference to the parameter storage (its `_data`)
    that the state tensors were last found to fit; assigning a state entry forgets it."""

    __slots__ = ("checked",)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.checked = None

    def __setitem__(self, key, value):
        if key not in _HOST_SCALARS:
            self.checked = None
        super().__setitem__(key, value)

    def update(self, *args, **kwargs):
        self.checked = None
        super().update(*args, **kwargs)

    def setdefault(self, key, default=None):
        if key not in self:
            self.checked = None
        return super().setdefault(key, default)

    def __reduce__(self):  # pickles (and deep-copies) as its items; the check marker is not state
        return _ParamState, (dict(self),)


def _storage_ref(p):
    try:
        return weakref.ref(p._data)
    except TypeError:  # storage without weak references: never cached, checked every step
        return None


class Optimizer:
    def __init__(self, params, defaults):
        self.defaults = defaults
        if isinstance(params, Tensor):
            raise TypeError("params argument given to the optimizer should be an iterable of Tensors or dicts, "
                            f"but got {type(params).__name__}")
        if defaults.get("differentiable"):
            raise NotImplementedError(f"{type(self).__name__}: differentiable=True is not supported by devtensor")
        self.state = defaultdict(_ParamState)
        self.param_groups = []
        param_groups = list(params)
        if len(param_groups) == 0:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(param_groups[0], dict):
            param_groups = [{"params": param_groups}]
        for group in param_groups:
            self.add_param_group(group)

    # ---- groups ----------------------------------------------------------------------------------
    def add_param_group(self, param_group):
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, but got {type(param_group).__name__}")
        params = param_group["params"]
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, set):
            raise TypeError("optimizer parameters need to be organized in ordered collections, but the ordering of "
                            "tensors in sets will change between runs. Please use a list instead.")
        else:
            params = list(params)
        names = [p[0] for p in params if isinstance(p, tuple)]
        tensors = [p[1] if isinstance(p, tuple) else p for p in params]
        if names and len(names) != len(tensors):
            raise ValueError("all optimizer params should be with/without names. Some param names are missing")
        param_group["params"] = tensors
        if names:
            param_group["param_names"] = names
        for p in tensors:
            if not isinstance(p, Tensor):
                raise TypeError(f"optimizer can only optimize Tensors, but one of the params is {type(p).__name__}")
            if not (p.is_leaf or p.retains_grad):
                raise ValueError("can't optimize a non-leaf Tensor")
        for name, default in self.defaults.items():
            if default is required and name not in param_group:
                raise ValueError(f"parameter group didn't specify a value of required optimization parameter {name}")
            param_group.setdefault(name, default)
        ids = [id(p) for p in tensors]
        if len(ids) != len(set(ids)):
            import warnings

            warnings.warn("optimizer contains a parameter group with duplicate parameters; in future, this will "
                          "cause an error", stacklevel=3)
        existing = {id(p) for g in self.param_groups for p in g["params"]}
        for g in self.param_groups:
            if ("param_names" in param_group) != ("param_names" in g):
                kind = "with names" if "param_names" in param_group else "without names"
                raise ValueError("all optimizer param groups should be with/without names. "
                                 f"cannot add param group {kind} to the optimizer")
        if not existing.isdisjoint(ids):
            raise ValueError("some parameters appear in more than one parameter group")
        self.param_groups.append(param_group)
        for p in tensors:  # state kept from before (the parameter was in a group that was removed)
            if self.state.get(p):
                self._check_state(p, self.state[p])

    # ---- gradients and steps ---------------------------------------------------------------------
    @opaque
    def zero_grad(self, set_to_none=True):
        for group in self.param_groups:
            for p in group["params"]:
                g = p._grad_or_none()
                if g is None:
                    continue
                if set_to_none:
                    p._grad = None
                else:
                    if g.grad_fn is not None:
                        g.detach_()
                    else:
                        g.requires_grad_(False)
                    with no_grad():
                        g.zero_()

    @opaque
    def step(self, closure=None):
        """Update every parameter that has a gradient; closure() re-evaluates the model and returns the loss."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        with no_grad():
            for group in self.param_groups:
                self._step_group(group)
        return loss

    def _step_group(self, group):
        raise NotImplementedError

    def _fused(self, op, group, p):
        """Whether this parameter's update runs as the op's fused kernel (see the module docstring)."""
        fused = group.get("fused")
        if fused is False:
            return False
        d = p._data
        if d.dtype in _FUSED_NP and op.kernels.get(p._device.type) is not None and (
                not hasattr(d, "flags") or d.flags.c_contiguous):  # the usual case, without Tensor properties
            return True
        if p.dtype not in _FUSED_DTYPES:
            why = f"its dtype is {p.dtype.name} (fused steps take float32 or float64)"
        elif op.kernels.get(p.device.type) is None:
            why = f"the '{p.device.type}' backend has no {op.name} kernel"
        elif not p.is_contiguous():
            why = "it is not contiguous"
        else:
            return True
        if fused:
            raise RuntimeError(f"{type(self).__name__}(fused=True): cannot fuse the update of a parameter of shape "
                               f"{list(p.shape)} on {p.device}: {why}; pass fused=None to fall back to Tensor ops")
        return False

    def _with_state(self, group, new_state):
        """(p, grad, state) for each parameter of `group` that has a gradient: its state filled from
        new_state(p) (a dict) on first use, otherwise checked against p (_check_state)."""
        for p in group["params"]:
            grad = p._grad_or_none()
            if grad is None:
                continue
            state = self.state[p]
            if not state:
                state.update(new_state(p))
            else:
                self._check_state(p, state)
            yield p, grad, state

    # the state tensors that have their parameter's shape (each optimizer lists its own); a
    # subclass that keeps other state (a scalar, a factored matrix) is not checked for those
    _param_shaped_state = ()

    def _check_state(self, p, state):
        """Before updating `p` with existing state: each parameter-shaped state tensor must have p's
        shape (else RuntimeError: the fused kernels would write out of bounds), and is moved to p's
        device and dtype and made contiguous where it is not (Module.to() after some steps moves the
        parameter and its state follows here; so does a tensor assigned to opt.state[p] directly).
        Called every step, it returns at once when the state was found to fit p's current storage
        and no entry was assigned since (see the module docstring); anything unusual goes to
        _fix_state."""
        data = p._data
        cached = state.__class__ is _ParamState
        if cached:
            ref = state.checked
            if ref is not None and ref() is data:
                return
        shape, dtype, dev = data.shape, data.dtype, p._device
        for name in self._param_shaped_state:
            v = state.get(name)
            if v is None:
                continue
            try:
                vd = v._data
                if vd.shape == shape and v._device is dev and vd.dtype is dtype and vd.flags.c_contiguous:
                    continue
            except AttributeError:  # not a Tensor, or an array without flags (the meta device)
                pass
            self._fix_state(p, state, name, v)
        if cached:
            state.checked = _storage_ref(p)

    def _fix_state(self, p, state, name, v):
        """The slow part of _check_state, for one state tensor that failed its fast test."""
        if not isinstance(v, Tensor):
            raise TypeError(f"{self._where(p, 'step()')}: state {name!r} must be a Tensor of the parameter's shape, "
                            f"got {type(v).__name__}")
        vd, data = v._data, p._data
        if tuple(vd.shape) != tuple(data.shape):
            raise RuntimeError(f"{self._where(p, 'step()')}: state {name!r} has shape {list(vd.shape)} but the "
                               f"parameter has shape {list(data.shape)}; this state belongs to another parameter "
                               "(a state_dict from an optimizer of a different model?)")
        if v._device is not p._device or vd.dtype != data.dtype or not v.is_contiguous():
            state[name] = self._cast_state(name, v, p)

    def _where(self, p, method):
        """'Adam.step(): parameter 1 of parameter group 0' (found by identity; only for error messages)."""
        for gi, g in enumerate(self.param_groups):
            for pi, q in enumerate(g["params"]):
                if q is p:
                    return f"{type(self).__name__}.{method}: parameter {pi} of parameter group {gi}"
        return f"{type(self).__name__}.{method}: a parameter outside the optimizer's groups"

    @staticmethod
    def _run_fused(op, args, attrs):
        call(op, args, attrs)
        for i in op.mutates:  # the kernel wrote these (the parameter, its state): saved copies are now stale
            t = args[i]
            if t is not None:
                t._bump(op.name)

    # ---- state dict ------------------------------------------------------------------------------
    def state_dict(self):
        """{"state": {index: {name: value}}, "param_groups": [{..., "params": [indices]}]} as in PyTorch;
        parameters are numbered in group order. State tensors are the live ones (not copies)."""
        mapping = {}
        index = 0
        groups = []
        for g in self.param_groups:
            packed = {k: v for k, v in g.items() if k != "params"}
            for p in g["params"]:
                if id(p) not in mapping:
                    mapping[id(p)] = index
                    index += 1
            packed["params"] = [mapping[id(p)] for p in g["params"]]
            groups.append(packed)
        state = {mapping[id(p)]: s for p, s in self.state.items() if id(p) in mapping}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        """Load a state_dict() from an optimizer of the same layout. Each state tensor is copied to its
        parameter's device and (when floating point) dtype. A parameter-shaped state tensor (exp_avg,
        momentum_buffer, ...) whose shape is not its parameter's is a ValueError naming the optimizer,
        the group and parameter, the state and both shapes, raised before anything is replaced (PyTorch
        only fails at the next step())."""
        if not isinstance(state_dict, dict) or "state" not in state_dict or "param_groups" not in state_dict:
            raise ValueError("optimizer state_dict must be a dict with keys 'state' and 'param_groups' "
                             "(what Optimizer.state_dict() returns)")
        groups = self.param_groups
        saved_groups = copy.deepcopy(state_dict["param_groups"])
        if len(groups) != len(saved_groups):
            raise ValueError(f"loaded state dict has a different number of parameter groups ({len(saved_groups)}) "
                             f"than the optimizer ({len(groups)})")
        for i, (g, s) in enumerate(zip(groups, saved_groups)):
            if len(g["params"]) != len(s["params"]):
                raise ValueError(f"loaded state dict contains a parameter group that doesn't match the size of "
                                 f"optimizer's group (group {i}: {len(s['params'])} saved parameters, "
                                 f"{len(g['params'])} in the optimizer)")
        # saved index -> (parameter, its group index, its position in the group)
        id_map = {k: (p, gi, pi) for gi, (g, s) in enumerate(zip(groups, saved_groups))
                  for pi, (k, p) in enumerate(zip(s["params"], g["params"]))}
        state = defaultdict(_ParamState)
        for k, v in state_dict["state"].items():
            key = int(k) if isinstance(k, str) and k.isdigit() else k  # JSON turns int keys into strings
            if key in id_map:
                p, gi, pi = id_map[key]
                self._check_loaded(p, gi, pi, key, v)
                state[p] = _ParamState((name, self._cast_state(name, value, p)) for name, value in v.items())
                state[p].checked = _storage_ref(p)  # shapes checked, tensors on p's device, dtype, contiguous
            else:
                state[k] = v
        new_groups = []
        for g, s in zip(groups, saved_groups):
            s["params"] = g["params"]
            if "param_names" in g and "param_names" not in s:
                s["param_names"] = g["param_names"]
            new_groups.append(s)
        self.state = state
        self.param_groups = new_groups

    def _check_loaded(self, p, gi, pi, key, saved):
        """load_state_dict: the saved state of one parameter must fit it (checked before anything is
        replaced, so a bad state_dict leaves the optimizer as it was)."""
        if not isinstance(saved, dict):
            raise TypeError(f"{type(self).__name__}.load_state_dict(): the saved state of parameter {pi} of parameter "
                            f"group {gi} (state_dict index {key!r}) is a {type(saved).__name__}, not a dict")
        for name in self._param_shaped_state:
            v = saved.get(name)
            if v is None:
                continue
            where = (f"{type(self).__name__}.load_state_dict(): state {name!r} of parameter {pi} of parameter "
                     f"group {gi} (state_dict index {key!r})")
            if not isinstance(v, Tensor):
                raise TypeError(f"{where} must be a Tensor, got {type(v).__name__}")
            if tuple(v._data.shape) != tuple(p._data.shape):
                raise ValueError(f"{where} has shape {list(v._data.shape)} but the parameter has shape "
                                 f"{list(p._data.shape)}; the state_dict comes from an optimizer of a different "
                                 "model (or its parameters are in another order)")

    def _cast_state(self, name, value, p):
        if name == "step":
            return int(value.item()) if isinstance(value, Tensor) else int(value)
        if not isinstance(value, Tensor):
            return copy.deepcopy(value)
        if value.dtype.is_floating_point or name in self._param_shaped_state:
            v = value.to(device=p.device, dtype=p.dtype)
        else:
            v = value.to(p.device)
        if v is value:
            v = v.clone()  # never share state with the loaded dict (the fused kernels write it in place)
        return v.contiguous()

    # ---- pickling and printing -------------------------------------------------------------------
    def __getstate__(self):
        return {"defaults": self.defaults, "state": self.state, "param_groups": self.param_groups}

    def __setstate__(self, state):
        self.__dict__.update(state)

    def __repr__(self):
        s = type(self).__name__ + " ("
        for i, group in enumerate(self.param_groups):
            s += f"\nParameter Group {i}\n"
            for key in sorted(group):
                if key != "params":
                    s += f"    {key}: {group[key]}\n"
        return s + ")"


def _float(v, name):
    """Hyper-parameters may be given as 0-d tensors, as PyTorch allows; kernels take Python floats."""
    return float(v.item()) if isinstance(v, Tensor) else float(v)
