"""Fused groups on the cpu: a numba loop nest per group, generated as Python source.

The source is written to the cache directory ($DEVTENSOR_CACHE_DIR, else ~/.cache/devtensor;
kernels in its `compile/` folder, one file per distinct source, named by its hash) and imported
from there, so numba's own on-disk cache (cache=True, keyed by that file) makes the kernel a load
instead of a compile in every later process. A file is written once (atomically); an unwritable
cache directory falls back to a temporary one.

The loop nest runs over the group's shape; an input of a broadcast shape is indexed with 0 on its
size-1 dimensions, so inputs need not be contiguous and nothing is materialised. Each element is
computed on its own, with the arithmetic of the eager kernels (numbers converted to the dtype
first, no fastmath, no contraction to FMA), so groups without exp/log/tanh give the eager bits.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import tempfile

from .fusion import expressions

_HELPERS = """\
import math
import numpy as np
from numba import njit

Z = np.{dtype}(0)


@njit(inline="always")
def RELU(x):
    return Z if x <= Z else x


@njit(inline="always")
def RELU_BWD(g, y):
    return g if y > Z else Z


SQRT, EXP, LOG, TANH = np.sqrt, np.exp, np.log, np.tanh
"""


def cache_dir():
    """Where generated kernels live: $DEVTENSOR_CACHE_DIR/compile, else ~/.cache/devtensor/compile."""
    root = os.environ.get("DEVTENSOR_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "devtensor")
    return os.path.join(root, "compile")


def source(group, nodes):
    """The numba source of one group: `kernel(i0, i1, ..., o0, o1, ...)` writing every output."""
    consts: dict = {}

    def literal(v):
        name = consts.setdefault(float(v), f"C{len(consts)}")
        return name

    nd = len(group.shape)
    idx = [f"a{d}" for d in range(nd)]
    body, outs = expressions(group, nodes, literal, lambda k: _element(group, k, idx))
    lines = [_HELPERS.format(dtype=group.dtype)]
    lines += [f"{name} = np.{group.dtype}({value!r})" for value, name in consts.items()]
    args = [f"i{k}" for k in range(len(group.inputs))] + [f"o{k}" for k in range(len(outs))]
    lines += ["", "", '@njit(cache=True, nogil=True, error_model="numpy")', f"def kernel({', '.join(args)}):"]
    pad = "    "
    for d in range(nd):
        lines.append(f"{pad}for a{d} in range(o0.shape[{d}]):")
        pad += "    "
    return "\n".join(lines + [f"{pad}{t} = {e}" for t, e in body]
                     + [f"{pad}o{k}[{', '.join(idx)}] = {t}" for k, t in enumerate(outs)]) + "\n"


def _element(group, k, idx):
    """Input k's element at the loop position: index 0 on its broadcast (size-1) dimensions."""
    shape, nd = group.in_shapes[k], len(group.shape)
    sub = ["0" if s == 1 and group.shape[nd - len(shape) + j] != 1 else idx[nd - len(shape) + j]
           for j, s in enumerate(shape)]
    return f"i{k}[{', '.join(sub)}]" if sub else f"i{k}[()]"


_LOADED: dict = {}


def load(src):
    """The compiled `kernel` of a generated source (one module per distinct source, per process)."""
    key = hashlib.sha256(src.encode()).hexdigest()[:24]
    fn = _LOADED.get(key)
    if fn is not None:
        return fn
    path = _write(f"fused_{key}.py", src)
    spec = importlib.util.spec_from_file_location(f"devtensor_fused_{key}", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    fn = _LOADED[key] = mod.kernel
    return fn


def _write(name, src):
    for d in (cache_dir(), os.path.join(tempfile.gettempdir(), f"devtensor-compile-{os.getuid()}")):
        path = os.path.join(d, name)
        try:
            if os.path.isfile(path):
                with open(path) as f:
                    if f.read() == src:
                        return path
            os.makedirs(d, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=d, suffix=".tmp")
            with os.fdopen(fd, "w") as f:
                f.write(src)
            os.replace(tmp, path)  # another process writing the same file writes the same bytes
            return path
        except OSError:
            continue
    raise OSError(f"compile: cannot write generated kernels to {cache_dir()} or the temporary directory")
