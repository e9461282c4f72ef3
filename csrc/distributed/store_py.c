/* store_py.c — shardopt._C.TCPStore: torch.distributed.TCPStore over store.c.
 *
 * Values are bytes; keys and values may be given as str (UTF-8) or bytes.  Every call
 * releases the GIL while it talks to the server and is bounded by the store's timeout.
 * A per-object lock serialises requests from several Python threads, because the
 * request/response protocol allows only one request in flight per connection.
 */
#include "dist.h"
#include "store.h"

#include <pythread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    PyObject_HEAD
    so_store_client client;
    so_store_server *server; /* non-NULL on the master */
    PyThread_type_lock lock;
    int64_t timeout_ms;
    int world_size; /* -1 when not given */
    int is_master;
    int wait_for_workers;
} TCPStoreObject;

static const char INIT_KEY[] = "init/";

/* Buffer view of a str or bytes argument; raises TypeError naming argname. */
static int as_bytes(PyObject *obj, const char *argname, const char **p, Py_ssize_t *n)
{
    if (PyBytes_Check(obj)) {
        *p = PyBytes_AS_STRING(obj);
        *n = PyBytes_GET_SIZE(obj);
        return 0;
    }
    if (PyUnicode_Check(obj)) {
        *p = PyUnicode_AsUTF8AndSize(obj, n);
        return *p ? 0 : -1;
    }
    if (PyByteArray_Check(obj)) {
        *p = PyByteArray_AS_STRING(obj);
        *n = PyByteArray_GET_SIZE(obj);
        return 0;
    }
    return so_fail(PyExc_TypeError, "%s must be str or bytes, got %.100s", argname,
                 Py_TYPE(obj)->tp_name);
}

static int check_key(const char *k, Py_ssize_t n)
{
    (void)k;
    if ((uint64_t)n > SO_STORE_MAX_KEY)
        return so_fail(PyExc_ValueError, "key is %zd bytes; the store accepts at most %u", n,
                       (unsigned)SO_STORE_MAX_KEY);
    return 0;
}

/* Perform a request with the GIL released.  On failure raises DistStoreError (or
 * MemoryError) whose message starts with "TCPStore.<op>(<key>)". */
static int store_call(TCPStoreObject *self, const char *op, uint32_t cmd, const char *key,
                      Py_ssize_t klen, const char *val, uint64_t vlen, int64_t timeout_ms,
                      char **resp, uint64_t *resp_len)
{
    char err[SO_STORE_ERRLEN] = "";
    int rc;
    Py_BEGIN_ALLOW_THREADS
    PyThread_acquire_lock(self->lock, WAIT_LOCK);
    rc = so_store_request(&self->client, cmd, key, (uint32_t)klen, val, vlen, timeout_ms, resp,
                          resp_len, err);
    PyThread_release_lock(self->lock);
    Py_END_ALLOW_THREADS
    if (rc == SO_STORE_OK) return 0;
    if (rc == SO_STORE_ENOMEM) return so_fail(PyExc_MemoryError, "TCPStore.%s: %s", op, err);
    so_state *st = so_state_from_type(Py_TYPE(self));
    if (!st) return -1;
    PyObject *exc = st->dist.store_error ? st->dist.store_error : PyExc_RuntimeError;
    const char *what = rc == SO_STORE_ETIMEOUT ? "timeout: " : "";
    if (key) return so_fail(exc, "TCPStore.%s('%.200s'): %s%s", op, key, what, err);
    return so_fail(exc, "TCPStore.%s(): %s%s", op, what, err);
}

static int64_t read_i64(const char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)(unsigned char)p[i] << (8 * i);
    return (int64_t)v;
}

static int do_add(TCPStoreObject *self, const char *key, Py_ssize_t klen, int64_t delta,
                  int64_t *out)
{
    unsigned char d[8];
    for (int i = 0; i < 8; i++) d[i] = (unsigned char)((uint64_t)delta >> (8 * i));
    char *resp;
    uint64_t rl;
    if (store_call(self, "add", SO_STORE_CMD_ADD, key, klen, (const char *)d, 8,
                   self->timeout_ms, &resp, &rl) < 0)
        return -1;
    if (rl != 8) {
        free(resp);
        so_state *st = so_state_from_type(Py_TYPE(self));
        return so_fail(st ? st->dist.store_error : PyExc_RuntimeError,
                     "TCPStore.add('%s'): malformed reply", key);
    }
    *out = read_i64(resp);
    free(resp);
    return 0;
}

