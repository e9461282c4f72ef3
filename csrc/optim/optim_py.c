/* optim_py.c — Python entry points of the fused optimizers: _C._fused_sgd_ and
 * _C._fused_adam_ (Adam and AdamW), plus the argument checks shared with adaptive_py.c
 * (RMSprop, Adagrad) through optim_args.h.
 *
 * shardopt.optim makes one call per param group.  Everything is validated before anything
 * is written (list lengths; each tensor's type, dtype, device, shape; the step tensors), and
 * each error names the argument and the index.  Then the tensors are split by device: CPU
 * ones go through fused_cpu.c with the GIL released, CUDA ones through fused_cuda.cu on each
 * device's compute stream, without any host synchronisation.  Every tensor written (params,
 * state, step counters) gets its version counter bumped.
 *
 * Step counts are per tensor (torch keeps `step` per param): the Adam entry point takes the
 * list of 0-d float32 CPU step tensors, adds 1 to each (as torch's `step_t += 1`), and derives
 * the bias corrections from the new value in double on the host.
 */
#include "optim_args.h"

#include <math.h>

const char *so_opt_dtype_name(int dt)
{
    static const char *names[SO_NUM_DTYPES] = {"float32", "float64", "float16", "bfloat16",
                                               "int32",   "int64",   "bool"};
    return (dt >= 0 && dt < SO_NUM_DTYPES) ? names[dt] : "unknown";
}

void so_opt_device_str(so_device d, char *buf, size_t n)
{
    if (d.type == SO_CUDA) snprintf(buf, n, "cuda:%d", (int)d.index);
    else snprintf(buf, n, "%s", so_device_type_name(d.type));
}

int so_opt_list_get(const char *fn, PyObject *obj, const char *name, int optional,
                    Py_ssize_t expect_len, tensor_list *out)
{
    out->name = name;
    out->tuple = NULL;
    if (obj == Py_None) {
        if (optional) return 0;
        return so_fail(PyExc_TypeError, "%s(): argument '%s' must be a list of Tensors, not None",
                     fn, name);
    }
    if (!PyList_Check(obj) && !PyTuple_Check(obj))
        return so_fail(PyExc_TypeError, "%s(): argument '%s' must be a list of Tensors, not %s",
                     fn, name, Py_TYPE(obj)->tp_name);
    out->tuple = PySequence_Tuple(obj);
    if (out->tuple == NULL) return -1;
    if (expect_len >= 0 && PyTuple_GET_SIZE(out->tuple) != expect_len)
        return so_fail(PyExc_ValueError,
                     "%s(): argument '%s' has %zd tensors but 'params' has %zd; the lists must "
                     "have equal lengths",
                     fn, name, PyTuple_GET_SIZE(out->tuple), expect_len);
    return 0;
}

/* Check that list[i] is a Tensor matching the param (dtype, device, shape). */
int so_opt_check_operand(so_state *st, const char *fn, const tensor_list *l, Py_ssize_t i,
                         const SoTensor *param, SoTensor **out)
{
    PyObject *o = PyTuple_GET_ITEM(l->tuple, i);
    char b1[256], b2[256];
    if (!so_tensor_check(st, o))
        return so_fail(PyExc_TypeError, "%s(): %s[%zd] must be a Tensor, not %s", fn, l->name, i,
                     o == Py_None ? "None" : Py_TYPE(o)->tp_name);
    SoTensor *t = (SoTensor *)o;
    if (so_check_not_complex(t, fn) < 0) return -1;
    if (param != NULL && t != param) {
        if (t->dtype != param->dtype)
            return so_fail(PyExc_TypeError,
                         "%s(): %s[%zd] has dtype %s but params[%zd] has dtype %s; they must "
                         "match", fn, l->name, i, so_opt_dtype_name(t->dtype), i,
                         so_opt_dtype_name(param->dtype));
        if (!so_device_eq(so_tensor_device(t), so_tensor_device(param))) {
            so_opt_device_str(so_tensor_device(t), b1, sizeof b1);
            so_opt_device_str(so_tensor_device(param), b2, sizeof b2);
            return so_fail(PyExc_RuntimeError,
                         "%s(): %s[%zd] is on %s but params[%zd] is on %s; they must be on the "
                         "same device", fn, l->name, i, b1, i, b2);
        }
        int same = t->ndim == param->ndim;
        for (int d = 0; same && d < t->ndim; d++) same = t->shape[d] == param->shape[d];
        if (!same)
            return so_fail(PyExc_ValueError,
                         "%s(): %s[%zd] has shape %s but params[%zd] has shape %s; they must "
                         "match", fn, l->name, i, so_shape_str(t->ndim, t->shape, b1, sizeof b1),
                         i, so_shape_str(param->ndim, param->shape, b2, sizeof b2));
    }
    *out = t;
    return 0;
}

