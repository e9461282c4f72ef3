/* work.c — shardopt._C.GlooWork: torch's Work for an async op on a Gloo process group.
 *
 * wait(timeout=None) blocks (without the GIL) until the op is done and raises its error;
 * for send/recv the wait also finishes the transfer (Gloo's waitSend/waitRecv), so, as in
 * torch, their is_completed() turns True only after a wait.  The Work holds the tensors
 * the op reads and writes; the process group keeps unfinished Works alive, so a dropped
 * Work never frees a buffer Gloo still uses.
 */
#include "work.h"

#ifdef SHARDOPT_WITH_GLOO

#include <string.h>

typedef struct {
    PyObject_HEAD
    so_job *job;
    PyObject *keep; /* tuple of tensors, or NULL */
    int rank, size;
} WorkObject;

PyObject *so_dist_gloo_exception(so_state *st, int rc, const char *err, int rank, int size)
{
    PyObject *type = rc == SO_GLOO_TIMEOUT ? st->dist_timeout_error : st->dist_backend_error;
    PyObject *msg = PyUnicode_FromFormat("%s (rank %d of %d)", err, rank, size);
    if (!msg) return NULL;
    PyObject *e = PyObject_CallOneArg(type, msg);
    Py_DECREF(msg);
    return e;
}

int so_dist_raise_gloo(so_state *st, int rc, const char *err, int rank, int size)
{
    PyObject *e = so_dist_gloo_exception(st, rc, err, rank, size);
    if (e) {
        PyErr_SetObject((PyObject *)Py_TYPE(e), e);
        Py_DECREF(e);
    }
    return -1;
}

PyObject *so_gloo_work_new(so_state *st, so_job *j, PyObject *keep, int rank, int size)
{
    PyObject *tp = PyDict_GetItemString(st->extra, "GlooWork");  /* borrowed */
    WorkObject *w = tp ? PyObject_GC_New(WorkObject, (PyTypeObject *)tp) : NULL;
    if (!w) {
        if (!tp && !PyErr_Occurred())
            PyErr_SetString(PyExc_RuntimeError, "GlooWork type not registered");
        /* The job is queued: its buffers must outlive it. */
        Py_BEGIN_ALLOW_THREADS
        so_job_wait_ran(j);
        Py_END_ALLOW_THREADS
        so_job_unref(j);
        Py_XDECREF(keep);
        return NULL;
    }
    w->job = j;
    w->keep = keep;
    w->rank = rank;
    w->size = size;
    PyObject_GC_Track(w);
    return (PyObject *)w;
}

int so_gloo_work_done(PyObject *w) { return so_job_completed(((WorkObject *)w)->job); }

static void Work_dealloc(PyObject *op)
{
    WorkObject *self = (WorkObject *)op;
    PyTypeObject *tp = Py_TYPE(op);
    PyObject_GC_UnTrack(op);
    if (self->job) {
        /* Normally done already (the group held us until then); never free buffers under
         * a running op. */
        so_job *j = self->job;
        self->job = NULL;
        Py_BEGIN_ALLOW_THREADS
        so_job_wait_ran(j);
        so_job_unref(j);  /* frees a posted p2p transfer: Gloo then drops it */
        Py_END_ALLOW_THREADS
    }
    Py_CLEAR(self->keep);
    PyObject_GC_Del(op);
    Py_DECREF(tp);
}

static int Work_traverse(PyObject *op, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(op));
    Py_VISIT(((WorkObject *)op)->keep);
    return 0;
}

static PyObject *Work_wait(PyObject *op, PyObject *args, PyObject *kw)
{
    WorkObject *self = (WorkObject *)op;
    static char *kwlist[] = {"timeout", NULL};
    PyObject *timeout = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|O:wait", kwlist, &timeout)) return NULL;
    int64_t ms = -1;
    if (timeout != Py_None && so_parse_timeout_ms(timeout, "timeout", &ms) < 0) return NULL;
    so_state *st = so_state_from_type(Py_TYPE(op));
    if (!st) return NULL;
    char err[SO_GLOO_ERRLEN] = "";
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = so_job_wait(self->job, ms, err);
    Py_END_ALLOW_THREADS
    if (rc) return so_dist_raise_gloo(st, rc, err, self->rank, self->size), NULL;
    Py_RETURN_TRUE;
}

static PyObject *Work_is_completed(PyObject *op, PyObject *unused)
{
    return PyBool_FromLong(so_job_completed(((WorkObject *)op)->job));
}

static PyObject *Work_is_success(PyObject *op, PyObject *unused)
{
    so_job *j = ((WorkObject *)op)->job;
    return PyBool_FromLong(so_job_completed(j) && j->rc == SO_GLOO_OK);
}

static PyObject *Work_exception(PyObject *op, PyObject *unused)
{
    WorkObject *self = (WorkObject *)op;
    so_job *j = self->job;
    if (!so_job_completed(j) || j->rc == SO_GLOO_OK) Py_RETURN_NONE;
    so_state *st = so_state_from_type(Py_TYPE(op));
    return st ? so_dist_gloo_exception(st, j->rc, j->err, self->rank, self->size) : NULL;
}

static PyObject *Work_source_rank(PyObject *op, PyObject *unused)
{
    so_job *j = ((WorkObject *)op)->job;
    if (j->kind != SO_JOB_RECV) {
        PyErr_SetString(PyExc_ValueError, "source_rank() is only defined for recv");
        return NULL;
    }
    if (!so_job_completed(j) || j->rc != SO_GLOO_OK) {
        PyErr_SetString(PyExc_RuntimeError, "source_rank(): the recv has not completed "
                        "(call wait() first)");
        return NULL;
    }
    return PyLong_FromLong(j->peer);
}

static PyMethodDef Work_methods[] = {
    {"wait", (PyCFunction)(void (*)(void))Work_wait, METH_VARARGS | METH_KEYWORDS,
     "wait(timeout=None): block until the op is done; raise its error; return True"},
    {"is_completed", Work_is_completed, METH_NOARGS, "True once the op has finished"},
    {"is_success", Work_is_success, METH_NOARGS, "True once the op has finished without error"},
    {"exception", Work_exception, METH_NOARGS, "the op's error (an exception object) or None"},
    {"source_rank", Work_source_rank, METH_NOARGS, "recv: the (group) rank that sent"},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot Work_slots[] = {
    {Py_tp_dealloc, Work_dealloc},
    {Py_tp_traverse, Work_traverse},
    {Py_tp_methods, Work_methods},
    {Py_tp_doc, "Handle of an async op on a ProcessGroupGloo."},
    {0, NULL},
};

static PyType_Spec Work_spec = {
    .name = "shardopt._C.GlooWork",
    .basicsize = sizeof(WorkObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = Work_slots,
};

int so_register_gloo_work(PyObject *m, so_state *st)
{
    PyObject *t = PyType_FromModuleAndSpec(m, &Work_spec, NULL);
    if (!t) return -1;
    int rc = PyDict_SetItemString(st->extra, "GlooWork", t);
    if (rc == 0) rc = PyModule_AddObjectRef(m, "GlooWork", t);
    Py_DECREF(t);
    return rc;
}

#endif /* SHARDOPT_WITH_GLOO */
