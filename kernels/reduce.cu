// devtensor reduction-shaped kernels (float32): axis reductions and the fused softmax / log_softmax /
// logsumexp / cross-entropy rows (pooling: pooling.cu; optimizer steps: optim.cu).  Launch geometry:
// launch_config() in devtensor/backends/cuda/kernel_build.py; array-level wrappers:
// devtensor/backends/cuda/kernels.py.
//
// Row-wise kernels (last-dim reductions, softmax family, cross-entropy) work in one of two block shapes:
//   blockDim.x == 32        one warp per row, blockDim.y rows per block (warp shuffles only), or
//   blockDim.y == 1         one block per row (warp shuffles, then shared memory across warps).
// Rows are walked with a grid-stride loop, so any grid size is correct.
//
// NVRTC rules: no std headers; long long instead of int64_t.  CuPy compiles with -ftz=true.

#ifndef DT_EMULATE
#define DT_DEVICE __device__ __forceinline__
#endif

#define DT_FULL_MASK 0xffffffffu
#define DT_LLONG_MAX 0x7fffffffffffffffLL
#define DT_INF __int_as_float(0x7f800000)   // NVRTC has no math.h: no INFINITY / NAN
#define DT_NAN __int_as_float(0x7fffffff)

// ------------------------------------------------------------------------------------------------
// Device-side index errors (the same helper and record layout as index.cu).  A kernel that meets a
// data-dependent index out of range never reads or writes through it, and records the first such
// error of the device in err[4] = {op id, dimension, bad value, bound}: the atomicCAS on err[0]
// lets exactly one report win until the host reads and clears the record at its next
// synchronisation (kernels.take_device_error; op ids: kernels.DEVICE_ERROR_OPS).
#define DT_ERR_OP_CROSS_ENTROPY 1
DT_DEVICE void dt_report_index_error(long long* err, int op, int dim, long long value, long long bound) {
    if (atomicCAS(reinterpret_cast<unsigned long long*>(err), 0ull, (unsigned long long)op) == 0ull) {
        err[1] = dim;
        err[2] = value;
        err[3] = bound;
    }
}

// ------------------------------------------------------------------------------------------------
// shuffles of the small state structs used below
struct DtArg { float v; long long i; };           // argmax / argmin candidate
struct DtVar { long long n; float mean, m2; };     // Welford state
struct DtMS { float m, s; };                      // running max and sum of exp(x - max)

DT_DEVICE float dt_shfl_xor(float v, int m) { return __shfl_xor_sync(DT_FULL_MASK, v, m); }
DT_DEVICE long long dt_shfl_xor(long long v, int m) { return __shfl_xor_sync(DT_FULL_MASK, v, m); }
DT_DEVICE DtArg dt_shfl_xor(DtArg a, int m) {
    DtArg r; r.v = dt_shfl_xor(a.v, m); r.i = dt_shfl_xor(a.i, m); return r;
}
DT_DEVICE DtVar dt_shfl_xor(DtVar a, int m) {
    DtVar r; r.n = dt_shfl_xor(a.n, m); r.mean = dt_shfl_xor(a.mean, m); r.m2 = dt_shfl_xor(a.m2, m); return r;
}
DT_DEVICE DtMS dt_shfl_xor(DtMS a, int m) {
    DtMS r; r.m = dt_shfl_xor(a.m, m); r.s = dt_shfl_xor(a.s, m); return r;
}

// Reduce v over the threads that share a row (see the block shapes above); every such thread gets the
// result.  In block mode it must be reached by all threads of the block (it synchronizes).
template <class T, class F>
DT_DEVICE T dt_row_allreduce(T v, F combine) {
#pragma unroll
    for (int m = 16; m >= 1; m >>= 1) v = combine(v, dt_shfl_xor(v, m));
    if (blockDim.x == 32) return v;
    __shared__ T part[32];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = (blockDim.x + 31) >> 5;
    __syncthreads();  // a previous call may still be reading part[]
    if (lane == 0) part[warp] = v;
    __syncthreads();
    T r = part[0];
    for (int w = 1; w < nwarps; ++w) r = combine(r, part[w]);
    return r;
}

