/*
 * cpu_simd.h - compiling hot loops for wider vectors where the CPU has them.
 */
#ifndef GROMA_CPU_SIMD_H
#define GROMA_CPU_SIMD_H

/*
 * Placed before a loop function: compiled once for AVX2 and once for the
 * baseline, the loader picking the one the CPU runs.  AVX2 alone does not
 * enable FMA, so both copies round every product and sum the same way.
 * Use it on static functions only: clang cannot call the copies from
 * another file.
 */
#if defined(__x86_64__) && defined(__has_attribute)
#if __has_attribute(target_clones)
#define GROMA_SIMD_CLONES __attribute__((target_clones("avx2", "default")))
#endif
#endif
#ifndef GROMA_SIMD_CLONES
#define GROMA_SIMD_CLONES
#endif

#endif							/* GROMA_CPU_SIMD_H */
