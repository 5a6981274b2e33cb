"""Keras's callbacks for dt.fit.Model: hooks into fit / evaluate / predict, with Keras's names,
arguments and defaults.

    from devtensor.fit.callbacks import EarlyStopping, ModelCheckpoint, TensorBoard
    model.fit(x, y, epochs=50, validation_data=(xv, yv), callbacks=[
        EarlyStopping(monitor="val_loss", patience=3, restore_best_weights=True),
        ModelCheckpoint("ckpt/epoch{epoch:02d}-{val_loss:.2f}.safetensors", save_best_only=True),
        TensorBoard(log_dir="runs/exp1")])

A callback sees `self.model` (the dt.fit.Model: `.module`, `.optimizer`, `.stop_training`) and
`self.params` ({"epochs", "steps", "verbose"}). Epoch-end logs hold "loss", each metric and their
"val_" forms as floats; callbacks may add keys (the learning-rate callbacks add "learning_rate"),
and dt.fit.History (a Callback that fit() appends last) records what they leave there. Batch-end
logs hold the epoch's running means so far; building them reads the device, so the loop builds
them only when some callback overrides a batch hook (as Keras does), and a run without such
callbacks pays no host sync per batch.

Learning rates are the optimizer's param_groups' "lr" (one value per group, as in PyTorch); where
Keras reads one learning rate, these callbacks read the first group's.

Its size: Keras's eight callbacks with their arguments and docstrings, each short; one module
mirrors keras.callbacks, where users look for them.
"""
from __future__ import annotations

import collections
import csv
import inspect
import math
import numbers
import os
import time
import warnings

import numpy as np

from ..optim import lr_scheduler
from ..utils import tensorboard as _tensorboard

__all__ = ["Callback", "CallbackList", "LambdaCallback", "ModelCheckpoint", "EarlyStopping",
           "CSVLogger", "LearningRateScheduler", "ReduceLROnPlateau", "TensorBoard", "TerminateOnNaN"]


class Callback:
    """Base class: override the hooks you need. `logs` is a dict (never None here)."""

    def __init__(self):
        self.params = {}
        self._model = None

    def set_params(self, params):
        self.params = params

    def set_model(self, model):
        self._model = model

    @property
    def model(self):
        return self._model

    # Keras calls on_batch_* from on_train_batch_*, so overriding either works.
    def on_batch_begin(self, batch, logs=None):
        pass

    def on_batch_end(self, batch, logs=None):
        pass

    def on_epoch_begin(self, epoch, logs=None):
        pass

    def on_epoch_end(self, epoch, logs=None):
        pass

    def on_train_batch_begin(self, batch, logs=None):
        self.on_batch_begin(batch, logs=logs)

    def on_train_batch_end(self, batch, logs=None):
        self.on_batch_end(batch, logs=logs)

    def on_test_batch_begin(self, batch, logs=None):
        pass

    def on_test_batch_end(self, batch, logs=None):
        pass

    def on_predict_batch_begin(self, batch, logs=None):
        pass

    def on_predict_batch_end(self, batch, logs=None):
        pass

    def on_train_begin(self, logs=None):
        pass

    def on_train_end(self, logs=None):
        pass

    def on_test_begin(self, logs=None):
        pass

    def on_test_end(self, logs=None):
        pass

    def on_predict_begin(self, logs=None):
        pass

    def on_predict_end(self, logs=None):
        pass

    # Which batch hooks this callback uses: the loop skips building batch logs for the others.
    def _implements_train_batch_hooks(self):
        return _overrides(self, "on_batch_begin", "on_batch_end", "on_train_batch_begin", "on_train_batch_end")

    def _implements_test_batch_hooks(self):
        return _overrides(self, "on_test_batch_begin", "on_test_batch_end")

    def _implements_predict_batch_hooks(self):
        return _overrides(self, "on_predict_batch_begin", "on_predict_batch_end")


def _overrides(cb, *names):
    return any(getattr(type(cb), n) is not getattr(Callback, n) for n in names)


