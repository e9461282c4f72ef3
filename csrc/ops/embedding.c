/* embedding.c — bindings of Embedding / EmbeddingBag: index and offsets validation with
 * torch's messages, output allocation, and the one place that picks the CPU or CUDA kernel.
 * torch's argument forms (2-D bag inputs, include_last_offset, padding_idx normalisation)
 * are turned into (1-D indices, B + 1 int64 offsets) by shardopt/nn/functional.py. */
#include "embedding.h"
#include "nn_args.h"
#include "../tensor/copy.h"

#ifndef SHARDOPT_WITH_CUDA
int so_emb_forward_cuda(so_emb_call *c, void *s, int64_t *b) { (void)c; (void)s; (void)b; return 1; }
int so_emb_backward_cuda(const so_emb_call *c, void *s) { (void)c; (void)s; return 1; }
int so_emb_renorm_cuda(so_emb_call *c, void *s, int64_t *b) { (void)c; (void)s; (void)b; return 1; }
int so_bag_forward_cuda(so_emb_call *c, void *s, int64_t *b) { (void)c; (void)s; (void)b; return 1; }
int so_bag_backward_cuda(const so_emb_call *c, void *s) { (void)c; (void)s; return 1; }
#endif

enum { K_FWD, K_BWD, K_RENORM, K_BAG_FWD, K_BAG_BWD };

static int run(so_state *st, so_emb_call *c, so_device dev, int which)
{
    int64_t bad[2] = {0, 0};
    int err = 0;
    if (dev.type == SO_META) return so_meta_unsupported(which == K_RENORM ? "embedding_renorm_" : which >= K_BAG_FWD ? "embedding_bag" : "embedding");
    if (dev.type == SO_CPU) {
        c->bad = bad;
        Py_BEGIN_ALLOW_THREADS
        switch (which) {
        case K_FWD: so_emb_forward_cpu(c); break;
        case K_BWD: so_emb_backward_cpu(c); break;
        case K_RENORM: so_emb_renorm_cpu(c); break;
        case K_BAG_FWD: so_bag_forward_cpu(c); break;
        default: so_bag_backward_cpu(c); break;
        }
        Py_END_ALLOW_THREADS
    } else {
        int prev;
        void *stream = so_nn_cuda_begin(st, dev, &prev);
        if (!stream) return -1;
        switch (which) {
        case K_FWD: err = so_emb_forward_cuda(c, stream, bad); break;
        case K_BWD: err = so_emb_backward_cuda(c, stream); break;
        case K_RENORM: err = so_emb_renorm_cuda(c, stream, bad); break;
        case K_BAG_FWD: err = so_bag_forward_cuda(c, stream, bad); break;
        default: err = so_bag_backward_cuda(c, stream); break;
        }
        err = so_nn_launched(err, "embedding kernel launch");
        so_nn_cuda_end(dev, prev);
        if (err < 0) return -1;
    }
    if (bad[0]) return so_fail(PyExc_IndexError, "index out of range in self");
    return 0;
}

static int weight_args(so_state *st, PyObject *w_obj, PyObject *i_obj, const char *fname,
                       SoTensor **w, SoTensor **idx, so_emb_call *c)
{
    char b1[160];
    if (!(*w = so_nn_contiguous(st, w_obj, fname, "weight"))) return -1;
    if (!(*idx = so_nn_contiguous(st, i_obj, fname, "indices"))) return -1;
    if (so_nn_check_index(*idx, fname, "indices") < 0) return -1;
    if (so_nn_check_float(*w, fname, "weight") < 0) return -1;
    if (so_nn_check_device(*w, *idx, fname, "indices") < 0) return -1;
    if ((*w)->ndim != 2)
        return so_fail(PyExc_RuntimeError, "'weight' must be 2-D, got shape %s",
                       so_shape_str((*w)->ndim, (*w)->shape, b1, sizeof b1));
    memset(c, 0, sizeof *c);
    c->dtype = (*w)->dtype;
    c->idtype = (*idx)->dtype;
    c->V = (*w)->shape[0];
    c->D = (*w)->shape[1];
    c->n = so_tensor_numel(*idx);
    c->w = so_tensor_data(*w);
    c->idx = so_tensor_data(*idx);
    c->padding_idx = -1;
    return 0;
}

