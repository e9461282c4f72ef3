/* validate.c — the chunk rule and the shard-layout validators of
 * torch.distributed._shard.sharding_spec._internals, plus
 * _infer_chunk_layout (the decision half of torch's _infer_sharding_spec_from_shards_metadata).
 *
 * Overlap check: shards are loaded once into int64 arrays, zero-volume shards are dropped
 * (shardopt deviation §12.4: they occupy no elements, so they can neither overlap nor
 * exceed the tensor, whatever their unclamped chunk offsets say), then
 *   - one sharded dim: sort the intervals, compare neighbours            O(n log n)
 *   - several: sort by the sweep dim (largest extent of the first shard) and sweep,
 *     keeping the shards that cross the sweep plane ordered by their end  O(n log n + n·a)
 * where a is the number of shards crossing the plane (√n for a square grid), as torch's
 * PR #167073 sweep.  The reported pair and message match torch's.
 */
#include "shard.h"
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ chunk rule */

int64_t so_split_size(int64_t dim_size, int64_t chunks)
{
    int64_t num, q;
    if (chunks == 0)
        return so_fail(PyExc_ZeroDivisionError, "integer division or modulo by zero");
    num = dim_size + chunks - 1;
    q = num / chunks;
    if (num % chunks != 0 && ((num < 0) != (chunks < 0))) q -= 1; /* floor, like Python // */
    return q;
}

/* ------------------------------------------------------------------ loading shards */

static int read_int64_seq(PyObject *seq, Py_ssize_t n, int64_t *out, const char *what)
{
    PyObject *fast = PySequence_Fast(seq, what);
    if (!fast) return -1;
    if (PySequence_Fast_GET_SIZE(fast) != n) {
        Py_ssize_t got = PySequence_Fast_GET_SIZE(fast);
        Py_DECREF(fast);
        return so_fail(PyExc_ValueError, "%s has %zd elements, expected %zd", what, got, n);
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *ix = PyNumber_Index(PySequence_Fast_GET_ITEM(fast, i));
        long long v;
        if (!ix) {
            Py_DECREF(fast);
            return -1;
        }
        v = PyLong_AsLongLong(ix);
        Py_DECREF(ix);
        if (v == -1 && PyErr_Occurred()) {
            Py_DECREF(fast);
            return -1;
        }
        out[i] = (int64_t)v;
    }
    Py_DECREF(fast);
    return 0;
}

Py_ssize_t so_shard_md_ndim(PyObject *md)
{
    PyObject *off = PyObject_GetAttrString(md, "shard_offsets");
    Py_ssize_t n;
    if (!off) return -1;
    n = PyObject_Size(off);
    Py_DECREF(off);
    return n;
}

int so_shard_md_read(PyObject *md, Py_ssize_t ndim, int64_t *off, int64_t *sz)
{
    PyObject *o = PyObject_GetAttrString(md, "shard_offsets"), *s = NULL;
    int rc = -1;
    if (!o) return -1;
    s = PyObject_GetAttrString(md, "shard_sizes");
    if (s && read_int64_seq(o, ndim, off, "shard_offsets") == 0 &&
        read_int64_seq(s, ndim, sz, "shard_sizes") == 0)
        rc = 0;
    Py_DECREF(o);
    Py_XDECREF(s);
    return rc;
}

typedef struct {
    PyObject *fast;  /* the shards, as a fast sequence (for messages) */
    Py_ssize_t n, nd;
    int64_t *off, *sz; /* n x nd, row-major */
} shard_set;

static void shard_set_free(shard_set *s)
{
    Py_CLEAR(s->fast);
    PyMem_Free(s->off);
    PyMem_Free(s->sz);
    s->off = s->sz = NULL;
}

