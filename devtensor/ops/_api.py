"""How an op module publishes its functions: `dt.f(t)` and, with method=True, `t.f()`."""
from __future__ import annotations

from ..tensor import Tensor

FUNCTIONS: dict = {}


def public(fn=None, *, name=None, method=True, function=True, aliases=()):
    """Export `fn` as devtensor.<name> and (method=True) as Tensor.<name>."""

    def deco(f):
        n = name or f.__name__.rstrip("_")
        for key in (n, *aliases):
            if function:
                FUNCTIONS[key] = f
            if method:
                setattr(Tensor, key, f)
        return f

    return deco(fn) if fn is not None else deco


def method(name, fn):
    setattr(Tensor, name, fn)


def is_tensor(x):
    return isinstance(x, Tensor)
