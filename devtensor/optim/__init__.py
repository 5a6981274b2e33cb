"""devtensor.optim: SGD, Adam, AdamW, RMSprop and lr_scheduler, with torch.optim's names and math."""
from . import lr_scheduler  # noqa: F401
from .adam import Adam, AdamW
from .extra import ASGD, Adadelta, Adagrad, Adamax, NAdam, RAdam, Rprop  # noqa: F401
from .lbfgs import LBFGS  # noqa: F401
from .optimizer import Optimizer
from .rmsprop import RMSprop
from .sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Adadelta", "Adamax", "NAdam", "RAdam", "Rprop",
           "ASGD", "LBFGS", "lr_scheduler"]
