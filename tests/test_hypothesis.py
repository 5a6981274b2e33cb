"""Hypothesis-generated shapes: broadcasting of binary ops (values, result shape, gradient shapes),
shape-op round trips, basic and advanced indexing (values and scatter-add gradients) and
__setitem__, each against numpy."""
from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import devtensor as dt

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow],
                    derandomize=True)

BINARY = {
    "add": (lambda a, b: a + b, np.add),
    "sub": (lambda a, b: a - b, np.subtract),
    "mul": (lambda a, b: a * b, np.multiply),
    "div": (lambda a, b: a / b, np.divide),
    "pow": (lambda a, b: a ** b, np.power),
    "maximum": (dt.maximum, np.maximum),
    "minimum": (dt.minimum, np.minimum),
    "gt": (lambda a, b: a > b, np.greater),
    "where": (lambda a, b: dt.where(a > b, a, b), lambda a, b: np.where(a > b, a, b)),
}


def _arr(rng, shape, lo=0.5, hi=2.0):
    return rng.uniform(lo, hi, shape)


def _np(t):
    return np.asarray(t.detach()._data)


# ---- broadcasting ----------------------------------------------------------------------------------

@SETTINGS
@given(shapes=hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=4, min_side=0, max_side=4),
       op=st.sampled_from(sorted(BINARY)), seed=st.integers(0, 2 ** 16))
def test_broadcast_binary_ops_match_numpy(shapes, op, seed):
    (sa, sb), result_shape = shapes
    rng = np.random.default_rng(seed)
    a0, b0 = _arr(rng, sa), _arr(rng, sb)
    ours, ref = BINARY[op]
    a = dt.tensor(a0, requires_grad=True)
    b = dt.tensor(b0, requires_grad=True)
    out = ours(a, b)
    want = ref(a0, b0)
    assert tuple(out.shape) == tuple(result_shape) == want.shape
    np.testing.assert_allclose(_np(out), want, rtol=1e-12)
    if op == "gt":
        assert out.dtype is dt.bool and not out.requires_grad
        return
    g0 = rng.standard_normal(result_shape)
    out.backward(dt.tensor(g0))
    assert tuple(a.grad.shape) == sa and tuple(b.grad.shape) == sb
    assert a.grad.dtype is dt.float64 and b.grad.dtype is dt.float64
    if op in ("add", "sub"):
        # closed form: the upstream gradient summed over the broadcast dims
        ga = _unbroadcast(g0, sa)
        gb = _unbroadcast(g0 if op == "add" else -g0, sb)
        np.testing.assert_allclose(_np(a.grad), ga, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(_np(b.grad), gb, rtol=1e-12, atol=1e-12)
    if op == "mul":
        np.testing.assert_allclose(_np(a.grad), _unbroadcast(g0 * b0, sa), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(_np(b.grad), _unbroadcast(g0 * a0, sb), rtol=1e-10, atol=1e-12)


def _unbroadcast(g, shape):
    """Sum g down to `shape` (numpy reference for the engine's sum_to_size)."""
    g = np.asarray(g)
    lead = g.ndim - len(shape)
    g = g.sum(axis=tuple(range(lead))) if lead else g
    axes = tuple(i for i, s in enumerate(shape) if s == 1 and g.shape[i] != 1)
    return g.sum(axis=axes, keepdims=True).reshape(shape) if axes else g.reshape(shape)


@SETTINGS
@given(shapes=hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=3),
       scalar=st.sampled_from([2, 0.5, True]), da=st.sampled_from(["float32", "float64", "int32", "int64"]))
def test_broadcast_with_zero_dim_and_scalars_keeps_numpy_values(shapes, scalar, da):
    (sa, sb), result_shape = shapes
    rng = np.random.default_rng(0)
    a0 = (rng.uniform(1, 3, sa) * 3).astype(da)
    b0 = rng.uniform(1, 3, sb)
    a = dt.tensor(a0)
    out = a * scalar + dt.tensor(b0, dtype=dt.float32)
    assert tuple(out.shape) == result_shape
    np.testing.assert_allclose(_np(out), a0 * scalar + b0.astype(np.float32), rtol=1e-5)


@SETTINGS
@given(shape=hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=4), data=st.data())
def test_reductions_with_broadcast_gradients(shape, data):
    dims = data.draw(st.lists(st.integers(0, len(shape) - 1), unique=True, min_size=1, max_size=len(shape)))
    keep = data.draw(st.booleans())
    a0 = np.random.default_rng(1).standard_normal(shape)
    a = dt.tensor(a0, requires_grad=True)
    out = a.sum(tuple(dims), keepdim=keep)
    np.testing.assert_allclose(_np(out), a0.sum(tuple(dims), keepdims=keep), rtol=1e-12, atol=1e-12)
    g0 = np.random.default_rng(2).standard_normal(out.shape)
    out.backward(dt.tensor(g0))
    want = np.broadcast_to(g0 if keep else np.expand_dims(g0, tuple(sorted(dims))), shape)
    np.testing.assert_allclose(_np(a.grad), want)


