/* cuda_rt.c — the CUDA runtime behind device.h.  Plain C calling cudart (only kernels need
 * nvcc).  In a CPU-only build every entry point reports "not available" with the reason. */
#include "device.h"
#include <stdio.h>

#ifdef SHARDOPT_WITH_CUDA
#include <cuda_runtime.h>

int so_cuda_compiled(void) { return 1; }

int so_cuda_device_count(const char **why_out)
{
    int n = 0;
    cudaError_t err = cudaGetDeviceCount(&n);
    if (err != cudaSuccess) {
        (void)cudaGetLastError(); /* clear the sticky-free error state */
        if (why_out) {
            if (err == cudaErrorInsufficientDriver)
                *why_out = "no CUDA driver is installed, or it is older than this build's CUDA 13 "
                           "runtime";
            else if (err == cudaErrorNoDevice)
                *why_out = "no CUDA-capable device is present";
            else
                *why_out = cudaGetErrorString(err);
        }
        return 0;
    }
    if (n == 0 && why_out) *why_out = "no CUDA-capable device is present";
    if (n > SO_MAX_CUDA_DEVICES) n = SO_MAX_CUDA_DEVICES;
    return n;
}

int so_cuda_require(int index)
{
    const char *why = NULL;
    int n = so_cuda_device_count(&why);
    if (n == 0)
        return so_fail(PyExc_RuntimeError,
                       "CUDA is not available: %s", why ? why : "unknown reason");
    if (index < 0 || index >= n)
        return so_fail(PyExc_RuntimeError,
                       "invalid CUDA device index %d: this machine has %d CUDA device(s)",
                       index, n);
    return 0;
}

int so_cuda_get_device(int *index_out)
{
    SO_CHECK_CUDA(cudaGetDevice(index_out), done);
    return 0;
done:
    return -1;
}

int so_cuda_set_device(int index)
{
    if (so_cuda_require(index) < 0) return -1;
    SO_CHECK_CUDA(cudaSetDevice(index), done);
    return 0;
done:
    return -1;
}

void *so_cuda_stream(void **streams, int index)
{
    int prev = 0;
    cudaStream_t s;
    if (so_cuda_require(index) < 0) return NULL;
    if (streams[index]) return streams[index];
    SO_CHECK_CUDA(cudaGetDevice(&prev), done);
    SO_CHECK_CUDA(cudaSetDevice(index), done);
    SO_CHECK_CUDA(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), done);
    SO_CHECK_CUDA(cudaSetDevice(prev), done);
    streams[index] = (void *)s;
    return streams[index];
done:
    return NULL;
}

int so_cuda_malloc(int index, void *stream, size_t nbytes, void **ptr_out)
{
    int prev = 0;
    *ptr_out = NULL;
    if (nbytes == 0) return 0;
    SO_CHECK_CUDA(cudaGetDevice(&prev), done);
    if (prev != index) SO_CHECK_CUDA(cudaSetDevice(index), done);
    {
        cudaError_t err = cudaMallocAsync(ptr_out, nbytes, (cudaStream_t)stream);
        if (prev != index) cudaSetDevice(prev);
        if (err != cudaSuccess) {
            (void)cudaGetLastError();
            *ptr_out = NULL;
            if (err == cudaErrorMemoryAllocation)
                return so_fail(PyExc_MemoryError,
                               "CUDA out of memory: cannot allocate %zu bytes on cuda:%d", nbytes,
                               index);
            return so_cuda_raise(err, "cudaMallocAsync", __FILE__, __LINE__);
        }
    }
    return 0;
done:
    return -1;
}

void so_cuda_free(int index, void *stream, void *ptr)
{
    int prev = 0;
    if (!ptr) return;
    if (cudaGetDevice(&prev) != cudaSuccess) prev = index;
    if (prev != index) cudaSetDevice(index);
    if (cudaFreeAsync(ptr, (cudaStream_t)stream) != cudaSuccess) {
        (void)cudaGetLastError();
        fprintf(stderr, "shardopt: cudaFreeAsync failed on cuda:%d (%s:%d)\n", index, __FILE__,
                __LINE__);
    }
    if (prev != index) cudaSetDevice(prev);
}

