"""Symbolic sizes in a captured graph: which captured numbers follow the size of an input dim.

Sizes read with x.size(0) are plain Python ints by the time an op records them (a reshape's shape, an
expand's shape, max_pool2d_backward's x_shape, the 640.0 a mean's backward divides by), and many of
them are read inside devtensor (autograd rules), not in user code. So they are not traced as they
flow; they are *fitted*: the same function is captured at the traced size d0 and at d0+1 and d0+2 of
one symbol, the three graphs must have the same op sequence, and every number that differs is fitted
to `a * dim + b` (or `c * d1 * d2 ...` for products of several symbols) on two points and checked on
the third. A number the fit does not explain (1 / x.size(0), a size-dependent branch) raises NotAffine
naming the symbols it depends on; each caller decides what that means (ONNX export: an error;
dt.compile: that symbol stays static).

Both users share this module: devtensor.onnx.export (the forward traced at three sizes) and
dt.compile(dynamic=True) (a training step traced at three sizes, its side effects undone).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .ir import Node, Ref, node_refs


@dataclass(frozen=True)
class Expr:
    """coef * product(symbols) + offset: a size (or a scalar) as a function of symbolic dims."""
    coef: float
    syms: tuple
    offset: float

    def __str__(self):
        p = "*".join(self.syms)
        s = p if self.coef == 1 else f"{_num(self.coef)}*{p}"
        return s + (f" + {_num(self.offset)}" if self.offset > 0 else f" - {_num(-self.offset)}" if self.offset else "")

    @property
    def integral(self):
        return float(self.coef).is_integer() and float(self.offset).is_integer()

    @property
    def plain(self):
        """The symbol itself (a dim equal to an input's dynamic dim)."""
        return self.coef == 1 and self.offset == 0 and len(self.syms) == 1

    def evaluate(self, env):
        """The value at symbol sizes `env` (symbol -> int)."""
        return self.coef * math.prod(env[s] for s in self.syms) + self.offset


def _num(v):
    return str(int(v)) if float(v).is_integer() else repr(float(v))


class Dim(int):
    """An int captured from a dynamic axis: its value at the traced size and its formula (expr)."""

    def __new__(cls, value, expr):
        o = int.__new__(cls, value)
        o.expr = expr
        return o

    def __repr__(self):
        return f"Dim({int(self)}: {self.expr})"


class FDim(float):
    """A float scalar operand captured from a dynamic axis (x / x.size(0))."""

    def __new__(cls, value, expr):
        o = float.__new__(cls, value)
        o.expr = expr
        return o

    def __repr__(self):
        return f"FDim({float(self)}: {self.expr})"


def is_dim(v):
    return isinstance(v, (Dim, FDim))


def any_dim(x):
    if is_dim(x):
        return True
    if isinstance(x, (tuple, list)):
        return any(any_dim(v) for v in x)
    if isinstance(x, dict):
        return any(any_dim(v) for v in x.values())
    if isinstance(x, slice):
        return any(any_dim(v) for v in (x.start, x.stop, x.step))
    return False


class NotAffine(ValueError):
    """A captured number follows the symbols `syms` in a way the fit cannot express."""

    def __init__(self, what, desc, syms):
        super().__init__(f"{what} depends on the dynamic dims in a way a*dim + c or c*dim1*dim2 cannot express ({desc})")
        self.what, self.desc, self.syms = what, desc, syms


# ---- comparing graphs captured at different sizes -------------------------------------------------
def leaves(x, out):
    """The comparable leaves of a node's args/attrs, in a fixed order."""
    if isinstance(x, Ref):
        out.append(("ref", x.id))
    elif isinstance(x, (bool, np.bool_)):
        out.append(("bool", bool(x)))
    elif isinstance(x, (int, np.integer)):
        out.append(("int", int(x)))
    elif isinstance(x, (float, np.floating)):
        out.append(("float", float(x)))
    elif isinstance(x, (tuple, list)):
        out.append(("seq", len(x)))
        for v in x:
            leaves(v, out)
    elif isinstance(x, dict):
        out.append(("dict", tuple(x)))
        for v in x.values():
            leaves(v, out)
    elif isinstance(x, slice):
        out.append(("slice", None))
        for v in (x.start, x.stop, x.step):
            leaves(v, out)
    elif x is None or x is Ellipsis or isinstance(x, str):
        out.append(("lit", x))
    else:
        out.append(("obj", id(x) if callable(x) or hasattr(x, "_data") else str(x)))  # a tensor: by identity
    return out


def rebuild(x, it):
    """x with its numeric leaves replaced by the next items of `it` (a Dim where the leaf is dynamic)."""
    if isinstance(x, Ref) or isinstance(x, (bool, np.bool_)):
        return x
    if isinstance(x, (int, np.integer, float, np.floating)):
        return next(it)
    if isinstance(x, (tuple, list)):
        return type(x)(rebuild(v, it) for v in x)
    if isinstance(x, dict):
        return {k: rebuild(v, it) for k, v in x.items()}
    if isinstance(x, slice):
        return slice(rebuild(x.start, it), rebuild(x.stop, it), rebuild(x.step, it))
    return x


def structure_difference(g, o):
    """Why graph o (captured at another size) is not graph g with other numbers, or None if it is."""
    if len(g.nodes) != len(o.nodes):
        return f"{len(g.nodes)} ops at the traced size, {len(o.nodes)} at the other"
    for a, b in zip(g.nodes, o.nodes):
        if (a.op, a.module) != (b.op, b.module):
            return f"op {a.shown_as} in {a.module!r} became {b.shown_as} in {b.module!r}"
        if a.op.startswith("@"):  # a host call (a fresh closure each capture) or a gradient delivery
            if a.args != b.args or a.attrs.get("name") != b.attrs.get("name") or a.attrs.get("leaf") is not b.attrs.get("leaf"):
                return f"{a.shown_as} changed"
            continue
        la, lb = leaves((a.args, a.attrs), []), leaves((b.args, b.attrs), [])
        if len(la) != len(lb) or any(x[0] != y[0] or (x[0] not in ("int", "float") and x != y)
                                     for x, y in zip(la, lb)):
            return f"the arguments of {a.shown_as} (module {a.module!r}) differ"
    if len(g.values) != len(o.values) or g.outputs != o.outputs:
        return "the values differ"
    for vid, v in g.values.items():
        w = o.values[vid]
        if len(v.shape) != len(w.shape) or v.dtype != w.dtype or v.kind != w.kind or v.name != w.name:
            return f"value %{vid} changed"
    return None


def fit(v0, per_sym, what):
    """The Expr giving value v0 (traced) and its values when each symbol grows; None if static.
    per_sym: symbol -> (traced size d0, [(d1, v1), (d2, v2)])."""
    deps = {s: (d0, pts) for s, (d0, pts) in per_sym.items() if any(not same(v, v0) for _, v in pts)}
    if not deps:
        return None
    if len(deps) == 1:
        (s, (d0, ((d1, v1), (d2, v2)))), = deps.items()
        a = (v1 - v0) / (d1 - d0)
        if same(v2, v1 + a * (d2 - d1)):
            return Expr(_clean(a), (s,), _clean(v0 - a * d0))
    else:
        base = math.prod(d0 for d0, _ in deps.values())
        c = v0 / base
        ok = c != 0
        for s, (d0, pts) in deps.items():
            for d, v in pts:
                ok = ok and same(v, c * base / d0 * d)
        if ok:
            return Expr(_clean(c), tuple(sorted(deps)), 0)
    desc = ", ".join(f"{s}={d0}: {v0}, " + ", ".join(f"{s}={d}: {v}" for d, v in pts)
                     for s, (d0, pts) in per_sym.items())
    raise NotAffine(what, desc, tuple(sorted(deps)))


def same(a, b):
    """a == b, floats within rounding (numbers fitted from traces compare with this)."""
    return a == b or (isinstance(a, float) or isinstance(b, float)) and math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def _clean(v):
    return int(round(v)) if math.isclose(v, round(v), rel_tol=0, abs_tol=1e-9) else v


def generalise(g, variants, live_nodes=None):
    """Graph g (captured at the traced sizes) with Dim/FDim where its numbers follow a symbol, and the
    dims of its values likewise. variants: symbol -> (traced size, [(size, graph captured there), x2]),
    every graph already checked with structure_difference. live_nodes: ids of the nodes whose numbers
    need a formula (None: all); the others are kept as traced. Returns (nodes, dims: vid -> shape).
    Raises NotAffine for the first number the fit cannot explain."""
    dims = {vid: tuple(v.shape) for vid, v in g.values.items()}
    if not variants:
        return list(g.nodes), dims
    sizes = {s: size for s, (size, _) in variants.items()}
    live = None
    if live_nodes is not None:
        live = set(g.outputs) | {r.id for n in g.nodes if id(n) in live_nodes for r in node_refs(n)}
    made_by = {o: n for n in g.nodes for o in n.outputs}
    for vid, v in g.values.items():
        if live is not None and vid not in live:
            continue
        p = made_by.get(vid)
        what = f"{p.shown_as}'s output" + (f" (module {p.module!r})" if p.module else "") if p else f"value {v.name!r}"
        new = []
        for ax, n in enumerate(v.shape):
            ps = {s: (sizes[s], [(d, o.values[vid].shape[ax]) for d, o in rs]) for s, (_, rs) in variants.items()}
            e = fit(n, ps, f"dim {ax} of {what}")
            new.append(Dim(n, e) if e is not None else n)
        dims[vid] = tuple(new)
    nodes = []
    for i, n in enumerate(g.nodes):
        if live_nodes is not None and id(n) not in live_nodes or n.op.startswith("@"):
            nodes.append(n)
            continue
        base = leaves((n.args, n.attrs), [])
        other = {(s, d): leaves((o.nodes[i].args, o.nodes[i].attrs), []) for s, (_, rs) in variants.items()
                 for d, o in rs}
        repl = []
        for j, (kind, v) in enumerate(base):
            if kind not in ("int", "float"):
                continue
            ps = {s: (sizes[s], [(d, other[(s, d)][j][1]) for d, _ in rs]) for s, (_, rs) in variants.items()}
            where = f"{n.shown_as} (module {n.module!r})" if n.module else n.shown_as
            e = fit(v, ps, f"a number captured in {where}'s arguments ({v})")
            repl.append(v if e is None else (Dim(v, e) if kind == "int" else FDim(v, e)))
        if any(is_dim(r) for r in repl):
            it = iter(repl)
            n = Node(n.op, rebuild(n.args, it), rebuild(n.attrs, it), n.outputs, n.module, n.shown_as)
        nodes.append(n)
    return nodes, dims


def substitute(x, env):
    """x (a node's args or attrs) with every Dim/FDim replaced by its value at symbol sizes `env`."""
    if isinstance(x, Dim):
        return int(round(x.expr.evaluate(env)))
    if isinstance(x, FDim):
        return float(x.expr.evaluate(env))
    if isinstance(x, tuple):
        return tuple(substitute(v, env) for v in x)
    if isinstance(x, list):
        return [substitute(v, env) for v in x]
    if isinstance(x, dict):
        return {k: substitute(v, env) for k, v in x.items()}
    if isinstance(x, slice):
        return slice(substitute(x.start, env), substitute(x.stop, env), substitute(x.step, env))
    return x


def grow(arr, axis, size):
    """Host array `arr` with `axis` grown (or shrunk) to `size` by repeating its first entries."""
    return np.array(np.take(arr, np.arange(size) % arr.shape[axis], axis=axis), order="C")
