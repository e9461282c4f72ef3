/* process_group.c — shardopt._C.ProcessGroupGloo: one Gloo context over contiguous CPU
 * tensors.  shardopt.distributed (Python) owns the group bookkeeping, stages CUDA and
 * non-contiguous tensors through contiguous host copies, and drops zero-element work
 * before it gets here (this file checks again: Gloo crashes on empty buffers).
 *
 * Every collective releases the GIL while Gloo runs and is bounded by the group timeout.
 * Failures raise DistTimeoutError or DistBackendError naming the op; after one, the Gloo
 * context is broken (gloo.cc) and every later call fails at once.
 */
#include "dist.h"
#include "gloo.h"
#include "../tensor/tensor.h"

#include <stdlib.h>
#include <string.h>

#ifdef SHARDOPT_WITH_GLOO

typedef struct {
    PyObject_HEAD
    so_gloo_ctx *ctx;
    PyObject *store;
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

static int raise_gloo(PGObject *self, int rc, const char *err)
{
    so_state *st = so_state_from_type(Py_TYPE(self));
    if (!st) return -1;
    PyErr_Format(rc == SO_GLOO_TIMEOUT ? st->dist_timeout_error : st->dist_backend_error,
                 "%s (rank %d of %d)", err, self->rank, self->size);
    return -1;
}

static int ready(PGObject *self)
{
    if (!self->ctx) {
        so_state *st = so_state_from_type(Py_TYPE(self));
        PyErr_SetString(st ? st->dist_error : PyExc_RuntimeError,
                        "the process group has been destroyed");
        return -1;
    }
    return 0;
}

/* A contiguous CPU tensor argument: its data, element count, dtype. */
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

static size_t nbytes_of(SoTensor *t)
{
    return (size_t)so_tensor_numel(t) * (size_t)so_dtype_itemsize(t->dtype);
}

/* AVG = SUM / size, done here on the host (Gloo has no average). */
static void divide_by(SoTensor *t, int n)
{
    int64_t cnt = so_tensor_numel(t);
    char *p = so_tensor_data(t);
    for (int64_t i = 0; i < cnt; i++) {
        switch (t->dtype) {
        case SO_FLOAT32: ((float *)p)[i] /= n; break;
        case SO_FLOAT64: ((double *)p)[i] /= n; break;
        case SO_FLOAT16:
            ((uint16_t *)p)[i] = so_float_to_fp16(so_fp16_to_float(((uint16_t *)p)[i]) / n);
            break;
        case SO_BFLOAT16:
            ((uint16_t *)p)[i] = so_float_to_bf16(so_bf16_to_float(((uint16_t *)p)[i]) / n);
            break;
        case SO_INT32: ((int32_t *)p)[i] /= n; break;
        case SO_INT64: ((int64_t *)p)[i] /= n; break;
        default: break;
        }
    }
}

/* Run CALL (which may use `err`) with the GIL released; raise and return NULL on failure. */
#define RUN_GLOO(self, CALL)                                                              \
    do {                                                                                  \
        char err[SO_GLOO_ERRLEN] = "";                                                    \
        int rc_;                                                                          \
        Py_BEGIN_ALLOW_THREADS                                                            \
        rc_ = (CALL);                                                                     \
        Py_END_ALLOW_THREADS                                                              \
        if (rc_) {                                                                        \
            raise_gloo((self), rc_, err);                                                 \
            return NULL;                                                                  \
        }                                                                                 \
    } while (0)

/* ---- type ----------------------------------------------------------------------------- */

static int PG_init(PyObject *op, PyObject *args, PyObject *kwds)
{
    PGObject *self = (PGObject *)op;
    static char *kwlist[] = {"store", "rank", "size", "timeout", NULL};
    PyObject *store, *timeout;
    int rank, size;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OiiO:ProcessGroupGloo", kwlist, &store, &rank,
                                     &size, &timeout))
        return -1;
    if (self->ctx) {
        PyErr_SetString(PyExc_RuntimeError, "ProcessGroupGloo.__init__ called twice");
        return -1;
    }
    if (size < 1 || rank < 0 || rank >= size) {
        PyErr_Format(PyExc_ValueError, "rank must be in [0, size) and size >= 1, got rank=%d "
                     "size=%d", rank, size);
        return -1;
    }
    if (so_parse_timeout_ms(timeout, "timeout", &self->timeout_ms) < 0) return -1;
    Py_INCREF(store);
    Py_XSETREF(self->store, store);
    self->rank = rank;
    self->size = size;
    so_gloo_store cbs = {store, cb_set, cb_get, cb_wait};
    char err[SO_GLOO_ERRLEN] = "";
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = so_gloo_connect(&cbs, rank, size, self->timeout_ms, &self->ctx, err);
    Py_END_ALLOW_THREADS
    if (rc) {
        raise_gloo(self, rc, err);
        return -1;
    }
    return 0;
}

