/*
 * cpu_parallel.c - the CPU thread pool and the split GEMM; see cpu_parallel.h.
 */
#define _GNU_SOURCE
#include "cpu_parallel.h"

#include <cblas.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#define MAX_THREADS 256
/* polls of the job counter before a thread sleeps on the condition variable */
#define SPIN_POLLS 20000
/* a GEMM chunk has at least this many multiply-adds, and a GEMM at most this many chunks */
#define GEMM_SPLIT_MIN ((int64_t) 1 << 21)
#define GEMM_MAX_CHUNKS 16

void		openblas_set_num_threads(int num_threads);

typedef struct pool_job
{
	groma_range_fn fn;
	void	   *ctx;
	int64_t		n;
	int			parts;
} pool_job;

static pthread_once_t pool_once = PTHREAD_ONCE_INIT;
static int	pool_threads = 1;
static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pool_wake = PTHREAD_COND_INITIALIZER;
static pthread_cond_t pool_done = PTHREAD_COND_INITIALIZER;
static pool_job pool_current;
static atomic_uint_fast64_t pool_generation;
static atomic_int pool_remaining;
static atomic_flag pool_busy = ATOMIC_FLAG_INIT;
static _Thread_local bool inside_part;

/* First and one-past-last item of part p when n items are split into parts. */
static void
part_range(int64_t n, int parts, int p, int64_t *begin, int64_t *end)
{
	*begin = n * p / parts;
	*end = n * (p + 1) / parts;
}

/* Spins briefly, then sleeps, until the job counter differs from seen. */
static void
wait_for_job(uint64_t seen)
{
	for (int i = 0; i < SPIN_POLLS; i++)
	{
		if (atomic_load_explicit(&pool_generation, memory_order_acquire) != seen)
			return;
#if defined(__x86_64__) || defined(__i386__)
		__builtin_ia32_pause();
#endif
	}
	pthread_mutex_lock(&pool_lock);
	while (atomic_load_explicit(&pool_generation, memory_order_acquire) == seen)
		pthread_cond_wait(&pool_wake, &pool_lock);
	pthread_mutex_unlock(&pool_lock);
}

/* Worker loop: runs part (index + 1) of every job that has that many parts. */
static void *
worker_main(void *arg)
{
	int			part = (int) (intptr_t) arg;
	uint64_t	seen = 0;

	inside_part = true;
	for (;;)
	{
		pool_job	job;
		int64_t		begin,
					end;

		wait_for_job(seen);
		/* the job and its number together: a later job may already have replaced the one that woke us */
		pthread_mutex_lock(&pool_lock);
		job = pool_current;
		seen = atomic_load_explicit(&pool_generation, memory_order_relaxed);
		pthread_mutex_unlock(&pool_lock);
		if (part >= job.parts)
			continue;
		part_range(job.n, job.parts, part, &begin, &end);
		job.fn(job.ctx, begin, end, part);
		if (atomic_fetch_sub_explicit(&pool_remaining, 1, memory_order_acq_rel) == 1)
		{
			pthread_mutex_lock(&pool_lock);
			pthread_cond_signal(&pool_done);
			pthread_mutex_unlock(&pool_lock);
		}
	}
	return NULL;
}

/* Reads the wanted pool size: GROMA_THREADS, else the CPUs this process may use. */
static int
wanted_threads(void)
{
	const char *env = getenv("GROMA_THREADS");
	cpu_set_t	set;
	int			n = 1;

	if (env != NULL && *env != '\0')
	{
		char	   *end;
		long		v = strtol(env, &end, 10);

		if (*end == '\0' && v >= 1 && v <= MAX_THREADS)
			return (int) v;
	}
	if (sched_getaffinity(0, sizeof(set), &set) == 0)
		n = CPU_COUNT(&set);
	else
		n = (int) sysconf(_SC_NPROCESSORS_ONLN);
	return n < 1 ? 1 : n > MAX_THREADS ? MAX_THREADS : n;
}

/* Starts the workers once; a worker that fails to start shrinks the pool. */
static void
pool_start(void)
{
	int			want = wanted_threads();

	openblas_set_num_threads(1);
	pool_threads = 1;
	for (int p = 1; p < want; p++)
	{
		pthread_t	tid;
		pthread_attr_t attr;
		int			rc;

		pthread_attr_init(&attr);
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		rc = pthread_create(&tid, &attr, worker_main, (void *) (intptr_t) p);
		pthread_attr_destroy(&attr);
		if (rc != 0)
			break;
		pool_threads++;
	}
}

/* Pool size; see cpu_parallel.h. */
int
groma_cpu_threads(void)
{
	pthread_once(&pool_once, pool_start);
	return pool_threads;
}

