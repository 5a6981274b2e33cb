"""Datasets: MNIST (and its embedded 5,000-digit sample) plus torchvision-style transforms."""
from . import transforms  # noqa: F401
from .idx import IDXError, read_idx, write_idx
from .mnist import MNIST

__all__ = ["MNIST", "read_idx", "write_idx", "IDXError", "transforms"]
