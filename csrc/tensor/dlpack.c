/* dlpack.c — zero-copy exchange through DLPack capsules (the Python array API protocol).
 *
 * Export: Tensor.__dlpack__ builds a DLManagedTensor (capsule "dltensor") or, when the
 * consumer asks for max_version >= (1, 0), a DLManagedTensorVersioned ("dltensor_versioned")
 * whose manager context holds a reference to the Storage; its deleter drops that reference.
 * The capsule's destructor calls the deleter only if no consumer renamed the capsule to
 * "used_dltensor[_versioned]" (then the consumer owns it) — the standard protocol.
 * Import: _C._from_dlpack(capsule) wraps the producer's memory in a Storage whose release
 * callback is the producer's deleter, and renames the capsule so it cannot be used twice.
 */
#include "interop.h"
#include "dlpack.h"
#include "copy.h"

static const char *NAME = "dltensor", *NAME_V = "dltensor_versioned";
static const char *USED = "used_dltensor", *USED_V = "used_dltensor_versioned";

/* ------------------------------------------------------------------ dtypes */

static DLDataType to_dl_dtype(int dt)
{
    DLDataType d = {kDLFloat, 32, 1};
    switch (dt) {
    case SO_FLOAT32: d.code = kDLFloat; d.bits = 32; break;
    case SO_FLOAT64: d.code = kDLFloat; d.bits = 64; break;
    case SO_FLOAT16: d.code = kDLFloat; d.bits = 16; break;
    case SO_BFLOAT16: d.code = kDLBfloat; d.bits = 16; break;
    case SO_INT32: d.code = kDLInt; d.bits = 32; break;
    case SO_INT64: d.code = kDLInt; d.bits = 64; break;
    case SO_BOOL: d.code = kDLBool; d.bits = 8; break;
    case SO_COMPLEX64: d.code = kDLComplex; d.bits = 64; break;
    case SO_COMPLEX128: d.code = kDLComplex; d.bits = 128; break;
    }
    return d;
}

static int from_dl_dtype(DLDataType d)
{
    if (d.lanes != 1) return -1;
    switch (d.code) {
    case kDLFloat: return d.bits == 32 ? SO_FLOAT32 : d.bits == 64 ? SO_FLOAT64 : d.bits == 16 ? SO_FLOAT16 : -1;
    case kDLBfloat: return d.bits == 16 ? SO_BFLOAT16 : -1;
    case kDLInt: return d.bits == 32 ? SO_INT32 : d.bits == 64 ? SO_INT64 : -1;
    case kDLBool: return d.bits == 8 ? SO_BOOL : -1;
    case kDLComplex: return d.bits == 64 ? SO_COMPLEX64 : d.bits == 128 ? SO_COMPLEX128 : -1;
    default: return -1;
    }
}

/* ------------------------------------------------------------------ export */

typedef struct {
    union {
        DLManagedTensor legacy;
        DLManagedTensorVersioned versioned;
    } m;
    int64_t shape[SO_MAX_DIMS];
    int64_t strides[SO_MAX_DIMS];
    PyObject *owner; /* the Storage */
} export_ctx;

/* Deleters may be called by a consumer from any thread, with or without the GIL. */
static void export_release(export_ctx *ctx)
{
    if (Py_IsInitialized()) {
        PyGILState_STATE g = PyGILState_Ensure();
        Py_XDECREF(ctx->owner);
        PyGILState_Release(g);
    }
    free(ctx);
}

static void legacy_deleter(DLManagedTensor *self) { export_release((export_ctx *)self->manager_ctx); }
static void versioned_deleter(DLManagedTensorVersioned *self)
{
    export_release((export_ctx *)self->manager_ctx);
}

