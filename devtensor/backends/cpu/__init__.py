"""The cpu backend: numpy arrays; numpy for BLAS and vectorised math, numba loops where numpy
is weak (devtensor/backends/cpu/nn_kernels.py: conv, pooling, fused softmax/cross-entropy,
fused optimizer steps). Nothing is JIT-compiled at import: numba compiles on first use and
caches to disk (NUMBA_CACHE_DIR to move the cache)."""
from __future__ import annotations

import numpy as np

from .. import Backend, array_api_kernels, register

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
array_api_kernels.register(cpu, np)


@cpu.kernel("rand")
def _rand(shape, dtype, device):
    return cpu.generator.random(shape, dtype=np.float64).astype(dtype.np, copy=False) \
        if dtype.np not in (np.float32, np.float64) else cpu.generator.random(shape, dtype=dtype.np)


@cpu.kernel("randn")
def _randn(shape, dtype, device):
    if dtype.np in (np.float32, np.float64):
        return cpu.generator.standard_normal(shape, dtype=dtype.np)
    return cpu.generator.standard_normal(shape).astype(dtype.np)


@cpu.kernel("randint")
def _randint(low, high, shape, dtype, device):
    return cpu.generator.integers(low, high, size=shape, dtype=np.int64).astype(dtype.np, copy=False)


@cpu.kernel("randperm")
def _randperm(n, dtype, device):
    return cpu.generator.permutation(n).astype(dtype.np, copy=False)


@cpu.kernel("erf")
def _erf(x):
    from .vector_math import erf

    return erf(x)


from . import nn  # noqa: E402,F401  (registers conv, pooling, softmax, cross-entropy kernels)
from . import optim_kernels  # noqa: E402,F401  (registers the fused optimizer steps)
