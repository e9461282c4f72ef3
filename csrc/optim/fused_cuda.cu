/* fused_cuda.cu — multi-tensor-apply SGD / Adam / AdamW / RMSprop / Adagrad on CUDA.
 *
 * Like PyTorch's multi_tensor_apply: the host walks the tensor list once, cutting every
 * tensor into chunks of MTA_CHUNK elements; each CUDA block updates one chunk.  The tensor
 * addresses, sizes and per-tensor scalars travel in the kernel's argument block (under the
 * classic 4 KiB limit), so one launch covers up to MAXT tensors / MTA_MAX_BLOCKS chunks and
 * nothing is copied to the device or synchronised: step() only enqueues launches on the
 * device's compute stream.  Per-element math comes from optim_math.h, shared with the CPU.
 *
 * Sizes are 64-bit; the chunk index is 32-bit, which covers tensors up to 2^31 * 65536
 * elements.  All operands must be contiguous (the binding checks); 16-byte aligned operands
 * take a 4-wide vector load path, others a scalar one (RMSprop and Adagrad: the scalar,
 * coalesced path only).
 */
#include <cuda_runtime.h>
#include <cuda_fp16.h>

#include "fused.h"

#define MTA_BLOCK 512
#define MTA_CHUNK 65536
#define MTA_MAX_BLOCKS 320
#define MTA_ILP 4

/* ---- storage types: how a param dtype is loaded into / stored from its math type ---- */

struct F32 {
    typedef float T;
    typedef float M;
    static __device__ __forceinline__ M load(T x) { return x; }
    static __device__ __forceinline__ T store(M x) { return x; }
};
struct F64 {
    typedef double T;
    typedef double M;
    static __device__ __forceinline__ M load(T x) { return x; }
    static __device__ __forceinline__ T store(M x) { return x; }
};
struct F16 {
    typedef uint16_t T;
    typedef float M;
    static __device__ __forceinline__ M load(T x) { return so_fp16_to_float(x); }
    static __device__ __forceinline__ T store(M x) { return so_float_to_fp16(x); }
};
struct BF16 {
    typedef uint16_t T;
    typedef float M;
    static __device__ __forceinline__ M load(T x) { return so_bf16_to_float(x); }
    static __device__ __forceinline__ T store(M x) { return so_float_to_bf16(x); }
};

/* Overloads so the kernels can be written once for both math types. */
static __device__ __forceinline__ void sgd_elem(float *p, float g, float *b, const so_sgd_f32 *c,
                                                int mx, int wd, int mom, int first, int nest)
{
    so_sgd_elem_f32(p, g, b, c, mx, wd, mom, first, nest);
}
static __device__ __forceinline__ void sgd_elem(double *p, double g, double *b,
                                                const so_sgd_f64 *c, int mx, int wd, int mom,
                                                int first, int nest)
{
    so_sgd_elem_f64(p, g, b, c, mx, wd, mom, first, nest);
}
static __device__ __forceinline__ void adam_elem(float *p, float g, float *m, float *v,
                                                 float *vmax, const so_adam_f32 *c, float ss,
                                                 float bc2s, int mx, int wdm, int ams)
{
    so_adam_elem_f32(p, g, m, v, vmax, c, ss, bc2s, mx, wdm, ams);
}
static __device__ __forceinline__ void adam_elem(double *p, double g, double *m, double *v,
                                                 double *vmax, const so_adam_f64 *c, double ss,
                                                 double bc2s, int mx, int wdm, int ams)
{
    so_adam_elem_f64(p, g, m, v, vmax, c, ss, bc2s, mx, wdm, ams);
}

