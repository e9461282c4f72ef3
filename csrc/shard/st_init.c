/* st_init.c — assembling a ShardedTensor from shards that already exist, with torch's
 * checks and messages (spec §4.2, §4.3):
 *
 *   ShardedTensorBase._init_from_local_shards_and_global_metadata(local_shards, metadata,
 *       sharding_spec=None)          no process group: overlap + coverage checks only
 *   ShardedTensor._init_from_local_shards_and_global_metadata(local_shards, metadata,
 *       process_group=None, init_rrefs=False, sharding_spec=None)
 *                                    no collectives: this rank's shards against the trusted
 *                                    global metadata
 *   _C._st_local_metadata(local_shards, global_size, process_group, rank)
 *                                    step 1 of init_from_local_shards: this rank's shards
 *                                    agree with each other -> its local ShardedTensorMetadata
 *   _C._st_global_metadata(gathered, recalc)
 *                                    step 2 after the all_gather: merge the ranks' metadata in
 *                                    rank order (cross-rank checks), optionally recompute a
 *                                    row-wise layout (None global size), then overlap and
 *                                    coverage checks
 *
 * The collective between step 1 and step 2 runs in Python (sharded_tensor/__init__.py),
 * which ships step 1's error inside the exchange so that every rank raises.
 */
#include "sharded_tensor.h"

/* ------------------------------------------------------------------ small helpers */

/* attr of obj, or of obj.tensor_properties */
static PyObject *props_of(PyObject *md, const char *name)
{
    PyObject *p = PyObject_GetAttrString(md, "tensor_properties"), *v;
    if (!p) return NULL;
    v = PyObject_GetAttrString(p, name);
    Py_DECREF(p);
    return v;
}

/* list(tensor.size()) */
static PyObject *tensor_size_list(PyObject *t)
{
    PyObject *s = PyObject_CallMethod(t, "size", NULL), *l;
    if (!s) return NULL;
    l = PySequence_List(s);
    Py_DECREF(s);
    return l;
}

/* tensor.layout, defaulting to shardopt.strided (shardopt tensors are always strided) */
static PyObject *tensor_layout(PyObject *t)
{
    PyObject *l = PyObject_GetAttrString(t, "layout");
    if (l) return l;
    PyErr_Clear();
    return so_st_import("shardopt", "strided");
}

/* Python `a != b` as 1/0/-1 */
static int ne(PyObject *a, PyObject *b) { return PyObject_RichCompareBool(a, b, Py_NE); }

/* §4.3's message: "Local shards' tensor {prop} property is incompatible with {what} on rank r" */
static int mismatch_global(PyObject *expected, PyObject *actual, const char *prop, long rank,
                           int is_property)
{
    const char *what = is_property ? "tensor property" : "local ShardMetadata";
    int d = ne(expected, actual);
    if (d <= 0) return d;
    PyErr_Format(PyExc_ValueError,
                 "Local shards' tensor %s property is incompatible with %s on rank %ld: %s %s=%S, "
                 "local shard tensor %s=%S.", prop, what, rank, what, prop, expected, prop, actual);
    return -1;
}

/* §4.2's per-rank message */
static int mismatch_local(PyObject *expected, PyObject *actual, const char *prop, long rank)
{
    int d = ne(expected, actual);
    if (d <= 0) return d;
    PyErr_Format(PyExc_ValueError,
                 "Local shards' tensor %s property need to be the same on rank:%ld! Found one "
                 "local shard tensor %s=%S, the other local shard tensor %s=%S.",
                 prop, rank, prop, expected, prop, actual);
    return -1;
}

/* §4.2's cross-rank message */
static int mismatch_ranks(PyObject *expected, PyObject *actual, const char *prop, Py_ssize_t r0,
                          Py_ssize_t r1)
{
    int d = ne(expected, actual);
    if (d <= 0) return d;
    PyErr_Format(PyExc_ValueError,
                 "ShardedTensor %s property does not match from different ranks! Found %s=%S on "
                 "rank:%zd, and %s=%S on rank:%zd.", prop, prop, expected, r0, prop, actual, r1);
    return -1;
}

static int check_layout_and_coverage(PyObject *shards_md, PyObject *size)
{
    PyObject *dims;
    int rc;
    if (so_validate_non_overlapping(shards_md) < 0) return -1;
    dims = PySequence_List(size);
    if (!dims) return -1;
    rc = so_check_tensor(shards_md, dims);
    Py_DECREF(dims);
    return rc;
}