static int TCPStore_init(PyObject *op, PyObject *args, PyObject *kwds)
{
    TCPStoreObject *self = (TCPStoreObject *)op;
    static char *kwlist[] = {"host_name", "port", "world_size", "is_master", "timeout",
                             "wait_for_workers", "multi_tenant", "master_listen_fd",
                             "use_libuv", NULL};
    const char *host;
    int port;
    PyObject *world_size = Py_None, *timeout = NULL, *listen_fd = Py_None, *use_libuv = Py_None;
    int is_master = 0, wait_for_workers = 1, multi_tenant = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "si|OpOppOO:TCPStore", kwlist, &host, &port,
                                     &world_size, &is_master, &timeout, &wait_for_workers,
                                     &multi_tenant, &listen_fd, &use_libuv))
        return -1;
    if (self->lock) {
        return so_fail(PyExc_RuntimeError, "TCPStore.__init__ called twice");
    }
    if (port < 0 || port > 65535) {
        return so_fail(PyExc_ValueError, "port must be in [0, 65535], got %d", port);
    }
    if (port == 0 && !is_master) {
        return so_fail(PyExc_ValueError, "port 0 (pick a free port) is only valid with is_master=True");
    }
    self->world_size = -1;
    if (world_size != Py_None) {
        long ws = PyLong_AsLong(world_size);
        if (ws == -1 && PyErr_Occurred()) return -1;
        if (ws < 1 || ws > 1 << 20) {
            return so_fail(PyExc_ValueError, "world_size must be a positive int, got %ld", ws);
        }
        self->world_size = (int)ws;
    }
    self->timeout_ms = 300000;
    if (timeout && timeout != Py_None &&
        so_parse_timeout_ms(timeout, "timeout", &self->timeout_ms) < 0)
        return -1;
    self->lock = PyThread_allocate_lock();
    if (!self->lock) return so_fail(PyExc_MemoryError, "TCPStore: cannot allocate its lock");
    self->is_master = is_master;
    self->wait_for_workers = wait_for_workers;
    char err[SO_STORE_ERRLEN] = "";
    so_state *st = so_state_from_type(Py_TYPE(self));
    if (!st) return -1;
    if (is_master) {
        int rc;
        Py_BEGIN_ALLOW_THREADS
        rc = so_store_server_start(host, port, &self->server, &port, err);
        Py_END_ALLOW_THREADS
        if (rc) {
            return so_fail(st->dist.store_error, "TCPStore: %s", err);
        }
    }
    /* The master talks to its own server through a client connection like everyone. */
    so_store_client_init(&self->client, is_master ? "127.0.0.1" : host, port);
    if (is_master && (!strcmp(host, "localhost") || !strcmp(host, "::1")))
        so_store_client_init(&self->client, host, port);
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = so_store_client_connect(&self->client, self->timeout_ms, err);
    Py_END_ALLOW_THREADS
    if (rc) {
        return so_fail(st->dist.store_error, "TCPStore: %s", err);
    }
    if (wait_for_workers) {
        int64_t n;
        if (do_add(self, INIT_KEY, sizeof INIT_KEY - 1, 1, &n) < 0) return -1;
        if (is_master && self->world_size > 0) {
            /* Bounded poll of the join counter: the master must outlive every worker's
             * rendezvous, as torch's does. */
            int64_t deadline = so_store_now_ms() + self->timeout_ms;
            while (n < self->world_size) {
                if (so_store_now_ms() > deadline) {
                    return so_fail(st->dist.store_error,
                                 "TCPStore: timed out after %lld ms waiting for %d workers to "
                                 "join (%lld joined)",
                                 (long long)self->timeout_ms, self->world_size, (long long)n);
                }
                Py_BEGIN_ALLOW_THREADS
                usleep(10000);
                Py_END_ALLOW_THREADS
                if (PyErr_CheckSignals() < 0) return -1;
                if (do_add(self, INIT_KEY, sizeof INIT_KEY - 1, 0, &n) < 0) return -1;
            }
        }
    }
    return 0;
}

