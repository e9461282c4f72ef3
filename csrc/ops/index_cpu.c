/* index_cpu.c — the CPU walk of an index plan (index.h) and nonzero.
 *
 * The iteration shape is walked with an odometer that carries every operand's offset, so
 * each element costs its index loads and one move, whatever the rank; the innermost dim is
 * a plain loop.  Duplicate indices are handled in order (the last PUT wins; ADD sums all).
 */
#include "index.h"

static inline void move_elem(int mode, int dt, int isz, char *sp, char *op)
{
    if (mode == SO_IDX_ADD) {
        so_index_add_elem(sp, op, dt);
        return;
    }
    if (mode == SO_IDX_PUT) {
        char *t = sp;
        sp = op;
        op = t;
    }
    /* copy *sp -> *op */
    switch (isz) {
    case 16: memcpy(op, sp, 16); break; /* complex128 */
    case 8: memcpy(op, sp, 8); break;
    case 4: memcpy(op, sp, 4); break;
    case 2: memcpy(op, sp, 2); break;
    default: *op = *sp; break;
    }
}

/* The common one-index-tensor case (gather, scatter, index_select, x[idx]) for one element
 * size: the same walk with the mode and size fixed, so the inner loop is a load, a bound
 * check and a move the compiler can schedule. */
#define SO_ONE_INDEX_LOOP(T, MOVE)                                                         \
    for (int64_t j = 0; j < inner; j++) {                                                  \
        int64_t v = ip[j * is0], w = v < 0 ? v + size : v;                                 \
        if ((uint64_t)w >= (uint64_t)size) {                                               \
            err->k = 0;                                                                    \
            err->value = v;                                                                \
            return -1;                                                                     \
        }                                                                                  \
        T *sp = (T *)(void *)(pl->self + (sbase + j * ss + w * step) * isz);               \
        T *op = (T *)(void *)(pl->other + (obase + j * os) * isz);                         \
        MOVE;                                                                              \
    }

static int one_index_row(const so_index_plan *pl, so_index_error *err, int64_t inner,
                         int64_t sbase, int64_t ss, int64_t obase, int64_t os,
                         const int64_t *ip, int64_t is0)
{
    const int isz = so_dtype_itemsize(pl->dtype);
    const int64_t size = pl->idx_size[0], step = pl->idx_step[0];
    if (pl->mode == SO_IDX_GET) {
        if (isz == 4) { SO_ONE_INDEX_LOOP(uint32_t, *op = *sp) }
        else if (isz == 8) { SO_ONE_INDEX_LOOP(uint64_t, *op = *sp) }
        else if (isz == 2) { SO_ONE_INDEX_LOOP(uint16_t, *op = *sp) }
        else if (isz == 16) { SO_ONE_INDEX_LOOP(char, memcpy(op, sp, 16)) } /* complex128 */
        else { SO_ONE_INDEX_LOOP(uint8_t, *op = *sp) }
    } else if (pl->mode == SO_IDX_PUT) {
        if (isz == 4) { SO_ONE_INDEX_LOOP(uint32_t, *sp = *op) }
        else if (isz == 8) { SO_ONE_INDEX_LOOP(uint64_t, *sp = *op) }
        else if (isz == 2) { SO_ONE_INDEX_LOOP(uint16_t, *sp = *op) }
        else if (isz == 16) { SO_ONE_INDEX_LOOP(char, memcpy(sp, op, 16)) }
        else { SO_ONE_INDEX_LOOP(uint8_t, *sp = *op) }
    } else if (pl->dtype == SO_FLOAT32) {
        SO_ONE_INDEX_LOOP(float, *sp += *op)
    } else if (pl->dtype == SO_FLOAT64) {
        SO_ONE_INDEX_LOOP(double, *sp += *op)
    } else {
        SO_ONE_INDEX_LOOP(char, so_index_add_elem((char *)sp, (const char *)op, pl->dtype))
    }
    return 0;
}

