/* dtype_device.c — the dtype and device objects (`shardopt.float32`, `shardopt.device(...)`)
 * and the argument parsers every binding uses to accept them (strings accepted everywhere).
 *
 * dtype objects are singletons held in module state; device objects are small immutable
 * values (type, index) with torch's parsing rules and error messages.
 */
#include "tensor.h"
#include <ctype.h>
#include <stdlib.h>

/* ------------------------------------------------------------------ dtype */

typedef struct {
    PyObject_HEAD
    int code;
} SoDtype;

static const char *const dtype_names[SO_NUM_DTYPE_OBJECTS] = {
    "float32", "float64", "float16", "bfloat16", "int32", "int64", "bool",
    "complex64", "complex128", "uint8", "int8", "int16"};

/* element sizes of the name-only dtypes (so_dtype_itemsize covers the tensor dtypes) */
static int dtype_object_itemsize(int code)
{
    switch (code) {
    case SO_UINT8: case SO_INT8: return 1;
    case SO_INT16: return 2;
    default: return so_dtype_itemsize(code);
    }
}

static int dtype_is_complex(int code)
{
    return code == SO_COMPLEX64 || code == SO_COMPLEX128;
}

static PyObject *dtype_repr(SoDtype *self)
{
    return PyUnicode_FromFormat("shardopt.%s", dtype_names[self->code]);
}

static PyObject *dtype_get_itemsize(SoDtype *self, void *c)
{
    (void)c;
    return PyLong_FromLong(dtype_object_itemsize(self->code));
}

static PyObject *dtype_get_is_floating_point(SoDtype *self, void *c)
{
    (void)c;
    return PyBool_FromLong(so_dtype_is_float(self->code));
}

static PyObject *dtype_get_is_complex(SoDtype *self, void *c)
{
    (void)c;
    return PyBool_FromLong(dtype_is_complex(self->code));
}

static PyObject *dtype_get_is_signed(SoDtype *self, void *c)
{
    (void)c;
    return PyBool_FromLong(self->code != SO_BOOL && self->code != SO_UINT8);
}

static PyObject *dtype_get_name(SoDtype *self, void *c)
{
    (void)c;
    return PyUnicode_FromString(dtype_names[self->code]);
}

static PyObject *dtype_get_code(SoDtype *self, void *c)
{
    (void)c;
    return PyLong_FromLong(self->code);
}

static PyObject *dtype_reduce(SoDtype *self, PyObject *unused)
{
    (void)unused;
    /* Pickle by name: shardopt.<name> (the singletons are module attributes). */
    return PyUnicode_FromString(dtype_names[self->code]);
}

static PyObject *dtype_copy(PyObject *self, PyObject *unused)
{
    (void)unused;
    return Py_NewRef(self);
}

static PyGetSetDef dtype_getset[] = {
    {"itemsize", (getter)dtype_get_itemsize, NULL, "bytes per element", NULL},
    {"is_floating_point", (getter)dtype_get_is_floating_point, NULL, NULL, NULL},
    {"is_complex", (getter)dtype_get_is_complex, NULL, NULL, NULL},
    {"is_signed", (getter)dtype_get_is_signed, NULL, NULL, NULL},
    {"_name", (getter)dtype_get_name, NULL, NULL, NULL},
    {"_code", (getter)dtype_get_code, NULL, NULL, NULL},
    {NULL}};

static PyMethodDef dtype_methods[] = {
    {"__reduce__", (PyCFunction)dtype_reduce, METH_NOARGS, NULL},
    {"__copy__", (PyCFunction)dtype_copy, METH_NOARGS, NULL},
    {"__deepcopy__", (PyCFunction)dtype_copy, METH_O, NULL},
    {NULL}};

static int dtype_traverse(PyObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    return 0;
}

static void dtype_dealloc(PyObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    tp->tp_free(self);
    Py_DECREF(tp);
}

static PyType_Slot dtype_slots[] = {
    {Py_tp_repr, dtype_repr},
    {Py_tp_getset, dtype_getset},
    {Py_tp_methods, dtype_methods},
    {Py_tp_traverse, dtype_traverse},
    {Py_tp_dealloc, dtype_dealloc},
    {Py_tp_doc, "A tensor element type, e.g. shardopt.float32."},
    {0, NULL}};

static PyType_Spec dtype_spec = {
    .name = "shardopt._C.dtype",
    .basicsize = sizeof(SoDtype),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE |
             Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = dtype_slots};

