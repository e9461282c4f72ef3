/* softmax.c — bindings of softmax / log_softmax / logsumexp (forward and backward): dim
 * handling, output allocation, and the one place that picks the CPU or CUDA kernel.
 * dtype rules (half inputs, dtype=, integer inputs) live in shardopt/_ops/softmax.py; the
 * kernels take float32/float64. */
#include "softmax.h"
#include "nn_args.h"

#ifndef SHARDOPT_WITH_CUDA
int so_softmax_cuda(const so_softmax_call *c, void *stream)
{
    (void)c; (void)stream;
    return 1; /* never reached: a CPU-only build has no CUDA tensors */
}
#endif

static int run(so_state *st, so_softmax_call *c, so_device dev)
{
    if (dev.type == SO_META) return 0; /* meta: outputs are allocated, nothing to compute */
    if (dev.type == SO_CPU) {
        Py_BEGIN_ALLOW_THREADS
        so_softmax_cpu(c);
        Py_END_ALLOW_THREADS
        return 0;
    }
    int prev, rc;
    void *stream = so_nn_cuda_begin(st, dev, &prev);
    if (!stream) return -1;
    rc = so_nn_launched(so_softmax_cuda(c, stream), "softmax kernel launch");
    so_nn_cuda_end(dev, prev);
    return rc;
}

/* (outer, n, inner) of t around dim d (already wrapped). 0-d tensors are one element. */
static void split_dims(const SoTensor *t, int64_t d, so_softmax_call *c)
{
    c->outer = c->n = c->inner = 1;
    for (int i = 0; i < t->ndim; i++) {
        if (i < d) c->outer *= t->shape[i];
        else if (i == d) c->n = t->shape[i];
        else c->inner *= t->shape[i];
    }
}

static int parse_dim(PyObject *dim_obj, const SoTensor *t, int64_t *d)
{
    int64_t dim = PyLong_AsLongLong(dim_obj);
    if (dim == -1 && PyErr_Occurred()) return -1;
    return so_wrap_dim(dim, t->ndim, d);
}

/* out= of softmax / log_softmax: a contiguous tensor of x's shape, dtype and device that
 * does not overlap x (the kernel reads x after writing rows of out).  New reference. */
static SoTensor *check_out(so_state *st, PyObject *out_obj, const SoTensor *x, const char *fname)
{
    SoTensor *o;
    char b1[128], b2[128];
    if (!so_tensor_check(st, out_obj))
        return so_fail_null(PyExc_TypeError, "%s(): argument 'out' must be Tensor, "
                                        "not %s", fname, Py_TYPE(out_obj)->tp_name);
    o = (SoTensor *)out_obj;
    if (so_nn_check_dtype(x, o, fname, "out") < 0 || so_nn_check_device(x, o, fname, "out") < 0)
        return NULL;
    if (o->ndim != x->ndim || memcmp(o->shape, x->shape, sizeof(int64_t) * x->ndim))
        return so_fail_null(PyExc_RuntimeError, "%s(): out has shape %s, expected "
                                        "%s", fname, so_shape_str(o->ndim, o->shape, b1, sizeof b1),
                                        so_shape_str(x->ndim, x->shape, b2, sizeof b2));
    if (!so_tensor_is_contiguous(o))
        return so_fail_null(PyExc_RuntimeError, "%s(): out must be contiguous", fname);
    if (o->storage == x->storage && so_tensor_numel(o) > 0)
        return so_fail_null(PyExc_RuntimeError, "%s(): out must not share memory "
                                        "with the input", fname);
    so_tensor_bump_version(o);
    return (SoTensor *)Py_NewRef(out_obj);
}

/* _C._softmax(input, dim, log, out=None) -> softmax (log=0) or log_softmax (log=1) along
 * dim, in a new tensor or written into out */
static PyObject *py_softmax(PyObject *m, PyObject *args)
{
    so_state *st = so_state_from_module(m);
    PyObject *in, *dim_obj, *out_obj = Py_None, *res = NULL;
    int log;
    int64_t d;
    SoTensor *x = NULL, *out = NULL;
    so_softmax_call c;
    if (!PyArg_ParseTuple(args, "OOp|O:_softmax", &in, &dim_obj, &log, &out_obj)) return NULL;
    const char *fname = log ? "log_softmax" : "softmax";
    SO_CHECK_PTR(x = so_nn_contiguous(st, in, fname, "input"), done);
    SO_CHECK_RC(so_nn_check_float(x, fname, "input"), done);
    SO_CHECK_RC(parse_dim(dim_obj, x, &d), done);
    if (out_obj != Py_None)
        SO_CHECK_PTR(out = check_out(st, out_obj, x, fname), done);
    else
        SO_CHECK_PTR(out = so_tensor_empty(st, x->ndim, x->shape, x->dtype, so_tensor_device(x)),
                     done);
    memset(&c, 0, sizeof c);
    c.op = log ? SO_SM_LOG_SOFTMAX : SO_SM_SOFTMAX;
    c.dtype = x->dtype;
    split_dims(x, d, &c);
    c.x = so_tensor_data(x);
    c.out = so_tensor_data(out);
    SO_CHECK_RC(run(st, &c, so_tensor_device(x)), done);
    res = (PyObject *)out;
    out = NULL;
done:
    Py_XDECREF(x);
    Py_XDECREF(out);
    return res;
}

