/* fused_cpu.c — fused multi-tensor SGD / Adam / AdamW / RMSprop / Adagrad on the CPU.
 *
 * One call per param group; for each param one pass over param, grad and state, with the
 * per-element math from optim_math.h.  Two paths:
 *
 *  - fast path (float32 / float64, every operand contiguous): a plain loop over restrict
 *    pointers with 64-bit indices.  The boolean options are turned into compile-time
 *    constants by a switch over all their combinations (OPT_CASES32 below), so every
 *    combination is its own branch-free loop that gcc -O3 vectorises (check with
 *    -fopt-info-vec-optimized: one "loop vectorized" per instantiation).  No temporaries:
 *    each byte of param/grad/state is read once and written once, which is the minimum
 *    traffic, so the loop runs at memory bandwidth.
 *  - general path (float16 / bfloat16 params, or any non-contiguous operand): elements are
 *    gathered through their strides into small stack chunks of the math type (float for
 *    fp32/fp16/bf16, double for fp64), updated with the same math, and written back.  Half
 *    params thus get fp32 math with one rounding per stored value, like torch's fused kernels;
 *    their state stays in the param dtype (torch's zeros_like).
 */

/* The Adam loops vectorise only when sqrt is a plain instruction: with errno semantics gcc
 * keeps a scalar libm call for negative inputs.  The build passes -fno-math-errno (nothing
 * in shardopt reads errno after libm calls); a pragma cannot do it, since libm builtins get
 * their errno attribute from the command line. */

/* No a*b+c -> fma contraction: every ISA level (and the scalar general path) must round the
 * same way, so results do not depend on the machine. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=off")
#endif

#include "fused.h"

#define SO_ALWAYS_INLINE static inline __attribute__((always_inline))

/* Adam's loop is compute-bound with 128-bit vectors (a sqrt and two divisions per element);
 * 256/512-bit ones bring it to memory speed.  The fast-path dispatchers are compiled for
 * three ISA levels and picked at load time (ifunc), so one wheel runs everywhere. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define SO_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define SO_CLONES
#endif

/* ================================ fast path loops ================================ */

SO_ALWAYS_INLINE void sgd_loop_f32(float *restrict p, const float *restrict g, float *restrict b,
                                   int64_t n, const so_sgd_f32 *cp, int maximize, int has_wd,
                                   int has_mom, int first, int nesterov)
{
    const so_sgd_f32 c = *cp; /* local copy: the compiler then knows no store changes it */
    for (int64_t i = 0; i < n; i++)
        so_sgd_elem_f32(p + i, g[i], b + i, &c, maximize, has_wd, has_mom, first, nesterov);
}

SO_ALWAYS_INLINE void sgd_loop_f64(double *restrict p, const double *restrict g,
                                   double *restrict b, int64_t n, const so_sgd_f64 *cp,
                                   int maximize, int has_wd, int has_mom, int first, int nesterov)
{
    const so_sgd_f64 c = *cp;
    for (int64_t i = 0; i < n; i++)
        so_sgd_elem_f64(p + i, g[i], b + i, &c, maximize, has_wd, has_mom, first, nesterov);
}

SO_ALWAYS_INLINE void adam_loop_f32(float *restrict p, const float *restrict g,
                                    float *restrict m, float *restrict v, float *restrict vmax,
                                    int64_t n, const so_adam_f32 *cp, float step_size,
                                    float bc2_sqrt, int maximize, int wd_mode, int amsgrad)
{
    const so_adam_f32 c = *cp;
    for (int64_t i = 0; i < n; i++)
        so_adam_elem_f32(p + i, g[i], m + i, v + i, vmax + i, &c, step_size, bc2_sqrt, maximize,
                         wd_mode, amsgrad);
}

