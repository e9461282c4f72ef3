/* nccl_impl.h — what nccl.c (the NCCL process group) and nccl_work.c (its Work) share.
 * Private to csrc/dist; only meaningful under SHARDOPT_WITH_NCCL. */
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

#endif /* SHARDOPT_WITH_NCCL */
#endif /* SO_DIST_NCCL_IMPL_H */
