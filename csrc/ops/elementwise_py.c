/* elementwise_py.c — Python bindings of the elementwise ops: torch-style functions
 * (shardopt.add(input, other, *, alpha=1, out=None) ...) and Tensor methods/dunders.
 *
 * Each op family has one implementation taking already-split arguments; tiny generated
 * wrappers adapt the calling forms (function, method, in-place method, dunder, reflected
 * dunder, in-place dunder).  Methods are method descriptors on TensorBase built from
 * PyMethodDefs here (no Python frame per call); shardopt/_ops/elementwise.py installs them
 * on shardopt.Tensor.  Argument checks that torch does per op (bool subtraction, integer
 * alpha, negative integer powers, ...) live here; promotion, broadcasting, devices and the
 * in-place rules are in elementwise.c.
 */
#include "elementwise.h"
#include "../tensor/copy.h"

enum { M_FUNC, M_METHOD, M_INPLACE, M_DUNDER, M_RDUNDER, M_IDUNDER };

static so_state *state_of(PyObject *self, int mode)
{
    return mode == M_FUNC ? so_state_from_module(self) : so_state_from_type(Py_TYPE(self));
}

/* Parse an operand; `dunder` turns "not a tensor or number" into NotImplemented (rc 1). */
static int parse_operand(so_state *st, PyObject *obj, const char *fname, const char *argname,
                         int dunder, so_ew_arg *a)
{
    int rc = so_ew_parse_arg(st, obj, a);
    if (rc > 0 && !dunder) return so_ew_type_error(fname, argname, obj);
    return rc;
}

static int parse_tensor(so_state *st, PyObject *obj, const char *fname, const char *argname,
                        so_ew_arg *a)
{
    if (!so_tensor_check(st, obj))
        return so_fail(PyExc_TypeError,
                       "%s(): argument '%s' must be Tensor, not %s",
                       fname, argname, Py_TYPE(obj)->tp_name);
    return so_ew_parse_arg(st, obj, a);
}

static int parse_out(so_state *st, PyObject *obj, const char *fname, SoTensor **out)
{
    *out = NULL;
    if (!obj || obj == Py_None) return 0;
    if (!so_tensor_check(st, obj))
        return so_fail(PyExc_TypeError, "%s(): argument 'out' must be Tensor, not %s", fname,
                       Py_TYPE(obj)->tp_name);
    *out = (SoTensor *)obj;
    return 0;
}

/* alpha / value scalars: torch refuses a float with integral inputs and a bool with
 * non-bool results. */
static int parse_coef(so_state *st, PyObject *obj, const char *fname, const char *argname,
                      int common, so_ew_params *p)
{
    so_ew_arg a;
    p->f0 = 1.0;
    p->i0 = 1;
    if (!obj) return 0;
    if (so_tensor_check(st, obj) || so_ew_parse_arg(st, obj, &a) != 0) {
        if (PyErr_Occurred()) return -1;
        return so_fail(PyExc_TypeError, "%s(): argument '%s' must be a number, not %s", fname,
                       argname, Py_TYPE(obj)->tp_name);
    }
    if (a.dtype == SO_FLOAT64 && !so_dtype_is_float(common))
        return so_fail(PyExc_RuntimeError, "For integral input tensors, argument %s must not be a "
                       "floating point number.", argname);
    if (a.dtype == SO_BOOL && common != SO_BOOL)
        return so_fail(PyExc_RuntimeError,
                       "Boolean %s only supported for Boolean results.", argname);
    p->f0 = a.f;
    p->i0 = a.i;
    return 0;
}

/* ------------------------------------------------------------------ complex operands */

static int is_complex_operand(so_state *st, PyObject *o)
{
    if (!o) return 0;
    if (so_tensor_check(st, o)) return so_dtype_is_complex(((SoTensor *)o)->dtype);
    return PyComplex_Check(o);
}

/* Hand an op with a complex operand to the registered Python composition (see
 * tensor_state.h); kwargs holds the non-NULL ones of alpha / out / rtol, atol, equal_nan. */
static PyObject *complex_call(so_state *st, const char *name, PyObject *x, PyObject *y,
                              PyObject *alpha, SoTensor *out, PyObject *extra)
{
    PyObject *ops = NULL, *kw = NULL, *res = NULL, *fname = NULL;
    if (!st->tensor.complex_ops)
        return PyErr_Format(PyExc_RuntimeError, "%s: complex operands are not supported "
                            "(complex ops not registered)", name);
    ops = y ? PyTuple_Pack(2, x, y) : PyTuple_Pack(1, x);
    kw = extra ? PyDict_Copy(extra) : PyDict_New();
    fname = PyUnicode_FromString(name);
    if (!ops || !kw || !fname) goto done;
    if (alpha && PyDict_SetItemString(kw, "alpha", alpha) < 0) goto done;
    if (out && PyDict_SetItemString(kw, "out", (PyObject *)out) < 0) goto done;
    res = PyObject_CallFunctionObjArgs(st->tensor.complex_ops, fname, ops, kw, NULL);
done:
    Py_XDECREF(ops);
    Py_XDECREF(kw);
    Py_XDECREF(fname);
    return res;
}

/* ------------------------------------------------------------------ binary ops */

enum { R_SAME, R_FLOAT, R_CMP };
#define F_ALPHA 1
#define F_ROUNDING 2

typedef struct {
    const char *name;
    int op, rule, flags;
    const char *arg2;
} bin_spec;

enum { B_ADD, B_SUB, B_MUL, B_DIV, B_FLOORDIV, B_REM, B_POW, B_MAX, B_MIN, B_EQ, B_NE, B_LT,
       B_LE, B_GT, B_GE, B_CMIN, B_CMAX, B_TRUEDIV, B_GELU_BW };

