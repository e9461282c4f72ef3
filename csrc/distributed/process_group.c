/* process_group.c — shardopt._C.ProcessGroupGloo: one Gloo context over contiguous CPU
 * tensors.  shardopt.distributed (Python) owns the group bookkeeping and stages CUDA and
 * non-contiguous tensors through contiguous host copies.
 *
 * Each method validates its arguments (with the GIL, so bad input raises at the call),
 * turns them into a job (pg_queue.h) and either runs it in order (async_op false: the GIL
 * is released while Gloo runs, and a failure raises DistTimeoutError / DistBackendError
 * naming the op) or queues it for the group's worker thread and returns a GlooWork
 * (work.c).  The group keeps every unfinished Work in a list, so the tensors a queued op
 * points to stay alive even if the caller drops the Work.  Zero-size work never reaches
 * Gloo (it crashes on empty buffers).  After a failure the Gloo context is broken and every
 * later op fails at once.
 */
#include "dist.h"
#include "gloo.h"
#include "pg_queue.h"
#include "work.h"
#include "../tensor/tensor.h"

#include <stdlib.h>
#include <string.h>

#ifdef SHARDOPT_WITH_GLOO

typedef struct {
    PyObject_HEAD
    so_pg_queue *q;     /* NULL after shutdown */
    PyObject *store;
    PyObject *inflight; /* list of GlooWork not yet completed */
    int rank, size;
    int64_t timeout_ms;
} PGObject;

/* ---- store callbacks (called from Gloo's rendezvous without the GIL) ------------------ */

/* Convert the pending Python exception into err; returns -2 for store timeouts. */
static int fetch_error(char *err)
{
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    PyObject *s = value ? PyObject_Str(value) : NULL;
    const char *msg = s ? PyUnicode_AsUTF8(s) : NULL;
    if (!msg) PyErr_Clear();
    snprintf(err, SO_GLOO_ERRLEN, "%s: %s", type ? ((PyTypeObject *)type)->tp_name : "error",
             msg ? msg : "?");
    int timeout = msg && (strstr(msg, "timeout") || strstr(msg, "Timeout") ||
                          strstr(msg, "timed out"));
    Py_XDECREF(s);
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
    return timeout ? SO_GLOO_TIMEOUT : SO_GLOO_ERR;
}

static int cb_set(void *h, const char *key, const char *val, size_t len, char *err)
{
    PyGILState_STATE g = PyGILState_Ensure();
    /* y# turns a NULL pointer into None; an empty value must stay bytes. */
    PyObject *r = PyObject_CallMethod((PyObject *)h, "set", "sy#", key, val ? val : "",
                                      (Py_ssize_t)len);
    int rc = r ? 0 : fetch_error(err);
    Py_XDECREF(r);
    PyGILState_Release(g);
    return rc;
}

static int cb_wait(void *h, const char *const *keys, int nkeys, int64_t timeout_ms, char *err)
{
    PyGILState_STATE g = PyGILState_Ensure();
    int rc = SO_GLOO_ERR;
    PyObject *list = PyList_New(nkeys), *r = NULL;
    if (!list) goto done;
    for (int i = 0; i < nkeys; i++) {
        PyObject *k = PyUnicode_FromString(keys[i]);
        if (!k) goto done;
        PyList_SET_ITEM(list, i, k);
    }
    r = PyObject_CallMethod((PyObject *)h, "wait", "Od", list, timeout_ms / 1000.0);
    rc = r ? 0 : -1;
done:
    if (rc) rc = fetch_error(err);
    Py_XDECREF(list);
    Py_XDECREF(r);
    PyGILState_Release(g);
    return rc;
}