static void PG_dealloc(PyObject *op)
{
    PGObject *self = (PGObject *)op;
    PyTypeObject *tp = Py_TYPE(op);
    PyObject_GC_UnTrack(op);
    if (self->ctx) {
        so_gloo_ctx *c = self->ctx;
        self->ctx = NULL;
        Py_BEGIN_ALLOW_THREADS
        so_gloo_free(c);
        Py_END_ALLOW_THREADS
    }
    Py_CLEAR(self->store);
    tp->tp_free(op);
    Py_DECREF(tp);
}

static int PG_traverse(PyObject *op, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(op));
    Py_VISIT(((PGObject *)op)->store);
    return 0;
}

static int PG_clear(PyObject *op)
{
    Py_CLEAR(((PGObject *)op)->store);
    return 0;
}

static PyObject *PG_allreduce(PyObject *op, PyObject *args)
{
    PGObject *self = (PGObject *)op;
    PyObject *to;
    int red;
    SoTensor *t;
    if (!PyArg_ParseTuple(args, "Oi:allreduce", &to, &red) || ready(self) < 0 ||
        cpu_tensor(self, to, "tensor", &t) < 0)
        return NULL;
    size_t n = (size_t)so_tensor_numel(t);
    if (n && self->size > 1)
        RUN_GLOO(self, so_gloo_allreduce(self->ctx, so_tensor_data(t), n, t->dtype, red,
                                         self->timeout_ms, err));
    if (red == SO_RED_AVG && self->size > 1) divide_by(t, self->size);
    so_tensor_bump_version(t);
    Py_RETURN_NONE;
}

static PyObject *PG_reduce(PyObject *op, PyObject *args)
{
    PGObject *self = (PGObject *)op;
    PyObject *to;
    int red, root;
    SoTensor *t;
    if (!PyArg_ParseTuple(args, "Oii:reduce", &to, &red, &root) || ready(self) < 0 ||
        cpu_tensor(self, to, "tensor", &t) < 0 || check_root(self, root, "dst") < 0)
        return NULL;
    size_t n = (size_t)so_tensor_numel(t);
    if (n && self->size > 1)
        RUN_GLOO(self, so_gloo_reduce(self->ctx, so_tensor_data(t), n, t->dtype, red, root,
                                      self->timeout_ms, err));
    if (red == SO_RED_AVG && self->size > 1 && self->rank == root) divide_by(t, self->size);
    so_tensor_bump_version(t);
    Py_RETURN_NONE;
}

static PyObject *PG_broadcast(PyObject *op, PyObject *args)
{
    PGObject *self = (PGObject *)op;
    PyObject *to;
    int root;
    SoTensor *t;
    if (!PyArg_ParseTuple(args, "Oi:broadcast", &to, &root) || ready(self) < 0 ||
        cpu_tensor(self, to, "tensor", &t) < 0 || check_root(self, root, "src") < 0)
        return NULL;
    size_t nb = nbytes_of(t);
    if (nb && self->size > 1)
        RUN_GLOO(self, so_gloo_broadcast(self->ctx, so_tensor_data(t), nb, root,
                                         self->timeout_ms, err));
    so_tensor_bump_version(t);
    Py_RETURN_NONE;
}

/* out must hold `mult` times the bytes of `in`, with the same dtype. */
static int check_pair(PGObject *self, SoTensor *out, SoTensor *in, int64_t mult,
                      const char *outname, const char *inname)
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

