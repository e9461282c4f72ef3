/* process_group.c — the ProcessGroup front end: shardopt._C.ProcessGroupGloo and
 * shardopt._C.ProcessGroupNCCL are one C type layout (so_pg) and one set of methods over a
 * backend table (backend.h).  shardopt.distributed (Python) owns the group bookkeeping and
 * stages tensors the backend cannot take directly (CUDA or non-contiguous for Gloo).
 *
 * Each of the 11 collectives is parsed here once: arguments are checked with the GIL held
 * (bad input raises at the call and names the argument), turned into an so_op, and run by
 * the backend -- synchronously (None, or the source rank for recv; a failure raises
 * DistTimeoutError / DistBackendError naming the op) or as an async Work (work.c).  For
 * backends whose ops point into host buffers after the call (Gloo), the group keeps every
 * unfinished Work in a list, so the tensors a queued op uses stay alive even if the caller
 * drops the Work.
 */
#include "backend.h"
#include "../tensor/tensor.h"

#include <string.h>

const char *const SO_OP_NAMES[SO_OP_NKINDS] = {
    "all_reduce", "reduce", "broadcast", "all_gather", "reduce_scatter", "gather", "scatter",
    "all_to_all", "barrier", "send", "recv",
};

#define ASYNC_KW "async_op"

static so_state *pg_state(so_pg *pg) { return so_state_from_type(Py_TYPE(pg)); }

PyObject *so_dist_exception(so_pg *pg, int is_timeout, const char *msg)
{
    so_state *st = pg_state(pg);
    if (!st) return NULL;
    PyObject *type = is_timeout ? st->dist.timeout_error : st->dist.backend_error;
    PyObject *text = PyUnicode_FromFormat("%s (rank %d of %d)", msg, pg->rank, pg->size);
    if (!text) return NULL;
    PyObject *e = PyObject_CallOneArg(type, text);
    Py_DECREF(text);
    return e;
}

int so_dist_raise(so_pg *pg, int is_timeout, const char *msg)
{
    PyObject *e = so_dist_exception(pg, is_timeout, msg);
    if (e) {
        PyErr_SetObject((PyObject *)Py_TYPE(e), e);
        Py_DECREF(e);
    }
    return -1;
}

/* ---- argument checks ------------------------------------------------------------------ */

static int check_alive(so_pg *pg)
{
    if (pg->impl) return 0;
    so_state *st = pg_state(pg);
    if (!st) return -1;
    if (!pg->be) return so_fail(PyExc_RuntimeError, "the process group was not initialised");
    return so_fail(st->dist.error, "the process group has been destroyed");
}

/* A contiguous tensor on the backend's device type; the backend gets ready for its device. */
static int tensor_arg(so_pg *pg, PyObject *obj, const char *argname, SoTensor **out)
{
    so_state *st = pg_state(pg);
    if (!st) return -1;
    if (!so_tensor_check(st, obj))
        return so_fail(PyExc_TypeError, "%s must be a Tensor, got %.100s", argname,
                       Py_TYPE(obj)->tp_name);
    SoTensor *t = (SoTensor *)obj;
    so_device d = so_tensor_device(t);
    if (d.type == SO_META)
        return so_fail(PyExc_NotImplementedError, "Could not run the %s collective with arguments "
                       "from the 'Meta' backend: %s is a meta tensor (no data)", pg->be->name,
                       argname);
    if (pg->be->device_type == SO_CUDA) {
        if (d.type != SO_CUDA)
            return so_fail(PyExc_ValueError, "%s must be a CUDA tensor for the %s backend, got a "
                           "CPU tensor (use the gloo backend for CPU tensors)", argname,
                           pg->be->name);
        if (!so_tensor_is_contiguous(t))
            return so_fail(PyExc_ValueError, "%s must be contiguous", argname);
    } else if (d.type != SO_CPU || !so_tensor_is_contiguous(t)) {
        return so_fail(PyExc_ValueError, "%s must be a contiguous CPU tensor here", argname);
    }
    if (pg->be->ready && pg->be->ready(pg, d.type == SO_CUDA ? d.index : -1) < 0) return -1;
    *out = t;
    return 0;
}