static const bin_spec bin_specs[] = {
    [B_ADD] = {"add", SO_EW_ADD, R_SAME, F_ALPHA, "other"},
    [B_SUB] = {"sub", SO_EW_SUB, R_SAME, F_ALPHA, "other"},
    [B_MUL] = {"mul", SO_EW_MUL, R_SAME, 0, "other"},
    [B_DIV] = {"div", SO_EW_DIV, R_FLOAT, F_ROUNDING, "other"},
    [B_FLOORDIV] = {"floor_divide", SO_EW_DIV_FLOOR, R_SAME, 0, "other"},
    [B_REM] = {"remainder", SO_EW_REMAINDER, R_SAME, 0, "other"},
    [B_POW] = {"pow", SO_EW_POW, R_SAME, 0, "exponent"},
    [B_MAX] = {"maximum", SO_EW_MAXIMUM, R_SAME, 0, "other"},
    [B_MIN] = {"minimum", SO_EW_MINIMUM, R_SAME, 0, "other"},
    [B_EQ] = {"eq", SO_EW_EQ, R_CMP, 0, "other"},
    [B_NE] = {"ne", SO_EW_NE, R_CMP, 0, "other"},
    [B_LT] = {"lt", SO_EW_LT, R_CMP, 0, "other"},
    [B_LE] = {"le", SO_EW_LE, R_CMP, 0, "other"},
    [B_GT] = {"gt", SO_EW_GT, R_CMP, 0, "other"},
    [B_GE] = {"ge", SO_EW_GE, R_CMP, 0, "other"},
    [B_CMIN] = {"clamp_min", SO_EW_CLAMP_MIN_T, R_SAME, 0, "min"},
    [B_CMAX] = {"clamp_max", SO_EW_CLAMP_MAX_T, R_SAME, 0, "max"},
    [B_TRUEDIV] = {"true_divide", SO_EW_DIV, R_FLOAT, 0, "other"},
    [B_GELU_BW] = {"_gelu_backward", SO_EW_GELU_BACKWARD, R_FLOAT, 0, "input"},
};

static PyObject *binary_impl(so_state *st, const bin_spec *sp, PyObject *x, PyObject *y,
                             PyObject *alpha, PyObject *rounding, SoTensor *out, int dunder)
{
    so_ew_arg a[2];
    so_ew_params p;
    int rc, op = sp->op, common;
    memset(&p, 0, sizeof p);
    if (is_complex_operand(st, x) || is_complex_operand(st, y)) {
        if (rounding && rounding != Py_None)
            return PyErr_Format(PyExc_RuntimeError, "div with rounding_mode is not supported "
                                "for complex tensors");
        PyObject *kw = dunder ? Py_BuildValue("{s:O}", "_dunder", Py_True) : NULL, *r;
        if (dunder && !kw) return NULL;
        r = complex_call(st, sp->name, x, y, alpha, out, kw);
        Py_XDECREF(kw);
        return r;
    }
    if ((rc = parse_operand(st, x, sp->name, "input", dunder, &a[0])) != 0 ||
        (rc = parse_operand(st, y, sp->name, sp->arg2, dunder, &a[1])) != 0)
        return rc > 0 ? Py_NewRef(Py_NotImplemented) : NULL;
    if (!a[0].t && !a[1].t)
        return PyErr_Format(PyExc_TypeError, "%s(): expected at least one argument to be a Tensor",
                            sp->name);
    if (rounding && rounding != Py_None) {
        if (PyUnicode_Check(rounding) && PyUnicode_CompareWithASCIIString(rounding, "trunc") == 0)
            op = SO_EW_DIV_TRUNC;
        else if (PyUnicode_Check(rounding) &&
                 PyUnicode_CompareWithASCIIString(rounding, "floor") == 0)
            op = SO_EW_DIV_FLOOR;
        else
            return PyErr_Format(PyExc_RuntimeError, "div expected rounding_mode to be one of None, "
                                "'trunc', or 'floor' but found %R", rounding);
    }
    common = so_ew_result_type(a, 2);
    if (op == SO_EW_SUB) {
        if (a[0].dtype == SO_BOOL && a[1].dtype == SO_BOOL)
            return PyErr_Format(PyExc_RuntimeError, "Subtraction, the `-` operator, with two bool "
                                "tensors is not supported. Use the `^` or `logical_xor()` operator "
                                "instead.");
        if (a[0].dtype == SO_BOOL || a[1].dtype == SO_BOOL)
            return PyErr_Format(PyExc_RuntimeError,
                                "Subtraction, the `-` operator, with a bool tensor is not "
                                "supported. If you are trying to invert a mask, use the `~` or "
                                "`logical_not()` operator instead.");
    }
    if (sp->rule == R_FLOAT && op == sp->op && !so_dtype_is_float(common)) common = SO_FLOAT32;
    if (op == SO_EW_POW && !so_dtype_is_float(common) && !a[1].t && a[1].i < 0)
        return PyErr_Format(PyExc_RuntimeError,
                            "Integers to negative integer powers are not allowed.");
    if (sp->flags & F_ALPHA) {
        if (parse_coef(st, alpha, sp->name, "alpha", common, &p) < 0) return NULL;
    }
    return so_ew_exec(st, sp->name, op, a, 2, common, sp->rule == R_CMP ? SO_BOOL : common, out,
                      &p);
}

static PyObject *binary_call(PyObject *self, int idx, PyObject *args, PyObject *kwds, int mode)
{
    static char *kw_func[] = {"input", "other", "alpha", "rounding_mode", "out", NULL};
    static char *kw_meth[] = {"other", "alpha", "rounding_mode", NULL};
    const bin_spec *sp = &bin_specs[idx];
    so_state *st = state_of(self, mode);
    PyObject *x = self, *y = NULL, *alpha = NULL, *rounding = NULL, *out_obj = NULL;
    SoTensor *out = NULL;
    PyObject *res;
    if (!st) return NULL;
    /* the second positional is also accepted under its torch name (exponent, min, max) */
    if (kwds && PyDict_GET_SIZE(kwds) && strcmp(sp->arg2, "other") != 0) {
        PyObject *v = PyDict_GetItemString(kwds, sp->arg2);
        if (v) {
            kwds = PyDict_Copy(kwds);
            if (!kwds) return NULL;
            PyDict_DelItemString(kwds, sp->arg2);
            PyDict_SetItemString(kwds, "other", v);
        } else {
            Py_INCREF(kwds);
        }
    } else {
        Py_XINCREF(kwds);
    }
    if (mode == M_FUNC) {
        if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO|$OOO", kw_func, &x, &y, &alpha,
                                         &rounding, &out_obj))
            goto done;
    } else if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|$OO", kw_meth, &y, &alpha, &rounding)) {
        goto done;
    }
    Py_XDECREF(kwds);
    if (alpha && !(sp->flags & F_ALPHA))
        return PyErr_Format(PyExc_TypeError,
                            "%s() got an unexpected keyword argument 'alpha'", sp->name);
    if (rounding && !(sp->flags & F_ROUNDING))
        return PyErr_Format(PyExc_TypeError,
                            "%s() got an unexpected keyword argument 'rounding_mode'", sp->name);
    if (parse_out(st, out_obj, sp->name, &out) < 0) return NULL;
    if (mode == M_INPLACE) out = (SoTensor *)self;
    res = binary_impl(st, sp, x, y, alpha, rounding, out, 0);
    return res;
done:
    Py_XDECREF(kwds);
    return NULL;
}

