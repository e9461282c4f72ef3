/* sort.c — sort and topk: argument checks (torch's messages), output shapes, the row plan
 * (rows.h / sort.h) and the one place that picks the CPU or CUDA kernel. */
#include "sort.h"
#include "../core/errors.h"
#include "../tensor/tensor.h"

#ifndef SHARDOPT_WITH_CUDA
int so_sort_cuda(const so_sort_plan *pl, void *stream, int device_index)
{
    (void)pl; (void)stream; (void)device_index;
    return 1; /* never reached: a CPU-only build has no CUDA tensors */
}
#endif

/* Row geometry of `t` along `dim` into outputs of shape oshape (contiguous). */
void so_rows_plan(const SoTensor *t, int64_t dim, int ond, const int64_t *oshape, so_rows *g)
{
    int64_t ostr[SO_MAX_DIMS], s = 1;
    for (int d = ond - 1; d >= 0; d--) {
        ostr[d] = s;
        s *= oshape[d] > 1 ? oshape[d] : 1;
    }
    memset(g, 0, sizeof *g);
    g->rows = 1;
    if (t->ndim == 0) {
        g->in_n = 1;
        g->in_step = 1;
        g->out_n = ond ? oshape[0] : 1;
        g->out_step = 1;
        return;
    }
    for (int d = 0; d < t->ndim; d++) {
        if (d == dim) continue;
        g->outer_shape[g->n_outer] = t->shape[d];
        g->in_strides[g->n_outer] = t->strides[d];
        g->out_strides[g->n_outer] = ostr[d];
        g->n_outer++;
        g->rows *= t->shape[d];
    }
    g->in_n = t->shape[dim];
    g->in_step = t->strides[dim];
    g->out_n = oshape[dim];
    g->out_step = ostr[dim];
}

/* sort / topk driver: k = -1 for a full sort. Returns (values, indices). */
static PyObject *sort_impl(so_state *st, SoTensor *t, int64_t dim, int64_t k, int descending)
{
    int64_t shape[SO_MAX_DIMS];
    so_sort_plan pl;
    so_device dev = so_tensor_device(t);
    SoTensor *vals = NULL, *idx = NULL;
    int nd = t->ndim;
    memcpy(shape, t->shape, sizeof shape);
    if (k >= 0 && nd) shape[dim] = k;
    SO_CHECK_PTR(vals = so_tensor_empty(st, nd, shape, t->dtype, dev), done);
    SO_CHECK_PTR(idx = so_tensor_empty(st, nd, shape, SO_INT64, dev), done);
    memset(&pl, 0, sizeof pl);
    so_rows_plan(t, dim, nd, shape, &pl.g);
    if (nd == 0 && k == 0) pl.g.out_n = 0;
    pl.in = so_tensor_data(t);
    pl.dtype = t->dtype;
    pl.values = so_tensor_data(vals);
    pl.indices = (int64_t *)(void *)so_tensor_data(idx);
    pl.descending = descending;
    if (dev.type == SO_META) SO_CHECK_RC(so_meta_unsupported(k >= 0 ? "topk" : "sort"), done);
    if (so_tensor_numel(vals) > 0) {
        if (dev.type == SO_CPU) {
            Py_BEGIN_ALLOW_THREADS
            so_sort_cpu(&pl);
            Py_END_ALLOW_THREADS
        } else {
            void *stream = so_cuda_stream(st->core.cuda_streams, dev.index);
            int err;
            if (!stream) goto done;
            err = so_sort_cuda(&pl, stream, dev.index);
            if (err) {
                so_cuda_raise(err, "sort kernel launch", __FILE__, __LINE__);
                goto done;
            }
        }
    }
    return Py_BuildValue("(NN)", vals, idx);
done:
    Py_XDECREF(vals);
    Py_XDECREF(idx);
    return NULL;
}

static int get_tensor(so_state *st, PyObject *obj, const char *fname)
{
    if (so_tensor_check(st, obj)) return so_check_not_complex((SoTensor *)obj, fname);
    return so_fail(PyExc_TypeError, "%s(): argument 'input' (position 1) must be Tensor, not %s",
                   fname, Py_TYPE(obj)->tp_name);
}

/* _C._sort(input, dim=-1, descending=False) -> (values, indices); always stable. */
static PyObject *py_sort(PyObject *m, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"input", "dim", "descending", NULL};
    so_state *st = so_state_from_module(m);
    PyObject *in;
    long long d = -1;
    int descending = 0;
    int64_t dim;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|Lp:sort", kwlist, &in, &d, &descending))
        return NULL;
    if (get_tensor(st, in, "sort") < 0) return NULL;
    if (so_wrap_dim(d, ((SoTensor *)in)->ndim, &dim) < 0) return NULL;
    return sort_impl(st, (SoTensor *)in, dim, -1, descending);
}

/* _C._topk(input, k, dim=-1, largest=True) -> (values, indices), sorted. */
static PyObject *py_topk(PyObject *m, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"input", "k", "dim", "largest", NULL};
    so_state *st = so_state_from_module(m);
    PyObject *in;
    long long k, d = -1;
    int largest = 1;
    int64_t dim, n;
    SoTensor *t;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OL|Lp:topk", kwlist, &in, &k, &d, &largest))
        return NULL;
    if (get_tensor(st, in, "topk") < 0) return NULL;
    t = (SoTensor *)in;
    if (so_wrap_dim(d, t->ndim, &dim) < 0) return NULL;
    n = t->ndim ? t->shape[dim] : 1;
    if (k < 0 || k > n) return PyErr_Format(PyExc_RuntimeError, "selected index k out of range");
    return sort_impl(st, t, dim, k, largest);
}

#define KW (METH_VARARGS | METH_KEYWORDS)
static PyMethodDef sort_functions[] = {
    {"_sort", (PyCFunction)(void (*)(void))py_sort, KW,
     "_sort(input, dim=-1, descending=False) -> (values, indices), stable"},
    {"_topk", (PyCFunction)(void (*)(void))py_topk, KW,
     "_topk(input, k, dim=-1, largest=True) -> (values, indices), sorted"},
    {NULL}};
#undef KW

int so_register_sort(PyObject *m, so_state *st)
{
    (void)st;
    return PyModule_AddFunctions(m, sort_functions);
}
