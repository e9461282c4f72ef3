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

enum { K_ALLREDUCE, K_REDUCE, K_BROADCAST, K_ALLGATHER, K_REDUCE_SCATTER, K_GATHER, K_SCATTER,
       K_ALLTOALL, K_BARRIER, K_SEND, K_RECV };
static const char *const KNAMES[] = {"all_reduce", "reduce", "broadcast", "all_gather",
                                     "reduce_scatter", "gather", "scatter", "all_to_all",
                                     "barrier", "send", "recv"};
/* One op's arguments (device pointers, element counts). */
typedef struct {
    int kind;
    void *in, *out;
    size_t count, esize;
    ncclDataType_t dt;
    ncclRedOp_t op;
    int root;                            /* root, or the peer of send/recv */
    const int64_t *in_counts, *out_counts; /* all_to_all, per peer */
} nop;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void nap_us(long us)
{
    struct timespec ts = {0, us * 1000L};
    nanosleep(&ts, NULL);
}

static void timed_wait(NPG *s, int64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += (time_t)(ms / 1000);
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&s->cv, &s->mu, &ts);
}

void so_nccl_pending_unref_locked(pending *p)
{
    if (--p->refs == 0) {
        cudaEventDestroy(p->ev);
        free(p);
    }
}

/* Under mu: abort the communicator, fail every in-flight op, remember why. */
static void abort_locked(NPG *s, int is_timeout, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void abort_locked(NPG *s, int is_timeout, const char *fmt, ...)
{
    if (!s->broken[0]) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(s->broken, sizeof s->broken, fmt, ap);
        va_end(ap);
        if (!s->broken[0]) snprintf(s->broken, sizeof s->broken, "NCCL failure");
        s->broken_timeout = is_timeout;
    }
    if (s->comm) {
        ncclCommAbort(s->comm);
        s->comm = NULL;
    }
    while (s->inflight) {
        pending *p = s->inflight;
        s->inflight = p->next;
        p->state = P_FAILED;
        so_nccl_pending_unref_locked(p);
    }
    pthread_cond_broadcast(&s->cv);
}

/* ---- watchdog ------------------------------------------------------------------------ */

