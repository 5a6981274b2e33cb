"""devtensor.fit: a Keras-style training loop (compile / fit / evaluate / predict) over any
devtensor nn.Module, for users coming from TensorFlow.

    model = dt.fit.Model(net)
    model.compile(optimizer="adam", loss="cross_entropy", metrics=["accuracy"])
    history = model.fit(x, y, epochs=5, validation_data=(x_val, y_val),
                        callbacks=[dt.fit.callbacks.EarlyStopping(patience=2)])
    model.evaluate(x_val, y_val)          # {"loss": ..., "accuracy": ...}
    model.predict(x_val)                  # a Tensor of the stacked outputs
    history.plot("history.png")           # loss and metric curves per epoch

Modules: model (the Model and its loops), losses / metrics / optimizers (what a name in compile()
means), data (turning tensors or loaders into device batches), progress (the tqdm bar),
callbacks (Keras's callbacks: ModelCheckpoint, EarlyStopping, TensorBoard, ...), history (what
fit() returns, and its plot).
"""
from . import callbacks
from .callbacks import Callback
from .history import History
from .losses import LOSSES
from .metrics import METRICS
from .model import Model
from .optimizers import OPTIMIZERS

__all__ = ["Model", "History", "Callback", "callbacks", "LOSSES", "METRICS", "OPTIMIZERS"]