/* Validates params[i] itself. */
int so_opt_check_param(so_state *st, const char *fn, const tensor_list *l, Py_ssize_t i,
                       SoTensor **out)
{
    if (so_opt_check_operand(st, fn, l, i, NULL, out) < 0) return -1;
    SoTensor *p = *out;
    if (!so_dtype_is_float(p->dtype))
        return so_fail(PyExc_TypeError,
                     "%s(): params[%zd] has dtype %s; optimizers only update floating-point "
                     "tensors (float32, float64, float16, bfloat16)", fn, i, so_opt_dtype_name(p->dtype));
    so_device d = so_tensor_device(p);
    if (d.type == SO_META)
        return so_fail(PyExc_NotImplementedError, "Could not run '%s' with arguments from the "
                       "'Meta' backend: params[%zd] is a meta tensor (no data)", fn, i);
    if (d.type == SO_CUDA) {
#ifdef SHARDOPT_WITH_CUDA
        if (!so_tensor_is_contiguous(p))
            return so_fail(PyExc_RuntimeError,
                         "%s(): params[%zd] is a non-contiguous CUDA tensor; the fused CUDA "
                         "optimizer needs contiguous params, grads and state", fn, i);
        if (so_tensor_numel(p) / 65536 >= INT32_MAX)
            return so_fail(PyExc_ValueError, "%s(): params[%zd] is too large for the CUDA kernel",
                         fn, i);
#else
        return so_fail(PyExc_RuntimeError,
                     "%s(): params[%zd] is on cuda:%d, but this build of shardopt has no CUDA "
                     "support", fn, i, (int)d.index);
#endif
    }
    return 0;
}

/* Fill slot k of ts from t; note whether the CPU fast path can take it. */
void so_opt_set_slot(so_optim_tensor *ts, int k, SoTensor *t, int *all_contig)
{
    ts->data[k] = so_tensor_data(t);
    if (!so_tensor_is_contiguous(t)) *all_contig = 0;
}

/* Sort order for the device split: CPU first, then CUDA by ordinal. */
int so_opt_device_key(so_device d) { return d.type == SO_CUDA ? 1 + d.index : 0; }

/* For the non-contiguous CPU entries, attach SO_OPT_MAX_OPS views each (in one block that
 * the caller frees).  `tensors[i][k]` are the operands (NULL if unused). */
int so_opt_attach_views(so_optim_tensor *ts, SoTensor *(*tensors)[SO_OPT_MAX_OPS],
                        const char *need, Py_ssize_t n, so_view **block_out)
{
    Py_ssize_t count = 0;
    for (Py_ssize_t i = 0; i < n; i++) count += need[i];
    *block_out = NULL;
    if (count == 0) return 0;
    so_view *block = PyMem_Calloc((size_t)count * SO_OPT_MAX_OPS, sizeof(so_view));
    if (block == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    so_view *v = block;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (!need[i]) continue;
        for (int k = 0; k < SO_OPT_MAX_OPS; k++)
            if (tensors[i][k] != NULL) so_tensor_to_view(tensors[i][k], &v[k]);
        ts[i].views = v;
        v += SO_OPT_MAX_OPS;
    }
    *block_out = block;
    return 0;
}

