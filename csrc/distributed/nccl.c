/* nccl.c — shardopt._C.ProcessGroupNCCL: the NCCL backend, in plain C over nccl.h and the
 * CUDA runtime (compiled only under SHARDOPT_WITH_NCCL).
 *
 * - Construction checks that CUDA is usable (else DistBackendError "CUDA is not available:
 *   ...") and keeps the store.  The communicator is created on the first op, on the device
 *   of its tensors (as torch does without device_id), so scripts may call set_device after
 *   init_process_group: rank 0 makes the unique id (ncclGetUniqueId) and publishes it in the
 *   group's store, the others get it; ncclCommInitRankConfig runs with config.blocking = 0
 *   and is polled (ncclCommGetAsyncError) until ready or the group timeout, then aborted.
 * - Ordering: an op records an event on the device's compute stream and makes the group's
 *   communication stream wait for it, runs on the communication stream, then records an
 *   event there that the compute stream waits for.  So the op sees every earlier write, and
 *   later compute -- including the stream-ordered free of its tensors -- sees the result.
 *   Like torch, ops (sync or not) return once enqueued; barrier() and Work.wait(timeout=...)
 *   block the host.
 * - Multi-tensor work (gather, scatter, all_to_all) is one ncclGroupStart/End of
 *   ncclSend/ncclRecv plus a device copy for this rank's own chunk.
 * - Faults: every enqueue is polled with the group timeout (non-blocking communicators may
 *   answer ncclInProgress); a watchdog thread checks the in-flight ops' events and the
 *   communicator's asynchronous error.  On error or timeout the communicator is aborted
 *   (ncclCommAbort), the group is marked broken, and every later call fails at once with
 *   DistBackendError.  One mutex guards the communicator, so the abort never races a call.
 * This file holds the type and its argument-checking methods; the engine (communicator,
 * stream ordering, watchdog, errors) is nccl_engine.c.
 * - Zero-element tensors never reach NCCL.  bool reductions follow torch: SUM is MAX (or),
 *   PRODUCT is MIN (and), AVG raises.
 */
#define _GNU_SOURCE /* pthread_condattr_setclock, clock_gettime, nanosleep under -std=c11 */
#include "dist.h"
#include "../core/device.h"
#include "../tensor/tensor.h"

#include <stdio.h>
#include <string.h>

#ifdef SHARDOPT_WITH_NCCL

#include <cuda_runtime.h>
#include <errno.h>
#include <nccl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <time.h>

#include "nccl_impl.h"

/* ---- argument parsing -------------------------------------------------------------------- */

static int nccl_dtype(int dtype, ncclDataType_t *out)
{
    switch (dtype) {
    case SO_FLOAT32: *out = ncclFloat32; return 0;
    case SO_FLOAT64: *out = ncclFloat64; return 0;
    case SO_FLOAT16: *out = ncclFloat16; return 0;
#if NCCL_VERSION_CODE >= NCCL_VERSION(2, 10, 0)
    case SO_BFLOAT16: *out = ncclBfloat16; return 0;
#endif
    case SO_INT32: *out = ncclInt32; return 0;
    case SO_INT64: *out = ncclInt64; return 0;
    case SO_BOOL: *out = ncclUint8; return 0;
    default:
        PyErr_Format(PyExc_TypeError, "dtype %d is not supported by this NCCL build "
                     "(bfloat16 needs NCCL >= 2.10)", dtype);
        return -1;
    }
}

static int nccl_op(int op, int dtype, ncclRedOp_t *out)
{
    if (dtype == SO_BOOL) { /* torch: or / and on bytes */
        if (op == 1) {
            PyErr_SetString(PyExc_RuntimeError, "Cannot use ReduceOp.AVG with boolean inputs");
            return -1;
        }
        *out = (op == 0 || op == 4) ? ncclMax : ncclMin;
        return 0;
    }
    switch (op) {
    case 0: *out = ncclSum; return 0;
#if NCCL_VERSION_CODE >= NCCL_VERSION(2, 10, 0)
    case 1: *out = ncclAvg; return 0;
#endif
    case 2: *out = ncclProd; return 0;
    case 3: *out = ncclMin; return 0;
    case 4: *out = ncclMax; return 0;
    default:
        PyErr_Format(PyExc_ValueError, "op must be a ReduceOp supported by NCCL, got %d", op);
        return -1;
    }
}