static PyObject *infer_spec(PyObject *shards_md)
{
    PyObject *fn = so_st_import("shardopt._C", "_infer_sharding_spec_from_shards_metadata"), *r;
    if (!fn) return NULL;
    r = PyObject_CallOneArg(fn, shards_md);
    Py_DECREF(fn);
    return r;
}

/* ------------------------------------------------------------------ no-pg (Base) flavour */

PyObject *so_st_base_init_from_md(PyObject *cls, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"local_shards", "sharded_tensor_metadata", "sharding_spec", NULL};
    PyObject *shards, *md, *spec = Py_None, *mds = NULL, *size = NULL, *res = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO|O:_init_from_local_shards_and_global_metadata",
                                     kwlist, &shards, &md, &spec))
        return NULL;
    mds = PyObject_GetAttrString(md, "shards_metadata");
    size = PyObject_GetAttrString(md, "size");
    if (!mds || !size) goto done;
    if (check_layout_and_coverage(mds, size) < 0) goto done;
    spec = spec == Py_None ? infer_spec(mds) : Py_NewRef(spec);
    if (!spec) goto done;
    res = so_st_from_parts((PyTypeObject *)cls, shards, md, Py_None, spec, 0);
    Py_DECREF(spec);
done:
    Py_XDECREF(mds);
    Py_XDECREF(size);
    return res;
}

/* ------------------------------------------------------------------ process-group flavour */

/* replaces p1 and p2 with the new refs a and b; 1 if both are non-NULL */
static int set_pair(PyObject **p1, PyObject **p2, PyObject *a, PyObject *b)
{
    Py_XSETREF(*p1, a);
    Py_XSETREF(*p2, b);
    return a && b;
}

/* Per-shard checks of §4.3 for one local shard against the global properties. */
static int check_local_against_props(PyObject *shard, PyObject *props, long rank)
{
    PyObject *t = NULL, *smd = NULL, *pl = NULL, *v1 = NULL, *v2 = NULL, *strided = NULL;
    int rc = -1, c;
    t = PyObject_GetAttrString(shard, "tensor");
    smd = t ? PyObject_GetAttrString(shard, "metadata") : NULL;
    pl = smd ? PyObject_GetAttrString(smd, "placement") : NULL;
    if (!pl) goto done;
    if (pl == Py_None) {
        PyErr_Format(PyExc_ValueError, "local shard on rank %ld has no placement", rank);
        goto done;
    }
#define SWAP(a, b) set_pair(&v1, &v2, (a), (b))
    if (!SWAP(PyObject_GetAttrString(props, "layout"), tensor_layout(t))) goto done;
    if (mismatch_global(v1, v2, "layout", rank, 1) < 0) goto done;
    if (!SWAP(PyObject_CallMethod(t, "is_contiguous", NULL), Py_NewRef(Py_None))) goto done;
    c = PyObject_IsTrue(v1);
    if (c < 0) goto done;
    if (!c) {
        PyErr_SetString(PyExc_ValueError,
                        "Only torch.contiguous_format memory_format is currently supported");
        goto done;
    }
    if (!SWAP(PyObject_GetAttrString(smd, "shard_sizes"), tensor_size_list(t))) goto done;
    if (mismatch_global(v1, v2, "size", rank, 0) < 0) goto done;
    c = so_st_is_pinned(t);
    if (c < 0) goto done;
    if (!SWAP(PyObject_GetAttrString(props, "pin_memory"), PyBool_FromLong(c))) goto done;
    if (mismatch_global(v1, v2, "pin_memory", rank, 1) < 0) goto done;
    if (!SWAP(PyObject_CallMethod(pl, "device", NULL), PyObject_GetAttrString(t, "device"))) goto done;
    if (mismatch_global(v1, v2, "device", rank, 0) < 0) goto done;
    if (!SWAP(PyObject_GetAttrString(props, "dtype"), PyObject_GetAttrString(t, "dtype"))) goto done;
    if (mismatch_global(v1, v2, "dtype", rank, 1) < 0) goto done;
    if (!SWAP(PyObject_GetAttrString(props, "requires_grad"), PyObject_GetAttrString(t, "requires_grad")))
        goto done;
    if (mismatch_global(v1, v2, "requires_grad", rank, 1) < 0) goto done;
#undef SWAP
    rc = 0;
done:
    Py_XDECREF(t);
    Py_XDECREF(smd);
    Py_XDECREF(pl);
    Py_XDECREF(v1);
    Py_XDECREF(v2);
    Py_XDECREF(strided);
    return rc;
}

