/* generator.c — _C.Generator (a Philox stream: seed + offset) and the default generators.
 *
 * One default generator per device lives in module state ([0] cpu, [1 + i] cuda:i), created
 * on first use without touching CUDA, so seeding never initialises the driver (a seeded
 * process can still fork).  The state is 16 bytes, little-endian (seed, offset), exposed by
 * get_state() as a CPU int64 tensor [seed, offset] (there is no uint8 dtype here) and
 * accepted back by set_state() as that tensor, any 16-byte tensor, or bytes.
 */
#include "generator.h"
#include "copy.h"

static so_state *state_of(PyObject *self) { return so_state_from_type(Py_TYPE(self)); }

static SoGenerator *generator_alloc(so_state *st, so_device dev, uint64_t seed)
{
    SoGenerator *g = (SoGenerator *)st->tensor.generator_type->tp_alloc(st->tensor.generator_type, 0);
    if (!g) return NULL;
    g->seed = seed;
    g->offset = 0;
    g->device = dev;
    return g;
}

static int slot_of(so_device dev) { return dev.type == SO_CPU ? 0 : 1 + dev.index; }

SoGenerator *so_default_generator(so_state *st, so_device dev)
{
    int slot;
    if (dev.type == SO_META)
        return so_fail_null(PyExc_RuntimeError, "no generator for the meta device (meta tensors "
                            "draw no random numbers)");
    slot = slot_of(dev);
    if (slot < 0 || slot > SO_MAX_CUDA_DEVICES)
        return so_fail_null(PyExc_ValueError, "no default generator for cuda:%d", dev.index);
    if (!st->tensor.default_generators[slot]) {
        SoGenerator *g = generator_alloc(st, dev, SO_DEFAULT_SEED);
        if (!g) return NULL;
        st->tensor.default_generators[slot] = (PyObject *)g;
    }
    return (SoGenerator *)st->tensor.default_generators[slot];
}

SoGenerator *so_generator_for(so_state *st, PyObject *gen, so_device dev)
{
    SoGenerator *g;
    if (gen == NULL || gen == Py_None) return so_default_generator(st, dev);
    if (!PyObject_TypeCheck(gen, st->tensor.generator_type))
        return so_fail_null(PyExc_TypeError,
                            "generator must be a shardopt.Generator or None, got %s",
                            Py_TYPE(gen)->tp_name);
    g = (SoGenerator *)gen;
    if (g->device.type != dev.type)
        return so_fail_null(PyExc_RuntimeError,
                            "Expected a '%s' device type for generator but found '%s'",
                            dev.type == SO_CPU ? "cpu" : "cuda",
                            g->device.type == SO_CPU ? "cpu" : "cuda");
    return g;
}

/* Seeds as torch takes them: any int in [-2^63, 2^64); negatives wrap modulo 2^64. */
static int parse_seed(PyObject *obj, uint64_t *out)
{
    PyObject *idx;
    unsigned long long u;
    int rc = -1;
    if (PyFloat_Check(obj) || !PyIndex_Check(obj))
        return so_fail(PyExc_TypeError, "seed must be an int, got %s", Py_TYPE(obj)->tp_name);
    idx = PyNumber_Index(obj);
    if (!idx) return -1;
    u = PyLong_AsUnsignedLongLong(idx);
    if (u == (unsigned long long)-1 && PyErr_Occurred()) {
        long long s;
        PyErr_Clear();
        s = PyLong_AsLongLong(idx);
        if (s == -1 && PyErr_Occurred()) {
            PyErr_Clear();
            SO_FAIL(done, PyExc_RuntimeError,
                    "Overflow when unpacking long: seed %R is outside [-2**63, 2**64)", idx);
        }
        u = (unsigned long long)s;
    }
    *out = (uint64_t)u;
    rc = 0;
done:
    Py_DECREF(idx);
    return rc;
}

/* A non-deterministic 64-bit seed from os.urandom (what std::random_device gives torch). */
static int random_seed(uint64_t *out)
{
    PyObject *os = PyImport_ImportModule("os"), *b;
    if (!os) return -1;
    b = PyObject_CallMethod(os, "urandom", "i", 8);
    Py_DECREF(os);
    if (!b) return -1;
    if (!PyBytes_Check(b) || PyBytes_GET_SIZE(b) != 8) {
        Py_DECREF(b);
        return so_fail(PyExc_RuntimeError, "os.urandom(8) did not return 8 bytes");
    }
    memcpy(out, PyBytes_AS_STRING(b), 8);
    Py_DECREF(b);
    /* 53 bits, as torch's getNonDeterministicRandom (the seed survives a trip through double) */
    *out &= 0x1fffffffffffffull;
    return 0;
}

static void reseed(SoGenerator *g, uint64_t seed)
{
    g->seed = seed;
    g->offset = 0;
}

/* ------------------------------------------------------------------ type */

