// devtensor recurrent cells (float32 and float64): the pointwise part of one LSTM / GRU step, forward and
// backward, each ONE kernel where the array code runs a dozen elementwise ops.  The GEMMs of a step
// (h @ W_hh^T, dgates @ W_hh) stay with cuBLAS; the time loops are devtensor/backends/cuda/rnn.py.  Launch
// geometry: launch_config() in devtensor/backends/cuda/kernel_build.py; array-level wrappers:
// devtensor/backends/cuda/kernels.py.  The math is the cpu kernels' (backends/cpu/rnn_kernels.py) and the
// portable tier's (backends/rnn_portable.py): gate order i, f, g, o (LSTM) and r, z, n (GRU).
//
// Every matrix is (n rows, columns) with its own row stride (ld*, in elements), so a step reads and writes
// slices of the sequence buffers (xw[t], ws[t], y[t]) in place.  One thread per (row, hidden unit),
// grid-stride: any grid size is correct.  Arguments documented "may alias" are read before they are
// written, by the same thread and element, so the state buffers update in place; they carry no
// __restrict__.  Optional arguments come with an int flag (any valid pointer when the flag is 0), as in
// optim.cu.
//
// NVRTC rules: no std headers; long long instead of int64_t.  CuPy compiles with -ftz=true.

#ifndef DT_EMULATE
#define DT_DEVICE __device__ __forceinline__
#endif

#define DT_FOR_FLAT(i, n) \
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (long long)gridDim.x * blockDim.x)

DT_DEVICE float dt_exp(float x) { return expf(x); }
DT_DEVICE double dt_exp(double x) { return exp(x); }
DT_DEVICE float dt_tanh(float x) { return tanhf(x); }
DT_DEVICE double dt_tanh(double x) { return tanh(x); }

// exp(-|v|) never overflows, so both branches stay finite for any v (the portable tier's formula).
template <typename T>
DT_DEVICE T dt_sigmoid(T v) {
    const T e = dt_exp(v >= T(0) ? -v : v);
    return v >= T(0) ? T(1) / (T(1) + e) : e / (T(1) + e);
}

// LSTM step forward: gates = gx + gh (n, 4H).  c (in, c_{t-1}) and c_new (out) may alias; h (out).
// acts (out, row of >= 5H): i, f, g, o, tanh(c_new), and c_new at 5H when save_c (the sequence's ws rows).
// has_y: h is also written to y (the sequence output).
template <typename T>
__global__ void dt_lstm_cell_fwd(const T* __restrict__ gx, long long ldgx, const T* __restrict__ gh, long long ldgh,
                                 const T* c, long long ldc, T* c_new, long long ldcn, T* __restrict__ h,
                                 long long ldh, T* __restrict__ y, long long ldy, int has_y, T* __restrict__ acts,
                                 long long lda, int save_c, long long n, int H) {
    DT_FOR_FLAT(e, n * H) {
        const long long b = e / H;
        const int j = (int)(e - b * H);
        const T* ax = gx + b * ldgx + j;
        const T* ah = gh + b * ldgh + j;
        const T i = dt_sigmoid(ax[0] + ah[0]);
        const T f = dt_sigmoid(ax[H] + ah[H]);
        const T g = dt_tanh(ax[2 * H] + ah[2 * H]);
        const T o = dt_sigmoid(ax[3 * H] + ah[3 * H]);
        const T cn = f * c[b * ldc + j] + i * g;
        const T tc = dt_tanh(cn);
        const T hv = o * tc;
        T* a = acts + b * lda + j;
        a[0] = i;
        a[H] = f;
        a[2 * H] = g;
        a[3 * H] = o;
        a[4 * H] = tc;
        if (save_c) a[5 * H] = cn;
        c_new[b * ldcn + j] = cn;
        h[b * ldh + j] = hv;
        if (has_y) y[b * ldy + j] = hv;
    }
}

