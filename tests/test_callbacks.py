"""devtensor.fit.callbacks and the fit loop's hooks: each callback's behaviour checked against what it
must have done (the weights a checkpoint holds, the epoch training stopped at, the rows of a CSV, the
learning rates in the optimizer's param_groups), ReduceLROnPlateau against PyTorch's scheduler and
against Keras's rule, the TensorBoard callback through TensorBoard's reader, and History.plot's PNG.

Where a behaviour depends on the monitored values, a callback placed before the one under test
scripts them: callbacks share one logs dict per epoch, as in Keras, so the values are exact."""
from __future__ import annotations

import csv
import math
import random

import numpy as np
import pytest

import devtensor as dt
from devtensor import nn
from devtensor.fit import History, Model
from devtensor.fit.callbacks import (Callback, CSVLogger, EarlyStopping, LambdaCallback, LearningRateScheduler,
                                     ModelCheckpoint, ReduceLROnPlateau, TensorBoard, TerminateOnNaN)
from devtensor.optim import lr_scheduler


def _data(n=24, d=4, c=3, seed=0):
    rng = np.random.default_rng(seed)
    return dt.tensor(rng.normal(size=(n, d)).astype(np.float32)), dt.tensor(rng.integers(0, c, size=n))


def _model(lr=0.1, seed=0, optimizer=None):
    dt.manual_seed(seed)
    model = Model(nn.Linear(4, 3))
    model.compile(optimizer or dt.optim.SGD(model.module.parameters(), lr=lr), "cross_entropy", metrics=["accuracy"])
    return model


def _fit(model, callbacks, epochs=5, validation=True, **kw):
    x, y = _data()
    return model.fit(x, y, batch_size=8, epochs=epochs, verbose=0, shuffle=False,
                     validation_data=_data(12, seed=1) if validation else None, callbacks=callbacks, **kw)


class Script(Callback):
    """Overwrites logs[key] at each epoch end with the next scripted value."""

    def __init__(self, key, values):
        super().__init__()
        self.key, self.values = key, list(values)

    def on_epoch_end(self, epoch, logs=None):
        logs[self.key] = self.values[epoch]


class Weights(Callback):
    """The module's weights (as numpy) at the end of every epoch."""

    def __init__(self):
        super().__init__()
        self.at = []

    def on_epoch_end(self, epoch, logs=None):
        self.at.append({k: v.numpy().copy() for k, v in self.model.module.state_dict().items()})


def _weights(module):
    return {k: v.numpy().copy() for k, v in module.state_dict().items()}


def _assert_weights_equal(got, want):
    assert got.keys() == want.keys()
    for k in got:
        np.testing.assert_array_equal(got[k], want[k])


# -- the hooks ------------------------------------------------------------------------------------

class Recorder(Callback):
    def __init__(self):
        super().__init__()
        self.calls = []

    def _rec(name):
        def hook(self, *args):
            self.calls.append((name,) + tuple(a if not isinstance(a, dict) else dict(a) for a in args))
        return hook

    for _name in ("on_train_begin", "on_train_end", "on_epoch_begin", "on_epoch_end", "on_train_batch_begin",
                  "on_train_batch_end", "on_test_begin", "on_test_end", "on_test_batch_begin", "on_test_batch_end",
                  "on_predict_begin", "on_predict_end", "on_predict_batch_begin", "on_predict_batch_end"):
        locals()[_name] = _rec(_name)
    del _name


