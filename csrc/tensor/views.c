/* views.c — TensorBase methods that re-describe the same storage (view, narrow, transpose,
 * indexing...) plus the copy-based ones that sit beside them (reshape fallback, clone,
 * contiguous, copy_, fill_).  Error messages follow torch's wording.
 */
#include "views.h"
#include "copy.h"
#include "../core/errors.h"
#include <stdio.h>

static so_state *state_of(PyObject *self) { return so_state_from_type(Py_TYPE(self)); }

static PyObject *make_view(PyObject *self, int ndim, const int64_t *shape, const int64_t *strides,
                           int64_t offset)
{
    so_state *st = state_of(self);
    if (!st) return NULL;
    return (PyObject *)so_tensor_as_strided(st, (SoTensor *)self, ndim, shape, strides, offset);
}

static int get_int64(PyObject *obj, const char *argname, int64_t *out)
{
    long long v;
    if (PyBool_Check(obj) || !PyIndex_Check(obj))
        return so_fail(PyExc_TypeError,
                       "%s must be an int, got %s", argname, Py_TYPE(obj)->tp_name);
    v = PyLong_AsLongLong(obj);
    if (v == -1 && PyErr_Occurred()) return -1;
    *out = v;
    return 0;
}

/* Resolve one -1 in `shape` against numel; torch's message on mismatch. */
static int infer_size(int ndim, int64_t *shape, int64_t numel)
{
    int64_t known = 1;
    int infer = -1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] == -1) {
            if (infer >= 0)
                return so_fail(PyExc_RuntimeError, "only one dimension can be inferred");
            infer = i;
        } else if (shape[i] < 0) {
            return so_fail(PyExc_RuntimeError, "invalid shape dimension %lld", (long long)shape[i]);
        } else {
            known *= shape[i];
        }
    }
    if (infer >= 0 && known != 0 && numel % known == 0) {
        shape[infer] = numel / known;
        return 0;
    }
    if (infer < 0 && known == numel) return 0;
    {
        char buf[256];
        int64_t tmp[SO_MAX_DIMS];
        memcpy(tmp, shape, sizeof(int64_t) * (size_t)ndim);
        return so_fail(PyExc_RuntimeError, "shape '%s' is invalid for input of size %lld",
                       so_shape_str(ndim, tmp, buf, sizeof buf), (long long)numel);
    }
}

/* torch's computeStride: strides for viewing (oldshape, oldstride) as newshape without a
 * copy, or 0 if impossible. */
static int compute_view_strides(const SoTensor *t, int nd, const int64_t *newshape,
                                int64_t *newstride)
{
    int64_t numel = so_tensor_numel(t);
    if (t->ndim == 0) {
        for (int i = 0; i < nd; i++) newstride[i] = 1;
        return 1;
    }
    if (numel == 0) {
        int64_t s = 1;
        for (int i = nd - 1; i >= 0; i--) {
            newstride[i] = s;
            s *= newshape[i] > 1 ? newshape[i] : 1;
        }
        return 1;
    }
    {
        int view_d = nd - 1;
        int64_t chunk_base_stride = t->strides[t->ndim - 1];
        int64_t tensor_numel = 1, view_numel = 1;
        for (int tensor_d = t->ndim - 1; tensor_d >= 0; tensor_d--) {
            tensor_numel *= t->shape[tensor_d];
            if (tensor_d == 0 || (t->shape[tensor_d - 1] != 1 &&
                                  t->strides[tensor_d - 1] != tensor_numel * chunk_base_stride)) {
                while (view_d >= 0 && (view_numel < tensor_numel || newshape[view_d] == 1)) {
                    newstride[view_d] = view_numel * chunk_base_stride;
                    view_numel *= newshape[view_d];
                    view_d--;
                }
                if (view_numel != tensor_numel) return 0;
                if (tensor_d > 0) {
                    chunk_base_stride = t->strides[tensor_d - 1];
                    tensor_numel = 1;
                    view_numel = 1;
                }
            }
        }
        return view_d == -1;
    }
}

