/* interop.h — TensorBase methods for zero-copy exchange (NumPy in numpy.c, DLPack and
 * __cuda_array_interface__ in dlpack.c), listed into the type through SO_INTEROP_METHOD_DEFS. */
#ifndef SO_INTEROP_H
#define SO_INTEROP_H

#include "tensor.h"

PyObject *so_t_numpy(PyObject *self, PyObject *args, PyObject *kwds);
PyObject *so_t_dlpack(PyObject *self, PyObject *args, PyObject *kwds);   /* dlpack.c */
PyObject *so_t_dlpack_device(PyObject *self, PyObject *unused);          /* dlpack.c */

#define SO_INTEROP_METHOD_DEFS                                                                  \
    {"numpy", (PyCFunction)(void (*)(void))so_t_numpy, METH_VARARGS | METH_KEYWORDS,           \
     "numpy(force=False): an ndarray viewing this CPU tensor's memory"},                    \
    {"__dlpack__", (PyCFunction)(void (*)(void))so_t_dlpack, METH_VARARGS | METH_KEYWORDS,    \
     "__dlpack__(*, stream=None, max_version=None, dl_device=None, copy=None): a DLPack "     \
     "capsule sharing this tensor's memory"},                                                  \
    {"__dlpack_device__", (PyCFunction)so_t_dlpack_device, METH_NOARGS,                        \
     "__dlpack_device__() -> (device_type, device_id) as DLPack codes"},

int so_register_numpy(PyObject *m, so_state *st);

#endif
