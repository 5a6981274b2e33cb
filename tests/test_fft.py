"""devtensor.fft against torch.fft: values (every function, norm mode, n / s padding and cutting, dims, odd and
even sizes, float32 and float64), gradients of real losses against PyTorch's, gradcheck / gradgradcheck in
float64 (complex inputs perturbed along their real and imaginary parts), the meta device's shapes and dtypes,
the errors, and the cuda registrations (the portable tier, run here with numpy standing in for CuPy)."""
from __future__ import annotations

import numpy as np
import pytest

import devtensor as dt
from devtensor.autograd.gradcheck import gradcheck, gradgradcheck

torch = pytest.importorskip("torch")

RNG = np.random.default_rng(20261206)
NORMS = (None, "backward", "ortho", "forward")
TDT = {np.float32: torch.float32, np.float64: torch.float64, np.complex64: torch.complex64,
       np.complex128: torch.complex128}


def _data(shape, dtype):
    a = RNG.standard_normal(shape)
    if np.dtype(dtype).kind == "c":
        a = a + 1j * RNG.standard_normal(shape)
    return a.astype(dtype)


def _tol(dtype):
    return dict(rtol=2e-4, atol=2e-4) if np.dtype(dtype) in (np.float32, np.complex64) else dict(rtol=1e-10,
                                                                                                 atol=1e-10)


def _check(name, a, kwargs, tkwargs=None):
    """devtensor.fft.<name>(tensor(a), **kwargs) against torch.fft.<name>: values, dtype, shape."""
    got = getattr(dt.fft, name)(dt.tensor(a), **kwargs)
    want = getattr(torch.fft, name)(torch.from_numpy(a.copy()), **(tkwargs or kwargs))
    assert str(got.dtype).split(".")[-1] == str(want.dtype).split(".")[-1], (name, got.dtype, want.dtype)
    assert tuple(got.shape) == tuple(want.shape)
    np.testing.assert_allclose(got.numpy(), want.resolve_conj().numpy(), **_tol(a.dtype))


ONE_D = {"fft": ("r", "c"), "ifft": ("r", "c"), "rfft": ("r",), "ihfft": ("r",), "irfft": ("c",), "hfft": ("c",)}
FLOATS = {"r": (np.float32, np.float64), "c": (np.complex64, np.complex128)}


@pytest.mark.parametrize("name", sorted(ONE_D))
@pytest.mark.parametrize("norm", NORMS)
def test_one_dim_values_every_norm_size_and_dim(name, norm):
    for kind in ONE_D[name]:
        for dtype in FLOATS[kind]:
            for shape in ((7,), (4, 8), (3, 6, 5)):
                a = _data(shape, dtype)
                for dim in (-1, 0):
                    m = shape[dim]
                    for n in (None, 1, max(m - 2, 1), m, m + 3):
                        _check(name, a, dict(n=n, dim=dim, norm=norm))


N_D = ("fft2", "ifft2", "rfft2", "irfft2", "fftn", "ifftn", "rfftn", "irfftn", "hfft2", "ihfft2", "hfftn", "ihfftn")


@pytest.mark.parametrize("name", N_D)
@pytest.mark.parametrize("norm", NORMS)
def test_n_dim_values_with_s_and_dim(name, norm):
    real_in = name.startswith(("rfft", "ihfft"))
    for dtype in ((np.float32, np.float64) if real_in else (np.float64, np.complex64, np.complex128)):
        if name.startswith(("irfft", "hfft")) and np.dtype(dtype).kind != "c":
            continue
        a = _data((3, 4, 5), dtype)
        cases = [dict(), dict(s=(2, 7)), dict(dim=(0, 2)), dict(s=(5, 3), dim=(2, 0)), dict(s=(-1, 6)),
                 dict(dim=(-1,)), dict(s=(4,), dim=1)]
        if name.endswith("n"):
            cases += [dict(s=(2, 3, 7)), dict(dim=None, s=(3, 3))]
        for kw in cases:  # (fft2 with one dim or s of one size: PyTorch allows it too)
            _check(name, a, dict(kw, norm=norm))


