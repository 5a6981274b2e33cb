// CPU emulator for devtensor's CUDA C kernels (a CI aid; not shipped in the wheel).
// build.py compiles each kernels/*.cu with g++ after this header.  Threads of a block are ucontext
// fibers, run one block at a time; __syncthreads and the warp collectives (__shfl_*_sync,
// __syncwarp, mma.sync) are real barriers, so a divergent barrier is reported as a deadlock.
// __shared__ becomes `static` (blocks run one after another, so a function-static is per-block
// storage).  Atomics are plain read-modify-writes (fibers never preempt each other).
// EMU_ORDER=0|1|2 picks the order fibers run between barriers (in order, reversed, odd first):
// results that change with it reveal a missing barrier.
#pragma once
#include <ucontext.h>
#include <math.h>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#define DT_EMULATE 1
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static
#define __align__(n) __attribute__((aligned(n)))
#define DT_DEVICE inline

struct dim3 {
    unsigned x, y, z;
    dim3(unsigned a = 1, unsigned b = 1, unsigned c = 1) : x(a), y(b), z(c) {}
};
struct alignas(16) float4 { float x, y, z, w; };
struct alignas(8) float2 { float x, y; };
inline float4 make_float4(float a, float b, float c, float d) { return {a, b, c, d}; }
inline float2 make_float2(float a, float b) { return {a, b}; }

namespace emu {
enum St { RUN, BAR, WBAR, DONE };
struct Fiber { ucontext_t ctx; St st; dim3 tid; int lin; };
inline std::vector<Fiber> fibers;
inline std::vector<char*> stacks;
inline ucontext_t sched;
inline int cur = 0;
inline dim3 g_block, g_grid, g_bidx;
inline std::function<void()>* g_body = nullptr;
inline std::vector<unsigned long long> slots;       // shuffle exchange, one per thread
inline std::vector<float> mmaA, mmaB;                // per-warp mma staging
constexpr size_t STACK = 256 * 1024;
inline long long n_launches = 0, n_blocks = 0;
inline std::string fail_msg;
[[noreturn]] inline void die(const char* m) { fprintf(stderr, "EMU FATAL: %s\n", m); fflush(stderr); abort(); }

inline void entry() {
    (*g_body)();
    fibers[cur].st = DONE;
    swapcontext(&fibers[cur].ctx, &sched);
}
inline void yield_as(St s) { fibers[cur].st = s; swapcontext(&fibers[cur].ctx, &sched); }
inline void syncthreads() { yield_as(BAR); }
inline void warpsync() { yield_as(WBAR); }

inline void run_block(int nthreads) {
    if ((int)stacks.size() < nthreads) {
        while ((int)stacks.size() < nthreads) stacks.push_back((char*)malloc(STACK));
    }
    fibers.assign(nthreads, Fiber{});
    slots.assign(((nthreads + 31) / 32) * 32, 0);
    mmaA.assign(((nthreads + 31) / 32) * 16 * 8, 0.f);
    mmaB.assign(((nthreads + 31) / 32) * 8 * 8, 0.f);
    for (int i = 0; i < nthreads; ++i) {
        Fiber& f = fibers[i];
        f.lin = i;
        f.tid = dim3(i % g_block.x, (i / g_block.x) % g_block.y, i / (g_block.x * g_block.y));
        f.st = RUN;
        getcontext(&f.ctx);
        f.ctx.uc_stack.ss_sp = stacks[i];
        f.ctx.uc_stack.ss_size = STACK;
        f.ctx.uc_link = &sched;
        makecontext(&f.ctx, (void (*)())entry, 0);
    }
    for (;;) {
        static const int order = getenv("EMU_ORDER") ? atoi(getenv("EMU_ORDER")) : 0;
        for (int q = 0; q < nthreads; ++q) {
            // 0: in order; 1: reversed; 2: odd threads first then even (reversed)
            int i = order == 0 ? q : order == 1 ? nthreads - 1 - q : (q < nthreads / 2 ? 2 * q + 1 : 2 * (nthreads - 1 - q));
            if (i >= nthreads) i = nthreads - 1 - q;
            if (fibers[i].st == RUN) { cur = i; swapcontext(&sched, &fibers[i].ctx); }
        }
        int done = 0, bar = 0, wbar = 0;
        for (auto& f : fibers) { done += f.st == DONE; bar += f.st == BAR; wbar += f.st == WBAR; }
        if (done == nthreads) return;
        bool released = false;
        for (int w = 0; w * 32 < nthreads; ++w) {
            int live = 0, at = 0;
            for (int l = w * 32; l < std::min(nthreads, w * 32 + 32); ++l) {
                live += fibers[l].st != DONE; at += fibers[l].st == WBAR;
            }
            if (at > 0 && at == live) {
                for (int l = w * 32; l < std::min(nthreads, w * 32 + 32); ++l)
                    if (fibers[l].st == WBAR) fibers[l].st = RUN;
                released = true;
            }
        }
        if (released) continue;
        if (bar + done == nthreads) {
            for (auto& f : fibers) if (f.st == BAR) f.st = RUN;
            continue;
        }
        die("deadlock: threads wait at different barriers (divergent __syncthreads or warp collective)");
    }
}

inline void launch(dim3 grid, dim3 block, std::function<void()> body) {
    if (grid.x == 0 || grid.y == 0 || grid.z == 0) die("launch with an empty grid");
    if (block.x * block.y * block.z > 1024) die("more than 1024 threads per block");
    if (grid.y > 65535 || grid.z > 65535) die("grid y/z over 65535");
    n_launches++;
    g_grid = grid; g_block = block; g_body = &body;
    for (unsigned z = 0; z < grid.z; ++z)
        for (unsigned y = 0; y < grid.y; ++y)
            for (unsigned x = 0; x < grid.x; ++x) {
                g_bidx = dim3(x, y, z);
                n_blocks++;
                run_block(block.x * block.y * block.z);
            }
}

inline int lane() { return fibers[cur].lin & 31; }
inline int warpbase() { return fibers[cur].lin & ~31; }
inline int nthreads() { return (int)fibers.size(); }

template <class T> T shfl_from(T v, int src_abs) {
    static_assert(sizeof(T) <= 8, "shuffle of >8 bytes");
    unsigned long long b = 0; memcpy(&b, &v, sizeof(T));
    slots[fibers[cur].lin] = b;
    warpsync();
    T r = v;
    if (src_abs < nthreads() && fibers[src_abs].st != DONE) memcpy(&r, &slots[src_abs], sizeof(T));
    warpsync();
    return r;
}
}  // namespace emu

