/* nccl.c — the NCCL backend of the ProcessGroup front end (backend.h), behind
 * shardopt._C.ProcessGroupNCCL: plain C over nccl.h and the CUDA runtime (compiled only
 * under SHARDOPT_WITH_NCCL).
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
 * This file holds the backend table: NCCL's dtype and op mapping, its limits, and Work
 * handles; the engine (communicator, stream ordering, watchdog, errors) is nccl_engine.c.
 * - Zero-element tensors never reach NCCL.  bool reductions follow torch: SUM is MAX (or),
 *   PRODUCT is MIN (and), AVG raises.
 */
#define _GNU_SOURCE /* pthread_condattr_setclock, clock_gettime under -std=c11 */
#include "nccl_impl.h"
#include "../core/device.h"

#include <stdio.h>
#include <string.h>

#ifdef SHARDOPT_WITH_NCCL

#include <stdlib.h>
#include <time.h>

/* ---- NCCL's types and limits ------------------------------------------------------------ */

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
        return so_fail(PyExc_TypeError, "dtype %d is not supported by this NCCL build "
                       "(bfloat16 needs NCCL >= 2.10)", dtype);
    }
}

static int nccl_op(int op, int dtype, ncclRedOp_t *out)
{
    if (dtype == SO_BOOL) { /* torch: or / and on bytes */
        if (op == SO_RED_AVG)
            return so_fail(PyExc_RuntimeError, "Cannot use ReduceOp.AVG with boolean inputs");
        *out = (op == SO_RED_SUM || op == SO_RED_MAX) ? ncclMax : ncclMin;
        return 0;
    }
    switch (op) {
    case SO_RED_SUM: *out = ncclSum; return 0;
#if NCCL_VERSION_CODE >= NCCL_VERSION(2, 10, 0)
    case SO_RED_AVG: *out = ncclAvg; return 0;
#endif
    case SO_RED_PRODUCT: *out = ncclProd; return 0;
    case SO_RED_MIN: *out = ncclMin; return 0;
    case SO_RED_MAX: *out = ncclMax; return 0;
    default:
        return so_fail(PyExc_ValueError, "op must be a ReduceOp supported by NCCL, got %d", op);
    }
}

static int has_reduction(so_op_kind k)
{
    return k == SO_OP_ALLREDUCE || k == SO_OP_REDUCE || k == SO_OP_REDUCE_SCATTER;
}

/* The so_op as NCCL arguments (raises for an unsupported dtype or op). */
static int to_nop(NPG *s, const so_op *op, nop *o)
{
    memset(o, 0, sizeof *o);
    o->kind = op->kind;
    o->in = op->in;
    o->out = op->out;
    o->count = (size_t)op->count;
    o->esize = (size_t)op->itemsize;
    o->root = op->root;
    if (op->kind == SO_OP_BARRIER) return 0;
    if (nccl_dtype(op->dtype, &o->dt) < 0) return -1;
    if (has_reduction(op->kind) && nccl_op(op->red, op->dtype, &o->op) < 0) return -1;
    if (op->kind == SO_OP_ALLTOALL) {
        o->out_counts = op->splits;
        o->in_counts = op->splits + s->size;
    }
    return 0;
}

/* ---- the backend table (GIL held) --------------------------------------------------------- */

static NPG *npg(so_pg *pg) { return pg->impl; }

static int nccl_init(so_pg *pg, int option)
{
    (void)option;
    const char *why = NULL;
    if (so_cuda_device_count(&why) == 0) {
        so_state *st = so_state_from_type(Py_TYPE(pg));
        return so_fail(st ? st->dist.backend_error : PyExc_RuntimeError,
                       "CUDA is not available: %s (the NCCL backend needs a GPU; use gloo)",
                       why ? why : "no device");
    }
    NPG *s = PyMem_Calloc(1, sizeof *s);
    if (!s) {
        PyErr_NoMemory();
        return -1;
    }
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, &ca);
    pthread_condattr_destroy(&ca);
    s->pg = pg;
    s->rank = pg->rank;
    s->size = pg->size;
    s->timeout_ms = pg->timeout_ms;
    s->device = -1;
    pg->impl = s;
    return 0;
}

/* Tensors on `device` (-1: none -- barrier first uses the current device, like torch). */
static int nccl_ready(so_pg *pg, int device)
{
    NPG *s = npg(pg);
    if (device >= 0) return so_nccl_ensure_comm(s, device);
    if (!s->comm && !s->broken[0]) {
        int dev = 0;
        if (so_cuda_get_device(&dev) < 0) return -1;
        return so_nccl_ensure_comm(s, dev);
    }
    if (s->destroyed || s->broken[0]) return so_nccl_ensure_comm(s, s->device);
    return 0;
}

static int nccl_check(so_pg *pg, const so_op *op)
{
    NPG *s = npg(pg);
    nop o;
    if (to_nop(s, op, &o) < 0) return -1;
    if (op->kind == SO_OP_ALLTOALL && op->splits[s->rank] != op->splits[s->size + s->rank])
        return so_fail(PyExc_ValueError, "split sizes must add up to the tensors' numel, and "
                       "this rank's own input and output splits must agree");
    return 0;
}

