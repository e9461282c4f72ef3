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

#define SO_PAIRWISE_BLOCK 128

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

void so_reduce_cpu(const so_reduce_plan *pl)
{
    int isz = so_dtype_itemsize(pl->in_dtype);
    int nk = pl->n_keep;
    int64_t idx[SO_MAX_DIMS], off = 0;
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
}
