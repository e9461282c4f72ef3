/* copy.c — copy_/fill_/clone/convert: the device dispatch and the CPU kernels.
 *
 * Same-dtype copies are memcpy-speed on contiguous runs; conversions go through the shared
 * scalar converters in common.h (the CUDA kernel in copy.cu uses the very same functions, so
 * CPU and GPU casts agree bit for bit).  Cross-device copies stage through a contiguous
 * buffer of the destination dtype on the source side of the PCIe hop.
 */
#include "copy.h"
#include "../core/nditer.h"

/* ------------------------------------------------------------------ CPU kernels */

typedef struct {
    int ddt, sdt;
} copy_ctx;

static void copy_same_loop(char **p, const int64_t *s, int64_t n, void *vctx)
{
    copy_ctx *c = (copy_ctx *)vctx;
    int isz = so_dtype_itemsize(c->ddt);
    char *d = p[0];
    const char *x = p[1];
    if (s[0] == isz && s[1] == isz) {
        memcpy(d, x, (size_t)(n * isz));
        return;
    }
    switch (isz) {
    case 1: for (int64_t i = 0; i < n; i++) d[i * s[0]] = x[i * s[1]]; break;
    case 2: for (int64_t i = 0; i < n; i++) memcpy(d + i * s[0], x + i * s[1], 2); break;
    case 4: for (int64_t i = 0; i < n; i++) memcpy(d + i * s[0], x + i * s[1], 4); break;
    case 8: for (int64_t i = 0; i < n; i++) memcpy(d + i * s[0], x + i * s[1], 8); break;
    default: /* complex128 */
        for (int64_t i = 0; i < n; i++) memcpy(d + i * s[0], x + i * s[1], 16);
        break;
    }
}

static void copy_convert_loop(char **p, const int64_t *s, int64_t n, void *vctx)
{
    copy_ctx *c = (copy_ctx *)vctx;
    char *d = p[0];
    const char *x = p[1];
    /* the common float32 <-> float64 conversions get a tight loop */
    if (c->ddt == SO_FLOAT32 && c->sdt == SO_FLOAT64) {
        for (int64_t i = 0; i < n; i++) {
            double v;
            float f;
            memcpy(&v, x + i * s[1], 8);
            f = (float)v;
            memcpy(d + i * s[0], &f, 4);
        }
        return;
    }
    if (c->ddt == SO_FLOAT64 && c->sdt == SO_FLOAT32) {
        for (int64_t i = 0; i < n; i++) {
            float f;
            double v;
            memcpy(&f, x + i * s[1], 4);
            v = f;
            memcpy(d + i * s[0], &v, 8);
        }
        return;
    }
    for (int64_t i = 0; i < n; i++) so_convert_elem(d + i * s[0], c->ddt, x + i * s[1], c->sdt);
}

void so_copy_cpu(const so_view *dst, const so_view *src)
{
    so_view ops[2] = {*dst, *src};
    so_nditer it;
    copy_ctx c = {dst->dtype, src->dtype};
    so_nditer_init(&it, 2, ops);
    so_nditer_run(&it, dst->dtype == src->dtype ? copy_same_loop : copy_convert_loop, &c);
}

typedef struct {
    char value[8];
    int isz;
} fill_ctx;

static void fill_loop(char **p, const int64_t *s, int64_t n, void *vctx)
{
    fill_ctx *c = (fill_ctx *)vctx;
    char *d = p[0];
    if (c->isz == 4 && s[0] == 4) {
        uint32_t v;
        uint32_t *o = (uint32_t *)(void *)d;
        memcpy(&v, c->value, 4);
        for (int64_t i = 0; i < n; i++) o[i] = v;
        return;
    }
    if (c->isz == 8 && s[0] == 8) {
        uint64_t v;
        uint64_t *o = (uint64_t *)(void *)d;
        memcpy(&v, c->value, 8);
        for (int64_t i = 0; i < n; i++) o[i] = v;
        return;
    }
    for (int64_t i = 0; i < n; i++) memcpy(d + i * s[0], c->value, (size_t)c->isz);
}

void so_fill_cpu(const so_view *dst, double fvalue, int64_t ivalue)
{
    so_nditer it;
    fill_ctx c;
    c.isz = so_dtype_itemsize(dst->dtype);
    if (so_dtype_is_float(dst->dtype))
        so_store_f64(c.value, dst->dtype, fvalue);
    else
        so_store_i64(c.value, dst->dtype, ivalue);
    so_nditer_init(&it, 1, dst);
    so_nditer_run(&it, fill_loop, &c);
}

#ifndef SHARDOPT_WITH_CUDA
int so_copy_cuda(const so_view *dst, const so_view *src, void *stream)
{
    (void)dst; (void)src; (void)stream;
    return 1;
}
int so_fill_cuda(const so_view *dst, double fvalue, int64_t ivalue, void *stream)
{
    (void)dst; (void)fvalue; (void)ivalue; (void)stream;
    return 1;
}
#endif

/* ------------------------------------------------------------------ dispatch */

