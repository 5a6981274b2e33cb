"""Recurrent layers (nn.RNN / LSTM / GRU, the cells, nn.utils.rnn) against PyTorch from the same
state_dict: outputs, final states and the gradients of the input, the initial states and every
parameter (float32, 1e-4); packed sequences in both directions and several layers; float64
gradcheck and gradgradcheck of the layers (the fused backward ops and the Tensor-op derivative that
create_graph uses); the portable (array-API) kernels against the numba ones, with numpy standing in
for CuPy."""
from __future__ import annotations

import numpy as np
import pytest

import devtensor as dt
from devtensor import nn
from devtensor.autograd import gradcheck, gradgradcheck
from devtensor.backends import rnn_portable as P
from devtensor.nn.utils import rnn as rnn_utils

torch = pytest.importorskip("torch")
TOL = dict(rtol=1e-4, atol=1e-5)


def _np(t):
    return np.asarray(t.detach().cpu()._data)


def _pair(mode, *args, **kwargs):
    torch.manual_seed(0)
    kw = dict(kwargs)
    if mode.startswith("RNN_"):
        kw["nonlinearity"] = mode[4:].lower()
        mode = "RNN"
    tm = getattr(torch.nn, mode)(*args, **kw)
    dm = getattr(nn, mode)(*args, **kw)
    res = dm.load_state_dict({k: dt.tensor(v.detach().numpy()) for k, v in tm.state_dict().items()})
    assert not res.missing_keys and not res.unexpected_keys
    assert list(dm.state_dict()) == list(tm.state_dict())
    for (n1, p1), (n2, p2) in zip(dm.named_parameters(), tm.named_parameters()):
        assert n1 == n2 and tuple(p1.shape) == tuple(p2.shape)
    return dm, tm


def _leaf(a):
    return dt.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)


def _flat(out):
    """Tensors of a (output, h) or (output, (h, c)) result, and their torch names."""
    y, h = out
    if isinstance(y, tuple):  # PackedSequence
        y = y.data
    hs = list(h) if isinstance(h, tuple) else [h]
    return [y] + hs


def _check_grads(dm, tm, douts, touts, leaves):
    rng = np.random.default_rng(7)
    dloss, tloss = 0, 0
    for d, t in zip(douts, touts):
        w = rng.standard_normal(tuple(t.shape)).astype(np.float32)
        dloss = dloss + (d * dt.tensor(w)).sum()
        tloss = tloss + (t * torch.tensor(w)).sum()
    dloss.backward()
    tloss.backward()
    for d, t in leaves:
        np.testing.assert_allclose(_np(d.grad), t.grad.numpy(), **TOL)
    tp = dict(tm.named_parameters())
    for name, p in dm.named_parameters():
        np.testing.assert_allclose(_np(p.grad), tp[name].grad.numpy(), err_msg=name, **TOL)


MODES = ["LSTM", "GRU", "RNN_TANH", "RNN_RELU"]
CONFIGS = [  # num_layers, bidirectional, batch_first, with initial state, bias
    (1, False, False, False, True),
    (2, True, False, True, True),
    (3, False, True, True, True),
    (2, True, True, False, False),
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: "L{}-bi{:d}-bf{:d}-h{:d}-b{:d}".format(*c))
def test_layer_matches_torch(mode, cfg):
    L, bi, bf, with_h, bias = cfg
    T, B, I, H = 5, 3, 4, 6
    dm, tm = _pair(mode, I, H, num_layers=L, bidirectional=bi, batch_first=bf, bias=bias)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((B, T, I) if bf else (T, B, I)).astype(np.float32)
    dx, tx = _leaf(x)
    leaves = [(dx, tx)]
    D = 2 if bi else 1
    if with_h:
        dh, th = _leaf(rng.standard_normal((L * D, B, H)).astype(np.float32) * 0.5)
        leaves.append((dh, th))
        if mode == "LSTM":
            dc, tc = _leaf(rng.standard_normal((L * D, B, H)).astype(np.float32) * 0.5)
            leaves.append((dc, tc))
            dout, tout = dm(dx, (dh, dc)), tm(tx, (th, tc))
        else:
            dout, tout = dm(dx, dh), tm(tx, th)
    else:
        dout, tout = dm(dx), tm(tx)
    douts, touts = _flat(dout), _flat(tout)
    for d, t in zip(douts, touts):
        assert tuple(d.shape) == tuple(t.shape)
        np.testing.assert_allclose(_np(d), t.detach().numpy(), **TOL)
    _check_grads(dm, tm, douts, touts, leaves)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("bi", [False, True])
