/* elementwise_math.h — the per-element math of every elementwise op, once, for C and CUDA.
 *
 * Three compute types: float (float32, and float16/bfloat16 which compute in float32 like
 * torch's opmath), double, int64 (int32, int64 and bool all compute in int64 and are
 * narrowed on store: +, -, * wrap modulo 2^n either way, so the results are identical).
 * For each compute type there is one function per arity taking the op code; the CPU loops
 * (elementwise_cpu.c) and the CUDA kernels (elementwise.cu) call them with a compile-time
 * constant op, so the switch folds away and each loop holds only its own op.
 * Semantics follow torch's CPU kernels (NaN propagation in maximum/minimum/clamp, Python-style
 * floor division and remainder, lerp's two-sided formula, gelu's erf and tanh forms).
 * The launch descriptor (so_ew_call) is here too, so elementwise.cu needs no Python header.
 */
#ifndef SO_ELEMENTWISE_MATH_H
#define SO_ELEMENTWISE_MATH_H

#include "../core/common.h"
#include <math.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Op codes.  The ranges tell the arity and the output kind. */
typedef enum {
    /* unary: out = f(x) */
    SO_EW_NEG = 0, SO_EW_ABS, SO_EW_SQRT, SO_EW_EXP, SO_EW_LOG, SO_EW_SIGN, SO_EW_GELU,
    SO_EW_GELU_TANH, SO_EW_RELU, SO_EW_CLAMP_S, /* clamp with scalar bounds in params */
    SO_EW_SIGMOID, SO_EW_TANH, SO_EW_RSQRT, SO_EW_RECIPROCAL, SO_EW_SQUARE,
    SO_EW_SIN, SO_EW_COS, SO_EW_TAN, SO_EW_ASIN, SO_EW_ACOS, SO_EW_ATAN, /* trigonometric */
    SO_EW_SINH, SO_EW_COSH, SO_EW_ASINH, SO_EW_ACOSH, SO_EW_ATANH,
    SO_EW_FLOOR, SO_EW_CEIL, SO_EW_ROUND, SO_EW_TRUNC, /* identity on integers */
    SO_EW_LOG1P, SO_EW_EXPM1, SO_EW_ERF, SO_EW_ERFC, SO_EW_LOG2, SO_EW_LOG10, SO_EW_EXP2,
    SO_EW_UNARY_END, /* < SO_EW_ADD */
    /* binary: out = f(a, b) */
    SO_EW_ADD = 40, SO_EW_SUB, SO_EW_MUL, SO_EW_DIV, SO_EW_DIV_TRUNC, SO_EW_DIV_FLOOR,
    SO_EW_REMAINDER, SO_EW_POW, SO_EW_MAXIMUM, SO_EW_MINIMUM, SO_EW_CLAMP_MIN_T,
    SO_EW_CLAMP_MAX_T, SO_EW_LERP_S, /* lerp with a scalar weight in params */
    SO_EW_GELU_BACKWARD, SO_EW_GELU_TANH_BACKWARD, /* (grad, x) -> grad * gelu'(x) */
    SO_EW_BINARY_END,
    /* comparisons: bool out = f(a, b) */
    SO_EW_EQ = 64, SO_EW_NE, SO_EW_LT, SO_EW_LE, SO_EW_GT, SO_EW_GE, SO_EW_ISCLOSE,
    SO_EW_COMPARE_END,
    /* ternary: out = f(a, b, c) */
    SO_EW_ADDCMUL = 96, SO_EW_ADDCDIV, SO_EW_LERP_T, SO_EW_CLAMP_T,
    SO_EW_TERNARY_END,
    /* where: out = cond ? a : b (cond is bool) */
    SO_EW_WHERE = 128
} so_ew_op;

#define SO_EW_IS_UNARY(op) ((op) < SO_EW_UNARY_END)
#define SO_EW_IS_BINARY(op) ((op) >= SO_EW_ADD && (op) < SO_EW_BINARY_END)
#define SO_EW_IS_COMPARE(op) ((op) >= SO_EW_EQ && (op) < SO_EW_COMPARE_END)
#define SO_EW_IS_TERNARY(op) ((op) >= SO_EW_ADDCMUL && (op) < SO_EW_TERNARY_END)

/* Scalar parameters of an op (alpha, value, weight, clamp bounds, rtol/atol), kept in both
 * a float and an int form so each compute type reads its own exactly. */
#define SO_EW_HAS_LO 1   /* clamp: a lower bound is given */
#define SO_EW_HAS_HI 2   /* clamp: an upper bound is given */
#define SO_EW_EQUAL_NAN 4 /* isclose */
typedef struct {
    double f0, f1;
    int64_t i0, i1;
    int flags;
    int err; /* set by CPU loops: integer division by zero */
} so_ew_params;