static int check_cuda_launch(int err)
{
    if (err) return so_cuda_raise(err, "copy kernel launch", __FILE__, __LINE__);
    return 0;
}

/* Copy a contiguous tensor between devices (same dtype, same shape). */
static int copy_contiguous_across(so_state *st, SoTensor *dst, SoTensor *src)
{
    size_t nbytes = (size_t)(so_tensor_numel(src) * so_dtype_itemsize(src->dtype));
    so_device sd = so_tensor_device(src), dd = so_tensor_device(dst);
    if (sd.type == SO_CUDA && dd.type == SO_CPU) {
        void *stream = so_cuda_stream(st->core.cuda_streams, sd.index);
        if (!stream) return -1;
        return so_cuda_memcpy(so_tensor_data(dst), so_tensor_data(src), nbytes, 1, stream);
    }
    if (sd.type == SO_CPU && dd.type == SO_CUDA) {
        void *stream = so_cuda_stream(st->core.cuda_streams, dd.index);
        if (!stream) return -1;
        return so_cuda_memcpy(so_tensor_data(dst), so_tensor_data(src), nbytes, 0, stream);
    }
    /* cuda:a -> cuda:b: through the host, keeps the code path simple and rare. */
    {
        int rc;
        so_device cpu = {SO_CPU, 0};
        SoTensor *tmp = so_tensor_empty(st, src->ndim, src->shape, src->dtype, cpu);
        if (!tmp) return -1;
        rc = copy_contiguous_across(st, tmp, src);
        if (rc == 0) rc = copy_contiguous_across(st, dst, tmp);
        Py_DECREF(tmp);
        return rc;
    }
}

int so_copy_(so_state *st, SoTensor *dst, SoTensor *src)
{
    so_view dv, sv;
    so_device dd = so_tensor_device(dst), sd = so_tensor_device(src);
    if (so_dtype_is_complex(src->dtype) && !so_dtype_is_complex(dst->dtype)) {
        /* torch warns once per process (TORCH_WARN_ONCE) and keeps the real part */
        static int warned = 0;
        if (!warned) {
            warned = 1;
            if (PyErr_WarnEx(PyExc_UserWarning, "Casting complex values to real discards the "
                             "imaginary part", 1) < 0)
                return -1;
        }
    }
    so_tensor_to_view(dst, &dv);
    so_tensor_to_view(src, &sv);
    if (so_view_broadcast_to(&sv, dv.ndim, dv.shape) < 0) {
        char a[256], b[256];
        return so_fail(PyExc_RuntimeError,
                       "copy_: the source of shape %s cannot be broadcast to the destination of "
                       "shape %s", so_shape_str(src->ndim, src->shape, a, sizeof a),
                       so_shape_str(dst->ndim, dst->shape, b, sizeof b));
    }
    /* meta: writing into a meta tensor changes nothing (there is no data), as in torch;
     * reading a meta tensor into real memory is impossible. */
    if (dd.type == SO_META) return 0;
    if (sd.type == SO_META) return so_meta_copy_out();
    so_tensor_bump_version(dst);
    if (so_view_numel(&dv) == 0) return 0;
    if (so_device_eq(dd, sd)) {
        if (dd.type == SO_CPU) {
            so_copy_cpu(&dv, &sv);
            return 0;
        } else {
            void *stream = so_cuda_stream(st->core.cuda_streams, dd.index);
            if (!stream) return -1;
            return check_cuda_launch(so_copy_cuda(&dv, &sv, stream));
        }
    }
    /* Across devices: make a contiguous, dst-dtype, dst-shaped copy on the source device,
     * move it in one transfer, then scatter it into dst on the destination device. */
    {
        int rc = -1;
        SoTensor *staged_src = NULL, *landed = NULL;
        staged_src = so_tensor_empty(st, dst->ndim, dst->shape, dst->dtype, sd);
        if (!staged_src) goto done;
        if (so_copy_(st, staged_src, src) < 0) goto done;
        if (so_tensor_is_contiguous(dst)) {
            rc = copy_contiguous_across(st, dst, staged_src);
            goto done;
        }
        landed = so_tensor_empty(st, dst->ndim, dst->shape, dst->dtype, dd);
        if (!landed) goto done;
        if (copy_contiguous_across(st, landed, staged_src) < 0) goto done;
        rc = so_copy_(st, dst, landed);
    done:
        Py_XDECREF(staged_src);
        Py_XDECREF(landed);
        return rc;
    }
}

/* A tensor fill value must hold one element (torch's message). */
static int check_fill_value(const SoTensor *vt)
{
    if (so_tensor_numel(vt) == 1) return 0;
    return so_fail(PyExc_RuntimeError,
                   "fill_ only supports 0-dimension value tensor but got tensor with %d "
                   "dimensions and %lld elements", vt->ndim, (long long)so_tensor_numel(vt));
}

/* fill_ on a complex tensor, or with a complex value: write the value into a one-element
 * tensor of t's dtype and broadcast-copy it (the real fill loops carry one 8-byte value). */
