"""devtensor.nn: layers, losses, init and Module mechanics.

Tests that compare with PyTorch (same weights in both, then forward outputs and gradients) skip
where torch is not installed; the rest are self-contained."""
from __future__ import annotations

import copy
import math

import numpy as np
import pytest

import devtensor as dt
from devtensor import nn
from devtensor.nn import functional as F
from devtensor.nn import init


def _torch():
    return pytest.importorskip("torch")


def _np(t):
    return np.asarray(t.detach()._data)


# ---- helpers for the torch comparisons -------------------------------------------------------

def _sync_weights(mod, tmod):
    """Copy torch's parameters and buffers into the devtensor module (same state_dict keys)."""
    sd = {k: dt.tensor(v.detach().numpy()) for k, v in tmod.state_dict().items()}
    res = mod.load_state_dict(sd)
    assert not res.missing_keys and not res.unexpected_keys


def _compare_module(mod, tmod, x_np, *, grad_input=True, int_input=False, atol=1e-10, rtol=1e-8):
    torch = _torch()
    mod.double()
    tmod.double()
    _sync_weights(mod, tmod)
    if int_input:
        x, tx = dt.tensor(x_np), torch.tensor(x_np)
    else:
        x = dt.tensor(x_np, dtype=dt.float64, requires_grad=grad_input)
        tx = torch.tensor(x_np, dtype=torch.float64, requires_grad=grad_input)
    y, ty = mod(x), tmod(tx)
    np.testing.assert_allclose(_np(y), ty.detach().numpy(), rtol=rtol, atol=atol)
    w = np.random.default_rng(5).standard_normal(tuple(ty.shape))
    (y * dt.tensor(w)).sum().backward()
    (ty * torch.tensor(w)).sum().backward()
    if grad_input and not int_input:
        np.testing.assert_allclose(_np(x.grad), tx.grad.numpy(), rtol=rtol, atol=atol)
    tgrads = dict(tmod.named_parameters())
    for name, p in mod.named_parameters():
        tp = tgrads[name]
        if tp.grad is None:
            assert p.grad is None or not np.any(_np(p.grad)), name
        else:
            np.testing.assert_allclose(_np(p.grad), tp.grad.numpy(), rtol=rtol, atol=atol, err_msg=name)
    for name, b in mod.named_buffers():
        np.testing.assert_allclose(_np(b), dict(tmod.named_buffers())[name].numpy(), rtol=rtol, atol=atol,
                                   err_msg=name)
    return y


_RNG = np.random.default_rng(0)
_IMG = _RNG.standard_normal((2, 4, 9, 8))


LAYERS = [
    ("Linear", lambda m: m.Linear(6, 5), (3, 6)),
    ("Linear-nobias", lambda m: m.Linear(6, 5, bias=False), (2, 3, 6)),
    ("Conv2d", lambda m: m.Conv2d(4, 6, 3), _IMG.shape),
    ("Conv2d-stride-pad", lambda m: m.Conv2d(4, 6, (3, 2), stride=(2, 1), padding=(1, 2), bias=False), _IMG.shape),
    ("Conv2d-dilation-groups", lambda m: m.Conv2d(4, 6, 3, dilation=2, groups=2, padding=1), _IMG.shape),
    ("Conv2d-same", lambda m: m.Conv2d(4, 3, 3, padding="same"), _IMG.shape),
    ("Conv2d-same-even", lambda m: m.Conv2d(4, 3, (4, 2), padding="same"), _IMG.shape),
    ("Conv2d-valid", lambda m: m.Conv2d(4, 3, 5, padding="valid"), _IMG.shape),
    ("MaxPool2d", lambda m: m.MaxPool2d(2), _IMG.shape),
    ("MaxPool2d-opts", lambda m: m.MaxPool2d(3, stride=2, padding=1, ceil_mode=True), _IMG.shape),
    ("AvgPool2d", lambda m: m.AvgPool2d(2), _IMG.shape),
    ("AvgPool2d-opts", lambda m: m.AvgPool2d(3, stride=2, padding=1, count_include_pad=False), _IMG.shape),
    ("ReLU", lambda m: m.ReLU(), (3, 7)),
    ("LeakyReLU", lambda m: m.LeakyReLU(0.2), (3, 7)),
    ("GELU", lambda m: m.GELU(), (3, 7)),
    ("GELU-tanh", lambda m: m.GELU(approximate="tanh"), (3, 7)),
    ("SiLU", lambda m: m.SiLU(), (3, 7)),
    ("Sigmoid", lambda m: m.Sigmoid(), (3, 7)),
    ("Tanh", lambda m: m.Tanh(), (3, 7)),
    ("Softmax", lambda m: m.Softmax(dim=1), (3, 7)),
    ("LogSoftmax", lambda m: m.LogSoftmax(dim=-1), (2, 3, 7)),
    ("Flatten", lambda m: m.Flatten(), _IMG.shape),
    ("Unflatten", lambda m: m.Unflatten(1, (2, 3)), (4, 6)),
    ("Identity", lambda m: m.Identity(), (3, 7)),
    ("Dropout-eval", lambda m: m.Dropout(0.5).eval(), (3, 7)),
    ("BatchNorm1d", lambda m: m.BatchNorm1d(5), (8, 5)),
    ("BatchNorm1d-3d", lambda m: m.BatchNorm1d(5, momentum=0.3), (4, 5, 3)),
    ("BatchNorm1d-cumulative", lambda m: m.BatchNorm1d(5, momentum=None), (8, 5)),
    ("BatchNorm2d", lambda m: m.BatchNorm2d(4), _IMG.shape),
    ("BatchNorm2d-noaffine", lambda m: m.BatchNorm2d(4, affine=False), _IMG.shape),
    ("BatchNorm2d-nostats", lambda m: m.BatchNorm2d(4, track_running_stats=False).eval(), _IMG.shape),
    ("BatchNorm2d-eval", lambda m: m.BatchNorm2d(4).eval(), _IMG.shape),
    ("LayerNorm", lambda m: m.LayerNorm(7), (3, 7)),
    ("LayerNorm-2d", lambda m: m.LayerNorm((4, 7), elementwise_affine=True), (2, 4, 7)),
    ("LayerNorm-noaffine", lambda m: m.LayerNorm(7, elementwise_affine=False), (3, 7)),
    ("Sequential", lambda m: m.Sequential(m.Linear(7, 4), m.Tanh(), m.Linear(4, 2)), (5, 7)),
]