PyObject *so_st_init_from_md(PyObject *cls, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"local_shards", "sharded_tensor_metadata", "process_group",
                             "init_rrefs", "sharding_spec", NULL};
    PyObject *shards, *md, *pg = Py_None, *spec = Py_None, *mds = NULL, *fast = NULL;
    PyObject *props = NULL, *layout = NULL, *strided = NULL, *size = NULL, *res = NULL;
    PyObject *lfast = NULL;
    so_state *st = so_state_from_type((PyTypeObject *)cls);
    int init_rrefs = 0;
    long rank;
    Py_ssize_t nlocal_md = 0;
    if (!st) return NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO|OpO:_init_from_local_shards_and_global_metadata",
                                     kwlist, &shards, &md, &pg, &init_rrefs, &spec))
        return NULL;
    pg = so_st_resolve_pg(pg);
    if (!pg) return NULL;
    rank = so_st_global_rank();
    if (rank == -1 && PyErr_Occurred()) goto done;
    mds = PyObject_GetAttrString(md, "shards_metadata");
    if (!mds) goto done;
    fast = PySequence_Fast(mds, "shards_metadata must be a sequence");
    lfast = fast ? PySequence_Fast(shards, "local_shards must be a list of Shard") : NULL;
    if (!lfast) goto done;
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(fast); i++) {
        PyObject *pl = PyObject_GetAttrString(PySequence_Fast_GET_ITEM(fast, i), "placement");
        long r;
        int rc;
        if (!pl) goto done;
        rc = so_st_validate_placement(st, pg, pl, &r);
        Py_DECREF(pl);
        if (rc < 0) goto done;
        if (r == rank) nlocal_md++;
    }
    if (PySequence_Fast_GET_SIZE(lfast) != nlocal_md) {
        PyErr_Format(PyExc_RuntimeError,
                     "Number of local shards (%zd) does not match number of local shards metadata "
                     "in sharded_tensor_metadata (%zd) on rank (%ld) ",
                     PySequence_Fast_GET_SIZE(lfast), nlocal_md, rank);
        goto done;
    }
    if (PySequence_Fast_GET_SIZE(fast) == 0) {
        PyErr_SetString(PyExc_ValueError, "shards_metadata must not be empty!");
        goto done;
    }
    props = PyObject_GetAttrString(md, "tensor_properties");
    layout = props ? PyObject_GetAttrString(props, "layout") : NULL;
    strided = layout ? so_st_import("shardopt", "strided") : NULL;
    if (!strided) goto done;
    if (layout != strided) {
        PyErr_SetString(PyExc_ValueError, "Only torch.strided layout is currently supported");
        goto done;
    }
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(lfast); i++)
        if (check_local_against_props(PySequence_Fast_GET_ITEM(lfast, i), props, rank) < 0) goto done;
    size = PyObject_GetAttrString(md, "size");
    if (!size || check_layout_and_coverage(mds, size) < 0) goto done;
    spec = spec == Py_None ? infer_spec(mds) : Py_NewRef(spec);
    if (!spec) goto done;
    res = so_st_from_parts((PyTypeObject *)cls, shards, md, pg, spec, 0);
    Py_DECREF(spec);
    if (res && init_rrefs) {
        Py_CLEAR(res);
        PyErr_SetString(PyExc_RuntimeError,
                        "RPC Framework needs to be initialized using "
                        "torch.distributed.rpc.init_rpc if init_rrefs is set to True");
    }
done:
    Py_DECREF(pg);
    Py_XDECREF(mds);
    Py_XDECREF(fast);
    Py_XDECREF(lfast);
    Py_XDECREF(props);
    Py_XDECREF(layout);
    Py_XDECREF(strided);
    Py_XDECREF(size);
    return res;
}

/* ------------------------------------------------------------------ init_from_local_shards */

