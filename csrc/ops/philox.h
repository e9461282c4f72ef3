/* philox.h — the counter-based RNG (Philox4x32-10) and its uniform/normal transforms,
 * written once as SO_HD functions so the CPU loop (philox.c) and the CUDA kernel
 * (philox.cu) compute bit-identical numbers for the same (seed, offset).
 *
 * Philox4x32-10 (Salmon, Moraes, Dror, Shaw, "Parallel random numbers: as easy as 1, 2, 3",
 * SC'11): a 128-bit counter and a 64-bit key go through 10 rounds of two 32x32->64 multiplies
 * (0xD2511F53, 0xCD9E8D57) with the key bumped by the Weyl constants 0x9E3779B9/0xBB67AE85
 * between rounds.  The key is the generator's seed; the counter is (offset + block, 0, 0).
 *
 * Stream layout (what "element i" means; the state advances by whole blocks):
 *   float32/float16/bfloat16 draws: 4 values per block, element i = block i/4, lane i%4.
 *   float64 draws: 2 values per block (64 bits each), element i = block i/2, half i%2.
 *   A draw of n elements advances the generator's offset by ceil(n / per_block) blocks.
 *   uniform:  f32 (x >> 8) * 2^-24;  f64 (u64 >> 11) * 2^-53 (u64 = x0:x1 or x2:x3);
 *             f16 (x >> 21) * 2^-11;  bf16 (x >> 24) * 2^-8  — exact in the target dtype, so
 *             the result stays in [0, 1) (rounding a float32 draw could give 1.0).
 *   normal:   Box-Muller on each pair of uniforms: u1 in (0, 1] from the first 32 (f32) or
 *             64 (f64) bits, angle fraction t in [0, 1) from the second; lane 2k is
 *             r*cos(2*pi*t), lane 2k+1 is r*sin(2*pi*t), r = sqrt(-2 log u1).  fp16/bf16
 *             normals are float32 normals rounded.
 *
 * Bit-identity needs more than the same formula: libm's logf/sinf and CUDA's differ in the
 * last bit, and nvcc contracts a*b+c into FMA by default.  So log/sin/cos are computed here
 * from +,-,*,/ and sqrt only (IEEE-exact on both devices), the angle is reduced exactly in
 * integers, and on the device every operation is an explicitly rounded intrinsic
 * (__fmul_rn etc., which nvcc never contracts).  On the host, philox.c (the one C file that
 * includes this) switches contraction off by pragma, and x86-64 SSE arithmetic has no x87
 * excess precision.
 * tests/ops/test_random.py re-implements these formulas with NumPy scalar-exact float
 * arithmetic and checks the CPU bits, so a build that contracted or reordered would fail.
 */
#ifndef SO_PHILOX_H
#define SO_PHILOX_H

#include "../core/common.h"
#ifndef __CUDACC__
#include <math.h>
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ---- explicitly rounded arithmetic: identical results on host and device ---- */
#ifdef __CUDA_ARCH__
#define SO_FADD(a, b) __fadd_rn((a), (b))
#define SO_FSUB(a, b) __fsub_rn((a), (b))
#define SO_FMUL(a, b) __fmul_rn((a), (b))
#define SO_FDIV(a, b) __fdiv_rn((a), (b))
#define SO_FSQRT(a) __fsqrt_rn(a)
#define SO_DADD(a, b) __dadd_rn((a), (b))
#define SO_DSUB(a, b) __dsub_rn((a), (b))
#define SO_DMUL(a, b) __dmul_rn((a), (b))
#define SO_DDIV(a, b) __ddiv_rn((a), (b))
#define SO_DSQRT(a) __dsqrt_rn(a)
#define SO_I2F(i) __int2float_rn(i)
#define SO_LL2F(i) __ll2float_rn(i)
#define SO_LL2D(i) __ll2double_rn(i)
#else
#define SO_FADD(a, b) ((float)(a) + (float)(b))
#define SO_FSUB(a, b) ((float)(a) - (float)(b))
#define SO_FMUL(a, b) ((float)(a) * (float)(b))
#define SO_FDIV(a, b) ((float)(a) / (float)(b))
#define SO_FSQRT(a) sqrtf(a)
#define SO_DADD(a, b) ((double)(a) + (double)(b))
#define SO_DSUB(a, b) ((double)(a) - (double)(b))
#define SO_DMUL(a, b) ((double)(a) * (double)(b))
#define SO_DDIV(a, b) ((double)(a) / (double)(b))
#define SO_DSQRT(a) sqrt(a)
#define SO_I2F(i) ((float)(i))
#define SO_LL2F(i) ((float)(i))
#define SO_LL2D(i) ((double)(i))
#endif

