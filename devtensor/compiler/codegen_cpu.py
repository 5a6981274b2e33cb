"""Fused groups on the cpu: a numba loop nest per group, generated as Python source.

The source is written to the cache directory ($DEVTENSOR_CACHE_DIR, else ~/.cache/devtensor;
kernels in its `compile/` folder, one file per distinct source, named by its hash) and imported
from there, so numba's own on-disk cache (cache=True, keyed by that file) makes the kernel a load
instead of a compile in every later process. A file is written once (atomically); an unwritable
cache directory falls back to a temporary one.

The loop nest runs over the group's shape with neighbouring dimensions merged where no input
broadcasts differently on them (a same-shape chain is one flat loop); an input of a broadcast
shape is indexed with 0 on its size-1 dimensions, so nothing is materialised. Each element is
computed on its own, with the arithmetic of the eager kernels (numbers converted to the dtype
first, no fastmath, no contraction to FMA), so groups without exp/log/tanh give the eager bits.
"""
from __future__ import annotations

import hashlib
import importlib.util
import math
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


def collapsed(group):
    """(loop shape, input shapes): the group's dimensions with size-1 ones dropped and neighbours
    merged where every input is indexed alike on both (all of it, or broadcast), so a same-shape
    chain is one flat loop whatever its rank; every input shape has the loop's rank, 1 where it
    broadcasts."""
    nd = len(group.shape)
    full = [[s == t for s, t in zip((1,) * (nd - len(sh)) + tuple(sh), group.shape)] for sh in group.in_shapes]
    dims: list = []
    for j in range(nd):
        if group.shape[j] == 1:
            continue
        if dims and all(f[j] == f[dims[-1][-1]] for f in full):
            dims[-1].append(j)
        else:
            dims.append([j])
    size = [math.prod(group.shape[j] for j in d) for d in dims]
    return tuple(size) or (1,), [tuple(n if f[d[0]] else 1 for n, d in zip(size, dims)) or (1,) for f in full]


def source(group, nodes):
    """The numba source of one group: `kernel(i0, i1, ..., o0, o1, ...)` over the collapsed shapes,
    writing every output."""
    consts: dict = {}

    def literal(v):
        name = consts.setdefault(float(v), f"C{len(consts)}")
        return name

    shape, in_shapes = collapsed(group)
    idx = [f"a{d}" for d in range(len(shape))]

    def element(k):  # input k at the loop position: index 0 where it broadcasts
        return f"i{k}[{', '.join('0' if n == 1 and m != 1 else a for n, m, a in zip(in_shapes[k], shape, idx))}]"

    body, outs = expressions(group, nodes, literal, element)
    lines = [_HELPERS.format(dtype=group.dtype)]
    lines += [f"{name} = np.{group.dtype}({value!r})" for value, name in consts.items()]
    args = [f"i{k}" for k in range(len(group.inputs))] + [f"o{k}" for k in range(len(outs))]
    lines += ["", "", '@njit(cache=True, nogil=True, error_model="numpy")', f"def kernel({', '.join(args)}):"]
    pad = "    "
    for d in range(len(shape)):
        lines.append(f"{pad}for a{d} in range(o0.shape[{d}]):")
        pad += "    "
    return "\n".join(lines + [f"{pad}{t} = {e}" for t, e in body]
                     + [f"{pad}o{k}[{', '.join(idx)}] = {t}" for k, t in enumerate(outs)]) + "\n"


def launcher(group, nodes):
    """kernel(inputs..., outputs...) on the group's own shapes: arrays are reshaped to the collapsed
    shapes (views; a copy only for an input that is not contiguous where merged)."""
    kernel = load(source(group, nodes))
    shape, in_shapes = collapsed(group)
    if shape == tuple(group.shape) and all(tuple(s) == c for s, c in zip(group.in_shapes, in_shapes)):
        return kernel
    n_in = len(in_shapes)

    def launch(*arrays):
        kernel(*[a.reshape(s) for a, s in zip(arrays[:n_in], in_shapes)], *[o.reshape(shape) for o in arrays[n_in:]])

    return launch


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