def test_integer_input_becomes_the_default_float_and_real_fft_is_complex_of_its_precision():
    a = np.arange(6)
    assert dt.fft.fft(dt.tensor(a)).dtype is dt.complex64
    assert dt.fft.rfft(dt.tensor(a)).dtype is dt.complex64
    assert dt.fft.irfft(dt.tensor(a)).dtype is dt.float32
    assert dt.fft.fft(dt.tensor(a, dtype=dt.float64)).dtype is dt.complex128
    _check("fft", a, {})
    _check("rfft", a, {})


def test_irfft_of_a_real_tensor_treats_it_as_complex():
    _check("irfft", _data((6,), np.float64), dict(n=9))
    _check("hfft", _data((6,), np.float64), {})


def test_out_argument_as_pytorch():
    a = _data((4, 6), np.float64)
    out = dt.empty(0, dtype=dt.complex128)
    r = dt.fft.rfft(dt.tensor(a), out=out)
    assert r is out and out.shape == (4, 4)
    np.testing.assert_allclose(out.numpy(), torch.fft.rfft(torch.from_numpy(a)).numpy(), rtol=1e-12)
    with pytest.raises(RuntimeError, match="can't be cast"):
        dt.fft.fft(dt.tensor(a), out=dt.empty(4, 6))
    f = dt.empty(5)
    dt.fft.fftfreq(5, out=f)
    np.testing.assert_allclose(f.numpy(), torch.fft.fftfreq(5).numpy())


# ---- helpers: fftfreq, rfftfreq, fftshift, ifftshift --------------------------------------------------------
@pytest.mark.parametrize("n", [1, 2, 5, 8])
def test_fftfreq_rfftfreq(n):
    for d in (1.0, 0.25):
        np.testing.assert_allclose(dt.fft.fftfreq(n, d).numpy(), torch.fft.fftfreq(n, d).numpy(), rtol=1e-6)
        np.testing.assert_allclose(dt.fft.rfftfreq(n, d).numpy(), torch.fft.rfftfreq(n, d).numpy(), rtol=1e-6)
    assert dt.fft.fftfreq(n).dtype is dt.float32
    assert dt.fft.fftfreq(n, dtype=dt.float64).dtype is dt.float64


def test_fftshift_ifftshift_odd_and_even():
    for shape in ((5,), (4, 7), (3, 4, 6)):
        a = _data(shape, np.float64)
        for dim in (None, 0, -1, (0, -1)):
            for name in ("fftshift", "ifftshift"):
                got = getattr(dt.fft, name)(dt.tensor(a), dim=dim).numpy()
                want = getattr(torch.fft, name)(torch.from_numpy(a), dim=dim).numpy()
                np.testing.assert_array_equal(got, want)
        x = dt.tensor(a)
        np.testing.assert_array_equal(dt.fft.ifftshift(dt.fft.fftshift(x)).numpy(), a)


# ---- gradients --------------------------------------------------------------------------------------------
def _loss_grads(fn_dt, fn_t, a):
    x = dt.tensor(a, requires_grad=True)
    y = fn_dt(x)
    y.backward()
    tx = torch.from_numpy(a.copy()).requires_grad_()
    fn_t(tx).backward()
    return x.grad.numpy(), tx.grad.numpy()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gradients_of_real_losses_match_pytorch(dtype):
    a = _data((4, 6), dtype)
    w = _data((4, 4), np.complex128 if dtype == np.float64 else np.complex64)
    g, tg = _loss_grads(lambda x: dt.fft.fft(x).abs().sum(), lambda x: torch.fft.fft(x).abs().sum(), a)
    np.testing.assert_allclose(g, tg, **_tol(dtype))
    wd, wt = dt.tensor(w), torch.from_numpy(w)
    g, tg = _loss_grads(lambda x: dt.fft.irfft(dt.fft.rfft(x) * wd, n=6).pow(2).sum(),
                        lambda x: torch.fft.irfft(torch.fft.rfft(x) * wt, n=6).pow(2).sum(), a)
    np.testing.assert_allclose(g, tg, **_tol(dtype))
    for norm in NORMS:
        g, tg = _loss_grads(lambda x: dt.fft.rfft2(x, s=(3, 7), norm=norm).abs().pow(2).sum(),
                            lambda x: torch.fft.rfft2(x, s=(3, 7), norm=norm).abs().pow(2).sum(), a)
        np.testing.assert_allclose(g, tg, **_tol(dtype))


