"""Normalisation, channel dropout, activations, Bilinear, EmbeddingBag and nn.init's remaining
initialisers against PyTorch from the same state_dict: outputs, buffers (running statistics) and the
gradients of the input and every parameter (float32 1e-4); float64 gradcheck of the activation
composites; the dropout layers' statistics and seeding."""
from __future__ import annotations

import numpy as np
import pytest

import devtensor as dt
from devtensor import nn
from devtensor.autograd import gradcheck
from devtensor.nn import functional as F
from devtensor.nn import init

torch = pytest.importorskip("torch")
TF = torch.nn.functional
TOL = dict(rtol=1e-4, atol=2e-5)


def _np(t):
    return np.asarray(t.detach().cpu()._data)


def _x(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _pair(name, *args, **kwargs):
    torch.manual_seed(0)
    return getattr(nn, name)(*args, **kwargs), getattr(torch.nn, name)(*args, **kwargs)


def _compare(dm, tm, *xs, tol=TOL, repr_=True):
    if list(tm.state_dict()):
        res = dm.load_state_dict({k: dt.tensor(v.detach().numpy()) for k, v in tm.state_dict().items()})
        assert not res.missing_keys and not res.unexpected_keys
    dxs = [dt.tensor(x, requires_grad=x.dtype.kind == "f") for x in xs]
    txs = [torch.tensor(x, requires_grad=x.dtype.kind == "f") for x in xs]
    d, t = dm(*dxs), tm(*txs)
    assert tuple(d.shape) == tuple(t.shape)
    np.testing.assert_allclose(_np(d), t.detach().numpy(), **tol)
    w = np.random.default_rng(3).standard_normal(tuple(t.shape)).astype(np.float32)
    (d * dt.tensor(w)).sum().backward()
    (t * torch.tensor(w)).sum().backward()
    for a, b in zip(dxs, txs):
        if b.grad is not None:
            np.testing.assert_allclose(_np(a.grad), b.grad.numpy(), **tol)
    tp = dict(tm.named_parameters())
    for name, p in dm.named_parameters():
        if tp[name].grad is not None:
            np.testing.assert_allclose(_np(p.grad), tp[name].grad.numpy(), err_msg=name, **tol)
    for name, b in tm.named_buffers():
        np.testing.assert_allclose(_np(dict(dm.named_buffers())[name]), b.numpy(), err_msg=name, **tol)
    if repr_:
        assert repr(dm) == repr(tm)


# ---- normalisation ----------------------------------------------------------------------------------
@pytest.mark.parametrize("groups,affine", [(1, True), (2, True), (6, False), (3, True)])
def test_group_norm(groups, affine):
    dm, tm = _pair("GroupNorm", groups, 6, affine=affine)
    if affine:
        with torch.no_grad():
            tm.weight.normal_()
            tm.bias.normal_()
    _compare(dm, tm, _x(2, 6, 4, 5))
    _compare(*_pair("GroupNorm", groups, 6, affine=affine), _x(3, 6, 7, seed=1))


@pytest.mark.parametrize("cls,shape", [("InstanceNorm1d", (2, 3, 9)), ("InstanceNorm2d", (2, 3, 5, 4)),
                                       ("InstanceNorm2d", (3, 5, 4))])
@pytest.mark.parametrize("affine,track", [(False, False), (True, False), (True, True), (False, True)])
def test_instance_norm(cls, shape, affine, track):
    dm, tm = _pair(cls, 3, affine=affine, track_running_stats=track)
    if affine:
        with torch.no_grad():
            tm.weight.normal_()
            tm.bias.normal_()
    x = _x(*shape) * 2 + 1
    _compare(dm, tm, x)  # training: batch statistics, running ones updated
    if track:
        dm.eval()
        tm.eval()
        _compare(dm, tm, _x(*shape, seed=4), repr_=False)  # eval: the running statistics


def test_local_response_norm():
    _compare(*_pair("LocalResponseNorm", 3), _x(2, 6, 4, 5))
    _compare(*_pair("LocalResponseNorm", 2, alpha=1e-2, beta=0.5, k=2.0), _x(2, 5, 7))


# ---- channel dropout --------------------------------------------------------------------------------
@pytest.mark.parametrize("name,shape", [("Dropout1d", (8, 16, 5)), ("Dropout2d", (8, 16, 3, 4)),
                                        ("Dropout3d", (4, 16, 2, 3, 2))])
def test_channel_dropout_zeroes_whole_channels(name, shape):
    m = getattr(nn, name)(p=0.5)
    x = dt.ones(*shape)
    dt.manual_seed(0)
    y = _np(m(x))
    per_channel = y.reshape(shape[0], shape[1], -1)
    assert np.all((per_channel == 0).all(-1) | (per_channel == 2.0).all(-1))  # kept channels scaled by 1/(1-p)
    assert 0.3 < (per_channel[..., 0] == 0).mean() < 0.7
    dt.manual_seed(0)
    np.testing.assert_array_equal(_np(m(x)), y)
    m.eval()
    assert m(x) is x
    assert repr(m) == repr(getattr(torch.nn, name)(p=0.5))


def test_alpha_dropout_keeps_mean_and_variance():
    m = nn.AlphaDropout(0.2)
    x = dt.randn(200000)
    y = _np(m(x))
    assert abs(y.mean()) < 0.02 and abs(y.std() - 1) < 0.03
    m.eval()
    assert m(x) is x


# ---- activations ------------------------------------------------------------------------------------
ACTS = [("ELU", {}), ("ELU", {"alpha": 0.5}), ("SELU", {}), ("CELU", {"alpha": 2.0}), ("Softplus", {"beta": 2.0}),
        ("Softsign", {}), ("Hardtanh", {"min_val": -0.5, "max_val": 2.0}), ("ReLU6", {}), ("Hardsigmoid", {}),
        ("Hardswish", {}), ("Mish", {}), ("LogSigmoid", {}), ("Softmin", {"dim": 1}), ("Softmax2d", {}),
        ("Threshold", {"threshold": 0.1, "value": 20.0}), ("GLU", {}), ("GLU", {"dim": 1}), ("Tanhshrink", {}),
        ("Softshrink", {}), ("Hardshrink", {"lambd": 0.3}), ("RReLU", {})]


@pytest.mark.parametrize("name,kw", ACTS, ids=lambda v: str(v))
def test_activation_matches_torch(name, kw):
    dm, tm = _pair(name, **kw)
    dm.eval()
    tm.eval()  # RReLU: the mean slope
    x = _x(3, 4, 6, 2) * 3
    x.flat[:4] = [0.0, 3.0, -3.0, 1.0]  # the kinks, where PyTorch's backward picks a side
    _compare(dm, tm, x)


@pytest.mark.parametrize("num", [1, 4])
def test_prelu(num):
    dm, tm = _pair("PReLU", num)
    with torch.no_grad():
        tm.weight.uniform_(-1, 1)
    _compare(dm, tm, _x(2, 4, 3, 3))
    _compare(*_pair("PReLU", num), _x(5, 4, seed=1))


def test_inplace_activations_modify_their_input():
    x = dt.tensor([-2.0, -0.5, 0.5, 3.0])
    y = F.elu(x, inplace=True)
    assert y is x
    np.testing.assert_allclose(_np(x), TF.elu(torch.tensor([-2.0, -0.5, 0.5, 3.0])).numpy(), rtol=1e-6)
    h = nn.Hardtanh(inplace=True)
    z = dt.tensor([-3.0, 0.2, 4.0])
    assert h(z) is z
    np.testing.assert_allclose(_np(z), [-1.0, 0.2, 1.0], rtol=1e-6)
    r = nn.RReLU()
    dt.manual_seed(0)
    out = _np(r(dt.full((1000,), -1.0)))
    assert out.min() >= -1 / 3 - 1e-6 and out.max() <= -1 / 8 + 1e-6 and out.std() > 0.03


@pytest.mark.parametrize("fn", [F.elu, F.selu, F.celu, F.softsign, F.mish, F.hardswish, F.hardsigmoid, F.tanhshrink,
                                F.softshrink, F.hardshrink, lambda x: F.glu(x, 0), lambda x: F.softmin(x, 0)],
                         ids=lambda f: getattr(f, "__name__", "lambda"))
def test_activation_gradcheck_float64(fn):
    x = dt.tensor(np.random.default_rng(2).uniform(-4, 4, (4, 3)), requires_grad=True)
    assert gradcheck(fn, (x,))


# ---- Bilinear, EmbeddingBag ------------------------------------------------------------------------
def test_bilinear():
    dm, tm = _pair("Bilinear", 3, 4, 5)
    _compare(dm, tm, _x(6, 3), _x(6, 4, seed=1))
    dm, tm = _pair("Bilinear", 2, 3, 4, bias=False)
    _compare(dm, tm, _x(2, 5, 2), _x(2, 5, 3, seed=1))


EBAG = [
    (dict(mode="mean"), "offsets"), (dict(mode="sum"), "offsets"), (dict(mode="max"), "offsets"),
    (dict(mode="sum"), "weights"), (dict(mode="mean", include_last_offset=True), "offsets"),
    (dict(mode="mean", padding_idx=2), "offsets"), (dict(mode="sum"), "2d"), (dict(mode="max"), "2d"),
    (dict(mode="mean"), "empty-bag"),
]


@pytest.mark.parametrize("kw,case", EBAG, ids=lambda v: str(v))
def test_embedding_bag(kw, case):
    dm, tm = _pair("EmbeddingBag", 10, 3, **kw)
    res = dm.load_state_dict({k: dt.tensor(v.detach().numpy()) for k, v in tm.state_dict().items()})
    assert not res.missing_keys
    idx = np.array([1, 2, 4, 5, 4, 3, 2, 9], dtype=np.int64)
    args_d, args_t = [dt.tensor(idx)], [torch.tensor(idx)]
    if case == "2d":
        args_d, args_t = [dt.tensor(idx.reshape(2, 4))], [torch.tensor(idx.reshape(2, 4))]
    else:
        off = np.array([0, 3, 3, 6] if case == "empty-bag" else [0, 4], dtype=np.int64)
        if kw.get("include_last_offset"):
            off = np.array([0, 4, 8], dtype=np.int64)
        args_d.append(dt.tensor(off))
        args_t.append(torch.tensor(off))
    if case == "weights":
        w = _x(8)
        args_d.append(dt.tensor(w))
        args_t.append(torch.tensor(w))
    d, t = dm(*args_d), tm(*args_t)
    np.testing.assert_allclose(_np(d), t.detach().numpy(), **TOL)
    g = _x(*t.shape, seed=5)
    (d * dt.tensor(g)).sum().backward()
    (t * torch.tensor(g)).sum().backward()
    np.testing.assert_allclose(_np(dm.weight.grad), tm.weight.grad.numpy(), **TOL)
    assert repr(dm) == repr(tm)


# ---- nn.init ----------------------------------------------------------------------------------------
def test_init_orthogonal_sparse_dirac():
    w = dt.empty(6, 4)
    init.orthogonal_(w, gain=2.0)
    np.testing.assert_allclose(_np(w).T @ _np(w), 4 * np.eye(4), atol=1e-5)
    w = dt.empty(3, 2, 2)
    init.orthogonal_(w)
    m = _np(w).reshape(3, 4)
    np.testing.assert_allclose(m @ m.T, np.eye(3), atol=1e-5)
    s = dt.empty(10, 7)
    init.sparse_(s, 0.3, std=0.5)
    assert ((_np(s) == 0).sum(0) >= 3).all() and _np(s).std() > 0.1
    k = dt.empty(4, 4, 3, 3)
    init.dirac_(k)
    x = dt.randn(2, 4, 5, 5)
    np.testing.assert_allclose(_np(F.conv2d(x, k, padding=1)), _np(x), atol=1e-6)
    k2 = dt.empty(6, 3, 3)
    init.dirac_(k2, groups=2)
    tk = torch.empty(6, 3, 3)
    torch.nn.init.dirac_(tk, groups=2)
    np.testing.assert_array_equal(_np(k2), tk.numpy())
    for name in ("orthogonal_", "sparse_", "dirac_", "xavier_uniform_", "kaiming_normal_", "trunc_normal_", "eye_",
                 "calculate_gain"):
        assert hasattr(nn.init, name), name