static int cb_get(void *h, const char *key, int64_t timeout_ms, char **val, size_t *len,
                  char *err)
{
    const char *keys[1] = {key};
    int rc = cb_wait(h, keys, 1, timeout_ms, err);
    if (rc) return rc;
    PyGILState_STATE g = PyGILState_Ensure();
    PyObject *r = PyObject_CallMethod((PyObject *)h, "get", "s", key);
    rc = SO_GLOO_ERR;
    if (r && PyBytes_Check(r)) {
        *len = (size_t)PyBytes_GET_SIZE(r);
        *val = malloc(*len ? *len : 1);
        if (*val) {
            memcpy(*val, PyBytes_AS_STRING(r), *len);
            rc = 0;
        } else {
            snprintf(err, SO_GLOO_ERRLEN, "out of memory (%s:%d)", __FILE__, __LINE__);
        }
    } else if (r) {
        snprintf(err, SO_GLOO_ERRLEN, "store.get returned %s, not bytes", Py_TYPE(r)->tp_name);
    } else {
        rc = fetch_error(err);
    }
    Py_XDECREF(r);
    PyGILState_Release(g);
    return rc;
}

/* ---- helpers -------------------------------------------------------------------------- */

static int ready(PGObject *self)
{
    if (!self->q) {
        so_state *st = so_state_from_type(Py_TYPE(self));
        PyErr_SetString(st ? st->dist_error : PyExc_RuntimeError,
                        "the process group has been destroyed");
        return -1;
    }
    return 0;
}

/* A contiguous CPU tensor argument. */
static int cpu_tensor(PGObject *self, PyObject *obj, const char *argname, SoTensor **out)
{
    so_state *st = so_state_from_type(Py_TYPE(self));
    if (!st) return -1;
    if (!so_tensor_check(st, obj)) {
        PyErr_Format(PyExc_TypeError, "%s must be a Tensor, got %.100s", argname,
                     Py_TYPE(obj)->tp_name);
        return -1;
    }
    SoTensor *t = (SoTensor *)obj;
    if (so_tensor_device(t).type != SO_CPU || !so_tensor_is_contiguous(t)) {
        PyErr_Format(PyExc_ValueError, "%s must be a contiguous CPU tensor here", argname);
        return -1;
    }
    *out = t;
    return 0;
}

static int check_root(PGObject *self, int root, const char *argname)
{
    if (root < 0 || root >= self->size) {
        PyErr_Format(PyExc_ValueError, "%s must be in [0, %d), got %d", argname, self->size,
                     root);
        return -1;
    }
    return 0;
}

static int check_op(int op)
{
    if (op < SO_RED_SUM || op > SO_RED_MAX) {
        PyErr_Format(PyExc_ValueError, "op must be a ReduceOp (0..4), got %d", op);
        return -1;
    }
    return 0;
}

static size_t nbytes_of(SoTensor *t)
{
    return (size_t)so_tensor_numel(t) * (size_t)so_dtype_itemsize(t->dtype);
}

/* out must hold `mult` times the elements of `in`, with the same dtype. */
static int check_pair(SoTensor *out, SoTensor *in, int64_t mult, const char *outname,
                      const char *inname)
{
    if (out->dtype != in->dtype) {
        PyErr_Format(PyExc_TypeError, "%s and %s must have the same dtype", outname, inname);
        return -1;
    }
    if (so_tensor_numel(out) != mult * so_tensor_numel(in)) {
        PyErr_Format(PyExc_ValueError, "%s must have %lld elements (%lld x %lld), got %lld",
                     outname, (long long)(mult * so_tensor_numel(in)), (long long)mult,
                     (long long)so_tensor_numel(in), (long long)so_tensor_numel(out));
        return -1;
    }
    return 0;
}

static so_job *new_job(so_job_kind kind)
{
    so_job *j = so_job_new(kind);
    if (!j) PyErr_NoMemory();
    return j;
}

/* Drop the Works that have completed from the in-flight list. */
static int prune_inflight(PGObject *self)
{
    Py_ssize_t n = PyList_GET_SIZE(self->inflight), k = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *w = PyList_GET_ITEM(self->inflight, i);
        if (!so_gloo_work_done(w)) {
            Py_INCREF(w);
            PyList_SetItem(self->inflight, k++, w);
        }
    }
    return PyList_SetSlice(self->inflight, k, n, NULL);
}

