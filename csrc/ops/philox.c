/* philox.c — random fills (uniform_, normal_): the CPU kernel and the device dispatch.
 *
 * The per-element math is philox.h's; the CPU loop below and the CUDA kernel in philox.cu
 * only differ in who computes which block.  A draw reserves ceil(n / per_block) counter
 * blocks from the generator before anything runs, so the state advances by the numbers
 * drawn whatever the device, and a non-contiguous destination is filled through a
 * contiguous temporary (element i of the draw is element i in row-major order).
 *
 * The pragmas keep the host compiler from fusing a*b+c into an FMA whatever the build flags
 * (gcc contracts under -std=gnu* with -march=native; clang contracts within an expression by
 * default): one fused rounding would change the bits and break CPU == CUDA.  They come before
 * the includes so every function of this file has the same optimisation attributes (gcc does
 * not inline across differing ones).
 */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif
#include "philox.h"
#include "../tensor/copy.h"
#include "../tensor/generator.h"

/* ------------------------------------------------------------------ CPU kernel */

void so_rand_fill_cpu(const so_rand_params *p, char *data, int64_t n)
{
    const int per = so_rand_per_block(p->dtype);
    const int isz = so_dtype_itemsize(p->dtype);
    const int64_t full = n / per;
    for (int64_t j = 0; j < full; j++) so_rand_block(p, (uint64_t)j, data + j * per * isz, per);
    if (n % per) so_rand_block(p, (uint64_t)full, data + full * per * isz, (int)(n % per));
}

#ifndef SHARDOPT_WITH_CUDA
int so_rand_fill_cuda(const so_rand_params *p, char *data, int64_t n, void *stream)
{
    (void)p; (void)data; (void)n; (void)stream;
    return 1; /* never reached: a CPU-only build has no CUDA tensors */
}
#endif

/* ------------------------------------------------------------------ dispatch */

static const char *dtype_name(int dt)
{
    static const char *names[] = {"float32", "float64", "float16", "bfloat16",
                                  "int32", "int64", "bool"};
    return (dt >= 0 && dt < SO_NUM_DTYPES) ? names[dt] : "?";
}

/* Fill t in place with a draw of `kind` (affine: x -> a + b*x) from generator `gen_obj`. */
static int random_fill_(so_state *st, SoTensor *t, int kind, int affine, double a, double b,
                        PyObject *gen_obj, const char *opname)
{
    so_rand_params p;
    SoGenerator *g;
    SoTensor *tmp = NULL;
    so_device dev = so_tensor_device(t);
    int64_t n = so_tensor_numel(t);
    uint64_t blocks;
    char *data;
    if (!so_dtype_is_float(t->dtype))
        return so_fail(PyExc_TypeError, "%s: expected a floating point tensor, got dtype %s",
                       opname, dtype_name(t->dtype));
    if (dev.type == SO_META) return 0; /* meta: nothing to draw, the generator stays put */
    g = so_generator_for(st, gen_obj, dev);
    if (!g) return -1;
    so_tensor_bump_version(t);
    if (n == 0) return 0;
    blocks = (uint64_t)((n + so_rand_per_block(t->dtype) - 1) / so_rand_per_block(t->dtype));
    p.seed = g->seed;
    p.offset = so_generator_take(g, blocks);
    p.kind = kind;
    p.dtype = t->dtype;
    p.affine = affine;
    p.a = a;
    p.b = b;
    if (so_tensor_is_contiguous(t)) {
        data = so_tensor_data(t);
    } else {
        tmp = so_tensor_empty(st, t->ndim, t->shape, t->dtype, dev);
        if (!tmp) return -1;
        data = so_tensor_data(tmp);
    }
    if (dev.type == SO_CPU) {
        Py_BEGIN_ALLOW_THREADS
        so_rand_fill_cpu(&p, data, n);
        Py_END_ALLOW_THREADS
    } else {
        void *stream = so_cuda_stream(st->core.cuda_streams, dev.index);
        int err;
        if (!stream) goto done;
        err = so_rand_fill_cuda(&p, data, n, stream);
        if (err) {
            so_cuda_raise(err, "random fill kernel launch", __FILE__, __LINE__);
            goto done;
        }
    }
    if (tmp) {
        if (so_copy_(st, t, tmp) < 0) goto done;
        Py_DECREF(tmp);
    }
    return 0;
done:
    Py_XDECREF(tmp);
    return -1;
}