static PyObject *PG_allgather(PyObject *op, PyObject *args)
{
    PGObject *self = (PGObject *)op;
    PyObject *oo, *io;
    SoTensor *out, *in;
    if (!PyArg_ParseTuple(args, "OO:allgather", &oo, &io) || ready(self) < 0 ||
        cpu_tensor(self, oo, "output_tensor", &out) < 0 ||
        cpu_tensor(self, io, "input_tensor", &in) < 0 ||
        check_pair(self, out, in, self->size, "output_tensor", "input_tensor") < 0)
        return NULL;
    size_t nb = nbytes_of(in);
    if (nb && self->size > 1)
        RUN_GLOO(self, so_gloo_allgather(self->ctx, so_tensor_data(in), so_tensor_data(out), nb,
                                         self->timeout_ms, err));
    else if (nb)
        memmove(so_tensor_data(out), so_tensor_data(in), nb);
    so_tensor_bump_version(out);
    Py_RETURN_NONE;
}

static PyObject *PG_reduce_scatter(PyObject *op, PyObject *args)
{
    PGObject *self = (PGObject *)op;
    PyObject *oo, *io;
    int red;
    SoTensor *out, *in;
    if (!PyArg_ParseTuple(args, "OOi:reduce_scatter", &oo, &io, &red) || ready(self) < 0 ||
        cpu_tensor(self, oo, "output", &out) < 0 || cpu_tensor(self, io, "input", &in) < 0 ||
        check_pair(self, in, out, self->size, "input", "output") < 0)
        return NULL;
    size_t n = (size_t)so_tensor_numel(out), nb = nbytes_of(out);
    if (n && self->size > 1) {
        /* The algorithm reduces in place and leaves scratch behind: work on a copy so the
         * caller's input survives. */
        char *scratch = malloc(nb * self->size);
        if (!scratch) return PyErr_NoMemory();
        memcpy(scratch, so_tensor_data(in), nb * self->size);
        char err[SO_GLOO_ERRLEN] = "";
        int rc;
        Py_BEGIN_ALLOW_THREADS
        rc = so_gloo_reduce_scatter(self->ctx, scratch, so_tensor_data(out), n, out->dtype, red,
                                    self->timeout_ms, err);
        Py_END_ALLOW_THREADS
        free(scratch);
        if (rc) {
            raise_gloo(self, rc, err);
            return NULL;
        }
    } else if (n) {
        memmove(so_tensor_data(out), so_tensor_data(in), nb);
    }
    if (red == SO_RED_AVG && self->size > 1) divide_by(out, self->size);
    so_tensor_bump_version(out);
    Py_RETURN_NONE;
}

static PyObject *PG_gather(PyObject *op, PyObject *args)
{
    PGObject *self = (PGObject *)op;
    PyObject *oo, *io;
    int root;
    SoTensor *out = NULL, *in;
    if (!PyArg_ParseTuple(args, "OOi:gather", &oo, &io, &root) || ready(self) < 0 ||
        cpu_tensor(self, io, "tensor", &in) < 0 || check_root(self, root, "dst") < 0)
        return NULL;
    if (self->rank == root && (cpu_tensor(self, oo, "gather_list", &out) < 0 ||
                               check_pair(self, out, in, self->size, "gather_list", "tensor") < 0))
        return NULL;
    size_t nb = nbytes_of(in);
    if (nb && self->size > 1)
        RUN_GLOO(self, so_gloo_gather(self->ctx, so_tensor_data(in),
                                      out ? so_tensor_data(out) : NULL, nb, root,
                                      self->timeout_ms, err));
    else if (nb)
        memmove(so_tensor_data(out), so_tensor_data(in), nb);
    if (out) so_tensor_bump_version(out);
    Py_RETURN_NONE;
}