/* ---- Philox4x32-10 ---- */

#define SO_PHILOX_M0 0xD2511F53u
#define SO_PHILOX_M1 0xCD9E8D57u
#define SO_PHILOX_W0 0x9E3779B9u
#define SO_PHILOX_W1 0xBB67AE85u

SO_HD void so_philox4x32_10(const uint32_t ctr_in[4], const uint32_t key_in[2], uint32_t out[4])
{
    uint32_t c0 = ctr_in[0], c1 = ctr_in[1], c2 = ctr_in[2], c3 = ctr_in[3];
    uint32_t k0 = key_in[0], k1 = key_in[1];
    for (int r = 0; r < 10; r++) {
        uint64_t p0 = (uint64_t)SO_PHILOX_M0 * c0;
        uint64_t p1 = (uint64_t)SO_PHILOX_M1 * c2;
        uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0;
        uint32_t hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;
        c0 = hi1 ^ c1 ^ k0;
        c1 = lo1;
        c2 = hi0 ^ c3 ^ k1;
        c3 = lo0;
        k0 += SO_PHILOX_W0;
        k1 += SO_PHILOX_W1;
    }
    out[0] = c0;
    out[1] = c1;
    out[2] = c2;
    out[3] = c3;
}

/* The 4 words of one block: key = seed, counter = (block number, 0, 0). */
SO_HD void so_philox_block(uint64_t seed, uint64_t block, uint32_t out[4])
{
    uint32_t ctr[4] = {(uint32_t)block, (uint32_t)(block >> 32), 0u, 0u};
    uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    so_philox4x32_10(ctr, key, out);
}

/* ---- libm-free log and sin/cos (float32 and float64) ---- */

/* log(x) for finite normal x > 0 (musl/fdlibm's reduction to [sqrt(2)/2, sqrt(2)] and
 * its minimax polynomial; error < 1 ulp).  Box-Muller never passes 0, subnormals or inf. */
SO_HD float so_logf(float x)
{
    const float ln2_hi = 0x1.62e300p-1f, ln2_lo = 0x1.2fefa2p-17f;
    const float Lg1 = 0x1.555554p-1f, Lg2 = 0x1.999c26p-2f, Lg3 = 0x1.23d3dcp-2f,
                Lg4 = 0x1.f13c4cp-3f;
    uint32_t ix = so_float_to_bits(x);
    int k;
    float f, s, z, w, t1, t2, R, hfsq, dk, r;
    ix += 0x3f800000u - 0x3f3504f3u;
    k = (int)(ix >> 23) - 0x7f;
    ix = (ix & 0x007fffffu) + 0x3f3504f3u;
    f = SO_FSUB(so_bits_to_float(ix), 1.0f);
    s = SO_FDIV(f, SO_FADD(2.0f, f));
    z = SO_FMUL(s, s);
    w = SO_FMUL(z, z);
    t1 = SO_FMUL(w, SO_FADD(Lg2, SO_FMUL(w, Lg4)));
    t2 = SO_FMUL(z, SO_FADD(Lg1, SO_FMUL(w, Lg3)));
    R = SO_FADD(t2, t1);
    hfsq = SO_FMUL(SO_FMUL(0.5f, f), f);
    dk = SO_I2F(k);
    /* s*(hfsq+R) + dk*ln2_lo - hfsq + f + dk*ln2_hi, left to right */
    r = SO_FMUL(s, SO_FADD(hfsq, R));
    r = SO_FADD(r, SO_FMUL(dk, ln2_lo));
    r = SO_FSUB(r, hfsq);
    r = SO_FADD(r, f);
    return SO_FADD(r, SO_FMUL(dk, ln2_hi));
}

