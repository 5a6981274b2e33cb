"""optim.swa_utils against torch.optim.swa_utils: AveragedModel (equal-weight, avg_fn and
multi_avg_fn EMA, use_buffers), update_bn, and SWALR's learning rates step by step."""
from __future__ import annotations

import numpy as np
import pytest

import devtensor as dt
from devtensor import nn
from devtensor.optim import swa_utils

torch = pytest.importorskip("torch")
TS = torch.optim.swa_utils


def _models():
    tm = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 2)).double()
    dm = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2)).double()
    return tm, dm


def _load(dm, tm):
    dm.load_state_dict({k: dt.tensor(v.detach().numpy()) for k, v in tm.state_dict().items()})


def _same_state(dmod, tmod):
    ds, ts = dmod.state_dict(), tmod.state_dict()
    assert list(ds) == list(ts)
    for k in ts:
        np.testing.assert_allclose(ds[k].numpy(), ts[k].numpy(), rtol=1e-12, atol=1e-14, err_msg=k)


@pytest.mark.parametrize("kind", ["swa", "ema_avg_fn", "ema_multi", "swa_buffers"])
def test_averaged_model_matches_torch(kind):
    rng = np.random.default_rng(0)
    tm, dm = _models()
    kw_t, kw_d = {}, {}
    if kind == "ema_avg_fn":
        kw_t, kw_d = dict(avg_fn=TS.get_ema_avg_fn(0.9)), dict(avg_fn=swa_utils.get_ema_avg_fn(0.9))
    elif kind == "ema_multi":
        kw_t = dict(multi_avg_fn=TS.get_ema_multi_avg_fn(0.9))
        kw_d = dict(multi_avg_fn=swa_utils.get_ema_multi_avg_fn(0.9))
    elif kind == "swa_buffers":
        kw_t = kw_d = dict(use_buffers=True)
    _load(dm, tm)
    ta, da = TS.AveragedModel(tm, **kw_t), swa_utils.AveragedModel(dm, **kw_d)
    for _ in range(4):  # the model moves (weights and BatchNorm statistics), then is averaged in
        with torch.no_grad():
            for p in tm.parameters():
                p.add_(torch.tensor(rng.standard_normal(tuple(p.shape))))
        tm.train()
        tm(torch.tensor(rng.standard_normal((5, 3))))
        _load(dm, tm)
        ta.update_parameters(tm)
        da.update_parameters(dm)
        _same_state(da, ta)
    x = rng.standard_normal((2, 3))
    ta.eval(), da.eval()
    np.testing.assert_allclose(da(dt.tensor(x)).detach().numpy(), ta(torch.tensor(x)).detach().numpy(), rtol=1e-12)


def test_update_bn_matches_torch():
    rng = np.random.default_rng(1)
    tm, dm = _models()
    _load(dm, tm)
    batches = [rng.standard_normal((6, 3)) for _ in range(3)]
    TS.update_bn([(torch.tensor(b), 0) for b in batches], tm)
    swa_utils.update_bn([(dt.tensor(b), 0) for b in batches], dm)
    _same_state(dm, tm)
    assert dm[1].momentum == tm[1].momentum == 0.1


@pytest.mark.parametrize("strategy,anneal_epochs", [("cos", 3), ("linear", 4), ("cos", 0)])
def test_swalr_matches_torch(strategy, anneal_epochs):
    tp, dp = torch.nn.Parameter(torch.zeros(1)), nn.Parameter(dt.zeros(1))
    topt = torch.optim.SGD([tp], lr=0.5)
    dopt = dt.optim.SGD([dp], lr=0.5)
    ts = TS.SWALR(topt, swa_lr=0.05, anneal_epochs=anneal_epochs, anneal_strategy=strategy)
    ds = swa_utils.SWALR(dopt, swa_lr=0.05, anneal_epochs=anneal_epochs, anneal_strategy=strategy)
    for _ in range(7):
        np.testing.assert_allclose(ds.get_last_lr(), ts.get_last_lr(), rtol=1e-14)
        topt.step(), dopt.step()
        ts.step(), ds.step()
    with pytest.raises(ValueError, match="anneal_strategy must by one of 'cos' or 'linear', instead got x"):
        swa_utils.SWALR(dopt, 0.1, anneal_strategy="x")
    with pytest.raises(ValueError, match="anneal_epochs must be equal or greater than 0, got -1"):
        swa_utils.SWALR(dopt, 0.1, anneal_epochs=-1)
