/* named_params.c — named_params_with_sharded_tensor (torch.distributed._shard.sharded_optim):
 * (name, param) pairs over a module's ShardedTensor attributes, then its named_parameters().
 */
#include "sharded_optim.h"

/* Yields (name, ShardedTensor) for every ShardedTensor found in the vars() of the module and
 * its submodules (identity de-duplicated), then everything module.named_parameters()
 * yields -- which ignores prefix and recurse, torch's quirk.  The pairs are collected
 * eagerly and an iterator over them is returned. */
static PyObject *named_params_with_sharded_tensor(PyObject *m, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"module", "prefix", "recurse", NULL};
    PyObject *module, *prefix = NULL, *modules = NULL, *seq = NULL, *memo = NULL, *out = NULL,
             *params = NULL, *res = NULL;
    int recurse = 1;
    so_state *st = so_state_from_module(m);
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|Up:named_params_with_sharded_tensor", kwlist,
                                     &module, &prefix, &recurse))
        return NULL;
    if (!prefix) prefix = PyUnicode_FromString("");
    else Py_INCREF(prefix);
    if (!prefix) return NULL;
    if (recurse) {
        PyObject *meth = PyObject_GetAttrString(module, "named_modules"), *kw = NULL, *noargs = NULL;
        if (!meth) goto done;
        if ((kw = Py_BuildValue("{sO}", "prefix", prefix)) && (noargs = PyTuple_New(0)))
            modules = PyObject_Call(meth, noargs, kw);
        Py_DECREF(meth);
        Py_XDECREF(kw);
        Py_XDECREF(noargs);
    } else {
        modules = Py_BuildValue("[(OO)]", prefix, module);
    }
    if (!modules) goto done;
    if (!(seq = PySequence_List(modules))) goto done;
    if (!(memo = PySet_New(NULL)) || !(out = PyList_New(0))) goto done;
    PyObject *cls = so_sharded_tensor_class(st);
    for (Py_ssize_t i = 0; cls && i < PyList_GET_SIZE(seq); i++) {
        PyObject *pair = PyList_GET_ITEM(seq, i), *mod_prefix, *mod, *vars, *key, *val;
        if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2) {
            PyErr_SetString(PyExc_TypeError, "named_modules() must yield (name, module) pairs");
            goto done;
        }
        mod_prefix = PyTuple_GET_ITEM(pair, 0);
        mod = PyTuple_GET_ITEM(pair, 1);
        if (!(vars = PyObject_GetAttrString(mod, "__dict__"))) goto done;
        PyObject *items = PyMapping_Items(vars);
        Py_DECREF(vars);
        if (!items) goto done;
        for (Py_ssize_t j = 0; j < PyList_GET_SIZE(items); j++) {
            PyObject *kv = PyList_GET_ITEM(items, j), *id, *name;
            key = PyTuple_GET_ITEM(kv, 0);
            val = PyTuple_GET_ITEM(kv, 1);
            int ok = PyObject_IsInstance(val, cls);
            if (ok < 0) {
                Py_DECREF(items);
                goto done;
            }
            if (!ok) continue;
            if (!(id = PyLong_FromVoidPtr(val))) {
                Py_DECREF(items);
                goto done;
            }
            int seen = PySet_Contains(memo, id);
            if (seen != 0 || PySet_Add(memo, id) < 0) {
                Py_DECREF(id);
                if (seen > 0) continue;
                Py_DECREF(items);
                goto done;
            }
            Py_DECREF(id);
            int has_prefix = PyObject_IsTrue(mod_prefix);
            if (has_prefix < 0) {
                Py_DECREF(items);
                goto done;
            }
            name = has_prefix ? PyUnicode_FromFormat("%U.%U", mod_prefix, key)
                              : PyUnicode_FromFormat("%U", key);
            PyObject *t = name ? PyTuple_Pack(2, name, val) : NULL;
            Py_XDECREF(name);
            if (!t || PyList_Append(out, t) < 0) {
                Py_XDECREF(t);
                Py_DECREF(items);
                goto done;
            }
            Py_DECREF(t);
        }
        Py_DECREF(items);
    }
    if (!(params = PyObject_CallMethod(module, "named_parameters", NULL))) goto done;
    {
        PyObject *it = PyObject_GetIter(params), *x;
        if (!it) goto done;
        while ((x = PyIter_Next(it))) {
            int rc = PyList_Append(out, x);
            Py_DECREF(x);
            if (rc < 0) break;
        }
        Py_DECREF(it);
        if (PyErr_Occurred()) goto done;
    }
    res = PyObject_GetIter(out);
done:
    Py_XDECREF(prefix);
    Py_XDECREF(modules);
    Py_XDECREF(seq);
    Py_XDECREF(memo);
    Py_XDECREF(out);
    Py_XDECREF(params);
    return res;
}

static PyMethodDef optim_functions[] = {
    {"named_params_with_sharded_tensor", (PyCFunction)(void (*)(void))named_params_with_sharded_tensor,
     METH_VARARGS | METH_KEYWORDS,
     "named_params_with_sharded_tensor(module, prefix='', recurse=True): iterator of (name, "
     "param) over the module's ShardedTensor attributes, then module.named_parameters()."},
    {NULL, NULL, 0, NULL},
};

int so_register_named_params(PyObject *m, so_state *st)
{
    (void)st;
    return PyModule_AddFunctions(m, optim_functions);
}
