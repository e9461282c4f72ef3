/* sharded_optim.c — ShardedOptimizerBase: the data a ShardedOptimizer owns.
 *
 * shardopt.sharded_optim.ShardedOptimizer (Python, sharded_optim/api.py) subclasses this
 * type and shardopt.optim.Optimizer and holds all of the behaviour (construction, step,
 * state_dict, load_state_dict, add_param_group): each of those is a handful of calls into
 * the inner optimizer, whose fused C kernels are the hot loop, so C would only be calling
 * back into Python.  What is C here is the object's layout: four typed slots, visible to
 * the garbage collector, and a weakref slot.
 *
 *   named_params   the mapping name -> Tensor | ShardedTensor, as passed
 *   _optim         the inner optimizer (over the flat list of local tensors)
 *   _entries       dict name -> (value, tuple of local tensors)
 *   _group_names   list (one per param group) of lists of names
 */
#include "sharded_optim.h"

typedef struct {
    PyObject_HEAD
    PyObject *named_params;
    PyObject *optim;
    PyObject *entries;
    PyObject *group_names;
    PyObject *weakreflist;
} SoShardedOptim;

static PyObject *so_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    SoShardedOptim *self;
    (void)args;
    (void)kwargs;
    self = (SoShardedOptim *)type->tp_alloc(type, 0);
    if (!self) return NULL;
    /* None until __init__ runs (members read None, not AttributeError) */
    self->named_params = Py_NewRef(Py_None);
    self->optim = Py_NewRef(Py_None);
    self->entries = Py_NewRef(Py_None);
    self->group_names = Py_NewRef(Py_None);
    return (PyObject *)self;
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

static PyMemberDef so_members[] = {
    {"named_params", T_OBJECT, offsetof(SoShardedOptim, named_params), 0,
     "the mapping of parameter name to Tensor/ShardedTensor, as passed"},
    {"_optim", T_OBJECT, offsetof(SoShardedOptim, optim), 0, "the inner optimizer"},
    {"_entries", T_OBJECT, offsetof(SoShardedOptim, entries), 0,
     "dict name -> (value, tuple of local tensors)"},
    {"_group_names", T_OBJECT, offsetof(SoShardedOptim, group_names), 0,
     "list (per param group) of lists of parameter names"},
    {"__weaklistoffset__", T_PYSSIZET, offsetof(SoShardedOptim, weakreflist), READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyType_Slot so_slots[] = {
    {Py_tp_doc, "ShardedOptimizerBase: the data of shardopt.sharded_optim.ShardedOptimizer "
                "(named_params, the inner optimizer, the parameter-name tables)."},
    {Py_tp_new, so_new},
    {Py_tp_traverse, so_traverse},
    {Py_tp_clear, so_clear},
    {Py_tp_dealloc, so_dealloc},
    {Py_tp_members, so_members},
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
    PyTypeObject *tp = (PyTypeObject *)PyType_FromModuleAndSpec(m, &so_spec, NULL);
    int rc;
    if (!tp) return -1;
    rc = PyModule_AddType(m, tp);
    Py_DECREF(tp);
    (void)st;
    return rc;
}
