"""devtensor.backends.cudnn: the flags PyTorch scripts set at their top, accepted so that they run.

devtensor never calls cuDNN (its cuda convolutions, pooling and normalisation are its own CUDA C
kernels and CuPy code), so none of these flags changes what runs:
- benchmark: PyTorch times several cuDNN algorithms per shape; devtensor has one kernel per op and
  shape, so there is nothing to pick between.
- deterministic: devtensor's kernels give the same bits for the same inputs whatever this says (see
  README, "Determinism and checked arguments"; the switch that exists is use_deterministic_algorithms).
- enabled: there is no cuDNN path to turn off.
- allow_tf32: devtensor's convolutions are strict float32; TF32 is used only by float32 matmul, and
  only when devtensor.backends.cuda.matmul.allow_tf32 is True.
Defaults are PyTorch's, so a script that reads them back sees what it would under PyTorch.
"""
from __future__ import annotations

import contextlib

benchmark = False
benchmark_limit = 10
deterministic = False
enabled = True
allow_tf32 = True

_NAMES = ("enabled", "benchmark", "benchmark_limit", "deterministic", "allow_tf32")


def is_available():
    """False: devtensor does not use cuDNN (whether or not the library is installed)."""
    return False


def version():
    """None, as PyTorch answers where cuDNN is not available."""
    return None


@contextlib.contextmanager
def flags(enabled=False, benchmark=False, benchmark_limit=10, deterministic=False, allow_tf32=True):
    """Set the flags inside a with-block and restore them after (PyTorch's defaults for the arguments)."""
    g = globals()
    old = {n: g[n] for n in _NAMES}
    g.update(enabled=enabled, benchmark=benchmark, benchmark_limit=benchmark_limit, deterministic=deterministic,
             allow_tf32=allow_tf32)
    try:
        yield
    finally:
        g.update(old)