@pytest.mark.filterwarnings("ignore:Using padding=.same. with even kernel")
@pytest.mark.parametrize("name,make,shape", LAYERS, ids=[n for n, _, _ in LAYERS])
def test_layer_matches_torch(name, make, shape):
    torch = _torch()
    mod, tmod = make(nn), make(torch.nn)
    x = np.random.default_rng(1).standard_normal(shape)
    _compare_module(mod, tmod, x)
    if isinstance(mod, nn.BatchNorm2d) and mod.training and mod.track_running_stats:
        # a second training batch, then eval: running statistics are used
        _compare_module(mod, tmod, x * 2 + 1)
        mod.eval(), tmod.eval()
        _compare_module(mod, tmod, x)


def test_embedding_matches_torch():
    torch = _torch()
    mod, tmod = nn.Embedding(10, 4, padding_idx=2), torch.nn.Embedding(10, 4, padding_idx=2)
    idx = np.array([[1, 2, 3], [2, 9, 1]])
    _compare_module(mod, tmod, idx, int_input=True)
    assert not np.any(_np(mod.weight.grad)[2])


def test_state_dict_keys_and_repr_match_torch():
    torch = _torch()

    def cnn(m):
        return m.Sequential(m.Conv2d(1, 32, 3, 1), m.ReLU(), m.Conv2d(32, 64, 3, 1, padding="same", bias=False),
                            m.BatchNorm2d(64), m.MaxPool2d(2), m.Dropout(0.25), m.Flatten(), m.Linear(9216, 128),
                            m.GELU(), m.LayerNorm(128), m.Embedding(5, 3, padding_idx=0), m.LogSoftmax(dim=1))

    mod, tmod = cnn(nn), cnn(torch.nn)
    assert list(mod.state_dict()) == list(tmod.state_dict())
    assert [n for n, _ in mod.named_parameters()] == [n for n, _ in tmod.named_parameters()]
    assert repr(mod) == repr(tmod)
    assert repr(nn.Conv2d(3, 8, 3, stride=2, padding=1, dilation=2, groups=1)) == \
        repr(torch.nn.Conv2d(3, 8, 3, stride=2, padding=1, dilation=2, groups=1))
    assert repr(nn.Softmax(dim=1)) == repr(torch.nn.Softmax(dim=1))


