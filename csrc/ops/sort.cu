/* sort.cu — sort / topk on the GPU: one thread per row running the shared per-row
 * routine of sort.h (so the order, NaN and tie rules are the CPU's by construction).
 * Rows are independent; a single very long row runs on one thread, which is correct but
 * slow — batched rows (the common case: topk over logits) fill the device. */
#include "sort.h"
#include <cuda_runtime.h>

namespace {

__global__ void sort_rows(so_sort_plan pl)
{
    for (int64_t r = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; r < pl.g.rows;
         r += (int64_t)gridDim.x * blockDim.x)
        so_sort_one_row(&pl, r);
}

} // namespace

extern "C" int so_sort_cuda(const so_sort_plan *pl, void *stream_ptr, int device_index)
{
    cudaStream_t stream = (cudaStream_t)stream_ptr;
    int prev = 0;
    cudaError_t e = cudaGetDevice(&prev);
    if (e != cudaSuccess) return (int)e;
    if (prev != device_index && (e = cudaSetDevice(device_index)) != cudaSuccess) return (int)e;
    if (pl->g.rows > 0) {
        int64_t blocks = (pl->g.rows + 127) / 128;
        sort_rows<<<(unsigned)(blocks > 65535 ? 65535 : blocks), 128, 0, stream>>>(*pl);
        e = cudaGetLastError();
    }
    if (prev != device_index) cudaSetDevice(prev);
    return (int)e;
}
