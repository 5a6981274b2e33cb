"""Backends: plain objects that name their array type and hold a kernel table filled by decorator.

    cpu = Backend("cpu", ...)
    @cpu.kernel("mul")                                   # every dtype, tier "specialised"
    def _mul(a, b): return np.multiply(a, b)

    @cuda.kernel("conv2d", dtypes=("float32",))          # a CUDA C kernel: only what it implements
    def _conv2d_f32(x, w, b, ...): ...

    @cuda.kernel("conv2d", tier="portable")              # the array-API code: every dtype
    def _conv2d_any(x, w, b, ...): ...

Kernel tiers.  Each op name holds a chain of registrations: "specialised" ones (numba loops, CUDA C
kernels, registered for the dtypes they implement) before "portable" ones (the array-API code that
reads the same in numpy and CuPy; array_api_kernels.register uses this tier).  Within a tier a later
registration wins where dtypes overlap, so a user can override a kernel.  `resolve(name)` gives the
callable dispatch stores for the backend: the function itself when one registration serves every
dtype (no overhead), else a small closure that picks by the dtype of the first argument with a
`.dtype` (dispatch has cast tensor arguments to one compute dtype) and raises `NoKernel` where no
registration covers it (dispatch then tries the op's composite).

Backends sit below dispatch and never import it.  Dispatch learns about registrations through
listeners: `add_listener(fn)`; `register(backend)` calls fn(backend_name, op_name) for each op the
backend has, and so does every later `kernel(...)` registration on a registered backend.

A third-party backend is registered with `register(backend)` or advertised through the
entry-point group `devtensor.backends` (the entry point names a Backend object).
"""
from __future__ import annotations

import importlib
from importlib import metadata

import numpy as np

_REGISTRY: dict = {}
_LOADED_ENTRY_POINTS = [False]
_LISTENERS: list = []

TIERS = ("specialised", "portable")


class NoKernel(NotImplementedError):
    """No registration of the backend's chain for `op` covers `dtype` (dispatch then tries the
    op's composite, if it has one)."""

    def __init__(self, op, backend, dtype, have=()):
        self.op, self.backend, self.dtype = op, backend, dtype
        self.have = tuple(have)
        what = f"dtype {_dtype_name(dtype)}" if dtype is not None else "a call without array arguments"
        super().__init__(f"{op}: no {backend} kernel for {what}; dtypes it has: "
                         f"{', '.join(self.have) if self.have else 'none'}")


def _dtype_name(d):
    return getattr(d, "name", str(d))


def _as_np_dtype(d):
    """A numpy dtype from a numpy dtype / scalar type / name / devtensor dtype."""
    npd = getattr(d, "np", None)  # a devtensor dtype
    if isinstance(npd, np.dtype):
        return npd
    if isinstance(d, str):
        from .. import dtypes as _dt  # a leaf module (numpy only): names numpy lacks, e.g. bfloat16

        named = _dt._NAMES.get(d)
        if named is not None and named.np is not None:
            return named.np
    return np.dtype(d)


def _call_dtype(args, kwargs):
    """The dtype a chain picks by: the first argument with a numpy `.dtype`; for calls without
    arrays (creation ops), the first devtensor dtype among the arguments."""
    for a in args:
        d = getattr(a, "dtype", None)
        if d is not None:
            return d
    for a in (*args, kwargs.get("dtype")):
        npd = getattr(a, "np", None)
        if isinstance(npd, np.dtype):
            return npd
    return None


class _Entry:
    __slots__ = ("tier", "dtypes", "fn")

    def __init__(self, tier, dtypes, fn):
        self.tier, self.dtypes, self.fn = tier, dtypes, fn

    def covers(self, d):
        return self.dtypes is None or d in self.dtypes


