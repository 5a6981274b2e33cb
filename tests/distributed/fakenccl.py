"""A stand-in for CuPy's NCCL, for testing devtensor's NCCL adapter without a GPU.

install() puts the kernel emulator's stand-in CuPy (ci/kernel_emulator/fakecupy.py: "device" arrays
are host arrays whose .data.ptr is their address) in sys.modules, and adds what the adapter uses on
top: cupy.cuda.Stream / Event / get_current_stream (host-synchronous: every event is complete at
once) and cupy.cuda.nccl, whose NcclCommunicator does each collective over MPI on the memory
behind the pointers it is given, with NCCL's signatures (pointers, element counts, NCCL datatypes
and ops as ints, a stream pointer). It checks what a real NCCL would trip over: every pointer and
count an int, the unique id the same tuple on every rank, the communicator's size and rank MPI's.
CALLS records each call (name, sendbuf pointer, count, datatype) for the tests."""
from __future__ import annotations

import ctypes
import sys
import types
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]

NCCL_INT8, NCCL_UINT8, NCCL_INT32, NCCL_UINT32, NCCL_INT64, NCCL_UINT64 = 0, 1, 2, 3, 4, 5
NCCL_FLOAT16, NCCL_FLOAT32, NCCL_FLOAT64, NCCL_BFLOAT16 = 6, 7, 8, 9
NCCL_SUM, NCCL_PROD, NCCL_MAX, NCCL_MIN, NCCL_AVG = 0, 1, 2, 3, 4
_TYPES = {NCCL_INT8: np.int8, NCCL_UINT8: np.uint8, NCCL_INT32: np.int32, NCCL_UINT32: np.uint32,
          NCCL_INT64: np.int64, NCCL_UINT64: np.uint64, NCCL_FLOAT16: np.float16, NCCL_FLOAT32: np.float32,
          NCCL_FLOAT64: np.float64}
CALLS = []


def count(name):
    return sum(1 for c in CALLS if c[0] == name)


def _int(name, v):
    if isinstance(v, bool) or not isinstance(v, int):
        raise TypeError(f"fake NCCL: {name} must be an int (a pointer or a count), got {type(v).__name__}")
    return v


def _view(ptr, n, datatype):
    dtype = np.dtype(_TYPES[datatype])
    if n == 0:
        return np.empty(0, dtype)
    raw = (ctypes.c_char * (n * dtype.itemsize)).from_address(_int("pointer", ptr))
    return np.frombuffer(raw, dtype=dtype, count=n)


class NcclCommunicator:
    def __init__(self, ndev, commId, rank):
        from mpi4py import MPI

        self._MPI = MPI
        self._comm = MPI.COMM_WORLD.Dup()
        ids = self._comm.allgather(commId)
        if not isinstance(commId, tuple) or any(i != ids[0] for i in ids):
            raise RuntimeError(f"fake NCCL: the ranks' unique ids differ: {ids}")
        if (ndev, rank) != (self._comm.Get_size(), self._comm.Get_rank()):
            raise RuntimeError(f"fake NCCL: NcclCommunicator({ndev}, id, {rank}) in an MPI job of "
                               f"{self._comm.Get_size()} at rank {self._comm.Get_rank()}")
        self._ops = {NCCL_SUM: MPI.SUM, NCCL_PROD: MPI.PROD, NCCL_MAX: MPI.MAX, NCCL_MIN: MPI.MIN, NCCL_AVG: MPI.SUM}

    def rank_id(self):
        return self._comm.Get_rank()

    def size(self):
        return self._comm.Get_size()

    def allReduce(self, sendbuf, recvbuf, count, datatype, op, stream):
        CALLS.append(("allReduce", sendbuf, _int("count", count), datatype))
        _int("stream", stream)
        send, recv = _view(sendbuf, count, datatype), _view(recvbuf, count, datatype)
        self._comm.Allreduce(self._MPI.IN_PLACE if sendbuf == recvbuf else send, recv, self._ops[op])
        if op == NCCL_AVG:
            recv /= self._comm.Get_size()

    def broadcast(self, sendbuff, recvbuff, count, datatype, root, stream):
        CALLS.append(("broadcast", sendbuff, _int("count", count), datatype))
        recv = _view(recvbuff, count, datatype)
        if sendbuff != recvbuff and self._comm.Get_rank() == root:
            recv[...] = _view(sendbuff, count, datatype)
        self._comm.Bcast(recv, root=_int("root", root))

    def allGather(self, sendbuf, recvbuf, count, datatype, stream):
        CALLS.append(("allGather", sendbuf, _int("count", count), datatype))
        self._comm.Allgather(_view(sendbuf, count, datatype),
                             _view(recvbuf, count * self._comm.Get_size(), datatype))

    def reduceScatter(self, sendbuf, recvbuf, recvcount, datatype, op, stream):
        CALLS.append(("reduceScatter", sendbuf, _int("count", recvcount), datatype))
        recv = _view(recvbuf, recvcount, datatype)
        self._comm.Reduce_scatter_block(_view(sendbuf, recvcount * self._comm.Get_size(), datatype), recv,
                                        self._ops[op])
        if op == NCCL_AVG:
            recv /= self._comm.Get_size()

    def destroy(self):
        self._comm.Free()


def get_unique_id():
    return tuple(range(128))


class Stream:
    _next = [0x1000]

    def __init__(self, null=False, non_blocking=False, ptds=False):
        Stream._next[0] += 0x100
        self.ptr = 0 if null else Stream._next[0]

    def wait_event(self, event):
        if not isinstance(event, Event) or not event.recorded:
            raise RuntimeError("fake CUDA: waiting on an event that was never recorded")

    def synchronize(self):
        pass


class Event:
    def __init__(self, block=False, disable_timing=False, interprocess=False):
        self.recorded = False

    def record(self, stream=None):
        self.recorded = True

    @property
    def done(self):
        return self.recorded

    def synchronize(self):
        pass


def install():
    """The kernel emulator's stand-in CuPy plus the stream, event and NCCL pieces above."""
    sys.path.insert(0, str(ROOT / "ci" / "kernel_emulator"))
    import fakecupy

    cp = fakecupy.install()
    Stream.null = Stream(null=True)
    current = Stream(null=True)
    nccl = types.ModuleType("cupy.cuda.nccl")
    for k, v in dict(globals()).items():
        if k.startswith("NCCL_") or k in ("NcclCommunicator", "get_unique_id"):
            setattr(nccl, k, v)
    nccl.available = True
    cuda = cp.cuda
    cuda.Stream, cuda.Event, cuda.nccl = Stream, Event, nccl
    cuda.get_current_stream = lambda device=None: current
    mod = types.ModuleType("cupy.cuda")
    mod.__dict__.update(vars(cuda))
    cp.cuda = mod
    sys.modules["cupy.cuda"] = mod
    sys.modules["cupy.cuda.nccl"] = nccl
    return cp