static int check_rank(so_pg *pg, int r, const char *argname)
{
    if (r < 0 || r >= pg->size)
        return so_fail(PyExc_ValueError, "%s must be in [0, %d), got %d", argname, pg->size, r);
    return 0;
}

static int check_red(int red)
{
    if (red < SO_RED_SUM || red > SO_RED_MAX)
        return so_fail(PyExc_ValueError, "op must be a ReduceOp (0..4), got %d", red);
    return 0;
}

/* big must hold `mult` times the elements of small, with the same dtype. */
static int check_pair(SoTensor *big, SoTensor *small, int64_t mult, const char *bigname,
                      const char *smallname)
{
    if (big->dtype != small->dtype)
        return so_fail(PyExc_TypeError, "%s and %s must have the same dtype", bigname, smallname);
    int64_t want = mult * so_tensor_numel(small);
    if (so_tensor_numel(big) != want)
        return so_fail(PyExc_ValueError, "%s must have %lld elements (%lld x %lld), got %lld",
                       bigname, (long long)want, (long long)mult,
                       (long long)so_tensor_numel(small), (long long)so_tensor_numel(big));
    return 0;
}

/* The op's unit tensor t: data type, count, device. */
static void set_unit(so_op *op, so_op_kind kind, SoTensor *t)
{
    memset(op, 0, sizeof *op);
    op->kind = kind;
    op->count = so_tensor_numel(t);
    op->dtype = t->dtype;
    op->itemsize = so_dtype_itemsize(t->dtype);
    so_device d = so_tensor_device(t);
    op->device = d.type == SO_CUDA ? d.index : -1;
}

/* ---- issuing -------------------------------------------------------------------------- */

/* Drop the Works that have completed from the in-flight list. */
static int prune_inflight(so_pg *pg)
{
    Py_ssize_t n = PyList_GET_SIZE(pg->inflight), k = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *w = PyList_GET_ITEM(pg->inflight, i);
        if (!so_work_completed(w)) {
            Py_INCREF(w);
            PyList_SetItem(pg->inflight, k++, w);
        }
    }
    return PyList_SetSlice(pg->inflight, k, n, NULL);
}

/* Check and run op.  Consumes `keep` (a new tuple of the tensors op points into, or NULL
 * with an exception if building it failed).  Sync: None, or the source rank for recv;
 * async: a Work. */
/* Complex tensors travel as their (re, im) float pairs: every backend moves float32/float64,
 * and SUM / AVG of pairs is the complex sum.  PRODUCT / MIN / MAX have no meaning per
 * component (torch refuses MIN/MAX on complex too), so they are refused here. */
static int complex_as_real(so_op *op, int size)
{
    int real = op->dtype == SO_COMPLEX64 ? SO_FLOAT32 : SO_FLOAT64;
    int reduces = op->kind == SO_OP_ALLREDUCE || op->kind == SO_OP_REDUCE ||
                  op->kind == SO_OP_REDUCE_SCATTER;
    if (reduces && op->red != SO_RED_SUM && op->red != SO_RED_AVG)
        return so_fail(PyExc_ValueError, "%s: only SUM and AVG reductions are supported for "
                       "complex tensors (%s)", SO_OP_NAMES[op->kind],
                       op->dtype == SO_COMPLEX64 ? "complex64" : "complex128");
    op->dtype = real;
    op->count *= 2;
    op->itemsize /= 2;
    if (op->kind == SO_OP_ALLTOALL && op->splits) {
        /* the split table holds 2 * size element counts (out, then in) */
        for (int i = 0; i < 2 * size; i++) op->splits[i] *= 2;
        op->out_total *= 2;
        op->in_total *= 2;
    }
    return 0;
}