// ------------------------------------------------------------------------------------------------
// Reduction ops.  state_t: per-thread partial; push: add element v at index i; combine: merge two
// partials (associative and commutative, also for argmax ties: the smaller index wins); finish: the
// output from the state, the reduced length n and the variance correction.
DT_DEVICE float dt_max_nan(float a, float b) { return (a > b || a != a) ? a : b; }  // NaN propagates
DT_DEVICE float dt_min_nan(float a, float b) { return (a < b || a != a) ? a : b; }

struct dt_op_sum {
    typedef float state_t; typedef float out_t;
    DT_DEVICE static float init() { return 0.f; }
    DT_DEVICE static float push(float s, float v, long long) { return s + v; }
    DT_DEVICE float operator()(float a, float b) const { return a + b; }
    DT_DEVICE static float finish(float s, long long, float) { return s; }
};
struct dt_op_mean : dt_op_sum {
    DT_DEVICE static float finish(float s, long long n, float) { return s / (float)n; }
};
struct dt_op_max {
    typedef float state_t; typedef float out_t;
    DT_DEVICE static float init() { return -DT_INF; }
    DT_DEVICE static float push(float s, float v, long long) { return dt_max_nan(s, v); }
    DT_DEVICE float operator()(float a, float b) const { return dt_max_nan(a, b); }
    DT_DEVICE static float finish(float s, long long, float) { return s; }
};
struct dt_op_min {
    typedef float state_t; typedef float out_t;
    DT_DEVICE static float init() { return DT_INF; }
    DT_DEVICE static float push(float s, float v, long long) { return dt_min_nan(s, v); }
    DT_DEVICE float operator()(float a, float b) const { return dt_min_nan(a, b); }
    DT_DEVICE static float finish(float s, long long, float) { return s; }
};
// a beats b?  GREATER: argmax order, else argmin order; NaN beats everything; ties -> smaller index.
template <bool GREATER>
DT_DEVICE DtArg dt_arg_pick(DtArg a, DtArg b) {
    const bool an = a.v != a.v, bn = b.v != b.v;
    bool a_wins;
    if (an || bn) a_wins = an && (!bn || a.i < b.i);
    else if (a.v == b.v) a_wins = a.i < b.i;
    else a_wins = GREATER ? (a.v > b.v) : (a.v < b.v);
    return a_wins ? a : b;
}
struct dt_op_argmax {
    typedef DtArg state_t; typedef long long out_t;
    DT_DEVICE static DtArg init() { DtArg a; a.v = -DT_INF; a.i = DT_LLONG_MAX; return a; }
    DT_DEVICE static DtArg push(DtArg s, float v, long long i) { DtArg b; b.v = v; b.i = i; return dt_arg_pick<true>(s, b); }
    DT_DEVICE DtArg operator()(DtArg a, DtArg b) const { return dt_arg_pick<true>(a, b); }
    DT_DEVICE static long long finish(DtArg s, long long, float) { return s.i; }
};
struct dt_op_argmin {
    typedef DtArg state_t; typedef long long out_t;
    DT_DEVICE static DtArg init() { DtArg a; a.v = DT_INF; a.i = DT_LLONG_MAX; return a; }
    DT_DEVICE static DtArg push(DtArg s, float v, long long i) { DtArg b; b.v = v; b.i = i; return dt_arg_pick<false>(s, b); }
    DT_DEVICE DtArg operator()(DtArg a, DtArg b) const { return dt_arg_pick<false>(a, b); }
    DT_DEVICE static long long finish(DtArg s, long long, float) { return s.i; }
};
struct dt_op_var {  // Welford per thread, Chan et al. to merge
    typedef DtVar state_t; typedef float out_t;
    DT_DEVICE static DtVar init() { DtVar a; a.n = 0; a.mean = 0.f; a.m2 = 0.f; return a; }
    DT_DEVICE static DtVar push(DtVar s, float v, long long) {
        s.n += 1;
        const float d = v - s.mean;
        s.mean += d / (float)s.n;
        s.m2 = fmaf(d, v - s.mean, s.m2);
        return s;
    }
    DT_DEVICE DtVar operator()(DtVar a, DtVar b) const {
        if (a.n == 0) return b;
        if (b.n == 0) return a;
        DtVar r;
        r.n = a.n + b.n;
        const float fb = (float)b.n / (float)r.n;
        const float d = b.mean - a.mean;
        r.mean = fmaf(d, fb, a.mean);
        r.m2 = a.m2 + b.m2 + d * d * (float)a.n * fb;
        return r;
    }
    DT_DEVICE static float finish(DtVar s, long long n, float correction) {
        return s.m2 / fmaxf(0.f, (float)n - correction);
    }
};

