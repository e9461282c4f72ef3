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

#include "reduce_op.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SO_GLOO_ERRLEN 1024
enum { SO_GLOO_OK = 0, SO_GLOO_ERR = -1, SO_GLOO_TIMEOUT = -2 };
/* Reductions are SO_RED_* (reduce_op.h); AVG is SUM here, the caller divides. */

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
enum { SO_GLOO_RS_RING = 0, SO_GLOO_RS_HALVING_DOUBLING = 1 };
/* Every rank of a group must pick the same algorithm. */
void so_gloo_set_reduce_scatter(so_gloo_ctx *ctx, int algorithm);
/* 1 if an earlier failure made the context unusable; the reason is copied into why
 * (whylen bytes, may be NULL).  Thread-safe: the broken state is behind a mutex because a
 * worker thread (collectives) and the caller's thread (p2p waits) may both set it. */
int so_gloo_broken(so_gloo_ctx *ctx, char *why, size_t whylen);

int so_gloo_allreduce(so_gloo_ctx *ctx, void *buf, size_t count, int dtype, int op,
                      int64_t timeout_ms, char *err);
int so_gloo_reduce(so_gloo_ctx *ctx, void *buf, size_t count, int dtype, int op, int root,
                   int64_t timeout_ms, char *err);
int so_gloo_broadcast(so_gloo_ctx *ctx, void *buf, size_t nbytes, int root,
                      int64_t timeout_ms, char *err);
/* out holds size * nbytes. */
int so_gloo_allgather(so_gloo_ctx *ctx, const void *in, void *out, size_t nbytes,
                      int64_t timeout_ms, char *err);
/* in holds size * count elements (left intact); this rank's reduced chunk (count
 * elements) goes to out.  Algorithm per context (so_gloo_set_reduce_scatter): a pipelined
 * ring over Gloo's unbound buffers (default), or Gloo's ReduceScatterHalvingDoubling,
 * built once per shape and cached. */
int so_gloo_reduce_scatter(so_gloo_ctx *ctx, const void *in, void *out, size_t count,
                           int dtype, int op, int64_t timeout_ms, char *err);
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

/* Point-to-point, in two steps as Gloo's unbound buffers work: post (never blocks; the
 * transfer proceeds in Gloo's I/O thread) then wait.  A send completes only once the peer
 * has posted the matching recv, so posting both sides before waiting cannot deadlock.
 * recv takes a list of acceptable sources (one rank, or every other rank for "any
 * source"); the wait reports which one sent.  Zero-byte messages travel as one dummy
 * byte (Gloo rejects empty buffers) so that matching and the source rank still work.
 * The buffer must stay valid until the wait returns or the handle is freed. */
typedef struct so_gloo_p2p so_gloo_p2p;
int so_gloo_post_send(so_gloo_ctx *ctx, const void *buf, size_t nbytes, int dst, uint32_t tag,
                      so_gloo_p2p **out, char *err);
int so_gloo_post_recv(so_gloo_ctx *ctx, void *buf, size_t nbytes, const int *srcs, int nsrcs,
                      uint32_t tag, so_gloo_p2p **out, char *err);
/* *peer (may be NULL) receives the rank the message came from / went to. */
int so_gloo_p2p_wait(so_gloo_ctx *ctx, so_gloo_p2p *h, int64_t timeout_ms, int *peer,
                     char *err);
void so_gloo_p2p_free(so_gloo_p2p *h);

#ifdef __cplusplus
}
#endif

#endif /* SO_DIST_GLOO_H */
