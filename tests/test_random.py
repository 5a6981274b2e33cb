"""Random numbers: devtensor.Generator, generator= on every draw, the sampling ops (multinomial, bernoulli,
normal, poisson), the in-place fills, logspace, the data utilities' generators and compiled steps that sample.

Values cannot match PyTorch's (other streams): reproducibility is checked against devtensor itself
(same seed, same bits; a Generator independent of the global stream), the distributions by statistics
with fixed seeds (a few sigma), and shapes, dtypes and errors against PyTorch where it is installed."""
from __future__ import annotations

import math
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import devtensor as dt
from devtensor.utils.data import (DataLoader, RandomSampler, SubsetRandomSampler, TensorDataset,
                                  WeightedRandomSampler, random_split)

ROOT = Path(__file__).resolve().parents[1]
try:
    import torch
except ImportError:  # the PyTorch comparisons skip; everything else runs
    torch = None
needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed")


def G(seed):
    return dt.Generator().manual_seed(seed)


def _within(count, n, p, sigmas=5.0):
    """count of n Bernoulli(p) trials is within `sigmas` standard deviations of n * p."""
    sd = math.sqrt(n * p * (1 - p))
    return abs(count - n * p) <= sigmas * max(sd, 1e-12)


# ---- the Generator object ------------------------------------------------------------------------
def test_generator_api_as_pytorch():
    g = dt.Generator()
    assert g.device == dt.device("cpu") and g.initial_seed() == 67280421310721  # PyTorch's default seed
    assert g.manual_seed(5) is g and g.initial_seed() == 5
    s = g.seed()
    assert isinstance(s, int) and g.initial_seed() == s
    assert dt.manual_seed(3) is dt.default_generator and dt.initial_seed() == 3
    assert dt.default_generator.initial_seed() == 3
    with pytest.raises(RuntimeError, match="meta"):
        dt.Generator("meta")


def test_same_seed_same_bits_for_every_draw():
    def draws(g):
        return [dt.rand(4, generator=g), dt.rand(3, dtype=dt.float64, generator=g), dt.randn(2, 3, generator=g),
                dt.rand_like(dt.empty(2), generator=g), dt.randn_like(dt.empty(2), generator=g),
                dt.randint(0, 100, (5,), generator=g), dt.randperm(9, generator=g),
                dt.multinomial(dt.tensor([0.2, 0.5, 0.3]), 4, True, generator=g),
                dt.bernoulli(dt.full((6,), 0.5), generator=g), dt.normal(dt.zeros(3), 1.0, generator=g),
                dt.normal(1.0, 2.0, (2,), generator=g), dt.poisson(dt.full((3,), 4.0), generator=g),
                dt.empty(4).uniform_(-1, 1, generator=g), dt.empty(4).normal_(generator=g),
                dt.empty(4).exponential_(generator=g), dt.empty(4).bernoulli_(0.3, generator=g),
                dt.empty(4).random_(10, generator=g)]

    a, b = draws(G(11)), draws(G(11))
    for x, y in zip(a, b):
        assert x.dtype == y.dtype and np.array_equal(x.numpy(), y.numpy())
    c = draws(G(12))
    assert not np.array_equal(a[0].numpy(), c[0].numpy())


def test_a_generator_neither_reads_nor_advances_the_global_stream():
    dt.manual_seed(0)
    first = dt.rand(5).numpy()
    dt.manual_seed(0)
    g = G(0)
    mine = dt.rand(5, generator=g).numpy()
    for f in (lambda: dt.randn(7, generator=g), lambda: dt.multinomial(dt.ones(4), 2, generator=g),
              lambda: dt.empty(3).normal_(generator=g), lambda: random_split(range(6), [3, 3], generator=g)):
        f()
    assert np.array_equal(dt.rand(5).numpy(), first)  # the global stream did not move
    assert np.array_equal(mine, first)  # the same seed: PCG64, as the global stream (values are not PyTorch's)


