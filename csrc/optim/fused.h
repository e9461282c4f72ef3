/* fused.h — the interface between the optimizer binding (optim_py.c) and the fused
 * multi-tensor kernels (fused_cpu.c, fused_cuda.cu).  No Python here: the binding validates
 * everything and fills these plain structs; the kernels cannot fail on the CPU and return a
 * cudaError_t code (0 = success) on the GPU.
 */
#ifndef SO_OPTIM_FUSED_H
#define SO_OPTIM_FUSED_H

#include "optim_math.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Operand slots of one param: 0 param, 1 grad, then the state tensors
 * (SGD: 2 momentum_buffer; Adam: 2 exp_avg, 3 exp_avg_sq, 4 max_exp_avg_sq;
 *  RMSprop: 2 square_avg, 3 momentum_buffer, 4 grad_avg; Adagrad: 2 sum). */
#define SO_OPT_PARAM 0
#define SO_OPT_GRAD 1
#define SO_OPT_MAX_OPS 5

typedef struct {
    char *data[SO_OPT_MAX_OPS]; /* first element of each operand (NULL when unused) */
    int64_t numel;
    int dtype;                  /* so_dtype of the param (grad and state share it) */
    int first;                  /* SGD: copy the gradient into the momentum buffer */
    so_adam_step step;          /* Adam, Adagrad: step-dependent scalars for this tensor */
    /* NULL when all operands are contiguous; otherwise SO_OPT_MAX_OPS views (same shape)
     * for the strided CPU path.  The CUDA path requires contiguous operands. */
    const so_view *views;
} so_optim_tensor;

typedef struct {
    int maximize, has_wd, has_momentum, nesterov;
} so_sgd_flags;

typedef struct {
    int maximize;
    int wd_mode;   /* 0 none, 1 L2 (Adam), 2 decoupled (AdamW) */
    int amsgrad;
} so_adam_flags;

typedef struct {
    int maximize, has_wd, centered, has_momentum;
} so_rmsprop_flags;

typedef struct {
    int maximize, has_wd;
} so_adagrad_flags;

/* CPU: one pass per tensor, in list order.  Safe to call without the GIL. */
void so_fused_sgd_cpu(const so_optim_tensor *ts, int64_t n, const so_sgd_f32 *c32,
                      const so_sgd_f64 *c64, so_sgd_flags f);
void so_fused_adam_cpu(const so_optim_tensor *ts, int64_t n, const so_adam_f32 *c32,
                       const so_adam_f64 *c64, so_adam_flags f);
void so_fused_rmsprop_cpu(const so_optim_tensor *ts, int64_t n, const so_rmsprop_f32 *c32,
                          const so_rmsprop_f64 *c64, so_rmsprop_flags f);
void so_fused_adagrad_cpu(const so_optim_tensor *ts, int64_t n, const so_adagrad_f32 *c32,
                          const so_adagrad_f64 *c64, so_adagrad_flags f);

/* CUDA: multi-tensor apply on `stream` (a cudaStream_t) of the current device; all tensors
 * must be on that device and contiguous.  Asynchronous; returns a cudaError_t (0 ok). */
int so_fused_sgd_cuda(void *stream, const so_optim_tensor *ts, int64_t n,
                      const so_sgd_f32 *c32, const so_sgd_f64 *c64, so_sgd_flags f);
int so_fused_adam_cuda(void *stream, const so_optim_tensor *ts, int64_t n,
                       const so_adam_f32 *c32, const so_adam_f64 *c64, so_adam_flags f);
int so_fused_rmsprop_cuda(void *stream, const so_optim_tensor *ts, int64_t n,
                          const so_rmsprop_f32 *c32, const so_rmsprop_f64 *c64,
                          so_rmsprop_flags f);
int so_fused_adagrad_cuda(void *stream, const so_optim_tensor *ts, int64_t n,
                          const so_adagrad_f32 *c32, const so_adagrad_f64 *c64,
                          so_adagrad_flags f);

#ifdef __cplusplus
}
#endif

#endif /* SO_OPTIM_FUSED_H */
