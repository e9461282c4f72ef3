/* elementwise_cpu.c — CPU kernels of the elementwise ops.
 *
 * so_nditer (nditer.h) walks the broadcast operands and hands us 1-D strided rows.  Each
 * (op, compute type) has a typed row loop, generated below from the SO_HD math in
 * elementwise_math.h, with a unit-stride path (blocks of EW_B elements loaded into locals,
 * computed, then stored: gcc turns that into SIMD whatever the alias situation, and it stays
 * correct when the output is the very same memory as an input, as in a.add_(a)), a
 * broadcast-scalar path for binary ops, and a generic strided path.
 * Operands whose dtype differs from the compute type are converted on the fly, NumPy-style:
 * a row is processed in chunks of EW_CHUNK elements cast into small stack buffers, so the
 * typed loop stays fast and no full-size temporary is ever made.  Broadcast (stride 0) and
 * strided inputs are read in place.
 */
#include "elementwise.h"
#include "../core/nditer.h"

#define EW_B 16        /* elements per SIMD-friendly block */
#define EW_CHUNK 1024  /* elements per conversion chunk (4 buffers x 8 KiB on the stack) */

typedef void (*ew_loop_fn)(char **p, const int64_t *s, int64_t n, so_ew_params *prm);

/* ------------------------------------------------------------------ typed row loops */

/* out[i] = FN(OP, x[i]) */
#define DEF_UNARY(NAME, T, FN, OP, ATTR)                                                      \
    ATTR static void NAME(char **p, const int64_t *s, int64_t n, so_ew_params *prm)           \
    {                                                                                         \
        const so_ew_params lp = *prm; /* a local copy: stores cannot alias it */              \
        char *o = p[0];                                                                       \
        const char *x = p[1];                                                                 \
        if (s[0] == (int64_t)sizeof(T) && s[1] == (int64_t)sizeof(T)) {                      \
            T *po = (T *)(void *)o;                                                           \
            const T *px = (const T *)(const void *)x;                                         \
            int64_t i = 0;                                                                    \
            for (; i + EW_B <= n; i += EW_B) {                                                \
                T vx[EW_B], vo[EW_B];                                                         \
                for (int j = 0; j < EW_B; j++) vx[j] = px[i + j];                             \
                for (int j = 0; j < EW_B; j++) vo[j] = FN(OP, vx[j], &lp);                    \
                for (int j = 0; j < EW_B; j++) po[i + j] = vo[j];                             \
            }                                                                                 \
            for (; i < n; i++) po[i] = FN(OP, px[i], &lp);                                    \
            return;                                                                           \
        }                                                                                     \
        for (int64_t i = 0; i < n; i++) {                                                     \
            T v, r;                                                                           \
            memcpy(&v, x + i * s[1], sizeof v);                                               \
            r = FN(OP, v, &lp);                                                               \
            memcpy(o + i * s[0], &r, sizeof r);                                               \
        }                                                                                     \
    }

/* out[i] = FN(OP, a[i], b[i]); OT is T, or uint8_t (bool) for comparisons.  INTDIV: the op
 * divides integers, so zero divisors are reported through prm->err after the row. */