/* Capsule destructor: free only if nobody consumed the capsule. */
static void capsule_destructor(PyObject *cap)
{
#if PY_VERSION_HEX >= 0x030C0000
    PyObject *saved;
#else
    PyObject *type, *value, *tb;
#endif
    if (PyCapsule_IsValid(cap, USED) || PyCapsule_IsValid(cap, USED_V)) return;
    /* a destructor may run while an exception is being raised: keep it intact */
#if PY_VERSION_HEX >= 0x030C0000
    saved = PyErr_GetRaisedException();
#else
    PyErr_Fetch(&type, &value, &tb);
#endif
    if (PyCapsule_IsValid(cap, NAME_V)) {
        DLManagedTensorVersioned *m = (DLManagedTensorVersioned *)PyCapsule_GetPointer(cap, NAME_V);
        if (m && m->deleter) m->deleter(m);
    } else if (PyCapsule_IsValid(cap, NAME)) {
        DLManagedTensor *m = (DLManagedTensor *)PyCapsule_GetPointer(cap, NAME);
        if (m && m->deleter) m->deleter(m);
    } else {
        PyErr_WriteUnraisable(cap);
    }
#if PY_VERSION_HEX >= 0x030C0000
    PyErr_SetRaisedException(saved);
#else
    PyErr_Restore(type, value, tb);
#endif
}

/* The DLPack `stream` argument for a CUDA tensor: -1 means "no synchronization"; any other
 * stream (None = legacy default, 1, 2, or a handle) must see our pending work.  We wait for
 * our compute stream on the host, which is correct for every consumer stream. */
static int honour_stream(so_state *st, SoTensor *t, PyObject *stream)
{
    so_device dev = so_tensor_device(t);
    long long s = 0;
    if (stream != Py_None) {
        if (!PyLong_Check(stream) || PyBool_Check(stream))
            return so_fail(PyExc_TypeError, "__dlpack__: stream must be an int or None, got %s",
                           Py_TYPE(stream)->tp_name);
        s = PyLong_AsLongLong(stream);
        if (s == -1 && PyErr_Occurred()) return -1;
    }
    /* DLPack has no data-less device: a meta tensor cannot be exported */
    if (dev.type == SO_META) return so_meta_copy_out();
    if (dev.type == SO_CPU) {
        if (stream != Py_None && s != -1)
            return so_fail(PyExc_BufferError,
                           "__dlpack__: stream must be None for a CPU tensor, got %R", stream);
        return 0;
    }
    if (stream != Py_None && (s == 0 || s < -1))
        return so_fail(PyExc_ValueError,
                       "__dlpack__: invalid CUDA stream %R (0 is ambiguous and disallowed; use 1 "
                       "for the legacy default stream, 2 for per-thread, -1 for no "
                       "synchronization)", stream);
    if (s == -1) return 0;
    {
        void *ours = so_cuda_stream(st->core.cuda_streams, dev.index);
        if (!ours) return -1;
        return so_cuda_stream_synchronize(ours);
    }
}

