/* layer_norm.h — LayerNorm and RMSNorm over the last dims (rows of n = prod(normalized_shape)
 * elements): the per-element math both devices share, the launch descriptor, and the CPU /
 * CUDA kernels' entry points.
 *
 *   LayerNorm: mean = sum x / n, var = sum (x - mean)^2 / n (biased, two passes),
 *              rstd = 1 / sqrt(var + eps), y = (x - mean) * rstd * w + b
 *   RMSNorm:   mean = 0, rstd = 1 / sqrt(sum x^2 / n + eps), y = x * rstd * w
 * Backward, with xhat = (x - mean) * rstd and gh = g * w (g without weight):
 *   gx = rstd * (gh - [LayerNorm only: mean(gh)] - xhat * mean(gh * xhat))
 *   gw = sum over rows of g * xhat, gb = sum over rows of g.
 * mean and rstd are saved per row (in the input's dtype) for the backward.
 */
#ifndef SO_LAYER_NORM_H
#define SO_LAYER_NORM_H

#include "../core/common.h"
#include <math.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int rms;          /* 1: RMSNorm */
    int dtype;        /* float32 / float64; every pointer below is contiguous of this dtype */
    int64_t rows, n;
    double eps;
    const char *x;
    const char *w, *b; /* (n,) or NULL */
    /* forward */
    char *y, *mean, *rstd; /* (rows, n), (rows,), (rows,) */
    /* backward (x, w, mean, rstd as saved; any of gx / gw / gb may be NULL = not wanted) */
    const char *g;
    char *gx, *gw, *gb;
} so_ln_call;

#define SO_LN_FLOAT_MATH(T, S)                                                                  \
    SO_HD T so_ln_rstd_##S(double var, double eps) { return (T)(1.0 / sqrt(var + eps)); }       \
    SO_HD T so_ln_fwd_##S(T x, T mean, T rstd, T w, T b) { return (x - mean) * rstd * w + b; }  \
    /* gx from the row's sums: s1 = sum gh, s2 = sum gh * xhat */                              \
    SO_HD T so_ln_bwd_##S(int rms, T gh, T xhat, T rstd, T s1_n, T s2_n)                       \
    {                                                                                           \
        return rstd * (gh - (rms ? (T)0 : s1_n) - xhat * s2_n);                                 \
    }

SO_LN_FLOAT_MATH(float, f)
SO_LN_FLOAT_MATH(double, d)

void so_ln_forward_cpu(const so_ln_call *c);
void so_ln_backward_cpu(const so_ln_call *c);
int so_ln_forward_cuda(const so_ln_call *c, void *stream);  /* 0 or a cudaError_t */
int so_ln_backward_cuda(const so_ln_call *c, void *stream);

#ifdef __cplusplus
}
#endif
#endif /* SO_LAYER_NORM_H */
