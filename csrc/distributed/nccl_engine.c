/* nccl_engine.c — the NCCL backend's engine: lazy communicator creation (unique id through
 * the store, non-blocking init polled against the group timeout), ordering of ops between
 * the compute and communication streams with events, the watchdog that aborts the
 * communicator on an asynchronous error or timeout, shutdown, and the error path into
 * Python.  nccl.c holds the backend table (see its header comment for the whole design);
 * nccl_impl.h is what the two share.  Compiled only under SHARDOPT_WITH_NCCL. */
#define _GNU_SOURCE /* pthread_condattr_setclock, clock_gettime, nanosleep under -std=c11 */
#include "nccl_impl.h"
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

#define KNAMES SO_OP_NAMES

int64_t so_nccl_now_ms(void)
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

void so_nccl_timed_wait(NPG *s, int64_t ms)
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
void so_nccl_abort_locked(NPG *s, int is_timeout, const char *fmt, ...)
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
        so_nccl_timed_wait(s, s->inflight ? 10 : 100);
        if (s->stop || !s->comm) continue;
        ncclResult_t ar = ncclSuccess;
        if (ncclCommGetAsyncError(s->comm, &ar) == ncclSuccess && ar != ncclSuccess &&
            ar != ncclInProgress) {
            so_nccl_abort_locked(s, 0, "NCCL asynchronous error: %s (%s); the communicator was aborted",
                         ncclGetErrorString(ar), ncclGetLastError(s->comm));
            continue;
        }
        int64_t now = so_nccl_now_ms();
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
                so_nccl_abort_locked(s, 0, "%s failed on the GPU: %s; the communicator was aborted",
                             KNAMES[p->kind], cudaGetErrorString(q));
                break;
            } else if (now - p->start_ms > s->timeout_ms) {
                so_nccl_abort_locked(s, 1, "%s timed out after %lld ms (NCCL watchdog); the "
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


int so_nccl_raise_broken(NPG *s, const char *op)
{
    so_state *st = so_nccl_state(s);
    if (!st) return -1;
    return so_fail(s->broken_timeout && !op ? st->dist.timeout_error : st->dist.backend_error,
                   "%s%s%s (rank %d of %d)", op ? op : "", op ? ": the process group is "
                   "unusable after an earlier failure: " : "", s->broken, s->rank, s->size);
}

int so_nccl_raise_at(NPG *s, ncclResult_t r, const char *expr, const char *file, int line)
{
    so_state *st = so_nccl_state(s);
    if (!st) return -1;
    return so_raise_at(st->dist.backend_error, file, line, "%s failed: %s (rank %d of %d)", expr,
                       ncclGetErrorString(r), s->rank, s->size);
}

/* ---- communicator ------------------------------------------------------------------------ */

static int init_comm(NPG *s, int device, const ncclUniqueId *idp);

/* Create the communicator on `device` (GIL held on entry and exit). */
int so_nccl_ensure_comm(NPG *s, int device)
{
    if (s->destroyed) {
        so_state *st = so_nccl_state(s);
        return so_fail(st ? st->dist.error : PyExc_RuntimeError,
                       "the process group has been destroyed");
    }
    if (s->broken[0]) return so_nccl_raise_broken(s, "NCCL");
    if (s->comm) {
        if (device != s->device)
            return so_fail(PyExc_ValueError, "tensor is on cuda:%d but this process group's "
                           "NCCL communicator is on cuda:%d", device, s->device);
        return 0;
    }
    ncclUniqueId id;
    memset(&id, 0, sizeof id);
    static const char key[] = "nccl_unique_id";
    PyObject *v = NULL;
    if (s->rank == 0) {
        SO_CHECK_NCCL(s, ncclGetUniqueId(&id), done);
        SO_CHECK_PTR(v = PyObject_CallMethod(s->pg->store, "set", "sy#", key, (const char *)&id,
                                             (Py_ssize_t)sizeof id), done);
    } else {
        SO_CHECK_PTR(v = PyObject_CallMethod(s->pg->store, "get", "s", key), done);
        if (!PyBytes_Check(v) || PyBytes_GET_SIZE(v) != (Py_ssize_t)sizeof id) {
            so_dist_raise(s->pg, 0, "the store holds a malformed NCCL unique id");
            goto done;
        }
        memcpy(&id, PyBytes_AS_STRING(v), sizeof id);
    }
    Py_CLEAR(v);
    return init_comm(s, device, &id);
done:
    Py_XDECREF(v);
    return -1;
}

/* Create the communicator from id (GIL held on entry and exit). */
static int init_comm(NPG *s, int device, const ncclUniqueId *idp)
{
    ncclUniqueId id = *idp;
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
        int64_t deadline = so_nccl_now_ms() + s->timeout_ms;
        while (r == ncclInProgress && comm) {
            if (so_nccl_now_ms() > deadline) {
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
        return so_dist_raise(s->pg, is_timeout, m);
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
        return so_dist_raise(s->pg, 0, m);
    }
    return 0;
}

/* ---- issuing ------------------------------------------------------------------------------ */

static ncclResult_t enqueue(NPG *s, const nop *o)
{
    ncclComm_t c = s->comm;
    cudaStream_t st = s->stream;
    switch (o->kind) {
    case SO_OP_ALLREDUCE: return ncclAllReduce(o->in, o->out, o->count, o->dt, o->op, c, st);
    case SO_OP_REDUCE: return ncclReduce(o->in, o->out, o->count, o->dt, o->op, o->root, c, st);
    case SO_OP_BROADCAST: return ncclBroadcast(o->in, o->out, o->count, o->dt, o->root, c, st);
    case SO_OP_ALLGATHER: return ncclAllGather(o->in, o->out, o->count, o->dt, c, st);
    case SO_OP_REDUCE_SCATTER:
        return ncclReduceScatter(o->in, o->out, o->count, o->dt, o->op, c, st);
    case SO_OP_BARRIER: return ncclAllReduce(s->scratch, s->scratch, 1, ncclInt32, ncclSum, c, st);
    case SO_OP_SEND: return ncclSend(o->in, o->count, o->dt, o->root, c, st);
    case SO_OP_RECV: return ncclRecv(o->out, o->count, o->dt, o->root, c, st);
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
    if (o->kind == SO_OP_GATHER) {
        if (s->rank == o->root) {
            for (int q = 0; q < s->size; q++) {
                if (q == s->rank) CP(out + (size_t)q * bytes, in, bytes);
                else NC(ncclRecv(out + (size_t)q * bytes, o->count, o->dt, q, c, st));
            }
        } else {
            NC(ncclSend(in, o->count, o->dt, o->root, c, st));
        }
    } else if (o->kind == SO_OP_SCATTER) {
        if (s->rank == o->root) {
            for (int q = 0; q < s->size; q++) {
                if (q == s->rank) CP(out, in + (size_t)q * bytes, bytes);
                else NC(ncclSend(in + (size_t)q * bytes, o->count, o->dt, q, c, st));
            }
        } else {
            NC(ncclRecv(out, o->count, o->dt, o->root, c, st));
        }
    } else { /* SO_OP_ALLTOALL */
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

/* Under mu, after so_nccl_abort_locked: report why into m. */
static void take_broken(NPG *s, char *m, int *is_timeout)
{
    snprintf(m, ERRLEN, "%s", s->broken);
    *is_timeout = s->broken_timeout;
}

/* Issue o on the communication stream, ordered with `compute` (GIL released, mu not held).
 * Returns 0 and (if want) a pending with a reference for the caller; or -1 with m set. */
static int issue_nogil(NPG *s, const nop *o, cudaStream_t compute, pending **want, char *m,
                       int *is_timeout)
{
    int rc = -1, prev = -1;
    pending *p = NULL;
    pthread_mutex_lock(&s->mu);
    if (s->broken[0] || !s->comm) {
        snprintf(m, ERRLEN, "%s: the process group is unusable after an earlier failure: %.900s",
                 KNAMES[o->kind], s->broken[0] ? s->broken : "destroyed");
        goto done;
    }
    cudaGetDevice(&prev);
    if (prev != s->device) cudaSetDevice(s->device);
    cudaError_t ce = cudaEventRecord(s->ev_pre, compute);
    if (!ce) ce = cudaStreamWaitEvent(s->stream, s->ev_pre, 0);
    if (ce) {
        (void)cudaGetLastError();
        so_nccl_abort_locked(s, 0, "%s: ordering with the compute stream failed: %s",
                             KNAMES[o->kind], cudaGetErrorString(ce));
        take_broken(s, m, is_timeout);
        goto done;
    }
    int64_t deadline = so_nccl_now_ms() + s->timeout_ms;
    ncclResult_t r = enqueue(s, o);
    while (r == ncclInProgress) { /* non-blocking communicator: wait until enqueued */
        if (so_nccl_now_ms() > deadline) {
            so_nccl_abort_locked(s, 1, "%s timed out after %lld ms while being enqueued; the "
                                 "communicator was aborted", KNAMES[o->kind],
                                 (long long)s->timeout_ms);
            take_broken(s, m, is_timeout);
            goto done;
        }
        nap_us(20);
        if (ncclCommGetAsyncError(s->comm, &r) != ncclSuccess) break;
    }
    if (r != ncclSuccess) {
        so_nccl_abort_locked(s, 0, "NCCL %s failed: %s (%s); the communicator was aborted",
                             KNAMES[o->kind], ncclGetErrorString(r), ncclGetLastError(s->comm));
        take_broken(s, m, is_timeout);
        goto done;
    }
    p = calloc(1, sizeof *p);
    if (!p || cudaEventCreateWithFlags(&p->ev, cudaEventDisableTiming) != cudaSuccess ||
        cudaEventRecord(p->ev, s->stream) != cudaSuccess ||
        cudaStreamWaitEvent(compute, p->ev, 0) != cudaSuccess) {
        /* Without the event the compute stream is not ordered after the op: give up on the
         * group rather than risk reading or freeing buffers under NCCL. */
        if (p && p->ev) cudaEventDestroy(p->ev);
        free(p);
        (void)cudaGetLastError();
        so_nccl_abort_locked(s, 0, "%s: cannot order the compute stream after the op (out of "
                             "memory or CUDA error)", KNAMES[o->kind]);
        take_broken(s, m, is_timeout);
        goto done;
    }
    p->kind = o->kind;
    p->peer = o->root;
    p->start_ms = so_nccl_now_ms();
    p->refs = want ? 2 : 1;
    p->next = s->inflight;
    s->inflight = p;
    if (want) *want = p;
    pthread_cond_broadcast(&s->cv);
    rc = 0;
done:
    if (prev >= 0 && prev != s->device) cudaSetDevice(prev);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* Host-wait for p (GIL released): 0 when done, -1 with m set on failure or timeout. */
int so_nccl_wait_host(NPG *s, pending *p, int64_t timeout_ms, char *m, int *is_timeout)
{
    int64_t deadline = so_nccl_now_ms() + timeout_ms;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        if (p->state == P_INFLIGHT) {
            cudaError_t q = cudaEventQuery(p->ev);
            if (q == cudaSuccess) p->state = P_DONE;
            else if (q != cudaErrorNotReady) {
                (void)cudaGetLastError();
                so_nccl_abort_locked(s, 0, "%s failed on the GPU: %s", KNAMES[p->kind],
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
        if (so_nccl_now_ms() > deadline) {
            snprintf(m, ERRLEN, "Work.wait: %s did not complete within %lld ms",
                     KNAMES[p->kind], (long long)timeout_ms);
            *is_timeout = 1;
            pthread_mutex_unlock(&s->mu);
            return -1;
        }
        so_nccl_timed_wait(s, 1);
    }
}


int so_nccl_issue(NPG *s, const nop *o, int async_op, pending **work)
{
    so_state *st = so_nccl_state(s);
    void *compute = st ? so_cuda_stream(st->core.cuda_streams, s->device) : NULL;
    if (!compute) return -1;
    char m[ERRLEN] = "";
    int is_timeout = 0, rc;
    pending *p = NULL;
    int host_wait = o->kind == SO_OP_BARRIER;
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
    if (rc) return so_dist_raise(s->pg, is_timeout, m);
    if (async_op) *work = p;
    return 0;
}

void so_nccl_shutdown(NPG *s)
{
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
    if (s->comm || s->inflight) so_nccl_abort_locked(s, 0, "the process group was destroyed");
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

#endif /* SHARDOPT_WITH_NCCL */