def test_fit_calls_the_hooks_in_keras_order_with_logs():
    rec = Recorder()
    model = _model()
    history = _fit(model, [rec], epochs=2)
    names = [c[0] for c in rec.calls]
    epoch = (["on_epoch_begin"] + ["on_train_batch_begin", "on_train_batch_end"] * 3
             + ["on_test_begin"] + ["on_test_batch_begin", "on_test_batch_end"] * 2 + ["on_test_end", "on_epoch_end"])
    assert names == ["on_train_begin"] + epoch * 2 + ["on_train_end"]
    assert rec.model is model and rec.params == {"epochs": 2, "steps": 3, "verbose": 0}
    batch_end = [c for c in rec.calls if c[0] == "on_train_batch_end"]
    assert [c[1] for c in batch_end] == [0, 1, 2, 0, 1, 2]
    assert set(batch_end[0][2]) == {"loss", "accuracy"}  # the epoch's running means so far
    epoch_end = [c for c in rec.calls if c[0] == "on_epoch_end"]
    assert [c[1] for c in epoch_end] == [0, 1]
    assert set(epoch_end[0][2]) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert epoch_end[1][2] == {k: v[1] for k, v in history.history.items()}
    test_end = [c for c in rec.calls if c[0] == "on_test_end"]
    assert test_end[0][1] == {"loss": history.history["val_loss"][0], "accuracy": history.history["val_accuracy"][0]}
    assert rec.calls[-1] == ("on_train_end", epoch_end[-1][2])
    assert model.history is history


def test_the_last_batch_logs_are_the_epoch_logs():
    rec = Recorder()
    history = _fit(_model(), [rec], epochs=1, validation=False)
    last = [c for c in rec.calls if c[0] == "on_train_batch_end"][-1]
    assert last[2] == {k: v[0] for k, v in history.history.items()}


def test_keras_on_batch_aliases_and_evaluate_predict_hooks():
    seen = []

    class OnBatch(Callback):
        def on_batch_end(self, batch, logs=None):
            seen.append(batch)

    model = _model()
    _fit(model, [OnBatch()], epochs=1, validation=False)
    assert seen == [0, 1, 2]
    rec = Recorder()
    x, y = _data(10)
    logs = model.evaluate(x, y, batch_size=4, verbose=0, callbacks=[rec])
    assert [c[0] for c in rec.calls] == ["on_test_begin"] + ["on_test_batch_begin", "on_test_batch_end"] * 3 + ["on_test_end"]
    assert rec.calls[-1][1] == logs
    rec = Recorder()
    out = model.predict(x, batch_size=4, callbacks=[rec])
    assert [c[0] for c in rec.calls] == ["on_predict_begin"] + ["on_predict_batch_begin", "on_predict_batch_end"] * 3 + ["on_predict_end"]
    np.testing.assert_array_equal(rec.calls[2][2]["outputs"].numpy(), out[:4].numpy())


def test_batch_logs_are_read_only_when_a_callback_listens(monkeypatch):
    """No batch hook: no host read per batch (RunningMean.result is the read)."""
    from devtensor.fit import metrics

    reads = []
    original = metrics.RunningMean.result
    monkeypatch.setattr(metrics.RunningMean, "result", lambda self: reads.append(1) or original(self))
    _fit(_model(), [EarlyStopping(monitor="loss", patience=5), CSVLogger("/dev/null")], epochs=2)
    assert len(reads) == 2 * 2  # per epoch: one for the training logs, one for validation
    reads.clear()
    _fit(_model(), [LambdaCallback(on_train_batch_end=lambda batch, logs: None)], epochs=2, validation=False)
    assert len(reads) == 2 * (3 + 1)


