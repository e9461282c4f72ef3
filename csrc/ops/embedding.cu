/* embedding.cu — CUDA kernels of Embedding and EmbeddingBag.
 *
 * Gather: one thread per output element.  Scatter-add backwards: one thread per (index, d)
 * with atomicAdd (duplicate indices accumulate in arbitrary order, as torch's
 * non-deterministic path).  Renorm: each distinct row is claimed once through an atomicCAS
 * on the scratch flags, then one thread rescales it.  Bags: one thread per (bag, d).
 * Out-of-range indices are checked by a first pass writing a device flag that the launcher
 * copies back (synchronising).  The math is embedding.h's.
 */
#include "embedding.h"
#include <cuda_runtime.h>

namespace {

constexpr int kThreads = 256;

unsigned grid_for(int64_t n)
{
    int64_t g = (n + kThreads - 1) / kThreads;
    return (unsigned)(g < 1 ? 1 : g > 65535 * 16 ? 65535 * 16 : g);
}

#define GRID_STRIDE(i, n) \
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < (n); i += (int64_t)gridDim.x * blockDim.x)

__global__ void check_indices(so_emb_call c, int64_t *bad)
{
    GRID_STRIDE(j, c.n) {
        int64_t k = so_emb_index(c.idx, c.idtype, j);
        if (k < 0 || k >= c.V) {
            bad[1] = k;
            bad[0] = 1;
        }
    }
}

__global__ void zero_i64(int64_t *p, int64_t n)
{
    GRID_STRIDE(i, n) p[i] = 0;
}

template <typename T>
__global__ void zero_t(T *p, int64_t n)
{
    GRID_STRIDE(i, n) p[i] = 0;
}

template <typename T>
__global__ void emb_fwd(so_emb_call c)
{
    GRID_STRIDE(e, c.n * c.D) {
        int64_t j = e / c.D, d = e % c.D;
        ((T *)c.out)[e] = ((const T *)c.w)[so_emb_index(c.idx, c.idtype, j) * c.D + d];
    }
}

__global__ void emb_count(so_emb_call c)
{
    GRID_STRIDE(j, c.n) {
        int64_t k = so_emb_index(c.idx, c.idtype, j);
        if (k >= 0 && k < c.V) atomicAdd((unsigned long long *)&c.scratch[k], 1ull);
    }
}

template <typename T>
__global__ void emb_bwd(so_emb_call c)
{
    GRID_STRIDE(e, c.n * c.D) {
        int64_t j = e / c.D, d = e % c.D;
        int64_t k = so_emb_index(c.idx, c.idtype, j);
        if (k < 0 || k >= c.V || k == c.padding_idx) continue;
        T f = c.scale_grad_by_freq ? (T)1 / (T)c.scratch[k] : (T)1;
        atomicAdd(&((T *)c.gw)[k * c.D + d], ((const T *)c.g)[e] * f);
    }
}

template <typename T>
__global__ void emb_renorm(so_emb_call c)
{
    GRID_STRIDE(j, c.n) {
        int64_t k = so_emb_index(c.idx, c.idtype, j);
        if (atomicCAS((unsigned long long *)&c.scratch[k], 0ull, 1ull) != 0ull) continue;
        T *row = (T *)c.w + k * c.D;
        double s = 0;
        for (int64_t d = 0; d < c.D; d++) s += so_emb_norm_term((double)row[d], c.norm_type);
        double f = so_emb_renorm_scale(so_emb_norm_final(s, c.norm_type), c.max_norm);
        if (f != 1.0)
            for (int64_t d = 0; d < c.D; d++) row[d] = (T)((double)row[d] * f);
    }
}

