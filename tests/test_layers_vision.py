"""Convolution, pooling and resampling layers against PyTorch from the same state_dict: Conv1d
(padding modes, 'same'), ConvTranspose1d/2d (output_padding, output_size, dilation, groups), MaxPool1d,
AvgPool1d, adaptive pooling (even and uneven windows, indices), Upsample / F.interpolate (nearest,
nearest-exact, linear, bilinear and bicubic with and without align_corners, area), PixelShuffle /
Unshuffle, the padding layers, Unfold / Fold: outputs and the gradients of the input and of every
parameter (float32 1e-4); float64 gradcheck of the composites built on conv2d's backward op."""
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


def _compare(dm, tm, *xs, tol=TOL):
    """Same weights, same inputs: outputs (a tensor or a tuple) and the gradients of inputs and parameters."""
    if list(tm.state_dict()):
        res = dm.load_state_dict({k: dt.tensor(v.detach().numpy()) for k, v in tm.state_dict().items()})
        assert not res.missing_keys and not res.unexpected_keys
    dxs = [dt.tensor(x, requires_grad=x.dtype.kind == "f") for x in xs]
    txs = [torch.tensor(x, requires_grad=x.dtype.kind == "f") for x in xs]
    d, t = dm(*dxs), tm(*txs)
    d, t = (d if isinstance(d, tuple) else (d,)), (t if isinstance(t, tuple) else (t,))
    rng = np.random.default_rng(3)
    dl, tl = 0, 0
    for a, b in zip(d, t):
        assert tuple(a.shape) == tuple(b.shape), (a.shape, b.shape)
        if not b.dtype.is_floating_point:
            np.testing.assert_array_equal(_np(a), b.numpy())
            continue
        np.testing.assert_allclose(_np(a), b.detach().numpy(), **tol)
        w = rng.standard_normal(tuple(b.shape)).astype(np.float32)
        dl, tl = dl + (a * dt.tensor(w)).sum(), tl + (b * torch.tensor(w)).sum()
    dl.backward()
    tl.backward()
    for a, b in zip(dxs, txs):
        if b.grad is not None:
            np.testing.assert_allclose(_np(a.grad), b.grad.numpy(), **tol)
    tp = dict(tm.named_parameters())
    for name, p in dm.named_parameters():
        np.testing.assert_allclose(_np(p.grad), tp[name].grad.numpy(), err_msg=name, **tol)
    assert repr(dm) == repr(tm)


