/* softmax.cu — CUDA kernels of softmax / log_softmax / logsumexp and their backwards.
 *
 * One block per reduced row (outer x inner rows of n elements, stride `inner`): the block
 * folds max and sum with a shared-memory tree, then writes.  The per-element math (fast exp,
 * max shift, backward formulas) is softmax.h's, the same functions the CPU loops call.
 */
#include "block_reduce.cuh"
#include "softmax.h"
#include <cuda_runtime.h>

namespace {

constexpr int kThreads = 256;

__device__ __forceinline__ float sm_exp(float x) { return so_sm_exp_f(x); }
__device__ __forceinline__ double sm_exp(double x) { return so_sm_exp_d(x); }
__device__ __forceinline__ float sm_log(float x) { return so_sm_log_f(x); }
__device__ __forceinline__ double sm_log(double x) { return so_sm_log_d(x); }
__device__ __forceinline__ float sm_shift(float m) { return so_sm_lse_shift_f(m); }
__device__ __forceinline__ double sm_shift(double m) { return so_sm_lse_shift_d(m); }
__device__ __forceinline__ float sm_fwd(int op, float x, float e, float b) { return so_sm_fwd_f(op, x, e, b); }
__device__ __forceinline__ double sm_fwd(int op, double x, double e, double b) { return so_sm_fwd_d(op, x, e, b); }
__device__ __forceinline__ float sm_bwd(int op, float y, float g, float d, float ey) { return so_sm_bwd_f(op, y, g, d, ey); }
__device__ __forceinline__ double sm_bwd(int op, double y, double g, double d, double ey) { return so_sm_bwd_d(op, y, g, d, ey); }

template <typename T>
__device__ __forceinline__ T block_reduce(T v, bool is_max)
{
    return so_block_reduce<kThreads, T>(v, is_max);
}

template <typename T>
__global__ void softmax_kernel(so_softmax_call c)
{
    const int64_t rows = c.outer * c.inner;
    for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
        const int64_t o = row / c.inner, i = row % c.inner;
        const int64_t base = o * c.n * c.inner + i;
        const T *x = (const T *)c.x + base;
        T *y = (T *)c.out + (c.op == SO_SM_LOGSUMEXP ? row : base);
        if (c.op == SO_SM_SOFTMAX_BW || c.op == SO_SM_LOG_SOFTMAX_BW) {
            const T *g = (const T *)c.g + base;
            T d = 0;
            for (int64_t k = threadIdx.x; k < c.n; k += blockDim.x)
                d += c.op == SO_SM_SOFTMAX_BW ? g[k * c.inner] * x[k * c.inner] : g[k * c.inner];
            d = block_reduce<T>(d, false);
            for (int64_t k = threadIdx.x; k < c.n; k += blockDim.x) {
                T yk = x[k * c.inner];
                y[k * c.inner] = sm_bwd(c.op, yk, g[k * c.inner], d,
                                        c.op == SO_SM_SOFTMAX_BW ? (T)0 : sm_exp(yk));
            }
            continue;
        }
        T m = -(T)INFINITY;
        for (int64_t k = threadIdx.x; k < c.n; k += blockDim.x) {
            T v = x[k * c.inner];
            m = (v > m || v != v) ? v : m;
        }
        m = block_reduce<T>(m, true);
        if (c.op == SO_SM_LOGSUMEXP) m = sm_shift(m);
        T s = 0;
        for (int64_t k = threadIdx.x; k < c.n; k += blockDim.x) s += sm_exp(x[k * c.inner] - m);
        s = block_reduce<T>(s, false);
        if (c.op == SO_SM_LOGSUMEXP) {
            if (threadIdx.x == 0) *y = m + sm_log(s);
            continue;
        }
        const T b = c.op == SO_SM_SOFTMAX ? (T)1 / s : m + sm_log(s);
        for (int64_t k = threadIdx.x; k < c.n; k += blockDim.x) {
            T v = x[k * c.inner];
            y[k * c.inner] = sm_fwd(c.op, v, c.op == SO_SM_SOFTMAX ? sm_exp(v - m) : (T)0, b);
        }
    }
}

} // namespace

extern "C" int so_softmax_cuda(const so_softmax_call *c, void *stream)
{
    int64_t rows = c->outer * c->inner;
    if (rows == 0) return 0;
    unsigned grid = (unsigned)(rows < 65535 * 16 ? rows : 65535 * 16);
    if (c->dtype == SO_FLOAT64)
        softmax_kernel<double><<<grid, kThreads, 0, (cudaStream_t)stream>>>(*c);
    else
        softmax_kernel<float><<<grid, kThreads, 0, (cudaStream_t)stream>>>(*c);
    return (int)cudaGetLastError();
}
