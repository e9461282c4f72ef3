/* tensor.c — _C.TensorBase: geometry, properties and autograd slots of a tensor.
 *
 * A tensor is (storage, offset, shape, strides, dtype).  Everything here is metadata work;
 * element work (copies, math) lives in csrc/ops.  View-making methods live in views.c.
 * shardopt.Tensor (Python) subclasses this type and adds operators and autograd.
 */
#include "tensor.h"
#include <stdio.h>
#include <structmember.h>

/* ------------------------------------------------------------------ C API */

int so_tensor_check(so_state *st, PyObject *obj) { return PyObject_TypeCheck(obj, st->tensor.tensor_type); }

int64_t so_tensor_numel(const SoTensor *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

int so_tensor_is_contiguous(const SoTensor *t)
{
    int64_t expected = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        if (t->shape[i] == 1) continue;
        if (t->shape[i] == 0) return 1;
        if (t->strides[i] != expected) return 0;
        expected *= t->shape[i];
    }
    return 1;
}

void so_tensor_to_view(const SoTensor *t, so_view *out)
{
    out->data = so_tensor_data(t);
    out->ndim = t->ndim;
    out->dtype = t->dtype;
    out->device = t->storage->device;
    for (int i = 0; i < t->ndim; i++) {
        out->shape[i] = t->shape[i];
        out->strides[i] = t->strides[i];
    }
}

const char *so_shape_str(int ndim, const int64_t *shape, char *buf, size_t buflen)
{
    size_t pos = 0;
    pos += (size_t)snprintf(buf + pos, buflen - pos, "[");
    for (int i = 0; i < ndim && pos < buflen; i++)
        pos += (size_t)snprintf(buf + pos, buflen - pos, i ? ", %lld" : "%lld", (long long)shape[i]);
    if (pos < buflen) snprintf(buf + pos, buflen - pos, "]");
    return buf;
}

int so_wrap_dim(int64_t dim, int ndim, int64_t *out)
{
    int64_t n = ndim > 0 ? ndim : 1;
    if (dim < -n || dim >= n)
        return so_fail(PyExc_IndexError,
                       "Dimension out of range (expected to be in range of [%lld, %lld], but got "
                       "%lld)", (long long)-n, (long long)(n - 1), (long long)dim);
    *out = dim < 0 ? dim + n : dim;
    return 0;
}

static int parse_one_size(PyObject *item, const char *argname, int64_t *out)
{
    long long v;
    if (PyBool_Check(item) || !PyIndex_Check(item))
        return so_fail(PyExc_TypeError,
                       "%s must be a sequence of ints, but got an element of type %s",
                       argname, Py_TYPE(item)->tp_name);
    v = PyLong_AsLongLong(item);
    if (v == -1 && PyErr_Occurred()) {
        if (!PyErr_ExceptionMatches(PyExc_OverflowError)) return -1;
        PyErr_Clear();
        return so_fail(PyExc_ValueError, "%s: dimension %R is too large", argname, item);
    }
    *out = v;
    return 0;
}

int so_parse_int_seq(PyObject *obj, const char *argname, int *nd, int64_t *out)
{
    Py_ssize_t n;
    PyObject *seq = PySequence_Fast(obj, "");
    if (!seq) {
        PyErr_Clear();
        return so_fail(PyExc_TypeError, "%s must be a sequence of ints, got %s", argname,
                       Py_TYPE(obj)->tp_name);
    }
    n = PySequence_Fast_GET_SIZE(seq);
    if (n > SO_MAX_DIMS) {
        Py_DECREF(seq);
        return so_fail(PyExc_ValueError,
                       "%s: at most %d dimensions are supported, got %zd", argname, SO_MAX_DIMS, n);
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        if (parse_one_size(PySequence_Fast_GET_ITEM(seq, i), argname, &out[i]) < 0) {
            Py_DECREF(seq);
            return -1;
        }
    }
    Py_DECREF(seq);
    *nd = (int)n;
    return 0;
}

