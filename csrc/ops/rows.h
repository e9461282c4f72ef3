/* rows.h — the geometry of "one 1-D row along `dim` per output row" shared by the row-wise
 * kernels (sort / topk in sort.h, cumsum and the inverse-CDF search in scan.h).
 *
 * Rows are numbered in C order over the other dims; row r of the input starts at element
 * offset so_rows_offset(g, r, in_strides) and steps by in_step; the outputs likewise with
 * their own strides.  The CPU walks rows with an odometer, the GPU computes the offset of
 * its row from r (one thread per row).
 */
#ifndef SO_ROWS_H
#define SO_ROWS_H

#include "../core/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int n_outer;                        /* dims other than the row dim (size-1 ones kept) */
    int64_t outer_shape[SO_MAX_DIMS];
    int64_t in_strides[SO_MAX_DIMS];    /* elements */
    int64_t out_strides[SO_MAX_DIMS];   /* elements; every output shares this layout */
    int64_t rows;
    int64_t in_n, in_step;              /* row length and stride of the input */
    int64_t out_n, out_step;            /* row length and stride of the outputs */
} so_rows;

SO_HD void so_rows_offsets(const so_rows *g, int64_t r, int64_t *in_off, int64_t *out_off)
{
    int64_t a = 0, b = 0;
    for (int d = g->n_outer - 1; d >= 0; d--) {
        int64_t n = g->outer_shape[d], c = r % n;
        r /= n;
        a += c * g->in_strides[d];
        b += c * g->out_strides[d];
    }
    *in_off = a;
    *out_off = b;
}

#ifdef __cplusplus
}
#endif

#ifndef __CUDACC__
#include "../tensor/tensor.h"
/* Rows of t along dim (0-d: one row of one element) into contiguous outputs of shape
 * oshape (ond dims; oshape[dim] is the output row length).  sort.c. */
void so_rows_plan(const SoTensor *t, int64_t dim, int ond, const int64_t *oshape, so_rows *g);
#endif
#endif /* SO_ROWS_H */