static PyObject *issue(so_pg *pg, const so_op *op_in, int async_op, PyObject *keep)
{
    PyObject *res = NULL;
    void *work = NULL;
    int peer = -1;
    so_op op_local = *op_in;
    const so_op *op = &op_local;
    if (!keep && PyErr_Occurred()) goto done;
    if (so_dtype_is_complex(op_local.dtype)) SO_CHECK_RC(complex_as_real(&op_local, pg->size), done);
    if (pg->be->check) SO_CHECK_RC(pg->be->check(pg, op), done);
    if (!async_op) {
        SO_CHECK_RC(pg->be->run(pg, op, 0, NULL, &peer), done);
        res = op->kind == SO_OP_RECV ? PyLong_FromLong(peer) : Py_NewRef(Py_None);
        goto done;
    }
    SO_CHECK_RC(pg->be->run(pg, op, 1, &work, NULL), done);
    /* so_work_new takes the handle and keep, whatever happens */
    res = so_work_new(pg, work, keep, op->kind == SO_OP_RECV);
    keep = NULL;
    if (res && pg->inflight &&
        (prune_inflight(pg) < 0 || PyList_Append(pg->inflight, res) < 0)) {
        /* Without the list entry the Work's release still waits for the op, so nothing
         * dangles. */
        Py_CLEAR(res);
    }
done:
    Py_XDECREF(keep);
    return res;
}

/* ---- the 11 collectives --------------------------------------------------------------- */

static PyObject *PG_allreduce(PyObject *self, PyObject *args, PyObject *kw)
{
    so_pg *pg = (so_pg *)self;
    static char *kwlist[] = {"tensor", "op", ASYNC_KW, NULL};
    PyObject *to;
    int red, async_op = 0;
    SoTensor *t;
    so_op op;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "Oi|p:allreduce", kwlist, &to, &red, &async_op) ||
        check_alive(pg) < 0 || tensor_arg(pg, to, "tensor", &t) < 0 || check_red(red) < 0)
        return NULL;
    set_unit(&op, SO_OP_ALLREDUCE, t);
    op.in = op.out = so_tensor_data(t);
    op.red = red;
    so_tensor_bump_version(t);
    return issue(pg, &op, async_op, Py_BuildValue("(O)", to));
}

static PyObject *PG_reduce(PyObject *self, PyObject *args, PyObject *kw)
{
    so_pg *pg = (so_pg *)self;
    static char *kwlist[] = {"tensor", "op", "root", ASYNC_KW, NULL};
    PyObject *to;
    int red, root, async_op = 0;
    SoTensor *t;
    so_op op;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "Oii|p:reduce", kwlist, &to, &red, &root,
                                     &async_op) ||
        check_alive(pg) < 0 || check_rank(pg, root, "dst") < 0 ||
        tensor_arg(pg, to, "tensor", &t) < 0 || check_red(red) < 0)
        return NULL;
    set_unit(&op, SO_OP_REDUCE, t);
    op.in = op.out = so_tensor_data(t);
    op.red = red;
    op.root = root;
    so_tensor_bump_version(t);
    return issue(pg, &op, async_op, Py_BuildValue("(O)", to));
}

static PyObject *PG_broadcast(PyObject *self, PyObject *args, PyObject *kw)
{
    so_pg *pg = (so_pg *)self;
    static char *kwlist[] = {"tensor", "root", ASYNC_KW, NULL};
    PyObject *to;
    int root, async_op = 0;
    SoTensor *t;
    so_op op;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "Oi|p:broadcast", kwlist, &to, &root, &async_op) ||
        check_alive(pg) < 0 || check_rank(pg, root, "src") < 0 ||
        tensor_arg(pg, to, "tensor", &t) < 0)
        return NULL;
    set_unit(&op, SO_OP_BROADCAST, t);
    op.in = op.out = so_tensor_data(t);
    op.root = root;
    so_tensor_bump_version(t);
    return issue(pg, &op, async_op, Py_BuildValue("(O)", to));
}