LOSSES = [
    ("MSELoss", lambda m: m.MSELoss(), "float"),
    ("MSELoss-sum", lambda m: m.MSELoss(reduction="sum"), "float"),
    ("L1Loss-none", lambda m: m.L1Loss(reduction="none"), "float"),
    ("L1Loss", lambda m: m.L1Loss(), "float"),
    ("CrossEntropyLoss", lambda m: m.CrossEntropyLoss(), "index"),
    ("CrossEntropyLoss-sum", lambda m: m.CrossEntropyLoss(reduction="sum"), "index"),
    ("CrossEntropyLoss-none-ignore", lambda m: m.CrossEntropyLoss(reduction="none", ignore_index=1), "index"),
    ("CrossEntropyLoss-ignore", lambda m: m.CrossEntropyLoss(ignore_index=1), "index"),
    ("CrossEntropyLoss-smooth", lambda m: m.CrossEntropyLoss(label_smoothing=0.1), "index"),
    ("CrossEntropyLoss-weight", lambda m, w=None: m.CrossEntropyLoss(weight=w), "index-weight"),
    ("CrossEntropyLoss-weight-smooth-ignore", lambda m, w=None: m.CrossEntropyLoss(
        weight=w, label_smoothing=0.2, ignore_index=0), "index-weight"),
    ("CrossEntropyLoss-probs", lambda m: m.CrossEntropyLoss(label_smoothing=0.1), "probs"),
    ("CrossEntropyLoss-4d", lambda m: m.CrossEntropyLoss(), "index-4d"),
    ("NLLLoss", lambda m: m.NLLLoss(), "index"),
    ("NLLLoss-weight-ignore", lambda m, w=None: m.NLLLoss(weight=w, ignore_index=2), "index-weight"),
    ("BCELoss", lambda m: m.BCELoss(), "prob"),
    ("BCELoss-weight", lambda m, w=None: m.BCELoss(weight=w, reduction="sum"), "prob-weight"),
    ("BCEWithLogitsLoss", lambda m: m.BCEWithLogitsLoss(), "binary"),
    ("BCEWithLogitsLoss-pos-weight", lambda m, w=None: m.BCEWithLogitsLoss(pos_weight=w), "binary-weight"),
]


@pytest.mark.parametrize("name,make,kind", LOSSES, ids=[n for n, _, _ in LOSSES])
def test_loss_matches_torch(name, make, kind):
    torch = _torch()
    r = np.random.default_rng(3)
    n, c = 6, 4
    shape = (n, c, 3, 2) if kind == "index-4d" else (n, c)
    x = r.standard_normal(shape)
    if kind.startswith("index"):
        t = r.integers(0, c, (n, 3, 2) if kind == "index-4d" else n)
        t[0] = 1
    elif kind == "probs":
        t = r.random(shape)
        t = t / t.sum(1, keepdims=True)
    elif kind.startswith("prob"):
        x = 1 / (1 + np.exp(-x))
        t = r.random(shape)
    elif kind.startswith("binary"):
        t = (r.random(shape) > 0.5).astype(np.float64)
    else:
        t = r.standard_normal(shape)
    if kind.endswith("weight"):
        w = r.random(c) + 0.5
        mod, tmod = make(nn, dt.tensor(w)), make(torch.nn, torch.tensor(w))
    else:
        mod, tmod = make(nn), make(torch.nn)
    xd = dt.tensor(x, requires_grad=True)
    xt = torch.tensor(x, requires_grad=True)
    td = dt.tensor(t)
    tt = torch.tensor(t)
    out, tout = mod(xd, td), tmod(xt, tt)
    np.testing.assert_allclose(_np(out), tout.detach().numpy(), rtol=1e-9, atol=1e-12)
    out.sum().backward()
    tout.sum().backward()
    np.testing.assert_allclose(_np(xd.grad), xt.grad.numpy(), rtol=1e-9, atol=1e-12)


def test_init_helpers_match_torch():
    torch = _torch()
    for shape in [(5, 3), (8, 4, 3, 3), (2, 6, 5)]:
        assert init._calculate_fan_in_and_fan_out(dt.empty(shape)) == \
            torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(shape))
    for nl, p in [("linear", None), ("relu", None), ("tanh", None), ("leaky_relu", None), ("leaky_relu", 0.2),
                  ("leaky_relu", math.sqrt(5)), ("selu", None), ("sigmoid", None), ("conv2d", None)]:
        assert init.calculate_gain(nl, p) == pytest.approx(torch.nn.init.calculate_gain(nl, p))