# ---- shape ops ---------------------------------------------------------------------------------------

def _factorizations(n):
    """Shapes with n elements, built from n's prime factors."""
    fs, k, p = [], n, 2
    while k > 1 and p * p <= k:
        while k % p == 0:
            fs.append(p)
            k //= p
        p += 1
    if k > 1:
        fs.append(k)
    return fs


@SETTINGS
@given(shape=hnp.array_shapes(min_dims=0, max_dims=4, min_side=1, max_side=5), data=st.data())
def test_reshape_round_trip(shape, data):
    n = int(np.prod(shape))
    factors = data.draw(st.permutations(_factorizations(n))) if n > 1 else []
    # group the shuffled factors into a random new shape, with ones sprinkled in
    new = []
    for f in factors:
        if new and data.draw(st.booleans()):
            new[-1] *= f
        else:
            new.append(f)
    if data.draw(st.booleans()):
        new.insert(data.draw(st.integers(0, len(new))), 1)
    new = tuple(new)
    if new and data.draw(st.booleans()):
        i = data.draw(st.integers(0, len(new) - 1))
        spec = new[:i] + (-1,) + new[i + 1:]
    else:
        spec = new
    a0 = np.arange(n, dtype=np.float64).reshape(shape)
    a = dt.tensor(a0, requires_grad=True)
    r = a.reshape(spec)
    assert tuple(r.shape) == a0.reshape(spec).shape
    np.testing.assert_array_equal(_np(r), a0.reshape(spec))
    back = r.reshape(shape)
    np.testing.assert_array_equal(_np(back), a0)
    np.testing.assert_array_equal(_np(a.view(spec)), a0.reshape(spec))
    g0 = np.random.default_rng(0).standard_normal(back.shape)
    (back * dt.tensor(g0)).sum().backward()
    np.testing.assert_allclose(_np(a.grad), g0)


@SETTINGS
@given(shape=hnp.array_shapes(min_dims=1, max_dims=5, min_side=1, max_side=4), data=st.data())
def test_permute_transpose_round_trip(shape, data):
    perm = tuple(data.draw(st.permutations(range(len(shape)))))
    a0 = np.random.default_rng(0).standard_normal(shape)
    a = dt.tensor(a0, requires_grad=True)
    p = a.permute(perm)
    np.testing.assert_array_equal(_np(p), a0.transpose(perm))
    inv = tuple(np.argsort(perm))
    np.testing.assert_array_equal(_np(p.permute(inv)), a0)
    d0 = data.draw(st.integers(-len(shape), len(shape) - 1))
    d1 = data.draw(st.integers(-len(shape), len(shape) - 1))
    t = a.transpose(d0, d1)
    np.testing.assert_array_equal(_np(t), np.swapaxes(a0, d0, d1))
    np.testing.assert_array_equal(_np(t.transpose(d0, d1)), a0)
    g0 = np.random.default_rng(1).standard_normal(t.shape)
    (t * dt.tensor(g0)).sum().backward()
    np.testing.assert_allclose(_np(a.grad), np.swapaxes(g0, d0, d1))
    if len(shape) >= 2:
        np.testing.assert_array_equal(_np(a.mT), np.swapaxes(a0, -1, -2))
    np.testing.assert_array_equal(_np(a.T), a0.transpose(tuple(reversed(range(len(shape))))))


