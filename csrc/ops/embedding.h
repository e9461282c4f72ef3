/* embedding.h — Embedding (row gather, scatter-add backward, max_norm renormalisation) and
 * EmbeddingBag (sum / mean / max over bags given by offsets, per_sample_weights): the
 * per-element math both devices share, the launch descriptors, and the kernels' entry points.
 *
 * Indices are int64 or int32.  padding_idx (>= 0, or -1 for none) rows get no gradient; in a
 * bag they are skipped (and not counted by 'mean').  Offsets are given to the kernels as a
 * full int64 array of B + 1 boundaries (the binding builds it from torch's forms).
 * An out-of-range index stops the kernel and is reported through bad[0..1] (IndexError
 * "index out of range in self", as torch's CPU kernels raise).
 */
#ifndef SO_EMBEDDING_H
#define SO_EMBEDDING_H

#include "../core/common.h"
#include <math.h>

#ifdef __cplusplus
extern "C" {
#endif

enum { SO_BAG_SUM = 0, SO_BAG_MEAN = 1, SO_BAG_MAX = 2 };

typedef struct {
    int dtype;            /* weight / out / grads: float32 or float64 */
    int idtype;           /* int64 or int32 */
    int64_t V, D;         /* weight (V, D) */
    int64_t n;            /* number of indices */
    const char *w, *idx;
    int64_t padding_idx;  /* -1: none */
    /* Embedding */
    char *out;            /* (n, D) */
    const char *g;        /* backward: (n, D) or, for bags, (B, D) */
    char *gw;             /* backward: (V, D), zeroed by the kernel */
    int scale_grad_by_freq;
    /* renorm */
    double max_norm, norm_type;
    /* EmbeddingBag */
    int mode;
    int64_t B;
    const int64_t *offsets; /* B + 1 boundaries (device of the weight) */
    const char *psw;        /* per_sample_weights (n,) or NULL */
    int64_t *bag_count;     /* (B,) indices per bag, padding excluded */
    int64_t *max_idx;       /* max mode: (B, D) winning weight row, -1 for an empty bag */
    char *gpsw;             /* backward: per_sample_weights gradient (n,) or NULL */
    int64_t *bad;           /* [0] = 1 on an out-of-range index, [1] = that index */
    int64_t *scratch;       /* (V,) on the weight's device: counts (scale_grad_by_freq) or
                               seen flags (renorm); zeroed by the kernels */
} so_emb_call;

SO_HD int64_t so_emb_index(const char *idx, int idtype, int64_t j)
{
    if (idtype == SO_INT32) {
        int32_t v;
        memcpy(&v, idx + 4 * j, 4);
        return v;
    }
    int64_t v;
    memcpy(&v, idx + 8 * j, 8);
    return v;
}

/* The factor max_norm renormalisation multiplies a row of norm `norm` by (1 = unchanged). */
SO_HD double so_emb_renorm_scale(double norm, double max_norm)
{
    return norm > max_norm ? max_norm / (norm + 1e-7) : 1.0;
}

/* |v|^p summed for the row norm (p = 2 and 1 without pow). */
SO_HD double so_emb_norm_term(double v, double p)
{
    double a = v < 0 ? -v : v;
    return p == 2.0 ? a * a : p == 1.0 ? a : pow(a, p);
}

SO_HD double so_emb_norm_final(double s, double p)
{
    return p == 2.0 ? sqrt(s) : p == 1.0 ? s : pow(s, 1.0 / p);
}

void so_emb_forward_cpu(so_emb_call *c);
void so_emb_backward_cpu(const so_emb_call *c);
void so_emb_renorm_cpu(so_emb_call *c);
void so_bag_forward_cpu(so_emb_call *c);
void so_bag_backward_cpu(const so_emb_call *c);
/* CUDA: 0 or a cudaError_t; an index report is copied back into host_bad (synchronising). */
int so_emb_forward_cuda(so_emb_call *c, void *stream, int64_t *host_bad);
int so_emb_backward_cuda(const so_emb_call *c, void *stream);
int so_emb_renorm_cuda(so_emb_call *c, void *stream, int64_t *host_bad);
int so_bag_forward_cuda(so_emb_call *c, void *stream, int64_t *host_bad);
int so_bag_backward_cuda(const so_emb_call *c, void *stream);

#ifdef __cplusplus
}
#endif
#endif /* SO_EMBEDDING_H */
