"""Complex tensors against PyTorch: dtypes and promotion, creation, printing, numpy and safetensors round trips,
the complex parts (real, imag, conj, abs, angle, view_as_real / view_as_complex, complex, polar), arithmetic,
gradients in PyTorch's convention (conj Wirtinger: dL/dRe + i dL/dIm), gradcheck in complex128, and the
errors of ops that do not take complex. The op table's complex-capable ops run, generated, on complex
versions of their samples against their numpy references, with gradcheck."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import devtensor as dt
from devtensor.autograd.gradcheck import gradcheck
from devtensor.dispatch import OPS

torch = pytest.importorskip("torch")

RNG = np.random.default_rng(20261207)


def _c(*shape, dtype=np.complex128):
    return np.asarray(RNG.standard_normal(shape) + 1j * RNG.standard_normal(shape)).astype(dtype)


def _tname(d):
    return str(d).split(".")[-1]


# ---- dtypes -------------------------------------------------------------------------------------------------
def test_dtypes_names_and_aliases():
    assert dt.cfloat is dt.complex64 and dt.cdouble is dt.complex128
    assert dt.complex64.is_complex and not dt.complex64.is_floating_point and not dt.float32.is_complex
    assert dt.complex64.to_real() is dt.float32 and dt.complex128.to_real() is dt.float64
    assert dt.float64.to_complex() is dt.complex128 and dt.float32.to_complex() is dt.complex64
    assert dt.complex64.itemsize == 8 and dt.complex128.itemsize == 16
    z = dt.tensor([1 + 2j])
    assert dt.is_complex(z) and z.is_complex() and z.dtype.is_complex and not dt.is_complex(dt.ones(1))


ALL = ["bool", "uint8", "int8", "int16", "int32", "int64", "float16", "bfloat16", "float32", "float64",
       "complex64", "complex128"]


def test_promote_types_matches_pytorch():
    for a in ALL:
        for b in ALL:
            if "complex" not in a + b:
                continue
            got = dt.promote_types(getattr(dt, a), getattr(dt, b)).name
            want = _tname(torch.promote_types(getattr(torch, a), getattr(torch, b)))
            if "float16" in (a, b) or "bfloat16" in (a, b):
                # PyTorch's complex32 (ComplexHalf) has no devtensor form: the half precisions give complex64
                want = "complex64" if want == "complex32" else want
            assert got == want, (a, b)


@pytest.mark.parametrize("default", ["float32", "float64"])
def test_result_type_with_python_scalars_and_0d_tensors_matches_pytorch(default):
    old = torch.get_default_dtype()
    dt.set_default_dtype(getattr(dt, default))
    torch.set_default_dtype(getattr(torch, default))
    try:
        for tdt in ("int64", "float32", "float64", "complex64", "complex128", "bool"):
            x, tx = dt.ones(2, dtype=getattr(dt, tdt)), torch.ones(2, dtype=getattr(torch, tdt))
            for s in (1j, 2.5, 3):
                assert (x + s).dtype.name == _tname((tx + s).dtype), (tdt, s)
            for zdt in ("complex64", "complex128"):
                z, tz = dt.ones((), dtype=getattr(dt, zdt)), torch.ones((), dtype=getattr(torch, zdt))
                assert (x * z).dtype.name == _tname((tx * tz).dtype), (tdt, zdt)
        assert dt.tensor([1 + 2j]).dtype.name == _tname(torch.tensor([1 + 2j]).dtype)
        assert dt.tensor(2j).dtype.name == _tname(torch.tensor(2j).dtype)
        assert dt.as_tensor(np.ones(2, np.complex128)).dtype is dt.complex128
        assert dt.as_dtype(complex) if hasattr(dt, "as_dtype") else True
    finally:
        dt.set_default_dtype(dt.float32)
        torch.set_default_dtype(old)


def test_numpy_round_trip_to_and_printing():
    a = _c(2, 3, dtype=np.complex64)
    t = dt.from_numpy(a)
    assert t.dtype is dt.complex64 and np.shares_memory(t.numpy(), a)
    np.testing.assert_array_equal(t.to(dt.complex128).numpy(), a.astype(np.complex128))
    with pytest.warns(UserWarning, match="discards the imaginary part"):
        r = t.to(dt.float32)
    np.testing.assert_array_equal(r.numpy(), a.real)
    np.testing.assert_array_equal(dt.ones(2).to(dt.complex64).numpy(), np.ones(2, np.complex64))
    assert repr(dt.tensor([1 + 2j, 3 - 1j])) == "tensor([1.+2.j, 3.-1.j])"
    # as torch: the real and imaginary parts are formatted apart
    assert repr(dt.tensor([1.5 + 2j], dtype=dt.complex128)) == "tensor([1.5000+2.j], dtype=devtensor.complex128)"
    assert dt.tensor([1j]).item() == 1j
    assert (dt.tensor([1j, 2]) == 1j).tolist() == [True, False] and (dt.tensor([1j]) != 1j).tolist() == [False]
    for fill in (1 + 1j, 2.0, 3, True):
        assert dt.full((2,), fill).dtype.name == _tname(torch.full((2,), fill).dtype)
    np.testing.assert_array_equal(dt.full((2,), 1 - 2j).numpy(), [1 - 2j, 1 - 2j])


def test_save_and_load_keep_complex(tmp_path):
    for d in (dt.complex64, dt.complex128):
        t = dt.tensor(_c(3, 2), dtype=d)
        p = dt.tensor(_c(2), dtype=d, requires_grad=True)
        dt.save({"z": t, "view": t[:, 1], "p": p}, tmp_path / "z.dt")
        back = dt.load(tmp_path / "z.dt")
        assert back["z"].dtype is d and back["view"].dtype is d and back["p"].requires_grad
        np.testing.assert_array_equal(back["z"].numpy(), t.numpy())
        np.testing.assert_array_equal(back["view"].numpy(), t.numpy()[:, 1])


# ---- values against PyTorch -----------------------------------------------------------------------------------
UNARY = ["real", "imag", "conj", "abs", "angle", "exp", "log", "log1p", "expm1", "sqrt", "rsqrt", "sin", "cos", "tanh",
         "sigmoid", "neg", "reciprocal",
         "view_as_real", "sum", "mean", "isfinite"]


@pytest.mark.parametrize("name", UNARY)
@pytest.mark.parametrize("dtype", [np.complex64, np.complex128])
def test_unary_values_match_pytorch(name, dtype):
    a = _c(3, 4, dtype=dtype)
    got = getattr(dt, name)(dt.tensor(a))
    want = getattr(torch, name)(torch.from_numpy(a.copy()))
    assert got.dtype.name == _tname(want.dtype)
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.complex64 else dict(rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(got.numpy(), want.resolve_conj().numpy(), **tol)


@pytest.mark.parametrize("op", ["add", "sub", "mul", "div", "pow", "matmul", "eq", "ne"])
def test_binary_values_match_pytorch(op):
    a, b = _c(3, 3, dtype=np.complex64), _c(3, 3, dtype=np.complex64)
    r = RNG.standard_normal((3, 3)).astype(np.float64)
    for x, y in ((a, b), (a, r), (r, b), (a, 2.5), (a, 1 - 2j)):
        X = dt.tensor(x) if isinstance(x, np.ndarray) else x
        Y = dt.tensor(y) if isinstance(y, np.ndarray) else y
        TX = torch.from_numpy(x.copy()) if isinstance(x, np.ndarray) else x
        TY = torch.from_numpy(y.copy()) if isinstance(y, np.ndarray) else y
        if op == "matmul" and not (isinstance(x, np.ndarray) and isinstance(y, np.ndarray) and x.dtype == y.dtype):
            continue
        got, want = getattr(dt, op)(X, Y), getattr(torch, op)(TX, TY)
        assert got.dtype.name == _tname(want.dtype), (op, type(x), type(y))
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5, atol=1e-5)


def test_complex_polar_view_as_complex_match_pytorch():
    re, im = RNG.standard_normal((2, 3)), RNG.standard_normal((2, 3))
    np.testing.assert_array_equal(dt.complex(dt.tensor(re), dt.tensor(im)).numpy(),
                                  torch.complex(torch.from_numpy(re), torch.from_numpy(im)).numpy())
    np.testing.assert_allclose(dt.polar(dt.tensor(np.abs(re)), dt.tensor(im)).numpy(),
                               torch.polar(torch.from_numpy(np.abs(re)), torch.from_numpy(im)).numpy(), rtol=1e-12)
    pairs = RNG.standard_normal((4, 2)).astype(np.float32)
    np.testing.assert_array_equal(dt.view_as_complex(dt.tensor(pairs)).numpy(),
                                  torch.view_as_complex(torch.from_numpy(pairs)).numpy())
    assert dt.view_as_complex(dt.tensor(pairs)).dtype is dt.complex64


def test_real_and_imag_are_views_and_real_of_a_real_tensor_is_itself():
    z = dt.tensor(_c(3))
    re = z.real
    re.add_(1.0)
    np.testing.assert_array_equal(z.real.numpy(), re.numpy())
    x = dt.ones(3)
    assert dt.real(x) is x and dt.conj(x) is x
    with pytest.raises(RuntimeError, match="imag is not implemented for tensors with non-complex dtypes"):
        x.imag


def test_meta_device_shapes_and_dtypes():
    z = dt.empty(3, 4, dtype=dt.complex64, device="meta")
    assert z.abs().dtype is dt.float32 and z.real.dtype is dt.float32 and z.angle().dtype is dt.float32
    assert dt.view_as_real(z).shape == (3, 4, 2) and (z * z).dtype is dt.complex64
    assert (z @ z.mT).shape == (3, 3) and dt.view_as_complex(dt.empty(3, 2, device="meta")).dtype is dt.complex64
    with pytest.raises(NotImplementedError, match="relu: not implemented for complex tensors"):
        z.relu()


# ---- gradients -------------------------------------------------------------------------------------------------
def _grads(f, *arrays):
    """f's gradient w.r.t. every array, from devtensor and from PyTorch (f takes the library as first argument)."""
    xs = [dt.tensor(a, requires_grad=True) for a in arrays]
    f(dt, *xs).backward()
    ts = [torch.from_numpy(a.copy()).requires_grad_() for a in arrays]
    f(torch, *ts).backward()
    return [(x.grad.numpy(), t.grad.resolve_conj().numpy()) for x, t in zip(xs, ts)]