SO_ALWAYS_INLINE void adam_loop_f64(double *restrict p, const double *restrict g,
                                    double *restrict m, double *restrict v,
                                    double *restrict vmax, int64_t n, const so_adam_f64 *cp,
                                    double step_size, double bc2_sqrt, int maximize, int wd_mode,
                                    int amsgrad)
{
    const so_adam_f64 c = *cp;
    for (int64_t i = 0; i < n; i++)
        so_adam_elem_f64(p + i, g[i], m + i, v + i, vmax + i, &c, step_size, bc2_sqrt, maximize,
                         wd_mode, amsgrad);
}

SO_ALWAYS_INLINE void rmsprop_loop_f32(float *restrict p, const float *restrict g,
                                       float *restrict sq, float *restrict b,
                                       float *restrict ga, int64_t n, const so_rmsprop_f32 *cp,
                                       int maximize, int has_wd, int centered, int has_mom)
{
    const so_rmsprop_f32 c = *cp;
    for (int64_t i = 0; i < n; i++)
        so_rmsprop_elem_f32(p + i, g[i], sq + i, b + i, ga + i, &c, maximize, has_wd, centered,
                            has_mom);
}

SO_ALWAYS_INLINE void rmsprop_loop_f64(double *restrict p, const double *restrict g,
                                       double *restrict sq, double *restrict b,
                                       double *restrict ga, int64_t n, const so_rmsprop_f64 *cp,
                                       int maximize, int has_wd, int centered, int has_mom)
{
    const so_rmsprop_f64 c = *cp;
    for (int64_t i = 0; i < n; i++)
        so_rmsprop_elem_f64(p + i, g[i], sq + i, b + i, ga + i, &c, maximize, has_wd, centered,
                            has_mom);
}

SO_ALWAYS_INLINE void adagrad_loop_f32(float *restrict p, const float *restrict g,
                                       float *restrict sum, int64_t n, const so_adagrad_f32 *cp,
                                       float neg_clr, int maximize, int has_wd)
{
    const so_adagrad_f32 c = *cp;
    for (int64_t i = 0; i < n; i++)
        so_adagrad_elem_f32(p + i, g[i], sum + i, &c, neg_clr, maximize, has_wd);
}

SO_ALWAYS_INLINE void adagrad_loop_f64(double *restrict p, const double *restrict g,
                                       double *restrict sum, int64_t n,
                                       const so_adagrad_f64 *cp, double neg_clr, int maximize,
                                       int has_wd)
{
    const so_adagrad_f64 c = *cp;
    for (int64_t i = 0; i < n; i++)
        so_adagrad_elem_f64(p + i, g[i], sum + i, &c, neg_clr, maximize, has_wd);
}

/* Expand F(k) for every k in [0, 32): the case labels of a switch over packed option bits.
 * Inside F the bits of the literal k are constant expressions, so each case inlines a loop
 * specialised for that combination. */
#define OPT_CASES4(F, base) F(base + 0) F(base + 1) F(base + 2) F(base + 3)
#define OPT_CASES16(F, base) OPT_CASES4(F, base) OPT_CASES4(F, base + 4) \
    OPT_CASES4(F, base + 8) OPT_CASES4(F, base + 12)
#define OPT_CASES32(F) OPT_CASES16(F, 0) OPT_CASES16(F, 16)
#define BIT(k, i) (((k) >> (i)) & 1)

/* SGD key: bit0 maximize, bit1 weight decay, bit2 momentum, bit3 first step, bit4 nesterov. */
SO_CLONES static void sgd_fast_f32(float *p, const float *g, float *b, int64_t n, const so_sgd_f32 *c,
                         int key)
{
    switch (key) {
#define F(k) case (k): sgd_loop_f32(p, g, b, n, c, BIT(k, 0), BIT(k, 1), BIT(k, 2), BIT(k, 3), \
                                    BIT(k, 4)); break;
        OPT_CASES32(F)
#undef F
    }
}

