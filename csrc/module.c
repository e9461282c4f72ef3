/* module.c — shardopt._C: multi-phase init, module state lifetime, and the list of
 * registration functions (one per concept file) that fill the module. */
#include "module.h"
#include "tensor/interop.h"
#include "ops/matmul.h"
#include "distributed/dist.h"

#ifdef SHARDOPT_NCCL_MISSING
#define SO_NCCL_MISSING SHARDOPT_NCCL_MISSING /* set by setup.py */
#else
#define SO_NCCL_MISSING ""
#endif

/* ---- shardopt.cuda queries (never called at import) ---- */

static PyObject *py_cuda_device_count(PyObject *m, PyObject *unused)
{
    (void)m;
    (void)unused;
    return PyLong_FromLong(so_cuda_device_count(NULL));
}

static PyObject *py_cuda_current_device(PyObject *m, PyObject *unused)
{
    int idx = 0;
    (void)m;
    (void)unused;
    if (so_cuda_require(0) < 0 || so_cuda_get_device(&idx) < 0) return NULL;
    return PyLong_FromLong(idx);
}

static PyObject *py_cuda_set_device(PyObject *m, PyObject *arg)
{
    long idx = PyLong_AsLong(arg);
    (void)m;
    if (idx == -1 && PyErr_Occurred()) return NULL;
    if (so_cuda_set_device((int)idx) < 0) return NULL;
    Py_RETURN_NONE;
}

static PyObject *py_cuda_synchronize(PyObject *m, PyObject *arg)
{
    so_state *st = so_state_from_module(m);
    long idx = PyLong_AsLong(arg);
    if (idx == -1 && PyErr_Occurred()) return NULL;
    if (so_cuda_require((int)idx) < 0) return NULL;
    if (st->core.cuda_streams[idx] && so_cuda_stream_synchronize(st->core.cuda_streams[idx]) < 0)
        return NULL;
    if (so_cuda_device_synchronize((int)idx) < 0) return NULL;
    Py_RETURN_NONE;
}

/* ---- the host allocator's block cache (core/alloc.c) ---- */

static PyObject *py_host_cache_stats(PyObject *m, PyObject *unused)
{
    so_host_cache_info i;
    (void)m;
    (void)unused;
    so_host_cache_stats(&i);
    return Py_BuildValue("{s:n,s:i,s:n,s:L,s:L,s:L,s:O}", "cached_bytes", (Py_ssize_t)i.cached_bytes,
                         "cached_blocks", i.cached_blocks, "limit", (Py_ssize_t)i.limit,
                         "hits", (long long)i.hits, "misses", (long long)i.misses,
                         "evictions", (long long)i.evictions, "poison",
                         i.poison ? Py_True : Py_False);
}

static PyObject *py_host_cache_release(PyObject *m, PyObject *unused)
{
    (void)m;
    (void)unused;
    so_host_cache_release();
    Py_RETURN_NONE;
}

static PyObject *py_host_cache_set_limit(PyObject *m, PyObject *arg)
{
    (void)m;
    if (!PyLong_Check(arg))
        return so_fail_null(PyExc_TypeError, "_host_cache_set_limit(): limit must be an int, got %s",
                            Py_TYPE(arg)->tp_name);
    Py_ssize_t limit = PyLong_AsSsize_t(arg);
    if (limit == -1 && PyErr_Occurred()) return NULL;
    if (limit < 0)
        return so_fail_null(PyExc_ValueError,
                            "_host_cache_set_limit(): limit must be >= 0 bytes, got %zd", limit);
    return PyLong_FromSize_t(so_host_cache_set_limit((size_t)limit));
}

static PyMethodDef module_functions[] = {
    {"_host_cache_stats", py_host_cache_stats, METH_NOARGS, NULL},
    {"_host_cache_release", py_host_cache_release, METH_NOARGS, NULL},
    {"_host_cache_set_limit", py_host_cache_set_limit, METH_O, NULL},
    {"_cuda_device_count", py_cuda_device_count, METH_NOARGS, NULL},
    {"_cuda_current_device", py_cuda_current_device, METH_NOARGS, NULL},
    {"_cuda_set_device", py_cuda_set_device, METH_O, NULL},
    {"_cuda_synchronize", py_cuda_synchronize, METH_O, NULL},
    {NULL}};