LOSSES = {
    "mul": lambda L, z, w: (z * w).abs().sum(),
    "div": lambda L, z, w: (z / w).real.sum() + (w / z).imag.sum(),
    "exp_log": lambda L, z, w: (L.exp(z) * L.log(w)).abs().pow(2).sum(),
    "sqrt_sin_cos": lambda L, z, w: (L.sqrt(z) + L.sin(w) * L.cos(z)).abs().sum(),
    "tanh_recip": lambda L, z, w: (L.tanh(z) + w.reciprocal()).imag.sum(),
    "sigmoid": lambda L, z, w: (L.sigmoid(z) * w).abs().sum(),
    "log1p_expm1_rsqrt": lambda L, z, w: (L.log1p(z) * L.expm1(w) + L.rsqrt(z)).abs().sum(),
    "pow": lambda L, z, w: (z ** 2 + z ** w).real.sum(),
    "matmul": lambda L, z, w: (z @ w).abs().sum(),
    "conj_angle": lambda L, z, w: (z.conj() * w).angle().sum(),
    "view_as_real": lambda L, z, w: (L.view_as_real(z * w) ** 2).sum(),
    "sum_mean": lambda L, z, w: (z.sum(0) * w.mean(1)).abs().sum(),
    "polar": lambda L, z, w: L.polar(z.abs(), w.angle()).real.sum(),
}


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_gradients_of_real_losses_match_pytorch(name):
    a, b = _c(3, 3), _c(3, 3)
    for g, tg in _grads(LOSSES[name], a, b):
        np.testing.assert_allclose(g, tg, rtol=1e-9, atol=1e-10)


