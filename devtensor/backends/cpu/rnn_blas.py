"""numpy's OpenBLAS for the recurrent time loops (rnn_kernels.py): its thread count around the loops, and
its GEMM called from inside numba code, so that a whole time loop is ONE nogil numba call; and the other
small helpers those loops call, each usable from Python and compiled (an overload of itself).

`mm(fn, a, b, out, trans_b)` is out = a @ b (b.T when trans_b) for 2-D float arrays with unit column
stride. From Python it is np.matmul; compiled by numba (the loops of rnn_kernels.py) it calls the
cblas_?gemm of numpy's own OpenBLAS through its address `fn` (gemm_fn), with the arguments numpy's
matmul passes for the same arrays, so the two compute the same bits. Only the ILP64 OpenBLAS that
numpy's wheels bundle (scipy_openblas64) is looked up; with any other BLAS gemm_fn returns 0 and the
loops run as Python (the same source, rnn_kernels.py).

Why: with the loop in Python, each step takes the GIL several times between its GEMM and its cell
pass; the row blocks of a batch (one thread each) then wait for each other, and on a machine shared
with other processes a thread descheduled while holding the GIL stalls the other block.
"""
from __future__ import annotations

import ctypes

import numpy as np
from llvmlite import ir
from numba.core import types
from numba.extending import intrinsic, overload

from . import openblas

_ROW_MAJOR, _NO_TRANS, _TRANS = 101, 111, 112


class _Lib:
    """The OpenBLAS numpy loaded (found in /proc/self/maps): thread get/set and the gemm addresses."""

    threads = None  # (get, set) or ()
    gemm = {}  # dtype char -> address of cblas_?gemm (ILP64)

    @classmethod
    def find(cls):
        if cls.threads is not None:
            return
        cls.threads = ()
        for lib, prefix, suffix in openblas.loaded():
            get = getattr(lib, f"{prefix}openblas_get_num_threads{suffix}")
            put = getattr(lib, f"{prefix}openblas_set_num_threads{suffix}", None)
            if put is None:
                continue
            cls.threads = (get, put)
            for ch in "sd":  # only the ILP64 interface (64-bit M, N, K, ld*): mm's calling convention
                fn = getattr(lib, f"{prefix}cblas_{ch}gemm64_", None)
                if fn is not None and suffix == "64_":
                    cls.gemm[ch] = ctypes.cast(fn, ctypes.c_void_p).value or 0
            return


def gemm_fn(dtype):
    """Address of numpy's OpenBLAS cblas_sgemm / cblas_dgemm (ILP64) for `dtype`, or 0."""
    _Lib.find()
    return _Lib.gemm.get(np.dtype(dtype).char.replace("f", "s"), 0)


class OneBlasThread:
    """Run the loops' per-step GEMMs on one OpenBLAS thread. They are small (batch x H x gates*H) and each is
    followed by a single-threaded cell pass: a second BLAS thread gains little on them and, spinning
    between calls, takes the core the cell (or another row block) needs. The sequence's big GEMMs (the
    input projection, the weight gradient) run outside, on every thread. No-op when numpy's BLAS is
    not an OpenBLAS with openblas_set_num_threads."""

    def __enter__(self):
        _Lib.find()
        self.prev = None
        if _Lib.threads:
            get, put = _Lib.threads
            self.prev = int(get())
            if self.prev != 1:
                put(1)
        return self

    def __exit__(self, *exc):
        if self.prev not in (None, 1):
            _Lib.threads[1](self.prev)


