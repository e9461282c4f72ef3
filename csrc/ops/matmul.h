/* matmul.h — batched matrix products: the plan both devices run.
 *
 * matmul.c turns matmul/mm/bmm/dot arguments (torch's 1-D and broadcast rules) into one
 * plan: C[b] = A[b] @ B[b] for every index b of a (possibly broadcast) batch, where A[b] is
 * m x k and B[b] is k x n with arbitrary element strides and C is a fresh contiguous
 * (batch..., m, n) tensor.  It also classifies each operand's layout for BLAS, so the CPU
 * (CBLAS, row-major) and CUDA (cuBLAS, column-major via C^T = B^T A^T) paths agree on
 * which views run without a copy:
 *   "N": row stride = ld >= max(1, cols), column stride 1  (C-order matrix, or a slice)
 *   "T": row stride 1, column stride = ld >= max(1, rows)  (a transposed view)
 */
#ifndef SO_MATMUL_H
#define SO_MATMUL_H

#include "../core/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int dtype;
    char *a, *b, *c;             /* first element of batch 0 */
    int64_t m, n, k;
    int64_t a_rs, a_cs;          /* A's row / column strides, elements */
    int64_t b_rs, b_cs;
    int blas_ok;                 /* both layouts below are valid */
    int a_trans, b_trans;        /* 0: "N", 1: "T" (see above) */
    int64_t lda, ldb;
    int nb;                      /* batch dims (after coalescing) */
    int64_t batch_shape[SO_MAX_DIMS];
    int64_t a_bstrides[SO_MAX_DIMS];  /* elements, 0 where broadcast */
    int64_t b_bstrides[SO_MAX_DIMS];
    int64_t batch;               /* product of batch_shape; C's batch stride is m * n */
} so_matmul_plan;

/* BLAS layout of a rows x cols matrix with strides (rs, cs): 0 "N", 1 "T", -1 neither. */
static inline int so_blas_layout(int64_t rows, int64_t cols, int64_t rs, int64_t cs, int64_t *ld)
{
    int64_t minc = cols > 1 ? cols : 1, minr = rows > 1 ? rows : 1;
    /* strides of size-1 dims are meaningless: pick the values that make a layout valid */
    if ((cols == 1 || cs == 1) && (rows == 1 || rs >= minc)) {
        *ld = rows == 1 ? minc : rs;
        return 0;
    }
    if ((rows == 1 || rs == 1) && (cols == 1 || cs >= minr)) {
        *ld = cols == 1 ? minr : cs;
        return 1;
    }
    return -1;
}

/* Input offsets (elements) of batch index bi for A and B. */
static inline void so_matmul_batch_offsets(const so_matmul_plan *pl, int64_t bi, int64_t *oa,
                                           int64_t *ob)
{
    int64_t a = 0, b = 0;
    for (int d = pl->nb - 1; d >= 0; d--) {
        int64_t s = pl->batch_shape[d], i = bi % s;
        bi /= s;
        a += i * pl->a_bstrides[d];
        b += i * pl->b_bstrides[d];
    }
    *oa = a;
    *ob = b;
}

/* CPU: returns 0, or -1 when scratch memory could not be allocated (no exception set). */
int so_matmul_cpu(const so_matmul_plan *pl);
/* CUDA (cuBLAS): 0 on success, else -1 with a message in err.  *handle_slot caches the
 * device's cublasHandle_t (created on first use). */
int so_matmul_cuda(const so_matmul_plan *pl, void *stream, int device_index, void **handle_slot,
                   char *err, size_t errlen);
/* Destroy cached cuBLAS handles (module teardown; never raises). */
void so_matmul_release_handles(void **handles, int n);

#ifdef __cplusplus
}
#endif
#endif /* SO_MATMUL_H */
