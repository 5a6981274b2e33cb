"""Thread-local grad mode: no_grad, enable_grad, set_grad_enabled, inference_mode."""
from __future__ import annotations

import functools
import threading


class _GradState(threading.local):
    enabled = True


_grad_state = _GradState()

# How many threads have grad mode off right now. While it is 0 (a training loop outside no_grad),
# the op hot path knows grad mode is on without the thread-local read (a visible share of a small op).
# Every change of a thread's mode goes through set_mode so the count stays exact.
_off_count = [0]
_count_lock = threading.Lock()


def set_mode(flag) -> None:
    """Set this thread's grad mode (the one writer of _grad_state.enabled)."""
    flag = bool(flag)
    st = _grad_state
    if st.enabled is not flag:
        with _count_lock:
            _off_count[0] += -1 if flag else 1
        st.enabled = flag


def is_grad_enabled() -> bool:
    return _grad_state.enabled


class _GradModeContext:
    """Base for the context managers; each instance also works as a decorator."""

    _target: bool = True

    def __enter__(self):
        self._prev = _grad_state.enabled
        set_mode(self._target)
        return self

    def __exit__(self, *exc):
        set_mode(self._prev)
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with self.__class__._fresh(self):
                return fn(*args, **kwargs)

        return wrapper

    @classmethod
    def _fresh(cls, proto):
        return cls()


class no_grad(_GradModeContext):
    _target = False


class enable_grad(_GradModeContext):
    _target = True


class inference_mode(_GradModeContext):
    def __init__(self, mode: bool = True):
        self._target = not mode

    @classmethod
    def _fresh(cls, proto):
        return cls(not proto._target)


class set_grad_enabled(_GradModeContext):
    """Takes effect at once (as a function call) and also works as a context manager."""

    def __init__(self, mode: bool):
        self._prev = _grad_state.enabled
        self._target = bool(mode)
        set_mode(self._target)

    def __enter__(self):
        return self

    def __call__(self, fn):
        set_mode(self._prev)  # used as a decorator: the mode applies only inside fn
        return super().__call__(fn)

    @classmethod
    def _fresh(cls, proto):
        return cls(proto._target)
