/* reduce.h — reductions (sum, mean, max, min, norm): the plan both devices walk and the
 * per-element math they share.
 *
 * A reduction is planned once in C (reduce.c): the input is split into "kept" dims (one
 * output element per index) and "reduced" dims (walked for each output element).  Output
 * element o (C order over the kept dims, the output tensor is contiguous) starts at input
 * offset sum(idx_k * keep_strides[k]); its reduced elements are r = 0..red_numel-1, r
 * decomposed in C order over red_shape.  For max/min the reduced dims stay in the input's
 * order so r is the flattened index torch reports; sums may reorder them for locality.
 *
 * Accumulation (the same SO_HD functions on CPU and CUDA):
 *   float inputs (fp16/bf16/fp32/fp64) accumulate in double — the CPU walks unit-stride
 *   runs pairwise in 8 lanes, the GPU sums per thread then combines in a tree; so a float32
 *   sum is the exact float64 sum rounded once (|err| <= ~1e-15 * sum|x| before rounding);
 *   integer/bool sums accumulate exactly in int64;
 *   max/min compare exactly (double holds every fp16/bf16/fp32 value; int64 for ints), NaN
 *   wins (propagates), ties keep the lowest index (first occurrence, as torch).
 */
#ifndef SO_REDUCE_H
#define SO_REDUCE_H

#include "../core/common.h"
#include <math.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    SO_RED_SUM = 0,      /* sum x */
    SO_RED_MEAN = 1,     /* sum x / n */
    SO_RED_MAX = 2,      /* max x, with index */
    SO_RED_MIN = 3,      /* min x, with index */
    SO_RED_NORM1 = 4,    /* sum |x| */
    SO_RED_NORM2 = 5,    /* sqrt(sum x^2) */
    SO_RED_NORMP = 6,    /* (sum |x|^p)^(1/p) */
    SO_RED_NORMINF = 7,  /* max |x| */
    SO_RED_NORMNINF = 8, /* min |x| */
    SO_RED_NORM0 = 9,    /* count of x != 0 */
} so_red_op;

typedef struct {
    char *in;
    int in_dtype;
    char *out;
    int out_dtype;
    int64_t *indices;      /* max/min with a dim: int64 output, else NULL */
    int op;
    int int_acc;           /* 1: accumulate in int64 (integer/bool sums and int max/min) */
    double p;              /* SO_RED_NORMP */
    int n_keep;
    int64_t keep_shape[SO_MAX_DIMS];
    int64_t keep_strides[SO_MAX_DIMS];  /* input strides, elements */
    int n_red;
    int64_t red_shape[SO_MAX_DIMS];
    int64_t red_strides[SO_MAX_DIMS];   /* input strides, elements */
    int64_t out_numel, red_numel;
} so_reduce_plan;

/* The running state of one output element (or one thread's share of it). */
typedef struct {
    double f;     /* float sum or running max/min */
    int64_t i;    /* integer sum or running max/min */
    int64_t idx;  /* index of the running max/min, -1 before the first element */
} so_red_acc;

SO_HD int so_red_is_extreme(int op)
{
    return op == SO_RED_MAX || op == SO_RED_MIN || op == SO_RED_NORMINF || op == SO_RED_NORMNINF;
}

SO_HD so_red_acc so_red_init(int op)
{
    so_red_acc a;
    a.f = 0.0;
    a.i = 0;
    a.idx = -1;
    (void)op;
    return a;
}

/* The summand a float element contributes to a sum-like reduction. */
SO_HD double so_red_map(int op, double x, double p)
{
    switch (op) {
    case SO_RED_NORM1: return x < 0 ? -x : x;
    case SO_RED_NORM2: return x * x;
    case SO_RED_NORMP: return pow(x < 0 ? -x : x, p);
    case SO_RED_NORM0: return x != 0.0 ? 1.0 : 0.0;
    default: return x;
    }
}

/* Does (v, vi) replace the running extreme (c, ci)?  NaN beats numbers; among NaNs or
 * equal values the lower index wins.  "max-like" for MAX and NORMINF. */
SO_HD int so_red_better_f(int maxlike, double v, int64_t vi, double c, int64_t ci)
{
    int vn = v != v, cn = c != c;
    if (ci < 0) return 1;
    if (vn || cn) {
        if (vn && cn) return vi < ci;
        return vn;
    }
    if (v == c) return vi < ci;
    return maxlike ? v > c : v < c;
}

