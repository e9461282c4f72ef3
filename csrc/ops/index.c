/* index.c — gather, scatter(_add), index_select, nonzero and advanced indexing
 * (integer-tensor and boolean indices in __getitem__ / __setitem__ / index_put_):
 * argument checks with torch's messages, the plan (index.h), and the one place that picks
 * the CPU or CUDA kernel.
 *
 * Advanced indexing follows torch: ints, slices, None and Ellipsis are applied first as a
 * view; the index tensors (a bool mask becomes one int64 tensor per dim it covers, through
 * nonzero) are broadcast together; their result dims replace the indexed dims in place when
 * those dims are adjacent, and go first otherwise (NumPy's rule).
 */
#include "index.h"
#include "../tensor/copy.h"
#include "../core/errors.h"
#include "../tensor/tensor.h"
#include "../tensor/views.h"
#include <stdio.h>

#ifndef SHARDOPT_WITH_CUDA
int so_index_cuda(const so_index_plan *pl, so_index_error *err, void *stream, int device_index)
{
    (void)pl; (void)err; (void)stream; (void)device_index;
    return 1; /* never reached: a CPU-only build has no CUDA tensors */
}
#endif

/* How an out-of-range index is reported. */
typedef enum { ERR_INDEX = 0, ERR_GATHER = 1, ERR_SELECT = 2 } err_style;

/* Run the plan on dev; dims[k] names index tensor k's dim in the message. */
static int run_plan(so_state *st, const so_index_plan *pl, so_device dev, err_style style,
                    const int *dims)
{
    so_index_error e;
    int rc;
    if (dev.type == SO_META) return so_meta_unsupported("index");
    if (pl->numel == 0) return 0;
    if (dev.type == SO_CPU) {
        Py_BEGIN_ALLOW_THREADS
        rc = so_index_cpu(pl, &e);
        Py_END_ALLOW_THREADS
    } else {
        void *stream = so_cuda_stream(st->core.cuda_streams, dev.index);
        if (!stream) return -1;
        rc = so_index_cuda(pl, &e, stream, dev.index);
        if (rc > 0) return so_cuda_raise(rc, "index kernel", __FILE__, __LINE__);
    }
    if (rc == 0) return 0;
    if (style == ERR_SELECT)
        return so_fail(PyExc_RuntimeError, "INDICES element is out of DATA bounds, id=%lld "
                       "axis_dim=%lld", (long long)e.value, (long long)pl->idx_size[e.k]);
    return so_fail(style == ERR_INDEX ? PyExc_IndexError : PyExc_RuntimeError,
                   "index %lld is out of bounds for dimension %d with size %lld",
                   (long long)e.value, dims[e.k], (long long)pl->idx_size[e.k]);
}

static void contiguous_strides(int nd, const int64_t *shape, int64_t *strides)
{
    int64_t s = 1;
    for (int d = nd - 1; d >= 0; d--) {
        strides[d] = s;
        s *= shape[d] > 1 ? shape[d] : 1;
    }
}

/* t as an int64 tensor on dev (new ref; t itself when it already is one). */
static SoTensor *as_index(so_state *st, SoTensor *t, so_device dev)
{
    if (t->dtype == SO_INT64 && so_device_eq(so_tensor_device(t), dev)) return (SoTensor *)Py_NewRef(t);
    return so_tensor_convert(st, t, SO_INT64, dev);
}

/* nonzero(t): (n, ndim) int64 on t's device.  CUDA tensors are counted on the host (the
 * result size is data-dependent, so torch synchronises here too). */
static SoTensor *nonzero(so_state *st, SoTensor *t)
{
    so_device dev = so_tensor_device(t), cpu = {SO_CPU, 0};
    SoTensor *host = NULL, *out = NULL, *res = NULL;
    so_view v;
    int64_t shape[2];
    if (dev.type != SO_CPU) {
        SO_CHECK_PTR(host = so_tensor_convert(st, t, t->dtype, cpu), done);
    } else {
        host = (SoTensor *)Py_NewRef(t);
    }
    so_tensor_to_view(host, &v);
    shape[0] = so_count_nonzero_cpu(&v);
    shape[1] = t->ndim;
    SO_CHECK_PTR(out = so_tensor_empty(st, 2, shape, SO_INT64, cpu), done);
    so_nonzero_cpu(&v, (int64_t *)(void *)so_tensor_data(out));
    if (dev.type != SO_CPU) {
        res = so_tensor_convert(st, out, SO_INT64, dev);
    } else {
        res = (SoTensor *)Py_NewRef(out);
    }
done:
    Py_XDECREF(host);
    Py_XDECREF(out);
    return res;
}

