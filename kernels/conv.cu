// devtensor conv2d kernels (float32, NCHW), implicit GEMM: the im2col matrix is never built; each tile
// of it is gathered from the image straight into shared memory.  Per group g (Cig = C/groups input and
// Cog = Cout/groups output channels, KHW = KH*KW, OHW = OH*OW):
//
//   forward         y[n, g*Cog+m, p]      = sum_k  w[g*Cog+m, k] * im2col(x)[k, (n, p)]        M=Cog  N=N*OHW  K=Cig*KHW
//   backward input  dx[n, g*Cig+c, q]     = sum_k  w^T[c, (co, r)] * col2im(dy)[(co, r), (n, q)] M=Cig  N=N*H*W  K=Cog*KHW
//   backward weight dw[g*Cog+m, (c, r)]   = sum_k  dy[n, g*Cog+m, p] * im2col(x)[(c, r), (n, p)]  M=Cog  N=Cig*KHW K=N*OHW
//
// with the usual geometry ih = oh*sh - ph + kh*dh, iw = ow*sw - pw + kw*dw (outside the image reads 0).
// All accesses are bounds-checked (any sizes, stride, padding, dilation, groups).  Block tile 64 x 64,
// k-step 16, 256 threads each owning a 4 x 4 register tile; shared memory double-buffered through
// registers (one __syncthreads per k-tile).
// Grid (see launch_config in devtensor/backends/cuda/kernel_build.py): x = tiles along GEMM-N,
// y = (tiles along GEMM-M) * groups, z = split-K slices (backward weight only: when k_per_split < K the
// slices add their partial sums with atomicAdd, so the caller zeroes dw first).  Every grid dimension is
// walked with a stride loop.
//
// NVRTC rules: no std headers; long long instead of int64_t.

#ifndef DT_EMULATE
#define DT_DEVICE __device__ __forceinline__
#endif

#define DT_CONV_BM 64
#define DT_CONV_BN 64
#define DT_CONV_BK 16
#define DT_CONV_NT 256

struct DtConvGeom {
    int N, C, H, W, Cout, KH, KW, OH, OW, sh, sw, ph, pw, dh, dw, groups;
    int cig, cog, khw, ohw, hw;
};

enum { DT_CONV_FWD = 0, DT_CONV_BWD_INPUT = 1, DT_CONV_BWD_WEIGHT = 2 };

// GEMM operand A (M x K), element (m, k) of group gi; m < M, k < K are checked by the caller.
template <int MODE>
DT_DEVICE float dt_conv_a(const float* __restrict__ P, const DtConvGeom g, int gi, int m, int k) {
    if constexpr (MODE == DT_CONV_FWD) {  // P = w
        return P[(long long)(gi * g.cog + m) * (g.cig * g.khw) + k];
    } else if constexpr (MODE == DT_CONV_BWD_INPUT) {  // P = w, m = c, k = (co, r)
        const int co = k / g.khw, r = k - co * g.khw;
        return P[((long long)(gi * g.cog + co) * g.cig + m) * g.khw + r];
    } else {  // P = dy, m = co, k = (n, p)
        const int n = k / g.ohw, p = k - n * g.ohw;
        return P[((long long)n * g.Cout + gi * g.cog + m) * g.ohw + p];
    }
}

