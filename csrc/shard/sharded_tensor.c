/* sharded_tensor.c — ShardedTensorBase and ShardedTensor as CPython heap types.
 *
 * shardopt's ShardedTensor is not a shardopt.Tensor (it has no storage of its own), so it
 * copies the observable surface of torch's tensor-subclass-era ShardedTensor (spec §4):
 * read-only tensor properties taken from the global metadata (dtype, layout, shape/size(),
 * dim()/ndim, requires_grad — assignment raises torch's error —, is_contiguous(),
 * is_floating_point(), is_pinned(), grad/grad_fn/is_leaf, device), the accessors
 * (local_shards(), local_tensor(), metadata() — the object itself —, sharding_spec(),
 * remote_shards()), repr "ShardedTensor(<metadata>)" and an id-based hash.
 *
 * The constructor ShardedTensor(sharding_spec, *size, dtype=None, layout=strided,
 * requires_grad=False, pin_memory=False, memory_format=contiguous_format,
 * process_group=None, init_rrefs=False) builds the metadata with the spec, validates every
 * placement against the process group and allocates (uninitialised) the shards whose
 * placement names this process's GLOBAL rank.  ShardedTensorBase(...) does the same minus
 * the process group and the allocation.  Instances have a __dict__ (nn marks parameters
 * with `_is_param`), and the Python layer installs the collective methods (gather, to,
 * equal, ...) on the type itself.
 */
#include "sharded_tensor.h"
#include "../tensor/tensor.h"

/* ------------------------------------------------------------------ helpers */

PyObject *so_st_import(const char *modname, const char *name)
{
    PyObject *mod = PyImport_ImportModule(modname), *attr;
    if (!mod) return NULL;
    attr = PyObject_GetAttrString(mod, name);
    Py_DECREF(mod);
    return attr;
}

PyObject *so_st_resolve_pg(PyObject *pg)
{
    if (pg != Py_None) return Py_NewRef(pg);
    {
        PyObject *fn = so_st_import("shardopt.distributed.distributed_c10d", "_default"), *res;
        if (!fn) return NULL;
        res = PyObject_CallNoArgs(fn);
        Py_DECREF(fn);
        return res;
    }
}

long so_st_global_rank(void)
{
    PyObject *fn = so_st_import("shardopt.distributed", "get_rank"), *r;
    long v;
    if (!fn) return -1;
    r = PyObject_CallNoArgs(fn);
    Py_DECREF(fn);
    if (!r) return -1;
    v = PyLong_AsLong(r);
    Py_DECREF(r);
    return v;
}

int so_st_is_pinned(PyObject *tensor)
{
    PyObject *r;
    int v;
    if (!PyObject_HasAttrString(tensor, "is_pinned")) return 0;
    r = PyObject_CallMethod(tensor, "is_pinned", NULL);
    if (!r) return -1;
    v = PyObject_IsTrue(r);
    Py_DECREF(r);
    return v;
}

int so_st_validate_placement(so_state *st, PyObject *pg, PyObject *placement, long *rank_out)
{
    PyObject *pl = NULL, *ranks = NULL, *r;
    int rc = -1;
    if (placement == Py_None) {
        PyErr_SetString(PyExc_ValueError, "remote device is None");
        return -1;
    }
    pl = so_remote_device_coerce(st, placement);
    if (!pl) return -1;
    if (SO_RD_WORKER(pl) != Py_None) {
        PyErr_Format(PyExc_RuntimeError,
                     "RPC framework needs to be initialized for using worker names (placement "
                     "%R); shardopt has no RPC: use 'rank:<rank>/<device>' placements", pl);
        goto done;
    }
    if (SO_RD_RANK(pl) == Py_None) {
        PyErr_Format(PyExc_ValueError,
                     "placement %R has no rank: a ShardedTensor needs 'rank:<rank>/<device>' "
                     "placements (a bare device is local to no rank)", pl);
        goto done;
    }
    *rank_out = PyLong_AsLong(SO_RD_RANK(pl));
    if (*rank_out == -1 && PyErr_Occurred()) goto done;
    /* ranks outside the group (NON_GROUP_MEMBER has no _ranks) skip the membership check */
    ranks = PyObject_GetAttrString(pg, "_ranks");
    if (!ranks) {
        PyErr_Clear();
        rc = 0;
        goto done;
    }
    r = SO_RD_RANK(pl);
    switch (PySequence_Contains(ranks, r)) {
    case -1:
        goto done;
    case 0:
        PyErr_Format(PyExc_ValueError, "Global rank %S does not exist in input process group: %S",
                     r, ranks);
        goto done;
    }
    rc = 0;
done:
    Py_XDECREF(pl);
    Py_XDECREF(ranks);
    return rc;
}

