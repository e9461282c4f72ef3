/* common.h — types shared by every layer of shardopt's C core, usable from C11 and CUDA.
 *
 * Holds the dtype enum, the device descriptor, the plain strided view (so_view) that
 * kernels walk, and the scalar conversions (fp16/bf16 <-> float) that must be bit-identical
 * on CPU and GPU.  Nothing here touches Python, so kernels (.c and .cu) include only this.
 */
#ifndef SO_COMMON_H
#define SO_COMMON_H

#include <stdint.h>
#include <stddef.h>
#include <string.h>

#ifdef __CUDACC__
#define SO_HD __host__ __device__ __forceinline__
#define SO_HD_INLINE __host__ __device__ __forceinline__
#else
#define SO_HD static inline
/* SO_HD that gcc must inline: the vectorised CPU loops only vectorise math they can see.
 * gcc's size heuristics left the GELU backward (a ~60-instruction body) as a scalar call
 * per element inside its target_clones loops: 18 ns per element instead of < 1. */
#if defined(__GNUC__)
#define SO_HD_INLINE static inline __attribute__((always_inline))
#else
#define SO_HD_INLINE static inline
#endif
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Maximum rank of a tensor.  torch allows more, but no op here needs it and a fixed
 * bound keeps shape/stride arrays inline in the object (no extra allocation per view). */
#define SO_MAX_DIMS 16

/* dtype codes.  The order is part of the C ABI between files; Python sees dtype objects. */
typedef enum {
    SO_FLOAT32 = 0,
    SO_FLOAT64 = 1,
    SO_FLOAT16 = 2,
    SO_BFLOAT16 = 3,
    SO_INT32 = 4,
    SO_INT64 = 5,
    SO_BOOL = 6,
    SO_NUM_DTYPES = 7
} so_dtype;

/* Complex tensors (interleaved re, im of float32 / float64, as torch and NumPy store them).
 * They come after SO_NUM_DTYPES so the real-only kernel tables (sized SO_NUM_DTYPES) stay as
 * they are: only creation, copies, views, interop and the collectives handle complex codes;
 * every other kernel entry refuses them (so_check_not_complex in tensor.h).  The dtypes after
 * SO_NUM_TENSOR_DTYPES exist only as objects (torch code names them, e.g. in a pickle):
 * so_parse_dtype refuses them, so no tensor, kernel or collective ever sees those codes. */
enum {
    SO_COMPLEX64 = SO_NUM_DTYPES,
    SO_COMPLEX128,
    SO_NUM_TENSOR_DTYPES,
    SO_UINT8 = SO_NUM_TENSOR_DTYPES,
    SO_INT8,
    SO_INT16,
    SO_NUM_DTYPE_OBJECTS
};

SO_HD int so_dtype_itemsize(int dt)
{
    switch (dt) {
    case SO_FLOAT32: return 4;
    case SO_FLOAT64: return 8;
    case SO_FLOAT16: return 2;
    case SO_BFLOAT16: return 2;
    case SO_INT32: return 4;
    case SO_INT64: return 8;
    case SO_BOOL: return 1;
    case SO_COMPLEX64: return 8;
    case SO_COMPLEX128: return 16;
    default: return 0;
    }
}

SO_HD int so_dtype_is_complex(int dt)
{
    return dt == SO_COMPLEX64 || dt == SO_COMPLEX128;
}

SO_HD int so_dtype_is_float(int dt)
{
    return dt == SO_FLOAT32 || dt == SO_FLOAT64 || dt == SO_FLOAT16 || dt == SO_BFLOAT16;
}

/* Devices: cpu (index -1 or 0 ignored), cuda:N and meta (torch's data-less device: a meta
 * tensor has dtype and geometry but its storage holds no memory; index ignored). */
typedef enum { SO_CPU = 0, SO_CUDA = 1, SO_META = 2 } so_device_type;

static inline const char *so_device_type_name(int type)
{
    return type == SO_CUDA ? "cuda" : type == SO_META ? "meta" : "cpu";
}

