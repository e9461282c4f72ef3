/* join.c — cat and stack.
 *
 * No kernel of their own: the output is allocated once and each input is so_copy_'d into
 * its narrowed slice (cat) or selected slot (stack), so strided inputs, dtype promotion and
 * both devices come from the copy kernels.  Checks and messages follow torch, including the
 * legacy rule that 1-D empty tensors (shape (0,)) are skipped by cat whatever their rank.
 */
#include "../tensor/copy.h"
#include <stdio.h>

/* torch.promote_types over shardopt's dtypes: bool < integers < floats < complex; within a
 * kind the wider wins, and float16 with bfloat16 meets in float32; complex with float64 or
 * complex128 anywhere is complex128.  (Kept local: cat/stack only
 * promote tensors with tensors, so no scalar/0-d categories are involved.) */
static int join_promote(int a, int b)
{
    if (so_dtype_is_complex(a) || so_dtype_is_complex(b))
        return (a == SO_FLOAT64 || b == SO_FLOAT64 || a == SO_COMPLEX128 || b == SO_COMPLEX128)
                   ? SO_COMPLEX128 : SO_COMPLEX64;
    int ka = so_dtype_is_float(a) ? 2 : (a == SO_BOOL ? 0 : 1);
    int kb = so_dtype_is_float(b) ? 2 : (b == SO_BOOL ? 0 : 1);
    if (a == b) return a;
    if (ka != kb) return ka > kb ? a : b;
    if (ka == 1) return SO_INT64;
    if (a == SO_FLOAT64 || b == SO_FLOAT64) return SO_FLOAT64;
    return SO_FLOAT32; /* float32 with a half type, or float16 with bfloat16 */
}

static void device_str(so_device d, char *buf, size_t n)
{
    if (d.type == SO_CUDA) snprintf(buf, n, "cuda:%d", (int)d.index);
    else snprintf(buf, n, "%s", so_device_type_name(d.type));
}

/* Validate the list: tensors, one device.  Returns a new PySequence_Fast or NULL. */
static PyObject *tensor_list(so_state *st, PyObject *obj, const char *fname, int *dtype_out)
{
    PyObject *seq;
    Py_ssize_t n;
    so_device dev0;
    if (so_tensor_check(st, obj) || !PySequence_Check(obj))
        return PyErr_Format(PyExc_TypeError,
                            "%s(): argument 'tensors' (position 1) must be tuple of Tensors, not "
                            "%s", fname, Py_TYPE(obj)->tp_name);
    seq = PySequence_Fast(obj, "tensors must be a sequence");
    if (!seq) return NULL;
    n = PySequence_Fast_GET_SIZE(seq);
    if (n == 0) {
        if (strcmp(fname, "cat") == 0)
            SO_FAIL(done, PyExc_RuntimeError, "torch.cat(): expected a non-empty list of Tensors");
        SO_FAIL(done, PyExc_RuntimeError, "stack expects a non-empty TensorList");
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(seq, i);
        SoTensor *t;
        SO_CHECK(so_tensor_check(st, item), done, PyExc_TypeError,
                 "expected Tensor as element %zd in argument 0, but got %s", i,
                 Py_TYPE(item)->tp_name);
        t = (SoTensor *)item;
        if (i == 0) {
            dev0 = so_tensor_device(t);
            *dtype_out = t->dtype;
        } else if (!so_device_eq(dev0, so_tensor_device(t))) {
            char s1[32], s2[32];
            device_str(dev0, s1, sizeof s1);
            device_str(so_tensor_device(t), s2, sizeof s2);
            SO_FAIL(done, PyExc_RuntimeError, "Expected all tensors to be on the same device, "
                    "but found at least two devices, %s and %s!", s1, s2);
        } else {
            *dtype_out = join_promote(*dtype_out, t->dtype);
        }
    }
    return seq;
done: /* failure only */
    Py_DECREF(seq);
    return NULL;
}

