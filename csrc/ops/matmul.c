/* matmul.c — matmul / mm / bmm / dot: torch's shape rules and messages, the plan of
 * matmul.h, and the one place that picks the CPU (matmul_cpu.c) or cuBLAS (matmul.cu)
 * kernel.
 *
 * torch.matmul: 1-D.1-D is a dot product; a 1-D first operand gets a 1 prepended to its
 * shape (removed from the result), a 1-D second operand a 1 appended; leading dims are
 * batch dims broadcast NumPy-style.  Transposed and sliced views run without a copy when a
 * BLAS layout fits them; otherwise the operand is copied to contiguous memory once.
 * When the second operand is shared by the whole batch (broadcast), the batch folds into
 * the rows of one large GEMM, as torch does.
 */
#include "matmul.h"
#include "../tensor/copy.h"
#include <stdio.h>

#if !defined(SHARDOPT_WITH_CUDA) || !defined(SHARDOPT_WITH_CUBLAS)
int so_matmul_cuda(const so_matmul_plan *pl, void *stream, int device_index, void **handle_slot,
                   char *err, size_t errlen)
{
    (void)pl; (void)stream; (void)device_index; (void)handle_slot;
    snprintf(err, errlen, "matmul of CUDA tensors needs cuBLAS, which this build of shardopt "
             "was compiled without (install the nvidia-cublas wheel and rebuild)");
    return -1;
}
void so_matmul_release_handles(void **handles, int n) { (void)handles; (void)n; }
#endif

static const char *scalar_name(int dt)
{
    static const char *names[SO_NUM_DTYPES] = {"Float", "Double", "Half", "BFloat16",
                                               "Int", "Long", "Bool"};
    return dt >= 0 && dt < SO_NUM_DTYPES ? names[dt] : "?";
}

/* The C++ type names torch prints in "expected m1 and m2 to have the same dtype". */
static const char *ctype_name(int dt)
{
    static const char *names[SO_NUM_DTYPES] = {"float", "double", "c10::Half", "c10::BFloat16",
                                               "int", "long int", "bool"};
    return dt >= 0 && dt < SO_NUM_DTYPES ? names[dt] : "?";
}

static void device_str(so_device d, char *buf, size_t n)
{
    if (d.type == SO_CUDA) snprintf(buf, n, "cuda:%d", (int)d.index);
    else snprintf(buf, n, "%s", so_device_type_name(d.type));
}

/* Both tensors, same device, same dtype, a dtype the device can multiply. */
static int check_operands(so_state *st, PyObject *a, PyObject *b, const char *fname,
                          const char *name_a, const char *name_b, int is_dot)
{
    SoTensor *ta, *tb;
    so_device da, db;
    if (!so_tensor_check(st, a) || !so_tensor_check(st, b)) {
        PyObject *bad = so_tensor_check(st, a) ? b : a;
        return so_fail(PyExc_TypeError, "%s(): argument '%s' (position %d) must be Tensor, not %s",
                       fname, bad == a ? name_a : name_b, bad == a ? 1 : 2, Py_TYPE(bad)->tp_name);
    }
    ta = (SoTensor *)a;
    tb = (SoTensor *)b;
    if (so_check_not_complex(ta, fname) < 0 || so_check_not_complex(tb, fname) < 0) return -1;
    da = so_tensor_device(ta);
    db = so_tensor_device(tb);
    if (!so_device_eq(da, db)) {
        char s1[32], s2[32];
        device_str(da, s1, sizeof s1);
        device_str(db, s2, sizeof s2);
        return so_fail(PyExc_RuntimeError,
                       "Expected all tensors to be on the same device, but found at least two "
                       "devices, %s and %s!", s1, s2);
    }
    if (ta->dtype != tb->dtype) {
        if (is_dot)
            return so_fail(PyExc_RuntimeError, "dot : expected both vectors to have same dtype, "
                           "but found %s and %s", scalar_name(ta->dtype), scalar_name(tb->dtype));
        return so_fail(PyExc_RuntimeError, "expected m1 and m2 to have the same dtype, but got: "
                       "%s != %s", ctype_name(ta->dtype), ctype_name(tb->dtype));
    }
    if (ta->dtype == SO_BOOL || (da.type == SO_CUDA && !so_dtype_is_float(ta->dtype)))
        return so_fail(PyExc_RuntimeError, "\"%s_%s\" not implemented for '%s'", fname,
                       da.type == SO_CUDA ? "cuda" : "cpu", scalar_name(ta->dtype));
    return 0;
}

