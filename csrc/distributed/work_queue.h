/* work_queue.h — the ordered work queue of a process group (pure C, no Python), for
 * backends whose calls block the calling thread (Gloo).
 *
 * Every op issued on a group becomes a job.  Jobs run one at a time in issue order: a
 * synchronous op runs in the caller's thread when nothing is queued or running (no thread
 * hand-off on the common path), otherwise it is queued behind the earlier async ops and
 * the caller waits; an async op is queued and run by the group's worker thread (started on
 * the first async op, with every signal blocked so Python keeps receiving them on the main
 * thread).  The backend's calls are blocking and bounded by the group timeout, so the worker
 * never waits forever.  The queue calls the backend through so_queue_ops.
 *
 * Point-to-point jobs only *post* the transfer (so a queued isend cannot block the recv
 * queued after it); so_job_wait finishes them later, from the thread that waits.
 *
 * Lifetimes: a job is refcounted (the queue while it is pending, the Work/caller that
 * issued it); the queue itself is refcounted by its owner (the backend) and by every job
 * handle that may still wait on it.  The caller must keep the buffers a job points to
 * alive until the job is done (the front end holds the tensors).
 */
#ifndef SO_DIST_WORK_QUEUE_H
#define SO_DIST_WORK_QUEUE_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "backend.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Job outcomes (the values of gloo.h's SO_GLOO_OK / _ERR / _TIMEOUT). */
enum { SO_Q_OK = 0, SO_Q_ERR = -1, SO_Q_TIMEOUT = -2 };
enum { SO_JOB_QUEUED = 0, SO_JOB_RUNNING = 1, SO_JOB_DONE = 2 };
/* p2p progress after the post: not waited yet / a thread is waiting / finished */
enum { SO_P2P_POSTED = 0, SO_P2P_WAITING = 1, SO_P2P_FINISHED = 2 };

typedef struct so_work_queue so_work_queue;

typedef struct so_job {
    struct so_job *next;
    so_op op;              /* op.splits is owned (malloc'd) when set */
    int *peers;            /* recv: acceptable source ranks (malloc'd, owned) */
    int npeers;
    void *xfer;            /* the backend's posted transfer (send/recv) */
    /* outcome, guarded by the queue mutex */
    int state, p2p_state;
    int rc;                /* SO_Q_* */
    int peer;              /* recv: the rank that sent */
    char err[SO_DIST_ERRLEN];
    int refs;
    so_work_queue *q;      /* counted reference */
} so_job;

/* What the queue needs from its backend.  All run without the GIL. */
typedef struct so_queue_ops {
    /* Run j (send/recv: post it, setting j->xfer); set j->rc and j->err. */
    void (*run)(void *ctx, so_job *j);
    /* Finish j's posted transfer within timeout_ms: SO_Q_*, *peer, err. */
    int (*finish)(void *ctx, so_job *j, int64_t timeout_ms, int *peer, char *err);
    void (*free_xfer)(void *xfer);
    void (*free_ctx)(void *ctx);
} so_queue_ops;

struct so_work_queue {
    pthread_mutex_t mu;
    pthread_cond_t cv_work; /* worker: a job was queued, or the runner slot freed up */
    pthread_cond_t cv_done; /* waiters: some job finished */
    so_job *head, *tail;
    int busy;               /* a job is running (worker or inline) */
    int stop;
    int has_thread;
    pthread_t thread;
    int p2p_waiters;        /* threads inside a p2p wait (shutdown waits for them) */
    const so_queue_ops *ops;
    void *ctx;              /* the backend's context; NULL after shutdown */
    int64_t timeout_ms;
    int refs;
};

/* A queue owning ctx (one reference, for the caller).  NULL on out-of-memory. */
so_work_queue *so_wq_new(const so_queue_ops *ops, void *ctx, int64_t timeout_ms);
void so_wq_unref(so_work_queue *q);
/* Cancel queued jobs (they fail with "destroyed"), wait for the running one and for p2p
 * waits, stop the worker, free the backend context.  Idempotent.  Call without the GIL. */
void so_wq_shutdown(so_work_queue *q);

/* A job for a copy of op (splits copied too) with one reference for the caller, or NULL
 * (out of memory). */
so_job *so_job_new(const so_op *op);
void so_job_unref(so_job *j);

/* Run synchronously (in order after earlier jobs); returns the job's rc.  No GIL. */
int so_wq_run(so_work_queue *q, so_job *j);
/* Queue for the worker; returns 0, or SO_Q_ERR with j->err set (thread start failed,
 * queue shut down).  Takes its own reference to j. */
int so_wq_submit(so_work_queue *q, so_job *j);
/* Wait until j is done (and, for p2p, finished).  timeout_ms < 0: no limit besides the
 * op's own.  Returns j->rc, or SO_Q_TIMEOUT with `err` set if the wait gave up first
 * (the job itself is left running).  No GIL. */
int so_job_wait(so_job *j, int64_t timeout_ms, char *err);
/* Wait until j has run (for p2p: been posted), ignoring the transfer itself.  No GIL. */
void so_job_wait_ran(so_job *j);
/* 1 when j is done and, for p2p, finished. */
int so_job_completed(so_job *j);

#ifdef __cplusplus
}
#endif

#endif /* SO_DIST_WORK_QUEUE_H */
