/* gloo_backend.c — the Gloo backend of the ProcessGroup front end (backend.h): CPU tensors,
 * one Gloo context per group (gloo.h over gloo.cc), every op a job of the group's ordered
 * work queue (work_queue.h) -- run inline for a sync op when nothing is ahead of it, by the
 * queue's worker for an async one.  Zero-size work never reaches Gloo (it crashes on empty
 * buffers), a 1-rank group only copies locally, and ReduceOp.AVG is SUM divided here.
 * After a failure the Gloo context is broken and every later op fails at once.
 */
#include "backend.h"
#include "work_queue.h"

#ifdef SHARDOPT_WITH_GLOO

#include "gloo.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(SO_GLOO_ERRLEN == SO_DIST_ERRLEN, "one error-buffer size for the queue and Gloo");
_Static_assert((int)SO_GLOO_OK == (int)SO_Q_OK && (int)SO_GLOO_ERR == (int)SO_Q_ERR &&
               (int)SO_GLOO_TIMEOUT == (int)SO_Q_TIMEOUT, "Gloo's codes are the queue's");

/* The queue's context: the Gloo context and what running a job needs to know. */
typedef struct {
    so_gloo_ctx *ctx;
    int rank, size;
    int64_t timeout_ms;
} gloo_group;

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
    int rc = -1;
    PyObject *list = NULL, *r = NULL;
    SO_CHECK_PTR(list = PyList_New(nkeys), done);
    for (int i = 0; i < nkeys; i++) {
        PyObject *k;
        SO_CHECK_PTR(k = PyUnicode_FromString(keys[i]), done);
        PyList_SET_ITEM(list, i, k);
    }
    SO_CHECK_PTR(r = PyObject_CallMethod((PyObject *)h, "wait", "Od", list, timeout_ms / 1000.0),
                 done);
    rc = 0;
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

/* ---- the queue's side: running one job (no GIL) ---------------------------------------- */

