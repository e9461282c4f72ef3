/* softmax.h — softmax, log_softmax, logsumexp and their backwards: the per-element math
 * both devices share, the launch descriptor, and the CPU / CUDA kernels' entry points.
 *
 * Any dim is handled by viewing the (contiguous) input as (outer, n, inner): the reduction
 * runs over n with stride `inner`.  inner == 1 (the last dim, the common case) gets
 * unit-stride row loops on the CPU; inner > 1 walks column blocks so the inner loop is still
 * unit-stride.  The math below (the fast exp, max-shifted forms, the backward formulas) is
 * the only definition: softmax_cpu.c and softmax.cu differ only in how they walk.
 *
 * exp: a float32 exp written with +, *, and exponent bit tricks only (Cephes' range
 * reduction and polynomial, <= 2 ulp over the normal range), branch-free so gcc turns the
 * row loops into SSE2 code; libm's expf is a function call per element that never
 * vectorizes.  Results below 2^-125 flush to 0 (where libm would return a tiny number of
 * magnitude < 2.5e-38); +inf/NaN propagate as in libm.  float64 uses libm's exp.
 */
#ifndef SO_SOFTMAX_H
#define SO_SOFTMAX_H

#include "../core/common.h"
#include <math.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    SO_SM_SOFTMAX = 0,        /* y = exp(x - max) / sum exp(x - max) */
    SO_SM_LOG_SOFTMAX = 1,    /* y = x - max - log(sum exp(x - max)) */
    SO_SM_LOGSUMEXP = 2,      /* out[row] = max' + log(sum exp(x - max')), max' = 0 if |max| = inf */
    SO_SM_SOFTMAX_BW = 3,     /* gx = y * (g - sum(g * y)) */
    SO_SM_LOG_SOFTMAX_BW = 4, /* gx = g - exp(y) * sum(g) */
} so_sm_op;

/* One launch.  Tensors are contiguous, of `dtype` (float32 or float64), viewed as
 * (outer, n, inner).  Forward: x = input, out = result (logsumexp: (outer, inner)).
 * Backward: x = the forward's output y, g = the incoming gradient, out = the input grad. */
typedef struct {
    int op;
    int dtype;
    int64_t outer, n, inner;
    const char *x;
    const char *g;
    char *out;
} so_softmax_call;

SO_HD float so_nn_expf(float x)
{
    /* x = n ln2 + r with n = round(x / ln2) in [-125, 128]; 2^n is applied as 2 * 2^(n-1)
     * so both ends stay normal floats.  Below lo the result flushes to 0. */
    const float lo = -86.64f, hi = 88.72283906f;
    const float magic = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */
    float xc = x < lo ? lo : x;
    xc = xc > hi ? hi : xc;
    float t = xc * 1.44269504088896341f + magic;
    float nf = t - magic;
    int32_t ni = (int32_t)(so_float_to_bits(t) - so_float_to_bits(magic));
    float r = xc - nf * 0.693359375f;
    r = r - nf * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    float y = p * (r * r) + r + 1.0f;
    y = (y + y) * so_bits_to_float((uint32_t)(ni + 126) << 23);
    y = x < lo ? 0.0f : y;
    y = x > hi ? (float)INFINITY : y;
    return y;
}

SO_HD double so_nn_exp(double x) { return exp(x); }
SO_HD float so_nn_logf(float x) { return logf(x); }
SO_HD double so_nn_log(double x) { return log(x); }

/* The shift logsumexp uses: the max, or 0 when it is infinite (all -inf gives -inf, any
 * +inf gives +inf, instead of inf - inf = NaN). */
#define SO_SM_FLOAT_MATH(T, S)                                                                  \
    SO_HD T so_sm_lse_shift_##S(T m) { return (m == (T)INFINITY || m == -(T)INFINITY) ? (T)0 : m; } \
    /* Forward element: a = max (softmax, log_softmax), b = 1/sum (softmax) or              \
     * max + log(sum) (log_softmax); e = exp(x - max) when already computed. */              \
    SO_HD T so_sm_fwd_##S(int op, T x, T e, T b) { return op == SO_SM_SOFTMAX ? e * b : x - b; } \
    /* Backward element: y = forward output, g = grad, dot = sum(g*y) or sum(g). */           \
    SO_HD T so_sm_bwd_##S(int op, T y, T g, T dot, T ey)                                       \
    {                                                                                          \
        return op == SO_SM_SOFTMAX_BW ? y * (g - dot) : g - ey * dot;                          \
    }

SO_SM_FLOAT_MATH(float, f)
SO_SM_FLOAT_MATH(double, d)

/* exp by compute type (the fast float one, libm's double one). */
SO_HD float so_sm_exp_f(float x) { return so_nn_expf(x); }
SO_HD double so_sm_exp_d(double x) { return so_nn_exp(x); }
SO_HD float so_sm_log_f(float x) { return so_nn_logf(x); }
SO_HD double so_sm_log_d(double x) { return so_nn_log(x); }

void so_softmax_cpu(const so_softmax_call *c);
/* CPU row helpers, also used by the fused cross-entropy (cross_entropy_cpu.c): the max of
 * a unit-stride row (NaNs skipped: they reach the sum), and sum exp(x - m) (storing the
 * exps into y unless y is NULL), summed in lanes then in double. */
float so_sm_row_max_f(const float *x, int64_t n);
double so_sm_row_max_d(const double *x, int64_t n);
double so_sm_row_expsum_f(const float *x, float *y, int64_t n, float m);
double so_sm_row_expsum_d(const double *x, double *y, int64_t n, double m);
int so_softmax_cuda(const so_softmax_call *c, void *stream); /* 0 or a cudaError_t */

#ifdef __cplusplus
}
#endif
#endif /* SO_SOFTMAX_H */