/* _st_local_metadata(local_shards, global_size, process_group, rank) */
static PyObject *py_local_metadata(PyObject *m, PyObject *args)
{
    so_state *st = so_state_from_module(m);
    PyObject *shards, *gsize, *pg, *fast = NULL, *first_t = NULL, *mds = NULL, *res = NULL;
    PyObject *f_dtype = NULL, *f_layout = NULL, *f_rg = NULL, *f_pin = NULL, *strided = NULL;
    PyObject *props = NULL, *cls = NULL, *contig = NULL;
    long rank;
    int pinned;
    if (!PyArg_ParseTuple(args, "OOOl:_st_local_metadata", &shards, &gsize, &pg, &rank)) return NULL;
    fast = PySequence_Fast(shards, "local_shards must be a list of Shard");
    if (!fast) return NULL;
    if (PySequence_Fast_GET_SIZE(fast) == 0) {
        PyErr_SetString(PyExc_ValueError, "_st_local_metadata needs at least one local shard");
        goto done;
    }
    first_t = PyObject_GetAttrString(PySequence_Fast_GET_ITEM(fast, 0), "tensor");
    if (!first_t) goto done;
    f_dtype = PyObject_GetAttrString(first_t, "dtype");
    f_layout = tensor_layout(first_t);
    f_rg = PyObject_GetAttrString(first_t, "requires_grad");
    pinned = so_st_is_pinned(first_t);
    if (!f_dtype || !f_layout || !f_rg || pinned < 0) goto done;
    f_pin = PyBool_FromLong(pinned);
    strided = so_st_import("shardopt", "strided");
    mds = PyList_New(0);
    if (!strided || !mds) goto done;
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(fast); i++) {
        PyObject *sh = PySequence_Fast_GET_ITEM(fast, i), *t = NULL, *smd = NULL, *pl = NULL;
        PyObject *layout = NULL, *a = NULL, *b = NULL;
        long r;
        int ok = 0, c;
        if (!(t = PyObject_GetAttrString(sh, "tensor"))) goto next;
        if (!(smd = PyObject_GetAttrString(sh, "metadata"))) goto next;
        if (PyList_Append(mds, smd) < 0) goto next;
        if (!(pl = PyObject_GetAttrString(smd, "placement"))) goto next;
        if (so_st_validate_placement(st, pg, pl, &r) < 0) goto next;
        if (!(layout = tensor_layout(t))) goto next;
        if (layout != strided || layout != f_layout) {
            PyErr_Format(PyExc_ValueError,
                         "Only torch.strided layout is currently supported, but found %S on "
                         "rank:%ld!", layout, rank);
            goto next;
        }
        if (!(a = PyObject_CallMethod(t, "is_contiguous", NULL))) goto next;
        if ((c = PyObject_IsTrue(a)) < 0) goto next;
        if (!c) {
            PyErr_SetString(PyExc_ValueError,
                            "Only torch.contiguous_format memory_format is currently supported!");
            goto next;
        }
        Py_CLEAR(a);
        if (r != rank) {
            PyErr_Format(PyExc_ValueError,
                         "Local shard metadata's rank does not match with the rank in its process "
                         "group! Found current rank in the process group: %ld, local ShardMetadata "
                         "placement's rank: %ld", rank, r);
            goto next;
        }
        a = PyObject_GetAttrString(t, "device");
        b = a ? PyObject_CallMethod(pl, "device", NULL) : NULL;
        if (!b) goto next;
        if ((c = ne(a, b)) < 0) goto next;
        if (c) {
            PyErr_Format(PyExc_ValueError,
                         "Local shard tensor device does not match with local Shard's placement! "
                         "Found local shard tensor device: %S, local shard metadata placement "
                         "device: %S", a, b);
            goto next;
        }
        Py_CLEAR(a);
        Py_CLEAR(b);
        a = PyObject_GetAttrString(smd, "shard_sizes");
        b = a ? tensor_size_list(t) : NULL;
        if (!b || mismatch_local(a, b, "size", rank) < 0) goto next;
        Py_CLEAR(a);
        Py_CLEAR(b);
        if ((c = so_st_is_pinned(t)) < 0) goto next;
        a = PyBool_FromLong(c);
        if (mismatch_local(a, f_pin, "pin_memory", rank) < 0) goto next;
        Py_CLEAR(a);
        if (!(a = PyObject_GetAttrString(t, "dtype")) || mismatch_local(a, f_dtype, "dtype", rank) < 0)
            goto next;
        Py_CLEAR(a);
        if (!(a = PyObject_GetAttrString(t, "requires_grad")) ||
            mismatch_local(a, f_rg, "requires_grad", rank) < 0)
            goto next;
        ok = 1;
    next:
        Py_XDECREF(t);
        Py_XDECREF(smd);
        Py_XDECREF(pl);
        Py_XDECREF(layout);
        Py_XDECREF(a);
        Py_XDECREF(b);
        if (!ok) goto done;
    }
    cls = so_st_import("shardopt.sharded_tensor.metadata", "TensorProperties");
    contig = so_st_import("shardopt", "contiguous_format");
    if (!cls || !contig) goto done;
    props = PyObject_CallFunction(cls, "OOOOO", f_dtype, f_layout, f_rg, contig, f_pin);
    Py_CLEAR(cls);
    if (!props) goto done;
    cls = so_st_import("shardopt.sharded_tensor.metadata", "ShardedTensorMetadata");
    if (!cls) goto done;
    res = PyObject_CallFunctionObjArgs(cls, mds, gsize, props, NULL);
