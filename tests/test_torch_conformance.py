"""PyTorch conformance, driven by PyTorch itself: a ported program gives PyTorch's answer or PyTorch's error.

Every public devtensor name that PyTorch also has (the functions devtensor exports at top level, the Tensor
methods and operators, devtensor.nn.functional) is called here on the same inputs as its PyTorch namesake,
in the calling forms PyTorch documents (function, method, in-place, operator, keywords and their axis= /
keepdims= aliases, varargs, out=), and the two must agree on

    the values (NaN where PyTorch has NaN, inf where it has inf), the dtype and the shape of every output,
    the gradient of every input (an upstream gradient of fixed random values, never exactly 0),
    and, where PyTorch raises, the exception class.

Inputs: the op table's kind of samples plus the edge values where rules break (0, -0, +-inf, NaN, ties,
values at a clamp bound or a loss's breakpoint, empty tensors, 0-d tensors, non-contiguous views,
broadcasting, Python and numpy scalars, mixed dtypes). Everything is fixed (no randomness: derandomized by
construction), and the whole module runs in well under a minute on 2 cores.

Deliberate differences are listed in DIFFERENCES below, each with its reason (and in README.md's
"Differences from PyTorch"): such a case is still run and must still differ (so the table cannot go stale),
never silently skipped. Random functions compare shapes and dtypes only (RANDOM). Names that are not
computations (attributes, hooks, device moves) are listed in NOT_COMPARED_HERE with the test that covers them.
test_every_shared_name_is_compared keeps the coverage honest.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import devtensor as dt
import devtensor.nn.functional as F
from devtensor.ops._api import FUNCTIONS

torch = pytest.importorskip("torch")
TF = torch.nn.functional

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning",
                                        "ignore::RuntimeWarning")

# ---- inputs -------------------------------------------------------------------------------------------

INF, NAN = math.inf, math.nan
# the values where piecewise and "stable" rules break: signed zeros, +-1, infinities, NaN
EDGE = np.array([0.0, -0.0, 1.0, -1.0, 0.5, -2.5, 3.0, INF, -INF, NAN])
R = np.random.default_rng(1234)


def U(*shape, lo=-2.0, hi=2.0, dtype=np.float64):
    return R.uniform(lo, hi, shape).astype(dtype)


def I(*shape, lo=-3, hi=4, dtype=np.int64):  # noqa: E743 - integer sample
    return R.integers(lo, hi, shape).astype(dtype)


class NC:
    """A non-contiguous input: the tensor made from `a`, then viewed: "T" (transposed) or "step" ([:, ::2])."""

    def __init__(self, a, kind="T"):
        self.a, self.kind = a, kind

    def __repr__(self):
        return f"NC({self.a.shape}, {self.kind})"


class Raw:
    """An argument passed to both libraries as it is (a numpy array where a Tensor belongs)."""

    def __init__(self, v):
        self.v = v

    def __repr__(self):
        return f"Raw({type(self.v).__name__})"


class NoGrad:
    """A tensor argument that never requires grad (running statistics, class weights: PyTorch refuses to
    differentiate with respect to those)."""

    def __init__(self, a):
        self.a = a

    def __repr__(self):
        return f"NoGrad({self.a.shape})"


class Lib:
    """One library's side of a case: `L.f` is the module (devtensor / torch), `L.F` its nn.functional."""

    def __init__(self, mod, functional):
        self.m, self.F, self.is_torch = mod, functional, mod is torch

    def tensor(self, a, requires_grad=False):
        t = torch.from_numpy(np.array(a, copy=True)) if self.is_torch else dt.tensor(np.array(a, copy=True))
        if requires_grad and a.dtype.kind in "fc":
            t.requires_grad_(True)
        return t

    def dtype(self, name):
        return getattr(self.m, name)


DT, TO = Lib(dt, F), Lib(torch, TF)


def _convert(L, v, leaves, grad):
    if isinstance(v, np.ndarray):
        t = L.tensor(v, grad)
        if t.requires_grad:
            leaves.append(t)
        return t
    if isinstance(v, Raw):
        return v.v
    if isinstance(v, NoGrad):
        return _convert(L, v.a, leaves, False)
    if isinstance(v, NC):
        t = _convert(L, v.a, leaves, grad)
        return t.transpose(0, 1) if v.kind == "T" else t[:, ::2]
    if isinstance(v, list):
        return [_convert(L, x, leaves, grad) for x in v]
    if isinstance(v, tuple) and any(isinstance(x, (np.ndarray, NC)) for x in v):
        return tuple(_convert(L, x, leaves, grad) for x in v)
    if isinstance(v, Dtype):
        return L.dtype(v.name)
    return v


class Dtype:
    """A dtype argument, resolved to each library's own (Dtype("float64") -> dt.float64 / torch.float64)."""

    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return self.name


def _is_tensor(v):
    return isinstance(v, (dt.Tensor, torch.Tensor))


def _flat(out):
    if isinstance(out, (tuple, list)):
        return [x for o in out for x in _flat(o)]
    return [out]


def _np(t):
    if isinstance(t, torch.Tensor):
        return t.detach().cpu().resolve_conj().resolve_neg().numpy()  # (PyTorch's lazy conj / neg bits)
    return np.asarray(t.detach().cpu())


def _dtype_name(t):
    return str(t.dtype).split(".")[-1]


_BUILTIN = (IndexError, TypeError, ValueError, NotImplementedError, ZeroDivisionError, KeyError, AssertionError,
            RuntimeError)


def _error_class(e):
    for c in type(e).__mro__:
        if c in _BUILTIN:
            return c
    return Exception


def _has_f32(args, kwargs):
    def f32(v):
        if isinstance(v, (NC, NoGrad)):
            return f32(v.a)
        if isinstance(v, (list, tuple)):
            return any(f32(x) for x in v)
        return isinstance(v, (np.ndarray, np.floating)) and v.dtype in (np.float32, np.float16, np.complex64)
    return any(f32(v) for v in (*args, *kwargs.values()))


