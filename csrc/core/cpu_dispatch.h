/* cpu_dispatch.h — runtime CPU dispatch for the hot float32 loops (elementwise, nn rows).
 *
 * The package is built without -march=native (it must run on any x86-64), which leaves gcc
 * with SSE2 only.  SO_CPU_CLONES asks gcc to compile a function three times — x86-64-v4
 * (AVX-512), x86-64-v3 (AVX2 + FMA) and the baseline — and to pick one at load time for the
 * CPU it runs on (an ifunc resolver; torch's kernels dispatch the same way).  The code is the
 * same portable C in every clone; the v3/v4 clones may contract a*b+c into an FMA (the build
 * passes -ffp-contract=fast, as nvcc contracts by default), so their last bit can differ from
 * the baseline's: tests bound errors against float64 references, never clone-to-clone bits.
 * Measured: the polynomial GELU runs ~15x faster with AVX-512 than with SSE2, softmax ~1.2x.
 * Only on gcc >= 11 / x86-64 Linux and not under ASan (its interceptors and ifuncs do not
 * mix); elsewhere the macro is empty and the baseline is used.
 */
#ifndef SO_CPU_DISPATCH_H
#define SO_CPU_DISPATCH_H

#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 11 && defined(__x86_64__) && \
    defined(__linux__) && !defined(__SANITIZE_ADDRESS__)
#define SO_CPU_CLONES \
    __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define SO_CPU_CLONES
#endif

#endif /* SO_CPU_DISPATCH_H */
