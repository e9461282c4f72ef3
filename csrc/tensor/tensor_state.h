/* tensor_state.h — the tensor layer's part of the module state (so_state.tensor, module.h).
 *
 * Heap types, dtype singletons and default generators: everything the tensor layer creates
 * at module exec or on first use and the layers above reach through `st->tensor`.  Kept apart
 * from tensor.h because module.h embeds the struct and tensor.h needs so_state. */
#ifndef SO_TENSOR_STATE_H
#define SO_TENSOR_STATE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include "../core/common.h"
#include "../core/device.h"

typedef struct so_tensor_state {
    PyTypeObject *storage_type;    /* _C.Storage */
    PyTypeObject *tensor_type;     /* _C.TensorBase */
    PyTypeObject *dtype_type;      /* _C.dtype */
    PyTypeObject *device_type;     /* _C.device */
    PyTypeObject *generator_type;  /* _C.Generator */
    /* the class new tensors are created as (shardopt.Tensor once registered from Python) */
    PyTypeObject *tensor_class;
    /* dtype singletons, indexed by so_dtype */
    PyObject *dtypes[SO_NUM_DTYPE_OBJECTS]; /* the first SO_NUM_DTYPES have tensors */
    /* default generators: [0] cpu, [1 + i] cuda:i (created lazily) */
    PyObject *default_generators[1 + SO_MAX_CUDA_DEVICES];
    /* Advanced (tensor) indexing is ops' work (ops/index.c: gather/index_put kernels);
     * views.c's __getitem__ / __setitem__ reach it through these, which ops installs when
     * it registers, so the tensor layer never includes ops. */
    PyObject *(*index_get)(PyObject *self, PyObject *index);
    int (*index_put)(PyObject *self, PyObject *index, PyObject *value);
    /* Complex arithmetic (add, mul, abs, allclose, ...) is composed in Python from real ops
     * over view_as_real (shardopt/_ops/complex_math.py); the elementwise bindings hand a
     * call with a complex operand to this callable, registered by _C._set_complex_ops:
     * complex_ops(name, operands_tuple, kwargs_dict). */
    PyObject *complex_ops;
} so_tensor_state;

static inline int so_tensor_state_traverse(so_tensor_state *s, visitproc visit, void *arg)
{
    Py_VISIT(s->storage_type);
    Py_VISIT(s->tensor_type);
    Py_VISIT(s->dtype_type);
    Py_VISIT(s->device_type);
    Py_VISIT(s->generator_type);
    Py_VISIT(s->tensor_class);
    Py_VISIT(s->complex_ops);
    for (int i = 0; i < SO_NUM_DTYPE_OBJECTS; i++) Py_VISIT(s->dtypes[i]);
    for (int i = 0; i < 1 + SO_MAX_CUDA_DEVICES; i++) Py_VISIT(s->default_generators[i]);
    return 0;
}

/* Instances first, then the types they are instances of. */
static inline void so_tensor_state_clear(so_tensor_state *s)
{
    Py_CLEAR(s->tensor_class);
    Py_CLEAR(s->complex_ops);
    for (int i = 0; i < SO_NUM_DTYPE_OBJECTS; i++) Py_CLEAR(s->dtypes[i]);
    for (int i = 0; i < 1 + SO_MAX_CUDA_DEVICES; i++) Py_CLEAR(s->default_generators[i]);
    Py_CLEAR(s->storage_type);
    Py_CLEAR(s->tensor_type);
    Py_CLEAR(s->dtype_type);
    Py_CLEAR(s->device_type);
    Py_CLEAR(s->generator_type);
}

#endif /* SO_TENSOR_STATE_H */
