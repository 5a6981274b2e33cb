"""Tests of devtensor's CUDA kernels.

Two kinds:
  * pure Python (run everywhere): kernel_build's launch arithmetic, the list of .cu files and
    kernels, and that the runtime and ci/check_kernels.py use one option tuple;
  * `cuda`-marked: each wrapper in devtensor.backends.cuda.kernels against numpy references on odd
    shapes.  They skip, with the reason shown, when cupy is missing or no CUDA device is usable.

Its size: one module for every kernels/*.cu file, so that ci/kernel_emulator/run.py --kernels-only
runs them all in one go.
"""
from __future__ import annotations

import importlib
import importlib.util
import math
import re
import sys
import types
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
KB_PATH = ROOT / "devtensor" / "backends" / "cuda" / "kernel_build.py"


def _load_by_path(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


# kernel_build is loaded by file path, as CI does, so these tests need neither cupy nor the
# rest of devtensor.
kb = _load_by_path("_test_dt_kernel_build", KB_PATH)


# ================================================================================================
# pure-python tests
def test_every_cu_file_is_listed_and_exists():
    on_disk = sorted(p.name for p in (ROOT / "kernels").glob("*.cu"))
    assert on_disk == sorted(kb.KERNEL_FILES), "kernels/*.cu and kernel_build.KERNEL_FILES differ"
    assert kb.kernel_dir() == (ROOT / "kernels").resolve() or (kb.kernel_dir() / "matmul.cu").is_file()
    for f in ("matmul.cu", "conv.cu", "reduce.cu", "pooling.cu", "optim.cu", "index.cu"):
        assert f in kb.KERNEL_FILES


def test_listed_kernels_are_defined_in_their_sources():
    for file, spec in kb.KERNEL_FILES.items():
        src = kb.read_source(file)
        code = re.sub(r"//[^\n]*|/\*.*?\*/", "", src, flags=re.S)  # comments may name what is banned
        assert not re.search(r"#\s*include\s*<", code), f"{file}: NVRTC at run time has no std / <mma.h> headers"
        assert not re.search(r"\bu?int64_t\b", code), f"{file}: int64_t is not defined under NVRTC"
        for name in spec.extern_c:
            assert re.search(r'extern "C" __global__ void[\s\S]{0,80}?\b' + name + r"\(", code), \
                f"{file}: extern \"C\" kernel {name} not defined"
            assert name.startswith("dt_")
        for expr in spec.name_expressions:
            base = expr.split("<", 1)[0]
            assert base.startswith("dt_")
            assert re.search(r"template\s*<[^>]*>\s*__global__ void[\s\S]{0,80}?\b" + base + r"\(", code), \
                f"{file}: template kernel {base} not defined"
    names = [n for s in kb.KERNEL_FILES.values() for n in (*s.extern_c, *s.name_expressions)]
    assert len(names) == len(set(names)), "a kernel name is listed twice"


def test_options_tuple_is_the_one_ci_uses():
    assert isinstance(kb.NVRTC_OPTIONS, tuple) and all(isinstance(o, str) for o in kb.NVRTC_OPTIONS)
    assert not any(o.startswith(("-arch", "--gpu-architecture")) for o in kb.NVRTC_OPTIONS), \
        "CuPy adds -arch for the current device itself"
    assert "--use_fast_math" not in kb.NVRTC_OPTIONS
    ck = _load_by_path("_test_dt_check_kernels", ROOT / "ci" / "check_kernels.py")
    assert ck.KERNEL_BUILD.resolve() == KB_PATH.resolve()
    ckb = ck.load_kernel_build()
    assert ckb.NVRTC_OPTIONS == kb.NVRTC_OPTIONS
    assert ckb.KERNEL_FILES == kb.KERNEL_FILES
    assert tuple(ckb.CI_ARCHS) == ("sm_80", "sm_90")
    try:
        have_cupy = importlib.util.find_spec("cupy") is not None
    except ValueError:  # a stand-in module without a spec
        have_cupy = False
    if have_cupy:  # runtime_options needs cupy's include dir
        opts = ck.runtime_options(ckb, "sm_90")
        pos = [opts.index(o) for o in kb.NVRTC_OPTIONS]
        assert pos == sorted(pos), "runtime options must keep their order"
        assert opts[-3:] == ["-ftz=true", "-arch=sm_90", "--device-as-default-execution-space"]


def test_load_module_uses_the_options_and_name_expressions(monkeypatch):
    made = []

    class FakeRawModule:
        def __init__(self, code=None, options=(), name_expressions=None):
            made.append((code, options, name_expressions))

    class FakeDevice:
        id = 0

        def __init__(self, i=None):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *a):
            return False

    fake = types.ModuleType("cupy")
    fake.RawModule = FakeRawModule
    fake.cuda = types.SimpleNamespace(Device=FakeDevice)
    monkeypatch.setitem(sys.modules, "cupy", fake)
    monkeypatch.setattr(kb, "_MODULES", {})
    m1 = kb.load_module("matmul.cu")
    m2 = kb.load_module("matmul.cu")
    kb.load_module("conv.cu")
    assert m1 is m2 and len(made) == 2, "one RawModule per (file, device), created lazily"
    code, options, names = made[0]
    assert options is kb.NVRTC_OPTIONS
    assert code == kb.read_source("matmul.cu")
    assert tuple(names) == kb.KERNEL_FILES["matmul.cu"].name_expressions
    assert made[1][2] is None  # conv.cu has only extern "C" kernels


def _all_names():
    return {n for s in kb.KERNEL_FILES.values() for n in (*s.extern_c, *s.name_expressions)}


@pytest.mark.parametrize("M,N,K", [(1, 1, 1), (37, 45, 29), (129, 255, 7), (4096, 4096, 4096), (1, 10**6, 3),
                                   (0, 5, 5), (5, 5, 0)])
@pytest.mark.parametrize("ta,tb", [(False, False), (True, False), (False, True), (True, True)])
def test_sgemm_launch_config_covers_every_tile(M, N, K, ta, tb):
    for tf32 in (False, True):
        for vec in (False, True):
            cfg = kb.launch_config("sgemm", M=M, N=N, K=K, batch=3, trans_a=ta, trans_b=tb, vec=vec,
                                   allow_tf32=tf32)
            assert cfg.kernel in kb.KERNEL_FILES["matmul.cu"].name_expressions
            assert cfg.kernel == kb.sgemm_kernel_name("tf32" if tf32 else cfg.params["tile"], ta, tb, vec)
            bm, bn = cfg.params["bm"], cfg.params["bn"]
            assert cfg.grid == (math.ceil(N / bn), math.ceil(M / bm), 3)
            assert cfg.grid[0] * bn >= N and cfg.grid[1] * bm >= M
            assert cfg.block == (256, 1, 1) and cfg.shared_mem == 0


