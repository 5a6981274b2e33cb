"""torch.distributed's process-group API and collectives on Tensors, over MPI (cpu) and NCCL (cuda).

Every collective writes in place into the tensors it is given, as PyTorch's do, and bumps their
version counters. Non-contiguous tensors are staged through a contiguous copy on their own device;
dtypes a transport cannot reduce are reduced in a wider one (bfloat16 over MPI: float32) or as
bytes (bool: MAX/MIN on uint8), and data movement (broadcast, all_gather) is done on raw bytes, so
every devtensor dtype works."""
from __future__ import annotations

import enum
import importlib.util
import numbers
import os
import sys
import warnings

import numpy as np

from ..tensor import Tensor
from .group import ProcessGroup, describe

_NOT_INITIALIZED = ("Default process group has not been initialized, please make sure to call init_process_group. "
                    "(devtensor: call devtensor.distributed.init_process_group() first, in a script started with "
                    "`mpiexec -n N python -m mpi4py script.py` or `devtensor launch -n N script.py`)")


class ReduceOp(enum.Enum):
    SUM = "SUM"
    AVG = "AVG"
    PRODUCT = "PRODUCT"
    MIN = "MIN"
    MAX = "MAX"

    def __repr__(self):
        return f"ReduceOp.{self.name}"


class _World:
    """dist.group.WORLD: the default group (devtensor has no other groups yet)."""

    def __repr__(self):
        return "<devtensor.distributed.group.WORLD>"


class group:  # noqa: N801 - torch.distributed.group
    WORLD = _World()


_state = {"pg": None}


# ---- the process group -----------------------------------------------------------------------------
def is_available():
    """True: the module is always there; whether a backend works is is_mpi_available() / is_nccl_available()."""
    return True


def is_mpi_available():
    return importlib.util.find_spec("mpi4py") is not None


def is_nccl_available():
    with warnings.catch_warnings():  # CuPy warns when it cannot load libnccl: the answer says so
        warnings.simplefilter("ignore")
        try:
            from cupy.cuda import nccl
        except Exception:  # no CuPy, or CuPy without a usable CUDA
            return False
    return bool(getattr(nccl, "available", True))


def init_process_group(backend=None, init_method=None, timeout=None, world_size=-1, rank=-1, store=None,
                       group_name="", pg_options=None, device_id=None):
    """Join the job's default process group. backend: "mpi" (cpu tensors), "nccl" (cuda tensors over
    NCCL, cpu tensors over MPI), or None (nccl where a GPU and NCCL are available, else mpi). The
    ranks and world size are MPI's: start the script with mpiexec (init_method and store are not
    used; a world_size or rank that disagrees with MPI's is an error)."""
    api = "init_process_group"
    if _state["pg"] is not None:
        raise RuntimeError("trying to initialize the default process group twice!")
    if backend is None:
        from .. import cuda

        backend = "nccl" if cuda.is_available() and is_nccl_available() else "mpi"
    if not isinstance(backend, str) or backend.lower() not in ("mpi", "nccl"):
        raise ValueError(f"{api}: backend must be 'mpi' (cpu tensors) or 'nccl' (cuda tensors), or None to pick; "
                         f"got {backend!r}" + (" (devtensor has no gloo: 'mpi' is its cpu backend)"
                                               if str(backend).lower() == "gloo" else ""))
    backend = backend.lower()
    if backend == "nccl":
        from .nccl import load_nccl

        load_nccl(api)
    pg = ProcessGroup(backend, api)
    for name, given, actual in (("world_size", world_size, pg.size), ("rank", rank, pg.rank)):
        if given is not None and given != -1 and given != actual:
            pg.close()
            raise ValueError(f"{api}: {name}={given} was passed, but MPI says this process is {name} {actual}; "
                             f"devtensor takes ranks from MPI: start the job with mpiexec -n N")
    _state["pg"] = pg
    pg.abort_on_uncaught_exception()
    return None


def is_initialized():
    return _state["pg"] is not None


def destroy_process_group(group=None):
    pg = _state["pg"]
    if pg is None:
        raise ValueError(_NOT_INITIALIZED)
    _state["pg"] = None
    pg.close()


