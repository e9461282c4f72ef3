/* layer_norm.c — bindings of LayerNorm / RMSNorm forward and backward: normalized_shape
 * checks with torch's messages, output allocation, and the one place that picks the CPU or
 * CUDA kernel.  Defaults (eps=None for RMSNorm, half inputs) are handled in
 * shardopt/nn/functional.py. */
#include "layer_norm.h"
#include "nn_args.h"

#ifndef SHARDOPT_WITH_CUDA
int so_ln_forward_cuda(const so_ln_call *c, void *stream)
{
    (void)c; (void)stream;
    return 1; /* never reached: a CPU-only build has no CUDA tensors */
}
int so_ln_backward_cuda(const so_ln_call *c, void *stream)
{
    (void)c; (void)stream;
    return 1;
}
#endif

static int run(so_state *st, so_ln_call *c, so_device dev, int backward)
{
    if (dev.type == SO_META) return 0; /* meta: outputs are allocated, nothing to compute */
    if (dev.type == SO_CPU) {
        Py_BEGIN_ALLOW_THREADS
        if (backward) so_ln_backward_cpu(c);
        else so_ln_forward_cpu(c);
        Py_END_ALLOW_THREADS
        return 0;
    }
    int prev, rc;
    void *stream = so_nn_cuda_begin(st, dev, &prev);
    if (!stream) return -1;
    rc = so_nn_launched(backward ? so_ln_backward_cuda(c, stream) : so_ln_forward_cuda(c, stream),
                        "layer_norm kernel launch");
    so_nn_cuda_end(dev, prev);
    return rc;
}

/* Check x against normalized_shape (torch's message) and w/b against it; fills rows, n. */
static int check_shapes(const SoTensor *x, int nd, const int64_t *ns, const SoTensor *w,
                        const SoTensor *b, const char *fname, int rms, so_ln_call *c)
{
    char b1[160], b2[160];
    int ok = nd >= 1 && nd <= x->ndim;
    for (int i = 0; ok && i < nd; i++) ok = x->shape[x->ndim - nd + i] == ns[i];
    if (nd < 1)
        return so_fail(PyExc_RuntimeError, "Expected normalized_shape to be at least "
                       "1-dimensional, i.e., containing at least one element, but got "
                       "normalized_shape = %s", so_shape_str(nd, ns, b1, sizeof b1));
    for (int k = 0; k < 2; k++) {
        const SoTensor *p = k ? b : w;
        if (p && !(p->ndim == nd && !memcmp(p->shape, ns, sizeof(int64_t) * nd)))
            return so_fail(PyExc_RuntimeError, "Expected %s to be of same shape as "
                           "normalized_shape, but got %s of shape %s and normalized_shape = %s",
                           k ? "bias" : "weight", k ? "bias" : "weight",
                           so_shape_str(p->ndim, p->shape, b1, sizeof b1),
                           so_shape_str(nd, ns, b2, sizeof b2));
    }
    if (!ok) {
        /* torch: "[*, 4]" for layer_norm, "[*4]" for rms_norm */
        char star[200];
        so_shape_str(nd, ns, b1, sizeof b1);
        snprintf(star, sizeof star, "[*%s%s", rms ? "" : ", ", b1 + 1);
        return so_fail(PyExc_RuntimeError, "Given normalized_shape=%s, expected input with shape "
                       "%s, but got input of size%s", b1, star,
                       so_shape_str(x->ndim, x->shape, b2, sizeof b2));
    }
    (void)fname;
    c->n = 1;
    for (int i = 0; i < nd; i++) c->n *= ns[i];
    c->rows = 1;
    for (int i = 0; i < x->ndim - nd; i++) c->rows *= x->shape[i];
    return 0;
}

/* _C._layer_norm(input, normalized_shape, weight, bias, eps, rms) -> (out, mean, rstd)
 * mean / rstd have the input's leading dims (rows). */
