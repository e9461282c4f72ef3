/* cross_entropy.cu — CUDA kernels of the fused cross-entropy and NLL loss.
 *
 * One block per sample: the block reduces max, sum of exps (and the smoothing / probability
 * sums) over the classes with a shared-memory tree, thread 0 writes the sample's loss.  An
 * out-of-range target is recorded in c.bad (device memory) and read back by the caller.
 * The per-sample math is cross_entropy.h's, the same functions the CPU loops call.
 */
#include "block_reduce.cuh"
#include "cross_entropy.h"
#include <cuda_runtime.h>

namespace {

constexpr int kThreads = 256;

__device__ __forceinline__ float xe_exp(float x) { return so_sm_exp_f(x); }
__device__ __forceinline__ double xe_exp(double x) { return so_sm_exp_d(x); }
__device__ __forceinline__ float xe_log(float x) { return so_sm_log_f(x); }
__device__ __forceinline__ double xe_log(double x) { return so_sm_log_d(x); }
__device__ __forceinline__ float xe_loss(float a, float b, float c, float d, float e, float f, int64_t C) { return so_xe_loss_index_f(a, b, c, d, e, f, C); }
__device__ __forceinline__ double xe_loss(double a, double b, double c, double d, double e, double f, int64_t C) { return so_xe_loss_index_d(a, b, c, d, e, f, C); }
__device__ __forceinline__ float xe_gidx(float p, int t, float wt, float wc, float W, float e, int64_t C) { return so_xe_grad_index_f(p, t, wt, wc, W, e, C); }
__device__ __forceinline__ double xe_gidx(double p, int t, double wt, double wc, double W, double e, int64_t C) { return so_xe_grad_index_d(p, t, wt, wc, W, e, C); }
__device__ __forceinline__ float xe_smooth(float q, float e, int64_t C) { return so_xe_smooth_prob_f(q, e, C); }
__device__ __forceinline__ double xe_smooth(double q, double e, int64_t C) { return so_xe_smooth_prob_d(q, e, C); }
__device__ __forceinline__ float xe_gprob(float p, float s, float wq) { return so_xe_grad_prob_f(p, s, wq); }
__device__ __forceinline__ double xe_gprob(double p, double s, double wq) { return so_xe_grad_prob_d(p, s, wq); }

template <typename T>
__device__ __forceinline__ T block_reduce(T v, bool is_max)
{
    return so_block_reduce<kThreads, T>(v, is_max);
}

template <typename T>
__global__ void xe_forward(so_xe_call c)
{
    const T *w = (const T *)c.w;
    const T eps = (T)c.eps;
    T W = 0;
    for (int64_t k = threadIdx.x; k < c.C; k += blockDim.x) W += w ? w[k] : (T)1;
    W = block_reduce<T>(W, false);
    for (int64_t s = blockIdx.x; s < c.N * c.inner; s += gridDim.x) {
        const int64_t n = s / c.inner, i = s % c.inner;
        const T *x = (const T *)c.x + n * c.C * c.inner + i;
        T lse = 0;
        if (c.kind != SO_XE_NLL) {
            T m = -(T)INFINITY;
            for (int64_t k = threadIdx.x; k < c.C; k += blockDim.x) {
                T v = x[k * c.inner];
                m = (v > m || v != v) ? v : m;
            }
            m = block_reduce<T>(m, true);
            T se = 0;
            for (int64_t k = threadIdx.x; k < c.C; k += blockDim.x) se += xe_exp(x[k * c.inner] - m);
            lse = m + xe_log(block_reduce<T>(se, false));
            if (threadIdx.x == 0) ((T *)c.lse)[s] = lse;
        }
        if (c.kind == SO_XE_PROB) {
            const T *q = (const T *)c.target + n * c.C * c.inner + i;
            T acc = 0;
            for (int64_t k = threadIdx.x; k < c.C; k += blockDim.x)
                acc += (w ? w[k] : (T)1) * xe_smooth(q[k * c.inner], eps, c.C) * (x[k * c.inner] - lse);
            acc = block_reduce<T>(acc, false);
            if (threadIdx.x == 0) {
                ((T *)c.loss)[s] = -acc;
                ((T *)c.wt)[s] = 1;
            }
            continue;
        }
        const int64_t t = so_xe_target(c.target, c.tdtype, s);
        const bool ignored = t == c.ignore_index, bad = !ignored && (t < 0 || t >= c.C);
        T sum_wx = 0;
        if (c.kind == SO_XE_INDEX && eps != (T)0 && !ignored && !bad) {
            for (int64_t k = threadIdx.x; k < c.C; k += blockDim.x)
                sum_wx += (w ? w[k] : (T)1) * x[k * c.inner];
        }
        if (c.kind == SO_XE_INDEX && eps != (T)0) sum_wx = block_reduce<T>(sum_wx, false);
        if (threadIdx.x != 0) continue;
        if (ignored || bad) {
            ((T *)c.loss)[s] = 0;
            ((T *)c.wt)[s] = 0;
            if (bad) {
                c.bad[1] = t;
                c.bad[0] = 1;
            }
            continue;
        }
        const T wt = w ? w[t] : (T)1;
        ((T *)c.wt)[s] = wt;
        ((T *)c.loss)[s] = c.kind == SO_XE_NLL ? -wt * x[t * c.inner]
                                               : xe_loss(x[t * c.inner], lse, wt, sum_wx, W, eps, c.C);
    }
}

template <typename T>
__global__ void xe_backward(so_xe_call c)
{
    const T *w = (const T *)c.w;
    const T eps = (T)c.eps;
    T W = 0;
    for (int64_t k = threadIdx.x; k < c.C; k += blockDim.x) W += w ? w[k] : (T)1;
    W = block_reduce<T>(W, false);
    for (int64_t s = blockIdx.x; s < c.N * c.inner; s += gridDim.x) {
        const int64_t n = s / c.inner, i = s % c.inner;
        const T *x = (const T *)c.x + n * c.C * c.inner + i;
        T *gx = (T *)c.gx + n * c.C * c.inner + i;
        const T g = ((const T *)c.gs)[s * c.gs_stride];
        if (c.kind == SO_XE_PROB) {
            const T lse = ((const T *)c.lse)[s];
            const T *q = (const T *)c.target + n * c.C * c.inner + i;
            T acc = 0;
            for (int64_t k = threadIdx.x; k < c.C; k += blockDim.x)
                acc += (w ? w[k] : (T)1) * xe_smooth(q[k * c.inner], eps, c.C);
            const T swq = block_reduce<T>(acc, false);
            for (int64_t k = threadIdx.x; k < c.C; k += blockDim.x) {
                T wq = (w ? w[k] : (T)1) * xe_smooth(q[k * c.inner], eps, c.C);
                gx[k * c.inner] = g * xe_gprob(xe_exp(x[k * c.inner] - lse), swq, wq);
            }
            continue;
        }
        const int64_t t = so_xe_target(c.target, c.tdtype, s);
        const bool ignored = t == c.ignore_index || t < 0 || t >= c.C;
        const T wt = ignored ? (T)0 : (w ? w[t] : (T)1);
        if (ignored || c.kind == SO_XE_NLL) {
            for (int64_t k = threadIdx.x; k < c.C; k += blockDim.x)
                gx[k * c.inner] = (!ignored && k == t) ? -g * wt : (T)0;
            continue;
        }
        const T lse = ((const T *)c.lse)[s];
        for (int64_t k = threadIdx.x; k < c.C; k += blockDim.x)
            gx[k * c.inner] = g * xe_gidx(xe_exp(x[k * c.inner] - lse), k == t, wt,
                                          w ? w[k] : (T)1, W, eps, c.C);
    }
}

unsigned grid_for(int64_t n) { return (unsigned)(n < 65535 * 16 ? n : 65535 * 16); }

} // namespace

extern "C" int so_xe_forward_cuda(const so_xe_call *c, void *stream)
{
    int64_t n = c->N * c->inner;
    if (n == 0) return 0;
    if (c->dtype == SO_FLOAT64)
        xe_forward<double><<<grid_for(n), kThreads, 0, (cudaStream_t)stream>>>(*c);
    else
        xe_forward<float><<<grid_for(n), kThreads, 0, (cudaStream_t)stream>>>(*c);
    return (int)cudaGetLastError();
}

extern "C" int so_xe_backward_cuda(const so_xe_call *c, void *stream)
{
    int64_t n = c->N * c->inner;
    if (n == 0) return 0;
    if (c->dtype == SO_FLOAT64)
        xe_backward<double><<<grid_for(n), kThreads, 0, (cudaStream_t)stream>>>(*c);
    else
        xe_backward<float><<<grid_for(n), kThreads, 0, (cudaStream_t)stream>>>(*c);
    return (int)cudaGetLastError();
}