def test_state_round_trips_and_initial_seed_travels():
    g = G(21)
    dt.rand(3, generator=g)
    st = g.get_state()
    assert st.dtype == dt.uint8 and st.ndim == 1
    a = dt.randn(6, generator=g).numpy()
    g.manual_seed(99)
    g.set_state(st)
    assert np.array_equal(dt.randn(6, generator=g).numpy(), a) and g.initial_seed() == 21
    h = dt.Generator().set_state(st)  # another generator takes the stream up from there
    assert np.array_equal(dt.randn(6, generator=h).numpy(), a)
    dt.manual_seed(4)
    s = dt.get_rng_state()
    x = dt.rand(4).numpy()
    dt.rand(10)
    dt.set_rng_state(s)
    assert np.array_equal(dt.rand(4).numpy(), x) and dt.initial_seed() == 4
    assert np.array_equal(dt.default_generator.get_state().numpy(), dt.get_rng_state().numpy())
    # float32 draws use numpy's buffered 32-bit half: the state keeps it
    g.manual_seed(1)
    dt.rand(1, generator=g)
    st = g.get_state()
    a = dt.rand(3, generator=g).numpy()
    g.set_state(st)
    assert np.array_equal(dt.rand(3, generator=g).numpy(), a)


@needs_torch
def test_state_errors_are_pytorchs_classes():
    for bad, cls in ((dt.zeros(3), TypeError), ([1, 2], TypeError), (dt.zeros(3, dtype=dt.uint8), RuntimeError)):
        with pytest.raises(cls, match="set_state"):
            dt.Generator().set_state(bad)
        tbad = torch.zeros(3) if isinstance(bad, dt.Tensor) and bad.dtype != dt.uint8 else (
            torch.zeros(3, dtype=torch.uint8) if isinstance(bad, dt.Tensor) else bad)
        with pytest.raises(cls):
            torch.Generator().set_state(tbad)


@pytest.mark.parametrize("call", [
    lambda g: dt.rand(2, generator=g), lambda g: dt.randn(2, generator=g), lambda g: dt.randint(3, (2,), generator=g),
    lambda g: dt.rand_like(dt.ones(2), generator=g), lambda g: dt.randn_like(dt.ones(2), generator=g),
    lambda g: dt.randperm(3, generator=g), lambda g: dt.multinomial(dt.ones(2), 1, generator=g),
    lambda g: dt.bernoulli(dt.ones(2), generator=g), lambda g: dt.normal(dt.ones(2), 1.0, generator=g),
    lambda g: dt.poisson(dt.ones(2), generator=g), lambda g: dt.ones(2).uniform_(generator=g),
    lambda g: dt.ones(2).normal_(generator=g), lambda g: dt.ones(2).random_(generator=g),
    lambda g: dt.ones(2).bernoulli_(generator=g), lambda g: dt.ones(2).exponential_(generator=g),
    lambda g: random_split(range(4), [2, 2], generator=g), lambda g: DataLoader(range(3), generator=g),
    lambda g: RandomSampler(range(3), generator=g), lambda g: WeightedRandomSampler([1.0], 1, generator=g),
    lambda g: dt.nn.init.normal_(dt.empty(2), generator=g)])
def test_a_wrong_generator_type_is_a_type_error_naming_the_function(call):
    with pytest.raises(TypeError, match=r"generator must be"):
        call("not a generator")
    with pytest.raises(TypeError, match=r"generator must be"):
        call(2.5)


def test_generator_on_another_device_is_refused():
    g = dt.Generator()
    g.device = dt.device("cuda", 0)  # stands in for a cuda Generator on a machine without one
    for f in (lambda: dt.rand(2, generator=g), lambda: dt.multinomial(dt.ones(2), 1, generator=g),
              lambda: dt.ones(2).normal_(generator=g)):
        with pytest.raises(RuntimeError, match=r"expected a generator on cpu, got one on cuda:0"):
            f()
    if not dt.cuda.is_available():
        with pytest.raises(RuntimeError):
            dt.Generator("cuda")


# ---- multinomial ----------------------------------------------------------------------------------
def test_multinomial_frequencies_with_replacement():
    p = np.array([0.1, 0.2, 0.3, 0.4, 0.0])
    n = 20000
    s = dt.multinomial(dt.tensor(p * 3.0), n, replacement=True, generator=G(1)).numpy()  # unnormalised weights
    assert s.shape == (n,) and s.dtype == np.int64
    counts = np.bincount(s, minlength=5)
    assert counts[4] == 0
    assert all(_within(counts[i], n, p[i]) for i in range(4)), counts
    rows = dt.multinomial(dt.tensor([[0.0, 1.0, 0.0], [0.5, 0.0, 0.5]]), 1000, True, generator=G(2)).numpy()
    assert (rows[0] == 1).all() and set(np.unique(rows[1])) == {0, 2} and _within((rows[1] == 0).sum(), 1000, 0.5)


