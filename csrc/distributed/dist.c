/* dist.c — the distributed exception hierarchy, the layer's registration and the argument
 * helpers its files share (see dist.h). */
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
    int rc = -1;
    SO_CHECK_PTR(st->dist.error = new_exc(m, "DistError", PyExc_RuntimeError,
                                          "Base class of every shardopt.distributed failure."),
                 done);
    SO_CHECK_PTR(st->dist.timeout_error =
                     new_exc(m, "DistTimeoutError", st->dist.error,
                             "A collective or rendezvous did not finish in time."), done);
    SO_CHECK_PTR(st->dist.backend_error =
                     new_exc(m, "DistBackendError", st->dist.error,
                             "The communication backend (Gloo/NCCL) failed."), done);
    SO_CHECK_PTR(st->dist.store_error =
                     new_exc(m, "DistStoreError", st->dist.error,
                             "The key-value store failed or timed out."), done);
    SO_CHECK_RC(so_register_store(m, st), done);
    SO_CHECK_RC(so_register_pg(m, st), done);
    SO_CHECK_RC(so_register_nccl(m, st), done);
    rc = 0;
done:
    return rc;
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
            return so_fail(PyExc_TypeError,
                           "%s must be a datetime.timedelta or a number of seconds, got %.100s",
                           argname, Py_TYPE(obj)->tp_name);
        }
        secs = PyFloat_AsDouble(r);
        Py_DECREF(r);
        if (secs == -1.0 && PyErr_Occurred()) return -1;
    }
    if (!(secs >= 0) || !isfinite(secs) || secs > 1e9)
        return so_fail(PyExc_ValueError, "%s must be a finite, non-negative duration, got %R",
                       argname, obj);
    *out = (int64_t)(secs * 1000.0 + 0.5);
    return 0;
}

PyObject *so_timedelta_from_ms(int64_t ms)
{
    PyObject *dt = NULL, *td = NULL, *args = NULL, *kw = NULL, *r = NULL;
    SO_CHECK_PTR(dt = PyImport_ImportModule("datetime"), done);
    SO_CHECK_PTR(td = PyObject_GetAttrString(dt, "timedelta"), done);
    SO_CHECK_PTR(args = PyTuple_New(0), done);
    SO_CHECK_PTR(kw = Py_BuildValue("{s:L}", "milliseconds", (long long)ms), done);
    r = PyObject_Call(td, args, kw);
done:
    Py_XDECREF(dt);
    Py_XDECREF(td);
    Py_XDECREF(args);
    Py_XDECREF(kw);
    return r;
}
