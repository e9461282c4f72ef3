/* cross_entropy.h — fused cross-entropy (log_softmax + NLL, with label smoothing and class
 * weights, class-index or class-probability targets) and NLLLoss: the per-sample math both
 * devices share, the launch descriptor, and the CPU / CUDA kernels' entry points.
 *
 * Input is viewed as (N, C, inner) with the classes in dim 1 (torch's layout), a sample is
 * one (n, i).  The kernels write per-sample values; the reduction is done by the caller:
 *   loss[s]: the sample's loss (0 for ignored targets),
 *   wt[s]:   its weight in torch's 'mean' denominator: w[target] (1 without weight, 0 when
 *            ignored) for index targets, 1 for probability targets,
 * so 'mean' = sum(loss) / sum(wt) and 'sum' = sum(loss) — torch's exact semantics,
 * including label smoothing's denominator and NaN when every target is ignored.
 *   index targets, t = target[s], lse = logsumexp_c x[c], W = sum_c w_c:
 *     nll = -w_t (x_t - lse);  smooth = -sum_c w_c (x_c - lse)
 *     loss = (1 - eps) nll + eps / C * smooth
 *     dloss/dx_c = (1 - eps) w_t (p_c - [c == t]) + eps / C (W p_c - w_c),  p_c = exp(x_c - lse)
 *   probability targets, q'_c = (1 - eps) q_c + eps / C:
 *     loss = -sum_c w_c q'_c (x_c - lse);  dloss/dx_c = p_c sum_c' w_c' q'_c' - w_c q'_c
 *   NLL (x already log-probabilities): loss = -w_t x_t;  dloss/dx_c = -w_t [c == t]
 * The backward scales each sample's gradient by gs[s * gs_stride] (the incoming gradient:
 * per sample for 'none', one value for 'sum', grad / sum(wt) for 'mean').
 */
#ifndef SO_CROSS_ENTROPY_H
#define SO_CROSS_ENTROPY_H

#include "../core/common.h"
#include "softmax.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { SO_XE_NLL = 0, SO_XE_INDEX = 1, SO_XE_PROB = 2 } so_xe_kind;

typedef struct {
    int kind;
    int dtype;         /* x, w, loss, wt, lse, gs, gx (and probability targets) */
    int tdtype;        /* index targets: int64 or int32 */
    int64_t N, C, inner;
    const char *x;
    const char *target;
    const char *w;     /* (C,) or NULL */
    int64_t ignore_index;
    double eps;        /* label smoothing */
    /* forward */
    char *loss, *wt, *lse; /* (N*inner,) each; lse only for cross-entropy */
    int64_t *bad;      /* [0]: set to 1 on an out-of-range target, [1]: that target */
    /* backward */
    const char *gs;
    int64_t gs_stride; /* 0 or 1 */
    char *gx;
} so_xe_call;

SO_HD int64_t so_xe_target(const char *t, int tdtype, int64_t s)
{
    if (tdtype == SO_INT32) {
        int32_t v;
        memcpy(&v, t + 4 * s, 4);
        return v;
    }
    int64_t v;
    memcpy(&v, t + 8 * s, 8);
    return v;
}

#define SO_XE_FLOAT_MATH(T, S)                                                                  \
    /* index targets: the loss from x_t, the row's lse, and sum_c w_c x_c (smoothing) */       \
    SO_HD T so_xe_loss_index_##S(T xt, T lse, T wt, T sum_wx, T W, T eps, int64_t C)            \
    {                                                                                           \
        T nll = -wt * (xt - lse);                                                               \
        if (eps == (T)0) return nll;                                                            \
        return ((T)1 - eps) * nll + eps / (T)C * -(sum_wx - lse * W);                           \
    }                                                                                           \
    SO_HD T so_xe_grad_index_##S(T p, int is_t, T wt, T wc, T W, T eps, int64_t C)              \
    {                                                                                           \
        T g = ((T)1 - eps) * wt * (p - (is_t ? (T)1 : (T)0));                                   \
        return eps == (T)0 ? g : g + eps / (T)C * (W * p - wc);                                 \
    }                                                                                           \
    SO_HD T so_xe_smooth_prob_##S(T q, T eps, int64_t C) { return ((T)1 - eps) * q + eps / (T)C; } \
    SO_HD T so_xe_grad_prob_##S(T p, T sum_wq, T wq) { return p * sum_wq - wq; }

SO_XE_FLOAT_MATH(float, f)
SO_XE_FLOAT_MATH(double, d)

void so_xe_forward_cpu(so_xe_call *c);
void so_xe_backward_cpu(const so_xe_call *c);
int so_xe_forward_cuda(const so_xe_call *c, void *stream); /* 0 or a cudaError_t */
int so_xe_backward_cuda(const so_xe_call *c, void *stream);

#ifdef __cplusplus
}
#endif
#endif /* SO_CROSS_ENTROPY_H */
