/* cross_entropy.c — bindings of the fused cross-entropy / NLL kernels: size checks that keep
 * the kernels in bounds, per-sample outputs, the out-of-range target error (IndexError, as
 * torch's CPU kernels raise), and the one place that picks the CPU or CUDA kernel.
 * Torch's argument validation messages (batch size, weight length, target dtype) are raised
 * by shardopt/nn/functional.py before this is called; reductions happen there too. */
#include "cross_entropy.h"
#include "nn_args.h"

#ifndef SHARDOPT_WITH_CUDA
int so_xe_forward_cuda(const so_xe_call *c, void *stream)
{
    (void)c; (void)stream;
    return 1; /* never reached: a CPU-only build has no CUDA tensors */
}
int so_xe_backward_cuda(const so_xe_call *c, void *stream)
{
    (void)c; (void)stream;
    return 1;
}
#endif

/* Shapes, dtypes and devices of (input, target, weight) for `kind`; fills N, C, inner. */
static int check_args(const SoTensor *x, const SoTensor *t, const SoTensor *w, int kind,
                      const char *fname, so_xe_call *c)
{
    char b1[160], b2[160];
    if (so_nn_check_float(x, fname, "input") < 0) return -1;
    if (x->ndim < 1)
        return so_fail(PyExc_RuntimeError, "%s(): input must have at least 1 dimension, got a "
                       "0-d tensor", fname);
    c->N = x->ndim == 1 ? 1 : x->shape[0];
    c->C = x->ndim == 1 ? x->shape[0] : x->shape[1];
    c->inner = 1;
    for (int i = 2; i < x->ndim; i++) c->inner *= x->shape[i];
    if (so_nn_check_device(x, t, fname, "target") < 0) return -1;
    if (kind == SO_XE_PROB) {
        if (so_nn_check_dtype(x, t, fname, "target") < 0) return -1;
        if (t->ndim != x->ndim || memcmp(t->shape, x->shape, sizeof(int64_t) * x->ndim))
            return so_fail(PyExc_RuntimeError, "%s(): probability target of shape %s must match "
                           "the input's shape %s", fname, so_shape_str(t->ndim, t->shape, b1, sizeof b1),
                           so_shape_str(x->ndim, x->shape, b2, sizeof b2));
    } else {
        if (so_nn_check_index(t, fname, "target") < 0) return -1;
        if (so_tensor_numel(t) != c->N * c->inner)
            return so_fail(PyExc_RuntimeError, "%s(): target of shape %s does not match input "
                           "of shape %s", fname, so_shape_str(t->ndim, t->shape, b1, sizeof b1),
                           so_shape_str(x->ndim, x->shape, b2, sizeof b2));
    }
    if (w) {
        if (so_nn_check_dtype(x, w, fname, "weight") < 0) return -1;
        if (so_nn_check_device(x, w, fname, "weight") < 0) return -1;
        if (so_tensor_numel(w) != c->C)
            return so_fail(PyExc_RuntimeError, "weight tensor should be defined either for all "
                           "%lld classes or no classes but got weight tensor of shape: %s",
                           (long long)c->C, so_shape_str(w->ndim, w->shape, b1, sizeof b1));
    }
    c->dtype = x->dtype;
    c->tdtype = t->dtype;
    c->kind = kind;
    return 0;
}

/* Run the forward on the device; bad[0..1] receives the out-of-range report. */
static int run_forward(so_state *st, so_xe_call *c, so_device dev, int64_t *bad)
{
    bad[0] = bad[1] = 0;
    if (dev.type == SO_META) return so_meta_unsupported("cross_entropy");
    if (dev.type == SO_CPU) {
        c->bad = bad;
        Py_BEGIN_ALLOW_THREADS
        so_xe_forward_cpu(c);
        Py_END_ALLOW_THREADS
        return 0;
    }
    int prev, rc = -1;
    void *stream = so_nn_cuda_begin(st, dev, &prev), *dbad = NULL;
    if (!stream) return -1;
    SO_CHECK_RC(so_cuda_malloc(dev.index, stream, 2 * sizeof(int64_t), &dbad), done);
    SO_CHECK_RC(so_cuda_memcpy(dbad, bad, 2 * sizeof(int64_t), 0, stream), done);
    c->bad = (int64_t *)dbad;
    SO_CHECK_RC(so_nn_launched(so_xe_forward_cuda(c, stream), "cross_entropy kernel launch"), done);
    /* the report needs the host: torch's CUDA kernels assert on the device instead */
    SO_CHECK_RC(so_cuda_memcpy(bad, dbad, 2 * sizeof(int64_t), 1, stream), done);
    rc = 0;
done:
    if (dbad) so_cuda_free(dev.index, stream, dbad);
    so_nn_cuda_end(dev, prev);
    return rc;
}

