/* sharded_optim.c — ShardedOptimizerBase, the C core of shardopt.sharded_optim.ShardedOptimizer
 * (torch.distributed._shard.sharded_optim; named_params_with_sharded_tensor is in named_params.c).
 *
 * ShardedOptimizer wraps a regular optimizer built over the *local* tensors: each value of
 * `named_params` is a Tensor (taken as is) or a ShardedTensor (all of its local shard
 * tensors, in local order).  The inner optimizer does the math (one fused C call per param
 * group), so step() costs the same as a plain optimizer over the local shards.
 *
 * Beyond torch (which raises NotImplementedError for all three): state_dict(),
 * load_state_dict() and add_param_group().  The state dict is keyed by PARAMETER NAME
 * (not by position) and carries each parameter's layout:
 *
 *   {"state":        {name: {...}            for a Tensor,
 *                     name: [{...}, ...]     for a ShardedTensor, one dict per local shard},
 *    "param_groups": [{<hyper-parameters>, "params": [name, ...]}, ...],
 *    "layouts":      {name: {"type": "Tensor", "size": (..)}  or
 *                           {"type": "ShardedTensor", "size": (..),
 *                            "shards": ((offsets, sizes, placement), ...)  all, sorted,
 *                            "local_shards": (...)  this rank's, in local order}}}
 *
 * load_state_dict compares the saved layouts with the current ones before touching any
 * state.  The global part ("shards") is identical on every rank, so a checkpoint written
 * with another sharding fails on every rank, with a ValueError that names the parameter and
 * shows both layouts; shards are never silently mixed.  The state is then handed to the
 * inner optimizer's load_state_dict (positional format), which casts tensors to each
 * param's device and dtype.
 *
 * The Python class shardopt.sharded_optim.ShardedOptimizer subclasses this type and
 * shardopt.optim.Optimizer, so isinstance(opt, Optimizer) holds; __init__ of Optimizer is
 * never called (as in torch).  `param_groups`, `state` and `defaults` read through to the
 * inner optimizer, so they are always the same objects (also after load_state_dict, which
 * replaces the inner optimizer's lists).
 */
#include "sharded_optim.h"

typedef struct {
    PyObject_HEAD
    PyObject *named_params; /* the mapping as passed */
    PyObject *optim;        /* inner optimizer */
    PyObject *entries;      /* dict name -> (value, tuple of local tensors) */
    PyObject *group_names;  /* list (per param group) of lists of names */
    PyObject *weakreflist;
} SoShardedOptim;

/* ------------------------------------------------------------------ helpers */

PyObject *so_sharded_tensor_class(so_state *st)
{
    PyObject *cls = PyDict_GetItemString(st->extra, "ShardedTensor");
    if (cls) return cls;
    cls = PyDict_GetItemString(st->extra, "ShardedTensor.py");
    if (cls) return cls;
    PyObject *mod = PyImport_ImportModule("shardopt.sharded_tensor");
    if (mod) {
        cls = PyObject_GetAttrString(mod, "ShardedTensor");
        Py_DECREF(mod);
    }
    if (!cls) {
        PyErr_Clear();
        return NULL;
    }
    if (PyDict_SetItemString(st->extra, "ShardedTensor.py", cls) < 0) PyErr_Clear();
    Py_DECREF(cls);
    return PyDict_GetItemString(st->extra, "ShardedTensor.py");
}

/* 1 ShardedTensor, 0 not, -1 error */
static int is_sharded(so_state *st, PyObject *obj)
{
    PyObject *cls = so_sharded_tensor_class(st);
    if (!cls) return 0;
    return PyObject_IsInstance(obj, cls);
}

static int is_tensor(so_state *st, PyObject *obj)
{
    return PyObject_TypeCheck(obj, st->tensor.tensor_type);
}

/* Tuple of the local tensors of `value` (a Tensor or a ShardedTensor); NULL + TypeError
 * naming `where` otherwise. */
static PyObject *local_tensors(so_state *st, PyObject *value, const char *where, PyObject *key)
{
    int sh = is_sharded(st, value);
    if (sh < 0) return NULL;
    if (!sh) {
        if (is_tensor(st, value)) return PyTuple_Pack(1, value);
        PyErr_Format(PyExc_TypeError,
                     "ShardedOptimizer: %s[%R] must be a Tensor or a ShardedTensor, but got %s",
                     where, key, Py_TYPE(value)->tp_name);
        return NULL;
    }
    PyObject *shards = PyObject_CallMethod(value, "local_shards", NULL), *seq, *res = NULL;
    if (!shards) return NULL;
    seq = PySequence_Fast(shards, "ShardedTensor.local_shards() must return a sequence");
    Py_DECREF(shards);
    if (!seq) return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    res = PyTuple_New(n);
    if (!res) goto error;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *t = PyObject_GetAttrString(PySequence_Fast_GET_ITEM(seq, i), "tensor");
        if (!t) goto error;
        if (!is_tensor(st, t)) {
            PyErr_Format(PyExc_TypeError, "ShardedOptimizer: local shard %zd of %s[%R] holds a %s, "
                         "not a Tensor", i, where, key, Py_TYPE(t)->tp_name);
            Py_DECREF(t);
            goto error;
        }
        PyTuple_SET_ITEM(res, i, t);
    }
    Py_DECREF(seq);
    return res;
