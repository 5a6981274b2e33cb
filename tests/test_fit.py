"""devtensor.fit, the Keras-style loop: values checked against numpy computations on the same weights
(evaluate, sample-weighted means), against least squares (fit), and against the tensor path (loaders);
plus history shape, train/eval modes, printing and the argument errors."""
from __future__ import annotations

import numpy as np
import pytest

import devtensor as dt
import devtensor.nn.functional as F
from devtensor import nn
from devtensor.fit import Model
from devtensor.utils.data import DataLoader, TensorDataset


def _np(t):
    return t.detach().cpu().numpy().astype(np.float64)


def _classification(n=50, d=5, c=3, seed=0):
    rng = np.random.default_rng(seed)
    x = dt.tensor(rng.normal(size=(n, d)).astype(np.float32))
    y = dt.tensor(rng.integers(0, c, size=n))
    return x, y


def _np_cross_entropy(logits, y):
    z = logits - logits.max(1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(1, keepdims=True))
    return -logp[np.arange(len(y)), y].mean()


def _net(d=5, c=3, seed=0):
    dt.manual_seed(seed)
    return nn.Linear(d, c)


# -- evaluate / predict against numpy ----------------------------------------------------------

def test_evaluate_matches_numpy_on_the_same_weights(device):
    x, y = _classification()
    net = _net().to(device)
    model = Model(net)
    model.compile("sgd", "cross_entropy", metrics=["accuracy"])
    # batch_size 7 over 50 samples: the last batch holds 1 sample and must weigh 1/50, not 1/8
    got = model.evaluate(x, y, batch_size=7, verbose=0)
    logits = _np(x) @ _np(net.weight).T + _np(net.bias)
    assert set(got) == {"loss", "accuracy"}
    assert got["loss"] == pytest.approx(_np_cross_entropy(logits, y.numpy()), rel=1e-5)
    assert got["accuracy"] == pytest.approx((logits.argmax(1) == y.numpy()).mean(), abs=1e-9)


def test_regression_metrics_match_numpy():
    rng = np.random.default_rng(1)
    x = dt.tensor(rng.normal(size=(23, 4)).astype(np.float32))
    y = dt.tensor(rng.normal(size=(23, 2)).astype(np.float32))
    net = _net(4, 2)
    model = Model(net)
    model.compile("adam", "mae", metrics=["mse", "mae"])
    got = model.evaluate(x, y, batch_size=5, verbose=0)
    err = _np(x) @ _np(net.weight).T + _np(net.bias) - _np(y)
    assert got["mse"] == pytest.approx((err ** 2).mean(), rel=1e-5)
    assert got["mae"] == pytest.approx(np.abs(err).mean(), rel=1e-5)
    assert got["loss"] == pytest.approx(got["mae"], rel=1e-6)


def test_predict_stacks_outputs_without_grad():
    x, _ = _classification(n=11)
    net = _net()
    out = Model(net).predict(x, batch_size=4)  # predict needs no compile
    assert out.shape == (11, 3) and not out.requires_grad
    np.testing.assert_allclose(_np(out), _np(x) @ _np(net.weight).T + _np(net.bias), rtol=1e-5, atol=1e-6)


def test_predict_takes_a_loader_of_pairs_or_inputs():
    x, y = _classification(n=10)
    model = Model(_net())
    want = _np(model.predict(x))
    np.testing.assert_allclose(_np(model.predict(DataLoader(TensorDataset(x, y), batch_size=3))), want, rtol=1e-6)
    np.testing.assert_allclose(_np(model.predict([x[:4], x[4:]])), want, rtol=1e-6)


# -- sample-weighted means ---------------------------------------------------------------------

def _target_mean(pred, target):
    return target.float().mean()


