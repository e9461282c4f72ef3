/* reduce.c — sum / mean / max / min / norm: argument checks (torch's messages), output
 * dtype and shape rules, the reduction plan, and the one place that picks the CPU or CUDA
 * kernel.  The kernels are reduce_cpu.c and reduce.cu; their shared math is reduce.h.
 *
 * Inputs are never copied: the plan carries the input's own strides (any view works).
 */
#include "reduce.h"
#include "../tensor/tensor.h"
#include "../tensor/views.h"
#include "../tensor/copy.h"
#include <stdio.h>

#ifndef SHARDOPT_WITH_CUDA
int so_reduce_cuda(const so_reduce_plan *pl, void *stream, int device_index)
{
    (void)pl; (void)stream; (void)device_index;
    return 1;
}
#endif

/* torch's ScalarType names, used in its error messages. */
static const char *scalar_name(int dt)
{
    static const char *names[SO_NUM_DTYPES] = {"Float", "Double", "Half", "BFloat16",
                                               "Int", "Long", "Bool"};
    return dt >= 0 && dt < SO_NUM_DTYPES ? names[dt] : "?";
}

static int check_input(so_state *st, PyObject *obj, const char *fname)
{
    if (so_tensor_check(st, obj)) return 0;
    return so_fail(PyExc_TypeError, "%s(): argument 'input' (position 1) must be Tensor, not %s",
                   fname, Py_TYPE(obj)->tp_name);
}

/* dim: None (all), int, or tuple/list of ints (empty = all).  Fills mask[ndim]. */
static int parse_dims(PyObject *dim, int ndim, unsigned char *mask, int *single)
{
    int n = ndim > 0 ? ndim : 1;
    memset(mask, 0, SO_MAX_DIMS);
    *single = 0;
    if (dim == NULL || dim == Py_None) {
        memset(mask, 1, (size_t)n);
        return 0;
    }
    if (PyLong_Check(dim) && !PyBool_Check(dim)) {
        int64_t d, w;
        d = PyLong_AsLongLong(dim);
        if (d == -1 && PyErr_Occurred()) return -1;
        if (so_wrap_dim(d, ndim, &w) < 0) return -1;
        mask[w] = 1;
        *single = 1;
        return 0;
    }
    if (PyTuple_Check(dim) || PyList_Check(dim)) {
        Py_ssize_t k = PySequence_Size(dim);
        if (k == 0) {
            memset(mask, 1, (size_t)n);
            return 0;
        }
        for (Py_ssize_t i = 0; i < k; i++) {
            PyObject *item = PySequence_GetItem(dim, i);
            int64_t d, w;
            if (!item) return -1;
            if (!PyLong_Check(item) || PyBool_Check(item)) {
                int rc = so_fail(PyExc_TypeError, "dim must be an int or a tuple of ints, got an "
                                 "element of type %s", Py_TYPE(item)->tp_name);
                Py_DECREF(item);
                return rc;
            }
            d = PyLong_AsLongLong(item);
            Py_DECREF(item);
            if (d == -1 && PyErr_Occurred()) return -1;
            if (so_wrap_dim(d, ndim, &w) < 0) return -1;
            if (mask[w])
                return so_fail(PyExc_RuntimeError, "dim %lld appears multiple times in the list "
                               "of dims", (long long)w);
            mask[w] = 1;
        }
        return 0;
    }
    return so_fail(PyExc_TypeError, "dim must be None, an int or a tuple of ints, got %s",
                   Py_TYPE(dim)->tp_name);
}

/* Output shape: reduced dims dropped, or kept as 1 with keepdim. */
static int out_shape(const SoTensor *t, const unsigned char *mask, int keepdim, int64_t *shape)
{
    int nd = 0;
    for (int d = 0; d < t->ndim; d++) {
        if (!mask[d]) shape[nd++] = t->shape[d];
        else if (keepdim) shape[nd++] = 1;
    }
    return nd;
}