SO_HD double so_log(double x)
{
    const double ln2_hi = 0x1.62e42fee00000p-1, ln2_lo = 0x1.a39ef35793c76p-33;
    const double Lg1 = 0x1.5555555555593p-1, Lg2 = 0x1.999999997fa04p-2,
                 Lg3 = 0x1.2492494229359p-2, Lg4 = 0x1.c71c51d8e78afp-3,
                 Lg5 = 0x1.7466496cb03dep-3, Lg6 = 0x1.39a09d078c69fp-3,
                 Lg7 = 0x1.2f112df3e5244p-3;
    uint64_t u;
    uint32_t hx;
    int k;
    double f, s, z, w, t1, t2, R, hfsq, dk, r, xr;
    memcpy(&u, &x, 8);
    hx = (uint32_t)(u >> 32);
    hx += 0x3ff00000u - 0x3fe6a09eu;
    k = (int)(hx >> 20) - 0x3ff;
    hx = (hx & 0x000fffffu) + 0x3fe6a09eu;
    u = ((uint64_t)hx << 32) | (u & 0xffffffffu);
    memcpy(&xr, &u, 8);
    f = SO_DSUB(xr, 1.0);
    hfsq = SO_DMUL(SO_DMUL(0.5, f), f);
    s = SO_DDIV(f, SO_DADD(2.0, f));
    z = SO_DMUL(s, s);
    w = SO_DMUL(z, z);
    t1 = SO_DMUL(w, SO_DADD(Lg2, SO_DMUL(w, SO_DADD(Lg4, SO_DMUL(w, Lg6)))));
    t2 = SO_DMUL(z, SO_DADD(Lg1, SO_DMUL(w, SO_DADD(Lg3, SO_DMUL(w, SO_DADD(Lg5, SO_DMUL(w, Lg7)))))));
    R = SO_DADD(t2, t1);
    dk = SO_LL2D((long long)k);
    r = SO_DMUL(s, SO_DADD(hfsq, R));
    r = SO_DADD(r, SO_DMUL(dk, ln2_lo));
    r = SO_DSUB(r, hfsq);
    r = SO_DADD(r, f);
    return SO_DADD(r, SO_DMUL(dk, ln2_hi));
}

/* sin and cos of 2*pi*t for t = k * 2^-24, k a 24-bit integer.  The quadrant and the
 * remainder come from integer arithmetic (exact), leaving |a| <= pi/4 for Taylor series
 * that are accurate to float rounding there. */
SO_HD void so_sincos_2pi_f32(uint32_t k, float *s_out, float *c_out)
{
    const float S1 = -0x1.555556p-3f, S2 = 0x1.111112p-7f, S3 = -0x1.a01a02p-13f,
                S4 = 0x1.71de3ap-19f;
    const float C1 = -0x1.0p-1f, C2 = 0x1.555556p-5f, C3 = -0x1.6c16c2p-10f,
                C4 = 0x1.a01a02p-16f, C5 = -0x1.27e4fcp-22f;
    const float PIO2_2M22 = 0x1.921fb6p-22f; /* (pi/2) * 2^-22 */
    uint32_t q = (k + (1u << 21)) >> 22;                 /* nearest quarter turn, 0..4 */
    int32_t rem = (int32_t)k - (int32_t)(q << 22);        /* in [-2^21, 2^21] */
    float a = SO_FMUL(SO_I2F(rem), PIO2_2M22);
    float z = SO_FMUL(a, a);
    float sn = SO_FADD(a, SO_FMUL(SO_FMUL(a, z),
                      SO_FADD(S1, SO_FMUL(z, SO_FADD(S2, SO_FMUL(z, SO_FADD(S3, SO_FMUL(z, S4))))))));
    float cs = SO_FADD(1.0f, SO_FMUL(z, SO_FADD(C1, SO_FMUL(z, SO_FADD(C2, SO_FMUL(z,
                      SO_FADD(C3, SO_FMUL(z, SO_FADD(C4, SO_FMUL(z, C5))))))))));
    switch (q & 3u) {
    case 0: *s_out = sn; *c_out = cs; break;
    case 1: *s_out = cs; *c_out = -sn; break;
    case 2: *s_out = -sn; *c_out = -cs; break;
    default: *s_out = -cs; *c_out = sn; break;
    }
}