def _default(group, api):
    pg = _state["pg"]
    if pg is None:
        raise ValueError(f"{api}: {_NOT_INITIALIZED}")
    if group is not None and not isinstance(group, _World) and group is not pg:
        raise NotImplementedError(f"{api}: only the default group (group=None) is supported; devtensor has no "
                                  "new_group() yet")
    return pg


def _group_for_ddp(api):
    """The default ProcessGroup itself (DistributedDataParallel talks to its transports)."""
    return _default(None, api)


def get_rank(group=None):
    return _default(group, "get_rank").rank


def get_world_size(group=None):
    return _default(group, "get_world_size").size


def get_backend(group=None):
    return _default(group, "get_backend").backend


def get_local_rank():
    """This process's index among the ranks on its machine (for picking its GPU: cuda:{local rank}).
    Not in torch.distributed, where torchrun sets LOCAL_RANK; under MPI it comes from MPI itself."""
    pg = _default(None, "get_local_rank")
    local = getattr(pg, "_local_rank", None)
    if local is None:
        for var in ("MPI_LOCALRANKID", "OMPI_COMM_WORLD_LOCAL_RANK", "LOCAL_RANK"):
            if os.environ.get(var, "").isdigit():
                local = int(os.environ[var])
                break
        else:
            node = pg.comm.Split_type(pg.MPI.COMM_TYPE_SHARED)
            local = node.Get_rank()
            node.Free()
        pg._local_rank = local
    return local


# ---- work handles --------------------------------------------------------------------------------
class Work:
    """What a collective with async_op=True returns. wait() blocks until the collective is done on
    cpu (MPI); on cuda (NCCL) it makes the current stream wait for it, as PyTorch does."""

    __slots__ = ("_handle", "_after", "_tensors", "_done")

    def __init__(self, handle, after, tensors):
        self._handle, self._after, self._tensors, self._done = handle, after, tensors, False

    def _finish(self):
        self._done = True
        if self._after is not None:
            self._after()
        for t in self._tensors:
            t._bump("distributed")

    def wait(self, timeout=None):
        if not self._done:
            self._handle.wait()
            self._finish()
        return True

    def is_completed(self):
        if not self._done and self._handle.test():
            self._handle.wait()  # completed: returns at once (MPI) / an already-met event (NCCL)
            self._finish()
        return self._done

    def is_success(self):
        return self.is_completed()

    def result(self):
        self.wait()
        return list(self._tensors)


def _run(handle, after, tensors, async_op):
    w = Work(handle, after, tensors)
    if async_op:
        return w
    w.wait()
    return None


# ---- argument checks ---------------------------------------------------------------------------------
def _tensor(t, api, what="tensor"):
    if not isinstance(t, Tensor):
        raise TypeError(f"{api}: {what} must be a devtensor Tensor, got {type(t).__name__}")
    return t


def _op(op, api):
    if isinstance(op, ReduceOp):
        return op.value
    if isinstance(op, str) and op.upper() in ReduceOp.__members__:
        return op.upper()
    raise ValueError(f"{api}: op must be a ReduceOp (SUM, AVG, PRODUCT, MIN, MAX), got {op!r}")


def _same(a, b, api, what):
    if a.shape != b.shape or a.dtype != b.dtype or a.device != b.device:
        raise ValueError(f"{api}: {what} is {describe(b)} but the input is {describe(a)}; they must match "
                         "in shape, dtype and device")


def _xp(a):
    """numpy or cupy, whichever module `a` belongs to (a cupy array exists only once cupy is imported)."""
    cupy = sys.modules.get("cupy")
    return cupy if cupy is not None and isinstance(a, cupy.ndarray) else np


def _contiguous(a):
    return a if a.flags.c_contiguous else _xp(a).ascontiguousarray(a)


def _floating(dt):
    return dt.kind in "fc" or dt.name == "bfloat16"  # ml_dtypes' bfloat16 is kind "V"


