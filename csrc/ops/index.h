/* index.h — gather, scatter, index_select and advanced (integer-tensor / boolean) indexing:
 * the one element walk they all share, and the per-element math both devices run.
 *
 * Every such op is "for each element of an iteration shape, find one element of `self`
 * through some index tensors, and move data between it and one element of `other`":
 *   self offset  = sum_d c_d * self_strides[d] + sum_k wrap(idx_k[sum_d c_d * idx_strides[k][d]]) * idx_step[k]
 *   other offset = sum_d c_d * other_strides[d]
 * gather / x[idx]:       other (the new output) = self            (SO_IDX_GET)
 * scatter_ / x[idx] = v: self = other (the values)                 (SO_IDX_PUT)
 * scatter_add_ / index_put_(accumulate=True) / index backward:
 *                        self += other                             (SO_IDX_ADD)
 * Broadcasting is expressed by zero strides.  Index values are checked against idx_size
 * (negative values wrap once, as Python's); the first bad one is reported, never used.
 * self and other share one dtype (the callers convert values first).
 */
#ifndef SO_INDEX_H
#define SO_INDEX_H

#include "../core/common.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SO_INDEX_MAX 8 /* index tensors in one expression */

enum { SO_IDX_GET = 0, SO_IDX_PUT = 1, SO_IDX_ADD = 2 };

typedef struct {
    int mode;
    int dtype;
    int ndim;
    int64_t shape[SO_MAX_DIMS];
    int64_t numel;
    char *self;
    int64_t self_strides[SO_MAX_DIMS];   /* elements */
    char *other;
    int64_t other_strides[SO_MAX_DIMS];  /* elements */
    int nidx;
    const int64_t *idx[SO_INDEX_MAX];
    int64_t idx_strides[SO_INDEX_MAX][SO_MAX_DIMS];
    int64_t idx_step[SO_INDEX_MAX];      /* self stride (elements) of the indexed dim */
    int64_t idx_size[SO_INDEX_MAX];      /* size of the indexed dim (the bound) */
} so_index_plan;

/* The first out-of-range index found: k is the index tensor, -1 when none. */
typedef struct {
    int64_t k;
    int64_t value;
} so_index_error;

/* Wrap index value v into [0, size); -1 if out of range. */
SO_HD int64_t so_index_wrap(int64_t v, int64_t size)
{
    if (v < -size || v >= size) return -1;
    return v < 0 ? v + size : v;
}

/* Offsets of iteration element i (any order; the CUDA kernel calls this per element).
 * Returns the failing index tensor number, or -1 (*bad_v then unset). */
SO_HD int so_index_offsets(const so_index_plan *pl, int64_t i, int64_t *soff, int64_t *ooff,
                           int64_t *bad_v)
{
    int64_t s = 0, o = 0, io[SO_INDEX_MAX];
    for (int k = 0; k < pl->nidx; k++) io[k] = 0;
    for (int d = pl->ndim - 1; d >= 0; d--) {
        int64_t n = pl->shape[d], c = i % n;
        i /= n;
        s += c * pl->self_strides[d];
        o += c * pl->other_strides[d];
        for (int k = 0; k < pl->nidx; k++) io[k] += c * pl->idx_strides[k][d];
    }
    for (int k = 0; k < pl->nidx; k++) {
        int64_t v = pl->idx[k][io[k]], w = so_index_wrap(v, pl->idx_size[k]);
        if (w < 0) {
            *bad_v = v;
            return k;
        }
        s += w * pl->idx_step[k];
    }
    *soff = s;
    *ooff = o;
    return -1;
}

/* dst += src for one element of dtype dt (non-atomic: the CPU path; CUDA has its own). */
SO_HD void so_index_add_elem(char *dst, const char *src, int dt)
{
    switch (dt) {
    case SO_FLOAT32: { float a, b; memcpy(&a, dst, 4); memcpy(&b, src, 4); a += b; memcpy(dst, &a, 4); break; }
    case SO_FLOAT64: { double a, b; memcpy(&a, dst, 8); memcpy(&b, src, 8); a += b; memcpy(dst, &a, 8); break; }
    case SO_INT32: { int32_t a, b; memcpy(&a, dst, 4); memcpy(&b, src, 4); a = (int32_t)((uint32_t)a + (uint32_t)b); memcpy(dst, &a, 4); break; }
    case SO_INT64: { int64_t a, b; memcpy(&a, dst, 8); memcpy(&b, src, 8); a = (int64_t)((uint64_t)a + (uint64_t)b); memcpy(dst, &a, 8); break; }
    case SO_BOOL: *(uint8_t *)dst = (uint8_t)(*(uint8_t *)dst | (*(const uint8_t *)src != 0)); break;
    default: /* fp16 / bf16: add in float, round once (torch's CPU accumulation) */
        so_store_f64(dst, dt, (double)((float)so_load_as_f64(dst, dt) + (float)so_load_as_f64(src, dt)));
        break;
    }
}

/* Kernels.  Return 0; or -1 with *err filled (an out-of-range index; CPU, and CUDA after
 * reading the flag back); CUDA returns a positive cudaError_t on launch failure. */
int so_index_cpu(const so_index_plan *pl, so_index_error *err);
int so_index_cuda(const so_index_plan *pl, so_index_error *err, void *stream, int device_index);

/* nonzero on the CPU: coords (n, ndim) int64, C order; count_nonzero first sizes it. */
int64_t so_count_nonzero_cpu(const so_view *v);
void so_nonzero_cpu(const so_view *v, int64_t *out);

#ifdef __cplusplus
}
#endif

#ifndef __CUDACC__
#include "../tensor/tensor.h"
/* The entry points views.c uses for tensor / bool indices in __getitem__ / __setitem__. */
PyObject *so_index_getitem(so_state *st, SoTensor *t, PyObject *index);
int so_index_put(so_state *st, SoTensor *t, PyObject *index, PyObject *value, int accumulate);
#endif
#endif /* SO_INDEX_H */