done:
    Py_XDECREF(fast);
    Py_XDECREF(first_t);
    Py_XDECREF(mds);
    Py_XDECREF(f_dtype);
    Py_XDECREF(f_layout);
    Py_XDECREF(f_rg);
    Py_XDECREF(f_pin);
    Py_XDECREF(strided);
    Py_XDECREF(props);
    Py_XDECREF(cls);
    Py_XDECREF(contig);
    return res;
}

/* Row-wise recalculation (global size given with None entries): shards ordered by placement
 * rank get cumulative dim-0 offsets, other offsets 0; global size [sum dim0, rest of the
 * first shard].  Mutates the (freshly merged) metadata in place. */
static int recalc_rowwise(PyObject *gmd)
{
    PyObject *mds = PyObject_GetAttrString(gmd, "shards_metadata"), *sorted = NULL;
    PyObject *size_cls = NULL, *newsize = NULL, *dims = NULL;
    int rc = -1;
    long long acc = 0;
    if (!mds) return -1;
    /* sort by placement rank via (rank, index, md) triples */
    sorted = PyList_New(0);
    if (!sorted) goto done;
    for (Py_ssize_t i = 0; i < PySequence_Size(mds); i++) {
        PyObject *smd = PySequence_GetItem(mds, i), *pl, *r, *pair, *idx;
        if (!smd) goto done;
        pl = PyObject_GetAttrString(smd, "placement");
        r = pl ? PyObject_CallMethod(pl, "rank", NULL) : NULL;
        Py_XDECREF(pl);
        idx = r ? PyLong_FromSsize_t(i) : NULL; /* tie-break: keep gather order */
        pair = idx ? PyTuple_Pack(3, r, idx, smd) : NULL;
        Py_XDECREF(idx);
        Py_XDECREF(r);
        Py_DECREF(smd);
        if (!pair || PyList_Append(sorted, pair) < 0) {
            Py_XDECREF(pair);
            goto done;
        }
        Py_DECREF(pair);
    }
    if (PyList_Sort(sorted) < 0) goto done;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(sorted); i++) {
        PyObject *smd = PyTuple_GET_ITEM(PyList_GET_ITEM(sorted, i), 2);
        PyObject *sz = PyObject_GetAttrString(smd, "shard_sizes"), *off, *d0;
        Py_ssize_t nd;
        long long s0;
        if (!sz) goto done;
        nd = PySequence_Size(sz);
        d0 = nd > 0 ? PySequence_GetItem(sz, 0) : NULL;
        if (!d0) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_ValueError, "cannot recalculate a 0-d shard layout");
            Py_DECREF(sz);
            goto done;
        }
        s0 = PyLong_AsLongLong(d0);
        Py_DECREF(d0);
        off = PyList_New(nd);
        if (!off || (s0 == -1 && PyErr_Occurred())) {
            Py_XDECREF(off);
            Py_DECREF(sz);
            goto done;
        }
        for (Py_ssize_t k = 0; k < nd; k++) {
            PyObject *o = PyLong_FromLongLong(k == 0 ? acc : 0);
            if (!o) {
                Py_DECREF(off);
                Py_DECREF(sz);
                goto done;
            }
            PyList_SET_ITEM(off, k, o);
        }
        acc += s0;
        if (i == 0) {
            dims = PySequence_List(sz);
            if (!dims) {
                Py_DECREF(off);
                Py_DECREF(sz);
                goto done;
            }
        }
        Py_DECREF(sz);
        if (PyObject_SetAttrString(smd, "shard_offsets", off) < 0) {
            Py_DECREF(off);
            goto done;
        }
        Py_DECREF(off);
    }
    if (!dims) {
        PyErr_SetString(PyExc_ValueError, "ShardedTensor have no local shards on all ranks!");
        goto done;
    }
    if (PyList_SetItem(dims, 0, PyLong_FromLongLong(acc)) < 0) goto done;
    size_cls = so_st_import("shardopt._tensor", "Size");
    newsize = size_cls ? PyObject_CallOneArg(size_cls, dims) : NULL;
    if (!newsize || PyObject_SetAttrString(gmd, "size", newsize) < 0) goto done;
    rc = 0;