static __device__ __forceinline__ void rmsprop_elem(float *p, float g, float *sq, float *b,
                                                    float *ga, const so_rmsprop_f32 *c, int mx,
                                                    int wd, int cen, int mom)
{
    so_rmsprop_elem_f32(p, g, sq, b, ga, c, mx, wd, cen, mom);
}
static __device__ __forceinline__ void rmsprop_elem(double *p, double g, double *sq, double *b,
                                                    double *ga, const so_rmsprop_f64 *c, int mx,
                                                    int wd, int cen, int mom)
{
    so_rmsprop_elem_f64(p, g, sq, b, ga, c, mx, wd, cen, mom);
}
static __device__ __forceinline__ void adagrad_elem(float *p, float g, float *sum,
                                                    const so_adagrad_f32 *c, float neg_clr,
                                                    int mx, int wd)
{
    so_adagrad_elem_f32(p, g, sum, c, neg_clr, mx, wd);
}
static __device__ __forceinline__ void adagrad_elem(double *p, double g, double *sum,
                                                    const so_adagrad_f64 *c, double neg_clr,
                                                    int mx, int wd)
{
    so_adagrad_elem_f64(p, g, sum, c, neg_clr, mx, wd);
}

template <typename M> struct SgdConsts;
template <> struct SgdConsts<float> { typedef so_sgd_f32 type; };
template <> struct SgdConsts<double> { typedef so_sgd_f64 type; };
template <typename M> struct AdamConsts;
template <> struct AdamConsts<float> { typedef so_adam_f32 type; };
template <> struct AdamConsts<double> { typedef so_adam_f64 type; };
template <typename M> struct RmspropConsts;
template <> struct RmspropConsts<float> { typedef so_rmsprop_f32 type; };
template <> struct RmspropConsts<double> { typedef so_rmsprop_f64 type; };
template <typename M> struct AdagradConsts;
template <> struct AdagradConsts<float> { typedef so_adagrad_f32 type; };
template <> struct AdagradConsts<double> { typedef so_adagrad_f64 type; };

/* ---- kernel argument blocks ---- */

template <int DEPTH, int MAXT> struct TensorListMeta {
    void *addr[DEPTH][MAXT];
    int64_t numel[MAXT];
    double s0[MAXT];                 /* Adam: step_size */
    double s1[MAXT];                 /* Adam: bc2_sqrt */
    unsigned char first[MAXT];       /* SGD: first step */
    unsigned char block_to_tensor[MTA_MAX_BLOCKS];
    int block_to_chunk[MTA_MAX_BLOCKS];
};

typedef TensorListMeta<3, 36> SgdMeta;
typedef TensorListMeta<5, 24> AdamMeta;
static_assert(sizeof(SgdMeta) + sizeof(so_sgd_f64) + 64 <= 4096, "SGD kernel args over 4 KiB");
static_assert(sizeof(AdamMeta) + sizeof(so_adam_f64) + 64 <= 4096, "Adam kernel args over 4 KiB");
static_assert(sizeof(AdamMeta) + sizeof(so_rmsprop_f64) + 64 <= 4096,
              "RMSprop kernel args over 4 KiB");

template <typename T> struct alignas(sizeof(T) * MTA_ILP) VecT {
    T v[MTA_ILP];
};

template <typename T> static __device__ __forceinline__ bool aligned_ilp(const void *p)
{
    return ((uintptr_t)p % (sizeof(T) * MTA_ILP)) == 0;
}

/* ---- kernels ---- */

struct SgdFlags {
    int maximize, has_wd, has_momentum, nesterov;
};
struct AdamFlags {
    int maximize, wd_mode, amsgrad;
};
struct RmspropFlags {
    int maximize, has_wd, centered, has_momentum;
};
struct AdagradFlags {
    int maximize, has_wd;
};

/* One element, for the unaligned path and the ragged tail. */
template <typename S>
static __device__ __forceinline__ void sgd_one(typename S::T *p, const typename S::T *g,
                                               typename S::T *b, int64_t j,
                                               const typename SgdConsts<typename S::M>::type *c,
                                               int first, SgdFlags f)
{
    typedef typename S::M M;
    M pm = S::load(p[j]), bm = f.has_momentum && !first ? S::load(b[j]) : M(0);
    sgd_elem(&pm, S::load(g[j]), &bm, c, f.maximize, f.has_wd, f.has_momentum, first,
             f.nesterov);
    p[j] = S::store(pm);
    if (f.has_momentum) b[j] = S::store(bm);
}

