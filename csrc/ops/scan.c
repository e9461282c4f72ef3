/* scan.c — cumsum and the inverse-CDF search behind multinomial: argument checks (torch's
 * messages), output dtype rules, the row plan (rows.h / scan.h) and the one place that
 * picks the CPU or CUDA kernel. */
#include "scan.h"
#include "../core/errors.h"
#include "../tensor/tensor.h"

#ifndef SHARDOPT_WITH_CUDA
int so_cumsum_cuda(const so_cumsum_plan *pl, void *stream, int device_index)
{
    (void)pl; (void)stream; (void)device_index;
    return 1; /* never reached: a CPU-only build has no CUDA tensors */
}
int so_cdf_search_cuda(const so_cdf_plan *pl, void *stream, int device_index)
{
    (void)pl; (void)stream; (void)device_index;
    return 1;
}
#endif

/* _C._cumsum(input, dim, dtype=None) */
static PyObject *py_cumsum(PyObject *m, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"input", "dim", "dtype", NULL};
    so_state *st = so_state_from_module(m);
    PyObject *in, *dim_obj, *dtype_obj = Py_None;
    SoTensor *t, *out;
    int64_t d, dim;
    int out_dtype;
    so_device dev;
    so_cumsum_plan pl;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO|O:cumsum", kwlist, &in, &dim_obj, &dtype_obj))
        return NULL;
    if (!so_tensor_check(st, in))
        return PyErr_Format(PyExc_TypeError, "cumsum(): argument 'input' (position 1) must be "
                            "Tensor, not %s", Py_TYPE(in)->tp_name);
    t = (SoTensor *)in;
    if (so_check_not_complex(t, "cumsum") < 0) return NULL;
    if (PyBool_Check(dim_obj) || !PyLong_Check(dim_obj))
        return PyErr_Format(PyExc_TypeError, "cumsum(): argument 'dim' (position 2) must be int, "
                            "not %s", Py_TYPE(dim_obj)->tp_name);
    d = PyLong_AsLongLong(dim_obj);
    if (d == -1 && PyErr_Occurred()) return NULL;
    if (so_wrap_dim(d, t->ndim, &dim) < 0) return NULL;
    if (dtype_obj == Py_None)
        out_dtype = so_dtype_is_float(t->dtype) ? t->dtype : SO_INT64;
    else if (so_parse_dtype(st, dtype_obj, t->dtype, "dtype", &out_dtype) < 0)
        return NULL;
    dev = so_tensor_device(t);
    out = so_tensor_empty(st, t->ndim, t->shape, out_dtype, dev);
    if (!out) return NULL;
    memset(&pl, 0, sizeof pl);
    so_rows_plan(t, dim, t->ndim, t->shape, &pl.g);
    pl.in = so_tensor_data(t);
    pl.in_dtype = t->dtype;
    pl.out = so_tensor_data(out);
    pl.out_dtype = out_dtype;
    pl.int_acc = !so_dtype_is_float(out_dtype) && !so_dtype_is_float(t->dtype);
    if (so_tensor_numel(out) == 0) return (PyObject *)out;
    if (dev.type == SO_META) {
        Py_DECREF(out);
        return (void)so_meta_unsupported("cumsum"), NULL;
    }
    if (dev.type == SO_CPU) {
        Py_BEGIN_ALLOW_THREADS
        so_cumsum_cpu(&pl);
        Py_END_ALLOW_THREADS
    } else {
        void *stream = so_cuda_stream(st->core.cuda_streams, dev.index);
        int err;
        if (!stream) goto done;
        err = so_cumsum_cuda(&pl, stream, dev.index);
        if (err) {
            so_cuda_raise(err, "cumsum kernel launch", __FILE__, __LINE__);
            goto done;
        }
    }
    return (PyObject *)out;
done:
    Py_DECREF(out);
    return NULL;
}

/* _C._cdf_search(cdf, u) -> int64 (rows, nsamp): cdf (rows, ncat) float64 with ncat > 0, u
 * (rows, nsamp) float64 in [0, 1), both contiguous on one device (multinomial's sampler). */
static PyObject *py_cdf_search(PyObject *m, PyObject *args)
{
    so_state *st = so_state_from_module(m);
    PyObject *co, *uo;
    SoTensor *c, *u, *out;
    so_cdf_plan pl;
    so_device dev;
    if (!PyArg_ParseTuple(args, "OO:_cdf_search", &co, &uo)) return NULL;
    if (!so_tensor_check(st, co) || !so_tensor_check(st, uo))
        return PyErr_Format(PyExc_TypeError, "_cdf_search(): cdf and u must be Tensors");
    c = (SoTensor *)co;
    u = (SoTensor *)uo;
    dev = so_tensor_device(c);
    if (c->ndim != 2 || u->ndim != 2 || c->dtype != SO_FLOAT64 || u->dtype != SO_FLOAT64 ||
        !so_tensor_is_contiguous(c) || !so_tensor_is_contiguous(u) || c->shape[0] != u->shape[0] ||
        c->shape[1] < 1 || !so_device_eq(dev, so_tensor_device(u)))
        return PyErr_Format(PyExc_ValueError, "_cdf_search(): expected contiguous float64 cdf "
                            "(rows, ncat >= 1) and u (rows, nsamp) on one device");
    out = so_tensor_empty(st, 2, u->shape, SO_INT64, dev);
    if (!out) return NULL;
    pl.cdf = (const double *)(const void *)so_tensor_data(c);
    pl.u = (const double *)(const void *)so_tensor_data(u);
    pl.out = (int64_t *)(void *)so_tensor_data(out);
    pl.rows = u->shape[0];
    pl.nsamp = u->shape[1];
    pl.ncat = c->shape[1];
    if (pl.rows * pl.nsamp == 0) return (PyObject *)out;
    if (dev.type == SO_META) {
        Py_DECREF(out);
        return (void)so_meta_unsupported("multinomial"), NULL;
    }
    if (dev.type == SO_CPU) {
        so_cdf_search_cpu(&pl);
    } else {
        void *stream = so_cuda_stream(st->core.cuda_streams, dev.index);
        int err;
        if (!stream) goto done;
        err = so_cdf_search_cuda(&pl, stream, dev.index);
        if (err) {
            so_cuda_raise(err, "cdf search kernel launch", __FILE__, __LINE__);
            goto done;
        }
    }
    return (PyObject *)out;
done:
    Py_DECREF(out);
    return NULL;
}

#define KW (METH_VARARGS | METH_KEYWORDS)
static PyMethodDef scan_functions[] = {
    {"_cumsum", (PyCFunction)(void (*)(void))py_cumsum, KW, "_cumsum(input, dim, dtype=None)"},
    {"_cdf_search", py_cdf_search, METH_VARARGS,
     "_cdf_search(cdf, u): first category whose cdf exceeds u * total, per draw"},
    {NULL}};
#undef KW

int so_register_scan(PyObject *m, so_state *st)
{
    (void)st;
    return PyModule_AddFunctions(m, scan_functions);
}