class CallbackList:
    """The callbacks of one fit / evaluate / predict call, called in order. Batch-end logs are passed
    as a function (`read_logs`) and read at most once per batch, only when some callback listens."""

    def __init__(self, callbacks=None, model=None, params=None):
        if callbacks is None:
            callbacks = []
        elif isinstance(callbacks, Callback):
            callbacks = [callbacks]
        self.callbacks = list(callbacks)
        for cb in self.callbacks:
            if not isinstance(cb, Callback):
                raise TypeError(f"callbacks: expected devtensor.fit.callbacks.Callback instances, got "
                                f"{type(cb).__name__} (subclass Callback, or wrap functions in LambdaCallback)")
        for cb in self.callbacks:
            cb.set_model(model)
            cb.set_params(dict(params or {}))
        self._train = [cb for cb in self.callbacks if cb._implements_train_batch_hooks()]
        self._test = [cb for cb in self.callbacks if cb._implements_test_batch_hooks()]
        self._predict = [cb for cb in self.callbacks if cb._implements_predict_batch_hooks()]

    def append(self, callback):
        self.callbacks.append(callback)

    def __iter__(self):
        return iter(self.callbacks)

    def _call(self, hook, *args):
        for cb in self.callbacks:
            getattr(cb, hook)(*args)

    def on_train_begin(self, logs=None):
        self._call("on_train_begin", {} if logs is None else logs)

    def on_train_end(self, logs=None):
        self._call("on_train_end", {} if logs is None else logs)

    def on_epoch_begin(self, epoch, logs=None):
        self._call("on_epoch_begin", epoch, {} if logs is None else logs)

    def on_epoch_end(self, epoch, logs):
        self._call("on_epoch_end", epoch, logs)

    def on_test_begin(self, logs=None):
        self._call("on_test_begin", {} if logs is None else logs)

    def on_test_end(self, logs):
        self._call("on_test_end", logs)

    def on_predict_begin(self, logs=None):
        self._call("on_predict_begin", {} if logs is None else logs)

    def on_predict_end(self, logs=None):
        self._call("on_predict_end", {} if logs is None else logs)

    def on_train_batch_begin(self, batch):
        for cb in self._train:
            cb.on_train_batch_begin(batch, {})

    def on_train_batch_end(self, batch, read_logs):
        if self._train:
            logs = read_logs()
            for cb in self._train:
                cb.on_train_batch_end(batch, logs)

    def on_test_batch_begin(self, batch):
        for cb in self._test:
            cb.on_test_batch_begin(batch, {})

    def on_test_batch_end(self, batch, read_logs):
        if self._test:
            logs = read_logs()
            for cb in self._test:
                cb.on_test_batch_end(batch, logs)

    def on_predict_batch_begin(self, batch):
        for cb in self._predict:
            cb.on_predict_batch_begin(batch, {})

    def on_predict_batch_end(self, batch, outputs):
        for cb in self._predict:
            cb.on_predict_batch_end(batch, {"outputs": outputs})


class LambdaCallback(Callback):
    """Callbacks from plain functions, as Keras's: LambdaCallback(on_epoch_end=lambda epoch, logs: ...);
    on_batch_*/on_train_batch_* take (batch, logs), on_train_begin/end take (logs)."""

    _HOOKS = ("on_epoch_begin", "on_epoch_end", "on_train_begin", "on_train_end", "on_batch_begin",
              "on_batch_end", "on_train_batch_begin", "on_train_batch_end", "on_test_begin", "on_test_end",
              "on_test_batch_begin", "on_test_batch_end", "on_predict_begin", "on_predict_end",
              "on_predict_batch_begin", "on_predict_batch_end")

    def __init__(self, **hooks):
        super().__init__()
        unknown = sorted(set(hooks) - set(self._HOOKS))
        if unknown:
            raise TypeError(f"LambdaCallback: unknown hook(s) {', '.join(unknown)}; valid: {', '.join(self._HOOKS)}")
        self._hooks = {name: fn for name, fn in hooks.items() if fn is not None}
        for name, fn in self._hooks.items():
            setattr(self, name, fn)  # an instance attribute shadows the base method

    def _uses(self, *names):
        return any(n in self._hooks for n in names)

    def _implements_train_batch_hooks(self):
        return self._uses("on_batch_begin", "on_batch_end", "on_train_batch_begin", "on_train_batch_end")

    def _implements_test_batch_hooks(self):
        return self._uses("on_test_batch_begin", "on_test_batch_end")

    def _implements_predict_batch_hooks(self):
        return self._uses("on_predict_batch_begin", "on_predict_batch_end")


# -- monitoring a quantity -----------------------------------------------------------------------

# metric names (without "val_") whose larger values are better; the names devtensor's compile() gives
_MAXIMISED = {"accuracy", "acc", "binary_accuracy", "categorical_accuracy", "sparse_categorical_accuracy"}
_MINIMISED = {"loss", "mse", "mae", "mean_squared_error", "mean_absolute_error"}


