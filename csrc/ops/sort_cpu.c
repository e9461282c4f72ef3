/* sort_cpu.c — the CPU walk of a sort / topk plan (sort.h).
 *
 * Selections of a few elements (topk with k < n/8, and short rows) run the shared heap
 * routine of sort.h, the one the GPU runs.  Full sorts of longer rows (and large k) use an
 * LSD radix sort on so_sort_key (sort.h), whose key order is the heap routine's order; LSD
 * radix is stable, so equal values keep index order exactly as the comparison does.  It
 * reads and writes memory in sequence (8-bit digits, passes whose digit is the same for
 * the whole row skipped), which is what makes it several times faster than the heap's
 * scattered accesses on 4096-wide rows.
 */
#include "sort.h"
#include <stdlib.h>

#define SO_RADIX_MIN 64

/* Radix-sort one row (n keys) and write its first k (index, value) pairs. */
static void radix_row(const so_sort_plan *pl, const char *in, int64_t *oidx, char *oval,
                      uint64_t *key, uint64_t *key2, int64_t *idx, int64_t *idx2)
{
    const int64_t n = pl->g.in_n, k = pl->g.out_n, step = pl->g.in_step, os = pl->g.out_step;
    const int dt = pl->dtype, isz = so_dtype_itemsize(dt);
    int64_t hist[8][256];
    memset(hist, 0, sizeof hist);
    for (int64_t i = 0; i < n; i++) {
        uint64_t u = so_sort_key(in + i * step * isz, dt, pl->descending);
        key[i] = u;
        idx[i] = i;
        for (int b = 0; b < 8; b++) hist[b][(u >> (8 * b)) & 0xFF]++;
    }
    for (int b = 0; b < 8; b++) {
        int64_t *h = hist[b], sum = 0;
        int skip = 0;
        for (int d = 0; d < 256; d++)
            if (h[d] == n) skip = 1;
        if (skip) continue; /* every key has this digit: the pass would not move anything */
        for (int d = 0; d < 256; d++) {
            int64_t c = h[d];
            h[d] = sum;
            sum += c;
        }
        for (int64_t i = 0; i < n; i++) {
            int64_t pos = h[(key[i] >> (8 * b)) & 0xFF]++;
            key2[pos] = key[i];
            idx2[pos] = idx[i];
        }
        { uint64_t *t = key; key = key2; key2 = t; }
        { int64_t *t = idx; idx = idx2; idx2 = t; }
    }
    for (int64_t i = 0; i < k; i++) {
        const char *src = in + idx[i] * step * isz;
        oidx[i * os] = idx[i];
        memcpy(oval + i * os * isz, src, (size_t)isz);
    }
}

/* The heap selection of sort.h for a float32/float64 row with its hot loop specialised:
 * element i (later than every kept index) enters the heap iff it comes strictly before
 * the root, which — ties going to the lower index — is a plain compare against the cached
 * root value plus the NaN-is-largest rule.  Building, sifting and the final heap sort are
 * sort.h's shared functions. */
static void select_row_float(const so_sort_plan *pl, int64_t row)
{
    const int64_t n = pl->g.in_n, k = pl->g.out_n, hs = pl->g.out_step, step = pl->g.in_step;
    const int dt = pl->dtype, isz = so_dtype_itemsize(dt), desc = pl->descending;
    int64_t ioff, ooff, *heap;
    so_sort_row r;
    double w;
    so_rows_offsets(&pl->g, row, &ioff, &ooff);
    r.p = pl->in + ioff * isz;
    r.step = step;
    r.dt = dt;
    r.desc = desc;
    heap = pl->indices + ooff;
    if (k <= 0) return;
    for (int64_t i = 0; i < k; i++) heap[i * hs] = i;
    for (int64_t i = k / 2 - 1; i >= 0; i--) so_sort_sift(&r, heap, hs, k, i);
#define SO_SCAN(T)                                                                         \
    {                                                                                      \
        const T *x = (const T *)(const void *)r.p;                                         \
        w = (double)x[heap[0] * step];                                                     \
        for (int64_t i = k; i < n; i++) {                                                  \
            double v = (double)x[i * step];                                                \
            int before = desc ? (v > w || (v != v && w == w)) : (v < w || (w != w && v == v)); \
            if (before) {                                                                  \
                heap[0] = i;                                                               \
                so_sort_sift(&r, heap, hs, k, 0);                                          \
                w = (double)x[heap[0] * step];                                             \
            }                                                                              \
        }                                                                                  \
    }
    if (dt == SO_FLOAT32) SO_SCAN(float)
    else SO_SCAN(double)
#undef SO_SCAN
    for (int64_t end = k - 1; end > 0; end--) {
        int64_t t = heap[0];
        heap[0] = heap[end * hs];
        heap[end * hs] = t;
        so_sort_sift(&r, heap, hs, end, 0);
    }
    for (int64_t i = 0; i < k; i++)
        memcpy(pl->values + (ooff + i * hs) * isz, r.p + heap[i * hs] * step * isz, (size_t)isz);
}

void so_sort_cpu(const so_sort_plan *pl)
{
    const int64_t n = pl->g.in_n, k = pl->g.out_n;
    const int isz = so_dtype_itemsize(pl->dtype);
    uint64_t *buf = NULL;
    if (n >= SO_RADIX_MIN && k * 8 >= n)
        buf = (uint64_t *)malloc((size_t)n * 4 * sizeof(uint64_t));
    if (!buf) { /* short rows, small k — or no memory: the heap needs none */
        int fast = pl->dtype == SO_FLOAT32 || pl->dtype == SO_FLOAT64;
        for (int64_t r = 0; r < pl->g.rows; r++) {
            if (fast) select_row_float(pl, r);
            else so_sort_one_row(pl, r);
        }
        return;
    }
    for (int64_t r = 0; r < pl->g.rows; r++) {
        int64_t ioff, ooff;
        so_rows_offsets(&pl->g, r, &ioff, &ooff);
        radix_row(pl, pl->in + ioff * isz, pl->indices + ooff, pl->values + ooff * isz, buf,
                  buf + n, (int64_t *)(void *)(buf + 2 * n), (int64_t *)(void *)(buf + 3 * n));
    }
    free(buf);
}