def _projection(F, y, v):
    """A real loss of y: sum(v * y) for real y, Re(sum(conj(v) * y)) for complex y."""
    if y.dtype.is_complex if F is dt.fft else y.is_complex():
        return (y * v.conj()).real.sum()
    return (y * v.real).sum()


CASES = [("fft", dict(n=7)), ("ifft", dict(n=3, norm="ortho")), ("rfft", dict(n=9)), ("rfft", dict(norm="forward")),
         ("irfft", dict()), ("irfft", dict(n=7)), ("irfft", dict(n=4, norm="ortho")), ("hfft", dict(n=5)),
         ("ihfft", dict()), ("fft2", dict(s=(3, 5))), ("ifft2", dict(norm="forward")), ("rfft2", dict()),
         ("irfft2", dict(s=(4, 5))), ("irfftn", dict()), ("rfftn", dict(dim=(0,))), ("fftn", dict(dim=(1, 0))),
         ("hfft2", dict(s=(3, 4))), ("ihfftn", dict(norm="ortho"))]


REAL_IN = ("rfft", "ihfft", "rfft2", "rfftn", "ihfft2", "ihfftn")  # PyTorch refuses complex input to these (test_errors)
GRAD_CASES = [(n, k, c) for n, k in CASES for c in (False, True) if not (c and n in REAL_IN)]


@pytest.mark.parametrize("name,kw,complex_in", GRAD_CASES,
                         ids=[f"{n}-{sorted(k.items())}-{'c' if c else 'r'}" for n, k, c in GRAD_CASES])