static PyObject *binary_dunder(PyObject *self, int idx, PyObject *other, int mode)
{
    so_state *st = state_of(self, mode);
    if (!st) return NULL;
    if (mode == M_RDUNDER) return binary_impl(st, &bin_specs[idx], other, self, NULL, NULL, NULL, 1);
    return binary_impl(st, &bin_specs[idx], self, other, NULL, NULL,
                       mode == M_IDUNDER ? (SoTensor *)self : NULL, 1);
}

#define BIN_WRAP2(N, IDX) /* function and method */                                           \
    static PyObject *bf_##N(PyObject *s, PyObject *a, PyObject *k) { return binary_call(s, IDX, a, k, M_FUNC); }    \
    static PyObject *bm_##N(PyObject *s, PyObject *a, PyObject *k) { return binary_call(s, IDX, a, k, M_METHOD); }
#define BIN_WRAP(N, IDX) /* and the in-place method */                                         \
    BIN_WRAP2(N, IDX)                                                                         \
    static PyObject *bi_##N(PyObject *s, PyObject *a, PyObject *k) { return binary_call(s, IDX, a, k, M_INPLACE); }
#define BIN_DUNDER(N, IDX)                                                                    \
    static PyObject *bd_##N(PyObject *s, PyObject *o) { return binary_dunder(s, IDX, o, M_DUNDER); }   \
    static PyObject *br_##N(PyObject *s, PyObject *o) { return binary_dunder(s, IDX, o, M_RDUNDER); }  \
    static PyObject *bid_##N(PyObject *s, PyObject *o) { return binary_dunder(s, IDX, o, M_IDUNDER); }

BIN_WRAP(add, B_ADD) BIN_WRAP(sub, B_SUB) BIN_WRAP(mul, B_MUL) BIN_WRAP(div, B_DIV)
BIN_WRAP(floordiv, B_FLOORDIV) BIN_WRAP(rem, B_REM) BIN_WRAP(pow, B_POW) BIN_WRAP2(max, B_MAX)
BIN_WRAP2(min, B_MIN) BIN_WRAP(eq, B_EQ) BIN_WRAP(ne, B_NE) BIN_WRAP(lt, B_LT) BIN_WRAP(le, B_LE)
BIN_WRAP(gt, B_GT) BIN_WRAP(ge, B_GE) BIN_WRAP(cmin, B_CMIN) BIN_WRAP(cmax, B_CMAX)
BIN_WRAP(truediv, B_TRUEDIV)
BIN_DUNDER(add, B_ADD) BIN_DUNDER(sub, B_SUB) BIN_DUNDER(mul, B_MUL) BIN_DUNDER(div, B_DIV)
BIN_DUNDER(floordiv, B_FLOORDIV) BIN_DUNDER(rem, B_REM) BIN_DUNDER(pow, B_POW)

/* Comparisons are rich-compare dunders (no reflected/in-place forms). */
#define CMP_DUNDER(N, IDX)                                                                    \
    static PyObject *cd_##N(PyObject *s, PyObject *o) { return binary_dunder(s, IDX, o, M_DUNDER); }
CMP_DUNDER(eq, B_EQ) CMP_DUNDER(ne, B_NE) CMP_DUNDER(lt, B_LT) CMP_DUNDER(le, B_LE)
CMP_DUNDER(gt, B_GT) CMP_DUNDER(ge, B_GE)

/* _gelu_backward(grad, input, approximate='none') */
static PyObject *f_gelu_backward(PyObject *m, PyObject *args, PyObject *kwds)
{
    static char *kw[] = {"grad", "input", "approximate", NULL};
    so_state *st = so_state_from_module(m);
    PyObject *g, *x;
    const char *approx = "none";
    bin_spec sp = bin_specs[B_GELU_BW];
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO|s:_gelu_backward", kw, &g, &x, &approx))
        return NULL;
    if (strcmp(approx, "tanh") == 0) sp.op = SO_EW_GELU_TANH_BACKWARD;
    else if (strcmp(approx, "none") != 0) {
        return PyErr_Format(PyExc_RuntimeError,
                            "approximate argument must be either none or tanh.");
    }
    return binary_impl(st, &sp, g, x, NULL, NULL, NULL, 0);
}

/* ------------------------------------------------------------------ unary ops */

enum { U_SAME, U_FLOAT, U_FLOAT_ONLY };

typedef struct {
    const char *name;
    int op, rule;
} un_spec;

enum { U_NEG, U_ABS, U_SQRT, U_EXP, U_LOG, U_SIGN, U_RELU, U_SIGMOID, U_TANH, U_RSQRT,
       U_RECIP, U_SQUARE, U_GELU, U_SIN, U_COS, U_TAN, U_ASIN, U_ACOS, U_ATAN, U_SINH, U_COSH,
       U_ASINH, U_ACOSH, U_ATANH, U_FLOOR, U_CEIL, U_ROUND, U_TRUNC, U_LOG1P, U_EXPM1, U_ERF,
       U_ERFC, U_LOG2, U_LOG10, U_EXP2 };

static const un_spec un_specs[] = {
    [U_NEG] = {"neg", SO_EW_NEG, U_SAME},
    [U_ABS] = {"abs", SO_EW_ABS, U_SAME},
    [U_SQRT] = {"sqrt", SO_EW_SQRT, U_FLOAT},
    [U_EXP] = {"exp", SO_EW_EXP, U_FLOAT},
    [U_LOG] = {"log", SO_EW_LOG, U_FLOAT},
    [U_SIGN] = {"sign", SO_EW_SIGN, U_SAME},
    [U_RELU] = {"relu", SO_EW_RELU, U_SAME},
    [U_SIGMOID] = {"sigmoid", SO_EW_SIGMOID, U_FLOAT},
    [U_TANH] = {"tanh", SO_EW_TANH, U_FLOAT},
    [U_RSQRT] = {"rsqrt", SO_EW_RSQRT, U_FLOAT},
    [U_RECIP] = {"reciprocal", SO_EW_RECIPROCAL, U_FLOAT},
    [U_SQUARE] = {"square", SO_EW_SQUARE, U_SAME},
    [U_GELU] = {"gelu", SO_EW_GELU, U_FLOAT_ONLY},
    [U_SIN] = {"sin", SO_EW_SIN, U_FLOAT},
    [U_COS] = {"cos", SO_EW_COS, U_FLOAT},
    [U_TAN] = {"tan", SO_EW_TAN, U_FLOAT},
    [U_ASIN] = {"asin", SO_EW_ASIN, U_FLOAT},
    [U_ACOS] = {"acos", SO_EW_ACOS, U_FLOAT},
    [U_ATAN] = {"atan", SO_EW_ATAN, U_FLOAT},
    [U_SINH] = {"sinh", SO_EW_SINH, U_FLOAT},
    [U_COSH] = {"cosh", SO_EW_COSH, U_FLOAT},
    [U_ASINH] = {"asinh", SO_EW_ASINH, U_FLOAT},
    [U_ACOSH] = {"acosh", SO_EW_ACOSH, U_FLOAT},
    [U_ATANH] = {"atanh", SO_EW_ATANH, U_FLOAT},
    [U_FLOOR] = {"floor", SO_EW_FLOOR, U_SAME},
    [U_CEIL] = {"ceil", SO_EW_CEIL, U_SAME},
    [U_ROUND] = {"round", SO_EW_ROUND, U_SAME},
    [U_TRUNC] = {"trunc", SO_EW_TRUNC, U_SAME},
    [U_LOG1P] = {"log1p", SO_EW_LOG1P, U_FLOAT},
    [U_EXPM1] = {"expm1", SO_EW_EXPM1, U_FLOAT},
    [U_ERF] = {"erf", SO_EW_ERF, U_FLOAT},
    [U_ERFC] = {"erfc", SO_EW_ERFC, U_FLOAT},
    [U_LOG2] = {"log2", SO_EW_LOG2, U_FLOAT},
    [U_LOG10] = {"log10", SO_EW_LOG10, U_FLOAT},
    [U_EXP2] = {"exp2", SO_EW_EXP2, U_FLOAT},
};

