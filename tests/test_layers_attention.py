"""Attention against PyTorch from the same state_dict: F.scaled_dot_product_attention (boolean and
float masks, is_causal, scale, fully masked rows, grouped-query heads), nn.MultiheadAttention (packed
and separate projections, bias_k / bias_v, zero attention, key padding and attention masks, weights
averaged or per head, batch_first, unbatched) and the Transformer layers (norm_first, activations,
masks, encoder / decoder stacks, the full Transformer): outputs and the gradients of the inputs and
of every parameter, float32 1e-4; float64 gradcheck of the attention composite."""
from __future__ import annotations

import numpy as np
import pytest

import devtensor as dt
from devtensor import nn
from devtensor.autograd import gradcheck
from devtensor.nn import functional as F

torch = pytest.importorskip("torch")
TF = torch.nn.functional
TOL = dict(rtol=1e-4, atol=2e-5)


def _np(t):
    return np.asarray(t.detach().cpu()._data)


def _leaf(a):
    return dt.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)


def _sync(dm, tm):
    res = dm.load_state_dict({k: dt.tensor(v.detach().numpy()) for k, v in tm.state_dict().items()})
    assert not res.missing_keys and not res.unexpected_keys
    assert list(dm.state_dict()) == list(tm.state_dict())
    for (a, p), (b, q) in zip(dm.named_parameters(), tm.named_parameters()):
        assert a == b and tuple(p.shape) == tuple(q.shape)


def _backward_and_compare(douts, touts, leaves, dm=None, tm=None):
    rng = np.random.default_rng(11)
    dl, tl = 0, 0
    for d, t in zip(douts, touts):
        if t is None:
            continue
        np.testing.assert_allclose(_np(d), t.detach().numpy(), **TOL)
        w = rng.standard_normal(tuple(t.shape)).astype(np.float32)
        dl = dl + (d * dt.tensor(w)).sum()
        tl = tl + (t * torch.tensor(w)).sum()
    dl.backward()
    tl.backward()
    for d, t in leaves:
        np.testing.assert_allclose(_np(d.grad), t.grad.numpy(), **TOL)
    if dm is not None:
        tp = dict(tm.named_parameters())
        for name, p in dm.named_parameters():
            if tp[name].grad is None:
                assert p.grad is None or not np.any(_np(p.grad)), name
                continue
            np.testing.assert_allclose(_np(p.grad), tp[name].grad.numpy(), err_msg=name, **TOL)


# ---- scaled_dot_product_attention -------------------------------------------------------------------
def _qkv(rng, B=2, H=3, L=4, S=5, E=6, Ev=7):
    return (rng.standard_normal((B, H, L, E)).astype(np.float32), rng.standard_normal((B, H, S, E)).astype(np.float32),
            rng.standard_normal((B, H, S, Ev)).astype(np.float32))


MASKS = ["none", "bool", "float", "causal", "bool-dead-row", "scale"]


@pytest.mark.parametrize("mask", MASKS)
def test_sdpa_matches_torch(mask):
    rng = np.random.default_rng(0)
    q, k, v = _qkv(rng)
    (dq, tq), (dk, tk), (dv, tv) = _leaf(q), _leaf(k), _leaf(v)
    kw_d, kw_t = {}, {}
    if mask == "bool" or mask == "bool-dead-row":
        m = rng.random((4, 5)) > 0.4
        m[:, 0] = True
        if mask == "bool-dead-row":
            m[2] = False  # a query that may attend nothing: zeros, as PyTorch's safe softmax
        kw_d["attn_mask"], kw_t["attn_mask"] = dt.tensor(m), torch.tensor(m)
    elif mask == "float":
        m = rng.standard_normal((2, 1, 4, 5)).astype(np.float32)
        kw_d["attn_mask"], kw_t["attn_mask"] = dt.tensor(m), torch.tensor(m)
    elif mask == "causal":
        kw_d["is_causal"] = kw_t["is_causal"] = True
    elif mask == "scale":
        kw_d["scale"] = kw_t["scale"] = 0.3
    d = F.scaled_dot_product_attention(dq, dk, dv, **kw_d)
    t = TF.scaled_dot_product_attention(tq, tk, tv, **kw_t)
    _backward_and_compare([d], [t], [(dq, tq), (dk, tk), (dv, tv)])


def test_sdpa_grouped_query_heads_and_errors():
    rng = np.random.default_rng(1)
    q = rng.standard_normal((2, 4, 3, 5)).astype(np.float32)
    k = rng.standard_normal((2, 2, 6, 5)).astype(np.float32)
    v = rng.standard_normal((2, 2, 6, 5)).astype(np.float32)
    (dq, tq), (dk, tk), (dv, tv) = _leaf(q), _leaf(k), _leaf(v)
    d = F.scaled_dot_product_attention(dq, dk, dv, enable_gqa=True)
    t = TF.scaled_dot_product_attention(tq, tk, tv, enable_gqa=True)
    _backward_and_compare([d], [t], [(dq, tq), (dk, tk), (dv, tv)])
    with pytest.raises(RuntimeError, match="attn_mask should not be set when is_causal=True"):
        F.scaled_dot_product_attention(dq, dq, dq, attn_mask=dt.ones(3, 3, dtype=dt.bool), is_causal=True)