/* torch-style varargs: f(2, 3), f((2, 3)) and f([2, 3]) are the same. */
static int parse_target_shape(PyObject *self, PyObject *args, int *nd, int64_t *shape)
{
    PyObject *obj = args;
    (void)self;
    if (PyTuple_GET_SIZE(args) == 1 && !PyLong_Check(PyTuple_GET_ITEM(args, 0)))
        obj = PyTuple_GET_ITEM(args, 0);
    return so_parse_int_seq(obj, "shape", nd, shape);
}

PyObject *so_t_view(PyObject *self, PyObject *args)
{
    SoTensor *t = (SoTensor *)self;
    int64_t shape[SO_MAX_DIMS], strides[SO_MAX_DIMS];
    int nd;
    if (parse_target_shape(self, args, &nd, shape) < 0) return NULL;
    if (infer_size(nd, shape, so_tensor_numel(t)) < 0) return NULL;
    if (!compute_view_strides(t, nd, shape, strides))
        return PyErr_Format(PyExc_RuntimeError,
                            "view size is not compatible with input tensor's size and stride (at "
                            "least one dimension spans across two contiguous subspaces). Use "
                            ".reshape(...) instead.");
    return make_view(self, nd, shape, strides, t->offset);
}

PyObject *so_t_reshape(PyObject *self, PyObject *args)
{
    SoTensor *t = (SoTensor *)self, *c;
    so_state *st = state_of(self);
    int64_t shape[SO_MAX_DIMS], strides[SO_MAX_DIMS];
    int nd;
    PyObject *res;
    if (!st) return NULL;
    if (parse_target_shape(self, args, &nd, shape) < 0) return NULL;
    if (infer_size(nd, shape, so_tensor_numel(t)) < 0) return NULL;
    if (compute_view_strides(t, nd, shape, strides))
        return make_view(self, nd, shape, strides, t->offset);
    c = so_tensor_clone(st, t);
    if (!c) return NULL;
    compute_view_strides(c, nd, shape, strides);
    res = (PyObject *)so_tensor_as_strided(st, c, nd, shape, strides, c->offset);
    Py_DECREF(c);
    return res;
}

PyObject *so_t_as_strided(PyObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"size", "stride", "storage_offset", NULL};
    SoTensor *t = (SoTensor *)self;
    PyObject *size_obj, *stride_obj, *off_obj = Py_None;
    int64_t shape[SO_MAX_DIMS], strides[SO_MAX_DIMS], offset = t->offset, maxoff;
    int nd, nds;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO|O:as_strided", kwlist, &size_obj,
                                     &stride_obj, &off_obj))
        return NULL;
    if (so_parse_shape(size_obj, "size", &nd, shape) < 0) return NULL;
    if (so_parse_int_seq(stride_obj, "stride", &nds, strides) < 0) return NULL;
    if (nds != nd)
        return PyErr_Format(PyExc_RuntimeError, "mismatch in length of strides and shape");
    if (off_obj != Py_None && get_int64(off_obj, "storage_offset", &offset) < 0) return NULL;
    if (offset < 0)
        return PyErr_Format(PyExc_RuntimeError, "Tensor: invalid storage offset");
    /* the whole view must lie inside the storage */
    maxoff = offset;
    for (int i = 0; i < nd; i++) {
        if (strides[i] < 0)
            return PyErr_Format(PyExc_RuntimeError,
                                "as_strided: Negative strides are not supported");
        if (shape[i] == 0) { maxoff = -1; break; }
        maxoff += (shape[i] - 1) * strides[i];
    }
    if (maxoff >= 0 && (maxoff + 1) * so_dtype_itemsize(t->dtype) > t->storage->nbytes)
        return PyErr_Format(PyExc_RuntimeError,
                            "setStorage: sizes and strides are out of bounds for a storage of "
                            "%lld bytes", (long long)t->storage->nbytes);
    return make_view(self, nd, shape, strides, offset);
}

static int wrap_dim_arg(PyObject *obj, int ndim, int64_t *out)
{
    int64_t d;
    if (get_int64(obj, "dim", &d) < 0) return -1;
    return so_wrap_dim(d, ndim, out);
}

