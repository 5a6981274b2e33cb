"""How devtensor's CUDA C kernels (kernels/*.cu) are compiled and launched.

This module is the single source of truth for
  * NVRTC_OPTIONS: the option tuple given to cupy.RawModule at run time; ci/check_kernels.py
    compiles with exactly these (plus what CuPy itself appends), so CI checks what users run;
  * KERNEL_FILES: every .cu file, the extern "C" kernels it defines and the template
    instantiations (NVRTC name expressions) to compile;
  * launch_config(): grid / block / shared memory and the kernel to pick for each kernel family,
    in pure Python so that the arithmetic is tested without a GPU;
  * load_module(): one lazily compiled cupy.RawModule per (file, device).

It imports nothing beyond the standard library at module level (ci/check_kernels.py loads it by
file path, without devtensor's dependencies); cupy is imported inside load_module only.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import NamedTuple

# ------------------------------------------------------------------------------------------------
# Compiler options.  CuPy adds its own include paths, `-ftz=true` (after ours: fp32 denormals are
# flushed in every RawKernel) and `-arch=sm_XX` for the current device.  No --use_fast_math: the
# softmax / cross-entropy kernels rely on accurate expf/logf.
NVRTC_OPTIONS: tuple = ("--std=c++17",)

# Architectures the CI gate compiles for (ptxas runs for each, registers and spills are reported).
CI_ARCHS: tuple = ("sm_80", "sm_90")

# Grid limits of every CUDA device since compute capability 3.0.
MAX_GRID_X = 2**31 - 1
MAX_GRID_YZ = 65535

# H100 SXM has 132 SMs; launch_config only uses it to size split-K / split reductions and
# grid-stride grids, so a wrong guess costs speed, never correctness.
DEFAULT_NUM_SMS = 132


class KernelFile(NamedTuple):
    """One .cu file: its extern "C" kernel names and its template name expressions."""

    extern_c: tuple
    name_expressions: tuple


class LaunchConfig(NamedTuple):
    """What a launch needs: kernel name (as given to RawModule.get_function), grid, block,
    dynamic shared memory in bytes, and derived scalars the kernel takes (params)."""

    kernel: str
    grid: tuple
    block: tuple
    shared_mem: int
    params: dict


# ------------------------------------------------------------------------------------------------
# matmul.cu
SGEMM_SIMT_TILES = {
    # name: (BM, BN, BK, TM, TN) -> threads = (BM/TM) * (BN/TN) = 256 for both
    "128x128": (128, 128, 8, 8, 8),
    "64x64": (64, 64, 16, 4, 4),
}
SGEMM_TF32_TILE = (128, 128, 16)
SGEMM_THREADS = 256


def _b(flag) -> str:
    return "true" if flag else "false"


def sgemm_kernel_name(tile: str, trans_a: bool, trans_b: bool, vec: bool) -> str:
    """Name expression of one SGEMM instantiation; tile is a SGEMM_SIMT_TILES key or "tf32"."""
    if tile == "tf32":
        return f"dt_sgemm_tf32<{_b(trans_a)}, {_b(trans_b)}, {_b(vec)}>"
    bm, bn, bk, tm, tn = SGEMM_SIMT_TILES[tile]
    return (f"dt_sgemm_simt<{bm}, {bn}, {bk}, {tm}, {tn}, "
            f"{_b(trans_a)}, {_b(trans_b)}, {_b(vec)}>")


def _sgemm_names() -> tuple:
    out = []
    for tile in (*SGEMM_SIMT_TILES, "tf32"):
        for ta in (False, True):
            for tb in (False, True):
                for vec in (False, True):
                    out.append(sgemm_kernel_name(tile, ta, tb, vec))
    return tuple(out)


# ------------------------------------------------------------------------------------------------
# reduce.cu (axis reductions, softmax family, cross-entropy); pooling.cu; optim.cu
REDUCE_OPS = ("sum", "mean", "max", "min", "argmax", "argmin", "var")
REDUCE_KINDS = ("lastdim", "inner", "split_partial", "split_final")
# Bytes of one partial state in the split workspace (the largest state: argmax's {float, long long}).
REDUCE_STATE_BYTES = 16
REDUCE_INDEX_OPS = ("argmax", "argmin")


def reduce_kernel_name(kind: str, op: str) -> str:
    if kind not in REDUCE_KINDS or op not in REDUCE_OPS:
        raise ValueError(f"unknown reduction kernel {kind!r} / op {op!r}")
    return f"dt_reduce_{kind}<dt_op_{op}>"


# ------------------------------------------------------------------------------------------------
# index.cu: index arrays are checked in these element types (others are converted to int64 first)
CHECK_INDEX_TYPES = {"int64": "long long", "int32": "int"}


def check_index_kernel_name(index_dtype: str) -> str:
    if index_dtype not in CHECK_INDEX_TYPES:
        raise ValueError(f"check_index takes {sorted(CHECK_INDEX_TYPES)} indices, got {index_dtype!r}")
    return f"dt_check_index<{CHECK_INDEX_TYPES[index_dtype]}>"


# optim.cu: the template driver's functor per fused step (devtensor/backends/optim_portable.py)
OPTIM_STEP_FUNCTORS = {
    "adagrad_step_": "DtAdagrad", "adadelta_step_": "DtAdadelta", "adamax_step_": "DtAdamax",
    "nadam_step_": "DtNadam", "radam_step_": "DtRadam", "rprop_step_": "DtRprop", "asgd_step_": "DtAsgd",
}
OPTIM_STEP_SCALARS = 12  # float arguments h0..h11 of dt_optim_step


def optim_step_kernel_name(op: str) -> str:
    if op not in OPTIM_STEP_FUNCTORS:
        raise ValueError(f"no fused optimizer step kernel for {op!r}")
    return f"dt_optim_step<{OPTIM_STEP_FUNCTORS[op]}>"


# ------------------------------------------------------------------------------------------------
# rnn.cu: the LSTM / GRU cells' pointwise passes, one instantiation per float type
RNN_KERNELS = ("lstm_cell_fwd", "lstm_cell_bwd", "gru_cell_fwd", "gru_cell_bwd")
RNN_TYPES = {"float32": "float", "float64": "double"}


def rnn_kernel_name(kernel: str, dtype: str) -> str:
    if kernel not in RNN_KERNELS or dtype not in RNN_TYPES:
        raise ValueError(f"unknown recurrent cell kernel {kernel!r} / dtype {dtype!r}; known: {RNN_KERNELS} "
                         f"x {sorted(RNN_TYPES)}")
    return f"dt_{kernel}<{RNN_TYPES[dtype]}>"


KERNEL_FILES: dict = {
    "matmul.cu": KernelFile(extern_c=(), name_expressions=_sgemm_names()),
    "conv.cu": KernelFile(
        extern_c=("dt_conv2d_fwd", "dt_conv2d_bwd_input", "dt_conv2d_bwd_weight"),
        name_expressions=(),
    ),
    "reduce.cu": KernelFile(
        extern_c=(
            "dt_softmax_fwd", "dt_softmax_bwd", "dt_logsumexp",
            "dt_cross_entropy_fwd", "dt_cross_entropy_bwd",
        ),
        name_expressions=tuple(reduce_kernel_name(k, o) for k in REDUCE_KINDS for o in REDUCE_OPS),
    ),
    "pooling.cu": KernelFile(
        extern_c=("dt_max_pool2d_fwd", "dt_max_pool2d_bwd", "dt_avg_pool2d_fwd", "dt_avg_pool2d_bwd"),
        name_expressions=(),
    ),
    "optim.cu": KernelFile(extern_c=("dt_adam_step", "dt_sgd_step"),
                           name_expressions=tuple(optim_step_kernel_name(o) for o in OPTIM_STEP_FUNCTORS)),
    "index.cu": KernelFile(
        extern_c=(),
        name_expressions=tuple(check_index_kernel_name(t) for t in CHECK_INDEX_TYPES),
    ),
    "rnn.cu": KernelFile(extern_c=(), name_expressions=tuple(rnn_kernel_name(k, t) for k in RNN_KERNELS
                                                             for t in RNN_TYPES)),
}

# Kernel families whose kernels must never spill (ci/check_kernels.py fails on a spill there).
NO_SPILL_FILES: tuple = ("matmul.cu", "conv.cu")


def kernel_dir() -> Path:
    """Where the .cu sources are: $DEVTENSOR_KERNEL_DIR, the package's own copy
    (devtensor/kernels, as a wheel may place it), or the repository's kernels/."""
    env = os.environ.get("DEVTENSOR_KERNEL_DIR")
    here = Path(__file__).resolve()
    candidates = ([Path(env)] if env else []) + [here.parents[2] / "kernels", here.parents[3] / "kernels"]
    for c in candidates:
        if (c / "matmul.cu").is_file():
            return c
    raise FileNotFoundError(
        "devtensor CUDA kernel sources not found; looked in " + ", ".join(str(c) for c in candidates))


