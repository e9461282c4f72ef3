/* sort.h — sort and topk: one selection routine both devices run per row.
 *
 * Order: ascending, or descending (topk: largest); NaN counts as larger than every number
 * (torch's rule), and ties — equal values, or NaN vs NaN — keep the lower index first, so
 * every sort is stable and the order is total.  The routine keeps the k best indices of a
 * row in a binary heap whose root is the worst kept one (O(n log k)), then heap-sorts them:
 * sort is the case k = n.  The heap lives in the indices output row; the values output is
 * gathered from the input at the end.  Floats compare as double (exact for every float
 * dtype), integers as int64.
 */
#ifndef SO_SORT_H
#define SO_SORT_H

#include "rows.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    so_rows g;          /* out_n = k */
    const char *in;
    int dtype;
    char *values;       /* output values (input dtype), g.out_strides layout */
    int64_t *indices;   /* output indices, same layout */
    int descending;     /* sort: descending; topk: largest */
} so_sort_plan;

typedef struct {
    const char *p;
    int64_t step;       /* elements */
    int dt;
    int desc;
} so_sort_row;

/* Does element i come strictly before element j in the requested order? */
SO_HD int so_sort_before(const so_sort_row *r, int64_t i, int64_t j)
{
    const int isz = so_dtype_itemsize(r->dt);
    const char *pi = r->p + i * r->step * isz, *pj = r->p + j * r->step * isz;
    if (so_dtype_is_float(r->dt)) {
        double a = so_load_as_f64(pi, r->dt), b = so_load_as_f64(pj, r->dt);
        int an = a != a, bn = b != b;
        if (an || bn) {
            if (an && bn) return i < j;
            return r->desc ? an : bn; /* NaN is the largest */
        }
        if (a == b) return i < j;
        return r->desc ? a > b : a < b;
    } else {
        int64_t a = so_load_as_i64(pi, r->dt), b = so_load_as_i64(pj, r->dt);
        if (a == b) return i < j;
        return r->desc ? a > b : a < b;
    }
}

/* Sift heap[pos] down in a heap of size n whose root is the element ordered LAST. */
SO_HD void so_sort_sift(const so_sort_row *r, int64_t *heap, int64_t hs, int64_t n, int64_t pos)
{
    int64_t x = heap[pos * hs];
    for (;;) {
        int64_t c = 2 * pos + 1;
        if (c >= n) break;
        if (c + 1 < n && so_sort_before(r, heap[c * hs], heap[(c + 1) * hs])) c++;
        if (!so_sort_before(r, x, heap[c * hs])) break;
        heap[pos * hs] = heap[c * hs];
        pos = c;
    }
    heap[pos * hs] = x;
}

/* The k first elements (in order) of row r: indices into heap (stride hs), values copied. */
SO_HD void so_sort_select(const so_sort_row *r, int64_t n, int64_t k, int64_t *heap, int64_t hs,
                          char *vals, int64_t vs)
{
    const int isz = so_dtype_itemsize(r->dt);
    if (k <= 0) return;
    for (int64_t i = 0; i < k; i++) heap[i * hs] = i;
    for (int64_t i = k / 2 - 1; i >= 0; i--) so_sort_sift(r, heap, hs, k, i);
    for (int64_t i = k; i < n; i++) {
        if (so_sort_before(r, i, heap[0])) {
            heap[0] = i;
            so_sort_sift(r, heap, hs, k, 0);
        }
    }
    for (int64_t end = k - 1; end > 0; end--) { /* heap sort: the last goes to the end */
        int64_t t = heap[0];
        heap[0] = heap[end * hs];
        heap[end * hs] = t;
        so_sort_sift(r, heap, hs, end, 0);
    }
    for (int64_t i = 0; i < k; i++) {
        const char *src = r->p + heap[i * hs] * r->step * isz;
        char *dst = vals + i * vs * isz;
        for (int b = 0; b < isz; b++) dst[b] = src[b];
    }
}

SO_HD void so_sort_one_row(const so_sort_plan *pl, int64_t row)
{
    int64_t ioff, ooff;
    so_sort_row r;
    so_rows_offsets(&pl->g, row, &ioff, &ooff);
    r.p = pl->in + ioff * so_dtype_itemsize(pl->dtype);
    r.step = pl->g.in_step;
    r.dt = pl->dtype;
    r.desc = pl->descending;
    so_sort_select(&r, pl->g.in_n, pl->g.out_n, pl->indices + ooff, pl->g.out_step,
                   pl->values + ooff * so_dtype_itemsize(pl->dtype), pl->g.out_step);
}

/* An unsigned key whose numeric order is so_sort_before's order on values (ties are then
 * broken by a stable sort, i.e. by index): NaN -> the largest key, -0.0 == +0.0, IEEE
 * sign-magnitude made monotonic, signed ints offset; descending complements the key.  The
 * CPU radix path of full sorts uses it; tests check it against the comparison routine. */
SO_HD uint64_t so_sort_key(const char *p, int dt, int desc)
{
    uint64_t u;
    if (so_dtype_is_float(dt)) {
        double v = so_load_as_f64(p, dt);
        if (v != v) {
            u = ~(uint64_t)0;
        } else {
            uint64_t bits;
            if (v == 0.0) v = 0.0;
            memcpy(&bits, &v, 8);
            u = (bits >> 63) ? ~bits : bits | ((uint64_t)1 << 63);
        }
    } else {
        u = (uint64_t)so_load_as_i64(p, dt) ^ ((uint64_t)1 << 63);
    }
    return desc ? ~u : u;
}

void so_sort_cpu(const so_sort_plan *pl);
int so_sort_cuda(const so_sort_plan *pl, void *stream, int device_index); /* 0 / cuda err */

#ifdef __cplusplus
}
#endif
#endif /* SO_SORT_H */
