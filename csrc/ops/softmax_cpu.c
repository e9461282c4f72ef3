/* softmax_cpu.c — CPU kernels of softmax / log_softmax / logsumexp and their backwards.
 *
 * Rows (inner == 1) are walked with SM_L independent lanes per accumulator so gcc can keep
 * each reduction (max, sum) in SSE registers without reassociating floating-point sums it
 * is not allowed to touch; three short passes over a row that sits in L1/L2:
 * max, exp-and-sum (storing exp for softmax), then scale/shift.  inner > 1 walks column
 * blocks of SM_CB elements: per-column max/sum arrays on the stack, unit-stride inner loops.
 * Float32 partial sums are combined in double once per row.  The math is softmax.h's.
 */
/* No FP trapping semantics: lets gcc if-convert the branch-free exp's selects and vectorize
 * (nothing here reads FP exception flags; torch builds with -fno-trapping-math too).  Before
 * the includes so every function of this file has the same optimisation attributes. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math")
#endif
#include "softmax.h"
#include "cpu_dispatch.h"

#define SM_L 16   /* lanes per reduction */
#define SM_CB 256 /* columns per block when inner > 1 */
#define SM_BLOCK 512 /* elements per exp block in a row */

#define DEF_SOFTMAX_CPU(T, S)                                                                   \
    SO_CPU_CLONES T so_sm_row_max_##S(const T *restrict x, int64_t n)                                        \
    {                                                                                           \
        T m[SM_L];                                                                              \
        int64_t i = 0;                                                                          \
        for (int l = 0; l < SM_L; l++) m[l] = -(T)INFINITY;                                     \
        for (; i + SM_L <= n; i += SM_L)                                                        \
            for (int l = 0; l < SM_L; l++) m[l] = x[i + l] > m[l] ? x[i + l] : m[l];            \
        T r = -(T)INFINITY;                                                                     \
        for (int l = 0; l < SM_L; l++) r = m[l] > r ? m[l] : r;                                 \
        for (; i < n; i++) r = x[i] > r ? x[i] : r;                                             \
        /* a NaN is skipped here but reaches the sum through exp(NaN - m): the row is NaN */    \
        return r;                                                                               \
    }                                                                                           \
    /* sum of a short unit-stride block in SM_L lanes */                                     \
    static inline double lane_sum_##S(const T *restrict a, int64_t n)                           \
    {                                                                                           \
        T s[SM_L];                                                                              \
        int64_t i = 0;                                                                          \
        for (int l = 0; l < SM_L; l++) s[l] = 0;                                                \
        for (; i + SM_L <= n; i += SM_L)                                                        \
            for (int l = 0; l < SM_L; l++) s[l] += a[i + l];                                    \
        double r = 0;                                                                           \
        for (int l = 0; l < SM_L; l++) r += (double)s[l];                                       \
        for (; i < n; i++) r += (double)a[i];                                                   \
        return r;                                                                               \
    }                                                                                           \
    /* sum exp(x - m), storing the exps into y when y != NULL: the exps go through a plain  */ \
    /* loop (which gcc vectorizes at full width) in blocks, then the block is summed */        \
    SO_CPU_CLONES double so_sm_row_expsum_##S(const T *restrict x, T *restrict y, int64_t n, T m) \
    {                                                                                           \
        T buf[SM_BLOCK];                                                                        \
        double r = 0;                                                                           \
        for (int64_t i0 = 0; i0 < n; i0 += SM_BLOCK) {                                          \
            const int64_t w = n - i0 < SM_BLOCK ? n - i0 : SM_BLOCK;                            \
            T *restrict e = y ? y + i0 : buf;                                                   \
            const T *restrict xb = x + i0;                                                      \
            for (int64_t i = 0; i < w; i++) e[i] = so_sm_exp_##S(xb[i] - m);                    \
            r += lane_sum_##S(e, w);                                                            \
        }                                                                                       \
        return r;                                                                               \
    }                                                                                           \
    SO_CPU_CLONES static double row_dot_##S(const T *restrict a, const T *restrict b, int64_t n)              \
    {                                                                                           \
        T s[SM_L];                                                                              \
        int64_t i = 0;                                                                          \
        for (int l = 0; l < SM_L; l++) s[l] = 0;                                                \
        if (b) {                                                                                \
            for (; i + SM_L <= n; i += SM_L)                                                    \
                for (int l = 0; l < SM_L; l++) s[l] += a[i + l] * b[i + l];                     \
        } else {                                                                                \
            for (; i + SM_L <= n; i += SM_L)                                                    \
                for (int l = 0; l < SM_L; l++) s[l] += a[i + l];                                \
        }                                                                                       \
        double r = 0;                                                                           \
        for (int l = 0; l < SM_L; l++) r += (double)s[l];                                       \
        for (; i < n; i++) r += (double)(b ? a[i] * b[i] : a[i]);                               \
        return r;                                                                               \
    }                                                                                           \
    SO_CPU_CLONES static void rows_##S(const so_softmax_call *c)                                              \
    {                                                                                           \
        const int64_t n = c->n;                                                                 \
        for (int64_t r = 0; r < c->outer; r++) {                                                \
            const T *x = (const T *)(const void *)c->x + r * n;                                 \
            T *y = (T *)(void *)c->out + (c->op == SO_SM_LOGSUMEXP ? r : r * n);                \
            if (c->op == SO_SM_SOFTMAX_BW || c->op == SO_SM_LOG_SOFTMAX_BW) {                   \
                const T *g = (const T *)(const void *)c->g + r * n;                             \
                const int sm = c->op == SO_SM_SOFTMAX_BW;                                       \
                const T dot = (T)row_dot_##S(g, sm ? x : NULL, n);                              \
                if (sm) {                                                                       \
                    for (int64_t i = 0; i < n; i++)                                             \
                        y[i] = so_sm_bwd_##S(SO_SM_SOFTMAX_BW, x[i], g[i], dot, 0);             \
                } else {                                                                        \
                    for (int64_t i = 0; i < n; i++)                                             \
                        y[i] = so_sm_bwd_##S(SO_SM_LOG_SOFTMAX_BW, x[i], g[i], dot,             \
                                             so_sm_exp_##S(x[i]));                              \
                }                                                                               \
                continue;                                                                       \
            }                                                                                   \
            T m = so_sm_row_max_##S(x, n);                                                            \
            if (c->op == SO_SM_LOGSUMEXP) {                                                     \
                m = so_sm_lse_shift_##S(m);                                                     \
                *y = m + (T)so_sm_log_##S((T)so_sm_row_expsum_##S(x, NULL, n, m));                    \
            } else if (c->op == SO_SM_SOFTMAX) {                                                \
                const T inv = (T)(1.0 / so_sm_row_expsum_##S(x, y, n, m));                            \
                for (int64_t i = 0; i < n; i++) y[i] = so_sm_fwd_##S(SO_SM_SOFTMAX, 0, y[i], inv); \
            } else {                                                                            \
                const T b = m + (T)so_sm_log_##S((T)so_sm_row_expsum_##S(x, NULL, n, m));             \
                for (int64_t i = 0; i < n; i++) y[i] = so_sm_fwd_##S(SO_SM_LOG_SOFTMAX, x[i], 0, b); \
            }                                                                                   \
        }                                                                                       \
    }                                                                                           \
    /* inner > 1: the reduction runs down columns; blocks of SM_CB columns */                   \
    SO_CPU_CLONES static void cols_##S(const so_softmax_call *c)                                              \
    {                                                                                           \
        const int64_t n = c->n, inner = c->inner;                                               \
        const int bw = c->op == SO_SM_SOFTMAX_BW || c->op == SO_SM_LOG_SOFTMAX_BW;              \
        for (int64_t o = 0; o < c->outer; o++) {                                                \
            const T *x = (const T *)(const void *)c->x + o * n * inner;                         \
            const T *g = bw ? (const T *)(const void *)c->g + o * n * inner : NULL;             \
            T *y = (T *)(void *)c->out + (c->op == SO_SM_LOGSUMEXP ? o * inner : o * n * inner);\
            for (int64_t c0 = 0; c0 < inner; c0 += SM_CB) {                                     \
                const int64_t w = inner - c0 < SM_CB ? inner - c0 : SM_CB;                      \
                T a[SM_CB], s[SM_CB];                                                           \
                for (int64_t j = 0; j < w; j++) {                                               \
                    a[j] = -(T)INFINITY;                                                        \
                    s[j] = 0;                                                                   \
                }                                                                               \
                if (bw) {                                                                       \
                    for (int64_t k = 0; k < n; k++) {                                           \
                        const T *xk = x + k * inner + c0, *gk = g + k * inner + c0;             \
                        if (c->op == SO_SM_SOFTMAX_BW)                                          \
                            for (int64_t j = 0; j < w; j++) s[j] += gk[j] * xk[j];              \
                        else                                                                    \
                            for (int64_t j = 0; j < w; j++) s[j] += gk[j];                      \
                    }                                                                           \
                    for (int64_t k = 0; k < n; k++) {                                           \
                        const T *xk = x + k * inner + c0, *gk = g + k * inner + c0;             \
                        T *yk = y + k * inner + c0;                                             \
                        for (int64_t j = 0; j < w; j++)                                         \
                            yk[j] = so_sm_bwd_##S(c->op, xk[j], gk[j], s[j],                    \
                                                  c->op == SO_SM_SOFTMAX_BW ? 0                 \
                                                      : so_sm_exp_##S(xk[j]));                 \
                    }                                                                           \
                    continue;                                                                   \
                }                                                                               \
                for (int64_t k = 0; k < n; k++) {                                               \
                    const T *xk = x + k * inner + c0;                                           \
                    for (int64_t j = 0; j < w; j++) a[j] = xk[j] > a[j] ? xk[j] : a[j];         \
                }                                                                               \
                if (c->op == SO_SM_LOGSUMEXP)                                                   \
                    for (int64_t j = 0; j < w; j++) a[j] = so_sm_lse_shift_##S(a[j]);           \
                for (int64_t k = 0; k < n; k++) {                                               \
                    const T *xk = x + k * inner + c0;                                           \
                    for (int64_t j = 0; j < w; j++) s[j] += so_sm_exp_##S(xk[j] - a[j]);        \
                }                                                                               \
                if (c->op == SO_SM_LOGSUMEXP) {                                                 \
                    for (int64_t j = 0; j < w; j++) y[c0 + j] = a[j] + so_sm_log_##S(s[j]);     \
                    continue;                                                                   \
                }                                                                               \
                for (int64_t j = 0; j < w; j++)                                                 \
                    s[j] = c->op == SO_SM_SOFTMAX ? (T)1 / s[j] : a[j] + so_sm_log_##S(s[j]);   \
                for (int64_t k = 0; k < n; k++) {                                               \
                    const T *xk = x + k * inner + c0;                                           \
                    T *yk = y + k * inner + c0;                                                 \
                    for (int64_t j = 0; j < w; j++)                                             \
                        yk[j] = so_sm_fwd_##S(c->op, xk[j],                                     \
                                              c->op == SO_SM_SOFTMAX ? so_sm_exp_##S(xk[j] - a[j]) : 0, \
                                              s[j]);                                            \
                }                                                                               \
            }                                                                                   \
        }                                                                                       \
    }

DEF_SOFTMAX_CPU(float, f)
DEF_SOFTMAX_CPU(double, d)

void so_softmax_cpu(const so_softmax_call *c)
{
    if (c->outer == 0 || c->inner == 0) return;
    if (c->dtype == SO_FLOAT64) {
        if (c->inner == 1) rows_d(c);
        else cols_d(c);
    } else {
        if (c->inner == 1) rows_f(c);
        else cols_f(c);
    }
}