/* An operand as the kernels see it: (batch..., rows, cols) with element strides. */
typedef struct {
    int ndim;
    int64_t shape[SO_MAX_DIMS];
    int64_t strides[SO_MAX_DIMS];
} operand;

static void operand_of(const SoTensor *t, operand *o)
{
    o->ndim = t->ndim;
    for (int d = 0; d < t->ndim; d++) {
        o->shape[d] = t->shape[d];
        o->strides[d] = t->strides[d];
    }
}

/* Replace *t by a contiguous copy of itself (new reference in *owned). */
static int make_contiguous(so_state *st, SoTensor **t, SoTensor **owned, operand *o)
{
    SoTensor *c = so_tensor_clone(st, *t);
    if (!c) return -1;
    *owned = c;
    *t = c;
    /* keep the operand's (possibly 1-D-expanded) shape, with the copy's strides */
    {
        int64_t s = 1;
        for (int d = o->ndim - 1; d >= 0; d--) {
            o->strides[d] = s;
            s *= o->shape[d];
        }
    }
    return 0;
}

static void classify(so_matmul_plan *pl)
{
    int la = so_blas_layout(pl->m, pl->k, pl->a_rs, pl->a_cs, &pl->lda);
    int lb = so_blas_layout(pl->k, pl->n, pl->b_rs, pl->b_cs, &pl->ldb);
    pl->a_trans = la == 1;
    pl->b_trans = lb == 1;
    pl->blas_ok = la >= 0 && lb >= 0;
}

/* Fill the plan from two (batch..., m, k) / (batch..., k, n) operands whose batch dims are
 * already broadcast to `nb` dims of `bshape`. */
static void fill_plan(so_matmul_plan *pl, int nb, const int64_t *bshape, const operand *a,
                      const operand *b)
{
    int na = a->ndim, nbd = b->ndim, out = 0;
    pl->m = a->shape[na - 2];
    pl->k = a->shape[na - 1];
    pl->n = b->shape[nbd - 1];
    pl->a_rs = a->strides[na - 2];
    pl->a_cs = a->strides[na - 1];
    pl->b_rs = b->strides[nbd - 2];
    pl->b_cs = b->strides[nbd - 1];
    pl->batch = 1;
    /* batch dims: drop size 1, broadcast strides to 0, merge dims that chain in A and B */
    for (int d = 0; d < nb; d++) {
        int da = d - (nb - (na - 2)), db = d - (nb - (nbd - 2));
        int64_t sa = (da >= 0 && a->shape[da] != 1) ? a->strides[da] : 0;
        int64_t sb = (db >= 0 && b->shape[db] != 1) ? b->strides[db] : 0;
        pl->batch *= bshape[d];
        if (bshape[d] == 1) continue;
        if (out > 0 && pl->a_bstrides[out - 1] == sa * bshape[d] &&
            pl->b_bstrides[out - 1] == sb * bshape[d]) {
            pl->batch_shape[out - 1] *= bshape[d];
            pl->a_bstrides[out - 1] = sa;
            pl->b_bstrides[out - 1] = sb;
            continue;
        }
        pl->batch_shape[out] = bshape[d];
        pl->a_bstrides[out] = sa;
        pl->b_bstrides[out] = sb;
        out++;
    }
    pl->nb = out;
    classify(pl);
    /* B shared by the batch and A's batch continues A's rows: one GEMM of batch*m rows */
    while (pl->nb > 0 && pl->b_bstrides[pl->nb - 1] == 0 && pl->batch_shape[pl->nb - 1] > 0) {
        so_matmul_plan t = *pl;
        int64_t s = pl->batch_shape[pl->nb - 1], as = pl->a_bstrides[pl->nb - 1];
        if (t.m == 1) t.a_rs = as;
        if (as != t.a_rs * t.m) break;
        t.m *= s;
        t.batch /= s;
        t.nb--;
        classify(&t);
        if (pl->blas_ok && !t.blas_ok) break;
        *pl = t;
    }
}