/* ------------------------------------------------------------------ advanced indexing */

typedef struct {
    SoTensor *view;                    /* self after ints/slices/None/Ellipsis */
    int n;                             /* index tensors */
    SoTensor *idx[SO_INDEX_MAX];       /* int64 on self's device */
    int dim[SO_INDEX_MAX];             /* the view dim each one indexes */
    int bnd;                           /* broadcast shape of the index tensors */
    int64_t bshape[SO_MAX_DIMS];
    int nd;                            /* result shape */
    int64_t shape[SO_MAX_DIMS];
    int bpos;                          /* where the broadcast dims sit in the result */
    int vpos[SO_MAX_DIMS];             /* result position of each non-indexed view dim, -1 */
} adv_expr;

static void adv_clear(adv_expr *a)
{
    Py_CLEAR(a->view);
    for (int k = 0; k < a->n; k++) Py_CLEAR(a->idx[k]);
    a->n = 0;
}

static int add_index(adv_expr *a, SoTensor *t, int dim)
{
    if (a->n >= SO_INDEX_MAX) {
        Py_DECREF(t);
        return so_fail(PyExc_IndexError, "at most %d index tensors are supported in one "
                       "indexing expression", SO_INDEX_MAX);
    }
    a->idx[a->n] = t;
    a->dim[a->n] = dim;
    a->n++;
    return 0;
}

/* so_index_walk's handler of a tensor item: int tensors index one dim, bool masks become
 * one int64 index per dim they cover (through nonzero), a 0-d bool adds a size-1 dim
 * indexed by [0] (True) or [] (False). */
static int on_tensor_item(void *ctx, so_state *st, SoTensor *t, SoTensor *x, so_index_geom *g)
{
    adv_expr *a = (adv_expr *)ctx;
    so_device dev = so_tensor_device(t), cpu = {SO_CPU, 0};
    SoTensor *ix;
    if (x->dtype == SO_BOOL && x->ndim == 0) {
        int64_t len;
        SoTensor *h;
        if (so_tensor_device(x).type == SO_CPU) {
            len = *(uint8_t *)so_tensor_data(x) ? 1 : 0;
        } else {
            if (!(h = so_tensor_convert(st, x, SO_BOOL, cpu))) return -1;
            len = *(uint8_t *)so_tensor_data(h) ? 1 : 0;
            Py_DECREF(h);
        }
        if (!(h = so_tensor_empty(st, 1, &len, SO_INT64, cpu))) return -1;
        if (len) *(int64_t *)(void *)so_tensor_data(h) = 0;
        ix = as_index(st, h, dev);
        Py_DECREF(h);
        if (!ix || add_index(a, ix, g->nd) < 0) return -1;
        return so_index_push_dim(g, 1, 1);
    }
    if (x->dtype == SO_BOOL) {
        SoTensor *nz;
        int rc = -1;
        for (int j = 0; j < x->ndim; j++) {
            if (x->shape[j] != t->shape[g->src + j]) {
                char b1[256], b2[256];
                return so_fail(PyExc_IndexError, "The shape of the mask %s at index %d does not "
                               "match the shape of the indexed tensor %s at index %d",
                               so_shape_str(x->ndim, x->shape, b1, sizeof b1), j,
                               so_shape_str(t->ndim, t->shape, b2, sizeof b2), g->src + j);
            }
        }
        if (!(nz = nonzero(st, x))) return -1;
        for (int j = 0; j < x->ndim; j++) {
            int64_t cs = nz->shape[0], cst = nz->strides[0];
            SoTensor *col = so_tensor_as_strided(st, nz, 1, &cs, &cst, nz->offset + j);
            SO_CHECK_PTR(col, done);
            ix = as_index(st, col, dev);
            Py_DECREF(col);
            SO_CHECK_PTR(ix, done);
            SO_CHECK_RC(add_index(a, ix, g->nd), done);
            SO_CHECK_RC(so_index_push_dim(g, t->shape[g->src], t->strides[g->src]), done);
            g->src++;
        }
        rc = 0;
    done:
        Py_DECREF(nz);
        return rc;
    }
    if (x->dtype != SO_INT64 && x->dtype != SO_INT32)
        return so_fail(PyExc_IndexError, "tensors used as indices must be long, int, byte or "
                       "bool tensors");
    if (!(ix = as_index(st, x, dev)) || add_index(a, ix, g->nd) < 0) return -1;
    if (so_index_push_dim(g, t->shape[g->src], t->strides[g->src]) < 0) return -1;
    g->src++;
    return 0;
}

