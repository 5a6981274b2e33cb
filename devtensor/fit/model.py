"""Model: Keras's compile / fit / evaluate / predict around a devtensor nn.Module.

The loops are the PyTorch loop a tutorial writes (zero_grad, forward, loss, backward, step), with
the bookkeeping Keras adds: metrics averaged over the epoch, validation after each epoch, a
History, a progress bar, and Keras's callback hooks (fit/callbacks.py) around epochs and batches.
Nothing here touches the data outside Tensor ops, so it runs on any device."""
from __future__ import annotations

import numbers

from ..autograd import no_grad
from ..compiler import compile as _compile
from ..nn import Module
from ..ops.shape import cat
from ..serialization import load, save
from ..tensor import Tensor
from . import data, distributed
from .callbacks import CallbackList
from .history import History
from .losses import loss_kind, resolve_loss
from .metrics import RunningMean, resolve_metrics
from .optimizers import resolve_optimizer
from .progress import Progress


class Model:
    def __init__(self, module):
        if not isinstance(module, Module):
            raise TypeError(f"Model: expected a devtensor nn.Module, got {type(module).__name__}")
        self.module = module
        self.optimizer = None
        self.loss = None
        self.metrics = []  # [(history key, callable)]
        self.stop_training = False  # a callback sets it to end fit() after the current batch / epoch
        self.history = None  # the History of the last fit()
        self.jit_compile = False
        self._step = self._train_step  # compile(jit_compile=True) swaps in the captured step

    # -- set-up -------------------------------------------------------------------------------

    def compile(self, optimizer, loss, metrics=None, *, jit_compile=False):
        """optimizer: a devtensor.optim instance or a name ("adam", "sgd", "adamw", "rmsprop");
        loss: a callable (pred, target) -> Tensor or a name (see fit.LOSSES); metrics: a list of
        names ("accuracy", "mse", "mae", ... see fit.METRICS) or callables (pred, target) -> Tensor.
        jit_compile=True (Keras's name) trains with the step captured once by devtensor.compile and
        replayed (same results as eager, bit for bit; a last batch of another size is one more capture)."""
        loss_fn = resolve_loss(loss)
        metric_fns = resolve_metrics(metrics, loss_kind(loss_fn))
        self.optimizer = resolve_optimizer(optimizer, self.module)
        self.loss, self.metrics = loss_fn, metric_fns
        self.jit_compile = bool(jit_compile)
        self._step = _compile(self._train_step) if jit_compile else self._train_step

    def to(self, *args, **kwargs):
        """Move the module (in place, so a compiled optimizer keeps its parameters); returns self."""
        self.module.to(*args, **kwargs)
        return self

    def __call__(self, *args, **kwargs):
        return self.module(*args, **kwargs)

    # -- the public loops ---------------------------------------------------------------------

    def fit(self, x=None, y=None, batch_size=32, epochs=1, *, validation_data=None, validation_split=0.0,
            shuffle=True, verbose=1, loader=None, callbacks=None, initial_epoch=0):
        """Train for `epochs` passes over (x, y) tensors or a loader of (x, y) batches (as x or
        loader=; a loader does its own shuffling). Returns a History whose .history holds "loss",
        each metric, and "val_"-prefixed ones when validation data is given: one float per epoch.

        callbacks: fit.callbacks.Callback instances, called as Keras calls them (the validation pass
        calls their on_test_* hooks). A callback that sets model.stop_training ends training after
        the current batch (validation and on_epoch_end still run for that epoch). initial_epoch:
        the epoch to resume at (epochs is then the index of the last epoch + 1, as in Keras)."""
        self._require_compiled("fit")
        verbose = distributed.verbose(self.module, verbose)  # a DDP job: rank 0 prints
        epochs = _check_epochs(epochs)
        initial_epoch = _check_epochs(initial_epoch, "initial_epoch")
        if validation_split:
            if validation_data is not None:
                raise ValueError("fit: pass validation_data or validation_split, not both")
            (x, y), validation_data = data.split_validation("fit", x, y, validation_split)
        train = distributed.make_batches(self.module, "fit", x, y, batch_size, shuffle, loader=loader)
        val = None if validation_data is None else distributed.validation_batches(self.module, "fit", validation_data,
                                                                                  batch_size)
        params = {"epochs": epochs, "steps": train.steps, "verbose": verbose}
        callbacks = _with_history(callbacks)
        history = next(cb for cb in callbacks if isinstance(cb, History))
        callbacks = CallbackList(callbacks, model=self, params=params)
        self.history = history
        self.stop_training = False
        callbacks.on_train_begin()
        logs = {}
        for epoch in range(initial_epoch, epochs):
            callbacks.on_epoch_begin(epoch)
            bar = Progress(f"Epoch {epoch + 1}/{epochs}", train.steps, verbose)
            logs = self._train_epoch(train, bar, callbacks)
            if val is not None:
                val_logs = self._evaluate_batches(val, None, callbacks)
                logs.update({f"val_{k}": v for k, v in val_logs.items()})
            callbacks.on_epoch_end(epoch, logs)  # History is last: it records what the others added
            bar.close(logs)
            if self.stop_training:
                break
        callbacks.on_train_end(logs)
        return history

    def evaluate(self, x=None, y=None, batch_size=32, verbose=1, *, loader=None, callbacks=None):
        """The loss and each metric over the data, as sample-weighted means: {"loss": ..., name: ...}.
        callbacks get on_test_begin / on_test_batch_begin / on_test_batch_end / on_test_end."""
        self._require_compiled("evaluate")
        verbose = distributed.verbose(self.module, verbose)
        batches = distributed.make_batches(self.module, "evaluate", x, y, batch_size, False, loader=loader, pad=False)
        callbacks = CallbackList(callbacks, model=self, params={"epochs": 1, "steps": batches.steps,
                                                                "verbose": verbose})
        bar = Progress("evaluate", batches.steps, verbose)
        logs = self._evaluate_batches(batches, bar, callbacks)
        bar.close(logs)
        return logs

    def predict(self, x=None, batch_size=32, verbose=0, *, loader=None, callbacks=None):
        """The module's outputs for every sample, concatenated along the batch dimension (no grad),
        on the module's device. callbacks get the on_predict_* hooks (batch-end logs: {"outputs": ...})."""
        verbose = distributed.verbose(self.module, verbose)
        batches = data.make_batches("predict", x, None, batch_size, shuffle=False, loader=loader, need_y=False)
        callbacks = CallbackList(callbacks, model=self, params={"epochs": 1, "steps": batches.steps,
                                                                "verbose": verbose})
        device = data.model_device(self.module)
        bar = Progress("predict", batches.steps, verbose)
        self.module.eval()
        outputs = []
        callbacks.on_predict_begin()
        with no_grad():
            for step, (xb, _) in enumerate(batches):
                callbacks.on_predict_batch_begin(step)
                outputs.append(self.module(data.to_device(xb, device)))
                callbacks.on_predict_batch_end(step, outputs[-1])
                bar.step(dict)
        bar.close({})
        callbacks.on_predict_end()
        if not outputs:
            raise ValueError("predict: the data holds no samples")
        return cat(outputs, dim=0)

    # -- saving ---------------------------------------------------------------------------------

    def save_weights(self, filepath):
        """The module's state_dict (parameters and buffers) to one file, atomically (dt.save)."""
        save(self.module.state_dict(), filepath)

    def save(self, filepath, epoch=None):
        """A training checkpoint: {"model": state_dict, "optimizer": optimizer state_dict or None,
        "epoch": epoch}, atomically (dt.save). devtensor files hold no code: to load, build the same
        module, wrap and compile it, then call load(filepath)."""
        optimizer = None if self.optimizer is None else self.optimizer.state_dict()
        save({"model": self.module.state_dict(), "optimizer": optimizer, "epoch": epoch}, filepath)

    def load_weights(self, filepath):
        """Load the module's weights from a file written by save_weights() or save() (or dt.save of a
        state_dict); they are copied into the module where it lives."""
        self.module.load_state_dict(_model_state(self._load(filepath)))

    def load(self, filepath):
        """Restore a save() checkpoint: the module's weights and, when the file has them and the model
        is compiled, the optimizer's state. Returns the checkpoint's epoch (None if it has none)."""
        ckpt = self._load(filepath)
        self.module.load_state_dict(_model_state(ckpt))
        if _is_checkpoint(ckpt) and ckpt.get("optimizer") is not None and self.optimizer is not None:
            self.optimizer.load_state_dict(ckpt["optimizer"])
        return ckpt.get("epoch") if _is_checkpoint(ckpt) else None

    def _load(self, filepath):
        return load(filepath, map_location=data.model_device(self.module) or "cpu")

    # -- one epoch ----------------------------------------------------------------------------

    def _train_epoch(self, batches, bar, callbacks):
        self.module.train()  # again each epoch: validation switched it to eval()
        device = data.model_device(self.module)
        meter = RunningMean(self._keys())
        for step, (xb, yb) in enumerate(batches):
            callbacks.on_train_batch_begin(step)
            xb, yb = data.to_device(xb, device), data.to_device(yb, device)
            pred, loss = self._step(xb, yb)
            with no_grad():
                meter.update(self._values(pred.detach(), yb, loss), xb.shape[0])
            bar.step(meter.result)
            callbacks.on_train_batch_end(step, meter.result)  # reads the device only if a callback listens
            if self.stop_training:
                break
        distributed.reduce_meter(self.module, meter)  # a DDP job: the mean over every rank's samples
        return _epoch_logs("fit", meter)

    def _train_step(self, xb, yb):
        self.optimizer.zero_grad()
        pred = self.module(xb)
        loss = _reduce(self.loss(pred, yb))
        loss.backward()
        self.optimizer.step()
        return pred, loss

    def _evaluate_batches(self, batches, bar, callbacks):
        self.module.eval()
        device = data.model_device(self.module)
        meter = RunningMean(self._keys())
        callbacks.on_test_begin()
        with no_grad():
            for step, (xb, yb) in enumerate(batches):
                callbacks.on_test_batch_begin(step)
                xb, yb = data.to_device(xb, device), data.to_device(yb, device)
                pred = self.module(xb)
                meter.update(self._values(pred, yb, _reduce(self.loss(pred, yb))), xb.shape[0])
                if bar is not None:
                    bar.step(meter.result)
                callbacks.on_test_batch_end(step, meter.result)
        distributed.reduce_meter(self.module, meter)
        logs = _epoch_logs("evaluate", meter)
        callbacks.on_test_end(logs)
        return logs

    def _values(self, pred, yb, loss):
        return [loss.detach()] + [fn(pred, yb) for _, fn in self.metrics]

    def _keys(self):
        return ["loss"] + [name for name, _ in self.metrics]

    def _require_compiled(self, who):
        if self.optimizer is None or self.loss is None:
            raise RuntimeError(f"{who}: the model is not compiled; call model.compile(optimizer, loss, metrics) "
                               f"before {who}()")


