/* matmul.cu — CUDA execution of a matmul plan (matmul.h) through cuBLAS.
 *
 * cuBLAS is column-major; our matrices are row-major, so C = A B is computed as
 * C^T = B^T A^T: a row-major "N" operand is, read column-major, already its own transpose
 * (op N with the same leading dimension) and a transposed view ("T") is op T.  The last
 * batch dim goes to one *StridedBatched call (stride 0 for a broadcast operand); any outer
 * batch dims that do not coalesce are looped on the host.  fp16/bf16 use GemmEx with fp32
 * compute; float32 keeps cuBLAS's default math (no TF32, like torch's default).
 * Everything runs on the device's compute stream; the handle is created once per device.
 * Built only with SHARDOPT_WITH_CUBLAS (matmul.c holds the fallback that raises).
 */
#ifdef SHARDOPT_WITH_CUBLAS
#include "matmul.h"
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <climits>
#include <cstdio>

static int fail(char *err, size_t errlen, const char *what, cublasStatus_t s)
{
    snprintf(err, errlen, "%s failed: %s (%s:%d)", what, cublasGetStatusString(s), __FILE__,
             __LINE__);
    return -1;
}

static int gemm_batch(cublasHandle_t h, const so_matmul_plan *pl, const char *A, const char *B,
                      char *C, long long sa, long long sb, long long sc, int count, char *err,
                      size_t errlen)
{
    cublasOperation_t opb = pl->b_trans ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasOperation_t opa = pl->a_trans ? CUBLAS_OP_T : CUBLAS_OP_N;
    int M = (int)pl->n, N = (int)pl->m, K = (int)pl->k, ldb = (int)pl->ldb, lda = (int)pl->lda;
    cublasStatus_t s;
    switch (pl->dtype) {
    case SO_FLOAT32: {
        const float one = 1.0f, zero = 0.0f;
        s = cublasSgemmStridedBatched(h, opb, opa, M, N, K, &one, (const float *)B, ldb, sb,
                                      (const float *)A, lda, sa, &zero, (float *)C, M, sc, count);
        break;
    }
    case SO_FLOAT64: {
        const double one = 1.0, zero = 0.0;
        s = cublasDgemmStridedBatched(h, opb, opa, M, N, K, &one, (const double *)B, ldb, sb,
                                      (const double *)A, lda, sa, &zero, (double *)C, M, sc, count);
        break;
    }
    case SO_FLOAT16:
    case SO_BFLOAT16: {
        const float one = 1.0f, zero = 0.0f;
        cudaDataType_t t = pl->dtype == SO_FLOAT16 ? CUDA_R_16F : CUDA_R_16BF;
        s = cublasGemmStridedBatchedEx(h, opb, opa, M, N, K, &one, B, t, ldb, sb, A, t, lda, sa,
                                       &zero, C, t, M, sc, count, CUBLAS_COMPUTE_32F,
                                       CUBLAS_GEMM_DEFAULT);
        break;
    }
    default:
        snprintf(err, errlen, "matmul on CUDA supports floating dtypes only");
        return -1;
    }
    if (s != CUBLAS_STATUS_SUCCESS) return fail(err, errlen, "cublas gemm", s);
    return 0;
}

extern "C" int so_matmul_cuda(const so_matmul_plan *pl, void *stream, int device_index,
                              void **handle_slot, char *err, size_t errlen)
{
    int prev = 0, rc = -1;
    int isz = so_dtype_itemsize(pl->dtype);
    int64_t inner = pl->nb ? pl->batch_shape[pl->nb - 1] : 1;
    int64_t outer = inner ? pl->batch / inner : 0;
    long long sa = pl->nb ? pl->a_bstrides[pl->nb - 1] : 0;
    long long sb = pl->nb ? pl->b_bstrides[pl->nb - 1] : 0;
    long long sc = pl->m * pl->n;
    cublasHandle_t h;
    cublasStatus_t s;
    cudaError_t ce;
    if (!pl->blas_ok) {
        snprintf(err, errlen, "matmul: internal error, operand layout not BLAS-compatible");
        return -1;
    }
    if (pl->m > INT_MAX || pl->n > INT_MAX || pl->k > INT_MAX || pl->lda > INT_MAX ||
        pl->ldb > INT_MAX || inner > INT_MAX) {
        snprintf(err, errlen, "matmul: sizes above 2^31-1 are not supported on CUDA");
        return -1;
    }
    if ((ce = cudaGetDevice(&prev)) != cudaSuccess ||
        (prev != device_index && (ce = cudaSetDevice(device_index)) != cudaSuccess)) {
        snprintf(err, errlen, "cudaSetDevice(%d) failed: %s", device_index, cudaGetErrorString(ce));
        return -1;
    }
    h = (cublasHandle_t)*handle_slot;
    if (!h) {
        s = cublasCreate(&h);
        if (s != CUBLAS_STATUS_SUCCESS) {
            fail(err, errlen, "cublasCreate", s);
            goto done;
        }
        *handle_slot = (void *)h;
    }
    s = cublasSetStream(h, (cudaStream_t)stream);
    if (s != CUBLAS_STATUS_SUCCESS) {
        fail(err, errlen, "cublasSetStream", s);
        goto done;
    }
    for (int64_t ob = 0; ob < outer; ob++) {
        int64_t oa, obb;
        so_matmul_batch_offsets(pl, ob * inner, &oa, &obb);
        if (gemm_batch(h, pl, pl->a + oa * isz, pl->b + obb * isz,
                       pl->c + ob * inner * sc * isz, sa, sb, sc, (int)inner, err, errlen) < 0)
            goto done;
    }
    rc = 0;
done:
    if (prev != device_index) cudaSetDevice(prev);
    return rc;
}

extern "C" void so_matmul_release_handles(void **handles, int n)
{
    for (int i = 0; i < n; i++) {
        if (handles[i]) {
            cublasDestroy((cublasHandle_t)handles[i]);
            handles[i] = NULL;
        }
    }
}
#endif /* SHARDOPT_WITH_CUBLAS */
