/* adaptive_py.c — Python entry points of the fused RMSprop and Adagrad steps:
 * _C._fused_rmsprop_ and _C._fused_adagrad_.
 *
 * Same contract as optim_py.c's SGD/Adam: one call per param group; every argument is
 * validated before anything is written (errors name the argument and index); CPU tensors go
 * through fused_cpu.c with the GIL released, CUDA tensors through fused_cuda.cu on each
 * device's compute stream; every tensor written gets its version bumped.  Both optimizers
 * keep torch's per-param `step` (a 0-d float32 CPU tensor) and add 1 to it per step; Adagrad
 * derives its per-tensor step size clr = lr / (1 + (step - 1) * lr_decay) from the new value
 * on the host, in double, as torch's Python code does.
 */
#include "optim_args.h"

/* The operands of one call: params plus up to four lists for slots 1..4 (NULL tuple: slot
 * unused), and the step counters. */
typedef struct {
    const char *fn;
    tensor_list P, L[SO_OPT_MAX_OPS - 1], S;
    Py_ssize_t n;
    so_optim_tensor *ts;
    SoTensor *(*ops)[SO_OPT_MAX_OPS];
    SoTensor **steps;
    int *keys;
    char *need;
    so_view *views;
} group_args;

static void group_free(group_args *a)
{
    Py_XDECREF(a->P.tuple);
    for (int k = 0; k < SO_OPT_MAX_OPS - 1; k++) Py_XDECREF(a->L[k].tuple);
    Py_XDECREF(a->S.tuple);
    PyMem_Free(a->ts);
    PyMem_Free(a->ops);
    PyMem_Free(a->steps);
    PyMem_Free(a->keys);
    PyMem_Free(a->need);
    PyMem_Free(a->views);
}

/* Validate everything and fill the kernel descriptors.  objs[k] (k = 0..3) is the Python
 * object for slot k+1 (grads first), names[k] its argument name, use[k] whether the slot is
 * needed (an unneeded one may be None and is ignored). */
static int group_collect(so_state *st, group_args *a, PyObject *params_o, PyObject *const *objs,
                         const char *const *names, const int *use, int nslots,
                         PyObject *steps_o)
{
    SO_CHECK_RC(so_opt_list_get(a->fn, params_o, "params", 0, -1, &a->P), done);
    a->n = PyTuple_GET_SIZE(a->P.tuple);
    for (int k = 0; k < nslots; k++)
        SO_CHECK_RC(so_opt_list_get(a->fn, use[k] ? objs[k] : Py_None, names[k], !use[k], a->n,
                                    &a->L[k]), done);
    SO_CHECK_RC(so_opt_list_get(a->fn, steps_o, "state_steps", 0, a->n, &a->S), done);

    size_t nn = a->n > 0 ? (size_t)a->n : 1;
    a->ts = PyMem_Calloc(nn, sizeof(so_optim_tensor));
    a->ops = PyMem_Calloc(nn, sizeof(*a->ops));
    a->steps = PyMem_Calloc(nn, sizeof(SoTensor *));
    a->keys = PyMem_Calloc(nn, sizeof(int));
    a->need = PyMem_Calloc(nn, 1);
    if (!a->ts || !a->ops || !a->steps || !a->keys || !a->need) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < a->n; i++) {
        SoTensor *p, *t;
        int contig = 1;
        SO_CHECK_RC(so_opt_check_param(st, a->fn, &a->P, i, &p), done);
        int on_cuda = so_tensor_device(p).type == SO_CUDA;
        a->ops[i][0] = p;
        so_opt_set_slot(&a->ts[i], 0, p, &contig);
        for (int k = 0; k < nslots; k++) {
            if (!use[k]) continue;
            SO_CHECK_RC(so_opt_check_operand(st, a->fn, &a->L[k], i, p, &t), done);
            SO_CHECK(!on_cuda || so_tensor_is_contiguous(t), done, PyExc_RuntimeError,
                     "%s(): %s[%zd] is a non-contiguous CUDA tensor; the fused CUDA optimizer "
                     "needs contiguous tensors", a->fn, names[k], i);
            a->ops[i][k + 1] = t;
            so_opt_set_slot(&a->ts[i], k + 1, t, &contig);
        }
        SO_CHECK_RC(so_opt_check_step(st, a->fn, &a->S, i, &a->steps[i]), done);
        a->ts[i].numel = so_tensor_numel(p);
        a->ts[i].dtype = p->dtype;
        a->keys[i] = so_opt_device_key(so_tensor_device(p));
        a->need[i] = a->keys[i] == 0 && !contig;
    }
    SO_CHECK_RC(so_opt_attach_views(a->ts, a->ops, a->need, a->n, &a->views), done);
    return 0;