template <typename S>
__global__ void __launch_bounds__(MTA_BLOCK)
sgd_kernel(SgdMeta meta, typename SgdConsts<typename S::M>::type c, SgdFlags f)
{
    typedef typename S::T T;
    typedef typename S::M M;
    const int t = meta.block_to_tensor[blockIdx.x];
    const int64_t n = meta.numel[t];
    const int64_t start = (int64_t)meta.block_to_chunk[blockIdx.x] * MTA_CHUNK;
    const int64_t end = (start + MTA_CHUNK < n) ? start + MTA_CHUNK : n;
    T *p = (T *)meta.addr[0][t];
    const T *g = (const T *)meta.addr[1][t];
    T *b = f.has_momentum ? (T *)meta.addr[2][t] : p;
    const int first = f.has_momentum && meta.first[t];

    if (aligned_ilp<T>(p) && aligned_ilp<T>(g) && aligned_ilp<T>(b)) {
        /* 4 elements per thread per iteration with one vector load per operand */
        int64_t i = start + (int64_t)threadIdx.x * MTA_ILP;
        for (; i + MTA_ILP <= end; i += (int64_t)blockDim.x * MTA_ILP) {
            VecT<T> pv = *(VecT<T> *)(p + i), gv = *(const VecT<T> *)(g + i), bv;
            if (f.has_momentum && !first) bv = *(VecT<T> *)(b + i);
#pragma unroll
            for (int k = 0; k < MTA_ILP; k++) {
                M pm = S::load(pv.v[k]), bm = f.has_momentum && !first ? S::load(bv.v[k]) : M(0);
                sgd_elem(&pm, S::load(gv.v[k]), &bm, &c, f.maximize, f.has_wd, f.has_momentum,
                         first, f.nesterov);
                pv.v[k] = S::store(pm);
                bv.v[k] = S::store(bm);
            }
            *(VecT<T> *)(p + i) = pv;
            if (f.has_momentum) *(VecT<T> *)(b + i) = bv;
        }
        /* the chunk's ragged tail (only in a tensor's last chunk, one thread) */
        for (int64_t j = i; j < end; j++) sgd_one<S>(p, g, b, j, &c, first, f);
        return;
    }
    for (int64_t j = start + threadIdx.x; j < end; j += blockDim.x)
        sgd_one<S>(p, g, b, j, &c, first, f);
}

template <typename S>
static __device__ __forceinline__ void adam_one(typename S::T *p, const typename S::T *g,
                                                typename S::T *m, typename S::T *v,
                                                typename S::T *vmax, int64_t j,
                                                const typename AdamConsts<typename S::M>::type *c,
                                                typename S::M ss, typename S::M bc2s, AdamFlags f)
{
    typedef typename S::M M;
    M pm = S::load(p[j]), mm = S::load(m[j]), vm = S::load(v[j]);
    M xm = f.amsgrad ? S::load(vmax[j]) : M(0);
    adam_elem(&pm, S::load(g[j]), &mm, &vm, &xm, c, ss, bc2s, f.maximize, f.wd_mode, f.amsgrad);
    p[j] = S::store(pm);
    m[j] = S::store(mm);
    v[j] = S::store(vm);
    if (f.amsgrad) vmax[j] = S::store(xm);
}

