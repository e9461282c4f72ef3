/* dropout.h — dropout's keep mask from the Philox stream (philox.h), written once for the
 * CPU loop (dropout.c) and the CUDA kernel (dropout.cu) so both keep the same elements for
 * the same (seed, offset).
 *
 * Element i uses word i % 4 of Philox block offset + i / 4 (the layout of a float32 uniform
 * draw): it is kept when its top 24 bits, u = x >> 8, are >= threshold = round(p * 2^24),
 * i.e. with probability 1 - p up to 2^-24; a kept element is scaled by 1 / (1 - p).
 * Integer comparisons only, so the mask is bit-identical on both devices.
 */
#ifndef SO_DROPOUT_H
#define SO_DROPOUT_H

#include "philox.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int dtype;           /* float32 / float64 */
    int64_t n;
    uint64_t seed, offset;
    uint32_t threshold;  /* keep when (x >> 8) >= threshold */
    double scale;        /* 1 / (1 - p) */
    const char *x;
    char *out;
    uint8_t *mask;       /* bool */
} so_dropout_call;

SO_HD uint32_t so_dropout_threshold(double p)
{
    double t = p * 16777216.0 + 0.5;
    return t >= 16777216.0 ? 16777216u : (uint32_t)t;
}

/* Mask bits of the (up to) 4 elements of block j; returns how many were written. */
SO_HD int so_dropout_block(const so_dropout_call *c, uint64_t j, uint8_t keep[4])
{
    uint32_t x[4];
    int64_t left = c->n - (int64_t)j * 4;
    int cnt = left < 4 ? (int)left : 4;
    so_philox_block(c->seed, c->offset + j, x);
    for (int l = 0; l < cnt; l++) keep[l] = (x[l] >> 8) >= c->threshold;
    return cnt;
}

void so_dropout_cpu(const so_dropout_call *c);
int so_dropout_cuda(const so_dropout_call *c, void *stream); /* 0 or a cudaError_t */

#ifdef __cplusplus
}
#endif
#endif /* SO_DROPOUT_H */
