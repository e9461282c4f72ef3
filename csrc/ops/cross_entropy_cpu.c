/* cross_entropy_cpu.c — CPU kernels of the fused cross-entropy and NLL loss.
 *
 * Per sample: the row max and sum of exps (softmax_cpu.c's lane loops when the classes are
 * unit-stride, i.e. inner == 1), then the loss from x[target] alone — the log-probabilities
 * are never materialised, so the forward reads the logits twice from cache and writes one
 * value per sample.  The backward recomputes p = exp(x - lse) from the saved lse.
 * An out-of-range target stops the loop and is reported through c->bad.
 * The math is cross_entropy.h's.
 */
/* No FP trapping semantics: lets gcc if-convert the branch-free exp's selects and vectorize
 * (nothing here reads FP exception flags; torch builds with -fno-trapping-math too).  Before
 * the includes so every function of this file has the same optimisation attributes. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math")
#endif
#include "cross_entropy.h"
#include "cpu_dispatch.h"

#define DEF_XE_CPU(T, S)                                                                        \
    SO_CPU_CLONES static void forward_##S(so_xe_call *c)                                                      \
    {                                                                                           \
        const int64_t C = c->C, inner = c->inner;                                               \
        const T *w = (const T *)(const void *)c->w;                                             \
        const T eps = (T)c->eps;                                                                \
        T W = (T)C;                                                                             \
        if (w) {                                                                                \
            double acc = 0;                                                                     \
            for (int64_t k = 0; k < C; k++) acc += (double)w[k];                                \
            W = (T)acc;                                                                         \
        }                                                                                       \
        for (int64_t n = 0; n < c->N; n++)                                                      \
            for (int64_t i = 0; i < inner; i++) {                                               \
                const int64_t s = n * inner + i;                                                \
                const T *x = (const T *)(const void *)c->x + n * C * inner + i;                 \
                T *loss = (T *)(void *)c->loss + s, *wt = (T *)(void *)c->wt + s;               \
                T lse = 0;                                                                      \
                if (c->kind != SO_XE_NLL) {                                                     \
                    T m;                                                                        \
                    double se = 0;                                                              \
                    if (inner == 1) {                                                           \
                        m = so_sm_row_max_##S(x, C);                                            \
                        se = so_sm_row_expsum_##S(x, NULL, C, m);                               \
                    } else {                                                                    \
                        m = -(T)INFINITY;                                                       \
                        for (int64_t k = 0; k < C; k++) m = x[k * inner] > m ? x[k * inner] : m; \
                        for (int64_t k = 0; k < C; k++) se += (double)so_sm_exp_##S(x[k * inner] - m); \
                    }                                                                           \
                    lse = m + (T)so_sm_log_##S((T)se);                                          \
                    ((T *)(void *)c->lse)[s] = lse;                                             \
                }                                                                               \
                if (c->kind == SO_XE_PROB) {                                                    \
                    const T *q = (const T *)(const void *)c->target + n * C * inner + i;        \
                    double acc = 0;                                                             \
                    for (int64_t k = 0; k < C; k++) {                                           \
                        T qk = so_xe_smooth_prob_##S(q[k * inner], eps, C);                     \
                        acc += (double)((w ? w[k] : (T)1) * qk * (x[k * inner] - lse));         \
                    }                                                                           \
                    *loss = (T)-acc;                                                            \
                    *wt = 1;                                                                    \
                    continue;                                                                   \
                }                                                                               \
                const int64_t t = so_xe_target(c->target, c->tdtype, s);                        \
                if (t == c->ignore_index) {                                                     \
                    *loss = 0;                                                                  \
                    *wt = 0;                                                                    \
                    continue;                                                                   \
                }                                                                               \
                if (t < 0 || t >= C) {                                                          \
                    c->bad[0] = 1;                                                              \
                    c->bad[1] = t;                                                              \
                    return;                                                                     \
                }                                                                               \
                const T wtv = w ? w[t] : (T)1;                                                  \
                *wt = wtv;                                                                      \
                if (c->kind == SO_XE_NLL) {                                                     \
                    *loss = -wtv * x[t * inner];                                                \
                    continue;                                                                   \
                }                                                                               \
                T sum_wx = 0;                                                                   \
                if (eps != (T)0) {                                                              \
                    double acc = 0;                                                             \
                    for (int64_t k = 0; k < C; k++)                                             \
                        acc += (double)((w ? w[k] : (T)1) * x[k * inner]);                      \
                    sum_wx = (T)acc;                                                            \
                }                                                                               \
                *loss = so_xe_loss_index_##S(x[t * inner], lse, wtv, sum_wx, W, eps, C);        \
            }                                                                                   \
    }                                                                                           \
    SO_CPU_CLONES static void backward_##S(const so_xe_call *c)                                               \
    {                                                                                           \
        const int64_t C = c->C, inner = c->inner;                                               \
        const T *w = (const T *)(const void *)c->w;                                             \
        const T eps = (T)c->eps;                                                                \
        T W = (T)C;                                                                             \
        if (w) {                                                                                \
            double acc = 0;                                                                     \
            for (int64_t k = 0; k < C; k++) acc += (double)w[k];                                \
            W = (T)acc;                                                                         \
        }                                                                                       \
        for (int64_t n = 0; n < c->N; n++)                                                      \
            for (int64_t i = 0; i < inner; i++) {                                               \
                const int64_t s = n * inner + i;                                                \
                const T *x = (const T *)(const void *)c->x + n * C * inner + i;                 \
                T *gx = (T *)(void *)c->gx + n * C * inner + i;                                 \
                const T g = ((const T *)(const void *)c->gs)[s * c->gs_stride];                 \
                if (c->kind == SO_XE_PROB) {                                                    \
                    const T lse = ((const T *)(const void *)c->lse)[s];                         \
                    const T *q = (const T *)(const void *)c->target + n * C * inner + i;        \
                    double acc = 0;                                                             \
                    for (int64_t k = 0; k < C; k++)                                             \
                        acc += (double)((w ? w[k] : (T)1) * so_xe_smooth_prob_##S(q[k * inner], eps, C)); \
                    const T swq = (T)acc;                                                       \
                    for (int64_t k = 0; k < C; k++) {                                           \
                        T wq = (w ? w[k] : (T)1) * so_xe_smooth_prob_##S(q[k * inner], eps, C); \
                        T p = so_sm_exp_##S(x[k * inner] - lse);                                \
                        gx[k * inner] = g * so_xe_grad_prob_##S(p, swq, wq);                    \
                    }                                                                           \
                    continue;                                                                   \
                }                                                                               \
                const int64_t t = so_xe_target(c->target, c->tdtype, s);                        \
                const int ignored = t == c->ignore_index || t < 0 || t >= C;                    \
                if (ignored || c->kind == SO_XE_NLL) {                                          \
                    for (int64_t k = 0; k < C; k++) gx[k * inner] = 0;                          \
                    if (!ignored) gx[t * inner] = -g * (w ? w[t] : (T)1);                       \
                    continue;                                                                   \
                }                                                                               \
                const T lse = ((const T *)(const void *)c->lse)[s];                             \
                const T wt = w ? w[t] : (T)1;                                                   \
                if (inner == 1 && !w) {                                                         \
                    for (int64_t k = 0; k < C; k++)                                             \
                        gx[k] = g * so_xe_grad_index_##S(so_sm_exp_##S(x[k] - lse), k == t,     \
                                                         wt, (T)1, W, eps, C);                  \
                } else {                                                                        \
                    for (int64_t k = 0; k < C; k++)                                             \
                        gx[k * inner] = g * so_xe_grad_index_##S(so_sm_exp_##S(x[k * inner] - lse), \
                                                                 k == t, wt, w ? w[k] : (T)1, W, eps, C); \
                }                                                                               \
            }                                                                                   \
    }

DEF_XE_CPU(float, f)
DEF_XE_CPU(double, d)

void so_xe_forward_cpu(so_xe_call *c)
{
    if (c->dtype == SO_FLOAT64) forward_d(c);
    else forward_f(c);
}

void so_xe_backward_cpu(const so_xe_call *c)
{
    if (c->dtype == SO_FLOAT64) backward_d(c);
    else backward_f(c);
}