def test_packed_sequences_match_torch(mode, bi):
    T, B, I, H, L = 6, 4, 3, 5, 2
    dm, tm = _pair(mode, I, H, num_layers=L, bidirectional=bi)
    rng = np.random.default_rng(2)
    lengths = [3, 6, 1, 4]  # unsorted: enforce_sorted=False sorts them
    x = rng.standard_normal((T, B, I)).astype(np.float32)
    dx, tx = _leaf(x)
    D = 2 if bi else 1
    dh, th = _leaf(rng.standard_normal((L * D, B, H)).astype(np.float32) * 0.5)
    leaves = [(dx, tx), (dh, th)]
    dp = rnn_utils.pack_padded_sequence(dx, lengths, enforce_sorted=False)
    tp = torch.nn.utils.rnn.pack_padded_sequence(tx, lengths, enforce_sorted=False)
    assert _np(dp.batch_sizes).tolist() == tp.batch_sizes.tolist()
    assert _np(dp.sorted_indices).tolist() == tp.sorted_indices.tolist()
    np.testing.assert_allclose(_np(dp.data), tp.data.detach().numpy())
    if mode == "LSTM":
        dc, tc = _leaf(rng.standard_normal((L * D, B, H)).astype(np.float32) * 0.5)
        leaves.append((dc, tc))
        dout, tout = dm(dp, (dh, dc)), tm(tp, (th, tc))
    else:
        dout, tout = dm(dp, dh), tm(tp, th)
    assert isinstance(dout[0], rnn_utils.PackedSequence)
    dpad, dlen = rnn_utils.pad_packed_sequence(dout[0], batch_first=True, padding_value=-1.0)
    tpad, tlen = torch.nn.utils.rnn.pad_packed_sequence(tout[0], batch_first=True, padding_value=-1.0)
    assert _np(dlen).tolist() == tlen.tolist() == lengths
    np.testing.assert_allclose(_np(dpad), tpad.detach().numpy(), **TOL)
    douts = [dpad] + _flat(dout)[1:]
    touts = [tpad] + _flat(tout)[1:]
    for d, t in zip(douts, touts):
        np.testing.assert_allclose(_np(d), t.detach().numpy(), **TOL)
    _check_grads(dm, tm, douts, touts, leaves)


@pytest.mark.parametrize("mode", MODES)
def test_unbatched_input(mode):
    dm, tm = _pair(mode, 3, 4, num_layers=2, bidirectional=True)
    x = np.random.default_rng(3).standard_normal((5, 3)).astype(np.float32)
    dx, tx = _leaf(x)
    douts, touts = _flat(dm(dx)), _flat(tm(tx))
    for d, t in zip(douts, touts):
        assert tuple(d.shape) == tuple(t.shape)
        np.testing.assert_allclose(_np(d), t.detach().numpy(), **TOL)
    _check_grads(dm, tm, douts, touts, [(dx, tx)])


@pytest.mark.parametrize("packed", [False, True])
def test_lstm_with_projections(packed):
    dm, tm = _pair("LSTM", 3, 6, num_layers=2, bidirectional=True, proj_size=4)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((5, 3, 3)).astype(np.float32)
    dx, tx = _leaf(x)
    if packed:
        dinp = rnn_utils.pack_padded_sequence(dx, [5, 4, 2])
        tinp = torch.nn.utils.rnn.pack_padded_sequence(tx, [5, 4, 2])
    else:
        dinp, tinp = dx, tx
    dout, tout = dm(dinp), tm(tinp)
    douts, touts = _flat(dout), _flat(tout)
    assert tuple(douts[1].shape) == (4, 3, 4) and tuple(douts[2].shape) == (4, 3, 6)
    for d, t in zip(douts, touts):
        np.testing.assert_allclose(_np(d), t.detach().numpy(), **TOL)
    _check_grads(dm, tm, douts, touts, [(dx, tx)])


