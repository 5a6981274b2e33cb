"""DistributedDataParallel: one model replica per rank, gradients averaged over ranks during backward.

How a step goes (PyTorch's Reducer, in Python):
  * construction: the ranks check they hold the same parameters (names, shapes, dtypes), then rank
    0's parameters and buffers are broadcast (coalesced per device and dtype); the parameters that
    require grad are packed into buckets of at most bucket_cap_mb, in REVERSE registration order
    (backward produces the last layer's gradients first), the first bucket capped at 1 MiB so that
    communication starts early, one bucket per (device, dtype);
  * forward: when grads will be synchronised (grad mode on, not inside no_sync()), arm the reducer;
    with find_unused_parameters=True, walk the autograd graph from the outputs and mark the
    parameters it does not reach as ready now;
  * backward: a post-accumulate-grad hook per parameter copies its .grad into its bucket's flat
    buffer; when a bucket's last parameter is in, the bucket's all-reduce (SUM) is started
    asynchronously (buckets start strictly in index order, so every rank issues the same
    collectives in the same order) and backward goes on computing while it runs; each later hook
    pokes MPI's progress engine;
  * when the last bucket has started: wait for each in order, divide by the world size, copy back
    into each parameter's .grad. loss.backward() returns with .grad averaged over the ranks.

A parameter that got no gradient leaves its bucket unfinished: the next forward raises PyTorch's
error (find_unused_parameters=True handles such models). With find_unused_parameters, an extra
small all-reduce tells which parameters were used on any rank: those unused everywhere keep
.grad untouched (as in PyTorch), the others get the average (zeros from the ranks that did not use them).
"""
from __future__ import annotations

import contextlib
import time
import weakref
from collections import OrderedDict

import numpy as np

from ... import distributed as dist
from ...autograd.grad_mode import is_grad_enabled, no_grad
from ...distributed.api import _xp
from ...distributed.group import describe
from ...ops.creation import empty
from ...tensor import Tensor
from ..modules.module import Module

_FIRST_BUCKET_BYTES = 1024 * 1024  # PyTorch's dist._DEFAULT_FIRST_BUCKET_BYTES


class _Bucket:
    __slots__ = ("index", "params", "offsets", "buffer", "device", "pending", "work", "transport")

    def __init__(self, index, params, device, dtype):
        self.index = index
        self.params = params  # [(param index, Parameter)]
        self.offsets = []
        n = 0
        for _, p in params:
            self.offsets.append(n)
            n += p.numel()
        self.buffer = empty(n, dtype=dtype, device=device)._data
        self.device = device
        self.pending = 0
        self.work = None