def test_metrics_are_sample_weighted_over_an_uneven_last_batch():
    x = dt.zeros(10, 5)
    y = dt.arange(10) % 3
    model = Model(_net())
    model.compile("sgd", "cross_entropy", metrics=[_target_mean])
    got = model.evaluate(x, y, batch_size=4, verbose=0)  # batches of 4, 4, 2
    # the mean over samples (9/10), not the mean of the three batch means ((3/4 + 4/4 + 2/2) / 3)
    assert got["_target_mean"] == pytest.approx(y.numpy().mean())
    assert got["_target_mean"] != pytest.approx(np.mean([0.75, 1.0, 1.0]))


def test_fit_loss_is_the_sample_weighted_epoch_mean():
    # with lr 0 the weights never move, so the epoch's mean training loss is the full-data loss
    x, y = _classification(n=30)
    net = _net()
    model = Model(net)
    model.compile(dt.optim.SGD(net.parameters(), lr=0.0), "cross_entropy", metrics=["acc"])
    hist = model.fit(x, y, batch_size=8, epochs=2, verbose=0)  # 8, 8, 8, 6, shuffled
    logits = _np(x) @ _np(net.weight).T + _np(net.bias)
    assert hist.history["loss"] == pytest.approx([_np_cross_entropy(logits, y.numpy())] * 2, rel=1e-5)
    assert hist.history["acc"] == pytest.approx([(logits.argmax(1) == y.numpy()).mean()] * 2)


# -- fit ---------------------------------------------------------------------------------------

def test_fit_reaches_the_least_squares_answer(device):
    rng = np.random.default_rng(2)
    xn = rng.normal(size=(64, 3))
    yn = xn @ np.array([[1.5], [-2.0], [0.5]]) + 0.3 + 0.1 * rng.normal(size=(64, 1))
    x, y = dt.tensor(xn.astype(np.float32)), dt.tensor(yn.astype(np.float32))
    net = _net(3, 1).to(device)
    model = Model(net)
    model.compile(dt.optim.SGD(net.parameters(), lr=0.2), "mse")
    hist = model.fit(x, y, batch_size=64, epochs=150, verbose=0)  # full-batch gradient descent
    coef, *_ = np.linalg.lstsq(np.hstack([xn, np.ones((64, 1))]), yn, rcond=None)
    np.testing.assert_allclose(_np(net.weight).ravel(), coef[:3, 0], atol=1e-4)
    assert _np(net.bias)[0] == pytest.approx(coef[3, 0], abs=1e-4)
    residual = ((np.hstack([xn, np.ones((64, 1))]) @ coef - yn) ** 2).mean()
    assert model.evaluate(x, y, verbose=0)["loss"] == pytest.approx(residual, rel=1e-3)
    assert hist.history["loss"][-1] < hist.history["loss"][0]


def test_history_keys_and_lengths():
    x, y = _classification(n=40)
    model = Model(_net())
    model.compile("adam", "cross_entropy", metrics=["accuracy", _target_mean])
    hist = model.fit(x, y, batch_size=16, epochs=3, validation_data=(x[:10], y[:10]), verbose=0)
    keys = {"loss", "accuracy", "_target_mean", "val_loss", "val_accuracy", "val__target_mean"}
    assert set(hist.history) == keys
    assert all(len(v) == 3 and all(isinstance(f, float) for f in v) for v in hist.history.values())
    assert hist.epoch == [0, 1, 2]
    # the validation numbers are evaluate()'s on the final weights
    assert hist.history["val_loss"][-1] == pytest.approx(model.evaluate(x[:10], y[:10], verbose=0)["loss"])
    assert set(model.fit(x, y, epochs=1, verbose=0).history) == {"loss", "accuracy", "_target_mean"}


def test_validation_split_takes_the_last_samples():
    x, y = _classification(n=40)
    model = Model(_net())
    model.compile(dt.optim.SGD(model.module.parameters(), lr=0.0), "cross_entropy")
    hist = model.fit(x, y, validation_split=0.25, verbose=0)
    assert hist.history["val_loss"][0] == pytest.approx(model.evaluate(x[30:], y[30:], verbose=0)["loss"])


def _twin_models(optimizer="sgd"):
    a, b = _net(seed=3), _net(seed=4)
    b.load_state_dict(a.state_dict())
    models = Model(a), Model(b)
    for m in models:
        m.compile(optimizer, "cross_entropy", metrics=["accuracy"])
    return models