def test_multinomial_without_replacement_is_sequential_sampling():
    p = np.array([0.5, 0.3, 0.2, 0.0])
    rows = 20000
    s = dt.multinomial(dt.tensor(np.tile(p, (rows, 1))), 3, generator=G(3)).numpy()
    assert s.shape == (rows, 3)
    assert all(len(set(r)) == 3 for r in s[:500]) and not (s == 3).any()  # distinct, never a zero weight
    first = np.bincount(s[:, 0], minlength=4)
    assert all(_within(first[i], rows, p[i]) for i in range(3)), first
    # the second draw: P(j) = sum_i p_i p_j / (1 - p_i), the law of drawing one by one without replacement
    second = np.bincount(s[:, 1], minlength=4)
    exp2 = [sum(p[i] * p[j] / (1 - p[i]) for i in range(3) if i != j) for j in range(3)]
    assert all(_within(second[j], rows, exp2[j]) for j in range(3)), (second, exp2)
    perm = dt.multinomial(dt.ones(6), 6, generator=G(4)).numpy()
    assert sorted(perm.tolist()) == list(range(6))


@needs_torch
@pytest.mark.parametrize("args", [
    ([-1.0, 2.0], 1, False), ([math.inf, 2.0], 1, False), ([math.nan, 2.0], 1, False), ([0.0, 0.0], 1, False),
    ([[1.0, 1.0], [0.0, 0.0]], 1, True), ([0.0, 1.0, 0.0], 2, False), ([0.0, 1.0, 0.0], 0, True),
    ([0.0, 1.0, 0.0], -1, True), ([0.0, 1.0, 0.0], 4, False), ([[[1.0]]], 1, True), (1.0, 1, True),
    ([1, 2], 1, True), ([0.2, 0.8], 5, True), ([[0.2, 0.8], [1.0, 0.0]], 2, False), (np.ones(0), 1, True),
    (np.ones((2, 0)), 1, True), (np.ones((0, 0)), 1, True), (np.ones((0, 3)), 2, False)])
def test_multinomial_shapes_dtypes_and_errors_match_pytorch(args):
    data, k, repl = args
    try:
        ref = torch.multinomial(torch.tensor(data), k, repl)
    except Exception as e:  # noqa: BLE001 - PyTorch's class is what we compare
        with pytest.raises(type(e), match="multinomial"):
            dt.multinomial(dt.tensor(data), k, repl)
        return
    mine = dt.multinomial(dt.tensor(data), k, repl)
    assert tuple(mine.shape) == tuple(ref.shape) and mine.dtype == dt.int64
    assert dt.tensor(data).multinomial(k, repl).shape == mine.shape  # the method


def test_multinomial_error_messages_say_what_is_wrong():
    with pytest.raises(RuntimeError, match="`inf`, `nan` or element < 0"):
        dt.multinomial(dt.tensor([0.5, -0.1]), 1)
    with pytest.raises(RuntimeError, match=r"sum of probabilities <= 0"):
        dt.multinomial(dt.zeros(2, 3), 1, True)
    # more samples than positive weights, without replacement: PyTorch's cpu kernel returns zero-weight
    # categories after the positive ones (no error); here they come in index order
    assert dt.multinomial(dt.tensor([0.0, 1.0, 0.0]), 3).tolist() == [1, 0, 2]
    with pytest.raises(RuntimeError, match=r"n_sample <= 0"):
        dt.multinomial(dt.ones(3), 0)
    with pytest.raises(TypeError, match="num_samples must be an int"):
        dt.multinomial(dt.ones(3), 1.5)


