/* reduce_cpu.c — the CPU walk of a reduction plan (reduce.h).
 *
 * For each output element (kept dims walked with an odometer, no division per element) the
 * reduced dims are walked as an outer odometer around one inner 1-D run.  Float sum-like
 * runs are summed pairwise with 8 independent double lanes (NumPy's scheme: blocks of 128,
 * halves recursively), so rounding error grows with log(n), and the unit-stride float32 /
 * float64 leaves are tight loops gcc vectorises.  Everything else goes through the shared
 * step functions of reduce.h, the same ones the CUDA kernel calls.
 */
#include "reduce.h"
#include <stdlib.h>

#define SO_PAIRWISE_BLOCK 128

#include <stdint.h>

/* Leaf of the pairwise sum: <= SO_PAIRWISE_BLOCK elements in 8 lanes. */
static double leaf_sum(const char *p, int64_t n, int64_t bs, int dt, int op, double pw)
{
    double l[8] = {0, 0, 0, 0, 0, 0, 0, 0}, rest = 0.0;
    int64_t i = 0, n8 = n - n % 8;
    int plain = op == SO_RED_SUM || op == SO_RED_MEAN;
    if (plain && dt == SO_FLOAT32 && bs == 4) {
        const float *x = (const float *)(const void *)p;
        for (; i < n8; i += 8)
            for (int k = 0; k < 8; k++) l[k] += (double)x[i + k];
        for (; i < n; i++) rest += (double)x[i];
    } else if (plain && dt == SO_FLOAT64 && bs == 8) {
        const double *x = (const double *)(const void *)p;
        for (; i < n8; i += 8)
            for (int k = 0; k < 8; k++) l[k] += x[i + k];
        for (; i < n; i++) rest += x[i];
    } else if (op == SO_RED_NORM2 && dt == SO_FLOAT32 && bs == 4) {
        const float *x = (const float *)(const void *)p;
        for (; i < n8; i += 8)
            for (int k = 0; k < 8; k++) l[k] += (double)x[i + k] * (double)x[i + k];
        for (; i < n; i++) rest += (double)x[i] * (double)x[i];
    } else {
        for (; i < n8; i += 8)
            for (int k = 0; k < 8; k++)
                l[k] += so_red_map(op, so_red_load_f(p + (i + k) * bs, dt), pw);
        for (; i < n; i++) rest += so_red_map(op, so_red_load_f(p + i * bs, dt), pw);
    }
    return ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7])) + rest;
}

static double pairwise_sum(const char *p, int64_t n, int64_t bs, int dt, int op, double pw)
{
    int64_t half;
    if (n <= SO_PAIRWISE_BLOCK) return leaf_sum(p, n, bs, dt, op, pw);
    half = n / 2;
    half -= half % 8;
    return pairwise_sum(p, half, bs, dt, op, pw) + pairwise_sum(p + half * bs, n - half, bs, dt, op, pw);
}

/* One inner run of n elements at byte stride bs whose first flattened index is r0. */
static void run_inner(const so_reduce_plan *pl, so_red_acc *a, const char *p, int64_t n,
                      int64_t bs, int64_t r0)
{
    int dt = pl->in_dtype, op = pl->op;
    if (pl->int_acc) {
        if (so_red_is_extreme(op)) {
            for (int64_t j = 0; j < n; j++) so_red_step_i(a, op, so_load_as_i64(p + j * bs, dt), r0 + j);
        } else if (dt == SO_INT64 && bs == 8) {
            const int64_t *x = (const int64_t *)(const void *)p;
            int64_t s = 0;
            for (int64_t j = 0; j < n; j++) s += x[j];
            a->i += s;
        } else if (dt == SO_INT32 && bs == 4) {
            const int32_t *x = (const int32_t *)(const void *)p;
            int64_t s = 0;
            for (int64_t j = 0; j < n; j++) s += x[j];
            a->i += s;
        } else {
            for (int64_t j = 0; j < n; j++) a->i += so_load_as_i64(p + j * bs, dt);
        }
    } else if (so_red_is_extreme(op)) {
        for (int64_t j = 0; j < n; j++) so_red_step_f(a, op, so_red_load_f(p + j * bs, dt), r0 + j, pl->p);
    } else {
        a->f += pairwise_sum(p, n, bs, dt, op, pl->p);
    }
}

/* All reduced elements of the output element whose input starts at `base`. */
static void reduce_one(const so_reduce_plan *pl, const char *base, so_red_acc *a)
{
    int isz = so_dtype_itemsize(pl->in_dtype);
    int nr = pl->n_red;
    int64_t idx[SO_MAX_DIMS], inner_n, inner_bs, r0 = 0;
    if (nr == 0) { /* every reduced dim has size 1: one element */
        run_inner(pl, a, base, 1, isz, 0);
        return;
    }
    inner_n = pl->red_shape[nr - 1];
    inner_bs = pl->red_strides[nr - 1] * isz;
    for (int d = 0; d < nr - 1; d++) idx[d] = 0;
    for (;;) {
        const char *p = base;
        for (int d = 0; d < nr - 1; d++) p += idx[d] * pl->red_strides[d] * isz;
        run_inner(pl, a, p, inner_n, inner_bs, r0);
        r0 += inner_n;
        int d = nr - 2;
        while (d >= 0) {
            if (++idx[d] < pl->red_shape[d]) break;
            idx[d] = 0;
            d--;
        }
        if (d < 0) break;
    }
}

/* ---- outer reductions: the reduced dims are not the innermost in memory (sum(dim=0) of
 * a C-order matrix).  Walking each output's column separately would stride through memory,
 * so instead a chunk of outputs along the last kept dim accumulates whole rows: memory is
 * read in order and the accumulators stay in L1.  Each output then sums its reduced
 * elements in order (float inputs still in double), as NumPy does for such axes. */