/* Parse `index` against t into a (view, index tensors) pair and the result geometry. */
static int adv_parse(so_state *st, SoTensor *t, PyObject *index, adv_expr *a)
{
    so_index_geom g;
    int rc = -1;
    memset(a, 0, sizeof *a);
    SO_CHECK_RC(so_index_walk(st, t, index, on_tensor_item, a, &g), done);
    SO_CHECK_PTR(a->view = so_tensor_as_strided(st, t, g.nd, g.shape, g.strides, g.offset), done);

    /* broadcast the index tensors together */
    a->bnd = 0;
    for (int k = 0; k < a->n; k++)
        if (a->idx[k]->ndim > a->bnd) a->bnd = a->idx[k]->ndim;
    for (int d = 0; d < a->bnd; d++) a->bshape[d] = 1;
    for (int k = 0; k < a->n; k++) {
        SoTensor *x = a->idx[k];
        int off = a->bnd - x->ndim;
        for (int d = 0; d < x->ndim; d++) {
            int64_t s = x->shape[d], *b = &a->bshape[off + d];
            if (s == *b || s == 1) continue;
            if (*b == 1) {
                *b = s;
                continue;
            }
            {
                char buf[1024];
                size_t used = 0;
                buf[0] = 0;
                for (int j = 0; j < a->n; j++) {
                    char one[256];
                    used += (size_t)snprintf(buf + used, used < sizeof buf ? sizeof buf - used : 0,
                                             "%s%s", j ? ", " : "",
                                             so_shape_str(a->idx[j]->ndim, a->idx[j]->shape, one,
                                                          sizeof one));
                    if (used >= sizeof buf) break;
                }
                SO_FAIL(done, PyExc_IndexError, "shape mismatch: indexing tensors could not be "
                        "broadcast together with shapes %s", buf);
            }
        }
    }
    /* result geometry */
    {
        int adjacent = 1, vnd = a->view->ndim, r = 0;
        for (int k = 1; k < a->n; k++)
            if (a->dim[k] != a->dim[k - 1] + 1) adjacent = 0;
        SO_CHECK(vnd - a->n + a->bnd <= SO_MAX_DIMS, done, PyExc_IndexError,
                 "at most %d dimensions are supported", SO_MAX_DIMS);
        a->bpos = adjacent ? a->dim[0] : 0;
        if (!adjacent) r = a->bnd;
        for (int v = 0; v < vnd; v++) {
            int indexed = 0;
            for (int k = 0; k < a->n; k++)
                if (a->dim[k] == v) indexed = 1;
            if (adjacent && v == a->dim[0]) r += a->bnd;
            a->vpos[v] = indexed ? -1 : r;
            if (!indexed) a->shape[r++] = a->view->shape[v];
        }
        for (int d = 0; d < a->bnd; d++) a->shape[a->bpos + d] = a->bshape[d];
        a->nd = vnd - a->n + a->bnd;
    }
    rc = 0;
done:
    if (rc < 0) adv_clear(a);
    return rc;
}

/* The plan for a parsed expression: self = the view, other = a tensor of the result shape
 * given by other_strides (already mapped onto the result dims). */
static void adv_plan(const adv_expr *a, int mode, char *other, const int64_t *other_strides,
                     so_index_plan *pl)
{
    SoTensor *v = a->view;
    memset(pl, 0, sizeof *pl);
    pl->mode = mode;
    pl->dtype = v->dtype;
    pl->ndim = a->nd;
    pl->numel = 1;
    for (int d = 0; d < a->nd; d++) {
        pl->shape[d] = a->shape[d];
        pl->numel *= a->shape[d];
        pl->other_strides[d] = other_strides[d];
    }
    pl->self = so_tensor_data(v);
    pl->other = other;
    for (int d = 0; d < v->ndim; d++)
        if (a->vpos[d] >= 0) pl->self_strides[a->vpos[d]] = v->strides[d];
    pl->nidx = a->n;
    for (int k = 0; k < a->n; k++) {
        SoTensor *x = a->idx[k];
        int off = a->bnd - x->ndim;
        pl->idx[k] = (const int64_t *)(const void *)so_tensor_data(x);
        for (int d = 0; d < x->ndim; d++)
            pl->idx_strides[k][a->bpos + off + d] = x->shape[d] == 1 ? 0 : x->strides[d];
        pl->idx_step[k] = v->strides[a->dim[k]];
        pl->idx_size[k] = v->shape[a->dim[k]];
    }
}