/* Tensor.__dlpack__(*, stream=None, max_version=None, dl_device=None, copy=None) */
PyObject *so_t_dlpack(PyObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"stream", "max_version", "dl_device", "copy", NULL};
    so_state *st = so_state_from_type(Py_TYPE(self));
    PyObject *stream = Py_None, *max_version = Py_None, *dl_device = Py_None, *copy_obj = Py_None;
    SoTensor *t = (SoTensor *)self, *src = NULL;
    so_device dev;
    int versioned = 0, copy = -1, copied = 0;
    export_ctx *ctx = NULL;
    DLTensor *dl;
    PyObject *cap = NULL;
    if (!st) return NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|$OOOO:__dlpack__", kwlist, &stream,
                                     &max_version, &dl_device, &copy_obj))
        return NULL;
    if (t->requires_grad)
        return PyErr_Format(PyExc_RuntimeError,
                            "Can't export tensors that require gradient, use tensor.detach()");
    if (max_version != Py_None) {
        long major;
        if (!PyTuple_Check(max_version) || PyTuple_GET_SIZE(max_version) != 2)
            return PyErr_Format(PyExc_TypeError,
                                "__dlpack__: max_version must be a (major, minor) tuple, got %R",
                                max_version);
        major = PyLong_AsLong(PyTuple_GET_ITEM(max_version, 0));
        if (major == -1 && PyErr_Occurred()) return NULL;
        versioned = major >= 1;
    }
    if (copy_obj != Py_None) {
        copy = PyObject_IsTrue(copy_obj);
        if (copy < 0) return NULL;
    }
    dev = so_tensor_device(t);
    src = (SoTensor *)Py_NewRef(self);
    if (dl_device != Py_None) {
        long dtype_, did;
        if (!PyTuple_Check(dl_device) || PyTuple_GET_SIZE(dl_device) != 2)
            SO_FAIL(done, PyExc_TypeError,
                    "__dlpack__: dl_device must be a (device_type, device_id) tuple, got %R",
                    dl_device);
        dtype_ = PyLong_AsLong(PyTuple_GET_ITEM(dl_device, 0));
        did = PyLong_AsLong(PyTuple_GET_ITEM(dl_device, 1));
        if (PyErr_Occurred()) goto done;
        if ((dtype_ == kDLCPU && dev.type == SO_CPU) ||
            (dtype_ == kDLCUDA && dev.type == SO_CUDA && did == dev.index)) {
            /* same device: nothing to do */
        } else if (dtype_ == kDLCPU && copy != 0) {
            so_device cpu = {SO_CPU, 0};
            Py_SETREF(src, so_tensor_convert(st, t, t->dtype, cpu));
            if (!src) goto done;
            copied = 1;
        } else {
            SO_FAIL(done, PyExc_BufferError,
                    "__dlpack__: cannot export a tensor on %s to dl_device %R%s",
                    dev.type == SO_CPU ? "cpu" : "cuda", dl_device,
                    copy == 0 ? " without a copy (copy=False)" : "");
        }
    }
    if (copy == 1 && !copied) {
        Py_SETREF(src, so_tensor_clone(st, src));
        if (!src) goto done;
        copied = 1;
    }
    if (honour_stream(st, src, stream) < 0) goto done;

    ctx = (export_ctx *)calloc(1, sizeof *ctx);
    if (!ctx) {
        PyErr_NoMemory();
        goto done;
    }
    for (int i = 0; i < src->ndim; i++) {
        ctx->shape[i] = src->shape[i];
        ctx->strides[i] = src->strides[i];
    }
    ctx->owner = Py_NewRef((PyObject *)src->storage);
    if (versioned) {
        ctx->m.versioned.version.major = DLPACK_MAJOR_VERSION;
        ctx->m.versioned.version.minor = DLPACK_MINOR_VERSION;
        ctx->m.versioned.manager_ctx = ctx;
        ctx->m.versioned.deleter = versioned_deleter;
        ctx->m.versioned.flags = copied ? DLPACK_FLAG_BITMASK_IS_COPIED : 0;
        dl = &ctx->m.versioned.dl_tensor;
    } else {
        ctx->m.legacy.manager_ctx = ctx;
        ctx->m.legacy.deleter = legacy_deleter;
        dl = &ctx->m.legacy.dl_tensor;
    }
    dl->data = so_tensor_data(src);
    dl->device.device_type = so_tensor_device(src).type == SO_CPU ? kDLCPU : kDLCUDA;
    dl->device.device_id = so_tensor_device(src).type == SO_CPU ? 0 : so_tensor_device(src).index;
    dl->ndim = src->ndim;
    dl->dtype = to_dl_dtype(src->dtype);
    dl->shape = ctx->shape;
    dl->strides = ctx->strides;
    dl->byte_offset = 0;
    cap = PyCapsule_New(&ctx->m, versioned ? NAME_V : NAME, capsule_destructor);
    if (!cap) {
        Py_DECREF(ctx->owner);
        free(ctx);
    }