static int shard_set_load(shard_set *s, PyObject *shards)
{
    memset(s, 0, sizeof *s);
    s->fast = PySequence_Fast(shards, "shards must be a sequence of ShardMetadata");
    if (!s->fast) return -1;
    s->n = PySequence_Fast_GET_SIZE(s->fast);
    if (s->n == 0) return 0;
    int rc = -1;
    SO_CHECK_RC(s->nd = so_shard_md_ndim(PySequence_Fast_GET_ITEM(s->fast, 0)), done);
    s->off = PyMem_Malloc(sizeof(int64_t) * (size_t)(s->n * s->nd + 1));
    s->sz = PyMem_Malloc(sizeof(int64_t) * (size_t)(s->n * s->nd + 1));
    if (!s->off || !s->sz) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < s->n; i++) {
        PyObject *md = PySequence_Fast_GET_ITEM(s->fast, i);
        Py_ssize_t nd = so_shard_md_ndim(md);
        SO_CHECK_RC(nd, done);
        SO_CHECK(nd == s->nd, done, PyExc_ValueError,
                 "Found inconsistent ranks for shards: %zd and %zd", s->nd, nd);
        SO_CHECK_RC(so_shard_md_read(md, nd, s->off + i * nd, s->sz + i * nd), done);
    }
    rc = 0;
done:
    if (rc < 0) shard_set_free(s);
    return rc;
}

static int zero_volume(const shard_set *s, Py_ssize_t i)
{
    for (Py_ssize_t d = 0; d < s->nd; d++)
        if (s->sz[i * s->nd + d] == 0) return 1;
    return 0;
}

/* ------------------------------------------------------------------ stable sort with context */

typedef int (*idx_cmp)(Py_ssize_t a, Py_ssize_t b, const void *ctx);

/* Bottom-up merge sort of an index array (stable: equal keys keep their order). */
static int sort_indices(Py_ssize_t *idx, Py_ssize_t n, idx_cmp cmp, const void *ctx)
{
    Py_ssize_t *tmp = PyMem_Malloc(sizeof(Py_ssize_t) * (size_t)(n + 1)), *src = idx, *dst = tmp;
    if (!tmp) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t w = 1; w < n; w *= 2) {
        for (Py_ssize_t lo = 0; lo < n; lo += 2 * w) {
            Py_ssize_t mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n;
            Py_ssize_t i = lo, j = mid, k = lo;
            while (i < mid && j < hi) dst[k++] = cmp(src[j], src[i], ctx) < 0 ? src[j++] : src[i++];
            while (i < mid) dst[k++] = src[i++];
            while (j < hi) dst[k++] = src[j++];
        }
        Py_ssize_t *t = src;
        src = dst;
        dst = t;
    }
    if (src != idx) memcpy(idx, src, sizeof(Py_ssize_t) * (size_t)n);
    PyMem_Free(tmp);
    return 0;
}

static int cmp_i64(int64_t a, int64_t b) { return (a > b) - (a < b); }

typedef struct {
    const shard_set *s;
    Py_ssize_t sweep;         /* dim sorted on first */
    const Py_ssize_t *others; /* then these dims' offsets */
    Py_ssize_t nothers;
    int by_end;               /* 1-D case: (start, inclusive end) */
} sort_ctx;

static int cmp_shards(Py_ssize_t a, Py_ssize_t b, const void *vctx)
{
    const sort_ctx *c = vctx;
    const int64_t *oa = c->s->off + a * c->s->nd, *ob = c->s->off + b * c->s->nd;
    int r = cmp_i64(oa[c->sweep], ob[c->sweep]);
    if (r) return r;
    if (c->by_end)
        return cmp_i64(oa[c->sweep] + c->s->sz[a * c->s->nd + c->sweep],
                       ob[c->sweep] + c->s->sz[b * c->s->nd + c->sweep]);
    for (Py_ssize_t k = 0; k < c->nothers; k++) {
        r = cmp_i64(oa[c->others[k]], ob[c->others[k]]);
        if (r) return r;
    }
    return 0;
}

/* ------------------------------------------------------------------ overlap */

static int boxes_overlap(const shard_set *s, Py_ssize_t a, Py_ssize_t b)
{
    const int64_t *oa = s->off + a * s->nd, *ob = s->off + b * s->nd;
    const int64_t *za = s->sz + a * s->nd, *zb = s->sz + b * s->nd;
    for (Py_ssize_t d = 0; d < s->nd; d++)
        if (oa[d] >= ob[d] + zb[d] || ob[d] >= oa[d] + za[d]) return 0;
    return 1;
}

/* Sweep over `sweep` with the crossing shards kept sorted by (end, index).  keep[] holds
 * the non-empty shards, already sorted by the sweep key.  Sets *pa, *pb to the first pair. */