error:
    Py_DECREF(seq);
    Py_XDECREF(res);
    return NULL;
}

/* tuple(x) for a sequence of ints (offsets, sizes, Size) */
static PyObject *as_tuple(PyObject *x)
{
    return PySequence_Tuple(x);
}

/* (tuple(offsets), tuple(sizes), str(placement) | None) of a ShardMetadata */
static PyObject *shard_md_key(PyObject *md)
{
    PyObject *off = NULL, *sz = NULL, *pl = NULL, *off_t = NULL, *sz_t = NULL, *pl_s = NULL, *res = NULL;
    if (!(off = PyObject_GetAttrString(md, "shard_offsets"))) goto done;
    if (!(sz = PyObject_GetAttrString(md, "shard_sizes"))) goto done;
    if (!(pl = PyObject_GetAttrString(md, "placement"))) goto done;
    if (!(off_t = as_tuple(off)) || !(sz_t = as_tuple(sz))) goto done;
    if (pl == Py_None) {
        pl_s = Py_NewRef(Py_None);
    } else if (!(pl_s = PyObject_Str(pl))) {
        goto done;
    }
    res = PyTuple_Pack(3, off_t, sz_t, pl_s);
done:
    Py_XDECREF(off); Py_XDECREF(sz); Py_XDECREF(pl);
    Py_XDECREF(off_t); Py_XDECREF(sz_t); Py_XDECREF(pl_s);
    return res;
}

/* tuple(shard_md_key(getattr(x, attr) if attr else x) for x in seq), sorted if `sort` */
static PyObject *md_keys(PyObject *seq_obj, const char *attr, int sort)
{
    PyObject *seq = PySequence_Fast(seq_obj, "expected a sequence of shards"), *list = NULL, *res = NULL;
    if (!seq) return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    if (!(list = PyList_New(n))) goto done;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *x = PySequence_Fast_GET_ITEM(seq, i), *md, *k;
        md = attr ? PyObject_GetAttrString(x, attr) : Py_NewRef(x);
        if (!md) goto done;
        k = shard_md_key(md);
        Py_DECREF(md);
        if (!k) goto done;
        PyList_SET_ITEM(list, i, k);
    }
    if (sort && PyList_Sort(list) < 0) goto done;
    res = PyList_AsTuple(list);
done:
    Py_DECREF(seq);
    Py_XDECREF(list);
    return res;
}

/* d[key] = str(val); 0 / -1 */
static int set_str(PyObject *d, const char *key, const char *val)
{
    PyObject *v = PyUnicode_FromString(val);
    int rc = v ? PyDict_SetItemString(d, key, v) : -1;
    Py_XDECREF(v);
    return rc;
}

/* The layout dict of one parameter (see the file comment). */
static PyObject *layout_of(so_state *st, PyObject *value)
{
    PyObject *d = PyDict_New(), *md = NULL, *tmp = NULL, *size = NULL;
    int sh = is_sharded(st, value);
    if (!d || sh < 0) goto error;
    if (!sh) {
        if (set_str(d, "type", "Tensor") < 0) goto error;
        if (!(tmp = PyObject_GetAttrString(value, "shape"))) goto error;
        if (!(size = as_tuple(tmp)) || PyDict_SetItemString(d, "size", size) < 0) goto error;
        Py_CLEAR(tmp);
        Py_CLEAR(size);
        return d;
    }
    if (set_str(d, "type", "ShardedTensor") < 0) goto error;
    if (!(md = PyObject_CallMethod(value, "metadata", NULL))) goto error;
    if (!(tmp = PyObject_GetAttrString(md, "size"))) goto error;
    if (!(size = as_tuple(tmp)) || PyDict_SetItemString(d, "size", size) < 0) goto error;
    Py_CLEAR(tmp);
    Py_CLEAR(size);
    if (!(tmp = PyObject_GetAttrString(md, "shards_metadata"))) goto error;
    if (!(size = md_keys(tmp, NULL, 1)) || PyDict_SetItemString(d, "shards", size) < 0) goto error;
    Py_CLEAR(tmp);
    Py_CLEAR(size);
    if (!(tmp = PyObject_CallMethod(value, "local_shards", NULL))) goto error;
    if (!(size = md_keys(tmp, "metadata", 0)) || PyDict_SetItemString(d, "local_shards", size) < 0)
        goto error;
    Py_CLEAR(tmp);
    Py_CLEAR(size);
    Py_DECREF(md);
    return d;
error:
    Py_XDECREF(d);
    Py_XDECREF(md);
    Py_XDECREF(tmp);
    Py_XDECREF(size);
    return NULL;
}

/* Appends every (name, value) of `params` (a Mapping, a list of values or of (name, value)
 * pairs, or a single Tensor/ShardedTensor) to `out` as (name, value, local tensors).
 * Unnamed values are named "param_groups.<g>.<i>".  Names must be str and new (not in
 * `taken`, nor repeated).  `where` names the argument in messages. */