int so_parse_shape(PyObject *obj, const char *argname, int *ndim_out, int64_t *shape_out)
{
    /* torch style: f(2, 3), f((2, 3)), f([2, 3]) and f(torch.Size) are all accepted; the
     * bindings pass the varargs tuple here. */
    if (PyTuple_Check(obj) && PyTuple_GET_SIZE(obj) == 1 &&
        (PyTuple_Check(PyTuple_GET_ITEM(obj, 0)) || PyList_Check(PyTuple_GET_ITEM(obj, 0))))
        obj = PyTuple_GET_ITEM(obj, 0);
    if (PyLong_Check(obj)) {
        if (parse_one_size(obj, argname, &shape_out[0]) < 0) return -1;
        *ndim_out = 1;
    } else if (so_parse_int_seq(obj, argname, ndim_out, shape_out) < 0) {
        return -1;
    }
    for (int i = 0; i < *ndim_out; i++) {
        if (shape_out[i] < 0) {
            char buf[256];
            (void)argname;
            return so_fail(PyExc_RuntimeError,
                           "Trying to create tensor with negative dimension %lld: %s",
                           (long long)shape_out[i],
                           so_shape_str(*ndim_out, shape_out, buf, sizeof buf));
        }
    }
    return 0;
}

/* torch's c10 rule: the product of the sizes, computed in uint64, must not overflow at any
 * step (a later 0 does not excuse it) and must fit int64. */
static int sizes_overflow(int ndim, const int64_t *shape)
{
    uint64_t n = 1;
    int of = 0;
    for (int i = 0; i < ndim; i++) of |= __builtin_mul_overflow(n, (uint64_t)shape[i], &n);
    return of || n > (uint64_t)INT64_MAX;
}

int so_check_sizes(int ndim, const int64_t *shape)
{
    char buf[256];
    for (int i = 0; i < ndim; i++)
        if (shape[i] < 0)
            return so_fail(PyExc_RuntimeError, "Trying to create tensor with negative dimension %lld: %s",
                           (long long)shape[i], so_shape_str(ndim, shape, buf, sizeof buf));
    if (sizes_overflow(ndim, shape))
        return so_fail(PyExc_RuntimeError, "numel: integer multiplication overflow");
    return 0;
}

SoTensor *so_tensor_from_storage(so_state *st, SoStorage *storage, int64_t offset, int ndim,
                                 const int64_t *shape, const int64_t *strides, int dtype)
{
    PyTypeObject *cls = st->tensor.tensor_class ? st->tensor.tensor_class : st->tensor.tensor_type;
    /* Every tensor (factories, views, reshape, expand, shards) is made here: the one place
     * where a size that cannot exist is refused. */
    if (so_check_sizes(ndim, shape) < 0) return NULL;
    SoTensor *t = (SoTensor *)cls->tp_alloc(cls, 0);
    if (!t) return NULL;
    t->storage = (SoStorage *)Py_NewRef((PyObject *)storage);
    t->offset = offset;
    t->ndim = ndim;
    t->dtype = dtype;
    for (int i = 0; i < ndim; i++) {
        t->shape[i] = shape[i];
        t->strides[i] = strides[i];
    }
    t->requires_grad = 0;
    t->grad = NULL;
    t->grad_fn = NULL;
    t->grad_acc = NULL;
    return t;
}

int64_t so_contiguous_strides(int ndim, const int64_t *shape, int64_t *strides)
{
    int64_t n = 1;
    for (int i = ndim - 1; i >= 0; i--) {
        strides[i] = n;
        if (shape[i] != 0 && n > INT64_MAX / shape[i]) return -1;
        n *= shape[i];
    }
    return n;
}

SoTensor *so_tensor_empty(so_state *st, int ndim, const int64_t *shape, int dtype, so_device dev)
{
    int64_t strides[SO_MAX_DIMS];
    int64_t numel, itemsize = so_dtype_itemsize(dtype);
    SoStorage *storage;
    SoTensor *t;
    if (ndim < 0 || ndim > SO_MAX_DIMS)
        return so_fail_null(PyExc_ValueError,
                            "size: at most %d dimensions are supported", SO_MAX_DIMS);
    char buf[256];
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0)
            return so_fail_null(PyExc_RuntimeError,
                                "Trying to create tensor with negative dimension %lld: %s",
                                (long long)shape[i], so_shape_str(ndim, shape, buf, sizeof buf));
    }
    if (sizes_overflow(ndim, shape)) {
        PyErr_Format(PyExc_RuntimeError, "Storage size calculation overflowed with sizes=%s",
                     so_shape_str(ndim, shape, buf, sizeof buf));
        return NULL;
    }
    if (so_dtype_is_complex(dtype) && dev.type == SO_CUDA)
        return so_fail_null(PyExc_RuntimeError,
                            "%s tensors are supported on the CPU only (shardopt has no CUDA "
                            "kernels for complex dtypes)",
                            dtype == SO_COMPLEX64 ? "complex64" : "complex128");
    numel = so_contiguous_strides(ndim, shape, strides);
    if (numel < 0 || numel > INT64_MAX / itemsize) {
        return so_fail_null(PyExc_MemoryError,
                            "cannot allocate a tensor of size %s: too many elements",
                            so_shape_str(ndim, shape, buf, sizeof buf));
    }
    storage = so_storage_alloc(st, dev, numel * itemsize);
    if (!storage) return NULL;
    t = so_tensor_from_storage(st, storage, 0, ndim, shape, strides, dtype);
    Py_DECREF(storage);
    return t;
}