static int sweep_overlap(const shard_set *s, const Py_ssize_t *keep, Py_ssize_t m, Py_ssize_t sweep,
                         Py_ssize_t *pa, Py_ssize_t *pb)
{
    int64_t *aend = PyMem_Malloc(sizeof(int64_t) * (size_t)(m + 1));
    Py_ssize_t *aidx = PyMem_Malloc(sizeof(Py_ssize_t) * (size_t)(m + 1)), na = 0;
    if (!aend || !aidx) {
        PyMem_Free(aend);
        PyMem_Free(aidx);
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t t = 0; t < m && *pa < 0; t++) {
        Py_ssize_t cur = keep[t], lo = 0, hi = na;
        int64_t start = s->off[cur * s->nd + sweep], end = start + s->sz[cur * s->nd + sweep];
        /* drop shards ending at or before this start (torch: bisect_right(active, (start, max))) */
        while (lo < hi) {
            Py_ssize_t mid = (lo + hi) / 2;
            if (aend[mid] <= start) lo = mid + 1;
            else hi = mid;
        }
        if (lo) {
            memmove(aend, aend + lo, sizeof(int64_t) * (size_t)(na - lo));
            memmove(aidx, aidx + lo, sizeof(Py_ssize_t) * (size_t)(na - lo));
            na -= lo;
        }
        for (Py_ssize_t j = 0; j < na; j++) {
            if (boxes_overlap(s, cur, aidx[j])) {
                *pa = aidx[j];
                *pb = cur;
                break;
            }
        }
        /* insert (end, cur) keeping (end, index) order */
        lo = 0;
        hi = na;
        while (lo < hi) {
            Py_ssize_t mid = (lo + hi) / 2;
            if (aend[mid] < end || (aend[mid] == end && aidx[mid] < cur)) lo = mid + 1;
            else hi = mid;
        }
        memmove(aend + lo + 1, aend + lo, sizeof(int64_t) * (size_t)(na - lo));
        memmove(aidx + lo + 1, aidx + lo, sizeof(Py_ssize_t) * (size_t)(na - lo));
        aend[lo] = end;
        aidx[lo] = cur;
        na++;
    }
    PyMem_Free(aend);
    PyMem_Free(aidx);
    return 0;
}

int so_validate_non_overlapping(PyObject *shards)
{
    shard_set s;
    Py_ssize_t *keep = NULL, *sharded = NULL, m = 0, nsd = 0, pa = -1, pb = -1;
    int rc = -1;
    if (shard_set_load(&s, shards) < 0) return -1;
    if (s.n <= 1) {
        rc = 0;
        goto done;
    }
    keep = PyMem_Malloc(sizeof(Py_ssize_t) * (size_t)s.n);
    sharded = PyMem_Malloc(sizeof(Py_ssize_t) * (size_t)(s.nd + 1));
    if (!keep || !sharded) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < s.n; i++)
        if (!zero_volume(&s, i)) keep[m++] = i;
    if (m <= 1) {
        rc = 0;
        goto done;
    }
    /* sharded dims: where some shard differs from the first one */
    for (Py_ssize_t d = 0; d < s.nd; d++) {
        const Py_ssize_t f = keep[0] * s.nd + d;
        for (Py_ssize_t j = 1; j < m; j++) {
            const Py_ssize_t g = keep[j] * s.nd + d;
            if (s.off[g] != s.off[f] || s.sz[g] != s.sz[f]) {
                sharded[nsd++] = d;
                break;
            }
        }
    }
    if (nsd == 0) {
        /* identical non-empty boxes: any two overlap */
        pa = keep[0];
        pb = keep[1];
    } else if (nsd == 1) {
        sort_ctx c = {&s, sharded[0], NULL, 0, 1};
        if (sort_indices(keep, m, cmp_shards, &c) < 0) goto done;
        for (Py_ssize_t j = 0; j + 1 < m; j++) {
            Py_ssize_t a = keep[j], b = keep[j + 1], d = sharded[0];
            if (s.off[a * s.nd + d] + s.sz[a * s.nd + d] - 1 >= s.off[b * s.nd + d]) {
                pa = a;
                pb = b;
                break;
            }
        }
    } else {
        Py_ssize_t sweep_k = 0, nothers = 0;
        int64_t best = 0;
        for (Py_ssize_t k = 0; k < nsd; k++) {
            int64_t ext = s.off[keep[0] * s.nd + sharded[k]] + s.sz[keep[0] * s.nd + sharded[k]];
            if (ext > best) {
                best = ext;
                sweep_k = k;
            }
        }
        {
            Py_ssize_t sweep = sharded[sweep_k];
            /* others = sharded dims without the sweep dim (reuse the tail of `sharded`) */
            for (Py_ssize_t k = 0; k < nsd; k++)
                if (k != sweep_k) sharded[nothers++] = sharded[k];
            sort_ctx c = {&s, sweep, sharded, nothers, 0};
            if (sort_indices(keep, m, cmp_shards, &c) < 0) goto done;
            if (sweep_overlap(&s, keep, m, sweep, &pa, &pb) < 0) goto done;
        }
    }
    if (pa >= 0)
        SO_FAIL(done, PyExc_ValueError, "Shards %R and %R overlap",
                PySequence_Fast_GET_ITEM(s.fast, pa), PySequence_Fast_GET_ITEM(s.fast, pb));
    rc = 0;