# ---- bernoulli, normal, poisson -----------------------------------------------------------------------
def test_bernoulli_means_and_forms():
    p = dt.tensor([0.0, 0.25, 0.9, 1.0], dtype=dt.float64).expand(20000, 4).contiguous()
    b = dt.bernoulli(p, generator=G(5))
    assert b.dtype == dt.float64 and set(np.unique(b.numpy())) <= {0.0, 1.0}
    col = b.numpy().sum(0)
    assert col[0] == 0 and col[3] == 20000 and _within(col[1], 20000, 0.25) and _within(col[2], 20000, 0.9)
    s = dt.zeros(20000).bernoulli(0.3, generator=G(6))  # the Tensor method, scalar p
    assert s.dtype == dt.float32 and _within(s.sum().item(), 20000, 0.3)
    x = dt.full((3,), 0.5, requires_grad=True)
    y = dt.bernoulli(x)
    assert y.requires_grad  # as PyTorch; the gradient is zero
    y.sum().backward()
    assert np.array_equal(x.grad.numpy(), np.zeros(3, np.float32))


def test_normal_overloads_and_moments():
    z = dt.normal(2.0, 3.0, (40000,), generator=G(7)).numpy()
    assert z.dtype == np.float32 and abs(z.mean() - 2.0) < 5 * 3 / 200 and abs(z.std() - 3.0) < 0.05
    m = dt.tensor([[-5.0], [5.0]])
    s = dt.tensor([0.0, 1.0, 2.0])
    y = dt.normal(m, s, generator=G(8))
    assert tuple(y.shape) == (2, 3) and y.numpy()[0, 0] == -5.0 and y.numpy()[1, 0] == 5.0  # std 0: the mean
    assert dt.normal(1.0, dt.ones(4, dtype=dt.float64)).dtype == dt.float64
    assert dt.normal(0.0, 1.0, size=(2, 2), dtype=dt.float64).dtype == dt.float64
    big = dt.normal(dt.full((40000,), -1.0), 0.5, generator=G(9)).numpy()
    assert abs(big.mean() + 1.0) < 5 * 0.5 / 200 and abs(big.std() - 0.5) < 0.01


def test_poisson_means():
    r = dt.poisson(dt.tensor([0.0, 1.5, 30.0]).expand(20000, 3).contiguous(), generator=G(10)).numpy()
    assert r.dtype == np.float32 and (r[:, 0] == 0).all() and (r == np.round(r)).all()
    assert abs(r[:, 1].mean() - 1.5) < 5 * math.sqrt(1.5 / 20000) and abs(r[:, 2].mean() - 30) < 5 * math.sqrt(30 / 20000)


@needs_torch
@pytest.mark.parametrize("case", [
    lambda m: m.bernoulli(m.tensor([0.5, 1.5])), lambda m: m.bernoulli(m.tensor([1, 0])),
    lambda m: m.bernoulli(m.tensor([0.5, 1.0]), 0.3), lambda m: m.bernoulli(m.tensor([0.5, 1.0]), 1.3),
    lambda m: m.bernoulli(m.tensor([0.5], dtype=m.float64), p=0.3), lambda m: m.normal(m.zeros(3), -1.0),
    lambda m: m.normal(m.zeros(3), m.tensor([1.0, -1.0, 1.0])), lambda m: m.normal(0.0, 1.0, (2, 3)),
    lambda m: m.normal(0.0, -1.0, (2, 3)), lambda m: m.normal(m.zeros(2, 1), m.ones(3)),
    lambda m: m.normal(m.zeros(2), m.ones(3)), lambda m: m.normal(m.zeros(2, dtype=m.int64), 1.0),
    lambda m: m.normal(2.0, m.ones(3)), lambda m: m.normal(m.zeros(3, requires_grad=True), 1.0),
    lambda m: m.poisson(m.tensor([1.0, -1.0])), lambda m: m.poisson(m.tensor([1.0, 2.0])),
    lambda m: m.poisson(m.tensor([1, 2])), lambda m: m.zeros(3).random_(5, 2), lambda m: m.zeros(3).uniform_(2, 1),
    lambda m: m.zeros(3).normal_(0, -1), lambda m: m.zeros(3).exponential_(-1), lambda m: m.zeros(3).exponential_(0),
    lambda m: m.zeros(3).bernoulli_(1.5), lambda m: m.zeros(3).bernoulli_(m.tensor([0.5, 1.5, 0.0])),
    lambda m: m.zeros(3, dtype=m.int64).uniform_(), lambda m: m.zeros(3, dtype=m.int64).normal_(),
    lambda m: m.zeros(3, requires_grad=True).uniform_(), lambda m: m.zeros(3, dtype=m.int32).random_(2, 5),
    lambda m: m.zeros(3, dtype=m.int64).bernoulli_(0.5), lambda m: m.zeros(3, dtype=m.bool).bernoulli_(m.full((3,), 0.5)),
    lambda m: m.zeros(3, dtype=m.int32).exponential_(),
    lambda m: m.zeros(2, 2).random_(), lambda m: m.logspace(0, 2, -1), lambda m: m.logspace(0, 2, 3, dtype=m.int64)])