def test_stop_training_from_a_batch_hook_ends_fit_after_that_batch():
    class StopAt(Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 1:
                self.model.stop_training = True

    rec = Recorder()
    history = _fit(_model(), [StopAt(), rec], epochs=4)
    assert history.epoch == [0]
    assert [c[1] for c in rec.calls if c[0] == "on_train_batch_end"] == [0, 1]
    assert [c[0] for c in rec.calls][-2:] == ["on_epoch_end", "on_train_end"]  # validation and epoch end still run


def test_fit_rejects_what_is_not_a_callback():
    with pytest.raises(TypeError, match="Callback instances, got function"):
        _fit(_model(), [lambda epoch, logs: None])


def test_initial_epoch_resumes_the_count():
    history = _fit(_model(), None, epochs=3, initial_epoch=1)
    assert history.epoch == [1, 2]


# -- ModelCheckpoint ------------------------------------------------------------------------------

def test_best_only_checkpoint_holds_the_best_epochs_weights(tmp_path):
    path = tmp_path / "best.safetensors"
    weights = Weights()
    model = _model()
    _fit(model, [Script("val_loss", [3.0, 1.0, 2.0, 0.5, 4.0]), weights,
                 ModelCheckpoint(path, monitor="val_loss", save_best_only=True, save_weights_only=True)])
    _assert_weights_equal({k: v.numpy() for k, v in dt.load(path).items()}, weights.at[3])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.safetensors"]  # no temporaries left
    fresh = _model(seed=1)
    fresh.load_weights(path)
    _assert_weights_equal(_weights(fresh.module), weights.at[3])


def test_checkpoint_mode_auto_maximises_accuracy_and_keeps_the_full_state(tmp_path):
    path = tmp_path / "ckpt.safetensors"
    weights = Weights()
    model = _model()
    _fit(model, [Script("val_accuracy", [0.1, 0.5, 0.3]), weights,
                 ModelCheckpoint(path, monitor="val_accuracy", save_best_only=True)], epochs=3)
    ckpt = dt.load(path)
    assert set(ckpt) == {"model", "optimizer", "epoch"} and ckpt["epoch"] == 2
    _assert_weights_equal({k: v.numpy() for k, v in ckpt["model"].items()}, weights.at[1])
    fresh = _model(seed=1)
    assert fresh.load(path) == 2
    _assert_weights_equal(_weights(fresh.module), weights.at[1])
    assert fresh.optimizer.state_dict()["param_groups"] == model.optimizer.state_dict()["param_groups"]


def test_checkpoint_filepath_formats_epoch_and_logs(tmp_path):
    _fit(_model(), [Script("val_loss", [3.0, 1.0, 2.5]),
                    ModelCheckpoint(str(tmp_path / "run" / "e{epoch:02d}-{val_loss:.2f}.st"), save_weights_only=True)],
         epochs=3)
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["e01-3.00.st", "e02-1.00.st", "e03-2.50.st"]
    with pytest.raises(KeyError, match="Failed to format this callback filepath"):
        _fit(_model(), [ModelCheckpoint(str(tmp_path / "{val_f1}.st"))], epochs=1)


def test_checkpoint_every_n_batches(tmp_path):
    _fit(_model(), [ModelCheckpoint(str(tmp_path / "e{epoch}-b{batch}.st"), save_freq=2, save_weights_only=True)],
         epochs=2, validation=False)
    # 3 batches per epoch: saves after the 2nd, 4th and 6th batch of the run
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e1-b2.st", "e2-b1.st", "e2-b3.st"]


def test_checkpoint_needs_a_mode_for_a_metric_it_cannot_place(tmp_path):
    with pytest.raises(ValueError, match="mode='max'"):
        _fit(_model(), [ModelCheckpoint(tmp_path / "x.st", monitor="val_f1", save_best_only=True)], epochs=1)
    with pytest.warns(UserWarning, match="Can save best model only with val_f1 available"):
        _fit(_model(), [ModelCheckpoint(tmp_path / "x.st", monitor="val_f1", mode="max", save_best_only=True)],
             epochs=1)
    assert not (tmp_path / "x.st").exists()


# -- EarlyStopping --------------------------------------------------------------------------------

def test_early_stopping_stops_after_patience_flat_epochs_and_restores_the_best():
    weights = Weights()
    stop = EarlyStopping(monitor="val_loss", patience=2, restore_best_weights=True)
    model = _model()
    history = _fit(model, [Script("val_loss", [1.0, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]), weights, stop], epochs=7)
    # epoch 1 is the best; epochs 2 and 3 do not improve: patience 2 is used up at epoch 3
    assert history.epoch == [0, 1, 2, 3] and stop.stopped_epoch == 3 and stop.best_epoch == 1
    _assert_weights_equal(_weights(model.module), weights.at[1])
    assert not np.array_equal(weights.at[1]["weight"], weights.at[3]["weight"])  # the weights did move since


def test_early_stopping_min_delta_mode_max_and_baseline():
    stop = EarlyStopping(monitor="loss", patience=1, min_delta=0.1)
    history = _fit(_model(), [Script("loss", [1.0, 0.95, 0.9, 0.8]), stop], epochs=4)
    assert history.epoch == [0, 1]  # 0.95 is not better by more than 0.1
    stop = EarlyStopping(monitor="val_accuracy", patience=1)  # auto: accuracy is maximised
    assert _fit(_model(), [Script("val_accuracy", [0.5, 0.6, 0.7, 0.6, 0.5]), stop], epochs=5).epoch == [0, 1, 2, 3]
    # improving epochs that do not beat the baseline still count towards patience (Keras's rule)
    flat = [1.0, 0.5, 0.5, 0.5, 0.5]
    assert _fit(_model(), [Script("val_loss", flat), EarlyStopping(patience=2)], epochs=5).epoch == [0, 1, 2, 3]
    assert _fit(_model(), [Script("val_loss", flat), EarlyStopping(patience=2, baseline=0.1)], epochs=5).epoch == [0, 1, 2]


def test_early_stopping_warns_when_the_monitor_is_missing():
    with pytest.warns(UserWarning, match="Early stopping conditioned on metric `val_loss` which is not available"):
        history = _fit(_model(), [EarlyStopping(patience=0)], epochs=2, validation=False)
    assert history.epoch == [0, 1]


# -- CSVLogger ------------------------------------------------------------------------------------

def test_csv_logger_columns_rows_and_append(tmp_path):
    path = tmp_path / "log.csv"
    history = _fit(_model(), [CSVLogger(path)], epochs=3)
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["epoch", "accuracy", "loss", "val_accuracy", "val_loss"]
    assert [r[0] for r in rows[1:]] == ["0", "1", "2"]
    for key in rows[0][1:]:
        assert [float(r[rows[0].index(key)]) for r in rows[1:]] == history.history[key]  # repr round trips
    _fit(_model(), [CSVLogger(path, separator=";", append=True)], epochs=2)
    with open(path, newline="") as f:
        lines = f.read().splitlines()
    assert len(lines) == 1 + 3 + 2 and lines[4].startswith("0;") and lines[5].startswith("1;")


# -- learning rates -------------------------------------------------------------------------------

def test_learning_rate_scheduler_sets_every_param_group():
    net = nn.Linear(4, 3)
    opt = dt.optim.SGD([{"params": [net.weight], "lr": 0.1}, {"params": [net.bias], "lr": 0.02}])
    model = Model(net)
    model.compile(opt, "cross_entropy")
    seen = []
    lrs = LambdaCallback(on_train_batch_begin=lambda b, logs: seen.append([g["lr"] for g in opt.param_groups]))
    history = _fit(model, [LearningRateScheduler(lambda epoch, lr: lr if epoch == 0 else lr * 0.5), lrs], epochs=3)
    assert seen[::3] == [[0.1, 0.02], [0.05, 0.01], [0.025, 0.005]]
    assert history.history["learning_rate"] == [0.1, 0.05, 0.025]


def test_learning_rate_scheduler_is_what_the_optimizer_steps_with():
    model = _model(lr=0.5)
    before = _weights(model.module)
    _fit(model, [LearningRateScheduler(lambda epoch: 0.0)], epochs=2)  # the one-argument form
    _assert_weights_equal(_weights(model.module), before)
    with pytest.raises(ValueError, match="should be a float"):
        _fit(_model(), [LearningRateScheduler(lambda epoch, lr: "fast")], epochs=1)


def _plateau_metrics(rng, n=40):
    """A noisy descent with flat stretches, ties and relapses: every branch of the rule is taken."""
    values, v = [], 1.0
    for _ in range(n):
        r = rng.random()
        v = v * 0.9 if r < 0.3 else v if r < 0.6 else v * (1 + 0.1 * rng.random()) if r < 0.85 else v * (1 - 1e-6)
        values.append(v)
    return values


CONFIGS = [dict(), dict(mode="max"), dict(patience=0), dict(patience=3, cooldown=2), dict(threshold_mode="abs",
           threshold=0.01), dict(factor=0.5, min_lr=1e-3), dict(patience=1, cooldown=1, eps=1e-3),
           dict(mode="max", threshold_mode="abs", patience=2, factor=0.3, min_lr=[0.0, 0.004])]


@pytest.mark.parametrize("config", CONFIGS, ids=[str(c) for c in CONFIGS])
def test_reduce_lr_on_plateau_matches_torch(config):
    torch = pytest.importorskip("torch", reason="PyTorch (CPU) is the reference for ReduceLROnPlateau")
    rng = random.Random(str(config))
    metrics = _plateau_metrics(rng)
    net = nn.Linear(2, 2)
    tnet = torch.nn.Linear(2, 2)
    ours = dt.optim.SGD([{"params": [net.weight], "lr": 0.1}, {"params": [net.bias], "lr": 0.05}])
    ref = torch.optim.SGD([{"params": [tnet.weight], "lr": 0.1}, {"params": [tnet.bias], "lr": 0.05}])
    config = {"patience": 2, **config}
    sched = lr_scheduler.ReduceLROnPlateau(ours, **config)
    tsched = torch.optim.lr_scheduler.ReduceLROnPlateau(ref, **config)
    got, want = [], []
    for i, m in enumerate(metrics):
        sched.step(dt.tensor(m, dtype=dt.float64) if i % 2 else m)  # a 0-d Tensor is accepted too
        tsched.step(m)
        got.append([g["lr"] for g in ours.param_groups])
        want.append([g["lr"] for g in ref.param_groups])
        assert sched.get_last_lr() == tsched.get_last_lr()
        assert (sched.num_bad_epochs, sched.cooldown_counter, sched.best) == \
               (tsched.num_bad_epochs, tsched.cooldown_counter, tsched.best)
    assert got == want
    assert len({tuple(g) for g in got}) > 1  # the sequence did reduce


def test_reduce_lr_on_plateau_state_dict_round_trip():
    net = nn.Linear(2, 2)
    opt = dt.optim.SGD(net.parameters(), lr=0.1)
    sched = lr_scheduler.ReduceLROnPlateau(opt, patience=1)
    for m in (1.0, 1.0, 1.0):
        sched.step(m)
    state = sched.state_dict()
    assert "optimizer" not in state
    other = lr_scheduler.ReduceLROnPlateau(dt.optim.SGD(nn.Linear(2, 2).parameters(), lr=0.1), patience=1)
    other.load_state_dict(state)
    assert (other.best, other.num_bad_epochs, other.last_epoch) == (sched.best, sched.num_bad_epochs, 3)
    with pytest.raises(ValueError, match="Factor should be < 1.0"):
        lr_scheduler.ReduceLROnPlateau(opt, factor=1.0)


def _keras_reduce_lr(metrics, lr, factor, patience, cooldown, min_delta, min_lr):
    """Keras's ReduceLROnPlateau.on_epoch_end, mode "min" (keras/src/callbacks/reduce_lr_on_plateau.py):
    the learning rate in use at each epoch."""
    best, wait, cooldown_counter, used = math.inf, 0, 0, []
    for current in metrics:
        used.append(lr)
        if cooldown_counter > 0:
            cooldown_counter -= 1
            wait = 0
        if current < best - min_delta:
            best, wait = current, 0
        elif not cooldown_counter > 0:
            wait += 1
            if wait >= patience and lr > np.float32(min_lr):
                lr = max(lr * factor, min_lr)
                cooldown_counter, wait = cooldown, 0
    return used


@pytest.mark.parametrize("patience", [0, 1, 2, 4])
@pytest.mark.parametrize("cooldown", [0, 1, 3])
def test_reduce_lr_on_plateau_callback_follows_keras(patience, cooldown):
    metrics = _plateau_metrics(random.Random(f"{patience}-{cooldown}"), n=20)
    model = _model(lr=0.1)
    history = _fit(model, [Script("val_loss", metrics),
                           ReduceLROnPlateau(factor=0.5, patience=patience, cooldown=cooldown, min_lr=0.01)],
                   epochs=len(metrics), validation=False)
    want = _keras_reduce_lr(metrics, 0.1, 0.5, patience, cooldown, 1e-4, 0.01)
    assert len(set(want)) >= 2  # the rate was reduced
    assert history.history["learning_rate"] == want


# -- TensorBoard, TerminateOnNaN, History.plot ------------------------------------------------------

def test_tensorboard_callback_writes_epoch_batch_and_histogram_summaries(tmp_path):
    pytest.importorskip("tensorboardX", reason="tensorboardX is not installed (the test extra installs it)")
    pytest.importorskip("tensorboard", reason="tensorboard is not installed (the test extra installs it)")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    def read(path):
        ea = EventAccumulator(str(path), size_guidance={"scalars": 0, "histograms": 0})
        ea.Reload()
        return ea

    history = _fit(_model(), [TensorBoard(tmp_path, histogram_freq=2, update_freq=2)], epochs=3)
    train, val = read(tmp_path / "train"), read(tmp_path / "validation")
    for key in ("loss", "accuracy"):
        got = [(e.step, e.value) for e in train.Scalars("epoch_" + key)]
        assert got == [(i, float(np.float32(v))) for i, v in enumerate(history.history[key])]
        got = [(e.step, e.value) for e in val.Scalars("epoch_" + key)]
        assert got == [(i, float(np.float32(v))) for i, v in enumerate(history.history["val_" + key])]
    assert [e.value for e in train.Scalars("epoch_learning_rate")] == [float(np.float32(0.1))] * 3
    assert [e.step for e in train.Scalars("batch_loss")] == [2, 4, 6, 8]  # 9 batches, every 2nd
    assert [e.step for e in val.Scalars("evaluation_loss_vs_iterations")] == [3, 6, 9]
    assert set(train.Tags()["histograms"]) == {"weight/histogram", "bias/histogram"}
    assert [h.step for h in train.Histograms("weight/histogram")] == [0, 2]
    with pytest.raises(NotImplementedError, match="write_images"):
        TensorBoard(tmp_path, write_images=True)


def test_terminate_on_nan():
    class Poison(Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 1:
                logs["loss"] = float("nan")

    history = _fit(_model(), [Poison(), TerminateOnNaN()], epochs=3, validation=False)
    assert history.epoch == [0]


def test_history_plot_writes_a_png_of_the_expected_size(tmp_path):
    pytest.importorskip("matplotlib", reason="matplotlib is not installed (the plot and test extras install it)")
    import matplotlib.image

    history = _fit(_model(), [LearningRateScheduler(lambda e, lr: lr * 0.9)], epochs=3)
    path = tmp_path / "history.png"
    fig = history.plot(path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert matplotlib.image.imread(path).shape[:2] == (350, 3 * 450)  # loss, accuracy, learning_rate panels
    assert [ax.get_title() for ax in fig.axes] == ["loss", "accuracy", "learning_rate"]
    assert [line.get_label() for line in fig.axes[0].lines] == ["train", "validation"]
    np.testing.assert_array_equal(fig.axes[0].lines[1].get_ydata(), history.history["val_loss"])
    with pytest.raises(ValueError, match="no epochs"):
        History().plot()
