/* elementwise.c — the one place where elementwise ops are prepared and dispatched:
 * operand parsing, torch's dtype promotion, broadcasting, device checks, output allocation
 * or validation (in-place / out=), overlap handling, then the CPU or CUDA kernel.
 * Kernels: elementwise_cpu.c and elementwise.cu; Python bindings: elementwise_py.c.
 */
#include "elementwise.h"
#include "../tensor/copy.h"
#include "../core/nditer.h"

/* ------------------------------------------------------------------ dtype rules */

int so_promote_types(int a, int b)
{
    if (a < 0) return b;
    if (b < 0 || a == b) return a;
    if (a == SO_BOOL) return b;
    if (b == SO_BOOL) return a;
    if (!so_dtype_is_float(a) && !so_dtype_is_float(b)) return SO_INT64; /* int32 + int64 */
    if (!so_dtype_is_float(a)) return b;
    if (!so_dtype_is_float(b)) return a;
    if (a == SO_FLOAT64 || b == SO_FLOAT64) return SO_FLOAT64;
    return SO_FLOAT32; /* float32 with a half type, or float16 with bfloat16 */
}

int so_can_cast(int from, int to)
{
    if (so_dtype_is_float(from) && !so_dtype_is_float(to)) return 0;
    if (from != SO_BOOL && to == SO_BOOL) return 0;
    return 1;
}

const char *so_dtype_torch_name(int dt)
{
    switch (dt) {
    case SO_FLOAT32: return "Float";
    case SO_FLOAT64: return "Double";
    case SO_FLOAT16: return "Half";
    case SO_BFLOAT16: return "BFloat16";
    case SO_INT32: return "Int";
    case SO_INT64: return "Long";
    case SO_BOOL: return "Bool";
    default: return "Undefined";
    }
}

int so_ew_compute_type(int dtype)
{
    if (dtype == SO_FLOAT64) return SO_FLOAT64;
    if (so_dtype_is_float(dtype)) return SO_FLOAT32;
    return SO_INT64;
}

/* torch's combine_categories: a higher-priority group keeps its dtype unless the lower one
 * is of a higher category (bool < int < float). */
static int combine_categories(int higher, int lower)
{
    if (higher >= 0 && so_dtype_is_float(higher)) return higher;
    if (higher == SO_BOOL || (lower >= 0 && so_dtype_is_float(lower)))
        return so_promote_types(higher, lower);
    return higher >= 0 ? higher : lower;
}

int so_ew_result_type(const so_ew_arg *args, int n)
{
    int dim = -1, zero = -1, wrapped = -1;
    for (int k = 0; k < n; k++) {
        const so_ew_arg *a = &args[k];
        if (!a->t) /* a Python float counts as the default dtype, like torch */
            wrapped = so_promote_types(wrapped, a->dtype == SO_FLOAT64 ? SO_FLOAT32 : a->dtype);
        else if (a->t->ndim > 0)
            dim = so_promote_types(dim, a->dtype);
        else
            zero = so_promote_types(zero, a->dtype);
    }
    return combine_categories(dim, combine_categories(zero, wrapped));
}

/* ------------------------------------------------------------------ operands */

int so_ew_parse_arg(so_state *st, PyObject *obj, so_ew_arg *out)
{
    memset(out, 0, sizeof *out);
    out->obj = obj;
    if (so_tensor_check(st, obj)) {
        out->t = (SoTensor *)obj;
        out->dtype = out->t->dtype;
        return 0;
    }
    if (PyBool_Check(obj)) {
        out->dtype = SO_BOOL;
        out->i = obj == Py_True;
        out->f = (double)out->i;
        return 0;
    }
    if (PyFloat_Check(obj)) {
        out->dtype = SO_FLOAT64;
        out->f = PyFloat_AS_DOUBLE(obj);
        out->i = (out->f > -9.2e18 && out->f < 9.2e18) ? (int64_t)out->f : 0;
        return 0;
    }
    /* ints, and number-like objects that are not containers (NumPy scalars) */
    if (PyLong_Check(obj) || (!PySequence_Check(obj) && Py_TYPE(obj)->tp_as_number &&
                              Py_TYPE(obj)->tp_as_number->nb_index)) {
        int overflow = 0;
        PyObject *idx = PyNumber_Index(obj);
        if (!idx) return -1;
        out->i = PyLong_AsLongLongAndOverflow(idx, &overflow);
        Py_DECREF(idx);
        if (overflow)
            return so_fail(PyExc_RuntimeError, "Overflow when unpacking long");
        if (out->i == -1 && PyErr_Occurred()) return -1;
        out->dtype = SO_INT64;
        out->f = (double)out->i;
        return 0;
    }
    if (!PySequence_Check(obj) && Py_TYPE(obj)->tp_as_number &&
        Py_TYPE(obj)->tp_as_number->nb_float) {
        out->f = PyFloat_AsDouble(obj);
        if (out->f == -1.0 && PyErr_Occurred()) return -1;
        out->dtype = SO_FLOAT64;
        out->i = (out->f > -9.2e18 && out->f < 9.2e18) ? (int64_t)out->f : 0;
        return 0;
    }
    return 1;
}

