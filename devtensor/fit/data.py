"""Turning what fit/evaluate/predict are given (tensors x, y; a DataLoader; any iterable of (x, y)
batches) into batches on the module's device, with the argument checks that name what is wrong.

Tensors are batched with Tensor ops (slices, or an index tensor from randperm when shuffling) where
the data lives; each batch is then moved to the device of the module's parameters, so the same
script trains on cpu or cuda after `net.to(device)`."""
from __future__ import annotations

import numbers

import numpy as np

from ..ops.creation import as_tensor, randperm
from ..tensor import Tensor


class Batches:
    """A re-iterable source of (x, y) batches (y is None for x-only predict input); steps is the
    number of batches per pass when known (for the progress bar), else None."""

    def __init__(self, make_iter, steps):
        self._make_iter = make_iter
        self.steps = steps

    def __iter__(self):
        return self._make_iter()


def check_batch_size(batch_size, who):
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral):
        raise TypeError(f"{who}: batch_size must be a positive int, got {type(batch_size).__name__} {batch_size!r}")
    if batch_size <= 0:
        raise ValueError(f"{who}: batch_size must be a positive int, got {batch_size}")
    return int(batch_size)


def model_device(module):
    """Where the module's parameters (else buffers) live; None for a stateless module, whose batches
    are then left where they are."""
    for t in module.parameters():
        return t.device
    for t in module.buffers():
        return t.device
    return None


def to_device(t, device):
    return t if device is None or not isinstance(t, Tensor) or t.device == device else t.to(device)


def make_batches(who, x, y, batch_size, shuffle, loader=None, need_y=True):
    """Batches from tensors (x, y) or from a loader (given as x, or as loader=)."""
    if loader is not None:
        if x is not None:
            raise ValueError(f"{who}: pass the data either as x (and y) or as loader=, not both")
        x = loader
    if x is None:
        raise ValueError(f"{who}: no data given; pass tensors x and y, or a DataLoader of (x, y) batches as x")
    x = _as_tensor(x)
    if isinstance(x, Tensor):
        return _tensor_batches(who, x, _as_tensor(y), batch_size, shuffle, need_y)
    if y is not None:
        raise ValueError(f"{who}: y must be None when x is a loader ({type(x).__name__}): the loader's batches "
                         f"already carry the targets")
    return _loader_batches(who, x, need_y)


def split_validation(who, x, y, fraction):
    """Keras's validation_split: the last `fraction` of the samples (taken before any shuffling)
    become the validation set. Returns ((x, y), (x_val, y_val))."""
    if not isinstance(x, Tensor) or not isinstance(y, Tensor):
        raise ValueError(f"{who}: validation_split needs tensors x and y; with a loader, pass validation_data")
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"{who}: validation_split must be between 0 and 1, got {fraction}")
    n = _check_lengths(who, x, y)
    cut = n - int(n * fraction)
    if cut == 0 or cut == n:
        raise ValueError(f"{who}: validation_split={fraction} of {n} samples leaves an empty split")
    return (x[:cut], y[:cut]), (x[cut:], y[cut:])


def validation_batches(who, validation_data, batch_size):
    """validation_data is (x_val, y_val) tensors or a loader / iterable of (x, y) batches."""
    if isinstance(validation_data, (tuple, list)) and len(validation_data) == 2 \
            and all(isinstance(_as_tensor(v), Tensor) for v in validation_data):
        x_val, y_val = validation_data
        return make_batches(who + " (validation_data)", x_val, y_val, batch_size, shuffle=False)
    if isinstance(validation_data, (tuple, list)) and len(validation_data) == 3 \
            and isinstance(validation_data[0], Tensor):
        raise ValueError(f"{who}: validation_data with sample weights (x, y, w) is not supported; pass (x, y)")
    if isinstance(validation_data, Tensor) or not _iterable(validation_data):
        raise TypeError(f"{who}: validation_data must be a (x_val, y_val) pair of tensors or a loader of (x, y) "
                        f"batches, got {type(validation_data).__name__}")
    return make_batches(who + " (validation_data)", validation_data, None, batch_size, shuffle=False)


def _as_tensor(v):
    """numpy arrays (what a Keras user has at hand) become tensors at the boundary; all else is kept."""
    return as_tensor(v) if isinstance(v, np.ndarray) else v


def _check_lengths(who, x, y):
    if x.ndim == 0:
        raise ValueError(f"{who}: x must have a batch dimension, got a 0-d tensor")
    if y.ndim == 0 or y.shape[0] != x.shape[0]:
        ny = "a 0-d tensor" if y.ndim == 0 else f"{y.shape[0]} samples"
        raise ValueError(f"{who}: x and y have different lengths: x has {x.shape[0]} samples, y has {ny}")
    return x.shape[0]


def _tensor_batches(who, x, y, batch_size, shuffle, need_y):
    if y is None and need_y:
        raise ValueError(f"{who}: y is missing; x is a Tensor, so pass the targets as y "
                         f"(or pass a DataLoader of (x, y) batches as x)")
    if y is not None and not isinstance(y, Tensor):
        raise TypeError(f"{who}: y must be a Tensor like x, got {type(y).__name__}")
    if y is None:
        if x.ndim == 0:
            raise ValueError(f"{who}: x must have a batch dimension, got a 0-d tensor")
        n = x.shape[0]
    else:
        n = _check_lengths(who, x, y)
    batch_size = check_batch_size(batch_size, who)

    def batches():
        # an index tensor on the data's device: one gather per batch, and dt.manual_seed applies
        order = randperm(n, device=x.device) if shuffle else None
        for start in range(0, n, batch_size):
            sel = slice(start, start + batch_size) if order is None else order[start:start + batch_size]
            yield x[sel], (None if y is None else y[sel])

    return Batches(batches, -(-n // batch_size))


def _loader_batches(who, loader, need_y):
    if not _iterable(loader):
        raise TypeError(f"{who}: x must be a Tensor, a DataLoader or an iterable of (x, y) batches, "
                        f"got {type(loader).__name__}")
    try:
        steps = len(loader)
    except TypeError:  # an iterable dataset or a generator: the bar shows a count without a total
        steps = None

    def batches():
        for batch in loader:
            yield _split_batch(who, batch, need_y)

    return Batches(batches, steps)


def _split_batch(who, batch, need_y):
    if isinstance(batch, (tuple, list)) and len(batch) == 2:
        return _as_tensor(batch[0]), _as_tensor(batch[1])
    if not need_y and isinstance(batch, (tuple, list)) and batch:
        return _as_tensor(batch[0]), None  # predict reads only the inputs
    if not need_y and isinstance(_as_tensor(batch), Tensor):
        return _as_tensor(batch), None
    got = f"a {len(batch)}-tuple" if isinstance(batch, (tuple, list)) else f"a {type(batch).__name__}"
    raise TypeError(f"{who}: each batch from the loader must be an (x, y) pair, got {got}")


def _iterable(v):
    try:
        iter(v)
    except TypeError:
        return False
    return True
