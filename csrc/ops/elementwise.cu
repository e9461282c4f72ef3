/* elementwise.cu — CUDA kernels of the elementwise ops and their launcher.
 *
 * The per-element math is the SO_HD code in elementwise_math.h, the same functions the CPU
 * loops call; only the walk differs.  Two kernels per (compute type, op):
 *   ew_contig  — every operand contiguous (or a by-value scalar) and already in the compute
 *                dtype: typed pointers, grid-stride loop;
 *   ew_strided — anything else: an offset calculator over up to SO_MAX_DIMS coalesced dims
 *                (64-bit indices and byte strides) and on-the-fly dtype conversion, so
 *                broadcast and strided inputs are never copied first.
 * Dims are coalesced on the host with so_nditer_init (the CPU iterator's own rules).
 * Everything is launched on the caller's stream (the per-device compute stream).
 */
#include "elementwise_math.h"
#include "../core/nditer.h"
#include <cuda_runtime.h>
#include <type_traits>

namespace {

struct Operand {
    const char *data;
    int dtype;
    int is_scalar;
    double sf;
    int64_t si;
    int64_t strides[SO_MAX_DIMS]; /* bytes */
};

struct Args {
    int ndim, nin;
    int64_t n;
    int64_t shape[SO_MAX_DIMS];
    char *out;
    int out_dt;
    int64_t out_strides[SO_MAX_DIMS]; /* bytes */
    Operand in[SO_EW_MAX_IN];
    so_ew_params p;
};

/* ---- compute-type overloads of the shared math ---- */
__device__ __forceinline__ float ew_unary(int op, float x, const so_ew_params *p) { return so_ew_unary_f(op, x, p); }
__device__ __forceinline__ double ew_unary(int op, double x, const so_ew_params *p) { return so_ew_unary_d(op, x, p); }
__device__ __forceinline__ int64_t ew_unary(int op, int64_t x, const so_ew_params *p) { return so_ew_unary_i(op, x, p); }
__device__ __forceinline__ float ew_binary(int op, float a, float b, const so_ew_params *p) { return so_ew_binary_f(op, a, b, p); }
__device__ __forceinline__ double ew_binary(int op, double a, double b, const so_ew_params *p) { return so_ew_binary_d(op, a, b, p); }
__device__ __forceinline__ int64_t ew_binary(int op, int64_t a, int64_t b, const so_ew_params *p) { return so_ew_binary_i(op, a, b, p); }
__device__ __forceinline__ uint8_t ew_compare(int op, float a, float b, const so_ew_params *p) { return so_ew_compare_f(op, a, b, p); }
__device__ __forceinline__ uint8_t ew_compare(int op, double a, double b, const so_ew_params *p) { return so_ew_compare_d(op, a, b, p); }
__device__ __forceinline__ uint8_t ew_compare(int op, int64_t a, int64_t b, const so_ew_params *p) { return so_ew_compare_i(op, a, b, p); }
__device__ __forceinline__ float ew_ternary(int op, float a, float b, float c, const so_ew_params *p) { return so_ew_ternary_f(op, a, b, c, p); }
__device__ __forceinline__ double ew_ternary(int op, double a, double b, double c, const so_ew_params *p) { return so_ew_ternary_d(op, a, b, c, p); }
__device__ __forceinline__ int64_t ew_ternary(int op, int64_t a, int64_t b, int64_t c, const so_ew_params *p) { return so_ew_ternary_i(op, a, b, c, p); }

/* ---- loads and stores with conversion (the conversions of common.h) ---- */
template <typename CT> __device__ __forceinline__ CT load_as(const char *p, int dt);
template <> __device__ __forceinline__ float load_as<float>(const char *p, int dt)
{
    switch (dt) {
    case SO_FLOAT32: return *(const float *)p;
    case SO_FLOAT16: return so_fp16_to_float(*(const uint16_t *)p);
    case SO_BFLOAT16: return so_bf16_to_float(*(const uint16_t *)p);
    case SO_INT32: return (float)*(const int32_t *)p;
    case SO_INT64: return (float)*(const int64_t *)p;
    case SO_BOOL: return *(const uint8_t *)p ? 1.f : 0.f;
    default: return (float)so_load_as_f64(p, dt);
    }
}
template <> __device__ __forceinline__ double load_as<double>(const char *p, int dt)
{
    return dt == SO_FLOAT64 ? *(const double *)p : so_load_as_f64(p, dt);
}
template <> __device__ __forceinline__ int64_t load_as<int64_t>(const char *p, int dt)
{
    return dt == SO_INT64 ? *(const int64_t *)p : so_load_as_i64(p, dt);
}

template <typename CT> __device__ __forceinline__ CT scalar_as(const Operand &o);
template <> __device__ __forceinline__ float scalar_as<float>(const Operand &o)
{
    return so_dtype_is_float(o.dtype) ? (float)o.sf : (float)o.si;
}
template <> __device__ __forceinline__ double scalar_as<double>(const Operand &o)
{
    return so_dtype_is_float(o.dtype) ? o.sf : (double)o.si;
}
template <> __device__ __forceinline__ int64_t scalar_as<int64_t>(const Operand &o) { return o.si; }

__device__ __forceinline__ void store_from(char *p, int dt, float v)
{
    if (dt == SO_FLOAT32) *(float *)p = v;
    else if (dt == SO_FLOAT16) *(uint16_t *)p = so_float_to_fp16(v);
    else if (dt == SO_BFLOAT16) *(uint16_t *)p = so_float_to_bf16(v);
    else so_store_f64(p, dt, v);
}
__device__ __forceinline__ void store_from(char *p, int dt, double v) { so_store_f64(p, dt, v); }
__device__ __forceinline__ void store_from(char *p, int dt, int64_t v) { so_store_i64(p, dt, v); }
__device__ __forceinline__ void store_from(char *p, int dt, uint8_t v)
{
    if (dt == SO_BOOL) *(uint8_t *)p = v;
    else so_store_i64(p, dt, v);
}

/* One element of op OP from compute-type inputs v[]: the result in its native type. */
template <typename CT, int OP> struct Apply {
    static constexpr bool compare = SO_EW_IS_COMPARE(OP);
    typedef typename std::conditional<compare, uint8_t, CT>::type Out;
    __device__ __forceinline__ static Out run(const CT *v, const so_ew_params *p)
    {
        if constexpr (SO_EW_IS_UNARY(OP)) return ew_unary(OP, v[0], p);
        else if constexpr (SO_EW_IS_BINARY(OP)) return ew_binary(OP, v[0], v[1], p);
        else if constexpr (compare) return ew_compare(OP, v[0], v[1], p);
        else if constexpr (SO_EW_IS_TERNARY(OP)) return ew_ternary(OP, v[0], v[1], v[2], p);
        else return v[0] != (CT)0 ? v[1] : v[2]; /* where */
    }
};

template <typename CT, int OP> __global__ void ew_strided(Args a)
{
    const so_ew_params p = a.p;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < a.n;
         i += (int64_t)gridDim.x * blockDim.x) {
        int64_t rem = i, off_o = 0, off[SO_EW_MAX_IN] = {0, 0, 0};
        for (int d = a.ndim - 1; d >= 0; d--) {
            int64_t sz = a.shape[d], idx = rem % sz;
            rem /= sz;
            off_o += idx * a.out_strides[d];
#pragma unroll
            for (int k = 0; k < SO_EW_MAX_IN; k++) off[k] += idx * a.in[k].strides[d];
        }
        CT v[SO_EW_MAX_IN];
#pragma unroll
        for (int k = 0; k < SO_EW_MAX_IN; k++)
            v[k] = k >= a.nin ? (CT)0
                   : a.in[k].is_scalar ? scalar_as<CT>(a.in[k])
                                       : load_as<CT>(a.in[k].data + off[k], a.in[k].dtype);
        store_from(a.out + off_o, a.out_dt, Apply<CT, OP>::run(v, &p));
    }
}