/* Same for t = k * 2^-53, k a 53-bit integer, in float64. */
SO_HD void so_sincos_2pi_f64(uint64_t k, double *s_out, double *c_out)
{
    const double S1 = -0x1.5555555555555p-3, S2 = 0x1.1111111111111p-7,
                 S3 = -0x1.a01a01a01a01ap-13, S4 = 0x1.71de3a556c734p-19,
                 S5 = -0x1.ae64567f544e4p-26, S6 = 0x1.6124613a86d09p-33,
                 S7 = -0x1.ae7f3e733b81fp-41, S8 = 0x1.952c77030ad4ap-49;
    const double C1 = -0x1.0p-1, C2 = 0x1.5555555555555p-5, C3 = -0x1.6c16c16c16c17p-10,
                 C4 = 0x1.a01a01a01a01ap-16, C5 = -0x1.27e4fb7789f5cp-22,
                 C6 = 0x1.1eed8eff8d898p-29, C7 = -0x1.93974a8c07c9dp-37,
                 C8 = 0x1.ae7f3e733b81fp-45, C9 = -0x1.6827863b97d97p-53;
    const double PIO2_2M51 = 0x1.921fb54442d18p-51; /* (pi/2) * 2^-51 */
    uint64_t q = (k + (1ull << 50)) >> 51;
    int64_t rem = (int64_t)k - (int64_t)(q << 51);
    double a = SO_DMUL(SO_LL2D((long long)rem), PIO2_2M51);
    double z = SO_DMUL(a, a);
    double ps = SO_DADD(S7, SO_DMUL(z, S8));
    double pc = SO_DADD(C8, SO_DMUL(z, C9));
    double sn, cs;
    ps = SO_DADD(S6, SO_DMUL(z, ps));
    ps = SO_DADD(S5, SO_DMUL(z, ps));
    ps = SO_DADD(S4, SO_DMUL(z, ps));
    ps = SO_DADD(S3, SO_DMUL(z, ps));
    ps = SO_DADD(S2, SO_DMUL(z, ps));
    ps = SO_DADD(S1, SO_DMUL(z, ps));
    sn = SO_DADD(a, SO_DMUL(SO_DMUL(a, z), ps));
    pc = SO_DADD(C7, SO_DMUL(z, pc));
    pc = SO_DADD(C6, SO_DMUL(z, pc));
    pc = SO_DADD(C5, SO_DMUL(z, pc));
    pc = SO_DADD(C4, SO_DMUL(z, pc));
    pc = SO_DADD(C3, SO_DMUL(z, pc));
    pc = SO_DADD(C2, SO_DMUL(z, pc));
    pc = SO_DADD(C1, SO_DMUL(z, pc));
    cs = SO_DADD(1.0, SO_DMUL(z, pc));
    switch (q & 3u) {
    case 0: *s_out = sn; *c_out = cs; break;
    case 1: *s_out = cs; *c_out = -sn; break;
    case 2: *s_out = -sn; *c_out = -cs; break;
    default: *s_out = -cs; *c_out = sn; break;
    }
}

/* ---- one block of draws, in any floating dtype ---- */

enum { SO_RAND_UNIFORM = 0, SO_RAND_NORMAL = 1 };

typedef struct {
    uint64_t seed;
    uint64_t offset; /* first block of this draw */
    int kind;        /* SO_RAND_UNIFORM / SO_RAND_NORMAL */
    int dtype;       /* floating so_dtype of the output */
    int affine;      /* 0: raw U[0,1) / N(0,1); 1: apply a + b*x */
    double a, b;     /* uniform_(from, to): a = from, b = to - from; normal_: a = mean, b = std */
} so_rand_params;

SO_HD int so_rand_per_block(int dtype) { return dtype == SO_FLOAT64 ? 2 : 4; }