static int collect_params(so_state *st, PyObject *params, Py_ssize_t group_idx, PyObject *taken,
                          PyObject *out, const char *where)
{
    PyObject *items = NULL, *seq = NULL;
    int rc = -1, sh;
    PyObject *mapping_abc = NULL, *abc = PyImport_ImportModule("collections.abc");
    if (!abc) return -1;
    mapping_abc = PyObject_GetAttrString(abc, "Mapping");
    Py_DECREF(abc);
    if (!mapping_abc) return -1;
    int is_map = PyObject_IsInstance(params, mapping_abc);
    Py_DECREF(mapping_abc);
    if (is_map < 0) return -1;
    if (is_map) {
        items = PyMapping_Items(params);
    } else if ((sh = is_sharded(st, params)) != 0 || is_tensor(st, params)) {
        if (sh < 0) return -1;
        items = PyList_New(1);
        if (items) PyList_SET_ITEM(items, 0, Py_NewRef(params));
    } else if (PyUnicode_Check(params) || PyBytes_Check(params) || PyAnySet_Check(params)) {
        PyErr_Format(PyExc_TypeError, "ShardedOptimizer: %s must be a mapping of parameter name to "
                     "Tensor or ShardedTensor (or an ordered sequence of them), but got %s",
                     where, Py_TYPE(params)->tp_name);
        return -1;
    } else {
        items = PySequence_List(params);
        if (!items && PyErr_ExceptionMatches(PyExc_TypeError)) {
            PyErr_Clear();
            PyErr_Format(PyExc_TypeError, "ShardedOptimizer: %s must be a mapping of parameter name "
                         "to Tensor or ShardedTensor, but got %s", where, Py_TYPE(params)->tp_name);
        }
    }
    if (!items) return -1;
    seq = PySequence_Fast(items, "items");
    if (!seq) goto done;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *it = PySequence_Fast_GET_ITEM(seq, i), *name, *value, *tensors, *rec;
        if (PyTuple_Check(it) && PyTuple_GET_SIZE(it) == 2) {
            name = Py_NewRef(PyTuple_GET_ITEM(it, 0));
            value = PyTuple_GET_ITEM(it, 1);
            if (!PyUnicode_Check(name)) {
                PyErr_Format(PyExc_TypeError, "ShardedOptimizer: parameter names in %s must be str, "
                             "but got %s (%R)", where, Py_TYPE(name)->tp_name, name);
                Py_DECREF(name);
                goto done;
            }
        } else {
            value = it;
            name = PyUnicode_FromFormat("param_groups.%zd.%zd", group_idx, i);
            if (!name) goto done;
        }
        int dup = PyDict_Contains(taken, name);
        if (dup == 0) {
            /* repeated within this call */
            Py_ssize_t m = PyList_GET_SIZE(out);
            for (Py_ssize_t j = 0; j < m && !dup; j++) {
                dup = PyObject_RichCompareBool(PyTuple_GET_ITEM(PyList_GET_ITEM(out, j), 0), name, Py_EQ);
                if (dup < 0) break;
            }
        }
        if (dup != 0) {
            if (dup > 0)
                PyErr_Format(PyExc_ValueError, "ShardedOptimizer: parameter %R appears more than once "
                             "in the optimizer", name);
            Py_DECREF(name);
            goto done;
        }
        tensors = local_tensors(st, value, where, name);
        if (!tensors) {
            Py_DECREF(name);
            goto done;
        }
        rec = PyTuple_Pack(3, name, value, tensors);
        Py_DECREF(name);
        Py_DECREF(tensors);
        if (!rec || PyList_Append(out, rec) < 0) {
            Py_XDECREF(rec);
            goto done;
        }
        Py_DECREF(rec);
    }
    rc = 0;
done:
    Py_XDECREF(items);
    Py_XDECREF(seq);
    return rc;
}

/* flat list of the local tensors of the records in `recs` */
static PyObject *flat_tensors(PyObject *recs)
{
    PyObject *flat = PyList_New(0);
    if (!flat) return NULL;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(recs); i++) {
        PyObject *ts = PyTuple_GET_ITEM(PyList_GET_ITEM(recs, i), 2);
        for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(ts); k++)
            if (PyList_Append(flat, PyTuple_GET_ITEM(ts, k)) < 0) {
                Py_DECREF(flat);
                return NULL;
            }
    }
    return flat;
}

/* records -> self->entries / a new group_names entry */
static int remember(SoShardedOptim *self, PyObject *recs)
{
    PyObject *names = PyList_New(0);
    if (!names) return -1;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(recs); i++) {
        PyObject *r = PyList_GET_ITEM(recs, i);
        PyObject *entry = PyTuple_Pack(2, PyTuple_GET_ITEM(r, 1), PyTuple_GET_ITEM(r, 2));
        if (!entry || PyDict_SetItem(self->entries, PyTuple_GET_ITEM(r, 0), entry) < 0 ||
            PyList_Append(names, PyTuple_GET_ITEM(r, 0)) < 0) {
            Py_XDECREF(entry);
            Py_DECREF(names);
            return -1;
        }
        Py_DECREF(entry);
    }
    int rc = PyList_Append(self->group_names, names);
    Py_DECREF(names);
    return rc;
}