static void *watchdog_main(void *arg)
{
    NPG *s = arg;
    cudaSetDevice(s->device);
    pthread_mutex_lock(&s->mu);
    while (!s->stop) {
        timed_wait(s, s->inflight ? 10 : 100);
        if (s->stop || !s->comm) continue;
        ncclResult_t ar = ncclSuccess;
        if (ncclCommGetAsyncError(s->comm, &ar) == ncclSuccess && ar != ncclSuccess &&
            ar != ncclInProgress) {
            abort_locked(s, 0, "NCCL asynchronous error: %s (%s); the communicator was aborted",
                         ncclGetErrorString(ar), ncclGetLastError(s->comm));
            continue;
        }
        int64_t now = now_ms();
        pending **pp = &s->inflight;
        while (*pp) {
            pending *p = *pp;
            cudaError_t q = cudaEventQuery(p->ev);
            if (q == cudaSuccess) {
                p->state = P_DONE;
                *pp = p->next;
                so_nccl_pending_unref_locked(p);
                pthread_cond_broadcast(&s->cv);
            } else if (q != cudaErrorNotReady) {
                (void)cudaGetLastError();
                abort_locked(s, 0, "%s failed on the GPU: %s; the communicator was aborted",
                             KNAMES[p->kind], cudaGetErrorString(q));
                break;
            } else if (now - p->start_ms > s->timeout_ms) {
                abort_locked(s, 1, "%s timed out after %lld ms (NCCL watchdog); the "
                             "communicator was aborted", KNAMES[p->kind],
                             (long long)s->timeout_ms);
                break;
            } else {
                pp = &p->next;
            }
        }
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* ---- errors ----------------------------------------------------------------------------- */


static PyObject *raise_broken(NPG *s, const char *op)
{
    so_state *st = so_nccl_state((PyObject *)s);
    if (!st) return NULL;
    PyErr_Format(s->broken_timeout && !op ? st->dist_timeout_error : st->dist_backend_error,
                 "%s%s%s (rank %d of %d)", op ? op : "", op ? ": the process group is unusable "
                 "after an earlier failure: " : "", s->broken, s->rank, s->size);
    return NULL;
}

PyObject *so_nccl_raise(NPG *s, int is_timeout, const char *msg)
{
    so_state *st = so_nccl_state((PyObject *)s);
    if (!st) return NULL;
    PyErr_Format(is_timeout ? st->dist_timeout_error : st->dist_backend_error,
                 "%s (rank %d of %d)", msg, s->rank, s->size);
    return NULL;
}

/* ---- communicator ------------------------------------------------------------------------ */

/* Create the communicator on `device` (GIL held on entry and exit). */
static int ensure_comm(NPG *s, int device)
{
    if (s->destroyed) {
        so_state *st = so_nccl_state((PyObject *)s);
        PyErr_SetString(st ? st->dist_error : PyExc_RuntimeError,
                        "the process group has been destroyed");
        return -1;
    }
    if (s->broken[0]) return raise_broken(s, "NCCL"), -1;
    if (s->comm) {
        if (device != s->device) {
            PyErr_Format(PyExc_ValueError, "tensor is on cuda:%d but this process group's NCCL "
                         "communicator is on cuda:%d", device, s->device);
            return -1;
        }
        return 0;
    }
    ncclUniqueId id;
    memset(&id, 0, sizeof id);
    static const char key[] = "nccl_unique_id";
    if (s->rank == 0) {
        ncclResult_t r = ncclGetUniqueId(&id);
        if (r != ncclSuccess) {
            char m[ERRLEN];
            snprintf(m, sizeof m, "ncclGetUniqueId failed: %s", ncclGetErrorString(r));
            return so_nccl_raise(s, 0, m), -1;
        }
        PyObject *v = PyObject_CallMethod(s->store, "set", "sy#", key, (const char *)&id,
                                          (Py_ssize_t)sizeof id);
        if (!v) return -1;
        Py_DECREF(v);
    } else {
        PyObject *v = PyObject_CallMethod(s->store, "get", "s", key);
        if (!v) return -1;
        if (!PyBytes_Check(v) || PyBytes_GET_SIZE(v) != (Py_ssize_t)sizeof id) {
            Py_DECREF(v);
            return so_nccl_raise(s, 0, "the store holds a malformed NCCL unique id"), -1;
        }
        memcpy(&id, PyBytes_AS_STRING(v), sizeof id);
        Py_DECREF(v);
    }
    char m[ERRLEN] = "";
    int is_timeout = 0, prev = 0;
    ncclComm_t comm = NULL;
    cudaStream_t stream = NULL;
    cudaEvent_t ev = NULL;
    void *scratch = NULL;
    Py_BEGIN_ALLOW_THREADS
    cudaGetDevice(&prev);
    cudaError_t ce = cudaSetDevice(device);
    if (ce != cudaSuccess) {
        snprintf(m, sizeof m, "cudaSetDevice(%d): %s", device, cudaGetErrorString(ce));
    } else {
        ncclConfig_t cfg = NCCL_CONFIG_INITIALIZER;
        cfg.blocking = 0; /* never block inside NCCL: we poll with our timeout */
        ncclResult_t r = ncclCommInitRankConfig(&comm, s->size, id, s->rank, &cfg);
        int64_t deadline = now_ms() + s->timeout_ms;
        while (r == ncclInProgress && comm) {
            if (now_ms() > deadline) {
                is_timeout = 1;
                break;
            }
            nap_us(1000);
            if (ncclCommGetAsyncError(comm, &r) != ncclSuccess) break;
        }
        if (is_timeout || r != ncclSuccess) {
            if (is_timeout)
                snprintf(m, sizeof m, "NCCL communicator initialisation timed out after %lld ms "
                         "(a rank did not join)", (long long)s->timeout_ms);
            else
                snprintf(m, sizeof m, "NCCL communicator initialisation failed: %s (%s)",
                         ncclGetErrorString(r), ncclGetLastError(comm));
            if (comm) ncclCommAbort(comm);
            comm = NULL;
        } else if ((ce = cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking)) ||
                   (ce = cudaEventCreateWithFlags(&ev, cudaEventDisableTiming)) ||
                   (ce = cudaMalloc(&scratch, 4)) || (ce = cudaMemset(scratch, 0, 4))) {
            snprintf(m, sizeof m, "creating the NCCL group's stream/event/buffer: %s",
                     cudaGetErrorString(ce));
            ncclCommAbort(comm);
            comm = NULL;
        }
    }
    if (!comm) {
        if (stream) cudaStreamDestroy(stream);
        if (ev) cudaEventDestroy(ev);
        if (scratch) cudaFree(scratch);
        (void)cudaGetLastError();
    }
    cudaSetDevice(prev);
    Py_END_ALLOW_THREADS
    if (!comm) {
        /* The unique id is spent: later calls fail fast instead of retrying with it. */
        pthread_mutex_lock(&s->mu);
        snprintf(s->broken, sizeof s->broken, "%s", m);
        s->broken_timeout = is_timeout;
        pthread_mutex_unlock(&s->mu);
        return so_nccl_raise(s, is_timeout, m), -1;
    }
    pthread_mutex_lock(&s->mu);
    s->comm = comm;
    s->device = device;
    s->stream = stream;
    s->ev_pre = ev;
    s->scratch = scratch;
    s->stop = 0;
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old); /* signals stay with Python's main thread */
    int e = pthread_create(&s->watchdog, NULL, watchdog_main, s);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    s->watchdog_on = e == 0;
    pthread_mutex_unlock(&s->mu);
    if (e) {
        snprintf(m, sizeof m, "cannot start the NCCL watchdog thread: %s", strerror(e));
        return so_nccl_raise(s, 0, m), -1;
    }
    return 0;
}