@intrinsic
def _cblas_gemm(typingctx, fn, tb, M, N, K, a, lda, b, ldb, c, ldc, alpha):
    """cblas_?gemm(RowMajor, NoTrans, tb, M, N, K, alpha, a, lda, b, ldb, 0, c, ldc) through the address fn;
    a, b, c are data addresses, every integer 64-bit (ILP64)."""
    if not isinstance(alpha, types.Float):
        return None
    sig = types.void(fn, tb, M, N, K, a, lda, b, ldb, c, ldc, alpha)

    def codegen(context, builder, signature, args):
        i32, i64 = ir.IntType(32), ir.IntType(64)
        fty = context.get_value_type(signature.args[-1])
        vp = ir.IntType(8).as_pointer()
        fnty = ir.FunctionType(ir.VoidType(), [i32, i32, i32, i64, i64, i64, fty, vp, i64, vp, i64, fty, vp, i64])
        fn_, tb_, M_, N_, K_, a_, lda_, b_, ldb_, c_, ldc_, alpha_ = args
        as64 = lambda v: builder.sext(v, i64) if v.type.width < 64 else v  # noqa: E731
        ptr = lambda v: builder.inttoptr(as64(v), vp)  # noqa: E731
        f = builder.inttoptr(as64(fn_), fnty.as_pointer())
        builder.call(f, [i32(_ROW_MAJOR), i32(_NO_TRANS), builder.trunc(as64(tb_), i32), as64(M_), as64(N_),
                         as64(K_), alpha_, ptr(a_), as64(lda_), ptr(b_), as64(ldb_), fty(0.0), ptr(c_),
                         as64(ldc_)])
        return context.get_dummy_value()

    return sig, codegen


def mm(fn, a, b, out, trans_b):
    """out[:] = a @ (b.T if trans_b else b); from Python np.matmul (fn unused)."""
    np.matmul(a, b.T if trans_b else b, out=out)


@overload(mm, jit_options=dict(nogil=True))
def _mm(fn, a, b, out, trans_b):
    one = np.float32(1.0) if out.dtype == types.float32 else np.float64(1.0)

    def impl(fn, a, b, out, trans_b):
        M, K = a.shape
        N = out.shape[1]
        s = a.itemsize
        if M == 0 or N == 0:
            return
        _cblas_gemm(fn, _TRANS if trans_b else _NO_TRANS, M, N, K, a.ctypes.data, a.strides[0] // s,
                    b.ctypes.data, b.strides[0] // s, out.ctypes.data, out.strides[0] // s, one)

    return impl


def hidden_gemm(fn, h, w, out, buf, transposed):
    """out (n, G) = h (n, H) @ W.T. w: W (G, H) C-contiguous when transposed (then buf, >= G * n elements,
    receives W @ h.T first), else W.T (H, G) C-contiguous. Python, or compiled into the numba loops
    (the overload below: the same source, where mm calls the BLAS through fn)."""
    n = h.shape[0]
    if transposed:
        G = w.shape[0]
        tb = buf[:G * n].reshape((G, n))
        mm(fn, w, h, tb, True)
        put(out, tb.T)
    else:
        mm(fn, h, w, out, False)


@overload(hidden_gemm, jit_options=dict(nogil=True))
def _hidden_gemm(fn, h, w, out, buf, transposed):
    return hidden_gemm


def put(dst, src):
    """dst[:, :] = src (2-D, same shape). Python, or compiled into the loops as a plain loop (numba's
    array expressions and broadcasting setitem take several times longer to compile)."""
    dst[:, :] = src


def add(dst, src):
    """dst += src, src 2-D or a row vector (see put)."""
    dst += src


@overload(put, jit_options=dict(nogil=True))
def _put(dst, src):
    def impl(dst, src):
        for i in range(dst.shape[0]):
            for j in range(dst.shape[1]):
                dst[i, j] = src[i, j]

    return impl


@overload(add, jit_options=dict(nogil=True))
def _add(dst, src):
    if src.ndim == 1:
        def impl(dst, src):
            for i in range(dst.shape[0]):
                for j in range(dst.shape[1]):
                    dst[i, j] += src[j]
    else:
        def impl(dst, src):
            for i in range(dst.shape[0]):
                for j in range(dst.shape[1]):
                    dst[i, j] += src[i, j]

    return impl


def block_rows(bs, t, lo, hi):
    """Active rows of the block [lo, hi) at step t; bs: batch sizes per step (active rows are a prefix of
    the batch), empty when every row is active. Python, or compiled into the loops (overload below)."""
    return hi - lo if bs.size == 0 else min(max(bs[t] - lo, 0), hi - lo)


@overload(block_rows, jit_options=dict(nogil=True))
def _block_rows(bs, t, lo, hi):
    return block_rows