/* metadata.<name> or metadata.tensor_properties.<name>; new ref */
static PyObject *md_attr(PyObject *self, const char *name)
{
    PyObject *md = SO_ST(self)->metadata;
    if (!md || md == Py_None) {
        PyErr_SetString(PyExc_RuntimeError, "ShardedTensor is not initialised (no metadata)");
        return NULL;
    }
    return PyObject_GetAttrString(md, name);
}

static PyObject *prop_attr(PyObject *self, const char *name)
{
    PyObject *props = md_attr(self, "tensor_properties"), *v;
    if (!props) return NULL;
    v = PyObject_GetAttrString(props, name);
    Py_DECREF(props);
    return v;
}

PyObject *so_st_from_parts(PyTypeObject *cls, PyObject *local_shards, PyObject *metadata,
                           PyObject *pg, PyObject *spec, int init_rrefs)
{
    PyObject *self = cls->tp_alloc(cls, 0);
    PyObject *shards;
    if (!self) return NULL;
    shards = PyList_Check(local_shards) ? Py_NewRef(local_shards) : PySequence_List(local_shards);
    if (!shards) {
        Py_DECREF(self);
        return NULL;
    }
    SO_ST(self)->local_shards = shards;
    SO_ST(self)->metadata = Py_NewRef(metadata);
    SO_ST(self)->pg = Py_NewRef(pg);
    SO_ST(self)->spec = Py_NewRef(spec);
    SO_ST(self)->init_rrefs = init_rrefs;
    return self;
}

/* ------------------------------------------------------------------ lifetime */

static PyObject *st_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    PyObject *self = type->tp_alloc(type, 0);
    (void)args;
    (void)kwds;
    if (!self) return NULL;
    SO_ST(self)->local_shards = PyList_New(0);
    if (!SO_ST(self)->local_shards) {
        Py_DECREF(self);
        return NULL;
    }
    SO_ST(self)->metadata = Py_NewRef(Py_None);
    SO_ST(self)->spec = Py_NewRef(Py_None);
    SO_ST(self)->pg = Py_NewRef(Py_None);
    return self;
}

static int st_traverse(PyObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(SO_ST(self)->local_shards);
    Py_VISIT(SO_ST(self)->metadata);
    Py_VISIT(SO_ST(self)->spec);
    Py_VISIT(SO_ST(self)->pg);
    Py_VISIT(SO_ST(self)->dict);
    return 0;
}

static int st_clear(PyObject *self)
{
    Py_CLEAR(SO_ST(self)->local_shards);
    Py_CLEAR(SO_ST(self)->metadata);
    Py_CLEAR(SO_ST(self)->spec);
    Py_CLEAR(SO_ST(self)->pg);
    Py_CLEAR(SO_ST(self)->dict);
    return 0;
}

static void st_dealloc(PyObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    if (SO_ST(self)->weakreflist) PyObject_ClearWeakRefs(self);
    st_clear(self);
    tp->tp_free(self);
    Py_DECREF(tp);
}

/* ------------------------------------------------------------------ construction */

/* torch's _flatten_tensor_size: a single sequence argument is unpacked; every element must
 * be an int.  Returns a new shardopt.Size. */
