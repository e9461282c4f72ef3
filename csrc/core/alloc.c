/* alloc.c — host memory for tensors, with a cache of freed large blocks.
 *
 * Small buffers (< 4 MiB): posix_memalign, 64-byte aligned, so vector loads never straddle
 * cache lines and NumPy/DLPack consumers see well-aligned data; glibc's heap recycles them.
 *
 * Large buffers (>= 4 MiB): our own anonymous mappings, 2 MiB aligned and marked
 * MADV_HUGEPAGE.  With transparent huge pages in "madvise" mode (the common default) a fresh
 * 4 KiB-paged mapping costs a page fault per 4 KiB on first touch and a TLB miss per 4 KiB
 * afterwards (filling a new 128 MiB buffer took 4x longer than NumPy, which asks for huge
 * pages the same way).  Even with huge pages a fresh mapping costs a fault and a kernel
 * zero-fill per 2 MiB, every time: a training step that makes a new 16 MiB gradient per layer
 * paid ~9 faults and 16 MiB of zeroing per tensor per step.  So freed large blocks go to a
 * cache instead of back to the kernel, and the next allocation of the same size class takes
 * one back already faulted in (torch's CPU allocator gets a similar effect from glibc, whose
 * heap keeps freed blocks up to 32 MiB; it has no cache of its own).
 *
 * The cache: size classes (2 MiB steps up to 64 MiB, then 8 classes per doubling, so a block
 * is at most 12.5% larger than asked for); an exact class match is a hit; freed blocks are
 * kept newest-last and the oldest are unmapped when the cached total would pass the limit
 * (default min(1 GiB, RAM / 16); SHARDOPT_HOST_CACHE_MB overrides, 0 turns the cache off).
 * A failed mapping empties the cache and retries once (memory pressure); the module's
 * teardown empties it too.  A reused block holds whatever its last owner wrote: `empty`
 * promises nothing, and zeros()/zero_() write their zeros explicitly.  Set
 * SHARDOPT_HOST_ALLOC_POISON=1 to fill every new host buffer (cached or not, any size) with
 * 0xFF bytes (NaN in floating types), which makes code that wrongly relies on fresh memory
 * being zero fail loudly in tests.  Under AddressSanitizer a cached block is poisoned, so a
 * use after free is still reported.
 *
 * The cache is process-wide (it is the process's memory, like malloc's heap) and guarded by
 * a mutex: storages die on any thread that drops the last reference (Gloo and rank worker
 * threads included).  Only storages that own host memory (SO_FREE_HOST) come here; memory
 * that belongs to NumPy arrays or DLPack producers is never cached.  Absurd sizes raise
 * MemoryError.
 */
#define _GNU_SOURCE
#include "device.h"
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define SO_ASAN_POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define SO_ASAN_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define SO_ASAN_POISON(p, n) ((void)(p), (void)(n))
#define SO_ASAN_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#define SO_HUGE_THRESHOLD ((size_t)4 << 20)
#define SO_HUGE_ALIGN ((size_t)2 << 20)
#define SO_CACHE_SLOTS 256 /* at most this many cached blocks (each >= 4 MiB) */

typedef struct {
    void *ptr;
    size_t len; /* mapping length = size class */
} cache_entry;

static struct {
    pthread_mutex_t lock;
    cache_entry entries[SO_CACHE_SLOTS]; /* oldest first */
    int count;
    size_t bytes;     /* sum of entries' len */
    size_t limit;     /* cap on bytes */
    int poison;       /* SHARDOPT_HOST_ALLOC_POISON */
    int64_t hits, misses, evictions;
} cache = {.lock = PTHREAD_MUTEX_INITIALIZER};

static pthread_once_t cache_once = PTHREAD_ONCE_INIT;

/* fork(): the child gets a copy of the cache (mappings are inherited), but a lock held by
 * another thread at the fork would stay locked forever in the child. */
static void fork_prepare(void) { pthread_mutex_lock(&cache.lock); }
static void fork_parent(void) { pthread_mutex_unlock(&cache.lock); }
static void fork_child(void) { pthread_mutex_init(&cache.lock, NULL); }