static int get_dim(PyObject *obj, int64_t *out)
{
    if (obj == NULL) {
        *out = 0;
        return 0;
    }
    if (!PyLong_Check(obj) || PyBool_Check(obj))
        return so_fail(PyExc_TypeError, "dim must be an int, got %s", Py_TYPE(obj)->tp_name);
    *out = PyLong_AsLongLong(obj);
    return (*out == -1 && PyErr_Occurred()) ? -1 : 0;
}

static int is_legacy_empty(const SoTensor *t) { return t->ndim == 1 && t->shape[0] == 0; }

/* Copy src into out's slice [start, start + src.shape[dim]) along dim. */
static int copy_into_slice(so_state *st, SoTensor *out, int dim, int64_t start, SoTensor *src)
{
    int64_t shape[SO_MAX_DIMS];
    SoTensor *view;
    int rc;
    memcpy(shape, out->shape, sizeof(int64_t) * (size_t)out->ndim);
    shape[dim] = src->shape[dim];
    view = so_tensor_as_strided(st, out, out->ndim, shape, out->strides,
                                out->offset + start * out->strides[dim]);
    if (!view) return -1;
    rc = so_copy_(st, view, src);
    Py_DECREF(view);
    return rc;
}

static PyObject *py_cat(PyObject *m, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"tensors", "dim", NULL};
    so_state *st = so_state_from_module(m);
    PyObject *obj, *dim_obj = NULL, *seq;
    SoTensor *ref = NULL, *out = NULL;
    int64_t dim, w, shape[SO_MAX_DIMS], start = 0;
    int dtype;
    Py_ssize_t n;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|O:cat", kwlist, &obj, &dim_obj)) return NULL;
    if (get_dim(dim_obj, &dim) < 0) return NULL;
    seq = tensor_list(st, obj, "cat", &dtype);
    if (!seq) return NULL;
    n = PySequence_Fast_GET_SIZE(seq);
    for (Py_ssize_t i = 0; i < n; i++) {
        SoTensor *t = (SoTensor *)PySequence_Fast_GET_ITEM(seq, i);
        SO_CHECK(t->ndim != 0, done, PyExc_RuntimeError,
                 "zero-dimensional tensor (at position %zd) cannot be concatenated", i);
        if (!ref && !is_legacy_empty(t)) ref = t;
    }
    if (!ref) { /* only legacy empties: the result is one too */
        SoTensor *t0 = (SoTensor *)PySequence_Fast_GET_ITEM(seq, 0);
        if (so_wrap_dim(dim, 1, &w) < 0) goto done;
        out = so_tensor_empty(st, 1, t0->shape, dtype, so_tensor_device(t0));
        Py_DECREF(seq);
        return (PyObject *)out;
    }
    if (so_wrap_dim(dim, ref->ndim, &w) < 0) goto done;
    memcpy(shape, ref->shape, sizeof(int64_t) * (size_t)ref->ndim);
    shape[w] = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        SoTensor *t = (SoTensor *)PySequence_Fast_GET_ITEM(seq, i);
        if (is_legacy_empty(t)) continue;
        SO_CHECK(t->ndim == ref->ndim, done, PyExc_RuntimeError,
                 "Tensors must have same number of dimensions: got %d and %d", ref->ndim,
                 t->ndim);
        for (int d = 0; d < t->ndim; d++) {
            if (d != w && t->shape[d] != ref->shape[d])
                SO_FAIL(done, PyExc_RuntimeError, "Sizes of tensors must match except in dimension "
                        "%lld. Expected size %lld but got size %lld for tensor number %zd in "
                        "the list.", (long long)w, (long long)ref->shape[d],
                        (long long)t->shape[d], i);
        }
        shape[w] += t->shape[w];
    }
    out = so_tensor_empty(st, ref->ndim, shape, dtype, so_tensor_device(ref));
    if (!out) goto done;
    for (Py_ssize_t i = 0; i < n; i++) {
        SoTensor *t = (SoTensor *)PySequence_Fast_GET_ITEM(seq, i);
        if (is_legacy_empty(t)) continue;
        if (t->shape[w] > 0 && copy_into_slice(st, out, (int)w, start, t) < 0) goto done;
        start += t->shape[w];
    }
    Py_DECREF(seq);
    return (PyObject *)out;