static PyObject *flatten_size(PyObject *size)
{
    PyObject *dims, *size_cls, *res;
    if (PyTuple_GET_SIZE(size) == 1 && PySequence_Check(PyTuple_GET_ITEM(size, 0)))
        dims = PySequence_List(PyTuple_GET_ITEM(size, 0));
    else
        dims = PySequence_List(size);
    if (!dims) return NULL;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(dims); i++) {
        if (!PyLong_Check(PyList_GET_ITEM(dims, i))) {
            PyErr_Format(PyExc_TypeError, "size has to be a sequence of ints, found: %R", dims);
            Py_DECREF(dims);
            return NULL;
        }
    }
    /* The global size must be one a tensor could have (no shard may exist to check it). */
    int nd;
    int64_t shape[SO_MAX_DIMS];
    if (so_parse_int_seq(dims, "size", &nd, shape) < 0 || so_check_sizes(nd, shape) < 0) {
        Py_DECREF(dims);
        return NULL;
    }
    size_cls = so_st_import("shardopt._tensor", "Size");
    if (!size_cls) {
        Py_DECREF(dims);
        return NULL;
    }
    res = PyObject_CallOneArg(size_cls, dims);
    Py_DECREF(size_cls);
    Py_DECREF(dims);
    return res;
}

/* Parsed constructor arguments. */
typedef struct {
    PyObject *spec, *size, *dtype, *layout, *memory_format, *pg;
    int requires_grad, pin_memory, init_rrefs;
} st_args;

static int parse_ctor(PyObject *args, PyObject *kwds, st_args *a, int with_pg)
{
    static char *kwlist[] = {"dtype", "layout", "requires_grad", "pin_memory", "memory_format",
                             "process_group", "init_rrefs", NULL};
    PyObject *empty = NULL, *rest = NULL;
    int rc = -1;
    memset(a, 0, sizeof(*a));
    a->dtype = a->layout = a->memory_format = a->pg = Py_None;
    if (PyTuple_GET_SIZE(args) < 1) {
        PyErr_SetString(PyExc_TypeError, "ShardedTensor() missing required argument 'sharding_spec'");
        return -1;
    }
    a->spec = PyTuple_GET_ITEM(args, 0);
    rest = PyTuple_GetSlice(args, 1, PyTuple_GET_SIZE(args));
    empty = PyTuple_New(0);
    if (!rest || !empty) goto done;
    if (!PyArg_ParseTupleAndKeywords(empty, kwds, "|$OOppOOp:ShardedTensor", kwlist, &a->dtype,
                                     &a->layout, &a->requires_grad, &a->pin_memory,
                                     &a->memory_format, &a->pg, &a->init_rrefs))
        goto done;
    if (!with_pg && a->pg != Py_None) {
        PyErr_SetString(PyExc_TypeError, "ShardedTensorBase() takes no process_group");
        goto done;
    }
    a->size = rest;
    rest = NULL;
    rc = 0;
done:
    Py_XDECREF(rest);
    Py_XDECREF(empty);
    return rc;
}

/* Checks the spec, flattens the size and builds the metadata (Base's whole job). */
static int base_build(PyObject *self, st_args *a)
{
    PyObject *spec_cls = NULL, *props_cls = NULL, *props = NULL, *size = NULL, *md = NULL;
    PyObject *dtype = NULL, *strided = NULL, *contig = NULL;
    int rc = -1, is;
    spec_cls = so_st_import("shardopt.sharding_spec", "ShardingSpec");
    if (!spec_cls) goto done;
    is = PyObject_IsInstance(a->spec, spec_cls);
    if (is < 0) goto done;
    if (!is) {
        PyErr_Format(PyExc_ValueError, "Expecting ShardingSpec but got: %R", (PyObject *)Py_TYPE(a->spec));
        goto done;
    }
    size = flatten_size(a->size);
    if (!size) goto done;
    if (a->dtype == Py_None) {
        PyObject *get = so_st_import("shardopt", "get_default_dtype");
        if (get) {
            dtype = PyObject_CallNoArgs(get);
            Py_DECREF(get);
        } else {
            PyErr_Clear();
            dtype = so_st_import("shardopt", "float32");
        }
        if (!dtype) goto done;
    } else {
        dtype = Py_NewRef(a->dtype);
    }
    strided = so_st_import("shardopt", "strided");
    contig = so_st_import("shardopt", "contiguous_format");
    props_cls = so_st_import("shardopt.sharded_tensor.metadata", "TensorProperties");
    if (!strided || !contig || !props_cls) goto done;
    props = PyObject_CallFunction(props_cls, "OOOOO", dtype,
                                  a->layout == Py_None ? strided : a->layout,
                                  a->requires_grad ? Py_True : Py_False,
                                  a->memory_format == Py_None ? contig : a->memory_format,
                                  a->pin_memory ? Py_True : Py_False);
    if (!props) goto done;
    md = PyObject_CallMethod(a->spec, "build_metadata", "OO", size, props);
    if (!md) goto done;
    Py_XSETREF(SO_ST(self)->metadata, Py_NewRef(md));
    Py_XSETREF(SO_ST(self)->spec, Py_NewRef(a->spec));
    /* Only strided contiguous tensors exist (checked after build_metadata, as torch) */
    if (a->layout != Py_None && a->layout != strided) {
        PyErr_SetString(PyExc_ValueError, "Only torch.strided layout is currently supported");
        goto done;
    }
    if (a->memory_format != Py_None && a->memory_format != contig) {
        PyErr_SetString(PyExc_ValueError,
                        "Only torch.contiguous_format memory_format is currently supported");
        goto done;
    }
    rc = 0;
done:
    Py_XDECREF(spec_cls);
    Py_XDECREF(props_cls);
    Py_XDECREF(props);
    Py_XDECREF(size);
    Py_XDECREF(md);
    Py_XDECREF(dtype);
    Py_XDECREF(strided);
    Py_XDECREF(contig);
    return rc;
}