static void cache_init(void)
{
    const char *env = getenv("SHARDOPT_HOST_CACHE_MB");
    long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
    size_t limit = (size_t)1 << 30;
    if (pages > 0 && psz > 0 && (size_t)pages * (size_t)psz / 16 < limit)
        limit = (size_t)pages * (size_t)psz / 16;
    if (env && *env) {
        char *end = NULL;
        unsigned long long mb = strtoull(env, &end, 10);
        /* a malformed value keeps the default: an allocator cannot raise at import time */
        if (end && *end == '\0' && mb < ((unsigned long long)1 << 30)) limit = (size_t)mb << 20;
    }
    cache.limit = limit;
    env = getenv("SHARDOPT_HOST_ALLOC_POISON");
    cache.poison = env && *env && strcmp(env, "0") != 0;
    pthread_atfork(fork_prepare, fork_parent, fork_child);
#if defined(__GLIBC__)
    /* glibc maps every block above its mmap threshold (128 KiB at start) and unmaps it on
     * free; the first time a mapped block is freed it raises the threshold to that block's
     * size (up to 32 MiB) and the heap trim threshold to twice that, so later blocks of up to
     * that size come from the reused heap.  Before this cache our 4 MiB+ frees triggered
     * that, as torch's do (it allocates everything through glibc).  Our large blocks no
     * longer pass through glibc, so the threshold would stay at 128 KiB and every 1 MiB
     * activation would be a fresh mapping (measured: ~930 page faults per big-MLP step
     * instead of ~19).  One mapped malloc/free of 4 MiB puts glibc where it would have been,
     * keeping its dynamic rule (a fixed mallopt would turn that rule off for everything else
     * in the process, torch's tensors included); if the user fixed the thresholds
     * (MALLOC_MMAP_THRESHOLD_, mallopt) glibc ignores this free, as it should. */
    {
        void *volatile probe = malloc(SO_HUGE_THRESHOLD);
        free(probe);
    }
#endif
}

/* The mapping length for a large request: 2 MiB steps up to 64 MiB, then 8 classes per
 * power of two (each a multiple of 2 MiB). */
static size_t size_class(size_t nbytes)
{
    size_t gran = SO_HUGE_ALIGN;
    if (nbytes > ((size_t)64 << 20)) {
        int top = 63 - __builtin_clzll((unsigned long long)(nbytes - 1));
        gran = (size_t)1 << (top - 3);
    }
    return (nbytes + gran - 1) & ~(gran - 1);
}

/* A fresh 2 MiB-aligned anonymous mapping of len bytes (len a multiple of 2 MiB), or NULL. */
static void *map_aligned(size_t len)
{
    size_t over = len + SO_HUGE_ALIGN;
    char *raw = mmap(NULL, over, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED) return NULL;
    uintptr_t a = ((uintptr_t)raw + SO_HUGE_ALIGN - 1) & ~(uintptr_t)(SO_HUGE_ALIGN - 1);
    char *p = (char *)a;
    size_t head = (size_t)(p - raw), tail = over - head - len;
    if (head) munmap(raw, head);
    if (tail) munmap(p + len, tail);
#ifdef MADV_HUGEPAGE
    (void)madvise(p, len, MADV_HUGEPAGE); /* a hint only */
#endif
    return p;
}

static void unmap_block(void *p, size_t len)
{
    SO_ASAN_UNPOISON(p, len);
    munmap(p, len);
}

/* Unmap cached blocks, oldest first, until at most `keep` bytes stay cached.  The caller
 * holds the lock; the unmapping itself is done by the caller after unlocking, from `out`
 * (at most SO_CACHE_SLOTS entries), so that no thread waits on munmap. */
static int cache_trim_locked(size_t keep, cache_entry *out)
{
    int n = 0;
    while (cache.count > 0 && cache.bytes > keep) {
        out[n++] = cache.entries[0];
        cache.bytes -= cache.entries[0].len;
        cache.count--;
        memmove(cache.entries, cache.entries + 1, sizeof(cache_entry) * (size_t)cache.count);
        cache.evictions++;
    }
    return n;
}

static void unmap_all(cache_entry *blocks, int n)
{
    for (int i = 0; i < n; i++) unmap_block(blocks[i].ptr, blocks[i].len);
}

