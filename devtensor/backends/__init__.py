"""Backends: plain objects that name their array type and fill the op table by decorator.

    cpu = Backend("cpu", ...)
    @cpu.kernel("mul")
    def _mul(a, b): return np.multiply(a, b)

A third-party backend is registered with `register(backend)` or advertised through the
entry-point group `devtensor.backends` (the entry point names a Backend object).
"""
from __future__ import annotations

import importlib
from importlib import metadata

import numpy as np

_REGISTRY: dict = {}
_LOADED_ENTRY_POINTS = [False]


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
        self.kernels: dict = {}
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
    def kernel(self, *names):
        """Decorator: register the function as this backend's kernel for each op name."""

        def deco(fn):
            for n in names:
                self.kernels[n] = fn
                _on_kernel_registered(n, self.name, fn)
            return fn

        return deco

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


def _on_kernel_registered(op_name, backend_name, fn):
    from ..dispatch import OPS

    op = OPS.get(op_name)
    if op is not None:
        op.kernels[backend_name] = fn
    else:  # the op module is imported later: dispatch.defop picks the kernel up from here
        _PENDING.setdefault(op_name, {})[backend_name] = fn


_PENDING: dict = {}


def register(backend: Backend) -> Backend:
    """Register a backend (its device type becomes valid in device strings)."""
    from ..device import _extra_types

    _REGISTRY[backend.name] = backend
    if backend.name not in ("cpu", "cuda", "meta") and backend.name not in _extra_types:
        _extra_types.append(backend.name)
    for op_name, fn in list(backend.kernels.items()):
        _on_kernel_registered(op_name, backend.name, fn)
    return backend


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
