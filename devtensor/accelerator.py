"""devtensor.accelerator: torch.accelerator's device-agnostic API, mapped to cuda (devtensor's one
accelerator). Without a usable GPU, is_available() is False, current_accelerator() is None and
device_count() is 0; the calls that need a device raise PyTorch's RuntimeError."""
from __future__ import annotations

import contextlib

from . import cuda as _cuda
from .device import device as _device

__all__ = ["is_available", "current_accelerator", "device_count", "current_device_index", "current_device_idx",
           "set_device_index", "set_device_idx", "device_index", "synchronize", "empty_cache", "memory_allocated",
           "max_memory_allocated", "memory_reserved", "reset_peak_memory_stats"]

_NONE = "Cannot access accelerator device when none is available."


def is_available() -> bool:
    """Whether an accelerator (a cuda device devtensor can use) is present."""
    return _cuda.is_available()


def current_accelerator(check_available: bool = False):
    """device('cuda') when a GPU is usable, else None (devtensor knows no accelerator it cannot use)."""
    return _device("cuda") if _cuda.is_available() else None


def device_count() -> int:
    return _cuda.device_count() if _cuda.is_available() else 0


def _require():
    if not _cuda.is_available():
        raise RuntimeError(_NONE)


def _index(dev):
    if dev is None:
        return None
    if isinstance(dev, int):
        return dev
    d = _device(dev) if isinstance(dev, str) else dev
    if d.type != "cuda":
        raise ValueError(f"{d} doesn't match the current accelerator cuda.")
    return d.index or 0


def current_device_index() -> int:
    _require()
    return _cuda.current_device()


current_device_idx = current_device_index


def set_device_index(device, /) -> None:
    _require()
    idx = _index(device)
    if idx is not None:
        _cuda.set_device(idx)


set_device_idx = set_device_index


@contextlib.contextmanager
def device_index(device, /):
    """Make `device` (an index; None: no change) current inside the block."""
    if device is None:
        yield
        return
    prev = current_device_index()
    set_device_index(device)
    try:
        yield
    finally:
        set_device_index(prev)


def synchronize(device=None, /) -> None:
    """Wait for every kernel queued on the accelerator (and raise a pending device-side index error)."""
    _require()
    _cuda.synchronize(device)


def empty_cache() -> None:
    _require()
    _cuda.empty_cache()


def memory_allocated(device_index=None, /) -> int:
    _require()
    return _cuda.memory_allocated(device_index)


def max_memory_allocated(device_index=None, /) -> int:
    _require()
    return _cuda.max_memory_allocated(device_index)


def memory_reserved(device_index=None, /) -> int:
    _require()
    return _cuda.memory_reserved(device_index)


def reset_peak_memory_stats(device_index=None, /) -> None:
    _require()
    _cuda.reset_peak_memory_stats(device_index)