/* ---- issuing ------------------------------------------------------------------------------ */

static ncclResult_t enqueue(NPG *s, const nop *o)
{
    ncclComm_t c = s->comm;
    cudaStream_t st = s->stream;
    switch (o->kind) {
    case K_ALLREDUCE: return ncclAllReduce(o->in, o->out, o->count, o->dt, o->op, c, st);
    case K_REDUCE: return ncclReduce(o->in, o->out, o->count, o->dt, o->op, o->root, c, st);
    case K_BROADCAST: return ncclBroadcast(o->in, o->out, o->count, o->dt, o->root, c, st);
    case K_ALLGATHER: return ncclAllGather(o->in, o->out, o->count, o->dt, c, st);
    case K_REDUCE_SCATTER:
        return ncclReduceScatter(o->in, o->out, o->count, o->dt, o->op, c, st);
    case K_BARRIER: return ncclAllReduce(s->scratch, s->scratch, 1, ncclInt32, ncclSum, c, st);
    case K_SEND: return ncclSend(o->in, o->count, o->dt, o->root, c, st);
    case K_RECV: return ncclRecv(o->out, o->count, o->dt, o->root, c, st);
    default: break;
    }
    /* Grouped point-to-point work; this rank's own chunk is a device copy. */
    ncclResult_t res = ncclSuccess, r = ncclGroupStart();
    if (r != ncclSuccess) return r;
#define NC(call)                                                                          \
    do {                                                                                  \
        ncclResult_t r_ = (call);                                                         \
        if (r_ != ncclSuccess && r_ != ncclInProgress && res == ncclSuccess) res = r_;    \
    } while (0)
#define CP(dst, src, n)                                                                   \
    do {                                                                                  \
        size_t n_ = (n);                                                                  \
        if (n_ != 0 && cudaMemcpyAsync((dst), (src), n_, cudaMemcpyDeviceToDevice, st) != \
                           cudaSuccess && res == ncclSuccess)                             \
            res = ncclUnhandledCudaError;                                                 \
    } while (0)
    char *in = o->in, *out = o->out;
    size_t bytes = o->count * o->esize;
    if (o->kind == K_GATHER) {
        if (s->rank == o->root) {
            for (int q = 0; q < s->size; q++) {
                if (q == s->rank) CP(out + (size_t)q * bytes, in, bytes);
                else NC(ncclRecv(out + (size_t)q * bytes, o->count, o->dt, q, c, st));
            }
        } else {
            NC(ncclSend(in, o->count, o->dt, o->root, c, st));
        }
    } else if (o->kind == K_SCATTER) {
        if (s->rank == o->root) {
            for (int q = 0; q < s->size; q++) {
                if (q == s->rank) CP(out, in + (size_t)q * bytes, bytes);
                else NC(ncclSend(in + (size_t)q * bytes, o->count, o->dt, q, c, st));
            }
        } else {
            NC(ncclRecv(out, o->count, o->dt, o->root, c, st));
        }
    } else { /* K_ALLTOALL */
        size_t ioff = 0, ooff = 0, my_in = 0, my_out = 0;
        for (int q = 0; q < s->size; q++) {
            if (q == s->rank) {
                my_in = ioff;
                my_out = ooff;
            } else {
                if (o->in_counts[q])
                    NC(ncclSend(in + ioff * o->esize, (size_t)o->in_counts[q], o->dt, q, c, st));
                if (o->out_counts[q])
                    NC(ncclRecv(out + ooff * o->esize, (size_t)o->out_counts[q], o->dt, q, c,
                                st));
            }
            ioff += (size_t)o->in_counts[q];
            ooff += (size_t)o->out_counts[q];
        }
        CP(out + my_out * o->esize, in + my_in * o->esize,
           (size_t)o->in_counts[s->rank] * o->esize);
    }
#undef NC
#undef CP
    r = ncclGroupEnd();
    return res != ncclSuccess ? res : r;
}

