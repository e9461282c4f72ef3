/* storage.c — the refcounted buffer under every tensor (see tensor.h).
 *
 * A storage owns its memory in one of three ways: host memory from so_host_alloc, CUDA
 * memory from cudaMallocAsync on the device's compute stream, or memory that belongs to
 * someone else (a NumPy array, a DLPack producer), kept alive by a reference or released by
 * a callback.  It is immutable in size and address, which is what makes zero-copy export safe.
 */
#include "tensor.h"

static void storage_dealloc(SoStorage *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    switch (self->free_kind) {
    case SO_FREE_HOST:
        so_host_free(self->data, (size_t)self->nbytes);
        break;
    case SO_FREE_CUDA:
        so_cuda_free(self->device.index, self->stream, self->data);
        break;
    case SO_FREE_OWNER:
        if (self->owner_release) self->owner_release(self->owner_ctx);
        Py_CLEAR(self->owner);
        break;
    }
    self->data = NULL;
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

static int storage_traverse(SoStorage *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->owner);
    return 0;
}

static int storage_clear(SoStorage *self)
{
    /* The owner keeps the memory alive: it may only be dropped together with the data,
     * which happens in dealloc.  Nothing else to break here. */
    (void)self;
    return 0;
}

static PyObject *storage_nbytes(SoStorage *self, PyObject *unused)
{
    (void)unused;
    return PyLong_FromLongLong(self->nbytes);
}

static PyObject *storage_data_ptr(SoStorage *self, PyObject *unused)
{
    (void)unused;
    return PyLong_FromVoidPtr(self->data);
}

static PyObject *storage_device(SoStorage *self, void *c)
{
    (void)c;
    so_state *st = so_state_from_type(Py_TYPE(self));
    return st ? so_device_object(st, self->device) : NULL;
}

/* True when the buffer is shardopt's own (host or CUDA allocation), False when it belongs to
 * a foreign owner (a NumPy array, a DLPack producer) that may still write to it.  Autograd
 * only adopts a gradient buffer without copying when it is its own. */
static PyObject *storage_owns_memory(SoStorage *self, void *c)
{
    (void)c;
    return PyBool_FromLong(self->free_kind != SO_FREE_OWNER);
}

static PyMethodDef storage_methods[] = {
    {"nbytes", (PyCFunction)storage_nbytes, METH_NOARGS, "size of the buffer in bytes"},
    {"data_ptr", (PyCFunction)storage_data_ptr, METH_NOARGS, "address of the buffer"},
    {NULL}};

static PyGetSetDef storage_getset[] = {
    {"device", (getter)storage_device, NULL, NULL, NULL},
    {"_owns_memory", (getter)storage_owns_memory, NULL, NULL, NULL},
    {NULL}};

static PyType_Slot storage_slots[] = {
    {Py_tp_dealloc, storage_dealloc},
    {Py_tp_traverse, storage_traverse},
    {Py_tp_clear, storage_clear},
    {Py_tp_methods, storage_methods},
    {Py_tp_getset, storage_getset},
    {Py_tp_doc, "A refcounted buffer shared by tensor views."},
    {0, NULL}};

static PyType_Spec storage_spec = {
    .name = "shardopt._C.Storage",
    .basicsize = sizeof(SoStorage),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE |
             Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = storage_slots};

static SoStorage *storage_new(so_state *st)
{
    SoStorage *s = PyObject_GC_New(SoStorage, st->tensor.storage_type);
    if (!s) return NULL;
    s->data = NULL;
    s->nbytes = 0;
    s->device.type = SO_CPU;
    s->device.index = 0;
    s->free_kind = SO_FREE_OWNER;
    s->stream = NULL;
    s->owner = NULL;
    s->owner_release = NULL;
    s->owner_ctx = NULL;
    s->version = 0;
    PyObject_GC_Track((PyObject *)s);
    return s;
}

SoStorage *so_storage_alloc(so_state *st, so_device dev, int64_t nbytes)
{
    SoStorage *s;
    if (nbytes < 0)
        return so_fail_null(PyExc_ValueError, "storage size must be non-negative, got %lld",
                            (long long)nbytes);
    s = storage_new(st);
    if (!s) return NULL;
    s->device = dev;
    s->nbytes = nbytes;
    if (dev.type == SO_META) {
        /* meta: the size is recorded, no memory exists; data stays NULL and nothing frees */
        s->free_kind = SO_FREE_OWNER;
        s->data = NULL;
    } else if (dev.type == SO_CPU) {
        s->free_kind = SO_FREE_HOST;
        s->data = so_host_alloc((size_t)nbytes);
        if (!s->data) goto done;
    } else {
        void *stream = so_cuda_stream(st->core.cuda_streams, dev.index);
        void *p = NULL;
        if (!stream) goto done;
        s->stream = stream;
        if (so_cuda_malloc(dev.index, stream, (size_t)nbytes, &p) < 0) goto done;
        s->free_kind = SO_FREE_CUDA;
        s->data = p;
    }
    return s;
done:
    s->free_kind = SO_FREE_OWNER; /* nothing to free */
    s->data = NULL;
    Py_DECREF(s);
    return NULL;
}

/* A storage over memory someone else frees: kept alive by `owner` and/or released by
 * `release(ctx)` when the storage dies. */
static SoStorage *storage_wrap(so_state *st, so_device dev, void *data, int64_t nbytes,
                               PyObject *owner, void (*release)(void *), void *ctx)
{
    SoStorage *s = storage_new(st);
    if (!s) return NULL;
    s->device = dev;
    s->data = data;
    s->nbytes = nbytes;
    s->free_kind = SO_FREE_OWNER;
    s->owner = Py_XNewRef(owner);
    s->owner_release = release;
    s->owner_ctx = ctx;
    return s;
}

SoStorage *so_storage_wrap_owner(so_state *st, so_device dev, void *data, int64_t nbytes,
                                 PyObject *owner)
{
    return storage_wrap(st, dev, data, nbytes, owner, NULL, NULL);
}

SoStorage *so_storage_wrap_release(so_state *st, so_device dev, void *data, int64_t nbytes,
                                   void (*release)(void *), void *ctx)
{
    return storage_wrap(st, dev, data, nbytes, NULL, release, ctx);
}

int so_register_storage(PyObject *m, so_state *st)
{
    st->tensor.storage_type = (PyTypeObject *)PyType_FromModuleAndSpec(m, &storage_spec, NULL);
    if (!st->tensor.storage_type) return -1;
    return PyModule_AddType(m, st->tensor.storage_type);
}
