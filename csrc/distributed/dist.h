/* dist.h — registration of shardopt._C's distributed pieces and the helpers they share.
 *
 * module.c calls so_register_dist(m, st) once; it creates the exception hierarchy
 * (DistError(RuntimeError) > DistTimeoutError, DistBackendError, DistStoreError) — the one
 * definition, stored in so_state and re-exported by shardopt.distributed — and registers
 * the store, the process-group types (one front end over the backend table, backend.h)
 * and Work.
 */
#ifndef SO_DIST_H
#define SO_DIST_H

#include "../core/errors.h"
#include "../module.h"

#ifdef __cplusplus
extern "C" {
#endif

int so_register_dist(PyObject *m, so_state *st);      /* distributed/dist.c */
int so_register_store(PyObject *m, so_state *st);     /* distributed/store_py.c */
int so_register_pg(PyObject *m, so_state *st);        /* distributed/process_group.c */
int so_register_nccl(PyObject *m, so_state *st);      /* distributed/nccl.c (_nccl_*) */

/* Parse a timeout given as datetime.timedelta or a number of seconds into milliseconds
 * (>= 0).  Raises TypeError/ValueError naming `argname`. */
int so_parse_timeout_ms(PyObject *obj, const char *argname, int64_t *out);
/* datetime.timedelta(milliseconds=ms), new reference. */
PyObject *so_timedelta_from_ms(int64_t ms);

#ifdef __cplusplus
}
#endif

#endif /* SO_DIST_H */
