/* nn_args.h — argument handling shared by the nn kernels' bindings (softmax.c,
 * layer_norm.c, cross_entropy.c, embedding.c, dropout.c): tensors as contiguous buffers,
 * dtype and device checks with messages naming the argument, and the CUDA stream. */
#ifndef SO_NN_ARGS_H
#define SO_NN_ARGS_H

#include "../tensor/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* obj as a contiguous tensor (a new reference: obj itself, or a contiguous copy).
 * TypeError "<fname>(): argument '<argname>' must be Tensor, not <type>" otherwise. */
SoTensor *so_nn_contiguous(so_state *st, PyObject *obj, const char *fname, const char *argname);
/* Optional tensor argument: NULL (no error) for None, else as so_nn_contiguous. *err is set
 * to -1 on failure. */
SoTensor *so_nn_optional(so_state *st, PyObject *obj, const char *fname, const char *argname,
                         int *err);
/* RuntimeError unless t is float32 or float64 (the kernels' compute types). */
int so_nn_check_float(const SoTensor *t, const char *fname, const char *argname);
/* RuntimeError unless t is int64 or int32 (index arguments). */
int so_nn_check_index(const SoTensor *t, const char *fname, const char *argname);
/* RuntimeError unless b is on a's device; names both. */
int so_nn_check_device(const SoTensor *a, const SoTensor *b, const char *fname,
                       const char *argname);
/* RuntimeError unless b has a's dtype. */
int so_nn_check_dtype(const SoTensor *a, const SoTensor *b, const char *fname,
                      const char *argname);
/* Before CUDA launches on `dev`: makes it the current device (*prev receives the one to
 * restore) and returns its compute stream (NULL with an exception on failure, the current
 * device then unchanged).  so_nn_cuda_end restores *prev and never raises. */
void *so_nn_cuda_begin(so_state *st, so_device dev, int *prev);
void so_nn_cuda_end(so_device dev, int prev);
/* 0, or raise the CUDA status of a launch (-1). */
int so_nn_launched(int status, const char *what);
/* torch's ScalarType names: "Float", "Long"... */
const char *so_nn_scalar_name(int dtype);

#ifdef __cplusplus
}
#endif
#endif