/* A contiguous CUDA tensor argument; creates the communicator on its device. */
static int cuda_tensor(NPG *s, PyObject *obj, const char *argname, SoTensor **out)
{
    so_state *st = so_nccl_state((PyObject *)s);
    if (!st) return -1;
    if (!so_tensor_check(st, obj)) {
        PyErr_Format(PyExc_TypeError, "%s must be a Tensor, got %.100s", argname,
                     Py_TYPE(obj)->tp_name);
        return -1;
    }
    SoTensor *t = (SoTensor *)obj;
    so_device d = so_tensor_device(t);
    if (d.type != SO_CUDA) {
        PyErr_Format(PyExc_ValueError, "%s must be a CUDA tensor for the NCCL backend, got a "
                     "CPU tensor (use the gloo backend for CPU tensors)", argname);
        return -1;
    }
    if (!so_tensor_is_contiguous(t)) {
        PyErr_Format(PyExc_ValueError, "%s must be contiguous", argname);
        return -1;
    }
    if (so_nccl_ensure_comm(s, d.index) < 0) return -1;
    *out = t;
    return 0;
}

static int check_rank(NPG *s, int r, const char *argname)
{
    if (r < 0 || r >= s->size) {
        PyErr_Format(PyExc_ValueError, "%s must be in [0, %d), got %d", argname, s->size, r);
        return -1;
    }
    return 0;
}

static int same_kind(SoTensor *a, SoTensor *b, int64_t mult, const char *an, const char *bn)
{
    if (a->dtype != b->dtype) {
        PyErr_Format(PyExc_TypeError, "%s and %s must have the same dtype", an, bn);
        return -1;
    }
    if (so_tensor_numel(a) != mult * so_tensor_numel(b)) {
        PyErr_Format(PyExc_ValueError, "%s must have %lld elements (%lld x %lld), got %lld", an,
                     (long long)(mult * so_tensor_numel(b)), (long long)mult,
                     (long long)so_tensor_numel(b), (long long)so_tensor_numel(a));
        return -1;
    }
    return 0;
}

static int fill_nop(nop *o, int kind, SoTensor *t)
{
    memset(o, 0, sizeof *o);
    o->kind = kind;
    o->count = (size_t)so_tensor_numel(t);
    o->esize = (size_t)so_dtype_itemsize(t->dtype);
    return nccl_dtype(t->dtype, &o->dt);
}

#define KW (METH_VARARGS | METH_KEYWORDS)
#define ASYNC_KW "async_op"

/* ---- methods -------------------------------------------------------------------------------- */

static PyObject *N_allreduce(PyObject *op, PyObject *args, PyObject *kw)
{
    NPG *s = (NPG *)op;
    static char *kwlist[] = {"tensor", "op", ASYNC_KW, NULL};
    PyObject *to;
    int red, async_op = 0;
    SoTensor *t;
    nop o;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "Oi|p:allreduce", kwlist, &to, &red, &async_op) ||
        cuda_tensor(s, to, "tensor", &t) < 0 || fill_nop(&o, K_ALLREDUCE, t) < 0 ||
        nccl_op(red, t->dtype, &o.op) < 0)
        return NULL;
    o.in = o.out = so_tensor_data(t);
    so_tensor_bump_version(t);
    if (!o.count) return so_nccl_issue_nothing(s, async_op, Py_BuildValue("(O)", to));
    return so_nccl_issue(s, &o, async_op, Py_BuildValue("(O)", to));
}

