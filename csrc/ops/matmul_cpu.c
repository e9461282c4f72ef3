/* matmul_cpu.c — CPU execution of a matmul plan (matmul.h).
 *
 * float32/float64 with CBLAS (Debian's OpenBLAS): one cblas_?gemm per batch entry straight
 * on the operands' memory, transposed views passed as CblasTrans with their leading
 * dimension (matmul.c already copied any operand no BLAS layout fits).
 * One exception, float32 x @ W^T with few rows (a linear layer's forward at small batch):
 * OpenBLAS (0.3.21, its AVX-512 kernels) runs that product 1.05-2.4x faster when the big
 * matrix is its left operand, so C^T = W @ x^T goes into scratch and is transposed into C
 * (see swapped_worthwhile for the measured range).
 * Everything else (fp16/bf16, ints, or no CBLAS in this build): each batch entry's A and B
 * are converted into contiguous scratch of the accumulation type — float32 for fp16/bf16,
 * float64 for float32/float64, int64 (wrapping, like torch) for ints — multiplied with an
 * i-p-j loop gcc vectorises (unit stride over B's and C's rows), and converted back.
 */
#include "matmul.h"
#include "../tensor/copy.h"
#include <limits.h>
#include <stdlib.h>

#ifdef SHARDOPT_WITH_CBLAS
#include <cblas.h>
#endif

/* C = A @ B, all contiguous row-major in the accumulation type. */
#define SO_GEMM_LOOP(NAME, T)                                                           \
    static void NAME(int64_t m, int64_t n, int64_t k, const T *A, const T *B, T *C)     \
    {                                                                                   \
        for (int64_t i = 0; i < m; i++) {                                               \
            T *c = C + i * n;                                                           \
            for (int64_t j = 0; j < n; j++) c[j] = 0;                                   \
            for (int64_t p = 0; p < k; p++) {                                           \
                const T a = A[i * k + p];                                               \
                const T *b = B + p * n;                                                 \
                for (int64_t j = 0; j < n; j++) c[j] += a * b[j];                       \
            }                                                                           \
        }                                                                               \
    }
SO_GEMM_LOOP(gemm_loop_f32, float)
SO_GEMM_LOOP(gemm_loop_f64, double)
SO_GEMM_LOOP(gemm_loop_u64, uint64_t) /* int64 bits; unsigned so overflow wraps, defined */
#undef SO_GEMM_LOOP

static void matrix_view(so_view *v, char *data, int dt, int64_t rows, int64_t cols, int64_t rs,
                        int64_t cs)
{
    memset(v, 0, sizeof *v);
    v->data = data;
    v->ndim = 2;
    v->dtype = dt;
    v->device.type = SO_CPU;
    v->shape[0] = rows;
    v->shape[1] = cols;
    v->strides[0] = rs;
    v->strides[1] = cs;
}

#ifdef SHARDOPT_WITH_CBLAS
static int fits_blas_int(const so_matmul_plan *pl)
{
    return pl->m <= INT_MAX && pl->n <= INT_MAX && pl->k <= INT_MAX && pl->lda <= INT_MAX &&
           pl->ldb <= INT_MAX;
}

/* Whether C = A @ B runs as C^T = B^T @ A^T.  Measured on the project machine (AMD EPYC,
 * Debian OpenBLAS 0.3.21 "Cooperlake" kernels, one thread; benchmarks/RESULTS.md): for
 * x (m x k) @ W^T with W (n x k) row-major, the swapped product is 1.05-2.4x faster for
 * m <= 128 and k, n >= 256 (e.g. 1.15x at m=64, 1024 -> 4096), ~1.0x at m = 256 and never
 * more than a few percent slower inside the range; the transpose into C costs m*n*8 bytes
 * of traffic, under 3% of the product there.  Only B = W^T as a transposed view qualifies:
 * with B in "N" layout the normal call is already the fast one. */
static int swapped_worthwhile(const so_matmul_plan *pl)
{
    return pl->dtype == SO_FLOAT32 && pl->b_trans && pl->m <= 128 && pl->m >= 2 &&
           pl->k >= 256 && pl->n >= 256;
}

/* C (m x n, row-major) = transpose of T (n x m, row-major), in tiles so both sides stay in
 * L1: a tile reads 32 rows of T (32 x m floats) and writes 32-float runs of m rows of C. */
static void transpose_into(float *restrict C, const float *restrict T, int64_t m, int64_t n)
{
    const int64_t tile = 32;
    for (int64_t j0 = 0; j0 < n; j0 += tile) {
        int64_t j1 = j0 + tile < n ? j0 + tile : n;
        for (int64_t i = 0; i < m; i++) {
            float *c = C + i * n;
            for (int64_t j = j0; j < j1; j++) c[j] = T[j * m + i];
        }
    }
}

