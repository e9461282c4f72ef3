/* dropout.cu — CUDA kernel of dropout: one thread per Philox block (4 elements), the mask
 * from dropout.h, the same bits the CPU loop produces. */
#include "dropout.h"
#include <cuda_runtime.h>

namespace {

template <typename T>
__global__ void dropout_kernel(so_dropout_call c)
{
    const int64_t nblocks = (c.n + 3) / 4;
    for (int64_t j = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; j < nblocks;
         j += (int64_t)gridDim.x * blockDim.x) {
        uint8_t keep[4];
        int cnt = so_dropout_block(&c, (uint64_t)j, keep);
        for (int l = 0; l < cnt; l++) {
            int64_t i = j * 4 + l;
            ((T *)c.out)[i] = keep[l] ? ((const T *)c.x)[i] * (T)c.scale : (T)0;
            c.mask[i] = keep[l];
        }
    }
}

} // namespace

extern "C" int so_dropout_cuda(const so_dropout_call *c, void *stream)
{
    int64_t nblocks = (c->n + 3) / 4, grid = (nblocks + 255) / 256;
    if (c->n == 0) return 0;
    if (grid > 65535 * 8) grid = 65535 * 8;
    if (c->dtype == SO_FLOAT64)
        dropout_kernel<double><<<(unsigned)grid, 256, 0, (cudaStream_t)stream>>>(*c);
    else
        dropout_kernel<float><<<(unsigned)grid, 256, 0, (cudaStream_t)stream>>>(*c);
    return (int)cudaGetLastError();
}