def _x(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _pair(name, *args, **kwargs):
    torch.manual_seed(0)
    return getattr(nn, name)(*args, **kwargs), getattr(torch.nn, name)(*args, **kwargs)


# ---- convolution ------------------------------------------------------------------------------------
CONV1D = [
    dict(),
    dict(stride=2, padding=1, bias=False),
    dict(padding="same", dilation=2),
    dict(padding="same", kernel_size=4),
    dict(padding="valid", groups=2),
    dict(padding=2, padding_mode="reflect"),
    dict(padding=1, padding_mode="replicate", stride=2),
    dict(padding=2, padding_mode="circular"),
]


@pytest.mark.parametrize("kw", CONV1D, ids=str)
def test_conv1d(kw):
    kw = dict(kw)
    k = kw.pop("kernel_size", 3)
    dm, tm = _pair("Conv1d", 4, 6, k, **kw)
    _compare(dm, tm, _x(2, 4, 11))
    dm2, tm2 = _pair("Conv1d", 4, 6, k, **kw)
    _compare(dm2, tm2, _x(4, 9, seed=1))  # unbatched (C, L)


CONVT = [
    dict(),
    dict(stride=2, padding=1, output_padding=1),
    dict(stride=3, padding=2, dilation=2, output_padding=2),
    dict(stride=2, groups=2, bias=False),
    dict(stride=1, padding=0, output_padding=1, dilation=3),  # output_padding >= stride, < dilation
]


@pytest.mark.parametrize("kw", CONVT, ids=str)
def test_conv_transpose2d(kw):
    dm, tm = _pair("ConvTranspose2d", 4, 6, (3, 2), **kw)
    _compare(dm, tm, _x(2, 4, 5, 6))


@pytest.mark.parametrize("kw", CONVT, ids=str)
def test_conv_transpose1d(kw):
    dm, tm = _pair("ConvTranspose1d", 4, 6, 3, **kw)
    _compare(dm, tm, _x(2, 4, 7))


def test_conv_transpose_output_size():
    dm, tm = _pair("ConvTranspose2d", 3, 2, 3, stride=2, padding=1)
    x = _x(1, 3, 4, 4)
    d = dm(dt.tensor(x), output_size=[8, 8])
    t = tm(torch.tensor(x), output_size=[8, 8])
    dm.load_state_dict({k: dt.tensor(v.detach().numpy()) for k, v in tm.state_dict().items()})
    d = dm(dt.tensor(x), output_size=[8, 8])
    assert tuple(d.shape) == (1, 2, 8, 8)
    np.testing.assert_allclose(_np(d), t.detach().numpy(), **TOL)
    with pytest.raises(ValueError, match="valid sizes range"):
        dm(dt.tensor(x), output_size=[12, 12])


def test_dcgan_shapes():
    """The DCGAN generator's upsampling chain: 1x1 -> 4x4 -> 8x8 -> 16x16 -> 32x32."""
    g = nn.Sequential(nn.ConvTranspose2d(8, 16, 4, 1, 0, bias=False), nn.ConvTranspose2d(16, 8, 4, 2, 1),
                      nn.ConvTranspose2d(8, 4, 4, 2, 1), nn.ConvTranspose2d(4, 1, 4, 2, 1))
    assert tuple(g(dt.randn(2, 8, 1, 1)).shape) == (2, 1, 32, 32)


def test_conv_composites_gradcheck_float64():
    rng = np.random.default_rng(4)
    x = dt.tensor(rng.standard_normal((1, 2, 3, 4)), requires_grad=True)
    w = dt.tensor(rng.standard_normal((2, 3, 2, 3)), requires_grad=True)
    assert gradcheck(lambda x, w: F.conv_transpose2d(x, w, stride=2, padding=1, output_padding=1), (x, w))
    x1 = dt.tensor(rng.standard_normal((2, 2, 6)), requires_grad=True)
    w1 = dt.tensor(rng.standard_normal((3, 2, 3)), requires_grad=True)
    assert gradcheck(lambda x, w: F.conv1d(x, w, padding="same"), (x1, w1))
    f = dt.tensor(rng.standard_normal((1, 8, 10)), requires_grad=True)
    assert gradcheck(lambda f: F.fold(f, (4, 5), (2, 2), padding=(1, 0), stride=(1, 2)), (f,))


# ---- pooling ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("kw", [dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1),
                                dict(kernel_size=2, dilation=2, ceil_mode=True),
                                dict(kernel_size=3, return_indices=True)], ids=str)
def test_max_pool1d(kw):
    dm, tm = _pair("MaxPool1d", **kw)
    x = np.random.default_rng(0).permutation(2 * 3 * 11).reshape(2, 3, 11).astype(np.float32)  # no ties
    _compare(dm, tm, x)


@pytest.mark.parametrize("kw", [dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1),
                                dict(kernel_size=3, stride=2, padding=1, count_include_pad=False, ceil_mode=True)],
                         ids=str)
def test_avg_pool1d(kw):
    dm, tm = _pair("AvgPool1d", **kw)
    _compare(dm, tm, _x(2, 3, 10))


@pytest.mark.parametrize("out", [1, 3, (2, 5), (None, 4), (7, 3), 4])
def test_adaptive_avg_pool2d(out):
    dm, tm = _pair("AdaptiveAvgPool2d", out)
    _compare(dm, tm, _x(2, 3, 8, 10))
    _compare(*_pair("AdaptiveAvgPool2d", out), _x(3, 7, 9, seed=2))  # unbatched, uneven