@SETTINGS
@given(shape=hnp.array_shapes(min_dims=0, max_dims=4, min_side=1, max_side=4), data=st.data())
def test_flatten_squeeze_unsqueeze_round_trip(shape, data):
    a0 = np.random.default_rng(0).standard_normal(shape)
    a = dt.tensor(a0, requires_grad=True)
    nd = max(len(shape), 1)
    s = data.draw(st.integers(-nd, nd - 1))
    e = data.draw(st.integers(-nd, nd - 1))
    if len(shape) and s % nd > e % nd:
        s, e = e, s
    f = a.flatten(s, e) if len(shape) else a.flatten()
    ss, ee = s % nd, e % nd
    want = a0.reshape(shape[:ss] + (-1,) + shape[ee + 1:]) if len(shape) else a0.reshape(1)
    assert tuple(f.shape) == want.shape
    np.testing.assert_array_equal(_np(f), want)
    np.testing.assert_array_equal(_np(f.reshape(shape)), a0)
    np.testing.assert_array_equal(_np(a.flatten()), a0.reshape(-1))
    # squeeze / unsqueeze
    u = data.draw(st.integers(-len(shape) - 1, len(shape)))
    un = a.unsqueeze(u)
    np.testing.assert_array_equal(_np(un), np.expand_dims(a0, u))
    np.testing.assert_array_equal(_np(un.squeeze(u)), a0)
    np.testing.assert_array_equal(_np(a.squeeze()), np.squeeze(a0))
    if len(shape):
        d = data.draw(st.integers(-len(shape), len(shape) - 1))
        want_sq = np.squeeze(a0, d) if shape[d] == 1 else a0
        np.testing.assert_array_equal(_np(a.squeeze(d)), want_sq)
    g0 = np.random.default_rng(1).standard_normal(un.shape)
    (un * dt.tensor(g0)).sum().backward()
    np.testing.assert_allclose(_np(a.grad), g0.reshape(shape))


@SETTINGS
@given(shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=3), data=st.data())
def test_expand_repeat_flip_vs_numpy(shape, data):
    a0 = np.random.default_rng(0).standard_normal(shape)
    a = dt.tensor(a0, requires_grad=True)
    lead = data.draw(st.integers(0, 2))
    target = tuple(data.draw(st.integers(1, 3)) for _ in range(lead)) + tuple(
        data.draw(st.sampled_from([s, -1])) if s != 1 else data.draw(st.integers(1, 3)) for s in shape)
    e = a.expand(target)
    resolved = tuple(target[:lead]) + tuple(s if t == -1 else t for t, s in zip(target[lead:], shape))
    want = np.broadcast_to(a0, resolved)
    np.testing.assert_array_equal(_np(e), want)
    reps = tuple(data.draw(st.integers(1, 3)) for _ in range(len(shape) + data.draw(st.integers(0, 1))))
    np.testing.assert_array_equal(_np(a.repeat(reps)), np.tile(a0, reps))
    dims = tuple(data.draw(st.lists(st.integers(0, len(shape) - 1), unique=True, min_size=1)))
    np.testing.assert_array_equal(_np(a.flip(dims)), np.flip(a0, dims))
    g0 = np.random.default_rng(1).standard_normal(e.shape)
    (e * dt.tensor(g0)).sum().backward()
    np.testing.assert_allclose(_np(a.grad), _unbroadcast(g0, shape), rtol=1e-12, atol=1e-12)