static int fill_complex(so_state *st, SoTensor *t, PyObject *value)
{
    so_device cpu = {SO_CPU, 0};
    Py_complex c;
    int rc;
    SoTensor *one;
    if (!so_dtype_is_complex(t->dtype) && so_tensor_check(st, value))
        return so_copy_(st, t, (SoTensor *)value); /* one element; keeps the real part */
    if (!so_dtype_is_complex(t->dtype))
        return so_fail(PyExc_RuntimeError, "value cannot be converted to type %s without "
                       "overflow", so_dtype_is_float(t->dtype) ? "float" : "int");
    if (so_tensor_check(st, value)) {
        SoTensor *vt = (SoTensor *)value;
        if (check_fill_value(vt) < 0) return -1;
        return so_copy_(st, t, vt);
    }
    c = PyComplex_AsCComplex(value);
    if (c.real == -1.0 && PyErr_Occurred()) return -1;
    one = so_tensor_empty(st, 0, NULL, SO_COMPLEX128, cpu);
    if (!one) return -1;
    memcpy(so_tensor_data(one), &c.real, 8);
    memcpy(so_tensor_data(one) + 8, &c.imag, 8);
    rc = so_copy_(st, t, one);
    Py_DECREF(one);
    return rc;
}

int so_fill_(so_state *st, SoTensor *t, PyObject *value)
{
    double fv = 0.0;
    int64_t iv = 0;
    so_view v;
    if (so_dtype_is_complex(t->dtype) || PyComplex_Check(value) ||
        (so_tensor_check(st, value) && so_dtype_is_complex(((SoTensor *)value)->dtype)))
        return fill_complex(st, t, value);
    if (so_tensor_check(st, value)) {
        SoTensor *vt = (SoTensor *)value;
        if (check_fill_value(vt) < 0) return -1;
        if (so_tensor_device(vt).type == SO_META) {
            /* a meta value only fills a meta tensor (with nothing) */
            if (so_tensor_device(t).type == SO_META) return 0;
            return so_meta_copy_out();
        } else if (so_tensor_device(vt).type != SO_CPU) {
            SoTensor *host;
            so_device cpu = {SO_CPU, 0};
            host = so_tensor_convert(st, vt, vt->dtype, cpu);
            if (!host) return -1;
            fv = so_load_as_f64(so_tensor_data(host), host->dtype);
            iv = so_load_as_i64(so_tensor_data(host), host->dtype);
            Py_DECREF(host);
        } else {
            fv = so_load_as_f64(so_tensor_data(vt), vt->dtype);
            iv = so_load_as_i64(so_tensor_data(vt), vt->dtype);
        }
    } else if (PyBool_Check(value)) {
        iv = value == Py_True;
        fv = (double)iv;
    } else if (PyLong_Check(value)) {
        int overflow = 0;
        iv = PyLong_AsLongLongAndOverflow(value, &overflow);
        if (overflow)
            return so_fail(PyExc_OverflowError,
                           "value %R cannot be converted to %s without overflow",
                           value, "a 64-bit integer");
        if (iv == -1 && PyErr_Occurred()) return -1;
        fv = (double)iv;
    } else if (PyFloat_Check(value) || PyNumber_Check(value)) {
        fv = PyFloat_AsDouble(value);
        if (fv == -1.0 && PyErr_Occurred()) return -1;
        if (!so_dtype_is_float(t->dtype)) {
            if (t->dtype == SO_BOOL) {
                iv = fv != 0.0;
            } else {
                if (!(fv > -9.3e18 && fv < 9.3e18))
                    return so_fail(PyExc_RuntimeError, "value cannot be converted to type %s "
                                   "without overflow", t->dtype == SO_INT32 ? "int32" : "int64");
                iv = (int64_t)fv;
            }
        }
    } else {
        return so_fail(PyExc_TypeError,
                       "fill value must be a number or a one-element tensor, got %s",
                       Py_TYPE(value)->tp_name);
    }
    if (so_tensor_device(t).type == SO_META) return 0; /* nothing to fill */
    so_tensor_bump_version(t);
    so_tensor_to_view(t, &v);
    if (so_view_numel(&v) == 0) return 0;
    if (v.device.type == SO_CPU) {
        so_fill_cpu(&v, fv, iv);
        return 0;
    } else {
        void *stream = so_cuda_stream(st->core.cuda_streams, v.device.index);
        if (!stream) return -1;
        return check_cuda_launch(so_fill_cuda(&v, fv, iv, stream));
    }
}

SoTensor *so_tensor_convert(so_state *st, SoTensor *t, int dtype, so_device dev)
{
    SoTensor *out = so_tensor_empty(st, t->ndim, t->shape, dtype, dev);
    if (!out) return NULL;
    if (so_copy_(st, out, t) < 0) {
        Py_DECREF(out);
        return NULL;
    }
    return out;
}

SoTensor *so_tensor_clone(so_state *st, SoTensor *t)
{
    return so_tensor_convert(st, t, t->dtype, so_tensor_device(t));
}
