"""devtensor.distributions against torch.distributions: log_prob, entropy, cdf/icdf, moments and
kl_divergence values and gradients on the same parameters; validation errors with torch's messages;
samples checked for shape, dtype, support and moments (the random streams differ by design)."""
from __future__ import annotations

import numpy as np
import pytest

import devtensor as dt
from devtensor import distributions as D
from conftest import raises_like_torch

torch = pytest.importorskip("torch")
TD = torch.distributions

_rng = np.random.default_rng(0)


def _pair(a):
    """The same float64 values as a devtensor and a torch leaf requiring grad."""
    a = np.asarray(a, np.float64)
    return dt.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)


def _close(d, t, rtol=1e-10, atol=1e-12):
    np.testing.assert_allclose(d.detach().numpy(), t.detach().numpy(), rtol=rtol, atol=atol)


def _check_grads(dout, tout, dparams, tparams):
    w = _rng.standard_normal(tuple(tout.shape))
    (dout * dt.tensor(w)).sum().backward()
    (tout * torch.tensor(w)).sum().backward()
    for dp, tp in zip(dparams, tparams):
        _close(dp.grad, tp.grad, rtol=1e-9, atol=1e-11)


def test_normal_matches_torch():
    loc, tloc = _pair(_rng.standard_normal(4))
    scale, tscale = _pair(_rng.uniform(0.5, 2.0, 4))
    x = _rng.standard_normal((3, 4))
    d, t = D.Normal(loc, scale), TD.Normal(tloc, tscale)
    assert d.batch_shape == t.batch_shape and d.event_shape == t.event_shape == ()
    for name in ("mean", "mode", "stddev", "variance"):
        _close(getattr(d, name), getattr(t, name))
    _close(d.cdf(dt.tensor(x)), t.cdf(torch.tensor(x)))
    _close(d.icdf(dt.tensor([0.1, 0.5, 0.7, 0.99], dtype=dt.float64)),
           t.icdf(torch.tensor([0.1, 0.5, 0.7, 0.99], dtype=torch.float64)), rtol=1e-8)
    out = d.log_prob(dt.tensor(x)) + d.entropy()
    tout = t.log_prob(torch.tensor(x)) + t.entropy()
    _close(out, tout)
    _check_grads(out, tout, (loc, scale), (tloc, tscale))
    assert repr(D.Normal(0.0, 1.0)).replace("devtensor", "torch") == repr(TD.Normal(0.0, 1.0))
    assert repr(d).replace("devtensor", "torch") == repr(t)


def test_normal_rsample_is_reparameterized():
    loc, _ = _pair([0.5, -1.0])
    scale, _ = _pair([2.0, 0.25])
    d = D.Normal(loc, scale)
    dt.manual_seed(0)
    x = d.rsample((5000,))
    assert tuple(x.shape) == (5000, 2) and x.dtype == dt.float64 and x.requires_grad
    x.sum().backward()
    eps = ((x - loc) / scale).detach().numpy()
    np.testing.assert_allclose(loc.grad.numpy(), [5000, 5000])
    np.testing.assert_allclose(scale.grad.numpy(), eps.sum(0), rtol=1e-10)  # d(loc + eps*scale)/dscale = eps
    assert (np.abs(x.detach().numpy().mean(0) - [0.5, -1.0]) < 4 * np.array([2.0, 0.25]) / 70).all()  # 4 s.e.
    np.testing.assert_allclose(x.detach().numpy().std(0), [2.0, 0.25], rtol=0.05)
    s = d.sample((3,))
    assert not s.requires_grad and tuple(s.shape) == (3, 2)
    assert tuple(D.Normal(0.0, 1.0).sample().shape) == ()


def test_uniform_matches_torch():
    low, tlow = _pair([0.0, -1.0, 2.0])
    high, thigh = _pair([1.0, 3.0, 2.5])
    x = np.array([[0.5, 0.0, 2.1], [0.25, 2.9, 2.49]])
    d, t = D.Uniform(low, high), TD.Uniform(tlow, thigh)
    for name in ("mean", "stddev", "variance"):
        _close(getattr(d, name), getattr(t, name))
    _close(d.cdf(dt.tensor(x)), t.cdf(torch.tensor(x)))
    _close(d.icdf(dt.tensor(x[:, :1] * 0 + 0.3)), t.icdf(torch.tensor(x[:, :1] * 0 + 0.3)))
    out, tout = d.log_prob(dt.tensor(x)) + d.entropy(), t.log_prob(torch.tensor(x)) + t.entropy()
    _close(out, tout)
    _check_grads(out, tout, (low, high), (tlow, thigh))
    dt.manual_seed(1)
    s = d.rsample((4000,)).detach().numpy()
    assert ((s >= [0.0, -1.0, 2.0]) & (s < [1.0, 3.0, 2.5])).all()
    np.testing.assert_allclose(s.mean(0), [0.5, 1.0, 2.25], atol=0.06)