done:
    PyMem_Free(keep);
    PyMem_Free(sharded);
    shard_set_free(&s);
    return rc;
}

/* ------------------------------------------------------------------ coverage */

static int mul_checked(int64_t a, int64_t b, int64_t *out)
{
    if (__builtin_mul_overflow(a, b, out))
        return so_fail(PyExc_OverflowError, "shard volume does not fit in 64 bits");
    return 0;
}

int so_check_tensor(PyObject *shards, PyObject *tensor_dims)
{
    shard_set s;
    Py_ssize_t rank = PyObject_Size(tensor_dims);
    int64_t *dims = NULL, total = 0, tvol = 1;
    int rc = -1;
    if (rank < 0) return -1;
    if (shard_set_load(&s, shards) < 0) return -1;
    if (s.n == 0)
        SO_FAIL(done, PyExc_ValueError, "check_tensor: no shards given");
    if (rank != s.nd)
        SO_FAIL(done, PyExc_ValueError, "Rank of tensor is %zd, but shards rank is %zd", rank,
                s.nd);
    dims = PyMem_Malloc(sizeof(int64_t) * (size_t)(rank + 1));
    if (!dims) {
        PyErr_NoMemory();
        goto done;
    }
    if (read_int64_seq(tensor_dims, rank, dims, "tensor_dims") < 0) goto done;
    for (Py_ssize_t i = 0; i < s.n; i++) {
        const int64_t *o = s.off + i * s.nd, *z = s.sz + i * s.nd;
        int64_t vol = 1;
        for (Py_ssize_t d = 0; d < s.nd; d++)
            if (mul_checked(vol, z[d], &vol) < 0) goto done;
        if (vol == 0) continue; /* empty shards may sit anywhere (deviation §12.4) */
        for (Py_ssize_t d = 0; d < s.nd; d++) {
            if (o[d] + z[d] > dims[d])
                SO_FAIL(done, PyExc_ValueError,
                        "Shard offset %lld and length %lld exceeds tensor dim: %lld for shard %R",
                        (long long)o[d], (long long)z[d], (long long)dims[d],
                        PySequence_Fast_GET_ITEM(s.fast, i));
        }
        if (__builtin_add_overflow(total, vol, &total))
            SO_FAIL(done, PyExc_OverflowError, "total shard volume does not fit in 64 bits");
    }
    for (Py_ssize_t d = 0; d < rank; d++)
        if (mul_checked(tvol, dims[d], &tvol) < 0) goto done;
    if (total != tvol)
        SO_FAIL(done, PyExc_ValueError,
                "Total volume of shards: %lld does not match tensor volume: %lld, in other "
                "words all the individual shards do not cover the entire tensor",
                (long long)total, (long long)tvol);
    rc = 0;
done:
    PyMem_Free(dims);
    shard_set_free(&s);
    return rc;
}

/* ------------------------------------------------------------------ Python functions */

static PyObject *py_get_split_size(PyObject *m, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"dim_size", "chunks", NULL};
    long long dim_size, chunks;
    int64_t r;
    (void)m;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "LL:get_split_size", kwlist, &dim_size, &chunks))
        return NULL;
    r = so_split_size(dim_size, chunks);
    if (r == -1 && PyErr_Occurred()) return NULL;
    return PyLong_FromLongLong(r);
}