/* Run j in order (sync) or queue it (async).  Consumes the caller's reference to j and
 * to `keep` (a new tuple of the tensors j points into, held by the Work; NULL with an
 * exception if building it failed, or NULL for none).  Sync ops return None (recv: the
 * source rank); async ones a GlooWork. */
static PyObject *issue(PGObject *self, so_job *j, int async_op, PyObject *keep)
{
    so_state *st = so_state_from_type(Py_TYPE(self));
    if (!st || (!keep && PyErr_Occurred())) {
        Py_XDECREF(keep);
        so_job_unref(j);
        return NULL;
    }
    if (!async_op) {
        int rc;
        Py_BEGIN_ALLOW_THREADS
        rc = so_pgq_run(self->q, j);
        if (!rc && (j->kind == SO_JOB_SEND || j->kind == SO_JOB_RECV))
            rc = so_job_wait(j, -1, j->err);
        Py_END_ALLOW_THREADS
        PyObject *res = NULL;
        if (rc)
            so_dist_raise_gloo(st, rc, j->err, self->rank, self->size);
        else
            res = j->kind == SO_JOB_RECV ? PyLong_FromLong(j->peer) : Py_NewRef(Py_None);
        so_job_unref(j);
        Py_XDECREF(keep);
        return res;
    }
    if (so_pgq_submit(self->q, j)) {
        so_dist_raise_gloo(st, j->rc, j->err, self->rank, self->size);
        so_job_unref(j);
        Py_XDECREF(keep);
        return NULL;
    }
    PyObject *w = so_gloo_work_new(st, j, keep, self->rank, self->size);  /* takes j, keep */
    if (!w) return NULL;
    if (prune_inflight(self) < 0 || PyList_Append(self->inflight, w) < 0) {
        /* The job is queued and the Work knows it; without the list entry the Work's
         * dealloc waits for it, so nothing dangles. */
        Py_DECREF(w);
        return NULL;
    }
    return w;
}

/* Parse the trailing async_op flag shared by every method. */
#define ASYNC_KW "async_op"

/* ---- type ----------------------------------------------------------------------------- */

static int PG_init(PyObject *op, PyObject *args, PyObject *kwds)
{
    PGObject *self = (PGObject *)op;
    static char *kwlist[] = {"store", "rank", "size", "timeout", "reduce_scatter", NULL};
    PyObject *store, *timeout;
    int rank, size, rs_alg = SO_GLOO_RS_RING;
    const char *rs = "ring";
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OiiO|s:ProcessGroupGloo", kwlist, &store,
                                     &rank, &size, &timeout, &rs))
        return -1;
    if (strcmp(rs, "halving_doubling") == 0) {
        rs_alg = SO_GLOO_RS_HALVING_DOUBLING;
    } else if (strcmp(rs, "ring") != 0) {
        PyErr_Format(PyExc_ValueError, "reduce_scatter must be 'ring' or 'halving_doubling', "
                     "got '%s'", rs);
        return -1;
    }
    if (self->q) {
        PyErr_SetString(PyExc_RuntimeError, "ProcessGroupGloo.__init__ called twice");
        return -1;
    }
    if (size < 1 || rank < 0 || rank >= size) {
        PyErr_Format(PyExc_ValueError, "rank must be in [0, size) and size >= 1, got rank=%d "
                     "size=%d", rank, size);
        return -1;
    }
    if (so_parse_timeout_ms(timeout, "timeout", &self->timeout_ms) < 0) return -1;
    if (!self->inflight && !(self->inflight = PyList_New(0))) return -1;
    Py_INCREF(store);
    Py_XSETREF(self->store, store);
    self->rank = rank;
    self->size = size;
    so_gloo_store cbs = {store, cb_set, cb_get, cb_wait};
    char err[SO_GLOO_ERRLEN] = "";
    so_gloo_ctx *ctx = NULL;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = so_gloo_connect(&cbs, rank, size, self->timeout_ms, &ctx, err);
    Py_END_ALLOW_THREADS
    if (rc) {
        so_state *st = so_state_from_type(Py_TYPE(self));
        if (st) so_dist_raise_gloo(st, rc, err, rank, size);
        return -1;
    }
    so_gloo_set_reduce_scatter(ctx, rs_alg);
    self->q = so_pgq_new(ctx, rank, size, self->timeout_ms);
    if (!self->q) {
        so_gloo_free(ctx);
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

/* Cancel queued ops, wait for the running one, stop the worker, free the context. */
static void pg_shutdown(PGObject *self)
{
    so_pg_queue *q = self->q;
    if (!q) return;
    self->q = NULL;
    Py_BEGIN_ALLOW_THREADS
    so_pgq_shutdown(q);
    Py_END_ALLOW_THREADS
    so_pgq_unref(q);  /* jobs still referenced by Works keep the (stopped) queue alive */
}

static void PG_dealloc(PyObject *op)
{
    PGObject *self = (PGObject *)op;
    PyTypeObject *tp = Py_TYPE(op);
    PyObject_GC_UnTrack(op);
    pg_shutdown(self);
    Py_CLEAR(self->inflight);
    Py_CLEAR(self->store);
    tp->tp_free(op);
    Py_DECREF(tp);
}

static int PG_traverse(PyObject *op, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(op));
    Py_VISIT(((PGObject *)op)->store);
    Py_VISIT(((PGObject *)op)->inflight);
    return 0;
}

