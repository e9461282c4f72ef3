/* metadata.c — ShardMetadata (offsets, sizes, placement of one shard) and Shard (a local
 * tensor + its ShardMetadata), plus the record plumbing shared by every shard/ type:
 * dataclass-style repr / == / pickling and GC over N object fields.
 *
 * torch's versions are slotted dataclasses; these are C records with the same attribute
 * names, constructor checks and messages.  Fields stay writable (torch does not validate
 * later assignments either: test_sharded_optim swaps shard.tensor).
 */
#include "shard.h"

/* ------------------------------------------------------------------ record plumbing */

int so_shard_add_type(PyObject *m, PyType_Spec *spec, PyObject *base, PyTypeObject **slot)
{
    PyTypeObject *tp = (PyTypeObject *)PyType_FromModuleAndSpec(m, spec, base);
    if (!tp) return -1;
    if (PyModule_AddType(m, tp) < 0) {
        Py_DECREF(tp);
        return -1;
    }
    Py_XSETREF(*slot, tp); /* the module and the state each hold a reference */
    return 0;
}

PyObject *so_record_repr(PyObject *self, int n, const char *const *names)
{
    PyObject *parts = NULL, *sep = NULL, *body = NULL, *qual = NULL, *res = NULL;
    int rc = Py_ReprEnter(self);
    if (rc != 0) return rc > 0 ? PyUnicode_FromString("...") : NULL;
    parts = PyList_New(0);
    if (!parts) goto done;
    for (int i = 0; i < n; i++) {
        PyObject *v = SO_REC(self)->f[i];
        PyObject *p = v ? PyUnicode_FromFormat("%s=%R", names[i], v)
                        : PyUnicode_FromFormat("%s=<unset>", names[i]);
        if (!p || PyList_Append(parts, p) < 0) {
            Py_XDECREF(p);
            goto done;
        }
        Py_DECREF(p);
    }
    sep = PyUnicode_FromString(", ");
    if (!sep) goto done;
    body = PyUnicode_Join(sep, parts);
    if (!body) goto done;
    qual = PyObject_GetAttrString((PyObject *)Py_TYPE(self), "__qualname__");
    if (!qual) goto done;
    res = PyUnicode_FromFormat("%S(%S)", qual, body);
done:
    Py_XDECREF(parts);
    Py_XDECREF(sep);
    Py_XDECREF(body);
    Py_XDECREF(qual);
    Py_ReprLeave(self);
    return res;
}

PyObject *so_record_richcompare(PyObject *a, PyObject *b, int op, int n)
{
    int eq = 1;
    if ((op != Py_EQ && op != Py_NE) || Py_TYPE(a) != Py_TYPE(b)) Py_RETURN_NOTIMPLEMENTED;
    for (int i = 0; i < n && eq; i++) {
        PyObject *x = SO_REC(a)->f[i], *y = SO_REC(b)->f[i];
        if (!x || !y) {
            eq = x == y;
            continue;
        }
        eq = PyObject_RichCompareBool(x, y, Py_EQ);
        if (eq < 0) return NULL;
    }
    return PyBool_FromLong(op == Py_EQ ? eq : !eq);
}

PyObject *so_record_reduce(PyObject *self, int n)
{
    PyObject *args = PyTuple_New(n), *state = NULL;
    if (!args) return NULL;
    for (int i = 0; i < n; i++) {
        PyObject *v = SO_REC(self)->f[i];
        if (!v) {
            Py_DECREF(args);
            return PyErr_Format(PyExc_TypeError, "cannot pickle a partially initialised %s",
                                Py_TYPE(self)->tp_name);
        }
        PyTuple_SET_ITEM(args, i, Py_NewRef(v));
    }
    /* Python subclasses may carry extra attributes in __dict__. */
    if (Py_TYPE(self)->tp_dictoffset != 0) {
        state = PyObject_GetAttrString(self, "__dict__");
        if (!state) PyErr_Clear();
        else if (PyDict_Check(state) && PyDict_GET_SIZE(state) == 0) Py_CLEAR(state);
    }
    if (state) return Py_BuildValue("(ONN)", (PyObject *)Py_TYPE(self), args, state);
    return Py_BuildValue("(ON)", (PyObject *)Py_TYPE(self), args);
}