def test_shapes_dtypes_and_error_classes_match_pytorch(case):
    try:
        ref = case(torch)
    except Exception as e:  # noqa: BLE001
        with pytest.raises(type(e)):
            case(dt)
        return
    mine = case(dt)
    assert tuple(mine.shape) == tuple(ref.shape) and mine.dtype.name == str(ref.dtype).split(".")[1]
    assert mine.requires_grad == ref.requires_grad


# ---- in-place fills ---------------------------------------------------------------------------------------
def test_inplace_fills_ranges_and_moments():
    u = dt.empty(20000).uniform_(-2, 3, generator=G(11)).numpy()
    assert u.min() >= -2 and u.max() < 3 and abs(u.mean() - 0.5) < 5 * 5 / math.sqrt(12 * 20000)
    e = dt.empty(20000, dtype=dt.float64).exponential_(4.0, generator=G(12)).numpy()
    assert e.min() >= 0 and abs(e.mean() - 0.25) < 5 * 0.25 / math.sqrt(20000)
    r = dt.empty(20000).random_(3, 7, generator=G(13)).numpy()
    assert set(np.unique(r)) == {3.0, 4.0, 5.0, 6.0}
    assert set(np.unique(dt.empty(200, dtype=dt.bool).random_(generator=G(14)).numpy())) == {False, True}
    i8 = dt.empty(5000, dtype=dt.int8).random_(generator=G(15)).numpy()
    assert i8.min() >= 0 and i8.max() > 100  # [0, 127]
    f = dt.empty(5000).random_(generator=G(16)).numpy()
    assert f.min() >= 0 and f.max() <= 2 ** 24 and f.max() > 2 ** 23  # every value exact in float32
    b = dt.empty(20000).bernoulli_(dt.tensor([0.1, 0.8]).repeat(10000), generator=G(17)).numpy()
    assert _within(b[0::2].sum(), 10000, 0.1) and _within(b[1::2].sum(), 10000, 0.8)


def test_inplace_fills_write_in_place_and_follow_autograd_rules():
    x = dt.zeros(2, 3)
    view = x[0]
    assert view.normal_(generator=G(1)) is view and (x.numpy()[0] != 0).all() and (x.numpy()[1] == 0).all()
    leaf = dt.zeros(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="uniform_: a leaf Variable that requires grad"):
        leaf.uniform_()
    with dt.no_grad():
        leaf.uniform_()
    w = dt.ones(3, requires_grad=True)
    y = w * 2
    y.uniform_()  # overwritten: no gradient reaches w through y's old values
    (y.sum() + (w * 0).sum()).backward()
    assert np.array_equal(w.grad.numpy(), np.zeros(3, np.float32))


def test_logspace_matches_numpy_and_pytorch():
    np.testing.assert_allclose(dt.logspace(-2, 3, 6).numpy(), np.logspace(-2, 3, 6), rtol=1e-6)
    np.testing.assert_allclose(dt.logspace(0, 4, 5, base=2.0, dtype=dt.float64).numpy(), 2.0 ** np.arange(5))
    assert dt.logspace(0, 1, 0).shape == (0,) and dt.logspace(1, 1, 1).numpy()[0] == 10
    if torch is not None:
        for args, kw in (((0, 2, 3), {}), ((-1, 1, 5), {"base": 3.0}), ((0, 3, 4), {"dtype": "int64"})):
            kw_t = {k: getattr(torch, v) if k == "dtype" else v for k, v in kw.items()}
            kw_d = {k: getattr(dt, v) if k == "dtype" else v for k, v in kw.items()}
            np.testing.assert_allclose(dt.logspace(*args, **kw_d).numpy(), torch.logspace(*args, **kw_t).numpy(),
                                       rtol=1e-6)