/* Splits a loop over the pool; see cpu_parallel.h. */
int
groma_parallel_for(int64_t n, int64_t min_chunk, groma_range_fn fn, void *ctx)
{
	int			threads = groma_cpu_threads();
	int			parts;
	int64_t		begin,
				end;

	if (n <= 0)
		return 0;
	if (min_chunk < 1)
		min_chunk = 1;
	parts = n / min_chunk < threads ? (int) (n / min_chunk) : threads;
	if (parts < 1)
		parts = 1;
	if (parts == 1 || inside_part || atomic_flag_test_and_set_explicit(&pool_busy, memory_order_acquire))
	{
		/* no free pool (or nothing to share): one part on this thread */
		fn(ctx, 0, n, 0);
		return 1;
	}
	pthread_mutex_lock(&pool_lock);
	pool_current = (pool_job) {fn, ctx, n, parts};
	atomic_store_explicit(&pool_remaining, parts - 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&pool_generation, 1, memory_order_release);
	pthread_cond_broadcast(&pool_wake);
	pthread_mutex_unlock(&pool_lock);

	inside_part = true;
	part_range(n, parts, 0, &begin, &end);
	fn(ctx, begin, end, 0);
	inside_part = false;

	for (int i = 0; i < SPIN_POLLS && atomic_load_explicit(&pool_remaining, memory_order_acquire) > 0; i++)
	{
#if defined(__x86_64__) || defined(__i386__)
		__builtin_ia32_pause();
#endif
	}
	pthread_mutex_lock(&pool_lock);
	while (atomic_load_explicit(&pool_remaining, memory_order_acquire) > 0)
		pthread_cond_wait(&pool_done, &pool_lock);
	pthread_mutex_unlock(&pool_lock);
	atomic_flag_clear_explicit(&pool_busy, memory_order_release);
	return parts;
}

typedef struct gemm_job
{
	bool		trans_a,
				trans_b,
				split_rows;		/* chunks are rows of C (else columns) */
	int64_t		m,
				n,
				k,
				lda,
				ldb,
				ldc,
				chunk;			/* rows (or columns) per chunk: a function of the shape only */
	float		alpha,
				beta;
	const float *a,
			   *b;
	float	   *c;
} gemm_job;

/* Chunks [begin, end) of a split GEMM, one OpenBLAS call each. */
static void
gemm_part(void *ctx, int64_t begin, int64_t end, int part)
{
	const gemm_job *g = ctx;
	int64_t		span = g->split_rows ? g->m : g->n;

	for (int64_t ch = begin; ch < end; ch++)
	{
		int64_t		first = ch * g->chunk,
					count = first + g->chunk <= span ? g->chunk : span - first;
		const float *a = g->a,
				   *b = g->b;
		float	   *c = g->c;
		int64_t		m = g->m,
					n = g->n;

		if (g->split_rows)
		{
			a += g->trans_a ? first : first * g->lda;	/* A is [M, K] (or stored [K, M]) */
			c += first * g->ldc;
			m = count;
		}
		else
		{
			b += g->trans_b ? first * g->ldb : first;	/* B is [K, N] (or stored [N, K]) */
			c += first;
			n = count;
		}
		cblas_sgemm(CblasRowMajor, g->trans_a ? CblasTrans : CblasNoTrans, g->trans_b ? CblasTrans : CblasNoTrans,
					(int) m, (int) n, (int) g->k, g->alpha, a, (int) g->lda, b, (int) g->ldb, g->beta, c, (int) g->ldc);
	}
}

/*
 * Split GEMM; see cpu_parallel.h.  The chunks depend on the shape alone (at
 * most GEMM_MAX_CHUNKS, each at least GEMM_SPLIT_MIN multiply-adds, a
 * multiple of 16 rows or columns), so every element comes from the same
 * OpenBLAS call whatever the pool size or load: results do not depend on
 * the machine's core count.
 */
void
groma_sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
			const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc)
{
	gemm_job	g = {trans_a, trans_b, m >= n, m, n, k, lda, ldb, ldc, 0, alpha, beta, a, b, c};
	int64_t		span = g.split_rows ? m : n;
	int64_t		per_line = (g.split_rows ? n : m) * (k > 0 ? k : 1);	/* multiply-adds per row (column) */
	int64_t		chunk = (span + GEMM_MAX_CHUNKS - 1) / GEMM_MAX_CHUNKS;

	if (m <= 0 || n <= 0)
		return;
	if (chunk * per_line < GEMM_SPLIT_MIN)
		chunk = (GEMM_SPLIT_MIN + per_line - 1) / per_line;
	chunk = (chunk + 15) / 16 * 16;
	g.chunk = chunk < span ? chunk : span;
	groma_parallel_for((span + g.chunk - 1) / g.chunk, 1, gemm_part, &g);
}
