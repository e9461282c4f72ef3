/* remote_device.c — `_remote_device`, the placement of a shard: "rank:N/<device>",
 * "<worker>/<device>" or "<device>", with torch.distributed._remote_device's parsing rules,
 * error types and messages (the ported tests match them), accessors, equality, hash
 * (XOR of the three parts' hashes, as torch) and pickling through the canonical string.
 *
 * A placement's device is NOT checked against the devices present: "rank:3/cuda:3" is a
 * valid placement on a CPU-only machine (specs are built everywhere, used on their rank).
 */
#include "shard.h"
#include <ctype.h>
#include <string.h>

/* torch.device's string grammar, ^([a-zA-Z_]+)(?::([1-9]\d*|0))?$ — strings that fail it
 * get torch's "Invalid device string" (shardopt.device itself reports an unknown type with
 * "Expected one of ...", as torch does for well-formed strings like "foo" or "random:0"). */
static int device_string_wellformed(const char *s)
{
    const char *p = s;
    while (isalpha((unsigned char)*p) || *p == '_') p++;
    if (p == s) return 0;
    if (*p == '\0') return 1;
    if (*p++ != ':') return 0;
    if (*p == '0') return p[1] == '\0';
    if (!(*p >= '1' && *p <= '9')) return 0;
    while (isdigit((unsigned char)*p)) p++;
    return *p == '\0';
}

/* shardopt.device(s) with torch's error for malformed strings. New ref or NULL. */
static PyObject *make_device(so_state *st, PyObject *s)
{
    const char *c = PyUnicode_AsUTF8(s);
    if (!c) return NULL;
    if (!device_string_wellformed(c))
        return PyErr_Format(PyExc_RuntimeError, "Invalid device string: '%s'", c);
    return PyObject_CallOneArg((PyObject *)st->tensor.device_type, s);
}

/* torch's message for any malformed placement string */
#define SO_RD_PARSE_FAIL(label, spec)                                                        \
    SO_FAIL(label, PyExc_ValueError,                                                         \
            "Could not parse remote_device: %S. The valid format is '<workername>/<device>' " \
            "or 'rank:<rank>/<device>' or '<device>'", (spec))

static int all_ascii_digits(PyObject *s)
{
    Py_ssize_t n = 0;
    const char *c = PyUnicode_AsUTF8AndSize(s, &n);
    if (!c) return -1;
    if (n == 0) return 0;
    for (Py_ssize_t i = 0; i < n; i++)
        if (!isdigit((unsigned char)c[i])) return 0;
    return 1;
}

/* Fills worker/rank/device (new refs) from a str or device; 0 / -1 (all three NULL). */
static int parse_remote_device(so_state *st, PyObject *spec, PyObject **worker, PyObject **rank,
                               PyObject **device)
{
    PyObject *fields = NULL, *devstr = NULL, *parts = NULL, *sep = NULL;
    Py_ssize_t nf;
    int rc = -1;
    *worker = Py_NewRef(Py_None);
    *rank = Py_NewRef(Py_None);
    *device = NULL;

    if (Py_IS_TYPE(spec, st->tensor.device_type)) {
        *device = Py_NewRef(spec);
        return 0;
    }
    SO_CHECK(PyUnicode_Check(spec), done, PyExc_TypeError, "Invalid type for remote_device: %R",
             (PyObject *)Py_TYPE(spec));
    SO_CHECK_PTR(sep = PyUnicode_FromString("/"), done);
    SO_CHECK_PTR(fields = PyUnicode_Split(spec, sep, -1), done);
    nf = PyList_GET_SIZE(fields);
    if (nf == 2) {
        Py_SETREF(*worker, Py_NewRef(PyList_GET_ITEM(fields, 0)));
        devstr = Py_NewRef(PyList_GET_ITEM(fields, 1));
    } else if (nf == 1) {
        /* A lone field is a device if it parses as one, else a worker name on cpu. */
        PyObject *d = make_device(st, PyList_GET_ITEM(fields, 0));
        if (d) {
            *device = d;
        } else {
            PyErr_Clear();
            Py_SETREF(*worker, Py_NewRef(PyList_GET_ITEM(fields, 0)));
            SO_CHECK_PTR(devstr = PyUnicode_FromString("cpu"), done);
        }
    } else {
        SO_RD_PARSE_FAIL(done, spec);
    }
    if (*worker != Py_None && PyUnicode_GET_LENGTH(*worker) == 0) SO_RD_PARSE_FAIL(done, spec);
    if (!*device) SO_CHECK_PTR(*device = make_device(st, devstr), done);
    if (*worker != Py_None) {
        Py_ssize_t np;
        Py_SETREF(sep, PyUnicode_FromString(":"));
        SO_CHECK_PTR(sep, done);
        SO_CHECK_PTR(parts = PyUnicode_Split(*worker, sep, -1), done);
        np = PyList_GET_SIZE(parts);
        if (np == 2) {
            PyObject *p0 = PyList_GET_ITEM(parts, 0), *p1 = PyList_GET_ITEM(parts, 1), *r;
            int digits = all_ascii_digits(p1);
            SO_CHECK_RC(digits, done);
            if (PyUnicode_CompareWithASCIIString(p0, "rank") != 0 || !digits)
                SO_RD_PARSE_FAIL(done, spec);
            SO_CHECK_PTR(r = PyLong_FromUnicodeObject(p1, 10), done);
            Py_SETREF(*rank, r);
            Py_SETREF(*worker, Py_NewRef(Py_None));
        } else if (np > 2) {
            SO_RD_PARSE_FAIL(done, spec);
        }
    }
    rc = 0;
done:
    Py_XDECREF(sep);
    Py_XDECREF(fields);
    Py_XDECREF(devstr);
    Py_XDECREF(parts);
    if (rc < 0) {
        Py_CLEAR(*worker);
        Py_CLEAR(*rank);
        Py_CLEAR(*device);
    }
    return rc;
}