def _direction(who, monitor, mode):
    """"min" or "max" for mode "auto", from the monitored quantity's name, as Keras 3 infers it from
    its metrics; a name it cannot place (a custom metric) must be given a mode, as in Keras."""
    if mode in ("min", "max"):
        return mode
    name = monitor[4:] if monitor.startswith("val_") else monitor
    if name in _MAXIMISED:
        return "max"
    if name in _MINIMISED or name.endswith("loss"):
        return "min"
    raise ValueError(f"{who} callback received monitor={monitor}, but cannot determine whether that metric "
                     f"should be maximized or minimized. Pass mode='max' in order to monitor based on the "
                     f"highest metric value, or pass mode='min' in order to use the lowest value.")


def _check_mode(who, mode):
    if mode not in ("auto", "min", "max"):
        warnings.warn(f"{who} mode '{mode}' is unknown, fallback to auto mode.", stacklevel=3)
        return "auto"
    return mode


def _monitored(who, monitor, logs):
    value = logs.get(monitor)
    if value is None:
        warnings.warn(f"{who} conditioned on metric `{monitor}` which is not available. Available metrics "
                      f"are: {','.join(logs)}", stacklevel=3)
        return None
    return float(value)


def _snapshot(module):
    """A copy of the module's state (parameters and buffers), kept on their device."""
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _lr(optimizer):
    return float(optimizer.param_groups[0]["lr"])


# -- the callbacks ---------------------------------------------------------------------------------

class ModelCheckpoint(Callback):
    """Save the model at the end of each epoch (or every `save_freq` batches) to `filepath`, which may
    name log values as format fields: "ckpt/{epoch:02d}-{val_loss:.2f}.safetensors" (epoch counts from 1).

    save_weights_only=True writes `module.state_dict()`; False writes
    {"model": state_dict, "optimizer": optimizer.state_dict(), "epoch": epochs done} (devtensor files hold
    no code, so the architecture is not stored: rebuild the module and load into it with
    Model.load_weights / Model.load). Each save goes through dt.save, which is atomic: a crash mid-save
    leaves the previous file intact. With save_best_only, a save happens only when `monitor` improves
    on the best value so far (initial_value_threshold, if given, is the value to beat); with a fixed
    filepath the file then always holds the best epoch's model."""

    def __init__(self, filepath, monitor="val_loss", verbose=0, save_best_only=False, save_weights_only=False,
                 mode="auto", save_freq="epoch", initial_value_threshold=None):
        super().__init__()
        self.filepath = os.fspath(filepath)
        self.monitor = monitor
        self.verbose = verbose
        self.save_best_only = save_best_only
        self.save_weights_only = save_weights_only
        self.mode = _check_mode("ModelCheckpoint", mode)
        if save_freq != "epoch" and (isinstance(save_freq, bool) or not isinstance(save_freq, numbers.Integral)
                                     or save_freq <= 0):
            raise ValueError(f"ModelCheckpoint: unrecognized save_freq: {save_freq!r}; expected 'epoch' or a "
                             f"positive int (a number of batches)")
        self.save_freq = save_freq
        self.initial_value_threshold = initial_value_threshold
        self.best = initial_value_threshold
        self._op = None
        self._epoch = 0
        self._batches_since_save = 0

    def _implements_train_batch_hooks(self):
        return self.save_freq != "epoch"

    def on_train_begin(self, logs=None):
        if self.save_best_only and self._op is None:
            direction = _direction("ModelCheckpoint", self.monitor, self.mode)
            self._op = np.less if direction == "min" else np.greater
            if self.best is None:
                self.best = math.inf if direction == "min" else -math.inf

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        self._batches_since_save += 1
        if self._batches_since_save >= self.save_freq:
            self._batches_since_save = 0
            self._save(self._epoch, batch, logs or {})

    def on_epoch_end(self, epoch, logs=None):
        if self.save_freq == "epoch":
            self._save(epoch, None, logs or {})

    def _file_path(self, epoch, batch, logs):
        try:
            if batch is None or "batch" in logs:
                return self.filepath.format(epoch=epoch + 1, **logs)
            return self.filepath.format(epoch=epoch + 1, batch=batch + 1, **logs)
        except KeyError as e:
            raise KeyError(f'Failed to format this callback filepath: "{self.filepath}". Reason: {e} is not '
                           f"in the logs (available: epoch, {', '.join(logs)})") from e

    def _save(self, epoch, batch, logs):
        filepath = self._file_path(epoch, batch, logs)
        if self.save_best_only:
            current = logs.get(self.monitor)
            if current is None:
                warnings.warn(f"Can save best model only with {self.monitor} available, skipping.", stacklevel=3)
                return
            current = float(current)
            if not self._op(current, self.best):
                if self.verbose > 0:
                    print(f"\nEpoch {epoch + 1}: {self.monitor} did not improve from {self.best:.5f}")
                return
            if self.verbose > 0:
                print(f"\nEpoch {epoch + 1}: {self.monitor} improved from {self.best:.5f} to {current:.5f}, "
                      f"saving model to {filepath}")
            self.best = current
        elif self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: saving model to {filepath}")
        dirname = os.path.dirname(filepath)
        if dirname:
            os.makedirs(dirname, exist_ok=True)
        if self.save_weights_only:
            self.model.save_weights(filepath)
        else:
            self.model.save(filepath, epoch=epoch + 1)


