"""PyTorch's switch for deterministic algorithms, and what it means in devtensor.

Every cpu kernel is deterministic: the same inputs give the same bits in every process, whether
numba compiles the kernels afresh or loads them from its cache, run after run and on any number
of threads.  (No kernel is built with fastmath, multiply-adds are explicit fma, and work shared
out over threads is cut by the shapes alone and summed in a fixed order: see
backends/cpu/gemm.py and backends/cpu/threads.py.)  There is no faster nondeterministic cpu
path, so use_deterministic_algorithms(True), the default, costs nothing, and False changes
nothing today: the switch is where a backend's nondeterministic kernel would have to be opted
into (it reads are_deterministic_algorithms_enabled() before picking one).
"""
from __future__ import annotations

_enabled = True
_warn_only = False


def use_deterministic_algorithms(mode: bool, *, warn_only: bool = False) -> None:
    """Only deterministic algorithms (mode=True, the default) or allow nondeterministic ones too.
    warn_only: with mode=True, a backend that has only a nondeterministic kernel for an op warns
    instead of raising (as in PyTorch)."""
    global _enabled, _warn_only
    if not isinstance(mode, bool):
        raise TypeError(f"use_deterministic_algorithms(): mode must be a bool, got {type(mode).__name__}")
    if not isinstance(warn_only, bool):
        raise TypeError(f"use_deterministic_algorithms(): warn_only must be a bool, got {type(warn_only).__name__}")
    _enabled, _warn_only = mode, warn_only


def are_deterministic_algorithms_enabled() -> bool:
    return _enabled


def is_deterministic_algorithms_warn_only_enabled() -> bool:
    # PyTorch keeps warn_only as given, whatever mode is
    return _warn_only