def test_clip_grad_norm_matches_torch():
    torch = _torch()
    r = np.random.default_rng(4)
    gs = [r.standard_normal((3, 4)) * 3, r.standard_normal(5)]
    for norm_type in (2.0, 1.0, math.inf):
        ps = [nn.Parameter(dt.zeros(g.shape, dtype=dt.float64)) for g in gs]
        tps = [torch.nn.Parameter(torch.zeros(g.shape, dtype=torch.float64)) for g in gs]
        for p, tp, g in zip(ps, tps, gs):
            p.grad, tp.grad = dt.tensor(g), torch.tensor(g)
        total = nn.utils.clip_grad_norm_(ps, 1.5, norm_type)
        ttotal = torch.nn.utils.clip_grad_norm_(tps, 1.5, norm_type)
        assert total.item() == pytest.approx(ttotal.item())
        for p, tp in zip(ps, tps):
            np.testing.assert_allclose(_np(p.grad), tp.grad.numpy(), rtol=1e-12)


# ---- Parameter -------------------------------------------------------------------------------

def test_parameter_is_a_leaf_tensor_that_requires_grad():
    p = nn.Parameter(dt.ones(2, 3))
    assert isinstance(p, nn.Parameter) and isinstance(p, dt.Tensor)
    assert p.requires_grad and p.is_leaf and p.grad_fn is None
    assert repr(p).startswith("Parameter containing:\ntensor(") and str(p) == repr(p)
    assert not nn.Parameter(dt.ones(2), requires_grad=False).requires_grad
    with pytest.raises(RuntimeError, match="floating point"):
        nn.Parameter(dt.tensor([1, 2]))


def test_gradient_reaches_a_parameter_that_is_the_only_input_requiring_grad():
    p = nn.Parameter(dt.tensor([1.0, 2.0, 3.0]))
    y = (p * 2).sum()  # the Parameter is the only tensor that requires grad
    assert y.grad_fn is not None
    y.backward()
    assert _np(p.grad).tolist() == [2.0, 2.0, 2.0]
    q = nn.Parameter(dt.ones(2, 2))
    (dt.ones(3, 2) @ q).sum().backward()
    assert _np(q.grad).tolist() == [[3.0, 3.0], [3.0, 3.0]]


def test_deepcopy_and_pickle_keep_parameters():
    import pickle

    m = nn.Linear(3, 2)
    m2 = copy.deepcopy(m)
    m3 = pickle.loads(pickle.dumps(m))
    for other in (m2, m3):
        assert isinstance(other.weight, nn.Parameter) and other.weight is not m.weight
        np.testing.assert_array_equal(_np(other.weight), _np(m.weight))
        assert [n for n, _ in other.named_parameters()] == ["weight", "bias"]


# ---- init ------------------------------------------------------------------------------------

def test_init_bounds_and_statistics():
    dt.manual_seed(0)
    w = dt.empty(200, 100)
    init.kaiming_uniform_(w, a=math.sqrt(5))
    bound = 1 / math.sqrt(100)  # gain sqrt(2/6) * sqrt(3/fan_in)
    a = _np(w)
    assert a.min() >= -bound and a.max() <= bound and a.max() > 0.95 * bound
    init.kaiming_uniform_(w, nonlinearity="relu")
    assert np.abs(_np(w)).max() <= math.sqrt(6 / 100)
    init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu")
    assert _np(w).std() == pytest.approx(math.sqrt(2 / 200), rel=0.05)
    init.xavier_uniform_(w, gain=2.0)
    xb = 2.0 * math.sqrt(6 / 300)
    assert np.abs(_np(w)).max() <= xb and np.abs(_np(w)).max() > 0.95 * xb
    init.xavier_normal_(w)
    assert _np(w).std() == pytest.approx(math.sqrt(2 / 300), rel=0.05)
    init.normal_(w, mean=3.0, std=0.5)
    assert _np(w).mean() == pytest.approx(3.0, abs=0.02) and _np(w).std() == pytest.approx(0.5, rel=0.05)
    init.uniform_(w, -2.0, -1.0)
    assert _np(w).min() >= -2.0 and _np(w).max() <= -1.0
    init.trunc_normal_(w, std=1.0, a=-0.5, b=0.5)
    assert np.abs(_np(w)).max() <= 0.5 and _np(w).std() == pytest.approx(0.28, abs=0.02)
    assert np.all(_np(init.zeros_(w)) == 0) and np.all(_np(init.ones_(w)) == 1)
    assert np.all(_np(init.constant_(w, 0.25)) == 0.25)
    assert np.all(_np(init.eye_(dt.empty(3, 4))) == np.eye(3, 4))