int so_record_traverse(PyObject *self, visitproc visit, void *arg, int n)
{
    Py_VISIT(Py_TYPE(self));
    for (int i = 0; i < n; i++) Py_VISIT(SO_REC(self)->f[i]);
    return 0;
}

int so_record_clear(PyObject *self, int n)
{
    for (int i = 0; i < n; i++) Py_CLEAR(SO_REC(self)->f[i]);
    return 0;
}

void so_record_dealloc(PyObject *self, int n)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    so_record_clear(self, n);
    tp->tp_free(self);
    Py_DECREF(tp);
}

/* ------------------------------------------------------------------ ShardMetadata */

static const char *const smd_names[] = {"shard_offsets", "shard_sizes", "placement"};

/* Lists are kept by identity (as torch keeps what it is given); other sequences copied. */
static PyObject *as_list(PyObject *seq)
{
    return PyList_Check(seq) ? Py_NewRef(seq) : PySequence_List(seq);
}

static int smd_init(PyObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"shard_offsets", "shard_sizes", "placement", NULL};
    PyObject *off, *sz, *pl = Py_None, *zero = NULL;
    so_state *st = so_state_from_type(Py_TYPE(self));
    Py_ssize_t n;
    int rc = -1;
    if (!st) return -1;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO|O:ShardMetadata", kwlist, &off, &sz, &pl))
        return -1;
    off = as_list(off);
    if (!off) return -1;
    Py_XSETREF(SO_SMD_OFFSETS(self), off);
    sz = as_list(sz);
    if (!sz) return -1;
    Py_XSETREF(SO_SMD_SIZES(self), sz);
    /* Only strings are parsed; a _remote_device, None (or anything else) is kept. */
    pl = PyUnicode_Check(pl) ? so_remote_device_new(st, pl) : Py_NewRef(pl);
    if (!pl) return -1;
    Py_XSETREF(SO_SMD_PLACEMENT(self), pl);

    n = PyList_GET_SIZE(off);
    if (n != PyList_GET_SIZE(sz))
        return so_fail(PyExc_ValueError,
                       "shard_offsets and shard_sizes should have the same number of elements, "
                       "found %zd and %R respectively", n, sz);
    zero = PyLong_FromLong(0);
    if (!zero) return -1;
    for (Py_ssize_t i = 0; i < n; i++) {
        int neg = PyObject_RichCompareBool(PyList_GET_ITEM(off, i), zero, Py_LT);
        if (neg < 0) goto done;
        if (neg)
            SO_FAIL(done, PyExc_ValueError, "shard_offsets should be >=0");
        neg = PyObject_RichCompareBool(PyList_GET_ITEM(sz, i), zero, Py_LT);
        if (neg < 0) goto done;
        if (neg)
            SO_FAIL(done, PyExc_ValueError, "shard_sizes should be >= 0");
    }
    rc = 0;
done:
    Py_DECREF(zero);
    return rc;
}

/* torch folds h = (h << 8) + hash(x) over offsets, then sizes, then the placement (with
 * Python's unbounded ints); here the fold wraps in 64 bits.  Equal metadata hash equal. */
static Py_hash_t smd_hash(PyObject *self)
{
    Py_uhash_t h = 37;
    for (int k = 0; k < 2; k++) {
        PyObject *seq = SO_REC(self)->f[k], *fast;
        if (!seq) return so_fail(PyExc_TypeError, "ShardMetadata is not initialised");
        fast = PySequence_Fast(seq, "ShardMetadata offsets/sizes must be sequences");
        if (!fast) return -1;
        for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(fast); i++) {
            Py_hash_t x = PyObject_Hash(PySequence_Fast_GET_ITEM(fast, i));
            if (x == -1) {
                Py_DECREF(fast);
                return -1;
            }
            h = (h << 8) + (Py_uhash_t)x;
        }
        Py_DECREF(fast);
    }
    {
        Py_hash_t x = PyObject_Hash(SO_SMD_PLACEMENT(self) ? SO_SMD_PLACEMENT(self) : Py_None);
        if (x == -1) return -1;
        h = (h << 8) + (Py_uhash_t)x;
    }
    return (Py_hash_t)h == -1 ? -2 : (Py_hash_t)h;
}

