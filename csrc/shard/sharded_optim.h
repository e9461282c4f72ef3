/* sharded_optim.h — ShardedOptimizerBase (sharded_optim.c), the data half of
 * shardopt.sharded_optim.ShardedOptimizer. */
#ifndef SO_SHARDED_OPTIM_H
#define SO_SHARDED_OPTIM_H

#include "shard.h"

int so_register_sharded_optim(PyObject *m, so_state *st);

#endif /* SO_SHARDED_OPTIM_H */