static PyObject *N_reduce(PyObject *op, PyObject *args, PyObject *kw)
{
    NPG *s = (NPG *)op;
    static char *kwlist[] = {"tensor", "op", "root", ASYNC_KW, NULL};
    PyObject *to;
    int red, root, async_op = 0;
    SoTensor *t;
    nop o;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "Oii|p:reduce", kwlist, &to, &red, &root,
                                     &async_op) ||
        check_rank(s, root, "dst") < 0 || cuda_tensor(s, to, "tensor", &t) < 0 ||
        fill_nop(&o, K_REDUCE, t) < 0 || nccl_op(red, t->dtype, &o.op) < 0)
        return NULL;
    o.in = o.out = so_tensor_data(t);
    o.root = root;
    so_tensor_bump_version(t);
    if (!o.count) return so_nccl_issue_nothing(s, async_op, Py_BuildValue("(O)", to));
    return so_nccl_issue(s, &o, async_op, Py_BuildValue("(O)", to));
}

static PyObject *N_broadcast(PyObject *op, PyObject *args, PyObject *kw)
{
    NPG *s = (NPG *)op;
    static char *kwlist[] = {"tensor", "root", ASYNC_KW, NULL};
    PyObject *to;
    int root, async_op = 0;
    SoTensor *t;
    nop o;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "Oi|p:broadcast", kwlist, &to, &root, &async_op) ||
        check_rank(s, root, "src") < 0 || cuda_tensor(s, to, "tensor", &t) < 0 ||
        fill_nop(&o, K_BROADCAST, t) < 0)
        return NULL;
    o.in = o.out = so_tensor_data(t);
    o.root = root;
    so_tensor_bump_version(t);
    if (!o.count) return so_nccl_issue_nothing(s, async_op, Py_BuildValue("(O)", to));
    return so_nccl_issue(s, &o, async_op, Py_BuildValue("(O)", to));
}

static PyObject *N_allgather(PyObject *op, PyObject *args, PyObject *kw)
{
    NPG *s = (NPG *)op;
    static char *kwlist[] = {"output", "input", ASYNC_KW, NULL};
    PyObject *oo, *io;
    int async_op = 0;
    SoTensor *out, *in;
    nop o;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|p:allgather", kwlist, &oo, &io, &async_op) ||
        cuda_tensor(s, oo, "output_tensor", &out) < 0 ||
        cuda_tensor(s, io, "input_tensor", &in) < 0 ||
        same_kind(out, in, s->size, "output_tensor", "input_tensor") < 0 ||
        fill_nop(&o, K_ALLGATHER, in) < 0)
        return NULL;
    o.in = so_tensor_data(in);
    o.out = so_tensor_data(out);
    so_tensor_bump_version(out);
    if (!o.count) return so_nccl_issue_nothing(s, async_op, Py_BuildValue("(OO)", oo, io));
    return so_nccl_issue(s, &o, async_op, Py_BuildValue("(OO)", oo, io));
}

static PyObject *N_reduce_scatter(PyObject *op, PyObject *args, PyObject *kw)
{
    NPG *s = (NPG *)op;
    static char *kwlist[] = {"output", "input", "op", ASYNC_KW, NULL};
    PyObject *oo, *io;
    int red, async_op = 0;
    SoTensor *out, *in;
    nop o;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOi|p:reduce_scatter", kwlist, &oo, &io, &red,
                                     &async_op) ||
        cuda_tensor(s, oo, "output", &out) < 0 || cuda_tensor(s, io, "input", &in) < 0 ||
        same_kind(in, out, s->size, "input", "output") < 0 ||
        fill_nop(&o, K_REDUCE_SCATTER, out) < 0 || nccl_op(red, out->dtype, &o.op) < 0)
        return NULL;
    o.in = so_tensor_data(in);
    o.out = so_tensor_data(out);
    so_tensor_bump_version(out);
    if (!o.count) return so_nccl_issue_nothing(s, async_op, Py_BuildValue("(OO)", oo, io));
    return so_nccl_issue(s, &o, async_op, Py_BuildValue("(OO)", oo, io));
}

