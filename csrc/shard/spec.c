/* spec.c — the data halves of ChunkShardingSpec and EnumerableShardingSpec, and
 * DevicePlacementSpec: torch's dataclass specs as C records (writable fields, dataclass
 * ==/repr, unhashable) with their constructor validation and the chunk rule.
 *
 * The Python subclasses (shardopt/sharding_spec: ChunkShardingSpec(_C.ChunkShardingSpecBase,
 * ShardingSpec), EnumerableShardingSpec(...)) add build_metadata -- wrapping the shard
 * records computed here in a ShardedTensorMetadata -- and shard(), which needs a process
 * group and ShardedTensor from the layer above.  So nothing here reaches up.
 */
#include "shard.h"

/* ------------------------------------------------------------------ helpers */

/* torch's ChunkShardingSpec._verify_dim */
static int verify_dim(PyObject *dim)
{
    if (PyUnicode_Check(dim))
        return so_fail(PyExc_NotImplementedError,
                       "ChunkShardingSpec does not support named dimension yet!");
    if (!PyLong_Check(dim))
        return so_fail(PyExc_ValueError, "Sharding dim needs to be an integer, found: %S", dim);
    return 0;
}

static int no_placements_error(void)
{
    /* torch divides by zero later; shardopt deviation §12.5 rejects it up front */
    return so_fail(PyExc_ValueError,
                   "ChunkShardingSpec needs at least one placement, got an empty placements list");
}

/* ------------------------------------------------------------------ ChunkShardingSpec */

static const char *const chunk_names[] = {"dim", "placements"};

static int chunk_init(PyObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"dim", "placements", NULL};
    PyObject *dim, *pls;
    so_state *st = so_state_from_type(Py_TYPE(self));
    Py_ssize_t n;
    if (!st) return -1;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO:ChunkShardingSpec", kwlist, &dim, &pls))
        return -1;
    Py_XSETREF(SO_REC(self)->f[0], Py_NewRef(dim));
    /* torch parses the caller's list in place; other sequences become a new list */
    pls = PyList_Check(pls) ? Py_NewRef(pls) : PySequence_List(pls);
    if (!pls) return -1;
    Py_XSETREF(SO_REC(self)->f[1], pls);
    if (verify_dim(dim) < 0) return -1;
    n = PyList_GET_SIZE(pls);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *rd = so_remote_device_coerce(st, PyList_GET_ITEM(pls, i));
        if (!rd) return -1;
        if (PyList_SetItem(pls, i, rd) < 0) return -1;
        n = PyList_GET_SIZE(pls); /* parsing ran Python code; stay in bounds */
    }
    if (n == 0) return no_placements_error();
    return 0;
}

/* _shards_metadata(tensor_sizes): one ShardMetadata per placement, torch.chunk's rule
 * along `dim` (trailing chunks may be empty). */
static PyObject *chunk_shards_metadata(PyObject *self, PyObject *sizes_obj)
{
    PyObject *dim = SO_REC(self)->f[0], *fast = NULL, *pls = NULL;
    PyObject *shards = NULL, *res = NULL;
    PyTypeObject *smd_type;
    so_state *st = so_state_from_type(Py_TYPE(self));
    int64_t *sizes = NULL, split;
    long long d;
    Py_ssize_t ndim, nchunks;
    if (!st) return NULL;
    smd_type = st->shard.shard_metadata_type;
    if (!dim || !SO_REC(self)->f[1])
        return PyErr_Format(PyExc_TypeError, "ChunkShardingSpec is not initialised");
    fast = PySequence_Fast(sizes_obj, "tensor_sizes must be a sequence of ints");
    if (!fast) return NULL;
    ndim = PySequence_Fast_GET_SIZE(fast);
    if (verify_dim(dim) < 0) goto done;
    d = PyLong_AsLongLong(dim);
    if (d == -1 && PyErr_Occurred()) {
        if (!PyErr_ExceptionMatches(PyExc_OverflowError)) goto done;
        PyErr_Clear();
        d = (long long)ndim; /* out of range either way */
    }
    if (d >= ndim || d < -ndim)
        SO_FAIL(done, PyExc_ValueError, "Invalid sharding dim: %S", dim);
    if (d < 0) d += ndim;
    sizes = PyMem_Malloc(sizeof(int64_t) * (size_t)(ndim + 1));
    if (!sizes) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < ndim; i++) {
        PyObject *ix = PyNumber_Index(PySequence_Fast_GET_ITEM(fast, i));
        if (!ix) goto done;
        sizes[i] = PyLong_AsLongLong(ix);
        Py_DECREF(ix);
        if (sizes[i] == -1 && PyErr_Occurred()) goto done;
    }
    pls = PySequence_Fast(SO_REC(self)->f[1], "placements must be a sequence");
    if (!pls) goto done;
    nchunks = PySequence_Fast_GET_SIZE(pls);
    if (nchunks == 0) {
        no_placements_error();
        goto done;
    }
    split = so_split_size(sizes[d], nchunks);
    shards = PyList_New(nchunks);
    if (!shards) goto done;
    for (Py_ssize_t idx = 0; idx < nchunks; idx++) {
        PyObject *off = PyList_New(ndim), *sz = PyList_New(ndim), *md;
        if (!off || !sz) {
            Py_XDECREF(off);
            Py_XDECREF(sz);
            goto done;
        }
        for (Py_ssize_t i = 0; i < ndim; i++) {
            /* offsets are split*idx, unclamped: trailing empty chunks may start past the end */
            int64_t o = i == d ? split * idx : 0;
            int64_t z = i == d ? so_chunked_dim_size(sizes[d], split, idx) : sizes[i];
            PyObject *po = PyLong_FromLongLong(o), *pz = PyLong_FromLongLong(z);
            if (!po || !pz) {
                Py_XDECREF(po);
                Py_XDECREF(pz);
                Py_DECREF(off);
                Py_DECREF(sz);
                goto done;
            }
            PyList_SET_ITEM(off, i, po);
            PyList_SET_ITEM(sz, i, pz);
        }
        md = PyObject_CallFunctionObjArgs((PyObject *)smd_type, off, sz,
                                          PySequence_Fast_GET_ITEM(pls, idx), NULL);
        Py_DECREF(off);
        Py_DECREF(sz);
        if (!md) goto done;
        PyList_SET_ITEM(shards, idx, md);
    }
    res = Py_NewRef(shards);