done:
    return -1;
}

/* step += 1 for every param (torch's `step_t += 1`); returns the new value. */
static double step_advance(SoTensor *s)
{
    double step;
    if (s->dtype == SO_FLOAT32) {
        float *sp = (float *)so_tensor_data(s);
        *sp = *sp + 1.0f;
        step = (double)*sp;
    } else {
        double *sp = (double *)so_tensor_data(s);
        *sp = *sp + 1.0;
        step = *sp;
    }
    so_tensor_bump_version(s);
    return step;
}

static void bump_written(const group_args *a)
{
    for (Py_ssize_t i = 0; i < a->n; i++)
        for (int k = 0; k < SO_OPT_MAX_OPS; k++)
            if (k != SO_OPT_GRAD && a->ops[i][k] != NULL) so_tensor_bump_version(a->ops[i][k]);
}

/* ================================== RMSprop ================================== */

typedef struct {
    const so_rmsprop_f32 *c32;
    const so_rmsprop_f64 *c64;
    so_rmsprop_flags f;
} rmsprop_ctx;

#ifdef SHARDOPT_WITH_CUDA
static int rmsprop_cuda_group(void *stream, const so_optim_tensor *ts, int64_t n,
                              const void *ctx)
{
    const rmsprop_ctx *c = (const rmsprop_ctx *)ctx;
    return so_fused_rmsprop_cuda(stream, ts, n, c->c32, c->c64, c->f);
}
#endif

PyDoc_STRVAR(fused_rmsprop_doc,
"_fused_rmsprop_(params, grads, square_avgs, momentum_buffers, grad_avgs, state_steps, lr,\n"
"                alpha, eps, weight_decay, momentum, centered, maximize) -> None\n\n"
"One RMSprop step over a list of params (torch.optim.RMSprop's formulas), in place.\n"
"momentum_buffers: None unless momentum > 0; grad_avgs: None unless centered.\n"
"state_steps: one float32/float64 one-element CPU tensor per param, each incremented by 1.");

static PyObject *fused_rmsprop(PyObject *module, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"params", "grads", "square_avgs", "momentum_buffers", "grad_avgs",
                             "state_steps", "lr", "alpha", "eps", "weight_decay", "momentum",
                             "centered", "maximize", NULL};
    static const char *names[4] = {"grads", "square_avgs", "momentum_buffers", "grad_avgs"};
    so_state *st = so_state_from_module(module);
    PyObject *po, *objs[4], *so;
    double lr, alpha, eps, wd, momentum;
    int centered, maximize;
    group_args a = {.fn = "_fused_rmsprop_"};

    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOOOOOdddddpp:_fused_rmsprop_", kwlist,
                                     &po, &objs[0], &objs[1], &objs[2], &objs[3], &so, &lr,
                                     &alpha, &eps, &wd, &momentum, &centered, &maximize))
        return NULL;
    int has_mom = momentum > 0.0;
    int use[4] = {1, 1, has_mom, centered};
    SO_CHECK_RC(group_collect(st, &a, po, objs, names, use, 4, so), done);
    for (Py_ssize_t i = 0; i < a.n; i++) (void)step_advance(a.steps[i]);

    so_rmsprop_f32 c32;
    so_rmsprop_f64 c64;
    so_rmsprop_prepare(lr, alpha, eps, wd, momentum, &c32, &c64);
    rmsprop_ctx ctx = {&c32, &c64, {maximize, wd != 0.0, centered, has_mom}};
    so_opt_sort_by_device(a.ts, a.keys, a.n);
    Py_ssize_t ncpu = 0;
    while (ncpu < a.n && a.keys[ncpu] == 0) ncpu++;
    if (ncpu > 0) {
        Py_BEGIN_ALLOW_THREADS
        so_fused_rmsprop_cpu(a.ts, ncpu, &c32, &c64, ctx.f);
        Py_END_ALLOW_THREADS
    }