SO_CLONES static void sgd_fast_f64(double *p, const double *g, double *b, int64_t n, const so_sgd_f64 *c,
                         int key)
{
    switch (key) {
#define F(k) case (k): sgd_loop_f64(p, g, b, n, c, BIT(k, 0), BIT(k, 1), BIT(k, 2), BIT(k, 3), \
                                    BIT(k, 4)); break;
        OPT_CASES32(F)
#undef F
    }
}

/* Adam key: bit0 maximize, bit1 amsgrad, bits 2-3 wd_mode (0, 1, 2; 3 unused). */
SO_CLONES static void adam_fast_f32(float *p, const float *g, float *m, float *v, float *vmax, int64_t n,
                          const so_adam_f32 *c, float ss, float bc2s, int key)
{
    switch (key) {
#define F(k) case (k): adam_loop_f32(p, g, m, v, vmax, n, c, ss, bc2s, BIT(k, 0), ((k) >> 2), \
                                     BIT(k, 1)); break;
        OPT_CASES4(F, 0) OPT_CASES4(F, 4) OPT_CASES4(F, 8)
#undef F
    }
}

SO_CLONES static void adam_fast_f64(double *p, const double *g, double *m, double *v, double *vmax,
                          int64_t n, const so_adam_f64 *c, double ss, double bc2s, int key)
{
    switch (key) {
#define F(k) case (k): adam_loop_f64(p, g, m, v, vmax, n, c, ss, bc2s, BIT(k, 0), ((k) >> 2), \
                                     BIT(k, 1)); break;
        OPT_CASES4(F, 0) OPT_CASES4(F, 4) OPT_CASES4(F, 8)
#undef F
    }
}

/* RMSprop key: bit0 maximize, bit1 weight decay, bit2 centered, bit3 momentum. */
SO_CLONES static void rmsprop_fast_f32(float *p, const float *g, float *sq, float *b, float *ga,
                                       int64_t n, const so_rmsprop_f32 *c, int key)
{
    switch (key) {
#define F(k) case (k): rmsprop_loop_f32(p, g, sq, b, ga, n, c, BIT(k, 0), BIT(k, 1), BIT(k, 2), \
                                        BIT(k, 3)); break;
        OPT_CASES16(F, 0)
#undef F
    }
}

SO_CLONES static void rmsprop_fast_f64(double *p, const double *g, double *sq, double *b,
                                       double *ga, int64_t n, const so_rmsprop_f64 *c, int key)
{
    switch (key) {
#define F(k) case (k): rmsprop_loop_f64(p, g, sq, b, ga, n, c, BIT(k, 0), BIT(k, 1), BIT(k, 2), \
                                        BIT(k, 3)); break;
        OPT_CASES16(F, 0)
#undef F
    }
}

/* Adagrad key: bit0 maximize, bit1 weight decay. */
SO_CLONES static void adagrad_fast_f32(float *p, const float *g, float *sum, int64_t n,
                                       const so_adagrad_f32 *c, float neg_clr, int key)
{
    switch (key) {
#define F(k) case (k): adagrad_loop_f32(p, g, sum, n, c, neg_clr, BIT(k, 0), BIT(k, 1)); break;
        OPT_CASES4(F, 0)
#undef F
    }
}

SO_CLONES static void adagrad_fast_f64(double *p, const double *g, double *sum, int64_t n,
                                       const so_adagrad_f64 *c, double neg_clr, int key)
{
    switch (key) {
#define F(k) case (k): adagrad_loop_f64(p, g, sum, n, c, neg_clr, BIT(k, 0), BIT(k, 1)); break;
        OPT_CASES4(F, 0)
#undef F
    }
}

/* ================================ general path ================================ */

#define CHUNK 512

SO_ALWAYS_INLINE float load_as_f32(const char *p, int dt)
{
    uint16_t h;
    switch (dt) {
    case SO_FLOAT32: { float f; memcpy(&f, p, 4); return f; }
    case SO_FLOAT16: memcpy(&h, p, 2); return so_fp16_to_float(h);
    default: memcpy(&h, p, 2); return so_bf16_to_float(h); /* SO_BFLOAT16 */
    }
}