static PyObject *py_layer_norm(PyObject *m, PyObject *args)
{
    so_state *st = so_state_from_module(m);
    PyObject *in, *ns_obj, *w_obj, *b_obj, *res = NULL;
    double eps;
    int rms, nd, err = 0;
    int64_t ns[SO_MAX_DIMS];
    SoTensor *x = NULL, *w = NULL, *b = NULL, *y = NULL, *mean = NULL, *rstd = NULL;
    so_ln_call c;
    if (!PyArg_ParseTuple(args, "OOOOdp:_layer_norm", &in, &ns_obj, &w_obj, &b_obj, &eps, &rms))
        return NULL;
    const char *fname = rms ? "rms_norm" : "layer_norm";
    memset(&c, 0, sizeof c);
    SO_CHECK_PTR(x = so_nn_contiguous(st, in, fname, "input"), done);
    SO_CHECK_RC(so_nn_check_float(x, fname, "input"), done);
    SO_CHECK_RC(so_parse_int_seq(ns_obj, "normalized_shape", &nd, ns), done);
    w = so_nn_optional(st, w_obj, fname, "weight", &err);
    b = so_nn_optional(st, b_obj, fname, "bias", &err);
    SO_CHECK_RC(err, done);
    for (int k = 0; k < 2; k++) {
        SoTensor *p = k ? b : w;
        if (!p) continue;
        SO_CHECK_RC(so_nn_check_dtype(x, p, fname, k ? "bias" : "weight"), done);
        SO_CHECK_RC(so_nn_check_device(x, p, fname, k ? "bias" : "weight"), done);
    }
    SO_CHECK_RC(check_shapes(x, nd, ns, w, b, fname, rms, &c), done);
    SO_CHECK_PTR(y = so_tensor_empty(st, x->ndim, x->shape, x->dtype, so_tensor_device(x)), done);
    SO_CHECK_PTR(mean = so_tensor_empty(st, x->ndim - nd, x->shape, x->dtype, so_tensor_device(x)), done);
    SO_CHECK_PTR(rstd = so_tensor_empty(st, x->ndim - nd, x->shape, x->dtype, so_tensor_device(x)), done);
    c.rms = rms;
    c.dtype = x->dtype;
    c.eps = eps;
    c.x = so_tensor_data(x);
    c.w = w ? so_tensor_data(w) : NULL;
    c.b = b ? so_tensor_data(b) : NULL;
    c.y = so_tensor_data(y);
    c.mean = so_tensor_data(mean);
    c.rstd = so_tensor_data(rstd);
    SO_CHECK_RC(run(st, &c, so_tensor_device(x), 0), done);
    res = Py_BuildValue("(OOO)", y, mean, rstd);
done:
    Py_XDECREF(x);
    Py_XDECREF(w);
    Py_XDECREF(b);
    Py_XDECREF(y);
    Py_XDECREF(mean);
    Py_XDECREF(rstd);
    return res;
}

/* _C._layer_norm_backward(grad, input, mean, rstd, weight, n, rms, mask) -> (gx, gw, gb)
 * mask: 3 bools saying which gradients are wanted (None for the others). */