# ---- the meta device ----------------------------------------------------------------------------------------
def test_meta_device_shapes_and_errors():
    p = dt.empty(7, 1000, device="meta")
    assert tuple(dt.multinomial(p, 5).shape) == (7, 5) and dt.multinomial(p, 5).dtype == dt.int64
    assert tuple(dt.bernoulli(p).shape) == (7, 1000) and dt.bernoulli(p).device.type == "meta"
    assert tuple(dt.normal(p, dt.empty(1000, device="meta")).shape) == (7, 1000)
    assert tuple(dt.normal(0.0, 1.0, (3, 4), device="meta").shape) == (3, 4)
    assert tuple(dt.rand(10 ** 6, 10 ** 6, device="meta", generator=G(0)).shape) == (10 ** 6, 10 ** 6)
    with pytest.raises(RuntimeError, match="without replacement"):
        dt.multinomial(p, 1001)
    with pytest.raises(RuntimeError, match="1 or 2 dim"):
        dt.multinomial(dt.empty(2, 2, 2, device="meta"), 1)


# ---- reproducibility across processes ---------------------------------------------------------------------
_SCRIPT = ("import hashlib, devtensor as dt; g = dt.Generator().manual_seed(42); dt.manual_seed(42); "
           "xs = [dt.rand(50, generator=g), dt.randn(50), dt.multinomial(dt.arange(1.0, 9.0), 20, True, generator=g), "
           "dt.bernoulli(dt.full((30,), 0.4)), dt.normal(dt.zeros(9), 2.0, generator=g)]; "
           "print(hashlib.sha256(b''.join(x.numpy().tobytes() for x in xs)).hexdigest())")


def test_same_seed_same_bits_run_after_run():
    env_path = str(ROOT)
    outs = {subprocess.run([sys.executable, "-c", _SCRIPT], capture_output=True, text=True, timeout=120, cwd=env_path,
                           env={"PYTHONPATH": env_path, "PATH": "/usr/bin:/bin"}).stdout.strip() for _ in range(2)}
    g = G(42)
    dt.manual_seed(42)
    xs = [dt.rand(50, generator=g), dt.randn(50), dt.multinomial(dt.arange(1.0, 9.0), 20, True, generator=g),
          dt.bernoulli(dt.full((30,), 0.4)), dt.normal(dt.zeros(9), 2.0, generator=g)]
    import hashlib

    here = hashlib.sha256(b"".join(x.numpy().tobytes() for x in xs)).hexdigest()
    assert outs == {here}


# ---- data utilities -------------------------------------------------------------------------------------
def test_random_split_and_loader_follow_pytorch_generator_semantics():
    g = G(0)
    a1, _ = random_split(range(20), [10, 10], generator=g)
    a2, _ = random_split(range(20), [10, 10], generator=g)
    assert list(a1) != list(a2)  # drawing advanced the generator
    h = G(0)
    assert list(random_split(range(20), [10, 10], generator=h)[0]) == list(a1)
    assert list(random_split(range(20), [10, 10], generator=h)[0]) == list(a2)

    ds = TensorDataset(dt.arange(30))

    def epochs(loader, n=3):
        return [[int(v) for b in loader for v in b[0].tolist()] for _ in range(n)]

    e1 = epochs(DataLoader(ds, batch_size=7, shuffle=True, generator=G(5)))
    e2 = epochs(DataLoader(ds, batch_size=7, shuffle=True, generator=G(5)))
    assert e1 == e2 and e1[0] != e1[1] and sorted(e1[0]) == list(range(30))
    assert epochs(DataLoader(ds, batch_size=7, shuffle=True, generator=5)) == e1  # an int seed: the same stream
    dt.manual_seed(3)
    d1 = epochs(DataLoader(ds, batch_size=7, shuffle=True), 1)
    dt.manual_seed(3)
    assert epochs(DataLoader(ds, batch_size=7, shuffle=True), 1) == d1  # generator=None: the default one