SoTensor *so_tensor_as_strided(so_state *st, SoTensor *base, int ndim, const int64_t *shape,
                               const int64_t *strides, int64_t offset)
{
    return so_tensor_from_storage(st, base->storage, offset, ndim, shape, strides, base->dtype);
}

/* ------------------------------------------------------------------ type slots */

static int tensor_traverse(SoTensor *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->storage);
    Py_VISIT(self->grad);
    Py_VISIT(self->grad_fn);
    Py_VISIT(self->grad_acc);
    return 0;
}

static int tensor_clear(SoTensor *self)
{
    Py_CLEAR(self->grad);
    Py_CLEAR(self->grad_fn);
    Py_CLEAR(self->grad_acc);
    return 0;
}

static void tensor_dealloc(SoTensor *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    if (self->weakreflist) PyObject_ClearWeakRefs((PyObject *)self);
    tensor_clear(self);
    Py_CLEAR(self->storage);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

static PyObject *tensor_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    (void)args;
    (void)kwds;
    return PyErr_Format(PyExc_TypeError,
                        "%s cannot be constructed directly; use shardopt.tensor(), "
                        "shardopt.empty() or another factory function", type->tp_name);
}

static so_state *state_of(PyObject *self) { return so_state_from_type(Py_TYPE(self)); }

/* ---- getters ---- */

static PyObject *t_get_dtype(SoTensor *self, void *c)
{
    so_state *st = state_of((PyObject *)self);
    (void)c;
    return st ? so_dtype_object(st, self->dtype) : NULL;
}

static PyObject *t_get_device(SoTensor *self, void *c)
{
    so_state *st = state_of((PyObject *)self);
    (void)c;
    return st ? so_device_object(st, self->storage->device) : NULL;
}

static PyObject *t_get_ndim(SoTensor *self, void *c)
{
    (void)c;
    return PyLong_FromLong(self->ndim);
}

static PyObject *t_get_is_cuda(SoTensor *self, void *c)
{
    (void)c;
    return PyBool_FromLong(self->storage->device.type == SO_CUDA);
}

static PyObject *t_get_is_meta(SoTensor *self, void *c)
{
    (void)c;
    return PyBool_FromLong(self->storage->device.type == SO_META);
}

static PyObject *t_get_shape(SoTensor *self, void *c)
{
    PyObject *tup = PyTuple_New(self->ndim);
    (void)c;
    if (!tup) return NULL;
    for (int i = 0; i < self->ndim; i++) {
        PyObject *v = PyLong_FromLongLong(self->shape[i]);
        if (!v) {
            Py_DECREF(tup);
            return NULL;
        }
        PyTuple_SET_ITEM(tup, i, v);
    }
    return tup;
}

static PyObject *t_get_version(SoTensor *self, void *c)
{
    (void)c;
    return PyLong_FromUnsignedLongLong(self->storage->version);
}

static PyObject *t_get_storage(SoTensor *self, void *c)
{
    (void)c;
    return Py_NewRef((PyObject *)self->storage);
}

static PyObject *t_get_requires_grad(SoTensor *self, void *c)
{
    (void)c;
    return PyBool_FromLong(self->requires_grad);
}

static int t_set_requires_grad(SoTensor *self, PyObject *value, void *c)
{
    int v;
    (void)c;
    if (!value)
        return so_fail(PyExc_AttributeError, "cannot delete requires_grad");
    v = PyObject_IsTrue(value);
    if (v < 0) return -1;
    if (v && !so_dtype_is_float(self->dtype))
        return so_fail(PyExc_RuntimeError,
                       "only Tensors of floating point dtype can require gradients");
    if (!v && self->grad_fn)
        return so_fail(PyExc_RuntimeError,
                       "you can only change requires_grad flags of leaf variables. If you want "
                       "to use a computed variable in a subgraph that doesn't require "
                       "differentiation use var_no_grad = var.detach().");
    self->requires_grad = (char)v;
    return 0;
}