/* _C._softmax_backward(output, grad, dim, log) -> input gradient */
static PyObject *py_softmax_backward(PyObject *m, PyObject *args)
{
    so_state *st = so_state_from_module(m);
    PyObject *y_obj, *g_obj, *dim_obj, *res = NULL;
    int log;
    int64_t d;
    SoTensor *y = NULL, *g = NULL, *out = NULL;
    so_softmax_call c;
    char b1[128], b2[128];
    if (!PyArg_ParseTuple(args, "OOOp:_softmax_backward", &y_obj, &g_obj, &dim_obj, &log))
        return NULL;
    const char *fname = log ? "log_softmax_backward" : "softmax_backward";
    SO_CHECK_PTR(y = so_nn_contiguous(st, y_obj, fname, "output"), done);
    SO_CHECK_PTR(g = so_nn_contiguous(st, g_obj, fname, "grad_output"), done);
    SO_CHECK_RC(so_nn_check_float(y, fname, "output"), done);
    SO_CHECK_RC(so_nn_check_dtype(y, g, fname, "grad_output"), done);
    SO_CHECK_RC(so_nn_check_device(y, g, fname, "grad_output"), done);
    SO_CHECK(y->ndim == g->ndim && !memcmp(y->shape, g->shape, sizeof(int64_t) * y->ndim), done,
             PyExc_RuntimeError, "%s(): grad_output of shape %s does not match the output's %s",
             fname, so_shape_str(g->ndim, g->shape, b1, sizeof b1),
             so_shape_str(y->ndim, y->shape, b2, sizeof b2));
    SO_CHECK_RC(parse_dim(dim_obj, y, &d), done);
    SO_CHECK_PTR(out = so_tensor_empty(st, y->ndim, y->shape, y->dtype, so_tensor_device(y)), done);
    memset(&c, 0, sizeof c);
    c.op = log ? SO_SM_LOG_SOFTMAX_BW : SO_SM_SOFTMAX_BW;
    c.dtype = y->dtype;
    split_dims(y, d, &c);
    c.x = so_tensor_data(y);
    c.g = so_tensor_data(g);
    c.out = so_tensor_data(out);
    SO_CHECK_RC(run(st, &c, so_tensor_device(y)), done);
    res = (PyObject *)out;
    out = NULL;
done:
    Py_XDECREF(y);
    Py_XDECREF(g);
    Py_XDECREF(out);
    return res;
}

/* _C._logsumexp(input, dim, keepdim) -> log(sum(exp(input), dim)) computed stably */
static PyObject *py_logsumexp(PyObject *m, PyObject *args)
{
    so_state *st = so_state_from_module(m);
    PyObject *in, *dim_obj, *res = NULL;
    int keepdim;
    int64_t d, shape[SO_MAX_DIMS];
    int nd = 0;
    SoTensor *x = NULL, *out = NULL;
    so_softmax_call c;
    if (!PyArg_ParseTuple(args, "OOp:_logsumexp", &in, &dim_obj, &keepdim)) return NULL;
    SO_CHECK_PTR(x = so_nn_contiguous(st, in, "logsumexp", "input"), done);
    SO_CHECK_RC(so_nn_check_float(x, "logsumexp", "input"), done);
    SO_CHECK_RC(parse_dim(dim_obj, x, &d), done);
    for (int i = 0; i < x->ndim; i++) {
        if (i != d) shape[nd++] = x->shape[i];
        else if (keepdim) shape[nd++] = 1;
    }
    SO_CHECK_PTR(out = so_tensor_empty(st, nd, shape, x->dtype, so_tensor_device(x)), done);
    memset(&c, 0, sizeof c);
    c.op = SO_SM_LOGSUMEXP;
    c.dtype = x->dtype;
    split_dims(x, d, &c);
    c.x = so_tensor_data(x);
    c.out = so_tensor_data(out);
    SO_CHECK_RC(run(st, &c, so_tensor_device(x)), done);
    res = (PyObject *)out;
    out = NULL;
done:
    Py_XDECREF(x);
    Py_XDECREF(out);
    return res;
}

static PyMethodDef softmax_functions[] = {
    {"_softmax", py_softmax, METH_VARARGS,
     "_softmax(input, dim, log, out=None): softmax (log=False) or log_softmax along dim "
     "(float32/64)"},
    {"_softmax_backward", py_softmax_backward, METH_VARARGS,
     "_softmax_backward(output, grad_output, dim, log): the input gradient"},
    {"_logsumexp", py_logsumexp, METH_VARARGS,
     "_logsumexp(input, dim, keepdim): log(sum(exp(input), dim)) without overflow"},
    {NULL}};

int so_register_softmax(PyObject *m, so_state *st)
{
    (void)st;
    return PyModule_AddFunctions(m, softmax_functions);
}
