// devtensor SGEMM kernels (float32), compiled at run time by NVRTC through cupy.RawModule.
//
//   C[b] = alpha * op(A[b]) @ op(B[b]) + beta * C[b]      b = 0 .. batch-1
//
// Everything is row-major.  op(A) is M x K:  A[m*lda + k]  (TA = false)  or  A[k*lda + m]  (TA = true);
// op(B) is K x N:  B[k*ldb + n]  (TB = false)  or  B[n*ldb + k]  (TB = true).  Transposed operands are read
// in place, never copied.  Batch b starts at A + b*strideA (strides in elements; 0 broadcasts one matrix).
// beta == 0 never reads C (so C may hold garbage / NaN).
//
// Kernels (template parameters are instantiated through name_expressions listed in
// devtensor/backends/cuda/kernel_build.py; the launch geometry lives in launch_config() there):
//   dt_sgemm_simt<BM, BN, BK, TM, TN, TA, TB, VEC>   CUDA-core path, (BM/TM)*(BN/TN) threads, 2-D register blocking
//   dt_sgemm_tf32<TA, TB, VEC>                       tensor-core path (mma.sync m16n8k8 tf32), 256 threads, 128x128x16
// VEC = true promises: A, B, C 16-byte aligned, lda/ldb/ldc and the three batch strides multiples of 4;
// the kernels then use float4 loads/stores wherever a 4-vector lies inside the matrix and fall back to
// bounds-checked scalar accesses elsewhere, so any M, N, K is handled.
// Grid: x = tiles along N, y = tiles along M, z = batch; each is walked with a grid-stride loop, so a grid
// clamped to the hardware limits still covers everything.
//
// NVRTC rules: no std headers (no <cstdint>, no <mma.h>); long long instead of int64_t.

#ifndef DT_EMULATE
#define DT_DEVICE __device__ __forceinline__

// Round-to-nearest (ties away) fp32 -> tf32, as cuBLAS does for TF32 math.
DT_DEVICE unsigned dt_f32_to_tf32(float x) {
    unsigned r;
    asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(x));
    return r;
}