/* The shared driver.  a / b are (batch..., m, k) / (batch..., k, n) operands over the
 * tensors ta / tb; out_nd / out_shape is the result shape (batch..., [m], [n]). */
static PyObject *run_matmul(so_state *st, SoTensor *ta, SoTensor *tb, operand *a, operand *b,
                            int nb, const int64_t *bshape, int out_nd, const int64_t *out_shape)
{
    so_device dev = so_tensor_device(ta);
    SoTensor *out = NULL, *ca = NULL, *cb = NULL;
    so_matmul_plan pl;
    int rc = -1;
    memset(&pl, 0, sizeof pl);
    pl.dtype = ta->dtype;
    fill_plan(&pl, nb, bshape, a, b);
    /* BLAS kernels need a BLAS layout; copy an operand no layout fits (once) */
    if (!pl.blas_ok && (dev.type == SO_CUDA || pl.dtype == SO_FLOAT32 || pl.dtype == SO_FLOAT64)) {
        int64_t ld;
        if (so_blas_layout(pl.m, pl.k, pl.a_rs, pl.a_cs, &ld) < 0 &&
            make_contiguous(st, &ta, &ca, a) < 0)
            goto done;
        if (so_blas_layout(pl.k, pl.n, pl.b_rs, pl.b_cs, &ld) < 0 &&
            make_contiguous(st, &tb, &cb, b) < 0)
            goto done;
        memset(&pl, 0, sizeof pl);
        pl.dtype = ta->dtype;
        fill_plan(&pl, nb, bshape, a, b);
    }
    out = so_tensor_empty(st, out_nd, out_shape, ta->dtype, dev);
    if (!out) goto done;
    pl.a = so_tensor_data(ta);
    pl.b = so_tensor_data(tb);
    pl.c = so_tensor_data(out);
    if (so_tensor_numel(out) == 0 || dev.type == SO_META) {
        /* nothing to compute (meta: the output's geometry is the result) */
    } else if (pl.k == 0) { /* empty inner dim: the sum over nothing */
        PyObject *zero;
        SO_CHECK_PTR(zero = PyLong_FromLong(0), done);
        int filled = so_fill_(st, out, zero);
        Py_DECREF(zero);
        SO_CHECK_RC(filled, done);
    } else if (dev.type == SO_CPU) {
        if (so_matmul_cpu(&pl) < 0) {
            PyErr_NoMemory();
            goto done;
        }
    } else {
        char err[512];
        void *stream;
        SO_CHECK_PTR(stream = so_cuda_stream(st->core.cuda_streams, dev.index), done);
        if (so_matmul_cuda(&pl, stream, dev.index, &st->ops.cublas_handles[dev.index], err,
                           sizeof err) < 0)
            SO_FAIL(done, PyExc_RuntimeError, "%s", err);
    }
    rc = 0;
done:
    Py_XDECREF(ca);
    Py_XDECREF(cb);
    if (rc < 0) Py_CLEAR(out);
    return (PyObject *)out;
}

static PyObject *mm_shape_error(int64_t r1, int64_t c1, int64_t r2, int64_t c2)
{
    return PyErr_Format(PyExc_RuntimeError,
                        "mat1 and mat2 shapes cannot be multiplied (%lldx%lld and %lldx%lld)",
                        (long long)r1, (long long)c1, (long long)r2, (long long)c2);
}