static int base_init(PyObject *self, PyObject *args, PyObject *kwds)
{
    st_args a;
    int rc;
    if (parse_ctor(args, kwds, &a, 0) < 0) return -1;
    if (a.init_rrefs) {
        Py_DECREF(a.size);
        PyErr_SetString(PyExc_TypeError, "ShardedTensorBase() takes no init_rrefs");
        return -1;
    }
    rc = base_build(self, &a);
    Py_DECREF(a.size);
    return rc;
}

/* An uninitialised local shard for shard metadata `smd` (placement already validated). */
static PyObject *alloc_shard(so_state *st, PyObject *smd, PyObject *props)
{
    PyObject *sizes = NULL, *dtype = NULL, *rg = NULL, *shard_tp, *res = NULL;
    PyObject *pl = SO_SMD_PLACEMENT(smd);
    SoTensor *t = NULL;
    int64_t shape[SO_MAX_DIMS];
    int ndim = 0, dt;
    so_device dev;
    sizes = PyObject_GetAttrString(smd, "shard_sizes");
    if (!sizes || so_parse_shape(sizes, "shard_sizes", &ndim, shape) < 0) goto done;
    dtype = PyObject_GetAttrString(props, "dtype");
    if (!dtype || so_parse_dtype(st, dtype, SO_FLOAT32, "dtype", &dt) < 0) goto done;
    if (so_parse_device(st, SO_RD_DEVICE(pl), "placement", &dev) < 0) goto done;
    t = so_tensor_empty(st, ndim, shape, dt, dev);
    if (!t) goto done;
    rg = PyObject_GetAttrString(props, "requires_grad");
    if (!rg) goto done;
    if (PyObject_IsTrue(rg) && PyObject_SetAttrString((PyObject *)t, "requires_grad", Py_True) < 0)
        goto done;
    shard_tp = (PyObject *)so_shard_type(st, "Shard");
    if (!shard_tp) goto done;
    res = PyObject_CallFunctionObjArgs(shard_tp, (PyObject *)t, smd, NULL);
done:
    Py_XDECREF(sizes);
    Py_XDECREF(dtype);
    Py_XDECREF(rg);
    Py_XDECREF((PyObject *)t);
    return res;
}