PyObject *so_index_getitem(so_state *st, SoTensor *t, PyObject *index)
{
    adv_expr a;
    so_index_plan pl;
    SoTensor *out = NULL;
    int64_t ostrides[SO_MAX_DIMS];
    if (adv_parse(st, t, index, &a) < 0) return NULL;
    SO_CHECK_PTR(out = so_tensor_empty(st, a.nd, a.shape, t->dtype, so_tensor_device(t)), done);
    contiguous_strides(a.nd, a.shape, ostrides);
    adv_plan(&a, SO_IDX_GET, so_tensor_data(out), ostrides, &pl);
    if (run_plan(st, &pl, so_tensor_device(t), ERR_INDEX, a.dim) < 0) Py_CLEAR(out);
done:
    adv_clear(&a);
    return (PyObject *)out;
}

/* value (tensor or number) as self's dtype/device, not sharing self's storage (new ref). */
static SoTensor *value_tensor(so_state *st, SoTensor *t, PyObject *value)
{
    so_device dev = so_tensor_device(t);
    if (so_tensor_check(st, value)) {
        SoTensor *v = (SoTensor *)value;
        if (v->dtype != t->dtype || !so_device_eq(so_tensor_device(v), dev) ||
            v->storage == t->storage)
            return so_tensor_convert(st, v, t->dtype, dev);
        return (SoTensor *)Py_NewRef(v);
    } else {
        SoTensor *s = so_tensor_empty(st, 0, NULL, t->dtype, dev);
        if (s && so_fill_(st, s, value) < 0) Py_CLEAR(s);
        return s;
    }
}

int so_index_put(so_state *st, SoTensor *t, PyObject *index, PyObject *value, int accumulate)
{
    adv_expr a;
    so_index_plan pl;
    SoTensor *v = NULL;
    int64_t vstrides[SO_MAX_DIMS];
    int rc = -1, skip = 0, off;
    /* plain copies move complex elements whole; accumulation has no complex loop */
    if (accumulate && so_check_not_complex(t, "index_put_ (accumulate=True)") < 0) return -1;
    if (adv_parse(st, t, index, &a) < 0) return -1;
    SO_CHECK_PTR(v = value_tensor(st, t, value), done);
    /* indices that alias self would change under the writes: snapshot them */
    for (int k = 0; k < a.n; k++) {
        if (a.idx[k]->storage == t->storage) {
            SoTensor *c = so_tensor_clone(st, a.idx[k]);
            SO_CHECK_PTR(c, done);
            Py_SETREF(a.idx[k], c);
        }
    }
    /* broadcast the value to the result shape (leading size-1 dims beyond it dropped) */
    while (v->ndim - skip > a.nd && v->shape[skip] == 1) skip++;
    off = a.nd - (v->ndim - skip);
    if (off < 0) goto mismatch;
    for (int d = 0; d < a.nd; d++) {
        int sd = d - off;
        if (sd < 0) vstrides[d] = 0;
        else if (v->shape[skip + sd] == a.shape[d]) vstrides[d] = v->strides[skip + sd];
        else if (v->shape[skip + sd] == 1) vstrides[d] = 0;
        else goto mismatch;
    }
    adv_plan(&a, accumulate ? SO_IDX_ADD : SO_IDX_PUT, so_tensor_data(v), vstrides, &pl);
    so_tensor_bump_version(t);
    SO_CHECK_RC(run_plan(st, &pl, so_tensor_device(t), ERR_INDEX, a.dim), done);
    rc = 0;
    goto done;
mismatch: {
        char b1[256], b2[256];
        PyErr_Format(PyExc_RuntimeError, "shape mismatch: value tensor of shape %s cannot be "
                     "broadcast to indexing result of shape %s",
                     so_shape_str(v->ndim, v->shape, b1, sizeof b1),
                     so_shape_str(a.nd, a.shape, b2, sizeof b2));
    }
done:
    Py_XDECREF(v);
    adv_clear(&a);
    return rc;
}

