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

static PyMethodDef module_functions[] = {
    {"_cuda_device_count", py_cuda_device_count, METH_NOARGS, NULL},
    {"_cuda_current_device", py_cuda_current_device, METH_NOARGS, NULL},
    {"_cuda_set_device", py_cuda_set_device, METH_O, NULL},
    {"_cuda_synchronize", py_cuda_synchronize, METH_O, NULL},
    {NULL}};

static int module_exec(PyObject *m)
{
    so_state *st = so_state_from_module(m);
    memset(st, 0, sizeof *st);
    st->extra = PyDict_New();
    if (!st->extra) return -1;
    if (so_register_device(m, st) < 0) return -1;
    if (so_register_storage(m, st) < 0) return -1;
    if (so_register_tensor(m, st) < 0) return -1;
    if (so_register_autograd_engine(m, st) < 0) return -1;
    if (so_register_numpy(m, st) < 0) return -1;
    if (so_register_generator(m, st) < 0) return -1;
    if (so_register_random(m, st) < 0) return -1;
    if (so_register_dlpack(m, st) < 0) return -1;
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
    Py_VISIT(st->dist_error);
    Py_VISIT(st->dist_timeout_error);
    Py_VISIT(st->dist_backend_error);
    Py_VISIT(st->dist_store_error);
    if (so_dist_state_traverse(&st->dist, visit, arg)) return -1;  /* distributed/dist_state.h */
    Py_VISIT(st->extra);
    return so_shard_state_traverse(&st->shard, visit, arg); /* shard layer */
}

static int module_clear(PyObject *m)
{
    so_state *st = so_state_from_module(m);
    if (!st) return 0;
    Py_CLEAR(st->dist_error);
    Py_CLEAR(st->dist_timeout_error);
    Py_CLEAR(st->dist_backend_error);
    Py_CLEAR(st->dist_store_error);
    so_dist_state_clear(&st->dist);  /* distributed/dist_state.h */
    Py_CLEAR(st->extra);
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