static PyObject *PG_allgather(PyObject *self, PyObject *args, PyObject *kw)
{
    so_pg *pg = (so_pg *)self;
    static char *kwlist[] = {"output", "input", ASYNC_KW, NULL};
    PyObject *oo, *io;
    int async_op = 0;
    SoTensor *out, *in;
    so_op op;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|p:allgather", kwlist, &oo, &io, &async_op) ||
        check_alive(pg) < 0 || tensor_arg(pg, oo, "output_tensor", &out) < 0 ||
        tensor_arg(pg, io, "input_tensor", &in) < 0 ||
        check_pair(out, in, pg->size, "output_tensor", "input_tensor") < 0)
        return NULL;
    set_unit(&op, SO_OP_ALLGATHER, in);
    op.in = so_tensor_data(in);
    op.out = so_tensor_data(out);
    so_tensor_bump_version(out);
    return issue(pg, &op, async_op, Py_BuildValue("(OO)", oo, io));
}

static PyObject *PG_reduce_scatter(PyObject *self, PyObject *args, PyObject *kw)
{
    so_pg *pg = (so_pg *)self;
    static char *kwlist[] = {"output", "input", "op", ASYNC_KW, NULL};
    PyObject *oo, *io;
    int red, async_op = 0;
    SoTensor *out, *in;
    so_op op;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOi|p:reduce_scatter", kwlist, &oo, &io, &red,
                                     &async_op) ||
        check_alive(pg) < 0 || tensor_arg(pg, oo, "output", &out) < 0 ||
        tensor_arg(pg, io, "input", &in) < 0 || check_red(red) < 0 ||
        check_pair(in, out, pg->size, "input", "output") < 0)
        return NULL;
    set_unit(&op, SO_OP_REDUCE_SCATTER, out);
    op.in = so_tensor_data(in);
    op.out = so_tensor_data(out);
    op.red = red;
    so_tensor_bump_version(out);
    return issue(pg, &op, async_op, Py_BuildValue("(OO)", oo, io));
}

/* gather(output or None, input, root) / scatter(output, input or None, root): the list
 * side is one flat tensor of size x the unit tensor, on the root only. */
static PyObject *rooted(so_pg *pg, PyObject *args, PyObject *kw, so_op_kind kind)
{
    static char *kwlist[] = {"output", "input", "root", ASYNC_KW, NULL};
    int gather = kind == SO_OP_GATHER;
    PyObject *oo, *io;
    int root, async_op = 0;
    SoTensor *unit, *list = NULL;
    so_op op;
    if (!PyArg_ParseTupleAndKeywords(args, kw, gather ? "OOi|p:gather" : "OOi|p:scatter",
                                     kwlist, &oo, &io, &root, &async_op) ||
        check_alive(pg) < 0 || check_rank(pg, root, gather ? "dst" : "src") < 0 ||
        tensor_arg(pg, gather ? io : oo, "tensor", &unit) < 0)
        return NULL;
    const char *listname = gather ? "gather_list" : "scatter_list";
    if (pg->rank == root && (tensor_arg(pg, gather ? oo : io, listname, &list) < 0 ||
                             check_pair(list, unit, pg->size, listname, "tensor") < 0))
        return NULL;
    set_unit(&op, kind, unit);
    op.root = root;
    void *ud = so_tensor_data(unit), *ld = list ? so_tensor_data(list) : NULL;
    op.in = gather ? ud : ld;
    op.out = gather ? ld : ud;
    if (gather && list) so_tensor_bump_version(list);
    if (!gather) so_tensor_bump_version(unit);
    return issue(pg, &op, async_op, Py_BuildValue("(OO)", oo, io));
}

