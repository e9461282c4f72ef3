/* embedding_cpu.c — CPU kernels of Embedding (gather, scatter-add backward, renorm) and
 * EmbeddingBag (sum / mean / max forward and backward).  Rows are copied / accumulated with
 * unit-stride loops over D; every index is range-checked before it is used.
 * The math is embedding.h's.
 */
#include "embedding.h"

static int check_all(so_emb_call *c)
{
    for (int64_t j = 0; j < c->n; j++) {
        int64_t k = so_emb_index(c->idx, c->idtype, j);
        if (k < 0 || k >= c->V) {
            c->bad[0] = 1;
            c->bad[1] = k;
            return -1;
        }
    }
    return 0;
}

#define DEF_EMB_CPU(T, S)                                                                       \
    static void fwd_##S(so_emb_call *c)                                                         \
    {                                                                                           \
        const int64_t D = c->D;                                                                 \
        for (int64_t j = 0; j < c->n; j++) {                                                    \
            const int64_t k = so_emb_index(c->idx, c->idtype, j);                               \
            memcpy((T *)(void *)c->out + j * D, (const T *)(const void *)c->w + k * D,          \
                   sizeof(T) * (size_t)D);                                                      \
        }                                                                                       \
    }                                                                                           \
    static void bwd_##S(const so_emb_call *c, const int64_t *counts)                            \
    {                                                                                           \
        const int64_t D = c->D;                                                                 \
        T *restrict gw = (T *)(void *)c->gw;                                                    \
        memset(gw, 0, sizeof(T) * (size_t)(c->V * D));                                          \
        for (int64_t j = 0; j < c->n; j++) {                                                    \
            const int64_t k = so_emb_index(c->idx, c->idtype, j);                               \
            if (k < 0 || k >= c->V || k == c->padding_idx) continue;                            \
            const T *restrict g = (const T *)(const void *)c->g + j * D;                        \
            const T f = counts ? (T)1 / (T)counts[k] : (T)1;                                    \
            T *restrict row = gw + k * D;                                                       \
            for (int64_t d = 0; d < D; d++) row[d] += g[d] * f;                                 \
        }                                                                                       \
    }                                                                                           \
    static void renorm_##S(so_emb_call *c, int64_t *seen)                                       \
    {                                                                                           \
        const int64_t D = c->D;                                                                 \
        for (int64_t j = 0; j < c->n; j++) {                                                    \
            const int64_t k = so_emb_index(c->idx, c->idtype, j);                               \
            if (seen[k]) continue;                                                              \
            seen[k] = 1;                                                                        \
            T *row = (T *)(void *)c->w + k * D;                                                 \
            double s = 0;                                                                       \
            for (int64_t d = 0; d < D; d++) s += so_emb_norm_term((double)row[d], c->norm_type); \
            const double f = so_emb_renorm_scale(so_emb_norm_final(s, c->norm_type), c->max_norm); \
            if (f != 1.0)                                                                       \
                for (int64_t d = 0; d < D; d++) row[d] = (T)((double)row[d] * f);               \
        }                                                                                       \
    }                                                                                           \
    static void bag_fwd_##S(so_emb_call *c)                                                     \
    {                                                                                           \
        const int64_t D = c->D;                                                                 \
        const T *w = (const T *)(const void *)c->w;                                             \
        const T *psw = (const T *)(const void *)c->psw;                                         \
        for (int64_t b = 0; b < c->B; b++) {                                                    \
            T *restrict out = (T *)(void *)c->out + b * D;                                      \
            int64_t *mi = c->max_idx ? c->max_idx + b * D : NULL;                               \
            int64_t cnt = 0;                                                                    \
            for (int64_t d = 0; d < D; d++) out[d] = 0;                                         \
            if (mi)                                                                             \
                for (int64_t d = 0; d < D; d++) mi[d] = -1;                                     \
            for (int64_t j = c->offsets[b]; j < c->offsets[b + 1]; j++) {                       \
                const int64_t k = so_emb_index(c->idx, c->idtype, j);                           \
                if (k == c->padding_idx) continue;                                              \
                const T *restrict row = w + k * D;                                              \
                if (c->mode == SO_BAG_MAX) {                                                    \
                    for (int64_t d = 0; d < D; d++)                                             \
                        if (mi[d] < 0 || row[d] > out[d]) {                                     \
                            out[d] = row[d];                                                    \
                            mi[d] = k;                                                          \
                        }                                                                       \
                } else {                                                                        \
                    const T f = psw ? psw[j] : (T)1;                                            \
                    for (int64_t d = 0; d < D; d++) out[d] += row[d] * f;                       \
                }                                                                               \
                cnt++;                                                                          \
            }                                                                                   \
            if (c->mode == SO_BAG_MEAN && cnt > 0)                                              \
                for (int64_t d = 0; d < D; d++) out[d] /= (T)cnt;                               \
            c->bag_count[b] = cnt;                                                              \
        }                                                                                       \
    }                                                                                           \
    static void bag_bwd_##S(const so_emb_call *c)                                               \
    {                                                                                           \
        const int64_t D = c->D;                                                                 \
        const T *w = (const T *)(const void *)c->w;                                             \
        const T *psw = (const T *)(const void *)c->psw;                                         \
        T *gw = (T *)(void *)c->gw;                                                             \
        if (gw) memset(gw, 0, sizeof(T) * (size_t)(c->V * D));                                  \
        for (int64_t b = 0; b < c->B; b++) {                                                    \
            const T *restrict g = (const T *)(const void *)c->g + b * D;                        \
            if (c->mode == SO_BAG_MAX) {                                                        \
                if (!gw) continue;                                                              \
                const int64_t *mi = c->max_idx + b * D;                                         \
                for (int64_t d = 0; d < D; d++)                                                 \
                    if (mi[d] >= 0 && mi[d] < c->V) gw[mi[d] * D + d] += g[d];                  \
                continue;                                                                       \
            }                                                                                   \
            const int64_t cnt = c->bag_count[b];                                                \
            for (int64_t j = c->offsets[b]; j < c->offsets[b + 1]; j++) {                       \
                const int64_t k = so_emb_index(c->idx, c->idtype, j);                           \
                if (k == c->padding_idx || k < 0 || k >= c->V) {                                \
                    if (c->gpsw) ((T *)(void *)c->gpsw)[j] = 0;                                 \
                    continue;                                                                   \
                }                                                                               \
                if (c->gpsw) {                                                                  \
                    double s = 0;                                                               \
                    for (int64_t d = 0; d < D; d++) s += (double)(g[d] * w[k * D + d]);         \
                    ((T *)(void *)c->gpsw)[j] = (T)s;                                           \
                }                                                                               \
                if (!gw) continue;                                                              \
                T f = c->mode == SO_BAG_MEAN ? (T)1 / (T)cnt : (psw ? psw[j] : (T)1);           \
                if (c->scale_grad_by_freq) f /= (T)c->scratch[k];                               \
                T *restrict row = gw + k * D;                                                   \
                for (int64_t d = 0; d < D; d++) row[d] += g[d] * f;                             \
            }                                                                                   \
        }                                                                                       \
    }

