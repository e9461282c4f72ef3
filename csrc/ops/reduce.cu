/* reduce.cu — CUDA kernels for a reduction plan (reduce.h) and their launcher.
 *
 * The per-element math (what a step adds, how partial states merge, NaN and first-index
 * rules, the final sqrt/pow/divide) is reduce.h's SO_HD functions, shared with the CPU.
 * Three walks, chosen by shape:
 *   - few reduced elements per output (<= 64): one thread per output element;
 *   - otherwise one block per output element: each thread folds a strided share, then a
 *     shared-memory tree combines the block's states;
 *   - few outputs with many reduced elements each (e.g. a full sum): two passes — a grid
 *     of (chunk, output) blocks writes partial states to scratch (cudaMallocAsync on the
 *     stream), then one block per output combines its chunks and finalizes.
 */
#include "reduce.h"
#include <cuda_runtime.h>

namespace {

constexpr int kThreads = 256;

__device__ __forceinline__ int64_t red_offset(const so_reduce_plan &pl, int64_t r)
{
    return pl.n_red == 1 ? r * pl.red_strides[0] : so_red_red_offset(&pl, r);
}

/* Fold reduced elements [begin, end) with step `step` of output o into a. */
__device__ __forceinline__ void fold_range(const so_reduce_plan &pl, int64_t base, int64_t begin,
                                           int64_t end, int64_t step, so_red_acc *a)
{
    const int isz = so_dtype_itemsize(pl.in_dtype);
    for (int64_t r = begin; r < end; r += step) {
        const char *p = pl.in + (base + red_offset(pl, r)) * isz;
        if (pl.int_acc)
            so_red_step_i(a, pl.op, so_load_as_i64(p, pl.in_dtype), r);
        else
            so_red_step_f(a, pl.op, so_red_load_f(p, pl.in_dtype), r, pl.p);
    }
}

/* Tree-combine the block's states; the result is valid in thread 0. blockDim.x: 2^k. */
__device__ so_red_acc block_combine(so_red_acc a, const so_reduce_plan &pl)
{
    __shared__ so_red_acc sh[kThreads];
    const int t = threadIdx.x;
    sh[t] = a;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if (t < s) so_red_combine(&sh[t], &sh[t + s], pl.op, pl.int_acc);
        __syncthreads();
    }
    so_red_acc r = sh[0];
    __syncthreads(); /* sh is reused by the next output of a grid-stride loop */
    return r;
}

__global__ void reduce_thread_per_output(so_reduce_plan pl)
{
    for (int64_t o = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; o < pl.out_numel;
         o += (int64_t)gridDim.x * blockDim.x) {
        so_red_acc a = so_red_init(pl.op);
        fold_range(pl, so_red_keep_offset(&pl, o), 0, pl.red_numel, 1, &a);
        so_red_store(&pl, o, &a);
    }
}

__global__ void reduce_block_per_output(so_reduce_plan pl)
{
    for (int64_t o = blockIdx.x; o < pl.out_numel; o += gridDim.x) {
        so_red_acc a = so_red_init(pl.op);
        fold_range(pl, so_red_keep_offset(&pl, o), threadIdx.x, pl.red_numel, blockDim.x, &a);
        a = block_combine(a, pl);
        if (threadIdx.x == 0) so_red_store(&pl, o, &a);
    }
}

/* Pass 1: block (chunk = blockIdx.x, output = blockIdx.y) folds one chunk. */
__global__ void reduce_partial(so_reduce_plan pl, int64_t chunk_len, so_red_acc *partials)
{
    const int64_t o = blockIdx.y, c = blockIdx.x;
    const int64_t begin = c * chunk_len;
    const int64_t end = begin + chunk_len < pl.red_numel ? begin + chunk_len : pl.red_numel;
    so_red_acc a = so_red_init(pl.op);
    fold_range(pl, so_red_keep_offset(&pl, o), begin + threadIdx.x, end, blockDim.x, &a);
    a = block_combine(a, pl);
    if (threadIdx.x == 0) partials[o * gridDim.x + c] = a;
}

/* Pass 2: block o combines its nchunks partial states and writes the output. */
__global__ void reduce_finish(so_reduce_plan pl, int nchunks, const so_red_acc *partials)
{
    const int64_t o = blockIdx.x;
    so_red_acc a = so_red_init(pl.op);
    for (int c = threadIdx.x; c < nchunks; c += blockDim.x)
        so_red_combine(&a, &partials[o * nchunks + c], pl.op, pl.int_acc);
    a = block_combine(a, pl);
    if (threadIdx.x == 0) so_red_store(&pl, o, &a);
}

int threads_for(int64_t n)
{
    int t = 32;
    while (t < kThreads && t < n) t *= 2;
    return t;
}

} // namespace

extern "C" int so_reduce_cuda(const so_reduce_plan *plan, void *stream_ptr, int device_index)
{
    cudaStream_t stream = (cudaStream_t)stream_ptr;
    const so_reduce_plan &pl = *plan;
    int prev = 0;
    cudaError_t err = cudaGetDevice(&prev);
    if (err != cudaSuccess) return (int)err;
    if (prev != device_index && (err = cudaSetDevice(device_index)) != cudaSuccess) return (int)err;
    if (pl.out_numel == 0) goto done;
    if (pl.red_numel <= 64) {
        int64_t blocks = (pl.out_numel + 255) / 256;
        reduce_thread_per_output<<<(unsigned)(blocks > 65535 ? 65535 : blocks), 256, 0, stream>>>(pl);
        err = cudaGetLastError();
    } else if (pl.out_numel <= 1024 && pl.red_numel >= 32768) {
        /* two passes: aim for >= ~1024 blocks overall, >= 4096 elements per block */
        int64_t want = (1024 + pl.out_numel - 1) / pl.out_numel;
        int64_t max_chunks = pl.red_numel / 4096;
        int nchunks = (int)(want < max_chunks ? want : max_chunks);
        if (nchunks < 1) nchunks = 1;
        int64_t chunk_len = (pl.red_numel + nchunks - 1) / nchunks;
        so_red_acc *partials = NULL;
        size_t bytes = sizeof(so_red_acc) * (size_t)nchunks * (size_t)pl.out_numel;
        if ((err = cudaMallocAsync((void **)&partials, bytes, stream)) != cudaSuccess) goto done;
        reduce_partial<<<dim3((unsigned)nchunks, (unsigned)pl.out_numel), kThreads, 0, stream>>>(
            pl, chunk_len, partials);
        err = cudaGetLastError();
        if (err == cudaSuccess) {
            reduce_finish<<<(unsigned)pl.out_numel, threads_for(nchunks), 0, stream>>>(pl, nchunks,
                                                                                   partials);
            err = cudaGetLastError();
        }
        cudaError_t ferr = cudaFreeAsync(partials, stream);
        if (err == cudaSuccess) err = ferr;
    } else {
        int64_t blocks = pl.out_numel < 65535 * 16 ? pl.out_numel : 65535 * 16;
        reduce_block_per_output<<<(unsigned)blocks, threads_for(pl.red_numel), 0, stream>>>(pl);
        err = cudaGetLastError();
    }
done:
    if (prev != device_index) cudaSetDevice(prev);
    return (int)err;
}
