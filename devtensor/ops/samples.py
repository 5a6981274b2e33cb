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
            t = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 5.0]], dtype=dtype)  # max ties in row 0, min ties in row 1
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


# ---- composites (devtensor/ops/_api.py COMPOSITES) ---------------------------------------------------
# Small on purpose: gradcheck and gradgradcheck perturb every element of every float input.

def _composite_samples(dtype):
    r = _rng(20)
    U = lambda *s, lo=-2.0, hi=2.0: r.uniform(lo, hi, s).astype(dtype)  # noqa: E731
    x = U(3, 4)
    x3 = U(2, 3, 2)
    signed = r.uniform(0.5, 2.0, (3, 4)) * r.choice([-1.0, 1.0], (3, 4))
    logits, logits3 = U(4, 3), U(2, 3, 2)
    t = np.array([0, 2, 1, 2], dtype=np.int64)
    t_ign = np.array([0, -100, 1, 2], dtype=np.int64)
    w3 = U(3, lo=0.2, hi=1.5)
    probs = r.dirichlet(np.ones(3), 4).astype(dtype)
    logp = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    p = U(3, 4, lo=0.05, hi=0.95)
    red = lambda f: [((U(3, 4), U(3, 4)), {}), ((U(3, 4), U(3, 4)), {"reduction": "sum"}),  # noqa: E731
                     ((U(3, 4), U(3, 4)), {"reduction": "none"}), ((U(), U()), {})]
    unary_x = [((x,), {}), ((x3,), {}), ((U(),), {}), ((U(4, 3).T,), {}), ((U(0, 3),), {})]
    var_samples = [((x,), {}), ((x,), {"dim": 1}), ((x,), {"dim": (0,), "keepdim": True, "unbiased": False}),
                   ((x,), {"dim": -1, "correction": 0}), ((x3,), {"dim": (0, 2), "correction": 2}),
                   ((U(4, 3).T,), {"dim": 0}), ((U(),), {})]
    return {
        "var": var_samples,
        "std": var_samples,
        "logsumexp": [((x,), {"dim": 1}), ((x3,), {"dim": (0, 2), "keepdim": True}), ((U(4, 3).T,), {"dim": -1}),
                      ((U(),), {"dim": 0}),
                      ((np.array([[1000.0, 0.0, -1000.0], [-1000.0, -1001.0, -999.0]], dtype=dtype),), {"dim": 1}),
                      ((np.array([[-np.inf, 0.5], [-np.inf, -np.inf]], dtype=dtype),), {"dim": 1})],
        "norm": [((x,), {}), ((x,), {"p": 1}), ((x,), {"p": np.inf}), ((x,), {"p": 3, "dim": 1}),
                 ((x3,), {"p": 2, "dim": (0,), "keepdim": True}), ((x,), {"p": "fro", "dim": (0, 1)}),
                 ((U(4, 3).T,), {"p": 1.5, "dim": -1}), ((x,), {"p": np.inf, "dim": 0, "keepdim": True}),
                 ((x,), {"p": 0}), ((x,), {"p": -np.inf, "dim": 1}), ((np.abs(x) + 0.5,), {"p": -1.5, "dim": 1})],
        "sum_to_size": [((x3, (3, 1)), {}), ((x3, 2, 1, 2), {}), ((x3, (2,)), {}), ((x, (3, 4)), {})],
        "gelu": unary_x + [((x,), {"approximate": "tanh"}), ((x3,), {"approximate": "tanh"})],
        "silu": unary_x,
        "square": unary_x,
        "trunc": unary_x,
        "lerp": [((U(3, 4), U(3, 4), 0.3), {}), ((U(3, 4), U(3, 4), U(3, 4, lo=0, hi=1)), {}),
                 ((U(3, 4), U(4), U(3, 1, lo=0, hi=1)), {}), ((U(2, 3), U(2, 3), 0.8), {})],
        "divide": [((x, signed.astype(dtype)), {}), ((x, signed.astype(dtype)), {"rounding_mode": "floor"}),
                   ((x, signed.astype(dtype)), {"rounding_mode": "trunc"}),
                   ((x3, signed[0, :2].astype(dtype)), {"rounding_mode": "trunc"})],
        # nn.functional
        "cross_entropy": [
            ((logits, t), {}),                                             # the fused mean
            ((logits, t), {"reduction": "none"}),                          # the fused rows
            ((logits, t_ign), {"reduction": "sum", "label_smoothing": 0.2}),
            ((logits, t, w3), {}),                                         # weight: log_softmax + gather
            ((logits, t_ign, w3), {"reduction": "none", "label_smoothing": 0.1}),
            ((logits, t_ign, w3), {"label_smoothing": 0.3}),
            ((logits, t, w3), {"reduction": "sum", "ignore_index": 1}),
            ((logits, probs), {}),                                         # class probabilities
            ((logits, probs, w3), {"reduction": "none", "label_smoothing": 0.2}),
            ((logits3, np.array([[0, 2], [1, 1]]), w3), {"reduction": "none"}),  # (N, C, d)
            ((logits3, np.array([[0, 2], [1, 1]])), {}),
            ((U(3), np.array(2), w3), {}),                                 # (C,) and a 0-d target
        ],
        "nll_loss": [((logp, t), {}), ((logp, t, w3), {"reduction": "sum"}), ((logp, t_ign), {"reduction": "none"}),
                     ((logp, t, w3), {"ignore_index": 2}), ((logits3, np.array([[0, 2], [1, 1]]), w3), {})],
        "mse_loss": red(None) + [((U(3, 4), U(3, 4)), {"size_average": False}), ((U(3, 4), U(3, 4)), {"reduce": False}),
                                 ((U(3, 4), U(3, 4), None, None, "mean", U(3, 4, lo=0.5, hi=2)), {})],
        "l1_loss": red(None) + [((U(3, 4), U(3, 4)), {"size_average": False}),
                                ((U(3, 4), U(3, 4), None, None, "sum", U(3, 4, lo=0.5, hi=2)), {})],
        "smooth_l1_loss": [((U(3, 4), U(3, 4)), {}), ((U(3, 4), U(3, 4)), {"beta": 0.5, "reduction": "sum"}),
                           ((U(3, 4), U(3, 4)), {"reduction": "none", "beta": 2.0}),
                           ((U(3, 4), U(3, 4)), {"beta": 0.0}),  # PyTorch: beta=0 is l1_loss
                           ((U(3, 4), U(3, 4), None, False), {"beta": 0.5})],  # PyTorch's 4th positional: reduce
        "binary_cross_entropy": [((p, U(3, 4, lo=0, hi=1)), {}), ((p, U(3, 4, lo=0, hi=1), U(3, 4, lo=0, hi=2)),
                                                                   {"reduction": "none"}),
                                 ((p, (U(3, 4) > 0).astype(dtype)), {"reduction": "sum"}),
                                 ((p, U(3, 4, lo=0, hi=1)), {"size_average": False})],
        "binary_cross_entropy_with_logits": [
            ((x, U(3, 4, lo=0, hi=1)), {}),
            ((x, U(3, 4, lo=0, hi=1), U(3, 4, lo=0, hi=2)), {"reduction": "none"}),
            ((x, U(3, 4, lo=0, hi=1), None, None, None, "sum", U(4, lo=0.5, hi=3)), {}),
            ((np.array([-30.0, -5.0, 5.0, 30.0], dtype=dtype), np.array([1.0, 0.0, 1.0, 0.0], dtype=dtype)), {})],
        "one_hot": [((np.array([0, 2, 1, 2]),), {}), ((np.array([[0, 1], [3, 1]]),), {"num_classes": 5}),
                    ((np.array(1),), {"num_classes": 3})],
        "embedding": [((np.array([0, 2, 1, 2]), U(3, 2)), {}), ((np.array([[0, 1], [3, 1]]), U(4, 3)), {}),
                      ((np.array([[0, 1], [3, 0]]), U(4, 3)), {"padding_idx": 0})],
        "layer_norm": [((x3, (2,)), {}), ((x3, (3, 2), U(3, 2), U(3, 2)), {}), ((x, (4,), U(4), None), {"eps": 1e-3}),
                       ((x3.transpose(1, 0, 2), [2], None, U(2)), {})],
        "batch_norm": [((x, U(4), U(4, lo=0.5, hi=2)), {}),
                       ((x, U(4), U(4, lo=0.5, hi=2), U(4), U(4)), {"eps": 1e-3}),
                       ((x, None, None, U(4), U(4)), {"training": True}),
                       ((U(2, 3, 2, 2), None, None), {"training": True, "eps": 1e-3}),
                       ((x, U(4), U(4, lo=0.5, hi=2)), {"training": True, "momentum": 0.2})],
        "leaky_relu": [((x,), {}), ((x3,), {"negative_slope": 0.2}), ((U(),), {})],
        "logsigmoid": [((x,), {}), ((U(3, 4, lo=-40, hi=40),), {}), ((U(),), {}), ((U(0, 2),), {})],
        "softplus": [((x,), {}), ((U(3, 4, lo=-4, hi=4),), {"beta": 2.0, "threshold": 5.0}), ((U(),), {})],
        "normalize": [((x,), {}), ((x,), {"p": 1.0, "dim": 0}), ((x3,), {"dim": -1}),
                      ((np.zeros((2, 3), dtype=dtype),), {})],
    }


