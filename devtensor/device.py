"""Device names: parsing, canonical objects, the default device and the opt-in CPU fallback.

Devices are interned: `device("cuda:0") is device("cuda", 0)`, so the hot path compares
devices with `is`.
"""
from __future__ import annotations

import os
import threading
import warnings

from . import backends as _backends

_KNOWN_TYPES = ("cpu", "cuda", "meta")


class device:
    __slots__ = ("type", "index", "_str")
    _interned: dict = {}

    def __new__(cls, type_or_str="cpu", index=None):
        if isinstance(type_or_str, device):
            if index is not None:
                raise ValueError("device(): pass either a device or a type and index, not both")
            return type_or_str
        if isinstance(type_or_str, int) and not isinstance(type_or_str, bool):
            type_or_str, index = "cuda", type_or_str
        if not isinstance(type_or_str, str):
            raise TypeError(f"device(): expected a str, int or device, got {type(type_or_str).__name__}")
        key = (type_or_str, index)
        d = cls._interned.get(key)
        if d is not None:
            return d
        typ, idx = _parse(type_or_str, index)
        canon = cls._interned.get((typ, idx))
        if canon is None:
            canon = object.__new__(cls)
            canon.type, canon.index = typ, idx
            canon._str = typ if idx is None else f"{typ}:{idx}"
            cls._interned[(typ, idx)] = canon
        cls._interned[key] = canon
        return canon

    def __repr__(self):
        return f"device(type='{self.type}')" if self.index is None else f"device(type='{self.type}', index={self.index})"

    def __str__(self):
        return self._str

    def __eq__(self, other):
        if isinstance(other, str):
            try:
                other = device(other)
            except (ValueError, TypeError):
                return False
        return self is other

    def __hash__(self):
        return hash(self._str)

    def __reduce__(self):
        return (device, (self._str,))


def _parse(s, index):
    typ, sep, rest = s.strip().partition(":")
    extra = tuple(n for n in _backends._REGISTRY if n not in _KNOWN_TYPES)
    if typ not in _KNOWN_TYPES and typ not in extra:
        raise ValueError(
            f"unknown device type {typ!r} in {s!r}; expected one of: "
            + ", ".join(_KNOWN_TYPES + extra)
            + " (optionally with ':N', e.g. 'cuda:1')"
        )
    if sep:
        if index is not None:
            raise ValueError(f"device {s!r} already has an index; do not also pass index={index}")
        if not rest.isdigit():
            raise ValueError(f"bad device index in {s!r}: expected a non-negative integer after ':'")
        index = int(rest)
    if index is not None:
        if typ == "cpu":
            index = None if index == 0 else index
            if index is not None:
                raise ValueError(f"cpu has one device; got index {index}")
        elif index < 0:
            raise ValueError(f"device index must be >= 0, got {index}")
    return typ, index




# ---- default device (torch.set_default_device) and the CPU fallback ------------------------------

_state = threading.local()


def get_default_device() -> device:
    return getattr(_state, "default", None) or device("cpu")


def set_default_device(d) -> None:
    _state.default = None if d is None else resolve(d)


_fallback = [os.environ.get("DEVTENSOR_DEVICE_FALLBACK") or None]
_warned = [False]


def set_device_fallback(target) -> None:
    """Opt in to mapping every request for `cuda` to `target` (only 'cpu' or None)."""
    if target not in (None, "cpu"):
        raise ValueError(f"set_device_fallback: only 'cpu' or None is supported, got {target!r}")
    _fallback[0] = target
    _warned[0] = False


def resolve(d) -> device:
    """Parse a user device argument; apply the opt-in cuda->cpu fallback; check availability."""
    d = device(d) if not isinstance(d, device) else d
    if d.type == "cuda":
        be = _backends.get_backend("cuda")
        ok, why = be.is_available()
        if not ok:
            if _fallback[0] == "cpu":
                if not _warned[0]:
                    warnings.warn(
                        f"devtensor: cuda is not available ({why}); DEVTENSOR_DEVICE_FALLBACK=cpu maps "
                        "every cuda request to cpu", RuntimeWarning, stacklevel=3)
                    _warned[0] = True
                return device("cpu")
            raise RuntimeError(
                f"device {d} is not available: {why}. Install the cuda extra "
                "(pip install 'devtensor[cuda]', or 'devtensor[cuda12]' for a CUDA 12 driver) on a "
                "machine with an NVIDIA GPU, or set DEVTENSOR_DEVICE_FALLBACK=cpu to run cuda code on "
                "the cpu (with a warning).")
        if d.index is None:
            return device("cuda", be.current_device())
        be.check_index(d.index)
    elif d.type not in ("cpu", "meta"):
        ok, why = _backends.get_backend(d.type).is_available()
        if not ok:
            raise RuntimeError(f"device {d} is not available: {why}")
    return d
