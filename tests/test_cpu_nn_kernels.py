"""The cpu nn kernels (backends/cpu: conv.py with its Winograd and direct 3x3 fast paths, pooling.py,
softmax_ce.py, optim_steps.py) against independent numpy references (direct loops / einsum over
padded arrays, naive softmax, finite differences), plus adjoint identities for the conv and
pooling backwards, and bit-for-bit equality across thread counts."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from devtensor.backends.cpu import conv as C
from devtensor.backends.cpu import optim_steps as O
from devtensor.backends.cpu import pooling as P
from devtensor.backends.cpu import softmax_ce as S

RNG = np.random.default_rng(1234)


def rand(*shape, dtype=np.float64):
    return RNG.standard_normal(shape).astype(dtype)


def tol(dtype):
    return dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-10)


@pytest.fixture
def small_chunks(monkeypatch):
    """Force several conv chunks (and a ragged last one) on tiny inputs."""
    monkeypatch.setattr(C, "_CONV_CHUNK_BYTES", 1)


@pytest.fixture(params=["numba", "numpy", "numpy-split"])
def rows_path(request, monkeypatch):
    """Run the row kernels through the fused numba loops, through the numpy path, and through the
    numpy path with its rows split over the cores (every size)."""
    monkeypatch.setattr(S, "_ROWS_NUMPY_MIN", 1 << 60 if request.param == "numba" else 0)
    monkeypatch.setattr(S, "_ROWS_NUMPY_MIN_C", 0)
    if request.param == "numpy-split":
        monkeypatch.setattr(S, "_ROWS_SPLIT_MIN", 1)
    return request.param


@pytest.fixture
def parallel(monkeypatch):
    """Route every size through the parallel=True twins."""
    monkeypatch.setattr(P, "_PAR_MIN_POOL", 0)
    monkeypatch.setattr(O, "_PAR_MIN_OPTIM", 0)


# ---------------------------------------------------------------------------------------
# conv2d
# ---------------------------------------------------------------------------------------

def conv_geometry(x_shape, w_shape, stride, padding, dilation):
    (_, _, H, W), (_, _, KH, KW) = x_shape, w_shape
    OH = (H + 2 * padding[0] - dilation[0] * (KH - 1) - 1) // stride[0] + 1
    OW = (W + 2 * padding[1] - dilation[1] * (KW - 1) - 1) // stride[1] + 1
    return OH, OW


def tap(xp, i, j, stride, dilation, OH, OW):
    """The (N, C, OH, OW) strided slice of a padded input read by kernel tap (i, j)."""
    h0, w0 = i * dilation[0], j * dilation[1]
    return xp[:, :, h0:h0 + stride[0] * (OH - 1) + 1:stride[0], w0:w0 + stride[1] * (OW - 1) + 1:stride[1]]


def conv_ref(x, w, b, stride, padding, dilation, groups):
    x = x.astype(np.float64)
    w = w.astype(np.float64)
    N, C, H, W = x.shape
    Kout, cg, KH, KW = w.shape
    OH, OW = conv_geometry(x.shape, w.shape, stride, padding, dilation)
    xp = np.pad(x, ((0, 0), (0, 0), (padding[0],) * 2, (padding[1],) * 2))
    y = np.zeros((N, Kout, OH, OW))
    kg = Kout // groups
    for g, i, j in itertools.product(range(groups), range(KH), range(KW)):
        patch = tap(xp[:, g * cg:(g + 1) * cg], i, j, stride, dilation, OH, OW)
        y[:, g * kg:(g + 1) * kg] += np.einsum("nchw,kc->nkhw", patch, w[g * kg:(g + 1) * kg, :, i, j])
    if b is not None:
        y += b.astype(np.float64)[None, :, None, None]
    return y


def conv_grads_ref(gy, x, w, stride, padding, dilation, groups):
    """(gx, gw) of sum(gy * conv(x, w)), by scattering the same taps back."""
    gy, x, w = (a.astype(np.float64) for a in (gy, x, w))
    N, C, H, W = x.shape
    Kout, cg, KH, KW = w.shape
    OH, OW = gy.shape[2:]
    xp = np.pad(x, ((0, 0), (0, 0), (padding[0],) * 2, (padding[1],) * 2))
    gxp = np.zeros_like(xp)
    gw = np.zeros_like(w)
    kg = Kout // groups
    for g, i, j in itertools.product(range(groups), range(KH), range(KW)):
        gyg = gy[:, g * kg:(g + 1) * kg]
        patch = tap(xp[:, g * cg:(g + 1) * cg], i, j, stride, dilation, OH, OW)
        gw[g * kg:(g + 1) * kg, :, i, j] = np.einsum("nkhw,nchw->kc", gyg, patch)
        tap(gxp[:, g * cg:(g + 1) * cg], i, j, stride, dilation, OH, OW)[...] += \
            np.einsum("nkhw,kc->nchw", gyg, w[g * kg:(g + 1) * kg, :, i, j])
    gx = gxp[:, :, padding[0]:padding[0] + H, padding[1]:padding[1] + W]
    return gx, gw


# (x_shape, w_shape, stride, padding, dilation, groups)
CONV_CASES = [
    ((2, 3, 7, 6), (4, 3, 3, 3), (1, 1), (0, 0), (1, 1), 1),
    ((2, 3, 7, 6), (4, 3, 3, 2), (1, 1), (1, 2), (1, 1), 1),
    ((3, 4, 9, 8), (6, 2, 3, 3), (1, 1), (2, 1), (2, 1), 2),
    ((2, 3, 9, 10), (5, 3, 3, 2), (2, 1), (1, 0), (1, 2), 1),
    ((2, 6, 11, 9), (6, 2, 2, 3), (2, 3), (1, 1), (1, 1), 3),
    ((1, 2, 8, 8), (3, 2, 4, 4), (3, 2), (2, 2), (1, 1), 1),
    ((2, 4, 5, 5), (6, 4, 1, 1), (1, 1), (0, 0), (1, 1), 1),   # pointwise fast path
    ((2, 4, 5, 5), (6, 2, 1, 1), (1, 1), (0, 0), (1, 1), 2),   # pointwise, grouped
    ((2, 4, 5, 5), (3, 4, 1, 1), (2, 2), (1, 1), (1, 1), 1),   # 1x1 with stride and padding
    ((2, 3, 4, 5), (2, 3, 4, 5), (1, 1), (0, 0), (1, 1), 1),   # kernel covers the input
    ((3, 1, 6, 6), (3, 1, 3, 3), (1, 1), (1, 1), (1, 1), 1),   # single input channel
    ((2, 4, 6, 7), (4, 1, 3, 3), (1, 1), (1, 1), (1, 1), 4),   # depthwise
    ((2, 4, 6, 6), (4, 2, 3, 3), (1, 1), (0, 0), (1, 1), 2),   # grouped, no padding
    ((2, 2, 10, 9), (3, 2, 2, 2), (3, 4), (0, 1), (2, 1), 1),  # stride > kernel: pixels never read
]


def conv_ids(case):
    x, w, s, p, d, g = case
    return f"x{x}-w{w}-s{s}-p{p}-d{d}-g{g}"


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", CONV_CASES, ids=conv_ids)
def test_conv2d_matches_reference(case, dtype):
    x_shape, w_shape, stride, padding, dilation, groups = case
    x, w, b = rand(*x_shape, dtype=dtype), rand(*w_shape, dtype=dtype), rand(w_shape[0], dtype=dtype)
    y = C.conv2d_forward(x, w, b, stride, padding, dilation, groups)
    assert y.dtype == dtype and type(y) is np.ndarray
    np.testing.assert_allclose(y, conv_ref(x, w, b, stride, padding, dilation, groups), **tol(dtype))

    gy = rand(*y.shape, dtype=dtype)
    gx = C.conv2d_backward_input(gy, w, x.shape, stride, padding, dilation, groups)
    gw = C.conv2d_backward_weight(gy, x, w.shape, stride, padding, dilation, groups)
    gx_ref, gw_ref = conv_grads_ref(gy, x, w, stride, padding, dilation, groups)
    assert gx.dtype == dtype and gw.dtype == dtype
    assert gx.shape == x.shape and gw.shape == w.shape
    np.testing.assert_allclose(gx, gx_ref, **tol(dtype))
    np.testing.assert_allclose(gw, gw_ref, **tol(dtype))


@pytest.mark.parametrize("case", CONV_CASES, ids=conv_ids)
def test_conv2d_adjoint_identities(case):
    """<conv(x; w), gy> == <x, backward_input(gy)> == <w, backward_weight(gy, x)> (no bias)."""
    x_shape, w_shape, stride, padding, dilation, groups = case
    x, w = rand(*x_shape), rand(*w_shape)
    y = C.conv2d_forward(x, w, None, stride, padding, dilation, groups)
    gy = rand(*y.shape)
    lhs = np.vdot(y, gy)
    assert np.vdot(x, C.conv2d_backward_input(gy, w, x.shape, stride, padding, dilation, groups)) == \
        pytest.approx(lhs, rel=1e-10, abs=1e-10)
    assert np.vdot(w, C.conv2d_backward_weight(gy, x, w.shape, stride, padding, dilation, groups)) == \
        pytest.approx(lhs, rel=1e-10, abs=1e-10)


@pytest.mark.parametrize("case", [CONV_CASES[i] for i in (1, 2, 4, 10)], ids=conv_ids)
def test_conv2d_many_chunks(case, small_chunks):
    x_shape, w_shape, stride, padding, dilation, groups = case
    x_shape = (5,) + x_shape[1:]
    x, w, b = rand(*x_shape), rand(*w_shape), rand(w_shape[0])
    y = C.conv2d_forward(x, w, b, stride, padding, dilation, groups)
    np.testing.assert_allclose(y, conv_ref(x, w, b, stride, padding, dilation, groups), **tol(np.float64))
    gy = rand(*y.shape)
    gx_ref, gw_ref = conv_grads_ref(gy, x, w, stride, padding, dilation, groups)
    np.testing.assert_allclose(C.conv2d_backward_input(gy, w, x.shape, stride, padding, dilation, groups),
                               gx_ref, **tol(np.float64))
    np.testing.assert_allclose(C.conv2d_backward_weight(gy, x, w.shape, stride, padding, dilation, groups),
                               gw_ref, **tol(np.float64))


def test_conv2d_non_contiguous_inputs_and_finite_differences():
    x = rand(3, 2, 7, 6).transpose(0, 1, 3, 2)  # (3, 2, 6, 7), not C-contiguous
    w = rand(2, 3, 2, 2).transpose(1, 0, 2, 3)[:, :, ::-1, :]  # (3, 2, 2, 2), permuted, negative strides
    b = rand(6)[::2]
    args = ((1, 2), (1, 0), (2, 1), 1)
    y = C.conv2d_forward(x, w, b, *args)
    np.testing.assert_allclose(y, conv_ref(x, w, b, *args), rtol=1e-12, atol=1e-12)
    gy = rand(*y.shape)
    gy_nc = np.asfortranarray(gy)
    gx = C.conv2d_backward_input(gy_nc, w, x.shape, *args)
    gw = C.conv2d_backward_weight(gy_nc, x, w.shape, *args)
    # central differences of L(x, w) = sum(gy * conv(x, w)) at a few coordinates
    h = 1e-6
    for arr, grad in ((x, gx), (w, gw)):
        base = np.array(arr)
        for idx in [tuple(RNG.integers(0, s) for s in base.shape) for _ in range(4)]:
            plus, minus = base.copy(), base.copy()
            plus[idx] += h
            minus[idx] -= h
            xa, wa = (plus, w) if arr is x else (x, plus)
            xb, wb = (minus, w) if arr is x else (x, minus)
            fd = (np.vdot(gy, C.conv2d_forward(xa, wa, b, *args))
                  - np.vdot(gy, C.conv2d_forward(xb, wb, b, *args))) / (2 * h)
            assert grad[idx] == pytest.approx(fd, rel=1e-6, abs=1e-6)


def test_conv2d_empty_batch_and_return_types():
    x, w = rand(0, 3, 5, 5, dtype=np.float32), rand(4, 3, 3, 3, dtype=np.float32)
    a = ((1, 1), (1, 1), (1, 1), 1)
    y = C.conv2d_forward(x, w, None, *a)
    assert y.shape == (0, 4, 5, 5) and y.dtype == np.float32
    assert C.conv2d_backward_input(y, w, x.shape, *a).shape == x.shape
    gw = C.conv2d_backward_weight(y, x, w.shape, *a)
    assert gw.shape == w.shape and not gw.any()


# ---------------------------------------------------------------------------------------
# conv2d fast paths: Winograd F(2x2, 3x3) and F(4x4, 3x3) (winograd.py) and direct 3x3 loops
# for few input channels (direct3x3.py), both picked by shape inside the conv2d_* entry points
# ---------------------------------------------------------------------------------------

from devtensor.backends.cpu import direct3x3, threads, winograd  # noqa: E402

# (x_shape, K, padding): odd H/W (partial tiles at the edges), padding 0/1/2, batch 1, C and
# K off the micro-kernel blocks (C % 4, K % 8), a 1x1 output, large channels
WINO_CASES = [
    ((2, 8, 7, 9), 8, (0, 0)),
    ((2, 8, 7, 9), 8, (1, 1)),
    ((3, 9, 11, 5), 13, (2, 1)),
    ((1, 16, 6, 6), 16, (1, 1)),
    ((2, 8, 3, 3), 10, (0, 0)),      # OH = OW = 1: one tile, mostly padding
    ((2, 12, 4, 3), 8, (0, 2)),
    ((2, 64, 10, 12), 96, (1, 1)),
    ((5, 32, 26, 26), 64, (0, 0)),   # the MNIST CNN's conv2 (tiles cover x: no pad copy)
]
DIRECT_CASES = [
    ((3, 1, 7, 6), 4, (0, 0)),
    ((2, 1, 28, 28), 32, (0, 0)),    # the MNIST CNN's conv1
    ((2, 3, 9, 11), 5, (1, 2)),      # odd K: the single-channel remainder loop
    ((1, 2, 5, 4), 7, (2, 0)),
    ((2, 3, 3, 3), 3, (0, 0)),       # OH = OW = 1
]


def wino_ids(case):
    x, k, p = case
    return f"x{x}-k{k}-p{p}"


def conv_scale_err(a, ref):
    """max |a - ref| relative to the reference's scale."""
    return np.abs(a - ref).max() / np.abs(ref).max()