static PyObject *unary_impl(so_state *st, const un_spec *sp, int op, PyObject *x, SoTensor *out,
                            const so_ew_params *p)
{
    so_ew_arg a;
    int common;
    if (is_complex_operand(st, x)) return complex_call(st, sp->name, x, NULL, NULL, out, NULL);
    if (parse_tensor(st, x, sp->name, "input", &a) < 0) return NULL;
    common = a.dtype;
    if (op == SO_EW_NEG && common == SO_BOOL)
        return PyErr_Format(PyExc_RuntimeError,
                            "Negation, the `-` operator, on a bool tensor is not supported. If "
                            "you are trying to invert a mask, use the `~` or `logical_not()` "
                            "operator instead.");
    if (!so_dtype_is_float(common)) {
        if (sp->rule == U_FLOAT_ONLY)
            return PyErr_Format(PyExc_RuntimeError,
                                "%s(): expected a floating point tensor, got %s",
                                sp->name, so_dtype_torch_name(common));
        if (sp->rule == U_FLOAT) common = SO_FLOAT32;
    }
    return so_ew_exec(st, sp->name, op, &a, 1, common, common, out, p);
}

static PyObject *unary_call(PyObject *self, int idx, PyObject *args, PyObject *kwds, int mode)
{
    static char *kw_func[] = {"input", "out", NULL};
    so_state *st = state_of(self, mode);
    PyObject *x = self, *out_obj = NULL;
    SoTensor *out = NULL;
    if (!st) return NULL;
    if (mode == M_FUNC) {
        if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|$O", kw_func, &x, &out_obj)) return NULL;
        if (parse_out(st, out_obj, un_specs[idx].name, &out) < 0) return NULL;
    } else if (mode == M_INPLACE) {
        out = (SoTensor *)self;
    }
    return unary_impl(st, &un_specs[idx], un_specs[idx].op, x, out, NULL);
}

#define UN_WRAP(N, IDX)                                                                       \
    static PyObject *uf_##N(PyObject *s, PyObject *a, PyObject *k) { return unary_call(s, IDX, a, k, M_FUNC); }   \
    static PyObject *um_##N(PyObject *s, PyObject *u) { (void)u; return unary_call(s, IDX, NULL, NULL, M_METHOD); } \
    static PyObject *ui_##N(PyObject *s, PyObject *u) { (void)u; return unary_call(s, IDX, NULL, NULL, M_INPLACE); }

UN_WRAP(neg, U_NEG) UN_WRAP(abs, U_ABS) UN_WRAP(sqrt, U_SQRT) UN_WRAP(exp, U_EXP)
UN_WRAP(log, U_LOG) UN_WRAP(sign, U_SIGN) UN_WRAP(relu, U_RELU) UN_WRAP(sigmoid, U_SIGMOID)
UN_WRAP(tanh, U_TANH) UN_WRAP(rsqrt, U_RSQRT) UN_WRAP(recip, U_RECIP) UN_WRAP(square, U_SQUARE)
UN_WRAP(sin, U_SIN) UN_WRAP(cos, U_COS) UN_WRAP(tan, U_TAN) UN_WRAP(asin, U_ASIN)
UN_WRAP(acos, U_ACOS) UN_WRAP(atan, U_ATAN) UN_WRAP(sinh, U_SINH) UN_WRAP(cosh, U_COSH)
UN_WRAP(asinh, U_ASINH) UN_WRAP(acosh, U_ACOSH) UN_WRAP(atanh, U_ATANH)
UN_WRAP(floor, U_FLOOR) UN_WRAP(ceil, U_CEIL) UN_WRAP(round, U_ROUND) UN_WRAP(trunc, U_TRUNC)
UN_WRAP(log1p, U_LOG1P) UN_WRAP(expm1, U_EXPM1) UN_WRAP(erf, U_ERF) UN_WRAP(erfc, U_ERFC)
UN_WRAP(log2, U_LOG2) UN_WRAP(log10, U_LOG10) UN_WRAP(exp2, U_EXP2)

/* gelu(input, approximate='none') */
static PyObject *f_gelu(PyObject *m, PyObject *args, PyObject *kwds)
{
    static char *kw[] = {"input", "approximate", NULL};
    so_state *st = so_state_from_module(m);
    PyObject *x;
    const char *approx = "none";
    int op = SO_EW_GELU;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|s:gelu", kw, &x, &approx)) return NULL;
    if (strcmp(approx, "tanh") == 0) op = SO_EW_GELU_TANH;
    else if (strcmp(approx, "none") != 0) {
        return PyErr_Format(PyExc_RuntimeError,
                            "approximate argument must be either none or tanh.");
    }
    return unary_impl(st, &un_specs[U_GELU], op, x, NULL, NULL);
}

static PyObject *bd_neg(PyObject *s) { return unary_call(s, U_NEG, NULL, NULL, M_METHOD); }
static PyObject *bd_abs(PyObject *s) { return unary_call(s, U_ABS, NULL, NULL, M_METHOD); }

/* ------------------------------------------------------------------ clamp */

