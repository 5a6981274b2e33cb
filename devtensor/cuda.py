"""devtensor.cuda: availability, devices, synchronisation and memory statistics (CuPy's pool)."""
from __future__ import annotations

from .backends import get_backend


def _be():
    return get_backend("cuda")


def is_available() -> bool:
    return _be().is_available()[0]


def why_unavailable() -> str:
    return _be().is_available()[1]


def device_count() -> int:
    return _be().device_count()


def _require(api):
    ok, why = _be().is_available()
    if not ok:
        raise RuntimeError(f"devtensor.cuda.{api}: cuda is not available: {why}")
    import cupy

    return cupy


def current_device() -> int:
    return _require("current_device").cuda.runtime.getDevice()


def set_device(index) -> None:
    _require("set_device").cuda.runtime.setDevice(int(getattr(index, "index", index) or 0))


def synchronize(device=None) -> None:
    _require("synchronize")
    _be().synchronize(device)  # also raises a pending device-side index error (backends/cuda)


def get_device_name(device=None) -> str:
    cp = _require("get_device_name")
    idx = 0 if device is None else int(getattr(device, "index", device) or 0)
    name = cp.cuda.runtime.getDeviceProperties(idx)["name"]
    return name.decode() if isinstance(name, bytes) else name


def get_device_capability(device=None):
    cp = _require("get_device_capability")
    idx = 0 if device is None else int(getattr(device, "index", device) or 0)
    p = cp.cuda.runtime.getDeviceProperties(idx)
    return (p["major"], p["minor"])


_peak = [0]


def memory_allocated(device=None) -> int:
    """Bytes held by live tensors (CuPy pool's used bytes)."""
    if not is_available():
        return 0
    import cupy

    used = cupy.get_default_memory_pool().used_bytes()
    _peak[0] = max(_peak[0], used)
    return used


def max_memory_allocated(device=None) -> int:
    """Peak of memory_allocated() as observed at devtensor's sync points and calls of this API."""
    memory_allocated(device)
    return _peak[0]


def reset_peak_memory_stats(device=None) -> None:
    _peak[0] = memory_allocated(device)


def memory_reserved(device=None) -> int:
    """Bytes the pool holds from the driver (allocated + cached for reuse)."""
    if not is_available():
        return 0
    import cupy

    return cupy.get_default_memory_pool().total_bytes()


def empty_cache() -> None:
    """Return cached, unused blocks to the driver (nvidia-smi then shows less in use)."""
    if not is_available():
        return
    import cupy

    cupy.get_default_memory_pool().free_all_blocks()


def manual_seed(seed) -> None:
    if is_available():
        _be().manual_seed(int(seed))


manual_seed_all = manual_seed


def _no_state(fn):
    def f(*args, **kwargs):
        raise RuntimeError(f"devtensor.cuda.{fn}: CuPy's generator cannot export or restore its state; reseed it "
                           f"with devtensor.cuda.manual_seed(seed) (or use a devtensor.Generator('cuda')) to repeat "
                           f"a stream")

    f.__name__ = fn
    return f


# torch.cuda's names, so a ported checkpoint routine fails with the reason rather than an AttributeError
get_rng_state, set_rng_state = _no_state("get_rng_state"), _no_state("set_rng_state")
get_rng_state_all, set_rng_state_all = _no_state("get_rng_state_all"), _no_state("set_rng_state_all")