/* ------------------------------------------------------------------ gather / scatter */

static int check_tensor(so_state *st, PyObject *obj, const char *fname, const char *arg, int pos)
{
    if (so_tensor_check(st, obj)) return 0;
    return so_fail(PyExc_TypeError, "%s(): argument '%s' (position %d) must be Tensor, not %s",
                   fname, arg, pos, Py_TYPE(obj)->tp_name);
}

static int parse_dim(PyObject *obj, int ndim, int64_t *out)
{
    int64_t d;
    if (PyBool_Check(obj) || !PyLong_Check(obj))
        return so_fail(PyExc_TypeError, "argument 'dim' must be int, not %s", Py_TYPE(obj)->tp_name);
    d = PyLong_AsLongLong(obj);
    if (d == -1 && PyErr_Occurred()) return -1;
    return so_wrap_dim(d, ndim, out);
}

/* Geometry of a 0-d tensor seen as 1-d of size 1 (gather/scatter accept 0-d operands). */
static void geom(const SoTensor *t, int *nd, int64_t *shape, int64_t *strides)
{
    if (t->ndim == 0) {
        *nd = 1;
        shape[0] = 1;
        strides[0] = 1;
        return;
    }
    *nd = t->ndim;
    memcpy(shape, t->shape, sizeof(int64_t) * (size_t)t->ndim);
    memcpy(strides, t->strides, sizeof(int64_t) * (size_t)t->ndim);
}

/* The dim-wise plan of gather/scatter: iterate over index's shape, self's indexed dim
 * replaced by index values. */
static void dim_plan(int mode, const SoTensor *self, const SoTensor *index, int64_t dim,
                     char *other, const int64_t *other_strides, so_index_plan *pl)
{
    int snd, ind;
    int64_t sshape[SO_MAX_DIMS], sstr[SO_MAX_DIMS], ishape[SO_MAX_DIMS], istr[SO_MAX_DIMS];
    geom(self, &snd, sshape, sstr);
    geom(index, &ind, ishape, istr);
    memset(pl, 0, sizeof *pl);
    pl->mode = mode;
    pl->dtype = self->dtype;
    pl->ndim = ind;
    pl->numel = 1;
    pl->self = so_tensor_data(self);
    pl->other = other;
    pl->nidx = 1;
    pl->idx[0] = (const int64_t *)(const void *)so_tensor_data(index);
    for (int d = 0; d < ind; d++) {
        pl->shape[d] = ishape[d];
        pl->numel *= ishape[d];
        pl->self_strides[d] = d == dim ? 0 : sstr[d];
        pl->other_strides[d] = other_strides[d];
        pl->idx_strides[0][d] = istr[d];
    }
    pl->idx_step[0] = sstr[dim];
    pl->idx_size[0] = sshape[dim];
}