/* ---- libm by compute type (CUDA has the same names as device functions) ---- */
SO_HD float so_m_sqrt_f(float x) { return sqrtf(x); }
SO_HD double so_m_sqrt_d(double x) { return sqrt(x); }
SO_HD float so_m_exp_f(float x) { return expf(x); }
SO_HD double so_m_exp_d(double x) { return exp(x); }
SO_HD float so_m_log_f(float x) { return logf(x); }
SO_HD double so_m_log_d(double x) { return log(x); }
SO_HD float so_m_tanh_f(float x) { return tanhf(x); }
SO_HD double so_m_tanh_d(double x) { return tanh(x); }
/* trigonometric and hyperbolic families: libm on the CPU, CUDA's device math on the GPU */
SO_HD float so_m_sin_f(float x) { return sinf(x); }
SO_HD double so_m_sin_d(double x) { return sin(x); }
SO_HD float so_m_cos_f(float x) { return cosf(x); }
SO_HD double so_m_cos_d(double x) { return cos(x); }
SO_HD float so_m_tan_f(float x) { return tanf(x); }
SO_HD double so_m_tan_d(double x) { return tan(x); }
SO_HD float so_m_asin_f(float x) { return asinf(x); }
SO_HD double so_m_asin_d(double x) { return asin(x); }
SO_HD float so_m_acos_f(float x) { return acosf(x); }
SO_HD double so_m_acos_d(double x) { return acos(x); }
SO_HD float so_m_atan_f(float x) { return atanf(x); }
SO_HD double so_m_atan_d(double x) { return atan(x); }
SO_HD float so_m_sinh_f(float x) { return sinhf(x); }
SO_HD double so_m_sinh_d(double x) { return sinh(x); }
SO_HD float so_m_cosh_f(float x) { return coshf(x); }
SO_HD double so_m_cosh_d(double x) { return cosh(x); }
SO_HD float so_m_asinh_f(float x) { return asinhf(x); }
SO_HD double so_m_asinh_d(double x) { return asinh(x); }
SO_HD float so_m_acosh_f(float x) { return acoshf(x); }
SO_HD double so_m_acosh_d(double x) { return acosh(x); }
SO_HD float so_m_atanh_f(float x) { return atanhf(x); }
SO_HD double so_m_atanh_d(double x) { return atanh(x); }
SO_HD float so_m_pow_f(float x, float y) { return powf(x, y); }
SO_HD double so_m_pow_d(double x, double y) { return pow(x, y); }
SO_HD float so_m_fmod_f(float x, float y) { return fmodf(x, y); }
SO_HD double so_m_fmod_d(double x, double y) { return fmod(x, y); }
SO_HD float so_m_floor_f(float x) { return floorf(x); }
SO_HD double so_m_floor_d(double x) { return floor(x); }
SO_HD float so_m_trunc_f(float x) { return truncf(x); }
SO_HD float so_m_ceil_f(float x) { return ceilf(x); }
SO_HD double so_m_ceil_d(double x) { return ceil(x); }
/* torch.round: halfway cases to even (rint under the default rounding mode) */
SO_HD float so_m_rint_f(float x) { return rintf(x); }
SO_HD double so_m_rint_d(double x) { return rint(x); }
SO_HD float so_m_log1p_f(float x) { return log1pf(x); }
SO_HD double so_m_log1p_d(double x) { return log1p(x); }
SO_HD float so_m_expm1_f(float x) { return expm1f(x); }
SO_HD double so_m_expm1_d(double x) { return expm1(x); }
SO_HD float so_m_erf_f(float x) { return erff(x); }
SO_HD double so_m_erf_d(double x) { return erf(x); }
SO_HD float so_m_erfc_f(float x) { return erfcf(x); }
SO_HD double so_m_erfc_d(double x) { return erfc(x); }
SO_HD float so_m_log2_f(float x) { return log2f(x); }
SO_HD double so_m_log2_d(double x) { return log2(x); }
SO_HD float so_m_log10_f(float x) { return log10f(x); }
SO_HD double so_m_log10_d(double x) { return log10(x); }
SO_HD float so_m_exp2_f(float x) { return exp2f(x); }
SO_HD double so_m_exp2_d(double x) { return exp2(x); }
SO_HD double so_m_trunc_d(double x) { return trunc(x); }
SO_HD float so_m_fabs_f(float x) { return fabsf(x); }
SO_HD float so_m_fabs_f_(float x) { return so_bits_to_float(so_float_to_bits(x) & 0x7fffffffu); }
SO_HD double so_m_fabs_d(double x) { return fabs(x); }
SO_HD float so_m_copysign_f(float x, float y) { return copysignf(x, y); }
SO_HD double so_m_copysign_d(double x, double y) { return copysign(x, y); }