int so_index_cpu(const so_index_plan *pl, so_index_error *err)
{
    const int isz = so_dtype_itemsize(pl->dtype), nd = pl->ndim, K = pl->nidx;
    int64_t c[SO_MAX_DIMS], sbase = 0, obase = 0, ibase[SO_INDEX_MAX], inner, ss, os;
    int64_t is[SO_INDEX_MAX];
    err->k = -1;
    err->value = 0;
    if (pl->numel == 0) return 0;
    inner = nd ? pl->shape[nd - 1] : 1;
    ss = nd ? pl->self_strides[nd - 1] : 0;
    os = nd ? pl->other_strides[nd - 1] : 0;
    for (int k = 0; k < K; k++) {
        ibase[k] = 0;
        is[k] = nd ? pl->idx_strides[k][nd - 1] : 0;
    }
    for (int d = 0; d < nd; d++) c[d] = 0;
    for (;;) {
        if (K == 1) {
            if (one_index_row(pl, err, inner, sbase, ss, obase, os, pl->idx[0] + ibase[0], is[0]) < 0)
                return -1;
        } else for (int64_t j = 0; j < inner; j++) {
            int64_t s = sbase + j * ss;
            for (int k = 0; k < K; k++) {
                int64_t v = pl->idx[k][ibase[k] + j * is[k]];
                int64_t w = so_index_wrap(v, pl->idx_size[k]);
                if (w < 0) {
                    err->k = k;
                    err->value = v;
                    return -1;
                }
                s += w * pl->idx_step[k];
            }
            move_elem(pl->mode, pl->dtype, isz, pl->self + s * isz, pl->other + (obase + j * os) * isz);
        }
        int d = nd - 2;
        while (d >= 0) { /* odometer over the outer dims, carrying every offset */
            sbase += pl->self_strides[d];
            obase += pl->other_strides[d];
            for (int k = 0; k < K; k++) ibase[k] += pl->idx_strides[k][d];
            if (++c[d] < pl->shape[d]) break;
            sbase -= c[d] * pl->self_strides[d];
            obase -= c[d] * pl->other_strides[d];
            for (int k = 0; k < K; k++) ibase[k] -= c[d] * pl->idx_strides[k][d];
            c[d] = 0;
            d--;
        }
        if (d < 0) break;
    }
    return 0;
}

/* Walk v in C order calling body(offset_elements, linear_coords). */
#define SO_WALK_VIEW(v, OFF, COORD, BODY)                                                  \
    do {                                                                                   \
        int64_t COORD[SO_MAX_DIMS], OFF = 0, n_ = so_view_numel(v);                        \
        for (int d_ = 0; d_ < (v)->ndim; d_++) COORD[d_] = 0;                              \
        for (int64_t e_ = 0; e_ < n_; e_++) {                                              \
            BODY;                                                                          \
            for (int d_ = (v)->ndim - 1; d_ >= 0; d_--) {                                  \
                OFF += (v)->strides[d_];                                                   \
                if (++COORD[d_] < (v)->shape[d_]) break;                                   \
                OFF -= COORD[d_] * (v)->strides[d_];                                       \
                COORD[d_] = 0;                                                             \
            }                                                                              \
        }                                                                                  \
    } while (0)

static inline int is_nonzero(const char *p, int dt)
{
    switch (dt) {
    case SO_BOOL: return *(const uint8_t *)p != 0;
    case SO_INT32: { int32_t x; memcpy(&x, p, 4); return x != 0; }
    case SO_INT64: { int64_t x; memcpy(&x, p, 8); return x != 0; }
    default: return so_load_as_f64(p, dt) != 0.0; /* NaN counts as non-zero */
    }
}

int64_t so_count_nonzero_cpu(const so_view *v)
{
    const int isz = so_dtype_itemsize(v->dtype);
    int64_t count = 0;
    SO_WALK_VIEW(v, off, coord, { (void)coord; count += is_nonzero(v->data + off * isz, v->dtype); });
    return count;
}

void so_nonzero_cpu(const so_view *v, int64_t *out)
{
    const int isz = so_dtype_itemsize(v->dtype), nd = v->ndim;
    SO_WALK_VIEW(v, off, coord, {
        if (is_nonzero(v->data + off * isz, v->dtype)) {
            for (int d = 0; d < nd; d++) out[d] = coord[d];
            out += nd;
        }
    });
}