static PyObject *dot_impl(so_state *st, SoTensor *ta, SoTensor *tb)
{
    operand a, b;
    if (ta->shape[0] != tb->shape[0])
        return PyErr_Format(PyExc_RuntimeError,
                            "inconsistent tensor size, expected tensor [%lld] and src [%lld] to "
                            "have the same number of elements, but got %lld and %lld elements "
                            "respectively",
                            (long long)ta->shape[0], (long long)tb->shape[0],
                            (long long)ta->shape[0], (long long)tb->shape[0]);
    /* (1, k) @ (k, 1) */
    a.ndim = b.ndim = 2;
    a.shape[0] = 1; a.shape[1] = ta->shape[0];
    a.strides[0] = 1; a.strides[1] = ta->strides[0];
    b.shape[0] = tb->shape[0]; b.shape[1] = 1;
    b.strides[0] = tb->strides[0]; b.strides[1] = 1;
    return run_matmul(st, ta, tb, &a, &b, 0, NULL, 0, NULL);
}

static PyObject *matmul_impl(so_state *st, SoTensor *ta, SoTensor *tb)
{
    operand a, b;
    int64_t bshape[SO_MAX_DIMS], out_shape[SO_MAX_DIMS];
    int da = ta->ndim, db = tb->ndim, nb, out_nd = 0;
    if (da == 0 || db == 0)
        return PyErr_Format(PyExc_RuntimeError,
                            "both arguments to matmul need to be at least 1D, but they are %dD "
                            "and %dD", da, db);
    if (da == 1 && db == 1) return dot_impl(st, ta, tb);
    operand_of(ta, &a);
    operand_of(tb, &b);
    if (da == 1) { /* prepend a 1: (k) -> (1, k) */
        a.ndim = 2;
        a.shape[1] = ta->shape[0]; a.strides[1] = ta->strides[0];
        a.shape[0] = 1; a.strides[0] = 1;
    }
    if (db == 1) { /* append a 1: (k) -> (k, 1) */
        b.ndim = 2;
        b.shape[1] = 1; b.strides[1] = 1;
    }
    if (da == 2 && db == 1 && a.shape[1] != b.shape[0])
        return PyErr_Format(PyExc_RuntimeError,
                            "size mismatch, got input (%lld), mat (%lldx%lld), vec (%lld)",
                            (long long)a.shape[0], (long long)a.shape[0], (long long)a.shape[1],
                            (long long)b.shape[0]);
    if (da <= 2 && db <= 2 && a.shape[1] != b.shape[0])
        return mm_shape_error(a.shape[0], a.shape[1], b.shape[0], b.shape[1]);
    /* broadcast the batch dims */
    nb = (a.ndim > b.ndim ? a.ndim : b.ndim) - 2;
    for (int d = 0; d < nb; d++) {
        int ia = d - (nb - (a.ndim - 2)), ib = d - (nb - (b.ndim - 2));
        int64_t sa = ia >= 0 ? a.shape[ia] : 1, sb = ib >= 0 ? b.shape[ib] : 1;
        if (sa != sb && sa != 1 && sb != 1)
            return PyErr_Format(PyExc_RuntimeError,
                                "The size of tensor a (%lld) must match the size of tensor b "
                                "(%lld) at non-singleton dimension %d",
                                (long long)sa, (long long)sb, d);
        bshape[d] = sa == 1 ? sb : sa;
        out_shape[out_nd++] = bshape[d];
    }
    if (a.shape[a.ndim - 1] != b.shape[b.ndim - 2]) {
        int64_t batch = 1;
        for (int d = 0; d < nb; d++) batch *= bshape[d];
        return PyErr_Format(PyExc_RuntimeError,
                            "Expected size for first two dimensions of batch2 tensor to be: "
                            "[%lld, %lld] but got: [%lld, %lld].",
                            (long long)batch, (long long)a.shape[a.ndim - 1], (long long)batch,
                            (long long)b.shape[b.ndim - 2]);
    }
    if (da > 1) out_shape[out_nd++] = a.shape[a.ndim - 2];
    if (db > 1) out_shape[out_nd++] = b.shape[b.ndim - 1];
    return run_matmul(st, ta, tb, &a, &b, nb, bshape, out_nd, out_shape);
}

/* ------------------------------------------------------------------ bindings */