/* ---- float32 exp and erf for GELU: branch-free polynomials, no libm ----
 * glibc's scalar erff/expf/tanhf cost 10-40 ns each and block vectorisation, which made
 * GELU 15-70x slower than torch.  These are straight-line code (both range branches are
 * computed and one is selected), so the CPU loops vectorise them and CUDA runs them as is.
 * Coefficients: near-minimax fits made for shardopt (weighted least squares with Lawson
 * reweighting, in float64, rounded to float32).  Measured against float64 over a dense sweep
 * of float32 inputs, with / without FMA: |err| / max(1, |x|) <= 1.14e-7 / 1.23e-7 (gelu),
 * 1.30e-7 / 1.47e-7 (gelu backward), 1.41e-7 (tanh form), 1.96e-7 (its backward); the bounds
 * tests/ops/test_gelu_accuracy.py asserts are 1.5e-7 / 2e-7 / 2e-7 / 2.5e-7. */

/* c ? a : b through bit masks.  A plain ?: on floats lets gcc's jump threading duplicate
 * the paths where the condition is known (e.g. the clamped input is a constant), and the
 * control flow it leaves behind stops the loops from vectorising. */
SO_HD float so_sel_f(int c, float a, float b)
{
    uint32_t m = 0u - (uint32_t)(c != 0);
    return so_bits_to_float((so_float_to_bits(a) & m) | (so_float_to_bits(b) & ~m));
}

SO_HD double so_sel_d(int c, double a, double b) { return c ? a : b; }

/* exp(r) for r in [-87, 88] or NaN (no range handling): Cody-Waite reduction r = n ln2 + f,
 * |f| <= ln2/2, degree-6 polynomial (rel err 1.9e-9 before rounding), 2^n built in the
 * exponent bits.  NaN in, NaN out. */
SO_HD_INLINE float so_m_exp_core_f(float r)
{
    const float shifter = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */
    float k = r * 1.44269504f + shifter;
    float n = k - shifter;
    float f = r - n * 0.693359375f; /* ln2 high part: 9 bits, so n * hi is exact */
    f = f + n * 2.12194440e-4f;      /* ln2 low part (ln2 = hi - lo) */
    float p = 0.00138368353f;
    p = p * f + 0.00837481581f;
    p = p * f + 0.0416682251f;
    p = p * f + 0.166664198f;
    p = p * f + 0.499999911f;
    p = p * (f * f) + (f + 1.0f);
    /* k's low mantissa bits hold n + 2^22 (two's complement for negative n) */
    int32_t ni = (int32_t)(so_float_to_bits(k) - 0x4B400000u);
    return p * so_bits_to_float((uint32_t)(ni + 127) << 23);
}

/* exp(r) for any r: below -87 (float32's normal range ends there) 0, above 88 +inf. */
SO_HD_INLINE float so_m_exp_fast_f(float r)
{
    int lo = r < -87.0f, hi = r > 88.0f;
    float res = so_m_exp_core_f(so_sel_f(lo, -87.0f, so_sel_f(hi, 88.0f, r)));
    return so_sel_f(lo, 0.0f, so_sel_f(hi, (float)INFINITY, res));
}

/* exp(-x^2 / 2), 0 where it underflows. */
SO_HD_INLINE float so_m_gauss_f(float x)
{
    float r = -0.5f * x * x;
    int lo = r < -87.0f;
    return so_sel_f(lo, 0.0f, so_m_exp_core_f(so_sel_f(lo, -87.0f, r)));
}
SO_HD double so_m_gauss_d(double x) { return exp(-0.5 * x * x); }

/* Phi(x) = (1 + erf(x / sqrt 2)) / 2, the standard normal CDF, for float32 x of any value:
 * GELU's erf form is x * Phi(x).  Two pieces, both computed and one selected (straight-line
 * code, so the loops vectorise), with t = |x| / sqrt 2 and y = x^2:
 *   |t| <= 0.921875:  Phi = 1/2 + x * P(y), P of degree 5: (1 + erf(t)) / 2 with erf(t) =
 *                     t + t R(t^2), the 1/sqrt 2 and 1/2 folded into P's coefficients;
 *   |t| >  0.921875:  erfc(t) / 2 = exp(Q(t - 2.4609375) - y / 2), Q of degree 8 centred in
 *                     [0.921875, 4] with the 1/2 folded into its constant term (- ln 2);
 *                     Phi is that for x < 0 (no cancellation: relative accuracy down to
 *                     x ~ -5.6) and 1 minus it otherwise; 0 for t > 4 (erfc(4) = 1.5e-8).
 * NaN for NaN.  Written to need few multiply-add slots (the loop is bound by them on
 * AVX-512): y is shared by both pieces and by the exponent, the scalings are folded into
 * constants, and lanes beyond t = 4 are not clamped but masked out (whatever the
 * polynomial gives them, inf and NaN included, is discarded). */