/* Issue o on the communication stream, ordered with `compute` (GIL released, mu not held).
 * Returns 0 and (if want) a pending with a reference for the caller; or -1 with m set. */
static int issue_nogil(NPG *s, const nop *o, cudaStream_t compute, pending **want, char *m,
                       int *is_timeout)
{
    int rc = -1, prev = 0;
    pthread_mutex_lock(&s->mu);
    if (s->broken[0] || !s->comm) {
        snprintf(m, ERRLEN, "%s: the process group is unusable after an earlier failure: %.900s",
                 KNAMES[o->kind], s->broken[0] ? s->broken : "destroyed");
        goto out_unlocked;
    }
    cudaGetDevice(&prev);
    if (prev != s->device) cudaSetDevice(s->device);
    cudaError_t ce = cudaEventRecord(s->ev_pre, compute);
    if (!ce) ce = cudaStreamWaitEvent(s->stream, s->ev_pre, 0);
    if (ce) {
        (void)cudaGetLastError();
        abort_locked(s, 0, "%s: ordering with the compute stream failed: %s", KNAMES[o->kind],
                     cudaGetErrorString(ce));
        goto fail;
    }
    int64_t deadline = now_ms() + s->timeout_ms;
    ncclResult_t r = enqueue(s, o);
    while (r == ncclInProgress) { /* non-blocking communicator: wait until enqueued */
        if (now_ms() > deadline) {
            abort_locked(s, 1, "%s timed out after %lld ms while being enqueued; the "
                         "communicator was aborted", KNAMES[o->kind], (long long)s->timeout_ms);
            goto fail;
        }
        nap_us(20);
        if (ncclCommGetAsyncError(s->comm, &r) != ncclSuccess) break;
    }
    if (r != ncclSuccess) {
        abort_locked(s, 0, "NCCL %s failed: %s (%s); the communicator was aborted",
                     KNAMES[o->kind], ncclGetErrorString(r), ncclGetLastError(s->comm));
        goto fail;
    }
    pending *p = calloc(1, sizeof *p);
    if (!p || cudaEventCreateWithFlags(&p->ev, cudaEventDisableTiming) != cudaSuccess ||
        cudaEventRecord(p->ev, s->stream) != cudaSuccess ||
        cudaStreamWaitEvent(compute, p->ev, 0) != cudaSuccess) {
        /* Without the event the compute stream is not ordered after the op: give up on the
         * group rather than risk reading or freeing buffers under NCCL. */
        if (p && p->ev) cudaEventDestroy(p->ev);
        free(p);
        (void)cudaGetLastError();
        abort_locked(s, 0, "%s: cannot order the compute stream after the op (out of memory or "
                     "CUDA error)", KNAMES[o->kind]);
        goto fail;
    }
    p->kind = o->kind;
    p->start_ms = now_ms();
    p->refs = want ? 2 : 1;
    p->next = s->inflight;
    s->inflight = p;
    if (want) *want = p;
    pthread_cond_broadcast(&s->cv);
    rc = 0;
    goto out;
fail:
    snprintf(m, ERRLEN, "%s", s->broken);
    *is_timeout = s->broken_timeout;
out:
    if (prev != s->device) cudaSetDevice(prev);
out_unlocked:
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* Host-wait for p (GIL released): 0 when done, -1 with m set on failure or timeout. */
int so_nccl_wait_host(NPG *s, pending *p, int64_t timeout_ms, char *m, int *is_timeout)
{
    int64_t deadline = now_ms() + timeout_ms;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        if (p->state == P_INFLIGHT) {
            cudaError_t q = cudaEventQuery(p->ev);
            if (q == cudaSuccess) p->state = P_DONE;
            else if (q != cudaErrorNotReady) {
                (void)cudaGetLastError();
                abort_locked(s, 0, "%s failed on the GPU: %s", KNAMES[p->kind],
                             cudaGetErrorString(q));
            }
        }
        if (p->state == P_DONE) {
            pthread_mutex_unlock(&s->mu);
            return 0;
        }
        if (p->state == P_FAILED) {
            snprintf(m, ERRLEN, "%s", s->broken);
            *is_timeout = s->broken_timeout;
            pthread_mutex_unlock(&s->mu);
            return -1;
        }
        if (now_ms() > deadline) {
            snprintf(m, ERRLEN, "Work.wait: %s did not complete within %lld ms",
                     KNAMES[p->kind], (long long)timeout_ms);
            *is_timeout = 1;
            pthread_mutex_unlock(&s->mu);
            return -1;
        }
        timed_wait(s, 1);
    }
}