def test_a_dataloader_gives_the_same_result_as_tensors():
    x, y = _classification(n=30)
    by_tensor, by_loader = _twin_models()
    h1 = by_tensor.fit(x, y, batch_size=8, epochs=2, shuffle=False, validation_data=(x, y), verbose=0)
    loader = DataLoader(TensorDataset(x, y), batch_size=8, shuffle=False)
    h2 = by_loader.fit(loader, epochs=2, validation_data=loader, verbose=0)
    assert h1.history.keys() == h2.history.keys()
    for k in h1.history:
        assert h1.history[k] == pytest.approx(h2.history[k], rel=1e-6)
    for p, q in zip(by_tensor.module.parameters(), by_loader.module.parameters()):
        np.testing.assert_allclose(_np(p), _np(q), rtol=1e-6)
    assert by_loader.evaluate(loader=loader, verbose=0) == pytest.approx(by_tensor.evaluate(x, y, verbose=0))


def test_a_plain_list_of_batches_works_as_a_loader():
    x, y = _classification(n=20)
    by_tensor, by_list = _twin_models()
    h1 = by_tensor.fit(x, y, batch_size=5, epochs=2, shuffle=False, verbose=0)
    h2 = by_list.fit([(x[i:i + 5], y[i:i + 5]) for i in range(0, 20, 5)], epochs=2, verbose=0)
    assert h1.history["loss"] == pytest.approx(h2.history["loss"], rel=1e-6)


def test_shuffle_follows_manual_seed():
    x, y = _classification(n=30)
    runs = []
    for _ in range(2):
        m, _unused = _twin_models("adam")
        dt.manual_seed(7)
        runs.append(m.fit(x, y, batch_size=4, epochs=2, verbose=0).history["loss"])
    assert runs[0] == runs[1]


def test_names_build_optimizers_with_keras_default_lr():
    for name, cls, lr in [("adam", dt.optim.Adam, 1e-3), ("sgd", dt.optim.SGD, 1e-2),
                          ("adamw", dt.optim.AdamW, 1e-3), ("RMSprop", dt.optim.RMSprop, 1e-3)]:
        model = Model(_net())
        model.compile(name, "mse")
        assert type(model.optimizer) is cls and model.optimizer.param_groups[0]["lr"] == lr


@pytest.mark.parametrize("name, fn", [("cross_entropy", F.cross_entropy), ("sparse_categorical_crossentropy",
                                       F.cross_entropy), ("nll", F.nll_loss), ("mse", F.mse_loss),
                                      ("mae", F.l1_loss), ("l1", F.l1_loss), ("bce", F.binary_cross_entropy),
                                      ("bce_with_logits", F.binary_cross_entropy_with_logits)])
def test_loss_names(name, fn):
    model = Model(_net())
    model.compile("sgd", name)
    assert model.loss is fn


def test_loss_callables_and_modules_give_the_same_numbers():
    x, y = _classification(n=17)
    net = _net()
    results = []
    for loss in ("cross_entropy", F.cross_entropy, nn.CrossEntropyLoss(), nn.CrossEntropyLoss(reduction="none")):
        model = Model(net)
        model.compile("sgd", loss)
        results.append(model.evaluate(x, y, batch_size=5, verbose=0)["loss"])
    assert results == pytest.approx([results[0]] * 4, rel=1e-6)