/* ------------------------------------------------------------------ type */

static int so_init(SoShardedOptim *self, PyObject *args, PyObject *kwargs)
{
    so_state *st = so_state_from_type(Py_TYPE(self));
    PyObject *named_params, *optimizer_class, *rest = NULL, *recs = NULL, *flat = NULL, *call_args = NULL,
             *optim = NULL;
    int rc = -1;
    if (!st) return -1;
    if (PyTuple_GET_SIZE(args) < 2) {
        PyErr_Format(PyExc_TypeError, "ShardedOptimizer.__init__() missing required positional "
                     "argument%s: %s", PyTuple_GET_SIZE(args) == 0 ? "s" : "",
                     PyTuple_GET_SIZE(args) == 0 ? "'named_params' and 'optimizer_class'"
                                                  : "'optimizer_class'");
        return -1;
    }
    named_params = PyTuple_GET_ITEM(args, 0);
    optimizer_class = PyTuple_GET_ITEM(args, 1);
    if (!PyCallable_Check(optimizer_class)) {
        PyErr_Format(PyExc_TypeError, "ShardedOptimizer: optimizer_class must be callable (an "
                     "optimizer class such as shardopt.optim.SGD), but got %s",
                     Py_TYPE(optimizer_class)->tp_name);
        return -1;
    }
    {   /* named_params must be a Mapping (torch's annotation; checked here) */
        PyObject *abc = PyImport_ImportModule("collections.abc"), *mapping;
        if (!abc) return -1;
        mapping = PyObject_GetAttrString(abc, "Mapping");
        Py_DECREF(abc);
        if (!mapping) return -1;
        int ok = PyObject_IsInstance(named_params, mapping);
        Py_DECREF(mapping);
        if (ok < 0) return -1;
        if (!ok) {
            PyErr_Format(PyExc_TypeError, "ShardedOptimizer: named_params must be a mapping of "
                         "parameter name to Tensor or ShardedTensor (e.g. "
                         "dict(module.named_parameters())), but got %s", Py_TYPE(named_params)->tp_name);
            return -1;
        }
    }
    PyObject *taken = PyDict_New();
    if (!taken) return -1;
    if (!(recs = PyList_New(0))) goto done;
    if (collect_params(st, named_params, 0, taken, recs, "named_params") < 0) goto done;
    if (!(flat = flat_tensors(recs))) goto done;
    if (!(rest = PyTuple_GetSlice(args, 2, PyTuple_GET_SIZE(args)))) goto done;
    if (!(call_args = PyTuple_New(PyTuple_GET_SIZE(rest) + 1))) goto done;
    PyTuple_SET_ITEM(call_args, 0, Py_NewRef(flat));
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(rest); i++)
        PyTuple_SET_ITEM(call_args, i + 1, Py_NewRef(PyTuple_GET_ITEM(rest, i)));
    if (!(optim = PyObject_Call(optimizer_class, call_args, kwargs))) goto done;

    Py_XSETREF(self->named_params, Py_NewRef(named_params));
    Py_XSETREF(self->optim, Py_NewRef(optim));
    Py_XSETREF(self->entries, PyDict_New());
    Py_XSETREF(self->group_names, PyList_New(0));
    if (!self->entries || !self->group_names) goto done;
    if (remember(self, recs) < 0) goto done;
    rc = 0;
done:
    Py_DECREF(taken);
    Py_XDECREF(recs);
    Py_XDECREF(flat);
    Py_XDECREF(rest);
    Py_XDECREF(call_args);
    Py_XDECREF(optim);
    return rc;
}

static int check_ready(SoShardedOptim *self)
{
    if (!self->optim) {
        PyErr_SetString(PyExc_RuntimeError, "ShardedOptimizer is not initialized (__init__ was not called)");
        return -1;
    }
    return 0;
}

static PyObject *so_zero_grad(SoShardedOptim *self, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"set_to_none", NULL};
    int set_to_none = 1;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|p:zero_grad", kwlist, &set_to_none)) return NULL;
    if (check_ready(self) < 0) return NULL;
    return PyObject_CallMethod(self->optim, "zero_grad", "O", set_to_none ? Py_True : Py_False);
}

static PyObject *so_step(SoShardedOptim *self, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"closure", NULL};
    PyObject *closure = Py_None, *res;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|O:step", kwlist, &closure)) return NULL;
    if (check_ready(self) < 0) return NULL;
    res = PyObject_CallMethod(self->optim, "step", "O", closure);
    if (!res) return NULL;
    Py_DECREF(res); /* torch's ShardedOptimizer.step drops the loss */
    Py_RETURN_NONE;
}