static PyObject *PG_gather(PyObject *self, PyObject *a, PyObject *k)
{
    return rooted((so_pg *)self, a, k, SO_OP_GATHER);
}

static PyObject *PG_scatter(PyObject *self, PyObject *a, PyObject *k)
{
    return rooted((so_pg *)self, a, k, SO_OP_SCATTER);
}

/* Element counts per rank into out[0..size); *total their sum. */
static int parse_splits(PyObject *seq, int size, const char *argname, int64_t *out,
                        int64_t *total)
{
    int rc = -1;
    PyObject *f = NULL;
    SO_CHECK_PTR(f = PySequence_Fast(seq, argname), done);
    SO_CHECK(PySequence_Fast_GET_SIZE(f) == size, done, PyExc_ValueError,
             "%s must have %d entries", argname, size);
    *total = 0;
    for (int i = 0; i < size; i++) {
        long long v = PyLong_AsLongLong(PySequence_Fast_GET_ITEM(f, i));
        if (v == -1 && PyErr_Occurred()) goto done;
        SO_CHECK(v >= 0, done, PyExc_ValueError, "%s entries must be >= 0, got %lld", argname, v);
        out[i] = v;
        *total += v;
    }
    rc = 0;
done:
    Py_XDECREF(f);
    return rc;
}

static PyObject *PG_alltoall(PyObject *self, PyObject *args, PyObject *kw)
{
    so_pg *pg = (so_pg *)self;
    static char *kwlist[] = {"output", "input", "output_split_sizes", "input_split_sizes",
                             ASYNC_KW, NULL};
    PyObject *oo, *io, *os, *is, *res = NULL;
    int async_op = 0;
    SoTensor *out, *in;
    so_op op;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOOO|p:alltoall", kwlist, &oo, &io, &os, &is,
                                     &async_op) ||
        check_alive(pg) < 0 || tensor_arg(pg, oo, "output", &out) < 0 ||
        tensor_arg(pg, io, "input", &in) < 0)
        return NULL;
    if (out->dtype != in->dtype)
        return PyErr_Format(PyExc_TypeError, "output and input must have the same dtype");
    set_unit(&op, SO_OP_ALLTOALL, in);
    SO_CHECK_PTR(op.splits = PyMem_Calloc(2 * (size_t)pg->size, sizeof(int64_t)), done);
    SO_CHECK_RC(parse_splits(os, pg->size, "output_split_sizes", op.splits, &op.out_total), done);
    SO_CHECK_RC(parse_splits(is, pg->size, "input_split_sizes", op.splits + pg->size,
                             &op.in_total), done);
    SO_CHECK(op.out_total == so_tensor_numel(out) && op.in_total == so_tensor_numel(in), done,
             PyExc_ValueError, "split sizes must add up to the tensors' numel");
    op.in = so_tensor_data(in);
    op.out = so_tensor_data(out);
    so_tensor_bump_version(out);
    res = issue(pg, &op, async_op, Py_BuildValue("(OO)", oo, io));
done:
    PyMem_Free(op.splits);
    return res;
}

static PyObject *PG_barrier(PyObject *self, PyObject *args, PyObject *kw)
{
    so_pg *pg = (so_pg *)self;
    static char *kwlist[] = {ASYNC_KW, NULL};
    int async_op = 0;
    so_op op;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|p:barrier", kwlist, &async_op) ||
        check_alive(pg) < 0 || (pg->be->ready && pg->be->ready(pg, -1) < 0))
        return NULL;
    memset(&op, 0, sizeof op);
    op.kind = SO_OP_BARRIER;
    op.device = -1;
    return issue(pg, &op, async_op, NULL);
}

/* send(tensor, dst, tag) / recv(tensor, src, tag): src -1 accepts any other rank (the
 * source rank is returned, or given by the Work's source_rank()). */