/* _C._gather(input, dim, index) */
static PyObject *py_gather(PyObject *m, PyObject *args)
{
    so_state *st = so_state_from_module(m);
    PyObject *in, *dim_obj, *idx_obj;
    SoTensor *t, *ix, *out = NULL;
    int64_t dim, ostr[SO_MAX_DIMS];
    int dims[1];
    so_index_plan pl;
    if (!PyArg_ParseTuple(args, "OOO:gather", &in, &dim_obj, &idx_obj)) return NULL;
    if (check_tensor(st, in, "gather", "input", 1) < 0 ||
        check_tensor(st, idx_obj, "gather", "index", 3) < 0)
        return NULL;
    t = (SoTensor *)in;
    ix = (SoTensor *)idx_obj;
    if (parse_dim(dim_obj, t->ndim, &dim) < 0) return NULL;
    if (ix->dtype != SO_INT64 && ix->dtype != SO_INT32)
        return PyErr_Format(PyExc_RuntimeError, "gather(): Expected dtype int32/int64 for index");
    if (!so_device_eq(so_tensor_device(ix), so_tensor_device(t)))
        return PyErr_Format(PyExc_RuntimeError, "Expected all tensors to be on the same device, "
                            "but found index on a different device than input (gather)");
    if ((ix->ndim ? ix->ndim : 1) != (t->ndim ? t->ndim : 1))
        return PyErr_Format(PyExc_RuntimeError, "Index tensor must have the same number of "
                            "dimensions as input tensor");
    for (int d = 0; d < ix->ndim && t->ndim; d++) {
        if (d != dim && ix->shape[d] > t->shape[d]) {
            char b1[256], b2[256];
            return PyErr_Format(PyExc_RuntimeError, "Size does not match at dimension %d expected "
                                "index %s to be no larger than self %s apart from dimension %lld",
                                d, so_shape_str(ix->ndim, ix->shape, b1, sizeof b1),
                                so_shape_str(t->ndim, t->shape, b2, sizeof b2), (long long)dim);
        }
    }
    if (!(ix = as_index(st, ix, so_tensor_device(t)))) return NULL;
    out = so_tensor_empty(st, ix->ndim, ix->shape, t->dtype, so_tensor_device(t));
    if (!out) {
        Py_DECREF(ix);
        return NULL;
    }
    {
        int64_t one = 1;
        contiguous_strides(ix->ndim, ix->shape, ostr);
        if (!ix->ndim) ostr[0] = one;
    }
    dim_plan(SO_IDX_GET, t, ix, dim, so_tensor_data(out), ostr, &pl);
    dims[0] = (int)dim;
    if (run_plan(st, &pl, so_tensor_device(t), ERR_GATHER, dims) < 0) Py_CLEAR(out);
    Py_DECREF(ix);
    return (PyObject *)out;
}

/* _C._scatter_(self, dim, index, src_or_value, accumulate): in place, returns self. */
static PyObject *py_scatter_(PyObject *m, PyObject *args)
{
    so_state *st = so_state_from_module(m);
    PyObject *self_obj, *dim_obj, *idx_obj, *src_obj, *res = NULL;
    SoTensor *t, *ix, *src = NULL, *ix64 = NULL;
    int accumulate, dims[1];
    int64_t dim, sstr[SO_MAX_DIMS];
    const char *fname;
    so_index_plan pl;
    if (!PyArg_ParseTuple(args, "OOOOp:scatter_", &self_obj, &dim_obj, &idx_obj, &src_obj,
                          &accumulate))
        return NULL;
    fname = accumulate ? "scatter_add" : "scatter";
    if (check_tensor(st, self_obj, fname, "input", 1) < 0 ||
        check_tensor(st, idx_obj, fname, "index", 3) < 0)
        return NULL;
    t = (SoTensor *)self_obj;
    ix = (SoTensor *)idx_obj;
    if (accumulate && so_check_not_complex(t, fname) < 0) return NULL;
    if (parse_dim(dim_obj, t->ndim, &dim) < 0) return NULL;
    if (ix->dtype != SO_INT64 && ix->dtype != SO_INT32)
        return PyErr_Format(PyExc_RuntimeError, "scatter(): Expected dtype int32/int64 for index");
    if (!so_device_eq(so_tensor_device(ix), so_tensor_device(t)))
        return PyErr_Format(PyExc_RuntimeError, "Expected all tensors to be on the same device, "
                            "but found index on a different device than self (%s)", fname);
    if ((ix->ndim ? ix->ndim : 1) != (t->ndim ? t->ndim : 1))
        return PyErr_Format(PyExc_RuntimeError, "Index tensor must have the same number of "
                            "dimensions as self tensor");
    if (so_tensor_check(st, src_obj)) {
        SoTensor *s = (SoTensor *)src_obj;
        if (s->dtype != t->dtype)
            return PyErr_Format(PyExc_RuntimeError, "%s(): Expected self.dtype to be equal to "
                                "src.dtype", fname);
        if (!so_device_eq(so_tensor_device(s), so_tensor_device(t)))
            return PyErr_Format(PyExc_RuntimeError, "Expected all tensors to be on the same "
                                "device, but found src on a different device than self (%s)",
                                fname);
        if ((s->ndim ? s->ndim : 1) != (ix->ndim ? ix->ndim : 1))
            return PyErr_Format(PyExc_RuntimeError, "Index tensor must have the same number of "
                                "dimensions as src tensor");
        for (int d = 0; d < ix->ndim; d++) {
            if ((d != dim && ix->shape[d] > t->shape[d]) || ix->shape[d] > s->shape[d]) {
                char b1[256], b2[256], b3[256];
                return PyErr_Format(PyExc_RuntimeError, "Expected index %s to be no larger than "
                                    "self %s apart from dimension %lld and to be no larger size "
                                    "than src %s",
                                    so_shape_str(ix->ndim, ix->shape, b1, sizeof b1),
                                    so_shape_str(t->ndim, t->shape, b2, sizeof b2), (long long)dim,
                                    so_shape_str(s->ndim, s->shape, b3, sizeof b3));
            }
        }
        /* a src sharing self's storage could be overwritten before it is read */
        src = s->storage == t->storage ? so_tensor_clone(st, s) : (SoTensor *)Py_NewRef(s);
        if (!src) return NULL;
        if (src->ndim) memcpy(sstr, src->strides, sizeof(int64_t) * (size_t)src->ndim);
        else sstr[0] = 1;
    } else {
        if (accumulate)
            return PyErr_Format(PyExc_TypeError, "scatter_add(): argument 'src' (position 3) must "
                                "be Tensor, not %s", Py_TYPE(src_obj)->tp_name);
        for (int d = 0; d < ix->ndim; d++) {
            if (d != dim && ix->shape[d] > t->shape[d]) {
                char b1[256], b2[256];
                return PyErr_Format(PyExc_RuntimeError, "Expected index %s to be no larger than "
                                    "self %s apart from dimension %lld",
                                    so_shape_str(ix->ndim, ix->shape, b1, sizeof b1),
                                    so_shape_str(t->ndim, t->shape, b2, sizeof b2), (long long)dim);
            }
        }
        src = so_tensor_empty(st, 0, NULL, t->dtype, so_tensor_device(t));
        if (!src) return NULL;
        if (so_fill_(st, src, src_obj) < 0) goto done;
        for (int d = 0; d < SO_MAX_DIMS; d++) sstr[d] = 0;
    }
    /* int64 indices that the writes cannot change (a copy when they alias self) */
    if (ix->storage == t->storage || ix->dtype != SO_INT64) {
        SoTensor *c = ix->dtype == SO_INT64 ? so_tensor_clone(st, ix) : as_index(st, ix, so_tensor_device(t));
        if (!c) goto done;
        ix64 = c;
    } else {
        ix64 = (SoTensor *)Py_NewRef(ix);
    }
    dim_plan(accumulate ? SO_IDX_ADD : SO_IDX_PUT, t, ix64, dim, so_tensor_data(src), sstr, &pl);
    dims[0] = (int)dim;
    so_tensor_bump_version(t);
    if (run_plan(st, &pl, so_tensor_device(t), ERR_GATHER, dims) == 0) res = Py_NewRef(self_obj);
done:
    Py_XDECREF(ix64);
    Py_XDECREF(src);
    return res;
}