/* state_dict: see the file comment */
static PyObject *so_state_dict(SoShardedOptim *self, PyObject *Py_UNUSED(ignored))
{
    so_state *st = so_state_from_type(Py_TYPE(self));
    PyObject *inner_state = NULL, *groups = NULL, *out = NULL, *state = NULL, *pgs = NULL, *layouts = NULL;
    if (!st || check_ready(self) < 0) return NULL;
    if (!(inner_state = PyObject_GetAttrString(self->optim, "state"))) goto error;
    if (!(groups = PyObject_GetAttrString(self->optim, "param_groups"))) goto error;
    if (!PyList_Check(groups) || PyList_GET_SIZE(groups) != PyList_GET_SIZE(self->group_names)) {
        PyErr_SetString(PyExc_RuntimeError, "ShardedOptimizer.state_dict: the inner optimizer's "
                        "param_groups were changed behind the ShardedOptimizer's back; add groups "
                        "with ShardedOptimizer.add_param_group");
        goto error;
    }
    if (!(state = PyDict_New()) || !(pgs = PyList_New(0)) || !(layouts = PyDict_New())) goto error;
    for (Py_ssize_t g = 0; g < PyList_GET_SIZE(groups); g++) {
        PyObject *group = PyList_GET_ITEM(groups, g), *names = PyList_GET_ITEM(self->group_names, g);
        PyObject *packed = NULL, *key, *val;
        Py_ssize_t pos = 0;
        if (!PyDict_Check(group)) {
            PyErr_SetString(PyExc_TypeError, "ShardedOptimizer.state_dict: a param group is not a dict");
            goto error;
        }
        if (!(packed = PyDict_New())) goto error;
        while (PyDict_Next(group, &pos, &key, &val)) {
            int is_params = PyUnicode_Check(key) && PyUnicode_CompareWithASCIIString(key, "params") == 0;
            if (!is_params && PyDict_SetItem(packed, key, val) < 0) {
                Py_DECREF(packed);
                goto error;
            }
        }
        PyObject *names_copy = PyList_GetSlice(names, 0, PyList_GET_SIZE(names));
        if (!names_copy || PyDict_SetItemString(packed, "params", names_copy) < 0 ||
            PyList_Append(pgs, packed) < 0) {
            Py_XDECREF(names_copy);
            Py_DECREF(packed);
            goto error;
        }
        Py_DECREF(names_copy);
        Py_DECREF(packed);
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(names); i++) {
            PyObject *name = PyList_GET_ITEM(names, i);
            PyObject *entry = PyDict_GetItemWithError(self->entries, name), *lay, *item = NULL;
            if (!entry) goto error_set;
            PyObject *value = PyTuple_GET_ITEM(entry, 0), *ts = PyTuple_GET_ITEM(entry, 1);
            int sh = is_sharded(st, value), any = 0;
            if (sh < 0) goto error;
            if (!(lay = layout_of(st, value))) goto error;
            int rc = PyDict_SetItem(layouts, name, lay);
            Py_DECREF(lay);
            if (rc < 0) goto error;
            if (!sh) {
                /* ask first: indexing the defaultdict would create an entry */
                int has = PySequence_Contains(inner_state, PyTuple_GET_ITEM(ts, 0));
                if (has < 0) goto error;
                if (!has) continue;
                PyObject *s = PyObject_GetItem(inner_state, PyTuple_GET_ITEM(ts, 0));
                if (!s) goto error;
                /* torch only lists params that have state */
                if (PyObject_Length(s) > 0 && PyDict_SetItem(state, name, s) < 0) {
                    Py_DECREF(s);
                    goto error;
                }
                Py_DECREF(s);
                continue;
            }
            if (!(item = PyList_New(PyTuple_GET_SIZE(ts)))) goto error;
            for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(ts); k++) {
                PyObject *t = PyTuple_GET_ITEM(ts, k), *s;
                int has = PySequence_Contains(inner_state, t);
                if (has < 0) {
                    Py_DECREF(item);
                    goto error;
                }
                s = has ? PyObject_GetItem(inner_state, t) : PyDict_New();
                if (!s) {
                    Py_DECREF(item);
                    goto error;
                }
                if (has && PyObject_Length(s) > 0) any = 1;
                PyList_SET_ITEM(item, k, s);
            }
            if (any && PyDict_SetItem(state, name, item) < 0) {
                Py_DECREF(item);
                goto error;
            }
            Py_DECREF(item);
        }
    }
    out = Py_BuildValue("{sOsOsO}", "state", state, "param_groups", pgs, "layouts", layouts);
    Py_DECREF(inner_state);
    Py_DECREF(groups);
    Py_DECREF(state);
    Py_DECREF(pgs);
    Py_DECREF(layouts);
    return out;
error_set:
    if (!PyErr_Occurred())
        PyErr_SetString(PyExc_RuntimeError, "ShardedOptimizer: internal name table is inconsistent");
error:
    Py_XDECREF(inner_state);
    Py_XDECREF(groups);
    Py_XDECREF(state);
    Py_XDECREF(pgs);
    Py_XDECREF(layouts);
    return NULL;
}

/* sd[key] with a ValueError naming a missing key */
static PyObject *sd_get(PyObject *sd, const char *key)
{
    PyObject *v = PyMapping_GetItemString(sd, key);
    if (!v && PyErr_ExceptionMatches(PyExc_KeyError)) {
        PyErr_Clear();
        PyErr_Format(PyExc_ValueError, "ShardedOptimizer.load_state_dict: the state dict has no "
                     "'%s' entry (was it made by ShardedOptimizer.state_dict()?)", key);
    }
    return v;
}