def composite(name):
    """The samples of the composite `name`, in the op samples' format (a callable dtype -> list)."""
    def gen(dtype=np.float64):
        return _composite_samples(dtype)[name]

    gen.__name__ = f"samples_{name}"
    return gen


# Which composite samples gradcheck / gradgradcheck cannot hold on, and why (see _api.Composite):
# each returns True, or the reason the check does not apply to that sample.

def cross_entropy_gradgrad(args, kwargs):
    weighted = len(args) > 2 and args[2] is not None
    if weighted or args[1].dtype.kind == "f":
        return True  # log_softmax + gather / sum: composites of twice-differentiable ops
    return ("class-index targets without a weight run the fused cross_entropy_rows / cross_entropy_mean op, "
            "whose double backward raises NotImplementedError by design")


ONE_HOT_NOGRAD = "integer class indices in, int64 one-hot rows out: nothing to differentiate"


def embedding_grad(args, kwargs):
    if kwargs.get("padding_idx") is None:
        return True
    return ("padding_idx: by design (PyTorch's semantics) no gradient reaches the padding row although the "
            "output depends on it, so finite differences disagree")


def norm_grad(args, kwargs):
    if kwargs.get("p") == 0:
        return "p=0 counts the non-zero elements: its output has no gradient (PyTorch's has none either)"
    return True