/* _C._embedding(weight, indices) -> weight[indices] of shape (*indices.shape, D) */
static PyObject *py_embedding(PyObject *m, PyObject *args)
{
    so_state *st = so_state_from_module(m);
    PyObject *w_obj, *i_obj, *res = NULL;
    SoTensor *w = NULL, *idx = NULL, *out = NULL;
    int64_t shape[SO_MAX_DIMS];
    so_emb_call c;
    if (!PyArg_ParseTuple(args, "OO:_embedding", &w_obj, &i_obj)) return NULL;
    SO_CHECK_RC(weight_args(st, w_obj, i_obj, "embedding", &w, &idx, &c), done);
    SO_CHECK(idx->ndim < SO_MAX_DIMS, done, PyExc_RuntimeError,
             "embedding(): indices have too many dimensions (%d)", idx->ndim);
    memcpy(shape, idx->shape, sizeof(int64_t) * idx->ndim);
    shape[idx->ndim] = c.D;
    SO_CHECK_PTR(out = so_tensor_empty(st, idx->ndim + 1, shape, w->dtype, so_tensor_device(w)), done);
    c.out = so_tensor_data(out);
    SO_CHECK_RC(run(st, &c, so_tensor_device(w), K_FWD), done);
    res = (PyObject *)out;
    out = NULL;
done:
    Py_XDECREF(w);
    Py_XDECREF(idx);
    Py_XDECREF(out);
    return res;
}

/* _C._embedding_backward(grad, weight, indices, padding_idx, scale_grad_by_freq) -> grad
 * of the weight (V, D) (weight gives the shape, dtype and device only). */
static PyObject *py_embedding_backward(PyObject *m, PyObject *args)
{
    so_state *st = so_state_from_module(m);
    PyObject *g_obj, *w_obj, *i_obj, *res = NULL;
    long long padding_idx;
    int freq;
    SoTensor *g = NULL, *w = NULL, *idx = NULL, *gw = NULL, *scratch = NULL;
    so_emb_call c;
    if (!PyArg_ParseTuple(args, "OOOLp:_embedding_backward", &g_obj, &w_obj, &i_obj,
                          &padding_idx, &freq))
        return NULL;
    SO_CHECK_RC(weight_args(st, w_obj, i_obj, "embedding_backward", &w, &idx, &c), done);
    SO_CHECK_PTR(g = so_nn_contiguous(st, g_obj, "embedding_backward", "grad"), done);
    SO_CHECK_RC(so_nn_check_dtype(w, g, "embedding_backward", "grad"), done);
    SO_CHECK_RC(so_nn_check_device(w, g, "embedding_backward", "grad"), done);
    SO_CHECK(so_tensor_numel(g) == c.n * c.D, done, PyExc_RuntimeError,
             "embedding_backward(): grad has %lld elements, expected %lld",
             (long long)so_tensor_numel(g), (long long)(c.n * c.D));
    SO_CHECK_PTR(gw = so_tensor_empty(st, 2, w->shape, w->dtype, so_tensor_device(w)), done);
    if (freq) {
        int64_t vs[1] = {c.V};
        SO_CHECK_PTR(scratch = so_tensor_empty(st, 1, vs, SO_INT64, so_tensor_device(w)), done);
        c.scratch = (int64_t *)(void *)so_tensor_data(scratch);
    }
    c.g = so_tensor_data(g);
    c.gw = so_tensor_data(gw);
    c.padding_idx = padding_idx;
    c.scale_grad_by_freq = freq;
    SO_CHECK_RC(run(st, &c, so_tensor_device(w), K_BWD), done);
    res = (PyObject *)gw;
    gw = NULL;
done:
    Py_XDECREF(g);
    Py_XDECREF(w);
    Py_XDECREF(idx);
    Py_XDECREF(gw);
    Py_XDECREF(scratch);
    return res;
}

/* _C._embedding_renorm_(weight, indices, max_norm, norm_type) -> weight, rows referenced by
 * indices with a norm above max_norm rescaled in place (each distinct row once). */
