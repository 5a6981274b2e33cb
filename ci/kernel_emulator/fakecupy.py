"""A stand-in `cupy` module for the kernel emulator: "device" arrays are numpy arrays of a subclass
(`ndarray`), and RawModule kernels run in the CPU emulator (emu.h, compiled by build.py).

What it checks that real CuPy does not: every kernel argument against the kernel's C signature
(a Python int / float where the C side takes int / float is rejected: CuPy passes a Python int as
long long and a float as double, so the kernel would read the wrong bytes), array dtypes against pointer types, and that kernel array arguments are
"device" arrays (a host numpy array would be a bug).  Everything else falls back to numpy, with
results turned into device arrays, so devtensor's cuda backend runs on it end to end.

    import fakecupy; fakecupy.install()   # before anything imports cupy
"""
from __future__ import annotations

import ctypes
import math
import sys
import types

import numpy as np

try:
    from . import build as _build
except ImportError:  # loaded as a top-level module (run.py puts this folder on sys.path)
    import build as _build


class _Mem:
    __slots__ = ("ptr",)

    def __init__(self, ptr):
        self.ptr = ptr


class ndarray(np.ndarray):
    """A "device" array: a numpy array whose .data.ptr is what a kernel receives."""

    @property
    def data(self):
        return _Mem(self.ctypes.data)

    def get(self):
        return np.array(self, copy=True).view(np.ndarray)


def _dev(a):
    """Wrap numpy results as device arrays (views: no copy), recursively in tuples / lists."""
    if isinstance(a, np.ndarray):
        return a if type(a) is ndarray else a.view(ndarray)
    if isinstance(a, tuple):
        return tuple(_dev(x) for x in a)
    if isinstance(a, list):
        return [_dev(x) for x in a]
    if isinstance(a, np.generic):
        return np.asarray(a).view(ndarray)  # CuPy reductions return 0-d arrays, not scalars
    return a


def _wrapped(fn):
    def call(*args, **kwargs):
        return _dev(fn(*args, **kwargs))

    call.__name__ = getattr(fn, "__name__", "fn")
    call.__wrapped__ = fn
    return call


# ---- host <-> device: copies, as in CuPy ---------------------------------------------------
def asarray(a, dtype=None, order=None, **_kw):
    if type(a) is ndarray and (dtype is None or a.dtype == dtype):
        return a
    if isinstance(a, ndarray):
        return a.astype(dtype)
    return np.array(a, dtype=dtype, order=order or "K", copy=True).view(ndarray)


def array(a, dtype=None, copy=True, order="K", **_kw):
    return np.array(a, dtype=dtype, copy=copy, order=order).view(ndarray)


def asnumpy(a, **_kw):
    return np.array(a, copy=True).view(np.ndarray)


def ascontiguousarray(a, dtype=None):
    return _dev(np.ascontiguousarray(a, dtype=dtype))


# ---- RawModule ------------------------------------------------------------------------------
_SCALARS = {"f4": (np.float32, ctypes.c_float), "f8": (np.float64, ctypes.c_double),
            "i4": (np.int32, ctypes.c_int32), "i8": (np.int64, ctypes.c_int64)}
_PTR_DT = {"pf4": np.float32, "pf8": np.float64, "pi8": np.int64, "pi4": np.int32, "pu1": np.uint8, "pv": None}
_LIBS: dict = {}
launches: list = []  # (kernel name, grid, block) of every launch, for tests


def _load_library(code, name_expressions):
    key = (code, tuple(name_expressions or ()))
    lib = _LIBS.get(key)
    if lib is None:
        so = _build.build_code(code, name_expressions, label=_label(code))
        lib = ctypes.CDLL(str(so))
        lib.emu_launch.restype = ctypes.c_int
        lib.emu_launch.argtypes = [ctypes.c_char_p] + [ctypes.c_uint] * 6 + [ctypes.POINTER(ctypes.c_void_p)]
        lib.emu_signature.restype = ctypes.c_char_p
        lib.emu_signature.argtypes = [ctypes.c_char_p]
        _LIBS[key] = lib
    return lib


