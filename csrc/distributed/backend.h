/* backend.h — the contract between the ProcessGroup front end and its backends.
 *
 * process_group.c (the front end) parses the 11 collectives once: it checks every argument
 * with the GIL held (so bad input raises at the call, naming the argument), fills an so_op,
 * and hands it to the group's backend through an so_backend table.  work.c wraps the
 * backend's handle of an async op in one Python type, shardopt._C.Work.  Backends:
 *   gloo_backend.c  CPU tensors, over the Gloo library (gloo.h / gloo.cc), ordered by the
 *                   work queue (work_queue.h);
 *   nccl.c          CUDA tensors, over NCCL and CUDA streams (nccl_engine.c).
 * Adding a collective: a kind below, its parsing in process_group.c, its case in each
 * backend's run function.  Adding a backend: one so_backend and one type registration.
 */
#ifndef SO_DIST_BACKEND_H
#define SO_DIST_BACKEND_H

#include "dist.h"
#include "reduce_op.h"

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SO_DIST_ERRLEN 1024

/* Same order as the Python-visible op names in SO_OP_NAMES. */
typedef enum {
    SO_OP_ALLREDUCE, SO_OP_REDUCE, SO_OP_BROADCAST, SO_OP_ALLGATHER, SO_OP_REDUCE_SCATTER,
    SO_OP_GATHER, SO_OP_SCATTER, SO_OP_ALLTOALL, SO_OP_BARRIER, SO_OP_SEND, SO_OP_RECV,
    SO_OP_NKINDS
} so_op_kind;

extern const char *const SO_OP_NAMES[SO_OP_NKINDS];


/* One parsed op.  `count` is the element count of the op's unit tensor: the tensor of
 * all_reduce / reduce / broadcast / send / recv; the input of all_gather and gather; the
 * output of reduce_scatter and scatter (the other side holds size x count).  Pointers are
 * host memory for CPU backends, device memory for CUDA ones; `out` of gather and `in` of
 * scatter are NULL off the root. */
typedef struct so_op {
    so_op_kind kind;
    void *in, *out;
    int64_t count;
    int dtype, itemsize;
    int red;               /* SO_RED_* */
    int root;              /* root / dst / src of rooted ops; the peer of send/recv (-1: any) */
    uint32_t tag;          /* send/recv */
    int device;            /* CUDA device index of the tensors, -1 for CPU */
    int64_t *splits;       /* all_to_all: output then input element counts per rank (2 x size) */
    int64_t out_total, in_total;
} so_op;

typedef struct so_backend so_backend;

/* The front-end object behind _C.ProcessGroupGloo and _C.ProcessGroupNCCL. */
typedef struct so_pg {
    PyObject_HEAD
    const so_backend *be;
    void *impl;            /* the backend's state; NULL before __init__ and after shutdown */
    PyObject *store;
    PyObject *inflight;    /* list of Works not yet completed (they hold the op's tensors) */
    int rank, size;
    int64_t timeout_ms;
} so_pg;

enum { SO_WORK_PENDING = 0, SO_WORK_DONE = 1, SO_WORK_FAILED = 2 };

/* Every function runs with the GIL held and returns 0 / -1 with a Python exception set
 * (NULL for objects) unless said otherwise; the backend releases the GIL around waits. */
struct so_backend {
    const char *name;      /* "gloo", "nccl" */
    int device_type;       /* SO_CPU or SO_CUDA: where the tensors must live */
    int any_source;        /* recv may take src = -1 (any other rank) */
    /* Create pg->impl (store, rank, size and timeout_ms are set); `option` is the
     * backend's constructor option (Gloo: SO_GLOO_RS_*). */
    int (*init)(so_pg *pg, int option);
    /* The group can take an op whose tensors are on `device` (-1: none, e.g. barrier):
     * not destroyed, and for NCCL a communicator on that device (created on first use). */
    int (*ready)(so_pg *pg, int device);
    /* Backend-specific limits of a parsed op (dtypes, ops, any-source recv). */
    int (*check)(so_pg *pg, const so_op *op);
    /* Run op.  Sync: wait for it (recv: *peer is the rank that sent).  Async: *work is the
     * backend's handle, or NULL when the op completed at once. */
    int (*run)(so_pg *pg, const so_op *op, int async_op, void **work, int *peer);
    /* Wait for a work (timeout_ms < 0: the op's own bound; NCCL without a timeout only
     * orders the compute stream after it, as torch). */
    int (*work_wait)(so_pg *pg, void *work, int64_t timeout_ms);
    int (*work_state)(so_pg *pg, void *work);           /* SO_WORK_*, no GIL needed */
    /* The failed work's error as a new exception object (not raised). */
    PyObject *(*work_exception)(so_pg *pg, void *work);
    int (*work_source)(void *work);                      /* recv: the sender (after a wait) */
    /* Drop a work handle; never frees a buffer an op still uses (may wait for it). */
    void (*work_release)(so_pg *pg, void *work);
    /* End the group (idempotent): queued ops fail, running ones finish within the timeout.
     * Afterwards ready() / run() raise DistError, or pg->impl is NULL. */
    void (*shutdown)(so_pg *pg);
    /* Free what shutdown left of pg->impl, when the group object dies (optional). */
    void (*release)(so_pg *pg);
    /* Why the group is unusable (a new str), or None. */
    PyObject *(*broken)(so_pg *pg);
};

extern const so_backend so_gloo_backend;   /* gloo_backend.c, under SHARDOPT_WITH_GLOO */
extern const so_backend so_nccl_backend;   /* nccl.c, under SHARDOPT_WITH_NCCL */

/* process_group.c */
int so_register_pg(PyObject *m, so_state *st);
/* DistTimeoutError (is_timeout) or DistBackendError "<msg> (rank r of n)", raised; -1. */
int so_dist_raise(so_pg *pg, int is_timeout, const char *msg);
/* The same exception as a new object, or NULL with an exception set. */
PyObject *so_dist_exception(so_pg *pg, int is_timeout, const char *msg);

/* work.c: a new Work for `work` (NULL: completed), taking over the handle and `keep` (a
 * tuple of the op's tensors, or NULL).  On failure the handle is released. */
PyObject *so_work_new(so_pg *pg, void *work, PyObject *keep, int is_recv);
int so_work_completed(PyObject *w);
int so_register_work(PyObject *m, so_state *st);

#ifdef __cplusplus
}
#endif

#endif /* SO_DIST_BACKEND_H */