static PyObject *py_embedding_renorm_(PyObject *m, PyObject *args)
{
    so_state *st = so_state_from_module(m);
    PyObject *w_obj, *i_obj, *res = NULL;
    double max_norm, norm_type;
    SoTensor *w = NULL, *idx = NULL, *scratch = NULL;
    so_emb_call c;
    if (!PyArg_ParseTuple(args, "OOdd:_embedding_renorm_", &w_obj, &i_obj, &max_norm, &norm_type))
        return NULL;
    SO_CHECK_RC(weight_args(st, w_obj, i_obj, "embedding_renorm_", &w, &idx, &c), done);
    SO_CHECK(w == (SoTensor *)w_obj, done, PyExc_RuntimeError,
             "embedding_renorm_(): weight must be contiguous (it is modified in place)");
    {
        int64_t vs[1] = {c.V > 0 ? c.V : 1};
        SO_CHECK_PTR(scratch = so_tensor_empty(st, 1, vs, SO_INT64, so_tensor_device(w)), done);
    }
    c.scratch = (int64_t *)(void *)so_tensor_data(scratch);
    c.max_norm = max_norm;
    c.norm_type = norm_type;
    SO_CHECK_RC(run(st, &c, so_tensor_device(w), K_RENORM), done);
    so_tensor_bump_version(w);
    res = Py_NewRef(w_obj);
done:
    Py_XDECREF(w);
    Py_XDECREF(idx);
    Py_XDECREF(scratch);
    return res;
}

/* offsets (B + 1 int64 boundaries): torch's checks, on a host copy. */
static int check_offsets(so_state *st, SoTensor *off, int64_t n)
{
    SoTensor *host = off;
    int rc = -1;
    int64_t B1 = so_tensor_numel(off);
    if (off->dtype != SO_INT64 || off->ndim != 1 || B1 < 1)
        return so_fail(PyExc_RuntimeError, "embedding_bag(): offsets must be a 1-D int64 tensor");
    if (so_tensor_device(off).type != SO_CPU) {
        so_device cpu = {SO_CPU, 0};
        if (!(host = so_tensor_convert(st, off, SO_INT64, cpu))) return -1;
    }
    const int64_t *o = (const int64_t *)(const void *)so_tensor_data(host);
    SO_CHECK(o[0] == 0, done, PyExc_RuntimeError, "offsets[0] has to be 0, i.e., the first "
             "sequence in the mini-batch has to start from position 0. However, got %lld",
             (long long)o[0]);
    for (int64_t b = 0; b < B1; b++) /* the appended end is n itself: a larger user offset */
        SO_CHECK(o[b] <= n, done, PyExc_RuntimeError, "offsets[-1] can not be greater than "
                 "input's length %lld but got offsets[-1] of %lld", (long long)n, (long long)o[b]);
    for (int64_t b = 1; b < B1; b++)
        SO_CHECK(o[b] >= o[b - 1], done, PyExc_RuntimeError, "embedding_bag(): offsets must be "
                 "non-decreasing, but offsets[%lld] = %lld < offsets[%lld] = %lld", (long long)b,
                 (long long)o[b], (long long)(b - 1), (long long)o[b - 1]);
    rc = 0;
done:
    if (host != off) Py_DECREF(host);
    return rc;
}

/* _C._embedding_bag(weight, indices, offsets, mode, per_sample_weights, padding_idx)
 *   -> (out (B, D), bag_count (B,), max_idx (B, D) or None) */