def test_dropout_between_layers():
    dm, tm = _pair("LSTM", 3, 4, num_layers=3, dropout=0.5)
    x = dt.randn(6, 2, 3)
    dm.eval()
    tm.eval()
    np.testing.assert_allclose(_np(dm(x)[0]), tm(torch.tensor(_np(x)))[0].detach().numpy(), **TOL)
    dm.train()
    dt.manual_seed(3)
    a = _np(dm(x)[0])
    dt.manual_seed(3)
    b = _np(dm(x)[0])
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - _np(dm.eval()(x)[0])).max() > 1e-3
    with pytest.warns(UserWarning, match="non-zero dropout expects num_layers greater than 1"):
        nn.GRU(3, 4, dropout=0.2)


def test_reprs_and_layouts_match_torch():
    for args, kw in [((10, 20), {}), ((10, 20, 2), {"bidirectional": True, "batch_first": True, "dropout": 0.1}),
                     ((10, 20), {"bias": False, "proj_size": 5})]:
        dm, tm = _pair("LSTM", *args, **kw)
        assert repr(dm) == repr(tm)
    dm, tm = _pair("RNN_RELU", 4, 5, 2)
    assert repr(dm) == repr(tm)
    assert [[tuple(p.shape) for p in ws] for ws in dm.all_weights] == \
        [[tuple(p.shape) for p in ws] for ws in tm.all_weights]
    for cls in ("RNNCell", "LSTMCell", "GRUCell"):
        a, b = getattr(nn, cls)(3, 4, bias=False), getattr(torch.nn, cls)(3, 4, bias=False)
        assert repr(a) == repr(b)
        assert [(k, tuple(v.shape)) for k, v in a.state_dict().items()] == \
            [(k, tuple(v.shape)) for k, v in b.state_dict().items()]


def test_default_init_is_pytorchs_uniform():
    m = nn.LSTM(8, 100)
    bound = 1 / np.sqrt(100)
    for p in m.parameters():
        v = _np(p)
        assert v.min() >= -bound and v.max() <= bound and v.std() > bound / 2


@pytest.mark.parametrize("cls", ["RNNCell", "RNNCell-relu", "LSTMCell", "GRUCell"])
@pytest.mark.parametrize("with_h", [False, True])
@pytest.mark.parametrize("batched", [True, False])
def test_cells_match_torch(cls, with_h, batched):
    kw = {"nonlinearity": "relu"} if cls.endswith("relu") else {}
    name = cls.split("-")[0]
    torch.manual_seed(0)
    tm = getattr(torch.nn, name)(4, 5, **kw)
    dm = getattr(nn, name)(4, 5, **kw)
    dm.load_state_dict({k: dt.tensor(v.detach().numpy()) for k, v in tm.state_dict().items()})
    rng = np.random.default_rng(5)
    shape = (3,) if batched else ()
    dx, tx = _leaf(rng.standard_normal(shape + (4,)).astype(np.float32))
    leaves = [(dx, tx)]
    if with_h:
        dh, th = _leaf(rng.standard_normal(shape + (5,)).astype(np.float32))
        leaves.append((dh, th))
        if name == "LSTMCell":
            dc, tc = _leaf(rng.standard_normal(shape + (5,)).astype(np.float32))
            leaves.append((dc, tc))
            dout, tout = dm(dx, (dh, dc)), tm(tx, (th, tc))
        else:
            dout, tout = dm(dx, dh), tm(tx, th)
    else:
        dout, tout = dm(dx), tm(tx)
    douts = list(dout) if isinstance(dout, tuple) else [dout]
    touts = list(tout) if isinstance(tout, tuple) else [tout]
    for d, t in zip(douts, touts):
        assert tuple(d.shape) == tuple(t.shape)
        np.testing.assert_allclose(_np(d), t.detach().numpy(), **TOL)
    _check_grads(dm, tm, douts, touts, leaves)


def test_lstm_cell_state_only_gradient():
    """Only c' reaches the loss: the fused backward gets no gradient for h'."""
    dm, tm = _pair("LSTMCell", 3, 4)
    dx, tx = _leaf(np.random.default_rng(6).standard_normal((2, 3)).astype(np.float32))
    dm(dx)[1].sum().backward()
    tm(tx)[1].sum().backward()
    np.testing.assert_allclose(_np(dx.grad), tx.grad.numpy(), **TOL)