static int parse_double(PyObject *obj, const char *argname, double *out)
{
    if (!PyNumber_Check(obj) || PyComplex_Check(obj))
        return so_fail(PyExc_TypeError, "%s must be a real number, got %s", argname,
                       Py_TYPE(obj)->tp_name);
    *out = PyFloat_AsDouble(obj);
    return (*out == -1.0 && PyErr_Occurred()) ? -1 : 0;
}

/* _C._uniform_(tensor, from, to, generator) -> tensor */
static PyObject *py_uniform_(PyObject *m, PyObject *args)
{
    so_state *st = so_state_from_module(m);
    PyObject *t, *from_obj, *to_obj, *gen = Py_None;
    double from, to;
    if (!PyArg_ParseTuple(args, "OOO|O:uniform_", &t, &from_obj, &to_obj, &gen)) return NULL;
    if (!so_tensor_check(st, t))
        return PyErr_Format(PyExc_TypeError,
                            "uniform_: self must be a Tensor, got %s", Py_TYPE(t)->tp_name);
    if (so_check_not_complex((SoTensor *)t, "uniform_") < 0) return NULL;
    if (parse_double(from_obj, "from", &from) < 0 || parse_double(to_obj, "to", &to) < 0)
        return NULL;
    if (!(from <= to))
        return PyErr_Format(PyExc_RuntimeError,
                            "uniform_ expects to return a [from, to) range, but found from=%R > "
                            "to=%R", from_obj, to_obj);
    if (random_fill_(st, (SoTensor *)t, SO_RAND_UNIFORM, !(from == 0.0 && to == 1.0), from,
                     to - from, gen, "uniform_") < 0)
        return NULL;
    return Py_NewRef(t);
}

/* _C._normal_(tensor, mean, std, generator) -> tensor */
static PyObject *py_normal_(PyObject *m, PyObject *args)
{
    so_state *st = so_state_from_module(m);
    PyObject *t, *mean_obj, *std_obj, *gen = Py_None;
    double mean, std;
    if (!PyArg_ParseTuple(args, "OOO|O:normal_", &t, &mean_obj, &std_obj, &gen)) return NULL;
    if (!so_tensor_check(st, t))
        return PyErr_Format(PyExc_TypeError,
                            "normal_: self must be a Tensor, got %s", Py_TYPE(t)->tp_name);
    if (so_check_not_complex((SoTensor *)t, "normal_") < 0) return NULL;
    if (parse_double(mean_obj, "mean", &mean) < 0 || parse_double(std_obj, "std", &std) < 0)
        return NULL;
    if (!(std >= 0.0))
        return PyErr_Format(PyExc_RuntimeError,
                            "normal expects std >= 0.0, but found std %R", std_obj);
    if (random_fill_(st, (SoTensor *)t, SO_RAND_NORMAL, !(mean == 0.0 && std == 1.0), mean, std,
                     gen, "normal_") < 0)
        return NULL;
    return Py_NewRef(t);
}

/* _C._philox(seed, block) -> (x0, x1, x2, x3): the raw generator, for known-answer tests. */
static PyObject *py_philox(PyObject *m, PyObject *args)
{
    unsigned long long seed, block;
    uint32_t x[4];
    (void)m;
    if (!PyArg_ParseTuple(args, "KK:_philox", &seed, &block)) return NULL;
    so_philox_block(seed, block, x);
    return Py_BuildValue("(kkkk)", (unsigned long)x[0], (unsigned long)x[1], (unsigned long)x[2],
                         (unsigned long)x[3]);
}

static PyMethodDef random_functions[] = {
    {"_uniform_", py_uniform_, METH_VARARGS,
     "_uniform_(tensor, from, to, generator=None): fill with U[from, to) from a Philox stream"},
    {"_normal_", py_normal_, METH_VARARGS,
     "_normal_(tensor, mean, std, generator=None): fill with N(mean, std^2) from a Philox stream"},
    {"_philox", py_philox, METH_VARARGS, "_philox(seed, block): one raw Philox4x32-10 block"},
    {NULL}};

int so_register_random(PyObject *m, so_state *st)
{
    (void)st;
    return PyModule_AddFunctions(m, random_functions);
}