/* Sort dims (shape, stride pairs) by decreasing |stride| so the innermost walk is the
 * tightest (insertion sort, stable, ndim <= 16). */
static void sort_by_stride(int n, int64_t *shape, int64_t *strides)
{
    for (int i = 1; i < n; i++) {
        int64_t sh = shape[i], s = strides[i], as = s < 0 ? -s : s;
        int j = i - 1;
        while (j >= 0 && (strides[j] < 0 ? -strides[j] : strides[j]) < as) {
            shape[j + 1] = shape[j];
            strides[j + 1] = strides[j];
            j--;
        }
        shape[j + 1] = sh;
        strides[j + 1] = s;
    }
}

/* Merge adjacent dims that step as one run (outer stride == inner stride * inner size). */
static int coalesce(int n, int64_t *shape, int64_t *strides)
{
    int out = 0;
    if (n == 0) return 0;
    for (int d = 1; d < n; d++) {
        if (strides[out] == strides[d] * shape[d]) {
            shape[out] *= shape[d];
            strides[out] = strides[d];
        } else {
            out++;
            shape[out] = shape[d];
            strides[out] = strides[d];
        }
    }
    return out + 1;
}

static void build_plan(const SoTensor *t, const unsigned char *mask, int reorder,
                       so_reduce_plan *pl)
{
    pl->n_keep = pl->n_red = 0;
    pl->out_numel = pl->red_numel = 1;
    for (int d = 0; d < t->ndim; d++) {
        if (mask[d]) {
            pl->red_numel *= t->shape[d];
            if (t->shape[d] == 1) continue;
            pl->red_shape[pl->n_red] = t->shape[d];
            pl->red_strides[pl->n_red++] = t->strides[d];
        } else {
            pl->out_numel *= t->shape[d];
            if (t->shape[d] == 1) continue;
            pl->keep_shape[pl->n_keep] = t->shape[d];
            pl->keep_strides[pl->n_keep++] = t->strides[d];
        }
    }
    if (reorder) sort_by_stride(pl->n_red, pl->red_shape, pl->red_strides);
    pl->n_red = coalesce(pl->n_red, pl->red_shape, pl->red_strides);
    pl->n_keep = coalesce(pl->n_keep, pl->keep_shape, pl->keep_strides);
}

static int run_plan(so_state *st, so_reduce_plan *pl, so_device dev)
{
    int err;
    void *stream;
    if (pl->out_numel == 0) return 0;
    if (dev.type == SO_META) return 0; /* meta: the output's geometry is the whole result */
    if (dev.type == SO_CPU) {
        if (so_reduce_cpu(pl) < 0) {
            PyErr_NoMemory();
            return -1;
        }
        return 0;
    }
    stream = so_cuda_stream(st->core.cuda_streams, dev.index);
    if (!stream) return -1;
    err = so_reduce_cuda(pl, stream, dev.index);
    if (err) return so_cuda_raise(err, "reduction kernel launch", __FILE__, __LINE__);
    return 0;
}

/* The common driver: reduce `t` over `mask` into a new tensor of out_dtype.  With
 * want_indices, *idx_out receives the int64 index tensor (max/min with a dim). */
static SoTensor *reduce_into_new(so_state *st, SoTensor *t, const unsigned char *mask,
                                 int keepdim, int op, double p, int out_dtype, int int_acc,
                                 SoTensor **idx_out)
{
    int64_t shape[SO_MAX_DIMS];
    int nd = out_shape(t, mask, keepdim, shape);
    so_device dev = so_tensor_device(t);
    so_reduce_plan pl;
    SoTensor *out = so_tensor_empty(st, nd, shape, out_dtype, dev), *idx = NULL;
    if (!out) return NULL;
    if (idx_out) {
        idx = so_tensor_empty(st, nd, shape, SO_INT64, dev);
        if (!idx) goto done;
    }
    memset(&pl, 0, sizeof pl);
    pl.in = so_tensor_data(t);
    pl.in_dtype = t->dtype;
    pl.out = so_tensor_data(out);
    pl.out_dtype = out_dtype;
    pl.indices = idx ? (int64_t *)(void *)so_tensor_data(idx) : NULL;
    pl.op = op;
    pl.int_acc = int_acc;
    pl.p = p;
    build_plan(t, mask, !so_red_is_extreme(op), &pl);
    if (run_plan(st, &pl, dev) < 0) goto done;
    if (idx_out) *idx_out = idx;
    return out;
done:
    Py_XDECREF(idx);
    Py_DECREF(out);
    return NULL;
}

