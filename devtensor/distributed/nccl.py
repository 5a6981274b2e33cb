"""The NCCL transport (CuPy's cupy.cuda.nccl) for cuda tensors: collectives on device pointers, on a
communication stream of their own; nothing is copied to the host.

Set-up: rank 0 makes the NCCL unique id, MPI broadcasts it (a tuple of ints, the only thing MPI
carries for NCCL), every rank builds its NcclCommunicator on the device of the first cuda tensor it
communicates (each rank must use its own GPU: `cuda:{dist.get_local_rank()}`).

Streams follow PyTorch: a collective waits (on the GPU) for the work already queued on the current
stream, runs on the communication stream, and
  * blocking form: the current stream waits for it, the host does not;
  * async_op=True: Work.wait() makes the current stream wait; Work.is_completed() asks the event.
Arrays a collective reads or writes are kept alive until its event has completed, so CuPy's pool
cannot hand their memory to the compute stream while NCCL still uses it."""
from __future__ import annotations

from collections import deque


def load_nccl(api):
    """(cupy, cupy.cuda.nccl), or a RuntimeError that says what is missing."""
    try:
        import cupy
        from cupy.cuda import nccl
    except ImportError as e:
        raise RuntimeError(f"{api}: the 'nccl' backend needs CuPy with NCCL (pip install 'devtensor[cuda]' and "
                           f"the NCCL library, e.g. pip install nvidia-nccl-cu13): {e}") from None
    if not getattr(nccl, "available", True):
        raise RuntimeError(f"{api}: CuPy is installed but cannot load the NCCL library (libnccl.so.2); install "
                           "it, e.g. pip install nvidia-nccl-cu13, or use backend='mpi' with cpu tensors")
    return cupy, nccl


class Handle:
    __slots__ = ("event", "transport")

    def __init__(self, event, transport):
        self.event, self.transport = event, transport

    def test(self):
        return bool(self.event.done)

    def wait(self):
        """The current stream waits for the collective (no host synchronisation, as in PyTorch)."""
        self.transport.cp.cuda.get_current_stream().wait_event(self.event)


class NcclTransport:
    name = "nccl"

    def __init__(self, mpi_comm, rank, size, device_index, api):
        cp, nccl = load_nccl(api)
        self.cp, self.nccl = cp, nccl
        self.rank, self.size, self.device_index = rank, size, device_index
        uid = nccl.get_unique_id() if rank == 0 else None
        uid = mpi_comm.bcast(uid, root=0)  # a tuple of ints: the only thing that goes over MPI
        with cp.cuda.Device(device_index):
            self.comm = nccl.NcclCommunicator(size, uid, rank)
            self.stream = cp.cuda.Stream(non_blocking=True)
        self._ops = {"SUM": nccl.NCCL_SUM, "PRODUCT": nccl.NCCL_PROD, "MIN": nccl.NCCL_MIN, "MAX": nccl.NCCL_MAX}
        avg = getattr(nccl, "NCCL_AVG", None)  # NCCL >= 2.10
        self.native_avg = avg is not None
        if avg is not None:
            self._ops["AVG"] = avg
        self._types = {}
        for np_name, nccl_name in (("int8", "NCCL_INT8"), ("uint8", "NCCL_UINT8"), ("int32", "NCCL_INT32"),
                                   ("uint32", "NCCL_UINT32"), ("int64", "NCCL_INT64"), ("uint64", "NCCL_UINT64"),
                                   ("float16", "NCCL_FLOAT16"), ("float32", "NCCL_FLOAT32"),
                                   ("float64", "NCCL_FLOAT64"), ("bfloat16", "NCCL_BFLOAT16")):
            if hasattr(nccl, nccl_name):
                self._types[np_name] = getattr(nccl, nccl_name)
        self._inflight = deque()  # (event, arrays kept alive until it completes)

    def reducible(self, dtype):
        return dtype.name in self._types

    # -- the stream protocol around every collective --------------------------------------------
    def _begin(self):
        cp = self.cp
        ready = cp.cuda.Event(disable_timing=True)
        ready.record(cp.cuda.get_current_stream())
        self.stream.wait_event(ready)
        return self.stream.ptr

    def _end(self, async_op, keep):
        cp = self.cp
        done = cp.cuda.Event(disable_timing=True)
        done.record(self.stream)
        inflight = self._inflight
        while inflight and inflight[0][0].done:
            inflight.popleft()
        inflight.append((done, keep))
        h = Handle(done, self)
        if not async_op:
            h.wait()
        return h

    def _typed(self, a):
        t = self._types.get(a.dtype.name)
        if t is None:
            raise TypeError(f"NCCL cannot reduce {a.dtype} arrays")
        return t, a.size

    @staticmethod
    def _raw(a):
        """Any dtype as bytes, for data movement (bool, int16, ...)."""
        return a.size * a.dtype.itemsize

    # -- collectives -------------------------------------------------------------------------------
    def allreduce(self, a, op, async_op):
        t, n = self._typed(a)
        s = self._begin()
        self.comm.allReduce(a.data.ptr, a.data.ptr, n, t, self._ops[op], s)
        return self._end(async_op, (a,))

    def broadcast(self, a, root, async_op):
        s = self._begin()
        self.comm.broadcast(a.data.ptr, a.data.ptr, self._raw(a), self.nccl.NCCL_UINT8, root, s)
        return self._end(async_op, (a,))

    def allgather(self, send, recv, async_op):
        s = self._begin()
        self.comm.allGather(send.data.ptr, recv.data.ptr, self._raw(send), self.nccl.NCCL_UINT8, s)
        return self._end(async_op, (send, recv))

    def reduce_scatter(self, send, recv, op, async_op):
        t, n = self._typed(recv)
        s = self._begin()
        self.comm.reduceScatter(send.data.ptr, recv.data.ptr, n, t, self._ops[op], s)
        return self._end(async_op, (send, recv))

    def close(self):
        try:
            self.stream.synchronize()
        finally:
            self._inflight.clear()
            self.comm.destroy()