PyObject *so_t_narrow(PyObject *self, PyObject *args)
{
    SoTensor *t = (SoTensor *)self;
    PyObject *dobj, *sobj, *lobj;
    int64_t dim, start, length, shape[SO_MAX_DIMS];
    if (!PyArg_ParseTuple(args, "OOO:narrow", &dobj, &sobj, &lobj)) return NULL;
    if (t->ndim == 0)
        return PyErr_Format(PyExc_RuntimeError, "narrow() cannot be applied to a 0-dim tensor.");
    if (wrap_dim_arg(dobj, t->ndim, &dim) < 0) return NULL;
    if (get_int64(sobj, "start", &start) < 0 || get_int64(lobj, "length", &length) < 0)
        return NULL;
    if (start < 0) start += t->shape[dim];
    if (start < 0 || start > t->shape[dim])
        return PyErr_Format(PyExc_IndexError,
                            "start out of range (expected to be in range of [%lld, %lld], but got "
                            "%lld)",
                            (long long)-t->shape[dim], (long long)t->shape[dim], (long long)start);
    if (length < 0 || start + length > t->shape[dim])
        return PyErr_Format(PyExc_RuntimeError,
                            "start (%lld) + length (%lld) exceeds dimension size (%lld).",
                            (long long)start, (long long)length, (long long)t->shape[dim]);
    memcpy(shape, t->shape, sizeof shape);
    shape[dim] = length;
    return make_view(self, t->ndim, shape, t->strides, t->offset + start * t->strides[dim]);
}

PyObject *so_t_select(PyObject *self, PyObject *args)
{
    SoTensor *t = (SoTensor *)self;
    PyObject *dobj, *iobj;
    int64_t dim, index, shape[SO_MAX_DIMS], strides[SO_MAX_DIMS];
    int nd = 0;
    if (!PyArg_ParseTuple(args, "OO:select", &dobj, &iobj)) return NULL;
    if (t->ndim == 0)
        return PyErr_Format(PyExc_IndexError, "select() cannot be applied to a 0-dim tensor.");
    if (wrap_dim_arg(dobj, t->ndim, &dim) < 0 || get_int64(iobj, "index", &index) < 0) return NULL;
    if (index < -t->shape[dim] || index >= t->shape[dim])
        return PyErr_Format(PyExc_IndexError,
                            "index %lld is out of bounds for dimension %lld with size %lld",
                            (long long)index, (long long)dim, (long long)t->shape[dim]);
    if (index < 0) index += t->shape[dim];
    for (int i = 0; i < t->ndim; i++) {
        if (i == dim) continue;
        shape[nd] = t->shape[i];
        strides[nd] = t->strides[i];
        nd++;
    }
    return make_view(self, nd, shape, strides, t->offset + index * t->strides[dim]);
}

PyObject *so_t_transpose(PyObject *self, PyObject *args)
{
    SoTensor *t = (SoTensor *)self;
    PyObject *a, *b;
    int64_t d0, d1, shape[SO_MAX_DIMS], strides[SO_MAX_DIMS], tmp;
    if (!PyArg_ParseTuple(args, "OO:transpose", &a, &b)) return NULL;
    if (wrap_dim_arg(a, t->ndim, &d0) < 0 || wrap_dim_arg(b, t->ndim, &d1) < 0) return NULL;
    memcpy(shape, t->shape, sizeof shape);
    memcpy(strides, t->strides, sizeof strides);
    if (t->ndim > 0) {
        tmp = shape[d0]; shape[d0] = shape[d1]; shape[d1] = tmp;
        tmp = strides[d0]; strides[d0] = strides[d1]; strides[d1] = tmp;
    }
    return make_view(self, t->ndim, shape, strides, t->offset);
}

PyObject *so_t_t(PyObject *self, PyObject *unused)
{
    SoTensor *t = (SoTensor *)self;
    (void)unused;
    if (t->ndim > 2)
        return PyErr_Format(PyExc_RuntimeError,
                            "t() expects a tensor with <= 2 dimensions, but self is %dD", t->ndim);
    if (t->ndim < 2) return make_view(self, t->ndim, t->shape, t->strides, t->offset);
    {
        int64_t shape[2] = {t->shape[1], t->shape[0]}, strides[2] = {t->strides[1], t->strides[0]};
        return make_view(self, 2, shape, strides, t->offset);
    }
}

