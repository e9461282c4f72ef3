/* layer_norm.cu — CUDA kernels of LayerNorm / RMSNorm forward and backward.
 *
 * Forward and the input gradient: one block per row, sums by a shared-memory tree (in
 * double, so float32 rows reduce as exactly as the CPU's double combine).  Weight / bias
 * gradients: one thread per column walking the rows (adjacent threads read adjacent
 * columns).  The per-element math is layer_norm.h's.
 */
#include "layer_norm.h"
#include <cuda_runtime.h>

namespace {

constexpr int kThreads = 256;

__device__ __forceinline__ float ln_rstd(float *, double v, double e) { return so_ln_rstd_f(v, e); }
__device__ __forceinline__ double ln_rstd(double *, double v, double e) { return so_ln_rstd_d(v, e); }
__device__ __forceinline__ float ln_fwd(float x, float m, float r, float w, float b) { return so_ln_fwd_f(x, m, r, w, b); }
__device__ __forceinline__ double ln_fwd(double x, double m, double r, double w, double b) { return so_ln_fwd_d(x, m, r, w, b); }
__device__ __forceinline__ float ln_bwd(int rms, float gh, float xh, float r, float a, float b) { return so_ln_bwd_f(rms, gh, xh, r, a, b); }
__device__ __forceinline__ double ln_bwd(int rms, double gh, double xh, double r, double a, double b) { return so_ln_bwd_d(rms, gh, xh, r, a, b); }

__device__ double block_sum(double v)
{
    __shared__ double sh[kThreads];
    const int t = threadIdx.x;
    sh[t] = v;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if (t < s) sh[t] += sh[t + s];
        __syncthreads();
    }
    double r = sh[0];
    __syncthreads();
    return r;
}

template <typename T>
__global__ void ln_forward(so_ln_call c)
{
    const T *w = (const T *)c.w, *b = (const T *)c.b;
    for (int64_t r = blockIdx.x; r < c.rows; r += gridDim.x) {
        const T *x = (const T *)c.x + r * c.n;
        T *y = (T *)c.y + r * c.n;
        double s = 0;
        T mean = 0;
        if (!c.rms) {
            for (int64_t i = threadIdx.x; i < c.n; i += blockDim.x) s += (double)x[i];
            mean = c.n > 0 ? (T)(block_sum(s) / (double)c.n) : (T)NAN;
        }
        s = 0;
        for (int64_t i = threadIdx.x; i < c.n; i += blockDim.x) {
            T d = x[i] - mean;
            s += (double)(d * d);
        }
        const double var = c.n > 0 ? block_sum(s) / (double)c.n : (double)NAN;
        const T rstd = ln_rstd((T *)0, var, c.eps);
        if (threadIdx.x == 0) {
            ((T *)c.mean)[r] = mean;
            ((T *)c.rstd)[r] = rstd;
        }
        for (int64_t i = threadIdx.x; i < c.n; i += blockDim.x)
            y[i] = ln_fwd(x[i], mean, rstd, w ? w[i] : (T)1, b ? b[i] : (T)0);
    }
}

template <typename T>
__global__ void ln_backward_input(so_ln_call c)
{
    const T *w = (const T *)c.w;
    for (int64_t r = blockIdx.x; r < c.rows; r += gridDim.x) {
        const T *x = (const T *)c.x + r * c.n, *g = (const T *)c.g + r * c.n;
        T *gx = (T *)c.gx + r * c.n;
        const T mean = ((const T *)c.mean)[r], rstd = ((const T *)c.rstd)[r];
        double s1 = 0, s2 = 0;
        for (int64_t i = threadIdx.x; i < c.n; i += blockDim.x) {
            T gh = w ? g[i] * w[i] : g[i];
            s1 += (double)gh;
            s2 += (double)(gh * ((x[i] - mean) * rstd));
        }
        const T m1 = (T)(block_sum(s1) / (double)c.n), m2 = (T)(block_sum(s2) / (double)c.n);
        for (int64_t i = threadIdx.x; i < c.n; i += blockDim.x)
            gx[i] = ln_bwd(c.rms, w ? g[i] * w[i] : g[i], (x[i] - mean) * rstd, rstd, m1, m2);
    }
}

template <typename T>
__global__ void ln_backward_params(so_ln_call c)
{
    for (int64_t j = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; j < c.n;
         j += (int64_t)gridDim.x * blockDim.x) {
        T sw = 0, sb = 0;
        for (int64_t r = 0; r < c.rows; r++) {
            const T g = ((const T *)c.g)[r * c.n + j];
            const T mean = ((const T *)c.mean)[r], rstd = ((const T *)c.rstd)[r];
            sw += g * ((((const T *)c.x)[r * c.n + j] - mean) * rstd);
            sb += g;
        }
        if (c.gw) ((T *)c.gw)[j] = sw;
        if (c.gb) ((T *)c.gb)[j] = sb;
    }
}

unsigned grid_for(int64_t n) { return (unsigned)(n < 65535 * 16 ? (n > 0 ? n : 1) : 65535 * 16); }

} // namespace

extern "C" int so_ln_forward_cuda(const so_ln_call *c, void *stream)
{
    cudaStream_t s = (cudaStream_t)stream;
    if (c->rows == 0) return 0;
    if (c->dtype == SO_FLOAT64) ln_forward<double><<<grid_for(c->rows), kThreads, 0, s>>>(*c);
    else ln_forward<float><<<grid_for(c->rows), kThreads, 0, s>>>(*c);
    return (int)cudaGetLastError();
}

extern "C" int so_ln_backward_cuda(const so_ln_call *c, void *stream)
{
    cudaStream_t s = (cudaStream_t)stream;
    cudaError_t err = cudaSuccess;
    if (c->gx && c->rows > 0 && c->n > 0) {
        if (c->dtype == SO_FLOAT64) ln_backward_input<double><<<grid_for(c->rows), kThreads, 0, s>>>(*c);
        else ln_backward_input<float><<<grid_for(c->rows), kThreads, 0, s>>>(*c);
        if ((err = cudaGetLastError()) != cudaSuccess) return (int)err;
    }
    if ((c->gw || c->gb) && c->n > 0) {
        unsigned blocks = grid_for((c->n + kThreads - 1) / kThreads);
        if (c->dtype == SO_FLOAT64) ln_backward_params<double><<<blocks, kThreads, 0, s>>>(*c);
        else ln_backward_params<float><<<blocks, kThreads, 0, s>>>(*c);
        err = cudaGetLastError();
    }
    return (int)err;
}