# ---- float64 gradcheck / gradgradcheck through the layers -------------------------------------------
@pytest.mark.parametrize("mode", MODES)
def test_gradcheck_layers_float64(mode):
    kw = {"nonlinearity": mode[4:].lower()} if mode.startswith("RNN_") else {}
    cls = getattr(nn, "RNN" if mode.startswith("RNN_") else mode)
    dt.manual_seed(0)
    m = cls(2, 3, num_layers=2, bidirectional=True, **kw).double()
    x = dt.randn(3, 2, 2, dtype=dt.float64, requires_grad=True)
    h = dt.randn(4, 2, 3, dtype=dt.float64, requires_grad=True)
    names = [n for n, _ in m.named_parameters()]
    params = [p.detach().requires_grad_(True) for p in m.parameters()]

    def f(x, h, *ps):
        for n, p in zip(names, ps):  # the (perturbed) tensors gradcheck passes, in the module's place
            m._parameters[n] = p
        hx = (h, h * 0.5) if mode == "LSTM" else h
        y, hn = m(rnn_utils.pack_padded_sequence(x, [3, 2]), hx)
        hn = hn[0] + hn[1] if mode == "LSTM" else hn
        return rnn_utils.pad_packed_sequence(y)[0].sum(0) * 0.5 + hn.sum(0).sum(-1, keepdim=True)

    assert gradcheck(f, (x, h, *params[:2]))
    assert gradgradcheck(f, (x, h, *params[:2]))


# ---- nn.utils.rnn ----------------------------------------------------------------------------------
def test_pad_and_pack_helpers_match_torch():
    rng = np.random.default_rng(8)
    seqs = [rng.standard_normal((n, 2)).astype(np.float32) for n in (2, 5, 3)]
    ds, ts = [dt.tensor(s) for s in seqs], [torch.tensor(s) for s in seqs]
    for kw in ({}, {"batch_first": True}, {"padding_value": 7.0, "padding_side": "left"}):
        np.testing.assert_array_equal(_np(rnn_utils.pad_sequence(ds, **kw)),
                                      torch.nn.utils.rnn.pad_sequence(ts, **kw).numpy())
    dp = rnn_utils.pack_sequence(ds, enforce_sorted=False)
    tp = torch.nn.utils.rnn.pack_sequence(ts, enforce_sorted=False)
    np.testing.assert_array_equal(_np(dp.data), tp.data.numpy())
    assert _np(dp.unsorted_indices).tolist() == tp.unsorted_indices.tolist()
    pad, lens = rnn_utils.pad_packed_sequence(dp, total_length=7)
    tpad, tlens = torch.nn.utils.rnn.pad_packed_sequence(tp, total_length=7)
    np.testing.assert_array_equal(_np(pad), tpad.numpy())
    assert lens.dtype == dt.int64 and _np(lens).tolist() == tlens.tolist()
    for a, b in zip(rnn_utils.unpack_sequence(dp), seqs):
        np.testing.assert_array_equal(_np(a), b)
    for a, b in zip(rnn_utils.unpad_sequence(pad, lens), seqs):
        np.testing.assert_array_equal(_np(a), b)
    with pytest.raises(RuntimeError, match="sorted in decreasing order"):
        rnn_utils.pack_sequence(ds)
    with pytest.raises(ValueError, match="total_length"):
        rnn_utils.pad_packed_sequence(dp, total_length=2)
    from devtensor.nn.utils.rnn import PackedSequence  # the torch import path works

    assert dt.nn.utils.rnn.pack_padded_sequence is rnn_utils.pack_padded_sequence
    assert isinstance(dp, PackedSequence)


def test_errors_are_pytorchs():
    m = nn.LSTM(3, 4)
    with pytest.raises(ValueError, match="Expected input to be 2D or 3D, got 4D"):
        m(dt.randn(1, 2, 3, 3))
    with pytest.raises(RuntimeError, match="input.size\\(-1\\) must be equal to input_size. Expected 3, got 5"):
        m(dt.randn(2, 2, 5))
    with pytest.raises(RuntimeError, match="Expected hidden size \\(1, 2, 4\\), got \\[1, 3, 4\\]"):
        m(dt.randn(2, 2, 3), (dt.randn(1, 3, 4), dt.randn(1, 2, 4)))
    with pytest.raises(RuntimeError, match="hx should also be 3-D"):
        nn.GRU(3, 4)(dt.randn(2, 2, 3), dt.randn(2, 4))
    with pytest.raises(ValueError, match="proj_size has to be smaller than hidden_size"):
        nn.LSTM(3, 4, proj_size=4)
    with pytest.raises(ValueError, match="Unknown nonlinearity"):
        nn.RNN(3, 4, nonlinearity="gelu")