static int PG_clear(PyObject *op)
{
    Py_CLEAR(((PGObject *)op)->store);
    return 0;
}

static PyObject *PG_allreduce(PyObject *op, PyObject *args, PyObject *kw)
{
    PGObject *self = (PGObject *)op;
    static char *kwlist[] = {"tensor", "op", ASYNC_KW, NULL};
    PyObject *to;
    int red, async_op = 0;
    SoTensor *t;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "Oi|p:allreduce", kwlist, &to, &red, &async_op) ||
        ready(self) < 0 || cpu_tensor(self, to, "tensor", &t) < 0 || check_op(red) < 0)
        return NULL;
    so_job *j = new_job(SO_JOB_ALLREDUCE);
    if (!j) return NULL;
    j->out = so_tensor_data(t);
    j->count = (size_t)so_tensor_numel(t);
    j->dtype = t->dtype;
    j->op = red;
    j->avg = red == SO_RED_AVG;
    so_tensor_bump_version(t);
    return issue(self, j, async_op, Py_BuildValue("(O)", to));
}

static PyObject *PG_reduce(PyObject *op, PyObject *args, PyObject *kw)
{
    PGObject *self = (PGObject *)op;
    static char *kwlist[] = {"tensor", "op", "root", ASYNC_KW, NULL};
    PyObject *to;
    int red, root, async_op = 0;
    SoTensor *t;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "Oii|p:reduce", kwlist, &to, &red, &root,
                                     &async_op) ||
        ready(self) < 0 || cpu_tensor(self, to, "tensor", &t) < 0 || check_op(red) < 0 ||
        check_root(self, root, "dst") < 0)
        return NULL;
    so_job *j = new_job(SO_JOB_REDUCE);
    if (!j) return NULL;
    j->out = so_tensor_data(t);
    j->count = (size_t)so_tensor_numel(t);
    j->dtype = t->dtype;
    j->op = red;
    j->root = root;
    j->avg = red == SO_RED_AVG;
    so_tensor_bump_version(t);
    return issue(self, j, async_op, Py_BuildValue("(O)", to));
}

static PyObject *PG_broadcast(PyObject *op, PyObject *args, PyObject *kw)
{
    PGObject *self = (PGObject *)op;
    static char *kwlist[] = {"tensor", "root", ASYNC_KW, NULL};
    PyObject *to;
    int root, async_op = 0;
    SoTensor *t;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "Oi|p:broadcast", kwlist, &to, &root, &async_op) ||
        ready(self) < 0 || cpu_tensor(self, to, "tensor", &t) < 0 ||
        check_root(self, root, "src") < 0)
        return NULL;
    so_job *j = new_job(SO_JOB_BROADCAST);
    if (!j) return NULL;
    j->out = so_tensor_data(t);
    j->nbytes = nbytes_of(t);
    j->root = root;
    so_tensor_bump_version(t);
    return issue(self, j, async_op, Py_BuildValue("(O)", to));
}

