/* elementwise.h — elementwise ops: the device-neutral call descriptor, the CPU and CUDA
 * entry points it is run by, and the C API other layers (autograd, optim) can call.
 *
 * elementwise.c does dtype promotion, broadcasting, device checks and output allocation,
 * fills an so_ew_call, and hands it to so_ew_run_cpu (elementwise_cpu.c) or so_ew_run_cuda
 * (elementwise.cu) — the one place where the device is chosen.
 */
#ifndef SO_ELEMENTWISE_H
#define SO_ELEMENTWISE_H

#include "../tensor/tensor.h"
#include "elementwise_math.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- dtype promotion (torch.result_type rules), also for other layers ---- */
int so_promote_types(int a, int b);
/* torch's canCast(from, to): float -> int and non-bool -> bool are refused. */
int so_can_cast(int from, int to);
/* torch's dtype names as in its messages: "Float", "Long", ... */
const char *so_dtype_torch_name(int dt);

/* ---- C API: Python objects in (tensors or numbers), new tensor out (NULL + exception).
 * `out` (may be NULL) receives the result in place, as torch's out= / in-place forms. ---- */
PyObject *so_ew_unary(so_state *st, int op, PyObject *x, SoTensor *out, const so_ew_params *p);
PyObject *so_ew_binary(so_state *st, int op, PyObject *a, PyObject *b, SoTensor *out,
                       const so_ew_params *p);

int so_register_elementwise(PyObject *m, so_state *st);

/* ---- shared by elementwise.c (core) and elementwise_py.c (bindings) ---- */

/* One operand as given from Python: a tensor, or a number (bool/int/float). */
typedef struct {
    PyObject *obj;  /* borrowed */
    SoTensor *t;    /* NULL for a number */
    int dtype;      /* the tensor's dtype, or SO_BOOL / SO_INT64 / SO_FLOAT64 for a number */
    double f;       /* number value (both forms) */
    int64_t i;
} so_ew_arg;

/* 0 ok; 1 when obj is neither a tensor nor a number (no exception set: dunders return
 * NotImplemented, functions raise TypeError); -1 with an exception (int overflow). */
int so_ew_parse_arg(so_state *st, PyObject *obj, so_ew_arg *out);
/* Raise TypeError "<fname>(): argument '<argname>' must be Tensor or a number, not <type>". */
int so_ew_type_error(const char *fname, const char *argname, PyObject *obj);
/* torch.result_type over args (tensors with dims > 0-d tensors > numbers, by category). */
int so_ew_result_type(const so_ew_arg *args, int n);
/* The compute type of a result dtype: float32 (for float32/16/bf16), float64 or int64. */
int so_ew_compute_type(int dtype);
/* Run `op` over args (broadcast, same device) computing in so_ew_compute_type(common),
 * storing `result_dtype` into a new tensor, or into `out` (in-place / out=: shape must be
 * the broadcast shape, result_dtype castable to out's dtype; out's version is bumped; an
 * input that partially overlaps out is copied first).  Returns a new reference. */
PyObject *so_ew_exec(so_state *st, const char *fname, int op, so_ew_arg *args, int nin,
                     int common, int result_dtype, SoTensor *out, const so_ew_params *p);

#ifdef __cplusplus
}
#endif
#endif