static PyObject *gen_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"device", NULL};
    so_state *st = so_state_from_type(type);
    PyObject *dev_obj = Py_None;
    so_device dev;
    SoGenerator *g;
    if (!st) return NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|O:Generator", kwlist, &dev_obj)) return NULL;
    if (so_parse_device(st, dev_obj, "device", &dev) < 0) return NULL;
    if (dev.type == SO_META)
        return PyErr_Format(PyExc_RuntimeError, "no generator for the meta device (meta tensors "
                            "draw no random numbers)");
    g = (SoGenerator *)type->tp_alloc(type, 0);
    if (!g) return NULL;
    g->seed = SO_DEFAULT_SEED;
    g->offset = 0;
    g->device = dev;
    return (PyObject *)g;
}

static int gen_traverse(PyObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    return 0;
}

static void gen_dealloc(PyObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    tp->tp_free(self);
    Py_DECREF(tp);
}

static PyObject *gen_manual_seed(SoGenerator *self, PyObject *seed_obj)
{
    uint64_t seed;
    if (parse_seed(seed_obj, &seed) < 0) return NULL;
    reseed(self, seed);
    return Py_NewRef((PyObject *)self);
}

static PyObject *gen_seed(SoGenerator *self, PyObject *unused)
{
    uint64_t seed;
    (void)unused;
    if (random_seed(&seed) < 0) return NULL;
    reseed(self, seed);
    return PyLong_FromUnsignedLongLong(seed);
}

static PyObject *gen_initial_seed(SoGenerator *self, PyObject *unused)
{
    (void)unused;
    return PyLong_FromUnsignedLongLong(self->seed);
}

static PyObject *gen_get_state(SoGenerator *self, PyObject *unused)
{
    so_state *st = state_of((PyObject *)self);
    so_device cpu = {SO_CPU, 0};
    int64_t shape[1] = {2};
    SoTensor *t;
    (void)unused;
    if (!st) return NULL;
    t = so_tensor_empty(st, 1, shape, SO_INT64, cpu);
    if (!t) return NULL;
    memcpy(so_tensor_data(t), &self->seed, 8);
    memcpy(so_tensor_data(t) + 8, &self->offset, 8);
    return (PyObject *)t;
}

static PyObject *gen_set_state(SoGenerator *self, PyObject *state)
{
    so_state *st = state_of((PyObject *)self);
    char buf[16];
    if (!st) return NULL;
    if (so_tensor_check(st, state)) {
        SoTensor *t = (SoTensor *)state, *host;
        so_device cpu = {SO_CPU, 0};
        int64_t nbytes = so_tensor_numel(t) * so_dtype_itemsize(t->dtype);
        if (nbytes != 16)
            return PyErr_Format(PyExc_RuntimeError,
                                "set_state: RNG state must be 16 bytes (an int64 tensor [seed, "
                                "offset] from get_state()), got a tensor of %lld bytes",
                                (long long)nbytes);
        host = so_tensor_convert(st, t, t->dtype, cpu); /* contiguous host copy */
        if (!host) return NULL;
        memcpy(buf, so_tensor_data(host), 16);
        Py_DECREF(host);
    } else if (PyBytes_Check(state) || PyByteArray_Check(state)) {
        Py_ssize_t n = PyBytes_Check(state) ? PyBytes_GET_SIZE(state) : PyByteArray_GET_SIZE(state);
        if (n != 16)
            return PyErr_Format(PyExc_RuntimeError,
                                "set_state: RNG state must be 16 bytes, got %zd", n);
        memcpy(buf, PyBytes_Check(state) ? PyBytes_AS_STRING(state) : PyByteArray_AS_STRING(state),
               16);
    } else {
        return PyErr_Format(PyExc_TypeError,
                            "set_state: new_state must be a Tensor or bytes, got %s",
                            Py_TYPE(state)->tp_name);
    }
    memcpy(&self->seed, buf, 8);
    memcpy(&self->offset, buf + 8, 8);
    return Py_NewRef((PyObject *)self);
}

static PyObject *gen_get_device(SoGenerator *self, void *c)
{
    so_state *st = state_of((PyObject *)self);
    (void)c;
    return st ? so_device_object(st, self->device) : NULL;
}

static PyObject *gen_get_offset(SoGenerator *self, void *c)
{
    (void)c;
    return PyLong_FromUnsignedLongLong(self->offset);
}

static PyObject *gen_repr(SoGenerator *self)
{
    if (self->device.type == SO_CPU) return PyUnicode_FromString("<shardopt._C.Generator device='cpu'>");
    return PyUnicode_FromFormat("<shardopt._C.Generator device='cuda:%d'>", (int)self->device.index);
}