static PyObject *PG_allgather(PyObject *op, PyObject *args, PyObject *kw)
{
    PGObject *self = (PGObject *)op;
    static char *kwlist[] = {"output", "input", ASYNC_KW, NULL};
    PyObject *oo, *io;
    int async_op = 0;
    SoTensor *out, *in;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|p:allgather", kwlist, &oo, &io, &async_op) ||
        ready(self) < 0 || cpu_tensor(self, oo, "output_tensor", &out) < 0 ||
        cpu_tensor(self, io, "input_tensor", &in) < 0 ||
        check_pair(out, in, self->size, "output_tensor", "input_tensor") < 0)
        return NULL;
    so_job *j = new_job(SO_JOB_ALLGATHER);
    if (!j) return NULL;
    j->in = so_tensor_data(in);
    j->out = so_tensor_data(out);
    j->nbytes = nbytes_of(in);
    so_tensor_bump_version(out);
    return issue(self, j, async_op, Py_BuildValue("(OO)", oo, io));
}

static PyObject *PG_reduce_scatter(PyObject *op, PyObject *args, PyObject *kw)
{
    PGObject *self = (PGObject *)op;
    static char *kwlist[] = {"output", "input", "op", ASYNC_KW, NULL};
    PyObject *oo, *io;
    int red, async_op = 0;
    SoTensor *out, *in;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOi|p:reduce_scatter", kwlist, &oo, &io, &red,
                                     &async_op) ||
        ready(self) < 0 || cpu_tensor(self, oo, "output", &out) < 0 ||
        cpu_tensor(self, io, "input", &in) < 0 || check_op(red) < 0 ||
        check_pair(in, out, self->size, "input", "output") < 0)
        return NULL;
    so_job *j = new_job(SO_JOB_REDUCE_SCATTER);
    if (!j) return NULL;
    j->in = so_tensor_data(in);
    j->out = so_tensor_data(out);
    j->count = (size_t)so_tensor_numel(out);
    j->nbytes = nbytes_of(out);
    j->dtype = out->dtype;
    j->op = red;
    j->avg = red == SO_RED_AVG;
    so_tensor_bump_version(out);
    return issue(self, j, async_op, Py_BuildValue("(OO)", oo, io));
}

static PyObject *PG_gather(PyObject *op, PyObject *args, PyObject *kw)
{
    PGObject *self = (PGObject *)op;
    static char *kwlist[] = {"output", "input", "root", ASYNC_KW, NULL};
    PyObject *oo, *io;
    int root, async_op = 0;
    SoTensor *out = NULL, *in;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOi|p:gather", kwlist, &oo, &io, &root,
                                     &async_op) ||
        ready(self) < 0 || cpu_tensor(self, io, "tensor", &in) < 0 ||
        check_root(self, root, "dst") < 0)
        return NULL;
    if (self->rank == root && (cpu_tensor(self, oo, "gather_list", &out) < 0 ||
                               check_pair(out, in, self->size, "gather_list", "tensor") < 0))
        return NULL;
    so_job *j = new_job(SO_JOB_GATHER);
    if (!j) return NULL;
    j->in = so_tensor_data(in);
    j->out = out ? so_tensor_data(out) : NULL;
    j->nbytes = nbytes_of(in);
    j->root = root;
    if (out) so_tensor_bump_version(out);
    return issue(self, j, async_op, Py_BuildValue("(OO)", oo, io));
}

