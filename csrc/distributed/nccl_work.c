/* nccl_work.c — shardopt._C.NCCLWork: the Work of an async op on a ProcessGroupNCCL.
 *
 * It holds the op's completion event (refcounted with the group's watchdog list) and the
 * group.  wait() without a timeout, as in torch, only orders the caller's compute stream
 * after the op; wait(timeout) blocks the host until the op is done, failed or the timeout
 * passed.  A failure (the watchdog aborted the communicator) is raised by wait() and
 * returned by exception().
 */
#include "nccl_impl.h"

#ifdef SHARDOPT_WITH_NCCL

#include "../core/device.h"

#define KW (METH_VARARGS | METH_KEYWORDS)

/* ---- NCCLWork --------------------------------------------------------------------------------- */

PyObject *so_nccl_work_new(NPG *s, pending *p, PyObject *keep)
{
    so_state *st = so_nccl_state((PyObject *)s);
    PyObject *tp = st ? PyDict_GetItemString(st->extra, "NCCLWork") : NULL;
    NWork *w = tp ? PyObject_GC_New(NWork, (PyTypeObject *)tp) : NULL;
    if (!w) {
        if (p) {
            pthread_mutex_lock(&s->mu);
            so_nccl_pending_unref_locked(p);
            pthread_mutex_unlock(&s->mu);
        }
        Py_XDECREF(keep);
        return NULL;
    }
    w->pg = (NPG *)Py_NewRef((PyObject *)s);
    w->p = p;
    w->keep = keep;
    PyObject_GC_Track(w);
    return (PyObject *)w;
}

/* Under mu: refresh and return p's state (NULL p: complete). */
static int work_state_locked(NWork *w)
{
    pending *p = w->p;
    if (!p) return P_DONE;
    if (p->state == P_INFLIGHT) {
        cudaError_t q = cudaEventQuery(p->ev);
        if (q == cudaSuccess) p->state = P_DONE;
        else if (q != cudaErrorNotReady) (void)cudaGetLastError(); /* the watchdog reports it */
    }
    return p->state;
}

static int work_state(NWork *w)
{
    pthread_mutex_lock(&w->pg->mu);
    int st = work_state_locked(w);
    pthread_mutex_unlock(&w->pg->mu);
    return st;
}

static void W_dealloc(PyObject *op)
{
    NWork *w = (NWork *)op;
    PyTypeObject *tp = Py_TYPE(op);
    PyObject_GC_UnTrack(op);
    if (w->p) {
        pthread_mutex_lock(&w->pg->mu);
        so_nccl_pending_unref_locked(w->p);
        pthread_mutex_unlock(&w->pg->mu);
    }
    Py_CLEAR(w->keep);
    Py_CLEAR(w->pg);
    PyObject_GC_Del(op);
    Py_DECREF(tp);
}

static int W_traverse(PyObject *op, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(op));
    Py_VISIT(((NWork *)op)->keep);
    Py_VISIT((PyObject *)((NWork *)op)->pg);
    return 0;
}

/* wait(timeout=None): without a timeout, as torch, the compute stream waits for the op
 * (the host does not); with one, the host waits until done or the timeout. */
static PyObject *W_wait(PyObject *op, PyObject *args, PyObject *kw)
{
    NWork *w = (NWork *)op;
    NPG *s = w->pg;
    static char *kwlist[] = {"timeout", NULL};
    PyObject *timeout = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|O:wait", kwlist, &timeout)) return NULL;
    int64_t ms = -1;
    if (timeout != Py_None && so_parse_timeout_ms(timeout, "timeout", &ms) < 0) return NULL;
    if (!w->p) Py_RETURN_TRUE;
    if (ms >= 0) {
        char m[ERRLEN] = "";
        int is_timeout = 0, rc;
        Py_BEGIN_ALLOW_THREADS
        rc = so_nccl_wait_host(s, w->p, ms, m, &is_timeout);
        Py_END_ALLOW_THREADS
        if (rc) return so_nccl_raise(s, is_timeout, m);
        Py_RETURN_TRUE;
    }
    so_state *st = so_nccl_state(op);
    void *compute = st ? so_cuda_stream(st->cuda_streams, s->device) : NULL;
    if (!compute) return NULL;
    pthread_mutex_lock(&s->mu);
    int state = work_state_locked(w);
    cudaError_t ce = cudaSuccess;
    if (state == P_INFLIGHT) ce = cudaStreamWaitEvent((cudaStream_t)compute, w->p->ev, 0);
    pthread_mutex_unlock(&s->mu);
    if (state == P_FAILED) return so_nccl_raise(s, s->broken_timeout, s->broken);
    if (ce != cudaSuccess) {
        (void)cudaGetLastError();
        return so_nccl_raise(s, 0, cudaGetErrorString(ce));
    }
    Py_RETURN_TRUE;
}

static PyObject *W_is_completed(PyObject *op, PyObject *u)
{
    return PyBool_FromLong(work_state((NWork *)op) != P_INFLIGHT);
}

static PyObject *W_is_success(PyObject *op, PyObject *u)
{
    return PyBool_FromLong(work_state((NWork *)op) == P_DONE);
}

static PyObject *W_exception(PyObject *op, PyObject *u)
{
    NWork *w = (NWork *)op;
    if (work_state(w) != P_FAILED) Py_RETURN_NONE;
    so_state *st = so_nccl_state(op);
    if (!st) return NULL;
    return PyObject_CallFunction(w->pg->broken_timeout ? st->dist_timeout_error
                                                        : st->dist_backend_error,
                                 "s", w->pg->broken);
}

static PyMethodDef W_methods[] = {
    {"wait", (PyCFunction)(void (*)(void))W_wait, KW,
     "wait(timeout=None): order the compute stream after the op (with a timeout: block the host)"},
    {"is_completed", W_is_completed, METH_NOARGS, "True once the op has finished on the GPU"},
    {"is_success", W_is_success, METH_NOARGS, "True once finished without error"},
    {"exception", W_exception, METH_NOARGS, "the group's error if the op failed, else None"},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot W_slots[] = {
    {Py_tp_dealloc, W_dealloc},
    {Py_tp_traverse, W_traverse},
    {Py_tp_methods, W_methods},
    {Py_tp_doc, "Handle of an async op on a ProcessGroupNCCL."},
    {0, NULL},
};

static PyType_Spec W_spec = {
    .name = "shardopt._C.NCCLWork",
    .basicsize = sizeof(NWork),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = W_slots,
};

int so_nccl_register_work(PyObject *m, so_state *st)
{
    PyObject *t = PyType_FromModuleAndSpec(m, &W_spec, NULL);
    if (!t) return -1;
    int rc = PyDict_SetItemString(st->extra, "NCCLWork", t);
    if (rc == 0) rc = PyModule_AddObjectRef(m, "NCCLWork", t);
    Py_DECREF(t);
    return rc;
}

#endif /* SHARDOPT_WITH_NCCL */
