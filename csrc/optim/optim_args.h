/* optim_args.h — argument checking shared by the fused-optimizer bindings (optim_py.c:
 * SGD, Adam/AdamW; adaptive_py.c: RMSprop, Adagrad).  Each check names the function, the
 * argument and the index, and sets a Python exception on failure (0 / -1 returns).
 */
#ifndef SO_OPTIM_ARGS_H
#define SO_OPTIM_ARGS_H

#include "../tensor/tensor.h"
#include "fused.h"

/* A tensor list argument, held as a tuple so no other thread can drop its items while the
 * GIL is released.  `obj` may be None only when `optional`. */
typedef struct {
    const char *name;
    PyObject *tuple; /* NULL when absent */
} tensor_list;

const char *so_opt_dtype_name(int dt);
void so_opt_device_str(so_device d, char *buf, size_t n);
/* Read a list/tuple of tensors; expect_len >= 0 requires that length. */
int so_opt_list_get(const char *fn, PyObject *obj, const char *name, int optional,
                    Py_ssize_t expect_len, tensor_list *out);
/* list[i] is a Tensor matching `param` (dtype, device, shape); param NULL: any Tensor. */
int so_opt_check_operand(so_state *st, const char *fn, const tensor_list *l, Py_ssize_t i,
                         const SoTensor *param, SoTensor **out);
/* params[i]: a floating-point Tensor the kernels can update on its device. */
int so_opt_check_param(so_state *st, const char *fn, const tensor_list *l, Py_ssize_t i,
                       SoTensor **out);
/* state_steps[i]: a one-element float32/float64 CPU tensor (torch's `step`). */
int so_opt_check_step(so_state *st, const char *fn, const tensor_list *l, Py_ssize_t i,
                      SoTensor **out);
void so_opt_set_slot(so_optim_tensor *ts, int k, SoTensor *t, int *all_contig);
int so_opt_device_key(so_device d);
int so_opt_attach_views(so_optim_tensor *ts, SoTensor *(*tensors)[SO_OPT_MAX_OPS],
                        const char *need, Py_ssize_t n, so_view **block_out);
void so_opt_sort_by_device(so_optim_tensor *ts, int *keys, Py_ssize_t n);

#ifdef SHARDOPT_WITH_CUDA
typedef int (*cuda_group_fn)(void *stream, const so_optim_tensor *ts, int64_t n, const void *ctx);
int so_opt_run_cuda_groups(so_state *st, const so_optim_tensor *ts, const int *keys,
                           Py_ssize_t n, cuda_group_fn fn, const void *ctx);
#endif

/* Registers _fused_rmsprop_ and _fused_adagrad_ (adaptive_py.c). */
int so_register_optim_adaptive(PyObject *m, so_state *st);

#endif /* SO_OPTIM_ARGS_H */
