/* copy.h — element copies with dtype conversion and fills, on CPU and CUDA.
 *
 * Copies belong to the tensor layer (not ops): contiguous(), clone, .to(), DLPack and
 * generator state all need them, and the layers above (ops, optim, distributed) use them
 * too, so keeping them here lets every dependency point down.  so_copy_ and so_fill_ are the
 * dispatching entry points; the *_cpu / *_cuda functions are the device kernels they choose
 * between. */
#ifndef SO_COPY_H
#define SO_COPY_H

#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Copy src into dst (broadcast to dst's shape; any dtype/device/strides). Bumps dst's
 * version. */
int so_copy_(so_state *st, SoTensor *dst, SoTensor *src);
/* Fill every element of t with a Python number (or a one-element tensor). Bumps version. */
int so_fill_(so_state *st, SoTensor *t, PyObject *value);
/* New contiguous tensor with the same contents (same device and dtype). */
SoTensor *so_tensor_clone(so_state *st, SoTensor *t);
/* New tensor with contents converted to dtype/device (always a copy). */
SoTensor *so_tensor_convert(so_state *st, SoTensor *t, int dtype, so_device dev);

/* Kernels: src is already broadcast to dst's shape. */
void so_copy_cpu(const so_view *dst, const so_view *src);
void so_fill_cpu(const so_view *dst, double fvalue, int64_t ivalue);
int so_copy_cuda(const so_view *dst, const so_view *src, void *stream);        /* 0 / cuda err */
int so_fill_cuda(const so_view *dst, double fvalue, int64_t ivalue, void *stream);

#ifdef __cplusplus
}
#endif
#endif
