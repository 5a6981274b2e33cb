"""The losses of devtensor/nn/losses_extra.py and their modules against PyTorch: every loss for each
reduction, values and the gradients of every float input (float64), the module forms with their defaults,
the legacy size_average / reduce flags and the argument errors. (tests/test_composites.py runs the same
functions against their numpy references with gradcheck and gradgradcheck.)"""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import devtensor as dt
import devtensor.nn.functional as F
from devtensor import nn

torch = pytest.importorskip("torch")
TF = torch.nn.functional

R = np.random.default_rng(7)


def U(*s, lo=-2.0, hi=2.0):
    return R.uniform(lo, hi, s)


def _logp(*s):
    x = R.standard_normal(s)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


# name -> (float args (grads checked), other args, kwargs): every case runs with reduction mean, sum and none
CASES = {
    "huber_loss": [((U(4, 3), U(4, 3)), (), {"delta": 0.8}), ((U(4, 3), U(4, 3)), (), {}),
                   ((U(3), U(3), U(3, lo=0.5)), (), {"weight_kw": True})],
    "smooth_l1_loss": [((U(4, 3), U(4, 3)), (), {"beta": 0.5})],
    "kl_div": [((_logp(3, 4), R.dirichlet(np.ones(4), 3)), (), {}),
               ((_logp(3, 4), _logp(3, 4)), (), {"log_target": True})],
    "cosine_embedding_loss": [((U(5, 3), U(5, 3)), (np.array([1, -1, 1, -1, 1]),), {"margin": 0.1})],
    "margin_ranking_loss": [((U(6), U(6)), (np.array([1.0, -1, 1, 1, -1, -1]),), {"margin": 0.2})],
    "hinge_embedding_loss": [((U(3, 4, lo=0),), (R.choice([-1.0, 1.0], (3, 4)),), {"margin": 1.5})],
    "soft_margin_loss": [((U(3, 4),), (R.choice([-1.0, 1.0], (3, 4)),), {})],
    "multilabel_soft_margin_loss": [((U(3, 4),), ((U(3, 4) > 0).astype(np.float64),), {}),
                                    ((U(3, 4),), ((U(3, 4) > 0).astype(np.float64), U(4, lo=0.5)), {})],
    "multi_margin_loss": [((U(4, 5),), (np.array([0, 3, 4, 1]),), {}),
                          ((U(4, 5),), (np.array([0, 3, 4, 1]), 2, 0.7, U(5, lo=0.5)), {})],
    "multilabel_margin_loss": [((U(3, 4),), (np.array([[3, 0, -1, 1], [0, 1, 2, 3], [1, -1, 0, 0]]),), {})],
    "triplet_margin_loss": [((U(4, 3), U(4, 3), U(4, 3)), (), {}),
                            ((U(4, 3), U(4, 3), U(4, 3)), (), {"p": 1, "swap": True, "margin": 0.5})],
    "poisson_nll_loss": [((U(3, 4),), (R.integers(0, 5, (3, 4)).astype(np.float64),), {"full": True}),
                         ((U(3, 4, lo=0.1),), (R.integers(0, 5, (3, 4)).astype(np.float64),), {"log_input": False})],
    "gaussian_nll_loss": [((U(3, 4), U(3, 4), U(3, 4, lo=0.1)), (), {}),
                          ((U(3, 4), U(3, 4), U(3, 1, lo=0.1)), (), {"full": True}),
                          ((U(3, 4), U(3, 4), U(3, lo=0.1)), (), {})],
    # ctc_loss: logits through log_softmax (see test_ctc_gradient_with_respect_to_log_probs)
    "ctc_loss": [((U(7, 3, 5),), (np.array([[1, 2, 2], [4, 1, 0], [3, 3, 3]]), np.array([7, 6, 7]),
                                  np.array([3, 2, 3])), {"logits": True}),
                 ((U(6, 2, 4),), (np.array([1, 2, 3, 1]), np.array([6, 5]), np.array([3, 1])),
                  {"blank": 0, "logits": True})],
}


