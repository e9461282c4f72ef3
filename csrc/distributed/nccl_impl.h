/* nccl_impl.h — what nccl.c (the NCCL process group) and nccl_work.c (its Work) share.
 * Private to csrc/distributed; only meaningful under SHARDOPT_WITH_NCCL. */
#ifndef SO_DIST_NCCL_IMPL_H
#define SO_DIST_NCCL_IMPL_H

#include "dist.h"

#ifdef SHARDOPT_WITH_NCCL

#include <cuda_runtime.h>
#include <nccl.h>
#include <pthread.h>

#define ERRLEN 1024

enum { P_INFLIGHT = 0, P_DONE = 1, P_FAILED = 2 };

/* One enqueued op: its completion event on the communication stream. */
typedef struct pending {
    struct pending *next;
    cudaEvent_t ev;
    int64_t start_ms;
    int kind, state, refs; /* state and refs under the group mutex */
} pending;

typedef struct {
    PyObject_HEAD
    PyObject *store;
    int rank, size, device; /* device -1 until the communicator exists */
    int64_t timeout_ms;
    ncclComm_t comm;        /* NULL before the first op and after an abort */
    cudaStream_t stream;    /* communication stream */
    cudaEvent_t ev_pre;
    void *scratch;          /* 4 device bytes for barrier() */
    int mu_ready;
    pthread_mutex_t mu;
    pthread_cond_t cv;      /* the watchdog's tick; waiters of a pending op */
    int watchdog_on, stop, destroyed;
    pthread_t watchdog;
    pending *inflight;
    int broken_timeout;
    char broken[ERRLEN];    /* non-empty once the communicator was aborted */
} NPG;

typedef struct {
    PyObject_HEAD
    NPG *pg; /* strong reference */
    pending *p;
    PyObject *keep;
} NWork;

static inline so_state *so_nccl_state(PyObject *o) { return so_state_from_type(Py_TYPE(o)); }

/* Under s->mu: drop a reference to p (the event is destroyed with the last one). */
void so_nccl_pending_unref_locked(pending *p);
/* Host-wait for p (GIL released, mu not held): 0 when done, -1 with m (ERRLEN) set. */
int so_nccl_wait_host(NPG *s, pending *p, int64_t timeout_ms, char *m, int *is_timeout);
/* Raise DistTimeoutError / DistBackendError with msg and the rank; returns NULL. */
PyObject *so_nccl_raise(NPG *s, int is_timeout, const char *msg);
/* A new NCCLWork for p (NULL: already complete); steals p's reference and keep. */
PyObject *so_nccl_work_new(NPG *s, pending *p, PyObject *keep);
int so_nccl_register_work(PyObject *m, so_state *st);

#include "nccl_impl.h"

enum { K_ALLREDUCE, K_REDUCE, K_BROADCAST, K_ALLGATHER, K_REDUCE_SCATTER, K_GATHER, K_SCATTER,
       K_ALLTOALL, K_BARRIER, K_SEND, K_RECV };

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

/* nccl_engine.c */
int64_t so_nccl_now_ms(void);
/* Under s->mu: wait on s->cv for at most ms. */
void so_nccl_timed_wait(NPG *s, int64_t ms);
/* Under s->mu: abort the communicator and mark the group broken with the formatted reason. */
void so_nccl_abort_locked(NPG *s, int is_timeout, const char *fmt, ...);
/* Raise the error that broke the group (naming op, which may be NULL); returns NULL. */
PyObject *so_nccl_raise_broken(NPG *s, const char *op);
/* Create the communicator on `device` on first use (0 / -1 with an exception set). */
int so_nccl_ensure_comm(NPG *s, int device);
/* Enqueue o (ordered against the tensors' compute stream); a Work if async_op else None;
 * steals keep. */
PyObject *so_nccl_issue(NPG *s, const nop *o, int async_op, PyObject *keep);
/* A completed no-op (zero elements, one rank): a finished Work if async_op else None;
 * steals keep. */
PyObject *so_nccl_issue_nothing(NPG *s, int async_op, PyObject *keep);

#endif /* SHARDOPT_WITH_NCCL */
#endif /* SO_DIST_NCCL_IMPL_H */