// LSTM step backward: dh (n, H; plus gy when has_gy) and dc (when has_dc) at the cell's outputs -> dgates
// (n, 4H) and dc_prev.  acts: the forward's i, f, g, o, tanh(c_new); c_prev: c_{t-1}.  dc and dc_prev may
// alias (the sequence's dc state).
template <typename T>
__global__ void dt_lstm_cell_bwd(const T* __restrict__ dh, long long lddh, int has_dh, const T* __restrict__ gy,
                                 long long ldgy, int has_gy, const T* dc, long long lddc, int has_dc,
                                 const T* __restrict__ acts, long long lda, const T* __restrict__ c_prev,
                                 long long ldcp, T* __restrict__ dgates, long long ldg, T* dc_prev,
                                 long long lddcp, long long n, int H) {
    DT_FOR_FLAT(e, n * H) {
        const long long b = e / H;
        const int j = (int)(e - b * H);
        const T* a = acts + b * lda + j;
        const T i = a[0], f = a[H], g = a[2 * H], o = a[3 * H], tc = a[4 * H];
        T d_h = has_dh ? dh[b * lddh + j] : T(0);
        if (has_gy) d_h += gy[b * ldgy + j];
        T dcn = d_h * o * (T(1) - tc * tc);
        if (has_dc) dcn += dc[b * lddc + j];
        T* dg = dgates + b * ldg + j;
        dg[0] = dcn * g * i * (T(1) - i);
        dg[H] = dcn * c_prev[b * ldcp + j] * f * (T(1) - f);
        dg[2 * H] = dcn * i * (T(1) - g * g);
        dg[3 * H] = d_h * tc * o * (T(1) - o);
        dc_prev[b * lddcp + j] = dcn * f;
    }
}

// GRU step forward: gx = x W_ih^T + b_ih, gh = h W_hh^T (+ b_hh when has_bhh) (n, 3H, order r, z, n).
// h (in, h_{t-1}) and h_new (out) may alias; has_y: h_new also to y.  acts (out, n x 4H): r, z, n and
// the hidden part of the n gate (gh's n block with b_hh), what the backward needs.
template <typename T>
__global__ void dt_gru_cell_fwd(const T* __restrict__ gx, long long ldgx, const T* __restrict__ gh, long long ldgh,
                                const T* __restrict__ b_hh, int has_bhh, const T* h, long long ldh, T* h_new,
                                long long ldhn, T* __restrict__ y, long long ldy, int has_y, T* __restrict__ acts,
                                long long lda, long long n, int H) {
    DT_FOR_FLAT(e, n * H) {
        const long long b = e / H;
        const int j = (int)(e - b * H);
        const T* ax = gx + b * ldgx + j;
        const T* ah = gh + b * ldgh + j;
        T hr = ah[0], hz = ah[H], hn = ah[2 * H];
        if (has_bhh) {
            hr += b_hh[j];
            hz += b_hh[H + j];
            hn += b_hh[2 * H + j];
        }
        const T r = dt_sigmoid(ax[0] + hr);
        const T z = dt_sigmoid(ax[H] + hz);
        const T nn = dt_tanh(ax[2 * H] + r * hn);
        const T hv = (T(1) - z) * nn + z * h[b * ldh + j];
        T* a = acts + b * lda + j;
        a[0] = r;
        a[H] = z;
        a[2 * H] = nn;
        a[3 * H] = hn;
        h_new[b * ldhn + j] = hv;
        if (has_y) y[b * ldy + j] = hv;
    }
}

// GRU step backward: dh (n, H; plus gy when has_gy) at the output -> dgx (n, 3H: the pre-activations'
// gradient, input side), dgh (n, 3H: the hidden side, dn * r in the n block) and dh_direct = z * dh, the
// part of dh_{t-1} that does not go through W_hh.  dh and dh_direct may alias (the sequence's dh state).
template <typename T>
__global__ void dt_gru_cell_bwd(const T* dh, long long lddh, const T* __restrict__ gy, long long ldgy, int has_gy,
                                const T* __restrict__ acts, long long lda, const T* __restrict__ h_prev,
                                long long ldhp, T* __restrict__ dgx, long long ldgx, T* __restrict__ dgh,
                                long long ldgh, T* dh_direct, long long lddd, long long n, int H) {
    DT_FOR_FLAT(e, n * H) {
        const long long b = e / H;
        const int j = (int)(e - b * H);
        const T* a = acts + b * lda + j;
        const T r = a[0], z = a[H], nn = a[2 * H], hn = a[3 * H];
        T d = dh[b * lddh + j];
        if (has_gy) d += gy[b * ldgy + j];
        const T dn = d * (T(1) - z) * (T(1) - nn * nn);
        const T dz = d * (h_prev[b * ldhp + j] - nn) * z * (T(1) - z);
        const T dr = dn * hn * r * (T(1) - r);
        T* ox = dgx + b * ldgx + j;
        T* oh = dgh + b * ldgh + j;
        ox[0] = dr;
        ox[H] = dz;
        ox[2 * H] = dn;
        oh[0] = dr;
        oh[H] = dz;
        oh[2 * H] = dn * r;
        dh_direct[b * lddd + j] = d * z;
    }
}