def _chained(op_name, backend_name, entries):
    """One callable for a chain that no single registration covers: picks by dtype, memoised."""
    by_dtype: dict = {}

    def pick(d):
        for e in entries:
            if d is not None and e.covers(d) or d is None and e.dtypes is None:
                by_dtype[d] = e.fn
                return e.fn
        have = sorted({_dtype_name(t) for e in entries for t in (e.dtypes or ())})
        raise NoKernel(op_name, backend_name, d, have)

    def kernel(*args, **kwargs):
        try:  # the usual call: the first argument an array whose dtype was seen before
            fn = by_dtype[args[0].dtype]
        except (IndexError, AttributeError, KeyError, TypeError):
            d = _call_dtype(args, kwargs)
            fn = by_dtype.get(d) or pick(d)
        return fn(*args, **kwargs)

    kernel.__name__ = f"{op_name}[{backend_name} by dtype]"
    kernel.__qualname__ = kernel.__name__
    kernel.chain = tuple((e.tier, e.dtypes, e.fn) for e in entries)
    kernel.pick = pick
    return kernel


class Backend:
    """A device type's kernels plus the few services the core needs from it.

    Subclass it (or pass callables) to provide: is_available() -> (bool, reason),
    from_numpy(array, device) -> backend array, to_numpy(array) -> numpy array,
    synchronize(device), manual_seed(seed), current_device() and check_index(i).
    """

    def __init__(self, name, array_type=None, *, from_numpy=None, to_numpy=None,
                 is_available=None, synchronize=None, manual_seed=None):
        self.name = name
        self.array_type = array_type
        self._chains: dict = {}     # op name -> [_Entry], specialised first, newest first in a tier
        self._resolved: dict = {}   # op name -> resolve()'s answer, until the chain changes
        if from_numpy is not None:
            self.from_numpy = from_numpy
        if to_numpy is not None:
            self.to_numpy = to_numpy
        if is_available is not None:
            self.is_available = is_available
        if synchronize is not None:
            self.synchronize = synchronize
        if manual_seed is not None:
            self.manual_seed = manual_seed

    # -- the table ---------------------------------------------------------------------------
    def kernel(self, *names, dtypes=None, tier="specialised"):
        """Decorator: register the function for each op name.

        dtypes: an iterable of numpy dtypes / names / devtensor dtypes it implements (None: all).
        tier: "specialised" (a numba or CUDA C kernel) or "portable" (array-API code)."""
        if tier not in TIERS:
            raise ValueError(f"kernel tier must be one of {TIERS}, got {tier!r}")
        if isinstance(dtypes, (str, np.dtype, type)) or hasattr(dtypes, "np"):
            dtypes = (dtypes,)
        dts = None if dtypes is None else frozenset(_as_np_dtype(d) for d in dtypes)
        if dts is not None and not dts:
            raise ValueError("kernel: dtypes=() registers for no dtype (None means all)")

        def deco(fn):
            for n in names:
                self._add(n, _Entry(tier, dts, fn))
            if self.name in _REGISTRY and _REGISTRY[self.name] is self:
                for n in names:
                    _notify(self.name, n)
            return fn

        return deco

    def _add(self, name, entry):
        chain = self._chains.setdefault(name, [])
        # an earlier registration of the same tier that the new one covers entirely can never run
        chain[:] = [e for e in chain if not (e.tier == entry.tier and (
            entry.dtypes is None or (e.dtypes is not None and e.dtypes <= entry.dtypes)))]
        at = next((i for i, e in enumerate(chain) if TIERS.index(e.tier) >= TIERS.index(entry.tier)), len(chain))
        chain.insert(at, entry)
        self._resolved.pop(name, None)

    def resolve(self, name):
        """What dispatch stores as op.kernels[self.name]: None (nothing registered), the function
        (one registration serves every dtype the chain can reach), or a closure picking by dtype."""
        try:
            return self._resolved[name]
        except KeyError:
            pass
        chain = self._chains.get(name)
        if not chain:
            fn = None
        elif chain[0].dtypes is None:
            fn = chain[0].fn
        else:
            fn = _chained(name, self.name, tuple(chain))
        self._resolved[name] = fn
        return fn

    def tiers(self, name):
        """[(tier, frozenset of numpy dtypes or None for all, fn)] in the order they are tried."""
        return [(e.tier, e.dtypes, e.fn) for e in self._chains.get(name, ())]

    def serving(self, name, dtype):
        """(tier, fn) of the registration that serves `dtype` for op `name`, or None."""
        d = _as_np_dtype(dtype)
        for e in self._chains.get(name, ()):
            if e.covers(d):
                return e.tier, e.fn
        return None

    def op_names(self):
        """The op names this backend has registrations for (sorted)."""
        return sorted(n for n, c in self._chains.items() if c)

    @property
    def kernels(self) -> dict:
        """{op name: resolve(op name)}: a read-only snapshot (register with kernel())."""
        return {n: self.resolve(n) for n in self.op_names()}

    def finalise(self, declared_op_names):
        """Check the table against the declared ops: a kernel for a name no op declares (a typo,
        or an op that was renamed) is an error.  Raises ValueError listing the orphans."""
        declared = set(declared_op_names)
        orphans = [n for n in self.op_names() if n not in declared]
        if orphans:
            raise ValueError(f"backend {self.name!r} registers kernels for ops that are not declared: "
                             f"{', '.join(orphans)}")

    # -- services (defaults suit a host-memory backend) ---------------------------------------
    def is_available(self):
        return True, ""

    def from_numpy(self, array, device):
        return array

    def to_numpy(self, array):
        return np.asarray(array)

    def ensure_array(self, raw):
        """Kernels must return arrays; numpy ufuncs return scalars for 0-d inputs."""
        return np.asarray(raw)

    def synchronize(self, device=None):
        pass

    def manual_seed(self, seed):
        pass

    def current_device(self):
        return 0

    def check_index(self, index):
        return None

    def __repr__(self):
        ok, why = self.is_available()
        return f"<devtensor backend {self.name!r}: {'available' if ok else 'unavailable: ' + why}>"