static PyObject *PG_scatter(PyObject *op, PyObject *args, PyObject *kw)
{
    PGObject *self = (PGObject *)op;
    static char *kwlist[] = {"output", "input", "root", ASYNC_KW, NULL};
    PyObject *oo, *io;
    int root, async_op = 0;
    SoTensor *out, *in = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOi|p:scatter", kwlist, &oo, &io, &root,
                                     &async_op) ||
        ready(self) < 0 || cpu_tensor(self, oo, "tensor", &out) < 0 ||
        check_root(self, root, "src") < 0)
        return NULL;
    if (self->rank == root && (cpu_tensor(self, io, "scatter_list", &in) < 0 ||
                               check_pair(in, out, self->size, "scatter_list", "tensor") < 0))
        return NULL;
    so_job *j = new_job(SO_JOB_SCATTER);
    if (!j) return NULL;
    j->in = in ? so_tensor_data(in) : NULL;
    j->out = so_tensor_data(out);
    j->nbytes = nbytes_of(out);
    j->root = root;
    so_tensor_bump_version(out);
    return issue(self, j, async_op, Py_BuildValue("(OO)", oo, io));
}

static int parse_splits(PyObject *seq, int size, int itemsize, const char *argname,
                        int64_t *out, int64_t *total)
{
    PyObject *f = PySequence_Fast(seq, argname);
    if (!f) return -1;
    if (PySequence_Fast_GET_SIZE(f) != size) {
        PyErr_Format(PyExc_ValueError, "%s must have %d entries", argname, size);
        Py_DECREF(f);
        return -1;
    }
    *total = 0;
    for (int i = 0; i < size; i++) {
        long long v = PyLong_AsLongLong(PySequence_Fast_GET_ITEM(f, i));
        if (v == -1 && PyErr_Occurred()) {
            Py_DECREF(f);
            return -1;
        }
        if (v < 0) {
            PyErr_Format(PyExc_ValueError, "%s entries must be >= 0, got %lld", argname, v);
            Py_DECREF(f);
            return -1;
        }
        out[i] = v * itemsize;
        *total += v;
    }
    Py_DECREF(f);
    return 0;
}

static PyObject *PG_alltoall(PyObject *op, PyObject *args, PyObject *kw)
{
    PGObject *self = (PGObject *)op;
    static char *kwlist[] = {"output", "input", "output_split_sizes", "input_split_sizes",
                             ASYNC_KW, NULL};
    PyObject *oo, *io, *os, *is;
    int async_op = 0;
    SoTensor *out, *in;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOOO|p:alltoall", kwlist, &oo, &io, &os, &is,
                                     &async_op) ||
        ready(self) < 0 || cpu_tensor(self, oo, "output", &out) < 0 ||
        cpu_tensor(self, io, "input", &in) < 0)
        return NULL;
    if (out->dtype != in->dtype) {
        PyErr_SetString(PyExc_TypeError, "output and input must have the same dtype");
        return NULL;
    }
    so_job *j = new_job(SO_JOB_ALLTOALL);
    if (!j) return NULL;
    j->out_bytes = malloc(sizeof(int64_t) * (size_t)self->size);
    j->in_bytes = malloc(sizeof(int64_t) * (size_t)self->size);
    int64_t ot, it;
    int isz = so_dtype_itemsize(in->dtype);
    if (!j->out_bytes || !j->in_bytes) {
        PyErr_NoMemory();
        goto error;
    }
    if (parse_splits(os, self->size, isz, "output_split_sizes", j->out_bytes, &ot) < 0 ||
        parse_splits(is, self->size, isz, "input_split_sizes", j->in_bytes, &it) < 0)
        goto error;
    if (ot != so_tensor_numel(out) || it != so_tensor_numel(in)) {
        PyErr_SetString(PyExc_ValueError, "split sizes must add up to the tensors' numel");
        goto error;
    }
    if (self->size == 1 && ot != it) {
        PyErr_SetString(PyExc_ValueError, "output and input sizes differ on a 1-rank group");
        goto error;
    }
    j->in = it ? so_tensor_data(in) : NULL;
    j->out = ot ? so_tensor_data(out) : NULL;
    j->nbytes = (size_t)ot * (size_t)isz;
    so_tensor_bump_version(out);
    return issue(self, j, async_op, Py_BuildValue("(OO)", oo, io));
error:
    so_job_unref(j);
    return NULL;
}