static void TCPStore_dealloc(PyObject *op)
{
    TCPStoreObject *self = (TCPStoreObject *)op;
    PyTypeObject *tp = Py_TYPE(op);
    PyObject_GC_UnTrack(op);
    so_store_client_close(&self->client);
    if (self->server) {
        Py_BEGIN_ALLOW_THREADS
        so_store_server_stop(self->server);
        Py_END_ALLOW_THREADS
        self->server = NULL;
    }
    if (self->lock) PyThread_free_lock(self->lock);
    tp->tp_free(op);
    Py_DECREF(tp);
}

static int TCPStore_traverse(PyObject *op, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(op));
    return 0;
}

static int ready(TCPStoreObject *self)
{
    if (!self->lock) {
        return so_fail(PyExc_RuntimeError, "TCPStore is not initialised");
    }
    return 0;
}

static PyObject *TCPStore_set(PyObject *op, PyObject *const *args, Py_ssize_t nargs)
{
    TCPStoreObject *self = (TCPStoreObject *)op;
    const char *k, *v;
    Py_ssize_t kl, vl;
    if (ready(self) < 0) return NULL;
    if (nargs != 2) {
        return PyErr_Format(PyExc_TypeError, "set() takes (key, value), got %zd arguments", nargs);
    }
    if (as_bytes(args[0], "key", &k, &kl) < 0 || check_key(k, kl) < 0) return NULL;
    if (as_bytes(args[1], "value", &v, &vl) < 0) return NULL;
    if ((uint64_t)vl > SO_STORE_MAX_VALUE)
        return PyErr_Format(PyExc_ValueError, "value is %zd bytes; the store accepts at most %llu",
                            vl, (unsigned long long)SO_STORE_MAX_VALUE);
    char *resp;
    uint64_t rl;
    if (store_call(self, "set", SO_STORE_CMD_SET, k, kl, v, (uint64_t)vl, self->timeout_ms,
                   &resp, &rl) < 0)
        return NULL;
    free(resp);
    Py_RETURN_NONE;
}

static PyObject *TCPStore_get(PyObject *op, PyObject *key)
{
    TCPStoreObject *self = (TCPStoreObject *)op;
    const char *k;
    Py_ssize_t kl;
    if (ready(self) < 0) return NULL;
    if (as_bytes(key, "key", &k, &kl) < 0 || check_key(k, kl) < 0) return NULL;
    char *resp;
    uint64_t rl;
    if (store_call(self, "get", SO_STORE_CMD_GET, k, kl, NULL, 0, self->timeout_ms, &resp,
                   &rl) < 0)
        return NULL;
    PyObject *r = PyBytes_FromStringAndSize(resp, (Py_ssize_t)rl);
    free(resp);
    return r;
}

static PyObject *TCPStore_add(PyObject *op, PyObject *const *args, Py_ssize_t nargs)
{
    TCPStoreObject *self = (TCPStoreObject *)op;
    const char *k;
    Py_ssize_t kl;
    if (ready(self) < 0) return NULL;
    if (nargs != 2) {
        return PyErr_Format(PyExc_TypeError, "add() takes (key, amount), got %zd arguments", nargs);
    }
    if (as_bytes(args[0], "key", &k, &kl) < 0 || check_key(k, kl) < 0) return NULL;
    if (!PyLong_Check(args[1])) {
        return PyErr_Format(PyExc_TypeError, "amount must be int, got %.100s",
                     Py_TYPE(args[1])->tp_name);
    }
    long long d = PyLong_AsLongLong(args[1]);
    if (d == -1 && PyErr_Occurred()) return NULL;
    int64_t n;
    if (do_add(self, k, kl, d, &n) < 0) return NULL;
    return PyLong_FromLongLong(n);
}