static PyObject *PG_scatter(PyObject *op, PyObject *args)
{
    PGObject *self = (PGObject *)op;
    PyObject *oo, *io;
    int root;
    SoTensor *out, *in = NULL;
    if (!PyArg_ParseTuple(args, "OOi:scatter", &oo, &io, &root) || ready(self) < 0 ||
        cpu_tensor(self, oo, "tensor", &out) < 0 || check_root(self, root, "src") < 0)
        return NULL;
    if (self->rank == root && (cpu_tensor(self, io, "scatter_list", &in) < 0 ||
                               check_pair(self, in, out, self->size, "scatter_list", "tensor") < 0))
        return NULL;
    size_t nb = nbytes_of(out);
    if (nb && self->size > 1)
        RUN_GLOO(self, so_gloo_scatter(self->ctx, in ? so_tensor_data(in) : NULL,
                                       so_tensor_data(out), nb, root, self->timeout_ms, err));
    else if (nb)
        memmove(so_tensor_data(out), so_tensor_data(in), nb);
    so_tensor_bump_version(out);
    Py_RETURN_NONE;
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

static PyObject *PG_alltoall(PyObject *op, PyObject *args)
{
    PGObject *self = (PGObject *)op;
    PyObject *oo, *io, *os, *is;
    SoTensor *out, *in;
    if (!PyArg_ParseTuple(args, "OOOO:alltoall", &oo, &io, &os, &is) || ready(self) < 0 ||
        cpu_tensor(self, oo, "output", &out) < 0 || cpu_tensor(self, io, "input", &in) < 0)
        return NULL;
    if (out->dtype != in->dtype) {
        PyErr_SetString(PyExc_TypeError, "output and input must have the same dtype");
        return NULL;
    }
    int64_t *ob = PyMem_Calloc(2 * (size_t)self->size, sizeof(int64_t));
    if (!ob) return PyErr_NoMemory();
    int64_t *ib = ob + self->size, ot, it;
    int isz = so_dtype_itemsize(in->dtype);
    PyObject *res = NULL;
    if (parse_splits(os, self->size, isz, "output_split_sizes", ob, &ot) < 0 ||
        parse_splits(is, self->size, isz, "input_split_sizes", ib, &it) < 0)
        goto done;
    if (ot != so_tensor_numel(out) || it != so_tensor_numel(in)) {
        PyErr_SetString(PyExc_ValueError, "split sizes must add up to the tensors' numel");
        goto done;
    }
    if (self->size == 1) {
        if (ot != it) {
            PyErr_SetString(PyExc_ValueError, "output and input sizes differ on a 1-rank group");
            goto done;
        }
        if (ot) memmove(so_tensor_data(out), so_tensor_data(in), (size_t)ot * isz);
    } else if (ot || it) {
        char err[SO_GLOO_ERRLEN] = "";
        int rc;
        Py_BEGIN_ALLOW_THREADS
        rc = so_gloo_alltoallv(self->ctx, it ? so_tensor_data(in) : NULL, ib,
                               ot ? so_tensor_data(out) : NULL, ob, self->timeout_ms, err);
        Py_END_ALLOW_THREADS
        if (rc) {
            raise_gloo(self, rc, err);
            goto done;
        }
    }
    so_tensor_bump_version(out);
    res = Py_NewRef(Py_None);
done:
    PyMem_Free(ob);
    return res;
}

static PyObject *PG_barrier(PyObject *op, PyObject *unused)
{
    PGObject *self = (PGObject *)op;
    if (ready(self) < 0) return NULL;
    if (self->size > 1) RUN_GLOO(self, so_gloo_barrier(self->ctx, self->timeout_ms, err));
    Py_RETURN_NONE;
}

static PyObject *PG_sendrecv(PGObject *self, PyObject *args, int is_send)
{
    PyObject *to;
    int peer;
    unsigned int tag;
    SoTensor *t;
    if (!PyArg_ParseTuple(args, "OiI", &to, &peer, &tag) || ready(self) < 0 ||
        cpu_tensor(self, to, "tensor", &t) < 0 ||
        check_root(self, peer, is_send ? "dst" : "src") < 0)
        return NULL;
    if (peer == self->rank) {
        PyErr_Format(PyExc_ValueError, "%s must differ from this rank (%d)",
                     is_send ? "dst" : "src", self->rank);
        return NULL;
    }
    size_t nb = nbytes_of(t);
    if (nb) {
        if (is_send)
            RUN_GLOO(self, so_gloo_send(self->ctx, so_tensor_data(t), nb, peer, tag,
                                        self->timeout_ms, err));
        else
            RUN_GLOO(self, so_gloo_recv(self->ctx, so_tensor_data(t), nb, peer, tag,
                                        self->timeout_ms, err));
    }
    if (!is_send) so_tensor_bump_version(t);
    Py_RETURN_NONE;
}

static PyObject *PG_send(PyObject *op, PyObject *args) { return PG_sendrecv((PGObject *)op, args, 1); }
static PyObject *PG_recv(PyObject *op, PyObject *args) { return PG_sendrecv((PGObject *)op, args, 0); }

static PyObject *PG_shutdown(PyObject *op, PyObject *unused)
{
    PGObject *self = (PGObject *)op;
    if (self->ctx) {
        so_gloo_ctx *c = self->ctx;
        self->ctx = NULL;
        Py_BEGIN_ALLOW_THREADS
        so_gloo_free(c);
        Py_END_ALLOW_THREADS
    }
    Py_RETURN_NONE;
}

static PyObject *PG_get_broken(PyObject *op, void *unused)
{
    PGObject *self = (PGObject *)op;
    const char *why;
    if (self->ctx && so_gloo_broken(self->ctx, &why)) return PyUnicode_FromString(why);
    Py_RETURN_NONE;
}
static PyObject *PG_get_rank(PyObject *op, void *unused) { return PyLong_FromLong(((PGObject *)op)->rank); }
static PyObject *PG_get_size(PyObject *op, void *unused) { return PyLong_FromLong(((PGObject *)op)->size); }
static PyObject *PG_get_timeout(PyObject *op, void *unused)
{
    return so_timedelta_from_ms(((PGObject *)op)->timeout_ms);
}

static PyMethodDef PG_methods[] = {
    {"allreduce", PG_allreduce, METH_VARARGS, "allreduce(tensor, op)"},
    {"reduce", PG_reduce, METH_VARARGS, "reduce(tensor, op, root)"},
    {"broadcast", PG_broadcast, METH_VARARGS, "broadcast(tensor, root)"},
    {"allgather", PG_allgather, METH_VARARGS, "allgather(output (size x input), input)"},
    {"reduce_scatter", PG_reduce_scatter, METH_VARARGS,
     "reduce_scatter(output, input (size x output), op): Gloo's ReduceScatterHalvingDoubling"},
    {"gather", PG_gather, METH_VARARGS, "gather(output or None, input, root)"},
    {"scatter", PG_scatter, METH_VARARGS, "scatter(output, input or None, root)"},
    {"alltoall", PG_alltoall, METH_VARARGS,
     "alltoall(output, input, output_split_sizes, input_split_sizes) (element counts)"},
    {"barrier", PG_barrier, METH_NOARGS, "barrier()"},
    {"send", PG_send, METH_VARARGS, "send(tensor, dst, tag)"},
    {"recv", PG_recv, METH_VARARGS, "recv(tensor, src, tag)"},
    {"shutdown", PG_shutdown, METH_NOARGS, "release the Gloo context (idempotent)"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef PG_getset[] = {
    {"broken", PG_get_broken, NULL, "why the group is unusable, or None", NULL},
    {"rank", PG_get_rank, NULL, NULL, NULL},
    {"size", PG_get_size, NULL, NULL, NULL},
    {"timeout", PG_get_timeout, NULL, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot PG_slots[] = {
    {Py_tp_init, PG_init},
    {Py_tp_dealloc, PG_dealloc},
    {Py_tp_traverse, PG_traverse},
    {Py_tp_clear, PG_clear},
    {Py_tp_methods, PG_methods},
    {Py_tp_getset, PG_getset},
    {Py_tp_doc, "ProcessGroupGloo(store, rank, size, timeout): a Gloo context over a store."},
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
    (void)st;
    PyObject *t = PyType_FromModuleAndSpec(m, &PG_spec, NULL);
    if (!t) return -1;
    int rc = PyModule_AddObjectRef(m, "ProcessGroupGloo", t);
    Py_DECREF(t);
    if (rc < 0) return -1;
    return PyModule_AddIntConstant(m, "_gloo_compiled", 1);
}

#else /* !SHARDOPT_WITH_GLOO */

int so_register_pg(PyObject *m, so_state *st)
{
    (void)st;
    return PyModule_AddIntConstant(m, "_gloo_compiled", 0);
}

#endif
