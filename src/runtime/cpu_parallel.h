/*
 * cpu_parallel.h - one process-wide pool of CPU threads for the CPU ops.
 *
 * The CPU ops split their loops and GEMMs over this pool, and OpenBLAS is
 * kept single-threaded (each part calls it from its own thread), so the
 * GEMMs and the loops between them share one set of threads instead of two
 * pools that spin against each other.
 *
 * The pool size is GROMA_THREADS from the environment when set (1..256),
 * else the number of CPUs this process may run on.  A parallel_for called
 * while the pool is busy (another thread, or from inside a part) runs as
 * one part on the calling thread; callers make what fn computes for an item
 * independent of the split, so results never depend on who else is running.
 */
#ifndef GROMA_CPU_PARALLEL_H
#define GROMA_CPU_PARALLEL_H

#include <stdbool.h>
#include <stdint.h>

/* One part of a split loop: items [begin, end), part index in [0, parts). */
typedef void (*groma_range_fn) (void *ctx, int64_t begin, int64_t end, int part);

/* Number of threads parts may run on (>= 1); the first call starts the pool. */
int			groma_cpu_threads(void);

/*
 * Splits items [0, n) into at most groma_cpu_threads() contiguous parts of
 * at least min_chunk items each and runs fn on every part, one per thread;
 * returns when all parts are done.  Returns the number of parts used (0 when
 * n <= 0).  Every item is processed by exactly one call; part indices are
 * below groma_cpu_threads(), so per-part scratch can be indexed by them.
 */
int			groma_parallel_for(int64_t n, int64_t min_chunk, groma_range_fn fn, void *ctx);

/*
 * Row-major single-precision GEMM, C = alpha·op(A)·op(B) + beta·C, split
 * over the pool in chunks fixed by the shape, so the result does not depend
 * on the number of threads.
 */
void		groma_sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
						const float *a, int64_t lda, const float *b, int64_t ldb, float beta,
						float *c, int64_t ldc);

#endif							/* GROMA_CPU_PARALLEL_H */
