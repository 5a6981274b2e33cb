"""A rank that raises must end the whole job, not leave the others waiting in a collective.

    mpiexec -n 2 python -m mpi4py tests/distributed/fail_checks.py   (mpi4py's runner aborts the job)
    mpiexec -n 2 python tests/distributed/fail_checks.py             (init_process_group's excepthook does)

Rank 1 raises right after init; rank 0 enters an all_reduce that can never complete. The test
expects a non-zero exit within seconds and rank 1's error in the output."""
from __future__ import annotations

import devtensor as dt
import devtensor.distributed as dist

dist.init_process_group("mpi")
if dist.get_rank() == 1:
    raise RuntimeError("rank 1 fails on purpose")
dist.all_reduce(dt.ones(4))  # waits for rank 1 forever, unless the job is aborted
print("rank 0 finished: the job was not aborted", flush=True)