/* _C._cross_entropy(input, target, weight, ignore_index, label_smoothing, kind)
 *   -> (loss, wt, lse): flat per-sample tensors (lse is None for NLL). */
static PyObject *py_cross_entropy(PyObject *m, PyObject *args)
{
    so_state *st = so_state_from_module(m);
    PyObject *in, *t_obj, *w_obj, *res = NULL;
    long long ignore_index;
    double eps;
    int kind, err = 0;
    int64_t bad[2];
    SoTensor *x = NULL, *t = NULL, *w = NULL, *loss = NULL, *wt = NULL, *lse = NULL;
    so_xe_call c;
    if (!PyArg_ParseTuple(args, "OOOLdi:_cross_entropy", &in, &t_obj, &w_obj, &ignore_index,
                          &eps, &kind))
        return NULL;
    SO_CHECK(kind >= SO_XE_NLL && kind <= SO_XE_PROB, done, PyExc_ValueError,
             "_cross_entropy(): kind must be 0, 1 or 2, got %d", kind);
    const char *fname = kind == SO_XE_NLL ? "nll_loss" : "cross_entropy";
    memset(&c, 0, sizeof c);
    SO_CHECK_PTR(x = so_nn_contiguous(st, in, fname, "input"), done);
    SO_CHECK_PTR(t = so_nn_contiguous(st, t_obj, fname, "target"), done);
    w = so_nn_optional(st, w_obj, fname, "weight", &err);
    SO_CHECK_RC(err, done);
    SO_CHECK_RC(check_args(x, t, w, kind, fname, &c), done);
    int64_t ns[1] = {c.N * c.inner};
    so_device dev = so_tensor_device(x);
    SO_CHECK_PTR(loss = so_tensor_empty(st, 1, ns, x->dtype, dev), done);
    SO_CHECK_PTR(wt = so_tensor_empty(st, 1, ns, x->dtype, dev), done);
    if (kind != SO_XE_NLL) SO_CHECK_PTR(lse = so_tensor_empty(st, 1, ns, x->dtype, dev), done);
    c.x = so_tensor_data(x);
    c.target = so_tensor_data(t);
    c.w = w ? so_tensor_data(w) : NULL;
    c.ignore_index = ignore_index;
    c.eps = eps;
    c.loss = so_tensor_data(loss);
    c.wt = so_tensor_data(wt);
    c.lse = lse ? so_tensor_data(lse) : NULL;
    SO_CHECK_RC(run_forward(st, &c, dev, bad), done);
    SO_CHECK(!bad[0], done, PyExc_IndexError, "Target %lld is out of bounds.", (long long)bad[1]);
    res = Py_BuildValue("(OOO)", loss, wt, lse ? (PyObject *)lse : Py_None);
done:
    Py_XDECREF(x);
    Py_XDECREF(t);
    Py_XDECREF(w);
    Py_XDECREF(loss);
    Py_XDECREF(wt);
    Py_XDECREF(lse);
    return res;
}

/* _C._cross_entropy_backward(input, target, weight, lse, grad, ignore_index,
 *                            label_smoothing, kind) -> input gradient.
 * grad: per sample (N*inner elements) or one element (broadcast to every sample). */
