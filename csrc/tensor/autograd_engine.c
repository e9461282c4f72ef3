/* autograd_engine.c — the backward pass's graph bookkeeping (_C._run_graph).
 *
 * shardopt's autograd nodes are Python objects (shardopt/autograd/graph.py); running them
 * from a Python loop cost ~5 us per node in dictionaries, tuples and generator frames, a
 * third of a small model's training step.  This file runs the same loop in C: one pass
 * counts, for every node reachable from the roots, how many edges point at it; each node
 * output gets one gradient buffer (a Python list, one slot per output) into which every
 * contribution is summed with `+`; a node runs once all its contributions arrived.
 *
 * What a node does stays Python and is only called from here: `node._apply(buf)` (the
 * backward formula), `node._release()` (free saved tensors unless retain_graph),
 * `retain_fn(node, buf)` for retain_grad, and AccumulateGrad's own _apply (the adoption
 * rule counts references: the buffer list is the only one this file keeps to a gradient
 * while a node runs, exactly as the Python loop it replaces).  No shardopt class is known
 * by name: the AccumulateGrad type and the helpers are arguments.  Protocol (duck-typed):
 * node.next_functions is a sequence of (node or None, output_nr) pairs, node._num_outputs
 * an int, node._retain falsy when nothing retains a gradient. */
#include "../core/errors.h"
#include "../module.h"
#include "tensor.h"

#include <stdint.h>
#include <stdlib.h>

typedef struct {
    PyObject *node;  /* strong reference for the pass */
    PyObject *buf;   /* list of gradients (None = no contribution yet) or NULL */
    Py_ssize_t deps; /* edges from not-yet-run nodes */
} gnode;

typedef struct {
    gnode *ent;
    Py_ssize_t n, cap;
    Py_ssize_t *slot; /* open addressing on the node pointer: entry index + 1, 0 = empty */
    size_t mask;
    Py_ssize_t *stack; /* traversal, then the ready stack (LIFO, as the Python loop) */
    Py_ssize_t sn, scap;
    /* attribute names, created per pass (no process-global objects) */
    PyObject *s_next, *s_nout, *s_apply, *s_release, *s_retain;
} graph;

static size_t hash_ptr(const void *p)
{
    uint64_t x = (uint64_t)(uintptr_t)p;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return (size_t)x;
}

static Py_ssize_t g_find(const graph *g, PyObject *node)
{
    size_t i = hash_ptr(node) & g->mask;
    for (;;) {
        Py_ssize_t s = g->slot[i];
        if (s == 0) return -1;
        if (g->ent[s - 1].node == node) return s - 1;
        i = (i + 1) & g->mask;
    }
}

static int g_rehash(graph *g, size_t nslots)
{
    Py_ssize_t *slot = PyMem_Calloc(nslots, sizeof *slot);
    if (!slot) return (PyErr_NoMemory(), -1);
    PyMem_Free(g->slot);
    g->slot = slot;
    g->mask = nslots - 1;
    for (Py_ssize_t k = 0; k < g->n; k++) {
        size_t i = hash_ptr(g->ent[k].node) & g->mask;
        while (slot[i]) i = (i + 1) & g->mask;
        slot[i] = k + 1;
    }
    return 0;
}

/* A new entry for `node` (not present); returns its index, -1 on failure. */
static Py_ssize_t g_insert(graph *g, PyObject *node)
{
    if (g->n == g->cap) {
        Py_ssize_t cap = g->cap ? 2 * g->cap : 32;
        gnode *e = PyMem_Realloc(g->ent, (size_t)cap * sizeof *e);
        if (!e) return (PyErr_NoMemory(), -1);
        g->ent = e;
        g->cap = cap;
    }
    if ((size_t)(g->n + 1) * 2 > g->mask + 1 && g_rehash(g, (g->mask + 1) * 2) < 0) return -1;
    Py_ssize_t k = g->n++;
    g->ent[k].node = Py_NewRef(node);
    g->ent[k].buf = NULL;
    g->ent[k].deps = 0;
    size_t i = hash_ptr(node) & g->mask;
    while (g->slot[i]) i = (i + 1) & g->mask;
    g->slot[i] = k + 1;
    return k;
}