template <typename S>
__global__ void __launch_bounds__(MTA_BLOCK)
adam_kernel(AdamMeta meta, typename AdamConsts<typename S::M>::type c, AdamFlags f)
{
    typedef typename S::T T;
    typedef typename S::M M;
    const int t = meta.block_to_tensor[blockIdx.x];
    const int64_t n = meta.numel[t];
    const int64_t start = (int64_t)meta.block_to_chunk[blockIdx.x] * MTA_CHUNK;
    const int64_t end = (start + MTA_CHUNK < n) ? start + MTA_CHUNK : n;
    const M ss = (M)meta.s0[t], bc2s = (M)meta.s1[t];
    T *p = (T *)meta.addr[0][t];
    const T *g = (const T *)meta.addr[1][t];
    T *m = (T *)meta.addr[2][t];
    T *v = (T *)meta.addr[3][t];
    T *vmax = f.amsgrad ? (T *)meta.addr[4][t] : v;

    if (aligned_ilp<T>(p) && aligned_ilp<T>(g) && aligned_ilp<T>(m) && aligned_ilp<T>(v) &&
        aligned_ilp<T>(vmax)) {
        int64_t i = start + (int64_t)threadIdx.x * MTA_ILP;
        for (; i + MTA_ILP <= end; i += (int64_t)blockDim.x * MTA_ILP) {
            VecT<T> pv = *(VecT<T> *)(p + i), gv = *(const VecT<T> *)(g + i);
            VecT<T> mv = *(VecT<T> *)(m + i), vv = *(VecT<T> *)(v + i), xv;
            if (f.amsgrad) xv = *(VecT<T> *)(vmax + i);
#pragma unroll
            for (int k = 0; k < MTA_ILP; k++) {
                M pm = S::load(pv.v[k]), mm = S::load(mv.v[k]), vm = S::load(vv.v[k]);
                M xm = f.amsgrad ? S::load(xv.v[k]) : M(0);
                adam_elem(&pm, S::load(gv.v[k]), &mm, &vm, &xm, &c, ss, bc2s, f.maximize,
                          f.wd_mode, f.amsgrad);
                pv.v[k] = S::store(pm);
                mv.v[k] = S::store(mm);
                vv.v[k] = S::store(vm);
                xv.v[k] = S::store(xm);
            }
            *(VecT<T> *)(p + i) = pv;
            *(VecT<T> *)(m + i) = mv;
            *(VecT<T> *)(v + i) = vv;
            if (f.amsgrad) *(VecT<T> *)(vmax + i) = xv;
        }
        /* the chunk's ragged tail (only in a tensor's last chunk, one thread) */
        for (int64_t j = i; j < end; j++) adam_one<S>(p, g, m, v, vmax, j, &c, ss, bc2s, f);
        return;
    }
    for (int64_t j = start + threadIdx.x; j < end; j += blockDim.x)
        adam_one<S>(p, g, m, v, vmax, j, &c, ss, bc2s, f);
}

/* RMSprop: slots 0 param, 1 grad, 2 square_avg, 3 momentum_buffer, 4 grad_avg (the last two
 * alias square_avg when unused and are then never touched). */
template <typename S>
__global__ void __launch_bounds__(MTA_BLOCK)
rmsprop_kernel(AdamMeta meta, typename RmspropConsts<typename S::M>::type c, RmspropFlags f)
{
    typedef typename S::T T;
    typedef typename S::M M;
    const int t = meta.block_to_tensor[blockIdx.x];
    const int64_t n = meta.numel[t];
    const int64_t start = (int64_t)meta.block_to_chunk[blockIdx.x] * MTA_CHUNK;
    const int64_t end = (start + MTA_CHUNK < n) ? start + MTA_CHUNK : n;
    T *p = (T *)meta.addr[0][t];
    const T *g = (const T *)meta.addr[1][t];
    T *sq = (T *)meta.addr[2][t];
    T *b = f.has_momentum ? (T *)meta.addr[3][t] : sq;
    T *ga = f.centered ? (T *)meta.addr[4][t] : sq;
    for (int64_t j = start + threadIdx.x; j < end; j += blockDim.x) {
        M pm = S::load(p[j]), sm = S::load(sq[j]);
        M bm = f.has_momentum ? S::load(b[j]) : M(0);
        M gm = f.centered ? S::load(ga[j]) : M(0);
        rmsprop_elem(&pm, S::load(g[j]), &sm, &bm, &gm, &c, f.maximize, f.has_wd, f.centered,
                     f.has_momentum);
        p[j] = S::store(pm);
        sq[j] = S::store(sm);
        if (f.has_momentum) b[j] = S::store(bm);
        if (f.centered) ga[j] = S::store(gm);
    }
}

