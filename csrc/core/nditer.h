/* nditer.h — N-operand strided iteration for CPU kernels (the NumPy inner-loop model).
 *
 * Operands are so_views of one common shape (inputs already broadcast: stride 0 on
 * broadcast dims).  so_nditer_init drops size-1 dims and merges dims that are contiguous
 * for every operand, so a contiguous or broadcast-row case becomes one or two long inner
 * loops; so_nditer_run then calls `loop(ptrs, byte_strides, n, ctx)` once per inner row.
 * Kernels therefore see plain 1-D strided loops, which gcc vectorises when strides equal
 * the itemsize (kernels should test for that and take a unit-stride path).  It lives in
 * core because both the tensor layer (copies) and ops (elementwise) walk views with it.
 */
#ifndef SO_NDITER_H
#define SO_NDITER_H

#include "common.h"

#define SO_ITER_MAX_OPS 4

typedef struct {
    int nops;
    int ndim;                                     /* after coalescing; dim ndim-1 innermost */
    int64_t shape[SO_MAX_DIMS];
    int64_t strides[SO_ITER_MAX_OPS][SO_MAX_DIMS]; /* bytes */
    char *data[SO_ITER_MAX_OPS];
    int64_t numel;
} so_nditer;

typedef void (*so_inner_loop)(char **ptrs, const int64_t *byte_strides, int64_t n, void *ctx);

/* All views must have the same ndim and shape (views[0] is the output). */
static inline void so_nditer_init(so_nditer *it, int nops, const so_view *views)
{
    int nd = 0;
    const so_view *v0 = &views[0];
    it->nops = nops;
    it->numel = 1;
    for (int k = 0; k < nops; k++) it->data[k] = views[k].data;
    for (int d = 0; d < v0->ndim; d++) {
        it->numel *= v0->shape[d];
        if (v0->shape[d] == 1) continue;
        it->shape[nd] = v0->shape[d];
        for (int k = 0; k < nops; k++)
            it->strides[k][nd] = views[k].strides[d] * so_dtype_itemsize(views[k].dtype);
        nd++;
    }
    /* merge dim i into dim i+1 when every operand steps through them as one run */
    if (nd > 1) {
        int out = 0;
        for (int d = 1; d < nd; d++) {
            int can = 1;
            for (int k = 0; k < nops; k++)
                if (it->strides[k][out] != it->strides[k][d] * it->shape[d]) { can = 0; break; }
            if (can) {
                it->shape[out] *= it->shape[d];
                for (int k = 0; k < nops; k++) it->strides[k][out] = it->strides[k][d];
            } else {
                out++;
                it->shape[out] = it->shape[d];
                for (int k = 0; k < nops; k++) it->strides[k][out] = it->strides[k][d];
            }
        }
        nd = out + 1;
    }
    it->ndim = nd;
}

static inline void so_nditer_run(const so_nditer *it, so_inner_loop loop, void *ctx)
{
    char *ptrs[SO_ITER_MAX_OPS];
    int64_t inner_strides[SO_ITER_MAX_OPS];
    int64_t idx[SO_MAX_DIMS];
    int nops = it->nops, nd = it->ndim;
    if (it->numel == 0) return;
    if (nd == 0) { /* a single element */
        int64_t zero[SO_ITER_MAX_OPS] = {0};
        for (int k = 0; k < nops; k++) ptrs[k] = it->data[k];
        loop(ptrs, zero, 1, ctx);
        return;
    }
    for (int k = 0; k < nops; k++) inner_strides[k] = it->strides[k][nd - 1];
    for (int d = 0; d < nd; d++) idx[d] = 0;
    for (;;) {
        for (int k = 0; k < nops; k++) {
            char *p = it->data[k];
            for (int d = 0; d < nd - 1; d++) p += idx[d] * it->strides[k][d];
            ptrs[k] = p;
        }
        loop(ptrs, inner_strides, it->shape[nd - 1], ctx);
        /* advance the outer index (odometer) */
        int d = nd - 2;
        while (d >= 0) {
            if (++idx[d] < it->shape[d]) break;
            idx[d] = 0;
            d--;
        }
        if (d < 0) break;
    }
}

/* Broadcast `in` to `ndim`/`shape` (NumPy rules): 0 on success, -1 if incompatible. */
static inline int so_view_broadcast_to(so_view *in, int ndim, const int64_t *shape)
{
    so_view r = *in;
    int off = ndim - in->ndim;
    if (off < 0) return -1;
    r.ndim = ndim;
    for (int d = 0; d < ndim; d++) {
        int sd = d - off;
        if (sd < 0) {
            r.shape[d] = shape[d];
            r.strides[d] = 0;
        } else if (in->shape[sd] == shape[d]) {
            r.shape[d] = shape[d];
            r.strides[d] = in->strides[sd];
        } else if (in->shape[sd] == 1) {
            r.shape[d] = shape[d];
            r.strides[d] = 0;
        } else {
            return -1;
        }
    }
    *in = r;
    return 0;
}

#endif /* SO_NDITER_H */
