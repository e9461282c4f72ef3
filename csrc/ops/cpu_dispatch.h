/* cpu_dispatch.h — runtime CPU dispatch for the nn kernels' hot row loops.
 *
 * The package is built without -march=native (it must run on any x86-64), which leaves gcc
 * with SSE2 only.  SO_CPU_CLONES asks gcc to compile a function several times — AVX-512,
 * AVX2 and the SSE2 baseline — and to pick one at load time for the CPU it runs on (an ifunc
 * resolver; torch's kernels dispatch the same way).  The code is the same portable C in
 * every clone: only the vector width changes, and since floating-point contraction stays off
 * (-std=c11) and reductions use explicit lanes, every clone computes identical results.
 * Only on gcc / x86-64 Linux; elsewhere the macro is empty and the baseline is used.
 */
#ifndef SO_CPU_DISPATCH_H
#define SO_CPU_DISPATCH_H

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) && \
    !defined(__SANITIZE_ADDRESS__)
#define SO_CPU_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define SO_CPU_CLONES
#endif

#endif /* SO_CPU_DISPATCH_H */
