/* philox.cu — CUDA launcher for random fills: one thread per Philox block, computing
 * exactly what so_rand_fill_cpu computes for that block (the math is philox.h's, with
 * explicitly rounded intrinsics on the device so the bits match the CPU's). */
#include "philox.h"
#include <cuda_runtime.h>

namespace {

__global__ void rand_fill_kernel(so_rand_params p, char *data, int64_t n)
{
    const int per = so_rand_per_block(p.dtype);
    const int isz = so_dtype_itemsize(p.dtype);
    const int64_t nblocks = (n + per - 1) / per;
    for (int64_t j = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; j < nblocks;
         j += (int64_t)gridDim.x * blockDim.x) {
        int64_t left = n - j * per;
        so_rand_block(&p, (uint64_t)j, data + j * per * isz, left < per ? (int)left : per);
    }
}

} // namespace

extern "C" int so_rand_fill_cuda(const so_rand_params *p, char *data, int64_t n, void *stream)
{
    const int per = so_rand_per_block(p->dtype);
    int64_t nblocks = (n + per - 1) / per, grid = (nblocks + 255) / 256;
    if (n == 0) return 0;
    if (grid > 65535 * 8) grid = 65535 * 8;
    rand_fill_kernel<<<(int)grid, 256, 0, (cudaStream_t)stream>>>(*p, data, n);
    return (int)cudaGetLastError();
}
