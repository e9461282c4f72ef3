/* work.c — shardopt._C.Work: torch's Work, the handle of an async op, for every backend.
 *
 * It holds the backend's handle, the tensors the op reads and writes, and the group (whose
 * backend answers for the handle).  wait(timeout=None) raises the op's error; for Gloo it
 * blocks (without the GIL) until the op is done -- for send/recv the wait also finishes the
 * transfer, so, as in torch, their is_completed() turns True only after a wait; for NCCL,
 * as in torch, wait() orders the compute stream after the op and wait(timeout) blocks the
 * host.  A handle of NULL is an op that completed when issued.
 */
#include "backend.h"

typedef struct {
    PyObject_HEAD
    so_pg *pg;      /* strong reference */
    void *h;        /* the backend's handle, or NULL: completed */
    PyObject *keep; /* tuple of tensors, or NULL */
    int is_recv;
} WorkObject;

PyObject *so_work_new(so_pg *pg, void *h, PyObject *keep, int is_recv)
{
    so_state *st = so_state_from_type(Py_TYPE(pg));
    WorkObject *w = st ? PyObject_GC_New(WorkObject, st->dist.work_type) : NULL;
    if (!w) {
        if (h) pg->be->work_release(pg, h);  /* waits for the op: its buffers outlive it */
        Py_XDECREF(keep);
        return NULL;
    }
    w->pg = (so_pg *)Py_NewRef((PyObject *)pg);
    w->h = h;
    w->keep = keep;
    w->is_recv = is_recv;
    PyObject_GC_Track(w);
    return (PyObject *)w;
}

static int work_state(WorkObject *w)
{
    return w->h ? w->pg->be->work_state(w->pg, w->h) : SO_WORK_DONE;
}

int so_work_completed(PyObject *w) { return work_state((WorkObject *)w) != SO_WORK_PENDING; }

static void Work_dealloc(PyObject *self)
{
    WorkObject *w = (WorkObject *)self;
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    if (w->h) {
        void *h = w->h;
        w->h = NULL;
        w->pg->be->work_release(w->pg, h);
    }
    Py_CLEAR(w->keep);
    Py_CLEAR(w->pg);
    PyObject_GC_Del(self);
    Py_DECREF(tp);
}

static int Work_traverse(PyObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(((WorkObject *)self)->keep);
    Py_VISIT((PyObject *)((WorkObject *)self)->pg);
    return 0;
}

static PyObject *Work_wait(PyObject *self, PyObject *args, PyObject *kw)
{
    WorkObject *w = (WorkObject *)self;
    static char *kwlist[] = {"timeout", NULL};
    PyObject *timeout = Py_None;
    int64_t ms = -1;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|O:wait", kwlist, &timeout)) return NULL;
    if (timeout != Py_None && so_parse_timeout_ms(timeout, "timeout", &ms) < 0) return NULL;
    if (w->h && w->pg->be->work_wait(w->pg, w->h, ms) < 0) return NULL;
    Py_RETURN_TRUE;
}

static PyObject *Work_is_completed(PyObject *self, PyObject *unused)
{
    return PyBool_FromLong(work_state((WorkObject *)self) != SO_WORK_PENDING);
}

static PyObject *Work_is_success(PyObject *self, PyObject *unused)
{
    return PyBool_FromLong(work_state((WorkObject *)self) == SO_WORK_DONE);
}

static PyObject *Work_exception(PyObject *self, PyObject *unused)
{
    WorkObject *w = (WorkObject *)self;
    if (work_state(w) != SO_WORK_FAILED) Py_RETURN_NONE;
    return w->pg->be->work_exception(w->pg, w->h);
}

static PyObject *Work_source_rank(PyObject *self, PyObject *unused)
{
    WorkObject *w = (WorkObject *)self;
    if (!w->is_recv)
        return PyErr_Format(PyExc_ValueError, "source_rank() is only defined for recv");
    if (work_state(w) != SO_WORK_DONE)
        return PyErr_Format(PyExc_RuntimeError, "source_rank(): the recv has not completed "
                            "(call wait() first)");
    return PyLong_FromLong(w->h ? w->pg->be->work_source(w->h) : -1);
}

static PyMethodDef Work_methods[] = {
    {"wait", (PyCFunction)(void (*)(void))Work_wait, METH_VARARGS | METH_KEYWORDS,
     "wait(timeout=None): wait for the op (NCCL without a timeout: order the compute stream "
     "after it); raise its error; return True"},
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
    {Py_tp_doc, "Handle of an async op on a process group."},
    {0, NULL},
};

static PyType_Spec Work_spec = {
    .name = "shardopt._C.Work",
    .basicsize = sizeof(WorkObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = Work_slots,
};

int so_register_work(PyObject *m, so_state *st)
{
    PyObject *t = PyType_FromModuleAndSpec(m, &Work_spec, NULL);
    if (!t) return -1;
    st->dist.work_type = (PyTypeObject *)t;  /* the module state's reference */
    return PyModule_AddObjectRef(m, "Work", t);
}