def read_source(file: str) -> str:
    """The exact source string handed to NVRTC for `file` (one of KERNEL_FILES)."""
    if file not in KERNEL_FILES:
        raise KeyError(f"unknown kernel file {file!r}; known: {sorted(KERNEL_FILES)}")
    return (kernel_dir() / file).read_text()


# ------------------------------------------------------------------------------------------------
# Run-time loading: one RawModule per (file, device), compiled on first use (CuPy's disk cache
# then makes later processes cheap; name_expressions are cached since CuPy 14.2).
_MODULES: dict = {}
_LOCK = threading.Lock()


def load_module(file: str, device_id: int | None = None):
    """cupy.RawModule for kernels/<file> on `device_id` (default: the current device)."""
    import cupy  # lazy: importing devtensor must not need cupy

    if device_id is None:
        device_id = cupy.cuda.Device().id
    key = (file, device_id)
    mod = _MODULES.get(key)
    if mod is None:
        with _LOCK:
            mod = _MODULES.get(key)
            if mod is None:
                spec = KERNEL_FILES[file]
                with cupy.cuda.Device(device_id):
                    mod = cupy.RawModule(
                        code=read_source(file),
                        options=NVRTC_OPTIONS,
                        name_expressions=spec.name_expressions or None,
                    )
                _MODULES[key] = mod
    return mod