SO_ALWAYS_INLINE void store_from_f32(char *p, int dt, float f)
{
    uint16_t h;
    switch (dt) {
    case SO_FLOAT32: memcpy(p, &f, 4); return;
    case SO_FLOAT16: h = so_float_to_fp16(f); memcpy(p, &h, 2); return;
    default: h = so_float_to_bf16(f); memcpy(p, &h, 2); return;
    }
}

/* Walks the common shape of up to SO_OPT_MAX_OPS operands in row-major order, keeping one
 * byte pointer per operand (each with its own strides). */
typedef struct {
    int ndim, nops;
    int64_t shape[SO_MAX_DIMS];
    int64_t idx[SO_MAX_DIMS];
    int64_t step[SO_OPT_MAX_OPS][SO_MAX_DIMS]; /* strides in bytes */
    char *ptr[SO_OPT_MAX_OPS];
} strided_iter;

static void iter_init(strided_iter *it, const so_optim_tensor *t, const int *ops, int nops)
{
    int isz = so_dtype_itemsize(t->dtype);
    it->nops = nops;
    if (t->views == NULL) { /* contiguous (a half-precision param): one flat dimension */
        it->ndim = 1;
        it->shape[0] = t->numel;
        it->idx[0] = 0;
        for (int k = 0; k < nops; k++) {
            it->ptr[k] = t->data[ops[k]];
            it->step[k][0] = isz;
        }
        return;
    }
    const so_view *v0 = &t->views[SO_OPT_PARAM];
    it->ndim = v0->ndim;
    for (int d = 0; d < v0->ndim; d++) {
        it->shape[d] = v0->shape[d];
        it->idx[d] = 0;
    }
    for (int k = 0; k < nops; k++) {
        const so_view *v = &t->views[ops[k]];
        it->ptr[k] = v->data;
        for (int d = 0; d < v->ndim; d++) it->step[k][d] = v->strides[d] * isz;
    }
}

/* Record the current element's pointers into out[k][j], then move to the next element. */
static inline void iter_take(strided_iter *it, char *out[][CHUNK], int j)
{
    for (int k = 0; k < it->nops; k++) out[k][j] = it->ptr[k];
    for (int d = it->ndim - 1; d >= 0; d--) {
        for (int k = 0; k < it->nops; k++) it->ptr[k] += it->step[k][d];
        if (++it->idx[d] < it->shape[d]) return;
        for (int k = 0; k < it->nops; k++) it->ptr[k] -= it->step[k][d] * it->shape[d];
        it->idx[d] = 0;
    }
}

/* The general path for one tensor.  ops lists the operand slots in use; slot order in the
 * chunk arrays is the same.  Values are loaded into chunk buffers, updated by the same loops
 * the fast path uses (with runtime option values), and stored back through the recorded
 * pointers (the grad, ops[1], is only read). */
static void sgd_general(const so_optim_tensor *t, const so_sgd_f32 *c32, const so_sgd_f64 *c64,
                        so_sgd_flags f)
{
    static const int ops[3] = {SO_OPT_PARAM, SO_OPT_GRAD, 2};
    int nops = f.has_momentum ? 3 : 2;
    int first = f.has_momentum && t->first;
    int dt = t->dtype;
    strided_iter it;
    char *ptrs[3][CHUNK];
    iter_init(&it, t, ops, nops);
    for (int64_t done = 0; done < t->numel; done += CHUNK) {
        int len = (int)((t->numel - done) < CHUNK ? (t->numel - done) : CHUNK);
        for (int j = 0; j < len; j++) iter_take(&it, ptrs, j);
        if (dt == SO_FLOAT64) {
            double val[3][CHUNK];
            for (int k = 0; k < nops; k++)
                for (int j = 0; j < len; j++) memcpy(&val[k][j], ptrs[k][j], 8);
            sgd_loop_f64(val[0], val[1], nops > 2 ? val[2] : val[0], len, c64, f.maximize,
                         f.has_wd, f.has_momentum, first, f.nesterov);
            for (int k = 0; k < nops; k++) {
                if (k == 1) continue;
                for (int j = 0; j < len; j++) memcpy(ptrs[k][j], &val[k][j], 8);
            }
        } else {
            float val[3][CHUNK];
            for (int k = 0; k < nops; k++)
                for (int j = 0; j < len; j++) val[k][j] = load_as_f32(ptrs[k][j], dt);
            sgd_loop_f32(val[0], val[1], nops > 2 ? val[2] : val[0], len, c32, f.maximize,
                         f.has_wd, f.has_momentum, first, f.nesterov);
            for (int k = 0; k < nops; k++) {
                if (k == 1) continue;
                for (int j = 0; j < len; j++) store_from_f32(ptrs[k][j], dt, val[k][j]);
            }
        }
    }
}