/* Adagrad: slots 0 param, 1 grad, 2 sum; s0 carries the tensor's -clr. */
template <typename S>
__global__ void __launch_bounds__(MTA_BLOCK)
adagrad_kernel(SgdMeta meta, typename AdagradConsts<typename S::M>::type c, AdagradFlags f)
{
    typedef typename S::T T;
    typedef typename S::M M;
    const int t = meta.block_to_tensor[blockIdx.x];
    const int64_t n = meta.numel[t];
    const int64_t start = (int64_t)meta.block_to_chunk[blockIdx.x] * MTA_CHUNK;
    const int64_t end = (start + MTA_CHUNK < n) ? start + MTA_CHUNK : n;
    const M neg_clr = (M)meta.s0[t];
    T *p = (T *)meta.addr[0][t];
    const T *g = (const T *)meta.addr[1][t];
    T *sum = (T *)meta.addr[2][t];
    for (int64_t j = start + threadIdx.x; j < end; j += blockDim.x) {
        M pm = S::load(p[j]), sm = S::load(sum[j]);
        adagrad_elem(&pm, S::load(g[j]), &sm, &c, neg_clr, f.maximize, f.has_wd);
        p[j] = S::store(pm);
        sum[j] = S::store(sm);
    }
}

/* ---- host side: chunking and launches ---- */

/* Walk the list, packing (tensor, chunk) pairs into launches.  A tensor cut by a full launch
 * continues in slot 0 of the next one.  `fill(meta, slot, tensor)` writes one slot;
 * `launch(meta, nblocks)` enqueues a kernel.  Returns a cudaError_t. */
template <typename Meta, int DEPTH, int MAXT, typename Fill, typename Launch>
static int mta_run(const so_optim_tensor *ts, int64_t n, Fill fill, Launch launch)
{
    Meta meta;
    int nt = 0, nb = 0;
    for (int64_t i = 0; i < n; i++) {
        const so_optim_tensor *t = &ts[i];
        if (t->numel == 0) continue;
        fill(meta, nt, t);
        nt++;
        const int64_t chunks = (t->numel + MTA_CHUNK - 1) / MTA_CHUNK;
        for (int64_t ch = 0; ch < chunks; ch++) {
            meta.block_to_tensor[nb] = (unsigned char)(nt - 1);
            meta.block_to_chunk[nb] = (int)ch;
            nb++;
            const bool tensors_full = (nt == MAXT) && (ch == chunks - 1);
            const bool blocks_full = (nb == MTA_MAX_BLOCKS);
            if (tensors_full || blocks_full) {
                cudaError_t err = launch(meta, nb);
                if (err != cudaSuccess) return (int)err;
                nb = 0;
                if (ch == chunks - 1) {
                    nt = 0;
                } else { /* the current tensor goes on in the next launch */
                    for (int d = 0; d < DEPTH; d++) meta.addr[d][0] = meta.addr[d][nt - 1];
                    meta.numel[0] = meta.numel[nt - 1];
                    meta.s0[0] = meta.s0[nt - 1];
                    meta.s1[0] = meta.s1[nt - 1];
                    meta.first[0] = meta.first[nt - 1];
                    nt = 1;
                }
            }
        }
    }
    if (nb > 0) {
        cudaError_t err = launch(meta, nb);
        if (err != cudaSuccess) return (int)err;
    }
    return 0;
}

template <typename S, typename C>
static int sgd_run(cudaStream_t stream, const so_optim_tensor *ts, int64_t n, const C &c,
                   SgdFlags f)
{
    auto fill = [](SgdMeta &meta, int slot, const so_optim_tensor *t) {
        for (int d = 0; d < 3; d++) meta.addr[d][slot] = t->data[d];
        meta.numel[slot] = t->numel;
        meta.s0[slot] = 0.0;
        meta.s1[slot] = 0.0;
        meta.first[slot] = (unsigned char)(t->first != 0);
    };
    auto launch = [&](const SgdMeta &meta, int nb) {
        sgd_kernel<S><<<nb, MTA_BLOCK, 0, stream>>>(meta, c, f);
        return cudaGetLastError();
    };
    return mta_run<SgdMeta, 3, 36>(ts, n, fill, launch);
}

