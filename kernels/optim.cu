// devtensor fused optimizer steps (float32, in place, elementwise): torch.optim.Adam / AdamW and
// torch.optim.SGD single-tensor steps, float4 path when every buffer is 16-byte aligned.  Launch geometry:
// launch_config() in devtensor/backends/cuda/kernel_build.py; array-level wrappers:
// devtensor/backends/cuda/kernels.py.  Grid-stride loops: any grid size is correct.
//
// NVRTC rules: no std headers; long long instead of int64_t.  CuPy compiles with -ftz=true.

#ifndef DT_EMULATE
#define DT_DEVICE __device__ __forceinline__
#endif

#define DT_FOR_FLAT(i, n) \
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (long long)gridDim.x * blockDim.x)

DT_DEVICE bool dt_aligned16(const void* p) { return ((unsigned long long)p & 15ull) == 0; }

struct DtAdam {
    float lr, beta1, beta2, eps, wd, step_size, bc2_sqrt;
    int decoupled, amsgrad, maximize;
    DT_DEVICE void operator()(float& p, float g, float& m, float& v, float& vmax) const {
        if (maximize) g = -g;
        if (decoupled) p *= 1.f - lr * wd;
        else if (wd != 0.f) g = fmaf(wd, p, g);
        m = fmaf(1.f - beta1, g - m, m);               // exp_avg.lerp_(grad, 1 - beta1)
        v = fmaf(1.f - beta2, g * g, beta2 * v);       // exp_avg_sq * beta2 + (1 - beta2) * g^2
        float vv = v;
        if (amsgrad) { vmax = fmaxf(vmax, v); vv = vmax; }
        const float denom = sqrtf(vv) / bc2_sqrt + eps;
        p = fmaf(-step_size, m / denom, p);
    }
};

// torch.optim.Adam / AdamW step.  step_size = lr / (1 - beta1^t), bc2_sqrt = sqrt(1 - beta2^t) (host).
// vmax is read and written only when amsgrad (any valid pointer otherwise).
extern "C" __global__ void dt_adam_step(float* __restrict__ p, const float* __restrict__ g, float* __restrict__ m,
                                        float* __restrict__ v, float* __restrict__ vmax, long long n, float lr,
                                        float beta1, float beta2, float eps, float weight_decay, float step_size,
                                        float bc2_sqrt, int decoupled, int amsgrad, int maximize) {
    DtAdam op;
    op.lr = lr; op.beta1 = beta1; op.beta2 = beta2; op.eps = eps; op.wd = weight_decay;
    op.step_size = step_size; op.bc2_sqrt = bc2_sqrt;
    op.decoupled = decoupled; op.amsgrad = amsgrad; op.maximize = maximize;
    long long done = 0;
    if (dt_aligned16(p) && dt_aligned16(g) && dt_aligned16(m) && dt_aligned16(v) && (!amsgrad || dt_aligned16(vmax))) {
        const long long n4 = n >> 2;
        DT_FOR_FLAT(i, n4) {
            float4 P = reinterpret_cast<float4*>(p)[i];
            const float4 G = reinterpret_cast<const float4*>(g)[i];
            float4 Mv = reinterpret_cast<float4*>(m)[i];
            float4 V = reinterpret_cast<float4*>(v)[i];
            float4 X;
            if (amsgrad) X = reinterpret_cast<float4*>(vmax)[i];
            else { X.x = 0.f; X.y = 0.f; X.z = 0.f; X.w = 0.f; }
            op(P.x, G.x, Mv.x, V.x, X.x);
            op(P.y, G.y, Mv.y, V.y, X.y);
            op(P.z, G.z, Mv.z, V.z, X.z);
            op(P.w, G.w, Mv.w, V.w, X.w);
            reinterpret_cast<float4*>(p)[i] = P;
            reinterpret_cast<float4*>(m)[i] = Mv;
            reinterpret_cast<float4*>(v)[i] = V;
            if (amsgrad) reinterpret_cast<float4*>(vmax)[i] = X;
        }
        done = n4 << 2;
    }
    DT_FOR_FLAT(k, n - done) {
        const long long i = done + k;
        float P = p[i], Mv = m[i], V = v[i], X = amsgrad ? vmax[i] : 0.f;
        op(P, g[i], Mv, V, X);
        p[i] = P; m[i] = Mv; v[i] = V;
        if (amsgrad) vmax[i] = X;
    }
}

struct DtSgd {
    float lr, momentum, dampening, wd;
    int nesterov, maximize, first;
    DT_DEVICE void operator()(float& p, float g, float& buf) const {
        float d = maximize ? -g : g;
        if (wd != 0.f) d = fmaf(wd, p, d);
        if (momentum != 0.f) {
            const float b = first ? d : fmaf(momentum, buf, (1.f - dampening) * d);
            buf = b;
            d = nesterov ? fmaf(momentum, b, d) : b;
        }
        p = fmaf(-lr, d, p);
    }
};

// torch.optim.SGD step; buf (the momentum buffer) is used only when momentum != 0; first_step
// initialises it to the gradient (PyTorch's first step).
extern "C" __global__ void dt_sgd_step(float* __restrict__ p, const float* __restrict__ g, float* __restrict__ buf,
                                       long long n, float lr, float momentum, float dampening, float weight_decay,
                                       int nesterov, int maximize, int first_step) {
    DtSgd op;
    op.lr = lr; op.momentum = momentum; op.dampening = dampening; op.wd = weight_decay;
    op.nesterov = nesterov; op.maximize = maximize; op.first = first_step;
    const bool use_buf = momentum != 0.f;
    long long done = 0;
    if (dt_aligned16(p) && dt_aligned16(g) && (!use_buf || dt_aligned16(buf))) {
        const long long n4 = n >> 2;
        DT_FOR_FLAT(i, n4) {
            float4 P = reinterpret_cast<float4*>(p)[i];
            const float4 G = reinterpret_cast<const float4*>(g)[i];
            float4 B;
            if (use_buf) B = reinterpret_cast<float4*>(buf)[i];
            else { B.x = 0.f; B.y = 0.f; B.z = 0.f; B.w = 0.f; }
            op(P.x, G.x, B.x);
            op(P.y, G.y, B.y);
            op(P.z, G.z, B.z);
            op(P.w, G.w, B.w);
            reinterpret_cast<float4*>(p)[i] = P;
            if (use_buf) reinterpret_cast<float4*>(buf)[i] = B;
        }
        done = n4 << 2;
    }
    DT_FOR_FLAT(k, n - done) {
        const long long i = done + k;
        float P = p[i], B = use_buf ? buf[i] : 0.f;
        op(P, g[i], B);
        p[i] = P;
        if (use_buf) buf[i] = B;
    }
}