def get_kernel(file: str, name: str, device_id: int | None = None):
    """The compiled kernel `name` (an extern "C" name or one of the file's name expressions)."""
    return load_module(file, device_id).get_function(name)


# ------------------------------------------------------------------------------------------------
# Launch arithmetic (pure Python).
def cdiv(a: int, b: int) -> int:
    return -(-a // b)


def _grid(x: int, y: int = 1, z: int = 1) -> tuple:
    """Clamp a grid to the hardware limits; every kernel walks its grid with stride loops."""
    return (max(0, min(x, MAX_GRID_X)), max(0, min(y, MAX_GRID_YZ)), max(0, min(z, MAX_GRID_YZ)))


def _flat_grid(work_items: int, threads: int, num_sms: int, waves: int = 8) -> tuple:
    """1-D grid for a grid-stride loop over `work_items` with `threads` per block."""
    return _grid(min(cdiv(work_items, threads), num_sms * waves))


def _row_block(cols: int) -> tuple:
    """Block shape for row-wise kernels (softmax, cross-entropy, last-dim reductions).

    Short rows: one warp per row, several rows per block (block (32, 4)).  Long rows: one block
    per row (block (T, 1)), T a multiple of 32 with about 8+ elements per thread.
    The kernels rely on: blockDim.x == 32, or blockDim.y == 1.
    """
    if cols <= 1024:
        return (32, 4, 1)
    t = 128 if cols <= 4096 else 256 if cols <= 16384 else 512
    return (t, 1, 1)


def _check_nonneg(**kw):
    for k, v in kw.items():
        if int(v) < 0:
            raise ValueError(f"{k} must be >= 0, got {v}")


def _sgemm(M, N, K, batch=1, trans_a=False, trans_b=False, vec=False, allow_tf32=False,
           num_sms=DEFAULT_NUM_SMS):
    _check_nonneg(M=M, N=N, K=K, batch=batch)
    if allow_tf32:
        tile, (bm, bn, _) = "tf32", SGEMM_TF32_TILE
    else:
        # Big tiles when they already fill the machine, else smaller ones for more blocks.
        big = cdiv(M, 128) * cdiv(N, 128) * batch >= num_sms
        tile = "128x128" if big else "64x64"
        bm, bn = SGEMM_SIMT_TILES[tile][:2]
    return LaunchConfig(
        kernel=sgemm_kernel_name(tile, trans_a, trans_b, vec),
        grid=_grid(cdiv(N, bn), cdiv(M, bm), batch),
        block=(SGEMM_THREADS, 1, 1),
        shared_mem=0,
        params={"tile": tile, "bm": bm, "bn": bn},
    )


# conv.cu: implicit GEMM tiles (must match DT_CONV_* in conv.cu)
CONV_BM, CONV_BN, CONV_BK, CONV_THREADS = 64, 64, 16, 256


def _conv_gemm_dims(family, N, C, H, W, Cout, KH, KW, OH, OW, groups):
    if groups < 1 or C % groups or Cout % groups:
        raise ValueError(f"groups={groups} must divide C={C} and Cout={Cout}")
    cig, cog = C // groups, Cout // groups
    if family == "conv2d_fwd":
        return cog, N * OH * OW, cig * KH * KW
    if family == "conv2d_bwd_input":
        return cig, N * H * W, cog * KH * KW
    return cog, cig * KH * KW, N * OH * OW  # conv2d_bwd_weight


def _conv(family, N, C, H, W, Cout, KH, KW, OH, OW, groups=1, num_sms=DEFAULT_NUM_SMS, **_ignored):
    _check_nonneg(N=N, C=C, H=H, W=W, Cout=Cout, KH=KH, KW=KW, OH=OH, OW=OW)
    gm, gn, gk = _conv_gemm_dims(family, N, C, H, W, Cout, KH, KW, OH, OW, groups)
    tiles_m, tiles_n = cdiv(gm, CONV_BM), cdiv(gn, CONV_BN)
    splits, k_per_split = 1, max(gk, 1)
    if family == "conv2d_bwd_weight" and gk > 0 and tiles_m * tiles_n * groups > 0:
        # Split the long N*OH*OW reduction so that about two waves of blocks run; each split
        # covers at least 4 k-tiles.  Partial sums are combined with atomicAdd (caller zeroes dw).
        want = cdiv(2 * num_sms, tiles_m * tiles_n * groups)
        splits = max(1, min(want, cdiv(gk, 4 * CONV_BK), MAX_GRID_YZ))
        k_per_split = cdiv(cdiv(gk, splits), CONV_BK) * CONV_BK
        splits = cdiv(gk, k_per_split)
    name = {"conv2d_fwd": "dt_conv2d_fwd", "conv2d_bwd_input": "dt_conv2d_bwd_input",
            "conv2d_bwd_weight": "dt_conv2d_bwd_weight"}[family]
    return LaunchConfig(
        kernel=name,
        grid=_grid(tiles_n, tiles_m * groups, splits),
        block=(CONV_THREADS, 1, 1),
        shared_mem=0,
        params={"gemm_m": gm, "gemm_n": gn, "gemm_k": gk, "splits": splits, "k_per_split": k_per_split},
    )


def _reduce(op, outer, reduce, inner=1, num_sms=DEFAULT_NUM_SMS):
    """Plan an (outer, reduce, inner) reduction.  params['mode'] is one of
    'inner' (inner > 1: threads along inner, dt_reduce_inner),
    'lastdim' (inner == 1, rows reduced by a warp or a block, dt_reduce_lastdim),
    'split' (inner == 1, few long rows: dt_reduce_split_partial into a workspace of
             outer * splits * REDUCE_STATE_BYTES bytes, then launch_config('reduce_final')."""
    _check_nonneg(outer=outer, reduce=reduce, inner=inner)
    if inner > 1:
        # block (32, 8): 32 consecutive inner positions, 8 threads splitting the reduced axis.
        return LaunchConfig(reduce_kernel_name("inner", op), _grid(cdiv(inner, 32), outer),
                            (32, 8, 1), 0, {"mode": "inner", "splits": 1})
    per_block_rows = 4 if reduce <= 1024 else 1
    blocks = cdiv(outer, per_block_rows)
    if blocks >= num_sms or reduce <= 16384:
        return LaunchConfig(reduce_kernel_name("lastdim", op), _grid(blocks), _row_block(reduce), 0,
                            {"mode": "lastdim", "splits": 1})
    # Few long rows: split each row into chunks of >= 16K elements, about 4 waves in all.
    splits = max(1, min(cdiv(4 * num_sms, max(outer, 1)), cdiv(reduce, 16384), 1024))
    return LaunchConfig(reduce_kernel_name("split_partial", op), _grid(splits, outer), (256, 1, 1), 0,
                        {"mode": "split", "splits": splits,
                         "workspace_bytes": outer * splits * REDUCE_STATE_BYTES})


def _reduce_final(op, outer, splits, num_sms=DEFAULT_NUM_SMS):
    _check_nonneg(outer=outer, splits=splits)
    block = 32 if splits <= 32 else 256
    return LaunchConfig(reduce_kernel_name("split_final", op), _grid(outer), (block, 1, 1), 0,
                        {"mode": "split_final", "splits": splits})


def _rows(name, rows, cols, num_sms=DEFAULT_NUM_SMS):
    _check_nonneg(rows=rows, cols=cols)
    block = _row_block(cols)
    return LaunchConfig(name, _grid(cdiv(rows, block[1])), block, 0, {})


def _flat(name, n, num_sms=DEFAULT_NUM_SMS, per_thread=1):
    _check_nonneg(n=n)
    return LaunchConfig(name, _flat_grid(cdiv(n, per_thread), 256, num_sms), (256, 1, 1), 0, {})


def _check_index(n, index_dtype="int64", num_sms=DEFAULT_NUM_SMS):
    return _flat(check_index_kernel_name(index_dtype), n, num_sms)


_ROW_FAMILIES = {
    "softmax": "dt_softmax_fwd", "softmax_bwd": "dt_softmax_bwd", "logsumexp": "dt_logsumexp",
    "cross_entropy": "dt_cross_entropy_fwd", "cross_entropy_bwd": "dt_cross_entropy_bwd",
}
_FLAT_FAMILIES = {
    # family: (kernel, elements per thread per iteration)
    "max_pool2d": ("dt_max_pool2d_fwd", 1), "max_pool2d_bwd": ("dt_max_pool2d_bwd", 1),
    "avg_pool2d": ("dt_avg_pool2d_fwd", 1), "avg_pool2d_bwd": ("dt_avg_pool2d_bwd", 1),
    "adam": ("dt_adam_step", 4), "sgd": ("dt_sgd_step", 4),
}


def _rnn(kernel, rows, hidden, dtype="float32", num_sms=DEFAULT_NUM_SMS):
    """One thread per (row, hidden unit) of a recurrent step."""
    _check_nonneg(rows=rows, hidden=hidden)
    return _flat(rnn_kernel_name(kernel, dtype), rows * hidden, num_sms)


def launch_config(kernel_family: str, **shape) -> LaunchConfig:
    """Grid, block, shared memory and kernel name for one launch of `kernel_family`.

    Families and their shape keywords (all ints unless said; num_sms is optional everywhere):
      sgemm                M, N, K, batch=1, trans_a, trans_b, vec (bool), allow_tf32 (bool)
      conv2d_fwd / conv2d_bwd_input / conv2d_bwd_weight
                           N, C, H, W, Cout, KH, KW, OH, OW, groups
      reduce               op (str, one of REDUCE_OPS), outer, reduce, inner
      reduce_final         op, outer, splits
      softmax / softmax_bwd / logsumexp / cross_entropy / cross_entropy_bwd
                           rows, cols
      max_pool2d / max_pool2d_bwd / avg_pool2d / avg_pool2d_bwd
                           n (the number of work items: outputs for fwd and max bwd, inputs for avg bwd)
      adam / sgd           n (elements)
      optim_step           op (a key of OPTIM_STEP_FUNCTORS), n (elements)
      check_index          n (elements), index_dtype ("int64" or "int32")
      lstm_cell_fwd / lstm_cell_bwd / gru_cell_fwd / gru_cell_bwd
                           rows, hidden, dtype ("float32" or "float64")
    A grid dimension is 0 only when there is no work; callers skip such launches.
    """
    if kernel_family == "sgemm":
        return _sgemm(**shape)
    if kernel_family in ("conv2d_fwd", "conv2d_bwd_input", "conv2d_bwd_weight"):
        return _conv(kernel_family, **shape)
    if kernel_family == "reduce":
        return _reduce(**shape)
    if kernel_family == "reduce_final":
        return _reduce_final(**shape)
    if kernel_family in _ROW_FAMILIES:
        return _rows(_ROW_FAMILIES[kernel_family], **shape)
    if kernel_family == "check_index":
        return _check_index(**shape)
    if kernel_family == "optim_step":
        op = shape.pop("op")
        return _flat(optim_step_kernel_name(op), per_thread=4, **shape)
    if kernel_family in RNN_KERNELS:
        return _rnn(kernel_family, **shape)
    if kernel_family in _FLAT_FAMILIES:
        name, per = _FLAT_FAMILIES[kernel_family]
        return _flat(name, per_thread=per, **shape)
    raise ValueError(f"unknown kernel family {kernel_family!r}")


def kernel_file_of(name: str) -> str:
    """The .cu file that defines kernel `name` (an extern "C" name or a name expression)."""
    for file, spec in KERNEL_FILES.items():
        if name in spec.extern_c or name in spec.name_expressions:
            return file
    raise KeyError(f"no kernel file defines {name!r}")


__all__ = [
    "NVRTC_OPTIONS", "CI_ARCHS", "KERNEL_FILES", "NO_SPILL_FILES", "KernelFile", "LaunchConfig",
    "launch_config", "load_module", "get_kernel", "read_source", "kernel_dir", "kernel_file_of",
    "sgemm_kernel_name", "reduce_kernel_name", "check_index_kernel_name", "optim_step_kernel_name",
    "rnn_kernel_name", "cdiv",
]