// d += a(16x8, row) * b(8x8, col); per-lane fragments as in the PTX ISA "mma.m16n8k8 .tf32" layout.
DT_DEVICE void dt_mma_m16n8k8_tf32(float d[4], const unsigned a[4], const unsigned b[2]) {
    asm volatile(
        "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 "
        "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}
#endif

// Loads one BR x BK tile of an operand (R = the M or N side) into registers, then stores it into shared
// memory laid out k-major: s[k * LDS + r].  K_CONTIG says the source is contiguous along k
// (X[r*ld + k]: A not transposed, B transposed); otherwise it is contiguous along r (X[k*ld + r]).
// Each thread owns NV float4 chunks, chosen so consecutive threads read consecutive addresses.
template <int BR, int BK, int NT, bool K_CONTIG, bool VEC>
struct DtTileLoader {
    static constexpr int NV = (BR * BK) / (4 * NT);
    static_assert(NV >= 1 && NV * 4 * NT == BR * BK, "tile must split evenly into float4 chunks");
    float4 v[NV];

    DT_DEVICE static void coords(int tid, int i, int& r, int& k) {
        const int c = tid + i * NT;
        if constexpr (K_CONTIG) { r = c / (BK / 4); k = (c % (BK / 4)) * 4; }
        else          { k = c / (BR / 4); r = (c % (BR / 4)) * 4; }
    }

    DT_DEVICE void load(const float* __restrict__ X, int ld, int R, int K, int r0, int k0, int tid) {
#pragma unroll
        for (int i = 0; i < NV; ++i) {
            int r, k;
            coords(tid, i, r, k);
            const int gr = r0 + r, gk = k0 + k;
            float4 t;
            if constexpr (K_CONTIG) {
                const bool rok = gr < R;
                const float* p = X + (long long)(rok ? gr : 0) * ld + gk;
                if (VEC && rok && gk + 3 < K) {
                    t = *reinterpret_cast<const float4*>(p);
                } else {
                    t.x = (rok && gk + 0 < K) ? p[0] : 0.f;
                    t.y = (rok && gk + 1 < K) ? p[1] : 0.f;
                    t.z = (rok && gk + 2 < K) ? p[2] : 0.f;
                    t.w = (rok && gk + 3 < K) ? p[3] : 0.f;
                }
            } else {
                const bool kok = gk < K;
                const float* p = X + (long long)(kok ? gk : 0) * ld + gr;
                if (VEC && kok && gr + 3 < R) {
                    t = *reinterpret_cast<const float4*>(p);
                } else {
                    t.x = (kok && gr + 0 < R) ? p[0] : 0.f;
                    t.y = (kok && gr + 1 < R) ? p[1] : 0.f;
                    t.z = (kok && gr + 2 < R) ? p[2] : 0.f;
                    t.w = (kok && gr + 3 < R) ? p[3] : 0.f;
                }
            }
            v[i] = t;
        }
    }

    template <int LDS, bool TF32>
    DT_DEVICE void store(float* s, int tid) const {
#pragma unroll
        for (int i = 0; i < NV; ++i) {
            int r, k;
            coords(tid, i, r, k);
            float4 t = v[i];
            if constexpr (TF32) {
                t.x = __uint_as_float(dt_f32_to_tf32(t.x));
                t.y = __uint_as_float(dt_f32_to_tf32(t.y));
                t.z = __uint_as_float(dt_f32_to_tf32(t.z));
                t.w = __uint_as_float(dt_f32_to_tf32(t.w));
            }
            if constexpr (K_CONTIG) {
                s[(k + 0) * LDS + r] = t.x;
                s[(k + 1) * LDS + r] = t.y;
                s[(k + 2) * LDS + r] = t.z;
                s[(k + 3) * LDS + r] = t.w;
            } else {
                *reinterpret_cast<float4*>(&s[k * LDS + r]) = t;
            }
        }
    }
};

// Writes 4 consecutive outputs of row `row`, columns col .. col+3 (bounds-checked).
template <bool VEC>
DT_DEVICE void dt_store4(float* __restrict__ C, int ldc, int M, int N, int row, int col,
                         float a0, float a1, float a2, float a3, float alpha, float beta) {
    if (row >= M) return;
    float* p = C + (long long)row * ldc + col;
    if (VEC && col + 3 < N) {
        float4 o;
        if (beta != 0.f) {
            const float4 c = *reinterpret_cast<const float4*>(p);
            o.x = fmaf(alpha, a0, beta * c.x); o.y = fmaf(alpha, a1, beta * c.y);
            o.z = fmaf(alpha, a2, beta * c.z); o.w = fmaf(alpha, a3, beta * c.w);
        } else {
            o.x = alpha * a0; o.y = alpha * a1; o.z = alpha * a2; o.w = alpha * a3;
        }
        *reinterpret_cast<float4*>(p) = o;
        return;
    }
    const float a[4] = {a0, a1, a2, a3};
#pragma unroll
    for (int j = 0; j < 4; ++j) {
        if (col + j < N) p[j] = (beta != 0.f) ? fmaf(alpha, a[j], beta * p[j]) : alpha * a[j];
    }
}

// ------------------------------------------------------------------------------------------------
// CUDA-core SGEMM: block tile BM x BN, k-step BK, each thread a TM x TN sub-tile held in registers.
// A thread's rows are TM/4 groups of 4 spaced BM/(TM/4) apart (likewise columns), so that its
// shared-memory reads are float4 and a warp's reads fall on distinct banks.  Shared memory is
// double-buffered: the next k-tile is fetched from global memory into registers while the current
// one is consumed, and stored to the other buffer; one __syncthreads per k-tile.
template <int BM, int BN, int BK, int TM, int TN, bool TA, bool TB, bool VEC>
__global__ void __launch_bounds__((BM / TM) * (BN / TN))
dt_sgemm_simt(const float* __restrict__ A, const float* __restrict__ B, float* __restrict__ C,
              int M, int N, int K, int lda, int ldb, int ldc,
              long long strideA, long long strideB, long long strideC, int batch,
              float alpha, float beta) {
    constexpr int NT = (BM / TM) * (BN / TN);
    constexpr int TX = BN / TN;              // threads along N
    constexpr int GM = TM / 4, GN = TN / 4;  // float4 groups per thread
    constexpr int SM_ = BM / GM, SN_ = BN / GN;
    constexpr int PAD = 4;
    constexpr int LDA_S = BM + PAD, LDB_S = BN + PAD;
    static_assert(TM % 4 == 0 && TN % 4 == 0, "TM, TN must be multiples of 4");

    __shared__ __align__(16) float As[2][BK * LDA_S];
    __shared__ __align__(16) float Bs[2][BK * LDB_S];

    const int tid = threadIdx.x;
    const int tx = tid % TX, ty = tid / TX;
    const int tiles_m = (M + BM - 1) / BM, tiles_n = (N + BN - 1) / BN;
    const int ktiles = (K + BK - 1) / BK;

    DtTileLoader<BM, BK, NT, !TA, VEC> la;
    DtTileLoader<BN, BK, NT, TB, VEC> lb;

    for (int bz = blockIdx.z; bz < batch; bz += gridDim.z) {
        const float* Ab = A + bz * strideA;
        const float* Bb = B + bz * strideB;
        float* Cb = C + bz * strideC;
        for (int bm = blockIdx.y; bm < tiles_m; bm += gridDim.y) {
            for (int bn = blockIdx.x; bn < tiles_n; bn += gridDim.x) {
                const int m0 = bm * BM, n0 = bn * BN;
                float acc[TM][TN];
#pragma unroll
                for (int i = 0; i < TM; ++i)
#pragma unroll
                    for (int j = 0; j < TN; ++j) acc[i][j] = 0.f;

                if (ktiles > 0) {
                    la.load(Ab, lda, M, K, m0, 0, tid);
                    lb.load(Bb, ldb, N, K, n0, 0, tid);
                    la.template store<LDA_S, false>(As[0], tid);
                    lb.template store<LDB_S, false>(Bs[0], tid);
                }
                __syncthreads();

                int cur = 0;
                for (int kt = 0; kt < ktiles; ++kt) {
                    const bool more = kt + 1 < ktiles;
                    if (more) {
                        la.load(Ab, lda, M, K, m0, (kt + 1) * BK, tid);
                        lb.load(Bb, ldb, N, K, n0, (kt + 1) * BK, tid);
                    }
                    const float* as = As[cur];
                    const float* bs = Bs[cur];
#pragma unroll
                    for (int k = 0; k < BK; ++k) {
                        float a[TM], b[TN];
#pragma unroll
                        for (int g = 0; g < GM; ++g) {
                            const float4 t = *reinterpret_cast<const float4*>(&as[k * LDA_S + g * SM_ + ty * 4]);
                            a[g * 4 + 0] = t.x; a[g * 4 + 1] = t.y; a[g * 4 + 2] = t.z; a[g * 4 + 3] = t.w;
                        }
#pragma unroll
                        for (int g = 0; g < GN; ++g) {
                            const float4 t = *reinterpret_cast<const float4*>(&bs[k * LDB_S + g * SN_ + tx * 4]);
                            b[g * 4 + 0] = t.x; b[g * 4 + 1] = t.y; b[g * 4 + 2] = t.z; b[g * 4 + 3] = t.w;
                        }
#pragma unroll
                        for (int i = 0; i < TM; ++i)
#pragma unroll
                            for (int j = 0; j < TN; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
                    }
                    if (more) {
                        la.template store<LDA_S, false>(As[cur ^ 1], tid);
                        lb.template store<LDB_S, false>(Bs[cur ^ 1], tid);
                    }
                    __syncthreads();
                    cur ^= 1;
                }

#pragma unroll
                for (int i = 0; i < TM; ++i) {
                    const int row = m0 + (i / 4) * SM_ + ty * 4 + (i % 4);
#pragma unroll
                    for (int g = 0; g < GN; ++g) {
                        const int col = n0 + g * SN_ + tx * 4;
                        dt_store4<VEC>(Cb, ldc, M, N, row, col, acc[i][g * 4 + 0], acc[i][g * 4 + 1],
                                       acc[i][g * 4 + 2], acc[i][g * 4 + 3], alpha, beta);
                    }
                }
            }
        }
    }
}

// ------------------------------------------------------------------------------------------------
// TF32 tensor-core SGEMM (sm_80+): block tile 128 x 128, k-step 16, 8 warps as 2 (M) x 4 (N), each warp
// 64 x 32 = 4 x 4 mma tiles of 16 x 8.  Operands are rounded to tf32 once, when stored to shared memory.
// Shared rows are padded by 8 floats so the fragment reads (lane -> (k = lane%4, r = lane/4)) hit 32
// distinct banks.  Accumulation is in fp32.  Only used when the caller allows TF32.
template <bool TA, bool TB, bool VEC>
__global__ void __launch_bounds__(256)
dt_sgemm_tf32(const float* __restrict__ A, const float* __restrict__ B, float* __restrict__ C,
              int M, int N, int K, int lda, int ldb, int ldc,
              long long strideA, long long strideB, long long strideC, int batch,
              float alpha, float beta) {
#if defined(DT_EMULATE) || (__CUDA_ARCH__ >= 800)
    constexpr int BM = 128, BN = 128, BK = 16, NT = 256;
    constexpr int LDS = 128 + 8;
    constexpr int WM = 64, WN = 32, MI = WM / 16, NJ = WN / 8;

    __shared__ __align__(16) float As[2][BK * LDS];
    __shared__ __align__(16) float Bs[2][BK * LDS];

    const int tid = threadIdx.x;
    const int lane = tid & 31, warp = tid >> 5;
    const int g = lane >> 2, t = lane & 3;
    const int wm = (warp >> 2) * WM, wn = (warp & 3) * WN;
    const int tiles_m = (M + BM - 1) / BM, tiles_n = (N + BN - 1) / BN;
    const int ktiles = (K + BK - 1) / BK;

    DtTileLoader<BM, BK, NT, !TA, VEC> la;
    DtTileLoader<BN, BK, NT, TB, VEC> lb;

    for (int bz = blockIdx.z; bz < batch; bz += gridDim.z) {
        const float* Ab = A + bz * strideA;
        const float* Bb = B + bz * strideB;
        float* Cb = C + bz * strideC;
        for (int bm = blockIdx.y; bm < tiles_m; bm += gridDim.y) {
            for (int bn = blockIdx.x; bn < tiles_n; bn += gridDim.x) {
                const int m0 = bm * BM, n0 = bn * BN;
                float acc[MI][NJ][4];
#pragma unroll
                for (int i = 0; i < MI; ++i)
#pragma unroll
                    for (int j = 0; j < NJ; ++j)
#pragma unroll
                        for (int q = 0; q < 4; ++q) acc[i][j][q] = 0.f;

                if (ktiles > 0) {
                    la.load(Ab, lda, M, K, m0, 0, tid);
                    lb.load(Bb, ldb, N, K, n0, 0, tid);
                    la.template store<LDS, true>(As[0], tid);
                    lb.template store<LDS, true>(Bs[0], tid);
                }
                __syncthreads();

                int cur = 0;
                for (int kt = 0; kt < ktiles; ++kt) {
                    const bool more = kt + 1 < ktiles;
                    if (more) {
                        la.load(Ab, lda, M, K, m0, (kt + 1) * BK, tid);
                        lb.load(Bb, ldb, N, K, n0, (kt + 1) * BK, tid);
                    }
                    const float* as = As[cur];
                    const float* bs = Bs[cur];
#pragma unroll
                    for (int kk = 0; kk < BK; kk += 8) {
                        unsigned af[MI][4], bf[NJ][2];
#pragma unroll
                        for (int i = 0; i < MI; ++i) {
                            const int r = wm + i * 16 + g;
                            af[i][0] = __float_as_uint(as[(kk + t) * LDS + r]);
                            af[i][1] = __float_as_uint(as[(kk + t) * LDS + r + 8]);
                            af[i][2] = __float_as_uint(as[(kk + t + 4) * LDS + r]);
                            af[i][3] = __float_as_uint(as[(kk + t + 4) * LDS + r + 8]);
                        }
#pragma unroll
                        for (int j = 0; j < NJ; ++j) {
                            const int c = wn + j * 8 + g;
                            bf[j][0] = __float_as_uint(bs[(kk + t) * LDS + c]);
                            bf[j][1] = __float_as_uint(bs[(kk + t + 4) * LDS + c]);
                        }
#pragma unroll
                        for (int i = 0; i < MI; ++i)
#pragma unroll
                            for (int j = 0; j < NJ; ++j) dt_mma_m16n8k8_tf32(acc[i][j], af[i], bf[j]);
                    }
                    if (more) {
                        la.template store<LDS, true>(As[cur ^ 1], tid);
                        lb.template store<LDS, true>(Bs[cur ^ 1], tid);
                    }
                    __syncthreads();
                    cur ^= 1;
                }

#pragma unroll
                for (int i = 0; i < MI; ++i) {
#pragma unroll
                    for (int j = 0; j < NJ; ++j) {
                        const int row = m0 + wm + i * 16 + g;
                        const int col = n0 + wn + j * 8 + 2 * t;
#pragma unroll
                        for (int h = 0; h < 2; ++h) {
                            const int rr = row + 8 * h;
                            if (rr >= M) continue;
                            float* p = Cb + (long long)rr * ldc + col;
#pragma unroll
                            for (int q = 0; q < 2; ++q) {
                                if (col + q < N) {
                                    const float v = acc[i][j][2 * h + q];
                                    p[q] = (beta != 0.f) ? fmaf(alpha, v, beta * p[q]) : alpha * v;
                                }
                            }
                        }
                    }
                }
            }
        }
    }
#else
    __trap();  // tf32 mma.sync needs sm_80; launch_config never selects this kernel below that
#endif
}