static PyObject *p2p(so_pg *pg, PyObject *args, PyObject *kw, so_op_kind kind)
{
    int send = kind == SO_OP_SEND;
    static char *send_kw[] = {"tensor", "dst", "tag", ASYNC_KW, NULL};
    static char *recv_kw[] = {"tensor", "src", "tag", ASYNC_KW, NULL};
    const char *pname = send ? "dst" : "src";
    PyObject *to;
    int peer, async_op = 0;
    unsigned int tag;
    SoTensor *t;
    so_op op;
    if (!PyArg_ParseTupleAndKeywords(args, kw, send ? "OiI|p:send" : "OiI|p:recv",
                                     send ? send_kw : recv_kw, &to, &peer, &tag, &async_op) ||
        check_alive(pg) < 0)
        return NULL;
    if (!send && peer == -1 && !pg->be->any_source)
        return PyErr_Format(PyExc_ValueError, "the %s backend cannot receive from any source: "
                            "pass src", pg->be->name);
    if ((send || peer != -1) && check_rank(pg, peer, pname) < 0) return NULL;
    if (peer == pg->rank || (peer == -1 && pg->size < 2))
        return PyErr_Format(PyExc_ValueError, "%s must differ from this rank (%d)", pname,
                            pg->rank);
    if (tensor_arg(pg, to, "tensor", &t) < 0) return NULL;
    set_unit(&op, kind, t);
    op.in = op.out = so_tensor_data(t);
    op.root = peer;
    op.tag = tag;
    if (!send) so_tensor_bump_version(t);
    return issue(pg, &op, async_op, Py_BuildValue("(O)", to));
}

static PyObject *PG_send(PyObject *self, PyObject *a, PyObject *k)
{
    return p2p((so_pg *)self, a, k, SO_OP_SEND);
}

static PyObject *PG_recv(PyObject *self, PyObject *a, PyObject *k)
{
    return p2p((so_pg *)self, a, k, SO_OP_RECV);
}

/* ---- lifetime ------------------------------------------------------------------------- */

static void pg_shutdown(so_pg *pg)
{
    if (pg->be && pg->impl) pg->be->shutdown(pg);
    /* Every op has ended (failed or finished): the Works no longer need to be held. */
    if (pg->inflight) PyList_SetSlice(pg->inflight, 0, PyList_GET_SIZE(pg->inflight), NULL);
}

/* The constructor arguments common to every backend. */
static int pg_init(so_pg *pg, const so_backend *be, PyObject *store, int rank, int size,
                   PyObject *timeout, int option)
{
    int rc = -1;
    SO_CHECK(!pg->be, done, PyExc_RuntimeError, "%s.__init__ called twice",
             Py_TYPE(pg)->tp_name);
    SO_CHECK(size >= 1 && rank >= 0 && rank < size, done, PyExc_ValueError,
             "rank must be in [0, size) and size >= 1, got rank=%d size=%d", rank, size);
    SO_CHECK_RC(so_parse_timeout_ms(timeout, "timeout", &pg->timeout_ms), done);
    Py_XSETREF(pg->store, Py_NewRef(store));
    pg->rank = rank;
    pg->size = size;
    if (be->device_type == SO_CPU && !pg->inflight)
        SO_CHECK_PTR(pg->inflight = PyList_New(0), done);
    pg->be = be;
    if (be->init(pg, option) < 0) {
        pg->be = NULL;  /* a failed __init__ may be retried */
        goto done;
    }
    rc = 0;
done:
    return rc;
}

#ifdef SHARDOPT_WITH_GLOO
#include "gloo.h"