def normalize_grad(args, kwargs):
    if np.all(np.abs(args[0]).sum(axis=kwargs.get("dim", 1)) > 0):
        return True
    return "an all-zero slice: clamp(min=eps) makes the gradient 1/eps there, not a finite-difference derivative"


# ---- ops declared without samples (tests/test_ops.py UNDECLARED attaches these) -----------------------

def values_and_indices():
    def gen(dtype=np.float64):
        x = _rng(21).permutation(60).reshape(3, 4, 5).astype(dtype) / 7  # distinct: no ties
        return [((x,), {"dim": 1, "keepdim": False}), ((x,), {"dim": 0, "keepdim": True}),
                ((x.transpose(2, 0, 1),), {"dim": 2, "keepdim": False})]

    return gen


def bool_reduction():
    def gen(dtype=np.float64):
        b = _rng(22).uniform(0, 1, (3, 4, 2)) > 0.3
        return [((b,), {"dim": None, "keepdim": False}), ((b,), {"dim": (1,), "keepdim": False}),
                ((b,), {"dim": (0, 2), "keepdim": True}), ((b[:0],), {"dim": (0,), "keepdim": False})]

    return gen


def bitwise(unary=False):
    def gen(dtype=np.float64):
        r = _rng(23)
        a, b = r.integers(-8, 9, (3, 4)), r.integers(-8, 9, (3, 4))
        ba, bb = a > 0, b > 0
        if unary:
            return [((a,), {}), ((ba,), {}), ((a.T,), {})]
        return [((a, b), {}), ((a, b[:1]), {}), ((ba, bb), {}), ((a, 5), {}), ((a.T, b.T), {})]

    return gen


def scatter_add():
    def gen(dtype=np.float64):
        r = _rng(24)
        x = r.standard_normal((3, 4)).astype(dtype)
        return [((x, r.integers(0, 3, (2, 4)), r.standard_normal((2, 4)).astype(dtype)), {"dim": 0}),
                ((x, r.integers(0, 4, (3, 2)), r.standard_normal((3, 2)).astype(dtype)), {"dim": 1}),
                ((x.T, r.integers(0, 4, (2, 3)), r.standard_normal((2, 3)).astype(dtype)), {"dim": 0})]
    # src larger than index: tests/test_ops.py test_scatter_add_src_larger_than_index (forward and gradient)

    return gen


def conv2d_backward(which):
    from . import reference as R

    def gen(dtype=np.float64):
        r = _rng(25)
        out = []
        for x, w, _, attrs in ((a[0], a[1], a[2], k) for a, k in conv2d()(dtype)[:3]):
            gy = r.standard_normal(R.conv2d(x, w, None, **attrs).shape).astype(dtype)
            if which == "input":
                out.append(((gy, w), {**attrs, "x_shape": x.shape}))
            else:
                out.append(((gy, x), {**attrs, "w_shape": w.shape}))
        return out

    return gen


def max_pool2d_backward():
    from . import reference as R

    def gen(dtype=np.float64):
        r = _rng(26)
        out = []
        for (x,), attrs in max_pool2d()(dtype)[:3]:
            y, idx = R.max_pool2d(x, **attrs)
            out.append(((r.standard_normal(y.shape).astype(dtype), idx), {"x_shape": x.shape}))
        return out

    return gen


def avg_pool2d_backward():
    from . import reference as R

    def gen(dtype=np.float64):
        r = _rng(27)
        out = []
        for (x,), attrs in avg_pool2d()(dtype):
            y = R.avg_pool2d(x, **attrs)
            out.append(((r.standard_normal(y.shape).astype(dtype),), {**attrs, "x_shape": x.shape}))
        return out

    return gen


def cross_entropy_rows_backward():
    from . import reference as R

    def gen(dtype=np.float64):
        r = _rng(28)
        out = []
        for (logits, t), attrs in cross_entropy()(dtype):
            _, lse = R.cross_entropy_rows(logits, t, **attrs)
            out.append(((r.standard_normal(len(t)).astype(dtype), logits, lse, t), attrs))
        out.append(((np.asarray(0.25, dtype=dtype), logits, lse, t), attrs))  # the fused mean's 0-d scale
        return out

    return gen
