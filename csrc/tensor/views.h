/* views.h — view-making TensorBase methods (views.c), listed into the type's method table
 * in tensor.c through SO_VIEW_METHOD_DEFS so the table stays one static array. */
#ifndef SO_VIEWS_H
#define SO_VIEWS_H

#include "tensor.h"

PyObject *so_t_view(PyObject *self, PyObject *args);
PyObject *so_t_reshape(PyObject *self, PyObject *args);
PyObject *so_t_as_strided(PyObject *self, PyObject *args, PyObject *kwds);
PyObject *so_t_narrow(PyObject *self, PyObject *args);
PyObject *so_t_select(PyObject *self, PyObject *args);
PyObject *so_t_transpose(PyObject *self, PyObject *args);
PyObject *so_t_t(PyObject *self, PyObject *unused);
PyObject *so_t_permute(PyObject *self, PyObject *args);
PyObject *so_t_unsqueeze(PyObject *self, PyObject *arg);
PyObject *so_t_squeeze(PyObject *self, PyObject *args);
PyObject *so_t_expand(PyObject *self, PyObject *args);
PyObject *so_t_flatten(PyObject *self, PyObject *args, PyObject *kwds);
PyObject *so_t_contiguous(PyObject *self, PyObject *args, PyObject *kwds);
PyObject *so_t_clone(PyObject *self, PyObject *args, PyObject *kwds);
PyObject *so_t_copy_(PyObject *self, PyObject *args, PyObject *kwds);
PyObject *so_t_fill_(PyObject *self, PyObject *value);
PyObject *so_t_zero_(PyObject *self, PyObject *unused);
PyObject *so_t_convert(PyObject *self, PyObject *args);
PyObject *so_tensor_getitem(PyObject *self, PyObject *index);
PyObject *so_view_as_real(PyObject *m, PyObject *obj);    /* _C._view_as_real */
PyObject *so_view_as_complex(PyObject *m, PyObject *obj); /* _C._view_as_complex */
PyObject *so_view_as_real_st(so_state *st, PyObject *obj);
PyObject *so_view_as_complex_st(so_state *st, PyObject *obj);

/* The geometry an index expression leaves: the view's dims so far, the next source dim. */
typedef struct {
    int nd;
    int src;
    int64_t shape[SO_MAX_DIMS];
    int64_t strides[SO_MAX_DIMS];
    int64_t offset;
} so_index_geom;
/* Handles one tensor item of an index expression (pushes the dims it keeps). 0 / -1. */
typedef int (*so_index_tensor_fn)(void *ctx, so_state *st, SoTensor *t, SoTensor *item,
                                  so_index_geom *g);
int so_index_push_dim(so_index_geom *g, int64_t size, int64_t stride);
int so_index_is_advanced(so_state *st, PyObject *index); /* 1 if index holds a tensor */
int so_index_walk(so_state *st, SoTensor *t, PyObject *index, so_index_tensor_fn on_tensor,
                  void *ctx, so_index_geom *g);
int so_tensor_setitem(PyObject *self, PyObject *index, PyObject *value);

#define SO_VIEW_METHOD_DEFS                                                                     \
    {"view", (PyCFunction)so_t_view, METH_VARARGS, "view(*shape): same data, new shape"},     \
    {"reshape", (PyCFunction)so_t_reshape, METH_VARARGS, "view if possible, else a copy"},     \
    {"as_strided", (PyCFunction)(void (*)(void))so_t_as_strided,                               \
     METH_VARARGS | METH_KEYWORDS, NULL},                                                      \
    {"narrow", (PyCFunction)so_t_narrow, METH_VARARGS, "narrow(dim, start, length)"},          \
    {"select", (PyCFunction)so_t_select, METH_VARARGS, "select(dim, index)"},                  \
    {"transpose", (PyCFunction)so_t_transpose, METH_VARARGS, "transpose(dim0, dim1)"},         \
    {"t", (PyCFunction)so_t_t, METH_NOARGS, "transpose of a <= 2-D tensor"},                   \
    {"permute", (PyCFunction)so_t_permute, METH_VARARGS, "permute(*dims)"},                    \
    {"unsqueeze", (PyCFunction)so_t_unsqueeze, METH_O, "unsqueeze(dim)"},                      \
    {"squeeze", (PyCFunction)so_t_squeeze, METH_VARARGS, "squeeze(dim=None)"},                 \
    {"expand", (PyCFunction)so_t_expand, METH_VARARGS, "expand(*sizes)"},                      \
    {"flatten", (PyCFunction)(void (*)(void))so_t_flatten, METH_VARARGS | METH_KEYWORDS,       \
     "flatten(start_dim=0, end_dim=-1)"},                                                      \
    {"contiguous", (PyCFunction)(void (*)(void))so_t_contiguous, METH_VARARGS | METH_KEYWORDS, \
     NULL},                                                                                    \
    {"clone", (PyCFunction)(void (*)(void))so_t_clone, METH_VARARGS | METH_KEYWORDS, NULL},    \
    {"copy_", (PyCFunction)(void (*)(void))so_t_copy_, METH_VARARGS | METH_KEYWORDS,           \
     "copy_(src, non_blocking=False): copy src (broadcast, any dtype/device) into self"},     \
    {"fill_", (PyCFunction)so_t_fill_, METH_O, "fill_(value)"},                                \
    {"zero_", (PyCFunction)so_t_zero_, METH_NOARGS, "zero_()"},                                \
    {"_convert", (PyCFunction)so_t_convert, METH_VARARGS,                                      \
     "_convert(dtype, device): always-copying conversion"},

#endif