static PyObject *so_load_state_dict(SoShardedOptim *self, PyObject *sd)
{
    so_state *st = so_state_from_type(Py_TYPE(self));
    PyObject *state = NULL, *pgs = NULL, *layouts = NULL, *inner_state = NULL, *inner_groups = NULL,
             *inner_sd = NULL, *res = NULL, *cur_groups = NULL;
    if (!st || check_ready(self) < 0) return NULL;
    if (!PyDict_Check(sd)) {
        PyErr_Format(PyExc_TypeError, "ShardedOptimizer.load_state_dict: state_dict must be a dict, "
                     "but got %s", Py_TYPE(sd)->tp_name);
        return NULL;
    }
    if (!(state = sd_get(sd, "state")) || !(pgs = sd_get(sd, "param_groups")) ||
        !(layouts = sd_get(sd, "layouts")))
        goto done;
    if (!PyDict_Check(state) || !PyList_Check(pgs) || !PyDict_Check(layouts)) {
        PyErr_SetString(PyExc_TypeError, "ShardedOptimizer.load_state_dict: expected 'state' and "
                        "'layouts' to be dicts and 'param_groups' a list");
        goto done;
    }
    Py_ssize_t ng = PyList_GET_SIZE(self->group_names);
    if (PyList_GET_SIZE(pgs) != ng) {
        PyErr_Format(PyExc_ValueError, "ShardedOptimizer.load_state_dict: loaded state dict has %zd "
                     "parameter groups, this optimizer has %zd", PyList_GET_SIZE(pgs), ng);
        goto done;
    }
    if (!(cur_groups = PyObject_GetAttrString(self->optim, "param_groups"))) goto done;
    if (!PyList_Check(cur_groups) || PyList_GET_SIZE(cur_groups) != ng) {
        PyErr_SetString(PyExc_RuntimeError, "ShardedOptimizer.load_state_dict: the inner optimizer's "
                        "param_groups were changed behind the ShardedOptimizer's back");
        goto done;
    }
    /* 1. every check before any state changes: names per group, then layouts */
    for (Py_ssize_t g = 0; g < ng; g++) {
        PyObject *names = PyList_GET_ITEM(self->group_names, g), *sg = PyList_GET_ITEM(pgs, g), *snames;
        if (!PyDict_Check(sg)) {
            PyErr_Format(PyExc_TypeError, "ShardedOptimizer.load_state_dict: param group %zd is not a dict", g);
            goto done;
        }
        snames = PyDict_GetItemString(sg, "params");
        PyObject *a = snames ? PySet_New(snames) : NULL, *b = a ? PySet_New(names) : NULL;
        if (!a || !b) {
            if (!snames)
                PyErr_Format(PyExc_ValueError, "ShardedOptimizer.load_state_dict: param group %zd has no 'params'", g);
            Py_XDECREF(a);
            goto done;
        }
        int same = PyObject_RichCompareBool(a, b, Py_EQ);
        if (same == 0) {
            PyObject *missing = PyNumber_Subtract(b, a), *extra = PyNumber_Subtract(a, b);
            if (missing && extra) {
                PyObject *ms = PySequence_List(missing), *es = PySequence_List(extra);
                if (ms && es && PyList_Sort(ms) == 0 && PyList_Sort(es) == 0)
                    PyErr_Format(PyExc_ValueError, "ShardedOptimizer.load_state_dict: parameter group %zd "
                                 "does not match: missing from the state dict %R, not in this optimizer %R",
                                 g, ms, es);
                Py_XDECREF(ms);
                Py_XDECREF(es);
            }
            Py_XDECREF(missing);
            Py_XDECREF(extra);
        }
        Py_DECREF(a);
        Py_DECREF(b);
        if (same != 1) goto done;
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(names); i++) {
            PyObject *name = PyList_GET_ITEM(names, i), *entry = PyDict_GetItemWithError(self->entries, name);
            if (!entry) goto done;
            PyObject *saved = PyDict_GetItemWithError(layouts, name), *cur;
            if (!saved) {
                if (!PyErr_Occurred())
                    PyErr_Format(PyExc_ValueError, "ShardedOptimizer.load_state_dict: no layout saved "
                                 "for parameter %R", name);
                goto done;
            }
            if (!(cur = layout_of(st, PyTuple_GET_ITEM(entry, 0)))) goto done;
            int eq = PyObject_RichCompareBool(saved, cur, Py_EQ);
            if (eq == 0)
                PyErr_Format(PyExc_ValueError, "ShardedOptimizer.load_state_dict: parameter %R is "
                             "laid out differently in the state dict than in this optimizer "
                             "(refusing to mix shards): saved layout %R, current layout %R",
                             name, saved, cur);
            Py_DECREF(cur);
            if (eq != 1) goto done;
        }
    }
    {   /* saved state for a name this optimizer does not have */
        PyObject *key, *val;
        Py_ssize_t pos = 0;
        while (PyDict_Next(state, &pos, &key, &val)) {
            int has = PyDict_Contains(self->entries, key);
            if (has < 0) goto done;
            if (!has) {
                PyErr_Format(PyExc_ValueError, "ShardedOptimizer.load_state_dict: the state dict has "
                             "state for parameter %R, which is not in this optimizer", key);
                goto done;
            }
        }
    }
    /* 2. the positional state dict of the inner optimizer: params are numbered across its
     *    groups in its order (the flat local tensors), as torch's Optimizer.state_dict does */
    if (!(inner_state = PyDict_New()) || !(inner_groups = PyList_New(0))) goto done;
    Py_ssize_t idx = 0;
    for (Py_ssize_t g = 0; g < ng; g++) {
        PyObject *names = PyList_GET_ITEM(self->group_names, g), *sg = PyList_GET_ITEM(pgs, g);
        PyObject *grp = PyDict_Copy(sg), *ids = PyList_New(0);
        if (!grp || !ids || PyDict_SetItemString(grp, "params", ids) < 0 ||
            PyList_Append(inner_groups, grp) < 0) {
            Py_XDECREF(grp);
            Py_XDECREF(ids);
            goto done;
        }
        Py_DECREF(grp);
        Py_DECREF(ids);
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(names); i++) {
            PyObject *name = PyList_GET_ITEM(names, i), *entry = PyDict_GetItem(self->entries, name);
            PyObject *ts = PyTuple_GET_ITEM(entry, 1), *s = PyDict_GetItemWithError(state, name);
            if (!s && PyErr_Occurred()) goto done;
            int sh = is_sharded(st, PyTuple_GET_ITEM(entry, 0));
            if (sh < 0) goto done;
            if (s && sh && (!PyList_Check(s) || PyList_GET_SIZE(s) != PyTuple_GET_SIZE(ts))) {
                PyErr_Format(PyExc_ValueError, "ShardedOptimizer.load_state_dict: the state of sharded "
                             "parameter %R must be a list with one dict per local shard (%zd), got %R",
                             name, PyTuple_GET_SIZE(ts), s);
                goto done;
            }
            if (s && !sh && !PyDict_Check(s)) {
                PyErr_Format(PyExc_ValueError, "ShardedOptimizer.load_state_dict: the state of parameter "
                             "%R must be a dict, got %s", name, Py_TYPE(s)->tp_name);
                goto done;
            }
            for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(ts); k++, idx++) {
                PyObject *key = PyLong_FromSsize_t(idx);
                if (!key || PyList_Append(ids, key) < 0) {
                    Py_XDECREF(key);
                    goto done;
                }
                if (s) {
                    PyObject *sk = sh ? PyList_GET_ITEM(s, k) : s;
                    if (!PyDict_Check(sk)) {
                        PyErr_Format(PyExc_ValueError, "ShardedOptimizer.load_state_dict: the state of "
                                     "local shard %zd of %R must be a dict", k, name);
                        Py_DECREF(key);
                        goto done;
                    }
                    if (PyDict_GET_SIZE(sk) > 0 && PyDict_SetItem(inner_state, key, sk) < 0) {
                        Py_DECREF(key);
                        goto done;
                    }
                }
                Py_DECREF(key);
            }
        }
    }
    if (!(inner_sd = Py_BuildValue("{sOsO}", "state", inner_state, "param_groups", inner_groups))) goto done;
    /* 3. the inner optimizer casts every state tensor to its param's device and dtype */
    res = PyObject_CallMethod(self->optim, "load_state_dict", "O", inner_sd);
    if (res) {
        Py_DECREF(res);
        res = Py_NewRef(Py_None);
    }
