/* tensor.h — the Storage and TensorBase objects, and the C API other layers use on them.
 *
 * Storage: a refcounted buffer (pointer, nbytes, device, how to free it).  A storage never
 * changes size or address once created, so anything that exports it (NumPy views, DLPack
 * capsules, __array_interface__) only has to hold a reference to it.
 * TensorBase: a strided view (dtype, shape, strides in elements, offset in elements) onto a
 * storage, plus the slots autograd needs (requires_grad, grad, grad_fn).  The version counter
 * lives in the storage so all views of one buffer share it (as torch's views share theirs).
 */
#ifndef SO_TENSOR_H
#define SO_TENSOR_H

#include "../module.h"

#ifdef __cplusplus
extern "C" {
#endif

/* How a storage's memory is released. */
typedef enum {
    SO_FREE_HOST = 0,   /* so_host_free(data, nbytes) */
    SO_FREE_CUDA = 1,   /* cudaFreeAsync on `stream` */
    SO_FREE_OWNER = 2,  /* memory belongs to `owner` (NumPy array, DLPack capsule holder...) */
} so_free_kind;

typedef struct {
    PyObject_HEAD
    char *data;
    int64_t nbytes;
    so_device device;
    int free_kind;
    void *stream;       /* SO_FREE_CUDA: stream the memory was allocated on */
    PyObject *owner;    /* SO_FREE_OWNER: strong ref released on dealloc (may be NULL) */
    void (*owner_release)(void *ctx); /* SO_FREE_OWNER alt: called with owner_ctx (DLPack) */
    void *owner_ctx;
    uint64_t version;   /* bumped by every in-place write through any view */
} SoStorage;

typedef struct {
    PyObject_HEAD
    SoStorage *storage;  /* strong ref, never NULL for an initialised tensor */
    int64_t offset;      /* in elements */
    int ndim;
    int dtype;           /* so_dtype */
    int64_t shape[SO_MAX_DIMS];
    int64_t strides[SO_MAX_DIMS];
    /* autograd slots (managed by shardopt.autograd in Python) */
    char requires_grad;
    PyObject *grad;      /* Tensor or NULL (None) */
    PyObject *grad_fn;   /* Node or NULL (None) */
    PyObject *grad_acc;  /* a leaf's weakref to its AccumulateGrad node, or NULL (autograd) */
    PyObject *weakreflist;
} SoTensor;

/* Type checks / accessors. */
int so_tensor_check(so_state *st, PyObject *obj);
static inline char *so_tensor_data(const SoTensor *t)
{
    /* a meta storage has no memory: its tensors' data pointer is NULL (torch's data_ptr 0) */
    if (!t->storage->data) return NULL;
    return t->storage->data + t->offset * so_dtype_itemsize(t->dtype);
}
static inline so_device so_tensor_device(const SoTensor *t) { return t->storage->device; }
int64_t so_tensor_numel(const SoTensor *t);
int so_tensor_is_contiguous(const SoTensor *t);
void so_tensor_to_view(const SoTensor *t, so_view *out);
static inline void so_tensor_bump_version(SoTensor *t) { t->storage->version++; }

/* Allocation of storages. nbytes 0 is allowed (data may be NULL then). */
SoStorage *so_storage_alloc(so_state *st, so_device dev, int64_t nbytes);
/* Wrap foreign memory kept alive by `owner` (a new reference is taken). */
SoStorage *so_storage_wrap_owner(so_state *st, so_device dev, void *data, int64_t nbytes,
                                 PyObject *owner);
/* Wrap foreign memory released by calling release(ctx) on dealloc (DLPack deleters). */
SoStorage *so_storage_wrap_release(so_state *st, so_device dev, void *data, int64_t nbytes,
                                   void (*release)(void *), void *ctx);

/* New contiguous tensor of st->tensor.tensor_class with uninitialised contents.  Validates sizes
 * with torch's messages (negative or an overflowing product -> RuntimeError; too many bytes
 * -> MemoryError). */
SoTensor *so_tensor_empty(so_state *st, int ndim, const int64_t *shape, int dtype, so_device dev);
/* Sizes every tensor must have: none negative (RuntimeError "Trying to create tensor with
 * negative dimension ..."), and a product that does not overflow (RuntimeError "numel:
 * integer multiplication overflow"), as torch checks. 0 / -1 with the error set. */
int so_check_sizes(int ndim, const int64_t *shape);
/* New tensor (st->tensor.tensor_class) viewing `storage` with the given geometry.  Checks the
 * sizes (so_check_sizes) and nothing else. */
SoTensor *so_tensor_from_storage(so_state *st, SoStorage *storage, int64_t offset, int ndim,
                                 const int64_t *shape, const int64_t *strides, int dtype);
/* Row-major contiguous strides of `shape` into `strides`; returns the element count, or -1
 * (no error set) when it overflows int64. */
int64_t so_contiguous_strides(int ndim, const int64_t *shape, int64_t *strides);
/* A view of `base` sharing its storage with new geometry. */
SoTensor *so_tensor_as_strided(so_state *st, SoTensor *base, int ndim, const int64_t *shape,
                               const int64_t *strides, int64_t offset);

/* Argument conversion helpers used by every binding. */
/* dtype object or None (-> default_dtype) to code; raises TypeError naming `argname`. */
/* Refuse a complex tensor in a kernel that has no complex loop: RuntimeError naming the op
 * and the dtype (torch's "not implemented for 'ComplexFloat'"). 0 if t is real, else -1. */
int so_check_not_complex(const SoTensor *t, const char *fname);
int so_parse_dtype(so_state *st, PyObject *obj, int default_dtype, const char *argname, int *out);
/* device object, str, int (cuda ordinal) or None (-> cpu) to so_device; validates CUDA. */
int so_parse_device(so_state *st, PyObject *obj, const char *argname, so_device *out);
/* Sizes from a tuple/list/torch-like varargs tuple of ints; raises naming `argname`. */
int so_parse_shape(PyObject *obj, const char *argname, int *ndim_out, int64_t *shape_out);
/* A sequence of ints (negative values allowed: callers validate), at most SO_MAX_DIMS. */
int so_parse_int_seq(PyObject *obj, const char *argname, int *nd, int64_t *out);
PyObject *so_dtype_object(so_state *st, int dtype);          /* new ref */
PyObject *so_device_object(so_state *st, so_device dev);     /* new ref */
/* Normalise a dim in [-ndim, ndim) (ndim 0 treated as 1, like torch); IndexError otherwise. */
int so_wrap_dim(int64_t dim, int ndim, int64_t *out);
/* Shape string like "[2, 3]" for error messages (writes into buf). */
const char *so_shape_str(int ndim, const int64_t *shape, char *buf, size_t buflen);

#ifdef __cplusplus
}
#endif

#endif /* SO_TENSOR_H */