def test_mixed_real_and_complex_inputs_get_real_gradients_as_pytorch():
    x, z = RNG.standard_normal((3,)), _c(3)
    for g, tg in _grads(lambda L, x, z: (x * z).abs().sum() + L.complex(x, x.sin()).angle().sum(), x, z):
        assert g.dtype == tg.dtype
        np.testing.assert_allclose(g, tg, rtol=1e-9, atol=1e-10)


def test_backward_on_a_complex_output_raises_as_pytorch():
    z = dt.tensor(_c(3), requires_grad=True)
    with pytest.raises(RuntimeError, match="grad can be implicitly created only for real scalar outputs"):
        (z * z).sum().backward()
    g = dt.tensor(_c(3))
    (z * 2).backward(g)
    np.testing.assert_allclose(z.grad.numpy(), 2 * g.numpy())


# ---- the op table: complex-capable ops on complex samples; the others refuse -----------------------------------
def _complexify(args):
    with np.errstate(all="ignore"):  # (samples with inf / nan keep them)
        return tuple(np.asarray(a + 1j * np.cos(3 * a + 1)) if isinstance(a, np.ndarray) and a.dtype.kind == "f"
                     else a for a in args)


# complex-capable ops whose real samples do not make complex ones: why
NOT_COMPLEXIFIED = {
    "cast": "its samples name real target dtypes", "where": "the condition is bool and stays so",
    "complex": "real inputs by definition", "view_as_complex": "real inputs by definition",
    "fft_c2r": "already complex samples", "fft_c2c": "already complex samples",
    "pad": "its sample's fill value is real, which PyTorch also accepts; covered by fft's zero padding",
}
COMPLEX_OPS = sorted(n for n, op in OPS.items() if op.complex and op.ref is not None and op.samples is not None
                     and n not in NOT_COMPLEXIFIED)


