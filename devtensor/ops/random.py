"""Sampling ops (multinomial, bernoulli, normal, poisson), the in-place random fills (uniform_, normal_,
bernoulli_, random_, exponential_), logspace and the global generator's state (get_rng_state /
set_rng_state). rand / randn / randint / randperm live with the other creation ops (creation.py).

Every draw takes `generator=` (a devtensor.Generator on the tensor's device; see generator.py), passed
to the kernels (backends/array_api_random.py) as an attribute: graph capture records it, so a compiled
step draws from the same stream on every replay. The in-place fills are a draw op followed by copy_.
"""
from __future__ import annotations

import numbers

import numpy as np

from .. import dtypes as _dt
from ..dispatch import KEEP, call, defop
from ..geometry import broadcast_shapes
from ..tensor import Tensor
from ._api import public
from .creation import _dev, _dtype_or, _finish, _shape, full, linspace, rand, randint, randn, zeros_like
from .generator import default_generator, raw_generator
from .inplace import apply_inplace


def _zero_grad(c, g):
    return zeros_like(g)  # PyTorch's derivative of a sample with respect to its parameters: zero


def _zero_grads(c, g):
    return zeros_like(g), zeros_like(g)  # the engine sums each to its input's shape


def _floating(x, what="input"):
    if x.dtype.kind != "f":
        raise NotImplementedError(f"not implemented for {np.dtype(x.dtype).name} {what} "
                                  f"(probabilities and rates are floating point)")


def _multinomial_meta(p, num_samples, replacement, generator):
    if p.dtype.kind != "f":
        raise RuntimeError(f"only supports floating-point dtypes for input, got {np.dtype(p.dtype).name}")
    if len(p.shape) not in (1, 2):
        raise RuntimeError(f"prob_dist must be 1 or 2 dim, got shape {list(p.shape)}")
    if num_samples <= 0:
        raise RuntimeError(f"cannot sample n_sample <= 0 samples (num_samples={num_samples})")
    if p.shape[-1] == 0 and (len(p.shape) == 1 or p.shape[0] > 0):
        raise RuntimeError("invalid multinomial distribution (no categories: the last dim is empty)")
    if not replacement and num_samples > p.shape[-1]:
        raise RuntimeError(f"cannot sample n_sample > prob_dist.size(-1) samples without replacement "
                           f"(num_samples={num_samples}, {p.shape[-1]} categories)")
    return tuple(p.shape[:-1]) + (num_samples,), np.dtype(np.int64)


def _bernoulli_meta(x, p, generator):
    if p is None:
        _floating(x)
    elif not 0 <= p <= 1:
        raise RuntimeError(f"expects p to be in [0, 1], but got p={p}")
    return tuple(x.shape), x.dtype


def _normal_meta(mean, std, size, generator):
    _floating(mean, "mean")
    _floating(std, "std")
    if size is not None:
        return tuple(size), mean.dtype
    try:
        return broadcast_shapes(tuple(mean.shape), tuple(std.shape)), mean.dtype
    except (RuntimeError, ValueError):
        raise RuntimeError(f"the shapes of mean {list(mean.shape)} and std {list(std.shape)} do not "
                           f"broadcast") from None


def _poisson_meta(rates, generator):
    _floating(rates)
    return tuple(rates.shape), rates.dtype


multinomial_ = defop("multinomial", ("input",), rule=KEEP, meta=_multinomial_meta, check=True, differentiable=False)
bernoulli_op = defop("bernoulli", ("input",), rule=KEEP, meta=_bernoulli_meta, check=True, backward=_zero_grad)
normal_op = defop("normal", ("mean", "std"), rule=KEEP, meta=_normal_meta, check=True, backward=_zero_grads)
poisson_op = defop("poisson", ("input",), rule=KEEP, meta=_poisson_meta, check=True, backward=_zero_grad)


def _tensor_arg(fn, name, x):
    if not isinstance(x, Tensor):
        raise TypeError(f"{fn}(): argument '{name}' must be a Tensor, got {type(x).__name__}")
    return x