static PyMethodDef gen_methods[] = {
    {"manual_seed", (PyCFunction)gen_manual_seed, METH_O,
     "manual_seed(seed): restart the stream at (seed, offset 0); returns self"},
    {"seed", (PyCFunction)gen_seed, METH_NOARGS,
     "seed(): reseed from os.urandom and return the new seed"},
    {"initial_seed", (PyCFunction)gen_initial_seed, METH_NOARGS, "the seed of the stream"},
    {"get_state", (PyCFunction)gen_get_state, METH_NOARGS,
     "get_state(): the state as a CPU int64 tensor [seed, offset]"},
    {"set_state", (PyCFunction)gen_set_state, METH_O,
     "set_state(state): restore a state from get_state() (tensor) or 16 bytes; returns self"},
    {NULL}};

static PyGetSetDef gen_getset[] = {
    {"device", (getter)gen_get_device, NULL, "device whose draws this generator serves", NULL},
    {"_offset", (getter)gen_get_offset, NULL, "next unused Philox counter block", NULL},
    {NULL}};

/* ------------------------------------------------------------------ module functions */

static int parse_device_arg(so_state *st, PyObject *obj, so_device *dev)
{
    /* an index means cuda:N; validated lazily (no CUDA init): only the slot range matters */
    if (PyLong_Check(obj) && !PyBool_Check(obj)) {
        long v = PyLong_AsLong(obj);
        if (v == -1 && PyErr_Occurred()) return -1;
        if (v < 0 || v >= SO_MAX_CUDA_DEVICES)
            return so_fail(PyExc_ValueError, "device index %ld out of range", v);
        dev->type = SO_CUDA;
        dev->index = (int16_t)v;
        return 0;
    }
    if (so_parse_device(st, obj, "device", dev) < 0) return -1;
    if (dev->type == SO_META)
        return so_fail(PyExc_RuntimeError, "no generator for the meta device (meta tensors draw "
                       "no random numbers)");
    return 0;
}

/* _C._default_generator(device) -> Generator */
static PyObject *py_default_generator(PyObject *m, PyObject *dev_obj)
{
    so_state *st = so_state_from_module(m);
    so_device dev;
    SoGenerator *g;
    if (parse_device_arg(st, dev_obj, &dev) < 0) return NULL;
    g = so_default_generator(st, dev);
    return g ? Py_NewRef((PyObject *)g) : NULL;
}

/* _C._seed_default_generators(seed, which): which 0 = cpu and every cuda slot, 1 = cuda
 * slots only.  Slots are filled without touching CUDA. */
static PyObject *py_seed_defaults(PyObject *m, PyObject *args)
{
    so_state *st = so_state_from_module(m);
    PyObject *seed_obj;
    int which = 0;
    uint64_t seed;
    if (!PyArg_ParseTuple(args, "O|i:_seed_default_generators", &seed_obj, &which)) return NULL;
    if (parse_seed(seed_obj, &seed) < 0) return NULL;
    for (int slot = which == 0 ? 0 : 1; slot <= SO_MAX_CUDA_DEVICES; slot++) {
        so_device dev = {slot == 0 ? SO_CPU : SO_CUDA, (int16_t)(slot == 0 ? 0 : slot - 1)};
        SoGenerator *g = so_default_generator(st, dev);
        if (!g) return NULL;
        reseed(g, seed);
    }
    Py_RETURN_NONE;
}

/* _C._random_seed() -> a fresh non-deterministic seed (for shardopt.seed()). */
static PyObject *py_random_seed(PyObject *m, PyObject *unused)
{
    uint64_t seed;
    (void)m;
    (void)unused;
    if (random_seed(&seed) < 0) return NULL;
    return PyLong_FromUnsignedLongLong(seed);
}

static PyMethodDef generator_functions[] = {
    {"_default_generator", py_default_generator, METH_O,
     "_default_generator(device): the default Generator of a device (cpu, 'cuda:i' or i)"},
    {"_seed_default_generators", py_seed_defaults, METH_VARARGS,
     "_seed_default_generators(seed, which=0): seed cpu+cuda (0) or cuda (1) defaults"},
    {"_random_seed", py_random_seed, METH_NOARGS, "a non-deterministic 53-bit seed"},
    {NULL}};

int so_register_generator(PyObject *m, so_state *st)
{
    PyType_Slot slots[] = {
        {Py_tp_new, gen_new},
        {Py_tp_dealloc, gen_dealloc},
        {Py_tp_traverse, gen_traverse},
        {Py_tp_methods, gen_methods},
        {Py_tp_getset, gen_getset},
        {Py_tp_repr, gen_repr},
        {Py_tp_doc, "Generator(device='cpu'): a Philox4x32-10 random stream (seed, offset)."},
        {0, NULL}};
    PyType_Spec spec = {.name = "shardopt._C.Generator",
                        .basicsize = sizeof(SoGenerator),
                        .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE,
                        .slots = slots};
    st->tensor.generator_type = (PyTypeObject *)PyType_FromModuleAndSpec(m, &spec, NULL);
    if (!st->tensor.generator_type) return -1;
    if (PyModule_AddType(m, st->tensor.generator_type) < 0) return -1;
    return PyModule_AddFunctions(m, generator_functions);
}
