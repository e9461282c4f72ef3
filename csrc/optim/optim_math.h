/* optim_math.h — the per-element math of SGD, Adam/AdamW, RMSprop and Adagrad, written once
 * for C and CUDA.
 *
 * The CPU loops (fused_cpu.c) and the CUDA kernels (fused_cuda.cu) only differ in how they
 * walk the elements; both call these functions, so the CPU tests also check the math the GPU
 * runs.  Formulas follow torch.optim's single-tensor implementations (spec section 9):
 *
 *   SGD:   g = maximize ? -g : g;  g += wd*p;
 *          buf = first ? g : mu*buf + (1-dampening)*g;  g = nesterov ? g + mu*buf : buf;
 *          p -= lr*g
 *   Adam:  g = maximize ? -g : g;  decoupled ? p *= 1 - lr*wd : g += wd*p;
 *          m = lerp(m, g, 1-b1);  v = b2*v + (1-b2)*g*g;  vmax = max(vmax, v)  (raw v);
 *          denom = sqrt(amsgrad ? vmax : v) / sqrt(bc2) + eps;  p -= (lr/bc1) * m / denom
 *   RMSprop: g = maximize ? -g : g;  g += wd*p;  s = alpha*s + (1-alpha)*g*g;
 *          centered: ga = lerp(ga, g, 1-alpha), avg = sqrt(s - ga*ga) + eps; else sqrt(s) + eps;
 *          momentum: buf = mu*buf + g/avg, p += -lr*buf;  else p += (-lr*g)/avg
 *   Adagrad: g = maximize ? -g : g;  g += wd*p;  sum += g*g;
 *          p += (-clr*g) / (sqrt(sum) + eps),  clr = lr / (1 + (t-1)*lr_decay)
 *
 * Everything that is the same for all elements of a step (bias corrections, lr/bc1, 1-b1,
 * 1-lr*wd) is computed once on the host in double and handed in already rounded to the math
 * type, the way torch's Python scalars are rounded when they meet a float tensor.  The step
 * count therefore never has to be read back from a device.
 *
 * Two math types: float ("f32", used for float32, float16 and bfloat16 params — fp32 math for
 * half types like torch's fused kernels) and double ("f64", for float64 params).
 *
 * The boolean options are plain int arguments: the CPU driver calls these from loops where
 * they are compile-time constants (so each combination becomes its own branch-free,
 * vectorised loop), and on the GPU they are uniform across a launch.
 */
#ifndef SO_OPTIM_MATH_H
#define SO_OPTIM_MATH_H

#include "../core/common.h"

#ifdef __CUDACC__
#define SO_SQRTF(x) sqrtf(x)
#define SO_SQRT(x) sqrt(x)
#else
#include <math.h>
#define SO_SQRTF(x) sqrtf(x)
#define SO_SQRT(x) sqrt(x)
#endif

/* SO_HD, plus always_inline on the host: the CPU loops only vectorise once these are inlined
 * into them, and gcc's heuristics give up on that when a file has many call sites. */
#if defined(__CUDACC__) || !defined(__GNUC__)
#define SO_OPT_HD SO_HD
#else
#define SO_OPT_HD SO_HD __attribute__((always_inline))
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ---- scalars prepared on the host (one set per param group, or per tensor for Adam's
 * step-dependent ones) ---- */

typedef struct {
    float lr, weight_decay, momentum, one_minus_dampening;
} so_sgd_f32;
typedef struct {
    double lr, weight_decay, momentum, one_minus_dampening;
} so_sgd_f64;

typedef struct {
    float beta1_w;       /* lerp weight 1 - beta1 */
    float beta2, one_minus_beta2;
    float eps, weight_decay;
    float decay;         /* 1 - lr*wd (decoupled) */
} so_adam_f32;
typedef struct {
    double beta1_w;
    double beta2, one_minus_beta2;
    double eps, weight_decay;
    double decay;
} so_adam_f64;

/* Per-tensor scalars that depend on the tensor's step count. */
typedef struct {
    double step_size;    /* Adam: lr / (1 - beta1^t);  Adagrad: -clr (the signed step) */
    double bc2_sqrt;     /* Adam: sqrt(1 - beta2^t) */
} so_adam_step;

typedef struct {
    float neg_lr, alpha, one_minus_alpha, eps, weight_decay, momentum;
} so_rmsprop_f32;
typedef struct {
    double neg_lr, alpha, one_minus_alpha, eps, weight_decay, momentum;
} so_rmsprop_f64;

typedef struct {
    float eps, weight_decay;
} so_adagrad_f32;
typedef struct {
    double eps, weight_decay;
} so_adagrad_f64;

/* torch.lerp: two formulas so the result is exact at both ends of the weight range. */
SO_OPT_HD float so_lerp_f32(float a, float b, float w)
{
    return (w < 0.5f) ? a + w * (b - a) : b - (b - a) * (1.0f - w);
}
SO_OPT_HD double so_lerp_f64(double a, double b, double w)
{
    return (w < 0.5) ? a + w * (b - a) : b - (b - a) * (1.0 - w);
}