static PyObject *PG_barrier(PyObject *op, PyObject *args, PyObject *kw)
{
    PGObject *self = (PGObject *)op;
    static char *kwlist[] = {ASYNC_KW, NULL};
    int async_op = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|p:barrier", kwlist, &async_op) ||
        ready(self) < 0)
        return NULL;
    so_job *j = new_job(SO_JOB_BARRIER);
    if (!j) return NULL;
    return issue(self, j, async_op, NULL);
}

static PyObject *PG_send(PyObject *op, PyObject *args, PyObject *kw)
{
    PGObject *self = (PGObject *)op;
    static char *kwlist[] = {"tensor", "dst", "tag", ASYNC_KW, NULL};
    PyObject *to;
    int peer, async_op = 0;
    unsigned int tag;
    SoTensor *t;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OiI|p:send", kwlist, &to, &peer, &tag,
                                     &async_op) ||
        ready(self) < 0 || cpu_tensor(self, to, "tensor", &t) < 0 ||
        check_root(self, peer, "dst") < 0)
        return NULL;
    if (peer == self->rank) {
        PyErr_Format(PyExc_ValueError, "dst must differ from this rank (%d)", self->rank);
        return NULL;
    }
    so_job *j = new_job(SO_JOB_SEND);
    if (!j) return NULL;
    j->in = so_tensor_data(t);
    j->nbytes = nbytes_of(t);
    j->root = peer;
    j->tag = tag;
    return issue(self, j, async_op, Py_BuildValue("(O)", to));
}

/* recv(tensor, src, tag[, async_op]): src -1 accepts any other rank (the source rank is
 * returned, or given by the Work's source_rank()). */
static PyObject *PG_recv(PyObject *op, PyObject *args, PyObject *kw)
{
    PGObject *self = (PGObject *)op;
    static char *kwlist[] = {"tensor", "src", "tag", ASYNC_KW, NULL};
    PyObject *to;
    int peer, async_op = 0;
    unsigned int tag;
    SoTensor *t;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OiI|p:recv", kwlist, &to, &peer, &tag,
                                     &async_op) ||
        ready(self) < 0 || cpu_tensor(self, to, "tensor", &t) < 0 ||
        (peer != -1 && check_root(self, peer, "src") < 0))
        return NULL;
    if (peer == self->rank || (peer == -1 && self->size < 2)) {
        PyErr_Format(PyExc_ValueError, "src must differ from this rank (%d)", self->rank);
        return NULL;
    }
    so_job *j = new_job(SO_JOB_RECV);
    if (!j) return NULL;
    j->out = so_tensor_data(t);
    j->nbytes = nbytes_of(t);
    j->tag = tag;
    j->npeers = peer == -1 ? self->size - 1 : 1;
    j->peers = malloc(sizeof(int) * (size_t)j->npeers);
    if (!j->peers) {
        so_job_unref(j);
        return PyErr_NoMemory();
    }
    if (peer != -1) {
        j->peers[0] = peer;
    } else {
        for (int r = 0, k = 0; r < self->size; r++)
            if (r != self->rank) j->peers[k++] = r;
    }
    so_tensor_bump_version(t);
    return issue(self, j, async_op, Py_BuildValue("(O)", to));
}

static PyObject *PG_shutdown(PyObject *op, PyObject *unused)
{
    pg_shutdown((PGObject *)op);
    Py_RETURN_NONE;
}

static PyObject *PG_get_broken(PyObject *op, void *unused)
{
    PGObject *self = (PGObject *)op;
    char why[SO_GLOO_ERRLEN];
    if (self->q && self->q->ctx && so_gloo_broken(self->q->ctx, why, sizeof why))
        return PyUnicode_FromString(why);
    Py_RETURN_NONE;
}
static PyObject *PG_get_rank(PyObject *op, void *unused) { return PyLong_FromLong(((PGObject *)op)->rank); }
static PyObject *PG_get_size(PyObject *op, void *unused) { return PyLong_FromLong(((PGObject *)op)->size); }
static PyObject *PG_get_timeout(PyObject *op, void *unused)
{
    return so_timedelta_from_ms(((PGObject *)op)->timeout_ms);
}
static PyObject *PG_get_pending(PyObject *op, void *unused)
{
    PGObject *self = (PGObject *)op;
    if (prune_inflight(self) < 0) return NULL;
    return PyLong_FromSsize_t(PyList_GET_SIZE(self->inflight));
}