#define DEF_BINARY(NAME, T, OT, FN, OP, INTDIV, ATTR)                                        \
    ATTR static void NAME(char **p, const int64_t *s, int64_t n, so_ew_params *prm)           \
    {                                                                                         \
        const so_ew_params lp = *prm;                                                         \
        char *o = p[0];                                                                       \
        const char *a = p[1], *b = p[2];                                                      \
        const int64_t ot = (int64_t)sizeof(OT), it = (int64_t)sizeof(T);                      \
        if (INTDIV) {                                                                         \
            for (int64_t i = 0; i < n; i++) {                                                 \
                T v;                                                                          \
                memcpy(&v, b + i * s[2], sizeof v);                                           \
                if (v == 0) { prm->err = 1; break; }                                          \
            }                                                                                 \
        }                                                                                     \
        if (s[0] == ot && (s[1] == it || s[1] == 0) && (s[2] == it || s[2] == 0)) {           \
            OT *po = (OT *)(void *)o;                                                         \
            int64_t i = 0;                                                                    \
            if (s[1] == it && s[2] == it) {                                                   \
                const T *pa = (const T *)(const void *)a, *pb = (const T *)(const void *)b;   \
                for (; i + EW_B <= n; i += EW_B) {                                            \
                    T va[EW_B], vb[EW_B];                                                     \
                    OT vo[EW_B];                                                              \
                    for (int j = 0; j < EW_B; j++) va[j] = pa[i + j];                         \
                    for (int j = 0; j < EW_B; j++) vb[j] = pb[i + j];                         \
                    for (int j = 0; j < EW_B; j++) vo[j] = FN(OP, va[j], vb[j], &lp);         \
                    for (int j = 0; j < EW_B; j++) po[i + j] = vo[j];                         \
                }                                                                             \
                for (; i < n; i++) po[i] = FN(OP, pa[i], pb[i], &lp);                         \
                return;                                                                       \
            }                                                                                 \
            if (s[1] == it) { /* b broadcast: one value for the whole row */                  \
                const T *pa = (const T *)(const void *)a;                                     \
                T vb;                                                                         \
                memcpy(&vb, b, sizeof vb);                                                    \
                for (; i + EW_B <= n; i += EW_B) {                                            \
                    T va[EW_B];                                                               \
                    OT vo[EW_B];                                                              \
                    for (int j = 0; j < EW_B; j++) va[j] = pa[i + j];                         \
                    for (int j = 0; j < EW_B; j++) vo[j] = FN(OP, va[j], vb, &lp);            \
                    for (int j = 0; j < EW_B; j++) po[i + j] = vo[j];                         \
                }                                                                             \
                for (; i < n; i++) po[i] = FN(OP, pa[i], vb, &lp);                            \
                return;                                                                       \
            }                                                                                 \
            if (s[2] == it) { /* a broadcast */                                               \
                const T *pb = (const T *)(const void *)b;                                     \
                T va;                                                                         \
                memcpy(&va, a, sizeof va);                                                    \
                for (; i + EW_B <= n; i += EW_B) {                                            \
                    T vb[EW_B];                                                               \
                    OT vo[EW_B];                                                              \
                    for (int j = 0; j < EW_B; j++) vb[j] = pb[i + j];                         \
                    for (int j = 0; j < EW_B; j++) vo[j] = FN(OP, va, vb[j], &lp);            \
                    for (int j = 0; j < EW_B; j++) po[i + j] = vo[j];                         \
                }                                                                             \
                for (; i < n; i++) po[i] = FN(OP, va, pb[i], &lp);                            \
                return;                                                                       \
            }                                                                                 \
        }                                                                                     \
        for (int64_t i = 0; i < n; i++) {                                                     \
            T va, vb;                                                                         \
            OT r;                                                                             \
            memcpy(&va, a + i * s[1], sizeof va);                                             \
            memcpy(&vb, b + i * s[2], sizeof vb);                                             \
            r = FN(OP, va, vb, &lp);                                                          \
            memcpy(o + i * s[0], &r, sizeof r);                                               \
        }                                                                                     \
    }

/* out[i] = FN(OP, a[i], b[i], c[i]) */
#define DEF_TERNARY(NAME, T, FN, OP)                                                          \
    static void NAME(char **p, const int64_t *s, int64_t n, so_ew_params *prm)                \
    {                                                                                         \
        const so_ew_params lp = *prm;                                                         \
        const int64_t it = (int64_t)sizeof(T);                                                \
        if (s[0] == it && s[1] == it && s[2] == it && s[3] == it) {                           \
            T *po = (T *)(void *)p[0];                                                        \
            const T *pa = (const T *)(const void *)p[1], *pb = (const T *)(const void *)p[2]; \
            const T *pc = (const T *)(const void *)p[3];                                      \
            int64_t i = 0;                                                                    \
            for (; i + EW_B <= n; i += EW_B) {                                                \
                T va[EW_B], vb[EW_B], vc[EW_B], vo[EW_B];                                     \
                for (int j = 0; j < EW_B; j++) va[j] = pa[i + j];                             \
                for (int j = 0; j < EW_B; j++) vb[j] = pb[i + j];                             \
                for (int j = 0; j < EW_B; j++) vc[j] = pc[i + j];                             \
                for (int j = 0; j < EW_B; j++) vo[j] = FN(OP, va[j], vb[j], vc[j], &lp);      \
                for (int j = 0; j < EW_B; j++) po[i + j] = vo[j];                             \
            }                                                                                 \
            for (; i < n; i++) po[i] = FN(OP, pa[i], pb[i], pc[i], &lp);                      \
            return;                                                                           \
        }                                                                                     \
        for (int64_t i = 0; i < n; i++) {                                                     \
            T va, vb, vc, r;                                                                  \
            memcpy(&va, p[1] + i * s[1], sizeof va);                                          \
            memcpy(&vb, p[2] + i * s[2], sizeof vb);                                          \
            memcpy(&vc, p[3] + i * s[3], sizeof vc);                                          \
            r = FN(OP, va, vb, vc, &lp);                                                      \
            memcpy(p[0] + i * s[0], &r, sizeof r);                                            \
        }                                                                                     \
    }

