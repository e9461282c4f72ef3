/* errors.c — formatting of C-level failures into Python exceptions (see errors.h). */
#include "errors.h"
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#ifdef SHARDOPT_WITH_CUDA
#include <cuda_runtime.h>
#endif

int so_raise_at(PyObject *exc_type, const char *file, int line, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    PyErr_Format(exc_type, "%s (%s:%d)", msg, file, line);
    return -1;
}

int so_raise_errno(const char *what, const char *file, int line)
{
    int err = errno;
    PyObject *exc;
    char msg[512];
    snprintf(msg, sizeof msg, "%s: %s (%s:%d)", what, strerror(err), file, line);
    /* OSError(errno, strerror) picks the matching subclass (ConnectionResetError...). */
    exc = PyObject_CallFunction(PyExc_OSError, "is", err, msg);
    if (exc) {
        PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
        Py_DECREF(exc);
    }
    return -1;
}

int so_cuda_raise(int status, const char *expr, const char *file, int line)
{
#ifdef SHARDOPT_WITH_CUDA
    const char *name = cudaGetErrorName((cudaError_t)status);
    const char *text = cudaGetErrorString((cudaError_t)status);
    if (status == cudaErrorMemoryAllocation) {
        PyErr_Format(PyExc_MemoryError, "CUDA out of memory: %s failed: %s (%s:%d)", expr, text,
                     file, line);
        return -1;
    }
    PyErr_Format(PyExc_RuntimeError, "CUDA error %d (%s): %s, in %s (%s:%d)", status, name, text,
                 expr, file, line);
#else
    PyErr_Format(PyExc_RuntimeError, "CUDA error %d in %s (%s:%d)", status, expr, file, line);
#endif
    return -1;
}
