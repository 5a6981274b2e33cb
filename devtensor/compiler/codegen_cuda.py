"""Fused groups on cuda: one CUDA C kernel per group, generated as a RawModule source.

The group's shape is static (a capture is per shape), so the element count, the output's
dimensions and each input's broadcast strides are written into the source as constants: the
kernel takes only pointers (inputs made C-contiguous by the launcher, outputs freshly allocated
or planned buffers) and runs a grid-stride loop over the elements. The expressions are the ones
the cpu generator writes (fusion.ELEMENTWISE), with the helpers defined here as C. CuPy compiles
the source with the options the hand-written kernels use (kernel_build.NVRTC_OPTIONS) and caches
it on disk itself (CUPY_CACHE_DIR); tests compile it with NVRTC and run it in the CUDA-C emulator.
"""
from __future__ import annotations

import hashlib
import math

from .fusion import expressions

_CTYPE = {"float32": "float", "float64": "double"}
_BLOCK = 256
_MAX_GRID = 65535

_HELPERS = """\
typedef {ctype} T;
__device__ __forceinline__ T RELU(T x) {{ return x <= (T)0 ? (T)0 : x; }}
__device__ __forceinline__ T RELU_BWD(T g, T y) {{ return y > (T)0 ? g : (T)0; }}
__device__ __forceinline__ T SQRT(T x) {{ return sqrt(x); }}
__device__ __forceinline__ T EXP(T x) {{ return exp(x); }}
__device__ __forceinline__ T LOG(T x) {{ return log(x); }}
__device__ __forceinline__ T TANH(T x) {{ return tanh(x); }}
"""


def source(group, nodes):
    """(CUDA C source, kernel name) of one group: `name(const T* i0, ..., T* o0, ...)`."""
    shape, n = group.shape, math.prod(group.shape)
    coords = [f"a{d}" for d in range(len(shape))]
    body, outs = expressions(group, nodes, lambda v: f"((T){float(v)!r})", lambda k: _element(group, k, coords))
    params = [f"const T* __restrict__ i{k}" for k in range(len(group.inputs))] + \
             [f"T* __restrict__ o{k}" for k in range(len(outs))]
    pad = "    "
    lines = [f"{pad}long long r = e;"]
    for d in range(len(shape) - 1, 0, -1):
        lines.append(f"{pad}const long long a{d} = r % {shape[d]}LL; r /= {shape[d]}LL;")
    lines.append(f"{pad}const long long a0 = r;")
    lines += [f"{pad}const T {t} = {e};" for t, e in body]
    lines += [f"{pad}o{k}[e] = {t};" for k, t in enumerate(outs)]
    text = "\n".join(lines)
    name = "fused_" + hashlib.sha256((group.dtype + repr(shape) + text).encode()).hexdigest()[:16]
    src = (_HELPERS.format(ctype=_CTYPE[group.dtype])
           + f'\nextern "C" __global__ void {name}({", ".join(params)}) {{\n'
           + f"  for (long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x; e < {n}LL;\n"
           + "       e += (long long)gridDim.x * blockDim.x) {\n"
           + text + "\n  }\n}\n")
    return src, name


def _element(group, k, coords):
    """Input k (C-contiguous, of a shape that broadcasts to the group's) at the loop's element."""
    shape, nd = group.in_shapes[k], len(group.shape)
    if tuple(shape) == tuple(group.shape):
        return f"i{k}[e]"
    terms, stride = [], 1
    for j in range(len(shape) - 1, -1, -1):
        if shape[j] != 1:
            terms.append(f"{coords[nd - len(shape) + j]} * {stride}LL")
        stride *= shape[j]
    return f"i{k}[{' + '.join(reversed(terms)) or '0'}]"


def launch_config(group):
    """(grid, block) of a group's launch: one thread per element up to the grid limit (the kernel's
    loop strides over the rest)."""
    n = math.prod(group.shape)
    return (max(1, min(_MAX_GRID, -(-n // _BLOCK))),), (_BLOCK,)


def launcher(group, nodes, index=None):
    """kernel(inputs..., outputs...) for a group on cuda device `index` (compiled there on first use)."""
    import cupy

    from ..backends.cuda.kernel_build import NVRTC_OPTIONS

    src, name = source(group, nodes)
    fn = cupy.RawModule(code=src, options=NVRTC_OPTIONS).get_function(name)
    grid, block = launch_config(group)
    n_in = len(group.inputs)

    def launch(*arrays):
        fn(grid, block, tuple(cupy.ascontiguousarray(a) for a in arrays[:n_in]) + arrays[n_in:])

    if not index:
        return launch

    def launch_on(*arrays):
        with cupy.cuda.Device(index):
            launch(*arrays)

    return launch_on


def empty(index=None):
    """empty(shape, dtype) on cuda device `index`."""
    import cupy

    def make(shape, dtype):
        with cupy.cuda.Device(index or 0):
            return cupy.empty(shape, dtype=dtype)

    return make
