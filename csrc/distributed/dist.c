/* dist.c — the distributed exception hierarchy and shared argument helpers (see dist.h). */
#include "dist.h"

#include <math.h>

static PyObject *new_exc(PyObject *m, const char *name, PyObject *base, const char *doc)
{
    char qual[128];
    PyOS_snprintf(qual, sizeof qual, "shardopt.distributed.%s", name);
    PyObject *t = PyErr_NewExceptionWithDoc(qual, doc, base, NULL);
    if (t && PyModule_AddObjectRef(m, name, t) < 0) Py_CLEAR(t);
    return t;
}

int so_register_dist(PyObject *m, so_state *st)
{
    st->dist_error = new_exc(m, "DistError", PyExc_RuntimeError,
                             "Base class of every shardopt.distributed failure.");
    if (!st->dist_error) return -1;
    st->dist_timeout_error = new_exc(m, "DistTimeoutError", st->dist_error,
                                     "A collective or rendezvous did not finish in time.");
    st->dist_backend_error = new_exc(m, "DistBackendError", st->dist_error,
                                     "The communication backend (Gloo/NCCL) failed.");
    st->dist_store_error = new_exc(m, "DistStoreError", st->dist_error,
                                   "The key-value store failed or timed out.");
    if (!st->dist_timeout_error || !st->dist_backend_error || !st->dist_store_error) return -1;
    if (so_register_store(m, st) < 0) return -1;
#ifndef SO_DIST_NO_PG
    if (so_register_pg(m, st) < 0) return -1;
#endif
    if (so_register_nccl(m, st) < 0) return -1;
    return 0;
}

int so_parse_timeout_ms(PyObject *obj, const char *argname, int64_t *out)
{
    double secs;
    if (PyFloat_Check(obj) || PyLong_Check(obj)) {
        secs = PyFloat_AsDouble(obj);
        if (secs == -1.0 && PyErr_Occurred()) return -1;
    } else {
        PyObject *r = PyObject_CallMethod(obj, "total_seconds", NULL);
        if (!r) {
            PyErr_Clear();
            PyErr_Format(PyExc_TypeError,
                         "%s must be a datetime.timedelta or a number of seconds, got %.100s",
                         argname, Py_TYPE(obj)->tp_name);
            return -1;
        }
        secs = PyFloat_AsDouble(r);
        Py_DECREF(r);
        if (secs == -1.0 && PyErr_Occurred()) return -1;
    }
    if (!(secs >= 0) || !isfinite(secs) || secs > 1e9) {
        PyErr_Format(PyExc_ValueError, "%s must be a finite, non-negative duration, got %R",
                     argname, obj);
        return -1;
    }
    *out = (int64_t)(secs * 1000.0 + 0.5);
    return 0;
}

PyObject *so_timedelta_from_ms(int64_t ms)
{
    PyObject *dt = PyImport_ImportModule("datetime");
    if (!dt) return NULL;
    PyObject *td = PyObject_GetAttrString(dt, "timedelta");
    Py_DECREF(dt);
    if (!td) return NULL;
    PyObject *args = PyTuple_New(0);
    PyObject *kw = args ? Py_BuildValue("{s:L}", "milliseconds", (long long)ms) : NULL;
    PyObject *r = kw ? PyObject_Call(td, args, kw) : NULL;
    Py_XDECREF(args);
    Py_XDECREF(kw);
    Py_DECREF(td);
    return r;
}
