// devtensor fused optimizer steps (float32, in place, elementwise): torch.optim.Adam / AdamW and
// torch.optim.SGD single-tensor steps, and Adagrad, Adadelta, Adamax, NAdam, RAdam, Rprop and ASGD
// through one template driver (dt_optim_step<Op>); float4 path when every buffer is 16-byte aligned.  Launch geometry:
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


// ---- Adagrad, Adadelta, Adamax, NAdam, RAdam, Rprop, ASGD ------------------------------------------
// One driver, one functor per step. The scalars h[] and the flag bits come from the host in the order
// STEPS[name].scalars returns them (devtensor/backends/optim_portable.py: that module's array-level
// steps are the reference these functors transcribe); flag bit 0 is always `maximize`.

struct DtStepScalars {
    float h[12];
    int flags;
    DT_DEVICE bool flag(int bit) const { return (flags >> bit) & 1; }
    DT_DEVICE float grad(float g) const { return flag(0) ? -g : g; }
};

// torch.lerp as ATen computes it: the small-weight form below |w| < 0.5 (decided on the host: flag 1)
DT_DEVICE float dt_lerp(const DtStepScalars& s, float a, float b, float w, float omw) {
    return s.flag(1) ? a + w * (b - a) : b - (b - a) * omw;
}

struct DtAdagrad {  // h: -lr (decayed), eps, weight_decay
    static constexpr int kStates = 1;
    DT_DEVICE void operator()(const DtStepScalars& s, float& p, float g, float& sum, float&) const {
        g = s.grad(g);
        if (s.h[2] != 0.f) g = g + s.h[2] * p;
        sum = sum + g * g;
        p = p + s.h[0] * g / (sqrtf(sum) + s.h[1]);
    }
};

struct DtAdadelta {  // h: -lr, rho, 1 - rho, eps, weight_decay
    static constexpr int kStates = 2;
    DT_DEVICE void operator()(const DtStepScalars& s, float& p, float g, float& sq, float& acc) const {
        g = s.grad(g);
        if (s.h[4] != 0.f) g = g + s.h[4] * p;
        sq = sq * s.h[1] + s.h[2] * g * g;
        const float delta = sqrtf(acc + s.h[3]) / sqrtf(sq + s.h[3]) * g;
        acc = acc * s.h[1] + s.h[2] * delta * delta;
        p = p + s.h[0] * delta;
    }
};

struct DtAdamax {  // h: -lr / (1 - beta1^t), w = 1 - beta1, 1 - w, beta2, eps, weight_decay
    static constexpr int kStates = 2;
    DT_DEVICE void operator()(const DtStepScalars& s, float& p, float g, float& m, float& u) const {
        g = s.grad(g);
        if (s.h[5] != 0.f) g = g + s.h[5] * p;
        m = dt_lerp(s, m, g, s.h[1], s.h[2]);
        u = u * s.h[3];
        const float a = fabsf(g) + s.h[4];
        if (a > u || a != a) u = a;  // torch.maximum: NaN wins (fmaxf would drop it)
        p = p + s.h[0] * m / u;
    }
};

// NAdam's and RAdam's shared start: decoupled decay (h[6] != 1), L2 decay (h[5]), Adam's moments;
// h: w = 1 - beta1, 1 - w, beta2, 1 - beta2, eps, weight_decay, decay, ...
DT_DEVICE float dt_adam_moments(const DtStepScalars& s, float& p, float g, float& m, float& v) {
    g = s.grad(g);
    if (s.h[6] != 1.f) p = p * s.h[6];
    if (s.h[5] != 0.f) g = g + s.h[5] * p;
    m = dt_lerp(s, m, g, s.h[0], s.h[1]);
    v = v * s.h[2] + s.h[3] * g * g;
    return g;
}

struct DtNadam {  // h[7..9]: 1 - beta2^t, the gradient's and exp_avg's coefficients (from mu_product)
    static constexpr int kStates = 2;
    DT_DEVICE void operator()(const DtStepScalars& s, float& p, float g, float& m, float& v) const {
        g = dt_adam_moments(s, p, g, m, v);
        const float denom = sqrtf(v / s.h[7]) + s.h[4];
        p = p + s.h[8] * g / denom;
        p = p + s.h[9] * m / denom;
    }
};