static PyObject *py_get_chunked_dim_size(PyObject *m, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"dim_size", "split_size", "idx", NULL};
    long long dim_size, split, idx;
    (void)m;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "LLL:get_chunked_dim_size", kwlist, &dim_size,
                                     &split, &idx))
        return NULL;
    return PyLong_FromLongLong(so_chunked_dim_size(dim_size, split, idx));
}

/* (start, length) along the sharded dim of the placement whose rank() == rank.  torch
 * silently returns (0, <last chunk>) for a rank with no placement; that is an error here. */
static PyObject *py_get_chunk_sharding_params(PyObject *m, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"sharding_dim_size", "world_size", "spec", "rank", NULL};
    long long dim_size, world;
    PyObject *spec, *rank, *pls = NULL, *fast = NULL, *res = NULL;
    int64_t split, cur = 0;
    (void)m;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "LLOO:get_chunk_sharding_params", kwlist,
                                     &dim_size, &world, &spec, &rank))
        return NULL;
    split = so_split_size(dim_size, world);
    if (split == -1 && PyErr_Occurred()) return NULL;
    pls = PyObject_GetAttrString(spec, "placements");
    if (!pls) return NULL;
    fast = PySequence_Fast(pls, "spec.placements must be a sequence");
    if (!fast) goto done;
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(fast); i++) {
        int64_t chunk = so_chunked_dim_size(dim_size, split, i);
        PyObject *r = PyObject_CallMethod(PySequence_Fast_GET_ITEM(fast, i), "rank", NULL);
        int eq;
        if (!r) goto done;
        eq = PyObject_RichCompareBool(rank, r, Py_EQ);
        Py_DECREF(r);
        if (eq < 0) goto done;
        if (eq) {
            res = Py_BuildValue("(LL)", (long long)cur, (long long)chunk);
            goto done;
        }
        cur += chunk;
    }
    SO_FAIL(done, PyExc_ValueError, "get_chunk_sharding_params: rank %R has no placement in %R",
            rank, spec);
done:
    Py_XDECREF(pls);
    Py_XDECREF(fast);
    return res;
}

static PyObject *py_validate_non_overlapping(PyObject *m, PyObject *shards)
{
    (void)m;
    if (so_validate_non_overlapping(shards) < 0) return NULL;
    Py_RETURN_NONE;
}

static PyObject *py_check_tensor(PyObject *m, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"shards_metadata", "tensor_dims", NULL};
    PyObject *shards, *dims;
    (void)m;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO:check_tensor", kwlist, &shards, &dims))
        return NULL;
    if (so_check_tensor(shards, dims) < 0) return NULL;
    Py_RETURN_NONE;
}

static int cmp_by_key(Py_ssize_t a, Py_ssize_t b, const void *ctx)
{
    const int64_t *k = ctx;
    return cmp_i64(k[a], k[b]);
}

static int cmp_int64_qsort(const void *a, const void *b)
{
    return cmp_i64(*(const int64_t *)a, *(const int64_t *)b);
}

/* _infer_chunk_layout(shards_metadata) -> (dim, placements) when exactly one dim carries
 * non-zero offsets and the sizes along it are the chunk rule's for their total, else None
 * (the caller, sharding_spec/api.py, builds ChunkShardingSpec or EnumerableShardingSpec).
 * Keeps torch's quirks: placements are ordered by the sum of offsets, and dim 0 counts as
 * "not decided yet". */