class EarlyStopping(Callback):
    """Stop training when `monitor` has not improved (by more than min_delta) for `patience` epochs:
    sets model.stop_training, and fit() ends after that epoch. With restore_best_weights, the module
    gets back the weights of the best epoch when training ends (kept as device copies, not on disk).
    baseline: a value to beat (patience counts until the monitored value beats it);
    start_from_epoch: epochs of warm-up that are not watched. Keras's semantics throughout."""

    def __init__(self, monitor="val_loss", min_delta=0, patience=0, verbose=0, mode="auto", baseline=None,
                 restore_best_weights=False, start_from_epoch=0):
        super().__init__()
        self.monitor = monitor
        self.patience = patience
        self.verbose = verbose
        self.baseline = baseline
        self.min_delta = abs(min_delta)
        self.mode = _check_mode("EarlyStopping", mode)
        self.restore_best_weights = restore_best_weights
        self.start_from_epoch = start_from_epoch
        self.wait = 0
        self.stopped_epoch = 0
        self.best = None
        self.best_weights = None
        self.best_epoch = 0
        self._sign = None

    def on_train_begin(self, logs=None):
        self._sign = 1.0 if _direction("EarlyStopping", self.monitor, self.mode) == "max" else -1.0
        self.wait = 0
        self.stopped_epoch = 0
        self.best = None
        self.best_weights = None
        self.best_epoch = 0

    def _is_improvement(self, value, reference):
        # max: value - min_delta > reference;  min: value + min_delta < reference
        return reference is None or self._sign * (value - reference) > self.min_delta

    def on_epoch_end(self, epoch, logs=None):
        current = _monitored("Early stopping", self.monitor, logs or {})
        if current is None or epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = _snapshot(self.model.module)  # until something beats it, this epoch is the best
            self.best_epoch = epoch
        self.wait += 1
        if self._is_improvement(current, self.best):
            self.best = current
            self.best_epoch = epoch
            if self.restore_best_weights:
                self.best_weights = _snapshot(self.model.module)
            if self.baseline is None or self._is_improvement(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose > 0:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose > 0:
                print(f"Restoring model weights from the end of the best epoch: {self.best_epoch + 1}.")
            self.model.module.load_state_dict(self.best_weights)


class CSVLogger(Callback):
    """Stream each epoch's logs to a CSV file: a header "epoch" + the sorted log keys of the first
    epoch, then one row per epoch (epoch counted from 0, as Keras writes it; a key missing later is
    "NA"). append=True continues an existing file (no second header)."""

    def __init__(self, filename, separator=",", append=False):
        super().__init__()
        self.sep = separator
        self.filename = os.fspath(filename)
        self.append = append
        self.writer = None
        self.keys = None
        self.append_header = True
        self.csv_file = None

    def on_train_begin(self, logs=None):
        if self.append:
            if os.path.exists(self.filename):
                with open(self.filename) as f:
                    self.append_header = not bool(len(f.readline()))
            mode = "a"
        else:
            mode = "w"
        if self.csv_file is not None and not self.csv_file.closed:
            self.csv_file.close()
        self.csv_file = open(self.filename, mode, newline="")
        self.writer = None
        self.keys = None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.keys is None:
            self.keys = sorted(logs)
        if self.writer is None:
            dialect = type("Dialect", (csv.excel,), {"delimiter": self.sep})
            self.writer = csv.DictWriter(self.csv_file, fieldnames=["epoch"] + self.keys, dialect=dialect)
            if self.append_header:
                self.writer.writeheader()
        row = collections.OrderedDict({"epoch": epoch})
        row.update((key, _csv_value(logs.get(key, "NA"))) for key in self.keys)
        self.writer.writerow(row)
        self.csv_file.flush()

    def on_train_end(self, logs=None):
        if self.csv_file is not None and not self.csv_file.closed:
            self.csv_file.close()
        self.writer = None


def _csv_value(v):
    if isinstance(v, str) or (isinstance(v, np.ndarray) and v.ndim == 0):
        return v
    if isinstance(v, collections.abc.Iterable):
        return f'"[{", ".join(map(str, v))}]"'
    return v


class LearningRateScheduler(Callback):
    """At the start of each epoch, set the learning rate to schedule(epoch, lr) (or schedule(epoch) for
    a one-argument function); epoch counts from 0. Applied to every param group of the optimizer,
    each from its own current lr. Adds "learning_rate" (the first group's) to the epoch logs."""

    def __init__(self, schedule, verbose=0):
        super().__init__()
        if not callable(schedule):
            raise TypeError(f"LearningRateScheduler: schedule must be a function (epoch, lr) -> lr, "
                            f"got {type(schedule).__name__}")
        self.schedule = schedule
        self.verbose = verbose
        self._takes_lr = _positional_count(schedule) != 1

    def on_epoch_begin(self, epoch, logs=None):
        groups = self.model.optimizer.param_groups
        for group in groups:
            lr = self.schedule(epoch, float(group["lr"])) if self._takes_lr else self.schedule(epoch)
            if isinstance(lr, bool) or not isinstance(lr, numbers.Real):
                raise ValueError(f'The output of the "schedule" function should be a float. Got: {lr!r}')
            group["lr"] = float(lr)
        if self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: LearningRateScheduler setting learning rate to {_lr(self.model.optimizer)}.")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = _lr(self.model.optimizer)


def _positional_count(fn):
    """How many positional arguments fn takes (2 when unknown, or when it takes *args)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return 2
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return 2
    return sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params)


class ReduceLROnPlateau(Callback):
    """Multiply the learning rate by `factor` when `monitor` has not improved by more than `min_delta`
    (absolute) for `patience` epochs, then wait `cooldown` epochs; never below min_lr.

    Keras's arguments and Keras's counting, carried out by devtensor.optim.lr_scheduler.
    ReduceLROnPlateau (PyTorch's semantics, the one implementation of the rule). The two count
    differently: Keras reduces at the `patience`-th epoch without improvement (at the first for
    patience 0), PyTorch after `patience` such epochs, at the next; and Keras's cooldown of c epochs
    ignores c - 1 of them. So this callback drives the scheduler with patience max(patience - 1, 0),
    cooldown max(cooldown - 1, 0), threshold_mode "abs" and eps 0, which gives Keras's sequence of
    learning rates. Adds "learning_rate" (the rate used in the epoch, before any reduction) to the logs."""

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, verbose=0, mode="auto", min_delta=1e-4,
                 cooldown=0, min_lr=0.0, **kwargs):
        super().__init__()
        if factor >= 1.0:
            raise ValueError(f"ReduceLROnPlateau does not support a factor >= 1.0. Received factor={factor}")
        if kwargs:
            raise TypeError(f"ReduceLROnPlateau: unexpected argument(s) {', '.join(sorted(kwargs))}")
        self.monitor = monitor
        self.factor = factor
        self.patience = patience
        self.verbose = verbose
        self.mode = _check_mode("ReduceLROnPlateau", mode)
        self.min_delta = min_delta
        self.cooldown = cooldown
        self.min_lr = min_lr
        self.scheduler = None

    def on_train_begin(self, logs=None):
        self.scheduler = lr_scheduler.ReduceLROnPlateau(
            self.model.optimizer, mode=_direction("ReduceLROnPlateau", self.monitor, self.mode),
            factor=self.factor, patience=max(self.patience - 1, 0), threshold=self.min_delta,
            threshold_mode="abs", cooldown=max(self.cooldown - 1, 0), min_lr=self.min_lr, eps=0.0)

    def on_epoch_end(self, epoch, logs=None):
        logs = {} if logs is None else logs
        old = _lr(self.model.optimizer)
        logs["learning_rate"] = old
        current = _monitored("Learning rate reduction is", self.monitor, logs)
        if current is None:
            return
        self.scheduler.step(current)
        new = _lr(self.model.optimizer)
        if self.verbose > 0 and new != old:
            print(f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {new}.")


class TerminateOnNaN(Callback):
    """Stop training as soon as a batch's loss is NaN or infinite (reads the loss every batch)."""

    def on_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            print(f"Batch {batch}: Invalid loss, terminating training")
            self.model.stop_training = True


class TensorBoard(Callback):
    """Keras's TensorBoard callback: event files for `tensorboard --logdir <log_dir>`.

    `<log_dir>/train` gets "epoch_<key>" scalars (loss, metrics, learning_rate) at step = epoch, and
    `<log_dir>/validation` the "val_" ones under the same names, so TensorBoard draws train and
    validation in one chart. update_freq="batch" or N also writes "batch_<key>" (the epoch's running
    means) every N batches at the global batch count (a host read per written batch).
    histogram_freq=N writes each parameter's histogram every N epochs. write_graph is accepted but
    writes nothing: a callback never sees an input batch to trace the model on; draw the graph with
    SummaryWriter(log_dir + "/train").add_graph(model.module, x[:1]). write_images, profiling and
    embeddings are not supported."""

    def __init__(self, log_dir="logs", histogram_freq=0, write_graph=True, write_images=False,
                 write_steps_per_second=False, update_freq="epoch", profile_batch=0, embeddings_freq=0,
                 embeddings_metadata=None):
        super().__init__()
        for name, value, default in (("write_images", write_images, False), ("profile_batch", profile_batch, 0),
                                     ("embeddings_freq", embeddings_freq, 0),
                                     ("embeddings_metadata", embeddings_metadata, None)):
            if value != default:
                raise NotImplementedError(f"TensorBoard: {name}={value!r} is not supported by devtensor")
        if update_freq == "batch":
            update_freq = 1
        if update_freq != "epoch" and (isinstance(update_freq, bool) or not isinstance(update_freq, numbers.Integral)
                                       or update_freq <= 0):
            raise ValueError(f"TensorBoard: update_freq must be 'epoch', 'batch' or a positive int, got {update_freq!r}")
        self.log_dir = os.fspath(log_dir)
        self.histogram_freq = histogram_freq
        self.write_graph = write_graph
        self.write_steps_per_second = write_steps_per_second
        self.update_freq = update_freq
        self._writers = {}
        self._global_train_batch = 0
        self._epoch_start = None
        self._epoch_batches = 0

    def _writer(self, which):
        if which not in self._writers:
            self._writers[which] = _tensorboard.SummaryWriter(os.path.join(self.log_dir, which))
        return self._writers[which]

    def _implements_train_batch_hooks(self):
        return self.update_freq != "epoch" or self.write_steps_per_second

    def on_train_begin(self, logs=None):
        self._global_train_batch = 0
        self._writer("train")

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = time.perf_counter()
        self._epoch_batches = 0

    def on_train_batch_end(self, batch, logs=None):
        self._global_train_batch += 1
        self._epoch_batches += 1
        if self.update_freq != "epoch" and self._global_train_batch % self.update_freq == 0:
            writer = self._writer("train")
            for name, value in (logs or {}).items():
                writer.add_scalar("batch_" + name, value, self._global_train_batch)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        train = {k: v for k, v in logs.items() if not k.startswith("val_")}
        val = {k[4:]: v for k, v in logs.items() if k.startswith("val_")}
        if self.model is not None and self.model.optimizer is not None:
            train["learning_rate"] = _lr(self.model.optimizer)
        if self.write_steps_per_second and self._epoch_start is not None:
            train["steps_per_second"] = self._epoch_batches / max(time.perf_counter() - self._epoch_start, 1e-12)
        for which, values in (("train", train), ("validation", val)):
            if values:
                writer = self._writer(which)
                for name, value in values.items():
                    writer.add_scalar("epoch_" + name, value, epoch)
        if self.histogram_freq and epoch % self.histogram_freq == 0:
            writer = self._writer("train")
            for name, param in self.model.module.named_parameters():
                writer.add_histogram(name + "/histogram", param, epoch)
        for writer in self._writers.values():
            writer.flush()

    def on_test_end(self, logs=None):
        if self.model is not None and self.model.optimizer is not None and self._global_train_batch:
            writer = self._writer("validation")
            for name, value in (logs or {}).items():
                writer.add_scalar(f"evaluation_{name}_vs_iterations", value, self._global_train_batch)

    def on_train_end(self, logs=None):
        for writer in self._writers.values():
            writer.close()
        self._writers = {}
