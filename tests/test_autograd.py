"""The autograd engine: accumulation, retain_graph, create_graph (second derivatives and
gradgradcheck), hooks, retain_grad, custom Functions, thread-local grad modes, version counters,
in-place ops under autograd, central undoing of broadcasting/promotion, autograd.grad, and a
10,000-step training loop that keeps memory flat and creates no reference cycles."""
from __future__ import annotations

import gc
import threading
import tracemalloc

import numpy as np
import pytest

import devtensor as dt
from devtensor.autograd import gradcheck, gradgradcheck
from devtensor.dispatch import OPS, OpDef


def T(data, dtype=dt.float64, rg=True):
    return dt.tensor(data, dtype=dtype, requires_grad=rg)


def npy(t):
    return np.asarray(t.detach()._data)


def d1_d2(f, x):
    """First and second derivatives of sum(f(x)) elementwise (f acts elementwise)."""
    y = f(x).sum()
    (g,) = dt.autograd.grad(y, x, create_graph=True)
    (h,) = dt.autograd.grad(g.sum(), x)
    return npy(g), npy(h)


# ---- accumulation and retain_graph ---------------------------------------------------------------

def test_grads_accumulate_across_backward_calls():
    x = T([1.0, 2.0, 3.0])
    (x * x).sum().backward()
    (x * 3).sum().backward()
    np.testing.assert_allclose(npy(x.grad), 2 * np.array([1.0, 2, 3]) + 3)
    x.grad = None
    (x * 3).sum().backward()
    np.testing.assert_allclose(npy(x.grad), [3.0, 3, 3])


def test_accumulated_grad_is_not_aliased_to_the_graph():
    # add's rule hands the same gradient to both inputs: each leaf must own its .grad
    a, b = T([1.0, 2.0]), T([3.0, 4.0])
    (a + b).sum().backward()
    a.grad.add_(10)
    np.testing.assert_allclose(npy(b.grad), [1.0, 1.0])


def test_second_backward_without_retain_graph_raises_clearly():
    x = T([1.0, 2.0])
    y = (x.exp() * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match=r"backward through the graph a second time.*retain_graph=True"):
        y.backward()