def test_sdpa_dropout_is_seeded_and_scaled():
    q = dt.randn(2, 4, 8, 8)
    dt.manual_seed(1)
    a = _np(F.scaled_dot_product_attention(q, q, q, dropout_p=0.5))
    dt.manual_seed(1)
    b = _np(F.scaled_dot_product_attention(q, q, q, dropout_p=0.5))
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - _np(F.scaled_dot_product_attention(q, q, q))).max() > 1e-3


def test_sdpa_gradcheck_float64():
    rng = np.random.default_rng(2)
    shapes = ((1, 2, 3, 4), (1, 2, 5, 4), (1, 2, 5, 3))
    q, k, v = (dt.tensor(rng.standard_normal(s), requires_grad=True) for s in shapes)
    m = dt.tensor(rng.standard_normal((3, 5)))
    assert gradcheck(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, attn_mask=m), (q, k, v))
    assert gradcheck(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True), (q, k, v))


# ---- MultiheadAttention -----------------------------------------------------------------------------
MHA_CASES = [  # constructor kwargs, forward kwargs, which masks
    ({}, {}, ""),
    ({"batch_first": True}, {"need_weights": False}, "kpm"),
    ({"bias": False}, {"average_attn_weights": False}, "attn2d"),
    ({"add_bias_kv": True, "add_zero_attn": True}, {}, "kpm,attn2d"),
    ({"kdim": 5, "vdim": 3}, {}, "attn3d-bool"),
    ({"kdim": 5, "vdim": 3, "batch_first": True}, {"need_weights": False}, "kpm-float,attn2d"),
    ({}, {"need_weights": False, "is_causal": True}, "causal"),
]


@pytest.mark.parametrize("ctor,fwd,masks", MHA_CASES)
def test_multihead_attention_matches_torch(ctor, fwd, masks):
    E, H, L, S, N = 8, 2, 4, 6, 3
    torch.manual_seed(0)
    tm = torch.nn.MultiheadAttention(E, H, **ctor)
    dm = nn.MultiheadAttention(E, H, **ctor)
    _sync(dm, tm)
    rng = np.random.default_rng(3)
    bf = ctor.get("batch_first", False)
    kd, vd = ctor.get("kdim", E), ctor.get("vdim", E)
    shp = (lambda T, D: (N, T, D)) if bf else (lambda T, D: (T, N, D))
    self_attn = "kdim" not in ctor
    q = rng.standard_normal(shp(L, E)).astype(np.float32)
    (dq, tq) = _leaf(q)
    if self_attn and "causal" in masks:
        dk, tk, dv, tv = dq, tq, dq, tq
        Sx = L
    else:
        (dk, tk), (dv, tv) = _leaf(rng.standard_normal(shp(S, kd)).astype(np.float32)), \
            _leaf(rng.standard_normal(shp(S, vd)).astype(np.float32))
        Sx = S
    kw_d, kw_t = dict(fwd), dict(fwd)
    if "kpm" in masks:
        kpm = np.zeros((N, Sx), dtype=bool)
        kpm[0, -2:] = True
        if "float" in masks:
            kpm = np.where(kpm, -1e9, 0.0).astype(np.float32)
        kw_d["key_padding_mask"], kw_t["key_padding_mask"] = dt.tensor(kpm), torch.tensor(kpm)
    if "attn2d" in masks:
        am = rng.standard_normal((L, Sx)).astype(np.float32)
        kw_d["attn_mask"], kw_t["attn_mask"] = dt.tensor(am), torch.tensor(am)
    if "attn3d-bool" in masks:
        am = rng.random((N * H, L, Sx)) > 0.7
        am[..., 0] = False
        kw_d["attn_mask"], kw_t["attn_mask"] = dt.tensor(am), torch.tensor(am)
    if "causal" in masks:
        am = torch.nn.Transformer.generate_square_subsequent_mask(L)
        kw_d["attn_mask"], kw_t["attn_mask"] = dt.tensor(am.numpy()), am
    d_out, d_w = dm(dq, dk, dv, **kw_d)
    t_out, t_w = tm(tq, tk, tv, **kw_t)
    assert (d_w is None) == (t_w is None)
    leaves = [(dq, tq)] + ([] if dk is dq else [(dk, tk), (dv, tv)])
    _backward_and_compare([d_out, d_w], [t_out, t_w], leaves, dm, tm)


def test_multihead_attention_unbatched_and_repr():
    torch.manual_seed(0)
    tm, dm = torch.nn.MultiheadAttention(4, 2), nn.MultiheadAttention(4, 2)
    _sync(dm, tm)
    x = np.random.default_rng(4).standard_normal((5, 4)).astype(np.float32)
    (dx, tx) = _leaf(x)
    d, dw = dm(dx, dx, dx)
    t, tw = tm(tx, tx, tx)
    assert tuple(d.shape) == (5, 4) and tuple(dw.shape) == (5, 5)
    _backward_and_compare([d, dw], [t, tw], [(dx, tx)], dm, tm)
    assert repr(dm.out_proj) == repr(tm.out_proj)