/* ReduceOp.AVG = SUM / size, done here on the host (Gloo has no average). */
static void divide_by(void *p, int64_t cnt, int dtype, int n)
{
    for (int64_t i = 0; i < cnt; i++) {
        switch (dtype) {
        case SO_FLOAT32: ((float *)p)[i] /= (float)n; break;
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

static void run_job(void *arg, so_job *j)
{
    gloo_group *g = arg;
    so_gloo_ctx *c = g->ctx;
    const so_op *o = &j->op;
    int64_t to = g->timeout_ms;
    int multi = g->size > 1, rc = SO_GLOO_OK, avg = o->red == SO_RED_AVG;
    size_t n = (size_t)o->count, nbytes = n * (size_t)o->itemsize;
    char *err = j->err;
    switch (o->kind) {
    case SO_OP_ALLREDUCE:
        if (n && multi) rc = so_gloo_allreduce(c, o->out, n, o->dtype, o->red, to, err);
        if (!rc && avg && multi) divide_by(o->out, o->count, o->dtype, g->size);
        break;
    case SO_OP_REDUCE:
        if (n && multi) rc = so_gloo_reduce(c, o->out, n, o->dtype, o->red, o->root, to, err);
        if (!rc && avg && multi && g->rank == o->root)
            divide_by(o->out, o->count, o->dtype, g->size);
        break;
    case SO_OP_BROADCAST:
        if (n && multi) rc = so_gloo_broadcast(c, o->out, nbytes, o->root, to, err);
        break;
    case SO_OP_ALLGATHER:
        if (n && multi)
            rc = so_gloo_allgather(c, o->in, o->out, nbytes, to, err);
        else if (n)
            memmove(o->out, o->in, nbytes);
        break;
    case SO_OP_REDUCE_SCATTER:
        if (n && multi)
            rc = so_gloo_reduce_scatter(c, o->in, o->out, n, o->dtype, o->red, to, err);
        else if (n)
            memmove(o->out, o->in, nbytes);
        if (!rc && avg && multi) divide_by(o->out, o->count, o->dtype, g->size);
        break;
    case SO_OP_GATHER:
        if (n && multi)
            rc = so_gloo_gather(c, o->in, o->out, nbytes, o->root, to, err);
        else if (n)
            memmove(o->out, o->in, nbytes);
        break;
    case SO_OP_SCATTER:
        if (n && multi)
            rc = so_gloo_scatter(c, o->in, o->out, nbytes, o->root, to, err);
        else if (n)
            memmove(o->out, o->in, nbytes);
        break;
    case SO_OP_ALLTOALL: {
        /* o->splits: byte counts here (converted when the job was made) */
        size_t ob = (size_t)o->out_total * (size_t)o->itemsize;
        if (!multi) {
            if (ob) memmove(o->out, o->in, ob);
        } else if (o->in_total || o->out_total) {
            rc = so_gloo_alltoallv(c, o->in_total ? o->in : NULL, o->splits + g->size,
                                   o->out_total ? o->out : NULL, o->splits, to, err);
        }
        break;
    }
    case SO_OP_BARRIER:
        if (multi) rc = so_gloo_barrier(c, to, err);
        break;
    case SO_OP_SEND:
        rc = so_gloo_post_send(c, o->in, nbytes, o->root, o->tag, (so_gloo_p2p **)&j->xfer, err);
        break;
    case SO_OP_RECV:
        rc = so_gloo_post_recv(c, o->out, nbytes, j->peers, j->npeers, o->tag,
                               (so_gloo_p2p **)&j->xfer, err);
        break;
    default:
        snprintf(err, SO_GLOO_ERRLEN, "op kind %d is not a Gloo op", (int)o->kind);
        rc = SO_GLOO_ERR;
        break;
    }
    j->rc = rc;
}

static int finish_p2p(void *arg, so_job *j, int64_t timeout_ms, int *peer, char *err)
{
    return so_gloo_p2p_wait(((gloo_group *)arg)->ctx, j->xfer, timeout_ms, peer, err);
}

static void free_xfer(void *x) { so_gloo_p2p_free(x); }

static void free_group(void *arg)
{
    gloo_group *g = arg;
    so_gloo_free(g->ctx);
    free(g);
}

static const so_queue_ops gloo_queue_ops = {run_job, finish_p2p, free_xfer, free_group};

/* ---- the backend table (GIL held) -------------------------------------------------------- */

static so_work_queue *queue_of(so_pg *pg) { return pg->impl; }

static int gloo_init(so_pg *pg, int reduce_scatter_algorithm)
{
    so_gloo_store cbs = {pg->store, cb_set, cb_get, cb_wait};
    char err[SO_GLOO_ERRLEN] = "";
    so_gloo_ctx *ctx = NULL;
    gloo_group *g = NULL;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = so_gloo_connect(&cbs, pg->rank, pg->size, pg->timeout_ms, &ctx, err);
    Py_END_ALLOW_THREADS
    if (rc) return so_dist_raise(pg, rc == SO_GLOO_TIMEOUT, err);
    so_gloo_set_reduce_scatter(ctx, reduce_scatter_algorithm);
    g = malloc(sizeof *g);
    if (g) {
        *g = (gloo_group){ctx, pg->rank, pg->size, pg->timeout_ms};
        pg->impl = so_wq_new(&gloo_queue_ops, g, pg->timeout_ms);
    }
    if (!pg->impl) {
        free(g);
        so_gloo_free(ctx);
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

static int gloo_check(so_pg *pg, const so_op *op)
{
    if (op->kind == SO_OP_ALLTOALL && pg->size == 1 && op->out_total != op->in_total)
        return so_fail(PyExc_ValueError, "output and input sizes differ on a 1-rank group");
    return 0;
}

/* A job for op (GIL held): byte splits for all_to_all, the source list for recv. */
static so_job *make_job(so_pg *pg, const so_op *op)
{
    so_job *j = so_job_new(op);
    if (!j) goto nomem;
    if (op->kind == SO_OP_ALLTOALL) {
        if (!(j->op.splits = malloc(2 * sizeof(int64_t) * (size_t)pg->size))) goto nomem;
        for (int i = 0; i < 2 * pg->size; i++) j->op.splits[i] = op->splits[i] * op->itemsize;
    }
    if (op->kind == SO_OP_RECV) {
        j->npeers = op->root == -1 ? pg->size - 1 : 1;
        if (!(j->peers = malloc(sizeof(int) * (size_t)j->npeers))) goto nomem;
        if (op->root != -1) {
            j->peers[0] = op->root;
        } else {
            for (int r = 0, k = 0; r < pg->size; r++)
                if (r != pg->rank) j->peers[k++] = r;
        }
    }
    return j;
nomem:
    so_job_unref(j);
    PyErr_NoMemory();
    return NULL;
}

static int gloo_run(so_pg *pg, const so_op *op, int async_op, void **work, int *peer)
{
    so_work_queue *q = queue_of(pg);
    so_job *j = make_job(pg, op);
    if (!j) return -1;
    int rc;
    if (!async_op) {
        Py_BEGIN_ALLOW_THREADS
        rc = so_wq_run(q, j);
        if (!rc && (op->kind == SO_OP_SEND || op->kind == SO_OP_RECV))
            rc = so_job_wait(j, -1, j->err);
        Py_END_ALLOW_THREADS
        if (rc)
            so_dist_raise(pg, rc == SO_Q_TIMEOUT, j->err);
        else if (peer)
            *peer = j->peer;
        so_job_unref(j);
        return rc ? -1 : 0;
    }
    if (so_wq_submit(q, j)) {
        so_dist_raise(pg, j->rc == SO_Q_TIMEOUT, j->err);
        so_job_unref(j);
        return -1;
    }
    *work = j;
    return 0;
}

static int gloo_work_wait(so_pg *pg, void *work, int64_t timeout_ms)
{
    char err[SO_DIST_ERRLEN] = "";
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = so_job_wait(work, timeout_ms, err);
    Py_END_ALLOW_THREADS
    return rc ? so_dist_raise(pg, rc == SO_Q_TIMEOUT, err) : 0;
}

static int gloo_work_state(so_pg *pg, void *work)
{
    so_job *j = work;
    if (!so_job_completed(j)) return SO_WORK_PENDING;
    return j->rc == SO_Q_OK ? SO_WORK_DONE : SO_WORK_FAILED;
}

static PyObject *gloo_work_exception(so_pg *pg, void *work)
{
    so_job *j = work;
    return so_dist_exception(pg, j->rc == SO_Q_TIMEOUT, j->err);
}

static int gloo_work_source(void *work) { return ((so_job *)work)->peer; }

static void gloo_work_release(so_pg *pg, void *work)
{
    /* Normally done already (the group held the Work until then); never free buffers
     * under a running op. */
    Py_BEGIN_ALLOW_THREADS
    so_job_wait_ran(work);
    so_job_unref(work);  /* frees a posted p2p transfer: Gloo then drops it */
    Py_END_ALLOW_THREADS
}

/* Cancel queued ops, wait for the running one, stop the worker, free the context. */
static void gloo_shutdown(so_pg *pg)
{
    so_work_queue *q = queue_of(pg);
    if (!q) return;
    pg->impl = NULL;
    Py_BEGIN_ALLOW_THREADS
    so_wq_shutdown(q);
    Py_END_ALLOW_THREADS
    so_wq_unref(q);  /* jobs still referenced by Works keep the (stopped) queue alive */
}

static PyObject *gloo_broken(so_pg *pg)
{
    so_work_queue *q = queue_of(pg);
    char why[SO_GLOO_ERRLEN];
    gloo_group *g = q ? q->ctx : NULL;
    if (g && so_gloo_broken(g->ctx, why, sizeof why)) return PyUnicode_FromString(why);
    Py_RETURN_NONE;
}

const so_backend so_gloo_backend = {
    .name = "gloo",
    .device_type = SO_CPU,
    .any_source = 1,
    .init = gloo_init,
    .ready = NULL,
    .check = gloo_check,
    .run = gloo_run,
    .work_wait = gloo_work_wait,
    .work_state = gloo_work_state,
    .work_exception = gloo_work_exception,
    .work_source = gloo_work_source,
    .work_release = gloo_work_release,
    .shutdown = gloo_shutdown,
    .release = NULL,
    .broken = gloo_broken,
};

#endif /* SHARDOPT_WITH_GLOO */
