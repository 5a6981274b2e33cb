"""F.gumbel_softmax: values and gradients against PyTorch's formula on the same Gumbel noise, the
straight-through estimator, and the Gumbel-max property (hard samples' argmax ~ softmax(logits))."""
from __future__ import annotations

import numpy as np
import pytest

import devtensor as dt
from devtensor.nn import functional as F

torch = pytest.importorskip("torch")


def _noise(seed, shape, dtype=dt.float64):
    """The Gumbel noise gumbel_softmax draws after manual_seed(seed): -log(-log(1 - u))."""
    dt.manual_seed(seed)
    u = dt.rand(shape, dtype=dtype).numpy()
    return -np.log(-np.log1p(-u))


@pytest.mark.parametrize("hard", [False, True])
@pytest.mark.parametrize("dim", [-1, 0])
def test_gumbel_softmax_matches_torch_on_same_noise(hard, dim):
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((4, 5))
    w = rng.standard_normal((4, 5))
    g = _noise(7, (4, 5))
    dt.manual_seed(7)
    x = dt.tensor(logits, requires_grad=True)
    y = F.gumbel_softmax(x, tau=0.5, hard=hard, dim=dim)
    (y * dt.tensor(w)).sum().backward()
    tx = torch.tensor(logits, requires_grad=True)
    y_soft = ((tx + torch.tensor(g)) / 0.5).softmax(dim)
    if hard:
        index = y_soft.max(dim, keepdim=True)[1]
        ty = torch.zeros_like(tx).scatter_(dim, index, 1.0) - y_soft.detach() + y_soft
    else:
        ty = y_soft
    (ty * torch.tensor(w)).sum().backward()
    np.testing.assert_allclose(y.detach().numpy(), ty.detach().numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-10, atol=1e-12)
    if hard:
        assert set(np.unique(y.detach().numpy())) == {0.0, 1.0}
        assert (y.detach().numpy().sum(axis=dim) == 1).all()


def test_gumbel_max_frequencies_follow_softmax():
    logits = np.log(np.array([0.1, 0.2, 0.3, 0.4]))
    dt.manual_seed(3)
    n = 40000
    y = F.gumbel_softmax(dt.tensor(np.tile(logits, (n, 1))), hard=True).numpy()
    freq = y.mean(axis=0)
    np.testing.assert_allclose(freq, [0.1, 0.2, 0.3, 0.4], atol=0.01)  # ~4 standard errors


def test_gumbel_softmax_rejects_integer_logits():
    with pytest.raises(RuntimeError, match="gumbel_softmax.*floating point.*int64"):
        F.gumbel_softmax(dt.tensor([1, 2]))