SO_HD int so_red_better_i(int maxlike, int64_t v, int64_t vi, int64_t c, int64_t ci)
{
    if (ci < 0) return 1;
    if (v == c) return vi < ci;
    return maxlike ? v > c : v < c;
}

SO_HD int so_red_maxlike(int op) { return op == SO_RED_MAX || op == SO_RED_NORMINF; }

/* Fold element x (already loaded) with flattened reduced index r into acc. */
SO_HD void so_red_step_f(so_red_acc *a, int op, double x, int64_t r, double p)
{
    if (so_red_is_extreme(op)) {
        if (op == SO_RED_NORMINF || op == SO_RED_NORMNINF) x = x < 0 ? -x : x;
        if (so_red_better_f(so_red_maxlike(op), x, r, a->f, a->idx)) {
            a->f = x;
            a->idx = r;
        }
    } else {
        a->f += so_red_map(op, x, p);
    }
}

SO_HD void so_red_step_i(so_red_acc *a, int op, int64_t x, int64_t r)
{
    if (so_red_is_extreme(op)) {
        if (so_red_better_i(so_red_maxlike(op), x, r, a->i, a->idx)) {
            a->i = x;
            a->idx = r;
        }
    } else {
        a->i += x;
    }
}

/* Merge two partial states (GPU tree / two-pass); b covers other indices than a. */
SO_HD void so_red_combine(so_red_acc *a, const so_red_acc *b, int op, int int_acc)
{
    if (so_red_is_extreme(op)) {
        if (b->idx < 0) return;
        if (int_acc ? so_red_better_i(so_red_maxlike(op), b->i, b->idx, a->i, a->idx)
                    : so_red_better_f(so_red_maxlike(op), b->f, b->idx, a->f, a->idx)) {
            a->f = b->f;
            a->i = b->i;
            a->idx = b->idx;
        }
    } else {
        a->f += b->f;
        a->i += b->i;
    }
}

/* Final float value of a float-accumulated reduction over n elements. */
SO_HD double so_red_finalize_f(const so_red_acc *a, int op, double p, int64_t n)
{
    switch (op) {
    case SO_RED_MEAN: return n > 0 ? a->f / (double)n : (double)NAN;
    case SO_RED_NORM2: return sqrt(a->f);
    case SO_RED_NORMP: return pow(a->f, 1.0 / p);
    default: return a->f;
    }
}

/* Load element of dtype dt at p for the float path (exact for every float dtype). */
SO_HD double so_red_load_f(const char *ptr, int dt) { return so_load_as_f64(ptr, dt); }

/* Write the finished state of output element o (value, and index when asked). */
SO_HD void so_red_store(const so_reduce_plan *pl, int64_t o, const so_red_acc *a)
{
    char *dst = pl->out + o * so_dtype_itemsize(pl->out_dtype);
    if (pl->int_acc)
        so_store_i64(dst, pl->out_dtype, a->i);
    else
        so_store_f64(dst, pl->out_dtype, so_red_finalize_f(a, pl->op, pl->p, pl->red_numel));
    if (pl->indices) pl->indices[o] = a->idx;
}

/* Input offset (elements) of output element o's first reduced element. */
SO_HD int64_t so_red_keep_offset(const so_reduce_plan *pl, int64_t o)
{
    int64_t off = 0;
    for (int d = pl->n_keep - 1; d >= 0; d--) {
        int64_t s = pl->keep_shape[d];
        off += (o % s) * pl->keep_strides[d];
        o /= s;
    }
    return off;
}

/* Input offset (elements) of reduced element r relative to its output's base. */
SO_HD int64_t so_red_red_offset(const so_reduce_plan *pl, int64_t r)
{
    int64_t off = 0;
    for (int d = pl->n_red - 1; d >= 0; d--) {
        int64_t s = pl->red_shape[d];
        off += (r % s) * pl->red_strides[d];
        r /= s;
    }
    return off;
}

/* Device kernels (the plan's pointers are on the kernel's device). */
int so_reduce_cpu(const so_reduce_plan *pl); /* 0, or -1: out of memory (no exception set) */
int so_reduce_cuda(const so_reduce_plan *pl, void *stream, int device_index); /* 0 / cuda err */

#ifdef __cplusplus
}
#endif
#endif /* SO_REDUCE_H */
