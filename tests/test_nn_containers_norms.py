"""nn.ParameterList / ParameterDict and nn.utils.weight_norm / spectral_norm, against PyTorch:
registration (parameters, state_dict keys, to()), repr, errors, and forward values and gradients
on the same weights (spectral_norm with torch's u/v buffers copied across)."""
from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest

import devtensor as dt
from devtensor import nn
from conftest import raises_like_torch

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.filterwarnings("ignore:.*weight_norm.*is deprecated:FutureWarning")  # torch's, not ours


def _np(t):
    return np.asarray(t.detach()._data)


def _tn(t):
    return t.detach().numpy()




# ---- ParameterList / ParameterDict ----------------------------------------------------------

class _Holder(nn.Module):
    def __init__(self):
        super().__init__()
        self.pl = nn.ParameterList([nn.Parameter(dt.ones(2)), dt.zeros(3, 2)])
        self.pd = nn.ParameterDict({"w": nn.Parameter(dt.ones(1)), "b": dt.zeros(2)})


def test_parameter_list_registers_and_wraps():
    m = _Holder()
    assert list(m.state_dict()) == ["pl.0", "pl.1", "pd.b", "pd.w"]  # a plain dict: sorted, as torch
    assert [n for n, _ in m.named_parameters()] == ["pl.0", "pl.1", "pd.b", "pd.w"]
    assert all(isinstance(p, nn.Parameter) and p.requires_grad for p in m.parameters())
    m.double()
    assert m.pl[1].dtype == dt.float64 and m.pd["b"].dtype == dt.float64
    pl = m.pl
    pl.append(dt.full((1,), 5.0))
    pl += [dt.ones(4)]
    assert len(pl) == 4 and isinstance(pl[2], nn.Parameter) and _np(pl[-2]).tolist() == [5.0]
    assert [tuple(p.shape) for p in pl] == [(2,), (3, 2), (1,), (4,)]
    assert [tuple(p.shape) for p in pl[1:3]] == [(3, 2), (1,)]
    pl[0] = dt.full((2,), 7.0)
    assert isinstance(pl[0], nn.Parameter) and _np(m.state_dict()["pl.0"]).tolist() == [7.0, 7.0]
    # optimizers see the parameters: one SGD step moves every one of them
    opt = dt.optim.SGD(m.parameters(), lr=1.0)
    sum(p.sum() for p in m.parameters()).backward()
    opt.step()
    assert _np(pl[0]).tolist() == [6.0, 6.0]


def test_parameter_containers_repr_and_errors_match_torch():
    tl = torch.nn.ParameterList([torch.nn.Parameter(torch.ones(2)), torch.zeros(3, 2)])
    dl = nn.ParameterList([nn.Parameter(dt.ones(2)), dt.zeros(3, 2)])
    assert repr(dl) == repr(tl).replace("torch.", "devtensor.")
    assert repr(nn.ParameterList()) == "ParameterList()"
    td = torch.nn.ParameterDict(OrderedDict(z=torch.ones(1), a=torch.zeros(2, 2)))
    dd = nn.ParameterDict(OrderedDict(z=dt.ones(1), a=dt.zeros(2, 2)))
    assert list(dd.keys()) == list(td.keys()) == ["z", "a"]
    # torch writes the legacy type name (FloatTensor) in ParameterDict's repr; devtensor the dtype
    assert repr(dd) == repr(td).replace("torch.FloatTensor", "devtensor.float32")
    raises_like_torch(lambda: dl[5], lambda: tl[5])
    raises_like_torch(lambda: dl.extend(dt.ones(2)), lambda: tl.extend(torch.ones(2)))
    raises_like_torch(lambda: dl(), lambda: tl())
    raises_like_torch(lambda: dd[1], lambda: td[1])
    raises_like_torch(lambda: dd.update([("a", 1, 2)]), lambda: td.update([("a", 1, 2)]))
    assert dd.get("nope") is None and "z" in dd and "nope" not in dd


def test_parameter_dict_mapping_methods():
    d = nn.ParameterDict([("b", dt.ones(2)), ("a", dt.ones(1))])
    assert list(d) == ["b", "a"] and len(d) == 2
    assert [k for k, _ in d.items()] == ["b", "a"] and all(isinstance(v, nn.Parameter) for v in d.values())
    p = d.pop("b")
    assert tuple(p.shape) == (2,) and list(d.state_dict()) == ["a"]
    d.setdefault("c", dt.zeros(3))
    assert list(d) == ["a", "c"] and [n for n, _ in d.named_parameters()] == ["a", "c"]
    assert d.popitem()[0] == "c"
    merged = d | {"x": dt.ones(1)}
    assert list(merged) == ["a", "x"] and list(d) == ["a"]
    d.clear()
    assert len(d) == 0 and list(d.parameters()) == []