/* out[i] = cond[i] ? a[i] : b[i] (cond is bool bytes) */
#define DEF_WHERE(NAME, T)                                                                    \
    static void NAME(char **p, const int64_t *s, int64_t n, so_ew_params *prm)                \
    {                                                                                         \
        const int64_t it = (int64_t)sizeof(T);                                                \
        (void)prm;                                                                            \
        if (s[0] == it && s[1] == 1 && s[2] == it && s[3] == it) {                            \
            T *po = (T *)(void *)p[0];                                                        \
            const uint8_t *pc = (const uint8_t *)p[1];                                        \
            const T *pa = (const T *)(const void *)p[2], *pb = (const T *)(const void *)p[3]; \
            for (int64_t i = 0; i < n; i++) po[i] = pc[i] ? pa[i] : pb[i];                    \
            return;                                                                           \
        }                                                                                     \
        for (int64_t i = 0; i < n; i++) {                                                     \
            const char *src = *(const uint8_t *)(p[1] + i * s[1]) ? p[2] + i * s[2]           \
                                                                  : p[3] + i * s[3];          \
            memcpy(p[0] + i * s[0], src, sizeof(T));                                          \
        }                                                                                     \
    }

/* float32 unary/binary loops are built three times (AVX-512, AVX2+FMA, baseline) and the
 * loader picks one for the CPU at hand: the polynomial GELU math in elementwise_math.h runs
 * ~15x faster with AVX-512 than with the x86-64 baseline's SSE2 (measured), and wheels
 * cannot assume -march=native. */
#if defined(__x86_64__) && defined(__linux__) && defined(__GNUC__) && !defined(__clang__) && \
    __GNUC__ >= 11
#define EW_SIMD __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define EW_SIMD
#endif
#define EW_PLAIN

#define GEN_U_F(O) DEF_UNARY(u_f_##O, float, so_ew_unary_f, SO_EW_##O, EW_SIMD)
#define GEN_U_D(O) DEF_UNARY(u_d_##O, double, so_ew_unary_d, SO_EW_##O, EW_PLAIN)
#define GEN_U_I(O) DEF_UNARY(u_i_##O, int64_t, so_ew_unary_i, SO_EW_##O, EW_PLAIN)
#define GEN_B_F(O) DEF_BINARY(b_f_##O, float, float, so_ew_binary_f, SO_EW_##O, 0, EW_SIMD)
#define GEN_B_D(O) DEF_BINARY(b_d_##O, double, double, so_ew_binary_d, SO_EW_##O, 0, EW_PLAIN)
#define GEN_B_I(O) DEF_BINARY(b_i_##O, int64_t, int64_t, so_ew_binary_i, SO_EW_##O, 0, EW_PLAIN)
#define GEN_B_IDIV(O) DEF_BINARY(b_i_##O, int64_t, int64_t, so_ew_binary_i, SO_EW_##O, 1, EW_PLAIN)
#define GEN_C_F(O) DEF_BINARY(c_f_##O, float, uint8_t, so_ew_compare_f, SO_EW_##O, 0, EW_PLAIN)
#define GEN_C_D(O) DEF_BINARY(c_d_##O, double, uint8_t, so_ew_compare_d, SO_EW_##O, 0, EW_PLAIN)
#define GEN_C_I(O) DEF_BINARY(c_i_##O, int64_t, uint8_t, so_ew_compare_i, SO_EW_##O, 0, EW_PLAIN)
#define GEN_T_F(O) DEF_TERNARY(t_f_##O, float, so_ew_ternary_f, SO_EW_##O)
#define GEN_T_D(O) DEF_TERNARY(t_d_##O, double, so_ew_ternary_d, SO_EW_##O)
#define GEN_T_I(O) DEF_TERNARY(t_i_##O, int64_t, so_ew_ternary_i, SO_EW_##O)