/* Four float32 values of block `x` (before any affine map / rounding to 16 bits). */
SO_HD void so_rand_f32x4(int kind, int dtype, const uint32_t x[4], float v[4])
{
    if (kind == SO_RAND_UNIFORM) {
        int shift = dtype == SO_FLOAT16 ? 21 : dtype == SO_BFLOAT16 ? 24 : 8;
        float scale = dtype == SO_FLOAT16 ? 0x1.0p-11f : dtype == SO_BFLOAT16 ? 0x1.0p-8f : 0x1.0p-24f;
        for (int l = 0; l < 4; l++) v[l] = SO_FMUL(SO_I2F((int32_t)(x[l] >> shift)), scale);
    } else {
        for (int p = 0; p < 2; p++) {
            /* u1 = (x + 1) * 2^-32 in (0, 1], correctly rounded once */
            float u1 = SO_FMUL(SO_LL2F((long long)x[2 * p] + 1), 0x1.0p-32f);
            float r = SO_FSQRT(SO_FMUL(-2.0f, so_logf(u1)));
            float sn, cs;
            so_sincos_2pi_f32(x[2 * p + 1] >> 8, &sn, &cs);
            v[2 * p] = SO_FMUL(r, cs);
            v[2 * p + 1] = SO_FMUL(r, sn);
        }
    }
}

SO_HD void so_rand_f64x2(int kind, const uint32_t x[4], double v[2])
{
    uint64_t w0 = ((uint64_t)x[0] << 32) | x[1];
    uint64_t w1 = ((uint64_t)x[2] << 32) | x[3];
    if (kind == SO_RAND_UNIFORM) {
        v[0] = SO_DMUL(SO_LL2D((long long)(w0 >> 11)), 0x1.0p-53);
        v[1] = SO_DMUL(SO_LL2D((long long)(w1 >> 11)), 0x1.0p-53);
    } else {
        double u1 = SO_DMUL(SO_LL2D((long long)(w0 >> 11) + 1), 0x1.0p-53);
        double r = SO_DSQRT(SO_DMUL(-2.0, so_log(u1)));
        double sn, cs;
        so_sincos_2pi_f64(w1 >> 11, &sn, &cs);
        v[0] = SO_DMUL(r, cs);
        v[1] = SO_DMUL(r, sn);
    }
}

/* Write the first `count` (<= per_block) values of block number `block` of the draw to
 * `out` (contiguous, p->dtype). */
SO_HD void so_rand_block(const so_rand_params *p, uint64_t block, char *out, int count)
{
    uint32_t x[4];
    so_philox_block(p->seed, p->offset + block, x);
    if (p->dtype == SO_FLOAT64) {
        double v[2];
        so_rand_f64x2(p->kind, x, v);
        for (int l = 0; l < count; l++) {
            double y = v[l];
            if (p->affine) y = SO_DADD(SO_DMUL(y, p->b), p->a);
            memcpy(out + 8 * l, &y, 8);
        }
    } else {
        float v[4];
        float fa = (float)p->a, fb = (float)p->b;
        so_rand_f32x4(p->kind, p->dtype, x, v);
        for (int l = 0; l < count; l++) {
            float y = v[l];
            if (p->affine) y = SO_FADD(SO_FMUL(y, fb), fa);
            if (p->dtype == SO_FLOAT32) {
                memcpy(out + 4 * l, &y, 4);
            } else {
                uint16_t h = p->dtype == SO_FLOAT16 ? so_float_to_fp16(y) : so_float_to_bf16(y);
                memcpy(out + 2 * l, &h, 2);
            }
        }
    }
}

/* Kernels: fill n contiguous elements of p->dtype at `data` with the draw described by p
 * (blocks p->offset .. p->offset + ceil(n / per_block) - 1). */
void so_rand_fill_cpu(const so_rand_params *p, char *data, int64_t n);
int so_rand_fill_cuda(const so_rand_params *p, char *data, int64_t n, void *stream); /* cuda err */

#ifdef __cplusplus
}
#endif
#endif /* SO_PHILOX_H */