int so_ew_type_error(const char *fname, const char *argname, PyObject *obj)
{
    return so_fail(PyExc_TypeError, "%s(): argument '%s' must be Tensor or a number, not %s", fname,
                   argname, Py_TYPE(obj)->tp_name);
}

static const char *device_str(so_device d, char *buf, size_t n)
{
    if (d.type == SO_CUDA) snprintf(buf, n, "cuda:%d", (int)d.index);
    else snprintf(buf, n, "%s", so_device_type_name(d.type));
    return buf;
}

/* 0-d CPU tensors may join CUDA ones (read as host scalars), as in torch. */
static int is_cpu_scalar_tensor(const so_ew_arg *a)
{
    return a->t && a->t->ndim == 0 && so_tensor_device(a->t).type == SO_CPU;
}

static int common_device(const so_ew_arg *args, int n, so_device *dev)
{
    int found = 0;
    so_device d = {SO_CPU, 0};
    for (int k = 0; k < n && !found; k++)
        if (args[k].t && !is_cpu_scalar_tensor(&args[k])) {
            d = so_tensor_device(args[k].t);
            found = 1;
        }
    for (int k = 0; k < n; k++) {
        so_device o;
        if (!args[k].t) continue;
        o = so_tensor_device(args[k].t);
        if (so_device_eq(o, d) || (is_cpu_scalar_tensor(&args[k]) && d.type == SO_CUDA)) continue;
        {
            char b1[32], b2[32];
            so_device first = d.type == SO_CUDA ? d : o, second = d.type == SO_CUDA ? o : d;
            return so_fail(PyExc_RuntimeError,
                           "Expected all tensors to be on the same device, but found at least two "
                           "devices, %s and %s!", device_str(first, b1, sizeof b1),
                           device_str(second, b2, sizeof b2));
        }
    }
    *dev = d;
    return 0;
}

static int broadcast_shapes(const char *fname, const so_ew_arg *args, int n, int *ndim_out,
                            int64_t *shape)
{
    int nd = 0;
    for (int k = 0; k < n; k++) {
        const SoTensor *t = args[k].t;
        int64_t merged[SO_MAX_DIMS];
        int mnd;
        if (!t) continue;
        mnd = t->ndim > nd ? t->ndim : nd;
        for (int d = 0; d < mnd; d++) {
            int da = d - (mnd - nd), db = d - (mnd - t->ndim);
            int64_t sa = da >= 0 ? shape[da] : 1, sb = db >= 0 ? t->shape[db] : 1;
            if (sa != sb && sa != 1 && sb != 1) {
                char b1[256], b2[256];
                return so_fail(PyExc_RuntimeError,
                               "%s(): the size of tensor a (%lld) must match the size of tensor b "
                               "(%lld) at non-singleton dimension %d; shapes %s and %s cannot be "
                               "broadcast together", fname, (long long)sa, (long long)sb, d,
                               so_shape_str(nd, shape, b1, sizeof b1),
                               so_shape_str(t->ndim, t->shape, b2, sizeof b2));
            }
            merged[d] = sa == 1 ? sb : sa;
        }
        memcpy(shape, merged, sizeof(int64_t) * (size_t)mnd);
        nd = mnd;
    }
    *ndim_out = nd;
    return 0;
}

/* Byte range [lo, hi) touched by a view (empty views touch nothing). */
static void view_extent(const so_view *v, char **lo, char **hi)
{
    int64_t isz = so_dtype_itemsize(v->dtype), a = 0, b = 0;
    for (int d = 0; d < v->ndim; d++) {
        if (v->shape[d] == 0) { *lo = *hi = v->data; return; }
        if (v->strides[d] < 0) a += (v->shape[d] - 1) * v->strides[d];
        else b += (v->shape[d] - 1) * v->strides[d];
    }
    *lo = v->data + a * isz;
    *hi = v->data + (b + 1) * isz;
}