SO_EW_UNARY_FLOAT_OPS(GEN_U_F)
SO_EW_UNARY_FLOAT_OPS(GEN_U_D)
SO_EW_UNARY_INT_OPS(GEN_U_I)
SO_EW_BINARY_FLOAT_OPS(GEN_B_F)
SO_EW_BINARY_FLOAT_OPS(GEN_B_D)
SO_EW_BINARY_INT_OPS(GEN_B_I)
SO_EW_BINARY_INTDIV_OPS(GEN_B_IDIV)
SO_EW_COMPARE_OPS(GEN_C_F)
SO_EW_COMPARE_OPS(GEN_C_D)
SO_EW_COMPARE_OPS(GEN_C_I)
SO_EW_TERNARY_FLOAT_OPS(GEN_T_F)
SO_EW_TERNARY_FLOAT_OPS(GEN_T_D)
SO_EW_TERNARY_INT_OPS(GEN_T_I)
DEF_WHERE(w_f, float)
DEF_WHERE(w_d, double)
DEF_WHERE(w_i, int64_t)

static ew_loop_fn lookup_loop(int op, int ct)
{
#define CASE(PREFIX, O) case SO_EW_##O: return PREFIX##O;
#define CASE_U_F(O) CASE(u_f_, O)
#define CASE_U_D(O) CASE(u_d_, O)
#define CASE_U_I(O) CASE(u_i_, O)
#define CASE_B_F(O) CASE(b_f_, O)
#define CASE_B_D(O) CASE(b_d_, O)
#define CASE_B_I(O) CASE(b_i_, O)
#define CASE_C_F(O) CASE(c_f_, O)
#define CASE_C_D(O) CASE(c_d_, O)
#define CASE_C_I(O) CASE(c_i_, O)
#define CASE_T_F(O) CASE(t_f_, O)
#define CASE_T_D(O) CASE(t_d_, O)
#define CASE_T_I(O) CASE(t_i_, O)
    if (ct == SO_FLOAT32) {
        switch (op) {
            SO_EW_UNARY_FLOAT_OPS(CASE_U_F) SO_EW_BINARY_FLOAT_OPS(CASE_B_F) SO_EW_COMPARE_OPS(CASE_C_F)
            SO_EW_TERNARY_FLOAT_OPS(CASE_T_F)
        case SO_EW_WHERE: return w_f;
        default: return NULL;
        }
    } else if (ct == SO_FLOAT64) {
        switch (op) {
            SO_EW_UNARY_FLOAT_OPS(CASE_U_D) SO_EW_BINARY_FLOAT_OPS(CASE_B_D) SO_EW_COMPARE_OPS(CASE_C_D)
            SO_EW_TERNARY_FLOAT_OPS(CASE_T_D)
        case SO_EW_WHERE: return w_d;
        default: return NULL;
        }
    } else {
        switch (op) {
            SO_EW_UNARY_INT_OPS(CASE_U_I) SO_EW_BINARY_INT_OPS(CASE_B_I) SO_EW_BINARY_INTDIV_OPS(CASE_B_I)
            SO_EW_COMPARE_OPS(CASE_C_I) SO_EW_TERNARY_INT_OPS(CASE_T_I)
        case SO_EW_WHERE: return w_i;
        default: return NULL;
        }
    }
#undef CASE
}

/* ------------------------------------------------------------------ dtype conversion */

/* Convert n elements (strided, byte strides) between dtypes; the pairs the promotion rules
 * produce get tight typed loops, anything else the generic scalar converter. */
static void ew_cast(char *d, int ddt, int64_t ds, const char *s, int sdt, int64_t ss, int64_t n)
{
#define CAST(SDT, ST, DDT, DT, CONV)                                                          \
    case (SDT) * 8 + (DDT):                                                                   \
        for (int64_t i = 0; i < n; i++) {                                                     \
            ST v;                                                                             \
            DT w;                                                                             \
            memcpy(&v, s + i * ss, sizeof v);                                                 \
            w = (DT)(CONV);                                                                   \
            memcpy(d + i * ds, &w, sizeof w);                                                 \
        }                                                                                     \
        return;
    switch (sdt * 8 + ddt) {
        CAST(SO_FLOAT16, uint16_t, SO_FLOAT32, float, so_fp16_to_float(v))
        CAST(SO_BFLOAT16, uint16_t, SO_FLOAT32, float, so_bf16_to_float(v))
        CAST(SO_FLOAT64, double, SO_FLOAT32, float, v)
        CAST(SO_INT32, int32_t, SO_FLOAT32, float, v)
        CAST(SO_INT64, int64_t, SO_FLOAT32, float, v)
        CAST(SO_BOOL, uint8_t, SO_FLOAT32, float, v != 0)
        CAST(SO_FLOAT32, float, SO_FLOAT64, double, v)
        CAST(SO_FLOAT16, uint16_t, SO_FLOAT64, double, so_fp16_to_float(v))
        CAST(SO_BFLOAT16, uint16_t, SO_FLOAT64, double, so_bf16_to_float(v))
        CAST(SO_INT32, int32_t, SO_FLOAT64, double, v)
        CAST(SO_INT64, int64_t, SO_FLOAT64, double, v)
        CAST(SO_BOOL, uint8_t, SO_FLOAT64, double, v != 0)
        CAST(SO_INT32, int32_t, SO_INT64, int64_t, v)
        CAST(SO_BOOL, uint8_t, SO_INT64, int64_t, v != 0)
        CAST(SO_FLOAT32, float, SO_FLOAT16, uint16_t, so_float_to_fp16(v))
        CAST(SO_FLOAT32, float, SO_BFLOAT16, uint16_t, so_float_to_bf16(v))
        CAST(SO_INT64, int64_t, SO_INT32, int32_t, (uint32_t)(uint64_t)v)
        CAST(SO_INT64, int64_t, SO_BOOL, uint8_t, v != 0)
    default:
        for (int64_t i = 0; i < n; i++) so_convert_elem(d + i * ds, ddt, s + i * ss, sdt);
        return;
    }
#undef CAST
}