def test_meta_device_shapes():
    m = nn.LSTM(3, 4, num_layers=2, bidirectional=True)
    m.to("meta")
    y, (h, c) = m(dt.randn(7, 5, 3, device="meta"))
    assert tuple(y.shape) == (7, 5, 8) and tuple(h.shape) == (4, 5, 4) and y.device.type == "meta"


# ---- the portable tier (CuPy's code) with numpy, against the numba kernels -------------------------
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("bs", [None, (4, 3, 3, 1)])
def test_portable_kernels_agree_with_numba(reverse, bs):
    from devtensor.backends.cpu import rnn_kernels as K

    rng = np.random.default_rng(9)
    T, B, H = 4, 4, 3
    X = lambda *s: rng.standard_normal(s).astype(np.float32)  # noqa: E731
    xw, w, h0, c0 = X(T, B, 4 * H), X(4 * H, H), X(B, H), X(B, H)
    a = K.lstm_sequence(xw, w, h0, c0, reverse, bs)
    b = P.lstm_sequence_xp(np, xw, w, h0, c0, reverse, bs)
    for u, v in zip(a, b):
        np.testing.assert_allclose(u, v, **TOL)
    gy, gh, gc = X(T, B, H), X(B, H), X(B, H)
    for u, v in zip(K.lstm_sequence_backward(gy, gh, gc, w, h0, c0, a[0], a[3], reverse, bs),
                    P.lstm_sequence_backward_xp(np, gy, gh, gc, w, h0, c0, a[0], a[3], reverse, bs)):
        np.testing.assert_allclose(u, v, **TOL)
    xg, wg, bg = X(T, B, 3 * H), X(3 * H, H), X(3 * H)
    a = K.gru_sequence(xg, wg, bg, h0, reverse, bs)
    b = P.gru_sequence_xp(np, xg, wg, bg, h0, reverse, bs)
    for u, v in zip(a, b):
        np.testing.assert_allclose(u, v, **TOL)
    for u, v in zip(K.gru_sequence_backward(gy, gh, wg, h0, a[0], a[2], reverse, bs),
                    P.gru_sequence_backward_xp(np, gy, gh, wg, h0, a[0], a[2], reverse, bs)):
        np.testing.assert_allclose(u, v, **TOL)
    for relu in (False, True):
        xr, wr = X(T, B, H), X(H, H)
        a = K.rnn_sequence(xr, wr, h0, reverse, bs, relu)
        b = P.rnn_sequence_xp(np, xr, wr, h0, reverse, bs, relu)
        for u, v in zip(a, b):
            np.testing.assert_allclose(u, v, **TOL)
        for u, v in zip(K.rnn_sequence_backward(gy, gh, wr, h0, a[0], reverse, bs, relu),
                        P.rnn_sequence_backward_xp(np, gy, gh, wr, h0, a[0], reverse, bs, relu)):
            np.testing.assert_allclose(u, v, **TOL)