/* gather(output or None, input, root) / scatter(output, input or None, root) */
static PyObject *rooted(NPG *s, PyObject *args, PyObject *kw, int kind)
{
    static char *kwlist[] = {"output", "input", "root", ASYNC_KW, NULL};
    PyObject *oo, *io;
    int root, async_op = 0;
    SoTensor *out = NULL, *in = NULL;
    nop o;
    int gather = kind == K_GATHER;
    if (!PyArg_ParseTupleAndKeywords(args, kw, gather ? "OOi|p:gather" : "OOi|p:scatter",
                                     kwlist, &oo, &io, &root, &async_op) ||
        check_rank(s, root, gather ? "dst" : "src") < 0)
        return NULL;
    int is_root = s->rank == root;
    if (gather) {
        if (cuda_tensor(s, io, "tensor", &in) < 0 ||
            (is_root && (cuda_tensor(s, oo, "gather_list", &out) < 0 ||
                         same_kind(out, in, s->size, "gather_list", "tensor") < 0)) ||
            fill_nop(&o, kind, in) < 0)
            return NULL;
    } else {
        if (cuda_tensor(s, oo, "tensor", &out) < 0 ||
            (is_root && (cuda_tensor(s, io, "scatter_list", &in) < 0 ||
                         same_kind(in, out, s->size, "scatter_list", "tensor") < 0)) ||
            fill_nop(&o, kind, out) < 0)
            return NULL;
    }
    o.in = in ? so_tensor_data(in) : NULL;
    o.out = out ? so_tensor_data(out) : NULL;
    o.root = root;
    if (out) so_tensor_bump_version(out);
    if (!o.count) return so_nccl_issue_nothing(s, async_op, Py_BuildValue("(OO)", oo, io));
    return so_nccl_issue(s, &o, async_op, Py_BuildValue("(OO)", oo, io));
}

static PyObject *N_gather(PyObject *op, PyObject *a, PyObject *k) { return rooted((NPG *)op, a, k, K_GATHER); }
static PyObject *N_scatter(PyObject *op, PyObject *a, PyObject *k) { return rooted((NPG *)op, a, k, K_SCATTER); }

static int parse_counts(PyObject *seq, int size, const char *argname, int64_t *out, int64_t *total)
{
    PyObject *f = PySequence_Fast(seq, argname);
    if (!f) return -1;
    int rc = -1;
    if (PySequence_Fast_GET_SIZE(f) != size) {
        PyErr_Format(PyExc_ValueError, "%s must have %d entries", argname, size);
        goto done;
    }
    *total = 0;
    for (int i = 0; i < size; i++) {
        long long v = PyLong_AsLongLong(PySequence_Fast_GET_ITEM(f, i));
        if (v == -1 && PyErr_Occurred()) goto done;
        if (v < 0) {
            PyErr_Format(PyExc_ValueError, "%s entries must be >= 0, got %lld", argname, v);
            goto done;
        }
        out[i] = v;
        *total += v;
    }
    rc = 0;
done:
    Py_DECREF(f);
    return rc;
}

static PyObject *N_alltoall(PyObject *op, PyObject *args, PyObject *kw)
{
    NPG *s = (NPG *)op;
    static char *kwlist[] = {"output", "input", "output_split_sizes", "input_split_sizes",
                             ASYNC_KW, NULL};
    PyObject *oo, *io, *os, *is, *res = NULL;
    int async_op = 0;
    SoTensor *out, *in;
    nop o;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOOO|p:alltoall", kwlist, &oo, &io, &os, &is,
                                     &async_op) ||
        cuda_tensor(s, oo, "output", &out) < 0 || cuda_tensor(s, io, "input", &in) < 0 ||
        fill_nop(&o, K_ALLTOALL, in) < 0)
        return NULL;
    if (out->dtype != in->dtype) {
        PyErr_SetString(PyExc_TypeError, "output and input must have the same dtype");
        return NULL;
    }
    int64_t *counts = PyMem_Calloc(2 * (size_t)s->size, sizeof(int64_t)), ot, it;
    if (!counts) return PyErr_NoMemory();
    if (parse_counts(os, s->size, "output_split_sizes", counts, &ot) < 0 ||
        parse_counts(is, s->size, "input_split_sizes", counts + s->size, &it) < 0)
        goto done;
    if (ot != so_tensor_numel(out) || it != so_tensor_numel(in) ||
        counts[s->rank] != counts[s->size + s->rank]) {
        PyErr_SetString(PyExc_ValueError, "split sizes must add up to the tensors' numel, and "
                        "this rank's own input and output splits must agree");
        goto done;
    }
    o.out_counts = counts;
    o.in_counts = counts + s->size;
    o.in = so_tensor_data(in);
    o.out = so_tensor_data(out);
    so_tensor_bump_version(out);
    if (!ot && !it)
        res = so_nccl_issue_nothing(s, async_op, Py_BuildValue("(OO)", oo, io));
    else
        res = so_nccl_issue(s, &o, async_op, Py_BuildValue("(OO)", oo, io));
