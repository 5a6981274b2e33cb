// devtensor index checks: data-dependent index arrays validated on the device, without a host sync.
//
// The cuda backend runs gather / scatter_add / advanced indexing (index, index_put, index_backward) and
// the CuPy path of cross-entropy through CuPy; before CuPy reads an index array, dt_check_index copies it
// into a safe int64 array: a value outside its range is replaced by 0 (so CuPy never reads or writes
// out of bounds, whatever its own rule for bad indices) and the first violation is recorded in the
// device's error record err[4] = {op id, dimension, bad value, bound}, which the host reads and clears at
// its next synchronisation (devtensor/backends/cuda/kernels.py: check_index, take_device_error).
// Launch geometry: launch_config("check_index") in devtensor/backends/cuda/kernel_build.py.
//
// NVRTC rules: no std headers; long long instead of int64_t.

#ifndef DT_EMULATE
#define DT_DEVICE __device__ __forceinline__
#endif

#define DT_FOR_FLAT(i, n) \
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (long long)gridDim.x * blockDim.x)

// The first report wins (the same helper and record layout as reduce.cu).
DT_DEVICE void dt_report_index_error(long long* err, int op, int dim, long long value, long long bound) {
    if (atomicCAS(reinterpret_cast<unsigned long long*>(err), 0ull, (unsigned long long)op) == 0ull) {
        err[1] = dim;
        err[2] = value;
        err[3] = bound;
    }
}

// safe[i] = idx[i] where it is valid, else 0 (reported).  Valid: lo <= v < bound with lo = -bound when
// negative indices count from the end (allow_negative), else 0; and v == ignore when has_ignore (an
// ignored target is kept as it is).  T: the index array's element type (long long or int).
template <class T>
__global__ void dt_check_index(const T* __restrict__ idx, long long* __restrict__ safe, long long n, long long bound,
                               int allow_negative, int has_ignore, long long ignore, int op, int dim,
                               long long* __restrict__ err) {
    const long long lo = allow_negative ? -bound : 0;
    DT_FOR_FLAT(i, n) {
        const long long v = (long long)idx[i];
        const bool ok = (v >= lo && v < bound) || (has_ignore && v == ignore);
        if (!ok) dt_report_index_error(err, op, dim, v, bound);
        safe[i] = ok ? v : 0;
    }
}