class DistributedDataParallel(Module):
    """PyTorch's DistributedDataParallel over devtensor.distributed (MPI for cpu, NCCL for cuda).

    device_ids / output_device are accepted for PyTorch compatibility (one device per process; the
    module already lives on it). static_graph and gradient_as_bucket_view are accepted and change
    nothing. broadcast_buffers=True (PyTorch's default) re-broadcasts rank 0's buffers (e.g.
    BatchNorm's running statistics) at every training forward."""

    def __init__(self, module, device_ids=None, output_device=None, dim=0, broadcast_buffers=True,
                 init_sync=True, process_group=None, bucket_cap_mb=25, find_unused_parameters=False,
                 check_reduction=False, gradient_as_bucket_view=False, static_graph=False):
        super().__init__()
        api = "DistributedDataParallel"
        if not isinstance(module, Module):
            raise TypeError(f"{api}: expected a devtensor nn.Module, got {type(module).__name__}")
        pg = dist.api._group_for_ddp(api)
        if process_group is not None:
            dist.api._default(process_group, api)
        if bucket_cap_mb is None:
            bucket_cap_mb = 25
        if not bucket_cap_mb > 0:
            raise ValueError(f"{api}: bucket_cap_mb must be > 0, got {bucket_cap_mb}")
        self.module = module
        d = self.__dict__  # plain attributes: not parameters, buffers or submodules
        d["process_group"] = pg
        d["broadcast_buffers"] = bool(broadcast_buffers)
        d["find_unused_parameters"] = bool(find_unused_parameters)
        d["bucket_bytes_cap"] = int(bucket_cap_mb * 1024 * 1024)
        d["require_backward_grad_sync"] = True
        d["device_ids"] = device_ids
        named = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
        d["_param_names"] = [n for n, _ in named]
        d["_params"] = [p for _, p in named]
        if not named:
            raise RuntimeError(f"{api} is not needed when a module doesn't have any parameter that requires a "
                               "gradient.")
        for n, p in named:
            if p.device.type not in ("cpu", "cuda"):
                raise RuntimeError(f"{api}: parameter {n} is on {p.device}; DDP trains cpu or cuda modules")
        pg.check(api, "parameters " + "; ".join(f"{n}: {describe(p)}" for n, p in named),
                 what="models", verb="has", advice="Every rank must wrap the same model: the same parameters "
                 "(those that require grad), in the same order, with the same shapes, dtypes and device types.")
        if init_sync:
            with no_grad():
                _broadcast_coalesced(pg, [p for _, p in module.named_parameters()] + self._buffers_to_sync())
        d["_reducer"] = _Reducer(self, pg)
        # set to a list to record (kind, index, time.perf_counter()) events: ("ready", param index),
        # ("launch", bucket), ("done", bucket), ("end", None) when the averaged grads are in place
        d["events"] = None

    # -- PyTorch's surface ----------------------------------------------------------------------------
    def forward(self, *inputs, **kwargs):
        r = self._reducer
        r.check_previous_iteration()
        train = is_grad_enabled() and self.require_backward_grad_sync
        if self.broadcast_buffers and self.training and self.process_group.size > 1:
            bufs = self._buffers_to_sync()
            if bufs:
                with no_grad():
                    _broadcast_coalesced(self.process_group, bufs)
        out = self.module(*inputs, **kwargs)
        if train and self.process_group.size > 1:  # one rank: its gradients are already the average
            r.prepare(out if self.find_unused_parameters else None)
        else:
            r.disarm()
        return out

    @contextlib.contextmanager
    def no_sync(self):
        """Inside, backward accumulates gradients locally without communication; the first
        forward-backward after the block synchronises the accumulated gradients."""
        old = self.require_backward_grad_sync
        self.__dict__["require_backward_grad_sync"] = False
        try:
            yield
        finally:
            self.__dict__["require_backward_grad_sync"] = old

    def _buffers_to_sync(self):
        return [b for b in self.module.buffers() if b is not None]

    @property
    def bucket_count(self):
        return len(self._reducer.buckets)

    def extra_repr(self):
        return ""