static void adam_general(const so_optim_tensor *t, const so_adam_f32 *c32,
                         const so_adam_f64 *c64, so_adam_flags f)
{
    static const int ops[5] = {SO_OPT_PARAM, SO_OPT_GRAD, 2, 3, 4};
    int nops = f.amsgrad ? 5 : 4;
    int dt = t->dtype;
    strided_iter it;
    char *ptrs[5][CHUNK];
    iter_init(&it, t, ops, nops);
    for (int64_t done = 0; done < t->numel; done += CHUNK) {
        int len = (int)((t->numel - done) < CHUNK ? (t->numel - done) : CHUNK);
        for (int j = 0; j < len; j++) iter_take(&it, ptrs, j);
        if (dt == SO_FLOAT64) {
            double val[5][CHUNK];
            for (int k = 0; k < nops; k++)
                for (int j = 0; j < len; j++) memcpy(&val[k][j], ptrs[k][j], 8);
            adam_loop_f64(val[0], val[1], val[2], val[3], nops > 4 ? val[4] : val[3], len, c64,
                          t->step.step_size, t->step.bc2_sqrt, f.maximize, f.wd_mode, f.amsgrad);
            for (int k = 0; k < nops; k++) {
                if (k == 1) continue;
                for (int j = 0; j < len; j++) memcpy(ptrs[k][j], &val[k][j], 8);
            }
        } else {
            float val[5][CHUNK];
            for (int k = 0; k < nops; k++)
                for (int j = 0; j < len; j++) val[k][j] = load_as_f32(ptrs[k][j], dt);
            adam_loop_f32(val[0], val[1], val[2], val[3], nops > 4 ? val[4] : val[3], len, c32,
                          (float)t->step.step_size, (float)t->step.bc2_sqrt, f.maximize,
                          f.wd_mode, f.amsgrad);
            for (int k = 0; k < nops; k++) {
                if (k == 1) continue;
                for (int j = 0; j < len; j++) store_from_f32(ptrs[k][j], dt, val[k][j]);
            }
        }
    }
}

/* RMSprop's general path.  The operand slots in use are param, grad, square_avg and, when
 * enabled, momentum_buffer (3) and grad_avg (4); unused ones alias square_avg's chunk and are
 * never touched by the math (their flags are off). */
