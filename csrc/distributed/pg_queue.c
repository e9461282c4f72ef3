/* pg_queue.c — ordered execution of a Gloo process group's ops (see pg_queue.h). */
#define _GNU_SOURCE /* pthread_condattr_setclock, pthread_sigmask, clock_gettime under -std=c11 */
#include "pg_queue.h"

#ifdef SHARDOPT_WITH_GLOO

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../core/common.h"

static const char *const JOB_NAMES[] = {
    "all_reduce", "reduce", "broadcast", "all_gather", "reduce_scatter", "gather", "scatter",
    "all_to_all", "barrier", "send", "recv",
};

static int is_p2p(const so_job *j) { return j->kind == SO_JOB_SEND || j->kind == SO_JOB_RECV; }

/* ---- refcounts (atomic: the GIL-holding caller and the worker both drop references) -- */

so_job *so_job_new(so_job_kind kind)
{
    so_job *j = calloc(1, sizeof *j);
    if (!j) return NULL;
    j->kind = kind;
    j->peer = -1;
    atomic_init((_Atomic int *)&j->refs, 1);
    return j;
}

void so_job_unref(so_job *j)
{
    if (!j || atomic_fetch_sub((_Atomic int *)&j->refs, 1) != 1) return;
    free(j->in_bytes);
    free(j->out_bytes);
    free(j->peers);
    so_gloo_p2p_free(j->p2p);
    if (j->q) so_pgq_unref(j->q);
    free(j);
}

static void job_ref(so_job *j) { atomic_fetch_add((_Atomic int *)&j->refs, 1); }

so_pg_queue *so_pgq_new(so_gloo_ctx *ctx, int rank, int size, int64_t timeout_ms)
{
    so_pg_queue *q = calloc(1, sizeof *q);
    if (!q) return NULL;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);  /* timed waits immune to clock steps */
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->cv_work, &ca);
    pthread_cond_init(&q->cv_done, &ca);
    pthread_condattr_destroy(&ca);
    q->ctx = ctx;
    q->rank = rank;
    q->size = size;
    q->timeout_ms = timeout_ms;
    atomic_init((_Atomic int *)&q->refs, 1);
    return q;
}

static void pgq_ref(so_pg_queue *q) { atomic_fetch_add((_Atomic int *)&q->refs, 1); }

void so_pgq_unref(so_pg_queue *q)
{
    if (!q || atomic_fetch_sub((_Atomic int *)&q->refs, 1) != 1) return;
    so_pgq_shutdown(q);  /* normally done already by the owner */
    pthread_mutex_destroy(&q->mu);
    pthread_cond_destroy(&q->cv_work);
    pthread_cond_destroy(&q->cv_done);
    free(q);
}

/* ---- running one job ------------------------------------------------------------------ */