static int g_push(graph *g, Py_ssize_t k)
{
    if (g->sn == g->scap) {
        Py_ssize_t cap = g->scap ? 2 * g->scap : 32;
        Py_ssize_t *s = PyMem_Realloc(g->stack, (size_t)cap * sizeof *s);
        if (!s) return (PyErr_NoMemory(), -1);
        g->stack = s;
        g->scap = cap;
    }
    g->stack[g->sn++] = k;
    return 0;
}

static void g_free(graph *g)
{
    for (Py_ssize_t k = 0; k < g->n; k++) {
        Py_XDECREF(g->ent[k].buf);
        Py_DECREF(g->ent[k].node);
    }
    PyMem_Free(g->ent);
    PyMem_Free(g->slot);
    PyMem_Free(g->stack);
    Py_XDECREF(g->s_next);
    Py_XDECREF(g->s_nout);
    Py_XDECREF(g->s_apply);
    Py_XDECREF(g->s_release);
    Py_XDECREF(g->s_retain);
}

/* [None] * node._num_outputs */
static PyObject *new_buf(graph *g, PyObject *node)
{
    PyObject *n_obj = PyObject_GetAttr(node, g->s_nout);
    if (!n_obj) return NULL;
    Py_ssize_t n = PyLong_AsSsize_t(n_obj);
    Py_DECREF(n_obj);
    if (n == -1 && PyErr_Occurred()) return NULL;
    if (n < 0) n = 0;
    PyObject *buf = PyList_New(n);
    if (!buf) return NULL;
    for (Py_ssize_t i = 0; i < n; i++) PyList_SET_ITEM(buf, i, Py_NewRef(Py_None));
    return buf;
}

/* node.next_functions as a fast sequence (new reference). */
static PyObject *edges_of(graph *g, PyObject *node)
{
    PyObject *e = PyObject_GetAttr(node, g->s_next);
    if (!e) return NULL;
    PyObject *seq = PySequence_Fast(e, "next_functions must be a sequence of (node, nr) pairs");
    Py_DECREF(e);
    return seq;
}

/* One edge: borrowed *child (Py_None for no edge) and its output number. */
static int unpack_edge(PyObject *item, PyObject **child, Py_ssize_t *nr)
{
    if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 2)
        return so_fail(PyExc_TypeError, "next_functions entries must be (node, output_nr) "
                                        "pairs, got %.100s", Py_TYPE(item)->tp_name);
    *child = PyTuple_GET_ITEM(item, 0);
    if (*child == Py_None) return 0;
    *nr = PyLong_AsSsize_t(PyTuple_GET_ITEM(item, 1));
    if (*nr == -1 && PyErr_Occurred()) return -1;
    return 0;
}

/* buf[nr] = grad, or buf[nr] + grad when a contribution is already there. */
static int accumulate_into(PyObject *buf, Py_ssize_t nr, PyObject *grad)
{
    if (nr < 0 || nr >= PyList_GET_SIZE(buf))
        return so_fail(PyExc_IndexError, "gradient for output %zd of a node with %zd outputs",
                       nr, PyList_GET_SIZE(buf));
    PyObject *prev = PyList_GET_ITEM(buf, nr);
    PyObject *sum = prev == Py_None ? Py_NewRef(grad) : PyNumber_Add(prev, grad);
    if (!sum) return -1;
    PyList_SET_ITEM(buf, nr, sum);
    Py_DECREF(prev);
    return 0;
}

/* autograd.grad / backward(inputs=): capture[(id(node), nr)] lists the result positions
 * that receive buf[nr].  Returns 1 when the node is an AccumulateGrad that must not run
 * (its leaf is not one of the inputs, or nothing accumulates), 0 to run it, -1 on error. */