/* ------------------------------------------------------------------ bindings */

/* sum / mean of a complex tensor: the same reduction over its view_as_real (the trailing
 * (re, im) dimension kept), seen as complex again.  A real input with a complex dtype= is
 * converted first, as torch does. */
static PyObject *sum_or_mean_complex(so_state *st, SoTensor *t, PyObject *dim, int keepdim,
                                     int op, int out_dtype)
{
    unsigned char mask[SO_MAX_DIMS];
    int single;
    PyObject *src = NULL, *rv = NULL, *res = NULL;
    SoTensor *r;
    if (so_tensor_device(t).type == SO_CUDA) /* cpu, or meta (geometry only) */
        return PyErr_Format(PyExc_RuntimeError, "complex tensors are supported on the CPU only");
    if (parse_dims(dim, t->ndim, mask, &single) < 0) return NULL;
    if (t->ndim == 0) memset(mask, 0, SO_MAX_DIMS); /* a 0-d sum is the value itself */
    src = (PyObject *)(t->dtype == out_dtype ? (SoTensor *)Py_NewRef(t)
                                             : so_tensor_convert(st, t, out_dtype,
                                                                 so_tensor_device(t)));
    if (!src) return NULL;
    rv = so_view_as_real_st(st, src);
    if (!rv) goto done;
    r = reduce_into_new(st, (SoTensor *)rv, mask, keepdim, op, 0.0, ((SoTensor *)rv)->dtype, 0,
                        NULL);
    if (!r) goto done;
    res = so_view_as_complex_st(st, (PyObject *)r);
    Py_DECREF(r);
done:
    Py_XDECREF(src);
    Py_XDECREF(rv);
    return res;
}

/* _C._sum(input, dim=None, keepdim=False, dtype=None) and _C._mean(...) */
static PyObject *sum_or_mean(PyObject *m, PyObject *args, PyObject *kwds, int op)
{
    static char *kwlist[] = {"input", "dim", "keepdim", "dtype", NULL};
    const char *fname = op == SO_RED_SUM ? "sum" : "mean";
    so_state *st = so_state_from_module(m);
    PyObject *in, *dim = Py_None, *dtype_obj = Py_None;
    int keepdim = 0, single, out_dtype;
    unsigned char mask[SO_MAX_DIMS];
    SoTensor *t;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, op == SO_RED_SUM ? "O|OpO:sum" : "O|OpO:mean",
                                     kwlist, &in, &dim, &keepdim, &dtype_obj))
        return NULL;
    if (check_input(st, in, fname) < 0) return NULL;
    t = (SoTensor *)in;
    if (dtype_obj != Py_None) {
        if (so_parse_dtype(st, dtype_obj, SO_FLOAT32, "dtype", &out_dtype) < 0) return NULL;
        if (so_dtype_is_complex(out_dtype))
            return sum_or_mean_complex(st, t, dim, keepdim, op, out_dtype);
        if (op == SO_RED_MEAN && !so_dtype_is_float(out_dtype))
            return PyErr_Format(PyExc_RuntimeError,
                                "mean(): could not infer output dtype. Optional dtype must be "
                                "either a floating point or complex dtype. Got: %s",
                                scalar_name(out_dtype));
        if (so_dtype_is_complex(t->dtype)) {
            /* a real dtype= casts first (keeping the real part, with the cast's warning) */
            PyObject *res = NULL;
            SoTensor *c = so_tensor_convert(st, t, out_dtype, so_tensor_device(t));
            if (!c) return NULL;
            if (parse_dims(dim, c->ndim, mask, &single) == 0)
                res = (PyObject *)reduce_into_new(st, c, mask, keepdim, op, 0.0, out_dtype,
                                                  !so_dtype_is_float(out_dtype), NULL);
            Py_DECREF(c);
            return res;
        }
    } else if (so_dtype_is_complex(t->dtype)) {
        return sum_or_mean_complex(st, t, dim, keepdim, op, t->dtype);
    } else if (op == SO_RED_MEAN) {
        if (!so_dtype_is_float(t->dtype))
            return PyErr_Format(PyExc_RuntimeError,
                                "mean(): could not infer output dtype. Input dtype must be either "
                                "a floating point or complex dtype. Got: %s",
                                scalar_name(t->dtype));
        out_dtype = t->dtype;
    } else {
        out_dtype = so_dtype_is_float(t->dtype) ? t->dtype : SO_INT64;
    }
    if (parse_dims(dim, t->ndim, mask, &single) < 0) return NULL;
    return (PyObject *)reduce_into_new(st, t, mask, keepdim, op, 0.0, out_dtype,
                                       !so_dtype_is_float(out_dtype), NULL);
}