PyObject *so_t_permute(PyObject *self, PyObject *args)
{
    SoTensor *t = (SoTensor *)self;
    int64_t dims[SO_MAX_DIMS], shape[SO_MAX_DIMS], strides[SO_MAX_DIMS];
    int nd, seen[SO_MAX_DIMS] = {0};
    if (parse_target_shape(self, args, &nd, dims) < 0) return NULL;
    if (nd != t->ndim)
        return PyErr_Format(PyExc_RuntimeError,
                            "permute(sparse_coo): number of dimensions in the tensor input does "
                            "not match the length of the desired ordering of dimensions i.e. "
                            "input.dim() = %d is not equal to len(dims) = %d", t->ndim, nd);
    for (int i = 0; i < nd; i++) {
        int64_t d;
        if (so_wrap_dim(dims[i], t->ndim, &d) < 0) return NULL;
        if (seen[d]++)
            return PyErr_Format(PyExc_RuntimeError, "permute(): duplicate dims are not allowed.");
        shape[i] = t->shape[d];
        strides[i] = t->strides[d];
    }
    return make_view(self, nd, shape, strides, t->offset);
}

PyObject *so_t_unsqueeze(PyObject *self, PyObject *arg)
{
    SoTensor *t = (SoTensor *)self;
    int64_t d, shape[SO_MAX_DIMS], strides[SO_MAX_DIMS];
    int nd = 0;
    if (get_int64(arg, "dim", &d) < 0) return NULL;
    if (so_wrap_dim(d, t->ndim + 1, &d) < 0) return NULL;
    if (t->ndim + 1 > SO_MAX_DIMS)
        return PyErr_Format(PyExc_ValueError, "at most %d dimensions are supported", SO_MAX_DIMS);
    for (int i = 0; i <= t->ndim; i++) {
        if (i == d) {
            shape[nd] = 1;
            strides[nd] = i < t->ndim ? t->shape[i] * t->strides[i] : 1;
            nd++;
        }
        if (i < t->ndim) {
            shape[nd] = t->shape[i];
            strides[nd] = t->strides[i];
            nd++;
        }
    }
    return make_view(self, nd, shape, strides, t->offset);
}

PyObject *so_t_squeeze(PyObject *self, PyObject *args)
{
    SoTensor *t = (SoTensor *)self;
    PyObject *dim_obj = Py_None;
    int64_t shape[SO_MAX_DIMS], strides[SO_MAX_DIMS];
    int drop[SO_MAX_DIMS] = {0}, nd = 0;
    if (!PyArg_ParseTuple(args, "|O:squeeze", &dim_obj)) return NULL;
    if (dim_obj == Py_None) {
        for (int i = 0; i < t->ndim; i++) drop[i] = t->shape[i] == 1;
    } else {
        PyObject *seq = PyTuple_Check(dim_obj) || PyList_Check(dim_obj)
                            ? PySequence_Fast(dim_obj, "dim")
                            : Py_BuildValue("(O)", dim_obj);
        if (!seq) return NULL;
        for (Py_ssize_t k = 0; k < PySequence_Fast_GET_SIZE(seq); k++) {
            int64_t d;
            if (wrap_dim_arg(PySequence_Fast_GET_ITEM(seq, k), t->ndim, &d) < 0) {
                Py_DECREF(seq);
                return NULL;
            }
            if (t->ndim > 0 && t->shape[d] == 1) drop[d] = 1;
        }
        Py_DECREF(seq);
    }
    for (int i = 0; i < t->ndim; i++) {
        if (drop[i]) continue;
        shape[nd] = t->shape[i];
        strides[nd] = t->strides[i];
        nd++;
    }
    return make_view(self, nd, shape, strides, t->offset);
}