# ---- listeners ------------------------------------------------------------------------------------

def add_listener(fn):
    """fn(backend_name, op_name) is called for each op of every backend registered from now on,
    and for every kernel registration on a registered backend; it is also called now for every
    op of the backends already registered.  Returns fn."""
    _LISTENERS.append(fn)
    for be in list(_REGISTRY.values()):
        for n in be.op_names():
            fn(be.name, n)
    return fn


def remove_listener(fn):
    if fn in _LISTENERS:
        _LISTENERS.remove(fn)


def _notify(backend_name, op_name):
    for fn in list(_LISTENERS):
        fn(backend_name, op_name)


# ---- the registry ---------------------------------------------------------------------------------

def register(backend: Backend) -> Backend:
    """Register a backend (its device type becomes valid in device strings); listeners hear of
    each of its ops."""
    _REGISTRY[backend.name] = backend
    for op_name in backend.op_names():
        _notify(backend.name, op_name)
    return backend


def registered() -> dict:
    """{name: Backend} of the registered backends (a copy)."""
    return dict(_REGISTRY)


def _load_entry_points():
    if _LOADED_ENTRY_POINTS[0]:
        return
    _LOADED_ENTRY_POINTS[0] = True
    try:
        eps = metadata.entry_points(group="devtensor.backends")
    except Exception:  # pragma: no cover - broken metadata must not break import
        return
    for ep in eps:
        try:
            be = ep.load()
        except Exception as e:  # a broken plugin is reported by available(), not fatal
            _BROKEN[ep.name] = f"entry point {ep.value!r} failed to load: {e}"
            continue
        if isinstance(be, Backend) and be.name not in _REGISTRY:
            register(be)


_BROKEN: dict = {}


def get_backend(name: str) -> Backend:
    be = _REGISTRY.get(name)
    if be is None:
        _load_entry_points()
        be = _REGISTRY.get(name)
    if be is None:
        raise RuntimeError(f"no backend named {name!r}; registered: {', '.join(sorted(_REGISTRY))}")
    return be


def available() -> dict:
    """{name: (is_available, reason)} for every registered backend (and broken plugins)."""
    _load_entry_points()
    out = {name: be.is_available() for name, be in _REGISTRY.items()}
    for name, why in _BROKEN.items():
        out.setdefault(name, (False, why))
    return out


def _register_builtin():
    for mod in ("cpu", "meta", "cuda"):
        importlib.import_module(f"{__name__}.{mod}")


from . import cudnn  # noqa: E402,F401  (not a backend: torch.backends.cudnn's flags, for scripts that set them)