done:
    Py_XDECREF(fast);
    Py_XDECREF(pls);
    Py_XDECREF(shards);
    PyMem_Free(sizes);
    return res;
}

static PyObject *chunk_repr(PyObject *self) { return so_record_repr(self, 2, chunk_names); }
static PyObject *chunk_richcompare(PyObject *a, PyObject *b, int op)
{
    return so_record_richcompare(a, b, op, 2);
}
static PyObject *chunk_reduce(PyObject *self, PyObject *unused)
{
    (void)unused;
    return so_record_reduce(self, 2);
}

static PyMethodDef chunk_methods[] = {
    {"_shards_metadata", chunk_shards_metadata, METH_O,
     "_shards_metadata(tensor_sizes) -> [ShardMetadata], one per placement (torch.chunk's rule; "
     "trailing shards may be empty)."},
    {"__reduce__", chunk_reduce, METH_NOARGS, NULL},
    {NULL}};

static PyMemberDef chunk_members[] = {
    {"dim", T_OBJECT_EX, SO_REC_FIELD_OFFSET(0), 0, "the sharded dimension (may be negative)"},
    {"placements", T_OBJECT_EX, SO_REC_FIELD_OFFSET(1), 0, "list of _remote_device, one per shard"},
    {NULL}};

SO_RECORD_GC(chunk, 2)

static PyType_Slot chunk_slots[] = {
    {Py_tp_init, chunk_init},
    {Py_tp_new, PyType_GenericNew},
    {Py_tp_repr, chunk_repr},
    {Py_tp_richcompare, chunk_richcompare},
    {Py_tp_hash, PyObject_HashNotImplemented},
    {Py_tp_methods, chunk_methods},
    {Py_tp_members, chunk_members},
    {Py_tp_traverse, chunk_traverse},
    {Py_tp_clear, chunk_clear},
    {Py_tp_dealloc, chunk_dealloc},
    {Py_tp_doc,
     "ChunkShardingSpec(dim, placements): shard `dim` into len(placements) chunks like "
     "torch.chunk, chunk i on placements[i]."},
    {0, NULL}};

static PyType_Spec chunk_spec = {
    .name = "shardopt._C.ChunkShardingSpecBase",
    .basicsize = sizeof(SoRecord) + 2 * sizeof(PyObject *),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE,
    .slots = chunk_slots};

/* ------------------------------------------------------------------ EnumerableShardingSpec */

static const char *const enum_names[] = {"shards"};

static int enum_init(PyObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"shards", NULL};
    PyObject *shards, *fast = NULL;
    Py_ssize_t rank = -1, n;
    int rc = -1;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O:EnumerableShardingSpec", kwlist, &shards))
        return -1;
    Py_XSETREF(SO_REC(self)->f[0], Py_NewRef(shards));
    fast = PySequence_Fast(shards, "shards must be a sequence of ShardMetadata");
    SO_CHECK_PTR(fast, done);
    n = PySequence_Fast_GET_SIZE(fast);
    SO_CHECK(n > 0, done, PyExc_ValueError, "Empty shard list provided: %R", shards);
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_ssize_t r = so_shard_md_ndim(PySequence_Fast_GET_ITEM(fast, i));
        SO_CHECK_RC(r, done);
        SO_CHECK(rank == -1 || rank == r, done, PyExc_ValueError,
                 "Found inconsistent ranks for shards: %zd and %zd", rank, r);
        rank = r;
    }
    rc = so_validate_non_overlapping(shards);