/* _C._index_select(input, dim, index) */
static PyObject *py_index_select(PyObject *m, PyObject *args)
{
    so_state *st = so_state_from_module(m);
    PyObject *in, *dim_obj, *idx_obj;
    SoTensor *t, *ix, *ix64 = NULL, *out = NULL;
    int64_t dim, shape[SO_MAX_DIMS], ostr[SO_MAX_DIMS], n;
    int nd, dims[1];
    so_index_plan pl;
    if (!PyArg_ParseTuple(args, "OOO:index_select", &in, &dim_obj, &idx_obj)) return NULL;
    if (check_tensor(st, in, "index_select", "input", 1) < 0 ||
        check_tensor(st, idx_obj, "index_select", "index", 3) < 0)
        return NULL;
    t = (SoTensor *)in;
    ix = (SoTensor *)idx_obj;
    if (parse_dim(dim_obj, t->ndim, &dim) < 0) return NULL;
    if (ix->ndim > 1)
        return PyErr_Format(PyExc_IndexError, "index_select(): Index is supposed to be a vector");
    if (ix->dtype != SO_INT64 && ix->dtype != SO_INT32)
        return PyErr_Format(PyExc_RuntimeError, "index_select(): Expected dtype int32 or int64 "
                            "for index");
    if (!so_device_eq(so_tensor_device(ix), so_tensor_device(t)))
        return PyErr_Format(PyExc_RuntimeError, "Expected all tensors to be on the same device, "
                            "but found index on a different device than input (index_select)");
    if (!(ix64 = as_index(st, ix, so_tensor_device(t)))) return NULL;
    n = so_tensor_numel(ix64);
    nd = t->ndim ? t->ndim : 1;
    if (t->ndim) memcpy(shape, t->shape, sizeof(int64_t) * (size_t)t->ndim);
    else shape[0] = 1;
    shape[dim] = n;
    SO_CHECK_PTR(out = so_tensor_empty(st, t->ndim ? nd : (ix->ndim ? 1 : 0), shape, t->dtype,
                                       so_tensor_device(t)), done);
    contiguous_strides(nd, shape, ostr);
    {
        int snd;
        int64_t sshape[SO_MAX_DIMS], sstr[SO_MAX_DIMS];
        geom(t, &snd, sshape, sstr);
        memset(&pl, 0, sizeof pl);
        pl.mode = SO_IDX_GET;
        pl.dtype = t->dtype;
        pl.ndim = nd;
        pl.numel = 1;
        pl.self = so_tensor_data(t);
        pl.other = so_tensor_data(out);
        pl.nidx = 1;
        pl.idx[0] = (const int64_t *)(const void *)so_tensor_data(ix64);
        for (int d = 0; d < nd; d++) {
            pl.shape[d] = shape[d];
            pl.numel *= shape[d];
            pl.self_strides[d] = d == dim ? 0 : sstr[d];
            pl.other_strides[d] = ostr[d];
        }
        pl.idx_strides[0][dim] = ix64->ndim ? ix64->strides[0] : 0;
        pl.idx_step[0] = sstr[dim];
        pl.idx_size[0] = sshape[dim];
    }
    dims[0] = (int)dim;
    if (run_plan(st, &pl, so_tensor_device(t), ERR_SELECT, dims) < 0) Py_CLEAR(out);
done:
    Py_XDECREF(ix64);
    return (PyObject *)out;
}