static void run_cblas(const so_matmul_plan *pl, float *scratch)
{
    int isz = so_dtype_itemsize(pl->dtype);
    enum CBLAS_TRANSPOSE ta = pl->a_trans ? CblasTrans : CblasNoTrans;
    enum CBLAS_TRANSPOSE tb = pl->b_trans ? CblasTrans : CblasNoTrans;
    int m = (int)pl->m, n = (int)pl->n, k = (int)pl->k, lda = (int)pl->lda, ldb = (int)pl->ldb;
    for (int64_t bi = 0; bi < pl->batch; bi++) {
        int64_t oa, ob;
        so_matmul_batch_offsets(pl, bi, &oa, &ob);
        const char *A = pl->a + oa * isz, *B = pl->b + ob * isz;
        char *C = pl->c + bi * pl->m * pl->n * isz;
        if (scratch) {
            /* C^T (n x m) = B^T (n x k, "N" since B is "T") @ A^T (k x m) */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, pl->a_trans ? CblasNoTrans : CblasTrans, n,
                        m, k, 1.0f, (const float *)(const void *)B, ldb,
                        (const float *)(const void *)A, lda, 0.0f, scratch, m);
            transpose_into((float *)(void *)C, scratch, pl->m, pl->n);
        } else if (pl->dtype == SO_FLOAT32)
            cblas_sgemm(CblasRowMajor, ta, tb, m, n, k, 1.0f, (const float *)(const void *)A, lda,
                        (const float *)(const void *)B, ldb, 0.0f, (float *)(void *)C, n);
        else
            cblas_dgemm(CblasRowMajor, ta, tb, m, n, k, 1.0, (const double *)(const void *)A, lda,
                        (const double *)(const void *)B, ldb, 0.0, (double *)(void *)C, n);
    }
}
#endif

int so_matmul_cpu(const so_matmul_plan *pl)
{
    int isz = so_dtype_itemsize(pl->dtype), acc;
    int64_t m = pl->m, n = pl->n, k = pl->k, elems;
    char *scratch, *sa, *sb, *sc;
    if (pl->batch == 0 || m == 0 || n == 0) return 0;
#ifdef SHARDOPT_WITH_CBLAS
    if ((pl->dtype == SO_FLOAT32 || pl->dtype == SO_FLOAT64) && pl->blas_ok && fits_blas_int(pl)) {
        float *swap = NULL;
        if (swapped_worthwhile(pl)) {
            swap = (float *)malloc((size_t)(pl->m * pl->n) * sizeof(float));
            if (!swap) return -1;
        }
        run_cblas(pl, swap);
        free(swap);
        return 0;
    }
#endif
    if (pl->dtype == SO_FLOAT16 || pl->dtype == SO_BFLOAT16) acc = SO_FLOAT32;
    else if (so_dtype_is_float(pl->dtype)) acc = SO_FLOAT64;
    else acc = SO_INT64;
    elems = m * k + k * n + m * n;
    scratch = (char *)malloc((size_t)elems * (size_t)so_dtype_itemsize(acc) + 64);
    if (!scratch) return -1;
    sa = scratch;
    sb = sa + m * k * so_dtype_itemsize(acc);
    sc = sb + k * n * so_dtype_itemsize(acc);
    for (int64_t bi = 0; bi < pl->batch; bi++) {
        int64_t oa, ob;
        so_view src, dst;
        so_matmul_batch_offsets(pl, bi, &oa, &ob);
        if (k > 0) {
            matrix_view(&src, pl->a + oa * isz, pl->dtype, m, k, pl->a_rs, pl->a_cs);
            matrix_view(&dst, sa, acc, m, k, k, 1);
            so_copy_cpu(&dst, &src);
            matrix_view(&src, pl->b + ob * isz, pl->dtype, k, n, pl->b_rs, pl->b_cs);
            matrix_view(&dst, sb, acc, k, n, n, 1);
            so_copy_cpu(&dst, &src);
        }
        if (acc == SO_FLOAT32)
            gemm_loop_f32(m, n, k, (const float *)(void *)sa, (const float *)(void *)sb,
                          (float *)(void *)sc);
        else if (acc == SO_FLOAT64)
            gemm_loop_f64(m, n, k, (const double *)(void *)sa, (const double *)(void *)sb,
                          (double *)(void *)sc);
        else
            gemm_loop_u64(m, n, k, (const uint64_t *)(void *)sa, (const uint64_t *)(void *)sb,
                          (uint64_t *)(void *)sc);
        matrix_view(&src, sc, acc, m, n, n, 1);
        matrix_view(&dst, pl->c + bi * m * n * isz, pl->dtype, m, n, n, 1);
        so_copy_cpu(&dst, &src);
    }
    free(scratch);
    return 0;
}