/* Contiguous operands already in their native dtype (where's condition: bool bytes). */
template <typename CT, int OP> __global__ void ew_contig(Args a)
{
    typedef typename Apply<CT, OP>::Out Out;
    const so_ew_params p = a.p;
    Out *out = (Out *)a.out;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < a.n;
         i += (int64_t)gridDim.x * blockDim.x) {
        CT v[SO_EW_MAX_IN];
#pragma unroll
        for (int k = 0; k < SO_EW_MAX_IN; k++) {
            if (k >= a.nin) v[k] = (CT)0;
            else if (a.in[k].is_scalar) v[k] = scalar_as<CT>(a.in[k]);
            else if (OP == SO_EW_WHERE && k == 0) v[k] = ((const uint8_t *)a.in[0].data)[i] ? (CT)1 : (CT)0;
            else v[k] = ((const CT *)a.in[k].data)[i];
        }
        out[i] = Apply<CT, OP>::run(v, &p);
    }
}

int grid_for(int64_t n)
{
    int64_t blocks = (n + 255) / 256;
    return (int)(blocks > 65535 * 8 ? 65535 * 8 : (blocks < 1 ? 1 : blocks));
}

template <typename CT> int native_dtype();
template <> int native_dtype<float>() { return SO_FLOAT32; }
template <> int native_dtype<double>() { return SO_FLOAT64; }
template <> int native_dtype<int64_t>() { return SO_INT64; }