/* ReduceOp.AVG = SUM / size, done here on the host (Gloo has no average). */
static void divide_by(void *p, size_t cnt, int dtype, int n)
{
    for (size_t i = 0; i < cnt; i++) {
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

/* Execute j on q's context (the caller holds the runner slot, not the mutex).  Zero-size
 * work never reaches Gloo, and a 1-rank group only copies locally. */
static void run_job(so_pg_queue *q, so_job *j)
{
    so_gloo_ctx *c = q->ctx;
    int64_t to = q->timeout_ms;
    int multi = q->size > 1, rc = SO_GLOO_OK;
    char *err = j->err;
    switch (j->kind) {
    case SO_JOB_ALLREDUCE:
        if (j->count && multi)
            rc = so_gloo_allreduce(c, j->out, j->count, j->dtype, j->op, to, err);
        if (!rc && j->avg && multi) divide_by(j->out, j->count, j->dtype, q->size);
        break;
    case SO_JOB_REDUCE:
        if (j->count && multi)
            rc = so_gloo_reduce(c, j->out, j->count, j->dtype, j->op, j->root, to, err);
        if (!rc && j->avg && multi && q->rank == j->root)
            divide_by(j->out, j->count, j->dtype, q->size);
        break;
    case SO_JOB_BROADCAST:
        if (j->nbytes && multi) rc = so_gloo_broadcast(c, j->out, j->nbytes, j->root, to, err);
        break;
    case SO_JOB_ALLGATHER:
        if (j->nbytes && multi)
            rc = so_gloo_allgather(c, j->in, j->out, j->nbytes, to, err);
        else if (j->nbytes)
            memmove(j->out, j->in, j->nbytes);
        break;
    case SO_JOB_REDUCE_SCATTER:
        if (j->count && multi) {
            rc = so_gloo_reduce_scatter(c, j->in, j->out, j->count, j->dtype, j->op, to, err);
        } else if (j->count)
            memmove(j->out, j->in, j->nbytes);
        if (!rc && j->avg && multi) divide_by(j->out, j->count, j->dtype, q->size);
        break;
    case SO_JOB_GATHER:
        if (j->nbytes && multi)
            rc = so_gloo_gather(c, j->in, j->out, j->nbytes, j->root, to, err);
        else if (j->nbytes)
            memmove(j->out, j->in, j->nbytes);
        break;
    case SO_JOB_SCATTER:
        if (j->nbytes && multi)
            rc = so_gloo_scatter(c, j->in, j->out, j->nbytes, j->root, to, err);
        else if (j->nbytes)
            memmove(j->out, j->in, j->nbytes);
        break;
    case SO_JOB_ALLTOALL:
        if (!multi) {
            if (j->nbytes) memmove(j->out, j->in, j->nbytes);
        } else if (j->in || j->out) {
            rc = so_gloo_alltoallv(c, j->in, j->in_bytes, j->out, j->out_bytes, to, err);
        }
        break;
    case SO_JOB_BARRIER:
        if (multi) rc = so_gloo_barrier(c, to, err);
        break;
    case SO_JOB_SEND:
        rc = so_gloo_post_send(c, j->in, j->nbytes, j->root, j->tag, &j->p2p, err);
        break;
    case SO_JOB_RECV:
        rc = so_gloo_post_recv(c, j->out, j->nbytes, j->peers, j->npeers, j->tag, &j->p2p, err);
        break;
    }
    j->rc = rc;
}

static void fail_destroyed(so_job *j)
{
    snprintf(j->err, SO_GLOO_ERRLEN, "%s: the process group was destroyed before the op ran",
             JOB_NAMES[j->kind]);
    j->rc = SO_GLOO_ERR;
    j->state = SO_JOB_DONE;
    j->p2p_state = SO_P2P_FINISHED;
}

/* ---- worker ----------------------------------------------------------------------------- */

static void *worker_main(void *arg)
{
    so_pg_queue *q = arg;
    pthread_mutex_lock(&q->mu);
    for (;;) {
        while (!q->stop && (!q->head || q->busy)) pthread_cond_wait(&q->cv_work, &q->mu);
        if (!q->head || q->busy) {
            if (q->stop) break;
            continue;
        }
        so_job *j = q->head;
        q->head = j->next;
        if (!q->head) q->tail = NULL;
        j->next = NULL;
        q->busy = 1;
        j->state = SO_JOB_RUNNING;
        pthread_mutex_unlock(&q->mu);
        run_job(q, j);
        pthread_mutex_lock(&q->mu);
        j->state = SO_JOB_DONE;
        q->busy = 0;
        pthread_cond_broadcast(&q->cv_done);
        pthread_mutex_unlock(&q->mu);
        so_job_unref(j);  /* the queue's reference; never the queue's last one (see .h) */
        pthread_mutex_lock(&q->mu);
    }
    pthread_mutex_unlock(&q->mu);
    return NULL;
}

/* Under q->mu. */
static int start_worker(so_pg_queue *q, char *err)
{
    if (q->has_thread) return 0;
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);  /* the thread inherits "everything blocked" */
    int e = pthread_create(&q->thread, NULL, worker_main, q);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (e) {
        snprintf(err, SO_GLOO_ERRLEN, "cannot start the process group's worker thread: %s",
                 strerror(e));
        return SO_GLOO_ERR;
    }
    q->has_thread = 1;
    return 0;
}

/* Under q->mu: append j (taking a reference for the queue). */
static int enqueue(so_pg_queue *q, so_job *j)
{
    if (start_worker(q, j->err)) {
        j->rc = SO_GLOO_ERR;
        j->state = SO_JOB_DONE;
        return SO_GLOO_ERR;
    }
    job_ref(j);
    j->state = SO_JOB_QUEUED;
    if (q->tail)
        q->tail->next = j;
    else
        q->head = j;
    q->tail = j;
    pthread_cond_signal(&q->cv_work);
    return 0;
}

static void attach(so_pg_queue *q, so_job *j)
{
    if (!j->q) {
        pgq_ref(q);
        j->q = q;
    }
}

int so_pgq_run(so_pg_queue *q, so_job *j)
{
    attach(q, j);
    pthread_mutex_lock(&q->mu);
    if (!q->ctx || q->stop) {
        fail_destroyed(j);
    } else if (!q->head && !q->busy) {
        /* Nothing ahead of us: run here, without a thread hand-off. */
        q->busy = 1;
        j->state = SO_JOB_RUNNING;
        pthread_mutex_unlock(&q->mu);
        run_job(q, j);
        pthread_mutex_lock(&q->mu);
        j->state = SO_JOB_DONE;
        q->busy = 0;
        pthread_cond_broadcast(&q->cv_done);
        pthread_cond_signal(&q->cv_work);  /* async ops queued meanwhile */
    } else if (enqueue(q, j) == 0) {
        while (j->state != SO_JOB_DONE) pthread_cond_wait(&q->cv_done, &q->mu);
    }
    pthread_mutex_unlock(&q->mu);
    return j->rc;
}

int so_pgq_submit(so_pg_queue *q, so_job *j)
{
    attach(q, j);
    pthread_mutex_lock(&q->mu);
    int rc = 0;
    if (!q->ctx || q->stop) {
        fail_destroyed(j);
        rc = SO_GLOO_ERR;
    } else {
        rc = enqueue(q, j);
    }
    pthread_mutex_unlock(&q->mu);
    return rc;
}

/* Absolute CLOCK_MONOTONIC deadline timeout_ms from now. */
static struct timespec deadline_in(int64_t timeout_ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += (time_t)(timeout_ms / 1000);
    ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

static int64_t ms_left(const struct timespec *dl)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    int64_t ms = (int64_t)(dl->tv_sec - now.tv_sec) * 1000 + (dl->tv_nsec - now.tv_nsec) / 1000000;
    return ms > 0 ? ms : 0;
}

void so_job_wait_ran(so_job *j)
{
    so_pg_queue *q = j->q;
    if (!q) return;
    pthread_mutex_lock(&q->mu);
    while (j->state != SO_JOB_DONE) pthread_cond_wait(&q->cv_done, &q->mu);
    pthread_mutex_unlock(&q->mu);
}

int so_job_completed(so_job *j)
{
    so_pg_queue *q = j->q;
    pthread_mutex_lock(&q->mu);
    int done = j->state == SO_JOB_DONE &&
               (!is_p2p(j) || j->rc || j->p2p_state == SO_P2P_FINISHED);
    pthread_mutex_unlock(&q->mu);
    return done;
}

int so_job_wait(so_job *j, int64_t timeout_ms, char *err)
{
    so_pg_queue *q = j->q;
    struct timespec dl = deadline_in(timeout_ms < 0 ? 0 : timeout_ms);
    pthread_mutex_lock(&q->mu);
    for (;;) {
        if (j->state == SO_JOB_DONE &&
            (!is_p2p(j) || j->rc || j->p2p_state == SO_P2P_FINISHED)) {
            int rc = j->rc;
            if (rc && err != j->err) snprintf(err, SO_GLOO_ERRLEN, "%s", j->err);
            pthread_mutex_unlock(&q->mu);
            return rc;
        }
        if (j->state == SO_JOB_DONE && j->p2p_state == SO_P2P_POSTED) {
            /* Finish the transfer in this thread: Gloo's wait, bounded by the group timeout
             * (or the caller's, if shorter: Gloo then marks the group broken, as torch). */
            if (!q->ctx) {
                fail_destroyed(j);
                continue;
            }
            j->p2p_state = SO_P2P_WAITING;
            q->p2p_waiters++;
            int64_t to = q->timeout_ms;
            if (timeout_ms >= 0 && ms_left(&dl) < to) to = ms_left(&dl);
            pthread_mutex_unlock(&q->mu);
            char e[SO_GLOO_ERRLEN] = "";
            int peer = -1;
            int rc = so_gloo_p2p_wait(q->ctx, j->p2p, to, &peer, e);
            pthread_mutex_lock(&q->mu);
            j->rc = rc;
            if (rc) memcpy(j->err, e, sizeof e);
            j->peer = peer;
            j->p2p_state = SO_P2P_FINISHED;
            q->p2p_waiters--;
            pthread_cond_broadcast(&q->cv_done);
            continue;
        }
        if (timeout_ms < 0) {
            pthread_cond_wait(&q->cv_done, &q->mu);
        } else if (pthread_cond_timedwait(&q->cv_done, &q->mu, &dl) == ETIMEDOUT &&
                   !(j->state == SO_JOB_DONE && (!is_p2p(j) || j->rc ||
                                                 j->p2p_state == SO_P2P_FINISHED))) {
            snprintf(err, SO_GLOO_ERRLEN, "Work.wait: %s did not complete within %lld ms",
                     JOB_NAMES[j->kind], (long long)timeout_ms);
            pthread_mutex_unlock(&q->mu);
            return SO_GLOO_TIMEOUT;
        }
    }
}

void so_pgq_shutdown(so_pg_queue *q)
{
    pthread_mutex_lock(&q->mu);
    if (!q->ctx) {
        pthread_mutex_unlock(&q->mu);
        return;
    }
    q->stop = 1;
    so_job *cancelled = q->head;
    for (so_job *j = q->head; j; j = j->next) fail_destroyed(j);
    q->head = q->tail = NULL;
    pthread_cond_broadcast(&q->cv_done);
    pthread_cond_broadcast(&q->cv_work);
    while (q->busy || q->p2p_waiters) pthread_cond_wait(&q->cv_done, &q->mu);
    so_gloo_ctx *ctx = q->ctx;
    q->ctx = NULL;
    int joined = q->has_thread;
    q->has_thread = 0;
    pthread_mutex_unlock(&q->mu);
    if (joined) pthread_join(q->thread, NULL);
    while (cancelled) {
        so_job *next = cancelled->next;
        cancelled->next = NULL;
        so_job_unref(cancelled);
        cancelled = next;
    }
    so_gloo_free(ctx);
}

#endif /* SHARDOPT_WITH_GLOO */