done:
    PyMem_Free(counts);
    return res;
}

static PyObject *N_barrier(PyObject *op, PyObject *args, PyObject *kw)
{
    NPG *s = (NPG *)op;
    static char *kwlist[] = {ASYNC_KW, NULL};
    int async_op = 0;
    nop o;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|p:barrier", kwlist, &async_op)) return NULL;
    if (!s->comm) { /* barrier first: the current device, like torch */
        int dev = 0;
        if (so_cuda_get_device(&dev) < 0 || so_nccl_ensure_comm(s, dev) < 0) return NULL;
    } else if (s->broken[0]) {
        return so_nccl_raise_broken(s, "barrier");
    }
    memset(&o, 0, sizeof o);
    o.kind = K_BARRIER;
    return so_nccl_issue(s, &o, async_op, NULL);
}

static PyObject *p2p(NPG *s, PyObject *args, PyObject *kw, int kind)
{
    static char *kwlist[] = {"tensor", "peer", "tag", ASYNC_KW, NULL};
    PyObject *to;
    int peer, async_op = 0;
    unsigned int tag;
    SoTensor *t;
    nop o;
    const char *pname = kind == K_SEND ? "dst" : "src";
    if (!PyArg_ParseTupleAndKeywords(args, kw, kind == K_SEND ? "OiI|p:send" : "OiI|p:recv",
                                     kwlist, &to, &peer, &tag, &async_op))
        return NULL;
    if (peer == -1) {
        PyErr_SetString(PyExc_ValueError, "the NCCL backend cannot receive from any source: "
                        "pass src");
        return NULL;
    }
    if (check_rank(s, peer, pname) < 0) return NULL;
    if (peer == s->rank) {
        PyErr_Format(PyExc_ValueError, "%s must differ from this rank (%d)", pname, s->rank);
        return NULL;
    }
    if (cuda_tensor(s, to, "tensor", &t) < 0 || fill_nop(&o, kind, t) < 0) return NULL;
    (void)tag; /* NCCL matches point-to-point messages by order, not by tag */
    o.in = o.out = so_tensor_data(t);
    o.root = peer;
    if (kind == K_RECV) so_tensor_bump_version(t);
    PyObject *r = o.count ? so_nccl_issue(s, &o, async_op, Py_BuildValue("(O)", to))
                          : so_nccl_issue_nothing(s, async_op, Py_BuildValue("(O)", to));
    if (!r || async_op || kind == K_SEND) return r;
    Py_DECREF(r);
    return PyLong_FromLong(peer);
}

static PyObject *N_send(PyObject *op, PyObject *a, PyObject *k) { return p2p((NPG *)op, a, k, K_SEND); }
static PyObject *N_recv(PyObject *op, PyObject *a, PyObject *k) { return p2p((NPG *)op, a, k, K_RECV); }

/* ---- lifetime ------------------------------------------------------------------------------ */