def test_retain_graph_allows_a_second_backward():
    x = T([1.0, 2.0])
    y = (x.exp() * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    e = np.exp([1.0, 2.0])
    np.testing.assert_allclose(npy(x.grad), 2 * (e + e * [1.0, 2.0]))


def test_autograd_grad_frees_the_graph_unless_retained():
    x = T([1.0, 2.0])
    y = (x.sin() * 2).sum()
    dt.autograd.grad(y, x)
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        dt.autograd.grad(y, x)
    assert x.grad is None  # autograd.grad does not accumulate into .grad


# ---- create_graph: second derivatives vs closed forms ----------------------------------------------

X = np.array([-1.3, -0.4, 0.3, 0.9, 1.7])
XP = np.array([0.3, 0.8, 1.4, 2.2, 3.1])  # positive domain (log, sqrt)


@pytest.mark.parametrize("name, f, x0, d1, d2", [
    ("cube", lambda x: x ** 3, X, lambda x: 3 * x ** 2, lambda x: 6 * x),
    ("tanh", dt.tanh, X, lambda x: 1 - np.tanh(x) ** 2, lambda x: -2 * np.tanh(x) * (1 - np.tanh(x) ** 2)),
    ("sigmoid", dt.sigmoid, X, lambda x: (s := 1 / (1 + np.exp(-x))) * (1 - s),
     lambda x: (s := 1 / (1 + np.exp(-x))) * (1 - s) * (1 - 2 * s)),
    ("exp", dt.exp, X, np.exp, np.exp),
    ("log", dt.log, XP, lambda x: 1 / x, lambda x: -1 / x ** 2),
    ("sqrt", dt.sqrt, XP, lambda x: 0.5 / np.sqrt(x), lambda x: -0.25 * x ** -1.5),
    ("sin", dt.sin, X, np.cos, lambda x: -np.sin(x)),
    ("reciprocal", dt.reciprocal, XP, lambda x: -1 / x ** 2, lambda x: 2 / x ** 3),
    ("x*exp(x)", lambda x: x * x.exp(), X, lambda x: (1 + x) * np.exp(x), lambda x: (2 + x) * np.exp(x)),
])
def test_second_derivative_closed_forms(name, f, x0, d1, d2):
    g, h = d1_d2(f, T(x0))
    np.testing.assert_allclose(g, d1(x0), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(h, d2(x0), rtol=1e-10, atol=1e-12)


def test_second_derivative_of_matmul():
    # f(A) = sum((A @ B)^2): grad = 2 (A B) B^T; Hessian-vector product with V: 2 V B B^T
    rng = np.random.default_rng(0)
    A0, B0, V0 = rng.standard_normal((3, 4)), rng.standard_normal((4, 2)), rng.standard_normal((3, 4))
    A, B = T(A0), T(B0, rg=False)
    y = ((A @ B) ** 2).sum()
    (g,) = dt.autograd.grad(y, A, create_graph=True)
    np.testing.assert_allclose(npy(g), 2 * A0 @ B0 @ B0.T, rtol=1e-10)
    (hv,) = dt.autograd.grad((g * dt.tensor(V0)).sum(), A)
    np.testing.assert_allclose(npy(hv), 2 * V0 @ B0 @ B0.T, rtol=1e-10)


def test_second_derivative_mixed_partials_of_matmul():
    # f(A, B) = sum(A @ B): d/dA = 1 B^T (rows of B summed), d2/(dA dB) applied via grad of sum(gA * V)
    rng = np.random.default_rng(1)
    A0, B0, V0 = rng.standard_normal((2, 3)), rng.standard_normal((3, 4)), rng.standard_normal((2, 3))
    A, B = T(A0), T(B0)
    (gA,) = dt.autograd.grad((A @ B).sum(), A, create_graph=True)
    np.testing.assert_allclose(npy(gA), np.ones((2, 4)) @ B0.T)
    (gB,) = dt.autograd.grad((gA * dt.tensor(V0)).sum(), B)
    np.testing.assert_allclose(npy(gB), V0.T @ np.ones((2, 4)))


@pytest.mark.parametrize("name", ["sum", "mean", "amax", "amin", "sum_dim", "mean_dim_keepdim", "amax_dim"])
def test_second_derivative_of_reductions(name):
    x0 = np.array([[0.5, -1.2, 2.0], [1.5, 0.3, -0.7]])
    w0 = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    x = T(x0)
    cube = x ** 3
    f = {
        "sum": lambda: cube.sum(),
        "mean": lambda: cube.mean(),
        "amax": lambda: cube.amax(),
        "amin": lambda: cube.amin(),
        "sum_dim": lambda: (cube.sum(1) * dt.tensor([1.0, 2.0], dtype=dt.float64)).sum(),
        "mean_dim_keepdim": lambda: (cube.mean(0, keepdim=True) ** 2).sum(),
        "amax_dim": lambda: cube.amax(dim=1).sum(),
    }[name]
    (g,) = dt.autograd.grad(f(), x, create_graph=True)
    (h,) = dt.autograd.grad((g * dt.tensor(w0)).sum(), x)
    c1, c2 = 3 * x0 ** 2, 6 * x0
    if name == "sum":
        eg, eh = c1, c2 * w0
    elif name == "mean":
        eg, eh = c1 / 6, c2 * w0 / 6
    elif name in ("amax", "amin"):
        m = np.zeros_like(x0)
        m[np.unravel_index((np.argmax if name == "amax" else np.argmin)(x0 ** 3), x0.shape)] = 1
        eg, eh = c1 * m, c2 * w0 * m
    elif name == "sum_dim":
        r = np.array([[1.0], [2.0]])
        eg, eh = c1 * r, c2 * w0 * r
    elif name == "mean_dim_keepdim":
        mu = (x0 ** 3).mean(0, keepdims=True)  # f = sum_j mu_j^2, dmu_j/dx_ij = c1/2
        eg = 2 * mu * c1 / 2
        # d/dx_kj of sum_i w_ij * mu_j * c1_ij: (sum_i w_ij c1_ij) * c1_kj / 2 + w_kj * mu_j * c2_kj
        eh = (w0 * c1).sum(0, keepdims=True) * c1 / 2 + w0 * mu * c2
    else:  # amax_dim
        m = (x0 ** 3 == (x0 ** 3).max(1, keepdims=True)).astype(float)
        eg, eh = c1 * m, c2 * w0 * m
    np.testing.assert_allclose(npy(g), eg, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(npy(h), eh, rtol=1e-10, atol=1e-12)


# ---- gradgradcheck over every differentiable elementwise op, matmul and the reductions -----------

def _u(lo=-2.0, hi=2.0, shape=(3, 2), seed=0):
    return dt.tensor(np.random.default_rng(seed).uniform(lo, hi, shape), requires_grad=True)


def _away_from_kinks(shape=(3, 2), seed=0):
    # values whose distance from 0 and from integers is >= 0.1 (abs, relu, sign, floor, round, ...)
    r = np.random.default_rng(seed)
    v = r.integers(-2, 2, shape) + r.uniform(0.15, 0.35, shape) * r.choice([1, 3], shape)
    return dt.tensor(v, requires_grad=True)


ELEMENTWISE_CASES = {
    "add": (lambda a, b: a + b, lambda: (_u(), _u(seed=1))),
    "sub": (lambda a, b: a - b, lambda: (_u(), _u(shape=(2,), seed=1))),
    "mul": (lambda a, b: a * b, lambda: (_u(), _u(shape=(3, 1), seed=1))),
    "div": (lambda a, b: a / b, lambda: (_u(), _u(0.5, 2.0, seed=1))),
    "pow": (lambda a, b: a ** b, lambda: (_u(0.5, 2.0), _u(seed=1))),
    "atan2": (dt.atan2, lambda: (_u(seed=2), _u(0.5, 2.0, seed=3))),
    "pow_scalar": (lambda a: a ** 3.0, lambda: (_u(),)),
    "maximum": (dt.maximum, lambda: (_u(shape=(4,)), dt.tensor([9.0, -9.0, 0.5, -0.5], dtype=dt.float64,
                                                                 requires_grad=True))),
    "minimum": (dt.minimum, lambda: (_u(shape=(4,)), dt.tensor([9.0, -9.0, 0.5, -0.5], dtype=dt.float64,
                                                                 requires_grad=True))),
    "remainder": (dt.remainder, lambda: (dt.tensor([0.3, 1.2, 2.9, -0.6], dtype=dt.float64, requires_grad=True),
                                         dt.tensor([1.7, 1.7, 2.0, 1.1], dtype=dt.float64, requires_grad=True))),
    "neg": (dt.neg, lambda: (_u(),)),
    "abs": (dt.abs, lambda: (_away_from_kinks(),)),
    "exp": (dt.exp, lambda: (_u(),)),
    "log": (dt.log, lambda: (_u(0.5, 3.0),)),
    "log1p": (dt.log1p, lambda: (_u(-0.5, 3.0),)),
    "expm1": (dt.expm1, lambda: (_u(),)),
    "sqrt": (dt.sqrt, lambda: (_u(0.5, 3.0),)),
    "rsqrt": (dt.rsqrt, lambda: (_u(0.5, 3.0),)),
    "sin": (dt.sin, lambda: (_u(),)),
    "cos": (dt.cos, lambda: (_u(),)),
    "tanh": (dt.tanh, lambda: (_u(),)),
    "sigmoid": (dt.sigmoid, lambda: (_u(-4, 4),)),
    "relu": (dt.relu, lambda: (_away_from_kinks(),)),
    "relu_backward": (lambda g, y: OPS["relu_backward"](g, y.detach()),
                      lambda: (_away_from_kinks(), _away_from_kinks())),
    "erf": (dt.erf, lambda: (_u(),)),
    "reciprocal": (dt.reciprocal, lambda: (_u(0.5, 2.0),)),
    "sign": (lambda x: dt.sign(x) * x, lambda: (_away_from_kinks(),)),
    "floor": (lambda x: dt.floor(x) * x, lambda: (_away_from_kinks(),)),
    "ceil": (lambda x: dt.ceil(x) * x, lambda: (_away_from_kinks(),)),
    "round": (lambda x: dt.round(x) * x, lambda: (_away_from_kinks(),)),
    "cast": (lambda x: OPS["cast"](x * x, dtype=dt.float64), lambda: (_u(),)),
    "where": (lambda x, y: dt.where(x > 0, x * x, y * x), lambda: (_away_from_kinks(), _u(seed=2))),
    "clamp": (lambda x: dt.clamp(x * x, min=0.3, max=2.5), lambda: (_away_from_kinks(),)),
    "clamp_tensor_bounds": (lambda x, lo, hi: dt.clamp(x * 3, lo, hi),
                            lambda: (_u(), _u(-1, -0.5, seed=3), _u(0.5, 1.0, seed=4))),
    "gelu": (dt.gelu, lambda: (_u(),)),
    "silu": (dt.silu, lambda: (_u(),)),
}


def test_gradgradcheck_covers_every_differentiable_elementwise_op():
    import devtensor.ops.elementwise as E

    declared = {v.name for v in vars(E).values() if isinstance(v, OpDef) and v.differentiable}
    # floor_divide: its backward raises, as PyTorch's (tests/test_ops.py test_no_derivative_ops_raise_as_pytorch)
    missing = declared - set(ELEMENTWISE_CASES) - {"floor_divide"}
    assert not missing, f"add gradgradcheck cases for: {sorted(missing)}"


@pytest.mark.parametrize("name", sorted(ELEMENTWISE_CASES))
def test_gradgradcheck_elementwise(name):
    f, make = ELEMENTWISE_CASES[name]
    inputs = make()
    assert gradcheck(f, inputs)
    assert gradgradcheck(f, inputs)


@pytest.mark.parametrize("name, f, shapes", [
    ("matmul", lambda a, b: a @ b, [(3, 4), (4, 2)]),
    ("matmul_batched_broadcast", lambda a, b: a @ b, [(2, 2, 3), (3, 2)]),
    ("matmul_vec", lambda a, b: a @ b, [(3,), (3, 2)]),
    ("sum", lambda x: (x * x).sum(), [(2, 3)]),
    ("sum_dim", lambda x: (x * x).sum(1), [(2, 3)]),
    ("mean", lambda x: (x * x).mean((0, 2), keepdim=True), [(2, 3, 2)]),
    ("prod", lambda x: (x + 3).prod(1), [(2, 3)]),
    ("amax", lambda x: (x * x).amax(1), [(3, 4)]),
    ("amin", lambda x: (x * x).amin(), [(3, 4)]),
    ("max_dim", lambda x: (x * x).max(0).values, [(3, 4)]),
    ("min_dim_keepdim", lambda x: (x * x).min(1, keepdim=True)[0], [(3, 4)]),
    ("var", lambda x: x.var(1), [(2, 4)]),
    ("std", lambda x: x.std(), [(2, 4)]),
    ("logsumexp", lambda x: x.logsumexp(1), [(2, 4)]),
    ("norm", lambda x: x.norm(), [(2, 3)]),
])
def test_gradgradcheck_matmul_and_reductions(name, f, shapes):
    inputs = tuple(_u(shape=s, seed=i) for i, s in enumerate(shapes))
    assert gradcheck(f, inputs)
    assert gradgradcheck(f, inputs)


# ---- hooks and retain_grad --------------------------------------------------------------------------

def test_leaf_hook_modifies_gradient_and_can_be_removed():
    x = T([1.0, 2.0])
    seen = []
    h = x.register_hook(lambda g: seen.append(npy(g).copy()) or g * 2)
    (x * 3).sum().backward()
    np.testing.assert_allclose(npy(x.grad), [6.0, 6.0])
    np.testing.assert_allclose(seen[0], [3.0, 3.0])
    h.remove()
    x.grad = None
    (x * 3).sum().backward()
    np.testing.assert_allclose(npy(x.grad), [3.0, 3.0])
    assert len(seen) == 1


def test_nonleaf_hook_changes_what_flows_upstream():
    x = T([1.0, 2.0])
    y = x * 2
    h = y.register_hook(lambda g: g * 10)
    (y * y).sum().backward()  # dL/dy = 2y = [4, 8]; hooked x10; dy/dx = 2
    np.testing.assert_allclose(npy(x.grad), [80.0, 160.0])
    h.remove()
    x.grad = None
    y = x * 2
    (y * y).sum().backward()
    np.testing.assert_allclose(npy(x.grad), [8.0, 16.0])


def test_removed_nonleaf_hook_does_not_run():
    x = T([1.0, 2.0])
    y = x * 2
    calls = []
    h = y.register_hook(lambda g: calls.append(1))
    h.remove()
    (y * y).sum().backward()
    assert calls == []


def test_hook_returning_none_keeps_gradient():
    x = T([1.0, 2.0])
    y = x.exp()
    y.register_hook(lambda g: None)
    y.sum().backward()
    np.testing.assert_allclose(npy(x.grad), np.exp([1.0, 2.0]))


def test_register_hook_on_tensor_without_grad_raises():
    with pytest.raises(RuntimeError, match="doesn't require gradient"):
        dt.tensor([1.0]).register_hook(lambda g: g)


def test_retain_grad_on_nonleaf():
    x = T([1.0, 2.0])
    y = x * 3
    z = y * y
    y.retain_grad()
    assert y.retains_grad
    assert z.grad is None
    z.sum().backward()
    np.testing.assert_allclose(npy(y.grad), [6.0, 12.0])
    np.testing.assert_allclose(npy(x.grad), [18.0, 36.0])
    assert z.grad is None  # non-leaf without retain_grad keeps no grad


def test_retain_grad_sees_hooks_registered_before_it():
    x = T([1.0, 2.0])
    y = x * 2
    y.register_hook(lambda g: g * 10)
    y.retain_grad()
    (y * y).sum().backward()
    np.testing.assert_allclose(npy(y.grad), [40.0, 80.0])  # as in PyTorch
    np.testing.assert_allclose(npy(x.grad), [80.0, 160.0])


def test_retain_grad_accumulates():
    x = T([1.0])
    y = x * 2
    y.retain_grad()
    (y * 3).sum().backward(retain_graph=True)
    (y * 3).sum().backward()
    np.testing.assert_allclose(npy(y.grad), [6.0])


# ---- custom autograd.Function --------------------------------------------------------------------

class ScaledCube(dt.autograd.Function):
    calls = []

    @staticmethod
    def forward(ctx, x, k):
        assert not dt.is_grad_enabled()  # forward runs without recording
        ctx.save_for_backward(x)
        ctx.k = k
        return x ** 3 * k

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        ScaledCube.calls.append(ctx.needs_input_grad)
        return g * 3 * x ** 2 * ctx.k, None


def test_custom_function_forward_backward_and_needs_input_grad():
    ScaledCube.calls.clear()
    x = T([1.0, 2.0])
    y = ScaledCube.apply(x, 2.0)
    assert y.grad_fn is not None and "ScaledCube" in repr(y.grad_fn)
    y.sum().backward()
    np.testing.assert_allclose(npy(x.grad), 6 * np.array([1.0, 4.0]))
    assert ScaledCube.calls == [(True, False)]


def test_custom_function_used_twice_in_one_graph():
    ScaledCube.calls.clear()
    x = T([1.0, 2.0])
    y = ScaledCube.apply(x, 2.0) + ScaledCube.apply(x * 2, 1.0)
    y.sum().backward()
    x0 = np.array([1.0, 2.0])
    np.testing.assert_allclose(npy(x.grad), 6 * x0 ** 2 + 3 * (2 * x0) ** 2 * 2)
    assert len(ScaledCube.calls) == 2


def test_custom_function_passes_gradcheck():
    x = _u(0.5, 2.0, shape=(4,))
    assert gradcheck(lambda t: ScaledCube.apply(t, 1.5), (x,))


def test_custom_function_without_grad_inputs_records_nothing():
    y = ScaledCube.apply(dt.tensor([1.0, 2.0]), 2.0)
    assert y.grad_fn is None and not y.requires_grad


def test_custom_function_saved_tensors_freed_after_backward():
    x = T([1.0, 2.0])
    y = ScaledCube.apply(x, 1.0).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        y.backward()


class MaxWithIndex(dt.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        v, i = x.max(0)
        ctx.mark_non_differentiable(i)
        ctx.save_for_backward(i)
        ctx.n = x.shape[0]
        return v, i

    @staticmethod
    def backward(ctx, gv, gi):
        (i,) = ctx.saved_tensors
        out = dt.zeros(ctx.n, dtype=gv.dtype)
        out[i] = gv
        return out


def test_custom_function_mark_non_differentiable():
    x = T([1.0, 5.0, 2.0])
    v, i = MaxWithIndex.apply(x)
    assert v.requires_grad and not i.requires_grad
    assert i.dtype is dt.int64 and i.item() == 1
    (v * 2).backward()
    np.testing.assert_allclose(npy(x.grad), [0.0, 2.0, 0.0])


class Double(dt.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x * 2

    @staticmethod
    def backward(ctx, g):
        return g * 2  # written in tensor ops: differentiable again


def test_custom_function_double_backward_through_tensor_ops_in_backward():
    x = T([1.0, 2.0])
    y = (Double.apply(x) ** 2).sum()  # 4 x^2
    (g,) = dt.autograd.grad(y, x, create_graph=True)
    np.testing.assert_allclose(npy(g), [8.0, 16.0])
    (h,) = dt.autograd.grad(g.sum(), x)
    np.testing.assert_allclose(npy(h), [8.0, 8.0])


# ---- grad modes ----------------------------------------------------------------------------------

def test_no_grad_enable_grad_set_grad_enabled_as_context_managers():
    x = T([1.0])
    with dt.no_grad():
        assert not dt.is_grad_enabled()
        assert not (x * 2).requires_grad
        with dt.enable_grad():
            assert (x * 2).requires_grad
        assert not (x * 2).requires_grad
    assert dt.is_grad_enabled()
    with dt.set_grad_enabled(False):
        assert not (x * 2).requires_grad
    assert dt.is_grad_enabled()
    with dt.inference_mode():
        assert not (x * 2).requires_grad
    with dt.inference_mode(False):
        assert (x * 2).requires_grad
    assert dt.is_grad_enabled()


def test_set_grad_enabled_as_a_function_call():
    try:
        dt.set_grad_enabled(False)
        assert not dt.is_grad_enabled()
    finally:
        dt.set_grad_enabled(True)
    assert dt.is_grad_enabled()


def test_grad_modes_as_decorators():
    x = T([1.0])

    @dt.no_grad()
    def f_no():
        return x * 2

    @dt.enable_grad()
    def f_en():
        return x * 2

    @dt.inference_mode()
    def f_inf():
        return x * 2

    @dt.set_grad_enabled(False)
    def f_set():
        return x * 2

    assert dt.is_grad_enabled(), "decorating with set_grad_enabled(False) must not switch grad mode off"
    assert not f_no().requires_grad
    assert not f_inf().requires_grad
    assert not f_set().requires_grad
    assert dt.is_grad_enabled()
    with dt.no_grad():
        assert f_en().requires_grad
        assert not dt.is_grad_enabled()
    # the same decorated function is reentrant and restores the outer mode
    assert not f_no().requires_grad and dt.is_grad_enabled()


def test_grad_mode_restored_after_exception():
    with pytest.raises(ValueError):
        with dt.no_grad():
            raise ValueError("boom")
    assert dt.is_grad_enabled()


def test_grad_mode_is_thread_local():
    entered, release = threading.Event(), threading.Event()
    seen = {}

    def worker():
        with dt.no_grad():
            seen["worker_enabled"] = dt.is_grad_enabled()
            entered.set()
            release.wait(10)
            seen["worker_rg"] = (T([1.0]) * 2).requires_grad

    th = threading.Thread(target=worker)
    th.start()
    try:
        assert entered.wait(10)
        # the other thread is inside no_grad right now; this one is not affected
        assert dt.is_grad_enabled()
        x = T([1.0, 2.0])
        y = (x * x).sum()
        assert y.requires_grad
        y.backward()
        np.testing.assert_allclose(npy(x.grad), [2.0, 4.0])
    finally:
        release.set()
        th.join(10)
    assert seen == {"worker_enabled": False, "worker_rg": False}


def test_threads_with_grad_off_are_counted_exactly():
    """dispatch skips the thread-local read while no thread has grad mode off: the count must come
    back to 0 after every way of switching the mode, and a stale count would record under no_grad."""
    from devtensor.autograd.grad_mode import _off_count

    assert _off_count[0] == 0
    with dt.no_grad():
        assert _off_count[0] == 1
        with dt.enable_grad():
            assert _off_count[0] == 0
            with dt.inference_mode():
                assert _off_count[0] == 1
        with dt.no_grad():  # already off: not counted twice
            assert _off_count[0] == 1
        assert not (T([1.0]) * 2).requires_grad
    with pytest.raises(ValueError):
        with dt.no_grad():
            raise ValueError("boom")
    dt.set_grad_enabled(False)
    assert _off_count[0] == 1 and not (T([1.0]) * 2).requires_grad
    dt.set_grad_enabled(True)

    @dt.no_grad()
    def f(x):
        return x * 2

    assert not f(T([1.0])).requires_grad
    x = T([1.0, 2.0])
    (x * x).sum().backward(create_graph=False)  # the engine turns grad mode off while it runs
    assert _off_count[0] == 0 and (x * 2).requires_grad


def test_new_thread_starts_with_grad_enabled():
    out = {}
    with dt.no_grad():
        th = threading.Thread(target=lambda: out.setdefault("enabled", dt.is_grad_enabled()))
        th.start()
        th.join(10)
    assert out["enabled"] is True


# ---- version counters and in-place ops ------------------------------------------------------------

def test_modifying_saved_output_in_place_raises_naming_both_ops():
    a = T([1.0, 2.0])
    b = a * 1
    c = b.exp()  # exp saves its output
    c.add_(1)
    with pytest.raises(RuntimeError, match=r"(?s)modified by an inplace operation.*exp.*add_"):
        c.sum().backward()


def test_modifying_saved_input_in_place_raises_naming_both_ops():
    a = T([1.0, 2.0])
    b = a * 1
    c = b.sin()  # sin saves its input
    b.mul_(2)
    with pytest.raises(RuntimeError, match=r"(?s)inplace operation.*sin.*mul_"):
        c.sum().backward()


def test_modifying_a_saved_tensor_through_a_view_raises():
    w = dt.tensor([1.0, 2.0, 3.0])
    x = T([1.0, 1.0, 1.0])
    y = (x * w).sum()  # mul saves w
    with dt.no_grad():
        w[1:].zero_()  # a view shares the version counter
    with pytest.raises(RuntimeError, match=r"(?s)saved by mul.*zero_"):
        y.backward()


def test_in_place_on_unsaved_tensor_is_fine():
    a = T([1.0, 2.0])
    b = a * 1
    c = b + 1  # add saves nothing
    b.mul_(5)
    c.sum().backward()
    np.testing.assert_allclose(npy(a.grad), [1.0, 1.0])


def test_in_place_ops_on_nonleaf_give_correct_gradients():
    torch = pytest.importorskip("torch")
    a0, b0 = [1.0, 2.0, 3.0], [4.0, 5.0, 6.0]

    def run(a, b, c):  # the same code drives both libraries
        x = a * 1
        x.mul_(b)
        x[0] = c
        x += a
        x[1:] = x[1:].clone() * a[1:]
        x.sub_(b, alpha=2)
        x.mul_(0.1).exp_()
        return (x * x).sum()

    a, b, c = T(a0), T(b0), T(7.0)
    run(a, b, c).backward()
    ta, tb, tc = (torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in (a0, b0, 7.0))
    run(ta, tb, tc).backward()
    for mine, ref in ((a, ta), (b, tb), (c, tc)):
        np.testing.assert_allclose(npy(mine.grad), ref.grad.numpy(), rtol=1e-10)


def test_in_place_on_a_view_of_a_grad_tensor_is_differentiated():
    # PyTorch's CopySlices: the base's history is rebased onto the view's in-place op
    a = T([1.0, 2.0, 3.0])
    x = a * 1
    x[1:].mul_(2)  # x = a * [1, 2, 2]
    (x * x).sum().backward()
    np.testing.assert_allclose(npy(a.grad), [2.0, 16.0, 24.0])
    leaf = T([1.0, 2.0])
    with pytest.raises(RuntimeError, match="view of a leaf Variable that requires grad"):
        leaf[0].mul_(2)


def test_in_place_ops_on_nonleaf_closed_form():
    a, b, c = T([1.0, 2.0, 3.0]), T([4.0, 5.0, 6.0]), T(7.0)
    x = a * 1
    x.mul_(b)        # x = a*b
    x[0] = c         # x = [c, a1 b1, a2 b2]
    (x * x).sum().backward()
    np.testing.assert_allclose(npy(a.grad), [0.0, 2 * 2 * 5 * 5, 2 * 3 * 6 * 6])
    np.testing.assert_allclose(npy(b.grad), [0.0, 2 * 2 * 2 * 5, 2 * 3 * 3 * 6])
    np.testing.assert_allclose(npy(c.grad), 14.0)
    assert x.grad_fn is not None


def test_in_place_bumps_version():
    x = dt.tensor([1.0, 2.0])
    v = x._version
    x.add_(1)
    x[0] = 3.0
    assert x._version == v + 2


def test_in_place_on_leaf_requiring_grad_raises():
    x = T([1.0, 2.0])
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad.*in-place"):
        x.add_(1)
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        x[0] = 5.0
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        x *= 2
    with dt.no_grad():
        x.add_(1)  # what optimizers do
    np.testing.assert_allclose(npy(x), [2.0, 3.0])
    assert x.is_leaf and x.requires_grad


def test_detach_shares_storage_and_version():
    x = T([1.0, 2.0])
    d = x.detach()
    assert not d.requires_grad and d.grad_fn is None and d.is_leaf
    d[0] = 5.0
    np.testing.assert_allclose(npy(x), [5.0, 2.0])
    assert x._version == d._version == 1
    y = x * 3
    z = y.detach()
    z.mul_(0)
    np.testing.assert_allclose(npy(y), [0.0, 0.0])
    np.testing.assert_allclose(npy(x.data), [5.0, 2.0])
    assert not x.data.requires_grad


def test_requires_grad_on_nonleaf_cannot_be_turned_off():
    y = T([1.0]) * 2
    with pytest.raises(RuntimeError, match="leaf"):
        y.requires_grad_(False)


# ---- broadcasting and promotion undone centrally ----------------------------------------------------

@pytest.mark.parametrize("op", ["add", "sub", "mul", "div", "pow", "maximum", "minimum", "where"])
def test_broadcast_binary_grads_have_input_shapes(op):
    rng = np.random.default_rng(0)
    a = dt.tensor(rng.uniform(0.5, 2, (3, 1, 4)), requires_grad=True)
    b = dt.tensor(rng.uniform(0.5, 2, (2, 1)), requires_grad=True)
    f = {"add": lambda: a + b, "sub": lambda: a - b, "mul": lambda: a * b, "div": lambda: a / b,
         "pow": lambda: a ** b, "maximum": lambda: dt.maximum(a, b), "minimum": lambda: dt.minimum(a, b),
         "where": lambda: dt.where(a > 1, a, b)}[op]
    out = f()
    assert tuple(out.shape) == (3, 2, 4)
    out.backward(dt.ones_like(out))
    assert tuple(a.grad.shape) == (3, 1, 4) and tuple(b.grad.shape) == (2, 1)
    assert gradcheck(lambda x, y: {"add": x + y, "sub": x - y, "mul": x * y, "div": x / y, "pow": x ** y,
                                   "maximum": dt.maximum(x, y), "minimum": dt.minimum(x, y),
                                   "where": dt.where(x > 1, x, y)}[op], (a, b))


def test_broadcast_grad_values_are_summed():
    a = T(np.ones((3, 1)))
    b = T(np.arange(4.0))
    (a * b).sum().backward()
    np.testing.assert_allclose(npy(a.grad), np.full((3, 1), 6.0))
    np.testing.assert_allclose(npy(b.grad), np.full(4, 3.0))


def test_mixed_dtype_inputs_get_grads_in_their_own_dtype():
    a = dt.ones(3, 1, requires_grad=True)                  # float32
    b = dt.ones(4, dtype=dt.float64, requires_grad=True)  # float64
    out = a * b
    assert out.dtype is dt.float64
    out.sum().backward()
    assert a.grad.dtype is dt.float32 and tuple(a.grad.shape) == (3, 1)
    assert b.grad.dtype is dt.float64 and tuple(b.grad.shape) == (4,)
    np.testing.assert_allclose(npy(a.grad), np.full((3, 1), 4.0))
    np.testing.assert_allclose(npy(b.grad), np.full(4, 3.0))


def test_scalar_and_zero_dim_operands_get_scalar_shaped_grads():
    a = T(2.0)
    b = T([[1.0, 2.0], [3.0, 4.0]])
    (a * b).sum().backward()
    assert tuple(a.grad.shape) == ()
    assert a.grad.item() == 10.0


def test_expand_grad_is_summed():
    x = T([[1.0], [2.0]])
    y = x.expand(2, 3) * dt.tensor([1.0, 2.0, 3.0], dtype=dt.float64)
    y.sum().backward()
    np.testing.assert_allclose(npy(x.grad), [[6.0], [6.0]])


# ---- autograd.grad, gradient argument --------------------------------------------------------------

def test_autograd_grad_allow_unused():
    x, z = T([1.0]), T([2.0])
    y = (x * 2).sum()
    with pytest.raises(RuntimeError, match="allow_unused=True"):
        dt.autograd.grad(y, [x, z], retain_graph=True)
    gx, gz = dt.autograd.grad(y, [x, z], allow_unused=True)
    np.testing.assert_allclose(npy(gx), [2.0])
    assert gz is None
    assert x.grad is None and z.grad is None


def test_autograd_grad_materialize_grads():
    x, z = T([1.0]), T([2.0, 3.0])
    gx, gz = dt.autograd.grad((x * 2).sum(), [x, z], materialize_grads=True)
    np.testing.assert_allclose(npy(gz), [0.0, 0.0])


def test_autograd_grad_with_grad_outputs_and_nonleaf_input():
    x = T([1.0, 2.0])
    h = x * 3
    y = h * h
    (gh,) = dt.autograd.grad(y, h, grad_outputs=dt.tensor([1.0, 0.5], dtype=dt.float64))
    np.testing.assert_allclose(npy(gh), [6.0, 6.0])


def test_autograd_grad_multiple_outputs():
    x = T([1.0, 2.0])
    (g,) = dt.autograd.grad([(x * x).sum(), (x * 3).sum()], [x])
    np.testing.assert_allclose(npy(g), [5.0, 7.0])


def test_non_scalar_backward_needs_gradient():
    x = T([1.0, 2.0])
    y = x * x
    with pytest.raises(RuntimeError, match=r"implicitly created only for scalar outputs.*\(2,\)"):
        y.backward()
    y.backward(dt.tensor([1.0, 0.5], dtype=dt.float64))
    np.testing.assert_allclose(npy(x.grad), [2.0, 2.0])


def test_gradient_shape_mismatch_raises():
    x = T([1.0, 2.0])
    with pytest.raises(RuntimeError, match=r"\(3,\).*\(2,\)"):
        (x * x).backward(dt.ones(3, dtype=dt.float64))


def test_backward_on_tensor_without_grad_raises():
    with pytest.raises(RuntimeError, match="does not require grad"):
        dt.tensor([1.0]).sum().backward()


def test_backward_inputs_argument_limits_accumulation():
    x, w = T([1.0, 2.0]), T([3.0, 4.0])
    (x * w).sum().backward(inputs=[w])
    assert x.grad is None
    np.testing.assert_allclose(npy(w.grad), [1.0, 2.0])


# ---- where with NaN in the unselected branch -------------------------------------------------------

def test_where_nan_in_unselected_branch_gives_finite_gradients():
    # PyTorch gives nan here (0 * nan from sqrt's backward); devtensor's sqrt/rsqrt/log rules return an
    # exact 0 where their incoming gradient is 0, so the unselected branch contributes nothing
    x = dt.tensor([-1.0, 0.0, 4.0, 9.0], requires_grad=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        y = dt.where(x > 0, dt.sqrt(x), 0.0)
        np.testing.assert_allclose(npy(y), [0.0, 0.0, 2.0, 3.0])
        y.sum().backward()
    g = npy(x.grad)
    assert np.all(np.isfinite(g)), g
    np.testing.assert_allclose(g, [0.0, 0.0, 0.25, 1 / 6], rtol=1e-6)


@pytest.mark.parametrize("fn, d", [(dt.sqrt, lambda v: 0.5 / np.sqrt(v)), (dt.log, lambda v: 1 / v),
                                   (dt.rsqrt, lambda v: -0.5 * v ** -1.5)])
def test_where_guarded_singular_functions_have_finite_gradients(fn, d):
    x = dt.tensor([-2.0, 0.0, 0.5, 3.0], dtype=dt.float64, requires_grad=True)
    with np.errstate(all="ignore"):
        y = dt.where(x > 0, fn(x), x * 0.5)
        y.sum().backward()
    np.testing.assert_allclose(npy(x.grad), [0.5, 0.5, d(0.5), d(3.0)], rtol=1e-12)


def test_where_nan_with_the_safe_inner_where_idiom():
    x = dt.tensor([-1.0, 0.0, 4.0], requires_grad=True)
    safe = dt.where(x > 0, x, 1.0)
    y = dt.where(x > 0, dt.log(safe), 0.0)
    assert np.all(np.isfinite(npy(y)))
    y.sum().backward()
    np.testing.assert_allclose(npy(x.grad), [0.0, 0.0, 0.25])


def test_where_backward_selects_never_multiplies():
    # an infinite upstream gradient must not leak into the unselected branch as inf*0 = nan
    a, b = T([1.0, 2.0]), T([3.0, 4.0])
    y = dt.where(dt.tensor([True, False]), a, b)
    y.backward(dt.tensor([np.inf, 1.0], dtype=dt.float64))
    np.testing.assert_array_equal(npy(a.grad), [np.inf, 0.0])
    np.testing.assert_array_equal(npy(b.grad), [0.0, 1.0])


# ---- memory: a long training loop stays flat and leaves no cycles -----------------------------------

def _graph_types():
    from devtensor.autograd.function import FunctionCtx
    from devtensor.autograd.node import Node

    return (dt.Tensor, Node, FunctionCtx)


def test_training_loop_memory_is_flat_and_acyclic():
    dt.manual_seed(0)
    X, Y = dt.randn(64, 16), dt.randn(64, 1)
    W1 = (dt.randn(16, 32) * 0.3).requires_grad_()
    b1 = dt.zeros(32, requires_grad=True)
    W2 = (dt.randn(32, 1) * 0.3).requires_grad_()
    b2 = dt.zeros(1, requires_grad=True)
    params = [W1, b1, W2, b2]

    def step():
        h = (X @ W1 + b1).relu()
        loss = ((h @ W2 + b2 - Y) ** 2).mean()
        loss.backward()
        with dt.no_grad():
            for p in params:
                p -= 0.01 * p.grad
                p.grad = None
        return loss

    step()  # kernels' first use (numba loading its cache builds llvmlite objects in cycles) is not a step's leak
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        first = step().item()
        for _ in range(999):
            step()
        tracemalloc.start()
        try:
            base = tracemalloc.get_traced_memory()[0]
            tracemalloc.reset_peak()
            for _ in range(9000):
                last = step()
            cur, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        gc.set_debug(gc.DEBUG_SAVEALL)
        try:
            found = gc.collect()
            # type(), not isinstance(): numba's first compile leaves weak proxies in the garbage, and
            # isinstance() on a dead proxy raises ReferenceError
            ours = [o for o in gc.garbage if issubclass(type(o), _graph_types())]
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
    finally:
        if was_enabled:
            gc.enable()
    assert last.item() < first  # it did train
    # one step's graph is ~40 kB of Python objects; 9000 leaked graphs would be hundreds of MB
    assert cur - base < 64 * 1024, f"memory grew by {cur - base} bytes over 9000 steps"
    assert peak - base < 256 * 1024, f"peak grew by {peak - base} bytes over 9000 steps"
    assert not ours, f"reference cycles through graph objects: {len(ours)} of them"
    assert found < 50, f"gc found {found} unreachable objects in cycles after 10,000 steps"


def test_dropping_the_output_frees_the_graph():
    import weakref

    x = T([1.0, 2.0])
    y = (x.exp() * x).sum()
    node = weakref.ref(y.grad_fn)
    del y
    assert node() is None  # refcounting alone frees it: no cycle


def _count_clones(fn):
    """How many clone ops fn() dispatches (the engine copies a gradient it does not own)."""
    from devtensor import dispatch

    seen = []
    orig = dispatch.OPS["clone"].kernels["cpu"]

    def counting(*a, **k):
        seen.append(1)
        return orig(*a, **k)

    dispatch.OPS["clone"].kernels["cpu"] = counting
    try:
        fn()
    finally:
        dispatch.OPS["clone"].kernels["cpu"] = orig
    return len(seen)


def test_leaf_takes_a_private_gradient_without_a_copy():
    # linear's weight gradient is a fresh array nobody else holds: .grad takes it, as PyTorch does
    rng = np.random.default_rng(0)
    w = dt.tensor(rng.standard_normal((3, 4)), requires_grad=True)
    x = dt.tensor(rng.standard_normal((5, 4)))
    assert _count_clones(lambda: dt.nn.functional.linear(x, w).relu().sum().backward()) == 0
    wn, xn = w.detach().numpy(), x.numpy()
    np.testing.assert_allclose(w.grad.numpy(), ((xn @ wn.T) > 0).T.astype(float) @ xn)


def test_leaves_sharing_one_upstream_gradient_get_their_own_copies():
    # add passes the same gradient to both inputs: each leaf must own its .grad, or an in-place
    # update of one (an optimizer step) would change the other
    a = dt.tensor([1.0, 2.0], requires_grad=True)
    b = dt.tensor([3.0, 4.0], requires_grad=True)
    (a + b).backward(dt.tensor([1.0, 1.0]))
    assert a.grad._data is not b.grad._data
    a.grad.mul_(5)
    np.testing.assert_array_equal(b.grad.numpy(), [1.0, 1.0])
    np.testing.assert_array_equal(a.grad.numpy(), [5.0, 5.0])