static PyObject *t_get_grad(SoTensor *self, void *c)
{
    (void)c;
    if (!self->grad) Py_RETURN_NONE;
    return Py_NewRef(self->grad);
}

static int t_set_grad(SoTensor *self, PyObject *value, void *c)
{
    so_state *st = state_of((PyObject *)self);
    (void)c;
    if (!st) return -1;
    if (value && value != Py_None) {
        SoTensor *g;
        if (!so_tensor_check(st, value))
            return so_fail(PyExc_TypeError,
                           "assigned grad expected to be a Tensor or None but got %s",
                           Py_TYPE(value)->tp_name);
        g = (SoTensor *)value;
        if (g == self)
            return so_fail(PyExc_RuntimeError, "can't assign Variable as its own grad");
        if (g->dtype != self->dtype)
            return so_fail(PyExc_RuntimeError,
                           "assigned grad has data of a different type");
        if (!so_device_eq(g->storage->device, self->storage->device))
            return so_fail(PyExc_RuntimeError,
                           "assigned grad has data located on a different device");
        if (g->ndim != self->ndim ||
            memcmp(g->shape, self->shape, sizeof(int64_t) * (size_t)self->ndim) != 0) {
            char a[256], b[256];
            return so_fail(PyExc_RuntimeError,
                           "assigned grad has data of a different size: grad %s, tensor %s",
                           so_shape_str(g->ndim, g->shape, a, sizeof a),
                           so_shape_str(self->ndim, self->shape, b, sizeof b));
        }
    }
    Py_XSETREF(self->grad, (value && value != Py_None) ? Py_NewRef(value) : NULL);
    return 0;
}

static PyObject *t_get_grad_fn(SoTensor *self, void *c)
{
    (void)c;
    if (!self->grad_fn) Py_RETURN_NONE;
    return Py_NewRef(self->grad_fn);
}

static int t_set_grad_fn(SoTensor *self, PyObject *value, void *c)
{
    (void)c;
    Py_XSETREF(self->grad_fn, (value && value != Py_None) ? Py_NewRef(value) : NULL);
    return 0;
}

/* _grad_acc: where autograd keeps a leaf's weak reference to its AccumulateGrad node (torch
 * keeps it in the tensor's autograd meta): a slot, not __dict__, so it is never pickled or
 * copied with the tensor and costs no dictionary work per step. */
static PyObject *t_get_grad_acc(SoTensor *self, void *c)
{
    (void)c;
    if (!self->grad_acc) Py_RETURN_NONE;
    return Py_NewRef(self->grad_acc);
}

static int t_set_grad_acc(SoTensor *self, PyObject *value, void *c)
{
    (void)c;
    Py_XSETREF(self->grad_acc, (value && value != Py_None) ? Py_NewRef(value) : NULL);
    return 0;
}

static PyGetSetDef tensor_getset[] = {
    {"dtype", (getter)t_get_dtype, NULL, "element type", NULL},
    {"device", (getter)t_get_device, NULL, "device holding the data", NULL},
    {"ndim", (getter)t_get_ndim, NULL, "number of dimensions", NULL},
    {"is_cuda", (getter)t_get_is_cuda, NULL, NULL, NULL},
    {"is_meta", (getter)t_get_is_meta, NULL, NULL, NULL},
    {"_shape", (getter)t_get_shape, NULL, "shape as a plain tuple", NULL},
    {"_version", (getter)t_get_version, NULL, "in-place write counter (shared by views)", NULL},
    {"_storage", (getter)t_get_storage, NULL, NULL, NULL},
    {"requires_grad", (getter)t_get_requires_grad, (setter)t_set_requires_grad, NULL, NULL},
    {"grad", (getter)t_get_grad, (setter)t_set_grad, NULL, NULL},
    {"grad_fn", (getter)t_get_grad_fn, (setter)t_set_grad_fn, NULL, NULL},
    {"_grad_acc", (getter)t_get_grad_acc, (setter)t_set_grad_acc, NULL, NULL},
    {NULL}};

/* ---- simple methods ---- */

static PyObject *t_dim(SoTensor *self, PyObject *unused)
{
    (void)unused;
    return PyLong_FromLong(self->ndim);
}

