/* layer_norm_cpu.c — CPU kernels of LayerNorm / RMSNorm forward and backward.
 *
 * One row at a time, reductions in LN_L independent lanes (SSE-friendly without
 * reassociation) combined in double once per row; the elementwise passes are plain
 * unit-stride loops over restrict pointers, specialised on whether weight / bias exist so
 * each loop body is branch-free.  The math is layer_norm.h's.
 */
/* No FP trapping semantics: lets gcc if-convert the branch-free exp's selects and vectorize
 * (nothing here reads FP exception flags; torch builds with -fno-trapping-math too).  Before
 * the includes so every function of this file has the same optimisation attributes. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math")
#endif
#include "layer_norm.h"
#include "cpu_dispatch.h"

#define LN_L 16

#define DEF_LN_CPU(T, S)                                                                        \
    /* sum (x - shift)^p over a row, p = 1 or 2 */                                              \
    SO_CPU_CLONES static double lane_sum_##S(const T *restrict x, int64_t n, T shift, int sq)                 \
    {                                                                                           \
        T s[LN_L];                                                                              \
        int64_t i = 0;                                                                          \
        for (int l = 0; l < LN_L; l++) s[l] = 0;                                                \
        if (sq) {                                                                               \
            for (; i + LN_L <= n; i += LN_L)                                                    \
                for (int l = 0; l < LN_L; l++) {                                                \
                    T d = x[i + l] - shift;                                                     \
                    s[l] += d * d;                                                              \
                }                                                                               \
        } else {                                                                                \
            for (; i + LN_L <= n; i += LN_L)                                                    \
                for (int l = 0; l < LN_L; l++) s[l] += x[i + l];                                \
        }                                                                                       \
        double r = 0;                                                                           \
        for (int l = 0; l < LN_L; l++) r += (double)s[l];                                       \
        for (; i < n; i++) {                                                                    \
            T d = x[i] - shift;                                                                 \
            r += sq ? (double)(d * d) : (double)x[i];                                           \
        }                                                                                       \
        return r;                                                                               \
    }                                                                                           \
    SO_CPU_CLONES static void forward_##S(const so_ln_call *c)                                                \
    {                                                                                           \
        const int64_t n = c->n;                                                                 \
        const T *restrict w = (const T *)(const void *)c->w;                                    \
        const T *restrict b = (const T *)(const void *)c->b;                                    \
        for (int64_t r = 0; r < c->rows; r++) {                                                 \
            const T *restrict x = (const T *)(const void *)c->x + r * n;                        \
            T *restrict y = (T *)(void *)c->y + r * n;                                          \
            T mean = 0;                                                                         \
            if (!c->rms) mean = n > 0 ? (T)(lane_sum_##S(x, n, 0, 0) / (double)n) : (T)NAN;     \
            const double var = n > 0 ? lane_sum_##S(x, n, mean, 1) / (double)n : (double)NAN;   \
            const T rstd = so_ln_rstd_##S(var, c->eps);                                         \
            ((T *)(void *)c->mean)[r] = mean;                                                   \
            ((T *)(void *)c->rstd)[r] = rstd;                                                   \
            if (w && b)                                                                         \
                for (int64_t i = 0; i < n; i++) y[i] = so_ln_fwd_##S(x[i], mean, rstd, w[i], b[i]); \
            else if (w)                                                                         \
                for (int64_t i = 0; i < n; i++) y[i] = so_ln_fwd_##S(x[i], mean, rstd, w[i], 0); \
            else if (b)                                                                         \
                for (int64_t i = 0; i < n; i++) y[i] = so_ln_fwd_##S(x[i], mean, rstd, 1, b[i]); \
            else                                                                                \
                for (int64_t i = 0; i < n; i++) y[i] = so_ln_fwd_##S(x[i], mean, rstd, 1, 0);   \
        }                                                                                       \
    }                                                                                           \
    SO_CPU_CLONES static void backward_##S(const so_ln_call *c)                                               \
    {                                                                                           \
        const int64_t n = c->n;                                                                 \
        const T *restrict w = (const T *)(const void *)c->w;                                    \
        T *restrict gw = (T *)(void *)c->gw;                                                    \
        T *restrict gb = (T *)(void *)c->gb;                                                    \
        if (gw) memset(gw, 0, sizeof(T) * (size_t)n);                                           \
        if (gb) memset(gb, 0, sizeof(T) * (size_t)n);                                           \
        for (int64_t r = 0; r < c->rows; r++) {                                                 \
            const T *restrict x = (const T *)(const void *)c->x + r * n;                        \
            const T *restrict g = (const T *)(const void *)c->g + r * n;                        \
            const T mean = ((const T *)(const void *)c->mean)[r];                               \
            const T rstd = ((const T *)(const void *)c->rstd)[r];                               \
            if (gw)                                                                             \
                for (int64_t i = 0; i < n; i++) gw[i] += g[i] * ((x[i] - mean) * rstd);         \
            if (gb)                                                                             \
                for (int64_t i = 0; i < n; i++) gb[i] += g[i];                                  \
            if (!c->gx) continue;                                                               \
            T *restrict gx = (T *)(void *)c->gx + r * n;                                        \
            T s1[LN_L], s2[LN_L];                                                               \
            int64_t i = 0;                                                                      \
            for (int l = 0; l < LN_L; l++) s1[l] = s2[l] = 0;                                   \
            for (; i + LN_L <= n; i += LN_L)                                                    \
                for (int l = 0; l < LN_L; l++) {                                                \
                    T gh = w ? g[i + l] * w[i + l] : g[i + l];                                  \
                    s1[l] += gh;                                                                \
                    s2[l] += gh * ((x[i + l] - mean) * rstd);                                   \
                }                                                                               \
            double d1 = 0, d2 = 0;                                                              \
            for (int l = 0; l < LN_L; l++) {                                                    \
                d1 += (double)s1[l];                                                            \
                d2 += (double)s2[l];                                                            \
            }                                                                                   \
            for (; i < n; i++) {                                                                \
                T gh = w ? g[i] * w[i] : g[i];                                                  \
                d1 += (double)gh;                                                               \
                d2 += (double)(gh * ((x[i] - mean) * rstd));                                    \
            }                                                                                   \
            const T m1 = (T)(d1 / (double)n), m2 = (T)(d2 / (double)n);                         \
            if (w)                                                                              \
                for (int64_t k = 0; k < n; k++)                                                 \
                    gx[k] = so_ln_bwd_##S(c->rms, g[k] * w[k], (x[k] - mean) * rstd, rstd, m1, m2); \
            else                                                                                \
                for (int64_t k = 0; k < n; k++)                                                 \
                    gx[k] = so_ln_bwd_##S(c->rms, g[k], (x[k] - mean) * rstd, rstd, m1, m2);    \
        }                                                                                       \
    }

DEF_LN_CPU(float, f)
DEF_LN_CPU(double, d)

void so_ln_forward_cpu(const so_ln_call *c)
{
    if (c->dtype == SO_FLOAT64) forward_d(c);
    else forward_f(c);
}

void so_ln_backward_cpu(const so_ln_call *c)
{
    if (c->dtype == SO_FLOAT64) backward_d(c);
    else backward_f(c);
}