static int sharded_init(PyObject *self, PyObject *args, PyObject *kwds)
{
    so_state *st = so_state_from_type(Py_TYPE(self));
    PyObject *pg = NULL, *shards = NULL, *props = NULL, *mds = NULL, *fast = NULL;
    st_args a;
    long rank;
    int rc = -1;
    if (!st) return -1;
    if (parse_ctor(args, kwds, &a, 1) < 0) return -1;
    if (base_build(self, &a) < 0) goto done;
    pg = so_st_resolve_pg(a.pg);
    if (!pg) goto done;
    Py_XSETREF(SO_ST(self)->pg, Py_NewRef(pg));
    rank = so_st_global_rank();
    if (rank == -1 && PyErr_Occurred()) goto done;
    mds = md_attr(self, "shards_metadata");
    props = md_attr(self, "tensor_properties");
    if (!mds || !props) goto done;
    fast = PySequence_Fast(mds, "shards_metadata must be a sequence");
    if (!fast) goto done;
    shards = PyList_New(0);
    if (!shards) goto done;
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(fast); i++) {
        PyObject *smd = PySequence_Fast_GET_ITEM(fast, i), *pl, *shard;
        long r;
        pl = PyObject_GetAttrString(smd, "placement");
        if (!pl) goto done;
        rc = so_st_validate_placement(st, pg, pl, &r);
        Py_DECREF(pl);
        if (rc < 0) goto done;
        rc = -1;
        if (r != rank) continue;
        shard = alloc_shard(st, smd, props);
        if (!shard) goto done;
        if (PyList_Append(shards, shard) < 0) {
            Py_DECREF(shard);
            goto done;
        }
        Py_DECREF(shard);
    }
    Py_XSETREF(SO_ST(self)->local_shards, Py_NewRef(shards));
    if (a.init_rrefs) {
        PyErr_SetString(PyExc_RuntimeError,
                        "RPC Framework needs to be initialized using "
                        "torch.distributed.rpc.init_rpc if init_rrefs is set to True");
        goto done;
    }
    rc = 0;
done:
    Py_DECREF(a.size);
    Py_XDECREF(pg);
    Py_XDECREF(shards);
    Py_XDECREF(props);
    Py_XDECREF(mds);
    Py_XDECREF(fast);
    return rc;
}

/* ------------------------------------------------------------------ accessors */

static PyObject *st_local_shards(PyObject *self, PyObject *unused)
{
    (void)unused;
    return Py_NewRef(SO_ST(self)->local_shards);
}

static PyObject *st_local_tensor(PyObject *self, PyObject *unused)
{
    PyObject *shards = SO_ST(self)->local_shards;
    (void)unused;
    if (PyList_GET_SIZE(shards) != 1) {
        PyErr_SetString(PyExc_NotImplementedError, "Only single local shard is supported.");
        return NULL;
    }
    return PyObject_GetAttrString(PyList_GET_ITEM(shards, 0), "tensor");
}

static PyObject *st_metadata(PyObject *self, PyObject *unused)
{
    (void)unused;
    return Py_NewRef(SO_ST(self)->metadata);
}

static PyObject *st_sharding_spec(PyObject *self, PyObject *unused)
{
    (void)unused;
    return Py_NewRef(SO_ST(self)->spec);
}

static PyObject *st_remote_shards(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    PyErr_SetString(PyExc_RuntimeError,
                    "ShardedTensor created with init_rrefs=False, no RRefs to remote shards "
                    "available");
    return NULL;
}

static PyObject *st_size(PyObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"dim", NULL};
    PyObject *dim = Py_None, *size, *res;
    Py_ssize_t n;
    long long d;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|O:size", kwlist, &dim)) return NULL;
    size = md_attr(self, "size");
    if (!size || dim == Py_None) return size;
    n = PyObject_Size(size);
    if (n < 0) goto error;
    d = PyLong_AsLongLong(dim);
    if (d == -1 && PyErr_Occurred()) goto error;
    if (d < -n || d >= n) {
        PyErr_Format(PyExc_IndexError,
                     "Dimension out of range (expected to be in range of [%zd, %zd], but got %lld)",
                     -n, n - 1, d);
        goto error;
    }
    if (d < 0) d += n;
    res = PySequence_GetItem(size, (Py_ssize_t)d);
    Py_DECREF(size);
    return res;
error:
    Py_DECREF(size);
    return NULL;
}

static PyObject *st_dim(PyObject *self, PyObject *unused)
{
    PyObject *size = md_attr(self, "size");
    Py_ssize_t n;
    (void)unused;
    if (!size) return NULL;
    n = PyObject_Size(size);
    Py_DECREF(size);
    return n < 0 ? NULL : PyLong_FromSsize_t(n);
}

