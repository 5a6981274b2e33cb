"""Samplers, as torch.utils.data's: SequentialSampler, RandomSampler, SubsetRandomSampler,
WeightedRandomSampler and BatchSampler. The random ones draw from `generator` (a devtensor.Generator,
an int seed or None for the default generator: dataset.as_generator), once per pass, so each epoch
advances the stream and a fresh Generator().manual_seed(s) repeats the sequence of epochs."""
from __future__ import annotations

import numbers

import numpy as np

from ...tensor import Tensor
from .dataset import as_generator, permutation


class Sampler:
    """Base class: an iterable of dataset indices with a length."""

    def __iter__(self):
        raise NotImplementedError(f"{type(self).__name__} must implement __iter__")


class SequentialSampler(Sampler):
    def __init__(self, data_source):
        self.data_source = data_source

    def __iter__(self):
        return iter(range(len(self.data_source)))

    def __len__(self):
        return len(self.data_source)


def _positive(name, value, who):
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{who}: {name} should be a positive integer value, but got {name}={value!r}")
    return int(value)


def _boolean(name, value, who):
    if not isinstance(value, bool):
        raise ValueError(f"{who}: {name} should be a boolean value, but got {name}={value!r}")
    return value


class RandomSampler(Sampler):
    """A permutation per pass (replacement=False), or num_samples uniform draws with replacement."""

    def __init__(self, data_source, replacement=False, num_samples=None, generator=None):
        self.data_source = data_source
        self.replacement = _boolean("replacement", replacement, "RandomSampler")
        self._num_samples = None if num_samples is None else _positive("num_samples", num_samples, "RandomSampler")
        self.generator = generator
        self._stream = as_generator(generator, "RandomSampler")

    @property
    def num_samples(self):
        return len(self.data_source) if self._num_samples is None else self._num_samples

    def __iter__(self):
        n, k = len(self.data_source), self.num_samples
        if self.replacement:
            return iter(_draw_ints(self._stream, n, k).tolist())
        # as PyTorch: whole permutations, then the head of one more, when num_samples > len(data_source)
        parts = [permutation(self._stream, n) for _ in range(-(-k // n))] if n else []
        return iter(np.concatenate(parts)[:k].tolist() if parts else [])

    def __len__(self):
        return self.num_samples


def _draw_ints(stream, n, k):
    if isinstance(stream, np.random.Generator):
        return stream.integers(0, n, size=k)
    from ...ops.creation import randint

    return randint(0, n, (k,), generator=stream).numpy()


class SubsetRandomSampler(Sampler):
    """The given indices in a random order, a new one per pass."""

    def __init__(self, indices, generator=None):
        self.indices = indices
        self.generator = generator
        self._stream = as_generator(generator, "SubsetRandomSampler")

    def __iter__(self):
        return iter([self.indices[i] for i in permutation(self._stream, len(self.indices)).tolist()])

    def __len__(self):
        return len(self.indices)


class WeightedRandomSampler(Sampler):
    """num_samples indices in [0, len(weights)), index i with probability weights[i] / sum(weights)
    (multinomial: with replacement by default; without, each index at most once)."""

    def __init__(self, weights, num_samples, replacement=True, generator=None):
        who = "WeightedRandomSampler"
        self.num_samples = _positive("num_samples", num_samples, who)
        self.replacement = _boolean("replacement", replacement, who)
        w = weights.detach().cpu().numpy() if isinstance(weights, Tensor) else np.asarray(weights)
        if w.ndim != 1:
            raise ValueError(f"{who}: weights should be a 1d sequence but given weights have shape {tuple(w.shape)}")
        from ...ops.creation import tensor

        self.weights = tensor(w.astype(np.float64))
        self.generator = generator
        self._stream = as_generator(generator, who)
        if isinstance(self._stream, np.random.Generator):
            raise TypeError(f"{who}: generator must be a devtensor.Generator or an int seed (multinomial draws "
                            f"from devtensor's streams), got a numpy Generator")

    def __iter__(self):
        from ...ops.random import multinomial

        return iter(multinomial(self.weights, self.num_samples, self.replacement, generator=self._stream).tolist())

    def __len__(self):
        return self.num_samples


class BatchSampler(Sampler):
    """Groups another sampler's indices into lists of batch_size (the last one shorter unless drop_last)."""

    def __init__(self, sampler, batch_size, drop_last):
        self.sampler = sampler
        self.batch_size = _positive("batch_size", batch_size, "BatchSampler")
        self.drop_last = _boolean("drop_last", drop_last, "BatchSampler")

    def __iter__(self):
        batch = []
        for i in self.sampler:
            batch.append(i)
            if len(batch) == self.batch_size:
                yield batch
                batch = []
        if batch and not self.drop_last:
            yield batch

    def __len__(self):
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)