static PyObject *t_numel(SoTensor *self, PyObject *unused)
{
    (void)unused;
    return PyLong_FromLongLong(so_tensor_numel(self));
}

static PyObject *t_stride(SoTensor *self, PyObject *args)
{
    PyObject *dim_obj = Py_None;
    if (!PyArg_ParseTuple(args, "|O:stride", &dim_obj)) return NULL;
    if (dim_obj == Py_None) {
        PyObject *tup = PyTuple_New(self->ndim);
        if (!tup) return NULL;
        for (int i = 0; i < self->ndim; i++) {
            PyObject *v = PyLong_FromLongLong(self->strides[i]);
            if (!v) {
                Py_DECREF(tup);
                return NULL;
            }
            PyTuple_SET_ITEM(tup, i, v);
        }
        return tup;
    } else {
        int64_t d;
        long long v = PyLong_AsLongLong(dim_obj);
        if (v == -1 && PyErr_Occurred()) return NULL;
        if (so_wrap_dim(v, self->ndim, &d) < 0) return NULL;
        return PyLong_FromLongLong(self->ndim ? self->strides[d] : 1);
    }
}

static PyObject *t_size_at(SoTensor *self, PyObject *dim_obj)
{
    int64_t d;
    long long v = PyLong_AsLongLong(dim_obj);
    if (v == -1 && PyErr_Occurred()) return NULL;
    if (self->ndim == 0)
        return PyErr_Format(PyExc_IndexError,
                            "dimension specified as %lld but tensor has no dimensions", v);
    if (so_wrap_dim(v, self->ndim, &d) < 0) return NULL;
    return PyLong_FromLongLong(self->shape[d]);
}

static PyObject *t_data_ptr(SoTensor *self, PyObject *unused)
{
    (void)unused;
    return PyLong_FromVoidPtr(so_tensor_data(self));
}

static PyObject *t_is_contiguous(SoTensor *self, PyObject *args, PyObject *kwds)
{
    (void)args;
    (void)kwds;
    return PyBool_FromLong(so_tensor_is_contiguous(self));
}

static PyObject *t_storage_offset(SoTensor *self, PyObject *unused)
{
    (void)unused;
    return PyLong_FromLongLong(self->offset);
}

static PyObject *t_element_size(SoTensor *self, PyObject *unused)
{
    (void)unused;
    return PyLong_FromLong(so_dtype_itemsize(self->dtype));
}

static PyObject *t_bump_version(SoTensor *self, PyObject *unused)
{
    (void)unused;
    so_tensor_bump_version(self);
    Py_RETURN_NONE;
}

/* An alias: same storage and geometry, no autograd history (detach() without Python). */
static PyObject *t_alias(SoTensor *self, PyObject *unused)
{
    so_state *st = state_of((PyObject *)self);
    (void)unused;
    if (!st) return NULL;
    return (PyObject *)so_tensor_from_storage(st, self->storage, self->offset, self->ndim,
                                              self->shape, self->strides, self->dtype);
}

/* Contents of a contiguous CPU tensor as bytes (pickling). */
static PyObject *t_raw_bytes(SoTensor *self, PyObject *unused)
{
    (void)unused;
    if (so_tensor_device(self).type == SO_META) return (void)so_meta_copy_out(), NULL;
    if (so_tensor_device(self).type != SO_CPU || !so_tensor_is_contiguous(self))
        return PyErr_Format(PyExc_RuntimeError, "_raw_bytes needs a contiguous CPU tensor");
    return PyBytes_FromStringAndSize(so_tensor_data(self),
                                     (Py_ssize_t)(so_tensor_numel(self) * so_dtype_itemsize(self->dtype)));
}

static Py_ssize_t t_len(SoTensor *self)
{
    if (self->ndim == 0)
        return so_fail(PyExc_TypeError, "len() of a 0-d tensor");
    return (Py_ssize_t)self->shape[0];
}

#include "views.h"
#include "interop.h"