#define SO_OUTER_CHUNK 2048

static int use_outer(const so_reduce_plan *pl)
{
    int64_t ks, min_red = INT64_MAX;
    if (pl->n_keep == 0 || pl->n_red == 0 || pl->red_numel == 0) return 0;
    if (pl->keep_shape[pl->n_keep - 1] < 8) return 0;
    ks = pl->keep_strides[pl->n_keep - 1];
    ks = ks < 0 ? -ks : ks;
    for (int d = 0; d < pl->n_red; d++) {
        int64_t s = pl->red_strides[d] < 0 ? -pl->red_strides[d] : pl->red_strides[d];
        if (s < min_red) min_red = s;
    }
    return ks < min_red;
}

/* acc[j] (j < len) folds row `p` (byte stride bs) as reduced element r. */
static void outer_row(const so_reduce_plan *pl, so_red_acc *acc, double *accd, const char *p,
                      int64_t bs, int64_t len, int64_t r)
{
    int dt = pl->in_dtype, op = pl->op;
    int plain = op == SO_RED_SUM || op == SO_RED_MEAN;
    if (accd) { /* float sum-like ops: a double per output */
        if (plain && dt == SO_FLOAT32 && bs == 4) {
            const float *x = (const float *)(const void *)p;
            for (int64_t j = 0; j < len; j++) accd[j] += (double)x[j];
        } else if (plain && dt == SO_FLOAT64 && bs == 8) {
            const double *x = (const double *)(const void *)p;
            for (int64_t j = 0; j < len; j++) accd[j] += x[j];
        } else {
            for (int64_t j = 0; j < len; j++) accd[j] += so_red_map(op, so_red_load_f(p + j * bs, dt), pl->p);
        }
    } else if (pl->int_acc) {
        for (int64_t j = 0; j < len; j++) so_red_step_i(&acc[j], op, so_load_as_i64(p + j * bs, dt), r);
    } else {
        for (int64_t j = 0; j < len; j++) so_red_step_f(&acc[j], op, so_red_load_f(p + j * bs, dt), r, pl->p);
    }
}

static int reduce_outer(const so_reduce_plan *pl)
{
    int isz = so_dtype_itemsize(pl->in_dtype);
    int nk = pl->n_keep - 1, nr = pl->n_red;
    int64_t L = pl->keep_shape[nk], kbs = pl->keep_strides[nk] * isz;
    int64_t kidx[SO_MAX_DIMS], ridx[SO_MAX_DIMS], koff = 0;
    so_red_acc *acc;
    double *accd_buf, *accd;
    /* heap, not stack: 64 KiB of state must not depend on the calling thread's stack size */
    acc = (so_red_acc *)malloc(sizeof(so_red_acc) * SO_OUTER_CHUNK + sizeof(double) * SO_OUTER_CHUNK);
    if (!acc) return -1;
    accd_buf = (double *)(void *)(acc + SO_OUTER_CHUNK);
    accd = (!pl->int_acc && !so_red_is_extreme(pl->op)) ? accd_buf : NULL;
    for (int d = 0; d < nk; d++) kidx[d] = 0;
    for (int64_t o0 = 0; o0 < pl->out_numel; o0 += L) {
        for (int64_t j0 = 0; j0 < L; j0 += SO_OUTER_CHUNK) {
            int64_t len = L - j0 < SO_OUTER_CHUNK ? L - j0 : SO_OUTER_CHUNK, roff = 0;
            const char *base = pl->in + koff * isz + j0 * kbs;
            for (int64_t j = 0; j < len; j++) {
                acc[j] = so_red_init(pl->op);
                accd_buf[j] = 0.0;
            }
            for (int d = 0; d < nr; d++) ridx[d] = 0;
            for (int64_t r = 0; r < pl->red_numel; r++) {
                outer_row(pl, acc, accd, base + roff * isz, kbs, len, r);
                for (int d = nr - 1; d >= 0; d--) { /* odometer over the reduced dims */
                    roff += pl->red_strides[d];
                    if (++ridx[d] < pl->red_shape[d]) break;
                    roff -= ridx[d] * pl->red_strides[d];
                    ridx[d] = 0;
                }
            }
            for (int64_t j = 0; j < len; j++) {
                if (accd) acc[j].f = accd[j];
                so_red_store(pl, o0 + j0 + j, &acc[j]);
            }
        }
        for (int d = nk - 1; d >= 0; d--) { /* odometer over the other kept dims */
            koff += pl->keep_strides[d];
            if (++kidx[d] < pl->keep_shape[d]) break;
            koff -= kidx[d] * pl->keep_strides[d];
            kidx[d] = 0;
        }
    }
    free(acc);
    return 0;
}

int so_reduce_cpu(const so_reduce_plan *pl)
{
    int isz = so_dtype_itemsize(pl->in_dtype);
    int nk = pl->n_keep;
    int64_t idx[SO_MAX_DIMS], off = 0;
    if (use_outer(pl)) return reduce_outer(pl);
    for (int d = 0; d < nk; d++) idx[d] = 0;
    for (int64_t o = 0; o < pl->out_numel; o++) {
        so_red_acc a = so_red_init(pl->op);
        if (pl->red_numel > 0) reduce_one(pl, pl->in + off * isz, &a);
        so_red_store(pl, o, &a);
        /* odometer over the kept dims, tracking the input offset */
        for (int d = nk - 1; d >= 0; d--) {
            off += pl->keep_strides[d];
            if (++idx[d] < pl->keep_shape[d]) break;
            off -= idx[d] * pl->keep_strides[d];
            idx[d] = 0;
        }
    }
    return 0;
}
