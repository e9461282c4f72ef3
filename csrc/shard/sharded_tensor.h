/* sharded_tensor.h — the ShardedTensor object (ShardedTensorBase and ShardedTensor heap
 * types) shared by the files that build it:
 *   sharded_tensor.c  the types: fields, accessors and properties, repr/hash, the
 *                     constructor (allocating this rank's shards), registration
 *   st_init.c         the validated ways to assemble one from local shards:
 *                     _init_from_local_shards_and_global_metadata (both flavours), the local
 *                     and cross-rank checks of init_from_local_shards, the None-size
 *                     recalculation
 *
 * A ShardedTensor owns no storage of its own: it is the list of this rank's Shards plus
 * the global ShardedTensorMetadata, the sharding spec and (ShardedTensor only) the process
 * group.  Collectives stay in Python (shardopt/sharded_tensor/__init__.py), which calls the
 * C checks around them.
 */
#ifndef SO_SHARDED_TENSOR_H
#define SO_SHARDED_TENSOR_H

#include "shard.h"

typedef struct {
    PyObject_HEAD
    PyObject *local_shards;  /* list of Shard (never NULL once allocated) */
    PyObject *metadata;      /* ShardedTensorMetadata or None */
    PyObject *spec;          /* sharding spec or None */
    PyObject *pg;            /* process group (ShardedTensor) or None (Base) */
    PyObject *dict;
    PyObject *weakreflist;
    int init_rrefs;
} SoShardedTensor;

#define SO_ST(o) ((SoShardedTensor *)(o))

/* new ref to modname.name */
PyObject *so_st_import(const char *modname, const char *name);
/* A bare instance of `cls` (a ShardedTensorBase subclass) holding the given parts
 * (borrowed; pg/spec may be None).  New ref. */
PyObject *so_st_from_parts(PyTypeObject *cls, PyObject *local_shards, PyObject *metadata,
                           PyObject *pg, PyObject *spec, int init_rrefs);
/* The default group when pg is None (ValueError if none is initialised).  New ref. */
PyObject *so_st_resolve_pg(PyObject *pg);
/* dist.get_rank() (the global rank); -1 with an exception. */
long so_st_global_rank(void);
/* torch's _parse_and_validate_remote_device for tensor-creating paths: None ->
 * "remote device is None", worker names -> RPC RuntimeError, rank-less -> ValueError
 * (deviation §12.5), a rank outside pg's global ranks -> "Global rank r does not exist in
 * input process group".  Writes the rank; returns 0 / -1. */
int so_st_validate_placement(so_state *st, PyObject *pg, PyObject *placement, long *rank_out);
/* tensor.is_pinned() when the tensor has it, else False (shardopt does not pin yet). */
int so_st_is_pinned(PyObject *tensor);

/* the _init_from_local_shards_and_global_metadata classmethods (st_init.c) */
PyObject *so_st_base_init_from_md(PyObject *cls, PyObject *args, PyObject *kwds);
PyObject *so_st_init_from_md(PyObject *cls, PyObject *args, PyObject *kwds);

int so_register_sharded_tensor(PyObject *m, so_state *st);
int so_register_st_init(PyObject *m, so_state *st);

#endif /* SO_SHARDED_TENSOR_H */