def run(L, fn, args, kwargs, grad=True):
    """fn(L, *args, **kwargs) with numpy inputs made L's tensors: ("error", class, message) or
    ("ok", [outputs as (shape, dtype, values) or plain values], [input gradients] or None)."""
    leaves = []
    a = [_convert(L, v, leaves, grad) for v in args]
    k = {n: _convert(L, v, leaves, grad) for n, v in kwargs.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            out = fn(L, *a, **k)
        except Exception as e:  # noqa: BLE001 - the class is what is compared
            return ("error", _error_class(e), f"{type(e).__name__}: {e}")
    outs = _flat(out)
    vals = [(tuple(o.shape), _dtype_name(o), _np(o)) if _is_tensor(o) else o for o in outs]
    grads = None
    diff = [o for o in outs if _is_tensor(o) and o.requires_grad]
    if grad and leaves and diff:
        loss = 0
        for i, o in enumerate(diff):
            up = np.random.default_rng(7 + i).uniform(0.5, 1.5, tuple(o.shape)).astype(_np(o).dtype)
            loss = loss + (o * L.tensor(up)).sum()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                loss.backward()
                grads = [None if x.grad is None else _np(x.grad) for x in leaves]
            except Exception as e:  # noqa: BLE001
                grads = ("error", _error_class(e), f"{type(e).__name__}: {e}")
    return ("ok", vals, grads)


def _tol(dtype_name):
    return dict(rtol=2e-5, atol=2e-6) if dtype_name in ("float32", "float16") else dict(rtol=1e-8, atol=1e-12)


def compare(mine, ref, f32=False):
    """None when devtensor's result `mine` agrees with PyTorch's `ref`, else what differs (f32: an input is
    float32, so float64 results computed from it get float32's tolerance)."""
    if ref[0] == "error":
        if mine[0] != "error":
            return f"PyTorch raises {ref[2][:150]!r}; devtensor returns a result"
        if not issubclass(mine[1], ref[1]):
            return f"PyTorch raises {ref[1].__name__} ({ref[2][:120]!r}); devtensor {mine[2][:160]!r}"
        return None
    if mine[0] == "error":
        return f"devtensor raises {mine[2][:200]!r}; PyTorch returns a result"
    _, mv, mg = mine
    _, rv, rg = ref
    if len(mv) != len(rv):
        return f"{len(mv)} outputs, PyTorch {len(rv)}"
    for i, (m, r) in enumerate(zip(mv, rv)):
        if isinstance(r, tuple) and len(r) == 3 and isinstance(r[2], np.ndarray):
            if not (isinstance(m, tuple) and len(m) == 3):
                return f"output {i}: {type(m).__name__}, PyTorch a tensor"
            if m[0] != r[0]:
                return f"output {i}: shape {m[0]}, PyTorch {r[0]}"
            if m[1] != r[1]:
                return f"output {i}: dtype {m[1]}, PyTorch {r[1]}"
            err = _values_differ(m[2], r[2], "float32" if f32 else r[1])
            if err:
                return f"output {i}: {err}"
        elif isinstance(r, (bool, int, float)) and not isinstance(m, (bool, int, float)):
            return f"output {i}: {m!r}, PyTorch {r!r}"
        elif isinstance(r, float) and not (r == m or (math.isnan(r) and math.isnan(m))):
            return f"output {i}: {m!r}, PyTorch {r!r}"
        elif isinstance(r, (bool, int)) and r != m:
            return f"output {i}: {m!r}, PyTorch {r!r}"
    rg, mg = _no_grads(rg), _no_grads(mg)
    if (rg is None) != (mg is None):
        return f"gradients: devtensor {'none' if mg is None else 'some'}, PyTorch {'none' if rg is None else 'some'}"
    if rg is None:
        return None
    if _failed(rg) or _failed(mg):
        if not (_failed(rg) and _failed(mg) and issubclass(mg[1], rg[1])):
            return f"backward: devtensor {mg[2] if _failed(mg) else 'ok'}, PyTorch {rg[2] if _failed(rg) else 'ok'}"
        return None
    for i, (m, r) in enumerate(zip(mg, rg)):
        if (m is None) != (r is None):
            return f"gradient {i}: devtensor {'None' if m is None else 'a tensor'}, PyTorch {'None' if r is None else 'a tensor'}"
        if r is not None:
            err = _values_differ(m, r, "float32" if f32 else str(r.dtype), grad=True)
            if err:
                return f"gradient of input {i}: {err}"
    return None


def _no_grads(grads):
    """No backward at all and a backward that reaches no input (every .grad None) are the same to a program."""
    if isinstance(grads, list) and all(g is None for g in grads):
        return None
    return grads


def _failed(grads):
    return isinstance(grads, tuple) and len(grads) == 3 and grads[0] == "error"


def _values_differ(m, r, dtype_name, grad=False):
    if m.shape != r.shape:
        return f"shape {m.shape}, PyTorch {r.shape}"
    if r.dtype.kind in "fc":
        tol = _tol(dtype_name)
        if grad:
            tol = {k: v * 10 for k, v in tol.items()}
        bad = ~((np.isnan(m) & np.isnan(r)) | (m == r) | (np.abs(m - r) <= tol["atol"] + tol["rtol"] * np.abs(r)))
        if bad.any():
            i = np.argwhere(bad)[0]
            return f"{m[tuple(i)]!r} at {tuple(int(v) for v in i)}, PyTorch {r[tuple(i)]!r} ({int(bad.sum())} of {bad.size} differ)"
        return None
    if not np.array_equal(m, r):
        i = np.argwhere(m != r)[0] if m.ndim else ()
        return f"{m[tuple(i)]!r} at {tuple(int(v) for v in i)}, PyTorch {r[tuple(i)]!r}"
    return None


# ---- cases --------------------------------------------------------------------------------------------

class Case:
    __slots__ = ("group", "name", "form", "fn", "args", "kwargs", "grad", "tag")

    def __init__(self, group, name, form, fn, args=(), kwargs=None, grad=True, tag=""):
        self.group, self.name, self.form, self.fn = group, name, form, fn
        self.args, self.kwargs, self.grad, self.tag = tuple(args), dict(kwargs or {}), grad, tag

    @property
    def id(self):
        return f"{self.name}[{self.form}]{'/' + self.tag if self.tag else ''}"

    def describe(self):
        def d(v):
            if isinstance(v, np.ndarray):
                return f"array{v.shape}:{v.dtype}" if v.size > 6 or v.ndim > 1 else f"{v.tolist()}:{v.dtype}"
            return repr(v)
        return f"{self.id}({', '.join(d(a) for a in self.args)}{', ' if self.kwargs else ''}" \
               f"{', '.join(f'{k}={d(v)}' for k, v in self.kwargs.items())})"


CASES: list = []


def case(group, name, form, fn, args=(), kwargs=None, grad=True, tag=""):
    CASES.append(Case(group, name, form, fn, args, kwargs, grad, tag))


def fn_form(name):
    return lambda L, *a, **k: getattr(L.m, name)(*a, **k)


def method_form(name):
    return lambda L, x, *a, **k: getattr(x, name)(*a, **k)


def F_form(name):
    return lambda L, *a, **k: getattr(L.F, name)(*a, **k)


def inplace_form(name):
    """x.<name>_(...) on a copy of x (a non-leaf when x requires grad), returning the modified copy."""

    def f(L, x, *a, **k):
        y = x.clone()
        r = getattr(y, name + "_")(*a, **k)
        assert r is y, f"{name}_ must return self"
        return y

    return f


def out_form(name):
    """<name>(..., out=o) under no_grad with an empty `o` of the result's dtype (PyTorch resizes it):
    the returned object must be `o`."""

    def f(L, *a, **k):
        with L.m.no_grad():
            ref = getattr(L.m, name)(*a, **k)
            outs = tuple(L.m.empty(0, dtype=r.dtype) for r in _flat(ref))
            res = getattr(L.m, name)(*a, **k, out=outs if len(outs) > 1 else outs[0])
        for o, r in zip(outs, _flat(res)):
            assert o is r, f"{name}(out=) must return out"
        return res

    return f


def forms(group, name, args, kwargs=None, *, function=True, method=True, inplace=False, out=False, F=False,
          grad=True, tag=""):
    """The calling forms PyTorch documents for `name`, on one sample."""
    if function:
        case(group, name, "fn", fn_form(name), args, kwargs, grad, tag)
    if method:
        case(group, name, "method", method_form(name), args, kwargs, grad, tag)
    if inplace:
        case(group, name, "inplace", inplace_form(name), args, kwargs, grad, tag)
    if out:
        case(group, name, "out", out_form(name), args, kwargs, False, tag)
    if F:
        case(group, name, "F", F_form(name), args, kwargs, grad, tag)


# ---- elementwise: unary ---------------------------------------------------------------------------------

UNARY_FLOAT = ["abs", "neg", "negative", "exp", "expm1", "log", "log1p", "sqrt", "rsqrt", "sin", "cos", "tanh",
               "sigmoid", "relu", "erf", "reciprocal", "sign", "floor", "ceil", "round", "trunc", "square"]
UNARY_PRED = ["isnan", "isfinite", "isinf", "logical_not"]
HAS_INPLACE = {n for n in UNARY_FLOAT if hasattr(torch.Tensor, n + "_") and hasattr(dt.Tensor, n + "_")}


def _unary_samples():
    e32 = EDGE.astype(np.float32)
    return [("edge64", EDGE), ("edge32", e32), ("0d", np.array(-0.75)), ("empty", np.zeros((0, 3))),
            ("2d", U(3, 4)), ("nc", NC(U(4, 3))), ("int", np.array([0, 1, -2, 5])),
            ("int32", np.array([3, -1, 0], dtype=np.int32)), ("bool", np.array([True, False]))]


for _n in UNARY_FLOAT + UNARY_PRED:
    for _tag, _x in _unary_samples():
        forms("unary", _n, (_x,), function=True, method=True, out=_n not in ("negative",) and _tag in ("edge64", "int"),
              inplace=_n in HAS_INPLACE and _tag in ("edge64", "edge32", "2d", "int"), tag=_tag)
for _tag, _x in (("int", np.array([0, 5, -3])), ("bool", np.array([True, False])), ("float", EDGE)):
    forms("unary", "bitwise_not", (_x,), inplace=_tag != "float", out=_tag == "int", tag=_tag)
forms("unary", "logical_not", (np.array([True, False]),), function=False, method=False, inplace=True, tag="inplace")
forms("unary", "round", (np.array([0.5, 1.5, 2.5, -0.5, 1.2345]),), {"decimals": 2}, tag="decimals")
forms("unary", "abs", (EDGE,), function=False, method=False, inplace=True, tag="abs_")
case("unary", "__neg__", "op", lambda L, x: -x, (EDGE,))
case("unary", "__abs__", "op", lambda L, x: abs(x), (EDGE,))
case("unary", "__invert__", "op", lambda L, x: ~x, (np.array([True, False]),))
case("unary", "__pos__", "op", lambda L, x: +x, (EDGE,))

# ---- elementwise: binary --------------------------------------------------------------------------------

# PyTorch's binary functions: which take a Python scalar in which position (see ops/elementwise.py)
BIN_EITHER = ["add", "sub", "mul", "div", "true_divide", "divide", "multiply", "subtract", "pow", "remainder",
              "floor_divide"]
BIN_OTHER = ["eq", "ne", "lt", "le", "gt", "ge", "greater", "less"]
BIN_TENSORS = ["atan2", "maximum", "minimum", "logical_and", "logical_or", "logical_xor"]
BITWISE = ["bitwise_and", "bitwise_or", "bitwise_xor"]
OPERATORS = {"add": "+", "sub": "-", "mul": "*", "div": "/", "pow": "**", "remainder": "%", "floor_divide": "//",
             "eq": "==", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">=", "bitwise_and": "&",
             "bitwise_or": "|", "bitwise_xor": "^"}
BIN_INPLACE = {n for n in BIN_EITHER + BIN_TENSORS + BITWISE
               if hasattr(torch.Tensor, n + "_") and hasattr(dt.Tensor, n + "_")}

_ties = np.array([0.0, -0.0, 1.0, -1.0, 2.0, INF, -INF, NAN, 0.5, 3.0])
_other = np.array([0.0, 0.0, 1.0, 2.0, -2.0, INF, 1.0, 1.0, NAN, 3.0])  # equal pairs: ties in max/min


def _binary_samples(name):
    pos = name in ("pow", "div", "true_divide", "divide", "remainder", "floor_divide", "atan2")
    b = U(3, 4, lo=0.5, hi=2.0) if pos else U(3, 4)
    out = [("edge", (_ties, _other)), ("edge32", (_ties.astype(np.float32), _other.astype(np.float32))),
           ("bcast", (U(3, 1), U(1, 4, lo=0.5, hi=2) if pos else U(1, 4))), ("rank", (U(2, 3, 4), b[0])),
           ("0d", (np.array(1.5), U(3))), ("empty", (np.zeros((0, 3)), U(3))), ("nc", (NC(U(4, 3)), b)),
           ("f32xf64", (U(3).astype(np.float32), U(3, lo=0.5, hi=2))),
           ("f32x0d64", (U(3).astype(np.float32), np.array(1.25))),  # a 0-d tensor does not promote
           ("intxfloat", (np.array([1, -2, 3]), np.array([0.5, 2.0, -1.5], dtype=np.float32))),
           ("int32xint64", (np.array([1, -2, 3], dtype=np.int32), np.array([2, 1, 3]))),
           ("boolxint", (np.array([True, False, True]), np.array([2, 1, 3]))),
           ("int", (np.array([7, -7, 5, 0]), np.array([2, 2, -3, 4])))]
    return out


_SCALARS = [("pyint", 2), ("pyfloat", 0.5), ("pybool", True), ("npf64", np.float64(1.5)), ("npi32", np.int32(3)),
            ("npf32", np.float32(-0.5))]

for _n in BIN_EITHER + BIN_OTHER + BIN_TENSORS:
    for _tag, (_a, _b) in _binary_samples(_n):
        forms("binary", _n, (_a, _b), out=_tag in ("edge", "int", "intxfloat"),
              inplace=_n in BIN_INPLACE and _tag in ("edge", "bcast", "nc", "intxfloat", "int32xint64"), tag=_tag)
    _x = U(3, 4) if _n != "pow" else U(3, 4, lo=0.5, hi=2)
    for _tag, _s in _SCALARS:
        forms("binary", _n, (_x, _s), inplace=_n in BIN_INPLACE, tag="tensor-" + _tag)
        forms("binary", _n, (np.array([1, 2, -3]), _s), inplace=_n in BIN_INPLACE, tag="int-" + _tag)
        forms("binary", _n, (_s, _x), method=False, tag=_tag + "-tensor")
    case("binary", _n, "fn", fn_form(_n), (_x, Raw(U(3, 4))), tag="ndarray")
    case("binary", _n, "kw", lambda L, x, y, _n=_n: getattr(L.m, _n)(input=x, other=y) if _n != "pow"
         else getattr(L.m, _n)(x, exponent=y), (_x, U(3, 4)), tag="keywords")
for _n in BITWISE:
    for _tag, (_a, _b) in (("int", (np.array([5, -3, 0, 12]), np.array([3, 6, -1, 10]))),
                           ("bool", (np.array([True, False, True]), np.array([True, True, False]))),
                           ("bcast", (I(3, 1), I(1, 4))), ("scalar", (I(3), 6)), ("float", (U(3), U(3)))):
        forms("binary", _n, (_a, _b), inplace=False, out=_tag == "int", tag=_tag)
def _dunder(op):
    return {"+": "add", "-": "sub", "*": "mul", "/": "truediv", "**": "pow", "%": "mod", "//": "floordiv",
            "==": "eq", "!=": "ne", "<": "lt", "<=": "le", ">": "gt", ">=": "ge", "&": "and", "|": "or",
            "^": "xor"}[op]


def _iop(x, y, f):
    z = x.clone()
    r = f(z, y)
    assert r is z
    return z


for _n, _op in OPERATORS.items():
    _f = eval(f"lambda L, x, y: x {_op} y")  # noqa: S307 - a fixed operator table
    _r = eval(f"lambda L, x, y: y {_op} x")  # noqa: S307 - reflected: the scalar on the left
    _i = eval(f"lambda L, x, y: _iop(x, y, lambda a, b: a.__i{_dunder(_op)}__(b))") if _op not in (
        "==", "!=", "<", "<=", ">", ">=") else None  # noqa: S307
    _ints = _n.startswith("bitwise")
    _x = I(3, 4, lo=1, hi=6) if _ints else (U(3, 4) if _n != "pow" else U(3, 4, lo=0.5, hi=2))
    _y = I(3, 4, lo=1, hi=6) if _ints else U(3, 4, lo=0.5, hi=2)
    case("operator", f"__{_dunder(_op)}__", "op", _f, (_x, _y))
    case("operator", f"__{_dunder(_op)}__", "op", _f, (_x, 3), tag="scalar")
    case("operator", f"__{_dunder(_op)}__", "op", _f, (_x, np.float64(2.5) if not _ints else np.int64(3)), tag="npscalar")
    case("operator", f"__{_dunder(_op)}__", "op", _f, (_x, _y[0]), tag="bcast")
    if _n not in ("eq", "ne", "lt", "le", "gt", "ge"):
        case("operator", f"__r{_dunder(_op)}__", "op", _r, (_x, 3), tag="scalar-left")
    if _i is not None:
        case("operator", f"__i{_dunder(_op)}__", "op", _i, (_x, _y))
        case("operator", f"__i{_dunder(_op)}__", "op", _i, (I(3, 4, lo=1, hi=5), U(3, 4)), tag="int-by-float")
case("operator", "__matmul__", "op", lambda L, a, b: a @ b, (U(3, 4), U(4, 2)))
case("operator", "__rmatmul__", "op", lambda L, a, b: b.__rmatmul__(a), (U(3, 4), U(4, 2)))


for _tag, _alpha, _b in (("alpha", 2, U(3, 4)), ("alpha-float", 0.5, U(3, 4)), ("alpha-scalar-other", 3, 1.5)):
    for _n in ("add", "sub"):
        forms("binary", _n, (U(3, 4), _b), {"alpha": _alpha}, inplace=True, tag=_tag)
forms("binary", "divide", (U(3, 4), U(3, 4, lo=0.5, hi=2)), {"rounding_mode": "floor"}, tag="floor")
forms("binary", "divide", (U(3, 4), U(3, 4, lo=0.5, hi=2)), {"rounding_mode": "trunc"}, tag="trunc")
forms("binary", "divide", (np.array([7, -7, 5]), np.array([2, 2, -3])), {"rounding_mode": "trunc"}, tag="int-trunc")
forms("binary", "floor_divide", (np.array([7, -7]), np.array([0, 0])), tag="int-by-zero")
forms("binary", "remainder", (np.array([7, -7]), np.array([0, 0])), tag="int-by-zero")
forms("binary", "pow", (np.array([0.0, 0.0, 2.0, -2.0, 4.0]), np.array([0.0, 2.0, 0.0, 2.0, 0.5])), tag="zero-exponent")
forms("binary", "pow", (np.array([2, 3, -2]), np.array([2, 0, 3])), tag="int-nonnegative")
forms("binary", "pow", (np.array([2, 3]), -1), tag="int-negative-scalar")
forms("binary", "pow", (U(3, lo=0.5, hi=2), 0), tag="scalar-zero")
forms("binary", "pow", (np.array([0.0, 1.0, 2.0]), 0.5), tag="sqrt-at-0")

# ---- lerp, clamp, where, masked_fill --------------------------------------------------------------------

for _tag, _args in (("scalar", (U(3, 4), U(3, 4), 0.3)), ("tensor", (U(3, 4), U(3, 4), U(3, 4, lo=0, hi=1))),
                    ("bcast", (U(3, 4), U(4), U(3, 1, lo=0, hi=1))), ("edge", (EDGE, EDGE[::-1].copy(), 0.5))):
    forms("lerp", "lerp", _args, inplace=True, out=_tag == "scalar", tag=_tag)
forms("lerp", "lerp", (U(3), U(3), 2), tag="int-weight")

_at_bounds = np.array([-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0, NAN, INF, -INF])
for _n in ("clamp", "clip"):
    for _tag, _a, _k in (("both", (_at_bounds, -1.0, 1.0), {}), ("min", (_at_bounds,), {"min": -0.5}),
                         ("max", (_at_bounds,), {"max": 0.5}), ("tensor-bounds", (_at_bounds, np.full(10, -1.0), np.full(10, 0.5)), {}),
                         ("tensor-min-only", (_at_bounds, np.full(10, -0.5)), {}),
                         ("min>max", (_at_bounds, 1.0, -1.0), {}), ("int", (np.array([-5, 0, 5]), -2, 3), {}),
                         ("int-float-bound", (np.array([-5, 0, 5]), -2.5, 3.5), {}),
                         ("none", (_at_bounds,), {}), ("kw", (_at_bounds,), {"min": -1.0, "max": 1.0})):
        forms("clamp", _n, _a, _k, inplace=_tag in ("both", "min", "tensor-bounds", "int"),
              out=_tag == "both", tag=_tag)
for _n, _b in (("clamp_min", -0.5), ("clamp_max", 0.5)):
    forms("clamp", _n, (_at_bounds, _b), inplace=True, tag="scalar")
    forms("clamp", _n, (_at_bounds, np.full(10, _b)), inplace=True, tag="tensor")

_cond = np.array([True, False, True, False])
for _tag, _a in (("tensors", (_cond, U(4), U(4))), ("bcast", (_cond[:, None], U(4), U(1, 4))),
                 ("scalar-other", (_cond, U(4), 0.0)), ("scalar-input", (_cond, 1.0, U(4))),
                 ("two-floats", (_cond, 1.0, 0.0)), ("two-bools", (_cond, True, False)), ("two-ints", (_cond, 1, 0)),
                 ("int-and-float", (_cond, np.array([1, 2, 3, 4], dtype=np.int32), 2.5)),
                 ("mixed-dtypes", (_cond, U(4).astype(np.float32), U(4))),
                 ("int-cond", (np.array([1, 0, 2, 0]), U(4), U(4))),
                 ("edge", (np.array([True] * 5 + [False] * 5), EDGE, EDGE[::-1].copy())),
                 ("cond-only", (_cond,)), ("shape", (_cond, U(3), U(4)))):
    forms("where", "where", _a, method=False, out=_tag == "tensors", tag=_tag)
case("where", "where", "method", lambda L, c, x, y: x.where(c, y), (_cond, U(4), U(4)))
case("where", "where", "method", lambda L, c, x, y: x.where(c, y), (_cond, U(4), 0.5), tag="scalar")
for _tag, _v in (("float", -1.5), ("int", 3), ("0d", np.array(2.0)), ("bool", True)):
    forms("masked_fill", "masked_fill", (U(3, 4), U(3, 4) > 0, _v), inplace=True, tag=_tag)
forms("masked_fill", "masked_fill", (np.array([1, 2, 3]), np.array([True, False, True]), 2.7), tag="int-float-value")
forms("masked_fill", "masked_fill", (U(3, 4), U(3, 4), 0.0), tag="float-mask")
forms("masked_fill", "masked_fill", (U(3, 4), U(4) > 0, 0.0), tag="bcast-mask")

# ---- reductions -----------------------------------------------------------------------------------------

_x3 = np.array([[[1.0, 3.0, 3.0, -1.0], [0.0, 2.0, -2.0, 0.5], [2.0, 2.0, 2.0, 2.0]],
                [[-1.0, 0.0, 4.0, 4.0], [1.5, -0.5, 0.0, 0.0], [3.0, -3.0, 1.0, 1.0]]])  # ties, zeros, constants
_REDUCE_X = [("x3", _x3), ("x32", _x3.astype(np.float32)), ("0d", np.array(1.5)), ("empty", np.zeros((3, 0))),
             ("nc", NC(U(4, 3))), ("int", np.array([[1, -2, 3], [4, 0, -6]])), ("bool", np.array([[True, False], [True, True]])),
             ("nan", np.array([[1.0, NAN, 2.0], [INF, -INF, 0.0]]))]
_REDUCE_KW = [("all", {}), ("dim1", {"dim": 1}), ("dim-1", {"dim": -1}), ("tuple", {"dim": (0, 2)}),
              ("keepdim", {"dim": 1, "keepdim": True}), ("pos", (1, True)), ("dim-out-of-range", {"dim": 3}),
              ("axis", {"axis": 1}), ("axis-keepdims", {"axis": 0, "keepdims": True}), ("dim0", {"dim": 0})]
REDUCTIONS = ["sum", "mean", "prod", "amax", "amin", "max", "min", "argmax", "argmin", "all", "any", "logsumexp",
              "var", "std", "norm"]
for _n in REDUCTIONS:
    for _xt, _x in _REDUCE_X:
        for _kt, _k in _REDUCE_KW:
            if _kt == "all" and _n == "logsumexp":
                continue
            if _kt == "tuple" and _xt not in ("x3", "x32", "empty"):
                continue
            _args, _kw = ((_x,) + _k, {}) if isinstance(_k, tuple) else ((_x,), _k)
            if _n == "norm" and isinstance(_k, tuple):
                _args, _kw = (_x,), {"dim": 1, "keepdim": True}
            forms("reduce", _n, _args, _kw, out=_kt == "dim1" and _xt == "x3" and _n not in ("max", "min", "norm"),
                  tag=f"{_xt}-{_kt}")
for _n in ("sum", "mean", "prod"):
    forms("reduce", _n, (_x3,), {"dtype": Dtype("float32")}, tag="dtype")
    forms("reduce", _n, (np.array([[1, 2], [3, 4]]),), {"dim": 0, "dtype": Dtype("float64")}, tag="int-dtype")
for _n in ("max", "min"):
    forms("reduce", _n, (_x3, _x3[::-1].copy()), tag="elementwise")
    forms("reduce", _n, (_x3,), {"dim": 1, "keepdim": True}, out=True, tag="dim-out")
    case("reduce", _n, "fields", lambda L, x, _n=_n: getattr(x, _n)(1).values + getattr(x, _n)(1).indices, (_x3,))
for _p in ("fro", 1, 2, 3, 0.5, INF, -INF, 0, -1):
    for _tag, _x in (("x3", _x3), ("zeros", np.zeros((2, 3))), ("row-zero", np.array([[0.0, 0.0], [3.0, -4.0]]))):
        forms("reduce", "norm", (_x, _p), tag=f"p={_p}-{_tag}")
        forms("reduce", "norm", (_x,), {"p": _p, "dim": 1}, tag=f"p={_p}-dim-{_tag}")
forms("reduce", "norm", (np.array([1, 2]),), tag="int")
forms("reduce", "norm", (np.zeros((0, 3)), INF), tag="empty-inf")
for _n in ("var", "std"):
    for _tag, _k in (("unbiased-false", {"unbiased": False}), ("correction0", {"dim": 1, "correction": 0}),
                     ("correction2", {"dim": (0, 2), "correction": 2}), ("positional-unbiased", None),
                     ("one-element", {"dim": 0})):
        if _k is None:
            forms("reduce", _n, (_x3, 1, False), tag=_tag)
        else:
            forms("reduce", _n, (_x3 if _tag != "one-element" else U(1, 3),), _k, tag=_tag)
    forms("reduce", _n, (np.ones((2, 3)),), {"dim": 1}, tag="constant-rows")
forms("reduce", "logsumexp", (np.array([[-INF, -INF], [-INF, 0.5], [INF, 1.0]]),), {"dim": 1}, tag="infinite-rows")
forms("reduce", "logsumexp", (np.array([[1, 2], [3, 4]]),), {"dim": 1}, tag="int")
forms("reduce", "prod", (np.array([[0.0, 2.0, 3.0], [0.0, 0.0, 1.0], [1.5, 2.0, -1.0]]),), {"dim": 1}, tag="zeros")
forms("reduce", "prod", (np.array([0.0, 2.0, 3.0]),), tag="one-zero")
forms("reduce", "sum_to_size", (_x3, (1, 3, 1)), function=False, tag="tuple")
forms("reduce", "sum_to_size", (_x3, 3, 1), function=False, tag="varargs")

# ---- shapes ---------------------------------------------------------------------------------------------

_s = U(2, 3, 4)
for _n, _samples in {
    "reshape": [((_s, (6, 4)), "tuple"), ((_s, 6, -1), "varargs"), ((_s, (5, 5)), "bad"), ((NC(U(4, 3)), (12,)), "nc"),
                ((_s, -1, -1), "two-minus-one")],
    "view": [((_s, 6, 4), "varargs"), ((_s, (-1,)), "tuple"), ((_s, 7), "bad"), ((_s, Dtype("float64")), "dtype")],
    "permute": [((_s, 2, 0, 1), "varargs"), ((_s, (2, 0, 1)), "tuple"), ((_s, 0, 1), "count"), ((_s, 0, 1, 3), "range"),
                ((_s, 0, 0, 1), "repeat"), ((_s, -1, 0, 1), "negative")],
    "transpose": [((_s, 0, 2), "dims"), ((_s, -1, 0), "negative"), ((_s, 0, 3), "range"), ((np.array(1.0), 0, 0), "0d")],
    "swapaxes": [((_s, 0, 2), "dims")],
    "flip": [((_s, 0, 2), "varargs"), ((_s, (0, 2)), "tuple"), ((_s, (3,)), "range"), ((_s, (0, 0)), "repeat")],
    "repeat": [((_s, 2, 1, 1), "varargs"), ((_s, (1, 2, 1, 1)), "tuple"), ((_s, 2), "too-few"), ((_s, 1, 1, 1), "ones")],
    "tile": [((_s, 2), "short"), ((_s, (2, 1, 1, 1)), "long"), ((_s, 1, 2, 1), "varargs")],
    "expand": [((U(3, 1), 3, 4), "varargs"), ((U(3, 1), (2, 3, 4)), "tuple"), ((U(3, 1), -1, 4), "minus-one"),
               ((U(3, 2), 3, 4), "bad"), ((U(3, 1), 4), "too-few")],
    "broadcast_to": [((U(3, 1), (2, 3, 4)), "tuple")],
    "squeeze": [((U(1, 3, 1),), "all"), ((U(1, 3, 1), 0), "dim"), ((U(1, 3, 1), (0, 2)), "tuple"),
                ((U(1, 3, 1), 3), "range"), ((np.array(2.0),), "0d")],
    "unsqueeze": [((U(3, 4), 0), "dim"), ((U(3, 4), -1), "negative"), ((U(3, 4), 3), "range"), ((np.array(2.0), 0), "0d")],
    "flatten": [((_s,), "all"), ((_s, 1), "start"), ((_s, 0, 1), "range"), ((np.array(2.0),), "0d"), ((_s, 2, 1), "bad")],
    "unflatten": [((U(3, 4), 1, (2, 2)), "sizes"), ((U(3, 4), -1, (2, -1)), "minus-one")],
    "narrow": [((_s, 1, 1, 2), "basic"), ((_s, -1, 0, 4), "negative-dim"), ((_s, 1, -2, 2), "negative-start"),
               ((_s, 1, 2, 5), "too-long"), ((_s, 3, 0, 1), "range")],
    "split": [((_s, 2, 2), "size"), ((_s, [1, 3], 2), "sections"), ((_s, 1), "dim0"), ((_s, [1, 1], 2), "bad-sections")],
    "chunk": [((_s, 2, 2), "even"), ((_s, 3, 1), "exact"), ((U(5, 2), 3), "uneven"), ((U(0, 2), 2), "empty")],
    "unbind": [((_s, 1), "dim"), ((_s,), "default")],
    "movedim": [((_s, 0, 2), "basic"), ((_s, -1, 0), "negative")],
    "t": [((U(3, 4),), "2d"), ((U(3),), "1d"), ((_s,), "3d")],
    "tril": [((U(4, 4),), "default"), ((U(4, 4), 1), "diag")],
    "triu": [((U(4, 4), -1), "diag"), ((U(3),), "1d")],
    "clone": [((NC(U(4, 3)),), "nc")],
}.items():
    for _a, _tag in _samples:
        forms("shape", _n, _a, function=hasattr(torch, _n) and _n not in ("view", "repeat", "expand"),
              method=hasattr(torch.Tensor, _n), tag=_tag)
for _n in ("cat", "concat", "concatenate", "stack"):
    for _tag, _a, _k in (("dim0", ([U(2, 3), U(2, 3)],), {}), ("dim1", ([U(2, 3), U(2, 3)], 1), {}),
                         ("axis", ([U(2, 3), U(2, 3)],), {"axis": 1}), ("mixed-dtype", ([U(2, 3), I(2, 3)],), {}),
                         ("legacy-empty", ([U(2, 3), np.zeros((0,))],), {}), ("bad-shape", ([U(2, 3), U(3, 3)], 1), {}),
                         ("range", ([U(2, 3)], 2), {}), ("tuple", ((U(2, 3), U(2, 3)),), {})):
        forms("shape", _n, _a, _k, method=False, out=_tag == "dim0", tag=_tag)
for _n, _shape in (("view_as", (4, 6)), ("reshape_as", (6, 4)), ("expand_as", (2, 3, 4))):
    _other = U(*_shape) if _n != "expand_as" else U(2, 3, 4)
    forms("shape", _n, (_s if _n != "expand_as" else U(3, 1), _other), function=False, tag="basic")
case("shape", "T", "attr", lambda L, x: x.T, (U(3, 4),))
case("shape", "mT", "attr", lambda L, x: x.mT, (_s,))
case("shape", "contiguous", "method", lambda L, x: x.contiguous(), (NC(U(4, 3)),))
# the result of a copying op must not alias its input: an in-place change of it leaves the input alone
for _n, _f in (("flip", lambda L, x: (x.flip(0).add_(1), x)[1]), ("repeat", lambda L, x: (x.repeat(1, 1).add_(1), x)[1]),
               ("tile", lambda L, x: (x.tile(1).add_(1), x)[1]), ("clone", lambda L, x: (x.clone().add_(1), x)[1])):
    case("shape", _n, "alias", _f, (U(3, 4),), grad=False)

# ---- indexing -------------------------------------------------------------------------------------------

_g = U(3, 4)
for _tag, _a, _k in (("dim1", (_g, 1, np.array([[0, 0], [3, 1], [2, 2]])), {}),
                     ("dim0", (_g, 0, np.array([[0, 2, 1, 1]])), {}), ("axis", (_g,), {"axis": 1, "index": np.array([[1], [0], [3]])}),
                     ("negative-dim", (_g, -1, np.array([[0], [1], [2]])), {}), ("range", (_g, 2, np.array([[0]])), {}),
                     ("out-of-bounds", (_g, 1, np.array([[4]])), {}), ("float-index", (_g, 1, np.array([[0.0]])), {})):
    forms("index", "gather", _a, _k, out=_tag == "dim1", tag=_tag)
for _tag, _a in (("dim0", (_g, 0, np.array([[0, 1, 2, 0]]), U(1, 4))), ("dim1", (_g, 1, np.array([[0, 0], [1, 3], [2, 2]]), U(3, 2))),
                 ("src-larger", (_g, 1, np.array([[0, 1], [2, 3]]), U(3, 5))), ("range", (_g, 2, np.array([[0]]), U(1, 1)))):
    forms("index", "scatter_add", _a, tag=_tag)
for _tag, _a in (("dim0", (_g, 0, np.array([2, 0, 2]))), ("dim1", (_g, 1, np.array([3]))), ("neg", (_g, -1, np.array([0, 1]))),
                 ("2d-index", (_g, 0, np.array([[0]]))), ("range", (_g, 2, np.array([0])))):
    forms("index", "index_select", _a, out=_tag == "dim0", tag=_tag)
forms("index", "take_along_dim", (_g, np.array([[0], [1], [2]]), 1), tag="dim")
forms("index", "take_along_dim", (_g, np.array([0, 5, 11])), tag="flat")
forms("index", "nonzero", (np.array([[0.0, 1.0], [2.0, 0.0]]),), grad=False, tag="basic")
case("index", "nonzero", "as_tuple", lambda L, x: L.m.nonzero(x, as_tuple=True), (np.array([[0.0, 1.0], [2.0, 0.0]]),))
for _tag, _key in (("int", 1), ("neg", -1), ("slice", (slice(None), slice(1, 3))), ("none", (None, 0)),
                   ("ellipsis", (Ellipsis, 1)), ("list", [0, 2]), ("bool-list", [True, False, True]),
                   ("range", 5), ("too-many", (0, 0, 0)), ("step", (slice(None, None, 2),))):
    case("index", "__getitem__", "op", lambda L, x, _key=_key: x[_key], (_g,), tag=_tag)
case("index", "__getitem__", "op", lambda L, x, i: x[i], (_g, np.array([2, 0])), tag="tensor")
case("index", "__getitem__", "op", lambda L, x, m: x[m], (_g, _g > 0), tag="mask")


def _setitem(key):
    def f(L, x, v):
        y = x * 1
        y[key] = v
        return y

    return f


for _tag, _key, _v in (("int", 0, 5.0), ("slice", (slice(None), 1), U(3)), ("mask", None, -1.0),
                       ("tensor", [0, 2], U(2, 4)), ("bcast", (slice(0, 2),), U(4))):
    if _key is None:
        case("index", "__setitem__", "op", lambda L, x, v: (lambda y: (y.__setitem__(y > 0, v), y)[1])(x * 1), (_g, _v),
             tag=_tag)
    else:
        case("index", "__setitem__", "op", _setitem(_key), (_g, _v), tag=_tag)

# ---- in-place ops on views (PyTorch's CopySlices) -------------------------------------------------------


def _copyslices(kind):
    def f(L, a, w):
        x = (a * w).reshape(2, 3)
        if kind == "column":
            x[:, 0] += 1
        elif kind == "view-mul":
            x.view(-1).mul_(2)
        elif kind == "fill":
            x[1].fill_(0)
        elif kind == "chain":
            x[:, 1].mul_(w[:1])
            y = x.t()
            y[2:].sub_(a[:2])
            x.view(-1)[::2].add_(1)
        elif kind == "stale-view":
            v = x[0]  # a view made before its base changes: its history follows the base (PyTorch regenerates it)
            x.mul_(3)
            return (x * x).sum() + (v * w[:3]).sum()
        elif kind == "setitem-of-view":
            x[0][1] = w[5]
        elif kind == "leaf-view":
            w[0].mul_(2)
        elif kind == "no-grad-view":
            with L.m.no_grad():
                v = x[0]
            v.mul_(2)
        elif kind == "buffer":
            b = L.m.zeros(2, 3, dtype=a.dtype)
            b[0].copy_(a[:3])
            b[1, 1:].copy_(w[:2])
            return b
        return x

    return f


for _kind in ("column", "view-mul", "fill", "chain", "stale-view", "setitem-of-view", "leaf-view", "no-grad-view",
              "buffer"):
    case("copyslices", "inplace-on-view", "op", _copyslices(_kind), (U(6), U(6)), tag=_kind)
case("copyslices", "copy_", "method", lambda L, x, y: x.clone().copy_(y), (U(3, 4), U(4)), tag="bcast")
case("copyslices", "copy_", "method", lambda L, x, y: x.clone().copy_(y), (U(3), np.array([1, 2, 3])), tag="int-src")
case("copyslices", "copy_", "method", lambda L, x, y: x.clone().copy_(y), (U(3), EDGE[:3].copy()), tag="edge")
case("copyslices", "zero_", "method", lambda L, x: x.clone().zero_(), (EDGE,))
case("copyslices", "fill_", "method", lambda L, x: x.clone().fill_(2.5), (EDGE,))
case("copyslices", "fill_", "method", lambda L, x, v: x.clone().fill_(v), (EDGE, np.array(1.5)), tag="tensor")
case("copyslices", "fill_", "method", lambda L, x: x.clone().fill_(2.5), (np.array([1, 2]),), tag="int")

# ---- matmul family ----------------------------------------------------------------------------------------

for _n, _samples in {
    "matmul": [((U(3, 4), U(4, 2)), "2d"), ((U(4), U(4)), "1d-1d"), ((U(4), U(4, 2)), "1d-2d"), ((U(3, 4), U(4)), "2d-1d"),
               ((U(2, 3, 4), U(4, 5)), "batch"), ((U(2, 1, 3, 4), U(5, 4, 2)), "bcast"), ((U(3, 4), U(5, 2)), "bad"),
               ((np.array(1.0), U(2)), "0d"), ((U(3, 4).astype(np.float32), U(4, 2)), "dtypes"),
               ((NC(U(4, 3)), U(4, 2)), "nc"), ((U(0, 3), U(3, 2)), "empty"), ((U(3, 0), U(0, 2)), "empty-inner"),
               ((I(3, 4), I(4, 2)), "int")],
    "mm": [((U(3, 4), U(4, 2)), "2d"), ((U(3), U(3, 2)), "1d")],
    "bmm": [((U(2, 3, 4), U(2, 4, 5)), "3d"), ((U(2, 3, 4), U(3, 4, 5)), "batch")],
    "mv": [((U(3, 4), U(4)), "basic")], "dot": [((U(4), U(4)), "basic"), ((U(4), U(3)), "bad"), ((U(2, 2), U(4)), "2d")],
    "outer": [((U(3), U(4)), "basic")],
}.items():
    for _a, _tag in _samples:
        forms("matmul", _n, _a, out=_tag in ("2d", "basic"), tag=_tag)

# ---- creation -------------------------------------------------------------------------------------------

for _tag, _data in (("np-float64", np.float64(1.5)), ("np-int32", np.int32(2)), ("np-float32", np.float32(0.5)),
                    ("np-bool", np.bool_(True)), ("list-np-float64", [np.float64(1.5), 2.0]), ("list-np-int32", [np.int32(1)]),
                    ("list-mixed-int", [1, np.int32(2)]), ("list-np32-py", [np.float32(1.0), 1.0]),
                    ("float", 1.5), ("int", 3), ("bool", True), ("list", [[1.0, 2.0], [3.0, 4.0]]), ("ints", [1, 2]),
                    ("empty", []), ("ndarray-f64", np.array([1.0])), ("ndarray-i32", np.array([1], dtype=np.int32)),
                    ("ragged", [[1, 2], [3]])):
    for _n in ("tensor", "as_tensor"):
        case("creation", _n, "fn", (lambda _d, _n: lambda L: getattr(L.m, _n)(_d))(_data, _n), tag=_tag, grad=False)
case("creation", "tensor", "fn", lambda L: L.m.tensor([1.0, 2.0], dtype=L.m.float64), tag="dtype", grad=False)
for _n in ("zeros", "ones", "empty", "rand", "randn"):
    for _tag, _f in (("varargs", lambda L, _n=_n: getattr(L.m, _n)(2, 3)), ("tuple", lambda L, _n=_n: getattr(L.m, _n)((2, 3))),
                     ("size-kw", lambda L, _n=_n: getattr(L.m, _n)(size=(2, 3))), ("list", lambda L, _n=_n: getattr(L.m, _n)([2])),
                     ("dtype", lambda L, _n=_n: getattr(L.m, _n)(2, dtype=L.m.float64)), ("zero-d", lambda L, _n=_n: getattr(L.m, _n)(())),
                     ("negative", lambda L, _n=_n: getattr(L.m, _n)(-1)),
                     ("out", lambda L, _n=_n: (lambda o: (getattr(L.m, _n)(2, 3, out=o), o)[1])(L.m.empty(0)))):
        case("creation", _n, "fn", _f, tag=_tag, grad=False)
for _n in ("zeros_like", "ones_like", "empty_like", "rand_like", "randn_like"):
    forms("creation", _n, (U(2, 3),), method=False, grad=False, tag="float")
    forms("creation", _n, (U(2, 3),), {"dtype": Dtype("float64")}, method=False, grad=False, tag="dtype")
forms("creation", "zeros_like", (np.array([1, 2]),), method=False, grad=False, tag="int")
forms("creation", "full_like", (U(2, 3), 7), method=False, grad=False, tag="int-value")
forms("creation", "full_like", (np.array([1, 2]), 2.5), method=False, grad=False, tag="float-into-int")
for _name, _tag, _f in (
        ("full", "int", lambda L: L.m.full((2, 3), 7)), ("full", "float", lambda L: L.m.full((2,), 1.5)),
        ("full", "bool", lambda L: L.m.full((2,), True)), ("full", "list-size", lambda L: L.m.full([3], 1.0)),
        ("full", "out", lambda L: (lambda o: (L.m.full((2,), 1.5, out=o), o)[1])(L.m.empty(0))),
        ("arange", "int", lambda L: L.m.arange(5)), ("arange", "float", lambda L: L.m.arange(0, 1, 0.25)),
        ("arange", "step", lambda L: L.m.arange(10, 0, -3)), ("arange", "bad", lambda L: L.m.arange(0, 5, -1)),
        ("arange", "zero-step", lambda L: L.m.arange(0, 5, 0)), ("arange", "dtype", lambda L: L.m.arange(3, dtype=L.m.float64)),
        ("arange", "out", lambda L: (lambda o: (L.m.arange(4, out=o), o)[1])(L.m.empty(0, dtype=L.m.int64))),
        ("linspace", "basic", lambda L: L.m.linspace(0, 1, 5)), ("linspace", "one", lambda L: L.m.linspace(2, 3, 1)),
        ("linspace", "zero", lambda L: L.m.linspace(0, 1, 0)), ("eye", "square", lambda L: L.m.eye(3)),
        ("eye", "rect", lambda L: L.m.eye(2, 3)),
        ("randint", "low-high", lambda L: L.m.randint(0, 10, (3,))), ("randint", "high", lambda L: L.m.randint(10, (3, 2))),
        ("randint", "size-kw", lambda L: L.m.randint(10, size=(2,))), ("randint", "bad", lambda L: L.m.randint(5, 5, (2,))),
        ("randint", "dtype", lambda L: L.m.randint(0, 3, (2,), dtype=L.m.int32)), ("randperm", "basic", lambda L: L.m.randperm(5)),
        ("new_zeros", "varargs", lambda L: L.m.ones(2).new_zeros(3)), ("new_ones", "tuple", lambda L: L.m.ones(2).new_ones((2, 2))),
        ("new_full", "int", lambda L: L.m.ones(2).new_full((2,), 3)), ("new_empty", "basic", lambda L: L.m.ones(2).new_empty(3)),
        ("new_tensor", "list", lambda L: L.m.ones(2).new_tensor([1, 2])),
        ("from_numpy", "float32", lambda L: L.m.from_numpy(np.array([1.0], dtype=np.float32))),
        ("from_numpy", "list", lambda L: L.m.from_numpy([1.0]))):
    case("creation", _name, "fn", _f, tag=_tag, grad=False)

# ---- random draws: shapes, dtypes and error classes (RANDOM); tests/test_random.py checks the statistics -----
_P = np.array([[0.2, 0.8, 0.0], [1.0, 1.0, 1.0]])
forms("random", "multinomial", (_P, 2), grad=False, tag="2d")
forms("random", "multinomial", (_P[0], 5, True), grad=False, tag="1d-replacement")
forms("random", "multinomial", (np.array([0.5, -0.5]), 1), grad=False, tag="negative")
forms("random", "multinomial", (np.array([0.0, 0.0]), 1), grad=False, tag="zero-sum")
forms("random", "multinomial", (_P, 4), grad=False, tag="too-many")
forms("random", "multinomial", (np.array([1, 2]), 1), grad=False, tag="int")
forms("random", "bernoulli", (_P / 2,), grad=False, tag="tensor")
forms("random", "bernoulli", (_P / 2, 0.3), grad=False, tag="scalar-p")
forms("random", "bernoulli", (_P * 2,), grad=False, tag="out-of-range")
for _tag, _f in (("tensor-float", lambda L: L.m.normal(L.tensor(_P), 2.0)),
                 ("tensor-tensor", lambda L: L.m.normal(L.tensor(_P), L.tensor(_P[0]))),
                 ("float-tensor", lambda L: L.m.normal(1.0, L.tensor(_P))),
                 ("size", lambda L: L.m.normal(0.0, 1.0, (2, 3))),
                 ("size-dtype", lambda L: L.m.normal(0.0, 1.0, size=(2,), dtype=L.m.float64)),
                 ("negative-std", lambda L: L.m.normal(L.tensor(_P), -1.0)),
                 ("no-broadcast", lambda L: L.m.normal(L.tensor(_P), L.tensor(np.ones(2)))),
                 ("poisson", lambda L: L.m.poisson(L.tensor(_P))),
                 ("poisson-negative", lambda L: L.m.poisson(L.tensor(-_P)))):
    case("random", "poisson" if _tag.startswith("poisson") else "normal", "fn", _f, tag=_tag, grad=False)
for _name, _tag, _f in (
        ("uniform_", "range", lambda L: L.tensor(_P).uniform_(-1, 2)), ("uniform_", "bad", lambda L: L.tensor(_P).uniform_(2, 1)),
        ("normal_", "basic", lambda L: L.tensor(_P).normal_(1, 2)), ("normal_", "bad", lambda L: L.tensor(_P).normal_(0, -1)),
        ("bernoulli_", "float", lambda L: L.tensor(_P).bernoulli_(0.25)),
        ("bernoulli_", "tensor", lambda L: L.tensor(_P).bernoulli_(L.tensor(_P[1] / 2))),
        ("bernoulli_", "bad", lambda L: L.tensor(_P).bernoulli_(1.5)),
        ("random_", "to", lambda L: L.tensor(_P).random_(5)), ("random_", "from-to", lambda L: L.tensor(_P).random_(2, 5)),
        ("random_", "int32", lambda L: L.tensor(np.zeros(3, np.int32)).random_()), ("random_", "bad", lambda L: L.tensor(_P).random_(5, 2)),
        ("exponential_", "basic", lambda L: L.tensor(_P).exponential_(3.0)),
        ("exponential_", "bad", lambda L: L.tensor(_P).exponential_(0.0)),
        ("logspace", "basic", lambda L: L.m.logspace(-1, 2, 4)), ("logspace", "base", lambda L: L.m.logspace(0, 3, 4, base=2.0)),
        ("logspace", "int", lambda L: L.m.logspace(0, 2, 3, dtype=L.m.int64)), ("logspace", "bad", lambda L: L.m.logspace(0, 1, -1))):
    case("random", _name, "fn", _f, tag=_tag, grad=False)

# ---- nn.functional --------------------------------------------------------------------------------------

_z = np.array([-2.0, -1.0, -1e-3, 0.0, -0.0, 1e-3, 1.0, 20.0, 20.5, -30.0, 40.0, INF, -INF, NAN])
for _n in ("relu", "sigmoid", "tanh", "silu", "gelu", "logsigmoid", "softplus", "leaky_relu"):
    case("F", _n, "F", F_form(_n), (_z,), tag="edge")
    case("F", _n, "F", F_form(_n), (_z.astype(np.float32),), tag="edge32")
    case("F", _n, "F", F_form(_n), (np.array(0.0),), tag="0d")
    case("F", _n, "F", F_form(_n), (np.zeros((0, 2)),), tag="empty")
    case("F", _n, "F", F_form(_n), (Raw(U(3)),), tag="ndarray", grad=False)
for _n, _k in (("relu", {}), ("leaky_relu", {"negative_slope": 0.2}), ("silu", {})):
    case("F", _n, "inplace", lambda L, x, _n=_n, _k=_k: (lambda y: (getattr(L.F, _n)(y, inplace=True, **_k), y)[1])(x * 1),
         (_z,), tag="inplace=True")
    case("F", _n, "inplace", lambda L, x, _n=_n, _k=_k: getattr(L.F, _n)(x * 1, inplace=True, **_k) is not None, (_z,),
         tag="returns", grad=False)
case("F", "relu_", "F", lambda L, x: (lambda y: (L.F.relu_(y), y)[1])(x * 1), (_z,))
case("F", "leaky_relu_", "F", lambda L, x: (lambda y: (L.F.leaky_relu_(y, 0.3), y)[1])(x * 1), (_z,))
case("F", "relu_", "fn", lambda L, x: (lambda y: (L.m.relu_(y), y)[1])(x * 1), (_z,))
case("F", "gelu", "F", F_form("gelu"), (_z,), {"approximate": "tanh"}, tag="tanh")
case("F", "softplus", "F", F_form("softplus"), (_z,), {"beta": 2.0, "threshold": 10.0}, tag="beta")
case("F", "softplus", "F", F_form("softplus"), (np.array([5.0, 5.0 + 1e-9, 4.99]),), {"beta": 2.0, "threshold": 10.0},
     tag="at-threshold")
case("F", "leaky_relu", "F", F_form("leaky_relu"), (_z, 0.25), tag="positional-slope")

_sm = U(3, 4, 5)
for _n in ("softmax", "log_softmax"):
    for _tag, _a, _k in (("dim1", (_sm, 1), {}), ("dim-1", (_sm, -1), {}), ("dtype", (_sm.astype(np.float32), 1),
                                                                            {"dtype": Dtype("float64")}),
                         ("range", (_sm, 3), {}), ("empty", (np.zeros((3, 0)), 1), {}), ("empty-other", (np.zeros((0, 3)), 1), {}),
                         ("0d", (np.array(1.5), 0), {}), ("inf", (np.array([[INF, 0.0], [-INF, -INF], [1.0, NAN]]), 1), {}),
                         ("int", (np.array([[1, 2]]), 1), {}), ("axis", (_sm,), {"axis": 0}), ("nc", (NC(U(4, 3)), 0), {})):
        forms("softmax", _n, _a, _k, F=True, tag=_tag)
    case("softmax", _n, "F", F_form(_n), (_sm,), tag="implicit-dim")
    case("softmax", _n, "F", F_form(_n), (U(3, 4),), tag="implicit-dim-2d")
    case("softmax", _n, "fn", fn_form(_n), (_sm,), tag="missing-dim")
    case("softmax", _n, "F", F_form(_n), (_sm, 1, 3, Dtype("float64")), tag="positional-stacklevel-dtype")

_keep = np.ones((3, 4))
for _tag, _f in (("p0", lambda L, x: L.F.dropout(x, 0.0)), ("eval", lambda L, x: L.F.dropout(x, 0.5, training=False)),
                 ("p1", lambda L, x: L.F.dropout(x, 1.0)), ("bad-p", lambda L, x: L.F.dropout(x, 1.5)),
                 ("inplace-p1", lambda L, x: (lambda y: (L.F.dropout(y, 1.0, inplace=True), y)[1])(x * 1)),
                 ("torch-form", lambda L, x: L.m.dropout(x, 0.0, False)), ("torch-form-train", lambda L, x: L.m.dropout(x, 1.0, True)),
                 ("torch-missing-train", lambda L, x: L.m.dropout(x, 0.5)), ("empty", lambda L, x: L.F.dropout(x[:0], 0.5))):
    case("dropout", "dropout", "F", _f, (_keep,), tag=_tag)
case("dropout", "dropout_", "fn", lambda L, x: (lambda y: (L.m.dropout_(y, 1.0, True), y)[1])(x * 1), (_keep,))

_pred, _t = U(3, 4), U(3, 4)
for _n in ("mse_loss", "l1_loss", "smooth_l1_loss"):
    for _tag, _a, _k in (("mean", (_pred, _t), {}), ("sum", (_pred, _t), {"reduction": "sum"}),
                         ("none", (_pred, _t), {"reduction": "none"}), ("size_average=False", (_pred, _t), {"size_average": False}),
                         ("reduce=False", (_pred, _t), {"reduce": False}), ("legacy-both", (_pred, _t, True, True), {}),
                         ("legacy-positional", (_pred, _t, False), {}), ("bcast", (_pred, _t[0]), {}),
                         ("bad-bcast", (_pred, U(2, 4)), {}), ("bad-reduction", (_pred, _t), {"reduction": "avg"}),
                         ("equal", (_pred, _pred.copy()), {}), ("0d", (np.array(1.0), np.array(0.5)), {}),
                         ("empty", (np.zeros((0, 3)), np.zeros((0, 3))), {}), ("ndarray-target", (_pred, _t), {})):
        if _tag == "ndarray-target":
            case("loss", _n, "F", F_form(_n), (_a[0], Raw(_a[1])), tag=_tag)
        else:
            case("loss", _n, "F", F_form(_n), _a, _k, tag=_tag)
    if _n != "smooth_l1_loss":
        case("loss", _n, "F", F_form(_n), (_pred, _t), {"weight": U(3, 4, lo=0.5, hi=2)}, tag="weight")
        case("loss", _n, "F", F_form(_n), (_pred, _t), {"weight": U(4, lo=0.5, hi=2)}, tag="bad-weight")
_d = np.array([-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0])
for _beta in (0.0, 0.5, 1.0, 2.0):
    case("loss", "smooth_l1_loss", "F", F_form("smooth_l1_loss"), (_d, np.zeros(7)), {"beta": _beta}, tag=f"beta={_beta}")
case("loss", "smooth_l1_loss", "F", F_form("smooth_l1_loss"), (_d, np.zeros(7)), {"beta": -1.0}, tag="negative-beta")

_p01 = np.array([0.0, 1.0, 0.0, 1.0, 0.5, 0.3, 1e-13, 1 - 1e-13])
_y01 = np.array([1.0, 0.0, 0.0, 1.0, 0.5, 1.0, 1.0, 0.0])
for _tag, _a, _k in (("mean", (U(3, 4, lo=0.05, hi=0.95), U(3, 4, lo=0, hi=1)), {}),
                     ("zero-one", (_p01, _y01), {}), ("zero-one-sum", (_p01, _y01), {"reduction": "sum"}),
                     ("zero-one-32", (_p01.astype(np.float32), _y01.astype(np.float32)), {}),
                     ("weight", (U(3, lo=0.1, hi=0.9), U(3, lo=0, hi=1), NoGrad(U(3, lo=0.5, hi=2))), {"reduction": "none"}),
                     ("nan", (np.array([0.5, NAN]), np.array([1.0, 0.0])), {}),
                     ("out-of-range", (np.array([0.5, 1.5]), np.array([1.0, 0.0])), {}),
                     ("negative", (np.array([-0.5, 0.5]), np.array([1.0, 0.0])), {}),
                     ("size_average=False", (_p01[2:], _y01[2:]), {"size_average": False}),
                     ("reduce=False", (_p01[2:], _y01[2:]), {"reduce": False}),
                     ("shape", (U(4, lo=0.1, hi=0.9), U(4, 1, lo=0, hi=1)), {}),
                     ("empty", (np.zeros((0,)), np.zeros((0,))), {})):
    case("loss", "binary_cross_entropy", "F", F_form("binary_cross_entropy"), _a, _k, tag=_tag)
_lg = np.array([0.0, 0.0, -0.0, 1.0, -1.0, 30.0, -30.0, 100.0, -100.0, 1e-8])
_ly = np.array([1.0, 0.0, 0.5, 1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0])
for _tag, _a, _k in (("edge", (_lg, _ly), {}), ("edge32", (_lg.astype(np.float32), _ly.astype(np.float32)), {}),
                     ("at-zero", (np.zeros(2), np.array([1.0, 0.0])), {}),
                     ("pos_weight", (_lg, _ly), {"pos_weight": NoGrad(np.full(10, 2.0))}),
                     ("pos_weight-bcast", (U(3, 4), U(3, 4, lo=0, hi=1)), {"pos_weight": NoGrad(U(4, lo=0.5, hi=3))}),
                     ("weight", (_lg, _ly, NoGrad(U(10, lo=0.5, hi=2))), {"reduction": "sum"}),
                     ("legacy", (_lg, _ly), {"reduce": False}), ("shape", (U(4), U(4, 1)), {}),
                     ("inf-target", (np.array([INF, -INF]), np.array([1.0, 0.0])), {})):
    case("loss", "binary_cross_entropy_with_logits", "F", F_form("binary_cross_entropy_with_logits"), _a, _k, tag=_tag)

_logits, _tgt = U(4, 3), np.array([0, 2, 1, 2])
_logits3 = U(2, 3, 5)
for _n in ("cross_entropy", "nll_loss"):
    _inp = _logits if _n == "cross_entropy" else _logits - np.log(np.exp(_logits).sum(1, keepdims=True))
    for _tag, _a, _k in (("mean", (_inp, _tgt), {}), ("sum", (_inp, _tgt), {"reduction": "sum"}),
                         ("none", (_inp, _tgt), {"reduction": "none"}),
                         ("weight", (_inp, _tgt, NoGrad(U(3, lo=0.5, hi=2))), {}),
                         ("ignore", (_inp, np.array([0, -100, 1, 2])), {}), ("ignore-1", (_inp, _tgt), {"ignore_index": 1}),
                         ("all-ignored", (_inp, np.full(4, -100)), {}),
                         ("size_average=False", (_inp, _tgt), {"size_average": False}),
                         ("reduce=False", (_inp, _tgt), {"reduce": False}), ("legacy-positional", (_inp, _tgt, None, False), {}),
                         ("nd", (_logits3, np.array([[0, 1, 2, 0, 1], [2, 2, 0, 1, 0]])), {}),
                         ("1d", (_inp[0], np.array(2)), {}), ("out-of-range", (_inp, np.array([0, 3, 1, 2])), {}),
                         ("negative", (_inp, np.array([0, -1, 1, 2])), {}), ("float-target", (_inp, np.array([0.0, 2.0, 1.0, 2.0])), {}),
                         ("int32-target", (_inp, _tgt.astype(np.int32)), {}), ("bad-shape", (_inp, np.array([0, 1])), {}),
                         ("int-input", (np.array([[1, 2, 3]]), np.array([0])), {}), ("empty", (np.zeros((0, 3)), np.zeros((0,), np.int64)), {})):
        case("loss", _n, "F", F_form(_n), _a, _k, tag=_tag)
for _tag, _k in (("probs", {}), ("probs-smooth", {"label_smoothing": 0.2}), ("probs-weight", {"weight": NoGrad(U(3, lo=0.5, hi=2))})):
    case("loss", "cross_entropy", "F", F_form("cross_entropy"), (_logits, np.full((4, 3), 1 / 3)), _k, tag=_tag)
case("loss", "cross_entropy", "F", F_form("cross_entropy"), (_logits, _tgt), {"label_smoothing": 0.1}, tag="smooth")
case("loss", "cross_entropy", "F", F_form("cross_entropy"), (_logits, _tgt), {"label_smoothing": 1.5}, tag="bad-smooth")

for _tag, _a, _k in (("basic", (np.array([0, 2, 1]),), {}), ("classes", (np.array([[0, 1], [3, 1]]),), {"num_classes": 5}),
                     ("0d", (np.array(1),), {"num_classes": 3}), ("too-large", (np.array([0, 3]),), {"num_classes": 3}),
                     ("negative", (np.array([-1]),), {}), ("float", (np.array([1.0]),), {}),
                     ("int32", (np.array([1], dtype=np.int32),), {}), ("empty-infer", (np.zeros((0,), np.int64),), {})):
    case("F", "one_hot", "F", F_form("one_hot"), _a, _k, tag=_tag)
_emb = U(5, 3)
for _tag, _a, _k in (("basic", (np.array([[0, 4], [2, 2]]), _emb), {}), ("padding", (np.array([0, 1, 0]), _emb), {"padding_idx": 0}),
                     ("padding-negative", (np.array([4, 1]), _emb), {"padding_idx": -1}),
                     ("padding-out-of-range", (np.array([0]), _emb), {"padding_idx": 5}),
                     ("out-of-range", (np.array([5]), _emb), {}), ("float-index", (np.array([0.0]), _emb), {}),
                     ("int32", (np.array([1], dtype=np.int32), _emb), {})):
    case("F", "embedding", "F", F_form("embedding"), _a, _k, tag=_tag)
case("F", "embedding", "fn", fn_form("embedding"), (_emb, np.array([0, 4])), tag="torch-order")
_ln = U(2, 3, 4)
for _tag, _a, _k in (("last", (_ln, (4,)), {}), ("two", (_ln, (3, 4), U(3, 4), U(3, 4)), {}), ("int-shape", (_ln, 4), {}),
                     ("eps", (_ln, [4]), {"eps": 1e-3}), ("bad", (_ln, (3,)), {}), ("constant", (np.ones((2, 4)), (4,)), {}),
                     ("empty", (np.zeros((0, 4)), (4,)), {})):
    case("F", "layer_norm", "F", F_form("layer_norm"), _a, _k, tag=_tag)
case("F", "layer_norm", "fn", fn_form("layer_norm"), (_ln, (4,), U(4), U(4)), tag="torch-form")
_bn = U(4, 3)
for _tag, _a, _k in (("eval", (_bn, NoGrad(U(3)), NoGrad(U(3, lo=0.5, hi=2))), {}),
                     ("train", (_bn, None, None, U(3), U(3)), {"training": True}),
                     ("train-stats", (_bn, NoGrad(np.zeros(3)), NoGrad(np.ones(3))), {"training": True}),
                     ("one-per-channel", (U(1, 3), None, None), {"training": True}),
                     ("empty", (np.zeros((0, 3)), NoGrad(np.zeros(3)), NoGrad(np.ones(3))), {"training": True}),
                     ("4d", (U(2, 3, 2, 2), None, None), {"training": True, "eps": 1e-3})):
    case("F", "batch_norm", "F", F_form("batch_norm"), _a, _k, tag=_tag)
case("F", "batch_norm", "fn", lambda L, x, w, b, m, v: L.m.batch_norm(x, w, b, m, v, False, 0.1, 1e-5, False),
     (_bn, U(3), U(3), NoGrad(U(3)), NoGrad(U(3, lo=0.5, hi=2))), tag="torch-order")
for _tag, _a, _k in (("default", (U(3, 4),), {}), ("p1", (U(3, 4),), {"p": 1.0, "dim": 0}), ("zero-row", (np.array([[0.0, 0.0], [3.0, 4.0]]),), {}),
                     ("out", (U(3, 4),), {})):
    if _tag == "out":
        case("F", "normalize", "F", lambda L, x: (lambda o: (L.F.normalize(x, out=o), o)[1])(L.m.empty(0, dtype=x.dtype)),
             _a, tag=_tag, grad=False)
    else:
        case("F", "normalize", "F", F_form("normalize"), _a, _k, tag=_tag)
for _tag, _a, _k in (("last", (U(2, 3), (1, 2)), {}), ("two", (U(2, 3), (1, 0, 0, 2)), {"value": 0.5}), ("odd", (U(2, 3), (1,)), {})):
    case("F", "pad", "F", F_form("pad"), _a, _k, tag=_tag)
for _tag, _a in (("bias", (U(2, 3), U(4, 3), U(4))), ("no-bias", (U(2, 3), U(4, 3))), ("batch", (U(2, 5, 3), U(4, 3), U(4))),
                 ("1d", (U(3), U(4, 3), U(4))), ("bad", (U(2, 2), U(4, 3))), ("dtypes", (U(2, 3).astype(np.float32), U(4, 3)))):
    case("F", "linear", "F", F_form("linear"), _a, tag=_tag)
case("F", "linear", "F", F_form("linear"), (Raw(U(2, 3)), U(4, 3)), tag="ndarray")
_img = U(2, 3, 6, 5)
for _tag, _a, _k in (("basic", (_img, U(4, 3, 3, 3), U(4)), {}), ("stride-pad", (_img, U(2, 3, 2, 2)), {"stride": 2, "padding": 1}),
                     ("groups", (U(1, 4, 5, 5), U(4, 2, 3, 3)), {"groups": 2}), ("same", (_img, U(2, 3, 3, 3)), {"padding": "same"}),
                     ("3d-input", (U(3, 6, 5), U(2, 3, 3, 3)), {}), ("bad-channels", (_img, U(2, 4, 3, 3)), {}),
                     ("too-small", (U(1, 3, 2, 2), U(2, 3, 3, 3)), {})):
    case("F", "conv2d", "F", F_form("conv2d"), _a, _k, tag=_tag)
    case("F", "conv2d", "fn", fn_form("conv2d"), _a, _k, tag=_tag)
_pool = np.array([[[[1.0, 1.0, 2.0, 0.0], [1.0, 0.0, 2.0, 2.0], [3.0, 3.0, -1.0, 5.0], [3.0, 3.0, 5.0, 5.0]]]])  # ties
for _tag, _a, _k in (("ties", (_pool, 2), {}), ("stride", (_img, 3), {"stride": 2, "padding": 1}), ("ceil", (_img, 2), {"ceil_mode": True}),
                     ("dilation", (_img, 2), {"dilation": 2, "stride": 1}), ("3d", (U(3, 4, 4), 2), {}),
                     ("indices", (_pool, 2), {"return_indices": True}), ("bad-pad", (_img, 2), {"padding": 2}),
                     ("inf", (np.array([[[[-INF, -INF], [-INF, -INF]]]]), 2), {})):
    case("F", "max_pool2d", "F", F_form("max_pool2d"), _a, _k, tag=_tag)
    if _tag != "indices":
        case("F", "max_pool2d", "fn", fn_form("max_pool2d"), _a, _k, tag=_tag)
for _tag, _a, _k in (("basic", (_img, 2), {}), ("pad", (_img, 3), {"stride": 2, "padding": 1, "count_include_pad": False}),
                     ("divisor", (_img, 2), {"divisor_override": 3}), ("ceil", (_img, 2), {"ceil_mode": True})):
    case("F", "avg_pool2d", "F", F_form("avg_pool2d"), _a, _k, tag=_tag)

# ---- complex tensors (tests/test_complex.py and tests/test_fft.py compare the rest, gradients included) ------
def C(*shape, dtype=np.complex128):
    return (U(*shape) + 1j * U(*shape)).astype(dtype)


_zc, _zs = C(3, 4), (("c128", C(3, 4)), ("c64", C(3, 4, dtype=np.complex64)),
                    ("float", U(3, 4)), ("0d", np.array(1 - 2j)), ("int", np.array([0, 2, -3])))
for _n in ("real", "imag", "conj", "conj_physical", "resolve_conj", "is_conj", "angle", "sgn", "abs", "exp", "sqrt",
           "view_as_real", "is_complex", "sum", "mean", "neg", "reciprocal", "relu", "sigmoid", "sign", "floor",
           "argmax", "sort"):
    for _tag, _x in _zs:
        if _n == "sgn" and _tag in ("float", "int"):
            continue  # (PyTorch's gradient of a real sgn is a ZeroTensor, which its .numpy() refuses)
        _method = hasattr(torch.Tensor, _n) and _n not in ("real", "imag", "view_as_real")
        forms("complex", _n, (_x,), method=_method, tag=_tag)
for _n in ("real", "imag"):
    for _tag, _x in _zs:
        case("complex", _n, "attr", lambda L, x, _n=_n: getattr(x, _n), (_x,), tag=_tag)
for _n in ("add", "sub", "mul", "div", "pow", "eq", "ne", "lt", "maximum", "atan2"):
    for _tag, _a in (("cc", (_zc, C(3, 4))), ("cf", (_zc, U(3, 4))), ("fc", (U(4), C(3, 4, dtype=np.complex64))),
                     ("scalar", (_zc, 2 - 0.5j)), ("float-scalar", (U(3, 4).astype(np.float32), 1j))):
        forms("complex", _n, _a, method=False, tag=_tag)
for _tag, _a in (("c128", (C(3, 4), C(4, 2))), ("c64", (C(2, 3, dtype=np.complex64), C(3, 3, dtype=np.complex64)))):
    forms("complex", "matmul", _a, tag=_tag)
for _tag, _x in (("f64", U(3, 2)), ("f32", U(2, 4, 2).astype(np.float32)), ("last3", U(3, 3)), ("int", I(2, 2))):
    forms("complex", "view_as_complex", (_x,), method=False, tag=_tag)
for _tag, _a in (("f64", (U(3), U(3))), ("f32", (U(2, 1).astype(np.float32), U(3).astype(np.float32))),
                 ("mixed", (U(3), U(3).astype(np.float32))), ("int", (I(3), I(3)))):
    forms("complex", "complex", _a, method=False, tag=_tag)
    forms("complex", "polar", (np.abs(_a[0]), _a[1]), method=False, tag=_tag)
case("complex", "clamp", "method", lambda L, x: x.clamp(0, 1), (_zc,))


# ---- every composite (a public function written in ops), on its declared samples -------------------------
# (devtensor/ops/_api.py COMPOSITES: the generated suite checks them against numpy references; here against
# PyTorch, gradients included: the first argument requires grad, the others are inputs PyTorch may refuse to
# differentiate, such as class weights)


def _torch_fn(dotted):
    import importlib

    mod, _, attr = dotted.rpartition(".")
    return getattr(importlib.import_module(mod) if mod != "torch.Tensor" else torch.Tensor, attr)


def _composite_form(c):
    ref = _torch_fn(c.torch)
    return lambda L, *a, **k: (ref if L.is_torch else c.fn)(*a, **k)


from devtensor.ops._api import COMPOSITES  # noqa: E402

for _name, _c in sorted(COMPOSITES.items()):
    if not _c.torch:
        continue
    for _i, (_a, _k) in enumerate(_c.samples(np.float64)):
        _a = tuple(v if j == 0 or not isinstance(v, np.ndarray) or v.dtype.kind != "f" else NoGrad(v)
                   for j, v in enumerate(_a))
        case("composite", _name, "samples", _composite_form(_c), _a, _k, tag=str(_i))


# ---- every op of the table whose public function PyTorch also has, on the op's declared samples ------------
# (only where the public function takes the op's arguments as they are: the samples are in the op's terms)
from devtensor.dispatch import OPS  # noqa: E402

_COVERED_BY_HAND = {c.name for c in CASES}
for _name, _op in sorted(OPS.items()):
    if _op.samples is None or _name in _COVERED_BY_HAND or _name not in FUNCTIONS or not hasattr(torch, _name):
        continue
    for _i, (_a, _k) in enumerate(_op.samples(np.float64)):
        _a = tuple(v if j == 0 or not isinstance(v, np.ndarray) or v.dtype.kind != "f" else NoGrad(v)
                   for j, v in enumerate(_a))
        case("op-samples", _name, "fn", fn_form(_name), _a, _k, tag=str(_i))
        if (_a and isinstance(_a[0], np.ndarray) and _a[0].dtype.kind == "f" and hasattr(dt.Tensor, _name + "_")
                and hasattr(torch.Tensor, _name + "_")):
            case("op-samples", _name + "_", "inplace", inplace_form(_name), _a, _k, tag=str(_i))


# ---- the rest of nn.functional and the top-level functions, one or two samples each -------------------------
_sq = np.array([[2.0, -1.0, 0.5], [0.3, 1.5, -0.7], [1.0, 0.2, 3.0]])
_seq, _img2 = U(2, 3, 8), U(2, 3, 6, 6)
for _name, _a, _k in (
        ("celu", (_z,), {}), ("celu", (_z,), {"alpha": 0.5}), ("elu", (_z,), {}), ("elu", (_z, 2.0), {}),
        ("selu", (_z,), {}), ("glu", (U(2, 6),), {}), ("glu", (U(4, 3),), {"dim": 0}), ("hardshrink", (_z,), {}),
        ("hardsigmoid", (np.array([-4.0, -3.0, -1.0, 0.0, 3.0, 4.0]),), {}),
        ("hardswish", (np.array([-4.0, -3.0, -1.0, 0.0, 3.0, 4.0]),), {}), ("hardtanh", (_z,), {}),
        ("hardtanh", (np.array([-2.0, -1.0, 0.0, 1.0, 2.0]), -0.5, 0.5), {}), ("mish", (_z,), {}),
        ("prelu", (U(2, 3, 4), NoGrad(np.array([0.25]))), {}), ("relu6", (np.array([-1.0, 0.0, 3.0, 6.0, 7.0]),), {}),
        ("rrelu", (_z,), {"training": False}), ("softmin", (U(3, 4),), {"dim": 1}), ("softshrink", (_z,), {}),
        ("softsign", (_z,), {}), ("tanhshrink", (_z,), {}), ("threshold", (_z, 0.5, -1.0), {}),
        ("adaptive_avg_pool1d", (_seq, 3), {}), ("adaptive_max_pool1d", (_seq, 3), {}),
        ("adaptive_avg_pool2d", (_img2, (2, 3)), {}), ("adaptive_max_pool2d", (_img2, 4), {}),
        ("avg_pool1d", (_seq, 2), {}), ("max_pool1d", (_seq, 3), {"stride": 2}),
        ("conv1d", (_seq, NoGrad(U(4, 3, 3))), {"padding": 1}), ("conv_transpose1d", (_seq, NoGrad(U(3, 2, 3))), {}),
        ("conv_transpose2d", (_img2, NoGrad(U(3, 2, 3, 3))), {"stride": 2}),
        ("unfold", (_img2, 2), {}), ("fold", (U(2, 12, 9), (4, 4), 2), {}),
        ("interpolate", (_img2,), {"scale_factor": 2}), ("interpolate", (_img2,), {"size": (4, 5), "mode": "bilinear"}),
        ("upsample", (_img2,), {"scale_factor": 2}), ("upsample_nearest", (_img2,), {"scale_factor": 2}),
        ("upsample_bilinear", (_img2,), {"scale_factor": 2}),
        ("pixel_shuffle", (U(1, 8, 2, 3), 2), {}), ("pixel_unshuffle", (U(1, 2, 4, 6), 2), {}),
        ("group_norm", (_img2, 3), {}), ("instance_norm", (_img2,), {}), ("local_response_norm", (_img2, 2), {}),
        ("embedding_bag", (np.array([[0, 2], [1, 3]]), U(4, 3)), {}),
        ("bilinear", (U(2, 3), NoGrad(U(2, 4)), NoGrad(U(5, 3, 4))), {}),
        ("dropout1d", (_seq,), {"training": False}), ("dropout2d", (_img2,), {"training": False}),
        ("dropout3d", (U(2, 3, 2, 2, 2),), {"training": False}), ("alpha_dropout", (_z,), {"training": False}),
        ("scaled_dot_product_attention", (U(2, 4, 3), NoGrad(U(2, 5, 3)), NoGrad(U(2, 5, 3))), {})):
    case("F-more", _name, "F", F_form(_name), _a, _k)
for _name, _a, _k in (("argsort", (_x3,), {"dim": 1}), ("msort", (_x3[0],), {}), ("nanmedian", (_x3,), {"dim": 1}),
                      ("bucketize", (U(5), np.array([-1.0, 0.0, 1.0])), {}), ("det", (_sq,), {}), ("inverse", (_sq,), {}),
                      ("logdet", (_sq @ _sq.T,), {}), ("slogdet", (_sq,), {}), ("pinverse", (U(3, 4),), {}),
                      ("meshgrid", (U(3), U(2)), {"indexing": "ij"})):
    forms("more", _name, _a, _k, method=hasattr(torch.Tensor, _name) and _name != "meshgrid")
for _name, _a, _k in (("celu_", (_z,), {}), ("elu_", (_z,), {}), ("selu_", (_z,), {}), ("hardtanh_", (_z,), {}),
                      ("rrelu_", (_z,), {"training": False}), ("threshold_", (_z, 0.5, -1.0), {})):
    case("F-more", _name, "F", lambda L, x, *a, _name=_name, **k: (lambda y: (getattr(L.F, _name)(y, *a, **k), y)[1])(x * 1),
         _a, _k)
case("more", "scatter_add_", "inplace", inplace_form("scatter_add"), (U(3, 4), 0, np.array([[0, 1, 2, 0]]), U(1, 4)))
for _name, _a in (("index_add", (U(3, 4), 0, np.array([0, 2]), U(2, 4))), ("index_copy", (U(3, 4), 0, np.array([2, 0]), U(2, 4))),
                  ("index_fill", (U(3, 4), 1, np.array([0, 3]), -1.0))):
    case("more", _name + "_", "inplace", inplace_form(_name), _a)

# disagreements found here in code other sessions own and are still writing (reported to them): each still
# runs and must still differ (test_reported_still_differ), so a fix shows up as a failure to update this table
REPORTED = {
    ("F-more", "elu", "F", "*"): "nn/functional_activation.py: elu / celu / selu gradient at +inf is NaN (PyTorch: 1, "
                                 "the x > 0 branch's; the unselected exp branch gives inf * 0)",
    ("F-more", "celu", "F", "*"): "nn/functional_activation.py: as elu", ("F-more", "selu", "F", "*"): "as elu",
    ("F-more", "elu_", "F", "*"): "as elu", ("F-more", "celu_", "F", "*"): "as elu", ("F-more", "selu_", "F", "*"): "as elu",
    ("F-more", "hardshrink", "F", "*"): "nn/functional_activation.py: hardshrink(NaN) is 0 (PyTorch: NaN)",
    ("F-more", "softshrink", "F", "*"): "nn/functional_activation.py: softshrink(NaN) is 0 (PyTorch: NaN)",
    ("F-more", "threshold", "F", "*"): "nn/functional_activation.py: threshold(NaN) gives the value (PyTorch: NaN)",
    ("F-more", "threshold_", "F", "*"): "as threshold",
    ("more", "slogdet", "*", "*"): "slogdet's gradient also flows through the sign output (PyTorch: the sign has "
                                   "no gradient)",
}


# ---- modules: a numpy array is not a Tensor ---------------------------------------------------------------


def _module(name, *args):
    def f(L, x):
        return getattr(L.m.nn, name)(*args)(x)

    return f


for _name, _args, _x in (("Linear", (3, 2), U(2, 3)), ("ReLU", (), U(3)), ("Conv2d", (3, 2, 3), _img), ("Softmax", (1,), U(2, 3)),
                         ("BatchNorm1d", (3,), U(4, 3)), ("LayerNorm", (3,), U(2, 3)), ("GELU", (), U(3)), ("Tanh", (), U(3)),
                         ("Sigmoid", (), U(3)), ("MaxPool2d", (2,), _img), ("Flatten", (), U(2, 3, 4)), ("Dropout", (0.5,), U(3))):
    case("module", _name, "ndarray", _module(_name, *_args), (Raw(_x.astype(np.float32)),))


def _bn_module(L, x):
    torch_like = L.m.nn.BatchNorm1d(3)
    y = torch_like(x)
    return y, torch_like.running_mean, torch_like.running_var, torch_like.num_batches_tracked


case("module", "BatchNorm1d", "empty-batch", _bn_module, (np.zeros((0, 3), np.float32),))
case("module", "ReLU", "inplace", lambda L, x: (lambda y: (L.m.nn.ReLU(inplace=True)(y), y)[1])(x * 1), (_z,))
case("module", "MSELoss", "legacy", lambda L, a, b: L.m.nn.MSELoss(size_average=False)(a, b), (_pred, _t))


# ---- size / dim helpers (errors) -----------------------------------------------------------------------

case("tensor", "size", "method", lambda L, x: x.size(1), (U(2, 3),), grad=False)
case("tensor", "size", "method", lambda L, x: x.size(2), (U(2, 3),), tag="range", grad=False)
case("tensor", "size", "method", lambda L, x: x.size(-1), (U(2, 3),), tag="negative", grad=False)
for _n in ("dim", "numel", "nelement", "element_size", "is_floating_point", "is_contiguous", "tolist", "item"):
    case("tensor", _n, "method", method_form(_n), (U(1),), grad=False)
case("tensor", "item", "method", method_form("item"), (U(3),), tag="many", grad=False)
for _n in ("float", "double", "half", "long", "int", "bool"):
    case("tensor", _n, "method", method_form(_n), (U(3),))
case("tensor", "type_as", "method", method_form("type_as"), (U(3), np.array([1])))
case("tensor", "to", "method", lambda L, x: x.to(L.m.float64), (U(3).astype(np.float32),))
case("tensor", "__len__", "op", lambda L, x: len(x), (U(3, 2),), grad=False)
case("tensor", "__len__", "op", lambda L, x: len(x), (np.array(1.0),), tag="0d", grad=False)
case("tensor", "__bool__", "op", lambda L, x: bool(x), (U(3),), tag="many", grad=False)
case("tensor", "__float__", "op", lambda L, x: float(x), (np.array([2.5]),), grad=False)
case("tensor", "__int__", "op", lambda L, x: int(x), (np.array([2.5]),), grad=False)
case("tensor", "__index__", "op", lambda L, x: [1, 2, 3][x], (np.array(1),), grad=False)
case("tensor", "__index__", "op", lambda L, x: [1, 2, 3][x], (np.array(1.0),), tag="float", grad=False)
case("tensor", "__contains__", "op", lambda L, x: 1.0 in x, (np.array([1.0, 2.0]),), grad=False)
case("tensor", "__iter__", "op", lambda L, x: list(x), (U(2, 3),))
case("tensor", "__array__", "op", lambda L, x: L.m.tensor(np.asarray(x.detach())), (U(2),), grad=False)
case("tensor", "requires_grad_", "method", lambda L, x: x.detach().requires_grad_(), (np.array([1, 2]),), grad=False)
case("tensor", "detach_", "method", lambda L, x: (x * 1).detach_(), (U(2),))
case("tensor", "new_tensor", "method", lambda L, x: x.new_tensor([1.5, 2.5]), (np.array([1, 2]),), grad=False)


# ---- the deliberate differences ---------------------------------------------------------------------------
_RELU_NAN = ("relu's gradient at a NaN input is 0; PyTorch passes the incoming gradient. The fused relu_backward "
             "kernel (devtensor/backends) masks by output > 0 and is kept one pass on the hot path")
_PROD_NONFINITE = ("prod's gradient where a slice holds NaN or +-inf is out / x (NaN); PyTorch, when the input has a "
                   "zero somewhere, computes exclusive products (no cumprod op here)")
_MAX_NAN = ("max() / min() over all elements with a NaN: the gradient follows amax's rule (NaN over the slice); "
            "PyTorch's all-reduce max sends it to the NaNs")
_VAR_INF = ("var's gradient where the slice holds inf: NaN (through the mean's path, inf - inf); PyTorch's closed "
            "form gives -inf")
_CAT_LEGACY = ("cat skips legacy empty 1-D tensors (as PyTorch) without giving them a gradient (None; PyTorch an "
               "empty zero one)")
# (group, name, form or "*", tag or "*") -> why devtensor differs from PyTorch there. Each such case still runs
# and must still differ (test_differences_still_differ): a fixed difference must leave this table (and README).
DIFFERENCES = {
    ("binary", "floor_divide", "*", "int-by-zero"):
        "integer division by zero gives 0 (numpy's rule) instead of PyTorch's RuntimeError: raising would cost a "
        "device sync per division (README)",
    ("binary", "remainder", "*", "int-by-zero"): "as floor_divide: integer remainder by zero gives 0 (README)",
    ("binary", "pow", "*", "int"):
        "an integer tensor to a negative integer tensor power raises (numpy's rule); PyTorch truncates "
        "(2 ** -1 == 0). The pow kernels are the backends' (README)",
    ("binary", "pow", "fn", "pybool-tensor"):
        "PyTorch 2.13 fails an internal assert differentiating True ** x; devtensor gives the gradient",
    ("shape", "view", "method", "dtype"): "view(dtype) casts instead of reinterpreting the bytes (README)",
    ("unary", "relu", "fn", "edge*"): _RELU_NAN, ("unary", "relu", "method", "edge*"): _RELU_NAN,
    ("unary", "relu", "inplace", "edge*"): _RELU_NAN,
    ("F", "relu", "*", "edge"): _RELU_NAN, ("F", "relu", "*", "edge32"): _RELU_NAN,
    ("F", "relu", "inplace", "inplace=True"): _RELU_NAN, ("F", "relu_", "*", "*"): _RELU_NAN,
    ("module", "ReLU", "inplace", "*"): _RELU_NAN,
    ("F", "gelu", "F", "edge32"):
        "gelu(inf) in float32 is inf (the float64 answer and the limit); PyTorch's vectorised float32 erf gives NaN",
    ("index", "scatter_add", "*", "src-larger"):
        "src larger than index: devtensor gives src its zero-padded gradient; PyTorch 2.13's backward raises "
        "(its gradient has the index's shape)",
    ("reduce", "prod", "*", "nan-*"): _PROD_NONFINITE,
    ("reduce", "max", "*", "nan-all"): _MAX_NAN, ("reduce", "min", "*", "nan-all"): _MAX_NAN,
    ("reduce", "var", "*", "nan-dim0"): _VAR_INF, ("reduce", "var", "*", "nan-axis-keepdims"): _VAR_INF,
    ("F", "embedding", "F", "padding-out-of-range"):
        "an out-of-range padding_idx raises ValueError; PyTorch's check is a bare assert (AssertionError), which "
        "python -O strips",
    ("composite", "ctc_loss", "samples", "*"):
        "ctc_loss's gradient is the derivative with respect to log_probs; PyTorch's kernel returns the gradient "
        "that assumes log_probs came out of log_softmax (through log_softmax both agree, to 1e-16)",
    ("shape", "cat", "fn", "legacy-empty"): _CAT_LEGACY, ("shape", "concat", "fn", "legacy-empty"): _CAT_LEGACY,
    ("shape", "concatenate", "fn", "legacy-empty"): _CAT_LEGACY,
}
# random functions: only shapes and dtypes are compared (the generators differ)
RANDOM = {"rand", "randn", "randint", "randperm", "rand_like", "randn_like", "empty", "empty_like", "new_empty",
          "multinomial", "bernoulli", "normal", "poisson", "uniform_", "normal_", "bernoulli_", "random_", "exponential_"}


def _is_difference(c, only=None, table=None):
    for (g, n, f, t), why in (DIFFERENCES if table is None else table).items():
        if only is not None and (g, n, f, t) != only:
            continue
        if g == c.group and n == c.name and f in ("*", c.form) and (
                t in ("*", c.tag) or (t.endswith("*") and c.tag.startswith(t[:-1]))):
            return why
    return None


def _shapes_only(c):
    return c.name in RANDOM


def _strip_values(res):
    if res[0] != "ok":
        return res
    return ("ok", [(v[0], v[1], np.zeros(v[0])) if isinstance(v, tuple) and len(v) == 3 else v for v in res[1]], None)


def _check(c):
    ref = run(TO, c.fn, c.args, c.kwargs, c.grad)
    mine = run(DT, c.fn, c.args, c.kwargs, c.grad)
    if _shapes_only(c):
        ref, mine = _strip_values(ref), _strip_values(mine)
    return compare(mine, ref, _has_f32(c.args, c.kwargs))


GROUPS = sorted({c.group for c in CASES})


@pytest.mark.parametrize("group", GROUPS)
def test_agrees_with_pytorch(group):
    failures = []
    for c in CASES:
        if c.group != group or _is_difference(c) or _is_difference(c, table=REPORTED):
            continue
        err = _check(c)
        if err:
            failures.append(f"{c.describe()}: {err}")
    assert not failures, f"{len(failures)} disagreements with PyTorch:\n" + "\n".join(failures)


def test_differences_still_differ():
    """Each listed deliberate difference still is one (at least one of the cases it names differs): once devtensor
    agrees, remove it from DIFFERENCES (and from README.md's list)."""
    stale = []
    for key in DIFFERENCES:
        matched = [c for c in CASES if _is_difference(c, only=key)]
        if not matched or all(_check(c) is None for c in matched):
            stale.append(key)
    assert not stale, f"these DIFFERENCES entries agree with PyTorch now (or name no case): remove them: {stale}"


def test_reported_still_differ():
    """Disagreements found in other sessions' code (REPORTED): once fixed there, remove the entry."""
    stale = []
    for key in REPORTED:
        matched = [c for c in CASES if _is_difference(c, only=key, table=REPORTED)]
        if not matched or all(_check(c) is None for c in matched):
            stale.append(key)
    assert not stale, f"these REPORTED entries agree with PyTorch now (or name no case): remove them: {stale}"


# ---- coverage ---------------------------------------------------------------------------------------------
# shared names that are not computations to compare here, and where they are tested instead
NOT_COMPARED_HERE = {
    "backward": "the engine: tests/test_autograd.py (every case here runs backward through both libraries)",
    "register_hook": "hooks: tests/test_autograd.py", "register_post_accumulate_grad_hook": "tests/test_distributed_hooks.py",
    "retain_grad": "tests/test_autograd.py", "retains_grad": "tests/test_autograd.py", "grad": "tests/test_autograd.py",
    "grad_fn": "graph nodes differ in class by design: tests/test_autograd.py", "is_leaf": "tests/test_autograd.py",
    "requires_grad": "tests/test_autograd.py", "data": "tests/test_autograd.py", "detach": "tests/test_autograd.py",
    "cuda": "device moves: tests/test_cuda_backend.py", "cpu": "tests/test_dtypes_devices.py", "is_cuda": "tests/test_cuda_backend.py",
    "device": "tests/test_dtypes_devices.py", "dtype": "compared on every output here", "shape": "compared on every output here",
    "ndim": "tests/test_dtypes_devices.py", "numpy": "tests/test_dtypes_devices.py (devtensor's force= is its own)",
    "type": "devtensor.<dtype> names are devtensor's own (type() strings differ by design)",
    "bfloat16": "numpy has no bfloat16: tests/test_dtypes_devices.py", "__dlpack__": "tests/test_dtypes_devices.py",
    "__dlpack_device__": "tests/test_dtypes_devices.py", "from_dlpack": "tests/test_dtypes_devices.py",
    "__deepcopy__": "tests/test_serialization.py", "__array_priority__": "an attribute",
    "manual_seed": "random streams differ by design (tests/test_determinism.py)", "initial_seed": "tests/test_determinism.py",
    "get_rng_state": "the state's bytes are devtensor's own stream (PCG64): tests/test_random.py",
    "set_rng_state": "tests/test_random.py",
    "multi_head_attention_forward": "its 20-odd arguments are nn.MultiheadAttention's: tests/test_layers_attention.py "
                                    "compares that module with PyTorch's",
    "gumbel_softmax": "random noise: tests/test_gumbel_softmax.py compares it with torch's formula on the same noise",
}


def _shared_names():
    fns = {n for n in FUNCTIONS if hasattr(torch, n)}
    methods = {n for n in dir(dt.Tensor) if not n.startswith("_") and hasattr(torch.Tensor, n)}
    dunders = {n for n in vars(dt.Tensor) if n.startswith("__") and n.endswith("__") and hasattr(torch.Tensor, n)
               and n not in vars(object) and n not in ("__module__", "__slots__", "__weakref__", "__doc__", "__init__",
                                                       "__hash__", "__repr__", "__str__", "__format__", "__reduce_ex__")}
    fnames = {n for n in dir(F) if not n.startswith("_") and callable(getattr(F, n)) and hasattr(TF, n)
              and n not in ("Tensor",)}
    return fns | methods | dunders | fnames


def test_every_shared_name_is_compared():
    compared = {c.name for c in CASES} | {f"{c.name}_" for c in CASES if c.form == "inplace"}
    compared |= {"clamp_", "clamp_min_", "clamp_max_", "masked_fill_", "lerp_", "add_", "sub_", "mul_", "div_", "pow_",
                 "remainder_", "floor_divide_"} & compared  # (in-place forms are recorded through their base name)
    missing = sorted(n for n in _shared_names() if n not in compared and n not in NOT_COMPARED_HERE)
    assert not missing, f"shared with PyTorch but compared nowhere here (add cases, or list in NOT_COMPARED_HERE " \
                        f"with the test that covers it): {missing}"


# ---- ported programs: the same tutorial code, run by both libraries -----------------------------------------

def _program(L, kind, steps=5):
    """A PyTorch tutorial-style training loop written once against `L.m` (devtensor or torch), from fixed
    weights: (losses per step, final parameters)."""
    m, nn, F_ = L.m, L.m.nn, L.F
    r = np.random.default_rng(0)
    if kind == "logistic":  # the documents' classic: BCEWithLogitsLoss from zero weights (logit 0 everywhere)
        model = nn.Linear(2, 1)
        x, y = r.normal(size=(32, 2)), (r.uniform(size=(32, 1)) > 0.5).astype(np.float64)
        loss_fn = nn.BCEWithLogitsLoss()
        init = [np.zeros((1, 2)), np.zeros(1)]
    elif kind == "mlp":  # torch.softmax + log + nll, ReLU(inplace=True), SGD with momentum
        model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(inplace=True), nn.Linear(8, 3))
        x, y = r.normal(size=(16, 4)), r.integers(0, 3, 16)
        loss_fn = (lambda out, t: F_.nll_loss(m.log(m.softmax(out, dim=1)), t))
        init = [r.normal(size=(8, 4)) * 0.5, r.normal(size=8) * 0.1, r.normal(size=(3, 8)) * 0.5, r.normal(size=3) * 0.1]
    else:  # a small CNN: conv, max-pool, dropout in eval, flatten, cross_entropy with label smoothing, Adam
        model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Dropout(0.5), nn.Flatten(),
                              nn.Linear(2 * 3 * 3, 3))
        x, y = r.normal(size=(4, 1, 8, 8)), r.integers(0, 3, 4)
        loss_fn = (lambda out, t: F_.cross_entropy(out, t, label_smoothing=0.1))
        init = [r.normal(size=(2, 1, 3, 3)) * 0.3, r.normal(size=2) * 0.1, r.normal(size=(3, 18)) * 0.3,
                r.normal(size=3) * 0.1]
    params = list(model.parameters())
    with m.no_grad():
        for p, v in zip(params, init):
            p.copy_(L.tensor(v.astype(np.float32)))
    if kind == "cnn":
        model[3].eval()
    opt = m.optim.SGD(params, lr=0.5, momentum=0.9) if kind != "cnn" else m.optim.Adam(params, lr=0.01)
    xt, yt = L.tensor(x.astype(np.float32)), L.tensor(y.astype(np.float32) if kind == "logistic" else y)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = loss_fn(model(xt), yt)
        loss.backward()
        opt.step()
        losses.append(float(loss))
    return np.array(losses), [_np(p) for p in params]