def _reduce(loss):
    """A loss with reduction='none' gives per-sample values: Keras reduces them to their mean."""
    if not isinstance(loss, Tensor):
        raise TypeError(f"the loss returned a {type(loss).__name__}; it must return a Tensor (to backpropagate)")
    return loss.mean() if loss.ndim else loss


def _check_epochs(epochs, name="epochs"):
    if isinstance(epochs, bool) or not isinstance(epochs, numbers.Integral) or epochs < 0:
        raise ValueError(f"fit: {name} must be a non-negative int, got {epochs!r}")
    return int(epochs)


def _with_history(callbacks):
    """The user's callbacks (a list, one Callback, or None) with a History last, unless they hold one
    (Keras's rule), so History records the logs after every other callback has added to them."""
    if callbacks is None:
        callbacks = []
    elif not isinstance(callbacks, (list, tuple)):
        callbacks = [callbacks]
    callbacks = list(callbacks)
    if not any(isinstance(cb, History) for cb in callbacks):
        callbacks.append(History())
    return callbacks


def _is_checkpoint(obj):
    return isinstance(obj, dict) and isinstance(obj.get("model"), dict) and "optimizer" in obj


def _model_state(obj):
    if _is_checkpoint(obj):
        return obj["model"]
    if not isinstance(obj, dict):
        raise TypeError(f"load_weights: the file holds a {type(obj).__name__}, not a state_dict or a checkpoint")
    return obj


def _epoch_logs(who, meter):
    if meter.count == 0:
        raise ValueError(f"{who}: the data yielded no batches (an empty tensor, or a generator already used "
                         f"up by an earlier epoch: pass a DataLoader or a list of batches instead)")
    return meter.result()