static int capture_grads(PyObject *node, PyObject *buf, PyObject *capture, PyObject *captured,
                         int is_acc, int accumulate)
{
    int skip = 0, rc = -1;
    PyObject *id = PyLong_FromVoidPtr(node), *key = NULL;
    if (!id) return -1;
    for (Py_ssize_t nr = 0; nr < PyList_GET_SIZE(buf); nr++) {
        key = Py_BuildValue("(On)", id, nr);
        if (!key) goto done;
        PyObject *pos = PyDict_GetItemWithError(capture, key); /* borrowed */
        Py_CLEAR(key);
        if (!pos) {
            if (PyErr_Occurred()) goto done;
            continue;
        }
        PyObject *seq = PySequence_Fast(pos, "capture positions must be a sequence");
        if (!seq) goto done;
        for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(seq); i++) {
            Py_ssize_t j = PyLong_AsSsize_t(PySequence_Fast_ITEMS(seq)[i]);
            if (j == -1 && PyErr_Occurred()) {
                Py_DECREF(seq);
                goto done;
            }
            if (j < 0 || j >= PyList_GET_SIZE(captured)) {
                Py_DECREF(seq);
                (void)so_fail(PyExc_IndexError, "capture position %zd out of range", j);
                goto done;
            }
            PyObject *g = PyList_GET_ITEM(buf, nr);
            PyObject *old = PyList_GET_ITEM(captured, j);
            PyList_SET_ITEM(captured, j, Py_NewRef(g));
            Py_DECREF(old);
        }
        Py_DECREF(seq);
    }
    if (is_acc) {
        if (!accumulate) {
            skip = 1;
        } else {
            key = Py_BuildValue("(On)", id, (Py_ssize_t)0);
            if (!key) goto done;
            int has = PyDict_Contains(capture, key);
            if (has < 0) goto done;
            skip = !has;
        }
    }
    rc = skip;
done:
    Py_XDECREF(key);
    Py_DECREF(id);
    return rc;
}

/* Runs one ready node: its gradients in, its inputs' contributions out. */
static int run_node(graph *g, Py_ssize_t k, int retain_graph, PyObject *capture,
                    PyObject *captured, PyObject *acc_type, int accumulate, PyObject *retain_fn)
{
    PyObject *node = g->ent[k].node; /* the entry keeps it alive */
    PyObject *buf = g->ent[k].buf, *res = NULL, *in = NULL, *edges = NULL;
    int rc = -1;
    g->ent[k].buf = NULL;
    if (!buf && !(buf = new_buf(g, node))) return -1;

    PyObject *retain = PyObject_GetAttr(node, g->s_retain);
    if (!retain) goto done;
    int want = PyObject_IsTrue(retain);
    Py_DECREF(retain);
    if (want < 0) goto done;
    if (want) {
        PyObject *r = PyObject_CallFunctionObjArgs(retain_fn, node, buf, NULL);
        if (!r) goto done;
        Py_DECREF(r);
    }

    int is_acc = (PyObject *)Py_TYPE(node) == acc_type;
    if (capture != Py_None) {
        int skip = capture_grads(node, buf, capture, captured, is_acc, accumulate);
        if (skip < 0) goto done;
        if (skip) {
            rc = 0;
            goto done;
        }
    }

    int all_none = 1;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(buf); i++)
        if (PyList_GET_ITEM(buf, i) != Py_None) all_none = 0;
    if (!all_none) {
        res = PyObject_CallMethodOneArg(node, g->s_apply, buf);
        if (!res) goto done;
        in = PySequence_Fast(res, "a node's _apply must return a sequence of gradients");
        if (!in) goto done;
    }
    if (!retain_graph) {
        PyObject *r = PyObject_CallMethodNoArgs(node, g->s_release);
        if (!r) goto done;
        Py_DECREF(r);
    }
    edges = edges_of(g, node);
    if (!edges) goto done;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(edges);
    if (in && PySequence_Fast_GET_SIZE(in) < n) n = PySequence_Fast_GET_SIZE(in);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *child;
        Py_ssize_t nr = 0;
        if (unpack_edge(PySequence_Fast_ITEMS(edges)[i], &child, &nr) < 0) goto done;
        if (child == Py_None) continue;
        Py_ssize_t c = g_find(g, child);
        if (c < 0) {
            (void)so_fail(PyExc_RuntimeError, "autograd: a node's next_functions changed during "
                                        "backward");
            goto done;
        }
        if (!g->ent[c].buf && !(g->ent[c].buf = new_buf(g, child))) goto done;
        PyObject *grad = in ? PySequence_Fast_ITEMS(in)[i] : Py_None;
        if (grad != Py_None && accumulate_into(g->ent[c].buf, nr, grad) < 0) goto done;
        if (--g->ent[c].deps == 0 && g_push(g, c) < 0) goto done;
    }
    rc = 0;