def _reduce_buffer(tr, a, op, api, size):
    """(buffer to reduce in place, op to send, finish) for array `a`: finish() divides for AVG where
    the transport cannot, and writes the result back into `a` when the buffer is a stand-in."""
    dt = a.dtype
    if op == "AVG" and not _floating(dt):
        raise TypeError(f"{api}: ReduceOp.AVG needs a floating-point tensor, got {dt}; use SUM and divide")
    work = _contiguous(a)
    if dt.kind == "b":  # logical or / and on bytes
        buf, op = work.view(np.uint8), ("MAX" if op in ("SUM", "MAX") else "MIN")
    elif tr.reducible(dt):
        buf = work
    elif _floating(dt):  # bfloat16 over MPI
        buf = work.astype(np.float32)
    else:
        raise TypeError(f"{api}: the {tr.name} backend cannot reduce {dt} tensors")
    divide = op == "AVG" and not tr.native_avg
    send = "SUM" if divide else op

    def finish():
        if divide:
            buf[...] /= size
        if buf is not work and buf.dtype != np.uint8:
            work[...] = buf.astype(dt)
        if work is not a:
            a[...] = work

    return buf, send, finish


def _send_buffer(tr, a, dt):
    """`a` as a contiguous array in the dtype _reduce_buffer reduces `dt` in (only read: no copy when
    it already is one)."""
    if dt.kind == "b":
        return _contiguous(a).view(np.uint8)
    if not tr.reducible(dt) and _floating(dt):
        return a.astype(np.float32)
    return _contiguous(a)


# ---- collectives -------------------------------------------------------------------------------------
def all_reduce(tensor, op=ReduceOp.SUM, group=None, async_op=False):
    """Reduce `tensor` over all ranks, in place on every rank (SUM, AVG, PRODUCT, MIN, MAX)."""
    api = "all_reduce"
    pg = _default(group, api)
    op = _op(op, api)
    _tensor(tensor, api)
    pg.check(api, f"all_reduce(op={op}, {describe(tensor)})")
    tr = pg.transport(tensor.device, api)
    buf, send, finish = _reduce_buffer(tr, tensor._data, op, api, pg.size)
    pg.count(api)
    return _run(tr.allreduce(buf, send, async_op), finish, [tensor], async_op)


def broadcast(tensor, src, group=None, async_op=False):
    """Copy rank `src`'s tensor into `tensor` on every other rank."""
    api = "broadcast"
    pg = _default(group, api)
    _tensor(tensor, api)
    if isinstance(src, bool) or not isinstance(src, numbers.Integral) or not 0 <= src < pg.size:
        raise ValueError(f"{api}: src must be a rank of the group (0..{pg.size - 1}), got {src!r}")
    pg.check(api, f"broadcast(src={int(src)}, {describe(tensor)})")
    tr = pg.transport(tensor.device, api)
    a = tensor._data
    work = _contiguous(a)
    pg.count(api)

    def finish():
        if work is not a:
            a[...] = work

    return _run(tr.broadcast(work, int(src), async_op), finish, [tensor], async_op)


def all_gather(tensor_list, tensor, group=None, async_op=False):
    """tensor_list[r] receives rank r's `tensor` (one output tensor per rank, each like `tensor`)."""
    api = "all_gather"
    pg = _default(group, api)
    _tensor(tensor, api)
    if not isinstance(tensor_list, (list, tuple)) or len(tensor_list) != pg.size:
        n = len(tensor_list) if isinstance(tensor_list, (list, tuple)) else type(tensor_list).__name__
        raise ValueError(f"{api}: tensor_list must be a list of one tensor per rank ({pg.size}), got {n}")
    for i, o in enumerate(tensor_list):
        _same(tensor, _tensor(o, api, f"tensor_list[{i}]"), api, f"tensor_list[{i}]")
    pg.check(api, f"all_gather({describe(tensor)})")
    tr = pg.transport(tensor.device, api)
    a = tensor._data
    send = _contiguous(a)
    recv = _xp(a).empty((pg.size,) + a.shape, dtype=a.dtype)
    pg.count(api)

    def finish():
        for i, o in enumerate(tensor_list):
            o._data[...] = recv[i]

    return _run(tr.allgather(send, recv, async_op), finish, list(tensor_list), async_op)


