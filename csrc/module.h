/* module.h — shardopt._C module state: every type object, singleton and per-process
 * resource lives here (no C globals, as in CPython's Modules/), in one typed part per layer.
 *
 * Reach it with so_state_from_module(module) in module-level functions and
 * so_state_from_type(Py_TYPE(obj)) in methods of our heap types (works for Python
 * subclasses too, via PyType_GetModuleByDef).
 */
#ifndef SO_MODULE_H
#define SO_MODULE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include "core/common.h"
#include "core/device.h"
#include "tensor/tensor_state.h"
#include "ops/ops_state.h"
#include "distributed/dist_state.h" /* [distributed] so_dist_state, the one member below */
#include "shard/shard_state.h" /* shard layer: its part of the state (so_state.shard) */

/* One typed part per layer, each defined in that layer's header (bottom to top); a layer
 * reaches its own part as st->core, st->tensor, st->ops... (optim keeps no state). */
typedef struct so_state {
    so_core_state core;            /* core/device.h: per-device CUDA streams */
    so_tensor_state tensor;        /* tensor/tensor_state.h: types, dtypes, generators */
    so_ops_state ops;              /* ops/ops_state.h: cuBLAS handles */

    so_dist_state dist;            /* distributed/dist_state.h: Work type, exception types */
    /* shard layer (csrc/shard/shard_state.h): typed, no string keys */
    so_shard_state shard;
} so_state;

extern PyModuleDef so_module_def;

static inline so_state *so_state_from_module(PyObject *module)
{
    return (so_state *)PyModule_GetState(module);
}

/* Returns NULL with TypeError set if `type` is not (a subclass of) one of our heap types. */
static inline so_state *so_state_from_type(PyTypeObject *type)
{
    PyObject *m = PyType_GetModuleByDef(type, &so_module_def);
    return m ? (so_state *)PyModule_GetState(m) : NULL;
}

/* Each concept file registers its types/functions through one of these, called from
 * module exec in module.c.  Return 0/-1. */
int so_register_device(PyObject *m, so_state *st);    /* tensor/dtype_device.c */
int so_register_storage(PyObject *m, so_state *st);   /* tensor/storage.c */
int so_register_tensor(PyObject *m, so_state *st);    /* tensor/tensor.c */
int so_register_autograd_engine(PyObject *m, so_state *st); /* tensor/autograd_engine.c */
int so_register_generator(PyObject *m, so_state *st); /* tensor/generator.c */
int so_register_random(PyObject *m, so_state *st);    /* ops/philox.c */
int so_register_dlpack(PyObject *m, so_state *st);    /* tensor/dlpack.c */
int so_register_pinned(PyObject *m, so_state *st);    /* tensor/pinned.c */
int so_register_reduce(PyObject *m, so_state *st);    /* ops/reduce.c */
int so_register_index(PyObject *m, so_state *st);     /* ops/index.c */
int so_register_sort(PyObject *m, so_state *st);      /* ops/sort.c */
int so_register_scan(PyObject *m, so_state *st);      /* ops/scan.c */
int so_register_matmul(PyObject *m, so_state *st);    /* ops/matmul.c */
int so_register_norms(PyObject *m, so_state *st);     /* ops/norms.c */
int so_register_join(PyObject *m, so_state *st);      /* ops/join.c */
int so_register_elementwise(PyObject *m, so_state *st); /* ops/elementwise_py.c */
int so_register_nn(PyObject *m, so_state *st);        /* ops/nn_args.c (softmax, norms, losses, embedding, dropout) */
int so_register_optim(PyObject *m, so_state *st);     /* optim/optim_py.c */
int so_register_shard(PyObject *m, so_state *st);     /* shard/spec.c (placements, specs, validators) */
int so_register_sharded_optim(PyObject *m, so_state *st); /* shard/sharded_optim.c */
int so_register_sharded_tensor(PyObject *m, so_state *st); /* shard/sharded_tensor.c */

#endif /* SO_MODULE_H */