DEF_EMB_CPU(float, f)
DEF_EMB_CPU(double, d)

void so_emb_forward_cpu(so_emb_call *c)
{
    if (check_all(c) < 0) return;
    if (c->dtype == SO_FLOAT64) fwd_d(c);
    else fwd_f(c);
}

void so_emb_backward_cpu(const so_emb_call *c)
{
    int64_t *counts = NULL;
    if (c->scale_grad_by_freq) {
        counts = c->scratch;
        memset(counts, 0, sizeof(int64_t) * (size_t)c->V);
        for (int64_t j = 0; j < c->n; j++) {
            int64_t k = so_emb_index(c->idx, c->idtype, j);
            if (k >= 0 && k < c->V) counts[k]++;
        }
    }
    if (c->dtype == SO_FLOAT64) bwd_d(c, counts);
    else bwd_f(c, counts);
}

void so_emb_renorm_cpu(so_emb_call *c)
{
    if (check_all(c) < 0) return;
    memset(c->scratch, 0, sizeof(int64_t) * (size_t)c->V);
    if (c->dtype == SO_FLOAT64) renorm_d(c, c->scratch);
    else renorm_f(c, c->scratch);
}

void so_bag_forward_cpu(so_emb_call *c)
{
    if (check_all(c) < 0) return;
    if (c->dtype == SO_FLOAT64) bag_fwd_d(c);
    else bag_fwd_f(c);
}

void so_bag_backward_cpu(const so_emb_call *c)
{
    if (c->scale_grad_by_freq) {
        memset(c->scratch, 0, sizeof(int64_t) * (size_t)c->V);
        for (int64_t j = 0; j < c->n; j++) {
            int64_t k = so_emb_index(c->idx, c->idtype, j);
            if (k >= 0 && k < c->V) c->scratch[k]++;
        }
    }
    if (c->dtype == SO_FLOAT64) bag_bwd_d(c);
    else bag_bwd_f(c);
}