def all_gather_into_tensor(output_tensor, input_tensor, group=None, async_op=False):
    """output_tensor (world_size * input's elements: rank-stacked or concatenated along dim 0)
    receives every rank's input_tensor in rank order."""
    api = "all_gather_into_tensor"
    pg = _default(group, api)
    _tensor(output_tensor, api, "output_tensor")
    _tensor(input_tensor, api, "input_tensor")
    if (output_tensor.numel() != pg.size * input_tensor.numel() or output_tensor.dtype != input_tensor.dtype
            or output_tensor.device != input_tensor.device):
        raise ValueError(f"{api}: output_tensor must hold world_size ({pg.size}) x the input's elements in its "
                         f"dtype and device; got output {describe(output_tensor)}, input {describe(input_tensor)}")
    pg.check(api, f"all_gather_into_tensor({describe(input_tensor)})")
    tr = pg.transport(input_tensor.device, api)
    out = output_tensor._data
    recv = _contiguous(out) if out.flags.c_contiguous else _xp(out).empty(out.shape, dtype=out.dtype)
    pg.count(api)

    def finish():
        if recv is not out:
            out[...] = recv

    return _run(tr.allgather(_contiguous(input_tensor._data), recv, async_op), finish, [output_tensor], async_op)


def _reduce_scatter(api, output, send_arrays, op, group, async_op, desc):
    pg = _default(group, api)
    pg.check(api, desc)
    tr = pg.transport(output.device, api)
    buf, send_op, finish = _reduce_buffer(tr, output._data, op, api, pg.size)
    xp = _xp(buf)
    dt = output._data.dtype
    send = xp.concatenate([_send_buffer(tr, s, dt).reshape(-1) for s in send_arrays]) \
        if len(send_arrays) > 1 else _send_buffer(tr, send_arrays[0], dt).reshape(-1)
    pg.count(api)
    return _run(tr.reduce_scatter(send, buf, send_op, async_op), finish, [output], async_op)


def reduce_scatter(output, input_list, op=ReduceOp.SUM, group=None, async_op=False):
    """output on rank r = the reduction over ranks of input_list[r]."""
    api = "reduce_scatter"
    pg = _default(group, api)
    op = _op(op, api)
    _tensor(output, api, "output")
    if not isinstance(input_list, (list, tuple)) or len(input_list) != pg.size:
        n = len(input_list) if isinstance(input_list, (list, tuple)) else type(input_list).__name__
        raise ValueError(f"{api}: input_list must be a list of one tensor per rank ({pg.size}), got {n}")
    for i, x in enumerate(input_list):
        _same(output, _tensor(x, api, f"input_list[{i}]"), api, f"input_list[{i}]")
    return _reduce_scatter(api, output, [x._data for x in input_list], op, group, async_op,
                           f"reduce_scatter(op={op}, {describe(output)})")


def reduce_scatter_tensor(output, input, op=ReduceOp.SUM, group=None, async_op=False):  # noqa: A002 - PyTorch's name
    """output on rank r = the reduction over ranks of the r-th of world_size equal chunks of input."""
    api = "reduce_scatter_tensor"
    pg = _default(group, api)
    op = _op(op, api)
    _tensor(output, api, "output")
    _tensor(input, api, "input")
    if input.numel() != pg.size * output.numel() or input.dtype != output.dtype or input.device != output.device:
        raise ValueError(f"{api}: input must hold world_size ({pg.size}) x the output's elements in its dtype and "
                         f"device; got input {describe(input)}, output {describe(output)}")
    return _reduce_scatter(api, output, [input._data], op, group, async_op,
                           f"reduce_scatter_tensor(op={op}, {describe(output)})")


def barrier(group=None, async_op=False, device_ids=None):
    """Wait until every rank has reached the barrier (an MPI barrier, whatever the backend)."""
    pg = _default(group, "barrier")
    pg.count("barrier")
    return _run(pg.mpi.barrier(async_op), None, [], async_op)
