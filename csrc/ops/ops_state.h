/* ops_state.h — the ops layer's part of the module state (so_state.ops, module.h): per-device
 * cuBLAS handles, created on first CUDA matmul and destroyed when the module is freed.  Plain
 * pointers, no Python objects, so nothing to traverse. */
#ifndef SO_OPS_STATE_H
#define SO_OPS_STATE_H

#include "../core/device.h"

typedef struct so_ops_state {
    void *cublas_handles[SO_MAX_CUDA_DEVICES]; /* cublasHandle_t per device, lazily */
} so_ops_state;

#endif /* SO_OPS_STATE_H */