def _run(mod, name, floats, others, kwargs, reduction, lib):
    kwargs = dict(kwargs)
    if kwargs.pop("weight_kw", False):  # huber_loss's weight= (PyTorch 2.13)
        kwargs["weight"] = floats[2]
        floats = floats[:2]
    if lib == "torch":
        ts = [torch.tensor(a, requires_grad=True) for a in floats]
        os_ = [torch.tensor(a) if isinstance(a, np.ndarray) else a for a in others]
        if "weight" in kwargs:
            kwargs["weight"] = torch.tensor(kwargs["weight"])
    else:
        ts = [dt.tensor(a, requires_grad=True) for a in floats]
        os_ = [dt.tensor(a) if isinstance(a, np.ndarray) else a for a in others]
        if "weight" in kwargs:
            kwargs["weight"] = dt.tensor(kwargs["weight"])
    xs = ts
    if kwargs.pop("logits", False):
        xs = [(TF if lib == "torch" else F).log_softmax(ts[0], -1)]
    out = getattr(mod, name)(*xs, *os_, reduction=reduction, **kwargs)
    (out * torch.tensor(np.linspace(0.5, 1.5, out.numel()).reshape(tuple(out.shape))) if lib == "torch" else
     out * dt.tensor(np.linspace(0.5, 1.5, out.numel()).reshape(tuple(out.shape)))).sum().backward()
    return out.detach().numpy(), [t.grad.numpy() for t in ts]


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_loss_and_gradients_match_torch(name, reduction):
    if name == "kl_div" and reduction == "mean":
        reduction = "batchmean"  # 'mean' warns in both; batchmean is the one to use
    for i, (floats, others, kwargs) in enumerate(CASES[name]):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            want, want_g = _run(TF, name, floats, others, kwargs, reduction, "torch")
            got, got_g = _run(F, name, floats, others, kwargs, reduction, "dt")
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12, err_msg=f"{name} case {i}")
        for j, (g, w) in enumerate(zip(got_g, want_g)):
            np.testing.assert_allclose(g, w, rtol=1e-9, atol=1e-12, err_msg=f"{name} case {i} grad {j}")


@pytest.mark.parametrize("name", ["huber_loss", "soft_margin_loss", "triplet_margin_loss", "ctc_loss"])
def test_float32_losses_stay_float32_and_match(name):
    floats, others, kwargs = CASES[name][0]
    kwargs = {k: v for k, v in kwargs.items() if k != "logits"}
    floats = tuple(a.astype(np.float32) for a in floats)
    others = tuple(a.astype(np.float32) if isinstance(a, np.ndarray) and a.dtype.kind == "f" else a for a in others)
    want = getattr(TF, name)(*[torch.tensor(a) for a in floats],
                             *[torch.tensor(a) if isinstance(a, np.ndarray) else a for a in others], **kwargs)
    got = getattr(F, name)(*[dt.tensor(a) for a in floats],
                           *[dt.tensor(a) if isinstance(a, np.ndarray) else a for a in others], **kwargs)
    assert got.dtype == dt.float32
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=2e-5, atol=1e-6)


def test_kl_div_mean_and_legacy_flags_warn_like_torch():
    logp, q = _logp(3, 4), R.dirichlet(np.ones(4), 3)
    with pytest.warns(UserWarning, match="batchmean"):
        got = F.kl_div(dt.tensor(logp), dt.tensor(q))
    with pytest.warns(UserWarning):
        want = TF.kl_div(torch.tensor(logp), torch.tensor(q))
    assert float(got) == pytest.approx(float(want), rel=1e-12)
    with pytest.warns(UserWarning, match="size_average and reduce args will be deprecated"):
        got = F.soft_margin_loss(dt.tensor(q), dt.tensor(q), reduce=False)
    assert tuple(got.shape) == (3, 4)