def test_gradients_of_projections_match_pytorch(name, kw, complex_in):
    a = _data((4, 6), np.complex128 if complex_in else np.float64)
    y_t = getattr(torch.fft, name)(torch.from_numpy(a), **kw)
    v = _data(tuple(y_t.shape), np.complex128)
    g, tg = _loss_grads(lambda x: _projection(dt.fft, getattr(dt.fft, name)(x, **kw), dt.tensor(v)),
                        lambda x: _projection(torch.fft, getattr(torch.fft, name)(x, **kw), torch.from_numpy(v)), a)
    np.testing.assert_allclose(g, tg, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name,kw", CASES, ids=[f"{n}-{sorted(k.items())}" for n, k in CASES])
def test_gradcheck_float64(name, kw):
    real_in = name in REAL_IN
    a = _data((3, 4) if name.endswith(("2", "n")) else (5,), np.float64 if real_in else np.complex128)
    x = dt.tensor(a, requires_grad=True)
    f = lambda t: getattr(dt.fft, name)(t, **kw)  # noqa: E731
    assert gradcheck(f, (x,))
    assert gradgradcheck(f, (x,))


def test_real_input_of_a_complex_transform_gets_a_real_gradient():
    x = dt.randn(6, dtype=dt.float64, requires_grad=True)
    dt.fft.fft(x).abs().sum().backward()
    assert x.grad.dtype is dt.float64
    assert gradcheck(lambda t: dt.fft.fft(t, n=8), (x,))


# ---- the meta device --------------------------------------------------------------------------------------
@pytest.mark.parametrize("name,kw", CASES, ids=[f"{n}-{sorted(k.items())}" for n, k in CASES])
@pytest.mark.parametrize("dtype", [dt.float32, dt.complex128])
def test_meta_device_gives_the_shapes_and_dtypes(name, kw, dtype):
    real_in = name in REAL_IN
    if real_in and dtype.is_complex:
        dtype = dt.float64
    shape = (4, 6)
    cpu = getattr(dt.fft, name)(dt.zeros(shape, dtype=dtype), **kw)
    meta = getattr(dt.fft, name)(dt.zeros(shape, dtype=dtype, device="meta"), **kw)
    assert meta.device.type == "meta"
    assert tuple(meta.shape) == tuple(cpu.shape) and meta.dtype is cpu.dtype


# ---- errors -----------------------------------------------------------------------------------------------
def test_errors_name_the_function_and_the_problem():
    z = dt.tensor([1 + 1j, 2, 3])
    with pytest.raises(RuntimeError, match="rfft.*real input.*complex64"):
        dt.fft.rfft(z)
    with pytest.raises(ValueError, match="fft.fft: Invalid normalization mode: 'sideways'"):
        dt.fft.fft(z, norm="sideways")
    with pytest.raises(RuntimeError, match=r"Invalid number of data points \(0\)"):
        dt.fft.fft(z, n=0)
    with pytest.raises(RuntimeError, match=r"Invalid number of data points \(0\)"):
        dt.fft.irfft(dt.tensor([1 + 0j]))
    with pytest.raises(RuntimeError, match="fft.fft: Unsupported dtype float16"):
        dt.fft.fft(dt.ones(4, dtype=dt.float16))
    with pytest.raises(IndexError, match="dimension out of range"):
        dt.fft.fft(z, dim=2)
    with pytest.raises(RuntimeError, match="dim and shape arguments must have the same length"):
        dt.fft.fftn(dt.ones(2, 3), s=(2,), dim=(0, 1))
    with pytest.raises(RuntimeError, match="FFT dims must be unique"):
        dt.fft.fftn(dt.ones(2, 3), dim=(0, 0))
    with pytest.raises(TypeError, match="fft.fft: argument 'input'.*must be Tensor"):
        dt.fft.fft(np.ones(3))
    with pytest.raises(TypeError, match="fft.rfft2: argument 'input'.*must be Tensor, not list"):
        dt.fft.rfft2([[1.0, 2.0]])
    with pytest.raises(RuntimeError, match="rfftn: must transform at least one axis"):
        dt.fft.rfftn(dt.ones(2, 3), dim=())
    with pytest.raises(IndexError):
        dt.fft.fft(dt.tensor(1.0))
    y = dt.fft.fftn(dt.ones(2, 3), dim=())  # no axis: the input as complex, as PyTorch
    assert y.dtype is dt.complex64 and np.array_equal(y.numpy(), np.ones((2, 3)))


# ---- cuda: the portable tier ------------------------------------------------------------------------------
def test_cuda_registers_the_cupy_fft_kernels_in_the_portable_tier():
    import devtensor.backends.cuda as dtcuda
    from devtensor import backends
    from devtensor.backends import array_api_fft

    for name in ("fft_c2c", "fft_r2c", "fft_c2r", "real", "imag", "conj", "angle", "view_as_real",
                 "view_as_complex", "complex"):
        tier, fn = dtcuda.cuda.serving(name, np.complex64 if name not in ("fft_r2c", "view_as_complex", "complex")
                                       else np.float32)
        assert tier == "portable"
    # the CuPy code itself, with numpy standing in for CuPy (the lazy stand-in resolves attributes per call)
    be = backends.Backend("fft_probe")
    array_api_fft.register(be, type("Lazy", (), {"__getattr__": lambda self, n: getattr(np, n)})())
    a = _data((4, 6), np.complex64)
    y = be.resolve("fft_c2c")(a, dim=(1,), norm=1, forward=True)
    assert y.dtype == np.complex64
    np.testing.assert_allclose(y, np.fft.fft(a, axis=1, norm="ortho"), rtol=1e-5, atol=1e-5)
    r = be.resolve("fft_c2r")(a[:, :4], dim=(0, 1), norm=2, last_dim_size=6)
    np.testing.assert_allclose(r, np.fft.irfftn(a[:, :4], s=(4, 6), axes=(0, 1)), rtol=1e-5, atol=1e-5)
    assert r.dtype == np.float32


class _StrictView(np.ndarray):
    """An array whose view() to another itemsize insists on C-contiguity (as some array libraries do)."""

    def view(self, dtype=None, *args):
        if dtype is not None and np.dtype(dtype).itemsize != self.itemsize and not self.flags.c_contiguous:
            raise ValueError("the array must be C-contiguous")
        return super().view(dtype, *args) if dtype is not None else super().view(*args)


def test_view_as_real_and_complex_kernels_copy_where_a_library_refuses_the_view():
    from devtensor import backends
    from devtensor.backends import array_api_fft

    be = backends.Backend("view_probe")
    array_api_fft.register(be, np)
    z = _data((3, 4), np.complex128).T.view(_StrictView)  # non-contiguous
    np.testing.assert_array_equal(be.resolve("view_as_real")(z), np.stack((z.real, z.imag), -1))
    pairs = _data((4, 3, 2), np.float64).transpose(1, 0, 2).view(_StrictView)
    np.testing.assert_array_equal(be.resolve("view_as_complex")(pairs), pairs[..., 0] + 1j * pairs[..., 1])