template <typename T>
__global__ void bag_fwd(so_emb_call c)
{
    const T *w = (const T *)c.w, *psw = (const T *)c.psw;
    GRID_STRIDE(e, c.B * c.D) {
        int64_t b = e / c.D, d = e % c.D, cnt = 0, mi = -1;
        T acc = 0;
        for (int64_t j = c.offsets[b]; j < c.offsets[b + 1]; j++) {
            int64_t k = so_emb_index(c.idx, c.idtype, j);
            if (k == c.padding_idx) continue;
            T v = w[k * c.D + d];
            if (c.mode == SO_BAG_MAX) {
                if (mi < 0 || v > acc) {
                    acc = v;
                    mi = k;
                }
            } else {
                acc += v * (psw ? psw[j] : (T)1);
            }
            cnt++;
        }
        if (c.mode == SO_BAG_MEAN && cnt > 0) acc /= (T)cnt;
        ((T *)c.out)[e] = acc;
        if (c.max_idx) c.max_idx[e] = mi;
        if (d == 0) c.bag_count[b] = cnt;
    }
}

template <typename T>
__global__ void bag_bwd(so_emb_call c)
{
    const T *w = (const T *)c.w, *psw = (const T *)c.psw;
    GRID_STRIDE(e, c.B * c.D) {
        int64_t b = e / c.D, d = e % c.D;
        T g = ((const T *)c.g)[e];
        if (c.mode == SO_BAG_MAX) {
            int64_t k = c.max_idx[e];
            if (k >= 0 && k < c.V && c.gw) atomicAdd(&((T *)c.gw)[k * c.D + d], g);
            continue;
        }
        for (int64_t j = c.offsets[b]; j < c.offsets[b + 1]; j++) {
            int64_t k = so_emb_index(c.idx, c.idtype, j);
            if (k == c.padding_idx || k < 0 || k >= c.V) continue;
            if (c.gpsw) atomicAdd(&((T *)c.gpsw)[j], g * w[k * c.D + d]);
            if (!c.gw) continue;
            T f = c.mode == SO_BAG_MEAN ? (T)1 / (T)c.bag_count[b] : (psw ? psw[j] : (T)1);
            if (c.scale_grad_by_freq) f /= (T)c.scratch[k];
            atomicAdd(&((T *)c.gw)[k * c.D + d], g * f);
        }
    }
}

/* Range-check the indices on the device; copies the report into host_bad. */
cudaError_t run_check(const so_emb_call *c, cudaStream_t s, int64_t *host_bad)
{
    int64_t *dbad = NULL;
    cudaError_t err = cudaMallocAsync((void **)&dbad, 2 * sizeof(int64_t), s);
    if (err != cudaSuccess) return err;
    if ((err = cudaMemsetAsync(dbad, 0, 2 * sizeof(int64_t), s)) == cudaSuccess) {
        check_indices<<<grid_for(c->n), kThreads, 0, s>>>(*c, dbad);
        if ((err = cudaGetLastError()) == cudaSuccess &&
            (err = cudaMemcpyAsync(host_bad, dbad, 2 * sizeof(int64_t), cudaMemcpyDeviceToHost, s)) == cudaSuccess)
            err = cudaStreamSynchronize(s);
    }
    cudaError_t ferr = cudaFreeAsync(dbad, s);
    return err != cudaSuccess ? err : ferr;
}

} // namespace

extern "C" int so_emb_forward_cuda(so_emb_call *c, void *stream, int64_t *host_bad)
{
    cudaStream_t s = (cudaStream_t)stream;
    cudaError_t err = run_check(c, s, host_bad);
    if (err != cudaSuccess || host_bad[0] || c->n * c->D == 0) return (int)err;
    if (c->dtype == SO_FLOAT64) emb_fwd<double><<<grid_for(c->n * c->D), kThreads, 0, s>>>(*c);
    else emb_fwd<float><<<grid_for(c->n * c->D), kThreads, 0, s>>>(*c);
    return (int)cudaGetLastError();
}

