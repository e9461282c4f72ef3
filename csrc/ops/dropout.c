/* dropout.c — dropout forward (training mode): draws the keep mask from the input device's
 * Philox generator (advancing it by ceil(n / 4) blocks, like a float32 uniform draw of n
 * elements), writes out = x * mask / (1 - p) and the mask; the CPU loop and the device
 * dispatch.  p == 0, p == 1, eval mode and half inputs are handled in
 * shardopt/nn/functional.py; the backward is grad * mask / (1 - p) there. */
#include "dropout.h"
#include "nn_args.h"
#include "../tensor/generator.h"

#ifndef SHARDOPT_WITH_CUDA
int so_dropout_cuda(const so_dropout_call *c, void *stream)
{
    (void)c; (void)stream;
    return 1; /* never reached: a CPU-only build has no CUDA tensors */
}
#endif

#define DEF_DROPOUT_CPU(T, S)                                                                   \
    static void dropout_##S(const so_dropout_call *c)                                           \
    {                                                                                           \
        const T *x = (const T *)(const void *)c->x;                                             \
        T *out = (T *)(void *)c->out;                                                           \
        const T scale = (T)c->scale;                                                            \
        const int64_t nblocks = (c->n + 3) / 4;                                                 \
        for (int64_t j = 0; j < nblocks; j++) {                                                 \
            uint8_t keep[4];                                                                    \
            int cnt = so_dropout_block(c, (uint64_t)j, keep);                                   \
            for (int l = 0; l < cnt; l++) {                                                     \
                out[j * 4 + l] = keep[l] ? x[j * 4 + l] * scale : (T)0;                         \
                c->mask[j * 4 + l] = keep[l];                                                   \
            }                                                                                   \
        }                                                                                       \
    }

DEF_DROPOUT_CPU(float, f)
DEF_DROPOUT_CPU(double, d)

void so_dropout_cpu(const so_dropout_call *c)
{
    if (c->dtype == SO_FLOAT64) dropout_d(c);
    else dropout_f(c);
}

/* _C._dropout(input, p, generator=None) -> (out, mask) */
static PyObject *py_dropout(PyObject *m, PyObject *args)
{
    so_state *st = so_state_from_module(m);
    PyObject *in, *gen = Py_None, *res = NULL;
    double p;
    SoTensor *x = NULL, *out = NULL, *mask = NULL;
    SoGenerator *g;
    so_dropout_call c;
    if (!PyArg_ParseTuple(args, "Od|O:_dropout", &in, &p, &gen)) return NULL;
    SO_CHECK(p >= 0.0 && p < 1.0, done, PyExc_ValueError,
             "dropout probability has to be between 0 and 1, but got %R", PyTuple_GET_ITEM(args, 1));
    SO_CHECK_PTR(x = so_nn_contiguous(st, in, "dropout", "input"), done);
    SO_CHECK_RC(so_nn_check_float(x, "dropout", "input"), done);
    so_device dev = so_tensor_device(x);
    if (dev.type == SO_META) SO_CHECK_RC(so_meta_unsupported("dropout"), done);
    SO_CHECK_PTR(g = so_generator_for(st, gen, dev), done);
    SO_CHECK_PTR(out = so_tensor_empty(st, x->ndim, x->shape, x->dtype, dev), done);
    SO_CHECK_PTR(mask = so_tensor_empty(st, x->ndim, x->shape, SO_BOOL, dev), done);
    memset(&c, 0, sizeof c);
    c.dtype = x->dtype;
    c.n = so_tensor_numel(x);
    c.seed = g->seed;
    c.offset = so_generator_take(g, (uint64_t)((c.n + 3) / 4));
    c.threshold = so_dropout_threshold(p);
    c.scale = 1.0 / (1.0 - p);
    c.x = so_tensor_data(x);
    c.out = so_tensor_data(out);
    c.mask = (uint8_t *)so_tensor_data(mask);
    if (dev.type == SO_CPU) {
        Py_BEGIN_ALLOW_THREADS
        so_dropout_cpu(&c);
        Py_END_ALLOW_THREADS
    } else {
        int prev, rc;
        void *stream = so_nn_cuda_begin(st, dev, &prev);
        SO_CHECK_PTR(stream, done);
        rc = so_nn_launched(so_dropout_cuda(&c, stream), "dropout kernel launch");
        so_nn_cuda_end(dev, prev);
        SO_CHECK_RC(rc, done);
    }
    res = Py_BuildValue("(OO)", out, mask);
done:
    Py_XDECREF(x);
    Py_XDECREF(out);
    Py_XDECREF(mask);
    return res;
}

static PyMethodDef dropout_functions[] = {
    {"_dropout", py_dropout, METH_VARARGS,
     "_dropout(input, p, generator=None) -> (out, mask): training-mode dropout from Philox"},
    {NULL}};

int so_register_dropout(PyObject *m, so_state *st)
{
    (void)st;
    return PyModule_AddFunctions(m, dropout_functions);
}
