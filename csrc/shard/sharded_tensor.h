/* sharded_tensor.h — the object layout of _C.ShardedTensorBase (sharded_tensor.c).
 *
 * A ShardedTensor owns no storage of its own: it is the list of this rank's Shards plus
 * the global ShardedTensorMetadata, the sharding spec and the process group.  The Python
 * subclass (shardopt/sharded_tensor/api.py) builds and communicates; C keeps the fields.
 */
#ifndef SO_SHARDED_TENSOR_H
#define SO_SHARDED_TENSOR_H

#include "shard.h"

typedef struct {
    PyObject_HEAD
    PyObject *local_shards;  /* list of Shard (never NULL once allocated) */
    PyObject *metadata;      /* ShardedTensorMetadata or None */
    PyObject *spec;          /* sharding spec or None */
    PyObject *pg;            /* process group, or None (ShardedTensorBase) */
    PyObject *dict;
    PyObject *weakreflist;
    int init_rrefs;
} SoShardedTensor;

#define SO_ST(o) ((SoShardedTensor *)(o))

int so_register_sharded_tensor(PyObject *m, so_state *st);

#endif /* SO_SHARDED_TENSOR_H */