def test_sgemm_tile_choice_and_grid_limits():
    small = kb.launch_config("sgemm", M=100, N=100, K=100, num_sms=132)
    assert small.params["tile"] == "64x64"  # a 128 tile would leave the machine idle
    big = kb.launch_config("sgemm", M=4096, N=4096, K=64, num_sms=132)
    assert big.params["tile"] == "128x128" and big.grid == (32, 32, 1)
    # grid y / z are capped at 65535; the kernels loop over the rest
    huge = kb.launch_config("sgemm", M=128 * 70000, N=8, K=8, batch=100000, num_sms=132)
    assert huge.grid[1] == 65535 and huge.grid[2] == 65535
    assert kb.launch_config("sgemm", M=8, N=2**40, K=8).grid[0] == 2**31 - 1


@pytest.mark.parametrize("family", ["conv2d_fwd", "conv2d_bwd_input", "conv2d_bwd_weight"])
@pytest.mark.parametrize("shape", [
    dict(N=2, C=3, H=9, W=11, Cout=5, KH=3, KW=3, OH=9, OW=11, groups=1),
    dict(N=64, C=64, H=56, W=56, Cout=64, KH=3, KW=3, OH=56, OW=56, groups=1),
    dict(N=1, C=32, H=7, W=7, Cout=32, KH=3, KW=3, OH=5, OW=5, groups=32),
    dict(N=0, C=3, H=4, W=4, Cout=3, KH=1, KW=1, OH=4, OW=4, groups=1),
])
def test_conv_launch_config(family, shape):
    cfg = kb.launch_config(family, **shape)
    assert cfg.kernel in kb.KERNEL_FILES["conv.cu"].extern_c
    p = cfg.params
    assert cfg.grid[0] == min(math.ceil(p["gemm_n"] / kb.CONV_BN), 2**31 - 1)
    assert cfg.grid[1] == min(math.ceil(p["gemm_m"] / kb.CONV_BM) * shape["groups"], 65535)
    assert p["k_per_split"] >= 1 and p["splits"] >= 1
    if family == "conv2d_bwd_weight" and p["splits"] > 1:
        assert p["k_per_split"] % kb.CONV_BK == 0
        assert p["splits"] * p["k_per_split"] >= p["gemm_k"] > (p["splits"] - 1) * p["k_per_split"]
        assert cfg.grid[2] == p["splits"]
    else:
        assert cfg.grid[2] == 1 and p["k_per_split"] >= p["gemm_k"]


def test_conv_bwd_weight_splits_long_reductions():
    cfg = kb.launch_config("conv2d_bwd_weight", N=256, C=64, H=32, W=32, Cout=64, KH=3, KW=3, OH=32, OW=32,
                           groups=1, num_sms=132)
    assert cfg.params["splits"] > 1


def test_conv_groups_must_divide():
    with pytest.raises(ValueError):
        kb.launch_config("conv2d_fwd", N=1, C=3, H=4, W=4, Cout=4, KH=1, KW=1, OH=4, OW=4, groups=2)


@pytest.mark.parametrize("op", kb.REDUCE_OPS)
def test_reduce_plans(op):
    inner = kb.launch_config("reduce", op=op, outer=5, reduce=13, inner=45)
    assert inner.params["mode"] == "inner" and inner.block == (32, 8, 1) and inner.grid == (2, 5, 1)
    rows = kb.launch_config("reduce", op=op, outer=1000, reduce=37, inner=1)
    assert rows.params["mode"] == "lastdim" and rows.block == (32, 4, 1) and rows.grid == (250, 1, 1)
    longrows = kb.launch_config("reduce", op=op, outer=1000, reduce=5000, inner=1)
    assert longrows.params["mode"] == "lastdim" and longrows.block[1] == 1 and longrows.block[0] % 32 == 0
    everything = kb.launch_config("reduce", op=op, outer=1, reduce=10**8, inner=1, num_sms=132)
    assert everything.params["mode"] == "split"
    s = everything.params["splits"]
    assert 1 < s <= 1024 and everything.grid == (s, 1, 1)
    assert everything.params["workspace_bytes"] == s * kb.REDUCE_STATE_BYTES
    fin = kb.launch_config("reduce_final", op=op, outer=1, splits=s)
    assert fin.grid == (1, 1, 1) and fin.kernel == kb.reduce_kernel_name("split_final", op)
    for cfg in (inner, rows, longrows, everything, fin):
        assert cfg.kernel in kb.KERNEL_FILES["reduce.cu"].name_expressions
    many = kb.launch_config("reduce", op=op, outer=10**6, reduce=8, inner=70000)
    assert many.grid[1] == 65535  # clamped, the kernel loops over outer


@pytest.mark.parametrize("family", ["softmax", "softmax_bwd", "logsumexp", "cross_entropy", "cross_entropy_bwd"])
@pytest.mark.parametrize("rows,cols", [(1, 1), (7, 10), (1000, 1024), (3, 1025), (5, 100000), (0, 10)])
def test_row_kernels_block_shapes(family, rows, cols):
    cfg = kb.launch_config(family, rows=rows, cols=cols)
    bx, by, bz = cfg.block
    assert bz == 1 and (bx == 32 or by == 1) and bx % 32 == 0 and bx * by <= 1024
    assert cfg.grid == (math.ceil(rows / by), 1, 1)
    assert cfg.kernel in kb.KERNEL_FILES["reduce.cu"].extern_c


@pytest.mark.parametrize("family,file", [("max_pool2d", "pooling.cu"), ("max_pool2d_bwd", "pooling.cu"),
                                         ("avg_pool2d", "pooling.cu"), ("avg_pool2d_bwd", "pooling.cu"),
                                         ("adam", "optim.cu"), ("sgd", "optim.cu")])