typedef struct {
    int8_t type;   /* so_device_type */
    int16_t index; /* cuda ordinal; 0 for cpu */
} so_device;

SO_HD int so_device_eq(so_device a, so_device b)
{
    return a.type == b.type && (a.type != SO_CUDA || a.index == b.index);
}

/* A strided view: what kernels see.  Strides are in elements (like torch), data points at
 * the first element (storage base + offset already applied). */
typedef struct {
    char *data;
    int ndim;
    int dtype;
    so_device device;
    int64_t shape[SO_MAX_DIMS];
    int64_t strides[SO_MAX_DIMS];
} so_view;

static inline int64_t so_view_numel(const so_view *v)
{
    int64_t n = 1;
    for (int i = 0; i < v->ndim; i++) n *= v->shape[i];
    return n;
}

static inline int so_view_is_contiguous(const so_view *v)
{
    int64_t expected = 1;
    for (int i = v->ndim - 1; i >= 0; i--) {
        if (v->shape[i] == 1) continue;
        if (v->strides[i] != expected) return 0;
        expected *= v->shape[i];
    }
    return 1;
}

/* ---- fp16 / bf16 conversions (round-to-nearest-even), identical on host and device ---- */

SO_HD float so_bits_to_float(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

SO_HD uint32_t so_float_to_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

SO_HD float so_bf16_to_float(uint16_t h) { return so_bits_to_float(((uint32_t)h) << 16); }

SO_HD uint16_t so_float_to_bf16(float f)
{
    uint32_t u = so_float_to_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

SO_HD float so_fp16_to_float(uint16_t h)
{
    uint32_t sign = ((uint32_t)h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t mant = h & 0x3ffu;
    uint32_t u;
    if (exp == 0) {
        if (mant == 0) {
            u = sign;
        } else { /* subnormal: normalise */
            int e = -1;
            do { e++; mant <<= 1; } while ((mant & 0x400u) == 0);
            mant &= 0x3ffu;
            u = sign | ((uint32_t)(127 - 15 - e) << 23) | (mant << 13);
        }
    } else if (exp == 31) {
        u = sign | 0x7f800000u | (mant << 13);
    } else {
        u = sign | ((exp + 127 - 15) << 23) | (mant << 13);
    }
    return so_bits_to_float(u);
}

SO_HD uint16_t so_float_to_fp16(float f)
{
    uint32_t u = so_float_to_bits(f);
    uint32_t sign = (u >> 16) & 0x8000u;
    uint32_t absu = u & 0x7fffffffu;
    if (absu > 0x7f800000u) return (uint16_t)(sign | 0x7e00u);          /* NaN */
    if (absu >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u);         /* overflow -> inf */
    if (absu < 0x38800000u) {                                           /* subnormal or zero */
        if (absu < 0x33000000u) return (uint16_t)sign;                  /* < half of min subnormal */
        uint32_t e = absu >> 23;
        uint32_t m = (absu & 0x7fffffu) | 0x800000u;
        uint32_t shift = 126 - e; /* 14..24 */
        uint32_t r = m >> shift;
        uint32_t rem = m & ((1u << shift) - 1u);
        uint32_t half = 1u << (shift - 1);
        if (rem > half || (rem == half && (r & 1u))) r++;
        return (uint16_t)(sign | r);
    }
    uint32_t r = absu + 0xc8000fffu + ((absu >> 13) & 1u); /* rebias exponent and round */
    return (uint16_t)(sign | (r >> 13));
}

#ifdef __cplusplus
}
#endif

#endif /* SO_COMMON_H */

#ifndef SO_COMMON_SCALAR_H
#define SO_COMMON_SCALAR_H
#ifdef __cplusplus
extern "C" {
#endif
/* ---- scalar load/store of any dtype (generic, slow paths: casts, item(), fill) ---- */
SO_HD double so_load_as_f64(const char *p, int dt)
{
    switch (dt) {
    case SO_FLOAT32: { float v; memcpy(&v, p, 4); return v; }
    case SO_FLOAT64: { double v; memcpy(&v, p, 8); return v; }
    case SO_FLOAT16: { uint16_t v; memcpy(&v, p, 2); return so_fp16_to_float(v); }
    case SO_BFLOAT16: { uint16_t v; memcpy(&v, p, 2); return so_bf16_to_float(v); }
    case SO_INT32: { int32_t v; memcpy(&v, p, 4); return v; }
    case SO_INT64: { int64_t v; memcpy(&v, p, 8); return (double)v; }
    case SO_BOOL: return *(const uint8_t *)p ? 1.0 : 0.0;
    case SO_COMPLEX64: { float v; memcpy(&v, p, 4); return v; } /* the real part */
    case SO_COMPLEX128: { double v; memcpy(&v, p, 8); return v; }
    default: return 0.0;
    }
}

SO_HD int64_t so_load_as_i64(const char *p, int dt)
{
    switch (dt) {
    case SO_INT32: { int32_t v; memcpy(&v, p, 4); return v; }
    case SO_INT64: { int64_t v; memcpy(&v, p, 8); return v; }
    case SO_BOOL: return *(const uint8_t *)p ? 1 : 0;
    default: return (int64_t)so_load_as_f64(p, dt);
    }
}

/* Store a double into dtype dt (float -> int truncates toward zero like torch's casts). */
SO_HD void so_store_f64(char *p, int dt, double x)
{
    switch (dt) {
    case SO_FLOAT32: { float v = (float)x; memcpy(p, &v, 4); break; }
    case SO_FLOAT64: memcpy(p, &x, 8); break;
    case SO_FLOAT16: { uint16_t v = so_float_to_fp16((float)x); memcpy(p, &v, 2); break; }
    case SO_BFLOAT16: { uint16_t v = so_float_to_bf16((float)x); memcpy(p, &v, 2); break; }
    case SO_INT32: { int32_t v = (int32_t)(int64_t)x; memcpy(p, &v, 4); break; }
    case SO_INT64: { int64_t v = (int64_t)x; memcpy(p, &v, 8); break; }
    case SO_BOOL: *(uint8_t *)p = (x != 0.0); break;
    case SO_COMPLEX64: { float v[2] = {(float)x, 0.0f}; memcpy(p, v, 8); break; }
    case SO_COMPLEX128: { double v[2] = {x, 0.0}; memcpy(p, v, 16); break; }
    default: break;
    }
}

SO_HD void so_store_i64(char *p, int dt, int64_t x)
{
    switch (dt) {
    case SO_INT32: { int32_t v = (int32_t)x; memcpy(p, &v, 4); break; }
    case SO_INT64: memcpy(p, &x, 8); break;
    case SO_BOOL: *(uint8_t *)p = (x != 0); break;
    default: so_store_f64(p, dt, (double)x); break;
    }
}

/* The imaginary part of a complex element (0 for real dtypes). */
SO_HD double so_load_imag_f64(const char *p, int dt)
{
    if (dt == SO_COMPLEX64) { float v; memcpy(&v, p + 4, 4); return v; }
    if (dt == SO_COMPLEX128) { double v; memcpy(&v, p + 8, 8); return v; }
    return 0.0;
}

/* Convert one element between dtypes, exact for int<->int.  complex -> real keeps the real
 * part (torch's cast, which warns in Python), real -> complex sets imag to 0. */
SO_HD void so_convert_elem(char *dst, int ddt, const char *src, int sdt)
{
    if (so_dtype_is_complex(ddt)) {
        double re = so_load_as_f64(src, sdt), im = so_load_imag_f64(src, sdt);
        if (ddt == SO_COMPLEX64) {
            float v[2] = {(float)re, (float)im};
            memcpy(dst, v, 8);
        } else {
            double v[2] = {re, im};
            memcpy(dst, v, 16);
        }
    } else if (!so_dtype_is_float(sdt) && !so_dtype_is_float(ddt) && !so_dtype_is_complex(sdt))
        so_store_i64(dst, ddt, so_load_as_i64(src, sdt));
    else
        so_store_f64(dst, ddt, so_load_as_f64(src, sdt));
}
#ifdef __cplusplus
}
#endif
#endif