static PyObject *TCPStore_compare_set(PyObject *op, PyObject *const *args, Py_ssize_t nargs)
{
    TCPStoreObject *self = (TCPStoreObject *)op;
    const char *k, *e, *d;
    Py_ssize_t kl, el, dl;
    if (ready(self) < 0) return NULL;
    if (nargs != 3) {
        return PyErr_Format(PyExc_TypeError,
                     "compare_set() takes (key, expected_value, desired_value), got %zd", nargs);
    }
    if (as_bytes(args[0], "key", &k, &kl) < 0 || check_key(k, kl) < 0 ||
        as_bytes(args[1], "expected_value", &e, &el) < 0 ||
        as_bytes(args[2], "desired_value", &d, &dl) < 0)
        return NULL;
    if ((uint64_t)el + (uint64_t)dl > SO_STORE_MAX_VALUE) {
        return PyErr_Format(PyExc_ValueError, "compare_set: values too large");
    }
    uint64_t vlen = 8 + (uint64_t)el + (uint64_t)dl;
    char *buf = malloc(vlen);
    if (!buf) return PyErr_NoMemory();
    for (int i = 0; i < 8; i++) buf[i] = (char)((uint64_t)el >> (8 * i));
    memcpy(buf + 8, e, el);
    memcpy(buf + 8 + el, d, dl);
    char *resp;
    uint64_t rl;
    int rc = store_call(self, "compare_set", SO_STORE_CMD_COMPARE_SET, k, kl, buf, vlen,
                        self->timeout_ms, &resp, &rl);
    free(buf);
    if (rc < 0) return NULL;
    PyObject *r = PyBytes_FromStringAndSize(resp, (Py_ssize_t)rl);
    free(resp);
    return r;
}

/* Run `cmd` for each key of a list; wait shares one deadline across keys. */
static PyObject *keys_op(TCPStoreObject *self, PyObject *keys, uint32_t cmd, const char *op,
                         int64_t timeout_ms)
{
    if (ready(self) < 0) return NULL;
    if (PyUnicode_Check(keys) || PyBytes_Check(keys)) {
        return PyErr_Format(PyExc_TypeError, "%s() takes a list of keys, got a single %.50s", op,
                     Py_TYPE(keys)->tp_name);
    }
    PyObject *seq = PySequence_Fast(keys, "keys must be a list of str");
    if (!seq) return NULL;
    int64_t deadline = so_store_now_ms() + timeout_ms;
    int all = 1;
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(seq); i++) {
        const char *k;
        Py_ssize_t kl;
        if (as_bytes(PySequence_Fast_GET_ITEM(seq, i), "keys[i]", &k, &kl) < 0 ||
            check_key(k, kl) < 0)
            goto error;
        int64_t left = deadline - so_store_now_ms();
        if (left < 0) left = 0;
        char *resp;
        uint64_t rl;
        if (store_call(self, op, cmd, k, kl, NULL, 0, cmd == SO_STORE_CMD_WAIT ? left : timeout_ms,
                       &resp, &rl) < 0)
            goto error;
        if (cmd == SO_STORE_CMD_CHECK && !(rl == 1 && resp[0])) all = 0;
        free(resp);
    }
    Py_DECREF(seq);
    if (cmd == SO_STORE_CMD_CHECK) return PyBool_FromLong(all);
    Py_RETURN_NONE;
error:
    Py_DECREF(seq);
    return NULL;
}

static PyObject *TCPStore_wait(PyObject *op, PyObject *args, PyObject *kwds)
{
    TCPStoreObject *self = (TCPStoreObject *)op;
    static char *kwlist[] = {"keys", "timeout", NULL};
    PyObject *keys, *timeout = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|O:wait", kwlist, &keys, &timeout))
        return NULL;
    int64_t ms = self->timeout_ms;
    if (timeout != Py_None && so_parse_timeout_ms(timeout, "timeout", &ms) < 0) return NULL;
    return keys_op(self, keys, SO_STORE_CMD_WAIT, "wait", ms);
}

static PyObject *TCPStore_check(PyObject *op, PyObject *keys)
{
    TCPStoreObject *self = (TCPStoreObject *)op;
    return keys_op(self, keys, SO_STORE_CMD_CHECK, "check", self->timeout_ms);
}

static PyObject *TCPStore_delete_key(PyObject *op, PyObject *key)
{
    TCPStoreObject *self = (TCPStoreObject *)op;
    const char *k;
    Py_ssize_t kl;
    if (ready(self) < 0) return NULL;
    if (as_bytes(key, "key", &k, &kl) < 0 || check_key(k, kl) < 0) return NULL;
    char *resp;
    uint64_t rl;
    if (store_call(self, "delete_key", SO_STORE_CMD_DELETE, k, kl, NULL, 0, self->timeout_ms,
                   &resp, &rl) < 0)
        return NULL;
    int existed = rl == 1 && resp[0];
    free(resp);
    return PyBool_FromLong(existed);
}