def test_samplers():
    assert list(RandomSampler(range(5), generator=G(1))) == list(RandomSampler(range(5), generator=G(1)))
    assert sorted(RandomSampler(range(5), generator=G(1))) == [0, 1, 2, 3, 4]
    long = list(RandomSampler(range(4), num_samples=10, generator=G(2)))
    assert len(long) == 10 and sorted(long[:4]) == [0, 1, 2, 3] and sorted(long[4:8]) == [0, 1, 2, 3]
    with_r = list(RandomSampler(range(3), replacement=True, num_samples=3000, generator=G(3)))
    assert all(_within(with_r.count(i), 3000, 1 / 3) for i in range(3))
    assert sorted(SubsetRandomSampler([10, 20, 30], generator=G(4))) == [10, 20, 30]
    w = WeightedRandomSampler([0.1, 0.0, 0.6, 0.3], 20000, generator=G(5))
    draws = np.array(list(w))
    assert len(w) == 20000 and (draws != 1).all()
    assert all(_within((draws == i).sum(), 20000, p) for i, p in ((0, 0.1), (2, 0.6), (3, 0.3)))
    assert list(w) != list(w)[:0] and sorted(WeightedRandomSampler([1, 1, 1], 3, replacement=False)) == [0, 1, 2]
    loader = DataLoader(TensorDataset(dt.arange(4)), batch_size=2, sampler=WeightedRandomSampler([0, 0, 1, 0], 4))
    assert [b[0].tolist() for b in loader] == [[2, 2], [2, 2]]


@needs_torch
@pytest.mark.parametrize("args", [([0.1, -1.0], 2, True), ([0.1, 1.0], 3, False), ([0.1, 1.0], 0, True),
                                  ([[0.1, 1.0]], 1, True), ([0.1, 1.0], 1, 3), ([0.1, 1.0], 2.5, True)])
def test_weighted_sampler_errors_match_pytorch(args):
    w, n, r = args
    try:
        list(torch.utils.data.WeightedRandomSampler(w, n, r))
    except Exception as e:  # noqa: BLE001
        with pytest.raises(type(e)):
            list(WeightedRandomSampler(w, n, r))
        return
    assert len(list(WeightedRandomSampler(w, n, r))) == n


def test_nn_init_honours_its_generator():
    dt.manual_seed(0)
    before = dt.get_rng_state()
    a = dt.nn.init.kaiming_uniform_(dt.empty(4, 5), generator=G(1))
    b = dt.nn.init.kaiming_uniform_(dt.empty(4, 5), generator=G(1))
    assert np.array_equal(a.numpy(), b.numpy())
    assert np.array_equal(dt.get_rng_state().numpy(), before.numpy())


# ---- graph capture and dt.compile ---------------------------------------------------------------------------
def _sampling_step(x, g):
    p = (x * 2).softmax(-1)
    return (dt.multinomial(p, 2, generator=g), dt.bernoulli(p, generator=g), dt.normal(x, 1.0, generator=g),
            dt.rand(3, generator=g), dt.multinomial(p, 4, True))


@pytest.mark.parametrize("dynamic", [False, True])
def test_a_compiled_step_that_samples_replays_eagers_draws(dynamic):
    x = dt.randn(4, 5, generator=G(0))
    g1, g2 = G(7), G(7)
    step = dt.compile(lambda x: _sampling_step(x, g1), dynamic=dynamic)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no fallback: the draws are ops of the graph
        dt.manual_seed(1)
        got = [step(x) for _ in range(4)]
    dt.manual_seed(1)
    want = [_sampling_step(x, g2) for _ in range(4)]
    for a, b in zip(got, want):
        for u, v in zip(a, b):
            assert np.array_equal(u.numpy(), v.numpy())
    assert not np.array_equal(got[2][3].numpy(), got[3][3].numpy())  # a fresh draw on every replay
    ops = [n.op for n in step.graph.nodes] if hasattr(step.graph, "nodes") else str(step.graph)
    assert "multinomial" in ops and "bernoulli" in ops and "normal" in ops


def test_cuda_rng_state_functions_say_why_they_cannot():
    for f in (dt.cuda.get_rng_state, lambda: dt.cuda.set_rng_state(dt.get_rng_state())):
        with pytest.raises(RuntimeError, match="cannot export or restore its state; reseed"):
            f()


def test_a_generator_passed_to_a_compiled_function_is_guarded_by_identity():
    def f(x, g):
        return x + dt.rand(3, generator=g)

    cf, x = dt.compile(f), dt.zeros(3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = [cf(x, g) for g in [G(1)] for _ in range(3)] + [cf(x, g) for g in [G(2)] for _ in range(2)]
    want = [f(x, g) for g in [G(1)] for _ in range(3)] + [f(x, g) for g in [G(2)] for _ in range(2)]
    assert all(np.array_equal(a.numpy(), b.numpy()) for a, b in zip(got, want))  # another generator: captured again
