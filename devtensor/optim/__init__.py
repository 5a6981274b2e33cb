"""devtensor.optim: SGD, Adam, AdamW, RMSprop, lr_scheduler and swa_utils, with torch.optim's names and math."""
from . import lr_scheduler  # noqa: F401
from . import swa_utils  # noqa: F401
from .adam import Adam, AdamW
from .extra import ASGD, Adadelta, Adagrad, Adamax, NAdam, RAdam, Rprop  # noqa: F401
from .lbfgs import LBFGS  # noqa: F401
from .optimizer import Optimizer
from .rmsprop import RMSprop
from .sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Adadelta", "Adamax", "NAdam", "RAdam", "Rprop",
           "ASGD", "LBFGS", "lr_scheduler", "swa_utils"]