// Partial state of one thread over x[0 .. len) (element k has index idx0 + k), threads t = 0 .. nt-1.
// 16-byte loads for the aligned body, scalar loads for the unaligned head and the tail.
template <class Op>
DT_DEVICE typename Op::state_t dt_partial(const float* __restrict__ x, long long len, long long idx0, int t, int nt) {
    typename Op::state_t s = Op::init();
    long long head = (long long)(((16u - ((unsigned)(unsigned long long)x & 15u)) & 15u) >> 2);
    if (head > len) head = len;
    for (long long k = t; k < head; k += nt) s = Op::push(s, x[k], idx0 + k);
    const long long nv = (len - head) >> 2;
    const float4* xv = reinterpret_cast<const float4*>(x + head);
    for (long long j = t; j < nv; j += nt) {
        const float4 q = xv[j];
        const long long k = idx0 + head + 4 * j;
        s = Op::push(s, q.x, k);
        s = Op::push(s, q.y, k + 1);
        s = Op::push(s, q.z, k + 2);
        s = Op::push(s, q.w, k + 3);
    }
    for (long long k = head + 4 * nv + t; k < len; k += nt) s = Op::push(s, x[k], idx0 + k);
    return s;
}

// y[row] = reduce(x[row, 0 .. R)) for row < outer (rows contiguous).
template <class Op>
__global__ void dt_reduce_lastdim(const float* __restrict__ x, typename Op::out_t* __restrict__ y, int outer,
                                  long long R, float correction) {
    const int tid = threadIdx.x, nt = blockDim.x;
    for (long long row = (long long)blockIdx.x * blockDim.y + threadIdx.y; row < outer;
         row += (long long)gridDim.x * blockDim.y) {
        typename Op::state_t s = dt_partial<Op>(x + row * R, R, 0, tid, nt);
        s = dt_row_allreduce(s, Op());
        if (tid == 0) y[row] = Op::finish(s, R, correction);
    }
}

// y[o, i] = reduce over r of x[o, r, i] (inner > 1).  Block (32, 8): 32 consecutive i, 8 threads along r.
template <class Op>
__global__ void dt_reduce_inner(const float* __restrict__ x, typename Op::out_t* __restrict__ y, int outer,
                                long long R, int inner, float correction) {
    typedef typename Op::state_t S;
    __shared__ S part[8][32];
    const int tx = threadIdx.x, ty = threadIdx.y;
    const int iblocks = (inner + 31) / 32;
    for (int o = blockIdx.y; o < outer; o += gridDim.y) {
        for (int ib = blockIdx.x; ib < iblocks; ib += gridDim.x) {
            const int i = ib * 32 + tx;
            S s = Op::init();
            if (i < inner) {
                const float* p = x + (long long)o * R * inner + i;
                for (long long r = ty; r < R; r += 8) s = Op::push(s, p[r * inner], r);
            }
            part[ty][tx] = s;
            __syncthreads();
            if (ty == 0) {
                for (int k = 1; k < 8; ++k) s = Op()(s, part[k][tx]);
                if (i < inner) y[(long long)o * inner + i] = Op::finish(s, R, correction);
            }
            __syncthreads();
        }
    }
}

// First pass for few long rows: block (split, row) reduces chunk `split` of row `row` into
// ws[row * splits + split] (a state_t array inside a byte buffer of outer * splits * 16 bytes).
template <class Op>
__global__ void dt_reduce_split_partial(const float* __restrict__ x, unsigned char* __restrict__ ws, int outer,
                                        long long R, int splits) {
    typedef typename Op::state_t S;
    S* out = reinterpret_cast<S*>(ws);
    long long chunk = (R + splits - 1) / splits;
    chunk = (chunk + 3) & ~3LL;  // keep chunk starts 16-byte aligned relative to the row
    for (int row = blockIdx.y; row < outer; row += gridDim.y) {
        for (int sp = blockIdx.x; sp < splits; sp += gridDim.x) {
            const long long beg = (long long)sp * chunk;
            const long long end = beg + chunk < R ? beg + chunk : R;
            S s = dt_partial<Op>(x + (long long)row * R + beg, end > beg ? end - beg : 0, beg, threadIdx.x, blockDim.x);
            s = dt_row_allreduce(s, Op());
            if (threadIdx.x == 0) out[(long long)row * splits + sp] = s;
        }
    }
}

