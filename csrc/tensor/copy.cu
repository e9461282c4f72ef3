/* copy.cu — CUDA kernels for strided copy-with-conversion and fill (launchers below).
 * Element conversions are the shared ones from common.h, so CPU and GPU casts agree. */
#include "../core/common.h"
#include <cuda_runtime.h>

namespace {

struct Geometry {
    int ndim;
    int64_t shape[SO_MAX_DIMS];
    int64_t dst_strides[SO_MAX_DIMS];
    int64_t src_strides[SO_MAX_DIMS];
};

__global__ void copy_kernel(char *dst, int ddt, const char *src, int sdt, Geometry g, int64_t n)
{
    const int dsz = so_dtype_itemsize(ddt), ssz = so_dtype_itemsize(sdt);
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        int64_t rem = i, doff = 0, soff = 0;
        for (int d = g.ndim - 1; d >= 0; d--) {
            int64_t idx = rem % g.shape[d];
            rem /= g.shape[d];
            doff += idx * g.dst_strides[d];
            soff += idx * g.src_strides[d];
        }
        so_convert_elem(dst + doff * dsz, ddt, src + soff * ssz, sdt);
    }
}

__global__ void fill_kernel(char *dst, int dt, Geometry g, int64_t n, uint64_t bits)
{
    const int sz = so_dtype_itemsize(dt);
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        int64_t rem = i, off = 0;
        for (int d = g.ndim - 1; d >= 0; d--) {
            off += (rem % g.shape[d]) * g.dst_strides[d];
            rem /= g.shape[d];
        }
        memcpy(dst + off * sz, &bits, sz);
    }
}

int grid_for(int64_t n)
{
    int64_t blocks = (n + 255) / 256;
    return (int)(blocks > 65535 * 8 ? 65535 * 8 : (blocks < 1 ? 1 : blocks));
}

} // namespace

extern "C" int so_copy_cuda(const so_view *dst, const so_view *src, void *stream)
{
    Geometry g;
    int64_t n = 1;
    g.ndim = dst->ndim;
    for (int d = 0; d < dst->ndim; d++) {
        g.shape[d] = dst->shape[d];
        g.dst_strides[d] = dst->strides[d];
        g.src_strides[d] = src->strides[d];
        n *= dst->shape[d];
    }
    if (n == 0) return 0;
    copy_kernel<<<grid_for(n), 256, 0, (cudaStream_t)stream>>>(dst->data, dst->dtype, src->data,
                                                                 src->dtype, g, n);
    return (int)cudaGetLastError();
}

extern "C" int so_fill_cuda(const so_view *dst, double fvalue, int64_t ivalue, void *stream)
{
    Geometry g;
    int64_t n = 1;
    uint64_t bits = 0;
    g.ndim = dst->ndim;
    for (int d = 0; d < dst->ndim; d++) {
        g.shape[d] = dst->shape[d];
        g.dst_strides[d] = dst->strides[d];
        g.src_strides[d] = 0;
        n *= dst->shape[d];
    }
    if (n == 0) return 0;
    if (so_dtype_is_float(dst->dtype))
        so_store_f64((char *)&bits, dst->dtype, fvalue);
    else
        so_store_i64((char *)&bits, dst->dtype, ivalue);
    fill_kernel<<<grid_for(n), 256, 0, (cudaStream_t)stream>>>(dst->data, dst->dtype, g, n, bits);
    return (int)cudaGetLastError();
}
