"""The kernel registry's tiers (devtensor/backends/__init__.py): chains of specialised and portable
registrations per op, resolve() by dtype, NoKernel, introspection, listeners and orphan checks.
Everything here runs on private Backend objects that are never registered, except where a test
registers one and removes it again."""
from __future__ import annotations

import numpy as np
import pytest

import devtensor as dt
from devtensor import backends
from devtensor.backends import Backend, NoKernel


def _fn(tag):
    def kernel(*args, **kwargs):
        return tag

    kernel.__name__ = tag
    return kernel


def _a(dtype):
    return np.zeros(2, dtype)


def test_one_registration_for_every_dtype_is_resolved_to_the_function_itself():
    be = Backend("t")
    f = be.kernel("exp")(_fn("f"))
    assert be.resolve("exp") is f  # the hot path pays nothing for tiers
    assert be.resolve("nope") is None
    g = be.kernel("exp", tier="portable")(_fn("g"))
    assert be.resolve("exp") is f, "a portable kernel behind an every-dtype specialised one is never reached"
    assert be.tiers("exp") == [("specialised", None, f), ("portable", None, g)]


def test_chain_picks_by_the_first_dtype_specialised_first_then_portable():
    be = Backend("t")
    be.kernel("conv2d", tier="portable")(_fn("portable"))
    be.kernel("conv2d", dtypes=["float32"])(_fn("f32"))
    be.kernel("conv2d", dtypes=(np.float16, dt.bfloat16))(_fn("half"))
    k = be.resolve("conv2d")
    assert k(_a(np.float32), _a(np.float64)) == "f32"
    assert k(None, 3, _a(np.float16)) == "half"  # the first argument that has a dtype decides
    assert k(_a(dt.bfloat16.np)) == "half"
    assert k(_a(np.float64)) == "portable" and k(_a(np.int32), stride=2) == "portable"
    assert [t for t, _, _ in be.tiers("conv2d")] == ["specialised", "specialised", "portable"]
    assert be.serving("conv2d", "float32")[0] == "specialised"
    assert be.serving("conv2d", dt.float64)[0] == "portable"


def test_later_registration_wins_within_a_tier_so_users_can_override():
    be = Backend("t")
    be.kernel("mul", dtypes=["float32", "float64"])(_fn("old"))
    be.kernel("mul", dtypes=["float32"])(_fn("new"))
    k = be.resolve("mul")
    assert k(_a(np.float32)) == "new" and k(_a(np.float64)) == "old"
    be.kernel("mul", dtypes=["float32", "float64"])(_fn("newest"))  # covers both older ones: they go
    assert [f.__name__ for _, _, f in be.tiers("mul")] == ["newest"]
    assert be.resolve("mul")(_a(np.float64)) == "newest"


def test_no_kernel_names_op_backend_dtype_and_what_there_is():
    be = Backend("cuda_like")
    be.kernel("conv2d", dtypes=["float16", "float32", "float64"])(_fn("k"))
    k = be.resolve("conv2d")
    with pytest.raises(NoKernel) as e:
        k(_a(np.int32))
    assert str(e.value) == "conv2d: no cuda_like kernel for dtype int32; dtypes it has: float16, float32, float64"
    assert (e.value.op, e.value.backend, e.value.dtype) == ("conv2d", "cuda_like", np.dtype(np.int32))
    assert isinstance(e.value, NotImplementedError)


def test_creation_kernels_pick_by_the_requested_dtype():
    be = Backend("t")
    be.kernel("full", dtypes=["float32"])(_fn("f32"))
    be.kernel("full", tier="portable")(_fn("any"))
    k = be.resolve("full")
    assert k((2, 3), 1.0, dt.float32, "dev") == "f32" and k((2,), 1, dt.int64, "dev") == "any"
    assert k((2,), 1.0, dtype=dt.float32) == "f32"


def test_bad_registrations_are_refused():
    be = Backend("t")
    with pytest.raises(ValueError, match="tier"):
        be.kernel("exp", tier="fast")
    with pytest.raises(ValueError, match="no dtype"):
        be.kernel("exp", dtypes=())
    with pytest.raises(TypeError):
        be.kernel("exp", dtypes=["no_such_dtype"])


def test_introspection_and_the_kernels_snapshot():
    be = Backend("t")
    be.kernel("b", "a")(_fn("x"))
    assert be.op_names() == ["a", "b"]
    assert set(be.kernels) == {"a", "b"} and be.kernels["a"] is be.resolve("a")


def test_finalise_lists_orphans():
    be = Backend("t")
    be.kernel("exp", "atan3", "zzz")(_fn("x"))
    be.finalise(["exp", "atan3", "zzz", "log"])
    with pytest.raises(ValueError, match=r"backend 't' registers kernels for ops that are not declared: atan3, zzz"):
        be.finalise(["exp"])


def test_listeners_hear_registration_and_later_kernels(monkeypatch):
    monkeypatch.setattr(backends, "_LISTENERS", list(backends._LISTENERS))  # dispatch's own listener stays
    heard = []
    listener = backends.add_listener(lambda b, n: heard.append((b, n)))
    try:
        assert ("cpu", "exp") in heard, "add_listener replays the backends already registered"
        heard.clear()
        be = Backend("listened")
        be.kernel("exp")(np.exp)
        assert heard == [], "an unregistered backend notifies nobody"
        backends.register(be)
        assert heard == [("listened", "exp")] and backends.registered()["listened"] is be
        be.kernel("log", "exp", dtypes=["float32"])(np.log)
        assert heard[1:] == [("listened", "log"), ("listened", "exp")]
    finally:
        backends.remove_listener(listener)
        backends._REGISTRY.pop("listened", None)
        from devtensor.dispatch import OPS

        for op in OPS.values():
            op.kernels.pop("listened", None)


def test_backends_import_nothing_above_them():
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(backends))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level >= 2:
            mods = [node.module] if node.module else [a.name for a in node.names]
            assert set(mods) <= {"dtypes", "device"}, f"backends imports ..{mods}"  # leaves, never dispatch


def test_builtin_tables_only_name_declared_ops():
    from devtensor.dispatch import OPS

    for be in backends.registered().values():
        be.finalise(OPS)  # raises, listing them, if a kernel is registered for an undeclared op
        for name in be.op_names():
            assert OPS[name].kernels.get(be.name) is be.resolve(name), f"{be.name}: {name} is stale in the op table"