/* Issue o (GIL held); sync: None; async: an NCCLWork.  Steals keep. */
static PyObject *issue(NPG *s, const nop *o, int async_op, PyObject *keep)
{
    so_state *st = so_nccl_state((PyObject *)s);
    if (!st || (!keep && PyErr_Occurred())) goto error;
    void *compute = so_cuda_stream(st->cuda_streams, s->device);
    if (!compute) goto error;
    char m[ERRLEN] = "";
    int is_timeout = 0, rc;
    pending *p = NULL;
    int host_wait = o->kind == K_BARRIER;
    Py_BEGIN_ALLOW_THREADS
    rc = issue_nogil(s, o, (cudaStream_t)compute, (async_op || host_wait) ? &p : NULL, m,
                     &is_timeout);
    if (rc == 0 && host_wait && !async_op) {
        rc = so_nccl_wait_host(s, p, s->timeout_ms, m, &is_timeout);
        pthread_mutex_lock(&s->mu);
        so_nccl_pending_unref_locked(p);
        pthread_mutex_unlock(&s->mu);
        p = NULL;
    }
    Py_END_ALLOW_THREADS
    if (rc) {
        Py_XDECREF(keep);
        return so_nccl_raise(s, is_timeout, m);
    }
    if (!async_op) {
        Py_XDECREF(keep);
        Py_RETURN_NONE;
    }
    return so_nccl_work_new(s, p, keep);
error:
    Py_XDECREF(keep);
    return NULL;
}

/* A work that is complete at once (zero-size or 1-rank no-op). */
static PyObject *issue_nothing(NPG *s, int async_op, PyObject *keep)
{
    if (!async_op) {
        Py_XDECREF(keep);
        Py_RETURN_NONE;
    }
    if (!keep && PyErr_Occurred()) return NULL;
    return so_nccl_work_new(s, NULL, keep);
}

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
    if (ensure_comm(s, d.index) < 0) return -1;
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
    if (!o.count) return issue_nothing(s, async_op, Py_BuildValue("(O)", to));
    return issue(s, &o, async_op, Py_BuildValue("(O)", to));
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
    if (!o.count) return issue_nothing(s, async_op, Py_BuildValue("(O)", to));
    return issue(s, &o, async_op, Py_BuildValue("(O)", to));
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
    if (!o.count) return issue_nothing(s, async_op, Py_BuildValue("(O)", to));
    return issue(s, &o, async_op, Py_BuildValue("(O)", to));
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
    if (!o.count) return issue_nothing(s, async_op, Py_BuildValue("(OO)", oo, io));
    return issue(s, &o, async_op, Py_BuildValue("(OO)", oo, io));
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
    if (!o.count) return issue_nothing(s, async_op, Py_BuildValue("(OO)", oo, io));
    return issue(s, &o, async_op, Py_BuildValue("(OO)", oo, io));
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
    if (!o.count) return issue_nothing(s, async_op, Py_BuildValue("(OO)", oo, io));
    return issue(s, &o, async_op, Py_BuildValue("(OO)", oo, io));
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
        res = issue_nothing(s, async_op, Py_BuildValue("(OO)", oo, io));
    else
        res = issue(s, &o, async_op, Py_BuildValue("(OO)", oo, io));
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
        if (so_cuda_get_device(&dev) < 0 || ensure_comm(s, dev) < 0) return NULL;
    } else if (s->broken[0]) {
        return raise_broken(s, "barrier");
    }
    memset(&o, 0, sizeof o);
    o.kind = K_BARRIER;
    return issue(s, &o, async_op, NULL);
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
    PyObject *r = o.count ? issue(s, &o, async_op, Py_BuildValue("(O)", to))
                          : issue_nothing(s, async_op, Py_BuildValue("(O)", to));
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
    int64_t deadline = now_ms() + s->timeout_ms;
    while (s->comm && s->inflight && now_ms() < deadline) {
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
        if (s->inflight) timed_wait(s, 1);
    }
    if (s->comm || s->inflight)
        abort_locked(s, 0, "the process group was destroyed");
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
    if (rc < 0) return -1;
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
