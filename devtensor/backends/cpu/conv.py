"""conv2d on the cpu backend for every geometry: stride, padding, dilation and groups through
"wide" im2col + one BLAS GEMM per batch chunk and group; 1x1 convs as plain GEMMs; and the 3x3
stride-1 fast paths picked by shape: Winograd (winograd.py) for 8..128 channels, direct loops
(direct3x3.py) for <= 3 input channels.

The im2col path is serial numba loops around OpenBLAS's own threads: making the data-movement
loops parallel=True was slower under every numba threading layer, because the idle OpenMP
workers spin after a parallel region and take a core from the BLAS call that follows.

Arguments are numpy arrays (float32 or float64) and plain Python values, already validated above
the dispatch table; results are NEW arrays of the input dtype.  Nothing compiles at import.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

# Bytes of conv column buffer per batch chunk.  Small enough that the columns written by
# im2col are still in L2/L3 when the GEMM reads them; large enough for an efficient GEMM.
_CONV_CHUNK_BYTES = 1 << 22
# Input and output channels from which 3x3 stride-1 convs go through Winograd.
_WINO_MIN_C = 8
# ... and at most this many: at 256 and 512 channels (ResNet-50's 14x14 and 7x7 layers) the
# transforms and the small per-tile GEMMs lost to im2col + BLAS (`devtensor bench --ops conv`).
_WINO_MAX_C = 128
# Input channels up to which 3x3 stride-1 convs use direct3x3's loops (forward, weight grad):
# faster than im2col at 1-3 channels; from 4 up the paths are within noise and im2col stays.
_DIRECT_MAX_C = 3


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
# non-negative, skips its negative-index wraparound code and vectorizes.

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
        pay (winograd.py)."""
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