/* Does reading `in` while writing `out` element by element risk reading a value already
 * overwritten?  Not when they are the very same elements (a.add_(a)) or disjoint. */
static int needs_copy(const SoTensor *out_t, const so_view *out, const SoTensor *in_t,
                      const so_view *in)
{
    char *ol, *oh, *il, *ih;
    int same = 1;
    if (in_t->storage != out_t->storage) return 0;
    view_extent(out, &ol, &oh);
    view_extent(in, &il, &ih);
    if (ol >= oh || il >= ih || oh <= il || ih <= ol) return 0;
    if (in->data != out->data || in->dtype != out->dtype) same = 0;
    for (int d = 0; d < out->ndim && same; d++)
        if (out->shape[d] > 1 && in->strides[d] != out->strides[d]) same = 0;
    return !same;
}

/* ------------------------------------------------------------------ dispatch */

#ifndef SHARDOPT_WITH_CUDA
int so_ew_run_cuda(const so_ew_call *c, void *stream)
{
    (void)c;
    (void)stream;
    return 1; /* unreachable: CUDA tensors cannot exist in a CPU-only build */
}
#endif

static int run_on_device(so_state *st, so_ew_call *c, so_device dev)
{
    if (dev.type == SO_META) return 0; /* meta: the output's shape and dtype are the result */
    if (dev.type == SO_CPU) {
        so_ew_run_cpu(c);
        if (c->p.err)
            return so_fail(PyExc_RuntimeError, "ZeroDivisionError");
        return 0;
    } else {
        int cur = 0, rc;
        void *stream;
        if (so_cuda_get_device(&cur) < 0) return -1;
        if (cur != dev.index && so_cuda_set_device(dev.index) < 0) return -1;
        stream = so_cuda_stream(st->core.cuda_streams, dev.index);
        rc = stream ? so_ew_run_cuda(c, stream) : -1;
        if (cur != dev.index) so_cuda_set_device(cur);
        if (rc > 0) return so_cuda_raise(rc, "elementwise kernel launch", __FILE__, __LINE__);
        return rc;
    }
}