static PyObject *py_layer_norm_backward(PyObject *m, PyObject *args)
{
    so_state *st = so_state_from_module(m);
    PyObject *g_obj, *x_obj, *mean_obj, *rstd_obj, *w_obj, *res = NULL;
    long long n;
    int rms, want_x, want_w, want_b, err = 0;
    SoTensor *g = NULL, *x = NULL, *mean = NULL, *rstd = NULL, *w = NULL;
    SoTensor *gx = NULL, *gw = NULL, *gb = NULL;
    so_ln_call c;
    if (!PyArg_ParseTuple(args, "OOOOOLp(ppp):_layer_norm_backward", &g_obj, &x_obj, &mean_obj,
                          &rstd_obj, &w_obj, &n, &rms, &want_x, &want_w, &want_b))
        return NULL;
    const char *fname = "layer_norm_backward";
    memset(&c, 0, sizeof c);
    SO_CHECK_PTR(g = so_nn_contiguous(st, g_obj, fname, "grad_out"), done);
    SO_CHECK_PTR(x = so_nn_contiguous(st, x_obj, fname, "input"), done);
    SO_CHECK_PTR(mean = so_nn_contiguous(st, mean_obj, fname, "mean"), done);
    SO_CHECK_PTR(rstd = so_nn_contiguous(st, rstd_obj, fname, "rstd"), done);
    w = so_nn_optional(st, w_obj, fname, "weight", &err);
    SO_CHECK_RC(err, done);
    SO_CHECK_RC(so_nn_check_float(x, fname, "input"), done);
    SO_CHECK_RC(so_nn_check_dtype(x, g, fname, "grad_out"), done);
    SO_CHECK_RC(so_nn_check_device(x, g, fname, "grad_out"), done);
    SO_CHECK_RC(so_nn_check_dtype(x, mean, fname, "mean"), done);
    SO_CHECK_RC(so_nn_check_device(x, mean, fname, "mean"), done);
    SO_CHECK_RC(so_nn_check_dtype(x, rstd, fname, "rstd"), done);
    SO_CHECK_RC(so_nn_check_device(x, rstd, fname, "rstd"), done);
    if (w) {
        SO_CHECK_RC(so_nn_check_dtype(x, w, fname, "weight"), done);
        SO_CHECK_RC(so_nn_check_device(x, w, fname, "weight"), done);
    }
    SO_CHECK(so_tensor_numel(g) == so_tensor_numel(x) && n > 0 && so_tensor_numel(x) % n == 0 &&
                 so_tensor_numel(mean) * n == so_tensor_numel(x) &&
                 so_tensor_numel(rstd) == so_tensor_numel(mean) && (!w || so_tensor_numel(w) == n),
             done, PyExc_RuntimeError, "layer_norm_backward(): inconsistent sizes");
    c.rms = rms;
    c.dtype = x->dtype;
    c.n = n;
    c.rows = so_tensor_numel(x) / n;
    c.x = so_tensor_data(x);
    c.g = so_tensor_data(g);
    c.mean = so_tensor_data(mean);
    c.rstd = so_tensor_data(rstd);
    c.w = w ? so_tensor_data(w) : NULL;
    if (want_x) {
        SO_CHECK_PTR(gx = so_tensor_empty(st, x->ndim, x->shape, x->dtype, so_tensor_device(x)), done);
        c.gx = so_tensor_data(gx);
    }
    if (want_w) {
        int64_t shp[1] = {n};
        SO_CHECK_PTR(gw = so_tensor_empty(st, 1, shp, x->dtype, so_tensor_device(x)), done);
        c.gw = so_tensor_data(gw);
    }
    if (want_b) {
        int64_t shp[1] = {n};
        SO_CHECK_PTR(gb = so_tensor_empty(st, 1, shp, x->dtype, so_tensor_device(x)), done);
        c.gb = so_tensor_data(gb);
    }
    SO_CHECK_RC(run(st, &c, so_tensor_device(x), 1), done);
    res = Py_BuildValue("(OOO)", gx ? (PyObject *)gx : Py_None, gw ? (PyObject *)gw : Py_None,
                        gb ? (PyObject *)gb : Py_None);
done:
    Py_XDECREF(g);
    Py_XDECREF(x);
    Py_XDECREF(mean);
    Py_XDECREF(rstd);
    Py_XDECREF(w);
    Py_XDECREF(gx);
    Py_XDECREF(gw);
    Py_XDECREF(gb);
    return res;
}

static PyMethodDef layer_norm_functions[] = {
    {"_layer_norm", py_layer_norm, METH_VARARGS,
     "_layer_norm(input, normalized_shape, weight, bias, eps, rms) -> (out, mean, rstd)"},
    {"_layer_norm_backward", py_layer_norm_backward, METH_VARARGS,
     "_layer_norm_backward(grad, input, mean, rstd, weight, n, rms, (gx, gw, gb wanted))"},
    {NULL}};

int so_register_layer_norm(PyObject *m, so_state *st)
{
    (void)st;
    return PyModule_AddFunctions(m, layer_norm_functions);
}