#ifdef SHARDOPT_WITH_CUDA
/* Run `fn` over each CUDA device's run of `ts` (sorted by device_key) on its compute stream. */
int so_opt_run_cuda_groups(so_state *st, const so_optim_tensor *ts, const int *keys,
                           Py_ssize_t n, cuda_group_fn fn, const void *ctx)
{
    int prev = -1;
    Py_ssize_t i = 0;
    while (i < n && keys[i] == 0) i++;
    if (i == n) return 0;
    if (so_cuda_get_device(&prev) < 0) return -1;
    while (i < n) {
        Py_ssize_t j = i;
        while (j < n && keys[j] == keys[i]) j++;
        int dev = keys[i] - 1;
        if (so_cuda_set_device(dev) < 0) goto done;
        void *stream = so_cuda_stream(st->core.cuda_streams, dev);
        if (stream == NULL) goto done;
        int rc = fn(stream, ts + i, (int64_t)(j - i), ctx);
        if (rc != 0) {
            so_cuda_raise(rc, "fused optimizer kernel launch", __FILE__, __LINE__);
            goto done;
        }
        i = j;
    }
    return so_cuda_set_device(prev);
done:
    if (prev >= 0) {
        PyObject *t, *v, *tb;
        PyErr_Fetch(&t, &v, &tb);
        (void)so_cuda_set_device(prev);
        PyErr_Clear();
        PyErr_Restore(t, v, tb);
    }
    return -1;
}
#endif

/* Sort entries so CPU ones come first, then each CUDA device's; stable (list order is kept
 * within a device, which makes results independent of how devices are mixed). */
void so_opt_sort_by_device(so_optim_tensor *ts, int *keys, Py_ssize_t n)
{
    /* insertion sort on small key sets would be quadratic for 1000s of tensors: use a
     * counting pass instead (keys are 0..SO_MAX_CUDA_DEVICES). */
    int any_cuda = 0;
    for (Py_ssize_t i = 0; i < n; i++) any_cuda |= keys[i] != 0;
    if (!any_cuda) return;
    so_optim_tensor *tmp = PyMem_Malloc(sizeof(so_optim_tensor) * (size_t)n);
    int *tk = PyMem_Malloc(sizeof(int) * (size_t)n);
    if (tmp == NULL || tk == NULL) { /* fall back to a simple in-place stable sort */
        PyMem_Free(tmp);
        PyMem_Free(tk);
        for (Py_ssize_t i = 1; i < n; i++) {
            so_optim_tensor t = ts[i];
            int k = keys[i];
            Py_ssize_t j = i;
            while (j > 0 && keys[j - 1] > k) {
                ts[j] = ts[j - 1];
                keys[j] = keys[j - 1];
                j--;
            }
            ts[j] = t;
            keys[j] = k;
        }
        return;
    }
    Py_ssize_t pos = 0;
    for (int key = 0; key <= SO_MAX_CUDA_DEVICES; key++)
        for (Py_ssize_t i = 0; i < n; i++)
            if (keys[i] == key) {
                tmp[pos] = ts[i];
                tk[pos++] = key;
            }
    memcpy(ts, tmp, sizeof(so_optim_tensor) * (size_t)n);
    memcpy(keys, tk, sizeof(int) * (size_t)n);
    PyMem_Free(tmp);
    PyMem_Free(tk);
}

/* ================================== SGD ================================== */

typedef struct {
    const so_sgd_f32 *c32;
    const so_sgd_f64 *c64;
    so_sgd_flags f;
} sgd_ctx;

#ifdef SHARDOPT_WITH_CUDA
static int sgd_cuda_group(void *stream, const so_optim_tensor *ts, int64_t n, const void *ctx)
{
    const sgd_ctx *c = (const sgd_ctx *)ctx;
    return so_fused_sgd_cuda(stream, ts, n, c->c32, c->c64, c->f);
}
#endif

