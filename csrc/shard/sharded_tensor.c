/* sharded_tensor.c — _C.ShardedTensorBase: the data of a sharded tensor and what derives
 * from it without communication.
 *
 * A ShardedTensor owns no storage of its own: it is the list of this rank's Shards, the
 * global ShardedTensorMetadata, the sharding spec and the process group.  This type holds
 * those four fields (typed slots, visible to the GC, plus __dict__ and weakrefs) and the
 * surface that only reads them: read-only tensor properties taken from the metadata
 * (dtype, layout, shape/size(), dim()/ndim, numel(), requires_grad -- assignment raises
 * torch's error --, is_contiguous(), is_floating_point(), is_pinned(), grad/grad_fn/
 * is_leaf/is_meta), the accessors (local_shards(), local_tensor(), metadata(),
 * sharding_spec(), remote_shards()), repr "ShardedTensor(<metadata>)" and an id-based hash.
 *
 * Everything that talks to a process group or builds Python objects -- construction,
 * init_from_local_shards, gather, moves, copies, pickling, dispatch -- is the Python
 * subclass shardopt.sharded_tensor.ShardedTensor(ShardedTensorBase(_C.ShardedTensorBase)),
 * the way shardopt.Tensor sits on _C.TensorBase.  The layout/coverage checks it runs are
 * C (validate.c).
 */
#include "sharded_tensor.h"

/* ------------------------------------------------------------------ helpers */

/* metadata.<name> or metadata.tensor_properties.<name>; new ref */
static PyObject *md_attr(PyObject *self, const char *name)
{
    PyObject *md = SO_ST(self)->metadata;
    if (!md || md == Py_None)
        return PyErr_Format(PyExc_RuntimeError, "ShardedTensor is not initialised (no metadata)");
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
    if (PyList_GET_SIZE(shards) != 1)
        return PyErr_Format(PyExc_NotImplementedError, "Only single local shard is supported.");
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
    return PyErr_Format(PyExc_RuntimeError,
                        "ShardedTensor created with init_rrefs=False, no RRefs to remote shards "
                        "available");
}

static PyObject *st_size(PyObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"dim", NULL};
    PyObject *dim = Py_None, *size, *res = NULL;
    Py_ssize_t n;
    long long d;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|O:size", kwlist, &dim)) return NULL;
    size = md_attr(self, "size");
    if (!size || dim == Py_None) return size;
    SO_CHECK_RC(n = PyObject_Size(size), done);
    d = PyLong_AsLongLong(dim);
    if (d == -1 && PyErr_Occurred()) goto done;
    SO_CHECK(d >= -n && d < n, done, PyExc_IndexError,
             "Dimension out of range (expected to be in range of [%zd, %zd], but got %lld)",
             -n, n - 1, d);
    res = PySequence_GetItem(size, (Py_ssize_t)(d < 0 ? d + n : d));
done:
    Py_DECREF(size);
    return res;
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
    return so_fail(PyExc_RuntimeError,
                   "torch function '__set__', with args: (requires_grad) not supported for "
                   "ShardedTensor! Use requires_grad_() instead.");
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
    if (!v) return so_fail(PyExc_AttributeError, "cannot delete %s", name);
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
    if (v && !PyList_Check(v))
        return so_fail(PyExc_TypeError, "_local_shards must be a list of Shard, not %s",
                       Py_TYPE(v)->tp_name);
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
static int set_init_rrefs(PyObject *self, PyObject *v, void *c)
{
    int b;
    (void)c;
    if (!v) return so_fail(PyExc_AttributeError, "cannot delete _init_rrefs");
    if ((b = PyObject_IsTrue(v)) < 0) return -1;
    SO_ST(self)->init_rrefs = b;
    return 0;
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
    {"_process_group", get_pg, set_pg, NULL, NULL},
    {"_local_shards", get_local_shards_f, set_local_shards_f, NULL, NULL},
    {"_metadata", get_metadata_f, set_metadata_f, NULL, NULL},
    {"_sharding_spec", get_spec_f, set_spec_f, NULL, NULL},
    {"_init_rrefs", get_init_rrefs, set_init_rrefs, NULL, NULL},
    {"__dict__", PyObject_GenericGetDict, PyObject_GenericSetDict, NULL, NULL},
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
    {NULL}};

static PyMemberDef st_members[] = {
    {"__dictoffset__", T_PYSSIZET, offsetof(SoShardedTensor, dict), READONLY, NULL},
    {"__weaklistoffset__", T_PYSSIZET, offsetof(SoShardedTensor, weakreflist), READONLY, NULL},
    {NULL}};

static PyType_Slot base_slots[] = {
    {Py_tp_new, st_new},
    {Py_tp_repr, st_repr},
    {Py_tp_hash, st_hash},
    {Py_tp_methods, st_methods},
    {Py_tp_getset, st_getset},
    {Py_tp_members, st_members},
    {Py_tp_traverse, st_traverse},
    {Py_tp_clear, st_clear},
    {Py_tp_dealloc, st_dealloc},
    {Py_tp_doc,
     "The data of a sharded tensor (local shards, global metadata, sharding spec, process "
     "group) and the properties derived from it; see shardopt.sharded_tensor.ShardedTensor."},
    {0, NULL}};

static PyType_Spec base_spec = {
    .name = "shardopt._C.ShardedTensorBase",
    .basicsize = sizeof(SoShardedTensor),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE,
    .slots = base_slots};

int so_register_sharded_tensor(PyObject *m, so_state *st)
{
    return so_shard_add_type(m, &base_spec, NULL, &st->shard.sharded_tensor_type);
}