static PyObject *py_sum(PyObject *m, PyObject *args, PyObject *kwds)
{
    return sum_or_mean(m, args, kwds, SO_RED_SUM);
}

static PyObject *py_mean(PyObject *m, PyObject *args, PyObject *kwds)
{
    return sum_or_mean(m, args, kwds, SO_RED_MEAN);
}

/* _C._max(input, dim=None, keepdim=False) -> tensor, or (values, indices) with a dim. */
static PyObject *max_or_min(PyObject *m, PyObject *args, PyObject *kwds, int op)
{
    static char *kwlist[] = {"input", "dim", "keepdim", NULL};
    const char *fname = op == SO_RED_MAX ? "max" : "min";
    so_state *st = so_state_from_module(m);
    PyObject *in, *dim = Py_None;
    int keepdim = 0, single;
    int64_t d = 0;
    unsigned char mask[SO_MAX_DIMS];
    SoTensor *t, *vals, *idx = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, op == SO_RED_MAX ? "O|Op:max" : "O|Op:min",
                                     kwlist, &in, &dim, &keepdim))
        return NULL;
    if (check_input(st, in, fname) < 0) return NULL;
    t = (SoTensor *)in;
    if (so_check_not_complex(t, fname) < 0) return NULL;
    if (dim == Py_None) {
        if (so_tensor_numel(t) == 0)
            return PyErr_Format(PyExc_RuntimeError,
                                "%s(): Expected reduction dim to be specified for input.numel() "
                                "== 0. Specify the reduction dim with the 'dim' argument.", fname);
        if (parse_dims(Py_None, t->ndim, mask, &single) < 0) return NULL;
        return (PyObject *)reduce_into_new(st, t, mask, 0, op, 0.0, t->dtype,
                                           !so_dtype_is_float(t->dtype), NULL);
    }
    if (!PyLong_Check(dim) || PyBool_Check(dim))
        return PyErr_Format(PyExc_TypeError, "%s(): argument 'dim' must be int, not %s", fname,
                            Py_TYPE(dim)->tp_name);
    if (parse_dims(dim, t->ndim, mask, &single) < 0) return NULL;
    for (int i = 0; i < t->ndim; i++)
        if (mask[i]) d = i;
    if (t->ndim > 0 && t->shape[d] == 0)
        return PyErr_Format(PyExc_IndexError,
                            "%s(): Expected reduction dim %lld to have non-zero size.",
                            fname, (long long)d);
    vals = reduce_into_new(st, t, mask, keepdim, op, 0.0, t->dtype, !so_dtype_is_float(t->dtype),
                           &idx);
    if (!vals) return NULL;
    return Py_BuildValue("(NN)", vals, idx);
}

static PyObject *py_max(PyObject *m, PyObject *args, PyObject *kwds)
{
    return max_or_min(m, args, kwds, SO_RED_MAX);
}