static PyObject *py_matmul(PyObject *m, PyObject *args)
{
    so_state *st = so_state_from_module(m);
    PyObject *a, *b;
    if (!PyArg_ParseTuple(args, "OO:matmul", &a, &b)) return NULL;
    if (check_operands(st, a, b, "matmul", "input", "other",
                       so_tensor_check(st, a) && so_tensor_check(st, b) &&
                           ((SoTensor *)a)->ndim == 1 && ((SoTensor *)b)->ndim == 1) < 0)
        return NULL;
    return matmul_impl(st, (SoTensor *)a, (SoTensor *)b);
}

static PyObject *py_mm(PyObject *m, PyObject *args)
{
    so_state *st = so_state_from_module(m);
    PyObject *a, *b;
    SoTensor *ta, *tb;
    if (!PyArg_ParseTuple(args, "OO:mm", &a, &b)) return NULL;
    if (check_operands(st, a, b, "mm", "input", "mat2", 0) < 0) return NULL;
    ta = (SoTensor *)a;
    tb = (SoTensor *)b;
    if (ta->ndim != 2) return PyErr_Format(PyExc_RuntimeError, "self must be a matrix");
    if (tb->ndim != 2) return PyErr_Format(PyExc_RuntimeError, "mat2 must be a matrix");
    if (ta->shape[1] != tb->shape[0])
        return mm_shape_error(ta->shape[0], ta->shape[1], tb->shape[0], tb->shape[1]);
    return matmul_impl(st, ta, tb);
}

static PyObject *py_bmm(PyObject *m, PyObject *args)
{
    so_state *st = so_state_from_module(m);
    PyObject *a, *b;
    SoTensor *ta, *tb;
    if (!PyArg_ParseTuple(args, "OO:bmm", &a, &b)) return NULL;
    if (check_operands(st, a, b, "bmm", "input", "mat2", 0) < 0) return NULL;
    ta = (SoTensor *)a;
    tb = (SoTensor *)b;
    if (ta->ndim != 3) return PyErr_Format(PyExc_RuntimeError, "batch1 must be a 3D tensor");
    if (tb->ndim != 3) return PyErr_Format(PyExc_RuntimeError, "batch2 must be a 3D tensor");
    if (ta->shape[0] != tb->shape[0] || ta->shape[2] != tb->shape[1])
        return PyErr_Format(PyExc_RuntimeError, "Expected size for first two dimensions of batch2 "
                            "tensor to be: [%lld, %lld] but got: [%lld, %lld].",
                            (long long)ta->shape[0], (long long)ta->shape[2],
                            (long long)tb->shape[0], (long long)tb->shape[1]);
    return matmul_impl(st, ta, tb);
}

static PyObject *py_dot(PyObject *m, PyObject *args)
{
    so_state *st = so_state_from_module(m);
    PyObject *a, *b;
    SoTensor *ta, *tb;
    if (!PyArg_ParseTuple(args, "OO:dot", &a, &b)) return NULL;
    if (check_operands(st, a, b, "dot", "input", "tensor", 1) < 0) return NULL;
    ta = (SoTensor *)a;
    tb = (SoTensor *)b;
    if (ta->ndim != 1 || tb->ndim != 1)
        return PyErr_Format(PyExc_RuntimeError, "1D tensors expected, but got %dD and %dD tensors",
                            ta->ndim, tb->ndim);
    return dot_impl(st, ta, tb);
}

static PyMethodDef matmul_functions[] = {
    {"_matmul", py_matmul, METH_VARARGS, "_matmul(input, other): torch.matmul semantics"},
    {"_mm", py_mm, METH_VARARGS, "_mm(input, mat2): 2-D matrix product"},
    {"_bmm", py_bmm, METH_VARARGS, "_bmm(input, mat2): batched 3-D matrix product"},
    {"_dot", py_dot, METH_VARARGS, "_dot(input, tensor): 1-D inner product"},
    {NULL}};

int so_register_matmul(PyObject *m, so_state *st)
{
    (void)st;
    return PyModule_AddFunctions(m, matmul_functions);
}