#define SO_ERF_SPLIT 0.921875f
SO_HD_INLINE float so_m_phi_f(float x)
{
    float y = x * x, ax = so_m_fabs_f_(x);
    float P = -6.6439184e-06f;
    P = P * y + 0.00011044124f;
    P = P * y - 0.0011830882f;
    P = P * y + 0.009971909f;
    P = P * y - 0.06649014f;
    P = P * y + 0.39894226f;
    float near = 0.5f + x * P;
    float u = ax * 0.70710677f - 2.4609375f;
    float e = 1.60250022e-06f;
    e = e * u - 1.38055657e-05f;
    e = e * u + 8.1152255e-05f;
    e = e * u - 0.000438746531f;
    e = e * u + 0.00224895449f;
    e = e * u - 0.0112032956f;
    e = e * u + 0.0573989451f;
    e = e * u - 0.357114226f;
    e = e * u - 2.2360995f; /* -1.54295242 - ln 2 */
    /* for t in (0.92, 4] the exponent is in [-18, -1.5]: exp_core needs no range handling */
    float half = so_sel_f(ax > 4.0f * 1.41421356f, 0.0f, so_m_exp_core_f(e - 0.5f * y));
    float far = so_sel_f(x < 0, half, 1.0f - half);
    return so_sel_f(ax <= SO_ERF_SPLIT * 1.41421356f, near, far);
}
SO_HD double so_m_phi_d(double x) { return 0.5 * erfc(-x * 0.70710678118654752440); }

/* sig = 1 / (1 + exp(-z)): float32 through so_m_exp_fast_f (z -> -inf gives 0, +inf 1).
 * so_m_sigmoid2_* also give 1 - sig = e / (1 + e) without the cancellation of 1 - sig
 * when sig ~ 1 (where e = exp(-z) > 1, i.e. sig < 1/2, 1 - sig itself is exact enough and
 * e * sig would be inf * 0). */
SO_HD_INLINE float so_m_sigmoid_f(float z) { return 1.0f / (1.0f + so_m_exp_fast_f(-z)); }
SO_HD double so_m_sigmoid_d(double z) { return 1.0 / (1.0 + exp(-z)); }
SO_HD_INLINE float so_m_sigmoid2_f(float z, float *comp)
{
    float e = so_m_exp_fast_f(-z), sig = 1.0f / (1.0f + e);
    *comp = so_sel_f(e > 1.0f, 1.0f - sig, e * sig);
    return sig;
}
SO_HD double so_m_sigmoid2_d(double z, double *comp)
{
    double e = exp(-z), sig = 1.0 / (1.0 + e);
    *comp = e > 1.0 ? 1.0 - sig : e * sig;
    return sig;
}