done:
    Py_XDECREF(state);
    Py_XDECREF(pgs);
    Py_XDECREF(layouts);
    Py_XDECREF(inner_state);
    Py_XDECREF(inner_groups);
    Py_XDECREF(inner_sd);
    Py_XDECREF(cur_groups);
    return res;
}

static PyObject *so_add_param_group(SoShardedOptim *self, PyObject *group)
{
    so_state *st = so_state_from_type(Py_TYPE(self));
    PyObject *recs = NULL, *flat = NULL, *inner = NULL, *params, *res = NULL;
    if (!st || check_ready(self) < 0) return NULL;
    if (!PyDict_Check(group)) {
        PyErr_Format(PyExc_TypeError, "param_group must be a dict, but got %s", Py_TYPE(group)->tp_name);
        return NULL;
    }
    params = PyDict_GetItemString(group, "params");
    if (!params) {
        PyErr_SetString(PyExc_ValueError, "ShardedOptimizer.add_param_group: the param group has no "
                        "'params' entry");
        return NULL;
    }
    if (!(recs = PyList_New(0))) return NULL;
    if (collect_params(st, params, PyList_GET_SIZE(self->group_names), self->entries, recs,
                       "param_group['params']") < 0)
        goto done;
    if (PyList_GET_SIZE(recs) == 0) {
        PyErr_SetString(PyExc_ValueError, "ShardedOptimizer.add_param_group: the param group has no parameters");
        goto done;
    }
    if (!(flat = flat_tensors(recs)) || !(inner = PyDict_Copy(group)) ||
        PyDict_SetItemString(inner, "params", flat) < 0)
        goto done;
    /* the inner optimizer validates (duplicates across groups, hyper-parameters) first */
    if (!(res = PyObject_CallMethod(self->optim, "add_param_group", "O", inner))) goto done;
    Py_DECREF(res);
    res = NULL;
    if (remember(self, recs) < 0) goto done;
    res = Py_NewRef(Py_None);
done:
    Py_XDECREF(recs);
    Py_XDECREF(flat);
    Py_XDECREF(inner);
    return res;
}

