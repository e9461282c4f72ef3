/* sharded_optim.h — what sharded_optim.c (ShardedOptimizerBase) and named_params.c
 * (named_params_with_sharded_tensor) share. */
#ifndef SO_SHARDED_OPTIM_H
#define SO_SHARDED_OPTIM_H

#include "shard.h"

/* The ShardedTensor class (borrowed), or NULL without an exception when the sharded-tensor
 * layer is not importable.  Looked up in st->extra (the C type) and else in the Python
 * package; cached in st->extra under "ShardedTensor.py". */
PyObject *so_sharded_tensor_class(so_state *st);

/* registers named_params_with_sharded_tensor (named_params.c) */
int so_register_named_params(PyObject *m, so_state *st);

#endif /* SO_SHARDED_OPTIM_H */