static PyObject *py_embedding_bag(PyObject *m, PyObject *args)
{
    so_state *st = so_state_from_module(m);
    PyObject *w_obj, *i_obj, *o_obj, *p_obj, *res = NULL;
    int mode, err = 0;
    long long padding_idx;
    SoTensor *w = NULL, *idx = NULL, *off = NULL, *psw = NULL, *out = NULL, *cnt = NULL, *mi = NULL;
    so_emb_call c;
    if (!PyArg_ParseTuple(args, "OOOiOL:_embedding_bag", &w_obj, &i_obj, &o_obj, &mode, &p_obj,
                          &padding_idx))
        return NULL;
    SO_CHECK(mode >= SO_BAG_SUM && mode <= SO_BAG_MAX, done, PyExc_ValueError,
             "mode has to be one of sum, mean or max");
    SO_CHECK_RC(weight_args(st, w_obj, i_obj, "embedding_bag", &w, &idx, &c), done);
    SO_CHECK_PTR(off = so_nn_contiguous(st, o_obj, "embedding_bag", "offsets"), done);
    SO_CHECK_RC(so_nn_check_device(w, off, "embedding_bag", "offsets"), done);
    SO_CHECK_RC(check_offsets(st, off, c.n), done);
    psw = so_nn_optional(st, p_obj, "embedding_bag", "per_sample_weights", &err);
    SO_CHECK_RC(err, done);
    if (psw) {
        SO_CHECK_RC(so_nn_check_dtype(w, psw, "embedding_bag", "per_sample_weights"), done);
        SO_CHECK_RC(so_nn_check_device(w, psw, "embedding_bag", "per_sample_weights"), done);
        SO_CHECK(so_tensor_numel(psw) == c.n, done, PyExc_ValueError,
                 "per_sample_weights has to be of the same shape as input");
    }
    c.mode = mode;
    c.B = so_tensor_numel(off) - 1;
    c.offsets = (const int64_t *)(const void *)so_tensor_data(off);
    c.psw = psw ? so_tensor_data(psw) : NULL;
    c.padding_idx = padding_idx;
    {
        int64_t os[2] = {c.B, c.D};
        so_device dev = so_tensor_device(w);
        SO_CHECK_PTR(out = so_tensor_empty(st, 2, os, w->dtype, dev), done);
        SO_CHECK_PTR(cnt = so_tensor_empty(st, 1, os, SO_INT64, dev), done);
        if (mode == SO_BAG_MAX) SO_CHECK_PTR(mi = so_tensor_empty(st, 2, os, SO_INT64, dev), done);
    }
    c.out = so_tensor_data(out);
    c.bag_count = (int64_t *)(void *)so_tensor_data(cnt);
    c.max_idx = mi ? (int64_t *)(void *)so_tensor_data(mi) : NULL;
    SO_CHECK_RC(run(st, &c, so_tensor_device(w), K_BAG_FWD), done);
    res = Py_BuildValue("(OOO)", out, cnt, mi ? (PyObject *)mi : Py_None);
done:
    Py_XDECREF(w);
    Py_XDECREF(idx);
    Py_XDECREF(off);
    Py_XDECREF(psw);
    Py_XDECREF(out);
    Py_XDECREF(cnt);
    Py_XDECREF(mi);
    return res;
}

/* _C._embedding_bag_backward(grad, weight, indices, offsets, bag_count, max_idx, mode,
 *                            per_sample_weights, padding_idx, want_weight, want_psw)
 *   -> (grad_weight or None, grad_per_sample_weights or None) */