static int PG_init_gloo(PyObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"store", "rank", "size", "timeout", "reduce_scatter", NULL};
    PyObject *store, *timeout;
    int rank, size;
    const char *rs = "ring";
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OiiO|s:ProcessGroupGloo", kwlist, &store,
                                     &rank, &size, &timeout, &rs))
        return -1;
    int alg = SO_GLOO_RS_RING;
    if (strcmp(rs, "halving_doubling") == 0)
        alg = SO_GLOO_RS_HALVING_DOUBLING;
    else if (strcmp(rs, "ring") != 0)
        return so_fail(PyExc_ValueError, "reduce_scatter must be 'ring' or 'halving_doubling', "
                       "got '%s'", rs);
    return pg_init((so_pg *)self, &so_gloo_backend, store, rank, size, timeout, alg);
}
#endif

#ifdef SHARDOPT_WITH_NCCL
static int PG_init_nccl(PyObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"store", "rank", "size", "timeout", NULL};
    PyObject *store, *timeout;
    int rank, size;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OiiO:ProcessGroupNCCL", kwlist, &store, &rank,
                                     &size, &timeout))
        return -1;
    return pg_init((so_pg *)self, &so_nccl_backend, store, rank, size, timeout, 0);
}
#endif

static void PG_dealloc(PyObject *self)
{
    so_pg *pg = (so_pg *)self;
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    pg_shutdown(pg);
    if (pg->be && pg->be->release && pg->impl) pg->be->release(pg);
    Py_CLEAR(pg->inflight);
    Py_CLEAR(pg->store);
    tp->tp_free(self);
    Py_DECREF(tp);
}

static int PG_traverse(PyObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(((so_pg *)self)->store);
    Py_VISIT(((so_pg *)self)->inflight);
    return 0;
}

static int PG_clear(PyObject *self)
{
    Py_CLEAR(((so_pg *)self)->store);
    Py_CLEAR(((so_pg *)self)->inflight);
    return 0;
}

static PyObject *PG_shutdown(PyObject *self, PyObject *unused)
{
    pg_shutdown((so_pg *)self);
    Py_RETURN_NONE;
}

static PyObject *PG_get_broken(PyObject *self, void *unused)
{
    so_pg *pg = (so_pg *)self;
    if (!pg->be || !pg->impl) Py_RETURN_NONE;
    return pg->be->broken(pg);
}

static PyObject *PG_get_rank(PyObject *self, void *unused)
{
    return PyLong_FromLong(((so_pg *)self)->rank);
}

static PyObject *PG_get_size(PyObject *self, void *unused)
{
    return PyLong_FromLong(((so_pg *)self)->size);
}

static PyObject *PG_get_timeout(PyObject *self, void *unused)
{
    return so_timedelta_from_ms(((so_pg *)self)->timeout_ms);
}

static PyObject *PG_get_backend(PyObject *self, void *unused)
{
    so_pg *pg = (so_pg *)self;
    if (!pg->be) Py_RETURN_NONE;
    return PyUnicode_FromString(pg->be->name);
}

static PyObject *PG_get_pending(PyObject *self, void *unused)
{
    so_pg *pg = (so_pg *)self;
    if (!pg->inflight) return PyLong_FromLong(0);
    if (prune_inflight(pg) < 0) return NULL;
    return PyLong_FromSsize_t(PyList_GET_SIZE(pg->inflight));
}

