/* block_reduce.cuh — block-wide max or sum for the row kernels (softmax, cross-entropy):
 * one definition instead of a copy per kernel file. Every thread of the block must call it
 * (it synchronises), with blockDim.x a power of two <= Threads. */
#ifndef SO_BLOCK_REDUCE_CUH
#define SO_BLOCK_REDUCE_CUH

/* Block-wide max (is_max) or sum of v; every thread gets the result. */
template <int Threads, typename T>
__device__ T so_block_reduce(T v, bool is_max)
{
    __shared__ T sh[Threads];
    const int t = threadIdx.x;
    sh[t] = v;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if (t < s) sh[t] = is_max ? (sh[t + s] > sh[t] ? sh[t + s] : sh[t]) : sh[t] + sh[t + s];
        __syncthreads();
    }
    T r = sh[0];
    __syncthreads();  // sh is reused by the next call
    return r;
}

#endif /* SO_BLOCK_REDUCE_CUH */
