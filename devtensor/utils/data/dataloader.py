"""DataLoader: batches, shuffling and collation, in-process.

Batches are collated on the host (cpu tensors); move them to the device in the training loop
(`x.to(device)`), as PyTorch's tutorials do. Workers: `num_workers > 0` is accepted and runs
in-process (documented difference): a TensorDataset batch is one gather, so worker processes would
cost more than they save at the sizes this library targets.
"""
from __future__ import annotations

import numbers

import numpy as np

from ...tensor import Tensor
from .dataset import IterableDataset, TensorDataset, as_generator, permutation


def default_collate(batch, dtype=None):
    """Stack a list of samples PyTorch-style: tensors and numpy arrays are stacked (dtype kept, or cast
    to `dtype` for floating data), numbers become a tensor, dicts/tuples/lists are collated per field."""
    from ...ops.creation import tensor
    from ...ops.shape import stack

    elem = batch[0]
    if isinstance(elem, Tensor):
        out = stack(list(batch))
        return out.to(dtype) if dtype is not None and out.dtype.is_floating_point else out
    if isinstance(elem, np.ndarray):
        out = tensor(np.stack(batch))
        return out.to(dtype) if dtype is not None and out.dtype.is_floating_point else out
    if isinstance(elem, (bool, np.bool_)):
        return tensor(list(batch))
    if isinstance(elem, numbers.Number):
        out = tensor(list(batch))
        return out.to(dtype) if dtype is not None and out.dtype.is_floating_point else out
    if isinstance(elem, str):
        return list(batch)
    if isinstance(elem, dict):
        return {k: default_collate([b[k] for b in batch], dtype) for k in elem}
    if isinstance(elem, (tuple, list)):
        if any(len(b) != len(elem) for b in batch):
            raise RuntimeError("default_collate: each element in the batch should be of equal size")
        return type(elem)(default_collate(list(f), dtype) for f in zip(*batch)) if isinstance(elem, tuple) \
            else [default_collate(list(f), dtype) for f in zip(*batch)]
    raise TypeError(f"default_collate: batch must contain tensors, numpy arrays, numbers, dicts or lists; "
                    f"found {type(elem).__name__}")


class DataLoader:
    def __init__(self, dataset, batch_size=1, shuffle=False, sampler=None, batch_sampler=None, num_workers=0,
                 collate_fn=None, pin_memory=False, drop_last=False, timeout=0, worker_init_fn=None,
                 generator=None, *, dtype=None, prefetch_factor=None, persistent_workers=False):
        if batch_size is not None and (not isinstance(batch_size, numbers.Integral) or isinstance(batch_size, bool)
                                       or batch_size <= 0):
            raise ValueError(f"DataLoader: batch_size should be a positive integer value, but got "
                             f"batch_size={batch_size!r}")
        if not isinstance(num_workers, numbers.Integral) or isinstance(num_workers, bool) or num_workers < 0:
            raise ValueError(f"DataLoader: num_workers option should be a non-negative integer, got {num_workers!r}")
        if sampler is not None and shuffle:
            raise ValueError("DataLoader: sampler option is mutually exclusive with shuffle")
        if batch_sampler is not None and (batch_size != 1 or shuffle or sampler is not None or drop_last):
            # the batch_sampler decides every batch: the other options would be silently ignored
            raise ValueError("DataLoader: batch_sampler option is mutually exclusive with batch_size, shuffle, "
                             "sampler, and drop_last")
        self.dataset = dataset
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.sampler = sampler
        self.batch_sampler = batch_sampler
        self.num_workers = num_workers
        self.collate_fn = collate_fn
        self.drop_last = drop_last
        self.generator = generator
        self.dtype = dtype
        # an int seed becomes one Generator per loader: its epochs differ from each other, and repeat run after run
        self._stream = as_generator(generator, "DataLoader")

    def __len__(self):
        if isinstance(self.dataset, IterableDataset):
            raise TypeError("DataLoader over an IterableDataset has no len()")
        if self.batch_sampler is not None:
            return len(self.batch_sampler)
        n = len(self.sampler) if self.sampler is not None else len(self.dataset)
        if self.batch_size is None:
            return n
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def _order(self):
        if self.sampler is not None:
            return np.asarray(list(iter(self.sampler)), dtype=np.int64)
        n = len(self.dataset)
        if self.shuffle:
            return permutation(self._stream, n)
        return np.arange(n)

    def _batches(self):
        if self.batch_sampler is not None:
            for b in self.batch_sampler:
                yield np.asarray(list(b), dtype=np.int64)
            return
        order = self._order()
        bs = self.batch_size
        if bs is None:
            for i in order:
                yield int(i)
            return
        stop = len(order) - (len(order) % bs if self.drop_last else 0)
        for s in range(0, stop, bs):
            yield order[s:s + bs]

    def __iter__(self):
        if isinstance(self.dataset, IterableDataset):
            yield from self._iter_iterable()
            return
        fast = isinstance(self.dataset, TensorDataset) and self.collate_fn is None and self.batch_size is not None
        collate = self.collate_fn or (lambda b: default_collate(b, self.dtype))
        for idx in self._batches():
            if isinstance(idx, int):
                yield self.dataset[idx]
            elif fast:
                out = self.dataset.gather(idx)
                if self.dtype is not None:
                    out = tuple(t.to(self.dtype) if t.dtype.is_floating_point else t for t in out)
                yield out
            else:
                yield collate([self.dataset[int(i)] for i in idx])

    def _iter_iterable(self):
        collate = self.collate_fn or (lambda b: default_collate(b, self.dtype))
        if self.batch_size is None:
            yield from self.dataset
            return
        buf = []
        for sample in self.dataset:
            buf.append(sample)
            if len(buf) == self.batch_size:
                yield collate(buf)
                buf = []
        if buf and not self.drop_last:
            yield collate(buf)
