"""devtensor.cpu (torch.cpu): the cpu device's side of the device-module API, and cpu.amp."""
from __future__ import annotations

from .amp import cpu_amp as amp  # noqa: F401 - devtensor.cpu.amp.autocast, PyTorch's deprecated spelling

__all__ = ["amp", "is_available", "device_count", "current_device", "synchronize"]


def is_available() -> bool:
    return True


def device_count() -> int:
    return 1


def current_device() -> str:
    return "cpu"


def synchronize(device=None) -> None:
    """Nothing to wait for: cpu kernels have finished when they return."""
