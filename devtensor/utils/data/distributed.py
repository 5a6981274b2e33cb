"""DistributedSampler: each rank's share of a dataset's indices, PyTorch's algorithm.

Every rank draws the same permutation (seed + epoch: call set_epoch(epoch) at the start of each
epoch, or every epoch repeats the first one's order), pads it by repeating its head to a multiple of
num_replicas (or drops the tail with drop_last=True) and takes every num_replicas-th index from
position `rank`. So the ranks' shares are disjoint, of equal length (DDP needs every rank to run
the same number of steps), and together cover the dataset once per epoch (plus the padding)."""
from __future__ import annotations

import math

import numpy as np


class DistributedSampler:
    def __init__(self, dataset, num_replicas=None, rank=None, shuffle=True, seed=0, drop_last=False):
        if num_replicas is None or rank is None:
            from ...distributed import get_rank, get_world_size  # raises PyTorch's error before init

            num_replicas = get_world_size() if num_replicas is None else num_replicas
            rank = get_rank() if rank is None else rank
        if num_replicas < 1:
            raise ValueError(f"DistributedSampler: num_replicas must be >= 1, got {num_replicas}")
        if rank >= num_replicas or rank < 0:
            raise ValueError(f"Invalid rank {rank}, rank should be in the interval [0, {num_replicas - 1}]")
        self.dataset = dataset
        self.num_replicas = int(num_replicas)
        self.rank = int(rank)
        self.epoch = 0
        self.drop_last = drop_last
        n = len(dataset)
        if drop_last and n % self.num_replicas != 0:
            self.num_samples = math.ceil((n - self.num_replicas) / self.num_replicas)
        else:
            self.num_samples = math.ceil(n / self.num_replicas)
        self.total_size = self.num_samples * self.num_replicas
        self.shuffle = shuffle
        self.seed = seed

    def __iter__(self):
        n = len(self.dataset)
        if self.shuffle:
            indices = np.random.default_rng(self.seed + self.epoch).permutation(n)
        else:
            indices = np.arange(n)
        if not self.drop_last:
            pad = self.total_size - n
            if pad > 0:
                indices = np.concatenate([indices, np.resize(indices, pad)])  # repeats the head as needed
        else:
            indices = indices[:self.total_size]
        assert len(indices) == self.total_size
        return iter(indices[self.rank:self.total_size:self.num_replicas].tolist())

    def __len__(self):
        return self.num_samples

    def set_epoch(self, epoch):
        """Seed the next epoch's shuffle with seed + epoch (the same on every rank)."""
        self.epoch = epoch