// GEMM operand B (K x N), element (k, col) of group gi; k < K, col < N are checked by the caller.
template <int MODE>
DT_DEVICE float dt_conv_b(const float* __restrict__ Q, const DtConvGeom g, int gi, int k, int col) {
    if constexpr (MODE == DT_CONV_FWD) {  // Q = x, k = (c, kh, kw), col = (n, oh, ow)
        const int c = k / g.khw, r = k - c * g.khw;
        const int kh = r / g.KW, kw = r - kh * g.KW;
        const int n = col / g.ohw, p = col - n * g.ohw;
        const int oh = p / g.OW, ow = p - oh * g.OW;
        const int ih = oh * g.sh - g.ph + kh * g.dh, iw = ow * g.sw - g.pw + kw * g.dw;
        if ((unsigned)ih >= (unsigned)g.H || (unsigned)iw >= (unsigned)g.W) return 0.f;
        return Q[(((long long)n * g.C + gi * g.cig + c) * g.H + ih) * g.W + iw];
    } else if constexpr (MODE == DT_CONV_BWD_INPUT) {  // Q = dy, k = (co, kh, kw), col = (n, ih, iw)
        const int co = k / g.khw, r = k - co * g.khw;
        const int kh = r / g.KW, kw = r - kh * g.KW;
        const int n = col / g.hw, q = col - n * g.hw;
        const int ih = q / g.W, iw = q - ih * g.W;
        const int th = ih + g.ph - kh * g.dh, tw = iw + g.pw - kw * g.dw;
        if (th < 0 || tw < 0) return 0.f;
        const int oh = th / g.sh, ow = tw / g.sw;
        if (oh * g.sh != th || ow * g.sw != tw || oh >= g.OH || ow >= g.OW) return 0.f;
        return Q[(((long long)n * g.Cout + gi * g.cog + co) * g.OH + oh) * g.OW + ow];
    } else {  // Q = x, k = (n, oh, ow), col = (c, kh, kw)
        const int n = k / g.ohw, p = k - n * g.ohw;
        const int oh = p / g.OW, ow = p - oh * g.OW;
        const int c = col / g.khw, r = col - c * g.khw;
        const int kh = r / g.KW, kw = r - kh * g.KW;
        const int ih = oh * g.sh - g.ph + kh * g.dh, iw = ow * g.sw - g.pw + kw * g.dw;
        if ((unsigned)ih >= (unsigned)g.H || (unsigned)iw >= (unsigned)g.W) return 0.f;
        return Q[(((long long)n * g.C + gi * g.cig + c) * g.H + ih) * g.W + iw];
    }
}