PyDoc_STRVAR(fused_sgd_doc,
"_fused_sgd_(params, grads, momentum_buffers, first_steps, lr, weight_decay, momentum,\n"
"            dampening, nesterov, maximize) -> None\n\n"
"One SGD step over a list of params (torch.optim.SGD's formulas), in place.\n"
"momentum_buffers: None when momentum == 0, else one buffer per param; first_steps: None\n"
"or one bool per param (True: copy the gradient into the buffer, torch's first step).");

static PyObject *fused_sgd(PyObject *module, PyObject *args, PyObject *kwargs)
{
    static const char *fn = "_fused_sgd_";
    static char *kwlist[] = {"params", "grads", "momentum_buffers", "first_steps", "lr",
                             "weight_decay", "momentum", "dampening", "nesterov", "maximize",
                             NULL};
    so_state *st = so_state_from_module(module);
    PyObject *params_o, *grads_o, *bufs_o, *first_o;
    double lr, wd, momentum, dampening;
    int nesterov, maximize;
    tensor_list P = {0}, G = {0}, B = {0};
    PyObject *first_t = NULL;
    so_optim_tensor *ts = NULL;
    SoTensor *(*ops)[SO_OPT_MAX_OPS] = NULL;
    int *keys = NULL;
    char *need = NULL;
    so_view *views = NULL;

    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOOOddddpp:_fused_sgd_", kwlist, &params_o,
                                     &grads_o, &bufs_o, &first_o, &lr, &wd, &momentum,
                                     &dampening, &nesterov, &maximize))
        return NULL;
    int has_mom = momentum != 0.0;
    SO_CHECK_RC(so_opt_list_get(fn, params_o, "params", 0, -1, &P), done);
    Py_ssize_t n = PyTuple_GET_SIZE(P.tuple);
    SO_CHECK_RC(so_opt_list_get(fn, grads_o, "grads", 0, n, &G), done);
    SO_CHECK_RC(so_opt_list_get(fn, bufs_o, "momentum_buffers", !has_mom, n, &B), done);
    if (first_o != Py_None) {
        first_t = PySequence_Tuple(first_o);
        if (first_t == NULL) goto done;
        if (PyTuple_GET_SIZE(first_t) != n)
            SO_FAIL(done, PyExc_ValueError,
                         "%s(): argument 'first_steps' has %zd entries but 'params' has %zd; "
                         "the lists must have equal lengths", fn, PyTuple_GET_SIZE(first_t), n);
    }

    size_t nn = n > 0 ? (size_t)n : 1;
    ts = PyMem_Calloc(nn, sizeof(so_optim_tensor));
    ops = PyMem_Calloc(nn, sizeof(*ops));
    keys = PyMem_Calloc(nn, sizeof(int));
    need = PyMem_Calloc(nn, 1);
    if (!ts || !ops || !keys || !need) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        SoTensor *p, *g, *b = NULL;
        int contig = 1;
        SO_CHECK_RC(so_opt_check_param(st, fn, &P, i, &p), done);
        SO_CHECK_RC(so_opt_check_operand(st, fn, &G, i, p, &g), done);
        if (has_mom) SO_CHECK_RC(so_opt_check_operand(st, fn, &B, i, p, &b), done);
        if (b != NULL && so_tensor_device(p).type == SO_CUDA && !so_tensor_is_contiguous(b))
            SO_FAIL(done, PyExc_RuntimeError, "%s(): momentum_buffers[%zd] is a non-contiguous "
                         "CUDA tensor; the fused CUDA optimizer needs contiguous tensors", fn, i);
        if (so_tensor_device(p).type == SO_CUDA && !so_tensor_is_contiguous(g))
            SO_FAIL(done, PyExc_RuntimeError, "%s(): grads[%zd] is a non-contiguous CUDA tensor; "
                         "the fused CUDA optimizer needs contiguous tensors", fn, i);
        int first = 0;
        if (first_t != NULL) {
            first = PyObject_IsTrue(PyTuple_GET_ITEM(first_t, i));
            if (first < 0) goto done;
        }
        ts[i].numel = so_tensor_numel(p);
        ts[i].dtype = p->dtype;
        ts[i].first = has_mom && first;
        so_opt_set_slot(&ts[i], 0, p, &contig);
        so_opt_set_slot(&ts[i], 1, g, &contig);
        if (b != NULL) so_opt_set_slot(&ts[i], 2, b, &contig);
        ops[i][0] = p;
        ops[i][1] = g;
        ops[i][2] = b;
        keys[i] = so_opt_device_key(so_tensor_device(p));
        need[i] = keys[i] == 0 && !contig;
    }
    SO_CHECK_RC(so_opt_attach_views(ts, ops, need, n, &views), done);

    so_sgd_f32 c32;
    so_sgd_f64 c64;
    so_sgd_prepare(lr, wd, momentum, dampening, &c32, &c64);
    sgd_ctx ctx = {&c32, &c64, {maximize, wd != 0.0, has_mom, has_mom && nesterov}};
    so_opt_sort_by_device(ts, keys, n);
    Py_ssize_t ncpu = 0;
    while (ncpu < n && keys[ncpu] == 0) ncpu++;
    if (ncpu > 0) {
        Py_BEGIN_ALLOW_THREADS
        so_fused_sgd_cpu(ts, ncpu, &c32, &c64, ctx.f);
        Py_END_ALLOW_THREADS
    }
