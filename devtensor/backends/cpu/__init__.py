"""The cpu backend: numpy arrays; numpy for BLAS and vectorised math, numba loops where numpy
is weak (conv.py with winograd.py and direct3x3.py, pooling.py, softmax_ce.py, optim_steps.py).
Nothing is JIT-compiled at import: numba compiles on first use and caches to disk (NUMBA_CACHE_DIR to move the cache)."""
from __future__ import annotations

import numpy as np

from .. import array_api_extra, array_api_fft, array_api_kernels, array_api_random
from . import allocator
from .backend import DEFAULT_SEED, CpuBackend, cpu  # noqa: F401 - the backend object lives in backend.py
array_api_kernels.register(cpu, np)
array_api_extra.register(cpu, np)  # sort, cumsum, linalg, special functions, ... (one numpy/CuPy code)
array_api_fft.register(cpu, np)  # complex parts and FFTs (numpy.fft)
# random draws: a devtensor.Generator's own numpy Generator, or the backend's default one (manual_seed's)
array_api_random.register(cpu, np, lambda generator, device: cpu.generator if generator is None else generator)
allocator.tune()  # reuse freed activation buffers instead of page-faulting them in every step


def _quiet(fn):
    """numpy warns on log(0), x/0, sqrt(-1); PyTorch returns inf/nan silently, and so do we."""

    def kernel(*args, **kwargs):
        with np.errstate(all="ignore"):
            return fn(*args, **kwargs)

    kernel.__name__ = getattr(fn, "__name__", "kernel")
    return kernel


# only the ops that can warn pay for errstate (as slow as a small op itself); add/mul/relu keep the bare ufunc
for _name in ("log", "log1p", "div", "sqrt", "rsqrt", "reciprocal", "pow", "remainder", "floor_divide",
              "exp", "expm1", "mean", "sigmoid"):
    cpu.kernel(_name)(_quiet(cpu.kernels[_name]))


@cpu.kernel("sum")
def _sum(x, dim, keepdim):
    # what np.sum runs, without its Python wrapper (a third of a small bias-gradient sum)
    return np.add.reduce(x, axis=dim, dtype=x.dtype, keepdims=keepdim)


@cpu.kernel("relu_backward")
def _relu_backward(g, out):
    from .vector_math import relu_backward

    return relu_backward(g, out)


@cpu.kernel("relu")
def _relu(x):
    from .vector_math import relu

    return relu(x)


@cpu.kernel("erf")
def _erf(x):
    from .vector_math import erf

    return erf(x)


from . import nn  # noqa: E402,F401  (registers conv, pooling, softmax, cross-entropy kernels)
from . import optim_kernels  # noqa: E402,F401  (registers the fused optimizer steps)
from . import rnn  # noqa: E402,F401  (registers the recurrent cells and sequence loops)