template <typename CT, int OP> int launch(Args &a, cudaStream_t stream)
{
    int contig = a.ndim <= 1;
    int ct = native_dtype<CT>();
    int out_native = SO_EW_IS_COMPARE(OP) ? SO_BOOL : ct;
    if (a.out_dt != out_native || (a.ndim == 1 && a.out_strides[0] != so_dtype_itemsize(out_native)))
        contig = 0;
    for (int k = 0; k < a.nin && contig; k++) {
        const Operand &o = a.in[k];
        int native = (OP == SO_EW_WHERE && k == 0) ? SO_BOOL : ct;
        if (o.is_scalar) continue;
        if (o.dtype != native || (a.ndim == 1 && o.strides[0] != so_dtype_itemsize(native)))
            contig = 0;
    }
    if (contig) ew_contig<CT, OP><<<grid_for(a.n), 256, 0, stream>>>(a);
    else ew_strided<CT, OP><<<grid_for(a.n), 256, 0, stream>>>(a);
    return (int)cudaGetLastError();
}

#define LAUNCH_CASE(O) case SO_EW_##O: return launch<CT, SO_EW_##O>(a, stream);

template <typename CT> int dispatch_float(int op, Args &a, cudaStream_t stream)
{
    switch (op) {
        SO_EW_UNARY_FLOAT_OPS(LAUNCH_CASE) SO_EW_BINARY_FLOAT_OPS(LAUNCH_CASE)
        SO_EW_COMPARE_OPS(LAUNCH_CASE) SO_EW_TERNARY_FLOAT_OPS(LAUNCH_CASE)
        LAUNCH_CASE(WHERE)
    default: return (int)cudaErrorNotSupported;
    }
}

int dispatch_int(int op, Args &a, cudaStream_t stream)
{
    typedef int64_t CT;
    switch (op) {
        SO_EW_UNARY_INT_OPS(LAUNCH_CASE) SO_EW_BINARY_INT_OPS(LAUNCH_CASE)
        SO_EW_BINARY_INTDIV_OPS(LAUNCH_CASE) SO_EW_COMPARE_OPS(LAUNCH_CASE)
        SO_EW_TERNARY_INT_OPS(LAUNCH_CASE) LAUNCH_CASE(WHERE)
    default: return (int)cudaErrorNotSupported;
    }
}

} // namespace

extern "C" int so_ew_run_cuda(const so_ew_call *c, void *stream)
{
    so_view views[SO_ITER_MAX_OPS];
    so_nditer it;
    Args a;
    memset(&a, 0, sizeof a);
    views[0] = c->out;
    for (int k = 0; k < c->nin; k++) views[1 + k] = c->in[k];
    so_nditer_init(&it, 1 + c->nin, views);
    if (it.numel == 0) return 0;
    a.ndim = it.ndim;
    a.nin = c->nin;
    a.n = it.numel;
    a.out = it.data[0];
    a.out_dt = c->out.dtype;
    a.p = c->p;
    for (int d = 0; d < it.ndim; d++) {
        a.shape[d] = it.shape[d];
        a.out_strides[d] = it.strides[0][d];
    }
    for (int k = 0; k < c->nin; k++) {
        Operand &o = a.in[k];
        o.data = c->is_scalar[k] ? NULL : it.data[1 + k];
        o.dtype = c->in[k].dtype;
        o.is_scalar = c->is_scalar[k];
        o.sf = c->scalar_f[k];
        o.si = c->scalar_i[k];
        for (int d = 0; d < it.ndim; d++) o.strides[d] = c->is_scalar[k] ? 0 : it.strides[1 + k][d];
    }
    cudaStream_t s = (cudaStream_t)stream;
    if (c->ct == SO_FLOAT32) return dispatch_float<float>(c->op, a, s);
    if (c->ct == SO_FLOAT64) return dispatch_float<double>(c->op, a, s);
    return dispatch_int(c->op, a, s);
}