static PyMethodDef tensor_base_methods[] = {
    {"dim", (PyCFunction)t_dim, METH_NOARGS, "number of dimensions"},
    {"numel", (PyCFunction)t_numel, METH_NOARGS, "number of elements"},
    {"stride", (PyCFunction)t_stride, METH_VARARGS, "strides in elements, or one of them"},
    {"_size_at", (PyCFunction)t_size_at, METH_O, "size of one dimension"},
    {"data_ptr", (PyCFunction)t_data_ptr, METH_NOARGS, "address of the first element"},
    {"is_contiguous", (PyCFunction)(void (*)(void))t_is_contiguous, METH_VARARGS | METH_KEYWORDS,
     NULL},
    {"storage_offset", (PyCFunction)t_storage_offset, METH_NOARGS, NULL},
    {"element_size", (PyCFunction)t_element_size, METH_NOARGS, NULL},
    {"_bump_version", (PyCFunction)t_bump_version, METH_NOARGS, NULL},
    {"_alias", (PyCFunction)t_alias, METH_NOARGS, NULL},
    {"_raw_bytes", (PyCFunction)t_raw_bytes, METH_NOARGS, NULL},
    SO_VIEW_METHOD_DEFS
    SO_INTEROP_METHOD_DEFS
    {NULL}};

static PyMemberDef tensor_members[] = {
    {"__weaklistoffset__", T_PYSSIZET, offsetof(SoTensor, weakreflist), READONLY, NULL},
    {NULL}};

/* ------------------------------------------------------------------ module functions */

/* _C._set_tensor_class(cls): the Python subclass that every new tensor is created as. */
static PyObject *set_tensor_class(PyObject *m, PyObject *cls)
{
    so_state *st = so_state_from_module(m);
    if (!PyType_Check(cls) || !PyType_IsSubtype((PyTypeObject *)cls, st->tensor.tensor_type))
        return PyErr_Format(PyExc_TypeError, "_set_tensor_class expects a subclass of TensorBase");
    Py_XSETREF(st->tensor.tensor_class, (PyTypeObject *)Py_NewRef(cls));
    Py_RETURN_NONE;
}

/* _C._set_complex_ops(fn): where the elementwise bindings send complex operands. */
static PyObject *set_complex_ops(PyObject *m, PyObject *fn)
{
    so_state *st = so_state_from_module(m);
    if (!PyCallable_Check(fn))
        return PyErr_Format(PyExc_TypeError, "_set_complex_ops expects a callable");
    Py_XSETREF(st->tensor.complex_ops, Py_NewRef(fn));
    Py_RETURN_NONE;
}

/* _C._make_subclass(cls, tensor, requires_grad): an alias of `tensor` whose type is `cls`
 * (how nn.Parameter is made, as torch's Tensor._make_subclass). */
static PyObject *make_subclass(PyObject *m, PyObject *args)
{
    so_state *st = so_state_from_module(m);
    PyObject *cls, *src;
    int requires_grad = 0;
    SoTensor *t, *s;
    if (!PyArg_ParseTuple(args, "OO|p:_make_subclass", &cls, &src, &requires_grad)) return NULL;
    if (!PyType_Check(cls) || !PyType_IsSubtype((PyTypeObject *)cls, st->tensor.tensor_type))
        return PyErr_Format(PyExc_TypeError, "cls must be a subclass of TensorBase");
    if (!so_tensor_check(st, src))
        return PyErr_Format(PyExc_TypeError,
                            "data must be a Tensor, got %s", Py_TYPE(src)->tp_name);
    s = (SoTensor *)src;
    if (requires_grad && !so_dtype_is_float(s->dtype))
        return PyErr_Format(PyExc_RuntimeError,
                            "Only Tensors of floating point dtype can require gradients");
    t = (SoTensor *)((PyTypeObject *)cls)->tp_alloc((PyTypeObject *)cls, 0);
    if (!t) return NULL;
    t->storage = (SoStorage *)Py_NewRef((PyObject *)s->storage);
    t->offset = s->offset;
    t->ndim = s->ndim;
    t->dtype = s->dtype;
    memcpy(t->shape, s->shape, sizeof t->shape);
    memcpy(t->strides, s->strides, sizeof t->strides);
    t->requires_grad = (char)requires_grad;
    return (PyObject *)t;
}

/* _C.empty(shape, dtype=None, device=None) */
static PyObject *py_empty(PyObject *m, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"size", "dtype", "device", NULL};
    so_state *st = so_state_from_module(m);
    PyObject *size_obj, *dtype_obj = Py_None, *device_obj = Py_None;
    int64_t shape[SO_MAX_DIMS];
    int ndim, dtype;
    so_device dev;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|OO:empty", kwlist, &size_obj, &dtype_obj,
                                     &device_obj))
        return NULL;
    if (so_parse_shape(size_obj, "size", &ndim, shape) < 0) return NULL;
    if (so_parse_dtype(st, dtype_obj, SO_FLOAT32, "dtype", &dtype) < 0) return NULL;
    if (so_parse_device(st, device_obj, "device", &dev) < 0) return NULL;
    return (PyObject *)so_tensor_empty(st, ndim, shape, dtype, dev);
}