def test_compiled_loops_agree_with_the_python_loops(monkeypatch):
    """The time loops run as one numba call per row block, the per-step GEMMs through numpy's OpenBLAS
    (backends/cpu/rnn_blas.py); without that BLAS the same source runs as Python with np.matmul. Both
    paths on the same inputs: packed and reversed, the direct and the transposed hidden GEMM, 3 blocks."""
    from devtensor.backends.cpu import rnn_blas
    from devtensor.backends.cpu import rnn_kernels as K

    blas = np.__config__.CONFIG["Build Dependencies"]["blas"]
    if blas.get("name") == "scipy-openblas" and "USE64BITINT" in blas.get("openblas configuration", ""):
        assert K.gemm_fn(np.float32) and K.gemm_fn(np.float64), "numpy's OpenBLAS gemm not found: loops run as Python"
    rng = np.random.default_rng(12)
    T, B = 6, 40
    bs = (40, 40, 30, 20, 5, 1)
    for H, dtype in ((8, np.float32), (70, np.float32), (9, np.float64)):
        X = lambda *s: (rng.standard_normal(s) * 0.4).astype(dtype)  # noqa: E731
        h0, c0, gy, gh, gc = X(B, H), X(B, H), X(T, B, H), X(B, H), X(B, H)
        w4, w3, w1, b3 = X(4 * H, H), X(3 * H, H), X(H, H), X(3 * H)
        x4, x3, x1 = X(T, B, 4 * H), X(T, B, 3 * H), X(T, B, H)
        calls = []
        for rev in (False, True):
            y, _, _, ws = K.lstm_sequence(x4, w4, h0, c0, rev, bs)
            calls += [lambda: K.lstm_sequence(x4, w4, h0, c0, rev, bs),
                      lambda: K.lstm_sequence_backward(gy, gh, gc, w4, h0, c0, y, ws, rev, bs),
                      lambda: K.lstm_sequence_backward(None, gh, None, w4, h0, c0, y, ws, rev, None)]
            yg, _, wg = K.gru_sequence(x3, w3, b3, h0, rev, bs)
            calls += [lambda: K.gru_sequence(x3, w3, b3, h0, rev, bs), lambda: K.gru_sequence(x3, w3, None, h0, rev, None),
                      lambda: K.gru_sequence_backward(gy, gh, w3, h0, yg, wg, rev, bs)]
            for relu in (False, True):
                yr, _ = K.rnn_sequence(x1, w1, h0, rev, bs, relu)
                calls += [lambda: K.rnn_sequence(x1, w1, h0, rev, bs, relu),
                          lambda: K.rnn_sequence_backward(gy, None, w1, h0, yr, rev, bs, relu)]
            compiled = [f() for f in calls]
            monkeypatch.setattr(K, "gemm_fn", lambda d: 0)
            python = [f() for f in calls]
            monkeypatch.setattr(K, "gemm_fn", rnn_blas.gemm_fn)
            for a, b in zip(compiled, python):
                for u, v in zip(a, b):
                    assert u.dtype == dtype
                    eps = 1e-5 if dtype == np.float32 else 1e-12  # the GEMMs may round differently
                    np.testing.assert_allclose(u, v, rtol=eps, atol=eps * max(1.0, float(np.abs(v).max(initial=0))))
            calls = []


def test_unpacked_loops_write_every_element(monkeypatch):
    """Without packing the loops' (T, B, ...) results are not zero-filled first: fill them with NaN
    instead and every output and gradient must still be finite."""
    from devtensor.backends.cpu import rnn_kernels as K

    monkeypatch.setattr(K, "_steps_out", lambda shape, dtype, bs: np.full(shape, np.nan, dtype))
    rng = np.random.default_rng(13)
    T, B, H = 5, 40, 70
    X = lambda *s: (rng.standard_normal(s) * 0.4).astype(np.float32)  # noqa: E731
    h0, gy, gh = X(B, H), X(T, B, H), X(B, H)
    for rev in (False, True):
        outs = list(K.lstm_sequence(X(T, B, 4 * H), X(4 * H, H), h0, h0, rev, None))
        outs += K.lstm_sequence_backward(gy, gh, gh, X(4 * H, H), h0, h0, outs[0], outs[3], rev, None)
        y, hT, ws = K.gru_sequence(X(T, B, 3 * H), X(3 * H, H), X(3 * H), h0, rev, None)
        outs += [y, hT, ws, *K.gru_sequence_backward(gy, gh, X(3 * H, H), h0, y, ws, rev, None)]
        for relu in (False, True):
            y, hT = K.rnn_sequence(X(T, B, H), X(H, H), h0, rev, None, relu)
            outs += [y, hT, *K.rnn_sequence_backward(gy, gh, X(H, H), h0, y, rev, None, relu)]
        assert all(np.isfinite(o).all() for o in outs)


_BITS = r"""
import hashlib, os, sys
if os.environ.get("ONE_CORE"):
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
sys.path.insert(0, sys.argv[1])
import numpy as np
import devtensor as dt
from devtensor.backends.cpu import threads
h = hashlib.sha256()
for mode, H in (("LSTM", 20), ("LSTM", 70), ("GRU", 70), ("RNN", 20)):
    dt.manual_seed(0)
    m = getattr(dt.nn, mode)(5, H, num_layers=2, bidirectional=True)
    x = dt.tensor(np.random.default_rng(1).standard_normal((7, 40, 5)).astype(np.float32), requires_grad=True)
    y = m(x)[0]
    (y * y).sum().backward()
    for a in [y, x.grad] + [p.grad for p in m.parameters()]:
        h.update(np.ascontiguousarray(a.detach().numpy()).tobytes())
print(threads.threads(), h.hexdigest())
"""


