"""Array-level CPU kernels for the fused nn ops: conv2d (im2col/col2im in numba + BLAS GEMM, and
the 3x3 fast paths of winograd.py and direct3x3.py),
pooling, softmax rows, cross-entropy rows and fused optimizer steps.

Contract: arguments are numpy arrays (float32 or float64; integer index/target arrays int64)
and plain Python values, already validated above the dispatch table; results are NEW arrays
of the input dtype (the optimizer steps update their state arrays in place instead).  Array
arguments may be non-contiguous unless a function says otherwise: the wrappers copy to C
order where the loops need it.  Numba functions carry no signatures, so nothing compiles at
import; each compiles on first use (per dtype) and is cached to disk.  This module imports
only numpy, numba, math and threads.py (the conv fast paths import winograd.py and
direct3x3.py on first use).

Threading.  The conv GEMMs of the im2col path run in OpenBLAS (numpy's matmul), which has
its own thread pool.  numba's default threading layer here is GNU OpenMP, whose idle workers
spin for ~5 ms after every parallel region; a BLAS call made inside that window loses a core
and runs up to 10x slower (measured: a 0.55 ms GEMM takes 4.5 ms right after a parallel=True
kernel).  Making the conv data-movement loops parallel measured slower under every numba
threading layer (default 560 ms, OMP_WAIT_POLICY=passive 86 ms, workqueue 59 ms, serial 49 ms
for conv forward + both backwards at x=(100,32,26,26), w=(64,32,3,3)).  So the im2col path is
serial and BLAS gets both cores; the generic pooling and the optimizer kernels switch to a
parallel=True twin only for very large arrays; large softmax/cross-entropy inputs go through
numpy's SIMD exp instead.

The 3x3 stride-1 convs do not use BLAS: Winograd (winograd.py, winograd43.py) for >= 8
channels, direct loops (direct3x3.py) for <= 3 input channels, both split over the cores with
plain Python threads that sleep when idle (threads.py); the 2x2 max-pool and the max-pool
backward use the same threads.  Conv2 above now takes 5.2 + 3.9 + 4.3 ms.
The winograd() and direct3x3() methods of _Conv pick the paths by shape.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from .threads import fetch_add, run_blocks, run_split, threads

# Bytes of conv column buffer per batch chunk.  Small enough that the columns written by
# im2col are still in L2/L3 when the GEMM reads them; large enough for an efficient GEMM.
_CONV_CHUNK_BYTES = 1 << 22
# Input and output channels from which 3x3 stride-1 convs go through Winograd F(2x2, 3x3).
_WINO_MIN_C = 8
# ... and at most this many: with 256 and 512 channels (ResNet-50's 14x14 and 7x7 layers, batch 8)
# Winograd's transforms and small per-tile GEMMs lost to im2col + BLAS (forward 13.1 vs 12.8 ms and
# 51.7 vs 16.2 ms, backward 56.8 vs 32.6 ms and 117.8 vs 65.3 ms, `devtensor bench --ops conv`)
_WINO_MAX_C = 128
# Input channels up to which 3x3 stride-1 convs use direct3x3's loops (forward, weight grad).
# Measured at x (100, C, 28, 28), K = 32, padding 1 (ms, forward / weight grad): C = 2
# direct 0.91 / 0.70, im2col 1.15 / 1.81; C = 4 direct 1.84 / 2.33, im2col 1.72 / 3.11,
# Winograd 1.90 / 1.72; C = 8 Winograd 2.42 / 2.29, im2col 3.00 / 4.19.  Between the two
# thresholds the paths are within noise of each other and im2col stays.
_DIRECT_MAX_C = 3
# Element counts from which the pooling / optimizer kernels use their parallel=True twins
# (see Threading above: below these sizes the split does not pay for the spin it leaves).
_PAR_MIN_POOL = 1 << 24
# Input elements per thread of the 2x2 max-pool kernel (plain threads, no spinning pool; a
# dispatch costs 20-60 us, ~the time of 2^18 elements).
_POOL2X2_PER_THREAD = 1 << 18
_PAR_MIN_OPTIM = 1 << 24
# Row kernels (softmax, cross-entropy) go through numpy for arrays larger than this with
# rows of at least _ROWS_NUMPY_MIN_C entries, or 32x larger whatever the rows (_rows_numpy).
_ROWS_NUMPY_MIN = 1 << 13
_ROWS_NUMPY_MIN_C = 64


# ----------------------------------------------------------------------------------------
# conv2d
#
# Every conv is turned into stride-1 "wide" im2col + one GEMM per batch chunk and group:
#
# * Phases.  With stride (sh, sw) the zero-padded input is split into sh*sw phase planes
#   xph[a*sw + b][u, v] = xpad[u*sh + a, v*sw + b] of size (Hph, Wph) = ceil((Hp, Wp) / s).
#   Kernel tap (i, j) then reads, for output (oh, ow), phase ((i*dh) % sh, (j*dw) % sw) at
#   (oh + (i*dh)//sh, ow + (j*dw)//sw): a stride-1 access.  Stride 1 without padding needs no
#   phase copy at all (the phase plane is x itself).
# * Wide columns.  Output positions are numbered p = oh*Wph + ow with ow running over the
#   whole phase-plane width, so the column row of tap (c, i, j) is ONE contiguous run of its
#   phase plane and im2col is a few long memcpys (not OH short ones).  Positions with
#   ow >= OW are junk (they wrap into the next row): the forward drops them when it writes
#   NCHW, the backwards feed zeros there, so they never contribute.
# * Columns are laid out (R, nb, L), R = Cg*KH*KW taps, L = OH*Wph, so each GEMM is
#   (Kg, R) @ (R, nb*L) with a large inner dimension and no batched small GEMMs.
# ----------------------------------------------------------------------------------------

def _conv_out(n, k, s, p, d):
    return (n + 2 * p - d * (k - 1) - 1) // s + 1


def _valid_range(off, stride, size, n_out):
    """[lo, hi) of the o in [0, n_out) with 0 <= o*stride + off < size."""
    lo = 0 if off >= 0 else (-off + stride - 1) // stride
    last = size - 1 - off
    hi = 0 if last < 0 else last // stride + 1
    lo = min(lo, n_out)
    hi = max(min(hi, n_out), lo)
    return lo, hi


# Inner loops index views with the bare range variable: numba then knows the index is
# non-negative, skips its negative-index wraparound code and vectorizes (4-10x faster).

@njit(cache=True, error_model="numpy")
def _im2col(src, n0, nb, c0, cg, kh_, kw_, sh, sw, dh, dw, oh_, cols):
    """cols[(c,i,j), n, p] = phase plane of tap (i, j) of src[n0+n, c0+c], flat, from the tap
    offset on, p < OH*Wph.  src: (N, C*sh*sw, Hph, Wph) C-contiguous; reads past its end
    (junk positions only) give 0."""
    P = sh * sw
    C = src.shape[1] // P
    wph = src.shape[3]
    plane = src.shape[2] * wph
    xf = src.reshape(-1)
    cf = cols.reshape(-1)
    tot = xf.size
    L = oh_ * wph
    kk = kh_ * kw_
    for c in range(cg):
        for i in range(kh_):
            for j in range(kw_):
                r = c * kk + i * kw_ + j
                phase = ((i * dh) % sh) * sw + (j * dw) % sw
                off = ((i * dh) // sh) * wph + (j * dw) // sw
                for n in range(nb):
                    s = (((n0 + n) * C + c0 + c) * P + phase) * plane + off
                    m = min(L, tot - s)
                    dv = cf[(r * nb + n) * L:(r * nb + n + 1) * L]
                    sv = xf[s:s + m]
                    for p in range(m):
                        dv[p] = sv[p]
                    for p in range(m, L):
                        dv[p] = 0


@njit(cache=True, error_model="numpy")
def _col2im(cols, nb, cg, kh_, kw_, sh, sw, dh, dw, oh_, gph):
    """Adjoint of _im2col into gph: (nb, cg*sh*sw, Hph, Wph), zeroed here first."""
    P = sh * sw
    wph = gph.shape[3]
    plane = gph.shape[2] * wph
    L = oh_ * wph
    kk = kh_ * kw_
    gf = gph.reshape(-1)
    cf = cols.reshape(-1)
    for q in range(gf.size):
        gf[q] = 0
    for n in range(nb):
        for c in range(cg):
            for i in range(kh_):
                for j in range(kw_):
                    phase = ((i * dh) % sh) * sw + (j * dw) % sw
                    off = ((i * dh) // sh) * wph + (j * dw) // sw
                    m = min(L, plane - off)  # past the plane: junk positions, holding zeros
                    r = c * kk + i * kw_ + j
                    b = ((n * cg + c) * P + phase) * plane + off
                    sv = cf[(r * nb + n) * L:(r * nb + n) * L + m]
                    dv = gf[b:b + m]
                    for p in range(m):
                        dv[p] += sv[p]


@njit(cache=True, error_model="numpy")
def _cols_to_nchw(yw, n0, k0, wq, b, has_bias, y):
    """y[n0+n, k0+k, oh, ow] = yw[k, n, oh*wq + ow] (+ b[k0+k])."""
    kg = yw.shape[0]
    nb = yw.shape[1]
    oh_ = y.shape[2]
    ow_ = y.shape[3]
    for n in range(nb):
        for k in range(kg):
            src = yw[k, n]
            dst = y[n0 + n, k0 + k]
            bias = b[k0 + k] if has_bias else b[0] * 0
            for oh in range(oh_):
                dv = dst[oh]
                sv = src[oh * wq:oh * wq + ow_]
                for ow in range(ow_):
                    dv[ow] = sv[ow] + bias


@njit(cache=True, error_model="numpy")
def _nchw_to_cols(gy, n0, k0, wq, gw):
    """gw[k, n, oh*wq + ow] = gy[n0+n, k0+k, oh, ow]; 0 for ow in [OW, wq)."""
    kg = gw.shape[0]
    nb = gw.shape[1]
    oh_ = gy.shape[2]
    ow_ = gy.shape[3]
    for k in range(kg):
        for n in range(nb):
            dst = gw[k, n]
            src = gy[n0 + n, k0 + k]
            for oh in range(oh_):
                sv = src[oh]
                dv = dst[oh * wq:(oh + 1) * wq]
                for ow in range(ow_):
                    dv[ow] = sv[ow]
                for ow in range(ow_, wq):
                    dv[ow] = 0


def _prefix(buf, shape):
    """A C-contiguous view of the first prod(shape) elements of the flat buffer buf."""
    return buf[:math.prod(shape)].reshape(shape)


class _Conv:
    """One conv call's geometry, chunking, and the column-building steps."""

    def __init__(self, x_shape, w_shape, stride, padding, dilation, groups, dtype):
        self.N, self.C, self.H, self.W = (int(v) for v in x_shape)
        self.K, self.cg, self.KH, self.KW = (int(v) for v in w_shape)
        self.sh, self.sw = int(stride[0]), int(stride[1])
        self.ph, self.pw = int(padding[0]), int(padding[1])
        self.dh, self.dw = int(dilation[0]), int(dilation[1])
        self.G = int(groups)
        self.dtype = dtype
        self.OH = _conv_out(self.H, self.KH, self.sh, self.ph, self.dh)
        self.OW = _conv_out(self.W, self.KW, self.sw, self.pw, self.dw)
        self.kg = self.K // self.G
        self.R = self.cg * self.KH * self.KW
        self.P = self.sh * self.sw
        # stride 1, no padding: x is its own (single) phase plane, no copy needed
        self.direct = self.P == 1 and self.ph == 0 and self.pw == 0
        self.Hph = -(-(self.H + 2 * self.ph) // self.sh)
        self.Wph = -(-(self.W + 2 * self.pw) // self.sw)
        self.L = self.OH * self.Wph
        per = max(1, self.R * self.L * dtype.itemsize)
        self.nb = max(1, min(self.N, _CONV_CHUNK_BYTES // per))
        self.xph = None  # phase-plane buffer, made on first use
        self.slices = None

    def empty(self):
        return self.N == 0 or self.OH <= 0 or self.OW <= 0 or self.R == 0 or self.kg == 0

    def pointwise(self):
        return self.KH == 1 and self.KW == 1 and self.direct

    def direct3x3(self):
        """3x3, stride 1, dilation 1, ungrouped, few input channels: direct loops (forward
        and weight gradient; direct3x3.py)."""
        return (self.KH == 3 and self.KW == 3 and self.P == 1 and self.dh == 1 and self.dw == 1
                and self.G == 1 and self.cg <= _DIRECT_MAX_C)

    def winograd(self):
        """3x3, stride 1, dilation 1, ungrouped, with enough channels for the transforms to
        pay (see winograd.py's docstring for the measurements)."""
        return (self.KH == 3 and self.KW == 3 and self.P == 1 and self.dh == 1 and self.dw == 1
                and self.G == 1 and _WINO_MIN_C <= self.cg <= _WINO_MAX_C and _WINO_MIN_C <= self.K <= _WINO_MAX_C)

    def chunks(self):
        for n0 in range(0, self.N, self.nb):
            yield n0, min(self.nb, self.N - n0)

    def cols_buffer(self):
        return np.empty(self.R * self.nb * self.L, self.dtype)

    def _phase_slices(self):
        """Per phase (a, b): (phase index, slice of the phase plane, slice of the input) for
        the pixels that lie inside the input.  numpy's strided copies do these moves faster
        than a numba loop over short rows."""
        out = []
        for a in range(self.sh):
            ulo, uhi = _valid_range(a - self.ph, self.sh, self.H, self.Hph)
            for b in range(self.sw):
                vlo, vhi = _valid_range(b - self.pw, self.sw, self.W, self.Wph)
                if uhi <= ulo or vhi <= vlo:
                    continue
                h0 = ulo * self.sh + a - self.ph
                w0 = vlo * self.sw + b - self.pw
                out.append((a * self.sw + b, (slice(ulo, uhi), slice(vlo, vhi)),
                            (slice(h0, h0 + (uhi - ulo - 1) * self.sh + 1, self.sh),
                             slice(w0, w0 + (vhi - vlo - 1) * self.sw + 1, self.sw))))
        return out

    def phase_source(self, x, n0, m):
        """(src, n_off): the phase planes of images n0..n0+m, as _im2col reads them."""
        if self.direct:
            return x, n0
        if self.xph is None:
            # zeros once: every chunk rewrites the same interior, the padding stays 0
            self.xph = np.zeros(self.nb * self.C * self.P * self.Hph * self.Wph, self.dtype)
            self.slices = self._phase_slices()
        xph = _prefix(self.xph, (m, self.C, self.P, self.Hph, self.Wph))
        xm = x[n0:n0 + m]
        for k, (su, sv), (sh_, sw_) in self.slices:
            xph[:, :, k, su, sv] = xm[:, :, sh_, sw_]
        return xph.reshape(m, self.C * self.P, self.Hph, self.Wph), 0

    def from_phases(self, gph, n0, c0, gx):
        """Adjoint of phase_source for channels c0..c0+Cg: the padding is dropped."""
        if self.slices is None:
            self.slices = self._phase_slices()
        m = gph.shape[0]
        gm = gx[n0:n0 + m, c0:c0 + self.cg]
        for k, (su, sv), (sh_, sw_) in self.slices:
            gm[:, :, sh_, sw_] = gph[:, :, k, su, sv]

    def im2col(self, src, n_off, m, gi, cols):
        _im2col(src, n_off, m, gi * self.cg, self.cg, self.KH, self.KW, self.sh, self.sw,
                self.dh, self.dw, self.OH, cols)


def conv2d_forward(x, w, b, stride, padding, dilation, groups):
    """y[n, k] = b[k] + sum_{c,i,j} w[k, c, i, j] * x[n, g*Cg + c, oh*sh - ph + i*dh, ...]
    NCHW, zero padding, weight (K, C/groups, KH, KW); b may be None."""
    x = np.ascontiguousarray(x)
    dt = x.dtype
    w = np.ascontiguousarray(w, dtype=dt)
    cv = _Conv(x.shape, w.shape, stride, padding, dilation, groups, dt)
    y = np.empty((cv.N, cv.K, cv.OH, cv.OW), dt)
    if y.size == 0:
        return y
    has_bias = b is not None
    bias = np.ascontiguousarray(b, dtype=dt) if has_bias else np.zeros(1, dt)
    if cv.R == 0:
        y[...] = bias.reshape(-1, 1, 1) if has_bias else 0
        return y
    if cv.winograd():
        from . import winograd

        return winograd.forward(x, w, b, (cv.ph, cv.pw))
    if cv.direct3x3():
        from . import direct3x3

        return direct3x3.forward(x, w, b, (cv.ph, cv.pw))
    if cv.pointwise():
        P = cv.OH * cv.OW
        w3 = w.reshape(cv.G, cv.kg, cv.cg)
        x4 = x.reshape(cv.N, cv.G, cv.cg, P)
        y4 = y.reshape(cv.N, cv.G, cv.kg, P)
        for gi in range(cv.G):
            np.matmul(w3[gi], x4[:, gi], out=y4[:, gi])
        if has_bias:
            y += bias.reshape(-1, 1, 1)
        return y
    w3 = w.reshape(cv.G, cv.kg, cv.R)
    cols = cv.cols_buffer()
    yw = np.empty(cv.kg * cv.nb * cv.L, dt)
    for n0, m in cv.chunks():
        cm = _prefix(cols, (cv.R, m, cv.L))
        ym = _prefix(yw, (cv.kg, m, cv.L))
        src, n_off = cv.phase_source(x, n0, m)
        for gi in range(cv.G):
            cv.im2col(src, n_off, m, gi, cm)
            np.matmul(w3[gi], cm.reshape(cv.R, m * cv.L), out=ym.reshape(cv.kg, m * cv.L))
            _cols_to_nchw(ym, n0, gi * cv.kg, cv.Wph, bias, has_bias, y)
    return y


def conv2d_backward_input(gy, w, x_shape, stride, padding, dilation, groups):
    """Gradient of conv2d_forward with respect to x, shape x_shape (transposed convolution)."""
    gy = np.ascontiguousarray(gy)
    dt = gy.dtype
    w = np.ascontiguousarray(w, dtype=dt)
    cv = _Conv(x_shape, w.shape, stride, padding, dilation, groups, dt)
    gx = np.empty((cv.N, cv.C, cv.H, cv.W), dt)
    if gx.size == 0:
        return gx
    if cv.empty():
        gx.fill(0)
        return gx
    if cv.winograd():
        from . import winograd

        return winograd.backward_input(gy, w, x_shape, (cv.ph, cv.pw))
    if cv.pointwise():
        P = cv.H * cv.W
        w3t = w.reshape(cv.G, cv.kg, cv.cg).transpose(0, 2, 1)
        gy4 = gy.reshape(cv.N, cv.G, cv.kg, P)
        gx4 = gx.reshape(cv.N, cv.G, cv.cg, P)
        for gi in range(cv.G):
            np.matmul(w3t[gi], gy4[:, gi], out=gx4[:, gi])
        return gx
    w3t = w.reshape(cv.G, cv.kg, cv.R).transpose(0, 2, 1)
    cols = cv.cols_buffer()
    gyw = np.empty(cv.kg * cv.nb * cv.L, dt)
    # the chunk's planes are contiguous in gx when there is no phase/padding copy to undo
    in_place = cv.direct and cv.G == 1
    gph = None if in_place else np.empty(cv.nb * cv.cg * cv.P * cv.Hph * cv.Wph, dt)
    for n0, m in cv.chunks():
        cm = _prefix(cols, (cv.R, m, cv.L))
        gm = _prefix(gyw, (cv.kg, m, cv.L))
        for gi in range(cv.G):
            _nchw_to_cols(gy, n0, gi * cv.kg, cv.Wph, gm)
            np.matmul(w3t[gi], gm.reshape(cv.kg, m * cv.L), out=cm.reshape(cv.R, m * cv.L))
            if in_place:
                _col2im(cm, m, cv.cg, cv.KH, cv.KW, 1, 1, cv.dh, cv.dw, cv.OH, gx[n0:n0 + m])
            else:
                gp = _prefix(gph, (m, cv.cg, cv.P, cv.Hph, cv.Wph))
                _col2im(cm, m, cv.cg, cv.KH, cv.KW, cv.sh, cv.sw, cv.dh, cv.dw, cv.OH,
                        gp.reshape(m, cv.cg * cv.P, cv.Hph, cv.Wph))
                cv.from_phases(gp, n0, gi * cv.cg, gx)
    return gx


def conv2d_backward_weight(gy, x, w_shape, stride, padding, dilation, groups):
    """Gradient of conv2d_forward with respect to w, shape w_shape."""
    gy = np.ascontiguousarray(gy)
    dt = gy.dtype
    x = np.ascontiguousarray(x, dtype=dt)
    cv = _Conv(x.shape, w_shape, stride, padding, dilation, groups, dt)
    gw = np.zeros((cv.G, cv.kg, cv.R), dt)
    if gw.size == 0 or cv.empty():
        return gw.reshape(cv.K, cv.cg, cv.KH, cv.KW)
    if cv.winograd():
        from . import winograd

        return winograd.backward_weight(gy, x, w_shape, (cv.ph, cv.pw))
    if cv.direct3x3():
        from . import direct3x3

        return direct3x3.backward_weight(gy, x, w_shape, (cv.ph, cv.pw))
    if cv.pointwise():
        P = cv.H * cv.W
        x4 = x.reshape(cv.N, cv.G, cv.cg, P)
        gy4 = gy.reshape(cv.N, cv.G, cv.kg, P)
        for gi in range(cv.G):
            # sum_n gy[n] @ x[n].T as one GEMM over the (n, p) axis
            a = np.ascontiguousarray(gy4[:, gi].transpose(1, 0, 2)).reshape(cv.kg, cv.N * P)
            bb = np.ascontiguousarray(x4[:, gi].transpose(1, 0, 2)).reshape(cv.cg, cv.N * P)
            np.matmul(a, bb.T, out=gw[gi])
        return gw.reshape(cv.K, cv.cg, cv.KH, cv.KW)
    cols = cv.cols_buffer()
    gyw = np.empty(cv.kg * cv.nb * cv.L, dt)
    part = np.empty((cv.R, cv.kg), dt)
    for n0, m in cv.chunks():
        cm = _prefix(cols, (cv.R, m, cv.L))
        gm = _prefix(gyw, (cv.kg, m, cv.L))
        src, n_off = cv.phase_source(x, n0, m)
        for gi in range(cv.G):
            cv.im2col(src, n_off, m, gi, cm)
            _nchw_to_cols(gy, n0, gi * cv.kg, cv.Wph, gm)
            # (R, M) @ (M, Kg) threads better in OpenBLAS than (Kg, M) @ (M, R)
            np.matmul(cm.reshape(cv.R, m * cv.L), gm.reshape(cv.kg, m * cv.L).T, out=part)
            gw[gi] += part.T
    return gw.reshape(cv.K, cv.cg, cv.KH, cv.KW)


# ----------------------------------------------------------------------------------------
# pooling (NCHW; one task per (n, c) plane, so the backward scatters without races).
# The window bounds depend on oh (or ow) only: they are tabulated once per call in numpy,
# so the loops do no bounds arithmetic per output.
# ----------------------------------------------------------------------------------------

def _pool_out(n, k, s, p, d, ceil_mode):
    """PyTorch's pooling_output_shape: with ceil_mode the last window must start inside the
    input or the left padding."""
    num = n + 2 * p - d * (k - 1) - 1
    out = (num + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (out - 1) * s >= n + p:
        out -= 1
    return out


def _windows(n_out, n_in, k, s, p, d):
    """Per output position: the first in-bounds tap and the number of in-bounds taps (as
    PyTorch's CPU kernel: start, then step by the dilation while negative)."""
    start = np.arange(n_out, dtype=np.int64) * s - p
    first = np.where(start < 0, start + (-start + d - 1) // d * d, start)
    end = np.minimum(start + (k - 1) * d + 1, n_in)
    count = np.maximum(0, (end - first + d - 1) // d)
    return first, count


@njit(cache=True, error_model="numpy")
def _maxpool_plane(xs, ys, ix, hf, hc, wf, wc, dh, dw):
    # per output, in scan order: value -inf and the index of its first in-bounds tap to
    # start, then a larger value or a NaN replaces them (PyTorch's rule); selects, not
    # branches, as the compare is data-dependent
    W = xs.shape[1]
    for oh in range(ys.shape[0]):
        h0 = hf[oh]
        nh = hc[oh]
        for ow in range(ys.shape[1]):
            w0 = wf[ow]
            nw = wc[ow]
            best = -np.inf
            bi = h0 * W + w0
            for a in range(nh):
                ih = h0 + a * dh
                for b in range(nw):
                    iw = w0 + b * dw
                    v = xs[ih, iw]
                    take = (v > best) | (v != v)
                    best = v if take else best
                    bi = ih * W + iw if take else bi
            ys[oh, ow] = best
            ix[oh, ow] = bi


@njit(cache=True, error_model="numpy")
def _maxpool_fwd(x, hf, hc, wf, wc, dh, dw, y, ix):
    for t in range(x.shape[0]):
        _maxpool_plane(x[t], y[t], ix[t], hf, hc, wf, wc, dh, dw)


@njit(cache=True, parallel=True, error_model="numpy")
def _maxpool_fwd_par(x, hf, hc, wf, wc, dh, dw, y, ix):
    for t in prange(x.shape[0]):
        _maxpool_plane(x[t], y[t], ix[t], hf, hc, wf, wc, dh, dw)


@njit(cache=True, nogil=True, error_model="numpy")
def _maxpool2x2(x, y, ix, per, counter):
    """2x2 windows of stride 2, all inside x (the CNN case): the generic loop's rule (scan
    order, a larger value or a NaN takes over) unrolled, so the row loop vectorizes (the
    generic kernel spends ~7 ns per output in its data-dependent window loops).  Planes in
    groups of `per` from the shared counter (threads.run_split)."""
    W = x.shape[2]
    P = x.shape[0]
    g = fetch_add(counter, 1)
    while g * per < P:
        _maxpool2x2_planes(x, y, ix, g * per, min(P, (g + 1) * per), W)
        g = fetch_add(counter, 1)


@njit(cache=True, nogil=True, error_model="numpy")
def _maxpool2x2_planes(x, y, ix, t0, t1, W):
    for t in range(t0, t1):
        xs = x[t]
        for oh in range(y.shape[1]):
            r0 = xs[2 * oh]
            r1 = xs[2 * oh + 1]
            yo = y[t, oh]
            io = ix[t, oh]
            b0 = 2 * oh * W
            b1 = b0 + W
            for ow in range(y.shape[2]):
                q = 2 * ow
                best = r0[q]
                bi = b0 + q
                v = r0[q + 1]
                take = (v > best) | (v != v)
                best = v if take else best
                bi = b0 + q + 1 if take else bi
                v = r1[q]
                take = (v > best) | (v != v)
                best = v if take else best
                bi = b1 + q if take else bi
                v = r1[q + 1]
                take = (v > best) | (v != v)
                best = v if take else best
                bi = b1 + q + 1 if take else bi
                yo[ow] = best
                io[ow] = bi


@njit(cache=True, error_model="numpy")
def _maxpool_bwd_plane(gys, ixs, gxs):
    n = gxs.size
    for q in range(n):
        gxs[q] = 0
    for q in range(gys.size):
        k = ixs[q]
        if k >= 0 and k < n:  # a window without an in-bounds tap points nowhere
            gxs[k] += gys[q]


@njit(cache=True, error_model="numpy")
def _maxpool_bwd(gy, ix, gx):
    for t in range(gy.shape[0]):
        _maxpool_bwd_plane(gy[t], ix[t], gx[t])


@njit(cache=True, nogil=True, error_model="numpy")
def _maxpool_bwd_groups(gy, ix, gx, per, counter):
    """_maxpool_bwd over planes in groups of `per` from the shared counter (run_split)."""
    P = gy.shape[0]
    g = fetch_add(counter, 1)
    while g * per < P:
        for t in range(g * per, min(P, (g + 1) * per)):
            _maxpool_bwd_plane(gy[t], ix[t], gx[t])
        g = fetch_add(counter, 1)


def max_pool2d_forward(x, kernel, stride, padding, dilation, ceil_mode):
    """(y, indices): indices (int64) are flat h*W + w positions in each input plane, the
    first maximum of each window in scan order (a NaN counts as the maximum)."""
    x = np.ascontiguousarray(x)
    N, C, H, W = x.shape
    kh_, kw_ = int(kernel[0]), int(kernel[1])
    sh, sw = int(stride[0]), int(stride[1])
    ph, pw = int(padding[0]), int(padding[1])
    dh, dw = int(dilation[0]), int(dilation[1])
    OH = _pool_out(H, kh_, sh, ph, dh, ceil_mode)
    OW = _pool_out(W, kw_, sw, pw, dw, ceil_mode)
    y = np.empty((N, C, OH, OW), x.dtype)
    ix = np.empty((N, C, OH, OW), np.int64)
    if y.size == 0:
        return y, ix
    if (kh_, kw_, sh, sw, ph, pw, dh, dw) == (2, 2, 2, 2, 0, 0, 1, 1) and 2 * OH <= H and 2 * OW <= W:
        P = N * C
        nt = min(threads(), max(1, x.size // _POOL2X2_PER_THREAD))
        per = max(1, -(-P // (6 * nt)))
        counter = np.zeros(1, np.int64)
        args = (x.reshape(P, H, W), y.reshape(P, OH, OW), ix.reshape(P, OH, OW), per, counter)
        run_split(_maxpool2x2, [args] * nt)
        return y, ix
    hf, hc = _windows(OH, H, kh_, sh, ph, dh)
    wf, wc = _windows(OW, W, kw_, sw, pw, dw)
    fn = _maxpool_fwd_par if x.size >= _PAR_MIN_POOL and N * C > 1 else _maxpool_fwd
    fn(x.reshape(N * C, H, W), hf, hc, wf, wc, dh, dw, y.reshape(N * C, OH, OW),
       ix.reshape(N * C, OH, OW))
    return y, ix


def max_pool2d_backward(gy, indices, x_shape):
    """gx[n, c].flat[indices[n, c, oh, ow]] += gy[n, c, oh, ow]."""
    gy = np.ascontiguousarray(gy)
    ix = np.ascontiguousarray(indices, dtype=np.int64)
    N, C, H, W = (int(v) for v in x_shape)
    gx = np.empty((N, C, H, W), gy.dtype)
    if gx.size == 0:
        return gx
    P = gy.shape[2] * gy.shape[3]
    args = (gy.reshape(N * C, P), ix.reshape(N * C, P), gx.reshape(N * C, H * W))
    nt = min(threads(), N * C, gx.size // _POOL2X2_PER_THREAD)
    if nt > 1:  # the planes scatter independently: split them over the conv threads
        per = max(1, -(-(N * C) // (6 * nt)))
        run_split(_maxpool_bwd_groups, [(*args, per, np.zeros(1, np.int64))] * nt)
    else:
        _maxpool_bwd(*args)
    return gx


def _avg_windows(n_out, n_in, k, s, p):
    """PyTorch's CPU avg-pool window per output position: in-input bounds [lo, hi) and the
    window length counted over input + padding (for count_include_pad)."""
    start = np.arange(n_out, dtype=np.int64) * s - p
    end = np.minimum(start + k, n_in + p)
    size = end - start
    return np.maximum(start, 0), np.minimum(end, n_in), size


@njit(cache=True, error_model="numpy")
def _avg_div(oh, ow, h0, h1, w0, w1, hsz, wsz, cip, divisor):
    """Divisor of output (oh, ow); 0 for a window with no input pixel (its output is 0)."""
    if h1[oh] <= h0[oh] or w1[ow] <= w0[ow]:
        return 0
    if divisor > 0:
        return divisor
    if cip:
        return hsz[oh] * wsz[ow]
    return (h1[oh] - h0[oh]) * (w1[ow] - w0[ow])


@njit(cache=True, error_model="numpy")
def _avgpool_plane(xs, ys, h0, h1, w0, w1, hsz, wsz, cip, divisor):
    for oh in range(ys.shape[0]):
        for ow in range(ys.shape[1]):
            d = _avg_div(oh, ow, h0, h1, w0, w1, hsz, wsz, cip, divisor)
            if d == 0:
                ys[oh, ow] = 0
                continue
            s = 0.0
            for ih in range(h0[oh], h1[oh]):
                for iw in range(w0[ow], w1[ow]):
                    s += xs[ih, iw]
            ys[oh, ow] = s / d


@njit(cache=True, error_model="numpy")
def _avgpool_fwd(x, h0, h1, w0, w1, hsz, wsz, cip, divisor, y):
    for t in range(x.shape[0]):
        _avgpool_plane(x[t], y[t], h0, h1, w0, w1, hsz, wsz, cip, divisor)


@njit(cache=True, parallel=True, error_model="numpy")
def _avgpool_fwd_par(x, h0, h1, w0, w1, hsz, wsz, cip, divisor, y):
    for t in prange(x.shape[0]):
        _avgpool_plane(x[t], y[t], h0, h1, w0, w1, hsz, wsz, cip, divisor)


@njit(cache=True, error_model="numpy")
def _avgpool_bwd_plane(gys, gxs, h0, h1, w0, w1, hsz, wsz, cip, divisor):
    for ih in range(gxs.shape[0]):
        for iw in range(gxs.shape[1]):
            gxs[ih, iw] = 0
    for oh in range(gys.shape[0]):
        for ow in range(gys.shape[1]):
            d = _avg_div(oh, ow, h0, h1, w0, w1, hsz, wsz, cip, divisor)
            if d == 0:
                continue
            g = gys[oh, ow] / d
            for ih in range(h0[oh], h1[oh]):
                for iw in range(w0[ow], w1[ow]):
                    gxs[ih, iw] += g


@njit(cache=True, error_model="numpy")
def _avgpool_bwd(gy, h0, h1, w0, w1, hsz, wsz, cip, divisor, gx):
    for t in range(gy.shape[0]):
        _avgpool_bwd_plane(gy[t], gx[t], h0, h1, w0, w1, hsz, wsz, cip, divisor)


@njit(cache=True, parallel=True, error_model="numpy")
def _avgpool_bwd_par(gy, h0, h1, w0, w1, hsz, wsz, cip, divisor, gx):
    for t in prange(gy.shape[0]):
        _avgpool_bwd_plane(gy[t], gx[t], h0, h1, w0, w1, hsz, wsz, cip, divisor)


def _avg_tables(H, W, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override):
    kh_, kw_ = int(kernel[0]), int(kernel[1])
    sh, sw = int(stride[0]), int(stride[1])
    ph, pw = int(padding[0]), int(padding[1])
    OH = _pool_out(H, kh_, sh, ph, 1, ceil_mode)
    OW = _pool_out(W, kw_, sw, pw, 1, ceil_mode)
    h0, h1, hsz = _avg_windows(OH, H, kh_, sh, ph)
    w0, w1, wsz = _avg_windows(OW, W, kw_, sw, pw)
    div = int(divisor_override) if divisor_override is not None else 0
    return OH, OW, (h0, h1, w0, w1, hsz, wsz, bool(count_include_pad), div)


def avg_pool2d_forward(x, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override):
    """PyTorch's avg_pool2d (divisor_override: None or a nonzero int)."""
    x = np.ascontiguousarray(x)
    N, C, H, W = x.shape
    OH, OW, tables = _avg_tables(H, W, kernel, stride, padding, ceil_mode, count_include_pad,
                                 divisor_override)
    y = np.empty((N, C, OH, OW), x.dtype)
    if y.size == 0:
        return y
    fn = _avgpool_fwd_par if x.size >= _PAR_MIN_POOL and N * C > 1 else _avgpool_fwd
    fn(x.reshape(N * C, H, W), *tables, y.reshape(N * C, OH, OW))
    return y


def avg_pool2d_backward(gy, x_shape, kernel, stride, padding, ceil_mode, count_include_pad,
                        divisor_override):
    """Gradient of avg_pool2d_forward with respect to x (gy has the forward's output shape)."""
    gy = np.ascontiguousarray(gy)
    N, C, H, W = (int(v) for v in x_shape)
    OH, OW, tables = _avg_tables(H, W, kernel, stride, padding, ceil_mode, count_include_pad,
                                 divisor_override)
    gx = np.empty((N, C, H, W), gy.dtype)
    if gx.size == 0:
        return gx
    fn = _avgpool_bwd_par if gx.size >= _PAR_MIN_POOL and N * C > 1 else _avgpool_bwd
    fn(gy.reshape(N * C, OH, OW), *tables, gx.reshape(N * C, H, W))
    return gx


# ----------------------------------------------------------------------------------------
# softmax / log_softmax / cross-entropy over the rows of a 2-D array.
# Small arrays: one fused numba pass per row (no numpy call overheads).  Large arrays: numpy,
# whose exp is SIMD-vectorized (numba's is a scalar libm call, 4x slower here even with both
# cores), so a few numpy passes beat one fused numba pass.
# ----------------------------------------------------------------------------------------

@njit(cache=True, error_model="numpy")
def _row_max(xr):
    # in the row's dtype, so that exp(x - m) is expf for float32 (float64 exp is 3x slower)
    m = xr[0]
    for j in range(1, xr.size):
        if xr[j] > m:
            m = xr[j]
    return m


@njit(cache=True, error_model="numpy")
def _row_lse(xr):
    """log(sum(exp(xr))), stable; NaN if the row holds a NaN, +-inf for an infinite max."""
    m = xr[0]
    nan = m != m
    for j in range(1, xr.size):
        v = xr[j]
        if v > m:
            m = v
        elif v != v:
            nan = True
    if nan:
        return np.nan
    if m == np.inf or m == -np.inf:
        return m
    s = 0.0
    for j in range(xr.size):
        s += math.exp(xr[j] - m)
    return m + math.log(s)


@njit(cache=True, error_model="numpy")
def _softmax_small(x, y, log):
    for i in range(x.shape[0]):
        xr = x[i]
        yr = y[i]
        m = _row_max(xr)  # a NaN row stays NaN: exp(NaN) poisons the sum
        s = 0.0
        for j in range(xr.size):
            e = math.exp(xr[j] - m)
            if not log:
                yr[j] = e
            s += e
        if log:
            lse = m + math.log(s)
            for j in range(xr.size):
                yr[j] = xr[j] - lse
        else:
            inv = 1.0 / s
            for j in range(xr.size):
                yr[j] *= inv


@njit(cache=True, error_model="numpy")
def _softmax_bwd_small(gy, y, gx, log):
    for i in range(gy.shape[0]):
        gr = gy[i]
        yr = y[i]
        gxr = gx[i]
        s = 0.0
        if log:
            for j in range(gr.size):
                s += gr[j]
            for j in range(gr.size):
                gxr[j] = gr[j] - math.exp(yr[j]) * s
        else:
            for j in range(gr.size):
                s += gr[j] * yr[j]
            for j in range(gr.size):
                gxr[j] = yr[j] * (gr[j] - s)


def _rows_numpy(x):
    """Large arrays go through numpy, unless their rows are short (numpy's per-row reductions
    are slow there) and the array not huge."""
    n = x.size
    return n > _ROWS_NUMPY_MIN and (x.shape[1] >= _ROWS_NUMPY_MIN_C or n > 32 * _ROWS_NUMPY_MIN)


# Large row-wise numpy passes run on every core, one block of rows each (numpy releases the GIL
# inside its loops). Measured on 2 cores, float32, one run: 4096x1000 softmax 5.7 -> 3.0 ms,
# cross-entropy forward 5.3 -> 3.0, backward 3.6 -> 2.0 (an earlier run, in a slower phase of this VM:
# 6.1 -> 4.6, 5.8 -> 4.3, 4.0 -> 3.3); 256x1000 got slower split (0.25 -> 0.30 ms: the thread
# wake-up), hence the threshold.
_ROWS_SPLIT_MIN = 1 << 20


def _split_rows(work, n_rows, size):
    """work(lo, hi) over [0, n_rows) in blocks of rows shared out over the cores (threads.run_blocks),
    in one block when size (the elements) is small."""
    rows = n_rows if size < _ROWS_SPLIT_MIN else -(-n_rows // threads())
    run_blocks(work, n_rows, max(1, rows))


def _softmax_np(x, log, out):
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        y = np.subtract(x, x.max(axis=1, keepdims=True), out=out)
        if log:
            y -= np.log(np.exp(y).sum(axis=1, keepdims=True))
        else:
            np.exp(y, out=y)
            y /= y.sum(axis=1, keepdims=True)
    return y


def _softmax_rows_np(x, log):
    y = np.empty_like(x)
    _split_rows(lambda lo, hi: _softmax_np(x[lo:hi], log, y[lo:hi]), x.shape[0], x.size)
    return y


def softmax_rows(x2d):
    """Softmax over the last axis of a 2-D array (numerically stable)."""
    x = np.ascontiguousarray(x2d)
    if _rows_numpy(x):
        return _softmax_rows_np(x, False)
    y = np.empty_like(x)
    if x.size:
        _softmax_small(x, y, False)
    return y


def log_softmax_rows(x2d):
    """Log-softmax over the last axis of a 2-D array (numerically stable)."""
    x = np.ascontiguousarray(x2d)
    if _rows_numpy(x):
        return _softmax_rows_np(x, True)
    y = np.empty_like(x)
    if x.size:
        _softmax_small(x, y, True)
    return y


def softmax_rows_backward(gy, y):
    """gx = y * (gy - sum(gy * y, row)), y being softmax_rows' output."""
    gy = np.ascontiguousarray(gy)
    y = np.ascontiguousarray(y, dtype=gy.dtype)
    if _rows_numpy(gy):
        gx = np.empty_like(gy)

        def work(lo, hi):
            b = gx[lo:hi]
            np.subtract(gy[lo:hi], np.einsum("ij,ij->i", gy[lo:hi], y[lo:hi])[:, None], out=b)
            b *= y[lo:hi]

        _split_rows(work, gy.shape[0], gy.size)
        return gx
    gx = np.empty_like(gy)
    if gy.size:
        _softmax_bwd_small(gy, y, gx, False)
    return gx


def log_softmax_rows_backward(gy, y):
    """gx = gy - exp(y) * sum(gy, row), y being log_softmax_rows' output."""
    gy = np.ascontiguousarray(gy)
    y = np.ascontiguousarray(y, dtype=gy.dtype)
    if _rows_numpy(gy):
        gx = np.empty_like(gy)

        def work(lo, hi):
            with np.errstate(over="ignore", invalid="ignore"):
                np.subtract(gy[lo:hi], np.exp(y[lo:hi]) * gy[lo:hi].sum(axis=1, keepdims=True), out=gx[lo:hi])

        _split_rows(work, gy.shape[0], gy.size)
        return gx
    gx = np.empty_like(gy)
    if gy.size:
        _softmax_bwd_small(gy, y, gx, True)
    return gx


@njit(cache=True, error_model="numpy")
def _ce_small(x, t, ignore_index, eps, loss, lse):
    """Fills loss and lse; returns (the loss summed in float64, rows not ignored, the first row whose
    target is out of range or -1): the mean and the range check come out of the same pass."""
    C = x.shape[1]
    n_valid = 0
    bad = -1
    total = 0.0
    for i in range(x.shape[0]):
        xr = x[i]
        ti = t[i]
        l = _row_lse(xr)
        lse[i] = l
        if ti == ignore_index:
            loss[i] = 0
            continue
        n_valid += 1
        if ti < 0 or ti >= C:
            loss[i] = np.nan
            if bad < 0:
                bad = i
        else:
            v = (1.0 - eps) * (l - xr[ti])
            if eps != 0.0:
                s = 0.0
                for j in range(C):
                    s += xr[j]
                v += eps * (l - s / C)
            loss[i] = v
            total += v
    return total, n_valid, bad


@njit(cache=True, error_model="numpy")
def _ce_bwd_small(g, x, lse, t, ignore_index, eps, gx):
    C = x.shape[1]
    off = eps / C
    for i in range(x.shape[0]):
        xr = x[i]
        gr = gx[i]
        ti = t[i]
        if ti == ignore_index or ti < 0 or ti >= C:
            for j in range(C):
                gr[j] = 0
            continue
        gi = g[i]
        li = lse[i]
        for j in range(C):
            gr[j] = gi * (math.exp(xr[j] - li) - off)
        gr[ti] -= gi * (1.0 - eps)


def _ce_bwd_np(g, x, lse, t, ignore_index, eps, gx):
    """The numpy form of _ce_bwd_small for one block of rows, into gx."""
    N, C = x.shape
    use, tc = _ce_rows_mask(t, C, ignore_index)
    with np.errstate(invalid="ignore", over="ignore"):
        np.exp(np.subtract(x, lse[:, None], out=gx), out=gx)
    if eps != 0.0:
        gx -= eps / C
    gx[np.arange(N), tc] -= 1.0 - eps
    gx *= np.where(use, g, 0)[:, None]
    gx[~use] = 0  # also where g or exp was inf/NaN


def _ce_rows_mask(t, C, ignore_index):
    """(rows that contribute, their targets clipped into range for safe gathering)."""
    use = (t >= 0) & (t < C) & (t != ignore_index)
    return use, np.where(use, t, 0)


def cross_entropy_rows(logits2d, target1d, ignore_index, label_smoothing):
    """Per-row loss (N,) and row log-sum-exp (N,), both of the logits' dtype:
    loss = (1-eps)*(lse - x[t]) + eps*(lse - mean_c x[c]); rows with t == ignore_index get 0.
    The CALLER must validate targets first: a target outside [0, C) that is not ignore_index
    is never read through (its row's loss is NaN), no error is raised here."""
    return _ce_rows_counted(logits2d, target1d, ignore_index, label_smoothing)[:2]


def cross_entropy_mean(logits2d, target1d, ignore_index, label_smoothing):
    """reduction='mean' in one call: (mean loss over the rows not ignored, lse (N,), that row count),
    the scalars 0-d arrays of the logits' dtype. Raises IndexError on a target outside [0, C)
    that is not ignore_index (the check rides on the loss pass: no extra pass over the targets)."""
    loss, lse, total, n_valid, bad = _ce_rows_counted(logits2d, target1d, ignore_index, label_smoothing)
    if bad >= 0:
        raise IndexError(f"target {int(np.asarray(target1d).reshape(-1)[bad])} is out of bounds for "
                         f"{logits2d.shape[1]} classes")
    mean = total / n_valid if n_valid else float("nan")  # every row ignored: nan, as PyTorch
    return np.array(mean, dtype=loss.dtype), lse, np.array(n_valid, dtype=loss.dtype)


def _ce_rows_counted(logits2d, target1d, ignore_index, label_smoothing):
    """(loss, lse, the loss's sum, rows not ignored, first out-of-range row or -1)."""
    x = np.ascontiguousarray(logits2d)
    t = np.ascontiguousarray(target1d, dtype=np.int64)
    ignore_index = int(ignore_index)
    eps = float(label_smoothing)
    N, C = x.shape
    loss = np.empty(N, x.dtype)
    lse = np.empty(N, x.dtype)
    if N == 0:
        return loss, lse, 0.0, 0, -1
    if C == 0 or _rows_numpy(x):
        parts = {}

        def work(lo, hi):
            parts[lo] = _ce_rows_np(x[lo:hi], t[lo:hi], ignore_index, eps, loss[lo:hi], lse[lo:hi])

        _split_rows(work, N, x.size)
        bads = [lo + p[2] for lo, p in sorted(parts.items()) if p[2] >= 0]
        return (loss, lse, sum(p[0] for p in parts.values()), sum(p[1] for p in parts.values()),
                bads[0] if bads else -1)
    return (loss, lse) + _ce_small(x, t, ignore_index, eps, loss, lse)


def _ce_rows_np(x, t, ignore_index, eps, loss, lse):
    """The numpy form of _ce_small for one block of rows: fills loss and lse, returns (the loss
    summed in float64, rows not ignored, first out-of-range row of the block or -1)."""
    N, C = x.shape
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        m = x.max(axis=1) if C else np.full(N, -np.inf, x.dtype)
        s = np.exp(x - m[:, None]).sum(axis=1)
        lse[...] = np.where(np.isfinite(m), m + np.log(s), m)
        use, tc = _ce_rows_mask(t, C, ignore_index)
        v = (1.0 - eps) * (lse - (x[np.arange(N), tc] if C else 0))
        if eps != 0.0:
            v += eps * (lse - x.mean(axis=1))
        loss[...] = np.where(use, v, np.nan)
        ignored = t == ignore_index
        loss[ignored] = 0
    bad = np.flatnonzero(~use & ~ignored)
    return float(loss.sum(dtype=np.float64)), N - int(ignored.sum()), int(bad[0]) if bad.size else -1


def cross_entropy_rows_backward(g_rows, logits2d, lse, target1d, ignore_index, label_smoothing):
    """Gradient of sum_i g_rows[i] * loss_i with respect to the logits (ignored rows, and
    rows with an out-of-range target, get 0). g_rows may be 0-d: the same g for every row."""
    x = np.ascontiguousarray(logits2d)
    N, C = x.shape
    g = np.asarray(g_rows)
    # 0-d: one upstream gradient for every row (the mean's g / count). (ascontiguousarray would make
    # it shape (1,), and the row loop would read past it.)
    g = np.full(N, g, dtype=x.dtype) if g.ndim == 0 else np.ascontiguousarray(g, dtype=x.dtype)
    if g.shape != (N,):
        raise ValueError(f"cross_entropy backward: upstream gradient of shape {g.shape} for {N} rows")
    lse = np.ascontiguousarray(lse, dtype=x.dtype)
    t = np.ascontiguousarray(target1d, dtype=np.int64)
    ignore_index = int(ignore_index)
    eps = float(label_smoothing)
    gx = np.empty_like(x)
    if _rows_numpy(x):
        _split_rows(lambda lo, hi: _ce_bwd_np(g[lo:hi], x[lo:hi], lse[lo:hi], t[lo:hi], ignore_index, eps, gx[lo:hi]),
                    N, x.size)
        return gx
    if x.size:
        _ce_bwd_small(g, x, lse, t, ignore_index, eps, gx)
    return gx


# ----------------------------------------------------------------------------------------
# fused optimizer steps: one pass over (param, grad, state) instead of ~10 numpy passes.
# In place on C-contiguous arrays of one float dtype; PyTorch's single-tensor (foreach=False)
# math.  Every scalar is passed in the arrays' dtype (float32 math for float32 params, as
# PyTorch does, and SIMD-friendly); the kernels contain no float literals in arithmetic.
# ----------------------------------------------------------------------------------------

_OPT_CHUNKS = 16  # work items of the parallel twins (a few per thread, for balance)


@njit(cache=True, error_model="numpy")
def _adam_range(lo, hi, p_, g_, m_, v_, vmax_, omb1, beta2, omb2, eps, wd, decay, neg_step,
                bc2_sqrt, decoupled, amsgrad, maximize):
    p = p_[lo:hi]
    g = g_[lo:hi]
    m = m_[lo:hi]
    v = v_[lo:hi]
    vmax = vmax_[lo:hi] if amsgrad else vmax_[0:0]
    use_wd = wd != 0
    for i in range(p.size):
        gi = -g[i] if maximize else g[i]
        pi = p[i]
        if use_wd:
            if decoupled:
                pi = pi * decay
            else:
                gi = gi + wd * pi
        mi = m[i] + omb1 * (gi - m[i])  # exp_avg.lerp_(grad, 1 - beta1)
        vi = v[i] * beta2 + omb2 * gi * gi
        m[i] = mi
        v[i] = vi
        if amsgrad:
            vm = vmax[i]
            if vi > vm or vi != vi:
                vm = vi
            vmax[i] = vm
            vi = vm
        p[i] = pi + neg_step * (mi / (np.sqrt(vi) / bc2_sqrt + eps))


@njit(cache=True, error_model="numpy")
def _adam(p, g, m, v, vmax, omb1, beta2, omb2, eps, wd, decay, neg_step, bc2_sqrt, decoupled,
          amsgrad, maximize):
    _adam_range(0, p.size, p, g, m, v, vmax, omb1, beta2, omb2, eps, wd, decay, neg_step,
                bc2_sqrt, decoupled, amsgrad, maximize)


@njit(cache=True, parallel=True, error_model="numpy")
def _adam_par(p, g, m, v, vmax, omb1, beta2, omb2, eps, wd, decay, neg_step, bc2_sqrt,
              decoupled, amsgrad, maximize):
    n = p.size
    for c in prange(_OPT_CHUNKS):
        _adam_range(c * n // _OPT_CHUNKS, (c + 1) * n // _OPT_CHUNKS, p, g, m, v, vmax, omb1,
                    beta2, omb2, eps, wd, decay, neg_step, bc2_sqrt, decoupled, amsgrad,
                    maximize)


def adam_step_(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, lr, beta1, beta2, eps,
               weight_decay, decoupled, step, amsgrad, maximize):
    """One Adam (decoupled=False) / AdamW (decoupled=True) step, in place.  `step` counts
    this step (1 on the first).  All arrays C-contiguous, same shape and float dtype (they are
    updated through .reshape(-1) views); max_exp_avg_sq is needed iff amsgrad."""
    p = param.reshape(-1)
    if p.size == 0:
        return None
    f = p.dtype.type
    step = int(step)
    lr, beta1, beta2, wd = float(lr), float(beta1), float(beta2), float(weight_decay)
    amsgrad = bool(amsgrad) and max_exp_avg_sq is not None
    vmax = max_exp_avg_sq.reshape(-1) if amsgrad else p
    fn = _adam_par if p.size >= _PAR_MIN_OPTIM else _adam
    fn(p, grad.reshape(-1), exp_avg.reshape(-1), exp_avg_sq.reshape(-1), vmax, f(1.0 - beta1),
       f(beta2), f(1.0 - beta2), f(eps), f(wd), f(1.0 - lr * wd), f(-lr / (1.0 - beta1 ** step)),
       f(math.sqrt(1.0 - beta2 ** step)), bool(decoupled), amsgrad, bool(maximize))
    return None


@njit(cache=True, error_model="numpy")
def _sgd_range(lo, hi, p_, g_, buf_, neg_lr, momentum, omd, wd, nesterov, maximize, first):
    p = p_[lo:hi]
    g = g_[lo:hi]
    use_mom = momentum != 0
    use_wd = wd != 0
    buf = buf_[lo:hi] if use_mom else buf_[0:0]
    for i in range(p.size):
        d = -g[i] if maximize else g[i]
        if use_wd:
            d = d + wd * p[i]
        if use_mom:
            b = d if first else momentum * buf[i] + omd * d
            buf[i] = b
            d = d + momentum * b if nesterov else b
        p[i] = p[i] + neg_lr * d


@njit(cache=True, error_model="numpy")
def _sgd(p, g, buf, neg_lr, momentum, omd, wd, nesterov, maximize, first):
    _sgd_range(0, p.size, p, g, buf, neg_lr, momentum, omd, wd, nesterov, maximize, first)


@njit(cache=True, parallel=True, error_model="numpy")
def _sgd_par(p, g, buf, neg_lr, momentum, omd, wd, nesterov, maximize, first):
    n = p.size
    for c in prange(_OPT_CHUNKS):
        _sgd_range(c * n // _OPT_CHUNKS, (c + 1) * n // _OPT_CHUNKS, p, g, buf, neg_lr, momentum,
                   omd, wd, nesterov, maximize, first)


def sgd_step_(param, grad, momentum_buf, lr, momentum, dampening, weight_decay, nesterov,
              maximize, first_step):
    """One SGD step, in place.  momentum_buf (needed iff momentum != 0) is overwritten with
    the gradient on the first step (first_step=True), as PyTorch's clone does.  Arrays
    C-contiguous, same shape and float dtype."""
    p = param.reshape(-1)
    if p.size == 0:
        return None
    f = p.dtype.type
    momentum = float(momentum) if momentum_buf is not None else 0.0
    buf = momentum_buf.reshape(-1) if momentum != 0.0 else p
    fn = _sgd_par if p.size >= _PAR_MIN_OPTIM else _sgd
    fn(p, grad.reshape(-1), buf, f(-float(lr)), f(momentum), f(1.0 - float(dampening)),
       f(weight_decay), bool(nesterov), bool(maximize), bool(first_step))
    return None


@njit(cache=True, error_model="numpy")
def _rmsprop_range(lo, hi, p_, g_, sq_, buf_, gavg_, neg_lr, alpha, oma, eps, wd, momentum,
                   centered):
    p = p_[lo:hi]
    g = g_[lo:hi]
    sq = sq_[lo:hi]
    use_mom = momentum > 0
    use_wd = wd != 0
    buf = buf_[lo:hi] if use_mom else buf_[0:0]
    gavg = gavg_[lo:hi] if centered else gavg_[0:0]
    for i in range(p.size):
        gi = g[i]
        if use_wd:
            gi = gi + wd * p[i]
        sa = sq[i] * alpha + oma * gi * gi
        sq[i] = sa
        if centered:
            ga = gavg[i] + oma * (gi - gavg[i])  # grad_avg.lerp_(grad, 1 - alpha)
            gavg[i] = ga
            avg = np.sqrt(sa - ga * ga) + eps
        else:
            avg = np.sqrt(sa) + eps
        if use_mom:
            b = buf[i] * momentum + gi / avg
            buf[i] = b
            p[i] = p[i] + neg_lr * b
        else:
            p[i] = p[i] + neg_lr * (gi / avg)


@njit(cache=True, error_model="numpy")
def _rmsprop(p, g, sq, buf, gavg, neg_lr, alpha, oma, eps, wd, momentum, centered):
    _rmsprop_range(0, p.size, p, g, sq, buf, gavg, neg_lr, alpha, oma, eps, wd, momentum,
                   centered)


@njit(cache=True, parallel=True, error_model="numpy")
def _rmsprop_par(p, g, sq, buf, gavg, neg_lr, alpha, oma, eps, wd, momentum, centered):
    n = p.size
    for c in prange(_OPT_CHUNKS):
        _rmsprop_range(c * n // _OPT_CHUNKS, (c + 1) * n // _OPT_CHUNKS, p, g, sq, buf, gavg,
                       neg_lr, alpha, oma, eps, wd, momentum, centered)


def rmsprop_step_(param, grad, square_avg, momentum_buf, grad_avg, lr, alpha, eps, weight_decay,
                  momentum, centered):
    """One RMSprop step, in place (PyTorch's math).  momentum_buf is needed iff momentum > 0,
    grad_avg iff centered.  Arrays C-contiguous, same shape and float dtype."""
    p = param.reshape(-1)
    if p.size == 0:
        return None
    f = p.dtype.type
    momentum = float(momentum) if momentum_buf is not None else 0.0
    centered = bool(centered) and grad_avg is not None
    buf = momentum_buf.reshape(-1) if momentum > 0.0 else p
    gavg = grad_avg.reshape(-1) if centered else p
    fn = _rmsprop_par if p.size >= _PAR_MIN_OPTIM else _rmsprop
    fn(p, grad.reshape(-1), square_avg.reshape(-1), buf, gavg, f(-float(lr)), f(alpha),
       f(1.0 - float(alpha)), f(eps), f(weight_decay), f(momentum), centered)
    return None
