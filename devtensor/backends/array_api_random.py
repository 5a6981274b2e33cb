"""The random ops' kernels, one numpy/CuPy code each (devtensor/ops/random.py declares the ops).

`register(backend, xp, rng)`: `rng(generator, device)` returns the stream to draw from, an object with
numpy.random.Generator's methods (random, standard_normal, standard_exponential, integers, permutation,
poisson): the generator argument's own stream, or the backend's default one when it is None. Every
kernel takes that `generator` argument, so a devtensor.Generator's stream is never mixed with the
global one. Value checks PyTorch makes (negative probabilities, std < 0) read the data: on cuda that
is one synchronisation per call, which sampling code pays anyway when it reads the samples.
"""
from __future__ import annotations

import numpy as np

_FLOATS = (np.float32, np.float64)


def _floating(rng_call, shape, dtype):
    """A draw in the output dtype: float32/float64 natively, other floats (float16) through float64."""
    if dtype in _FLOATS:
        return rng_call(shape, dtype=dtype)
    return rng_call(shape, dtype=np.float64).astype(dtype)


def register(be, xp, rng):
    def k(name):
        return be.kernel(name, tier="portable")

    # ---- creation: no tensor inputs --------------------------------------------------------------
    @k("rand")
    def rand(shape, dtype, generator, device):
        return _floating(rng(generator, device).random, shape, dtype.np)

    @k("randn")
    def randn(shape, dtype, generator, device):
        return _floating(rng(generator, device).standard_normal, shape, dtype.np)

    @k("randint")
    def randint(low, high, shape, dtype, generator, device):
        return rng(generator, device).integers(low, high, size=shape, dtype=np.int64).astype(dtype.np, copy=False)

    @k("randperm")
    def randperm(n, dtype, generator, device):
        return rng(generator, device).permutation(n).astype(dtype.np, copy=False)

    # ---- sampling from tensors of parameters -----------------------------------------------------
    @k("multinomial")
    def multinomial(p, num_samples, replacement, generator):
        squeeze = p.ndim == 1
        p2 = (p[None] if squeeze else p).astype(np.float64)
        rows, n = p2.shape
        if rows == 0:
            return xp.zeros((0, num_samples), dtype=np.int64)
        if bool(xp.any(~(p2 >= 0) | xp.isinf(p2))):  # nan fails p >= 0
            raise RuntimeError("probability tensor contains either `inf`, `nan` or element < 0")
        r = rng(generator, None)
        cum = xp.cumsum(p2, axis=1)
        total = cum[:, -1:]
        if bool(xp.any(total <= 0)):
            raise RuntimeError("invalid multinomial distribution (sum of probabilities <= 0)")
        if replacement:
            # inverse CDF: dividing by the last running sum makes the top exactly 1, so a draw u < 1 never
            # lands on a zero-probability category after the last positive one
            cdf = cum / total
            u = r.random((rows, num_samples), dtype=np.float64)
            if rows * num_samples * n <= 1 << 20:  # a batch of few draws (text generation): one comparison pass
                out = (cdf[:, None, :] <= u[:, :, None]).sum(axis=2, dtype=np.int64)
            else:  # many draws: a sorted search per row (the same index: the count of cdf entries <= u)
                out = xp.empty((rows, num_samples), dtype=np.int64)
                for i in range(rows):
                    out[i] = xp.searchsorted(cdf[i], u[i], side="right")
            out = xp.minimum(out, n - 1)
        else:
            # exponential races: the k smallest E_i / p_i are k draws without replacement, each in turn
            # proportional to p among the categories not drawn yet. Zero weights get an infinite key: drawn only
            # after every positive one, in index order (PyTorch's cpu kernel returns them too, without an error)
            with np.errstate(divide="ignore"):
                keys = r.standard_exponential((rows, n), dtype=np.float64) / p2
            if num_samples == 1:  # the first minimum: what the stable sort's head would be, without the sort
                out = xp.argmin(keys, axis=1)[:, None].astype(np.int64)
            else:
                out = xp.argsort(keys, axis=1, kind="stable")[:, :num_samples].astype(np.int64)
        return out[0] if squeeze else out

    @k("bernoulli")
    def bernoulli(x, p, generator):
        probs = x if p is None else p
        if p is None and bool(xp.any(~((x >= 0) & (x <= 1)))):
            raise RuntimeError(f"expected all probabilities in [0, 1], got a {x.dtype} tensor with "
                               f"values outside it")
        u = rng(generator, None).random(x.shape, dtype=np.float64)
        return (u < probs).astype(x.dtype)

    @k("normal")
    def normal(mean, std, size, generator):
        if bool(xp.any(~(std >= 0))):
            raise RuntimeError("expects all elements of std >= 0.0")
        shape = tuple(size) if size is not None else np.broadcast_shapes(mean.shape, std.shape)
        z = _floating(rng(generator, None).standard_normal, shape, mean.dtype)
        return (mean + std * z).astype(mean.dtype, copy=False)

    @k("poisson")
    def poisson(rates, generator):
        if bool(xp.any(~(rates >= 0))):
            raise RuntimeError("invalid Poisson rate, expected rate to be non-negative")
        return rng(generator, None).poisson(rates.astype(np.float64)).astype(rates.dtype)
