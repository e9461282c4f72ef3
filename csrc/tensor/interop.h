/* interop.h — TensorBase methods for zero-copy exchange (NumPy in numpy.c, DLPack and
 * __cuda_array_interface__ in dlpack.c), listed into the type through SO_INTEROP_METHOD_DEFS. */
#ifndef SO_INTEROP_H
#define SO_INTEROP_H

#include "tensor.h"

PyObject *so_t_numpy(PyObject *self, PyObject *args, PyObject *kwds);

#define SO_INTEROP_METHOD_DEFS                                                                  \
    {"numpy", (PyCFunction)(void (*)(void))so_t_numpy, METH_VARARGS | METH_KEYWORDS,           \
     "numpy(force=False): an ndarray viewing this CPU tensor's memory"},

int so_register_numpy(PyObject *m, so_state *st);

#endif