static PyObject *clamp_impl(so_state *st, const char *fname, PyObject *x, PyObject *lo,
                            PyObject *hi, SoTensor *out)
{
    so_ew_arg a[3];
    so_ew_params p;
    int n = 1, common;
    if (lo == Py_None) lo = NULL;
    if (hi == Py_None) hi = NULL;
    memset(&p, 0, sizeof p);
    if (!lo && !hi)
        return PyErr_Format(PyExc_RuntimeError,
                            "torch.clamp: At least one of 'min' or 'max' must not be None");
    if (parse_tensor(st, x, fname, "input", &a[0]) < 0) return NULL;
    if (lo && parse_operand(st, lo, fname, "min", 0, &a[n++]) < 0) return NULL;
    if (hi && parse_operand(st, hi, fname, "max", 0, &a[n++]) < 0) return NULL;
    common = so_ew_result_type(a, n);
    if ((!lo || !so_tensor_check(st, lo)) && (!hi || !so_tensor_check(st, hi))) {
        /* number bounds: a unary kernel with the bounds as parameters */
        if (lo) { p.flags |= SO_EW_HAS_LO; p.f0 = a[1].f; p.i0 = a[1].i; }
        if (hi) { p.flags |= SO_EW_HAS_HI; p.f1 = a[n - 1].f; p.i1 = a[n - 1].i; }
        return so_ew_exec(st, fname, SO_EW_CLAMP_S, a, 1, common, common, out, &p);
    }
    if (lo && hi) return so_ew_exec(st, fname, SO_EW_CLAMP_T, a, 3, common, common, out, &p);
    return so_ew_exec(st, fname, lo ? SO_EW_CLAMP_MIN_T : SO_EW_CLAMP_MAX_T, a, 2, common, common,
                      out, &p);
}

static PyObject *clamp_call(PyObject *self, PyObject *args, PyObject *kwds, int mode)
{
    static char *kw_func[] = {"input", "min", "max", "out", NULL};
    static char *kw_meth[] = {"min", "max", NULL};
    so_state *st = state_of(self, mode);
    PyObject *x = self, *lo = Py_None, *hi = Py_None, *out_obj = NULL;
    SoTensor *out = NULL;
    if (!st) return NULL;
    if (mode == M_FUNC) {
        if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|OO$O:clamp", kw_func, &x, &lo, &hi,
                                         &out_obj))
            return NULL;
        if (parse_out(st, out_obj, "clamp", &out) < 0) return NULL;
    } else {
        if (!PyArg_ParseTupleAndKeywords(args, kwds, "|OO:clamp", kw_meth, &lo, &hi)) return NULL;
        if (mode == M_INPLACE) out = (SoTensor *)self;
    }
    return clamp_impl(st, "clamp", x, lo, hi, out);
}

static PyObject *f_clamp(PyObject *s, PyObject *a, PyObject *k) { return clamp_call(s, a, k, M_FUNC); }
static PyObject *m_clamp(PyObject *s, PyObject *a, PyObject *k) { return clamp_call(s, a, k, M_METHOD); }
static PyObject *i_clamp(PyObject *s, PyObject *a, PyObject *k) { return clamp_call(s, a, k, M_INPLACE); }

/* ------------------------------------------------------------------ ternary ops */

static PyObject *addc_impl(so_state *st, int op, PyObject *x, PyObject *t1, PyObject *t2,
                           PyObject *value, SoTensor *out)
{
    const char *fname = op == SO_EW_ADDCMUL ? "addcmul" : "addcdiv";
    so_ew_arg a[3];
    so_ew_params p;
    int common;
    memset(&p, 0, sizeof p);
    if (parse_tensor(st, x, fname, "input", &a[0]) < 0 ||
        parse_tensor(st, t1, fname, "tensor1", &a[1]) < 0 ||
        parse_tensor(st, t2, fname, "tensor2", &a[2]) < 0)
        return NULL;
    common = so_ew_result_type(a, 3);
    if (op == SO_EW_ADDCDIV && !so_dtype_is_float(common))
        return PyErr_Format(PyExc_RuntimeError, "Integer division with addcdiv is no longer "
                            "supported; use (input + value * tensor1 / tensor2) for float inputs.");
    if (parse_coef(st, value, fname, "value", common, &p) < 0) return NULL;
    return so_ew_exec(st, fname, op, a, 3, common, common, out, &p);
}

static PyObject *addc_call(PyObject *self, int op, PyObject *args, PyObject *kwds, int mode)
{
    static char *kw_func[] = {"input", "tensor1", "tensor2", "value", "out", NULL};
    static char *kw_meth[] = {"tensor1", "tensor2", "value", NULL};
    so_state *st = state_of(self, mode);
    PyObject *x = self, *t1, *t2, *value = NULL, *out_obj = NULL;
    SoTensor *out = NULL;
    if (!st) return NULL;
    if (mode == M_FUNC) {
        if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOO|$OO", kw_func, &x, &t1, &t2, &value,
                                         &out_obj))
            return NULL;
        if (parse_out(st, out_obj, "addcmul", &out) < 0) return NULL;
    } else {
        if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO|$O", kw_meth, &t1, &t2, &value))
            return NULL;
        if (mode == M_INPLACE) out = (SoTensor *)self;
    }
    return addc_impl(st, op, x, t1, t2, value, out);
}

#define ADDC_WRAP(N, OP)                                                                      \
    static PyObject *f_##N(PyObject *s, PyObject *a, PyObject *k) { return addc_call(s, OP, a, k, M_FUNC); }    \
    static PyObject *m_##N(PyObject *s, PyObject *a, PyObject *k) { return addc_call(s, OP, a, k, M_METHOD); }  \
    static PyObject *i_##N(PyObject *s, PyObject *a, PyObject *k) { return addc_call(s, OP, a, k, M_INPLACE); }
ADDC_WRAP(addcmul, SO_EW_ADDCMUL)
ADDC_WRAP(addcdiv, SO_EW_ADDCDIV)

static PyObject *lerp_impl(so_state *st, PyObject *x, PyObject *end, PyObject *weight,
                           SoTensor *out)
{
    so_ew_arg a[3];
    so_ew_params p;
    memset(&p, 0, sizeof p);
    if (parse_tensor(st, x, "lerp", "input", &a[0]) < 0 ||
        parse_tensor(st, end, "lerp", "end", &a[1]) < 0 ||
        parse_operand(st, weight, "lerp", "weight", 0, &a[2]) < 0)
        return NULL;
    if (!so_dtype_is_float(a[0].dtype))
        return PyErr_Format(PyExc_RuntimeError, "lerp(): expected a floating point tensor, got %s",
                            so_dtype_torch_name(a[0].dtype));
    for (int k = 1; k < 3; k++)
        if (a[k].t && a[k].dtype != a[0].dtype)
            return PyErr_Format(PyExc_RuntimeError, "expected dtype %s for `%s` but got dtype %s",
                                so_dtype_torch_name(a[0].dtype), k == 1 ? "end" : "weight",
                                so_dtype_torch_name(a[k].dtype));
    if (!a[2].t) {
        p.f0 = a[2].f;
        return so_ew_exec(st, "lerp", SO_EW_LERP_S, a, 2, a[0].dtype, a[0].dtype, out, &p);
    }
    return so_ew_exec(st, "lerp", SO_EW_LERP_T, a, 3, a[0].dtype, a[0].dtype, out, &p);
}