done:
    /* drop every reference to the handed-on gradients before the next node runs: a buffer
     * only its consumer holds can be adopted by AccumulateGrad without a copy */
    Py_XDECREF(edges);
    Py_XDECREF(in);
    Py_XDECREF(res);
    Py_DECREF(buf);
    return rc;
}

/* _run_graph(roots, grads, retain_graph, accumulate, capture, captured, acc_type, retain_fn) */
static PyObject *py_run_graph(PyObject *m, PyObject *args)
{
    PyObject *roots, *grads, *capture, *captured, *acc_type, *retain_fn, *out = NULL;
    int retain_graph, accumulate;
    graph g = {0};
    Py_ssize_t *seed = NULL, nseed = 0;
    (void)m;
    if (!PyArg_ParseTuple(args, "O!O!ppOOOO:_run_graph", &PyList_Type, &roots, &PyList_Type,
                          &grads, &retain_graph, &accumulate, &capture, &captured, &acc_type,
                          &retain_fn))
        return NULL;
    Py_ssize_t nroots = PyList_GET_SIZE(roots);
    if (PyList_GET_SIZE(grads) != nroots)
        return so_fail_null(PyExc_ValueError, "_run_graph(): %zd roots but %zd grads", nroots,
                            PyList_GET_SIZE(grads));
    if (capture != Py_None && !PyDict_Check(capture))
        return so_fail_null(PyExc_TypeError, "_run_graph(): capture must be a dict or None");
    if (capture != Py_None && !PyList_Check(captured))
        return so_fail_null(PyExc_TypeError, "_run_graph(): captured must be a list");
    if (!PyType_Check(acc_type))
        return so_fail_null(PyExc_TypeError, "_run_graph(): acc_type must be a type");
    if (!PyCallable_Check(retain_fn))
        return so_fail_null(PyExc_TypeError, "_run_graph(): retain_fn must be callable");

    SO_CHECK_PTR(g.s_next = PyUnicode_InternFromString("next_functions"), done);
    SO_CHECK_PTR(g.s_nout = PyUnicode_InternFromString("_num_outputs"), done);
    SO_CHECK_PTR(g.s_apply = PyUnicode_InternFromString("_apply"), done);
    SO_CHECK_PTR(g.s_release = PyUnicode_InternFromString("_release"), done);
    SO_CHECK_PTR(g.s_retain = PyUnicode_InternFromString("_retain"), done);
    SO_CHECK_RC(g_rehash(&g, 64), done);
    SO_CHECK_PTR(seed = PyMem_Malloc(((size_t)nroots + 1) * sizeof *seed), done);

    /* 1. dependency counts over the reachable graph */
    for (Py_ssize_t r = 0; r < nroots; r++) {
        PyObject *child;
        Py_ssize_t nr = 0;
        SO_CHECK_RC(unpack_edge(PyList_GET_ITEM(roots, r), &child, &nr), done);
        SO_CHECK(child != Py_None, done, PyExc_ValueError, "_run_graph(): root %zd has no node",
                 r);
        if (g_find(&g, child) < 0) {
            Py_ssize_t k = g_insert(&g, child);
            SO_CHECK_RC(k, done);
            SO_CHECK_RC(g_push(&g, k), done);
        }
    }
    while (g.sn > 0) {
        Py_ssize_t k = g.stack[--g.sn];
        PyObject *edges = edges_of(&g, g.ent[k].node);
        SO_CHECK_PTR(edges, done);
        for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(edges); i++) {
            PyObject *child;
            Py_ssize_t nr = 0, c;
            if (unpack_edge(PySequence_Fast_ITEMS(edges)[i], &child, &nr) < 0) {
                Py_DECREF(edges);
                goto done;
            }
            if (child == Py_None) continue;
            c = g_find(&g, child);
            if (c < 0) {
                if ((c = g_insert(&g, child)) < 0 || g_push(&g, c) < 0) {
                    Py_DECREF(edges);
                    goto done;
                }
            }
            g.ent[c].deps++;
        }
        Py_DECREF(edges);
    }

    /* 2. seed the buffers with the root gradients (first-seen order) */
    for (Py_ssize_t r = 0; r < nroots; r++) {
        PyObject *child;
        Py_ssize_t nr = 0;
        SO_CHECK_RC(unpack_edge(PyList_GET_ITEM(roots, r), &child, &nr), done);
        Py_ssize_t k = g_find(&g, child);
        if (!g.ent[k].buf) {
            SO_CHECK_PTR(g.ent[k].buf = new_buf(&g, child), done);
            seed[nseed++] = k;
        }
        PyObject *grad = PyList_GET_ITEM(grads, r);
        if (grad != Py_None) SO_CHECK_RC(accumulate_into(g.ent[k].buf, nr, grad), done);
    }
    for (Py_ssize_t i = 0; i < nseed; i++)
        if (g.ent[seed[i]].deps == 0) SO_CHECK_RC(g_push(&g, seed[i]), done);

    /* 3. run */
    while (g.sn > 0) {
        Py_ssize_t k = g.stack[--g.sn];
        SO_CHECK_RC(run_node(&g, k, retain_graph, capture, captured, acc_type, accumulate,
                             retain_fn),
                    done);
    }
    out = Py_NewRef(Py_None);