static int module_exec(PyObject *m)
{
    so_state *st = so_state_from_module(m);
    memset(st, 0, sizeof *st);
    if (so_register_device(m, st) < 0) return -1;
    if (so_register_storage(m, st) < 0) return -1;
    if (so_register_tensor(m, st) < 0) return -1;
    if (so_register_autograd_engine(m, st) < 0) return -1;
    if (so_register_numpy(m, st) < 0) return -1;
    if (so_register_generator(m, st) < 0) return -1;
    if (so_register_random(m, st) < 0) return -1;
    if (so_register_dlpack(m, st) < 0) return -1;
    if (so_register_pinned(m, st) < 0) return -1;
    if (so_register_reduce(m, st) < 0) return -1;
    if (so_register_index(m, st) < 0) return -1;
    if (so_register_sort(m, st) < 0) return -1;
    if (so_register_scan(m, st) < 0) return -1;
    if (so_register_matmul(m, st) < 0) return -1;
    if (so_register_norms(m, st) < 0) return -1;
    if (so_register_join(m, st) < 0) return -1;
    if (so_register_elementwise(m, st) < 0) return -1;
    if (so_register_nn(m, st) < 0) return -1;
    if (so_register_optim(m, st) < 0) return -1;
    if (so_register_dist(m, st) < 0) return -1;
    if (so_register_shard(m, st) < 0) return -1;
    if (so_register_sharded_optim(m, st) < 0) return -1;
    if (so_register_sharded_tensor(m, st) < 0) return -1;
    if (PyModule_AddFunctions(m, module_functions) < 0) return -1;
    if (PyModule_AddIntConstant(m, "_cuda_compiled", so_cuda_compiled()) < 0) return -1;
    if (PyModule_AddIntConstant(m, "_max_dims", SO_MAX_DIMS) < 0) return -1;
    /* Why this build has no NCCL ("" when it has): the nccl backend's error names it. */
    if (PyModule_AddStringConstant(m, "_nccl_missing", SO_NCCL_MISSING) < 0) return -1;
    return 0;
}

static int module_traverse(PyObject *m, visitproc visit, void *arg)
{
    so_state *st = so_state_from_module(m);
    if (!st) return 0;
    int rc = so_tensor_state_traverse(&st->tensor, visit, arg);
    if (rc) return rc;
    if (so_dist_state_traverse(&st->dist, visit, arg)) return -1;  /* distributed/dist_state.h */
    return so_shard_state_traverse(&st->shard, visit, arg); /* shard layer */
}

static int module_clear(PyObject *m)
{
    so_state *st = so_state_from_module(m);
    if (!st) return 0;
    so_dist_state_clear(&st->dist);  /* distributed/dist_state.h */
    so_tensor_state_clear(&st->tensor);
    so_shard_state_clear(&st->shard); /* shard layer */
    return 0;
}

static void module_free(void *m)
{
    so_state *st = so_state_from_module((PyObject *)m);
    module_clear((PyObject *)m);
    /* CUDA memory still owned by live storages would be freed on these streams; at
     * interpreter teardown the process is going away, so only idle streams are released. */
    if (st) so_matmul_release_handles(st->ops.cublas_handles, SO_MAX_CUDA_DEVICES);
    if (st) so_cuda_release_streams(st->core.cuda_streams);
    so_host_cache_release(); /* storages freed later still unmap or re-cache their blocks */
}

static PyModuleDef_Slot module_slots[] = {
    {Py_mod_exec, module_exec},
    {0, NULL}};

PyModuleDef so_module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "shardopt._C",
    .m_doc = "shardopt's C core: tensors, kernels, collectives and sharding.",
    .m_size = sizeof(so_state),
    .m_slots = module_slots,
    .m_traverse = module_traverse,
    .m_clear = module_clear,
    .m_free = module_free,
};

PyMODINIT_FUNC PyInit__C(void) { return PyModuleDef_Init(&so_module_def); }