static PyObject *st_numel(PyObject *self, PyObject *unused)
{
    PyObject *size = md_attr(self, "size");
    (void)unused;
    if (!size) return NULL;
    Py_SETREF(size, PyObject_CallMethod(size, "numel", NULL));
    return size;
}

static PyObject *st_is_contiguous(PyObject *self, PyObject *args, PyObject *kwds)
{
    (void)self;
    (void)args;
    (void)kwds;
    Py_RETURN_TRUE;
}

static PyObject *st_is_floating_point(PyObject *self, PyObject *unused)
{
    PyObject *dt = prop_attr(self, "dtype");
    (void)unused;
    if (!dt) return NULL;
    Py_SETREF(dt, PyObject_GetAttrString(dt, "is_floating_point"));
    return dt;
}

static PyObject *st_is_pinned(PyObject *self, PyObject *unused)
{
    (void)unused;
    return prop_attr(self, "pin_memory");
}

static PyObject *st_repr(PyObject *self)
{
    return PyUnicode_FromFormat("%s(%R)", "ShardedTensor", SO_ST(self)->metadata);
}

static Py_hash_t st_hash(PyObject *self)
{
    /* torch: hash(id(self)) */
    Py_hash_t h = (Py_hash_t)(uintptr_t)self;
    return h == -1 ? -2 : h;
}

/* properties */
static PyObject *get_shape(PyObject *self, void *c)
{
    (void)c;
    return md_attr(self, "size");
}
static PyObject *get_ndim(PyObject *self, void *c)
{
    (void)c;
    return st_dim(self, NULL);
}
static PyObject *get_dtype(PyObject *self, void *c)
{
    (void)c;
    return prop_attr(self, "dtype");
}
static PyObject *get_layout(PyObject *self, void *c)
{
    (void)c;
    return prop_attr(self, "layout");
}
static PyObject *get_requires_grad(PyObject *self, void *c)
{
    (void)c;
    return prop_attr(self, "requires_grad");
}
static int set_requires_grad(PyObject *self, PyObject *v, void *c)
{
    (void)self;
    (void)v;
    (void)c;
    PyErr_SetString(PyExc_RuntimeError,
                    "torch function '__set__', with args: (requires_grad) not supported for "
                    "ShardedTensor! Use requires_grad_() instead.");
    return -1;
}
static PyObject *get_none(PyObject *self, void *c)
{
    (void)self;
    (void)c;
    Py_RETURN_NONE;
}
static PyObject *get_true(PyObject *self, void *c)
{
    (void)self;
    (void)c;
    Py_RETURN_TRUE;
}
static PyObject *get_false(PyObject *self, void *c)
{
    (void)self;
    (void)c;
    Py_RETURN_FALSE;
}

/* device of the first local shard; with none, cpu unless the group's backend is nccl
 * (then the current CUDA device), as torch's `device` op. */
static PyObject *get_device(PyObject *self, void *c)
{
    so_state *st = so_state_from_type(Py_TYPE(self));
    PyObject *shards = SO_ST(self)->local_shards, *backend = NULL, *dev;
    int nccl = 0;
    (void)c;
    if (!st) return NULL;
    if (PyList_GET_SIZE(shards) > 0) {
        PyObject *t = PyObject_GetAttrString(PyList_GET_ITEM(shards, 0), "tensor");
        if (!t) return NULL;
        dev = PyObject_GetAttrString(t, "device");
        Py_DECREF(t);
        return dev;
    }
    if (SO_ST(self)->pg != Py_None) {
        backend = PyObject_GetAttrString(SO_ST(self)->pg, "_backend");
        if (!backend) PyErr_Clear();
        else nccl = PyUnicode_Check(backend) && PyUnicode_CompareWithASCIIString(backend, "nccl") == 0;
        Py_XDECREF(backend);
    }
    if (nccl) {
        PyObject *cur = so_st_import("shardopt.cuda", "current_device"), *idx;
        if (!cur) return NULL;
        idx = PyObject_CallNoArgs(cur);
        Py_DECREF(cur);
        if (!idx) return NULL;
        dev = PyObject_CallFunction((PyObject *)st->device_type, "sO", "cuda", idx);
        Py_DECREF(idx);
        return dev;
    }
    return PyObject_CallFunction((PyObject *)st->device_type, "s", "cpu");
}