def fast_path_case(case, dtype):
    x_shape, k, padding = case
    x = rand(*x_shape, dtype=dtype)
    w = rand(k, x_shape[1], 3, 3, dtype=dtype)
    b = rand(k, dtype=dtype)
    args = ((1, 1), padding, (1, 1), 1)
    return x, w, b, args


@pytest.fixture(params=["one thread", "uneven threads"])
def conv_threads(request, monkeypatch):
    """Run the fast paths on one thread, and with images split unevenly over 3 threads."""
    n = 1 if request.param == "one thread" else 3
    for mod in (winograd, direct3x3):
        monkeypatch.setattr(mod, "threads", lambda: n)
    return n


@pytest.fixture(params=[2, 4], ids=["F(2x2,3x3)", "F(4x4,3x3)"])
def wino_tile(request, monkeypatch):
    """Force Winograd F(2x2, 3x3) or F(4x4, 3x3) whatever the shape, forward included."""
    monkeypatch.setattr(winograd, "tile", lambda C, K, OH, OW: request.param)
    monkeypatch.setattr(winograd, "FORWARD_TILE", request.param)
    return request.param


def test_fast_paths_are_picked_by_shape():
    def cv(x_shape, w_shape, stride=(1, 1), dilation=(1, 1), groups=1):
        return C._Conv(x_shape, w_shape, stride, (1, 1), dilation, groups, np.dtype(np.float32))

    assert cv((2, 32, 26, 26), (64, 32, 3, 3)).winograd()
    assert cv((2, 1, 28, 28), (32, 1, 3, 3)).direct3x3()
    assert not cv((2, 32, 26, 26), (64, 32, 3, 3), stride=(2, 2)).winograd()
    assert not cv((2, 32, 26, 26), (64, 32, 3, 3), dilation=(2, 1)).winograd()
    assert not cv((2, 32, 26, 26), (64, 16, 3, 3), groups=2).winograd()
    assert not cv((2, 32, 26, 26), (64, 32, 5, 5)).winograd()
    assert not cv((2, 1, 28, 28), (32, 1, 3, 3), stride=(2, 2)).direct3x3()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", WINO_CASES, ids=wino_ids)
