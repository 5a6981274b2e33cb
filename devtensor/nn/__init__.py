"""devtensor.nn: functional ops now; modules arrive with the training-stack issue."""
from . import functional  # noqa: F401