template <int MODE>
DT_DEVICE void dt_conv_igemm(const float* __restrict__ P, const float* __restrict__ Q, float* __restrict__ out,
                             const float* __restrict__ bias, int has_bias, const DtConvGeom g, int k_per_split) {
    constexpr int BM = DT_CONV_BM, BN = DT_CONV_BN, BK = DT_CONV_BK, NT = DT_CONV_NT;
    constexpr int PAD = 4, LDS_A = BM + PAD, LDS_B = BN + PAD;
    constexpr int NA = BM * BK / NT, NB = BN * BK / NT;  // elements per thread per tile (4 and 4)
    // B is gathered with consecutive threads along GEMM-N (image pixels) except for the weight
    // gradient, whose B is contiguous along GEMM-K; A is always contiguous along K.
    constexpr bool B_COL_FAST = MODE != DT_CONV_BWD_WEIGHT;

    __shared__ __align__(16) float As[2][BK * LDS_A];
    __shared__ __align__(16) float Bs[2][BK * LDS_B];

    const int M = (MODE == DT_CONV_BWD_INPUT) ? g.cig : g.cog;
    const int Ncols = (MODE == DT_CONV_FWD) ? g.N * g.ohw : (MODE == DT_CONV_BWD_INPUT) ? g.N * g.hw : g.cig * g.khw;
    const int K = (MODE == DT_CONV_FWD) ? g.cig * g.khw : (MODE == DT_CONV_BWD_INPUT) ? g.cog * g.khw : g.N * g.ohw;
    const int tiles_m = (M + BM - 1) / BM, tiles_n = (Ncols + BN - 1) / BN;
    const int splits = max(1, (K + k_per_split - 1) / k_per_split);

    const int tid = threadIdx.x;
    const int tx = tid % 16, ty = tid / 16;

    for (int z = blockIdx.z; z < splits; z += gridDim.z) {
        const int kbeg = z * k_per_split;
        const int kend = min(K, kbeg + k_per_split);
        const int ktiles = (kend - kbeg + BK - 1) / BK;
        for (int by = blockIdx.y; by < tiles_m * g.groups; by += gridDim.y) {
            const int gi = by / tiles_m, m0 = (by - gi * tiles_m) * BM;
            for (int bx = blockIdx.x; bx < tiles_n; bx += gridDim.x) {
                const int n0 = bx * BN;
                float ra[NA], rb[NB];
                float acc[4][4];
#pragma unroll
                for (int i = 0; i < 4; ++i)
#pragma unroll
                    for (int j = 0; j < 4; ++j) acc[i][j] = 0.f;

                // element e of this thread's share of the A tile: (k = tid%BK, m = tid/BK + e*(NT/BK))
                auto load = [&](int k0) {
#pragma unroll
                    for (int e = 0; e < NA; ++e) {
                        const int kl = tid % BK, ml = tid / BK + e * (NT / BK);
                        const int k = k0 + kl, m = m0 + ml;
                        ra[e] = (k < kend && m < M) ? dt_conv_a<MODE>(P, g, gi, m, k) : 0.f;
                    }
#pragma unroll
                    for (int e = 0; e < NB; ++e) {
                        int kl, cl;
                        if (B_COL_FAST) { cl = tid % BN; kl = tid / BN + e * (NT / BN); }
                        else            { kl = tid % BK; cl = tid / BK + e * (NT / BK); }
                        const int k = k0 + kl, c = n0 + cl;
                        rb[e] = (k < kend && c < Ncols) ? dt_conv_b<MODE>(Q, g, gi, k, c) : 0.f;
                    }
                };
                auto store = [&](int buf) {
#pragma unroll
                    for (int e = 0; e < NA; ++e) {
                        const int kl = tid % BK, ml = tid / BK + e * (NT / BK);
                        As[buf][kl * LDS_A + ml] = ra[e];
                    }
#pragma unroll
                    for (int e = 0; e < NB; ++e) {
                        int kl, cl;
                        if (B_COL_FAST) { cl = tid % BN; kl = tid / BN + e * (NT / BN); }
                        else            { kl = tid % BK; cl = tid / BK + e * (NT / BK); }
                        Bs[buf][kl * LDS_B + cl] = rb[e];
                    }
                };

                if (ktiles > 0) { load(kbeg); store(0); }
                __syncthreads();
                int cur = 0;
                for (int kt = 0; kt < ktiles; ++kt) {
                    const bool more = kt + 1 < ktiles;
                    if (more) load(kbeg + (kt + 1) * BK);
                    const float* as = As[cur];
                    const float* bs = Bs[cur];
#pragma unroll
                    for (int k = 0; k < BK; ++k) {
                        const float4 a = *reinterpret_cast<const float4*>(&as[k * LDS_A + ty * 4]);
                        const float4 b = *reinterpret_cast<const float4*>(&bs[k * LDS_B + tx * 4]);
                        const float av[4] = {a.x, a.y, a.z, a.w}, bv[4] = {b.x, b.y, b.z, b.w};
#pragma unroll
                        for (int i = 0; i < 4; ++i)
#pragma unroll
                            for (int j = 0; j < 4; ++j) acc[i][j] = fmaf(av[i], bv[j], acc[i][j]);
                    }
                    if (more) store(cur ^ 1);
                    __syncthreads();
                    cur ^= 1;
                }

#pragma unroll
                for (int i = 0; i < 4; ++i) {
                    const int m = m0 + ty * 4 + i;
                    if (m >= M) continue;
#pragma unroll
                    for (int j = 0; j < 4; ++j) {
                        const int col = n0 + tx * 4 + j;
                        if (col >= Ncols) continue;
                        const float v = acc[i][j];
                        if constexpr (MODE == DT_CONV_FWD) {
                            const int n = col / g.ohw, p = col - n * g.ohw;
                            const int co = gi * g.cog + m;
                            out[((long long)n * g.Cout + co) * g.ohw + p] = has_bias ? v + bias[co] : v;
                        } else if constexpr (MODE == DT_CONV_BWD_INPUT) {
                            const int n = col / g.hw, q = col - n * g.hw;
                            out[((long long)n * g.C + gi * g.cig + m) * g.hw + q] = v;
                        } else {
                            float* o = out + (long long)(gi * g.cog + m) * (g.cig * g.khw) + col;
                            if (splits > 1) atomicAdd(o, v); else *o = v;
                        }
                    }
                }
            }
        }
    }
}

