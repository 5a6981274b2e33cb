// devtensor 2-D pooling kernels (float32, NCHW): max pooling (+ indices) and average pooling with PyTorch's
// divisor rules, forward and backward.  Launch geometry: launch_config() in
// devtensor/backends/cuda/kernel_build.py; array-level wrappers: devtensor/backends/cuda/kernels.py.
//
// Pooling runs over planes = N*C of H x W (NCHW, contiguous).  Output sizes come from the caller
// (ceil_mode is folded into OH / OW).  One thread per output (forward, max backward) or per input
// element (avg backward), grid-stride: any grid size is correct.
//
// NVRTC rules: no std headers; long long instead of int64_t.  CuPy compiles with -ftz=true.

#ifndef DT_EMULATE
#define DT_DEVICE __device__ __forceinline__
#endif

#define DT_INF __int_as_float(0x7f800000)   // NVRTC has no math.h: no INFINITY
#define DT_FOR_FLAT(i, n) \
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (long long)gridDim.x * blockDim.x)

// y = max over the window, idx = h * W + w of the (first) maximum; NaN wins.
extern "C" __global__ void dt_max_pool2d_fwd(const float* __restrict__ x, float* __restrict__ y,
                                             long long* __restrict__ idx, int planes, int H, int W, int OH, int OW,
                                             int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw) {
    const long long total = (long long)planes * OH * OW;
    DT_FOR_FLAT(o, total) {
        const int ow = (int)(o % OW);
        const int oh = (int)((o / OW) % OH);
        const long long plane = o / ((long long)OH * OW);
        const float* xp = x + plane * H * W;
        const int hs = oh * sh - ph, ws = ow * sw - pw;
        float best = -DT_INF;
        long long bi = -1;
        for (int i = 0; i < kh; ++i) {
            const int h = hs + i * dh;
            if (h < 0 || h >= H) continue;
            for (int j = 0; j < kw; ++j) {
                const int w = ws + j * dw;
                if (w < 0 || w >= W) continue;
                const float v = xp[h * W + w];
                if (bi < 0 || v > best || v != v) {
                    best = v;
                    bi = (long long)h * W + w;
                    if (v != v) { i = kh; break; }
                }
            }
        }
        y[o] = best;
        idx[o] = bi < 0 ? 0 : bi;
    }
}

// dx[plane, idx[o]] += dy[o]; dx must be zeroed by the caller (windows may overlap: atomicAdd).
extern "C" __global__ void dt_max_pool2d_bwd(const float* __restrict__ dy, const long long* __restrict__ idx,
                                             float* __restrict__ dx, int planes, int H, int W, int OH, int OW) {
    const long long total = (long long)planes * OH * OW;
    const long long hw = (long long)H * W;
    DT_FOR_FLAT(o, total) {
        const long long plane = o / ((long long)OH * OW);
        const long long k = idx[o];
        if (k >= 0 && k < hw) atomicAdd(dx + plane * hw + k, dy[o]);
    }
}

// PyTorch's window and divisor: the window is clipped to [-p, L + p) for the pool size, then to the image.
DT_DEVICE int dt_avg_divisor(int hs, int ws, int kh, int kw, int H, int W, int ph, int pw, int count_include_pad,
                             int divisor_override, int& h0, int& h1, int& w0, int& w1) {
    h1 = min(hs + kh, H + ph);
    w1 = min(ws + kw, W + pw);
    const int pool = (h1 - hs) * (w1 - ws);
    h0 = max(hs, 0); w0 = max(ws, 0);
    h1 = min(h1, H); w1 = min(w1, W);
    if (divisor_override) return divisor_override;
    return count_include_pad ? pool : (h1 - h0) * (w1 - w0);
}

extern "C" __global__ void dt_avg_pool2d_fwd(const float* __restrict__ x, float* __restrict__ y, int planes, int H,
                                             int W, int OH, int OW, int kh, int kw, int sh, int sw, int ph, int pw,
                                             int count_include_pad, int divisor_override) {
    const long long total = (long long)planes * OH * OW;
    DT_FOR_FLAT(o, total) {
        const int ow = (int)(o % OW);
        const int oh = (int)((o / OW) % OH);
        const long long plane = o / ((long long)OH * OW);
        int h0, h1, w0, w1;
        const int div = dt_avg_divisor(oh * sh - ph, ow * sw - pw, kh, kw, H, W, ph, pw, count_include_pad,
                                       divisor_override, h0, h1, w0, w1);
        if (h0 >= h1 || w0 >= w1) { y[o] = 0.f; continue; }
        const float* xp = x + plane * H * W;
        float s = 0.f;
        for (int h = h0; h < h1; ++h)
            for (int w = w0; w < w1; ++w) s += xp[h * W + w];
        y[o] = s / (float)div;
    }
}

// dx[plane, h, w] = sum over the windows covering (h, w) of dy / divisor (a gather: deterministic).
extern "C" __global__ void dt_avg_pool2d_bwd(const float* __restrict__ dy, float* __restrict__ dx, int planes, int H,
                                             int W, int OH, int OW, int kh, int kw, int sh, int sw, int ph, int pw,
                                             int count_include_pad, int divisor_override) {
    const long long total = (long long)planes * H * W;
    DT_FOR_FLAT(e, total) {
        const int w = (int)(e % W) + pw;
        const int h = (int)((e / W) % H) + ph;
        const long long plane = e / ((long long)H * W);
        const int oh0 = (h < kh) ? 0 : (h - kh) / sh + 1, oh1 = min(h / sh + 1, OH);
        const int ow0 = (w < kw) ? 0 : (w - kw) / sw + 1, ow1 = min(w / sw + 1, OW);
        const float* gp = dy + plane * OH * OW;
        float s = 0.f;
        for (int oh = oh0; oh < oh1; ++oh) {
            for (int ow = ow0; ow < ow1; ++ow) {
                int h0, h1, w0, w1;
                const int div = dt_avg_divisor(oh * sh - ph, ow * sw - pw, kh, kw, H, W, ph, pw, count_include_pad,
                                               divisor_override, h0, h1, w0, w1);
                if (h0 >= h1 || w0 >= w1) continue;
                s += gp[oh * OW + ow] / (float)div;
            }
        }
        dx[e] = s;
    }
}