static PyObject *lerp_call(PyObject *self, PyObject *args, PyObject *kwds, int mode)
{
    static char *kw_func[] = {"input", "end", "weight", "out", NULL};
    static char *kw_meth[] = {"end", "weight", NULL};
    so_state *st = state_of(self, mode);
    PyObject *x = self, *end, *weight, *out_obj = NULL;
    SoTensor *out = NULL;
    if (!st) return NULL;
    if (mode == M_FUNC) {
        if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOO|$O:lerp", kw_func, &x, &end, &weight,
                                         &out_obj))
            return NULL;
        if (parse_out(st, out_obj, "lerp", &out) < 0) return NULL;
    } else {
        if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO:lerp", kw_meth, &end, &weight)) return NULL;
        if (mode == M_INPLACE) out = (SoTensor *)self;
    }
    return lerp_impl(st, x, end, weight, out);
}

static PyObject *f_lerp(PyObject *s, PyObject *a, PyObject *k) { return lerp_call(s, a, k, M_FUNC); }
static PyObject *m_lerp(PyObject *s, PyObject *a, PyObject *k) { return lerp_call(s, a, k, M_METHOD); }
static PyObject *i_lerp(PyObject *s, PyObject *a, PyObject *k) { return lerp_call(s, a, k, M_INPLACE); }

/* where(condition, input, other) / Tensor.where(condition, other) */
static PyObject *where_impl(so_state *st, PyObject *cond, PyObject *x, PyObject *y)
{
    so_ew_arg a[3];
    int common;
    if (parse_tensor(st, cond, "where", "condition", &a[0]) < 0 ||
        parse_operand(st, x, "where", "input", 0, &a[1]) < 0 ||
        parse_operand(st, y, "where", "other", 0, &a[2]) < 0)
        return NULL;
    if (a[0].dtype != SO_BOOL)
        return PyErr_Format(PyExc_RuntimeError,
                            "where expected condition to be a boolean tensor, but got a tensor "
                            "with dtype %s", so_dtype_torch_name(a[0].dtype));
    common = so_ew_result_type(a + 1, 2);
    return so_ew_exec(st, "where", SO_EW_WHERE, a, 3, common, common, NULL, NULL);
}

static PyObject *f_where(PyObject *m, PyObject *args, PyObject *kwds)
{
    static char *kw[] = {"condition", "input", "other", NULL};
    PyObject *c, *x, *y;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOO:where", kw, &c, &x, &y)) return NULL;
    return where_impl(so_state_from_module(m), c, x, y);
}

static PyObject *m_where(PyObject *self, PyObject *args, PyObject *kwds)
{
    static char *kw[] = {"condition", "other", NULL};
    so_state *st = so_state_from_type(Py_TYPE(self));
    PyObject *c, *y;
    if (!st || !PyArg_ParseTupleAndKeywords(args, kwds, "OO:where", kw, &c, &y)) return NULL;
    return where_impl(st, c, self, y);
}

/* ------------------------------------------------------------------ whole-tensor tests */

/* 1 if every element of the (fresh, contiguous) bool tensor b is true, 0 if not, -1 error. */
static int all_true(so_state *st, SoTensor *b)
{
    int64_t n = so_tensor_numel(b);
    int r;
    if (so_tensor_device(b).type != SO_CPU) {
        so_device cpu = {SO_CPU, 0};
        SoTensor *h = so_tensor_convert(st, b, SO_BOOL, cpu);
        if (!h) return -1;
        r = all_true(st, h);
        Py_DECREF(h);
        return r;
    }
    return n == 0 || memchr(so_tensor_data(b), 0, (size_t)n) == NULL;
}

static PyObject *isclose_impl(so_state *st, const char *fname, PyObject *x, PyObject *y,
                              double rtol, double atol, int equal_nan, int reduce)
{
    so_ew_arg a[2];
    so_ew_params p;
    PyObject *r;
    int t;
    memset(&p, 0, sizeof p);
    if (is_complex_operand(st, x) || is_complex_operand(st, y)) {
        PyObject *kw = Py_BuildValue("{s:d,s:d,s:O}", "rtol", rtol, "atol", atol, "equal_nan",
                                     equal_nan ? Py_True : Py_False);
        if (!kw) return NULL;
        r = complex_call(st, fname, x, y, NULL, NULL, kw);
        Py_DECREF(kw);
        return r;
    }
    if (parse_tensor(st, x, fname, "input", &a[0]) < 0 ||
        parse_tensor(st, y, fname, "other", &a[1]) < 0)
        return NULL;
    if (a[0].dtype != a[1].dtype)
        return PyErr_Format(PyExc_RuntimeError,
                            "%s did not match %s",
                            so_dtype_torch_name(a[0].dtype), so_dtype_torch_name(a[1].dtype));
    if (!(rtol >= 0) || !(atol >= 0)) {
        char buf[64];
        snprintf(buf, sizeof buf, "%g", !(rtol >= 0) ? rtol : atol);
        return PyErr_Format(PyExc_RuntimeError,
                            "%s must be greater than or equal to zero, but got %s",
                            !(rtol >= 0) ? "rtol" : "atol", buf);
    }
    p.f0 = rtol;
    p.f1 = atol;
    p.flags = equal_nan ? SO_EW_EQUAL_NAN : 0;
    r = so_ew_exec(st, fname, SO_EW_ISCLOSE, a, 2, a[0].dtype, SO_BOOL, NULL, &p);
    if (!r || !reduce) return r;
    t = all_true(st, (SoTensor *)r);
    Py_DECREF(r);
    return t < 0 ? NULL : PyBool_FromLong(t);
}

static PyObject *isclose_call(PyObject *self, PyObject *args, PyObject *kwds, int mode, int reduce)
{
    static char *kw_func[] = {"input", "other", "rtol", "atol", "equal_nan", NULL};
    static char *kw_meth[] = {"other", "rtol", "atol", "equal_nan", NULL};
    so_state *st = state_of(self, mode);
    const char *fname = reduce ? "allclose" : "isclose";
    PyObject *x = self, *y;
    double rtol = 1e-05, atol = 1e-08;
    int equal_nan = 0;
    if (!st) return NULL;
    if (mode == M_FUNC) {
        if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO|ddp", kw_func, &x, &y, &rtol, &atol,
                                         &equal_nan))
            return NULL;
    } else if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|ddp", kw_meth, &y, &rtol, &atol,
                                            &equal_nan)) {
        return NULL;
    }
    return isclose_impl(st, fname, x, y, rtol, atol, equal_nan, reduce);
}