struct DtRadam {  // h[7..10]: 1 - beta1^t, lr, sqrt(1 - beta2^t), rect; flag 2: rho_t > 5 (rectified)
    static constexpr int kStates = 2;
    DT_DEVICE void operator()(const DtStepScalars& s, float& p, float g, float& m, float& v) const {
        dt_adam_moments(s, p, g, m, v);
        const float c = m / s.h[7] * s.h[8];
        p = s.flag(2) ? p - c * (s.h[9] / (sqrtf(v) + s.h[4])) * s.h[10] : p - c;
    }
};

struct DtRprop {  // h: etaminus, etaplus, step_size_min, step_size_max
    static constexpr int kStates = 2;
    DT_DEVICE void operator()(const DtStepScalars& s, float& p, float g, float& prev, float& ss) const {
        g = s.grad(g);
        const float sg = g * prev;
        float st;
        if (sg > 0.f) st = ss * s.h[1];
        else if (sg < 0.f) { st = ss * s.h[0]; g = 0.f; }  // a sign change: no step, no sign memory
        else if (sg == 0.f) st = ss;
        else st = ss * sg;  // NaN: the factor is NaN, as torch.sign(NaN) leaves it
        if (st < s.h[2]) st = s.h[2];  // clamp_(min, max); NaN stays
        if (st > s.h[3]) st = s.h[3];
        ss = st;
        const float d = g > 0.f ? 1.f : (g < 0.f ? -1.f : g);  // torch.sign (0 and NaN pass through)
        p = p - d * st;
        prev = g;
    }
};

struct DtAsgd {  // h: -eta, 1 - lambd * eta, mu, weight_decay; flag 1: mu != 1 (average, else copy)
    static constexpr int kStates = 1;
    DT_DEVICE void operator()(const DtStepScalars& s, float& p, float g, float& ax, float&) const {
        g = s.grad(g);
        if (s.h[3] != 0.f) g = g + s.h[3] * p;
        p = p * s.h[1] + s.h[0] * g;
        ax = s.flag(1) ? ax + (p - ax) * s.h[2] : p;
    }
};

// s1 is read and written only when the step keeps two state arrays (any valid pointer otherwise).
template <class Op>
__global__ void dt_optim_step(float* __restrict__ p, const float* __restrict__ g, float* __restrict__ s0,
                              float* __restrict__ s1, long long n, float h0, float h1, float h2, float h3,
                              float h4, float h5, float h6, float h7, float h8, float h9, float h10, float h11,
                              int flags) {
    DtStepScalars s;
    s.h[0] = h0; s.h[1] = h1; s.h[2] = h2; s.h[3] = h3; s.h[4] = h4; s.h[5] = h5;
    s.h[6] = h6; s.h[7] = h7; s.h[8] = h8; s.h[9] = h9; s.h[10] = h10; s.h[11] = h11;
    s.flags = flags;
    const Op op{};
    const bool two = Op::kStates > 1;
    long long done = 0;
    if (dt_aligned16(p) && dt_aligned16(g) && dt_aligned16(s0) && (!two || dt_aligned16(s1))) {
        const long long n4 = n >> 2;
        DT_FOR_FLAT(i, n4) {
            float4 P = reinterpret_cast<float4*>(p)[i];
            const float4 G = reinterpret_cast<const float4*>(g)[i];
            float4 A = reinterpret_cast<float4*>(s0)[i];
            float4 B;
            if (two) B = reinterpret_cast<float4*>(s1)[i];
            else { B.x = 0.f; B.y = 0.f; B.z = 0.f; B.w = 0.f; }
            op(s, P.x, G.x, A.x, B.x);
            op(s, P.y, G.y, A.y, B.y);
            op(s, P.z, G.z, A.z, B.z);
            op(s, P.w, G.w, A.w, B.w);
            reinterpret_cast<float4*>(p)[i] = P;
            reinterpret_cast<float4*>(s0)[i] = A;
            if (two) reinterpret_cast<float4*>(s1)[i] = B;
        }
        done = n4 << 2;
    }
    DT_FOR_FLAT(k, n - done) {
        const long long i = done + k;
        float P = p[i], A = s0[i], B = two ? s1[i] : 0.f;
        op(s, P, g[i], A, B);
        p[i] = P; s0[i] = A;
        if (two) s1[i] = B;
    }
}
