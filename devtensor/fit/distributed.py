"""fit.Model around a DistributedDataParallel module: what changes in a data-parallel job.

    net = DDP(Net())                               # the user wraps the net, as in PyTorch
    model = dt.fit.Model(net); model.compile(...)
    model.fit(x, y, batch_size=64, epochs=5)       # the same call on every rank

  * tensors x, y are split between the ranks, DistributedSampler-style: each epoch one permutation
    (the same on every rank: its seed comes from rank 0), padded to a multiple of the world size,
    rank r takes every world_size-th sample from position r; so every rank runs the same number of
    steps, and batch_size is per rank (the global batch is world_size x batch_size). Evaluation
    (validation data, evaluate()) takes the ranks' shares without padding. A loader is used as
    given: give it a DistributedSampler;
  * the epoch's loss and metrics are sample-weighted means over all ranks' samples (one
    all-reduce of the sums per epoch), so every rank's History holds the same numbers;
  * only rank 0 draws progress bars and prints.
fit(), evaluate() of such a Model are collective: call them on every rank. predict() runs on the
whole data on each rank. Save from one rank: `if dist.get_rank() == 0: model.save_weights(path)`
(the keys carry DDP's "module." prefix; nn.parallel.consume_prefix_in_state_dict_if_present strips it).
"""
from __future__ import annotations

from .. import distributed as dist
from ..dtypes import float64, int64
from ..nn.parallel import DistributedDataParallel
from ..ops.creation import as_tensor, randint, tensor, zeros
from ..ops.shape import cat
from ..tensor import Tensor
from ..utils.data.distributed import DistributedSampler
from . import data


def _job(module):
    """The process group when `module` is a DDP module in a job of several ranks, else None."""
    if isinstance(module, DistributedDataParallel) and module.process_group.size > 1:
        return module.process_group
    return None


def verbose(module, level):
    """Progress bars and lines on rank 0 only."""
    pg = _job(module)
    return level if pg is None or pg.rank == 0 else 0


def make_batches(module, who, x, y, batch_size, shuffle, loader=None, pad=True):
    """data.make_batches, with tensors x, y split between the ranks of a DDP job (see above)."""
    pg = _job(module)
    if pg is None or loader is not None or not isinstance(data._as_tensor(x), Tensor):
        return data.make_batches(who, x, y, batch_size, shuffle, loader=loader)
    x, y = data._as_tensor(x), data._as_tensor(y)
    if not isinstance(y, Tensor):
        return data.make_batches(who, x, y, batch_size, shuffle)  # raises its error about y
    n = data._check_lengths(who, x, y)
    batch_size = data.check_batch_size(batch_size, who)
    seed = tensor([int(randint(0, 2**31 - 1, (1,)).item()) if shuffle else 0], dtype=int64)
    dist.broadcast(seed, src=0)  # one permutation for all ranks
    sampler = DistributedSampler(range(n), num_replicas=pg.size, rank=pg.rank, shuffle=shuffle,
                                 seed=int(seed.item()))
    mine = sampler.num_samples if pad else len(range(pg.rank, n, pg.size))
    epochs = [0]

    def batches():
        sampler.set_epoch(epochs[0])
        epochs[0] += 1
        order = list(sampler) if pad else list(range(pg.rank, n, pg.size))
        idx = as_tensor(order, dtype=int64, device=x.device)
        for start in range(0, len(order), batch_size):
            sel = idx[start:start + batch_size]
            yield x[sel], y[sel]

    return data.Batches(batches, -(-mine // batch_size))


def validation_batches(module, who, validation_data, batch_size):
    if _job(module) is not None and isinstance(validation_data, (tuple, list)) and len(validation_data) == 2 \
            and all(isinstance(data._as_tensor(v), Tensor) for v in validation_data):
        return make_batches(module, who + " (validation_data)", *validation_data, batch_size, shuffle=False,
                            pad=False)
    return data.validation_batches(who, validation_data, batch_size)


def reduce_meter(module, meter):
    """Sum a RunningMean's sums and count over the ranks (in place): every rank then reports the
    mean over all ranks' samples."""
    pg = _job(module)
    if pg is None:
        return
    device = data.model_device(module)
    sums = meter._sums if meter._sums is not None else zeros(len(meter.names), dtype=float64, device=device)
    both = cat([sums.to(float64), tensor([float(meter.count)], dtype=float64, device=sums.device)])
    dist.all_reduce(both)
    meter._sums, meter.count = both[:-1], int(both[-1].item())
