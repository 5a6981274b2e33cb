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
        # in place: devtensor.default_generator and compiled steps hold this stream object
        self.seed = int(seed)
        self.generator.bit_generator.state = np.random.PCG64(self.seed).state


cpu = register(CpuBackend())


class LazyKernels:
    """The kernel modules named (relative to this package) are imported on the first attribute
    access, not at devtensor import: they import numba, whose start-up a script that never runs
    those kernels should not pay. Each function found is cached on the instance."""

    def __init__(self, *modules):
        self._modules = modules

    def __getattr__(self, name):
        import importlib

        for m in self._modules:
            fn = getattr(importlib.import_module(m, __package__), name, None)
            if fn is not None:
                setattr(self, name, fn)  # later calls find it without this lookup
                return fn
        raise AttributeError(name)