PyObject *so_t_expand(PyObject *self, PyObject *args)
{
    SoTensor *t = (SoTensor *)self;
    int64_t sizes[SO_MAX_DIMS], shape[SO_MAX_DIMS], strides[SO_MAX_DIMS];
    int nd;
    if (parse_target_shape(self, args, &nd, sizes) < 0) return NULL;
    if (nd < t->ndim)
        return PyErr_Format(PyExc_RuntimeError,
                            "expand(*sizes): the number of sizes provided (%d) must be greater or "
                            "equal to the number of dimensions in the tensor (%d)", nd, t->ndim);
    for (int i = nd - 1; i >= 0; i--) {
        int ti = i - (nd - t->ndim);
        if (ti < 0) {
            if (sizes[i] < 0)
                return PyErr_Format(PyExc_RuntimeError,
                                    "The expanded size of the tensor (%lld) isn't allowed in a "
                                    "leading, non-existing dimension %d", (long long)sizes[i], i);
            shape[i] = sizes[i];
            strides[i] = 0;
        } else if (sizes[i] == -1 || sizes[i] == t->shape[ti]) {
            shape[i] = t->shape[ti];
            strides[i] = t->strides[ti];
        } else if (t->shape[ti] == 1 && sizes[i] >= 0) {
            shape[i] = sizes[i];
            strides[i] = 0;
        } else {
            char a[256], b[256];
            return PyErr_Format(PyExc_RuntimeError,
                                "The expanded size of the tensor (%lld) must match the existing "
                                "size (%lld) at non-singleton dimension %d.  Target sizes: %s.  "
                                "Tensor sizes: %s",
                                (long long)sizes[i], (long long)t->shape[ti], i,
                                so_shape_str(nd, sizes, a, sizeof a),
                                so_shape_str(t->ndim, t->shape, b, sizeof b));
        }
    }
    return make_view(self, nd, shape, strides, t->offset);
}

PyObject *so_t_flatten(PyObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"start_dim", "end_dim", NULL};
    SoTensor *t = (SoTensor *)self;
    long long s = 0, e = -1;
    int64_t sd, ed, shape[SO_MAX_DIMS];
    int nd = 0;
    PyObject *shape_tuple, *res;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|LL:flatten", kwlist, &s, &e)) return NULL;
    if (t->ndim == 0) {
        PyObject *one = Py_BuildValue("((i))", 1);
        res = one ? so_t_reshape(self, one) : NULL;
        Py_XDECREF(one);
        return res;
    }
    if (so_wrap_dim(s, t->ndim, &sd) < 0 || so_wrap_dim(e, t->ndim, &ed) < 0) return NULL;
    if (sd > ed)
        return PyErr_Format(PyExc_RuntimeError, "flatten() has invalid args: start_dim cannot come "
                                                "after end_dim");
    for (int i = 0; i < sd; i++) shape[nd++] = t->shape[i];
    {
        int64_t p = 1;
        for (int64_t i = sd; i <= ed; i++) p *= t->shape[i];
        shape[nd++] = p;
    }
    for (int64_t i = ed + 1; i < t->ndim; i++) shape[nd++] = t->shape[i];
    shape_tuple = PyTuple_New(nd);
    if (!shape_tuple) return NULL;
    for (int i = 0; i < nd; i++) PyTuple_SET_ITEM(shape_tuple, i, PyLong_FromLongLong(shape[i]));
    {
        PyObject *wrapped = PyTuple_Pack(1, shape_tuple);
        Py_DECREF(shape_tuple);
        if (!wrapped) return NULL;
        res = so_t_reshape(self, wrapped);
        Py_DECREF(wrapped);
    }
    return res;
}

PyObject *so_t_contiguous(PyObject *self, PyObject *args, PyObject *kwds)
{
    so_state *st = state_of(self);
    (void)args;
    (void)kwds;
    if (!st) return NULL;
    if (so_tensor_is_contiguous((SoTensor *)self)) return Py_NewRef(self);
    return (PyObject *)so_tensor_clone(st, (SoTensor *)self);
}

PyObject *so_t_clone(PyObject *self, PyObject *args, PyObject *kwds)
{
    so_state *st = state_of(self);
    (void)args;
    (void)kwds;
    if (!st) return NULL;
    return (PyObject *)so_tensor_clone(st, (SoTensor *)self);
}

PyObject *so_t_copy_(PyObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"src", "non_blocking", NULL};
    so_state *st = state_of(self);
    PyObject *src;
    int non_blocking = 0;
    if (!st) return NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|p:copy_", kwlist, &src, &non_blocking))
        return NULL;
    if (!so_tensor_check(st, src))
        return PyErr_Format(PyExc_TypeError, "copy_(): argument 'src' must be Tensor, not %s",
                            Py_TYPE(src)->tp_name);
    if (so_copy_(st, (SoTensor *)self, (SoTensor *)src) < 0) return NULL;
    return Py_NewRef(self);
}