def test_init_errors_and_in_place_semantics():
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        init.xavier_uniform_(dt.empty(5))
    with pytest.raises(ValueError, match="Mode fan_avg not supported"):
        init.kaiming_uniform_(dt.empty(3, 3), mode="fan_avg")
    with pytest.raises(ValueError, match="Unsupported nonlinearity"):
        init.calculate_gain("swish")
    p = nn.Parameter(dt.zeros(4, 4))
    view = p.detach()
    out = init.normal_(p)
    assert out is p and p.is_leaf and p.grad_fn is None and p.requires_grad
    np.testing.assert_array_equal(_np(view), _np(p))  # written in place: storage shared with the view


def test_default_initialisation_is_pytorchs_and_reproducible():
    dt.manual_seed(123)
    lin = nn.Linear(50, 20)
    bound = 1 / math.sqrt(50)
    assert np.abs(_np(lin.weight)).max() <= bound and np.abs(_np(lin.bias)).max() <= bound
    conv = nn.Conv2d(4, 8, 3)
    cb = 1 / math.sqrt(4 * 9)
    assert np.abs(_np(conv.weight)).max() <= cb and np.abs(_np(conv.bias)).max() <= cb
    bn, ln = nn.BatchNorm2d(3), nn.LayerNorm(6)
    assert _np(bn.weight).tolist() == [1.0] * 3 and _np(bn.bias).tolist() == [0.0] * 3
    assert _np(bn.running_var).tolist() == [1.0] * 3 and int(bn.num_batches_tracked.item()) == 0
    assert _np(ln.weight).tolist() == [1.0] * 6
    emb = nn.Embedding(100, 8, padding_idx=-1)
    assert emb.padding_idx == 99 and not np.any(_np(emb.weight)[99])
    assert _np(emb.weight)[:99].std() == pytest.approx(1.0, rel=0.15)
    dt.manual_seed(123)
    lin2 = nn.Linear(50, 20)
    np.testing.assert_array_equal(_np(lin.weight), _np(lin2.weight))
    np.testing.assert_array_equal(_np(lin.bias), _np(lin2.bias))


# ---- Module mechanics ------------------------------------------------------------------------

class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(4, 3)
        self.bn = nn.BatchNorm1d(3)
        self.block = nn.Sequential(nn.ReLU(), nn.Linear(3, 2))
        self.scale = nn.Parameter(dt.ones(1))
        self.register_buffer("counter", dt.zeros(1))
        self.register_buffer("scratch", dt.zeros(2), persistent=False)
        self.note = "plain attribute"

    def forward(self, x):
        return self.block(self.bn(self.fc1(x))) * self.scale


def test_registration_and_traversal():
    net = _Net()
    assert [n for n, _ in net.named_parameters()] == ["scale", "fc1.weight", "fc1.bias", "bn.weight", "bn.bias",
                                                      "block.1.weight", "block.1.bias"]
    assert [n for n, _ in net.named_buffers()] == ["counter", "scratch", "bn.running_mean", "bn.running_var",
                                                   "bn.num_batches_tracked"]
    assert list(net.state_dict()) == ["scale", "counter", "fc1.weight", "fc1.bias", "bn.weight", "bn.bias",
                                      "bn.running_mean", "bn.running_var", "bn.num_batches_tracked",
                                      "block.1.weight", "block.1.bias"]  # non-persistent 'scratch' left out
    assert [n for n, _ in net.named_children()] == ["fc1", "bn", "block"]
    assert [n for n, _ in net.named_modules()] == ["", "fc1", "bn", "block", "block.0", "block.1"]
    assert len(list(net.modules())) == 6 and len(list(net.children())) == 3
    assert len(list(net.parameters(recurse=False))) == 1
    assert net.get_submodule("block.1") is net.block[1] and net.get_parameter("fc1.bias") is net.fc1.bias
    assert net.note == "plain attribute" and "fc1" in dir(net)
    with pytest.raises(AttributeError, match="'_Net' object has no attribute 'nope'"):
        net.nope
    with pytest.raises(TypeError, match="cannot assign 'Tensor' as parameter 'scale'"):
        net.scale = dt.ones(1)
    with pytest.raises(KeyError, match="already exists"):
        net.register_buffer("fc1", dt.zeros(1))
    net.counter = dt.ones(1)  # assigning a tensor to a buffer name replaces the buffer
    assert _np(net.state_dict()["counter"]).tolist() == [1.0]
    del net.block
    assert "block.1.weight" not in net.state_dict()
    seen = []
    net.apply(lambda m: seen.append(type(m).__name__))
    assert seen == ["Linear", "BatchNorm1d", "_Net"]
    shared = nn.Linear(2, 2)
    tied = nn.Sequential(shared, shared)
    assert len(list(tied.parameters())) == 2  # a shared module's parameters are listed once