static void shutdown_group(NPG *s)
{
    if (!s->mu_ready) return;
    pthread_mutex_lock(&s->mu);
    int had_thread = s->watchdog_on;
    s->stop = 1;
    s->watchdog_on = 0;
    s->destroyed = 1;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    Py_BEGIN_ALLOW_THREADS
    if (had_thread) pthread_join(s->watchdog, NULL);
    pthread_mutex_lock(&s->mu);
    /* Let in-flight ops finish (bounded by the timeout), then abort: it never blocks, and
     * nothing is left in flight for it to cut short unless a peer is gone. */
    int64_t deadline = so_nccl_now_ms() + s->timeout_ms;
    while (s->comm && s->inflight && so_nccl_now_ms() < deadline) {
        pending **pp = &s->inflight;
        while (*pp) {
            if (cudaEventQuery((*pp)->ev) == cudaSuccess) {
                pending *p = *pp;
                p->state = P_DONE;
                *pp = p->next;
                so_nccl_pending_unref_locked(p);
            } else {
                pp = &(*pp)->next;
            }
        }
        if (s->inflight) so_nccl_timed_wait(s, 1);
    }
    if (s->comm || s->inflight)
        so_nccl_abort_locked(s, 0, "the process group was destroyed");
    if (s->stream) {
        int prev = 0;
        cudaGetDevice(&prev);
        cudaSetDevice(s->device);
        cudaStreamDestroy(s->stream);
        cudaEventDestroy(s->ev_pre);
        cudaFree(s->scratch);
        (void)cudaGetLastError();
        cudaSetDevice(prev);
        s->stream = NULL;
        s->scratch = NULL;
    }
    pthread_mutex_unlock(&s->mu);
    Py_END_ALLOW_THREADS
}

static int N_init(PyObject *op, PyObject *args, PyObject *kwds)
{
    NPG *s = (NPG *)op;
    static char *kwlist[] = {"store", "rank", "size", "timeout", NULL};
    PyObject *store, *timeout;
    int rank, size;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OiiO:ProcessGroupNCCL", kwlist, &store, &rank,
                                     &size, &timeout))
        return -1;
    if (s->mu_ready) {
        PyErr_SetString(PyExc_RuntimeError, "ProcessGroupNCCL.__init__ called twice");
        return -1;
    }
    if (size < 1 || rank < 0 || rank >= size) {
        PyErr_Format(PyExc_ValueError, "rank must be in [0, size) and size >= 1, got rank=%d "
                     "size=%d", rank, size);
        return -1;
    }
    if (so_parse_timeout_ms(timeout, "timeout", &s->timeout_ms) < 0) return -1;
    const char *why = NULL;
    if (so_cuda_device_count(&why) == 0) {
        so_state *st = so_nccl_state(op);
        PyErr_Format(st ? st->dist_backend_error : PyExc_RuntimeError,
                     "CUDA is not available: %s (the NCCL backend needs a GPU; use gloo)",
                     why ? why : "no device");
        return -1;
    }
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, &ca);
    pthread_condattr_destroy(&ca);
    s->mu_ready = 1;
    s->rank = rank;
    s->size = size;
    s->device = -1;
    Py_INCREF(store);
    Py_XSETREF(s->store, store);
    return 0;
}

static void N_dealloc(PyObject *op)
{
    NPG *s = (NPG *)op;
    PyTypeObject *tp = Py_TYPE(op);
    PyObject_GC_UnTrack(op);
    shutdown_group(s);
    if (s->mu_ready) {
        pthread_mutex_destroy(&s->mu);
        pthread_cond_destroy(&s->cv);
    }
    Py_CLEAR(s->store);
    tp->tp_free(op);
    Py_DECREF(tp);
}

static int N_traverse(PyObject *op, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(op));
    Py_VISIT(((NPG *)op)->store);
    return 0;
}

static int N_clear(PyObject *op)
{
    Py_CLEAR(((NPG *)op)->store);
    return 0;
}

static PyObject *N_shutdown(PyObject *op, PyObject *unused)
{
    shutdown_group((NPG *)op);
    Py_RETURN_NONE;
}

static PyObject *N_get_broken(PyObject *op, void *unused)
{
    NPG *s = (NPG *)op;
    if (!s->mu_ready) Py_RETURN_NONE;
    char why[ERRLEN];
    pthread_mutex_lock(&s->mu);
    snprintf(why, sizeof why, "%s", s->broken);
    pthread_mutex_unlock(&s->mu);
    if (!why[0]) Py_RETURN_NONE;
    return PyUnicode_FromString(why);
}
static PyObject *N_get_rank(PyObject *op, void *u) { return PyLong_FromLong(((NPG *)op)->rank); }
static PyObject *N_get_size(PyObject *op, void *u) { return PyLong_FromLong(((NPG *)op)->size); }
static PyObject *N_get_device(PyObject *op, void *u) { return PyLong_FromLong(((NPG *)op)->device); }
static PyObject *N_get_timeout(PyObject *op, void *u) { return so_timedelta_from_ms(((NPG *)op)->timeout_ms); }