PyObject *so_t_fill_(PyObject *self, PyObject *value)
{
    so_state *st = state_of(self);
    if (!st) return NULL;
    if (so_fill_(st, (SoTensor *)self, value) < 0) return NULL;
    return Py_NewRef(self);
}

PyObject *so_t_zero_(PyObject *self, PyObject *unused)
{
    PyObject *zero = PyLong_FromLong(0), *res;
    (void)unused;
    if (!zero) return NULL;
    res = so_t_fill_(self, zero);
    Py_DECREF(zero);
    return res;
}

PyObject *so_t_convert(PyObject *self, PyObject *args)
{
    so_state *st = state_of(self);
    PyObject *dtype_obj, *device_obj;
    int dtype;
    so_device dev;
    if (!st) return NULL;
    if (!PyArg_ParseTuple(args, "OO:_convert", &dtype_obj, &device_obj)) return NULL;
    if (so_parse_dtype(st, dtype_obj, ((SoTensor *)self)->dtype, "dtype", &dtype) < 0) return NULL;
    if (device_obj == Py_None)
        dev = so_tensor_device((SoTensor *)self);
    else if (so_parse_device(st, device_obj, "device", &dev) < 0)
        return NULL;
    return (PyObject *)so_tensor_convert(st, (SoTensor *)self, dtype, dev);
}

/* ------------------------------------------------------------------ indexing */

int so_index_push_dim(so_index_geom *g, int64_t size, int64_t stride)
{
    if (g->nd >= SO_MAX_DIMS)
        return so_fail(PyExc_IndexError, "at most %d dimensions are supported", SO_MAX_DIMS);
    g->shape[g->nd] = size;
    g->strides[g->nd] = stride;
    g->nd++;
    return 0;
}

/* The one walk of an index expression (basic __getitem__ and ops/index.c's advanced
 * indexing): ints select, slices narrow, None adds a size-1 dim, Ellipsis keeps the dims no
 * other item consumes.  A tensor item consumes `mask.ndim` dims if bool (1 otherwise) and
 * is handed to on_tensor, which pushes the dims it keeps (without on_tensor it is refused).
 * g receives the view's geometry: t's dims as the items leave them. */
int so_index_walk(so_state *st, SoTensor *t, PyObject *index, so_index_tensor_fn on_tensor,
                  void *ctx, so_index_geom *g)
{
    PyObject *items;
    Py_ssize_t n;
    int consumed = 0, have_ellipsis = 0, rc = -1;
    g->nd = 0;
    g->src = 0;
    g->offset = t->offset;
    SO_CHECK_PTR(items = PyTuple_Check(index) ? Py_NewRef(index) : PyTuple_Pack(1, index), done);
    n = PyTuple_GET_SIZE(items);
    /* count the items that consume a dimension */
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *it = PyTuple_GET_ITEM(items, i);
        if (it == Py_Ellipsis) {
            SO_CHECK(!have_ellipsis, done, PyExc_IndexError,
                     "an index can only have a single ellipsis ('...')");
            have_ellipsis = 1;
        } else if (on_tensor && so_tensor_check(st, it)) {
            SoTensor *x = (SoTensor *)it;
            consumed += x->dtype == SO_BOOL ? x->ndim : 1;
        } else if (it != Py_None) {
            consumed++;
        }
    }
    SO_CHECK(consumed <= t->ndim, done, PyExc_IndexError,
             "too many indices for tensor of dimension %d", t->ndim);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *it = PyTuple_GET_ITEM(items, i);
        if (it == Py_None) {
            SO_CHECK_RC(so_index_push_dim(g, 1, 1), done);
        } else if (it == Py_Ellipsis) {
            for (int k = consumed; k < t->ndim; k++, g->src++)
                SO_CHECK_RC(so_index_push_dim(g, t->shape[g->src], t->strides[g->src]), done);
        } else if (PySlice_Check(it)) {
            Py_ssize_t start, stop, step, len;
            SO_CHECK_RC(PySlice_Unpack(it, &start, &stop, &step), done);
            SO_CHECK(step > 0, done, PyExc_ValueError, "step must be greater than zero");
            len = PySlice_AdjustIndices((Py_ssize_t)t->shape[g->src], &start, &stop, step);
            SO_CHECK_RC(so_index_push_dim(g, len, t->strides[g->src] * step), done);
            if (len > 0) g->offset += start * t->strides[g->src];
            g->src++;
        } else if (on_tensor && so_tensor_check(st, it)) {
            SO_CHECK_RC(on_tensor(ctx, st, t, (SoTensor *)it, g), done);
        } else if (!PyBool_Check(it) && PyIndex_Check(it)) {
            Py_ssize_t v = PyNumber_AsSsize_t(it, PyExc_IndexError);
            int64_t size = t->shape[g->src];
            if (v == -1 && PyErr_Occurred()) goto done;
            SO_CHECK(v >= -size && v < size, done, PyExc_IndexError,
                     "index %zd is out of bounds for dimension %d with size %lld", v, g->src,
                     (long long)size);
            if (v < 0) v += size;
            g->offset += v * t->strides[g->src];
            g->src++;
        } else {
            SO_FAIL(done, PyExc_IndexError, "only integers, slices (`:`), ellipsis (`...`), None "
                    "and long or byte Variables are valid indices (got %s)", Py_TYPE(it)->tp_name);
        }
    }
    for (; g->src < t->ndim; g->src++)
        SO_CHECK_RC(so_index_push_dim(g, t->shape[g->src], t->strides[g->src]), done);
    rc = 0;