# ---- weight_norm ----------------------------------------------------------------------------

def _pair(tmod, dmod):
    with dt.no_grad():
        for (k, tv), (k2, dv) in zip(tmod.state_dict().items(), dmod.state_dict().items()):
            assert k == k2
            dv.copy_(dt.tensor(_tn(tv)))


@pytest.mark.parametrize("dim", [0, 1, None, -2])
def test_weight_norm_matches_torch(dim):
    rng = np.random.default_rng(0)
    tm = torch.nn.Conv2d(3, 4, 3).double()
    dm = nn.Conv2d(3, 4, 3).double()
    _pair(tm, dm)
    tm = torch.nn.utils.weight_norm(tm, dim=dim)
    dm = nn.utils.weight_norm(dm, dim=dim)
    assert list(dm.state_dict()) == list(tm.state_dict()) == ["bias", "weight_g", "weight_v"]
    assert [n for n, _ in dm.named_parameters()] == ["bias", "weight_g", "weight_v"]
    np.testing.assert_allclose(_np(dm.weight_g), _tn(tm.weight_g), rtol=1e-12)
    assert tuple(dm.weight_g.shape) == tuple(tm.weight_g.shape)
    with torch.no_grad():  # move g off |v| so the recombination matters
        tm.weight_g.mul_(1.5)
    _pair(tm, dm)
    x = rng.standard_normal((2, 3, 6, 6))
    ty = tm(torch.tensor(x))
    dy = dm(dt.tensor(x))
    np.testing.assert_allclose(_np(dy), _tn(ty), rtol=1e-10, atol=1e-12)
    (ty ** 2).sum().backward()
    (dy ** 2).sum().backward()
    for n in ("bias", "weight_g", "weight_v"):
        np.testing.assert_allclose(_np(getattr(dm, n).grad), _tn(getattr(tm, n).grad), rtol=1e-9, atol=1e-11)
    torch.nn.utils.remove_weight_norm(tm)
    nn.utils.remove_weight_norm(dm)
    assert list(dm.state_dict()) == list(tm.state_dict()) == ["bias", "weight"]
    assert isinstance(dm.weight, nn.Parameter)
    np.testing.assert_allclose(_np(dm.weight), _tn(tm.weight), rtol=1e-12)


def test_weight_norm_errors_match_torch():
    raises_like_torch(lambda: nn.utils.remove_weight_norm(nn.Linear(3, 4), "bias"),
                 lambda: torch.nn.utils.remove_weight_norm(torch.nn.Linear(3, 4), "bias"))
    raises_like_torch(lambda: nn.utils.weight_norm(nn.utils.weight_norm(nn.Linear(3, 4))),
                 lambda: torch.nn.utils.weight_norm(torch.nn.utils.weight_norm(torch.nn.Linear(3, 4))))
    raises_like_torch(lambda: nn.utils.weight_norm(nn.Linear(3, 4), dim=5),
                 lambda: torch.nn.utils.weight_norm(torch.nn.Linear(3, 4), dim=5))


# ---- spectral_norm --------------------------------------------------------------------------

