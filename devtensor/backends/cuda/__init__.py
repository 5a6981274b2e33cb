"""The cuda backend: CuPy arrays, CuPy for elementwise math, our CUDA C kernels (kernels/*.cu)
for matmul, conv2d, reductions, softmax/cross-entropy, pooling, optimizer steps and recurrent cells.

Kernel tiers (backends/__init__.py): the CuPy code is the "portable" tier (array_api_kernels plus
the `*_xp` functions of ops.py), our CUDA C adapters the "specialised" tier, registered for the
dtypes they implement (float32; float16 through float32).

CuPy is imported lazily: the package imports, and the registry can be inspected (the
completeness test runs on CPU-only CI), on a machine without cupy or without a GPU. Every kernel
registered here resolves cupy at its first call.

Device-side index errors: kernels that meet an out-of-range data-dependent index (cross-entropy
targets, gather / scatter / advanced-indexing indices) never access memory through it and record
the first one on the device (kernels.check_index / device_error_buffer); synchronize() and every
device-to-host copy (to_numpy: .item(), .cpu(), .tolist(), printing) read the record and raise it
as a RuntimeError, as PyTorch's device-side asserts surface at the next synchronisation.
"""
from __future__ import annotations

from .backend import CudaBackend, cuda, cupy_lazy, matmul  # noqa: F401  (the backend, its lazy cupy, flags)
from .backend import get_float32_matmul_precision, set_float32_matmul_precision  # noqa: F401
from . import ops as _ops  # noqa: E402,F401  (registers our CUDA C kernels and the CuPy paths)
from . import rnn as _rnn  # noqa: E402,F401  (the recurrent ops: cuBLAS GEMMs + the rnn.cu cells)