static PyObject *py_min(PyObject *m, PyObject *args, PyObject *kwds)
{
    return max_or_min(m, args, kwds, SO_RED_MIN);
}

/* _C._norm(input, p=2.0, dim=None, keepdim=False, dtype=None): vector p-norm. */
static PyObject *py_norm(PyObject *m, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"input", "p", "dim", "keepdim", "dtype", NULL};
    so_state *st = so_state_from_module(m);
    PyObject *in, *dim = Py_None, *dtype_obj = Py_None;
    double p = 2.0;
    int keepdim = 0, single, out_dtype, op;
    unsigned char mask[SO_MAX_DIMS];
    SoTensor *t;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|dOpO:norm", kwlist, &in, &p, &dim, &keepdim,
                                     &dtype_obj))
        return NULL;
    if (check_input(st, in, "norm") < 0) return NULL;
    t = (SoTensor *)in;
    if (so_check_not_complex(t, "norm") < 0) return NULL;
    if (!so_dtype_is_float(t->dtype))
        return PyErr_Format(PyExc_RuntimeError,
                            "norm(): input dtype should be either floating point or complex. Got "
                            "%s instead.", scalar_name(t->dtype));
    if (so_parse_dtype(st, dtype_obj, t->dtype, "dtype", &out_dtype) < 0) return NULL;
    if (!so_dtype_is_float(out_dtype))
        return PyErr_Format(PyExc_RuntimeError, "norm(): the desired output dtype should be either "
                            "floating point or complex. Got %s instead.", scalar_name(out_dtype));
    if (parse_dims(dim, t->ndim, mask, &single) < 0) return NULL;
    if (p == 2.0) op = SO_RED_NORM2;
    else if (p == 1.0) op = SO_RED_NORM1;
    else if (p == 0.0) op = SO_RED_NORM0;
    else if (isinf(p)) op = p > 0 ? SO_RED_NORMINF : SO_RED_NORMNINF;
    else if (p != p) {
        return PyErr_Format(PyExc_RuntimeError, "norm(): p must not be nan");
    } else op = SO_RED_NORMP;
    if (op == SO_RED_NORMINF || op == SO_RED_NORMNINF) {
        int64_t red = 1, outn = 1;
        for (int i = 0; i < t->ndim; i++) {
            if (mask[i]) red *= t->shape[i];
            else outn *= t->shape[i];
        }
        if (red == 0 && (outn != 0 || t->ndim == 0 || dim == Py_None))
            return PyErr_Format(PyExc_RuntimeError,
                                "linalg.vector_norm cannot compute the %s norm on an empty tensor "
                                "because the operation does not have an identity",
                                p > 0 ? "inf" : "-inf");
    }
    return (PyObject *)reduce_into_new(st, t, mask, keepdim, op, p, out_dtype, 0, NULL);
}

#define KW (METH_VARARGS | METH_KEYWORDS)
static PyMethodDef reduce_functions[] = {
    {"_sum", (PyCFunction)(void (*)(void))py_sum, KW,
     "_sum(input, dim=None, keepdim=False, dtype=None)"},
    {"_mean", (PyCFunction)(void (*)(void))py_mean, KW,
     "_mean(input, dim=None, keepdim=False, dtype=None)"},
    {"_max", (PyCFunction)(void (*)(void))py_max, KW,
     "_max(input, dim=None, keepdim=False): tensor, or (values, indices) with a dim"},
    {"_min", (PyCFunction)(void (*)(void))py_min, KW,
     "_min(input, dim=None, keepdim=False): tensor, or (values, indices) with a dim"},
    {"_norm", (PyCFunction)(void (*)(void))py_norm, KW,
     "_norm(input, p=2.0, dim=None, keepdim=False, dtype=None): vector p-norm"},
    {NULL}};
#undef KW

int so_register_reduce(PyObject *m, so_state *st)
{
    (void)st;
    return PyModule_AddFunctions(m, reduce_functions);
}