/* param_groups / state / defaults: the inner optimizer's own objects */
static PyObject *get_inner(SoShardedOptim *self, void *attr)
{
    if (check_ready(self) < 0) return NULL;
    return PyObject_GetAttrString(self->optim, (const char *)attr);
}

static int set_inner(SoShardedOptim *self, PyObject *value, void *attr)
{
    if (check_ready(self) < 0) return -1;
    return PyObject_SetAttrString(self->optim, (const char *)attr, value);
}

static PyObject *get_param_names(SoShardedOptim *self, void *Py_UNUSED(c))
{
    /* every parameter name, in optimizer order (named_params plus add_param_group's) */
    PyObject *out = PyList_New(0);
    if (!out || !self->group_names) return out;
    for (Py_ssize_t g = 0; g < PyList_GET_SIZE(self->group_names); g++) {
        PyObject *names = PyList_GET_ITEM(self->group_names, g);
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(names); i++)
            if (PyList_Append(out, PyList_GET_ITEM(names, i)) < 0) {
                Py_DECREF(out);
                return NULL;
            }
    }
    return out;
}

static int so_traverse(SoShardedOptim *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->named_params);
    Py_VISIT(self->optim);
    Py_VISIT(self->entries);
    Py_VISIT(self->group_names);
    return 0;
}

static int so_clear(SoShardedOptim *self)
{
    Py_CLEAR(self->named_params);
    Py_CLEAR(self->optim);
    Py_CLEAR(self->entries);
    Py_CLEAR(self->group_names);
    return 0;
}

static void so_dealloc(SoShardedOptim *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    if (self->weakreflist) PyObject_ClearWeakRefs((PyObject *)self);
    so_clear(self);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

static PyMethodDef so_methods[] = {
    {"zero_grad", (PyCFunction)(void (*)(void))so_zero_grad, METH_VARARGS | METH_KEYWORDS,
     "zero_grad(set_to_none=True): reset the gradients of every local tensor (delegates)."},
    {"step", (PyCFunction)(void (*)(void))so_step, METH_VARARGS | METH_KEYWORDS,
     "step(closure=None): one step of the inner optimizer over the local shards; returns None."},
    {"state_dict", (PyCFunction)so_state_dict, METH_NOARGS,
     "This rank's optimizer state keyed by parameter name, with each parameter's layout."},
    {"load_state_dict", (PyCFunction)so_load_state_dict, METH_O,
     "Load a state dict from state_dict(); raises ValueError if any parameter's layout differs."},
    {"add_param_group", (PyCFunction)so_add_param_group, METH_O,
     "Add a param group whose 'params' is a mapping name -> Tensor/ShardedTensor or a list."},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef so_members[] = {
    {"named_params", T_OBJECT, offsetof(SoShardedOptim, named_params), 0,
     "the mapping of parameter name to Tensor/ShardedTensor, as passed"},
    {"_optim", T_OBJECT, offsetof(SoShardedOptim, optim), READONLY, "the inner optimizer"},
    {"__weaklistoffset__", T_PYSSIZET, offsetof(SoShardedOptim, weakreflist), READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyGetSetDef so_getset[] = {
    {"param_groups", (getter)get_inner, (setter)set_inner, "the inner optimizer's param_groups",
     "param_groups"},
    {"state", (getter)get_inner, (setter)set_inner, "the inner optimizer's state", "state"},
    {"defaults", (getter)get_inner, (setter)set_inner, "the inner optimizer's defaults", "defaults"},
    {"param_names", (getter)get_param_names, NULL, "every parameter name, in optimizer order", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot so_slots[] = {
    {Py_tp_doc, "ShardedOptimizerBase(named_params, optimizer_class, *args, **kwargs): the C core "
                "of shardopt.sharded_optim.ShardedOptimizer."},
    {Py_tp_init, so_init},
    {Py_tp_new, PyType_GenericNew},
    {Py_tp_traverse, so_traverse},
    {Py_tp_clear, so_clear},
    {Py_tp_dealloc, so_dealloc},
    {Py_tp_methods, so_methods},
    {Py_tp_members, so_members},
    {Py_tp_getset, so_getset},
    {0, NULL},
};

static PyType_Spec so_spec = {
    .name = "shardopt._C.ShardedOptimizerBase",
    .basicsize = sizeof(SoShardedOptim),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .slots = so_slots,
};

int so_register_sharded_optim(PyObject *m, so_state *st)
{
    if (!so_shard_add_type(m, st, &so_spec, "ShardedOptimizerBase")) return -1;
    return so_register_named_params(m, st);
}