# ---- sampling -----------------------------------------------------------------------------------
@public
def multinomial(input, num_samples, replacement=False, *, generator=None):
    """Draw num_samples category indices per row of `input` (1-D or 2-D, non-negative weights that need
    not sum to one), with or without replacement."""
    _tensor_arg("multinomial", "input", input)
    if not isinstance(num_samples, numbers.Integral) or isinstance(num_samples, bool):
        raise TypeError(f"multinomial(): num_samples must be an int, got {type(num_samples).__name__}")
    g = raw_generator(generator, input._device, "multinomial")
    return call(multinomial_, (input,), {"num_samples": int(num_samples), "replacement": bool(replacement),
                                         "generator": g})


@public
def bernoulli(input, p=None, *, generator=None):
    """0/1 draws in input's dtype: each element 1 with probability input[i] (or p, a float, for all)."""
    _tensor_arg("bernoulli", "input", input)
    if p is not None:
        if isinstance(p, Tensor):
            raise TypeError("bernoulli(): p must be a float; for a tensor of probabilities pass it as input")
        p = float(p)
    return call(bernoulli_op, (input,), {"p": p, "generator": raw_generator(generator, input._device, "bernoulli")})


@public(method=False)
def normal(mean, std=1.0, size=None, *, generator=None, dtype=None, device=None, requires_grad=False, layout=None,
           pin_memory=False):
    """PyTorch's overloads: normal(Tensor, Tensor), normal(Tensor, float), normal(float, Tensor) (shapes
    broadcast; the tensor's dtype and device), normal(float, float, size) (dtype=, device=)."""
    tm, ts = isinstance(mean, Tensor), isinstance(std, Tensor)
    for name, v, is_t in (("mean", mean, tm), ("std", std, ts)):
        if not is_t and (not isinstance(v, numbers.Real) or isinstance(v, bool)):
            raise TypeError(f"normal(): {name} must be a Tensor or a float, got {type(v).__name__}")
    if not ts and std < 0:
        raise RuntimeError(f"normal: expects std >= 0.0, but found std {std}")
    if tm or ts:
        if size is not None:
            raise TypeError("normal(): size= goes with a float mean and std; with a tensor the shape is its own")
        like = mean if tm else std
        dev = like._device
        mean = mean if tm else full((), mean, dtype=like.dtype, device=dev)
        std = std.to(dev, mean.dtype) if ts else full((), std, dtype=mean.dtype, device=dev)
        args = (mean, std)
    else:
        if size is None:
            raise TypeError("normal(): with a float mean and std, size= is required, e.g. normal(0.0, 1.0, (2, 3))")
        dev = _dev(device)
        dt = _dtype_or(dtype, _dt.get_default_dtype())
        size = _shape((size,) if isinstance(size, numbers.Integral) else (tuple(size),), "normal")
        args = (full((), mean, dtype=dt, device=dev), full((), std, dtype=dt, device=dev))
    out = call(normal_op, args, {"size": size if not (tm or ts) else None,
                                 "generator": raw_generator(generator, dev, "normal")})
    return _finish(out, requires_grad)


@public(method=False, out=False)
def poisson(input, generator=None):
    """Poisson counts with the rates in `input`, in its dtype."""
    _tensor_arg("poisson", "input", input)
    return call(poisson_op, (input,), {"generator": raw_generator(generator, input._device, "poisson")})


# ---- in-place fills: a draw, then copy_ (autograd and version counters as every in-place op) -------
def _fill(self, name, draw):
    if self._data.dtype.kind not in "fiub" or (name not in ("random_", "bernoulli_") and self._data.dtype.kind != "f"):
        cls = RuntimeError if name == "exponential_" else NotImplementedError  # PyTorch's classes
        raise cls(f"{name}: not implemented for {self.dtype} tensors (a floating dtype is needed)")
    return apply_inplace(self, name, lambda _: draw(), overwrite=True)


def _like(self, generator, name):
    return {"dtype": self.dtype, "device": self._device, "generator": _checked(generator, self, name)}


def _checked(generator, self, name):
    raw_generator(generator, self._device, name)  # the type and device errors, named for this method
    return generator