@pytest.mark.parametrize("name", COMPLEX_OPS)
def test_complex_capable_ops_on_complex_samples(name):
    op = OPS[name]
    checked = 0
    for args, kwargs in op.samples(np.float64):
        args = _complexify(args)
        if not any(isinstance(a, np.ndarray) and a.dtype.kind == "c" for a in args):
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            want = op.ref(*args, **kwargs)
        tensors = tuple(dt.tensor(a) if isinstance(a, np.ndarray) else a for a in args)
        got = op(*tensors, **kwargs)
        np.testing.assert_allclose(got.numpy(), np.asarray(want), rtol=1e-10, atol=1e-10, err_msg=name)
        if op.differentiable and all(a.size <= 60 for a in args if isinstance(a, np.ndarray)):
            ins = tuple(t.detach().requires_grad_() if isinstance(t, dt.Tensor) and t.dtype._cat >= 2 else t
                        for t in tensors)
            assert gradcheck(lambda *xs: op(*xs, **kwargs), ins, atol=1e-6, rtol=1e-4), name
        checked += 1
    assert checked, f"{name}: no sample became complex"


REFUSING = sorted(n for n, op in OPS.items() if not op.complex and op.samples is not None and op.ref is not None)


@pytest.mark.parametrize("name", REFUSING)
def test_ops_that_do_not_take_complex_refuse_it_naming_the_op(name):
    op = OPS[name]
    for args, kwargs in op.samples(np.float64):
        args = _complexify(args)
        if any(isinstance(a, np.ndarray) and a.dtype.kind == "c" for a in args):
            tensors = tuple(dt.tensor(a) if isinstance(a, np.ndarray) else a for a in args)
            with pytest.raises(NotImplementedError, match=rf"^{op.shown_as}: not implemented for complex tensors"):
                op(*tensors, **kwargs)
            return
    pytest.fail(f"{name}: no sample has a float array argument to make complex")


@pytest.mark.parametrize("f", ["relu", "floor", "sign", "lt", "max", "sort", "clamp", "cumprod",
                               "maximum", "argmax"])
def test_public_functions_refuse_complex_with_the_op_and_dtype(f):
    z = dt.tensor(_c(4, dtype=np.complex64))
    calls = {"lt": lambda: z < 1, "clamp": lambda: z.clamp(0, 1), "cumprod": lambda: z.cumprod(0),
             "maximum": lambda: dt.maximum(z, z), "sort": lambda: z.sort()}
    with pytest.raises(NotImplementedError, match=r"not implemented for complex tensors \(complex64\)"):
        calls.get(f, lambda: getattr(z, f)())()
