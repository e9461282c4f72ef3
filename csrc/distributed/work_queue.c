/* work_queue.c — ordered execution of a process group's ops (see work_queue.h). */
#define _GNU_SOURCE /* pthread_condattr_setclock, pthread_sigmask, clock_gettime under -std=c11 */
#include "work_queue.h"

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>


static int is_p2p(const so_job *j) { return j->op.kind == SO_OP_SEND || j->op.kind == SO_OP_RECV; }

/* ---- refcounts (atomic: the GIL-holding caller and the worker both drop references) -- */

so_job *so_job_new(const so_op *op)
{
    so_job *j = calloc(1, sizeof *j);
    if (!j) return NULL;
    j->op = *op;
    j->op.splits = NULL;  /* the backend sets its own copy when it needs one */
    j->peer = -1;
    atomic_init((_Atomic int *)&j->refs, 1);
    return j;
}

void so_job_unref(so_job *j)
{
    if (!j || atomic_fetch_sub((_Atomic int *)&j->refs, 1) != 1) return;
    free(j->op.splits);
    free(j->peers);
    if (j->xfer && j->q) j->q->ops->free_xfer(j->xfer);
    if (j->q) so_wq_unref(j->q);
    free(j);
}

static void job_ref(so_job *j) { atomic_fetch_add((_Atomic int *)&j->refs, 1); }

so_work_queue *so_wq_new(const so_queue_ops *ops, void *ctx, int64_t timeout_ms)
{
    so_work_queue *q = calloc(1, sizeof *q);
    if (!q) return NULL;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);  /* timed waits immune to clock steps */
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->cv_work, &ca);
    pthread_cond_init(&q->cv_done, &ca);
    pthread_condattr_destroy(&ca);
    q->ops = ops;
    q->ctx = ctx;
    q->timeout_ms = timeout_ms;
    atomic_init((_Atomic int *)&q->refs, 1);
    return q;
}

static void wq_ref(so_work_queue *q) { atomic_fetch_add((_Atomic int *)&q->refs, 1); }

void so_wq_unref(so_work_queue *q)
{
    if (!q || atomic_fetch_sub((_Atomic int *)&q->refs, 1) != 1) return;
    so_wq_shutdown(q);  /* normally done already by the owner */
    pthread_mutex_destroy(&q->mu);
    pthread_cond_destroy(&q->cv_work);
    pthread_cond_destroy(&q->cv_done);
    free(q);
}

static void fail_destroyed(so_job *j)
{
    snprintf(j->err, SO_DIST_ERRLEN, "%s: the process group was destroyed before the op ran",
             SO_OP_NAMES[j->op.kind]);
    j->rc = SO_Q_ERR;
    j->state = SO_JOB_DONE;
    j->p2p_state = SO_P2P_FINISHED;
}

/* ---- worker ----------------------------------------------------------------------------- */

static void *worker_main(void *arg)
{
    so_work_queue *q = arg;
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
        q->ops->run(q->ctx, j);
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
static int start_worker(so_work_queue *q, char *err)
{
    if (q->has_thread) return 0;
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);  /* the thread inherits "everything blocked" */
    int e = pthread_create(&q->thread, NULL, worker_main, q);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (e) {
        snprintf(err, SO_DIST_ERRLEN, "cannot start the process group's worker thread: %s",
                 strerror(e));
        return SO_Q_ERR;
    }
    q->has_thread = 1;
    return 0;
}

/* Under q->mu: append j (taking a reference for the queue). */
static int enqueue(so_work_queue *q, so_job *j)
{
    if (start_worker(q, j->err)) {
        j->rc = SO_Q_ERR;
        j->state = SO_JOB_DONE;
        return SO_Q_ERR;
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

static void attach(so_work_queue *q, so_job *j)
{
    if (!j->q) {
        wq_ref(q);
        j->q = q;
    }
}

int so_wq_run(so_work_queue *q, so_job *j)
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
        q->ops->run(q->ctx, j);
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

int so_wq_submit(so_work_queue *q, so_job *j)
{
    attach(q, j);
    pthread_mutex_lock(&q->mu);
    int rc = 0;
    if (!q->ctx || q->stop) {
        fail_destroyed(j);
        rc = SO_Q_ERR;
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
    so_work_queue *q = j->q;
    if (!q) return;
    pthread_mutex_lock(&q->mu);
    while (j->state != SO_JOB_DONE) pthread_cond_wait(&q->cv_done, &q->mu);
    pthread_mutex_unlock(&q->mu);
}

int so_job_completed(so_job *j)
{
    so_work_queue *q = j->q;
    pthread_mutex_lock(&q->mu);
    int done = j->state == SO_JOB_DONE &&
               (!is_p2p(j) || j->rc || j->p2p_state == SO_P2P_FINISHED);
    pthread_mutex_unlock(&q->mu);
    return done;
}

int so_job_wait(so_job *j, int64_t timeout_ms, char *err)
{
    so_work_queue *q = j->q;
    struct timespec dl = deadline_in(timeout_ms < 0 ? 0 : timeout_ms);
    pthread_mutex_lock(&q->mu);
    for (;;) {
        if (j->state == SO_JOB_DONE &&
            (!is_p2p(j) || j->rc || j->p2p_state == SO_P2P_FINISHED)) {
            int rc = j->rc;
            if (rc && err != j->err) snprintf(err, SO_DIST_ERRLEN, "%s", j->err);
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
            char e[SO_DIST_ERRLEN] = "";
            int peer = -1;
            int rc = q->ops->finish(q->ctx, j, to, &peer, e);
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
            snprintf(err, SO_DIST_ERRLEN, "Work.wait: %s did not complete within %lld ms",
                     SO_OP_NAMES[j->op.kind], (long long)timeout_ms);
            pthread_mutex_unlock(&q->mu);
            return SO_Q_TIMEOUT;
        }
    }
}

void so_wq_shutdown(so_work_queue *q)
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
    void *ctx = q->ctx;
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
    q->ops->free_ctx(ctx);
}