static PyObject *smd_repr(PyObject *self) { return so_record_repr(self, 3, smd_names); }
static PyObject *smd_richcompare(PyObject *a, PyObject *b, int op)
{
    return so_record_richcompare(a, b, op, 3);
}
static PyObject *smd_reduce(PyObject *self, PyObject *unused)
{
    (void)unused;
    return so_record_reduce(self, 3);
}

static PyMethodDef smd_methods[] = {{"__reduce__", smd_reduce, METH_NOARGS, NULL}, {NULL}};

static PyMemberDef smd_members[] = {
    {"shard_offsets", T_OBJECT_EX, SO_REC_FIELD_OFFSET(0), 0, "start of the shard in each dim"},
    {"shard_sizes", T_OBJECT_EX, SO_REC_FIELD_OFFSET(1), 0, "length of the shard in each dim"},
    {"placement", T_OBJECT_EX, SO_REC_FIELD_OFFSET(2), 0, "_remote_device or None"},
    {NULL}};

SO_RECORD_GC(smd, 3)

static PyType_Slot smd_slots[] = {
    {Py_tp_init, smd_init},
    {Py_tp_new, PyType_GenericNew},
    {Py_tp_repr, smd_repr},
    {Py_tp_richcompare, smd_richcompare},
    {Py_tp_hash, smd_hash},
    {Py_tp_methods, smd_methods},
    {Py_tp_members, smd_members},
    {Py_tp_traverse, smd_traverse},
    {Py_tp_clear, smd_clear},
    {Py_tp_dealloc, smd_dealloc},
    {Py_tp_doc,
     "ShardMetadata(shard_offsets, shard_sizes, placement=None): offsets, lengths and "
     "placement of one shard of a tensor."},
    {0, NULL}};

static PyType_Spec smd_spec = {
    .name = "shardopt._C.ShardMetadata",
    .basicsize = sizeof(SoRecord) + 3 * sizeof(PyObject *),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE,
    .slots = smd_slots};

/* ------------------------------------------------------------------ Shard */

static const char *const shard_names[] = {"tensor", "metadata"};

static int shard_validate(PyObject *tensor, PyObject *md)
{
    PyObject *size = NULL, *tsizes = NULL, *msizes = NULL, *pl = NULL, *pdev = NULL, *tdev = NULL;
    int rc = -1, ne;
    size = PyObject_CallMethod(tensor, "size", NULL);
    if (!size) goto done;
    tsizes = PySequence_List(size);
    if (!tsizes) goto done;
    msizes = PyObject_GetAttrString(md, "shard_sizes");
    if (!msizes) goto done;
    ne = PyObject_RichCompareBool(tsizes, msizes, Py_NE);
    if (ne < 0) goto done;
    if (ne)
        SO_FAIL(done, PyExc_ValueError,
                "Shard tensor size does not match with metadata.shard_lengths! Found shard "
                "tensor size: %R, metadata.shard_lengths: %R, ", tsizes, msizes);
    pl = PyObject_GetAttrString(md, "placement");
    if (!pl) goto done;
    if (pl != Py_None) {
        pdev = PyObject_CallMethod(pl, "device", NULL);
        if (!pdev) goto done;
        tdev = PyObject_GetAttrString(tensor, "device");
        if (!tdev) goto done;
        ne = PyObject_RichCompareBool(pdev, tdev, Py_NE);
        if (ne < 0) goto done;
        if (ne)
            SO_FAIL(done, PyExc_ValueError,
                    "Local shard tensor device does not match with local Shard's placement! "
                    "Found local shard tensor device: %S, local shard metadata placement "
                    "device: %S", tdev, pdev);
    }
    rc = 0;
done:
    Py_XDECREF(size);
    Py_XDECREF(tsizes);
    Py_XDECREF(msizes);
    Py_XDECREF(pl);
    Py_XDECREF(pdev);
    Py_XDECREF(tdev);
    return rc;
}

static int shard_init(PyObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"tensor", "metadata", NULL};
    PyObject *tensor, *md;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO:Shard", kwlist, &tensor, &md)) return -1;
    Py_XSETREF(SO_REC(self)->f[0], Py_NewRef(tensor));
    Py_XSETREF(SO_REC(self)->f[1], Py_NewRef(md));
    return shard_validate(tensor, md);
}

