/* errors.h — the one place where C/CUDA/NCCL failures become Python exceptions.
 *
 * Convention (CPython style): functions return 0 on success and -1 with a Python exception
 * set on failure (or NULL for object-returning functions); callers `goto error`.
 * The SO_CHECK_* macros record file:line, like NCCL's checks.h.
 * Must be called with the GIL held.
 */
#ifndef SO_ERRORS_H
#define SO_ERRORS_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Raise RuntimeError("<what> failed: <msg> (file:line)"). Always returns -1. */
int so_raise_at(PyObject *exc_type, const char *file, int line, const char *fmt, ...);

#define SO_RAISE(exc, ...) so_raise_at((exc), __FILE__, __LINE__, __VA_ARGS__)

/* Turn a CUDA runtime status into a RuntimeError carrying cudaGetErrorString. */
int so_cuda_raise(int status, const char *expr, const char *file, int line);

#define SO_CHECK_CUDA(call)                                                     \
    do {                                                                        \
        int so_cuda_status_ = (int)(call);                                      \
        if (so_cuda_status_ != 0) {                                             \
            so_cuda_raise(so_cuda_status_, #call, __FILE__, __LINE__);          \
            goto error;                                                         \
        }                                                                       \
    } while (0)

/* Generic "if it fails, the exception is already set" guard. */
#define SO_TRY(call)                                                            \
    do {                                                                        \
        if ((call) < 0) goto error;                                             \
    } while (0)

#ifdef __cplusplus
}
#endif

#endif /* SO_ERRORS_H */