extern "C" int so_emb_backward_cuda(const so_emb_call *c, void *stream)
{
    cudaStream_t s = (cudaStream_t)stream;
    cudaError_t err;
    if (c->dtype == SO_FLOAT64) zero_t<double><<<grid_for(c->V * c->D), kThreads, 0, s>>>((double *)c->gw, c->V * c->D);
    else zero_t<float><<<grid_for(c->V * c->D), kThreads, 0, s>>>((float *)c->gw, c->V * c->D);
    if ((err = cudaGetLastError()) != cudaSuccess) return (int)err;
    if (c->scale_grad_by_freq) {
        zero_i64<<<grid_for(c->V), kThreads, 0, s>>>(c->scratch, c->V);
        emb_count<<<grid_for(c->n), kThreads, 0, s>>>(*c);
        if ((err = cudaGetLastError()) != cudaSuccess) return (int)err;
    }
    if (c->n * c->D == 0) return 0;
    if (c->dtype == SO_FLOAT64) emb_bwd<double><<<grid_for(c->n * c->D), kThreads, 0, s>>>(*c);
    else emb_bwd<float><<<grid_for(c->n * c->D), kThreads, 0, s>>>(*c);
    return (int)cudaGetLastError();
}

extern "C" int so_emb_renorm_cuda(so_emb_call *c, void *stream, int64_t *host_bad)
{
    cudaStream_t s = (cudaStream_t)stream;
    cudaError_t err = run_check(c, s, host_bad);
    if (err != cudaSuccess || host_bad[0] || c->n == 0) return (int)err;
    zero_i64<<<grid_for(c->V), kThreads, 0, s>>>(c->scratch, c->V);
    if (c->dtype == SO_FLOAT64) emb_renorm<double><<<grid_for(c->n), kThreads, 0, s>>>(*c);
    else emb_renorm<float><<<grid_for(c->n), kThreads, 0, s>>>(*c);
    return (int)cudaGetLastError();
}

extern "C" int so_bag_forward_cuda(so_emb_call *c, void *stream, int64_t *host_bad)
{
    cudaStream_t s = (cudaStream_t)stream;
    cudaError_t err = run_check(c, s, host_bad);
    if (err != cudaSuccess || host_bad[0] || c->B * c->D == 0) return (int)err;
    if (c->dtype == SO_FLOAT64) bag_fwd<double><<<grid_for(c->B * c->D), kThreads, 0, s>>>(*c);
    else bag_fwd<float><<<grid_for(c->B * c->D), kThreads, 0, s>>>(*c);
    return (int)cudaGetLastError();
}

extern "C" int so_bag_backward_cuda(const so_emb_call *c, void *stream)
{
    cudaStream_t s = (cudaStream_t)stream;
    cudaError_t err;
    if (c->gw) {
        if (c->dtype == SO_FLOAT64) zero_t<double><<<grid_for(c->V * c->D), kThreads, 0, s>>>((double *)c->gw, c->V * c->D);
        else zero_t<float><<<grid_for(c->V * c->D), kThreads, 0, s>>>((float *)c->gw, c->V * c->D);
    }
    if (c->gpsw) {
        if (c->dtype == SO_FLOAT64) zero_t<double><<<grid_for(c->n), kThreads, 0, s>>>((double *)c->gpsw, c->n);
        else zero_t<float><<<grid_for(c->n), kThreads, 0, s>>>((float *)c->gpsw, c->n);
    }
    if (c->scale_grad_by_freq) {
        zero_i64<<<grid_for(c->V), kThreads, 0, s>>>(c->scratch, c->V);
        emb_count<<<grid_for(c->n), kThreads, 0, s>>>(*c);
    }
    if ((err = cudaGetLastError()) != cudaSuccess) return (int)err;
    if (c->B * c->D == 0) return 0;
    if (c->dtype == SO_FLOAT64) bag_bwd<double><<<grid_for(c->B * c->D), kThreads, 0, s>>>(*c);
    else bag_bwd<float><<<grid_for(c->B * c->D), kThreads, 0, s>>>(*c);
    return (int)cudaGetLastError();
}