class _Reducer:
    def __init__(self, ddp, pg):
        self.ddp_ref = weakref.ref(ddp)
        self.pg = pg
        self.size = pg.size
        params = ddp._params
        self.params = params
        self.names = ddp._param_names
        cap = ddp.bucket_bytes_cap
        # buckets in reverse registration order, one (device, dtype) per bucket, the first one small
        self.buckets = []
        self.where = {}  # param index -> (bucket, slot)
        open_ = OrderedDict()  # (device, dtype) -> [param indices], bytes
        for i in reversed(range(len(params))):
            p = params[i]
            key = (p.device, p.dtype)
            cur = open_.setdefault(key, [[], 0])
            cur[0].append(i)
            cur[1] += p.numel() * p.element_size()
            limit = min(_FIRST_BUCKET_BYTES, cap) if not self.buckets else cap
            if cur[1] >= limit:
                self._close(open_.pop(key)[0])
        for idx, _ in open_.values():
            self._close(idx)
        self.armed = False
        self.started = False
        self.next_launch = 0
        self.ready = [False] * len(params)
        self.used = None
        self.handles = []
        me = weakref.ref(self)
        for i, p in enumerate(params):
            self.handles.append(p.register_post_accumulate_grad_hook(_hook(me, i)))

    def _close(self, indices):
        p0 = self.params[indices[0]]
        b = _Bucket(len(self.buckets), [(i, self.params[i]) for i in indices], p0.device, p0.dtype)
        b.transport = self.pg.transport(p0.device, "DistributedDataParallel")
        for slot, (i, _) in enumerate(b.params):
            self.where[i] = (b, slot)
        self.buckets.append(b)

    def __del__(self):
        for h in getattr(self, "handles", ()):
            h.remove()

    def _event(self, kind, index):
        ddp = self.ddp_ref()
        if ddp is not None and ddp.events is not None:
            ddp.events.append((kind, index, time.perf_counter()))

    # -- per iteration ---------------------------------------------------------------------------------
    def check_previous_iteration(self):
        # a forward without a backward is fine; a backward that left some bucket unfinished is not
        if not self.armed or not self.started:
            return
        missing = [self.names[i] for i, r in enumerate(self.ready) if not r]
        idx = " ".join(str(i) for i, r in enumerate(self.ready) if not r)
        self.armed = False
        raise RuntimeError(
            "Expected to have finished reduction in the prior iteration before starting a new one. This error "
            "indicates that your module has parameters that were not used in producing loss. You can enable "
            "unused parameter detection by passing the keyword argument `find_unused_parameters=True` to "
            "`devtensor.nn.parallel.DistributedDataParallel`, and by making sure all `forward` function outputs "
            "participate in calculating loss.\n"
            f"Parameter indices which did not receive grad for rank {self.pg.rank}: {idx}\n"
            f"Parameters which did not receive grad for rank {self.pg.rank}: {', '.join(missing)}")

    def disarm(self):
        self.armed = False

    def prepare(self, outputs):
        self.armed = True
        self.started = False
        self.next_launch = 0
        self.ready = [False] * len(self.params)
        for b in self.buckets:
            b.pending = len(b.params)
            b.work = None
        self.used = None
        if outputs is not None:
            reached = _reachable_leaves(outputs)
            self.used = [id(p) in reached for p in self.params]
            for i, u in enumerate(self.used):
                if not u:
                    self._mark_ready(i, None)

    def on_grad(self, i):
        if not self.armed:
            return  # no_sync(), a backward without a DDP forward, or evaluation: local accumulation
        if self.ready[i]:
            raise RuntimeError(
                f"Expected to mark a variable ready only once. Parameter {self.names[i]} (index {i}) got its "
                "gradient twice in one iteration: a second backward through the same forward, or a parameter "
                "shared between modules. DistributedDataParallel needs one backward per forward.")
        self._mark_ready(i, self.params[i])

    def _mark_ready(self, i, p):
        self.ready[i] = True
        self.started = True
        self._event("ready", i)
        b, slot = self.where[i]
        off = b.offsets[slot]
        n = self.params[i].numel()
        g = None if p is None else p._grad_or_none()
        if g is None:
            b.buffer[off:off + n] = 0
        else:
            b.buffer[off:off + n] = g._data.reshape(-1)
        b.pending -= 1
        if b.pending == 0:
            self._launch_ready()
        elif self.next_launch:
            self._poll()

    def _launch_ready(self):
        while self.next_launch < len(self.buckets) and self.buckets[self.next_launch].pending == 0:
            b = self.buckets[self.next_launch]
            self.pg.count("ddp_all_reduce")
            b.work = b.transport.allreduce(b.buffer, "SUM", True)
            self._event("launch", b.index)
            self.next_launch += 1
        if self.next_launch == len(self.buckets):
            self._finalize()

    def _poll(self):
        """MPI progresses non-blocking collectives only inside MPI calls: test the oldest running bucket."""
        for b in self.buckets[:self.next_launch]:
            if b.work is not None:
                if not b.work.test():
                    return
                self._event("done", b.index)
                b.work.wait()  # completed: makes a cuda current stream wait on its event
                b.work = None  # (its result is read in _finalize)

    def _finalize(self):
        used_anywhere = None
        if self.used is not None:
            flags = np.array(self.used, dtype=np.uint8)
            self.pg.mpi.allreduce(flags, "MAX", False)
            used_anywhere = flags
        for b in self.buckets:
            if b.work is not None:
                b.work.wait()
                b.work = None
                self._event("done", b.index)
            xp = _xp(b.buffer)
            for slot, (i, p) in enumerate(b.params):
                if used_anywhere is not None and not used_anywhere[i]:
                    continue  # no rank used it: its .grad stays as it was (PyTorch)
                off = b.offsets[slot]
                total = b.buffer[off:off + p.numel()].reshape(p._data.shape)
                g = p._grad_or_none()
                if g is None:
                    g = empty(p.shape, dtype=p.dtype, device=p.device)
                    p._set_grad(g)
                xp.divide(total, self.size, out=g._data)  # the average, written where .grad lives: one pass
                g._bump("DistributedDataParallel")
        self.armed = False
        self._event("end", None)