def test_forward_hooks_and_requires_grad_():
    lin = nn.Linear(3, 2)
    calls = []
    h1 = lin.register_forward_pre_hook(lambda m, args: calls.append("pre"))
    h2 = lin.register_forward_hook(lambda m, args, out: out * 0)
    out = lin(dt.ones(1, 3))
    assert calls == ["pre"] and not np.any(_np(out))
    h1.remove()
    h2.remove()
    assert np.any(_np(lin(dt.ones(1, 3))))
    lin.requires_grad_(False)
    assert not any(p.requires_grad for p in lin.parameters())


def test_train_eval_switch_dropout_and_batchnorm():
    net = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5), nn.BatchNorm1d(4))
    assert all(m.training for m in net.modules())
    assert net.eval() is net and not any(m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())
    with pytest.raises(ValueError, match="boolean"):
        net.train("no")

    drop = nn.Dropout(0.5)
    x = dt.ones(400)
    dt.manual_seed(0)
    y = _np(drop(x))
    assert set(np.unique(y).tolist()) == {0.0, 2.0} and 0.35 < (y == 0).mean() < 0.65
    drop.eval()
    np.testing.assert_array_equal(_np(drop(x)), _np(x))

    bn = nn.BatchNorm1d(2, momentum=0.5)
    xb = dt.tensor([[1.0, 10.0], [3.0, 20.0]])
    yb = _np(bn(xb))
    np.testing.assert_allclose(yb, [[-1.0, -1.0], [1.0, 1.0]], atol=1e-3)  # batch statistics
    np.testing.assert_allclose(_np(bn.running_mean), [1.0, 7.5])            # 0.5 * 0 + 0.5 * mean
    np.testing.assert_allclose(_np(bn.running_var), [1.5, 25.5])            # unbiased var 2 and 50
    assert int(bn.num_batches_tracked.item()) == 1
    bn.eval()
    ye = _np(bn(xb))
    np.testing.assert_allclose(ye, (np.array([[1.0, 10.0], [3.0, 20.0]]) - [1.0, 7.5]) / np.sqrt(
        np.array([1.5, 25.5]) + 1e-5), rtol=1e-5)
    assert int(bn.num_batches_tracked.item()) == 1  # eval leaves the statistics alone
    with pytest.raises(ValueError, match="expected 4D input"):
        nn.BatchNorm2d(2)(dt.ones(2, 2))
    with pytest.raises(ValueError, match="3 channels"):
        nn.BatchNorm1d(3)(dt.ones(4, 2))


def test_zero_grad_set_to_none():
    lin = nn.Linear(3, 2)
    lin(dt.ones(1, 3)).sum().backward()
    assert lin.weight.grad is not None
    g = lin.weight.grad
    lin.zero_grad(set_to_none=False)
    assert lin.weight.grad is g and not np.any(_np(g))
    lin.zero_grad()
    assert lin.weight.grad is None and lin.bias.grad is None


def test_state_dict_round_trip():
    dt.manual_seed(1)
    a, b = _Net(), _Net()
    a.train()
    a(dt.randn(5, 4))  # moves a's running statistics
    a.eval(), b.eval()
    x = dt.randn(3, 4)
    assert not np.allclose(_np(a(x)), _np(b(x)))
    res = b.load_state_dict(a.state_dict())
    assert res.missing_keys == [] and res.unexpected_keys == [] and repr(res) == "<All keys matched successfully>"
    np.testing.assert_array_equal(_np(a(x)), _np(b(x)))
    sd = a.state_dict()
    assert not sd["fc1.weight"].requires_grad and sd["fc1.weight"].grad_fn is None
    keep = a.state_dict(keep_vars=True)
    assert keep["fc1.weight"] is a.fc1.weight


def test_load_state_dict_reports_every_problem_at_once():
    net = _Net()
    sd = net.state_dict()
    del sd["fc1.bias"], sd["bn.running_var"]
    sd["fc1.extra"] = dt.zeros(1)
    sd["ghost.weight"] = dt.zeros(1)
    sd["block.1.weight"] = dt.zeros(5, 5)
    with pytest.raises(RuntimeError) as e:
        net.load_state_dict(sd)
    msg = str(e.value)
    assert msg.startswith("Error(s) in loading state_dict for _Net:")
    assert 'Missing key(s) in state_dict: "fc1.bias", "bn.running_var".' in msg
    assert '"fc1.extra"' in msg and '"ghost.weight"' in msg and "Unexpected key(s)" in msg
    assert ("size mismatch for block.1.weight: copying a param with shape devtensor.Size([5, 5]) from "
            "checkpoint, the shape in current model is devtensor.Size([2, 3])") in msg
    # strict=False reports keys but still refuses shape mismatches
    with pytest.raises(RuntimeError, match="size mismatch for block.1.weight"):
        net.load_state_dict(sd, strict=False)
    del sd["block.1.weight"]
    missing, unexpected = net.load_state_dict(sd, strict=False)
    assert missing == ["fc1.bias", "bn.running_var", "block.1.weight"]
    assert unexpected == ["ghost.weight", "fc1.extra"]  # module by module, as PyTorch lists them