done:
    Py_XDECREF(fast);
    return rc;
}

static PyObject *enum_repr(PyObject *self) { return so_record_repr(self, 1, enum_names); }
static PyObject *enum_richcompare(PyObject *a, PyObject *b, int op)
{
    return so_record_richcompare(a, b, op, 1);
}
static PyObject *enum_reduce(PyObject *self, PyObject *unused)
{
    (void)unused;
    return so_record_reduce(self, 1);
}

static PyMethodDef enum_methods[] = {
    {"__reduce__", enum_reduce, METH_NOARGS, NULL},
    {NULL}};

static PyMemberDef enum_members[] = {
    {"shards", T_OBJECT_EX, SO_REC_FIELD_OFFSET(0), 0, "list of ShardMetadata"},
    {NULL}};

SO_RECORD_GC(enum, 1)

static PyType_Slot enum_slots[] = {
    {Py_tp_init, enum_init},
    {Py_tp_new, PyType_GenericNew},
    {Py_tp_repr, enum_repr},
    {Py_tp_richcompare, enum_richcompare},
    {Py_tp_hash, PyObject_HashNotImplemented},
    {Py_tp_methods, enum_methods},
    {Py_tp_members, enum_members},
    {Py_tp_traverse, enum_traverse},
    {Py_tp_clear, enum_clear},
    {Py_tp_dealloc, enum_dealloc},
    {Py_tp_doc,
     "EnumerableShardingSpec(shards): an explicit list of non-overlapping ShardMetadata."},
    {0, NULL}};

static PyType_Spec enum_spec = {
    .name = "shardopt._C.EnumerableShardingSpecBase",
    .basicsize = sizeof(SoRecord) + 1 * sizeof(PyObject *),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE,
    .slots = enum_slots};

/* ------------------------------------------------------------------ DevicePlacementSpec */

static const char *const dps_names[] = {"device"};

static int dps_init(PyObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"device", NULL};
    PyObject *dev, *rd;
    so_state *st = so_state_from_type(Py_TYPE(self));
    if (!st) return -1;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O:DevicePlacementSpec", kwlist, &dev)) return -1;
    rd = so_remote_device_coerce(st, dev);
    if (!rd) return -1;
    Py_XSETREF(SO_REC(self)->f[0], rd);
    return 0;
}

static PyObject *dps_repr(PyObject *self) { return so_record_repr(self, 1, dps_names); }
static PyObject *dps_richcompare(PyObject *a, PyObject *b, int op)
{
    return so_record_richcompare(a, b, op, 1);
}
static PyObject *dps_reduce(PyObject *self, PyObject *unused)
{
    (void)unused;
    return so_record_reduce(self, 1);
}

static PyMethodDef dps_methods[] = {{"__reduce__", dps_reduce, METH_NOARGS, NULL}, {NULL}};

static PyMemberDef dps_members[] = {
    {"device", T_OBJECT_EX, SO_REC_FIELD_OFFSET(0), 0, "the _remote_device"},
    {NULL}};

SO_RECORD_GC(dps, 1)

static PyType_Slot dps_slots[] = {
    {Py_tp_init, dps_init},
    {Py_tp_new, PyType_GenericNew},
    {Py_tp_repr, dps_repr},
    {Py_tp_richcompare, dps_richcompare},
    {Py_tp_hash, PyObject_HashNotImplemented},
    {Py_tp_methods, dps_methods},
    {Py_tp_members, dps_members},
    {Py_tp_traverse, dps_traverse},
    {Py_tp_clear, dps_clear},
    {Py_tp_dealloc, dps_dealloc},
    {Py_tp_doc, "DevicePlacementSpec(device): place an entity on one (remote) device."},
    {0, NULL}};

static PyType_Spec dps_spec = {
    .name = "shardopt._C.DevicePlacementSpec",
    .basicsize = sizeof(SoRecord) + 1 * sizeof(PyObject *),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE,
    .slots = dps_slots};

/* ------------------------------------------------------------------ registration */

int so_register_shard(PyObject *m, so_state *st)
{
    if (so_register_remote_device(m, st) < 0) return -1;
    if (so_register_shard_metadata(m, st) < 0) return -1;
    if (so_register_shard_validate(m, st) < 0) return -1;
    if (so_shard_add_type(m, &chunk_spec, NULL, &st->shard.chunk_spec_type) < 0) return -1;
    if (so_shard_add_type(m, &enum_spec, NULL, &st->shard.enum_spec_type) < 0) return -1;
    return so_shard_add_type(m, &dps_spec, NULL, &st->shard.placement_spec_type);
}
