"""devtensor.utils: data loading (devtensor.utils.data)."""
from . import data  # noqa: F401