static PyMethodDef N_methods[] = {
    {"allreduce", (PyCFunction)(void (*)(void))N_allreduce, KW, "allreduce(tensor, op, async_op=False)"},
    {"reduce", (PyCFunction)(void (*)(void))N_reduce, KW, "reduce(tensor, op, root, async_op=False)"},
    {"broadcast", (PyCFunction)(void (*)(void))N_broadcast, KW, "broadcast(tensor, root, async_op=False)"},
    {"allgather", (PyCFunction)(void (*)(void))N_allgather, KW, "allgather(output, input, async_op=False)"},
    {"reduce_scatter", (PyCFunction)(void (*)(void))N_reduce_scatter, KW, "reduce_scatter(output, input, op, async_op=False)"},
    {"gather", (PyCFunction)(void (*)(void))N_gather, KW, "gather(output or None, input, root, async_op=False)"},
    {"scatter", (PyCFunction)(void (*)(void))N_scatter, KW, "scatter(output, input or None, root, async_op=False)"},
    {"alltoall", (PyCFunction)(void (*)(void))N_alltoall, KW,
     "alltoall(output, input, output_split_sizes, input_split_sizes, async_op=False) (elements)"},
    {"barrier", (PyCFunction)(void (*)(void))N_barrier, KW, "barrier(async_op=False): blocks the host"},
    {"send", (PyCFunction)(void (*)(void))N_send, KW, "send(tensor, dst, tag, async_op=False)"},
    {"recv", (PyCFunction)(void (*)(void))N_recv, KW, "recv(tensor, src, tag, async_op=False) -> src"},
    {"shutdown", N_shutdown, METH_NOARGS, "finish in-flight ops (bounded by the timeout), abort the communicator"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef N_getset[] = {
    {"broken", N_get_broken, NULL, "why the group is unusable, or None", NULL},
    {"rank", N_get_rank, NULL, NULL, NULL},
    {"size", N_get_size, NULL, NULL, NULL},
    {"device", N_get_device, NULL, "CUDA device of the communicator (-1 before the first op)", NULL},
    {"timeout", N_get_timeout, NULL, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot N_slots[] = {
    {Py_tp_init, N_init},
    {Py_tp_dealloc, N_dealloc},
    {Py_tp_traverse, N_traverse},
    {Py_tp_clear, N_clear},
    {Py_tp_methods, N_methods},
    {Py_tp_getset, N_getset},
    {Py_tp_doc, "ProcessGroupNCCL(store, rank, size, timeout): an NCCL communicator, created "
                "on the first op on the device of its tensors."},
    {0, NULL},
};

static PyType_Spec N_spec = {
    .name = "shardopt._C.ProcessGroupNCCL",
    .basicsize = sizeof(NPG),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .slots = N_slots,
};

static PyObject *nccl_version(PyObject *m, PyObject *u)
{
    int v = 0;
    if (ncclGetVersion(&v) != ncclSuccess) Py_RETURN_NONE;
    return PyLong_FromLong(v);
}

static PyMethodDef module_fns[] = {
    {"_nccl_version", nccl_version, METH_NOARGS, "ncclGetVersion() of the loaded NCCL"},
    {NULL, NULL, 0, NULL},
};

int so_register_nccl(PyObject *m, so_state *st)
{
    PyObject *t = PyType_FromModuleAndSpec(m, &N_spec, NULL);
    if (!t) return -1;
    int rc = PyModule_AddObjectRef(m, "ProcessGroupNCCL", t);
    Py_DECREF(t);
    if (rc < 0 || so_nccl_register_work(m, st) < 0 ||
        PyModule_AddFunctions(m, module_fns) < 0)
        return -1;
    return PyModule_AddIntConstant(m, "_nccl_compiled", 1);
}

#else /* !SHARDOPT_WITH_NCCL */

int so_register_nccl(PyObject *m, so_state *st)
{
    (void)st;
    return PyModule_AddIntConstant(m, "_nccl_compiled", 0);
}

#endif