static PyObject *rd_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"remote_device", NULL};
    PyObject *spec, *self;
    so_state *st = so_state_from_type(type);
    if (!st) return NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O:_remote_device", kwlist, &spec)) return NULL;
    self = type->tp_alloc(type, 0);
    if (!self) return NULL;
    if (parse_remote_device(st, spec, &SO_RD_WORKER(self), &SO_RD_RANK(self),
                            &SO_RD_DEVICE(self)) < 0) {
        Py_DECREF(self);
        return NULL;
    }
    return self;
}

PyObject *so_remote_device_new(so_state *st, PyObject *spec)
{
    return PyObject_CallOneArg((PyObject *)st->shard.remote_device_type, spec);
}

PyObject *so_remote_device_coerce(so_state *st, PyObject *obj)
{
    return PyObject_TypeCheck(obj, st->shard.remote_device_type) ? Py_NewRef(obj)
                                                                  : so_remote_device_new(st, obj);
}

static PyObject *rd_worker_name(PyObject *self, PyObject *unused)
{
    (void)unused;
    return Py_NewRef(SO_RD_WORKER(self));
}

static PyObject *rd_rank(PyObject *self, PyObject *unused)
{
    (void)unused;
    return Py_NewRef(SO_RD_RANK(self));
}

static PyObject *rd_device(PyObject *self, PyObject *unused)
{
    (void)unused;
    return Py_NewRef(SO_RD_DEVICE(self));
}

static PyObject *rd_repr(PyObject *self)
{
    if (SO_RD_WORKER(self) != Py_None)
        return PyUnicode_FromFormat("%S/%S", SO_RD_WORKER(self), SO_RD_DEVICE(self));
    if (SO_RD_RANK(self) != Py_None)
        return PyUnicode_FromFormat("rank:%S/%S", SO_RD_RANK(self), SO_RD_DEVICE(self));
    return PyObject_Str(SO_RD_DEVICE(self));
}

static PyObject *rd_richcompare(PyObject *a, PyObject *b, int op)
{
    so_state *st;
    int is, eq = 1;
    if (op != Py_EQ && op != Py_NE) Py_RETURN_NOTIMPLEMENTED;
    st = so_state_from_type(Py_TYPE(a));
    if (!st) return NULL;
    is = PyObject_TypeCheck(b, st->shard.remote_device_type);
    if (!is) {
        eq = 0; /* torch: a non-placement is simply unequal */
    } else {
        for (int i = 0; i < 3 && eq; i++) {
            int r = PyObject_RichCompareBool(SO_REC(a)->f[i], SO_REC(b)->f[i], Py_EQ);
            if (r < 0) return NULL;
            eq = r;
        }
    }
    return PyBool_FromLong(op == Py_EQ ? eq : !eq);
}

static Py_hash_t rd_hash(PyObject *self)
{
    Py_hash_t h = 0;
    for (int i = 0; i < 3; i++) {
        Py_hash_t x = PyObject_Hash(SO_REC(self)->f[i]);
        if (x == -1) return -1;
        h ^= x;
    }
    return h == -1 ? -2 : h;
}

static PyObject *rd_reduce(PyObject *self, PyObject *unused)
{
    PyObject *s = rd_repr(self);
    (void)unused;
    if (!s) return NULL;
    return Py_BuildValue("(O(N))", (PyObject *)Py_TYPE(self), s);
}

static PyMethodDef rd_methods[] = {
    {"worker_name", rd_worker_name, METH_NOARGS,
     "Name of the remote worker, or None when the placement has no worker name."},
    {"rank", rd_rank, METH_NOARGS, "Global rank of the placement, or None."},
    {"device", rd_device, METH_NOARGS, "The device on the remote worker (shardopt.device)."},
    {"__reduce__", rd_reduce, METH_NOARGS, NULL},
    {NULL}};

static PyMemberDef rd_members[] = {
    {"_worker_name", T_OBJECT, SO_REC_FIELD_OFFSET(0), READONLY, NULL},
    {"_rank", T_OBJECT, SO_REC_FIELD_OFFSET(1), READONLY, NULL},
    {"_device", T_OBJECT, SO_REC_FIELD_OFFSET(2), READONLY, NULL},
    {NULL}};

SO_RECORD_GC(rd, 3)

static PyType_Slot rd_slots[] = {
    {Py_tp_new, rd_new},
    {Py_tp_repr, rd_repr},
    {Py_tp_richcompare, rd_richcompare},
    {Py_tp_hash, rd_hash},
    {Py_tp_methods, rd_methods},
    {Py_tp_members, rd_members},
    {Py_tp_traverse, rd_traverse},
    {Py_tp_clear, rd_clear},
    {Py_tp_dealloc, rd_dealloc},
    {Py_tp_doc,
     "_remote_device(remote_device): a shard placement parsed from 'rank:<rank>/<device>', "
     "'<workername>/<device>', '<device>' or a shardopt.device."},
    {0, NULL}};

static PyType_Spec rd_spec = {
    .name = "shardopt._C._remote_device",
    .basicsize = sizeof(SoRecord) + 3 * sizeof(PyObject *),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE,
    .slots = rd_slots};

int so_register_remote_device(PyObject *m, so_state *st)
{
    return so_shard_add_type(m, &rd_spec, NULL, &st->shard.remote_device_type);
}