done:
    Py_XDECREF(items);
    return rc;
}

/* 1 if the index expression holds a tensor (advanced indexing), else 0. */
int so_index_is_advanced(so_state *st, PyObject *index)
{
    if (!PyTuple_Check(index)) return so_tensor_check(st, index);
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(index); i++)
        if (so_tensor_check(st, PyTuple_GET_ITEM(index, i))) return 1;
    return 0;
}

/* The advanced-indexing hooks ops installs (tensor_state.h); absent only if ops failed to
 * register, which import would already have reported. */
static int require_index_hooks(so_state *st)
{
    if (st->tensor.index_get && st->tensor.index_put) return 0;
    return so_fail(PyExc_RuntimeError, "advanced indexing is unavailable: shardopt._C's ops "
                   "layer did not register");
}

/* Apply an index expression to self: a view for ints, slices, None and Ellipsis; tensor
 * (integer or bool) items make it advanced indexing, a copy (ops/index.c). */
PyObject *so_tensor_getitem(PyObject *self, PyObject *index)
{
    SoTensor *t = (SoTensor *)self;
    so_state *st = state_of(self);
    so_index_geom g;
    if (!st) return NULL;
    if (so_index_is_advanced(st, index)) {
        if (require_index_hooks(st) < 0) return NULL;
        return st->tensor.index_get(self, index);
    }
    if (so_index_walk(st, t, index, NULL, NULL, &g) < 0) return NULL;
    return make_view(self, g.nd, g.shape, g.strides, g.offset);
}

int so_tensor_setitem(PyObject *self, PyObject *index, PyObject *value)
{
    so_state *st = state_of(self);
    PyObject *view;
    int rc;
    if (!st) return -1;
    if (!value)
        return so_fail(PyExc_TypeError, "tensor elements cannot be deleted");
    if (so_index_is_advanced(st, index)) {
        if (require_index_hooks(st) < 0) return -1;
        return st->tensor.index_put(self, index, value);
    }
    view = so_tensor_getitem(self, index);
    if (!view) return -1;
    if (so_tensor_check(st, value)) {
        /* like torch, leading size-1 dims of the value beyond the target's rank are dropped */
        SoTensor *v = (SoTensor *)value, *vt = (SoTensor *)view;
        int skip = 0;
        while (v->ndim - skip > vt->ndim && v->shape[skip] == 1) skip++;
        if (skip) {
            SoTensor *trimmed = so_tensor_as_strided(st, v, v->ndim - skip, v->shape + skip,
                                                     v->strides + skip, v->offset);
            if (!trimmed) {
                Py_DECREF(view);
                return -1;
            }
            rc = so_copy_(st, vt, trimmed);
            Py_DECREF(trimmed);
        } else {
            rc = so_copy_(st, vt, v);
        }
    }
    else
        rc = so_fill_(st, (SoTensor *)view, value);
    Py_DECREF(view);
    return rc;
}