def test_ctc_impossible_alignment_is_inf_or_zero_with_zero_infinity():
    lp = _logp(3, 1, 4)
    args = (np.array([[1, 1, 1]]), np.array([3]), np.array([3]))  # 1 1 1 needs 5 frames
    for zi in (False, True):
        want = TF.ctc_loss(torch.tensor(lp), *[torch.tensor(a) for a in args], reduction="none", zero_infinity=zi)
        x = dt.tensor(lp, requires_grad=True)
        got = F.ctc_loss(x, *[dt.tensor(a) for a in args], reduction="none", zero_infinity=zi)
        np.testing.assert_array_equal(got.detach().numpy(), want.numpy())
    got.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.zeros_like(lp))


def test_ctc_gradient_with_respect_to_log_probs():
    """PyTorch's ctc_loss backward returns exp(log_probs) - posterior, which is the logits' gradient when the
    log_probs come from log_softmax (its backward maps it to itself) but not d loss / d log_probs (-posterior,
    what autograd gives here and what gradcheck confirms). Through log_softmax both agree (the test above)."""
    lp = _logp(6, 2, 4)
    args = (np.array([[1, 2], [3, 1]]), np.array([6, 5]), np.array([2, 2]))
    x, tx = dt.tensor(lp, requires_grad=True), torch.tensor(lp, requires_grad=True)
    F.ctc_loss(x, *[dt.tensor(a) for a in args], reduction="sum").backward()
    TF.ctc_loss(tx, *[torch.tensor(a) for a in args], reduction="sum").backward()
    valid = np.ones_like(lp, dtype=bool)
    valid[5:, 1] = False  # past the second sequence's input length: no gradient in either
    np.testing.assert_allclose(x.grad.numpy()[valid], (tx.grad.numpy() - np.exp(lp))[valid], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(x.grad.numpy().sum(-1)[valid[..., 0]], -1.0, rtol=1e-9)  # -posterior: sums to -1


def test_ctc_unbatched_input():
    lp, tgt = _logp(5, 4), np.array([1, 3])
    want = TF.ctc_loss(torch.tensor(lp), torch.tensor(tgt), torch.tensor(5), torch.tensor(2))
    got = F.ctc_loss(dt.tensor(lp), dt.tensor(tgt), dt.tensor(5), dt.tensor(2))
    assert float(got) == pytest.approx(float(want), rel=1e-10)


@pytest.mark.parametrize("p", [2.0, 1.0, 3.0, math.inf])
def test_distances_match_torch(p):
    a, b = U(4, 3), U(4, 3)
    np.testing.assert_allclose(F.pairwise_distance(dt.tensor(a), dt.tensor(b), p).numpy(),
                               TF.pairwise_distance(torch.tensor(a), torch.tensor(b), p).numpy(), rtol=1e-12)
    z = a.copy()
    z[0] = 0
    x, tx = dt.tensor(z, requires_grad=True), torch.tensor(z, requires_grad=True)
    F.cosine_similarity(x, dt.tensor(b)).sum().backward()
    TF.cosine_similarity(tx, torch.tensor(b)).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-10, atol=1e-12)


MODULES = [
    ("SmoothL1Loss", dict(beta=0.5), 2), ("HuberLoss", dict(delta=0.5), 2), ("KLDivLoss", dict(reduction="batchmean"), 2),
    ("CosineEmbeddingLoss", dict(margin=0.1), "cos"), ("MarginRankingLoss", dict(margin=0.1), "rank"),
    ("HingeEmbeddingLoss", dict(), "sign"), ("SoftMarginLoss", dict(reduction="sum"), "sign"),
    ("MultiLabelSoftMarginLoss", dict(), "multi01"), ("MultiMarginLoss", dict(p=2), "cls"),
    ("MultiLabelMarginLoss", dict(), "mlm"), ("TripletMarginLoss", dict(margin=0.5), 3),
    ("TripletMarginWithDistanceLoss", dict(margin=0.5, swap=True), 3), ("PoissonNLLLoss", dict(), "count"),
    ("GaussianNLLLoss", dict(full=True), "var"), ("CTCLoss", dict(), "ctc"), ("CosineSimilarity", dict(dim=0), 2),
    ("PairwiseDistance", dict(p=1.0), 2),
]


