"""Metrics: per-batch means `(pred, target) -> 0-d Tensor`, and the running sample-weighted mean
that turns them into one number per epoch.

Every metric is written in Tensor ops and returns a device tensor, so computing one costs no host
sync; only RunningMean.result() reads values back (one transfer for all of them)."""
from __future__ import annotations

from .. import dtypes
from ..ops.shape import stack
from ..tensor import Tensor


def _check_same_shape(name, pred, target):
    if tuple(pred.shape) != tuple(target.shape):
        raise ValueError(f"metric {name}: prediction shape {list(pred.shape)} does not match target shape "
                         f"{list(target.shape)}")


def _fraction(hits):
    """The share of True in a bool tensor, in float64 so that 7 of 25 reads back as 0.28 exactly."""
    return hits.to(dtypes.float64).mean()


def sparse_categorical_accuracy(pred, target):
    """Class scores (N, C, ...) against integer labels (N, ...)."""
    return _fraction(pred.argmax(dim=1) == target)


def categorical_accuracy(pred, target):
    """Class scores against one-hot (or soft) targets of the same shape."""
    _check_same_shape("categorical_accuracy", pred, target)
    return _fraction(pred.argmax(dim=1) == target.argmax(dim=1))


def binary_accuracy(pred, target, threshold=0.5):
    """Binary predictions (probabilities, or logits with threshold=0) against 0/1 targets."""
    _check_same_shape("binary_accuracy", pred, target)
    return _fraction((pred > threshold) == (target > 0.5))


def make_accuracy(kind):
    """Keras's "accuracy": which accuracy it is depends on the loss (see losses.loss_kind) and on the
    shapes, so one name works for classifiers, binary logits and binary probabilities."""
    threshold = 0.0 if kind == "logits" else 0.5

    def accuracy(pred, target):
        if pred.ndim == target.ndim + 1:
            if pred.shape[1] == 1:  # one binary output column: argmax over it would always be 0
                return binary_accuracy(pred.squeeze(1), target, threshold)
            return sparse_categorical_accuracy(pred, target)
        if pred.ndim == target.ndim:
            if kind == "classes":
                return categorical_accuracy(pred, target)
            return binary_accuracy(pred, target, threshold)
        raise ValueError(f"metric accuracy: cannot compare predictions of shape {list(pred.shape)} with "
                         f"targets of shape {list(target.shape)}; expected class scores (N, C) with labels "
                         f"(N,), or predictions and targets of one shape")

    return accuracy


def mean_squared_error(pred, target):
    _check_same_shape("mse", pred, target)
    return ((pred - target.type_as(pred)) ** 2).mean()


def mean_absolute_error(pred, target):
    _check_same_shape("mae", pred, target)
    return (pred - target.type_as(pred)).abs().mean()


# name -> factory(loss kind) -> metric; a factory because "accuracy" depends on the loss
METRICS = {
    "accuracy": make_accuracy,
    "acc": make_accuracy,
    "binary_accuracy": lambda kind: (lambda p, t: binary_accuracy(p, t, 0.0 if kind == "logits" else 0.5)),
    "categorical_accuracy": lambda kind: categorical_accuracy,
    "sparse_categorical_accuracy": lambda kind: sparse_categorical_accuracy,
    "mse": lambda kind: mean_squared_error,
    "mean_squared_error": lambda kind: mean_squared_error,
    "mae": lambda kind: mean_absolute_error,
    "mean_absolute_error": lambda kind: mean_absolute_error,
}


def resolve_metrics(metrics, kind):
    """[(history key, metric callable)] for compile(metrics=...): names or callables, in order."""
    if metrics is None:
        return []
    if isinstance(metrics, str) or callable(metrics):
        metrics = [metrics]  # a lone name would otherwise be iterated letter by letter
    out = []
    for m in metrics:
        name, fn = _resolve_one(m, kind)
        if name == "loss" or name in (n for n, _ in out):
            raise ValueError(f"compile: metric name {name!r} is used twice (or clashes with 'loss'); "
                             f"each metric needs its own history key")
        out.append((name, fn))
    return out


def _resolve_one(metric, kind):
    if isinstance(metric, str):
        factory = METRICS.get(metric.lower())
        if factory is None:
            raise ValueError(f"compile: unknown metric {metric!r}; valid names are {', '.join(sorted(METRICS))} "
                             f"(or pass a callable (pred, target) -> Tensor)")
        return metric, factory(kind)
    if callable(metric):
        return _callable_name(metric), metric
    raise TypeError(f"compile: each metric must be a name or a callable (pred, target) -> Tensor, "
                    f"got {type(metric).__name__}")


def _callable_name(fn):
    """The history key of a callable metric: its function name, or its class name for an instance
    (nn.MSELoss() -> "mseloss"); lambdas have no useful name, so they are just "metric"."""
    name = getattr(fn, "__name__", None) or type(fn).__name__
    return "metric" if name == "<lambda>" else name.lower()


class RunningMean:
    """Sample-weighted means of several per-batch values over an epoch: a batch of n samples adds
    n * value, so a smaller last batch weighs less and the result equals the mean over all samples.

    The sums stay on the device as one float64 vector (float64 so a long epoch of float32 or
    float16 values does not lose digits); result() reads them back in a single transfer."""

    def __init__(self, names):
        self.names = list(names)
        self.count = 0
        self._sums = None

    def update(self, values, n):
        batch = stack([_scalar(name, v) for name, v in zip(self.names, values)]) * n
        self._sums = batch if self._sums is None else self._sums + batch
        self.count += n

    def result(self):
        if self._sums is None:
            return {}
        return dict(zip(self.names, (self._sums / self.count).tolist()))


def _scalar(name, value):
    """A metric's value as a detached 0-d float64: per-sample values are reduced to their mean."""
    if not isinstance(value, Tensor):
        raise TypeError(f"{name} returned a {type(value).__name__}; a loss or metric must return a Tensor "
                        f"(a Python number would need a host sync per batch)")
    value = value.detach().to(dtypes.float64)
    return value.mean() if value.ndim else value
