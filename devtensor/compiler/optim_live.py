"""An optimizer's step inside a replay: the fused step kernels (adam_step_, sgd_step_) called on
the arrays directly, their scalar arguments read LIVE from param_groups and state at every replay.

Optimizer.step is an opaque host call in the captured graph (graph/capture.py). Running it again
on every replay costs the op table's dispatch per parameter (meta rule, checks, wrapping), which
is most of a small model's replay. A live step does what the optimizer's _step_group does for the
common case: the same kernel, the same scalars (lr, betas, eps, weight decay, the step count the
host bumps exactly as eager), in the same order; on cpu one call updates a whole parameter group
(adam_steps_ / sgd_steps_: each parameter's elements computed as adam_step_ computes them).
Anything unusual in a replay (a parameter without state yet, fused=False, a dtype, layout or
device the kernel does not take, a closure) runs the optimizer's own step instead, for that
replay, so the fast path never changes a result.
"""
from __future__ import annotations

import numpy as np

from ..dispatch import OPS
from ..optim.adam import Adam
from ..optim.optimizer import _float
from ..optim.sgd import SGD

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def live_step(node):
    """A callable replacing the host node `node`, or None when it must stay a host call."""
    a = node.attrs
    owner, method, args, kwargs = a.get("owner"), a.get("method"), a.get("args", ()), a.get("kwargs", {})
    if method != "step" or args or kwargs:
        return None
    cls = type(owner)
    if cls.step is not SGD.step or cls._step_group not in (Adam._step_group, SGD._step_group):
        return None  # a subclass with its own step: its Python runs as written
    kind = _Adam if isinstance(owner, Adam) else _SGD
    return kind(owner, a["fn"])


def _grad_array(p, d):
    """p's gradient array when the kernel can take it as is, False when it cannot, None without one."""
    try:
        g = p._grad
    except AttributeError:
        return None
    if g is None:
        return None
    ga = g._data
    if ga.dtype is not d.dtype or ga.shape != d.shape or not ga.flags.c_contiguous:
        return False
    return ga


def _one_cpu_dtype(ps):
    """Whether a group's parameters can be updated by one call of the cpu's many-parameter step."""
    return all(j[0]._device.type == "cpu" and j[2].dtype is ps[0][2].dtype for j in ps)


def _bump_written(ps, op_name):
    """The version counters of what the step wrote: what its op declares in `mutates` (the parameter
    and the state tensors named as its inputs), as the optimizer's own step bumps them."""
    op = OPS[op_name]
    state_names = [op.inputs[i] for i in op.mutates if i != 0]  # input 0 is the parameter
    for p, _, _, _, st in ps:
        p._bump(op_name)
        for name in state_names:
            t = st.get(name)
            if t is not None:
                t._bump(op_name)


def _cpu():
    from ..backends.cpu import optim_steps  # numba: loaded on the first replay, not at import

    return optim_steps


class _Live:
    op_name = ""
    needs_state = True  # SGD without momentum keeps no state

    def __init__(self, opt, host):
        self.opt, self.host = opt, host
        self.kernels = {}

    def __repr__(self):
        return (f"{type(self.opt).__name__}.step()  # live: {self.op_name} per parameter, hyper-parameters read "
                "each replay")

    def kernel(self, dev):
        k = self.kernels.get(dev.type)
        if k is None:
            from ..ops.optim_steps import adam_step_, sgd_step_

            op = adam_step_ if self.op_name == "adam_step_" else sgd_step_
            k = self.kernels[dev.type] = op.kernels.get(dev.type) or False
        return k

    def __call__(self):
        jobs = self.plan()
        if jobs is None:
            return self.host()  # the optimizer's own step, exactly as eager
        self.run(jobs)
        return None

    def params(self, group):
        """(p, data, grad array, state) of the group's parameters that have a gradient; None when one
        of them needs the optimizer's own code this time."""
        state, out = self.opt.state, []
        check = self.opt._check_state
        for p in group["params"]:
            d = p._data
            ga = _grad_array(p, d)
            if ga is None:
                continue
            st = state.get(p)
            if ga is False or st is None or (self.needs_state and not st) or d.dtype not in _FLOATS \
                    or not getattr(getattr(d, "flags", None), "c_contiguous", False):
                return None
            k = self.kernel(p._device)
            if k is False:
                return None
            check(p, st)  # what step() checks (shapes), and the same conversions of state it makes
            out.append((p, k, d, ga, st))
        return out


class _Adam(_Live):
    op_name = "adam_step_"

    def plan(self):
        jobs = []
        for group in self.opt.param_groups:
            if group.get("fused") is False:
                return None
            amsgrad = bool(group["amsgrad"])
            ps = self.params(group)
            if ps is None or (amsgrad and any("max_exp_avg_sq" not in st for *_, st in ps)):
                return None
            if ps:
                beta1, beta2 = (_float(b, "betas") for b in group["betas"])
                jobs.append((ps, (_float(group["lr"], "lr"), beta1, beta2, float(group["eps"]),
                                  float(group["weight_decay"]), bool(group.get("decoupled_weight_decay", False))),
                             amsgrad, bool(group["maximize"])))
        return jobs

    def run(self, jobs):
        for ps, (lr, beta1, beta2, eps, wd, decoupled), amsgrad, maximize in jobs:
            steps = []
            for p, k, d, ga, st in ps:
                st["step"] = step = st["step"] + 1
                steps.append(step)
            if _one_cpu_dtype(ps):
                _cpu().adam_steps_([j[2] for j in ps], [j[3] for j in ps], [j[4]["exp_avg"]._data for j in ps],
                                   [j[4]["exp_avg_sq"]._data for j in ps],
                                   [j[4]["max_exp_avg_sq"]._data for j in ps] if amsgrad else None,
                                   lr, beta1, beta2, eps, wd, decoupled, steps, amsgrad, maximize)
            else:
                for (p, k, d, ga, st), step in zip(ps, steps):
                    mx = st["max_exp_avg_sq"]._data if amsgrad else None
                    k(d, ga, st["exp_avg"]._data, st["exp_avg_sq"]._data, mx, lr, beta1, beta2, eps, wd, decoupled,
                      step, amsgrad, maximize)
            _bump_written(ps, "adam_step_")


class _SGD(_Live):
    op_name = "sgd_step_"
    needs_state = False

    def plan(self):
        jobs = []
        for group in self.opt.param_groups:
            if group.get("fused") is False:
                return None
            momentum = float(group["momentum"])
            ps = self.params(group)
            if ps is None or (momentum and any(st.get("momentum_buffer") is None for *_, st in ps)):
                return None  # the first momentum step creates the buffer: the optimizer's own code does
            if ps:
                jobs.append((ps, _float(group["lr"], "lr"), momentum, float(group["dampening"]),
                             float(group["weight_decay"]), bool(group["nesterov"]), bool(group["maximize"])))
        return jobs

    def run(self, jobs):
        for ps, lr, momentum, dampening, wd, nesterov, maximize in jobs:
            if _one_cpu_dtype(ps):
                bufs = [j[4]["momentum_buffer"]._data for j in ps] if momentum else None
                _cpu().sgd_steps_([j[2] for j in ps], [j[3] for j in ps], bufs, lr, momentum, dampening, wd,
                                  nesterov, maximize)
            else:
                for p, k, d, ga, st in ps:
                    buf = st["momentum_buffer"]._data if momentum else None
                    k(d, ga, buf, lr, momentum, dampening, wd, nesterov, maximize, False)
            _bump_written(ps, "sgd_step_")