@public(function=False, name="uniform_")
def uniform_(self, from_=0.0, to=1.0, *, generator=None, **kw):
    from_ = kw.pop("from", from_)
    if kw:
        raise TypeError(f"uniform_() got an unexpected keyword argument {next(iter(kw))!r}")
    if from_ > to:
        raise RuntimeError(f"uniform_: expects to return a [from, to) range, but found from={from_} > to={to}")
    kw_ = _like(self, generator, "uniform_")
    return _fill(self, "uniform_", lambda: rand(tuple(self.shape), **kw_) * (to - from_) + from_)


@public(function=False, name="normal_")
def normal_(self, mean=0.0, std=1.0, *, generator=None):
    if std < 0:
        raise RuntimeError(f"normal_: expects std >= 0.0, but found std {std}")
    kw = _like(self, generator, "normal_")
    return _fill(self, "normal_", lambda: randn(tuple(self.shape), **kw) * std + mean)


@public(function=False, name="exponential_")
def exponential_(self, lambd=1.0, *, generator=None):
    if not lambd > 0:
        raise RuntimeError(f"exponential_: expects lambda > 0.0, but found lambda={lambd}")
    kw = _like(self, generator, "exponential_")
    # -log(1 - u) for u in [0, 1): the inverse CDF, finite everywhere
    return _fill(self, "exponential_", lambda: (-rand(tuple(self.shape), **kw)).log1p() * (-1.0 / lambd))


@public(function=False, name="bernoulli_")
def bernoulli_(self, p=0.5, *, generator=None):
    _checked(generator, self, "bernoulli_")
    if isinstance(p, Tensor):
        pdt = self.dtype if self.dtype.is_floating_point else _dt.float64
        probs = p.to(self._device, pdt).expand(tuple(self.shape))
        return _fill(self, "bernoulli_", lambda: bernoulli(probs.contiguous(), generator=generator).to(self.dtype))
    if not 0 <= p <= 1:
        raise RuntimeError(f"bernoulli_: expects p to be in [0, 1], but got p={p}")
    return _fill(self, "bernoulli_", lambda: bernoulli(self.detach(), float(p), generator=generator))


def _random_bounds(self, args, kw):
    """random_(), random_(to), random_(from, to): PyTorch's default upper bound is 2**mantissa + 1 for floats
    (every integer below is exact) and the dtype's largest value + 1 for integers."""
    if len(args) > 2:
        raise TypeError(f"random_() takes at most 2 positional arguments ({len(args)} given)")
    lo, hi = (0, args[0]) if len(args) == 1 else (args if len(args) == 2 else (kw.pop("from", 0), kw.pop("to", None)))
    if hi is None:
        d = self._data.dtype
        if d == np.bool_:
            hi = 2
        elif d.kind in "iu":
            hi = int(np.iinfo(d).max) + 1
        else:
            hi = 2 ** (np.finfo(d).nmant + 1) + 1
    if lo >= hi:
        raise RuntimeError(f"random_: expects 'from' to be less than 'to', but got from={lo} >= to={hi}")
    return int(lo), int(hi)


@public(function=False, name="random_")
def random_(self, *args, generator=None, **kw):
    lo, hi = _random_bounds(self, args, kw)
    if kw:
        raise TypeError(f"random_() got an unexpected keyword argument {next(iter(kw))!r}")
    g = _checked(generator, self, "random_")
    return _fill(self, "random_", lambda: randint(lo, hi, tuple(self.shape), generator=g, device=self._device,
                                                  dtype=_dt.int64).to(self.dtype))


# ---- logspace and the global generator's state ------------------------------------------------------------------
@public(method=False)
def logspace(start, end, steps, base=10.0, *, dtype=None, device=None, requires_grad=False, layout=None):
    """base ** linspace(start, end, steps), computed in float64 and cast to dtype (the default float)."""
    dt = _dtype_or(dtype, _dt.get_default_dtype())
    lin = linspace(start, end, steps, dtype=_dt.float64, device=device)
    return _finish((float(base) ** lin).to(dt), requires_grad)


@public(method=False, out=False)
def get_rng_state():
    """The default cpu generator's state, a uint8 tensor (devtensor.default_generator.get_state())."""
    return default_generator.get_state()


@public(method=False, out=False)
def set_rng_state(new_state):
    default_generator.set_state(new_state)