def _module_args(kind):
    x = U(4, 3)
    if kind == 2:
        return [x, U(4, 3)]
    if kind == 3:
        return [x, U(4, 3), U(4, 3)]
    return {
        "cos": [x, U(4, 3), np.array([1, -1, 1, 1])], "rank": [U(4), U(4), np.array([1.0, -1, -1, 1])],
        "sign": [x, R.choice([-1.0, 1.0], (4, 3))], "multi01": [x, (U(4, 3) > 0).astype(np.float64)],
        "cls": [x, np.array([0, 2, 1, 2])], "mlm": [x, np.array([[2, -1, 0], [0, 1, 2], [1, 0, -1], [-1, 0, 0]])],
        "count": [x, R.integers(0, 4, (4, 3)).astype(np.float64)], "var": [x, U(4, 3), U(4, 3, lo=0.1)],
        "ctc": [_logp(5, 2, 4), np.array([[1, 2], [3, 0]]), np.array([5, 4]), np.array([2, 1])],
    }[kind]


@pytest.mark.parametrize("name,kw,kind", MODULES, ids=[m[0] for m in MODULES])
def test_loss_modules_match_torch(name, kw, kind):
    args = _module_args(kind)
    want = getattr(torch.nn, name)(**kw)(*[torch.tensor(a) for a in args])
    m = getattr(nn, name)(**kw)
    got = m(*[dt.tensor(a) for a in args])
    np.testing.assert_allclose(got.numpy(), want.detach().numpy(), rtol=1e-10, atol=1e-12)
    theirs = getattr(torch.nn, name)()
    for attr in ("reduction", "margin", "p", "eps", "delta", "beta", "log_input", "full", "blank", "zero_infinity",
                 "swap", "log_target", "dim", "keepdim"):
        if hasattr(theirs, attr):  # the defaults are PyTorch's
            assert getattr(getattr(nn, name)(), attr) == getattr(theirs, attr), (name, attr)


def test_loss_module_weights_are_buffers():
    w = dt.tensor([1.0, 2.0, 0.5])
    m = nn.MultiMarginLoss(weight=w)
    assert "weight" in m.state_dict() and m.weight is w
    assert "weight" in nn.MultiLabelSoftMarginLoss(weight=w).state_dict()


@pytest.mark.parametrize("call", [
    lambda lib, t: lib.nn.functional.multi_margin_loss(t([[0.1, 0.2]]), t([0]).long(), p=3),
    lambda lib, t: lib.nn.functional.gaussian_nll_loss(t([1.0, 2.0]), t([1.0, 2.0]), t([1.0, -1.0])),
    lambda lib, t: lib.nn.functional.gaussian_nll_loss(t([[1.0, 2.0]]), t([[1.0, 2.0]]), t([1.0, 1.0, 1.0])),
    lambda lib, t: lib.nn.functional.triplet_margin_loss(t([1.0]), t([1.0]), t([1.0]), margin=0),
    lambda lib, t: lib.nn.functional.huber_loss(t([1.0]), t([1.0]), delta=0),
], ids=["multi_margin-p", "gaussian-negative", "gaussian-size", "triplet-margin", "huber-delta"])
def test_argument_errors_match_torch_class(call):
    with pytest.raises(Exception) as want:
        call(torch, lambda v: torch.tensor(v))
    with pytest.raises(Exception) as got:
        call(dt, lambda v: dt.tensor(v))
    assert isinstance(got.value, type(want.value)) or type(want.value).__name__ in type(got.value).__mro__[0].__name__