static PyObject *py_infer_chunk_layout(PyObject *m, PyObject *mds)
{
    shard_set s;
    PyObject *placements = NULL, *sorted = NULL, *res = NULL;
    int64_t *keys = NULL, *sizes = NULL, *chunks = NULL;
    Py_ssize_t *order = NULL, csd = -1;
    (void)m;
    if (shard_set_load(&s, mds) < 0) return NULL;
    if (s.n == 0) goto enumerable;
    placements = PyList_New(s.n);
    keys = PyMem_Malloc(sizeof(int64_t) * (size_t)s.n);
    if (!placements || !keys) {
        if (!keys) PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < s.n; i++) {
        PyObject *pl = PyObject_GetAttrString(PySequence_Fast_GET_ITEM(s.fast, i), "placement");
        Py_ssize_t nz = 0, first = -1;
        if (!pl) goto done;
        PyList_SET_ITEM(placements, i, pl);
        keys[i] = 0;
        for (Py_ssize_t d = 0; d < s.nd; d++) {
            int64_t o = s.off[i * s.nd + d];
            keys[i] += o;
            if (o != 0 && nz++ == 0) first = d;
        }
        if (nz == 0) continue;
        if (nz != 1) {
            csd = -1;
            break;
        }
        if (csd <= 0) csd = first; /* torch: `if not chunk_sharding_dim` (0 is falsy) */
        else if (csd != first) {
            csd = -1;
            break;
        }
    }
    if (csd >= 0) {
        int64_t total = 0, split;
        int same = 1;
        order = PyMem_Malloc(sizeof(Py_ssize_t) * (size_t)s.n);
        sizes = PyMem_Malloc(sizeof(int64_t) * (size_t)s.n);
        chunks = PyMem_Malloc(sizeof(int64_t) * (size_t)s.n);
        if (!order || !sizes || !chunks) {
            PyErr_NoMemory();
            goto done;
        }
        for (Py_ssize_t i = 0; i < s.n; i++) order[i] = i;
        if (sort_indices(order, s.n, cmp_by_key, keys) < 0) goto done;
        sorted = PyList_New(s.n);
        if (!sorted) goto done;
        for (Py_ssize_t i = 0; i < s.n; i++)
            PyList_SET_ITEM(sorted, i, Py_NewRef(PyList_GET_ITEM(placements, order[i])));
        for (Py_ssize_t i = 0; i < s.n; i++) {
            sizes[i] = s.sz[i * s.nd + csd];
            total += sizes[i];
        }
        split = so_split_size(total, s.n);
        for (Py_ssize_t i = 0; i < s.n; i++) chunks[i] = so_chunked_dim_size(total, split, i);
        qsort(sizes, (size_t)s.n, sizeof(int64_t), cmp_int64_qsort);
        qsort(chunks, (size_t)s.n, sizeof(int64_t), cmp_int64_qsort);
        for (Py_ssize_t i = 0; i < s.n && same; i++) same = sizes[i] == chunks[i];
        if (same) {
            res = Py_BuildValue("(nO)", csd, sorted);
            goto done;
        }
    }
enumerable:
    res = Py_NewRef(Py_None);
done:
    Py_XDECREF(placements);
    Py_XDECREF(sorted);
    PyMem_Free(keys);
    PyMem_Free(sizes);
    PyMem_Free(chunks);
    PyMem_Free(order);
    shard_set_free(&s);
    return res;
}

static PyMethodDef validate_functions[] = {
    {"get_split_size", (PyCFunction)(void (*)(void))py_get_split_size, METH_VARARGS | METH_KEYWORDS,
     "get_split_size(dim_size, chunks): ceil(dim_size / chunks), the size of every full chunk."},
    {"get_chunked_dim_size", (PyCFunction)(void (*)(void))py_get_chunked_dim_size,
     METH_VARARGS | METH_KEYWORDS,
     "get_chunked_dim_size(dim_size, split_size, idx): length of chunk idx (0 past the end)."},
    {"get_chunk_sharding_params", (PyCFunction)(void (*)(void))py_get_chunk_sharding_params,
     METH_VARARGS | METH_KEYWORDS,
     "get_chunk_sharding_params(sharding_dim_size, world_size, spec, rank): (start, length) of "
     "rank's chunk."},
    {"validate_non_overlapping_shards_metadata", py_validate_non_overlapping, METH_O,
     "Raise ValueError 'Shards a and b overlap' if two non-empty shards share an element."},
    {"check_tensor", (PyCFunction)(void (*)(void))py_check_tensor, METH_VARARGS | METH_KEYWORDS,
     "check_tensor(shards_metadata, tensor_dims): rank, bounds and total-volume checks."},
    {"_infer_chunk_layout", py_infer_chunk_layout, METH_O,
     "_infer_chunk_layout(shards_metadata) -> (dim, placements) if the shards follow the chunk "
     "rule along one dim, else None."},
    {NULL}};

int so_register_shard_validate(PyObject *m, so_state *st)
{
    (void)st;
    return PyModule_AddFunctions(m, validate_functions);
}