@pytest.mark.parametrize("by", ["probs", "logits"])
def test_bernoulli_matches_torch(by):
    p = _rng.uniform(0.05, 0.95, (2, 3)) if by == "probs" else _rng.standard_normal((2, 3))
    param, tparam = _pair(p)
    d, t = D.Bernoulli(**{by: param}), TD.Bernoulli(**{by: tparam})
    x = (_rng.uniform(size=(4, 2, 3)) < 0.5).astype(np.float64)
    for name in ("mean", "variance", "stddev", "probs", "logits"):
        _close(getattr(d, name), getattr(t, name))
    out = d.log_prob(dt.tensor(x)).sum(0) + d.entropy()
    tout = t.log_prob(torch.tensor(x)).sum(0) + t.entropy()
    _close(out, tout)
    _check_grads(out, tout, (param,), (tparam,))
    assert repr(d).replace("devtensor", "torch") == repr(t)
    _close(d.enumerate_support(), t.enumerate_support())
    dt.manual_seed(2)
    s = d.sample((6000,)).numpy()
    assert s.shape == (6000, 2, 3) and set(np.unique(s)) <= {0.0, 1.0}
    np.testing.assert_allclose(s.mean(0), t.probs.detach().numpy(), atol=0.03)


@pytest.mark.parametrize("by", ["probs", "logits"])
def test_categorical_matches_torch(by):
    p = _rng.uniform(0.1, 1.0, (2, 5)) if by == "probs" else _rng.standard_normal((2, 5))
    param, tparam = _pair(p)
    d, t = D.Categorical(**{by: param}), TD.Categorical(**{by: tparam})
    assert d.batch_shape == t.batch_shape and d.event_shape == t.event_shape
    x = _rng.integers(0, 5, (3, 2))
    for name in ("probs", "logits"):
        _close(getattr(d, name), getattr(t, name))
    assert d.mode.numpy().tolist() == t.mode.numpy().tolist()
    assert np.isnan(d.mean.numpy()).all() and tuple(d.mean.shape) == tuple(t.mean.shape)
    out = d.log_prob(dt.tensor(x)).sum(0) + d.entropy()
    tout = t.log_prob(torch.tensor(x)).sum(0) + t.entropy()
    _close(out, tout)
    _check_grads(out, tout, (param,), (tparam,))
    # a value broadcasting against the batch: one category scored under every batch row
    _close(d.log_prob(dt.tensor([[1], [4]])), t.log_prob(torch.tensor([[1], [4]])))
    assert (d.enumerate_support().numpy() == t.enumerate_support().numpy()).all()


def test_categorical_sample_frequencies_and_zero_probabilities():
    probs = np.array([[0.0, 0.2, 0.0, 0.8], [0.5, 0.5, 0.0, 0.0]])
    d = D.Categorical(probs=dt.tensor(probs))
    dt.manual_seed(3)
    s = d.sample((20000,)).numpy()
    assert s.shape == (20000, 2) and s.dtype == np.int64
    for row in range(2):
        freq = np.bincount(s[:, row], minlength=4) / len(s)
        assert (freq[probs[row] == 0] == 0).all()  # a zero-probability category is never drawn
        np.testing.assert_allclose(freq, probs[row], atol=0.015)


def test_kl_divergence_matches_torch():
    l1, tl1 = _pair(_rng.standard_normal(3))
    s1, ts1 = _pair(_rng.uniform(0.5, 2, 3))
    l2, tl2 = _pair(_rng.standard_normal(3))
    s2, ts2 = _pair(_rng.uniform(0.5, 2, 3))
    out = D.kl_divergence(D.Normal(l1, s1), D.Normal(l2, s2))
    tout = TD.kl_divergence(TD.Normal(tl1, ts1), TD.Normal(tl2, ts2))
    _close(out, tout)
    _check_grads(out, tout, (l1, s1, l2, s2), (tl1, ts1, tl2, ts2))
    # the VAE form: KL(N(mu, sigma) || N(0, 1)) summed, equal to the closed form the papers write
    mu, sigma = l1.detach().numpy(), s1.detach().numpy()
    vae = D.kl_divergence(D.Normal(l1, s1), D.Normal(0.0, 1.0)).sum().item()
    np.testing.assert_allclose(vae, -0.5 * np.sum(1 + np.log(sigma ** 2) - mu ** 2 - sigma ** 2), rtol=1e-12)
    p, q = np.array([0.1, 0.5, 0.0, 1.0]), np.array([0.3, 0.5, 0.2, 0.0])
    _close(D.kl_divergence(D.Bernoulli(dt.tensor(p)), D.Bernoulli(dt.tensor(q))),
           TD.kl_divergence(TD.Bernoulli(torch.tensor(p)), TD.Bernoulli(torch.tensor(q))))
    pc, qc = _rng.uniform(0.1, 1, (2, 4)), _rng.uniform(0.1, 1, (2, 4))
    _close(D.kl_divergence(D.Categorical(dt.tensor(pc)), D.Categorical(dt.tensor(qc))),
           TD.kl_divergence(TD.Categorical(torch.tensor(pc)), TD.Categorical(torch.tensor(qc))))
    lo, hi = np.array([0.0, 0.0]), np.array([1.0, 2.0])
    _close(D.kl_divergence(D.Uniform(dt.tensor(lo), dt.tensor(hi)),
                           D.Uniform(dt.tensor(lo - 1), dt.tensor(hi * 0 + 1.5))),
           TD.kl_divergence(TD.Uniform(torch.tensor(lo), torch.tensor(hi)),
                            TD.Uniform(torch.tensor(lo - 1), torch.tensor(hi * 0 + 1.5))))
    with pytest.raises(NotImplementedError, match="No KL.*Normal.*Bernoulli"):
        D.kl_divergence(D.Normal(0.0, 1.0), D.Bernoulli(0.5))




