"""The cpu Backend object (numpy arrays, the seeded generator), in a module of its own so the kernel
modules that register into it need not import the package that imports them."""
from __future__ import annotations

import numpy as np

from .. import Backend, register

DEFAULT_SEED = 67280421310721  # PyTorch's default: the same numbers run after run


class CpuBackend(Backend):
    def __init__(self):
        super().__init__("cpu", np.ndarray)
        self.generator = np.random.Generator(np.random.PCG64(DEFAULT_SEED))
        self.seed = DEFAULT_SEED

    def from_numpy(self, array, device):
        return np.asarray(array)

    def to_numpy(self, array):
        return array

    def manual_seed(self, seed):
        self.seed = int(seed)
        self.generator = np.random.Generator(np.random.PCG64(self.seed))


cpu = register(CpuBackend())
