/* nn_args.c — see nn_args.h. */
#include "nn_args.h"
#include "../tensor/copy.h"

const char *so_nn_scalar_name(int dt)
{
    static const char *names[SO_NUM_DTYPES] = {"Float", "Double", "Half", "BFloat16",
                                               "Int", "Long", "Bool"};
    return dt >= 0 && dt < SO_NUM_DTYPES ? names[dt] : "?";
}

SoTensor *so_nn_contiguous(so_state *st, PyObject *obj, const char *fname, const char *argname)
{
    SoTensor *t;
    if (!so_tensor_check(st, obj))
        return so_fail_null(PyExc_TypeError, "%s(): argument '%s' must be Tensor, not %s", fname,
                            argname, Py_TYPE(obj)->tp_name);
    t = (SoTensor *)obj;
    if (so_check_not_complex(t, fname) < 0) return NULL;
    if (so_tensor_is_contiguous(t)) return (SoTensor *)Py_NewRef(obj);
    return so_tensor_clone(st, t);
}

SoTensor *so_nn_optional(so_state *st, PyObject *obj, const char *fname, const char *argname,
                         int *err)
{
    SoTensor *t;
    if (obj == NULL || obj == Py_None) return NULL;
    t = so_nn_contiguous(st, obj, fname, argname);
    if (!t) *err = -1;
    return t;
}

int so_nn_check_float(const SoTensor *t, const char *fname, const char *argname)
{
    if (t->dtype == SO_FLOAT32 || t->dtype == SO_FLOAT64) return 0;
    return so_fail(PyExc_RuntimeError, "%s(): expected '%s' to be a Float or Double tensor, but "
                   "got %s", fname, argname, so_nn_scalar_name(t->dtype));
}

int so_nn_check_index(const SoTensor *t, const char *fname, const char *argname)
{
    if (t->dtype == SO_INT64 || t->dtype == SO_INT32) return 0;
    return so_fail(PyExc_RuntimeError, "Expected tensor for argument '%s' to have one of the "
                   "following scalar types: Long, Int; but got %s instead (while checking "
                   "arguments for %s)", argname, so_nn_scalar_name(t->dtype), fname);
}

static const char *dev_str(so_device d, char *buf, size_t n)
{
    if (d.type == SO_CUDA) snprintf(buf, n, "cuda:%d", (int)d.index);
    else snprintf(buf, n, "%s", so_device_type_name(d.type));
    return buf;
}

int so_nn_check_device(const SoTensor *a, const SoTensor *b, const char *fname,
                       const char *argname)
{
    char b1[32], b2[32];
    if (so_device_eq(so_tensor_device(a), so_tensor_device(b))) return 0;
    return so_fail(PyExc_RuntimeError, "%s(): expected all tensors to be on the same device, "
                   "but '%s' is on %s and the input on %s", fname, argname,
                   dev_str(so_tensor_device(b), b1, sizeof b1),
                   dev_str(so_tensor_device(a), b2, sizeof b2));
}

int so_nn_check_dtype(const SoTensor *a, const SoTensor *b, const char *fname,
                      const char *argname)
{
    if (a->dtype == b->dtype) return 0;
    return so_fail(PyExc_RuntimeError, "%s(): expected '%s' to have dtype %s (the input's), but "
                   "got %s", fname, argname, so_nn_scalar_name(a->dtype),
                   so_nn_scalar_name(b->dtype));
}

void *so_nn_cuda_begin(so_state *st, so_device dev, int *prev)
{
    void *stream;
    *prev = dev.index;
    if (so_cuda_get_device(prev) < 0) return NULL;
    if (*prev != dev.index && so_cuda_set_device(dev.index) < 0) {
        *prev = dev.index;
        return NULL;
    }
    stream = so_cuda_stream(st->core.cuda_streams, dev.index);
    if (!stream) so_nn_cuda_end(dev, *prev);
    return stream;
}

void so_nn_cuda_end(so_device dev, int prev)
{
    PyObject *t, *v, *tb;
    if (prev == dev.index) return;
    PyErr_Fetch(&t, &v, &tb); /* keep a pending error; a failed restore is not reported */
    if (so_cuda_set_device(prev) < 0) PyErr_Clear();
    PyErr_Restore(t, v, tb);
}

int so_nn_launched(int status, const char *what)
{
    if (status == 0) return 0;
    return so_cuda_raise(status, what, __FILE__, __LINE__);
}

/* ---- registration of the nn kernels' bindings (one entry in module.c) ---- */
int so_register_softmax(PyObject *m, so_state *st);       /* softmax.c */
int so_register_layer_norm(PyObject *m, so_state *st);    /* layer_norm.c */
int so_register_cross_entropy(PyObject *m, so_state *st); /* cross_entropy.c */
int so_register_embedding(PyObject *m, so_state *st);     /* embedding.c */
int so_register_dropout(PyObject *m, so_state *st);       /* dropout.c */

int so_register_nn(PyObject *m, so_state *st)
{
    if (so_register_softmax(m, st) < 0) return -1;
    if (so_register_layer_norm(m, st) < 0) return -1;
    if (so_register_cross_entropy(m, st) < 0) return -1;
    if (so_register_embedding(m, st) < 0) return -1;
    return so_register_dropout(m, st);
}