done:
    Py_XDECREF(src);
    return cap;
}

/* Tensor.__dlpack_device__() -> (device_type, device_id) */
PyObject *so_t_dlpack_device(PyObject *self, PyObject *unused)
{
    so_device dev = so_tensor_device((SoTensor *)self);
    (void)unused;
    if (dev.type == SO_META) return (void)so_meta_copy_out(), NULL;
    return Py_BuildValue("(ii)", dev.type == SO_CPU ? (int)kDLCPU : (int)kDLCUDA,
                         dev.type == SO_CPU ? 0 : (int)dev.index);
}

/* ------------------------------------------------------------------ import */

static void release_legacy(void *p)
{
    DLManagedTensor *m = (DLManagedTensor *)p;
    if (m->deleter) m->deleter(m);
}

static void release_versioned(void *p)
{
    DLManagedTensorVersioned *m = (DLManagedTensorVersioned *)p;
    if (m->deleter) m->deleter(m);
}

/* _C._from_dlpack(capsule) -> Tensor sharing the producer's memory */
static PyObject *py_from_dlpack(PyObject *m, PyObject *cap)
{
    so_state *st = so_state_from_module(m);
    int versioned, dt, readonly = 0, itemsize;
    void *managed;
    DLTensor *dl;
    so_device dev = {SO_CPU, 0};
    int64_t shape[SO_MAX_DIMS], strides[SO_MAX_DIMS], hi = 0, numel = 1;
    SoStorage *storage;
    SoTensor *t;
    char *data;

    if (PyCapsule_IsValid(cap, NAME_V)) {
        versioned = 1;
    } else if (PyCapsule_IsValid(cap, NAME)) {
        versioned = 0;
    } else if (PyCapsule_IsValid(cap, USED) || PyCapsule_IsValid(cap, USED_V)) {
        return PyErr_Format(PyExc_RuntimeError,
                            "from_dlpack received a DLPack capsule that was already consumed: a "
                            "capsule can be used only once (call __dlpack__() again for a new "
                            "one)");
    } else {
        return PyErr_Format(PyExc_TypeError,
                            "from_dlpack expects an object with __dlpack__ or a DLPack capsule "
                            "named 'dltensor' / 'dltensor_versioned', got %s",
                            Py_TYPE(cap)->tp_name);
    }
    managed = PyCapsule_GetPointer(cap, versioned ? NAME_V : NAME);
    if (!managed) return NULL;
    if (versioned) {
        DLManagedTensorVersioned *mv = (DLManagedTensorVersioned *)managed;
        if (mv->version.major > DLPACK_MAJOR_VERSION)
            return PyErr_Format(PyExc_BufferError,
                                "from_dlpack: the producer's DLPack version %u.%u is newer than "
                                "the supported %d.%d",
                                mv->version.major, mv->version.minor, DLPACK_MAJOR_VERSION,
                                DLPACK_MINOR_VERSION);
        readonly = (mv->flags & DLPACK_FLAG_BITMASK_READ_ONLY) != 0;
        dl = &mv->dl_tensor;
    } else {
        dl = &((DLManagedTensor *)managed)->dl_tensor;
    }

    switch (dl->device.device_type) {
    case kDLCPU:
    case kDLCUDAHost:
        break;
    case kDLCUDA:
        if (so_cuda_require(dl->device.device_id) < 0) return NULL;
        dev.type = SO_CUDA;
        dev.index = (int16_t)dl->device.device_id;
        break;
    default:
        return PyErr_Format(PyExc_BufferError,
                            "from_dlpack: unsupported device type %d (only CPU and CUDA memory)",
                            (int)dl->device.device_type);
    }
    dt = from_dl_dtype(dl->dtype);
    if (dt < 0)
        return PyErr_Format(PyExc_TypeError,
                            "from_dlpack: unsupported dtype (code %d, bits %d, lanes %d); "
                            "supported: float16/32/64, bfloat16, int32, int64, bool, "
                            "complex64/128", (int)dl->dtype.code, (int)dl->dtype.bits,
                            (int)dl->dtype.lanes);
    if (so_dtype_is_complex(dt) && dev.type != SO_CPU)
        return PyErr_Format(PyExc_RuntimeError, "from_dlpack: complex tensors are supported on "
                            "the CPU only (shardopt has no CUDA kernels for complex dtypes)");
    if (dl->ndim < 0 || dl->ndim > SO_MAX_DIMS)
        return PyErr_Format(PyExc_ValueError,
                            "from_dlpack: at most %d dimensions are supported, got %d",
                            SO_MAX_DIMS, (int)dl->ndim);
    itemsize = so_dtype_itemsize(dt);
    for (int i = dl->ndim - 1; i >= 0; i--) {
        shape[i] = dl->shape[i];
        if (shape[i] < 0)
            return PyErr_Format(PyExc_ValueError, "from_dlpack: negative dimension %lld",
                                (long long)shape[i]);
        strides[i] = dl->strides ? dl->strides[i] : (i == dl->ndim - 1 ? 1 : strides[i + 1] * shape[i + 1]);
        numel *= shape[i];
    }
    for (int i = 0; i < dl->ndim; i++) {
        if (shape[i] > 1 && strides[i] < 0)
            return PyErr_Format(PyExc_BufferError,
                                "from_dlpack: tensors with negative strides are not supported");
        if (shape[i] > 0) hi += (shape[i] - 1) * (strides[i] < 0 ? 0 : strides[i]);
    }
    data = (char *)dl->data + dl->byte_offset;
    storage = so_storage_wrap_release(st, dev, data, numel ? (hi + 1) * itemsize : 0,
                                      versioned ? release_versioned : release_legacy, managed);
    if (!storage) return NULL;
    /* From here the storage owns the producer's memory: the capsule must never free it. */
    if (PyCapsule_SetName(cap, versioned ? USED_V : USED) < 0) {
        storage->owner_release = NULL;
        Py_DECREF(storage);
        return NULL;
    }
    for (int i = 0; i < dl->ndim; i++)
        if (shape[i] <= 1) strides[i] = strides[i] < 0 ? 0 : strides[i];
    t = so_tensor_from_storage(st, storage, 0, dl->ndim, shape, strides, dt);
    Py_DECREF(storage);
    if (t && readonly) {
        /* no read-only tensors here: give the caller its own copy, release the producer */
        SoTensor *c = so_tensor_clone(st, t);
        Py_DECREF(t);
        t = c;
    }
    return (PyObject *)t;
}

/* _C._cuda_stream_handle(index) -> int: our compute stream of cuda:index, as DLPack's
 * `stream` argument and __cuda_array_interface__'s "stream" expect it. */
static PyObject *py_cuda_stream_handle(PyObject *m, PyObject *arg)
{
    so_state *st = so_state_from_module(m);
    long idx = PyLong_AsLong(arg);
    void *s;
    if (idx == -1 && PyErr_Occurred()) return NULL;
    if (so_cuda_require((int)idx) < 0) return NULL;
    s = so_cuda_stream(st->core.cuda_streams, (int)idx);
    if (!s) return NULL;
    return PyLong_FromVoidPtr(s);
}

static PyMethodDef dlpack_functions[] = {
    {"_from_dlpack", py_from_dlpack, METH_O,
     "_from_dlpack(capsule): a tensor sharing the memory of a DLPack capsule (consumes it)"},
    {"_cuda_stream_handle", py_cuda_stream_handle, METH_O,
     "_cuda_stream_handle(index): the compute stream of cuda:index as an int"},
    {NULL}};

int so_register_dlpack(PyObject *m, so_state *st)
{
    (void)st;
    return PyModule_AddFunctions(m, dlpack_functions);
}