template <typename S, typename C>
static int adam_run(cudaStream_t stream, const so_optim_tensor *ts, int64_t n, const C &c,
                    AdamFlags f)
{
    auto fill = [](AdamMeta &meta, int slot, const so_optim_tensor *t) {
        for (int d = 0; d < 5; d++) meta.addr[d][slot] = t->data[d];
        meta.numel[slot] = t->numel;
        meta.s0[slot] = t->step.step_size;
        meta.s1[slot] = t->step.bc2_sqrt;
        meta.first[slot] = 0;
    };
    auto launch = [&](const AdamMeta &meta, int nb) {
        adam_kernel<S><<<nb, MTA_BLOCK, 0, stream>>>(meta, c, f);
        return cudaGetLastError();
    };
    return mta_run<AdamMeta, 5, 24>(ts, n, fill, launch);
}

template <typename S, typename C>
static int rmsprop_run(cudaStream_t stream, const so_optim_tensor *ts, int64_t n, const C &c,
                       RmspropFlags f)
{
    auto fill = [](AdamMeta &meta, int slot, const so_optim_tensor *t) {
        for (int d = 0; d < 5; d++) meta.addr[d][slot] = t->data[d];
        meta.numel[slot] = t->numel;
        meta.s0[slot] = 0.0;
        meta.s1[slot] = 0.0;
        meta.first[slot] = 0;
    };
    auto launch = [&](const AdamMeta &meta, int nb) {
        rmsprop_kernel<S><<<nb, MTA_BLOCK, 0, stream>>>(meta, c, f);
        return cudaGetLastError();
    };
    return mta_run<AdamMeta, 5, 24>(ts, n, fill, launch);
}

template <typename S, typename C>
static int adagrad_run(cudaStream_t stream, const so_optim_tensor *ts, int64_t n, const C &c,
                       AdagradFlags f)
{
    auto fill = [](SgdMeta &meta, int slot, const so_optim_tensor *t) {
        for (int d = 0; d < 3; d++) meta.addr[d][slot] = t->data[d];
        meta.numel[slot] = t->numel;
        meta.s0[slot] = t->step.step_size; /* -clr */
        meta.s1[slot] = 0.0;
        meta.first[slot] = 0;
    };
    auto launch = [&](const SgdMeta &meta, int nb) {
        adagrad_kernel<S><<<nb, MTA_BLOCK, 0, stream>>>(meta, c, f);
        return cudaGetLastError();
    };
    return mta_run<SgdMeta, 3, 36>(ts, n, fill, launch);
}

/* Entry points.  The list is grouped by dtype here (a group normally has one dtype): each
 * dtype's tensors are gathered into their own run so that a launch covers one dtype. */
template <typename Run>
static int by_dtype(const so_optim_tensor *ts, int64_t n, Run run)
{
    int present[SO_NUM_DTYPES] = {0};
    int ndt = 0;
    for (int64_t i = 0; i < n; i++)
        if (!present[ts[i].dtype]++) ndt++;
    if (ndt <= 1) return n > 0 ? run(ts[0].dtype, ts, n) : 0;
    so_optim_tensor *sub = (so_optim_tensor *)malloc(sizeof(so_optim_tensor) * (size_t)n);
    if (sub == NULL) return (int)cudaErrorMemoryAllocation;
    int rc = 0;
    for (int dt = 0; dt < SO_NUM_DTYPES && rc == 0; dt++) {
        if (!present[dt]) continue;
        int64_t k = 0;
        for (int64_t i = 0; i < n; i++)
            if (ts[i].dtype == dt) sub[k++] = ts[i];
        rc = run(dt, sub, k);
    }
    free(sub);
    return rc;
}