static int nccl_run(so_pg *pg, const so_op *op, int async_op, void **work, int *peer)
{
    NPG *s = npg(pg);
    nop o;
    if (to_nop(s, op, &o) < 0) return -1;
    if (peer) *peer = op->root; /* NCCL matches send/recv by order from the named peer */
    int nothing = op->kind == SO_OP_ALLTOALL ? !op->out_total && !op->in_total
                                             : op->kind != SO_OP_BARRIER && !op->count;
    if (nothing) { /* zero elements never reach NCCL: complete at once */
        if (async_op) *work = NULL;
        return 0;
    }
    return so_nccl_issue(s, &o, async_op, (pending **)work);
}

/* Under mu: refresh and return p's state. */
static int pending_state_locked(pending *p)
{
    if (p->state == P_INFLIGHT) {
        cudaError_t q = cudaEventQuery(p->ev);
        if (q == cudaSuccess) p->state = P_DONE;
        else if (q != cudaErrorNotReady) (void)cudaGetLastError(); /* the watchdog reports it */
    }
    return p->state;
}

static int nccl_work_state(so_pg *pg, void *work)
{
    NPG *s = npg(pg);
    pthread_mutex_lock(&s->mu);
    int st = pending_state_locked(work);
    pthread_mutex_unlock(&s->mu);
    return st == P_DONE ? SO_WORK_DONE : st == P_FAILED ? SO_WORK_FAILED : SO_WORK_PENDING;
}

/* Without a timeout, as torch, the compute stream waits for the op (the host does not);
 * with one, the host waits until done or the timeout. */
static int nccl_work_wait(so_pg *pg, void *work, int64_t timeout_ms)
{
    NPG *s = npg(pg);
    pending *p = work;
    if (timeout_ms >= 0) {
        char m[ERRLEN] = "";
        int is_timeout = 0, rc;
        Py_BEGIN_ALLOW_THREADS
        rc = so_nccl_wait_host(s, p, timeout_ms, m, &is_timeout);
        Py_END_ALLOW_THREADS
        return rc ? so_dist_raise(pg, is_timeout, m) : 0;
    }
    so_state *st = so_state_from_type(Py_TYPE(pg));
    void *compute = st ? so_cuda_stream(st->core.cuda_streams, s->device) : NULL;
    if (!compute) return -1;
    pthread_mutex_lock(&s->mu);
    int state = pending_state_locked(p);
    cudaError_t ce = cudaSuccess;
    if (state == P_INFLIGHT) ce = cudaStreamWaitEvent((cudaStream_t)compute, p->ev, 0);
    pthread_mutex_unlock(&s->mu);
    if (state == P_FAILED) return so_dist_raise(pg, s->broken_timeout, s->broken);
    if (ce != cudaSuccess) {
        (void)cudaGetLastError();
        return so_dist_raise(pg, 0, cudaGetErrorString(ce));
    }
    return 0;
}

static PyObject *nccl_work_exception(so_pg *pg, void *work)
{
    NPG *s = npg(pg);
    return so_dist_exception(pg, s->broken_timeout, s->broken);
}

static int nccl_work_source(void *work) { return ((pending *)work)->peer; }

static void nccl_work_release(so_pg *pg, void *work)
{
    NPG *s = npg(pg);
    pthread_mutex_lock(&s->mu);
    so_nccl_pending_unref_locked(work);
    pthread_mutex_unlock(&s->mu);
}

static void nccl_shutdown(so_pg *pg) { so_nccl_shutdown(npg(pg)); }

/* When the group object dies: its Works (which hold it) are gone. */
static void nccl_release(so_pg *pg)
{
    NPG *s = npg(pg);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    PyMem_Free(s);
    pg->impl = NULL;
}

static PyObject *nccl_broken(so_pg *pg)
{
    NPG *s = npg(pg);
    char why[ERRLEN];
    pthread_mutex_lock(&s->mu);
    snprintf(why, sizeof why, "%s", s->broken);
    pthread_mutex_unlock(&s->mu);
    if (!why[0]) Py_RETURN_NONE;
    return PyUnicode_FromString(why);
}

const so_backend so_nccl_backend = {
    .name = "nccl",
    .device_type = SO_CUDA,
    .any_source = 0,
    .init = nccl_init,
    .ready = nccl_ready,
    .check = nccl_check,
    .run = nccl_run,
    .work_wait = nccl_work_wait,
    .work_state = nccl_work_state,
    .work_exception = nccl_work_exception,
    .work_source = nccl_work_source,
    .work_release = nccl_work_release,
    .shutdown = nccl_shutdown,
    .release = nccl_release,
    .broken = nccl_broken,
};

static PyObject *nccl_version(PyObject *m, PyObject *unused)
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
    (void)st;
    if (PyModule_AddFunctions(m, module_fns) < 0) return -1;
    return PyModule_AddIntConstant(m, "_nccl_compiled", 1);
}

#else /* !SHARDOPT_WITH_NCCL */

int so_register_nccl(PyObject *m, so_state *st)
{
    (void)st;
    return PyModule_AddIntConstant(m, "_nccl_compiled", 0);
}

#endif