def _label(code):
    try:
        kb = _build.load_kernel_build()
        for f in kb.KERNEL_FILES:
            if kb.read_source(f) == code:
                return f
    except Exception:  # pragma: no cover - any code string still builds
        pass
    return "module"


class _Kernel:
    def __init__(self, lib, name):
        self.lib, self.name = lib, name
        sig = lib.emu_signature(name.encode())
        if sig is None:
            raise KeyError(f"kernel {name!r} is not in this module (extern \"C\" or a name expression)")
        self.sig = sig.decode().split(",") if sig else []
        self.attributes = {}
        self.max_dynamic_shared_size_bytes = 0

    def __call__(self, grid, block, args, shared_mem=0, stream=None):
        grid = tuple(int(g) for g in grid) + (1,) * (3 - len(tuple(grid)))
        block = tuple(int(b) for b in block) + (1,) * (3 - len(tuple(block)))
        if len(args) != len(self.sig):
            raise TypeError(f"{self.name}: {len(args)} arguments for the C signature ({', '.join(self.sig)})")
        if shared_mem:
            raise ValueError(f"{self.name}: dynamic shared memory is not supported by the emulator")
        keep, ptrs = [], []
        for i, (a, s) in enumerate(zip(args, self.sig)):
            if s.startswith("p"):
                if not isinstance(a, ndarray):
                    raise TypeError(f"{self.name} argument {i}: expected a device array for C type {s}, "
                                    f"got {type(a).__name__}")
                want = _PTR_DT.get(s, "?")
                if want is not None and a.dtype != want:
                    raise TypeError(f"{self.name} argument {i}: array of {a.dtype} for C pointer type {s}")
                c = ctypes.c_void_p(a.ctypes.data)
            else:
                npt, ct = _SCALARS[s]
                if type(a) is not npt:
                    raise TypeError(f"{self.name} argument {i}: scalar {a!r} of type {type(a).__name__} for C "
                                    f"type {s} (pass numpy.{npt.__name__})")
                c = ct(a)
            keep.append(c)
            ptrs.append(ctypes.cast(ctypes.pointer(c), ctypes.c_void_p))
        launches.append((self.name, grid, block))
        if 0 in grid:
            raise ValueError(f"{self.name}: launch with an empty grid {grid}")
        argv = (ctypes.c_void_p * max(1, len(ptrs)))(*ptrs)
        if self.lib.emu_launch(self.name.encode(), *grid, *block, argv):
            raise RuntimeError(f"emulator: launch of {self.name} failed")


class RawModule:
    def __init__(self, code=None, options=(), name_expressions=None, **_kw):
        if code is None:
            raise ValueError("the emulator's RawModule needs code=")
        self.options, self.name_expressions = tuple(options), name_expressions
        self.lib = _load_library(code, name_expressions)

    def get_function(self, name):
        return _Kernel(self.lib, name)

    def compile(self, *a, **k):
        return None


# ---- cuda namespace: one device, "sm_90", 132 SMs -------------------------------------------
class _Device:
    compute_capability = "90"
    attributes = {"MultiProcessorCount": 132}

    def __init__(self, i=None):
        self.id = 0 if i is None else int(i)

    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False

    def synchronize(self):
        pass

    def use(self):
        pass


class _MemoryPool:
    def used_bytes(self):
        return 0

    def total_bytes(self):
        return 0

    def free_all_blocks(self):
        pass


_POOL = _MemoryPool()


def get_default_memory_pool():
    return _POOL


def _no_op(*a, **k):
    return None


runtime = types.SimpleNamespace(
    getDeviceCount=lambda: 1, getDevice=lambda: 0, setDevice=_no_op, deviceSynchronize=_no_op,
    getDeviceProperties=lambda i=0: {"name": b"devtensor kernel emulator (CPU)", "major": 9, "minor": 0,
                                     "totalGlobalMem": 0, "multiProcessorCount": 132})
cuda = types.SimpleNamespace(Device=_Device, is_available=lambda: True, runtime=runtime,
                             get_current_stream=_no_op, Stream=types.SimpleNamespace(null=None),
                             MemoryPool=_MemoryPool)