int so_cuda_memcpy(void *dst, const void *src, size_t nbytes, int kind, void *stream)
{
    static const enum cudaMemcpyKind kinds[3] = {cudaMemcpyHostToDevice, cudaMemcpyDeviceToHost,
                                                 cudaMemcpyDeviceToDevice};
    if (nbytes == 0) return 0;
    SO_CHECK_CUDA(cudaMemcpyAsync(dst, src, nbytes, kinds[kind], (cudaStream_t)stream), done);
    if (kind != 2) SO_CHECK_CUDA(cudaStreamSynchronize((cudaStream_t)stream), done);
    return 0;
done:
    return -1;
}

int so_cuda_stream_synchronize(void *stream)
{
    cudaError_t err;
    Py_BEGIN_ALLOW_THREADS
    err = cudaStreamSynchronize((cudaStream_t)stream);
    Py_END_ALLOW_THREADS
    if (err != cudaSuccess) return so_cuda_raise(err, "cudaStreamSynchronize", __FILE__, __LINE__);
    return 0;
}

int so_cuda_device_synchronize(int index)
{
    int prev = 0;
    cudaError_t err;
    if (so_cuda_require(index) < 0) return -1;
    SO_CHECK_CUDA(cudaGetDevice(&prev), done);
    SO_CHECK_CUDA(cudaSetDevice(index), done);
    Py_BEGIN_ALLOW_THREADS
    err = cudaDeviceSynchronize();
    Py_END_ALLOW_THREADS
    cudaSetDevice(prev);
    if (err != cudaSuccess) return so_cuda_raise(err, "cudaDeviceSynchronize", __FILE__, __LINE__);
    return 0;
done:
    return -1;
}

void so_cuda_release_streams(void **streams)
{
    for (int i = 0; i < SO_MAX_CUDA_DEVICES; i++) {
        if (streams[i]) {
            cudaStreamSynchronize((cudaStream_t)streams[i]);
            cudaStreamDestroy((cudaStream_t)streams[i]);
            streams[i] = NULL;
        }
    }
}

#else /* CPU-only build */

static const char no_cuda_reason[] = "this shardopt build has no CUDA support (nvcc was not found "
                                     "at build time; see SHARDOPT_CUDA in the README)";

int so_cuda_compiled(void) { return 0; }

int so_cuda_device_count(const char **why_out)
{
    if (why_out) *why_out = no_cuda_reason;
    return 0;
}

static int so_no_cuda(void)
{
    return so_fail(PyExc_RuntimeError, "CUDA is not available: %s", no_cuda_reason);
}

int so_cuda_require(int index) { (void)index; return so_no_cuda(); }
int so_cuda_get_device(int *index_out) { *index_out = 0; return so_no_cuda(); }
int so_cuda_set_device(int index) { (void)index; return so_no_cuda(); }
void *so_cuda_stream(void **streams, int index) { (void)streams; (void)index; so_no_cuda(); return NULL; }
int so_cuda_malloc(int index, void *stream, size_t nbytes, void **ptr_out)
{
    (void)index; (void)stream; (void)nbytes; *ptr_out = NULL;
    return so_no_cuda();
}
void so_cuda_free(int index, void *stream, void *ptr) { (void)index; (void)stream; (void)ptr; }
int so_cuda_memcpy(void *dst, const void *src, size_t nbytes, int kind, void *stream)
{
    (void)dst; (void)src; (void)nbytes; (void)kind; (void)stream;
    return so_no_cuda();
}
int so_cuda_stream_synchronize(void *stream) { (void)stream; return so_no_cuda(); }
int so_cuda_device_synchronize(int index) { (void)index; return so_no_cuda(); }
void so_cuda_release_streams(void **streams) { (void)streams; }

#endif
