/* scan.h — row scans: cumsum, and the inverse-CDF search multinomial sampling uses on a
 * cumsum.  The per-row math is here, once, for the CPU loop and the CUDA kernel.
 *
 * cumsum accumulates float inputs in double (each output rounded once from the exact-ish
 * running sum, as torch's CPU kernel does with its double accumulator) and integer/bool
 * inputs in int64.
 */
#ifndef SO_SCAN_H
#define SO_SCAN_H

#include "rows.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    so_rows g;
    const char *in;
    int in_dtype;
    char *out;
    int out_dtype;
    int int_acc;
} so_cumsum_plan;

SO_HD void so_cumsum_row(const so_cumsum_plan *pl, int64_t row)
{
    const int isz = so_dtype_itemsize(pl->in_dtype), osz = so_dtype_itemsize(pl->out_dtype);
    int64_t ioff, ooff;
    so_rows_offsets(&pl->g, row, &ioff, &ooff);
    const char *p = pl->in + ioff * isz;
    char *q = pl->out + ooff * osz;
    if (pl->int_acc) {
        int64_t acc = 0;
        for (int64_t j = 0; j < pl->g.in_n; j++) {
            acc = (int64_t)((uint64_t)acc + (uint64_t)so_load_as_i64(p + j * pl->g.in_step * isz, pl->in_dtype));
            so_store_i64(q + j * pl->g.out_step * osz, pl->out_dtype, acc);
        }
    } else {
        double acc = 0.0;
        for (int64_t j = 0; j < pl->g.in_n; j++) {
            acc += so_load_as_f64(p + j * pl->g.in_step * isz, pl->in_dtype);
            so_store_f64(q + j * pl->g.out_step * osz, pl->out_dtype, acc);
        }
    }
}

/* Sampling by inverse CDF: for row r and draw s, the first category j with
 * cdf[r, j] > u[r, s] * cdf[r, C-1].  Such a j always has a positive probability. */
typedef struct {
    const double *cdf;   /* (rows, ncat) contiguous */
    const double *u;     /* (rows, nsamp) contiguous, in [0, 1) */
    int64_t *out;        /* (rows, nsamp) contiguous */
    int64_t rows, ncat, nsamp;
} so_cdf_plan;

SO_HD void so_cdf_search_one(const so_cdf_plan *pl, int64_t e)
{
    int64_t r = e / pl->nsamp;
    const double *c = pl->cdf + r * pl->ncat;
    double target = pl->u[e] * c[pl->ncat - 1];
    int64_t lo = 0, hi = pl->ncat - 1; /* answer in [lo, hi] */
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (c[mid] > target) hi = mid;
        else lo = mid + 1;
    }
    pl->out[e] = lo;
}

void so_cumsum_cpu(const so_cumsum_plan *pl);
int so_cumsum_cuda(const so_cumsum_plan *pl, void *stream, int device_index); /* 0 / cuda err */
void so_cdf_search_cpu(const so_cdf_plan *pl);
int so_cdf_search_cuda(const so_cdf_plan *pl, void *stream, int device_index);

#ifdef __cplusplus
}
#endif
#endif /* SO_SCAN_H */