@pytest.mark.parametrize("out", [1, 3, 4, 7])
def test_adaptive_avg_pool1d(out):
    _compare(*_pair("AdaptiveAvgPool1d", out), _x(2, 3, 10))


@pytest.mark.parametrize("out", [(2, 5), 3, (4, 3), 1])
@pytest.mark.parametrize("indices", [False, True])
def test_adaptive_max_pool2d(out, indices):
    x = np.random.default_rng(5).permutation(2 * 3 * 8 * 10).reshape(2, 3, 8, 10).astype(np.float32)
    _compare(*_pair("AdaptiveMaxPool2d", out, return_indices=indices), x)


@pytest.mark.parametrize("out", [3, 4, 1])
def test_adaptive_max_pool1d(out):
    x = np.random.default_rng(6).permutation(2 * 3 * 10).reshape(2, 3, 10).astype(np.float32)
    _compare(*_pair("AdaptiveMaxPool1d", out, return_indices=True), x)


# ---- resampling -------------------------------------------------------------------------------------
INTERP = [
    (4, dict(scale_factor=2, mode="nearest")),
    (4, dict(size=(7, 5), mode="nearest")),
    (4, dict(scale_factor=1.7, mode="nearest")),
    (4, dict(size=(7, 5), mode="nearest-exact")),
    (4, dict(scale_factor=2, mode="bilinear", align_corners=False)),
    (4, dict(size=(9, 3), mode="bilinear", align_corners=True)),
    (4, dict(size=(3, 4), mode="bilinear")),
    (4, dict(scale_factor=1.5, mode="bilinear", recompute_scale_factor=True)),
    (4, dict(size=(9, 7), mode="bicubic", align_corners=False)),
    (4, dict(scale_factor=2, mode="bicubic", align_corners=True)),
    (4, dict(size=(3, 2), mode="area")),
    (3, dict(scale_factor=3, mode="linear")),
    (3, dict(size=13, mode="linear", align_corners=True)),
    (3, dict(size=13, mode="nearest")),
]


@pytest.mark.parametrize("ndim,kw", INTERP, ids=lambda v: str(v))
def test_interpolate(ndim, kw):
    x = _x(2, 3, 6, 5) if ndim == 4 else _x(2, 3, 6)
    dx, tx = dt.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    d, t = F.interpolate(dx, **kw), TF.interpolate(tx, **kw)
    assert tuple(d.shape) == tuple(t.shape)
    np.testing.assert_allclose(_np(d), t.detach().numpy(), **TOL)
    w = _x(*t.shape, seed=9)
    (d * dt.tensor(w)).sum().backward()
    (t * torch.tensor(w)).sum().backward()
    np.testing.assert_allclose(_np(dx.grad), tx.grad.numpy(), **TOL)


def test_upsample_modules():
    x = _x(1, 2, 4, 5)
    _compare(*_pair("Upsample", scale_factor=2, mode="nearest"), x)
    _compare(*_pair("Upsample", size=(6, 7), mode="bilinear", align_corners=False), x)
    _compare(*_pair("UpsamplingNearest2d", scale_factor=3), x)
    _compare(*_pair("UpsamplingBilinear2d", size=(8, 9)), x)


def test_pixel_shuffle_roundtrip():
    x = _x(2, 18, 4, 5)
    _compare(*_pair("PixelShuffle", 3), x)
    _compare(*_pair("PixelUnshuffle", 2), _x(2, 3, 4, 6))
    y = F.pixel_unshuffle(F.pixel_shuffle(dt.tensor(x), 3), 3)
    np.testing.assert_array_equal(_np(y), x)