static PyObject *f_isclose(PyObject *s, PyObject *a, PyObject *k) { return isclose_call(s, a, k, M_FUNC, 0); }
static PyObject *m_isclose(PyObject *s, PyObject *a, PyObject *k) { return isclose_call(s, a, k, M_METHOD, 0); }
static PyObject *f_allclose(PyObject *s, PyObject *a, PyObject *k) { return isclose_call(s, a, k, M_FUNC, 1); }
static PyObject *m_allclose(PyObject *s, PyObject *a, PyObject *k) { return isclose_call(s, a, k, M_METHOD, 1); }

/* equal(input, other): same shape and same values (after promotion) -> Python bool */
static PyObject *equal_impl(so_state *st, PyObject *x, PyObject *y)
{
    so_ew_arg a[2];
    PyObject *r;
    int t;
    if (is_complex_operand(st, x) || is_complex_operand(st, y))
        return complex_call(st, "equal", x, y, NULL, NULL, NULL);
    if (parse_tensor(st, x, "equal", "input", &a[0]) < 0 ||
        parse_tensor(st, y, "equal", "other", &a[1]) < 0)
        return NULL;
    if (a[0].t->ndim != a[1].t->ndim ||
        memcmp(a[0].t->shape, a[1].t->shape, sizeof(int64_t) * (size_t)a[0].t->ndim) != 0) {
        so_device d0 = so_tensor_device(a[0].t), d1 = so_tensor_device(a[1].t);
        if (!so_device_eq(d0, d1)) /* torch checks devices first */
            return PyErr_Format(PyExc_RuntimeError, "Expected all tensors to be on the same "
                                "device, but found at least two devices, cuda:0 and cpu!");
        Py_RETURN_FALSE;
    }
    r = binary_impl(st, &bin_specs[B_EQ], x, y, NULL, NULL, NULL, 0);
    if (!r) return NULL;
    t = all_true(st, (SoTensor *)r);
    Py_DECREF(r);
    return t < 0 ? NULL : PyBool_FromLong(t);
}

static PyObject *f_equal(PyObject *m, PyObject *args, PyObject *kwds)
{
    static char *kw[] = {"input", "other", NULL};
    PyObject *x, *y;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO:equal", kw, &x, &y)) return NULL;
    return equal_impl(so_state_from_module(m), x, y);
}

static PyObject *m_equal(PyObject *self, PyObject *other)
{
    so_state *st = so_state_from_type(Py_TYPE(self));
    return st ? equal_impl(st, self, other) : NULL;
}

/* Tensor.__bool__: only for one-element tensors, like torch. */
static PyObject *t_bool(PyObject *self, PyObject *unused)
{
    so_state *st = so_state_from_type(Py_TYPE(self));
    SoTensor *t = (SoTensor *)self;
    int64_t n = so_tensor_numel(t);
    double v;
    (void)unused;
    if (!st) return NULL;
    if (n != 1)
        return PyErr_Format(PyExc_RuntimeError, "%s", n == 0
                            ? "Boolean value of Tensor with no values is ambiguous"
                            : "Boolean value of Tensor with more than one value is ambiguous");
    if (so_tensor_device(t).type == SO_META)
        return PyErr_Format(PyExc_RuntimeError, "Tensor.item() cannot be called on meta tensors");
    if (so_tensor_device(t).type != SO_CPU) {
        so_device cpu = {SO_CPU, 0};
        SoTensor *h = so_tensor_convert(st, t, t->dtype, cpu);
        if (!h) return NULL;
        v = so_load_as_f64(so_tensor_data(h), h->dtype);
        Py_DECREF(h);
    } else {
        v = so_load_as_f64(so_tensor_data(t), t->dtype);
        /* a complex value is true if either part is non-zero (complex tensors are CPU-only) */
        if (v == 0.0) v = so_load_imag_f64(so_tensor_data(t), t->dtype);
    }
    return PyBool_FromLong(v != 0.0);
}

/* ------------------------------------------------------------------ tables */

#define KW (METH_VARARGS | METH_KEYWORDS)
#define FN(name, f) {name, (PyCFunction)(void (*)(void))(f), KW, NULL}

static PyMethodDef ew_functions[] = {
    FN("add", bf_add), FN("sub", bf_sub), FN("subtract", bf_sub), FN("mul", bf_mul),
    FN("multiply", bf_mul), FN("div", bf_div), FN("divide", bf_div),
    FN("true_divide", bf_truediv), FN("floor_divide", bf_floordiv), FN("remainder", bf_rem),
    FN("pow", bf_pow), FN("maximum", bf_max), FN("minimum", bf_min), FN("eq", bf_eq),
    FN("ne", bf_ne), FN("lt", bf_lt), FN("le", bf_le), FN("gt", bf_gt), FN("ge", bf_ge),
    FN("clamp_min", bf_cmin), FN("clamp_max", bf_cmax),
    FN("neg", uf_neg), FN("negative", uf_neg), FN("abs", uf_abs), FN("sqrt", uf_sqrt),
    FN("exp", uf_exp), FN("log", uf_log), FN("sign", uf_sign), FN("relu", uf_relu),
    FN("sigmoid", uf_sigmoid), FN("tanh", uf_tanh), FN("rsqrt", uf_rsqrt),
    FN("reciprocal", uf_recip), FN("square", uf_square), FN("gelu", f_gelu),
    FN("sin", uf_sin), FN("cos", uf_cos), FN("tan", uf_tan), FN("asin", uf_asin),
    FN("arcsin", uf_asin), FN("acos", uf_acos), FN("arccos", uf_acos), FN("atan", uf_atan),
    FN("arctan", uf_atan), FN("sinh", uf_sinh), FN("cosh", uf_cosh), FN("asinh", uf_asinh),
    FN("arcsinh", uf_asinh), FN("acosh", uf_acosh), FN("arccosh", uf_acosh),
    FN("atanh", uf_atanh), FN("arctanh", uf_atanh),
    FN("floor", uf_floor), FN("ceil", uf_ceil), FN("round", uf_round), FN("trunc", uf_trunc),
    FN("fix", uf_trunc), FN("log1p", uf_log1p), FN("expm1", uf_expm1), FN("erf", uf_erf),
    FN("erfc", uf_erfc), FN("log2", uf_log2), FN("log10", uf_log10), FN("exp2", uf_exp2),
    FN("_gelu_backward", f_gelu_backward),
    FN("clamp", f_clamp), FN("clip", f_clamp), FN("addcmul", f_addcmul), FN("addcdiv", f_addcdiv),
    FN("lerp", f_lerp), FN("where", f_where), FN("isclose", f_isclose),
    FN("allclose", f_allclose), FN("equal", f_equal),
    {NULL}};

