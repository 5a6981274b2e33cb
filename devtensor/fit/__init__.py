"""devtensor.fit: a Keras-style training loop (compile / fit / evaluate / predict) over any
devtensor nn.Module, for users coming from TensorFlow.

    model = dt.fit.Model(net)
    model.compile(optimizer="adam", loss="cross_entropy", metrics=["accuracy"])
    history = model.fit(x, y, epochs=5, validation_data=(x_val, y_val))
    model.evaluate(x_val, y_val)          # {"loss": ..., "accuracy": ...}
    model.predict(x_val)                  # a Tensor of the stacked outputs

Modules: model (the Model and its loops), losses / metrics / optimizers (what a name in compile()
means), data (turning tensors or loaders into device batches), progress (the tqdm bar),
history (what fit() returns).
"""
from .history import History
from .losses import LOSSES
from .metrics import METRICS
from .model import Model
from .optimizers import OPTIMIZERS

__all__ = ["Model", "History", "LOSSES", "METRICS", "OPTIMIZERS"]