@pytest.mark.parametrize("n", [0, 1, 255, 257, 10**9])
def test_flat_kernels(family, file, n):
    cfg = kb.launch_config(family, n=n, num_sms=100)
    assert cfg.block == (256, 1, 1) and cfg.kernel in kb.KERNEL_FILES[file].extern_c
    assert kb.kernel_file_of(cfg.kernel) == file
    if n == 0:
        assert cfg.grid[0] == 0
    else:
        assert 1 <= cfg.grid[0] <= 100 * 8


@pytest.mark.parametrize("kernel", ["lstm_cell_fwd", "lstm_cell_bwd", "gru_cell_fwd", "gru_cell_bwd"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("rows,hidden", [(0, 5), (1, 1), (3, 257), (10**5, 10**4)])
def test_rnn_cell_launch_config(kernel, dtype, rows, hidden):
    cfg = kb.launch_config(kernel, rows=rows, hidden=hidden, dtype=dtype, num_sms=100)
    assert cfg.kernel == kb.rnn_kernel_name(kernel, dtype) and kb.kernel_file_of(cfg.kernel) == "rnn.cu"
    assert cfg.kernel.endswith("<float>" if dtype == "float32" else "<double>") and cfg.block == (256, 1, 1)
    n = rows * hidden
    assert cfg.grid[0] == (0 if n == 0 else min(math.ceil(n / 256), 800))
    with pytest.raises(ValueError):
        kb.launch_config(kernel, rows=1, hidden=1, dtype="float16")


@pytest.mark.parametrize("index_dtype", ["int64", "int32"])
@pytest.mark.parametrize("n", [0, 1, 257, 10**9])
def test_check_index_launch_config(index_dtype, n):
    cfg = kb.launch_config("check_index", n=n, index_dtype=index_dtype, num_sms=100)
    assert cfg.kernel == kb.check_index_kernel_name(index_dtype)
    assert kb.kernel_file_of(cfg.kernel) == "index.cu" and cfg.block == (256, 1, 1)
    assert cfg.grid[0] == (0 if n == 0 else min(math.ceil(n / 256), 800))
    with pytest.raises(ValueError):
        kb.launch_config("check_index", n=1, index_dtype="int16")


def test_device_error_helper_is_the_same_in_every_file_that_reports():
    """reduce.cu and index.cu each carry dt_report_index_error (NVRTC gets one source string per
    file, no includes): the copies and the record layout must not drift apart."""
    pat = re.compile(r"DT_DEVICE void dt_report_index_error\(.*?\n}\n", re.S)
    bodies = {f: pat.findall(kb.read_source(f)) for f in kb.KERNEL_FILES}
    users = {f: b for f, b in bodies.items() if b}
    assert set(users) == {"reduce.cu", "index.cu"}
    assert all(len(b) == 1 for b in users.values()) and users["reduce.cu"] == users["index.cu"]


def test_every_planned_kernel_is_compiled_and_unknown_family_raises():
    assert kb.kernel_file_of("dt_conv2d_fwd") == "conv.cu"
    assert kb.kernel_file_of("dt_adam_step") == "optim.cu" and kb.kernel_file_of("dt_max_pool2d_fwd") == "pooling.cu"
    assert kb.kernel_file_of(kb.reduce_kernel_name("lastdim", "argmax")) == "reduce.cu"
    with pytest.raises(ValueError):
        kb.launch_config("no_such_family", n=1)
    with pytest.raises(ValueError):
        kb.launch_config("sgemm", M=-1, N=1, K=1)
    with pytest.raises(ValueError):
        kb.reduce_kernel_name("lastdim", "median")
    assert all(n.startswith("dt_") for n in _all_names())


# ================================================================================================
# GPU tests: each wrapper against numpy on odd shapes
@pytest.fixture(scope="module")
def cp():
    cupy = pytest.importorskip("cupy", reason="cupy is not installed: the CUDA kernel tests need it")
    try:
        ok = cupy.cuda.is_available()
    except Exception as e:  # pragma: no cover - broken driver installs
        pytest.skip(f"cupy cannot query CUDA: {e}")
    if not ok:
        pytest.skip("no usable CUDA device: cupy.cuda.is_available() is False")
    return cupy


@pytest.fixture(scope="module")
def K(cp):
    try:
        return importlib.import_module("devtensor.backends.cuda.kernels")
    except ModuleNotFoundError as e:  # run from a checkout that is not installed
        if e.name not in ("devtensor", "devtensor.backends", "devtensor.backends.cuda"):
            raise
        sys.path.insert(0, str(ROOT))
        return importlib.import_module("devtensor.backends.cuda.kernels")


RNG = np.random.default_rng(1234)


def _f32(*shape, scale=1.0):
    return (RNG.standard_normal(shape) * scale).astype(np.float32)


@pytest.mark.cuda
@pytest.mark.parametrize("M,N,Kd", [(1, 1, 1), (37, 45, 29), (64, 132, 40), (130, 129, 17), (300, 260, 24), (5, 7, 0)])
@pytest.mark.parametrize("ta,tb", [(False, False), (True, False), (False, True), (True, True)])
@pytest.mark.parametrize("tf32", [False, True])
def test_sgemm_matches_numpy(cp, K, M, N, Kd, ta, tb, tf32):
    a = _f32(Kd, M) if ta else _f32(M, Kd)
    b = _f32(N, Kd) if tb else _f32(Kd, N)
    ref = (a.T if ta else a).astype(np.float64) @ (b.T if tb else b).astype(np.float64)
    got = cp.asnumpy(K.sgemm(cp.asarray(a), cp.asarray(b), ta, tb, allow_tf32=tf32))
    # TF32 keeps 10 mantissa bits: relative error ~ 2^-11 per product
    tol = 3e-3 * max(1.0, math.sqrt(Kd)) if tf32 else 1e-5 * max(1.0, math.sqrt(Kd))
    np.testing.assert_allclose(got, ref, atol=tol * max(1.0, np.abs(ref).max(initial=0)), rtol=0)


@pytest.mark.cuda
def test_sgemm_batched_broadcast_views_and_beta(cp, K):
    a, b = _f32(3, 33, 12), _f32(12, 20)
    got = cp.asnumpy(K.sgemm(cp.asarray(a), cp.asarray(b)))  # 2-D b broadcast over the batch
    np.testing.assert_allclose(got, a @ b, atol=1e-4)
    b3 = _f32(1, 20, 12)
    got = cp.asnumpy(K.sgemm(cp.asarray(a), cp.asarray(b3), trans_b=True))  # batch 1 broadcast, trans
    np.testing.assert_allclose(got, a @ np.swapaxes(b3, 1, 2), atol=1e-4)
    x = cp.asarray(_f32(21, 13))  # a transposed view is read in place
    y = cp.asarray(_f32(21, 24))
    got = cp.asnumpy(K.sgemm(x.T, y))
    np.testing.assert_allclose(got, cp.asnumpy(x).T @ cp.asnumpy(y), atol=1e-4)
    buf = cp.asarray(_f32(21 * 13 + 1))  # misaligned pointer: scalar path
    xm = buf[1:].reshape(21, 13)
    np.testing.assert_allclose(cp.asnumpy(K.sgemm(xm, cp.asarray(_f32(13, 5)) * 0 + 1)),
                               cp.asnumpy(xm) @ np.ones((13, 5), np.float32), atol=1e-4)
    c0 = _f32(20, 28)
    out = cp.asarray(c0.copy())
    a2, b2 = _f32(20, 36), _f32(36, 28)
    K.sgemm(cp.asarray(a2), cp.asarray(b2), out=out, alpha=0.5, beta=0.25)
    np.testing.assert_allclose(cp.asnumpy(out), 0.5 * (a2 @ b2) + 0.25 * c0, atol=1e-4)


def _conv_ref(x, w, b, s, p, d, g):
    N, C, H, W = x.shape
    Co, cig, KH, KW = w.shape
    OH = (H + 2 * p[0] - d[0] * (KH - 1) - 1) // s[0] + 1
    OW = (W + 2 * p[1] - d[1] * (KW - 1) - 1) // s[1] + 1
    xp = np.zeros((N, C, H + 2 * p[0], W + 2 * p[1]))
    xp[:, :, p[0]:p[0] + H, p[1]:p[1] + W] = x
    y = np.zeros((N, Co, OH, OW))
    cog = Co // g
    for gi in range(g):
        for i in range(KH):
            for j in range(KW):
                patch = xp[:, gi * cig:(gi + 1) * cig, i * d[0]: i * d[0] + s[0] * (OH - 1) + 1: s[0],
                           j * d[1]: j * d[1] + s[1] * (OW - 1) + 1: s[1]]
                y[:, gi * cog:(gi + 1) * cog] += np.einsum("nchw,oc->nohw", patch, w[gi * cog:(gi + 1) * cog, :, i, j])
    if b is not None:
        y += b[None, :, None, None]
    return y


@pytest.mark.cuda
@pytest.mark.parametrize("N,C,H,W,Co,KH,KW,s,p,d,g", [
    (2, 3, 9, 11, 5, 3, 3, (1, 1), (1, 1), (1, 1), 1),
    (1, 4, 10, 7, 6, 3, 2, (2, 3), (1, 0), (1, 2), 2),
    (2, 6, 8, 8, 6, 3, 3, (1, 1), (2, 2), (2, 2), 6),
    (1, 70, 5, 5, 66, 1, 1, (1, 1), (0, 0), (1, 1), 1),
    (4, 8, 16, 16, 16, 3, 3, (1, 1), (1, 1), (1, 1), 2),
])
def test_conv2d_matches_numpy(cp, K, N, C, H, W, Co, KH, KW, s, p, d, g):
    x, w, b = _f32(N, C, H, W), _f32(Co, C // g, KH, KW), _f32(Co)
    ref = _conv_ref(x.astype(np.float64), w.astype(np.float64), b, s, p, d, g)
    y = cp.asnumpy(K.conv2d_forward(cp.asarray(x), cp.asarray(w), cp.asarray(b), s, p, d, g))
    np.testing.assert_allclose(y, ref, atol=1e-4, rtol=1e-4)
    dy = _f32(*ref.shape)
    dx = cp.asnumpy(K.conv2d_backward_input(cp.asarray(dy), cp.asarray(w), x.shape, s, p, d, g))
    dw = cp.asnumpy(K.conv2d_backward_weight(cp.asarray(dy), cp.asarray(x), w.shape, s, p, d, g))
    # adjoint identities: <conv(rx, w), dy> == <rx, dx> and <conv(x, rw), dy> == <rw, dw>
    rx, rw = RNG.standard_normal(x.shape), RNG.standard_normal(w.shape)
    lhs = (_conv_ref(rx, w.astype(np.float64), None, s, p, d, g) * dy).sum()
    assert abs(lhs - (rx * dx).sum()) <= 1e-4 * max(1.0, abs(lhs))
    lhs = (_conv_ref(x.astype(np.float64), rw, None, s, p, d, g) * dy).sum()
    assert abs(lhs - (rw * dw).sum()) <= 1e-4 * max(1.0, abs(lhs))


def _reduce_ref(x3, op, corr):
    x = x3.astype(np.float64)
    return {"sum": lambda: x.sum(1), "mean": lambda: x.mean(1), "max": lambda: x3.max(1), "min": lambda: x3.min(1),
            "argmax": lambda: np.argmax(x3, 1), "argmin": lambda: np.argmin(x3, 1),
            "var": lambda: ((x - x.mean(1, keepdims=True)) ** 2).sum(1) / max(0, x.shape[1] - corr)}[op]()


@pytest.mark.cuda
@pytest.mark.parametrize("op", ["sum", "mean", "max", "min", "argmax", "argmin", "var"])
@pytest.mark.parametrize("outer,R,inner,offset", [(7, 37, 1, 1), (3, 2000, 1, 2), (5, 13, 45, 0), (2, 300000, 1, 3),
                                                  (1, 1, 1, 0)])
def test_reduce_matches_numpy(cp, K, op, outer, R, inner, offset):
    n = outer * R * inner
    buf = cp.asarray(np.round(_f32(n + offset) * 4) / 4)  # quarter steps: ties for argmax / argmin
    x = buf[offset:]
    x3 = cp.asnumpy(x).reshape(outer, R, inner)
    got = cp.asnumpy(K.reduce(x, op, outer, R, inner, correction=1.0))
    ref = _reduce_ref(x3, op, 1.0)
    if op.startswith("arg"):
        np.testing.assert_array_equal(got, ref)
    else:
        np.testing.assert_allclose(got, ref, rtol=2e-5, atol=2e-5 * math.sqrt(R), equal_nan=True)


@pytest.mark.cuda
@pytest.mark.parametrize("op", ["max", "min", "argmax", "argmin", "sum"])
def test_reduce_nan_propagates(cp, K, op):
    x = _f32(3, 50)
    x[1, 17] = np.nan
    got = cp.asnumpy(K.reduce(cp.asarray(x), op, 3, 50, 1))
    ref = _reduce_ref(x.reshape(3, 50, 1), op, 1.0).ravel()
    if op.startswith("arg"):
        np.testing.assert_array_equal(got.ravel(), ref)
    else:
        np.testing.assert_allclose(got.ravel(), ref, rtol=1e-5, equal_nan=True)


@pytest.mark.cuda
def test_reduce_all_and_empty(cp, K):
    x = _f32(3, 5, 7)
    assert abs(float(cp.asnumpy(K.reduce_all(cp.asarray(x), "sum"))) - x.astype(np.float64).sum()) < 1e-4
    assert int(cp.asnumpy(K.reduce_all(cp.asarray(x), "argmax"))) == int(np.argmax(x))
    e = cp.asnumpy(K.reduce(cp.zeros((0,), dtype=np.float32), "mean", 3, 0, 2))
    assert e.shape == (3, 2) and np.isnan(e).all()
    with pytest.raises(ValueError):
        K.reduce(cp.zeros((0,), dtype=np.float32), "max", 3, 0, 2)


def _lse(z):
    z = z.astype(np.float64)
    m = z.max(1, keepdims=True)
    return (m + np.log(np.exp(z - m).sum(1, keepdims=True)))[:, 0]


@pytest.mark.cuda
@pytest.mark.parametrize("rows,cols", [(5, 10), (3, 1), (4, 1500), (2, 20000), (9, 33)])
def test_softmax_family(cp, K, rows, cols):
    z = _f32(rows, cols, scale=3.0)
    lse = _lse(z)
    sm, lsm = np.exp(z - lse[:, None]), z - lse[:, None]
    Z = cp.asarray(z)
    np.testing.assert_allclose(cp.asnumpy(K.softmax(Z)), sm, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(cp.asnumpy(K.softmax(Z, log=True)), lsm, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(cp.asnumpy(K.logsumexp(Z)), lse, rtol=1e-5, atol=1e-5)
    dy = _f32(rows, cols)
    got = cp.asnumpy(K.softmax_backward(cp.asarray(sm.astype(np.float32)), cp.asarray(dy)))
    np.testing.assert_allclose(got, sm * (dy - (dy * sm).sum(1, keepdims=True)), atol=1e-5)
    got = cp.asnumpy(K.softmax_backward(cp.asarray(lsm.astype(np.float32)), cp.asarray(dy), log=True))
    np.testing.assert_allclose(got, dy - sm * dy.sum(1, keepdims=True), atol=1e-4)


@pytest.mark.cuda
def test_softmax_special_rows(cp, K):
    z = np.array([[-np.inf, -np.inf, -np.inf], [-np.inf, 0, 1], [np.nan, 0, 1]], np.float32)
    s = cp.asnumpy(K.softmax(cp.asarray(z)))
    lse = cp.asnumpy(K.logsumexp(cp.asarray(z)))
    assert np.isnan(s[0]).all() and np.isnan(s[2]).all()
    np.testing.assert_allclose(s[1], [0, 1 / (1 + np.e), np.e / (1 + np.e)], rtol=1e-6)
    assert lse[0] == -np.inf and np.isclose(lse[1], np.log1p(np.e)) and np.isnan(lse[2])


def _ce_ref(z, t, w, ii, eps):
    z = z.astype(np.float64)
    rows, C = z.shape
    logp = z - _lse(z)[:, None]
    W = np.ones(C) if w is None else w.astype(np.float64)
    loss, rw, dz = np.zeros(rows), np.zeros(rows), np.zeros_like(z)
    for i in range(rows):
        if t[i] == ii:
            continue
        rw[i] = W[t[i]]
        loss[i] = (1 - eps) * W[t[i]] * -logp[i, t[i]] + eps / C * (W * -logp[i]).sum()
        p = np.exp(logp[i])
        onehot = np.eye(C)[t[i]]
        dz[i] = (1 - eps) * W[t[i]] * (p - onehot) + eps / C * (W.sum() * p - W)
    return loss, rw, dz


@pytest.mark.cuda
@pytest.mark.parametrize("rows,C,use_w,eps", [(6, 10, False, 0.0), (6, 10, True, 0.1), (3, 1500, True, 0.2),
                                              (2, 20000, False, 0.05)])
def test_cross_entropy(cp, K, rows, C, use_w, eps):
    z = _f32(rows, C, scale=2.0)
    t = RNG.integers(0, C, rows).astype(np.int64)
    t[1] = -100
    w = RNG.uniform(0.5, 2, C).astype(np.float32) if use_w else None
    wd = None if w is None else cp.asarray(w)
    loss, roww, lse = K.cross_entropy_forward(cp.asarray(z), cp.asarray(t), wd, -100, eps)
    rl, rrw, rdz = _ce_ref(z, t, w, -100, eps)
    np.testing.assert_allclose(cp.asnumpy(loss), rl, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(cp.asnumpy(roww), rrw)
    g = _f32(rows)
    dz = K.cross_entropy_backward(cp.asarray(z), cp.asarray(t), lse, cp.asarray(g), wd, -100, eps)
    np.testing.assert_allclose(cp.asnumpy(dz), rdz * g[:, None], atol=1e-5)
    dz = K.cross_entropy_backward(cp.asarray(z), cp.asarray(t), lse, cp.asarray(np.float32(0.5)), wd, -100, eps)
    np.testing.assert_allclose(cp.asnumpy(dz), rdz * 0.5, atol=1e-5)


@pytest.mark.cuda
def test_cross_entropy_bad_targets_are_reported_and_never_read(cp, K):
    assert K.take_device_error() is None
    z = _f32(4, 10)
    t = np.array([3, 12, -100, -7], np.int64)
    loss, roww, lse = K.cross_entropy_forward(cp.asarray(z), cp.asarray(t), None, -100, 0.0)
    loss = cp.asnumpy(loss)
    assert np.isnan(loss[1]) and np.isnan(loss[3]) and loss[2] == 0 and np.isfinite(loss[0])
    msg = K.take_device_error()
    assert msg is not None and msg.startswith("cross_entropy: target ") and "out of bounds for 10 classes" in msg
    assert "reported by the device at the next synchronisation" in msg
    assert K.take_device_error() is None, "the record is cleared once read"
    dz = cp.asnumpy(K.cross_entropy_backward(cp.asarray(z), cp.asarray(t), lse, cp.asarray(np.float32(1.0)), None,
                                             -100, 0.0))
    assert np.isnan(dz[1]).all() and (dz[2] == 0).all() and np.isfinite(dz[0]).all()
    assert "out of bounds for 10 classes" in K.take_device_error()


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.int16, np.uint8])
def test_check_index_keeps_valid_values_zeroes_bad_ones_and_reports_the_first(cp, K, dtype):
    idx = np.array([[0, 4, -5 if np.dtype(dtype).kind == "i" else 3], [2, 1, 3]], dtype=dtype)  # -5: from the end
    safe = K.check_index(cp.asarray(idx)[:, ::-1], 5, op="gather", dim=1)  # a strided view is copied
    assert safe.dtype == np.int64 and safe.shape == (2, 3)
    np.testing.assert_array_equal(cp.asnumpy(safe), idx[:, ::-1].astype(np.int64))
    assert K.take_device_error() is None
    bad = np.array([1, 7, -9, 2], dtype=np.int64)
    safe = cp.asnumpy(K.check_index(cp.asarray(bad), 5, op="index_put", dim=2))
    np.testing.assert_array_equal(safe, [1, 0, 0, 2])
    msg = K.take_device_error()
    assert msg in ("index_put: index 7 is out of bounds for dimension 2 with size 5 (reported by the device at "
                   "the next synchronisation)",
                   "index_put: index -9 is out of bounds for dimension 2 with size 5 (reported by the device at "
                   "the next synchronisation)")
    assert K.take_device_error() is None


@pytest.mark.cuda
def test_check_index_without_negatives_with_ignore_and_edge_sizes(cp, K):
    t = cp.asarray(np.array([0, -100, 9, -1], np.int64))
    safe = cp.asnumpy(K.check_index(t, 10, op="cross_entropy", dim=1, allow_negative=False, ignore=-100))
    np.testing.assert_array_equal(safe, [0, -100, 9, 0])
    assert K.take_device_error().startswith("cross_entropy: target -1 is out of bounds for 10 classes")
    assert K.check_index(cp.zeros((0, 3), np.int64), 0, op="gather").shape == (0, 3)  # nothing to check
    with pytest.raises(IndexError, match="out of bounds for dimension 0 with size 0"):
        K.check_index(cp.zeros((2,), np.int64), 0, op="index", dim=0)
    assert K.take_device_error() is None


def _maxpool_ref(x, k, s, p, d, osz):
    N, C, H, W = x.shape
    OH, OW = osz
    y = np.zeros((N, C, OH, OW), np.float32)
    idx = np.zeros((N, C, OH, OW), np.int64)
    for oh in range(OH):
        for ow in range(OW):
            best = bi = None
            for i in range(k[0]):
                for j in range(k[1]):
                    h, w = oh * s[0] - p[0] + i * d[0], ow * s[1] - p[1] + j * d[1]
                    if 0 <= h < H and 0 <= w < W:
                        v = x[:, :, h, w]
                        if best is None:
                            best, bi = v.copy(), np.full(v.shape, h * W + w)
                        else:
                            m = (v > best) | (np.isnan(v) & ~np.isnan(best))
                            best, bi = np.where(m, v, best), np.where(m, h * W + w, bi)
            y[:, :, oh, ow], idx[:, :, oh, ow] = best, bi
    return y, idx


def _avgpool_ref(x, k, s, p, osz, cip, dov):
    N, C, H, W = x.shape
    OH, OW = osz
    y = np.zeros((N, C, OH, OW))
    for oh in range(OH):
        for ow in range(OW):
            hs, ws = oh * s[0] - p[0], ow * s[1] - p[1]
            he, we = min(hs + k[0], H + p[0]), min(ws + k[1], W + p[1])
            pool = (he - hs) * (we - ws)
            hs, ws, he, we = max(hs, 0), max(ws, 0), min(he, H), min(we, W)
            if hs < he and ws < we:
                y[:, :, oh, ow] = x[:, :, hs:he, ws:we].sum((2, 3)) / (dov or (pool if cip else (he - hs) * (we - ws)))
    return y


@pytest.mark.cuda
@pytest.mark.parametrize("H,W,k,s,p,d,ceil", [(7, 9, (3, 3), (2, 2), (1, 1), (1, 1), False),
                                              (8, 8, (2, 2), (2, 2), (0, 0), (1, 1), False),
                                              (7, 6, (3, 2), (2, 3), (1, 0), (2, 1), True),
                                              (5, 5, (2, 2), (2, 2), (1, 1), (1, 1), True)])
def test_pooling(cp, K, H, W, k, s, p, d, ceil):
    x = _f32(2, 3, H, W)
    x[0, 0, 1, 1] = np.nan
    osz = K.pool2d_output_size(H, W, k, s, p, d, ceil)
    y, idx = K.max_pool2d_forward(cp.asarray(x), k, s, p, d, osz)
    ry, ridx = _maxpool_ref(x, k, s, p, d, osz)
    np.testing.assert_allclose(cp.asnumpy(y), ry, equal_nan=True)
    np.testing.assert_array_equal(cp.asnumpy(idx), ridx)
    dy = _f32(*ry.shape)
    dx = cp.asnumpy(K.max_pool2d_backward(cp.asarray(dy), idx, x.shape))
    rdx = np.zeros(x.shape)
    for n in range(x.shape[0]):
        for c in range(x.shape[1]):
            np.add.at(rdx[n, c].reshape(-1), ridx[n, c].reshape(-1), dy[n, c].reshape(-1))
    np.testing.assert_allclose(dx, rdx, atol=1e-5)
    if d != (1, 1):
        return
    xx = np.nan_to_num(x)
    for cip in (True, False):
        for dov in (None, 3):
            y = cp.asnumpy(K.avg_pool2d_forward(cp.asarray(xx), k, s, p, osz, cip, dov))
            np.testing.assert_allclose(y, _avgpool_ref(xx.astype(np.float64), k, s, p, osz, cip, dov), atol=1e-5)
            dy = _f32(*y.shape)
            dx = cp.asnumpy(K.avg_pool2d_backward(cp.asarray(dy), xx.shape, k, s, p, cip, dov))
            r = RNG.standard_normal(xx.shape)  # adjoint identity
            lhs = (_avgpool_ref(r, k, s, p, osz, cip, dov) * dy).sum()
            assert abs(lhs - (r * dx).sum()) < 1e-4 * max(1.0, abs(lhs))


@pytest.mark.cuda
@pytest.mark.parametrize("n,offset", [(1000, 0), (13, 1), (3, 0)])
@pytest.mark.parametrize("decoupled,amsgrad,maximize,wd", [(False, False, False, 0.0), (True, False, False, 0.01),
                                                            (False, True, True, 0.1)])
def test_adam_step(cp, K, n, offset, decoupled, amsgrad, maximize, wd):
    host = [_f32(n + offset) for _ in range(5)]
    host[3], host[4] = np.abs(host[3]), np.abs(host[4])
    P, G, M, V, X = [cp.asarray(a)[offset:] for a in host]
    p, g, m, v, vmax = [a[offset:].astype(np.float64) for a in host]
    step, lr, b1, b2, eps = 3, 1e-2, 0.9, 0.999, 1e-8
    if maximize:
        g = -g
    if decoupled:
        p = p * (1 - lr * wd)
    elif wd:
        g = g + wd * p
    m = m + (1 - b1) * (g - m)
    v = v * b2 + (1 - b2) * g * g
    vmax = np.maximum(vmax, v)
    den = np.sqrt(vmax if amsgrad else v) / math.sqrt(1 - b2 ** step) + eps
    p = p - lr / (1 - b1 ** step) * m / den
    K.adam_step(P, G, M, V, step=step, lr=lr, beta1=b1, beta2=b2, eps=eps, weight_decay=wd, decoupled=decoupled,
                amsgrad=amsgrad, max_exp_avg_sq=X, maximize=maximize)
    np.testing.assert_allclose(cp.asnumpy(P), p, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(cp.asnumpy(M), m, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(cp.asnumpy(V), v, rtol=1e-5, atol=1e-7)
    if amsgrad:
        np.testing.assert_allclose(cp.asnumpy(X), vmax, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("op", sorted(kb.OPTIM_STEP_FUNCTORS))
@pytest.mark.parametrize("n", [0, 1, 257, 10**9])
def test_optim_step_launch_config(op, n):
    cfg = kb.launch_config("optim_step", op=op, n=n, num_sms=100)
    assert cfg.kernel == kb.optim_step_kernel_name(op) and kb.kernel_file_of(cfg.kernel) == "optim.cu"
    assert cfg.block == (256, 1, 1) and (cfg.grid[0] == 0) == (n == 0)


@pytest.mark.cuda
@pytest.mark.parametrize("n,offset", [(1000, 0), (13, 1), (3, 0)])
@pytest.mark.parametrize("op", sorted(kb.OPTIM_STEP_FUNCTORS))
def test_optim_step_matches_the_reference(cp, K, op, n, offset):
    """dt_optim_step<Op> (float4 and scalar paths: offset 1 misaligns every buffer) on each sample of
    the op's table entry against its numpy reference in float64, param and every state array."""
    from devtensor.backends.optim_portable import STEPS
    from devtensor.dispatch import OPS

    step = STEPS[op]
    for _, attrs in OPS[op].samples(np.float64):
        host = [_f32(n + offset) for _ in range(2 + len(step.state))]
        for j, name in enumerate(step.state):  # accumulators of squares and step sizes are positive
            if name in ("sum", "square_avg", "acc_delta", "exp_avg_sq", "exp_inf", "step_size"):
                host[2 + j] = np.abs(host[2 + j]) + np.float32(0.1)
        ref = [a[offset:].astype(np.float64) for a in host]
        step.xp(np, *ref, **attrs)
        dev = [cp.asarray(a)[offset:] for a in host]
        scalars, flags = step.scalars(np.float32, **attrs)
        K.optim_step(op, dev[0], dev[1], dev[2:], scalars, flags)
        for i in [0] + list(range(2, len(dev))):
            np.testing.assert_allclose(cp.asnumpy(dev[i]), ref[i], rtol=2e-5, atol=1e-6, err_msg=f"{op} {i} {attrs}")


def test_optim_step_refuses_mismatched_buffers():
    pytest.importorskip("cupy")
    from devtensor.backends.cuda import kernels as real

    a, b = np.zeros(4, np.float32), np.zeros(5, np.float32)
    with pytest.raises(ValueError, match="adagrad_step_ state 0 has 5 elements, expected 4"):
        real.optim_step("adagrad_step_", a, a, [b], (0.0,) * 3, (False,))


@pytest.mark.cuda
@pytest.mark.parametrize("n,offset", [(1000, 0), (13, 1)])
@pytest.mark.parametrize("mom,damp,nest,first,wd", [(0.0, 0.0, False, False, 0.0), (0.9, 0.1, False, True, 0.01),
                                                    (0.9, 0.0, True, False, 0.0)])
def test_sgd_step(cp, K, n, offset, mom, damp, nest, first, wd):
    host = [_f32(n + offset) for _ in range(3)]
    P, G, B = [cp.asarray(a)[offset:] for a in host]
    p, g, b = [a[offset:].astype(np.float64) for a in host]
    d = g + wd * p
    if mom:
        b = d if first else mom * b + (1 - damp) * d
        d = d + mom * b if nest else b
    p = p - 0.1 * d
    K.sgd_step(P, G, B, lr=0.1, momentum=mom, dampening=damp, weight_decay=wd, nesterov=nest, first_step=first)
    np.testing.assert_allclose(cp.asnumpy(P), p, atol=1e-6)
    if mom:
        np.testing.assert_allclose(cp.asnumpy(B), b, atol=1e-6)


# ---- recurrent cells (rnn.cu): float64 numpy references of the gate math -----------------------------
def _sig(v):
    return 1 / (1 + np.exp(-v))


def _rnn_rand(dtype, n, cols, scale=1.5):
    return (RNG.standard_normal((n, cols)) * scale).astype(dtype)


def _strided(cp, a, pad):
    """a as a row slice of a wider device array (row stride > columns), as the sequence loops pass it."""
    n, w = a.shape
    big = cp.asarray(np.full((n, w + pad), np.nan, a.dtype))
    big[:, :w] = cp.asarray(a)
    return big[:, :w]


def _tol(dtype):
    return dict(rtol=2e-5, atol=2e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-13)


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n,H,pad,in_place", [(5, 7, 0, False), (3, 33, 9, True), (1, 1, 3, False)])
def test_lstm_cell_kernels(cp, K, dtype, n, H, pad, in_place):
    gx, gh = _rnn_rand(dtype, n, 4 * H, 4.0), _rnn_rand(dtype, n, 4 * H)
    c = _rnn_rand(dtype, n, H)
    a = gx.astype(np.float64) + gh
    i, f, g, o = _sig(a[:, :H]), _sig(a[:, H:2 * H]), np.tanh(a[:, 2 * H:3 * H]), _sig(a[:, 3 * H:])
    cn = f * c + i * g
    tc = np.tanh(cn)
    h = o * tc
    Gx, Gh, C = _strided(cp, gx, pad), _strided(cp, gh, pad), _strided(cp, c, pad)
    Cn = C if in_place else cp.empty((n, H), dtype)
    Hd, Y, A = cp.empty((n, H), dtype), _strided(cp, np.zeros((n, H), dtype), pad), cp.empty((n, 6 * H), dtype)
    K.lstm_cell_forward(Gx, Gh, C, Cn, Hd, A, y=Y, save_c=True)
    for got, want in ((Cn, cn), (Hd, h), (Y, h), (A, np.concatenate([i, f, g, o, tc, cn], 1))):
        np.testing.assert_allclose(cp.asnumpy(got), want, **_tol(dtype))
    # backward: dh with and without gy and dc, against the chain rule of the same gates
    dh, gy, dc = _rnn_rand(dtype, n, H), _rnn_rand(dtype, n, H), _rnn_rand(dtype, n, H)
    acts = cp.asnumpy(A)[:, :5 * H].astype(np.float64)
    for use_dh, use_gy, use_dc in ((True, True, True), (True, False, False), (False, True, False)):
        d_h = (dh if use_dh else 0) + (gy if use_gy else 0)
        dcn = d_h * o * (1 - tc * tc) + (dc if use_dc else 0)
        want = np.concatenate([dcn * g * i * (1 - i), dcn * c * f * (1 - f), dcn * i * (1 - g * g),
                               d_h * tc * o * (1 - o)], 1)
        Dc = _strided(cp, dc, pad)
        Dg, Dcp = cp.empty((n, 4 * H), dtype), (Dc if in_place else cp.empty((n, H), dtype))
        K.lstm_cell_backward(_strided(cp, dh, pad) if use_dh else None, cp.asarray(gy) if use_gy else None,
                             Dc if use_dc else None, _strided(cp, acts.astype(dtype), pad), C if not in_place
                             else cp.asarray(c), Dg, Dcp)
        np.testing.assert_allclose(cp.asnumpy(Dg), want, **_tol(dtype))
        np.testing.assert_allclose(cp.asnumpy(Dcp), dcn * f, **_tol(dtype))


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n,H,pad,in_place,bias", [(4, 6, 0, False, True), (2, 37, 5, True, False)])
def test_gru_cell_kernels(cp, K, dtype, n, H, pad, in_place, bias):
    gx, gh, h = _rnn_rand(dtype, n, 3 * H, 3.0), _rnn_rand(dtype, n, 3 * H), _rnn_rand(dtype, n, H)
    b = RNG.standard_normal(3 * H).astype(dtype)
    ghb = gh.astype(np.float64) + (b if bias else 0)
    r, z = _sig(gx[:, :H] + ghb[:, :H]), _sig(gx[:, H:2 * H] + ghb[:, H:2 * H])
    hn = ghb[:, 2 * H:]
    nn = np.tanh(gx[:, 2 * H:] + r * hn)
    new = (1 - z) * nn + z * h
    Hs = _strided(cp, h, pad)
    Hn = Hs if in_place else cp.empty((n, H), dtype)
    Y, A = cp.empty((n, H), dtype), _strided(cp, np.zeros((n, 4 * H), dtype), pad)
    K.gru_cell_forward(_strided(cp, gx, pad), cp.asarray(gh), cp.asarray(b) if bias else None, Hs, Hn, A, y=Y)
    for got, want in ((Hn, new), (Y, new), (A, np.concatenate([r, z, nn, hn], 1))):
        np.testing.assert_allclose(cp.asnumpy(got), want, **_tol(dtype))
    dh, gy = _rnn_rand(dtype, n, H), _rnn_rand(dtype, n, H)
    for use_gy in (True, False):
        d = dh + (gy if use_gy else 0)
        dn = d * (1 - z) * (1 - nn * nn)
        dz = d * (h - nn) * z * (1 - z)
        dr = dn * hn * r * (1 - r)
        Dh = _strided(cp, dh, pad)
        Dx, Dgh = cp.empty((n, 3 * H), dtype), _strided(cp, np.zeros((n, 3 * H), dtype), pad)
        Dd = Dh if in_place else cp.empty((n, H), dtype)
        K.gru_cell_backward(Dh, cp.asarray(gy) if use_gy else None, A, cp.asarray(h), Dx, Dgh, Dd)
        np.testing.assert_allclose(cp.asnumpy(Dx), np.concatenate([dr, dz, dn], 1), **_tol(dtype))
        np.testing.assert_allclose(cp.asnumpy(Dgh), np.concatenate([dr, dz, dn * r], 1), **_tol(dtype))
        np.testing.assert_allclose(cp.asnumpy(Dd), d * z, **_tol(dtype))


@pytest.mark.cuda
def test_rnn_cell_wrappers_reject_bad_arguments(cp, K):
    n, H = 3, 4
    f32 = lambda *s: cp.zeros(s, np.float32)  # noqa: E731
    with pytest.raises(TypeError, match="lstm_cell_forward: gx must be float32"):
        K.lstm_cell_forward(cp.zeros((n, 4 * H), np.float64), f32(n, 4 * H), f32(n, H), f32(n, H), f32(n, H),
                            f32(n, 5 * H))
    with pytest.raises(ValueError, match=r"acts must have shape \(3, >= 24\)"):
        K.lstm_cell_forward(f32(n, 4 * H), f32(n, 4 * H), f32(n, H), f32(n, H), f32(n, H), f32(n, 5 * H),
                            save_c=True)
    with pytest.raises(ValueError, match="unit column stride"):
        K.gru_cell_backward(f32(H, n).T, None, f32(n, 4 * H), f32(n, H), f32(n, 3 * H), f32(n, 3 * H), f32(n, H))
    with pytest.raises(ValueError, match="b_hh must be"):
        K.gru_cell_forward(f32(n, 3 * H), f32(n, 3 * H), f32(H), f32(n, H), f32(n, H), f32(n, 4 * H))
