/* alloc.c — host memory: 64-byte aligned, so vector loads never straddle cache lines and
 * NumPy/DLPack consumers see well-aligned buffers. Absurd sizes raise MemoryError. */
#include "device.h"
#include <stdlib.h>

void *so_host_alloc(size_t nbytes)
{
    void *p = NULL;
    size_t rounded;
    if (nbytes == 0) nbytes = 1; /* keep a valid, unique pointer for empty tensors */
    if (nbytes > ((size_t)1 << 50)) {
        PyErr_Format(PyExc_MemoryError, "cannot allocate %zu bytes of host memory", nbytes);
        return NULL;
    }
    rounded = (nbytes + 63) & ~(size_t)63;
    if (posix_memalign(&p, 64, rounded) != 0 || p == NULL) {
        PyErr_Format(PyExc_MemoryError, "cannot allocate %zu bytes of host memory", nbytes);
        return NULL;
    }
    return p;
}

void so_host_free(void *ptr) { free(ptr); }
