"""Model: Keras's compile / fit / evaluate / predict around a devtensor nn.Module.

The loops are the PyTorch loop a tutorial writes (zero_grad, forward, loss, backward, step), with
the bookkeeping Keras adds: metrics averaged over the epoch, validation after each epoch, a
History, a progress bar. Nothing here touches the data outside Tensor ops, so it runs on any device."""
from __future__ import annotations

import numbers

from ..autograd import no_grad
from ..nn import Module
from ..ops.shape import cat
from ..tensor import Tensor
from . import data, distributed
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

    # -- set-up -------------------------------------------------------------------------------

    def compile(self, optimizer, loss, metrics=None):
        """optimizer: a devtensor.optim instance or a name ("adam", "sgd", "adamw", "rmsprop");
        loss: a callable (pred, target) -> Tensor or a name (see fit.LOSSES); metrics: a list of
        names ("accuracy", "mse", "mae", ... see fit.METRICS) or callables (pred, target) -> Tensor."""
        loss_fn = resolve_loss(loss)
        metric_fns = resolve_metrics(metrics, loss_kind(loss_fn))
        self.optimizer = resolve_optimizer(optimizer, self.module)
        self.loss, self.metrics = loss_fn, metric_fns

    def to(self, *args, **kwargs):
        """Move the module (in place, so a compiled optimizer keeps its parameters); returns self."""
        self.module.to(*args, **kwargs)
        return self

    def __call__(self, *args, **kwargs):
        return self.module(*args, **kwargs)

    # -- the public loops ---------------------------------------------------------------------

    def fit(self, x=None, y=None, batch_size=32, epochs=1, *, validation_data=None, validation_split=0.0,
            shuffle=True, verbose=1, loader=None):
        """Train for `epochs` passes over (x, y) tensors or a loader of (x, y) batches (as x or
        loader=; a loader does its own shuffling). Returns a History whose .history holds "loss",
        each metric, and "val_"-prefixed ones when validation data is given: one float per epoch."""
        self._require_compiled("fit")
        verbose = distributed.verbose(self.module, verbose)  # a DDP job: rank 0 prints
        epochs = _check_epochs(epochs)
        if validation_split:
            if validation_data is not None:
                raise ValueError("fit: pass validation_data or validation_split, not both")
            (x, y), validation_data = data.split_validation("fit", x, y, validation_split)
        train = distributed.make_batches(self.module, "fit", x, y, batch_size, shuffle, loader=loader)
        val = None if validation_data is None else distributed.validation_batches(self.module, "fit", validation_data,
                                                                                  batch_size)
        history = History({"epochs": epochs, "steps": train.steps, "verbose": verbose})
        for epoch in range(epochs):
            bar = Progress(f"Epoch {epoch + 1}/{epochs}", train.steps, verbose)
            logs = self._train_epoch(train, bar)
            if val is not None:
                logs.update({f"val_{k}": v for k, v in self._evaluate_batches(val, None).items()})
            bar.close(logs)
            history.record(epoch, logs)
        return history

    def evaluate(self, x=None, y=None, batch_size=32, verbose=1, *, loader=None):
        """The loss and each metric over the data, as sample-weighted means: {"loss": ..., name: ...}."""
        self._require_compiled("evaluate")
        verbose = distributed.verbose(self.module, verbose)
        batches = distributed.make_batches(self.module, "evaluate", x, y, batch_size, False, loader=loader, pad=False)
        bar = Progress("evaluate", batches.steps, verbose)
        logs = self._evaluate_batches(batches, bar)
        bar.close(logs)
        return logs

    def predict(self, x=None, batch_size=32, verbose=0, *, loader=None):
        """The module's outputs for every sample, concatenated along the batch dimension (no grad),
        on the module's device."""
        verbose = distributed.verbose(self.module, verbose)
        batches = data.make_batches("predict", x, None, batch_size, shuffle=False, loader=loader, need_y=False)
        device = data.model_device(self.module)
        bar = Progress("predict", batches.steps, verbose)
        self.module.eval()
        outputs = []
        with no_grad():
            for xb, _ in batches:
                outputs.append(self.module(data.to_device(xb, device)))
                bar.step(dict)
        bar.close({})
        if not outputs:
            raise ValueError("predict: the data holds no samples")
        return cat(outputs, dim=0)

    # -- one epoch ----------------------------------------------------------------------------

    def _train_epoch(self, batches, bar):
        self.module.train()  # again each epoch: validation switched it to eval()
        device = data.model_device(self.module)
        meter = RunningMean(self._keys())
        for xb, yb in batches:
            xb, yb = data.to_device(xb, device), data.to_device(yb, device)
            pred, loss = self._train_step(xb, yb)
            with no_grad():
                meter.update(self._values(pred.detach(), yb, loss), xb.shape[0])
            bar.step(meter.result)
        distributed.reduce_meter(self.module, meter)  # a DDP job: the mean over every rank's samples
        return _epoch_logs("fit", meter)

    def _train_step(self, xb, yb):
        self.optimizer.zero_grad()
        pred = self.module(xb)
        loss = _reduce(self.loss(pred, yb))
        loss.backward()
        self.optimizer.step()
        return pred, loss

    def _evaluate_batches(self, batches, bar):
        self.module.eval()
        device = data.model_device(self.module)
        meter = RunningMean(self._keys())
        with no_grad():
            for xb, yb in batches:
                xb, yb = data.to_device(xb, device), data.to_device(yb, device)
                pred = self.module(xb)
                meter.update(self._values(pred, yb, _reduce(self.loss(pred, yb))), xb.shape[0])
                if bar is not None:
                    bar.step(meter.result)
        distributed.reduce_meter(self.module, meter)
        return _epoch_logs("evaluate", meter)

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


def _check_epochs(epochs):
    if isinstance(epochs, bool) or not isinstance(epochs, numbers.Integral) or epochs < 0:
        raise ValueError(f"fit: epochs must be a non-negative int, got {epochs!r}")
    return int(epochs)


def _epoch_logs(who, meter):
    if meter.count == 0:
        raise ValueError(f"{who}: the data yielded no batches (an empty tensor, or a generator already used "
                         f"up by an earlier epoch: pass a DataLoader or a list of batches instead)")
    return meter.result()