// Second pass: y[row] = finish(combine of ws[row * splits .. + splits)).  Block (T, 1).
template <class Op>
__global__ void dt_reduce_split_final(const unsigned char* __restrict__ ws, typename Op::out_t* __restrict__ y,
                                      int outer, int splits, long long R, float correction) {
    typedef typename Op::state_t S;
    const S* in = reinterpret_cast<const S*>(ws);
    for (int row = blockIdx.x; row < outer; row += gridDim.x) {
        S s = Op::init();
        for (int j = threadIdx.x; j < splits; j += blockDim.x) s = Op()(s, in[(long long)row * splits + j]);
        s = dt_row_allreduce(s, Op());
        if (threadIdx.x == 0) y[row] = Op::finish(s, R, correction);
    }
}

// ------------------------------------------------------------------------------------------------
// softmax family.  Online max / sum: (m, s) with s = sum exp(x - m); equal maxima (also +-inf) merge
// without computing inf - inf, so an all -inf row gives logsumexp -inf and softmax nan (as PyTorch).
DT_DEVICE float dt_rescale(float s, float from, float to) { return from == to ? s : s * expf(from - to); }
DT_DEVICE DtMS dt_ms_push(DtMS a, float v) {
    if (v > a.m) { a.s = dt_rescale(a.s, a.m, v) + 1.f; a.m = v; }
    else if (v == a.m) a.s += 1.f;
    else a.s += expf(v - a.m);  // also NaN: poisons s
    return a;
}
struct DtMSCombine {
    DT_DEVICE DtMS operator()(DtMS a, DtMS b) const {
        DtMS r;
        r.m = fmaxf(a.m, b.m);
        r.s = dt_rescale(a.s, a.m, r.m) + dt_rescale(b.s, b.m, r.m);
        return r;
    }
};
struct DtSum {
    DT_DEVICE float operator()(float a, float b) const { return a + b; }
};

DT_DEVICE DtMS dt_row_ms(const float* __restrict__ xr, int cols) {
    DtMS a; a.m = -DT_INF; a.s = 0.f;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) a = dt_ms_push(a, xr[c]);
    return dt_row_allreduce(a, DtMSCombine());
}

#define DT_FOR_ROWS(row, rows) \
    for (long long row = (long long)blockIdx.x * blockDim.y + threadIdx.y; row < (rows); \
         row += (long long)gridDim.x * blockDim.y)

// y = softmax(x) or log_softmax(x) along each contiguous row of length cols.
extern "C" __global__ void dt_softmax_fwd(const float* __restrict__ x, float* __restrict__ y, int rows, int cols,
                                          int log_softmax) {
    DT_FOR_ROWS(row, rows) {
        const float* xr = x + row * cols;
        float* yr = y + row * cols;
        const DtMS ms = dt_row_ms(xr, cols);
        if (log_softmax) {
            const float off = ms.m + logf(ms.s);
            for (int c = threadIdx.x; c < cols; c += blockDim.x) yr[c] = xr[c] - off;
        } else {
            const float inv = 1.f / ms.s;
            for (int c = threadIdx.x; c < cols; c += blockDim.x) yr[c] = expf(xr[c] - ms.m) * inv;
        }
    }
}

// dx from y (the forward output) and dy:  softmax: y * (dy - sum(dy * y));  log_softmax: dy - exp(y) * sum(dy).
extern "C" __global__ void dt_softmax_bwd(const float* __restrict__ y, const float* __restrict__ dy,
                                          float* __restrict__ dx, int rows, int cols, int log_softmax) {
    DT_FOR_ROWS(row, rows) {
        const float* yr = y + row * cols;
        const float* gr = dy + row * cols;
        float* dr = dx + row * cols;
        float acc = 0.f;
        for (int c = threadIdx.x; c < cols; c += blockDim.x) acc += log_softmax ? gr[c] : gr[c] * yr[c];
        acc = dt_row_allreduce(acc, DtSum());
        if (log_softmax) {
            for (int c = threadIdx.x; c < cols; c += blockDim.x) dr[c] = gr[c] - expf(yr[c]) * acc;
        } else {
            for (int c = threadIdx.x; c < cols; c += blockDim.x) dr[c] = yr[c] * (gr[c] - acc);
        }
    }
}

