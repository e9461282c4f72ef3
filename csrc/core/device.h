/* device.h — CUDA runtime access behind a C interface that also exists in CPU-only builds.
 *
 * Every function here is safe to call on a machine with no GPU and no driver, and in a build
 * without CUDA (SHARDOPT_WITH_CUDA undefined): it then reports "not available" or raises a
 * RuntimeError that says why.  Nothing here runs at import time, so importing shardopt never
 * initialises CUDA.  Functions returning int follow errors.h (0 ok, -1 with exception set)
 * unless documented otherwise.
 */
#ifndef SO_DEVICE_H
#define SO_DEVICE_H

#include "errors.h"
#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SO_MAX_CUDA_DEVICES 64

/* The core layer's part of the module state (module.h): one compute stream per device
 * (cudaStream_t), created on first use by so_cuda_stream and destroyed by
 * so_cuda_release_streams when the module is freed. */
typedef struct so_core_state {
    void *cuda_streams[SO_MAX_CUDA_DEVICES];
} so_core_state;

/* 1 if this build has CUDA compiled in. */
int so_cuda_compiled(void);

/* Number of usable CUDA devices; 0 when none, no driver, or a CPU-only build.
 * Never raises.  *why_out (optional) receives a static reason string when 0. */
int so_cuda_device_count(const char **why_out);

/* Raise RuntimeError (naming the reason) unless cuda:`index` exists. */
int so_cuda_require(int index);

/* Current device of the calling thread (cudaGetDevice) / set it. */
int so_cuda_get_device(int *index_out);
int so_cuda_set_device(int index);

/* The per-device compute stream (created on first use, non-blocking w.r.t. the legacy
 * default stream).  Returns NULL with an exception set on failure. Stream objects are kept
 * in module state — callers pass st->core.cuda_streams. */
void *so_cuda_stream(void **streams, int index);

/* Stream-ordered allocation on `stream` (cudaMallocAsync) and its release. */
int so_cuda_malloc(int index, void *stream, size_t nbytes, void **ptr_out);
void so_cuda_free(int index, void *stream, void *ptr); /* never raises; logs on failure */

/* Copies.  kind: 0 h2d, 1 d2h, 2 d2d.  Synchronous w.r.t. the host for d2h. */
int so_cuda_memcpy(void *dst, const void *src, size_t nbytes, int kind, void *stream);
int so_cuda_stream_synchronize(void *stream);
int so_cuda_device_synchronize(int index);
/* Destroy streams at module teardown (never raises). */
void so_cuda_release_streams(void **streams);

/* Host allocation (alloc.c), 64-byte aligned; >= 4 MiB: 2 MiB-aligned huge-page mappings
 * recycled through a size-class cache.  Contents are undefined (a reused block keeps old
 * data).  Raises MemoryError on failure (also for absurd sizes).  so_host_free must get the
 * nbytes the block was allocated with (it picks the block's size class from it); thread-safe. */
void *so_host_alloc(size_t nbytes);
void so_host_free(void *ptr, size_t nbytes);

typedef struct {
    size_t cached_bytes, limit;
    int cached_blocks, poison;
    int64_t hits, misses, evictions;
} so_host_cache_info;
/* Unmap every cached block (never raises). */
void so_host_cache_release(void);
/* Set the cap on cached bytes (0 = no caching), trimming to it; returns the old cap. */
size_t so_host_cache_set_limit(size_t limit);
void so_host_cache_stats(so_host_cache_info *out);

#ifdef __cplusplus
}
#endif

#endif /* SO_DEVICE_H */