def test_validation_errors_match_torch():
    raises_like_torch(lambda: D.Normal(dt.tensor([0.0, 1.0]), dt.tensor([1.0, -1.0])),
                lambda: TD.Normal(torch.tensor([0.0, 1.0]), torch.tensor([1.0, -1.0])))
    raises_like_torch(lambda: D.Bernoulli(dt.tensor([0.5, 1.5])), lambda: TD.Bernoulli(torch.tensor([0.5, 1.5])))
    raises_like_torch(lambda: D.Bernoulli(), lambda: TD.Bernoulli())
    raises_like_torch(lambda: D.Categorical(probs=dt.tensor(0.5)), lambda: TD.Categorical(probs=torch.tensor(0.5)))
    raises_like_torch(lambda: D.Categorical(probs=dt.tensor([0.5, -0.25])),
                lambda: TD.Categorical(probs=torch.tensor([0.5, -0.25])))
    raises_like_torch(lambda: D.Uniform(dt.tensor([1.0]), dt.tensor([0.0])),
                lambda: TD.Uniform(torch.tensor([1.0]), torch.tensor([0.0])))
    raises_like_torch(lambda: D.Bernoulli(dt.tensor([0.5])).log_prob(dt.tensor([0.5])),
                lambda: TD.Bernoulli(torch.tensor([0.5])).log_prob(torch.tensor([0.5])))
    raises_like_torch(lambda: D.Categorical(dt.tensor([0.5, 0.5])).log_prob(dt.tensor([2])),
                lambda: TD.Categorical(torch.tensor([0.5, 0.5])).log_prob(torch.tensor([2])))
    raises_like_torch(lambda: D.Normal(dt.zeros(3), dt.ones(3)).log_prob(dt.zeros(2)),
                lambda: TD.Normal(torch.zeros(3), torch.ones(3)).log_prob(torch.zeros(2)))
    raises_like_torch(lambda: D.Normal(0.0, 1.0).log_prob(0.5), lambda: TD.Normal(0.0, 1.0).log_prob(0.5))
    raises_like_torch(lambda: D.Uniform(0.0, 1.0).log_prob(dt.tensor(1.5)),
                lambda: TD.Uniform(0.0, 1.0).log_prob(torch.tensor(1.5)))
    # validate_args=False skips the checks, as in torch
    D.Normal(dt.tensor([0.0]), dt.tensor([-1.0]), validate_args=False)
    with pytest.raises(NotImplementedError, match="Bernoulli does not implement rsample"):
        D.Bernoulli(0.5).rsample()


def test_on_each_device(device):
    """The same values on every device under test (DEVTENSOR_TEST_DEVICES=cpu,cuda on a GPU machine)."""
    loc, scale = np.array([0.5, -1.0]), np.array([2.0, 0.5])
    d = D.Normal(dt.tensor(loc, device=device), dt.tensor(scale, device=device))
    x = dt.tensor([0.1, 0.2], dtype=dt.float64, device=device)
    want = TD.Normal(torch.tensor(loc), torch.tensor(scale)).log_prob(torch.tensor([0.1, 0.2], dtype=torch.float64))
    _close(d.log_prob(x).cpu(), want)
    assert d.rsample((3,)).device == x.device
    kl = D.kl_divergence(d, D.Normal(dt.zeros(2, dtype=dt.float64, device=device), 1.0))
    _close(kl.cpu(), TD.kl_divergence(TD.Normal(torch.tensor(loc), torch.tensor(scale)), TD.Normal(0.0, 1.0)))
    c = D.Categorical(probs=dt.tensor([[0.0, 1.0, 0.0]], device=device))
    s = c.sample((50,))
    assert s.device == c.probs.device and (s.cpu().numpy() == 1).all()
    b = D.Bernoulli(probs=dt.tensor([0.0, 1.0], device=device))
    assert b.sample((20,)).cpu().numpy().tolist() == [[0.0, 1.0]] * 20
