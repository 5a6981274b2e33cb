"""The default process group: which transport serves which device, and the cross-rank check.

A group always holds an MPI communicator (mpi4py): it carries cpu tensors, barriers, the checks
below, and NCCL's unique id. With backend "nccl" the group also opens an NCCL communicator, on the
first cuda collective, for cuda tensors.

The check: before each public collective every rank contributes a 16-byte digest of what it is
calling ("all_reduce(op=SUM, float32[4, 3] on cpu)"), gathered with one small MPI_Allgather; when
the digests differ, the ranks exchange the descriptions (short strings) and all raise the same
RuntimeError naming each rank that differs and what it called. Without it a shape mismatch
reads or writes past a buffer, and a dtype or collective mismatch hangs or garbles data. It costs a
few microseconds per call (DEVTENSOR_DISTRIBUTED_CHECK=0 turns it off); DistributedDataParallel
checks the model once at construction and then runs its buckets unchecked."""
from __future__ import annotations

import hashlib
import os
import sys

import numpy as np

from .mpi import MpiTransport, load_mpi


class ProcessGroup:
    def __init__(self, backend, api):
        MPI = load_mpi(api)
        self.MPI = MPI
        self.backend = backend
        self.comm = MPI.COMM_WORLD.Dup()
        self.rank = self.comm.Get_rank()
        self.size = self.comm.Get_size()
        self.mpi = MpiTransport(MPI, self.comm)
        self._nccl = None
        self.check_enabled = os.environ.get("DEVTENSOR_DISTRIBUTED_CHECK", "1") != "0"
        self.counts = {}  # collective name -> calls made through this group (tests, benches)

    # -- which transport -------------------------------------------------------------------------
    def transport(self, device, api):
        if device.type == "cpu":
            return self.mpi
        if device.type == "cuda":
            if self.backend != "nccl":
                raise RuntimeError(f"{api}: the process group was initialised with backend 'mpi', which carries cpu "
                                   f"tensors; this tensor is on {device}. Use init_process_group('nccl') for cuda "
                                   "tensors (devtensor does not copy them to the host), or move the tensor with .cpu()")
            if self._nccl is None:
                from .nccl import NcclTransport

                self._nccl = NcclTransport(self.comm, self.rank, self.size, device.index or 0, api)
            elif (device.index or 0) != self._nccl.device_index:
                raise RuntimeError(f"{api}: this rank's NCCL communicator is on cuda:{self._nccl.device_index}, "
                                   f"the tensor is on {device}; each rank uses one GPU")
            return self._nccl
        raise RuntimeError(f"{api}: tensors on device {device} cannot be communicated (cpu: MPI, cuda: NCCL)")

    def count(self, name):
        self.counts[name] = self.counts.get(name, 0) + 1

    # -- the cross-rank check --------------------------------------------------------------------
    def check(self, api, desc, what="collectives", verb="called", advice=None):
        """Raise the same RuntimeError on every rank unless all ranks passed the same `desc`."""
        if self.size == 1 or not self.check_enabled:
            return
        mine = np.frombuffer(hashlib.blake2b(desc.encode(), digest_size=16).digest(), dtype=np.uint8)
        every = np.empty((self.size, 16), dtype=np.uint8)
        self.comm.Allgather(mine, every)
        if (every == every[0]).all():
            return
        descs = self.comm.allgather(desc)  # strings only, and only on a mismatch
        lines = [f"rank {r} {verb} {d}" for r, d in enumerate(descs) if d != descs[0]]
        if advice is None:
            advice = ("Every rank must call the same collectives, in the same order, with tensors of the same "
                      "shape, dtype and device type.")
        raise RuntimeError(f"{api}: the ranks' {what} do not match: rank 0 {verb} {descs[0]}, but "
                           + "; ".join(lines) + ". " + advice)

    # -- lifetime ----------------------------------------------------------------------------------
    def close(self):
        if self._nccl is not None:
            self._nccl.close()
            self._nccl = None
        self.comm.Free()

    def abort_on_uncaught_exception(self):
        """An uncaught exception on one rank ends the whole job (MPI_Abort) instead of leaving the
        other ranks waiting in a collective forever. `python -m mpi4py script.py` does this already;
        this covers `mpiexec -n N python script.py` too."""
        if self.size == 1 or getattr(sys.excepthook, "_devtensor_abort", False):
            return
        previous = sys.excepthook
        MPI = self.MPI

        def hook(kind, value, tb):
            try:
                previous(kind, value, tb)
                sys.stderr.flush()
            finally:
                MPI.COMM_WORLD.Abort(1)

        hook._devtensor_abort = True
        sys.excepthook = hook


def describe(t):
    """A tensor as the check and the errors show it: float32[4, 3] on cpu."""
    return f"{t.dtype.__str__().replace('devtensor.', '')}{list(t.shape)} on {t.device.type}"
