/* errors.c — formatting of C-level failures into Python exceptions (see errors.h). */
#include "errors.h"
#include <stdarg.h>
#include <stdio.h>

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
    (void)file;
    (void)line;
    /* User-facing validation messages stay clean; file:line is added for system errors
     * by the CUDA/NCCL raisers below. */
    PyErr_SetString(exc_type, msg);
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