static PyObject *shard_from_tensor_and_offsets(PyObject *cls, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"tensor", "shard_offsets", "rank", NULL};
    PyObject *tensor, *offsets, *rank, *size = NULL, *sizes = NULL, *dev = NULL, *s = NULL;
    PyObject *pl = NULL, *md = NULL, *res = NULL;
    PyTypeObject *smd_type;
    so_state *st = so_state_from_type((PyTypeObject *)cls);
    if (!st) return NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOO:from_tensor_and_offsets", kwlist, &tensor,
                                     &offsets, &rank))
        return NULL;
    smd_type = st->shard.shard_metadata_type;
    size = PyObject_CallMethod(tensor, "size", NULL);
    if (!size || !(sizes = PySequence_List(size))) goto done;
    dev = PyObject_GetAttrString(tensor, "device");
    if (!dev) goto done;
    s = PyUnicode_FromFormat("rank:%S/%S", rank, dev);
    if (!s || !(pl = so_remote_device_new(st, s))) goto done;
    md = PyObject_CallFunctionObjArgs((PyObject *)smd_type, offsets, sizes, pl, NULL);
    if (!md) goto done;
    res = PyObject_CallFunctionObjArgs(cls, tensor, md, NULL);
done:
    Py_XDECREF(size);
    Py_XDECREF(sizes);
    Py_XDECREF(dev);
    Py_XDECREF(s);
    Py_XDECREF(pl);
    Py_XDECREF(md);
    return res;
}

static PyObject *shard_repr(PyObject *self) { return so_record_repr(self, 2, shard_names); }
static PyObject *shard_richcompare(PyObject *a, PyObject *b, int op)
{
    return so_record_richcompare(a, b, op, 2);
}
static PyObject *shard_reduce(PyObject *self, PyObject *unused)
{
    (void)unused;
    return so_record_reduce(self, 2);
}

static PyMethodDef shard_methods[] = {
    {"from_tensor_and_offsets", (PyCFunction)(void (*)(void))shard_from_tensor_and_offsets,
     METH_VARARGS | METH_KEYWORDS | METH_CLASS,
     "Shard.from_tensor_and_offsets(tensor, shard_offsets, rank): metadata with the tensor's "
     "sizes and placement 'rank:<rank>/<tensor.device>'."},
    {"__reduce__", shard_reduce, METH_NOARGS, NULL},
    {NULL}};

static PyMemberDef shard_members[] = {
    {"tensor", T_OBJECT_EX, SO_REC_FIELD_OFFSET(0), 0, "the local tensor"},
    {"metadata", T_OBJECT_EX, SO_REC_FIELD_OFFSET(1), 0, "its ShardMetadata"},
    {NULL}};

SO_RECORD_GC(shard, 2)

static PyType_Slot shard_slots[] = {
    {Py_tp_init, shard_init},
    {Py_tp_new, PyType_GenericNew},
    {Py_tp_repr, shard_repr},
    {Py_tp_richcompare, shard_richcompare},
    {Py_tp_hash, PyObject_HashNotImplemented},
    {Py_tp_methods, shard_methods},
    {Py_tp_members, shard_members},
    {Py_tp_traverse, shard_traverse},
    {Py_tp_clear, shard_clear},
    {Py_tp_dealloc, shard_dealloc},
    {Py_tp_doc,
     "Shard(tensor, metadata): a local tensor and its ShardMetadata; the tensor's size must "
     "equal metadata.shard_sizes and its device the placement's device (a None placement is "
     "allowed)."},
    {0, NULL}};

static PyType_Spec shard_spec = {
    .name = "shardopt._C.Shard",
    .basicsize = sizeof(SoRecord) + 2 * sizeof(PyObject *),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE,
    .slots = shard_slots};

int so_register_shard_metadata(PyObject *m, so_state *st)
{
    if (so_shard_add_type(m, &smd_spec, NULL, &st->shard.shard_metadata_type) < 0) return -1;
    return so_shard_add_type(m, &shard_spec, NULL, &st->shard.shard_type);
}
