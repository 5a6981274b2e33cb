"""devtensor.nn: PyTorch's layers, losses, Parameter, init, functional and utils."""
from . import functional, init, utils  # noqa: F401
from . import parallel  # noqa: F401 - DistributedDataParallel (devtensor.distributed)
from .modules import *  # noqa: F401,F403
from .modules import __all__ as _modules_all
from .modules.loss_extra import *  # noqa: F401,F403  (SmoothL1Loss, HuberLoss, ..., CTCLoss)
from .parameter import Buffer, Parameter

__all__ = ["functional", "init", "utils", "Parameter", "Buffer", *_modules_all]