#ifdef SHARDOPT_WITH_CUDA
    SO_CHECK_RC(so_opt_run_cuda_groups(st, ts, keys, n, sgd_cuda_group, &ctx), done);
#endif
    for (Py_ssize_t i = 0; i < n; i++) {
        so_tensor_bump_version(ops[i][0]);
        if (ops[i][2] != NULL) so_tensor_bump_version(ops[i][2]);
    }

    Py_DECREF(P.tuple);
    Py_DECREF(G.tuple);
    Py_XDECREF(B.tuple);
    Py_XDECREF(first_t);
    PyMem_Free(ts);
    PyMem_Free(ops);
    PyMem_Free(keys);
    PyMem_Free(need);
    PyMem_Free(views);
    Py_RETURN_NONE;
done:
    Py_XDECREF(P.tuple);
    Py_XDECREF(G.tuple);
    Py_XDECREF(B.tuple);
    Py_XDECREF(first_t);
    PyMem_Free(ts);
    PyMem_Free(ops);
    PyMem_Free(keys);
    PyMem_Free(need);
    PyMem_Free(views);
    return NULL;
}

/* ================================== Adam ================================== */

typedef struct {
    const so_adam_f32 *c32;
    const so_adam_f64 *c64;
    so_adam_flags f;
} adam_ctx;

#ifdef SHARDOPT_WITH_CUDA
static int adam_cuda_group(void *stream, const so_optim_tensor *ts, int64_t n, const void *ctx)
{
    const adam_ctx *c = (const adam_ctx *)ctx;
    return so_fused_adam_cuda(stream, ts, n, c->c32, c->c64, c->f);
}
#endif

/* A step counter: a one-element float32/float64 CPU tensor. */
int so_opt_check_step(so_state *st, const char *fn, const tensor_list *l, Py_ssize_t i,
                      SoTensor **out)
{
    if (so_opt_check_operand(st, fn, l, i, NULL, out) < 0) return -1;
    SoTensor *s = *out;
    if (so_tensor_device(s).type != SO_CPU || so_tensor_numel(s) != 1 ||
        (s->dtype != SO_FLOAT32 && s->dtype != SO_FLOAT64)) {
        char b[64], sh[128];
        so_opt_device_str(so_tensor_device(s), b, sizeof b);
        return so_fail(PyExc_TypeError,
                     "%s(): state_steps[%zd] must be a one-element float32 or float64 CPU tensor "
                     "(torch's `step`), got dtype %s, shape %s on %s", fn, i,
                     so_opt_dtype_name(s->dtype), so_shape_str(s->ndim, s->shape, sh, sizeof sh), b);
    }
    return 0;
}