def test_winograd_matches_float64_reference(case, dtype, conv_threads, wino_tile):
    x, w, b, args = fast_path_case(case, dtype)
    assert C._Conv(x.shape, w.shape, *args, np.dtype(dtype)).winograd()
    y = C.conv2d_forward(x, w, b, *args)
    gy = rand(*y.shape, dtype=dtype)
    gx = C.conv2d_backward_input(gy, w, x.shape, *args)
    gw = C.conv2d_backward_weight(gy, x, w.shape, *args)
    gx_ref, gw_ref = conv_grads_ref(gy, x, w, *args)
    # float32: F(2x2, 3x3) within a few roundings of the output's scale, F(4x4, 3x3) with the
    # points (0, 1, -1, 2, -1/2) within ~2e-6 at these channel counts
    bound = 1e-5 if dtype == np.float32 else 1e-13
    for out, ref in ((y, conv_ref(x, w, b, *args)), (gx, gx_ref), (gw, gw_ref)):
        assert out.dtype == dtype
        assert conv_scale_err(out, ref) < bound


@pytest.mark.parametrize("case", [WINO_CASES[i] for i in (1, 2, 6)], ids=wino_ids)
def test_winograd_matches_im2col(case, monkeypatch, wino_tile):
    x, w, b, args = fast_path_case(case, np.float32)
    fast = C.conv2d_forward(x, w, b, *args)
    gy = rand(*fast.shape, dtype=np.float32)
    fast_gx = C.conv2d_backward_input(gy, w, x.shape, *args)
    fast_gw = C.conv2d_backward_weight(gy, x, w.shape, *args)
    monkeypatch.setattr(C, "_WINO_MIN_C", 1 << 30)  # everything through im2col + GEMM
    assert not C._Conv(x.shape, w.shape, *args, np.dtype(np.float32)).winograd()
    for out, ref in ((fast, C.conv2d_forward(x, w, b, *args)),
                     (fast_gx, C.conv2d_backward_input(gy, w, x.shape, *args)),
                     (fast_gw, C.conv2d_backward_weight(gy, x, w.shape, *args))):
        assert conv_scale_err(out, ref) < 1e-5