def test_load_state_dict_keeps_the_modules_device_dtype_and_parameter_objects():
    lin = nn.Linear(3, 2).double()
    w = lin.weight
    src = nn.Linear(3, 2)  # float32
    lin.load_state_dict(src.state_dict())
    assert lin.weight is w and lin.weight.dtype is dt.float64
    np.testing.assert_allclose(_np(lin.weight), _np(src.weight), rtol=1e-7)
    meta = nn.Linear(3, 2).to("meta")
    meta.load_state_dict(src.state_dict())
    assert meta.weight.device.type == "meta" and meta.weight.dtype is dt.float32


def test_module_to_keeps_parameter_objects_and_moves_grads_and_buffers():
    net = _Net()
    params = list(net.parameters())
    net(dt.randn(4, 4)).sum().backward()
    assert net.to(dt.float64) is net
    assert [id(p) for p in net.parameters()] == [id(p) for p in params]
    assert all(p.dtype is dt.float64 and p.grad.dtype is dt.float64 for p in net.parameters())
    assert net.bn.running_mean.dtype is dt.float64 and net.bn.num_batches_tracked.dtype is dt.int64
    net.float()
    assert all(p.dtype is dt.float32 for p in net.parameters())
    net.to("meta")
    assert [id(p) for p in net.parameters()] == [id(p) for p in params]
    assert all(p.device.type == "meta" and p.grad.device.type == "meta" and p.is_leaf and p.requires_grad
               for p in net.parameters())
    assert all(b.device.type == "meta" for b in net.buffers())
    y = net(dt.randn(4, 4, device="meta"))  # the forward runs on the new device
    assert y.device.type == "meta" and tuple(y.shape) == (4, 2)
    with pytest.raises(TypeError, match="floating point"):
        net.to(dt.int64)


def test_module_to_then_optimizer_built_earlier_still_updates_the_parameters():
    lin = nn.Linear(3, 1)
    opt = dt.optim.SGD(lin.parameters(), lr=0.5)
    lin.double()
    before = _np(lin.weight).copy()
    lin(dt.ones(2, 3, dtype=dt.float64)).sum().backward()
    opt.step()
    np.testing.assert_allclose(_np(lin.weight), before - 0.5 * 2.0)
    lin.to("meta")
    opt.zero_grad()
    lin(dt.ones(2, 3, device="meta", dtype=dt.float64)).sum().backward()
    opt.step()
    assert lin.weight.device.type == "meta" and lin.weight.grad.device.type == "meta"


def test_layer_errors_name_the_shapes():
    with pytest.raises(RuntimeError, match=r"shape \[2, 5\].*6 features"):
        nn.Linear(6, 3)(dt.ones(2, 5))
    with pytest.raises(ValueError, match="in_channels must be divisible by groups"):
        nn.Conv2d(3, 6, 3, groups=2)
    with pytest.raises(RuntimeError, match=r"expected input with 3 channels.*\[1, 4, 8, 8\]"):
        nn.Conv2d(3, 6, 3)(dt.ones(1, 4, 8, 8))
    with pytest.raises(ValueError, match="padding='same' is not supported for strided"):
        nn.Conv2d(3, 6, 3, stride=2, padding="same")
    with pytest.raises(ValueError, match="dropout probability has to be between 0 and 1, but got 1.5"):
        nn.Dropout(1.5)
    with pytest.raises(ValueError, match="not a valid value for reduction"):
        nn.MSELoss(reduction="avg")
    with pytest.raises(RuntimeError, match="target of dtype int64.*got bool"):  # PyTorch's class
        nn.CrossEntropyLoss()(dt.ones(2, 3), dt.tensor([True, False]))
    with pytest.raises(ValueError, match=r"target of shape \[2\].*got \[3\]"):
        nn.NLLLoss()(dt.ones(2, 3), dt.tensor([0, 1, 2]))
    with pytest.raises(NotImplementedError, match="missing the required \"forward\""):
        nn.Module()(1)