#define ME(name, f) {name, (PyCFunction)(void (*)(void))(f), KW, NULL}
#define M0(name, f) {name, (PyCFunction)(void (*)(void))(f), METH_NOARGS, NULL}
#define M1(name, f) {name, (PyCFunction)(void (*)(void))(f), METH_O, NULL}
#define BIN_METHODS(name, N) ME(name, bm_##N), ME(name "_", bi_##N)
#define UN_METHODS(name, N) M0(name, um_##N), M0(name "_", ui_##N)

static PyMethodDef ew_methods[] = {
    BIN_METHODS("add", add), BIN_METHODS("sub", sub), BIN_METHODS("subtract", sub),
    BIN_METHODS("mul", mul), BIN_METHODS("multiply", mul), BIN_METHODS("div", div),
    BIN_METHODS("divide", div), BIN_METHODS("true_divide", truediv),
    BIN_METHODS("floor_divide", floordiv), BIN_METHODS("remainder", rem),
    BIN_METHODS("pow", pow), ME("maximum", bm_max), ME("minimum", bm_min),
    BIN_METHODS("eq", eq), BIN_METHODS("ne", ne), BIN_METHODS("lt", lt), BIN_METHODS("le", le),
    BIN_METHODS("gt", gt), BIN_METHODS("ge", ge), BIN_METHODS("clamp_min", cmin),
    BIN_METHODS("clamp_max", cmax),
    UN_METHODS("neg", neg), UN_METHODS("negative", neg), UN_METHODS("abs", abs),
    UN_METHODS("sqrt", sqrt), UN_METHODS("exp", exp), UN_METHODS("log", log),
    UN_METHODS("sign", sign), UN_METHODS("relu", relu), UN_METHODS("sigmoid", sigmoid),
    UN_METHODS("tanh", tanh), UN_METHODS("rsqrt", rsqrt), UN_METHODS("reciprocal", recip),
    UN_METHODS("square", square),
    UN_METHODS("sin", sin), UN_METHODS("cos", cos), UN_METHODS("tan", tan),
    UN_METHODS("asin", asin), UN_METHODS("arcsin", asin), UN_METHODS("acos", acos),
    UN_METHODS("arccos", acos), UN_METHODS("atan", atan), UN_METHODS("arctan", atan),
    UN_METHODS("sinh", sinh), UN_METHODS("cosh", cosh), UN_METHODS("asinh", asinh),
    UN_METHODS("arcsinh", asinh), UN_METHODS("acosh", acosh), UN_METHODS("arccosh", acosh),
    UN_METHODS("atanh", atanh), UN_METHODS("arctanh", atanh),
    UN_METHODS("floor", floor), UN_METHODS("ceil", ceil), UN_METHODS("round", round),
    UN_METHODS("trunc", trunc), UN_METHODS("fix", trunc), UN_METHODS("log1p", log1p),
    UN_METHODS("expm1", expm1), UN_METHODS("erf", erf), UN_METHODS("erfc", erfc),
    UN_METHODS("log2", log2), UN_METHODS("log10", log10), UN_METHODS("exp2", exp2),
    ME("clamp", m_clamp), ME("clamp_", i_clamp), ME("clip", m_clamp), ME("clip_", i_clamp),
    ME("addcmul", m_addcmul), ME("addcmul_", i_addcmul), ME("addcdiv", m_addcdiv),
    ME("addcdiv_", i_addcdiv), ME("lerp", m_lerp), ME("lerp_", i_lerp), ME("where", m_where),
    ME("isclose", m_isclose), ME("allclose", m_allclose), M1("equal", m_equal),
    /* operators */
    M1("__add__", bd_add), M1("__radd__", br_add), M1("__iadd__", bid_add),
    M1("__sub__", bd_sub), M1("__rsub__", br_sub), M1("__isub__", bid_sub),
    M1("__mul__", bd_mul), M1("__rmul__", br_mul), M1("__imul__", bid_mul),
    M1("__truediv__", bd_div), M1("__rtruediv__", br_div), M1("__itruediv__", bid_div),
    M1("__floordiv__", bd_floordiv), M1("__rfloordiv__", br_floordiv),
    M1("__ifloordiv__", bid_floordiv), M1("__mod__", bd_rem), M1("__rmod__", br_rem),
    M1("__imod__", bid_rem), M1("__pow__", bd_pow), M1("__rpow__", br_pow),
    M1("__ipow__", bid_pow), M1("__eq__", cd_eq), M1("__ne__", cd_ne), M1("__lt__", cd_lt),
    M1("__le__", cd_le), M1("__gt__", cd_gt), M1("__ge__", cd_ge),
    M0("__neg__", bd_neg), M0("__abs__", bd_abs), M0("__bool__", t_bool),
    {NULL}};

/* _C._ew_functions: name -> builtin; _C._ew_methods: name -> method descriptor of
 * TensorBase.  Kept out of _C's namespace so other areas' names cannot collide. */
int so_register_elementwise(PyObject *m, so_state *st)
{
    PyObject *funcs = PyDict_New(), *meths = PyDict_New(), *modname = NULL;
    if (!funcs || !meths) goto done;
    modname = PyModule_GetNameObject(m);
    if (!modname) goto done;
    for (PyMethodDef *d = ew_functions; d->ml_name; d++) {
        PyObject *f = PyCFunction_NewEx(d, m, modname);
        if (!f || PyDict_SetItemString(funcs, d->ml_name, f) < 0) {
            Py_XDECREF(f);
            goto done;
        }
        Py_DECREF(f);
    }
    for (PyMethodDef *d = ew_methods; d->ml_name; d++) {
        PyObject *f = PyDescr_NewMethod(st->tensor.tensor_type, d);
        if (!f || PyDict_SetItemString(meths, d->ml_name, f) < 0) {
            Py_XDECREF(f);
            goto done;
        }
        Py_DECREF(f);
    }
    Py_CLEAR(modname);
    if (PyModule_AddObjectRef(m, "_ew_functions", funcs) < 0) goto done;
    if (PyModule_AddObjectRef(m, "_ew_methods", meths) < 0) goto done;
    Py_DECREF(funcs);
    Py_DECREF(meths);
    return 0;
done:
    Py_XDECREF(modname);
    Py_XDECREF(funcs);
    Py_XDECREF(meths);
    return -1;
}
