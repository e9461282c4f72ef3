/* pinned.c — pinned (page-locked) host memory: Tensor.pin_memory(), is_pinned() and the
 * factories' pin_memory=True.
 *
 * A pinned buffer is its own anonymous mapping, locked with mlock: pages of its own because
 * mlock is not counted (unlocking one buffer must never unlock a neighbour sharing its page),
 * and a mapping rather than the host allocator's block because the cache there must not hold
 * locked memory.  The storage wraps it with a release callback (munlock + munmap); that
 * callback is also how is_pinned() recognises a pinned storage, so SoStorage needs no flag.
 * Locking can fail (RLIMIT_MEMLOCK for unprivileged users): that is a RuntimeError naming the
 * size and the reason, never a silently unpinned tensor.
 */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS, mlock under -std=c11 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "copy.h"
#include "tensor.h"
#include "../core/errors.h"

typedef struct {
    void *addr;
    size_t len;
} pinned_block;

static void pinned_release(void *ctx)
{
    pinned_block *b = ctx;
    if (b->addr) {
        munlock(b->addr, b->len);
        munmap(b->addr, b->len);
    }
    PyMem_RawFree(b);
}

static int storage_is_pinned(const SoStorage *s)
{
    return s->free_kind == SO_FREE_OWNER && s->owner_release == pinned_release;
}

/* A new pinned host storage of nbytes (a zero-byte one maps nothing but still counts as
 * pinned, as torch's empty pinned tensors do). */
static SoStorage *pinned_storage(so_state *st, int64_t nbytes)
{
    so_device cpu = {SO_CPU, 0};
    pinned_block *b = PyMem_RawCalloc(1, sizeof *b);
    if (!b) return (SoStorage *)PyErr_NoMemory();
    if (nbytes > 0) {
        b->len = (size_t)nbytes;
        b->addr = mmap(NULL, b->len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (b->addr == MAP_FAILED) {
            int e = errno;
            PyMem_RawFree(b);
            return so_fail_null(PyExc_RuntimeError,
                                "pin_memory: could not map %lld bytes of host memory: %s",
                                (long long)nbytes, strerror(e));
        }
        if (mlock(b->addr, b->len) != 0) {
            int e = errno;
            munmap(b->addr, b->len);
            PyMem_RawFree(b);
            return so_fail_null(PyExc_RuntimeError,
                                "pin_memory: could not page-lock %lld bytes of host memory: %s "
                                "(the locked-memory limit is `ulimit -l`)",
                                (long long)nbytes, strerror(e));
        }
    }
    /* the wrapper owns b from here on: its release callback runs on every failure path */
    return so_storage_wrap_release(st, cpu, b->addr, nbytes, pinned_release, b);
}

/* _C._pin_memory(t): a contiguous copy of CPU tensor t in pinned memory.  Pinned input comes
 * back as is (torch returns the tensor itself when it is already pinned). */
static PyObject *py_pin_memory(PyObject *m, PyObject *arg)
{
    so_state *st = so_state_from_module(m);
    PyObject *res = NULL;
    SoStorage *s = NULL;
    SoTensor *t = (SoTensor *)arg, *out = NULL;
    int64_t strides[SO_MAX_DIMS];
    if (!so_tensor_check(st, arg))
        return so_fail_null(PyExc_TypeError, "pin_memory(): expected a Tensor, got %s",
                            Py_TYPE(arg)->tp_name);
    SO_CHECK(so_tensor_device(t).type == SO_CPU, done, PyExc_RuntimeError,
             "cannot pin '%s' memory: only dense CPU tensors can be pinned",
             so_tensor_device(t).type == SO_CUDA ? "cuda" : "meta");
    if (storage_is_pinned(t->storage)) return Py_NewRef(arg);
    SO_CHECK_PTR(s = pinned_storage(st, so_tensor_numel(t) * so_dtype_itemsize(t->dtype)), done);
    so_contiguous_strides(t->ndim, t->shape, strides);  /* t's sizes are valid already */
    SO_CHECK_PTR(out = so_tensor_from_storage(st, s, 0, t->ndim, t->shape, strides, t->dtype),
                 done);
    if (so_tensor_numel(t) > 0) SO_CHECK_RC(so_copy_(st, out, t), done);
    res = (PyObject *)out;
    out = NULL;
done:
    Py_XDECREF(out);
    Py_XDECREF(s);
    return res;
}

/* _C._is_pinned(t): whether t's storage is pinned host memory. */
static PyObject *py_is_pinned(PyObject *m, PyObject *arg)
{
    so_state *st = so_state_from_module(m);
    if (!so_tensor_check(st, arg))
        return so_fail_null(PyExc_TypeError, "is_pinned(): expected a Tensor, got %s",
                            Py_TYPE(arg)->tp_name);
    return PyBool_FromLong(storage_is_pinned(((SoTensor *)arg)->storage));
}

static PyMethodDef pinned_functions[] = {
    {"_pin_memory", py_pin_memory, METH_O, "contiguous copy of a CPU tensor in pinned memory"},
    {"_is_pinned", py_is_pinned, METH_O, "whether the tensor's storage is pinned host memory"},
    {NULL}};

int so_register_pinned(PyObject *m, so_state *st)
{
    (void)st;
    return PyModule_AddFunctions(m, pinned_functions);
}
