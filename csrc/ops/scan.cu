/* scan.cu — CUDA kernels for the row scans of scan.h: one thread per row for cumsum, one
 * per draw for the inverse-CDF search; the math is scan.h's, shared with the CPU. */
#include "scan.h"
#include <cuda_runtime.h>

namespace {

__global__ void cumsum_rows(so_cumsum_plan pl)
{
    for (int64_t r = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; r < pl.g.rows;
         r += (int64_t)gridDim.x * blockDim.x)
        so_cumsum_row(&pl, r);
}

__global__ void cdf_search(so_cdf_plan pl)
{
    const int64_t n = pl.rows * pl.nsamp;
    for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < n;
         e += (int64_t)gridDim.x * blockDim.x)
        so_cdf_search_one(&pl, e);
}

unsigned grid_for(int64_t n, int threads)
{
    int64_t b = (n + threads - 1) / threads;
    return (unsigned)(b > 65535 ? 65535 : (b < 1 ? 1 : b));
}

} // namespace

extern "C" int so_cumsum_cuda(const so_cumsum_plan *pl, void *stream_ptr, int device_index)
{
    int prev = 0;
    cudaError_t e = cudaGetDevice(&prev);
    if (e != cudaSuccess) return (int)e;
    if (prev != device_index && (e = cudaSetDevice(device_index)) != cudaSuccess) return (int)e;
    cumsum_rows<<<grid_for(pl->g.rows, 128), 128, 0, (cudaStream_t)stream_ptr>>>(*pl);
    e = cudaGetLastError();
    if (prev != device_index) cudaSetDevice(prev);
    return (int)e;
}

extern "C" int so_cdf_search_cuda(const so_cdf_plan *pl, void *stream_ptr, int device_index)
{
    int prev = 0;
    cudaError_t e = cudaGetDevice(&prev);
    if (e != cudaSuccess) return (int)e;
    if (prev != device_index && (e = cudaSetDevice(device_index)) != cudaSuccess) return (int)e;
    cdf_search<<<grid_for(pl->rows * pl->nsamp, 256), 256, 0, (cudaStream_t)stream_ptr>>>(*pl);
    e = cudaGetLastError();
    if (prev != device_index) cudaSetDevice(prev);
    return (int)e;
}