static void *large_alloc(size_t nbytes)
{
    size_t len = size_class(nbytes);
    void *p = NULL;
    pthread_mutex_lock(&cache.lock);
    for (int i = cache.count - 1; i >= 0; i--) { /* newest first: likeliest still in cache */
        if (cache.entries[i].len == len) {
            p = cache.entries[i].ptr;
            cache.bytes -= len;
            cache.count--;
            memmove(cache.entries + i, cache.entries + i + 1,
                    sizeof(cache_entry) * (size_t)(cache.count - i));
            break;
        }
    }
    if (p) cache.hits++;
    else cache.misses++;
    pthread_mutex_unlock(&cache.lock);
    if (p) {
        SO_ASAN_UNPOISON(p, len);
        return p;
    }
    p = map_aligned(len);
    if (!p) { /* memory pressure: give the cached blocks back to the kernel and retry */
        so_host_cache_release();
        p = map_aligned(len);
    }
    return p;
}

static void large_free(void *p, size_t nbytes)
{
    size_t len = size_class(nbytes);
    cache_entry out[SO_CACHE_SLOTS + 1];
    int n = 0;
    pthread_mutex_lock(&cache.lock);
    if (len > cache.limit) {
        out[n++] = (cache_entry){p, len};
    } else {
        n = cache_trim_locked(cache.limit - len, out);
        if (cache.count == SO_CACHE_SLOTS) n += cache_trim_locked(cache.bytes - 1, out + n);
        cache.entries[cache.count++] = (cache_entry){p, len};
        cache.bytes += len;
        SO_ASAN_POISON(p, len);
    }
    pthread_mutex_unlock(&cache.lock);
    unmap_all(out, n);
}

void *so_host_alloc(size_t nbytes)
{
    void *p = NULL;
    pthread_once(&cache_once, cache_init);
    if (nbytes == 0) nbytes = 1; /* keep a valid, unique pointer for empty tensors */
    if (nbytes > ((size_t)1 << 50))
        return PyErr_Format(PyExc_MemoryError, "cannot allocate %zu bytes of host memory", nbytes);
    if (nbytes >= SO_HUGE_THRESHOLD) {
        p = large_alloc(nbytes);
    } else {
        size_t rounded = (nbytes + 63) & ~(size_t)63;
        if (posix_memalign(&p, 64, rounded) != 0) p = NULL;
    }
    if (p == NULL)
        return PyErr_Format(PyExc_MemoryError, "cannot allocate %zu bytes of host memory", nbytes);
    if (cache.poison) memset(p, 0xFF, nbytes);
    return p;
}

void so_host_free(void *ptr, size_t nbytes)
{
    if (ptr == NULL) return;
    if (nbytes == 0) nbytes = 1;
    if (nbytes >= SO_HUGE_THRESHOLD) large_free(ptr, nbytes);
    else free(ptr);
}

void so_host_cache_release(void)
{
    cache_entry out[SO_CACHE_SLOTS];
    int n;
    pthread_once(&cache_once, cache_init);
    pthread_mutex_lock(&cache.lock);
    n = cache_trim_locked(0, out);
    pthread_mutex_unlock(&cache.lock);
    unmap_all(out, n);
}

size_t so_host_cache_set_limit(size_t limit)
{
    cache_entry out[SO_CACHE_SLOTS];
    size_t old;
    int n;
    pthread_once(&cache_once, cache_init);
    pthread_mutex_lock(&cache.lock);
    old = cache.limit;
    cache.limit = limit;
    n = cache_trim_locked(limit, out);
    pthread_mutex_unlock(&cache.lock);
    unmap_all(out, n);
    return old;
}

void so_host_cache_stats(so_host_cache_info *out)
{
    pthread_once(&cache_once, cache_init);
    pthread_mutex_lock(&cache.lock);
    out->cached_bytes = cache.bytes;
    out->cached_blocks = cache.count;
    out->limit = cache.limit;
    out->hits = cache.hits;
    out->misses = cache.misses;
    out->evictions = cache.evictions;
    out->poison = cache.poison;
    pthread_mutex_unlock(&cache.lock);
}