static PyObject *get_pg(PyObject *self, void *c)
{
    (void)c;
    return Py_NewRef(SO_ST(self)->pg);
}
static int set_pg(PyObject *self, PyObject *v, void *c)
{
    (void)c;
    if (!v) v = Py_None;
    Py_XSETREF(SO_ST(self)->pg, Py_NewRef(v));
    return 0;
}
static int set_obj_field(PyObject **slot, PyObject *v, const char *name)
{
    if (!v) {
        PyErr_Format(PyExc_AttributeError, "cannot delete %s", name);
        return -1;
    }
    Py_XSETREF(*slot, Py_NewRef(v));
    return 0;
}
static PyObject *get_local_shards_f(PyObject *self, void *c)
{
    (void)c;
    return Py_NewRef(SO_ST(self)->local_shards);
}
static int set_local_shards_f(PyObject *self, PyObject *v, void *c)
{
    (void)c;
    if (v && !PyList_Check(v)) {
        PyErr_SetString(PyExc_TypeError, "_local_shards must be a list of Shard");
        return -1;
    }
    return set_obj_field(&SO_ST(self)->local_shards, v, "_local_shards");
}
static PyObject *get_metadata_f(PyObject *self, void *c)
{
    (void)c;
    return Py_NewRef(SO_ST(self)->metadata);
}
static int set_metadata_f(PyObject *self, PyObject *v, void *c)
{
    (void)c;
    return set_obj_field(&SO_ST(self)->metadata, v, "_metadata");
}
static PyObject *get_spec_f(PyObject *self, void *c)
{
    (void)c;
    return Py_NewRef(SO_ST(self)->spec);
}
static int set_spec_f(PyObject *self, PyObject *v, void *c)
{
    (void)c;
    return set_obj_field(&SO_ST(self)->spec, v, "_sharding_spec");
}
static PyObject *get_init_rrefs(PyObject *self, void *c)
{
    (void)c;
    return PyBool_FromLong(SO_ST(self)->init_rrefs);
}

static PyGetSetDef st_getset[] = {
    {"shape", get_shape, NULL, "the global size (shardopt.Size)", NULL},
    {"ndim", get_ndim, NULL, NULL, NULL},
    {"dtype", get_dtype, NULL, NULL, NULL},
    {"layout", get_layout, NULL, NULL, NULL},
    {"requires_grad", get_requires_grad, set_requires_grad,
     "read-only (use requires_grad_())", NULL},
    {"grad", get_none, NULL, "always None: gradients live on the local shard tensors", NULL},
    {"grad_fn", get_none, NULL, NULL, NULL},
    {"is_leaf", get_true, NULL, NULL, NULL},
    {"is_meta", get_false, NULL, NULL, NULL},
    {"device", get_device, NULL, "device of the first local shard (see docs)", NULL},
    {"_process_group", get_pg, set_pg, NULL, NULL},
    {"_local_shards", get_local_shards_f, set_local_shards_f, NULL, NULL},
    {"_metadata", get_metadata_f, set_metadata_f, NULL, NULL},
    {"_sharding_spec", get_spec_f, set_spec_f, NULL, NULL},
    {"_init_rrefs", get_init_rrefs, NULL, NULL, NULL},
    {NULL}};

static PyMethodDef st_methods[] = {
    {"local_shards", st_local_shards, METH_NOARGS, "list of this rank's Shard objects"},
    {"local_tensor", st_local_tensor, METH_NOARGS,
     "the tensor of the single local shard (NotImplementedError otherwise)"},
    {"metadata", st_metadata, METH_NOARGS, "the ShardedTensorMetadata (the object itself)"},
    {"sharding_spec", st_sharding_spec, METH_NOARGS, "the sharding spec (possibly inferred)"},
    {"remote_shards", st_remote_shards, METH_NOARGS,
     "always raises: shardopt has no RPC, so there are no RRefs to remote shards"},
    {"size", (PyCFunction)(void (*)(void))st_size, METH_VARARGS | METH_KEYWORDS,
     "size(dim=None): the global size, or its entry `dim` (negative dims count from the end)"},
    {"dim", st_dim, METH_NOARGS, NULL},
    {"ndimension", st_dim, METH_NOARGS, NULL},
    {"numel", st_numel, METH_NOARGS, "number of elements of the global tensor"},
    {"is_contiguous", (PyCFunction)(void (*)(void))st_is_contiguous, METH_VARARGS | METH_KEYWORDS,
     "True (local shards are contiguous)"},
    {"is_floating_point", st_is_floating_point, METH_NOARGS, NULL},
    {"is_pinned", st_is_pinned, METH_NOARGS, "the metadata's pin_memory"},
    {"_init_from_local_shards_and_global_metadata",
     (PyCFunction)(void (*)(void))so_st_base_init_from_md, METH_VARARGS | METH_KEYWORDS | METH_CLASS,
     "(local_shards, sharded_tensor_metadata, sharding_spec=None): no process group; only the "
     "overlap and coverage checks (shards may be non-contiguous, all in one process)."},
    {NULL}};