def test_accuracy_reads_binary_logits_probabilities_and_single_column_outputs():
    target = dt.tensor([0.0, 0.0, 1.0, 1.0])
    model = Model(nn.Identity())
    opt = dt.optim.SGD([nn.Parameter(dt.zeros(1))], lr=0.1)
    model.compile(opt, "bce_with_logits", metrics=["accuracy"])
    # thresholded at 0 because the loss takes logits: 0.5 and -0.1 are wrong, 2 of 4 right
    assert model.evaluate(dt.tensor([-2.0, 0.5, 3.0, -0.1]), target, verbose=0)["accuracy"] == 0.5
    model.compile(opt, "bce", metrics=["accuracy"])
    # thresholded at 0.5 for probabilities: 0.6 and 0.4 are wrong
    assert model.evaluate(dt.tensor([0.2, 0.6, 0.9, 0.4]), target, verbose=0)["accuracy"] == 0.5
    # an (N, 1) output column against (N,) targets is binary (an argmax over one column is always 0)
    model.compile(opt, lambda p, t: F.binary_cross_entropy(p.squeeze(1), t), metrics=["accuracy"])
    assert model.evaluate(dt.tensor([[0.2], [0.6], [0.9], [0.8]]), target, verbose=0)["accuracy"] == 0.75


# -- modes, devices, syncs ---------------------------------------------------------------------

