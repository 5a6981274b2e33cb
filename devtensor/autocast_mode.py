"""torch.autocast's state: per thread and device type, whether autocast is on and its dtype. The context
manager and the casts live in ops/autocast.py; the public functions of the ops on PyTorch's lists
(linear, conv2d, cross_entropy, ...) call its cast_args.

ACTIVE counts the enabled regions entered on all threads: those public functions test this one list
item and read the thread-local only while it is non-zero, so code outside autocast pays one list read
and nothing in dispatch.call."""
from __future__ import annotations

import threading

from . import dtypes as _dt

ACTIVE = [0]
_lock = threading.Lock()

DEVICE_TYPES = ("cpu", "cuda")
DEFAULT_DTYPE = {"cpu": _dt.bfloat16, "cuda": _dt.float16}  # PyTorch's defaults per device type
_SUPPORTED = {"cpu": (_dt.bfloat16, _dt.float16), "cuda": (_dt.float16, _dt.bfloat16)}


class _State(threading.local):
    def __init__(self):
        self.enabled = {}   # device type -> bool (absent: off)
        self.dtype = dict(DEFAULT_DTYPE)
        self.cache_on = True
        self.depth = 0      # autocast contexts entered on this thread (enabled or not)
        self.cache = {}     # (id(leaf), dtype) -> (leaf, version, cast): weights cast once per region


state = _State()


def _device_type(device_type, api):
    if device_type is None:
        return "cuda"  # PyTorch: is_autocast_enabled() / get_autocast_dtype() without one mean cuda
    t = getattr(device_type, "type", device_type)
    if not isinstance(t, str) or t not in DEVICE_TYPES:
        raise RuntimeError(f"{api}: unsupported autocast device_type {device_type!r} (expected one of "
                           f"{', '.join(DEVICE_TYPES)})")
    return t


def is_autocast_enabled(device_type=None) -> bool:
    """torch.is_autocast_enabled: without a device type, cuda's (as PyTorch)."""
    return bool(state.enabled.get(_device_type(device_type, "is_autocast_enabled")))


def get_autocast_dtype(device_type):
    return state.dtype[_device_type(device_type, "get_autocast_dtype")]


def is_autocast_cache_enabled() -> bool:
    return state.cache_on


def clear_autocast_cache() -> None:
    state.cache.clear()


def guard_key():
    """What a compiled replay is guarded on: None outside autocast, else the thread's enabled device
    types with their dtypes (a graph traced under autocast holds its casts)."""
    if not ACTIVE[0]:
        return None
    st = state
    return tuple(sorted((d, st.dtype[d].name) for d, on in st.enabled.items() if on)) or None