done:
    PyMem_Free(seed);
    g_free(&g);
    return out;
}

/* _grad_adoptable(grad, max_refs): AccumulateGrad's adoption rule (graph.py) in one call.
 * True when `grad` may become a leaf's .grad without a copy: at most max_refs references to
 * the tensor (the caller counts its own), no other view of its storage (a view, a saved
 * alias or a NumPy export each hold the storage), contiguous over its whole buffer, memory
 * shardopt owns (not a NumPy array's the caller could still write), no autograd history. */
static PyObject *py_grad_adoptable(PyObject *m, PyObject *const *args, Py_ssize_t nargs)
{
    so_state *st = so_state_from_module(m);
    if (nargs != 2)
        return so_fail_null(PyExc_TypeError, "_grad_adoptable() takes 2 arguments (%zd given)",
                            nargs);
    if (!so_tensor_check(st, args[0]))
        return so_fail_null(PyExc_TypeError, "_grad_adoptable(): grad must be a Tensor, not "
                                             "%.100s", Py_TYPE(args[0])->tp_name);
    Py_ssize_t max_refs = PyLong_AsSsize_t(args[1]);
    if (max_refs == -1 && PyErr_Occurred()) return NULL;
    const SoTensor *t = (const SoTensor *)args[0];
    int ok = Py_REFCNT(args[0]) <= max_refs && !t->requires_grad && !t->grad_fn &&
             t->offset == 0 && so_tensor_is_contiguous(t) && Py_REFCNT(t->storage) == 1 &&
             t->storage->free_kind != SO_FREE_OWNER &&
             t->storage->nbytes == so_tensor_numel(t) * so_dtype_itemsize(t->dtype);
    return PyBool_FromLong(ok);
}

static PyMethodDef autograd_engine_functions[] = {
    {"_grad_adoptable", (PyCFunction)(void (*)(void))py_grad_adoptable, METH_FASTCALL,
     "_grad_adoptable(grad, max_refs): whether AccumulateGrad may keep grad without a copy"},
    {"_run_graph", py_run_graph, METH_VARARGS,
     "_run_graph(roots, grads, retain_graph, accumulate, capture, captured, acc_type, "
     "retain_fn): run the backward graph from roots (list of (node, nr)) seeded with grads"},
    {NULL}};

int so_register_autograd_engine(PyObject *m, so_state *st)
{
    (void)st;
    return PyModule_AddFunctions(m, autograd_engine_functions);
}
