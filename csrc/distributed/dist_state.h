/* dist_state.h — the distributed layer's part of the module state (so_state.dist): the C
 * types it creates objects of, held here instead of being looked up by name. */
#ifndef SO_DIST_STATE_H
#define SO_DIST_STATE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

typedef struct so_dist_state {
    PyTypeObject *work_type;   /* _C.Work: the handle of an async op (work.c) */
    /* shardopt.distributed's exception types (dist.c); NULL until it registers, so raisers
     * that may run earlier fall back to RuntimeError */
    PyObject *error;           /* DistError(RuntimeError) */
    PyObject *timeout_error;   /* DistTimeoutError(DistError) */
    PyObject *backend_error;   /* DistBackendError(DistError) */
    PyObject *store_error;     /* DistStoreError(DistError) */
} so_dist_state;

/* For the module's traverse / clear (module.c). */
static inline int so_dist_state_traverse(so_dist_state *ds, visitproc visit, void *arg)
{
    Py_VISIT(ds->work_type);
    Py_VISIT(ds->error);
    Py_VISIT(ds->timeout_error);
    Py_VISIT(ds->backend_error);
    Py_VISIT(ds->store_error);
    return 0;
}

static inline void so_dist_state_clear(so_dist_state *ds)
{
    Py_CLEAR(ds->work_type);
    Py_CLEAR(ds->error);
    Py_CLEAR(ds->timeout_error);
    Py_CLEAR(ds->backend_error);
    Py_CLEAR(ds->store_error);
}

#endif /* SO_DIST_STATE_H */
