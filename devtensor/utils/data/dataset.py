"""Dataset types. TensorDataset indexes its tensors with a whole batch of indices at once, so the
DataLoader's fast path gathers a batch in one op per tensor instead of one Python call per sample."""
from __future__ import annotations

import bisect
import numbers

import numpy as np

from ...tensor import Tensor


class Dataset:
    """Map-style dataset: implement __getitem__(i) and __len__()."""

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__} must implement __getitem__")

    def __add__(self, other):
        return ConcatDataset([self, other])


class IterableDataset(Dataset):
    """Iterable-style dataset: implement __iter__()."""

    def __iter__(self):
        raise NotImplementedError(f"{type(self).__name__} must implement __iter__")


class TensorDataset(Dataset):
    def __init__(self, *tensors):
        if not tensors:
            raise ValueError("TensorDataset needs at least one tensor")
        n = tensors[0].shape[0] if tensors[0].ndim else None
        for i, t in enumerate(tensors):
            if not isinstance(t, Tensor):
                raise TypeError(f"TensorDataset: argument {i} is a {type(t).__name__}, not a Tensor")
            if t.ndim == 0 or t.shape[0] != n:
                raise ValueError(f"TensorDataset: size mismatch between tensors: tensor 0 has {n} rows, "
                                 f"tensor {i} has shape {list(t.shape)}")
        self.tensors = tensors

    def __getitem__(self, index):
        return tuple(t[index] for t in self.tensors)

    def __len__(self):
        return self.tensors[0].shape[0]

    def gather(self, indices):
        """The samples at `indices` (an int64 numpy array), already batched: one gather per tensor."""
        from ...ops.creation import from_numpy

        idx = from_numpy(np.ascontiguousarray(indices, dtype=np.int64))
        return tuple(t[idx.to(t.device)] for t in self.tensors)


class Subset(Dataset):
    def __init__(self, dataset, indices):
        self.dataset = dataset
        self.indices = list(indices)

    def __getitem__(self, idx):
        if isinstance(idx, list):
            return self.dataset[[self.indices[i] for i in idx]]
        return self.dataset[self.indices[idx]]

    def __len__(self):
        return len(self.indices)


class ConcatDataset(Dataset):
    def __init__(self, datasets):
        self.datasets = list(datasets)
        if not self.datasets:
            raise ValueError("ConcatDataset: datasets should not be an empty iterable")
        self.cumulative_sizes = list(np.cumsum([len(d) for d in self.datasets]))

    def __len__(self):
        return int(self.cumulative_sizes[-1])

    def __getitem__(self, idx):
        if idx < 0:
            if -idx > len(self):
                raise IndexError(f"ConcatDataset: index {idx} out of range for length {len(self)}")
            idx += len(self)
        d = bisect.bisect_right(self.cumulative_sizes, idx)
        start = 0 if d == 0 else int(self.cumulative_sizes[d - 1])
        return self.datasets[d][idx - start]


def random_split(dataset, lengths, generator=None):
    """Split into non-overlapping Subsets of the given lengths (or fractions summing to 1). The permutation
    comes from `generator` (see as_generator): two splits with one Generator differ, as in PyTorch."""
    n = len(dataset)
    lengths = list(lengths)
    if all(isinstance(x, float) and 0 <= x <= 1 for x in lengths) and abs(sum(lengths) - 1) < 1e-6:
        sizes = [int(np.floor(n * f)) for f in lengths]
        for i in range(n - sum(sizes)):
            sizes[i % len(sizes)] += 1
        lengths = sizes
    if sum(lengths) != n:
        raise ValueError(f"random_split: sum of input lengths ({sum(lengths)}) does not equal the length of the "
                         f"input dataset ({n})")
    perm = permutation(as_generator(generator, "random_split"), n)
    out, start = [], 0
    for length in lengths:
        out.append(Subset(dataset, perm[start:start + length].tolist()))
        start += length
    return out


def as_generator(generator, fn):
    """The stream a data utility draws from: a devtensor.Generator (drawing advances it, as in PyTorch),
    None (the default generator, so dt.manual_seed applies), an int seed (a new Generator seeded with it)
    or a numpy Generator (used as it is)."""
    from ...ops.generator import Generator

    if generator is None or isinstance(generator, (Generator, np.random.Generator)):
        return generator
    if isinstance(generator, numbers.Integral) and not isinstance(generator, bool):
        return Generator().manual_seed(int(generator))
    raise TypeError(f"{fn}: generator must be a devtensor.Generator, an int seed or a numpy Generator, got "
                    f"{type(generator).__name__}")


def permutation(generator, n):
    """A permutation of range(n) (numpy int64) drawn from an as_generator() stream."""
    if isinstance(generator, np.random.Generator):
        return generator.permutation(n)
    from ...ops.creation import randperm

    return randperm(n, generator=generator).numpy()
