/* pg_queue.h — the ordered work queue of a Gloo process group (pure C, no Python).
 *
 * Every op issued on a group becomes a job.  Jobs run one at a time in issue order: a
 * synchronous op runs in the caller's thread when nothing is queued or running (no thread
 * hand-off on the common path), otherwise it is queued behind the earlier async ops and
 * the caller waits; an async op is queued and run by the group's worker thread (started on
 * the first async op, with every signal blocked so Python keeps receiving them on the main
 * thread).  Gloo calls are blocking and bounded by the group timeout, so the worker never
 * waits forever.
 *
 * Point-to-point jobs only *post* the transfer (so a queued isend cannot block the recv
 * queued after it); so_job_p2p_wait finishes them later, from the thread that waits.
 *
 * Lifetimes: a job is refcounted (the queue while it is pending, the Work/caller that
 * issued it); the queue itself is refcounted by its owner (the process group) and by every
 * job handle that may still wait on it.  The caller must keep the buffers a job points to
 * alive until the job is done (the Python layer holds the tensors).
 */
#ifndef SO_DIST_PG_QUEUE_H
#define SO_DIST_PG_QUEUE_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "gloo.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    SO_JOB_ALLREDUCE, SO_JOB_REDUCE, SO_JOB_BROADCAST, SO_JOB_ALLGATHER,
    SO_JOB_REDUCE_SCATTER, SO_JOB_GATHER, SO_JOB_SCATTER, SO_JOB_ALLTOALL, SO_JOB_BARRIER,
    SO_JOB_SEND, SO_JOB_RECV,
} so_job_kind;

enum { SO_JOB_QUEUED = 0, SO_JOB_RUNNING = 1, SO_JOB_DONE = 2 };
/* p2p progress after the post: not waited yet / a thread is waiting / finished */
enum { SO_P2P_POSTED = 0, SO_P2P_WAITING = 1, SO_P2P_FINISHED = 2 };

typedef struct so_pg_queue so_pg_queue;

typedef struct so_job {
    struct so_job *next;
    so_job_kind kind;
    /* arguments (host buffers; counts in elements of dtype unless named bytes) */
    void *in, *out;
    size_t count, nbytes;
    int dtype, op, root;
    int avg;               /* divide the result by the group size (ReduceOp.AVG) */
    int64_t *in_bytes, *out_bytes; /* all_to_all byte splits (malloc'd, owned) */
    int *peers;            /* recv: acceptable source ranks (malloc'd, owned) */
    int npeers;
    uint32_t tag;
    so_gloo_p2p *p2p;      /* posted transfer (send/recv) */
    /* outcome, guarded by the queue mutex */
    int state, p2p_state;
    int rc;                /* SO_GLOO_OK / SO_GLOO_ERR / SO_GLOO_TIMEOUT */
    int peer;              /* recv: the rank that sent */
    char err[SO_GLOO_ERRLEN];
    int refs;
    so_pg_queue *q;        /* counted reference */
} so_job;

struct so_pg_queue {
    pthread_mutex_t mu;
    pthread_cond_t cv_work; /* worker: a job was queued, or the runner slot freed up */
    pthread_cond_t cv_done; /* waiters: some job finished */
    so_job *head, *tail;
    int busy;               /* a job is running (worker or inline) */
    int stop;
    int has_thread;
    pthread_t thread;
    int p2p_waiters;        /* threads inside a p2p wait (shutdown waits for them) */
    so_gloo_ctx *ctx;       /* NULL after shutdown */
    int rank, size;
    int64_t timeout_ms;
    int refs;
};

/* A queue owning ctx (one reference, for the caller).  NULL on out-of-memory. */
so_pg_queue *so_pgq_new(so_gloo_ctx *ctx, int rank, int size, int64_t timeout_ms);
void so_pgq_unref(so_pg_queue *q);
/* Cancel queued jobs (they fail with "destroyed"), wait for the running one and for p2p
 * waits, stop the worker, free the Gloo context.  Idempotent.  Call without the GIL. */
void so_pgq_shutdown(so_pg_queue *q);

/* A zeroed job of `kind` with one reference for the caller, or NULL (out of memory). */
so_job *so_job_new(so_job_kind kind);
void so_job_unref(so_job *j);

/* Run synchronously (in order after earlier jobs); returns the job's rc.  No GIL. */
int so_pgq_run(so_pg_queue *q, so_job *j);
/* Queue for the worker; returns 0, or SO_GLOO_ERR with j->err set (thread start failed,
 * queue shut down).  Takes its own reference to j. */
int so_pgq_submit(so_pg_queue *q, so_job *j);
/* Wait until j is done (and, for p2p, finished).  timeout_ms < 0: no limit besides the
 * op's own.  Returns j->rc, or SO_GLOO_TIMEOUT with `err` set if the wait gave up first
 * (the job itself is left running).  No GIL. */
int so_job_wait(so_job *j, int64_t timeout_ms, char *err);
/* Wait until j has run (for p2p: been posted), ignoring the transfer itself.  No GIL. */
void so_job_wait_ran(so_job *j);
/* 1 when j is done and, for p2p, finished. */
int so_job_completed(so_job *j);

#ifdef __cplusplus
}
#endif

#endif /* SO_DIST_PG_QUEUE_H */
