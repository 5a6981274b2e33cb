"""Sample inputs the generated op tests run on: each op's OpDef points at one of these.

A sample is (args, kwargs): numpy arrays (possibly non-contiguous views, 0-d or empty) and
plain values. The tests turn arrays into tensors on each device under test, run the op and
compare with the op's numpy reference; float64 copies drive gradcheck.
"""
from __future__ import annotations

import numpy as np


def _rng(seed=0):
    return np.random.default_rng(seed)


def shapes_unary():
    return [(), (0,), (5,), (3, 4), (2, 3, 4)]


def unary(low=-2.0, high=2.0):
    def gen(dtype=np.float64):
        r = _rng(1)
        out = []
        for s in shapes_unary():
            out.append(((r.uniform(low, high, s).astype(dtype),), {}))
        a = r.uniform(low, high, (4, 6)).astype(dtype)
        out.append(((a.T,), {}))            # non-contiguous (transposed)
        out.append(((a[:, ::2],), {}))      # non-contiguous (strided)
        return out

    return gen


def binary(low=-2.0, high=2.0, b_low=None, b_high=None, scalars=True):
    b_low = low if b_low is None else b_low
    b_high = high if b_high is None else b_high

    def gen(dtype=np.float64):
        r = _rng(2)
        A = lambda s: r.uniform(low, high, s).astype(dtype)  # noqa: E731
        B = lambda s: r.uniform(b_low, b_high, s).astype(dtype)  # noqa: E731
        out = [
            ((A((3, 4)), B((3, 4))), {}),
            ((A((3, 1)), B((1, 4))), {}),     # both broadcast
            ((A((2, 3, 4)), B((4,))), {}),     # rank broadcast
            ((A(()), B((3,))), {}),            # 0-d with 1-d
            ((A((0, 3)), B((3,))), {}),        # empty
            ((A((4, 3)).T, B((3, 4))), {}),    # non-contiguous
        ]
        if scalars:
            out.append(((A((2, 3)), float(B(()))), {}))
        return out

    return gen


def compare():
    def gen(dtype=np.float64):
        r = _rng(3)
        a = r.integers(-2, 3, (3, 4)).astype(dtype)
        b = r.integers(-2, 3, (3, 4)).astype(dtype)
        return [((a, b), {}), ((a, b[:1]), {}), ((a, 1.0), {}), ((a[:0], b[:0]), {})]

    return gen


def reduction(positive=False, ties=False):
    def gen(dtype=np.float64):
        r = _rng(4)
        lo = 0.5 if positive else -2.0
        x = r.uniform(lo, 2.0, (3, 4, 5)).astype(dtype)
        out = [
            ((x,), {"dim": None, "keepdim": False}),
            ((x,), {"dim": (1,), "keepdim": False}),
            ((x,), {"dim": (0, 2), "keepdim": True}),
            ((x,), {"dim": (-1,), "keepdim": False}),
            ((x.transpose(2, 0, 1),), {"dim": (1,), "keepdim": False}),
            ((np.asarray(r.uniform(lo, 2.0)).astype(dtype),), {"dim": None, "keepdim": False}),
        ]
        if ties:
            t = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 0.0]], dtype=dtype)
            out.append(((t,), {"dim": (1,), "keepdim": False}))
        return out

    return gen