PyObject *so_dtype_object(so_state *st, int dtype)
{
    if (dtype < 0 || dtype >= SO_NUM_TENSOR_DTYPES)
        return PyErr_Format(PyExc_ValueError, "invalid dtype code %d", dtype);
    return Py_NewRef(st->tensor.dtypes[dtype]);
}

int so_parse_dtype(so_state *st, PyObject *obj, int default_dtype, const char *argname, int *out)
{
    if (obj == NULL || obj == Py_None) {
        *out = default_dtype;
        return 0;
    }
    if (Py_IS_TYPE(obj, st->tensor.dtype_type)) {
        int code = ((SoDtype *)obj)->code;
        if (code >= SO_NUM_TENSOR_DTYPES) goto name_only;
        *out = code;
        return 0;
    }
    /* Accept NumPy-style names ("float32") and Python's float/int/bool types. */
    if (PyUnicode_Check(obj)) {
        const char *s = PyUnicode_AsUTF8(obj);
        if (!s) return -1;
        for (int i = 0; i < SO_NUM_TENSOR_DTYPES; i++)
            if (strcmp(s, dtype_names[i]) == 0) { *out = i; return 0; }
        if (strcmp(s, "cfloat") == 0) { *out = SO_COMPLEX64; return 0; }
        if (strcmp(s, "cdouble") == 0) { *out = SO_COMPLEX128; return 0; }
        for (int i = SO_NUM_TENSOR_DTYPES; i < SO_NUM_DTYPE_OBJECTS; i++)
            if (strcmp(s, dtype_names[i]) == 0) { obj = st->tensor.dtypes[i]; goto name_only; }
        if (strcmp(s, "float") == 0) { *out = SO_FLOAT32; return 0; }
        if (strcmp(s, "double") == 0) { *out = SO_FLOAT64; return 0; }
        if (strcmp(s, "half") == 0) { *out = SO_FLOAT16; return 0; }
        if (strcmp(s, "long") == 0) { *out = SO_INT64; return 0; }
        if (strcmp(s, "int") == 0) { *out = SO_INT32; return 0; }
    } else if (obj == (PyObject *)&PyFloat_Type) {
        *out = SO_FLOAT64; /* torch: dtype=float means float64 */
        return 0;
    } else if (obj == (PyObject *)&PyLong_Type) {
        *out = SO_INT64;
        return 0;
    } else if (obj == (PyObject *)&PyBool_Type) {
        *out = SO_BOOL;
        return 0;
    } else if (obj == (PyObject *)&PyComplex_Type) {
        *out = SO_COMPLEX128; /* torch: dtype=complex means complex128 */
        return 0;
    }
    return so_fail(PyExc_TypeError,
                   "%s must be a shardopt dtype (e.g. shardopt.float32), got %R", argname, obj);
name_only:
    return so_fail(PyExc_TypeError,
                   "%s: shardopt has no tensors of dtype %R yet (supported: float32, float64, "
                   "float16, bfloat16, int32, int64, bool, complex64, complex128)", argname, obj);
}

int so_check_not_complex(const SoTensor *t, const char *fname)
{
    if (!so_dtype_is_complex(t->dtype)) return 0;
    return so_fail(PyExc_RuntimeError, "%s: not implemented for '%s' (shardopt's complex "
                   "tensors support creation, copies, views, indexing, cat/stack, add, sub, "
                   "mul, div, neg, abs, conj, eq/ne, equal/allclose, sum/mean and collectives)",
                   fname, t->dtype == SO_COMPLEX64 ? "ComplexFloat" : "ComplexDouble");
}

/* ------------------------------------------------------------------ device */

typedef struct {
    PyObject_HEAD
    int type;  /* so_device_type */
    int index; /* -1 = unspecified (torch's index None) */
} SoDeviceObj;

/* Parse "cpu", "cuda", "cuda:N" (strict: torch's messages). */
static int parse_device_string(const char *s, int *type, int *index)
{
    const char *colon = strchr(s, ':');
    size_t tlen = colon ? (size_t)(colon - s) : strlen(s);
    if (tlen == 3 && strncmp(s, "cpu", 3) == 0) {
        *type = SO_CPU;
    } else if (tlen == 4 && strncmp(s, "cuda", 4) == 0) {
        *type = SO_CUDA;
    } else if (tlen == 4 && strncmp(s, "meta", 4) == 0) {
        *type = SO_META;
    } else {
        return so_fail(PyExc_RuntimeError,
                       "Expected one of cpu, cuda, meta device type at start of device string: %s",
                       s);
    }
    *index = -1;
    if (colon) {
        /* the index: digits only, no leading zero, at most 1000000 */
        const char *d = colon + 1;
        long v = -1;
        int ok = isdigit((unsigned char)d[0]) && !(d[0] == '0' && d[1] != '\0');
        for (const char *q = d; ok && *q; q++) ok = isdigit((unsigned char)*q) != 0;
        if (ok) v = strtol(d, NULL, 10);
        if (!ok || v > 1000000)
            return so_fail(PyExc_RuntimeError, "Invalid device string: '%s'", s);
        *index = (int)v;
    }
    return 0;
}