/* ---- float and double: one body, instantiated twice (T = type, S = libm suffix) ---- */
#define SO_EW_FLOAT_MATH(T, S)                                                                 \
    /* Python's floor division (torch's div_floor_floating): exact for representable */       \
    /* quotients, IEEE result on division by zero, signed zero kept. */                       \
    SO_HD T so_ew_floordiv_##S(T a, T b)                                                       \
    {                                                                                          \
        if (b == 0) return a / b;                                                              \
        T mod = so_m_fmod_##S(a, b);                                                           \
        T div = (a - mod) / b;                                                                 \
        if (mod != 0 && (b < 0) != (mod < 0)) div -= (T)1;                                     \
        if (div != 0) {                                                                        \
            T fl = so_m_floor_##S(div);                                                        \
            if (div - fl > (T)0.5) fl += (T)1;                                                 \
            return fl;                                                                         \
        }                                                                                      \
        return so_m_copysign_##S((T)0, a / b);                                                 \
    }                                                                                          \
    SO_HD T so_ew_max_##S(T a, T b) { return a != a ? a : (b != b ? b : (a > b ? a : b)); }   \
    SO_HD T so_ew_min_##S(T a, T b) { return a != a ? a : (b != b ? b : (a < b ? a : b)); }   \
    /* gelu(x) = x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2)) */                                 \
    SO_HD_INLINE T so_ew_gelu_##S(T x) { return x * so_m_phi_##S(x); }                         \
    /* 0.5 x (1 + tanh(u)) = x * sigmoid(2u): the same value, no cancellation for x << 0 */   \
    SO_HD_INLINE T so_ew_gelu_tanh_##S(T x)                                                    \
    {                                                                                          \
        const T two_beta = (T)(1.59576912160573071176), kappa = (T)0.044715;                   \
        return x * so_m_sigmoid_##S(two_beta * (x + kappa * x * x * x));                       \
    }                                                                                          \
    SO_HD_INLINE T so_ew_gelu_grad_##S(T x)                                                    \
    {                                                                                          \
        const T inv_sqrt_2pi = (T)0.39894228040143267794;                                      \
        return so_m_phi_##S(x) + x * inv_sqrt_2pi * so_m_gauss_##S(x);                         \
    }                                                                                          \
    /* d/dx [x sig(2u)] = sig + x * 2 sig (1 - sig) * du/dx; where sig (1 - sig) is exactly */ \
    /* 0 (|x| >~ 10, or infinite) the second term is 0, not 0 * inf */                        \
    SO_HD_INLINE T so_ew_gelu_tanh_grad_##S(T x)                                               \
    {                                                                                          \
        const T two_beta = (T)(1.59576912160573071176), kappa = (T)0.044715;                   \
        T comp;                                                                                \
        T sig = so_m_sigmoid2_##S(two_beta * (x + kappa * x * x * x), &comp);                  \
        T w = sig * comp;                                                                      \
        T dinner = two_beta * ((T)1 + (T)3 * kappa * x * x);                                   \
        T full = sig + (w * x) * dinner;                                                       \
        return so_sel_##S(w == (T)0, sig, full);                                               \
    }                                                                                          \
    SO_HD T so_ew_clamp_##S(T x, T lo, T hi, int flags)                                        \
    {                                                                                          \
        if (x != x) return x;                                                                  \
        if ((flags & SO_EW_HAS_LO) && x < lo) x = lo;                                          \
        if ((flags & SO_EW_HAS_HI) && x > hi) x = hi;                                          \
        return x;                                                                              \
    }                                                                                          \
    SO_HD T so_ew_lerp_##S(T self, T end, T w)                                                 \
    {                                                                                          \
        return so_m_fabs_##S(w) < (T)0.5 ? self + w * (end - self)                             \
                                         : end - (end - self) * ((T)1 - w);                    \
    }                                                                                          \
    SO_HD_INLINE T so_ew_unary_##S(int op, T x, const so_ew_params *p)                         \
    {                                                                                          \
        switch (op) {                                                                          \
        case SO_EW_NEG: return -x;                                                             \
        case SO_EW_ABS: return so_m_fabs_##S(x);                                               \
        case SO_EW_SQRT: return so_m_sqrt_##S(x);                                              \
        case SO_EW_EXP: return so_m_exp_##S(x);                                                \
        case SO_EW_LOG: return so_m_log_##S(x);                                                \
        case SO_EW_SIGN: return (T)((x > 0) - (x < 0));                                        \
        case SO_EW_GELU: return so_ew_gelu_##S(x);                                             \
        case SO_EW_GELU_TANH: return so_ew_gelu_tanh_##S(x);                                   \
        case SO_EW_RELU: return x < 0 ? (T)0 : x;                                              \
        case SO_EW_CLAMP_S: return so_ew_clamp_##S(x, (T)p->f0, (T)p->f1, p->flags);           \
        case SO_EW_SIGMOID: return (T)1 / ((T)1 + so_m_exp_##S(-x));                           \
        case SO_EW_TANH: return so_m_tanh_##S(x);                                              \
        case SO_EW_RSQRT: return (T)1 / so_m_sqrt_##S(x);                                      \
        case SO_EW_RECIPROCAL: return (T)1 / x;                                                \
        case SO_EW_SQUARE: return x * x;                                                       \
        case SO_EW_SIN: return so_m_sin_##S(x);                                                \
        case SO_EW_COS: return so_m_cos_##S(x);                                                \
        case SO_EW_TAN: return so_m_tan_##S(x);                                                \
        case SO_EW_ASIN: return so_m_asin_##S(x);                                              \
        case SO_EW_ACOS: return so_m_acos_##S(x);                                              \
        case SO_EW_ATAN: return so_m_atan_##S(x);                                              \
        case SO_EW_SINH: return so_m_sinh_##S(x);                                              \
        case SO_EW_COSH: return so_m_cosh_##S(x);                                              \
        case SO_EW_ASINH: return so_m_asinh_##S(x);                                            \
        case SO_EW_ACOSH: return so_m_acosh_##S(x);                                            \
        case SO_EW_ATANH: return so_m_atanh_##S(x);                                            \
        case SO_EW_FLOOR: return so_m_floor_##S(x);                                            \
        case SO_EW_CEIL: return so_m_ceil_##S(x);                                              \
        case SO_EW_ROUND: return so_m_rint_##S(x);                                             \
        case SO_EW_TRUNC: return so_m_trunc_##S(x);                                            \
        case SO_EW_LOG1P: return so_m_log1p_##S(x);                                            \
        case SO_EW_EXPM1: return so_m_expm1_##S(x);                                            \
        case SO_EW_ERF: return so_m_erf_##S(x);                                                \
        case SO_EW_ERFC: return so_m_erfc_##S(x);                                              \
        case SO_EW_LOG2: return so_m_log2_##S(x);                                              \
        case SO_EW_LOG10: return so_m_log10_##S(x);                                            \
        case SO_EW_EXP2: return so_m_exp2_##S(x);                                              \
        default: return x;                                                                     \
        }                                                                                      \
    }                                                                                          \
    SO_HD_INLINE T so_ew_binary_##S(int op, T a, T b, const so_ew_params *p)                   \
    {                                                                                          \
        switch (op) {                                                                          \
        case SO_EW_ADD: return a + (T)p->f0 * b;                                               \
        case SO_EW_SUB: return a - (T)p->f0 * b;                                               \
        case SO_EW_MUL: return a * b;                                                          \
        case SO_EW_DIV: return a / b;                                                          \
        case SO_EW_DIV_TRUNC: return so_m_trunc_##S(a / b);                                    \
        case SO_EW_DIV_FLOOR: return so_ew_floordiv_##S(a, b);                                 \
        case SO_EW_REMAINDER: {                                                                \
            T m = so_m_fmod_##S(a, b);                                                         \
            return (m != 0 && (b < 0) != (m < 0)) ? m + b : m;                                 \
        }                                                                                      \
        case SO_EW_POW: return so_m_pow_##S(a, b);                                             \
        case SO_EW_MAXIMUM: return so_ew_max_##S(a, b);                                        \
        case SO_EW_MINIMUM: return so_ew_min_##S(a, b);                                        \
        case SO_EW_CLAMP_MIN_T: return so_ew_max_##S(a, b);                                    \
        case SO_EW_CLAMP_MAX_T: return so_ew_min_##S(a, b);                                    \
        case SO_EW_LERP_S: return so_ew_lerp_##S(a, b, (T)p->f0);                              \
        case SO_EW_GELU_BACKWARD: return a * so_ew_gelu_grad_##S(b);                           \
        case SO_EW_GELU_TANH_BACKWARD: return a * so_ew_gelu_tanh_grad_##S(b);                 \
        default: return a;                                                                     \
        }                                                                                      \
    }                                                                                          \
    SO_HD uint8_t so_ew_compare_##S(int op, T a, T b, const so_ew_params *p)                  \
    {                                                                                          \
        switch (op) {                                                                          \
        case SO_EW_EQ: return a == b;                                                          \
        case SO_EW_NE: return a != b;                                                          \
        case SO_EW_LT: return a < b;                                                           \
        case SO_EW_LE: return a <= b;                                                          \
        case SO_EW_GT: return a > b;                                                           \
        case SO_EW_GE: return a >= b;                                                          \
        case SO_EW_ISCLOSE: {                                                                  \
            if (a == b) return 1;                                                              \
            if ((p->flags & SO_EW_EQUAL_NAN) && a != a && b != b) return 1;                    \
            T diff = so_m_fabs_##S(a - b);                                                     \
            T allowed = (T)p->f1 + so_m_fabs_##S((T)p->f0 * b);                               \
            /* diff - diff is 0 only for finite diff (NaN/inf give NaN) */                     \
            return diff - diff == 0 && diff <= allowed;                                        \
        }                                                                                      \
        default: return 0;                                                                     \
        }                                                                                      \
    }                                                                                          \
    SO_HD_INLINE T so_ew_ternary_##S(int op, T a, T b, T c, const so_ew_params *p)             \
    {                                                                                          \
        switch (op) {                                                                          \
        case SO_EW_ADDCMUL: return a + (T)p->f0 * b * c;                                       \
        case SO_EW_ADDCDIV: return a + (T)p->f0 * b / c;                                       \
        case SO_EW_LERP_T: return so_ew_lerp_##S(a, b, c);                                     \
        case SO_EW_CLAMP_T: return so_ew_min_##S(so_ew_max_##S(a, b), c);                      \
        default: return a;                                                                     \
        }                                                                                      \
    }

SO_EW_FLOAT_MATH(float, f)
SO_EW_FLOAT_MATH(double, d)

/* ---- int64 (also int32 and bool).  Arithmetic goes through uint64 so overflow wraps
 * (defined behaviour, as torch's results); division guards b == 0 (CPU loops report it)
 * and b == -1 (INT64_MIN / -1 traps on x86). ---- */
SO_HD int64_t so_ew_wrap_add(int64_t a, int64_t b) { return (int64_t)((uint64_t)a + (uint64_t)b); }
SO_HD int64_t so_ew_wrap_mul(int64_t a, int64_t b) { return (int64_t)((uint64_t)a * (uint64_t)b); }
SO_HD int64_t so_ew_wrap_neg(int64_t a) { return (int64_t)(0 - (uint64_t)a); }

SO_HD int64_t so_ew_divtrunc_i(int64_t a, int64_t b)
{
    if (b == 0) return 0;
    if (b == -1) return so_ew_wrap_neg(a);
    return a / b;
}

SO_HD int64_t so_ew_divfloor_i(int64_t a, int64_t b)
{
    if (b == 0) return 0;
    if (b == -1) return so_ew_wrap_neg(a);
    int64_t q = a / b, r = a % b;
    return (r != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

SO_HD int64_t so_ew_rem_i(int64_t a, int64_t b)
{
    if (b == 0 || b == -1) return 0;
    int64_t r = a % b;
    return (r != 0 && ((r < 0) != (b < 0))) ? r + b : r;
}

/* torch's integral pow: negative exponents give 0 except for bases 1 and -1. */
SO_HD int64_t so_ew_pow_i(int64_t base, int64_t e)
{
    if (e < 0) {
        if (base == 1) return 1;
        if (base == -1) return (e & 1) ? -1 : 1;
        return 0;
    }
    uint64_t r = 1, b = (uint64_t)base;
    while (e) {
        if (e & 1) r *= b;
        b *= b;
        e >>= 1;
    }
    return (int64_t)r;
}

SO_HD int64_t so_ew_clamp_i(int64_t x, int64_t lo, int64_t hi, int flags)
{
    if ((flags & SO_EW_HAS_LO) && x < lo) x = lo;
    if ((flags & SO_EW_HAS_HI) && x > hi) x = hi;
    return x;
}

SO_HD int64_t so_ew_unary_i(int op, int64_t x, const so_ew_params *p)
{
    switch (op) {
    case SO_EW_NEG: return so_ew_wrap_neg(x);
    case SO_EW_ABS: return x < 0 ? so_ew_wrap_neg(x) : x;
    case SO_EW_SIGN: return (x > 0) - (x < 0);
    case SO_EW_RELU: return x < 0 ? 0 : x;
    case SO_EW_CLAMP_S: return so_ew_clamp_i(x, p->i0, p->i1, p->flags);
    case SO_EW_SQUARE: return so_ew_wrap_mul(x, x);
    /* floor / ceil / round / trunc of an integer is itself (as in torch) */
    default: return x; /* float-only ops never reach integer compute (promoted first) */
    }
}

SO_HD int64_t so_ew_binary_i(int op, int64_t a, int64_t b, const so_ew_params *p)
{
    switch (op) {
    case SO_EW_ADD: return so_ew_wrap_add(a, so_ew_wrap_mul(p->i0, b));
    case SO_EW_SUB: return so_ew_wrap_add(a, so_ew_wrap_neg(so_ew_wrap_mul(p->i0, b)));
    case SO_EW_MUL: return so_ew_wrap_mul(a, b);
    case SO_EW_DIV_TRUNC: return so_ew_divtrunc_i(a, b);
    case SO_EW_DIV_FLOOR: return so_ew_divfloor_i(a, b);
    case SO_EW_REMAINDER: return so_ew_rem_i(a, b);
    case SO_EW_POW: return so_ew_pow_i(a, b);
    case SO_EW_MAXIMUM: case SO_EW_CLAMP_MIN_T: return a > b ? a : b;
    case SO_EW_MINIMUM: case SO_EW_CLAMP_MAX_T: return a < b ? a : b;
    default: return a;
    }
}

SO_HD uint8_t so_ew_compare_i(int op, int64_t a, int64_t b, const so_ew_params *p)
{
    switch (op) {
    case SO_EW_EQ: return a == b;
    case SO_EW_NE: return a != b;
    case SO_EW_LT: return a < b;
    case SO_EW_LE: return a <= b;
    case SO_EW_GT: return a > b;
    case SO_EW_GE: return a >= b;
    case SO_EW_ISCLOSE: {
        if (a == b) return 1;
        double diff = (double)a - (double)b;
        diff = diff < 0 ? -diff : diff;
        double rb = p->f0 * (double)b;
        return diff <= p->f1 + (rb < 0 ? -rb : rb);
    }
    default: return 0;
    }
}

SO_HD int64_t so_ew_ternary_i(int op, int64_t a, int64_t b, int64_t c, const so_ew_params *p)
{
    switch (op) {
    case SO_EW_ADDCMUL: return so_ew_wrap_add(a, so_ew_wrap_mul(p->i0, so_ew_wrap_mul(b, c)));
    case SO_EW_CLAMP_T: {
        int64_t r = a > b ? a : b;
        return r < c ? r : c;
    }
    default: return a; /* addcdiv / lerp are float-only (checked before dispatch) */
    }
}

/* Integer ops that divide, for the CPU's division-by-zero report. */
SO_HD int so_ew_int_divides(int op)
{
    return op == SO_EW_DIV_TRUNC || op == SO_EW_DIV_FLOOR || op == SO_EW_REMAINDER;
}

/* Op lists per compute type (X-macros shared by the CPU loops and the CUDA kernels).
 * Float-only ops (sqrt, true division, lerp...) never reach int64 compute: elementwise.c
 * promotes integer inputs to float32 first. */
#define SO_EW_UNARY_FLOAT_OPS(X)                                                              \
    X(NEG) X(ABS) X(SQRT) X(EXP) X(LOG) X(SIGN) X(GELU) X(GELU_TANH) X(RELU) X(CLAMP_S)        \
    X(SIGMOID) X(TANH) X(RSQRT) X(RECIPROCAL) X(SQUARE) X(SIN) X(COS) X(TAN) X(ASIN) X(ACOS)  \
    X(ATAN) X(SINH) X(COSH) X(ASINH) X(ACOSH) X(ATANH) X(FLOOR) X(CEIL) X(ROUND) X(TRUNC)     \
    X(LOG1P) X(EXPM1) X(ERF) X(ERFC) X(LOG2) X(LOG10) X(EXP2)
#define SO_EW_UNARY_INT_OPS(X)                                                                \
    X(NEG) X(ABS) X(SIGN) X(RELU) X(CLAMP_S) X(SQUARE) X(FLOOR) X(CEIL) X(ROUND) X(TRUNC)
#define SO_EW_BINARY_FLOAT_OPS(X)                                                             \
    X(ADD) X(SUB) X(MUL) X(DIV) X(DIV_TRUNC) X(DIV_FLOOR) X(REMAINDER) X(POW) X(MAXIMUM)      \
    X(MINIMUM) X(CLAMP_MIN_T) X(CLAMP_MAX_T) X(LERP_S) X(GELU_BACKWARD) X(GELU_TANH_BACKWARD)
#define SO_EW_BINARY_INT_OPS(X)                                                               \
    X(ADD) X(SUB) X(MUL) X(POW) X(MAXIMUM) X(MINIMUM) X(CLAMP_MIN_T) X(CLAMP_MAX_T)
#define SO_EW_BINARY_INTDIV_OPS(X) X(DIV_TRUNC) X(DIV_FLOOR) X(REMAINDER)
#define SO_EW_COMPARE_OPS(X) X(EQ) X(NE) X(LT) X(LE) X(GT) X(GE) X(ISCLOSE)
#define SO_EW_TERNARY_FLOAT_OPS(X) X(ADDCMUL) X(ADDCDIV) X(LERP_T) X(CLAMP_T)
#define SO_EW_TERNARY_INT_OPS(X) X(ADDCMUL) X(CLAMP_T)

/* ---- the device-neutral launch descriptor ---- */

#define SO_EW_MAX_IN 3

/* One elementwise launch.  out and in[] share out's shape (inputs already broadcast:
 * stride 0 on broadcast dims).  Inputs may have any dtype: kernels convert them to the
 * compute type `ct` (SO_FLOAT32, SO_FLOAT64 or SO_INT64) on the fly, and convert results
 * to out.dtype on store.  An input with is_scalar set is a host value (a Python number or a
 * 0-d CPU tensor used with CUDA tensors): CPU kernels read it through in[k] (which points
 * at scalar_bits, stride 0), CUDA kernels get it by value. */
typedef struct {
    int op;
    int ct;
    int nin;
    so_view out;
    so_view in[SO_EW_MAX_IN];
    int is_scalar[SO_EW_MAX_IN];
    double scalar_f[SO_EW_MAX_IN];
    int64_t scalar_i[SO_EW_MAX_IN];
    char scalar_bits[SO_EW_MAX_IN][8];
    so_ew_params p;
} so_ew_call;

/* Kernels (elementwise_cpu.c, elementwise.cu).  CPU: runs to completion (integer division
 * by zero sets c->p.err).  CUDA: returns 0 or a cudaError_t from the launch; asynchronous on `stream`. */
void so_ew_run_cpu(so_ew_call *c);
int so_ew_run_cuda(const so_ew_call *c, void *stream);

#ifdef __cplusplus
}
#endif

#endif /* SO_ELEMENTWISE_MATH_H */