static PyObject *py_embedding_bag_backward(PyObject *m, PyObject *args)
{
    so_state *st = so_state_from_module(m);
    PyObject *g_obj, *w_obj, *i_obj, *o_obj, *c_obj, *mi_obj, *p_obj, *res = NULL;
    int mode, want_w, want_p, freq = 0, err = 0;
    long long padding_idx;
    SoTensor *g = NULL, *w = NULL, *idx = NULL, *off = NULL, *cnt = NULL, *mi = NULL, *psw = NULL;
    SoTensor *gw = NULL, *gp = NULL, *scratch = NULL;
    so_emb_call c;
    if (!PyArg_ParseTuple(args, "OOOOOOiOLpp|p:_embedding_bag_backward", &g_obj, &w_obj, &i_obj,
                          &o_obj, &c_obj, &mi_obj, &mode, &p_obj, &padding_idx, &want_w, &want_p,
                          &freq))
        return NULL;
    SO_CHECK(mode >= SO_BAG_SUM && mode <= SO_BAG_MAX, done, PyExc_ValueError,
             "mode has to be one of sum, mean or max");
    SO_CHECK_RC(weight_args(st, w_obj, i_obj, "embedding_bag_backward", &w, &idx, &c), done);
    SO_CHECK_PTR(g = so_nn_contiguous(st, g_obj, "embedding_bag_backward", "grad"), done);
    SO_CHECK_PTR(off = so_nn_contiguous(st, o_obj, "embedding_bag_backward", "offsets"), done);
    SO_CHECK_PTR(cnt = so_nn_contiguous(st, c_obj, "embedding_bag_backward", "bag_count"), done);
    mi = so_nn_optional(st, mi_obj, "embedding_bag_backward", "max_indices", &err);
    psw = so_nn_optional(st, p_obj, "embedding_bag_backward", "per_sample_weights", &err);
    SO_CHECK_RC(err, done);
    c.B = so_tensor_numel(off) - 1;
    SO_CHECK(off->dtype == SO_INT64 && cnt->dtype == SO_INT64 && so_tensor_numel(cnt) == c.B &&
                 so_tensor_numel(g) == c.B * c.D && g->dtype == w->dtype &&
                 (!psw || (so_tensor_numel(psw) == c.n && psw->dtype == w->dtype)) &&
                 (mode != SO_BAG_MAX || (mi && mi->dtype == SO_INT64 && so_tensor_numel(mi) == c.B * c.D)),
             done, PyExc_RuntimeError, "embedding_bag_backward(): inconsistent arguments");
    SO_CHECK_RC(so_nn_check_device(w, g, "embedding_bag_backward", "grad"), done);
    SO_CHECK_RC(so_nn_check_device(w, off, "embedding_bag_backward", "offsets"), done);
    SO_CHECK_RC(so_nn_check_device(w, cnt, "embedding_bag_backward", "bag_count"), done);
    if (mi) SO_CHECK_RC(so_nn_check_device(w, mi, "embedding_bag_backward", "max_indices"), done);
    if (psw)
        SO_CHECK_RC(so_nn_check_device(w, psw, "embedding_bag_backward", "per_sample_weights"),
                    done);
    SO_CHECK_RC(check_offsets(st, off, c.n), done);
    c.mode = mode;
    c.offsets = (const int64_t *)(const void *)so_tensor_data(off);
    c.bag_count = (int64_t *)(void *)so_tensor_data(cnt);
    c.max_idx = mi ? (int64_t *)(void *)so_tensor_data(mi) : NULL;
    c.psw = psw ? so_tensor_data(psw) : NULL;
    c.padding_idx = padding_idx;
    c.g = so_tensor_data(g);
    if (want_w) {
        SO_CHECK_PTR(gw = so_tensor_empty(st, 2, w->shape, w->dtype, so_tensor_device(w)), done);
        c.gw = so_tensor_data(gw);
        if (freq && mode != SO_BAG_MAX) {
            int64_t vs[1] = {c.V > 0 ? c.V : 1};
            SO_CHECK_PTR(scratch = so_tensor_empty(st, 1, vs, SO_INT64, so_tensor_device(w)), done);
            c.scratch = (int64_t *)(void *)so_tensor_data(scratch);
            c.scale_grad_by_freq = 1;
        }
    }
    if (want_p && mode == SO_BAG_SUM) {
        int64_t ns[1] = {c.n};
        SO_CHECK_PTR(gp = so_tensor_empty(st, 1, ns, w->dtype, so_tensor_device(w)), done);
        c.gpsw = so_tensor_data(gp);
    }
    SO_CHECK_RC(run(st, &c, so_tensor_device(w), K_BAG_BWD), done);
    res = Py_BuildValue("(OO)", gw ? (PyObject *)gw : Py_None, gp ? (PyObject *)gp : Py_None);
done:
    Py_XDECREF(g);
    Py_XDECREF(w);
    Py_XDECREF(idx);
    Py_XDECREF(off);
    Py_XDECREF(cnt);
    Py_XDECREF(mi);
    Py_XDECREF(psw);
    Py_XDECREF(gw);
    Py_XDECREF(gp);
    Py_XDECREF(scratch);
    return res;
}

static PyMethodDef embedding_functions[] = {
    {"_embedding", py_embedding, METH_VARARGS, "_embedding(weight, indices) -> weight[indices]"},
    {"_embedding_backward", py_embedding_backward, METH_VARARGS,
     "_embedding_backward(grad, weight, indices, padding_idx, scale_grad_by_freq) -> grad_weight"},
    {"_embedding_renorm_", py_embedding_renorm_, METH_VARARGS,
     "_embedding_renorm_(weight, indices, max_norm, norm_type) -> weight"},
    {"_embedding_bag", py_embedding_bag, METH_VARARGS,
     "_embedding_bag(weight, indices, offsets, mode, per_sample_weights, padding_idx) -> "
     "(out, bag_count, max_indices)"},
    {"_embedding_bag_backward", py_embedding_bag_backward, METH_VARARGS,
     "_embedding_bag_backward(grad, weight, indices, offsets, bag_count, max_indices, mode, "
     "per_sample_weights, padding_idx, want_weight, want_psw, scale_grad_by_freq=False)"},
    {NULL}};

int so_register_embedding(PyObject *m, so_state *st)
{
    (void)st;
    return PyModule_AddFunctions(m, embedding_functions);
}