static void rmsprop_general(const so_optim_tensor *t, const so_rmsprop_f32 *c32,
                            const so_rmsprop_f64 *c64, so_rmsprop_flags f)
{
    int ops[5] = {SO_OPT_PARAM, SO_OPT_GRAD, 2, 0, 0};
    int nops = 3, kb = 2, kg = 2;
    if (f.has_momentum) { kb = nops; ops[nops++] = 3; }
    if (f.centered) { kg = nops; ops[nops++] = 4; }
    int dt = t->dtype;
    strided_iter it;
    char *ptrs[5][CHUNK];
    iter_init(&it, t, ops, nops);
    for (int64_t done = 0; done < t->numel; done += CHUNK) {
        int len = (int)((t->numel - done) < CHUNK ? (t->numel - done) : CHUNK);
        for (int j = 0; j < len; j++) iter_take(&it, ptrs, j);
        if (dt == SO_FLOAT64) {
            double val[5][CHUNK];
            for (int k = 0; k < nops; k++)
                for (int j = 0; j < len; j++) memcpy(&val[k][j], ptrs[k][j], 8);
            rmsprop_loop_f64(val[0], val[1], val[2], val[kb], val[kg], len, c64, f.maximize,
                             f.has_wd, f.centered, f.has_momentum);
            for (int k = 0; k < nops; k++) {
                if (k == 1) continue;
                for (int j = 0; j < len; j++) memcpy(ptrs[k][j], &val[k][j], 8);
            }
        } else {
            float val[5][CHUNK];
            for (int k = 0; k < nops; k++)
                for (int j = 0; j < len; j++) val[k][j] = load_as_f32(ptrs[k][j], dt);
            rmsprop_loop_f32(val[0], val[1], val[2], val[kb], val[kg], len, c32, f.maximize,
                             f.has_wd, f.centered, f.has_momentum);
            for (int k = 0; k < nops; k++) {
                if (k == 1) continue;
                for (int j = 0; j < len; j++) store_from_f32(ptrs[k][j], dt, val[k][j]);
            }
        }
    }
}

static void adagrad_general(const so_optim_tensor *t, const so_adagrad_f32 *c32,
                            const so_adagrad_f64 *c64, so_adagrad_flags f)
{
    static const int ops[3] = {SO_OPT_PARAM, SO_OPT_GRAD, 2};
    int dt = t->dtype;
    strided_iter it;
    char *ptrs[3][CHUNK];
    iter_init(&it, t, ops, 3);
    for (int64_t done = 0; done < t->numel; done += CHUNK) {
        int len = (int)((t->numel - done) < CHUNK ? (t->numel - done) : CHUNK);
        for (int j = 0; j < len; j++) iter_take(&it, ptrs, j);
        if (dt == SO_FLOAT64) {
            double val[3][CHUNK];
            for (int k = 0; k < 3; k++)
                for (int j = 0; j < len; j++) memcpy(&val[k][j], ptrs[k][j], 8);
            adagrad_loop_f64(val[0], val[1], val[2], len, c64, t->step.step_size, f.maximize,
                             f.has_wd);
            for (int k = 0; k < 3; k += 2)
                for (int j = 0; j < len; j++) memcpy(ptrs[k][j], &val[k][j], 8);
        } else {
            float val[3][CHUNK];
            for (int k = 0; k < 3; k++)
                for (int j = 0; j < len; j++) val[k][j] = load_as_f32(ptrs[k][j], dt);
            adagrad_loop_f32(val[0], val[1], val[2], len, c32, (float)t->step.step_size,
                             f.maximize, f.has_wd);
            for (int k = 0; k < 3; k += 2)
                for (int j = 0; j < len; j++) store_from_f32(ptrs[k][j], dt, val[k][j]);
        }
    }
}

/* ================================ entry points ================================ */

void so_fused_sgd_cpu(const so_optim_tensor *ts, int64_t n, const so_sgd_f32 *c32,
                      const so_sgd_f64 *c64, so_sgd_flags f)
{
    int base = (f.maximize ? 1 : 0) | (f.has_wd ? 2 : 0) | (f.has_momentum ? 4 : 0) |
               (f.has_momentum && f.nesterov ? 16 : 0);
    for (int64_t i = 0; i < n; i++) {
        const so_optim_tensor *t = &ts[i];
        if (t->numel == 0) continue;
        int key = base | (f.has_momentum && t->first ? 8 : 0);
        /* without momentum the buffer slot is unused; alias it to the param (never read) */
        char *b = f.has_momentum ? t->data[2] : t->data[0];
        if (t->views == NULL && t->dtype == SO_FLOAT32)
            sgd_fast_f32((float *)t->data[0], (const float *)t->data[1], (float *)b, t->numel,
                         c32, key);
        else if (t->views == NULL && t->dtype == SO_FLOAT64)
            sgd_fast_f64((double *)t->data[0], (const double *)t->data[1], (double *)b,
                         t->numel, c64, key);
        else
            sgd_general(t, c32, c64, f);
    }
}

