/* shard_state.h — the sharding layer's part of the module state (so_state.shard).
 *
 * Typed fields, one per C type this layer defines, so that C code constructs and
 * type-checks them without string lookups.  The layer needs no Python class from above
 * it: what is Python (ShardedTensor, the specs' build_metadata and shard, the metadata
 * dataclasses) builds on these types, never the other way round.
 */
#ifndef SO_SHARD_STATE_H
#define SO_SHARD_STATE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

typedef struct so_shard_state {
    PyTypeObject *remote_device_type;   /* _C._remote_device */
    PyTypeObject *shard_metadata_type;  /* _C.ShardMetadata */
    PyTypeObject *shard_type;           /* _C.Shard */
    PyTypeObject *chunk_spec_type;      /* _C.ChunkShardingSpecBase */
    PyTypeObject *enum_spec_type;       /* _C.EnumerableShardingSpecBase */
    PyTypeObject *placement_spec_type;  /* _C.DevicePlacementSpec */
    PyTypeObject *sharded_tensor_type;  /* _C.ShardedTensorBase */
    PyTypeObject *sharded_optim_type;   /* _C.ShardedOptimizerBase */
} so_shard_state;

#define SO_SHARD_STATE_FIELDS(X)                                                             \
    X(remote_device_type) X(shard_metadata_type) X(shard_type) X(chunk_spec_type)           \
    X(enum_spec_type) X(placement_spec_type) X(sharded_tensor_type) X(sharded_optim_type)

static inline int so_shard_state_traverse(so_shard_state *s, visitproc visit, void *arg)
{
#define SO_SHARD_VISIT_(f) Py_VISIT(s->f);
    SO_SHARD_STATE_FIELDS(SO_SHARD_VISIT_)
#undef SO_SHARD_VISIT_
    return 0;
}

static inline void so_shard_state_clear(so_shard_state *s)
{
#define SO_SHARD_CLEAR_(f) Py_CLEAR(s->f);
    SO_SHARD_STATE_FIELDS(SO_SHARD_CLEAR_)
#undef SO_SHARD_CLEAR_
}

#endif /* SO_SHARD_STATE_H */
