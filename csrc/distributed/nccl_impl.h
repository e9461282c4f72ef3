/* nccl_impl.h — what nccl.c (the NCCL backend's table) and nccl_engine.c (communicator,
 * streams, watchdog) share, and the NCCL check macro.  Private to csrc/distributed; only
 * meaningful under SHARDOPT_WITH_NCCL. */
#ifndef SO_DIST_NCCL_IMPL_H
#define SO_DIST_NCCL_IMPL_H

#include "backend.h"

#ifdef SHARDOPT_WITH_NCCL

#include <cuda_runtime.h>
#include <nccl.h>
#include <pthread.h>

#define ERRLEN SO_DIST_ERRLEN

enum { P_INFLIGHT = 0, P_DONE = 1, P_FAILED = 2 };

/* One enqueued op: its completion event on the communication stream. */
typedef struct pending {
    struct pending *next;
    cudaEvent_t ev;
    int64_t start_ms;
    int kind, state, refs; /* state and refs under the group mutex */
    int peer;              /* send/recv: the other rank */
} pending;

/* The backend's state (so_pg.impl), owned by its so_pg. */
typedef struct {
    so_pg *pg;              /* the front-end object owning this (borrowed) */
    int rank, size, device; /* device -1 until the communicator exists */
    int64_t timeout_ms;
    ncclComm_t comm;        /* NULL before the first op and after an abort */
    cudaStream_t stream;    /* communication stream */
    cudaEvent_t ev_pre;
    void *scratch;          /* 4 device bytes for barrier() */
    pthread_mutex_t mu;
    pthread_cond_t cv;      /* the watchdog's tick; waiters of a pending op */
    int watchdog_on, stop, destroyed;
    pthread_t watchdog;
    pending *inflight;
    int broken_timeout;
    char broken[ERRLEN];    /* non-empty once the communicator was aborted */
} NPG;

/* One op's arguments for NCCL (device pointers, element counts). */
typedef struct {
    so_op_kind kind;
    void *in, *out;
    size_t count, esize;
    ncclDataType_t dt;
    ncclRedOp_t op;
    int root;                              /* root, or the peer of send/recv */
    const int64_t *in_counts, *out_counts; /* all_to_all, per peer */
} nop;

static inline so_state *so_nccl_state(NPG *s) { return so_state_from_type(Py_TYPE(s->pg)); }

/* An NCCL call made with the GIL held (in the spirit of NCCL's checks.h NCCLCHECK): unless
 * it returns ncclSuccess, raise DistBackendError naming the call and NCCL's reason, with
 * file:line, and jump to `label`. */
#define SO_CHECK_NCCL(s, call, label)                                                      \
    do {                                                                                   \
        ncclResult_t so_nccl_res_ = (call);                                                \
        if (so_nccl_res_ != ncclSuccess) {                                                 \
            so_nccl_raise_at((s), so_nccl_res_, #call, __FILE__, __LINE__);                \
            goto label;                                                                    \
        }                                                                                  \
    } while (0)

/* nccl_engine.c */
int64_t so_nccl_now_ms(void);
/* Raise DistBackendError "<expr> failed: <reason> (rank r of n) (file:line)"; -1. */
int so_nccl_raise_at(NPG *s, ncclResult_t r, const char *expr, const char *file, int line);
/* Under s->mu: wait on s->cv for at most ms. */
void so_nccl_timed_wait(NPG *s, int64_t ms);
/* Under s->mu: drop a reference to p (the event is destroyed with the last one). */
void so_nccl_pending_unref_locked(pending *p);
/* Under s->mu: abort the communicator and mark the group broken with the formatted reason. */
void so_nccl_abort_locked(NPG *s, int is_timeout, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Raise the error that broke the group (naming op, which may be NULL); returns -1. */
int so_nccl_raise_broken(NPG *s, const char *op);
/* Create the communicator on `device` on first use (0 / -1 with an exception set). */
int so_nccl_ensure_comm(NPG *s, int device);
/* Enqueue o, ordered against the tensors' compute stream.  Sync ops return once enqueued
 * (barrier: once done on the host); async ones set *work to a pending with a reference for
 * the caller.  0 / -1 with an exception set.  GIL held (released inside). */
int so_nccl_issue(NPG *s, const nop *o, int async_op, pending **work);
/* Host-wait for p (GIL released, mu not held): 0 when done, -1 with m (ERRLEN) set. */
int so_nccl_wait_host(NPG *s, pending *p, int64_t timeout_ms, char *m, int *is_timeout);
/* Stop the watchdog, let in-flight ops finish (bounded by the timeout), abort, free the
 * streams.  GIL held (released inside). */
void so_nccl_shutdown(NPG *s);

#endif /* SHARDOPT_WITH_NCCL */
#endif /* SO_DIST_NCCL_IMPL_H */