static PyObject *py_cross_entropy_backward(PyObject *m, PyObject *args)
{
    so_state *st = so_state_from_module(m);
    PyObject *in, *t_obj, *w_obj, *lse_obj, *g_obj, *res = NULL;
    long long ignore_index;
    double eps;
    int kind, err = 0;
    SoTensor *x = NULL, *t = NULL, *w = NULL, *lse = NULL, *g = NULL, *gx = NULL;
    so_xe_call c;
    if (!PyArg_ParseTuple(args, "OOOOOLdi:_cross_entropy_backward", &in, &t_obj, &w_obj,
                          &lse_obj, &g_obj, &ignore_index, &eps, &kind))
        return NULL;
    SO_CHECK(kind >= SO_XE_NLL && kind <= SO_XE_PROB, done, PyExc_ValueError,
             "_cross_entropy_backward(): kind must be 0, 1 or 2, got %d", kind);
    const char *fname = kind == SO_XE_NLL ? "nll_loss_backward" : "cross_entropy_backward";
    memset(&c, 0, sizeof c);
    SO_CHECK_PTR(x = so_nn_contiguous(st, in, fname, "input"), done);
    SO_CHECK_PTR(t = so_nn_contiguous(st, t_obj, fname, "target"), done);
    SO_CHECK_PTR(g = so_nn_contiguous(st, g_obj, fname, "grad_output"), done);
    w = so_nn_optional(st, w_obj, fname, "weight", &err);
    lse = so_nn_optional(st, lse_obj, fname, "lse", &err);
    SO_CHECK_RC(err, done);
    SO_CHECK_RC(check_args(x, t, w, kind, fname, &c), done);
    SO_CHECK_RC(so_nn_check_dtype(x, g, fname, "grad_output"), done);
    SO_CHECK_RC(so_nn_check_device(x, g, fname, "grad_output"), done);
    SO_CHECK(so_tensor_numel(g) == 1 || so_tensor_numel(g) == c.N * c.inner, done,
             PyExc_RuntimeError, "%s(): grad_output must have 1 or %lld elements, got %lld", fname,
             (long long)(c.N * c.inner), (long long)so_tensor_numel(g));
    if (kind != SO_XE_NLL) {
        SO_CHECK(lse && so_tensor_numel(lse) == c.N * c.inner, done, PyExc_RuntimeError,
                 "%s(): lse must have one element per sample", fname);
        SO_CHECK_RC(so_nn_check_dtype(x, lse, fname, "lse"), done);
        SO_CHECK_RC(so_nn_check_device(x, lse, fname, "lse"), done);
    }
    SO_CHECK_PTR(gx = so_tensor_empty(st, x->ndim, x->shape, x->dtype, so_tensor_device(x)), done);
    c.x = so_tensor_data(x);
    c.target = so_tensor_data(t);
    c.w = w ? so_tensor_data(w) : NULL;
    c.lse = lse ? so_tensor_data(lse) : NULL;
    c.ignore_index = ignore_index;
    c.eps = eps;
    c.gs = so_tensor_data(g);
    c.gs_stride = so_tensor_numel(g) == c.N * c.inner && c.N * c.inner != 1 ? 1 : 0;
    c.gx = so_tensor_data(gx);
    if (so_tensor_device(x).type == SO_META) SO_CHECK_RC(so_meta_unsupported("cross_entropy_backward"), done);
    if (so_tensor_device(x).type == SO_CPU) {
        Py_BEGIN_ALLOW_THREADS
        so_xe_backward_cpu(&c);
        Py_END_ALLOW_THREADS
    } else {
        int prev, rc;
        void *stream = so_nn_cuda_begin(st, so_tensor_device(x), &prev);
        SO_CHECK_PTR(stream, done);
        rc = so_nn_launched(so_xe_backward_cuda(&c, stream), "cross_entropy backward launch");
        so_nn_cuda_end(so_tensor_device(x), prev);
        SO_CHECK_RC(rc, done);
    }
    res = (PyObject *)gx;
    gx = NULL;
done:
    Py_XDECREF(x);
    Py_XDECREF(t);
    Py_XDECREF(w);
    Py_XDECREF(lse);
    Py_XDECREF(g);
    Py_XDECREF(gx);
    return res;
}

static PyMethodDef cross_entropy_functions[] = {
    {"_cross_entropy", py_cross_entropy, METH_VARARGS,
     "_cross_entropy(input, target, weight, ignore_index, label_smoothing, kind) -> "
     "(loss, wt, lse) per sample; kind 0 = nll, 1 = class indices, 2 = class probabilities"},
    {"_cross_entropy_backward", py_cross_entropy_backward, METH_VARARGS,
     "_cross_entropy_backward(input, target, weight, lse, grad, ignore_index, "
     "label_smoothing, kind) -> input gradient"},
    {NULL}};

int so_register_cross_entropy(PyObject *m, so_state *st)
{
    (void)st;
    return PyModule_AddFunctions(m, cross_entropy_functions);
}
