"""Small GEMM micro-kernels for the conv fast paths (winograd.py, direct3x3.py), and `fma`.

Determinism.  No kernel under backends/cpu is built with fastmath: with `reassoc` or `contract`
LLVM may compile the same source differently in different contexts (inlined into one caller or
another, freshly compiled or linked from numba's cache), and the results then depend on which
copy runs.  Without those flags every compiled copy computes exactly what the source says, in its
order.  Multiply-adds are written as `fma` (one rounding, the same on every path) rather than
left to LLVM's contraction.

Why no dot products.  Without `reassoc` LLVM cannot vectorize a reduction (numba runs no SLP
vectorizer either), so every product here has the long axis of its output as the vectorized
inner loop and sums along the other axis in the source's order, 4 terms per load/store of the
output row: out[r, :] = fma(a[r, c+3], b[c+3, :], ... fma(a[r, c], b[c, :], out[r, :])).
"""
from __future__ import annotations

from llvmlite import ir
from numba import njit
from numba.core import cgutils, types
from numba.extending import intrinsic

_J = dict(nogil=True, cache=True, error_model="numpy")


@intrinsic
def fma(typingctx, a, b, c):
    """a * b + c rounded once (llvm.fma), for three floats of one type: exact wherever it runs,
    vectorized like any arithmetic (a single instruction on x86-64 with FMA3)."""
    if not (isinstance(a, types.Float) and a == b == c):
        return None

    def codegen(context, builder, signature, args):
        ty = context.get_value_type(signature.return_type)
        name = "llvm.fma.f32" if ty == ir.FloatType() else "llvm.fma.f64"
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ty, [ty, ty, ty]), name)
        return builder.call(fn, args)

    return a(a, b, c), codegen


@njit(**_J)
def _acc_rows8(a, b, out, r0):
    """out[r0:r0+8] += a[r0:r0+8] @ b: the rows of out and b are contiguous, the inner loop runs
    along them; each element takes 4 columns of a per pass, in column order."""
    C = a.shape[1]
    m0 = out[r0]
    m1 = out[r0 + 1]
    m2 = out[r0 + 2]
    m3 = out[r0 + 3]
    m4 = out[r0 + 4]
    m5 = out[r0 + 5]
    m6 = out[r0 + 6]
    m7 = out[r0 + 7]
    T = m0.size
    c = 0
    while c + 4 <= C:
        b0 = b[c]
        b1 = b[c + 1]
        b2 = b[c + 2]
        b3 = b[c + 3]
        u = a[r0:r0 + 8, c:c + 4]
        u00, u01, u02, u03 = u[0, 0], u[0, 1], u[0, 2], u[0, 3]
        u10, u11, u12, u13 = u[1, 0], u[1, 1], u[1, 2], u[1, 3]
        u20, u21, u22, u23 = u[2, 0], u[2, 1], u[2, 2], u[2, 3]
        u30, u31, u32, u33 = u[3, 0], u[3, 1], u[3, 2], u[3, 3]
        u40, u41, u42, u43 = u[4, 0], u[4, 1], u[4, 2], u[4, 3]
        u50, u51, u52, u53 = u[5, 0], u[5, 1], u[5, 2], u[5, 3]
        u60, u61, u62, u63 = u[6, 0], u[6, 1], u[6, 2], u[6, 3]
        u70, u71, u72, u73 = u[7, 0], u[7, 1], u[7, 2], u[7, 3]
        for t in range(T):
            e0 = b0[t]
            e1 = b1[t]
            e2 = b2[t]
            e3 = b3[t]
            m0[t] = fma(u03, e3, fma(u02, e2, fma(u01, e1, fma(u00, e0, m0[t]))))
            m1[t] = fma(u13, e3, fma(u12, e2, fma(u11, e1, fma(u10, e0, m1[t]))))
            m2[t] = fma(u23, e3, fma(u22, e2, fma(u21, e1, fma(u20, e0, m2[t]))))
            m3[t] = fma(u33, e3, fma(u32, e2, fma(u31, e1, fma(u30, e0, m3[t]))))
            m4[t] = fma(u43, e3, fma(u42, e2, fma(u41, e1, fma(u40, e0, m4[t]))))
            m5[t] = fma(u53, e3, fma(u52, e2, fma(u51, e1, fma(u50, e0, m5[t]))))
            m6[t] = fma(u63, e3, fma(u62, e2, fma(u61, e1, fma(u60, e0, m6[t]))))
            m7[t] = fma(u73, e3, fma(u72, e2, fma(u71, e1, fma(u70, e0, m7[t]))))
        c += 4
    while c < C:
        b0 = b[c]
        u0, u1, u2, u3 = a[r0, c], a[r0 + 1, c], a[r0 + 2, c], a[r0 + 3, c]
        u4, u5, u6, u7 = a[r0 + 4, c], a[r0 + 5, c], a[r0 + 6, c], a[r0 + 7, c]
        for t in range(T):
            e0 = b0[t]
            m0[t] = fma(u0, e0, m0[t])
            m1[t] = fma(u1, e0, m1[t])
            m2[t] = fma(u2, e0, m2[t])
            m3[t] = fma(u3, e0, m3[t])
            m4[t] = fma(u4, e0, m4[t])
            m5[t] = fma(u5, e0, m5[t])
            m6[t] = fma(u6, e0, m6[t])
            m7[t] = fma(u7, e0, m7[t])
        c += 1


@njit(**_J)
def _acc_row1(a, b, out, r):
    """out[r] += a[r] @ b, the same order as _acc_rows8."""
    m0 = out[r]
    C = a.shape[1]
    c = 0
    while c + 4 <= C:
        b0 = b[c]
        b1 = b[c + 1]
        b2 = b[c + 2]
        b3 = b[c + 3]
        u0, u1, u2, u3 = a[r, c], a[r, c + 1], a[r, c + 2], a[r, c + 3]
        for t in range(m0.size):
            m0[t] = fma(u3, b3[t], fma(u2, b2[t], fma(u1, b1[t], fma(u0, b0[t], m0[t]))))
        c += 4
    while c < C:
        b0 = b[c]
        u0 = a[r, c]
        for t in range(m0.size):
            m0[t] = fma(u0, b0[t], m0[t])
        c += 1


@njit(**_J)
def gemm_acc(a, b, out):
    """out += a @ b for C-contiguous a (R, C), b (C, T), out (R, T); each out[r, t] sums its C
    terms in order, whatever R, T and the chunking around the call."""
    R = a.shape[0]
    r = 0
    while r + 8 <= R:
        _acc_rows8(a, b, out, r)
        r += 8
    while r < R:
        _acc_row1(a, b, out, r)
        r += 1


@njit(**_J)
def gemm(a, b, out):
    """out = a @ b (as gemm_acc, from zeros)."""
    f = out.reshape(-1)
    for q in range(f.size):
        f[q] = 0
    gemm_acc(a, b, out)