#ifdef SHARDOPT_WITH_CUDA
    SO_CHECK_RC(so_opt_run_cuda_groups(st, a.ts, a.keys, a.n, rmsprop_cuda_group, &ctx), done);
#endif
    bump_written(&a);
    group_free(&a);
    Py_RETURN_NONE;
done:
    group_free(&a);
    return NULL;
}

/* ================================== Adagrad ================================== */

typedef struct {
    const so_adagrad_f32 *c32;
    const so_adagrad_f64 *c64;
    so_adagrad_flags f;
} adagrad_ctx;

#ifdef SHARDOPT_WITH_CUDA
static int adagrad_cuda_group(void *stream, const so_optim_tensor *ts, int64_t n,
                              const void *ctx)
{
    const adagrad_ctx *c = (const adagrad_ctx *)ctx;
    return so_fused_adagrad_cuda(stream, ts, n, c->c32, c->c64, c->f);
}
#endif

PyDoc_STRVAR(fused_adagrad_doc,
"_fused_adagrad_(params, grads, state_sums, state_steps, lr, lr_decay, weight_decay, eps,\n"
"                maximize) -> None\n\n"
"One Adagrad step over a list of params (torch.optim.Adagrad's dense formulas), in place.\n"
"state_steps: one float32/float64 one-element CPU tensor per param; each is incremented by 1\n"
"and its new value t gives that param's clr = lr / (1 + (t - 1) * lr_decay).");

static PyObject *fused_adagrad(PyObject *module, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"params", "grads", "state_sums", "state_steps", "lr", "lr_decay",
                             "weight_decay", "eps", "maximize", NULL};
    static const char *names[2] = {"grads", "state_sums"};
    so_state *st = so_state_from_module(module);
    PyObject *po, *objs[2], *so;
    double lr, lr_decay, wd, eps;
    int maximize;
    group_args a = {.fn = "_fused_adagrad_"};

    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOOOddddp:_fused_adagrad_", kwlist, &po,
                                     &objs[0], &objs[1], &so, &lr, &lr_decay, &wd, &eps,
                                     &maximize))
        return NULL;
    static const int use[2] = {1, 1};
    SO_CHECK_RC(group_collect(st, &a, po, objs, names, use, 2, so), done);
    for (Py_ssize_t i = 0; i < a.n; i++) {
        double step = step_advance(a.steps[i]);
        a.ts[i].step.step_size = -(lr / (1.0 + (step - 1.0) * lr_decay));
    }

    so_adagrad_f32 c32;
    so_adagrad_f64 c64;
    so_adagrad_prepare(eps, wd, &c32, &c64);
    adagrad_ctx ctx = {&c32, &c64, {maximize, wd != 0.0}};
    so_opt_sort_by_device(a.ts, a.keys, a.n);
    Py_ssize_t ncpu = 0;
    while (ncpu < a.n && a.keys[ncpu] == 0) ncpu++;
    if (ncpu > 0) {
        Py_BEGIN_ALLOW_THREADS
        so_fused_adagrad_cpu(a.ts, ncpu, &c32, &c64, ctx.f);
        Py_END_ALLOW_THREADS
    }
#ifdef SHARDOPT_WITH_CUDA
    SO_CHECK_RC(so_opt_run_cuda_groups(st, a.ts, a.keys, a.n, adagrad_cuda_group, &ctx), done);
#endif
    bump_written(&a);
    group_free(&a);
    Py_RETURN_NONE;
done:
    group_free(&a);
    return NULL;
}

static PyMethodDef adaptive_methods[] = {
    {"_fused_rmsprop_", (PyCFunction)(void (*)(void))fused_rmsprop,
     METH_VARARGS | METH_KEYWORDS, fused_rmsprop_doc},
    {"_fused_adagrad_", (PyCFunction)(void (*)(void))fused_adagrad,
     METH_VARARGS | METH_KEYWORDS, fused_adagrad_doc},
    {NULL, NULL, 0, NULL},
};

int so_register_optim_adaptive(PyObject *m, so_state *st)
{
    (void)st;
    return PyModule_AddFunctions(m, adaptive_methods);
}
