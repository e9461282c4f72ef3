/* shard.h — the process-group-free half of torch.distributed._shard, as CPython types:
 * placements (`_remote_device`), ShardMetadata, Shard, the data halves of
 * ChunkShardingSpec / EnumerableShardingSpec (their Python subclasses in
 * shardopt/sharding_spec add build_metadata and shard), DevicePlacementSpec, and the chunk
 * math + validators that ShardedTensor builds on.
 *
 * Every type here is a "record": PyObject_HEAD followed by N object fields, exposed as
 * writable attributes like the fields of torch's dataclasses.  The types live in typed
 * fields of the module state (so_state.shard, shard_state.h).
 */
#ifndef SO_SHARD_H
#define SO_SHARD_H

#include "../module.h"
#include <stdint.h>
#include <structmember.h>

/* PyObject_HEAD + fields; field meaning per type is listed below. */
typedef struct {
    PyObject_HEAD
    PyObject *f[];
} SoRecord;

#define SO_REC(o) ((SoRecord *)(o))
#define SO_REC_FIELD_OFFSET(i) ((Py_ssize_t)(offsetof(SoRecord, f) + (i) * sizeof(PyObject *)))

/* _remote_device: f[0] worker name (str|None), f[1] rank (int|None), f[2] device */
#define SO_RD_WORKER(o) (SO_REC(o)->f[0])
#define SO_RD_RANK(o) (SO_REC(o)->f[1])
#define SO_RD_DEVICE(o) (SO_REC(o)->f[2])
/* ShardMetadata: f[0] shard_offsets (list), f[1] shard_sizes (list), f[2] placement */
#define SO_SMD_OFFSETS(o) (SO_REC(o)->f[0])
#define SO_SMD_SIZES(o) (SO_REC(o)->f[1])
#define SO_SMD_PLACEMENT(o) (SO_REC(o)->f[2])


/* ---- placements (remote_device.c) ---- */
/* Parse a str / shardopt.device into a new _remote_device (torch's grammar and errors). */
PyObject *so_remote_device_new(so_state *st, PyObject *spec);
/* obj if it already is a _remote_device (new ref), else a freshly parsed one. */
PyObject *so_remote_device_coerce(so_state *st, PyObject *obj);

/* ---- chunk math (validate.c): torch.chunk's rule, always `chunks` pieces ---- */
/* Python floor division semantics; chunks == 0 sets ZeroDivisionError and returns -1
 * (check PyErr_Occurred when the inputs can be negative). */
int64_t so_split_size(int64_t dim_size, int64_t chunks);
static inline int64_t so_chunked_dim_size(int64_t dim_size, int64_t split_size, int64_t idx)
{
    int64_t hi = split_size * (idx + 1);
    int64_t r = (dim_size < hi ? dim_size : hi) - split_size * idx;
    return r > 0 ? r : 0;
}

/* ---- validators (validate.c); each returns 0 / -1 with ValueError set ---- */
/* Overlap check over a sequence of ShardMetadata-like objects (attributes shard_offsets,
 * shard_sizes). Zero-volume shards are exempt (shardopt deviation §12.4).  Sort + sweep. */
int so_validate_non_overlapping(PyObject *shards);
/* Rank, bounds (zero-volume exempt) and total-volume check of shards against tensor dims. */
int so_check_tensor(PyObject *shards, PyObject *tensor_dims);

/* Reads md.shard_offsets / md.shard_sizes (fast path for ShardMetadata) into int64
 * arrays of length `ndim` (which must match).  Returns 0 / -1. */
int so_shard_md_read(PyObject *md, Py_ssize_t ndim, int64_t *off, int64_t *sz);
/* len(md.shard_offsets), or -1 with an exception. */
Py_ssize_t so_shard_md_ndim(PyObject *md);

/* ---- shared record plumbing (metadata.c) ---- */
/* dataclass-style repr "QualName(name=value, ...)" over the first n fields. */
PyObject *so_record_repr(PyObject *self, int n, const char *const *names);
/* dataclass-style ==: same class and fields equal; NotImplemented otherwise. */
PyObject *so_record_richcompare(PyObject *a, PyObject *b, int op, int n);
/* (type(self), (f0, ..., fn-1)[, __dict__]) */
PyObject *so_record_reduce(PyObject *self, int n);
int so_record_traverse(PyObject *self, visitproc visit, void *arg, int n);
int so_record_clear(PyObject *self, int n);
void so_record_dealloc(PyObject *self, int n);
/* Creates `spec` as a heap type of module m (subclassing `base` unless NULL), adds it to
 * m and stores a strong reference in *slot (a field of so_state.shard).  0 / -1. */
int so_shard_add_type(PyObject *m, PyType_Spec *spec, PyObject *base, PyTypeObject **slot);

/* Generates <prefix>_traverse/_clear/_dealloc for a record type with N fields. */
#define SO_RECORD_GC(prefix, N)                                                              \
    static int prefix##_traverse(PyObject *s, visitproc v, void *a)                          \
    {                                                                                        \
        return so_record_traverse(s, v, a, N);                                               \
    }                                                                                        \
    static int prefix##_clear(PyObject *s) { return so_record_clear(s, N); }                 \
    static void prefix##_dealloc(PyObject *s) { so_record_dealloc(s, N); }

/* registration, one per file; so_register_shard (spec.c) calls the others */
int so_register_remote_device(PyObject *m, so_state *st);
int so_register_shard_metadata(PyObject *m, so_state *st);
int so_register_shard_validate(PyObject *m, so_state *st);

#endif /* SO_SHARD_H */