@pytest.mark.parametrize("kind", ["logistic", "mlp", "cnn"])
def test_a_ported_program_trains_as_in_pytorch(kind):
    mine, ref = _program(DT, kind), _program(TO, kind)
    np.testing.assert_allclose(mine[0], ref[0], rtol=1e-4, atol=1e-5, err_msg=f"{kind}: losses")
    for a, b in zip(mine[1], ref[1]):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5, err_msg=f"{kind}: parameters")


def test_logistic_regression_first_gradient_is_pytorchs():
    """The issue's first symptom: BCEWithLogits at logit 0 must give sigmoid(0) - y = -0.5 for y = 1, not -1."""
    x = dt.zeros(1, requires_grad=True)
    F.binary_cross_entropy_with_logits(x, dt.ones(1)).backward()
    assert x.grad.item() == -0.5


def test_examples_honour_or_refuse_their_flags(capsys):
    import pathlib
    import sys

    examples = pathlib.Path(__file__).resolve().parent.parent / "examples"
    sys.path.insert(0, str(examples))
    try:
        import linear_regression
        from _common import parser
    finally:
        sys.path.remove(str(examples))
    with pytest.raises(SystemExit):  # --limit 0 is not "no limit"
        parser("x", 1, 1, 0.1).parse_args(["--limit", "0"])
    with pytest.raises(SystemExit):  # linear_regression generates its data: --data is refused, not ignored
        linear_regression.main(["--device", "cpu", "--data", "somewhere"])
    w, b = linear_regression.main(["--device", "cpu", "--limit", "40", "--batch-size", "8", "--epochs", "60"])
    assert abs(w - 3) < 0.05 and abs(b - 2) < 0.05
    capsys.readouterr()


def test_a_numpy_array_passed_to_a_module_says_expected_tensor():
    """The issue's symptom: a dtype message came back; PyTorch's TypeError names the argument and the type."""
    with pytest.raises(TypeError, match=r"linear: argument 'input' \(position 1\) must be Tensor, not numpy\.ndarray "
                                        r"\(expected Tensor"):
        dt.nn.Linear(2, 2)(np.ones((1, 2), np.float32))
