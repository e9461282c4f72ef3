/* work.h — shardopt._C.GlooWork, the handle of an async op on a Gloo process group, and
 * the error conversion shared with process_group.c. */
#ifndef SO_DIST_WORK_H
#define SO_DIST_WORK_H

#include "dist.h"
#include "pg_queue.h"

/* A new GlooWork for the queued job j.  Steals the references to j and keep (a tuple of
 * the tensors j points into, or NULL).  On failure (NULL) the Work's clean-up still waits
 * for j, so no buffer is freed under a running op. */
PyObject *so_gloo_work_new(so_state *st, so_job *j, PyObject *keep, int rank, int size);
/* 1 if the GlooWork w has completed (its tensors may be released). */
int so_gloo_work_done(PyObject *w);
int so_register_gloo_work(PyObject *m, so_state *st);

/* Raise DistTimeoutError (rc SO_GLOO_TIMEOUT) or DistBackendError with err and the rank;
 * returns -1. */
int so_dist_raise_gloo(so_state *st, int rc, const char *err, int rank, int size);
/* The same exception as a new (unraised) object, or NULL with an exception set. */
PyObject *so_dist_gloo_exception(so_state *st, int rc, const char *err, int rank, int size);

#endif /* SO_DIST_WORK_H */