void so_fused_adam_cpu(const so_optim_tensor *ts, int64_t n, const so_adam_f32 *c32,
                       const so_adam_f64 *c64, so_adam_flags f)
{
    int key = (f.maximize ? 1 : 0) | (f.amsgrad ? 2 : 0) | (f.wd_mode << 2);
    for (int64_t i = 0; i < n; i++) {
        const so_optim_tensor *t = &ts[i];
        if (t->numel == 0) continue;
        /* without amsgrad the max slot is unused; alias it to exp_avg_sq (never touched) */
        char *vmax = f.amsgrad ? t->data[4] : t->data[3];
        if (t->views == NULL && t->dtype == SO_FLOAT32)
            adam_fast_f32((float *)t->data[0], (const float *)t->data[1], (float *)t->data[2],
                          (float *)t->data[3], (float *)vmax, t->numel, c32,
                          (float)t->step.step_size, (float)t->step.bc2_sqrt, key);
        else if (t->views == NULL && t->dtype == SO_FLOAT64)
            adam_fast_f64((double *)t->data[0], (const double *)t->data[1],
                          (double *)t->data[2], (double *)t->data[3], (double *)vmax, t->numel,
                          c64, t->step.step_size, t->step.bc2_sqrt, key);
        else
            adam_general(t, c32, c64, f);
    }
}

void so_fused_rmsprop_cpu(const so_optim_tensor *ts, int64_t n, const so_rmsprop_f32 *c32,
                          const so_rmsprop_f64 *c64, so_rmsprop_flags f)
{
    int key = (f.maximize ? 1 : 0) | (f.has_wd ? 2 : 0) | (f.centered ? 4 : 0) |
              (f.has_momentum ? 8 : 0);
    for (int64_t i = 0; i < n; i++) {
        const so_optim_tensor *t = &ts[i];
        if (t->numel == 0) continue;
        /* unused slots alias square_avg (never touched without their flag) */
        char *b = f.has_momentum ? t->data[3] : t->data[2];
        char *ga = f.centered ? t->data[4] : t->data[2];
        if (t->views == NULL && t->dtype == SO_FLOAT32)
            rmsprop_fast_f32((float *)t->data[0], (const float *)t->data[1], (float *)t->data[2],
                             (float *)b, (float *)ga, t->numel, c32, key);
        else if (t->views == NULL && t->dtype == SO_FLOAT64)
            rmsprop_fast_f64((double *)t->data[0], (const double *)t->data[1],
                             (double *)t->data[2], (double *)b, (double *)ga, t->numel, c64,
                             key);
        else
            rmsprop_general(t, c32, c64, f);
    }
}

void so_fused_adagrad_cpu(const so_optim_tensor *ts, int64_t n, const so_adagrad_f32 *c32,
                          const so_adagrad_f64 *c64, so_adagrad_flags f)
{
    int key = (f.maximize ? 1 : 0) | (f.has_wd ? 2 : 0);
    for (int64_t i = 0; i < n; i++) {
        const so_optim_tensor *t = &ts[i];
        if (t->numel == 0) continue;
        if (t->views == NULL && t->dtype == SO_FLOAT32)
            adagrad_fast_f32((float *)t->data[0], (const float *)t->data[1],
                             (float *)t->data[2], t->numel, c32, (float)t->step.step_size, key);
        else if (t->views == NULL && t->dtype == SO_FLOAT64)
            adagrad_fast_f64((double *)t->data[0], (const double *)t->data[1],
                             (double *)t->data[2], t->numel, c64, t->step.step_size, key);
        else
            adagrad_general(t, c32, c64, f);
    }
}