PyObject *so_ew_exec(so_state *st, const char *fname, int op, so_ew_arg *args, int nin,
                     int common, int result_dtype, SoTensor *out, const so_ew_params *p)
{
    so_device dev;
    int ndim;
    int64_t shape[SO_MAX_DIMS];
    SoTensor *res = NULL, *copies[SO_EW_MAX_IN] = {NULL, NULL, NULL};
    so_ew_call c;
    char b1[256], b2[256];

    /* the kernels are real-only; complex operands are composed in Python before this */
    for (int k = 0; k < nin; k++)
        if (args[k].t && so_check_not_complex(args[k].t, fname) < 0) return NULL;
    if (out && so_check_not_complex(out, fname) < 0) return NULL;
    if (common_device(args, nin, &dev) < 0) return NULL;
    if (broadcast_shapes(fname, args, nin, &ndim, shape) < 0) return NULL;
    memset(&c, 0, sizeof c);
    c.op = op;
    c.ct = so_ew_compute_type(common);
    c.nin = nin;
    if (p) c.p = *p;
    c.p.err = 0;

    if (out) {
        int same = out->ndim == ndim;
        for (int d = 0; d < ndim && same; d++) same = out->shape[d] == shape[d];
        if (!same)
            return PyErr_Format(PyExc_RuntimeError,
                                "output with shape %s doesn't match the broadcast shape %s",
                                so_shape_str(out->ndim, out->shape, b1, sizeof b1),
                                so_shape_str(ndim, shape, b2, sizeof b2));
        if (!so_device_eq(so_tensor_device(out), dev))
            return PyErr_Format(PyExc_RuntimeError,
                                "Expected out tensor to have device %s, but got %s instead",
                                device_str(dev, b1, sizeof b1),
                                device_str(so_tensor_device(out), b2, sizeof b2));
        if (!so_can_cast(result_dtype, out->dtype))
            return PyErr_Format(PyExc_RuntimeError,
                                "result type %s can't be cast to the desired output type %s",
                                so_dtype_torch_name(result_dtype), so_dtype_torch_name(out->dtype));
        for (int d = 0; d < out->ndim && so_tensor_numel(out) > 0; d++)
            if (out->shape[d] > 1 && out->strides[d] == 0)
                return PyErr_Format(PyExc_RuntimeError,
                                    "unsupported operation: more than one element of the "
                                    "written-to tensor refers to a single memory location. Please "
                                    "clone() the tensor before performing the operation.");
        res = (SoTensor *)Py_NewRef((PyObject *)out);
    } else {
        res = so_tensor_empty(st, ndim, shape, result_dtype, dev);
        if (!res) return NULL;
    }
    so_tensor_to_view(res, &c.out);

    for (int k = 0; k < nin; k++) {
        so_ew_arg *a = &args[k];
        so_view *v = &c.in[k];
        if (a->t && !(dev.type == SO_CUDA && is_cpu_scalar_tensor(a))) {
            so_tensor_to_view(a->t, v);
            so_view_broadcast_to(v, ndim, shape); /* cannot fail: shapes checked above */
            if (out && needs_copy(out, &c.out, a->t, v)) {
                copies[k] = so_tensor_clone(st, a->t);
                if (!copies[k]) goto done;
                so_tensor_to_view(copies[k], v);
                so_view_broadcast_to(v, ndim, shape);
            }
            continue;
        }
        /* a host value: a number, or a 0-d CPU tensor joining CUDA tensors */
        memset(v, 0, sizeof *v);
        v->ndim = 0;
        v->device = dev;
        c.is_scalar[k] = 1;
        if (a->t) {
            const char *src = so_tensor_data(a->t);
            v->dtype = a->t->dtype;
            c.scalar_f[k] = so_load_as_f64(src, v->dtype);
            c.scalar_i[k] = so_load_as_i64(src, v->dtype);
        } else {
            v->dtype = a->dtype;
            c.scalar_f[k] = a->f;
            c.scalar_i[k] = a->i;
        }
        if (so_dtype_is_float(v->dtype)) so_store_f64(c.scalar_bits[k], v->dtype, c.scalar_f[k]);
        else so_store_i64(c.scalar_bits[k], v->dtype, c.scalar_i[k]);
        v->data = c.scalar_bits[k];
        so_view_broadcast_to(v, ndim, shape);
    }

    if (out) so_tensor_bump_version(out);
    if (so_view_numel(&c.out) > 0 && run_on_device(st, &c, dev) < 0) goto done;
    for (int k = 0; k < nin; k++) Py_XDECREF(copies[k]);
    return (PyObject *)res;

done:
    for (int k = 0; k < nin; k++) Py_XDECREF(copies[k]);
    Py_XDECREF(res);
    return NULL;
}

/* ------------------------------------------------------------------ C API */

PyObject *so_ew_unary(so_state *st, int op, PyObject *x, SoTensor *out, const so_ew_params *p)
{
    so_ew_arg a;
    int common;
    int rc = so_ew_parse_arg(st, x, &a);
    if (rc) return rc > 0 ? (so_ew_type_error("unary", "input", x), NULL) : NULL;
    common = so_ew_result_type(&a, 1);
    if (!so_dtype_is_float(common) && op != SO_EW_NEG && op != SO_EW_ABS && op != SO_EW_SIGN &&
        op != SO_EW_RELU && op != SO_EW_CLAMP_S && op != SO_EW_SQUARE && op != SO_EW_FLOOR &&
        op != SO_EW_CEIL && op != SO_EW_ROUND && op != SO_EW_TRUNC)
        common = SO_FLOAT32;
    return so_ew_exec(st, "unary", op, &a, 1, common, common, out, p);
}

PyObject *so_ew_binary(so_state *st, int op, PyObject *x, PyObject *y, SoTensor *out,
                       const so_ew_params *p)
{
    so_ew_arg a[2];
    int common, rc;
    if ((rc = so_ew_parse_arg(st, x, &a[0])) != 0)
        return rc > 0 ? (so_ew_type_error("binary", "input", x), NULL) : NULL;
    if ((rc = so_ew_parse_arg(st, y, &a[1])) != 0)
        return rc > 0 ? (so_ew_type_error("binary", "other", y), NULL) : NULL;
    common = so_ew_result_type(a, 2);
    if (!so_dtype_is_float(common) &&
        (op == SO_EW_DIV || op == SO_EW_LERP_S || op == SO_EW_GELU_BACKWARD ||
         op == SO_EW_GELU_TANH_BACKWARD))
        common = SO_FLOAT32;
    return so_ew_exec(st, "binary", op, a, 2, common, SO_EW_IS_COMPARE(op) ? SO_BOOL : common, out,
                      p);
}