# ---- random: CuPy's signatures (dtype= where numpy has none) ----------------------------------
class _Random:
    def __init__(self):
        self._g = np.random.default_rng(0)

    def seed(self, s=None):
        self._g = np.random.default_rng(s)

    def random_sample(self, size=None, dtype=np.float64):
        return asarray(self._g.random(size, dtype=np.dtype(dtype).type))

    rand = random_sample

    def standard_normal(self, size=None, dtype=np.float64):
        return asarray(self._g.standard_normal(size, dtype=np.dtype(dtype).type))

    def randint(self, low, high=None, size=None, dtype=np.int64):
        return asarray(self._g.integers(low, high, size=size, dtype=dtype))

    def permutation(self, n):
        return asarray(self._g.permutation(n))

    def standard_exponential(self, size=None, dtype=np.float64):
        return asarray(self._g.standard_exponential(size, dtype=np.dtype(dtype).type))

    def poisson(self, lam=1.0, size=None, dtype=np.int64):
        return asarray(self._g.poisson(np.asarray(lam), size).astype(dtype))

    # cupy.random.RandomState(seed) and cupy.random.get_random_state(): this object is the module too
    def RandomState(self, seed=None):  # noqa: N802 - CuPy's class name
        r = _Random()
        r.seed(seed)
        return r

    def get_random_state(self):
        return self


random = _Random()

float16, float32, float64 = np.float16, np.float32, np.float64
int8, int16, int32, int64, uint8, bool_ = np.int8, np.int16, np.int32, np.int64, np.uint8, np.bool_
newaxis, inf, nan, pi, e = None, math.inf, math.nan, math.pi, math.e


# cupy.fft (cuFFT): numpy.fft, with device-array results (numpy.fft is a module, which _fallback passes as is)
fft = types.SimpleNamespace(**{n: _wrapped(getattr(np.fft, n)) for n in ("fft", "ifft", "fftn", "ifftn", "rfft", "irfft",
                                                                          "rfftn", "irfftn")})


def _fallback(name):
    """Any other cupy.X: numpy's X, with array results made device arrays."""
    attr = getattr(np, name)
    if isinstance(attr, (np.ufunc, type)) or not callable(attr):
        return attr  # ufuncs keep the subclass themselves (and keep .at / .reduce); dtypes, constants
    return _wrapped(attr)


def _cupyx():
    mod = types.ModuleType("cupyx")

    def scatter_add(a, slices, value):
        np.add.at(a, slices, value)

    def _erf(x):
        return _dev(np.vectorize(math.erf, otypes=[x.dtype])(x))

    def _special(name):
        # cupyx.scipy.special's functions, computed by devtensor's cpu implementations (numpy has none)
        def fn(*args):
            from devtensor.backends.cpu import special_math as S

            if name == "polygamma":
                n, x = args
                return _dev(S.polygamma(np.asarray(x), int(np.asarray(n).reshape(-1)[0])))
            return _dev(getattr(S, {"gammaln": "lgamma"}.get(name, name))(np.asarray(args[0])))

        return fn

    mod.scatter_add = scatter_add
    mod.scipy = types.SimpleNamespace(special=types.SimpleNamespace(
        erf=_erf, **{n: _special(n) for n in ("erfc", "erfinv", "gammaln", "digamma", "polygamma")}))
    return mod


def install():
    """Put this module in sys.modules as `cupy` (and a minimal `cupyx`); returns it."""
    mod = types.ModuleType("cupy")
    mod.__file__ = __file__
    for k, v in dict(globals()).items():
        if not k.startswith("__") and k not in ("install", "_fallback", "_cupyx"):
            setattr(mod, k, v)
    mod.__getattr__ = _fallback
    mod.__version__ = "0+devtensor-kernel-emulator"
    sys.modules["cupy"] = mod
    cx = _cupyx()
    sys.modules["cupyx"] = cx
    sys.modules["cupyx.scipy"] = cx.scipy
    sys.modules["cupyx.scipy.special"] = cx.scipy.special
    return mod