PADS = [
    ("ZeroPad2d", (1, 2, 0, 3)), ("ZeroPad2d", 2), ("ZeroPad1d", (2, 1)), ("ConstantPad2d", ((1, 0, 2, 1), 3.5)),
    ("ConstantPad1d", (2, -0.5)), ("ReflectionPad2d", (2, 1, 3, 0)), ("ReflectionPad1d", 3),
    ("ReplicationPad2d", (3, 1, 0, 2)), ("ReplicationPad1d", (1, 4)), ("CircularPad2d", (1, 2, 2, 1)),
    ("CircularPad1d", 2),
]


@pytest.mark.parametrize("name,args", PADS, ids=lambda v: str(v))
def test_padding_layers(name, args):
    args = args if isinstance(args, tuple) and name.startswith("Constant") else (args,)
    x = _x(2, 3, 5, 6) if name.endswith("2d") else _x(2, 3, 6)
    _compare(*_pair(name, *args), x)


def test_pad_modes_and_negative_constant_padding():
    x = _x(2, 3, 5, 6)
    for mode in ("reflect", "replicate", "circular"):
        np.testing.assert_array_equal(_np(F.pad(dt.tensor(x), (1, 2, 2, 1), mode=mode)),
                                      TF.pad(torch.tensor(x), (1, 2, 2, 1), mode=mode).numpy())
    np.testing.assert_array_equal(_np(F.pad(dt.tensor(x), (-1, 2, 1, -2))),
                                  TF.pad(torch.tensor(x), (-1, 2, 1, -2)).numpy())
    with pytest.raises(RuntimeError, match="Padding size should be less than"):
        F.pad(dt.tensor(_x(2, 3, 6)), (6, 0), mode="reflect")
    with pytest.raises(NotImplementedError, match="Padding size 2 is not supported for 4D input"):
        F.pad(dt.tensor(x), (1, 0), mode="reflect")


@pytest.mark.parametrize("kw", [dict(kernel_size=2), dict(kernel_size=(2, 3), stride=(2, 1), padding=1),
                                dict(kernel_size=3, dilation=2, padding=2)], ids=str)
def test_unfold_fold(kw):
    x = _x(2, 3, 7, 8)
    _compare(*_pair("Unfold", **kw), x)
    cols = TF.unfold(torch.tensor(x), **kw).numpy()
    _compare(*_pair("Fold", (7, 8), **kw), cols)


# ---- ONNX: the layers export (conv2d's input-gradient op as ConvTranspose) ---------------------------
@pytest.mark.parametrize("name", ["convT", "convT-op-groups-dilation", "convT1d", "dcgan", "vision-stack"])
def test_layers_export_to_onnx(name, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    dt.manual_seed(0)
    m, x = {
        "convT": (nn.ConvTranspose2d(3, 2, 4, 2, 1), dt.randn(2, 3, 4, 5)),
        "convT-op-groups-dilation": (nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1, groups=2,
                                                        dilation=2), dt.randn(2, 4, 5, 4)),
        "convT1d": (nn.ConvTranspose1d(3, 2, 3, stride=2, output_padding=1), dt.randn(2, 3, 7)),
        "dcgan": (nn.Sequential(nn.ConvTranspose2d(8, 16, 7, 1, 0, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
                                nn.ConvTranspose2d(16, 1, 4, 2, 1, bias=False), nn.Tanh()), dt.randn(2, 8, 1, 1)),
        "vision-stack": (nn.Sequential(nn.Conv1d(3, 4, 3, padding="same", padding_mode="reflect"), nn.Hardswish(),
                                       nn.AdaptiveAvgPool1d(5), nn.GroupNorm(2, 4), nn.PReLU(4)), dt.randn(2, 3, 11)),
    }[name]
    m.eval()
    path = str(tmp_path / "m.onnx")
    dt.onnx.export(m, (x,), path, input_names=["x"], output_names=["y"], dynamic_axes={"x": {0: "n"}, "y": {0: "n"}})
    sess = ort.InferenceSession(path)
    for n in (2, 3):
        xn = dt.randn(n, *x.shape[1:])
        np.testing.assert_allclose(sess.run(None, {"x": _np(xn)})[0], _np(m(xn)), rtol=1e-4, atol=1e-5)
