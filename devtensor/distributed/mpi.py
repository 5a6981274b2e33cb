"""The MPI transport (mpi4py) for cpu tensors: collectives on contiguous numpy arrays, passed to MPI
through the buffer protocol (no pickling of arrays, no staging copies), blocking or non-blocking.

mpi4py is imported here only, and only when a process group is made: `from mpi4py import MPI`
initialises MPI. Each group works on its own duplicate of COMM_WORLD, so a script's own mpi4py
traffic on COMM_WORLD can never be matched against devtensor's collectives.

Non-blocking collectives (Iallreduce, ...) make progress only inside MPI calls (MPICH runs no
progress thread unless MPIR_CVAR_ASYNC_PROGRESS=1): `Handle.test()` is such a call, and
DistributedDataParallel calls it on its in-flight buckets while backward runs."""
from __future__ import annotations

import numpy as np


def load_mpi(api):
    """mpi4py's MPI module, or a RuntimeError that says how to install it."""
    try:
        from mpi4py import MPI
    except ImportError as e:
        raise RuntimeError(f"{api}: the 'mpi' backend needs mpi4py and an MPI library, which are not importable "
                           f"here ({e}); install them with: pip install 'devtensor[mpi]' (mpi4py and the mpich "
                           "wheel, which also provides mpiexec), or use a system MPI with mpi4py built "
                           "against it") from None
    return MPI


class Handle:
    """One MPI request (or None for a completed blocking call)."""

    __slots__ = ("req",)

    def __init__(self, req):
        self.req = req

    def test(self):
        return self.req is None or bool(self.req.Test())

    def wait(self):
        if self.req is not None:
            self.req.Wait()


_DONE = Handle(None)


class MpiTransport:
    name = "mpi"
    native_avg = False  # MPI has no average: SUM, then divide by the world size

    def __init__(self, MPI, comm):
        self.MPI = MPI
        self.comm = comm
        self.rank = comm.Get_rank()
        self.size = comm.Get_size()
        self._ops = {"SUM": MPI.SUM, "PRODUCT": MPI.PROD, "MIN": MPI.MIN, "MAX": MPI.MAX}

    # dtypes MPI reduces natively (float16 through MPICH's extension); bfloat16 is reduced in float32
    # by the caller, bool as uint8 MAX / MIN
    @staticmethod
    def reducible(dtype):
        return dtype.kind in "fiuc" and dtype.name != "bfloat16"

    def allreduce(self, a, op, async_op):
        mop = self._ops[op]
        if async_op:
            return Handle(self.comm.Iallreduce(self.MPI.IN_PLACE, a, mop))
        self.comm.Allreduce(self.MPI.IN_PLACE, a, mop)
        return _DONE

    def broadcast(self, a, root, async_op):
        b = _bytes(a)
        if async_op:
            return Handle(self.comm.Ibcast(b, root=root))
        self.comm.Bcast(b, root=root)
        return _DONE

    def allgather(self, send, recv, async_op):
        s, r = _bytes(send), _bytes(recv)
        if async_op:
            return Handle(self.comm.Iallgather(s, r))
        self.comm.Allgather(s, r)
        return _DONE

    def reduce_scatter(self, send, recv, op, async_op):
        mop = self._ops[op]
        if async_op:
            return Handle(self.comm.Ireduce_scatter_block(send, recv, mop))
        self.comm.Reduce_scatter_block(send, recv, mop)
        return _DONE

    def barrier(self, async_op):
        if async_op:
            return Handle(self.comm.Ibarrier())
        self.comm.Barrier()
        return _DONE

    def close(self):
        pass


def _bytes(a):
    """A contiguous array as raw bytes: data movement needs no MPI datatype (bfloat16, bool, ...)."""
    return a.reshape(-1).view(np.uint8)