static PyObject *device_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"type", "index", NULL};
    PyObject *what = NULL, *index_obj = Py_None;
    so_state *st = so_state_from_type(type);
    int dtype_ = SO_CPU, index = -1;
    SoDeviceObj *self;
    if (!st) return NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|O:device", kwlist, &what, &index_obj))
        return NULL;
    if (Py_IS_TYPE(what, st->tensor.device_type) && index_obj == Py_None) return Py_NewRef(what);
    if (PyLong_Check(what) && !PyBool_Check(what) && index_obj == Py_None) {
        long v = PyLong_AsLong(what);
        if (v == -1 && PyErr_Occurred()) return NULL;
        if (v < 0)
            return PyErr_Format(PyExc_RuntimeError, "Device index must not be negative");
        dtype_ = SO_CUDA;
        index = (int)v;
    } else if (PyUnicode_Check(what)) {
        const char *s = PyUnicode_AsUTF8(what);
        if (!s || parse_device_string(s, &dtype_, &index) < 0) return NULL;
        if (index_obj != Py_None) {
            long v;
            if (index != -1)
                return PyErr_Format(PyExc_RuntimeError,
                                    "type (string) must not include an index because index was "
                                    "passed explicitly: %s", s);
            v = PyLong_AsLong(index_obj);
            if (v == -1 && PyErr_Occurred()) return NULL;
            if (v < 0)
                return PyErr_Format(PyExc_RuntimeError, "Device index must not be negative");
            index = (int)v;
        }
    } else {
        return PyErr_Format(PyExc_TypeError, "device() expects a str or int, got %R", what);
    }
    if (dtype_ == SO_CPU && index > 0)
        return PyErr_Format(PyExc_RuntimeError,
                            "CPU device index must be -1 or zero, got %d", index);
    self = (SoDeviceObj *)type->tp_alloc(type, 0);
    if (!self) return NULL;
    self->type = dtype_;
    self->index = index;
    return (PyObject *)self;
}

static PyObject *device_get_type(SoDeviceObj *self, void *c)
{
    (void)c;
    return PyUnicode_FromString(so_device_type_name(self->type));
}

static PyObject *device_get_index(SoDeviceObj *self, void *c)
{
    (void)c;
    if (self->index < 0) Py_RETURN_NONE;
    return PyLong_FromLong(self->index);
}

static PyObject *device_str(SoDeviceObj *self)
{
    const char *t = so_device_type_name(self->type);
    if (self->index < 0) return PyUnicode_FromString(t);
    return PyUnicode_FromFormat("%s:%d", t, self->index);
}

static PyObject *device_repr(SoDeviceObj *self)
{
    const char *t = so_device_type_name(self->type);
    if (self->index < 0) return PyUnicode_FromFormat("device(type='%s')", t);
    return PyUnicode_FromFormat("device(type='%s', index=%d)", t, self->index);
}

static PyObject *device_richcompare(PyObject *a, PyObject *b, int op)
{
    int eq;
    if (Py_TYPE(a) != Py_TYPE(b) || (op != Py_EQ && op != Py_NE)) Py_RETURN_NOTIMPLEMENTED;
    eq = ((SoDeviceObj *)a)->type == ((SoDeviceObj *)b)->type &&
         ((SoDeviceObj *)a)->index == ((SoDeviceObj *)b)->index;
    return PyBool_FromLong(op == Py_EQ ? eq : !eq);
}

static Py_hash_t device_hash(SoDeviceObj *self)
{
    Py_hash_t h = (Py_hash_t)(self->type * 1000003 + self->index + 2);
    return h == -1 ? -2 : h;
}

static PyObject *device_reduce(SoDeviceObj *self, PyObject *unused)
{
    PyObject *s = device_str(self), *res;
    (void)unused;
    if (!s) return NULL;
    res = Py_BuildValue("(O(N))", (PyObject *)Py_TYPE(self), s);
    return res;
}