static PyObject *TCPStore_num_keys(PyObject *op, PyObject *unused)
{
    TCPStoreObject *self = (TCPStoreObject *)op;
    if (ready(self) < 0) return NULL;
    char *resp;
    uint64_t rl;
    if (store_call(self, "num_keys", SO_STORE_CMD_NUM_KEYS, NULL, 0, NULL, 0, self->timeout_ms,
                   &resp, &rl) < 0)
        return NULL;
    int64_t n = rl == 8 ? read_i64(resp) : -1;
    free(resp);
    return PyLong_FromLongLong(n);
}

static PyObject *TCPStore_set_timeout(PyObject *op, PyObject *timeout)
{
    TCPStoreObject *self = (TCPStoreObject *)op;
    if (so_parse_timeout_ms(timeout, "timeout", &self->timeout_ms) < 0) return NULL;
    Py_RETURN_NONE;
}

static PyObject *TCPStore_get_timeout(PyObject *op, void *unused)
{
    return so_timedelta_from_ms(((TCPStoreObject *)op)->timeout_ms);
}
static PyObject *TCPStore_get_port(PyObject *op, void *unused)
{
    return PyLong_FromLong(((TCPStoreObject *)op)->client.port);
}
static PyObject *TCPStore_get_host(PyObject *op, void *unused)
{
    return PyUnicode_FromString(((TCPStoreObject *)op)->client.host);
}
static PyObject *TCPStore_get_libuv(PyObject *op, void *unused) { Py_RETURN_FALSE; }

static PyMethodDef TCPStore_methods[] = {
    {"set", (PyCFunction)(void (*)(void))TCPStore_set, METH_FASTCALL,
     "set(key, value): store value (str or bytes) under key."},
    {"get", TCPStore_get, METH_O,
     "get(key) -> bytes: wait (up to the store timeout) until key exists, return its value."},
    {"add", (PyCFunction)(void (*)(void))TCPStore_add, METH_FASTCALL,
     "add(key, amount) -> int: atomically add to an integer counter, return the new value."},
    {"compare_set", (PyCFunction)(void (*)(void))TCPStore_compare_set, METH_FASTCALL,
     "compare_set(key, expected_value, desired_value) -> bytes"},
    {"wait", (PyCFunction)(void (*)(void))TCPStore_wait, METH_VARARGS | METH_KEYWORDS,
     "wait(keys, timeout=None): block until every key exists; DistStoreError on timeout."},
    {"check", TCPStore_check, METH_O, "check(keys) -> bool: whether every key exists now."},
    {"delete_key", TCPStore_delete_key, METH_O, "delete_key(key) -> bool"},
    {"num_keys", TCPStore_num_keys, METH_NOARGS, "num_keys() -> int"},
    {"set_timeout", TCPStore_set_timeout, METH_O, "set_timeout(timedelta)"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef TCPStore_getset[] = {
    {"timeout", TCPStore_get_timeout, NULL, "default timeout (datetime.timedelta)", NULL},
    {"port", TCPStore_get_port, NULL, "port of the server (the chosen one for port 0)", NULL},
    {"host", TCPStore_get_host, NULL, "host the client connects to", NULL},
    {"libuvBackend", TCPStore_get_libuv, NULL, "always False", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot TCPStore_slots[] = {
    {Py_tp_init, TCPStore_init},
    {Py_tp_dealloc, TCPStore_dealloc},
    {Py_tp_traverse, TCPStore_traverse},
    {Py_tp_methods, TCPStore_methods},
    {Py_tp_getset, TCPStore_getset},
    {Py_tp_doc, "TCPStore(host_name, port, world_size=None, is_master=False, "
                "timeout=timedelta(seconds=300), wait_for_workers=True, multi_tenant=False)\n\n"
                "A TCP key-value store; the master serves it on a background thread.  "
                "multi_tenant is accepted and ignored."},
    {0, NULL},
};

static PyType_Spec TCPStore_spec = {
    .name = "shardopt._C.TCPStore",
    .basicsize = sizeof(TCPStoreObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .slots = TCPStore_slots,
};

int so_register_store(PyObject *m, so_state *st)
{
    (void)st;
    PyObject *t = PyType_FromModuleAndSpec(m, &TCPStore_spec, NULL);
    if (!t) return -1;
    int rc = PyModule_AddObjectRef(m, "TCPStore", t);
    Py_DECREF(t);
    return rc;
}
