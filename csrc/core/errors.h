/* errors.h — the project's one error convention (in the spirit of NCCL's checks.h).
 *
 * Functions return 0 on success and -1 with a Python exception set on failure (NULL for
 * object-returning functions), CPython style. Inside a function that has cleanup to do, every
 * failure jumps to ONE label, always named `done`, given explicitly to the macro so the jump
 * is visible at the call site:
 *
 *     int rc = -1;
 *     PyObject *tmp = NULL;
 *     SO_CHECK(ndim >= 0, done, PyExc_ValueError, "narrow(): dim must be >= 0, got %d", ndim);
 *     SO_CHECK_PTR(tmp = PyLong_FromLong(3), done);
 *     SO_CHECK_RC(so_do_something(tmp), done);
 *     SO_CHECK_SYS(fd >= 0, done, "open(checkpoint)");
 *     rc = 0;
 * done:
 *     Py_XDECREF(tmp);
 *     return rc;
 *
 * A function without cleanup returns directly: `return so_fail(PyExc_ValueError, ...)` (int
 * -1), `return PyErr_Format(...)` (PyObject * NULL) or `return so_fail_null(...)` (NULL as
 * any other pointer type).
 *
 * Messages: argument validation names the argument and its value and carries no file:line
 * (users read it); system, CUDA and NCCL failures carry file:line (developers read it), via
 * so_raise_at. Must be called with the GIL held.
 */
#ifndef SO_ERRORS_H
#define SO_ERRORS_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Raise exc_type("<message> (file:line)"). Always returns -1. For internal/system errors. */
int so_raise_at(PyObject *exc_type, const char *file, int line, const char *fmt, ...);

/* Raise exc_type(message) with no location (validation errors); evaluates to -1.  A macro,
 * not a function, so that the compiler sees the -1 at each `return so_fail(...)` (its
 * may-be-uninitialized analysis of the callers' out-parameters depends on it). */
#define so_fail(exc_type, ...) (PyErr_Format((exc_type), __VA_ARGS__), -1)

/* The same for functions returning a typed pointer (SoTensor *, SoStorage *...): evaluates to
 * NULL of any pointer type, where PyErr_Format's PyObject * would not convert (C only: C++
 * does not convert void * implicitly). */
#define so_fail_null(exc_type, ...) (PyErr_Format((exc_type), __VA_ARGS__), (void *)NULL)

/* A kernel that needs data was handed a meta tensor: NotImplementedError naming the op and
 * the Meta backend (torch's wording).  Evaluates to -1. */
#define so_meta_unsupported(op)                                                       \
    so_fail(PyExc_NotImplementedError,                                                \
            "Could not run '%s' with arguments from the 'Meta' backend: meta tensors have no " \
            "data", (op))
/* torch's message for reading the data of a meta tensor (copy to another device, numpy,
 * item...).  Evaluates to -1. */
#define so_meta_copy_out()                                                            \
    so_fail(PyExc_NotImplementedError, "Cannot copy out of meta tensor; no data!")

/* OSError(errno, "<what>: strerror (file:line)") from the current errno. Returns -1. */
int so_raise_errno(const char *what, const char *file, int line);

/* A CUDA runtime status as RuntimeError (MemoryError for out-of-memory), with the failing
 * expression and file:line. Returns -1. */
int so_cuda_raise(int status, const char *expr, const char *file, int line);

/* Raise `exc` with a formatted message and jump to `label`. */
#define SO_FAIL(label, exc, ...)                                                \
    do {                                                                        \
        PyErr_Format((exc), __VA_ARGS__);                                       \
        goto label;                                                             \
    } while (0)

/* Validation: unless `cond` holds, raise `exc` and jump to `label`. */
#define SO_CHECK(cond, label, exc, ...)                                         \
    do {                                                                        \
        if (!(cond)) SO_FAIL(label, exc, __VA_ARGS__);                          \
    } while (0)

/* A call returning < 0 with a Python exception already set. */
#define SO_CHECK_RC(call, label)                                                \
    do {                                                                        \
        if ((call) < 0) goto label;                                             \
    } while (0)

/* An expression yielding NULL with a Python exception already set (usually an
 * assignment: SO_CHECK_PTR(obj = PyLong_FromLong(1), done)). */
#define SO_CHECK_PTR(expr, label)                                               \
    do {                                                                        \
        if ((expr) == NULL) goto label;                                         \
    } while (0)

/* A system call: unless `cond` holds, raise OSError from errno naming `what`, file:line. */
#define SO_CHECK_SYS(cond, label, what)                                         \
    do {                                                                        \
        if (!(cond)) {                                                          \
            so_raise_errno((what), __FILE__, __LINE__);                         \
            goto label;                                                         \
        }                                                                       \
    } while (0)

/* A CUDA runtime call (status 0 = success), file:line kept. */
#define SO_CHECK_CUDA(call, label)                                              \
    do {                                                                        \
        int so_cuda_status_ = (int)(call);                                      \
        if (so_cuda_status_ != 0) {                                             \
            so_cuda_raise(so_cuda_status_, #call, __FILE__, __LINE__);          \
            goto label;                                                         \
        }                                                                       \
    } while (0)

#ifdef __cplusplus
}
#endif

#endif /* SO_ERRORS_H */