# ---- indexing ----------------------------------------------------------------------------------------

def _positive_steps(idx):
    parts = idx if isinstance(idx, tuple) else (idx,)
    return all(not (isinstance(p, slice) and p.step is not None and p.step < 0) for p in parts)


@st.composite
def basic_index_cases(draw):
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=5))
    idx = draw(hnp.basic_indices(shape, allow_newaxis=True, allow_ellipsis=True).filter(_positive_steps))
    return shape, idx


def _check_getitem(shape, np_key, dt_key, seed=0, noncontiguous=False):
    rng = np.random.default_rng(seed)
    a0 = rng.standard_normal(shape)
    if noncontiguous:  # index a transposed (non-contiguous) view of a leaf
        leaf = dt.tensor(np.ascontiguousarray(a0.T), requires_grad=True)
        a = leaf.T
    else:
        leaf = a = dt.tensor(a0, requires_grad=True)
    want = a0[np_key]
    got = a[dt_key]
    assert tuple(got.shape) == want.shape
    np.testing.assert_array_equal(_np(got), want)
    g0 = rng.standard_normal(want.shape)
    got.backward(dt.tensor(g0))
    ref = np.zeros(shape)
    np.add.at(ref, np_key, g0)  # scatter-add: repeated indices accumulate
    grad = _np(leaf.grad).T if noncontiguous else _np(leaf.grad)
    assert grad.shape == shape
    np.testing.assert_allclose(grad, ref, rtol=1e-12, atol=1e-12)


@SETTINGS
@given(case=basic_index_cases(), noncontiguous=st.booleans())
def test_basic_indexing_values_and_gradients(case, noncontiguous):
    shape, idx = case
    _check_getitem(shape, idx, idx, noncontiguous=noncontiguous)


@SETTINGS
@given(case=basic_index_cases())
def test_basic_indexing_is_a_view(case):
    shape, idx = case
    a0 = np.random.default_rng(0).standard_normal(shape)
    a = dt.tensor(a0)
    v = a[idx]
    assume(v.numel() > 0)
    v.mul_(0)  # writing through a basic-index view reaches the base, as in PyTorch/numpy
    ref = a0.copy()
    ref[idx] *= 0
    np.testing.assert_array_equal(_np(a), ref)
    assert a._version == v._version == 1


@st.composite
def advanced_index_cases(draw):
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=5))
    kind = draw(st.sampled_from(["int_arrays", "bool_mask", "mixed", "list"]))
    if kind == "int_arrays":
        idx = draw(hnp.integer_array_indices(shape, result_shape=hnp.array_shapes(min_dims=0, max_dims=2, max_side=4)))
        np_key, dt_key = idx, tuple(dt.tensor(i.astype(np.int64)) for i in idx)
    elif kind == "bool_mask":
        k = draw(st.integers(1, len(shape)))
        mask = draw(hnp.arrays(np.bool_, shape[:k]))
        np_key, dt_key = mask, dt.tensor(mask)
    elif kind == "mixed":
        # a slice (with a step), an integer array with repeats, then Ellipsis / None
        ax = draw(st.integers(0, len(shape) - 1))
        arr = draw(hnp.arrays(np.int64, draw(st.integers(1, 6)), elements=st.integers(-shape[ax], shape[ax] - 1)))
        pre = tuple(slice(None, None, draw(st.integers(1, 2))) for _ in range(ax))
        tail = draw(st.sampled_from([(), (Ellipsis,), (None,)]))
        np_key = pre + (arr,) + tail
        dt_key = pre + (dt.tensor(arr),) + tail
    else:
        n = shape[0]
        lst = draw(st.lists(st.integers(-n, n - 1), min_size=1, max_size=6))
        np_key, dt_key = np.array(lst), lst
    return shape, np_key, dt_key


@SETTINGS
@given(case=advanced_index_cases(), noncontiguous=st.booleans())
def test_advanced_indexing_values_and_scatter_add_gradients(case, noncontiguous):
    shape, np_key, dt_key = case
    _check_getitem(shape, np_key, dt_key, noncontiguous=noncontiguous)


