/* dist_state.h — the distributed layer's part of the module state (so_state.dist): the C
 * types it creates objects of, held here instead of being looked up by name. */
#ifndef SO_DIST_STATE_H
#define SO_DIST_STATE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

typedef struct so_dist_state {
    PyTypeObject *work_type;   /* _C.Work: the handle of an async op (work.c) */
} so_dist_state;

/* For the module's traverse / clear (module.c). */
static inline int so_dist_state_traverse(so_dist_state *ds, visitproc visit, void *arg)
{
    Py_VISIT(ds->work_type);
    return 0;
}

static inline void so_dist_state_clear(so_dist_state *ds) { Py_CLEAR(ds->work_type); }

#endif /* SO_DIST_STATE_H */