def _bits(one_core):
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = dict(os.environ)
    env.pop("ONE_CORE", None)
    if one_core:
        env.update(ONE_CORE="1", OPENBLAS_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", _BITS, str(Path(__file__).resolve().parents[1])], env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    n, digest = out.stdout.split()[-2:]
    return int(n), digest


def test_recurrent_bits_do_not_depend_on_the_thread_count():
    """40 sequences run as row blocks of 16 + 16 + 8 on however many cores there are (one thread per block,
    or all blocks on one): the outputs and every gradient are the same bits on one core as on all."""
    import os

    if not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs 2+ cores and sched_setaffinity to compare against one core")
    n_all, all_cores = _bits(False)
    n_one, one_core = _bits(True)
    assert n_all >= 2 and n_one == 1
    assert all_cores == one_core, "the recurrent layers' bits depend on the number of threads"


def test_float16_runs_the_portable_tier():
    m = nn.GRU(3, 4).to(dt.float16)
    y, h = m(dt.randn(3, 2, 3, dtype=dt.float16))
    assert y.dtype == dt.float16 and tuple(h.shape) == (1, 2, 4)
    from devtensor.backends import get_backend

    assert get_backend("cpu").serving("lstm_sequence", "float16")[0] == "portable"
    assert get_backend("cpu").serving("lstm_sequence", "float32")[0] == "specialised"


@pytest.mark.parametrize("mode", MODES)
def test_small_batch_wide_hidden(mode):
    """4 * batch <= hidden: the forward loops compute W @ h.T (backends/cpu/rnn_kernels.hidden_gemm)."""
    dm, tm = _pair(mode, 3, 16, num_layers=2, bidirectional=True)
    x = np.random.default_rng(10).standard_normal((5, 3, 3)).astype(np.float32)
    dx, tx = _leaf(x)
    dp = rnn_utils.pack_padded_sequence(dx, [5, 3, 2])
    tp = torch.nn.utils.rnn.pack_padded_sequence(tx, [5, 3, 2])
    douts, touts = _flat(dm(dp)), _flat(tm(tp))
    for d, t in zip(douts, touts):
        np.testing.assert_allclose(_np(d), t.detach().numpy(), **TOL)
    _check_grads(dm, tm, douts, touts, [(dx, tx)])


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("packed", [False, True])
def test_recurrent_layers_export_to_onnx(mode, packed, tmp_path):
    """lstm_sequence -> ONNX LSTM, rnn_sequence -> GRU / RNN (gates reordered, batch_sizes as sequence_lens)."""
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from layer_export_cases import _Seq

    kw = {"nonlinearity": mode[4:].lower()} if mode.startswith("RNN_") else {}
    cls = getattr(nn, "RNN" if mode.startswith("RNN_") else mode)
    dt.manual_seed(0)
    m = _Seq(cls(4, 5, num_layers=2, batch_first=True, bidirectional=True, **kw), packed=packed).eval()
    x = dt.randn(3, 5, 4)
    path = str(tmp_path / "rnn.onnx")
    dyn = None if packed else {"x": {0: "n"}}
    dt.onnx.export(m, (x,), path, input_names=["x"], dynamic_axes=dyn)
    sess = ort.InferenceSession(path)
    for xn in ([x] if packed else [x, dt.randn(4, 5, 4)]):
        for got, want in zip(sess.run(None, {"x": _np(xn)}), m(xn)):
            np.testing.assert_allclose(got, _np(want), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("hidden", [8, 70])
def test_batches_split_into_row_blocks(mode, hidden):
    """40 sequences: the cpu loops run blocks of 16 + 16 + 8 rows independently (backends/cpu/rnn_kernels.py),
    with the direct (H 8) or the transposed (H 70) per-step GEMM; packed, so blocks go idle at different steps."""
    dm, tm = _pair(mode, 3, hidden, bidirectional=True)
    rng = np.random.default_rng(11)
    x = rng.standard_normal((6, 40, 3)).astype(np.float32)
    lengths = sorted(rng.integers(1, 7, 40).tolist(), reverse=True)
    lengths[0] = 6
    dx, tx = _leaf(x)
    douts = _flat(dm(rnn_utils.pack_padded_sequence(dx, lengths)))
    touts = _flat(tm(torch.nn.utils.rnn.pack_padded_sequence(tx, lengths)))
    for d, t in zip(douts, touts):
        np.testing.assert_allclose(_np(d), t.detach().numpy(), **TOL)
    _check_grads(dm, tm, douts, touts, [(dx, tx)])
