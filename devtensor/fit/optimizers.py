"""What an optimizer given to compile() means: an instance is used as is; a name (or an optimizer
class) is built on the module's parameters with Keras's default learning rate for it, so that
compile("sgd", ...) trains at the step size a TensorFlow user expects (torch's SGD has none)."""
from __future__ import annotations

from .. import optim

# name -> (class, Keras's default learning rate)
OPTIMIZERS = {
    "adam": (optim.Adam, 1e-3),
    "adamw": (optim.AdamW, 1e-3),
    "sgd": (optim.SGD, 1e-2),
    "rmsprop": (optim.RMSprop, 1e-3),
}


def resolve_optimizer(optimizer, module):
    if isinstance(optimizer, optim.Optimizer):
        return optimizer
    if isinstance(optimizer, str):
        entry = OPTIMIZERS.get(optimizer.lower())
        if entry is None:
            raise ValueError(f"compile: unknown optimizer {optimizer!r}; valid names are "
                             f"{', '.join(sorted(OPTIMIZERS))} (or pass an optimizer instance such as "
                             f"dt.optim.Adam(net.parameters(), lr=1e-3))")
        cls, lr = entry
        return cls(_parameters(module), lr=lr)
    if isinstance(optimizer, type) and issubclass(optimizer, optim.Optimizer):
        return optimizer(_parameters(module))
    raise TypeError(f"compile: optimizer must be a devtensor.optim optimizer, an optimizer class or a name, "
                    f"got {type(optimizer).__name__}")


def _parameters(module):
    params = [p for p in module.parameters() if p.requires_grad]
    if not params:
        raise ValueError("compile: the module has no trainable parameters to optimize")
    return params