class _ModeRecorder(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(5, 3)
        self.seen = []

    def forward(self, x):
        self.seen.append(self.training)
        return self.lin(x)


def test_fit_trains_and_evaluate_predict_eval():
    x, y = _classification(n=8)
    net = _ModeRecorder()
    model = Model(net)
    model.compile("sgd", "cross_entropy")
    model.fit(x, y, batch_size=4, epochs=2, validation_data=(x, y), verbose=0)
    # each epoch: 2 training batches in train mode, then 2 validation batches in eval mode
    assert net.seen == [True, True, False, False] * 2
    net.seen.clear()
    model.evaluate(x, y, verbose=0)
    model.predict(x)
    assert net.seen == [False, False]


def test_batches_move_to_the_parameters_device():
    x, _ = _classification(n=6)
    model = Model(_net()).to("meta")  # a device the data is not on
    out = model.predict(x)
    assert out.device.type == "meta" and out.shape == (6, 3)


def test_one_host_read_per_epoch_when_silent(monkeypatch):
    reads = []
    for name in ("item", "tolist"):
        orig = getattr(dt.Tensor, name)
        monkeypatch.setattr(dt.Tensor, name, lambda self, _o=orig, _n=name: (reads.append(_n), _o(self))[1])
    x = dt.randn(40, 5)
    y = dt.randn(40, 3)
    model = Model(_net())
    model.compile("sgd", "mse", metrics=["mae"])
    model.fit(x, y, batch_size=4, epochs=2, validation_data=(x, y), verbose=0)
    assert len(reads) == 4  # 10 batches an epoch, yet one read for training and one for validation


# -- printing ----------------------------------------------------------------------------------

def test_verbose_0_prints_nothing(capsys):
    x, y = _classification(n=12)
    model = Model(_net())
    model.compile("sgd", "cross_entropy", metrics=["accuracy"])
    model.fit(x, y, batch_size=5, epochs=2, validation_data=(x, y), verbose=0)
    model.evaluate(x, y, verbose=0)
    model.predict(x, verbose=0)
    assert capsys.readouterr() == ("", "")


def test_progress_bar_on_a_stream_that_is_not_a_terminal(capsys):
    x, y = _classification(n=12)
    model = Model(_net())
    model.compile("sgd", "cross_entropy", metrics=["accuracy"])
    model.fit(x, y, batch_size=5, epochs=2, validation_data=(x, y), verbose=1)
    out, err = capsys.readouterr()
    assert out == ""
    final = model.evaluate(x, y, verbose=0)
    for text in ("Epoch 1/2", "Epoch 2/2", "3/3", "loss=", "accuracy=", f"val_loss={final['loss']:.4f}"):
        assert text in err


def test_verbose_2_prints_one_line_per_epoch(capsys):
    x, y = _classification(n=12)
    model = Model(_net())
    model.compile("sgd", "cross_entropy", metrics=["accuracy"])
    model.fit(x, y, epochs=3, verbose=2)
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 3 and lines[0].startswith("Epoch 1/3: loss=") and "accuracy=" in lines[0]


# -- errors ------------------------------------------------------------------------------------

def _compiled():
    model = Model(_net())
    model.compile("sgd", "cross_entropy")
    return model


def test_fit_before_compile():
    x, y = _classification(n=4)
    with pytest.raises(RuntimeError, match=r"not compiled.*compile\("):
        Model(_net()).fit(x, y, verbose=0)
    with pytest.raises(RuntimeError, match="evaluate"):
        Model(_net()).evaluate(x, y, verbose=0)


def test_bad_data_arguments():
    x, y = _classification(n=10)
    model = _compiled()
    with pytest.raises(ValueError, match="x has 10 samples, y has 9"):
        model.fit(x, y[:9], verbose=0)
    with pytest.raises(ValueError, match="y is missing"):
        model.fit(x, verbose=0)
    with pytest.raises(ValueError, match="batch_size must be a positive int, got 0"):
        model.fit(x, y, batch_size=0, verbose=0)
    with pytest.raises(ValueError, match="batch_size.*-3"):
        model.evaluate(x, y, batch_size=-3, verbose=0)
    with pytest.raises(ValueError, match="y must be None when x is a loader"):
        model.fit(DataLoader(TensorDataset(x, y)), y, verbose=0)
    with pytest.raises(TypeError, match=r"\(x, y\) pair, got a 3-tuple"):
        model.fit([(x, y, y)], verbose=0)
    with pytest.raises(ValueError, match="no batches"):
        model.fit(((x[i:i + 5], y[i:i + 5]) for i in (0, 5)), epochs=2, verbose=0)  # a generator runs dry
    with pytest.raises(ValueError, match="verbose must be 0"):
        model.fit(x, y, verbose=5)


def test_unknown_names_list_the_valid_ones():
    model = Model(_net())
    with pytest.raises(ValueError, match=r"unknown loss 'hinge'.*bce_with_logits.*cross_entropy.*mse"):
        model.compile("sgd", "hinge")
    with pytest.raises(ValueError, match=r"unknown metric 'f1'.*accuracy.*mae.*mse"):
        model.compile("sgd", "mse", metrics=["f1"])
    with pytest.raises(ValueError, match=r"unknown optimizer 'adagrad'.*adam, adamw, rmsprop, sgd"):
        model.compile("adagrad", "mse")
    with pytest.raises(TypeError, match="loss must be a name or a callable"):
        model.compile("sgd", 3)
    with pytest.raises(ValueError, match="used twice"):
        model.compile("sgd", "mse", metrics=["mae", "mae"])
    with pytest.raises(TypeError, match="nn.Module"):
        Model(lambda x: x)
    assert model.optimizer is None  # a failed compile leaves the model uncompiled


def test_jit_compile_trains_like_eager_bit_for_bit_with_callbacks():
    from devtensor.fit.callbacks import EarlyStopping, LearningRateScheduler

    r = np.random.default_rng(0)
    x = dt.tensor(r.standard_normal((200, 8)).astype(np.float32))
    y = dt.tensor(r.integers(0, 3, 200))
    runs = []
    for jit in (False, True):
        dt.manual_seed(0)
        net = dt.nn.Sequential(dt.nn.Linear(8, 16), dt.nn.ReLU(), dt.nn.Linear(16, 3))
        model = dt.fit.Model(net)
        model.compile(optimizer="adam", loss="cross_entropy", metrics=["accuracy"], jit_compile=jit)
        cbs = [LearningRateScheduler(lambda epoch, lr: lr * 0.5), EarlyStopping(monitor="loss", patience=10)]
        dt.compiler.reset_stats()
        hist = model.fit(x, y, batch_size=32, epochs=3, shuffle=False, verbose=0, callbacks=cbs)
        if jit:  # 7 batches a epoch, the last one of 8: two captures, the rest replays
            assert dt.compiler.stats()["replays"] == 21 - 2 and dt.compiler.stats()["eager_fallbacks"] == 0
        runs.append((hist.history, [p.detach().numpy().copy() for p in net.parameters()]))
    assert runs[0][0] == runs[1][0]
    for a, b in zip(runs[0][1], runs[1][1]):
        np.testing.assert_array_equal(a, b)
