"""devtensor.distributed: torch.distributed's process group and collectives, over existing engines:
MPI (mpi4py; `pip install 'devtensor[mpi]'` brings the mpich wheel and its mpiexec) for cpu tensors,
NCCL (CuPy's cupy.cuda.nccl, its unique id shared over MPI) for cuda tensors.

    import devtensor.distributed as dist
    dist.init_process_group("mpi")              # started by: mpiexec -n 4 python -m mpi4py train.py
    dist.all_reduce(t, op=dist.ReduceOp.AVG)     # in place on every rank
    work = dist.all_reduce(t, async_op=True); ...; work.wait()

Modules: api (the functions below), group (the default group, its transports and the cross-rank
check), mpi and nccl (the transports). DistributedDataParallel is devtensor.nn.parallel's; the
sampler is devtensor.utils.data.distributed's.
"""
from .api import (ReduceOp, Work, all_gather, all_gather_into_tensor, all_reduce, barrier, broadcast,
                  destroy_process_group, get_backend, get_local_rank, get_rank, get_world_size, group,
                  init_process_group, is_available, is_initialized, is_mpi_available, is_nccl_available,
                  reduce_scatter, reduce_scatter_tensor)

__all__ = ["ReduceOp", "Work", "group", "init_process_group", "destroy_process_group", "is_available",
           "is_initialized", "is_mpi_available", "is_nccl_available", "get_rank", "get_world_size",
           "get_backend", "get_local_rank", "barrier", "all_reduce", "broadcast", "all_gather",
           "all_gather_into_tensor", "reduce_scatter", "reduce_scatter_tensor"]
