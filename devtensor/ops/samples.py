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
            ((x,), {"dim": (2,), "keepdim": False}),
            ((x.transpose(2, 0, 1),), {"dim": (1,), "keepdim": False}),
            ((np.asarray(r.uniform(lo, 2.0)).astype(dtype),), {"dim": None, "keepdim": False}),
        ]
        if ties:
            t = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 0.0]], dtype=dtype)
            out.append(((t,), {"dim": (1,), "keepdim": False}))
        return out

    return gen


def conv2d():
    def gen(dtype=np.float64):
        r = _rng(6)
        X = lambda *s: r.standard_normal(s).astype(dtype)  # noqa: E731
        base = {"stride": (1, 1), "padding": (0, 0), "dilation": (1, 1), "groups": 1}
        return [
            ((X(2, 3, 6, 5), X(4, 3, 3, 3), X(4)), dict(base)),
            ((X(1, 2, 7, 7), X(3, 2, 2, 3), None), {**base, "stride": (2, 1), "padding": (1, 2)}),
            ((X(2, 4, 6, 6), X(4, 2, 3, 3), X(4)), {**base, "groups": 2, "dilation": (2, 1)}),
            ((X(2, 1, 5, 5), X(2, 1, 3, 3), None), {**base, "padding": (1, 1)}),
        ]

    return gen


def max_pool2d():
    def gen(dtype=np.float64):
        r = _rng(7)
        x = r.permutation(2 * 3 * 7 * 6).reshape(2, 3, 7, 6).astype(dtype) / 10  # distinct values: no ties
        base = {"kernel_size": (2, 2), "stride": (2, 2), "padding": (0, 0), "dilation": (1, 1), "ceil_mode": False}
        return [((x,), dict(base)), ((x,), {**base, "kernel_size": (3, 3), "stride": (2, 1), "padding": (1, 1)}),
                ((x,), {**base, "ceil_mode": True}), ((x,), {**base, "dilation": (2, 1), "stride": (1, 1)})]

    return gen


def avg_pool2d():
    def gen(dtype=np.float64):
        x = _rng(8).standard_normal((2, 3, 7, 6)).astype(dtype)
        base = {"kernel_size": (2, 2), "stride": (2, 2), "padding": (0, 0), "ceil_mode": False,
                "count_include_pad": True, "divisor_override": None}
        return [((x,), dict(base)),
                ((x,), {**base, "kernel_size": (3, 3), "stride": (2, 1), "padding": (1, 1)}),
                ((x,), {**base, "padding": (1, 1), "count_include_pad": False, "ceil_mode": True}),
                ((x,), {**base, "divisor_override": 3})]

    return gen


def softmax():
    def gen(dtype=np.float64):
        r = _rng(9)
        x = r.standard_normal((3, 4, 5)).astype(dtype)
        return [((x,), {"dim": 2}), ((x,), {"dim": 0}), ((x.transpose(1, 0, 2),), {"dim": 1}),
                ((np.asarray(r.standard_normal()).astype(dtype),), {"dim": 0}),
                ((np.array([[1000.0, 0.0, -1000.0]], dtype=dtype),), {"dim": 1})]

    return gen


def cross_entropy():
    def gen(dtype=np.float64):
        r = _rng(10)
        logits = r.standard_normal((6, 5)).astype(dtype)
        t = np.array([0, 4, 2, 2, 1, 3], dtype=np.int64)
        return [((logits, t), {"ignore_index": -100, "label_smoothing": 0.0}),
                ((logits, np.array([0, -100, 2, 2, -100, 3])), {"ignore_index": -100, "label_smoothing": 0.0}),
                ((logits, t), {"ignore_index": 1, "label_smoothing": 0.1})]

    return gen


def shape_ops(kind):
    def gen(dtype=np.float64):
        r = _rng(11)
        x = r.standard_normal((2, 3, 4)).astype(dtype)
        return {
            "reshape": [((x,), {"shape": (6, 4)}), ((x.transpose(2, 1, 0),), {"shape": (4, 6)}), ((x,), {"shape": (24,)})],
            "permute": [((x,), {"dims": (2, 0, 1)}), ((x,), {"dims": (0, 1, 2)})],
            "expand": [((x[:, :1],), {"shape": (2, 3, 4)}), ((x[0, 0],), {"shape": (5, 4)})],
            "flip": [((x,), {"dims": (0, 2)}), ((x,), {"dims": (1,)})],
            "cat": [((x, x[:1]), {"dim": 0}), ((x, x[:, :2], x[:, :1]), {"dim": 1})],
            "pad": [((x,), {"widths": ((0, 0), (1, 2), (0, 1)), "value": 0.5})],
            "gather": [((x, r.integers(0, 4, (2, 3, 2))), {"dim": 2}), ((x, r.integers(0, 2, (1, 3, 4))), {"dim": 0})],
            "where": [((x > 0, x, -x), {}), ((np.array(True), x, x * 2), {})],
            "clamp": [((x, -0.5, 0.5), {}), ((x, None, 0.2), {}), ((x, x * 0.5, None), {})],
            "tril": [((x[0],), {"diagonal": 0}), ((x[0],), {"diagonal": 1})],
            "triu": [((x[0],), {"diagonal": -1})],
            "contiguous": [((x.transpose(1, 0, 2),), {})],
            "clone": [((x,), {})],
        }[kind]

    return gen