/* _C._nonzero(input) -> (n, ndim) int64 */
static PyObject *py_nonzero(PyObject *m, PyObject *in)
{
    so_state *st = so_state_from_module(m);
    if (check_tensor(st, in, "nonzero", "input", 1) < 0 ||
        so_check_not_complex((SoTensor *)in, "nonzero") < 0)
        return NULL;
    return (PyObject *)nonzero(st, (SoTensor *)in);
}

/* _C._index_put_(self, index, values, accumulate): self[index] = values (or +=). */
static PyObject *py_index_put_(PyObject *m, PyObject *args)
{
    so_state *st = so_state_from_module(m);
    PyObject *self_obj, *index, *value;
    int accumulate = 0;
    if (!PyArg_ParseTuple(args, "OOO|p:index_put_", &self_obj, &index, &value, &accumulate))
        return NULL;
    if (check_tensor(st, self_obj, "index_put_", "input", 1) < 0) return NULL;
    if (so_index_put(st, (SoTensor *)self_obj, index, value, accumulate) < 0) return NULL;
    return Py_NewRef(self_obj);
}

static PyMethodDef index_functions[] = {
    {"_gather", py_gather, METH_VARARGS, "_gather(input, dim, index)"},
    {"_scatter_", py_scatter_, METH_VARARGS,
     "_scatter_(self, dim, index, src_or_value, accumulate): in place"},
    {"_index_select", py_index_select, METH_VARARGS, "_index_select(input, dim, index)"},
    {"_nonzero", py_nonzero, METH_O, "_nonzero(input) -> (n, ndim) int64 coordinates"},
    {"_index_put_", py_index_put_, METH_VARARGS,
     "_index_put_(self, index, values, accumulate=False): self[index] = values (or +=)"},
    {NULL}};

/* The tensor layer's __getitem__ / __setitem__ hooks (tensor_state.h). */
static PyObject *index_get_hook(PyObject *self, PyObject *index)
{
    so_state *st = so_state_from_type(Py_TYPE(self));
    return st ? so_index_getitem(st, (SoTensor *)self, index) : NULL;
}

static int index_put_hook(PyObject *self, PyObject *index, PyObject *value)
{
    so_state *st = so_state_from_type(Py_TYPE(self));
    return st ? so_index_put(st, (SoTensor *)self, index, value, 0) : -1;
}

int so_register_index(PyObject *m, so_state *st)
{
    st->tensor.index_get = index_get_hook;
    st->tensor.index_put = index_put_hook;
    return PyModule_AddFunctions(m, index_functions);
}