#define threadIdx (emu::fibers[emu::cur].tid)
#define blockIdx (emu::g_bidx)
#define blockDim (emu::g_block)
#define gridDim (emu::g_grid)

inline void __syncthreads() { emu::syncthreads(); }
inline void __syncwarp(unsigned = 0xffffffffu) { emu::warpsync(); }
[[noreturn]] inline void __trap() { emu::die("__trap"); }
template <class T> inline T __ldg(const T* p) { return *p; }
inline unsigned __float_as_uint(float x) { unsigned u; memcpy(&u, &x, 4); return u; }
inline float __uint_as_float(unsigned u) { float x; memcpy(&x, &u, 4); return x; }
inline int __float_as_int(float x) { int u; memcpy(&u, &x, 4); return u; }
inline float __int_as_float(int u) { float x; memcpy(&x, &u, 4); return x; }
inline float __expf(float x) { return expf(x); }
inline float __logf(float x) { return logf(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float rsqrtf(float x) { return 1.f / sqrtf(x); }
template <class T> T __shfl_xor_sync(unsigned, T v, int m, int w = 32) {
    int l = emu::lane(); int src = (l & ~(w - 1)) | ((l ^ m) & (w - 1));
    return emu::shfl_from(v, emu::warpbase() + src);
}
template <class T> T __shfl_down_sync(unsigned, T v, unsigned d, int w = 32) {
    int l = emu::lane(); int seg = l & ~(w - 1); int src = l + (int)d;
    if (src >= seg + w) src = l;
    return emu::shfl_from(v, emu::warpbase() + src);
}
template <class T> T __shfl_sync(unsigned, T v, int s, int w = 32) {
    int l = emu::lane(); int src = (l & ~(w - 1)) + (s & (w - 1));
    return emu::shfl_from(v, emu::warpbase() + src);
}
inline float atomicAdd(float* p, float v) { float o = *p; *p = o + v; return o; }
inline double atomicAdd(double* p, double v) { double o = *p; *p = o + v; return o; }
inline int atomicAdd(int* p, int v) { int o = *p; *p = o + v; return o; }
inline unsigned atomicAdd(unsigned* p, unsigned v) { unsigned o = *p; *p = o + v; return o; }
inline unsigned long long atomicAdd(unsigned long long* p, unsigned long long v) { auto o = *p; *p = o + v; return o; }
inline int atomicCAS(int* p, int c, int v) { int o = *p; if (o == c) *p = v; return o; }
inline unsigned atomicCAS(unsigned* p, unsigned c, unsigned v) { unsigned o = *p; if (o == c) *p = v; return o; }
inline unsigned long long atomicCAS(unsigned long long* p, unsigned long long c, unsigned long long v) {
    auto o = *p; if (o == c) *p = v; return o;
}
inline int atomicMax(int* p, int v) { int o = *p; if (v > o) *p = v; return o; }
inline int atomicMin(int* p, int v) { int o = *p; if (v < o) *p = v; return o; }

// cvt.rna.tf32.f32: round to nearest, ties away from zero, keep 10 mantissa bits.
inline unsigned dt_f32_to_tf32(float x) {
    unsigned u = __float_as_uint(x);
    if ((u & 0x7f800000u) == 0x7f800000u) return u;  // inf / nan unchanged
    return (u + 0x1000u) & 0xffffe000u;
}
// mma.sync.m16n8k8 row.col tf32: fragments per the PTX ISA (g = lane/4, t = lane%4):
//   a0 (g, t)  a1 (g+8, t)  a2 (g, t+4)  a3 (g+8, t+4);  b0 (k=t, n=g)  b1 (k=t+4, n=g)
//   c/d r: (g + 8*(r/2), 2t + r%2)
inline void dt_mma_m16n8k8_tf32(float d[4], const unsigned a[4], const unsigned b[2]) {
    int l = emu::lane(), w = emu::warpbase() / 32, g = l >> 2, t = l & 3;
    float* A = &emu::mmaA[w * 128];
    float* B = &emu::mmaB[w * 64];
    // the hardware ignores the low 13 mantissa bits of tf32 operands
    auto tf = [](unsigned u) { return __uint_as_float(u & 0xffffe000u); };
    A[g * 8 + t] = tf(a[0]); A[(g + 8) * 8 + t] = tf(a[1]);
    A[g * 8 + t + 4] = tf(a[2]); A[(g + 8) * 8 + t + 4] = tf(a[3]);
    B[t * 8 + g] = tf(b[0]); B[(t + 4) * 8 + g] = tf(b[1]);
    emu::warpsync();
    for (int r = 0; r < 4; ++r) {
        int row = g + 8 * (r / 2), col = 2 * t + (r % 2);
        float s = d[r];
        for (int k = 0; k < 8; ++k) s += A[row * 8 + k] * B[k * 8 + col];
        d[r] = s;
    }
    emu::warpsync();
}

// ---- registry: name expression -> launcher reading cuLaunchKernel-style void** args ----------
namespace emu {
using LaunchFn = std::function<void(dim3, dim3, void**)>;
inline std::map<std::string, std::pair<LaunchFn, std::string>>& registry() {
    static std::map<std::string, std::pair<LaunchFn, std::string>> r;
    return r;
}
template <class T> std::string code() {
    using U = std::remove_cv_t<T>;
    if constexpr (std::is_pointer_v<U>) return "p" + code<std::remove_pointer_t<U>>();
    else if constexpr (std::is_same_v<U, float>) return "f4";
    else if constexpr (std::is_same_v<U, double>) return "f8";
    else if constexpr (std::is_same_v<U, long long>) return "i8";
    else if constexpr (std::is_same_v<U, int>) return "i4";
    else if constexpr (std::is_same_v<U, unsigned char>) return "u1";
    else if constexpr (std::is_same_v<U, void>) return "v";
    else return "?" + std::to_string(sizeof(U));
}
template <class... Args, size_t... I>
void call(void (*f)(Args...), dim3 g, dim3 b, void** a, std::index_sequence<I...>) {
    std::tuple<std::decay_t<Args>...> tup(*reinterpret_cast<std::decay_t<Args>*>(a[I])...);
    launch(g, b, [&] { std::apply(f, tup); });
}
template <class... Args>
struct Reg {
    Reg(const char* name, void (*f)(Args...)) {
        std::string sig;
        ((sig += (sig.empty() ? "" : ","), sig += code<Args>()), ...);
        registry()[name] = {[f](dim3 g, dim3 b, void** a) { call(f, g, b, a, std::index_sequence_for<Args...>{}); },
                            sig};
    }
};
}  // namespace emu

extern "C" __attribute__((visibility("default"))) int emu_launch(const char* name, unsigned gx, unsigned gy,
                                                                   unsigned gz, unsigned bx, unsigned by,
                                                                   unsigned bz, void** args) {
    auto it = emu::registry().find(name);
    if (it == emu::registry().end()) return -1;
    it->second.first(dim3(gx, gy, gz), dim3(bx, by, bz), args);
    return 0;
}
extern "C" __attribute__((visibility("default"))) const char* emu_signature(const char* name) {
    auto it = emu::registry().find(name);
    return it == emu::registry().end() ? nullptr : it->second.second.c_str();
}
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }
inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }
