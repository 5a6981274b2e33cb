"""devtensor.Generator: PyTorch's random number generator object, and the default (global) one per device.

A cpu Generator owns a numpy PCG64 stream; a cuda Generator owns a CuPy RandomState on its device. The
random ops take `generator=`, resolve it here to that backend stream (`raw_generator`) and pass it to their
kernels, so a Generator's numbers never come from, nor advance, the global stream. Reseeding or setting
a state changes the stream object in place, never replaces it: a compiled step that recorded the stream
keeps drawing from it. The default cpu generator is the cpu backend's own stream (the one
dt.manual_seed seeds), which kernels reach when they are given None.
"""
from __future__ import annotations

import os

import numpy as np

from ..backends import get_backend
from ..backends.cpu.backend import DEFAULT_SEED
from ..device import device as _device_cls
from ..device import resolve
from ..tensor import Tensor, _wrap

_STATE_BYTES = 45  # PCG64's 128-bit state and increment, the buffered 32-bit half (flag + value), the seed


class Generator:
    """Generator(device="cpu"): manual_seed(seed) (returns self), seed(), initial_seed(), get_state() /
    set_state(state) (a uint8 tensor; cpu only) and .device, as torch.Generator."""

    def __init__(self, device="cpu"):
        dev = resolve(device)  # checks that cuda is usable and fills in its index
        if dev.type not in ("cpu", "cuda"):
            raise RuntimeError(f"Generator: no random number generator for device type '{dev.type}' "
                               f"(cpu and cuda have one)")
        self.device = dev
        self._seed = DEFAULT_SEED
        self._default = False
        self._stream = np.random.Generator(np.random.PCG64(DEFAULT_SEED)) if dev.type == "cpu" else None

    def __repr__(self):
        return f"<devtensor.Generator device={self.device}{' (default)' if self._default else ''}>"

    # ---- seeding ---------------------------------------------------------------------------------
    def manual_seed(self, seed):
        seed = _seed_value(seed)
        if self._default:
            get_backend(self.device.type).manual_seed(seed)
            return self
        self._seed = seed
        if self._stream is not None and self.device.type == "cpu":
            self._stream.bit_generator.state = np.random.PCG64(seed).state
        elif self._stream is not None:
            self._stream.seed(seed)  # CuPy reseeds its RandomState in place
        return self

    def seed(self):
        """Seed from the operating system's entropy and return that seed (torch.Generator.seed)."""
        s = int.from_bytes(os.urandom(8), "little") >> 1
        self.manual_seed(s)
        return s

    def initial_seed(self):
        return get_backend("cpu").seed if self._default else self._seed

    # ---- state -----------------------------------------------------------------------------------
    def get_state(self):
        st = self._numpy_stream("get_state").bit_generator.state
        raw = (st["state"]["state"].to_bytes(16, "little") + st["state"]["inc"].to_bytes(16, "little")
               + bytes([st["has_uint32"]]) + int(st["uinteger"]).to_bytes(4, "little")
               + self.initial_seed().to_bytes(8, "little"))
        return _wrap(np.frombuffer(raw, dtype=np.uint8).copy(), _device_cls("cpu"))

    def set_state(self, new_state):
        stream = self._numpy_stream("set_state")
        if not isinstance(new_state, Tensor) or new_state._data.dtype != np.uint8:
            what = type(new_state).__name__ if not isinstance(new_state, Tensor) else f"a {new_state.dtype} tensor"
            raise TypeError(f"Generator.set_state: RNG state must be a uint8 tensor (as get_state() returns), "
                            f"got {what}")
        raw = bytes(np.asarray(new_state._host()).reshape(-1))
        if len(raw) != _STATE_BYTES or not raw[16] & 1:  # PCG64's increment is odd
            raise RuntimeError(f"Generator.set_state: expected a state of {_STATE_BYTES} bytes from "
                               f"Generator.get_state(), got {len(raw)} bytes that are not one")
        stream.bit_generator.state = {
            "bit_generator": "PCG64",
            "state": {"state": int.from_bytes(raw[:16], "little"), "inc": int.from_bytes(raw[16:32], "little")},
            "has_uint32": raw[32], "uinteger": int.from_bytes(raw[33:37], "little")}
        seed = int.from_bytes(raw[37:45], "little")
        if self._default:
            get_backend("cpu").seed = seed
        else:
            self._seed = seed
        return self

    def _numpy_stream(self, what):
        if self.device.type != "cpu":
            raise RuntimeError(f"Generator(device='{self.device}').{what}: CuPy's generator cannot export or "
                               f"restore its state; reseed it with manual_seed(seed) to repeat a stream")
        return get_backend("cpu").generator if self._default else self._stream

    # ---- what kernels draw from ------------------------------------------------------------------
    def _raw(self):
        if self._default:
            return None
        if self._stream is None:  # cuda: CuPy's RandomState, made on first use (it needs the device)
            import cupy

            with cupy.cuda.Device(self.device.index or 0):
                self._stream = cupy.random.RandomState(self._seed)
        return self._stream


def _seed_value(seed):
    try:
        seed = int(seed)
    except (TypeError, ValueError):
        raise TypeError(f"manual_seed: seed must be an int, got {type(seed).__name__}") from None
    if not -(2 ** 63) <= seed < 2 ** 64:
        raise RuntimeError(f"manual_seed: seed must be within [-2**63, 2**64), got {seed}")
    return seed % 2 ** 64  # as PyTorch: a negative seed wraps to its unsigned 64-bit value


def _make_default():
    g = Generator("cpu")
    g._default, g._stream = True, None
    return g


default_generator = _make_default()


def raw_generator(generator, dev, fn):
    """The backend stream a kernel on `dev` draws from: None (the device's default) or the Generator's."""
    if generator is None:
        return None
    if not isinstance(generator, Generator):
        raise TypeError(f"{fn}(): generator must be a devtensor.Generator, got {type(generator).__name__}")
    if dev.type == "meta":
        return None
    if generator.device.type != dev.type or (dev.type == "cuda" and (dev.index or 0) != generator.device.index):
        raise RuntimeError(f"{fn}(): expected a generator on {dev}, got one on {generator.device}")
    return generator._raw()
