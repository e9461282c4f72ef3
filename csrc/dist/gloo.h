/* gloo.h — C interface to the Gloo backend (gloo.cc is the project's one C++ file).
 *
 * Everything here runs without the GIL.  Functions return SO_GLOO_OK, or SO_GLOO_ERR /
 * SO_GLOO_TIMEOUT with a message in err (SO_GLOO_ERRLEN bytes).  C++ exceptions never
 * cross this boundary.  After a failure the context is marked broken (a Gloo context is
 * unusable after a timeout or a peer's death) and later calls fail at once.
 * Buffers are contiguous host memory; counts are elements of `dtype` (so_dtype) unless a
 * name says bytes.  Zero-size work must be filtered out by the caller (Gloo crashes on it).
 */
#ifndef SO_DIST_GLOO_H
#define SO_DIST_GLOO_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SO_GLOO_ERRLEN 1024
enum { SO_GLOO_OK = 0, SO_GLOO_ERR = -1, SO_GLOO_TIMEOUT = -2 };
/* Reduction ops (values match shardopt.distributed.ReduceOp); AVG is SUM here, the caller
 * divides. */
enum { SO_RED_SUM = 0, SO_RED_AVG = 1, SO_RED_PRODUCT = 2, SO_RED_MIN = 3, SO_RED_MAX = 4 };

/* The rendezvous store, as callbacks (process_group.c implements them over a Python store
 * object, taking the GIL inside).  Each returns 0, or -1 / -2 (timeout) with err set.
 * get returns a malloc'd value. */
typedef struct {
    void *handle;
    int (*set)(void *handle, const char *key, const char *val, size_t len, char *err);
    int (*get)(void *handle, const char *key, int64_t timeout_ms, char **val, size_t *len,
               char *err);
    int (*wait)(void *handle, const char *const *keys, int nkeys, int64_t timeout_ms,
                char *err);
} so_gloo_store;

typedef struct so_gloo_ctx so_gloo_ctx;

int so_gloo_connect(const so_gloo_store *store, int rank, int size, int64_t timeout_ms,
                    so_gloo_ctx **out, char *err);
void so_gloo_free(so_gloo_ctx *ctx);
/* 1 if an earlier failure made the context unusable; *why receives the reason. */
int so_gloo_broken(so_gloo_ctx *ctx, const char **why);

int so_gloo_allreduce(so_gloo_ctx *ctx, void *buf, size_t count, int dtype, int op,
                      int64_t timeout_ms, char *err);
int so_gloo_reduce(so_gloo_ctx *ctx, void *buf, size_t count, int dtype, int op, int root,
                   int64_t timeout_ms, char *err);
int so_gloo_broadcast(so_gloo_ctx *ctx, void *buf, size_t nbytes, int root,
                      int64_t timeout_ms, char *err);
/* out holds size * nbytes. */
int so_gloo_allgather(so_gloo_ctx *ctx, const void *in, void *out, size_t nbytes,
                      int64_t timeout_ms, char *err);
/* buf holds size * count elements and is overwritten (scratch); this rank's reduced chunk
 * (count elements) is copied to out. */
int so_gloo_reduce_scatter(so_gloo_ctx *ctx, void *buf, void *out, size_t count, int dtype,
                           int op, int64_t timeout_ms, char *err);
/* out (root only, else NULL) holds size * nbytes. */
int so_gloo_gather(so_gloo_ctx *ctx, const void *in, void *out, size_t nbytes, int root,
                   int64_t timeout_ms, char *err);
/* in (root only, else NULL) holds size * nbytes. */
int so_gloo_scatter(so_gloo_ctx *ctx, const void *in, void *out, size_t nbytes, int root,
                    int64_t timeout_ms, char *err);
/* Byte counts per peer; a rank may send or receive nothing. */
int so_gloo_alltoallv(so_gloo_ctx *ctx, const void *in, const int64_t *in_bytes, void *out,
                      const int64_t *out_bytes, int64_t timeout_ms, char *err);
int so_gloo_barrier(so_gloo_ctx *ctx, int64_t timeout_ms, char *err);
int so_gloo_send(so_gloo_ctx *ctx, const void *buf, size_t nbytes, int dst, uint32_t tag,
                 int64_t timeout_ms, char *err);
int so_gloo_recv(so_gloo_ctx *ctx, void *buf, size_t nbytes, int src, uint32_t tag,
                 int64_t timeout_ms, char *err);

#ifdef __cplusplus
}
#endif

#endif /* SO_DIST_GLOO_H */