done:
    Py_XDECREF(mds);
    Py_XDECREF(sorted);
    Py_XDECREF(size_cls);
    Py_XDECREF(newsize);
    Py_XDECREF(dims);
    return rc;
}

/* _st_global_metadata(gathered, recalc) */
static PyObject *py_global_metadata(PyObject *m, PyObject *args)
{
    PyObject *gathered, *fast = NULL, *glob = NULL, *deepcopy = NULL, *gmds = NULL, *gsize = NULL;
    int recalc = 0;
    Py_ssize_t grank = 0;
    (void)m;
    if (!PyArg_ParseTuple(args, "O|p:_st_global_metadata", &gathered, &recalc)) return NULL;
    fast = PySequence_Fast(gathered, "gathered must be a sequence");
    if (!fast) return NULL;
    deepcopy = so_st_import("copy", "deepcopy");
    if (!deepcopy) goto error;
    for (Py_ssize_t r = 0; r < PySequence_Fast_GET_SIZE(fast); r++) {
        PyObject *md = PySequence_Fast_GET_ITEM(fast, r), *a = NULL, *b = NULL, *more;
        static const char *const props[] = {"dtype", "requires_grad", "pin_memory"};
        if (md == Py_None) continue;
        if (!glob) {
            glob = PyObject_CallOneArg(deepcopy, md);
            if (!glob) goto error;
            grank = r;
            continue;
        }
        a = PyObject_GetAttrString(glob, "size");
        b = a ? PyObject_GetAttrString(md, "size") : NULL;
        if (!b || mismatch_ranks(a, b, "global_size", grank, r) < 0) goto pair_error;
        for (int k = 0; k < 3; k++) {
            Py_SETREF(a, props_of(glob, props[k]));
            Py_SETREF(b, a ? props_of(md, props[k]) : NULL);
            if (!b || mismatch_ranks(a, b, props[k], grank, r) < 0) goto pair_error;
        }
        Py_DECREF(a);
        Py_DECREF(b);
        gmds = PyObject_GetAttrString(glob, "shards_metadata");
        more = gmds ? PyObject_GetAttrString(md, "shards_metadata") : NULL;
        if (!more) goto error;
        a = PyObject_CallMethod(gmds, "extend", "O", more);
        Py_DECREF(more);
        Py_CLEAR(gmds);
        if (!a) goto error;
        Py_DECREF(a);
        continue;
    pair_error:
        Py_XDECREF(a);
        Py_XDECREF(b);
        goto error;
    }
    if (!glob) {
        PyErr_SetString(PyExc_ValueError, "ShardedTensor have no local shards on all ranks!");
        goto error;
    }
    if (recalc && recalc_rowwise(glob) < 0) goto error;
    gmds = PyObject_GetAttrString(glob, "shards_metadata");
    gsize = gmds ? PyObject_GetAttrString(glob, "size") : NULL;
    if (!gsize || check_layout_and_coverage(gmds, gsize) < 0) goto error;
    Py_DECREF(gmds);
    Py_DECREF(gsize);
    Py_DECREF(fast);
    Py_DECREF(deepcopy);
    return glob;
error:
    Py_XDECREF(fast);
    Py_XDECREF(glob);
    Py_XDECREF(deepcopy);
    Py_XDECREF(gmds);
    Py_XDECREF(gsize);
    return NULL;
}

static PyMethodDef st_init_functions[] = {
    {"_st_local_metadata", py_local_metadata, METH_VARARGS,
     "_st_local_metadata(local_shards, global_size, process_group, rank): step 1 of "
     "init_from_local_shards (this rank's shards agree) -> local ShardedTensorMetadata."},
    {"_st_global_metadata", py_global_metadata, METH_VARARGS,
     "_st_global_metadata(gathered, recalc=False): merge the ranks' local metadata (None for "
     "ranks without shards) with the cross-rank, overlap and coverage checks."},
    {NULL}};

int so_register_st_init(PyObject *m, so_state *st)
{
    (void)st;
    return PyModule_AddFunctions(m, st_init_functions);
}