#define KW (METH_VARARGS | METH_KEYWORDS)
static PyMethodDef PG_methods[] = {
    {"allreduce", (PyCFunction)(void (*)(void))PG_allreduce, KW, "allreduce(tensor, op, async_op=False)"},
    {"reduce", (PyCFunction)(void (*)(void))PG_reduce, KW, "reduce(tensor, op, root, async_op=False)"},
    {"broadcast", (PyCFunction)(void (*)(void))PG_broadcast, KW, "broadcast(tensor, root, async_op=False)"},
    {"allgather", (PyCFunction)(void (*)(void))PG_allgather, KW,
     "allgather(output (size x input), input, async_op=False)"},
    {"reduce_scatter", (PyCFunction)(void (*)(void))PG_reduce_scatter, KW,
     "reduce_scatter(output, input (size x output), op, async_op=False): Gloo's "
     "ReduceScatterHalvingDoubling"},
    {"gather", (PyCFunction)(void (*)(void))PG_gather, KW, "gather(output or None, input, root, async_op=False)"},
    {"scatter", (PyCFunction)(void (*)(void))PG_scatter, KW, "scatter(output, input or None, root, async_op=False)"},
    {"alltoall", (PyCFunction)(void (*)(void))PG_alltoall, KW,
     "alltoall(output, input, output_split_sizes, input_split_sizes, async_op=False) "
     "(element counts)"},
    {"barrier", (PyCFunction)(void (*)(void))PG_barrier, KW, "barrier(async_op=False)"},
    {"send", (PyCFunction)(void (*)(void))PG_send, KW, "send(tensor, dst, tag, async_op=False)"},
    {"recv", (PyCFunction)(void (*)(void))PG_recv, KW,
     "recv(tensor, src (-1: any), tag, async_op=False) -> source rank (or a Work)"},
    {"shutdown", PG_shutdown, METH_NOARGS,
     "cancel queued ops, wait for the running one, release the Gloo context (idempotent)"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef PG_getset[] = {
    {"broken", PG_get_broken, NULL, "why the group is unusable, or None", NULL},
    {"rank", PG_get_rank, NULL, NULL, NULL},
    {"size", PG_get_size, NULL, NULL, NULL},
    {"timeout", PG_get_timeout, NULL, NULL, NULL},
    {"pending", PG_get_pending, NULL, "number of async ops not yet completed", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot PG_slots[] = {
    {Py_tp_init, PG_init},
    {Py_tp_dealloc, PG_dealloc},
    {Py_tp_traverse, PG_traverse},
    {Py_tp_clear, PG_clear},
    {Py_tp_methods, PG_methods},
    {Py_tp_getset, PG_getset},
    {Py_tp_doc, "ProcessGroupGloo(store, rank, size, timeout, reduce_scatter='ring'): a Gloo "
                "context over a store; reduce_scatter picks the algorithm ('ring' on Gloo's "
                "transport, or Gloo's 'halving_doubling')."},
    {0, NULL},
};

static PyType_Spec PG_spec = {
    .name = "shardopt._C.ProcessGroupGloo",
    .basicsize = sizeof(PGObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .slots = PG_slots,
};

int so_register_pg(PyObject *m, so_state *st)
{
    PyObject *t = PyType_FromModuleAndSpec(m, &PG_spec, NULL);
    if (!t) return -1;
    int rc = PyModule_AddObjectRef(m, "ProcessGroupGloo", t);
    Py_DECREF(t);
    if (rc < 0 || so_register_gloo_work(m, st) < 0) return -1;
    return PyModule_AddIntConstant(m, "_gloo_compiled", 1);
}

#else /* !SHARDOPT_WITH_GLOO */

int so_register_pg(PyObject *m, so_state *st)
{
    (void)st;
    return PyModule_AddIntConstant(m, "_gloo_compiled", 0);
}

#endif