@pytest.mark.parametrize("make,x_shape", [
    (lambda m: m.Linear(5, 4), (3, 5)),
    (lambda m: m.Conv2d(2, 3, 3), (2, 2, 5, 5)),
    (lambda m: m.ConvTranspose2d(3, 2, 3), (2, 3, 4, 4)),  # dim=1 by default
])
def test_spectral_norm_matches_torch(make, x_shape):
    rng = np.random.default_rng(1)
    tm, dm = make(torch.nn).double(), make(nn).double()
    _pair(tm, dm)
    tm = torch.nn.utils.spectral_norm(tm, n_power_iterations=2)
    dm = nn.utils.spectral_norm(dm, n_power_iterations=2)
    keys = ["bias", "weight_orig", "weight_u", "weight_v"]
    assert list(dm.state_dict()) == list(tm.state_dict()) == keys
    assert [n for n, _ in dm.named_parameters()] == ["bias", "weight_orig"]
    assert [n for n, _ in dm.named_buffers()] == ["weight_u", "weight_v"]
    assert tuple(dm.weight_u.shape) == tuple(tm.weight_u.shape)
    np.testing.assert_allclose(np.linalg.norm(_np(dm.weight_v)), 1.0, rtol=1e-12)
    _pair(tm, dm)  # torch's random u, v into devtensor's buffers
    x = rng.standard_normal(x_shape)
    for step in range(2):  # training: each forward runs the power iteration and updates u, v
        ty, dy = tm(torch.tensor(x)), dm(dt.tensor(x))
        np.testing.assert_allclose(_np(dy), _tn(ty), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(_np(dm.weight_u), _tn(tm.weight_u), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(_np(dm.weight_v), _tn(tm.weight_v), rtol=1e-10, atol=1e-12)
    (ty * torch.tensor(x).sum()).sum().backward()
    (dy * float(x.sum())).sum().backward()
    for n in ("bias", "weight_orig"):
        np.testing.assert_allclose(_np(getattr(dm, n).grad), _tn(getattr(tm, n).grad), rtol=1e-9, atol=1e-11)
    u_before = _np(dm.weight_u).copy()
    tm.eval(), dm.eval()
    np.testing.assert_allclose(_np(dm(dt.tensor(x))), _tn(tm(torch.tensor(x))), rtol=1e-10, atol=1e-12)
    assert np.array_equal(_np(dm.weight_u), u_before)  # no power iteration in eval mode
    torch.nn.utils.remove_spectral_norm(tm)
    nn.utils.remove_spectral_norm(dm)
    assert list(dm.state_dict()) == list(tm.state_dict()) == ["bias", "weight"]
    np.testing.assert_allclose(_np(dm.weight), _tn(tm.weight), rtol=1e-10, atol=1e-12)


def test_spectral_norm_sigma_is_the_largest_singular_value():
    # a weight with known singular values (gap 5 : 2), so 50 power iterations converge whatever u starts
    # at (a random weight's top two can be close: the test then depended on the global random stream)
    r = np.random.default_rng(3)
    u, _ = np.linalg.qr(r.standard_normal((5, 5)))
    v, _ = np.linalg.qr(r.standard_normal((6, 6)))
    lin = nn.Linear(6, 5).double()
    with dt.no_grad():
        lin.weight.copy_(dt.tensor(u @ np.diag([5.0, 2.0, 1.0, 0.5, 0.1]) @ v[:5]))
    dm = nn.utils.spectral_norm(lin, n_power_iterations=50)
    dm(dt.zeros(1, 6, dtype=dt.float64))
    s = np.linalg.svd(_np(dm.weight), compute_uv=False)
    np.testing.assert_allclose(s[0], 1.0, rtol=1e-6)


def test_spectral_norm_errors_match_torch():
    raises_like_torch(lambda: nn.utils.spectral_norm(nn.Linear(3, 4), n_power_iterations=0),
                 lambda: torch.nn.utils.spectral_norm(torch.nn.Linear(3, 4), n_power_iterations=0))
    raises_like_torch(lambda: nn.utils.spectral_norm(nn.utils.spectral_norm(nn.Linear(3, 4))),
                 lambda: torch.nn.utils.spectral_norm(torch.nn.utils.spectral_norm(torch.nn.Linear(3, 4))))
    raises_like_torch(lambda: nn.utils.remove_spectral_norm(nn.Linear(3, 4)),
                 lambda: torch.nn.utils.remove_spectral_norm(torch.nn.Linear(3, 4)))


def test_norms_and_containers_on_each_device(device):
    """weight_norm / spectral_norm and a ParameterList follow Module.to(device) (DEVTENSOR_TEST_DEVICES)."""
    rng = np.random.default_rng(3)
    tm = torch.nn.utils.spectral_norm(torch.nn.Linear(4, 3))
    dm = nn.utils.spectral_norm(nn.Linear(4, 3))
    _pair(tm, dm)
    dm.to(device)
    x = rng.standard_normal((2, 4)).astype(np.float32)
    np.testing.assert_allclose(dm(dt.tensor(x, device=device)).detach().cpu().numpy(), _tn(tm(torch.tensor(x))),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(dm.weight_u.cpu().numpy(), _tn(tm.weight_u), rtol=1e-5, atol=1e-6)
    wm = nn.utils.weight_norm(nn.Linear(4, 3)).to(device)
    assert wm(dt.tensor(x, device=device)).device == wm.weight_v.device
    pl = nn.ParameterList([dt.ones(2)]).to(device)
    assert pl[0].device == wm.weight_v.device and isinstance(pl[0], nn.Parameter)