#define KW (METH_VARARGS | METH_KEYWORDS)
#define FN(f) (PyCFunction)(void (*)(void))(f)
static PyMethodDef PG_methods[] = {
    {"allreduce", FN(PG_allreduce), KW, "allreduce(tensor, op, async_op=False)"},
    {"reduce", FN(PG_reduce), KW, "reduce(tensor, op, root, async_op=False)"},
    {"broadcast", FN(PG_broadcast), KW, "broadcast(tensor, root, async_op=False)"},
    {"allgather", FN(PG_allgather), KW,
     "allgather(output (size x input), input, async_op=False)"},
    {"reduce_scatter", FN(PG_reduce_scatter), KW,
     "reduce_scatter(output, input (size x output), op, async_op=False)"},
    {"gather", FN(PG_gather), KW, "gather(output or None, input, root, async_op=False)"},
    {"scatter", FN(PG_scatter), KW, "scatter(output, input or None, root, async_op=False)"},
    {"alltoall", FN(PG_alltoall), KW,
     "alltoall(output, input, output_split_sizes, input_split_sizes, async_op=False) "
     "(element counts)"},
    {"barrier", FN(PG_barrier), KW, "barrier(async_op=False)"},
    {"send", FN(PG_send), KW, "send(tensor, dst, tag, async_op=False)"},
    {"recv", FN(PG_recv), KW,
     "recv(tensor, src (-1: any, Gloo only), tag, async_op=False) -> source rank (or a Work)"},
    {"shutdown", PG_shutdown, METH_NOARGS,
     "end the group: queued ops fail, running ones finish within the timeout; idempotent"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef PG_getset[] = {
    {"broken", PG_get_broken, NULL, "why the group is unusable, or None", NULL},
    {"rank", PG_get_rank, NULL, NULL, NULL},
    {"size", PG_get_size, NULL, NULL, NULL},
    {"timeout", PG_get_timeout, NULL, NULL, NULL},
    {"backend", PG_get_backend, NULL, "the backend's name", NULL},
    {"pending", PG_get_pending, NULL, "number of async ops not yet completed (Gloo)", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

/* One type per backend: the same layout and methods, the backend's own constructor. */
#define PG_SPEC(var, tp_name, init, doc)                                                   \
    static PyType_Slot var##_slots[] = {                                                \
        {Py_tp_init, init},                                                             \
        {Py_tp_dealloc, PG_dealloc},                                                    \
        {Py_tp_traverse, PG_traverse},                                                  \
        {Py_tp_clear, PG_clear},                                                        \
        {Py_tp_methods, PG_methods},                                                    \
        {Py_tp_getset, PG_getset},                                                      \
        {Py_tp_doc, doc},                                                               \
        {0, NULL},                                                                      \
    };                                                                                  \
    static PyType_Spec var = {                                                          \
        .name = tp_name,                                                                \
        .basicsize = sizeof(so_pg),                                                     \
        .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,                               \
        .slots = var##_slots,                                                           \
    }

#ifdef SHARDOPT_WITH_GLOO
PG_SPEC(gloo_spec, "shardopt._C.ProcessGroupGloo", PG_init_gloo,
        "ProcessGroupGloo(store, rank, size, timeout, reduce_scatter='ring'): a Gloo context "
        "over a store, for CPU tensors; reduce_scatter picks the algorithm ('ring' on Gloo's "
        "transport, or Gloo's 'halving_doubling').");
#endif
#ifdef SHARDOPT_WITH_NCCL
PG_SPEC(nccl_spec, "shardopt._C.ProcessGroupNCCL", PG_init_nccl,
        "ProcessGroupNCCL(store, rank, size, timeout): an NCCL communicator for CUDA tensors, "
        "created on the first op on the device of its tensors.");
#endif

static int add_type(PyObject *m, PyType_Spec *spec)
{
    PyObject *t = PyType_FromModuleAndSpec(m, spec, NULL);
    if (!t) return -1;
    int rc = PyModule_AddObjectRef(m, strrchr(spec->name, '.') + 1, t);
    Py_DECREF(t);
    return rc;
}

int so_register_pg(PyObject *m, so_state *st)
{
    int rc = -1;
    SO_CHECK_RC(so_register_work(m, st), done);
#ifdef SHARDOPT_WITH_GLOO
    SO_CHECK_RC(add_type(m, &gloo_spec), done);
    SO_CHECK_RC(PyModule_AddIntConstant(m, "_gloo_compiled", 1), done);
#else
    SO_CHECK_RC(PyModule_AddIntConstant(m, "_gloo_compiled", 0), done);
#endif
#ifdef SHARDOPT_WITH_NCCL
    SO_CHECK_RC(add_type(m, &nccl_spec), done);
#endif
    rc = 0;
done:
    return rc;
}
