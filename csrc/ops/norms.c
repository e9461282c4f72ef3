/* norms.c — _C._norms(tensors, ord=2.0, dtype=float64): the vector norm of each tensor of a
 * list, stacked into one 1-D tensor (torch.stack(torch._foreach_norm(tensors, ord))).
 *
 * Gradient clipping needs the norm of every gradient; one call here walks each tensor once
 * with the reduction kernels of reduce_cpu.c / reduce.cu (same math as _C._norm: float
 * inputs accumulate in double) and writes norm i into element i of the result, so no Python
 * object is made per tensor.  All tensors must be on one device (the result's).
 */
#include "reduce.h"
#include "../tensor/tensor.h"

/* Full reduction of t: every dim reduced, unit dims dropped, the rest sorted by decreasing
 * |stride| and merged where they step as one run, so the innermost walk is the tightest. */
static void full_plan(const SoTensor *t, so_reduce_plan *pl)
{
    int n = 0;
    pl->n_keep = 0;
    pl->out_numel = 1;
    pl->red_numel = so_tensor_numel(t);
    for (int d = 0; d < t->ndim; d++) {
        if (t->shape[d] == 1) continue;
        int64_t sh = t->shape[d], st = t->strides[d], ast = st < 0 ? -st : st;
        int j = n - 1;
        while (j >= 0 && (pl->red_strides[j] < 0 ? -pl->red_strides[j] : pl->red_strides[j]) < ast) {
            pl->red_shape[j + 1] = pl->red_shape[j];
            pl->red_strides[j + 1] = pl->red_strides[j];
            j--;
        }
        pl->red_shape[j + 1] = sh;
        pl->red_strides[j + 1] = st;
        n++;
    }
    int out = 0;
    for (int d = 1; d < n; d++) {
        if (pl->red_strides[out] == pl->red_strides[d] * pl->red_shape[d]) {
            pl->red_shape[out] *= pl->red_shape[d];
            pl->red_strides[out] = pl->red_strides[d];
        } else {
            out++;
            pl->red_shape[out] = pl->red_shape[d];
            pl->red_strides[out] = pl->red_strides[d];
        }
    }
    pl->n_red = n > 0 ? out + 1 : 0;
}

static int ord_op(double p)
{
    if (p == 2.0) return SO_RED_NORM2;
    if (p == 1.0) return SO_RED_NORM1;
    if (p == 0.0) return SO_RED_NORM0;
    if (isinf(p)) return p > 0 ? SO_RED_NORMINF : SO_RED_NORMNINF;
    return SO_RED_NORMP;
}

static PyObject *py_norms(PyObject *m, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"tensors", "ord", "dtype", NULL};
    so_state *st = so_state_from_module(m);
    PyObject *list_o, *dtype_obj = Py_None, *seq = NULL;
    SoTensor *out = NULL;
    double p = 2.0;
    int out_dtype;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|dO:_norms", kwlist, &list_o, &p, &dtype_obj))
        return NULL;
    SO_CHECK(p == p, done, PyExc_RuntimeError, "_norms(): ord must not be nan");
    SO_CHECK(PyList_Check(list_o) || PyTuple_Check(list_o), done, PyExc_TypeError,
             "_norms(): argument 'tensors' must be a list of Tensors, not %s",
             Py_TYPE(list_o)->tp_name);
    SO_CHECK_PTR(seq = PySequence_Tuple(list_o), done);
    SO_CHECK_RC(so_parse_dtype(st, dtype_obj, SO_FLOAT64, "dtype", &out_dtype), done);
    SO_CHECK(so_dtype_is_float(out_dtype), done, PyExc_TypeError,
             "_norms(): dtype must be a floating point dtype");
    Py_ssize_t n = PyTuple_GET_SIZE(seq);
    int op = ord_op(p);
    so_device dev = {SO_CPU, 0};
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *o = PyTuple_GET_ITEM(seq, i);
        SO_CHECK(so_tensor_check(st, o), done, PyExc_TypeError,
                 "_norms(): tensors[%zd] must be a Tensor, not %s", i, Py_TYPE(o)->tp_name);
        SoTensor *t = (SoTensor *)o;
        SO_CHECK(so_dtype_is_float(t->dtype), done, PyExc_RuntimeError,
                 "_norms(): tensors[%zd] must have a floating point dtype", i);
        if (i == 0) dev = so_tensor_device(t);
        SO_CHECK(so_device_eq(so_tensor_device(t), dev), done, PyExc_RuntimeError,
                 "_norms(): tensors[%zd] is on another device than tensors[0]; group the "
                 "tensors by device", i);
        SO_CHECK(!(so_tensor_numel(t) == 0 &&
                   (op == SO_RED_NORMINF || op == SO_RED_NORMNINF)), done, PyExc_RuntimeError,
                 "linalg.vector_norm cannot compute the %s norm on an empty tensor because the "
                 "operation does not have an identity", p > 0 ? "inf" : "-inf");
    }
    if (dev.type == SO_META) SO_CHECK_RC(so_meta_unsupported("linalg.vector_norm"), done);
    int64_t shape[1] = {(int64_t)n};
    SO_CHECK_PTR(out = so_tensor_empty(st, 1, shape, out_dtype, dev), done);
    void *stream = NULL;
    if (dev.type == SO_CUDA && n > 0) SO_CHECK_PTR(stream = so_cuda_stream(st->core.cuda_streams, dev.index), done);
    int osz = so_dtype_itemsize(out_dtype);
    for (Py_ssize_t i = 0; i < n; i++) {
        SoTensor *t = (SoTensor *)PyTuple_GET_ITEM(seq, i);
        so_reduce_plan pl;
        memset(&pl, 0, sizeof pl);
        pl.in = so_tensor_data(t);
        pl.in_dtype = t->dtype;
        pl.out = (char *)so_tensor_data(out) + i * osz;
        pl.out_dtype = out_dtype;
        pl.op = op;
        pl.p = p;
        full_plan(t, &pl);
        if (dev.type == SO_CPU) {
            if (so_reduce_cpu(&pl) < 0) {
                PyErr_NoMemory();
                goto done;
            }
        } else {
#ifdef SHARDOPT_WITH_CUDA
            int err = so_reduce_cuda(&pl, stream, dev.index);
            if (err) {
                so_cuda_raise(err, "_norms reduction kernel launch", __FILE__, __LINE__);
                goto done;
            }
#else
            SO_FAIL(done, PyExc_RuntimeError, "_norms(): this build of shardopt has no CUDA "
                    "support");
#endif
        }
    }
    Py_DECREF(seq);
    return (PyObject *)out;
done:
    Py_XDECREF(seq);
    Py_XDECREF(out);
    return NULL;
}

static PyMethodDef norms_functions[] = {
    {"_norms", (PyCFunction)(void (*)(void))py_norms, METH_VARARGS | METH_KEYWORDS,
     "_norms(tensors, ord=2.0, dtype=float64): 1-D tensor of each tensor's vector norm"},
    {NULL}};

int so_register_norms(PyObject *m, so_state *st)
{
    (void)st;
    return PyModule_AddFunctions(m, norms_functions);
}