DT_DEVICE DtConvGeom dt_conv_geom(int N, int C, int H, int W, int Cout, int KH, int KW, int OH, int OW, int sh,
                                  int sw, int ph, int pw, int dh, int dw, int groups) {
    DtConvGeom g;
    g.N = N; g.C = C; g.H = H; g.W = W; g.Cout = Cout; g.KH = KH; g.KW = KW; g.OH = OH; g.OW = OW;
    g.sh = sh; g.sw = sw; g.ph = ph; g.pw = pw; g.dh = dh; g.dw = dw; g.groups = groups;
    g.cig = C / groups; g.cog = Cout / groups; g.khw = KH * KW; g.ohw = OH * OW; g.hw = H * W;
    return g;
}

// y = conv2d(x, w) (+ bias[co] when has_bias; bias may be any valid pointer otherwise).
extern "C" __global__ void __launch_bounds__(DT_CONV_NT, 2)
dt_conv2d_fwd(const float* __restrict__ x, const float* __restrict__ w, const float* __restrict__ bias,
              float* __restrict__ y, int N, int C, int H, int W, int Cout, int KH, int KW, int OH, int OW,
              int sh, int sw, int ph, int pw, int dh, int dw, int groups, int has_bias) {
    const DtConvGeom g = dt_conv_geom(N, C, H, W, Cout, KH, KW, OH, OW, sh, sw, ph, pw, dh, dw, groups);
    dt_conv_igemm<DT_CONV_FWD>(w, x, y, bias, has_bias, g, max(1, g.cig * g.khw));
}

// dx = grad of conv2d w.r.t. its input (every element of dx is written).
extern "C" __global__ void __launch_bounds__(DT_CONV_NT, 2)
dt_conv2d_bwd_input(const float* __restrict__ dy, const float* __restrict__ w, float* __restrict__ dx,
                    int N, int C, int H, int W, int Cout, int KH, int KW, int OH, int OW,
                    int sh, int sw, int ph, int pw, int dh, int dw, int groups) {
    const DtConvGeom g = dt_conv_geom(N, C, H, W, Cout, KH, KW, OH, OW, sh, sw, ph, pw, dh, dw, groups);
    dt_conv_igemm<DT_CONV_BWD_INPUT>(w, dy, dx, w, 0, g, max(1, g.cog * g.khw));
}

// dw = grad of conv2d w.r.t. its weight.  k_per_split (a multiple of 16) slices the N*OH*OW reduction;
// when it is < N*OH*OW the slices atomicAdd into dw, which the caller must have zeroed.
extern "C" __global__ void __launch_bounds__(DT_CONV_NT, 2)
dt_conv2d_bwd_weight(const float* __restrict__ dy, const float* __restrict__ x, float* __restrict__ dw_out,
                     int N, int C, int H, int W, int Cout, int KH, int KW, int OH, int OW,
                     int sh, int sw, int ph, int pw, int dh, int dw, int groups, int k_per_split) {
    const DtConvGeom g = dt_conv_geom(N, C, H, W, Cout, KH, KW, OH, OW, sh, sw, ph, pw, dh, dw, groups);
    dt_conv_igemm<DT_CONV_BWD_WEIGHT>(dy, x, dw_out, dy, 0, g, max(1, k_per_split));
}