PyDoc_STRVAR(fused_adam_doc,
"_fused_adam_(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, state_steps, lr,\n"
"             beta1, beta2, eps, weight_decay, amsgrad, maximize,\n"
"             decoupled_weight_decay) -> None\n\n"
"One Adam (decoupled_weight_decay=False) or AdamW (True) step over a list of params\n"
"(torch.optim.Adam's formulas), in place.  max_exp_avg_sqs: None unless amsgrad.\n"
"state_steps: one float32/float64 one-element CPU tensor per param; each is incremented by 1\n"
"and its new value gives that param's bias corrections.");

static PyObject *fused_adam(PyObject *module, PyObject *args, PyObject *kwargs)
{
    static const char *fn = "_fused_adam_";
    static char *kwlist[] = {"params", "grads", "exp_avgs", "exp_avg_sqs", "max_exp_avg_sqs",
                             "state_steps", "lr", "beta1", "beta2", "eps", "weight_decay",
                             "amsgrad", "maximize", "decoupled_weight_decay", NULL};
    so_state *st = so_state_from_module(module);
    PyObject *po, *go, *mo, *vo, *xo, *so;
    double lr, beta1, beta2, eps, wd;
    int amsgrad, maximize, decoupled;
    tensor_list P = {0}, G = {0}, M = {0}, V = {0}, X = {0}, S = {0};
    so_optim_tensor *ts = NULL;
    SoTensor *(*ops)[SO_OPT_MAX_OPS] = NULL;
    SoTensor **steps = NULL;
    int *keys = NULL;
    char *need = NULL;
    so_view *views = NULL;

    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOOOOOdddddppp:_fused_adam_", kwlist, &po,
                                     &go, &mo, &vo, &xo, &so, &lr, &beta1, &beta2, &eps, &wd,
                                     &amsgrad, &maximize, &decoupled))
        return NULL;
    SO_CHECK_RC(so_opt_list_get(fn, po, "params", 0, -1, &P), done);
    Py_ssize_t n = PyTuple_GET_SIZE(P.tuple);
    SO_CHECK_RC(so_opt_list_get(fn, go, "grads", 0, n, &G), done);
    SO_CHECK_RC(so_opt_list_get(fn, mo, "exp_avgs", 0, n, &M), done);
    SO_CHECK_RC(so_opt_list_get(fn, vo, "exp_avg_sqs", 0, n, &V), done);
    SO_CHECK_RC(so_opt_list_get(fn, xo, "max_exp_avg_sqs", !amsgrad, n, &X), done);
    SO_CHECK_RC(so_opt_list_get(fn, so, "state_steps", 0, n, &S), done);

    size_t nn = n > 0 ? (size_t)n : 1;
    ts = PyMem_Calloc(nn, sizeof(so_optim_tensor));
    ops = PyMem_Calloc(nn, sizeof(*ops));
    steps = PyMem_Calloc(nn, sizeof(SoTensor *));
    keys = PyMem_Calloc(nn, sizeof(int));
    need = PyMem_Calloc(nn, 1);
    if (!ts || !ops || !steps || !keys || !need) {
        PyErr_NoMemory();
        goto done;
    }
    const tensor_list *state_lists[3] = {&M, &V, &X};
    for (Py_ssize_t i = 0; i < n; i++) {
        SoTensor *p, *t;
        int contig = 1;
        SO_CHECK_RC(so_opt_check_param(st, fn, &P, i, &p), done);
        int on_cuda = so_tensor_device(p).type == SO_CUDA;
        ops[i][0] = p;
        so_opt_set_slot(&ts[i], 0, p, &contig);
        for (int k = 1; k < SO_OPT_MAX_OPS; k++) {
            const tensor_list *l = k == 1 ? &G : state_lists[k - 2];
            if (l->tuple == NULL) continue; /* max_exp_avg_sqs without amsgrad */
            if (k == 4 && !amsgrad) continue;
            SO_CHECK_RC(so_opt_check_operand(st, fn, l, i, p, &t), done);
            if (on_cuda && !so_tensor_is_contiguous(t))
                SO_FAIL(done, PyExc_RuntimeError, "%s(): %s[%zd] is a non-contiguous CUDA "
                             "tensor; the fused CUDA optimizer needs contiguous tensors", fn,
                             l->name, i);
            ops[i][k] = t;
            so_opt_set_slot(&ts[i], k, t, &contig);
        }
        SO_CHECK_RC(so_opt_check_step(st, fn, &S, i, &steps[i]), done);
        ts[i].numel = so_tensor_numel(p);
        ts[i].dtype = p->dtype;
        keys[i] = so_opt_device_key(so_tensor_device(p));
        need[i] = keys[i] == 0 && !contig;
    }
    SO_CHECK_RC(so_opt_attach_views(ts, ops, need, n, &views), done);

    /* All checks passed: advance the step counters and derive the per-tensor scalars
     * (torch: step_t += 1; bc1 = 1 - beta1**step; step_size = lr / bc1;
     *  bc2_sqrt = (1 - beta2**step) ** 0.5, all in Python floats = double). */
    for (Py_ssize_t i = 0; i < n; i++) {
        SoTensor *s = steps[i];
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
        ts[i].step.step_size = lr / (1.0 - pow(beta1, step));
        ts[i].step.bc2_sqrt = pow(1.0 - pow(beta2, step), 0.5);
    }

    so_adam_f32 c32;
    so_adam_f64 c64;
    so_adam_prepare(lr, beta1, beta2, eps, wd, &c32, &c64);
    adam_ctx ctx = {&c32, &c64, {maximize, wd == 0.0 ? 0 : (decoupled ? 2 : 1), amsgrad}};
    so_opt_sort_by_device(ts, keys, n);
    Py_ssize_t ncpu = 0;
    while (ncpu < n && keys[ncpu] == 0) ncpu++;
    if (ncpu > 0) {
        Py_BEGIN_ALLOW_THREADS
        so_fused_adam_cpu(ts, ncpu, &c32, &c64, ctx.f);
        Py_END_ALLOW_THREADS
    }
