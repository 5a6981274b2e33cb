"""cuda registrations of the recurrent ops: the array-API code of backends/rnn_portable.py with CuPy
(one GEMM per step and the cell as whole-array expressions; no CUDA C cell kernel yet)."""
from __future__ import annotations

from .. import rnn_portable
from .backend import cuda, cupy_lazy

rnn_portable.register(cuda, cupy_lazy)
