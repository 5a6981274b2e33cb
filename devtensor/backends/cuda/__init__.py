"""The cuda backend: CuPy arrays, CuPy for elementwise math, our CUDA C kernels (kernels/*.cu)
for matmul, conv2d and reductions. CuPy is imported lazily: the package imports, and the
registry can be inspected, on a machine without cupy or without a GPU."""
from __future__ import annotations

from .. import Backend, register


def _probe():
    try:
        import cupy  # noqa: F401
    except ImportError:
        return False, ("cupy is not installed (pip install 'devtensor[cuda]' for CUDA 13 drivers, "
                       "'devtensor[cuda12]' for CUDA 12)")
    except Exception as e:  # a broken cupy install
        return False, f"cupy failed to import: {e}"
    try:
        n = cupy.cuda.runtime.getDeviceCount()
    except Exception as e:
        return False, f"no usable CUDA driver ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
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
        return self._avail

    def device_count(self):
        return _device_count() if self.is_available()[0] else 0

    def check_index(self, index):
        n = self.device_count()
        if index >= n:
            raise RuntimeError(f"cuda:{index} does not exist: this machine has {n} CUDA device(s)")


def _device_count():
    import cupy

    return cupy.cuda.runtime.getDeviceCount()


cuda = register(CudaBackend())