@pytest.mark.parametrize("case", WINO_CASES[:6], ids=wino_ids)
def test_winograd_adjoint_identities(case, wino_tile):
    """<conv(x), gy> == <x, backward_input(gy)> == <w, backward_weight(gy, x)> to float64
    rounding: the three Winograd passes are exact transposes of each other."""
    x, w, _, args = fast_path_case(case, np.float64)
    y = C.conv2d_forward(x, w, None, *args)
    gy = rand(*y.shape)
    lhs = np.vdot(y, gy)
    assert np.vdot(x, C.conv2d_backward_input(gy, w, x.shape, *args)) == pytest.approx(lhs, rel=1e-12, abs=1e-12)
    assert np.vdot(w, C.conv2d_backward_weight(gy, x, w.shape, *args)) == pytest.approx(lhs, rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("case", [WINO_CASES[i] for i in (0, 2, 5)], ids=wino_ids)
def test_winograd_many_chunks(case, monkeypatch, wino_tile):
    """One image per chunk (and a ragged last chunk per thread): the row layouts change with
    the chunk size, the pad columns must be re-zeroed."""
    monkeypatch.setattr(winograd, "_CHUNK_TILES", {2: 1, 4: 1})
    monkeypatch.setattr(winograd, "threads", lambda: 2)
    x_shape, k, padding = case
    x_shape = (5,) + x_shape[1:]
    _check_conv_exact(*fast_path_case((x_shape, k, padding), np.float64))


def _check_conv_exact(x, w, b, args):
    """Forward and both gradients against the float64 references, to 1e-12."""
    y = C.conv2d_forward(x, w, b, *args)
    np.testing.assert_allclose(y, conv_ref(x, w, b, *args), rtol=1e-12, atol=1e-12)
    gy = rand(*y.shape)
    gx_ref, gw_ref = conv_grads_ref(gy, x, w, *args)
    np.testing.assert_allclose(C.conv2d_backward_input(gy, w, x.shape, *args), gx_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(C.conv2d_backward_weight(gy, x, w.shape, *args), gw_ref, rtol=1e-12, atol=1e-12)


def test_fast_paths_reuse_work_buffers_across_shapes(wino_tile):
    """The work buffers are reused between calls (threads.scratch): a larger call leaves
    data where a smaller one expects zeros (padding, junk tiles) unless the workers re-zero."""
    cases = [((2, 16, 9, 7), 8, (2, 2)), ((2, 8, 26, 26), 16, (0, 0)), ((1, 8, 5, 5), 8, (1, 1)),
             ((3, 2, 9, 8), 5, (2, 1)), ((1, 1, 5, 6), 3, (0, 0))]
    for case in cases + cases[::-1]:
        _check_conv_exact(*fast_path_case(case, np.float64))


def test_winograd_tile_choice():
    assert winograd.tile(32, 64, 24, 24) == 4   # the MNIST CNN's conv2
    assert winograd.tile(32, 64, 6, 6) == 2     # 4x4 tiles waste more than they save
    assert winograd.tile(32, 64, 2, 2) == 2
    assert winograd.tile(512, 64, 24, 24) == 2  # F(4x4, 3x3)'s error grows with C
    assert winograd.tile(64, 512, 24, 24) == 2
    assert winograd.FORWARD_TILE == 2  # see its comment: test_training_parity


@pytest.mark.parametrize("m", [2, 4])
def test_winograd_transform_matrices(m):
    """The transforms as data: A^T [(G g G^T) * (B^T d B)] A is the valid 3x3 correlation of one
    input tile with g, in float64, for both tile sizes."""
    BT, G, AT = winograd.TRANSFORMS[m]
    a = m + 2
    assert BT.shape == (a, a) and G.shape == (a, 3) and AT.shape == (m, a)
    d, g = rand(a, a), rand(3, 3)
    y = AT @ ((G @ g @ G.T) * (BT @ d @ BT.T)) @ AT.T
    ref = np.array([[(d[i:i + 3, j:j + 3] * g).sum() for j in range(m)] for i in range(m)])
    np.testing.assert_allclose(y, ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", [WINO_CASES[i] for i in (2, 6, 7)], ids=wino_ids)
def test_fast_paths_same_bits_on_any_number_of_threads(case, monkeypatch, wino_tile):
    """Winograd (both tile sizes) and the direct loops, float32: 1, 2 and 3 threads give the same
    bits, the weight gradients included (their per-group partial sums are cut by the shapes)."""
    x, w, b, args = fast_path_case(case, np.float32)
    x1, w1, b1, _ = fast_path_case(((x.shape[0], 2) + x.shape[2:], 16, args[1]), np.float32)
    results = []
    for n in (1, 2, 3):
        for mod in (winograd, direct3x3):
            monkeypatch.setattr(mod, "threads", lambda: n)
        y = C.conv2d_forward(x, w, b, *args)
        gy = np.cos(np.arange(y.size, dtype=np.float32)).reshape(y.shape)
        y1 = C.conv2d_forward(x1, w1, b1, *args)
        gy1 = np.sin(np.arange(y1.size, dtype=np.float32)).reshape(y1.shape)
        results.append((y, C.conv2d_backward_input(gy, w, x.shape, *args),
                        C.conv2d_backward_weight(gy, x, w.shape, *args),
                        y1, C.conv2d_backward_weight(gy1, x1, w1.shape, *args)))
    for other in results[1:]:
        for a, b_ in zip(results[0], other):
            np.testing.assert_array_equal(a, b_)


def test_fast_paths_non_contiguous_inputs():
    x = rand(2, 10, 9, 8).transpose(0, 1, 3, 2)  # (2, 10, 8, 9), not C-contiguous
    w = rand(10, 12, 3, 3).transpose(1, 0, 3, 2)[:, :, ::-1]  # (12, 10, 3, 3), negative strides
    b = rand(24)[::2]
    args = ((1, 1), (1, 1), (1, 1), 1)
    y = C.conv2d_forward(x, w, b, *args)
    np.testing.assert_allclose(y, conv_ref(x, w, b, *args), rtol=1e-12, atol=1e-12)
    gy = np.asfortranarray(rand(*y.shape))
    gx_ref, gw_ref = conv_grads_ref(gy, x, w, *args)
    np.testing.assert_allclose(C.conv2d_backward_input(gy, w, x.shape, *args), gx_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(C.conv2d_backward_weight(gy, x, w.shape, *args), gw_ref, rtol=1e-12, atol=1e-12)
    x1 = rand(3, 1, 8, 14)[:, :, :, ::2]  # direct path, strided
    w1 = rand(4, 1, 3, 3)
    np.testing.assert_allclose(C.conv2d_forward(x1, w1, None, *args), conv_ref(x1, w1, None, *args),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", DIRECT_CASES, ids=wino_ids)
def test_direct3x3_matches_float64_reference(case, dtype, conv_threads):
    x, w, b, args = fast_path_case(case, dtype)
    assert C._Conv(x.shape, w.shape, *args, np.dtype(dtype)).direct3x3()
    y = C.conv2d_forward(x, w, b, *args)
    gy = rand(*y.shape, dtype=dtype)
    gw = C.conv2d_backward_weight(gy, x, w.shape, *args)
    _, gw_ref = conv_grads_ref(gy, x, w, *args)
    bound = 1e-5 if dtype == np.float32 else 1e-13
    for out, ref in ((y, conv_ref(x, w, b, *args)), (gw, gw_ref)):
        assert out.dtype == dtype and out.shape == ref.shape
        assert conv_scale_err(out, ref) < bound


def test_scratch_buffers_are_per_thread_and_grow():
    a = threads.scratch(("test", 0), 10, np.float32)
    b = threads.scratch(("test", 0), 5, np.float32)
    assert b.base is a.base  # the same buffer, reused
    c = threads.scratch(("test", 0), 100, np.float32)
    assert c.size == 100 and c.dtype == np.float32
    assert threads.scratch(("test", 0), 10, np.float64).dtype == np.float64
    seen = []
    threads.run_split(lambda i: seen.append(threads.scratch(("test", 1), 4, np.float32)), [(0,), (1,)])
    assert len(seen) == 2
    assert seen[0].base is not seen[1].base  # one per calling thread


# ---------------------------------------------------------------------------------------
# pooling
# ---------------------------------------------------------------------------------------

def pool_out_ref(n, k, s, p, d, ceil_mode):
    eff = d * (k - 1) + 1
    out = (math.ceil if ceil_mode else math.floor)((n + 2 * p - eff) / s) + 1
    if ceil_mode and (out - 1) * s >= n + p:  # last window may not start in the right padding
        out -= 1
    return out


def maxpool_ref(x, kernel, stride, padding, dilation, ceil_mode):
    N, C, H, W = x.shape
    OH = pool_out_ref(H, kernel[0], stride[0], padding[0], dilation[0], ceil_mode)
    OW = pool_out_ref(W, kernel[1], stride[1], padding[1], dilation[1], ceil_mode)
    y = np.empty((N, C, OH, OW))
    ix = np.empty((N, C, OH, OW), np.int64)
    for oh, ow in itertools.product(range(OH), range(OW)):
        h0, w0 = oh * stride[0] - padding[0], ow * stride[1] - padding[1]
        taps = [(h, w) for h in range(h0, h0 + dilation[0] * kernel[0], dilation[0])
                for w in range(w0, w0 + dilation[1] * kernel[1], dilation[1])
                if 0 <= h < H and 0 <= w < W]
        vals = np.stack([x[:, :, h, w] for h, w in taps], -1)
        best = vals.argmax(-1)  # first maximum in scan order, as PyTorch
        y[:, :, oh, ow] = np.take_along_axis(vals, best[..., None], -1)[..., 0]
        flat = np.array([h * W + w for h, w in taps])
        ix[:, :, oh, ow] = flat[best]
    return y, ix


# (x_shape, kernel, stride, padding, dilation, ceil_mode)
MAXPOOL_CASES = [
    ((2, 3, 8, 8), (2, 2), (2, 2), (0, 0), (1, 1), False),
    ((2, 3, 9, 7), (3, 3), (2, 2), (1, 1), (1, 1), False),
    ((2, 3, 9, 7), (3, 3), (2, 2), (1, 1), (1, 1), True),
    ((1, 2, 10, 11), (3, 2), (2, 3), (1, 1), (2, 1), True),
    ((2, 2, 7, 8), (2, 3), (1, 2), (1, 1), (1, 2), False),
    ((1, 3, 5, 5), (4, 4), (3, 3), (2, 2), (1, 1), True),
    ((1, 1, 6, 6), (2, 2), (3, 3), (0, 0), (1, 1), True),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", MAXPOOL_CASES, ids=str)
def test_max_pool2d(case, dtype):
    x_shape, kernel, stride, padding, dilation, ceil_mode = case
    x = rand(*x_shape, dtype=dtype)
    y, ix = P.max_pool2d_forward(x, kernel, stride, padding, dilation, ceil_mode)
    y_ref, ix_ref = maxpool_ref(x, kernel, stride, padding, dilation, ceil_mode)
    assert y.dtype == dtype and ix.dtype == np.int64 and y.shape == y_ref.shape
    np.testing.assert_array_equal(y, y_ref.astype(dtype))
    np.testing.assert_array_equal(ix, ix_ref)
    gy = rand(*y.shape, dtype=dtype)
    gx = P.max_pool2d_backward(gy, ix, x.shape)
    gx_ref = np.zeros(x.shape).reshape(x.shape[0] * x.shape[1], -1)
    for plane, (g, i) in enumerate(zip(gy.reshape(len(gx_ref), -1), ix_ref.reshape(len(gx_ref), -1))):
        np.add.at(gx_ref[plane], i, g)
    assert gx.dtype == dtype
    np.testing.assert_allclose(gx, gx_ref.reshape(x.shape), **tol(dtype))


def test_max_pool2d_nan_and_ties():
    x = np.zeros((1, 1, 4, 4))
    x[0, 0, 1, 1] = np.nan
    x[0, 0, 2, 3] = 5.0
    y, ix = P.max_pool2d_forward(x, (2, 2), (2, 2), (0, 0), (1, 1), False)
    assert np.isnan(y[0, 0, 0, 0]) and ix[0, 0, 0, 0] == 5
    assert y[0, 0, 1, 1] == 5.0 and ix[0, 0, 1, 1] == 11
    assert y[0, 0, 0, 1] == 0.0 and ix[0, 0, 0, 1] == 2  # all equal: the first tap wins


@pytest.mark.parametrize("shape", [(3, 5, 24, 24), (2, 3, 7, 9), (1, 1, 2, 2)], ids=str)
def test_max_pool2d_2x2_fast_path(shape, monkeypatch):
    """The unrolled 2x2 / stride-2 kernel (odd sizes drop the last row / column), on several
    threads: against the reference with ties and -inf, and against the generic kernel with
    NaNs too (a later NaN takes over, as in PyTorch; the argmax reference takes the first)."""
    monkeypatch.setattr(P, "_POOL2X2_PER_THREAD", 1)
    x = np.round(rand(*shape), 0)  # many ties
    flat = x.reshape(-1)
    flat[RNG.integers(0, flat.size, max(1, flat.size // 13))] = -np.inf
    a = ((2, 2), (2, 2), (0, 0), (1, 1), False)
    for want in (maxpool_ref(x, *a), None):
        y, ix = P.max_pool2d_forward(x, *a)
        if want is None:  # the generic kernel on the same input, NaNs added
            N, C, H, W = x.shape
            OH, OW = y.shape[2:]
            hf, hc = P._windows(OH, H, 2, 2, 0, 1)
            wf, wc = P._windows(OW, W, 2, 2, 0, 1)
            want = (np.empty_like(y), np.empty_like(ix))
            P._maxpool_fwd(x.reshape(N * C, H, W), hf, hc, wf, wc, 1, 1, want[0].reshape(N * C, OH, OW),
                           want[1].reshape(N * C, OH, OW))
        np.testing.assert_array_equal(y, want[0])
        np.testing.assert_array_equal(ix, want[1])
        flat[RNG.integers(0, flat.size, max(1, flat.size // 5))] = np.nan
    # the backward scatters plane by plane on the same threads
    gy = rand(*y.shape)
    gx_ref = np.zeros(x.shape)
    N, C = x.shape[:2]
    for n, c in itertools.product(range(N), range(C)):
        np.add.at(gx_ref[n, c].reshape(-1), ix[n, c].reshape(-1), gy[n, c].reshape(-1))
    np.testing.assert_array_equal(P.max_pool2d_backward(gy, ix, x.shape), gx_ref)


def avgpool_ref(x, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override):
    N, C, H, W = x.shape
    OH = pool_out_ref(H, kernel[0], stride[0], padding[0], 1, ceil_mode)
    OW = pool_out_ref(W, kernel[1], stride[1], padding[1], 1, ceil_mode)
    y = np.zeros((N, C, OH, OW))
    for oh, ow in itertools.product(range(OH), range(OW)):
        h0, w0 = oh * stride[0] - padding[0], ow * stride[1] - padding[1]
        # the window as far as it lies in input + padding, and as far as it lies in the input
        hp = range(max(h0, -padding[0]), min(h0 + kernel[0], H + padding[0]))
        wp = range(max(w0, -padding[1]), min(w0 + kernel[1], W + padding[1]))
        hi = [h for h in hp if 0 <= h < H]
        wi = [w for w in wp if 0 <= w < W]
        if not hi or not wi:
            continue
        s = x[:, :, hi][:, :, :, wi].sum((2, 3))
        if divisor_override:
            d = divisor_override
        elif count_include_pad:
            d = len(hp) * len(wp)
        else:
            d = len(hi) * len(wi)
        y[:, :, oh, ow] = s / d
    return y


# (x_shape, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override)
AVGPOOL_CASES = [
    ((2, 3, 8, 8), (2, 2), (2, 2), (0, 0), False, True, None),
    ((2, 3, 9, 7), (3, 3), (2, 2), (1, 1), False, True, None),
    ((2, 3, 9, 7), (3, 3), (2, 2), (1, 1), False, False, None),
    ((2, 3, 9, 7), (3, 3), (2, 2), (1, 1), True, True, None),
    ((2, 3, 9, 7), (3, 3), (2, 2), (1, 1), True, False, None),
    ((1, 2, 10, 11), (3, 2), (2, 3), (1, 1), True, True, 5),
    ((1, 2, 10, 11), (4, 3), (3, 2), (2, 1), True, False, None),
    ((1, 2, 6, 5), (2, 3), (1, 2), (1, 1), False, False, 2),
    ((1, 1, 6, 6), (2, 2), (3, 3), (0, 0), True, True, None),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", AVGPOOL_CASES, ids=str)
def test_avg_pool2d(case, dtype):
    x_shape, *args = case
    x = rand(*x_shape, dtype=dtype)
    y = P.avg_pool2d_forward(x, *args)
    y_ref = avgpool_ref(x, *args)
    assert y.dtype == dtype and y.shape == y_ref.shape
    np.testing.assert_allclose(y, y_ref, **tol(dtype))
    # the backward is the adjoint of the (linear) forward
    gy = rand(*y.shape)
    gx = P.avg_pool2d_backward(gy.astype(dtype), x.shape, *args)
    assert gx.dtype == dtype and gx.shape == x.shape
    x64 = rand(*x_shape)
    rel = 1e-4 if dtype == np.float32 else 1e-10
    assert np.vdot(gx.astype(np.float64), x64) == pytest.approx(np.vdot(gy, avgpool_ref(x64, *args)), rel=rel)


def test_pooling_parallel_twins(parallel):
    x = rand(3, 4, 9, 7)
    y, ix = P.max_pool2d_forward(x, (3, 3), (2, 2), (1, 1), (1, 1), True)
    y_ref, ix_ref = maxpool_ref(x, (3, 3), (2, 2), (1, 1), (1, 1), True)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(ix, ix_ref)
    gy = rand(*y.shape)
    gx = P.max_pool2d_backward(gy, ix, x.shape)
    assert np.vdot(gx, x) == pytest.approx(np.vdot(gy, y))  # max pool is linear on its argmax
    args = ((3, 2), (2, 2), (1, 1), True, False, None)
    ya = P.avg_pool2d_forward(x, *args)
    np.testing.assert_allclose(ya, avgpool_ref(x, *args), rtol=1e-12, atol=1e-12)
    gya = rand(*ya.shape)
    assert np.vdot(P.avg_pool2d_backward(gya, x.shape, *args), x) == pytest.approx(np.vdot(gya, ya))


# ---------------------------------------------------------------------------------------
# softmax, log_softmax, cross-entropy
# ---------------------------------------------------------------------------------------

def softmax_ref(x):
    x = x.astype(np.float64)
    e = np.exp(x - x.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def log_softmax_ref(x):
    x = x.astype(np.float64)
    m = x.max(1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(1, keepdims=True))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", [(1, 1), (5, 7), (3, 130)])
def test_softmax_rows(shape, dtype, rows_path):
    x = (rand(*shape) * 30).astype(dtype)  # large logits: the max subtraction matters
    y, ly = S.softmax_rows(x), S.log_softmax_rows(x)
    assert y.dtype == dtype and ly.dtype == dtype
    np.testing.assert_allclose(y, softmax_ref(x), **tol(dtype))
    np.testing.assert_allclose(ly, log_softmax_ref(x), **tol(dtype))


def test_softmax_rows_extremes(rows_path):
    x = np.array([[1000.0, 0.0, -1000.0], [-np.inf, 0.0, 1.0], [np.nan, 0.0, 1.0], [0.0, np.nan, 1.0]])
    y, ly = S.softmax_rows(x), S.log_softmax_rows(x)
    np.testing.assert_allclose(y[:2], softmax_ref(x[:2]), rtol=1e-12)
    np.testing.assert_allclose(ly[:2], log_softmax_ref(x[:2]), rtol=1e-12)
    assert np.isnan(y[2:]).all() and np.isnan(ly[2:]).all()
    loss, lse = S.cross_entropy_rows(x, np.array([0, 2, 1, 0]), -100, 0.0)
    np.testing.assert_allclose(loss[:2], ce_ref(x[:2], [0, 2], -100, 0.0), rtol=1e-12)
    assert np.isnan(loss[2:]).all() and np.isnan(lse[2:]).all()
    x = rand(6, 9)
    np.testing.assert_allclose(S.softmax_rows(x), softmax_ref(x), rtol=1e-12)


def ce_ref(x, t, ignore_index, eps):
    lp = log_softmax_ref(x)
    N, C = x.shape
    loss = np.zeros(N)
    for i in range(N):
        if t[i] == ignore_index:
            continue
        loss[i] = -(1 - eps) * lp[i, t[i]] - (eps * lp[i].mean() if eps else 0.0)
    return loss


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("ignore_index,eps", [(-100, 0.0), (2, 0.0), (-100, 0.1), (1, 0.25)])
def test_cross_entropy_rows(dtype, ignore_index, eps, rows_path):
    N, C = 7, 5
    x = (rand(N, C) * 4).astype(dtype)
    t = RNG.integers(0, C, N).astype(np.int64)
    t[3] = ignore_index if ignore_index < 0 else t[3]
    loss, lse = S.cross_entropy_rows(x, t, ignore_index, eps)
    assert loss.dtype == dtype and lse.dtype == dtype and loss.shape == (N,) and lse.shape == (N,)
    np.testing.assert_allclose(loss, ce_ref(x, t, ignore_index, eps), **tol(dtype))
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(lse, np.log(np.exp(x64).sum(1)), **tol(dtype))
    g = rand(N, dtype=dtype)
    gx = S.cross_entropy_rows_backward(g, x, lse, t, ignore_index, eps)
    assert gx.dtype == dtype
    assert not gx[t == ignore_index].any()
    # finite differences of sum(g * loss) in float64
    h = 1e-6
    fd = np.zeros((N, C))
    for i, j in itertools.product(range(N), range(C)):
        xp, xm = x64.copy(), x64.copy()
        xp[i, j] += h
        xm[i, j] -= h
        fd[i, j] = (g @ ce_ref(xp, t, ignore_index, eps) - g @ ce_ref(xm, t, ignore_index, eps)) / (2 * h)
    np.testing.assert_allclose(gx, fd, rtol=1e-4 if dtype == np.float32 else 1e-6, atol=1e-5)


def test_cross_entropy_rows_out_of_range_targets(rows_path):
    x = rand(4, 3)
    t = np.array([0, 3, -1, -100])  # 3 and -1 are invalid: never read, NaN loss, zero grad
    loss, lse = S.cross_entropy_rows(x, t, -100, 0.1)
    assert loss[0] == pytest.approx(ce_ref(x[:1], t[:1], -100, 0.1)[0])
    assert np.isnan(loss[1]) and np.isnan(loss[2]) and loss[3] == 0
    gx = S.cross_entropy_rows_backward(np.ones(4), x, lse, t, -100, 0.1)
    assert np.isfinite(gx).all() and not gx[1:].any()


def test_cross_entropy_mean_counts_and_names_the_first_bad_target(rows_path):
    x = rand(6, 3)
    t = np.array([0, 2, -100, 1, 0, 1])
    mean, lse, n = S.cross_entropy_mean(x, t, -100, 0.0)
    rows = ce_ref(x, t, -100, 0.0)
    assert n == 5 and mean.shape == () and mean == pytest.approx(rows.sum() / 5)
    with pytest.raises(IndexError, match="target 7 is out of bounds for 3 classes"):
        S.cross_entropy_mean(x, np.array([0, 1, 2, 1, 7, -3]), -100, 0.0)  # the first bad one, in the 2nd block
    assert np.isnan(S.cross_entropy_mean(x, np.full(6, -100), -100, 0.0)[0])  # every row ignored


def test_cross_entropy_mean_same_bits_on_any_number_of_threads(monkeypatch):
    """The numpy path splits its rows over the threads: the mean is summed over the whole loss
    array afterwards, so the split does not change it."""
    monkeypatch.setattr(S, "_ROWS_SPLIT_MIN", 1)
    x = rand(1001, 70, dtype=np.float32)
    t = RNG.integers(0, 70, 1001)
    assert S._rows_numpy(x)
    means = []
    for n in (1, 2, 3, 7):
        monkeypatch.setattr(S, "threads", lambda: n)
        means.append(S.cross_entropy_mean(x, t, -100, 0.1)[0])
    assert all(m.tobytes() == means[0].tobytes() for m in means)


# ---------------------------------------------------------------------------------------
# optimizer steps: three steps against straightforward numpy transcriptions of PyTorch's docs
# ---------------------------------------------------------------------------------------

def adam_ref(p, g, m, v, vmax, lr, b1, b2, eps, wd, decoupled, step, amsgrad, maximize):
    g = -g if maximize else g
    if wd and decoupled:
        p = p * (1 - lr * wd)
    elif wd:
        g = g + wd * p
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    if amsgrad:
        vmax = np.maximum(vmax, v)
    denom = np.sqrt(vmax if amsgrad else v) / math.sqrt(1 - b2 ** step) + eps
    return p - lr / (1 - b1 ** step) * m / denom, m, v, vmax


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("decoupled,amsgrad,maximize,wd", [(False, False, False, 0.0), (False, True, False, 0.1),
                                                           (True, False, True, 0.05), (True, True, False, 0.0)])
def test_adam_step(dtype, decoupled, amsgrad, maximize, wd):
    n = 37
    p = rand(n, dtype=dtype)
    m, v = np.zeros(n, dtype), np.zeros(n, dtype)
    vmax = np.zeros(n, dtype) if amsgrad else None
    rp, rm, rv, rvmax = (a.astype(np.float64) for a in (p, m, v, np.zeros(n)))
    hyper = (1e-2, 0.9, 0.99, 1e-8, wd, decoupled)
    for step in (1, 2, 3):
        g = rand(n, dtype=dtype)
        assert O.adam_step_(p, g, m, v, vmax, *hyper, step, amsgrad, maximize) is None
        rp, rm, rv, rvmax = adam_ref(rp, g.astype(np.float64), rm, rv, rvmax, *hyper, step, amsgrad, maximize)
    np.testing.assert_allclose(p, rp, **tol(dtype))
    np.testing.assert_allclose(m, rm, **tol(dtype))
    np.testing.assert_allclose(v, rv, **tol(dtype))
    if amsgrad:
        np.testing.assert_allclose(vmax, rvmax, **tol(dtype))


def sgd_ref(p, g, buf, lr, momentum, dampening, wd, nesterov, maximize, first):
    d = -g if maximize else g
    if wd:
        d = d + wd * p
    if momentum:
        buf = d.copy() if first else momentum * buf + (1 - dampening) * d
        d = d + momentum * buf if nesterov else buf
    return p - lr * d, buf


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("momentum,dampening,wd,nesterov,maximize", [(0.0, 0.0, 0.0, False, False),
                                                                     (0.9, 0.0, 0.0, True, False),
                                                                     (0.8, 0.3, 0.01, False, True),
                                                                     (0.0, 0.0, 0.1, False, True)])
def test_sgd_step(dtype, momentum, dampening, wd, nesterov, maximize):
    n = 41
    p = rand(n, 2, dtype=dtype)  # 2-D: flattened inside
    buf = np.full((n, 2), 7.0, dtype) if momentum else None  # garbage before the first step
    rp, rbuf = p.astype(np.float64), None
    for step in range(3):
        g = rand(n, 2, dtype=dtype)
        O.sgd_step_(p, g, buf, 0.05, momentum, dampening, wd, nesterov, maximize, step == 0)
        rp, rbuf = sgd_ref(rp, g.astype(np.float64), rbuf, 0.05, momentum, dampening, wd, nesterov, maximize,
                           step == 0)
    np.testing.assert_allclose(p, rp, **tol(dtype))
    if momentum:
        np.testing.assert_allclose(buf, rbuf, **tol(dtype))


def rmsprop_ref(p, g, sq, buf, gavg, lr, alpha, eps, wd, momentum, centered):
    if wd:
        g = g + wd * p
    sq = alpha * sq + (1 - alpha) * g * g
    if centered:
        gavg = alpha * gavg + (1 - alpha) * g
        avg = np.sqrt(sq - gavg * gavg) + eps
    else:
        avg = np.sqrt(sq) + eps
    if momentum > 0:
        buf = momentum * buf + g / avg
        return p - lr * buf, sq, buf, gavg
    return p - lr * g / avg, sq, buf, gavg


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("momentum,centered,wd", [(0.0, False, 0.0), (0.9, False, 0.01), (0.0, True, 0.0),
                                                  (0.5, True, 0.1)])
def test_rmsprop_step(dtype, momentum, centered, wd):
    n = 29
    p = rand(n, dtype=dtype)
    sq = np.zeros(n, dtype)
    buf = np.zeros(n, dtype) if momentum else None
    gavg = np.zeros(n, dtype) if centered else None
    r = [p.astype(np.float64), np.zeros(n), np.zeros(n), np.zeros(n)]
    for _ in range(3):
        g = rand(n, dtype=dtype)
        O.rmsprop_step_(p, g, sq, buf, gavg, 0.01, 0.9, 1e-8, wd, momentum, centered)
        r = list(rmsprop_ref(r[0], g.astype(np.float64), r[1], r[2], r[3], 0.01, 0.9, 1e-8, wd, momentum, centered))
    np.testing.assert_allclose(p, r[0], **tol(dtype))
    np.testing.assert_allclose(sq, r[1], **tol(dtype))


def test_optimizer_parallel_twins(parallel):
    n = 1000
    for amsgrad in (False, True):
        p, g = rand(n), rand(n)
        m, v, vmax = np.zeros(n), np.zeros(n), np.zeros(n)
        O.adam_step_(p.copy(), g, m, v, vmax, 1e-3, 0.9, 0.999, 1e-8, 0.01, True, 1, amsgrad, False)
        q = p.copy()
        O.adam_step_(q, g, np.zeros(n), np.zeros(n), np.zeros(n), 1e-3, 0.9, 0.999, 1e-8, 0.01, True, 1, amsgrad,
                     False)
        np.testing.assert_allclose(q, adam_ref(p, g, 0 * p, 0 * p, 0 * p, 1e-3, 0.9, 0.999, 1e-8, 0.01, True, 1,
                                               amsgrad, False)[0], rtol=1e-12)
    p, g, buf = rand(n), rand(n), np.zeros(n)
    q = p.copy()
    O.sgd_step_(q, g, buf, 0.1, 0.9, 0.0, 0.0, True, False, True)
    np.testing.assert_allclose(q, sgd_ref(p, g, None, 0.1, 0.9, 0.0, 0.0, True, False, True)[0], rtol=1e-12)
    q = p.copy()
    O.rmsprop_step_(q, g, np.zeros(n), np.zeros(n), np.zeros(n), 0.01, 0.99, 1e-8, 0.0, 0.9, True)
    ref = rmsprop_ref(p, g, np.zeros(n), np.zeros(n), np.zeros(n), 0.01, 0.99, 1e-8, 0.0, 0.9, True)[0]
    np.testing.assert_allclose(q, ref, rtol=1e-12)


# ---------------------------------------------------------------------------------------
# against torch, where it imports
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("case", [CONV_CASES[i] for i in (1, 2, 4, 5, 7, 11)], ids=conv_ids)
def test_conv2d_against_torch(case):
    torch = pytest.importorskip("torch")
    x_shape, w_shape, stride, padding, dilation, groups = case
    x, w, b = rand(*x_shape), rand(*w_shape), rand(w_shape[0])
    tx, tw, tb = (torch.from_numpy(a).requires_grad_() for a in (x, w, b))
    ty = torch.nn.functional.conv2d(tx, tw, tb, stride, padding, dilation, groups)
    gy = rand(*ty.shape)
    ty.backward(torch.from_numpy(gy))
    a = (stride, padding, dilation, groups)
    np.testing.assert_allclose(C.conv2d_forward(x, w, b, *a), ty.detach().numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(C.conv2d_backward_input(gy, w, x.shape, *a), tx.grad.numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(C.conv2d_backward_weight(gy, x, w.shape, *a), tw.grad.numpy(), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("case", MAXPOOL_CASES, ids=str)
def test_max_pool2d_against_torch(case):
    torch = pytest.importorskip("torch")
    x_shape, kernel, stride, padding, dilation, ceil_mode = case
    x = rand(*x_shape)
    ty, tix = torch.nn.functional.max_pool2d(torch.from_numpy(x), kernel, stride, padding, dilation,
                                             ceil_mode=ceil_mode, return_indices=True)
    y, ix = P.max_pool2d_forward(x, kernel, stride, padding, dilation, ceil_mode)
    np.testing.assert_array_equal(y, ty.numpy())
    np.testing.assert_array_equal(ix, tix.numpy())


@pytest.mark.parametrize("case", AVGPOOL_CASES, ids=str)
def test_avg_pool2d_against_torch(case):
    torch = pytest.importorskip("torch")
    x_shape, kernel, stride, padding, ceil_mode, cip, div = case
    x = rand(*x_shape)
    tx = torch.from_numpy(x).requires_grad_()
    ty = torch.nn.functional.avg_pool2d(tx, kernel, stride, padding, ceil_mode, cip, div)
    gy = rand(*ty.shape)
    ty.backward(torch.from_numpy(gy))
    args = (kernel, stride, padding, ceil_mode, cip, div)
    np.testing.assert_allclose(P.avg_pool2d_forward(x, *args), ty.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(P.avg_pool2d_backward(gy, x.shape, *args), tx.grad.numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("ignore_index,eps", [(-100, 0.0), (1, 0.2)])
def test_cross_entropy_against_torch(ignore_index, eps, rows_path):
    torch = pytest.importorskip("torch")
    x = rand(6, 4)
    t = np.array([0, 1, 2, 3, 1, 1])
    tx = torch.from_numpy(x).requires_grad_()
    tl = torch.nn.functional.cross_entropy(tx, torch.from_numpy(t), ignore_index=ignore_index,
                                           label_smoothing=eps, reduction="none")
    g = rand(6)
    tl.backward(torch.from_numpy(g))
    loss, lse = S.cross_entropy_rows(x, t, ignore_index, eps)
    np.testing.assert_allclose(loss, tl.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(S.cross_entropy_rows_backward(g, x, lse, t, ignore_index, eps), tx.grad.numpy(),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", ["adam", "adamw", "adam-amsgrad-max", "sgd", "sgd-nesterov", "rmsprop",
                                  "rmsprop-centered-momentum"])
def test_optimizers_against_torch(kind):
    torch = pytest.importorskip("torch")
    n = 50
    p0 = rand(n, dtype=np.float32)
    grads = [rand(n, dtype=np.float32) for _ in range(4)]
    tp = torch.nn.Parameter(torch.from_numpy(p0.copy()))
    p = p0.copy()
    z = lambda: np.zeros(n, np.float32)  # noqa: E731
    if kind.startswith("adam"):
        decoupled, ams, maxi = kind == "adamw", "amsgrad" in kind, "max" in kind
        cls = torch.optim.AdamW if decoupled else torch.optim.Adam
        opt = cls([tp], lr=1e-2, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.1, amsgrad=ams, maximize=maxi,
                  foreach=False)
        state = (z(), z(), z() if ams else None)
        step = lambda i: O.adam_step_(p, grads[i], *state, 1e-2, 0.8, 0.95, 1e-6, 0.1, decoupled, i + 1, ams,  # noqa
                                      maxi)
    elif kind.startswith("sgd"):
        nest = kind == "sgd-nesterov"
        opt = torch.optim.SGD([tp], lr=0.1, momentum=0.9, dampening=0.0 if nest else 0.2, weight_decay=0.01,
                              nesterov=nest, foreach=False)
        buf = z()
        step = lambda i: O.sgd_step_(p, grads[i], buf, 0.1, 0.9, 0.0 if nest else 0.2, 0.01, nest, False,  # noqa
                                     i == 0)
    else:
        cen = kind != "rmsprop"
        mom = 0.5 if cen else 0.0
        opt = torch.optim.RMSprop([tp], lr=1e-2, alpha=0.9, eps=1e-6, weight_decay=0.01, momentum=mom,
                                  centered=cen, foreach=False)
        state = (z(), z() if mom else None, z() if cen else None)
        step = lambda i: O.rmsprop_step_(p, grads[i], *state, 1e-2, 0.9, 1e-6, 0.01, mom, cen)  # noqa
    for i in range(4):
        tp.grad = torch.from_numpy(grads[i].copy())
        opt.step()
        step(i)
    np.testing.assert_allclose(p, tp.detach().numpy(), rtol=1e-5, atol=1e-6)