/* torch.maximum: NaN in either operand gives NaN (fmax would drop it). Written as selects so
 * it vectorises to compare + blend. */
SO_OPT_HD float so_maxnan_f32(float a, float b) { return (a != a) ? a : ((a > b) ? a : b); }
SO_OPT_HD double so_maxnan_f64(double a, double b) { return (a != a) ? a : ((a > b) ? a : b); }

/* ---- SGD ---- */

/* One element.  *p and *buf are updated; `first` selects the first-step buffer copy (torch
 * clones the gradient into a fresh buffer, so no dampening on step one). */
SO_OPT_HD void so_sgd_elem_f32(float *p, float g, float *buf, const so_sgd_f32 *c,
                           int maximize, int has_wd, int has_momentum, int first, int nesterov)
{
    float pv = *p;
    if (maximize) g = -g;
    if (has_wd) g = g + c->weight_decay * pv;
    if (has_momentum) {
        float b = first ? g : (*buf) * c->momentum + c->one_minus_dampening * g;
        *buf = b;
        g = nesterov ? g + c->momentum * b : b;
    }
    *p = pv - c->lr * g;
}

SO_OPT_HD void so_sgd_elem_f64(double *p, double g, double *buf, const so_sgd_f64 *c,
                           int maximize, int has_wd, int has_momentum, int first, int nesterov)
{
    double pv = *p;
    if (maximize) g = -g;
    if (has_wd) g = g + c->weight_decay * pv;
    if (has_momentum) {
        double b = first ? g : (*buf) * c->momentum + c->one_minus_dampening * g;
        *buf = b;
        g = nesterov ? g + c->momentum * b : b;
    }
    *p = pv - c->lr * g;
}

/* ---- Adam / AdamW ----
 * wd_mode: 0 no weight decay, 1 L2 (Adam: g += wd*p), 2 decoupled (AdamW: p *= 1 - lr*wd).
 * step_size and bc2_sqrt come from so_adam_step, rounded to the math type by the caller. */
SO_OPT_HD void so_adam_elem_f32(float *p, float g, float *m, float *v, float *vmax,
                            const so_adam_f32 *c, float step_size, float bc2_sqrt,
                            int maximize, int wd_mode, int amsgrad)
{
    float pv = *p;
    if (maximize) g = -g;
    if (wd_mode == 2) pv = pv * c->decay;
    else if (wd_mode == 1) g = g + c->weight_decay * pv;
    float mv = so_lerp_f32(*m, g, c->beta1_w);
    float vv = (*v) * c->beta2 + c->one_minus_beta2 * g * g;
    *m = mv;
    *v = vv;
    if (amsgrad) {
        vv = so_maxnan_f32(*vmax, vv);
        *vmax = vv;
    }
    float denom = SO_SQRTF(vv) / bc2_sqrt + c->eps;
    *p = pv - (step_size * mv) / denom; /* torch addcdiv_: (value * t1) / t2 */
}

SO_OPT_HD void so_adam_elem_f64(double *p, double g, double *m, double *v, double *vmax,
                            const so_adam_f64 *c, double step_size, double bc2_sqrt,
                            int maximize, int wd_mode, int amsgrad)
{
    double pv = *p;
    if (maximize) g = -g;
    if (wd_mode == 2) pv = pv * c->decay;
    else if (wd_mode == 1) g = g + c->weight_decay * pv;
    double mv = so_lerp_f64(*m, g, c->beta1_w);
    double vv = (*v) * c->beta2 + c->one_minus_beta2 * g * g;
    *m = mv;
    *v = vv;
    if (amsgrad) {
        vv = so_maxnan_f64(*vmax, vv);
        *vmax = vv;
    }
    double denom = SO_SQRT(vv) / bc2_sqrt + c->eps;
    *p = pv - (step_size * mv) / denom; /* torch addcdiv_: (value * t1) / t2 */
}

/* ---- RMSprop ----
 * Written in torch's operation order: mul_(alpha).addcmul_(g, g, value=1-alpha) is
 * s*alpha + ((1-alpha)*g)*g; addcdiv_(t1, t2, value=v) is self + (v*t1)/t2. */