# ---- Transformer layers -----------------------------------------------------------------------------
@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu", "callable"])
def test_encoder_layer_matches_torch(norm_first, batch_first, activation):
    act_t = {"relu": "relu", "gelu": "gelu", "callable": TF.silu}[activation]
    act_d = {"relu": "relu", "gelu": "gelu", "callable": F.silu}[activation]
    torch.manual_seed(0)
    kw = dict(dim_feedforward=32, dropout=0.0, batch_first=batch_first, norm_first=norm_first)
    tm = torch.nn.TransformerEncoderLayer(16, 4, activation=act_t, **kw)
    dm = nn.TransformerEncoderLayer(16, 4, activation=act_d, **kw)
    _sync(dm, tm)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 5, 16) if batch_first else (5, 3, 16)).astype(np.float32)
    (dx, tx) = _leaf(x)
    mask = torch.nn.Transformer.generate_square_subsequent_mask(5)
    kpm = np.zeros((3, 5), dtype=bool)
    kpm[1, -1] = True
    d = dm(dx, src_mask=dt.tensor(mask.numpy()), src_key_padding_mask=dt.tensor(kpm))
    t = tm(tx, src_mask=mask, src_key_padding_mask=torch.tensor(kpm))
    _backward_and_compare([d], [t], [(dx, tx)], dm, tm)


@pytest.mark.parametrize("norm_first", [False, True])
def test_decoder_layer_matches_torch(norm_first):
    torch.manual_seed(0)
    kw = dict(dim_feedforward=24, dropout=0.0, norm_first=norm_first, batch_first=True)
    tm, dm = torch.nn.TransformerDecoderLayer(8, 2, **kw), nn.TransformerDecoderLayer(8, 2, **kw)
    _sync(dm, tm)
    rng = np.random.default_rng(6)
    (dt_, tt), (dmem, tmem) = _leaf(rng.standard_normal((2, 4, 8)).astype(np.float32)), \
        _leaf(rng.standard_normal((2, 6, 8)).astype(np.float32))
    mask = torch.nn.Transformer.generate_square_subsequent_mask(4)
    mkpm = np.zeros((2, 6), dtype=bool)
    mkpm[0, -3:] = True
    d = dm(dt_, dmem, tgt_mask=dt.tensor(mask.numpy()), tgt_is_causal=True, memory_key_padding_mask=dt.tensor(mkpm))
    t = tm(tt, tmem, tgt_mask=mask, tgt_is_causal=True, memory_key_padding_mask=torch.tensor(mkpm))
    _backward_and_compare([d], [t], [(dt_, tt), (dmem, tmem)], dm, tm)


def test_transformer_matches_torch():
    torch.manual_seed(0)
    kw = dict(d_model=8, nhead=2, num_encoder_layers=2, num_decoder_layers=2, dim_feedforward=16, dropout=0.0)
    tm, dm = torch.nn.Transformer(**kw), nn.Transformer(**kw)
    _sync(dm, tm)
    rng = np.random.default_rng(7)
    (ds, ts), (dtg, ttg) = _leaf(rng.standard_normal((6, 2, 8)).astype(np.float32)), \
        _leaf(rng.standard_normal((5, 2, 8)).astype(np.float32))
    dmask = nn.Transformer.generate_square_subsequent_mask(5)
    tmask = torch.nn.Transformer.generate_square_subsequent_mask(5)
    np.testing.assert_array_equal(_np(dmask), tmask.numpy())
    d = dm(ds, dtg, tgt_mask=dmask)
    t = tm(ts, ttg, tgt_mask=tmask)
    _backward_and_compare([d], [t], [(ds, ts), (dtg, ttg)], dm, tm)
    with pytest.raises(RuntimeError, match="the batch number of src and tgt must be equal"):
        dm(ds, dt.randn(5, 3, 8))


def test_encoder_stack_with_norm_and_eval_mode():
    torch.manual_seed(0)
    tl = torch.nn.TransformerEncoderLayer(8, 2, 16, dropout=0.3)
    dl = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.3)
    tm = torch.nn.TransformerEncoder(tl, 3, norm=torch.nn.LayerNorm(8), enable_nested_tensor=False)
    dm = nn.TransformerEncoder(dl, 3, norm=nn.LayerNorm(8), enable_nested_tensor=False)
    _sync(dm, tm)
    assert dm.layers[0] is not dm.layers[1]
    tm.eval()
    dm.eval()
    x = np.random.default_rng(8).standard_normal((4, 2, 8)).astype(np.float32)
    with torch.no_grad():
        t = tm(torch.tensor(x))
    np.testing.assert_allclose(_np(dm(dt.tensor(x))), t.numpy(), **TOL)
    dm.train()
    y1 = _np(dm(dt.tensor(x)))
    assert np.abs(y1 - t.numpy()).max() > 1e-3  # dropout is active in train mode