// out[row] = log(sum(exp(x[row, :])))
extern "C" __global__ void dt_logsumexp(const float* __restrict__ x, float* __restrict__ out, int rows, int cols) {
    DT_FOR_ROWS(row, rows) {
        const DtMS ms = dt_row_ms(x + row * cols, cols);
        if (threadIdx.x == 0) out[row] = ms.m + logf(ms.s);
    }
}

// Cross-entropy per row with class weights w (has_weight), ignore_index and label smoothing eps:
//   loss = (1-eps) * w[t] * (lse - z[t]) + eps/C * sum_c w[c] * (lse - z[c]);  row_weight = w[t]
// (both 0 for an ignored row; nan for a target outside [0, C), which is also reported to err and never
// read through); lse = logsumexp(z) is stored for the backward.
extern "C" __global__ void dt_cross_entropy_fwd(const float* __restrict__ logits, const long long* __restrict__ target,
                                                const float* __restrict__ weight, float* __restrict__ loss,
                                                float* __restrict__ row_weight, float* __restrict__ lse_out,
                                                int rows, int C, int has_weight, long long ignore_index,
                                                float label_smoothing, long long* __restrict__ err) {
    DT_FOR_ROWS(row, rows) {
        const float* z = logits + row * C;
        const DtMS ms = dt_row_ms(z, C);
        const float lse = ms.m + logf(ms.s);
        const long long t = target[row];
        float smooth = 0.f;
        if (label_smoothing != 0.f) {  // uniform over the row: every thread takes part in the reduction
            for (int c = threadIdx.x; c < C; c += blockDim.x) smooth += (has_weight ? weight[c] : 1.f) * (lse - z[c]);
            smooth = dt_row_allreduce(smooth, DtSum());
        }
        if (threadIdx.x == 0) {
            float l, rw;
            if (t == ignore_index) {
                l = 0.f; rw = 0.f;
            } else if (t < 0 || t >= C) {
                l = DT_NAN; rw = DT_NAN;
                dt_report_index_error(err, DT_ERR_OP_CROSS_ENTROPY, 1, t, C);
            } else {
                rw = has_weight ? weight[t] : 1.f;
                l = (1.f - label_smoothing) * rw * (lse - z[t]) + (label_smoothing / (float)C) * smooth;
            }
            loss[row] = l;
            row_weight[row] = rw;
            lse_out[row] = lse;
        }
    }
}

// dlogits = grad[row * grad_stride] * ((1-eps) * w[t] * (p - onehot(t)) + eps/C * (W * p - w)),
// p = exp(z - lse), W = sum(w) (C without weights); 0 for ignored rows, nan for bad targets (reported to err).
extern "C" __global__ void dt_cross_entropy_bwd(const float* __restrict__ logits, const long long* __restrict__ target,
                                                const float* __restrict__ weight, const float* __restrict__ lse,
                                                const float* __restrict__ grad, long long grad_stride,
                                                float* __restrict__ dlogits, int rows, int C, int has_weight,
                                                long long ignore_index, float label_smoothing,
                                                long long* __restrict__ err) {
    DT_FOR_ROWS(row, rows) {
        const float* z = logits + row * C;
        float* d = dlogits + row * C;
        const long long t = target[row];
        float wsum = (float)C;
        if (has_weight && label_smoothing != 0.f) {
            float a = 0.f;
            for (int c = threadIdx.x; c < C; c += blockDim.x) a += weight[c];
            wsum = dt_row_allreduce(a, DtSum());
        }
        if (t == ignore_index || t < 0 || t >= C) {
            const float v = (t == ignore_index) ? 0.f : DT_NAN;
            if (t != ignore_index && threadIdx.x == 0) dt_report_index_error(err, DT_ERR_OP_CROSS_ENTROPY, 1, t, C);
            for (int c = threadIdx.x; c < C; c += blockDim.x) d[c] = v;
            continue;
        }
        const float g = grad[row * grad_stride];
        const float l = lse[row];
        const float wt = has_weight ? weight[t] : 1.f;
        const float a = (1.f - label_smoothing) * wt;
        const float b = label_smoothing / (float)C;
        for (int c = threadIdx.x; c < C; c += blockDim.x) {
            const float p = expf(z[c] - l);
            const float wc = has_weight ? weight[c] : 1.f;
            d[c] = g * (a * (p - (c == t ? 1.f : 0.f)) + b * (wsum * p - wc));
        }
    }
}