static PyMemberDef st_members[] = {
    {"__dictoffset__", T_PYSSIZET, offsetof(SoShardedTensor, dict), READONLY, NULL},
    {"__weaklistoffset__", T_PYSSIZET, offsetof(SoShardedTensor, weakreflist), READONLY, NULL},
    {NULL}};

static PyType_Slot base_slots[] = {
    {Py_tp_new, st_new},
    {Py_tp_init, base_init},
    {Py_tp_repr, st_repr},
    {Py_tp_hash, st_hash},
    {Py_tp_methods, st_methods},
    {Py_tp_getset, st_getset},
    {Py_tp_members, st_members},
    {Py_tp_traverse, st_traverse},
    {Py_tp_clear, st_clear},
    {Py_tp_dealloc, st_dealloc},
    {Py_tp_doc,
     "ShardedTensorBase(sharding_spec, *size, dtype=None, layout=strided, requires_grad=False, "
     "pin_memory=False, memory_format=contiguous_format): a sharded tensor's metadata and "
     "local shards without a process group."},
    {0, NULL}};

static PyType_Spec base_spec = {
    .name = "shardopt._C.ShardedTensorBase",
    .basicsize = sizeof(SoShardedTensor),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE,
    .slots = base_slots};

static PyMethodDef sharded_methods[] = {
    {"_init_from_local_shards_and_global_metadata",
     (PyCFunction)(void (*)(void))so_st_init_from_md, METH_VARARGS | METH_KEYWORDS | METH_CLASS,
     "(local_shards, sharded_tensor_metadata, process_group=None, init_rrefs=False, "
     "sharding_spec=None): trust the global metadata, check this rank's shards against it "
     "(no collectives)."},
    {NULL}};

static PyType_Slot sharded_slots[] = {
    {Py_tp_init, sharded_init},
    {Py_tp_traverse, st_traverse},
    {Py_tp_clear, st_clear},
    {Py_tp_dealloc, st_dealloc},
    {Py_tp_methods, sharded_methods},
    {Py_tp_doc,
     "ShardedTensor(sharding_spec, *size, dtype=None, layout=strided, requires_grad=False, "
     "pin_memory=False, memory_format=contiguous_format, process_group=None, "
     "init_rrefs=False): a tensor sharded across the ranks of a process group; this rank "
     "allocates (uninitialised) the shards whose placement names its global rank."},
    {0, NULL}};

static PyType_Spec sharded_spec = {
    .name = "shardopt._C.ShardedTensor",
    .basicsize = sizeof(SoShardedTensor),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE,
    .slots = sharded_slots};

int so_register_sharded_tensor(PyObject *m, so_state *st)
{
    PyTypeObject *base, *sharded;
    base = so_shard_add_type(m, st, &base_spec, "ShardedTensorBase");
    if (!base) return -1;
    sharded = (PyTypeObject *)PyType_FromModuleAndSpec(m, &sharded_spec, (PyObject *)base);
    if (!sharded) return -1;
    if (PyModule_AddType(m, sharded) < 0 ||
        PyDict_SetItemString(st->extra, "ShardedTensor", (PyObject *)sharded) < 0) {
        Py_DECREF(sharded);
        return -1;
    }
    Py_DECREF(sharded);
    return so_register_st_init(m, st);
}