static PyGetSetDef device_getset[] = {
    {"type", (getter)device_get_type, NULL, "'cpu' or 'cuda'", NULL},
    {"index", (getter)device_get_index, NULL, "device ordinal or None", NULL},
    {NULL}};

static PyMethodDef device_methods[] = {
    {"__reduce__", (PyCFunction)device_reduce, METH_NOARGS, NULL},
    {NULL}};

static int device_traverse(PyObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    return 0;
}

static PyType_Slot device_slots[] = {
    {Py_tp_new, device_new},
    {Py_tp_str, device_str},
    {Py_tp_repr, device_repr},
    {Py_tp_richcompare, device_richcompare},
    {Py_tp_hash, device_hash},
    {Py_tp_getset, device_getset},
    {Py_tp_methods, device_methods},
    {Py_tp_traverse, device_traverse},
    {Py_tp_dealloc, dtype_dealloc},
    {Py_tp_doc, "device(type_or_str, index=None): 'cpu', 'cuda' or 'cuda:N'."},
    {0, NULL}};

static PyType_Spec device_spec = {
    .name = "shardopt._C.device",
    .basicsize = sizeof(SoDeviceObj),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = device_slots};

PyObject *so_device_object(so_state *st, so_device dev)
{
    SoDeviceObj *d = (SoDeviceObj *)st->tensor.device_type->tp_alloc(st->tensor.device_type, 0);
    if (!d) return NULL;
    d->type = dev.type;
    d->index = dev.type == SO_CUDA ? dev.index : -1;
    return (PyObject *)d;
}

int so_parse_device(so_state *st, PyObject *obj, const char *argname, so_device *out)
{
    int type = SO_CPU, index = -1;
    out->type = SO_CPU;
    out->index = 0;
    if (obj == NULL || obj == Py_None) return 0;
    if (Py_IS_TYPE(obj, st->tensor.device_type)) {
        type = ((SoDeviceObj *)obj)->type;
        index = ((SoDeviceObj *)obj)->index;
    } else if (PyUnicode_Check(obj)) {
        const char *s = PyUnicode_AsUTF8(obj);
        if (!s || parse_device_string(s, &type, &index) < 0) return -1;
    } else if (PyLong_Check(obj) && !PyBool_Check(obj)) {
        long v = PyLong_AsLong(obj);
        if (v == -1 && PyErr_Occurred()) return -1;
        if (v < 0)
            return so_fail(PyExc_ValueError, "%s: device index must not be negative, got %ld",
                           argname, v);
        type = SO_CUDA;
        index = (int)v;
    } else {
        return so_fail(PyExc_TypeError,
                       "%s must be a shardopt.device, a string like 'cpu' or 'cuda:0', or a CUDA "
                       "device index, got %R", argname, obj);
    }
    if (type == SO_META) {
        out->type = SO_META;
        return 0;
    }
    if (type == SO_CUDA) {
        if (index < 0) {
            /* "cuda" means the current device; asking for it needs a working CUDA. */
            if (so_cuda_require(0) < 0) return -1;
            if (so_cuda_get_device(&index) < 0) return -1;
        }
        if (so_cuda_require(index) < 0) return -1;
        out->type = SO_CUDA;
        out->index = (int16_t)index;
    }
    return 0;
}

/* ------------------------------------------------------------------ registration */

int so_register_device(PyObject *m, so_state *st)
{
    st->tensor.dtype_type = (PyTypeObject *)PyType_FromModuleAndSpec(m, &dtype_spec, NULL);
    if (!st->tensor.dtype_type) return -1;
    if (PyModule_AddType(m, st->tensor.dtype_type) < 0) return -1;
    for (int i = 0; i < SO_NUM_DTYPE_OBJECTS; i++) {
        SoDtype *d = PyObject_GC_New(SoDtype, st->tensor.dtype_type);
        if (!d) return -1;
        d->code = i;
        PyObject_GC_Track((PyObject *)d);
        st->tensor.dtypes[i] = (PyObject *)d;
        if (PyModule_AddObjectRef(m, dtype_names[i], (PyObject *)d) < 0) return -1;
    }
    st->tensor.device_type = (PyTypeObject *)PyType_FromModuleAndSpec(m, &device_spec, NULL);
    if (!st->tensor.device_type) return -1;
    if (PyModule_AddType(m, st->tensor.device_type) < 0) return -1;
    return 0;
}
