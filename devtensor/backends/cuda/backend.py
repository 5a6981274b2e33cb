"""The cuda Backend object (CudaBackend, registered as `cuda`), the lazy cupy stand-in, the matmul
flags and the few CuPy kernels that are not array-API code (random numbers, erf).  ops.py adds our
CUDA C kernels and the CuPy paths to the same table; the package __init__ ties the two together.
"""
from __future__ import annotations

import importlib
import warnings

import numpy as np

from .. import Backend, array_api_extra, array_api_fft, array_api_kernels, array_api_random, register
from . import kernels as _kernels  # the launch wrappers: numpy and the standard library only until called


class _LazyCupy:
    """Stands in for the cupy module until the first kernel call needs it (`module`: the array
    namespace once resolved; tests set it to numpy to run the CuPy-path kernels on the host)."""

    module = None

    def __getattr__(self, name):
        mod = self.module
        if mod is None:
            mod = self.module = importlib.import_module("cupy")
        return getattr(mod, name)


cupy_lazy = _LazyCupy()


def _probe():
    try:
        import cupy
    except ImportError:
        return False, ("cupy is not installed (pip install 'devtensor[cuda]' for CUDA 13 drivers, "
                       "'devtensor[cuda12]' for CUDA 12)")
    except Exception as e:  # a broken cupy install
        return False, f"cupy failed to import: {e}"
    try:
        n = cupy.cuda.runtime.getDeviceCount()
    except Exception as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        return False, f"no usable CUDA driver or device ({msg})"
    if n == 0:
        return False, "no CUDA device found"
    return True, ""


class CudaBackend(Backend):
    def __init__(self):
        super().__init__("cuda", None)
        self._avail = None

    def is_available(self):
        if self._avail is None:
            self._avail = _probe()
            if self._avail[0]:
                import cupy

                self.array_type = cupy.ndarray
        return self._avail

    def device_count(self):
        if not self.is_available()[0]:
            return 0
        import cupy

        return cupy.cuda.runtime.getDeviceCount()

    def current_device(self):
        import cupy

        return cupy.cuda.runtime.getDevice()

    def check_index(self, index):
        n = self.device_count()
        if index >= n:
            raise RuntimeError(f"cuda:{index} does not exist: this machine has {n} CUDA device(s)")

    def from_numpy(self, array, device):
        import cupy

        with cupy.cuda.Device(device.index or 0):
            return cupy.asarray(array)

    def to_numpy(self, array):
        import cupy

        out = cupy.asnumpy(array)  # waits for the kernels queued before: their error record is final
        self.raise_device_error()
        return out

    def ensure_array(self, raw):
        import cupy

        return cupy.asarray(raw)

    def synchronize(self, device=None):
        import cupy

        cupy.cuda.runtime.deviceSynchronize()
        self.raise_device_error()

    def raise_device_error(self):
        """Raise (once) the first out-of-range index a kernel recorded since the last check, e.g.
        RuntimeError('cross_entropy: target 12 is out of bounds for 10 classes (reported by the
        device at the next synchronisation)').  Call at a point where the host waits anyway."""
        msg = _kernels.take_device_error()
        if msg is not None:
            raise RuntimeError(msg)

    def manual_seed(self, seed):
        import cupy

        cupy.random.seed(int(seed))


cuda = register(CudaBackend())
array_api_kernels.register(cuda, cupy_lazy)
array_api_extra.register(cuda, cupy_lazy)  # sort, cumsum, linalg, special functions, ... (one numpy/CuPy code)
array_api_fft.register(cuda, cupy_lazy)  # complex parts and FFTs (cupy.fft: cuFFT)


class CupyRandom:
    """A CuPy RandomState behind numpy.random.Generator's method names (array_api_random's kernels call
    those), drawing on `device` when one is given (the creation ops) and on the current device otherwise."""

    __slots__ = ("state", "device")

    def __init__(self, state, device):
        self.state, self.device = state, device

    def _on(self, fn, *args, **kwargs):
        import cupy

        if self.device is None:
            return fn(*args, **kwargs)
        with cupy.cuda.Device(self.device.index or 0):
            return fn(*args, **kwargs)

    def random(self, shape, dtype=np.float64):
        return self._on(self.state.random_sample, shape, dtype=dtype)

    def standard_normal(self, shape, dtype=np.float64):
        return self._on(self.state.standard_normal, shape, dtype=dtype)

    def standard_exponential(self, shape, dtype=np.float64):
        return self._on(self.state.standard_exponential, shape, dtype=dtype)

    def integers(self, low, high, size, dtype=np.int64):
        return self._on(self.state.randint, low, high, size=size, dtype=dtype)

    def permutation(self, n):
        return self._on(self.state.permutation, n)

    def poisson(self, lam):
        return self._on(self.state.poisson, lam, size=lam.shape, dtype=np.int64)


def _cuda_rng(generator, device):
    """generator: a cupy RandomState (a devtensor.Generator's), or None for CuPy's per-device default
    (the one dt.manual_seed / dt.cuda.manual_seed seed)."""
    if generator is None:
        import cupy

        if device is None:
            return CupyRandom(cupy.random.get_random_state(), None)
        with cupy.cuda.Device(device.index or 0):
            return CupyRandom(cupy.random.get_random_state(), device)
    return CupyRandom(generator, device)


array_api_random.register(cuda, cupy_lazy, _cuda_rng)  # CuPy code for every dtype: the portable tier


@cuda.kernel("erf", tier="portable")
def _erf(x):
    import cupyx.scipy.special

    return cupyx.scipy.special.erf(x)


class _MatmulFlags:
    """devtensor.backends.cuda.matmul: allow_tf32 picks the TF32 tensor-core SGEMM for float32
    matmul (inputs rounded to 10 mantissa bits); default False, as torch.backends.cuda.matmul."""

    __slots__ = ("allow_tf32",)

    def __init__(self):
        self.allow_tf32 = False

    def __repr__(self):
        return f"<devtensor.backends.cuda.matmul allow_tf32={self.allow_tf32}>"


matmul = _MatmulFlags()
_PRECISION = ["high"]  # what "TF32 on" reads back as: the last of "high" / "medium" set


def set_float32_matmul_precision(precision):
    """PyTorch's switch: "highest" keeps float32 matmul exact (matmul.allow_tf32 = False); "high" and
    "medium" allow TF32 (devtensor has no bfloat16 path, so "medium" means TF32 too)."""
    if precision not in ("highest", "high", "medium"):
        warnings.warn(f"{precision} is not one of 'highest', 'high', or 'medium'; the current "
                      "set_float32_matmul_precision call has no effect.", stacklevel=2)
        return
    matmul.allow_tf32 = precision != "highest"
    if precision != "highest":
        _PRECISION[0] = precision


def get_float32_matmul_precision():
    return _PRECISION[0] if matmul.allow_tf32 else "highest"