extern "C" int so_fused_sgd_cuda(void *stream, const so_optim_tensor *ts, int64_t n,
                                 const so_sgd_f32 *c32, const so_sgd_f64 *c64, so_sgd_flags fl)
{
    cudaStream_t s = (cudaStream_t)stream;
    SgdFlags f = {fl.maximize, fl.has_wd, fl.has_momentum, fl.has_momentum && fl.nesterov};
    return by_dtype(ts, n, [&](int dt, const so_optim_tensor *t, int64_t k) -> int {
        switch (dt) {
        case SO_FLOAT32: return sgd_run<F32>(s, t, k, *c32, f);
        case SO_FLOAT64: return sgd_run<F64>(s, t, k, *c64, f);
        case SO_FLOAT16: return sgd_run<F16>(s, t, k, *c32, f);
        case SO_BFLOAT16: return sgd_run<BF16>(s, t, k, *c32, f);
        default: return (int)cudaErrorInvalidValue;
        }
    });
}

extern "C" int so_fused_adam_cuda(void *stream, const so_optim_tensor *ts, int64_t n,
                                  const so_adam_f32 *c32, const so_adam_f64 *c64,
                                  so_adam_flags fl)
{
    cudaStream_t s = (cudaStream_t)stream;
    AdamFlags f = {fl.maximize, fl.wd_mode, fl.amsgrad};
    return by_dtype(ts, n, [&](int dt, const so_optim_tensor *t, int64_t k) -> int {
        switch (dt) {
        case SO_FLOAT32: return adam_run<F32>(s, t, k, *c32, f);
        case SO_FLOAT64: return adam_run<F64>(s, t, k, *c64, f);
        case SO_FLOAT16: return adam_run<F16>(s, t, k, *c32, f);
        case SO_BFLOAT16: return adam_run<BF16>(s, t, k, *c32, f);
        default: return (int)cudaErrorInvalidValue;
        }
    });
}

extern "C" int so_fused_rmsprop_cuda(void *stream, const so_optim_tensor *ts, int64_t n,
                                     const so_rmsprop_f32 *c32, const so_rmsprop_f64 *c64,
                                     so_rmsprop_flags fl)
{
    cudaStream_t s = (cudaStream_t)stream;
    RmspropFlags f = {fl.maximize, fl.has_wd, fl.centered, fl.has_momentum};
    return by_dtype(ts, n, [&](int dt, const so_optim_tensor *t, int64_t k) -> int {
        switch (dt) {
        case SO_FLOAT32: return rmsprop_run<F32>(s, t, k, *c32, f);
        case SO_FLOAT64: return rmsprop_run<F64>(s, t, k, *c64, f);
        case SO_FLOAT16: return rmsprop_run<F16>(s, t, k, *c32, f);
        case SO_BFLOAT16: return rmsprop_run<BF16>(s, t, k, *c32, f);
        default: return (int)cudaErrorInvalidValue;
        }
    });
}

extern "C" int so_fused_adagrad_cuda(void *stream, const so_optim_tensor *ts, int64_t n,
                                     const so_adagrad_f32 *c32, const so_adagrad_f64 *c64,
                                     so_adagrad_flags fl)
{
    cudaStream_t s = (cudaStream_t)stream;
    AdagradFlags f = {fl.maximize, fl.has_wd};
    return by_dtype(ts, n, [&](int dt, const so_optim_tensor *t, int64_t k) -> int {
        switch (dt) {
        case SO_FLOAT32: return adagrad_run<F32>(s, t, k, *c32, f);
        case SO_FLOAT64: return adagrad_run<F64>(s, t, k, *c64, f);
        case SO_FLOAT16: return adagrad_run<F16>(s, t, k, *c32, f);
        case SO_BFLOAT16: return adagrad_run<BF16>(s, t, k, *c32, f);
        default: return (int)cudaErrorInvalidValue;
        }
    });
}