def test_containers():
    a, b, c = nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1)
    seq = nn.Sequential(a, b)
    seq.append(c)
    assert len(seq) == 3 and seq[0] is a and seq[-1] is c and list(seq) == [a, b, c]
    sub = seq[1:]
    assert isinstance(sub, nn.Sequential) and list(sub) == [b, c]
    assert tuple(seq(dt.ones(4, 2)).shape) == (4, 1)
    del seq[1]
    assert list(seq) == [a, c] and list(seq._modules) == ["0", "1"]
    with pytest.raises(IndexError):
        seq[5]
    from collections import OrderedDict

    named = nn.Sequential(OrderedDict([("first", a), ("act", b)]))
    assert named.first is a and list(named.state_dict()) == ["first.weight", "first.bias"]

    ml = nn.ModuleList([a, b])
    ml.append(c)
    ml.extend([nn.Tanh()])
    ml.insert(0, nn.Identity())
    assert len(ml) == 5 and ml[1] is a and isinstance(ml[0], nn.Identity)
    assert [n for n, _ in ml.named_parameters()] == ["1.weight", "1.bias", "3.weight", "3.bias"]
    assert isinstance(ml[1:3], nn.ModuleList) and len(ml[1:3]) == 2
    md = nn.ModuleDict({"enc": a, "act": b})
    md["dec"] = c
    assert list(md.keys()) == ["enc", "act", "dec"] and "act" in md and md["dec"] is c and len(md) == 3
    assert [n for n, _ in md.named_parameters()] == ["enc.weight", "enc.bias", "dec.weight", "dec.bias"]
    assert md.pop("act") is b and len(md) == 2


def test_layer_output_shapes_and_values_without_torch():
    x = dt.tensor(np.arange(16.0, dtype=np.float32).reshape(1, 1, 4, 4))
    np.testing.assert_array_equal(_np(nn.MaxPool2d(2)(x)), [[[[5, 7], [13, 15]]]])
    np.testing.assert_array_equal(_np(nn.AvgPool2d(2)(x)), [[[[2.5, 4.5], [10.5, 12.5]]]])
    assert tuple(nn.Flatten()(dt.ones(2, 3, 4)).shape) == (2, 12)
    assert tuple(nn.Unflatten(1, (3, 4))(dt.ones(2, 12)).shape) == (2, 3, 4)
    conv = nn.Conv2d(1, 2, 3, padding="same")
    assert tuple(conv(x).shape) == (1, 2, 4, 4)
    assert tuple(nn.Conv2d(1, 2, 2, padding="same")(x).shape) == (1, 2, 4, 4)
    np.testing.assert_allclose(_np(nn.Softmax(dim=1)(dt.zeros(2, 4))), 0.25)
    np.testing.assert_allclose(_np(nn.LeakyReLU(0.1)(dt.tensor([-2.0, 3.0]))), [-0.2, 3.0])
    emb = nn.Embedding(5, 2, padding_idx=0)
    out = emb(dt.tensor([[0, 1], [4, 0]]))
    assert tuple(out.shape) == (2, 2, 2)
    out.sum().backward()
    assert not np.any(_np(emb.weight.grad)[0]) and np.all(_np(emb.weight.grad)[4] == 1)
    pre = nn.Embedding.from_pretrained(dt.eye(3))
    assert not pre.weight.requires_grad and _np(pre(dt.tensor([2])))[0].tolist() == [0.0, 0.0, 1.0]


def test_clip_grad_value_and_norm_without_torch():
    p = nn.Parameter(dt.zeros(3))
    p.grad = dt.tensor([3.0, -4.0, 0.5])
    nn.utils.clip_grad_value_([p], 1.0)
    assert _np(p.grad).tolist() == [1.0, -1.0, 0.5]
    q = nn.Parameter(dt.zeros(2))
    q.grad = dt.tensor([3.0, 4.0])
    total = nn.utils.clip_grad_norm_(q, max_norm=1.0)
    assert total.item() == pytest.approx(5.0)
    np.testing.assert_allclose(_np(q.grad), [0.6, 0.8], rtol=1e-5)
    vec = nn.utils.parameters_to_vector([p, q])
    assert tuple(vec.shape) == (5,)
    nn.utils.vector_to_parameters(dt.arange(5.0), [p, q])
    assert _np(q).tolist() == [3.0, 4.0]


def test_functional_is_exported():
    assert nn.functional is F and callable(nn.init.kaiming_uniform_) and nn.Parameter is dt.nn.Parameter