/* ------------------------------------------------------------------ complex <-> real views */

/* _C._view_as_real(t): a complex tensor's storage seen as float32/float64 with a trailing
 * dimension of 2 (re, im).  Offsets and strides double, since they count real elements. */
PyObject *so_view_as_real(PyObject *m, PyObject *obj)
{
    return so_view_as_real_st(so_state_from_module(m), obj);
}

PyObject *so_view_as_real_st(so_state *st, PyObject *obj)
{
    int64_t shape[SO_MAX_DIMS], strides[SO_MAX_DIMS];
    SoTensor *t;
    if (!so_tensor_check(st, obj))
        return PyErr_Format(PyExc_TypeError, "view_as_real(): argument 'input' must be Tensor, "
                            "not %s", Py_TYPE(obj)->tp_name);
    t = (SoTensor *)obj;
    if (!so_dtype_is_complex(t->dtype))
        return PyErr_Format(PyExc_RuntimeError, "view_as_real is only supported for complex "
                            "tensors");
    if (t->ndim + 1 > SO_MAX_DIMS)
        return PyErr_Format(PyExc_RuntimeError, "view_as_real: at most %d dimensions are "
                            "supported", SO_MAX_DIMS);
    for (int i = 0; i < t->ndim; i++) {
        shape[i] = t->shape[i];
        strides[i] = t->strides[i] * 2;
    }
    shape[t->ndim] = 2;
    strides[t->ndim] = 1;
    return (PyObject *)so_tensor_from_storage(st, t->storage, t->offset * 2, t->ndim + 1, shape,
                                              strides,
                                              t->dtype == SO_COMPLEX64 ? SO_FLOAT32 : SO_FLOAT64);
}

/* _C._view_as_complex(t): the inverse; torch's conditions and messages. */
PyObject *so_view_as_complex(PyObject *m, PyObject *obj)
{
    return so_view_as_complex_st(so_state_from_module(m), obj);
}

PyObject *so_view_as_complex_st(so_state *st, PyObject *obj)
{
    SoTensor *t;
    if (!so_tensor_check(st, obj))
        return PyErr_Format(PyExc_TypeError, "view_as_complex(): argument 'input' must be "
                            "Tensor, not %s", Py_TYPE(obj)->tp_name);
    t = (SoTensor *)obj;
    if (t->dtype != SO_FLOAT32 && t->dtype != SO_FLOAT64) {
        static const char *names[SO_NUM_TENSOR_DTYPES] = {
            "Float", "Double", "Half", "BFloat16", "Int", "Long", "Bool", "ComplexFloat",
            "ComplexDouble"};
        return PyErr_Format(PyExc_RuntimeError, "view_as_complex is only supported for float "
                            "and double tensors, but got a tensor of scalar type: %s",
                            names[t->dtype]);
    }
    if (so_tensor_device(t).type == SO_CUDA) /* cpu, or meta (geometry only) */
        return PyErr_Format(PyExc_RuntimeError, "complex tensors are supported on the CPU only "
                            "(shardopt has no CUDA kernels for complex dtypes)");
    if (t->ndim == 0 || t->shape[t->ndim - 1] != 2)
        return PyErr_Format(PyExc_RuntimeError, "Tensor must have a last dimension of size 2");
    if (t->strides[t->ndim - 1] != 1)
        return PyErr_Format(PyExc_RuntimeError, "Tensor must have a last dimension with stride 1");
    for (int i = 0; i < t->ndim - 1; i++)
        if (t->strides[i] % 2 != 0)
            return PyErr_Format(PyExc_RuntimeError, "Tensor must have a stride divisible by 2 "
                                "for all but last dimension");
    if (t->offset % 2 != 0)
        return PyErr_Format(PyExc_RuntimeError, "Tensor must have a storage_offset divisible by "
                            "2");
    {
        int64_t strides[SO_MAX_DIMS];
        for (int i = 0; i < t->ndim - 1; i++) strides[i] = t->strides[i] / 2;
        return (PyObject *)so_tensor_from_storage(
            st, t->storage, t->offset / 2, t->ndim - 1, t->shape, strides,
            t->dtype == SO_FLOAT32 ? SO_COMPLEX64 : SO_COMPLEX128);
    }
}
