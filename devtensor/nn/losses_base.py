"""What the losses of losses_regression.py, losses_margin.py and losses_ctc.py share: PyTorch's
legacy size_average / reduce flags, the reductions, argument checks, and their numpy twins for the
references and samples."""
from __future__ import annotations

import warnings

import numpy as np

from ..ops.elementwise import exp, log1p, where
from ..tensor import Tensor


def _legacy(size_average, reduce, reduction, stacklevel=4):
    if size_average is None and reduce is None:
        return reduction
    size_average = True if size_average is None else size_average
    reduce = True if reduce is None else reduce
    ret = ("mean" if size_average else "sum") if reduce else "none"
    warnings.warn(f"size_average and reduce args will be deprecated, please use reduction='{ret}' instead.",
                  UserWarning, stacklevel=stacklevel)
    return ret


def _reduce(loss, reduction):
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise ValueError(f"{reduction} is not a valid value for reduction")


def _tensor(name, arg, v):
    if not isinstance(v, Tensor):
        raise TypeError(f"{name}(): argument '{arg}' must be Tensor, not {type(v).__name__}")


def _float(name, *ts):
    for t in ts:
        if not t.dtype.is_floating_point:
            raise RuntimeError(f"{name}: expected a floating point tensor, got {t.dtype}")


def _same_size(name, input, target):
    if tuple(input.shape) != tuple(target.shape):
        warnings.warn(f"Using a target size ({tuple(target.shape)}) that is different to the input size "
                      f"({tuple(input.shape)}). This will likely lead to incorrect results due to broadcasting. "
                      "Please ensure they have the same size.", UserWarning, stacklevel=3)


def _with_grad_of(clamped, original):
    """`clamped`'s value with `original`'s gradient: PyTorch's in-place clamp under no_grad."""
    return original + (clamped - original).detach()


def _log_sigmoid(x):
    # min(x, 0) - log1p(exp(-|x|)): no overflow on either side
    return where(x < 0, x, x * 0) - log1p(exp(-x.abs()))


def _np_reduce(loss, reduction):
    loss = np.asarray(loss)
    if reduction == "mean":
        return np.asarray(loss.mean(), dtype=loss.dtype)
    if reduction == "sum":
        return np.asarray(loss.sum(), dtype=loss.dtype)
    return loss


def _np_legacy(size_average, reduce, reduction):
    if size_average is None and reduce is None:
        return reduction
    size_average = True if size_average is None else size_average
    reduce = True if reduce is None else reduce
    return ("mean" if size_average else "sum") if reduce else "none"


def _rng(seed):
    return np.random.default_rng(seed)


def _reductions(make):
    """Samples for each reduction: make(dtype, rng) -> (args, extra kwargs)."""
    def gen(dtype=np.float64):
        out = []
        for i, red in enumerate(("mean", "sum", "none")):
            args, kw = make(dtype, _rng(40 + i))
            out.append((args, {**kw, "reduction": red}))
        return out

    return gen