#ifdef SHARDOPT_WITH_CUDA
    SO_CHECK_RC(so_opt_run_cuda_groups(st, ts, keys, n, adam_cuda_group, &ctx), done);
#endif
    for (Py_ssize_t i = 0; i < n; i++)
        for (int k = 0; k < SO_OPT_MAX_OPS; k++)
            if (k != 1 && ops[i][k] != NULL) so_tensor_bump_version(ops[i][k]);

    Py_DECREF(P.tuple);
    Py_DECREF(G.tuple);
    Py_DECREF(M.tuple);
    Py_DECREF(V.tuple);
    Py_XDECREF(X.tuple);
    Py_DECREF(S.tuple);
    PyMem_Free(ts);
    PyMem_Free(ops);
    PyMem_Free(steps);
    PyMem_Free(keys);
    PyMem_Free(need);
    PyMem_Free(views);
    Py_RETURN_NONE;
done:
    Py_XDECREF(P.tuple);
    Py_XDECREF(G.tuple);
    Py_XDECREF(M.tuple);
    Py_XDECREF(V.tuple);
    Py_XDECREF(X.tuple);
    Py_XDECREF(S.tuple);
    PyMem_Free(ts);
    PyMem_Free(ops);
    PyMem_Free(steps);
    PyMem_Free(keys);
    PyMem_Free(need);
    PyMem_Free(views);
    return NULL;
}

static PyMethodDef optim_methods[] = {
    {"_fused_sgd_", (PyCFunction)(void (*)(void))fused_sgd, METH_VARARGS | METH_KEYWORDS,
     fused_sgd_doc},
    {"_fused_adam_", (PyCFunction)(void (*)(void))fused_adam, METH_VARARGS | METH_KEYWORDS,
     fused_adam_doc},
    {NULL, NULL, 0, NULL},
};

int so_register_optim(PyObject *m, so_state *st)
{
    if (PyModule_AddFunctions(m, optim_methods) < 0) return -1;
    return so_register_optim_adaptive(m, st);
}