@SETTINGS
@given(n=st.integers(1, 5), reps=st.lists(st.integers(0, 4), min_size=1, max_size=8))
def test_repeated_indices_accumulate_gradients(n, reps):
    idx = [r % n for r in reps]
    a = dt.tensor(np.arange(n, dtype=np.float64), requires_grad=True)
    (a[dt.tensor(idx)] * 2).sum().backward()
    ref = np.zeros(n)
    np.add.at(ref, np.array(idx), 2.0)
    np.testing.assert_array_equal(_np(a.grad), ref)


# ---- __setitem__ ---------------------------------------------------------------------------------------

@st.composite
def setitem_cases(draw):
    kind = draw(st.sampled_from(["basic", "int_array", "bool_mask"]))
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=int(kind == "int_array"), max_side=4))
    if kind == "basic":
        np_key = draw(hnp.basic_indices(shape, allow_newaxis=False, allow_ellipsis=True).filter(_positive_steps))
        dt_key = np_key
    elif kind == "int_array":
        ax0 = draw(hnp.arrays(np.int64, draw(st.integers(1, shape[0])), elements=st.integers(0, shape[0] - 1),
                              unique=True))
        np_key, dt_key = ax0, dt.tensor(ax0)
    else:
        mask = draw(hnp.arrays(np.bool_, shape))
        np_key, dt_key = mask, dt.tensor(mask)
    target_shape = np.zeros(shape)[np_key].shape
    # the value: a scalar, or an array broadcastable to the target
    vshape = draw(st.sampled_from([None, target_shape, target_shape[1:] if target_shape else ()]))
    return shape, np_key, dt_key, vshape


@SETTINGS
@given(case=setitem_cases(), seed=st.integers(0, 1000))
def test_setitem_matches_numpy(case, seed):
    shape, np_key, dt_key, vshape = case
    rng = np.random.default_rng(seed)
    a0 = rng.standard_normal(shape)
    v0 = 2.5 if vshape is None else rng.standard_normal(vshape)
    ref = a0.copy()
    ref[np_key] = v0
    a = dt.tensor(a0)
    a[dt_key] = v0 if vshape is None else dt.tensor(v0)
    np.testing.assert_array_equal(_np(a), ref)
    assert a._version == 1
    # integer tensors take Python values and cast tensor values to their dtype
    i = dt.tensor(np.zeros(shape, dtype=np.int64))
    i[dt_key] = 7
    ri = np.zeros(shape, dtype=np.int64)
    ri[np_key] = 7
    np.testing.assert_array_equal(_np(i), ri)


@SETTINGS
@given(case=setitem_cases(), seed=st.integers(0, 1000))
def test_setitem_gradients(case, seed):
    shape, np_key, dt_key, vshape = case
    rng = np.random.default_rng(seed)
    a0 = rng.standard_normal(shape)
    target_shape = a0[np_key].shape
    vshape = target_shape if vshape is None else vshape
    v0 = rng.standard_normal(vshape)
    base = dt.tensor(a0, requires_grad=True)
    val = dt.tensor(v0, requires_grad=True)
    x = base * 1
    x[dt_key] = val
    g0 = rng.standard_normal(shape)
    (x * dt.tensor(g0)).sum().backward()
    # base: gradient everywhere except where it was overwritten
    written = np.zeros(shape, dtype=bool)
    written[np_key] = True
    np.testing.assert_allclose(_np(base.grad), np.where(written, 0.0, g0))
    # value: the upstream gradient at the written positions, summed over broadcast dims
    np.testing.assert_allclose(_np(val.grad), _unbroadcast(g0[np_key], vshape), rtol=1e-12, atol=1e-12)


def test_hypothesis_module_runs_with_few_examples():
    assert SETTINGS.max_examples <= 40 and SETTINGS.deadline is None