done:
    Py_XDECREF(out);
    Py_DECREF(seq);
    return NULL;
}

static PyObject *py_stack(PyObject *m, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"tensors", "dim", NULL};
    so_state *st = so_state_from_module(m);
    PyObject *obj, *dim_obj = NULL, *seq;
    SoTensor *t0, *out = NULL;
    int64_t dim, w, shape[SO_MAX_DIMS], vshape[SO_MAX_DIMS], vstrides[SO_MAX_DIMS];
    int dtype, nd;
    Py_ssize_t n;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|O:stack", kwlist, &obj, &dim_obj)) return NULL;
    if (get_dim(dim_obj, &dim) < 0) return NULL;
    seq = tensor_list(st, obj, "stack", &dtype);
    if (!seq) return NULL;
    n = PySequence_Fast_GET_SIZE(seq);
    t0 = (SoTensor *)PySequence_Fast_GET_ITEM(seq, 0);
    nd = t0->ndim + 1;
    SO_CHECK(nd <= SO_MAX_DIMS, done, PyExc_ValueError,
             "stack: at most %d dimensions are supported", SO_MAX_DIMS);
    if (so_wrap_dim(dim, nd, &w) < 0) goto done;
    for (Py_ssize_t i = 1; i < n; i++) {
        SoTensor *t = (SoTensor *)PySequence_Fast_GET_ITEM(seq, i);
        int same = t->ndim == t0->ndim;
        for (int d = 0; same && d < t->ndim; d++) same = t->shape[d] == t0->shape[d];
        if (!same) {
            char a[256], b[256];
            SO_FAIL(done, PyExc_RuntimeError, "stack expects each tensor to be equal size, but got "
                    "%s at entry 0 and %s at entry %zd",
                    so_shape_str(t0->ndim, t0->shape, a, sizeof a),
                    so_shape_str(t->ndim, t->shape, b, sizeof b), i);
        }
    }
    for (int d = 0, s = 0; d < nd; d++) shape[d] = d == w ? (int64_t)n : t0->shape[s++];
    out = so_tensor_empty(st, nd, shape, dtype, so_tensor_device(t0));
    if (!out) goto done;
    /* slot i is out.select(w, i): drop dim w from the geometry */
    for (int d = 0, s = 0; d < nd; d++) {
        if (d == w) continue;
        vshape[s] = out->shape[d];
        vstrides[s++] = out->strides[d];
    }
    if (so_tensor_numel(out) > 0) {
        for (Py_ssize_t i = 0; i < n; i++) {
            SoTensor *t = (SoTensor *)PySequence_Fast_GET_ITEM(seq, i);
            SoTensor *slot = so_tensor_as_strided(st, out, nd - 1, vshape, vstrides,
                                                  out->offset + i * out->strides[w]);
            int rc;
            if (!slot) goto done;
            rc = so_copy_(st, slot, t);
            Py_DECREF(slot);
            if (rc < 0) goto done;
        }
    }
    Py_DECREF(seq);
    return (PyObject *)out;
done:
    Py_XDECREF(out);
    Py_DECREF(seq);
    return NULL;
}

#define KW (METH_VARARGS | METH_KEYWORDS)
static PyMethodDef join_functions[] = {
    {"_cat", (PyCFunction)(void (*)(void))py_cat, KW, "_cat(tensors, dim=0)"},
    {"_stack", (PyCFunction)(void (*)(void))py_stack, KW, "_stack(tensors, dim=0)"},
    {NULL}};
#undef KW

int so_register_join(PyObject *m, so_state *st)
{
    (void)st;
    return PyModule_AddFunctions(m, join_functions);
}