/* ------------------------------------------------------------------ buffered driver */

typedef struct {
    ew_loop_fn loop;
    int nops;                      /* 1 + number of inputs */
    int dt[SO_ITER_MAX_OPS];       /* operand dtypes (0: output) */
    int nat[SO_ITER_MAX_OPS];      /* dtypes the typed loop reads/writes */
    int need_cast;
    so_ew_params *p;
} ew_ctx;

static void ew_row(char **ptrs, const int64_t *s, int64_t n, void *vctx)
{
    ew_ctx *c = (ew_ctx *)vctx;
    union { double align; char bytes[EW_CHUNK * 8]; } buf[SO_ITER_MAX_OPS];
    if (!c->need_cast) {
        c->loop(ptrs, s, n, c->p);
        return;
    }
    for (int64_t i0 = 0; i0 < n; i0 += EW_CHUNK) {
        int64_t m = n - i0 < EW_CHUNK ? n - i0 : EW_CHUNK;
        char *lp[SO_ITER_MAX_OPS];
        int64_t ls[SO_ITER_MAX_OPS];
        for (int k = 0; k < c->nops; k++) {
            char *src = ptrs[k] + i0 * s[k];
            if (c->dt[k] == c->nat[k]) {
                lp[k] = src;
                ls[k] = s[k];
            } else if (k == 0) {
                lp[0] = buf[0].bytes;
                ls[0] = so_dtype_itemsize(c->nat[0]);
            } else if (s[k] == 0) { /* broadcast input: convert its one value */
                ew_cast(buf[k].bytes, c->nat[k], 0, src, c->dt[k], 0, 1);
                lp[k] = buf[k].bytes;
                ls[k] = 0;
            } else {
                ls[k] = so_dtype_itemsize(c->nat[k]);
                ew_cast(buf[k].bytes, c->nat[k], ls[k], src, c->dt[k], s[k], m);
                lp[k] = buf[k].bytes;
            }
        }
        c->loop(lp, ls, m, c->p);
        if (c->dt[0] != c->nat[0])
            ew_cast(ptrs[0] + i0 * s[0], c->dt[0], s[0], buf[0].bytes, c->nat[0], ls[0], m);
    }
}

void so_ew_run_cpu(so_ew_call *c)
{
    so_view views[SO_ITER_MAX_OPS];
    so_nditer it;
    ew_ctx ctx;
    ctx.loop = lookup_loop(c->op, c->ct);
    ctx.nops = 1 + c->nin;
    ctx.p = &c->p;
    ctx.need_cast = 0;
    if (!ctx.loop) return; /* unreachable: elementwise.c only builds supported (op, ct) */
    views[0] = c->out;
    ctx.dt[0] = c->out.dtype;
    ctx.nat[0] = SO_EW_IS_COMPARE(c->op) ? SO_BOOL : c->ct;
    for (int k = 0; k < c->nin; k++) {
        views[1 + k] = c->in[k];
        if (c->is_scalar[k]) views[1 + k].data = c->scalar_bits[k];
        ctx.dt[1 + k] = c->in[k].dtype;
        ctx.nat[1 + k] = (c->op == SO_EW_WHERE && k == 0) ? SO_BOOL : c->ct;
    }
    for (int k = 0; k < ctx.nops; k++) ctx.need_cast |= ctx.dt[k] != ctx.nat[k];
    so_nditer_init(&it, ctx.nops, views);
    so_nditer_run(&it, ew_row, &ctx);
}