/* _C._from_bytes(data, dtype, shape): a new CPU tensor holding a copy of `data`. */
static PyObject *py_from_bytes(PyObject *m, PyObject *args)
{
    so_state *st = so_state_from_module(m);
    Py_buffer buf;
    PyObject *dtype_obj, *shape_obj;
    int64_t shape[SO_MAX_DIMS];
    int ndim, dtype;
    so_device cpu = {SO_CPU, 0};
    SoTensor *t = NULL;
    int64_t numel;
    if (!PyArg_ParseTuple(args, "y*OO:_from_bytes", &buf, &dtype_obj, &shape_obj)) return NULL;
    if (so_parse_dtype(st, dtype_obj, SO_FLOAT32, "dtype", &dtype) < 0) goto done;
    if (so_parse_shape(shape_obj, "shape", &ndim, shape) < 0) goto done;
    t = so_tensor_empty(st, ndim, shape, dtype, cpu);
    if (!t) goto done;
    numel = so_tensor_numel(t);
    if ((int64_t)buf.len != numel * so_dtype_itemsize(dtype)) {
        Py_CLEAR(t);
        SO_FAIL(done, PyExc_ValueError,
                "_from_bytes: %zd bytes do not fill a tensor of %lld elements", buf.len,
                (long long)numel);
    }
    if (buf.len) memcpy(so_tensor_data(t), buf.buf, (size_t)buf.len);
done:
    PyBuffer_Release(&buf);
    return (PyObject *)t;
}

/* _check_sizes(size): refuses a size no tensor may have (so_check_sizes), for callers that
 * never allocate a tensor of that size themselves (the sharded factories' global size). */
static PyObject *py_check_sizes(PyObject *m, PyObject *size)
{
    int nd;
    int64_t shape[SO_MAX_DIMS];
    (void)m;
    if (so_parse_int_seq(size, "size", &nd, shape) < 0 || so_check_sizes(nd, shape) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyMethodDef tensor_module_functions[] = {
    {"_from_bytes", py_from_bytes, METH_VARARGS, NULL},
    {"_view_as_real", so_view_as_real, METH_O, "a complex tensor's (re, im) pairs as a real view"},
    {"_view_as_complex", so_view_as_complex, METH_O, "a (..., 2) real tensor as a complex view"},
    {"_check_sizes", py_check_sizes, METH_O, NULL},
    {"_set_tensor_class", (PyCFunction)set_tensor_class, METH_O, NULL},
    {"_make_subclass", (PyCFunction)make_subclass, METH_VARARGS, NULL},
    {"_set_complex_ops", (PyCFunction)set_complex_ops, METH_O, NULL},
    {"empty", (PyCFunction)(void (*)(void))py_empty, METH_VARARGS | METH_KEYWORDS,
     "empty(size, dtype=None, device=None): uninitialised contiguous tensor"},
    {NULL}};

/* ------------------------------------------------------------------ registration */

int so_register_tensor(PyObject *m, so_state *st)
{
    PyType_Slot slots[] = {
        {Py_tp_new, tensor_new},
        {Py_tp_dealloc, tensor_dealloc},
        {Py_tp_traverse, tensor_traverse},
        {Py_tp_clear, tensor_clear},
        {Py_tp_getset, tensor_getset},
        {Py_tp_methods, tensor_base_methods},
        {Py_tp_members, tensor_members},
        {Py_mp_length, t_len},
        {Py_mp_subscript, so_tensor_getitem},
        {Py_mp_ass_subscript, so_tensor_setitem},
        {Py_tp_doc, "C base of shardopt.Tensor: storage, geometry and autograd slots."},
        {0, NULL}};
    PyType_Spec spec = {.name = "shardopt._C.TensorBase",
                        .basicsize = sizeof(SoTensor),
                        .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
                        .slots = slots};
    st->tensor.tensor_type = (PyTypeObject *)PyType_FromModuleAndSpec(m, &spec, NULL);
    if (!st->tensor.tensor_type) return -1;
    if (PyModule_AddType(m, st->tensor.tensor_type) < 0) return -1;
    return PyModule_AddFunctions(m, tensor_module_functions);
}
