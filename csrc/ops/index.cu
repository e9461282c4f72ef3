/* index.cu — the CUDA walk of an index plan (index.h): one thread per iteration element
 * (grid-stride), offsets from the shared so_index_offsets.  ADD uses atomics (16-bit
 * floats through a CAS on their aligned 32-bit word), so duplicate indices accumulate;
 * PUT with duplicates keeps one of the values, as torch's CUDA index_put_ does.
 * An out-of-range index sets a device flag (first one wins) instead of a device assert;
 * the launcher reads it back, which synchronises the stream.
 */
#include "index.h"
#include <cuda_runtime.h>

namespace {

__device__ void atomic_add_16(char *p, int dt, float x)
{
    uintptr_t addr = (uintptr_t)p;
    unsigned int *word = (unsigned int *)(addr & ~(uintptr_t)3);
    const int shift = (addr & 2) ? 16 : 0;
    unsigned int old = *word, assumed;
    do {
        assumed = old;
        uint16_t h = (uint16_t)((assumed >> shift) & 0xFFFFu);
        float cur = dt == SO_FLOAT16 ? so_fp16_to_float(h) : so_bf16_to_float(h);
        uint16_t n = dt == SO_FLOAT16 ? so_float_to_fp16(cur + x) : so_float_to_bf16(cur + x);
        unsigned int repl = (assumed & ~(0xFFFFu << shift)) | ((unsigned int)n << shift);
        old = atomicCAS(word, assumed, repl);
    } while (old != assumed);
}

__device__ void atomic_add_elem(char *dst, const char *src, int dt)
{
    switch (dt) {
    case SO_FLOAT32: atomicAdd((float *)dst, *(const float *)src); break;
    case SO_FLOAT64: atomicAdd((double *)dst, *(const double *)src); break;
    case SO_INT32: atomicAdd((int *)dst, *(const int *)src); break;
    case SO_INT64:
        atomicAdd((unsigned long long *)dst, (unsigned long long)*(const long long *)src);
        break;
    case SO_BOOL:
        if (*(const uint8_t *)src) *(volatile uint8_t *)dst = 1; /* every writer writes 1 */
        break;
    default: atomic_add_16(dst, dt, (float)so_load_as_f64(src, dt)); break;
    }
}

__global__ void index_kernel(so_index_plan pl, long long *flag)
{
    const int isz = so_dtype_itemsize(pl.dtype);
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < pl.numel;
         i += (int64_t)gridDim.x * blockDim.x) {
        int64_t soff, ooff, bad = 0;
        int k = so_index_offsets(&pl, i, &soff, &ooff, &bad);
        if (k >= 0) {
            if (atomicCAS((unsigned long long *)&flag[0], ~0ull, (unsigned long long)k) == ~0ull)
                flag[1] = bad;
            continue;
        }
        char *sp = pl.self + soff * isz, *op = pl.other + ooff * isz;
        if (pl.mode == SO_IDX_ADD) {
            atomic_add_elem(sp, op, pl.dtype);
        } else {
            char *from = pl.mode == SO_IDX_GET ? sp : op, *to = pl.mode == SO_IDX_GET ? op : sp;
            for (int b = 0; b < isz; b++) to[b] = from[b];
        }
    }
}

} // namespace

extern "C" int so_index_cuda(const so_index_plan *pl, so_index_error *err, void *stream_ptr,
                             int device_index)
{
    cudaStream_t stream = (cudaStream_t)stream_ptr;
    long long *flag = NULL, host[2] = {-1, 0};
    int prev = 0;
    cudaError_t e = cudaGetDevice(&prev);
    err->k = -1;
    err->value = 0;
    if (e != cudaSuccess) return (int)e;
    if (prev != device_index && (e = cudaSetDevice(device_index)) != cudaSuccess) return (int)e;
    if (pl->numel == 0) goto done;
    if ((e = cudaMallocAsync((void **)&flag, sizeof host, stream)) != cudaSuccess) goto done;
    if ((e = cudaMemsetAsync(flag, 0xFF, sizeof(long long), stream)) != cudaSuccess) goto release;
    {
        int64_t blocks = (pl->numel + 255) / 256;
        index_kernel<<<(unsigned)(blocks > 65535 ? 65535 : blocks), 256, 0, stream>>>(*pl, flag);
    }
    if ((e = cudaGetLastError()) != cudaSuccess) goto release;
    if ((e = cudaMemcpyAsync(host, flag, sizeof host, cudaMemcpyDeviceToHost, stream)) != cudaSuccess)
        goto release;
    e = cudaStreamSynchronize(stream);
release:
    {
        cudaError_t f = cudaFreeAsync(flag, stream);
        if (e == cudaSuccess) e = f;
    }
done:
    if (prev != device_index) cudaSetDevice(prev);
    if (e != cudaSuccess) return (int)e;
    if (host[0] != -1) {
        err->k = host[0];
        err->value = host[1];
        return -1;
    }
    return 0;
}