#define SO_RMSPROP_ELEM(T, SQRT, LERP)                                                        \
    T pv = *p;                                                                              \
    if (maximize) g = -g;                                                                   \
    if (has_wd) g = g + c->weight_decay * pv;                                               \
    T s = (*sq) * c->alpha + c->one_minus_alpha * g * g;                                    \
    *sq = s;                                                                                \
    T avg;                                                                                  \
    if (centered) {                                                                         \
        T ga = LERP(*gavg, g, c->one_minus_alpha);                                          \
        *gavg = ga;                                                                         \
        avg = SQRT(s - ga * ga);                                                            \
    } else {                                                                                \
        avg = SQRT(s);                                                                      \
    }                                                                                       \
    avg = avg + c->eps;                                                                     \
    if (has_momentum) {                                                                     \
        T b = (*buf) * c->momentum + g / avg;                                               \
        *buf = b;                                                                           \
        *p = pv + c->neg_lr * b;                                                            \
    } else {                                                                                \
        *p = pv + (c->neg_lr * g) / avg;                                                    \
    }

SO_OPT_HD void so_rmsprop_elem_f32(float *p, float g, float *sq, float *buf, float *gavg,
                                   const so_rmsprop_f32 *c, int maximize, int has_wd,
                                   int centered, int has_momentum)
{
    SO_RMSPROP_ELEM(float, SO_SQRTF, so_lerp_f32)
}

SO_OPT_HD void so_rmsprop_elem_f64(double *p, double g, double *sq, double *buf, double *gavg,
                                   const so_rmsprop_f64 *c, int maximize, int has_wd,
                                   int centered, int has_momentum)
{
    SO_RMSPROP_ELEM(double, SO_SQRT, so_lerp_f64)
}
#undef SO_RMSPROP_ELEM

/* ---- Adagrad ----  neg_clr = -lr / (1 + (t-1)*lr_decay), per tensor (its own step). */
SO_OPT_HD void so_adagrad_elem_f32(float *p, float g, float *sum, const so_adagrad_f32 *c,
                                   float neg_clr, int maximize, int has_wd)
{
    float pv = *p;
    if (maximize) g = -g;
    if (has_wd) g = g + c->weight_decay * pv;
    float s = *sum + g * g; /* addcmul_(g, g, value=1): (1*g)*g is exactly g*g */
    *sum = s;
    *p = pv + (neg_clr * g) / (SO_SQRTF(s) + c->eps);
}

SO_OPT_HD void so_adagrad_elem_f64(double *p, double g, double *sum, const so_adagrad_f64 *c,
                                   double neg_clr, int maximize, int has_wd)
{
    double pv = *p;
    if (maximize) g = -g;
    if (has_wd) g = g + c->weight_decay * pv;
    double s = *sum + g * g;
    *sum = s;
    *p = pv + (neg_clr * g) / (SO_SQRT(s) + c->eps);
}

/* ---- host-side preparation (plain C, double precision) ---- */

static inline void so_sgd_prepare(double lr, double weight_decay, double momentum,
                                  double dampening, so_sgd_f32 *c32, so_sgd_f64 *c64)
{
    c64->lr = lr;
    c64->weight_decay = weight_decay;
    c64->momentum = momentum;
    c64->one_minus_dampening = 1.0 - dampening;
    c32->lr = (float)lr;
    c32->weight_decay = (float)weight_decay;
    c32->momentum = (float)momentum;
    c32->one_minus_dampening = (float)(1.0 - dampening);
}

static inline void so_adam_prepare(double lr, double beta1, double beta2, double eps,
                                   double weight_decay, so_adam_f32 *c32, so_adam_f64 *c64)
{
    c64->beta1_w = 1.0 - beta1;
    c64->beta2 = beta2;
    c64->one_minus_beta2 = 1.0 - beta2;
    c64->eps = eps;
    c64->weight_decay = weight_decay;
    c64->decay = 1.0 - lr * weight_decay;
    c32->beta1_w = (float)c64->beta1_w;
    c32->beta2 = (float)beta2;
    c32->one_minus_beta2 = (float)c64->one_minus_beta2;
    c32->eps = (float)eps;
    c32->weight_decay = (float)weight_decay;
    c32->decay = (float)c64->decay;
}

static inline void so_rmsprop_prepare(double lr, double alpha, double eps, double weight_decay,
                                      double momentum, so_rmsprop_f32 *c32, so_rmsprop_f64 *c64)
{
    c64->neg_lr = -lr;
    c64->alpha = alpha;
    c64->one_minus_alpha = 1.0 - alpha;
    c64->eps = eps;
    c64->weight_decay = weight_decay;
    c64->momentum = momentum;
    c32->neg_lr = (float)c64->neg_lr;
    c32->alpha = (float)alpha;
    c32->one_minus_alpha = (float)c64->one_minus_alpha;
    c32->eps = (float)eps;
    c32->weight_decay = (float)weight_decay;
    c32->momentum = (float)momentum;
}

static inline void so_adagrad_prepare(double eps, double weight_decay, so_adagrad_f32 *c32,
                                      so_adagrad_f64 *c64)
{
    c64->eps = eps;
    c64->weight_decay = weight_decay;
    c32->eps = (float)eps;
    c32->weight_decay = (float)weight_decay;
}

#ifdef __cplusplus
}
#endif

#endif /* SO_OPTIM_MATH_H */