def _hook(reducer_ref, i):
    def hook(p):
        r = reducer_ref()
        if r is not None:
            r.on_grad(i)

    return hook


def _reachable_leaves(outputs):
    """ids of the leaf tensors the autograd graph of `outputs` reaches."""
    seen, leaves, stack = set(), set(), []
    for t in _tensors_in(outputs):
        if t._edge is not None:
            stack.append(t._edge[0])
        elif t._rg:
            leaves.add(id(t))
    while stack:
        n = stack.pop()
        if id(n) in seen:
            continue
        seen.add(id(n))
        for e in n.next:
            if isinstance(e, tuple):
                stack.append(e[0])
            elif e is not None:
                leaves.add(id(e))
    return leaves


def _tensors_in(obj):
    if isinstance(obj, Tensor):
        yield obj
    elif isinstance(obj, (list, tuple)):
        for x in obj:
            yield from _tensors_in(x)
    elif isinstance(obj, dict):
        for x in obj.values():
            yield from _tensors_in(x)


def _broadcast_coalesced(pg, tensors, src=0):
    """Broadcast `tensors` from rank `src`, one collective per (device, dtype) group of them."""
    if pg.size == 1:
        return
    groups = OrderedDict()
    for t in tensors:
        groups.setdefault((t.device, t.dtype), []).append(t)
    for (device, dtype), ts in groups.items():
        n = sum(t.numel() for t in ts)
        flat = empty(n, dtype=dtype, device=device)._data
        off = 0
        for t in ts:
            flat[off:off + t.numel()] = t._data.reshape(-1)
            off += t.numel()
        pg.transport(device, "DistributedDataParallel").broadcast(flat, src, False).wait()
        off = 0
        for t in ts:
            t._data[...] = flat[off:off + t.numel()].reshape(t._data.shape)
            t._bump("broadcast")
            off += t.numel()


def consume_prefix_in_state_dict_if_present(state_dict, prefix):
    """Strip `prefix` (e.g. "module.", what DDP's state_dict adds) from the keys that have it, in
    place, so a DDP checkpoint loads into the bare model (PyTorch's torch.nn.modules.utils helper)."""
    keys = list(state_dict.keys())
    for key in keys:
        if key.startswith(prefix):
            state_dict[key[len(prefix):]] = state_dict.pop(key)
    metadata = getattr(state_dict, "_metadata", None)
    if metadata is not None:
        for key in list(metadata.keys()):
            if len(key) == 0:
                continue
            if key == prefix.replace(".", "") or key.startswith(prefix):
                metadata[key[len(prefix):]] = metadata.pop(key)
